#!/bin/sh
# test_cli_etcd.sh -- the command-line tool on a store on etcd (-d
# etcd://...): outcomes and conditions as on a directory, a read of a
# prefix with no store creates none, backup and restore are 501
# (UNSUPPORTED), watch is woken by another process's write, and copy moves
# a store onto etcd and off it (issue 17).  Run by tests/etcd/with_etcd.sh
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

# watch: woken by a put from another process (the put lands while it
# waits).  It watches from the revision before the put, so that a watch
# slow to start (a sanitizer build on a loaded machine) still sees it.
run 0 200 -d "$D" stats
rev=$(sed -n 's/^revision: //p' "$T/out")
[ -n "$rev" ] || fail "stats printed no revision: $(cat "$T/out")"
"$E" -d "$D" watch -a "$rev" -n 1 k >"$T/watch" 2>"$T/watch.err" &
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

# stats: a store on etcd has no map, and prints no map figures.
run 0 200 -d "$D" stats
grep -q '^map-' "$T/out" && fail "stats on etcd printed map figures: $(cat "$T/out")"
# backup and restore move LMDB's file: 501 on etcd, pointing to copy, and
# nothing created.
run 3 501 -d "$D" backup "$T/bk"
grep -q "use 'etagkv -d SOURCE copy DEST'" "$T/err" || fail "backup on etcd: $(cat "$T/err")"
run 3 501 -d "$D" restore "$T/bk"
grep -q "LMDB directory only" "$T/err" || fail "restore on etcd: $(cat "$T/err")"
[ ! -e "$T/bk" ] || fail "backup or restore on etcd created $T/bk"

# ---- copy (issue 17): a directory onto etcd, etcd back to a directory -------
# and to another prefix; binary keys, content types and times survive, a
# leased key is left out, 11 records in pages of 4 and 5.
L=$T/lsrc
for i in 1 2 3 4 5 6 7 8 9; do
    printf 'value %s' "$i" | "$E" -d "$L" --nosync put "k$i" - -t text/plain \
        >/dev/null 2>&1 || fail "put k$i"
done
printf 'bin\000ary' >"$T/bin"
run 0 201 -d "$L" --nosync put --pct 'b%00%FF%0A' "$T/bin" -t 'application/x-b; q=1'
run 0 201 -d "$L" --nosync put --pct 'z%20y' "$T/v"
run 0 201 -d "$L" --nosync lease grant 600000
lease=$(sed -n 's/^{"id":"\([0-9]*\)".*/\1/p' "$T/out")
run 0 201 -d "$L" --nosync put --lease "$lease" leased "$T/v"
C="$ETAGKV_TEST_STORE/copy-$$"
run 0 200 -d "$L" copy "$C" --page 4
for line in 'records: 11' 'leased-skipped: 1' 'pages: 3' 'verified: 11'; do
    grep -qx "$line" "$T/out" || fail "copy onto etcd printed no '$line': $(cat "$T/out")"
done
run 0 200 -d "$C" copy "$T/back" --page 5
for line in 'records: 11' 'leased-skipped: 0' 'pages: 3' 'verified: 11' \
    'destination-revision: 3'; do
    grep -qx "$line" "$T/out" || fail "copy off etcd printed no '$line': $(cat "$T/out")"
done
C2="$ETAGKV_TEST_STORE/copy2-$$"
run 0 200 -d "$C" copy "$C2"
grep -qx 'pages: 1' "$T/out" || fail "copy etcd to etcd: $(cat "$T/out")"
for k in k1 k2 k3 k4 k5 k6 k7 k8 k9 b%00%FF%0A z%20y; do
    same_record "$L" "$C" "$k"
    same_record "$L" "$T/back" "$k"
    same_record "$L" "$C2" "$k"
done
run 1 404 -d "$C" get leased
run 0 200 -d "$C" head k1
lm=$(sed -n 's/^last-modified: //p' "$T/out")
run 1 304 -d "$C" get k1 --if-modified-since "$lm"
# A destination on etcd with records is refused, nothing written.
run 0 200 -d "$C" stats
before=$(cat "$T/out")
run 2 - -d "$L" copy "$C"
grep -q 'holds 11 records: copy only into an empty store' "$T/err" ||
    fail "copy onto a prefix with records: $(cat "$T/err")"
run 0 200 -d "$C" stats
[ "$(cat "$T/out")" = "$before" ] || fail "a refused copy changed $C: $(cat "$T/out")"

[ $fails -eq 0 ] || exit 1
echo "test_cli_etcd: all passed"
