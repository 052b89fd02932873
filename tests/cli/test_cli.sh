#!/bin/sh
# test_cli.sh -- the command-line tool (cli/) end to end on a real store:
# outcomes as HTTP status lines and exit statuses, conditions, usage errors
# that open and create nothing, reads that never create a store, keys of any
# bytes (--pct), streamed values with their size limit, idempotency keys,
# backup / restore / verify under a concurrent write load (issue 16), and
# copy into another store (issue 17).
#
#   tests/cli/test_cli.sh PATH/TO/etagkv   (CTest passes the built binary)
set -u
E=${1:?usage: test_cli.sh PATH/TO/etagkv}
# shellcheck source=tests/cli/run.sh
. "$(dirname "$0")/run.sh"
D="$T/store"

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
run 2 - -d "$D" list -n 0 # as HTTP's limit=0 is 400; no limit is no -n
run 2 - -d "$D" list --if-match '"x"'
run 2 - -d "$D" stats -p a
run 2 - -d "$D" get k -t text/plain
run 2 - -d "$D" get k --if-modified-since 'Sun, 06 Nov 1994 08:49:37 GMT' \
    --if-modified-since 'Sun, 06 Nov 1994 08:49:37 GMT'
# A date that is no HTTP-date is a typo here, not a condition to ignore
# (it made the put unconditional), and an empty idempotency key is none.
echo small >"$T/small"
run 2 - -d "$D" put k "$T/small" --if-unmodified-since '2001-01-01'
run 2 - -d "$D" get k --if-modified-since 'yesterday'
run 2 - -d "$D" put k "$T/small" -i ''
# Checked before the store is opened, so none is created: a lease verb or
# number, --lease, a transaction body (400, exit 3 as the store's answer);
# and a lease read or renewal needs a store.
run 2 - -d "$D" lease foo 5
run 2 - -d "$D" lease grant abc
run 2 - -d "$D" lease grant 5
run 2 - -d "$D" lease grant 86400001
run 2 - -d "$D" lease show 5
run 2 - -d "$D" lease keepalive 5
run 2 - -d "$D" lease revoke 5
run 2 - -d "$D" put k "$T/small" --lease abc
echo '{bad' >"$T/badtxn"
run 3 400 -d "$D" txn "$T/badtxn"
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
# A malformed condition is a usage error, like any bad option.
run 2 - -d "$D" get k --if-match 'not-a-tag'
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
# A malformed revision is a usage error (exit 2), as any bad condition is.
run 2 - -d "$D" put r "$T/v1" --if-revision -1
run 2 - -d "$D" put r "$T/v1" --if-revision 18446744073709551616
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
! grep -q '"value"' "$T/out" || fail "a conflict without --values: $(cat "$T/out")"
run 0 200 -d "$D" get t1
# --values: the conflict carries every existing key's current value, for the
# rebase (Prefer: return=representation on POST /txn).
printf '{"ops":[{"op":"put","key":"t1","value":"x","if_none_match":"*"},{"op":"check","key":"t2"},{"op":"check","key":"absent"}]}' |
    "$E" -d "$D" txn - --values >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" -eq 1 ] || fail "txn --values: exit $rc ($(cat "$T/err"))"
[ "$(grep -c '"value":' "$T/out")" -eq 2 ] &&
    grep -q '"value": "1"' "$T/out" && grep -q '"value": "2"' "$T/out" ||
    fail "txn --values: $(cat "$T/out")"
run 2 - -d "$D" get t1 --values
# Past the transaction's byte bound (16 MiB) the values are left out, and
# stderr says so.
head -c $((17 << 20)) /dev/zero | "$E" -d "$D" --nosync put big - 2>/dev/null ||
    fail "put big"
printf '{"ops":[{"op":"check","key":"big","if_none_match":"*"}]}' |
    "$E" -d "$D" txn - --values >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" -eq 1 ] && ! grep -q '"value"' "$T/out" &&
    grep -q 'carries no values' "$T/err" ||
    fail "txn --values past the bound: exit $rc, $(cat "$T/err")"
run 0 204 -d "$D" delete big
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

# ---- permissions: the store is its owner's alone ----------------------------
# Under the usual umask 022, the directory is 0700 and the files 0600.
(umask 022 && printf v | "$E" -d "$T/owner-only" put k - >/dev/null 2>&1) ||
    fail "put on a new store failed"
