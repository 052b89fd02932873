#!/bin/sh
# check-readme.sh README FILE -- exit 0 if the first ```c block after the
# "### In C" heading of README is FILE, byte for byte (CTest's
# example_readme: the README's C quick start is examples/quickstart.c and
# cannot drift from the program that is built and run).
set -eu
block=$(mktemp)
trap 'rm -f "$block"' EXIT
awk '/^### In C/ { f = 1 } f && /^```c$/ { p = 1; next }
     p && /^```$/ { exit } p' "$1" >"$block"
if ! cmp -s "$block" "$2"; then
    echo "check-readme: the C block under '### In C' in $1 differs from $2:" >&2
    diff -u "$2" "$block" >&2 || true
    exit 1
fi
