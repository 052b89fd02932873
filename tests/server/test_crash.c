/*
 * test_crash.c -- crash safety (DESIGN §4, issue 5): nothing acknowledged is
 * lost when the process holding the store is killed, no record is ever torn
 * or invented, the store opens again as it is, and the revision counter
 * never goes backwards.
 *
 * Four writers are killed with SIGKILL at random moments, at least 20
 * times each:
 *  - etagkv-server in sync, nosync and pipelined mode (the last chosen by
 *    --sync-mode pipelined), driven over HTTP by client threads doing
 *    GET then PUT If-Match (If-None-Match: * for an absent key), re-reading
 *    on 412, on a few hot keys shared by all and a few private keys each;
 *  - a child process writing through the library (etagkv_put under
 *    etagkv_cond_if_match or etagkv_cond_create_only, and plain) from
 *    several threads,
 *    reporting each write before and after through a pipe, in sync mode;
 *  - the same child in nosync mode: a process crash must lose nothing
 *    acknowledged there either, since the committed pages are in the OS
 *    page cache (ETAGKV_NOSYNC).  What an OS crash can lose in nosync mode
 *    cannot be shown by killing a process and is not tested here;
 *  - the same child in pipelined mode (ETAGKV_SYNC_PIPELINED), where a
 *    batch's acknowledgement waits for a later flush;
 *  - a child committing multi-key transactions (DESIGN §7) in sync mode:
 *    each one is entirely present or entirely absent after the kill, every
 *    acknowledged one present, and transfers inside them conserve a sum.
 *
 * Every value is unique and names its writer: "cCC sSSSSSSSS kKKK |" and
 * then filler that is a pure function of (client, sequence), so any value
 * read back can be traced to exactly one write and compared byte for byte.
 * Each write is recorded before it is sent and then marked acknowledged
 * (2xx / ETAGKV_OK, CREATED, with its revision), refused (412: certainly not
 * applied) or left in flight (no answer before the kill: may or may not be
 * applied).  After every restart, with no writer running, each key must
 * hold:
 *  1. the latest acknowledged write to it (highest revision), or a write
 *     with a higher revision that was itself sent and not refused; never an
 *     older write of a client that has a later acknowledged one there;
 *  2. a value some client sent to that key, byte for byte, whose ETag is
 *     the hash of the bytes read (no torn, mixed or invented record), and
 *     no key outside the ones the clients write;
 *  3. and the store must open without any repair step, with a revision
 *     counter (etagkv_store_revision, etagkv_store_stats) at least every
 *     revision acknowledged or seen before, that no write sent before a
 *     kill exceeds once the store is reopened.
 *
 * Failures are reproducible in their choices (keys, lengths, kill delays):
 * the seed is printed, and ETAGKV_TEST_SEED=<n> repeats it.  The timing of
 * threads is not reproducible, so a failure is rerun with the same seed a
 * few times rather than expected to recur at once.  ETAGKV_CRASH_KILLS=<n>
 * (at least 20) runs more rounds for a soak.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "httputil.h"
#include "testutil.h"

#ifndef ETAGKV_SERVER_BIN
#error "ETAGKV_SERVER_BIN must name the etagkv-server binary"
#endif

#define SEED_DEFAULT UINT64_C(20260125)
#define KILLS_DEFAULT 24
#define KILLS_MIN 20

#define CLIENTS 6      /* writer threads (HTTP clients or library threads) */
#define HOT_KEYS 3     /* shared by every client */
#define PRIVATE_KEYS 4 /* per client */
#define KEYS (HOT_KEYS + CLIENTS * PRIVATE_KEYS)

/* A round lets the writers run this long (uniformly) before the kill. */
#define RUN_MIN_MS 20
#define RUN_MAX_MS 300

/* Values: a header naming the write, then filler; most are small, one in
 * four spans several pages (LMDB overflow pages), where a torn write would
 * show. */
#define VALUE_HDR 20
/* Room for the header of any int client and key, not only those in range
 * (which give exactly VALUE_HDR bytes): gcc's -Wformat-truncation judges
 * the buffer by the types' ranges. */
#define VALUE_HDR_BUF 48
#define VALUE_SMALL 200
#define VALUE_LARGE 12000
#define VALUE_MAX (VALUE_HDR + VALUE_LARGE)

/* ---- reproducible choices ------------------------------------------------ */

static uint64_t seed;

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);

    return v != NULL && *v != '\0' ? strtoull(v, NULL, 0) : dflt;
}

