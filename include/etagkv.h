/*
 * etagkv.h -- the public API of libetagkv.
 *
 * etagkv is an embedded key-value store on LMDB in which every record
 * carries a strong, content-derived ETag and timestamps, and every write can
 * be made conditional with exactly HTTP's preconditions (RFC 9110 §13).
 *
 * If it is not in this file, it is not API.
 *
 * Conventions used throughout:
 *  - Every function that can fail returns an etagkv_status.  ETAGKV_OK is 0.
 *    Raw LMDB codes and errno values never cross this boundary; the
 *    underlying cause of the most recent failure on the calling thread is
 *    available as text from etagkv_last_error_detail().
 *  - Keys are byte strings of 1 to ETAGKV_KEY_MAX bytes, any byte values.
 *  - On any failure of a write, the store's records are unchanged.  (A
 *    write with an idempotency key also records a failed precondition or a
 *    missing key as its outcome, so that a retry gets the same answer: see
 *    etagkv_write().)
 *  - Constructors take a "T **out" and set *out to NULL on failure; nothing
 *    leaks.  Destructors return void and accept NULL.
 *  - Thread safety: an etagkv_store is safe to share between threads.  An
 *    etagkv_cond is not safe to modify concurrently, but once built it may be
 *    read (passed to operations) by any number of threads at once.
 */
#ifndef ETAGKV_H
#define ETAGKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ETAGKV_API __attribute__((visibility("default")))
#else
#define ETAGKV_API
#endif

#define ETAGKV_VERSION_MAJOR 0
#define ETAGKV_VERSION_MINOR 1
#define ETAGKV_VERSION_PATCH 0
#define ETAGKV_VERSION_STRING "0.1.0"

/* ---------------------------------------------------------------------------
 * Limits and buffer sizes
 * ------------------------------------------------------------------------- */

/** Longest key in bytes (LMDB's default key limit). */
#define ETAGKV_KEY_MAX 511
/** Longest content type in bytes (not counting the terminating NUL). */
#define ETAGKV_CONTENT_TYPE_MAX 255
/** The content type a record gets when none is given. */
#define ETAGKV_CONTENT_TYPE_DEFAULT "application/octet-stream"
/** Default for etagkv_options.max_value_bytes: 64 MiB. */
#define ETAGKV_MAX_VALUE_BYTES_DEFAULT ((uint64_t)64 << 20)
/** Hard upper bound for etagkv_options.max_value_bytes (LMDB stores a value
 * of at most 4 GiB - 1 bytes; we keep room for the record header). */
#define ETAGKV_MAX_VALUE_BYTES_LIMIT ((uint64_t)0xFFFFFFFFu - 4096u)
/** Size of an ETag buffer: '"' + 32 hex digits + '"' + NUL. */
#define ETAGKV_ETAG_SIZE 35
/** Longest Idempotency-Key in bytes. */
#define ETAGKV_IDEMPOTENCY_KEY_MAX 255
/** Default retention of an Idempotency-Key's outcome: 24 hours. */
#define ETAGKV_IDEMPOTENCY_RETENTION_S_DEFAULT 86400u
/** Default bound on the number of retained Idempotency-Keys. */
#define ETAGKV_IDEMPOTENCY_MAX_KEYS_DEFAULT 1000000u
/** Default for etagkv_options.file_mode: owner read and write only. */
#define ETAGKV_FILE_MODE_DEFAULT 0600u
/** Default for etagkv_options.changes_max_events: the change log keeps at
 * most this many events. */
#define ETAGKV_CHANGES_MAX_EVENTS_DEFAULT 100000u
/** Default for etagkv_options.changes_retention_s: events older than this
 * (one hour) are trimmed from the change log. */
#define ETAGKV_CHANGES_RETENTION_S_DEFAULT 3600u
/** Size of an HTTP-date buffer: 29 characters of IMF-fixdate + NUL. */
#define ETAGKV_HTTPDATE_SIZE 30
/** Default for etagkv_options.max_txn_ops: operations per transaction. */
#define ETAGKV_TXN_MAX_OPS_DEFAULT 128u
/** Default for etagkv_options.max_txn_bytes: 16 MiB of keys, values and
 * content types per transaction. */
#define ETAGKV_TXN_MAX_BYTES_DEFAULT ((uint64_t)16 << 20)
/** Default bounds of a lease's TTL (etagkv_lease_grant()): 100 ms and
 * 24 h. */
#define ETAGKV_LEASE_MIN_TTL_MS_DEFAULT 100u
#define ETAGKV_LEASE_MAX_TTL_MS_DEFAULT 86400000u
/** Default most live leases at once. */
#define ETAGKV_MAX_LEASES_DEFAULT 1000000u
/** Default most keys attached to one lease. */
#define ETAGKV_MAX_LEASE_KEYS_DEFAULT 10000u

/* ---------------------------------------------------------------------------
 * Statuses
 *
 * One list defines every outcome once: name, fixed number, HTTP status and
 * message.  Numbers are append-only and never reused.  Non-error outcomes
 * (CREATED, NOT_MODIFIED, PRECONDITION_FAILED) are statuses too, so that the
 * C API and HTTP map one-to-one.
 * ------------------------------------------------------------------------- */

#define ETAGKV_STATUS_LIST(X)                                                  \
    X(OK, 0, 200, "ok")                                                        \
    X(CREATED, 1, 201, "created")                                              \
    X(NOT_MODIFIED, 2, 304, "not modified")                                    \
    X(PRECONDITION_FAILED, 3, 412, "precondition failed")                      \
    X(NOT_FOUND, 4, 404, "not found")                                          \
    X(CONFLICT, 5, 409, "conflict")                                            \
    X(IDEMPOTENCY_MISMATCH, 6, 422,                                            \
      "idempotency key reused for a different request")                        \
    X(PRECONDITION_REQUIRED, 7, 428, "precondition required")                  \
    X(INVALID_KEY, 8, 400, "invalid key (empty)")                              \
    X(KEY_TOO_LONG, 9, 414, "key longer than 511 bytes")                       \
    X(INVALID_HEADER, 10, 400, "invalid header value")                         \
    X(INVALID_ARGUMENT, 11, 400, "invalid argument")                           \
    X(VALUE_TOO_LARGE, 12, 413, "value too large")                             \
    X(STORE_FULL, 13, 507, "store full: map ceiling reached or disk full")     \
    X(IO_ERROR, 14, 500, "I/O error")                                          \
    X(NO_MEMORY, 15, 500, "out of memory")                                     \
    X(CORRUPT, 16, 500, "corrupt record or store")                             \
    X(INCOMPATIBLE, 17, 500, "not an etagkv store, or an unknown format")      \
    X(INTERNAL, 18, 500, "internal error")                                     \
    X(IDEMPOTENCY_FULL, 19, 503,                                               \
      "idempotency table full: retry after older keys expire")                 \
    X(TORN_STORE, 20, 500,                                                     \
      "store creation was cut short (power loss?): data.mdb holds no data; "   \
      "remove it and open again")                                              \
    X(TXN_TOO_LARGE, 21, 413, "transaction has too many operations or bytes")  \
    X(READ_ONLY, 22, 405, "the store is open read-only")                       \
    X(COMPACTED, 23, 410,                                                      \
      "the change log no longer holds events that old: re-read and watch "     \
      "from min_after")                                                        \
    X(CLOSING, 24, 503, "the store is closing")                                \
    X(LEASE_LIMIT, 25, 503, "too many live leases: retry after some expire")   \
    X(UNSUPPORTED, 27, 501, "not supported by this store's backend")           \
    X(OUTCOME_UNKNOWN, 28, 503,                                                \
      "the write was sent to the cluster and no answer came: it may or may "   \
      "not have been applied; read before retrying")                           \
    X(UNAVAILABLE, 29, 503, "the storage cluster cannot be reached")

typedef enum etagkv_status {
#define ETAGKV_STATUS_ENUM_(name, num, http, msg) ETAGKV_##name = num,
    ETAGKV_STATUS_LIST(ETAGKV_STATUS_ENUM_)
#undef ETAGKV_STATUS_ENUM_
} etagkv_status;

/** Human-readable message for a status ("precondition failed").  Never
 * NULL; an unknown number gives "unknown status".  The string is static. */
ETAGKV_API const char *etagkv_strerror(etagkv_status st);

/** The status's name without prefix ("PRECONDITION_FAILED"), static; an
 * unknown number gives "UNKNOWN". */
ETAGKV_API const char *etagkv_status_name(etagkv_status st);

/** The HTTP status code of an outcome (DESIGN §3): OK 200, CREATED 201,
 * NOT_MODIFIED 304, PRECONDITION_FAILED 412, NOT_FOUND 404, ...; an unknown
 * number gives 500.  A successful DELETE is ETAGKV_OK, which HTTP answers
 * with 204: that choice belongs to the method, so the HTTP layer makes it. */
ETAGKV_API int etagkv_status_http(etagkv_status st);

/** Text describing the underlying cause of the most recent failure of an
 * etagkv call on the calling thread (for example "mdb_env_open(/x): Permission
 * denied"), or "" if that failure recorded none.  Every call that can
 * record one clears it when it starts; the pure etagkv_cond_evaluate(),
 * etagkv_etag_compute() and etagkv_httpdate_*() neither record nor clear.
 * For diagnostics only; the text is valid until the next etagkv call on the
 * same thread. */
ETAGKV_API const char *etagkv_last_error_detail(void);

/* ---------------------------------------------------------------------------
 * The library: version and memory
 * ------------------------------------------------------------------------- */

/** The version of the library actually linked, which may differ from the
 * ETAGKV_VERSION_* macros the caller was compiled with.  Each of major,
 * minor and patch may be NULL; the others receive the numbers.  Returns
 * the static string ("0.1.0").  Neither records nor clears
 * etagkv_last_error_detail(). */
ETAGKV_API const char *etagkv_version(int *major, int *minor, int *patch);

/** Release memory that the library allocated and handed to the caller.
 * These outputs must be released with it: the value of etagkv_get()
 * (*value_out).  (Objects with their own destructor, such as etagkv_cond
 * and etagkv_store, are not: use etagkv_cond_free() and
 * etagkv_store_close().)  NULL is accepted.  Neither records nor clears
 * etagkv_last_error_detail(). */
ETAGKV_API void etagkv_free(void *p);

/* ---------------------------------------------------------------------------
 * ETags (pure; no store needed)
 * ------------------------------------------------------------------------- */

/** Compute the strong ETag of a value: '"' + 32 lowercase hex digits of
 * XXH3-128(value) + '"', NUL-terminated, written to out.  value may be NULL
 * when len is 0.  Always succeeds. */
ETAGKV_API void etagkv_etag_compute(const void *value, size_t len,
                                    char out[ETAGKV_ETAG_SIZE]);

/* ---------------------------------------------------------------------------
 * HTTP-dates (pure; RFC 9110 §5.6.7)
 * ------------------------------------------------------------------------- */

/** Parse an HTTP-date in any of its three forms, IMF-fixdate
 * ("Sun, 06 Nov 1994 08:49:37 GMT"), obsolete RFC 850
 * ("Sunday, 06-Nov-94 08:49:37 GMT") or asctime ("Sun Nov  6 08:49:37 1994"),
 * into seconds since the Unix epoch (UTC).  len bytes of s are read; s need
 * not be NUL-terminated.  Surrounding spaces and tabs are tolerated.
 * Day and month names are case-sensitive, as the grammar spells them; the
 * day of the week must be a valid name but is not checked against the date
 * (the date alone fixes the instant; rejecting it would make a conditional
 * request silently unconditional).  Second 60 (a leap second) reads as 59.
 * A two-digit RFC 850 year more than 50 years in the future means the most
 * recent past year with those digits (§5.6.7), judged by the current time.
 * s may be NULL when len is 0 (the empty string).
 *
 * Returns ETAGKV_OK and *out; ETAGKV_INVALID_HEADER if the len bytes are
 * not an HTTP-date (the empty string included); ETAGKV_INVALID_ARGUMENT
 * for NULL out, or NULL s with len > 0.  On failure *out is untouched. */
ETAGKV_API etagkv_status etagkv_httpdate_parse(const char *s, size_t len,
                                               int64_t *out);

/** Format seconds since the epoch as IMF-fixdate into out
 * (NUL-terminated, 29 characters).  Returns ETAGKV_OK, or
 * ETAGKV_INVALID_ARGUMENT if t is outside years 0001..9999 or out is NULL
 * (then out is untouched). */
ETAGKV_API etagkv_status etagkv_httpdate_format(int64_t t,
                                                char out[ETAGKV_HTTPDATE_SIZE]);

