/*
 * test_backup.c -- etagkv_store_backup*(), etagkv_store_verify() and the
 * read-only open (issue 16).
 *
 * The backup test runs writer threads and takes a backup while they
 * write, provably: the copy goes into a pipe that is not drained until the
 * writers have acknowledged more writes after the copy started producing
 * bytes (so after its snapshot was taken).  The restored copy must then
 * hold, for every key, exactly the last acknowledged write at or below the
 * copy's revision, and every write acknowledged before the backup began.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lmdb.h>

#include "testutil.h"

#define WRITERS 4
#define KEYS_PER_WRITER 40
#define MAX_LOG 20000
#define SEED_KEYS 64
#define SEED_BYTES (64 << 10) /* 4 MiB in all: more than the copy buffers */
#define AFTER_START 50 /* writes acknowledged while the copy is stalled */

static char *dir, *bdir;

static void setup(void)
{
    dir = tu_mkdtemp();
    bdir = tu_mkdtemp();
}

static void teardown(void)
{
    tu_rmdir_free(dir);
    tu_rmdir_free(bdir);
}

/* One acknowledged write: its key (writer, slot), revision and value id
 * (0 for a delete). */
struct logged {
    int slot;
    uint64_t rev;
    unsigned value_id;
};

struct writer {
    pthread_t thread;
    etagkv_store *s;
    int id;
    struct logged log[MAX_LOG];
    atomic_size_t n;
};

static atomic_int stop;

static void key_of(int writer, int slot, char *out, size_t cap)
{
    snprintf(out, cap, "w%d/%02d", writer, slot);
}

static void value_of(unsigned id, char *out, size_t cap)
{
    snprintf(out, cap, "value-%u-%0100u", id, id);
}

static void *write_loop(void *arg)
{
    struct writer *w = arg;
    uint64_t rng = 0x9E3779B97F4A7C15u * (uint64_t)(w->id + 1);

    for (unsigned i = 1; !atomic_load(&stop) && atomic_load(&w->n) < MAX_LOG;
         i++) {
        int slot = (int)(tu_rng_next(&rng) % KEYS_PER_WRITER);
        unsigned id = (unsigned)w->id * 1000000u + i;
        int del = tu_rng_next(&rng) % 5 == 0;
        char key[32], value[160];
        etagkv_meta m;
        etagkv_status st;

        key_of(w->id, slot, key, sizeof(key));
        value_of(id, value, sizeof(value));
        st = del ? etagkv_delete(w->s, key, strlen(key), NULL, &m)
                 : etagkv_put(w->s, key, strlen(key), value, strlen(value),
                              NULL, NULL, &m);
        if (st == ETAGKV_NOT_FOUND)
            continue; /* a delete of an absent key changes nothing */
        ck_assert_msg(st == ETAGKV_OK || st == ETAGKV_CREATED, "%s: %s", key,
                      etagkv_strerror(st));
        w->log[atomic_load(&w->n)] =
            (struct logged){slot, m.mod_revision, del ? 0 : id};
        atomic_fetch_add(&w->n, 1);
    }
    return NULL;
}

static size_t acked(struct writer *ws)
{
    size_t n = 0;

    for (int i = 0; i < WRITERS; i++)
        n += atomic_load(&ws[i].n);
    return n;
}

/* The reading end of a backup's pipe: once the copy has produced bytes,
 * its snapshot exists and it stalls on the full pipe; then stalled(arg)
 * runs, and the pipe is drained into out (-1: discarded). */
struct drain {
    int in, out;
    void (*stalled)(void *arg);
    void *arg;
};

static void *drain_pipe(void *arg)
{
    struct drain *d = arg;
    struct pollfd p = {.fd = d->in, .events = POLLIN};
    static char buf[1 << 16];
    ssize_t r;

    ck_assert_int_eq(poll(&p, 1, -1), 1);
    d->stalled(d->arg);
    while ((r = read(d->in, buf, sizeof(buf))) > 0)
        if (d->out >= 0)
            ck_assert_int_eq(write(d->out, buf, (size_t)r), r);
    ck_assert_int_eq(r, 0);
    return NULL;
}

/* etagkv_store_backup_fd(s) into a pipe drained as d says (d->in is set
 * here). */
