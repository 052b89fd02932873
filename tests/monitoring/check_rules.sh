#!/bin/sh
# check_rules.sh SOURCE_DIR -- the alert rules of dist/monitoring/ with
# promtool (Debian's prometheus package, installed by tools/setup.sh):
# "promtool check rules" (syntax, PromQL, templates), then "promtool test
# rules" on etagkv-alerts.test.yml (each alert fires on a synthetic series
# and not on a quiet one).  Without promtool this fails: the rules would go
# unchecked.
set -eu
src=${1:?usage: check_rules.sh SOURCE_DIR}
if ! command -v promtool >/dev/null 2>&1; then
    echo "check_rules.sh: promtool not found (Debian: apt-get install prometheus)" >&2
    exit 1
fi
promtool check rules "$src/dist/monitoring/etagkv-alerts.yml"
promtool test rules "$src/tests/monitoring/etagkv-alerts.test.yml"
