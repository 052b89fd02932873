/*
 * backend.c -- the seam's dispatchers (backend.h): ekv_env_open() picks the
 * engine from the form of its argument, and every other function calls
 * the engine of the environment or transaction it is given, through its
 * struct ekv_backend_ops.  One indirect call per function: noise next to
 * an LMDB lookup (docs/benchmarks.md measures it), and nothing next to an
 * etcd round trip.
 */
#include <string.h>

#include "backend.h"

#define ETCD_SCHEME "etcd://"

etagkv_status ekv_env_open(const char *where, const etagkv_options *opts,
                           size_t page_bytes, struct ekv_env **out)
{
    const struct ekv_backend_ops *ops = &ekv_lmdb_ops;

    if (strncmp(where, ETCD_SCHEME, sizeof(ETCD_SCHEME) - 1) == 0)
        ops = &ekv_etcd_ops;
    return ops->open(where, opts, page_bytes, out);
}

void ekv_env_close(struct ekv_env *env)
{
    if (env != NULL)
        env->ops->close(env);
}

etagkv_status ekv_env_watch(struct ekv_env *env, void (*fn)(void *ctx),
                            void *ctx)
{
    return env->ops->watch != NULL ? env->ops->watch(env, fn, ctx) : ETAGKV_OK;
}

void ekv_env_unwatch(struct ekv_env *env)
{
    if (env != NULL && env->ops->unwatch != NULL)
        env->ops->unwatch(env);
}

etagkv_status ekv_prefetch(ekv_txn *txn, enum ekv_table table, const void *key,
                           size_t key_len, const void *end, size_t end_len,
                           size_t limit)
{
    const struct ekv_backend_ops *ops = txn->env->ops;

    return ops->prefetch != NULL
               ? ops->prefetch(txn, table, key, key_len, end, end_len, limit)
               : ETAGKV_OK;
}

size_t ekv_write_room(ekv_txn *txn)
{
    const struct ekv_backend_ops *ops = txn->env->ops;

    return ops->write_room != NULL ? ops->write_room(txn) : SIZE_MAX;
}

int ekv_env_remote(const struct ekv_env *env)
{
    return env->ops->remote;
}

etagkv_status ekv_env_copy_fd(struct ekv_env *env, int fd)
{
    return env->ops->copy_fd(env, fd);
}

etagkv_status ekv_env_copy_dir(struct ekv_env *env, const char *dir)
{
    return env->ops->copy_dir(env, dir);
}

etagkv_status ekv_env_stats(ekv_txn *txn, etagkv_stats *out)
{
    return txn->env->ops->stats(txn, out);
}

etagkv_status ekv_read_begin(struct ekv_env *env, ekv_txn *txn)
{
    return env->ops->read_begin(env, txn);
}

void ekv_read_end(ekv_txn *txn)
{
    txn->env->ops->read_end(txn);
}

void ekv_read_release(ekv_txn *txn)
{
    if (txn->env->ops->read_release != NULL)
        txn->env->ops->read_release(txn);
}

etagkv_status ekv_write_begin(struct ekv_env *env, ekv_txn *txn)
{
    return env->ops->write_begin(env, txn);
}

void ekv_write_abort(ekv_txn *txn)
{
    txn->env->ops->write_abort(txn);
}

etagkv_status ekv_write_commit(ekv_txn *txn)
{
    return txn->env->ops->write_commit(txn);
}

etagkv_status ekv_write_settle(ekv_txn *txn)
{
    if (txn->env->ops->write_settle != NULL)
        return txn->env->ops->write_settle(txn);
    txn->env->ops->write_abort(txn);
    return ETAGKV_OK;
}

etagkv_status ekv_env_grow(struct ekv_env *env, const ekv_txn *failed)
{
    return env->ops->grow(env, failed);
}

etagkv_status ekv_env_flush(struct ekv_env *env)
{
    return env->ops->flush(env);
}

etagkv_status ekv_record_before(ekv_txn *txn, const void *key, size_t key_len,
                                uint64_t *at, ekv_record *r)
{
    if (txn->env->ops->record_before == NULL)
        return ETAGKV_UNSUPPORTED;
    return txn->env->ops->record_before(txn, key, key_len, at, r);
}

