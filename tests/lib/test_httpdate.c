/*
 * test_httpdate.c -- HTTP-dates (RFC 9110 §5.6.7): the three input forms,
 * IMF-fixdate output, and the choices documented at the top of
 * lib/httpdate.c.
 *
 * Most cases are rows of {input, valid?, seconds since the epoch}, each
 * citing the rule it proves.  Every row is also parsed from a buffer that
 * ends at a PROT_NONE page, at every prefix length, so that reading one
 * byte too far crashes the test.  glibc's gmtime_r() and timegm() serve
 * only here, as an oracle independent of the library's own arithmetic.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* The oracle works in time_t; it must hold years 1..9999. */
_Static_assert(sizeof(time_t) == 8, "64-bit time_t required");

/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z. */
#define T_MIN INT64_C(-62135596800)
#define T_MAX INT64_C(253402300799)

/* The RFC's example instant: Sun, 06 Nov 1994 08:49:37 GMT. */
#define T_RFC INT64_C(784111777)

/* One table row.  len comes from the literal, so rows may hold NUL bytes.
 * A row with two_digit_year set is an RFC 850 date whose t assumes the
 * century written in its comment; the checker moves it to the century the
 * rule of RFC 9110 §5.6.7 picks for the current time. */
typedef struct row {
    const char *in;
    size_t len;
    int ok;
    int64_t t;
    int two_digit_year;
} row;

#define OK(s, t)                                                               \
    {                                                                          \
        s, sizeof(s) - 1, 1, INT64_C(t), 0                                     \
    }
#define BAD(s)                                                                 \
    {                                                                          \
        s, sizeof(s) - 1, 0, 0, 0                                              \
    }
#define OK850(s, t)                                                            \
    {                                                                          \
        s, sizeof(s) - 1, 1, INT64_C(t), 1                                     \
    }

typedef struct table {
    const char *name;
    const row *rows;
    size_t n;
} table;

#define TABLE(r)                                                               \
    {                                                                          \
#r, r, sizeof(r) / sizeof(r[0])                                        \
    }

/* ---- the tables --------------------------------------------------------- */

static const row rfc_examples[] = {
    /* RFC 9110 §5.6.7: the three forms of the same instant. */
    OK("Sun, 06 Nov 1994 08:49:37 GMT", 784111777),
    OK850("Sunday, 06-Nov-94 08:49:37 GMT", 784111777), /* 1994 */
    OK("Sun Nov  6 08:49:37 1994", 784111777),
};

static const row asctime_days[] = {
    /* RFC 9110 §5.6.7 date3: ( 2DIGIT / ( SP DIGIT ) ). */
    OK("Sun Nov  6 08:49:37 1994", 784111777),
    OK("Sun Nov 06 08:49:37 1994", 784111777),
    OK("Wed Nov 16 08:49:37 1994", 784975777),
    OK("Thu Jan  1 00:00:00 1970", 0),
    OK("Fri Dec 31 23:59:59 9999", 253402300799),
    BAD("Sun Nov 6 08:49:37 1994"),      /* one space, one digit */
    BAD("Sun Nov   6 08:49:37 1994"),    /* two spaces, one digit */
    BAD("Sun Nov  16 08:49:37 1994"),    /* space before two digits */
    BAD("Sun Nov 006 08:49:37 1994"),    /* three digits */
    BAD("Sun Nov  0 08:49:37 1994"),     /* day 0 */
    BAD("Sun Nov\t 6 08:49:37 1994"),    /* HTAB is not SP */
    BAD("Sun Nov  6 08:49:37 1994 GMT"), /* asctime has no zone */
};

static const row leap_days[] = {
    /* RFC 9110 §5.6.7 (a real Gregorian date): February 29 only in years
     * divisible by 4, except centuries not divisible by 400. */
    OK("Thu, 29 Feb 2024 00:00:00 GMT", 1709164800),
    BAD("Wed, 29 Feb 2023 00:00:00 GMT"),
    OK("Tue, 29 Feb 2000 12:00:00 GMT", 951825600),
    BAD("Thu, 29 Feb 1900 00:00:00 GMT"),
    BAD("Mon, 29 Feb 2100 00:00:00 GMT"),
    OK("Thu Feb 29 00:00:00 2024", 1709164800),
    BAD("Wed Feb 29 00:00:00 2023"),
    BAD("Thu, 30 Feb 2024 00:00:00 GMT"),
    OK("Tue, 28 Feb 2023 23:59:59 GMT", 1677628799),
};

static const row month_lengths[] = {
    /* RFC 9110 §5.6.7: day must exist in its month. */
    OK("Fri, 31 Jan 2025 00:00:00 GMT", 1738281600),
    OK("Wed, 30 Apr 2025 00:00:00 GMT", 1745971200),
    BAD("Thu, 31 Apr 2025 00:00:00 GMT"),
    BAD("Tue, 31 Jun 2025 00:00:00 GMT"),
    BAD("Wed, 31 Sep 2025 00:00:00 GMT"),
    BAD("Mon, 31 Nov 2025 00:00:00 GMT"),
    OK("Wed, 31 Dec 2025 00:00:00 GMT", 1767139200),
    BAD("Thu, 32 Dec 2025 00:00:00 GMT"),
    BAD("Thu, 00 Jan 2025 00:00:00 GMT"),
    BAD("Thu, 99 Jan 2025 00:00:00 GMT"),
};

