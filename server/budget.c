/*
 * budget.c -- the server-wide memory budget (--max-buffered-bytes) and the
 * values that GET responses share.
 *
 * Two things hold a value in the server's memory for as long as a client
 * takes: an upload being gathered (a PUT body), and a GET response being
 * sent.  Both are charged to one budget, so that slow or idle clients
 * cannot make the process grow without bound:
 *
 *  - a PUT with Content-Length reserves its whole length at the headers;
 *    if that does not fit, it is refused with 503 and Retry-After before
 *    any of its body is read.  A chunked body reserves its buffer as it
 *    grows, and is refused (503) when the next growth does not fit.
 *  - a GET of a value of SHARE_MIN_BYTES or more is served from one copy
 *    per record version (key and mod_revision), reference-counted: forty
 *    slow readers of one 60 MiB value pin one copy, not forty.  A copy is
 *    charged while any response still uses it; a GET whose copy does not
 *    fit is refused with 503 and Retry-After.
 *
 * Smaller values are copied per response and not charged: at most
 * --max-connections times SHARE_MIN_BYTES.
 */
#include "server.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Values below this are copied per GET response (see above). */
#define SHARE_MIN_BYTES ((size_t)64 << 10)

/* A value served by GET responses. */
struct srv_value {
    struct srv_value *next; /* in the budget's list while shared */
    struct srv_budget *budget;
    long refs;  /* responses using it; under the budget's lock */
    int shared; /* listed and charged (else a private copy) */
    uint64_t mod_revision;
    size_t key_len;
    unsigned char key[ETAGKV_KEY_MAX];
    void *data;
    size_t len;
};

struct srv_budget {
    pthread_mutex_t lock;
    uint64_t limit;
    uint64_t used;            /* reserved bodies and shared values */
    struct srv_value *values; /* shared values, unordered */
};

struct srv_budget *srv_budget_new(uint64_t limit)
{
    struct srv_budget *b = calloc(1, sizeof *b);

    if (b == NULL)
        return NULL;
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        free(b);
        return NULL;
    }
    b->limit = limit;
    return b;
}

void srv_budget_free(struct srv_budget *b)
{
    if (b == NULL)
        return;
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* Charge n bytes, the lock held; 0, or -1 (nothing charged) when they do
 * not fit. */
static int charge_locked(struct srv_budget *b, uint64_t n)
{
    /* used passes the limit only by a forced charge (srv_charged_response). */
    if (b->used > b->limit || n > b->limit - b->used)
        return -1;
    b->used += n;
    return 0;
}

int srv_budget_reserve(struct srv_budget *b, uint64_t n)
{
    int rc;

    pthread_mutex_lock(&b->lock);
    rc = charge_locked(b, n);
    pthread_mutex_unlock(&b->lock);
    return rc;
}

void srv_budget_release(struct srv_budget *b, uint64_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&b->lock);
    b->used -= n;
    pthread_mutex_unlock(&b->lock);
}

uint64_t srv_budget_used(struct srv_budget *b)
{
    uint64_t used;

    pthread_mutex_lock(&b->lock);
    used = b->used;
    pthread_mutex_unlock(&b->lock);
    return used;
}

uint64_t srv_budget_limit(const struct srv_budget *b)
{
    return b->limit; /* set before the daemon starts, never changed */
}

/* ---- values owned by one response ---------------------------------------- */

struct owned {
    struct srv_budget *budget;
    uint64_t charged;
    void *value;
    void (*free_fn)(void *);
};

static void owned_free(void *cls)
{
    struct owned *o = cls;

    o->free_fn(o->value);
    srv_budget_release(o->budget, o->charged);
    free(o);
}

/* The response owning v with `charged` bytes of b (given back with v when
 * libmicrohttpd is done); NULL, v freed and the charge given back, when out
 * of memory. */
static struct MHD_Response *owned_response(struct srv_budget *b, void *v,
                                           size_t len, void (*free_fn)(void *),
                                           uint64_t charged)
{
    struct owned *o = malloc(sizeof *o);
    struct MHD_Response *resp;

    if (o == NULL) {
        free_fn(v);
        srv_budget_release(b, charged);
        return NULL;
    }
    *o = (struct owned){b, charged, v, free_fn};
    resp = MHD_create_response_from_buffer_with_free_callback_cls(
        len, v, owned_free, o);
    if (resp == NULL)
        owned_free(o);
    return resp;
}

struct MHD_Response *srv_owned_response(struct srv_budget *b, void *v,
                                        size_t len, void (*free_fn)(void *),
                                        uint64_t charged, int *busy)
{
    *busy = 0;
    if (len >= SHARE_MIN_BYTES && charged < len) {
        /* Charged as a GET of a large value would be. */
        if (srv_budget_reserve(b, len - charged) != 0) {
            *busy = 1;
            free_fn(v);
            srv_budget_release(b, charged);
            return NULL;
        }
        charged = len;
    }
    return owned_response(b, v, len, free_fn, charged);
}

struct MHD_Response *srv_charged_response(struct srv_budget *b, char *text,
                                          size_t len, int must, int *busy)
{
    uint64_t charge = 0;

    *busy = 0;
    if (len >= SHARE_MIN_BYTES) {
        /* Larger than the whole budget: it goes out once the budget is
         * idle, alone, rather than never. */
        charge = len < b->limit ? len : b->limit;
        if (srv_budget_reserve(b, charge) != 0) {
            if (!must) {
                *busy = 1;
                free(text);
                return NULL;
            }
            /* Charged over the limit: whatever else asks is refused
             * until this has been sent. */
            pthread_mutex_lock(&b->lock);
            b->used += charge;
            pthread_mutex_unlock(&b->lock);
        }
    }
    return owned_response(b, text, len, free, charge);
}

