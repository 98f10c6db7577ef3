/* Tests of src/nn/ohm_optim: momentum against its formula, SAGA's estimate
 * against the full gradient when the table was filled at the same weights
 * (per-example table of a linear model, of a deeper model, per-batch table),
 * linear convergence of SAGA on a strongly convex least-squares problem where
 * SGD with the same step stalls at its noise floor, the fixed batches, the
 * memory bound and the config. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ohm_error.h"
#include "ohm_optim.h"

/* A data set in memory: n examples of dim inputs, classes or targets. */
typedef struct {
    int n, dim, out, regress;
    float *x, *t;
    int32_t *y;
    ohm_batch_t all;
} set_t;

static set_t make_set(int n, int dim, int out, int regress, uint64_t seed)
{
    set_t s = {.n = n, .dim = dim, .out = out, .regress = regress};
    s.x = malloc(sizeof(float) * (size_t)n * dim);
    s.t = malloc(sizeof(float) * (size_t)n * out);
    s.y = malloc(sizeof(int32_t) * (size_t)n);
    cr_assert(s.x && s.t && s.y);
    ohm_rng_t r;
    ohm_rng_seed(&r, seed, 0, OHM_STREAM_DATA);
    for (int i = 0; i < n * dim; i++)
        s.x[i] = (float)ohm_rng_normal(&r);
    for (int i = 0; i < n; i++)
        s.y[i] = (int32_t)ohm_rng_below(&r, (uint32_t)out);
    /* regression: a linear teacher plus noise, so that the optimum leaves
     * residuals (and SGD a noise floor) */
    for (int i = 0; i < n; i++)
        for (int k = 0; k < out; k++) {
            double v = 0.3 * k;
            for (int j = 0; j < dim; j++)
                v += (0.5 + 0.1 * j - 0.2 * k) * s.x[i * dim + j];
            s.t[i * out + k] = (float)(v + 0.5 * ohm_rng_normal(&r));
        }
    s.all = (ohm_batch_t){.n = n,
                          .dim = dim,
                          .x = s.x,
                          .y = regress ? NULL : s.y,
                          .t = regress ? s.t : NULL,
                          .tdim = regress ? out : 0};
    return s;
}

static void free_set(set_t *s)
{
    free(s->x);
    free(s->t);
    free(s->y);
}

/* The examples idx[n] of s gathered into a batch (buffers of cap examples). */
typedef struct {
    float *x, *t;
    int32_t *y;
    ohm_batch_t b;
} gather_t;

static gather_t gather_new(const set_t *s, int cap)
{
    gather_t g = {malloc(sizeof(float) * (size_t)cap * s->dim),
                  malloc(sizeof(float) * (size_t)cap * s->out), malloc(sizeof(int32_t) * cap),
                  {0}};
    cr_assert(g.x && g.t && g.y);
    return g;
}

static const ohm_batch_t *gather(gather_t *g, const set_t *s, const uint32_t *idx, int n)
{
    for (int i = 0; i < n; i++) {
        memcpy(g->x + (size_t)i * s->dim, s->x + (size_t)idx[i] * s->dim, sizeof(float) * s->dim);
        memcpy(g->t + (size_t)i * s->out, s->t + (size_t)idx[i] * s->out, sizeof(float) * s->out);
        g->y[i] = s->y[idx[i]];
    }
    g->b = (ohm_batch_t){.n = n,
                         .dim = s->dim,
                         .x = g->x,
                         .y = s->regress ? NULL : g->y,
                         .t = s->regress ? g->t : NULL,
                         .tdim = s->regress ? s->out : 0};
    return &g->b;
}

static void gather_free(gather_t *g)
{
    free(g->x);
    free(g->t);
    free(g->y);
}

static ohm_model_t *model(int in, int out, int hidden, int loss, uint64_t seed)
{
    ohm_model_spec_t s = {.n_in = in,
                          .n_out = out,
                          .n_hidden = hidden ? 1 : 0,
                          .hidden = {hidden},
                          .act = OHM_ACT_TANH,
                          .loss = loss,
                          .bias = 1};
    ohm_model_t *m = NULL;
    cr_assert_eq(ohm_model_new(&s, NULL, NULL, &m), OHM_OK);
    ohm_rng_t r;
    ohm_rng_seed(&r, seed, 0, OHM_STREAM_INIT);
    ohm_model_init_kind(m, OHM_INIT_NORMAL, 0.5, &r);
    return m;
}

