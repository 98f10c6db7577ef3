/* Tests of robust/ohm_attack: spec parsing and its errors, the normal
 * quantile and ALIE's z, every attack against hand-computed vectors, the
 * fallbacks without honest vectors, noise statistics and determinism, and
 * isolation checked through the weighted rule of ohm_robust. */
#include "ohm_attack.h"
#include "ohm_robust.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void expect_vec(const float *got, const double *want, size_t d, double tol)
{
    for (size_t c = 0; c < d; c++)
        cr_expect(fabs(got[c] - want[c]) <= tol * (1 + fabs(want[c])),
                  "coord %zu: got %.9g want %.9g", c, got[c], want[c]);
}

static ohm_attack_params_t parsed(const char *spec)
{
    ohm_attack_params_t p;
    char err[200] = "";
    cr_assert_eq(ohm_attack_parse(spec, &p, err, sizeof err), OHM_ATTACK_OK, "%s: %s", spec, err);
    return p;
}

static int craft(const char *spec, const ohm_attack_view_t *v, size_t d, float *out)
{
    ohm_attack_params_t p = parsed(spec);
    return ohm_attack_craft(&p, v, d, out);
}

/* ----------------------------------------------------------------- parsing */

Test(attack, parse_names_and_defaults)
{
    for (int k = 0; k < OHM_ATTACK_COUNT; k++) {
        ohm_attack_params_t p = parsed(ohm_attack_name((ohm_attack_kind_t)k));
        cr_expect_eq(p.kind, (ohm_attack_kind_t)k);
        cr_expect_eq(ohm_attack_from_name(ohm_attack_name((ohm_attack_kind_t)k)), k);
        cr_expect(p.sigma == 30.0 && p.eps == 0.1 && p.dup == 0 && p.seed == 0 && !p.z_set);
    }
    ohm_attack_params_t p = parsed("gaussian:sigma=5.5,seed=77");
    cr_expect(p.sigma == 5.5 && p.seed == 77);
    p = parsed("alie:z=1.25");
    cr_expect(p.z_set && p.z == 1.25);
    p = parsed("ipm:eps=0.5");
    cr_expect_eq(p.eps, 0.5);
    p = parsed("duplicate:dup=3");
    cr_expect_eq(p.dup, 3);
    cr_expect_eq(ohm_attack_from_name("nope"), -1);
    cr_expect_str_eq(ohm_attack_name(OHM_ATTACK_COUNT), "unknown");
}

