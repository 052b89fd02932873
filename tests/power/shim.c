/*
 * shim.c -- an LD_PRELOAD library that journals every write and flush a
 * process makes to one store's data.mdb and directory (journal.h), so that
 * the test can rebuild what a power loss at any moment would leave on the
 * disk.  The calls themselves go through unchanged (except in "noflush"
 * mode, a negative control, where flushes of the store do nothing).
 *
 * Intercepted: open, open64, openat, openat64 (to learn which descriptors
 * are data.mdb or the directory, with their O_DSYNC/O_SYNC flag), close,
 * dup, dup2, dup3; write, pwrite, pwrite64, writev, pwritev, pwritev64,
 * pwritev2, ftruncate, ftruncate64; fsync, fdatasync; mmap, mmap64,
 * munmap, msync; fallocate, fallocate64, posix_fallocate,
 * posix_fallocate64 (journaled as unmodelled: LMDB does not use them).
 *
 * Left alone on purpose: sync_file_range() (Linux documents that it
 * flushes neither metadata nor the disk's cache: not a durability point,
 * so it is no flush here either), sync() and syncfs() (not used by LMDB or
 * etagkv; a flush the journal does not see only makes the images
 * pessimistic, never optimistic).
 *
 * Each call on a tracked descriptor runs under one mutex, and its record
 * is appended after the call returned, before the mutex is released: the
 * journal's order is the order in which the calls took effect, and a flush
 * recorded after a write covers it.  A process killed between a call and
 * its record loses the record, which is the same as a power loss an
 * instant earlier.
 *
 * Built without sanitizers: under ASan or TSan it sits between the
 * sanitizer's interceptors and libc, resolving the next definition with
 * dlsym(RTLD_NEXT).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "journal.h"

#define MAX_FDS 4096
#define MAX_MAPS 64

enum kind { K_NONE = 0, K_DATA = 1, K_DIR = 2 };

static struct {
    int active;
    int noflush;
    int jfd;
    char data_path[PATH_MAX];
    dev_t dir_dev;
    ino_t dir_ino;
    unsigned char kind[MAX_FDS];
    unsigned char dsync[MAX_FDS];
    struct {
        char *addr;
        size_t len;
        off_t off;
    } maps[MAX_MAPS];
} S = {.jfd = -1};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* The next definition of a libc function: the real one, or a sanitizer's
 * interceptor in front of it. */
#define REAL(name)                                                             \
    static __typeof__(&name) real_##name;                                      \
    if (real_##name == NULL)                                                   \
        real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name);

static ssize_t journal_writev(const struct iovec *iov, int n)
{
    REAL(writev);
    return real_writev(S.jfd, iov, n);
}

/* Append one record; data is iovcnt buffers holding len bytes in all. */
static void journal(enum pj_type type, unsigned flags, uint64_t off,
                    uint64_t arg, const struct iovec *data, int iovcnt,
                    size_t len)
{
    struct pj_rec h = {PJ_MAGIC, (uint32_t)type, flags, (uint32_t)len, off,
                       arg};
    struct iovec iov[IOV_MAX];
    int n = 1;

    iov[0].iov_base = &h;
    iov[0].iov_len = sizeof h;
    for (int i = 0; i < iovcnt && n < IOV_MAX && len > 0; i++) {
        size_t take = data[i].iov_len < len ? data[i].iov_len : len;

        iov[n].iov_base = data[i].iov_base;
        iov[n++].iov_len = take;
        len -= take;
    }
    (void)journal_writev(iov, n);
}

static void unmodelled(const char *what)
{
    struct iovec v = {(void *)what, strlen(what)};

    journal(PJ_UNMODELLED, 0, 0, 0, &v, 1, v.iov_len);
}

