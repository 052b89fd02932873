/*
 * etcd_table.c -- the etcd backend's tables (key prefixes, etcd_env.h) and
 * cursors over them.
 *
 * A cursor is a paginated Range over its table's prefix at the
 * transaction's revision, merged with the transaction's own buffered
 * writes: a put shows up in the walk, a delete hides the key, as an LMDB
 * cursor sees its own transaction's changes.  Every key a write
 * transaction's cursor hands up joins its read set, so a commit is
 * conditional on it as on a point read.
 */
#include <string.h>

#include "etcd_env.h"

#define PAGE_ITEMS 128

char ekv_etcd_table_letter(enum ekv_table table)
{
    switch (table) {
    case EKV_TABLE_RECORDS: return 'r';
    case EKV_TABLE_IDEMPOTENCY: return 'i';
    case EKV_TABLE_CHANGES: return 'c';
    case EKV_TABLE_LEASES: return 'l';
    }
    return 'r'; /* not reached: every table is listed */
}

/* ---- entries ----------------------------------------------------------------
 */

/* The entry under key in table letter: ETAGKV_OK with *v set, or
 * ETAGKV_NOT_FOUND. */
static etagkv_status entry_get(ekv_txn *txn, char letter, const void *key,
                               size_t key_len, ekv_val *v)
{
    const struct ekv_etcd_item *it;
    char *k;
    size_t k_len;
    etagkv_status st = ekv_etcd_key(txn, letter, key, key_len, &k, &k_len);

    if (st == ETAGKV_OK)
        st = ekv_etcd_lookup(txn, k, k_len, &it);
    if (st != ETAGKV_OK)
        return st;
    if (!it->present)
        return ETAGKV_NOT_FOUND;
    v->data = it->val;
    v->len = it->val_len;
    return ETAGKV_OK;
}

static etagkv_status entry_reserve(ekv_txn *txn, char letter, const void *key,
                                   size_t key_len, size_t bytes, void **dst)
{
    char *k;
    size_t k_len;
    etagkv_status st = ekv_etcd_key(txn, letter, key, key_len, &k, &k_len);

    return st == ETAGKV_OK ? ekv_etcd_put(txn, k, k_len, bytes, dst) : st;
}

/* Delete the entry under key; ETAGKV_NOT_FOUND when there is none. */
static etagkv_status entry_delete(ekv_txn *txn, char letter, const void *key,
                                  size_t key_len)
{
    const struct ekv_etcd_item *it;
    char *k;
    size_t k_len;
    etagkv_status st = ekv_etcd_key(txn, letter, key, key_len, &k, &k_len);

    if (st == ETAGKV_OK)
        st = ekv_etcd_lookup(txn, k, k_len, &it);
    if (st != ETAGKV_OK)
        return st;
    if (!it->present)
        return ETAGKV_NOT_FOUND;
    return ekv_etcd_delete(txn, k, k_len);
}

etagkv_status ekv_etcd_record_get(ekv_txn *txn, const void *key, size_t key_len,
                                  ekv_record *r)
{
    ekv_val v;
    etagkv_status st = entry_get(txn, 'r', key, key_len, &v);

    if (st != ETAGKV_OK)
        return st;
    if (ekv_record_decode(v.data, v.len, r) != ETAGKV_OK)
        return ekv_fail(ETAGKV_CORRUPT, "record of %zu bytes fails to decode",
                        v.len);
    return ETAGKV_OK;
}

etagkv_status ekv_etcd_record_reserve(ekv_txn *txn, const void *key,
                                      size_t key_len, size_t bytes, void **dst)
{
    return entry_reserve(txn, 'r', key, key_len, bytes, dst);
}

etagkv_status ekv_etcd_record_delete(ekv_txn *txn, const void *key,
                                     size_t key_len)
{
    return entry_delete(txn, 'r', key, key_len);
}

etagkv_status ekv_etcd_idem_entry_get(ekv_txn *txn, const void *key,
                                      size_t key_len, ekv_val *entry)
{
    return entry_get(txn, 'i', key, key_len, entry);
}

etagkv_status ekv_etcd_idem_entry_reserve(ekv_txn *txn, const void *key,
                                          size_t key_len, size_t bytes,
                                          void **dst)
{
    return entry_reserve(txn, 'i', key, key_len, bytes, dst);
}

