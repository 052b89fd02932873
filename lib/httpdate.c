/*
 * httpdate.c -- HTTP-dates (RFC 9110 §5.6.7): three forms in, IMF-fixdate
 * out.
 *
 * Accepted input, and nothing else (D = digit, _ = one space):
 *
 *   IMF-fixdate   "Sun, 06 Nov 1994 08:49:37 GMT"
 *                 day-name "," SP DD SP month SP DDDD SP hh:mm:ss SP "GMT"
 *   RFC 850       "Sunday, 06-Nov-94 08:49:37 GMT"
 *                 day-name-l "," SP DD "-" month "-" DD SP hh:mm:ss SP "GMT"
 *   asctime       "Sun Nov  6 08:49:37 1994"    (_D: space-padded day)
 *                 "Sun Nov 16 08:49:37 1994"    (DD: two-digit day)
 *                 day-name SP month SP ( SP D / DD ) SP hh:mm:ss SP DDDD
 *
 *   day-name   Mon Tue Wed Thu Fri Sat Sun
 *   day-name-l Monday Tuesday Wednesday Thursday Friday Saturday Sunday
 *   month      Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec
 *
 * Any of these may be preceded and followed by spaces and horizontal tabs
 * (the OWS around a field value, RFC 9110 §5.5), so a caller can hand us a
 * raw field value.  The input is len bytes and need not be NUL-terminated;
 * no byte outside them is ever read.
 *
 * Choices the RFC leaves to us, and why:
 *
 *  - Case.  "HTTP-date is case sensitive" (RFC 9110 §5.6.7), and the ABNF
 *    spells every name with %s"...".  We are strict in all three forms:
 *    every sender that matters emits these exact spellings, and a parser
 *    that accepts exactly the grammar has no corner cases to get wrong.
 *    The general advice to be robust (same section) is outweighed by
 *    keeping the accepted language small and testable.
 *  - Day of week.  It must be one of the names the grammar allows for that
 *    form, but we do not check that it is the weekday of the date.  The
 *    grammar does not tie the two together, the date and time alone name
 *    the instant, and rejecting the value would make an If-Unmodified-Since
 *    header be ignored (RFC 9110 §13.1.4), i.e. turn a conditional write
 *    into an unconditional one because of a redundant field.
 *  - Two-digit years (RFC 850 form).  RFC 9110 §5.6.7: a timestamp that
 *    "appears to be more than 50 years in the future" is taken as "the most
 *    recent year in the past that had the same last two digits".  We take
 *    the latest year with those two digits whose timestamp is at most 50
 *    years after the current time (time(NULL)); so, read in 2025, "94" is
 *    1994 and "74" is 2074.
 *  - Ranges.  Years 0001..9999 (four digits; no year zero); month and day
 *    must name a real Gregorian date (February 29 only in leap years);
 *    hour 00..23, minute 00..59, second 00..60.  Second 60 is the leap
 *    second the ABNF comment allows ("00:00:00 - 23:59:60"); POSIX time has
 *    no room for it, so it is read as second 59 of the same minute.
 *
 * Time arithmetic is our own (days from a proleptic Gregorian civil date
 * and back, after Howard Hinnant's "chrono-Compatible Low-Level Date
 * Algorithms"): no locale, no time zone database, no timegm or gmtime, so
 * the result never depends on the process environment.
 */
#include <string.h>
#include <time.h>

#include "internal.h"

#define SECS_PER_DAY 86400

/* Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar:
 * the offset between the 400-year eras below and the Unix epoch. */
#define EPOCH_SHIFT_DAYS 719468
/* Days in a 400-year era: the Gregorian calendar repeats after it. */
#define DAYS_PER_ERA 146097

/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the years a four-digit
 * IMF-fixdate year can hold (tests check these against the arithmetic). */
#define T_MIN INT64_C(-62135596800)
#define T_MAX INT64_C(253402300799)

