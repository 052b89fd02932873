/*
 * fuzz_cond.c -- libFuzzer target for precondition parsing and evaluation
 * against a real store (lib/cond.c through etagkv_get/head/put/delete).
 *
 * Input: text lines separated by '\n'.
 *   line 0     the request: its first byte is the method ('G'et, 'H'ead,
 *              'P'ut, 'D'elete; any other byte picks one by its value);
 *              the rest of the line is the PUT body.
 *   line i>=1  one raw header value for header (i - 1) % 4: If-Match,
 *              If-None-Match, If-Modified-Since, If-Unmodified-Since; so
 *              lines 5..8 are second lines of the same four headers.  A
 *              line that is exactly "-" adds nothing.  "$E" in a value
 *              stands for the 32 hex digits of the key's current ETag (or
 *              of key 0's when the key is absent), as in tests/lib/test_cond.c.
 *
 * Each input first resets a small store (opened once per process, in a
 * temporary directory, nosync): key 0 = "v0" modified at T0, key 1 absent,
 * key 2 = "v2" modified a day earlier; the clock then stands at T0 + 10 s.
 * T0 is RFC 9110's example instant, so the seed dates are meaningful.  The
 * request is then made on each of the three keys, with its conditions
 * parsed by etagkv_cond_add(), and these invariants are checked:
 *  - the outcome is the one etagkv_cond_evaluate() gives for the state
 *    before (the store and the pure evaluator agree; DESIGN §2), and the
 *    one a reference gives: RFC 9110 §13.2.2 written out here over facts
 *    read from the raw lines without the library's parser (is a line "*",
 *    does the current ETag occur in it, with or without "W/" before it);
 *    so a weak tag that passed If-Match, or an If-Match without the
 *    current ETag that let a write through, is caught;
 *  - a request that does not succeed (304, 404, 412) changes nothing: same
 *    store revision, same record; its meta_out is the current record;
 *  - a successful write moves the revision by exactly one and leaves the
 *    record DESIGN §1 describes (ETag of the body, version, revisions,
 *    modified moving forward);
 *  - a set that is not conditional never stops a PUT;
 *  - a rejected header line leaves the condition set unchanged, and equal
 *    lines give equal canonical forms (idempotency fingerprints).
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "internal.h"

#define MAX_LINES 33
#define NKEYS 3
#define NS INT64_C(1000000000)
/* Sun, 06 Nov 1994 08:49:37 GMT, plus half a second. */
#define T0_NS (INT64_C(784111777) * NS + NS / 2)

static const struct {
    const char *p;
    size_t len;
} keys[NKEYS] = {{"k0", 2}, {"k\0\xff", 3}, {"k2", 2}};

static etagkv_store *store;
static char dir[4096];
static int64_t now_ns = T0_NS;

static uint64_t fuzz_clock(void *ctx)
{
    (void)ctx;
    return (uint64_t)now_ns;
}

/* ---- the store ----------------------------------------------------------- */

/* Remove the store's files and its directory (LMDB keeps it flat). */
static void remove_dir(void)
{
    DIR *d;
    struct dirent *e;
    char path[sizeof dir + 256];

    etagkv_store_close(store);
    store = NULL;
    d = opendir(dir);
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        (void)unlink(path);
    }
    closedir(d);
    (void)rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *base = getenv("ETAGKV_FUZZ_TMP");
    etagkv_options o;
    etagkv_status st;

    (void)argc;
    (void)argv;
    if (base == NULL || *base == '\0')
        base = getenv("TMPDIR");
    if (base == NULL || *base == '\0')
        base = "/tmp";
    snprintf(dir, sizeof dir, "%s/etagkv-fuzz-XXXXXX", base);
    CHECK(mkdtemp(dir) != NULL);
    etagkv_options_init(&o);
    o.sync_mode = ETAGKV_NOSYNC; /* a process crash loses nothing */
    o.clock = fuzz_clock;
    o.max_value_bytes = 1 << 20;
    st = etagkv_store_open(dir, &o, &store);
    if (st != ETAGKV_OK)
        fprintf(stderr, "cannot open a store in %s: %s (%s)\n", dir,
                etagkv_strerror(st), etagkv_last_error_detail());
    CHECK(st == ETAGKV_OK);
    atexit(remove_dir);
    return 0;
}