/* ---------------------------------------------------------------------------
 * Record metadata
 * ------------------------------------------------------------------------- */

/** A record's metadata (DESIGN §1).  Filled by the library.  When exists is
 * 0, every other field is zero except, after a successful delete,
 * mod_revision (the revision of the delete). */
typedef struct etagkv_meta {
    int exists;                  /**< 1 if the key holds a record */
    char etag[ETAGKV_ETAG_SIZE]; /**< strong ETag, quoted, NUL-terminated */
    uint64_t value_bytes;        /**< length of the value */
    uint64_t created_ns;         /**< wall clock at (re)creation, ns */
    uint64_t modified_ns;        /**< last write, ns; never goes backwards */
    uint64_t create_revision;    /**< store revision that (re)created it */
    uint64_t mod_revision;       /**< store revision of the last write */
    uint64_t version;            /**< writes since (re)creation, from 1 */
    char content_type[ETAGKV_CONTENT_TYPE_MAX + 1]; /**< NUL-terminated */
} etagkv_meta;

/** Last-Modified of a record in whole seconds since the epoch: modified_ns
 * truncated (DESIGN §1). */
#define ETAGKV_META_LAST_MODIFIED(m) ((int64_t)((m)->modified_ns / 1000000000u))

/* ---------------------------------------------------------------------------
 * Preconditions (RFC 9110 §13)
 * ------------------------------------------------------------------------- */

/** An opaque, parsed set of the four precondition headers. */
typedef struct etagkv_cond etagkv_cond;

/** The four precondition headers of RFC 9110, and etagkv's own revision
 * condition (DESIGN §2). */
typedef enum etagkv_header {
    ETAGKV_IF_MATCH = 0,
    ETAGKV_IF_NONE_MATCH = 1,
    ETAGKV_IF_MODIFIED_SINCE = 2,
    ETAGKV_IF_UNMODIFIED_SINCE = 3,
    /** ETagKV-If-Revision: N.  True iff the key's mod_revision is N, or,
     * for N = 0, iff the key is absent.  Unlike an ETag it cannot return to
     * an old value after A->B->A (ABA); see etagkv_cond_set_if_revision(). */
    ETAGKV_IF_REVISION = 4
} etagkv_header;

/** The request methods whose precondition rules differ. */
typedef enum etagkv_method {
    ETAGKV_METHOD_GET = 0,
    ETAGKV_METHOD_HEAD = 1,
    ETAGKV_METHOD_PUT = 2,
    ETAGKV_METHOD_DELETE = 3
} etagkv_method;

/** Create an empty condition set (no header present: every operation is
 * unconditional).  Returns ETAGKV_OK, ETAGKV_INVALID_ARGUMENT (out NULL) or
 * ETAGKV_NO_MEMORY; on failure *out is NULL. */
ETAGKV_API etagkv_status etagkv_cond_new(etagkv_cond **out);

/** Free a condition set.  NULL is accepted. */
ETAGKV_API void etagkv_cond_free(etagkv_cond *c);

/** Add one raw header field value (len bytes at value, need not be
 * NUL-terminated), exactly as received.
 *
 * If-Match / If-None-Match (RFC 9110 §13.1.1, §13.1.2): "*" or a
 * comma-separated list of entity-tags, each optionally "W/"-prefixed, with
 * optional whitespace; empty list elements are tolerated (§5.6.1).  Adding
 * the same header again extends its list, as several header lines of one
 * name form one list (§5.3).  "*" is valid only alone: "*" combined with
 * anything, including a second "*" line, is invalid.  A value with no
 * element at all (empty or only commas) is invalid.
 *
 * If-Modified-Since / If-Unmodified-Since (§13.1.3, §13.1.4): an HTTP-date.
 * A value that is not a valid HTTP-date is accepted and ignored, as the RFC
 * requires; so is a second occurrence of the same header (the header is then
 * treated as invalid and ignored).
 *
 * ETagKV-If-Revision (DESIGN §2): a decimal revision, 1*DIGIT with optional
 * surrounding spaces or tabs, at most UINT64_MAX.  Anything else (a sign,
 * other bytes, empty, overflow) is invalid, not ignored: ignoring it would
 * make a conditional write unconditional.  A further line must name the
 * same revision; one that names another is invalid.
 *
 * Returns ETAGKV_OK; ETAGKV_INVALID_HEADER for an invalid entity-tag list
 * or revision (HTTP 400); ETAGKV_INVALID_ARGUMENT for NULL c, NULL value with
 * len > 0, or an unknown header; ETAGKV_NO_MEMORY.  On failure c is unchanged.
 */
ETAGKV_API etagkv_status etagkv_cond_add(etagkv_cond *c, etagkv_header h,
                                         const char *value, size_t len);

/** Convenience: parse all four header values at once into a new condition
 * set; a NULL value means the header is absent.  Values are NUL-terminated.
 * Returns as etagkv_cond_new() and etagkv_cond_add(); on failure *out is
 * NULL. */
ETAGKV_API etagkv_status etagkv_cond_parse(const char *if_match,
                                           const char *if_none_match,
                                           const char *if_modified_since,
                                           const char *if_unmodified_since,
                                           etagkv_cond **out);

/* Condition constructors.  Each builds a new condition set holding the one
 * condition named, as etagkv_cond_new() and etagkv_cond_add() would, for
 * use with any read or write (etagkv_request.cond, etagkv_put(),
 * etagkv_delete(), etagkv_get(), ...).  More headers may be added to the
 * result with etagkv_cond_add().  Release it with etagkv_cond_free().  On
 * failure *out is NULL. */

/** If-Match: etag.  The condition holds iff the key's current ETag is etag
 * (strong comparison, RFC 9110 §13.1.1).  etag must be a complete strong
 * entity-tag as returned in etagkv_meta.etag, with its quotes; anything
 * else, "*" included (use etagkv_cond_update_only()), gives
 * ETAGKV_INVALID_HEADER, because a condition that could never match would
 * be a trap.  Returns ETAGKV_OK, ETAGKV_INVALID_HEADER,
 * ETAGKV_INVALID_ARGUMENT (NULL etag or out) or ETAGKV_NO_MEMORY. */
ETAGKV_API etagkv_status etagkv_cond_if_match(const char *etag,
                                              etagkv_cond **out);

/** If-None-Match: *.  A put holds only if the key is absent: create-only
 * (RFC 9110 §13.1.2).  Returns ETAGKV_OK, ETAGKV_INVALID_ARGUMENT (NULL
 * out) or ETAGKV_NO_MEMORY. */
ETAGKV_API etagkv_status etagkv_cond_create_only(etagkv_cond **out);

/** If-Match: *.  A put holds only if the key exists: update-only (RFC 9110
 * §13.1.1).  Returns as etagkv_cond_create_only(). */
ETAGKV_API etagkv_status etagkv_cond_update_only(etagkv_cond **out);

/** Set ETagKV-If-Revision (DESIGN §2) on c: the condition holds iff the
 * key's mod_revision is revision, or, for revision 0, iff the key is
 * absent.  It is evaluated before If-Match (see etagkv_cond_evaluate()) and
 * replaces any revision c held.  Returns ETAGKV_OK, or
 * ETAGKV_INVALID_ARGUMENT for NULL c (then nothing changed). */
ETAGKV_API etagkv_status etagkv_cond_set_if_revision(etagkv_cond *c,
                                                     uint64_t revision);

/** 1 if c makes a write conditional: If-Match, If-None-Match or
 * ETagKV-If-Revision present, or If-Unmodified-Since present with a valid
 * date not later than now (the system clock): an invalid date is ignored,
 * and a future one holds for every record, so neither counts;
 * If-Modified-Since never applies to writes.  Else 0;
 * NULL gives 0.  Used by the server's require-conditions mode (DESIGN §5):
 * an unconditional PUT or DELETE there is answered with 428. */
ETAGKV_API int etagkv_cond_is_conditional(const etagkv_cond *c);

/** Evaluate c for a request of the given method against the current state
 * of a key, in RFC 9110 §13.2.2 order:
 *
 *  0. §13.2.1: GET, HEAD and DELETE of an absent key are ETAGKV_NOT_FOUND
 *     whatever the conditions, because the unconditional request would not
 *     have succeeded.
 *  R. ETagKV-If-Revision present (DESIGN §2): true iff the key's
 *     mod_revision equals it, or, for 0, iff the key is absent.  False:
 *     ETAGKV_PRECONDITION_FAILED (for every method, as If-Match).
 *  1. If-Match present: "*" is true iff the key exists; a list is true iff
 *     a listed tag equals the current ETag by strong comparison (a W/ tag
 *     never matches).  False: ETAGKV_PRECONDITION_FAILED.
 *  2. Else If-Unmodified-Since valid and the key exists: true iff
 *     Last-Modified <= date.  False: ETAGKV_PRECONDITION_FAILED.
 *  3. If-None-Match present: "*" is false iff the key exists; a list is
 *     false iff a listed tag equals the current ETag by weak comparison.
 *     False: ETAGKV_NOT_MODIFIED for GET/HEAD, ETAGKV_PRECONDITION_FAILED
 *     otherwise.
 *  4. Else, GET/HEAD only, If-Modified-Since valid and the key exists:
 *     false iff Last-Modified <= date: ETAGKV_NOT_MODIFIED.
 *  5. Otherwise ETAGKV_OK: perform the operation.
 *
 * current is the key's metadata, or NULL (or exists == 0) when absent.  c
 * may be NULL (no conditions).  Pure: touches no store.  Returns one of the
 * statuses above, or ETAGKV_INVALID_ARGUMENT for an unknown method. */
ETAGKV_API etagkv_status etagkv_cond_evaluate(const etagkv_cond *c,
                                              etagkv_method method,
                                              const etagkv_meta *current);

/** The step of the evaluation above that decided an outcome: which
 * condition made a request ETAGKV_PRECONDITION_FAILED (or
 * ETAGKV_NOT_MODIFIED).  Numbers are append-only. */
typedef enum etagkv_cond_step {
    /** No condition decided: the conditions held, there were none, or the
     * outcome was step 0's ETAGKV_NOT_FOUND. */
    ETAGKV_STEP_NONE = 0,
    ETAGKV_STEP_IF_REVISION = 1,         /**< step R: ETagKV-If-Revision */
    ETAGKV_STEP_IF_MATCH = 2,            /**< step 1: If-Match */
    ETAGKV_STEP_IF_UNMODIFIED_SINCE = 3, /**< step 2: If-Unmodified-Since */
    ETAGKV_STEP_IF_NONE_MATCH = 4,       /**< step 3: If-None-Match */
    ETAGKV_STEP_IF_MODIFIED_SINCE = 5    /**< step 4: If-Modified-Since */
} etagkv_cond_step;

/** etagkv_cond_evaluate(), also saying which step decided: *step_out (may
 * be NULL) gets the step whose condition was false when the result is
 * ETAGKV_PRECONDITION_FAILED or ETAGKV_NOT_MODIFIED, else
 * ETAGKV_STEP_NONE.  etagkv_cond_evaluate() is this function; the two can
 * never disagree.  Pure; returns as etagkv_cond_evaluate(). */
ETAGKV_API etagkv_status etagkv_cond_explain(const etagkv_cond *c,
                                             etagkv_method method,
                                             const etagkv_meta *current,
                                             etagkv_cond_step *step_out);

/** The name of the header a step evaluates ("If-Match",
 * "ETagKV-If-Revision", ...), or "none" for ETAGKV_STEP_NONE; a static
 * string.  An unknown value gives "unknown". */
ETAGKV_API const char *etagkv_cond_step_name(etagkv_cond_step step);

/* ---------------------------------------------------------------------------
 * The store
 * ------------------------------------------------------------------------- */

/** An open store.  Safe to share between threads.  Readers never block
 * writers and writers never block readers (LMDB MVCC). */
typedef struct etagkv_store etagkv_store;

/** Durability of an acknowledged write, and what a reader sees before it
 * (docs/guarantees.md, "Sync modes"). */
typedef enum etagkv_sync_mode {
    /** Default.  A write returns only after its transaction is on stable
     * storage (fsync): survives process crash and power loss.  Readers
     * see a transaction only once it is durable: LMDB publishes it to
     * readers after its synchronous meta page write. */
    ETAGKV_SYNC = 0,
    /** A write returns after its transaction is in the OS page cache:
     * survives a process crash, not an OS crash or power loss.  LMDB
     * (MDB_NOSYNC) warns that a system crash may then lose the last
     * transactions, or corrupt the store if the file system does not
     * preserve write order.  etagkv_store_close() syncs. */
    ETAGKV_NOSYNC = 1,
    /** Acknowledged writes are as durable as in ETAGKV_SYNC (they survive
     * a power loss), with one flush per commit instead of two: a commit's
     * meta page is written without a flush (LMDB's MDB_NOMETASYNC) and a
     * batch is acknowledged only once a later flush -- the next batch's
     * commit, or a flush of its own when nobody is queued -- covered it.
     * The price: a reader (a get, a listing, the change feed, a backup,
     * another process) may see a transaction up to one flush before it is
     * durable and before its writers return; after a power loss such a
     * transaction may be gone although it was read.  Opt-in (see
     * docs/design.md, "One flush per commit"). */
    ETAGKV_SYNC_PIPELINED = 2
} etagkv_sync_mode;

