#!/usr/bin/env bash
# `make image`: builds the Dockerfile with podman and prints the image's size and the time taken.
#   IMAGE=localhost/remediator:0.1.0 BASE= scripts/image.sh
# The base: BASE when given; else the Dockerfile's default (the official Python image by
# digest) when podman has it or can pull it; else a local Debian base (scripts/image-base.sh).
# VERSION (pyproject.toml's), REVISION and CREATED (the commit and its time) become the
# image's org.opencontainers.image.* labels.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/podman/containers.conf}
podman="podman --runtime runc"
command -v podman >/dev/null || { echo "image: podman is missing (make system-deps)" >&2; exit 1; }
start=$(date +%s)
version=$("${PYTHON:-python3}" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
image=${IMAGE:-localhost/remediator:$version}
base=${BASE:-}
if [ -z "$base" ]; then
  official=$(sed -n 's/^ARG BASE=//p' Dockerfile)
  if $podman image exists "$official" || timeout 120 $podman pull --quiet "$official" >/dev/null 2>&1; then
    base=$official
  else
    base=localhost/remediator-base:$(sha256sum scripts/image-base.sh | cut -c1-12)
    echo "image: $official cannot be pulled from here; building on $base"
    PODMAN="$podman" bash scripts/image-base.sh "$base"
  fi
fi
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
created=$(git log -1 --format=%cI 2>/dev/null || echo unknown)
# The commit's labels are also given on the command line: the Dockerfile's LABEL layer is
# taken from the layer cache when only the build args differ (buildah keys it on the
# instruction's text), so a build of a new commit with an unchanged image kept the old
# commit's revision.
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then revision=$revision-dirty; fi
# This machine's CA bundle, when it names one, for the build's downloads (a TLS-inspecting
# egress proxy): a build volume, seen by the RUN steps and never stored in a layer.
trust=()
if [ -n "${SSL_CERT_FILE:-}" ] && [ -f "$SSL_CERT_FILE" ]; then
  trust=(--volume "$(readlink -f "$SSL_CERT_FILE"):/run/build-ca.crt:ro"
         --build-arg SSL_CERT_FILE=/run/build-ca.crt --build-arg PIP_CERT=/run/build-ca.crt)
fi
$podman build --network=host --format docker --layers "${trust[@]}" \
  --build-arg BASE="$base" \
  --build-arg VERSION="$version" \
  --build-arg REVISION="$revision" \
  --build-arg CREATED="$created" \
  --label org.opencontainers.image.revision="$revision" \
  --label org.opencontainers.image.created="$created" \
  --tag "$image" .
size=$($podman image inspect --format '{{.Size}}' "$image")
echo "image: $image, $((size / 1000000)) MB, built in $(($(date +%s) - start)) s on $base"