etagkv_status ekv_etcd_change_reserve(ekv_txn *txn, const void *key,
                                      size_t key_len, size_t bytes, void **dst)
{
    return entry_reserve(txn, 'c', key, key_len, bytes, dst);
}

etagkv_status ekv_etcd_lease_entry_get(ekv_txn *txn, const void *key,
                                       size_t key_len, ekv_val *entry)
{
    return entry_get(txn, 'l', key, key_len, entry);
}

etagkv_status ekv_etcd_lease_entry_reserve(ekv_txn *txn, const void *key,
                                           size_t key_len, size_t bytes,
                                           void **dst)
{
    return entry_reserve(txn, 'l', key, key_len, bytes, dst);
}

etagkv_status ekv_etcd_lease_entry_delete(ekv_txn *txn, const void *key,
                                          size_t key_len)
{
    return entry_delete(txn, 'l', key, key_len);
}

/* ---- counters
 * ----------------------------------------------------------------- */

#define FLOOR_NAME "floor"

/* The counter `name` (absent: *n is 0, *found 0). */
static etagkv_status counter_get(ekv_txn *txn, const char *name, uint64_t *n,
                                 int *found)
{
    ekv_val v;
    etagkv_status st = entry_get(txn, EKV_ETCD_META, name, strlen(name), &v);

    *n = 0;
    *found = st == ETAGKV_OK;
    if (st == ETAGKV_NOT_FOUND)
        return ETAGKV_OK;
    if (st != ETAGKV_OK)
        return st;
    if (v.len != 8)
        return ekv_fail(ETAGKV_CORRUPT, "counter %s of %zu bytes", name, v.len);
    *n = ekv_get_le64(v.data);
    return ETAGKV_OK;
}

static etagkv_status counter_put(ekv_txn *txn, const char *name, uint64_t n)
{
    void *dst;
    etagkv_status st =
        entry_reserve(txn, EKV_ETCD_META, name, strlen(name), 8, &dst);

    if (st == ETAGKV_OK)
        ekv_put_le64(dst, n);
    return st;
}

etagkv_status ekv_etcd_revision_get(ekv_txn *txn, uint64_t *rev)
{
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);
    int found;
    etagkv_status st = counter_get(txn, EKV_ETCD_REVISION_NAME, rev, &found);

    if (st == ETAGKV_OK) {
        t->store_revision = *rev; /* bounds the change log's pages */
        t->store_revision_known = 1;
    }
    return st;
}

etagkv_status ekv_etcd_revision_put(ekv_txn *txn, uint64_t rev)
{
    return counter_put(txn, EKV_ETCD_REVISION_NAME, rev);
}

etagkv_status ekv_etcd_change_floor_get(ekv_txn *txn, uint64_t *floor)
{
    int found;
    etagkv_status st = counter_get(txn, FLOOR_NAME, floor, &found);

    if (st == ETAGKV_OK && !found) /* never written: see backend.h */
        st = ekv_etcd_revision_get(txn, floor);
    return st;
}

etagkv_status ekv_etcd_change_floor_put(ekv_txn *txn, uint64_t floor)
{
    return counter_put(txn, FLOOR_NAME, floor);
}

/* ---- counts
 * ------------------------------------------------------------------- */

/* The counter of a counted table's entries (etcd_env.h), or NULL for the
 * records, which only stats counts. */
static const char *counter_name(enum ekv_table table)
{
    switch (table) {
    case EKV_TABLE_IDEMPOTENCY: return "count/i";
    case EKV_TABLE_CHANGES: return "count/c";
    case EKV_TABLE_LEASES: return "count/l";
    case EKV_TABLE_RECORDS: return NULL;
    }
    return NULL;
}

static const enum ekv_table counted[] = {EKV_TABLE_IDEMPOTENCY,
                                         EKV_TABLE_CHANGES, EKV_TABLE_LEASES};
#define N_COUNTED (sizeof(counted) / sizeof(counted[0]))

