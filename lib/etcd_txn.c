/*
 * etcd_txn.c -- the etcd backend's transactions (docs/design.md, "The
 * seam and a second backend").
 *
 * A read transaction pins a revision: its first Range reads the latest
 * state and keeps the revision etcd answered at; every later read is a
 * Range at that revision, so the transaction sees one snapshot, as an LMDB
 * reader does.
 *
 * A write transaction is optimistic.  Its reads go to etcd the same way and
 * each key read lands in the read set with its mod_revision (0 when
 * absent); its puts and deletes are buffered in the write set, which later
 * reads and cursors of the same transaction see first.  The commit is one
 * etcd Txn: compare the mod_revision of every key read, then apply every
 * buffered write.  If any compare fails, another writer changed what this
 * transaction decided on: nothing is written, txn->conflict is set, and
 * apply.c runs the batch again from its first read -- so the conditions
 * are evaluated against exactly the state the commit is conditional on,
 * and a race never becomes a 412.
 *
 * Memory handed up through backend.h (records, entries, cursor keys) lives
 * in blocks owned by the transaction until it ends.
 */
#include <stdlib.h>
#include <string.h>

#include "etcd_env.h"

/* ---- transaction memory -----------------------------------------------------
 */

/* Keep p (malloc'd) until the transaction ends; -1 without memory. */
static int track(struct ekv_etcd_txn *t, void *p)
{
    if (t->n_blocks == t->cap_blocks) {
        size_t cap = t->cap_blocks > 0 ? t->cap_blocks * 2 : 16;
        void **b = realloc(t->blocks, cap * sizeof(*b));

        if (b == NULL)
            return -1;
        t->blocks = b;
        t->cap_blocks = cap;
    }
    t->blocks[t->n_blocks++] = p;
    return 0;
}

void *ekv_etcd_alloc(struct ekv_etcd_txn *t, size_t bytes)
{
    void *p = malloc(bytes > 0 ? bytes : 1);

    if (p != NULL && track(t, p) != 0) {
        free(p);
        p = NULL;
    }
    return p;
}

etagkv_status ekv_etcd_key(ekv_txn *txn, char letter, const void *key,
                           size_t key_len, char **out, size_t *out_len)
{
    struct ekv_etcd_env *env = ekv_etcd_of(txn->env);
    size_t n = env->prefix_len + 3 + key_len;
    char *k = ekv_etcd_alloc(ekv_etcd_txn_of(txn), n);

    if (k == NULL)
        return ETAGKV_NO_MEMORY;
    memcpy(k, env->prefix, env->prefix_len);
    k[env->prefix_len] = '/';
    k[env->prefix_len + 1] = letter;
    k[env->prefix_len + 2] = '/';
    if (key_len > 0)
        memcpy(k + env->prefix_len + 3, key, key_len);
    *out = k;
    *out_len = n;
    return ETAGKV_OK;
}

/* ---- read and write sets ----------------------------------------------------
 */

static int key_cmp(const char *a, size_t a_len, const char *b, size_t b_len)
{
    int c = memcmp(a, b, a_len < b_len ? a_len : b_len);

    if (c != 0)
        return c;
    return a_len < b_len ? -1 : a_len > b_len;
}

size_t ekv_etcd_set_find(const struct ekv_etcd_set *set, const char *k,
                         size_t k_len, int inclusive)
{
    size_t lo = 0, hi = set->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(set->v[mid].key, set->v[mid].key_len, k, k_len);

        if (c < 0 || (c == 0 && !inclusive))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The item of set with key k, or NULL. */
static struct ekv_etcd_item *set_get(const struct ekv_etcd_set *set,
                                     const char *k, size_t k_len)
{
    size_t i = ekv_etcd_set_find(set, k, k_len, 1);

    if (i < set->n && key_cmp(set->v[i].key, set->v[i].key_len, k, k_len) == 0)
        return &set->v[i];
    return NULL;
}

/* Insert it into set (its key absent there) or, when replace, overwrite the
 * item with the same key.  The item's buffers are transaction memory. */
static etagkv_status set_put(struct ekv_etcd_set *set,
                             const struct ekv_etcd_item *it, int replace)
{
    size_t i = ekv_etcd_set_find(set, it->key, it->key_len, 1);

    if (i < set->n &&
        key_cmp(set->v[i].key, set->v[i].key_len, it->key, it->key_len) == 0) {
        if (replace)
            set->v[i] = *it;
        return ETAGKV_OK;
    }
    if (set->n == set->cap) {
        size_t cap = set->cap > 0 ? set->cap * 2 : 16;
        struct ekv_etcd_item *v = realloc(set->v, cap * sizeof(*v));

        if (v == NULL)
            return ETAGKV_NO_MEMORY;
        set->v = v;
        set->cap = cap;
    }
    memmove(&set->v[i + 1], &set->v[i], (set->n - i) * sizeof(*set->v));
    set->v[i] = *it;
    set->n++;
    return ETAGKV_OK;
}

etagkv_status ekv_etcd_remember(struct ekv_etcd_txn *t,
                                const struct ekv_etcd_item *it)
{
    const struct ekv_etcd_item *had = set_get(&t->reads, it->key, it->key_len);

    /* A key taken from the handle's memory that etcd, read now, holds
     * otherwise: the transaction saw two states of it, and the commit
     * compares only the first.  It must run again (send_commit()). */
    if (had != NULL &&
        (had->present != it->present || had->mod_revision != it->mod_revision))
        t->torn = 1;
    return set_put(&t->reads, it, 0);
}

/* ---- what the handle remembers (etcd_known.c) ------------------------------
 */

/* Does the handle remember keys like k (records, lease entries,
 * counters)? */
static int knowable(const struct ekv_etcd_env *env, const char *k, size_t k_len)
{
    return k_len > env->prefix_len + 3 && k[env->prefix_len + 2] == '/' &&
           memchr("rlm", k[env->prefix_len + 1], 3) != NULL;
}

/* In *it, what the handle remembers of k (k itself is transaction
 * memory), copied into transaction memory: 1, or 0 when it remembers
 * nothing, may not take from there, or is out of memory (a read then). */
static int take_known(ekv_txn *txn, const char *k, size_t k_len,
                      struct ekv_etcd_item *it)
{
    struct ekv_etcd_env *env = ekv_etcd_of(txn->env);
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);
    const struct ekv_etcd_known_item *got;

    if (!t->use_known || !knowable(env, k, k_len))
        return 0;
    got = ekv_etcd_known_get(env->known, k, k_len);
    if (got == NULL)
        return 0;
    memset(it, 0, sizeof(*it));
    it->key = (char *)k;
    it->key_len = k_len;
    it->present = got->present;
    it->mod_revision = got->mod_revision;
    it->val_len = got->val_len;
    it->val = ekv_etcd_alloc(t, got->val_len);
    if (it->val == NULL)
        return 0;
    if (got->val_len > 0)
        memcpy(it->val, got->val, got->val_len);
    t->n_known++;
    return 1;
}

