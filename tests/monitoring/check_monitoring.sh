#!/bin/sh
# check_monitoring.sh SOURCE_DIR URL -- run by CTest under
# examples/with-server.sh: make the real server answer one request of each
# kind the rules watch (201, 412, 304, 409), scrape its /metrics, and check
# dist/monitoring/ against it (check_monitoring.py).  promtool checks and
# unit-tests the rules in check_rules.sh.
set -eu
src=$1
url=$2
m=$(mktemp)
trap 'rm -f "$m"' EXIT

e=$(curl -s -o /dev/null -D - -X PUT --data-binary 1 "$url/kv/m" |
    tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: *//p')
curl -s -o /dev/null -X PUT -H 'If-Match: "0"' --data-binary 2 "$url/kv/m"
curl -s -o /dev/null -H "If-None-Match: $e" "$url/kv/m"
curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
    --data '{"ops":[{"op":"check","key":"m","if_none_match":"*"}]}' "$url/txn"
curl -sf "$url/metrics" >"$m"
python3 "$src/tests/monitoring/check_monitoring.py" \
    "$src/dist/monitoring/etagkv-alerts.yml" \
    "$src/dist/monitoring/etagkv-dashboard.json" "$m"
