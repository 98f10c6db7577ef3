/* Tests of the double gradient and the Hessian-vector products through
 * convolutions and pooling: every parameter of small CNNs against finite
 * differences of the loss (in double), against the model's float gradient,
 * H v against finite differences of the gradient, the exact Hessian trace
 * against second differences of the loss, Hutchinson's estimate against it,
 * and the kept and recomputed forward passes against each other. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ohm_error.h"
#include "ohm_flatness.h"
#include "ohm_hvp.h"
#include "ohm_model.h"
#include "ohm_testdata.h"
#include "ohm_plan.h"

typedef struct {
    const char *layers;
    int c, h, w;
} net_t;

/* Every kind of layer, padding and stride, each pooling before and after a conv. */
static const net_t nets[] = {
    {"conv:3x3x3/p1,pool:max2,conv:4x2x2,pool:avg2,fc:5,fc:3", 2, 8, 8},
    {"conv:2x3x2/s2/p1,pool:avg2x1,fc:3", 1, 7, 6},
    {"pool:max2,conv:3x2x2,flatten,fc:3", 2, 6, 6},
};
#define NNETS (sizeof nets / sizeof nets[0])

static ohm_model_spec_t spec_of(const net_t *n, int act, int loss, int bias)
{
    ohm_model_spec_t s = {.n_in = n->c * n->h * n->w,
                          .n_out = 3,
                          .bias = bias,
                          .in_shape = {n->c, n->h, n->w},
                          .act = act,
                          .loss = loss};
    cr_assert_eq(ohm_layers_parse(n->layers, "t", s.layers, &s.n_layers), OHM_OK);
    return s;
}

/* Every parameter: central differences of the double loss against the gradient. */
static void gradient_fd(const net_t *net, int act, int loss, int bias)
{
    ohm_model_spec_t s = spec_of(net, act, loss, bias);
    ohm_test_data_t d;
    ohm_test_data_fill(&d, 7, s.n_in, 3, loss == OHM_LOSS_MSE, 31);
    ohm_hvp_t *h = NULL;
    cr_assert_eq(ohm_hvp_new(&s, &d.b, &h), OHM_OK, "%s", ohm_error_detail());
    size_t P = ohm_hvp_nparams(h);
    cr_assert_eq(P, ohm_hvp_nparams_of(&s));
    double *w = ohm_test_rand_vec(P, 0.5, 17), *g = malloc(sizeof(double) * P);
    cr_assert_eq(ohm_hvp_set_params(h, w), OHM_OK);
    double l0;
    ohm_hvp_loss_grad(h, &l0, NULL, g);
    cr_expect(fabs(ohm_hvp_loss_at(h, w) - l0) < 1e-12 * (1 + l0));
    const double eps = 1e-6;
    double gmax = 0;
    for (size_t i = 0; i < P; i++)
        gmax = fmax(gmax, fabs(g[i]));
    int off = 0;
    double worst = 0;
    for (size_t i = 0; i < P; i++) {
        double keep = w[i];
        w[i] = keep + eps;
        double lp = ohm_hvp_loss_at(h, w);
        w[i] = keep - eps;
        double lm = ohm_hvp_loss_at(h, w);
        w[i] = keep;
        double fd = (lp - lm) / (2 * eps), err = fabs(fd - g[i]) / (gmax + 1e-12);
        off += err > 1e-6;
        worst = fmax(worst, err);
    }
    /* Smooth activations: every coordinate. ReLU and max pooling have kinks, one
     * of which may fall inside [w - eps, w + eps] of some coordinate. */
    if (act == OHM_ACT_RELU)
        cr_expect_leq(off, (int)(P / 100), "%s relu: %d of %zu off (worst %g)", net->layers, off, P,
                      worst);
    else
        cr_expect_eq(off, 0, "%s act %d loss %d bias %d: %d of %zu off (worst %g)", net->layers,
                     act, loss, bias, off, P, worst);
    ohm_hvp_destroy(&h);
    free(w);
    free(g);
    ohm_test_data_free(&d);
}

Test(hvp_conv, gradient_by_finite_differences_every_parameter)
{
    for (size_t k = 0; k < NNETS; k++)
        for (int act = OHM_ACT_RELU; act <= OHM_ACT_SIGMOID; act++)
            for (int loss = OHM_LOSS_XENT; loss <= OHM_LOSS_MSE; loss++)
                gradient_fd(&nets[k], act, loss, loss == OHM_LOSS_XENT);
}

