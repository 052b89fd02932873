/*
 * write.c -- the write path: put, delete, their typed helpers, and the
 * optimistic read-modify-write helper.
 *
 * A write is an ekv_op applied inside one LMDB write transaction: read the
 * current record, evaluate the conditions against it (cond.c), and only then
 * write, so no other writer can slip between check and write.  An operation
 * whose precondition fails aborts its transaction: it costs no sync.
 *
 * Everything an operation needs is computed before the transaction begins
 * (the XXH3-128 of the value above all), so the writer lock is held only
 * for the B-tree work.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"

struct ekv_op {
    etagkv_method method; /* ETAGKV_METHOD_PUT or ETAGKV_METHOD_DELETE */
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    const char *content_type;
    size_t content_type_len;
    uint8_t hash[EKV_HASH_BYTES];
    const etagkv_cond *cond;
    etagkv_status status; /* the outcome, once applied */
    etagkv_meta meta;     /* the key's state after the operation */
    int wrote;            /* the operation changed the store */
};

/* Write op's new record over `old` (NULL when absent) at revision rev. */
static int op_put(etagkv_store *s, MDB_txn *txn, struct ekv_op *op,
                  const ekv_record *old, uint64_t rev)
{
    uint64_t now = ekv_now_ns(s);
    ekv_record r;
    MDB_val k = {op->key_len, (void *)op->key}, v;
    int rc;

    /* DESIGN §1: modified never goes backwards for a key, whatever the
     * wall clock does: max(now, previous + 1). */
    r.modified_ns = old != NULL && old->modified_ns >= now
                        ? old->modified_ns + 1
                        : now;
    r.created_ns = old != NULL ? old->created_ns : r.modified_ns;
    r.create_revision = old != NULL ? old->create_revision : rev;
    r.mod_revision = rev;
    r.version = old != NULL ? old->version + 1 : 1;
    memcpy(r.hash, op->hash, EKV_HASH_BYTES);
    r.content_type = op->content_type;
    r.content_type_len = op->content_type_len;
    r.value = op->value;
    r.value_len = op->value_len;

    /* MDB_RESERVE: encode straight into the page, one copy of the value. */
    v.mv_size = ekv_record_size(r.content_type_len, r.value_len);
    v.mv_data = NULL;
    rc = mdb_put(txn, s->records, &k, &v, MDB_RESERVE);
    if (rc != 0)
        return rc;
    ekv_record_encode(v.mv_data, &r);
    ekv_record_meta(&r, &op->meta);
    op->status = old != NULL ? ETAGKV_OK : ETAGKV_CREATED;
    return 0;
}

/* Apply op in txn at the store revision *rev (advanced when op writes).
 * The outcome goes to op->status and op->meta; the return value is an LMDB
 * code, non-zero when the transaction must be abandoned. */
static int op_apply(etagkv_store *s, MDB_txn *txn, struct ekv_op *op,
                    uint64_t *rev)
{
    ekv_record old;
    etagkv_status st;
    int rc = 0;

    memset(&op->meta, 0, sizeof(op->meta));
    op->wrote = 0;
    st = ekv_record_get(s, txn, op->key, op->key_len, &old);
    if (st == ETAGKV_OK)
        ekv_record_meta(&old, &op->meta);
    else if (st != ETAGKV_NOT_FOUND) {
        op->status = st;
        return 0;
    }
    op->status = etagkv_cond_evaluate(op->cond, op->method, &op->meta);
    if (op->status != ETAGKV_OK)
        return 0;
    if (op->method == ETAGKV_METHOD_PUT) {
        rc = op_put(s, txn, op, op->meta.exists ? &old : NULL, *rev + 1);
    } else {
        MDB_val k = {op->key_len, (void *)op->key};

        rc = mdb_del(txn, s->records, &k, NULL);
        if (rc == 0) {
            memset(&op->meta, 0, sizeof(op->meta));
            op->meta.mod_revision = *rev + 1;
        }
    }
    if (rc == 0) {
        op->wrote = 1;
        *rev += 1;
    }
    return rc;
}

/* One transaction for one operation.  On MDB_MAP_FULL the transaction is
 * abandoned (nothing of it is visible), the map grows, and the operation is
 * evaluated afresh: its conditions are checked again against whatever the
 * store holds then. */
