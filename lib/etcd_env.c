/*
 * etcd_env.c -- the etcd backend's environment: "etcd://ENDPOINTS/prefix"
 * parsed, the format marker checked (or written, once, by whichever
 * process gets there first), statistics, and the engine's table of
 * functions.  Layout and the mapping in etcd_env.h and docs/design.md.
 *
 * What only a file has (map growth, compacted copies) is
 * ETAGKV_UNSUPPORTED here; etcd's own snapshots back a cluster up.
 */
#include <stdlib.h>
#include <string.h>

#include "etcd_env.h"

#define SCHEME "etcd://"
#define FORMAT_VALUE "etagkv/1"

/* ---- open and close ---------------------------------------------------------
 */

/* The request timeout of "?timeout_ms=N" at query (NULL: none), in *ms;
 * -1 if malformed. */
static int parse_query(const char *query, long *ms)
{
    const char *name = "?timeout_ms=";
    char *end;

    if (query == NULL)
        return 0;
    if (strncmp(query, name, strlen(name)) != 0)
        return -1;
    *ms = strtol(query + strlen(name), &end, 10);
    return *end == '\0' && *ms > 0 && *ms <= 3600000 ? 0 : -1;
}

/* Split "etcd://h:p,h:p/some/prefix?timeout_ms=N" into the endpoint list,
 * the prefix (without its trailing slashes; it may be empty) and the
 * request timeout. */
static etagkv_status parse(struct ekv_etcd_env *env, const char *where)
{
    const char *list = where + sizeof(SCHEME) - 1;
    const char *query = strchr(list, '?');
    size_t rest = query != NULL ? (size_t)(query - list) : strlen(list);
    const char *slash = memchr(list, '/', rest);
    size_t list_len = slash != NULL ? (size_t)(slash - list) : rest;
    size_t plen = slash != NULL ? rest - list_len : 0;
    long timeout_ms = 0;
    etagkv_status st;

    if (parse_query(query, &timeout_ms) != 0)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "%s: the only option is ?timeout_ms=N (1 to 3600000)",
                        where);

    while (plen > 0 && slash[plen - 1] == '/')
        plen--;
    env->prefix = malloc(plen + 1);
    if (env->prefix == NULL)
        return ETAGKV_NO_MEMORY;
    if (plen > 0)
        memcpy(env->prefix, slash, plen);
    env->prefix[plen] = '\0';
    env->prefix_len = plen;
    st = ekv_etcd_client_new(list, list_len, timeout_ms, &env->client);
    if (st == ETAGKV_INVALID_ARGUMENT)
        return ekv_fail(st,
                        "%s: want etcd://HOST:PORT[,HOST:PORT...][/prefix]"
                        "[?timeout_ms=N]",
                        where);
    return st;
}

/* In write transaction txn: the marker's state.  *fresh: no marker and
 * nothing else under the prefix, so the caller may make a store. */
static etagkv_status check_marker(ekv_txn *txn, int *fresh)
{
    struct ekv_etcd_env *env = ekv_etcd_of(txn->env);
    const struct ekv_etcd_item *it;
    struct ekv_etcd_item *items;
    char *k, *end;
    size_t k_len, n;
    int more;
    int64_t count = 0;
    etagkv_status st =
        ekv_etcd_key(txn, EKV_ETCD_META, "format", 6, &k, &k_len);

    *fresh = 0;
    if (st == ETAGKV_OK)
        st = ekv_etcd_lookup(txn, k, k_len, &it);
    if (st != ETAGKV_OK)
        return st;
    if (it->present)
        return it->val_len == sizeof(FORMAT_VALUE) - 1 &&
                       memcmp(it->val, FORMAT_VALUE, it->val_len) == 0
                   ? ETAGKV_OK
                   : ekv_fail(ETAGKV_INCOMPATIBLE,
                              "etcd prefix %s: an unknown format", env->prefix);
    /* Anything under "P/" (up to "P0") is someone else's data. */
    end = ekv_etcd_alloc(ekv_etcd_txn_of(txn), env->prefix_len + 1);
    if (end == NULL)
        return ETAGKV_NO_MEMORY;
    memcpy(end, k, env->prefix_len + 1);
    end[env->prefix_len] = '/' + 1;
    st = ekv_etcd_range(txn, k, env->prefix_len + 1, end, env->prefix_len + 1,
                        0, 1, &items, &n, &more, &count);
    if (st == ETAGKV_OK && count > 0)
        return ekv_fail(ETAGKV_INCOMPATIBLE,
                        "etcd prefix %s holds keys and no etagkv format marker",
                        env->prefix);
    *fresh = st == ETAGKV_OK;
    return st;
}

