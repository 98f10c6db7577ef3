/* Tests of convolution and pooling: the im2col unrolling against a direct
 * nested-loop convolution, its transpose, pooling against direct loops, whole
 * networks against a nested-loop reference forward pass, the SGD step on a
 * CNN, and analog convolutions (expected mode = the summed outer product over
 * positions; stochastic mode = pulse trains for every position). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ohm_analog.h"
#include "ohm_analog_tile.h"
#include "ohm_conv.h"
#include "ohm_dense.h"
#include "ohm_error.h"
#include "ohm_model.h"
#include "ohm_plan.h"
#include "ohm_pool.h"

static void fill(float *v, size_t n, double sd, uint64_t seed)
{
    ohm_rng_t r;
    ohm_rng_seed(&r, seed, 0, 99);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(sd * ohm_rng_normal(&r));
}

static ohm_model_spec_t spec_of(const char *layers, int c, int h, int w, int out, int act, int bias)
{
    ohm_model_spec_t s = {.n_in = c * h * w,
                          .n_out = out,
                          .bias = bias,
                          .in_shape = {c, h, w},
                          .act = act,
                          .loss = OHM_LOSS_XENT};
    cr_assert_eq(ohm_layers_parse(layers, "t", s.layers, &s.n_layers), OHM_OK, "%s", layers);
    return s;
}

/* The first layer of a one-layer-then-fc plan. */
static ohm_plan_layer_t first_layer(const char *layers, int c, int h, int w, int bias)
{
    ohm_model_spec_t s = spec_of(layers, c, h, w, 2, OHM_ACT_RELU, bias);
    ohm_plan_t p;
    cr_assert_eq(ohm_plan_build(&s, &p), OHM_OK, "%s: %s", layers, ohm_error_detail());
    return p.l[0];
}

/* Geometries: channels, size, kernel, stride and padding in many combinations. */
static const struct {
    const char *layers;
    int c, h, w;
} geoms[] = {
    {"conv:3x3x3,fc:2", 1, 6, 6},        {"conv:4x3x3/p1,fc:2", 2, 5, 7},
    {"conv:5x3x2/s2/p1,fc:2", 3, 7, 6},  {"conv:2x5x5/p2,fc:2", 1, 8, 8},
    {"conv:3x1x1,fc:2", 4, 3, 3},        {"conv:6x4x3/s3/p2,fc:2", 2, 9, 10},
    {"conv:2x1x3/s2,fc:2", 3, 1, 12},    {"conv:7x2x2/s2,fc:2", 5, 4, 6},
};
#define NGEOM (sizeof geoms / sizeof geoms[0])

/* Direct convolution: y[e][oh][ow][o] = b[o] + sum w[o][kh][kw][c] x[e][ih][iw][c]. */
static double direct(const ohm_plan_layer_t *L, const float *x, const float *w, int bias, int e,
                     int oh, int ow, int o)
{
    double s = bias ? w[(size_t)o * L->cols + L->cols - 1] : 0.0;
    for (int kh = 0; kh < L->kh; kh++)
        for (int kw = 0; kw < L->kw; kw++)
            for (int c = 0; c < L->in_c; c++) {
                int ih = oh * L->sh - L->pad + kh, iw = ow * L->sw - L->pad + kw;
                if (ih < 0 || ih >= L->in_h || iw < 0 || iw >= L->in_w) continue;
                s += (double)w[(size_t)o * L->cols + ((size_t)kh * L->kw + kw) * L->in_c + c] *
                     x[(size_t)e * L->in_size + ((size_t)ih * L->in_w + iw) * L->in_c + c];
            }
    return s;
}