static ohm_optim_params_t params(double beta, int saga, size_t n, int batch)
{
    return (ohm_optim_params_t){.momentum = beta,
                                .saga = saga,
                                .max_bytes = (size_t)1 << 30,
                                .n = n,
                                .batch = batch,
                                .seed = 3,
                                .peer = 1};
}

/* ---- momentum ------------------------------------------------------------- */

/* m_1 = g(w_0), w_1 = w_0 - lr m_1; m_2 = beta m_1 + (1 - beta) g(w_1),
 * w_2 = w_1 - lr m_2; beta = 0 is the plain SGD step. */
Test(optim, momentum_follows_its_formula)
{
    set_t s = make_set(12, 5, 3, 0, 1);
    ohm_model_t *m = model(5, 3, 0, OHM_LOSS_XENT, 2);
    size_t P = ohm_model_nparams(m);
    float *w0 = malloc(4 * P), *w1 = malloc(4 * P), *w2 = malloc(4 * P), *g = malloc(4 * P),
          *m1 = malloc(4 * P), *got = malloc(4 * P);
    ohm_optim_params_t p = params(0.75, OHM_SAGA_OFF, 12, 12);
    ohm_optim_t *o = NULL;
    cr_assert_eq(ohm_optim_new(&p, m, &o), OHM_OK, "%s", ohm_error_detail());
    const float lr = 0.3f;
    ohm_model_get_params(m, w0);
    cr_assert_eq(ohm_model_loss_grad(m, &s.all, NULL, g), OHM_OK);
    for (size_t i = 0; i < P; i++) {
        m1[i] = g[i];
        w1[i] = w0[i] - lr * m1[i];
    }
    double loss;
    cr_assert_eq(ohm_optim_step(o, m, &s.all, NULL, lr, &loss), OHM_OK);
    ohm_model_get_params(m, got);
    for (size_t i = 0; i < P; i++)
        cr_assert_float_eq(got[i], w1[i], 1e-6, "step 1, param %zu", i);
    cr_assert_eq(ohm_model_loss_grad(m, &s.all, NULL, g), OHM_OK);
    for (size_t i = 0; i < P; i++)
        w2[i] = w1[i] - lr * (0.75f * m1[i] + 0.25f * g[i]);
    cr_assert_eq(ohm_optim_step(o, m, &s.all, NULL, lr, NULL), OHM_OK);
    ohm_model_get_params(m, got);
    for (size_t i = 0; i < P; i++)
        cr_assert_float_eq(got[i], w2[i], 1e-6, "step 2, param %zu", i);
    ohm_optim_destroy(&o);
    cr_expect_null(o);
    /* beta = 0: exactly what ohm_model_train_step does */
    ohm_model_t *a = model(5, 3, 0, OHM_LOSS_XENT, 2), *b = model(5, 3, 0, OHM_LOSS_XENT, 2);
    p = params(0, OHM_SAGA_OFF, 12, 12);
    cr_assert_eq(ohm_optim_new(&p, a, &o), OHM_OK);
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(ohm_optim_step(o, a, &s.all, NULL, lr, NULL), OHM_OK);
        cr_assert_eq(ohm_model_train_step(b, &s.all, lr, NULL), OHM_OK);
    }
    ohm_model_get_params(a, w1);
    ohm_model_get_params(b, w2);
    for (size_t i = 0; i < P; i++)
        cr_expect_float_eq(w1[i], w2[i], 1e-6);
    ohm_optim_destroy(&o);
    ohm_model_destroy(&a);
    ohm_model_destroy(&b);
    ohm_model_destroy(&m);
    free_set(&s);
    free(w0), free(w1), free(w2), free(g), free(m1), free(got);
}

/* ---- SAGA: the estimate with a table filled at w is the full gradient ------ */