static uint64_t revision(void)
{
    etagkv_stats stats;

    CHECK(etagkv_store_stats(store, &stats) == ETAGKV_OK);
    return stats.revision;
}

/* The key's record, exists 0 when absent. */
static void current(int k, etagkv_meta *m)
{
    etagkv_status st =
        etagkv_get(store, keys[k].p, keys[k].len, NULL, NULL, NULL, m);

    CHECK(st == ETAGKV_OK || st == ETAGKV_NOT_FOUND);
    if (st == ETAGKV_NOT_FOUND)
        memset(m, 0, sizeof *m);
}

static void reset(void)
{
    for (int k = 0; k < NKEYS; k++) {
        etagkv_status st =
            etagkv_delete(store, keys[k].p, keys[k].len, NULL, NULL);

        CHECK(st == ETAGKV_OK || st == ETAGKV_NOT_FOUND);
    }
    now_ns = T0_NS;
    CHECK(etagkv_put(store, keys[0].p, keys[0].len, "v0", 2, NULL, NULL,
                     NULL) == ETAGKV_CREATED);
    now_ns = T0_NS - 86400 * NS;
    CHECK(etagkv_put(store, keys[2].p, keys[2].len, "v2", 2, "text/plain", NULL,
                     NULL) == ETAGKV_CREATED);
    now_ns = T0_NS + 10 * NS;
}

static int same_meta(const etagkv_meta *a, const etagkv_meta *b)
{
    if (a->exists != b->exists)
        return 0;
    if (!a->exists)
        return 1;
    return strcmp(a->etag, b->etag) == 0 && a->value_bytes == b->value_bytes &&
           a->created_ns == b->created_ns && a->modified_ns == b->modified_ns &&
           a->create_revision == b->create_revision &&
           a->mod_revision == b->mod_revision && a->version == b->version &&
           strcmp(a->content_type, b->content_type) == 0;
}

/* ---- the conditions ------------------------------------------------------ */

/* What the accepted header lines say, read without the library's parser:
 * in a line the parser accepted, every occurrence of the current ETag's
 * bytes is a listed tag (an opaque-tag cannot hold a DQUOTE), weak iff "W/"
 * stands right before it. */
struct facts {
    /* If-Match: present, "*", lists the ETag as a strong tag, as any tag */
    int im, im_star, im_strong, im_weak;
    /* If-None-Match: the same */
    int inm, inm_star, inm_strong, inm_weak;
    /* Date headers: lines seen (valid or not); the first line is a valid
     * HTTP-date; its instant */
    int ims_lines, ius_lines;
    int ims_ok, ius_ok;
    int64_t ims, ius;
};

/* s[0..len) with "$E" replaced by hex (32 digits); malloc'd, *out_len. */
static char *expand(const char *s, size_t len, const char *hex, size_t *out_len)
{
    char *out = malloc(len * 16 + 1);
    size_t o = 0;

    CHECK(out != NULL);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '$' && i + 1 < len && s[i + 1] == 'E') {
            memcpy(out + o, hex, 32);
            o += 32;
            i++;
        } else {
            out[o++] = s[i];
        }
    }
    *out_len = o;
    return out;
}

static int is_star(const char *s, size_t len)
{
    size_t a = 0, b = len;

    while (a < b && (s[a] == ' ' || s[a] == '\t'))
        a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
        b--;
    return b - a == 1 && s[a] == '*';
}

/* Whether the ETag occurs in s as a strong tag (*strong) or at all
 * (*weak). */
