/*
 * lease.c -- leases (DESIGN §9): keys that go away when their owner stops
 * renewing.  The lease table's layout, the lease operations of the commit
 * queue (grant, keepalive, revoke, sweep), the link between a written key
 * and its lease, the sweeper thread, and the public etagkv_lease_*().
 *
 * Every lease operation is an entry of the group-commit queue like a put
 * (commit.c, apply.c), so it is serialised with the writes around it and
 * acknowledged only once durable.  Expiry is a revoke that the store
 * submits itself: the sweeper thread sleeps until the earliest deadline,
 * then queues a sweep that expires at most SWEEP_MAX_LEASES leases; writers
 * queued meanwhile go in the next batches, so none waits for a long sweep.
 *
 * The table (the backend's lease entries, backend.h), one kind per first
 * byte; integers in keys are big-endian so that they sort:
 *
 *   "N"                          -> u64 next id, u64 leases stored (LE)
 *   "L" id                       -> u64 ttl_ms, u64 deadline_ns,
 *                                   u64 keys attached (LE; stores of
 *                                   before the count have 16 bytes, and
 *                                   their keys are counted when read)
 *   "D" deadline_ns id           -> (empty) the deadline index
 *   "K" XXH3-128(key)            -> id: the lease a key is attached to
 *   "A" id XXH3-128(key)         -> key: the keys attached to a lease
 *
 * Keys are linked through their hash because a key may be as long as the
 * backend's whole key limit (511 bytes): a prefix would not fit.
 *
 * A lease holds at most max_lease_keys keys, so that its revoke, one
 * commit, stays within what one commit can hold (on etcd one Txn, within
 * --max-txn-ops), and a revision's events within what a watcher is sent
 * at once.  A put that would attach one more is a conflict (409).
 *
 * The restart rule: a deadline is stored as the store's clock at the last
 * grant or keepalive plus the TTL, but is read as no earlier than the
 * clock at this open plus the TTL (deadline_of()).  So opening the store
 * gives every lease its full TTL again without rewriting any; the sweep
 * moves an index entry that turns out not to be due (bounded work, like
 * the rest of the sweep).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* Leases one sweep expires (or re-indexes) at most, and the keys it
 * deletes at most beyond its first lease's. */
#define SWEEP_MAX_LEASES 64
#define SWEEP_MAX_KEYS 4096

/* A lease entry, and one of before the key count. */
#define LEASE_REC_BYTES 24
#define LEASE_REC_OLD_BYTES 16

/* Longest sleep of the sweeper: the system clock can be set, a test clock
 * (etagkv_options.clock) moves in jumps the sweeper cannot sleep towards,
 * and a lease granted by another process (or another front end on etcd)
 * does not wake this one, which must still expire it when that process
 * is gone -- so even a sweeper that knows of no lease looks again. */
#define SWEEP_NAP_NS 1000000000u
#define SWEEP_NAP_TEST_CLOCK_NS 5000000u

#define NS_PER_MS 1000000u

/* ---- the table's layout -------------------------------------------------- */

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

struct lease_rec {
    uint64_t ttl_ms;
    uint64_t deadline_ns; /* as stored: see deadline_of() */
    uint64_t keys;        /* attached to it */
};

/* The deadline of lease l in force: the stored one, but never earlier
 * than this open plus its TTL (the restart rule, at the top; not for a
 * read-only handle, whose open_ns is 0). */
static uint64_t deadline_of(const etagkv_store *s, const struct lease_rec *l)
{
    uint64_t floor = s->leases.open_ns + l->ttl_ms * NS_PER_MS;

    return l->deadline_ns > floor ? l->deadline_ns : floor;
}

/* Count (and pass to fn, until it stops) the keys attached to lease id. */
static etagkv_status list_keys(ekv_txn *txn, uint64_t id, uint64_t *n,
                               etagkv_lease_key_fn fn, void *ctx)
{
    uint8_t prefix[9] = {'A'};
    ekv_cursor cur;
    ekv_val k, v;
    etagkv_status st = ekv_cursor_open(txn, EKV_TABLE_LEASES, &cur);

    *n = 0;
    if (st != ETAGKV_OK)
        return st;
    put_be64(prefix + 1, id);
    for (st = ekv_cursor_seek(&cur, prefix, sizeof(prefix), &k, &v);
         st == ETAGKV_OK && k.len > 9 && memcmp(k.data, prefix, 9) == 0;
         st = ekv_cursor_next(&cur, &k, &v)) {
        if (fn != NULL && fn(ctx, v.data, v.len) != 0)
            fn = NULL;
        (*n)++;
    }
    ekv_cursor_close(&cur);
    return st == ETAGKV_NOT_FOUND ? ETAGKV_OK : st;
}

