/*
 * txn.c -- multi-key transactions (DESIGN §7): the etagkv_txn builder, its
 * commit through the group-commit queue, and its execution inside a
 * batch's write transaction.
 *
 * A transaction is one entry of a batch (a struct ekv_op whose txn is
 * set), so it is evaluated in arrival order with its neighbours (commit.c,
 * apply.c) and shares their transaction and sync.  All or nothing without
 * a nested transaction: every operation is first evaluated against the
 * store overlaid with the records that the operations before it would
 * write (computed here, in memory, with the same successor rule as a
 * single write); only when none fails are the writes made.  So a conflict
 * writes nothing and cannot touch its neighbours, and no savepoint is
 * needed -- LMDB's nested transactions allocate a 2 MiB dirty list each,
 * and an etcd backend would have none.  Evaluation stays above backend.h:
 * the backend sees ekv_record_get(), ekv_record_reserve() and
 * ekv_record_delete() only.
 *
 * One committed transaction is one store revision: every record it writes
 * gets mod_revision *rev + 1, and the counter moves by one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

enum kind { K_GET, K_CHECK, K_PUT, K_DELETE };

struct txn_op {
    enum kind kind;
    uint8_t *key; /* copies, owned */
    size_t key_len;
    uint8_t *value; /* put */
    size_t value_len;
    char *ctype; /* put: never NULL (the default when none was given) */
    size_t ctype_len;
    etagkv_cond *cond; /* a copy, or NULL */
    uint64_t lease;    /* put: the lease to attach the key to, or 0 */
    uint8_t value_hash[EKV_HASH_BYTES];
    /* A put of a copied record (ekv_txn_put_restored()): its own times. */
    int restored;
    uint64_t created_ns, modified_ns;
    /* Execution state, reset for every attempt of the batch. */
    int writes;                   /* evaluated true and writes */
    ekv_record rec;               /* put: the record it writes */
    uint8_t hash[EKV_HASH_BYTES]; /* res.meta.etag in binary */
    void *copy;                   /* get: its value, copied from the store */
    etagkv_txn_op_result res;
};

struct etagkv_txn {
    struct txn_op *ops;
    size_t n, cap;
    uint64_t bytes; /* keys, values and content types */
    int has_get;
    /* Holds restored puts: bounded by etagkv_store_copy()'s pages rather
     * than by max_txn_ops and max_txn_bytes. */
    int restoring;
    etagkv_status refused; /* the first refused add, or ETAGKV_OK */
    int conflict_values;   /* a conflict carries every key's value */
    int values_given;      /* ...and the last one did */
    uint8_t *idem;         /* idempotency key, or NULL */
    size_t idem_len;
    etagkv_txn_outcome out;
    etagkv_done_fn done; /* etagkv_txn_submit()'s callback */
    void *done_ctx;
};

/* ---- building ------------------------------------------------------------ */

/* Forget the results of every operation (an attempt starts afresh). */
static void ops_reset(etagkv_txn *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->ops[i].copy);
        t->ops[i].copy = NULL;
        t->ops[i].writes = 0;
        memset(&t->ops[i].res, 0, sizeof(t->ops[i].res));
    }
    t->out.failed = ETAGKV_TXN_NONE;
    t->out.revision = 0;
    t->values_given = 0;
}

static void outcome_reset(etagkv_txn *t)
{
    ops_reset(t);
    t->out.status = ETAGKV_INVALID_ARGUMENT;
    t->out.replayed = 0;
}