static const char *const day_names[7] = {"Sun", "Mon", "Tue", "Wed",
                                         "Thu", "Fri", "Sat"};

static const char *const day_names_long[7] = {
    "Sunday",   "Monday", "Tuesday", "Wednesday",
    "Thursday", "Friday", "Saturday"};

static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr",
                                            "May", "Jun", "Jul", "Aug",
                                            "Sep", "Oct", "Nov", "Dec"};

/* A broken-down UTC time.  month is 1..12, day 1..31. */
typedef struct civil {
    int64_t year;
    int month;
    int day;
    int hour;
    int minute;
    int second;
} civil;

/* Bytes still to be read: s[pos..len). */
typedef struct cursor {
    const char *s;
    size_t len;
    size_t pos;
} cursor;

/* ---- calendar arithmetic ------------------------------------------------ */

/* Floor division and modulo: C's / and % truncate toward zero, which is
 * wrong for instants before the epoch. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
    return a - floor_div(a, b) * b;
}

static int is_leap_year(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30,
                                 31, 31, 30, 31, 30, 31};

    if (m == 2 && is_leap_year(y))
        return 29;
    return days[m - 1];
}

/* Days since 1970-01-01 of y-m-d.  The year is counted from March, so that
 * the leap day falls at the end of it and the month lengths from March on
 * follow the fixed pattern (153 days every 5 months).  A day past the end
 * of its month simply counts on into the next one. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    if (m <= 2)
        y--;
    era = floor_div(y, 400);
    /* Year of era [0, 399], day of the March-based year [0, 365], day of
     * era [0, 146096]. */
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * DAYS_PER_ERA + doe - EPOCH_SHIFT_DAYS;
}

/* The inverse of days_from_civil(): the date of day z since 1970-01-01. */
static void civil_from_days(int64_t z, civil *out)
{
    int64_t era, doe, yoe, doy, mp;

    z += EPOCH_SHIFT_DAYS;
    era = floor_div(z, DAYS_PER_ERA);
    doe = z - era * DAYS_PER_ERA; /* [0, 146096] */
    /* Take away one day per 4-year cycle (a leap day follows every 1460
     * days), give one back per century (no leap day), take one for the
     * era's last day: what is left counts 365-day years. */
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100); /* [0, 365] */
    mp = (5 * doy + 2) / 153; /* month from March, [0, 11] */
    out->day = (int)(doy - (153 * mp + 2) / 5 + 1);
    out->month = (int)(mp < 10 ? mp + 3 : mp - 9);
    out->year = yoe + era * 400 + (out->month <= 2);
}

static int64_t civil_to_seconds(const civil *c)
{
    return days_from_civil(c->year, c->month, c->day) * SECS_PER_DAY +
           c->hour * 3600 + c->minute * 60 + c->second;
}

static void civil_from_seconds(int64_t t, civil *out)
{
    int64_t secs = floor_mod(t, SECS_PER_DAY);

    civil_from_days(floor_div(t, SECS_PER_DAY), out);
    out->hour = (int)(secs / 3600);
    out->minute = (int)(secs / 60 % 60);
    out->second = (int)(secs % 60);
}

/* ---- lexical helpers ---------------------------------------------------- */

/* Each take_* consumes what it matched and returns 0, or returns -1; after
 * a failure the cursor is abandoned, so its position does not matter. */

static int take_char(cursor *c, char ch)
{
    if (c->pos >= c->len || c->s[c->pos] != ch)
        return -1;
    c->pos++;
    return 0;
}

static int take_literal(cursor *c, const char *lit)
{
    size_t n = strlen(lit);

    if (c->len - c->pos < n || memcmp(c->s + c->pos, lit, n) != 0)
        return -1;
    c->pos += n;
    return 0;
}