static void occurs(const char *s, size_t len, const char *etag, int *strong,
                   int *weak)
{
    size_t n = strlen(etag);

    for (size_t i = 0; n <= len && i <= len - n; i++) {
        if (memcmp(s + i, etag, n) != 0)
            continue;
        *weak = 1;
        if (i < 2 || s[i - 2] != 'W' || s[i - 1] != '/')
            *strong = 1;
    }
}

/* A date line: only the first line of a header can be valid (a second one
 * makes the field invalid, so it is ignored). */
static void date_line(int *lines, int *ok, int64_t *t, const char *v,
                      size_t len)
{
    if ((*lines)++ == 0)
        *ok = etagkv_httpdate_parse(v, len, t) == ETAGKV_OK;
    else
        *ok = 0;
}

/* The canonical form of c, malloc'd. */
static uint8_t *serialize(const etagkv_cond *c, size_t *len)
{
    uint8_t *p = NULL;

    CHECK(ekv_cond_serialize(c, &p, len) == ETAGKV_OK);
    return p;
}

/* Add one line to c; a rejected line must leave c as it was. */
static etagkv_status add_line(etagkv_cond *c, etagkv_header h, const char *v,
                              size_t len)
{
    size_t n0, n1;
    uint8_t *before = serialize(c, &n0), *after;
    etagkv_status st = etagkv_cond_add(c, h, v, len);

    if (h == ETAGKV_IF_MATCH || h == ETAGKV_IF_NONE_MATCH)
        CHECK(st == ETAGKV_OK || st == ETAGKV_INVALID_HEADER);
    else
        CHECK(st == ETAGKV_OK); /* a bad date is ignored, not an error */
    if (st != ETAGKV_OK) {
        after = serialize(c, &n1);
        CHECK(n0 == n1 && memcmp(before, after, n0) == 0);
        free(after);
    }
    free(before);
    return st;
}

/* Build the conditions of lines[1..n) for a key whose ETag is etag (the
 * substitution's source is hex_etag); fill *f. */
static etagkv_cond *build(const fuzz_line *lines, size_t n, const char *etag,
                          const char *hex_etag, struct facts *f)
{
    etagkv_cond *c = NULL;

    memset(f, 0, sizeof *f);
    CHECK(etagkv_cond_new(&c) == ETAGKV_OK);
    for (size_t i = 1; i < n; i++) {
        etagkv_header h = (etagkv_header)((i - 1) % 4);
        size_t len;
        char *v;

        if (lines[i].len == 1 && lines[i].p[0] == '-')
            continue;
        v = expand(lines[i].p, lines[i].len, hex_etag + 1, &len);
        if (add_line(c, h, v, len) == ETAGKV_OK) {
            switch (h) {
            case ETAGKV_IF_MATCH:
                f->im = 1;
                f->im_star |= is_star(v, len);
                occurs(v, len, etag, &f->im_strong, &f->im_weak);
                break;
            case ETAGKV_IF_NONE_MATCH:
                f->inm = 1;
                f->inm_star |= is_star(v, len);
                occurs(v, len, etag, &f->inm_strong, &f->inm_weak);
                break;
            case ETAGKV_IF_MODIFIED_SINCE:
                date_line(&f->ims_lines, &f->ims_ok, &f->ims, v, len);
                break;
            case ETAGKV_IF_UNMODIFIED_SINCE:
                date_line(&f->ius_lines, &f->ius_ok, &f->ius, v, len);
                break;
            case ETAGKV_IF_REVISION:
                break; /* not produced: h cycles through RFC 9110's four */
            }
        }
        free(v);
    }
    return c;
}

/* ---- one request on one key ---------------------------------------------- */