/** Wall clock in nanoseconds since the epoch; replaceable for tests.  It
 * is called from the caller's threads and from the library's own (the
 * committer and the lease sweeper), so it must be thread-safe. */
typedef uint64_t (*etagkv_clock_fn)(void *ctx);

/** Options for etagkv_store_open().  Initialise with etagkv_options_init()
 * and then change what you need; fields may be appended in later versions,
 * never removed or reordered.  A numeric field left 0 takes its default.
 * Map sizes are rounded up to a multiple of the OS page size. */
typedef struct etagkv_options {
    etagkv_sync_mode sync_mode; /**< default ETAGKV_SYNC */
    /** Largest value accepted by put; default 64 MiB, at most
     * ETAGKV_MAX_VALUE_BYTES_LIMIT. */
    uint64_t max_value_bytes;
    /** LMDB map size to start with; default 64 MiB, at least 1 MiB (a
     * smaller value is raised to 1 MiB, so map_max_bytes below 1 MiB is
     * refused as below it).  The map grows by itself (doubling) when a
     * write needs more room.  More than the process can map is refused
     * before any file is created. */
    uint64_t map_size_bytes;
    /** Map size ceiling; writes that need more fail with ETAGKV_STORE_FULL
     * and change nothing.  Default 1 TiB (virtual address space only; the
     * file grows with the data).  Must be >= map_size_bytes. */
    uint64_t map_max_bytes;
    /** Maximum concurrent read transactions (LMDB maxreaders); default
     * 512, at most 65536. */
    unsigned max_readers;
    /** Clock used for created/modified; NULL for the system real-time
     * clock. */
    etagkv_clock_fn clock;
    void *clock_ctx; /**< passed to clock */
    /** How long the outcome of a write with an idempotency key is kept
     * for replay, in seconds; default 24 h. */
    uint64_t idempotency_retention_s;
    /** Most idempotency keys retained at once; default 1,000,000.  Every
     * retained entry counts, an expired one too until it is purged (a few
     * per write transaction).  When the table is full, a write with a new
     * key first purges up to 1,024 expired entries, and if none was
     * expired it is refused with ETAGKV_IDEMPOTENCY_FULL. */
    uint64_t idempotency_max_keys;
    /** Permission bits of the store's files (data.mdb, lock.mdb) when they
     * are created; default 0600 (ETAGKV_FILE_MODE_DEFAULT), so values are
     * readable by the owner only.  The process umask still applies.  Must
     * include owner read and write (0600) and nothing beyond 0777.  Files
     * that exist keep their mode.  The directory is the caller's: make it
     * 0700, or wider to match (0750 for 0640). */
    unsigned file_mode;
    /** Non-zero: open an existing store for reading only (LMDB's
     * MDB_RDONLY).  Nothing is created or written: no directory, no
     * data.mdb, no lock.mdb, no format marker; every write returns
     * ETAGKV_READ_ONLY.  Works on a read-only file system and on a store
     * whose files this process may read but not write (another user's).
     * The reader registers in the store's lock file when it may write
     * that file, so writers in other processes keep its snapshot intact.
     * Otherwise (lock.mdb absent, on a read-only file system, or not
     * writable by this process) it opens without the lock file
     * (MDB_NOLOCK): safe while no process writes the store; with a live
     * writer elsewhere, a long read may see pages the writer reuses.
     * Default 0: read-write, creating the store if the directory holds
     * none. */
    int read_only;
    /** Most events the change log keeps (etagkv_changes()); default
     * 100,000, give or take a slack: the log may pass it by max / 64 (at
     * most 256 events; none below 64), and the write transaction that
     * passes the slack trims it back to the bound (at most as many as it
     * appended, plus 16, plus the slack; on etcd, at most as many as it
     * appended plus 16, and the commits after it go on), never in one
     * long pause; reading events older than the window is
     * ETAGKV_COMPACTED. */
    uint64_t changes_max_events;
    /** Age in seconds after which an event is trimmed from the change log,
     * whatever the count; default 3,600 (one hour). */
    uint64_t changes_retention_s;
    /** Most operations in one transaction (etagkv_txn_commit()); default
     * ETAGKV_TXN_MAX_OPS_DEFAULT (128).  A larger transaction is refused
     * with ETAGKV_TXN_TOO_LARGE and nothing applied. */
    uint64_t max_txn_ops;
    /** Most bytes in one transaction: the sum of its keys, values and
     * content types; default ETAGKV_TXN_MAX_BYTES_DEFAULT (16 MiB).  A
     * larger one is refused with ETAGKV_TXN_TOO_LARGE. */
    uint64_t max_txn_bytes;
    /** Shortest and longest TTL etagkv_lease_grant() accepts, in ms;
     * defaults ETAGKV_LEASE_MIN_TTL_MS_DEFAULT (100 ms) and
     * ETAGKV_LEASE_MAX_TTL_MS_DEFAULT (24 h).  min must be <= max. */
    uint64_t lease_min_ttl_ms;
    uint64_t lease_max_ttl_ms;
    /** Most live leases at once; default ETAGKV_MAX_LEASES_DEFAULT
     * (1,000,000).  A grant beyond it is ETAGKV_LEASE_LIMIT. */
    uint64_t max_leases;
    /** Most keys attached to one lease; default
     * ETAGKV_MAX_LEASE_KEYS_DEFAULT (10,000).  A put that would attach one
     * more is ETAGKV_CONFLICT, nothing written: a lease's revoke is one
     * commit, which must stay within what a commit can hold (on etcd one
     * Txn within --max-txn-ops, several operations per key:
     * docs/deploy.md). */
    uint64_t max_lease_keys;
} etagkv_options;

/** Fill o with the defaults described above.  NULL is accepted (no-op). */
ETAGKV_API void etagkv_options_init(etagkv_options *o);

/** Open (creating if needed) the store in directory dir, which must exist:
 * the library never creates the directory.  With opts->read_only the store
 * must exist too, and nothing is created.  opts may be NULL for defaults.  One
 * process may open a store only once at a time (an LMDB rule, enforced: a
 * second open in the same process is ETAGKV_INVALID_ARGUMENT); several
 * processes may open the same store.
 *
 * Returns ETAGKV_OK and *out; on failure *out is NULL and:
 *  ETAGKV_INVALID_ARGUMENT  NULL dir/out, inconsistent options, or the
 *                           store is already open in this process;
 *  ETAGKV_NOT_FOUND         the directory does not exist (detail "<dir>:
 *                           directory does not exist"), or, read_only,
 *                           it holds no store (no data.mdb);
 *  ETAGKV_IO_ERROR          dir is not a directory, or is not writable
 *                           (not read_only), or another I/O error (see
 *                           etagkv_last_error_detail);
 *  ETAGKV_INCOMPATIBLE      the directory holds an LMDB environment that is
 *                           not an etagkv store of a known format;
 *  ETAGKV_STORE_FULL        the file system is full, or a new store's
 *                           format record does not fit map_max_bytes;
 *  ETAGKV_TORN_STORE        LMDB refuses data.mdb, and the file holds
 *                           nothing but what creating a store writes
 *                           before its first commit (each of its first two
 *                           pages absent, all zeros or LMDB's initial meta
 *                           page, nothing after them): a power loss cut
 *                           the store's creation short.  No write was ever
 *                           committed to it, so removing data.mdb loses
 *                           nothing; the file is left as it is;
 *  ETAGKV_CORRUPT           data.mdb is shorter than its pages in use (a
 *                           copy cut short: detail "... is truncated");
 *                           refused before LMDB reads past its end;
 *  ETAGKV_NO_MEMORY.
 *
 * Creating a store makes it durable before returning: LMDB's initial meta
 * pages are flushed, then the directory (for the names data.mdb and
 * lock.mdb) and its parent (for the directory's own name, in case the
 * caller just created it), in either sync mode.
 *
 * A store on etcd: dir = "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]
 * [?timeout_ms=N]" (the members' client URLs, plain HTTP, etcd >= 3.4; the
 * key prefix; the timeout of one request to etcd, default 15000).  The
 * store is created under the prefix if nothing is there.  Every
 * operation behaves as on LMDB, except that the backups are
 * ETAGKV_UNSUPPORTED, any number of handles and processes may open one
 * prefix (etcd serialises their writes), and a write whose commit got no
 * answer is ETAGKV_OUTCOME_UNKNOWN, never retried by the library, and
 * any call may be ETAGKV_UNAVAILABLE (no endpoint answers, or etcd
 * compacted its history past a listing or a page of changes while it was
 * read: retry) (docs/api.md, docs/design.md).  Returns as above, and:
 *  ETAGKV_INVALID_ARGUMENT  a malformed etcd:// location;
 *  ETAGKV_UNAVAILABLE       no endpoint answers;
 *  ETAGKV_INCOMPATIBLE      the prefix holds keys but no etagkv store;
 *  ETAGKV_NOT_FOUND         read_only, and no store under the prefix. */
ETAGKV_API etagkv_status etagkv_store_open(const char *dir,
                                           const etagkv_options *opts,
                                           etagkv_store **out);

/** Close the store.  Every acknowledged write is already durable in the
 * store's sync mode; writes queued with etagkv_submit() are completed (and
 * their callbacks called) first.  Threads blocked in etagkv_wait() on s
 * are woken and return ETAGKV_CLOSING, and close waits for them to leave;
 * apart from those, no other thread may be using s.  Descriptors from
 * etagkv_notify_open() still open are closed.  NULL is accepted. */
ETAGKV_API void etagkv_store_close(etagkv_store *s);

/** Store-wide figures. */
typedef struct etagkv_stats {
    uint64_t records;  /**< number of keys holding a record */
    uint64_t revision; /**< last committed revision (0 when new) */
    /** The three map figures are LMDB's; a store on etcd has no map,
     * and reports 0 for all three. */
    uint64_t map_size_bytes; /**< current map size */
    uint64_t map_max_bytes;  /**< configured ceiling */
    /** High-water mark of the map: bytes up to the last page ever used.
     * Pages freed by deletes are reused by later writes but not returned,
     * so this does not shrink. */
    uint64_t map_used_bytes;
    uint64_t max_value_bytes; /**< configured value limit */
    /** Write transactions committed by this handle since it was opened.
     * Concurrent writes share transactions (group commit, DESIGN §4), so
     * write_ops / write_txns approximates the mean batch size (a
     * transaction that only records a keyed write's failed precondition
     * counts here but not in write_ops). */
    uint64_t write_txns;
    /** Writes (puts and deletes that changed the store) committed by this
     * handle since it was opened. */
    uint64_t write_ops;
    /** Idempotency keys retained (expired ones included until purged). */
    uint64_t idempotency_keys;
    /** Events in the change log. */
    uint64_t change_events;
    /** The smallest `after` that etagkv_changes() still serves: events of
     * revisions up to it have been trimmed (or predate the log). */
    uint64_t changes_min_after;
    /** Leases in the store (dead ones too until the store expires them). */
    uint64_t leases;
    /** Leases granted, revoked by a caller, and expired by the store,
     * through this handle since it was opened. */
    uint64_t leases_granted;
    uint64_t leases_revoked;
    uint64_t leases_expired;
    /** Writes waiting for their conditions now (etagkv_request.wait_ms). */
    uint64_t writes_waiting;
} etagkv_stats;

/** Read the store's figures into *out: records, revision, the map and
 * idempotency_keys from one consistent snapshot; write_txns and write_ops
 * are counters read at the same moment, outside it.  Returns
 * ETAGKV_OK, ETAGKV_INVALID_ARGUMENT, ETAGKV_IO_ERROR, ETAGKV_CORRUPT or
 * ETAGKV_NO_MEMORY. */
ETAGKV_API etagkv_status etagkv_store_stats(etagkv_store *s, etagkv_stats *out);

/** Bucket bounds an etagkv_histogram has room for. */
#define ETAGKV_HISTOGRAM_BOUNDS 16

/** A histogram of observations, as Prometheus keeps one: fixed buckets,
 * their counts and the sum of everything observed. */
