/* Tests of the MLP over digital tiles: gradients by finite differences,
 * SGD step semantics, flat parameters, state round trip. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ohm_error.h"
#include "ohm_model.h"

static ohm_model_t *make(int in, int out, int nh, const int *h, int act, int loss, int bias)
{
    ohm_model_spec_t s = {
        .n_in = in, .n_out = out, .n_hidden = nh, .act = act, .loss = loss, .bias = bias};
    for (int i = 0; i < nh; i++)
        s.hidden[i] = h[i];
    ohm_model_t *m = NULL;
    cr_assert_eq(ohm_model_new(&s, NULL, NULL, &m), OHM_OK);
    ohm_rng_t r;
    ohm_rng_seed(&r, 7, 0, OHM_STREAM_INIT);
    ohm_model_init(m, &r);
    return m;
}

typedef struct {
    float x[16 * 6];
    int32_t y[16];
    float t[16 * 3];
    ohm_batch_t b;
} data_t;

static void fill(data_t *d, int n, int dim, int classes, int regress)
{
    ohm_rng_t r;
    ohm_rng_seed(&r, 3, 0, OHM_STREAM_DATA);
    for (int i = 0; i < n * dim; i++)
        d->x[i] = (float)ohm_rng_normal(&r);
    for (int i = 0; i < n; i++)
        d->y[i] = (int32_t)ohm_rng_below(&r, (uint32_t)classes);
    for (int i = 0; i < n * classes; i++)
        d->t[i] = (float)ohm_rng_normal(&r);
    d->b = (ohm_batch_t){.n = n,
                         .dim = dim,
                         .x = d->x,
                         .y = regress ? NULL : d->y,
                         .t = regress ? d->t : NULL,
                         .tdim = regress ? classes : 0};
}

/* Central differences in double-checked float: relative error small for every coordinate. */
static void gradcheck(int act, int loss)
{
    int h[2] = {5, 4};
    ohm_model_t *m = make(6, 3, 2, h, act, loss, 1);
    data_t d;
    fill(&d, 16, 6, 3, loss == OHM_LOSS_MSE);
    size_t P = ohm_model_nparams(m);
    float *w = malloc(P * sizeof *w), *g = malloc(P * sizeof *g);
    ohm_model_get_params(m, w);
    /* Zero biases put a ReLU exactly on its kink for an example whose inputs are
     * all zero; jitter every parameter so no coordinate sits on a kink. */
    ohm_rng_t r;
    ohm_rng_seed(&r, 11, 0, OHM_STREAM_INIT);
    for (size_t i = 0; i < P; i++)
        w[i] += 0.05f * (float)ohm_rng_normal(&r);
    ohm_model_set_params(m, w, OHM_WB_EXACT);
    double L0;
    cr_assert_eq(ohm_model_loss_grad(m, &d.b, &L0, g), OHM_OK);
    double worst = 0;
    int bad = 0;
    for (size_t i = 0; i < P; i++) {
        float keep = w[i];
        const float eps = 1e-3f;
        double lp, lm;
        w[i] = keep + eps;
        ohm_model_set_params(m, w, OHM_WB_EXACT);
        ohm_model_evaluate(m, &d.b, &lp, NULL);
        w[i] = keep - eps;
        ohm_model_set_params(m, w, OHM_WB_EXACT);
        ohm_model_evaluate(m, &d.b, &lm, NULL);
        w[i] = keep;
        double fd = (lp - lm) / (2 * eps);
        double err = fabs(fd - g[i]) / fmax(1e-2, fabs(fd) + fabs(g[i]));
        bad += err > 2e-2;
        if (err > worst) worst = err;
    }
    ohm_model_set_params(m, w, OHM_WB_EXACT);
    /* A ReLU kink inside [w - eps, w + eps] spoils the difference quotient of that
     * coordinate, so ReLU may have a few such coordinates; smooth activations none. */
    if (act == OHM_ACT_RELU)
        cr_expect_leq(bad, (int)(P / 50), "%d of %zu coordinates off (worst %g)", bad, P, worst);
    else
        cr_expect_lt(worst, 2e-2, "worst relative error %g", worst);
    free(w);
    free(g);
    ohm_model_destroy(&m);
    cr_assert_null(m);
}