__attribute__((constructor)) static void shim_init(void)
{
    const char *j = getenv(PJ_ENV_JOURNAL), *d = getenv(PJ_ENV_DIR);
    const char *m = getenv(PJ_ENV_MODE);
    struct stat sb;
    REAL(open);

    if (j == NULL || d == NULL || stat(d, &sb) != 0)
        return;
    S.dir_dev = sb.st_dev;
    S.dir_ino = sb.st_ino;
    if (snprintf(S.data_path, sizeof S.data_path, "%s/data.mdb", d) >=
        (int)sizeof S.data_path)
        return;
    S.jfd = real_open(j, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    S.noflush = m != NULL && strcmp(m, "noflush") == 0;
    S.active = S.jfd >= 0;
}

static enum kind kind_of(int fd)
{
    if (!S.active || fd < 0 || fd >= MAX_FDS)
        return K_NONE;
    return (enum kind)__atomic_load_n(&S.kind[fd], __ATOMIC_ACQUIRE);
}

/* After an open that returned fd (with `flags`): is it data.mdb or the
 * directory?  existed: whether data.mdb existed before the call.  Called
 * with the lock held. */
static void classify(int fd, int flags, int existed)
{
    struct stat sb, db;

    if (fd < 0 || fstat(fd, &sb) != 0)
        return;
    if (S_ISDIR(sb.st_mode) && sb.st_dev == S.dir_dev &&
        sb.st_ino == S.dir_ino) {
        if (fd >= MAX_FDS)
            unmodelled("directory descriptor beyond the shim's table");
        else
            __atomic_store_n(&S.kind[fd], K_DIR, __ATOMIC_RELEASE);
        return;
    }
    if (!S_ISREG(sb.st_mode) || stat(S.data_path, &db) != 0 ||
        db.st_dev != sb.st_dev || db.st_ino != sb.st_ino)
        return;
    if (!existed)
        journal(PJ_CREATE, 0, 0, 0, NULL, 0, 0);
    if (fd >= MAX_FDS) {
        unmodelled("data.mdb descriptor beyond the shim's table");
        return;
    }
    if (flags & O_APPEND)
        unmodelled("data.mdb opened O_APPEND");
    S.dsync[fd] = (flags & (O_DSYNC | O_SYNC)) != 0;
    __atomic_store_n(&S.kind[fd], K_DATA, __ATOMIC_RELEASE);
}

static int data_exists(void)
{
    struct stat sb;

    return stat(S.data_path, &sb) == 0;
}

static int mode_arg(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE
               ? va_arg(ap, int)
               : 0;
}

static int do_openat(int dirfd, const char *path, int flags, int mode)
{
    int fd, existed;
    REAL(openat);

    if (!S.active)
        return real_openat(dirfd, path, flags, mode);
    (void)pthread_mutex_lock(&lock);
    existed = data_exists();
    fd = real_openat(dirfd, path, flags, mode);
    if (fd >= 0) {
        int err = errno;

        classify(fd, flags, existed);
        errno = err;
    }
    (void)pthread_mutex_unlock(&lock);
    return fd;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    int mode;

    va_start(ap, flags);
    mode = mode_arg(flags, ap);
    va_end(ap);
    return do_openat(AT_FDCWD, path, flags, mode);
}

/* On LP64 the 64-bit variants are the same functions. */
int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    int mode;

    va_start(ap, flags);
    mode = mode_arg(flags, ap);
    va_end(ap);
    return do_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
    __attribute__((alias("openat")));

int close(int fd)
{
    int rc;
    REAL(close);

    if (kind_of(fd) == K_NONE)
        return real_close(fd);
    (void)pthread_mutex_lock(&lock);
    __atomic_store_n(&S.kind[fd], K_NONE, __ATOMIC_RELEASE);
    rc = real_close(fd);
    (void)pthread_mutex_unlock(&lock);
    return rc;
}

/* A tracked descriptor duplicated: its writes would escape the table. */
static int after_dup(int old, int rc)
{
    if (rc >= 0 && kind_of(old) != K_NONE) {
        (void)pthread_mutex_lock(&lock);
        unmodelled("dup of a tracked descriptor");
        (void)pthread_mutex_unlock(&lock);
    }
    return rc;
}

int dup(int fd)
{
    REAL(dup);
    return after_dup(fd, real_dup(fd));
}

int dup2(int fd, int to)
{
    REAL(dup2);
    return after_dup(fd, real_dup2(fd, to));
}

int dup3(int fd, int to, int flags)
{
    REAL(dup3);
    return after_dup(fd, real_dup3(fd, to, flags));
}

/* ---- writes --------------------------------------------------------------
 */

/* Write iov to data.mdb descriptor fd at off (-1: at the file position),
 * through `call`, and journal what was written. */
static ssize_t data_write(int fd, const struct iovec *iov, int n, off_t off,
                          ssize_t (*call)(int, const struct iovec *, int,
                                          off_t))
{
    ssize_t rc;
    off_t at;
    int err;

    (void)pthread_mutex_lock(&lock);
    at = off >= 0 ? off : lseek(fd, 0, SEEK_CUR);
    rc = call(fd, iov, n, off);
    err = errno;
    if (rc > 0)
        journal(PJ_WRITE, S.dsync[fd] && !S.noflush ? PJ_DURABLE : 0,
                (uint64_t)at, 0, iov, n, (size_t)rc);
    (void)pthread_mutex_unlock(&lock);
    errno = err;
    return rc;
}

static ssize_t call_writev(int fd, const struct iovec *iov, int n, off_t off)
{
    REAL(writev);
    (void)off;
    return real_writev(fd, iov, n);
}

static ssize_t call_pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    REAL(pwritev);
    return real_pwritev(fd, iov, n, off);
}