static etagkv_status lease_get(ekv_txn *txn, uint64_t id, struct lease_rec *l)
{
    uint8_t k[9] = {'L'};
    ekv_val v;
    etagkv_status st;

    put_be64(k + 1, id);
    st = ekv_lease_entry_get(txn, k, sizeof(k), &v);
    if (st != ETAGKV_OK)
        return st;
    if (v.len != LEASE_REC_BYTES && v.len != LEASE_REC_OLD_BYTES)
        return ekv_fail(ETAGKV_CORRUPT, "lease entry of %zu bytes", v.len);
    l->ttl_ms = ekv_get_le64(v.data);
    l->deadline_ns = ekv_get_le64((const uint8_t *)v.data + 8);
    if (v.len == LEASE_REC_BYTES) {
        l->keys = ekv_get_le64((const uint8_t *)v.data + 16);
        return ETAGKV_OK;
    }
    return list_keys(txn, id, &l->keys, NULL, NULL); /* counted */
}

/* Write lease id's entry as l. */
static etagkv_status entry_put(ekv_txn *txn, uint64_t id,
                               const struct lease_rec *l)
{
    uint8_t k[9] = {'L'};
    void *dst;
    etagkv_status st;

    put_be64(k + 1, id);
    st = ekv_lease_entry_reserve(txn, k, sizeof(k), LEASE_REC_BYTES, &dst);
    if (st != ETAGKV_OK)
        return st;
    ekv_put_le64(dst, l->ttl_ms);
    ekv_put_le64((uint8_t *)dst + 8, l->deadline_ns);
    ekv_put_le64((uint8_t *)dst + 16, l->keys);
    return ETAGKV_OK;
}

/* Write lease id as l, with its entry in the deadline index. */
static etagkv_status lease_put(ekv_txn *txn, uint64_t id,
                               const struct lease_rec *l)
{
    uint8_t d[17] = {'D'};
    void *dst;
    etagkv_status st = entry_put(txn, id, l);

    if (st != ETAGKV_OK)
        return st;
    put_be64(d + 1, l->deadline_ns);
    put_be64(d + 9, id);
    return ekv_lease_entry_reserve(txn, d, sizeof(d), 0, &dst);
}

/* Delete lease id's entry (when `all`) and its deadline index entry. */
static etagkv_status lease_delete(ekv_txn *txn, uint64_t id,
                                  const struct lease_rec *l, int all)
{
    uint8_t k[9] = {'L'}, d[17] = {'D'};
    etagkv_status st;

    put_be64(d + 1, l->deadline_ns);
    put_be64(d + 9, id);
    st = ekv_lease_entry_delete(txn, d, sizeof(d));
    if (st != ETAGKV_OK && st != ETAGKV_NOT_FOUND)
        return st;
    if (!all)
        return ETAGKV_OK;
    put_be64(k + 1, id);
    st = ekv_lease_entry_delete(txn, k, sizeof(k));
    return st == ETAGKV_NOT_FOUND ? ETAGKV_OK : st;
}

/* The next id to grant and the number of leases stored. */
static etagkv_status counts_get(ekv_txn *txn, uint64_t *next, uint64_t *n)
{
    ekv_val v;
    etagkv_status st = ekv_lease_entry_get(txn, "N", 1, &v);

    *next = 1;
    *n = 0;
    if (st == ETAGKV_NOT_FOUND)
        return ETAGKV_OK;
    if (st != ETAGKV_OK)
        return st;
    if (v.len != 16)
        return ekv_fail(ETAGKV_CORRUPT, "lease counts of %zu bytes", v.len);
    *next = ekv_get_le64(v.data);
    *n = ekv_get_le64((const uint8_t *)v.data + 8);
    return ETAGKV_OK;
}

static etagkv_status counts_put(ekv_txn *txn, uint64_t next, uint64_t n)
{
    void *dst;
    etagkv_status st = ekv_lease_entry_reserve(txn, "N", 1, 16, &dst);

    if (st == ETAGKV_OK) {
        ekv_put_le64(dst, next);
        ekv_put_le64((uint8_t *)dst + 8, n);
    }
    return st;
}

/* ---- keys and their lease ------------------------------------------------ */

etagkv_status ekv_lease_of(ekv_txn *txn, const void *key, size_t key_len,
                           uint64_t *id)
{
    uint8_t kk[1 + EKV_HASH_BYTES] = {'K'};
    uint64_t entries;
    ekv_val v;
    etagkv_status st = ekv_lease_entry_count(txn, &entries);

    /* The common case costs no hash and no lookup: a store whose lease
     * table holds at most its "N" counter links no key to any lease. */
    *id = 0;
    if (st != ETAGKV_OK || entries <= 1)
        return st;
    ekv_hash128(key, key_len, kk + 1);
    st = ekv_lease_entry_get(txn, kk, sizeof(kk), &v);
    if (st == ETAGKV_NOT_FOUND)
        return ETAGKV_OK;
    if (st == ETAGKV_OK && v.len != 8)
        return ekv_fail(ETAGKV_CORRUPT, "key link of %zu bytes", v.len);
    if (st == ETAGKV_OK)
        *id = get_be64(v.data);
    return st;
}