Test(attack, parse_errors_name_the_attack_or_key)
{
    static const struct {
        const char *spec, *needle;
    } bad[] = {
        {"bogus", "unknown attack 'bogus'"},
        {"gaussian:foo=1", "unknown key 'foo'"},
        {"ipm:sigma=1", "takes no key 'sigma'"},
        {"zero:seed=1", "takes no key 'seed'"},
        {"gaussian:sigma=abc", "bad sigma 'abc'"},
        {"gaussian:sigma=-1", "sigma=-1 < 0"},
        {"gaussian:sigma=inf", "bad sigma"},
        {"gaussian:", "empty option list"},
        {"gaussian:sigma", "not key=value"},
        {"gaussian:=3", "not key=value"},
        {"duplicate:dup=-1", "negative"},
        {"duplicate:dup=1x", "bad dup"},
        {"alie:z=", "not key=value"},
        {"", "unknown attack ''"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ohm_attack_params_t p;
        ohm_attack_defaults(&p, OHM_ATTACK_ZERO);
        p.dup = 42;
        char err[200] = "";
        cr_expect_eq(ohm_attack_parse(bad[i].spec, &p, err, sizeof err), OHM_ATTACK_EARGS, "%s",
                     bad[i].spec);
        cr_expect(strstr(err, bad[i].needle) != NULL, "'%s' -> '%s'", bad[i].spec, err);
        cr_expect_eq(p.dup, 42, "params untouched on error");
    }
    ohm_attack_params_t p;
    cr_expect_eq(ohm_attack_parse("bogus", &p, NULL, 0), OHM_ATTACK_EARGS);
    cr_expect_eq(ohm_attack_parse(NULL, &p, NULL, 0), OHM_ATTACK_EARGS);
}

Test(attack, sends_and_label_flip)
{
    ohm_attack_params_t p = parsed("crash");
    cr_expect_not(ohm_attack_sends(&p));
    cr_expect_not(ohm_attack_flips_labels(&p));
    p = parsed("labelflip");
    cr_expect(ohm_attack_sends(&p));
    cr_expect(ohm_attack_flips_labels(&p));
    cr_expect_eq(ohm_attack_flip_label(3, 10), 6);
    cr_expect_eq(ohm_attack_flip_label(0, 10), 9);
    cr_expect_eq(ohm_attack_flip_label(9, 10), 0);
    cr_expect_eq(ohm_attack_flip_label(1, 2), 0);
    cr_expect_eq(ohm_attack_flip_label(12, 10), 12); /* out of range: unchanged */
}

/* ---------------------------------------------------------------- statistics */

Test(attack, normal_quantile)
{
    /* reference values of Phi^-1 */
    cr_expect(fabs(ohm_attack_norm_ppf(0.5)) < 1e-15);
    cr_expect(fabs(ohm_attack_norm_ppf(0.975) - 1.9599639845400536) < 1e-12);
    cr_expect(fabs(ohm_attack_norm_ppf(0.96) - 1.7506860712521695) < 1e-12);
    cr_expect(fabs(ohm_attack_norm_ppf(0.001) + 3.090232306167813) < 1e-12);
    cr_expect(fabs(ohm_attack_norm_ppf(1e-10) + 6.361340902404056) < 1e-9);
    for (double q = 0.01; q < 1; q += 0.07)
        cr_expect(fabs(ohm_attack_norm_ppf(q) + ohm_attack_norm_ppf(1 - q)) < 1e-12);
    cr_expect(isnan(ohm_attack_norm_ppf(0)));
    cr_expect(isnan(ohm_attack_norm_ppf(1)));
    cr_expect(isnan(ohm_attack_norm_ppf(NAN)));
}

Test(attack, alie_z)
{
    /* n = 50, f = 24: s = floor(26) - 24 = 2, z = Phi^-1(48/50) = 1.7507 */
    cr_expect(fabs(ohm_attack_alie_z(50, 24) - 1.7506860712521695) < 1e-12);
    /* n = 12, f = 2 (the IOS setting): s = 7 - 2 = 5, z = Phi^-1(7/12) = 0.2104 */
    cr_expect(fabs(ohm_attack_alie_z(12, 2) - 0.21042839424792484) < 1e-12);
    /* f = 0, n = 10: s = 6, Phi^-1(0.4) < 0 */
    cr_expect(ohm_attack_alie_z(10, 0) < 0);
    cr_expect_eq(ohm_attack_alie_z(0, 0), 0.0);
    cr_expect_eq(ohm_attack_alie_z(4, 4), 0.0); /* (n - s)/n >= 1 */
}

/* ------------------------------------------------------------------ crafting */

static const float h0[] = {2, 0, 1}, h1[] = {4, -2, 3}, tgt[] = {1, 2, -4};
static const float *const honest[] = {h0, h1};

static ohm_attack_view_t view(int n_honest, const float *target)
{
    ohm_attack_view_t v = {honest, n_honest, target, 0.5, 0.3, 0.2, 12, 2, 5, 3, NULL, NULL};
    return v;
}

Test(attack, formulas_by_hand)
{
    float out[3];
    ohm_attack_view_t v = view(2, tgt);             /* honest mean (3, -1, 2) */
    cr_assert_eq(craft("signflip", &v, 3, out), 0); /* -(2+4+1, 0-2+2, 1+3-4)/3 */
    expect_vec(out, (double[]){-7.0 / 3, 0, 0}, 3, 1e-6);
    cr_assert_eq(craft("ipm", &v, 3, out), 0);
    expect_vec(out, (double[]){-0.3, 0.1, -0.2}, 3, 1e-6);
    cr_assert_eq(craft("ipm:eps=2", &v, 3, out), 0);
    expect_vec(out, (double[]){-6, 2, -4}, 3, 1e-6);
    cr_assert_eq(craft("gaussian:sigma=0", &v, 3, out), 0);
    expect_vec(out, (double[]){3, -1, 2}, 3, 1e-6);
    cr_assert_eq(craft("duplicate", &v, 3, out), 0);
    expect_vec(out, (double[]){2, 0, 1}, 3, 0);
    cr_assert_eq(craft("duplicate:dup=1", &v, 3, out), 0);
    expect_vec(out, (double[]){4, -2, 3}, 3, 0);
    cr_assert_eq(craft("duplicate:dup=5", &v, 3, out), 0); /* 5 mod 2 */
    expect_vec(out, (double[]){4, -2, 3}, 3, 0);
    /* alie: mu (3,-1,2), population sigma (1,1,1) */
    cr_assert_eq(craft("alie:z=1.5", &v, 3, out), 0);
    expect_vec(out, (double[]){4.5, 0.5, 3.5}, 3, 1e-6);
    cr_assert_eq(craft("alie", &v, 3, out), 0); /* n = 12, f = 2: z = 0.2104 */
    expect_vec(out, (double[]){3.2104284, -0.7895716, 2.2104284}, 3, 1e-6);
    /* isolation: v = ((1 - .5) x_t - .3 mu)/.2 = (.5 - .9, 1 + .3, -2 - .6)/.2 */
    cr_assert_eq(craft("isolation", &v, 3, out), 0);
    expect_vec(out, (double[]){-2, 6.5, -13}, 3, 1e-6);
    cr_assert_eq(craft("zero", &v, 3, out), 0);
    expect_vec(out, (double[]){0, 0, 0}, 3, 0);
    cr_assert_eq(craft("nan", &v, 3, out), 0);
    cr_expect(isnan(out[0]) && isnan(out[1]) && isnan(out[2]));
    out[0] = 7;
    cr_assert_eq(craft("crash", &v, 3, out), 0);
    cr_expect_eq(out[0], 7.0f); /* nothing written */
    const float own[] = {9, 8, 7};
    v.own = own;
    cr_assert_eq(craft("labelflip", &v, 3, out), 0);
    expect_vec(out, (double[]){9, 8, 7}, 3, 0);
}

Test(attack, fallbacks_without_honest_vectors)
{
    float out[3];
    ohm_attack_view_t v = view(0, tgt);
    cr_assert_eq(craft("signflip", &v, 3, out), 0);
    expect_vec(out, (double[]){-1, -2, 4}, 3, 0);
    cr_assert_eq(craft("gaussian:sigma=0", &v, 3, out), 0);
    expect_vec(out, (double[]){1, 2, -4}, 3, 0);
    cr_assert_eq(craft("ipm", &v, 3, out), 0);
    expect_vec(out, (double[]){-0.1, -0.2, 0.4}, 3, 1e-6);
    cr_assert_eq(craft("alie", &v, 3, out), 0);
    expect_vec(out, (double[]){1, 2, -4}, 3, 0);
    cr_assert_eq(craft("duplicate", &v, 3, out), 0);
    expect_vec(out, (double[]){1, 2, -4}, 3, 0);
    /* isolation: the honest mean is approximated by x_t: ((1-.5) - .3)/.2 = 1 */
    cr_assert_eq(craft("isolation", &v, 3, out), 0);
    expect_vec(out, (double[]){1, 2, -4}, 3, 1e-6);
    /* target not received either: zeros */
    v.target = NULL;
    const char *specs[] = {"signflip", "gaussian:sigma=0", "ipm", "alie", "duplicate", "isolation"};
    for (int i = 0; i < 6; i++) {
        out[0] = out[1] = out[2] = 5;
        cr_assert_eq(craft(specs[i], &v, 3, out), 0);
        expect_vec(out, (double[]){0, 0, 0}, 3, 0);
    }
    /* target missing, honest seen: isolation sends the honest mean */
    v = view(2, NULL);
    cr_assert_eq(craft("isolation", &v, 3, out), 0);
    expect_vec(out, (double[]){3, -1, 2}, 3, 1e-6);
    cr_assert_eq(craft("signflip", &v, 3, out), 0);
    expect_vec(out, (double[]){-3, 1, -2}, 3, 1e-6);
}

Test(attack, invalid_views)
{
    float out[3];
    ohm_attack_params_t p = parsed("isolation");
    ohm_attack_view_t v = view(2, tgt);
    v.wb = 0;
    cr_expect_eq(ohm_attack_craft(&p, &v, 3, out), OHM_ATTACK_EARGS);
    v.wb = NAN;
    cr_expect_eq(ohm_attack_craft(&p, &v, 3, out), OHM_ATTACK_EARGS);
    p = parsed("labelflip"); /* needs the own model */
    v = view(2, tgt);
    cr_expect_eq(ohm_attack_craft(&p, &v, 3, out), OHM_ATTACK_EARGS);
    p = parsed("zero");
    v.n_honest = -1;
    cr_expect_eq(ohm_attack_craft(&p, &v, 3, out), OHM_ATTACK_EARGS);
    const float *holes[] = {h0, NULL};
    v = view(2, tgt);
    v.honest = holes;
    cr_expect_eq(ohm_attack_craft(&p, &v, 3, out), OHM_ATTACK_EARGS);
    v = view(2, tgt);
    cr_expect_eq(ohm_attack_craft(&p, &v, 3, NULL), OHM_ATTACK_EARGS);
    cr_expect_eq(ohm_attack_craft(&p, &v, 0, NULL), OHM_ATTACK_OK);
    cr_expect_eq(ohm_attack_craft(NULL, &v, 3, out), OHM_ATTACK_EARGS);
}

Test(attack, gaussian_noise_statistics_and_determinism)
{
    const size_t d = 100001; /* odd: the last Box-Muller pair is split */
    float *base = malloc(sizeof(float) * d), *a = malloc(sizeof(float) * d),
          *b = malloc(sizeof(float) * d);
    for (size_t c = 0; c < d; c++)
        base[c] = (float)(c % 7) - 3.0f;
    const float *h[] = {base};
    ohm_attack_view_t v = {h, 1, NULL, 0.5, 0.3, 0.2, 12, 2, 9, 4, NULL, NULL};
    cr_assert_eq(craft("gaussian:seed=5", &v, d, a), 0);
    double s = 0, s2 = 0;
    for (size_t c = 0; c < d; c++) {
        double e = a[c] - base[c];
        s += e, s2 += e * e;
    }
    double mean = s / d, sd = sqrt(s2 / d - mean * mean);
    /* sigma = 30: the sample mean is within 4 standard errors (0.38), the
     * sample deviation within 1.5% */
    cr_expect(fabs(mean) < 4 * 30 / sqrt((double)d), "mean %g", mean);
    cr_expect(fabs(sd - 30) < 0.45, "sd %g", sd);
    cr_assert_eq(craft("gaussian:seed=5", &v, d, b), 0);
    cr_expect_arr_eq(a, b, sizeof(float) * d, "same view, same vector");
    v.round = 10;
    cr_assert_eq(craft("gaussian:seed=5", &v, d, b), 0);
    cr_expect(memcmp(a, b, sizeof(float) * d) != 0, "another round, other noise");
    v.round = 9;
    v.target_id = 5;
    cr_assert_eq(craft("gaussian:seed=5", &v, d, b), 0);
    cr_expect(memcmp(a, b, sizeof(float) * d) != 0, "another target, other noise");
    v.target_id = 4;
    cr_assert_eq(craft("gaussian:seed=6", &v, d, b), 0);
    cr_expect(memcmp(a, b, sizeof(float) * d) != 0, "another seed, other noise");
    free(base);
    free(a);
    free(b);
}

/* The target combines with the weighted rule: self a_tt, honest neighbours
 * sharing h, two Byzantine neighbours sharing wb who both send the isolation
 * vector. When the honest neighbours the Byzantine peer sees are exactly the
 * target's, the combination returns the target's own model. */
Test(attack, isolation_makes_the_target_keep_its_model)
{
    enum { D = 64 };
    float xt[D], ha[D], hb[D], hc[D], byz[D], out[D];
    for (int c = 0; c < D; c++) {
        xt[c] = (float)sin(c);
        ha[c] = (float)cos(c) * 3;
        hb[c] = 1.0f + c * 0.01f;
        hc[c] = -2.0f;
    }
    const float *hon[] = {ha, hb, hc};
    /* weights of the target: self .25, honest .15 each (h = .45), Byzantine .15 each (wb = .3) */
    ohm_attack_view_t v = {hon, 3, xt, 0.25, 0.45, 0.30, 6, 2, 1, 0, NULL, NULL};
    cr_assert_eq(craft("isolation", &v, D, byz), 0);
    const float *rows[] = {xt, ha, hb, hc, byz, byz};
    const double w[] = {0.25, 0.15, 0.15, 0.15, 0.15, 0.15};
    ohm_rule_params_t p;
    ohm_rule_defaults(&p, OHM_RULE_WEIGHTED);
    cr_assert_eq(ohm_robust_aggregate(&p, rows, w, 6, D, out, NULL), 0);
    for (int c = 0; c < D; c++)
        cr_expect(fabsf(out[c] - xt[c]) < 1e-5f, "c=%d: %g vs %g", c, out[c], xt[c]);
    /* and the sign-flip vector, by contrast, moves it */
    cr_assert_eq(craft("signflip", &v, D, byz), 0);
    cr_assert_eq(ohm_robust_aggregate(&p, rows, w, 6, D, out, NULL), 0);
    double moved = 0;
    for (int c = 0; c < D; c++)
        moved += fabs(out[c] - xt[c]);
    cr_expect(moved > 1.0);
}

/* ----------------------------------------------------- control-plane attacks */

Test(attack, control_plane_specs_parse_and_refuse_bad_keys)
{
    ohm_attack_params_t p = parsed("roundlie:shift=-50,nan=1");
    cr_expect_eq(p.kind, OHM_ATTACK_ROUNDLIE);
    cr_expect_eq(p.shift, -50);
    cr_expect_eq(p.shift_set, 1);
    cr_expect_eq(p.nan, 1);
    p = parsed("stale:lag=3,restamp=1");
    cr_expect_eq(p.lag, 3);
    cr_expect_eq(p.restamp, 1);
    p = parsed("hello-flood:count=5");
    cr_expect_eq(p.count, 5);
    p = parsed("mute-then-burst:mute=2,burst=4");
    cr_expect_eq(p.mute, 2);
    cr_expect_eq(p.burst, 4);
    p = parsed("mute-then-burst");
    cr_expect_eq(p.mute, 3, "default mute");
    cr_expect_eq(p.burst, 8, "default burst");
    const char *bad[] = {"stale:lag=0",         "stale:shift=3",      "roundlie:nan=2",
                         "hello-flood:count=x", "roundlie:shift=1.5", "gaussian:lag=3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[200] = "";
        cr_expect_eq(ohm_attack_parse(bad[i], &p, err, sizeof err), OHM_ATTACK_EARGS, "%s", bad[i]);
        cr_expect_neq(err[0], '\0', "%s: no reason given", bad[i]);
    }
}

Test(attack, plans_follow_their_formulas)
{
    ohm_attack_plan_t pl;
    ohm_attack_params_t p = parsed("gaussian");
    ohm_attack_plan(&p, 7, 100, &pl);
    cr_expect(pl.models == 1 && pl.stamp == 7 && !pl.replay && pl.hellos == 0);
    p = parsed("crash");
    ohm_attack_plan(&p, 7, 100, &pl);
    cr_expect_eq(pl.models, 0);
    /* roundlie: near the end of the run by default, else round + shift (>= 0) */
    p = parsed("roundlie");
    ohm_attack_plan(&p, 7, 8000, &pl);
    cr_expect_eq(pl.stamp, 7990);
    ohm_attack_plan(&p, 7995, 8000, &pl);
    cr_expect_eq(pl.stamp, 7997, "never behind round + 2");
    p = parsed("roundlie:shift=-50");
    ohm_attack_plan(&p, 70, 8000, &pl);
    cr_expect_eq(pl.stamp, 20);
    ohm_attack_plan(&p, 10, 8000, &pl);
    cr_expect_eq(pl.stamp, 0);
    /* stale: honest-looking until lag rounds have passed, then replays */
    p = parsed("stale:lag=3");
    ohm_attack_plan(&p, 2, 100, &pl);
    cr_expect(!pl.replay && pl.stamp == 2);
    ohm_attack_plan(&p, 10, 100, &pl);
    cr_expect(pl.replay && pl.replay_round == 7 && pl.stamp == 7);
    p = parsed("stale:lag=3,restamp=1");
    ohm_attack_plan(&p, 10, 100, &pl);
    cr_expect(pl.replay && pl.replay_round == 7 && pl.stamp == 10);
    /* mute-then-burst: mute silent rounds, then 1 + burst models at once */
    p = parsed("mute-then-burst:mute=2,burst=4");
    int sent[6];
    for (uint32_t r = 0; r < 6; r++) {
        ohm_attack_plan(&p, r, 100, &pl);
        sent[r] = pl.models;
    }
    int want[6] = {0, 0, 5, 0, 0, 5};
    cr_expect_arr_eq(sent, want, sizeof sent);
    /* hello-flood: count hellos, stamped in [0, round], reproducibly */
    p = parsed("hello-flood:count=50");
    ohm_attack_plan(&p, 40, 100, &pl);
    cr_expect_eq(pl.hellos, 50);
    int distinct = 0;
    for (int k = 0; k < 50; k++) {
        uint32_t s = ohm_attack_hello_stamp(&p, 40, k);
        cr_expect_leq(s, 40);
        cr_expect_eq(s, ohm_attack_hello_stamp(&p, 40, k));
        distinct += k == 0 || s != ohm_attack_hello_stamp(&p, 40, k - 1);
    }
    cr_expect_gt(distinct, 25, "the stamps look random");
}

Test(attack, control_plane_values_are_the_honest_mean_or_nan)
{
    float a[3] = {1, 2, 3}, b[3] = {3, 4, 5}, out[3];
    const float *h[2] = {a, b};
    ohm_attack_view_t v = {.honest = h, .n_honest = 2};
    const double mean[3] = {2, 3, 4};
    const char *specs[] = {"roundlie", "stale", "hello-flood", "mute-then-burst"};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(craft(specs[i], &v, 3, out), OHM_ATTACK_OK);
        expect_vec(out, mean, 3, 0);
    }
    cr_assert_eq(craft("roundlie:nan=1", &v, 3, out), OHM_ATTACK_OK);
    for (int c = 0; c < 3; c++)
        cr_expect(isnan(out[c]));
}