for f in "$T/owner-only" "$T/owner-only/data.mdb" "$T/owner-only/lock.mdb"; do
    m=$(stat -c %a "$f")
    case $f in
    */owner-only) want=700 ;;
    *) want=600 ;;
    esac
    [ "$m" = "$want" ] || fail "$f has mode $m, wanted $want"
done
# ---- issue 16: reads never create a store -------------------------------------
for cmd in "get k" "head k" "list" "stats" "verify" "delete k"; do
    # shellcheck disable=SC2086
    run 2 - -d "$T/typo" $cmd
    [ ! -e "$T/typo" ] || fail "etagkv -d typo $cmd created $T/typo"
    grep -q 'directory does not exist' "$T/err" ||
        fail "$cmd on a missing directory: $(cat "$T/err")"
done
mkdir "$T/empty"
for cmd in "get k" "list" "stats" "delete k"; do
    # shellcheck disable=SC2086
    run 2 - -d "$T/empty" $cmd
    grep -q 'no store here' "$T/err" || fail "$cmd on an empty directory: $(cat "$T/err")"
done
[ -z "$(ls -A "$T/empty")" ] || fail "a read created files: $(ls -A "$T/empty")"

# ---- keys of any bytes: --pct in, percent-encoded out ------------------------
run 0 201 -d "$D" put --pct 'a%00b' "$T/v1"
run 0 201 -d "$D" put --pct 'esc%1B%5B31m%09tab%0Anl%25' "$T/v2"
run 0 200 -d "$D" get --pct 'a%00b'
[ "$(cat "$T/out")" = one ] || fail "get --pct a%00b printed '$(cat "$T/out")'"
run 1 404 -d "$D" get a # the key "a" is not the key "a\0b"
run 0 200 -d "$D" list
grep -q '^a%00b	' "$T/out" || fail "list does not show a%00b: $(cat "$T/out")"
grep -q '^esc%1B%5B31m%09tab%0Anl%25	' "$T/out" ||
    fail "list does not escape: $(cat "$T/out")"
if LC_ALL=C grep -q "$(printf '[\001-\010\033]')" "$T/out"; then
    fail "list printed raw control bytes"
fi
[ "$(wc -l <"$T/out")" -eq 4 ] || fail "list: a key's newline split a line"
run 0 200 -d "$D" list --json
python3 - "$T/out" <<'PY' || fail "list --json: $(cat "$T/out")"
import json, sys
page = json.load(open(sys.argv[1]))
keys = {k["key_pct"]: k for k in page["keys"]}
assert keys["a%00b"]["key"] == "a\u0000b", keys
assert keys["a%00b"]["size"] == 3 and keys["a%00b"]["etag"].startswith('"')
assert page["next"] is None
# The server's page: the snapshot's revision first, to watch from.
assert list(page)[0] == "revision" and page["revision"] >= 1, page
PY
run 0 200 -d "$D" list --json -n 1
python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); assert p["next"]=="a%00b", p' \
    "$T/out" || fail "list --json -n 1: $(cat "$T/out")"
run 0 200 -d "$D" list --pct -a 'a%00b' -n 1
[ "$(cut -f1 "$T/out")" = 'esc%1B%5B31m%09tab%0Anl%25' ] ||
    fail "list --pct -a a%00b: $(cat "$T/out")"
run 2 - -d "$D" get --pct 'a%0'
run 2 - -d "$D" get --pct 'a%zz'
run 2 - -d "$D" get --pct ''
run 2 - -d "$D" stats --pct
run 2 - -d "$D" get "$(head -c 512 /dev/zero | tr '\0' x)"

# ---- put: specific errors, and the size limit before reading ---------------
run 2 - -d "$D" put k "$T"
grep -q 'is a directory' "$T/err" || fail "put k DIR: $(cat "$T/err")"
run 2 - -d "$D" put k "$T/nofile"
grep -q 'No such file' "$T/err" || fail "put k nofile: $(cat "$T/err")"
run 2 - -d "$T/new" put k "$T/nofile"
[ ! -e "$T/new" ] || fail "a put with a bad FILE created the store"
# A file over the limit (64 MiB) is refused from its size: a sparse 1 TiB
# file is answered at once.  Under a 1 GiB address-space limit a tool that
# read it first would fail to allocate (sanitized builds reserve far more
# address space, so the limit is left off there).
truncate -s 1T "$T/huge"
limit_as=
if ! ldd "$E" 2>/dev/null | grep -q 'libasan\|libtsan'; then
    limit_as='ulimit -v 1048576;'
