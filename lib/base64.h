/*
 * base64.h -- base64 (RFC 4648 §4, padded), pure: no store, no status.
 * Compiled into the library (the etcd engine: the gateway's JSON carries
 * bytes so) and into the programs that parse POST /txn bodies (server/,
 * cli/, the fuzz target).  Not API.
 */
#ifndef ETAGKV_BASE64_H
#define ETAGKV_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* The base64 of len bytes at data, NUL-terminated, malloc'd; *out_len
 * (may be NULL) its length.  NULL when out of memory. */
char *ekv_base64_encode(const void *data, size_t len, size_t *out_len);

/* Decode len bytes of padded base64 at s (strict: a multiple of 4 long,
 * '=' only as the last one or two characters) into a malloc'd buffer of
 * at least one byte.  0, -1 when malformed, -2 when out of memory. */
int ekv_base64_decode(const char *s, size_t len, uint8_t **out,
                      size_t *out_len);

#endif /* ETAGKV_BASE64_H */
