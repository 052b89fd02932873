/*
 * etag.c -- content hashes, ETags and entity-tag lists.
 *
 * An etagkv ETag is '"' + 32 lowercase hex digits of XXH3-128(value) + '"'
 * (DESIGN §1): a strong validator in the sense of RFC 9110 §8.8.1, which
 * anyone can recompute from the bytes alone.  This file also parses the
 * values of If-Match and If-None-Match (RFC 9110 §13.1.1, §13.1.2) and
 * compares their entity-tags with a current ETag (§8.8.3.2).
 *
 * Pure: no I/O, no store, no locale, no global state except the per-thread
 * diagnostic that ekv_fail() records.
 */

/* Inline xxHash so the compiler can specialise XXH3 for this call site:
 * measured ~2.4x faster for large values than calling into libxxhash. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <stdlib.h>
#include <string.h>

#include "internal.h"

_Static_assert(ETAGKV_ETAG_SIZE == 2 * EKV_HASH_BYTES + 3,
               "an ETag is a quote, two hex digits per hash byte, a quote "
               "and a NUL");

/* ---- hashing and our own ETag form -------------------------------------- */

void ekv_hash128(const void *value, size_t len, uint8_t out[EKV_HASH_BYTES])
{
    static const char empty[1];
    XXH128_canonical_t canon;

    /* The API allows NULL for an empty value.  A NULL value with len > 0 is
     * a caller mistake that this void function cannot report; hashing it as
     * empty is defined behaviour, reading through NULL is not. */
    if (value == NULL) {
        value = empty;
        len = 0;
    }
    /* Canonical form is big-endian, so the ETag is the same on every host
     * and equals what `xxhsum -H2` prints for the same bytes. */
    XXH128_canonicalFromHash(&canon, XXH3_128bits(value, len));
    memcpy(out, canon.digest, EKV_HASH_BYTES);
}

/* Two lowercase hex digits per byte value.  Formatting runs on every read
 * (the ETag is part of the metadata every read returns), and a digit pair
 * per table load is about twice as fast as two nibble lookups. */
static const char hex_pairs[256][2] = {
#define D(n) ((char)((n) < 10 ? '0' + (n) : 'a' + (n)-10))
#define P(h, l)                                                                \
    {                                                                          \
        D(h), D(l)                                                             \
    }
#define ROW(h)                                                                 \
    P(h, 0), P(h, 1), P(h, 2), P(h, 3), P(h, 4), P(h, 5), P(h, 6), P(h, 7),    \
        P(h, 8), P(h, 9), P(h, 10), P(h, 11), P(h, 12), P(h, 13), P(h, 14),    \
        P(h, 15)
    ROW(0), ROW(1), ROW(2),  ROW(3),  ROW(4),  ROW(5),  ROW(6),  ROW(7),
    ROW(8), ROW(9), ROW(10), ROW(11), ROW(12), ROW(13), ROW(14), ROW(15),
#undef ROW
#undef P
#undef D
};

void ekv_etag_format(const uint8_t hash[EKV_HASH_BYTES],
                     char out[ETAGKV_ETAG_SIZE])
{
    /* RFC 9110 §8.8.3: the opaque-tag carries its double quotes. */
    out[0] = '"';
    for (size_t i = 0; i < EKV_HASH_BYTES; i++)
        memcpy(out + 1 + 2 * i, hex_pairs[hash[i]], 2);
    out[ETAGKV_ETAG_SIZE - 2] = '"';
    out[ETAGKV_ETAG_SIZE - 1] = '\0';
}

void etagkv_etag_compute(const void *value, size_t len,
                         char out[ETAGKV_ETAG_SIZE])
{
    uint8_t hash[EKV_HASH_BYTES];

    if (out == NULL)
        return;
    ekv_hash128(value, len, hash);
    ekv_etag_format(hash, out);
}

/* One more than the value of each byte as a lowercase hex digit, 0 for
 * any other byte (so that the table needs no initialiser for them).
 * Uppercase is refused: we only ever emit lowercase, and entity-tags
 * compare octet by octet (§8.8.3.2), so "ABC..." could never match one of
 * ours anyway.  A table, so that the loop below has no branch per digit:
 * every etagkv_cond_if_match() parses one ETag. */
