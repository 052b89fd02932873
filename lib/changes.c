/*
 * changes.c -- the change log (DESIGN §8): its entries' layout, the append
 * that every write makes in its own transaction, the trim that keeps the
 * window bounded, and etagkv_changes() that reads it.
 *
 * An entry's key is the revision and, within it, a sequence number, both
 * big-endian, so that the table's key order is commit order and the events
 * of one transaction stay together in the order it wrote them:
 *
 *   0  u64 BE  revision
 *   8  u32 BE  sequence within the revision (0, 1, ...)
 *
 * Its value, version 1, integers little-endian as in record.c:
 *
 *   0  u8   format version (1)
 *   1  u8   type (1 put, 2 delete)
 *   2  u16  key length
 *   4  u32  reserved (0)
 *   8  u64  create_revision (delete: 0)
 *  16  u64  version (delete: 0)
 *  24  u64  modified_ns (delete: the wall clock of the delete)
 *  32  u64  logged_ns: the wall clock at the write, for retention
 *  40  16B  XXH3-128 of the value (delete: zeros)
 *  56       the key bytes
 *
 * Trimming deletes the oldest entries a few per write transaction and
 * raises the floor (backend.h) to the highest revision it trimmed; a read
 * after a revision below the floor is ETAGKV_COMPACTED, never a silent gap.
 */
#include <string.h>

#include "store.h"

#define CHANGE_FORMAT 1
#define CHANGE_KEY_BYTES 12
#define CHANGE_HEADER_BYTES 56
#define CHANGE_PUT 1
#define CHANGE_DELETE 2
/* Events a transaction may trim beyond those it appended, so that a log
 * over its bounds (after the options were lowered) shrinks steadily. */
#define TRIM_EXTRA 16
/* ... at most, on an engine whose every read is a round trip (etcd),
 * where a transaction that trims cannot commit without its read (the
 * page of the log it deletes): the slack goes in a few commits of many
 * events rather than many of a few.  As many as the commit has room for
 * (ekv_write_room(): etcd refuses a Txn of more operations than its
 * --max-txn-ops), and never fewer than TRIM_EXTRA, as before the room
 * was looked at. */
#define TRIM_EXTRA_REMOTE 64
/* The trim does not run on every commit: deleting the log's oldest event
 * copies the pages on the path to it, a second path through the log
 * besides the append's, in every transaction (3,000 of a nosync put's
 * 29,000 instructions, and its page writes).  The log may grow past
 * changes_max_events by a slack, then one commit trims it back: at most
 * 256 events more, some tens of microseconds, every 256 commits (on etcd,
 * the commits that follow, a few events each: ekv_changes_trim()). */
#define TRIM_SLACK_MAX 256

/* Events the log may hold beyond changes_max_events before a trim is due:
 * max / 64, at most 256 (0 below 64 events). */
static uint64_t changes_slack(uint64_t max_events)
{
    uint64_t slack = max_events / 64;

    return slack < TRIM_SLACK_MAX ? slack : TRIM_SLACK_MAX;
}

/* Events a trim may delete beyond the `appended` of txn, whose other
 * writes are buffered (TRIM_EXTRA_REMOTE); txn NULL: the most it may. */
static size_t trim_extra(const etagkv_store *s, ekv_txn *txn, size_t appended)
{
    size_t room;

    if (!ekv_env_remote(s->env) || s->changes.trim_tight)
        return TRIM_EXTRA;
    if (txn == NULL)
        return TRIM_EXTRA_REMOTE;
    /* The deletes, and the floor's put. */
    room = ekv_write_room(txn);
    if (room < appended + 1 + TRIM_EXTRA)
        return TRIM_EXTRA;
    room -= appended + 1;
    return room < TRIM_EXTRA_REMOTE ? room : TRIM_EXTRA_REMOTE;
}

static void change_key(uint8_t out[CHANGE_KEY_BYTES], uint64_t rev,
                       uint32_t seq)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(rev >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        out[8 + i] = (uint8_t)(seq >> (24 - 8 * i));
}

static uint64_t change_key_rev(const uint8_t *k)
{
    uint64_t rev = 0;

    for (int i = 0; i < 8; i++)
        rev = rev << 8 | k[i];
    return rev;
}

/* Decode the entry (k, v) into *ev (ev->key points into v), all but the
 * ETag text (change_etag()).  *logged_ns may be NULL.  ETAGKV_OK or
 * ETAGKV_CORRUPT. */