/* Count one key more (delta 1) or less (-1) on lease id, before its link
 * is added or removed (a lease entry without its count counts its links
 * as they are).  A lease that is gone has nothing to count. */
static etagkv_status count_keys(ekv_txn *txn, uint64_t id, int delta)
{
    struct lease_rec l = {0, 0, 0};
    etagkv_status st = lease_get(txn, id, &l);

    if (st == ETAGKV_NOT_FOUND)
        return ETAGKV_OK;
    if (st != ETAGKV_OK)
        return st;
    if (delta > 0)
        l.keys++;
    else if (l.keys > 0)
        l.keys--;
    return entry_put(txn, id, &l);
}

etagkv_status ekv_lease_attach(ekv_txn *txn, const void *key, size_t key_len,
                               uint64_t id)
{
    uint8_t kk[1 + EKV_HASH_BYTES] = {'K'}, ak[9 + EKV_HASH_BYTES] = {'A'};
    uint64_t old;
    void *dst;
    etagkv_status st = ekv_lease_of(txn, key, key_len, &old);

    if (st != ETAGKV_OK || old == id)
        return st; /* the common case: no lease, none before */
    ekv_hash128(key, key_len, kk + 1);
    memcpy(ak + 9, kk + 1, EKV_HASH_BYTES);
    if (old != 0) {
        st = count_keys(txn, old, -1);
        put_be64(ak + 1, old);
        if (st == ETAGKV_OK)
            st = ekv_lease_entry_delete(txn, ak, sizeof(ak));
        if (st != ETAGKV_OK && st != ETAGKV_NOT_FOUND)
            return st;
    }
    if (id == 0)
        return ekv_lease_entry_delete(txn, kk, sizeof(kk));
    st = count_keys(txn, id, 1);
    if (st == ETAGKV_OK)
        st = ekv_lease_entry_reserve(txn, kk, sizeof(kk), 8, &dst);
    if (st != ETAGKV_OK)
        return st;
    put_be64(dst, id);
    put_be64(ak + 1, id);
    st = ekv_lease_entry_reserve(txn, ak, sizeof(ak), key_len, &dst);
    if (st == ETAGKV_OK)
        memcpy(dst, key, key_len);
    return st;
}

etagkv_status ekv_lease_admit(etagkv_store *s, ekv_txn *txn, uint64_t id,
                              const void *key, size_t key_len, uint64_t pending,
                              enum ekv_lease_verdict *v)
{
    struct lease_rec l = {0, 0, 0};
    uint64_t of;
    etagkv_status st = lease_get(txn, id, &l);

    *v = EKV_LEASE_DEAD;
    if (st == ETAGKV_NOT_FOUND)
        return ETAGKV_OK;
    if (st != ETAGKV_OK || deadline_of(s, &l) <= ekv_now_ns(s))
        return st;
    *v = EKV_LEASE_ADMITTED;
    if (l.keys + pending < s->opts.max_lease_keys)
        return ETAGKV_OK;
    /* Full, unless key is one of its keys already (no one more). */
    st = ekv_lease_of(txn, key, key_len, &of);
    if (st == ETAGKV_OK && of != id)
        *v = EKV_LEASE_FULL;
    return st;
}

/* The keys of a lease, gathered before they are deleted: u16 length
 * (native order) and the bytes, one after the other. */
struct gathered {
    uint8_t *p;
    size_t len, cap;
    etagkv_status st;
};

static int gather(void *ctx, const void *key, size_t key_len)
{
    struct gathered *g = ctx;
    uint16_t n = (uint16_t)key_len;

    if (key_len == 0 || key_len > ETAGKV_KEY_MAX) {
        g->st = ekv_fail(ETAGKV_CORRUPT, "attached key of %zu bytes", key_len);
        return 1;
    }
    if (g->len + sizeof(n) + key_len > g->cap) {
        size_t cap = (g->cap > 0 ? g->cap : 4096) * 2 + key_len;
        uint8_t *p = realloc(g->p, cap);

        if (p == NULL) {
            g->st = ETAGKV_NO_MEMORY;
            return 1;
        }
        g->p = p;
        g->cap = cap;
    }
    memcpy(g->p + g->len, &n, sizeof(n));
    memcpy(g->p + g->len + sizeof(n), key, key_len);
    g->len += sizeof(n) + key_len;
    return 0;
}

/* Unlink key from lease id and delete it, with a delete event at revision
 * rev (a link without its record is only unlinked).  *wrote: 1 if the
 * record was there. */
