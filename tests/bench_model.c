/* ohmbench model: cost of one training step of a model, per example.
 *
 *   ohmbench model [--arch lenet5|mlp] [--layers LIST] [--batch 32] [--min-s 1]
 *                  [--opt tiki-taka|analog-sgd|residual] [--response softbounds]
 *                  [--kinds digital,expected,stochastic]
 *
 * Forward, backward and update of one mini-batch (ohm_model_train_step) on
 * inputs shaped like Fashion-MNIST (1 x 28 x 28 in [0, 1], 10 classes), for
 * digital tiles, analog tiles with expected updates and analog tiles with
 * stochastic pulse trains (BL 31, update management; tau 0.3, dw_min 1e-3),
 * each in microseconds per example. The floor, measured in the same run, is
 * the plain GEMMs of the same step on the same shapes (for each layer with a
 * tile: the forward product over its unrolled rows, the backward read except
 * for the first layer, and the weight gradient) on ready buffers: what is left
 * above it is unrolling, pooling, activations, the loss and, for analog
 * tiles, the pulsed update. Also the evaluation forward pass per example. LIST
 * is a model.layers text (docs/usage.md, section "Model layers"); --arch mlp is
 * 784-128-10. Times are the thread's CPU time; OpenBLAS single-threaded. */
#include "ohm_analog.h"
#include "ohm_dense.h"
#include "ohm_error.h"
#include "ohm_model.h"
#include "ohm_model_spec.h"
#include "ohm_plan.h"
#include "ohmbench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ohm_model_t *m;
    const ohm_batch_t *b;
    float lr;
} step_t;

/* CPU seconds per call of fn, repeating until min_s have passed (and at least twice). */
static double time_calls(void (*fn)(void *), void *arg, double min_s)
{
    fn(arg); /* warm: workspaces, first-touch pages */
    long reps = 0;
    double t0 = ohm_bench_cpu_now(), el;
    do {
        fn(arg);
        reps++;
        el = ohm_bench_cpu_now() - t0;
    } while (el < min_s || reps < 2);
    return el / (double)reps;
}

static void run_step(void *arg)
{
    step_t *s = arg;
    ohm_model_train_step(s->m, s->b, s->lr, NULL);
}

static void run_eval(void *arg)
{
    step_t *s = arg;
    ohm_model_evaluate(s->m, s->b, NULL, NULL);
}

typedef struct {
    const ohm_plan_t *p;
    int n, fwd_only;
    float *a[OHM_LAYERS_MAX], *w[OHM_LAYERS_MAX], *y[OHM_LAYERS_MAX], *z, *g[OHM_LAYERS_MAX];
} floor_t;

/* The step's products alone, on buffers of the right shapes. */
static void run_floor(void *arg)
{
    floor_t *f = arg;
    const ohm_plan_t *p = f->p;
    for (int i = 0; i < p->n; i++) {
        const ohm_plan_layer_t *L = &p->l[i];
        if (L->tile < 0) continue;
        ohm_dense_gemm(0, 1, f->n * L->positions, L->rows, L->cols, 1.0f, f->a[i], f->w[i], 0.0f,
                       f->y[i]);
    }
    if (f->fwd_only) return;
    for (int i = p->n - 1; i >= 0; i--) {
        const ohm_plan_layer_t *L = &p->l[i];
        if (L->tile < 0) continue;
        int rows = f->n * L->positions;
        if (i > 0) ohm_dense_gemm(0, 0, rows, L->cols, L->rows, 1.0f, f->y[i], f->w[i], 0.0f, f->z);
        ohm_dense_gemm(1, 0, L->rows, L->cols, rows, -0.01f, f->y[i], f->a[i], 1.0f, f->g[i]);
    }
}

static ohm_tile_t *digital_factory(void *ctx, int layer, int rows, int cols)
{
    (void)ctx;
    (void)layer;
    return ohm_tile_digital_new(rows, cols);
}

