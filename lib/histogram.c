/*
 * histogram.c -- fixed-bucket histograms that threads update without a
 * lock (the group commit's figures, etagkv_store_commit_stats()).
 *
 * An observation is two relaxed atomic additions, a bucket and the sum:
 * observers never wait for each other or for a reader.  A reader takes
 * each counter in turn, so while observations go on it may see one in its
 * bucket and not yet in the sum; Prometheus tolerates that, and nothing
 * here needs more.
 */
#include <string.h>

#include "internal.h"

void ekv_hist_init(struct ekv_hist *h, const uint64_t *le, size_t bounds)
{
    h->le = le;
    h->bounds =
        bounds < ETAGKV_HISTOGRAM_BOUNDS ? bounds : ETAGKV_HISTOGRAM_BOUNDS;
    for (size_t i = 0; i <= ETAGKV_HISTOGRAM_BOUNDS; i++)
        atomic_init(&h->count[i], 0);
    atomic_init(&h->sum, 0);
}

void ekv_hist_observe(struct ekv_hist *h, uint64_t v)
{
    size_t b = 0;

    /* At most 16 bounds: a linear scan costs less than the branches of a
     * binary search would save. */
    while (b < h->bounds && v > h->le[b])
        b++;
    atomic_fetch_add_explicit(&h->count[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

void ekv_hist_read(struct ekv_hist *h, etagkv_histogram *out)
{
    memset(out, 0, sizeof(*out));
    out->bounds = h->bounds;
    for (size_t i = 0; i < h->bounds; i++)
        out->le[i] = h->le[i];
    for (size_t i = 0; i <= h->bounds; i++)
        out->count[i] =
            atomic_load_explicit(&h->count[i], memory_order_relaxed);
    out->sum = atomic_load_explicit(&h->sum, memory_order_relaxed);
}
