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
 * A transaction's entry (version 2) has the same first 32 bytes (its
 * status is OK or CONFLICT), zeroes to byte 96, then the outcome of every
 * operation in txn.c's layout (ekv_txn_entry_encode()); bytes 32..96 of a
 * single write's entry are the meta block both share
 * (ekv_idem_meta_encode()).  The fingerprints of the two kinds never
 * collide, so a key reused across kinds is a mismatch (422).
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
#define ENTRY_VERSION_TXN 2 /* a transaction's outcome follows the header */
#define ENTRY_HEADER_BYTES 96

/* Per committing transaction, and again per entry it records: entries
 * looked at, and at most deleted.  Deleting up to four per entry recorded
 * lets the purge outpace any stream of new keys; looking at 8 keeps the
 * expired share of the table near 1/16 in a steady state of keyed writes
 * (16 looked at per keyed commit, one of them expired on average), while
 * each look costs a cursor step in every commit (16 per keyed write was
 * 18 % of its time in a profile where nothing had expired yet). */
#define PURGE_LOOK 8
#define PURGE_DROP 4

/* A table found empty is counted again only after this many commits that
 * recorded nothing: counting it (mdb_stat, which looks the table up in the
 * main database) was 2.8 % of a nosync put that never uses a key.  Only
 * another process's keys can fill it meanwhile; their purge waits at most
 * this long, and that process purges in its own commits. */
#define EMPTY_RECOUNT 64

/* When the table is full, a new key looks at (and may delete) this many. */
#define PURGE_FULL 1024

static int expired(const etagkv_store *s, uint64_t recorded, uint64_t now)
{
    return now > recorded &&
           now - recorded > ekv_s_to_ns(s->opts.idempotency_retention_s);
}

static size_t entry_size(const struct ekv_op *op)
{
    if (op->txn != NULL)
        return ENTRY_HEADER_BYTES + ekv_txn_entry_size(op);
    return ENTRY_HEADER_BYTES +
           (op->meta.exists ? strlen(op->meta.content_type) : 0);
}

/* The 64 bytes of a meta at p: value_bytes, created_ns, modified_ns,
 * create_revision, mod_revision, version, then the ETag hash (zero when
 * the key is absent). */
void ekv_idem_meta_encode(uint8_t *p, const etagkv_meta *m,
                          const uint8_t hash[EKV_HASH_BYTES])
{
    ekv_put_le64(p, m->value_bytes);
    ekv_put_le64(p + 8, m->created_ns);
    ekv_put_le64(p + 16, m->modified_ns);
    ekv_put_le64(p + 24, m->create_revision);
    ekv_put_le64(p + 32, m->mod_revision);
    ekv_put_le64(p + 40, m->version);
    if (m->exists)
        memcpy(p + 48, hash, EKV_HASH_BYTES);
    else
        memset(p + 48, 0, EKV_HASH_BYTES);
}

void ekv_idem_meta_decode(const uint8_t *p, int exists, etagkv_meta *m,
                          uint8_t hash[EKV_HASH_BYTES])
{
    memset(m, 0, sizeof(*m));
    m->exists = exists;
    m->value_bytes = ekv_get_le64(p);
    m->created_ns = ekv_get_le64(p + 8);
    m->modified_ns = ekv_get_le64(p + 16);
    m->create_revision = ekv_get_le64(p + 24);
    m->mod_revision = ekv_get_le64(p + 32);
    m->version = ekv_get_le64(p + 40);
    if (exists) {
        memcpy(hash, p + 48, EKV_HASH_BYTES);
        ekv_etag_format(hash, m->etag);
    }
}

/* The header common to both kinds of entry: version, status, recorded at,
 * fingerprint.  A single write's outcome follows in the header itself; a
 * transaction's (version 2) after it, in txn.c's layout. */
static void header_encode(uint8_t *p, const struct ekv_op *op, uint64_t now)
{
    memset(p, 0, ENTRY_HEADER_BYTES);
    p[0] = op->txn != NULL ? ENTRY_VERSION_TXN : ENTRY_VERSION;
    ekv_put_le16(p + 2, (uint16_t)op->status);
    ekv_put_le64(p + 8, now);
    memcpy(p + 16, op->fingerprint, EKV_HASH_BYTES);
}