static etagkv_status change_decode(const ekv_val *k, const ekv_val *v,
                                   etagkv_event *ev, uint64_t *logged_ns)
{
    const uint8_t *p = v->data;
    size_t key_len;

    if (k->len != CHANGE_KEY_BYTES || v->len < CHANGE_HEADER_BYTES ||
        p[0] != CHANGE_FORMAT || (p[1] != CHANGE_PUT && p[1] != CHANGE_DELETE))
        return ekv_fail(ETAGKV_CORRUPT, "change log entry fails to decode");
    key_len = ekv_get_le16(p + 2);
    if (key_len == 0 || key_len > ETAGKV_KEY_MAX ||
        v->len != CHANGE_HEADER_BYTES + key_len)
        return ekv_fail(ETAGKV_CORRUPT, "change log entry of bad length");
    memset(ev, 0, sizeof(*ev));
    ev->type = p[1] == CHANGE_PUT ? ETAGKV_EVENT_PUT : ETAGKV_EVENT_DELETE;
    ev->revision = ev->mod_revision = change_key_rev(k->data);
    ev->key = p + CHANGE_HEADER_BYTES;
    ev->key_len = key_len;
    ev->create_revision = ekv_get_le64(p + 8);
    ev->version = ekv_get_le64(p + 16);
    ev->modified_ns = ekv_get_le64(p + 24);
    if (logged_ns != NULL)
        *logged_ns = ekv_get_le64(p + 32);
    return ETAGKV_OK;
}

/* The ETag of a decoded put, formatted only for the events that a reader
 * is given: a read filtered by key walks every event of the window, and
 * formatting each one's ETag cost more than the walk. */
static void change_etag(const ekv_val *v, etagkv_event *ev)
{
    if (ev->type == ETAGKV_EVENT_PUT)
        ekv_etag_format((const uint8_t *)v->data + 40, ev->etag);
}

/* ---- inside a write transaction ------------------------------------------ */

void ekv_changes_begin(etagkv_store *s)
{
    s->changes.rev = 0;
    s->changes.seq = 0;
    s->changes.appended = 0;
    s->changes.trim_wide = 0;
    s->changes.aging_ns =
        atomic_load_explicit(&s->changes.aged_at_ns, memory_order_relaxed);
    s->changes.next_seen =
        atomic_load_explicit(&s->changes.seen, memory_order_relaxed);
    s->changes.next_count =
        atomic_load_explicit(&s->changes.count_seen, memory_order_relaxed);
    s->changes.next_floor =
        atomic_load_explicit(&s->changes.floor_seen, memory_order_relaxed);
}

void ekv_changes_pending(const etagkv_store *s, struct ekv_changes_view *v)
{
    v->aged_at_ns = s->changes.aging_ns;
    v->seen = s->changes.next_seen;
    v->count = s->changes.next_count;
    v->floor = s->changes.next_floor;
}

/* Two writers' publications may land in either order (each after its
 * own commit, outside the writer lock): an older view then replaces a
 * newer one.  Harmless: the log's start only moves forward, so an older
 * view's age is a lower bound (an extra look) and its count and floor
 * only a worse guess (an extra read). */
void ekv_changes_committed(etagkv_store *s, const struct ekv_changes_view *v)
{
    atomic_store_explicit(&s->changes.aged_at_ns, v->aged_at_ns,
                          memory_order_relaxed);
    atomic_store_explicit(&s->changes.seen, v->seen, memory_order_relaxed);
    atomic_store_explicit(&s->changes.count_seen, v->count,
                          memory_order_relaxed);
    atomic_store_explicit(&s->changes.floor_seen, v->floor,
                          memory_order_relaxed);
}