static int kills(void)
{
    uint64_t k = env_u64("ETAGKV_CRASH_KILLS", KILLS_DEFAULT);

    return k < KILLS_MIN ? KILLS_MIN : (int)(k > 10000 ? 10000 : k);
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- keys and values ----------------------------------------------------- */

/* Key k's name: "hot-N" for the shared ones, "cC-pN" for client C's. */
static void key_name(int k, char *buf, size_t cap)
{
    if (k < HOT_KEYS)
        snprintf(buf, cap, "hot-%d", k);
    else
        snprintf(buf, cap, "c%d-p%d", (k - HOT_KEYS) / PRIVATE_KEYS,
                 (k - HOT_KEYS) % PRIVATE_KEYS);
}

/* The key index of a name, or -1 if no client writes such a key. */
static int key_index(const void *name, size_t len)
{
    char buf[32];

    for (int k = 0; k < KEYS; k++) {
        key_name(k, buf, sizeof buf);
        if (strlen(buf) == len && memcmp(buf, name, len) == 0)
            return k;
    }
    return -1;
}

/* A client's next key: a hot one half of the time, else one of its own. */
static int key_pick(int client, uint64_t *rng)
{
    uint64_t r = tu_rng_next(rng);

    if (r % 2 == 0)
        return (int)((r >> 8) % HOT_KEYS);
    return HOT_KEYS + client * PRIVATE_KEYS + (int)((r >> 8) % PRIVATE_KEYS);
}

static size_t len_pick(uint64_t *rng)
{
    uint64_t r = tu_rng_next(rng);

    return VALUE_HDR +
           (size_t)((r >> 8) % (r % 4 == 0 ? VALUE_LARGE : VALUE_SMALL));
}

/* Write the value of (client, seq) for key, len bytes (>= VALUE_HDR), into
 * buf: a pure function of its arguments. */
static void value_make(char *buf, int client, uint32_t seq, int key, size_t len)
{
    char hdr[VALUE_HDR_BUF];
    uint64_t store = ((uint64_t)client << 32) ^ seq ^ ((uint64_t)key << 48);

    snprintf(hdr, sizeof hdr, "c%02d s%08" PRIu32 " k%03d |", client, seq, key);
    memcpy(buf, hdr, VALUE_HDR);
    for (size_t i = VALUE_HDR; i < len; i += 8) {
        uint64_t r = tu_rng_next(&store);

        for (size_t j = 0; j < 8 && i + j < len; j++, r >>= 8)
            buf[i + j] = (char)('a' + (r & 0xff) % 26);
    }
}

/* Parse a value's header; 0 with client, seq and key, or -1. */
static int value_parse(const char *v, size_t len, int *client, uint32_t *seq,
                       int *key)
{
    char hdr[VALUE_HDR_BUF], head[VALUE_HDR + 1];
    unsigned s;

    if (len < VALUE_HDR)
        return -1;
    memcpy(head, v, VALUE_HDR); /* a value is not NUL-terminated */
    head[VALUE_HDR] = '\0';
    if (sscanf(head, "c%2d s%8u k%3d |", client, &s, key) != 3)
        return -1;
    *seq = s;
    snprintf(hdr, sizeof hdr, "c%02d s%08u k%03d |", *client, s, *key);
    return memcmp(hdr, v, VALUE_HDR) == 0 ? 0 : -1;
}

/* 1 if len bytes at v are a value value_make() writes for key, and etag
 * (may be NULL) is their ETag: what a writer checks on every read, so that
 * a torn record is caught even when it is overwritten before a restart. */
static int value_sound(const char *v, size_t len, int key, const char *etag)
{
    static _Thread_local char want[VALUE_MAX];
    char e[ETAGKV_ETAG_SIZE];
    int c, k;
    uint32_t seq;

    if (len > VALUE_MAX || value_parse(v, len, &c, &seq, &k) != 0 || k != key)
        return 0;
    value_make(want, c, seq, k, len);
    if (memcmp(want, v, len) != 0)
        return 0;
    etagkv_etag_compute(v, len, e);
    return etag == NULL || strcmp(e, etag) == 0;
}

/* ---- the model: every write sent, and what became of it ------------------ */

enum wstate {
    W_SENT,    /* no answer before the kill: may or may not be applied */
    W_ACKED,   /* acknowledged: must survive */
    W_REFUSED, /* 412: certainly not applied */
};

struct wrec {
    uint16_t key;
    uint8_t state;
    uint8_t seen; /* found in the store after a restart; rev is known */
    uint32_t len;
    uint32_t round; /* the round (writer instance) that sent it */
    uint64_t rev;   /* acknowledged or found with this mod_revision */
};

struct wlog {
    struct wrec *w; /* indexed by sequence number */
    size_t n, cap;
};

struct model {
    struct wlog log[CLIENTS];
    int round;           /* rounds run so far */
    uint64_t floor;      /* revision the store must have reached */
    uint64_t *rev_after; /* rev_after[r]: store revision after round r */
    /* Per key, the acknowledged write with the highest revision. */
    struct {
        int client; /* -1: none */
        uint32_t seq;
        uint64_t rev;
        int64_t client_seq[CLIENTS]; /* each client's latest acked, -1 */
    } latest[KEYS];
    /* Tallies for the summary. */
    unsigned acked, refused, in_flight, in_flight_applied;
};

static struct model M;

static void model_scan(void);

static void model_init(void)
{
    memset(&M, 0, sizeof M);
    M.rev_after = calloc((size_t)kills() + 1, sizeof *M.rev_after);
    ck_assert_ptr_nonnull(M.rev_after);
    model_scan();
}

static void model_free(void)
{
    for (int c = 0; c < CLIENTS; c++)
        free(M.log[c].w);
    free(M.rev_after);
    memset(&M, 0, sizeof M);
}

/* Append a write of client c (its next sequence number) as sent.  Only
 * the thread standing for c appends to its log, and the main thread reads
 * the logs only between rounds.  Returns its sequence number, or -1 when
 * out of memory. */
static int64_t wlog_sent(int c, int key, size_t len, int round)
{
    struct wlog *l = &M.log[c];

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        struct wrec *w = realloc(l->w, cap * sizeof *w);

        if (w == NULL)
            return -1;
        l->w = w;
        l->cap = cap;
    }
    memset(&l->w[l->n], 0, sizeof l->w[l->n]);
    l->w[l->n].key = (uint16_t)key;
    l->w[l->n].state = W_SENT;
    l->w[l->n].len = (uint32_t)len;
    l->w[l->n].round = (uint32_t)round;
    return (int64_t)l->n++;
}

/* Recompute the per-key latest acknowledged writes and the revision floor
 * from the logs (main thread, no writer running). */
static void model_scan(void)
{
    M.acked = M.refused = M.in_flight = 0;
    for (int k = 0; k < KEYS; k++) {
        M.latest[k].client = -1;
        M.latest[k].rev = 0;
        for (int c = 0; c < CLIENTS; c++)
            M.latest[k].client_seq[c] = -1;
    }
    for (int c = 0; c < CLIENTS; c++)
        for (size_t i = 0; i < M.log[c].n; i++) {
            const struct wrec *w = &M.log[c].w[i];

            if (w->state == W_REFUSED) {
                M.refused++;
                continue;
            }
            if (w->state == W_SENT) {
                M.in_flight++;
                continue;
            }
            M.acked++;
            if (w->rev > M.floor)
                M.floor = w->rev;
            if (M.latest[w->key].client < 0 || w->rev > M.latest[w->key].rev) {
                M.latest[w->key].client = c;
                M.latest[w->key].seq = (uint32_t)i;
                M.latest[w->key].rev = w->rev;
            }
            M.latest[w->key].client_seq[c] = (int64_t)i;
        }
}

/* What a key holds after a restart. */
struct found {
    int exists;
    const char *value;
    size_t len;
    const char *etag;
    uint64_t rev; /* mod_revision */
};

#define FAIL(...) (snprintf(msg, cap, __VA_ARGS__), -1)

/* qsort order of structures whose first member is a uint64_t. */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x, y;

    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    return x < y ? -1 : x > y;
}

/* Properties 1 and 2 for key k holding f, the store being at revision
 * store_rev.  Returns 0, or -1 with a message in msg. */
