/*
 * copy.c -- the etagkv tool's commands on a whole store: backup, restore,
 * verify and copy.
 *
 *   backup DIR|-   etagkv_store_backup(): a consistent compacted copy of a
 *                  live store as DIR/data.mdb (DIR is created if missing;
 *                  an existing store file is never overwritten), or the
 *                  same bytes to stdout
 *   restore SRC|-  a backup (a backup DIR, its data.mdb, or those bytes on
 *                  stdin) into the -d directory, which must be empty or
 *                  absent; flushed, then opened read-only and verified; a
 *                  restore that does not verify is removed again
 *   verify         etagkv_store_verify(): every record against its ETag
 *   copy DEST      etagkv_store_copy(): every record of the -d store, read
 *                  in one snapshot, into the empty store DEST (a directory,
 *                  created if missing, or etcd://...), then compared; the
 *                  way to move a store between backends
 *
 * backup and restore move LMDB's file; a store on etcd has none (its
 * cluster is backed up with etcdctl snapshot save), so there they are
 * refused before anything is created, pointing to copy.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define STORE_FILE "data.mdb"

/* Print a store's revision and record count as `stats` and `verify` do
 * (records checked when verified is non-NULL). */
static etagkv_status print_figures(etagkv_store *s, const uint64_t *verified)
{
    etagkv_stats x;
    etagkv_status st = etagkv_store_stats(s, &x);

    if (st == ETAGKV_OK)
        printf("records: %" PRIu64 "\nrevision: %" PRIu64 "\n",
               verified != NULL ? *verified : x.records, x.revision);
    return st;
}

/* Open dir read-only, verify every record and print the figures. */
static etagkv_status verify_dir(const char *dir)
{
    etagkv_options o;
    etagkv_store *s;
    uint64_t n = 0;
    etagkv_status st;

    etagkv_options_init(&o);
    o.read_only = 1;
    st = etagkv_store_open(dir, &o, &s);
    if (st != ETAGKV_OK)
        return st;
    st = etagkv_store_verify(s, &n);
    if (st == ETAGKV_OK)
        st = print_figures(s, &n);
    etagkv_store_close(s);
    return st;
}

int cmd_verify(struct ctx *c)
{
    uint64_t n = 0;
    etagkv_status st = etagkv_store_verify(c->s, &n);

    if (st == ETAGKV_OK)
        st = print_figures(c->s, &n);
    else
        fprintf(stderr, "etagkv: %" PRIu64 " records sound before this one\n",
                n);
    return report(st);
}

/* backup and restore on etcd: ETAGKV_UNSUPPORTED (501), said plainly. */
static int lmdb_only(const char *cmd)
{
    fprintf(stderr,
            "etagkv: %s works on an LMDB directory only, not on a store on "
            "etcd (back the cluster up with 'etcdctl snapshot save'); to move "
            "a store between a directory and etcd, use 'etagkv -d SOURCE copy "
            "DEST'\n",
            cmd);
    return report(ETAGKV_UNSUPPORTED);
}

int cmd_backup(struct ctx *c)
{
    const char *to = c->argv[0];
    etagkv_status st;
    int made;

    if (cli_on_etcd(c->dir))
        return lmdb_only("backup");
    if (strcmp(to, "-") == 0) {
        if (isatty(STDOUT_FILENO)) {
            fprintf(stderr, "etagkv: backup -: stdout is a terminal; "
                            "redirect it to a file or a pipe\n");
            return EXIT_USAGE;
        }
        /* A reader that goes away is a failed backup, not a silent death. */
        (void)signal(SIGPIPE, SIG_IGN);
        return report(etagkv_store_backup_fd(c->s, STDOUT_FILENO));
    }
    made = mkdir(to, 0700) == 0;
    if (!made && errno != EEXIST) {
        fprintf(stderr, "etagkv: mkdir %s: %s\n", to, strerror(errno));
        return EXIT_ERROR;
    }
    st = etagkv_store_backup(c->s, to);
    /* A directory made for a backup that failed goes too (a failed backup
     * removes its own partial file); one that was there stays. */
    if (st != ETAGKV_OK && made)
        (void)rmdir(to);
    if (st == ETAGKV_INVALID_ARGUMENT) {
        fprintf(stderr, "etagkv: %s\n", etagkv_last_error_detail());
        return EXIT_USAGE;
    }
    if (st == ETAGKV_OK)
        st = verify_dir(to);
    return report(st);
}