/* Exactly n ASCII digits (not isdigit(): that depends on the locale). */
static int take_digits(cursor *c, size_t n, int *out)
{
    int v = 0;

    if (c->len - c->pos < n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char ch = c->s[c->pos + i];

        if (ch < '0' || ch > '9')
            return -1;
        v = v * 10 + (ch - '0');
    }
    c->pos += n;
    *out = v;
    return 0;
}

/* One of count names, compared case-sensitively (RFC 9110 §5.6.7); *index
 * is its position in names.  No name in our tables is a prefix of another
 * in the same table, so the first match is the only one. */
static int take_name(cursor *c, const char *const *names, int count, int *index)
{
    for (int i = 0; i < count; i++) {
        if (take_literal(c, names[i]) == 0) {
            *index = i;
            return 0;
        }
    }
    return -1;
}

static int take_month(cursor *c, int *month)
{
    int i;

    if (take_name(c, month_names, 12, &i) != 0)
        return -1;
    *month = i + 1;
    return 0;
}

/* time-of-day = hour ":" minute ":" second, each exactly two digits, with
 * the ranges of RFC 9110 §5.6.7 (second 60 only for a leap second). */
static int take_time(cursor *c, civil *out)
{
    if (take_digits(c, 2, &out->hour) != 0 || take_char(c, ':') != 0 ||
        take_digits(c, 2, &out->minute) != 0 || take_char(c, ':') != 0 ||
        take_digits(c, 2, &out->second) != 0)
        return -1;
    if (out->hour > 23 || out->minute > 59 || out->second > 60)
        return -1;
    return 0;
}

static int at_end(const cursor *c)
{
    return c->pos == c->len;
}

/* ---- the three forms ---------------------------------------------------- */

/* Each parse_* matches the whole of c's bytes against one form and fills
 * the fields it carries; civil_check() then validates the date as a whole.
 * The day name is matched but otherwise ignored (see the top of the file). */

static int parse_imf_fixdate(cursor *c, civil *out)
{
    int wday, year;

    if (take_name(c, day_names, 7, &wday) != 0 || take_literal(c, ", ") != 0 ||
        take_digits(c, 2, &out->day) != 0 || take_char(c, ' ') != 0 ||
        take_month(c, &out->month) != 0 || take_char(c, ' ') != 0 ||
        take_digits(c, 4, &year) != 0 || take_char(c, ' ') != 0 ||
        take_time(c, out) != 0 || take_literal(c, " GMT") != 0 || !at_end(c))
        return -1;
    out->year = year;
    return 0;
}

/* The full year for a two-digit RFC 850 year yy, given the rest of the date
 * in d and the current time now (RFC 9110 §5.6.7): the latest year ending
 * in yy whose timestamp is not more than 50 years after now. */
static int64_t rfc850_year(int yy, const civil *d, int64_t now)
{
    civil limit, cand = *d;

    civil_from_seconds(now, &limit);
    limit.year += 50;
    cand.year = limit.year - floor_mod(limit.year - yy, 100);
    /* days_from_civil() carries a February 29 of a common year on into
     * March 1, which is the right limit for "50 years after" a leap day. */
    if (civil_to_seconds(&cand) > civil_to_seconds(&limit))
        cand.year -= 100;
    return cand.year;
}

static int parse_rfc850(cursor *c, civil *out)
{
    int wday, yy;

    if (take_name(c, day_names_long, 7, &wday) != 0 ||
        take_literal(c, ", ") != 0 || take_digits(c, 2, &out->day) != 0 ||
        take_char(c, '-') != 0 || take_month(c, &out->month) != 0 ||
        take_char(c, '-') != 0 || take_digits(c, 2, &yy) != 0 ||
        take_char(c, ' ') != 0 || take_time(c, out) != 0 ||
        take_literal(c, " GMT") != 0 || !at_end(c))
        return -1;
    out->year = rfc850_year(yy, out, (int64_t)time(NULL));
    return 0;
}

