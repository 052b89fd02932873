#!/bin/sh
# recipes_test.sh lock|leader EXAMPLES_DIR URL -- run a recipe of
# docs/recipes.md (lock.sh, leader.sh) against the real server at URL, as a
# person would in several terminals, killing the holder with SIGKILL.
# Run by CTest through with-server.sh.  The bounds on waits are generous
# (a loaded machine, a sanitizer build): what they tell apart is "freed by
# the lease's expiry" from "never freed".
set -eu
mode=$1
dir=$2
url=$3
tmp=$(mktemp -d)
# Each "terminal" is started with setsid (a process group of its own, led
# by its shell), so that killing its shell alone is what a SIGKILL of a
# terminal's shell does, and the cleanup still kills what it left behind.
pids=""
cleanup() {
    for p in $pids; do kill -KILL "-$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "recipes_test.sh $mode: $*" >&2
    for f in "$tmp"/*; do [ -s "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }; done
    exit 1
}

now_ms() { date +%s%3N; }

# Wait up to $1 seconds for the command after it to succeed.
await() {
    limit=$(($(now_ms) + $1 * 1000))
    shift
    until "$@"; do
        [ "$(now_ms)" -lt "$limit" ] || return 1
        sleep 0.05
    done
}

lock_test() {
    # A TTL that survives a renewal a few seconds late (a sanitizer
    # server on a loaded machine), and a wait longer than it.
    export ETAGKV_LOCK_TTL_MS=6000
    # Terminal 1 takes the lock and works for a long time.
    setsid sh "$dir/lock.sh" "$url" job sleep 120 2>"$tmp/holder.err" &
    holder=$!
    pids="$pids $holder"
    await 30 curl -sf -o /dev/null "$url/kv/locks/job" || fail "no holder"
    # Terminal 2 waits for it (a create-only PUT that the server holds).
    setsid sh "$dir/lock.sh" "$url" job sh -c "echo got >'$tmp/waiter.out'" \
        2>"$tmp/waiter.err" &
    waiter=$!
    pids="$pids $waiter"
    # The holder renews: past a TTL and more the lock is still its own.
    sleep 8
    [ ! -e "$tmp/waiter.out" ] || fail "the waiter got a renewed lock"
    # SIGKILL of the holder's shell only, as closing its terminal would:
    # its renewer notices, and the lease expires.
    kill -KILL "$holder"
    t0=$(now_ms)
    await 30 test -s "$tmp/waiter.out" || fail "the lock was never freed"
    echo "lock: the waiter got the lock $(($(now_ms) - t0)) ms after the" \
        "holder's SIGKILL (TTL $ETAGKV_LOCK_TTL_MS ms)"
    wait "$waiter" || fail "the waiter failed"
    # The waiter released it: the lock key is gone.
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/kv/locks/job")" = 404 ] ||
        fail "the lock is still held after the waiter released it"
}

leader_of() { curl -sf "$url/kv/leader" || true; }
# Sets $leader to who leads now, when that is someone other than $1.
is_led_by_other_than() { leader=$(leader_of); [ -n "$leader" ] && [ "$leader" != "$1" ]; }
config_by() { curl -sf "$url/kv/config" | grep -q "^$1 token $2 tick"; }

# POST /txn as the leader of token $1 would; prints the status.
fenced_write() {
    curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "{\"ops\":[{\"op\":\"check\",\"key\":\"leader\",\"if_revision\":$1},
            {\"op\":\"put\",\"key\":\"config\",\"value\":\"$2\"}]}" "$url/txn"
}

leader_test() {
    # As for the lock: a TTL that survives a renewal a few seconds late.
    export ETAGKV_LEADER_TTL_MS=6000
    for n in a b c; do
        setsid sh "$dir/leader.sh" "$url" "$n" >"$tmp/$n.out" 2>"$tmp/$n.err" &
        eval "pid_$n=$!"
        pids="$pids $!"
    done
    await 30 is_led_by_other_than "" || fail "nobody was elected"
    first=$leader
    # The key exists a moment before its creator has read the reply.
    await 30 grep -q "leads with token" "$tmp/$first.out" ||
        fail "$first leads but printed nothing"
    token1=$(sed -n "s/^$first leads with token //p" "$tmp/$first.out")
    [ -n "$token1" ] || fail "$first leads but printed no token"
    await 30 config_by "$first" "$token1" || fail "no fenced write by $first"
    kill -KILL "$(eval echo "\$pid_$first")"
    await 30 is_led_by_other_than "$first" || fail "nobody took over from $first"
    second=$leader
    await 30 grep -q "leads with token" "$tmp/$second.out" ||
        fail "$second leads but printed nothing"
    token2=$(sed -n "s/^$second leads with token //p" "$tmp/$second.out")
    [ "$token2" -gt "$token1" ] || fail "token $token2 after $token1"
    await 30 config_by "$second" "$token2" || fail "no fenced write by $second"
    # The deposed leader's late write, under its old token: refused.
    [ "$(fenced_write "$token1" "$first late")" = 409 ] ||
        fail "a write under the old token $token1 was not refused"
    curl -sf "$url/kv/config" | grep -q "^$second token $token2" ||
        fail "the late write changed the config"
    echo "leader: $first (token $token1) killed, $second took over" \
        "(token $token2); a write under token $token1 got 409"
}

case $mode in
lock) lock_test ;;
leader) leader_test ;;
*) echo "usage: recipes_test.sh lock|leader EXAMPLES_DIR URL" >&2; exit 2 ;;
esac