etagkv_status ekv_changes_append(etagkv_store *s, ekv_txn *txn, const void *key,
                                 size_t key_len, const etagkv_meta *meta,
                                 const uint8_t hash[EKV_HASH_BYTES])
{
    uint8_t k[CHANGE_KEY_BYTES];
    uint8_t *p;
    void *dst;
    uint64_t now = ekv_now_ns(s);
    etagkv_status st;

    if (meta->mod_revision != s->changes.rev) {
        s->changes.rev = meta->mod_revision;
        s->changes.seq = 0;
    }
    change_key(k, s->changes.rev, s->changes.seq);
    st = ekv_change_reserve(txn, k, sizeof(k), CHANGE_HEADER_BYTES + key_len,
                            &dst);
    if (st != ETAGKV_OK)
        return st;
    s->changes.seq++;
    s->changes.appended++;
    p = dst;
    memset(p, 0, CHANGE_HEADER_BYTES);
    p[0] = CHANGE_FORMAT;
    p[1] = meta->exists ? CHANGE_PUT : CHANGE_DELETE;
    ekv_put_le16(p + 2, (uint16_t)key_len);
    if (meta->exists) {
        ekv_put_le64(p + 8, meta->create_revision);
        ekv_put_le64(p + 16, meta->version);
        ekv_put_le64(p + 24, meta->modified_ns);
        memcpy(p + 40, hash, EKV_HASH_BYTES);
    } else {
        ekv_put_le64(p + 24, now);
    }
    ekv_put_le64(p + 32, now);
    memcpy(p + CHANGE_HEADER_BYTES, key, key_len);
    if (s->waiting.head != NULL)
        ekv_waiting_touch(s, key, key_len); /* apply.c: waiting writes */
    return ETAGKV_OK;
}

/* Announce the trim's page (ekv_prefetch()): from the floor's first key,
 * the budget of events the trim may look at after appending `appended`
 * (with the slack when by_count) and the next one.  Every revision above
 * the floor has an event, so they lie below the floor + look + 1: an
 * engine that walks a range to its end (etcd) walks no further. */
static etagkv_status trim_page(etagkv_store *s, ekv_txn *txn, uint64_t floor,
                               size_t appended, int by_count)
{
    uint8_t from[CHANGE_KEY_BYTES], to[CHANGE_KEY_BYTES];
    size_t look = appended + trim_extra(s, NULL, appended) + 1 +
                  (by_count && !ekv_env_remote(s->env)
                       ? (size_t)changes_slack(s->opts.changes_max_events)
                       : 0);

    change_key(from, floor, 0);
    change_key(to, floor + look + 1, 0);
    return ekv_prefetch(txn, EKV_TABLE_CHANGES, from, sizeof(from), to,
                        sizeof(to), look);
}

/* changes_retention_s in ns, saturated: a retention of centuries (as
 * "keep by count only") must not wrap to a window of a fraction of a
 * second. */
/* Is the oldest entry (k, v) to go?  *rev gets its revision, *logged_out
 * when it was logged. */
static etagkv_status trim_due(etagkv_store *s, const ekv_val *k,
                              const ekv_val *v, uint64_t count, uint64_t now,
                              int *due, uint64_t *rev, uint64_t *logged_out)
{
    etagkv_event ev;
    uint64_t logged_ns = 0, age_ns = ekv_s_to_ns(s->opts.changes_retention_s);
    etagkv_status st = change_decode(k, v, &ev, &logged_ns);

    if (st != ETAGKV_OK)
        return st;
    *rev = change_key_rev(k->data); /* ev.revision, which gcc -O3 thinks
                                       might be unset */
    *due = count > s->opts.changes_max_events ||
           (now > age_ns && logged_ns < now - age_ns);
    *logged_out = logged_ns;
    return ETAGKV_OK;
}

