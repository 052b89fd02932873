/*
 * test_create.c -- a store whose creation a power loss cut short (issue
 * 20): etagkv_store_open() names it ETAGKV_TORN_STORE exactly when data.mdb
 * holds nothing but what creating a store writes before its first commit,
 * leaves the file alone, and the documented remedy (remove data.mdb) gives
 * a working empty store.  Anything else LMDB refuses stays
 * ETAGKV_INCOMPATIBLE.  Which images a real power loss produces, and that
 * new stores are flushed before anything is acknowledged, is proven by
 * tests/power.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <lmdb.h>

#include "testutil.h"

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))
/* mm_txnid in an LMDB meta page (see lib/lmdb_create.c). */
#define TXNID_AT 144

static char path[4096];

/* Leave in dir the data.mdb that LMDB's creation writes and nothing else:
 * mdb_env_open() writes both initial meta pages; no transaction follows. */
static void lmdb_creation_only(const char *dir)
{
    MDB_env *env;

    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0644), 0);
    mdb_env_close(env);
    snprintf(path, sizeof path, "%s/data.mdb", dir);
}

static void zero_page(int page)
{
    char *zeros = calloc(1, PAGE);
    int fd = open(path, O_WRONLY);

    ck_assert_ptr_nonnull(zeros);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, zeros, PAGE, (off_t)page * (off_t)PAGE),
                     (ssize_t)PAGE);
    close(fd);
    free(zeros);
}

static void truncate_to(off_t size)
{
    ck_assert_int_eq(truncate(path, size), 0);
}

/* The whole file, malloc'd; its size in *len. */
static char *slurp(size_t *len)
{
    struct stat sb;
    char *buf;
    int fd = open(path, O_RDONLY);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fstat(fd, &sb), 0);
    buf = malloc((size_t)sb.st_size + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(pread(fd, buf, (size_t)sb.st_size, 0), sb.st_size);
    close(fd);
    *len = (size_t)sb.st_size;
    return buf;
}

/* Open dir, expecting `want`; the file must be byte for byte unchanged. */
static void open_expect(const char *dir, etagkv_status want)
{
    etagkv_store *s = NULL;
    size_t before_len, after_len;
    char *before = slurp(&before_len), *after;

    ck_assert_str_eq(etagkv_status_name(etagkv_store_open(dir, NULL, &s)),
                     etagkv_status_name(want));
    ck_assert_ptr_null(s);
    after = slurp(&after_len);
    ck_assert_uint_eq(after_len, before_len);
    ck_assert(memcmp(before, after, before_len) == 0);
    free(before);
    free(after);
}

/* The ways a torn creation can leave data.mdb: any subset of the two
 * pages written, with the file's size updated or not. */
enum tear { ZERO_0, ZERO_1, ZERO_BOTH, ONLY_PAGE_0, ONLY_PAGE_0_ZERO };

static const struct {
    enum tear tear;
    const char *what;
} torn_rows[] = {
    {ZERO_0, "meta page 0 lost"},
    {ZERO_1, "meta page 1 lost"},
    {ZERO_BOTH, "both lost, size kept"},
    {ONLY_PAGE_0, "size of one page, meta page 0 written"},
    {ONLY_PAGE_0_ZERO, "size of one page, nothing written"},
};

START_TEST(a_torn_new_store_is_torn_store_left_alone_and_removable)
{
    char *dir = tu_mkdtemp();
    enum tear t = torn_rows[_i].tear;
    etagkv_store *s;
    etagkv_stats stats;

    lmdb_creation_only(dir);
    if (t == ZERO_0 || t == ZERO_BOTH || t == ONLY_PAGE_0_ZERO)
        zero_page(0);
    if (t == ZERO_1 || t == ZERO_BOTH)
        zero_page(1);
    if (t == ONLY_PAGE_0 || t == ONLY_PAGE_0_ZERO)
        truncate_to((off_t)PAGE);
    open_expect(dir, ETAGKV_TORN_STORE);
    ck_assert_msg(strstr(etagkv_last_error_detail(), "data.mdb") != NULL,
                  "%s: detail \"%s\" names the file", torn_rows[_i].what,
                  etagkv_last_error_detail());

    /* The remedy the status names: nothing was in the file. */
    ck_assert_int_eq(unlink(path), 0);
    s = tu_open(dir, NULL);
    ck_assert_int_eq(etagkv_store_stats(s, &stats), ETAGKV_OK);
    ck_assert_uint_eq(stats.records, 0);
    ck_assert_uint_eq(stats.revision, 0);
    etagkv_store_close(s);
    tu_rmdir_free(dir);
}
END_TEST

START_TEST(a_refused_file_that_may_hold_data_stays_incompatible)
{
    char *dir = tu_mkdtemp();
    etagkv_store *s;
    etagkv_meta m;
    uint64_t one = 1;
    int fd;

    /* A committed store with a meta page lost: it holds a record. */
    s = tu_open(dir, NULL);
    ck_assert_int_eq(etagkv_put(s, "k", 1, "v", 1, NULL, NULL, &m),
                     ETAGKV_CREATED);
    etagkv_store_close(s);
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    zero_page(1);
    open_expect(dir, ETAGKV_INCOMPATIBLE);
    tu_rmdir_free(dir);

    /* Two pages, but page 0 is the meta page of a commit (txnid 1). */
    dir = tu_mkdtemp();
    lmdb_creation_only(dir);
    fd = open(path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, &one, sizeof one, TXNID_AT), sizeof one);
    close(fd);
    zero_page(1);
    open_expect(dir, ETAGKV_INCOMPATIBLE);

    /* Part of a meta page: not what a lost 4 KiB write leaves. */
    truncate_to(100);
    open_expect(dir, ETAGKV_INCOMPATIBLE);

    /* Some other file of the size of two pages. */
    fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert_int_ge(fd, 0);
    for (size_t i = 0; i < 2 * PAGE; i++)
        ck_assert_int_eq(write(fd, "z", 1), 1);
    close(fd);
    open_expect(dir, ETAGKV_INCOMPATIBLE);
    tu_rmdir_free(dir);
}
END_TEST

static Suite *create_suite(void)
{
    Suite *s = suite_create("create");
    TCase *tc = tcase_create("create");

    tcase_add_loop_test(tc,
                        a_torn_new_store_is_torn_store_left_alone_and_removable,
                        0, (int)(sizeof torn_rows / sizeof torn_rows[0]));
    tcase_add_test(tc, a_refused_file_that_may_hold_data_stays_incompatible);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(create_suite());
}