static int check_key(int k, const struct found *f, uint64_t store_rev,
                     char *msg, size_t cap)
{
    char name[32], etag[ETAGKV_ETAG_SIZE];
    static char want[VALUE_MAX];
    int c, vk;
    uint32_t seq;
    struct wrec *w;

    key_name(k, name, sizeof name);
    if (!f->exists)
        return M.latest[k].client < 0
                   ? 0
                   : FAIL("key %s is absent, but c%02d s%u was acknowledged "
                          "there at revision %" PRIu64,
                          name, M.latest[k].client, M.latest[k].seq,
                          M.latest[k].rev);
    etagkv_etag_compute(f->value, f->len, etag);
    if (f->etag == NULL || strcmp(f->etag, etag) != 0)
        return FAIL("key %s: torn record: ETag %s, but its %zu bytes hash to "
                    "%s",
                    name, f->etag ? f->etag : "(none)", f->len, etag);
    if (value_parse(f->value, f->len, &c, &seq, &vk) != 0 || c < 0 ||
        c >= CLIENTS || seq >= M.log[c].n)
        return FAIL("key %s holds %zu bytes no client sent: \"%.*s...\"", name,
                    f->len, (int)(f->len < 24 ? f->len : 24), f->value);
    w = &M.log[c].w[seq];
    if (vk != k || w->key != k)
        return FAIL("key %s holds c%02d s%u, which was sent to another key",
                    name, c, seq);
    value_make(want, c, seq, k, w->len);
    if (f->len != w->len || memcmp(f->value, want, f->len) != 0)
        return FAIL("key %s holds c%02d s%u torn or mixed: %zu bytes read, "
                    "%u sent",
                    name, c, seq, f->len, (unsigned)w->len);
    if (w->state == W_REFUSED)
        return FAIL("key %s holds c%02d s%u, which was refused with 412", name,
                    c, seq);
    if ((w->state == W_ACKED || w->seen) && w->rev != f->rev)
        return FAIL("key %s holds c%02d s%u at revision %" PRIu64
                    ", but it was known at revision %" PRIu64,
                    name, c, seq, f->rev, w->rev);
    if (M.latest[k].client >= 0 &&
        (f->rev < M.latest[k].rev ||
         (f->rev == M.latest[k].rev &&
          (c != M.latest[k].client || seq != M.latest[k].seq))))
        return FAIL("key %s lost acknowledged c%02d s%u (revision %" PRIu64
                    "): it holds c%02d s%u at revision %" PRIu64,
                    name, M.latest[k].client, M.latest[k].seq, M.latest[k].rev,
                    c, seq, f->rev);
    if (M.latest[k].client_seq[c] > (int64_t)seq)
        return FAIL("key %s holds c%02d s%u, but the same client's later "
                    "s%" PRId64 " was acknowledged there",
                    name, c, seq, M.latest[k].client_seq[c]);
    if (f->rev > store_rev)
        return FAIL("key %s is at revision %" PRIu64
                    ", beyond the store's %" PRIu64,
                    name, f->rev, store_rev);
    if ((int)w->round < M.round && f->rev > M.rev_after[w->round])
        return FAIL("key %s holds c%02d s%u, sent before kill %u, at revision "
                    "%" PRIu64 " > %" PRIu64 " seen right after that kill",
                    name, c, seq, (unsigned)w->round, f->rev,
                    M.rev_after[w->round]);
    if (w->state == W_SENT && !w->seen)
        M.in_flight_applied++;
    w->seen = 1;
    w->rev = f->rev;
    return 0;
}

/* Right after the restart that follows round M.round - 1, the store is at
 * revision store_rev: no write sent before that kill may ever appear with a
 * higher revision (check_key). */
static void revision_seen(uint64_t store_rev)
{
    if (M.round > 0)
        M.rev_after[M.round - 1] = store_rev;
}

/* A revision given to a write (rev first, for cmp_u64). */
struct rw {
    uint64_t rev;
    int client;
    uint32_t seq;
};

/* Property 3's counter half, after the keys were checked (so that a lost
 * write is reported as such): store_rev is at least every revision
 * acknowledged or seen before, and no revision was acknowledged or found
 * for two different writes (a counter that went back and was reused). */
static int check_revision(uint64_t store_rev, char *msg, size_t cap)
{
    struct rw *all;
    size_t n = 0, total = 0;
    int bad = 0;

    if (store_rev < M.floor)
        return FAIL("the revision went backwards: %" PRIu64
                    " after the restart, %" PRIu64 " acknowledged or seen "
                    "before",
                    store_rev, M.floor);
    M.floor = store_rev;
    for (int c = 0; c < CLIENTS; c++)
        total += M.log[c].n;
    all = malloc((total ? total : 1) * sizeof *all);
    if (all == NULL)
        return FAIL("out of memory");
    for (int c = 0; c < CLIENTS; c++)
        for (size_t i = 0; i < M.log[c].n; i++) {
            const struct wrec *w = &M.log[c].w[i];

            if (w->state == W_ACKED || (w->state == W_SENT && w->seen))
                all[n++] = (struct rw){w->rev, c, (uint32_t)i};
        }
    qsort(all, n, sizeof *all, cmp_u64);
    for (size_t i = 1; i < n && !bad; i++)
        if (all[i].rev == all[i - 1].rev) {
            bad = FAIL("revision %" PRIu64 " was given to two writes: c%02d "
                       "s%u and c%02d s%u",
                       all[i].rev, all[i - 1].client, all[i - 1].seq,
                       all[i].client, all[i].seq);
        }
    free(all);
    return bad;
}

#undef FAIL

/* ---- reading the store through the library ------------------------------- */

struct stray {
    int n;
    char first[64];
};

static int note_stray(void *ctx, const void *key, size_t key_len,
                      const etagkv_meta *m)
{
    struct stray *s = ctx;

    (void)m;
    if (key_index(key, key_len) < 0 && s->n++ == 0)
        snprintf(s->first, sizeof s->first, "%.*s",
                 (int)(key_len < 60 ? key_len : 60), (const char *)key);
    return 0;
}

/* The change log as read back: per key, its last event. */
struct log_seen {
    uint64_t last_rev; /* of any event: revisions never go back */
    uint64_t events;
    int bad_order;
    etagkv_event_type type[KEYS];
    uint64_t rev[KEYS];
    char etag[KEYS][ETAGKV_ETAG_SIZE];
};

static int note_event(void *ctx, const etagkv_event *ev)
{
    struct log_seen *l = ctx;
    int k = key_index(ev->key, ev->key_len);

    l->bad_order |= ev->revision <= l->last_rev;
    l->last_rev = ev->revision;
    l->events++;
    if (k >= 0) {
        l->type[k] = ev->type;
        l->rev[k] = ev->revision;
        memcpy(l->etag[k], ev->etag, ETAGKV_ETAG_SIZE);
    }
    return 0;
}

/* DESIGN §8: after a crash the change log agrees with the records: every
 * record changed inside the log's window has its event as the key's last
 * one, every key deleted in it a delete as its last, and no event is
 * newer than the store (none without its write). */
static void check_log_agrees(etagkv_store *store, const etagkv_stats *stats,
                             const char *when)
{
    static struct log_seen l;
    etagkv_changes_page page;

    memset(&l, 0, sizeof l);
    ck_assert_int_eq(etagkv_changes(store, NULL, 0, 0, stats->changes_min_after,
                                    0, note_event, &l, &page),
                     ETAGKV_OK);
    ck_assert_msg(!l.bad_order, "%s: change log out of order", when);
    ck_assert_msg(l.last_rev <= stats->revision,
                  "%s: event at %" PRIu64 " beyond the store's %" PRIu64, when,
                  l.last_rev, stats->revision);
    ck_assert_uint_eq(l.events, stats->change_events);
    for (int k = 0; k < KEYS; k++) {
        char name[32];
        etagkv_meta m;
        etagkv_status rc;

        key_name(k, name, sizeof name);
        rc = etagkv_get(store, name, strlen(name), NULL, NULL, NULL, &m);
        if (rc == ETAGKV_OK && m.mod_revision > stats->changes_min_after)
            ck_assert_msg(l.type[k] == ETAGKV_EVENT_PUT &&
                              l.rev[k] == m.mod_revision &&
                              strcmp(l.etag[k], m.etag) == 0,
                          "%s: %s at %" PRIu64 " has no matching last event "
                          "(type %d at %" PRIu64 ")",
                          when, name, m.mod_revision, (int)l.type[k], l.rev[k]);
        else if (rc == ETAGKV_NOT_FOUND && l.rev[k] != 0)
            ck_assert_msg(l.type[k] == ETAGKV_EVENT_DELETE,
                          "%s: %s is absent but its last event is a put", when,
                          name);
        else if (rc == ETAGKV_OK)
            ck_assert_msg(l.rev[k] == 0, "%s: %s has an event newer than it",
                          when, name);
    }
}

