/*
 * wgl.c -- linearizability of a read/compare-and-set register history
 * (see wgl.h).
 *
 * The history becomes a list of call and return entries in time order.
 * The search walks it from the front: at a call it tries to linearize
 * that operation now (the register allows it, and the set of operations
 * linearized so far with the resulting value was not explored before);
 * if so, the operation's call and return leave the list and the walk
 * starts again from the front.  Reaching a return means the operation
 * returned before being linearized: undo the last choice and try the
 * next call after it.  Unknown outcomes return at +infinity, after every
 * known return, so they never force a backtrack; once every operation
 * with a known outcome is linearized, the rest can take effect after all
 * of them, where nothing observes them.
 */
#include "wgl.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NONE ((size_t)-1)

struct entry {
    double t;
    size_t op;
    int is_call;
    size_t match;      /* the op's other entry */
    size_t prev, next; /* the list; NONE ends it */
};

/* Configurations already explored: the set of linearized operations (a
 * bitset of `words` words) with the register's value. */
struct cache {
    size_t words;
    uint64_t *pool; /* count configurations of words + 1 words each */
    size_t count, cap;
    size_t *slots; /* pool index + 1; 0 is empty */
    size_t nslots; /* a power of two */
};

static uint64_t mix(const uint64_t *bits, size_t words, long value)
{
    uint64_t h = UINT64_C(0x9E3779B97F4A7C15) ^ (uint64_t)value;

    for (size_t i = 0; i < words; i++) {
        h ^= bits[i];
        h *= UINT64_C(0xBF58476D1CE4E5B9);
        h ^= h >> 31;
    }
    return h;
}

static int cache_grow(struct cache *c)
{
    size_t n = c->nslots != 0 ? c->nslots * 2 : 1024;
    size_t *slots = calloc(n, sizeof(*slots));

    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < c->count; i++) {
        const uint64_t *k = c->pool + i * (c->words + 1);
        size_t s = mix(k, c->words, (long)k[c->words]) & (n - 1);

        while (slots[s] != 0)
            s = (s + 1) & (n - 1);
        slots[s] = i + 1;
    }
    free(c->slots);
    c->slots = slots;
    c->nslots = n;
    return 0;
}

/* 1: (bits, value) added; 0: it was there; -1: out of memory. */
static int cache_add(struct cache *c, const uint64_t *bits, long value)
{
    size_t w = c->words + 1, s;

    if ((c->count + 1) * 2 > c->nslots && cache_grow(c) != 0)
        return -1;
    s = mix(bits, c->words, value) & (c->nslots - 1);
    for (; c->slots[s] != 0; s = (s + 1) & (c->nslots - 1)) {
        const uint64_t *k = c->pool + (c->slots[s] - 1) * w;

        if ((long)k[c->words] == value &&
            memcmp(k, bits, c->words * sizeof(*bits)) == 0)
            return 0;
    }
    if (c->count == c->cap) {
        size_t cap = c->cap != 0 ? c->cap * 2 : 1024;
        uint64_t *pool = realloc(c->pool, cap * w * sizeof(*pool));

        if (pool == NULL)
            return -1;
        c->pool = pool;
        c->cap = cap;
    }
    memcpy(c->pool + c->count * w, bits, c->words * sizeof(*bits));
    c->pool[c->count * w + c->words] = (uint64_t)value;
    c->slots[s] = ++c->count;
    return 1;
}

/* Whether op may take effect on a register holding *value; if so, *value
 * becomes what it holds after. */
static int apply(const struct wgl_op *op, long *value)
{
    if (op->kind == WGL_READ)
        return op->outcome != WGL_OK || *value == op->value;
    switch (op->outcome) {
    case WGL_OK:
        if (*value != op->value)
            return 0;
        *value = op->to;
        return 1;
    case WGL_FAILED: return *value != op->value;
    case WGL_UNKNOWN:
        if (*value == op->value)
            *value = op->to;
        return 1;
    }
    return 0;
}

static int by_time(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;

    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    /* At the same instant, a call first: the two overlap, which allows
     * either order and so never makes a history fail on a tie. */
    return y->is_call - x->is_call;
}

