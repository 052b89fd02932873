/*
 * test_power.c -- power loss (DESIGN §4, docs/guarantees.md, issue 20): in
 * sync and pipelined modes nothing acknowledged is lost when the power
 * fails, a new store
 * survives from the moment etagkv_store_open() returns, and a store whose
 * creation the power cut short opens or says ETAGKV_TORN_STORE.
 *
 * A writer process (power_writer, writer.c) creates the store and runs
 * conditional read-modify-write loops from three threads under an
 * LD_PRELOAD shim (shim.c) that journals every write and flush to data.mdb
 * and its directory.  It is SIGKILLed at a random moment, in one round of
 * four within its first milliseconds, while it creates the store.  From
 * the journal, image.c rebuilds the data.mdb a power loss would have left
 * at several moments of the run: at the kill, right after LMDB wrote the
 * new store's meta pages, and at random record boundaries; for each, the
 * strict image (only what was flushed) and torn ones (any subset of the
 * unflushed 4 KiB pieces, and of an unsynced size and name, from a seeded
 * generator).  Each image must:
 *  1. open -- or, only if it is cut before the first flush of the store,
 *     fail with ETAGKV_TORN_STORE, and then open empty once data.mdb is
 *     removed, the remedy the status names;
 *  2. hold every write acknowledged before that moment: for each key the
 *     latest acknowledged value, or one sent after it (a higher revision);
 *  3. hold no value no client sent (byte for byte), no key no client wrote,
 *     and every ETag must be XXH3-128 of its value (etagkv_etag_compute).
 *
 * Both modes run the same rounds.  Besides the kill and random moments,
 * each round cuts at the moments of random acknowledgements: the power
 * fails right after the writer was told its write is durable, the moment
 * that catches an acknowledgement released before the flush that makes its
 * commit durable (in pipelined mode a commit's meta page waits for the
 * next flush, lib/commit.c; in sync mode LMDB flushes it in the commit).
 *
 * Three negative controls prove that the checks see loss: the same writer
 * in nosync mode; in sync mode under a shim whose flushes do nothing (a
 * disk that lies about flushing); and in pipelined mode with
 * acknowledgements released as soon as a batch commits, before the
 * covering flush (the test switch ekv_test_ack_before_flush).  Each must
 * be caught losing acknowledged writes.
 *
 * ETAGKV_TEST_SEED=<n> repeats a run's choices (kill delays, cut points,
 * torn pieces; thread timing is not reproducible); ETAGKV_POWER_ROUNDS=<n>
 * sets the number of rounds per mode (default 30, 15 in sanitizer builds).
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image.h"
#include "testutil.h"
#include "value.h"

#ifndef POWER_WRITER
#error "POWER_WRITER must name the power_writer binary"
#endif
#ifndef POWER_SHIM
#error "POWER_SHIM must name the shim library"
#endif

#define SEED_DEFAULT UINT64_C(20260312)
#define THREADS 3
#define CUTS 6         /* moments per round besides the fixed ones */
#define TORN_SAMPLES 3 /* torn images per moment */
#define ACK_CUTS 3     /* moments of acknowledgements per round */

static uint64_t seed;

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);

    return v != NULL && *v != '\0' ? strtoull(v, NULL, 0) : dflt;
}

static int rounds(void)
{
#ifdef POWER_SANITIZED
    uint64_t r = env_u64("ETAGKV_POWER_ROUNDS", 15);
#else
    uint64_t r = env_u64("ETAGKV_POWER_ROUNDS", 30);
#endif
    return r < 1 ? 1 : (int)(r > 10000 ? 10000 : r);
}

/* ---- one writer run ------------------------------------------------------
 */

struct sent {
    int key;
    size_t len;
    int acked;
    uint64_t rev; /* when acked */
};

struct ack {
    int t;
    uint32_t seq;
    int key;
    uint64_t rev, jpos;
};

struct run {
    char *dir;   /* the round's directory */
    char *store; /* <dir>/store, where the writer ran */
    struct sent *sent[THREADS];
    size_t nsent[THREADS], capsent[THREADS];
    struct ack *acks;
    size_t nacks, capacks;
    struct journal j;
};