static etagkv_status delete_attached(etagkv_store *s, ekv_txn *txn, uint64_t id,
                                     const uint8_t *key, size_t key_len,
                                     uint64_t rev, int *wrote)
{
    static const uint8_t no_hash[EKV_HASH_BYTES];
    uint8_t ak[9 + EKV_HASH_BYTES] = {'A'}, kk[1 + EKV_HASH_BYTES] = {'K'};
    ekv_record r;
    etagkv_meta meta;
    etagkv_status st;

    ekv_hash128(key, key_len, kk + 1);
    put_be64(ak + 1, id);
    memcpy(ak + 9, kk + 1, EKV_HASH_BYTES);
    st = ekv_lease_entry_delete(txn, ak, sizeof(ak));
    if (st == ETAGKV_OK || st == ETAGKV_NOT_FOUND)
        st = ekv_lease_entry_delete(txn, kk, sizeof(kk));
    if (st == ETAGKV_OK || st == ETAGKV_NOT_FOUND)
        st = ekv_record_get(txn, key, key_len, &r);
    if (st == ETAGKV_NOT_FOUND)
        return ETAGKV_OK;
    if (st == ETAGKV_OK)
        st = ekv_record_delete(txn, key, key_len);
    memset(&meta, 0, sizeof(meta));
    meta.mod_revision = rev;
    if (st == ETAGKV_OK)
        st = ekv_changes_append(s, txn, key, key_len, &meta, no_hash);
    *wrote |= st == ETAGKV_OK;
    return st;
}

/* Delete lease id (entry l) and every key attached to it, the keys at
 * revision *rev + 1 with a delete event each (DESIGN §9: one change);
 * *rev advances when there was a key.  The keys are gathered in one walk
 * first (at most max_lease_keys of them, but all that are linked): a
 * fresh look for the first one after each delete would, on etcd, walk
 * past the ones deleted so far every time. */
static etagkv_status revoke_one(etagkv_store *s, ekv_txn *txn, uint64_t id,
                                const struct lease_rec *l, uint64_t *rev,
                                int *wrote)
{
    struct gathered g = {NULL, 0, 0, ETAGKV_OK};
    uint64_t next, n;
    etagkv_status st = list_keys(txn, id, &n, gather, &g);

    *wrote = 0;
    if (st == ETAGKV_OK)
        st = g.st;
    for (size_t at = 0; st == ETAGKV_OK && at < g.len;) {
        uint16_t len;

        memcpy(&len, g.p + at, sizeof(len));
        st = delete_attached(s, txn, id, g.p + at + sizeof(len), len, *rev + 1,
                             wrote);
        at += sizeof(len) + len;
    }
    free(g.p);
    if (st == ETAGKV_OK)
        st = lease_delete(txn, id, l, 1);
    if (st == ETAGKV_OK)
        st = counts_get(txn, &next, &n);
    if (st == ETAGKV_OK)
        st = counts_put(txn, next, n > 0 ? n - 1 : 0);
    if (st == ETAGKV_OK && *wrote)
        *rev += 1;
    return st;
}

/* ---- the lease operations of a batch ------------------------------------- */

static etagkv_status op_grant(etagkv_store *s, ekv_txn *txn, struct ekv_op *op)
{
    struct lease_rec l = {op->lease_ttl_ms, 0, 0};
    uint64_t next, n;
    etagkv_status st = counts_get(txn, &next, &n);

    if (st != ETAGKV_OK)
        return st;
    if (n >= s->opts.max_leases) {
        op->status = ETAGKV_LEASE_LIMIT;
        snprintf(op->detail, sizeof(op->detail), "%llu leases (max_leases)",
                 (unsigned long long)n);
        return ETAGKV_OK;
    }
    l.deadline_ns = ekv_now_ns(s) + l.ttl_ms * NS_PER_MS;
    st = lease_put(txn, next, &l);
    if (st == ETAGKV_OK)
        st = counts_put(txn, next + 1, n + 1);
    op->lease = next;
    op->status = ETAGKV_OK;
    op->dirty = 1;
    return st;
}

/* Revoke op's lease (entry *l) for op: 404 when it was dead already, the
 * death counted as an expiry. */
static etagkv_status revoke_op(etagkv_store *s, ekv_txn *txn, struct ekv_op *op,
                               const struct lease_rec *l, uint64_t *rev,
                               int dead)
{
    int wrote;
    etagkv_status st = revoke_one(s, txn, op->lease, l, rev, &wrote);

    op->wrote = wrote;
    op->dirty = 1;
    op->meta.mod_revision = wrote ? *rev : 0;
    op->lease_expired = (uint64_t)dead;
    op->status = dead ? ETAGKV_NOT_FOUND : ETAGKV_OK;
    return st;
}

static etagkv_status op_keepalive(etagkv_store *s, ekv_txn *txn,
                                  struct ekv_op *op, uint64_t *rev)
{
    struct lease_rec l = {0, 0, 0};
    uint64_t now = ekv_now_ns(s);
    etagkv_status st = lease_get(txn, op->lease, &l);