/* ----------------------------------------------------------- view=target */

Test(attack, view_key_parses_and_is_refused_where_meaningless)
{
    static const char *const ok[] = {"gaussian:view=target", "signflip:view=target",
                                     "isolation:view=target", "duplicate:view=target",
                                     "alie:view=target,z=0.5", "ipm:view=self"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        ohm_attack_params_t p = parsed(ok[i]);
        cr_expect_eq(p.view, strstr(ok[i], "target") ? OHM_ATTACK_VIEW_TARGET
                                                     : OHM_ATTACK_VIEW_SELF, "%s", ok[i]);
    }
    cr_expect_eq(parsed("signflip").view, OHM_ATTACK_VIEW_SELF, "self stays the default");
    ohm_attack_params_t p;
    char err[200] = "";
    cr_expect_eq(ohm_attack_parse("signflip:view=other", &p, err, sizeof err), OHM_ATTACK_EARGS);
    cr_expect(strstr(err, "view=other (want self or target)") != NULL, "%s", err);
    cr_expect_eq(ohm_attack_parse("zero:view=target", &p, err, sizeof err), OHM_ATTACK_EARGS);
    cr_expect(strstr(err, "takes no key 'view'") != NULL, "%s", err);
}

Test(attack, alie_z_of_the_ios_paper)
{
    /* s = floor((N + 1)/2) - B, z = Phi^-1((N - s)/N) */
    cr_expect(fabs(ohm_attack_alie_z_paper(8, 1) - 0.31863936396437514) < 1e-12); /* 5/8 */
    cr_expect(fabs(ohm_attack_alie_z_paper(7, 1) - 0.18001236979270493) < 1e-12); /* 4/7 */
    cr_expect(fabs(ohm_attack_alie_z_paper(10, 2) - 0.5244005127080407) < 1e-12); /* 7/10 */
    cr_expect_eq(ohm_attack_alie_z_paper(0, 0), 0.0);
    cr_expect_eq(ohm_attack_alie_z_paper(2, 2), 0.0); /* (N - s)/N >= 1 */
    /* the self-view formula gives another z for the same neighbourhood (n = N + 1) */
    cr_expect(fabs(ohm_attack_alie_z(9, 1) - ohm_attack_alie_z_paper(8, 1)) > 0.1);
}

