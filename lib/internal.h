/*
 * internal.h -- declarations shared between the files of lib/.  Not API.
 *
 * Every name here has the ekv_ prefix and hidden visibility (the library is
 * built with -fvisibility=hidden; only ETAGKV_API names are exported).  The
 * pure modules (etag.c, httpdate.c, cond.c, record.c, status.c, options.c,
 * registry.c, histogram.c) never include lmdb.h, so they are unit-tested and
 * fuzzed on their own.  docs/design.md has the map of the code.
 */
#ifndef ETAGKV_INTERNAL_H
#define ETAGKV_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "etagkv.h"

/* ---- status.c ------------------------------------------------------------ */

/* Record a diagnostic for etagkv_last_error_detail() on this thread, printf
 * style.  Returns st, so that `return ekv_fail(ETAGKV_IO_ERROR, "...")`
 * reads naturally. */
etagkv_status ekv_fail(etagkv_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Forget this thread's diagnostic (called at the start of API calls that
 * may record one). */
void ekv_clear_error(void);

/* ---- etag.c -------------------------------------------------------------- */

#define EKV_HASH_BYTES 16

/* XXH3-128 of the value, in canonical (big-endian) byte order.  A NULL
 * value is hashed as empty (len is then ignored). */
void ekv_hash128(const void *value, size_t len, uint8_t out[EKV_HASH_BYTES]);

/* XXH3-128 of the concatenation of n pieces, canonical byte order. */
typedef struct ekv_part {
    const void *p;
    size_t len;
} ekv_part;
void ekv_hash128_parts(const ekv_part *parts, size_t n,
                       uint8_t out[EKV_HASH_BYTES]);

/* Format a canonical hash as a quoted ETag: '"' + 32 lowercase hex + '"'. */
void ekv_etag_format(const uint8_t hash[EKV_HASH_BYTES],
                     char out[ETAGKV_ETAG_SIZE]);

/* Parse a single complete strong entity-tag of our own form ('"' + 32
 * lowercase hex + '"', nothing else) back into its hash; out may be NULL to
 * check the form only.  Returns 0, or -1 with out untouched. */
int ekv_etag_parse_own(const char *etag, size_t len,
                       uint8_t out[EKV_HASH_BYTES]);

/* One entity-tag of a list: the opaque-tag (with its quotes) at buf + off. */
typedef struct ekv_tag {
    size_t off;
    size_t len;
    int weak; /* had the W/ prefix */
} ekv_tag;

/* The parsed value of an If-Match or If-None-Match header (all its lines). */
typedef struct ekv_taglist {
    int present; /* at least one header line was added */
    int any;     /* the value was "*" */
    ekv_tag *tags;
    size_t n, cap;
    char *buf; /* opaque-tags, back to back */
    size_t buf_len, buf_cap;
} ekv_taglist;

/* Parse one header line's value (RFC 9110 §13.1.1 grammar, §5.6.1 list
 * rules) and append its tags to l.  Returns ETAGKV_OK, ETAGKV_INVALID_HEADER
 * (syntax; "*" not alone; no element at all), ETAGKV_INVALID_ARGUMENT (NULL
 * l, or NULL value with len > 0) or ETAGKV_NO_MEMORY; on failure l's
 * contents are unchanged (its capacity may have grown). */
etagkv_status ekv_taglist_append(ekv_taglist *l, const char *value, size_t len);

/* Release what l holds and zero it.  Safe on a zeroed list. */
void ekv_taglist_clear(ekv_taglist *l);

/* RFC 9110 §8.8.3.2.  etag is a current (always strong) ETag, quoted.
 * Strong: 1 iff some listed tag is not weak and its opaque-tag equals etag.
 * Weak: 1 iff some listed tag's opaque-tag equals etag, W/ or not. */
int ekv_taglist_match_strong(const ekv_taglist *l, const char *etag);
int ekv_taglist_match_weak(const ekv_taglist *l, const char *etag);

/* ---- cond.c ---------------------------------------------------------------
 */

/* A canonical byte string of c's parsed conditions (lists with their W/
 * flags and tags, "*", valid or ignored dates), so that two requests with
 * the same conditions give the same bytes.  NULL c is "no conditions".
 * Sets *out to a malloc'd buffer the caller frees.  Returns ETAGKV_OK or
 * ETAGKV_NO_MEMORY. */
etagkv_status ekv_cond_serialize(const etagkv_cond *c, uint8_t **out,
                                 size_t *len);

/* A deep copy of c in *out (NULL for NULL c), to release with
 * etagkv_cond_free().  ETAGKV_OK or ETAGKV_NO_MEMORY (*out NULL). */
etagkv_status ekv_cond_copy(const etagkv_cond *c, etagkv_cond **out);

/* 1 and *revision if c has ETagKV-If-Revision, else 0. */
int ekv_cond_if_revision(const etagkv_cond *c, uint64_t *revision);

/* A deep copy of c (as ekv_cond_copy()) keeping only the condition that
 * step evaluates; ETAGKV_STEP_NONE keeps them all. */
etagkv_status ekv_cond_only(const etagkv_cond *c, etagkv_cond_step step,
                            etagkv_cond **out);

/* The step that decided outcome when it is ETAGKV_PRECONDITION_FAILED:
 * etagkv_cond_explain() of c over state, the state the outcome was
 * decided on; else ETAGKV_STEP_NONE. */
