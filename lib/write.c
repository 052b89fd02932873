/*
 * write.c -- the write path: etagkv_write() and etagkv_submit(), their
 * shorthands put and delete, and the optimistic read-modify-write helper.
 *
 * Each call validates its arguments, computes everything an operation needs
 * before any lock is taken (the XXH3-128 of the value above all), and hands
 * the operation to commit.c, which queues it to be applied (apply.c) in a
 * write transaction, batched with whatever other threads are writing.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* Commit a prepared op and copy its outcome to the caller's pointers;
 * res (may be NULL) takes the current value of a 412, if it was asked
 * for. */
static etagkv_status commit_and_report(etagkv_store *s, struct ekv_op *op,
                                       etagkv_meta *meta_out, int *replayed,
                                       etagkv_result *res)
{
    etagkv_status st = ekv_commit(s, op);

    if (meta_out != NULL)
        *meta_out = op->meta;
    if (replayed != NULL)
        *replayed = op->replayed;
    if (res != NULL) {
        res->current_value = op->current;
        res->current_len = op->current_len;
        op->current = NULL;
    }
    ekv_op_drop_current(op);
    return st;
}

/* The request's fingerprint: what makes a repeat "the same request" for
 * its idempotency key (method, record key, value hash, content type or
 * keep-type, parsed conditions). */
static etagkv_status fingerprint(struct ekv_op *op)
{
    uint8_t method = (uint8_t)op->method, keep = (uint8_t)op->keep_content_type;
    uint8_t lens[16], lease[8], *cond;
    size_t cond_len;
    etagkv_status st = ekv_cond_serialize(op->cond, &cond, &cond_len);
    ekv_part parts[9];

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
    /* The lease only when there is one, so that the fingerprints of
     * writes without a lease are those recorded before leases existed. */
    ekv_put_le64(lease, op->lease);
    parts[8] = (ekv_part){lease, op->lease != 0 ? 8 : 0};
    ekv_hash128_parts(parts, 9, op->fingerprint);
    free(cond);
    return ETAGKV_OK;
}

/* Validate req and fill op with everything that can be computed outside a
 * transaction: the value's hash and, with an idempotency key, the
 * request's fingerprint.  On failure op is not usable. */
static etagkv_status prepare(etagkv_store *s, const etagkv_request *req,
                             struct ekv_op *op)
{
    const char *ct = req->content_type;
    etagkv_status st;

    memset(op, 0, sizeof(*op));
    if (s == NULL ||
        (req->idempotency_key == NULL && req->idempotency_key_len > 0) ||
        (req->flags &
         ~(ETAGKV_WRITE_KEEP_CONTENT_TYPE | ETAGKV_WRITE_RETURN_CURRENT |
           ETAGKV_WRITE_INDEPENDENT)) != 0)
        return ETAGKV_INVALID_ARGUMENT;
    if (s->opts.read_only)
        return ekv_fail(ETAGKV_READ_ONLY, "the store was opened read-only "
                                          "(etagkv_options.read_only)");
    if (req->idempotency_key_len > ETAGKV_IDEMPOTENCY_KEY_MAX)
        return ekv_fail(ETAGKV_INVALID_HEADER,
                        "idempotency key longer than %d bytes",
                        ETAGKV_IDEMPOTENCY_KEY_MAX);
    if (req->method != ETAGKV_METHOD_PUT && req->method != ETAGKV_METHOD_DELETE)
        return ETAGKV_INVALID_ARGUMENT;
    if (req->lease != 0 && req->method != ETAGKV_METHOD_PUT)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT, "a lease on a DELETE");
    if (req->wait_ms > ETAGKV_WAIT_MAX_MS)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT, "wait_ms %lu, at most %u",
                        (unsigned long)req->wait_ms, ETAGKV_WAIT_MAX_MS);
    if (req->wait_ms > 0 && req->idempotency_key_len > 0)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "a waiting write with an idempotency key");
    st = ekv_check_key(req->key, req->key_len);
    if (st != ETAGKV_OK)
        return st;
    op->method = req->method;
    op->key = req->key;
    op->key_len = req->key_len;
    op->cond = req->cond;
    op->idem_key = req->idempotency_key;
    op->idem_len = req->idempotency_key_len;
    op->lease = req->lease;
    op->want_current = (req->flags & ETAGKV_WRITE_RETURN_CURRENT) != 0;
    op->independent = (req->flags & ETAGKV_WRITE_INDEPENDENT) != 0;
    if (req->wait_ms > 0 && etagkv_cond_is_conditional(req->cond))
        op->wait_until_ns = ekv_mono_ns() + (uint64_t)req->wait_ms * 1000000u;
    if (req->method == ETAGKV_METHOD_PUT) {
        if (req->value == NULL && req->value_len > 0)
            return ETAGKV_INVALID_ARGUMENT;
        if (req->value_len > s->opts.max_value_bytes)
            return ekv_fail(ETAGKV_VALUE_TOO_LARGE, "%zu bytes, limit %llu",
                            req->value_len,
                            (unsigned long long)s->opts.max_value_bytes);
        /* An explicit content type wins over the keep flag: the flag
         * stands for "I don't know the type", which a given one denies. */
        op->keep_content_type =
            ct == NULL && (req->flags & ETAGKV_WRITE_KEEP_CONTENT_TYPE) != 0;
        if (ct == NULL)
            ct = ETAGKV_CONTENT_TYPE_DEFAULT;
        if (!ekv_content_type_valid(ct, strlen(ct)))
            return ekv_fail(ETAGKV_INVALID_HEADER, "invalid content type");
        op->value = req->value;
        op->value_len = req->value_len;
        op->content_type = ct;
        op->content_type_len = strlen(ct);
        ekv_hash128(req->value, req->value_len, op->value_hash);
    }
    if (op->idem_len > 0)
        return fingerprint(op);
    return ETAGKV_OK;
}

