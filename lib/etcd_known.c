/*
 * etcd_known.c -- what a handle's own write transactions last saw of the
 * keys they read and wrote, with the mod_revisions etcd gave them, so that
 * the next write transaction can decide without reading them again: a
 * conditional put whose record, counters and revision are all known is
 * one request to etcd, its commit (docs/design.md, "A commit without its
 * read").
 *
 * Only a guess, never an answer.  Every key a transaction takes from here
 * joins its read set with the mod_revision remembered, and the commit
 * compares it: an entry gone stale (another front end wrote the key) makes
 * the commit fail, and the batch runs again on a fresh read, so it can
 * delay an answer, never change one.  A transaction that ends up writing
 * nothing has its reads compared all the same (ekv_etcd_write_settle()).
 *
 * Records, lease entries and the counters (P/r/, P/l/, P/m/) are kept,
 * values up to KNOWN_VAL_MAX bytes; the change log's and idempotency
 * table's keys are new at every write and would only push the others out.
 * A chained hash table bounded in entries and bytes: when full, the first
 * entry of the bucket under a rotating cursor makes room.  Used under the
 * handle's write lock only (etcd_env.h).
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "etcd_env.h"

#define KNOWN_BUCKETS 16384 /* a power of two */
#define KNOWN_MAX_ENTRIES EKV_ETCD_KNOWN_MAX_ENTRIES
#define KNOWN_MAX_BYTES EKV_ETCD_KNOWN_MAX_BYTES
#define KNOWN_VAL_MAX EKV_ETCD_KNOWN_VAL_MAX

struct known_entry {
    struct known_entry *next;
    uint64_t hash;
    struct ekv_etcd_known_item item; /* key and val point into bytes */
    unsigned char bytes[];
};

struct ekv_etcd_known {
    struct known_entry **buckets;
    size_t n, bytes;
    size_t evict_at; /* the bucket that makes room next */
};

etagkv_status ekv_etcd_known_new(struct ekv_etcd_known **out)
{
    struct ekv_etcd_known *k = calloc(1, sizeof(*k));

    *out = NULL;
    if (k == NULL)
        return ETAGKV_NO_MEMORY;
    k->buckets = calloc(KNOWN_BUCKETS, sizeof(*k->buckets));
    if (k->buckets == NULL) {
        free(k);
        return ETAGKV_NO_MEMORY;
    }
    *out = k;
    return ETAGKV_OK;
}

static size_t entry_bytes(const struct known_entry *e)
{
    return sizeof(*e) + e->item.key_len + e->item.val_len;
}

/* Unlink and free *at. */
static void drop(struct ekv_etcd_known *k, struct known_entry **at)
{
    struct known_entry *e = *at;

    *at = e->next;
    k->n--;
    k->bytes -= entry_bytes(e);
    free(e);
}

size_t ekv_etcd_known_count(const struct ekv_etcd_known *k, size_t *bytes)
{
    *bytes = k->bytes;
    return k->n;
}

void ekv_etcd_known_clear(struct ekv_etcd_known *k)
{
    if (k == NULL)
        return;
    for (size_t b = 0; b < KNOWN_BUCKETS; b++)
        while (k->buckets[b] != NULL)
            drop(k, &k->buckets[b]);
}

void ekv_etcd_known_free(struct ekv_etcd_known *k)
{
    if (k == NULL)
        return;
    ekv_etcd_known_clear(k);
    free(k->buckets);
    free(k);
}

/* Where key's entry is linked from (*result NULL: not there). */
static struct known_entry **slot(struct ekv_etcd_known *k, const char *key,
                                 size_t key_len, uint64_t hash)
{
    struct known_entry **at = &k->buckets[hash & (KNOWN_BUCKETS - 1)];

    while (*at != NULL &&
           ((*at)->hash != hash || (*at)->item.key_len != key_len ||
            memcmp((*at)->item.key, key, key_len) != 0))
        at = &(*at)->next;
    return at;
}

const struct ekv_etcd_known_item *
ekv_etcd_known_get(struct ekv_etcd_known *k, const char *key, size_t key_len)
{
    struct known_entry *e = *slot(k, key, key_len, XXH3_64bits(key, key_len));

    return e != NULL ? &e->item : NULL;
}

void ekv_etcd_known_forget(struct ekv_etcd_known *k, const char *key,
                           size_t key_len)
{
    struct known_entry **at = slot(k, key, key_len, XXH3_64bits(key, key_len));

    if (*at != NULL)
        drop(k, at);
}

/* Drop one entry, from the next non-empty bucket at the cursor. */
static void make_room(struct ekv_etcd_known *k)
{
    for (size_t tries = 0; tries < KNOWN_BUCKETS; tries++) {
        size_t b = k->evict_at++ & (KNOWN_BUCKETS - 1);

        if (k->buckets[b] != NULL) {
            drop(k, &k->buckets[b]);
            return;
        }
    }
}

void ekv_etcd_known_put(struct ekv_etcd_known *k, const char *key,
                        size_t key_len, const void *val, size_t val_len,
                        int present, int64_t mod_revision)
{
    uint64_t hash = XXH3_64bits(key, key_len);
    struct known_entry **at = slot(k, key, key_len, hash), *e;

    if (*at != NULL)
        drop(k, at);
    if (!present)
        val_len = 0;
    if (val_len > KNOWN_VAL_MAX)
        return; /* forgotten: read again next time */
    e = malloc(sizeof(*e) + key_len + val_len);
    if (e == NULL)
        return; /* a guess not kept costs a read, nothing else */
    memcpy(e->bytes, key, key_len);
    if (val_len > 0)
        memcpy(e->bytes + key_len, val, val_len);
    e->hash = hash;
    e->item.key = (const char *)e->bytes;
    e->item.key_len = key_len;
    e->item.val = e->bytes + key_len;
    e->item.val_len = val_len;
    e->item.present = present;
    e->item.mod_revision = mod_revision;
    while (k->n > 0 && (k->n >= KNOWN_MAX_ENTRIES ||
                        k->bytes + entry_bytes(e) > KNOWN_MAX_BYTES))
        make_room(k);
    at = &k->buckets[hash & (KNOWN_BUCKETS - 1)];
    e->next = *at;
    *at = e;
    k->n++;
    k->bytes += entry_bytes(e);
}
