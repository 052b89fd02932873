/*
 * pct.h -- percent-encoding of keys (server/pct.c), shared by the server
 * and the etagkv tool.  Not API.
 */
#ifndef ETAGKV_SERVER_PCT_H
#define ETAGKV_SERVER_PCT_H

#include <stddef.h>
#include <sys/types.h>

/* Decode len bytes of src (strict: every '%' is followed by two hex
 * digits) into out (cap bytes).  Returns the decoded length, -1 for a
 * malformed escape, -2 when the result is longer than cap (an invalid
 * escape anywhere wins over -2). */
ssize_t srv_pct_decode(const char *src, size_t len, unsigned char *out,
                       size_t cap);

/* Encode len bytes of src: RFC 3986 unreserved characters and '/' stay,
 * the dots of a "." or ".." segment and every other byte become %XX
 * (uppercase), so the result is safe to append after "/kv/" (RFC 3986
 * §5.2.4 removes no segment of it).  Returns a malloc'd NUL-terminated
 * string, or NULL when out of memory. */
char *srv_pct_encode(const void *src, size_t len);

#endif /* ETAGKV_SERVER_PCT_H */
