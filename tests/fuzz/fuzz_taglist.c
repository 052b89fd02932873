/*
 * fuzz_taglist.c -- libFuzzer target for the entity-tag list parser and
 * its comparisons (lib/etag.c: ekv_taglist_append, ekv_taglist_match_*,
 * ekv_etag_parse_own).
 *
 * Input: header lines separated by '\n', all added to one list, as the
 * lines of one If-Match field would be (RFC 9110 §5.3).  Each line is also
 * parsed by a reference parser written here in a different way (split the
 * value at commas outside quotes, then match each element against the
 * grammar), and the library must agree with it on every line:
 *  - accept exactly the lines the grammar accepts (RFC 9110 §13.1.1,
 *    §8.8.3, §5.6.1), "*" only alone and never next to another line;
 *  - store exactly the tags the reference finds, in order, W/ flags
 *    included; a rejected line leaves the list's contents unchanged;
 *  - strong comparison matches only a non-weak tag with the same bytes,
 *    weak comparison any tag with the same bytes (§8.8.3.2), and a strong
 *    match is always a weak match;
 *  - our own ETag form parses back to the hash it was formatted from.
 * ASan catches any read past a line: libFuzzer hands over exactly size
 * bytes and the lines are never NUL-terminated.
 */
#include <string.h>

#include "fuzz.h"
#include "internal.h"

#define MAX_LINES 64

/* ---- the reference parser ------------------------------------------------ */

/* One tag as the reference sees it: the opaque-tag with its quotes. */
typedef struct ref_tag {
    const char *p;
    size_t len;
    int weak;
} ref_tag;

enum { REF_INVALID = -1, REF_STAR = -2 };

static int ref_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* etagc = %x21 / %x23-7E / obs-text (RFC 9110 §8.8.3). */
static int ref_etagc(unsigned char c)
{
    return (c >= 0x21 && c <= 0x7E && c != '"') || c >= 0x80;
}

/* An element with its OWS trimmed: empty (0), one entity-tag (1) or
 * invalid (-1). */
static int ref_element(const char *p, size_t len, ref_tag *out)
{
    size_t i = 0;

    while (len > 0 && ref_ows(p[0])) {
        p++;
        len--;
    }
    while (len > 0 && ref_ows(p[len - 1]))
        len--;
    if (len == 0)
        return 0;
    out->weak = len >= 2 && p[0] == 'W' && p[1] == '/';
    if (out->weak)
        i = 2;
    if (len - i < 2 || p[i] != '"' || p[len - 1] != '"')
        return -1;
    for (size_t k = i + 1; k < len - 1; k++)
        if (!ref_etagc((unsigned char)p[k]))
            return -1;
    out->p = p + i;
    out->len = len - i;
    return 1;
}

/* The tags of one line (at most cap are kept), REF_STAR for "*", or
 * REF_INVALID.  The value is cut at every comma outside a quoted string;
 * a quoted string cannot contain a comma's meaning because etagc has no
 * escapes and the first DQUOTE closes it. */
static long ref_parse(const char *p, size_t len, ref_tag *tags, size_t cap)
{
    size_t start = 0, n = 0;
    int quoted = 0;
    size_t a = 0, b = len;

    while (a < b && ref_ows(p[a]))
        a++;
    while (b > a && ref_ows(p[b - 1]))
        b--;
    if (b - a == 1 && p[a] == '*')
        return REF_STAR;
    for (size_t i = 0; i <= len; i++) {
        ref_tag t;
        int r;

        if (i < len && p[i] == '"')
            quoted = !quoted;
        if (i < len && (quoted || p[i] != ','))
            continue;
        if (i == len && quoted)
            return REF_INVALID; /* an opaque-tag never closed */
        r = ref_element(p + start, i - start, &t);
        if (r < 0)
            return REF_INVALID;
        if (r > 0) {
            if (n < cap)
                tags[n] = t;
            n++;
        }
        start = i + 1;
    }
    /* etagkv.h: a value with no element at all is invalid. */
    return n == 0 ? REF_INVALID : (long)n;
}

/* ---- checks -------------------------------------------------------------- */

/* The naive comparison of §8.8.3.2 over the stored tags. */
static int ref_match(const ekv_taglist *l, const char *etag, size_t len,
                     int weak_ok)
{
    if (!l->present || l->any)
        return 0;
    for (size_t i = 0; i < l->n; i++)
        if ((weak_ok || !l->tags[i].weak) && l->tags[i].len == len &&
            memcmp(l->buf + l->tags[i].off, etag, len) == 0)
            return 1;
    return 0;
}

