/*
 * options.c -- the store's options: their defaults and their checks.
 */
#define _GNU_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define MAP_SIZE_DEFAULT ((uint64_t)64 << 20)
#define MAP_MAX_DEFAULT ((uint64_t)1 << 40)
#define MAP_SIZE_MIN ((uint64_t)1 << 20)
#define MAX_READERS_DEFAULT 512u
/* LMDB's lock file holds 64 bytes per reader and our pool a pointer per two
 * readers: far above any sane count, far below a huge file. */
#define MAX_READERS_LIMIT 65536u

void etagkv_options_init(etagkv_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof(*o));
    o->sync_mode = ETAGKV_SYNC;
    o->max_value_bytes = ETAGKV_MAX_VALUE_BYTES_DEFAULT;
    o->map_size_bytes = MAP_SIZE_DEFAULT;
    o->map_max_bytes = MAP_MAX_DEFAULT;
    o->max_readers = MAX_READERS_DEFAULT;
    o->idempotency_retention_s = ETAGKV_IDEMPOTENCY_RETENTION_S_DEFAULT;
    o->idempotency_max_keys = ETAGKV_IDEMPOTENCY_MAX_KEYS_DEFAULT;
    o->file_mode = ETAGKV_FILE_MODE_DEFAULT;
    o->changes_max_events = ETAGKV_CHANGES_MAX_EVENTS_DEFAULT;
    o->changes_retention_s = ETAGKV_CHANGES_RETENTION_S_DEFAULT;
    o->max_txn_ops = ETAGKV_TXN_MAX_OPS_DEFAULT;
    o->max_txn_bytes = ETAGKV_TXN_MAX_BYTES_DEFAULT;
    o->lease_min_ttl_ms = ETAGKV_LEASE_MIN_TTL_MS_DEFAULT;
    o->lease_max_ttl_ms = ETAGKV_LEASE_MAX_TTL_MS_DEFAULT;
    o->max_leases = ETAGKV_MAX_LEASES_DEFAULT;
    o->max_lease_keys = ETAGKV_MAX_LEASE_KEYS_DEFAULT;
}

/* Round n up to a multiple of the page size p (a power of two). */
static size_t round_up(uint64_t n, size_t p)
{
    return (size_t)((n + p - 1) & ~(uint64_t)(p - 1));
}

/* Can the process map `bytes` at all?  Asked with a reservation that
 * costs no memory, before LMDB creates any file, so that a map larger than
 * the address space (or RLIMIT_AS) is a clear refusal that leaves a new
 * directory empty, not an I/O error after data.mdb exists. */
static etagkv_status check_address_space(uint64_t bytes)
{
    void *p = mmap(NULL, (size_t)bytes, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

    if (p == MAP_FAILED)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "map_size_bytes: cannot reserve %llu bytes of "
                        "address space: %s",
                        (unsigned long long)bytes, strerror(errno));
    (void)munmap(p, (size_t)bytes);
    return ETAGKV_OK;
}

/* Zero means "the default" for every numeric option. */
static void fill_defaults(etagkv_options *o)
{
    if (o->max_value_bytes == 0)
        o->max_value_bytes = ETAGKV_MAX_VALUE_BYTES_DEFAULT;
    if (o->map_size_bytes == 0)
        o->map_size_bytes = MAP_SIZE_DEFAULT;
    if (o->map_max_bytes == 0)
        o->map_max_bytes = MAP_MAX_DEFAULT;
    if (o->max_readers == 0)
        o->max_readers = MAX_READERS_DEFAULT;
    if (o->idempotency_retention_s == 0)
        o->idempotency_retention_s = ETAGKV_IDEMPOTENCY_RETENTION_S_DEFAULT;
    if (o->idempotency_max_keys == 0)
        o->idempotency_max_keys = ETAGKV_IDEMPOTENCY_MAX_KEYS_DEFAULT;
    if (o->file_mode == 0)
        o->file_mode = ETAGKV_FILE_MODE_DEFAULT;
    if (o->changes_max_events == 0)
        o->changes_max_events = ETAGKV_CHANGES_MAX_EVENTS_DEFAULT;
    if (o->changes_retention_s == 0)
        o->changes_retention_s = ETAGKV_CHANGES_RETENTION_S_DEFAULT;
    if (o->max_txn_ops == 0)
        o->max_txn_ops = ETAGKV_TXN_MAX_OPS_DEFAULT;
    if (o->max_txn_bytes == 0)
        o->max_txn_bytes = ETAGKV_TXN_MAX_BYTES_DEFAULT;
    if (o->lease_min_ttl_ms == 0)
        o->lease_min_ttl_ms = ETAGKV_LEASE_MIN_TTL_MS_DEFAULT;
    if (o->lease_max_ttl_ms == 0)
        o->lease_max_ttl_ms = ETAGKV_LEASE_MAX_TTL_MS_DEFAULT;
    if (o->max_leases == 0)
        o->max_leases = ETAGKV_MAX_LEASES_DEFAULT;
    if (o->max_lease_keys == 0)
        o->max_lease_keys = ETAGKV_MAX_LEASE_KEYS_DEFAULT;
}

etagkv_status ekv_options_check(etagkv_options *o, size_t page_bytes)
{
    if (o->sync_mode != ETAGKV_SYNC && o->sync_mode != ETAGKV_NOSYNC &&
        o->sync_mode != ETAGKV_SYNC_PIPELINED)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT, "unknown sync_mode %d",
                        (int)o->sync_mode);
    fill_defaults(o);
    if (o->max_value_bytes > ETAGKV_MAX_VALUE_BYTES_LIMIT)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "max_value_bytes above the limit of %llu",
                        (unsigned long long)ETAGKV_MAX_VALUE_BYTES_LIMIT);
    if (o->max_readers > MAX_READERS_LIMIT)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "max_readers above the limit of %u", MAX_READERS_LIMIT);
    /* LMDB needs to read and write both files; anything beyond the
     * permission bits (setuid, sticky) has no business on a store. */
    if ((o->file_mode & 0600u) != 0600u || (o->file_mode & ~0777u) != 0)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "file_mode %04o: must include 0600 and stay within "
                        "0777",
                        o->file_mode);
    /* A deadline in ns must not overflow: 2^63 ns is 292 years. */
    if (o->lease_min_ttl_ms > o->lease_max_ttl_ms ||
        o->lease_max_ttl_ms > (uint64_t)1 << 40)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "lease_min_ttl_ms above lease_max_ttl_ms, or "
                        "lease_max_ttl_ms above 2^40");
    if (o->map_size_bytes > SIZE_MAX / 4 || o->map_max_bytes > SIZE_MAX / 4)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT, "map size too large");
    /* Below this an empty store does not even fit its own metadata. */
    if (o->map_size_bytes < MAP_SIZE_MIN)
        o->map_size_bytes = MAP_SIZE_MIN;
    o->map_size_bytes = round_up(o->map_size_bytes, page_bytes);
    o->map_max_bytes = round_up(o->map_max_bytes, page_bytes);
    if (o->map_max_bytes < o->map_size_bytes)
        return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                        "map_max_bytes is below map_size_bytes");
    return check_address_space(o->map_size_bytes);
}