etagkv_status ekv_record_get(ekv_txn *txn, const void *key, size_t key_len,
                             ekv_record *r)
{
    return txn->env->ops->record_get(txn, key, key_len, r);
}

etagkv_status ekv_record_reserve(ekv_txn *txn, const void *key, size_t key_len,
                                 size_t bytes, void **dst)
{
    return txn->env->ops->record_reserve(txn, key, key_len, bytes, dst);
}

etagkv_status ekv_record_delete(ekv_txn *txn, const void *key, size_t key_len)
{
    return txn->env->ops->record_delete(txn, key, key_len);
}

etagkv_status ekv_revision_get(ekv_txn *txn, uint64_t *rev)
{
    return txn->env->ops->revision_get(txn, rev);
}

etagkv_status ekv_revision_put(ekv_txn *txn, uint64_t rev)
{
    return txn->env->ops->revision_put(txn, rev);
}

etagkv_status ekv_idem_entry_get(ekv_txn *txn, const void *key, size_t key_len,
                                 ekv_val *entry)
{
    return txn->env->ops->idem_entry_get(txn, key, key_len, entry);
}

etagkv_status ekv_idem_entry_reserve(ekv_txn *txn, const void *key,
                                     size_t key_len, size_t bytes, void **dst)
{
    return txn->env->ops->idem_entry_reserve(txn, key, key_len, bytes, dst);
}

etagkv_status ekv_idem_entry_count(ekv_txn *txn, uint64_t *n)
{
    return txn->env->ops->idem_entry_count(txn, n);
}

etagkv_status ekv_change_reserve(ekv_txn *txn, const void *key, size_t key_len,
                                 size_t bytes, void **dst)
{
    return txn->env->ops->change_reserve(txn, key, key_len, bytes, dst);
}

etagkv_status ekv_change_count(ekv_txn *txn, uint64_t *n)
{
    return txn->env->ops->change_count(txn, n);
}

etagkv_status ekv_change_floor_get(ekv_txn *txn, uint64_t *floor)
{
    return txn->env->ops->change_floor_get(txn, floor);
}

etagkv_status ekv_change_floor_put(ekv_txn *txn, uint64_t floor)
{
    return txn->env->ops->change_floor_put(txn, floor);
}

etagkv_status ekv_lease_entry_get(ekv_txn *txn, const void *key, size_t key_len,
                                  ekv_val *entry)
{
    return txn->env->ops->lease_entry_get(txn, key, key_len, entry);
}

etagkv_status ekv_lease_entry_reserve(ekv_txn *txn, const void *key,
                                      size_t key_len, size_t bytes, void **dst)
{
    return txn->env->ops->lease_entry_reserve(txn, key, key_len, bytes, dst);
}

etagkv_status ekv_lease_entry_delete(ekv_txn *txn, const void *key,
                                     size_t key_len)
{
    return txn->env->ops->lease_entry_delete(txn, key, key_len);
}

etagkv_status ekv_lease_entry_count(ekv_txn *txn, uint64_t *n)
{
    return txn->env->ops->lease_entry_count(txn, n);
}

etagkv_status ekv_cursor_open(ekv_txn *txn, enum ekv_table table,
                              ekv_cursor *cur)
{
    return txn->env->ops->cursor_open(txn, table, cur);
}

void ekv_cursor_close(ekv_cursor *cur)
{
    cur->txn->env->ops->cursor_close(cur);
}

etagkv_status ekv_cursor_seek(ekv_cursor *cur, const void *key, size_t key_len,
                              ekv_val *k, ekv_val *v)
{
    return cur->txn->env->ops->cursor_seek(cur, key, key_len, k, v);
}

etagkv_status ekv_cursor_next(ekv_cursor *cur, ekv_val *k, ekv_val *v)
{
    return cur->txn->env->ops->cursor_next(cur, k, v);
}

etagkv_status ekv_cursor_delete(ekv_cursor *cur)
{
    return cur->txn->env->ops->cursor_delete(cur);
}