fi
sh -c "$limit_as exec \"\$0\" -d \"\$1\" put big \"\$2\"" "$E" "$D" "$T/huge" \
    >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" -eq 3 ] && grep -q '^413 ' "$T/err" || fail "put 1 TiB file: exit $rc, $(cat "$T/err")"
# A stream over the limit is refused after limit + 1 bytes, not read to its
# end: `yes` never ends.
sh -c "$limit_as yes | \"\$0\" -d \"\$1\" put big -" "$E" "$D" >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" -eq 3 ] && grep -q '^413 ' "$T/err" || fail "put endless stdin: exit $rc, $(cat "$T/err")"
head -c $((64 << 20)) /dev/zero >"$T/max"
run 0 201 -d "$D" put big "$T/max"
rm -f "$T/huge" "$T/max"
run 0 204 -d "$D" delete big
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
    # Permission denied, and another user's store, as user nobody, who
    # must be able to reach $T: the scratch directory above it may have
    # been made 0700 by another suite.
    chmod 755 "$T"
    chmod a+x "$(dirname "$T")"
    printf secret >"$T/private" && chmod 600 "$T/private"
    setpriv --reuid=65534 --regid=65534 --clear-groups "$E" -d "$T/other" put k "$T/private" \
        >"$T/out" 2>"$T/err"
    rc=$?
    [ "$rc" -eq 2 ] && grep -q 'Permission denied' "$T/err" ||
        fail "put of an unreadable file: exit $rc, $(cat "$T/err")"
    chmod -R a+rX "$D"
    setpriv --reuid=65534 --regid=65534 --clear-groups "$E" -d "$D" get p/1 \
        >"$T/out" 2>"$T/err"
    rc=$?
    [ "$rc" -eq 0 ] && [ "$(cat "$T/out")" = one ] ||
        fail "get from another user's store: exit $rc, $(cat "$T/err")"
    setpriv --reuid=65534 --regid=65534 --clear-groups "$E" -d "$D" put p/1 "$T/v2" \
        >"$T/out" 2>"$T/err"
    [ $? -eq 3 ] || fail "put into another user's store: $(cat "$T/err")"
else
    echo "test_cli.sh: SKIPPED the other-user checks (needs root and setpriv)" >&2
fi

# ---- --version, --idempotency-key ----------------------------------------------
run 0 - --version
grep -q "^etagkv [0-9.]* (libetagkv [0-9.]*)$" "$T/out" || fail "--version: $(cat "$T/out")"
run 0 201 -d "$D" put idem "$T/v1" --idempotency-key op-1
r1=$(sed -n 's/^mod-revision: //p' "$T/out")
run 0 201 -d "$D" put idem "$T/v1" --idempotency-key op-1
grep -q '^idempotent-replayed: true$' "$T/out" || fail "no replay: $(cat "$T/out")"
[ "$(sed -n 's/^mod-revision: //p' "$T/out")" = "$r1" ] || fail "the replay wrote again"
run 1 422 -d "$D" put idem "$T/v2" --idempotency-key op-1
run 0 204 -d "$D" delete idem -i op-2
run 0 204 -d "$D" delete idem -i op-2
run 2 - -d "$D" get idem -i op-3

# ---- backup under a concurrent write load, restore, verify -------------------
# A writer loop logs every acknowledged write (key, mod-revision, value);
# the backup is taken while it runs.  The restored copy must verify and
# hold, for every key, exactly the last logged write at or below its
# revision, and everything acknowledged before the backup began.
B="$T/bstore"
run 0 201 -d "$B" put w/0 "$T/v1"
: >"$T/log"
(
    i=0
    while [ ! -e "$T/stop" ] && [ "$i" -lt 2000 ]; do
        i=$((i + 1))
        k="w/$((i % 17))"
        echo "v$i" >"$T/wv"
        if "$E" -d "$B" --nosync put "$k" "$T/wv" >"$T/wout" 2>/dev/null; then
            echo "$k $(sed -n 's/^mod-revision: //p' "$T/wout") v$i" >>"$T/log"
        fi
    done
) &
writer=$!
i=0
while [ "$(wc -l <"$T/log")" -lt 40 ]; do
    i=$((i + 1))
    if [ "$i" -ge 600 ]; then
        fail "the writer made fewer than 40 writes in 60 s"
        break
    fi
    sleep 0.1