Test(conv, unrolled_product_equals_direct_convolution)
{
    enum { N = 3 };
    for (size_t g = 0; g < NGEOM; g++)
        for (int bias = 0; bias <= 1; bias++) {
            ohm_plan_layer_t L = first_layer(geoms[g].layers, geoms[g].c, geoms[g].h, geoms[g].w, bias);
            size_t rows = (size_t)N * L.positions;
            float *x = malloc(sizeof(float) * N * L.in_size),
                  *w = malloc(sizeof(float) * L.rows * L.cols),
                  *col = malloc(sizeof(float) * rows * L.cols),
                  *y = malloc(sizeof(float) * rows * L.rows);
            fill(x, (size_t)N * L.in_size, 1.0, g + 1);
            fill(w, (size_t)L.rows * L.cols, 1.0, g + 100);
            ohm_conv_unroll(&L, x, N, col, L.cols, 1.0f);
            ohm_dense_gemm(0, 1, (int)rows, L.rows, L.cols, 1.0f, col, w, 0.0f, y);
            /* The product is already height x width x channels per example. */
            cr_assert_eq((size_t)L.positions * L.rows, (size_t)L.out_size);
            for (int e = 0; e < N; e++)
                for (int oh = 0; oh < L.out_h; oh++)
                    for (int ow = 0; ow < L.out_w; ow++)
                        for (int o = 0; o < L.out_c; o++) {
                            double want = direct(&L, x, w, bias, e, oh, ow, o);
                            float got = y[(size_t)e * L.out_size +
                                          ((size_t)oh * L.out_w + ow) * L.out_c + o];
                            cr_assert(fabs(got - want) < 1e-4 * (1 + fabs(want)),
                                      "%s bias %d: e %d (%d,%d) o %d: %g vs %g", geoms[g].layers,
                                      bias, e, oh, ow, o, got, want);
                        }
            free(x);
            free(w);
            free(col);
            free(y);
        }
}

/* <unroll(x), Y> = <x, fold(Y)>: fold is the exact transpose (the backward read). */
Test(conv, fold_is_the_transpose_of_unroll)
{
    enum { N = 2 };
    for (size_t g = 0; g < NGEOM; g++) {
        ohm_plan_layer_t L = first_layer(geoms[g].layers, geoms[g].c, geoms[g].h, geoms[g].w, 1);
        size_t nc = (size_t)N * L.positions * L.cols;
        double *x = malloc(sizeof(double) * N * L.in_size), *col = malloc(sizeof(double) * nc),
               *y = malloc(sizeof(double) * nc), *fx = malloc(sizeof(double) * N * L.in_size);
        float *xf = malloc(sizeof(float) * N * L.in_size), *yf = malloc(sizeof(float) * nc),
              *colf = malloc(sizeof(float) * nc), *fxf = malloc(sizeof(float) * N * L.in_size);
        fill(xf, (size_t)N * L.in_size, 1.0, 7 + g);
        fill(yf, nc, 1.0, 70 + g);
        for (size_t i = 0; i < (size_t)N * L.in_size; i++)
            x[i] = xf[i];
        for (size_t i = 0; i < nc; i++)
            y[i] = yf[i];
        ohm_conv_unroll_d(&L, x, N, col, L.cols, 0.0);
        ohm_conv_fold_d(&L, y, L.cols, N, fx);
        double a = 0, b = 0;
        for (size_t i = 0; i < nc; i++)
            a += col[i] * y[i];
        for (size_t i = 0; i < (size_t)N * L.in_size; i++)
            b += x[i] * fx[i];
        cr_expect(fabs(a - b) < 1e-10 * (1 + fabs(a)), "%s: %g vs %g", geoms[g].layers, a, b);
        /* The float versions compute the same maps. */
        ohm_conv_unroll(&L, xf, N, colf, L.cols, 1.0f);
        ohm_conv_fold(&L, yf, L.cols, N, fxf);
        for (size_t i = 0; i < nc; i++) {
            double want = (i % L.cols == (size_t)L.cols - 1) ? 1.0 : col[i];
            cr_assert(fabs(colf[i] - want) < 1e-6, "%s: unroll %zu", geoms[g].layers, i);
        }
        for (size_t i = 0; i < (size_t)N * L.in_size; i++)
            cr_assert(fabs(fxf[i] - fx[i]) < 1e-4 * (1 + fabs(fx[i])), "%s: fold %zu",
                      geoms[g].layers, i);
        free(x);
        free(col);
        free(y);
        free(fx);
        free(xf);
        free(yf);
        free(colf);
        free(fxf);
    }
}