/* After a commit at etcd revision rev: every knowable key of the write
 * set as written, and of the read set as read (the compares held, so it
 * was still so). */
static void remember_commit(ekv_txn *txn, int64_t rev)
{
    struct ekv_etcd_env *env = ekv_etcd_of(txn->env);
    const struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);

    for (size_t i = 0; i < t->reads.n; i++) {
        const struct ekv_etcd_item *r = &t->reads.v[i];

        if (knowable(env, r->key, r->key_len) &&
            set_get(&t->writes, r->key, r->key_len) == NULL)
            ekv_etcd_known_put(env->known, r->key, r->key_len, r->val,
                               r->val_len, r->present, r->mod_revision);
    }
    for (size_t i = 0; i < t->writes.n; i++) {
        const struct ekv_etcd_item *w = &t->writes.v[i];

        if (knowable(env, w->key, w->key_len))
            ekv_etcd_known_put(env->known, w->key, w->key_len, w->val,
                               w->val_len, w->present, w->present ? rev : 0);
    }
}

/* Transactions in a row that read afresh after a commit lost on a
 * remembered key, at most (etcd_env.h, known_backoff). */
#define KNOWN_BACKOFF_MAX 256

/* The commit or settle of a transaction that took keys from the handle's
 * memory lost: the next ones read afresh for a while (etcd_env.h). */
static void distrust(struct ekv_etcd_env *env)
{
    env->known_skip = env->known_backoff;
    if (env->known_backoff < KNOWN_BACKOFF_MAX)
        env->known_backoff *= 2;
}

/* ---- Range ------------------------------------------------------------------
 */

/* Decode one kv of a Range answer into *it (transaction memory). */
static etagkv_status decode_kv(struct ekv_etcd_txn *t, const json_t *kv,
                               struct ekv_etcd_item *it)
{
    const char *k = json_string_value(json_object_get(kv, "key"));
    const char *v = json_string_value(json_object_get(kv, "value"));
    uint8_t *kb, *vb;
    size_t kl, vl;
    etagkv_status st;

    if (k == NULL)
        return ekv_fail(ETAGKV_IO_ERROR, "etcd: a kv without a key");
    st = ekv_b64_decode(k, &kb, &kl);
    if (st != ETAGKV_OK)
        return st;
    st = ekv_b64_decode(v != NULL ? v : "", &vb, &vl);
    if (st != ETAGKV_OK) {
        free(kb);
        return st;
    }
    if (track(t, kb) != 0) {
        free(kb);
        free(vb);
        return ETAGKV_NO_MEMORY;
    }
    if (track(t, vb) != 0) {
        free(vb);
        return ETAGKV_NO_MEMORY;
    }
    it->key = (char *)kb;
    it->key_len = kl;
    it->val = vb;
    it->val_len = vl;
    it->present = 1;
    it->mod_revision = ekv_etcd_int(json_object_get(kv, "mod_revision"));
    return ETAGKV_OK;
}

/* The Range request's JSON. */
static json_t *range_request(const struct ekv_etcd_txn *t, const char *key,
                             size_t key_len, const char *end, size_t end_len,
                             size_t limit, int count_only)
{
    json_t *req = json_object();

    if (req == NULL)
        return NULL;
    if (ekv_etcd_set_bytes(req, "key", key, key_len) != ETAGKV_OK ||
        (end != NULL &&
         ekv_etcd_set_bytes(req, "range_end", end, end_len) != ETAGKV_OK) ||
        (t->revision > 0 &&
         json_object_set_new(req, "revision", json_integer(t->revision))) ||
        (limit > 0 &&
         json_object_set_new(req, "limit", json_integer((json_int_t)limit))) ||
        (count_only &&
         json_object_set_new(req, "count_only", json_true()) != 0)) {
        json_decref(req);
        return NULL;
    }
    return req;
}

/* Decode the kvs of a Range answer into *items (transaction memory), *n
 * of them. */
static etagkv_status decode_kvs(struct ekv_etcd_txn *t, const json_t *reply,
                                struct ekv_etcd_item **items, size_t *n)
{
    const json_t *kvs = json_object_get(reply, "kvs");
    etagkv_status st = ETAGKV_OK;

