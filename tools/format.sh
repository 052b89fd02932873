#!/bin/sh
# format.sh -- apply .clang-format to every C file in the tree, or with
# --check only list the files that differ from it (exit 1 if any does).
#
#   tools/format.sh [--check]
#
# Installs Debian's clang-format (14 on Debian 12) when missing.  The test
# script runs --check, so a commit that is not formatted fails CI.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/tools/install.sh" format clang-format
cd "$ROOT"
# Tracked files and new ones not yet added (but not ignored ones).
files=$(git ls-files --cached --others --exclude-standard '*.c' '*.h')
if [ "${1:-}" != "--check" ]; then
    # shellcheck disable=SC2086 # a list of files
    clang-format -i $files
    exit 0
fi
bad=0
for f in $files; do
    if ! clang-format "$f" | cmp -s - "$f"; then
        echo "format: $f differs from .clang-format (tools/format.sh fixes it)" >&2
        bad=1
    fi
done
exit "$bad"