static const row year_range[] = {
    /* RFC 9110 §5.6.7: 4DIGIT years; 0000 names no year (Gregorian). */
    OK("Thu, 01 Jan 1970 00:00:00 GMT", 0),
    OK("Wed, 31 Dec 1969 23:59:59 GMT", -1),
    OK("Thu, 01 Jan 1970 00:00:01 GMT", 1),
    OK("Mon, 01 Jan 0001 00:00:00 GMT", -62135596800),
    OK("Fri, 31 Dec 9999 23:59:59 GMT", 253402300799),
    BAD("Sun, 31 Dec 0000 23:59:59 GMT"),
    BAD("Sat, 01 Jan 0000 00:00:00 GMT"),
    BAD("Sat Jan  1 00:00:00 0000"),
    OK("Tue, 19 Jan 2038 03:14:08 GMT", 2147483648), /* past int32 */
};

static const row before_1970[] = {
    /* RFC 9110 §5.6.7 has no lower bound beyond the year's digits. */
    OK("Mon, 01 Jan 1900 00:00:00 GMT", -2208988800),
    OK("Sun, 31 Dec 1899 23:59:59 GMT", -2208988801),
    OK("Mon, 01 Jan 1601 00:00:00 GMT", -11644473600),
    OK("Mon Jan  1 00:00:00 1601", -11644473600),
    OK("Thu, 04 Jul 1776 12:00:00 GMT", -6106017600),
    OK("Fri, 15 Oct 1582 00:00:00 GMT", -12219292800),
};

static const row time_ranges[] = {
    /* RFC 9110 §5.6.7: hour 00-23, minute 00-59, second 00-60. */
    OK("Sun, 06 Nov 1994 23:59:59 GMT", 784166399),
    OK("Sun, 06 Nov 1994 00:00:00 GMT", 784080000),
    BAD("Sun, 06 Nov 1994 24:00:00 GMT"),
    BAD("Sunday, 06-Nov-94 24:00:00 GMT"),
    BAD("Sun Nov  6 24:00:00 1994"),
    BAD("Sun, 06 Nov 1994 08:60:00 GMT"),
    BAD("Sun, 06 Nov 1994 08:49:61 GMT"),
    BAD("Sun, 06 Nov 1994 99:99:99 GMT"),
    BAD("Sun, 06 Nov 1994 8:49:37 GMT"),    /* one-digit hour */
    BAD("Sun, 06 Nov 1994 08:49 GMT"),      /* no seconds */
    BAD("Sun, 06 Nov 1994 08:49:37.5 GMT"), /* no fractions */
    BAD("Sun, 06 Nov 1994 -8:49:37 GMT"),
    BAD("Sun, 06 Nov 1994 +8:49:37 GMT"),
};

static const row leap_seconds[] = {
    /* RFC 9110 §5.6.7 allows second 60 (a leap second); POSIX time cannot
     * hold it, so it reads as second 59. */
    OK("Sat, 31 Dec 2016 23:59:60 GMT", 1483228799),
    OK("Sat, 31 Dec 2016 23:59:59 GMT", 1483228799),
    OK850("Saturday, 31-Dec-16 23:59:60 GMT", 1483228799), /* 2016 */
    OK("Sat Dec 31 23:59:60 2016", 1483228799),
};

static const row case_rows[] = {
    /* RFC 9110 §5.6.7: "HTTP-date is case sensitive" (%s in the ABNF). */
    BAD("Sun, 06 nov 1994 08:49:37 GMT"),
    BAD("Sun, 06 NOV 1994 08:49:37 GMT"),
    BAD("sun, 06 Nov 1994 08:49:37 GMT"),
    BAD("SUN, 06 Nov 1994 08:49:37 GMT"),
    BAD("Sun, 06 Nov 1994 08:49:37 gmt"),
    BAD("Sun, 06 Nov 1994 08:49:37 Gmt"),
    BAD("sunday, 06-Nov-94 08:49:37 GMT"),
    BAD("Sunday, 06-nov-94 08:49:37 GMT"),
    BAD("Sunday, 06-Nov-94 08:49:37 gmt"),
    BAD("Sun nov  6 08:49:37 1994"),
    BAD("sun Nov  6 08:49:37 1994"),
};

static const row zones[] = {
    /* RFC 9110 §5.6.7: IMF-fixdate and rfc850-date end in "GMT". */
    BAD("Sun, 06 Nov 1994 08:49:37 UTC"),
    BAD("Sun, 06 Nov 1994 08:49:37 UT"),
    BAD("Sun, 06 Nov 1994 08:49:37 Z"),
    BAD("Sun, 06 Nov 1994 08:49:37 +0000"),
    BAD("Sun, 06 Nov 1994 08:49:37 GMT+1"),
    BAD("Sun, 06 Nov 1994 08:49:37 GMT GMT"),
    BAD("Sun, 06 Nov 1994 08:49:37"),
    BAD("Sun, 06 Nov 1994 08:49:37 "),
    BAD("Sunday, 06-Nov-94 08:49:37 UTC"),
    BAD("Sunday, 06-Nov-94 08:49:37"),
    BAD("Sun Nov  6 08:49:37 1994 UTC"),
    BAD("Sun Nov  6 08:49:37 UTC 1994"),
};