/* Check the format marker, or make a new store: the marker, a change log
 * floor of 0 and counters of 0, committed only if the prefix is still empty
 * (the read set compares the marker's absence), so two processes opening a new
 * prefix at once make it once. */
static etagkv_status check_format(struct ekv_etcd_env *env, int read_only)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        ekv_txn txn;
        void *dst;
        int fresh;
        etagkv_status st = ekv_etcd_write_begin(&env->base, &txn);

        if (st != ETAGKV_OK)
            return st;
        st = check_marker(&txn, &fresh);
        if (st != ETAGKV_OK || !fresh) {
            ekv_etcd_write_abort(&txn);
            return st;
        }
        if (read_only) {
            ekv_etcd_write_abort(&txn);
            return ekv_fail(ETAGKV_NOT_FOUND,
                            "etcd prefix %s: no store there, and a read-only "
                            "open creates none",
                            env->prefix);
        }
        st = ekv_etcd_change_floor_put(&txn, 0);
        if (st == ETAGKV_OK)
            st = ekv_etcd_counters_zero(&txn);
        if (st == ETAGKV_OK) {
            char *k;
            size_t k_len;

            st = ekv_etcd_key(&txn, EKV_ETCD_META, "format", 6, &k, &k_len);
            if (st == ETAGKV_OK)
                st = ekv_etcd_put(&txn, k, k_len, sizeof(FORMAT_VALUE) - 1,
                                  &dst);
            if (st == ETAGKV_OK)
                memcpy(dst, FORMAT_VALUE, sizeof(FORMAT_VALUE) - 1);
        }
        if (st != ETAGKV_OK) {
            ekv_etcd_write_abort(&txn);
            return st;
        }
        st = ekv_etcd_write_commit(&txn);
        if (!txn.conflict)
            return st;
    }
    return ekv_fail(ETAGKV_UNAVAILABLE,
                    "etcd prefix %s: creating the store "
                    "keeps conflicting",
                    env->prefix);
}

static void etcd_close(struct ekv_env *base)
{
    struct ekv_etcd_env *env = ekv_etcd_of(base);

    if (env == NULL)
        return;
    ekv_etcd_watch_stop(base);
    ekv_etcd_client_free(env->client);
    ekv_etcd_known_free(env->known);
    if (env->lock_ready)
        (void)pthread_mutex_destroy(&env->write_lock);
    free(env->prefix);
    free(env);
}

static etagkv_status etcd_open(const char *where, const etagkv_options *opts,
                               size_t page_bytes, struct ekv_env **out)
{
    struct ekv_etcd_env *env = calloc(1, sizeof(*env));
    etagkv_status st;

    (void)page_bytes;
    *out = NULL;
    if (env == NULL)
        return ETAGKV_NO_MEMORY;
    env->base.ops = &ekv_etcd_ops;
    if (pthread_mutex_init(&env->write_lock, NULL) != 0) {
        free(env);
        return ETAGKV_NO_MEMORY;
    }
    env->lock_ready = 1;
    env->known_backoff = 1;
    st = ekv_etcd_known_new(&env->known);
    if (st == ETAGKV_OK)
        st = parse(env, where);
    if (st == ETAGKV_OK)
        st = check_format(env, opts->read_only != 0);
    if (st != ETAGKV_OK) {
        etcd_close(&env->base);
        return st;
    }
    env->read_only = opts->read_only != 0;
    *out = &env->base;
    return ETAGKV_OK;
}

