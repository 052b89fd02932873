/*
 * test_store.c -- the store on a real LMDB environment: records and their
 * metadata (DESIGN §1), conditional writes (DESIGN §2), listing, statistics,
 * persistence, and bad input.  A fresh store per test.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <lmdb.h>
#include <xxhash.h>

#include "testutil.h"

static char *dir;
static etagkv_store *store;

/* A clock the tests move by hand (nanoseconds). */
/* Read by the library's threads too (the committer, the lease sweeper). */
static _Atomic uint64_t fake_now;
static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static void open_store(void)
{
    etagkv_options o;

    etagkv_options_init(&o);
    o.sync_mode = ETAGKV_NOSYNC;
    o.clock = fake_clock;
    store = tu_open(dir, &o);
}

static void setup(void)
{
    fake_now = 784111777ull * 1000000000ull + 5;
    dir = tu_mkdtemp();
    open_store();
}

static void teardown(void)
{
    etagkv_store_close(store);
    store = NULL;
    tu_rmdir_free(dir);
    dir = NULL;
}

static void reopen(void)
{
    etagkv_store_close(store);
    open_store();
}

static etagkv_status put(const char *k, const char *v, const char *im,
                         const char *inm, etagkv_meta *m)
{
    etagkv_cond *c;
    etagkv_status s;

    ck_assert_int_eq(etagkv_cond_parse(im, inm, NULL, NULL, &c), ETAGKV_OK);
    s = etagkv_put(store, k, strlen(k), v, strlen(v), NULL, c, m);
    etagkv_cond_free(c);
    return s;
}

/* The condition constructors, asserting success. */
static etagkv_cond *if_match(const char *etag)
{
    etagkv_cond *c;

    ck_assert_int_eq(etagkv_cond_if_match(etag, &c), ETAGKV_OK);
    return c;
}

static etagkv_cond *create_only(void)
{
    etagkv_cond *c;

    ck_assert_int_eq(etagkv_cond_create_only(&c), ETAGKV_OK);
    return c;
}

static etagkv_cond *update_only(void)
{
    etagkv_cond *c;

    ck_assert_int_eq(etagkv_cond_update_only(&c), ETAGKV_OK);
    return c;
}

/* A PUT through etagkv_write() under c (freed here) that keeps a replaced
 * record's content type. */
static etagkv_status put_keep(const char *k, const char *v, etagkv_cond *c,
                              etagkv_meta *m)
{
    etagkv_request req = {.method = ETAGKV_METHOD_PUT,
                          .key = k,
                          .key_len = strlen(k),
                          .value = v,
                          .value_len = strlen(v),
                          .cond = c,
                          .flags = ETAGKV_WRITE_KEEP_CONTENT_TYPE};
    etagkv_result res;
    etagkv_status s = etagkv_write(store, &req, &res);

    etagkv_cond_free(c);
    ck_assert_int_eq(res.status, s);
    if (m != NULL)
        *m = res.meta;
    return s;
}

/* etagkv_delete() under c, which is freed here. */
static etagkv_status delete_under(const char *k, etagkv_cond *c, etagkv_meta *m)
{
    etagkv_status s = etagkv_delete(store, k, strlen(k), c, m);

    etagkv_cond_free(c);
    return s;
}

static uint64_t revision(void)
{
    etagkv_stats s;

    ck_assert_int_eq(etagkv_store_stats(store, &s), ETAGKV_OK);
    return s.revision;
}

/* The value stored under k, as a NUL-terminated string (caller frees), or
 * NULL when absent. */
static char *value_of(const char *k)
{
    void *v;
    size_t n;
    char *s;
    etagkv_status r = etagkv_get(store, k, strlen(k), NULL, &v, &n, NULL);

    if (r == ETAGKV_NOT_FOUND)
        return NULL;
    ck_assert_int_eq(r, ETAGKV_OK);
    s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memcpy(s, v, n);
    s[n] = '\0';
    etagkv_free(v);
    return s;
}

/* ETag computed independently of the library: XXH3-128, canonical bytes,
 * lowercase hex, quoted (DESIGN §1). */
static void independent_etag(const void *v, size_t n, char out[35])
{
    XXH128_canonical_t c;

    XXH128_canonicalFromHash(&c, XXH3_128bits(v, n));
    out[0] = '"';
    for (int i = 0; i < 16; i++)
        snprintf(out + 1 + 2 * i, 3, "%02x", c.digest[i]);
    out[33] = '"';
    out[34] = '\0';
}

/* ---- metadata (DESIGN §1) ---------------------------------------------------
 */

START_TEST(etag_is_the_quoted_xxh3_128_of_the_value)
{
    static const char *values[] = {"", "a", "hello world",
                                   "\0\1\2 binary \xff"};
    char want[35];

    for (size_t i = 0; i < 4; i++) {
        size_t n =
            i == 3 ? sizeof("\0\1\2 binary \xff") - 1 : strlen(values[i]);
        etagkv_meta m;
        char computed[ETAGKV_ETAG_SIZE];

        ck_assert_int_eq(
            etagkv_put(store, "k", 1, values[i], n, NULL, NULL, &m),
            i == 0 ? ETAGKV_CREATED : ETAGKV_OK);
        independent_etag(values[i], n, want);
        ck_assert_str_eq(m.etag, want);
        etagkv_etag_compute(values[i], n, computed);
        ck_assert_str_eq(computed, want);
        ck_assert_int_eq(etagkv_get(store, "k", 1, NULL, NULL, NULL, &m),
                         ETAGKV_OK);
        ck_assert_str_eq(m.etag, want);
        ck_assert_uint_eq(m.value_bytes, n);
    }
}
END_TEST