typedef struct etagkv_histogram {
    /** Upper bounds of the buckets, inclusive and increasing, in the
     * histogram's unit; le[0..bounds) are used. */
    uint64_t le[ETAGKV_HISTOGRAM_BOUNDS];
    size_t bounds; /**< how many of le are used (at most 16) */
    /** count[i]: observations in (le[i-1], le[i]] (count[0]: up to
     * le[0]); count[bounds]: above le[bounds-1].  Not cumulative: the
     * total is the sum of count[0..bounds]. */
    uint64_t count[ETAGKV_HISTOGRAM_BOUNDS + 1];
    uint64_t sum; /**< the sum of the observations, in the unit */
} etagkv_histogram;

/** The group commit's figures since the handle was opened (DESIGN §4). */
typedef struct etagkv_commit_stats {
    /** Per committed write transaction, nanoseconds from the start of its
     * work (LMDB's writer lock held: waiting for the lock is not counted)
     * until its commit call returned: evaluating and applying its batch,
     * then committing.  It is then durable in ETAGKV_SYNC; in
     * ETAGKV_SYNC_PIPELINED it is visible but its acknowledgement waits
     * for a later flush, which is not counted here.  Bounds 10 µs to
     * 1 s. */
    etagkv_histogram commit_ns;
    /** Per committed write transaction, nanoseconds in the storage
     * engine's commit call alone: writing the dirty pages and, in sync
     * mode, flushing them and the meta page (LMDB: fdatasync, then a
     * synchronous meta write).  In pipelined mode one flush, of the
     * dirty pages, which also makes the previous commit's meta page
     * durable; the meta page is written unflushed.  In nosync mode only
     * the writes.  Bounds 10 µs to 1 s. */
    etagkv_histogram sync_ns;
    /** Per batch led, the operations it carried (a transaction counts as
     * one), committed or not: a batch of refused preconditions commits
     * nothing but is counted.  Bounds 1, 2, 4, ... 256 (the batch cap). */
    etagkv_histogram batch_ops;
} etagkv_commit_stats;

/** Read the group commit's histograms into *out.  Each figure is a
 * counter read without a lock, one at a time: while writes commit, a
 * bucket may already count an observation that sum does not yet hold.
 * Cheap (no transaction); safe from any thread while s is open.  Returns
 * ETAGKV_OK, or ETAGKV_INVALID_ARGUMENT when s or out is NULL. */
ETAGKV_API etagkv_status etagkv_store_commit_stats(etagkv_store *s,
                                                   etagkv_commit_stats *out);

/* ---------------------------------------------------------------------------
 * Backup and verification
 * ------------------------------------------------------------------------- */

/** Write a consistent, compacted copy of the store into directory dir, as
 * a new store file (dir/data.mdb, mode 0600) that etagkv_store_open() of dir
 * opens as a store: LMDB's mdb_env_copyfd2() with MDB_CP_COMPACT, which
 * copies one read snapshot and leaves out free pages.  The copy holds
 * exactly the writes committed when the backup began: every write
 * acknowledged before the call, none that commits after it began, so its
 * revision (etagkv_stats.revision) names the snapshot.  Writers keep
 * running meanwhile (LMDB readers never block writers), except that a write
 * that needs the map to grow waits until the backup ends.  The copy is
 * written as dir/data.mdb.partial, flushed (fsync), then given the name
 * data.mdb, and dir is flushed, before the call returns: a backup cut
 * short leaves only the .partial file.  dir must exist and hold no
 * data.mdb: a backup never overwrites anything.  Works on a read-only
 * store (etagkv_options.read_only); one opened without its lock file
 * (lock.mdb missing or not writable) is invisible to writers in other
 * processes, so a backup during which one of them committed fails
 * (ETAGKV_IO_ERROR, detail "... without its lock file ...") rather than
 * risk a copy of pages the writer reused.
 *
 * Returns ETAGKV_OK; ETAGKV_NOT_FOUND (dir does not exist);
 * ETAGKV_INVALID_ARGUMENT (NULL s or dir; dir/data.mdb exists, detail
 * "... exists: a backup never overwrites a store"; or dir/data.mdb.partial
 * exists: a backup running or cut short); ETAGKV_STORE_FULL (the
 * target file system is full); ETAGKV_IO_ERROR, ETAGKV_NO_MEMORY;
 * ETAGKV_UNSUPPORTED for a store on etcd (back the cluster up with
 * "etcdctl snapshot save"), with nothing written.  On failure the partial
 * file is removed and dir is as it was. */
ETAGKV_API etagkv_status etagkv_store_backup(etagkv_store *s, const char *dir);

/** As etagkv_store_backup(), but write the copy to the file descriptor fd
 * (a file, a pipe, a socket), from its current position; fd is neither
 * flushed nor closed: the caller owns it.  The bytes are a complete
 * data.mdb: put them, under that name, into an empty directory to have a
 * store (the etagkv tool's "restore" does that and verifies).  A process
 * writing to a pipe should ignore SIGPIPE, so that a reader going away is
 * ETAGKV_IO_ERROR rather than death.
 *
 * Returns ETAGKV_OK; ETAGKV_INVALID_ARGUMENT (NULL s, or fd < 0);
 * ETAGKV_STORE_FULL (ENOSPC); ETAGKV_IO_ERROR (a failed write, detail with
 * the cause: EPIPE, EBADF, ...; or the store written under a backup made
 * without its lock file, as above: discard the bytes); ETAGKV_NO_MEMORY;
 * ETAGKV_UNSUPPORTED for a store on etcd (nothing written).  On failure an
 * unknown part of the copy has been written to fd. */
ETAGKV_API etagkv_status etagkv_store_backup_fd(etagkv_store *s, int fd);

/** Check the store from its bytes, in one read snapshot: every record
 * decodes (known layout version, lengths that fit), its key is 1 to
 * ETAGKV_KEY_MAX bytes, its value hashes to its stored ETag (XXH3-128
 * recomputed from every byte), and its revisions and times are in order:
 * 1 <= create_revision <= mod_revision <= the store's revision, version >=
 * 1, created_ns <= modified_ns.  Revisions are not required to be unique
 * across keys: one multi-key transaction gives every key it writes the same
 * mod_revision.  Reads every value, so it takes as long as reading the
 * whole store; writers keep running meanwhile.  If records_out is not NULL
 * it receives the number of records checked (on failure: those before the
 * bad one).
 *
 * Returns ETAGKV_OK (every record is sound); ETAGKV_CORRUPT at the first
 * record that is not, with a detail naming its key (bytes outside
 * printable ASCII, and '%', as %XX) and what is wrong; ETAGKV_INVALID_ARGUMENT
 * (NULL s); ETAGKV_IO_ERROR, ETAGKV_NO_MEMORY. */
ETAGKV_API etagkv_status etagkv_store_verify(etagkv_store *s,
                                             uint64_t *records_out);

/* ---------------------------------------------------------------------------
 * Copying a store into another (migration between backends)
 * ------------------------------------------------------------------------- */

/** etagkv_store_copy()'s page bounds when 0 is passed: a page into a store
 * on etcd stays inside etcd's default --max-txn-ops (128; each record
 * costs about three operations) and --max-request-bytes (1.5 MiB, values
 * travel base64-encoded); into LMDB a page is one sync of many records. */
#define ETAGKV_COPY_PAGE_RECORDS_ETCD 32u
#define ETAGKV_COPY_PAGE_BYTES_ETCD ((uint64_t)1 << 20)
#define ETAGKV_COPY_PAGE_RECORDS_LMDB 1024u
#define ETAGKV_COPY_PAGE_BYTES_LMDB ((uint64_t)16 << 20)

/** What etagkv_store_copy() did. */
typedef struct etagkv_copy_stats {
    /** The source's revision at the snapshot copied: every write committed
     * up to it is in the copy, none after it. */
    uint64_t revision;
    uint64_t records;     /**< records written into the destination */
    uint64_t value_bytes; /**< the sum of their values' lengths */
    /** Records of the snapshot left out because their key is attached to
     * a lease (DESIGN §9; docs/design.md, "Copying a store"). */
    uint64_t leased_skipped;
    uint64_t pages; /**< destination transactions committed */
    /** Records compared after the copy (the check passed when the call
     * returns ETAGKV_OK): equal to records. */
    uint64_t verified;
} etagkv_copy_stats;

/** Copy every record of src into dst, which must hold no record: the way
 * to move a store between backends (an LMDB directory and a prefix on
 * etcd, either way, or between two of the same kind).  The only way to
 * write a record with times that are not the clock's; normal writes never
 * can.
 *
 * Each record keeps its key, value, content type, ETag (the same bytes
 * give the same XXH3-128 ETag, computed again from the value) and its
 * created_ns and modified_ns, so Last-Modified, and the answers to
 * If-Modified-Since and If-Unmodified-Since, do not change across the
 * copy.  Revisions, versions and the change log are not kept: dst numbers
 * its own, one revision per page (so a record's mod_revision,
 * create_revision and version in dst are dst's, its version 1), and its
 * change log shows each copied record as a put.  Idempotency entries are
 * not copied (a retry of a write made before the copy executes afresh in
 * dst); keys attached to a lease are not copied (counted in
 * leased_skipped), nor are leases.
 *
 * src is read in one snapshot (an LMDB read transaction; on etcd, reads
 * pinned at one etcd revision), so the copy is consistent: writes to src
 * that commit after the call began are not in it -- stop the writers
 * first.  dst is written in pages of at most page_records records and
 * page_bytes bytes of values (0: ETAGKV_COPY_PAGE_*_ETCD or _LMDB, by
 * dst's backend; a record larger than page_bytes goes alone), each one
 * transaction of dst (DESIGN §7) whose puts are create-only, so memory
 * stays bounded whatever the store's size.  A page that etcd refuses as
 * too large is split in halves and tried again.  Then every record of the
 * snapshot is compared with dst (key, ETag, content type, size, created_ns,
 * modified_ns) and dst's record count with the copied one.
 *
 * src may be read-only; dst may not.  Neither may be in use by another
 * thread of the caller meanwhile (other writers of dst break the copy).
 * out (may be NULL) receives the figures so far, also on failure.
 *
 * Returns ETAGKV_OK (copied and checked);
 *  ETAGKV_INVALID_ARGUMENT  NULL src or dst, src == dst, or dst holds
 *                           records (detail "the destination holds N
 *                           records ..."); nothing written;
 *  ETAGKV_CONFLICT          a key appeared in dst while copying, or the
 *                           check found dst different from the snapshot
 *                           (detail names the key); pages committed
 *                           before stay;
 *  ETAGKV_READ_ONLY         dst was opened read-only;
 *  ETAGKV_VALUE_TOO_LARGE   a value over dst's max_value_bytes;
 *  ETAGKV_TXN_TOO_LARGE     etcd refused even a page of one record;
 *  ETAGKV_COMPACTED         etcd compacted its history past src's pinned
 *                           revision during a long copy;
 *  ETAGKV_CORRUPT, ETAGKV_IO_ERROR, ETAGKV_NO_MEMORY, ETAGKV_STORE_FULL,
 *  ETAGKV_UNAVAILABLE, ETAGKV_OUTCOME_UNKNOWN.
 * On failure after the first page, dst holds the pages committed so far:
 * empty it (remove the directory; etcdctl del --prefix) before copying
 * again. */
ETAGKV_API etagkv_status etagkv_store_copy(etagkv_store *src, etagkv_store *dst,
                                           size_t page_records,
                                           uint64_t page_bytes,
                                           etagkv_copy_stats *out);

/* ---------------------------------------------------------------------------
 * Reads
 * ------------------------------------------------------------------------- */

/** Read a record: its value and metadata, subject to the conditions c
 * (may be NULL), evaluated as etagkv_cond_evaluate() does for GET.
 *
 * On ETAGKV_OK, *value_out is a copy of the value (never NULL, even for an
 * empty value) that the caller releases with etagkv_free(), and
 * *value_len_out its length.  value_out may be NULL, and then the call is a
 * HEAD: metadata only, conditions evaluated as for HEAD.  meta_out may be
 * NULL.  On any other status *value_out is NULL.
 *
 * Returns:
 *  ETAGKV_OK                  the record is returned;
 *  ETAGKV_NOT_FOUND           the key is absent (whatever c says, §13.2.1);
 *  ETAGKV_NOT_MODIFIED        If-None-Match or If-Modified-Since was false;
 *                             meta_out holds the current metadata;
 *  ETAGKV_PRECONDITION_FAILED If-Match or If-Unmodified-Since was false;
 *                             meta_out holds the current metadata;
 *  ETAGKV_INVALID_KEY, ETAGKV_KEY_TOO_LONG, ETAGKV_INVALID_ARGUMENT,
 *  ETAGKV_NO_MEMORY, ETAGKV_CORRUPT, ETAGKV_IO_ERROR. */