static etagkv_status perform(int k, etagkv_method m, const etagkv_cond *c,
                             const char *body, size_t body_len,
                             const etagkv_meta *before, etagkv_meta *out)
{
    void *value = NULL;
    size_t value_len = 0;
    char etag[ETAGKV_ETAG_SIZE];
    etagkv_status st = ETAGKV_INTERNAL;

    memset(out, 0, sizeof *out);
    switch (m) {
    case ETAGKV_METHOD_GET:
        st = etagkv_get(store, keys[k].p, keys[k].len, c, &value, &value_len,
                        out);
        if (st == ETAGKV_OK) {
            /* The bytes read are the bytes whose ETag the record holds. */
            CHECK(value != NULL && value_len == before->value_bytes);
            etagkv_etag_compute(value, value_len, etag);
            CHECK(strcmp(etag, before->etag) == 0);
        } else {
            CHECK(value == NULL);
        }
        etagkv_free(value);
        break;
    case ETAGKV_METHOD_HEAD:
        st = etagkv_get(store, keys[k].p, keys[k].len, c, NULL, NULL, out);
        break;
    case ETAGKV_METHOD_PUT:
        st = etagkv_put(store, keys[k].p, keys[k].len, body, body_len, NULL, c,
                        out);
        break;
    case ETAGKV_METHOD_DELETE:
        st = etagkv_delete(store, keys[k].p, keys[k].len, c, out);
        break;
    }
    return st;
}

/* The outcome RFC 9110 §13.2.2 gives, as the pure evaluator says. */
static etagkv_status expected(const etagkv_cond *c, etagkv_method m,
                              const etagkv_meta *before)
{
    etagkv_status want = etagkv_cond_evaluate(c, m, before);

    if (m == ETAGKV_METHOD_PUT && want == ETAGKV_OK && !before->exists)
        return ETAGKV_CREATED;
    return want;
}

/* RFC 9110 §13.2.2 from the facts: a reference written from the RFC,
 * independent of the library's parser and evaluator (the dates are read
 * by etagkv_httpdate_parse, which fuzz_httpdate checks on its own). */
static etagkv_status reference(etagkv_method m, const etagkv_meta *before,
                               const struct facts *f)
{
    int exists = before->exists;
    int read = m == ETAGKV_METHOD_GET || m == ETAGKV_METHOD_HEAD;
    int64_t lm = ETAGKV_META_LAST_MODIFIED(before);

    /* §13.2.1: a read or delete of nothing is 404 whatever the headers. */
    if (!exists && m != ETAGKV_METHOD_PUT)
        return ETAGKV_NOT_FOUND;
    /* Step 1: If-Match, strong comparison; "*" iff the key exists.  Else
     * step 2: If-Unmodified-Since, only for an existing key. */
    if (f->im) {
        if (!exists || !(f->im_star || f->im_strong))
            return ETAGKV_PRECONDITION_FAILED;
    } else if (f->ius_ok && exists && lm > f->ius) {
        return ETAGKV_PRECONDITION_FAILED;
    }
    /* Step 3: If-None-Match, weak comparison; else step 4 (reads only). */
    if (f->inm) {
        if (exists && (f->inm_star || f->inm_weak))
            return read ? ETAGKV_NOT_MODIFIED : ETAGKV_PRECONDITION_FAILED;
    } else if (read && f->ims_ok && exists && lm <= f->ims) {
        return ETAGKV_NOT_MODIFIED;
    }
    if (m == ETAGKV_METHOD_PUT && !exists)
        return ETAGKV_CREATED;
    return ETAGKV_OK;
}