static const row separators[] = {
    /* RFC 9110 §5.6.7: IMF-fixdate is fixed-length, single SP only. */
    BAD("Sun,  06 Nov 1994 08:49:37 GMT"),
    BAD("Sun, 06  Nov 1994 08:49:37 GMT"),
    BAD("Sun, 06 Nov  1994 08:49:37 GMT"),
    BAD("Sun, 06 Nov 1994  08:49:37 GMT"),
    BAD("Sun, 06 Nov 1994 08:49:37  GMT"),
    BAD("Sun,06 Nov 1994 08:49:37 GMT"),
    BAD("Sun 06 Nov 1994 08:49:37 GMT"),
    BAD("Sun, 06-Nov-1994 08:49:37 GMT"),
    BAD("Sun, 06/Nov/1994 08:49:37 GMT"),
    BAD("Sun,\t06 Nov 1994 08:49:37 GMT"),
    BAD("Sun, 06 Nov 1994 08.49.37 GMT"),
    BAD("Sun, 06 Nov 1994 08:49-37 GMT"),
    BAD("Sun, 6 Nov 1994 08:49:37 GMT"),
    BAD("Sun, 06 November 1994 08:49:37 GMT"),
    BAD("Sun; 06 Nov 1994 08:49:37 GMT"),
    BAD("Sun, 06 Nov 1994 08:49:37 GMT,"),
    /* RFC 9110 §5.6.7 rfc850-date: "-" between day, month and year. */
    BAD("Sunday, 06 Nov 94 08:49:37 GMT"),
    BAD("Sunday, 06/Nov/94 08:49:37 GMT"),
    BAD("Sunday, 06-Nov 94 08:49:37 GMT"),
    BAD("Sunday,06-Nov-94 08:49:37 GMT"),
    BAD("Sunday 06-Nov-94 08:49:37 GMT"),
    BAD("Sunday,  06-Nov-94 08:49:37 GMT"),
    BAD("Sunday, 6-Nov-94 08:49:37 GMT"),
    /* RFC 9110 §5.6.7 asctime-date: SP only, no comma. */
    BAD("Sun, Nov  6 08:49:37 1994"),
    BAD("Sun  Nov  6 08:49:37 1994"),
    BAD("Sun Nov  6  08:49:37 1994"),
    BAD("Sun Nov  6 08:49:37  1994"),
    BAD("Sun-Nov-06 08:49:37 1994"),
    BAD("Sun Nov  6 08:49:37\t1994"),
};

static const row year_digits[] = {
    /* RFC 9110 §5.6.7: 4DIGIT in IMF-fixdate and asctime, 2DIGIT in
     * rfc850-date; the wrong one in any form is invalid. */
    BAD("Sun, 06 Nov 94 08:49:37 GMT"),
    BAD("Sun, 06 Nov 994 08:49:37 GMT"),
    BAD("Sun, 06 Nov 01994 08:49:37 GMT"),
    BAD("Sun, 06 Nov 11994 08:49:37 GMT"),
    BAD("Sunday, 06-Nov-1994 08:49:37 GMT"),
    BAD("Sunday, 06-Nov-994 08:49:37 GMT"),
    BAD("Sunday, 06-Nov-4 08:49:37 GMT"),
    BAD("Sun Nov  6 08:49:37 94"),
    BAD("Sun Nov  6 08:49:37 994"),
    BAD("Sun Nov  6 08:49:37 01994"),
    BAD("Sun, 06 Nov -994 08:49:37 GMT"),
    BAD("Sun, 06 Nov +994 08:49:37 GMT"),
    BAD("Sun, 06 Nov 1 994 08:49:37 GMT"),
};

static const row day_names[] = {
    /* RFC 9110 §5.6.7: the day name must be one the form allows; whether it
     * is the date's weekday is not checked (see lib/httpdate.c). */
    OK("Mon, 06 Nov 1994 08:49:37 GMT", 784111777),
    OK("Sat, 06 Nov 1994 08:49:37 GMT", 784111777),
    OK850("Friday, 06-Nov-94 08:49:37 GMT", 784111777), /* 1994 */
    OK("Tue Nov  6 08:49:37 1994", 784111777),
    BAD("Xyz, 06 Nov 1994 08:49:37 GMT"),
    BAD("Su, 06 Nov 1994 08:49:37 GMT"),
    BAD(", 06 Nov 1994 08:49:37 GMT"),
    BAD("06 Nov 1994 08:49:37 GMT"),
    BAD("Sunday, 06 Nov 1994 08:49:37 GMT"), /* long name in IMF-fixdate */
    BAD("Sun, 06-Nov-94 08:49:37 GMT"),      /* short name in rfc850 */
    BAD("Sunday Nov  6 08:49:37 1994"),      /* long name in asctime */
    BAD("Sund, 06 Nov 1994 08:49:37 GMT"),
    BAD("Sundays, 06-Nov-94 08:49:37 GMT"),
    BAD("Thurs, 06 Nov 1994 08:49:37 GMT"),
    BAD("Sun, 06 Xyz 1994 08:49:37 GMT"),
    BAD("Sun, 06 Sept 1994 08:49:37 GMT"),
};

