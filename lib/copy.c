/*
 * copy.c -- etagkv_store_copy(): every record of one store into another,
 * on any two backends, keeping what HTTP sees of each record: value,
 * content type, ETag, created and modified times (docs/design.md,
 * "Copying a store").
 *
 * The source is read in one snapshot: a read transaction held for the
 * whole call.  Its records are walked in key order a page at a time; each
 * page becomes one transaction of the destination, made of create-only
 * puts that keep the record's times (ekv_txn_put_restored(), txn.c), so a
 * page is all or nothing and goes through the destination's group commit
 * like any transaction.  Then the snapshot is walked again, page by page,
 * side by side with the destination, to check it.
 *
 * No cursor lives across pages: a page resumes after the last key of the
 * one before, and between pages the transactions let go of what they read
 * (ekv_read_release()), so memory stays within a page whatever the size
 * of the store (etcd's reads would otherwise pile up until the end).
 */
#include <stdio.h>
#include <string.h>

#include "store.h"

/* The walk over the source snapshot, and where its next page begins. */
struct walk {
    ekv_txn src;
    etagkv_store *dst;
    uint8_t after[ETAGKV_KEY_MAX]; /* the last key passed */
    size_t after_len;
    int started; /* a key was passed: the next page begins after `after` */
    int done;    /* the snapshot holds no record after `after` */
    etagkv_copy_stats *out;
};

/* What a page does with one record of the snapshot (not yet decoded
 * against anything): ETAGKV_OK, with *full set when the record does not
 * fit the page and starts the next one instead; any other status stops
 * the walk. */
typedef etagkv_status (*visit_fn)(void *ctx, const ekv_val *key,
                                  const ekv_record *r, uint64_t lease,
                                  int *full);

static int same_key(const ekv_val *k, const uint8_t *key, size_t len)
{
    return k->len == len && memcmp(k->data, key, len) == 0;
}

/* Put cur on the first entry after w's resume point; ETAGKV_NOT_FOUND past
 * the last. */
static etagkv_status seek_after(const struct walk *w, ekv_cursor *cur,
                                ekv_val *k, ekv_val *v)
{
    etagkv_status st = ekv_cursor_seek(cur, w->after, w->after_len, k, v);

    if (st == ETAGKV_OK && w->started && same_key(k, w->after, w->after_len))
        st = ekv_cursor_next(cur, k, v);
    return st;
}

/* One page: call fn for the snapshot's records after the resume point, in
 * key order, until fn says the page is full or `limit` records passed;
 * the resume point moves to the last one passed, *passed counts them. */
static etagkv_status walk_page(struct walk *w, size_t limit, visit_fn fn,
                               void *ctx, size_t *passed)
{
    ekv_cursor cur;
    ekv_val k, v;
    etagkv_status st = ekv_cursor_open(&w->src, EKV_TABLE_RECORDS, &cur);

    *passed = 0;
    if (st != ETAGKV_OK)
        return st;
    for (st = seek_after(w, &cur, &k, &v); st == ETAGKV_OK && *passed < limit;
         st = ekv_cursor_next(&cur, &k, &v)) {
        ekv_record r;
        uint64_t lease = 0;
        int full = 0;
        char text[64];

        st = k.len <= sizeof(w->after) ? ekv_record_decode(v.data, v.len, &r)
                                       : ETAGKV_CORRUPT;
        if (st != ETAGKV_OK) {
            ekv_key_text(k.data, k.len, text, sizeof(text));
            st = ekv_fail(st, "key %s: the record does not decode", text);
        }
        if (st == ETAGKV_OK)
            st = ekv_lease_of(&w->src, k.data, k.len, &lease);
        if (st == ETAGKV_OK)
            st = fn(ctx, &k, &r, lease, &full);
        if (st != ETAGKV_OK || full)
            break;
        memcpy(w->after, k.data, k.len);
        w->after_len = k.len;
        w->started = 1;
        (*passed)++;
    }
    ekv_cursor_close(&cur);
    w->done = st == ETAGKV_NOT_FOUND;
    return st == ETAGKV_NOT_FOUND ? ETAGKV_OK : st;
}

/* ---- copying ------------------------------------------------------------- */

/* A page being built: the destination transaction and its figures. */
struct page {
    etagkv_txn *t;
    uint64_t page_bytes;
    uint64_t records, bytes, leased;
};

static etagkv_status add_record(void *ctx, const ekv_val *key,
                                const ekv_record *r, uint64_t lease, int *full)
{
    struct page *p = ctx;
    etagkv_status st;

    /* A leased key is not copied: its lease, and so its owner's claim,
     * does not exist in the destination (docs/design.md). */
    if (lease != 0) {
        p->leased++;
        return ETAGKV_OK;
    }
    if (p->records > 0 && p->bytes + r->value_len > p->page_bytes) {
        *full = 1;
        return ETAGKV_OK;
    }
    st = ekv_txn_put_restored(p->t, key->data, key->len, r);
    if (st == ETAGKV_OK) {
        p->records++;
        p->bytes += r->value_len;
    }
    return st;
}

