/*
 * record.c -- the on-disk record layout (see internal.h for the table), and
 * the limits on what a record holds: its key and its content type.
 *
 * Integers are stored little-endian byte by byte, so a store written on one
 * machine reads the same on any other, and nothing here depends on the
 * alignment of the pointer LMDB hands back.
 */
#include <stddef.h>
#include <string.h>

#include "internal.h"

void ekv_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* The 64-bit helpers load and store whole words and swap on big-endian
 * hosts; they need to know which kind this is. */
#if !defined(__BYTE_ORDER__) || (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__ &&  \
                                 __BYTE_ORDER__ != __ORDER_BIG_ENDIAN__)
#error "unknown byte order: define __BYTE_ORDER__ (GCC and Clang do)"
#endif

void ekv_put_le64(uint8_t *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, sizeof(v));
}

uint16_t ekv_get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

uint64_t ekv_get_le64(const uint8_t *p)
{
    uint64_t v;

    /* memcpy, not a cast: p need not be aligned.  The compiler turns this
     * into one load (plus a byte swap on a big-endian host), where the
     * byte-by-byte loop stayed eight loads on every read of a record. */
    memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

void ekv_record_successor(ekv_record *r, const ekv_record *old, uint64_t now_ns,
                          uint64_t rev)
{
    /* At the very end of the range modified stays there rather than wrap
     * to 0. */
    r->modified_ns = old != NULL && old->modified_ns >= now_ns
                         ? old->modified_ns + (old->modified_ns < UINT64_MAX)
                         : now_ns;
    r->created_ns = old != NULL ? old->created_ns : r->modified_ns;
    r->create_revision = old != NULL ? old->create_revision : rev;
    r->mod_revision = rev;
    r->version = old != NULL ? old->version + 1 : 1;
}

size_t ekv_record_size(size_t content_type_len, size_t value_len)
{
    return EKV_RECORD_HEADER_BYTES + content_type_len + value_len;
}

void ekv_record_encode(void *dst, const ekv_record *r)
{
    uint8_t *p = dst;

    p[0] = EKV_RECORD_FORMAT;
    p[1] = 0;
    ekv_put_le16(p + 2, (uint16_t)r->content_type_len);
    memset(p + 4, 0, 4);
    ekv_put_le64(p + 8, r->created_ns);
    ekv_put_le64(p + 16, r->modified_ns);
    ekv_put_le64(p + 24, r->create_revision);
    ekv_put_le64(p + 32, r->mod_revision);
    ekv_put_le64(p + 40, r->version);
    memcpy(p + 48, r->hash, EKV_HASH_BYTES);
    memcpy(p + EKV_RECORD_HEADER_BYTES, r->content_type, r->content_type_len);
    if (r->value_len > 0)
        memcpy(p + EKV_RECORD_HEADER_BYTES + r->content_type_len, r->value,
               r->value_len);
}

etagkv_status ekv_record_decode(const void *src, size_t len, ekv_record *r)
{
    const uint8_t *p = src;
    size_t ct_len;

    if (len < EKV_RECORD_HEADER_BYTES || p[0] != EKV_RECORD_FORMAT)
        return ETAGKV_CORRUPT;
    ct_len = ekv_get_le16(p + 2);
    if (ct_len == 0 || ct_len > ETAGKV_CONTENT_TYPE_MAX ||
        len - EKV_RECORD_HEADER_BYTES < ct_len)
        return ETAGKV_CORRUPT;
    r->created_ns = ekv_get_le64(p + 8);
    r->modified_ns = ekv_get_le64(p + 16);
    r->create_revision = ekv_get_le64(p + 24);
    r->mod_revision = ekv_get_le64(p + 32);
    r->version = ekv_get_le64(p + 40);
    memcpy(r->hash, p + 48, EKV_HASH_BYTES);
    r->content_type = (const char *)p + EKV_RECORD_HEADER_BYTES;
    r->content_type_len = ct_len;
    r->value = p + EKV_RECORD_HEADER_BYTES + ct_len;
    r->value_len = len - EKV_RECORD_HEADER_BYTES - ct_len;
    return ETAGKV_OK;
}

void ekv_record_meta(const ekv_record *r, etagkv_meta *m)
{
    /* Every byte of *m is written, padding and the content type's tail
     * included, so that callers see the same bytes as from a zeroed struct;
     * but only once: this runs on every read, and zeroing the whole 344
     * bytes first and then filling them cost more than the lookup. */
    memset(m, 0, offsetof(etagkv_meta, value_bytes));
    m->exists = 1;
    ekv_etag_format(r->hash, m->etag);
    m->value_bytes = r->value_len;
    m->created_ns = r->created_ns;
    m->modified_ns = r->modified_ns;
    m->create_revision = r->create_revision;
    m->mod_revision = r->mod_revision;
    m->version = r->version;
    memcpy(m->content_type, r->content_type, r->content_type_len);
    memset(m->content_type + r->content_type_len, 0,
           sizeof(m->content_type) - r->content_type_len);
}

/* A content type ends up verbatim in a Content-Type response header, so it
 * must be a valid field value (RFC 9110 §5.5): visible ASCII, SP and HTAB,
 * no leading or trailing whitespace.  We do not validate the media-type
 * grammar itself: the store keeps what the client said, as S3 does. */
int ekv_content_type_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > ETAGKV_CONTENT_TYPE_MAX)
        return 0;
    if (s[0] == ' ' || s[0] == '\t' || s[len - 1] == ' ' || s[len - 1] == '\t')
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c != '\t' && (c < 0x20 || c > 0x7e))
            return 0;
    }
    return 1;
}

etagkv_status ekv_check_key(const void *key, size_t key_len)
{
    if (key_len == 0)
        return ETAGKV_INVALID_KEY;
    if (key == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    if (key_len > ETAGKV_KEY_MAX)
        return ETAGKV_KEY_TOO_LONG;
    return ETAGKV_OK;
}