    if (st == ETAGKV_OK && deadline_of(s, &l) <= now) {
        /* Dead: too late to renew.  Its holder is told so (404), so the
         * death is made durable with the answer, as a revoke of a dead
         * lease is: a lease left for the sweep would get its full TTL
         * again from a restart before the sweep (the restart rule), and
         * come back after its holder was told it had gone. */
        return revoke_op(s, txn, op, &l, rev, 1);
    }
    if (st == ETAGKV_NOT_FOUND) {
        op->status = ETAGKV_NOT_FOUND;
        return ETAGKV_OK;
    }
    if (st == ETAGKV_OK)
        st = lease_delete(txn, op->lease, &l, 0);
    l.deadline_ns = now + l.ttl_ms * NS_PER_MS;
    if (st == ETAGKV_OK)
        st = lease_put(txn, op->lease, &l);
    op->lease_ttl_ms = l.ttl_ms;
    op->lease_remaining_ms = l.ttl_ms;
    op->status = ETAGKV_OK;
    op->dirty = 1;
    return st;
}

static etagkv_status op_revoke(etagkv_store *s, ekv_txn *txn, struct ekv_op *op,
                               uint64_t *rev)
{
    struct lease_rec l = {0, 0, 0};
    int dead;
    etagkv_status st = lease_get(txn, op->lease, &l);

    if (st == ETAGKV_NOT_FOUND) {
        op->status = ETAGKV_NOT_FOUND;
        return ETAGKV_OK;
    }
    if (st != ETAGKV_OK)
        return st;
    /* A dead lease is not the caller's to revoke (404), but its keys go
     * now rather than at the sweep. */
    dead = deadline_of(s, &l) <= ekv_now_ns(s);
    return revoke_op(s, txn, op, &l, rev, dead);
}

/* The first entry of the deadline index: ETAGKV_OK with *due and *id, or
 * ETAGKV_NOT_FOUND when there is none. */
static etagkv_status first_due(ekv_txn *txn, uint64_t *due, uint64_t *id)
{
    ekv_cursor cur;
    ekv_val k, v;
    etagkv_status st = ekv_cursor_open(txn, EKV_TABLE_LEASES, &cur);

    if (st != ETAGKV_OK)
        return st;
    st = ekv_cursor_seek(&cur, "D", 1, &k, &v);
    if (st == ETAGKV_OK && (k.len != 17 || ((const uint8_t *)k.data)[0] != 'D'))
        st = ETAGKV_NOT_FOUND;
    if (st == ETAGKV_OK) {
        *due = get_be64((const uint8_t *)k.data + 1);
        *id = get_be64((const uint8_t *)k.data + 9);
    }
    ekv_cursor_close(&cur);
    return st;
}

/* Expire up to SWEEP_MAX_LEASES leases whose deadline has passed, each in
 * a revision of its own, and after the first no more once their keys
 * would pass SWEEP_MAX_KEYS or max_lease_keys, what one lease's revoke
 * takes at most (on etcd --max-txn-ops is sized for it).  Not quite
 * always: a lease of an older store, or one filled before max_lease_keys
 * was lowered, may hold more, and an older store's entry is counted by a
 * walk whose keys an etcd commit compares even when the sweep then stops
 * before that lease.  An index entry that is due but whose lease is not
 * (the restart rule) is moved to the deadline in force. */
static etagkv_status op_sweep(etagkv_store *s, ekv_txn *txn, struct ekv_op *op,
                              uint64_t *rev)
{
    uint64_t now = ekv_now_ns(s), due, id, keys = 0;
    uint64_t max_keys = s->opts.max_lease_keys < SWEEP_MAX_KEYS
                            ? s->opts.max_lease_keys
                            : SWEEP_MAX_KEYS;
    etagkv_status st = ETAGKV_OK;

    op->status = ETAGKV_OK;
    for (int i = 0; i < SWEEP_MAX_LEASES && st == ETAGKV_OK; i++) {
        struct lease_rec l = {0, 0, 0};
        int wrote = 0;

        st = first_due(txn, &due, &id);
        if (st == ETAGKV_NOT_FOUND || (st == ETAGKV_OK && due > now))
            return ETAGKV_OK;
        if (st == ETAGKV_OK)
            st = lease_get(txn, id, &l);
        op->dirty = 1;
        if (st == ETAGKV_NOT_FOUND) { /* an index entry left behind */
            l.deadline_ns = due;
            st = lease_delete(txn, id, &l, 0);
        } else if (st == ETAGKV_OK && deadline_of(s, &l) > now) {
            st = lease_delete(txn, id, &l, 0);
            l.deadline_ns = deadline_of(s, &l);
            if (st == ETAGKV_OK)
                st = lease_put(txn, id, &l);
        } else if (st == ETAGKV_OK) {
            keys += l.keys;
            if (op->lease_expired > 0 && keys > max_keys)
                return ETAGKV_OK; /* the next sweep's first */
            st = revoke_one(s, txn, id, &l, rev, &wrote);
            op->lease_expired++;
            op->wrote |= wrote;
        }
    }
    return st;
}