etagkv_status etagkv_txn_new(etagkv_txn **out)
{
    ekv_clear_error();
    if (out == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    *out = calloc(1, sizeof(**out));
    if (*out == NULL)
        return ETAGKV_NO_MEMORY;
    outcome_reset(*out);
    return ETAGKV_OK;
}

static void op_free(struct txn_op *o)
{
    free(o->key);
    free(o->value);
    free(o->ctype);
    free(o->copy);
    etagkv_cond_free(o->cond);
}

void etagkv_txn_free(etagkv_txn *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        op_free(&t->ops[i]);
    free(t->ops);
    free(t->idem);
    free(t);
}

/* A malloc'd copy of len bytes at p (at least one byte, so that an empty
 * value is not NULL); NULL when out of memory. */
static void *dup_bytes(const void *p, size_t len)
{
    void *d = malloc(len > 0 ? len : 1);

    if (d != NULL && len > 0)
        memcpy(d, p, len);
    return d;
}

/* Fill o with copies of the arguments, checked.  On failure o holds what
 * it got, for op_free(). */
static etagkv_status op_fill(struct txn_op *o, enum kind kind, const void *key,
                             size_t key_len, const void *value,
                             size_t value_len, const char *ctype,
                             const etagkv_cond *c)
{
    etagkv_status st = ekv_check_key(key, key_len);

    if (st != ETAGKV_OK)
        return st;
    o->kind = kind;
    o->key_len = key_len;
    o->key = dup_bytes(key, key_len);
    if (o->key == NULL || ekv_cond_copy(c, &o->cond) != ETAGKV_OK)
        return ETAGKV_NO_MEMORY;
    if (kind != K_PUT)
        return ETAGKV_OK;
    if (value == NULL && value_len > 0)
        return ETAGKV_INVALID_ARGUMENT;
    if (ctype == NULL)
        ctype = ETAGKV_CONTENT_TYPE_DEFAULT;
    if (!ekv_content_type_valid(ctype, strlen(ctype)))
        return ekv_fail(ETAGKV_INVALID_HEADER, "invalid content type");
    o->value_len = value_len;
    o->ctype_len = strlen(ctype);
    o->value = dup_bytes(value, value_len);
    o->ctype = dup_bytes(ctype, o->ctype_len);
    if (o->value == NULL || o->ctype == NULL)
        return ETAGKV_NO_MEMORY;
    /* Hashed here, outside any lock, as write.c does. */
    ekv_hash128(o->value, value_len, o->value_hash);
    return ETAGKV_OK;
}

/* Append an operation, or remember the refusal (see etagkv.h). */
static etagkv_status add(etagkv_txn *t, enum kind kind, const void *key,
                         size_t key_len, const void *value, size_t value_len,
                         const char *ctype, const etagkv_cond *c)
{
    struct txn_op o;
    etagkv_status st;

    ekv_clear_error();
    if (t == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    memset(&o, 0, sizeof(o));
    st = op_fill(&o, kind, key, key_len, value, value_len, ctype, c);
    if (st == ETAGKV_OK && t->n == t->cap) {
        size_t cap = t->cap > 0 ? t->cap * 2 : 8;
        struct txn_op *ops = realloc(t->ops, cap * sizeof(*ops));

        if (ops == NULL) {
            st = ETAGKV_NO_MEMORY;
        } else {
            t->ops = ops;
            t->cap = cap;
        }
    }
    if (st != ETAGKV_OK) {
        op_free(&o);
        if (t->refused == ETAGKV_OK)
            t->refused = st;
        return st;
    }
    t->ops[t->n++] = o;
    t->bytes += key_len + o.value_len + o.ctype_len;
    t->has_get |= kind == K_GET;
    return ETAGKV_OK;
}

etagkv_status etagkv_txn_get(etagkv_txn *t, const void *key, size_t key_len,
                             const etagkv_cond *c)
{
    return add(t, K_GET, key, key_len, NULL, 0, NULL, c);
}

etagkv_status etagkv_txn_check(etagkv_txn *t, const void *key, size_t key_len,
                               const etagkv_cond *c)
{
    return add(t, K_CHECK, key, key_len, NULL, 0, NULL, c);
}

etagkv_status etagkv_txn_put(etagkv_txn *t, const void *key, size_t key_len,
                             const void *value, size_t value_len,
                             const char *content_type, const etagkv_cond *c)
{
    return add(t, K_PUT, key, key_len, value, value_len, content_type, c);
}

etagkv_status etagkv_txn_put_lease(etagkv_txn *t, const void *key,
                                   size_t key_len, const void *value,
                                   size_t value_len, const char *content_type,
                                   const etagkv_cond *c, uint64_t lease)
{
    etagkv_status st =
        add(t, K_PUT, key, key_len, value, value_len, content_type, c);

    if (st == ETAGKV_OK)
        t->ops[t->n - 1].lease = lease;
    return st;
}

etagkv_status etagkv_txn_delete(etagkv_txn *t, const void *key, size_t key_len,
                                const etagkv_cond *c)
{
    return add(t, K_DELETE, key, key_len, NULL, 0, NULL, c);
}

etagkv_status ekv_txn_put_restored(etagkv_txn *t, const void *key,
                                   size_t key_len, const ekv_record *r)
{
    char ctype[ETAGKV_CONTENT_TYPE_MAX + 1];
    etagkv_cond *absent;
    etagkv_status st = etagkv_cond_create_only(&absent);

    if (st != ETAGKV_OK)
        return st;
    memcpy(ctype, r->content_type, r->content_type_len);
    ctype[r->content_type_len] = '\0';
    st = add(t, K_PUT, key, key_len, r->value, r->value_len, ctype, absent);
    etagkv_cond_free(absent);
    if (st == ETAGKV_OK) {
        struct txn_op *o = &t->ops[t->n - 1];

        o->restored = 1;
        o->created_ns = r->created_ns;
        o->modified_ns = r->modified_ns;
        t->restoring = 1;
    }
    return st;
}

etagkv_status etagkv_txn_set_idempotency_key(etagkv_txn *t, const void *key,
                                             size_t len)
{
    uint8_t *copy = NULL;

    ekv_clear_error();
    if (t == NULL || (key == NULL && len > 0))
        return ETAGKV_INVALID_ARGUMENT;
    if (len > ETAGKV_IDEMPOTENCY_KEY_MAX) {
        if (t->refused == ETAGKV_OK)
            t->refused = ETAGKV_INVALID_HEADER;
        return ekv_fail(ETAGKV_INVALID_HEADER,
                        "idempotency key longer than %d bytes",
                        ETAGKV_IDEMPOTENCY_KEY_MAX);
    }
    if (len > 0) {
        copy = dup_bytes(key, len);
        if (copy == NULL)
            return ETAGKV_NO_MEMORY;
    }
    free(t->idem);
    t->idem = copy;
    t->idem_len = len;
    return ETAGKV_OK;
}

etagkv_status etagkv_txn_set_conflict_values(etagkv_txn *t, int on)
{
    ekv_clear_error();
    if (t == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    t->conflict_values = on != 0;
    return ETAGKV_OK;
}

size_t etagkv_txn_count(const etagkv_txn *t)
{
    return t != NULL ? t->n : 0;
}

void etagkv_txn_report(const etagkv_txn *t, etagkv_txn_outcome *out)
{
    if (t != NULL && out != NULL)
        *out = t->out;
}

int etagkv_txn_has_conflict_values(const etagkv_txn *t)
{
    return t != NULL && t->values_given;
}

const etagkv_txn_op_result *etagkv_txn_op(const etagkv_txn *t, size_t i)
{
    return t != NULL && i < t->n ? &t->ops[i].res : NULL;
}

/* ---- committing ---------------------------------------------------------- */

/* The fingerprint of the whole transaction, for its idempotency key: every
 * operation's kind, key, value hash, content type and canonical
 * conditions, hashed as a chain so that no buffer holds them all. */
static etagkv_status fingerprint(const etagkv_txn *t,
                                 uint8_t out[EKV_HASH_BYTES])
{
    static const char tag[] = "etagkv.txn/1";

    ekv_hash128(tag, sizeof(tag) - 1, out);
    for (size_t i = 0; i < t->n; i++) {
        const struct txn_op *o = &t->ops[i];
        uint8_t lens[25], lease[8], *cond, prev[EKV_HASH_BYTES];
        size_t cond_len;
        ekv_part parts[7];
        etagkv_status st = ekv_cond_serialize(o->cond, &cond, &cond_len);

        if (st != ETAGKV_OK)
            return st;
        lens[0] = (uint8_t)o->kind;
        ekv_put_le64(lens + 1, o->key_len);
        ekv_put_le64(lens + 9, o->ctype_len);
        ekv_put_le64(lens + 17, cond_len);
        memcpy(prev, out, EKV_HASH_BYTES);
        parts[0] = (ekv_part){prev, EKV_HASH_BYTES};
        parts[1] = (ekv_part){lens, sizeof(lens)};
        parts[2] = (ekv_part){o->key, o->key_len};
        parts[3] =
            (ekv_part){o->value_hash, o->kind == K_PUT ? EKV_HASH_BYTES : 0};
        parts[4] = (ekv_part){o->ctype, o->ctype_len};
        parts[5] = (ekv_part){cond, cond_len};
        /* Only when there is one: fingerprints recorded before leases
         * existed stay valid. */
        ekv_put_le64(lease, o->lease);
        parts[6] = (ekv_part){lease, o->lease != 0 ? 8 : 0};
        ekv_hash128_parts(parts, 7, out);
        free(cond);
    }
    return ETAGKV_OK;
}

/* The most bytes t may carry in s (see struct etagkv_txn.restoring). */
static uint64_t bytes_limit(const etagkv_store *s, const etagkv_txn *t)
{
    return t->restoring ? UINT64_MAX : s->opts.max_txn_bytes;
}

/* Check t against s's limits and fill op, the transaction's batch entry.
 * Everything here needs no write transaction. */
static etagkv_status prepare(etagkv_store *s, etagkv_txn *t, struct ekv_op *op)
{
    memset(op, 0, sizeof(*op));
    if (s == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    if (t->refused != ETAGKV_OK)
        return ekv_fail(t->refused, "an operation was refused when added");
    if (t->n > s->opts.max_txn_ops && !t->restoring)
        return ekv_fail(ETAGKV_TXN_TOO_LARGE, "%zu operations, limit %llu",
                        t->n, (unsigned long long)s->opts.max_txn_ops);
    if (t->bytes > bytes_limit(s, t))
        return ekv_fail(ETAGKV_TXN_TOO_LARGE, "%llu bytes, limit %llu",
                        (unsigned long long)t->bytes,
                        (unsigned long long)s->opts.max_txn_bytes);
    for (size_t i = 0; i < t->n; i++)
        if (t->ops[i].value_len > s->opts.max_value_bytes)
            return ekv_fail(ETAGKV_VALUE_TOO_LARGE,
                            "operation %zu: %zu bytes, limit %llu", i,
                            t->ops[i].value_len,
                            (unsigned long long)s->opts.max_value_bytes);
    if (t->idem_len > 0 && t->has_get)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "a transaction with a get cannot have an "
                        "idempotency key: its value could not be replayed");
    op->txn = t;
    op->method = ETAGKV_METHOD_PUT; /* unused: the operations have theirs */
    op->value_len = (size_t)t->bytes;
    op->idem_key = t->idem;
    op->idem_len = t->idem_len;
    return t->idem_len > 0 ? fingerprint(t, op->fingerprint) : ETAGKV_OK;
}

/* Record the commit's status; on anything but OK and CONFLICT no
 * operation has a result. */
static void finish(etagkv_txn *t, etagkv_status st, int replayed)
{
    if (st != ETAGKV_OK && st != ETAGKV_CONFLICT) {
        ops_reset(t);
        replayed = 0;
    }
    t->out.status = st;
    t->out.replayed = replayed;
}

/* Whether t writes nothing: gets and checks only, and no idempotency key
 * (whose outcome is recorded, a write). */
static int reads_only(const etagkv_txn *t)
{
    if (t->idem_len > 0)
        return 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->ops[i].kind == K_PUT || t->ops[i].kind == K_DELETE)
            return 0;
    return 1;
}

/* Commit a transaction that writes nothing: it needs no place in a batch,
 * only one snapshot of the store, which a read transaction is.  The
 * evaluation is the batch's own (ekv_txn_execute()); the revision is the
 * snapshot's.  Like a GET it sees every write acknowledged before it
 * began, so it stays linearizable, and it neither waits for a sync nor
 * makes a writer wait for it.  Returns the transaction's status. */
static etagkv_status commit_reads(etagkv_store *s, struct ekv_op *op)
{
    ekv_txn txn;
    uint64_t rev;
    etagkv_status st = ekv_read_begin(s->env, &txn);

    if (st != ETAGKV_OK)
        return st;
    st = ekv_revision_get(&txn, &rev);
    if (st == ETAGKV_OK)
        st = ekv_txn_execute(s, &txn, op, &rev);
    ekv_read_end(&txn);
    if (st != ETAGKV_OK)
        return st;
    if (op->status != ETAGKV_OK && op->status != ETAGKV_CONFLICT)
        return ekv_fail(op->status, "%s", op->detail);
    return op->status;
}

/* Commit t, prepared into op: in a read snapshot when it writes nothing,
 * else as one entry of a group-commit batch. */
static etagkv_status commit_prepared(etagkv_store *s, etagkv_txn *t,
                                     struct ekv_op *op)
{
    return reads_only(t) ? commit_reads(s, op) : ekv_commit(s, op);
}

etagkv_status etagkv_txn_commit(etagkv_store *s, etagkv_txn *t)
{
    struct ekv_op op;
    etagkv_status st;

    ekv_clear_error();
    if (t == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    outcome_reset(t);
    st = prepare(s, t, &op);
    if (st == ETAGKV_OK)
        st = commit_prepared(s, t, &op);
    finish(t, st, op.replayed);
    return st;
}

/* The completion of a submitted transaction, on a library thread. */
static void submitted(void *ctx, const etagkv_result *res)
{
    etagkv_txn *t = ctx;

    finish(t, res->status, res->replayed);
    t->done(t->done_ctx, res);
}

/* etagkv_txn_submit() of a transaction that writes nothing: committed at
 * once (commit_reads()), and done called on this thread before the
 * return. */
static etagkv_status submit_reads(etagkv_store *s, etagkv_txn *t,
                                  etagkv_done_fn done, void *ctx)
{
    struct ekv_op op;
    etagkv_result res;
    etagkv_status st = prepare(s, t, &op);

    if (st != ETAGKV_OK) {
        finish(t, st, 0);
        return st;
    }
    memset(&res, 0, sizeof(res));
    res.status = commit_reads(s, &op);
    finish(t, res.status, 0);
    t->done = done;
    t->done_ctx = ctx;
    done(ctx, &res);
    return ETAGKV_OK;
}

etagkv_status etagkv_txn_submit(etagkv_store *s, etagkv_txn *t,
                                etagkv_done_fn done, void *ctx)
{
    struct ekv_async *a;
    etagkv_status st;

    ekv_clear_error();
    if (t == NULL || done == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    outcome_reset(t);
    if (reads_only(t))
        return submit_reads(s, t, done, ctx);
    a = ekv_async_new(submitted, t);
    if (a == NULL) {
        finish(t, ETAGKV_NO_MEMORY, 0);
        return ETAGKV_NO_MEMORY;
    }
    st = prepare(s, t, ekv_async_op(a));
    if (st == ETAGKV_OK) {
        /* Set before queueing: the callback may run at once. */
        t->done = done;
        t->done_ctx = ctx;
        st = ekv_commit_async(s, a);
    }
    if (st != ETAGKV_OK) {
        ekv_async_free(a);
        finish(t, st, 0);
    }
    return st;
}

/* ---- executing, inside the batch's write transaction --------------------- */

/* The state of operation i's key before it: the record written by the
 * latest earlier operation on the same key, else the store's (read into
 * *buf).  *cur is NULL when the key is absent. */
static etagkv_status state_before(ekv_txn *txn, const etagkv_txn *t, size_t i,
                                  ekv_record *buf, const ekv_record **cur)
{
    const struct txn_op *o = &t->ops[i];
    etagkv_status st;

    for (size_t j = i; j-- > 0;) {
        const struct txn_op *p = &t->ops[j];

        if (p->writes && p->key_len == o->key_len &&
            memcmp(p->key, o->key, o->key_len) == 0) {
            *cur = p->kind == K_PUT ? &p->rec : NULL;
            return ETAGKV_OK;
        }
    }
    *cur = NULL;
    st = ekv_record_get(txn, o->key, o->key_len, buf);
    if (st == ETAGKV_OK)
        *cur = buf;
    return st == ETAGKV_NOT_FOUND ? ETAGKV_OK : st;
}

/* o's result says cur (NULL: absent). */
static void set_meta(struct txn_op *o, const ekv_record *cur)
{
    memset(&o->res.meta, 0, sizeof(o->res.meta));
    if (cur != NULL) {
        ekv_record_meta(cur, &o->res.meta);
        memcpy(o->hash, cur->hash, EKV_HASH_BYTES);
    }
}

/* A get that passed: its value, copied when it lies in the store's pages
 * (which the writes may move), else the earlier put's own. */
static etagkv_status get_value(struct txn_op *o, const ekv_record *cur,
                               int from_store)
{
    if (cur == NULL)
        return ETAGKV_OK;
    if (from_store) {
        o->copy = dup_bytes(cur->value, cur->value_len);
        if (o->copy == NULL)
            return ekv_fail(ETAGKV_NO_MEMORY, "copying a get's value");
    }
    o->res.value = from_store ? o->copy : cur->value;
    o->res.value_len = cur->value_len;
    return ETAGKV_OK;
}

static void drop_value(struct txn_op *o)
{
    free(o->copy);
    o->copy = NULL;
    o->res.value = NULL;
    o->res.value_len = 0;
}

/* Evaluate operation o over cur (etagkv_cond_evaluate(), as the single
 * request would be) and compute what it would write at revision rev.
 * *failed says whether it fails the transaction. */
static etagkv_status evaluate(struct txn_op *o, const ekv_record *cur,
                              int from_store, uint64_t now, uint64_t rev,
                              int *failed)
{
    static const etagkv_method method[] = {
        [K_GET] = ETAGKV_METHOD_GET,
        [K_CHECK] = ETAGKV_METHOD_PUT,
        [K_PUT] = ETAGKV_METHOD_PUT,
        [K_DELETE] = ETAGKV_METHOD_DELETE,
    };
    etagkv_status st;

    set_meta(o, cur);
    st = etagkv_cond_explain(o->cond, method[o->kind], &o->res.meta,
                             &o->res.step);
    o->res.evaluated = 1;
    o->res.status = st;
    /* DESIGN §7: a 412 fails the transaction, and so does a 404, except
     * a get's (a read of nothing is an answer, not a broken premise). */
    *failed = st == ETAGKV_PRECONDITION_FAILED ||
              (st == ETAGKV_NOT_FOUND && o->kind != K_GET);
    if (st != ETAGKV_OK)
        return ETAGKV_OK;
    switch (o->kind) {
    case K_GET: return get_value(o, cur, from_store);
    case K_CHECK: return ETAGKV_OK;
    case K_PUT:
        ekv_record_successor(&o->rec, cur, now, rev);
        if (o->restored) { /* created only, so cur is NULL: a new record */
            o->rec.created_ns = o->created_ns;
            o->rec.modified_ns = o->modified_ns;
        }
        memcpy(o->rec.hash, o->value_hash, EKV_HASH_BYTES);
        o->rec.content_type = o->ctype;
        o->rec.content_type_len = o->ctype_len;
        o->rec.value = o->value;
        o->rec.value_len = o->value_len;
        o->res.status = cur != NULL ? ETAGKV_OK : ETAGKV_CREATED;
        o->writes = 1;
        set_meta(o, &o->rec);
        return ETAGKV_OK;
    case K_DELETE:
        o->writes = 1;
        set_meta(o, NULL);
        o->res.meta.mod_revision = rev; /* as a single delete reports */
        return ETAGKV_OK;
    }
    return ETAGKV_OK;
}

/* A put naming a lease that is unknown or dead, or full: ETAGKV_CONFLICT,
 * before its conditions (RFC 9110 §13.2.1), and the transaction fails.
 * The puts before it in the transaction that name the same lease count as
 * attached (a key among them twice, or attached already, counts all the
 * same: the bound is kept, if sometimes by one transaction early).  They
 * are counted only when the lease would be full with every operation
 * before it counted, so never while a transaction has fewer operations
 * than the lease has room (max_txn_ops 128, max_lease_keys 10,000). */
static etagkv_status lease_dead(etagkv_store *s, ekv_txn *txn,
                                const etagkv_txn *t, size_t i,
                                const ekv_record *cur, int *failed)
{
    struct txn_op *o = &t->ops[i];
    uint64_t pending = 0;
    enum ekv_lease_verdict v;
    etagkv_status st;

    st = ekv_lease_admit(s, txn, o->lease, o->key, o->key_len, i, &v);
    if (st == ETAGKV_OK && v == EKV_LEASE_FULL) {
        for (size_t j = 0; j < i; j++)
            pending += t->ops[j].kind == K_PUT && t->ops[j].lease == o->lease;
        if (pending < i)
            st = ekv_lease_admit(s, txn, o->lease, o->key, o->key_len, pending,
                                 &v);
    }
    *failed = st == ETAGKV_OK && v != EKV_LEASE_ADMITTED;
    if (*failed) {
        set_meta(o, cur);
        o->res.evaluated = 1;
        o->res.status = ETAGKV_CONFLICT;
    }
    return st;
}

/* A conflict: nothing is written.  Every operation's meta becomes its key
 * as it is in the store now, and those after the failing one are not
 * evaluated (DESIGN §7: "status": null).  Asked for, every existing key's
 * value too, unless they would take the transaction past its byte bound:
 * then none (etagkv_txn_set_conflict_values()). */
static etagkv_status conflict(etagkv_store *s, ekv_txn *txn, etagkv_txn *t,
                              size_t failed)
{
    uint64_t bytes = t->bytes;
    int values = t->conflict_values;

    for (size_t i = 0; i < t->n; i++) {
        struct txn_op *o = &t->ops[i];
        ekv_record r;
        etagkv_status st = ekv_record_get(txn, o->key, o->key_len, &r);

        if (st != ETAGKV_OK && st != ETAGKV_NOT_FOUND)
            return st;
        set_meta(o, st == ETAGKV_OK ? &r : NULL);
        drop_value(o);
        o->writes = 0;
        if (i > failed) {
            o->res.evaluated = 0;
            o->res.status = ETAGKV_OK;
            o->res.step = ETAGKV_STEP_NONE;
        }
        if (values && st == ETAGKV_OK) {
            bytes += r.value_len;
            values = bytes <= bytes_limit(s, t);
        }
        if (values && st == ETAGKV_OK) {
            st = get_value(o, &r, 1);
            if (st != ETAGKV_OK)
                return st;
        }
    }
    if (t->conflict_values && !values) /* over the bound: none, not some */
        for (size_t i = 0; i < t->n; i++)
            drop_value(&t->ops[i]);
    t->out.failed = failed;
    t->values_given = values;
    return ETAGKV_OK;
}

/* Make the writes of a transaction whose every operation passed, each
 * with its change-log event in this same write transaction (DESIGN §8):
 * the events share the transaction's revision, in operation order. */
static etagkv_status write_all(etagkv_store *s, ekv_txn *txn, etagkv_txn *t,
                               int *wrote)
{
    *wrote = 0;
    for (size_t i = 0; i < t->n; i++) {
        const struct txn_op *o = &t->ops[i];
        etagkv_status st;
        void *dst;

        if (!o->writes)
            continue;
        if (o->kind == K_PUT) {
            st = ekv_record_reserve(
                txn, o->key, o->key_len,
                ekv_record_size(o->rec.content_type_len, o->rec.value_len),
                &dst);
            if (st == ETAGKV_OK)
                ekv_record_encode(dst, &o->rec);
        } else {
            st = ekv_record_delete(txn, o->key, o->key_len);
        }
        if (st == ETAGKV_OK)
            st = ekv_changes_append(s, txn, o->key, o->key_len, &o->res.meta,
                                    o->hash);
        if (st == ETAGKV_OK) /* DESIGN §9: attach, or detach */
            st = ekv_lease_attach(txn, o->key, o->key_len,
                                  o->kind == K_PUT ? o->lease : 0);
        if (st != ETAGKV_OK)
            return st;
        *wrote = 1;
    }
    return ETAGKV_OK;
}

/* This transaction's own failure (a corrupt record, no memory): it writes
 * nothing and gets the status; the batch goes on. */
static etagkv_status fail_txn(const ekv_txn *txn, struct ekv_op *op,
                              etagkv_status st)
{
    /* A read the backend wants run again (etcd compacted its snapshot,
     * etcd_txn.c): the whole batch is, at a fresh revision. */
    if (txn->conflict)
        return st;
    ops_reset(op->txn);
    op->status = st;
    snprintf(op->detail, sizeof(op->detail), "%s", etagkv_last_error_detail());
    return ETAGKV_OK;
}

etagkv_status ekv_txn_execute(etagkv_store *s, ekv_txn *txn, struct ekv_op *op,
                              uint64_t *rev)
{
    etagkv_txn *t = op->txn;
    uint64_t now = ekv_now_ns(s);
    /* The values the gets read count with the puts' bytes against
     * max_txn_bytes: each is copied and answered, and a few bytes of
     * operations could otherwise read max_txn_ops whole values. */
    uint64_t bytes = t->bytes;
    size_t failed = ETAGKV_TXN_NONE;
    etagkv_status st = ETAGKV_OK;
    int wrote;

    ops_reset(t);
    for (size_t i = 0; i < t->n && failed == ETAGKV_TXN_NONE; i++) {
        ekv_record buf;
        const ekv_record *cur;
        int fails = 0;

        st = state_before(txn, t, i, &buf, &cur);
        if (st == ETAGKV_OK && t->ops[i].lease != 0)
            st = lease_dead(s, txn, t, i, cur, &fails);
        if (st == ETAGKV_OK && !fails)
            st = evaluate(&t->ops[i], cur, cur == &buf, now, *rev + 1, &fails);
        bytes += t->ops[i].res.value_len;
        if (st == ETAGKV_OK && bytes > bytes_limit(s, t))
            st = ekv_fail(ETAGKV_TXN_TOO_LARGE,
                          "its gets read more than %llu bytes with its puts",
                          (unsigned long long)s->opts.max_txn_bytes);
        if (st != ETAGKV_OK)
            return fail_txn(txn, op, st);
        if (fails)
            failed = i;
    }
    t->out.revision = *rev;
    if (failed != ETAGKV_TXN_NONE) {
        st = conflict(s, txn, t, failed);
        if (st != ETAGKV_OK)
            return fail_txn(txn, op, st);
        op->status = ETAGKV_CONFLICT;
        return ETAGKV_OK;
    }
    st = write_all(s, txn, t, &wrote);
    if (st != ETAGKV_OK)
        return st; /* the batch is abandoned, then retried or split */
    if (wrote) {
        *rev += 1;
        op->wrote = 1;
        t->out.revision = *rev;
    }
    op->status = ETAGKV_OK;
    return ETAGKV_OK;
}

/* ---- the recorded outcome (after idem.c's entry header) -------------------
 *
 *   0  u64  revision        16  u64  number of operations
 *   8  u64  failed index    24  u64  reserved (0)
 *  32       per operation: u16 status, u8 evaluated, u8 exists,
 *           u16 content type length, u16 deciding step (etagkv_cond_step;
 *           0 in entries of older versions, which reserved it), the 64-byte
 * meta block (ekv_idem_meta_encode()), the content type bytes
 */
#define TXN_HEAD_BYTES 32
#define TXN_OP_BYTES (8 + EKV_IDEM_META_BYTES)

size_t ekv_txn_entry_size(const struct ekv_op *op)
{
    const etagkv_txn *t = op->txn;
    size_t n = TXN_HEAD_BYTES + t->n * TXN_OP_BYTES;

    for (size_t i = 0; i < t->n; i++)
        if (t->ops[i].res.meta.exists)
            n += strlen(t->ops[i].res.meta.content_type);
    return n;
}

void ekv_txn_entry_encode(const struct ekv_op *op, uint8_t *p)
{
    const etagkv_txn *t = op->txn;

    ekv_put_le64(p, t->out.revision);
    ekv_put_le64(p + 8, (uint64_t)t->out.failed);
    ekv_put_le64(p + 16, t->n);
    ekv_put_le64(p + 24, 0);
    p += TXN_HEAD_BYTES;
    for (size_t i = 0; i < t->n; i++) {
        const struct txn_op *o = &t->ops[i];
        const etagkv_meta *m = &o->res.meta;
        size_t ct = m->exists ? strlen(m->content_type) : 0;

        ekv_put_le16(p, (uint16_t)o->res.status);
        p[2] = (uint8_t)o->res.evaluated;
        p[3] = (uint8_t)m->exists;
        ekv_put_le16(p + 4, (uint16_t)ct);
        ekv_put_le16(p + 6, (uint16_t)o->res.step);
        ekv_idem_meta_encode(p + 8, m, o->hash);
        memcpy(p + TXN_OP_BYTES, m->content_type, ct);
        p += TXN_OP_BYTES + ct;
    }
}

int ekv_txn_entry_decode(struct ekv_op *op, const uint8_t *p, size_t len)
{
    etagkv_txn *t = op->txn;
    const uint8_t *end = p + len;

    ops_reset(t);
    if (len < TXN_HEAD_BYTES || ekv_get_le64(p + 16) != t->n)
        return -1;
    t->out.revision = ekv_get_le64(p);
    t->out.failed = (size_t)ekv_get_le64(p + 8);
    p += TXN_HEAD_BYTES;
    for (size_t i = 0; i < t->n; i++) {
        struct txn_op *o = &t->ops[i];
        size_t ct;

        if ((size_t)(end - p) < TXN_OP_BYTES)
            return -1;
        ct = ekv_get_le16(p + 4);
        if (ct > ETAGKV_CONTENT_TYPE_MAX ||
            (size_t)(end - p) < TXN_OP_BYTES + ct)
            return -1;
        o->res.status = (etagkv_status)ekv_get_le16(p);
        o->res.evaluated = p[2] & 1;
        o->res.step = (etagkv_cond_step)ekv_get_le16(p + 6);
        ekv_idem_meta_decode(p + 8, p[3] & 1, &o->res.meta, o->hash);
        memcpy(o->res.meta.content_type, p + TXN_OP_BYTES, ct);
        p += TXN_OP_BYTES + ct;
    }
    return p == end ? 0 : -1;
}