static void estimate_is_full_gradient(int hidden, int kind)
{
    const int n = 40, B = 8;
    set_t s = make_set(n, 6, 4, 0, 5);
    ohm_model_t *m = model(6, 4, hidden, OHM_LOSS_XENT, 7);
    size_t P = ohm_model_nparams(m);
    ohm_optim_params_t p = params(0, kind, (size_t)n, B);
    ohm_optim_t *o = NULL;
    cr_assert_eq(ohm_optim_new(&p, m, &o), OHM_OK, "%s", ohm_error_detail());
    cr_assert_eq(ohm_optim_table_kind(o), kind);
    uint32_t idx[40];
    for (int i = 0; i < n; i++)
        idx[i] = (uint32_t)i;
    cr_assert_eq(ohm_optim_saga_fill(o, m, &s.all, idx), OHM_OK, "%s", ohm_error_detail());
    float *full = malloc(4 * P), *dir = malloc(4 * P);
    cr_assert_eq(ohm_model_loss_grad(m, &s.all, NULL, full), OHM_OK);
    gather_t g = gather_new(&s, B);
    ohm_sampler_t unused;
    memset(&unused, 0, sizeof unused);
    for (int trial = 0; trial < 6; trial++) {
        uint32_t pick[8];
        int nb = B;
        if (kind == OHM_SAGA_BATCH) {
            nb = ohm_optim_sample(o, &unused, NULL, pick, B);
        } else {
            for (int i = 0; i < B; i++)
                pick[i] = (uint32_t)((trial * 7 + i * 5) % n);
        }
        const ohm_batch_t *b = gather(&g, &s, pick, nb);
        cr_assert_eq(ohm_optim_direction(o, m, b, pick, dir, NULL), OHM_OK, "%s",
                     ohm_error_detail());
        for (size_t i = 0; i < P; i++)
            cr_assert(fabsf(dir[i] - full[i]) <= 1e-6f, "trial %d param %zu: %.9g vs %.9g", trial,
                      i, dir[i], full[i]);
    }
    gather_free(&g);
    free(full);
    free(dir);
    ohm_optim_destroy(&o);
    ohm_model_destroy(&m);
    free_set(&s);
}

Test(optim, saga_estimate_is_the_full_gradient_linear_sample_table)
{
    estimate_is_full_gradient(0, OHM_SAGA_SAMPLE);
}

Test(optim, saga_estimate_is_the_full_gradient_deep_sample_table)
{
    estimate_is_full_gradient(5, OHM_SAGA_SAMPLE);
}

Test(optim, saga_estimate_is_the_full_gradient_batch_table)
{
    estimate_is_full_gradient(5, OHM_SAGA_BATCH);
    estimate_is_full_gradient(0, OHM_SAGA_BATCH);
}

/* ---- SAGA converges linearly where SGD stalls ----------------------------- */

/* w* of least squares 1/2n sum ||W [x;1] - t||^2 (one output): the normal
 * equations in double, by Gaussian elimination. */
static void least_squares_optimum(const set_t *s, double *w)
{
    enum { Q = 6 };
    const int q = s->dim + 1;
    cr_assert(q <= Q);
    double A[Q][Q + 1] = {{0}};
    for (int i = 0; i < s->n; i++) {
        double z[Q];
        for (int j = 0; j < s->dim; j++)
            z[j] = s->x[i * s->dim + j];
        z[s->dim] = 1;
        for (int a = 0; a < q; a++) {
            for (int b = 0; b < q; b++)
                A[a][b] += z[a] * z[b];
            A[a][q] += z[a] * s->t[i];
        }
    }
    for (int c = 0; c < q; c++)
        for (int r = c + 1; r < q; r++) {
            double f = A[r][c] / A[c][c];
            for (int k = c; k <= q; k++)
                A[r][k] -= f * A[c][k];
        }
    for (int r = q - 1; r >= 0; r--) {
        double v = A[r][q];
        for (int k = r + 1; k < q; k++)
            v -= A[r][k] * w[k];
        w[r] = v / A[r][r];
    }
}

static double dist2(const ohm_model_t *m, const double *wstar)
{
    float w[8];
    ohm_model_get_params(m, w);
    double d = 0;
    for (size_t i = 0; i < ohm_model_nparams(m); i++)
        d += (w[i] - wstar[i]) * (w[i] - wstar[i]);
    return d;
}

/* err[e] = ||w - w*||^2 after e epochs of batch-4 steps with constant lr, the
 * batches cut from one seeded permutation per epoch (SAGA or SGD). */
static void run(const set_t *s, int saga, float lr, int epochs, const double *wstar, double *err)
{
    ohm_model_t *m = model(s->dim, 1, 0, OHM_LOSS_MSE, 11);
    ohm_optim_params_t p = params(0, saga ? OHM_SAGA_SAMPLE : OHM_SAGA_OFF, (size_t)s->n, 4);
    ohm_optim_t *o = NULL;
    cr_assert_eq(ohm_optim_new(&p, m, &o), OHM_OK);
    gather_t g = gather_new(s, 4);
    uint32_t perm[64];
    ohm_rng_t r;
    ohm_rng_seed(&r, 17, 0, OHM_STREAM_BATCH);
    err[0] = dist2(m, wstar);
    for (int e = 1; e <= epochs; e++) {
        for (int i = 0; i < s->n; i++)
            perm[i] = (uint32_t)i;
        ohm_rng_shuffle(&r, perm, (size_t)s->n);
        for (int a = 0; a < s->n; a += 4) {
            const ohm_batch_t *b = gather(&g, s, perm + a, 4);
            cr_assert_eq(ohm_optim_step(o, m, b, perm + a, lr, NULL), OHM_OK);
        }
        err[e] = dist2(m, wstar);
    }
    gather_free(&g);
    ohm_optim_destroy(&o);
    ohm_model_destroy(&m);
}