etagkv_status ekv_lease_execute(etagkv_store *s, ekv_txn *txn,
                                struct ekv_op *op, uint64_t *rev)
{
    op->lease_expired = 0;
    switch (op->lease_verb) {
    case EKV_LEASE_GRANT: return op_grant(s, txn, op);
    case EKV_LEASE_KEEPALIVE: return op_keepalive(s, txn, op, rev);
    case EKV_LEASE_REVOKE: return op_revoke(s, txn, op, rev);
    case EKV_LEASE_SWEEP: return op_sweep(s, txn, op, rev);
    case EKV_LEASE_NONE: break;
    }
    op->status = ETAGKV_INTERNAL; /* not reached: apply.c checks the verb */
    return ETAGKV_OK;
}

/* ---- the sweeper
 * --------------------------------------------------------- */

/* Wake the sweeper: a deadline may now come sooner. */
static void poke(etagkv_store *s)
{
    (void)pthread_mutex_lock(&s->leases.lock);
    s->leases.poked = 1;
    (void)pthread_cond_signal(&s->leases.cv);
    (void)pthread_mutex_unlock(&s->leases.lock);
}

/* The earliest stored deadline: *any 0 when there is no lease. */
static etagkv_status next_due(etagkv_store *s, uint64_t *due, int *any)
{
    ekv_txn txn;
    uint64_t id;
    etagkv_status st = ekv_read_begin(s->env, &txn);

    *any = 0;
    if (st != ETAGKV_OK)
        return st;
    st = first_due(&txn, due, &id);
    ekv_read_end(&txn);
    *any = st == ETAGKV_OK;
    return st == ETAGKV_NOT_FOUND ? ETAGKV_OK : st;
}

/* Sleep until poked, stopped, or nap_ns passed.  Returns 1 when
 * stopping. */
static int nap(etagkv_store *s, uint64_t nap_ns)
{
    struct timespec ts = ekv_mono_deadline(ekv_mono_ns() + nap_ns);
    int stop;

    (void)pthread_mutex_lock(&s->leases.lock);
    while (!s->leases.stop && !s->leases.poked)
        if (pthread_cond_timedwait(&s->leases.cv, &s->leases.lock, &ts) != 0)
            break;
    s->leases.poked = 0;
    stop = s->leases.stop;
    (void)pthread_mutex_unlock(&s->leases.lock);
    return stop;
}

static void *sweeper_main(void *arg)
{
    etagkv_store *s = arg;
    uint64_t cap =
        s->opts.clock != NULL ? SWEEP_NAP_TEST_CLOCK_NS : SWEEP_NAP_NS;

    for (;;) {
        uint64_t due = 0, now, wait_ns = cap;
        int any = 0;
        etagkv_status st = next_due(s, &due, &any);

        now = ekv_now_ns(s);
        if (st == ETAGKV_OK && any && due <= now) {
            struct ekv_op op;

            memset(&op, 0, sizeof(op));
            op.method = ETAGKV_METHOD_DELETE;
            op.lease_verb = EKV_LEASE_SWEEP;
            st = ekv_commit(s, &op);
            if (st == ETAGKV_OK) {
                (void)pthread_mutex_lock(&s->leases.lock);
                s->leases.expired += op.lease_expired;
                st = s->leases.stop ? ETAGKV_CLOSING : ETAGKV_OK;
                (void)pthread_mutex_unlock(&s->leases.lock);
                if (st == ETAGKV_OK)
                    continue; /* more may be due */
                break;
            }
        } else if (st == ETAGKV_OK && any && due - now < cap) {
            wait_ns = due - now + NS_PER_MS;
        }
        if (nap(s, wait_ns))
            break;
    }
    return NULL;
}

etagkv_status ekv_leases_start(etagkv_store *s)
{
    struct ekv_leases *ls = &s->leases;

    /* A read-only handle restarts nothing (it sweeps nothing, and the
     * process that does has its own open): it shows deadlines as stored. */
    ls->open_ns = s->opts.read_only ? 0 : ekv_now_ns(s);
    if (ekv_cond_init_mono(&ls->cv) != 0)
        return ETAGKV_NO_MEMORY;
    if (pthread_mutex_init(&ls->lock, NULL) != 0) {
        (void)pthread_cond_destroy(&ls->cv);
        return ETAGKV_NO_MEMORY;
    }
    ls->ready = 1;
    if (s->opts.read_only)
        return ETAGKV_OK;
    if (pthread_create(&ls->sweeper, NULL, sweeper_main, s) != 0)
        return ekv_fail(ETAGKV_NO_MEMORY, "cannot start the lease sweeper");
    ls->started = 1;
    return ETAGKV_OK;
}

void ekv_leases_stop(etagkv_store *s)
{
    struct ekv_leases *ls = &s->leases;

    if (!ls->ready)
        return;
    if (ls->started) {
        (void)pthread_mutex_lock(&ls->lock);
        ls->stop = 1;
        (void)pthread_cond_signal(&ls->cv);
        (void)pthread_mutex_unlock(&ls->lock);
        (void)pthread_join(ls->sweeper, NULL);
        ls->started = 0;
    }
}