/* Check every key of an open store (after a restart); fails the test. */
static void check_store_lib(etagkv_store *store, const char *when)
{
    etagkv_stats stats;
    struct stray stray = {0, ""};
    char msg[512];

    ck_assert_int_eq(etagkv_store_stats(store, &stats), ETAGKV_OK);
    revision_seen(stats.revision);
    for (int k = 0; k < KEYS; k++) {
        char name[32];
        void *v = NULL;
        size_t len = 0;
        etagkv_meta m;
        etagkv_status rc;
        struct found f;

        key_name(k, name, sizeof name);
        rc = etagkv_get(store, name, strlen(name), NULL, &v, &len, &m);
        ck_assert_msg(rc == ETAGKV_OK || rc == ETAGKV_NOT_FOUND,
                      "%s: get %s: %s (%s)", when, name, etagkv_strerror(rc),
                      etagkv_last_error_detail());
        f.exists = rc == ETAGKV_OK;
        f.value = v;
        f.len = len;
        f.etag = m.etag;
        f.rev = m.mod_revision;
        if (check_key(k, &f, stats.revision, msg, sizeof msg) != 0) {
            etagkv_free(v);
            ck_abort_msg("%s: %s", when, msg);
        }
        etagkv_free(v);
    }
    ck_assert_int_eq(
        etagkv_list(store, NULL, 0, NULL, 0, 0, note_stray, &stray, NULL),
        ETAGKV_OK);
    ck_assert_msg(stray.n == 0, "%s: %d keys no client wrote, first \"%s\"",
                  when, stray.n, stray.first);
    ck_assert_msg(check_revision(stats.revision, msg, sizeof msg) == 0,
                  "%s: %s", when, msg);
    check_log_agrees(store, &stats, when);
}

static void print_summary(const char *what, int rounds)
{
    fprintf(stderr,
            "test_crash: %s: seed %" PRIu64 ", %d kills: %u writes "
            "acknowledged, %u refused (412), %u in flight at a kill (%u of "
            "them found applied), final revision %" PRIu64 "\n",
            what, seed, rounds, M.acked, M.refused, M.in_flight,
            M.in_flight_applied, M.floor);
}

/* ---- (a) the server, over HTTP ------------------------------------------- */

struct hclient {
    pthread_t tid;
    int id, port, round;
    uint64_t rng;
    atomic_int *stop;
    char err[256]; /* a protocol error; empty when none */
};

/* One GET then PUT If-Match / If-None-Match: * on key; on 412 re-read and
 * try again, a few times.  Returns 0, or -1 when the server is gone or
 * something unexpected happened (then c->err says what). */
static int http_rmw(struct hclient *c, CURL *h, int key, char *buf)
{
    char name[32], path[48], cond[128];
    const char *hdrs[2] = {cond, NULL};

    key_name(key, name, sizeof name);
    snprintf(path, sizeof path, "/kv/%s", name);
    for (int attempt = 0; attempt < 4 && !atomic_load(c->stop); attempt++) {
        struct hu_req get = {"GET", path, NULL, NULL, 0};
        struct hu_req put = {"PUT", path, hdrs, buf, 0};
        struct hu_resp r;
        size_t len = len_pick(&c->rng);
        int64_t seq;
        struct wrec *w;
        const char *e;

        hu_perform(h, c->port, &get, &r, 30);
        if (r.err != CURLE_OK) {
            hu_resp_free(&r);
            return -1; /* the server is gone */
        }
        if (r.code == 200 && (e = hu_hdr(&r, "ETag")) != NULL &&
            !value_sound(r.body != NULL ? r.body : "", r.len, key, e))
            snprintf(c->err, sizeof c->err,
                     "GET %s: %zu bytes that no client sent or whose ETag %s "
                     "is not theirs: \"%.24s...\"",
                     path, r.len, e, r.body != NULL ? r.body : "");
        else if (r.code == 200 && e != NULL)
            snprintf(cond, sizeof cond, "If-Match: %s", e);
        else if (r.code == 404)
            snprintf(cond, sizeof cond, "If-None-Match: *");
        else
            snprintf(c->err, sizeof c->err, "GET %s answered %ld", path,
                     r.code);
        hu_resp_free(&r);
        if (c->err[0] != '\0')
            return -1;
        if ((seq = wlog_sent(c->id, key, len, c->round)) < 0) {
            snprintf(c->err, sizeof c->err, "out of memory");
            return -1;
        }
        value_make(buf, c->id, (uint32_t)seq, key, len);
        put.body_len = len;
        hu_perform(h, c->port, &put, &r, 30);
        w = &M.log[c->id].w[seq];
        if (r.err != CURLE_OK) {
            hu_resp_free(&r);
            return -1; /* in flight at the kill: stays W_SENT */
        }
        if (r.code == 200 || r.code == 201) {
            const char *rev = hu_hdr(&r, "ETagKV-Revision");
            char want[ETAGKV_ETAG_SIZE];

            etagkv_etag_compute(buf, len, want);
            e = hu_hdr(&r, "ETag");
            w->state = W_ACKED;
            w->rev = rev != NULL ? strtoull(rev, NULL, 10) : 0;
            if (rev == NULL || w->rev == 0 || e == NULL || strcmp(e, want) != 0)
                snprintf(c->err, sizeof c->err,
                         "PUT %s %ld: ETag %s (want %s), revision %s", path,
                         r.code, e ? e : "none", want, rev ? rev : "none");
            hu_resp_free(&r);
            return c->err[0] != '\0' ? -1 : 0;
        }
        if (r.code != 412) {
            snprintf(c->err, sizeof c->err, "PUT %s answered %ld", path,
                     r.code);
            hu_resp_free(&r);
            return -1;
        }
        w->state = W_REFUSED;
        hu_resp_free(&r);
    }
    return 0;
}

/* Write until the server goes away (or stop is raised). */
static void *http_client(void *arg)
{
    struct hclient *c = arg;
    CURL *h = curl_easy_init(); /* one connection, kept alive */
    char *buf = malloc(VALUE_MAX);

    if (h == NULL || buf == NULL)
        snprintf(c->err, sizeof c->err, "out of memory");
    while (c->err[0] == '\0' && !atomic_load(c->stop) &&
           http_rmw(c, h, key_pick(c->id, &c->rng), buf) == 0)
        ;
    free(buf);
    curl_easy_cleanup(h);
    return NULL;
}

