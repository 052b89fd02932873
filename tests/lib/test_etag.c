/*
 * test_etag.c -- lib/etag.c: the ETag of a value (DESIGN §1), our own ETag
 * form, If-Match / If-None-Match list parsing (RFC 9110 §13.1.1, §13.1.2,
 * §8.8.3, §5.6.1) and strong/weak comparison (§8.8.3.2).
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1 /* MAP_ANONYMOUS */
#endif

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h> /* the plain library API, independent of lib/etag.c */

#include "internal.h"
#include "testutil.h"

#define S(lit) lit, sizeof(lit) - 1
#define NROWS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- helpers ------------------------------------------------------------ */

/* The expected ETag of a value, computed without lib/etag.c: XXH3-128 via
 * libxxhash, canonical (big-endian) bytes, lowercase hex, quoted. */
static void expected_etag(const void *value, size_t len,
                          char out[ETAGKV_ETAG_SIZE])
{
    XXH128_canonical_t canon;
    size_t i;

    XXH128_canonicalFromHash(&canon, XXH3_128bits(value, len));
    out[0] = '"';
    for (i = 0; i < sizeof(canon.digest); i++)
        snprintf(out + 1 + 2 * i, 3, "%02x", (unsigned)canon.digest[i]);
    out[33] = '"';
    out[34] = '\0';
}

/* Bytes of tag i of l, quotes included. */
static const char *tag_bytes(const ekv_taglist *l, size_t i)
{
    return l->buf + l->tags[i].off;
}

static void assert_tag(const ekv_taglist *l, size_t i, const char *want,
                       int weak)
{
    ck_assert_uint_lt(i, l->n);
    ck_assert_uint_eq(l->tags[i].len, strlen(want));
    ck_assert_mem_eq(tag_bytes(l, i), want, strlen(want));
    ck_assert_int_eq(l->tags[i].weak, weak);
}

/* A copy of everything observable in a list, to prove a call changed
 * nothing. */
typedef struct snapshot {
    int present, any;
    size_t n, buf_len;
    ekv_tag *tags;
    char *buf;
} snapshot;

static void snap_take(snapshot *s, const ekv_taglist *l)
{
    s->present = l->present;
    s->any = l->any;
    s->n = l->n;
    s->buf_len = l->buf_len;
    s->tags = malloc(l->n * sizeof(ekv_tag) + 1);
    s->buf = malloc(l->buf_len + 1);
    ck_assert_ptr_nonnull(s->tags);
    ck_assert_ptr_nonnull(s->buf);
    if (l->n > 0)
        memcpy(s->tags, l->tags, l->n * sizeof(ekv_tag));
    if (l->buf_len > 0)
        memcpy(s->buf, l->buf, l->buf_len);
}

static void snap_assert_same(const snapshot *s, const ekv_taglist *l)
{
    size_t i;

    ck_assert_int_eq(l->present, s->present);
    ck_assert_int_eq(l->any, s->any);
    ck_assert_uint_eq(l->n, s->n);
    ck_assert_uint_eq(l->buf_len, s->buf_len);
    /* field by field: an ekv_tag has padding, which memcmp would read */
    for (i = 0; i < s->n; i++) {
        ck_assert_uint_eq(l->tags[i].off, s->tags[i].off);
        ck_assert_uint_eq(l->tags[i].len, s->tags[i].len);
        ck_assert_int_eq(l->tags[i].weak, s->tags[i].weak);
    }
    if (s->buf_len > 0)
        ck_assert_mem_eq(l->buf, s->buf, s->buf_len);
}

static void snap_free(snapshot *s)
{
    free(s->tags);
    free(s->buf);
}

/* Map size bytes so that the byte after the last one is the first byte of
 * a PROT_NONE page: any read past the end faults (picohttpparser's test
 * trick).  Returns the start of the size bytes; *base and *map_len are for
 * munmap. */