/* Commit a page into the destination.  Its puts are create-only, so a
 * conflict means a key of it is there already: someone else writes to
 * the destination. */
static etagkv_status commit_page(struct walk *w, etagkv_txn *t)
{
    etagkv_status st = etagkv_txn_commit(w->dst, t);
    char text[64];

    if (st != ETAGKV_CONFLICT)
        return st;
    ekv_key_text(w->after, w->after_len, text, sizeof(text));
    return ekv_fail(ETAGKV_CONFLICT,
                    "a record of the page ending at key %s is in the "
                    "destination already: another writer is using it",
                    text);
}

/* Build and commit the next page of at most `limit` records; *passed
 * counts the records it walked past (copied or not). */
static etagkv_status copy_page(struct walk *w, size_t limit,
                               uint64_t page_bytes, size_t *passed)
{
    struct page p = {NULL, page_bytes, 0, 0, 0};
    etagkv_status st = etagkv_txn_new(&p.t);

    if (st != ETAGKV_OK)
        return st;
    st = walk_page(w, limit, add_record, &p, passed);
    if (st == ETAGKV_OK && p.records > 0)
        st = commit_page(w, p.t);
    etagkv_txn_free(p.t);
    if (st == ETAGKV_OK) {
        w->out->records += p.records;
        w->out->value_bytes += p.bytes;
        w->out->leased_skipped += p.leased;
        w->out->pages += p.records > 0;
    }
    return st;
}

static etagkv_status copy_pages(struct walk *w, size_t limit,
                                uint64_t page_bytes)
{
    etagkv_status st = ETAGKV_OK;

    while (st == ETAGKV_OK && !w->done) {
        uint8_t from[ETAGKV_KEY_MAX];
        size_t from_len = w->after_len, passed = 0;
        int started = w->started;

        memcpy(from, w->after, from_len);
        st = copy_page(w, limit, page_bytes, &passed);
        ekv_read_release(&w->src);
        if (st == ETAGKV_TXN_TOO_LARGE && passed > 1) {
            /* etcd refused the request (its --max-txn-ops or
             * --max-request-bytes): nothing of it was written; the same
             * records again, in smaller pages. */
            memcpy(w->after, from, from_len);
            w->after_len = from_len;
            w->started = started;
            w->done = 0;
            limit = passed / 2;
            st = ETAGKV_OK;
        }
    }
    return st;
}

/* ---- checking ------------------------------------------------------------ */

/* The destination's side of the check: a cursor kept level with the
 * source's walk. */
struct check {
    ekv_cursor cur;
    etagkv_status at; /* ETAGKV_OK: the cursor is on k, v */
    ekv_val k, v;
    uint64_t verified;
};

/* What differs between the source's record a and the destination's b, or
 * NULL. */
static const char *difference(const ekv_record *a, const ekv_record *b)
{
    if (memcmp(a->hash, b->hash, EKV_HASH_BYTES) != 0)
        return "its ETag";
    if (a->value_len != b->value_len)
        return "its size";
    if (a->content_type_len != b->content_type_len ||
        memcmp(a->content_type, b->content_type, a->content_type_len) != 0)
        return "its content type";
    if (a->created_ns != b->created_ns || a->modified_ns != b->modified_ns)
        return "its times";
    return NULL;
}

/* Below 0, 0 or above 0 as key a sorts before, with or after b (bytes
 * in order, a prefix first: both backends' order). */
static int key_cmp(const ekv_val *a, const ekv_val *b)
{
    int c = memcmp(a->data, b->data, a->len < b->len ? a->len : b->len);

    return c != 0 ? c : (a->len > b->len) - (a->len < b->len);
}

static etagkv_status check_record(void *ctx, const ekv_val *key,
                                  const ekv_record *r, uint64_t lease,
                                  int *full)
{
    struct check *c = ctx;
    const char *what = "it is missing";
    ekv_record d;
    char text[64];
    int cmp = c->at == ETAGKV_OK ? key_cmp(&c->k, key) : 1;

    (void)full;
    if (lease != 0) {
        /* Not copied: the destination must have nothing up to it (the
         * cursor stays where it is, for the source's next key). */
        if (cmp > 0)
            return ETAGKV_OK;
        key = &c->k;
        what = cmp == 0 ? "the source's record is attached to a lease, "
                          "so it was not copied"
                        : "the source has no such key";
    } else if (cmp == 0) {
        what = ekv_record_decode(c->v.data, c->v.len, &d) == ETAGKV_OK
                   ? difference(r, &d)
                   : "it does not decode";
    } else if (cmp < 0) {
        /* Both walks are in key order: a destination key before the
         * source's is one the snapshot does not have. */
        key = &c->k;
        what = "the source has no such key";
    }
    if (what != NULL) {
        ekv_key_text(key->data, key->len, text, sizeof(text));
        return ekv_fail(ETAGKV_CONFLICT,
                        "key %s differs in the destination: %s", text, what);
    }
    c->verified++;
    c->at = ekv_cursor_next(&c->cur, &c->k, &c->v);
    return c->at == ETAGKV_NOT_FOUND ? ETAGKV_OK : c->at;
}