static const row whitespace[] = {
    /* RFC 9110 §5.5: OWS around a field value is not part of it. */
    OK(" Sun, 06 Nov 1994 08:49:37 GMT", 784111777),
    OK("Sun, 06 Nov 1994 08:49:37 GMT ", 784111777),
    OK("\t \tSun, 06 Nov 1994 08:49:37 GMT\t \t", 784111777),
    OK850("  Sunday, 06-Nov-94 08:49:37 GMT  ", 784111777), /* 1994 */
    OK("\tSun Nov  6 08:49:37 1994\t", 784111777),
    /* Only SP and HTAB are OWS. */
    BAD("\r\nSun, 06 Nov 1994 08:49:37 GMT"),
    BAD("Sun, 06 Nov 1994 08:49:37 GMT\r\n"),
    BAD("Sun, 06 Nov 1994 08:49:37 GMT\n"),
    BAD("\vSun, 06 Nov 1994 08:49:37 GMT"),
    BAD("\xa0Sun, 06 Nov 1994 08:49:37 GMT"),
};

static const row empty_rows[] = {
    /* RFC 9110 §5.6.7: an HTTP-date is never empty. */
    BAD(""),   BAD(" "), BAD("\t"),  BAD(" \t \t  "),
    BAD("\0"), BAD(","), BAD("GMT"),
};

static const row trailing_garbage[] = {
    /* RFC 9110 §5.6.7: the whole value must match one form. */
    BAD("Sun, 06 Nov 1994 08:49:37 GMTx"),
    BAD("Sun, 06 Nov 1994 08:49:37 GMT x"),
    BAD("Sun, 06 Nov 1994 08:49:37 GMT;"),
    BAD("Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT"),
    BAD("Sunday, 06-Nov-94 08:49:37 GMT1"),
    BAD("Sun Nov  6 08:49:37 19945"),
    BAD("Sun Nov  6 08:49:37 1994x"),
    BAD("Sun Nov  6 08:49:37 1994 x"),
    BAD("xSun, 06 Nov 1994 08:49:37 GMT"),
    BAD("Sun, 06 Nov 1994 08:49:37 GMT\xff"),
};

static const row embedded_nul[] = {
    /* The input is len bytes: a NUL is a byte like any other, and no form
     * has room for one. */
    BAD("Sun, 06 Nov 1994 08:49:37 GMT\0"),
    BAD("\0Sun, 06 Nov 1994 08:49:37 GMT"),
    BAD("Sun, 06 Nov 1994\0 08:49:37 GMT"),
    BAD("Sun, 06 Nov 1994 08:49:37\0GMT"),
    BAD("Sun,\0006 Nov 1994 08:49:37 GMT"),
    BAD("Sun Nov \0006 08:49:37 1994"),
    BAD("Sun Nov  6 08:49:37 1994\0"),
    BAD("Sunday, 06-Nov-94 08:49:37 GMT\0 "),
};

static const table all_tables[] = {
    TABLE(rfc_examples), TABLE(asctime_days),
    TABLE(leap_days),    TABLE(month_lengths),
    TABLE(year_range),   TABLE(before_1970),
    TABLE(time_ranges),  TABLE(leap_seconds),
    TABLE(case_rows),    TABLE(zones),
    TABLE(separators),   TABLE(year_digits),
    TABLE(day_names),    TABLE(whitespace),
    TABLE(empty_rows),   TABLE(trailing_garbage),
    TABLE(embedded_nul),
};

/* ---- helpers ------------------------------------------------------------ */

/* The oracle for RFC 9110 §5.6.7's two-digit years, written independently
 * of the library with timegm(): move t to the latest year with the same
 * last two digits whose timestamp is at most 50 years after now. */
static int64_t rfc850_expected(int64_t t, time_t now)
{
    time_t tt = (time_t)t;
    struct tm d, lim;
    time_t limit;
    int yy, top;

    ck_assert_ptr_nonnull(gmtime_r(&tt, &d));
    ck_assert_ptr_nonnull(gmtime_r(&now, &lim));
    lim.tm_year += 50;
    limit = timegm(&lim);
    yy = (d.tm_year + 1900) % 100;
    top = lim.tm_year + 1900;
    d.tm_year = top - ((top - yy) % 100 + 100) % 100 - 1900;
    if (timegm(&d) > limit)
        d.tm_year -= 100;
    return (int64_t)timegm(&d);
}

static int64_t row_expected(const row *r)
{
    return r->two_digit_year ? rfc850_expected(r->t, time(NULL)) : r->t;
}