/* Three honest neighbours of the target with weights .1, .2, .15 (h = .45),
 * self weight .25, two Byzantine neighbours sharing wb = .3. */
static const float t0[] = {1, -1, 2, 0}, t1[] = {3, 5, -2, 1}, t2[] = {-4, 2, 0, 2},
                   tx[] = {0.5f, 1, -1, 3};
static const float *const thon[] = {t0, t1, t2};
static const double tw[] = {0.1, 0.2, 0.15};

static ohm_attack_view_t tview(int n_honest, const float *target)
{
    ohm_attack_view_t v = {thon, n_honest, target, 0.25, 0.45, 0.30, 6, 2, 7, 3, NULL, tw};
    return v;
}

Test(attack, target_view_formulas_by_hand)
{
    float out[4];
    double want[4];
    ohm_attack_view_t v = tview(3, tx);
    /* signflip: -mean(honest U target) */
    cr_assert_eq(craft("signflip:view=target", &v, 4, out), 0);
    for (int c = 0; c < 4; c++)
        want[c] = -(t0[c] + t1[c] + t2[c] + tx[c]) / 4.0;
    expect_vec(out, want, 4, 1e-6);
    /* isolation: ((1 - a_tt) x_t - sum_j a_tj x_j) / wb */
    cr_assert_eq(craft("isolation:view=target", &v, 4, out), 0);
    for (int c = 0; c < 4; c++)
        want[c] = (0.75 * tx[c] - 0.1 * t0[c] - 0.2 * t1[c] - 0.15 * t2[c]) / 0.3;
    expect_vec(out, want, 4, 1e-6);
    /* alie: mean + z * unbiased std, z of the paper for N = n - 1 = 5, B = 2:
     * s = 3 - 2 = 1, z = Phi^-1(4/5) */
    cr_assert_eq(craft("alie:view=target", &v, 4, out), 0);
    double z = ohm_attack_norm_ppf(0.8);
    for (int c = 0; c < 4; c++) {
        double mu = (t0[c] + t1[c] + t2[c]) / 3.0, s2 = 0;
        const float *h[] = {t0, t1, t2};
        for (int i = 0; i < 3; i++)
            s2 += (h[i][c] - mu) * (h[i][c] - mu);
        want[c] = mu + z * sqrt(s2 / 2.0);
    }
    expect_vec(out, want, 4, 1e-6);
    /* ipm and gaussian keep their formulas over the (target's) honest vectors */
    cr_assert_eq(craft("ipm:view=target", &v, 4, out), 0);
    for (int c = 0; c < 4; c++)
        want[c] = -0.1 * (t0[c] + t1[c] + t2[c]) / 3.0;
    expect_vec(out, want, 4, 1e-6);
    cr_assert_eq(craft("gaussian:view=target,sigma=0", &v, 4, out), 0);
    for (int c = 0; c < 4; c++)
        want[c] = (t0[c] + t1[c] + t2[c]) / 3.0;
    expect_vec(out, want, 4, 1e-6);
}

