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