ETAGKV_API etagkv_status etagkv_get(etagkv_store *s, const void *key,
                                    size_t key_len, const etagkv_cond *c,
                                    void **value_out, size_t *value_len_out,
                                    etagkv_meta *meta_out);

/** Called by etagkv_view() with the value in place.  value and meta are
 * valid only until the callback returns: copy what you keep.  The callback
 * runs inside a read transaction and must not call etagkv functions on the
 * same store. */
typedef void (*etagkv_view_fn)(void *ctx, const void *value, size_t len,
                               const etagkv_meta *meta);

/** Zero-copy read: like etagkv_get(), but instead of copying the value it
 * calls fn once, inside the read transaction, with a pointer into the
 * memory map.  fn is called only when the status is ETAGKV_OK. */
ETAGKV_API etagkv_status etagkv_view(etagkv_store *s, const void *key,
                                     size_t key_len, const etagkv_cond *c,
                                     etagkv_view_fn fn, void *ctx);

/** Called by etagkv_list() for each record in key order.  key and meta are
 * valid only until the callback returns.  Return 0 to continue, non-zero to
 * stop early (etagkv_list then returns ETAGKV_OK).  The callback runs inside
 * a read transaction and must not call etagkv functions on the same
 * store. */
typedef int (*etagkv_list_fn)(void *ctx, const void *key, size_t key_len,
                              const etagkv_meta *meta);

/** List records whose key starts with prefix (prefix_len 0: all keys), in
 * byte order, starting strictly after the key `after` (after_len 0: from
 * the start), calling fn for at most limit records (limit 0: no limit).
 * All calls see one consistent snapshot.  If more_out is not NULL, it is set
 * to 1 when more matching records follow the last one passed to fn (resume
 * by passing that key as `after`), else 0.
 *
 * Returns ETAGKV_OK, ETAGKV_KEY_TOO_LONG (prefix or after too long),
 * ETAGKV_INVALID_ARGUMENT, ETAGKV_CORRUPT, ETAGKV_NO_MEMORY or
 * ETAGKV_IO_ERROR. */
ETAGKV_API etagkv_status etagkv_list(etagkv_store *s, const void *prefix,
                                     size_t prefix_len, const void *after,
                                     size_t after_len, size_t limit,
                                     etagkv_list_fn fn, void *ctx,
                                     int *more_out);

/** etagkv_list(), and the store revision of the snapshot it read in
 * *revision_out (may be NULL): every change up to that revision is in what
 * fn saw, none after it.  Watching from there (etagkv_changes() with
 * after = *revision_out) therefore misses and repeats nothing: list, then
 * watch.  Returns as etagkv_list(); on failure *revision_out is 0. */
ETAGKV_API etagkv_status etagkv_list_revision(
    etagkv_store *s, const void *prefix, size_t prefix_len, const void *after,
    size_t after_len, size_t limit, etagkv_list_fn fn, void *ctx, int *more_out,
    uint64_t *revision_out);

/* ---------------------------------------------------------------------------
 * Writes
 *
 * Conditions are evaluated inside the same LMDB write transaction as the
 * write itself: no other writer can slip between the check and the write.
 * For every write, meta_out (may be NULL) receives the key's state after the
 * call: the new record on success, the unchanged current record (exists 0
 * if absent) on ETAGKV_PRECONDITION_FAILED, so that a caller can rebase
 * without another read.
 * ------------------------------------------------------------------------- */

/** Store value under key with the given content type (NULL: the default
 * ETAGKV_CONTENT_TYPE_DEFAULT), if the conditions c (NULL: none) hold for a
 * PUT.  Writing the same bytes again is still a write: new modified,
 * mod_revision and version; same ETag.  A shorthand for etagkv_write() with
 * a PUT request of these fields, no flags and no idempotency key; use that
 * to keep a replaced record's content type (ETAGKV_WRITE_KEEP_CONTENT_TYPE).
 * Conditions come from etagkv_cond_parse() or the constructors
 * (etagkv_cond_if_match(), etagkv_cond_create_only(),
 * etagkv_cond_update_only()).
 *
 * Returns:
 *  ETAGKV_CREATED              the key was absent and now holds value;
 *  ETAGKV_OK                   the key's record was replaced;
 *  ETAGKV_PRECONDITION_FAILED  a condition was false; nothing written
 *                              (If-Match on an absent key is always false);
 *  ETAGKV_INVALID_KEY          key_len is 0;
 *  ETAGKV_KEY_TOO_LONG         key_len > ETAGKV_KEY_MAX;
 *  ETAGKV_VALUE_TOO_LARGE      value_len > the store's max_value_bytes;
 *  ETAGKV_INVALID_HEADER       content_type is not a safe header value:
 *                              empty, longer than ETAGKV_CONTENT_TYPE_MAX,
 *                              leading or trailing space/tab, or a byte
 *                              outside visible ASCII, space and tab;
 *  ETAGKV_INVALID_ARGUMENT     NULL s, key or (value_len > 0) value;
 *  ETAGKV_STORE_FULL           the map cannot grow past its ceiling, or
 *                              the file system is full; the store is
 *                              unchanged and stays usable;
 *  ETAGKV_READ_ONLY            the store was opened with
 *                              etagkv_options.read_only (HTTP 405: only
 *                              GET and HEAD are allowed on it);
 *  ETAGKV_IO_ERROR, ETAGKV_NO_MEMORY, ETAGKV_CORRUPT. */
ETAGKV_API etagkv_status etagkv_put(etagkv_store *s, const void *key,
                                    size_t key_len, const void *value,
                                    size_t value_len, const char *content_type,
                                    const etagkv_cond *c,
                                    etagkv_meta *meta_out);

/** Delete key if the conditions c (NULL: none) hold for a DELETE.  A
 * shorthand for etagkv_write() with a DELETE request of these fields and
 * no idempotency key.
 *
 * Returns ETAGKV_OK (deleted; meta_out->exists is 0 and mod_revision is the
 * revision of the delete), ETAGKV_NOT_FOUND (absent, whatever c says,
 * §13.2.1), ETAGKV_PRECONDITION_FAILED, or the errors of etagkv_put(). */
ETAGKV_API etagkv_status etagkv_delete(etagkv_store *s, const void *key,
                                       size_t key_len, const etagkv_cond *c,
                                       etagkv_meta *meta_out);

/* ---------------------------------------------------------------------------
 * Writes described by a request, with exactly-once retries
 * ------------------------------------------------------------------------- */

/** etagkv_request.flags: a PUT that replaces a record keeps the record's
 * content type, when the request's content_type is NULL; a PUT that creates
 * a record gives it ETAGKV_CONTENT_TYPE_DEFAULT.  An explicit content_type
 * wins: with one, the flag has no effect.  Ignored by DELETE. */
#define ETAGKV_WRITE_KEEP_CONTENT_TYPE 0x1u

/** etagkv_request.flags: when the write fails with
 * ETAGKV_PRECONDITION_FAILED on a key that holds a record, return a copy
 * of that record's current value in etagkv_result.current_value, read in
 * the same transaction that evaluated the conditions (so it matches
 * etagkv_result.meta).  A client rebases from it without another read
 * (HTTP: Prefer: return=representation on a 412).  No value for a replay,
 * an absent key or any other outcome. */
#define ETAGKV_WRITE_RETURN_CURRENT 0x2u

/** etagkv_request.flags: the write does not depend on the calling
 * thread's earlier etagkv_submit() writes that are not done yet, so it
 * need not be applied after them.  Without it (the default), a thread's
 * writes are applied in the order it made them.  With it, a conditional
 * write may be answered at once with ETAGKV_PRECONDITION_FAILED against
 * the latest committed state, without a place in a batch, while those
 * writes are still queued: for a server whose thread submits writes of
 * many independent clients (etagkv-server sets it on every request). */
#define ETAGKV_WRITE_INDEPENDENT 0x4u

/** One write.  Fill it with designated initialisers; unused fields 0/NULL. */
typedef struct etagkv_request {
    etagkv_method method; /**< ETAGKV_METHOD_PUT or ETAGKV_METHOD_DELETE */
    const void *key;      /**< the record's key */
    size_t key_len;
    const void *value; /**< PUT: the value (may be NULL if 0 bytes) */
    size_t value_len;
    const char *content_type; /**< PUT: NULL for the default */
    const etagkv_cond *cond;  /**< NULL: unconditional */
    /** Optional idempotency key (draft-ietf-httpapi-idempotency-key-header):
     * opaque bytes, 1 to ETAGKV_IDEMPOTENCY_KEY_MAX; NULL/0 for none. */
    const void *idempotency_key;
    size_t idempotency_key_len;
    /** ETAGKV_WRITE_* bits, or 0; an unknown bit is
     * ETAGKV_INVALID_ARGUMENT. */
    unsigned flags;
    /** PUT: the lease (etagkv_lease_grant()) to attach the key to, or 0
     * for none.  A key is attached to at most one lease: a PUT with a
     * lease moves the key to it, a PUT without one detaches the key, and
     * a DELETE detaches it.  A lease that is unknown, revoked or past its
     * deadline makes the write ETAGKV_CONFLICT with nothing written,
     * before any condition is evaluated (RFC 9110 §13.2.1: the
     * unconditional request would not succeed either).  Non-zero on a
     * DELETE is ETAGKV_INVALID_ARGUMENT. */
    uint64_t lease;
    /** Milliseconds the write may wait for its conditions, or 0 (at most
     * ETAGKV_WAIT_MAX_MS).  When the conditions fail, the write is not
     * answered with ETAGKV_PRECONDITION_FAILED at once: it waits, and
     * every transaction that changes its key (a write, a multi-key
     * transaction, the expiry of a lease) evaluates it again, in that
     * same transaction, right after the change; writes waiting on one
     * key in the order they arrived.  The first time its conditions hold
     * it is applied there, with the revision after the change's, and
     * acknowledged when that transaction is: so a lock's release and the
     * next create-only acquire commit together, with one sync, and no
     * waiter polls.  When wait_ms passes first, the next transaction
     * evaluates it once more and that is the answer: usually
     * ETAGKV_PRECONDITION_FAILED with the state then (the current value
     * too, with ETAGKV_WRITE_RETURN_CURRENT).  Conditions that hold at
     * once make it an ordinary write.  Other outcomes (a dead lease's
     * ETAGKV_CONFLICT, errors) are answered at once.  A waiting write
     * takes its place in the store's order when it is applied, not when
     * it was made: a later write of the same caller may go first.  At
     * most 4,096 writes wait in one store; past that a failing write is
     * answered at once.  Closing the store ends every wait.  Not with an
     * idempotency key (ETAGKV_INVALID_ARGUMENT: a retry could not tell a
     * wait from its outcome).  On etcd, a commit made through another
     * handle or front end (seen by the store's watch) has every waiting
     * write of this handle evaluated again, in a transaction of its own:
     * the same outcome, a few ms later and one read per waiting write. */
    uint32_t wait_ms;
} etagkv_request;

/** The longest wait of etagkv_request.wait_ms: ten minutes. */
#define ETAGKV_WAIT_MAX_MS 600000u

/** End every write's wait (etagkv_request.wait_ms) now: each is evaluated
 * once more by the next transaction and answered (a 412, unless its
 * conditions hold by then), and from now on writes of this handle do not
 * wait: a failing one is answered at once.  For a server's shutdown, which
 * answers everything it holds before it stops.  Returns ETAGKV_OK, or
 * ETAGKV_INVALID_ARGUMENT for NULL s. */
ETAGKV_API etagkv_status etagkv_end_waits(etagkv_store *s);

/** End the wait of one write submitted with etagkv_submit() and done
 * context ctx, as if its wait_ms had run out now: the next transaction
 * evaluates it once more and done is called with the outcome (a 412,
 * unless its conditions hold by then); if it has not been evaluated yet,
 * its first failure is its answer.  For a caller whose client gave up
 * (a server whose client hung up): its write no longer waits to be
 * applied for nobody.  May block while a batch commits.  Returns
 * ETAGKV_OK when such a write was found; ETAGKV_NOT_FOUND when none is
 * queued or waiting (not submitted with a wait, being answered, or
 * answered already); or
 * ETAGKV_INVALID_ARGUMENT for NULL s.  ctx must identify one write: the
 * caller may not call it for a ctx whose done may already have been
 * called and reused. */
ETAGKV_API etagkv_status etagkv_end_wait(etagkv_store *s, const void *ctx);

