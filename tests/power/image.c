/*
 * image.c -- replay the shim's journal into the data.mdb a power loss
 * leaves (the model is described in image.h).
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "testutil.h"

#define PIECE 4096u

#define ERR(...) (snprintf(err, cap, __VA_ARGS__), -1)

int journal_load(struct journal *j, const char *path, char *err, size_t cap)
{
    struct stat sb;
    size_t at = 0;
    int fd;

    memset(j, 0, sizeof *j);
    fd = open(path, O_RDONLY);
    if (fd < 0)
        return errno == ENOENT ? 0 : ERR("%s: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0 ||
        (j->buf = malloc((size_t)sb.st_size + 1)) == NULL) {
        close(fd);
        return ERR("%s: cannot read", path);
    }
    j->len = (size_t)sb.st_size;
    if (pread(fd, j->buf, j->len, 0) != (ssize_t)j->len) {
        close(fd);
        return ERR("%s: short read", path);
    }
    close(fd);
    /* At most one record per header's worth of bytes. */
    j->rec = malloc((j->len / sizeof(struct pj_rec) + 1) * sizeof *j->rec);
    j->end = malloc((j->len / sizeof(struct pj_rec) + 1) * sizeof *j->end);
    if (j->rec == NULL || j->end == NULL)
        return ERR("out of memory");
    while (j->len - at >= sizeof(struct pj_rec)) {
        const struct pj_rec *r = (const struct pj_rec *)(j->buf + at);

        if (r->magic != PJ_MAGIC)
            return ERR("journal record %zu at %zu: bad magic", j->n, at);
        if (j->len - at - sizeof *r < r->len)
            break; /* the writer was killed while appending it */
        at += sizeof *r + r->len;
        j->rec[j->n] = r;
        j->end[j->n++] = at;
    }
    return 0;
}

void journal_free(struct journal *j)
{
    free(j->buf);
    free(j->rec);
    free(j->end);
    memset(j, 0, sizeof *j);
}

uint64_t journal_pos(const struct journal *j, size_t n)
{
    return n == 0 ? 0 : j->end[n - 1];
}

long journal_find(const struct journal *j, size_t n, enum pj_type type)
{
    for (size_t i = 0; i < n && i < j->n; i++)
        if (j->rec[i]->type == (uint32_t)type)
            return (long)i;
    return -1;
}

static int coin(uint64_t *rng)
{
    return (int)(tu_rng_next(rng) & 1);
}

/* Is the piece [at, at + len) of write record i durable at the moment
 * after n records, with lastsync the index of the last full flush? */
static int durable(const struct journal *j, size_t n, long lastsync, size_t i,
                   uint64_t at, uint64_t len)
{
    if ((j->rec[i]->flags & PJ_DURABLE) || (long)i < lastsync)
        return 1;
    for (size_t k = i + 1; k < n; k++) {
        const struct pj_rec *r = j->rec[k];

        if (r->type == PJ_RANGESYNC && r->off <= at &&
            at + len <= r->off + r->arg)
            return 1;
    }
    return 0;
}

struct img {
    unsigned char *b;
    uint64_t cap, size; /* size: of what survived */
};

/* Make room for size bytes (zeros where nothing was put). */
static int img_reserve(struct img *m, uint64_t size)
{
    uint64_t cap = m->cap ? m->cap : 1 << 20;
    unsigned char *b;

    if (size <= m->cap)
        return 0;
    while (cap < size)
        cap *= 2;
    b = realloc(m->b, cap);
    if (b == NULL)
        return -1;
    memset(b + m->cap, 0, cap - m->cap);
    m->b = b;
    m->cap = cap;
    return 0;
}

static int img_put(struct img *m, uint64_t at, const unsigned char *p,
                   uint64_t len)
{
    if (img_reserve(m, at + len) != 0)
        return -1;
    memcpy(m->b + at, p, len);
    if (at + len > m->size)
        m->size = at + len;
    return 0;
}

/* Replay the first n records into m; *now_size gets the file's size at
 * that moment. */
static int replay(const struct journal *j, size_t n, uint64_t *rng,
                  struct img *m, uint64_t *now_size, char *err, size_t cap)
{
    long lastsync = -1;

    for (size_t i = 0; i < n; i++)
        if (j->rec[i]->type == PJ_SYNC)
            lastsync = (long)i;
    *now_size = 0;
    for (size_t i = 0; i < n; i++) {
        const struct pj_rec *r = j->rec[i];
        const unsigned char *data = (const unsigned char *)(r + 1);
        uint64_t end = r->off + r->len;

        if (r->type == PJ_UNMODELLED)
            return ERR("the writer made a call the model cannot replay: "
                       "%.*s",
                       (int)r->len, (const char *)data);
        if (r->type == PJ_TRUNCATE) {
            *now_size = r->off;
            if ((long)i < lastsync || (rng != NULL && coin(rng))) {
                if (m->size > r->off && m->b != NULL)
                    memset(m->b + r->off, 0, m->size - r->off);
                m->size = r->off;
            }
            continue;
        }
        if (r->type != PJ_WRITE)
            continue;
        if (end > *now_size)
            *now_size = end;
        /* Pieces aligned in the file: [at, next multiple of PIECE). */
        for (uint64_t at = r->off; at < end;) {
            uint64_t stop = (at / PIECE + 1) * PIECE;
            uint64_t len = (stop < end ? stop : end) - at;

            if ((durable(j, n, lastsync, i, at, len) ||
                 (rng != NULL && coin(rng))) &&
                img_put(m, at, data + (at - r->off), len) != 0)
                return ERR("out of memory");
            at += len;
        }
    }
    return 0;
}

int image_write(const struct journal *j, size_t n, uint64_t *rng,
                const char *dir, char *err, size_t cap)
{
    struct img m = {NULL, 0, 0};
    long created = journal_find(j, n, PJ_CREATE), synced = -1;
    uint64_t now_size;
    char path[4096];
    int fd, rc;

    for (size_t i = created >= 0 ? (size_t)created : n; i < n; i++)
        if (j->rec[i]->type == PJ_DIRSYNC)
            synced = (long)i;
    /* The name: durable after a directory fsync that followed it. */
    if (created < 0 || (synced < 0 && (rng == NULL || !coin(rng))))
        return 0;
    rc = replay(j, n, rng, &m, &now_size, err, cap);
    /* By a coin, the size reached the disk and the data did not. */
    if (rc == 0 && rng != NULL && coin(rng) && now_size > m.size) {
        rc = img_reserve(&m, now_size) != 0 ? ERR("out of memory") : 0;
        m.size = now_size;
    }
    if (rc != 0) {
        free(m.b);
        return -1;
    }
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) {
        free(m.b);
        return ERR("%s: %s", path, strerror(errno));
    }
    rc = m.size == 0 || pwrite(fd, m.b, m.size, 0) == (ssize_t)m.size ? 0 : -1;
    close(fd);
    free(m.b);
    return rc == 0 ? 0 : ERR("%s: write failed", path);
}