etagkv_cond_step ekv_cond_step_of(const etagkv_cond *c, etagkv_method method,
                                  etagkv_status outcome,
                                  const etagkv_meta *state);

/* ---- record.c ------------------------------------------------------------ */

/* On-disk record layout, version 1, all integers little-endian:
 *
 *   0  u8   format version (1)
 *   1  u8   flags (0)
 *   2  u16  content type length (1..255)
 *   4  u32  reserved (0)
 *   8  u64  created_ns
 *  16  u64  modified_ns
 *  24  u64  create_revision
 *  32  u64  mod_revision
 *  40  u64  version
 *  48  16B  XXH3-128 of the value, canonical
 *  64       content type bytes, then the value bytes
 *
 * The metadata sits in front of the value in one LMDB item, so reading it
 * costs no second lookup, and the ETag is formatted from the stored hash
 * without rehashing. */
#define EKV_RECORD_FORMAT 1
#define EKV_RECORD_HEADER_BYTES 64

typedef struct ekv_record {
    uint64_t created_ns;
    uint64_t modified_ns;
    uint64_t create_revision;
    uint64_t mod_revision;
    uint64_t version;
    uint8_t hash[EKV_HASH_BYTES];
    const char *content_type; /* not NUL-terminated */
    size_t content_type_len;
    const void *value;
    size_t value_len;
} ekv_record;

/* Little-endian integers, byte by byte (no alignment needed). */
void ekv_put_le16(uint8_t *p, uint16_t v);
void ekv_put_le64(uint8_t *p, uint64_t v);
uint16_t ekv_get_le16(const uint8_t *p);
uint64_t ekv_get_le64(const uint8_t *p);

/* The times, revisions and version of a record written at revision rev
 * and wall clock now_ns over old (NULL: the key was absent), DESIGN §1:
 * modified never goes backwards for a key (max(now, previous + 1));
 * created and create_revision are kept across replacements; version counts
 * the writes since (re)creation.  The other fields of r are untouched. */
void ekv_record_successor(ekv_record *r, const ekv_record *old, uint64_t now_ns,
                          uint64_t rev);

/* Bytes needed to encode a record. */
size_t ekv_record_size(size_t content_type_len, size_t value_len);

/* Encode r into dst (ekv_record_size() bytes). */
void ekv_record_encode(void *dst, const ekv_record *r);

/* Decode len bytes at src into r; r's pointers point into src.  Returns
 * ETAGKV_OK or ETAGKV_CORRUPT (short, unknown version, bad lengths). */
etagkv_status ekv_record_decode(const void *src, size_t len, ekv_record *r);

/* Fill m (exists = 1) from r: every byte, padding and the content type's
 * tail zeroed, as if m had been zeroed first. */
void ekv_record_meta(const ekv_record *r, etagkv_meta *m);

/* Check a key's length (and pointer); ETAGKV_OK or the status to return. */
etagkv_status ekv_check_key(const void *key, size_t key_len);

/* 1 if s[0..len) is a valid content type to store (1..255 bytes of visible
 * ASCII, space or tab, no leading or trailing whitespace), else 0. */
int ekv_content_type_valid(const char *s, size_t len);

/* ---- options.c ----------------------------------------------------------- */

/* Fill in the defaults for o's zero fields, round the map sizes to
 * page_bytes (a power of two) and check everything, including that the
 * process can map map_size_bytes at all.  ETAGKV_OK or
 * ETAGKV_INVALID_ARGUMENT with a diagnostic. */
etagkv_status ekv_options_check(etagkv_options *o, size_t page_bytes);

/* ---- histogram.c --------------------------------------------------------- */

/* A histogram that any thread updates without a lock: le[0..bounds) are
 * the inclusive upper bounds (the caller's array, which must outlive h),
 * count[bounds] the observations above the last. */
struct ekv_hist {
    const uint64_t *le;
    size_t bounds;
    _Atomic uint64_t count[ETAGKV_HISTOGRAM_BOUNDS + 1];
    _Atomic uint64_t sum;
};

/* Zero h, with bounds le[0..bounds) (at most ETAGKV_HISTOGRAM_BOUNDS; more
 * are ignored). */
void ekv_hist_init(struct ekv_hist *h, const uint64_t *le, size_t bounds);

/* Count v in its bucket and add it to the sum.  Thread-safe, lock-free. */
void ekv_hist_observe(struct ekv_hist *h, uint64_t v);

/* Copy h into *out, each counter read once (see histogram.c). */
void ekv_hist_read(struct ekv_hist *h, etagkv_histogram *out);

/* ---- registry.c ---------------------------------------------------------- */

/* One open store's entry in the process-wide list of open directories. */
struct ekv_registration {
    dev_t dev;
    ino_t ino;
    int registered;
    struct ekv_registration *next;
};

/* Register directory dir in r, or refuse (ETAGKV_INVALID_ARGUMENT) when it
 * is already open in this process; ETAGKV_IO_ERROR when dir is not a
 * directory. */
etagkv_status ekv_registry_add(struct ekv_registration *r, const char *dir);

/* Remove r from the list, if it is in it. */
void ekv_registry_remove(struct ekv_registration *r);

#endif /* ETAGKV_INTERNAL_H */