/* asctime's day is "SP DIGIT" or "2DIGIT" (RFC 9110 §5.6.7 date3). */
static int take_asctime_day(cursor *c, int *day)
{
    if (take_char(c, ' ') == 0)
        return take_digits(c, 1, day);
    return take_digits(c, 2, day);
}

static int parse_asctime(cursor *c, civil *out)
{
    int wday, year;

    if (take_name(c, day_names, 7, &wday) != 0 || take_char(c, ' ') != 0 ||
        take_month(c, &out->month) != 0 || take_char(c, ' ') != 0 ||
        take_asctime_day(c, &out->day) != 0 || take_char(c, ' ') != 0 ||
        take_time(c, out) != 0 || take_char(c, ' ') != 0 ||
        take_digits(c, 4, &year) != 0 || !at_end(c))
        return -1;
    out->year = year;
    return 0;
}

/* A date the forms can spell but the calendar does not have (year 0000,
 * April 31, February 29 of a common year) is not a valid HTTP-date. */
static int civil_check(civil *d)
{
    if (d->year < 1 || d->year > 9999 || d->day < 1 ||
        d->day > days_in_month(d->year, d->month))
        return -1;
    if (d->second == 60)
        d->second = 59; /* leap second: POSIX time cannot represent it */
    return 0;
}

/* Try each form on the whole of s[0..len); they are mutually exclusive, so
 * at most one matches. */
static int parse_any(const char *s, size_t len, civil *out)
{
    int (*const forms[3])(cursor *, civil *) = {parse_imf_fixdate, parse_rfc850,
                                                parse_asctime};

    for (size_t i = 0; i < 3; i++) {
        cursor c = {s, len, 0};

        if (forms[i](&c, out) == 0)
            return civil_check(out);
    }
    return -1;
}

static int is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

etagkv_status etagkv_httpdate_parse(const char *s, size_t len, int64_t *out)
{
    civil d;

    if (out == NULL || (s == NULL && len > 0))
        return ETAGKV_INVALID_ARGUMENT;
    /* Leading and trailing OWS (RFC 9110 §5.5); nothing else is trimmed. */
    while (len > 0 && is_ows(s[0])) {
        s++;
        len--;
    }
    while (len > 0 && is_ows(s[len - 1]))
        len--;
    if (len == 0 || parse_any(s, len, &d) != 0)
        return ETAGKV_INVALID_HEADER;
    *out = civil_to_seconds(&d);
    return ETAGKV_OK;
}

/* ---- output ------------------------------------------------------------- */

/* Write v as exactly n decimal digits, zero-padded; returns the end. */
static char *put_digits(char *p, int64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

static char *put_text(char *p, const char *text)
{
    size_t n = strlen(text);

    memcpy(p, text, n);
    return p + n;
}

/* IMF-fixdate, the only form a sender may generate (RFC 9110 §5.6.7):
 * "Sun, 06 Nov 1994 08:49:37 GMT", always 29 characters.  Digits are
 * written by hand so that no locale can touch them. */
etagkv_status etagkv_httpdate_format(int64_t t, char out[ETAGKV_HTTPDATE_SIZE])
{
    civil d;
    char *p;

    if (out == NULL || t < T_MIN || t > T_MAX)
        return ETAGKV_INVALID_ARGUMENT;
    civil_from_seconds(t, &d);
    /* 1970-01-01 was a Thursday (index 4). */
    p = put_text(out, day_names[floor_mod(floor_div(t, SECS_PER_DAY) + 4, 7)]);
    p = put_text(p, ", ");
    p = put_digits(p, d.day, 2);
    *p++ = ' ';
    p = put_text(p, month_names[d.month - 1]);
    *p++ = ' ';
    p = put_digits(p, d.year, 4);
    *p++ = ' ';
    p = put_digits(p, d.hour, 2);
    *p++ = ':';
    p = put_digits(p, d.minute, 2);
    *p++ = ':';
    p = put_digits(p, d.second, 2);
    p = put_text(p, " GMT");
    *p = '\0';
    return ETAGKV_OK;
}
