/*
 * idem.c -- exactly-once writes with an idempotency key (DESIGN §2,
 * draft-ietf-httpapi-idempotency-key-header).
 *
 * The named database "idempotency" maps an idempotency key to the outcome
 * of the first execution of the write that carried it, recorded in the same
 * transaction as the write.  A repeat with the same key and the same
 * request fingerprint gets the recorded outcome back and writes nothing.
 *
 * Entry layout, version 1, little-endian:
 *
 *   0  u8   entry version (1)        32  u64 value_bytes
 *   1  u8   flags: 1 = record exists 40  u64 created_ns
 *   2  u16  status                   48  u64 modified_ns
 *   4  u16  content type length      56  u64 create_revision
 *   6  u16  reserved                 64  u64 mod_revision
 *   8  u64  recorded at (ns)         72  u64 version
 *  16  16B  request fingerprint      80  16B ETag hash
 *  96       content type bytes
 *
 * Expired entries are purged a few at a time inside write transactions that
 * commit anyway, by a scan in key order that resumes where the last one
 * stopped, so no write ever pays for a large purge.  The budget grows with
 * the entries a transaction records, so that purging keeps pace with a
 * batch of many keyed writes, and deleting is bounded apart from looking,
 * because every deletion dirties pages the commit must write.
 */
#include <stdio.h>
#include <string.h>

#include "store.h"

#define ENTRY_VERSION 1
#define ENTRY_HEADER 96

/* Per committing transaction, and again per entry it records: entries
 * looked at, and at most deleted.  Deleting up to four per entry recorded
 * lets the purge outpace any stream of new keys; looking at 8 keeps the
 * expired share of the table near 1/16 in a steady state of keyed writes
 * (16 looked at per keyed commit, one of them expired on average), while
 * each look costs a cursor step in every commit (16 per keyed write was
 * 18 % of its time in a profile where nothing had expired yet). */
#define PURGE_LOOK 8
#define PURGE_DROP 4

/* When the table is full, a new key looks at (and may delete) this many. */
#define PURGE_FULL 1024

static uint64_t retention_ns(const etagkv_store *s)
{
    uint64_t r = s->opts.idempotency_retention_s;

    return r > UINT64_MAX / 1000000000u ? UINT64_MAX : r * 1000000000u;
}

static int expired(const etagkv_store *s, uint64_t recorded, uint64_t now)
{
    return now > recorded && now - recorded > retention_ns(s);
}

static size_t entry_size(const struct ekv_op *op)
{
    return ENTRY_HEADER + (op->meta.exists ? strlen(op->meta.content_type) : 0);
}

static void entry_encode(uint8_t *p, const struct ekv_op *op, uint64_t now)
{
    const etagkv_meta *m = &op->meta;
    size_t ct = m->exists ? strlen(m->content_type) : 0;

    memset(p, 0, ENTRY_HEADER);
    p[0] = ENTRY_VERSION;
    p[1] = (uint8_t)(m->exists ? 1 : 0);
    ekv_put_le16(p + 2, (uint16_t)op->status);
    ekv_put_le16(p + 4, (uint16_t)ct);
    ekv_put_le64(p + 8, now);
    memcpy(p + 16, op->fingerprint, EKV_HASH_BYTES);
    ekv_put_le64(p + 32, m->value_bytes);
    ekv_put_le64(p + 40, m->created_ns);
    ekv_put_le64(p + 48, m->modified_ns);
    ekv_put_le64(p + 56, m->create_revision);
    ekv_put_le64(p + 64, m->mod_revision);
    ekv_put_le64(p + 72, m->version);
    if (m->exists) {
        uint8_t hash[EKV_HASH_BYTES];

        (void)ekv_etag_parse_own(m->etag, strlen(m->etag), hash);
        memcpy(p + 80, hash, EKV_HASH_BYTES);
        memcpy(p + ENTRY_HEADER, m->content_type, ct);
    }
}

/* Decode an entry's outcome into op (status, meta, replayed). */
static int entry_decode(const uint8_t *p, size_t len, struct ekv_op *op)
{
    size_t ct;

    if (len < ENTRY_HEADER || p[0] != ENTRY_VERSION)
        return -1;
    ct = ekv_get_le16(p + 4);
    if (ct > ETAGKV_CONTENT_TYPE_MAX || len != ENTRY_HEADER + ct)
        return -1;
    memset(&op->meta, 0, sizeof(op->meta));
    op->status = (etagkv_status)ekv_get_le16(p + 2);
    op->meta.exists = p[1] & 1;
    op->meta.value_bytes = ekv_get_le64(p + 32);
    op->meta.created_ns = ekv_get_le64(p + 40);
    op->meta.modified_ns = ekv_get_le64(p + 48);
    op->meta.create_revision = ekv_get_le64(p + 56);
    op->meta.mod_revision = ekv_get_le64(p + 64);
    op->meta.version = ekv_get_le64(p + 72);
    if (op->meta.exists) {
        ekv_etag_format(p + 80, op->meta.etag);
        memcpy(op->meta.content_type, p + ENTRY_HEADER, ct);
    }
    op->replayed = 1;
    return 0;
}

