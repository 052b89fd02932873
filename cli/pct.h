/*
 * pct.h -- percent-encoding of keys (RFC 3986 §2.1), exactly as
 * etagkv-server's /kv/ URLs spell them (server/url.c), so that a key that
 * `etagkv list` prints can be pasted into a URL and back into `--pct`.
 *
 * The CLI keeps its own copy rather than linking the server's: the tool
 * links only the public library, whose API is about stores, not URLs.
 */
#ifndef ETAGKV_CLI_PCT_H
#define ETAGKV_CLI_PCT_H

#include <stddef.h>

/* Decode the NUL-terminated src: "%" must be followed by two hex digits
 * (either case); every other byte stands for itself.  Returns 0 and sets
 * *out (malloc'd, *len bytes; may hold NUL bytes), or -1 for a malformed
 * escape or no memory, with *out NULL. */
int pct_decode(const char *src, unsigned char **out, size_t *len);

/* Encode len bytes: RFC 3986 unreserved characters and '/' as they are,
 * every other byte as %XX (upper-case hex).  Returns a malloc'd string, or
 * NULL when out of memory. */
char *pct_encode(const void *src, size_t len);

#endif /* ETAGKV_CLI_PCT_H */