/* Parse every row of a table and compare both outcome and value. */
static void check_table(const table *tb)
{
    for (size_t i = 0; i < tb->n; i++) {
        const row *r = &tb->rows[i];
        int64_t got = INT64_MIN;
        etagkv_status rc = etagkv_httpdate_parse(r->in, r->len, &got);

        ck_assert_msg(rc == (r->ok ? ETAGKV_OK : ETAGKV_INVALID_HEADER),
                      "%s[%zu] \"%s\": %s", tb->name, i, r->in,
                      etagkv_status_name(rc));
        if (r->ok)
            ck_assert_msg(got == row_expected(r),
                          "%s[%zu] \"%s\": got %" PRId64 ", want %" PRId64,
                          tb->name, i, r->in, got, row_expected(r));
        else
            ck_assert_msg(got == INT64_MIN, "%s[%zu]: *out was written",
                          tb->name, i);
    }
}

#define CHECK_TABLE(r)                                                         \
    do {                                                                       \
        const table tb_ = TABLE(r);                                            \
        check_table(&tb_);                                                     \
    } while (0)

static void expect_parse(const char *s, int64_t want)
{
    int64_t got = INT64_MIN;

    ck_assert_msg(etagkv_httpdate_parse(s, strlen(s), &got) == ETAGKV_OK,
                  "\"%s\" was rejected", s);
    ck_assert_msg(got == want, "\"%s\": got %" PRId64 ", want %" PRId64, s, got,
                  want);
}

static void expect_reject(const char *s)
{
    int64_t got = INT64_MIN;

    ck_assert_msg(etagkv_httpdate_parse(s, strlen(s), &got) ==
                      ETAGKV_INVALID_HEADER,
                  "\"%s\" was accepted", s);
    ck_assert(got == INT64_MIN);
}

static const char *const wday_names[7] = {"Sun", "Mon", "Tue", "Wed",
                                          "Thu", "Fri", "Sat"};
static const char *const mon_names[12] = {"Jan", "Feb", "Mar", "Apr",
                                          "May", "Jun", "Jul", "Aug",
                                          "Sep", "Oct", "Nov", "Dec"};

/* Format t with glibc as the two four-digit-year forms. */
static void oracle_strings(int64_t t, char imf[64], char asc[64])
{
    time_t tt = (time_t)t;
    struct tm d;

    ck_assert_ptr_nonnull(gmtime_r(&tt, &d));
    snprintf(imf, 64, "%s, %02d %s %04d %02d:%02d:%02d GMT",
             wday_names[d.tm_wday], d.tm_mday, mon_names[d.tm_mon],
             d.tm_year + 1900, d.tm_hour, d.tm_min, d.tm_sec);
    snprintf(asc, 64, "%s %s %2d %02d:%02d:%02d %04d", wday_names[d.tm_wday],
             mon_names[d.tm_mon], d.tm_mday, d.tm_hour, d.tm_min, d.tm_sec,
             d.tm_year + 1900);
}

/* format(t) must equal glibc's rendering; parse() of both forms must give
 * t back. */
static void check_against_oracle(int64_t t)
{
    char imf[64], asc[64], out[ETAGKV_HTTPDATE_SIZE];
    int64_t back = INT64_MIN;

    oracle_strings(t, imf, asc);
    ck_assert_int_eq(etagkv_httpdate_format(t, out), ETAGKV_OK);
    ck_assert_msg(strcmp(out, imf) == 0, "t=%" PRId64 ": \"%s\" != \"%s\"", t,
                  out, imf);
    ck_assert_int_eq(etagkv_httpdate_parse(out, strlen(out), &back), ETAGKV_OK);
    ck_assert_msg(back == t, "t=%" PRId64 ": parse(format) = %" PRId64, t,
                  back);
    back = INT64_MIN;
    ck_assert_int_eq(etagkv_httpdate_parse(asc, strlen(asc), &back), ETAGKV_OK);
    ck_assert_msg(back == t, "t=%" PRId64 ": \"%s\" = %" PRId64, t, asc, back);
}

/* ---- parsing ------------------------------------------------------------ */

START_TEST(rfc_example_dates_in_all_three_forms_give_784111777)
{
    CHECK_TABLE(rfc_examples);
    /* The oracle agrees that 94 is 1994 until 2044 makes 2094 close
     * enough; until then this pins the RFC's own example literally. */
    if (time(NULL) < INT64_C(2335219200)) /* 2044-01-01 */
        expect_parse("Sunday, 06-Nov-94 08:49:37 GMT", T_RFC);
}
END_TEST

START_TEST(asctime_with_single_digit_day_is_accepted)
{
    expect_parse("Sun Nov  6 08:49:37 1994", T_RFC);
    expect_parse("Thu Jan  1 00:00:00 1970", 0);
}
END_TEST

START_TEST(asctime_day_forms_follow_the_grammar)
{
    CHECK_TABLE(asctime_days);
}
END_TEST

START_TEST(leap_day_is_valid_only_in_leap_years)
{
    CHECK_TABLE(leap_days);
}
END_TEST

START_TEST(day_must_exist_in_its_month)
{
    CHECK_TABLE(month_lengths);
}
END_TEST

START_TEST(epoch_is_zero_and_years_run_from_1_to_9999)
{
    CHECK_TABLE(year_range);
}
END_TEST

