#!/usr/bin/env bash
# `make run`: serve the shipped rules in dry run on the memory store, for a local quick start.
# The webhook and admin tokens are made once and kept in .run/tokens.env (git-ignored, mode 600),
# so a restart reuses them; this is the one place remediator shows a secret, on purpose.
set -euo pipefail
py=$1
host=${HOST:-127.0.0.1}
port=${PORT:-8080}
dir=.run
file=$dir/tokens.env
if [ ! -s "$file" ]; then
  mkdir -p "$dir"
  umask 077
  "$py" - > "$file" <<'PY'
import secrets
print(f"REMEDIATOR_WEBHOOK_TOKEN={secrets.token_urlsafe(24)}")
print(f"REMEDIATOR_ADMIN_TOKEN={secrets.token_urlsafe(24)}")
PY
fi
# shellcheck disable=SC1090
. "$file"
url="http://127.0.0.1:$port"
[ "$host" = "127.0.0.1" ] || [ "$host" = "localhost" ] || url="http://$host:$port"
cat <<MSG
remediator: dry run, memory store, rules.yaml, on $host:$port
tokens (kept in $file; delete it for new ones):
  webhook: $REMEDIATOR_WEBHOOK_TOKEN
  admin:   $REMEDIATOR_ADMIN_TOKEN
in another terminal:
  curl -H "Authorization: Bearer $REMEDIATOR_WEBHOOK_TOKEN" -H 'Content-Type: application/json' \\
       --data @examples/alertmanager/clickhouse-readonly-firing.json $url/webhooks/alertmanager
  export REMEDIATOR_URL=$url REMEDIATOR_ADMIN_TOKEN=$REMEDIATOR_ADMIN_TOKEN
  $py -m remediator events

MSG
export REMEDIATOR_WEBHOOK_TOKEN REMEDIATOR_ADMIN_TOKEN
export REMEDIATOR_HOST=$host
export REMEDIATOR_LOG_FORMAT=${REMEDIATOR_LOG_FORMAT:-console}
exec "$py" -m remediator serve --rules rules.yaml --port "$port" --dry-run