static etagkv_status write_one(etagkv_store *s, struct ekv_op *op)
{
    for (;;) {
        MDB_txn *txn;
        uint64_t rev;
        size_t seen;
        etagkv_status st;
        int rc;

        if ((st = ekv_txn_begin(s, 0, &txn)) != ETAGKV_OK)
            return st;
        seen = ekv_map_size(s);
        if ((st = ekv_revision_get(s, txn, &rev)) != ETAGKV_OK) {
            ekv_txn_end(s, txn, 0);
            return st;
        }
        rc = op_apply(s, txn, op, &rev);
        if (rc == 0 && !op->wrote) {
            /* A failed precondition or a missing key: nothing to commit. */
            ekv_txn_end(s, txn, 0);
            return op->status;
        }
        if (rc == 0)
            rc = ekv_revision_put(s, txn, rev);
        if (rc == 0)
            rc = ekv_txn_commit(s, txn);
        else
            ekv_txn_end(s, txn, 0);
        if (rc == 0)
            return op->status;
        memset(&op->meta, 0, sizeof(op->meta));
        if (rc != MDB_MAP_FULL)
            return ekv_mdb_status(rc, "write transaction");
        if ((st = ekv_grow(s, seen)) != ETAGKV_OK)
            return st;
    }
}

static etagkv_status run(etagkv_store *s, struct ekv_op *op,
                         etagkv_meta *meta_out)
{
    etagkv_status st = write_one(s, op);

    if (meta_out != NULL)
        *meta_out = op->meta;
    return st;
}

