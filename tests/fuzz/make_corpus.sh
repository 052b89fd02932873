#!/bin/sh
# make_corpus.sh -- write the seed corpora of the fuzz targets into
# tests/fuzz/corpus/<target>/, from rows of the unit-test tables
# (tests/lib/test_etag.c, tests/lib/test_httpdate.c, tests/lib/test_cond.c).
#
#   tests/fuzz/make_corpus.sh
#
# The seeds are committed; rerun this only to change them.  Each row is a
# printf format ('%b'-style escapes: \n separates lines, \0 is a NUL), so
# rows may hold any byte.  Files are named by target and row number.
# "$E" in the cond rows is fuzz_cond's placeholder, not a shell variable.
# shellcheck disable=SC2016
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)

n=0
seed() { # seed TARGET ROW
    n=$((n + 1))
    # shellcheck disable=SC2059 # the row is the format on purpose
    printf "$2" >"$HERE/corpus/$1/seed-$(printf %03d "$n")"
}

for t in taglist httpdate cond; do
    rm -rf "$HERE/corpus/$t"
    mkdir -p "$HERE/corpus/$t"
done

# ---- taglist: header lines of one If-Match field -----------------------------
n=0
for row in \
    '"xyzzy"' \
    'W/"xyzzy"' \
    '"xyzzy", "r2d2xxxx", "c3piozzzz"' \
    'W/"xyzzy", W/"r2d2xxxx", W/"c3piozzzz"' \
    '"a", W/"b"' \
    '"a","b","c"' \
    '"a"\t,\t"b"  ,   "c"' \
    ' \t "a" \t ' \
    ', "a",, "b" ,' \
    '"a",,,, ,\t,' \
    '""' \
    'W/""' \
    '"*"' \
    '"!#$%%&'"'"'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~"' \
    '"a,b", "c"' \
    '"\200\377\303\251"' \
    '"W/"' \
    '*' \
    ' * ' \
    '*, "a"' \
    '"a", *' \
    '**' \
    'W/*' \
    'xyzzy' \
    '"xyzzy' \
    'W/ "a"' \
    'w/"x"' \
    '"a" "b"' \
    '"a";q=1' \
    '"a\\"b"' \
    '"a\001"' \
    '"a\0b"' \
    '"a",\r\n "b"' \
    '' \
    ' , ,, \t,' \
    '"a"\n"b"\nW/"c"' \
    '*\n*' \
    '"a"\n*' \
    '*\n"a"' \
    '"a", "b"\n\n"c"' \
    '"562591323b675829dedb980100c87e72"' \
    '"562591323b675829dedb980100c87e72"\nW/"562591323b675829dedb980100c87e72"' \
    'W/"562591323b675829dedb980100c87e72", "be9052674d3a7ac4b564a48862bc4a0d"'; do
    seed taglist "$row"
done