void ekv_leases_free(etagkv_store *s)
{
    struct ekv_leases *ls = &s->leases;

    if (!ls->ready)
        return;
    (void)pthread_mutex_destroy(&ls->lock);
    (void)pthread_cond_destroy(&ls->cv);
    ls->ready = 0;
}

etagkv_status ekv_leases_stats(etagkv_store *s, ekv_txn *txn, etagkv_stats *out)
{
    uint64_t next;
    etagkv_status st = counts_get(txn, &next, &out->leases);

    (void)pthread_mutex_lock(&s->leases.lock);
    out->leases_granted = s->leases.granted;
    out->leases_revoked = s->leases.revoked;
    out->leases_expired = s->leases.expired;
    (void)pthread_mutex_unlock(&s->leases.lock);
    return st;
}

/* ---- the API
 * ------------------------------------------------------------- */

/* Fill op for `call` with arg (a grant's TTL, else the lease id).  On
 * failure (a read-only store, a TTL outside the bounds, an unknown call)
 * nothing is to be queued. */
static etagkv_status lease_prepare(etagkv_store *s, etagkv_lease_call call,
                                   uint64_t arg, struct ekv_op *op)
{
    memset(op, 0, sizeof(*op));
    op->method = ETAGKV_METHOD_PUT;
    op->lease = arg;
    if (s->opts.read_only)
        return ekv_fail(ETAGKV_READ_ONLY, "the store was opened read-only "
                                          "(etagkv_options.read_only)");
    switch (call) {
    case ETAGKV_LEASE_CALL_GRANT:
        if (arg < s->opts.lease_min_ttl_ms || arg > s->opts.lease_max_ttl_ms)
            return ekv_fail(ETAGKV_INVALID_ARGUMENT,
                            "ttl_ms %llu outside [%llu, %llu]",
                            (unsigned long long)arg,
                            (unsigned long long)s->opts.lease_min_ttl_ms,
                            (unsigned long long)s->opts.lease_max_ttl_ms);
        op->lease = 0;
        op->lease_ttl_ms = arg;
        op->lease_verb = EKV_LEASE_GRANT;
        return ETAGKV_OK;
    case ETAGKV_LEASE_CALL_KEEPALIVE:
        op->lease_verb = EKV_LEASE_KEEPALIVE;
        return ETAGKV_OK;
    case ETAGKV_LEASE_CALL_REVOKE:
        op->lease_verb = EKV_LEASE_REVOKE;
        return ETAGKV_OK;
    }
    return ekv_fail(ETAGKV_INVALID_ARGUMENT, "unknown lease call %d",
                    (int)call);
}

/* After the prepared op was applied with status st: count it, wake the
 * sweeper for a new lease (its deadline may be the first), and describe
 * the outcome in *out and *revision (zeroed on failure).  Returns st. */
static etagkv_status lease_finish(etagkv_store *s, const struct ekv_op *op,
                                  etagkv_status st, etagkv_lease *out,
                                  uint64_t *revision)
{
    int revoke = op->lease_verb == EKV_LEASE_REVOKE;
    int keepalive = op->lease_verb == EKV_LEASE_KEEPALIVE;

    memset(out, 0, sizeof(*out));
    *revision = 0;
    (void)pthread_mutex_lock(&s->leases.lock);
    /* A revoke or a keepalive of a dead lease (404) expires it on the
     * spot. */
    if ((revoke || keepalive) && (st == ETAGKV_OK || st == ETAGKV_NOT_FOUND))
        s->leases.expired += op->lease_expired;
    s->leases.revoked += (uint64_t)(revoke && st == ETAGKV_OK);
    s->leases.granted +=
        (uint64_t)(op->lease_verb == EKV_LEASE_GRANT && st == ETAGKV_OK);
    (void)pthread_mutex_unlock(&s->leases.lock);
    /* A revoke deletes the keys of a dead lease too (then 404): its
     * commit's revision is the caller's all the same. */
    if (revoke && (st == ETAGKV_OK || st == ETAGKV_NOT_FOUND) && op->wrote)
        *revision = op->meta.mod_revision;
    if (st != ETAGKV_OK)
        return st;
    out->id = op->lease;
    if (op->lease_verb == EKV_LEASE_GRANT) {
        out->ttl_ms = out->remaining_ms = op->lease_ttl_ms;
        poke(s);
    } else if (op->lease_verb == EKV_LEASE_KEEPALIVE) {
        out->ttl_ms = op->lease_ttl_ms;
        out->remaining_ms = op->lease_remaining_ms;
    }
    return st;
}