    *n = 0;
    *items = NULL;
    if (json_array_size(kvs) > 0) {
        *items = ekv_etcd_alloc(t, json_array_size(kvs) * sizeof(**items));
        if (*items == NULL)
            return ETAGKV_NO_MEMORY;
    }
    for (size_t i = 0; st == ETAGKV_OK && i < json_array_size(kvs); i++) {
        st = decode_kv(t, json_array_get(kvs, i), &(*items)[i]);
        if (st == ETAGKV_OK)
            (*n)++;
    }
    return st;
}

/* ---- the first read of a write transaction
 * ------------------------------------
 */

/* The first read holds at most etcd's default --max-txn-ops ranges,
 * hints beyond them are dropped (a cluster run with a lower limit answers
 * TXN_TOO_LARGE, and the batch is split). */
#define FIRST_READ_OPS EKV_ETCD_TXN_OPS

etagkv_status ekv_etcd_table_bounds(ekv_txn *txn, enum ekv_table table,
                                    char **start, char **end, size_t *len)
{
    char letter = ekv_etcd_table_letter(table);
    etagkv_status st = ekv_etcd_key(txn, letter, NULL, 0, start, len);

    if (st == ETAGKV_OK)
        st = ekv_etcd_key(txn, letter, NULL, 0, end, len);
    if (st == ETAGKV_OK)
        (*end)[*len - 1] = '/' + 1;
    return st;
}

/* The end of page hint h's range: its own, else its table's (P/t0, in
 * transaction memory; NULL without memory). */
static char *hint_end(ekv_txn *txn, const struct ekv_etcd_hint *h,
                      size_t *end_len)
{
    const struct ekv_etcd_env *env = ekv_etcd_of(txn->env);
    char *end = h->end;

    *end_len = h->end_len;
    if (end == NULL) {
        *end_len = env->prefix_len + 3;
        end = ekv_etcd_alloc(ekv_etcd_txn_of(txn), *end_len);
        if (end != NULL) {
            memcpy(end, h->key, *end_len);
            end[*end_len - 1] = '/' + 1;
        }
    }
    return end;
}

/* A request_range op for hint h: its key, or its page up to its end. */
static json_t *first_read_op(ekv_txn *txn, const struct ekv_etcd_hint *h)
{
    size_t end_len = 0;
    char *end = h->limit > 0 ? hint_end(txn, h, &end_len) : NULL;
    json_t *r;

    if (h->limit > 0 && end == NULL)
        return NULL;
    r = range_request(ekv_etcd_txn_of(txn), h->key, h->key_len, end, end_len,
                      h->limit, 0);
    return r != NULL ? json_pack("{s:o}", "request_range", r) : NULL;
}

/* The first read's ops: req, then the hints that fit; *n_hints says how
 * many. */
static json_t *first_read_ops(ekv_txn *txn, json_t *req, size_t *n_hints)
{
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);
    json_t *ops = json_array();
    int bad =
        ops == NULL || json_array_append_new(
                           ops, json_pack("{s:O}", "request_range", req)) != 0;

    *n_hints = 0;
    for (size_t i = 0;
         !bad && i < t->n_hints && json_array_size(ops) < FIRST_READ_OPS; i++) {
        bad = json_array_append_new(ops, first_read_op(txn, &t->hints[i]));
        (*n_hints)++;
    }
    if (bad) {
        json_decref(ops);
        return NULL;
    }
    return ops;
}

/* What etcd answered to a range of the one key k (items[0..n)) into *it,
 * which holds k as absent: no item is absent, one is k's; anything else is
 * an answer to another question, never filed under k. */
static etagkv_status point_item(const struct ekv_etcd_item *items, size_t n,
                                const char *k, size_t k_len,
                                struct ekv_etcd_item *it)
{
    if (n == 0)
        return ETAGKV_OK;
    if (n == 1 && items[0].key_len == k_len &&
        memcmp(items[0].key, k, k_len) == 0) {
        *it = items[0];
        return ETAGKV_OK;
    }
    return ekv_fail(ETAGKV_IO_ERROR,
                    "etcd answered a range of one key with %zu keys%s", n,
                    n == 1 ? ", not the one asked for" : "");
}

/* A page etcd answered to a range of [key, end) (end NULL: a point read,
 * checked by point_item()): its keys, items[0..n), lie in the range, in
 * ascending order, and a page that says there is more holds something.
 * Anything else answers another question (a gateway or proxy gone wrong):
 * a key outside the range would be filed under the wrong table, or cut to
 * a length below its table's prefix, and a cursor would ask again forever
 * for an empty page with more. */
static etagkv_status page_ok(const struct ekv_etcd_item *items, size_t n,
                             int more, const char *key, size_t key_len,
                             const char *end, size_t end_len)
{
    if (more && n == 0)
        return ekv_fail(ETAGKV_IO_ERROR,
                        "etcd answered an empty page of a range with more");
    for (size_t i = 0; end != NULL && i < n; i++) {
        const struct ekv_etcd_item *it = &items[i];

        if (key_cmp(it->key, it->key_len, key, key_len) < 0 ||
            key_cmp(it->key, it->key_len, end, end_len) >= 0 ||
            (i > 0 && key_cmp(items[i - 1].key, items[i - 1].key_len, it->key,
                              it->key_len) >= 0))
            return ekv_fail(ETAGKV_IO_ERROR,
                            "etcd answered a range with a key outside it, or "
                            "out of order");
    }
    return ETAGKV_OK;
}

