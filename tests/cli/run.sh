# run.sh -- sourced by the tool's test scripts (test_cli.sh,
# test_cli_etcd.sh): the temporary directory T (removed on exit), and
# fail and run.  E (the tool) must be set before sourcing.
T=$(mktemp -d "${TMPDIR:-/tmp}/etagkv-cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
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

# same_record SRC DST KEY: after `etagkv -d SRC copy DST`, KEY (percent-
# encoded) shows the same etag, last-modified, content-type, size,
# created-ns and modified-ns in both stores (revisions and version are
# the destination's own), and the same value.
same_record() {
    for store in "$1" "$2"; do
        "$E" -d "$store" head --pct "$3" 2>/dev/null |
            grep -E '^(etag|last-modified|content-type|size|created-ns|modified-ns):' \
                >"$T/rec.$store_n" || fail "head --pct $3 in $store"
        "$E" -d "$store" get --pct "$3" >"$T/val.$store_n" 2>/dev/null ||
            fail "get --pct $3 in $store"
        store_n=$((store_n + 1))
    done
    a=$((store_n - 2)) b=$((store_n - 1))
    [ "$(wc -l <"$T/rec.$a")" -eq 6 ] || fail "head --pct $3 in $1: $(cat "$T/rec.$a")"
    cmp -s "$T/rec.$a" "$T/rec.$b" ||
        fail "copied $3 differs: $(diff "$T/rec.$a" "$T/rec.$b" | tr '\n' ' ')"
    cmp -s "$T/val.$a" "$T/val.$b" || fail "copied $3: the value differs"
}
store_n=0