/* Check one page, the destination read in dtx. */
static etagkv_status check_page(struct walk *w, ekv_txn *dtx, size_t limit)
{
    struct check c;
    size_t passed;
    char text[64];
    etagkv_status st = ekv_cursor_open(dtx, EKV_TABLE_RECORDS, &c.cur);

    if (st != ETAGKV_OK)
        return st;
    c.verified = 0;
    c.at = seek_after(w, &c.cur, &c.k, &c.v);
    st = c.at == ETAGKV_NOT_FOUND ? ETAGKV_OK : c.at;
    if (st == ETAGKV_OK)
        st = walk_page(w, limit, check_record, &c, &passed);
    if (st == ETAGKV_OK && w->done && c.at == ETAGKV_OK) {
        ekv_key_text(c.k.data, c.k.len, text, sizeof(text));
        st = ekv_fail(ETAGKV_CONFLICT,
                      "key %s differs in the destination: the source has "
                      "no such key",
                      text);
    }
    ekv_cursor_close(&c.cur);
    w->out->verified += c.verified;
    return st;
}

static etagkv_status check_pages(struct walk *w, size_t limit)
{
    ekv_txn dtx;
    etagkv_status st = ekv_read_begin(w->dst->env, &dtx);

    if (st != ETAGKV_OK)
        return st;
    w->after_len = 0;
    w->started = w->done = 0;
    while (st == ETAGKV_OK && !w->done) {
        st = check_page(w, &dtx, limit);
        ekv_read_release(&w->src);
        ekv_read_release(&dtx);
    }
    ekv_read_end(&dtx);
    if (st == ETAGKV_OK && w->out->verified != w->out->records)
        st = ekv_fail(ETAGKV_CONFLICT, "%llu records checked, %llu copied",
                      (unsigned long long)w->out->verified,
                      (unsigned long long)w->out->records);
    return st;
}

/* ---- the call ------------------------------------------------------------ */

/* Refuse what needs no snapshot: arguments, a read-only or non-empty
 * destination. */
static etagkv_status check_args(etagkv_store *src, etagkv_store *dst)
{
    etagkv_stats x;
    etagkv_status st;

    if (src == NULL || dst == NULL || src == dst)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "a copy needs two different stores");
    if (dst->opts.read_only)
        return ekv_fail(ETAGKV_READ_ONLY,
                        "the destination was opened read-only");
    st = etagkv_store_stats(dst, &x);
    if (st == ETAGKV_OK && x.records > 0)
        st = ekv_fail(ETAGKV_INVALID_ARGUMENT,
                      "the destination holds %llu records: copy only into "
                      "an empty store",
                      (unsigned long long)x.records);
    return st;
}

etagkv_status etagkv_store_copy(etagkv_store *src, etagkv_store *dst,
                                size_t page_records, uint64_t page_bytes,
                                etagkv_copy_stats *out)
{
    etagkv_copy_stats mine;
    struct walk w;
    int etcd;
    etagkv_status st;

    ekv_clear_error();
    if (out == NULL)
        out = &mine;
    memset(out, 0, sizeof(*out));
    st = check_args(src, dst);
    if (st != ETAGKV_OK)
        return st;
    etcd = strcmp(dst->env->ops->name, "etcd") == 0;
    if (page_records == 0)
        page_records = etcd ? ETAGKV_COPY_PAGE_RECORDS_ETCD
                            : ETAGKV_COPY_PAGE_RECORDS_LMDB;
    if (page_bytes == 0)
        page_bytes =
            etcd ? ETAGKV_COPY_PAGE_BYTES_ETCD : ETAGKV_COPY_PAGE_BYTES_LMDB;
    memset(&w, 0, sizeof(w));
    w.dst = dst;
    w.out = out;
    st = ekv_read_begin(src->env, &w.src);
    if (st != ETAGKV_OK)
        return st;
    st = ekv_revision_get(&w.src, &out->revision);
    if (st == ETAGKV_OK)
        st = copy_pages(&w, page_records, page_bytes);
    if (st == ETAGKV_OK)
        st = check_pages(&w, page_records);
    ekv_read_end(&w.src);
    return st;
}