/* The double path and the model's float path agree: the same network, layout and loss. */
Test(hvp_conv, gradient_matches_the_float_model)
{
    for (size_t k = 0; k < NNETS; k++)
        for (int act = OHM_ACT_RELU; act <= OHM_ACT_SIGMOID; act++) {
            ohm_model_spec_t s = spec_of(&nets[k], act, OHM_LOSS_XENT, 1);
            ohm_test_data_t d;
            ohm_test_data_fill(&d, 300, s.n_in, 3, 0, 5);
            ohm_model_t *m = NULL;
            cr_assert_eq(ohm_model_new(&s, NULL, NULL, &m), OHM_OK);
            size_t P = ohm_model_nparams(m);
            double *w = ohm_test_rand_vec(P, 0.4, 6), *g = malloc(sizeof(double) * P);
            float *wf = malloc(sizeof(float) * P), *gf = malloc(sizeof(float) * P);
            for (size_t i = 0; i < P; i++)
                wf[i] = (float)w[i];
            ohm_model_set_params(m, wf, OHM_WB_EXACT);
            double lm, lh, am, ah;
            cr_assert_eq(ohm_model_loss_grad(m, &d.b, &lm, gf), OHM_OK);
            cr_assert_eq(ohm_model_evaluate(m, &d.b, NULL, &am), OHM_OK);
            ohm_hvp_t *h = NULL;
            cr_assert_eq(ohm_hvp_new(&s, &d.b, &h), OHM_OK);
            cr_assert_eq(ohm_hvp_set_params_float(h, wf), OHM_OK);
            ohm_hvp_loss_grad(h, &lh, &ah, g);
            cr_expect(fabs(lh - lm) < 1e-5 * (1 + lm), "%s: loss %g vs %g", nets[k].layers, lh, lm);
            cr_expect(fabs(ah - am) < 1e-12);
            double gn = 0;
            for (size_t i = 0; i < P; i++)
                gn = fmax(gn, fabs(g[i]));
            for (size_t i = 0; i < P; i++)
                cr_assert(fabs(g[i] - gf[i]) < 1e-4 * gn + 1e-6, "%s param %zu: %g vs %g",
                          nets[k].layers, i, g[i], (double)gf[i]);
            ohm_hvp_destroy(&h);
            ohm_model_destroy(&m);
            free(w);
            free(g);
            free(wf);
            free(gf);
            ohm_test_data_free(&d);
        }
}

/* H v against (g(w + e v) - g(w - e v)) / 2e, and symmetry u^T H v = v^T H u. */
Test(hvp_conv, products_by_finite_differences_of_the_gradient)
{
    for (size_t k = 0; k < NNETS; k++)
        for (int act = OHM_ACT_RELU; act <= OHM_ACT_SIGMOID; act++)
            for (int loss = OHM_LOSS_XENT; loss <= OHM_LOSS_MSE; loss++) {
                ohm_model_spec_t s = spec_of(&nets[k], act, loss, 1);
                ohm_test_data_t d;
                ohm_test_data_fill(&d, 9, s.n_in, 3, loss == OHM_LOSS_MSE, 41);
                ohm_hvp_t *h = NULL;
                cr_assert_eq(ohm_hvp_new(&s, &d.b, &h), OHM_OK);
                size_t P = ohm_hvp_nparams(h);
                double *w = ohm_test_rand_vec(P, 0.5, 18), *v = ohm_test_rand_vec(P, 1.0, 19),
                       *u = ohm_test_rand_vec(P, 1.0, 20);
                double *hv = malloc(sizeof(double) * P), *hu = malloc(sizeof(double) * P),
                       *gp = malloc(sizeof(double) * P), *gm = malloc(sizeof(double) * P),
                       *wp = malloc(sizeof(double) * P);
                cr_assert_eq(ohm_hvp_set_params(h, w), OHM_OK);
                ohm_hvp_apply(h, v, hv);
                ohm_hvp_apply(h, u, hu);
                const double eps = 1e-5;
                for (size_t i = 0; i < P; i++)
                    wp[i] = w[i] + eps * v[i];
                ohm_hvp_set_params(h, wp);
                ohm_hvp_loss_grad(h, NULL, NULL, gp);
                for (size_t i = 0; i < P; i++)
                    wp[i] = w[i] - eps * v[i];
                ohm_hvp_set_params(h, wp);
                ohm_hvp_loss_grad(h, NULL, NULL, gm);
                double num = 0, den = 0, uhv = 0, vhu = 0;
                for (size_t i = 0; i < P; i++) {
                    double fd = (gp[i] - gm[i]) / (2 * eps);
                    num += (fd - hv[i]) * (fd - hv[i]);
                    den += hv[i] * hv[i];
                    uhv += u[i] * hv[i];
                    vhu += v[i] * hu[i];
                }
                double rel = sqrt(num / den);
                cr_expect_lt(rel, act == OHM_ACT_RELU ? 1e-3 : 1e-6,
                             "%s act %d loss %d: relative error %g", nets[k].layers, act, loss,
                             rel);
                cr_expect(fabs(uhv - vhu) < 1e-9 * (fabs(uhv) + 1e-12), "%s: %g vs %g",
                          nets[k].layers, uhv, vhu);
                ohm_hvp_destroy(&h);
                free(w);
                free(v);
                free(u);
                free(hv);
                free(hu);
                free(gp);
                free(gm);
                free(wp);
                ohm_test_data_free(&d);
            }
}

