/*
 * test_wgl.c -- the linearizability checker of tests/common/wgl.c, which
 * test_ha.c runs on the history of a failover: it must reject what is
 * not linearizable (a stale read, two winners of one compare-and-set, a
 * value from nowhere), accept what is (overlapping operations in either
 * order, unknown outcomes that took effect or never did), and give up
 * rather than run for ever.
 */
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"
#include "wgl.h"

#define STEPS 1000000L

/* Shorthands: [invoke, complete] in seconds. */
static struct wgl_op rd(double a, double b, long v)
{
    return (struct wgl_op){a, b, WGL_READ, WGL_OK, v, 0};
}

static struct wgl_op cas(double a, double b, enum wgl_outcome o, long from,
                         long to)
{
    return (struct wgl_op){a, b, WGL_CAS, o, from, to};
}

static enum wgl_verdict check(const struct wgl_op *h, size_t n)
{
    return wgl_check(h, n, 0, STEPS, NULL);
}

START_TEST(a_sequential_run_of_the_register_is_linearizable)
{
    const struct wgl_op h[] = {
        rd(0, 1, 0), cas(2, 3, WGL_OK, 0, 1), cas(4, 5, WGL_FAILED, 0, 1),
        rd(6, 7, 1), cas(8, 9, WGL_OK, 1, 2), rd(10, 11, 2)};

    ck_assert_int_eq(check(h, 6), WGL_LINEARIZABLE);
    ck_assert_int_eq(check(h, 0), WGL_LINEARIZABLE);
}
END_TEST

START_TEST(a_read_after_a_completed_write_that_misses_it_is_rejected)
{
    /* The write returned at 1; a read invoked at 2 still sees 0. */
    const struct wgl_op h[] = {cas(0, 1, WGL_OK, 0, 1), rd(2, 3, 0)};

    ck_assert_int_eq(check(h, 2), WGL_NOT_LINEARIZABLE);
}
END_TEST

START_TEST(two_winners_of_one_compare_and_set_are_rejected)
{
    /* The lost update: both saw 0, both were acknowledged, even though
     * they overlap. */
    const struct wgl_op h[] = {cas(0, 2, WGL_OK, 0, 1),
                               cas(1, 3, WGL_OK, 0, 1)};

    ck_assert_int_eq(check(h, 2), WGL_NOT_LINEARIZABLE);
}
END_TEST

START_TEST(overlapping_operations_may_take_effect_in_either_order)
{
    /* The read returns before the write it saw does: fine, they
     * overlap.  Then a read of the old value after one of the new one
     * is not. */
    const struct wgl_op ok[] = {cas(0, 10, WGL_OK, 0, 1), rd(1, 2, 1),
                                rd(3, 4, 1), rd(5, 11, 0)};

    ck_assert_int_eq(check(ok, 3), WGL_LINEARIZABLE);
    ck_assert_int_eq(check(ok, 4), WGL_NOT_LINEARIZABLE);
}
END_TEST

START_TEST(a_failed_compare_and_set_needs_another_value)
{
    /* A 412 while the register held what the client expected, with no
     * other writer, is a wrong refusal. */
    const struct wgl_op alone[] = {cas(0, 1, WGL_FAILED, 0, 1)};
    const struct wgl_op raced[] = {cas(0, 1, WGL_FAILED, 0, 1),
                                   cas(0.5, 2, WGL_OK, 0, 5)};

    ck_assert_int_eq(check(alone, 1), WGL_NOT_LINEARIZABLE);
    ck_assert_int_eq(check(raced, 2), WGL_LINEARIZABLE);
}
END_TEST

START_TEST(an_unknown_outcome_may_have_taken_effect_or_not_but_nothing_else)
{
    /* Taken effect: read at 5 sees it. */
    const struct wgl_op applied[] = {cas(0, 1, WGL_UNKNOWN, 0, 1), rd(5, 6, 1)};
    /* Never: later writes start from 0. */
    const struct wgl_op lost[] = {cas(0, 1, WGL_UNKNOWN, 0, 1), rd(2, 3, 0),
                                  cas(4, 5, WGL_OK, 0, 2), rd(6, 7, 2)};
    /* Late: it lands after a read of 0, even long after it "ended". */
    const struct wgl_op late[] = {cas(0, 1, WGL_UNKNOWN, 0, 1), rd(2, 3, 0),
                                  rd(8, 9, 1)};
    /* But 7 was never written by anyone. */
    const struct wgl_op invented[] = {cas(0, 1, WGL_UNKNOWN, 0, 1),
                                      rd(5, 6, 7)};
    /* Nor may it land before its invocation. */
    const struct wgl_op early[] = {rd(0, 1, 1), cas(2, 3, WGL_UNKNOWN, 0, 1)};

    ck_assert_int_eq(check(applied, 2), WGL_LINEARIZABLE);
    ck_assert_int_eq(check(lost, 4), WGL_LINEARIZABLE);
    ck_assert_int_eq(check(late, 3), WGL_LINEARIZABLE);
    ck_assert_int_eq(check(invented, 2), WGL_NOT_LINEARIZABLE);
    ck_assert_int_eq(check(early, 2), WGL_NOT_LINEARIZABLE);
}
END_TEST