/* A write from start to acknowledgement, on the caller's thread; res
 * (may be NULL) receives the current value of a 412 (see
 * ETAGKV_WRITE_RETURN_CURRENT). */
static etagkv_status write_sync(etagkv_store *s, const etagkv_request *req,
                                etagkv_meta *meta_out, int *replayed,
                                etagkv_result *res)
{
    struct ekv_op op;
    etagkv_status st = prepare(s, req, &op);

    if (st != ETAGKV_OK) {
        if (meta_out != NULL)
            memset(meta_out, 0, sizeof(*meta_out));
        if (replayed != NULL)
            *replayed = 0;
        return st;
    }
    return commit_and_report(s, &op, meta_out, replayed, res);
}

etagkv_status etagkv_put(etagkv_store *s, const void *key, size_t key_len,
                         const void *value, size_t value_len,
                         const char *content_type, const etagkv_cond *c,
                         etagkv_meta *meta_out)
{
    etagkv_request req = {.method = ETAGKV_METHOD_PUT,
                          .key = key,
                          .key_len = key_len,
                          .value = value,
                          .value_len = value_len,
                          .content_type = content_type,
                          .cond = c};

    ekv_clear_error();
    return write_sync(s, &req, meta_out, NULL, NULL);
}

etagkv_status etagkv_delete(etagkv_store *s, const void *key, size_t key_len,
                            const etagkv_cond *c, etagkv_meta *meta_out)
{
    etagkv_request req = {.method = ETAGKV_METHOD_DELETE,
                          .key = key,
                          .key_len = key_len,
                          .cond = c};

    ekv_clear_error();
    return write_sync(s, &req, meta_out, NULL, NULL);
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
                     : write_sync(s, req, &res->meta, &res->replayed, res);
    res->status = st;
    if (req != NULL)
        res->step = ekv_cond_step_of(req->cond, req->method, st, &res->meta);
    if (res == &local)
        free(local.current_value); /* asked for, but nobody to take it */
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
    st = prepare(s, req, ekv_async_op(a));
    if (st == ETAGKV_OK)
        st = ekv_commit_async(s, a);
    if (st != ETAGKV_OK)
        ekv_async_free(a);
    return st;
}

/* ---- read-modify-write ------------------------------------------------------
 */

/* One attempt: let fn compute from the value read (*old, *old_len, *meta)
 * and write its result conditionally on that state: If-Match on its ETag,
 * or If-None-Match: * for an absent key.  A concurrent change makes the
 * put fail with ETAGKV_PRECONDITION_FAILED (*raced); then *old, *old_len and
 * *meta become the current state, taken from the 412 itself
 * (ETAGKV_WRITE_RETURN_CURRENT), and *fresh says whether they are usable
 * for the next attempt without another read (not when the copy could not
 * be made). */
static etagkv_status update_once(etagkv_store *s, const void *key,
                                 size_t key_len, etagkv_update_fn fn, void *ctx,
                                 void **old, size_t *old_len, etagkv_meta *meta,
                                 int *raced, int *fresh)
{
    const void *nv = NULL;
    size_t nv_len = 0;
    etagkv_cond *c = NULL;
    etagkv_result res = {0};
    etagkv_status st;

    *raced = *fresh = 0;
    st = fn(ctx, *old, *old_len, meta, &nv, &nv_len);
    if (st == ETAGKV_OK) {
        if (meta->exists)
            st = etagkv_cond_if_match(meta->etag, &c);
        else
            st = etagkv_cond_create_only(&c);
    }
    if (st == ETAGKV_OK) {
        etagkv_request req = {.method = ETAGKV_METHOD_PUT,
                              .key = key,
                              .key_len = key_len,
                              .value = nv,
                              .value_len = nv_len,
                              .cond = c,
                              .flags = ETAGKV_WRITE_KEEP_CONTENT_TYPE |
                                       ETAGKV_WRITE_RETURN_CURRENT};

        /* *old is replaced only now: fn may have answered with it. */
        st = write_sync(s, &req, meta, NULL, &res);
        etagkv_cond_free(c);
        free(*old);
        *old = res.current_value;
        *old_len = res.current_len;
        *raced = st == ETAGKV_PRECONDITION_FAILED;
        *fresh = *raced && (*old != NULL || !meta->exists);
    }
    return st;
}

etagkv_status etagkv_update(etagkv_store *s, const void *key, size_t key_len,
                            etagkv_update_fn fn, void *ctx,
                            unsigned max_attempts, etagkv_meta *meta_out)
{
    etagkv_meta meta;
    void *old = NULL;
    size_t old_len = 0;
    int raced = 0, fresh = 0;
    etagkv_status st = ETAGKV_PRECONDITION_FAILED;

    ekv_clear_error();
    if (meta_out != NULL)
        memset(meta_out, 0, sizeof(*meta_out));
    if (s == NULL || fn == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    if (max_attempts == 0)
        max_attempts = 16;
    memset(&meta, 0, sizeof(meta));
    for (unsigned i = 0; i < max_attempts; i++) {
        /* The first attempt reads; a retry rebases on what the 412
         * returned, and reads only if it could not. */
        if (!fresh) {
            free(old);
            old = NULL;
            old_len = 0;
            st = etagkv_get(s, key, key_len, NULL, &old, &old_len, &meta);
            if (st != ETAGKV_OK && st != ETAGKV_NOT_FOUND)
                break;
        }
        st = update_once(s, key, key_len, fn, ctx, &old, &old_len, &meta,
                         &raced, &fresh);
        if (!raced)
            break;
    }
    free(old);
    if (meta_out != NULL)
        *meta_out = meta;
    return st;
}