static const unsigned char hex_digit_plus_one[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,
    ['6'] = 7,  ['7'] = 8,  ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12,
    ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

/* out may be NULL to only check the form.  On failure out is untouched. */
int ekv_etag_parse_own(const char *etag, size_t len,
                       uint8_t out[EKV_HASH_BYTES])
{
    uint8_t hash[EKV_HASH_BYTES];
    int bad = 0;

    if (etag == NULL || len != ETAGKV_ETAG_SIZE - 1 || etag[0] != '"' ||
        etag[len - 1] != '"')
        return -1;
    for (size_t i = 0; i < EKV_HASH_BYTES; i++) {
        int hi = hex_digit_plus_one[(unsigned char)etag[1 + 2 * i]] - 1;
        int lo = hex_digit_plus_one[(unsigned char)etag[2 + 2 * i]] - 1;

        bad |= hi | lo; /* negative iff some digit was not one */
        hash[i] = (uint8_t)((unsigned)hi << 4 | (unsigned)lo);
    }
    if (bad < 0)
        return -1;
    if (out != NULL)
        memcpy(out, hash, EKV_HASH_BYTES);
    return 0;
}

/* ---- entity-tag lists: syntax --------------------------------------------
 *
 * RFC 9110 §13.1.1: If-Match = "*" / #entity-tag (If-None-Match the same).
 * §8.8.3:  entity-tag = [ weak ] opaque-tag
 *          weak       = %s"W/"
 *          opaque-tag = DQUOTE *etagc DQUOTE
 *          etagc      = %x21 / %x23-7E / obs-text
 * §5.6.1:  #element = [ element ] *( OWS "," OWS [ element ] ), and a
 *          recipient tolerates empty elements.
 * §5.6.3:  OWS = *( SP / HTAB )
 *
 * Every scanner below takes the value as (s, len) and checks i < len before
 * each read: header values are not NUL-terminated. */

/* Where one entity-tag sits in the header value. */
typedef struct tag_span {
    size_t off; /* of the opaque-tag's opening DQUOTE */
    size_t len; /* of the opaque-tag, both DQUOTEs included */
    int weak;
} tag_span;

/* §8.8.3 etagc: %x21 / %x23-7E / obs-text (%x80-FF).  That is every byte
 * above SP except DQUOTE and DEL: no controls, no NUL, no whitespace. */
static int is_etagc(unsigned char c)
{
    return c > 0x20 && c != 0x22 && c != 0x7F;
}

/* §5.6.3: skip SP and HTAB from i; returns the first other index or len. */
static size_t skip_ows(const char *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

/* 1 if the whole value is "*", surrounding OWS aside.  §13.1.1 makes "*"
 * an alternative to the list, not a member of it, so "*" next to anything
 * else (even an empty element, "*,") is not this form, and the list parser
 * then rejects the bare '*'. */
static int is_star(const char *s, size_t len)
{
    size_t i = skip_ows(s, len, 0);

    if (i == len || s[i] != '*')
        return 0;
    return skip_ows(s, len, i + 1) == len;
}

/* Parse one entity-tag at s[*pos] (§8.8.3).  "W/" is case-sensitive (%s),
 * and nothing, not even OWS, may sit between it and the opaque-tag.  There
 * is no escaping inside an opaque-tag: the first DQUOTE closes it.  On
 * success moves *pos past the closing DQUOTE and returns 0; else -1 with
 * *pos at the offending byte (or len). */
static int scan_entity_tag(const char *s, size_t len, size_t *pos, tag_span *t)
{
    size_t i = *pos;

    t->weak = 0;
    if (len - i >= 2 && s[i] == 'W' && s[i + 1] == '/') {
        t->weak = 1;
        i += 2;
    }
    if (i == len || s[i] != '"') {
        *pos = i;
        return -1;
    }
    t->off = i++;
    while (i < len && is_etagc((unsigned char)s[i]))
        i++;
    if (i == len || s[i] != '"') {
        *pos = i; /* unterminated, or a byte that etagc does not allow */
        return -1;
    }
    t->len = ++i - t->off;
    *pos = i;
    return 0;
}

/* Find the next element of a #entity-tag list from *pos (§5.6.1): empty
 * elements and the OWS around commas are skipped, and a tag must then be
 * followed by OWS and a comma or the end of the value, so `"a" "b"` is an
 * error rather than two tags.  Returns 1 with *t filled, 0 at the end of
 * the value, -1 on a syntax error with *pos at the offending byte. */
static int next_tag(const char *s, size_t len, size_t *pos, tag_span *t)
{
    size_t i = *pos;

    for (;;) {
        i = skip_ows(s, len, i);
        if (i == len) {
            *pos = i;
            return 0;
        }
        if (s[i] != ',')
            break;
        i++;
    }
    if (scan_entity_tag(s, len, &i, t) != 0) {
        *pos = i;
        return -1;
    }
    i = skip_ows(s, len, i);
    *pos = i;
    if (i < len && s[i] != ',')
        return -1;
    return 1;
}

/* Validate a whole list value before anything is stored, so that a syntax
 * error can never leave half a header line in the list; count its tags and
 * the bytes of their opaque-tags so that storage is reserved once.  On
 * failure *ntags and *nbytes are untouched. */
static etagkv_status measure_list(const char *s, size_t len, size_t *ntags,
                                  size_t *nbytes)
{
    size_t pos = 0, n = 0, bytes = 0;
    tag_span t;
    int r;

    for (r = next_tag(s, len, &pos, &t); r > 0;
         r = next_tag(s, len, &pos, &t)) {
        n++;
        bytes += t.len;
    }
    if (r < 0)
        return ekv_fail(ETAGKV_INVALID_HEADER,
                        "invalid entity-tag list at byte %zu", pos);
    /* #entity-tag would allow an empty list, but the API contract makes it
     * a client error: an If-Match with no tag could never be true, and an
     * empty value is far more likely a client bug than a request for 412. */
    if (n == 0)
        return ekv_fail(ETAGKV_INVALID_HEADER,
                        "entity-tag list has no element");
    *ntags = n;
    *nbytes = bytes;
    return ETAGKV_OK;
}

/* ---- entity-tag lists: storage ------------------------------------------ */

/* Grow an array of *cap elements of sz bytes to hold at least need (need >
 * *cap), doubling so that many header lines still cost linear time overall.
 * Returns the new array and updates *cap, or returns NULL with arr and *cap
 * untouched when out of memory or the size would overflow. */
static void *grow_array(void *arr, size_t *cap, size_t need, size_t sz)
{
    size_t n = *cap > 0 ? *cap : 16;
    void *p;

    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    if (n > SIZE_MAX / sz)
        return NULL;
    p = realloc(arr, n * sz);
    if (p == NULL)
        return NULL;
    *cap = n;
    return p;
}

/* Make room for ntags more tags and nbytes more opaque-tag bytes.  On
 * failure the list's contents are unchanged (an array that did grow keeps
 * its larger capacity, which is harmless). */
static etagkv_status reserve(ekv_taglist *l, size_t ntags, size_t nbytes)
{
    void *p;

    if (ntags > SIZE_MAX - l->n || nbytes > SIZE_MAX - l->buf_len)
        return ekv_fail(ETAGKV_NO_MEMORY, "entity-tag list too long");
    if (l->n + ntags > l->cap) {
        p = grow_array(l->tags, &l->cap, l->n + ntags, sizeof(ekv_tag));
        if (p == NULL)
            return ekv_fail(ETAGKV_NO_MEMORY,
                            "out of memory for %zu entity-tags", l->n + ntags);
        l->tags = p;
    }
    if (l->buf_len + nbytes > l->buf_cap) {
        p = grow_array(l->buf, &l->buf_cap, l->buf_len + nbytes, 1);
        if (p == NULL)
            return ekv_fail(ETAGKV_NO_MEMORY,
                            "out of memory for %zu bytes of entity-tags",
                            l->buf_len + nbytes);
        l->buf = p;
    }
    return ETAGKV_OK;
}

/* Second pass over a value that measure_list() accepted and reserve() made
 * room for: copies each opaque-tag, quotes included, behind the previous
 * ones.  Cannot fail. */
static void store_tags(ekv_taglist *l, const char *s, size_t len)
{
    size_t pos = 0;
    tag_span t;

    while (next_tag(s, len, &pos, &t) > 0) {
        ekv_tag *e = &l->tags[l->n++];

        e->off = l->buf_len;
        e->len = t.len;
        e->weak = t.weak;
        memcpy(l->buf + l->buf_len, s + t.off, t.len);
        l->buf_len += t.len;
    }
}

/* "*" stands for the whole field value (§13.1.1), and several lines of
 * one field are one comma-separated value (§5.3), so a "*" line next to
 * any earlier line, "*" or tags, makes the combined value invalid. */
static etagkv_status add_star(ekv_taglist *l)
{
    if (l->present)
        return ekv_fail(ETAGKV_INVALID_HEADER,
                        "\"*\" combined with another header line");
    l->present = 1;
    l->any = 1;
    return ETAGKV_OK;
}

etagkv_status ekv_taglist_append(ekv_taglist *l, const char *value, size_t len)
{
    size_t ntags = 0, nbytes = 0;
    etagkv_status st;

    if (l == NULL || (value == NULL && len > 0))
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "ekv_taglist_append: NULL list or value");
    if (is_star(value, len))
        return add_star(l);
    st = measure_list(value, len, &ntags, &nbytes);
    if (st != ETAGKV_OK)
        return st;
    /* Same rule as add_star(), seen from the other side: a tag line after
     * a "*" line.  Checked after the syntax so that a malformed line is
     * reported as such. */
    if (l->any)
        return ekv_fail(ETAGKV_INVALID_HEADER,
                        "entity-tags combined with a \"*\" header line");
    st = reserve(l, ntags, nbytes);
    if (st != ETAGKV_OK)
        return st;
    store_tags(l, value, len);
    l->present = 1;
    return ETAGKV_OK;
}

void ekv_taglist_clear(ekv_taglist *l)
{
    if (l == NULL)
        return;
    free(l->tags);
    free(l->buf);
    memset(l, 0, sizeof(*l));
}

/* ---- entity-tag lists: comparison --------------------------------------- */

/* §8.8.3.2: two entity-tags match when their opaque-tags are identical
 * octet by octet; strong comparison additionally requires both to be
 * strong.  The current ETag is always strong, so only the listed tag's
 * weakness matters.  A "*" list or an absent one matches nothing here:
 * callers decide what "*" means (exists or not). */
static int match_tags(const ekv_taglist *l, const char *etag, int weak_ok)
{
    size_t len, i;

    if (l == NULL || etag == NULL || !l->present || l->any)
        return 0;
    len = strlen(etag);
    for (i = 0; i < l->n; i++) {
        const ekv_tag *t = &l->tags[i];

        if (t->weak && !weak_ok)
            continue;
        if (t->len == len && memcmp(l->buf + t->off, etag, len) == 0)
            return 1;
    }
    return 0;
}

int ekv_taglist_match_strong(const ekv_taglist *l, const char *etag)
{
    return match_tags(l, etag, 0);
}

int ekv_taglist_match_weak(const ekv_taglist *l, const char *etag)
{
    return match_tags(l, etag, 1);
}

/* ---- hashing several pieces ------------------------------------------------
 */

void ekv_hash128_parts(const ekv_part *parts, size_t n,
                       uint8_t out[EKV_HASH_BYTES])
{
    XXH3_state_t state;
    XXH128_canonical_t canon;

    /* A stack state is fine with XXH_INLINE_ALL; reset cannot fail on it,
     * and update fails only for a NULL input with a non-zero length. */
    (void)XXH3_128bits_reset(&state);
    for (size_t i = 0; i < n; i++)
        if (parts[i].len > 0)
            (void)XXH3_128bits_update(&state, parts[i].p, parts[i].len);
    XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(&state));
    memcpy(out, canon.digest, EKV_HASH_BYTES);
}
