/*
 * write.c -- the write path: put, delete, their typed helpers, and the
 * optimistic read-modify-write helper.
 *
 * Each call validates its arguments, computes everything an operation needs
 * before any lock is taken (the XXH3-128 of the value above all), and hands
 * the operation to commit.c, which queues it to be applied (apply.c) in a
 * write transaction, batched with whatever other threads are writing.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* Commit a prepared op and copy its outcome to the caller's pointers. */
static etagkv_status commit_and_report(etagkv_store *s, struct ekv_op *op,
                                       etagkv_meta *meta_out, int *replayed)
{
    etagkv_status st = ekv_commit(s, op);

    if (meta_out != NULL)
        *meta_out = op->meta;
    if (replayed != NULL)
        *replayed = op->replayed;
    return st;
}

/* The request's fingerprint: what makes a repeat "the same request" for
 * its idempotency key (method, record key, value hash, content type or
 * keep-type, parsed conditions). */
static etagkv_status fingerprint(struct ekv_op *op)
{
    uint8_t method = (uint8_t)op->method, keep = (uint8_t)op->keep_content_type;
    uint8_t lens[16], *cond;
    size_t cond_len;
    etagkv_status st = ekv_cond_serialize(op->cond, &cond, &cond_len);
    ekv_part parts[8];

    if (st != ETAGKV_OK)
        return st;
    ekv_put_le64(lens, op->key_len);
    ekv_put_le64(lens + 8, op->content_type_len);
    parts[0] = (ekv_part){&method, 1};
    parts[1] = (ekv_part){lens, 8};
    parts[2] = (ekv_part){op->key, op->key_len};
    parts[3] =
        (ekv_part){op->value_hash, op->method == ETAGKV_METHOD_PUT ? 16 : 0};
    parts[4] = (ekv_part){lens + 8, 8};
    parts[5] = (ekv_part){op->content_type, op->content_type_len};
    parts[6] = (ekv_part){&keep, 1};
    parts[7] = (ekv_part){cond, cond_len};
    ekv_hash128_parts(parts, 8, op->fingerprint);
    free(cond);
    return ETAGKV_OK;
}

/* Validate req and fill op with everything that can be computed outside a
 * transaction: the value's hash and, with an idempotency key, the
 * request's fingerprint.  keep_type: a replaced record keeps its content
 * type (req->content_type is then NULL).  On failure op is not usable. */
static etagkv_status prepare(etagkv_store *s, const etagkv_request *req,
                             int keep_type, struct ekv_op *op)
{
    const char *ct = req->content_type;
    etagkv_status st;

    memset(op, 0, sizeof(*op));
    if (s == NULL ||
        (req->idempotency_key == NULL && req->idempotency_key_len > 0))
        return ETAGKV_INVALID_ARGUMENT;
    if (req->idempotency_key_len > ETAGKV_IDEMPOTENCY_KEY_MAX)
        return ekv_fail(ETAGKV_INVALID_HEADER,
                        "idempotency key longer than %d bytes",
                        ETAGKV_IDEMPOTENCY_KEY_MAX);
    if (req->method != ETAGKV_METHOD_PUT && req->method != ETAGKV_METHOD_DELETE)
        return ETAGKV_INVALID_ARGUMENT;
    st = ekv_check_key(req->key, req->key_len);
    if (st != ETAGKV_OK)
        return st;
    op->method = req->method;
    op->key = req->key;
    op->key_len = req->key_len;
    op->cond = req->cond;
    op->idem_key = req->idempotency_key;
    op->idem_len = req->idempotency_key_len;
    if (req->method == ETAGKV_METHOD_PUT) {
        if (req->value == NULL && req->value_len > 0)
            return ETAGKV_INVALID_ARGUMENT;
        if (req->value_len > s->opts.max_value_bytes)
            return ekv_fail(ETAGKV_VALUE_TOO_LARGE, "%zu bytes, limit %llu",
                            req->value_len,
                            (unsigned long long)s->opts.max_value_bytes);
        if (ct == NULL)
            ct = ETAGKV_CONTENT_TYPE_DEFAULT;
        if (!ekv_content_type_valid(ct, strlen(ct)))
            return ekv_fail(ETAGKV_INVALID_HEADER, "invalid content type");
        op->value = req->value;
        op->value_len = req->value_len;
        op->content_type = ct;
        op->content_type_len = strlen(ct);
        op->keep_content_type = keep_type;
        ekv_hash128(req->value, req->value_len, op->value_hash);
    }
    if (op->idem_len > 0)
        return fingerprint(op);
    return ETAGKV_OK;
}

