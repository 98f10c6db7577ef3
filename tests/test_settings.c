/* Tests of peer/ohm_settings: the learning-rate schedules a peer's rounds use. */
#include "ohm_error.h"
#include "ohm_settings.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

static ohm_settings_t resolve(const char *schedule)
{
    ohm_config_t *c = ohm_config_new();
    cr_assert_not_null(c);
    char a[64];
    snprintf(a, sizeof a, "optimizer.schedule=%s", schedule);
    cr_assert_eq(ohm_config_set(c, a, "--set"), OHM_OK, "%s", ohm_error_detail());
    cr_assert_eq(ohm_config_set(c, "optimizer.lr=0.2", "--set"), OHM_OK);
    cr_assert_eq(ohm_config_set(c, "train.rounds=1000", "--set"), OHM_OK);
    ohm_settings_t s;
    cr_assert_eq(ohm_settings_resolve(c, &s), OHM_OK, "%s", ohm_error_detail());
    ohm_config_destroy(&c);
    return s;
}

Test(settings, schedules)
{
    ohm_settings_t s = resolve("const");
    cr_expect_float_eq(ohm_settings_lr(&s, 0), 0.2, 1e-15);
    cr_expect_float_eq(ohm_settings_lr(&s, 999), 0.2, 1e-15);
    s = resolve("invsqrt");
    cr_expect_float_eq(ohm_settings_lr(&s, 3), 0.1, 1e-15);
    /* Cosine: lr at round 0, half of it halfway, falling monotonically towards 0 at the end. */
    s = resolve("cosine");
    cr_expect_float_eq(ohm_settings_lr(&s, 0), 0.2, 1e-15);
    cr_expect_float_eq(ohm_settings_lr(&s, 500), 0.1, 1e-12);
    cr_expect_lt(ohm_settings_lr(&s, 999), 0.2 * 1e-5);
    cr_expect_gt(ohm_settings_lr(&s, 999), 0);
    for (uint32_t r = 1; r < 1000; r++)
        cr_expect_lt(ohm_settings_lr(&s, r), ohm_settings_lr(&s, r - 1), "round %u", r);
}

Test(settings, unknown_schedule_is_refused)
{
    ohm_config_t *c = ohm_config_new();
    cr_assert_not_null(c);
    cr_expect_eq(ohm_config_set(c, "optimizer.schedule=cos", "--set"), OHM_EINVAL);
    ohm_config_destroy(&c);
}

/* Asynchronous mode keeps only each neighbour's newest model, which public
 * copies (compression, censoring) cannot follow: refused with both names. */
Test(settings, async_refuses_public_copies)
{
    static const char *const comm[] = {"comm.compress=q8", "comm.censor=threshold"};
    for (int k = 0; k < 2; k++) {
        ohm_config_t *c = ohm_config_new();
        cr_assert_not_null(c);
        cr_assert_eq(ohm_config_set(c, "train.mode=async", "--set"), OHM_OK);
        cr_assert_eq(ohm_config_set(c, comm[k], "--set"), OHM_OK);
        ohm_settings_t s;
        cr_expect_eq(ohm_settings_resolve(c, &s), OHM_EINVAL, "%s", comm[k]);
        cr_expect(strstr(ohm_error_detail(), "train.mode = async") != NULL, "%s",
                  ohm_error_detail());
        cr_assert_eq(ohm_config_set(c, "train.mode=sync", "--set"), OHM_OK);
        cr_expect_eq(ohm_settings_resolve(c, &s), OHM_OK, "%s", ohm_error_detail());
        ohm_config_destroy(&c);
    }
}

/* train.slowdown_basis: cpu by default (a change of contract: the old meaning
 * is compute), each name resolved, anything else refused by the schema. */
Test(settings, slowdown_basis)
{
    static const char *const names[] = {"cpu", "compute", "runnable"};
    static const int want[] = {OHM_SLOW_CPU, OHM_SLOW_COMPUTE, OHM_SLOW_RUNNABLE};
    ohm_config_t *c = ohm_config_new();
    cr_assert_not_null(c);
    ohm_settings_t s;
    cr_assert_eq(ohm_settings_resolve(c, &s), OHM_OK, "%s", ohm_error_detail());
    cr_expect_eq(s.slow_basis, OHM_SLOW_CPU, "the default basis is %d", s.slow_basis);
    for (int k = 0; k < 3; k++) {
        char a[64];
        snprintf(a, sizeof a, "train.slowdown_basis=%s", names[k]);
        cr_assert_eq(ohm_config_set(c, a, "--set"), OHM_OK, "%s", ohm_error_detail());
        cr_assert_eq(ohm_settings_resolve(c, &s), OHM_OK, "%s", ohm_error_detail());
        cr_expect_eq(s.slow_basis, want[k], "%s", names[k]);
    }
    cr_expect_eq(ohm_config_set(c, "train.slowdown_basis=wall", "--set"), OHM_EINVAL);
    ohm_config_destroy(&c);
}