Test(optim, saga_converges_linearly_where_sgd_stalls)
{
    enum { N = 64, E = 120 };
    set_t s = make_set(N, 4, 1, 1, 9);
    double wstar[5];
    least_squares_optimum(&s, wstar);
    static double saga[E + 1], sgd[E + 1];
    const float lr = 0.05f;
    run(&s, 1, lr, E, wstar, saga);
    run(&s, 0, lr, E, wstar, sgd);
    cr_log_info("||w - w*||^2 after 0/20/40/60/120 epochs: SAGA %.3g %.3g %.3g %.3g %.3g, SGD "
                "%.3g %.3g %.3g %.3g %.3g",
                saga[0], saga[20], saga[40], saga[60], saga[E], sgd[0], sgd[20], sgd[40], sgd[60],
                sgd[E]);
    /* Linear: every 5 epochs the error shrinks by a factor of 10 or more,
     * until float32 weights (about 1e-7 relative, ~1e-12 squared) stop it. */
    for (int e = 5; e <= 60; e += 5)
        cr_expect(saga[e] < 0.1 * saga[e - 5] || saga[e] < 1e-11, "SAGA epoch %d: %g after %g", e,
                  saga[e], saga[e - 5]);
    cr_expect(saga[E] < 1e-9, "SAGA reaches the optimum: %g", saga[E]);
    /* SGD with the same step: stuck at its noise floor, which does not move
     * between epoch 60 and 120. */
    cr_expect(sgd[E] > 1e-5, "SGD floor %g", sgd[E]);
    cr_expect(sgd[E] > 0.1 * sgd[60], "SGD does not keep converging: %g after %g", sgd[E],
              sgd[60]);
    cr_expect(sgd[E] > 1e4 * saga[E]);
    free_set(&s);
}

/* ---- fixed batches, memory, config ---------------------------------------- */

Test(optim, batch_table_draws_fixed_disjoint_batches)
{
    ohm_model_t *m = model(3, 2, 0, OHM_LOSS_XENT, 1);
    ohm_optim_params_t p = params(0, OHM_SAGA_BATCH, 23, 5); /* 4 batches of 5, one of 3 */
    ohm_optim_t *o = NULL;
    cr_assert_eq(ohm_optim_new(&p, m, &o), OHM_OK);
    int owner[23];
    for (int i = 0; i < 23; i++)
        owner[i] = -1;
    int draws[5] = {0}, batches = 0;
    for (int k = 0; k < 500; k++) {
        uint32_t idx[5];
        int nb = ohm_optim_sample(o, NULL, NULL, idx, 5);
        cr_assert(nb == 5 || nb == 3);
        cr_assert_lt(idx[0], 23u);
        int id = owner[idx[0]];
        if (id < 0) { /* a batch not seen yet: none of its examples seen either */
            cr_assert_lt(batches, 5, "more than 5 batches");
            id = batches++;
            for (int i = 0; i < nb; i++) {
                cr_assert_lt(idx[i], 23u);
                cr_assert_eq(owner[idx[i]], -1, "example %u in two batches", idx[i]);
                owner[idx[i]] = id;
            }
        }
        for (int i = 0; i < nb; i++)
            cr_assert_eq(owner[idx[i]], id, "batch %d changed", id);
        draws[id]++;
    }
    for (int i = 0; i < 23; i++)
        cr_expect_geq(owner[i], 0, "example %d never drawn", i);
    for (int j = 0; j < 5; j++)
        cr_expect(draws[j] > 60, "batch %d drawn %d times of 500", j, draws[j]);
    ohm_optim_destroy(&o);
    ohm_model_destroy(&m);
}