static void entry_encode(uint8_t *p, const struct ekv_op *op, uint64_t now)
{
    const etagkv_meta *m = &op->meta;
    size_t ct = m->exists ? strlen(m->content_type) : 0;

    header_encode(p, op, now);
    if (op->txn != NULL) {
        ekv_txn_entry_encode(op, p + ENTRY_HEADER_BYTES);
        return;
    }
    p[1] = (uint8_t)(m->exists ? 1 : 0);
    ekv_put_le16(p + 4, (uint16_t)ct);
    ekv_idem_meta_encode(p + 32, m, op->meta_hash);
    memcpy(p + ENTRY_HEADER_BYTES, m->content_type, ct);
}

/* Decode an entry's outcome into op (status, meta, replayed).  0, or -1
 * when the entry is not one we can read. */
static int entry_decode(const uint8_t *p, size_t len, struct ekv_op *op)
{
    size_t ct;

    if (len < ENTRY_HEADER_BYTES ||
        p[0] != (op->txn != NULL ? ENTRY_VERSION_TXN : ENTRY_VERSION))
        return -1;
    op->status = (etagkv_status)ekv_get_le16(p + 2);
    if (op->txn != NULL) {
        if (ekv_txn_entry_decode(op, p + ENTRY_HEADER_BYTES,
                                 len - ENTRY_HEADER_BYTES) != 0)
            return -1;
        op->replayed = 1;
        return 0;
    }
    ct = ekv_get_le16(p + 4);
    if (ct > ETAGKV_CONTENT_TYPE_MAX || len != ENTRY_HEADER_BYTES + ct)
        return -1;
    ekv_idem_meta_decode(p + 32, p[1] & 1, &op->meta, op->meta_hash);
    memcpy(op->meta.content_type, p + ENTRY_HEADER_BYTES, ct);
    op->replayed = 1;
    return 0;
}

/* An entry past its retention, or one we cannot read (garbage): purged,
 * and never replayed. */
static int stale(const etagkv_store *s, const ekv_val *entry, uint64_t now)
{
    return entry->len < ENTRY_HEADER_BYTES ||
           expired(s, ekv_get_le64((const uint8_t *)entry->data + 8), now);
}

/* From cur's first entry *k, *v (st ETAGKV_OK) on: look at up to `look`
 * entries and delete the expired ones, at most `drop`.  Leaves the cursor
 * on the next entry to look at (ETAGKV_OK) or past the end
 * (ETAGKV_NOT_FOUND), or returns the failure. */
static etagkv_status purge_walk(etagkv_store *s, ekv_cursor *cur,
                                etagkv_status st, ekv_val *k, ekv_val *v,
                                size_t look, size_t drop)
{
    uint64_t now = ekv_now_ns(s);

    for (size_t i = 0; i < look && drop > 0 && st == ETAGKV_OK; i++) {
        /* After a deletion the cursor's next is the entry that followed. */
        /* A key longer than any Idempotency-Key is garbage too (on etcd
         * any client can write one). */
        if (k->len > ETAGKV_IDEMPOTENCY_KEY_MAX || stale(s, v, now)) {
            st = ekv_cursor_delete(cur);
            drop--;
        }
        if (st == ETAGKV_OK)
            st = ekv_cursor_next(cur, k, v);
    }
    return st;
}

/* Look at up to `look` entries from where the last purge stopped and delete
 * the expired ones, at most `drop`. */
static etagkv_status purge(etagkv_store *s, ekv_txn *txn, size_t look,
                           size_t drop)
{
    struct ekv_idem *idem = &s->idem;
    ekv_cursor cur;
    ekv_val k, v;
    etagkv_status st = ekv_cursor_open(txn, EKV_TABLE_IDEMPOTENCY, &cur);

    if (st != ETAGKV_OK)
        return st;
    st = ekv_cursor_seek(&cur, idem->purge_key, idem->purge_len, &k, &v);
    st = purge_walk(s, &cur, st, &k, &v, look, drop);
    if (st == ETAGKV_OK) {
        /* A key too long to be one is purged when its turn comes: resume
         * at its start, which is no later. */
        idem->purge_len =
            k.len < sizeof(idem->purge_key) ? k.len : sizeof(idem->purge_key);
        memcpy(idem->purge_key, k.data, idem->purge_len);
    } else if (st == ETAGKV_NOT_FOUND) {
        idem->purge_len = 0; /* wrap around */
        st = ETAGKV_OK;
    }
    ekv_cursor_close(&cur);
    return st;
}

static etagkv_status table_full(etagkv_store *s, ekv_txn *txn, int *full)
{
    uint64_t n = 0;
    etagkv_status st = ekv_idem_entry_count(txn, &n);

    *full = st == ETAGKV_OK && n >= s->opts.idempotency_max_keys;
    return st;
}