static etagkv_status backup_into_pipe(etagkv_store *s, struct drain *d)
{
    int fds[2];
    pthread_t t;
    etagkv_status st;

    ck_assert_int_eq(pipe(fds), 0);
    d->in = fds[0];
    ck_assert_int_eq(pthread_create(&t, NULL, drain_pipe, d), 0);
    st = etagkv_store_backup_fd(s, fds[1]);
    ck_assert_int_eq(close(fds[1]), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(close(fds[0]), 0);
    return st;
}

/* The writers acknowledge AFTER_START more writes. */
static void writers_go_on(void *arg)
{
    struct writer *ws = arg;
    size_t base = acked(ws);

    while (acked(ws) < base + AFTER_START)
        usleep(1000);
}

/* Back up s through a pipe into bdir/data.mdb while the writers run. */
static void backup_through_pipe(etagkv_store *s, struct writer *ws)
{
    char path[4096];
    struct drain d = {.stalled = writers_go_on, .arg = ws};

    snprintf(path, sizeof(path), "%s/data.mdb", bdir);
    d.out = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(d.out, 0);
    ck_assert_int_eq(backup_into_pipe(s, &d), ETAGKV_OK);
    ck_assert_int_eq(fsync(d.out), 0);
    ck_assert_int_eq(close(d.out), 0);
}

/* SEED_KEYS values of SEED_BYTES into s: more than the copy's buffers. */
static void seed(etagkv_store *s)
{
    static char big[SEED_BYTES];

    for (int i = 0; i < SEED_KEYS; i++) {
        char key[16];

        memset(big, 'a' + i % 26, sizeof(big));
        snprintf(key, sizeof(key), "seed/%02d", i);
        ck_assert_int_eq(
            etagkv_put(s, key, strlen(key), big, sizeof(big), NULL, NULL, NULL),
            ETAGKV_CREATED);
    }
}

/* Every key of writer w in the backup b at revision rev holds what the log
 * says: the last write at or below rev. */
static void check_writer(etagkv_store *b, const struct writer *w, uint64_t rev,
                         uint64_t *live)
{
    for (int slot = 0; slot < KEYS_PER_WRITER; slot++) {
        const struct logged *last = NULL;
        char key[32], want[160];
        void *got;
        size_t len;
        etagkv_meta m;
        etagkv_status st;

        for (size_t i = 0; i < atomic_load(&w->n); i++)
            if (w->log[i].slot == slot && w->log[i].rev <= rev)
                last = &w->log[i];
        key_of(w->id, slot, key, sizeof(key));
        st = etagkv_get(b, key, strlen(key), NULL, &got, &len, &m);
        if (last == NULL || last->value_id == 0) {
            ck_assert_msg(st == ETAGKV_NOT_FOUND, "%s: %s, wanted absent", key,
                          etagkv_strerror(st));
            continue;
        }
        ck_assert_msg(st == ETAGKV_OK, "%s: %s", key, etagkv_strerror(st));
        value_of(last->value_id, want, sizeof(want));
        ck_assert_uint_eq(m.mod_revision, last->rev);
        ck_assert_uint_eq(len, strlen(want));
        ck_assert_msg(memcmp(got, want, len) == 0, "%s: wrong value", key);
        etagkv_free(got);
        (*live)++;
    }
}

START_TEST(
    a_backup_under_concurrent_writes_is_exactly_the_acknowledged_writes_up_to_its_revision)
{
    static struct writer ws[WRITERS];
    etagkv_store *s = tu_open(dir, NULL), *b;
    etagkv_options o;
    etagkv_stats x;
    uint64_t verified, live = SEED_KEYS;
    size_t before[WRITERS], later_all = 0;

    seed(s);
    atomic_store(&stop, 0);
    for (int i = 0; i < WRITERS; i++) {
        ws[i].s = s;
        ws[i].id = i;
        atomic_store(&ws[i].n, 0);
        ck_assert_int_eq(
            pthread_create(&ws[i].thread, NULL, write_loop, &ws[i]), 0);
    }
    while (acked(ws) < 200)
        usleep(1000);
    for (int i = 0; i < WRITERS; i++)
        before[i] = atomic_load(&ws[i].n);
    backup_through_pipe(s, ws);
    atomic_store(&stop, 1);
    for (int i = 0; i < WRITERS; i++)
        ck_assert_int_eq(pthread_join(ws[i].thread, NULL), 0);

    etagkv_options_init(&o);
    o.read_only = 1;
    b = tu_open(bdir, &o);
    ck_assert_int_eq(etagkv_store_verify(b, &verified), ETAGKV_OK);
    ck_assert_int_eq(etagkv_store_stats(b, &x), ETAGKV_OK);
    ck_assert_uint_eq(verified, x.records);
    for (int i = 0; i < WRITERS; i++) {
        size_t later = 0;

        /* Acknowledged before the backup began: in it. */
        for (size_t j = 0; j < before[i]; j++)
            ck_assert_uint_le(ws[i].log[j].rev, x.revision);
        for (size_t j = before[i]; j < atomic_load(&ws[i].n); j++)
            later += ws[i].log[j].rev > x.revision;
        fprintf(stderr, "backup: writer %d: %zu before, %zu after the copy\n",
                i, before[i], later);
        later_all += later;
        check_writer(b, &ws[i], x.revision, &live);
    }
    ck_assert_uint_eq(x.records, live);
    /* The writers committed while the copy was under way (the pipe was
     * held until they had), and those writes are not in it. */
    ck_assert_uint_ge(later_all, AFTER_START);
    etagkv_store_close(b);
    etagkv_store_close(s);
}
END_TEST

START_TEST(a_backup_into_a_directory_reopens_and_never_overwrites)
{
    etagkv_store *s = tu_open(dir, NULL), *b;
    etagkv_meta m;
    void *v;
    size_t n;

    ck_assert_int_eq(etagkv_put(s, "k", 1, "v", 1, NULL, NULL, &m),
                     ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_store_backup(s, bdir), ETAGKV_OK);
    ck_assert_int_eq(etagkv_store_backup(s, bdir), ETAGKV_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(etagkv_last_error_detail(), "never"));
    ck_assert_int_eq(etagkv_store_backup(s, "/nonexistent/etagkv"),
                     ETAGKV_NOT_FOUND);
    ck_assert_int_eq(etagkv_store_backup_fd(s, -1), ETAGKV_INVALID_ARGUMENT);
    etagkv_store_close(s);
    b = tu_open(bdir, NULL);
    ck_assert_int_eq(etagkv_get(b, "k", 1, NULL, &v, &n, NULL), ETAGKV_OK);
    ck_assert_uint_eq(n, 1);
    etagkv_free(v);
    ck_assert_int_eq(etagkv_put(b, "k2", 2, "w", 1, NULL, NULL, NULL),
                     ETAGKV_CREATED);
    etagkv_store_close(b);
}
END_TEST

/* A backup cut short leaves no data.mdb (its .partial file refuses the
 * next backup until removed), and a store file cut short -- a copy made by
 * other means, a restore from a broken pipe -- is refused at open as
 * ETAGKV_CORRUPT instead of killing the process (SIGBUS) at its first
 * page past the end. */
START_TEST(a_store_file_cut_short_is_refused_and_a_partial_backup_never_named)
{
    etagkv_store *s = tu_open(dir, NULL), *b = NULL;
    etagkv_options o;
    char path[1024], part[1024];
    static char value[8192];
    struct stat sb;
    int fd;

    memset(value, 'v', sizeof value);
    for (int i = 0; i < 64; i++) {
        char key[16];

        snprintf(key, sizeof key, "k%02d", i);
        ck_assert_int_eq(etagkv_put(s, key, strlen(key), value, sizeof value,
                                    NULL, NULL, NULL),
                         ETAGKV_CREATED);
    }
    snprintf(path, sizeof path, "%s/data.mdb", bdir);
    snprintf(part, sizeof part, "%s/data.mdb.partial", bdir);

    /* What an interrupted backup leaves: the .partial file alone. */
    fd = open(part, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(close(fd), 0);
    ck_assert_int_eq(etagkv_store_backup(s, bdir), ETAGKV_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(etagkv_last_error_detail(), "cut short"));
    ck_assert_int_ne(stat(path, &sb), 0);
    ck_assert_int_eq(unlink(part), 0);

    /* A finished backup has its name and no .partial beside it. */
    ck_assert_int_eq(etagkv_store_backup(s, bdir), ETAGKV_OK);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_ne(stat(part, &sb), 0);
    etagkv_store_close(s);

    /* Cut to half: refused, read-only and read-write, with the reason. */
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(truncate(path, sb.st_size / 2), 0);
    etagkv_options_init(&o);
    o.read_only = 1;
    ck_assert_int_eq(etagkv_store_open(bdir, &o, &b), ETAGKV_CORRUPT);
    ck_assert_ptr_nonnull(strstr(etagkv_last_error_detail(), "truncated"));
    ck_assert_ptr_null(b);
    etagkv_options_init(&o);
    ck_assert_int_eq(etagkv_store_open(bdir, &o, &b), ETAGKV_CORRUPT);
    ck_assert_ptr_null(b);
}
END_TEST

/* The offset of needle in the file at path, or -1. */
static long find_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    static char buf[1 << 20];
    size_t n, k = strlen(needle);
    long at = -1;

    ck_assert_ptr_nonnull(f);
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    for (size_t i = 0; i + k <= n && at < 0; i++)
        if (memcmp(buf + i, needle, k) == 0)
            at = (long)i;
    return at;
}

START_TEST(verify_names_the_key_whose_value_no_longer_hashes_to_its_etag)
{
    static const char needle[] = "a-value-to-damage-on-disk";
    etagkv_store *s = tu_open(dir, NULL);
    char path[4096];
    uint64_t n = 99;
    long at;
    int fd;

    for (int i = 0; i < 10; i++) {
        char key[8];

        snprintf(key, sizeof(key), "a%d", i);
        ck_assert_int_eq(
            etagkv_put(s, key, strlen(key), "x", 1, NULL, NULL, NULL),
            ETAGKV_CREATED);
    }
    ck_assert_int_eq(
        etagkv_put(s, "b\0b", 3, needle, sizeof(needle) - 1, NULL, NULL, NULL),
        ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_store_verify(s, &n), ETAGKV_OK);
    ck_assert_uint_eq(n, 11);
    etagkv_store_close(s);

    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    at = find_in_file(path, needle);
    ck_assert_int_ge(at, 0);
    fd = open(path, O_WRONLY);
    ck_assert_int_eq(pwrite(fd, "A", 1, at), 1);
    ck_assert_int_eq(close(fd), 0);

    s = tu_open(dir, NULL);
    ck_assert_int_eq(etagkv_store_verify(s, &n), ETAGKV_CORRUPT);
    ck_assert_uint_eq(n, 10); /* a0..a9 sort before b */
    ck_assert_msg(strstr(etagkv_last_error_detail(),
                         "key b%00b: the value does not hash") != NULL,
                  "detail: %s", etagkv_last_error_detail());
    etagkv_store_close(s);
}
END_TEST

static int entries(const char *path)
{
    char cmd[4200];
    FILE *p;
    int n = -1;

    snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", path);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

static void noop_done(void *ctx, const etagkv_result *res)
{
    (void)ctx;
    (void)res;
}

START_TEST(a_read_only_open_creates_nothing_and_refuses_every_write)
{
    etagkv_store *s = tu_open(dir, NULL), *r = NULL;
    etagkv_options o;
    etagkv_request req = {
        .method = ETAGKV_METHOD_PUT, .key = "k", .key_len = 1};
    void *v;
    size_t n;
    char missing[4200];

    ck_assert_int_eq(etagkv_put(s, "k", 1, "v", 1, NULL, NULL, NULL),
                     ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_store_backup(s, bdir), ETAGKV_OK);
    etagkv_store_close(s);
    etagkv_options_init(&o);
    o.read_only = 1;

    /* A backup holds data.mdb only: no lock.mdb appears. */
    ck_assert_int_eq(entries(bdir), 1);
    ck_assert_int_eq(etagkv_store_open(bdir, &o, &r), ETAGKV_OK);
    ck_assert_int_eq(etagkv_get(r, "k", 1, NULL, &v, &n, NULL), ETAGKV_OK);
    etagkv_free(v);
    ck_assert_int_eq(etagkv_put(r, "k", 1, "w", 1, NULL, NULL, NULL),
                     ETAGKV_READ_ONLY);
    ck_assert_int_eq(etagkv_delete(r, "k", 1, NULL, NULL), ETAGKV_READ_ONLY);
    ck_assert_int_eq(etagkv_write(r, &req, NULL), ETAGKV_READ_ONLY);
    ck_assert_int_eq(etagkv_submit(r, &req, noop_done, NULL), ETAGKV_READ_ONLY);
    ck_assert_int_eq(etagkv_store_verify(r, NULL), ETAGKV_OK);
    etagkv_store_close(r);
    ck_assert_int_eq(entries(bdir), 1);

    /* No store, no directory: NOT_FOUND, and still nothing created. */
    ck_assert_int_eq(unlink(strcat(strcpy(missing, bdir), "/data.mdb")), 0);
    ck_assert_int_eq(etagkv_store_open(bdir, &o, &r), ETAGKV_NOT_FOUND);
    ck_assert_ptr_null(r);
    ck_assert_ptr_nonnull(strstr(etagkv_last_error_detail(), "no store here"));
    ck_assert_int_eq(entries(bdir), 0);
    snprintf(missing, sizeof(missing), "%s/typo", bdir);
    ck_assert_int_eq(etagkv_store_open(missing, &o, &r), ETAGKV_NOT_FOUND);
    ck_assert_ptr_nonnull(
        strstr(etagkv_last_error_detail(), "directory does not exist"));
    ck_assert_int_eq(etagkv_store_open(missing, NULL, &r), ETAGKV_NOT_FOUND);
    ck_assert_int_eq(entries(bdir), 0);
}
END_TEST

/* The writer process: opens the store, says so, then commits one put for
 * each byte it reads, saying so after each, until end of file. */
static void nolock_writer(const char *path, int go, int done)
{
    etagkv_store *s = NULL;
    char c;
    int n = 0;

    if (etagkv_store_open(path, NULL, &s) != ETAGKV_OK ||
        write(done, "r", 1) != 1)
        _exit(1);
    while (read(go, &c, 1) == 1) {
        char key[32];

        snprintf(key, sizeof(key), "during/%d", n++);
        if (etagkv_put(s, key, strlen(key), "x", 1, NULL, NULL, NULL) !=
                ETAGKV_CREATED ||
            write(done, "d", 1) != 1)
            _exit(1);
    }
    etagkv_store_close(s);
    _exit(0);
}

/* The pipes to and from the writer process. */
struct writer_pipes {
    int go, done;
};

static void nothing(void *arg)
{
    (void)arg;
}

/* The writer process commits once, and has. */
static void writer_commits(void *arg)
{
    struct writer_pipes *w = arg;
    char c;

    ck_assert_int_eq(write(w->go, "w", 1), 1);
    ck_assert_int_eq(read(w->done, &c, 1), 1);
}

/* A read-only open that may not use lock.mdb (here: it is gone) reads
 * without registering, so a writer in another process may reuse the pages
 * a backup is copying.  A backup during which that process committed --
 * provably during: the copy is stalled on a full pipe -- fails and says
 * why; one during which nothing was written succeeds. */
START_TEST(a_backup_without_the_lock_file_refuses_a_store_written_under_it)
{
    etagkv_store *s = tu_open(dir, NULL), *r = NULL;
    etagkv_options o;
    struct writer_pipes wp;
    struct drain quiet = {.out = -1, .stalled = nothing};
    struct drain written = {.out = -1, .stalled = writer_commits, .arg = &wp};
    int go[2], done[2], status;
    char lock[4200], c;
    pid_t pid;

    seed(s);
    etagkv_store_close(s);
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(done), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        (void)close(go[1]);
        (void)close(done[0]);
        nolock_writer(dir, go[0], done[1]);
    }
    ck_assert_int_eq(close(go[0]), 0);
    ck_assert_int_eq(close(done[1]), 0);
    ck_assert_int_eq(read(done[0], &c, 1), 1); /* the writer has it open */
    snprintf(lock, sizeof(lock), "%s/lock.mdb", dir);
    ck_assert_int_eq(unlink(lock), 0);
    etagkv_options_init(&o);
    o.read_only = 1;
    ck_assert_int_eq(etagkv_store_open(dir, &o, &r), ETAGKV_OK);

    wp = (struct writer_pipes){go[1], done[0]};
    ck_assert_int_eq(backup_into_pipe(r, &quiet), ETAGKV_OK);
    ck_assert_int_eq(backup_into_pipe(r, &written), ETAGKV_IO_ERROR);
    ck_assert_ptr_nonnull(
        strstr(etagkv_last_error_detail(), "without its lock file"));

    etagkv_store_close(r);
    ck_assert_int_eq(close(go[1]), 0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_eq(close(done[0]), 0);
}
END_TEST

/* Make the closed store at path look as one last written before the change
 * log and leases existed (commit 8a728e1): no "changes" nor "leases"
 * database, no change-log floor. */
static void strip_to_older_layout(const char *path)
{
    static const char floor_key[] = "etagkv.changes_floor";
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {sizeof(floor_key) - 1, (void *)floor_key};

    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
    ck_assert_int_eq(mdb_env_open(env, path, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "changes", 0, &dbi), 0);
    ck_assert_int_eq(mdb_drop(txn, dbi, 1), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "leases", 0, &dbi), 0);
    ck_assert_int_eq(mdb_drop(txn, dbi, 1), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    ck_assert_int_eq(mdb_del(txn, dbi, &k, NULL), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static int count_event(void *ctx, const etagkv_event *ev)
{
    (void)ev;
    (*(int *)ctx)++;
    return 0;
}

START_TEST(a_read_only_open_of_a_store_from_before_the_change_log)
{
    etagkv_store *s = tu_open(dir, NULL);
    etagkv_options o;
    etagkv_stats stats;
    etagkv_changes_page page;
    etagkv_txn *t;
    uint64_t id;
    int events = 0;

    /* Enough commits that LMDB's free list holds entries. */
    for (int i = 0; i < 20; i++)
        ck_assert_int_ge(etagkv_put(s, "k", 1, "v", 1, NULL, NULL, NULL),
                         ETAGKV_OK);
    etagkv_store_close(s);
    strip_to_older_layout(dir);
    etagkv_options_init(&o);
    o.read_only = 1;
    ck_assert_int_eq(etagkv_store_open(dir, &o, &s), ETAGKV_OK);

    ck_assert_int_eq(etagkv_store_stats(s, &stats), ETAGKV_OK);
    ck_assert_uint_eq(stats.records, 1);
    ck_assert_uint_eq(stats.revision, 20);
    ck_assert_uint_eq(stats.change_events, 0);
    ck_assert_uint_eq(stats.changes_min_after, 20);
    ck_assert_uint_eq(stats.leases, 0);
    ck_assert_int_eq(
        etagkv_changes(s, NULL, 0, 0, 20, 0, count_event, &events, &page),
        ETAGKV_OK);
    ck_assert_int_eq(events, 0);
    ck_assert_int_eq(
        etagkv_changes(s, NULL, 0, 0, 0, 0, count_event, &events, &page),
        ETAGKV_COMPACTED);
    /* Transactions and leases are writes too. */
    ck_assert_int_eq(etagkv_txn_new(&t), ETAGKV_OK);
    ck_assert_int_eq(etagkv_txn_put(t, "k", 1, "w", 1, NULL, NULL), ETAGKV_OK);
    ck_assert_int_eq(etagkv_txn_commit(s, t), ETAGKV_READ_ONLY);
    etagkv_txn_free(t);
    ck_assert_int_eq(etagkv_lease_grant(s, 10000, &id), ETAGKV_READ_ONLY);
    etagkv_store_close(s);

    /* Read-write, it starts its log at the revision it has. */
    s = tu_open(dir, NULL);
    ck_assert_int_eq(etagkv_store_stats(s, &stats), ETAGKV_OK);
    ck_assert_uint_eq(stats.change_events, 0);
    ck_assert_uint_eq(stats.changes_min_after, 20);
    ck_assert_int_eq(etagkv_put(s, "k", 1, "w", 1, NULL, NULL, NULL),
                     ETAGKV_OK);
    ck_assert_int_eq(
        etagkv_changes(s, NULL, 0, 0, 20, 0, count_event, &events, &page),
        ETAGKV_OK);
    ck_assert_int_eq(events, 1);
    etagkv_store_close(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("backup");
    TCase *tc = tcase_create("backup");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(
        tc,
        a_backup_under_concurrent_writes_is_exactly_the_acknowledged_writes_up_to_its_revision);
    tcase_add_test(tc, a_backup_into_a_directory_reopens_and_never_overwrites);
    tcase_add_test(
        tc, a_store_file_cut_short_is_refused_and_a_partial_backup_never_named);
    tcase_add_test(
        tc, verify_names_the_key_whose_value_no_longer_hashes_to_its_etag);
    tcase_add_test(tc,
                   a_read_only_open_creates_nothing_and_refuses_every_write);
    tcase_add_test(tc, a_read_only_open_of_a_store_from_before_the_change_log);
    tcase_add_test(
        tc, a_backup_without_the_lock_file_refuses_a_store_written_under_it);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