# ---- httpdate: one field value ---------------------------------------------
n=0
for row in \
    'Sun, 06 Nov 1994 08:49:37 GMT' \
    'Sunday, 06-Nov-94 08:49:37 GMT' \
    'Sun Nov  6 08:49:37 1994' \
    'Wed Nov 16 08:49:37 1994' \
    'Sun Nov 6 08:49:37 1994' \
    'Thu, 29 Feb 2024 00:00:00 GMT' \
    'Wed, 29 Feb 2023 00:00:00 GMT' \
    'Mon, 29 Feb 2100 00:00:00 GMT' \
    'Thu, 31 Apr 2025 00:00:00 GMT' \
    'Thu, 01 Jan 1970 00:00:00 GMT' \
    'Wed, 31 Dec 1969 23:59:59 GMT' \
    'Mon, 01 Jan 0001 00:00:00 GMT' \
    'Fri, 31 Dec 9999 23:59:59 GMT' \
    'Sat, 01 Jan 0000 00:00:00 GMT' \
    'Tue, 19 Jan 2038 03:14:08 GMT' \
    'Fri, 15 Oct 1582 00:00:00 GMT' \
    'Sun, 06 Nov 1994 24:00:00 GMT' \
    'Sat, 31 Dec 2016 23:59:60 GMT' \
    'Saturday, 31-Dec-16 23:59:60 GMT' \
    'Sat Dec 31 23:59:60 2016' \
    'Sun, 06 nov 1994 08:49:37 GMT' \
    'Sun, 06 Nov 1994 08:49:37 UTC' \
    'Sun,  06 Nov 1994 08:49:37 GMT' \
    'Sunday, 06-Nov-1994 08:49:37 GMT' \
    'Mon, 06 Nov 1994 08:49:37 GMT' \
    'Thursday, 29-Feb-24 00:00:00 GMT' \
    'Friday, 01-Jan-99 00:00:00 GMT' \
    'Monday, 01-Jan-74 00:00:00 GMT' \
    '\t \tSun, 06 Nov 1994 08:49:37 GMT\t \t' \
    '\r\nSun, 06 Nov 1994 08:49:37 GMT' \
    'Sun, 06 Nov 1994 08:49:37 GMT\0' \
    'Sun Nov \0006 08:49:37 1994' \
    'Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT' \
    '' \
    ' \t ' \
    'yesterday' \
    '\377\377\377\377\377\377\377\177' \
    '\0\0\0\0\0\0\0\0' \
    '\001\002\003\004\005\006\007\010'; do
    seed httpdate "$row"
done

# ---- cond: request line, then If-Match, If-None-Match, IMS, IUS --------------
# Dates: T0 = Sun, 06 Nov 1994 08:49:37 GMT is key 0's Last-Modified; key 2
# was modified a day before; the clock stands at T0 + 10 s.
EQ='Sun, 06 Nov 1994 08:49:37 GMT'
BEFORE='Sun, 06 Nov 1994 08:49:36 GMT'
AFTER='Sun, 06 Nov 1994 08:49:38 GMT'
ASC='Sun Nov  6 08:49:37 1994'
R850='Sunday, 06-Nov-94 08:49:36 GMT'
n=0
for row in \
    'G' \
    'Pnew' \
    'D' \
    'H' \
    'G\n*' \
    'G\n"$E"' \
    'G\nW/"$E"' \
    'G\n"other", "$E"' \
    'Pv2\n"$E"' \
    'Pv3\nW/"$E"' \
    'Pv3\n"other"' \
    'Pv3\n*' \
    'D\n"$E"' \
    'D\n"other"' \
    'Pv3\n"$E"\n-\n-\n-\n"x"' \
    'G\n-\n"$E"' \
    'G\n-\nW/"$E"' \
    'G\n-\n*' \
    'H\n-\n"a", W/"$E"' \
    'Pcreate\n-\n*' \
    'D\n-\n*' \
    'Pv3\n-\n"other"' \
    "G\n-\n-\n-\n$BEFORE" \
    "Pv3\n-\n-\n-\n$EQ" \
    "Pv3\n-\n-\n-\n$ASC" \
    "Pv3\n-\n-\n-\n$R850" \
    "D\n-\n-\n-\n$BEFORE" \
    'Pv3\n-\n-\n-\nyesterday' \
    "G\n-\n-\n$EQ" \
    "G\n-\n-\n$AFTER" \
    "G\n-\n-\n$BEFORE" \
    "H\n-\n-\n$ASC" \
    "G\n-\n\"other\"\n$AFTER" \
    "Pv3\n\"\$E\"\n-\n-\n$BEFORE" \
    'G\n"$E"\n"$E"' \
    'Pv3\n"$E"\n"$E"' \
    "Pv3\n*\n\"other\"\n$AFTER\n$BEFORE" \
    'Pv3\n*, "a"' \
    'Pv3\n"a" "b"' \
    'Pv3\n' \
    'G\n*\n-\n-\n-\n*' \
    "Pv3\n-\n-\n-\n$EQ\n-\n-\n-\n$EQ" \
    'Pv3\n"a"\n-\n-\n-\n"$E"' \
    'P\n"$E"' \
    'X\n"$E"\n*'; do
    seed cond "$row"
done