etagkv_status ekv_changes_trim(etagkv_store *s, ekv_txn *txn, size_t appended)
{
    ekv_cursor cur;
    ekv_val k, v;
    uint8_t start[CHANGE_KEY_BYTES];
    uint64_t count, rev = 0, floor = 0, now = ekv_now_ns(s);
    uint64_t max = s->opts.changes_max_events, slack = changes_slack(max),
             age_ns = ekv_s_to_ns(s->opts.changes_retention_s);
    /* On etcd every event trimmed is a delete in the commit's Txn: the
     * slack's, all in one commit, would pass etcd's default --max-txn-ops
     * (128) and be refused on every try.  There the commits that follow
     * trim it some each: a loop that ends on its budget leaves aging_ns
     * 0, so the next commit trims on. */
    size_t extra = trim_extra(s, txn, appended);
    size_t budget =
        appended + extra + (ekv_env_remote(s->env) ? 0 : (size_t)slack);
    int due = 1;
    etagkv_status st = ekv_change_count(txn, &count);

    if (st != ETAGKV_OK)
        return st;
    s->changes.trim_wide = ekv_env_remote(s->env) && extra > TRIM_EXTRA;
    s->changes.next_seen = 1;
    s->changes.next_count = count;
    /* Nothing to do by count, and the oldest event (as last seen) not of
     * age yet: leave the log's start alone (TRIM_SLACK_MAX). */
    if (count <= max + slack && s->changes.aging_ns != 0 &&
        now < s->changes.aging_ns)
        return ETAGKV_OK;
    /* The log starts at the floor: every event below it was trimmed
     * (those of the floor's revision itself maybe not all).  Seeking there
     * instead of at the table's first key lets an engine read a bounded
     * range (ekv_changes_prefetch()). */
    st = ekv_change_floor_get(txn, &s->changes.next_floor);
    if (st == ETAGKV_OK)
        st = trim_page(s, txn, s->changes.next_floor, appended,
                       count > max + slack);
    if (st == ETAGKV_OK)
        st = ekv_cursor_open(txn, EKV_TABLE_CHANGES, &cur);
    if (st != ETAGKV_OK)
        return st;
    s->changes.aging_ns = 0;
    change_key(start, s->changes.next_floor, 0);
    st = ekv_cursor_seek(&cur, start, sizeof(start), &k, &v);
    for (; st == ETAGKV_OK && budget > 0; budget--) {
        uint64_t logged_ns = 0;

        st = trim_due(s, &k, &v, count, now, &due, &rev, &logged_ns);
        if (st != ETAGKV_OK)
            break;
        if (!due) {
            /* The oldest event left: the trim has nothing to do before
             * it comes of age, unless the count grows past the slack. */
            uint64_t of_age = logged_ns > UINT64_MAX - age_ns
                                  ? UINT64_MAX
                                  : logged_ns + age_ns;

            s->changes.aging_ns = of_age > now ? of_age : 0;
            break;
        }
        st = ekv_cursor_delete(&cur);
        if (st != ETAGKV_OK)
            break;
        floor = rev;
        count--;
        st = ekv_cursor_next(&cur, &k, &v);
    }
    ekv_cursor_close(&cur);
    if (st == ETAGKV_NOT_FOUND)
        st = ETAGKV_OK;
    if (st == ETAGKV_OK && floor > 0)
        st = ekv_change_floor_put(txn, floor);
    if (floor > 0)
        s->changes.next_floor = floor;
    s->changes.next_count = count;
    return st;
}

etagkv_status ekv_changes_prefetch(etagkv_store *s, ekv_txn *txn,
                                   size_t appended)
{
    uint64_t max = s->opts.changes_max_events, slack = changes_slack(max);
    uint64_t now = ekv_now_ns(s);
    uint64_t aged_at =
        atomic_load_explicit(&s->changes.aged_at_ns, memory_order_relaxed);
    int by_count =
        atomic_load_explicit(&s->changes.count_seen, memory_order_relaxed) +
            appended >
        max + slack;

    /* Unknown (the handle's first commit), or nothing due by count or age
     * as the last commit left the log: the trim reads what it needs, if
     * anything (it announces its page again once it knows the floor). */
    if (!atomic_load_explicit(&s->changes.seen, memory_order_relaxed) ||
        (!by_count && aged_at != 0 && now < aged_at))
        return ETAGKV_OK;
    return trim_page(
        s, txn,
        atomic_load_explicit(&s->changes.floor_seen, memory_order_relaxed),
        appended, by_count);
}

/* ---- reading ------------------------------------------------------------- */

struct changes_read {
    const void *prefix;
    size_t prefix_len;
    int exact;
    size_t limit;
    uint64_t upto; /* the last revision walked (0: to the end) */
    etagkv_event_fn fn;
    void *ctx;
    etagkv_changes_page *page;
};

static int matches(const struct changes_read *q, const etagkv_event *ev)
{
    if (q->exact && ev->key_len != q->prefix_len)
        return 0;
    return ev->key_len >= q->prefix_len &&
           (q->prefix_len == 0 ||
            memcmp(ev->key, q->prefix, q->prefix_len) == 0);
}

/* Walk the log from the first event after `after`, filling q->page.  Once
 * limit events were passed, the rest of that revision still is.  With a
 * limit, at most about ETAGKV_CHANGES_SCAN_MAX events are looked at,
 * matching or not, so that a page for a rare key far behind costs a
 * bounded read (on etcd, a bounded number of Ranges), not the whole
 * window: past the bound the walk stops at the next revision boundary,
 * more = 1 and next the last revision looked at in full. */