Test(conv, pooling_equals_direct_loops)
{
    static const struct {
        const char *layers;
        int c, h, w;
    } pools[] = {
        {"pool:max2,fc:2", 3, 6, 6},      {"pool:avg2,fc:2", 3, 6, 6},
        {"pool:max3/s2,fc:2", 2, 7, 9},   {"pool:avg3/s2,fc:2", 2, 7, 9},
        {"pool:max2x3,fc:2", 4, 5, 7},    {"pool:avg1x2/s1,fc:2", 2, 1, 9},
    };
    enum { N = 2 };
    for (size_t g = 0; g < sizeof pools / sizeof pools[0]; g++) {
        ohm_plan_layer_t L = first_layer(pools[g].layers, pools[g].c, pools[g].h, pools[g].w, 1);
        float *x = malloc(sizeof(float) * N * L.in_size), *y = malloc(sizeof(float) * N * L.out_size);
        int32_t *arg = malloc(sizeof(int32_t) * N * L.out_size);
        fill(x, (size_t)N * L.in_size, 1.0, 30 + g);
        ohm_pool_forward(&L, x, N, y, arg);
        for (int e = 0; e < N; e++)
            for (int oh = 0; oh < L.out_h; oh++)
                for (int ow = 0; ow < L.out_w; ow++)
                    for (int c = 0; c < L.in_c; c++) {
                        double mx = -INFINITY, sum = 0;
                        for (int kh = 0; kh < L.kh; kh++)
                            for (int kw = 0; kw < L.kw; kw++) {
                                double v = x[(size_t)e * L.in_size +
                                             ((size_t)(oh * L.sh + kh) * L.in_w + ow * L.sw + kw) *
                                                 L.in_c +
                                             c];
                                mx = fmax(mx, v);
                                sum += v;
                            }
                        size_t o = (size_t)e * L.out_size + ((size_t)oh * L.out_w + ow) * L.in_c + c;
                        double want = L.kind == OHM_LAYER_MAXPOOL ? mx : sum / (L.kh * L.kw);
                        cr_assert(fabs(y[o] - want) < 1e-6, "%s: %g vs %g", pools[g].layers, y[o],
                                  want);
                        if (L.kind == OHM_LAYER_MAXPOOL)
                            cr_assert_eq(x[(size_t)e * L.in_size + arg[o]], y[o]);
                    }
        /* The backward pass is the transpose of the pooling at its argmax. */
        double *xd = malloc(sizeof(double) * N * L.in_size), *yd = malloc(sizeof(double) * N * L.out_size),
               *py = malloc(sizeof(double) * N * L.out_size), *bx = malloc(sizeof(double) * N * L.in_size);
        float *dy = malloc(sizeof(float) * N * L.out_size), *dx = malloc(sizeof(float) * N * L.in_size);
        fill(dy, (size_t)N * L.out_size, 1.0, 60 + g);
        for (size_t i = 0; i < (size_t)N * L.in_size; i++)
            xd[i] = x[i];
        for (size_t i = 0; i < (size_t)N * L.out_size; i++)
            yd[i] = dy[i];
        ohm_pool_linear_d(&L, xd, arg, N, py);
        ohm_pool_backward_d(&L, yd, arg, N, bx);
        ohm_pool_backward(&L, dy, arg, N, dx);
        double a = 0, b = 0;
        for (size_t i = 0; i < (size_t)N * L.out_size; i++) {
            a += py[i] * yd[i];
            cr_assert(fabs(py[i] - y[i]) < 1e-6);
        }
        for (size_t i = 0; i < (size_t)N * L.in_size; i++) {
            b += xd[i] * bx[i];
            cr_assert(fabs(dx[i] - bx[i]) < 1e-5);
        }
        cr_expect(fabs(a - b) < 1e-10 * (1 + fabs(a)), "%s: %g vs %g", pools[g].layers, a, b);
        free(x);
        free(y);
        free(arg);
        free(xd);
        free(yd);
        free(py);
        free(bx);
        free(dy);
        free(dx);
    }
}