/* Keep what the first read found for hint h (its answer r). */
static etagkv_status keep_hint(ekv_txn *txn, struct ekv_etcd_hint *h,
                               const json_t *r)
{
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);
    struct ekv_etcd_item it = {.key = h->key, .key_len = h->key_len};
    etagkv_status st;
    size_t end_len = 0;
    char *end = NULL;

    if (!json_is_object(r))
        return ekv_fail(ETAGKV_IO_ERROR, "etcd: a Txn without a range");
    st = decode_kvs(t, r, &h->page, &h->n);
    if (st == ETAGKV_OK && h->limit > 0 &&
        (end = hint_end(txn, h, &end_len)) == NULL)
        st = ETAGKV_NO_MEMORY;
    h->more = json_is_true(json_object_get(r, "more"));
    if (st == ETAGKV_OK)
        st = page_ok(h->page, h->n, h->more, h->key, h->key_len, end, end_len);
    if (st != ETAGKV_OK)
        return st;
    h->fetched = h->limit > 0;
    if (h->limit > 0)
        return ETAGKV_OK;
    st = point_item(h->page, h->n, h->key, h->key_len, &it);
    return st == ETAGKV_OK ? set_put(&t->cache, &it, 0) : st;
}

/* A write transaction's first read: one read-only etcd Txn (served as a
 * linearizable read, no Raft proposal) holding the range asked for, req,
 * and every read announced by ekv_etcd_prefetch() (the counters and the
 * change log's floor, the batch's records and idempotency entries, the
 * change log's oldest page when a trim is due, the idempotency purge's
 * page), so that the
 * transaction costs two round trips: this one and its commit.  Pins the
 * revision; *reply gets the answer to req. */
static etagkv_status first_read(ekv_txn *txn, json_t *req, json_t **reply)
{
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);
    size_t n_hints = 0;
    json_t *ops = first_read_ops(txn, req, &n_hints);
    json_t *txn_req = NULL, *answer = NULL, *res;
    etagkv_status st = ETAGKV_NO_MEMORY;

    if (ops != NULL)
        txn_req = json_pack("{s:O}", "success", ops);
    if (txn_req != NULL)
        st = ekv_etcd_call(ekv_etcd_of(txn->env)->client, "/v3/kv/txn", txn_req,
                           0, &answer);
    res = json_object_get(answer, "responses");
    if (st == ETAGKV_OK && json_array_size(res) != json_array_size(ops))
        st = ekv_fail(ETAGKV_IO_ERROR, "etcd: a Txn of %zu ranges answered %zu",
                      json_array_size(ops), json_array_size(res));
    if (st == ETAGKV_OK) {
        t->revision = ekv_etcd_int(
            json_object_get(json_object_get(answer, "header"), "revision"));
        for (size_t i = 0; st == ETAGKV_OK && i < n_hints; i++)
            st = keep_hint(
                txn, &t->hints[i],
                json_object_get(json_array_get(res, 1 + i), "response_range"));
    }
    if (st == ETAGKV_OK) {
        *reply = json_incref(
            json_object_get(json_array_get(res, 0), "response_range"));
        if (*reply == NULL)
            st = ekv_fail(ETAGKV_IO_ERROR, "etcd: a Txn without its range");
    }
    json_decref(ops);
    json_decref(txn_req);
    json_decref(answer);
    return st;
}

/* Add a hint for the full key k (and end, NULL for none). */
static etagkv_status hint_add(struct ekv_etcd_txn *t, char *k, size_t k_len,
                              char *end, size_t end_len, size_t limit)
{
    struct ekv_etcd_hint *h;

    /* After the first read a page hint is read when a cursor seeks at its
     * key (ekv_etcd_page()), still within its bounds; a read transaction
     * takes none (ekv_read_release() frees the hints' keys). */
    if (!t->write || (t->revision != 0 && limit == 0))
        return ETAGKV_OK; /* too late: read when asked */
    if (t->n_hints == t->cap_hints) {
        size_t cap = t->cap_hints > 0 ? t->cap_hints * 2 : 16;

        h = realloc(t->hints, cap * sizeof(*h));
        if (h == NULL)
            return ETAGKV_NO_MEMORY;
        t->hints = h;
        t->cap_hints = cap;
    }
    h = &t->hints[t->n_hints++];
    memset(h, 0, sizeof(*h));
    h->key = k;
    h->key_len = k_len;
    h->end = end;
    h->end_len = end_len;
    h->limit = limit;
    return ETAGKV_OK;
}

etagkv_status ekv_etcd_prefetch(ekv_txn *txn, enum ekv_table table,
                                const void *key, size_t key_len,
                                const void *end, size_t end_len, size_t limit)
{
    char letter = ekv_etcd_table_letter(table);
    char *k, *e = NULL;
    size_t k_len, e_len = 0;
    etagkv_status st = ekv_etcd_key(txn, letter, key, key_len, &k, &k_len);

    if (st == ETAGKV_OK && end_len > 0)
        st = ekv_etcd_key(txn, letter, end, end_len, &e, &e_len);
    if (st == ETAGKV_OK)
        st = hint_add(ekv_etcd_txn_of(txn), k, k_len, e, e_len, limit);
    return st;
}

etagkv_status ekv_etcd_prefetch_key(ekv_txn *txn, char letter, const char *name)
{
    char *k;
    size_t k_len;
    etagkv_status st =
        ekv_etcd_key(txn, letter, name, strlen(name), &k, &k_len);

    return st == ETAGKV_OK
               ? hint_add(ekv_etcd_txn_of(txn), k, k_len, NULL, 0, 0)
               : st;
}