static void run_free(struct run *r)
{
    for (int t = 0; t < THREADS; t++)
        free(r->sent[t]);
    free(r->acks);
    journal_free(&r->j);
    free(r->store);
    tu_rmdir_free(r->dir);
    memset(r, 0, sizeof *r);
}

/* One line of the writer's report (writer.c). */
static void parse_line(struct run *r, const char *line)
{
    int t, key;
    unsigned seq;
    size_t len;
    uint64_t rev, jpos;

    if (sscanf(line, "S %d %u %d %zu", &t, &seq, &key, &len) == 4) {
        ck_assert(t >= 0 && t < THREADS && seq == r->nsent[t]);
        if (r->nsent[t] == r->capsent[t]) {
            r->capsent[t] = r->capsent[t] ? 2 * r->capsent[t] : 256;
            r->sent[t] =
                realloc(r->sent[t], r->capsent[t] * sizeof(struct sent));
            ck_assert_ptr_nonnull(r->sent[t]);
        }
        r->sent[t][r->nsent[t]++] = (struct sent){key, len, 0, 0};
    } else if (sscanf(line, "A %d %u %d %" SCNu64 " %" SCNu64, &t, &seq, &key,
                      &rev, &jpos) == 5) {
        ck_assert(t >= 0 && t < THREADS && seq < r->nsent[t]);
        r->sent[t][seq].acked = 1;
        r->sent[t][seq].rev = rev;
        if (r->nacks == r->capacks) {
            r->capacks = r->capacks ? 2 * r->capacks : 256;
            r->acks = realloc(r->acks, r->capacks * sizeof *r->acks);
            ck_assert_ptr_nonnull(r->acks);
        }
        r->acks[r->nacks++] = (struct ack){t, seq, key, rev, jpos};
    } else {
        ck_abort_msg("writer said \"%s\"", line);
    }
}

static double now_ms(void)
{
    return tu_now_s() * 1e3;
}

/* Start the writer in r->store under the shim (shim_mode "noflush" or
 * "faithful"), let it run for run_ms, SIGKILL it, and collect its report
 * and journal. */