etagkv_status ekv_etcd_prefetch_meta(ekv_txn *txn)
{
    etagkv_status st = ekv_etcd_prefetch_key(txn, EKV_ETCD_META, FLOOR_NAME);

    for (size_t i = 0; st == ETAGKV_OK && i < N_COUNTED; i++)
        st =
            ekv_etcd_prefetch_key(txn, EKV_ETCD_META, counter_name(counted[i]));
    return st;
}

/* t->counts[table]: the table's entries at the pinned revision, from its
 * counter (which joins the read set), or counted by etcd when there is
 * none -- a store written before the counters, or the records. */
static etagkv_status table_base(ekv_txn *txn, enum ekv_table table,
                                const char *start, size_t start_len,
                                const char *end)
{
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);
    const char *name = counter_name(table);
    struct ekv_etcd_item *items;
    uint64_t v = 0;
    size_t got;
    int more, found = 0;
    int64_t count;
    etagkv_status st = ETAGKV_OK;

    if (t->counts[table] >= 0)
        return ETAGKV_OK;
    if (name != NULL)
        st = counter_get(txn, name, &v, &found);
    if (st == ETAGKV_OK && found) {
        t->counts[table] = (int64_t)(v <= INT64_MAX ? v : INT64_MAX);
        return ETAGKV_OK;
    }
    if (st == ETAGKV_OK)
        st = ekv_etcd_range(txn, start, start_len, end, start_len, 0, 1, &items,
                            &got, &more, &count);
    if (st == ETAGKV_OK) {
        t->counts[table] = count > 0 ? count : 0; /* never below 0 */
        t->uncounted[table] = name != NULL;
    }
    return st;
}

/* The change the transaction's writes make to table's entries (*delta),
 * and in t->counts[table] what it had before them.  With learn (before the
 * commit), first find out whether each key written was there
 * (ekv_etcd_learn(); a change log entry is new, backend.h), and skip the
 * count when the writes change nothing and the table has its counter. */
static etagkv_status table_figures(ekv_txn *txn, enum ekv_table table,
                                   int learn, int64_t *delta)
{
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);
    char *start, *end;
    size_t start_len;
    etagkv_status st =
        ekv_etcd_table_bounds(txn, table, &start, &end, &start_len);

    if (st == ETAGKV_OK && learn)
        st = ekv_etcd_learn(txn, start, start_len, table == EKV_TABLE_CHANGES);
    if (st != ETAGKV_OK)
        return st;
    *delta = ekv_etcd_write_delta(t, start, start_len);
    if (learn && *delta == 0 && !t->uncounted[table])
        return ETAGKV_OK;
    return table_base(txn, table, start, start_len, end);
}

/* count + delta, within [0, INT64_MAX]: a counter read from etcd may be
 * anything up to INT64_MAX (table_base), and must not overflow. */
static uint64_t count_plus(int64_t count, int64_t delta)
{
    if (delta > 0 && count > INT64_MAX - delta)
        return INT64_MAX;
    return count + delta > 0 ? (uint64_t)(count + delta) : 0;
}

etagkv_status ekv_etcd_table_count(ekv_txn *txn, enum ekv_table table,
                                   uint64_t *n)
{
    int64_t delta = 0;
    etagkv_status st = table_figures(txn, table, 0, &delta);

    /* Exact for the keys the transaction read before replacing or
     * deleting them, as every caller does; the commit makes sure of the
     * rest. */
    *n = st == ETAGKV_OK
             ? count_plus(ekv_etcd_txn_of(txn)->counts[table], delta)
             : 0;
    return st;
}

/* Before the commit: write table's counter when the writes change the
 * count, or when the table had none. */
static etagkv_status counter_update(ekv_txn *txn, enum ekv_table table)
{
    const struct ekv_etcd_txn *t = ekv_etcd_txn_of(txn);
    int64_t delta = 0;
    etagkv_status st = table_figures(txn, table, 1, &delta);

    if (st != ETAGKV_OK || (delta == 0 && !t->uncounted[table]))
        return st;
    return counter_put(txn, counter_name(table),
                       count_plus(t->counts[table], delta));
}

etagkv_status ekv_etcd_counters_update(ekv_txn *txn)
{
    etagkv_status st = ETAGKV_OK;

    for (size_t i = 0; st == ETAGKV_OK && i < N_COUNTED; i++)
        st = counter_update(txn, counted[i]);
    return st;
}