etagkv_status ekv_etcd_page(ekv_txn *txn, const char *from, size_t from_len,
                            const struct ekv_etcd_hint **out)
{
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);

    *out = NULL;
    for (size_t i = 0; i < t->n_hints; i++) {
        struct ekv_etcd_hint *h = &t->hints[i];
        size_t end_len;
        char *end;
        int64_t count;
        etagkv_status st;

        if (h->limit == 0 || h->key_len != from_len ||
            memcmp(h->key, from, from_len) != 0)
            continue;
        if (!h->fetched && t->revision != 0) {
            /* Announced after the first read, or left out of it: read
             * now, within its bounds. */
            end = hint_end(txn, h, &end_len);
            st = end != NULL ? ekv_etcd_range(txn, h->key, h->key_len, end,
                                              end_len, h->limit, 0, &h->page,
                                              &h->n, &h->more, &count)
                             : ETAGKV_NO_MEMORY;
            if (st != ETAGKV_OK)
                return st;
            h->fetched = 1;
        }
        if (h->fetched) {
            *out = h;
            return ETAGKV_OK;
        }
    }
    return ETAGKV_OK;
}

void (*_Atomic ekv_test_before_pinned_read)(int write);

/* Tests only: see etcd_env.h. */
static void before_pinned_read(const struct ekv_etcd_txn *t)
{
    void (*hook)(int) = atomic_load(&ekv_test_before_pinned_read);

    if (hook != NULL && t->revision != 0)
        hook(t->write);
}

/* A read at the transaction's pinned revision that etcd refused as
 * compacted (st, from the client): its history was compacted past the
 * revision while the transaction read, and the snapshot is gone.  That is
 * no ETAGKV_COMPACTED, which means a position behind the change log's
 * floor.  A write transaction runs again at a fresh revision, as one that
 * lost a race (txn->conflict); a read fails, UNAVAILABLE: to be retried. */
static etagkv_status overtaken(ekv_txn *txn, etagkv_status st)
{
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);

    if (st != ETAGKV_COMPACTED)
        return st;
    if (t->write)
        txn->conflict = 1;
    return ekv_fail(ETAGKV_UNAVAILABLE,
                    "etcd compacted its history past revision %lld, at which "
                    "this %s was reading: %s",
                    (long long)t->revision, t->write ? "write" : "read",
                    t->write ? "run again" : "retry it");
}

etagkv_status ekv_etcd_range(ekv_txn *txn, const char *key, size_t key_len,
                             const char *end, size_t end_len, size_t limit,
                             int count_only, struct ekv_etcd_item **items,
                             size_t *n, int *more, int64_t *count)
{
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);
    json_t *req =
        range_request(t, key, key_len, end, end_len, limit, count_only);
    json_t *reply = NULL;
    etagkv_status st;

    *n = 0;
    *items = NULL;
    if (req == NULL)
        return ETAGKV_NO_MEMORY;
    if (t->write && t->revision == 0)
        st = first_read(txn, req, &reply);
    else if (t->revision == 0 && end == NULL)
        st = ekv_etcd_read(ekv_etcd_of(txn->env)->client, req, &reply);
    else {
        before_pinned_read(t);
        st = overtaken(txn, ekv_etcd_call(ekv_etcd_of(txn->env)->client,
                                          "/v3/kv/range", req, 0, &reply));
    }
    json_decref(req);
    if (st != ETAGKV_OK)
        return st;
    if (t->revision == 0)
        t->revision = ekv_etcd_int(
            json_object_get(json_object_get(reply, "header"), "revision"));
    *more = json_is_true(json_object_get(reply, "more"));
    *count = ekv_etcd_int(json_object_get(reply, "count"));
    st = decode_kvs(t, reply, items, n);
    json_decref(reply);
    if (st == ETAGKV_OK)
        st = page_ok(*items, *n, *more && !count_only, key, key_len, end,
                     end_len);
    return st;
}

/* ---- point reads and buffered writes
 * ------------------------------------------ */

etagkv_status ekv_etcd_lookup(ekv_txn *txn, const char *k, size_t k_len,
                              const struct ekv_etcd_item **out)
{
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);
    struct ekv_etcd_item it = {.key = (char *)k, .key_len = k_len}, *got;
    size_t n;
    int more;
    int64_t count;
    etagkv_status st;

    got = set_get(&t->writes, k, k_len);
    if (got == NULL)
        got = set_get(&t->reads, k, k_len);
    if (got != NULL) {
        *out = got;
        return ETAGKV_OK;
    }
    got = set_get(&t->cache, k, k_len);
    if (got != NULL) {
        it = *got; /* fetched by the first read: now read */
    } else if (take_known(txn, k, k_len, &it)) {
        /* as the handle's last commit left it: the commit compares it */
    } else {
        st = ekv_etcd_range(txn, k, k_len, NULL, 0, 0, 0, &got, &n, &more,
                            &count);
        if (st == ETAGKV_OK) /* absent: present 0, mod_revision 0 */
            st = point_item(got, n, k, k_len, &it);
        if (st != ETAGKV_OK)
            return st;
    }
    st = set_put(&t->reads, &it, 0);
    if (st == ETAGKV_OK)
        *out = set_get(&t->reads, k, k_len);
    return st;
}

/* The record in item it, decoded. */
static etagkv_status record_of(const struct ekv_etcd_item *it, ekv_record *r)
{
    if (ekv_record_decode(it->val, it->val_len, r) != ETAGKV_OK)
        return ekv_fail(ETAGKV_CORRUPT, "record of %zu bytes fails to decode",
                        it->val_len);
    return ETAGKV_OK;
}