done
before=$(wc -l <"$T/log")
run 0 200 -d "$B" backup "$T/bk"
touch "$T/stop"
wait "$writer"
[ "$(wc -l <"$T/log")" -gt "$before" ] || fail "the writer did not run during the backup"
run 0 200 -d "$T/restored" restore "$T/bk"
rev=$(sed -n 's/^revision: //p' "$T/out")
run 0 200 -d "$T/restored" verify
head -n "$before" "$T/log" | while read -r k r v; do
    [ "$r" -le "$rev" ] || echo "acknowledged before the backup: $k $r" >>"$T/bad"
done
awk -v rev="$rev" '$2 <= rev { last[$1] = $3 } END { for (k in last) print k, last[k] }' \
    "$T/log" | sort >"$T/expect"
for k in $(cut -d' ' -f1 "$T/expect"); do
    "$E" -d "$T/restored" get "$k" 2>/dev/null | sed "s|^|$k |"
done | sort >"$T/got"
cmp -s "$T/expect" "$T/got" || fail "restored records differ from the log: $(diff "$T/expect" "$T/got" | head -5)"
[ ! -s "$T/bad" ] || fail "$(cat "$T/bad")"
# The stream form, restored from stdin.
printf 'damage-me-please' >"$T/vd"
run 0 201 -d "$B" put damage "$T/vd"
"$E" -d "$B" backup - >"$T/b.mdb" 2>"$T/err" || fail "backup -: $(cat "$T/err")"
run 0 200 -d "$T/r2" restore - <"$T/b.mdb"
run 2 - -d "$T/r2" restore "$T/bk"  # not empty
run 2 - -d "$B" backup "$T/bk"      # never overwrites
run 2 - -d "$T/r3" restore "$T/nofile"
[ ! -e "$T/r3" ] || fail "a failed restore left $T/r3"
# A damaged backup does not restore, and verify says which key.
cp "$T/b.mdb" "$T/bad.mdb"
off=$(grep -abo 'damage-me-please' "$T/bad.mdb" | head -1 | cut -d: -f1)
if [ -n "$off" ]; then
    printf 'X' | dd of="$T/bad.mdb" bs=1 seek="$off" conv=notrunc 2>/dev/null
    run 3 500 -d "$T/r4" restore "$T/bad.mdb"
    grep -q 'does not hash to its stored ETag' "$T/err" || fail "restore of a damaged copy: $(cat "$T/err")"
    [ ! -e "$T/r4" ] || fail "a restore that failed to verify left $T/r4"
else
    fail "no value found to damage in the backup"
fi
# A backup cut short -- here by the file size limit -- leaves no file to
# pass for a store (and the tool reports it instead of dying of SIGXFSZ);
# a store file cut short (a broken pipe into restore) is refused as
# truncated and removed, not a crash (SIGBUS) on its first missing page.
size=$(wc -c <"$T/b.mdb")
lim=$((size / 2048))
[ "$lim" -ge 1 ] || fail "backup too small to cut: $size bytes"
(
    ulimit -f "$lim"
    exec "$E" -d "$B" backup "$T/bk2"
) >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" -eq 3 ] || fail "backup past the file size limit: exit $rc, $(cat "$T/err")"
[ ! -e "$T/bk2" ] || fail "a backup cut short left $(ls -A "$T/bk2")"
head -c $((size / 2)) "$T/b.mdb" >"$T/short.mdb"
run 3 500 -d "$T/r5" restore - <"$T/short.mdb"
grep -q 'truncated' "$T/err" || fail "restore of a truncated copy: $(cat "$T/err")"
[ ! -e "$T/r5" ] || fail "a restore of a truncated copy left $T/r5"
# What a restore killed half-way leaves (its temporary file) is named when
# the next restore into that directory is refused.
mkdir "$T/r6" && : >"$T/r6/data.mdb.restoring"
run 2 - -d "$T/r6" restore - <"$T/b.mdb"
grep -q 'data.mdb.restoring, left by a restore cut short' "$T/err" ||
    fail "restore over a leftover: $(cat "$T/err")"