etagkv_status ekv_etcd_counters_zero(ekv_txn *txn)
{
    etagkv_status st = ETAGKV_OK;

    for (size_t i = 0; st == ETAGKV_OK && i < N_COUNTED; i++)
        st = counter_put(txn, counter_name(counted[i]), 0);
    return st;
}

etagkv_status ekv_etcd_idem_entry_count(ekv_txn *txn, uint64_t *n)
{
    return ekv_etcd_table_count(txn, EKV_TABLE_IDEMPOTENCY, n);
}

etagkv_status ekv_etcd_change_count(ekv_txn *txn, uint64_t *n)
{
    return ekv_etcd_table_count(txn, EKV_TABLE_CHANGES, n);
}

etagkv_status ekv_etcd_lease_entry_count(ekv_txn *txn, uint64_t *n)
{
    return ekv_etcd_table_count(txn, EKV_TABLE_LEASES, n);
}

/* ---- cursors
 * ------------------------------------------------------------------ */

struct etcd_cursor {
    char *start, *end; /* the table's keys: [start, end) */
    size_t start_len, end_len;
    /* The last page read from etcd: every key of the table from page_from
     * up to its last item (to end when !more), in order. */
    struct ekv_etcd_item *page;
    size_t n;
    int more, valid;
    char *page_from;
    size_t page_from_len;
    /* The page's own end, before the table's, or NULL: the page holds
     * every key below it (a hint's page that etcd did not cut short, or a
     * window of the change log, below). */
    const char *bound;
    size_t bound_len;
    int changes; /* a cursor over the change log */
    /* The key of the entry the cursor is on (transaction memory, which
     * outlives the sets' arrays), or NULL. */
    const char *at;
    size_t at_len;
};

static int key_less(const char *a, size_t a_len, const char *b, size_t b_len)
{
    int c = memcmp(a, b, a_len < b_len ? a_len : b_len);

    return c < 0 || (c == 0 && a_len < b_len);
}

/* The first key after k: k + "\0", in transaction memory. */
static char *key_after(struct ekv_etcd_txn *t, const char *k, size_t k_len)
{
    char *a = ekv_etcd_alloc(t, k_len + 1);

    if (a != NULL) {
        memcpy(a, k, k_len);
        a[k_len] = '\0';
    }
    return a;
}

/* The end of the change log's window from `from`: the key of the
 * revision PAGE_ITEMS after from's (transaction memory), or NULL when the
 * window would reach past the store revision the transaction read (or it
 * read none): then the table's end is as near.
 *
 * etcd answers a Range by walking every key from its start to its
 * range_end in its index, whatever the limit (docs/design.md, "Counts are
 * counters"), so a page of the log read up to the table's end costs etcd
 * the whole rest of the log: reading 1,024 revisions back, the 412's
 * diagnosis (diagnose.c) cost etcd ~10 ms per refusal.  Every revision
 * above the floor has an event, so a window of PAGE_ITEMS revisions holds
 * a page's PAGE_ITEMS events (more when transactions wrote many keys:
 * then etcd cuts it short, and the next page starts after its last key),
 * and etcd walks only them. */
static char *window_end(ekv_cursor *cur, const char *from, size_t from_len,
                        size_t *end_len)
{
    const struct etcd_cursor *c = cur->handle;
    const struct ekv_etcd_txn *t = ekv_etcd_txn_of(cur->txn);
    uint64_t rev = 0;
    char *end;

    if (!c->changes || !t->store_revision_known || from_len < c->start_len + 8)
        return NULL;
    for (size_t i = 0; i < 8; i++)
        rev = rev << 8 | (uint8_t)from[c->start_len + i];
    if (rev > UINT64_MAX - PAGE_ITEMS || rev + PAGE_ITEMS > t->store_revision)
        return NULL;
    rev += PAGE_ITEMS;
    *end_len = c->start_len + 8;
    end = ekv_etcd_alloc(ekv_etcd_txn_of(cur->txn), *end_len);
    if (end != NULL) {
        memcpy(end, c->start, c->start_len);
        for (size_t i = 0; i < 8; i++)
            end[c->start_len + i] = (char)(uint8_t)(rev >> (56 - 8 * i));
    }
    return end;
}