/* With the exact vector the target's weighted combination is its own model. */
Test(attack, target_view_isolation_is_exact_through_the_weighted_rule)
{
    float byz[4], out[4];
    ohm_attack_view_t v = tview(3, tx);
    cr_assert_eq(craft("isolation:view=target", &v, 4, byz), 0);
    const float *rows[] = {tx, t0, t1, t2, byz, byz};
    const double w[] = {0.25, 0.1, 0.2, 0.15, 0.15, 0.15};
    ohm_rule_params_t p;
    ohm_rule_defaults(&p, OHM_RULE_WEIGHTED);
    cr_assert_eq(ohm_robust_aggregate(&p, rows, w, 6, 4, out, NULL), 0);
    for (int c = 0; c < 4; c++)
        cr_expect(fabsf(out[c] - tx[c]) < 1e-5f, "c=%d: %g vs %g", c, out[c], tx[c]);
}

/* An honest neighbour of the target that the attacker did not observe: its
 * weight (h - sum of the observed weights) is filled with the observed ones'
 * weighted mean; without the target's vector the mean stands for it. */
Test(attack, target_view_isolation_approximates_what_it_did_not_see)
{
    float out[4];
    double want[4];
    ohm_attack_view_t v = tview(2, tx); /* t2 (weight .15) unseen */
    cr_assert_eq(craft("isolation:view=target", &v, 4, out), 0);
    for (int c = 0; c < 4; c++) {
        double s = 0.1 * t0[c] + 0.2 * t1[c], m = s / 0.3;
        want[c] = (0.75 * tx[c] - s - 0.15 * m) / 0.3;
    }
    expect_vec(out, want, 4, 1e-6);
    v = tview(3, NULL);
    cr_assert_eq(craft("isolation:view=target", &v, 4, out), 0);
    for (int c = 0; c < 4; c++) {
        double s = 0.1 * t0[c] + 0.2 * t1[c] + 0.15 * t2[c], m = s / 0.45;
        want[c] = (0.75 * m - s) / 0.3;
    }
    expect_vec(out, want, 4, 1e-6);
    v = tview(0, tx); /* nothing observed: the target's own vector */
    cr_assert_eq(craft("isolation:view=target", &v, 4, out), 0);
    for (int c = 0; c < 4; c++)
        want[c] = tx[c];
    expect_vec(out, want, 4, 1e-6);
    v = tview(3, tx);
    v.honest_w = NULL;
    cr_expect_eq(craft("isolation:view=target", &v, 4, out), OHM_ATTACK_EARGS, "weights needed");
}

