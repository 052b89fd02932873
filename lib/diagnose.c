/*
 * diagnose.c -- etagkv_cond_superseded(): when did a failed request's
 * conditions stop holding?  Answered from the change log (DESIGN §8).
 *
 * Each event of the key in the log is a state of the key: a put gives its
 * ETag, modified_ns and revisions, a delete gives "absent".  The one
 * evaluator (cond.c) is run over each state in turn, so whatever the
 * conditions are -- an ETag list, "*", a date, a revision -- "held" means
 * exactly what it means for the request.  The answer is the last event at
 * which they turn from true to false, at or before the state the request
 * was refused on.
 *
 * Only the deciding step's condition is looked at (ekv_cond_only()): the
 * question is when the validator that failed stopped being current.
 * etagkv_changes() reads the log in one snapshot.
 */
#include <string.h>

#include "store.h"

struct search {
    const etagkv_cond *cond;
    etagkv_method method;
    uint64_t upto;          /* last revision to look at; 0: no bound */
    int seen;               /* an event of the key was seen */
    int held;               /* the conditions held at the previous event */
    uint64_t held_revision; /* ... which was this revision */
    etagkv_supersession *out;
    int found;
};

/* One event of the key: evaluate the conditions over the state it left. */
static int on_event(void *ctx, const etagkv_event *ev)
{
    struct search *q = ctx;
    etagkv_meta state;
    int holds;

    if (q->upto != 0 && ev->revision > q->upto)
        return 1; /* after the refusal: not its cause */
    memset(&state, 0, sizeof(state));
    if (ev->type == ETAGKV_EVENT_PUT) {
        state.exists = 1;
        memcpy(state.etag, ev->etag, sizeof(state.etag));
        state.modified_ns = ev->modified_ns;
        state.mod_revision = ev->mod_revision;
        state.create_revision = ev->create_revision;
        state.version = ev->version;
    }
    /* A put that created the key (create_revision is its own revision)
     * says the key was absent just before it, even when the delete that
     * made it absent, if any, is older than the window: that state is
     * looked at too (If-None-Match: * is superseded by the creation). */
    if (!q->seen && ev->type == ETAGKV_EVENT_PUT &&
        ev->create_revision == ev->revision) {
        etagkv_meta absent;

        memset(&absent, 0, sizeof(absent));
        q->held =
            etagkv_cond_evaluate(q->cond, q->method, &absent) == ETAGKV_OK;
        q->held_revision = 0;
    }
    q->seen = 1;
    holds = etagkv_cond_evaluate(q->cond, q->method, &state) == ETAGKV_OK;
    if (q->held && !holds) {
        q->out->revision = ev->revision;
        q->out->modified_ns = ev->modified_ns;
        q->out->held_revision = q->held_revision;
        q->found = 1;
    }
    q->held = holds;
    q->held_revision = ev->revision;
    return 0;
}

/* Reads of the key's history (the current record included) before the log
 * decides: enough for a key written again since the refusal and a
 * validator a few writes old, the common cases under contention. */
#define HISTORY_READS 6

/* The common case in a few reads, on an engine that keeps a key's history
 * (etcd, where each read of the log is a Range, and a 412 on a key written
 * a thousand revisions ago read a thousand events): walk the key's
 * records back from its current one, past writes made after the refusal
 * (upto), to the state refused on, then on to the newest record for which
 * the conditions held.  The write that replaced that record is the last
 * transition at or before upto -- the log's answer too, since each record
 * on the way is one event of the key in the log: the versions say one
 * write between each two (a transaction that wrote the key twice leaves a
 * state of its own in the log), and the walk stops at a record absent (a
 * delete or a creation in between), older than the log's window, or not
 * of a write at upto when it should be the refused state.  1 when it
 * answered; 0 for the log to decide (no history, compaction, any of the
 * stops, more than HISTORY_READS reads). */
static int from_history(etagkv_store *s, const void *key, size_t key_len,
                        struct search *q)
{
    ekv_txn txn;
    ekv_record r;
    etagkv_meta m, newer = {0};
    uint64_t at = 0;
    int refused_seen = 0;
    etagkv_status st;