/* Read the page of etcd's entries from `from` on: the one the first read
 * fetched on a hint (ekv_etcd_prefetch()), else from etcd: a window of
 * the change log, or up to the table's end. */
static etagkv_status fetch(ekv_cursor *cur, char *from, size_t from_len)
{
    struct etcd_cursor *c = cur->handle;
    const struct ekv_etcd_hint *h = NULL;
    int64_t count;
    size_t end_len = 0;
    char *end;
    etagkv_status st = ekv_etcd_page(cur->txn, from, from_len, &h);

    if (st != ETAGKV_OK)
        return st;
    c->bound = NULL;
    if (h != NULL) {
        c->page = h->page;
        c->n = h->n;
        /* A page below an end of its own: the table may go on.  Cut short
         * by its limit, it does not hold every key below that end. */
        c->more = h->more || h->end != NULL;
        if (!h->more) {
            c->bound = h->end;
            c->bound_len = h->end_len;
        }
    } else if ((end = window_end(cur, from, from_len, &end_len)) != NULL) {
        st = ekv_etcd_range(cur->txn, from, from_len, end, end_len, PAGE_ITEMS,
                            0, &c->page, &c->n, &c->more, &count);
        if (st == ETAGKV_OK && c->n == 0 && !c->more) {
            /* A gap of a whole window (the log seeked below its floor,
             * say): one read to the table's end finds where it goes on. */
            st = ekv_etcd_range(cur->txn, from, from_len, c->end, c->end_len,
                                PAGE_ITEMS, 0, &c->page, &c->n, &c->more,
                                &count);
        } else if (st == ETAGKV_OK && !c->more) {
            c->more = 1; /* the log goes on past the window */
            c->bound = end;
            c->bound_len = end_len;
        }
    } else {
        st = ekv_etcd_range(cur->txn, from, from_len, c->end, c->end_len,
                            PAGE_ITEMS, 0, &c->page, &c->n, &c->more, &count);
    }

    c->valid = st == ETAGKV_OK;
    c->page_from = from;
    c->page_from_len = from_len;
    return st;
}

/* Has the transaction a buffered write of its key? */
static int own_write(const struct ekv_etcd_txn *t,
                     const struct ekv_etcd_item *it)
{
    size_t w = ekv_etcd_set_find(&t->writes, it->key, it->key_len, 1);

    return w < t->writes.n && t->writes.v[w].key_len == it->key_len &&
           memcmp(t->writes.v[w].key, it->key, it->key_len) == 0;
}

/* In *it, etcd's first entry with key >= from (> from unless inclusive)
 * that the transaction has not overwritten or deleted; NULL past the
 * end. */
static etagkv_status etcd_candidate(ekv_cursor *cur, const char *from,
                                    size_t from_len, int inclusive,
                                    const struct ekv_etcd_item **it)
{
    struct etcd_cursor *c = cur->handle;
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(cur->txn);
    etagkv_status st = ETAGKV_OK;

    for (;;) {
        size_t i = 0;

        if (!c->valid ||
            key_less(from, from_len, c->page_from, c->page_from_len)) {
            char *f = inclusive ? (char *)from : key_after(t, from, from_len);

            if (f == NULL)
                return ETAGKV_NO_MEMORY;
            st = fetch(cur, f, inclusive ? from_len : from_len + 1);
            if (st != ETAGKV_OK)
                return st;
        }
        while (i < c->n &&
               (key_less(c->page[i].key, c->page[i].key_len, from, from_len) ||
                (!inclusive && c->page[i].key_len == from_len &&
                 memcmp(c->page[i].key, from, from_len) == 0)))
            i++;
        if (i == c->n && c->more) {
            /* Read on from `from`, past this page -- or from its own end,
             * below which it holds every entry. */
            if (c->bound != NULL &&
                key_less(from, from_len, c->bound, c->bound_len)) {
                from = c->bound;
                from_len = c->bound_len;
                inclusive = 1;
            }
            c->valid = 0;
            continue;
        }
        *it = i < c->n ? &c->page[i] : NULL;
        if (*it == NULL || !own_write(t, *it))
            return ETAGKV_OK;
        /* Shadowed by the transaction's own write: the write set has it. */
        from = (*it)->key;
        from_len = (*it)->key_len;
        inclusive = 0;
    }
}