/* Answer op from its live entry: the recorded outcome, or a mismatch. */
static void replay(struct ekv_op *op, const ekv_val *entry)
{
    if (memcmp((const uint8_t *)entry->data + 16, op->fingerprint,
               EKV_HASH_BYTES) != 0) {
        op->status = ETAGKV_IDEMPOTENCY_MISMATCH;
        snprintf(op->detail, sizeof(op->detail),
                 "idempotency key already used for another request");
        return;
    }
    if (entry_decode(entry->data, entry->len, op) != 0) {
        op->status = ETAGKV_CORRUPT;
        snprintf(op->detail, sizeof(op->detail),
                 "idempotency entry fails to decode");
    }
}

/* A new key: refuse op (handled) if the table is full even after purging
 * what has expired. */
static etagkv_status admit_new_key(etagkv_store *s, ekv_txn *txn,
                                   struct ekv_op *op, int *handled)
{
    int full;
    etagkv_status st = table_full(s, txn, &full);

    if (st == ETAGKV_OK && full) {
        int from_start = s->idem.purge_len == 0;

        st = purge(s, txn, PURGE_FULL, PURGE_FULL);
        if (st == ETAGKV_OK)
            st = table_full(s, txn, &full);
        /* A purge that began where the rolling one stopped and ran off the
         * table's end has not seen the entries before that point (the
         * table is in key order, so expired ones may be anywhere): look
         * there too before refusing.  Each look is bounded (PURGE_FULL),
         * so a table much larger than that may still refuse while expired
         * entries sit beyond both looks; the rolling purge gets to them. */
        if (st == ETAGKV_OK && full && !from_start && s->idem.purge_len == 0) {
            st = purge(s, txn, PURGE_FULL, PURGE_FULL);
            if (st == ETAGKV_OK)
                st = table_full(s, txn, &full);
        }
    }
    if (st == ETAGKV_OK && full) {
        *handled = 1;
        op->status = ETAGKV_IDEMPOTENCY_FULL;
        snprintf(op->detail, sizeof(op->detail),
                 "%llu idempotency keys retained",
                 (unsigned long long)s->opts.idempotency_max_keys);
    }
    return st;
}

etagkv_status ekv_idem_check(etagkv_store *s, ekv_txn *txn, struct ekv_op *op,
                             int *handled)
{
    ekv_val entry;
    etagkv_status st =
        ekv_idem_entry_get(txn, op->idem_key, op->idem_len, &entry);

    *handled = 0;
    if (st == ETAGKV_OK && !stale(s, &entry, ekv_now_ns(s))) {
        *handled = 1;
        replay(op, &entry);
        return ETAGKV_OK;
    }
    if (st == ETAGKV_NOT_FOUND)
        return admit_new_key(s, txn, op, handled);
    return st; /* ETAGKV_OK: a stale entry, overwritten when recorded */
}

etagkv_status ekv_idem_record(etagkv_store *s, ekv_txn *txn,
                              const struct ekv_op *op)
{
    void *dst;
    etagkv_status st = ekv_idem_entry_reserve(txn, op->idem_key, op->idem_len,
                                              entry_size(op), &dst);

    if (st == ETAGKV_OK)
        entry_encode(dst, op, ekv_now_ns(s));
    return st;
}

etagkv_status ekv_idem_prefetch(etagkv_store *s, ekv_txn *txn, size_t keyed)
{
    /* Nothing to look at when ekv_idem_maintain() will skip the count;
     * else the purge's walk (recorded <= keyed) and its next step. */
    if (keyed == 0 && s->idem.empty_skips > 0)
        return ETAGKV_OK;
    return ekv_prefetch(txn, EKV_TABLE_IDEMPOTENCY, s->idem.purge_key,
                        s->idem.purge_len, NULL, 0,
                        PURGE_LOOK * (keyed + 1) + 1);
}

etagkv_status ekv_idem_maintain(etagkv_store *s, ekv_txn *txn, size_t recorded)
{
    uint64_t n = 1;
    etagkv_status st = ETAGKV_OK;

    /* A transaction that recorded an entry knows the table is not empty. */
    if (recorded == 0 && s->idem.empty_skips > 0) {
        s->idem.empty_skips--;
        return ETAGKV_OK;
    }
    if (recorded == 0)
        st = ekv_idem_entry_count(txn, &n);
    if (st != ETAGKV_OK)
        return st;
    if (n == 0) {
        s->idem.empty_skips = EMPTY_RECOUNT - 1;
        return ETAGKV_OK;
    }
    s->idem.empty_skips = 0;
    return purge(s, txn, PURGE_LOOK * (recorded + 1),
                 PURGE_DROP * (recorded + 1));
}