# A store made in the directory while a restore writes there is never
# replaced: put refuses to create one beside data.mdb.restoring, and a
# data.mdb that appears all the same (another tool) makes the restore fail,
# leaving it as it is (the restore used to rename() over it).
mkfifo "$T/fifo"
"$E" -d "$T/r7" restore - <"$T/fifo" >"$T/r7.out" 2>"$T/r7.err" &
restorer=$!
exec 7>"$T/fifo"
for _ in $(seq 600); do
    [ -e "$T/r7/data.mdb.restoring" ] && break
    sleep 0.05
done
[ -e "$T/r7/data.mdb.restoring" ] || fail "the restore wrote no data.mdb.restoring in 30 s"
echo important >"$T/important"
run 2 - -d "$T/r7" put acked "$T/important"
grep -q 'a restore is writing a store here' "$T/err" ||
    fail "put beside a restore: $(cat "$T/err")"
cp "$T/b.mdb" "$T/r7/data.mdb"
cat "$T/b.mdb" >&7
exec 7>&-
wait $restorer
rc=$?
[ "$rc" -eq 3 ] || fail "restore over a store that appeared: exit $rc ($(cat "$T/r7.err"))"
grep -q 'a store was created there while the restore ran' "$T/r7.err" ||
    fail "restore over a store that appeared: $(cat "$T/r7.err")"
cmp -s "$T/b.mdb" "$T/r7/data.mdb" || fail "the store that appeared was changed"
[ ! -e "$T/r7/data.mdb.restoring" ] || fail "the restore left its temporary file"
# ---- standard output that cannot be written is a failure (exit 3) -------------
if [ -w /dev/full ]; then
    run 0 - -d "$D" put full-k "$T/v1"
    for args in "get full-k" "list" "list --json" "head full-k" "stats"; do
        # shellcheck disable=SC2086 # the words are the arguments
        "$E" -d "$D" $args >/dev/full 2>"$T/err"
        rc=$?
        [ "$rc" -eq 3 ] || fail "etagkv $args >/dev/full: exit $rc"
        grep -q 'writing standard output' "$T/err" || fail "etagkv $args >/dev/full: $(cat "$T/err")"
    done
fi
# ---- watch: another process's writes appear, one JSON line each ------------
# The store exists (a read never creates one) at revision 1; the watcher
# reads from after 1, so it sees the writes whenever it starts.
W=$T/w
printf x | "$E" -d "$W" --nosync put init - >/dev/null 2>&1 || fail "put init"
"$E" -d "$W" watch -p w/ -a 1 -n 2 >"$T/watch" 2>"$T/watch.err" &
watcher=$!
echo a | "$E" -d "$W" --nosync put w/a >/dev/null 2>&1
echo b | "$E" -d "$W" --nosync put other >/dev/null 2>&1
"$E" -d "$W" --nosync delete w/a >/dev/null 2>&1
wait $watcher || fail "watch exited $?"
[ "$(wc -l <"$T/watch")" -eq 2 ] || fail "watch printed '$(cat "$T/watch")'"
head -1 "$T/watch" | grep -q '^{"revision":2,"type":"put","etag":"\\"[0-9a-f]*\\"",.*"key":"w/a"}$' ||
    fail "watch first line: $(head -1 "$T/watch")"
tail -1 "$T/watch" | grep -q '^{"revision":4,"type":"delete","etag":null,.*"key":"w/a"}$' ||
    fail "watch last line: $(tail -1 "$T/watch")"
run 0 200 -d "$W" watch -a 0 -n 1 other
grep -q '"key":"other"' "$T/out" || fail "watch KEY -a 0: $(cat "$T/out")"
run 2 - -d "$W" watch -a x
# An after beyond the store's revision (4): another history; no rewind.
run 3 410 -d "$W" watch -a 50
grep -q "beyond the store's revision, 4" "$T/err" || fail "watch -a 50: $(cat "$T/err")"
[ ! -s "$T/out" ] || fail "watch -a 50 printed $(cat "$T/out")"