/* Compare both comparisons with the naive ones for the candidate etag
 * (cut at its first NUL: the API takes a C string). */
static void check_match(const ekv_taglist *l, const char *p, size_t len)
{
    char cand[256];
    size_t n = len < sizeof cand - 1 ? len : sizeof cand - 1;
    int strong, weak;

    memcpy(cand, p, n);
    cand[n] = '\0';
    n = strlen(cand);
    strong = ekv_taglist_match_strong(l, cand);
    weak = ekv_taglist_match_weak(l, cand);
    CHECK(strong == ref_match(l, cand, n, 0));
    CHECK(weak == ref_match(l, cand, n, 1));
    CHECK(!strong || weak);
}

/* Our own ETag form: parse_own accepts exactly '"' + 32 lowercase hex +
 * '"', and formatting the hash gives the same bytes back. */
static void check_own_form(const char *p, size_t len)
{
    uint8_t hash[EKV_HASH_BYTES];
    char etag[ETAGKV_ETAG_SIZE];

    if (ekv_etag_parse_own(p, len, hash) == 0) {
        CHECK(len == ETAGKV_ETAG_SIZE - 1);
        ekv_etag_format(hash, etag);
        CHECK(memcmp(etag, p, len) == 0);
    }
    /* The ETag of the line's bytes is always of our form. */
    etagkv_etag_compute(p, len, etag);
    CHECK(strlen(etag) == ETAGKV_ETAG_SIZE - 1);
    CHECK(ekv_etag_parse_own(etag, strlen(etag), NULL) == 0);
}

/* A copy of the list's contents, to prove a rejected line changed none. */
typedef struct snap {
    int present, any;
    size_t n, buf_len;
} snap;

static void check_rejected(const ekv_taglist *l, const snap *s)
{
    CHECK(l->present == s->present && l->any == s->any);
    CHECK(l->n == s->n && l->buf_len == s->buf_len);
}

/* One line: the library against the reference. */
static void check_line(ekv_taglist *l, const fuzz_line *ln)
{
    static ref_tag want[4096];
    snap before = {l->present, l->any, l->n, l->buf_len};
    long ref = ref_parse(ln->p, ln->len, want, 4096);
    etagkv_status st = ekv_taglist_append(l, ln->p, ln->len);

    /* "*" is the whole field value: a star line next to any other line,
     * or a tag line after a star line, makes the field invalid. */
    if (ref == REF_STAR && before.present)
        ref = REF_INVALID;
    if (ref >= 0 && before.any)
        ref = REF_INVALID;
    if (ref == REF_INVALID) {
        CHECK(st == ETAGKV_INVALID_HEADER);
        check_rejected(l, &before);
        return;
    }
    CHECK(st == ETAGKV_OK);
    CHECK(l->present == 1);
    if (ref == REF_STAR) {
        CHECK(l->any == 1 && l->n == 0);
        return;
    }
    CHECK(l->any == 0);
    CHECK(l->n == before.n + (size_t)ref);
    for (size_t i = 0; i < (size_t)ref && i < 4096; i++) {
        const ekv_tag *t = &l->tags[before.n + i];

        CHECK(t->weak == want[i].weak);
        CHECK(t->len == want[i].len);
        CHECK(t->off + t->len <= l->buf_len);
        CHECK(memcmp(l->buf + t->off, want[i].p, t->len) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_line lines[MAX_LINES];
    size_t n = fuzz_split_lines(data, size, lines, MAX_LINES);
    ekv_taglist l;

    memset(&l, 0, sizeof l);
    for (size_t i = 0; i < n; i++) {
        check_line(&l, &lines[i]);
        check_own_form(lines[i].p, lines[i].len);
    }
    /* Every stored tag matches itself weakly, and strongly iff some tag
     * with the same bytes is strong; every line is a candidate too. */
    for (size_t i = 0; i < l.n; i++)
        check_match(&l, l.buf + l.tags[i].off, l.tags[i].len);
    for (size_t i = 0; i < n; i++)
        check_match(&l, lines[i].p, lines[i].len);
    ekv_taglist_clear(&l);
    CHECK(l.tags == NULL && l.buf == NULL && l.n == 0 && !l.present);
    return 0;
}
