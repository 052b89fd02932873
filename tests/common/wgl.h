/*
 * wgl.h -- a linearizability checker for the history of one register
 * with read and compare-and-set operations: the algorithm of Wing and
 * Gong with Lowe's cache of visited configurations (G. Lowe, "Testing for
 * linearizability", 2017), as Porcupine and Knossos implement it.  No
 * Debian or npm package ships one for C, so it lives here, with its own
 * suite (tests/lib/test_wgl.c) showing that it rejects what it should.
 *
 * A history is linearizable when every operation can be given one
 * instant between its invocation and its completion such that, taken in
 * the order of those instants, the operations are a run of the
 * sequential register.  An operation whose outcome is unknown (a write
 * that got no answer) completes at +infinity: it may take effect at any
 * instant after its invocation, or never.
 *
 * Pure: no I/O, no Check; the caller asserts on the verdict.
 */
#ifndef ETAGKV_WGL_H
#define ETAGKV_WGL_H

#include <stddef.h>

enum wgl_kind {
    WGL_READ, /* returned `value` */
    WGL_CAS   /* if the register holds `value`, set it to `to` */
};

enum wgl_outcome {
    WGL_OK,     /* read: returned value; cas: it held value and was set */
    WGL_FAILED, /* cas only: the register did not hold value */
    WGL_UNKNOWN /* no answer: applied or not (complete_s is ignored) */
};

struct wgl_op {
    double invoke_s, complete_s; /* one clock for the whole history */
    enum wgl_kind kind;
    enum wgl_outcome outcome;
    long value; /* read: the value read; cas: the value expected */
    long to;    /* cas: the value written */
};

enum wgl_verdict {
    WGL_LINEARIZABLE,
    WGL_NOT_LINEARIZABLE,
    WGL_GAVE_UP /* max_steps reached, or out of memory: no verdict */
};

/* Check the history ops[0..n) of a register that held `initial` before
 * the first invocation.  The search stops after max_steps steps (each
 * step tries one operation at one point) with WGL_GAVE_UP.  If steps is
 * not NULL, *steps gets the number taken.  ops is not modified. */
enum wgl_verdict wgl_check(const struct wgl_op *ops, size_t n, long initial,
                           long max_steps, long *steps);

#endif