/* The entries of ops in time order, linked, after the head e[2n]. */
static struct entry *build(const struct wgl_op *ops, size_t n)
{
    struct entry *e = calloc(2 * n + 1, sizeof(*e));
    size_t *call_at;

    if (e == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        e[2 * i] = (struct entry){.t = ops[i].invoke_s, .op = i, .is_call = 1};
        e[2 * i + 1] = (struct entry){
            .t = ops[i].outcome == WGL_UNKNOWN ? INFINITY : ops[i].complete_s,
            .op = i};
    }
    qsort(e, 2 * n, sizeof(*e), by_time);
    call_at = malloc((n != 0 ? n : 1) * sizeof(*call_at));
    if (call_at == NULL) {
        free(e);
        return NULL;
    }
    for (size_t i = 0; i < 2 * n; i++)
        if (e[i].is_call)
            call_at[e[i].op] = i;
    for (size_t i = 0; i < 2 * n; i++) {
        if (!e[i].is_call) {
            e[i].match = call_at[e[i].op];
            e[call_at[e[i].op]].match = i;
        }
        e[i].prev = i == 0 ? 2 * n : i - 1;
        e[i].next = i + 1 < 2 * n ? i + 1 : NONE;
    }
    e[2 * n].next = n != 0 ? 0 : NONE;
    free(call_at);
    return e;
}

static void unlink_entry(struct entry *e, size_t i)
{
    e[e[i].prev].next = e[i].next;
    if (e[i].next != NONE)
        e[e[i].next].prev = e[i].prev;
}

static void relink_entry(struct entry *e, size_t i)
{
    e[e[i].prev].next = i;
    if (e[i].next != NONE)
        e[e[i].next].prev = i;
}

struct frame {
    size_t call;
    long value; /* the register before the call was linearized */
};

enum wgl_verdict wgl_check(const struct wgl_op *ops, size_t n, long initial,
                           long max_steps, long *steps)
{
    struct cache c = {.words = n / 64 + 1};
    struct entry *e = build(ops, n);
    struct frame *stack = malloc((n != 0 ? n : 1) * sizeof(*stack));
    uint64_t *bits = calloc(c.words, sizeof(*bits));
    size_t sp = 0, known = 0, done = 0, i;
    long value = initial, step = 0;
    enum wgl_verdict verdict = WGL_GAVE_UP;

    if (e == NULL || stack == NULL || bits == NULL)
        goto out;
    for (size_t k = 0; k < n; k++)
        known += ops[k].outcome != WGL_UNKNOWN;
    i = e[2 * n].next;
    while (done < known) {
        if (step >= max_steps)
            goto out;
        step++;
        if (i != NONE && e[i].is_call) {
            size_t op = e[i].op;
            long after = value;
            int added = 0;

            if (apply(&ops[op], &after)) {
                bits[op / 64] |= UINT64_C(1) << (op % 64);
                added = cache_add(&c, bits, after);
                if (added < 0)
                    goto out;
                if (added == 0)
                    bits[op / 64] &= ~(UINT64_C(1) << (op % 64));
            }
            if (added == 0) {
                i = e[i].next;
                continue;
            }
            stack[sp++] = (struct frame){i, value};
            value = after;
            unlink_entry(e, i);
            unlink_entry(e, e[i].match);
            done += ops[op].outcome != WGL_UNKNOWN;
            i = e[2 * n].next;
            continue;
        }
        /* A return (or the end): its operation was not linearized in
         * time.  Undo the last choice and try the next call after it. */
        if (sp == 0) {
            verdict = WGL_NOT_LINEARIZABLE;
            goto out;
        }
        i = stack[--sp].call;
        value = stack[sp].value;
        bits[e[i].op / 64] &= ~(UINT64_C(1) << (e[i].op % 64));
        done -= ops[e[i].op].outcome != WGL_UNKNOWN;
        relink_entry(e, e[i].match);
        relink_entry(e, i);
        i = e[i].next;
    }
    verdict = WGL_LINEARIZABLE;
out:
    if (steps != NULL)
        *steps = step;
    free(c.pool);
    free(c.slots);
    free(bits);
    free(stack);
    free(e);
    return verdict;
}