    if (q->upto == 0 || ekv_read_begin(s->env, &txn) != ETAGKV_OK)
        return 0;
    st = ekv_change_floor_get(&txn, &q->out->min_after);
    for (int reads = 0; st == ETAGKV_OK && !q->found && reads < HISTORY_READS;
         reads++) {
        st = ekv_record_before(&txn, key, key_len, &at, &r);
        if (st != ETAGKV_OK)
            break;
        memset(&m, 0, sizeof(m));
        ekv_record_meta(&r, &m);
        if (m.mod_revision > q->upto)
            continue; /* written after the refusal: not its cause */
        if (refused_seen ? newer.version != m.version + 1 ||
                               m.mod_revision <= q->out->min_after
                         : m.mod_revision != q->upto)
            break;
        if (etagkv_cond_evaluate(q->cond, q->method, &m) == ETAGKV_OK) {
            /* Held here, and at no state after it up to the refusal. */
            q->found = refused_seen;
            break;
        }
        refused_seen = 1;
        newer = m;
    }
    if (q->found) {
        q->out->revision = newer.mod_revision;
        q->out->modified_ns = newer.modified_ns;
        q->out->held_revision = m.mod_revision;
    }
    ekv_read_end(&txn);
    ekv_clear_error(); /* whatever it was, the log decides */
    return q->found;
}

/* Revisions before the refusal that the first read looks at. */
#define SEARCH_FIRST 16

/* Read the key's events from `after` (0: the start of the log) up to
 * q->upto.  The log is in revision order, all keys mixed, so a read from
 * the start of a full log walks ~100,000 events for every 412.  The
 * transition wanted is the latest one, and usually recent: look at the
 * last SEARCH_FIRST revisions first, then four times as many, and so on.
 * A transition found in a suffix of the log is the latest one: a later
 * one would be in the suffix too, and the first event of the suffix is
 * only missed as a transition when nothing later is one.  The log's start
 * moves as it is trimmed: read from where it starts when `after` fell
 * behind it. */
static etagkv_status search(etagkv_store *s, const void *key, size_t key_len,
                            uint64_t after, struct search *q,
                            etagkv_changes_page *page)
{
    uint64_t span = SEARCH_FIRST, from;
    etagkv_status st = ETAGKV_OK;

    for (int compacted = 0; compacted < 4;) {
        from = q->upto > after + span ? q->upto - span : after;
        q->seen = q->held = 0;
        q->held_revision = 0;
        q->found = 0;
        st = ekv_changes_upto(s, key, key_len, ETAGKV_CHANGES_KEY, from,
                              q->upto, 0, on_event, q, page);
        if (st == ETAGKV_COMPACTED) {
            after = page->min_after;
            compacted++;
            continue;
        }
        if (st != ETAGKV_OK || q->found || from == after)
            break;
        span = span <= UINT64_MAX / 4 ? span * 4 : UINT64_MAX;
    }
    return st;
}

etagkv_status etagkv_cond_superseded(etagkv_store *s, const void *key,
                                     size_t key_len, const etagkv_cond *c,
                                     etagkv_cond_step step,
                                     etagkv_method method, uint64_t upto,
                                     etagkv_supersession *out)
{
    struct search q = {.method = method, .upto = upto, .out = out};
    etagkv_changes_page page;
    etagkv_cond *only = NULL;
    uint64_t after = 0;
    etagkv_status st;

    ekv_clear_error();
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (s == NULL || key == NULL || c == NULL || out == NULL ||
        method > ETAGKV_METHOD_DELETE || step > ETAGKV_STEP_IF_MODIFIED_SINCE)
        return ETAGKV_INVALID_ARGUMENT;
    if (key_len == 0)
        return ETAGKV_INVALID_KEY;
    if (key_len > ETAGKV_KEY_MAX)
        return ETAGKV_KEY_TOO_LONG;
    /* The validator of the deciding step alone: with If-Match and
     * If-Revision both sent, the revision's history is what decided. */
    st = ekv_cond_only(c, step, &only);
    if (st != ETAGKV_OK)
        return st;
    q.cond = only;
    /* A revision held first at its own event, and that event is the key's
     * (or the revision never was): the search starts there, not at the
     * start of the window. */
    if (step == ETAGKV_STEP_IF_REVISION && ekv_cond_if_revision(c, &after) &&
        after > 0)
        after--;
    else
        after = 0;
    if (from_history(s, key, key_len, &q)) {
        etagkv_cond_free(only);
        return ETAGKV_OK;
    }
    st = search(s, key, key_len, after, &q, &page);
    etagkv_cond_free(only);
    if (st != ETAGKV_OK)
        return st;
    if (!q.found) {
        memset(out, 0, sizeof(*out));
        st = ETAGKV_NOT_FOUND;
    }
    out->min_after = page.min_after;
    return st;
}