static void writer_run(struct run *r, const char *sync_mode,
                       const char *shim_mode, double run_ms, uint64_t wseed)
{
    char journal[4096], seedbuf[32], buf[65536], line[256];
    size_t linelen = 0;
    double deadline;
    int p[2], status, done = 0, killed = 0;
    pid_t pid;

    r->dir = tu_mkdtemp();
    r->store = malloc(strlen(r->dir) + 8);
    ck_assert_ptr_nonnull(r->store);
    sprintf(r->store, "%s/store", r->dir);
    ck_assert_int_eq(mkdir(r->store, 0700), 0);
    snprintf(journal, sizeof journal, "%s/journal", r->dir);
    snprintf(seedbuf, sizeof seedbuf, "%" PRIu64, wseed);
    ck_assert_int_eq(pipe(p), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char opts[512];
        const char *asan = getenv("ASAN_OPTIONS");

        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        /* ASan wants its runtime first among the loaded libraries; the
         * shim, built without sanitizers, only passes calls on. */
        snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0",
                 asan ? asan : "", asan && *asan ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
        setenv("LD_PRELOAD", POWER_SHIM, 1);
        setenv(PJ_ENV_JOURNAL, journal, 1);
        setenv(PJ_ENV_DIR, r->store, 1);
        setenv(PJ_ENV_MODE, shim_mode, 1);
        execl(POWER_WRITER, POWER_WRITER, r->store, sync_mode, "3", seedbuf,
              (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    deadline = now_ms() + run_ms;
    while (!done) {
        struct pollfd pf = {p[0], POLLIN, 0};
        double left = deadline - now_ms();
        ssize_t n;

        if (left <= 0 && !killed) {
            ck_assert_int_eq(kill(pid, SIGKILL), 0);
            killed = 1; /* then read to the end */
        }
        if (poll(&pf, 1, killed ? 100 : (int)left + 1) <= 0)
            continue;
        n = read(p[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        ck_assert_int_ge(n, 0);
        done = n == 0;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                ck_assert_uint_lt(linelen, sizeof line - 1);
                line[linelen++] = buf[i];
                continue;
            }
            line[linelen] = '\0';
            linelen = 0;
            parse_line(r, line);
        }
    }
    close(p[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "the writer ended by itself (status 0x%x) before the kill",
                  status);
    ck_assert_msg(journal_load(&r->j, journal, buf, sizeof buf) == 0, "%s",
                  buf);
}

/* ---- checking one image --------------------------------------------------
 */

struct tally {
    unsigned images, torn_store, acks_checked, violations;
    char first[512]; /* the first violation */
};

static void violation(struct tally *y, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void violation(struct tally *y, const char *fmt, ...)
{
    va_list ap;

    if (y->violations++ > 0)
        return;
    va_start(ap, fmt);
    vsnprintf(y->first, sizeof y->first, fmt, ap);
    va_end(ap);
}

/* Check key k of an open image against the acknowledgements made before
 * the moment pos.  Returns 1 if the key holds a record. */
static int check_key(struct run *r, etagkv_store *s, int k, uint64_t pos,
                     const char *what, struct tally *y)
{
    static char want[POWER_VALUE_MAX];
    const struct ack *latest = NULL;
    char name[16], etag[ETAGKV_ETAG_SIZE];
    etagkv_meta m;
    etagkv_status st;
    void *v = NULL;
    size_t len = 0;
    char head[POWER_HDR + 1];
    int t, vk;
    unsigned seq;

    for (size_t i = 0; i < r->nacks; i++)
        if (r->acks[i].key == k && r->acks[i].jpos <= pos &&
            (latest == NULL || r->acks[i].rev > latest->rev))
            latest = &r->acks[i];
    y->acks_checked += latest != NULL;
    power_key(k, name, sizeof name);
    st = etagkv_get(s, name, strlen(name), NULL, &v, &len, &m);
    if (st == ETAGKV_NOT_FOUND) {
        if (latest != NULL)
            violation(y,
                      "%s: key %s is absent, but t%d s%u was acknowledged "
                      "there at revision %" PRIu64,
                      what, name, latest->t, latest->seq, latest->rev);
        return 0;
    }
    if (st != ETAGKV_OK) {
        violation(y, "%s: get %s: %s (%s)", what, name, etagkv_strerror(st),
                  etagkv_last_error_detail());
        return 0;
    }
    etagkv_etag_compute(v, len, etag);
    if (strcmp(etag, m.etag) != 0)
        violation(y, "%s: key %s: ETag %s, but its %zu bytes hash to %s", what,
                  name, m.etag, len, etag);
    /* A value is not NUL-terminated; its header, copied, is. */
    memcpy(head, v, len < POWER_HDR ? len : POWER_HDR);
    head[len < POWER_HDR ? len : POWER_HDR] = '\0';
    if (len < POWER_HDR ||
        sscanf(head, "t%2d s%8u k%2d |", &t, &seq, &vk) != 3 || t < 0 ||
        t >= THREADS || seq >= r->nsent[t] || vk != k ||
        r->sent[t][seq].key != k || r->sent[t][seq].len != len) {
        violation(y, "%s: key %s holds %zu bytes no client sent: \"%s\"", what,
                  name, len, head);
        free(v);
        return 1;
    }
    power_value(want, t, seq, k, len);
    if (memcmp(want, v, len) != 0)
        violation(y, "%s: key %s holds t%d s%u torn or mixed", what, name, t,
                  seq);
    else if (r->sent[t][seq].acked && r->sent[t][seq].rev != m.mod_revision)
        violation(y,
                  "%s: key %s holds t%d s%u at revision %" PRIu64
                  ", acknowledged at %" PRIu64,
                  what, name, t, seq, m.mod_revision, r->sent[t][seq].rev);
    else if (latest != NULL && (m.mod_revision < latest->rev ||
                                (m.mod_revision == latest->rev &&
                                 (t != latest->t || seq != latest->seq))))
        violation(y,
                  "%s: key %s lost t%d s%u (acknowledged at revision %" PRIu64
                  "): it holds t%d s%u at revision %" PRIu64,
                  what, name, latest->t, latest->seq, latest->rev, t, seq,
                  m.mod_revision);
    free(v);
    return 1;
}

/* Open the image in dir, made at the moment after n records, and check it
 * (properties 1-3). */
static void check_image(struct run *r, size_t n, const char *dir,
                        const char *what, struct tally *y)
{
    uint64_t pos = journal_pos(&r->j, n);
    etagkv_store *s = NULL;
    etagkv_stats stats;
    etagkv_status st;
    char path[4096];
    unsigned present = 0;
    int required = 0;

    for (size_t i = 0; i < r->nacks; i++)
        required |= r->acks[i].jpos <= pos;
    y->images++;
    st = etagkv_store_open(dir, NULL, &s);
    if (st == ETAGKV_TORN_STORE) {
        y->torn_store++;
        if (required || journal_find(&r->j, n, PJ_SYNC) >= 0) {
            violation(y, "%s: TORN_STORE after the store's first flush (%s)",
                      what, etagkv_last_error_detail());
            return;
        }
        /* The remedy the status names loses nothing. */
        snprintf(path, sizeof path, "%s/data.mdb", dir);
        ck_assert_int_eq(unlink(path), 0);
        st = etagkv_store_open(dir, NULL, &s);
        ck_assert_msg(st == ETAGKV_OK, "%s: after removing data.mdb: %s", what,
                      etagkv_strerror(st));
    } else if (st != ETAGKV_OK) {
        violation(y, "%s: does not open: %s (%s)", what, etagkv_strerror(st),
                  etagkv_last_error_detail());
        return;
    }
    for (int k = 0; k < POWER_KEYS; k++)
        present += (unsigned)check_key(r, s, k, pos, what, y);
    ck_assert_int_eq(etagkv_store_stats(s, &stats), ETAGKV_OK);
    if (stats.records != present)
        violation(y, "%s: %" PRIu64 " records, but only %u of the keys written",
                  what, stats.records, present);
    etagkv_store_close(s);
}

/* Build and check the strict image and `torn` torn ones at the moment
 * after n records. */
static void check_moment(struct run *r, size_t n, int torn, uint64_t *rng,
                         struct tally *y)
{
    char err[512], what[128];

    for (int i = 0; i <= torn; i++) {
        char *img = tu_mkdtemp();

        snprintf(what, sizeof what, "%s image %d after %zu of %zu records",
                 i == 0 ? "strict" : "torn", i, n, r->j.n);
        ck_assert_msg(image_write(&r->j, n, i == 0 ? NULL : rng, img, err,
                                  sizeof err) == 0,
                      "%s: %s", what, err);
        check_image(r, n, img, what, y);
        tu_rmdir_free(img);
    }
}

/* The moment of an acknowledgement reported at journal position jpos:
 * after every record that was complete then (the flushes of its commit
 * among them). */
static size_t ack_moment(const struct journal *j, uint64_t jpos)
{
    size_t lo = 0, hi = j->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (journal_pos(j, mid + 1) <= jpos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Check the moments of `count` acknowledgements picked at random. */
static void check_acks(struct run *r, int count, int torn, uint64_t *rng,
                       struct tally *y)
{
    for (int c = 0; c < count && r->nacks > 0; c++) {
        const struct ack *a = &r->acks[tu_rng_next(rng) % r->nacks];

        check_moment(r, ack_moment(&r->j, a->jpos), torn, rng, y);
    }
}

/* The moments of a run: the kill, just after the new store's meta pages
 * were written (before any flush), CUTS at random and ACK_CUTS at
 * acknowledgements. */
static void check_run(struct run *r, int torn, uint64_t *rng, struct tally *y)
{
    long first = journal_find(&r->j, r->j.n, PJ_WRITE);

    check_moment(r, r->j.n, torn, rng, y);
    if (first >= 0)
        check_moment(r, (size_t)first + 1, torn, rng, y);
    for (int c = 0; c < CUTS && r->j.n > 0; c++)
        check_moment(r, 1 + (size_t)(tu_rng_next(rng) % r->j.n), torn, rng, y);
    check_acks(r, ACK_CUTS, torn, rng, y);
}

/* ---- the tests -----------------------------------------------------------
 */

static void print_seed(const char *test)
{
    seed = env_u64("ETAGKV_TEST_SEED", SEED_DEFAULT);
    printf("%s: seed %" PRIu64 " (ETAGKV_TEST_SEED)\n", test, seed);
}

/* The rounds of one sync mode ("sync" or "pipelined", power_writer's
 * names): nothing acknowledged may be lost at any moment checked. */
static void power_rounds(const char *mode)
{
    uint64_t rng;
    struct tally y = {0};
    unsigned acks = 0, creation_kills = 0;
    double start = tu_now_s();

    print_seed(mode);
    rng = seed;
    for (int round = 0; round < rounds(); round++) {
        struct run r = {0};
        /* One round in four is killed while it creates the store. */
        int early = round % 4 == 0;
        double ms = early ? (double)(tu_rng_next(&rng) % 8)
                          : 30 + (double)(tu_rng_next(&rng) % 200);

        writer_run(&r, mode, "faithful", ms, tu_rng_next(&rng));
        acks += (unsigned)r.nacks;
        creation_kills += journal_find(&r.j, r.j.n, PJ_SYNC) < 0;
        check_run(&r, TORN_SAMPLES, &rng, &y);
        ck_assert_msg(y.violations == 0, "round %d: %s (%u violations)", round,
                      y.first, y.violations);
        run_free(&r);
    }
    printf("%s: %d rounds, %u acknowledged writes, %u killed before the "
           "first flush; %u images checked (%u acknowledgements), %u were "
           "TORN_STORE; %.1f s\n",
           mode, rounds(), acks, creation_kills, y.images, y.acks_checked,
           y.torn_store, tu_now_s() - start);
    /* The writers did work, and the creation window was reached. */
    ck_assert_uint_gt(acks, 0);
    ck_assert_uint_gt(y.acks_checked, 0);
    ck_assert_uint_gt(y.torn_store, 0);
}

START_TEST(sync_mode_loses_nothing_acknowledged_at_a_power_loss)
{
    power_rounds("sync");
}
END_TEST

START_TEST(pipelined_mode_loses_nothing_acknowledged_at_a_power_loss)
{
    power_rounds("pipelined");
}
END_TEST

/* A negative control: run the writer in sync_mode under shim_mode, check
 * the strict image at the kill and at ack_cuts acknowledgements, and
 * require that loss is found. */
static void control(const char *name, const char *sync_mode,
                    const char *shim_mode, int ack_cuts)
{
    uint64_t rng;
    struct tally y = {0};
    unsigned acks = 0;

    print_seed(name);
    rng = seed;
    for (int round = 0; round < 3; round++) {
        struct run r = {0};

        writer_run(&r, sync_mode, shim_mode,
                   100 + (double)(tu_rng_next(&rng) % 100), tu_rng_next(&rng));
        acks += (unsigned)r.nacks;
        check_moment(&r, r.j.n, 0, &rng, &y);
        check_acks(&r, ack_cuts, 0, &rng, &y);
        run_free(&r);
    }
    printf("%s: %u acknowledged writes, %u images, %u violations; the "
           "first: %s\n",
           name, acks, y.images, y.violations, y.first);
    ck_assert_uint_gt(acks, 0);
    ck_assert_msg(y.violations > 0,
                  "%s: the checks found no loss where loss is certain", name);
}

START_TEST(nosync_mode_is_caught_losing_acknowledged_writes)
{
    control("nosync", "nosync", "faithful", 0);
}
END_TEST

START_TEST(flushes_that_do_nothing_are_caught_losing_acknowledged_writes)
{
    control("noflush", "sync", "noflush", 0);
}
END_TEST

/* In pipelined mode the acknowledgement must wait for the flush after the
 * commit: released when the commit returns, the commit's meta page is not
 * yet on the disk, and a power loss then undoes the acknowledged batch
 * (lib/commit.c). */
START_TEST(acks_before_the_covering_flush_are_caught_losing_writes)
{
    control("ack-before-flush", "pipelined-ack-before-flush", "faithful", 20);
}
END_TEST

static Suite *power_suite(void)
{
    Suite *s = suite_create("power");
    TCase *tc = tcase_create("power");

    tcase_add_test(tc, sync_mode_loses_nothing_acknowledged_at_a_power_loss);
    tcase_add_test(tc,
                   pipelined_mode_loses_nothing_acknowledged_at_a_power_loss);
    tcase_add_test(tc, nosync_mode_is_caught_losing_acknowledged_writes);
    tcase_add_test(
        tc, flushes_that_do_nothing_are_caught_losing_acknowledged_writes);
    tcase_add_test(tc, acks_before_the_covering_flush_are_caught_losing_writes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(power_suite());
}
