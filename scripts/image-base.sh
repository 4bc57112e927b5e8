#!/usr/bin/env bash
# The image's base where no registry of base images can be reached (the development and CI
# machines): Debian bookworm minbase with python3 (3.11) and python3-venv (a minbase python3
# has no ensurepip), made by mmdebstrap from the Debian mirror apt uses, imported into podman.
#   scripts/image-base.sh NAME      e.g. localhost/remediator-base:<hash of this file>
# Cached twice: nothing is done while podman has NAME; the tarball in .cache/image/ is
# imported again without mmdebstrap (cold: about 35 s of mmdebstrap).
# Trimmed, not changed: merged /usr made up front (the merged-usr hook installs usr-is-merged,
# so usrmerge and its 50 MB of perl are not pulled in), no man pages, locales, info or docs
# (the copyright files stay).
set -euo pipefail
name=$1
podman=${PODMAN:-podman}
if $podman image exists "$name"; then
  echo "image-base: $name is there"
  exit 0
fi
cache=${IMAGE_CACHE:-.cache/image}
tar=$cache/$(printf %s "$name" | tr -c 'A-Za-z0-9.-' _).tar
if [ ! -s "$tar" ]; then
  command -v mmdebstrap >/dev/null || { echo "image-base: mmdebstrap is missing (make system-deps)" >&2; exit 1; }
  mkdir -p "$cache"
  echo "image-base: mmdebstrap bookworm -> $tar"
  mmdebstrap --quiet --format=tar --variant=minbase --include=python3,python3-venv,ca-certificates \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    bookworm "$tar.part"
  mv "$tar.part" "$tar"
fi
echo "image-base: podman import $tar $name"
$podman import --quiet "$tar" "$name" >/dev/null
