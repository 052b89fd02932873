/*
 * read.c -- the read API: get, head, view and list, each in one read
 * transaction of the backend, with the conditions evaluated as for GET or
 * HEAD (cond.c).
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* The common part of get, head and view: look the key up in a read
 * transaction and evaluate the conditions as for `method`.  *meta (never
 * NULL) gets the current metadata, or zeroes when the key is absent or the
 * call fails.  On ETAGKV_OK the transaction stays open with *r valid; on
 * any other status it is ended.  The metadata is written once, straight
 * into the caller's struct: on this path copying 344 bytes around costs as
 * much as the B-tree lookup. */
static etagkv_status read_begin(etagkv_store *s, const void *key,
                                size_t key_len, const etagkv_cond *c,
                                etagkv_method method, ekv_txn *txn,
                                ekv_record *r, etagkv_meta *meta)
{
    etagkv_status st = ETAGKV_INVALID_ARGUMENT;

    if (s != NULL)
        st = ekv_check_key(key, key_len);
    if (st == ETAGKV_OK)
        st = ekv_read_begin(s->env, txn);
    if (st != ETAGKV_OK) {
        memset(meta, 0, sizeof(*meta));
        return st;
    }
    st = ekv_record_get(txn, key, key_len, r);
    if (st == ETAGKV_OK) {
        ekv_record_meta(r, meta);
        st = etagkv_cond_evaluate(c, method, meta);
    } else {
        memset(meta, 0, sizeof(*meta));
        if (st == ETAGKV_NOT_FOUND)
            st = etagkv_cond_evaluate(c, method, meta);
    }
    if (st != ETAGKV_OK)
        ekv_read_end(txn);
    return st;
}

etagkv_status etagkv_get(etagkv_store *s, const void *key, size_t key_len,
                         const etagkv_cond *c, void **value_out,
                         size_t *value_len_out, etagkv_meta *meta_out)
{
    ekv_txn txn;
    ekv_record r;
    etagkv_meta local;
    etagkv_status st;
    etagkv_method m =
        value_out != NULL ? ETAGKV_METHOD_GET : ETAGKV_METHOD_HEAD;

    ekv_clear_error();
    if (value_out != NULL)
        *value_out = NULL;
    if (value_len_out != NULL)
        *value_len_out = 0;
    st = read_begin(s, key, key_len, c, m, &txn, &r,
                    meta_out != NULL ? meta_out : &local);
    if (st != ETAGKV_OK)
        return st;
    if (value_out != NULL) {
        /* malloc(0) may return NULL; an empty value is still a value. */
        void *copy = malloc(r.value_len > 0 ? r.value_len : 1);

        if (copy == NULL) {
            st = ETAGKV_NO_MEMORY;
        } else {
            if (r.value_len > 0)
                memcpy(copy, r.value, r.value_len);
            *value_out = copy;
            if (value_len_out != NULL)
                *value_len_out = r.value_len;
        }
    }
    ekv_read_end(&txn);
    return st;
}