START_TEST(dates_before_1970_are_negative)
{
    CHECK_TABLE(before_1970);
}
END_TEST

START_TEST(time_fields_out_of_range_are_invalid)
{
    CHECK_TABLE(time_ranges);
}
END_TEST

START_TEST(leap_second_60_reads_as_59)
{
    CHECK_TABLE(leap_seconds);
}
END_TEST

START_TEST(names_and_zone_are_case_sensitive)
{
    CHECK_TABLE(case_rows);
}
END_TEST

START_TEST(zone_must_be_gmt_where_the_form_has_one)
{
    CHECK_TABLE(zones);
}
END_TEST

START_TEST(separators_must_be_exact)
{
    CHECK_TABLE(separators);
}
END_TEST

START_TEST(year_digit_count_must_match_the_form)
{
    CHECK_TABLE(year_digits);
}
END_TEST

START_TEST(day_name_must_be_valid_but_need_not_match_the_date)
{
    CHECK_TABLE(day_names);
}
END_TEST

START_TEST(surrounding_spaces_and_tabs_are_tolerated)
{
    CHECK_TABLE(whitespace);
}
END_TEST

START_TEST(empty_and_whitespace_only_inputs_are_invalid)
{
    CHECK_TABLE(empty_rows);
}
END_TEST

START_TEST(trailing_garbage_is_invalid)
{
    CHECK_TABLE(trailing_garbage);
}
END_TEST

START_TEST(embedded_nul_is_invalid)
{
    CHECK_TABLE(embedded_nul);
}
END_TEST

START_TEST(every_prefix_truncation_of_a_valid_date_is_invalid)
{
    /* RFC 9110 §5.6.7: every field is mandatory, so no proper prefix of a
     * date (without trailing whitespace) is itself a date. */
    static const char *const dates[] = {
        "Sun, 06 Nov 1994 08:49:37 GMT",     "Sunday, 06-Nov-94 08:49:37 GMT",
        "Wednesday, 16-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
        "Wed Nov 16 08:49:37 1994",          "Fri, 31 Dec 9999 23:59:59 GMT",
    };

    for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
        size_t n = strlen(dates[i]);
        int64_t got = INT64_MIN;

        ck_assert_int_eq(etagkv_httpdate_parse(dates[i], n, &got), ETAGKV_OK);
        for (size_t k = 0; k < n; k++) {
            got = INT64_MIN;
            ck_assert_msg(etagkv_httpdate_parse(dates[i], k, &got) ==
                              ETAGKV_INVALID_HEADER,
                          "prefix %zu of \"%s\" was accepted", k, dates[i]);
            ck_assert(got == INT64_MIN);
        }
    }
}
END_TEST

START_TEST(only_len_bytes_are_read_so_a_longer_buffer_is_fine)
{
    /* The header: s need not be NUL-terminated; len bytes are read. */
    static const char buf[] = "Sun, 06 Nov 1994 08:49:37 GMTGARBAGE";
    int64_t got = 0;

    ck_assert_int_eq(etagkv_httpdate_parse(buf, 29, &got), ETAGKV_OK);
    ck_assert(got == T_RFC);
    ck_assert_int_eq(etagkv_httpdate_parse(buf, 30, &got),
                     ETAGKV_INVALID_HEADER);
}
END_TEST