static void hvp_matvec(void *ctx, const double *x, double *y)
{
    ohm_hvp_apply(ctx, x, y);
}

/* The Hessian's trace on a tiny CNN: the sum of e_i^T H e_i equals the sum of
 * the second differences (L(w + h e_i) - 2 L(w) + L(w - h e_i)) / h^2, and
 * Hutchinson's estimate (what `ohmpeer flatness` reports) agrees within its
 * standard error. */
Test(hvp_conv, hessian_trace_by_finite_differences)
{
    const net_t tiny = {"conv:2x3x3/p1,pool:max2,conv:3x2x2,fc:3", 1, 6, 6};
    for (int act = OHM_ACT_RELU; act <= OHM_ACT_TANH; act++) {
        ohm_model_spec_t s = spec_of(&tiny, act, OHM_LOSS_XENT, 1);
        ohm_test_data_t d;
        ohm_test_data_fill(&d, 20, s.n_in, 3, 0, 51);
        ohm_hvp_t *h = NULL;
        cr_assert_eq(ohm_hvp_new(&s, &d.b, &h), OHM_OK);
        size_t P = ohm_hvp_nparams(h);
        cr_assert_lt(P, 200u);
        double *w = ohm_test_rand_vec(P, 0.6, 52), *e = calloc(P, sizeof(double)),
               *he = malloc(sizeof(double) * P);
        cr_assert_eq(ohm_hvp_set_params(h, w), OHM_OK);
        double l0 = ohm_hvp_loss_at(h, w), exact = 0, fd = 0, hstep = 1e-4, maxdiag = -INFINITY;
        for (size_t i = 0; i < P; i++) {
            e[i] = 1;
            ohm_hvp_apply(h, e, he);
            e[i] = 0;
            exact += he[i];
            maxdiag = fmax(maxdiag, he[i]);
            double keep = w[i];
            w[i] = keep + hstep;
            double lp = ohm_hvp_loss_at(h, w);
            w[i] = keep - hstep;
            double lm = ohm_hvp_loss_at(h, w);
            w[i] = keep;
            fd += (lp - 2 * l0 + lm) / (hstep * hstep);
        }
        cr_expect(fabs(fd - exact) < 1e-4 * fabs(exact), "act %d: trace %g, finite differences %g",
                  act, exact, fd);
        ohm_rng_t r;
        ohm_rng_seed(&r, 9, 0, OHM_STREAM_FLAT);
        double tr, se;
        cr_assert_eq(ohm_flat_trace(hvp_matvec, h, P, 400, &r, &tr, &se), OHM_OK);
        cr_expect(fabs(tr - exact) < 4 * se, "act %d: Hutchinson %g +- %g, exact %g", act, tr, se,
                  exact);
        /* The measures of `ohmpeer flatness` run on a CNN. */
        ohm_flat_opts_t o;
        ohm_flat_opts_default(&o);
        o.probes = 50;
        o.iters = 80;
        o.tol = 1e-10;
        o.draws = 4;
        ohm_flat_result_t res;
        cr_assert_eq(ohm_flatness_measure(h, &o, &res), OHM_OK, "%s", ohm_error_detail());
        cr_expect(fabs(res.trace - exact) < 5 * res.trace_se + 1e-9, "%g +- %g vs %g", res.trace,
                  res.trace_se, exact);
        /* The largest eigenvalue bounds every diagonal entry (Rayleigh quotients). */
        cr_expect(res.top_eig >= maxdiag - 1e-6 * fabs(maxdiag), "top %g, largest diagonal %g",
                  res.top_eig, maxdiag);
        cr_expect(fabs(res.loss - l0) < 1e-12);
        ohm_hvp_destroy(&h);
        free(w);
        free(e);
        free(he);
        ohm_test_data_free(&d);
    }
}

