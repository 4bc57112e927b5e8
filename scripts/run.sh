#!/usr/bin/env bash
# `make run`: serve the shipped rules in dry run on the memory store, for a local quick start.
#   scripts/run.sh VENV_PYTHON      (HOST and PORT from the environment; make passes them)
# The webhook and admin tokens are made once and kept in .run/tokens.env (git-ignored, mode 600),
# so a restart reuses them; this is the one place remediator shows a secret, on purpose.
# The commands printed below are the README's quick start (and docs/quickstart.md's), word for word but for the URL
# (tests/release/test_run.py runs them against this script).
set -euo pipefail
py=$1
bin=$(dirname "$py")
host=${HOST:-127.0.0.1}
port=${PORT:-8080}
dir=.run
file=$dir/tokens.env
if [ ! -s "$file" ]; then
  mkdir -p "$dir"
  (
    umask 077
    "$py" - > "$file" <<'PY'
import secrets
print(f"REMEDIATOR_WEBHOOK_TOKEN={secrets.token_urlsafe(24)}")
print(f"REMEDIATOR_ADMIN_TOKEN={secrets.token_urlsafe(24)}")
PY
  )
fi
chmod 600 "$file"
# shellcheck disable=SC1090
. "$file"
# Where a client on this machine reaches it: a wildcard bind is reached on loopback.
case $host in
  0.0.0.0 | "::" | "" | localhost) url_host=127.0.0.1 ;;
  *:*) url_host="[$host]" ;;
  *) url_host=$host ;;
esac
url="http://$url_host:$port"
store="the memory store"
[ -z "${REMEDIATOR_REDIS_URL:-}" ] || store="Redis (REMEDIATOR_REDIS_URL)"
cat <<MSG
remediator: dry run, $store, rules.yaml, listening on $host:$port
tokens (kept in $file, mode 600, reused on restart; delete the file for new ones):
  webhook: $REMEDIATOR_WEBHOOK_TOKEN
  admin:   $REMEDIATOR_ADMIN_TOKEN
MSG
case $host in
  127.* | localhost | ::1) ;;
  *) echo "note: HOST=$host takes connections from other machines; anyone with these tokens can use it" ;;
esac
cat <<MSG
in another terminal, in $(pwd):
  export \$(cat $file) REMEDIATOR_URL=$url
  curl -w '\n' -H "Authorization: Bearer \$REMEDIATOR_WEBHOOK_TOKEN" -H 'Content-Type: application/json' \\
       --data @examples/alertmanager/clickhouse-readonly-firing.json \$REMEDIATOR_URL/webhooks/alertmanager
  curl -s \$REMEDIATOR_URL/metrics | grep remediator_jobs_total
  $bin/remediator events
  $bin/remediator event EVENT_ID
  $bin/remediator replay EVENT_ID --dry-run --wait 30
  $bin/remediator pause --reason "trying it out" --for 10m
  $bin/remediator resume

MSG
export REMEDIATOR_WEBHOOK_TOKEN REMEDIATOR_ADMIN_TOKEN
export REMEDIATOR_HOST=$host
export REMEDIATOR_LOG_FORMAT=${REMEDIATOR_LOG_FORMAT:-console}
exec "$py" -m remediator serve --rules rules.yaml --port "$port" --dry-run