/* duplicate:view=target copies one of the honest vectors, drawn again each
 * round: over many rounds every one is drawn, and a (round, target) always
 * gives the same one. */
Test(attack, target_view_duplicate_redraws_every_round)
{
    float out[4], again[4];
    int seen[3] = {0, 0, 0};
    for (uint32_t r = 0; r < 300; r++) {
        ohm_attack_view_t v = tview(3, tx);
        v.round = r;
        cr_assert_eq(craft("duplicate:view=target,dup=0", &v, 4, out), 0);
        int which = -1;
        for (int i = 0; i < 3; i++)
            if (memcmp(out, thon[i], sizeof out) == 0) which = i;
        cr_assert(which >= 0, "round %u: not a copy of an honest vector", r);
        seen[which]++;
        cr_assert_eq(craft("duplicate:view=target,dup=0", &v, 4, again), 0);
        cr_expect_arr_eq(out, again, sizeof out, "same round and target, same copy");
    }
    for (int i = 0; i < 3; i++)
        cr_expect(seen[i] > 60, "vector %d drawn %d times of 300", i, seen[i]);
    /* the self view keeps copying honest[dup] */
    ohm_attack_view_t v = tview(3, tx);
    cr_assert_eq(craft("duplicate:dup=1", &v, 4, out), 0);
    cr_expect_arr_eq(out, t1, sizeof out);
}