/* The transaction's first buffered put in the table with key >= from (>
 * unless inclusive), or NULL. */
static const struct ekv_etcd_item *
own_candidate(ekv_cursor *cur, const char *from, size_t from_len, int inclusive)
{
    struct etcd_cursor *c = cur->handle;
    const struct ekv_etcd_set *w = &ekv_etcd_txn_of(cur->txn)->writes;

    for (size_t i = ekv_etcd_set_find(w, from, from_len, inclusive); i < w->n;
         i++) {
        if (!key_less(w->v[i].key, w->v[i].key_len, c->end, c->end_len))
            return NULL;
        if (w->v[i].present)
            return &w->v[i];
    }
    return NULL;
}

/* Move to the first entry >= from (> unless inclusive). */
static etagkv_status move(ekv_cursor *cur, const char *from, size_t from_len,
                          int inclusive, ekv_val *k, ekv_val *v)
{
    struct etcd_cursor *c = cur->handle;
    struct ekv_etcd_txn *t = ekv_etcd_txn_of(cur->txn);
    const struct ekv_etcd_item *e = NULL, *o;
    etagkv_status st = etcd_candidate(cur, from, from_len, inclusive, &e);

    if (st != ETAGKV_OK)
        return st;
    o = own_candidate(cur, from, from_len, inclusive);
    if (o != NULL &&
        (e == NULL || key_less(o->key, o->key_len, e->key, e->key_len)))
        e = o;
    else if (e != NULL && t->write)
        st = ekv_etcd_remember(t, e); /* the commit depends on it */
    c->at = e != NULL ? e->key : NULL;
    c->at_len = e != NULL ? e->key_len : 0;
    if (st != ETAGKV_OK)
        return st;
    if (e == NULL)
        return ETAGKV_NOT_FOUND;
    k->data = e->key + c->start_len;
    k->len = e->key_len - c->start_len;
    v->data = e->val;
    v->len = e->val_len;
    return ETAGKV_OK;
}

etagkv_status ekv_etcd_cursor_open(ekv_txn *txn, enum ekv_table table,
                                   ekv_cursor *cur)
{
    struct etcd_cursor *c =
        ekv_etcd_alloc(ekv_etcd_txn_of(txn), sizeof(struct etcd_cursor));
    etagkv_status st;

    if (c == NULL)
        return ETAGKV_NO_MEMORY;
    memset(c, 0, sizeof(*c));
    st = ekv_etcd_table_bounds(txn, table, &c->start, &c->end, &c->start_len);
    c->end_len = c->start_len;
    c->changes = table == EKV_TABLE_CHANGES;
    if (st != ETAGKV_OK)
        return st;
    cur->txn = txn;
    cur->handle = c;
    return ETAGKV_OK;
}

void ekv_etcd_cursor_close(ekv_cursor *cur)
{
    (void)cur; /* its memory is the transaction's */
}

etagkv_status ekv_etcd_cursor_seek(ekv_cursor *cur, const void *key,
                                   size_t key_len, ekv_val *k, ekv_val *v)
{
    struct etcd_cursor *c = cur->handle;
    char *from =
        ekv_etcd_alloc(ekv_etcd_txn_of(cur->txn), c->start_len + key_len);

    if (from == NULL)
        return ETAGKV_NO_MEMORY;
    memcpy(from, c->start, c->start_len);
    if (key_len > 0)
        memcpy(from + c->start_len, key, key_len);
    return move(cur, from, c->start_len + key_len, 1, k, v);
}

etagkv_status ekv_etcd_cursor_next(ekv_cursor *cur, ekv_val *k, ekv_val *v)
{
    struct etcd_cursor *c = cur->handle;

    if (c->at == NULL)
        return ETAGKV_NOT_FOUND;
    return move(cur, c->at, c->at_len, 0, k, v);
}

etagkv_status ekv_etcd_cursor_delete(ekv_cursor *cur)
{
    struct etcd_cursor *c = cur->handle;

    if (c->at == NULL)
        return ekv_fail(ETAGKV_INTERNAL, "cursor delete with no entry");
    return ekv_etcd_delete(cur->txn, c->at, c->at_len);
}