/* A write from start to acknowledgement, on the caller's thread. */
static etagkv_status write_sync(etagkv_store *s, const etagkv_request *req,
                                int keep_type, etagkv_meta *meta_out,
                                int *replayed)
{
    struct ekv_op op;
    etagkv_status st = prepare(s, req, keep_type, &op);

    if (st != ETAGKV_OK) {
        if (meta_out != NULL)
            memset(meta_out, 0, sizeof(*meta_out));
        if (replayed != NULL)
            *replayed = 0;
        return st;
    }
    return commit_and_report(s, &op, meta_out, replayed);
}

/* The put behind etagkv_put() and the helpers. */
static etagkv_status put_op(etagkv_store *s, const void *key, size_t key_len,
                            const void *value, size_t value_len,
                            const char *content_type, int keep_type,
                            const etagkv_cond *c, etagkv_meta *meta_out)
{
    etagkv_request req = {.method = ETAGKV_METHOD_PUT,
                          .key = key,
                          .key_len = key_len,
                          .value = value,
                          .value_len = value_len,
                          .content_type = content_type,
                          .cond = c};

    return write_sync(s, &req, keep_type, meta_out, NULL);
}

etagkv_status etagkv_put(etagkv_store *s, const void *key, size_t key_len,
                         const void *value, size_t value_len,
                         const char *content_type, const etagkv_cond *c,
                         etagkv_meta *meta_out)
{
    ekv_clear_error();
    return put_op(s, key, key_len, value, value_len, content_type, 0, c,
                  meta_out);
}

etagkv_status etagkv_delete(etagkv_store *s, const void *key, size_t key_len,
                            const etagkv_cond *c, etagkv_meta *meta_out)
{
    etagkv_request req = {.method = ETAGKV_METHOD_DELETE,
                          .key = key,
                          .key_len = key_len,
                          .cond = c};

    ekv_clear_error();
    return write_sync(s, &req, 0, meta_out, NULL);
}

etagkv_status etagkv_write(etagkv_store *s, const etagkv_request *req,
                           etagkv_result *res)
{
    etagkv_result local;
    etagkv_status st;

    ekv_clear_error();
    if (res == NULL)
        res = &local;
    memset(res, 0, sizeof(*res));
    st = req == NULL ? ETAGKV_INVALID_ARGUMENT
                     : write_sync(s, req, 0, &res->meta, &res->replayed);
    res->status = st;
    return st;
}

