#!/usr/bin/env bash
# Installs the Debian packages whose servers the tests start, when missing.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/sbin/clickhouse-server ] || need+=(clickhouse-server clickhouse-client)
[ -d /usr/share/zookeeper ] || need+=(zookeeper)
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v promtool >/dev/null || need+=(prometheus)
command -v wrk >/dev/null || need+=(wrk)
[ ${#need[@]} -eq 0 ] && { echo "system-deps: all present"; exit 0; }
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
  command -v sudo >/dev/null || { echo "system-deps: missing ${need[*]} (run as root to install)"; exit 0; }
else
  SUDO=
fi
echo "system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
# The Debian packages start system services; the tests start their own on free ports.
for svc in clickhouse-server zookeeper prometheus prometheus-alertmanager; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