static double act_of(int act, double v)
{
    return act == OHM_ACT_RELU ? (v > 0 ? v : 0) : act == OHM_ACT_TANH ? tanh(v) : 1 / (1 + exp(-v));
}

/* A whole network's logits by nested loops over the documented layouts. */
static void reference_logits(const ohm_plan_t *p, int act, int bias, const float *w,
                             const float *x, double *logits)
{
    double *cur = malloc(sizeof(double) * p->max_size), *nxt = malloc(sizeof(double) * p->max_size);
    for (int i = 0; i < p->in_size; i++)
        cur[i] = x[i];
    for (int l = 0; l < p->n; l++) {
        const ohm_plan_layer_t *L = &p->l[l];
        const float *wl = w + L->off;
        for (int oh = 0; oh < L->out_h; oh++)
            for (int ow = 0; ow < L->out_w; ow++)
                for (int o = 0; o < L->out_c; o++) {
                    double s = 0, mx = -INFINITY;
                    if (L->kind == OHM_LAYER_FC) {
                        s = bias ? wl[(size_t)o * L->cols + L->in_size] : 0;
                        for (int j = 0; j < L->in_size; j++)
                            s += wl[(size_t)o * L->cols + j] * cur[j];
                    } else if (L->kind == OHM_LAYER_CONV) {
                        s = bias ? wl[(size_t)o * L->cols + L->cols - 1] : 0;
                        for (int kh = 0; kh < L->kh; kh++)
                            for (int kw = 0; kw < L->kw; kw++)
                                for (int c = 0; c < L->in_c; c++) {
                                    int ih = oh * L->sh - L->pad + kh, iw = ow * L->sw - L->pad + kw;
                                    if (ih >= 0 && ih < L->in_h && iw >= 0 && iw < L->in_w)
                                        s += wl[(size_t)o * L->cols + (kh * L->kw + kw) * L->in_c + c] *
                                             cur[(ih * L->in_w + iw) * L->in_c + c];
                                }
                    } else {
                        for (int kh = 0; kh < L->kh; kh++)
                            for (int kw = 0; kw < L->kw; kw++) {
                                double v = cur[((oh * L->sh + kh) * L->in_w + ow * L->sw + kw) * L->in_c + o];
                                s += v / (L->kh * L->kw);
                                mx = fmax(mx, v);
                            }
                        if (L->kind == OHM_LAYER_MAXPOOL) s = mx;
                    }
                    nxt[(oh * L->out_w + ow) * L->out_c + o] = L->act ? act_of(act, s) : s;
                }
        double *t = cur;
        cur = nxt;
        nxt = t;
    }
    memcpy(logits, cur, sizeof(double) * p->out_size);
    free(cur);
    free(nxt);
}

static const struct {
    const char *layers;
    int c, h, w;
} nets[] = {
    {"conv:3x3x3/s2/p1,fc:4", 2, 7, 6},
    {"conv:4x3x3/p1,pool:max2,conv:5x2x2,pool:avg2,fc:6,fc:4", 1, 9, 9},
    {"conv:2x1x3,pool:max1x2,flatten,fc:4", 1, 1, 13},
    {"pool:avg2,conv:3x2x2/s2,fc:4", 3, 8, 8},
};