/** The outcome of etagkv_write(). */
typedef struct etagkv_result {
    etagkv_status status; /**< as returned */
    etagkv_meta meta;     /**< the key's state after the write, as for
                               etagkv_put(); for a replay, as recorded */
    int replayed;         /**< 1 if this is the recorded outcome of an earlier
                               execution with the same idempotency key */
    /** ETAGKV_PRECONDITION_FAILED: the step that decided it -- what
     * etagkv_cond_explain() says of the request's conditions over meta,
     * the state they were evaluated against (also for a replay, whose
     * conditions are part of its fingerprint).  Else ETAGKV_STEP_NONE.
     * etagkv_cond_superseded() says when that condition stopped holding. */
    etagkv_cond_step step;
    /** With ETAGKV_WRITE_RETURN_CURRENT, on ETAGKV_PRECONDITION_FAILED of a
     * key that exists (and not replayed): a copy of its current value that
     * the receiver (the caller of etagkv_write(), or the etagkv_done_fn)
     * owns and releases with etagkv_free(); never NULL then, even for an
     * empty value, unless memory ran out.  Otherwise NULL and 0. */
    void *current_value;
    size_t current_len;
} etagkv_result;

/** Perform the write described by req: a PUT (as etagkv_put()) or a DELETE
 * (as etagkv_delete()).
 *
 * With an idempotency key, the write is exactly-once: its first execution
 * records, in the same transaction as the write itself, the outcome
 * (status and resulting metadata; a failed precondition or a missing key
 * is an outcome too) together with a fingerprint of the request: method,
 * record key, XXH3-128 of the value, content type (or, with
 * ETAGKV_WRITE_KEEP_CONTENT_TYPE and no content type, keeping it) and the
 * parsed conditions.  A repeat with the same key and fingerprint within the
 * retention window returns the recorded outcome with res->replayed = 1 and
 * writes nothing, even if other writes happened since.  A repeat that
 * arrives while the first is still executing waits for it (writes are
 * serialised by the commit queue and LMDB's writer lock) and is then a
 * replay: it never runs twice and never needs a "still executing" answer.
 *
 * Returns the statuses of etagkv_put()/etagkv_delete(), and:
 *  ETAGKV_IDEMPOTENCY_MISMATCH  the key was used for a different request
 *                               (HTTP 422); nothing written;
 *  ETAGKV_IDEMPOTENCY_FULL      the table holds idempotency_max_keys
 *                               entries (see the option); nothing written;
 *  ETAGKV_INVALID_HEADER        idempotency key longer than
 *                               ETAGKV_IDEMPOTENCY_KEY_MAX;
 *  ETAGKV_INVALID_ARGUMENT      NULL s or req, an unknown method, an
 *                               unknown flag, or a NULL idempotency key
 *                               with a nonzero length.
 * res may be NULL; otherwise res->status is the return value and res->meta
 * the key's state as for etagkv_put() -- zeroed (exists = 0) when the
 * write failed before reading it: mismatch, table full, store errors. */
ETAGKV_API etagkv_status etagkv_write(etagkv_store *s,
                                      const etagkv_request *req,
                                      etagkv_result *res);

/** Called once by etagkv_submit() when the write is done: durable in the
 * store's sync mode, or failed.  res is valid only during the call; during
 * it, etagkv_last_error_detail() on the calling thread describes a
 * failure, as after a blocking call.  The callbacks of one batch are
 * called one after another in submission order; callbacks of different
 * batches may run at the same time on different threads.  Runs on
 * a thread of the library's (or of another writer blocked in a write call),
 * or, for a conditional write refused at once because its conditions fail
 * against the latest committed state (not in ETAGKV_SYNC_PIPELINED), on
 * the submitting thread before etagkv_submit() returns; so it must not block:
 * it may call etagkv_submit() and the read functions, but not the blocking
 * write functions (they would wait for a batch that this very thread is to
 * commit). */
typedef void (*etagkv_done_fn)(void *ctx, const etagkv_result *res);

/** Asynchronous etagkv_write(): queue the write and return at once; done
 * is called later, exactly once, with the outcome etagkv_write() would have
 * returned.  Queued writes join the same group-commit batches as blocking
 * ones (DESIGN §4), so a server can have many writes waiting for one sync
 * without holding a thread for each.
 *
 * Everything req points to (key, value, content type, cond, idempotency
 * key) must stay valid and unchanged until done is called; req itself may
 * go at once.  etagkv_store_close() waits for every submitted write.
 *
 * Returns ETAGKV_OK (done will be called), or, without calling done, the
 * argument errors of etagkv_write() (ETAGKV_INVALID_KEY, KEY_TOO_LONG,
 * VALUE_TOO_LARGE, INVALID_HEADER, INVALID_ARGUMENT for NULL s, req or
 * done), ETAGKV_READ_ONLY or ETAGKV_NO_MEMORY. */
ETAGKV_API etagkv_status etagkv_submit(etagkv_store *s,
                                       const etagkv_request *req,
                                       etagkv_done_fn done, void *ctx);

/* ---------------------------------------------------------------------------
 * Read-modify-write
 * ------------------------------------------------------------------------- */

/** Called by etagkv_update() with the current value (NULL and 0, and meta
 * with exists 0, when the key is absent); old_value stays valid until the
 * attempt's write has returned, so *new_value may point into it.  Sets
 * *new_value and *new_len to the value to store; memory of the callback's
 * own must stay valid until the next call of the callback or the return of
 * etagkv_update().
 * Returns ETAGKV_OK to write, or any other status to stop: etagkv_update()
 * then returns that status and writes nothing. */
typedef etagkv_status (*etagkv_update_fn)(void *ctx, const void *old_value,
                                          size_t old_len,
                                          const etagkv_meta *old_meta,
                                          const void **new_value,
                                          size_t *new_len);

/** Optimistic read-modify-write: read the key, call fn, and write its
 * result conditionally on the validator just read (If-Match on the ETag
 * read, or If-None-Match: * when the key was absent).  If another writer
 * changed the key in between (ETAGKV_PRECONDITION_FAILED), call fn again
 * with the current value, which the failed write returned
 * (ETAGKV_WRITE_RETURN_CURRENT: no second read), at most max_attempts
 * times in all
 * (0: default 16).  Never replays a stale validator, and never runs fn
 * inside a write transaction.  The new record keeps the content type it
 * had (the default for a new key), but not its lease: like any put without
 * one, it detaches the key from a lease (to keep one, use etagkv_write()
 * with .lease).
 *
 * Returns ETAGKV_OK or ETAGKV_CREATED on success (meta_out: the new
 * record); ETAGKV_PRECONDITION_FAILED when every attempt lost the race
 * (meta_out: the record as last seen); the status fn returned to stop; or an
 * error of etagkv_get()/etagkv_put(). */
ETAGKV_API etagkv_status etagkv_update(etagkv_store *s, const void *key,
                                       size_t key_len, etagkv_update_fn fn,
                                       void *ctx, unsigned max_attempts,
                                       etagkv_meta *meta_out);

/* ---------------------------------------------------------------------------
 * Watching changes (DESIGN §8)
 *
 * Every committed change -- a put, a delete, each write of a transaction --
 * is appended to a change log in the same transaction as the change, so the
 * log and the records always agree, after a crash too.  The log keeps a
 * window bounded by etagkv_options.changes_max_events and
 * changes_retention_s, trimmed a few events per write transaction.
 * ------------------------------------------------------------------------- */

/** The kind of a change. */
typedef enum etagkv_event_type {
    ETAGKV_EVENT_PUT = 1,   /**< the key was created or replaced */
    ETAGKV_EVENT_DELETE = 2 /**< the key was deleted */
} etagkv_event_type;

/** One event of the change log.  Filled by the library; valid only during
 * the etagkv_event_fn call that receives it. */
typedef struct etagkv_event {
    etagkv_event_type type;
    uint64_t revision; /**< the store revision of the change; the events of
                            one transaction share it */
    const void *key;   /**< the key (not NUL-terminated) */
    size_t key_len;
    /** put: the new ETag, quoted, NUL-terminated; delete: "" */
    char etag[ETAGKV_ETAG_SIZE];
    uint64_t mod_revision;    /**< equal to revision */
    uint64_t create_revision; /**< put: the record's; delete: 0 */
    uint64_t version;         /**< put: the record's; delete: 0 */
    /** put: the record's modified_ns; delete: the wall clock of the
     * delete */
    uint64_t modified_ns;
} etagkv_event;

/** Called by etagkv_changes() for each event, in revision order (and, in
 * one revision, in the order the transaction wrote them).  Return 0 to go
 * on, non-zero to stop (see etagkv_changes() for where to resume).  It
 * runs inside a read transaction and must not call etagkv functions on the
 * same store. */
typedef int (*etagkv_event_fn)(void *ctx, const etagkv_event *ev);

/** etagkv_changes() flag: `prefix` is one whole key, not a prefix. */
#define ETAGKV_CHANGES_KEY 0x1u

/** The events one etagkv_changes() call with a limit looks at, matching
 * or not, before it stops at the next revision boundary (see
 * etagkv_changes()). */
#define ETAGKV_CHANGES_SCAN_MAX 4096

/** What etagkv_changes() read. */
typedef struct etagkv_changes_page {
    uint64_t revision;  /**< the store revision of the snapshot read */
    uint64_t next;      /**< pass as `after` to read on */
    uint64_t min_after; /**< the smallest `after` the log still serves */
    size_t events;      /**< events passed to fn */
    int more;           /**< 1 if the read stopped at limit or at fn's wish */
} etagkv_changes_page;

/** Read the change log: the events of revisions after `after`, of keys
 * starting with prefix (prefix_len 0: every key; with ETAGKV_CHANGES_KEY
 * in flags, of the one key prefix), oldest first, calling fn for each.
 * All calls see one snapshot.
 *
 * limit (0: no limit) bounds the events passed to fn, except that the
 * events of one revision are never split: once limit is reached the
 * remaining events of the last revision are still passed, so a page may
 * exceed limit.  page (may be NULL) receives the snapshot revision,
 * min_after, the count, and next: the last revision passed when the read
 * stopped at limit (more = 1), else the snapshot revision (everything up
 * to it was looked at).  When fn returns non-zero the read stops at once
 * with more = 1 and next = that event's revision - 1, so that reading on
 * from next repeats that revision's events rather than lose any.
 *
 * With a limit, one call also looks at about ETAGKV_CHANGES_SCAN_MAX
 * events of the log at most, matching the prefix or not (it finishes the
 * revision it is in): a page for a rare key far behind thus costs a
 * bounded read.  Past that bound it stops with more = 1 and next = the
 * last revision looked at in full, possibly with no event passed; read on
 * from next.  limit 0 reads to the end, however far.
 *
 * Returns:
 *  ETAGKV_OK           (after >= the snapshot revision: no events);
 *  ETAGKV_COMPACTED    after < min_after: events after `after` were
 *                      trimmed (or the store is older than its log); no
 *                      fn call; page->min_after says where the log starts
 *                      (re-read the state, e.g. etagkv_list_revision(),
 *                      and watch from its revision);
 *  ETAGKV_INVALID_ARGUMENT (NULL s or fn, NULL prefix with prefix_len > 0,
 *  an unknown flag, ETAGKV_CHANGES_KEY with prefix_len 0),
 *  ETAGKV_KEY_TOO_LONG, ETAGKV_CORRUPT, ETAGKV_IO_ERROR, ETAGKV_NO_MEMORY.
 * Thread-safe; a read transaction like etagkv_list(). */
ETAGKV_API etagkv_status etagkv_changes(etagkv_store *s, const void *prefix,
                                        size_t prefix_len, unsigned flags,
                                        uint64_t after, size_t limit,
                                        etagkv_event_fn fn, void *ctx,
                                        etagkv_changes_page *page);

/** Block until the store's revision is greater than `after`, or timeout_ms
 * passes (negative: no timeout), without polling: the thread sleeps until a
 * write transaction of this handle commits (durably) and then checks.
 * On LMDB, commits made by another process that has the same store open
 * do not wake it; they are seen at the next local commit or the timeout
 * (the etagkv tool's watch command notices them by watching data.mdb).  On
 * etcd, commits through any handle or process on the prefix wake it (an
 * etcd Watch on the store's revision).
 * *revision_out (may be NULL) gets the store revision last seen.
 * Safe from any number of threads at once.
 *
 * Returns ETAGKV_OK (revision > after), ETAGKV_NOT_MODIFIED (timed out),
 * ETAGKV_CLOSING (etagkv_store_close() began: returns at once),
 * ETAGKV_INVALID_ARGUMENT (NULL s), or a read error (ETAGKV_IO_ERROR,
 * ETAGKV_CORRUPT). */