/* The state after a request, given its outcome. */
static void check_after(int k, etagkv_method m, etagkv_status st,
                        const etagkv_meta *before, uint64_t rev0,
                        const etagkv_meta *out, const char *body,
                        size_t body_len)
{
    uint64_t rev1 = revision();
    etagkv_meta after;
    char etag[ETAGKV_ETAG_SIZE];

    current(k, &after);
    if (st == ETAGKV_NOT_MODIFIED || st == ETAGKV_PRECONDITION_FAILED)
        CHECK(same_meta(out, before)); /* the current record, to rebase */
    if (m == ETAGKV_METHOD_GET && st == ETAGKV_OK)
        CHECK(same_meta(out, before));
    if (!(m == ETAGKV_METHOD_PUT || m == ETAGKV_METHOD_DELETE) ||
        (st != ETAGKV_OK && st != ETAGKV_CREATED)) {
        CHECK(rev1 == rev0);
        CHECK(same_meta(&after, before));
        return;
    }
    CHECK(rev1 == rev0 + 1);
    CHECK(same_meta(out, &after) || m == ETAGKV_METHOD_DELETE);
    if (m == ETAGKV_METHOD_DELETE) {
        CHECK(!after.exists && !out->exists && out->mod_revision == rev1);
        return;
    }
    etagkv_etag_compute(body, body_len, etag);
    CHECK(after.exists && strcmp(after.etag, etag) == 0);
    CHECK(after.value_bytes == body_len && after.mod_revision == rev1);
    CHECK(after.version == (before->exists ? before->version + 1 : 1));
    CHECK(after.create_revision ==
          (before->exists ? before->create_revision : rev1));
    if (before->exists) {
        CHECK(after.modified_ns > before->modified_ns);
        CHECK(strcmp(after.content_type, before->content_type) == 0 ||
              strcmp(after.content_type, ETAGKV_CONTENT_TYPE_DEFAULT) == 0);
    }
}

static void request_one(int k, etagkv_method m, const fuzz_line *lines,
                        size_t n, const char *body, size_t body_len)
{
    etagkv_meta before, out, k0;
    struct facts f, f2;
    etagkv_cond *c, *c2;
    uint8_t *s1, *s2;
    size_t n1, n2;
    uint64_t rev0 = revision();
    etagkv_status st, want, ref;

    current(k, &before);
    current(0, &k0);
    c = build(lines, n, before.exists ? before.etag : "\"\"",
              before.exists ? before.etag : k0.etag, &f);
    /* Equal lines, equal canonical form (the idempotency fingerprint). */
    c2 = build(lines, n, before.exists ? before.etag : "\"\"",
               before.exists ? before.etag : k0.etag, &f2);
    s1 = serialize(c, &n1);
    s2 = serialize(c2, &n2);
    CHECK(n1 == n2 && memcmp(s1, s2, n1) == 0);
    free(s1);
    free(s2);
    etagkv_cond_free(c2);

    want = expected(c, m, &before);
    st = perform(k, m, c, body, body_len, &before, &out);
    if (st != want)
        fprintf(stderr, "key %d method %d: got %s, evaluator says %s\n", k,
                (int)m, etagkv_status_name(st), etagkv_status_name(want));
    CHECK(st == want);
    ref = reference(m, &before, &f);
    if (st != ref)
        fprintf(stderr, "key %d method %d: got %s, the reference says %s\n", k,
                (int)m, etagkv_status_name(st), etagkv_status_name(ref));
    CHECK(st == ref);
    /* A set that is not conditional never stops a PUT. */
    if (m == ETAGKV_METHOD_PUT && !etagkv_cond_is_conditional(c))
        CHECK(st == ETAGKV_OK || st == ETAGKV_CREATED);
    check_after(k, m, st, &before, rev0, &out, body, body_len);
    etagkv_cond_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_line lines[MAX_LINES];
    size_t n = fuzz_split_lines(data, size, lines, MAX_LINES);
    etagkv_method m;

    if (n == 0 || lines[0].len == 0)
        return 0;
    switch (lines[0].p[0]) {
    case 'G': m = ETAGKV_METHOD_GET; break;
    case 'H': m = ETAGKV_METHOD_HEAD; break;
    case 'P': m = ETAGKV_METHOD_PUT; break;
    case 'D': m = ETAGKV_METHOD_DELETE; break;
    default: m = (etagkv_method)((unsigned char)lines[0].p[0] % 4); break;
    }
    reset();
    for (int k = 0; k < NKEYS; k++)
        request_one(k, m, lines, n, lines[0].p + 1, lines[0].len - 1);
    return 0;
}