/* The model's loss equals the loss of the reference logits, example by example. */
Test(conv, networks_equal_a_nested_loop_reference)
{
    enum { N = 5 };
    for (size_t k = 0; k < sizeof nets / sizeof nets[0]; k++)
        for (int act = OHM_ACT_RELU; act <= OHM_ACT_SIGMOID; act++) {
            ohm_model_spec_t s = spec_of(nets[k].layers, nets[k].c, nets[k].h, nets[k].w, 4, act, 1);
            ohm_plan_t p;
            cr_assert_eq(ohm_plan_build(&s, &p), OHM_OK);
            ohm_model_t *m = NULL;
            cr_assert_eq(ohm_model_new(&s, NULL, NULL, &m), OHM_OK);
            float *w = malloc(sizeof(float) * p.nparams), *x = malloc(sizeof(float) * N * p.in_size);
            fill(w, p.nparams, 0.5, 5 + k);
            fill(x, (size_t)N * p.in_size, 1.0, 50 + k);
            ohm_model_set_params(m, w, OHM_WB_EXACT);
            for (int e = 0; e < N; e++) {
                double z[4];
                reference_logits(&p, act, 1, w, x + (size_t)e * p.in_size, z);
                double mx = fmax(fmax(z[0], z[1]), fmax(z[2], z[3])), se = 0;
                for (int j = 0; j < 4; j++)
                    se += exp(z[j] - mx);
                for (int32_t label = 0; label < 4; label++) {
                    ohm_batch_t b = {.n = 1, .dim = p.in_size, .x = x + (size_t)e * p.in_size,
                                     .y = &label};
                    double loss;
                    cr_assert_eq(ohm_model_evaluate(m, &b, &loss, NULL), OHM_OK);
                    double want = log(se) + mx - z[label];
                    cr_assert(fabs(loss - want) < 1e-4 * (1 + fabs(want)),
                              "%s act %d example %d label %d: %g vs %g", nets[k].layers, act, e,
                              label, loss, want);
                }
            }
            free(w);
            free(x);
            ohm_model_destroy(&m);
        }
}

typedef struct {
    float *x;
    int32_t y[64];
    ohm_batch_t b;
} batch_t;

static void make_batch(batch_t *d, const ohm_plan_t *p, int n, uint64_t seed)
{
    d->x = malloc(sizeof(float) * (size_t)n * p->in_size);
    fill(d->x, (size_t)n * p->in_size, 1.0, seed);
    for (int i = 0; i < n; i++)
        d->y[i] = (int32_t)((i * 7 + seed) % (uint64_t)p->out_size);
    d->b = (ohm_batch_t){.n = n, .dim = p->in_size, .x = d->x, .y = d->y};
}

/* One step of digital SGD is w - lr grad, through convolutions and pooling. */
Test(conv, train_step_is_sgd_on_the_gradient)
{
    ohm_model_spec_t s = spec_of(nets[1].layers, 1, 9, 9, 4, OHM_ACT_TANH, 1);
    ohm_plan_t p;
    cr_assert_eq(ohm_plan_build(&s, &p), OHM_OK);
    ohm_model_t *m = NULL;
    cr_assert_eq(ohm_model_new(&s, NULL, NULL, &m), OHM_OK);
    ohm_rng_t r;
    ohm_rng_seed(&r, 3, 0, OHM_STREAM_INIT);
    ohm_model_init(m, &r);
    batch_t d;
    make_batch(&d, &p, 12, 4);
    size_t P = p.nparams;
    float *w = malloc(P * 4), *g = malloc(P * 4), *w2 = malloc(P * 4);
    ohm_model_get_params(m, w);
    double l1, l2, l3;
    cr_assert_eq(ohm_model_loss_grad(m, &d.b, &l1, g), OHM_OK);
    cr_assert_eq(ohm_model_train_step(m, &d.b, 0.3f, &l2), OHM_OK);
    cr_expect_float_eq(l1, l2, 1e-9);
    ohm_model_get_params(m, w2);
    double gn = 0;
    for (size_t i = 0; i < P; i++)
        gn += (double)g[i] * g[i];
    cr_assert_gt(gn, 0);
    for (size_t i = 0; i < P; i++)
        cr_assert_float_eq(w2[i], w[i] - 0.3f * g[i], 1e-5, "param %zu", i);
    ohm_model_evaluate(m, &d.b, &l3, NULL);
    cr_expect_lt(l3, l1, "a small step down the gradient lowers the loss");
    free(w);
    free(g);
    free(w2);
    free(d.x);
    ohm_model_destroy(&m);
}

/* Analog CNN of ideal devices far from their bounds (docs/analog.md, section "Convolutions"). */
static ohm_model_t *analog_cnn(const ohm_model_spec_t *s, int update, double dw_min,
                               ohm_analog_ctx_t *ctx)
{
    ohm_analog_params_default(&ctx->params);
    ctx->params.opt = OHM_OPT_ANALOG_SGD;
    ctx->params.dev.response = OHM_RESP_IDEAL;
    ctx->params.dev.tau = 100.0;
    ctx->params.dev.dw_min = dw_min;
    ctx->params.update = update;
    ctx->seed = 1;
    ctx->peer = 0;
    ohm_model_t *m = NULL;
    cr_assert_eq(ohm_model_new(s, ohm_analog_tile_factory, ctx, &m), OHM_OK);
    return m;
}