ETAGKV_API etagkv_status etagkv_wait(etagkv_store *s, uint64_t after,
                                     int64_t timeout_ms,
                                     uint64_t *revision_out);

/** For event loops: a new file descriptor (a non-blocking, close-on-exec
 * Linux eventfd) that becomes readable after every write transaction of
 * this handle commits durably (on etcd also after those of other handles
 * and processes on the prefix; a spurious wake-up is possible).  Poll it for
 * reading; when it is readable, read its 8 bytes (a count of commits, which
 * resets it) and then read what changed (etagkv_changes(), etagkv_get()).
 * Wake-ups coalesce: one readable state may stand for several commits.  Each
 * caller gets its own descriptor, so several loops can watch one store. Writing
 * is never slowed by a descriptor nobody reads (the counter saturates). Release
 * it with etagkv_notify_close(), not close().
 *
 * Returns ETAGKV_OK and *fd_out, ETAGKV_INVALID_ARGUMENT (NULL s or
 * fd_out), ETAGKV_CLOSING, or ETAGKV_NO_MEMORY (no descriptor available;
 * *fd_out is then -1). */
ETAGKV_API etagkv_status etagkv_notify_open(etagkv_store *s, int *fd_out);

/** Stop notifying fd and close it.  An fd not from etagkv_notify_open() on
 * s is left alone.  NULL s is accepted (no-op). */
ETAGKV_API void etagkv_notify_close(etagkv_store *s, int fd);

/** When a condition stopped holding (etagkv_cond_superseded()). */
typedef struct etagkv_supersession {
    /** The revision of the write that made the condition false: the first
     * change of the key after held_revision. */
    uint64_t revision;
    /** That write's wall clock in nanoseconds since the epoch: a put's
     * modified_ns, a delete's time (etagkv_event.modified_ns). */
    uint64_t modified_ns;
    /** The last revision at which the condition held: the key's change
     * just before `revision`; 0 when it held while the key was absent
     * before `revision` created it (If-None-Match: *) and no earlier
     * change of the key is in the window. */
    uint64_t held_revision;
    /** The window that was searched: the change log serves revisions
     * after min_after (etagkv_changes_page.min_after), up to `upto`. */
    uint64_t min_after;
} etagkv_supersession;

/** Diagnose a failed conditional request from the change log (DESIGN §8):
 * when did the condition of c that step evaluates (the step that decided,
 * etagkv_result.step; ETAGKV_STEP_NONE: all of c), evaluated for method,
 * last go from true to false on key?  Each of the key's events in the log is a
 * state of the key (a put: its ETag, modified_ns and revisions; a delete:
 * absent), and that condition is evaluated over each with
 * etagkv_cond_evaluate(); the
 * supersession is the latest event at which it turns from ETAGKV_OK to anything
 * else.  A put that created the key also says that the key was absent just
 * before it. For an If-Match of an ETag read earlier that is the write that
 * replaced the record read ("another client updated it 200 ms before your
 * PUT"); for ETagKV-If-Revision N the key's first change after N.
 *
 * upto bounds the search: pass the mod_revision of the state the request
 * was refused on (etagkv_result.meta when exists is 1), so that writes
 * made after the refusal are not taken for its cause; 0 searches to the
 * end of the log.  The log is read in one snapshot (etagkv_changes()):
 * the key's events in the whole window (for ETagKV-If-Revision N, from N
 * on), some milliseconds for 100,000 events, so call it to diagnose, not
 * on every request of a hot path.
 *
 * Returns:
 *  ETAGKV_OK               *out filled;
 *  ETAGKV_NOT_FOUND        c never held within the window: the key has no
 *                          event there at which c was true (the validator
 *                          was never current after out->min_after, or was
 *                          current only before it; out->min_after says
 *                          where the window starts, the rest is 0);
 *  ETAGKV_INVALID_ARGUMENT NULL s, key, c or out, an unknown step or
 *                          method; ETAGKV_NO_MEMORY;
 *  ETAGKV_INVALID_KEY, ETAGKV_KEY_TOO_LONG, and the read errors of
 *  etagkv_changes().
 * Thread-safe; a read transaction, like etagkv_changes(). */
ETAGKV_API etagkv_status etagkv_cond_superseded(
    etagkv_store *s, const void *key, size_t key_len, const etagkv_cond *c,
    etagkv_cond_step step, etagkv_method method, uint64_t upto,
    etagkv_supersession *out);

/* ---------------------------------------------------------------------------
 * Multi-key transactions (DESIGN §7)
 *
 * A transaction is an ordered list of operations on any keys -- get, check,
 * put, delete, each with its own conditions -- applied all or nothing in
 * one write transaction.  Every operation is evaluated by
 * etagkv_cond_evaluate(), against the state left by the operations before
 * it in the same transaction (a later operation sees an earlier one's
 * write), and gets the status the same single request would get.  The
 * transaction commits iff no operation failed; an operation fails when it
 * is ETAGKV_PRECONDITION_FAILED, or ETAGKV_NOT_FOUND for anything but a
 * get.  Otherwise nothing is written and the outcome is ETAGKV_CONFLICT
 * (409), with the index of the first failing operation and the current
 * state of every key named, so that a caller can rebase without another
 * read.  All the writes of a committed transaction share one store
 * revision.  A transaction is one entry of a group-commit batch (DESIGN
 * §4): evaluated in arrival order with its neighbours, and its conflict
 * never touches them.
 *
 * Thread safety: an etagkv_txn is used by one thread at a time, and not at
 * all between etagkv_txn_submit() and its callback.
 * ------------------------------------------------------------------------- */

/** An opaque transaction: the operations, then, after a commit, their
 * results. */
typedef struct etagkv_txn etagkv_txn;

/** etagkv_txn_outcome.failed when no operation failed. */
#define ETAGKV_TXN_NONE ((size_t)-1)

/** The outcome of a transaction as a whole (etagkv_txn_report()). */
typedef struct etagkv_txn_outcome {
    /** As returned by etagkv_txn_commit() or passed to the callback of
     * etagkv_txn_submit(); ETAGKV_INVALID_ARGUMENT before any commit. */
    etagkv_status status;
    /** ETAGKV_CONFLICT: the index of the first failing operation; else
     * ETAGKV_TXN_NONE. */
    size_t failed;
    /** ETAGKV_OK: the revision of the commit, shared by every key written,
     * or the store's current revision when the transaction wrote nothing;
     * ETAGKV_CONFLICT: the current revision; otherwise 0.  For a replay, as
     * recorded. */
    uint64_t revision;
    /** 1 if this is the recorded outcome of an earlier execution with the
     * same idempotency key (nothing was executed now). */
    int replayed;
} etagkv_txn_outcome;

/** The result of one operation (etagkv_txn_op()). */
typedef struct etagkv_txn_op_result {
    /** 1 if the operation was evaluated.  0 for the operations after the
     * failing one of a conflict (HTTP: "status": null), and for every
     * operation when the transaction failed as a whole (a store error, a
     * refused argument) or has not been committed. */
    int evaluated;
    /** When evaluated: what the operation got, as the single request
     * would.  get: ETAGKV_OK, ETAGKV_NOT_MODIFIED (If-None-Match or
     * If-Modified-Since false), ETAGKV_NOT_FOUND, ETAGKV_PRECONDITION_FAILED.
     * check: ETAGKV_OK or ETAGKV_PRECONDITION_FAILED (a missing key is not
     * 404: the check is evaluated as a PUT that writes nothing).  put:
     * ETAGKV_CREATED, ETAGKV_OK or ETAGKV_PRECONDITION_FAILED.  delete:
     * ETAGKV_OK, ETAGKV_NOT_FOUND or ETAGKV_PRECONDITION_FAILED. */
    etagkv_status status;
    /** The key's state.  Committed: right after this operation (so after
     * the transaction, unless a later operation of it wrote the key again);
     * a deleted key has exists 0 and mod_revision the transaction's.
     * Conflict: the key as it is in the store now, for every operation,
     * evaluated or not (nothing was written).  Zeroed when not evaluated
     * for any other reason. */
    etagkv_meta meta;
    /** A committed get with status ETAGKV_OK: its value at the
     * transaction's snapshot (as left by the operations before it), owned
     * by the transaction and valid until it is committed again or freed.
     * A conflict of a transaction that asked for values
     * (etagkv_txn_set_conflict_values()): the key's current value, for
     * every operation whose key exists, unless together they pass
     * max_txn_bytes.  NULL and 0 otherwise. */
    const void *value;
    size_t value_len;
    /** Evaluated with status ETAGKV_PRECONDITION_FAILED (or a get's
     * ETAGKV_NOT_MODIFIED): the step that decided it
     * (etagkv_cond_explain()), over the state the operation saw -- which,
     * after an earlier operation of the same transaction wrote the key,
     * is not the store's state in meta.  Else ETAGKV_STEP_NONE. */
    etagkv_cond_step step;
} etagkv_txn_op_result;

/** Create an empty transaction.  Returns ETAGKV_OK, ETAGKV_INVALID_ARGUMENT
 * (out NULL) or ETAGKV_NO_MEMORY; on failure *out is NULL. */
ETAGKV_API etagkv_status etagkv_txn_new(etagkv_txn **out);

/** Free a transaction, its copies of keys, values and conditions, and its
 * results.  NULL is accepted.  Not while a submitted commit is pending. */
ETAGKV_API void etagkv_txn_free(etagkv_txn *t);

/* Adding operations.  Each copies key, value, content type and the
 * conditions c (NULL: none), so they are the caller's again when the call
 * returns.  Operations run in the order they were added.
 *
 * Each returns ETAGKV_OK, or a refusal -- ETAGKV_INVALID_KEY (key_len 0),
 * ETAGKV_KEY_TOO_LONG, ETAGKV_INVALID_HEADER (put: a content type that
 * etagkv_put() refuses), ETAGKV_INVALID_ARGUMENT (NULL t or key, NULL value
 * with value_len > 0), ETAGKV_NO_MEMORY -- and then the operation is not
 * added, and t remembers the first refusal: a later etagkv_txn_commit()
 * or etagkv_txn_submit() returns it and applies nothing, so a transaction
 * missing an operation can never commit by accident. */

/** Add a get: read key's value at the transaction's snapshot, subject to c
 * evaluated as for GET.  Its ETAGKV_NOT_FOUND and ETAGKV_NOT_MODIFIED do
 * not fail the transaction; its ETAGKV_PRECONDITION_FAILED does. */
ETAGKV_API etagkv_status etagkv_txn_get(etagkv_txn *t, const void *key,
                                        size_t key_len, const etagkv_cond *c);

/** Add a check: evaluate c as for a PUT that writes nothing.  A missing
 * key is not ETAGKV_NOT_FOUND, so etagkv_cond_create_only() asserts
 * absence; a passing check is ETAGKV_OK. */
ETAGKV_API etagkv_status etagkv_txn_check(etagkv_txn *t, const void *key,
                                          size_t key_len, const etagkv_cond *c);

/** Add a put of value under key, with content_type (NULL: the default
 * ETAGKV_CONTENT_TYPE_DEFAULT), if c holds as for a PUT. */
ETAGKV_API etagkv_status etagkv_txn_put(etagkv_txn *t, const void *key,
                                        size_t key_len, const void *value,
                                        size_t value_len,
                                        const char *content_type,
                                        const etagkv_cond *c);

/** Add a delete of key, if c holds as for a DELETE (a missing key is
 * ETAGKV_NOT_FOUND whatever c says, RFC 9110 §13.2.1, and fails the
 * transaction). */
ETAGKV_API etagkv_status etagkv_txn_delete(etagkv_txn *t, const void *key,
                                           size_t key_len,
                                           const etagkv_cond *c);

/** Give the transaction an idempotency key (1 to ETAGKV_IDEMPOTENCY_KEY_MAX
 * bytes, copied; NULL and 0 remove it).  Its first execution records the
 * outcome (ETAGKV_OK or ETAGKV_CONFLICT, failed index, revision, and every
 * operation's status and meta) in the same write transaction, under a
 * fingerprint of every operation (kind, key, value hash, content type,
 * parsed conditions); a repeat with the same key and operations returns
 * the recorded outcome (etagkv_txn_outcome.replayed 1) and writes nothing,
 * even if other writes happened since.  A transaction containing a get
 * cannot have one: its value could not be replayed (the commit is then
 * ETAGKV_INVALID_ARGUMENT).  Returns ETAGKV_OK, ETAGKV_INVALID_HEADER
 * (too long; remembered as the adds' refusals are),
 * ETAGKV_INVALID_ARGUMENT (NULL t, NULL key with len > 0) or
 * ETAGKV_NO_MEMORY. */