/* ---- what only a file has
 * ------------------------------------------------------ */

static etagkv_status etcd_copy_fd(struct ekv_env *env, int fd)
{
    (void)env;
    (void)fd;
    return ekv_fail(ETAGKV_UNSUPPORTED,
                    "a store on etcd has no file to copy: back the cluster "
                    "up with etcdctl snapshot save");
}

static etagkv_status etcd_copy_dir(struct ekv_env *env, const char *dir)
{
    (void)dir;
    return etcd_copy_fd(env, -1);
}

static etagkv_status etcd_grow(struct ekv_env *env, const ekv_txn *failed)
{
    (void)env;
    (void)failed;
    return ekv_fail(ETAGKV_UNSUPPORTED, "a store on etcd has no map to grow");
}

/* An etcd commit is durable when it returns (Raft, the members' fsync):
 * there is nothing left to flush, in any sync mode. */
static etagkv_status etcd_flush(struct ekv_env *env)
{
    (void)env;
    return ETAGKV_OK;
}

static etagkv_status etcd_stats(ekv_txn *txn, etagkv_stats *out)
{
    etagkv_status st =
        ekv_etcd_table_count(txn, EKV_TABLE_RECORDS, &out->records);

    if (st == ETAGKV_OK)
        st = ekv_etcd_table_count(txn, EKV_TABLE_IDEMPOTENCY,
                                  &out->idempotency_keys);
    if (st == ETAGKV_OK)
        st = ekv_etcd_table_count(txn, EKV_TABLE_CHANGES, &out->change_events);
    out->map_size_bytes = out->map_used_bytes = 0; /* no map */
    return st;
}

/* ---- the engine
 * ----------------------------------------------------------------- */

const struct ekv_backend_ops ekv_etcd_ops = {
    .name = "etcd",
    .remote = 1,
    .open = etcd_open,
    .close = etcd_close,
    .copy_fd = etcd_copy_fd,
    .copy_dir = etcd_copy_dir,
    .stats = etcd_stats,
    .read_begin = ekv_etcd_read_begin,
    .read_end = ekv_etcd_read_end,
    .read_release = ekv_etcd_read_release,
    .write_begin = ekv_etcd_write_begin,
    .write_abort = ekv_etcd_write_abort,
    .write_commit = ekv_etcd_write_commit,
    .write_settle = ekv_etcd_write_settle,
    .write_room = ekv_etcd_write_room,
    .grow = etcd_grow,
    .flush = etcd_flush,
    .record_before = ekv_etcd_record_before,
    .record_get = ekv_etcd_record_get,
    .record_reserve = ekv_etcd_record_reserve,
    .record_delete = ekv_etcd_record_delete,
    .revision_get = ekv_etcd_revision_get,
    .revision_put = ekv_etcd_revision_put,
    .idem_entry_get = ekv_etcd_idem_entry_get,
    .idem_entry_reserve = ekv_etcd_idem_entry_reserve,
    .idem_entry_count = ekv_etcd_idem_entry_count,
    .change_reserve = ekv_etcd_change_reserve,
    .change_count = ekv_etcd_change_count,
    .change_floor_get = ekv_etcd_change_floor_get,
    .change_floor_put = ekv_etcd_change_floor_put,
    .lease_entry_get = ekv_etcd_lease_entry_get,
    .lease_entry_reserve = ekv_etcd_lease_entry_reserve,
    .lease_entry_delete = ekv_etcd_lease_entry_delete,
    .lease_entry_count = ekv_etcd_lease_entry_count,
    .cursor_open = ekv_etcd_cursor_open,
    .cursor_close = ekv_etcd_cursor_close,
    .cursor_seek = ekv_etcd_cursor_seek,
    .cursor_next = ekv_etcd_cursor_next,
    .cursor_delete = ekv_etcd_cursor_delete,
    .prefetch = ekv_etcd_prefetch,
    .watch = ekv_etcd_watch_start,
    .unwatch = ekv_etcd_watch_stop,
};