/* Expected mode: the conv tile's change is the outer product summed over every
 * position and example, i.e. exactly the digital step. */
Test(conv, analog_expected_is_the_summed_outer_product)
{
    ohm_model_spec_t s = spec_of(nets[1].layers, 1, 9, 9, 4, OHM_ACT_RELU, 1);
    ohm_plan_t p;
    cr_assert_eq(ohm_plan_build(&s, &p), OHM_OK);
    ohm_analog_ctx_t ctx;
    ohm_model_t *a = analog_cnn(&s, OHM_UPDATE_EXPECTED, 1e-4, &ctx), *d = NULL;
    cr_assert_eq(ohm_model_new(&s, NULL, NULL, &d), OHM_OK);
    cr_expect_str_eq(ohm_tile_kind(ohm_model_tile(a, 0)), "analog-sgd");
    float *w = malloc(p.nparams * 4), *wa = malloc(p.nparams * 4), *wd = malloc(p.nparams * 4);
    fill(w, p.nparams, 0.4, 8);
    ohm_model_set_params(a, w, OHM_WB_EXACT);
    ohm_model_set_params(d, w, OHM_WB_EXACT);
    batch_t b;
    make_batch(&b, &p, 8, 9);
    for (int step = 0; step < 5; step++) {
        double la, ld;
        cr_assert_eq(ohm_model_train_step(a, &b.b, 0.05f, &la), OHM_OK);
        cr_assert_eq(ohm_model_train_step(d, &b.b, 0.05f, &ld), OHM_OK);
        cr_expect_float_eq(la, ld, 1e-5 * (1 + fabs(ld)));
    }
    ohm_model_get_params(a, wa);
    ohm_model_get_params(d, wd);
    for (size_t i = 0; i < p.nparams; i++)
        cr_assert(fabsf(wa[i] - wd[i]) < 1e-5f, "param %zu: %g vs %g", i, wa[i], wd[i]);
    /* Reads count one MVM per position and example: 8 x 81 for the first conv. */
    ohm_analog_counters_t c = ohm_analog_tile_counters(ohm_model_tile(a, 0));
    cr_expect_eq(c.forward_mvms, 5u * 8 * 81);
    cr_expect_eq(c.backward_mvms, 0u, "the first layer needs no backward read");
    c = ohm_analog_tile_counters(ohm_model_tile(a, 1));
    cr_expect_eq(c.backward_mvms, 5u * 8 * 9, "3 x 3 positions of the second conv");
    free(w);
    free(wa);
    free(wd);
    free(b.x);
    ohm_model_destroy(&a);
    ohm_model_destroy(&d);
}

/* Stochastic mode: every position of every example fires its own pulse trains
 * (BL slots each; average pooling and tanh leave no position without error),
 * and the mean change over many trials is the expected one (rates kept below
 * one pulse per slot, so no train is clipped). */