START_TEST(failure_and_null_arguments_leave_out_untouched)
{
    int64_t got = 12345;

    /* The header: not an HTTP-date is INVALID_HEADER (the empty string,
     * also as NULL with len 0, included); a NULL pointer the call would
     * have to read or write is INVALID_ARGUMENT. */
    ck_assert_int_eq(etagkv_httpdate_parse("nonsense", 8, &got),
                     ETAGKV_INVALID_HEADER);
    ck_assert(got == 12345);
    ck_assert_int_eq(etagkv_httpdate_parse("", 0, &got), ETAGKV_INVALID_HEADER);
    ck_assert_int_eq(etagkv_httpdate_parse(" \t ", 3, &got),
                     ETAGKV_INVALID_HEADER);
    ck_assert_int_eq(etagkv_httpdate_parse(NULL, 0, &got),
                     ETAGKV_INVALID_HEADER);
    ck_assert_int_eq(etagkv_httpdate_parse(NULL, 29, &got),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert(got == 12345);
    ck_assert_int_eq(
        etagkv_httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT", 29, NULL),
        ETAGKV_INVALID_ARGUMENT);
    expect_reject("Sun, 06 Nov 1994 08:49:37 GMT ZZZ");
}
END_TEST

START_TEST(two_digit_year_more_than_50_years_ahead_is_in_the_past)
{
    /* RFC 9110 §5.6.7: a two-digit year that "appears to be more than 50
     * years in the future" is "the most recent year in the past that had
     * the same last two digits".  Built around the current year; only the
     * last second of a year could make a row straddle its boundary. */
    time_t now = time(NULL);
    struct tm today;
    char s[64];
    int y;

    ck_assert_ptr_nonnull(gmtime_r(&now, &today));
    y = today.tm_year + 1900;
    struct {
        int year;  /* written as its last two digits */
        int month; /* 1..12 */
        int day;
        int hms; /* 0 for 00:00:00, 1 for 23:59:59 */
        int want_year;
    } cases[] = {
        {y, 6, 15, 0, y},        /* this year */
        {y - 1, 1, 1, 0, y - 1}, /* last year */
        {y - 49, 6, 15, 0, y - 49},
        {y + 49, 6, 15, 0, y + 49},  /* 49 years ahead: future */
        {y + 50, 1, 1, 0, y + 50},   /* not yet 50 years ahead */
        {y + 50, 12, 31, 1, y - 50}, /* more than 50 years ahead */
        {y + 51, 1, 1, 0, y - 49},   /* more than 50 years ahead */
        {y + 99, 6, 15, 0, y - 1},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tm want = {0};

        snprintf(s, sizeof(s), "Monday, %02d-%s-%02d %s GMT", cases[i].day,
                 mon_names[cases[i].month - 1], cases[i].year % 100,
                 cases[i].hms ? "23:59:59" : "00:00:00");
        want.tm_year = cases[i].want_year - 1900;
        want.tm_mon = cases[i].month - 1;
        want.tm_mday = cases[i].day;
        want.tm_hour = cases[i].hms ? 23 : 0;
        want.tm_min = want.tm_sec = cases[i].hms ? 59 : 0;
        expect_parse(s, (int64_t)timegm(&want));
    }
}
END_TEST

/* ---- formatting --------------------------------------------------------- */

START_TEST(format_writes_imf_fixdate)
{
    /* RFC 9110 §5.6.7: a sender MUST generate IMF-fixdate. */
    static const struct {
        int64_t t;
        const char *want;
    } cases[] = {
        {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
        {T_RFC, "Sun, 06 Nov 1994 08:49:37 GMT"},
        {-1, "Wed, 31 Dec 1969 23:59:59 GMT"},
        {1709164800, "Thu, 29 Feb 2024 00:00:00 GMT"},
        {T_MIN, "Mon, 01 Jan 0001 00:00:00 GMT"},
        {T_MAX, "Fri, 31 Dec 9999 23:59:59 GMT"},
        {-2208988800, "Mon, 01 Jan 1900 00:00:00 GMT"},
        {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
        {2147483648, "Tue, 19 Jan 2038 03:14:08 GMT"},
    };
    char out[ETAGKV_HTTPDATE_SIZE];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(out, 'x', sizeof(out));
        ck_assert_int_eq(etagkv_httpdate_format(cases[i].t, out), ETAGKV_OK);
        ck_assert_str_eq(out, cases[i].want);
        ck_assert_uint_eq(strlen(out), ETAGKV_HTTPDATE_SIZE - 1);
    }
}
END_TEST

START_TEST(format_rejects_years_outside_1_to_9999)
{
    /* The header: INVALID_ARGUMENT outside years 0001..9999 (IMF-fixdate
     * has 4DIGIT). */
    static const int64_t bad[] = {T_MIN - 1,     T_MAX + 1,
                                  INT64_MIN,     INT64_MAX,
                                  INT64_MIN + 1, -(INT64_C(1) << 40)};
    char out[ETAGKV_HTTPDATE_SIZE] = "untouched";

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_int_eq(etagkv_httpdate_format(bad[i], out),
                         ETAGKV_INVALID_ARGUMENT);
    ck_assert_str_eq(out, "untouched");
    ck_assert_int_eq(etagkv_httpdate_format(0, NULL), ETAGKV_INVALID_ARGUMENT);
}
END_TEST

START_TEST(format_of_parse_is_identity_for_imf_fixdates)
{
    static const char *const dates[] = {
        "Sun, 06 Nov 1994 08:49:37 GMT", "Thu, 01 Jan 1970 00:00:00 GMT",
        "Wed, 31 Dec 1969 23:59:59 GMT", "Thu, 29 Feb 2024 12:34:56 GMT",
        "Tue, 29 Feb 2000 00:00:00 GMT", "Mon, 01 Jan 0001 00:00:00 GMT",
        "Fri, 31 Dec 9999 23:59:59 GMT", "Wed, 01 Mar 1600 00:00:00 GMT",
        "Sun, 28 Feb 2100 23:59:59 GMT", "Mon, 01 Mar 2100 00:00:00 GMT",
        "Fri, 13 Feb 2009 23:31:30 GMT", "Sat, 01 Jan 2000 00:00:00 GMT",
        "Sun, 31 Dec 1899 23:59:59 GMT", "Fri, 15 Oct 1582 00:00:00 GMT",
        "Tue, 19 Jan 2038 03:14:07 GMT", "Sun, 07 Feb 2106 06:28:15 GMT",
    };

    for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
        int64_t t = INT64_MIN;
        char out[ETAGKV_HTTPDATE_SIZE];

        ck_assert_int_eq(etagkv_httpdate_parse(dates[i], 29, &t), ETAGKV_OK);
        ck_assert_int_eq(etagkv_httpdate_format(t, out), ETAGKV_OK);
        ck_assert_str_eq(out, dates[i]);
    }
}
END_TEST

START_TEST(random_timestamps_agree_with_gmtime_and_round_trip)
{
    /* 100000 instants spread over years 1..9999, plus the edges and every
     * day around the leap-rule boundaries of 1900, 2000 and 2100. */
    static const int64_t edges[] = {T_MIN, T_MIN + 1, T_MAX, T_MAX - 1,
                                    -1,    0,         1,     86399,
                                    86400, -86400,    -86401};
    uint64_t state = UINT64_C(0x6574616B76); /* fixed: reproducible */
    uint64_t span = (uint64_t)(T_MAX - T_MIN) + 1;

    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
        check_against_oracle(edges[i]);
    for (int64_t day = -400; day <= 400; day++) {
        check_against_oracle(-2203891200 + day * 86400); /* 1900-03-01 */
        check_against_oracle(951868800 + day * 86400);   /* 2000-03-01 */
        check_against_oracle(4107542400 + day * 86400);  /* 2100-03-01 */
    }
    for (int i = 0; i < 100000; i++)
        check_against_oracle(T_MIN + (int64_t)(tu_rng_next(&state) % span));
}
END_TEST

/* ---- memory safety ------------------------------------------------------ */

START_TEST(inputs_ending_at_a_guard_page_are_never_over_read)
{
    /* Every table row, and every prefix of it, is placed so that its last
     * byte is the last readable byte before a PROT_NONE page: reading past
     * len faults (picohttpparser's test does the same). */
    long page = sysconf(_SC_PAGESIZE);
    char *base;

    ck_assert(page > 0);
    base = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(base != MAP_FAILED);
    ck_assert_int_eq(mprotect(base + page, (size_t)page, PROT_NONE), 0);
    for (size_t t = 0; t < sizeof(all_tables) / sizeof(all_tables[0]); t++) {
        for (size_t i = 0; i < all_tables[t].n; i++) {
            const row *r = &all_tables[t].rows[i];

            for (size_t k = 0; k <= r->len; k++) {
                char *p = base + page - k;
                int64_t got = INT64_MIN;
                etagkv_status rc;

                memcpy(p, r->in, k);
                rc = etagkv_httpdate_parse(p, k, &got);
                if (k == r->len)
                    ck_assert_msg(
                        rc == (r->ok ? ETAGKV_OK : ETAGKV_INVALID_HEADER) &&
                            (!r->ok || got == row_expected(r)),
                        "%s[%zu] at the guard page", all_tables[t].name, i);
            }
        }
    }
    ck_assert_int_eq(munmap(base, (size_t)page * 2), 0);
}
END_TEST

static Suite *httpdate_suite(void)
{
    Suite *s = suite_create("httpdate");
    TCase *p = tcase_create("parse");
    TCase *f = tcase_create("format");
    TCase *m = tcase_create("memory");

    tcase_add_test(p, rfc_example_dates_in_all_three_forms_give_784111777);
    tcase_add_test(p, asctime_with_single_digit_day_is_accepted);
    tcase_add_test(p, asctime_day_forms_follow_the_grammar);
    tcase_add_test(p, leap_day_is_valid_only_in_leap_years);
    tcase_add_test(p, day_must_exist_in_its_month);
    tcase_add_test(p, epoch_is_zero_and_years_run_from_1_to_9999);
    tcase_add_test(p, dates_before_1970_are_negative);
    tcase_add_test(p, time_fields_out_of_range_are_invalid);
    tcase_add_test(p, leap_second_60_reads_as_59);
    tcase_add_test(p, names_and_zone_are_case_sensitive);
    tcase_add_test(p, zone_must_be_gmt_where_the_form_has_one);
    tcase_add_test(p, separators_must_be_exact);
    tcase_add_test(p, year_digit_count_must_match_the_form);
    tcase_add_test(p, day_name_must_be_valid_but_need_not_match_the_date);
    tcase_add_test(p, surrounding_spaces_and_tabs_are_tolerated);
    tcase_add_test(p, empty_and_whitespace_only_inputs_are_invalid);
    tcase_add_test(p, trailing_garbage_is_invalid);
    tcase_add_test(p, embedded_nul_is_invalid);
    tcase_add_test(p, every_prefix_truncation_of_a_valid_date_is_invalid);
    tcase_add_test(p, only_len_bytes_are_read_so_a_longer_buffer_is_fine);
    tcase_add_test(p, failure_and_null_arguments_leave_out_untouched);
    tcase_add_test(p, two_digit_year_more_than_50_years_ahead_is_in_the_past);
    tcase_add_test(f, format_writes_imf_fixdate);
    tcase_add_test(f, format_rejects_years_outside_1_to_9999);
    tcase_add_test(f, format_of_parse_is_identity_for_imf_fixdates);
    tcase_add_test(f, random_timestamps_agree_with_gmtime_and_round_trip);
    tcase_add_test(m, inputs_ending_at_a_guard_page_are_never_over_read);
    suite_add_tcase(s, p);
    suite_add_tcase(s, f);
    suite_add_tcase(s, m);
    return s;
}

int main(void)
{
    return tu_run(httpdate_suite());
}