/* The table's bytes as the header states them, and the bound enforced. */
Test(optim, table_memory_is_stated_and_bounded)
{
    /* Fashion-MNIST softmax: 7850 parameters, 10 outputs, 5000 examples */
    ohm_model_t *lin = model(784, 10, 0, OHM_LOSS_XENT, 1);
    ohm_model_t *mlp = model(784, 10, 128, OHM_LOSS_XENT, 1);
    ohm_optim_params_t p = params(0, OHM_SAGA_AUTO, 5000, 32);
    cr_expect_eq(ohm_optim_table_bytes(lin, &p, OHM_SAGA_SAMPLE), 5000u * 10 * 4);
    cr_expect_eq(ohm_optim_table_bytes(lin, &p, OHM_SAGA_BATCH), 157u * 7850 * 4);
    cr_expect_eq(ohm_optim_table_bytes(mlp, &p, OHM_SAGA_SAMPLE), 5000u * 101770 * 4);
    cr_expect_eq(ohm_optim_table_bytes(mlp, &p, OHM_SAGA_BATCH), 157u * 101770 * 4);
    p.max_bytes = (size_t)256 << 20;
    ohm_optim_t *o = NULL;
    cr_assert_eq(ohm_optim_new(&p, lin, &o), OHM_OK);
    cr_expect_eq(ohm_optim_table_kind(o), OHM_SAGA_SAMPLE);
    cr_expect_eq(ohm_optim_bytes(o), 200000u);
    ohm_optim_destroy(&o);
    cr_assert_eq(ohm_optim_new(&p, mlp, &o), OHM_OK, "auto falls back to the batch table");
    cr_expect_eq(ohm_optim_table_kind(o), OHM_SAGA_BATCH);
    ohm_optim_destroy(&o);
    p.saga = OHM_SAGA_SAMPLE;
    cr_expect_eq(ohm_optim_new(&p, mlp, &o), OHM_ETOOBIG);
    cr_expect(strstr(ohm_error_detail(), "1941.") && strstr(ohm_error_detail(), "saga_max_mb"),
              "%s", ohm_error_detail());
    cr_expect_null(o);
    p.saga = OHM_SAGA_AUTO;
    p.max_bytes = 1 << 20;
    cr_expect_eq(ohm_optim_new(&p, mlp, &o), OHM_ETOOBIG, "neither table fits 1 MiB");
    p = params(1.0, OHM_SAGA_OFF, 5000, 32);
    cr_expect_eq(ohm_optim_new(&p, lin, &o), OHM_EINVAL);
    p = params(0, OHM_SAGA_SAMPLE, 0, 32);
    cr_expect_eq(ohm_optim_new(&p, lin, &o), OHM_EINVAL);
    ohm_model_destroy(&lin);
    ohm_model_destroy(&mlp);
}

Test(optim, from_config)
{
    ohm_config_t *c = ohm_config_new();
    cr_assert_eq(ohm_config_set(c, "data.name=synthetic", "t"), OHM_OK);
    cr_assert_eq(ohm_config_set(c, "data.train_size=200", "t"), OHM_OK);
    ohm_data_t *d = NULL;
    cr_assert_eq(ohm_data_open(c, 2, 0, &d), OHM_OK, "%s", ohm_error_detail());
    ohm_model_t *m = model(ohm_data_dim(d), ohm_data_outputs(d), 0, OHM_LOSS_XENT, 1);
    ohm_optim_t *o = (ohm_optim_t *)1;
    cr_assert_eq(ohm_optim_from_config(c, m, d, 0, &o), OHM_OK);
    cr_expect_null(o, "plain steps need no optimizer");
    cr_assert_eq(ohm_config_set(c, "optimizer.variance_reduction=saga", "t"), OHM_OK);
    cr_assert_eq(ohm_optim_from_config(c, m, d, 0, &o), OHM_OK, "%s", ohm_error_detail());
    cr_assert_not_null(o);
    cr_expect_eq(ohm_optim_table_kind(o), OHM_SAGA_SAMPLE);
    ohm_optim_destroy(&o);
    cr_assert_eq(ohm_config_set(c, "optimizer.saga_table=batch", "t"), OHM_OK);
    cr_assert_eq(ohm_config_set(c, "optimizer.momentum=0.9", "t"), OHM_OK);
    cr_assert_eq(ohm_optim_from_config(c, m, d, 0, &o), OHM_OK);
    cr_expect_eq(ohm_optim_table_kind(o), OHM_SAGA_BATCH);
    ohm_optim_destroy(&o);
    cr_expect_neq(ohm_config_set(c, "optimizer.momentum=1", "t"), OHM_OK, "beta < 1");
    cr_assert_eq(ohm_config_set(c, "optimizer.name=analog-sgd", "t"), OHM_OK);
    cr_expect_eq(ohm_optim_from_config(c, m, d, 0, &o), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "digital optimizer only"), "%s", ohm_error_detail());
    ohm_model_destroy(&m);
    ohm_data_destroy(&d);
    ohm_config_destroy(&c);
}
