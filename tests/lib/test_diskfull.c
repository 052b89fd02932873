/*
 * test_diskfull.c -- the store on a file system that fills up, and on one
 * that is read-only (issue 5): a clear status, nothing acknowledged lost,
 * no corruption, and the store usable again once there is room.
 *
 * A small tmpfs is the real thing, but mounting one needs a private mount
 * namespace.  main() enters a new user namespace before anything else, and
 * each test that needs a tmpfs enters its own mount namespace (unshare(2);
 * Check runs every test in its own process, so nothing leaks into the
 * next).  The user namespace has to come first: unshare(CLONE_NEWUSER)
 * requires a single-threaded process, and under ThreadSanitizer every
 * forked child already runs the sanitizer's background thread, whereas a
 * mount namespace may be entered by a threaded process.  Where the machine
 * forbids either, the test says so and skips.  The RLIMIT_FSIZE variant needs
 * no privilege and always runs: the kernel refuses writes past the limit with
 * EFBIG, as a file system that reached its largest file does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define VALUE_BYTES (64 << 10)
#define MAX_VALUES 512

static char *dir;
static char value[VALUE_BYTES];

static void setup(void)
{
    dir = tu_mkdtemp();
}

static void teardown(void)
{
    tu_rmdir_free(dir);
    dir = NULL;
}

/* The i-th value: distinct bytes per i, so a mixed-up record shows. */
static void fill(int i)
{
    for (size_t j = 0; j < sizeof(value); j++)
        value[j] = (char)((size_t)i * 131 + j * 7);
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = write(fd, text, strlen(text));
    (void)close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* 0 once main() has entered a user namespace of its own; otherwise the
 * errno that prevented it. */
static int userns_errno = ENOSYS;

/* Enter a new user namespace, mapping the caller's ids to root in it, so
 * that the tests may mount.  Called first thing in main(), while the
 * process is still single-threaded.  0, or -1 with errno set. */
static int enter_user_namespace(void)
{
    char map[64];
    uid_t uid = geteuid();
    gid_t gid = getegid();

    if (unshare(CLONE_NEWUSER) != 0)
        return -1;
    snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
    if (write_file("/proc/self/uid_map", map) != 0)
        return -1;
    (void)write_file("/proc/self/setgroups", "deny");
    snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
    if (write_file("/proc/self/gid_map", map) != 0)
        return -1;
    return 0;
}

/* Enter a new mount namespace and mount a tmpfs of `size` on dir.  Returns
 * 0, or -1 after saying SKIPPED where the machine does not allow it (the
 * caller then returns: the test has nothing to run on). */
static int mount_tmpfs(const char *size)
{
    char opts[64];

    if (userns_errno != 0) {
        errno = userns_errno;
        goto skip;
    }
    if (unshare(CLONE_NEWNS) != 0)
        goto skip;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        goto skip;
    snprintf(opts, sizeof(opts), "size=%s,mode=0700", size);
    if (mount("tmpfs", dir, "tmpfs", 0, opts) == 0)
        return 0;
skip:
    fprintf(stderr, "diskfull: SKIPPED, cannot mount a tmpfs here (%s)\n",
            strerror(errno));
    return -1;
}

static int remount(unsigned long flags, const char *size)
{
    char opts[64];

    snprintf(opts, sizeof(opts), "size=%s", size);
    return mount(NULL, dir, NULL, MS_REMOUNT | flags, opts);
}

static etagkv_store *open_store(void)
{
    etagkv_options o;

    etagkv_options_init(&o);
    o.map_size_bytes = 1 << 20; /* the map outgrows the file system */
    return tu_open(dir, &o);
}

/* Every one of the first n values reads back intact, with its ETag, and
 * nothing else is there. */
static void check_values(etagkv_store *store, int n,
                         char etags[][ETAGKV_ETAG_SIZE])
{
    etagkv_stats s;

    for (int i = 0; i < n; i++) {
        char key[16];
        void *got = NULL;
        size_t len = 0;
        etagkv_meta m;

        snprintf(key, sizeof(key), "k%03d", i);
        fill(i);
        ck_assert_int_eq(
            etagkv_get(store, key, strlen(key), NULL, &got, &len, &m),
            ETAGKV_OK);
        ck_assert_uint_eq(len, VALUE_BYTES);
        ck_assert_msg(memcmp(got, value, len) == 0, "%s is not what was put",
                      key);
        ck_assert_str_eq(m.etag, etags[i]);
        etagkv_free(got);
    }
    ck_assert_int_eq(etagkv_store_stats(store, &s), ETAGKV_OK);
    ck_assert_uint_eq(s.records, (uint64_t)n);
    ck_assert_uint_eq(s.revision, (uint64_t)n);
}

/* Put the first n values (k000...), each acknowledged; etags gets their
 * ETags. */
static void put_values(etagkv_store *store, int n,
                       char etags[][ETAGKV_ETAG_SIZE])
{
    for (int i = 0; i < n; i++) {
        char key[16];
        etagkv_meta m;

        snprintf(key, sizeof(key), "k%03d", i);
        fill(i);
        ck_assert_int_eq(etagkv_put(store, key, strlen(key), value, VALUE_BYTES,
                                    NULL, NULL, &m),
                         ETAGKV_CREATED);
        strcpy(etags[i], m.etag);
    }
}

/* Put values until the file system refuses one.  Returns how many were
 * acknowledged; *failed is the refusal's status. */
static int fill_until_refused(etagkv_store *store,
                              char etags[][ETAGKV_ETAG_SIZE],
                              etagkv_status *failed, char *detail,
                              size_t detail_len)
{
    int n = 0;

    *failed = ETAGKV_OK;
    while (n < MAX_VALUES) {
        char key[16];
        etagkv_meta m;
        etagkv_status r;

        snprintf(key, sizeof(key), "k%03d", n);
        fill(n);
        r = etagkv_put(store, key, strlen(key), value, VALUE_BYTES, NULL, NULL,
                       &m);
        if (r != ETAGKV_CREATED) {
            *failed = r;
            snprintf(detail, detail_len, "%s", etagkv_last_error_detail());
            break;
        }
        strcpy(etags[n], m.etag);
        n++;
    }
    return n;
}

/* The refused write and a retry of it change nothing; reads still work. */
static void check_refused_write_changed_nothing(etagkv_store *store, int n,
                                                char etags[][ETAGKV_ETAG_SIZE])
{
    char key[16];

    snprintf(key, sizeof(key), "k%03d", n);
    ck_assert_int_eq(
        etagkv_get(store, key, strlen(key), NULL, NULL, NULL, NULL),
        ETAGKV_NOT_FOUND);
    fill(n);
    ck_assert_int_ne(etagkv_put(store, key, strlen(key), value, VALUE_BYTES,
                                NULL, NULL, NULL),
                     ETAGKV_CREATED);
    check_values(store, n, etags);
}

/* After room was made: the reopened store holds exactly what was
 * acknowledged and takes the refused write now. */
static void check_writable_again(int n, char etags[][ETAGKV_ETAG_SIZE])
{
    etagkv_store *store = open_store();
    etagkv_stats s;
    char key[16];

    check_values(store, n, etags);
    snprintf(key, sizeof(key), "k%03d", n);
    fill(n);
    ck_assert_int_eq(etagkv_put(store, key, strlen(key), value, VALUE_BYTES,
                                NULL, NULL, NULL),
                     ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_store_stats(store, &s), ETAGKV_OK);
    ck_assert_uint_eq(s.revision, (uint64_t)n + 1);
    etagkv_store_close(store);
}

START_TEST(a_full_file_system_is_store_full_and_loses_nothing)
{
    static char etags[MAX_VALUES][ETAGKV_ETAG_SIZE];
    char detail[256];
    etagkv_store *store;
    etagkv_status failed;
    int n;

    if (mount_tmpfs("2m") != 0)
        return;
    store = open_store();
    n = fill_until_refused(store, etags, &failed, detail, sizeof(detail));
    /* 2 MiB holds some 64 KiB values, but not MAX_VALUES of them. */
    ck_assert_int_gt(n, 4);
    ck_assert_int_lt(n, MAX_VALUES);
    ck_assert_msg(failed == ETAGKV_STORE_FULL, "full disk gave %s (%s)",
                  etagkv_status_name(failed), detail);
    ck_assert_int_eq(etagkv_status_http(failed), 507);
    ck_assert_msg(detail[0] != '\0', "no detail for a full disk");
    fprintf(stderr, "diskfull: %d values acknowledged, then %s: %s\n", n,
            etagkv_status_name(failed), detail);
    check_refused_write_changed_nothing(store, n, etags);
    etagkv_store_close(store);

    /* The store reopens on the full file system as it was... */
    store = open_store();
    check_values(store, n, etags);
    etagkv_store_close(store);
    /* ...and takes writes again once the file system has room. */
    ck_assert_int_eq(remount(0, "16m"), 0);
    check_writable_again(n, etags);
    ck_assert_int_eq(umount(dir), 0); /* so that teardown can remove dir */
}
END_TEST

START_TEST(a_file_size_limit_fails_writes_cleanly_and_loses_nothing)
{
    static char etags[MAX_VALUES][ETAGKV_ETAG_SIZE];
    struct rlimit old, lim;
    char detail[256];
    etagkv_store *store;
    etagkv_status failed;
    int n;

    /* Without this, the first write past the limit kills the process. */
    ck_assert(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = (struct rlimit){2 << 20, old.rlim_max};
    store = open_store();
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    n = fill_until_refused(store, etags, &failed, detail, sizeof(detail));
    ck_assert_int_gt(n, 4);
    ck_assert_int_lt(n, MAX_VALUES);
    /* EFBIG, or the short write that LMDB reports as EIO: STORE_FULL. */
    ck_assert_msg(failed == ETAGKV_STORE_FULL, "file size limit gave %s (%s)",
                  etagkv_status_name(failed), detail);
    ck_assert_msg(detail[0] != '\0', "no detail for the refused write");
    fprintf(stderr, "diskfull: %d values acknowledged, then %s: %s\n", n,
            etagkv_status_name(failed), detail);
    check_refused_write_changed_nothing(store, n, etags);
    etagkv_store_close(store);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    check_writable_again(n, etags);
}
END_TEST

/* A backup that the destination cannot hold (here the file size limit,
 * EFBIG, as a full file system's ENOSPC) is STORE_FULL with a detail that
 * says it is the destination, not the store, that is full; the store goes
 * on reading and writing, and no data.mdb is left in the destination. */
START_TEST(a_backup_into_a_full_destination_says_so_and_harms_nothing)
{
    static char etags[MAX_VALUES][ETAGKV_ETAG_SIZE];
    struct rlimit old, lim;
    char *to = tu_mkdtemp(), path[1024];
    etagkv_store *store = open_store();
    etagkv_status r;

    ck_assert(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
    put_values(store, 8, etags);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = (struct rlimit){256 << 10, old.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    r = etagkv_store_backup(store, to);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    ck_assert_msg(r == ETAGKV_STORE_FULL, "%s: %s", etagkv_status_name(r),
                  etagkv_last_error_detail());
    ck_assert_msg(strstr(etagkv_last_error_detail(),
                         "destination is full, not the store") != NULL,
                  "%s", etagkv_last_error_detail());
    snprintf(path, sizeof(path), "%s/data.mdb", to);
    ck_assert_int_ne(access(path, F_OK), 0);
    check_values(store, 8, etags);
    fill(8);
    ck_assert_int_eq(
        etagkv_put(store, "k008", 4, value, VALUE_BYTES, NULL, NULL, NULL),
        ETAGKV_CREATED);
    etagkv_store_close(store);
    tu_rmdir_free(to);
}
END_TEST

START_TEST(
    a_read_only_store_is_refused_at_open_and_left_intact_but_opens_read_only)
{
    static char etags[MAX_VALUES][ETAGKV_ETAG_SIZE];
    etagkv_store *store;
    etagkv_status r;
    int n;

    /* As root, permission bits do not stop writes: only a read-only mount
     * does. */
    if (mount_tmpfs("16m") != 0)
        return;
    store = open_store();
    n = 8;
    put_values(store, n, etags);
    etagkv_store_close(store);
    ck_assert_int_eq(remount(MS_RDONLY, "16m"), 0);

    etagkv_store *ro = NULL;
    r = etagkv_store_open(dir, NULL, &ro);
    ck_assert_int_eq(r, ETAGKV_IO_ERROR);
    ck_assert_ptr_null(ro);
    ck_assert_msg(strstr(etagkv_last_error_detail(), "Read-only") != NULL,
                  "detail does not say why: %s", etagkv_last_error_detail());
    fprintf(stderr, "diskfull: read-only open: %s\n",
            etagkv_last_error_detail());

    /* Opened read-only it reads, verifies and refuses writes, creating
     * nothing (issue 16).  As root the lock file is writable by mode, but
     * not on this mount: LMDB goes on without it. */
    etagkv_options o;
    uint64_t verified;

    etagkv_options_init(&o);
    o.read_only = 1;
    ck_assert_int_eq(etagkv_store_open(dir, &o, &ro), ETAGKV_OK);
    check_values(ro, n, etags);
    ck_assert_int_eq(etagkv_store_verify(ro, &verified), ETAGKV_OK);
    ck_assert_uint_eq(verified, (uint64_t)n);
    ck_assert_int_eq(etagkv_put(ro, "k", 1, "v", 1, NULL, NULL, NULL),
                     ETAGKV_READ_ONLY);
    etagkv_store_close(ro);

    ck_assert_int_eq(remount(0, "16m"), 0);
    store = open_store();
    check_values(store, n, etags);
    etagkv_store_close(store);
    ck_assert_int_eq(umount(dir), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("diskfull");
    TCase *tc = tcase_create("diskfull");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, a_full_file_system_is_store_full_and_loses_nothing);
    tcase_add_test(tc,
                   a_backup_into_a_full_destination_says_so_and_harms_nothing);
    tcase_add_test(tc,
                   a_file_size_limit_fails_writes_cleanly_and_loses_nothing);
    tcase_add_test(
        tc,
        a_read_only_store_is_refused_at_open_and_left_intact_but_opens_read_only);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Before Check or the sanitizer starts any thread (see the top). */
    userns_errno = enter_user_namespace() == 0 ? 0 : errno;
    return tu_run(suite());
}
