/*
 * list.c -- GET /kv/?prefix=&after=&limit=: one JSON page of keys.
 *
 * The cursor is the last key of the page, percent-encoded: keys are in byte
 * order and etagkv_list() resumes strictly after a key, so the cursor stays
 * valid whatever is written or deleted in between (no offsets).
 * Query values are percent-decoded as strictly as the key of /kv/{key};
 * '+' is a plus sign, not a space.  They are read from the raw
 * request-target (srv_req.query), because libmicrohttpd's parsed arguments
 * have '+' turned into ' ' already.
 */
#include "server.h"

#include <stdlib.h>
#include <string.h>

#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000

struct page {
    json_t *keys;
    int failed; /* out of memory while building */
    unsigned char last[ETAGKV_KEY_MAX];
    size_t last_len;
};

/* The library keeps content types to visible ASCII today; should that ever
 * widen, bytes that are not UTF-8 become null rather than break the page. */
static json_t *content_type_json(const etagkv_meta *m)
{
    size_t len = strlen(m->content_type);

    return srv_utf8_valid(m->content_type, len)
               ? json_stringn(m->content_type, len)
               : json_null();
}

/* One entry of the page; -1 on allocation failure. */
static int entry_members(json_t *e, const void *key, size_t key_len,
                         const etagkv_meta *m)
{
    char date[ETAGKV_HTTPDATE_SIZE];
    int bad;

    if (srv_json_set_key(e, key, key_len) != 0)
        return -1;
    bad = json_object_set_new(e, "etag", json_string(m->etag)) ||
          json_object_set_new(e, "size",
                              json_integer((json_int_t)m->value_bytes)) ||
          json_object_set_new(e, "content_type", content_type_json(m)) ||
          json_object_set_new(e, "mod_revision",
                              json_integer((json_int_t)m->mod_revision));
    if (bad)
        return -1;
    if (etagkv_httpdate_format(ETAGKV_META_LAST_MODIFIED(m), date) == ETAGKV_OK)
        return json_object_set_new(e, "last_modified", json_string(date));
    return json_object_set_new(e, "last_modified", json_null());
}

static int page_add(void *ctx, const void *key, size_t key_len,
                    const etagkv_meta *m)
{
    struct page *p = ctx;
    json_t *e = json_object();

    if (e == NULL || entry_members(e, key, key_len, m) != 0) {
        json_decref(e);
        p->failed = 1;
        return 1;
    }
    if (json_array_append_new(p->keys, e) != 0) { /* e is released */
        p->failed = 1;
        return 1;
    }
    memcpy(p->last, key, key_len); /* key_len <= ETAGKV_KEY_MAX */
    p->last_len = key_len;
    return 0;
}

/* The raw value of query argument `name`: 1 and
 * (*v, *vlen) when present, 0 when absent. */
int srv_query_arg(const struct srv_req *r, const char *name, const char **v,
                  size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *q = r->query;

    while (q != NULL) {
        const char *amp = strchr(q, '&');
        size_t len = amp != NULL ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t klen = eq != NULL ? (size_t)(eq - q) : len;

        if (klen == nlen && memcmp(q, name, nlen) == 0) {
            *v = eq != NULL ? eq + 1 : q + len;
            *vlen = eq != NULL ? len - klen - 1 : 0;
            return 1;
        }
        q = amp != NULL ? amp + 1 : NULL;
    }
    return 0;
}

/* The listing's query arguments. */
static const char *const list_names[] = {"prefix", "after", "limit"};

int srv_query_names_known(const struct srv_req *r, const char *const *names,
                          size_t n)
{
    const char *q = r->query;
    unsigned seen = 0;

    while (q != NULL) {
        const char *amp = strchr(q, '&');
        size_t len = amp != NULL ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t klen = eq != NULL ? (size_t)(eq - q) : len, i;

        for (i = 0; len > 0 && i < n; i++)
            if (klen == strlen(names[i]) && memcmp(q, names[i], klen) == 0)
                break;
        if (len > 0 && (i == n || (seen & (1u << i)) != 0))
            return -1;
        if (len > 0)
            seen |= 1u << i;
        q = amp != NULL ? amp + 1 : NULL;
    }
    return 0;
}

/* Decode query argument name into out (at most cap bytes); absent gives
 * length 0.  Returns ETAGKV_OK, ETAGKV_INVALID_ARGUMENT (bad encoding) or
 * ETAGKV_KEY_TOO_LONG. */