static etagkv_status changes_walk(ekv_cursor *cur, uint64_t after,
                                  struct changes_read *q)
{
    uint8_t start[CHANGE_KEY_BYTES];
    ekv_val k, v;
    etagkv_event ev;
    uint64_t stop_rev = 0, last_rev = 0;
    size_t scanned = 0;
    etagkv_status st;

    change_key(start, after + 1, 0);
    for (st = ekv_cursor_seek(cur, start, sizeof(start), &k, &v);
         st == ETAGKV_OK; st = ekv_cursor_next(cur, &k, &v)) {
        st = change_decode(&k, &v, &ev, NULL);
        if (st != ETAGKV_OK)
            return st;
        if (q->upto != 0 && ev.revision > q->upto) {
            q->page->more = 1; /* the caller asked no further */
            q->page->next = q->upto;
            return ETAGKV_OK;
        }
        if (stop_rev != 0 && ev.revision != stop_rev) {
            q->page->more = 1;
            q->page->next = stop_rev;
            return ETAGKV_OK;
        }
        if (q->limit > 0 && stop_rev == 0 &&
            scanned >= ETAGKV_CHANGES_SCAN_MAX && ev.revision != last_rev) {
            q->page->more = 1;
            q->page->next = last_rev;
            return ETAGKV_OK;
        }
        scanned++;
        last_rev = ev.revision;
        if (!matches(q, &ev))
            continue;
        change_etag(&v, &ev);
        q->page->events++;
        if (q->fn(q->ctx, &ev) != 0) {
            q->page->more = 1;
            q->page->next = ev.revision - 1;
            return ETAGKV_OK;
        }
        if (q->limit > 0 && q->page->events >= q->limit)
            stop_rev = ev.revision;
    }
    return st == ETAGKV_NOT_FOUND ? ETAGKV_OK : st;
}

etagkv_status etagkv_changes(etagkv_store *s, const void *prefix,
                             size_t prefix_len, unsigned flags, uint64_t after,
                             size_t limit, etagkv_event_fn fn, void *ctx,
                             etagkv_changes_page *page)
{
    return ekv_changes_upto(s, prefix, prefix_len, flags, after, 0, limit, fn,
                            ctx, page);
}

etagkv_status ekv_changes_upto(etagkv_store *s, const void *prefix,
                               size_t prefix_len, unsigned flags,
                               uint64_t after, uint64_t upto, size_t limit,
                               etagkv_event_fn fn, void *ctx,
                               etagkv_changes_page *page)
{
    etagkv_changes_page local;
    struct changes_read q = {.prefix = prefix,
                             .prefix_len = prefix_len,
                             .exact = (flags & ETAGKV_CHANGES_KEY) != 0,
                             .limit = limit,
                             .upto = upto,
                             .fn = fn,
                             .ctx = ctx,
                             .page = page != NULL ? page : &local};
    ekv_txn txn;
    ekv_cursor cur;
    etagkv_status st;

    ekv_clear_error();
    memset(q.page, 0, sizeof(*q.page));
    if (s == NULL || fn == NULL || (prefix == NULL && prefix_len > 0) ||
        (flags & ~ETAGKV_CHANGES_KEY) != 0 || (q.exact && prefix_len == 0))
        return ETAGKV_INVALID_ARGUMENT;
    if (prefix_len > ETAGKV_KEY_MAX)
        return ETAGKV_KEY_TOO_LONG;
    st = ekv_read_begin(s->env, &txn);
    if (st != ETAGKV_OK)
        return st;
    st = ekv_revision_get(&txn, &q.page->revision);
    if (st == ETAGKV_OK)
        st = ekv_change_floor_get(&txn, &q.page->min_after);
    if (st != ETAGKV_OK)
        goto out;
    if (after < q.page->min_after) {
        st = ETAGKV_COMPACTED;
        goto out;
    }
    /* Nothing is after the snapshot's revision; and after + 1 would wrap
     * to the start of the log for the largest after. */
    st = after >= q.page->revision
             ? ETAGKV_NOT_FOUND
             : ekv_cursor_open(&txn, EKV_TABLE_CHANGES, &cur);
    if (st == ETAGKV_OK) {
        st = changes_walk(&cur, after, &q);
        ekv_cursor_close(&cur);
    } else if (st == ETAGKV_NOT_FOUND) {
        st = ETAGKV_OK; /* nothing after, or no log at all (read-only,
                           older store): empty */
    }
    if (st == ETAGKV_OK && !q.page->more)
        q.page->next = q.page->revision;
out:
    ekv_read_end(&txn);
    return st;
}
