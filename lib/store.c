/*
 * store.c -- the store's lifecycle: open composes the subsystems (checked
 * options, the storage backend, the commit queue; the idempotency purge
 * cursor starts zeroed), close takes them down in reverse, and stats reads
 * a figure from each.
 *
 * Reads live in read.c, writes in write.c; docs/design.md has the map.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

/* Another handle on the same storage committed (backend.h): wake the
 * watchers as a commit of our own would, and have the writes waiting for
 * their conditions evaluated again (apply.c). */
static void commit_elsewhere(void *ctx)
{
    etagkv_store *s = ctx;

    ekv_notify_commit(&s->notify);
    ekv_waiting_recheck(s);
}

etagkv_status etagkv_store_open(const char *dir, const etagkv_options *opts,
                                etagkv_store **out)
{
    etagkv_store *s;
    etagkv_status st;
    long page = sysconf(_SC_PAGESIZE);
    size_t page_bytes = page > 0 ? (size_t)page : 4096;

    ekv_clear_error();
    if (out == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    *out = NULL;
    if (dir == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ETAGKV_NO_MEMORY;
    if (opts != NULL)
        s->opts = *opts;
    else
        etagkv_options_init(&s->opts);
    st = ekv_options_check(&s->opts, page_bytes);
    if (st != ETAGKV_OK)
        goto fail;
    st = ekv_queue_init(&s->queue);
    if (st != ETAGKV_OK)
        goto fail;
    st = ekv_notify_init(&s->notify);
    if (st != ETAGKV_OK)
        goto fail;
    st = ekv_env_open(dir, &s->opts, page_bytes, &s->env);
    if (st == ETAGKV_OK)
        st = ekv_env_watch(s->env, commit_elsewhere, s);
    if (st != ETAGKV_OK)
        goto fail;
    st = ekv_leases_start(s);
    if (st != ETAGKV_OK)
        goto fail;
    *out = s;
    return ETAGKV_OK;
fail:
    etagkv_store_close(s);
    return st;
}

void etagkv_store_close(etagkv_store *s)
{
    if (s == NULL)
        return;
    /* The lease sweeper goes first: it commits through the queue.  Then
     * the watch of other handles' commits, which pokes the queue's
     * committer (it wakes the watchers too).  Then submitted writes still
     * queued are committed: their commits notify (ekv_notify_commit()),
     * so the notifier must outlive the queue, and so must the lease state
     * for the lease calls among them.  Then watchers in etagkv_wait()
     * return ETAGKV_CLOSING and leave, and the backend goes. */
    ekv_leases_stop(s);
    ekv_env_unwatch(s->env);
    ekv_queue_shutdown(s);
    ekv_leases_free(s);
    ekv_notify_close(&s->notify);
    ekv_env_close(s->env);
    free(s);
}

etagkv_status etagkv_store_stats(etagkv_store *s, etagkv_stats *out)
{
    ekv_txn txn;
    etagkv_status st;

    ekv_clear_error();
    if (s == NULL || out == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    st = ekv_read_begin(s->env, &txn);
    if (st != ETAGKV_OK)
        return st;
    memset(out, 0, sizeof(*out));
    st = ekv_env_stats(&txn, out);
    if (st == ETAGKV_OK)
        st = ekv_revision_get(&txn, &out->revision);
    if (st == ETAGKV_OK)
        st = ekv_change_floor_get(&txn, &out->changes_min_after);
    if (st == ETAGKV_OK)
        st = ekv_leases_stats(s, &txn, out);
    ekv_read_end(&txn);
    if (st != ETAGKV_OK) {
        memset(out, 0, sizeof(*out));
        return st;
    }
    /* A backend without a map (etcd) reports 0 for its size and use, and
     * so for its ceiling too: an option that bounds nothing there. */
    out->map_max_bytes = out->map_size_bytes > 0 ? s->opts.map_max_bytes : 0;
    out->max_value_bytes = s->opts.max_value_bytes;
    ekv_queue_counters(s, &out->write_txns, &out->write_ops);
    out->writes_waiting = atomic_load(&s->waiting.count);
    return ETAGKV_OK;
}

etagkv_status etagkv_store_commit_stats(etagkv_store *s,
                                        etagkv_commit_stats *out)
{
    ekv_clear_error();
    if (s == NULL || out == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    ekv_queue_histograms(s, out);
    return ETAGKV_OK;
}