/* GET every key and the metrics of the running server and check them. */
static void check_server(CURL *h, int port, const char *when)
{
    struct hu_req q = {"GET", "/metrics", NULL, NULL, 0};
    struct hu_resp r;
    json_t *page, *keys;
    json_error_t jerr;
    uint64_t store_rev;
    char msg[512];
    int64_t g;

    hu_perform(h, port, &q, &r, 30);
    ck_assert_msg(r.err == CURLE_OK && r.code == 200,
                  "%s: GET /metrics: %s %ld", when, curl_easy_strerror(r.err),
                  r.code);
    g = hu_metric(r.body, "etagkv_store_revision");
    hu_resp_free(&r);
    ck_assert_msg(g >= 0, "%s: no etagkv_store_revision gauge", when);
    store_rev = (uint64_t)g;
    revision_seen(store_rev);
    for (int k = 0; k < KEYS; k++) {
        char name[32], path[48];
        struct found f;
        const char *rev;
        int bad;

        key_name(k, name, sizeof name);
        snprintf(path, sizeof path, "/kv/%s", name);
        q.path = path;
        hu_perform(h, port, &q, &r, 30);
        ck_assert_msg(r.err == CURLE_OK && (r.code == 200 || r.code == 404),
                      "%s: GET %s: %s %ld", when, path,
                      curl_easy_strerror(r.err), r.code);
        rev = hu_hdr(&r, "ETagKV-Revision");
        f.exists = r.code == 200;
        f.value = r.body != NULL ? r.body : "";
        f.len = r.len;
        f.etag = hu_hdr(&r, "ETag");
        f.rev = rev != NULL ? strtoull(rev, NULL, 10) : 0;
        bad = check_key(k, &f, store_rev, msg, sizeof msg);
        hu_resp_free(&r);
        ck_assert_msg(bad == 0, "%s: %s", when, msg);
    }
    /* No key outside the clients' own (one page holds them all). */
    q.path = "/kv/?limit=1000";
    hu_perform(h, port, &q, &r, 30);
    ck_assert_msg(r.err == CURLE_OK && r.code == 200, "%s: list: %ld", when,
                  r.code);
    page = json_loadb(r.body, r.len, 0, &jerr);
    hu_resp_free(&r);
    ck_assert_msg(page != NULL, "%s: list is not JSON: %s", when, jerr.text);
    keys = json_object_get(page, "keys");
    ck_assert(json_is_array(keys));
    ck_assert(json_is_null(json_object_get(page, "next")));
    for (size_t i = 0; i < json_array_size(keys); i++) {
        const char *kn =
            json_string_value(json_object_get(json_array_get(keys, i), "key"));

        ck_assert_msg(kn != NULL && key_index(kn, strlen(kn)) >= 0,
                      "%s: a key no client wrote: %s", when,
                      kn != NULL ? kn : "(not UTF-8)");
    }
    json_decref(page);
    ck_assert_msg(check_revision(store_rev, msg, sizeof msg) == 0, "%s: %s",
                  when, msg);
}

/* Kill the server `rounds` times under a write load and check after each
 * restart; extra are the server's options (the sync mode). */
static void server_crash_rounds(const char *const *extra, const char *what)
{
    char *tmp = tu_mkdtemp(), data[512], when[64];
    struct hu_server srv = {0};
    uint64_t rng = seed ^ UINT64_C(0x5e7e7);
    int rounds = kills();
    CURL *h = curl_easy_init();

    ck_assert_ptr_nonnull(h);
    model_init();
    snprintf(data, sizeof data, "%s/data", tmp);
    for (M.round = 0; M.round < rounds; M.round++) {
        struct hclient cl[CLIENTS];
        atomic_int stop;
        unsigned run = RUN_MIN_MS + (unsigned)(tu_rng_next(&rng) %
                                               (RUN_MAX_MS - RUN_MIN_MS));

        hu_server_start(&srv, ETAGKV_SERVER_BIN, data, extra);
        snprintf(when, sizeof when, "%s, after restart %d", what, M.round);
        check_server(h, srv.port, when);
        curl_easy_cleanup(h); /* its connection dies with this server */
        h = curl_easy_init();
        ck_assert_ptr_nonnull(h);
        atomic_init(&stop, 0);
        for (int i = 0; i < CLIENTS; i++) {
            memset(&cl[i], 0, sizeof cl[i]);
            cl[i].id = i;
            cl[i].port = srv.port;
            cl[i].round = M.round;
            cl[i].rng = seed ^ ((uint64_t)M.round << 20) ^ (uint64_t)i;
            cl[i].stop = &stop;
            ck_assert_int_eq(
                pthread_create(&cl[i].tid, NULL, http_client, &cl[i]), 0);
        }
        sleep_ms(run);
        hu_server_kill(&srv);
        atomic_store(&stop, 1);
        for (int i = 0; i < CLIENTS; i++)
            ck_assert_int_eq(pthread_join(cl[i].tid, NULL), 0);
        for (int i = 0; i < CLIENTS; i++)
            ck_assert_msg(cl[i].err[0] == '\0', "%s, round %d, client %d: %s",
                          what, M.round, i, cl[i].err);
        model_scan();
    }
    /* After the last kill: check over HTTP, stop cleanly, check again
     * through the library. */
    hu_server_start(&srv, ETAGKV_SERVER_BIN, data, extra);
    snprintf(when, sizeof when, "%s, after the last restart", what);
    check_server(h, srv.port, when);
    curl_easy_cleanup(h);
    hu_server_stop(&srv);
    {
        etagkv_store *store = tu_open(data, NULL);

        check_store_lib(store, "reopened by the library");
        etagkv_store_close(store);
    }
    ck_assert_uint_gt(M.acked, 0);
    print_summary(what, rounds);
    model_free();
    tu_rmdir_free(tmp);
}

START_TEST(sigkilled_sync_server_loses_no_acknowledged_write_and_invents_none)
{
    static const char *const opts[] = {"--sync", "--threads", "4", NULL};

    server_crash_rounds(opts, "sync server");
}
END_TEST

START_TEST(sigkilled_nosync_server_loses_no_acknowledged_write_and_invents_none)
{
    static const char *const opts[] = {"--nosync", "--threads", "4", NULL};

    server_crash_rounds(opts, "nosync server");
}
END_TEST

/* Pipelined mode, chosen by --sync-mode: acknowledgements wait for a later
 * flush (lib/commit.c); a kill must lose none of them either. */
START_TEST(
    sigkilled_pipelined_server_loses_no_acknowledged_write_and_invents_none)
{
    static const char *const opts[] = {"--sync-mode", "pipelined", "--threads",
                                       "4", NULL};

    server_crash_rounds(opts, "pipelined server");
}
END_TEST

/* ---- (b), (c) a child writing through the library ------------------------ */

enum mtype { M_READY, M_SENT, M_ACKED, M_REFUSED, M_ERROR };

