#!/usr/bin/env bash
# Measures what a new user waits for: a fresh clone of this repository, then `make run` until
# /readyz answers 200; prints the seconds and the size of the runtime venv (.venv-run).
#   scripts/first-run.sh          # with uv's download cache as it is on this machine
#   scripts/first-run.sh --cold   # with an empty uv cache (every wheel downloaded)
# The clone is of the committed HEAD; it is removed afterwards.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/remediator-first-run.XXXXXX)
pid=
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
if [ "${1:-}" = "--cold" ]; then
  export UV_CACHE_DIR=$work/uv-cache
  export PIP_NO_CACHE_DIR=1
fi
port=$("${PYTHON:-python3}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
git clone --quiet "$repo" "$work/clone"
cd "$work/clone"
start=$(date +%s.%N)
setsid make run PORT="$port" > "$work/run.log" 2>&1 &
pid=$!
until curl -fs "http://127.0.0.1:$port/readyz" > /dev/null; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/run.log"; echo "first-run: make run stopped" >&2; exit 1; }
  sleep 0.1
done
end=$(date +%s.%N)
kill -- -"$pid"
"${PYTHON:-python3}" - "$start" "$end" <<'PY'
import sys
print(f"first-run: `make run` ready (/readyz 200) after {float(sys.argv[2]) - float(sys.argv[1]):.1f} s")
PY
echo "first-run: .venv-run is $(du -sm .venv-run | cut -f1) MB ($(du -sh .venv-run | cut -f1)); .tools (uv) is $(du -sm .tools | cut -f1) MB"