/* Look at up to `look` entries from where the last purge stopped and delete
 * the expired ones, at most `drop`.  Returns an LMDB code. */
int ekv_idem_purge(etagkv_store *s, MDB_txn *txn, size_t look, size_t drop)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t now = ekv_now_ns(s);
    int rc = mdb_cursor_open(txn, s->idem, &cur);

    if (rc != 0)
        return rc;
    k.mv_size = s->purge_len;
    k.mv_data = s->purge_key;
    rc = s->purge_len > 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
                          : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (size_t i = 0; i < look && drop > 0 && rc == 0; i++) {
        const uint8_t *p = v.mv_data;

        /* An entry we cannot read is garbage: purge it too.  After a
         * deletion the cursor's next is the entry that followed. */
        if (v.mv_size < ENTRY_HEADER || expired(s, ekv_get_le64(p + 8), now)) {
            rc = mdb_cursor_del(cur, 0);
            drop--;
        }
        if (rc == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc == 0) {
        memcpy(s->purge_key, k.mv_data, k.mv_size);
        s->purge_len = k.mv_size;
    } else if (rc == MDB_NOTFOUND) {
        s->purge_len = 0; /* wrap around */
        rc = 0;
    }
    mdb_cursor_close(cur);
    return rc;
}

static int table_full(etagkv_store *s, MDB_txn *txn, int *full)
{
    MDB_stat ms;
    int rc = mdb_stat(txn, s->idem, &ms);

    *full = rc == 0 && ms.ms_entries >= s->opts.idempotency_max_keys;
    return rc;
}

/* Before applying op: if its idempotency key has a live entry, answer op
 * from it (replay, or mismatch) and set *handled.  A new key that does not
 * fit the table is refused (handled, ETAGKV_IDEMPOTENCY_FULL).  Returns an
 * LMDB code. */
int ekv_idem_check(etagkv_store *s, MDB_txn *txn, struct ekv_op *op,
                   int *handled)
{
    MDB_val k = {op->idem_len, (void *)op->idem_key}, v;
    int rc = mdb_get(txn, s->idem, &k, &v), full;

    *handled = 0;
    if (rc == 0 && v.mv_size >= ENTRY_HEADER &&
        !expired(s, ekv_get_le64((const uint8_t *)v.mv_data + 8),
                 ekv_now_ns(s))) {
        *handled = 1;
        if (memcmp((const uint8_t *)v.mv_data + 16, op->fingerprint,
                   EKV_HASH_BYTES) != 0) {
            op->status = ETAGKV_IDEMPOTENCY_MISMATCH;
            snprintf(op->detail, sizeof(op->detail),
                     "idempotency key already used for another request");
            return 0;
        }
        if (entry_decode(v.mv_data, v.mv_size, op) != 0) {
            op->status = ETAGKV_CORRUPT;
            snprintf(op->detail, sizeof(op->detail),
                     "idempotency entry fails to decode");
        }
        return 0;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    if (rc == MDB_NOTFOUND) {
        if ((rc = table_full(s, txn, &full)) != 0)
            return rc;
        if (full && (rc = ekv_idem_purge(s, txn, PURGE_FULL, PURGE_FULL)) == 0)
            rc = table_full(s, txn, &full);
        if (rc == 0 && full) {
            *handled = 1;
            op->status = ETAGKV_IDEMPOTENCY_FULL;
            snprintf(op->detail, sizeof(op->detail),
                     "%llu idempotency keys retained",
                     (unsigned long long)s->opts.idempotency_max_keys);
        }
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* After applying op: record its outcome under its idempotency key, in the
 * same transaction.  Returns an LMDB code. */
int ekv_idem_record(etagkv_store *s, MDB_txn *txn, const struct ekv_op *op)
{
    MDB_val k = {op->idem_len, (void *)op->idem_key}, v;
    int rc;

    v.mv_size = entry_size(op);
    v.mv_data = NULL;
    rc = mdb_put(txn, s->idem, &k, &v, MDB_RESERVE);
    if (rc == 0)
        entry_encode(v.mv_data, op, ekv_now_ns(s));
    return rc;
}

/* Purge a little if the transaction commits anyway and the table is not
 * empty; `recorded` is the number of entries the transaction recorded. */
int ekv_idem_maintain(etagkv_store *s, MDB_txn *txn, size_t recorded)
{
    MDB_stat ms;
    int rc = mdb_stat(txn, s->idem, &ms);

    if (rc != 0 || ms.ms_entries == 0)
        return rc;
    return ekv_idem_purge(s, txn, PURGE_LOOK * (recorded + 1),
                          PURGE_DROP * (recorded + 1));
}