/* Several chunks, the forward pass kept or recomputed per product: the same results. */
Test(hvp_conv, kept_and_recomputed_forward_agree)
{
    ohm_model_spec_t s = spec_of(&nets[0], OHM_ACT_TANH, OHM_LOSS_XENT, 1);
    ohm_test_data_t d;
    ohm_test_data_fill(&d, 1100, s.n_in, 3, 0, 61); /* more than one chunk of 512 */
    ohm_hvp_t *a = NULL, *b = NULL;
    cr_assert_eq(ohm_hvp_new(&s, &d.b, &a), OHM_OK);
    cr_assert_eq(ohm_hvp_new(&s, &d.b, &b), OHM_OK);
    ohm_hvp_recompute(b);
    size_t P = ohm_hvp_nparams(a);
    double *w = ohm_test_rand_vec(P, 0.4, 62), *v = ohm_test_rand_vec(P, 1.0, 63);
    double *ga = malloc(sizeof(double) * P), *gb = malloc(sizeof(double) * P),
           *ha = malloc(sizeof(double) * P), *hb = malloc(sizeof(double) * P);
    cr_assert_eq(ohm_hvp_set_params(a, w), OHM_OK);
    cr_assert_eq(ohm_hvp_set_params(b, w), OHM_OK);
    double la, lb, aa, ab;
    ohm_hvp_loss_grad(a, &la, &aa, ga);
    ohm_hvp_loss_grad(b, &lb, &ab, gb);
    ohm_hvp_apply(a, v, ha);
    (void)ohm_hvp_loss_at(b, v); /* scratch of the recomputing path overwritten in between */
    ohm_hvp_apply(b, v, hb);
    cr_expect_eq(la, lb);
    cr_expect_eq(aa, ab);
    for (size_t i = 0; i < P; i++) {
        cr_assert_eq(ga[i], gb[i], "gradient %zu", i);
        cr_assert_eq(ha[i], hb[i], "product %zu", i);
    }
    /* And a chunk-free evaluation of the same loss: per-example sums agree. */
    double sum = 0;
    for (int i = 0; i < d.b.n; i += 100) {
        ohm_batch_t part = d.b;
        part.n = d.b.n - i < 100 ? d.b.n - i : 100;
        part.x = d.x + (size_t)i * s.n_in;
        part.y = d.y + i;
        ohm_hvp_t *p = NULL;
        cr_assert_eq(ohm_hvp_new(&s, &part, &p), OHM_OK);
        sum += ohm_hvp_loss_at(p, w) * part.n;
        ohm_hvp_destroy(&p);
    }
    cr_expect(fabs(sum / d.b.n - la) < 1e-12 * (1 + la));
    ohm_hvp_destroy(&a);
    ohm_hvp_destroy(&b);
    free(w);
    free(v);
    free(ga);
    free(gb);
    free(ha);
    free(hb);
    ohm_test_data_free(&d);
}

Test(hvp_conv, bad_specs_are_errors)
{
    ohm_model_spec_t s = spec_of(&nets[0], OHM_ACT_RELU, OHM_LOSS_XENT, 1);
    s.in_shape[1] = 7; /* 2 x 7 x 8 != 128 */
    ohm_test_data_t d;
    ohm_test_data_fill(&d, 3, s.n_in, 3, 0, 1);
    ohm_hvp_t *h = NULL;
    cr_expect_eq(ohm_hvp_new(&s, &d.b, &h), OHM_EINVAL);
    cr_expect_null(h);
    cr_expect_eq(ohm_hvp_nparams_of(&s), 0u);
    s = spec_of(&nets[0], OHM_ACT_RELU, OHM_LOSS_XENT, 1);
    s.layers[s.n_layers - 1].out = 4; /* fc:4 for 3 outputs */
    cr_expect_eq(ohm_hvp_new(&s, &d.b, &h), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "the last layer must be fc:3") != NULL, "%s",
              ohm_error_detail());
    ohm_test_data_free(&d);
}