ssize_t write(int fd, const void *buf, size_t len)
{
    struct iovec v = {(void *)buf, len};
    REAL(write);

    if (kind_of(fd) != K_DATA)
        return real_write(fd, buf, len);
    return data_write(fd, &v, 1, -1, call_writev);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
    struct iovec v = {(void *)buf, len};
    REAL(pwrite);

    if (kind_of(fd) != K_DATA || off < 0)
        return real_pwrite(fd, buf, len, off);
    return data_write(fd, &v, 1, off, call_pwritev);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
    __attribute__((alias("pwrite")));

ssize_t writev(int fd, const struct iovec *iov, int n)
{
    REAL(writev);

    if (kind_of(fd) != K_DATA)
        return real_writev(fd, iov, n);
    return data_write(fd, iov, n, -1, call_writev);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    REAL(pwritev);

    if (kind_of(fd) != K_DATA || off < 0)
        return real_pwritev(fd, iov, n, off);
    return data_write(fd, iov, n, off, call_pwritev);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t off)
    __attribute__((alias("pwritev")));

ssize_t pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    REAL(pwritev2);

    if (kind_of(fd) == K_DATA) {
        /* RWF_DSYNC and friends would make a write durable by itself; the
         * model does not follow per-call flags. */
        (void)pthread_mutex_lock(&lock);
        unmodelled("pwritev2 on data.mdb");
        (void)pthread_mutex_unlock(&lock);
    }
    return real_pwritev2(fd, iov, n, off, flags);
}

int ftruncate(int fd, off_t len)
{
    int rc, err;
    REAL(ftruncate);

    if (kind_of(fd) != K_DATA)
        return real_ftruncate(fd, len);
    (void)pthread_mutex_lock(&lock);
    rc = real_ftruncate(fd, len);
    err = errno;
    if (rc == 0)
        journal(PJ_TRUNCATE, 0, (uint64_t)len, 0, NULL, 0, 0);
    (void)pthread_mutex_unlock(&lock);
    errno = err;
    return rc;
}

int ftruncate64(int fd, off_t len) __attribute__((alias("ftruncate")));

static void unmodelled_on(int fd, const char *what)
{
    if (kind_of(fd) != K_DATA)
        return;
    (void)pthread_mutex_lock(&lock);
    unmodelled(what);
    (void)pthread_mutex_unlock(&lock);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
    REAL(fallocate);
    unmodelled_on(fd, "fallocate");
    return real_fallocate(fd, mode, off, len);
}

int fallocate64(int fd, int mode, off_t off, off_t len)
    __attribute__((alias("fallocate")));

int posix_fallocate(int fd, off_t off, off_t len)
{
    REAL(posix_fallocate);
    unmodelled_on(fd, "posix_fallocate");
    return real_posix_fallocate(fd, off, len);
}

int posix_fallocate64(int fd, off_t off, off_t len)
    __attribute__((alias("posix_fallocate")));

/* ---- flushes -------------------------------------------------------------
 */

static int flush(int fd, int (*call)(int))
{
    enum kind k = kind_of(fd);
    int rc, err;

    if (k == K_NONE)
        return call(fd);
    if (S.noflush)
        return 0;
    (void)pthread_mutex_lock(&lock);
    rc = call(fd);
    err = errno;
    if (rc == 0)
        journal(k == K_DATA ? PJ_SYNC : PJ_DIRSYNC, 0, 0, 0, NULL, 0, 0);
    (void)pthread_mutex_unlock(&lock);
    errno = err;
    return rc;
}

int fsync(int fd)
{
    REAL(fsync);
    return flush(fd, real_fsync);
}

int fdatasync(int fd)
{
    REAL(fdatasync);
    return flush(fd, real_fdatasync);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *p;
    REAL(mmap);

    p = real_mmap(addr, len, prot, flags, fd, off);
    if (p == MAP_FAILED || kind_of(fd) != K_DATA || !(flags & MAP_SHARED))
        return p;
    (void)pthread_mutex_lock(&lock);
    if (prot & PROT_WRITE)
        unmodelled("writable shared mapping of data.mdb");
    for (int i = 0; i < MAX_MAPS; i++) {
        if (S.maps[i].addr == NULL) {
            S.maps[i].addr = p;
            S.maps[i].len = len;
            S.maps[i].off = off;
            break;
        }
    }
    (void)pthread_mutex_unlock(&lock);
    return p;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
    __attribute__((alias("mmap")));

int munmap(void *addr, size_t len)
{
    REAL(munmap);

    if (S.active) {
        (void)pthread_mutex_lock(&lock);
        for (int i = 0; i < MAX_MAPS; i++)
            if (S.maps[i].addr == addr)
                S.maps[i].addr = NULL;
        (void)pthread_mutex_unlock(&lock);
    }
    return real_munmap(addr, len);
}

int msync(void *addr, size_t len, int flags)
{
    char *a = addr;
    int rc, err;
    REAL(msync);

    if (!S.active)
        return real_msync(addr, len, flags);
    (void)pthread_mutex_lock(&lock);
    for (int i = 0; i < MAX_MAPS; i++) {
        if (S.maps[i].addr == NULL || a < S.maps[i].addr ||
            a >= S.maps[i].addr + S.maps[i].len)
            continue;
        if (S.noflush) {
            (void)pthread_mutex_unlock(&lock);
            return 0;
        }
        rc = real_msync(addr, len, flags);
        err = errno;
        if (rc == 0 && (flags & MS_SYNC))
            journal(PJ_RANGESYNC, 0,
                    (uint64_t)(S.maps[i].off + (a - S.maps[i].addr)), len, NULL,
                    0, 0);
        (void)pthread_mutex_unlock(&lock);
        errno = err;
        return rc;
    }
    (void)pthread_mutex_unlock(&lock);
    return real_msync(addr, len, flags);
}
