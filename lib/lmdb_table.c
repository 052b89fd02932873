/*
 * lmdb_table.c -- the LMDB backend's tables: records, the revision counter,
 * idempotency entries, and cursors over them.
 *
 * A write that fails with MDB_MAP_FULL marks its transaction out_of_room,
 * so that the caller grows the map and runs the transaction again; every
 * other code becomes a status here, once (ekv_mdb_status()).
 */
#include <string.h>

#include "lmdb_env.h"

#define REVISION_KEY "etagkv.revision"

/* The status for a failed write in txn. */
static etagkv_status write_failed(ekv_txn *txn, int rc, const char *what)
{
    if (rc == MDB_MAP_FULL)
        txn->out_of_room = 1;
    return ekv_mdb_status(rc, what);
}

static MDB_dbi dbi_of(const ekv_txn *txn, enum ekv_table table)
{
    switch (table) {
    case EKV_TABLE_RECORDS: return ekv_lmdb_of(txn->env)->records;
    case EKV_TABLE_IDEMPOTENCY: return ekv_lmdb_of(txn->env)->idem;
    case EKV_TABLE_CHANGES: return ekv_lmdb_of(txn->env)->changes;
    case EKV_TABLE_LEASES: return ekv_lmdb_of(txn->env)->leases;
    }
    return ekv_lmdb_of(txn->env)
        ->records; /* not reached: every table is listed */
}

/* mdb_get() in table, as a status. */
static etagkv_status get(ekv_txn *txn, MDB_dbi dbi, const void *key,
                         size_t key_len, MDB_val *v, const char *what)
{
    MDB_val k = {key_len, (void *)key};
    int rc = mdb_get(txn->handle, dbi, &k, v);

    if (rc == MDB_NOTFOUND)
        return ETAGKV_NOT_FOUND;
    return rc == 0 ? ETAGKV_OK : ekv_mdb_status(rc, what);
}

/* mdb_put() with MDB_RESERVE: the caller encodes straight into the page,
 * so a value is copied once. */
static etagkv_status reserve_flags(ekv_txn *txn, MDB_dbi dbi, const void *key,
                                   size_t key_len, size_t bytes, void **dst,
                                   unsigned flags)
{
    MDB_val k = {key_len, (void *)key}, v = {bytes, NULL};
    int rc = mdb_put(txn->handle, dbi, &k, &v, MDB_RESERVE | flags);

    /* MDB_APPEND refuses a key not after the last one before it changes
     * anything (the transaction stays usable): put it where it goes. */
    if (rc == MDB_KEYEXIST && (flags & MDB_APPEND) != 0)
        rc = mdb_put(txn->handle, dbi, &k, &v, MDB_RESERVE);

    if (rc != 0)
        return write_failed(txn, rc, "mdb_put");
    *dst = v.mv_data;
    return ETAGKV_OK;
}

static etagkv_status reserve(ekv_txn *txn, MDB_dbi dbi, const void *key,
                             size_t key_len, size_t bytes, void **dst)
{
    return reserve_flags(txn, dbi, key, key_len, bytes, dst, 0);
}

/* The number of entries of a table. */
static etagkv_status entry_count(ekv_txn *txn, MDB_dbi dbi, uint64_t *n)
{
    MDB_stat ms;
    int rc = mdb_stat(txn->handle, dbi, &ms);

    if (rc != 0)
        return ekv_mdb_status(rc, "mdb_stat");
    *n = ms.ms_entries;
    return ETAGKV_OK;
}

/* ---- records and the revision counter ------------------------------------ */

etagkv_status ekv_lmdb_record_get(ekv_txn *txn, const void *key, size_t key_len,
                                  ekv_record *r)
{
    MDB_val v;
    etagkv_status st =
        get(txn, ekv_lmdb_of(txn->env)->records, key, key_len, &v, "mdb_get");

    if (st != ETAGKV_OK)
        return st;
    if (ekv_record_decode(v.mv_data, v.mv_size, r) != ETAGKV_OK)
        return ekv_fail(ETAGKV_CORRUPT, "record of %zu bytes fails to decode",
                        v.mv_size);
    return ETAGKV_OK;
}

etagkv_status ekv_lmdb_record_reserve(ekv_txn *txn, const void *key,
                                      size_t key_len, size_t bytes, void **dst)
{
    return reserve(txn, ekv_lmdb_of(txn->env)->records, key, key_len, bytes,
                   dst);
}