etagkv_status etagkv_view(etagkv_store *s, const void *key, size_t key_len,
                          const etagkv_cond *c, etagkv_view_fn fn, void *ctx)
{
    ekv_txn txn;
    ekv_record r;
    etagkv_meta meta;
    etagkv_status st;

    ekv_clear_error();
    if (fn == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    st = read_begin(s, key, key_len, c, ETAGKV_METHOD_GET, &txn, &r, &meta);
    if (st != ETAGKV_OK)
        return st;
    fn(ctx, r.value, r.value_len, &meta);
    ekv_read_end(&txn);
    return ETAGKV_OK;
}

/* Position cur on the first key > after (or >= prefix, whichever is later):
 * ETAGKV_OK, ETAGKV_NOT_FOUND when there is none, or a failure. */
static etagkv_status list_seek(ekv_cursor *cur, const void *prefix,
                               size_t prefix_len, const void *after,
                               size_t after_len, ekv_val *k, ekv_val *v)
{
    etagkv_status st;
    size_t n = prefix_len < after_len ? prefix_len : after_len;
    int cmp = n > 0 ? memcmp(prefix, after, n) : 0;
    int after_first =
        after_len > 0 && (cmp < 0 || (cmp == 0 && prefix_len <= after_len));

    if (!after_first)
        return ekv_cursor_seek(cur, prefix, prefix_len, k, v);
    st = ekv_cursor_seek(cur, after, after_len, k, v);
    if (st == ETAGKV_OK && k->len == after_len &&
        memcmp(k->data, after, after_len) == 0)
        st = ekv_cursor_next(cur, k, v);
    return st;
}

static int has_prefix(const ekv_val *k, const void *prefix, size_t prefix_len)
{
    return k->len >= prefix_len &&
           (prefix_len == 0 || memcmp(k->data, prefix, prefix_len) == 0);
}

/* Call fn for each record from the seek position on while it has the
 * prefix, up to limit (0: no limit).  *more: a matching record follows the
 * last one passed to fn. */
static etagkv_status list_walk(ekv_cursor *cur, const void *prefix,
                               size_t prefix_len, const void *after,
                               size_t after_len, size_t limit,
                               etagkv_list_fn fn, void *ctx, int *more)
{
    ekv_val k, v;
    size_t n = 0;
    etagkv_status st =
        list_seek(cur, prefix, prefix_len, after, after_len, &k, &v);

    for (; st == ETAGKV_OK && has_prefix(&k, prefix, prefix_len);
         st = ekv_cursor_next(cur, &k, &v)) {
        ekv_record r;
        etagkv_meta meta;

        if (limit > 0 && n == limit) {
            *more = 1;
            return ETAGKV_OK;
        }
        if (ekv_record_decode(v.data, v.len, &r) != ETAGKV_OK)
            return ekv_fail(ETAGKV_CORRUPT, "record fails to decode");
        ekv_record_meta(&r, &meta);
        n++;
        if (fn(ctx, k.data, k.len, &meta) != 0) {
            /* Stopped early: say whether a matching record follows. */
            st = ekv_cursor_next(cur, &k, &v);
            *more = st == ETAGKV_OK && has_prefix(&k, prefix, prefix_len);
            break;
        }
    }
    return st == ETAGKV_NOT_FOUND ? ETAGKV_OK : st;
}

etagkv_status etagkv_list(etagkv_store *s, const void *prefix,
                          size_t prefix_len, const void *after,
                          size_t after_len, size_t limit, etagkv_list_fn fn,
                          void *ctx, int *more_out)
{
    return etagkv_list_revision(s, prefix, prefix_len, after, after_len, limit,
                                fn, ctx, more_out, NULL);
}

etagkv_status etagkv_list_revision(etagkv_store *s, const void *prefix,
                                   size_t prefix_len, const void *after,
                                   size_t after_len, size_t limit,
                                   etagkv_list_fn fn, void *ctx, int *more_out,
                                   uint64_t *revision_out)
{
    ekv_txn txn;
    ekv_cursor cur;
    etagkv_status st;
    uint64_t rev = 0;
    int more = 0;

    ekv_clear_error();
    if (more_out != NULL)
        *more_out = 0;
    if (revision_out != NULL)
        *revision_out = 0;
    if (s == NULL || fn == NULL || (prefix == NULL && prefix_len > 0) ||
        (after == NULL && after_len > 0))
        return ETAGKV_INVALID_ARGUMENT;
    if (prefix_len > ETAGKV_KEY_MAX || after_len > ETAGKV_KEY_MAX)
        return ETAGKV_KEY_TOO_LONG;
    st = ekv_read_begin(s->env, &txn);
    if (st != ETAGKV_OK)
        return st;
    st = ekv_revision_get(&txn, &rev);
    if (st == ETAGKV_OK)
        st = ekv_cursor_open(&txn, EKV_TABLE_RECORDS, &cur);
    if (st == ETAGKV_OK) {
        st = list_walk(&cur, prefix, prefix_len, after, after_len, limit, fn,
                       ctx, &more);
        ekv_cursor_close(&cur);
    }
    ekv_read_end(&txn);
    if (st == ETAGKV_OK && more_out != NULL)
        *more_out = more;
    if (st == ETAGKV_OK && revision_out != NULL)
        *revision_out = rev;
    return st;
}
