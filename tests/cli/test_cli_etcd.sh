#!/bin/sh
# test_cli_etcd.sh -- the command-line tool on a store on etcd (-d
# etcd://...): outcomes and conditions as on a directory, a read of a
# prefix with no store creates none, backup is 501 (UNSUPPORTED), and
# watch is woken by another process's write.  Run by tests/etcd/with_etcd.sh
# (ETAGKV_TEST_STORE).
#
#   tests/cli/test_cli_etcd.sh PATH/TO/etagkv
set -u
E=${1:?usage: test_cli_etcd.sh PATH/TO/etagkv}
: "${ETAGKV_TEST_STORE:?run me with tests/etcd/with_etcd.sh}"
# shellcheck source=tests/cli/run.sh
. "$(dirname "$0")/run.sh"
D="$ETAGKV_TEST_STORE/cli-$$"

# A read of a prefix without a store: exit 2, and no store made there.
run 2 - -d "$D" get k
run 2 - -d "$D" stats

printf 'hello' >"$T/v"
run 0 201 -d "$D" put k "$T/v"
run 0 200 -d "$D" get k
[ "$(cat "$T/out")" = hello ] || fail "get printed '$(cat "$T/out")'"
run 0 200 -d "$D" head k
etag=$(sed -n 's/^etag: //p' "$T/out")
[ -n "$etag" ] || fail "head printed no etag"
# RFC 9110 §13.1.1 and §13.1.2, as on LMDB.
run 1 412 -d "$D" put k "$T/v" --if-none-match '*'
run 0 200 -d "$D" put k "$T/v" --if-match "$etag"
run 1 412 -d "$D" delete k --if-match '"00000000000000000000000000000000"'
run 0 200 -d "$D" stats
grep -q '"records": *1\|records: 1' "$T/out" || fail "stats: $(cat "$T/out")"
run 3 501 -d "$D" backup -

# watch: woken by a put from another process, not by its one-second poll
# alone (the put lands well inside the wait).
"$E" -d "$D" watch -n 1 k >"$T/watch" 2>"$T/watch.err" &
w=$!
sleep 1
run 0 200 -d "$D" put k "$T/v"
i=0
while kill -0 $w 2>/dev/null && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
if kill -0 $w 2>/dev/null; then
    kill $w
    fail "watch saw no event"
fi
wait $w 2>/dev/null
grep -q '"type": *"put"' "$T/watch" || fail "watch printed '$(cat "$T/watch")'"

run 0 204 -d "$D" delete k
run 1 404 -d "$D" get k

[ $fails -eq 0 ] || exit 1
echo "test_cli_etcd: all passed"