Test(model, gradcheck_tanh_xent)
{
    gradcheck(OHM_ACT_TANH, OHM_LOSS_XENT);
}
Test(model, gradcheck_sigmoid_mse)
{
    gradcheck(OHM_ACT_SIGMOID, OHM_LOSS_MSE);
}
Test(model, gradcheck_relu_xent)
{
    gradcheck(OHM_ACT_RELU, OHM_LOSS_XENT);
}

Test(model, train_step_is_sgd_on_the_gradient)
{
    int h[1] = {7};
    ohm_model_t *m = make(6, 3, 1, h, OHM_ACT_TANH, OHM_LOSS_XENT, 1);
    data_t d;
    fill(&d, 16, 6, 3, 0);
    size_t P = ohm_model_nparams(m);
    float *w = malloc(P * 4), *g = malloc(P * 4), *w2 = malloc(P * 4);
    ohm_model_get_params(m, w);
    double l1, l2;
    ohm_model_loss_grad(m, &d.b, &l1, g);
    cr_assert_eq(ohm_model_train_step(m, &d.b, 0.5f, &l2), OHM_OK);
    cr_expect_float_eq(l1, l2, 1e-9);
    ohm_model_get_params(m, w2);
    for (size_t i = 0; i < P; i++)
        cr_assert_float_eq(w2[i], w[i] - 0.5f * g[i], 1e-5, "param %zu", i);
    free(w);
    free(g);
    free(w2);
    ohm_model_destroy(&m);
}

Test(model, softmax_regression_learns_separable_data)
{
    ohm_model_t *m = make(6, 3, 0, NULL, OHM_ACT_RELU, OHM_LOSS_XENT, 1);
    data_t d;
    fill(&d, 16, 6, 3, 0);
    for (int i = 0; i < 16; i++) /* make the label a function of the input */
        d.y[i] = d.x[i * 6] > 0.5f ? 0 : (d.x[i * 6 + 1] > 0 ? 1 : 2);
    double loss0, loss, acc;
    ohm_model_evaluate(m, &d.b, &loss0, NULL);
    for (int it = 0; it < 400; it++)
        ohm_model_train_step(m, &d.b, 0.5f, NULL);
    ohm_model_evaluate(m, &d.b, &loss, &acc);
    cr_expect_lt(loss, loss0 * 0.3);
    cr_expect_geq(acc, 0.9);
    ohm_model_destroy(&m);
}

Test(model, shapes_fingerprint_and_params)
{
    int h[2] = {128, 64};
    ohm_model_t *a = make(784, 10, 2, h, OHM_ACT_RELU, OHM_LOSS_XENT, 1);
    cr_assert_eq(ohm_model_nparams(a), 128u * 785 + 64 * 129 + 10 * 65);
    int h2[2] = {128, 65};
    ohm_model_t *b = make(784, 10, 2, h2, OHM_ACT_RELU, OHM_LOSS_XENT, 1);
    ohm_model_t *c = make(784, 10, 2, h, OHM_ACT_TANH, OHM_LOSS_XENT, 1);
    cr_expect_neq(ohm_model_fingerprint(a), ohm_model_fingerprint(b));
    cr_expect_eq(ohm_model_fingerprint(a), ohm_model_fingerprint(c));
    ohm_model_destroy(&a);
    ohm_model_destroy(&b);
    ohm_model_destroy(&c);
    ohm_model_destroy(&c); /* NULL-safe */
}

Test(model, state_round_trip_and_rejection)
{
    int h[1] = {5};
    ohm_model_t *a = make(6, 3, 1, h, OHM_ACT_RELU, OHM_LOSS_XENT, 1);
    ohm_model_t *b = make(6, 3, 1, h, OHM_ACT_RELU, OHM_LOSS_XENT, 1);
    data_t d;
    fill(&d, 16, 6, 3, 0);
    ohm_model_train_step(a, &d.b, 0.3f, NULL);
    size_t n = ohm_model_state_size(a);
    unsigned char *buf = malloc(n);
    ohm_model_state_save(a, buf);
    cr_assert_eq(ohm_model_state_load(b, buf, n), OHM_OK);
    size_t P = ohm_model_nparams(a);
    float *wa = malloc(P * 4), *wb = malloc(P * 4);
    ohm_model_get_params(a, wa);
    ohm_model_get_params(b, wb);
    cr_expect_eq(memcmp(wa, wb, P * 4), 0);
    cr_expect_eq(ohm_model_state_load(b, buf, n - 1), OHM_ETRUNC);
    cr_expect_eq(ohm_model_state_load(b, buf, 3), OHM_ETRUNC);
    free(buf);
    free(wa);
    free(wb);
    ohm_model_destroy(&a);
    ohm_model_destroy(&b);
}

