/*
 * wait.c -- waking watchers after a commit (DESIGN §8): etagkv_wait() for
 * threads, etagkv_notify_open() descriptors for event loops.
 *
 * commit.c calls ekv_notify_commit() right after a write transaction is
 * durable, before its writers are acknowledged.  That bumps a counter and
 * broadcasts; a waiter compares the counter it saw before reading the
 * store's revision, so a commit between its read and its sleep cannot be
 * missed, and nobody polls.  A waiter reads the revision itself (one read
 * transaction per wake-up) rather than trust a number passed around, so
 * the answer is always what a reader sees.
 *
 * Descriptors are eventfds: a write of 1 per commit adds to the counter,
 * which the loop resets by reading it.  A descriptor nobody reads
 * saturates and the write fails with EAGAIN, which is ignored: a commit is
 * never slowed by a watcher.
 */
#define _GNU_SOURCE /* eventfd flags */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

etagkv_status ekv_notify_init(struct ekv_notify *n)
{
    int ok = 0;

    if (pthread_mutex_init(&n->lock, NULL) != 0)
        return ETAGKV_NO_MEMORY;
    if (ekv_cond_init_mono(&n->cv) == 0) {
        ok = pthread_cond_init(&n->idle_cv, NULL) == 0;
        if (!ok)
            (void)pthread_cond_destroy(&n->cv);
    }
    if (!ok)
        (void)pthread_mutex_destroy(&n->lock);
    n->ready = ok;
    return ok ? ETAGKV_OK : ETAGKV_NO_MEMORY;
}

void ekv_notify_close(struct ekv_notify *n)
{
    if (!n->ready)
        return;
    (void)pthread_mutex_lock(&n->lock);
    n->closing = 1;
    (void)pthread_cond_broadcast(&n->cv);
    while (n->waiters > 0)
        (void)pthread_cond_wait(&n->idle_cv, &n->lock);
    for (size_t i = 0; i < n->n_fds; i++)
        (void)close(n->fds[i]);
    free(n->fds);
    n->fds = NULL;
    n->n_fds = n->cap_fds = 0;
    (void)pthread_mutex_unlock(&n->lock);
    (void)pthread_cond_destroy(&n->idle_cv);
    (void)pthread_cond_destroy(&n->cv);
    (void)pthread_mutex_destroy(&n->lock);
    n->ready = 0;
}

void ekv_notify_commit(struct ekv_notify *n)
{
    uint64_t one = 1;

    (void)pthread_mutex_lock(&n->lock);
    n->commits++;
    (void)pthread_cond_broadcast(&n->cv);
    for (size_t i = 0; i < n->n_fds; i++) {
        /* EAGAIN: the counter is saturated, the loop is awake anyway. */
        ssize_t w = write(n->fds[i], &one, sizeof(one));
        (void)w;
    }
    (void)pthread_mutex_unlock(&n->lock);
}

/* ---- etagkv_wait --------------------------------------------------------- */

static etagkv_status current_revision(etagkv_store *s, uint64_t *rev)
{
    ekv_txn txn;
    etagkv_status st = ekv_read_begin(s->env, &txn);

    if (st != ETAGKV_OK)
        return st;
    st = ekv_revision_get(&txn, rev);
    ekv_read_end(&txn);
    return st;
}

/* timeout_ms (>= 0) from now; past 30 years (and no overflow), 30 years. */
static struct timespec deadline_after(int64_t timeout_ms)
{
    uint64_t ms = (uint64_t)timeout_ms;

    if (ms > 1000000000000u)
        ms = 1000000000000u;
    return ekv_mono_deadline(ekv_mono_ns() + ms * 1000000u);
}

/* With n->lock held: sleep until the commit counter moves from seen, the
 * store closes or the deadline passes (ETAGKV_NOT_MODIFIED). */
static etagkv_status sleep_for_commit(struct ekv_notify *n, uint64_t seen,
                                      const struct timespec *deadline)
{
    while (n->commits == seen && !n->closing) {
        int rc = deadline != NULL
                     ? pthread_cond_timedwait(&n->cv, &n->lock, deadline)
                     : pthread_cond_wait(&n->cv, &n->lock);

        if (rc == ETIMEDOUT)
            return n->commits == seen && !n->closing ? ETAGKV_NOT_MODIFIED
                                                     : ETAGKV_OK;
    }
    return ETAGKV_OK;
}

etagkv_status etagkv_wait(etagkv_store *s, uint64_t after, int64_t timeout_ms,
                          uint64_t *revision_out)
{
    struct timespec deadline = {0, 0};
    uint64_t rev = 0, seen;
    etagkv_status st = ETAGKV_OK;

    ekv_clear_error();
    if (revision_out != NULL)
        *revision_out = 0;
    if (s == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    if (timeout_ms >= 0)
        deadline = deadline_after(timeout_ms);
    (void)pthread_mutex_lock(&s->notify.lock);
    s->notify.waiters++;
    while (st == ETAGKV_OK) {
        if (s->notify.closing) {
            st = ETAGKV_CLOSING;
            break;
        }
        seen = s->notify.commits;
        (void)pthread_mutex_unlock(&s->notify.lock);
        st = current_revision(s, &rev);
        (void)pthread_mutex_lock(&s->notify.lock);
        if (st != ETAGKV_OK || rev > after)
            break;
        st = sleep_for_commit(&s->notify, seen,
                              timeout_ms >= 0 ? &deadline : NULL);
    }
    if (--s->notify.waiters == 0 && s->notify.closing)
        (void)pthread_cond_signal(&s->notify.idle_cv);
    (void)pthread_mutex_unlock(&s->notify.lock);
    if (revision_out != NULL)
        *revision_out = rev;
    return st;
}

/* ---- descriptors for event loops ----------------------------------------- */

etagkv_status etagkv_notify_open(etagkv_store *s, int *fd_out)
{
    etagkv_status st = ETAGKV_OK;
    int fd;

    ekv_clear_error();
    if (fd_out != NULL)
        *fd_out = -1;
    if (s == NULL || fd_out == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return ekv_fail(ETAGKV_NO_MEMORY, "eventfd: %s", strerror(errno));
    (void)pthread_mutex_lock(&s->notify.lock);
    if (s->notify.closing) {
        st = ETAGKV_CLOSING;
    } else if (s->notify.n_fds == s->notify.cap_fds) {
        size_t cap = s->notify.cap_fds > 0 ? 2 * s->notify.cap_fds : 4;
        int *fds = realloc(s->notify.fds, cap * sizeof(*fds));

        if (fds == NULL) {
            st = ETAGKV_NO_MEMORY;
        } else {
            s->notify.fds = fds;
            s->notify.cap_fds = cap;
        }
    }
    if (st == ETAGKV_OK)
        s->notify.fds[s->notify.n_fds++] = fd;
    (void)pthread_mutex_unlock(&s->notify.lock);
    if (st != ETAGKV_OK) {
        (void)close(fd);
        return st;
    }
    *fd_out = fd;
    return ETAGKV_OK;
}

void etagkv_notify_close(etagkv_store *s, int fd)
{
    int found = 0;

    if (s == NULL)
        return;
    (void)pthread_mutex_lock(&s->notify.lock);
    for (size_t i = 0; i < s->notify.n_fds; i++) {
        if (s->notify.fds[i] == fd) {
            s->notify.fds[i] = s->notify.fds[--s->notify.n_fds];
            found = 1;
            break;
        }
    }
    (void)pthread_mutex_unlock(&s->notify.lock);
    if (found)
        (void)close(fd);
}