START_TEST(revisions_and_versions_step_as_specified)
{
    etagkv_meta m;

    ck_assert_uint_eq(revision(), 0);
    ck_assert_int_eq(put("a", "1", NULL, NULL, &m), ETAGKV_CREATED);
    ck_assert_uint_eq(m.mod_revision, 1);
    ck_assert_uint_eq(m.create_revision, 1);
    ck_assert_uint_eq(m.version, 1);
    ck_assert_int_eq(put("b", "1", NULL, NULL, &m), ETAGKV_CREATED);
    ck_assert_uint_eq(m.mod_revision, 2);
    ck_assert_uint_eq(m.create_revision, 2);
    /* Writing the same bytes again is still a write (DESIGN §1). */
    ck_assert_int_eq(put("a", "1", NULL, NULL, &m), ETAGKV_OK);
    ck_assert_uint_eq(m.mod_revision, 3);
    ck_assert_uint_eq(m.create_revision, 1);
    ck_assert_uint_eq(m.version, 2);
    /* A failed precondition changes nothing, revision included. */
    ck_assert_int_eq(put("a", "2", "\"nope\"", NULL, &m),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_uint_eq(revision(), 3);
    /* A delete is a change: +1. */
    ck_assert_int_eq(etagkv_delete(store, "a", 1, NULL, &m), ETAGKV_OK);
    ck_assert_int_eq(m.exists, 0);
    ck_assert_uint_eq(m.mod_revision, 4);
    ck_assert_uint_eq(revision(), 4);
    /* Re-created: version restarts, create_revision is new. */
    ck_assert_int_eq(put("a", "1", NULL, NULL, &m), ETAGKV_CREATED);
    ck_assert_uint_eq(m.version, 1);
    ck_assert_uint_eq(m.create_revision, 5);
    ck_assert_uint_eq(m.mod_revision, 5);
}
END_TEST

START_TEST(modified_never_goes_backwards_even_when_the_clock_does)
{
    etagkv_meta m1, m2, m3;

    ck_assert_int_eq(put("k", "1", NULL, NULL, &m1), ETAGKV_CREATED);
    ck_assert_uint_eq(m1.modified_ns, fake_now);
    ck_assert_uint_eq(m1.created_ns, fake_now);
    fake_now -= 3000000000ull; /* the wall clock steps back 3 s */
    ck_assert_int_eq(put("k", "2", NULL, NULL, &m2), ETAGKV_OK);
    ck_assert_uint_eq(m2.modified_ns, m1.modified_ns + 1);
    ck_assert_uint_eq(m2.created_ns, m1.created_ns);
    fake_now += 10000000000ull;
    ck_assert_int_eq(put("k", "3", NULL, NULL, &m3), ETAGKV_OK);
    ck_assert_uint_eq(m3.modified_ns, fake_now);
    ck_assert_int_eq(ETAGKV_META_LAST_MODIFIED(&m3),
                     (int64_t)(fake_now / 1000000000ull));
    /* At the end of the clock's range it stays there, never wraps to 0. */
    fake_now = UINT64_MAX;
    ck_assert_int_eq(put("k", "4", NULL, NULL, &m1), ETAGKV_OK);
    ck_assert_int_eq(put("k", "5", NULL, NULL, &m2), ETAGKV_OK);
    ck_assert_uint_eq(m1.modified_ns, UINT64_MAX);
    ck_assert_uint_eq(m2.modified_ns, UINT64_MAX);
}
END_TEST

/* The number of entries in directory d, "." and ".." aside. */
static int entries_in(const char *d)
{
    DIR *dp = opendir(d);
    struct dirent *e;
    int n = 0;

    ck_assert_ptr_nonnull(dp);
    while ((e = readdir(dp)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(dp);
    return n;
}

START_TEST(options_the_machine_cannot_honour_are_refused_before_any_file)
{
    char *fresh = tu_mkdtemp();
    etagkv_options o;
    etagkv_store *other = NULL;

    /* More address space than x86-64 or arm64 user space has (2^47 to
     * 2^52 bytes), though below the SIZE_MAX / 4 sanity bound. */
    etagkv_options_init(&o);
    o.map_size_bytes = o.map_max_bytes = (uint64_t)1 << 58;
    ck_assert_int_eq(etagkv_store_open(fresh, &o, &other),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_ptr_null(other);
    ck_assert_ptr_nonnull(strstr(etagkv_last_error_detail(), "address space"));
    ck_assert_int_eq(entries_in(fresh), 0);

    etagkv_options_init(&o);
    o.max_readers = 65537;
    ck_assert_int_eq(etagkv_store_open(fresh, &o, &other),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(entries_in(fresh), 0);
    o.max_readers = 65536; /* the limit itself is fine */
    ck_assert_int_eq(etagkv_store_open(fresh, &o, &other), ETAGKV_OK);
    etagkv_store_close(other);
    tu_rmdir_free(fresh);
}
END_TEST

START_TEST(data_and_metadata_survive_close_and_reopen)
{
    etagkv_meta before, after;
    char *v;

    ck_assert_int_eq(
        etagkv_put(store, "k", 1, "payload", 7, "text/plain", NULL, &before),
        ETAGKV_CREATED);
    ck_assert_int_eq(put("other", "x", NULL, NULL, NULL), ETAGKV_CREATED);
    reopen();
    ck_assert_int_eq(etagkv_get(store, "k", 1, NULL, NULL, NULL, &after),
                     ETAGKV_OK);
    ck_assert_mem_eq(&before, &after, sizeof(before));
    ck_assert_str_eq(after.content_type, "text/plain");
    v = value_of("k");
    ck_assert_str_eq(v, "payload");
    free(v);
    ck_assert_uint_eq(revision(), 2);
    /* The revision counter continues after reopening. */
    ck_assert_int_eq(put("k", "again", NULL, NULL, &after), ETAGKV_OK);
    ck_assert_uint_eq(after.mod_revision, 3);
}
END_TEST

START_TEST(content_type_is_stored_and_defaults_to_octet_stream)
{
    etagkv_meta m;

    ck_assert_int_eq(put("k", "v", NULL, NULL, &m), ETAGKV_CREATED);
    ck_assert_str_eq(m.content_type, "application/octet-stream");
    ck_assert_int_eq(etagkv_put(store, "k", 1, "{}", 2,
                                "application/json; charset=utf-8", NULL, &m),
                     ETAGKV_OK);
    ck_assert_int_eq(etagkv_get(store, "k", 1, NULL, NULL, NULL, &m),
                     ETAGKV_OK);
    ck_assert_str_eq(m.content_type, "application/json; charset=utf-8");
}
END_TEST

/* ---- conditional writes through the store (DESIGN §2) ------------------- */

START_TEST(
    put_if_match_on_absent_key_is_precondition_failed_and_creates_nothing)
{
    etagkv_meta m;
    char etag[ETAGKV_ETAG_SIZE];

    etagkv_etag_compute("v", 1, etag);
    ck_assert_int_eq(put("k", "v", etag, NULL, &m), ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(m.exists, 0);
    ck_assert_int_eq(put("k", "v", "*", NULL, &m), ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(put_keep("k", "v", update_only(), &m),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(etagkv_get(store, "k", 1, NULL, NULL, NULL, &m),
                     ETAGKV_NOT_FOUND);
    ck_assert_uint_eq(revision(), 0);
}
END_TEST

START_TEST(failed_put_reports_the_current_record_for_rebasing)
{
    etagkv_meta cur, m;

    ck_assert_int_eq(put("k", "v1", NULL, NULL, &cur), ETAGKV_CREATED);
    ck_assert_int_eq(put("k", "v2", "\"stale\"", NULL, &m),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(m.exists, 1);
    ck_assert_str_eq(m.etag, cur.etag);
    ck_assert_uint_eq(m.mod_revision, cur.mod_revision);
    ck_assert_uint_eq(m.modified_ns, cur.modified_ns);
}
END_TEST

START_TEST(no_content_based_success_two_writers_with_one_validator)
{
    etagkv_meta base, m;
    char *v;

    /* DESIGN §2: both read "5" and both write "6" with If-Match.  The
     * second must fail although its body equals the current value, or one
     * increment would be lost. */
    ck_assert_int_eq(put("n", "5", NULL, NULL, &base), ETAGKV_CREATED);
    ck_assert_int_eq(put_keep("n", "6", if_match(base.etag), &m), ETAGKV_OK);
    ck_assert_int_eq(put_keep("n", "6", if_match(base.etag), &m),
                     ETAGKV_PRECONDITION_FAILED);
    v = value_of("n");
    ck_assert_str_eq(v, "6");
    free(v);
    ck_assert_uint_eq(revision(), 2);
}
END_TEST

START_TEST(keep_content_type_flag_keeps_it_and_plain_put_replaces_it)
{
    etagkv_meta m;

    ck_assert_int_eq(
        etagkv_put(store, "k", 1, "{}", 2, "application/json", NULL, &m),
        ETAGKV_CREATED);
    ck_assert_int_eq(put_keep("k", "[]", if_match(m.etag), &m), ETAGKV_OK);
    ck_assert_str_eq(m.content_type, "application/json");
    ck_assert_int_eq(put_keep("k", "1", update_only(), &m), ETAGKV_OK);
    ck_assert_int_eq(put_keep("k", "2", NULL, &m), ETAGKV_OK);
    ck_assert_int_eq(etagkv_get(store, "k", 1, NULL, NULL, NULL, &m),
                     ETAGKV_OK);
    ck_assert_str_eq(m.content_type, "application/json");
    ck_assert_uint_eq(m.version, 4);
    /* A plain put replaces the representation, content type included. */
    ck_assert_int_eq(etagkv_put(store, "k", 1, "2", 1, NULL, NULL, &m),
                     ETAGKV_OK);
    ck_assert_str_eq(m.content_type, "application/octet-stream");
    /* A record the flag creates gets the default. */
    ck_assert_int_eq(put_keep("new", "x", create_only(), &m), ETAGKV_CREATED);
    ck_assert_str_eq(m.content_type, "application/octet-stream");
}
END_TEST

START_TEST(an_explicit_content_type_wins_over_the_keep_flag)
{
    etagkv_request req = {.method = ETAGKV_METHOD_PUT,
                          .key = "k",
                          .key_len = 1,
                          .value = "<p/>",
                          .value_len = 4,
                          .content_type = "text/html",
                          .flags = ETAGKV_WRITE_KEEP_CONTENT_TYPE};
    etagkv_result res;
    etagkv_meta m;

    ck_assert_int_eq(
        etagkv_put(store, "k", 1, "{}", 2, "application/json", NULL, NULL),
        ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_write(store, &req, &res), ETAGKV_OK);
    ck_assert_str_eq(res.meta.content_type, "text/html");
    ck_assert_int_eq(etagkv_get(store, "k", 1, NULL, NULL, NULL, &m),
                     ETAGKV_OK);
    ck_assert_str_eq(m.content_type, "text/html");
    /* On a new key too, the given type is the record's. */
    req.key = "n";
    ck_assert_int_eq(etagkv_write(store, &req, &res), ETAGKV_CREATED);
    ck_assert_str_eq(res.meta.content_type, "text/html");
}
END_TEST

START_TEST(an_unknown_write_flag_is_refused_and_changes_nothing)
{
    etagkv_request req = {.method = ETAGKV_METHOD_PUT,
                          .key = "k",
                          .key_len = 1,
                          .value = "v",
                          .value_len = 1,
                          .flags = 0x8u};
    etagkv_result res;

    ck_assert_int_eq(etagkv_write(store, &req, &res), ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(res.meta.exists, 0);
    req.method = ETAGKV_METHOD_DELETE;
    ck_assert_int_eq(etagkv_write(store, &req, &res), ETAGKV_INVALID_ARGUMENT);
    ck_assert_uint_eq(revision(), 0);
    /* The flag means nothing to a DELETE, and is accepted there. */
    ck_assert_int_eq(put("k", "v", NULL, NULL, NULL), ETAGKV_CREATED);
    req.flags = ETAGKV_WRITE_KEEP_CONTENT_TYPE;
    ck_assert_int_eq(etagkv_write(store, &req, &res), ETAGKV_OK);
    ck_assert_int_eq(res.meta.exists, 0);
}
END_TEST

START_TEST(a_second_open_in_the_same_process_is_refused)
{
    etagkv_store *again = (etagkv_store *)&again;

    ck_assert_int_eq(etagkv_store_open(dir, NULL, &again),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_ptr_null(again);
    ck_assert_ptr_nonnull(strstr(etagkv_last_error_detail(), "already open"));
    /* The first handle is unharmed; after closing, it can open again. */
    ck_assert_int_eq(put("k", "v", NULL, NULL, NULL), ETAGKV_CREATED);
    reopen();
    ck_assert_uint_eq(revision(), 1);
}
END_TEST

START_TEST(the_error_detail_is_cleared_by_the_next_call)
{
    etagkv_store *other;
    etagkv_cond *c;

    ck_assert_int_eq(etagkv_store_open("/nonexistent/x", NULL, &other),
                     ETAGKV_NOT_FOUND);
    ck_assert_str_ne(etagkv_last_error_detail(), "");
    ck_assert_int_eq(etagkv_cond_new(&c), ETAGKV_OK);
    ck_assert_str_eq(etagkv_last_error_detail(), "");
    ck_assert_int_eq(etagkv_cond_add(c, ETAGKV_IF_MATCH, "x", 1),
                     ETAGKV_INVALID_HEADER);
    ck_assert_str_ne(etagkv_last_error_detail(), "");
    ck_assert_int_eq(put("k", "v", NULL, NULL, NULL), ETAGKV_CREATED);
    ck_assert_str_eq(etagkv_last_error_detail(), "");
    etagkv_cond_free(c);
}
END_TEST

START_TEST(create_only_and_update_only_conditions_guard_a_put)
{
    etagkv_meta m;

    ck_assert_int_eq(put_keep("k", "a", create_only(), &m), ETAGKV_CREATED);
    ck_assert_int_eq(put_keep("k", "b", create_only(), &m),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(put_keep("k", "c", update_only(), &m), ETAGKV_OK);
    ck_assert_int_eq(m.version, 2);
    ck_assert_uint_eq(revision(), 2);
}
END_TEST

START_TEST(cond_if_match_takes_only_a_complete_strong_etag)
{
    /* A constructor that accepted these would build an If-Match that never
     * matches (weak, foreign) or means something else ("*"). */
    static const char *const bad[] = {
        "W/\"x\"",
        "*",
        "\"nope\"",
        "",
        "\"",
        "\"0123456789abcdef0123456789ABCDEF\"",   /* uppercase: not ours */
        "\"0123456789abcdef0123456789abcdef\" ",  /* trailing space */
        "W/\"0123456789abcdef0123456789abcdef\"", /* ours, but weak */
        /* a list of two (parenthesised: one element, for clang) */
        ("\"0123456789abcdef0123456789abcdef\", "
         "\"0123456789abcdef0123456789abcdef\""),
    };
    etagkv_cond *c = (etagkv_cond *)&c;
    char etag[ETAGKV_ETAG_SIZE];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = (etagkv_cond *)&c;
        ck_assert_msg(etagkv_cond_if_match(bad[i], &c) == ETAGKV_INVALID_HEADER,
                      "accepted <%s>", bad[i]);
        ck_assert_ptr_null(c);
        ck_assert_str_ne(etagkv_last_error_detail(), "");
    }
    c = (etagkv_cond *)&c;
    ck_assert_int_eq(etagkv_cond_if_match(NULL, &c), ETAGKV_INVALID_ARGUMENT);
    ck_assert_ptr_null(c);
    etagkv_etag_compute("v", 1, etag);
    ck_assert_int_eq(etagkv_cond_if_match(etag, NULL), ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_cond_create_only(NULL), ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_cond_update_only(NULL), ETAGKV_INVALID_ARGUMENT);
    /* The one good form builds an If-Match that makes a write conditional
     * and holds only for that ETag. */
    c = if_match(etag);
    ck_assert_int_eq(etagkv_cond_is_conditional(c), 1);
    ck_assert_int_eq(put("k", "v", NULL, NULL, NULL), ETAGKV_CREATED);
    ck_assert_int_eq(put_keep("k", "w", c, NULL), ETAGKV_OK);
    ck_assert_int_eq(put_keep("k", "x", if_match(etag), NULL),
                     ETAGKV_PRECONDITION_FAILED);
}
END_TEST

START_TEST(constructed_conditions_evaluate_as_the_parsed_headers)
{
    /* One evaluator: a constructor's set and the header it stands for give
     * the same answer for every method and state. */
    etagkv_meta present = {.exists = 1}, absent = {0};
    const etagkv_meta *states[] = {&present, &absent, NULL};
    etagkv_cond *built[3], *parsed[3];

    etagkv_etag_compute("v", 1, present.etag);
    built[0] = if_match(present.etag);
    built[1] = create_only();
    built[2] = update_only();
    ck_assert_int_eq(
        etagkv_cond_parse(present.etag, NULL, NULL, NULL, &parsed[0]),
        ETAGKV_OK);
    ck_assert_int_eq(etagkv_cond_parse(NULL, "*", NULL, NULL, &parsed[1]),
                     ETAGKV_OK);
    ck_assert_int_eq(etagkv_cond_parse("*", NULL, NULL, NULL, &parsed[2]),
                     ETAGKV_OK);
    for (int i = 0; i < 3; i++) {
        for (int meth = ETAGKV_METHOD_GET; meth <= ETAGKV_METHOD_DELETE; meth++)
            for (size_t k = 0; k < 3; k++)
                ck_assert_int_eq(
                    etagkv_cond_evaluate(built[i], (etagkv_method)meth,
                                         states[k]),
                    etagkv_cond_evaluate(parsed[i], (etagkv_method)meth,
                                         states[k]));
        etagkv_cond_free(built[i]);
        etagkv_cond_free(parsed[i]);
    }
    /* The results are ordinary condition sets: more headers may be added. */
    built[0] = create_only();
    ck_assert_int_eq(etagkv_cond_add(built[0], ETAGKV_IF_NONE_MATCH, "*", 1),
                     ETAGKV_INVALID_HEADER); /* "*" only alone */
    etagkv_cond_free(built[0]);
}
END_TEST

START_TEST(delete_follows_rfc9110_13_2_1_and_if_match)
{
    etagkv_meta cur, m;
    char stale[ETAGKV_ETAG_SIZE];
    etagkv_cond *c;

    etagkv_etag_compute("old", 3, stale);
    /* Missing key: 404 whatever the conditions. */
    ck_assert_int_eq(etagkv_delete(store, "k", 1, NULL, &m), ETAGKV_NOT_FOUND);
    ck_assert_int_eq(delete_under("k", if_match(stale), &m), ETAGKV_NOT_FOUND);
    ck_assert_int_eq(put("k", "v", NULL, NULL, &cur), ETAGKV_CREATED);
    ck_assert_int_eq(delete_under("k", if_match(stale), &m),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_str_eq(m.etag, cur.etag);
    ck_assert_int_eq(etagkv_cond_parse(NULL, "*", NULL, NULL, &c), ETAGKV_OK);
    ck_assert_int_eq(etagkv_delete(store, "k", 1, c, &m),
                     ETAGKV_PRECONDITION_FAILED);
    etagkv_cond_free(c);
    ck_assert_int_eq(delete_under("k", if_match(cur.etag), &m), ETAGKV_OK);
    ck_assert_int_eq(etagkv_get(store, "k", 1, NULL, NULL, NULL, &m),
                     ETAGKV_NOT_FOUND);
}
END_TEST

START_TEST(conditional_get_gives_not_modified_and_precondition_failed)
{
    etagkv_meta cur, m;
    etagkv_cond *c;
    void *v = (void *)1;
    size_t n = 7;

    ck_assert_int_eq(put("k", "v", NULL, NULL, &cur), ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_cond_parse(NULL, cur.etag, NULL, NULL, &c),
                     ETAGKV_OK);
    ck_assert_int_eq(etagkv_get(store, "k", 1, c, &v, &n, &m),
                     ETAGKV_NOT_MODIFIED);
    ck_assert_ptr_null(v);
    ck_assert_uint_eq(n, 0);
    ck_assert_str_eq(m.etag, cur.etag); /* 304 carries the ETag */
    ck_assert_int_eq(etagkv_get(store, "k", 1, c, NULL, NULL, &m),
                     ETAGKV_NOT_MODIFIED);
    etagkv_cond_free(c);

    /* If-Unmodified-Since one second before Last-Modified. */
    ck_assert_int_eq(etagkv_cond_parse(NULL, NULL, NULL,
                                       "Sun, 06 Nov 1994 08:49:36 GMT", &c),
                     ETAGKV_OK);
    ck_assert_int_eq(etagkv_get(store, "k", 1, c, &v, &n, &m),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_ptr_null(v);
    etagkv_cond_free(c);

    /* Equal second: If-Modified-Since says "not modified" (DESIGN §1:
     * Last-Modified is modified_ns truncated). */
    ck_assert_int_eq(etagkv_cond_parse(
                         NULL, NULL, "Sun, 06 Nov 1994 08:49:37 GMT", NULL, &c),
                     ETAGKV_OK);
    ck_assert_int_eq(etagkv_get(store, "k", 1, c, &v, &n, &m),
                     ETAGKV_NOT_MODIFIED);
    etagkv_cond_free(c);
}
END_TEST

START_TEST(if_unmodified_since_on_a_missing_key_is_ignored_by_put)
{
    etagkv_cond *c;

    ck_assert_int_eq(etagkv_cond_parse(NULL, NULL, NULL,
                                       "Sun, 06 Nov 1994 08:49:36 GMT", &c),
                     ETAGKV_OK);
    ck_assert_int_eq(etagkv_put(store, "k", 1, "v", 1, NULL, c, NULL),
                     ETAGKV_CREATED);
    /* Now that it exists, the same condition is false. */
    ck_assert_int_eq(etagkv_put(store, "k", 1, "w", 1, NULL, c, NULL),
                     ETAGKV_PRECONDITION_FAILED);
    etagkv_cond_free(c);
}
END_TEST

/* ---- read-modify-write ------------------------------------------------------
 */

struct append_ctx {
    char buf[64];
    int calls;
    int other_writer_once; /* write behind the helper's back on call 1 */
    int races;             /* or on the first `races` calls, "o0", "o1"... */
    char seen[4][64];      /* the values the first calls were given */
};

static etagkv_status append_x(void *vctx, const void *old, size_t old_len,
                              const etagkv_meta *meta, const void **nv,
                              size_t *nv_len)
{
    struct append_ctx *ctx = vctx;

    (void)meta;
    ctx->calls++;
    ck_assert_uint_lt(old_len, sizeof(ctx->buf) - 1);
    if (ctx->calls <= 4 && old_len > 0) {
        memcpy(ctx->seen[ctx->calls - 1], old, old_len);
        ctx->seen[ctx->calls - 1][old_len] = '\0';
    }
    if (ctx->other_writer_once && ctx->calls == 1)
        ck_assert_int_eq(put("k", "ab", NULL, NULL, NULL), ETAGKV_OK);
    if (ctx->calls <= ctx->races) {
        char other[16];

        snprintf(other, sizeof other, "o%d", ctx->calls - 1);
        ck_assert_int_eq(put("k", other, NULL, NULL, NULL), ETAGKV_OK);
    }
    if (old_len > 0)
        memcpy(ctx->buf, old, old_len);
    ctx->buf[old_len] = 'x';
    *nv = ctx->buf;
    *nv_len = old_len + 1;
    return ETAGKV_OK;
}

START_TEST(update_retries_with_a_fresh_validator_after_a_race)
{
    struct append_ctx ctx = {.other_writer_once = 1};
    etagkv_meta m;
    char *v;

    ck_assert_int_eq(put("k", "a", NULL, NULL, NULL), ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_update(store, "k", 1, append_x, &ctx, 0, &m),
                     ETAGKV_OK);
    /* First attempt computed "ax" from "a" and lost; the second computed
     * from the fresh "ab". */
    ck_assert_int_eq(ctx.calls, 2);
    v = value_of("k");
    ck_assert_str_eq(v, "abx");
    free(v);
    ck_assert_uint_eq(m.version, 3);
}
END_TEST

START_TEST(update_creates_an_absent_key_and_gives_up_after_max_attempts)
{
    struct append_ctx ctx = {0};
    etagkv_meta m;
    char *v;

    ck_assert_int_eq(etagkv_update(store, "k", 1, append_x, &ctx, 0, &m),
                     ETAGKV_CREATED);
    v = value_of("k");
    ck_assert_str_eq(v, "x");
    free(v);

    /* Every attempt loses the race: bounded, and reported as 412. */
    memset(&ctx, 0, sizeof(ctx));
    ctx.other_writer_once = 1;
    ck_assert_int_eq(etagkv_update(store, "k", 1, append_x, &ctx, 1, &m),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(ctx.calls, 1);
    v = value_of("k");
    ck_assert_str_eq(v, "ab");
    free(v);
}
END_TEST

static etagkv_status refuse(void *ctx, const void *old, size_t old_len,
                            const etagkv_meta *meta, const void **nv,
                            size_t *nv_len)
{
    (void)ctx;
    (void)old;
    (void)old_len;
    (void)meta;
    (void)nv;
    (void)nv_len;
    return ETAGKV_PRECONDITION_FAILED; /* the caller's own reason to stop */
}

static etagkv_status same_again(void *ctx, const void *old, size_t old_len,
                                const etagkv_meta *meta, const void **nv,
                                size_t *nv_len)
{
    (void)ctx;
    (void)meta;
    *nv = old; /* answering with the old value itself is allowed */
    *nv_len = old_len;
    return ETAGKV_OK;
}

START_TEST(update_may_answer_with_the_old_value_itself)
{
    etagkv_meta m;
    char *v;

    ck_assert_int_eq(put("k", "same", NULL, NULL, NULL), ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_update(store, "k", 1, same_again, NULL, 0, &m),
                     ETAGKV_OK);
    ck_assert_uint_eq(m.version, 2); /* still a write (DESIGN §1) */
    v = value_of("k");
    ck_assert_str_eq(v, "same");
    free(v);
}
END_TEST

START_TEST(update_stops_with_the_callbacks_status_and_writes_nothing)
{
    ck_assert_int_eq(put("k", "a", NULL, NULL, NULL), ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_update(store, "k", 1, refuse, NULL, 5, NULL),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_uint_eq(revision(), 1);
}
END_TEST

/* ---- the current value of a 412 (ETAGKV_WRITE_RETURN_CURRENT) ------------ */

/* A put of v under If-Match: im, asking for the current value on a 412. */
static etagkv_status put_want_current(const char *k, const char *v,
                                      const char *im, const char *idem,
                                      etagkv_result *res)
{
    etagkv_cond *c = im != NULL ? if_match(im) : NULL;
    etagkv_request rq = {.method = ETAGKV_METHOD_PUT,
                         .key = k,
                         .key_len = strlen(k),
                         .value = v,
                         .value_len = strlen(v),
                         .cond = c,
                         .idempotency_key = idem,
                         .idempotency_key_len = idem != NULL ? strlen(idem) : 0,
                         .flags = ETAGKV_WRITE_RETURN_CURRENT};
    etagkv_status ret = etagkv_write(store, &rq, res);

    etagkv_cond_free(c);
    return ret;
}

START_TEST(a_412_returns_the_current_value_read_with_its_metadata)
{
    etagkv_meta cur, empty;
    etagkv_result res;
    char stale[ETAGKV_ETAG_SIZE];

    etagkv_etag_compute("old", 3, stale);
    ck_assert_int_eq(put("k", "current", NULL, NULL, &cur), ETAGKV_CREATED);
    ck_assert_int_eq(put_want_current("k", "new", stale, NULL, &res),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_ptr_nonnull(res.current_value);
    ck_assert_uint_eq(res.current_len, 7);
    ck_assert_mem_eq(res.current_value, "current", 7);
    ck_assert_str_eq(res.meta.etag, cur.etag);
    ck_assert_uint_eq(res.meta.mod_revision, cur.mod_revision);
    etagkv_free(res.current_value);

    /* An empty value is a value: not NULL, length 0. */
    ck_assert_int_eq(put("e", "", NULL, NULL, &empty), ETAGKV_CREATED);
    ck_assert_int_eq(put_want_current("e", "new", stale, NULL, &res),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_ptr_nonnull(res.current_value);
    ck_assert_uint_eq(res.current_len, 0);
    etagkv_free(res.current_value);

    /* Success, or a 412 on an absent key: no value. */
    ck_assert_int_eq(put_want_current("k", "new", cur.etag, NULL, &res),
                     ETAGKV_OK);
    ck_assert_ptr_null(res.current_value);
    ck_assert_int_eq(put_want_current("absent", "new", stale, NULL, &res),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_ptr_null(res.current_value);
    ck_assert_int_eq(res.meta.exists, 0);

    /* Without the flag, none either; and res may be NULL with it. */
    ck_assert_int_eq(put("k", "x", stale, NULL, NULL),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(put_want_current("k", "new", stale, NULL, NULL),
                     ETAGKV_PRECONDITION_FAILED);
}
END_TEST

START_TEST(a_replayed_412_returns_no_current_value)
{
    etagkv_result res;
    char stale[ETAGKV_ETAG_SIZE];

    etagkv_etag_compute("old", 3, stale);
    ck_assert_int_eq(put("k", "v1", NULL, NULL, NULL), ETAGKV_CREATED);
    ck_assert_int_eq(put_want_current("k", "new", stale, "idem-1", &res),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(res.replayed, 0);
    ck_assert_ptr_nonnull(res.current_value);
    ck_assert_mem_eq(res.current_value, "v1", 2);
    etagkv_free(res.current_value);
    /* The recorded outcome holds metadata only: the value it replays
     * against may have changed since. */
    ck_assert_int_eq(put("k", "v2", NULL, NULL, NULL), ETAGKV_OK);
    ck_assert_int_eq(put_want_current("k", "new", stale, "idem-1", &res),
                     ETAGKV_PRECONDITION_FAILED);
    ck_assert_int_eq(res.replayed, 1);
    ck_assert_ptr_null(res.current_value);
}
END_TEST

START_TEST(update_rebases_on_the_value_each_lost_race_returned)
{
    struct append_ctx ctx = {.races = 2};
    etagkv_meta m;
    char want[ETAGKV_ETAG_SIZE];
    char *v;

    ck_assert_int_eq(put("k", "a", NULL, NULL, NULL), ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_update(store, "k", 1, append_x, &ctx, 0, &m),
                     ETAGKV_OK);
    ck_assert_int_eq(ctx.calls, 3);
    ck_assert_str_eq(ctx.seen[0], "a");
    ck_assert_str_eq(ctx.seen[1], "o0");
    ck_assert_str_eq(ctx.seen[2], "o1");
    v = value_of("k");
    ck_assert_str_eq(v, "o1x");
    free(v);
    etagkv_etag_compute("o1x", 3, want);
    ck_assert_str_eq(m.etag, want);
}
END_TEST

/* ---- listing
 * ----------------------------------------------------------------- */

struct collect {
    char keys[32][16];
    int n;
    int stop_after;
};

static int collect_fn(void *vctx, const void *key, size_t key_len,
                      const etagkv_meta *meta)
{
    struct collect *c = vctx;

    ck_assert_int_eq(meta->exists, 1);
    ck_assert_uint_lt(key_len, 16);
    memcpy(c->keys[c->n], key, key_len);
    c->keys[c->n][key_len] = '\0';
    c->n++;
    return c->stop_after > 0 && c->n == c->stop_after;
}

START_TEST(list_by_prefix_pages_with_a_resumable_cursor)
{
    static const char *keys[] = {"a", "b/1", "b/2", "b/3", "b/4", "b/5", "c"};
    struct collect c;
    int more;

    for (size_t i = 0; i < 7; i++)
        ck_assert_int_eq(put(keys[i], "v", NULL, NULL, NULL), ETAGKV_CREATED);

    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(
        etagkv_list(store, "b/", 2, NULL, 0, 2, collect_fn, &c, &more),
        ETAGKV_OK);
    ck_assert_int_eq(c.n, 2);
    ck_assert_str_eq(c.keys[0], "b/1");
    ck_assert_str_eq(c.keys[1], "b/2");
    ck_assert_int_eq(more, 1);

    /* Resume after the last key; a key written meanwhile before the
     * cursor does not shift the page (the cursor is a key, not an offset). */
    ck_assert_int_eq(put("b/0", "v", NULL, NULL, NULL), ETAGKV_CREATED);
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(
        etagkv_list(store, "b/", 2, "b/2", 3, 2, collect_fn, &c, &more),
        ETAGKV_OK);
    ck_assert_int_eq(c.n, 2);
    ck_assert_str_eq(c.keys[0], "b/3");
    ck_assert_str_eq(c.keys[1], "b/4");
    ck_assert_int_eq(more, 1);

    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(
        etagkv_list(store, "b/", 2, "b/4", 3, 2, collect_fn, &c, &more),
        ETAGKV_OK);
    ck_assert_int_eq(c.n, 1);
    ck_assert_str_eq(c.keys[0], "b/5");
    ck_assert_int_eq(more, 0);

    /* A cursor before the prefix starts at the prefix; no prefix lists
     * everything; a cursor that is not a key resumes after its position. */
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(
        etagkv_list(store, "b/", 2, "a", 1, 0, collect_fn, &c, &more),
        ETAGKV_OK);
    ck_assert_int_eq(c.n, 6);
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(
        etagkv_list(store, NULL, 0, "b/35", 4, 0, collect_fn, &c, &more),
        ETAGKV_OK);
    ck_assert_int_eq(c.n, 3);
    ck_assert_str_eq(c.keys[0], "b/4");
    ck_assert_str_eq(c.keys[2], "c");
    ck_assert_int_eq(more, 0);

    /* The callback may stop early; more still tells whether records
     * follow the last one it saw. */
    memset(&c, 0, sizeof(c));
    c.stop_after = 1;
    ck_assert_int_eq(
        etagkv_list(store, NULL, 0, NULL, 0, 0, collect_fn, &c, &more),
        ETAGKV_OK);
    ck_assert_int_eq(c.n, 1);
    ck_assert_str_eq(c.keys[0], "a");
    ck_assert_int_eq(more, 1);
    memset(&c, 0, sizeof(c));
    c.stop_after = 1;
    ck_assert_int_eq(
        etagkv_list(store, NULL, 0, "b/5", 3, 0, collect_fn, &c, &more),
        ETAGKV_OK);
    ck_assert_str_eq(c.keys[0], "c");
    ck_assert_int_eq(more, 0);

    /* A prefix matching nothing. */
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(
        etagkv_list(store, "zz", 2, NULL, 0, 0, collect_fn, &c, &more),
        ETAGKV_OK);
    ck_assert_int_eq(c.n, 0);
    ck_assert_int_eq(more, 0);
}
END_TEST

START_TEST(stats_count_records_and_revision)
{
    etagkv_stats s;

    ck_assert_int_eq(put("a", "1", NULL, NULL, NULL), ETAGKV_CREATED);
    ck_assert_int_eq(put("b", "1", NULL, NULL, NULL), ETAGKV_CREATED);
    ck_assert_int_eq(put("b", "2", NULL, NULL, NULL), ETAGKV_OK);
    ck_assert_int_eq(etagkv_store_stats(store, &s), ETAGKV_OK);
    ck_assert_uint_eq(s.records, 2);
    ck_assert_uint_eq(s.revision, 3);
    if (tu_on_etcd()) {
        ck_assert_uint_eq(s.map_used_bytes, 0); /* no map on etcd */
        ck_assert_uint_eq(s.map_size_bytes, 0);
    } else {
        ck_assert_uint_gt(s.map_used_bytes, 0);
        ck_assert_uint_le(s.map_used_bytes, s.map_size_bytes);
        ck_assert_uint_le(s.map_size_bytes, s.map_max_bytes);
    }
    ck_assert_uint_eq(s.max_value_bytes, ETAGKV_MAX_VALUE_BYTES_DEFAULT);
}
END_TEST

/* ---- zero-copy read ------------------------------------------------------ */

static void view_fn(void *ctx, const void *value, size_t len,
                    const etagkv_meta *meta)
{
    char *out = ctx;

    ck_assert_uint_eq(meta->value_bytes, len);
    memcpy(out, value, len);
    out[len] = '\0';
}

START_TEST(view_passes_the_value_in_place)
{
    char buf[16] = "";

    ck_assert_int_eq(put("k", "hello", NULL, NULL, NULL), ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_view(store, "k", 1, NULL, view_fn, buf), ETAGKV_OK);
    ck_assert_str_eq(buf, "hello");
    ck_assert_int_eq(etagkv_view(store, "nope", 4, NULL, view_fn, buf),
                     ETAGKV_NOT_FOUND);
}
END_TEST

/* ---- bad input: clear status, nothing changed --------------------------- */

START_TEST(bad_input_gets_a_clear_status_and_changes_nothing)
{
    char big_key[ETAGKV_KEY_MAX + 2];
    etagkv_meta m;
    etagkv_stats s;
    void *v;
    size_t n;
    etagkv_options o;
    etagkv_store *other;

    memset(big_key, 'k', sizeof(big_key));
    ck_assert_int_eq(put("k", "v", NULL, NULL, NULL), ETAGKV_CREATED);

    ck_assert_int_eq(etagkv_put(store, "", 0, "v", 1, NULL, NULL, &m),
                     ETAGKV_INVALID_KEY);
    ck_assert_int_eq(
        etagkv_put(store, big_key, ETAGKV_KEY_MAX + 1, "v", 1, NULL, NULL, &m),
        ETAGKV_KEY_TOO_LONG);
    ck_assert_int_eq(etagkv_put(store, NULL, 3, "v", 1, NULL, NULL, &m),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_put(store, "k", 1, NULL, 4, NULL, NULL, &m),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_put(NULL, "k", 1, "v", 1, NULL, NULL, &m),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_put(store, "k", 1, "v", 1, "", NULL, &m),
                     ETAGKV_INVALID_HEADER);
    ck_assert_int_eq(
        etagkv_put(store, "k", 1, "v", 1, "text/plain\r\nX: y", NULL, &m),
        ETAGKV_INVALID_HEADER);
    ck_assert_int_eq(etagkv_delete(store, "", 0, NULL, &m), ETAGKV_INVALID_KEY);
    ck_assert_int_eq(etagkv_delete(store, big_key, sizeof(big_key), NULL, &m),
                     ETAGKV_KEY_TOO_LONG);
    ck_assert_int_eq(etagkv_get(store, "", 0, NULL, &v, &n, &m),
                     ETAGKV_INVALID_KEY);
    ck_assert_int_eq(
        etagkv_get(store, big_key, sizeof(big_key), NULL, NULL, NULL, &m),
        ETAGKV_KEY_TOO_LONG);
    ck_assert_int_eq(etagkv_list(store, NULL, 0, NULL, 0, 0, NULL, NULL, NULL),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_store_stats(NULL, &s), ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_update(store, "k", 1, NULL, NULL, 0, &m),
                     ETAGKV_INVALID_ARGUMENT);

    /* The longest key is fine. */
    ck_assert_int_eq(
        etagkv_put(store, big_key, ETAGKV_KEY_MAX, "v", 1, NULL, NULL, &m),
        ETAGKV_CREATED);
    ck_assert_uint_eq(revision(), 2);

    /* Options that make no sense are refused, and *out is NULL. */
    etagkv_options_init(&o);
    o.map_size_bytes = 1 << 30;
    o.map_max_bytes = 1 << 20;
    other = (etagkv_store *)&o;
    ck_assert_int_eq(etagkv_store_open(dir, &o, &other),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_ptr_null(other);
    ck_assert_int_eq(etagkv_store_open(NULL, NULL, &other),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_int_eq(etagkv_store_open("/nonexistent/etagkv", NULL, &other),
                     ETAGKV_NOT_FOUND);
    ck_assert_ptr_null(other);
    ck_assert_str_ne(etagkv_last_error_detail(), "");
}
END_TEST

START_TEST(value_larger_than_the_limit_is_refused)
{
    etagkv_options o;
    char *big = calloc(1, 1025);

    ck_assert_ptr_nonnull(big);
    etagkv_store_close(store);
    etagkv_options_init(&o);
    o.max_value_bytes = 1024;
    store = tu_open(dir, &o);
    ck_assert_int_eq(etagkv_put(store, "k", 1, big, 1025, NULL, NULL, NULL),
                     ETAGKV_VALUE_TOO_LARGE);
    ck_assert_int_eq(etagkv_put(store, "k", 1, big, 1024, NULL, NULL, NULL),
                     ETAGKV_CREATED);
    ck_assert_uint_eq(revision(), 1);
    free(big);
}
END_TEST

START_TEST(a_data_file_that_is_not_lmdb_is_incompatible)
{
    etagkv_store *other = NULL;
    char path[4096];
    FILE *f;

    /* A data.mdb that is not LMDB at all. */
    etagkv_store_close(store);
    store = NULL;
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 4096; i++)
        fputc('z', f);
    fclose(f);
    ck_assert_int_eq(etagkv_store_open(dir, NULL, &other), ETAGKV_INCOMPATIBLE);
    ck_assert_ptr_null(other);
}
END_TEST

START_TEST(another_programs_lmdb_environment_is_refused_and_left_alone)
{
    char *foreign = tu_mkdtemp();
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {3, "abc"}, v = {3, "xyz"};
    etagkv_store *other = NULL;
    MDB_stat ms;

    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_open(env, foreign, 0, 0644), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    ck_assert_int_eq(etagkv_store_open(foreign, NULL, &other),
                     ETAGKV_INCOMPATIBLE);
    ck_assert_ptr_null(other);

    /* Nothing was written into it. */
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_open(env, foreign, MDB_RDONLY, 0644), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    ck_assert_int_eq(mdb_stat(txn, dbi, &ms), 0);
    ck_assert_uint_eq(ms.ms_entries, 1);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    tu_rmdir_free(foreign);
}
END_TEST

/* The mode of dir/name, permission bits only. */
static unsigned file_mode_of(const char *d, const char *name)
{
    char path[4096];
    struct stat sb;

    snprintf(path, sizeof(path), "%s/%s", d, name);
    ck_assert_int_eq(stat(path, &sb), 0);
    return (unsigned)(sb.st_mode & 07777);
}

START_TEST(store_files_are_created_owner_only_unless_widened)
{
    char *wide = tu_mkdtemp();
    etagkv_store *other = NULL;
    etagkv_options o;
    mode_t old = umask(022); /* the usual umask, which 0644 slips past */

    /* The fixture's store was opened with the default mode. */
    etagkv_store_close(store);
    store = NULL;
    ck_assert_uint_eq(file_mode_of(dir, "data.mdb"), 0600);
    ck_assert_uint_eq(file_mode_of(dir, "lock.mdb"), 0600);
    etagkv_options_init(&o);
    ck_assert_uint_eq(o.file_mode, ETAGKV_FILE_MODE_DEFAULT);
    o.file_mode = 0640;
    ck_assert_int_eq(etagkv_store_open(wide, &o, &other), ETAGKV_OK);
    etagkv_store_close(other);
    ck_assert_uint_eq(file_mode_of(wide, "data.mdb"), 0640);
    /* An existing store keeps its mode. */
    ck_assert_int_eq(etagkv_store_open(dir, &o, &other), ETAGKV_OK);
    etagkv_store_close(other);
    ck_assert_uint_eq(file_mode_of(dir, "data.mdb"), 0600);
    /* LMDB must read and write its files; nothing beyond 0777. */
    o.file_mode = 0400;
    ck_assert_int_eq(etagkv_store_open(wide, &o, &other),
                     ETAGKV_INVALID_ARGUMENT);
    o.file_mode = 04600;
    ck_assert_int_eq(etagkv_store_open(wide, &o, &other),
                     ETAGKV_INVALID_ARGUMENT);
    ck_assert_ptr_null(other);
    umask(old);
    tu_rmdir_free(wide);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, etag_is_the_quoted_xxh3_128_of_the_value);
    tcase_add_test(tc, revisions_and_versions_step_as_specified);
    tcase_add_test(tc, modified_never_goes_backwards_even_when_the_clock_does);
    tcase_add_test(tc, data_and_metadata_survive_close_and_reopen);
    tcase_add_test(tc, content_type_is_stored_and_defaults_to_octet_stream);
    tcase_add_test(
        tc,
        put_if_match_on_absent_key_is_precondition_failed_and_creates_nothing);
    tcase_add_test(tc, failed_put_reports_the_current_record_for_rebasing);
    tcase_add_test(tc, no_content_based_success_two_writers_with_one_validator);
    tcase_add_test(tc, create_only_and_update_only_conditions_guard_a_put);
    tcase_add_test(tc, cond_if_match_takes_only_a_complete_strong_etag);
    tcase_add_test(tc, constructed_conditions_evaluate_as_the_parsed_headers);
    tcase_add_test(tc,
                   keep_content_type_flag_keeps_it_and_plain_put_replaces_it);
    tcase_add_test(tc, an_explicit_content_type_wins_over_the_keep_flag);
    tcase_add_test(tc, an_unknown_write_flag_is_refused_and_changes_nothing);
    tcase_add_test(tc, the_error_detail_is_cleared_by_the_next_call);
    tcase_add_test(tc, update_may_answer_with_the_old_value_itself);
    tcase_add_test(tc, delete_follows_rfc9110_13_2_1_and_if_match);
    tcase_add_test(tc,
                   conditional_get_gives_not_modified_and_precondition_failed);
    tcase_add_test(tc, if_unmodified_since_on_a_missing_key_is_ignored_by_put);
    tcase_add_test(tc, update_retries_with_a_fresh_validator_after_a_race);
    tcase_add_test(
        tc, update_creates_an_absent_key_and_gives_up_after_max_attempts);
    tcase_add_test(tc,
                   update_stops_with_the_callbacks_status_and_writes_nothing);
    tcase_add_test(tc, a_412_returns_the_current_value_read_with_its_metadata);
    tcase_add_test(tc, a_replayed_412_returns_no_current_value);
    tcase_add_test(tc, update_rebases_on_the_value_each_lost_race_returned);
    tcase_add_test(tc, list_by_prefix_pages_with_a_resumable_cursor);
    tcase_add_test(tc, stats_count_records_and_revision);
    tcase_add_test(tc, view_passes_the_value_in_place);
    tcase_add_test(tc, bad_input_gets_a_clear_status_and_changes_nothing);
    tcase_add_test(tc, value_larger_than_the_limit_is_refused);
    suite_add_tcase(s, tc);
    /* What only an LMDB directory has: files, their modes, the process's
     * registry of open directories.  Not run on etcd (tu_on_etcd()). */
    if (!tu_on_etcd()) {
        TCase *lmdb = tcase_create("lmdb");

        tcase_add_checked_fixture(lmdb, setup, teardown);
        tcase_add_test(lmdb, a_second_open_in_the_same_process_is_refused);
        tcase_add_test(
            lmdb,
            options_the_machine_cannot_honour_are_refused_before_any_file);
        tcase_add_test(lmdb, a_data_file_that_is_not_lmdb_is_incompatible);
        tcase_add_test(
            lmdb, another_programs_lmdb_environment_is_refused_and_left_alone);
        tcase_add_test(lmdb, store_files_are_created_owner_only_unless_widened);
        suite_add_tcase(s, lmdb);
    }
    return s;
}

int main(void)
{
    return tu_run(suite());
}
