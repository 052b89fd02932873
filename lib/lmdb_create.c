/*
 * lmdb_create.c -- a new store survives a power loss from the moment it
 * exists, and a store whose creation a power loss cut short is recognised as
 * such.
 *
 * LMDB creates data.mdb by writing its two initial meta pages with a plain
 * pwrite(); they reach the disk only at the first commit's fdatasync().  A
 * power loss before that can leave a file LMDB refuses (MDB_INVALID: a
 * meta page that is all zeros, or missing), and the store would not open
 * until someone deleted the file.  Nor does LMDB fsync the directory, so
 * on a file system that does not order a new name with the file's data
 * (POSIX asks for an fsync of the directory) the name data.mdb, with
 * everything written under it, could vanish.
 *
 * So a new store is made durable before etagkv_store_open() returns, that
 * is before anything can be acknowledged: the meta pages are flushed, then
 * the directory, then its parent (the caller may just have created the
 * directory; the server and the CLI do).  What is left is the short window
 * between LMDB's pwrite() and that flush, in which nothing was ever
 * committed.  A file torn in that window holds nothing but zeros and
 * initial meta pages, and ekv_torn_store() says exactly that, from the
 * bytes, instead of guessing from LMDB's refusal alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmdb_env.h"

/* LMDB's on-disk meta page (lmdb/mdb.c, data format version 1): a 16-byte
 * page header whose flags (a uint16 at byte 10) carry P_META, then the
 * MDB_meta: magic and version (uint32 each) at bytes 16 and 20, the page
 * size (uint32, mm_psize) at byte 40 and the transaction id (size_t) at
 * byte 144.  An initial meta page, the only kind mdb_env_init_meta()
 * writes, has transaction id 0. */
#define META_FLAGS_AT 10
#define META_P_META 0x08
#define META_MAGIC_AT 16
#define META_MAGIC 0xBEEFC0DEu
#define META_VERSION_AT 20
#define META_VERSION 1u
#define META_PSIZE_AT 40
#define META_TXNID_AT 144
#define META_HEADER_BYTES (META_TXNID_AT + 8)

/* A file system that cannot sync a directory says EINVAL; there is nothing
 * more to do then. */
etagkv_status ekv_sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc, err;

    if (fd < 0)
        return ekv_fail(ETAGKV_IO_ERROR, "open(%s): %s", path, strerror(errno));
    rc = fsync(fd);
    err = errno;
    (void)close(fd);
    if (rc != 0 && err != EINVAL)
        return ekv_fail(ETAGKV_IO_ERROR, "fsync(%s): %s", path, strerror(err));
    return ETAGKV_OK;
}

etagkv_status ekv_create_durable(MDB_env *env, const char *dir)
{
    MDB_envinfo info;
    char parent[4096];
    etagkv_status st;
    int rc;

    /* No transaction was ever committed: the store is new (or was created
     * by an open that failed before its first commit).  Flush even in
     * nosync mode: that mode gives up acknowledged writes at a power loss,
     * not the store itself. */
    rc = mdb_env_info(env, &info);
    if (rc != 0)
        return ekv_mdb_status(rc, "mdb_env_info");
    if (info.me_last_txnid != 0)
        return ETAGKV_OK;
    rc = mdb_env_sync(env, 1);
    if (rc != 0)
        return ekv_mdb_status(rc, "mdb_env_sync(new store)");
    st = ekv_sync_dir(dir);
    if (st != ETAGKV_OK)
        return st;
    if (snprintf(parent, sizeof parent, "%s/..", dir) >= (int)sizeof parent)
        return ekv_fail(ETAGKV_IO_ERROR, "%s: path too long", dir);
    return ekv_sync_dir(parent);
}

/* 1 if the n bytes at p are all zero. */
static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

/* 1 if the page at p, of psize bytes, is an initial meta page as
 * mdb_env_init_meta() writes it. */
static int initial_meta(const unsigned char *p, size_t psize)
{
    uint32_t magic, version, page;
    uint64_t txnid;
    uint16_t flags;

    memcpy(&flags, p + META_FLAGS_AT, sizeof flags);
    memcpy(&magic, p + META_MAGIC_AT, sizeof magic);
    memcpy(&version, p + META_VERSION_AT, sizeof version);
    memcpy(&page, p + META_PSIZE_AT, sizeof page);
    memcpy(&txnid, p + META_TXNID_AT, sizeof txnid);
    return (flags & META_P_META) && magic == META_MAGIC &&
           version == META_VERSION && page == psize && txnid == 0;
}

/* Classify data.mdb, open as fd, of size bytes, with pages of psize
 * bytes (the OS page size, which LMDB creates with): 1 if it is torn, that
 * is each of its first two pages is absent, all zeros or an initial meta
 * page, at least one is not a meta page, and nothing follows them. */
static int torn_file(int fd, off_t size, size_t psize)
{
    unsigned char *page;
    int torn = 1, metas = 0;

    if (size <= 0 || (uint64_t)size > 2 * (uint64_t)psize ||
        psize < META_HEADER_BYTES)
        return 0;
    page = malloc(psize);
    if (page == NULL)
        return 0;
    for (int i = 0; i < 2 && torn; i++) {
        off_t at = (off_t)i * (off_t)psize;
        size_t want = size - at >= (off_t)psize ? psize
                      : size > at               ? (size_t)(size - at)
                                                : 0;

        if (want == 0)
            continue;
        if (pread(fd, page, want, at) != (ssize_t)want)
            torn = 0;
        else if (!all_zero(page, want))
            torn = want == psize && initial_meta(page, psize) && ++metas;
    }
    free(page);
    return torn && metas < 2;
}

etagkv_status ekv_torn_store(const char *dir)
{
    char path[4096];
    struct stat sb;
    long psize = sysconf(_SC_PAGESIZE);
    int fd, torn;

    if (snprintf(path, sizeof path, "%s/data.mdb", dir) >= (int)sizeof path)
        return ETAGKV_OK;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ETAGKV_OK;
    torn = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && psize > 0 &&
           torn_file(fd, sb.st_size, (size_t)psize);
    (void)close(fd);
    if (!torn)
        return ETAGKV_OK;
    return ekv_fail(ETAGKV_TORN_STORE,
                    "%s (%lld bytes) holds only zeros and LMDB's initial meta "
                    "pages: no commit ever reached it",
                    path, (long long)sb.st_size);
}