etagkv_status etagkv_put(etagkv_store *s, const void *key, size_t key_len,
                         const void *value, size_t value_len,
                         const char *content_type, const etagkv_cond *c,
                         etagkv_meta *meta_out)
{
    struct ekv_op op;
    etagkv_status st;

    ekv_clear_error();
    if (meta_out != NULL)
        memset(meta_out, 0, sizeof(*meta_out));
    if (s == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    if ((st = ekv_check_key(key, key_len)) != ETAGKV_OK)
        return st;
    if (value == NULL && value_len > 0)
        return ETAGKV_INVALID_ARGUMENT;
    if (value_len > s->opts.max_value_bytes)
        return ekv_fail(ETAGKV_VALUE_TOO_LARGE, "%zu bytes, limit %llu",
                        value_len,
                        (unsigned long long)s->opts.max_value_bytes);
    if (content_type == NULL)
        content_type = ETAGKV_CONTENT_TYPE_DEFAULT;
    if (!ekv_content_type_valid(content_type, strlen(content_type)))
        return ekv_fail(ETAGKV_INVALID_HEADER, "invalid content type");

    memset(&op, 0, sizeof(op));
    op.method = ETAGKV_METHOD_PUT;
    op.key = key;
    op.key_len = key_len;
    op.value = value;
    op.value_len = value_len;
    op.content_type = content_type;
    op.content_type_len = strlen(content_type);
    op.cond = c;
    ekv_hash128(value, value_len, op.hash);
    return run(s, &op, meta_out);
}

etagkv_status etagkv_delete(etagkv_store *s, const void *key, size_t key_len,
                            const etagkv_cond *c, etagkv_meta *meta_out)
{
    struct ekv_op op;
    etagkv_status st;

    ekv_clear_error();
    if (meta_out != NULL)
        memset(meta_out, 0, sizeof(*meta_out));
    if (s == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    if ((st = ekv_check_key(key, key_len)) != ETAGKV_OK)
        return st;
    memset(&op, 0, sizeof(op));
    op.method = ETAGKV_METHOD_DELETE;
    op.key = key;
    op.key_len = key_len;
    op.cond = c;
    return run(s, &op, meta_out);
}

/* ---- typed helpers ---------------------------------------------------------- */

/* Build the one-header condition set the typed helpers need.  For If-Match
 * with an ETag, only our own strong form is accepted: a helper that silently
 * never matched would be a trap. */
static etagkv_status one_cond(etagkv_header h, const char *value,
                              etagkv_cond **out)
{
    uint8_t hash[EKV_HASH_BYTES];
    etagkv_status st;

    *out = NULL;
    if (value == NULL)
        return ETAGKV_INVALID_HEADER;
    if (strcmp(value, "*") != 0 &&
        ekv_etag_parse_own(value, strlen(value), hash) != 0)
        return ekv_fail(ETAGKV_INVALID_HEADER, "not an etagkv ETag");
    if ((st = etagkv_cond_new(out)) != ETAGKV_OK)
        return st;
    st = etagkv_cond_add(*out, h, value, strlen(value));
    if (st != ETAGKV_OK) {
        etagkv_cond_free(*out);
        *out = NULL;
    }
    return st;
}

static etagkv_status put_with(etagkv_store *s, const void *key, size_t key_len,
                              const void *value, size_t value_len,
                              etagkv_header h, const char *hv,
                              etagkv_meta *meta_out)
{
    etagkv_cond *c;
    etagkv_status st = one_cond(h, hv, &c);

    if (st != ETAGKV_OK) {
        if (meta_out != NULL)
            memset(meta_out, 0, sizeof(*meta_out));
        return st;
    }
    st = etagkv_put(s, key, key_len, value, value_len, NULL, c, meta_out);
    etagkv_cond_free(c);
    return st;
}

etagkv_status etagkv_put_if_match(etagkv_store *s, const void *key,
                                  size_t key_len, const void *value,
                                  size_t value_len, const char *etag,
                                  etagkv_meta *meta_out)
{
    if (etag != NULL && strcmp(etag, "*") == 0)
        return ETAGKV_INVALID_HEADER; /* use etagkv_put_update_only */
    return put_with(s, key, key_len, value, value_len, ETAGKV_IF_MATCH, etag,
                    meta_out);
}

etagkv_status etagkv_put_create_only(etagkv_store *s, const void *key,
                                     size_t key_len, const void *value,
                                     size_t value_len, etagkv_meta *meta_out)
{
    return put_with(s, key, key_len, value, value_len, ETAGKV_IF_NONE_MATCH,
                    "*", meta_out);
}

etagkv_status etagkv_put_update_only(etagkv_store *s, const void *key,
                                     size_t key_len, const void *value,
                                     size_t value_len, etagkv_meta *meta_out)
{
    return put_with(s, key, key_len, value, value_len, ETAGKV_IF_MATCH, "*",
                    meta_out);
}

etagkv_status etagkv_delete_if_match(etagkv_store *s, const void *key,
                                     size_t key_len, const char *etag,
                                     etagkv_meta *meta_out)
{
    etagkv_cond *c;
    etagkv_status st;

    if (meta_out != NULL)
        memset(meta_out, 0, sizeof(*meta_out));
    if (etag != NULL && strcmp(etag, "*") == 0)
        return ETAGKV_INVALID_HEADER;
    if ((st = one_cond(ETAGKV_IF_MATCH, etag, &c)) != ETAGKV_OK)
        return st;
    st = etagkv_delete(s, key, key_len, c, meta_out);
    etagkv_cond_free(c);
    return st;
}

/* ---- read-modify-write ------------------------------------------------------ */

/* One attempt: read, let fn compute, write conditionally on what was read.
 * The validator is the ETag just read (If-Match) or, for an absent key,
 * If-None-Match: *; a concurrent change makes the put fail with
 * ETAGKV_PRECONDITION_FAILED and the caller tries again. */
static etagkv_status update_once(etagkv_store *s, const void *key,
                                 size_t key_len, etagkv_update_fn fn,
                                 void *ctx, etagkv_meta *meta, int *raced)
{
    void *old = NULL;
    size_t old_len = 0;
    const void *nv = NULL;
    size_t nv_len = 0;
    char ctype[ETAGKV_CONTENT_TYPE_MAX + 1];
    etagkv_cond *c = NULL;
    etagkv_status st;

    st = etagkv_get(s, key, key_len, NULL, &old, &old_len, meta);
    if (st != ETAGKV_OK && st != ETAGKV_NOT_FOUND)
        return st;
    st = fn(ctx, old, old_len, meta, &nv, &nv_len);
    free(old);
    if (st != ETAGKV_OK)
        return st;
    if (meta->exists)
        st = one_cond(ETAGKV_IF_MATCH, meta->etag, &c);
    else
        st = one_cond(ETAGKV_IF_NONE_MATCH, "*", &c);
    if (st != ETAGKV_OK)
        return st;
    memcpy(ctype, meta->content_type, sizeof(ctype));
    st = etagkv_put(s, key, key_len, nv, nv_len,
                    meta->exists ? ctype : NULL, c, meta);
    etagkv_cond_free(c);
    *raced = st == ETAGKV_PRECONDITION_FAILED;
    return st;
}

etagkv_status etagkv_update(etagkv_store *s, const void *key, size_t key_len,
                            etagkv_update_fn fn, void *ctx,
                            unsigned max_attempts, etagkv_meta *meta_out)
{
    etagkv_meta meta;
    etagkv_status st = ETAGKV_PRECONDITION_FAILED;

    if (meta_out != NULL)
        memset(meta_out, 0, sizeof(*meta_out));
    if (s == NULL || fn == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    if (max_attempts == 0)
        max_attempts = 16;
    for (unsigned i = 0; i < max_attempts; i++) {
        int raced = 0;

        st = update_once(s, key, key_len, fn, ctx, &meta, &raced);
        if (!raced)
            break;
    }
    if (meta_out != NULL)
        *meta_out = meta;
    return st;
}