etagkv_status ekv_etcd_record_before(ekv_txn *txn, const void *key,
                                     size_t key_len, uint64_t *at,
                                     ekv_record *r)
{
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);
    const struct ekv_etcd_item *it = NULL;
    struct ekv_etcd_item *items = NULL, then = {0};
    json_t *req = NULL, *reply = NULL;
    int64_t pinned;
    size_t n = 0;
    char *k;
    size_t k_len;
    etagkv_status st = ekv_etcd_key(txn, 'r', key, key_len, &k, &k_len);

    if (st == ETAGKV_OK && *at == 0) {
        st = ekv_etcd_lookup(txn, k, k_len, &it); /* pins the revision */
    } else if (st == ETAGKV_OK && *at > 1 && *at <= INT64_MAX) {
        /* etcd's revision just before that write: the key as it was. */
        pinned = t->revision;
        t->revision = (int64_t)*at - 1;
        req = range_request(t, k, k_len, NULL, 0, 0, 0);
        t->revision = pinned;
        st = req != NULL ? ekv_etcd_call(ekv_etcd_of(txn->env)->client,
                                         "/v3/kv/range", req, 0, &reply)
                         : ETAGKV_NO_MEMORY;
        if (st == ETAGKV_OK)
            st = decode_kvs(t, reply, &items, &n);
        if (st == ETAGKV_OK) /* absent: present 0 */
            st = point_item(items, n, k, k_len, &then);
        it = &then;
        json_decref(req);
        json_decref(reply);
    }
    if (st == ETAGKV_OK && (it == NULL || !it->present || it->mod_revision < 1))
        st = ETAGKV_NOT_FOUND;
    if (st == ETAGKV_OK)
        st = record_of(it, r);
    if (st == ETAGKV_OK)
        *at = (uint64_t)it->mod_revision;
    return st;
}

etagkv_status ekv_etcd_put(ekv_txn *txn, const char *k, size_t k_len,
                           size_t bytes, void **dst)
{
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);
    struct ekv_etcd_item it = {.key = (char *)k, .key_len = k_len};
    etagkv_status st;

    it.val = ekv_etcd_alloc(t, bytes);
    if (it.val == NULL)
        return ETAGKV_NO_MEMORY;
    it.val_len = bytes;
    it.present = 1;
    st = set_put(&t->writes, &it, 1);
    if (st == ETAGKV_OK)
        *dst = it.val;
    return st;
}

etagkv_status ekv_etcd_delete(ekv_txn *txn, const char *k, size_t k_len)
{
    struct ekv_etcd_item it = {.key = (char *)k, .key_len = k_len};

    return set_put(&ekv_etcd_txn_of(txn)->writes, &it, 1);
}

/* Is item it's key one of [start, start + len)'s? */
static int under(const struct ekv_etcd_item *it, const char *start, size_t len)
{
    return it->key_len >= len && memcmp(it->key, start, len) == 0;
}

/* The read-only Txn reading the keys of the write set under start that the
 * read set lacks: one Range each, at the pinned revision. */
static json_t *unknown_reads(const struct ekv_etcd_txn *t, const char *start,
                             size_t len)
{
    json_t *ops = json_array();
    int bad = ops == NULL;

    for (size_t i = ekv_etcd_set_find(&t->writes, start, len, 1);
         !bad && i < t->writes.n && under(&t->writes.v[i], start, len); i++) {
        const struct ekv_etcd_item *w = &t->writes.v[i];
        json_t *r;

        if (set_get(&t->reads, w->key, w->key_len) != NULL)
            continue;
        r = range_request(t, w->key, w->key_len, NULL, 0, 0, 0);
        bad = r == NULL || json_array_append_new(
                               ops, json_pack("{s:o}", "request_range", r));
    }
    if (bad) {
        json_decref(ops);
        return NULL;
    }
    return ops;
}

etagkv_status ekv_etcd_learn(ekv_txn *txn, const char *start, size_t len,
                             int absent)
{
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);
    size_t first = ekv_etcd_set_find(&t->writes, start, len, 1), at = 0;
    json_t *ops = NULL, *req = NULL, *answer = NULL, *res;
    etagkv_status st = ETAGKV_OK;

    /* What the first read brought, or what the caller knows is absent. */
    for (size_t i = first; st == ETAGKV_OK && i < t->writes.n &&
                           under(&t->writes.v[i], start, len);
         i++) {
        const struct ekv_etcd_item *w = &t->writes.v[i];
        struct ekv_etcd_item it = {.key = w->key, .key_len = w->key_len};
        const struct ekv_etcd_item *got =
            set_get(&t->cache, w->key, w->key_len);
        int have = got != NULL;

        if (have)
            it = *got;
        else
            have = take_known(txn, w->key, w->key_len, &it);
        if (have || absent)
            st = set_put(&t->reads, &it, 0);
    }
    if (st == ETAGKV_OK)
        ops = unknown_reads(t, start, len);
    if (ops == NULL)
        return st == ETAGKV_OK ? ETAGKV_NO_MEMORY : st;
    if (json_array_size(ops) == 0) {
        json_decref(ops);
        return ETAGKV_OK;
    }
    /* The rest in one round trip. */
    req = json_pack("{s:O}", "success", ops);
    before_pinned_read(t);
    st = req != NULL
             ? overtaken(txn, ekv_etcd_call(ekv_etcd_of(txn->env)->client,
                                            "/v3/kv/txn", req, 0, &answer))
             : ETAGKV_NO_MEMORY;
    res = json_object_get(answer, "responses");
    if (st == ETAGKV_OK && json_array_size(res) != json_array_size(ops))
        st = ekv_fail(ETAGKV_IO_ERROR, "etcd: a Txn of %zu ranges answered %zu",
                      json_array_size(ops), json_array_size(res));
    for (size_t i = first; st == ETAGKV_OK && i < t->writes.n &&
                           under(&t->writes.v[i], start, len);
         i++) {
        const struct ekv_etcd_item *w = &t->writes.v[i];
        struct ekv_etcd_item it = {.key = w->key, .key_len = w->key_len};
        struct ekv_etcd_item *items;
        size_t n;

        if (set_get(&t->reads, w->key, w->key_len) != NULL)
            continue; /* known before the Txn: not in it */
        st = decode_kvs(
            t, json_object_get(json_array_get(res, at++), "response_range"),
            &items, &n);
        if (st == ETAGKV_OK) /* absent: present 0, mod_revision 0 */
            st = point_item(items, n, w->key, w->key_len, &it);
        if (st == ETAGKV_OK)
            st = set_put(&t->reads, &it, 0);
    }
    json_decref(ops);
    json_decref(req);
    json_decref(answer);
    return st;
}