/* ---- restore ------------------------------------------------------------- */

/* 1 if dir exists and holds nothing, 0 if it holds something, -1 (errno)
 * if it cannot be read (ENOENT: it does not exist). */
static int dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int empty = 1;

    if (d == NULL)
        return -1;
    for (;;) {
        e = readdir(d);
        if (e == NULL)
            break;
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = 0;
    }
    (void)closedir(d);
    return empty;
}

/* Open the backup SRC: "-" is stdin, a directory means its data.mdb.
 * The descriptor, or -1 after saying why. */
static int open_backup(const char *src)
{
    char path[4096];
    struct stat sb;
    int fd;

    if (strcmp(src, "-") == 0)
        return STDIN_FILENO;
    if (stat(src, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(path, sizeof(path), "%s/%s", src, STORE_FILE);
        src = path;
    }
    fd = open(src, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fprintf(stderr, "etagkv: %s: %s\n", src, strerror(errno));
    return fd;
}

/* Copy in to out; 0, or -1 with errno. */
static int copy_all(int in, int out)
{
    static char buf[1 << 16];

    for (;;) {
        ssize_t r = read(in, buf, sizeof(buf)), w;

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return (int)r;
        for (ssize_t off = 0; off < r; off += w) {
            w = write(out, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR)
                w = 0;
            else if (w < 0)
                return -1;
        }
    }
}

/* fsync a directory: the new name of a file in it is durable. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    (void)close(fd);
    return rc != 0 && errno != EINVAL ? -1 : 0;
}

void cli_restoring_path(char *out, size_t cap, const char *dir)
{
    snprintf(out, cap, "%s/%s.restoring", dir, STORE_FILE);
}

/* Give tmp the name path, never replacing a path that exists: a store
 * created in the directory while the restore ran (the directory was
 * empty when it began) is someone's acknowledged writes.  A hard link
 * fails with EEXIST where rename() would replace; without hard links (some
 * file systems) a last look, then rename().  0; -1 with errno, *appeared
 * when path exists. */
static int publish_restored(const char *tmp, const char *path, int *appeared)
{
    *appeared = 0;
    if (link(tmp, path) == 0)
        return unlink(tmp);
    if (errno != EEXIST && access(path, F_OK) != 0)
        return rename(tmp, path);
    *appeared = 1;
    errno = EEXIST;
    return -1;
}

/* Write the backup on in as dir/data.mdb: under a temporary name, flushed,
 * then given its name, so that a restore cut short never leaves a file
 * that passes for a store.  0, or -1 after saying why (nothing of ours
 * left behind). */
static int write_store_file(int in, const char *dir)
{
    char tmp[4096], path[4096];
    int fd, rc, appeared = 0, published = 0;

    cli_restoring_path(tmp, sizeof(tmp), dir);
    snprintf(path, sizeof(path), "%s/%s", dir, STORE_FILE);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "etagkv: %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    rc = copy_all(in, fd);
    if (rc == 0)
        rc = fsync(fd);
    if (close(fd) != 0)
        rc = -1;
    if (rc == 0)
        rc = publish_restored(tmp, path, &appeared);
    published = rc == 0;
    if (rc == 0)
        rc = sync_dir(dir);
    if (rc != 0 && appeared)
        fprintf(stderr,
                "etagkv: restoring into %s: a store was created there while "
                "the restore ran (%s appeared); it is left as it is, and "
                "nothing was restored\n",
                dir, STORE_FILE);
    else if (rc != 0)
        fprintf(stderr, "etagkv: restoring into %s: %s\n", dir,
                strerror(errno));
    if (rc != 0) {
        (void)unlink(tmp);
        if (published)
            (void)unlink(path);
    }
    return rc;
}

int cmd_restore(struct ctx *c)
{
    const char *dir = c->dir;
    int empty, created = 0, in, rc;
    etagkv_status st;

    if (cli_on_etcd(dir))
        return lmdb_only("restore");
    empty = dir_empty(dir);
    if (empty == 0 || (empty < 0 && errno != ENOENT)) {
        char tmp[4096];

        cli_restoring_path(tmp, sizeof(tmp), dir);
        fprintf(stderr,
                "etagkv: %s: %s; restore only into an empty or new "
                "directory%s\n",
                dir, empty == 0 ? "not empty" : strerror(errno),
                empty == 0 && access(tmp, F_OK) == 0
                    ? " (it holds " STORE_FILE ".restoring, left by a "
                      "restore cut short: remove it)"
                    : "");
        return EXIT_USAGE;
    }
    in = open_backup(c->argv[0]);
    if (in < 0)
        return EXIT_USAGE;
    if (empty < 0) {
        if (mkdir(dir, 0700) != 0) {
            fprintf(stderr, "etagkv: mkdir %s: %s\n", dir, strerror(errno));
            rc = EXIT_ERROR;
            goto out;
        }
        created = 1;
    }
    if (write_store_file(in, dir) != 0) {
        rc = EXIT_ERROR;
        goto out;
    }
    st = verify_dir(dir);
    if (st != ETAGKV_OK) {
        char path[4096];

        snprintf(path, sizeof(path), "%s/%s", dir, STORE_FILE);
        (void)unlink(path);
        fprintf(stderr, "etagkv: the backup does not verify; %s removed\n",
                path);
    }
    rc = report(st);
out:
    if (rc != 0 && created)
        (void)rmdir(dir);
    if (in != STDIN_FILENO)
        (void)close(in);
    return rc;
}

/* ---- copy ---------------------------------------------------------------- */

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;

    (void)clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) +
           (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The summary, on stdout as `stats` prints its figures: what was copied
 * (also the part of a copy that failed), from which source revision, and
 * the destination's revision after it. */
static void print_copy(const etagkv_copy_stats *x, etagkv_store *dst,
                       double seconds)
{
    etagkv_stats d;

    printf("source-revision: %" PRIu64 "\nrecords: %" PRIu64
           "\nvalue-bytes: %" PRIu64 "\nleased-skipped: %" PRIu64
           "\npages: %" PRIu64 "\nverified: %" PRIu64 "\n",
           x->revision, x->records, x->value_bytes, x->leased_skipped, x->pages,
           x->verified);
    if (etagkv_store_stats(dst, &d) == ETAGKV_OK)
        printf("destination-revision: %" PRIu64 "\n", d.revision);
    printf("seconds: %.3f\n", seconds);
}

/* Do a and b name one directory (however spelt: "./x", "x/", a link)?  A
 * store opened twice in one process is what LMDB forbids: closing one
 * handle drops the other's locks. */
static int same_dir(const char *a, const char *b)
{
    struct stat sa, sb;

    if (strcmp(a, b) == 0)
        return 1;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

int cmd_copy(struct ctx *c)
{
    const char *to = c->argv[0];
    etagkv_store *dst;
    etagkv_copy_stats x;
    struct timespec t0;
    double seconds;
    etagkv_status st;
    int rc;

    if (same_dir(to, c->dir)) {
        fprintf(stderr, "etagkv: copy %s into itself\n", to);
        return EXIT_USAGE;
    }
    rc = cli_open_store(to, OPEN_CREATE, c->a->nosync, &dst);
    if (rc != 0)
        return rc;
    (void)clock_gettime(CLOCK_MONOTONIC, &t0);
    st = etagkv_store_copy(c->s, dst, c->a->page_records, 0, &x);
    seconds = seconds_since(&t0);
    if (st == ETAGKV_INVALID_ARGUMENT) { /* DEST holds records */
        fprintf(stderr, "etagkv: %s: %s\n", to, etagkv_last_error_detail());
        etagkv_store_close(dst);
        return EXIT_USAGE;
    }
    if (st == ETAGKV_OUTCOME_UNKNOWN)
        fprintf(stderr,
                "etagkv: %s holds the %" PRIu64 " pages this failed copy "
                "committed, and perhaps one more (etcd's answer to it was "
                "lost): empty it before copying again\n",
                to, x.pages);
    else if (st != ETAGKV_OK && x.pages > 0)
        fprintf(stderr,
                "etagkv: %s holds the %" PRIu64 " pages this failed copy "
                "committed: empty it before copying again\n",
                to, x.pages);
    rc = report(st); /* before print_copy(), which clears the detail */
    /* A copy that fails is an error (3), not an outcome to act on: a 409
     * here is a destination that differs, not a failed condition. */
    if (rc == EXIT_OUTCOME)
        rc = EXIT_ERROR;
    print_copy(&x, dst, seconds);
    etagkv_store_close(dst);
    return rc;
}