/* A history of three read/CAS-increment clients on one counter, made
 * from a sequential run: operation i takes effect at instant i, and its
 * interval is stretched at random around it, overlapping its neighbours'
 * (up to four operations at once, as in test_ha.c).  Linearizable by
 * construction; one compare-and-set in a hundred has an unknown outcome
 * (it took effect at its instant all the same). */
static void random_history(struct wgl_op *h, size_t n, uint64_t seed)
{
    long value = 0;
    long seen[3] = {0};

    for (size_t i = 0; i < n; i++) {
        size_t c = tu_rng_next(&seed) % 3;
        double at = (double)i,
               from = at - 0.1 - (double)(tu_rng_next(&seed) % 130) / 100,
               to = at + 0.1 + (double)(tu_rng_next(&seed) % 130) / 100;

        if (tu_rng_next(&seed) % 2 == 0) {
            h[i] = rd(from, to, value);
            seen[c] = value;
        } else {
            enum wgl_outcome o = seen[c] == value ? WGL_OK : WGL_FAILED;

            if (tu_rng_next(&seed) % 100 == 0)
                o = WGL_UNKNOWN;
            h[i] = cas(from, to, o, seen[c], seen[c] + 1);
            if (seen[c] == value)
                value++;
        }
    }
}

START_TEST(random_linearizable_histories_pass_and_a_stale_read_fails_them)
{
    enum { N = 600 };
    struct wgl_op *h = malloc(N * sizeof(*h));
    long steps = 0, most = 0;
    enum wgl_verdict v;

    ck_assert_ptr_nonnull(h);
    for (uint64_t seed = 1; seed <= 20; seed++) {
        random_history(h, N, seed);
        ck_assert_msg(wgl_check(h, N, 0, STEPS, &steps) == WGL_LINEARIZABLE,
                      "seed %llu", (unsigned long long)seed);
        most = steps > most ? steps : most;
        /* The last operation made a stale read after all the others:
         * the counter only grows, and increments were acknowledged. */
        h[N - 1] = rd(N + 10, N + 11, 0);
        v = wgl_check(h, N, 0, STEPS, &steps);
        ck_assert_msg(v == WGL_NOT_LINEARIZABLE,
                      "seed %llu: %d after %ld steps", (unsigned long long)seed,
                      (int)v, steps);
    }
    /* Its cost in steps, not seconds (valgrind runs this suite too): a
     * search that backtracks would take many times the history's length. */
    printf("600 operations: at most %ld steps\n", most);
    ck_assert_int_le(most, 20 * N);
    free(h);
}
END_TEST

START_TEST(the_search_gives_up_at_its_step_limit)
{
    enum { N = 600 };
    struct wgl_op *h = malloc(N * sizeof(*h));
    long steps = 0;

    ck_assert_ptr_nonnull(h);
    random_history(h, N, 7);
    ck_assert_int_eq(wgl_check(h, N, 0, 100, &steps), WGL_GAVE_UP);
    ck_assert_int_eq(steps, 100);
    free(h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wgl");
    TCase *tc = tcase_create("wgl");

    tcase_add_test(tc, a_sequential_run_of_the_register_is_linearizable);
    tcase_add_test(tc,
                   a_read_after_a_completed_write_that_misses_it_is_rejected);
    tcase_add_test(tc, two_winners_of_one_compare_and_set_are_rejected);
    tcase_add_test(tc, overlapping_operations_may_take_effect_in_either_order);
    tcase_add_test(tc, a_failed_compare_and_set_needs_another_value);
    tcase_add_test(
        tc, an_unknown_outcome_may_have_taken_effect_or_not_but_nothing_else);
    tcase_add_test(
        tc, random_linearizable_histories_pass_and_a_stale_read_fails_them);
    tcase_add_test(tc, the_search_gives_up_at_its_step_limit);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