/* One report through the pipe: small enough that write() is atomic. */
struct lmsg {
    uint8_t type;
    uint8_t client;
    uint16_t key;
    uint32_t seq;
    uint32_t len;
    uint32_t status; /* M_ERROR: the etagkv_status */
    uint64_t rev;    /* M_ACKED: mod_revision */
};

/* The status an M_ERROR report gives for a read that was not sound. */
#define TORN ((etagkv_status)1000)

struct lchild {
    etagkv_store *store;
    int fd;
    int id;
    uint32_t seq; /* next sequence number */
    uint64_t rng;
};

static void report(int fd, const struct lmsg *m)
{
    if (write(fd, m, sizeof *m) != (ssize_t)sizeof *m)
        _exit(4);
}

/* One write: read the key (for a conditional put) or not (a plain put),
 * report it, make it, report the outcome. */
static void lib_write(struct lchild *c, char *buf)
{
    int key = key_pick(c->id, &c->rng);
    int conditional = tu_rng_next(&c->rng) % 4 != 0;
    char name[32], etag[ETAGKV_ETAG_SIZE] = "";
    struct lmsg m = {.type = M_SENT,
                     .client = (uint8_t)c->id,
                     .key = (uint16_t)key,
                     .seq = c->seq++};
    etagkv_meta meta;
    etagkv_status status = ETAGKV_OK;

    key_name(key, name, sizeof name);
    if (conditional) {
        void *v = NULL;
        size_t len = 0;

        status =
            etagkv_get(c->store, name, strlen(name), NULL, &v, &len, &meta);
        if (status == ETAGKV_OK && !value_sound(v, len, key, meta.etag))
            status = TORN;
        etagkv_free(v);
        if (status == ETAGKV_OK)
            memcpy(etag, meta.etag, sizeof etag);
        else if (status != ETAGKV_NOT_FOUND)
            goto error;
    }
    m.len = (uint32_t)len_pick(&c->rng);
    value_make(buf, c->id, m.seq, key, m.len);
    report(c->fd, &m);
    if (!conditional) {
        status = etagkv_put(c->store, name, strlen(name), buf, m.len, NULL,
                            NULL, &meta);
    } else {
        etagkv_cond *cond = NULL;

        status = etag[0] != '\0' ? etagkv_cond_if_match(etag, &cond)
                                 : etagkv_cond_create_only(&cond);
        if (status == ETAGKV_OK)
            status = etagkv_put(c->store, name, strlen(name), buf, m.len, NULL,
                                cond, &meta);
        etagkv_cond_free(cond);
    }
    if (status == ETAGKV_OK || status == ETAGKV_CREATED) {
        m.type = M_ACKED;
        m.rev = meta.mod_revision;
        report(c->fd, &m);
        return;
    }
    if (status == ETAGKV_PRECONDITION_FAILED) {
        m.type = M_REFUSED;
        report(c->fd, &m);
        return;
    }
error:
    m.type = M_ERROR;
    m.status = (uint32_t)status;
    report(c->fd, &m);
    _exit(5);
}

static void *lib_writer(void *arg)
{
    struct lchild *c = arg;
    char *buf = malloc(VALUE_MAX);

    if (buf == NULL)
        _exit(6);
    for (;;)
        lib_write(c, buf);
    return NULL;
}

/* The transactions' writer and log, below (d). */
static void *tx_writer(void *arg);
static uint32_t tx_sent(int client);

/* The child: open the store, say so, write from CLIENTS threads until
 * killed -- single writes, or transactions when txns is set.  Never
 * returns. */
static void lib_child(const char *dir, etagkv_sync_mode mode, int fd, int round,
                      int txns)
{
    static struct lchild c[CLIENTS];
    etagkv_options o;
    etagkv_store *store = NULL;
    struct lmsg ready = {.type = M_READY};
    pthread_t tid;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    etagkv_options_init(&o);
    o.sync_mode = mode;
    if (etagkv_store_open(dir, &o, &store) != ETAGKV_OK) {
        ready.type = M_ERROR;
        report(fd, &ready);
        _exit(3);
    }
    report(fd, &ready);
    for (int i = 0; i < CLIENTS; i++) {
        c[i].store = store;
        c[i].fd = fd;
        c[i].id = i;
        /* The parent's log, as forked. */
        c[i].seq = txns ? tx_sent(i) : (uint32_t)M.log[i].n;
        c[i].rng = seed ^ ((uint64_t)round << 20) ^ (uint64_t)i ^
                   (txns ? UINT64_C(0x7c0000000) : UINT64_C(0x11b0000000));
        if (pthread_create(&tid, NULL, txns ? tx_writer : lib_writer, &c[i]) !=
            0)
            _exit(7);
    }
    for (;;)
        pause();
}

/* Apply one report to the model; fails the test on an error report. */
static void apply_report(const struct lmsg *m, int round)
{
    struct wlog *l;

    ck_assert_msg(m->type != M_ERROR || m->status != (uint32_t)TORN,
                  "client %u read key %u: a value no client sent, or whose "
                  "ETag is not its hash",
                  m->client, m->key);
    ck_assert_msg(m->type != M_ERROR,
                  "the child failed: client %u, key %u: %s (status %u)",
                  m->client, m->key, etagkv_strerror((etagkv_status)m->status),
                  m->status);
    ck_assert_msg(m->type <= M_ERROR && m->client < CLIENTS && m->key < KEYS,
                  "garbled report");
    if (m->type == M_READY)
        return;
    l = &M.log[m->client];
    if (m->type == M_SENT) {
        ck_assert_uint_eq(m->seq, l->n);
        ck_assert_int_ge(wlog_sent(m->client, m->key, m->len, round), 0);
        return;
    }
    ck_assert_uint_lt(m->seq, l->n);
    l->w[m->seq].state = m->type == M_ACKED ? W_ACKED : W_REFUSED;
    l->w[m->seq].rev = m->rev;
}

/* Read whole reports from fd until the deadline (ms, monotonic; < 0: until
 * EOF).  Returns the number of M_READY seen. */
static int read_reports(int fd, double deadline, int round, int stop_at_ready)
{
    static struct lmsg buf[256];
    static size_t have; /* bytes of a partial report carried over */
    int ready = 0;

    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int wait_ms = deadline < 0 ? 30000 : (int)(deadline - now_ms());
        ssize_t got;
        size_t whole;

        if (deadline >= 0 && wait_ms <= 0)
            return ready;
        if (poll(&p, 1, wait_ms) != 1) {
            ck_assert_msg(deadline >= 0, "no EOF from the killed child");
            continue;
        }
        got = read(fd, (char *)buf + have, sizeof buf - have);
        if (got == 0) {
            ck_assert_msg(have == 0, "a report cut in half");
            return ready;
        }
        ck_assert_int_gt(got, 0);
        have += (size_t)got;
        whole = have / sizeof buf[0];
        for (size_t i = 0; i < whole; i++) {
            ready += buf[i].type == M_READY;
            apply_report(&buf[i], round);
        }
        have -= whole * sizeof buf[0];
        memmove(buf, (char *)buf + whole * sizeof buf[0], have);
        if (stop_at_ready && ready > 0)
            return ready;
    }
}