ETAGKV_API etagkv_status etagkv_txn_set_idempotency_key(etagkv_txn *t,
                                                        const void *key,
                                                        size_t len);

/** Ask (on 1) that a conflict also carry the current value of every key
 * the transaction names: with ETAGKV_CONFLICT, each operation whose key
 * exists gets etagkv_txn_op_result.value as it is in the store now (its
 * meta, content type included, is filled on every conflict), so a caller
 * can rebase a read-modify-write without reading again.  Bounded like gets'
 * values: when the transaction's own bytes and those values together would pass
 * etagkv_options.max_txn_bytes, the conflict carries no value at all
 * (every value NULL), as without the request.  A replayed outcome
 * (etagkv_txn_set_idempotency_key()) has no values.  Off (0) by default;
 * kept across commits.  Returns ETAGKV_OK, or ETAGKV_INVALID_ARGUMENT for
 * a NULL t. */
ETAGKV_API etagkv_status etagkv_txn_set_conflict_values(etagkv_txn *t, int on);

/** 1 if the last commit of t ended in ETAGKV_CONFLICT and its results
 * carry the values etagkv_txn_set_conflict_values() asked for: the value of
 * every operation whose key exists.  0 when they were left out (past
 * max_txn_bytes), for a replay, for any other outcome, and for a NULL t. */
ETAGKV_API int etagkv_txn_has_conflict_values(const etagkv_txn *t);

/** Commit t in s, blocking until the outcome is durable in the store's
 * sync mode (or nothing was written).  The results of a previous commit of
 * t are replaced; read them with etagkv_txn_report() and etagkv_txn_op().
 * A transaction that writes nothing (gets and checks only, without an
 * idempotency key) takes no place in a group-commit batch: it is evaluated
 * at once in one read snapshot, which sees every write acknowledged before
 * the call, and its revision is that snapshot's.
 *
 * Returns:
 *  ETAGKV_OK                  every operation passed; its writes are
 *                             committed under one new revision (none when
 *                             it writes nothing: then nothing is
 *                             committed);
 *  ETAGKV_CONFLICT            an operation failed (412, or 404 of a
 *                             non-get); nothing written;
 *  ETAGKV_TXN_TOO_LARGE       more than max_txn_ops operations or
 *                             max_txn_bytes bytes (etagkv_options);
 *  ETAGKV_VALUE_TOO_LARGE     a put's value is over max_value_bytes;
 *  ETAGKV_IDEMPOTENCY_MISMATCH, ETAGKV_IDEMPOTENCY_FULL  as for
 *                             etagkv_write();
 *  ETAGKV_INVALID_ARGUMENT    NULL s or t, or a get with an idempotency
 *                             key;
 *  the first refusal of an add (see above);
 *  ETAGKV_STORE_FULL, ETAGKV_IO_ERROR, ETAGKV_NO_MEMORY, ETAGKV_CORRUPT.
 * On every status but OK and CONFLICT nothing was written and no operation
 * is evaluated. */
ETAGKV_API etagkv_status etagkv_txn_commit(etagkv_store *s, etagkv_txn *t);

/** Asynchronous etagkv_txn_commit(): queue t and return at once; done is
 * called once, from a library thread as for etagkv_submit(), with
 * res->status the commit's status and res->replayed (res->meta is zeroed:
 * read the results from t, during the callback or after it).  t must not
 * be used or freed until done is called.  A transaction that writes
 * nothing is committed at once (see etagkv_txn_commit()): done is then
 * called on the calling thread before this returns.  Returns ETAGKV_OK
 * (done will be called, or was), or without calling done the refusals of
 * etagkv_txn_commit() that need no store (ETAGKV_TXN_TOO_LARGE,
 * ETAGKV_VALUE_TOO_LARGE, ETAGKV_INVALID_ARGUMENT also for NULL done, an add's
 * refusal) or ETAGKV_NO_MEMORY. */
ETAGKV_API etagkv_status etagkv_txn_submit(etagkv_store *s, etagkv_txn *t,
                                           etagkv_done_fn done, void *ctx);

/** As etagkv_txn_put(), attaching key to lease (0: none, the same as
 * etagkv_txn_put(), which detaches the key from any lease).  When the
 * transaction runs, a lease that is unknown, revoked or past its deadline
 * makes this operation's status ETAGKV_CONFLICT and fails the
 * transaction (nothing written), whatever its conditions. */
ETAGKV_API etagkv_status etagkv_txn_put_lease(etagkv_txn *t, const void *key,
                                              size_t key_len, const void *value,
                                              size_t value_len,
                                              const char *content_type,
                                              const etagkv_cond *c,
                                              uint64_t lease);

/** The number of operations added to t (0 for NULL). */
ETAGKV_API size_t etagkv_txn_count(const etagkv_txn *t);

/** Fill *out with the outcome of t's last commit (status
 * ETAGKV_INVALID_ARGUMENT and the rest zero, failed ETAGKV_TXN_NONE,
 * before any).  NULL t or out: nothing happens. */
ETAGKV_API void etagkv_txn_report(const etagkv_txn *t, etagkv_txn_outcome *out);

/** The result of operation i of t's last commit, owned by t and valid
 * until t is committed again or freed; NULL when i >= etagkv_txn_count(t)
 * or t is NULL. */
ETAGKV_API const etagkv_txn_op_result *etagkv_txn_op(const etagkv_txn *t,
                                                     size_t i);

/* ---------------------------------------------------------------------------
 * Leases (DESIGN §9)
 *
 * A lease has an id, a TTL and a deadline, and owns the keys written with
 * it (etagkv_request.lease, etagkv_txn_put_lease()).  Keepalive moves the
 * deadline to now + TTL.  Revoking a lease -- by a caller, or by the store
 * at or after its deadline (the TTL is a minimum) -- deletes every key
 * attached to it in one committed change: one new revision, a delete event
 * per key in the change log (none, and no revision, when it has no keys).
 * Until that commit the keys are all there; after it they are all gone: no
 * read sees a lease half expired.  A lease is dead from its deadline on,
 * even before the store's sweep has committed: keepalive and info answer
 * ETAGKV_NOT_FOUND and writes naming it ETAGKV_CONFLICT.  A keepalive that
 * comes too late expires the lease on the spot (its keys deleted in that
 * commit), so that a restart cannot revive it.
 *
 * Expiry runs inside the store: a library thread wakes at the earliest
 * deadline and submits the revoke as an ordinary entry of the commit queue,
 * a bounded number of leases per entry, so writers queued behind it never
 * wait for a whole sweep.  It stops with etagkv_store_close().  Deadlines
 * use the store's clock (etagkv_options.clock).
 *
 * Deadlines are stored, and survive a restart; but every lease still live
 * when the store is opened gets at least its full TTL again from the open
 * (as etcd does on a leader change), so clients that waited for the store
 * to come back get a chance to renew.
 *
 * All functions are thread-safe.  Grant, keepalive and revoke are writes:
 * they return once durable in the store's sync mode, and a store opened
 * read-only refuses them with ETAGKV_READ_ONLY.
 * ------------------------------------------------------------------------- */

/** A lease as etagkv_lease_info() and etagkv_lease_keepalive() see it. */
typedef struct etagkv_lease {
    uint64_t id;           /**< never 0 */
    uint64_t ttl_ms;       /**< as granted */
    uint64_t remaining_ms; /**< until the deadline, rounded down */
    uint64_t keys;         /**< keys attached (etagkv_lease_info() only) */
} etagkv_lease;

/** Grant a lease of ttl_ms milliseconds: its deadline is now + ttl_ms.
 * Returns ETAGKV_OK and *id_out (never 0; ids are not reused by a store),
 * ETAGKV_INVALID_ARGUMENT (NULL s or id_out, ttl_ms outside
 * [lease_min_ttl_ms, lease_max_ttl_ms]), ETAGKV_LEASE_LIMIT (max_leases
 * live already), ETAGKV_READ_ONLY, ETAGKV_STORE_FULL, ETAGKV_IO_ERROR,
 * ETAGKV_NO_MEMORY, ETAGKV_CORRUPT.  On failure *id_out is 0. */
ETAGKV_API etagkv_status etagkv_lease_grant(etagkv_store *s, uint64_t ttl_ms,
                                            uint64_t *id_out);

/** Renew lease id: its deadline becomes now + its TTL.  out (may be NULL)
 * gets id, ttl_ms and remaining_ms (= ttl_ms); keys is 0.  Returns
 * ETAGKV_OK, ETAGKV_NOT_FOUND (unknown, revoked, or past its deadline: too
 * late, the keys are going), ETAGKV_INVALID_ARGUMENT (NULL s), or the
 * errors of etagkv_lease_grant(). */
ETAGKV_API etagkv_status etagkv_lease_keepalive(etagkv_store *s, uint64_t id,
                                                etagkv_lease *out);

/** Revoke lease id now: delete every key attached to it in one commit (one
 * revision, a delete event per key; no revision when it has none) and the
 * lease with it.  *revision_out (may be NULL) gets the revision of that
 * commit, or 0 when no key was deleted.  Returns ETAGKV_OK,
 * ETAGKV_NOT_FOUND (unknown or revoked; or past its deadline, and then it
 * is expired by this call if the sweep had not yet done so, *revision_out
 * the revision of its deletes as for ETAGKV_OK),
 * ETAGKV_INVALID_ARGUMENT (NULL s), or the errors of etagkv_lease_grant(). */
ETAGKV_API etagkv_status etagkv_lease_revoke(etagkv_store *s, uint64_t id,
                                             uint64_t *revision_out);

/** The lease call etagkv_lease_submit() makes. */
typedef enum etagkv_lease_call {
    ETAGKV_LEASE_CALL_GRANT = 0,     /**< etagkv_lease_grant() */
    ETAGKV_LEASE_CALL_KEEPALIVE = 1, /**< etagkv_lease_keepalive() */
    ETAGKV_LEASE_CALL_REVOKE = 2     /**< etagkv_lease_revoke() */
} etagkv_lease_call;

/** Called once by etagkv_lease_submit() when the call is done, durable in
 * the store's sync mode, or failed; with the same thread rules as an
 * etagkv_done_fn (it runs on a library thread and must not block).
 * status is what the blocking call would have returned.  lease (valid
 * only during the call; zeroed on failure): a grant's id and ttl_ms
 * (remaining_ms = ttl_ms), a keepalive's as etagkv_lease_keepalive()
 * gives it; for a revoke its id.  revision: a revoke's, as
 * etagkv_lease_revoke() gives it; else 0. */
typedef void (*etagkv_lease_done_fn)(void *ctx, etagkv_status status,
                                     const etagkv_lease *lease,
                                     uint64_t revision);

/** Asynchronous etagkv_lease_grant(), etagkv_lease_keepalive() or
 * etagkv_lease_revoke(): queue the call and return at once; done is called
 * later, exactly once, with its outcome.  arg is the TTL in ms for a
 * grant, the lease id otherwise.  Lease calls join the same group-commit
 * batches as writes, so a server can answer them without a thread waiting
 * for the disk.  etagkv_store_close() waits for every submitted call.
 *
 * Returns ETAGKV_OK (done will be called), or, without calling done,
 * ETAGKV_INVALID_ARGUMENT (NULL s or done, an unknown call, a grant's TTL
 * outside the bounds), ETAGKV_READ_ONLY or ETAGKV_NO_MEMORY. */
ETAGKV_API etagkv_status etagkv_lease_submit(etagkv_store *s,
                                             etagkv_lease_call call,
                                             uint64_t arg,
                                             etagkv_lease_done_fn done,
                                             void *ctx);

/** Called by etagkv_lease_info() for each attached key, in no particular
 * order; key is valid only during the call.  Return non-zero to stop
 * listing.  It runs inside a read transaction and must not call etagkv
 * functions on the same store (a write from it may wait forever). */
typedef int (*etagkv_lease_key_fn)(void *ctx, const void *key, size_t key_len);

/** Read lease id at one snapshot: out gets id, ttl_ms, remaining_ms and the
 * number of keys attached; fn (may be NULL) is called for each of those
 * keys (all of them are counted even if fn stops the listing).  A
 * read-only handle reports the deadline as stored (not its own open plus
 * the TTL), and a lease past it but not yet swept with remaining_ms 0.
 * Returns ETAGKV_OK, ETAGKV_NOT_FOUND (unknown, revoked, or past its
 * deadline on a writable handle),
 * ETAGKV_INVALID_ARGUMENT (NULL s or out), ETAGKV_IO_ERROR,
 * ETAGKV_CORRUPT. */
ETAGKV_API etagkv_status etagkv_lease_info(etagkv_store *s, uint64_t id,
                                           etagkv_lease *out,
                                           etagkv_lease_key_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* ETAGKV_H */