Test(model, rejects_bad_spec_and_batch)
{
    ohm_model_spec_t s = {.n_in = 0, .n_out = 3};
    ohm_model_t *m = NULL;
    cr_expect_eq(ohm_model_new(&s, NULL, NULL, &m), OHM_EINVAL);
    cr_expect_null(m);
    m = make(6, 3, 0, NULL, OHM_ACT_RELU, OHM_LOSS_XENT, 0);
    data_t d;
    fill(&d, 4, 5, 3, 0);
    cr_expect_eq(ohm_model_train_step(m, &d.b, 0.1f, NULL), OHM_ESHAPE);
    ohm_model_destroy(&m);
}

/* Weight decay scales every parameter (biases included) exactly; followed by a
 * step it is the decoupled rule W <- (1 - lr wd) W - lr G(decayed W). */
Test(model, decay_scales_every_parameter)
{
    int h[1] = {5};
    ohm_model_t *m = make(6, 3, 1, h, OHM_ACT_RELU, OHM_LOSS_XENT, 1);
    size_t P = ohm_model_nparams(m);
    float *w = malloc(P * 4), *w2 = malloc(P * 4);
    ohm_model_get_params(m, w);
    cr_assert_eq(ohm_model_decay(m, 0.75f), OHM_OK);
    ohm_model_get_params(m, w2);
    for (size_t i = 0; i < P; i++)
        cr_assert_eq(w2[i], w[i] * 0.75f, "param %zu", i);
    cr_assert_eq(ohm_model_decay(m, 1.0f), OHM_OK);
    ohm_model_get_params(m, w);
    cr_expect_arr_eq(w, w2, P * 4, "factor 1 changes nothing");
    free(w);
    free(w2);
    ohm_model_destroy(&m);
}

/* ---- initial weights from the config --------------------------------------- */

static ohm_model_t *linear_model(int in, int out)
{
    ohm_model_spec_t s = {.n_in = in, .n_out = out, .loss = OHM_LOSS_XENT, .bias = 1};
    ohm_model_t *m = NULL;
    cr_assert_eq(ohm_model_new(&s, NULL, NULL, &m), OHM_OK);
    return m;
}

static ohm_config_t *init_config(const char *init, const char *sigma, const char *per_peer)
{
    ohm_config_t *c = ohm_config_new();
    char a[64], b[64], d[64];
    snprintf(a, sizeof a, "model.init=%s", init);
    snprintf(b, sizeof b, "model.init_sigma=%s", sigma);
    snprintf(d, sizeof d, "model.init_per_peer=%s", per_peer);
    cr_assert_eq(ohm_config_set(c, a, "t"), OHM_OK);
    cr_assert_eq(ohm_config_set(c, b, "t"), OHM_OK);
    cr_assert_eq(ohm_config_set(c, d, "t"), OHM_OK);
    cr_assert_eq(ohm_config_set(c, "train.seed=5", "t"), OHM_OK);
    return c;
}

/* The weights peer `peer` starts from, into w[P]. */
static void start_of(const ohm_config_t *c, uint32_t peer, float *w)
{
    ohm_model_t *m = linear_model(20, 4);
    cr_assert_eq(ohm_model_init_from_config(m, c, peer), OHM_OK);
    ohm_model_get_params(m, w);
    ohm_model_destroy(&m);
}

/* Per-peer streams: two peers start from different models, a peer from the
 * same one every time; with init_per_peer = false every peer from one. */