# ---- lease: grant, attach with put --lease, show, keepalive, revoke ----------
L=$T/l
run 0 201 -d "$L" --nosync lease grant 60000
grep -q '^{"id":"1","ttl_ms":60000}$' "$T/out" || fail "lease grant: $(cat "$T/out")"
echo v | "$E" -d "$L" --nosync put --lease 1 held >/dev/null 2>&1 || fail "put --lease"
run 0 200 -d "$L" lease show 1
grep -q '"keys":\["held"\]' "$T/out" || fail "lease show: $(cat "$T/out")"
run 0 200 -d "$L" --nosync lease keepalive 1
grep -q '"remaining_ms":60000' "$T/out" || fail "lease keepalive: $(cat "$T/out")"
run 1 409 -d "$L" --nosync put --lease 99 other /dev/null
run 2 - -d "$L" put --lease x other /dev/null
run 2 - -d "$L" get held --lease 1
run 0 204 -d "$L" --nosync lease revoke 1
grep -q '^revision: 2$' "$T/out" || fail "lease revoke: $(cat "$T/out")"
run 1 404 -d "$L" get held
run 1 404 -d "$L" lease show 1
run 2 - -d "$L" --nosync lease grant 5
run 2 - -d "$L" lease frob 1
run 2 - -d "$L" lease show 02 # an id has one spelling
run 0 201 -d "$L" --nosync lease grant 0600000 # a TTL is a number
grep -q '"ttl_ms":600000' "$T/out" || fail "lease grant 0600000: $(cat "$T/out")"

# ---- copy (issue 17): every record into an empty store, in pages ----------
# Binary keys, content types and times survive; a leased key is left out
# (its lease does not exist in the destination); 9 records in pages of 3.
C=$T/csrc
for i in 1 2 3 4 5 6 7; do
    printf 'value %s' "$i" | "$E" -d "$C" --nosync put "k$i" - -t text/plain \
        >/dev/null 2>&1 || fail "put k$i"
done
printf 'bin\000ary' >"$T/bin"
run 0 201 -d "$C" --nosync put --pct 'b%00%FF%0A' "$T/bin" -t 'application/x-b; q=1'
run 0 201 -d "$C" --nosync lease grant 600000
lease=$(sed -n 's/^{"id":"\([0-9]*\)".*/\1/p' "$T/out")
run 0 201 -d "$C" --nosync put --lease "$lease" leased "$T/v1"
run 0 200 -d "$C" stats
src_rev=$(sed -n 's/^revision: //p' "$T/out")
run 0 200 -d "$C" copy "$T/cdst" --page 3
for line in "source-revision: $src_rev" 'records: 8' 'value-bytes: 56' \
    'leased-skipped: 1' 'pages: 3' 'verified: 8' 'destination-revision: 3'; do
    grep -qx "$line" "$T/out" || fail "copy printed no '$line': $(cat "$T/out")"
done
for k in k1 k2 k3 k4 k5 k6 k7 b%00%FF%0A; do
    same_record "$C" "$T/cdst" "$k"
done
run 1 404 -d "$T/cdst" get leased
run 0 200 -d "$T/cdst" verify
# RFC 9110 §13.1.3: If-Modified-Since answers as before the copy.
run 0 200 -d "$C" head k1
lm=$(sed -n 's/^last-modified: //p' "$T/out")
run 1 304 -d "$C" get k1 --if-modified-since "$lm"
run 1 304 -d "$T/cdst" get k1 --if-modified-since "$lm"
# A destination with records is refused, and nothing is written to it.
printf z | "$E" -d "$T/full" --nosync put z - >/dev/null 2>&1 || fail "put z"
run 2 - -d "$C" copy "$T/full"
grep -q 'holds 1 records: copy only into an empty store' "$T/err" ||
    fail "copy into a store with records: $(cat "$T/err")"
run 0 200 -d "$T/full" stats
grep -qx 'records: 1' "$T/out" && grep -qx 'revision: 1' "$T/out" ||
    fail "a refused copy wrote: $(cat "$T/out")"
# Usage errors open and create nothing.
run 2 - -d "$C" copy "$C"
# The same directory spelt otherwise is still itself (LMDB forbids one
# process opening a store twice), even when the source is empty.
run 0 201 -d "$T/empty" put k "$T/v1"
run 0 204 -d "$T/empty" delete k
run 2 - -d "$T/empty" copy "$T/empty/."
grep -q 'into itself' "$T/err" || fail "copy into itself by another name: $(cat "$T/err")"
run 2 - -d "$C" copy "$T/c2" --page 0
run 2 - -d "$C" get k1 --page 3
run 2 - -d "$T/nosrc" copy "$T/c3"
[ ! -e "$T/c2" ] && [ ! -e "$T/c3" ] || fail "a refused copy created its destination"

if [ "$fails" -ne 0 ]; then
    echo "test_cli.sh: $fails failure(s)" >&2
    exit 1
fi
echo "test_cli.sh: all passed"