static char *guarded_alloc(size_t size, void **base, size_t *map_len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = (size + page - 1) / page * page;
    char *p;

    if (body == 0)
        body = page;
    *map_len = body + page;
    p = mmap(NULL, *map_len, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    ck_assert_int_eq(mprotect(p + body, page, PROT_NONE), 0);
    *base = p;
    return p + body - size;
}

/* ---- the list grammar, row by row --------------------------------------- */

typedef struct list_row {
    const char *in;
    size_t len;
    etagkv_status st;
    size_t n;          /* tags stored */
    int any;           /* the value was "*" */
    const char *first; /* first opaque-tag with its quotes, or NULL */
    int first_weak;
} list_row;

#define OK ETAGKV_OK
#define BAD ETAGKV_INVALID_HEADER

static const list_row list_rows[] = {
    /* RFC 9110 §8.8.3: a strong entity-tag is a quoted opaque-tag */
    {S("\"xyzzy\""), OK, 1, 0, "\"xyzzy\"", 0},
    /* §8.8.3: W/ marks a weak tag and is not part of the opaque-tag */
    {S("W/\"xyzzy\""), OK, 1, 0, "\"xyzzy\"", 1},
    /* §13.1.1: the example list */
    {S("\"xyzzy\", \"r2d2xxxx\", \"c3piozzzz\""), OK, 3, 0, "\"xyzzy\"", 0},
    /* §13.1.2: the example list with weak tags */
    {S("W/\"xyzzy\", W/\"r2d2xxxx\", W/\"c3piozzzz\""), OK, 3, 0, "\"xyzzy\"",
     1},
    /* §8.8.3: strong and weak tags mix in one list */
    {S("\"a\", W/\"b\""), OK, 2, 0, "\"a\"", 0},
    /* §5.6.1: no OWS around the comma at all */
    {S("\"a\",\"b\",\"c\""), OK, 3, 0, "\"a\"", 0},
    /* §5.6.3: OWS is SP or HTAB, any amount */
    {S("\"a\"\t,\t\"b\"  ,   \"c\""), OK, 3, 0, "\"a\"", 0},
    /* §5.6.1: leading and trailing OWS of the whole value */
    {S(" \t \"a\" \t "), OK, 1, 0, "\"a\"", 0},
    /* §5.6.1.2: empty elements are tolerated */
    {S(", \"a\",, \"b\" ,"), OK, 2, 0, "\"a\"", 0},
    {S(",,,W/\"a\""), OK, 1, 0, "\"a\"", 1},
    {S("\"a\",,,, ,\t,"), OK, 1, 0, "\"a\"", 0},
    /* §8.8.3: *etagc allows an empty opaque-tag */
    {S("\"\""), OK, 1, 0, "\"\"", 0},
    {S("W/\"\""), OK, 1, 0, "\"\"", 1},
    /* §8.8.3: a quoted star is an ordinary tag, not the "*" form */
    {S("\"*\""), OK, 1, 0, "\"*\"", 0},
    /* §8.8.3: etagc is every visible ASCII byte except DQUOTE */
    {S("\"!#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~\""), OK, 1, 0,
     "\"!#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~\"", 0},
    /* §8.8.3: a comma inside an opaque-tag does not split the list */
    {S("\"a,b\", \"c\""), OK, 2, 0, "\"a,b\"", 0},
    /* §8.8.3: obs-text %x80-FF is etagc */
    {S("\"\x80\xff\xc3\xa9\""), OK, 1, 0, "\"\x80\xff\xc3\xa9\"", 0},
    /* §8.8.3: a W inside an opaque-tag is just a byte */
    {S("\"W/\""), OK, 1, 0, "\"W/\"", 0},
    /* §13.1.1: "*" alone, with or without surrounding OWS */
    {S("*"), OK, 0, 1, NULL, 0},
    {S(" * "), OK, 0, 1, NULL, 0},
    {S("\t*\t"), OK, 0, 1, NULL, 0},

    /* §13.1.1: "*" is an alternative to the list, never a member */
    {S("*, \"a\""), BAD, 0, 0, NULL, 0},
    {S("\"a\", *"), BAD, 0, 0, NULL, 0},
    {S("*,"), BAD, 0, 0, NULL, 0},
    {S(",*"), BAD, 0, 0, NULL, 0},
    {S("**"), BAD, 0, 0, NULL, 0},
    {S("* *"), BAD, 0, 0, NULL, 0},
    {S("W/*"), BAD, 0, 0, NULL, 0},
    /* §8.8.3: the opaque-tag must be quoted */
    {S("xyzzy"), BAD, 0, 0, NULL, 0},
    {S("\"a\", b"), BAD, 0, 0, NULL, 0},
    {S("W/xyzzy"), BAD, 0, 0, NULL, 0},
    {S("'a'"), BAD, 0, 0, NULL, 0},
    /* §8.8.3: a lone or unterminated opaque-tag */
    {S("\""), BAD, 0, 0, NULL, 0},
    {S("\"xyzzy"), BAD, 0, 0, NULL, 0},
    {S("\"a\", \"b"), BAD, 0, 0, NULL, 0},
    {S("W/\""), BAD, 0, 0, NULL, 0},
    {S("\"a\",\""), BAD, 0, 0, NULL, 0},
    /* §8.8.3: W/ without an opaque-tag, or with OWS before it */
    {S("W/"), BAD, 0, 0, NULL, 0},
    {S("W"), BAD, 0, 0, NULL, 0},
    {S("W/ \"a\""), BAD, 0, 0, NULL, 0},
    {S("W/W/\"a\""), BAD, 0, 0, NULL, 0},
    /* §8.8.3: weak = %s"W/" is case-sensitive */
    {S("w/\"x\""), BAD, 0, 0, NULL, 0},
    /* §5.6.1: list members are separated by commas */
    {S("\"a\" \"b\""), BAD, 0, 0, NULL, 0},
    {S("\"a\"\"b\""), BAD, 0, 0, NULL, 0},
    {S("\"a\"W/\"b\""), BAD, 0, 0, NULL, 0},
    /* §8.8.3: nothing may follow an opaque-tag but OWS and a comma */
    {S("\"a\"x"), BAD, 0, 0, NULL, 0},
    {S("\"a\";q=1"), BAD, 0, 0, NULL, 0},
    {S("\"a\"b\""), BAD, 0, 0, NULL, 0},
    /* §8.8.3: no backslash escapes: the first DQUOTE closes the tag */
    {S("\"a\\\"b\""), BAD, 0, 0, NULL, 0},
    /* §8.8.3: SP, HTAB, controls and DEL are not etagc */
    {S("\"a b\""), BAD, 0, 0, NULL, 0},
    {S("\"a\tb\""), BAD, 0, 0, NULL, 0},
    {S("\"a\x01\""), BAD, 0, 0, NULL, 0},
    {S("\"a\x7f\""), BAD, 0, 0, NULL, 0},
    /* §8.8.3: an embedded NUL byte is not etagc, nor OWS between tags */
    {S("\"a\0b\""), BAD, 0, 0, NULL, 0},
    {S("\"a\",\0\"b\""), BAD, 0, 0, NULL, 0},
    {S("\"a\"\0"), BAD, 0, 0, NULL, 0},
    /* §5.6.3: OWS is only SP and HTAB; CR, LF and VT are not */
    {S("\"a\",\r\n \"b\""), BAD, 0, 0, NULL, 0},
    {S("\v\"a\""), BAD, 0, 0, NULL, 0},
    /* etagkv.h: a value with no element at all is invalid */
    {S(""), BAD, 0, 0, NULL, 0},
    {S(" "), BAD, 0, 0, NULL, 0},
    {S(" \t "), BAD, 0, 0, NULL, 0},
    {S(","), BAD, 0, 0, NULL, 0},
    {S(" , ,, \t,"), BAD, 0, 0, NULL, 0},
};

START_TEST(header_values_parse_as_the_row_says)
{
    const list_row *r = &list_rows[_i];
    ekv_taglist l = {0};
    etagkv_status st = ekv_taglist_append(&l, r->in, r->len);

    ck_assert_msg(st == r->st, "row %d \"%.*s\": got %s, want %s", _i,
                  (int)r->len, r->in, etagkv_status_name(st),
                  etagkv_status_name(r->st));
    ck_assert_uint_eq(l.n, r->n);
    ck_assert_int_eq(l.any, r->any);
    ck_assert_int_eq(l.present, r->st == OK);
    if (r->first != NULL)
        assert_tag(&l, 0, r->first, r->first_weak);
    if (r->st != OK) {
        /* nothing is stored or allocated for a rejected line */
        ck_assert_uint_eq(l.buf_len, 0);
        ck_assert_ptr_null(l.tags);
        ck_assert_ptr_null(l.buf);
    }
    ekv_taglist_clear(&l);
}
END_TEST

START_TEST(rejected_line_leaves_a_tag_list_unchanged)
{
    const list_row *r = &list_rows[_i];
    ekv_taglist l = {0};
    snapshot s;

    ck_assert_int_eq(ekv_taglist_append(&l, S("\"a\", W/\"b\"")), OK);
    snap_take(&s, &l);
    if (r->st == OK && !r->any) {
        /* a valid list line extends the list (§5.3) */
        ck_assert_int_eq(ekv_taglist_append(&l, r->in, r->len), OK);
        ck_assert_uint_eq(l.n, s.n + r->n);
        ck_assert_mem_eq(l.buf, s.buf, s.buf_len);
        assert_tag(&l, s.n, r->first, r->first_weak);
    } else {
        /* a syntax error, or "*" after a tag line (§13.1.1) */
        ck_assert_msg(ekv_taglist_append(&l, r->in, r->len) == BAD,
                      "row %d \"%.*s\" was accepted", _i, (int)r->len, r->in);
        snap_assert_same(&s, &l);
    }
    snap_free(&s);
    ekv_taglist_clear(&l);
}
END_TEST

START_TEST(rejected_line_leaves_a_star_list_unchanged)
{
    const list_row *r = &list_rows[_i];
    ekv_taglist l = {0};
    snapshot s;

    /* §13.1.1: after a "*" line nothing else may follow, valid or not */
    ck_assert_int_eq(ekv_taglist_append(&l, S("*")), OK);
    snap_take(&s, &l);
    ck_assert_msg(ekv_taglist_append(&l, r->in, r->len) == BAD,
                  "row %d \"%.*s\" was accepted after \"*\"", _i, (int)r->len,
                  r->in);
    snap_assert_same(&s, &l);
    snap_free(&s);
    ekv_taglist_clear(&l);
}
END_TEST

/* Parse the k bytes at p (which end at a guard page) twice into one list,
 * once as NULL-or-p and once as p, and assert that statuses and the list
 * are exactly those of the same bytes parsed from an ordinary heap copy:
 * an over-read faults, and a read of the wrong bytes shows as a
 * difference. */
static void assert_parses_as_heap_copy(const char *p, size_t k)
{
    char *heap = malloc(k + 1);
    ekv_taglist lh = {0}, lg = {0};
    etagkv_status h1, h2, g1, g2;
    snapshot snap;

    ck_assert_ptr_nonnull(heap);
    memcpy(heap, p, k);
    h1 = ekv_taglist_append(&lh, k > 0 ? heap : NULL, k);
    h2 = ekv_taglist_append(&lh, heap, k);
    g1 = ekv_taglist_append(&lg, k > 0 ? p : NULL, k);
    g2 = ekv_taglist_append(&lg, p, k);
    ck_assert_int_eq(g1, h1);
    ck_assert_int_eq(g2, h2);
    snap_take(&snap, &lh);
    snap_assert_same(&snap, &lg);
    snap_free(&snap);
    ck_assert_int_eq(ekv_etag_parse_own(p, k, NULL),
                     ekv_etag_parse_own(heap, k, NULL));
    ekv_taglist_clear(&lh);
    ekv_taglist_clear(&lg);
    free(heap);
}

START_TEST(no_prefix_of_a_value_is_read_past_its_end)
{
    const list_row *r = &list_rows[_i];
    void *base;
    size_t map_len, k;
    char *end = guarded_alloc(0, &base, &map_len);

    /* picohttpparser style: the value ends where a PROT_NONE page begins,
     * so one byte of over-read is a SIGSEGV, for every prefix length. */
    for (k = 0; k <= r->len; k++) {
        char *p = end - k;

        memcpy(p, r->in, k);
        assert_parses_as_heap_copy(p, k);
    }
    munmap(base, map_len);
}
END_TEST

START_TEST(absent_value_of_length_zero_is_an_invalid_header)
{
    ekv_taglist l = {0};

    /* etagkv.h: no element at all is invalid; NULL is allowed for len 0 */
    ck_assert_int_eq(ekv_taglist_append(&l, NULL, 0), BAD);
    ck_assert_int_eq(l.present, 0);
}
END_TEST

START_TEST(absent_value_with_a_length_is_an_invalid_argument)
{
    ekv_taglist l = {0};

    ck_assert_int_eq(ekv_taglist_append(&l, NULL, 1), ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(ekv_taglist_append(NULL, S("\"a\"")),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(l.present, 0);
}
END_TEST

START_TEST(syntax_error_is_described_for_diagnostics)
{
    ekv_taglist l = {0};

    ekv_clear_error();
    ck_assert_int_eq(ekv_taglist_append(&l, S("\"a\", b")), BAD);
    ck_assert_str_eq(etagkv_last_error_detail(),
                     "invalid entity-tag list at byte 5");
}
END_TEST

/* ---- several lines, many tags ------------------------------------------- */

START_TEST(several_header_lines_extend_one_list)
{
    ekv_taglist l = {0};

    /* RFC 9110 §5.3: lines of one field name form one comma-separated list */
    ck_assert_int_eq(ekv_taglist_append(&l, S("\"a\"")), OK);
    ck_assert_int_eq(ekv_taglist_append(&l, S(" W/\"bb\" , \"c\"")), OK);
    ck_assert_int_eq(l.present, 1);
    ck_assert_int_eq(l.any, 0);
    ck_assert_uint_eq(l.n, 3);
    assert_tag(&l, 0, "\"a\"", 0);
    assert_tag(&l, 1, "\"bb\"", 1);
    assert_tag(&l, 2, "\"c\"", 0);
    /* opaque-tags sit back to back in buf */
    ck_assert_uint_eq(l.buf_len, 10);
    ck_assert_mem_eq(l.buf, "\"a\"\"bb\"\"c\"", 10);
    ck_assert_uint_eq(l.tags[1].off, 3);
    ck_assert_uint_eq(l.tags[2].off, 7);
    ekv_taglist_clear(&l);
}
END_TEST

START_TEST(second_star_line_is_invalid)
{
    ekv_taglist l = {0};

    /* §13.1.1: "*" combined with anything, even another "*" */
    ck_assert_int_eq(ekv_taglist_append(&l, S("*")), OK);
    ck_assert_int_eq(ekv_taglist_append(&l, S("*")), BAD);
    ck_assert_int_eq(l.any, 1);
    ck_assert_uint_eq(l.n, 0);
    ekv_taglist_clear(&l);
}
END_TEST

START_TEST(tag_line_after_a_star_line_is_invalid)
{
    ekv_taglist l = {0};

    /* §13.1.1 with §5.3: "*, "a"" spread over two lines */
    ck_assert_int_eq(ekv_taglist_append(&l, S("*")), OK);
    ck_assert_int_eq(ekv_taglist_append(&l, S("\"a\"")), BAD);
    ck_assert_int_eq(l.any, 1);
    ck_assert_uint_eq(l.n, 0);
    ck_assert_uint_eq(l.buf_len, 0);
    ekv_taglist_clear(&l);
}
END_TEST

START_TEST(star_line_after_a_tag_line_is_invalid)
{
    ekv_taglist l = {0};

    /* §13.1.1 with §5.3: ""a", *" spread over two lines */
    ck_assert_int_eq(ekv_taglist_append(&l, S("\"a\"")), OK);
    ck_assert_int_eq(ekv_taglist_append(&l, S(" * ")), BAD);
    ck_assert_int_eq(l.any, 0);
    ck_assert_uint_eq(l.n, 1);
    assert_tag(&l, 0, "\"a\"", 0);
    ekv_taglist_clear(&l);
}
END_TEST

/* "t0", W/"t1", "t2", ... as one header value; *len_out is its length. */
static char *make_long_list(size_t ntags, size_t *len_out)
{
    size_t cap = ntags * 16 + 1, len = 0, i;
    char *s = malloc(cap);

    ck_assert_ptr_nonnull(s);
    for (i = 0; i < ntags; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%s\"t%zu\"",
                                i > 0 ? ", " : "", i % 2 ? "W/" : "", i);
    *len_out = len;
    return s;
}

START_TEST(five_thousand_tags_in_one_line_are_all_kept_in_order)
{
    ekv_taglist l = {0};
    size_t len, i;
    char *s = make_long_list(5000, &len);
    char want[32];

    ck_assert_int_eq(ekv_taglist_append(&l, s, len), OK);
    ck_assert_uint_eq(l.n, 5000);
    for (i = 0; i < 5000; i++) {
        snprintf(want, sizeof(want), "\"t%zu\"", i);
        assert_tag(&l, i, want, (int)(i % 2));
    }
    ck_assert_int_eq(ekv_taglist_match_strong(&l, "\"t4998\""), 1);
    ck_assert_int_eq(ekv_taglist_match_strong(&l, "\"t4999\""), 0);
    ck_assert_int_eq(ekv_taglist_match_weak(&l, "\"t4999\""), 1);
    ekv_taglist_clear(&l);
    free(s);
}
END_TEST

START_TEST(long_line_is_not_read_past_its_end_at_any_length)
{
    size_t len, k, map_len;
    char *s = make_long_list(300, &len);
    void *base;
    char *end = guarded_alloc(len, &base, &map_len) + len;

    for (k = 0; k <= len; k++) {
        memcpy(end - k, s, k);
        assert_parses_as_heap_copy(end - k, k);
    }
    munmap(base, map_len);
    free(s);
}
END_TEST

START_TEST(thousands_of_empty_elements_are_tolerated)
{
    ekv_taglist l = {0};
    size_t len = 20003;
    char *s = malloc(len);

    /* §5.6.1.2: empty elements are parsed and ignored */
    ck_assert_ptr_nonnull(s);
    memset(s, ',', len);
    memcpy(s + 10000, "\"a\"", 3);
    ck_assert_int_eq(ekv_taglist_append(&l, s, len), OK);
    ck_assert_uint_eq(l.n, 1);
    assert_tag(&l, 0, "\"a\"", 0);
    ekv_taglist_clear(&l);
    free(s);
}
END_TEST

START_TEST(thousands_of_header_lines_extend_one_list)
{
    ekv_taglist l = {0};
    char line[32], want[32];
    size_t i, len, cap = 0, buf_cap = 0, grows = 0;

    for (i = 0; i < 3000; i++) {
        len = (size_t)snprintf(line, sizeof(line), "\"%zu\", W/\"w\"", i);
        ck_assert_int_eq(ekv_taglist_append(&l, line, len), OK);
        grows += (l.cap != cap) + (l.buf_cap != buf_cap);
        cap = l.cap;
        buf_cap = l.buf_cap;
    }
    /* geometric growth: a few dozen reallocations, not one per line, so
     * many lines cost linear time overall */
    ck_assert_uint_le(grows, 32);
    ck_assert_uint_eq(l.n, 6000);
    ck_assert_uint_ge(l.cap, l.n);
    ck_assert_uint_ge(l.buf_cap, l.buf_len);
    for (i = 0; i < 3000; i++) {
        snprintf(want, sizeof(want), "\"%zu\"", i);
        assert_tag(&l, 2 * i, want, 0);
        assert_tag(&l, 2 * i + 1, "\"w\"", 1);
    }
    ekv_taglist_clear(&l);
}
END_TEST

START_TEST(clear_releases_and_zeroes_and_is_safe_twice)
{
    ekv_taglist l = {0};

    ekv_taglist_clear(&l);
    ekv_taglist_clear(NULL);
    ck_assert_int_eq(ekv_taglist_append(&l, S("\"a\", \"b\"")), OK);
    ekv_taglist_clear(&l);
    ck_assert_int_eq(l.present, 0);
    ck_assert_int_eq(l.any, 0);
    ck_assert_uint_eq(l.n, 0);
    ck_assert_uint_eq(l.cap, 0);
    ck_assert_uint_eq(l.buf_len, 0);
    ck_assert_uint_eq(l.buf_cap, 0);
    ck_assert_ptr_null(l.tags);
    ck_assert_ptr_null(l.buf);
    ekv_taglist_clear(&l);
    /* a cleared list is a fresh one: "*" is allowed again */
    ck_assert_int_eq(ekv_taglist_append(&l, S("*")), OK);
    ekv_taglist_clear(&l);
}
END_TEST

/* ---- comparison --------------------------------------------------------- */

typedef struct match_row {
    const char *list;
    const char *current;
    int strong; /* If-Match */
    int weak;   /* If-None-Match */
} match_row;

static const match_row match_rows[] = {
    /* RFC 9110 §8.8.3.2 table, current always strong: "1" vs "1" */
    {"\"1\"", "\"1\"", 1, 1},
    /* §8.8.3.2: W/"1" vs "1": no strong match, weak match */
    {"W/\"1\"", "\"1\"", 0, 1},
    /* §8.8.3.2: different opaque-tags never match */
    {"\"2\"", "\"1\"", 0, 0},
    {"W/\"2\"", "\"1\"", 0, 0},
    /* §13.1.1: any member of the list may match */
    {"\"0\", W/\"2\", \"1\"", "\"1\"", 1, 1},
    {"\"1\", W/\"2\"", "\"2\"", 0, 1},
    /* §8.8.3.2: a weak member before a strong one of the same tag */
    {"W/\"1\", \"1\"", "\"1\"", 1, 1},
    /* §8.8.3.2: octet comparison: no prefixes, no case folding */
    {"\"12\"", "\"1\"", 0, 0},
    {"\"1\"", "\"12\"", 0, 0},
    {"\"ABC\"", "\"abc\"", 0, 0},
    {"\"\"", "\"1\"", 0, 0},
    /* a quoted star is a tag like any other, not "*" */
    {"\"*\"", "\"1\"", 0, 0},
};

START_TEST(strong_and_weak_comparison_follow_the_rfc_table)
{
    const match_row *r = &match_rows[_i];
    ekv_taglist l = {0};

    ck_assert_int_eq(ekv_taglist_append(&l, r->list, strlen(r->list)), OK);
    ck_assert_msg(ekv_taglist_match_strong(&l, r->current) == r->strong,
                  "row %d: strong %s vs %s", _i, r->list, r->current);
    ck_assert_msg(ekv_taglist_match_weak(&l, r->current) == r->weak,
                  "row %d: weak %s vs %s", _i, r->list, r->current);
    ekv_taglist_clear(&l);
}
END_TEST

START_TEST(weak_tag_never_matches_if_match_strong_comparison)
{
    ekv_taglist l = {0};
    char etag[ETAGKV_ETAG_SIZE], line[64];
    size_t len;

    /* §13.1.1: If-Match uses the strong comparison, so W/ never matches */
    etagkv_etag_compute(S("hello"), etag);
    len = (size_t)snprintf(line, sizeof(line), "W/%s", etag);
    ck_assert_int_eq(ekv_taglist_append(&l, line, len), OK);
    ck_assert_int_eq(ekv_taglist_match_strong(&l, etag), 0);
    /* §13.1.2: If-None-Match uses the weak comparison, so it does */
    ck_assert_int_eq(ekv_taglist_match_weak(&l, etag), 1);
    ck_assert_int_eq(ekv_taglist_append(&l, etag, strlen(etag)), OK);
    ck_assert_int_eq(ekv_taglist_match_strong(&l, etag), 1);
    ekv_taglist_clear(&l);
}
END_TEST

START_TEST(star_and_absent_lists_match_nothing_here)
{
    ekv_taglist l = {0};

    /* "*" depends on whether the key exists: callers decide (§13.1.1) */
    ck_assert_int_eq(ekv_taglist_match_strong(&l, "\"a\""), 0);
    ck_assert_int_eq(ekv_taglist_match_weak(&l, "\"a\""), 0);
    ck_assert_int_eq(ekv_taglist_match_strong(NULL, "\"a\""), 0);
    ck_assert_int_eq(ekv_taglist_match_weak(NULL, "\"a\""), 0);
    ck_assert_int_eq(ekv_taglist_append(&l, S("*")), OK);
    ck_assert_int_eq(ekv_taglist_match_strong(&l, "\"a\""), 0);
    ck_assert_int_eq(ekv_taglist_match_weak(&l, "\"a\""), 0);
    ekv_taglist_clear(&l);
}
END_TEST

/* ---- hashing and formatting --------------------------------------------- */

/* Lengths around every branch of XXH3-128: 0, 1-3, 4-8, 9-16, 17-128,
 * 129-240, and the long-input loop (stripes, blocks), up to 1 MiB. */
static const size_t hash_lengths[] = {0,   1,    2,    3,     4,      8,   9,
                                      16,  17,   64,   128,   129,    200, 240,
                                      241, 1024, 1025, 65536, 1048576};

START_TEST(etag_is_xxh3_128_of_the_value_in_canonical_hex)
{
    size_t len = hash_lengths[_i], i;
    unsigned char *v = malloc(len + 1);
    char got[ETAGKV_ETAG_SIZE], want[ETAGKV_ETAG_SIZE];
    uint8_t hash[EKV_HASH_BYTES];
    XXH128_canonical_t canon;

    /* DESIGN §1: anyone can compute the ETag from the bytes alone */
    ck_assert_ptr_nonnull(v);
    for (i = 0; i < len; i++)
        v[i] = (unsigned char)(i * 131 + (i >> 8) + 7);
    expected_etag(v, len, want);
    etagkv_etag_compute(v, len, got);
    ck_assert_str_eq(got, want);
    /* the stored hash is the canonical (big-endian) digest */
    XXH128_canonicalFromHash(&canon, XXH3_128bits(v, len));
    ekv_hash128(v, len, hash);
    ck_assert_mem_eq(hash, canon.digest, EKV_HASH_BYTES);
    /* an unaligned copy of the same bytes has the same ETag */
    memmove(v + 1, v, len);
    etagkv_etag_compute(v + 1, len, got);
    ck_assert_str_eq(got, want);
    free(v);
}
END_TEST

START_TEST(empty_value_etag_is_xxh3_128_of_no_bytes)
{
    char got[ETAGKV_ETAG_SIZE], want[ETAGKV_ETAG_SIZE];

    /* the known vector comes from libxxhash at run time, not a guess */
    expected_etag("", 0, want);
    etagkv_etag_compute("", 0, got);
    ck_assert_str_eq(got, want);
    /* etagkv.h: value may be NULL when len is 0 */
    etagkv_etag_compute(NULL, 0, got);
    ck_assert_str_eq(got, want);
}
END_TEST

START_TEST(etag_is_a_quote_32_lowercase_hex_digits_a_quote_and_a_nul)
{
    static const char *values[] = {"", "a", "hello world", "\xff\xfe"};
    char got[ETAGKV_ETAG_SIZE + 1];
    size_t v, i;

    for (v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
        memset(got, 'X', sizeof(got));
        etagkv_etag_compute(values[v], strlen(values[v]), got);
        ck_assert_uint_eq(strlen(got), 34);
        ck_assert_int_eq(got[34], '\0');
        ck_assert_int_eq(got[35], 'X'); /* nothing written past the size */
        ck_assert_int_eq(got[0], '"');
        ck_assert_int_eq(got[33], '"');
        for (i = 1; i < 33; i++)
            ck_assert_msg((got[i] >= '0' && got[i] <= '9') ||
                              (got[i] >= 'a' && got[i] <= 'f'),
                          "byte %zu of %s is not lowercase hex", i, got);
        /* our ETag is itself a valid one-tag If-Match value (§8.8.3) */
        {
            ekv_taglist l = {0};

            ck_assert_int_eq(ekv_taglist_append(&l, got, 34), OK);
            ck_assert_uint_eq(l.n, 1);
            ck_assert_int_eq(ekv_taglist_match_strong(&l, got), 1);
            ekv_taglist_clear(&l);
        }
    }
}
END_TEST

START_TEST(etag_changes_with_any_byte_and_not_with_the_buffer)
{
    char v[64], a[ETAGKV_ETAG_SIZE], b[ETAGKV_ETAG_SIZE];
    size_t i;

    memset(v, 'v', sizeof(v));
    etagkv_etag_compute(v, sizeof(v), a);
    for (i = 0; i < sizeof(v); i++) {
        v[i] ^= 1;
        etagkv_etag_compute(v, sizeof(v), b);
        ck_assert_str_ne(a, b);
        v[i] ^= 1;
    }
    etagkv_etag_compute(v, sizeof(v), b);
    ck_assert_str_eq(a, b);
}
END_TEST

START_TEST(hash_bytes_at_the_end_of_memory_are_read_exactly)
{
    void *base;
    size_t map_len, k;
    char *end = guarded_alloc(512, &base, &map_len) + 512;
    char got[ETAGKV_ETAG_SIZE], want[ETAGKV_ETAG_SIZE];

    /* a value ending at a PROT_NONE page: any over-read by the inlined
     * XXH3 would fault */
    memset(end - 512, 'h', 512);
    for (k = 0; k <= 512; k++) {
        etagkv_etag_compute(end - k, k, got);
        expected_etag(end - k, k, want);
        ck_assert_str_eq(got, want);
    }
    munmap(base, map_len);
}
END_TEST

/* ---- our own form ------------------------------------------------------- */

typedef struct own_row {
    const char *in;
    size_t len;
    int ok;
} own_row;

static const own_row own_rows[] = {
    /* DESIGN §1: '"' + 32 lowercase hex + '"' */
    {S("\"0123456789abcdef0123456789abcdef\""), 1},
    {S("\"00000000000000000000000000000000\""), 1},
    {S("\"ffffffffffffffffffffffffffffffff\""), 1},
    /* we only emit lowercase hex */
    {S("\"0123456789ABCDEF0123456789abcdef\""), 0},
    {S("\"F0123456789abcdef0123456789abcde\""), 0},
    /* one digit short, one too many */
    {S("\"0123456789abcdef0123456789abcde\""), 0},
    {S("\"0123456789abcdef0123456789abcdef0\""), 0},
    /* unquoted, half-quoted */
    {S("0123456789abcdef0123456789abcdef"), 0},
    {S("0123456789abcdef0123456789abcdef00"), 0},
    {S("\"0123456789abcdef0123456789abcdef"), 0},
    {S("\"0123456789abcdef0123456789abcdefa"), 0},
    {S("a0123456789abcdef0123456789abcdef\""), 0},
    /* RFC 9110 §8.8.3: a weak tag is never one of ours (ours are strong) */
    {S("W/\"0123456789abcdef0123456789abcdef\""), 0},
    /* not hex */
    {S("\"0123456789abcdef0123456789abcdeg\""), 0},
    {S("\"0123456789abcdef 123456789abcdef\""), 0},
    {S("\"0123456789abcdef\000123456789abcdef\""), 0},
    /* surrounding OWS belongs to a header, not to an ETag */
    {S(" \"0123456789abcdef0123456789abcdef\""), 0},
    {S("\"0123456789abcdef0123456789abcdef\" "), 0},
    /* boundary: nothing, empty opaque-tag, "*" */
    {S(""), 0},
    {S("\"\""), 0},
    {S("*"), 0},
};

START_TEST(parse_own_accepts_only_our_exact_form)
{
    const own_row *r = &own_rows[_i];
    uint8_t out[EKV_HASH_BYTES], before[EKV_HASH_BYTES];
    char again[ETAGKV_ETAG_SIZE];

    memset(out, 0xAA, sizeof(out));
    memcpy(before, out, sizeof(out));
    ck_assert_msg(ekv_etag_parse_own(r->in, r->len, out) == (r->ok ? 0 : -1),
                  "row %d \"%.*s\"", _i, (int)r->len, r->in);
    ck_assert_int_eq(ekv_etag_parse_own(r->in, r->len, NULL), r->ok ? 0 : -1);
    if (r->ok) {
        /* round trip: the parsed hash formats back to the same text */
        ekv_etag_format(out, again);
        ck_assert_str_eq(again, r->in);
    } else {
        ck_assert_mem_eq(out, before, sizeof(out)); /* untouched */
    }
}
END_TEST

START_TEST(parse_own_recovers_the_hash_of_a_computed_etag)
{
    char etag[ETAGKV_ETAG_SIZE];
    uint8_t hash[EKV_HASH_BYTES], parsed[EKV_HASH_BYTES];

    ekv_hash128(S("some value"), hash);
    etagkv_etag_compute(S("some value"), etag);
    ck_assert_int_eq(ekv_etag_parse_own(etag, strlen(etag), parsed), 0);
    ck_assert_mem_eq(parsed, hash, EKV_HASH_BYTES);
    ck_assert_int_eq(ekv_etag_parse_own(etag, strlen(etag) - 1, parsed), -1);
    ck_assert_int_eq(ekv_etag_parse_own(NULL, 34, parsed), -1);
}
END_TEST

START_TEST(parse_own_is_not_read_past_its_end)
{
    void *base;
    size_t map_len, k;
    char etag[ETAGKV_ETAG_SIZE];
    char *end = guarded_alloc(40, &base, &map_len) + 40;

    etagkv_etag_compute(S("guard"), etag);
    for (k = 0; k <= 34; k++) {
        memcpy(end - k, etag, k);
        ck_assert_int_eq(ekv_etag_parse_own(end - k, k, NULL),
                         k == 34 ? 0 : -1);
    }
    munmap(base, map_len);
}
END_TEST

/* ---- the suite ---------------------------------------------------------- */

static Suite *etag_suite(void)
{
    Suite *s = suite_create("etag");
    TCase *tc;

    tc = tcase_create("hash");
    tcase_add_loop_test(tc, etag_is_xxh3_128_of_the_value_in_canonical_hex, 0,
                        NROWS(hash_lengths));
    tcase_add_test(tc, empty_value_etag_is_xxh3_128_of_no_bytes);
    tcase_add_test(tc,
                   etag_is_a_quote_32_lowercase_hex_digits_a_quote_and_a_nul);
    tcase_add_test(tc, etag_changes_with_any_byte_and_not_with_the_buffer);
    tcase_add_test(tc, hash_bytes_at_the_end_of_memory_are_read_exactly);
    suite_add_tcase(s, tc);

    tc = tcase_create("own_form");
    tcase_add_loop_test(tc, parse_own_accepts_only_our_exact_form, 0,
                        NROWS(own_rows));
    tcase_add_test(tc, parse_own_recovers_the_hash_of_a_computed_etag);
    tcase_add_test(tc, parse_own_is_not_read_past_its_end);
    suite_add_tcase(s, tc);

    tc = tcase_create("list");
    tcase_add_loop_test(tc, header_values_parse_as_the_row_says, 0,
                        NROWS(list_rows));
    tcase_add_loop_test(tc, rejected_line_leaves_a_tag_list_unchanged, 0,
                        NROWS(list_rows));
    tcase_add_loop_test(tc, rejected_line_leaves_a_star_list_unchanged, 0,
                        NROWS(list_rows));
    tcase_add_loop_test(tc, no_prefix_of_a_value_is_read_past_its_end, 0,
                        NROWS(list_rows));
    tcase_add_test(tc, absent_value_of_length_zero_is_an_invalid_header);
    tcase_add_test(tc, absent_value_with_a_length_is_an_invalid_argument);
    tcase_add_test(tc, syntax_error_is_described_for_diagnostics);
    tcase_add_test(tc, several_header_lines_extend_one_list);
    tcase_add_test(tc, second_star_line_is_invalid);
    tcase_add_test(tc, tag_line_after_a_star_line_is_invalid);
    tcase_add_test(tc, star_line_after_a_tag_line_is_invalid);
    tcase_add_test(tc, five_thousand_tags_in_one_line_are_all_kept_in_order);
    tcase_add_test(tc, long_line_is_not_read_past_its_end_at_any_length);
    tcase_add_test(tc, thousands_of_empty_elements_are_tolerated);
    tcase_add_test(tc, thousands_of_header_lines_extend_one_list);
    tcase_add_test(tc, clear_releases_and_zeroes_and_is_safe_twice);
    suite_add_tcase(s, tc);

    tc = tcase_create("match");
    tcase_add_loop_test(tc, strong_and_weak_comparison_follow_the_rfc_table, 0,
                        NROWS(match_rows));
    tcase_add_test(tc, weak_tag_never_matches_if_match_strong_comparison);
    tcase_add_test(tc, star_and_absent_lists_match_nothing_here);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    return tu_run(etag_suite());
}