int64_t ekv_etcd_write_delta(const struct ekv_etcd_txn *t, const char *start,
                             size_t len)
{
    int64_t delta = 0;

    for (size_t i = ekv_etcd_set_find(&t->writes, start, len, 1);
         i < t->writes.n && under(&t->writes.v[i], start, len); i++) {
        const struct ekv_etcd_item *w = &t->writes.v[i];
        const struct ekv_etcd_item *r = set_get(&t->reads, w->key, w->key_len);
        int existed = r != NULL && r->present;

        delta += w->present && !existed ? 1 : 0;
        delta -= !w->present && existed ? 1 : 0;
    }
    return delta;
}

/* ---- begin and end ----------------------------------------------------------
 */

static etagkv_status begin(struct ekv_env *env, ekv_txn *txn, int write)
{
    struct ekv_etcd_txn *t = calloc(1, sizeof(*t));

    txn->handle = t;
    if (t == NULL)
        return ETAGKV_NO_MEMORY;
    t->write = write;
    for (size_t i = 0; i < 4; i++)
        t->counts[i] = -1;
    if (write) {
        struct ekv_etcd_env *e = ekv_etcd_of(env); /* write_lock held */

        t->use_known = e->known_skip == 0;
        if (e->known_skip > 0)
            e->known_skip--;
    }
    txn->env = env;
    txn->handle = t;
    txn->map_bytes = 0;
    txn->out_of_room = 0;
    txn->conflict = 0;
    return write ? ekv_etcd_prefetch_meta(txn) : ETAGKV_OK;
}

static void end(ekv_txn *txn)
{
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);

    for (size_t i = 0; i < t->n_blocks; i++)
        free(t->blocks[i]);
    free(t->blocks);
    free(t->reads.v);
    free(t->writes.v);
    free(t->cache.v);
    free(t->hints);
    free(t);
    txn->handle = NULL;
}

etagkv_status ekv_etcd_read_begin(struct ekv_env *env, ekv_txn *txn)
{
    return begin(env, txn, 0);
}

void ekv_etcd_read_end(ekv_txn *txn)
{
    end(txn);
}

void ekv_etcd_read_release(ekv_txn *txn)
{
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);

    /* The pinned revision stays, so later reads see the same snapshot;
     * the read set's items point into the blocks, so it goes with them
     * (a read transaction commits nothing and needs no compares). */
    for (size_t i = 0; i < t->n_blocks; i++)
        free(t->blocks[i]);
    t->n_blocks = 0;
    t->reads.n = 0;
}

etagkv_status ekv_etcd_write_begin(struct ekv_env *env, ekv_txn *txn)
{
    struct ekv_etcd_env *e = ekv_etcd_of(env);
    etagkv_status st;

    if (e->read_only)
        return ekv_fail(ETAGKV_READ_ONLY, "the store was opened read-only");
    (void)pthread_mutex_lock(&e->write_lock);
    st = begin(env, txn, 1);
    if (st != ETAGKV_OK && txn->handle != NULL)
        ekv_etcd_write_abort(txn);
    else if (st != ETAGKV_OK)
        (void)pthread_mutex_unlock(&e->write_lock);
    return st;
}

void ekv_etcd_write_abort(ekv_txn *txn)
{
    struct ekv_etcd_env *e = ekv_etcd_of(txn->env);

    end(txn);
    (void)pthread_mutex_unlock(&e->write_lock);
}

/* ---- commit -----------------------------------------------------------------
 */

/* One compare: key's mod_revision is what the transaction read. */
static json_t *compare_of(const struct ekv_etcd_item *it)
{
    json_t *c = json_object();

    if (c == NULL || ekv_etcd_set_bytes(c, "key", it->key, it->key_len) ||
        json_object_set_new(c, "target", json_string("MOD")) ||
        json_object_set_new(c, "result", json_string("EQUAL")) ||
        json_object_set_new(c, "mod_revision",
                            json_integer((json_int_t)it->mod_revision))) {
        json_decref(c);
        return NULL;
    }
    return c;
}

/* One buffered write as a request_put or request_delete_range. */
static json_t *request_of(const struct ekv_etcd_item *it)
{
    json_t *r = json_object(), *op = json_object();

    if (r == NULL || op == NULL ||
        ekv_etcd_set_bytes(r, "key", it->key, it->key_len) ||
        (it->present && ekv_etcd_set_bytes(r, "value", it->val, it->val_len)) ||
        json_object_set_new(
            op, it->present ? "request_put" : "request_delete_range", r)) {
        json_decref(op);
        return NULL;
    }
    return op;
}

/* Is k under the prefix's table `letter` (P/<letter>/...)? */
static int in_table(const struct ekv_etcd_env *env, const char *k, size_t k_len,
                    char letter)
{
    return k_len >= env->prefix_len + 3 && k[env->prefix_len + 1] == letter &&
           k[env->prefix_len + 2] == '/';
}