/* ---- shared values ------------------------------------------------------- */

/* The listed value of this key and revision, or NULL; the lock held. */
static struct srv_value *find_locked(struct srv_budget *b, const void *key,
                                     size_t key_len, uint64_t mod_revision)
{
    struct srv_value *v;

    for (v = b->values; v != NULL; v = v->next)
        if (v->mod_revision == mod_revision && v->key_len == key_len &&
            memcmp(v->key, key, key_len) == 0)
            return v;
    return NULL;
}

/* What etagkv_view()'s callback found and made. */
struct view_ctx {
    struct srv_budget *b;
    const void *key;
    size_t key_len;
    etagkv_meta *m;
    struct srv_value *v; /* the value with one reference for the caller */
    int busy;            /* a shared copy did not fit the budget */
    int no_memory;
};

/* A new srv_value holding a copy of len bytes; NULL when out of memory. */
static struct srv_value *value_new(struct view_ctx *x, const void *value,
                                   size_t len)
{
    struct srv_value *v = calloc(1, sizeof *v);

    if (v == NULL)
        return NULL;
    /* malloc(0) may be NULL: keep a valid pointer for an empty value. */
    v->data = malloc(len > 0 ? len : 1);
    if (v->data == NULL) {
        free(v);
        return NULL;
    }
    memcpy(v->data, value, len);
    v->len = len;
    v->refs = 1;
    v->budget = x->b;
    v->key_len = x->key_len;
    memcpy(v->key, x->key, x->key_len);
    v->mod_revision = x->m->mod_revision;
    return v;
}

static void value_destroy(struct srv_value *v)
{
    free(v->data);
    free(v);
}

/* Take a reference on the listed copy of this record version, or charge
 * and list a new copy.  Runs inside etagkv_view()'s read transaction, so
 * value is this version's bytes; the copy is made outside the lock. */
static void share(struct view_ctx *x, const void *value, size_t len)
{
    struct srv_budget *b = x->b;
    struct srv_value *v, *mine;

    pthread_mutex_lock(&b->lock);
    v = find_locked(b, x->key, x->key_len, x->m->mod_revision);
    if (v != NULL)
        v->refs++;
    else if (charge_locked(b, len) != 0)
        x->busy = 1;
    pthread_mutex_unlock(&b->lock);
    if (v != NULL || x->busy) {
        x->v = v;
        return;
    }
    mine = value_new(x, value, len);
    pthread_mutex_lock(&b->lock);
    /* Another GET may have listed the same version meanwhile: use it. */
    v = find_locked(b, x->key, x->key_len, x->m->mod_revision);
    if (v != NULL || mine == NULL) {
        b->used -= len;
        if (v != NULL)
            v->refs++;
    } else {
        mine->shared = 1;
        mine->next = b->values;
        b->values = mine;
        v = mine;
        mine = NULL;
    }
    pthread_mutex_unlock(&b->lock);
    if (mine != NULL)
        value_destroy(mine);
    x->v = v;
    x->no_memory = v == NULL;
}

static void view_one(void *ctx, const void *value, size_t len,
                     const etagkv_meta *meta)
{
    struct view_ctx *x = ctx;

    *x->m = *meta;
    if (len >= SHARE_MIN_BYTES) {
        share(x, value, len);
        return;
    }
    x->v = value_new(x, value, len);
    x->no_memory = x->v == NULL;
}

etagkv_status srv_value_get(struct srv *s, const struct srv_req *r,
                            etagkv_meta *m, struct srv_value **out, int *busy)
{
    struct view_ctx x = {s->budget, r->key, r->key_len, m, NULL, 0, 0};
    etagkv_status st = ETAGKV_INTERNAL;
    int attempt;

    *out = NULL;
    /* etagkv_view() reports no metadata with 304 and 412, which answer
     * with the validators: read them as a HEAD, whose conditions are a
     * GET's, so that status and metadata come from one read.  Should a
     * write in between make that read succeed, view again. */
    for (attempt = 0; attempt < 8; attempt++) {
        st = etagkv_view(s->store, r->key, r->key_len, r->cond, view_one, &x);
        if (st != ETAGKV_NOT_MODIFIED && st != ETAGKV_PRECONDITION_FAILED)
            break;
        st = etagkv_get(s->store, r->key, r->key_len, r->cond, NULL, NULL, m);
        if (st != ETAGKV_OK)
            break;
        st = ETAGKV_INTERNAL; /* eight such races in a row: give up */
    }
    *busy = x.busy;
    if (st == ETAGKV_OK && x.no_memory)
        st = ETAGKV_NO_MEMORY;
    if (st != ETAGKV_OK || x.busy) {
        if (x.v != NULL)
            srv_value_release(x.v);
        return x.busy ? ETAGKV_OK : st;
    }
    *out = x.v;
    return ETAGKV_OK;
}

const void *srv_value_data(const struct srv_value *v, size_t *len)
{
    *len = v->len;
    return v->data;
}

void srv_value_release(void *cls)
{
    struct srv_value *v = cls;
    struct srv_budget *b = v->budget;
    struct srv_value **p;
    int last;

    pthread_mutex_lock(&b->lock);
    last = --v->refs == 0;
    if (last && v->shared) {
        for (p = &b->values; *p != v; p = &(*p)->next)
            ;
        *p = v->next;
        b->used -= v->len;
    }
    pthread_mutex_unlock(&b->lock);
    if (last)
        value_destroy(v);
}