etagkv_status ekv_lmdb_record_delete(ekv_txn *txn, const void *key,
                                     size_t key_len)
{
    MDB_val k = {key_len, (void *)key};
    int rc = mdb_del(txn->handle, ekv_lmdb_of(txn->env)->records, &k, NULL);

    return rc == 0 ? ETAGKV_OK : write_failed(txn, rc, "mdb_del");
}

/* A counter of the main database under name (absent: *n is 0). */
static etagkv_status counter_get(ekv_txn *txn, const char *name, uint64_t *n)
{
    MDB_val v;
    etagkv_status st = get(txn, ekv_lmdb_of(txn->env)->main, name, strlen(name),
                           &v, "mdb_get(counter)");

    if (st == ETAGKV_NOT_FOUND) {
        *n = 0;
        return ETAGKV_OK;
    }
    if (st != ETAGKV_OK)
        return st;
    if (v.mv_size != 8)
        return ekv_fail(ETAGKV_CORRUPT, "counter %s of %zu bytes", name,
                        v.mv_size);
    *n = ekv_get_le64(v.mv_data);
    return ETAGKV_OK;
}

static etagkv_status counter_put(ekv_txn *txn, const char *name, uint64_t n)
{
    uint8_t buf[8];
    MDB_val k = {strlen(name), (void *)name}, v = {8, buf};
    int rc;

    ekv_put_le64(buf, n);
    rc = mdb_put(txn->handle, ekv_lmdb_of(txn->env)->main, &k, &v, 0);
    return rc == 0 ? ETAGKV_OK : write_failed(txn, rc, "mdb_put(counter)");
}

etagkv_status ekv_lmdb_revision_get(ekv_txn *txn, uint64_t *rev)
{
    return counter_get(txn, REVISION_KEY, rev);
}

etagkv_status ekv_lmdb_revision_put(ekv_txn *txn, uint64_t rev)
{
    return counter_put(txn, REVISION_KEY, rev);
}

/* ---- the change log ------------------------------------------------------ */

etagkv_status ekv_lmdb_change_reserve(ekv_txn *txn, const void *key,
                                      size_t key_len, size_t bytes, void **dst)
{
    /* The log's keys grow with every entry (changes.c): appended, LMDB
     * goes straight to the last leaf instead of searching, and a full
     * last page splits off an empty one instead of halving, so the log's
     * pages stay full and a commit dirties fewer of them. */
    return reserve_flags(txn, ekv_lmdb_of(txn->env)->changes, key, key_len,
                         bytes, dst, MDB_APPEND);
}

etagkv_status ekv_lmdb_change_count(ekv_txn *txn, uint64_t *n)
{
    return entry_count(txn, ekv_lmdb_of(txn->env)->changes, n);
}

etagkv_status ekv_lmdb_change_floor_get(ekv_txn *txn, uint64_t *floor)
{
    MDB_val v;
    etagkv_status st =
        get(txn, ekv_lmdb_of(txn->env)->main, EKV_CHANGES_FLOOR_KEY,
            sizeof(EKV_CHANGES_FLOOR_KEY) - 1, &v, "mdb_get(changes floor)");

    if (st == ETAGKV_NOT_FOUND) /* never written: see backend.h */
        return ekv_lmdb_revision_get(txn, floor);
    return st == ETAGKV_OK ? counter_get(txn, EKV_CHANGES_FLOOR_KEY, floor)
                           : st;
}

etagkv_status ekv_lmdb_change_floor_put(ekv_txn *txn, uint64_t floor)
{
    return counter_put(txn, EKV_CHANGES_FLOOR_KEY, floor);
}

/* ---- idempotency entries ------------------------------------------------- */

etagkv_status ekv_lmdb_idem_entry_get(ekv_txn *txn, const void *key,
                                      size_t key_len, ekv_val *entry)
{
    MDB_val v;
    etagkv_status st = get(txn, ekv_lmdb_of(txn->env)->idem, key, key_len, &v,
                           "mdb_get(idempotency)");

    if (st == ETAGKV_OK) {
        entry->data = v.mv_data;
        entry->len = v.mv_size;
    }
    return st;
}

etagkv_status ekv_lmdb_idem_entry_reserve(ekv_txn *txn, const void *key,
                                          size_t key_len, size_t bytes,
                                          void **dst)
{
    return reserve(txn, ekv_lmdb_of(txn->env)->idem, key, key_len, bytes, dst);
}