etagkv_status srv_query_bytes(const struct srv_req *r, const char *name,
                              unsigned char *out, size_t cap, size_t *len)
{
    const char *v;
    size_t vlen;
    ssize_t n;

    *len = 0;
    if (!srv_query_arg(r, name, &v, &vlen))
        return ETAGKV_OK;
    n = srv_pct_decode(v, vlen, out, cap);
    if (n == -1)
        return ETAGKV_INVALID_ARGUMENT;
    if (n == -2)
        return ETAGKV_KEY_TOO_LONG;
    *len = (size_t)n;
    return ETAGKV_OK;
}

/* limit: decimal 1..; above max is served as max.  Returns 0 or -1 when
 * it is not a positive integer. */
int srv_query_limit(const struct srv_req *r, size_t dflt, size_t max,
                    size_t *limit)
{
    const char *v;
    size_t vlen;
    uint64_t n;

    *limit = dflt;
    if (!srv_query_arg(r, "limit", &v, &vlen))
        return 0;
    if (srv_decimal(v, vlen, max, &n) < 0 || n == 0)
        return -1;
    *limit = (size_t)n;
    return 0;
}

/* The cursor of a page that has more: its last key, percent-encoded. */
static json_t *cursor_of(const struct page *p)
{
    char *pct = srv_pct_encode(p->last, p->last_len);
    json_t *j = pct != NULL ? json_string(pct) : NULL;

    free(pct);
    return j;
}

/* The page object {"revision": R, "keys": [...], "next": cursor or null},
 * R the revision of the listing's snapshot (watch /changes from it:
 * DESIGN §8); NULL on allocation failure.  p->keys is consumed either
 * way. */
static json_t *page_object(struct page *p, int more, uint64_t rev)
{
    json_t *j = json_object();
    json_t *next = more ? cursor_of(p) : json_null();
    int bad = 0;

    if (j == NULL || next == NULL) {
        json_decref(p->keys);
        json_decref(next);
        json_decref(j);
        return NULL;
    }
    /* json_object_set_new() takes its value even when it fails. */
    bad |= json_object_set_new(j, "revision", json_integer((json_int_t)rev));
    bad |= json_object_set_new(j, "keys", p->keys);
    bad |= json_object_set_new(j, "next", next);
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static enum MHD_Result bad_query(struct srv *s, struct MHD_Connection *c,
                                 struct srv_req *r, etagkv_status st,
                                 const char *detail)
{
    return srv_queue(s, c, r, (unsigned)etagkv_status_http(st),
                     srv_status_problem(st, detail));
}

enum MHD_Result srv_list(struct srv *s, struct MHD_Connection *c,
                         struct srv_req *r)
{
    unsigned char prefix[ETAGKV_KEY_MAX], after[ETAGKV_KEY_MAX];
    size_t prefix_len, after_len, limit;
    uint64_t rev = 0;
    struct page p;
    etagkv_status st;
    int more = 0;

    if (!r->uri_seen) /* out of memory when the request line came in */
        return bad_query(s, c, r, ETAGKV_NO_MEMORY, NULL);
    if (srv_query_names_known(r, list_names, 3) != 0)
        return bad_query(s, c, r, ETAGKV_INVALID_ARGUMENT,
                         "the listing takes only prefix, after and limit, "
                         "each at most once (names are case-sensitive)");
    st = srv_query_bytes(r, "prefix", prefix, sizeof prefix, &prefix_len);
    if (st == ETAGKV_OK)
        st = srv_query_bytes(r, "after", after, sizeof after, &after_len);
    if (st != ETAGKV_OK)
        return bad_query(s, c, r, st,
                         st == ETAGKV_INVALID_ARGUMENT
                             ? "prefix or after has invalid percent-encoding"
                             : "prefix or after is longer than a key");
    if (srv_query_limit(r, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &limit) != 0)
        return bad_query(s, c, r, ETAGKV_INVALID_ARGUMENT,
                         "limit must be a positive integer (at most 1000 "
                         "are returned)");
    memset(&p, 0, sizeof p);
    p.keys = json_array();
    if (p.keys == NULL)
        return MHD_NO;
    st = etagkv_list_revision(s->store, prefix, prefix_len, after, after_len,
                              limit, page_add, &p, &more, &rev);
    if (st != ETAGKV_OK || p.failed) {
        json_decref(p.keys);
        return bad_query(s, c, r, p.failed ? ETAGKV_NO_MEMORY : st, NULL);
    }
    return srv_queue_json_read(s, c, r, page_object(&p, more, rev));
}