static void lib_crash_rounds(etagkv_sync_mode mode, const char *what)
{
    char *dir = tu_mkdtemp(), when[64];
    uint64_t rng = seed ^ UINT64_C(0x11b);
    int rounds = kills();

    model_init();
    for (M.round = 0; M.round <= rounds; M.round++) {
        int fds[2], status = 0;
        unsigned run;
        pid_t pid;

        /* Reopen and check: the store must open as it is. */
        {
            etagkv_store *store = tu_open(dir, NULL);

            snprintf(when, sizeof when, "%s, after kill %d", what, M.round);
            check_store_lib(store, when);
            etagkv_store_close(store);
        }
        if (M.round == rounds)
            break;
        run = RUN_MIN_MS +
              (unsigned)(tu_rng_next(&rng) % (RUN_MAX_MS - RUN_MIN_MS));
        ck_assert_int_eq(pipe(fds), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            close(fds[0]);
            lib_child(dir, mode, fds[1], M.round, 0);
        }
        close(fds[1]);
        ck_assert_msg(read_reports(fds[0], now_ms() + 20000, M.round, 1) == 1,
                      "the child did not open the store");
        read_reports(fds[0], now_ms() + run, M.round, 0);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        /* What it reported before dying is in the pipe: read it all. */
        read_reports(fds[0], -1, M.round, 0);
        close(fds[0]);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                      "the child died on its own (status 0x%x)", status);
        model_scan();
    }
    ck_assert_uint_gt(M.acked, 0);
    print_summary(what, rounds);
    model_free();
    tu_rmdir_free(dir);
}

START_TEST(sigkilled_sync_library_writer_loses_no_acknowledged_write)
{
    lib_crash_rounds(ETAGKV_SYNC, "sync library writer");
}
END_TEST

START_TEST(sigkilled_nosync_library_writer_loses_no_acknowledged_write)
{
    lib_crash_rounds(ETAGKV_NOSYNC, "nosync library writer");
}
END_TEST

START_TEST(sigkilled_pipelined_library_writer_loses_no_acknowledged_write)
{
    lib_crash_rounds(ETAGKV_SYNC_PIPELINED, "pipelined library writer");
}
END_TEST

/* ---- (d) a child committing transactions through the library ------------- */

/* Each transaction of thread t, number q, creates TX_KEYS new keys
 * "tx/t/q/j" (If-None-Match: *) and moves one unit between two of
 * TX_ACCOUNTS accounts (check and put with If-Match on both).  After every
 * kill: a transaction's keys are all present or all absent, present if it
 * was acknowledged, absent if it was refused (409), and they share one
 * mod_revision; the accounts still sum to their total, so no transfer was
 * half applied. */
#define TX_KEYS 3
#define TX_ACCOUNTS 8
#define TX_BALANCE 1000
#define TX_MAX 200000 /* transactions per thread over the whole test */

static struct txlog {
    uint8_t state[TX_MAX]; /* of transactions 0..n: enum wstate */
    uint32_t n;
} TX[CLIENTS];

static uint32_t tx_sent(int client)
{
    return TX[client].n;
}

static void tx_key(char *buf, size_t cap, int t, uint32_t q, int j)
{
    snprintf(buf, cap, "tx/%d/%" PRIu32 "/%d", t, q, j);
}

static void acct_key(char *buf, size_t cap, int a)
{
    snprintf(buf, cap, "acct/%d", a);
}

/* Read account a: its balance and ETag; -1 on any failure. */
static int acct_read(etagkv_store *store, int a, long *bal, etagkv_meta *m)
{
    char name[32], tmp[32];
    void *v = NULL;
    size_t n = 0;
    etagkv_status s;

    acct_key(name, sizeof name, a);
    s = etagkv_get(store, name, strlen(name), NULL, &v, &n, m);
    if (s != ETAGKV_OK || n == 0 || n >= sizeof tmp) {
        etagkv_free(v);
        return -1;
    }
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    etagkv_free(v);
    *bal = strtol(tmp, NULL, 10);
    return 0;
}

/* Build and commit one transaction of c; returns its status. */
static etagkv_status tx_commit(struct lchild *c, uint32_t q)
{
    int a = (int)(tu_rng_next(&c->rng) % TX_ACCOUNTS);
    int b =
        (a + 1 + (int)(tu_rng_next(&c->rng) % (TX_ACCOUNTS - 1))) % TX_ACCOUNTS;
    long ba, bb;
    etagkv_meta ma, mb;
    etagkv_cond *ca = NULL, *cb = NULL, *absent = NULL;
    etagkv_txn *t = NULL;
    char name[48], va[32], vb[32];
    etagkv_status s = ETAGKV_INTERNAL;

    if (acct_read(c->store, a, &ba, &ma) != 0 ||
        acct_read(c->store, b, &bb, &mb))
        return ETAGKV_INTERNAL;
    snprintf(va, sizeof va, "%ld", ba - 1);
    snprintf(vb, sizeof vb, "%ld", bb + 1);
    if (etagkv_txn_new(&t) != ETAGKV_OK ||
        etagkv_cond_if_match(ma.etag, &ca) != ETAGKV_OK ||
        etagkv_cond_if_match(mb.etag, &cb) != ETAGKV_OK ||
        etagkv_cond_create_only(&absent) != ETAGKV_OK)
        goto done;
    for (int j = 0; j < TX_KEYS; j++) {
        tx_key(name, sizeof name, c->id, q, j);
        (void)etagkv_txn_put(t, name, strlen(name), name, strlen(name), NULL,
                             absent);
    }
    acct_key(name, sizeof name, a);
    (void)etagkv_txn_put(t, name, strlen(name), va, strlen(va), NULL, ca);
    acct_key(name, sizeof name, b);
    (void)etagkv_txn_put(t, name, strlen(name), vb, strlen(vb), NULL, cb);
    s = etagkv_txn_commit(c->store, t); /* an add's refusal shows here */
done:
    etagkv_txn_free(t);
    etagkv_cond_free(ca);
    etagkv_cond_free(cb);
    etagkv_cond_free(absent);
    return s;
}

static void *tx_writer(void *arg)
{
    struct lchild *c = arg;

    for (;;) {
        struct lmsg m = {
            .type = M_SENT, .client = (uint8_t)c->id, .seq = c->seq++};
        etagkv_status s;

        if (m.seq >= TX_MAX)
            pause();
        report(c->fd, &m);
        s = tx_commit(c, m.seq);
        m.type = s == ETAGKV_OK         ? M_ACKED
                 : s == ETAGKV_CONFLICT ? M_REFUSED
                                        : M_ERROR;
        m.status = (uint32_t)s;
        report(c->fd, &m);
        if (m.type == M_ERROR)
            _exit(5);
    }
    return NULL;
}

/* Read the child's reports into TX until EOF or the deadline (ms; < 0:
 * EOF); returns the number of M_READY. */