etagkv_status ekv_lmdb_idem_entry_count(ekv_txn *txn, uint64_t *n)
{
    return entry_count(txn, ekv_lmdb_of(txn->env)->idem, n);
}

/* ---- the lease table ---------------------------------------------------- */

etagkv_status ekv_lmdb_lease_entry_get(ekv_txn *txn, const void *key,
                                       size_t key_len, ekv_val *entry)
{
    MDB_val v;
    etagkv_status st;

    if (ekv_lmdb_of(txn->env)->leases_absent)
        return ETAGKV_NOT_FOUND;
    st = get(txn, ekv_lmdb_of(txn->env)->leases, key, key_len, &v,
             "mdb_get(lease)");
    if (st == ETAGKV_OK) {
        entry->data = v.mv_data;
        entry->len = v.mv_size;
    }
    return st;
}

etagkv_status ekv_lmdb_lease_entry_reserve(ekv_txn *txn, const void *key,
                                           size_t key_len, size_t bytes,
                                           void **dst)
{
    return reserve(txn, ekv_lmdb_of(txn->env)->leases, key, key_len, bytes,
                   dst);
}

etagkv_status ekv_lmdb_lease_entry_count(ekv_txn *txn, uint64_t *n)
{
    *n = 0;
    if (ekv_lmdb_of(txn->env)->leases_absent)
        return ETAGKV_OK;
    return entry_count(txn, ekv_lmdb_of(txn->env)->leases, n);
}

etagkv_status ekv_lmdb_lease_entry_delete(ekv_txn *txn, const void *key,
                                          size_t key_len)
{
    MDB_val k = {key_len, (void *)key};
    int rc = mdb_del(txn->handle, ekv_lmdb_of(txn->env)->leases, &k, NULL);

    if (rc == MDB_NOTFOUND)
        return ETAGKV_NOT_FOUND;
    return rc == 0 ? ETAGKV_OK : write_failed(txn, rc, "mdb_del(lease)");
}

/* ---- cursors ------------------------------------------------------------- */

etagkv_status ekv_lmdb_cursor_open(ekv_txn *txn, enum ekv_table table,
                                   ekv_cursor *cur)
{
    MDB_cursor *c;
    int rc;

    if ((table == EKV_TABLE_CHANGES && ekv_lmdb_of(txn->env)->changes_absent) ||
        (table == EKV_TABLE_LEASES && ekv_lmdb_of(txn->env)->leases_absent))
        return ETAGKV_NOT_FOUND; /* an empty table: see lmdb_env.h */
    rc = mdb_cursor_open(txn->handle, dbi_of(txn, table), &c);
    if (rc != 0)
        return ekv_mdb_status(rc, "mdb_cursor_open");
    cur->txn = txn;
    cur->handle = c;
    return ETAGKV_OK;
}

void ekv_lmdb_cursor_close(ekv_cursor *cur)
{
    mdb_cursor_close(cur->handle);
}

/* mdb_cursor_get() as a status, with the entry in *k and *v. */
static etagkv_status cursor_get(ekv_cursor *cur, MDB_val *mk, MDB_cursor_op op,
                                ekv_val *k, ekv_val *v)
{
    MDB_val mv;
    int rc = mdb_cursor_get(cur->handle, mk, &mv, op);

    if (rc == MDB_NOTFOUND)
        return ETAGKV_NOT_FOUND;
    if (rc != 0)
        return ekv_mdb_status(rc, "mdb_cursor_get");
    k->data = mk->mv_data;
    k->len = mk->mv_size;
    v->data = mv.mv_data;
    v->len = mv.mv_size;
    return ETAGKV_OK;
}

etagkv_status ekv_lmdb_cursor_seek(ekv_cursor *cur, const void *key,
                                   size_t key_len, ekv_val *k, ekv_val *v)
{
    MDB_val mk = {key_len, (void *)key};

    return cursor_get(cur, &mk, key_len > 0 ? MDB_SET_RANGE : MDB_FIRST, k, v);
}

etagkv_status ekv_lmdb_cursor_next(ekv_cursor *cur, ekv_val *k, ekv_val *v)
{
    MDB_val mk;

    return cursor_get(cur, &mk, MDB_NEXT, k, v);
}

etagkv_status ekv_lmdb_cursor_delete(ekv_cursor *cur)
{
    int rc = mdb_cursor_del(cur->handle, 0);

    return rc == 0 ? ETAGKV_OK : write_failed(cur->txn, rc, "mdb_cursor_del");
}