Test(model, init_streams_per_peer)
{
    enum { P = 4 * 21 };
    float a[P], b[P], c2[P];
    ohm_config_t *c = init_config("normal", "6", "true");
    start_of(c, 3, a);
    start_of(c, 3, b);
    start_of(c, 4, c2);
    cr_expect_arr_eq(a, b, sizeof a, "same peer, same start");
    int differ = 0;
    for (int i = 0; i < P; i++)
        differ += a[i] != c2[i];
    cr_expect_eq(differ, P, "another peer draws every weight anew");
    ohm_config_destroy(&c);
    c = init_config("normal", "6", "false");
    start_of(c, 3, a);
    start_of(c, 4, b);
    start_of(c, 0, c2);
    cr_expect_arr_eq(a, b, sizeof a, "common start");
    cr_expect_arr_eq(a, c2, sizeof a, "common start");
    ohm_config_destroy(&c);
}

/* normal: every weight and bias N(0, sigma^2); glorot (the default) is the
 * start every peer has always had: ohm_model_init on stream (seed, 0, INIT). */
Test(model, init_kinds)
{
    enum { IN = 200, OUT = 10, P = OUT * (IN + 1) };
    static float w[P], ref[P];
    ohm_model_t *m = linear_model(IN, OUT);
    ohm_config_t *c = init_config("normal", "6", "true");
    cr_assert_eq(ohm_model_init_from_config(m, c, 2), OHM_OK);
    ohm_model_get_params(m, w);
    double s = 0, s2 = 0, bias2 = 0;
    for (int i = 0; i < P; i++)
        s += w[i], s2 += (double)w[i] * w[i];
    for (int r = 0; r < OUT; r++)
        bias2 += (double)w[r * (IN + 1) + IN] * w[r * (IN + 1) + IN];
    double sd = sqrt(s2 / P - (s / P) * (s / P));
    cr_expect(fabs(sd - 6) < 0.2, "sd %g", sd);
    cr_expect(fabs(s / P) < 4 * 6 / sqrt(P), "mean %g", s / P);
    cr_expect(bias2 > 0, "biases are drawn too");
    ohm_config_destroy(&c);
    c = init_config("glorot", "6", "false");
    cr_assert_eq(ohm_model_init_from_config(m, c, 7), OHM_OK);
    ohm_model_get_params(m, w);
    ohm_rng_t r;
    ohm_rng_seed(&r, 5, 0, OHM_STREAM_INIT);
    ohm_model_init(m, &r);
    ohm_model_get_params(m, ref);
    cr_expect_arr_eq(w, ref, sizeof w, "glorot, common: the original start");
    for (int row = 0; row < OUT; row++)
        cr_expect_eq(w[row * (IN + 1) + IN], 0.0f, "zero biases");
    ohm_config_destroy(&c);
    ohm_model_destroy(&m);
}

/* Per-example output errors and their outer products rebuild the gradient of
 * a single-layer model; deeper models refuse the outer product. */
Test(model, example_errors_rebuild_the_linear_gradient)
{
    ohm_model_t *m = make(6, 3, 0, NULL, OHM_ACT_RELU, OHM_LOSS_XENT, 1);
    data_t d;
    fill(&d, 16, 6, 3, 0);
    size_t P = ohm_model_nparams(m);
    float *g = malloc(P * 4), *h = calloc(P, 4), err[16 * 3];
    double l1, l2;
    cr_assert_eq(ohm_model_loss_grad(m, &d.b, &l1, g), OHM_OK);
    cr_assert_eq(ohm_model_example_errors(m, &d.b, err, &l2), OHM_OK);
    cr_expect_float_eq(l1, l2, 1e-9);
    for (int i = 0; i < 16; i++) { /* softmax minus one-hot: sums to zero */
        double s = 0;
        for (int k = 0; k < 3; k++)
            s += err[i * 3 + k];
        cr_expect(fabs(s) < 1e-6);
    }
    cr_assert_eq(ohm_model_outer_add(m, &d.b, err, 1.0f / 16, h), OHM_OK);
    for (size_t i = 0; i < P; i++)
        cr_expect_float_eq(h[i], g[i], 1e-6, "param %zu", i);
    ohm_model_destroy(&m);
    int hid[1] = {4};
    m = make(6, 3, 1, hid, OHM_ACT_TANH, OHM_LOSS_XENT, 1);
    cr_expect_eq(ohm_model_outer_add(m, &d.b, err, 1.0f, h), OHM_EUNSUPPORTED);
    ohm_model_destroy(&m);
    free(g);
    free(h);
}