int ohm_bench_model(int argc, char **argv)
{
    const char *arch = ohm_bench_opt_str(argc, argv, "--arch", "lenet5");
    const char *layers = ohm_bench_opt_str(argc, argv, "--layers", NULL);
    const char *opt = ohm_bench_opt_str(argc, argv, "--opt", "tiki-taka");
    const char *resp = ohm_bench_opt_str(argc, argv, "--response", "softbounds");
    int batch = (int)ohm_bench_opt_int(argc, argv, "--batch", 32);
    double min_s = ohm_bench_opt_double(argc, argv, "--min-s", 1.0);
    const char *which = ohm_bench_opt_str(argc, argv, "--kinds", "digital,expected,stochastic");
    ohm_dense_single_thread();
    enum { SIDE = 28, DIM = SIDE * SIDE, K = 10 };
    ohm_model_spec_t s = {.n_in = DIM,
                          .n_out = K,
                          .act = OHM_ACT_RELU,
                          .loss = OHM_LOSS_XENT,
                          .bias = 1,
                          .in_shape = {1, SIDE, SIDE}};
    char text[512];
    if (layers)
        snprintf(text, sizeof text, "%s", layers);
    else if (!strcmp(arch, "lenet5"))
        snprintf(text, sizeof text, OHM_LENET5_LAYERS, K);
    else if (!strcmp(arch, "mlp"))
        snprintf(text, sizeof text, "fc:128,fc:%d", K);
    else
        text[0] = '\0';
    ohm_analog_ctx_t ctx = {.seed = 1, .peer = 0};
    ohm_analog_params_default(&ctx.params);
    int rc = ohm_device_response_index(resp) < 0 ? OHM_EINVAL : OHM_OK;
    ctx.params.opt = !strcmp(opt, "analog-sgd")  ? OHM_OPT_ANALOG_SGD
                     : !strcmp(opt, "residual") ? OHM_OPT_RESIDUAL
                     : !strcmp(opt, "tiki-taka") ? OHM_OPT_TIKI_TAKA
                                                 : -1;
    ohm_plan_t p;
    if (!text[0] || batch < 1 || !(min_s > 0) || ctx.params.opt < 0 || rc ||
        ohm_layers_parse(text, "--layers", s.layers, &s.n_layers) || ohm_plan_build(&s, &p)) {
        fprintf(stderr,
                "ohmbench model: need --arch lenet5|mlp or --layers LIST for a 1x28x28 input "
                "and 10 classes, --batch >= 1, --min-s > 0, --opt analog-sgd|tiki-taka|residual, "
                "--response ideal|softbounds|pow|exp|linear%s%s\n",
                *ohm_error_detail() ? ": " : "", ohm_error_detail());
        return 2;
    }
    ctx.params.dev.response = ohm_device_response_index(resp);
    ctx.params.dev.tau = 0.3;
    ctx.params.dev.dw_min = 0.001;
    ctx.params.beta = 0.1;
    ctx.params.gamma = 0.1;
    ctx.params.transfer_every = 1;
    ctx.params.transfer_columns = 16;

    float *x = malloc(sizeof(float) * (size_t)batch * DIM);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)batch);
    if (!x || !y) return 1;
    ohm_rng_t r;
    ohm_rng_seed(&r, 1, 0, OHM_STREAM_DATA);
    for (size_t i = 0; i < (size_t)batch * DIM; i++)
        x[i] = (float)ohm_rng_uniform(&r);
    for (int i = 0; i < batch; i++)
        y[i] = (int32_t)ohm_rng_below(&r, K);
    ohm_batch_t b = {.n = batch, .dim = DIM, .x = x, .y = y};

    /* The floor's buffers. */
    floor_t f = {.p = &p, .n = batch};
    size_t zmax = 1;
    for (int i = 0; i < p.n; i++) {
        const ohm_plan_layer_t *L = &p.l[i];
        if (L->tile < 0) continue;
        size_t rows = (size_t)batch * L->positions;
        f.a[i] = calloc(rows * L->cols, sizeof(float));
        f.w[i] = calloc((size_t)L->rows * L->cols, sizeof(float));
        f.y[i] = calloc(rows * L->rows, sizeof(float));
        f.g[i] = calloc((size_t)L->rows * L->cols, sizeof(float));
        if (!f.a[i] || !f.w[i] || !f.y[i] || !f.g[i]) return 1;
        for (size_t j = 0; j < rows * L->cols; j++)
            f.a[i][j] = (float)ohm_rng_uniform(&r);
        for (size_t j = 0; j < (size_t)L->rows * L->cols; j++)
            f.w[i][j] = (float)(0.1 * ohm_rng_normal(&r));
        if (rows * L->cols > zmax) zmax = rows * L->cols;
    }
    f.z = malloc(sizeof(float) * zmax);
    if (!f.z) return 1;

    char desc[600];
    ohm_plan_describe(&s, desc, sizeof desc);
    printf("# %s, %zu parameters, batch %d; analog: %s, %s tau 0.3 dw_min 0.001, BL 31\n", desc,
           p.nparams, batch, opt, resp);
    double per = 1e6 / batch;
    double t_floor = time_calls(run_floor, &f, min_s) * per;
    f.fwd_only = 1;
    double t_floor_fwd = time_calls(run_floor, &f, min_s / 2) * per;

    static const char *const kinds[] = {"digital", "analog_expected", "analog_stochastic"};
    double t_step[3] = {0}, t_eval = 0;
    static const char *const short_kinds[] = {"digital", "expected", "stochastic"};
    for (int k = 0; k < 3; k++) {
        if (!strstr(which, short_kinds[k])) continue;
        ohm_model_t *m = NULL;
        ctx.params.update = k == 2 ? OHM_UPDATE_STOCHASTIC : OHM_UPDATE_EXPECTED;
        if (ohm_model_new(&s, k == 0 ? digital_factory : ohm_analog_tile_factory, &ctx, &m)) {
            fprintf(stderr, "ohmbench model: %s\n", ohm_error_detail());
            return 1;
        }
        ohm_rng_t ri;
        ohm_rng_seed(&ri, 1, 0, OHM_STREAM_INIT);
        ohm_model_init(m, &ri);
        step_t st = {.m = m, .b = &b, .lr = 0.05f};
        t_step[k] = time_calls(run_step, &st, min_s) * per;
        if (k == 0) t_eval = time_calls(run_eval, &st, min_s / 2) * per;
        else if (!t_eval) t_eval = -1;
        ohm_model_destroy(&m);
    }
    char name[128];
    const char *an = layers ? "custom" : arch;
    snprintf(name, sizeof name, "model_%s_gemm_floor", an);
    ohm_bench_emit(name, t_floor, "us/example", NULL, 0);
    snprintf(name, sizeof name, "model_%s_eval_forward", an);
    if (t_eval > 0) ohm_bench_emit(name, t_eval, "us/example", "gemm_floor_forward", t_floor_fwd);
    for (int k = 0; k < 3; k++) {
        if (!strstr(which, short_kinds[k])) continue;
        snprintf(name, sizeof name, "model_%s_%s", an, kinds[k]);
        ohm_bench_emit(name, t_step[k], "us/example", "gemm_floor", t_floor);
    }
    for (int i = 0; i < p.n; i++) {
        free(f.a[i]);
        free(f.w[i]);
        free(f.y[i]);
        free(f.g[i]);
    }
    free(f.z);
    free(x);
    free(y);
    return 0;
}
