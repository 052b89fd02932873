#!/bin/sh
# check_api_docs.sh -- docs/api.md and include/etagkv.h describe the same
# API (as curl's checkdocs): every ETAGKV_API function declared in the
# header has its "## name" section, and every "## etagkv_..." section names
# something the header declares (a function, a type or a macro), so a
# removed function cannot keep its section.
#
#   check_api_docs.sh HEADER API_MD
#
# Exits 0 when they agree; otherwise lists each difference and exits 1.
set -eu

header=${1:?usage: check_api_docs.sh HEADER API_MD}
doc=${2:?usage: check_api_docs.sh HEADER API_MD}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Functions: a declaration starts a line with ETAGKV_API; its name is the
# identifier just before the first "(", which may be on a later line.
awk '
    /^ETAGKV_API[ \t]/ { decl = ""; open = 1 }
    open { decl = decl " " $0 }
    open && /\(/ {
        sub(/[ \t]*\(.*/, "", decl)
        sub(/.*[^A-Za-z0-9_]/, "", decl)
        print decl
        open = 0
    }
' "$header" | sort -u >"$tmp/functions"

# Everything else the header names: typedef'd types (struct/enum closers,
# opaque handles, function-pointer types) and macros.
{
    cat "$tmp/functions"
    grep -o '^} *[A-Za-z_][A-Za-z0-9_]*;' "$header" | tr -d '} ;'
    grep -o '^typedef struct [A-Za-z_][A-Za-z0-9_]* [A-Za-z_][A-Za-z0-9_]*;' \
        "$header" | sed 's/;$//; s/.* //'
    grep -o '(\*[A-Za-z_][A-Za-z0-9_]*)' "$header" | tr -d '(*)'
    grep -o '^#define [A-Za-z_][A-Za-z0-9_]*' "$header" | sed 's/.* //'
} | sort -u >"$tmp/declared"

# Section names: "## a, b, c" names a, b and c; only names of the API's
# own (etagkv_*, ETAGKV_*) count, so "## Conventions" is prose.
grep '^## ' "$doc" | sed 's/^## //' | tr ',' '\n' |
    sed 's/^[[:space:]]*//; s/[[:space:]]*$//' |
    grep -E '^(etagkv|ETAGKV)_[A-Za-z0-9_]*$' | sort -u >"$tmp/sections"

status=0
if [ ! -s "$tmp/functions" ]; then
    echo "check_api_docs: no ETAGKV_API function found in $header" >&2
    exit 1
fi
for f in $(comm -23 "$tmp/functions" "$tmp/sections"); do
    echo "$doc: no \"## $f\" section for the ETAGKV_API function in $header"
    status=1
done
for s in $(comm -23 "$tmp/sections" "$tmp/declared"); do
    echo "$doc: \"## $s\" names nothing that $header declares"
    status=1
done
[ "$status" -eq 0 ] &&
    echo "check_api_docs: $(wc -l <"$tmp/functions") functions, each with its section"
exit "$status"