/* Does the read set hold the store revision, P/m/revision? */
static int reads_revision(const struct ekv_etcd_env *env,
                          const struct ekv_etcd_txn *t)
{
    static const char name[] = EKV_ETCD_REVISION_NAME;
    size_t n = env->prefix_len + 3 + sizeof(name) - 1;

    for (size_t i = 0; i < t->reads.n; i++) {
        const struct ekv_etcd_item *r = &t->reads.v[i];

        if (r->key_len == n &&
            in_table(env, r->key, r->key_len, EKV_ETCD_META) &&
            memcmp(r->key + env->prefix_len + 3, name, sizeof(name) - 1) == 0)
            return 1;
    }
    return 0;
}

/* The Txn request: every read compared, and unless writes is 0 every
 * write applied (0: a read-only Txn, which etcd answers without a Raft
 * round, and which drops what the transaction buffered).
 *
 * Except the change log's keys (P/c/) when the store revision is read:
 * every commit that writes the log writes the revision too (events are
 * appended, and the log trimmed, only by a transaction that changed
 * something, and that one puts the revision: apply.c), so a change to
 * any key of the log since it was read fails the revision's compare
 * already.  That is a compare saved per event appended (absent until
 * now) and per event trimmed: a fifth of a commit's operations, and more
 * in one that trims. */
static json_t *txn_request(const struct ekv_etcd_env *env,
                           const struct ekv_etcd_txn *t, int writes)
{
    json_t *req = json_object(), *cmp = json_array(), *ops = json_array();
    int bad = req == NULL || cmp == NULL || ops == NULL;
    int log_covered = reads_revision(env, t);

    for (size_t i = 0; !bad && i < t->reads.n; i++) {
        const struct ekv_etcd_item *r = &t->reads.v[i];

        if (log_covered && in_table(env, r->key, r->key_len,
                                    ekv_etcd_table_letter(EKV_TABLE_CHANGES)))
            continue;
        bad = json_array_append_new(cmp, compare_of(r)) != 0;
    }
    for (size_t i = 0; !bad && writes && i < t->writes.n; i++)
        bad = json_array_append_new(ops, request_of(&t->writes.v[i])) != 0;
    if (!bad)
        bad = json_object_set(req, "compare", cmp) ||
              (writes && json_object_set(req, "success", ops));
    json_decref(cmp);
    json_decref(ops);
    if (bad) {
        json_decref(req);
        return NULL;
    }
    return req;
}

/* Send the commit (writes 0: only the compares, for a transaction that
 * writes nothing: what it buffered is dropped) and end the transaction.
 * What the handle remembers follows the outcome: a commit updates it; a
 * lost one that had taken keys from it makes the next transactions read
 * afresh; a request that failed, whose outcome may be unknown, empties
 * it.  Lost without a request: a transaction that saw two states of one
 * key (t->torn).  Lost too: a settle that etcd finds too large (its
 * --max-txn-ops counts compares: a refused POST /txn of ~128 keys); the
 * batch then runs again reading afresh, and needs no settle. */
static etagkv_status send_commit(ekv_txn *txn, int writes)
{
    struct ekv_etcd_env *env = ekv_etcd_of(txn->env);
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);
    json_t *req = NULL, *reply = NULL;
    etagkv_status st = ETAGKV_OK;
    int lost = t->torn;

    if (!lost) {
        req = txn_request(env, t, writes);
        st = req != NULL
                 ? ekv_etcd_call(env->client, "/v3/kv/txn", req, writes, &reply)
                 : ETAGKV_NO_MEMORY;
        if (!writes && st == ETAGKV_TXN_TOO_LARGE && t->n_known > 0) {
            st = ETAGKV_OK;
            lost = 1;
        } else if (st == ETAGKV_OK) {
            lost = !json_is_true(json_object_get(reply, "succeeded"));
        }
    }
    if (st == ETAGKV_OK && lost) {
        txn->conflict = 1;
        st = ekv_fail(ETAGKV_UNAVAILABLE,
                      "etcd: another writer changed a key this transaction "
                      "read, again and again");
        if (t->n_known > 0)
            distrust(env);
    } else if (st == ETAGKV_OK && writes) {
        remember_commit(
            txn, ekv_etcd_int(json_object_get(json_object_get(reply, "header"),
                                              "revision")));
        if (t->n_known > 0)
            env->known_backoff = 1; /* remembering paid off */
    } else if (st != ETAGKV_OK && writes) {
        ekv_etcd_known_clear(env->known);
    }
    json_decref(req);
    json_decref(reply);
    ekv_etcd_write_abort(txn);
    return st;
}

/* Writes a commit adds to what was buffered: the counters of the
 * counted tables (ekv_etcd_counters_update()). */
#define COMMIT_OWN_WRITES 3

size_t ekv_etcd_write_room(ekv_txn *txn)
{
    size_t used = ekv_etcd_txn_of(txn)->writes.n + COMMIT_OWN_WRITES;

    return used < EKV_ETCD_TXN_OPS ? EKV_ETCD_TXN_OPS - used : 0;
}

etagkv_status ekv_etcd_write_settle(ekv_txn *txn)
{
    /* Read at one pinned revision, every answer stands as of it. */
    if (ekv_etcd_txn_of(txn)->n_known == 0) {
        ekv_etcd_write_abort(txn);
        return ETAGKV_OK;
    }
    return send_commit(txn, 0);
}

etagkv_status ekv_etcd_write_commit(ekv_txn *txn)
{
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);
    etagkv_status st;

    if (t->writes.n == 0)
        return ekv_etcd_write_settle(txn);
    st = ekv_etcd_counters_update(txn);
    if (st != ETAGKV_OK) {
        ekv_etcd_write_abort(txn);
        return st;
    }
    return send_commit(txn, 1);
}