Test(conv, analog_stochastic_pulses_every_position)
{
    enum { T = 400, N = 4 };
    ohm_model_spec_t s = spec_of("conv:3x3x3/p1,pool:avg2,fc:4", 2, 6, 6, 4, OHM_ACT_TANH, 1);
    ohm_plan_t p;
    cr_assert_eq(ohm_plan_build(&s, &p), OHM_OK);
    ohm_analog_ctx_t cs, ce;
    ohm_model_t *ms = analog_cnn(&s, OHM_UPDATE_STOCHASTIC, 1e-3, &cs);
    ohm_model_t *me = analog_cnn(&s, OHM_UPDATE_EXPECTED, 1e-3, &ce);
    size_t P = p.nparams, K = (size_t)p.l[0].rows * p.l[0].cols; /* the conv tile comes first */
    float *w = malloc(P * 4), *we = malloc(P * 4), *ws = malloc(P * 4);
    fill(w, P, 0.5, 21);
    batch_t b;
    make_batch(&b, &p, N, 22);
    const float lr = 0.01f;
    ohm_model_set_params(me, w, OHM_WB_EXACT);
    ohm_model_train_step(me, &b.b, lr, NULL);
    ohm_model_get_params(me, we);
    double *sum = calloc(K, sizeof(double)), *sq = calloc(K, sizeof(double));
    for (int t = 0; t < T; t++) {
        ohm_model_set_params(ms, w, OHM_WB_EXACT);
        cr_assert_eq(ohm_model_train_step(ms, &b.b, lr, NULL), OHM_OK);
        ohm_model_get_params(ms, ws);
        for (size_t i = 0; i < K; i++) {
            double dlt = (double)ws[i] - w[i];
            sum[i] += dlt;
            sq[i] += dlt * dlt;
        }
    }
    ohm_analog_counters_t c0 = ohm_analog_tile_counters(ohm_model_tile(ms, 0)),
                          c1 = ohm_analog_tile_counters(ohm_model_tile(ms, 1));
    cr_expect_eq(c0.train_slots, (uint64_t)T * N * p.l[0].positions * cs.params.bl,
                 "conv: BL slots for each of %d positions x %d examples", p.l[0].positions, N);
    cr_expect_eq(c1.train_slots, (uint64_t)T * N * cs.params.bl);
    cr_expect_gt(c0.update_pulses, 0u);
    int off = 0;
    double chi2 = 0;
    for (size_t i = 0; i < K; i++) {
        double mean = sum[i] / T, var = sq[i] / T - mean * mean;
        double se = sqrt(var > 0 ? var / T : 0), want = (double)we[i] - w[i];
        off += fabs(mean - want) > 5 * se + 2e-6;
        chi2 += (mean - want) * (mean - want) / (se * se + 1e-12);
    }
    cr_expect_leq(off, 1, "%d of %zu conv weights off by more than 5 standard errors", off, K);
    /* Unbiased: the squared errors in standard errors average near 1 (chi-square / K). */
    cr_expect_lt(chi2 / K, 1.6, "mean squared error %g standard errors^2", chi2 / K);
    free(sum);
    free(sq);
    free(w);
    free(we);
    free(ws);
    free(b.x);
    ohm_model_destroy(&ms);
    ohm_model_destroy(&me);
}

/* Evaluation in chunks (a large batch) gives the loss of one pass per example. */
Test(conv, chunked_evaluation_matches)
{
    ohm_model_spec_t s = spec_of(nets[1].layers, 1, 9, 9, 4, OHM_ACT_RELU, 1);
    ohm_plan_t p;
    cr_assert_eq(ohm_plan_build(&s, &p), OHM_OK);
    ohm_model_t *m = NULL;
    cr_assert_eq(ohm_model_new(&s, NULL, NULL, &m), OHM_OK);
    float *w = malloc(p.nparams * 4);
    fill(w, p.nparams, 0.5, 12);
    ohm_model_set_params(m, w, OHM_WB_EXACT);
    enum { N = 600 };
    float *x = malloc(sizeof(float) * N * p.in_size);
    int32_t y[N];
    fill(x, (size_t)N * p.in_size, 1.0, 13);
    for (int i = 0; i < N; i++)
        y[i] = i % 4;
    ohm_batch_t b = {.n = N, .dim = p.in_size, .x = x, .y = y};
    double loss, acc, sum = 0;
    long right = 0;
    cr_assert_eq(ohm_model_evaluate(m, &b, &loss, &acc), OHM_OK);
    for (int i = 0; i < N; i++) {
        ohm_batch_t one = {.n = 1, .dim = p.in_size, .x = x + (size_t)i * p.in_size, .y = y + i};
        double l, a;
        ohm_model_evaluate(m, &one, &l, &a);
        sum += l;
        right += a > 0.5;
    }
    cr_expect(fabs(loss - sum / N) < 1e-5 * (1 + fabs(loss)), "%g vs %g", loss, sum / N);
    cr_expect_float_eq(acc, (double)right / N, 1e-12);
    free(w);
    free(x);
    ohm_model_destroy(&m);
}