static int tx_reports(int fd, double deadline, int stop_at_ready)
{
    struct lmsg m;
    int ready = 0;

    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int wait_ms = deadline < 0 ? 30000 : (int)(deadline - now_ms());

        if (deadline >= 0 && wait_ms <= 0)
            return ready;
        if (poll(&p, 1, wait_ms) != 1)
            continue;
        /* Reports are smaller than PIPE_BUF, so each arrives whole. */
        if (read(fd, &m, sizeof m) != (ssize_t)sizeof m)
            return ready;
        ck_assert_msg(m.type != M_ERROR, "the child failed: %s",
                      etagkv_strerror((etagkv_status)m.status));
        ck_assert_uint_lt(m.client, CLIENTS);
        if (m.type == M_READY) {
            if (++ready > 0 && stop_at_ready)
                return ready;
            continue;
        }
        ck_assert_uint_lt(m.seq, TX_MAX);
        if (m.type == M_SENT) {
            ck_assert_uint_eq(m.seq, TX[m.client].n);
            TX[m.client].n++;
        }
        TX[m.client].state[m.seq] = m.type == M_SENT    ? W_SENT
                                    : m.type == M_ACKED ? W_ACKED
                                                        : W_REFUSED;
    }
}

/* The store after a kill: every transaction all or nothing, acknowledged
 * ones present, refused ones absent, the accounts' sum intact. */
static void tx_check(etagkv_store *store, const char *when)
{
    long sum = 0;

    for (int a = 0; a < TX_ACCOUNTS; a++) {
        long b;
        etagkv_meta m;

        ck_assert_msg(acct_read(store, a, &b, &m) == 0, "%s: account %d", when,
                      a);
        sum += b;
    }
    ck_assert_msg(sum == (long)TX_ACCOUNTS * TX_BALANCE,
                  "%s: the accounts sum to %ld", when, sum);
    for (int t = 0; t < CLIENTS; t++) {
        for (uint32_t q = 0; q < TX[t].n; q++) {
            int present = 0;
            uint64_t rev = 0;

            for (int j = 0; j < TX_KEYS; j++) {
                char name[48];
                etagkv_meta m;

                tx_key(name, sizeof name, t, q, j);
                if (etagkv_get(store, name, strlen(name), NULL, NULL, NULL,
                               &m) == ETAGKV_OK) {
                    ck_assert(present == 0 || m.mod_revision == rev);
                    rev = m.mod_revision;
                    present++;
                }
            }
            ck_assert_msg(present == 0 || present == TX_KEYS,
                          "%s: transaction %d/%" PRIu32 " has %d of %d keys",
                          when, t, q, present, TX_KEYS);
            ck_assert_msg(TX[t].state[q] != W_ACKED || present,
                          "%s: acknowledged transaction %d/%" PRIu32 " lost",
                          when, t, q);
            ck_assert_msg(TX[t].state[q] != W_REFUSED || !present,
                          "%s: refused transaction %d/%" PRIu32 " applied",
                          when, t, q);
        }
    }
}

START_TEST(
    sigkilled_transactions_are_all_or_nothing_and_none_acknowledged_is_lost)
{
    char *dir = tu_mkdtemp(), when[64];
    uint64_t rng = seed ^ UINT64_C(0x7c);
    int rounds = kills(), acked = 0;
    etagkv_store *store = tu_open(dir, NULL);
    etagkv_txn *t;

    memset(TX, 0, sizeof TX);
    ck_assert_int_eq(etagkv_txn_new(&t), ETAGKV_OK);
    for (int a = 0; a < TX_ACCOUNTS; a++) {
        char name[32], v[32];

        acct_key(name, sizeof name, a);
        snprintf(v, sizeof v, "%d", TX_BALANCE);
        ck_assert_int_eq(
            etagkv_txn_put(t, name, strlen(name), v, strlen(v), NULL, NULL),
            ETAGKV_OK);
    }
    ck_assert_int_eq(etagkv_txn_commit(store, t), ETAGKV_OK);
    etagkv_txn_free(t);
    etagkv_store_close(store);
    for (int round = 0; round <= rounds; round++) {
        int fds[2], status = 0;
        pid_t pid;

        store = tu_open(dir, NULL);
        snprintf(when, sizeof when, "transactions, after kill %d", round);
        tx_check(store, when);
        etagkv_store_close(store);
        if (round == rounds)
            break;
        ck_assert_int_eq(pipe(fds), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            close(fds[0]);
            lib_child(dir, ETAGKV_SYNC, fds[1], round, 1);
        }
        close(fds[1]);
        ck_assert_msg(tx_reports(fds[0], now_ms() + 20000, 1) == 1,
                      "the child did not open the store");
        tx_reports(fds[0],
                   now_ms() + RUN_MIN_MS +
                       (double)(tu_rng_next(&rng) % (RUN_MAX_MS - RUN_MIN_MS)),
                   0);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        tx_reports(fds[0], -1, 0);
        close(fds[0]);
        ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    }
    for (int c = 0; c < CLIENTS; c++)
        for (uint32_t q = 0; q < TX[c].n; q++)
            acked += TX[c].state[q] == W_ACKED;
    ck_assert_int_gt(acked, 0);
    fprintf(stderr, "transactions: %d kills, %d acknowledged\n", rounds, acked);
    tu_rmdir_free(dir);
}
END_TEST

static Suite *crash_suite(void)
{
    Suite *s = suite_create("crash");
    TCase *server = tcase_create("server");
    TCase *lib = tcase_create("library");

    tcase_set_timeout(server, 300);
    tcase_add_test(
        server,
        sigkilled_sync_server_loses_no_acknowledged_write_and_invents_none);
    tcase_add_test(
        server,
        sigkilled_nosync_server_loses_no_acknowledged_write_and_invents_none);
    tcase_add_test(
        server,
        sigkilled_pipelined_server_loses_no_acknowledged_write_and_invents_none);
    suite_add_tcase(s, server);
    tcase_set_timeout(lib, 300);
    tcase_add_test(lib,
                   sigkilled_sync_library_writer_loses_no_acknowledged_write);
    tcase_add_test(lib,
                   sigkilled_nosync_library_writer_loses_no_acknowledged_write);
    tcase_add_test(
        lib, sigkilled_pipelined_library_writer_loses_no_acknowledged_write);
    tcase_add_test(
        lib,
        sigkilled_transactions_are_all_or_nothing_and_none_acknowledged_is_lost);
    suite_add_tcase(s, lib);
    return s;
}

int main(void)
{
    int rc;

    seed = env_u64("ETAGKV_TEST_SEED", SEED_DEFAULT);
    fprintf(stderr,
            "test_crash: seed %" PRIu64 " (ETAGKV_TEST_SEED=%" PRIu64
            " repeats it), %d kills per test\n",
            seed, seed, kills());
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return EXIT_FAILURE;
    rc = tu_run(crash_suite());
    curl_global_cleanup();
    return rc;
}