/* A blocking lease call: prepare, commit with the batch, finish. */
static etagkv_status lease_call(etagkv_store *s, etagkv_lease_call call,
                                uint64_t arg, etagkv_lease *out,
                                uint64_t *revision)
{
    struct ekv_op op;
    etagkv_status st = lease_prepare(s, call, arg, &op);

    if (st != ETAGKV_OK) {
        memset(out, 0, sizeof(*out));
        *revision = 0;
        return st;
    }
    return lease_finish(s, &op, ekv_commit(s, &op), out, revision);
}

etagkv_status etagkv_lease_grant(etagkv_store *s, uint64_t ttl_ms,
                                 uint64_t *id_out)
{
    etagkv_lease l;
    uint64_t rev;
    etagkv_status st;

    ekv_clear_error();
    if (id_out != NULL)
        *id_out = 0;
    if (s == NULL || id_out == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    st = lease_call(s, ETAGKV_LEASE_CALL_GRANT, ttl_ms, &l, &rev);
    *id_out = l.id;
    return st;
}

etagkv_status etagkv_lease_keepalive(etagkv_store *s, uint64_t id,
                                     etagkv_lease *out)
{
    etagkv_lease l;
    uint64_t rev;
    etagkv_status st;

    ekv_clear_error();
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (s == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    st = lease_call(s, ETAGKV_LEASE_CALL_KEEPALIVE, id, &l, &rev);
    if (out != NULL)
        *out = l;
    return st;
}

etagkv_status etagkv_lease_revoke(etagkv_store *s, uint64_t id,
                                  uint64_t *revision_out)
{
    etagkv_lease l;
    uint64_t rev;
    etagkv_status st;

    ekv_clear_error();
    if (revision_out != NULL)
        *revision_out = 0;
    if (s == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    st = lease_call(s, ETAGKV_LEASE_CALL_REVOKE, id, &l, &rev);
    if (revision_out != NULL)
        *revision_out = rev;
    return st;
}

/* A submitted lease call: its queue entry and the caller's completion. */
struct lease_async {
    etagkv_store *s;
    struct ekv_async *a;
    etagkv_lease_done_fn done;
    void *ctx;
};

/* The completion of a submitted lease call, on a library thread: the
 * entry's op is still valid here (commit.c frees it after the call). */
static void lease_submitted(void *ctx, const etagkv_result *res)
{
    struct lease_async *la = ctx;
    etagkv_lease l;
    uint64_t rev;
    etagkv_status st =
        lease_finish(la->s, ekv_async_op(la->a), res->status, &l, &rev);

    la->done(la->ctx, st, &l, rev);
    free(la);
}

etagkv_status etagkv_lease_submit(etagkv_store *s, etagkv_lease_call call,
                                  uint64_t arg, etagkv_lease_done_fn done,
                                  void *ctx)
{
    struct lease_async *la;
    etagkv_status st;

    ekv_clear_error();
    if (s == NULL || done == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    la = calloc(1, sizeof(*la));
    if (la == NULL)
        return ETAGKV_NO_MEMORY;
    la->a = ekv_async_new(lease_submitted, la);
    st = la->a == NULL ? ETAGKV_NO_MEMORY
                       : lease_prepare(s, call, arg, ekv_async_op(la->a));
    if (st == ETAGKV_OK) {
        /* Set before queueing: the completion may run at once. */
        la->s = s;
        la->done = done;
        la->ctx = ctx;
        st = ekv_commit_async(s, la->a);
    }
    if (st != ETAGKV_OK) {
        ekv_async_free(la->a);
        free(la);
    }
    return st;
}

etagkv_status etagkv_lease_info(etagkv_store *s, uint64_t id, etagkv_lease *out,
                                etagkv_lease_key_fn fn, void *ctx)
{
    struct lease_rec l = {0, 0, 0};
    ekv_txn txn;
    uint64_t now, deadline;
    etagkv_status st;

    ekv_clear_error();
    if (s == NULL || out == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    memset(out, 0, sizeof(*out));
    st = ekv_read_begin(s->env, &txn);
    if (st != ETAGKV_OK)
        return st;
    now = ekv_now_ns(s);
    st = lease_get(&txn, id, &l);
    deadline = st == ETAGKV_OK ? deadline_of(s, &l) : 0;
    /* Past its deadline, a lease is as good as gone -- but a read-only
     * handle shows it while it is stored (0 ms left): the process that
     * sweeps may not have yet, and the store's next writable open gives
     * it its TTL again if nobody did. */
    if (st == ETAGKV_OK && deadline <= now && !s->opts.read_only)
        st = ETAGKV_NOT_FOUND;
    if (st == ETAGKV_OK) {
        out->id = id;
        out->ttl_ms = l.ttl_ms;
        out->remaining_ms = deadline > now ? (deadline - now) / NS_PER_MS : 0;
        st = list_keys(&txn, id, &out->keys, fn, ctx);
    }
    ekv_read_end(&txn);
    if (st != ETAGKV_OK)
        memset(out, 0, sizeof(*out));
    return st;
}