etagkv_status etagkv_submit(etagkv_store *s, const etagkv_request *req,
                            etagkv_done_fn done, void *ctx)
{
    struct ekv_async *a;
    etagkv_status st;

    ekv_clear_error();
    if (s == NULL || req == NULL || done == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    a = ekv_async_new(done, ctx);
    if (a == NULL)
        return ETAGKV_NO_MEMORY;
    st = prepare(s, req, 0, ekv_async_op(a));
    if (st == ETAGKV_OK)
        st = ekv_commit_async(s, a);
    if (st != ETAGKV_OK)
        ekv_async_free(a);
    return st;
}

/* ---- typed helpers ----------------------------------------------------------
 */

/* Build the one-header condition set the typed helpers need.  For If-Match
 * with an ETag, only our own strong form is accepted: a helper that silently
 * never matched would be a trap. */
static etagkv_status single_condition(etagkv_header h, const char *value,
                                      etagkv_cond **out)
{
    uint8_t hash[EKV_HASH_BYTES];
    etagkv_status st;

    *out = NULL;
    if (value == NULL)
        return ekv_fail(ETAGKV_INVALID_HEADER, "NULL ETag");
    if (strcmp(value, "*") != 0 &&
        ekv_etag_parse_own(value, strlen(value), hash) != 0)
        return ekv_fail(ETAGKV_INVALID_HEADER, "not an etagkv ETag");
    st = etagkv_cond_new(out);
    if (st != ETAGKV_OK)
        return st;
    st = etagkv_cond_add(*out, h, value, strlen(value));
    if (st != ETAGKV_OK) {
        etagkv_cond_free(*out);
        *out = NULL;
    }
    return st;
}

/* A typed helper's put: the record keeps its content type. */
static etagkv_status put_with(etagkv_store *s, const void *key, size_t key_len,
                              const void *value, size_t value_len,
                              etagkv_header h, const char *hv,
                              etagkv_meta *meta_out)
{
    etagkv_cond *c;
    etagkv_status st;

    /* The condition is built first: hv may point into *meta_out, as in
     * etagkv_put_if_match(s, k, n, v, len, m.etag, &m). */
    ekv_clear_error();
    st = s == NULL ? ETAGKV_INVALID_ARGUMENT : single_condition(h, hv, &c);
    if (st != ETAGKV_OK) {
        if (meta_out != NULL)
            memset(meta_out, 0, sizeof(*meta_out));
        return st;
    }
    st = put_op(s, key, key_len, value, value_len, NULL, 1, c, meta_out);
    etagkv_cond_free(c);
    return st;
}

etagkv_status etagkv_put_if_match(etagkv_store *s, const void *key,
                                  size_t key_len, const void *value,
                                  size_t value_len, const char *etag,
                                  etagkv_meta *meta_out)
{
    if (etag != NULL && strcmp(etag, "*") == 0) {
        if (meta_out != NULL)
            memset(meta_out, 0, sizeof(*meta_out));
        return ekv_fail(ETAGKV_INVALID_HEADER,
                        "\"*\" is not an ETag: use etagkv_put_update_only");
    }
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

    ekv_clear_error();
    if (s == NULL)
        st = ETAGKV_INVALID_ARGUMENT;
    else if (etag != NULL && strcmp(etag, "*") == 0)
        st = ekv_fail(ETAGKV_INVALID_HEADER, "\"*\" is not an ETag");
    else
        st = single_condition(ETAGKV_IF_MATCH, etag,
                              &c); /* etag may be in meta_out */
    if (st != ETAGKV_OK) {
        if (meta_out != NULL)
            memset(meta_out, 0, sizeof(*meta_out));
        return st;
    }
    st = etagkv_delete(s, key, key_len, c, meta_out);
    etagkv_cond_free(c);
    return st;
}

/* ---- read-modify-write ------------------------------------------------------
 */

/* One attempt: read, let fn compute, write conditionally on what was read.
 * The validator is the ETag just read (If-Match) or, for an absent key,
 * If-None-Match: *; a concurrent change makes the put fail with
 * ETAGKV_PRECONDITION_FAILED and the caller tries again. */
static etagkv_status update_once(etagkv_store *s, const void *key,
                                 size_t key_len, etagkv_update_fn fn, void *ctx,
                                 etagkv_meta *meta, int *raced)
{
    void *old = NULL;
    size_t old_len = 0;
    const void *nv = NULL;
    size_t nv_len = 0;
    etagkv_cond *c = NULL;
    etagkv_status st;

    st = etagkv_get(s, key, key_len, NULL, &old, &old_len, meta);
    if (st != ETAGKV_OK && st != ETAGKV_NOT_FOUND)
        return st;
    st = fn(ctx, old, old_len, meta, &nv, &nv_len);
    if (st == ETAGKV_OK) {
        if (meta->exists)
            st = single_condition(ETAGKV_IF_MATCH, meta->etag, &c);
        else
            st = single_condition(ETAGKV_IF_NONE_MATCH, "*", &c);
    }
    if (st == ETAGKV_OK) {
        /* old is freed only now: fn may have answered with it. */
        st = put_op(s, key, key_len, nv, nv_len, NULL, 1, c, meta);
        etagkv_cond_free(c);
        *raced = st == ETAGKV_PRECONDITION_FAILED;
    }
    free(old);
    return st;
}

etagkv_status etagkv_update(etagkv_store *s, const void *key, size_t key_len,
                            etagkv_update_fn fn, void *ctx,
                            unsigned max_attempts, etagkv_meta *meta_out)
{
    etagkv_meta meta;
    etagkv_status st = ETAGKV_PRECONDITION_FAILED;

    ekv_clear_error();
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
