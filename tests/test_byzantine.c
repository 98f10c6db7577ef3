/* Tests of peer/ohm_byzantine: the view an attack is crafted from (the
 * Byzantine peer's own, or the target's honest neighbours with the target's
 * weights), and a Byzantine peer's data under label-honest. */
#include "ohm_byzantine.h"
#include "ohm_error.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

/* Peer 4 is Byzantine and hears honest peers 0, 1 and 2. Target 1's honest
 * neighbours are 0 and 3 (3 unseen by peer 4); target 0's are 1, 2 and 3. */
static const char topo[] = "peer 0 tcp://127.0.0.1:1\n"
                           "peer 1 tcp://127.0.0.1:2\n"
                           "peer 2 tcp://127.0.0.1:3\n"
                           "peer 3 tcp://127.0.0.1:4\n"
                           "peer 4 tcp://127.0.0.1:5 role=byzantine attack=signflip\n"
                           "edge 0 1\nedge 0 2\nedge 0 3\nedge 1 3\n"
                           "edge 4 0\nedge 4 1\nedge 4 2\n";

static ohm_topology_t *load(void)
{
    ohm_topology_t *t = NULL;
    cr_assert_eq(ohm_topology_parse(topo, sizeof topo - 1, "t.topo", &t), OHM_OK, "%s",
                 ohm_error_detail());
    return t;
}

static const float x0[] = {1, 2}, x1[] = {-3, 0}, x2[] = {10, 20};
static const float *const recv[] = {x0, x1, x2};
static const uint32_t ids[] = {0, 1, 2};

static void craft(const char *spec, uint32_t target, float *out)
{
    ohm_topology_t *t = load();
    ohm_byz_t *b = NULL;
    cr_assert_eq(ohm_byz_new(spec, 1, 4, &b), OHM_OK, "%s", ohm_error_detail());
    cr_assert_eq(ohm_byz_craft(b, t, target, 3, recv, ids, 3, 2, out), OHM_OK);
    ohm_byz_destroy(&b);
    cr_expect_null(b);
    ohm_topology_destroy(&t);
}

Test(byzantine, self_view_takes_all_it_heard_target_view_the_targets_neighbours)
{
    float out[2];
    /* self: -mean(x0, x2, x1 = the target) */
    craft("signflip", 1, out);
    cr_expect_float_eq(out[0], -(1 - 3 + 10) / 3.0f, 1e-6);
    cr_expect_float_eq(out[1], -(2 + 0 + 20) / 3.0f, 1e-6);
    /* target: x2 is not a neighbour of peer 1: -mean(x0, x1) */
    craft("signflip:view=target", 1, out);
    cr_expect_float_eq(out[0], 1.0f, 1e-6);
    cr_expect_float_eq(out[1], -1.0f, 1e-6);
}

/* Isolation against target 0 with Metropolis weights (degrees 0:4, 1:3, 2:2,
 * 3:2, 4:3): a_01 = a_02 = a_03 = a_04 = 1/5, a_00 = 1/5. Peer 4 sees x1 and
 * x2 (not x3, weight 1/5, filled with their weighted mean); x_0 = x0. */
Test(byzantine, target_view_isolation_uses_the_targets_weights)
{
    ohm_topology_t *t = load();
    cr_assert_float_eq(ohm_topology_weight(t, 0, 3), 0.2, 1e-12);
    ohm_topology_destroy(&t);
    float out[2];
    craft("isolation:view=target", 0, out);
    for (int c = 0; c < 2; c++) {
        double s = 0.2 * x1[c] + 0.2 * x2[c], mean = s / 0.4;
        double want = (0.8 * x0[c] - s - 0.2 * mean) / 0.2;
        cr_expect_float_eq(out[c], (float)want, 1e-5, "coord %d", c);
    }
}

static ohm_config_t *label_honest(void)
{
    ohm_config_t *c = ohm_config_new();
    const char *sets[] = {"data.name=synthetic", "data.train_size=500", "data.classes=4",
                          "data.partition=label-honest"};
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++)
        cr_assert_eq(ohm_config_set(c, sets[i], "t"), OHM_OK);
    return c;
}

/* Under label-honest the Byzantine peer holds no data: fine for an attack that
 * crafts vectors, an error for one that would train (or a peer without an attack). */
Test(byzantine, label_honest_byzantine_peers_hold_no_data)
{
    ohm_topology_t *t = load();
    ohm_config_t *c = label_honest();
    ohm_data_t *d = NULL;
    ohm_byz_t *b = NULL;
    cr_assert_eq(ohm_byz_new("signflip", 1, 4, &b), OHM_OK);
    cr_assert_eq(ohm_byz_data_open(c, t, 4, b, &d), OHM_OK, "%s", ohm_error_detail());
    cr_expect_eq(ohm_data_train_size(d), 0);
    ohm_data_destroy(&d);
    ohm_byz_destroy(&b);
    /* honest peer 3 holds class 3, all of it */
    cr_assert_eq(ohm_byz_data_open(c, t, 3, NULL, &d), OHM_OK, "%s", ohm_error_detail());
    size_t counts[4];
    ohm_data_class_counts(d, counts);
    cr_expect(counts[3] > 0 && counts[0] == 0 && counts[1] == 0 && counts[2] == 0);
    ohm_data_destroy(&d);
    cr_assert_eq(ohm_byz_new("labelflip", 1, 4, &b), OHM_OK);
    cr_expect_eq(ohm_byz_data_open(c, t, 4, b, &d), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "peer 4 holds no training data"), "%s",
              ohm_error_detail());
    cr_expect_null(d);
    ohm_byz_destroy(&b);
    cr_expect_eq(ohm_byz_data_open(c, t, 4, NULL, &d), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "no attack="), "%s", ohm_error_detail());
    /* with the usual label split the same peer has data and may train */
    cr_assert_eq(ohm_config_set(c, "data.partition=label", "t"), OHM_OK);
    cr_assert_eq(ohm_byz_data_open(c, t, 4, NULL, &d), OHM_OK);
    cr_expect_gt(ohm_data_train_size(d), 0);
    ohm_data_destroy(&d);
    ohm_config_destroy(&c);
    ohm_topology_destroy(&t);
}
