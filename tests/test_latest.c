/* Tests of peer/ohm_latest: the newest model of each neighbour in
 * asynchronous mode: only newer stamps replace, NaN models never enter, the
 * age bound in steps and in seconds, the staleness weight (1 + tau)^(-a),
 * forgetting a neighbour that left, and a restart resetting its stamps. */
#include "ohm_latest.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

static int live;

static void release(void *p)
{
    live--;
    free(p);
}

static void *payload(int v)
{
    int *x = malloc(sizeof *x);
    cr_assert_not_null(x);
    *x = v;
    live++;
    return x;
}

static ohm_latest_t *make(uint64_t max_steps, double max_s, double a)
{
    ohm_latest_opts_t o = {.max_steps = max_steps, .max_s = max_s, .poly_a = a, .release = release};
    ohm_latest_t *l = NULL;
    cr_assert_eq(ohm_latest_new(&o, 3, &l), 0);
    return l;
}

static int value(void *p)
{
    return p ? *(int *)p : -1;
}

TestSuite(latest, .init = NULL);

Test(latest, only_newer_stamps_replace_and_nan_never_enters)
{
    live = 0;
    ohm_latest_t *l = make(0, 0, 0);
    cr_expect_eq(ohm_latest_feed(l, 0, 5, 1, payload(5), 0, 0.0), OHM_LATEST_KEPT);
    cr_expect_eq(ohm_latest_feed(l, 0, 5, 1, payload(55), 1, 0.0), OHM_LATEST_STALE, "a replay");
    cr_expect_eq(ohm_latest_feed(l, 0, 3, 1, payload(3), 1, 0.0), OHM_LATEST_STALE, "older");
    cr_expect_eq(ohm_latest_feed(l, 0, 9, 0, payload(9), 1, 0.0), OHM_LATEST_NONFINITE);
    cr_expect_eq(value(ohm_latest_get(l, 0, 1, 0.0, NULL)), 5);
    cr_expect_eq(ohm_latest_feed(l, 0, 7, 1, payload(7), 2, 0.0), OHM_LATEST_KEPT);
    cr_expect_eq(value(ohm_latest_get(l, 0, 2, 0.0, NULL)), 7);
    cr_expect_eq(ohm_latest_stamp(l, 0), 7);
    cr_expect_eq(ohm_latest_kept(l, 0), 2);
    cr_expect_null(ohm_latest_get(l, 1, 2, 0.0, NULL), "nothing from neighbour 1 yet");
    ohm_latest_destroy(&l);
    cr_expect_null(l);
    cr_expect_eq(live, 0, "every payload released once");
}

Test(latest, age_bounds_in_steps_and_seconds)
{
    live = 0;
    ohm_latest_t *l = make(10, 2.0, 0);
    ohm_latest_feed(l, 1, 1, 1, payload(1), 100, 50.0);
    uint64_t age = 99;
    cr_expect_not_null(ohm_latest_get(l, 1, 110, 51.0, &age));
    cr_expect_eq(age, 10);
    cr_expect_null(ohm_latest_get(l, 1, 111, 51.0, &age), "11 steps old");
    cr_expect_eq(age, 11);
    cr_expect_null(ohm_latest_get(l, 1, 105, 52.5, NULL), "2.5 s old");
    ohm_latest_destroy(&l);
    l = make(0, 0, 0);
    ohm_latest_feed(l, 1, 1, 1, payload(1), 0, 0.0);
    cr_expect_not_null(ohm_latest_get(l, 1, 1000000, 1e6, NULL), "no bounds");
    ohm_latest_destroy(&l);
    cr_expect_eq(live, 0);
}

Test(latest, staleness_weight_is_poly)
{
    ohm_latest_t *l = make(0, 0, 0.5);
    cr_expect_float_eq(ohm_latest_factor(l, 0), 1.0, 1e-12);
    cr_expect_float_eq(ohm_latest_factor(l, 3), 0.5, 1e-12, "(1 + 3)^-0.5");
    cr_expect_float_eq(ohm_latest_factor(l, 8), 1.0 / 3.0, 1e-12, "(1 + 8)^-0.5");
    ohm_latest_destroy(&l);
    l = make(0, 0, 0);
    cr_expect_float_eq(ohm_latest_factor(l, 1000), 1.0, 1e-12, "none");
    ohm_latest_destroy(&l);
}

Test(latest, forget_keeps_the_stamp_reset_clears_it)
{
    live = 0;
    ohm_latest_t *l = make(0, 0, 0);
    ohm_latest_feed(l, 2, 40, 1, payload(40), 0, 0.0);
    ohm_latest_forget(l, 2); /* bye */
    cr_expect_null(ohm_latest_get(l, 2, 0, 0.0, NULL));
    cr_expect_eq(ohm_latest_feed(l, 2, 30, 1, payload(30), 1, 0.0), OHM_LATEST_STALE,
                 "what it sent before leaving is not taken again");
    ohm_latest_reset(l, 2); /* hello: restarted from an older checkpoint */
    cr_expect_eq(ohm_latest_feed(l, 2, 30, 1, payload(30), 2, 0.0), OHM_LATEST_KEPT);
    ohm_latest_destroy(&l);
    cr_expect_eq(live, 0);
}

Test(latest, rejects_bad_options)
{
    ohm_latest_opts_t o = {.max_s = -1, .release = release};
    ohm_latest_t *l = NULL;
    cr_expect_neq(ohm_latest_new(&o, 2, &l), 0);
    o.max_s = 0;
    o.release = NULL;
    cr_expect_neq(ohm_latest_new(&o, 2, &l), 0);
    cr_expect_null(l);
}
