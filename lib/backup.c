/*
 * backup.c -- a whole store at once: a consistent compacted copy
 * (etagkv_store_backup(), etagkv_store_backup_fd()) and a check of every
 * record from its bytes (etagkv_store_verify()).
 *
 * The copy is the backend's (ekv_env_copy_*: one read snapshot, so writers
 * keep running); the check is storage-neutral: a cursor over the records in
 * one read transaction, each record decoded (record.c) and its value hashed
 * again (etag.c).
 */
#include <stdio.h>
#include <string.h>

#include "store.h"

etagkv_status etagkv_store_backup(etagkv_store *s, const char *dir)
{
    ekv_clear_error();
    if (s == NULL || dir == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    return ekv_env_copy_dir(s->env, dir);
}

etagkv_status etagkv_store_backup_fd(etagkv_store *s, int fd)
{
    ekv_clear_error();
    if (s == NULL || fd < 0)
        return ETAGKV_INVALID_ARGUMENT;
    return ekv_env_copy_fd(s->env, fd);
}

void ekv_key_text(const void *key, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = key;
    size_t n = 0;

    for (size_t i = 0; i < len && n + 4 <= cap; i++) {
        if (p[i] > 0x20 && p[i] < 0x7F && p[i] != '%') {
            out[n++] = (char)p[i];
        } else {
            out[n++] = '%';
            out[n++] = hex[p[i] >> 4];
            out[n++] = hex[p[i] & 15];
        }
    }
    out[n] = '\0';
}

/* What is wrong with the record r under a key of key_len bytes in a store
 * at revision rev, or NULL if nothing is. */
static const char *record_fault(const ekv_record *r, size_t key_len,
                                uint64_t rev)
{
    uint8_t hash[EKV_HASH_BYTES];

    if (key_len == 0 || key_len > ETAGKV_KEY_MAX)
        return "key length out of range";
    if (r->create_revision == 0 || r->create_revision > r->mod_revision)
        return "create_revision is 0 or above mod_revision";
    if (r->mod_revision > rev)
        return "mod_revision above the store's revision";
    if (r->version == 0)
        return "version is 0";
    if (r->created_ns > r->modified_ns)
        return "created after it was modified";
    ekv_hash128(r->value, r->value_len, hash);
    if (memcmp(hash, r->hash, sizeof(hash)) != 0)
        return "the value does not hash to its stored ETag";
    return NULL;
}

/* Check every record the cursor reaches; *n counts the sound ones. */
static etagkv_status verify_walk(ekv_cursor *cur, uint64_t rev, uint64_t *n)
{
    ekv_val k, v;
    etagkv_status st = ekv_cursor_seek(cur, NULL, 0, &k, &v);

    for (; st == ETAGKV_OK; st = ekv_cursor_next(cur, &k, &v)) {
        ekv_record r;
        const char *fault = "the record does not decode";
        char key[64];

        if (ekv_record_decode(v.data, v.len, &r) == ETAGKV_OK)
            fault = record_fault(&r, k.len, rev);
        if (fault != NULL) {
            ekv_key_text(k.data, k.len, key, sizeof(key));
            return ekv_fail(ETAGKV_CORRUPT, "key %s: %s", key, fault);
        }
        (*n)++;
    }
    return st == ETAGKV_NOT_FOUND ? ETAGKV_OK : st;
}

etagkv_status etagkv_store_verify(etagkv_store *s, uint64_t *records_out)
{
    ekv_txn txn;
    ekv_cursor cur;
    uint64_t rev = 0, n = 0;
    etagkv_status st;

    ekv_clear_error();
    if (records_out != NULL)
        *records_out = 0;
    if (s == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    st = ekv_read_begin(s->env, &txn);
    if (st != ETAGKV_OK)
        return st;
    st = ekv_revision_get(&txn, &rev);
    if (st == ETAGKV_OK)
        st = ekv_cursor_open(&txn, EKV_TABLE_RECORDS, &cur);
    if (st == ETAGKV_OK) {
        st = verify_walk(&cur, rev, &n);
        ekv_cursor_close(&cur);
    }
    ekv_read_end(&txn);
    if (records_out != NULL)
        *records_out = n;
    return st;
}
