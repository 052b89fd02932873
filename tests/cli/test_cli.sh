#!/bin/sh
# test_cli.sh -- the command-line tool (cli/etagkv.c) end to end on a real
# store: outcomes as HTTP status lines and exit statuses, conditions, and
# usage errors that open and create nothing.
#
#   tests/cli/test_cli.sh PATH/TO/etagkv   (CTest passes the built binary)
set -u
E=${1:?usage: test_cli.sh PATH/TO/etagkv}
T=$(mktemp -d "${TMPDIR:-/tmp}/etagkv-cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
D="$T/store"
fails=0

fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

# run EXPECTED_STATUS EXPECTED_FIRST_WORD_OF_STDERR ARGS...: run the tool,
# check its exit status and the HTTP status it printed (or "-" to skip).
run() {
    want_rc=$1 want_line=$2
    shift 2
    "$E" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    [ "$rc" -eq "$want_rc" ] || fail "etagkv $*: exit $rc, wanted $want_rc ($(head -1 "$T/err"))"
    if [ "$want_line" != - ]; then
        got=$(tail -1 "$T/err" | cut -d' ' -f1)
        [ "$got" = "$want_line" ] || fail "etagkv $*: printed '$(tail -1 "$T/err")', wanted $want_line"
    fi
}

etag_of() {
    sed -n 's/^etag: //p' "$T/out"
}

# ---- usage errors: exit 2, nothing created ---------------------------------
run 2 - -d "$D" bogus k
run 2 - -d "$D" get
run 2 - -d "$D" get a b
run 2 - -d "$D" put k "$T/nofile" extra
run 2 - -d "$D" stats extra
run 2 - -d "$D" list -n ' -1'
run 2 - -d "$D" list -n ''
run 2 - -d "$D" list -n 5x
run 2 - -d "$D" list --if-match '"x"'
run 2 - -d "$D" stats -p a
run 2 - -d "$D" get k -t text/plain
run 2 - -d "$D" get k --if-modified-since 'Sun, 06 Nov 1994 08:49:37 GMT' \
    --if-modified-since 'Sun, 06 Nov 1994 08:49:37 GMT'
run 2 - -d "$D" -d "$D" stats
run 2 - -d "$D" --no-such-option stats
"$E" -d "$D" bogus 2>&1 | grep -q "unknown command 'bogus'" ||
    fail "no 'unknown command' message"
[ ! -e "$D" ] || fail "a usage error created $D"

# ---- the 412 round trip -----------------------------------------------------
printf 'one' >"$T/v1"
run 0 201 -d "$D" put k "$T/v1" -t text/plain
e1=$(etag_of)
[ -n "$e1" ] || fail "put printed no etag"
run 0 200 -d "$D" get k
[ "$(cat "$T/out")" = one ] || fail "get printed '$(cat "$T/out")'"
printf 'two' | "$E" -d "$D" put k - --if-match '"00000000000000000000000000000000"' \
    >"$T/out" 2>"$T/err"
rc=$?
if [ "$rc" -ne 1 ] || [ "$(cut -d' ' -f1 "$T/err")" != 412 ]; then
    fail "stale If-Match: exit $rc, $(cat "$T/err")"
fi
run 0 200 -d "$D" get k
[ "$(cat "$T/out")" = one ] || fail "a 412 changed the value"
# Repeated --if-match lines form one list, as in HTTP: one of them matches.
printf 'two' >"$T/v2"
run 0 200 -d "$D" put k "$T/v2" --if-match '"00000000000000000000000000000000"' \
    --if-match "$e1"
e2=$(etag_of)
run 1 304 -d "$D" get k --if-none-match '"ffffffffffffffffffffffffffffffff"' \
    --if-none-match "$e2"
run 0 200 -d "$D" head k
# A put replaces the whole record; without -t the type is the default.
grep -q '^content-type: application/octet-stream$' "$T/out" ||
    fail "head after put without -t: $(cat "$T/out")"
grep -q '^version: 2$' "$T/out" || fail "head: $(cat "$T/out")"
run 3 400 -d "$D" get k --if-match 'not-a-tag'
run 1 404 -d "$D" get nope

# ---- --if-revision (DESIGN §2): A->B->A fools If-Match, not the revision ----
run 0 201 -d "$D" put r "$T/v1"
rev_a=$(sed -n 's/^mod-revision: //p' "$T/out")
ea=$(etag_of)
run 0 200 -d "$D" put r "$T/v2"
run 0 200 -d "$D" put r "$T/v1"
run 1 412 -d "$D" put r "$T/v2" --if-revision "$rev_a"
run 0 200 -d "$D" put r "$T/v2" --if-match "$ea"
run 0 200 -d "$D" head r
rev_now=$(sed -n 's/^mod-revision: //p' "$T/out")
run 0 200 -d "$D" put r "$T/v1" --if-revision "$rev_now"
run 0 201 -d "$D" put r0 "$T/v1" --if-revision 0
run 1 412 -d "$D" put r0 "$T/v1" --if-revision 0
run 3 400 -d "$D" put r "$T/v1" --if-revision -1
run 3 400 -d "$D" put r "$T/v1" --if-revision 18446744073709551616
run 2 - -d "$D" put r "$T/v1" --if-revision 1 --if-revision 1
run 2 - -d "$D" list --if-revision 1
run 1 412 -d "$D" delete r --if-revision "$rev_now"
run 0 200 -d "$D" head r
run 0 204 -d "$D" delete r --if-revision "$(sed -n 's/^mod-revision: //p' "$T/out")"
run 0 204 -d "$D" delete r0

# ---- txn: the POST /txn body and reply (DESIGN §7) ----------------------------
printf '{"ops":[{"op":"put","key":"t1","value":"1"},{"op":"put","key":"t2","value":"2"}]}' >"$T/tx1"
run 0 200 -d "$D" txn "$T/tx1"
grep -q '"status": 201' "$T/out" || fail "txn: $(cat "$T/out")"
grep -q '"revision":' "$T/out" || fail "txn printed no revision"
run 0 200 -d "$D" get t2
[ "$(cat "$T/out")" = 2 ] || fail "txn did not write t2"
# A conflict: exit 1, the 409 problem with the failing index, nothing written.
printf '{"ops":[{"op":"delete","key":"t1"},{"op":"put","key":"t2","value":"x","if_none_match":"*"}]}' |
    "$E" -d "$D" txn - >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" -eq 1 ] || fail "conflicting txn: exit $rc ($(cat "$T/err"))"
grep -q '"failed": 1' "$T/out" || fail "conflict: $(cat "$T/out")"
grep -q '^409' "$T/err" || fail "conflict printed $(cat "$T/err")"
run 0 200 -d "$D" get t1
printf '{"ops":[{"op":"frob"}]}' >"$T/tx2"
run 3 400 -d "$D" txn "$T/tx2"
run 2 - -d "$D" txn
run 2 - -d "$D" txn "$T/tx1" --if-match '*'
run 0 204 -d "$D" delete t1
run 0 204 -d "$D" delete t2

# ---- list and delete ---------------------------------------------------------
run 0 201 -d "$D" put p/1 "$T/v1"
run 0 201 -d "$D" put p/2 "$T/v1"
run 0 200 -d "$D" list -p p/ -n 1
[ "$(cut -f1 "$T/out")" = p/1 ] || fail "list -p p/ -n 1 printed '$(cat "$T/out")'"
grep -q 'more records follow' "$T/err" || fail "list did not say more follow"
run 0 200 -d "$D" list -p p/ -a p/1
[ "$(cut -f1 "$T/out")" = p/2 ] || fail "list -a p/1 printed '$(cat "$T/out")'"
run 1 412 -d "$D" delete k --if-match "$e1"
run 0 204 -d "$D" delete k --if-match "$e2"
run 1 404 -d "$D" delete k
run 0 200 -d "$D" stats
grep -q '^records: 2$' "$T/out" || fail "stats: $(cat "$T/out")"

if [ "$fails" -ne 0 ]; then
    echo "test_cli.sh: $fails failure(s)" >&2
    exit 1
fi
echo "test_cli.sh: all passed"
