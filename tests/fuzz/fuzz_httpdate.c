/*
 * fuzz_httpdate.c -- libFuzzer target for the HTTP-date parser and
 * formatter (lib/httpdate.c).
 *
 * The whole input is one field value.  When it parses:
 *  - the instant lies in years 0001..9999 and formats as a 29-byte
 *    IMF-fixdate that parses back to the same instant;
 *  - that IMF-fixdate is what glibc's gmtime_r() says, field by field (an
 *    oracle independent of the library's calendar arithmetic);
 *  - if the input itself was an IMF-fixdate, the formatted one equals it
 *    except for the day name (not checked against the date, by design) and
 *    a leap second 60, which reads as 59 (RFC 9110 §5.6.7).
 * Independently, the first 8 bytes pick an instant in 0001..9999, which
 * must format like gmtime_r() and parse back from all three forms.
 * A failed parse must leave its output untouched.  ASan catches any read past
 * the input: libFuzzer hands over exactly size bytes, never NUL-terminated.
 */
#include <string.h>
#include <time.h>

#include "etagkv.h"
#include "fuzz.h"

/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z. */
#define T_MIN INT64_C(-62135596800)
#define T_MAX INT64_C(253402300799)

static const char *const days[7] = {"Sun", "Mon", "Tue", "Wed",
                                    "Thu", "Fri", "Sat"};
static const char *const days_long[7] = {"Sunday",    "Monday",   "Tuesday",
                                         "Wednesday", "Thursday", "Friday",
                                         "Saturday"};
static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};

_Static_assert(sizeof(time_t) == 8, "64-bit time_t required");

/* The instant t as glibc sees it. */
static void oracle_tm(int64_t t, struct tm *tm)
{
    time_t tt = (time_t)t;

    CHECK(gmtime_r(&tt, tm) != NULL);
}

/* Format t with the library and compare with the oracle's fields. */
static void check_format(int64_t t, char out[ETAGKV_HTTPDATE_SIZE])
{
    char want[64];
    struct tm tm;
    int64_t back = 0;

    CHECK(etagkv_httpdate_format(t, out) == ETAGKV_OK);
    CHECK(strlen(out) == ETAGKV_HTTPDATE_SIZE - 1);
    oracle_tm(t, &tm);
    snprintf(want, sizeof want, "%s, %02d %s %04d %02d:%02d:%02d GMT",
             days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (strcmp(out, want) != 0) {
        fprintf(stderr, "t=%lld: library '%s', gmtime '%s'\n", (long long)t,
                out, want);
        CHECK(!"format agrees with gmtime_r");
    }
    CHECK(etagkv_httpdate_parse(out, strlen(out), &back) == ETAGKV_OK);
    CHECK(back == t);
}

/* An input that parsed and is itself an IMF-fixdate (after OWS) must be
 * what the formatter writes, but for the day name and a leap second. */
static void check_same_as_input(const char *s, size_t len, const char *out)
{
    while (len > 0 && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len != ETAGKV_HTTPDATE_SIZE - 1 || s[3] != ',')
        return;
    if (memcmp(s + 23, "60", 2) == 0) {
        CHECK(memcmp(out + 3, s + 3, 20) == 0);
        CHECK(memcmp(out + 23, "59", 2) == 0);
        CHECK(memcmp(out + 25, s + 25, 4) == 0);
    } else {
        CHECK(memcmp(out + 3, s + 3, len - 3) == 0);
    }
}

/* The instant t in all three forms must parse back: IMF-fixdate and
 * asctime exactly; RFC 850 to the same day of the century and time, in a
 * year with the same two digits (RFC 9110 §5.6.7 picks the century). */
static void check_three_forms(int64_t t)
{
    char s[64];
    struct tm tm, back_tm;
    int64_t back = 0;
    int n;

    oracle_tm(t, &tm);
    n = snprintf(s, sizeof s, "%s %s %2d %02d:%02d:%02d %04d", days[tm.tm_wday],
                 months[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min,
                 tm.tm_sec, tm.tm_year + 1900);
    CHECK(etagkv_httpdate_parse(s, (size_t)n, &back) == ETAGKV_OK && back == t);
    n = snprintf(s, sizeof s, "%s, %02d-%s-%02d %02d:%02d:%02d GMT",
                 days_long[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                 (tm.tm_year + 1900) % 100, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (etagkv_httpdate_parse(s, (size_t)n, &back) != ETAGKV_OK) {
        /* Only February 29 can fail: the century the rule picks may not
         * be a leap year. */
        CHECK(tm.tm_mon == 1 && tm.tm_mday == 29);
        return;
    }
    oracle_tm(back, &back_tm);
    CHECK((back_tm.tm_year + 1900) % 100 == (tm.tm_year + 1900) % 100);
    CHECK(back_tm.tm_mon == tm.tm_mon && back_tm.tm_mday == tm.tm_mday);
    CHECK(back_tm.tm_hour == tm.tm_hour && back_tm.tm_min == tm.tm_min &&
          back_tm.tm_sec == tm.tm_sec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char out[ETAGKV_HTTPDATE_SIZE];
    int64_t t = INT64_C(0x5A5A5A5A5A5A5A5A);
    etagkv_status st;

    st = etagkv_httpdate_parse(s, size, &t);
    if (st == ETAGKV_OK) {
        CHECK(t >= T_MIN && t <= T_MAX);
        check_format(t, out);
        check_same_as_input(s, size, out);
    } else {
        /* Bytes that are not a date are a bad header, never anything else,
         * and leave *out untouched. */
        CHECK(st == ETAGKV_INVALID_HEADER);
        CHECK(t == INT64_C(0x5A5A5A5A5A5A5A5A));
    }
    if (size >= 8) {
        uint64_t raw;

        memcpy(&raw, data, 8);
        t = T_MIN + (int64_t)(raw % (uint64_t)(T_MAX - T_MIN + 1));
        check_format(t, out);
        check_three_forms(t);
    }
    /* Outside 0001..9999 the formatter refuses. */
    CHECK(etagkv_httpdate_format(T_MAX + 1 + (int64_t)(size % 7), out) ==
          ETAGKV_INVALID_ARGUMENT);
    CHECK(etagkv_httpdate_format(T_MIN - 1 - (int64_t)(size % 7), out) ==
          ETAGKV_INVALID_ARGUMENT);
    return 0;
}
