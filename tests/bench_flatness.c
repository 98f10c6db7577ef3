/* ohmbench flatness: cost of each flatness measure for the default MLP.
 *
 *   ohmbench flatness [--samples 10000] [--hidden 128] [--probes 20] [--iters 30]
 *                     [--draws 10]
 *
 * Data shaped like Fashion-MNIST (784 inputs in [0, 1], 10 classes labelled by
 * a random linear teacher), so it runs without the data set; ReLU MLP
 * 784-hidden-10 with bias at its He initialisation. Baseline: one full-batch
 * gradient of the model (ohm_model_loss_grad, float) on the same examples in
 * the same run, so ratio = measure time / gradient time. Single-threaded. */
#include "ohm_dense.h"
#include "ohm_flatness.h"
#include "ohm_hvp.h"
#include "ohm_model.h"
#include "ohmbench.h"

#include <stdio.h>
#include <stdlib.h>

int ohm_bench_flatness(int argc, char **argv)
{
    int n = (int)ohm_bench_opt_int(argc, argv, "--samples", 10000);
    int hidden = (int)ohm_bench_opt_int(argc, argv, "--hidden", 128);
    ohm_flat_opts_t o;
    ohm_flat_opts_default(&o);
    o.probes = (int)ohm_bench_opt_int(argc, argv, "--probes", o.probes);
    o.iters = (int)ohm_bench_opt_int(argc, argv, "--iters", o.iters);
    o.draws = (int)ohm_bench_opt_int(argc, argv, "--draws", o.draws);
    if (n < 1 || hidden < 1 || o.probes < 2 || o.iters < 1 || o.draws < 2) {
        fprintf(stderr, "ohmbench flatness: need samples, hidden >= 1, probes, draws >= 2, "
                        "iters >= 1\n");
        return 2;
    }
    ohm_dense_single_thread();
    enum { DIM = 784, K = 10 };
    float *x = malloc(sizeof(float) * (size_t)n * DIM);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)n);
    float *teacher = malloc(sizeof(float) * DIM * K);
    if (!x || !y || !teacher) return 1;
    ohm_rng_t r;
    ohm_rng_seed(&r, 1, 0, OHM_STREAM_DATA);
    for (int i = 0; i < DIM * K; i++)
        teacher[i] = (float)ohm_rng_normal(&r);
    for (int i = 0; i < n; i++) {
        float *xi = x + (size_t)i * DIM;
        for (int j = 0; j < DIM; j++)
            xi[j] = (float)ohm_rng_uniform(&r);
        double best = -1e300;
        for (int k = 0; k < K; k++) {
            double s = 0;
            for (int j = 0; j < DIM; j++)
                s += (xi[j] - 0.5) * teacher[k * DIM + j];
            if (s > best) {
                best = s;
                y[i] = k;
            }
        }
    }
    ohm_batch_t b = {.n = n, .dim = DIM, .x = x, .y = y};
    ohm_model_spec_t s = {.n_in = DIM,
                          .n_out = K,
                          .n_hidden = 1,
                          .hidden = {hidden},
                          .act = OHM_ACT_RELU,
                          .loss = OHM_LOSS_XENT,
                          .bias = 1};
    ohm_model_t *m = NULL;
    ohm_hvp_t *h = NULL;
    if (ohm_model_new(&s, NULL, NULL, &m) || ohm_hvp_new(&s, &b, &h)) return 1;
    ohm_rng_seed(&r, 1, 0, OHM_STREAM_INIT);
    ohm_model_init(m, &r);
    size_t P = ohm_model_nparams(m);
    float *w = malloc(sizeof(float) * P), *g = malloc(sizeof(float) * P);
    double *v = malloc(sizeof(double) * P), *hv = malloc(sizeof(double) * P);
    if (!w || !g || !v || !hv) return 1;
    ohm_model_get_params(m, w);

    /* Baseline: the model's own full-batch gradient, best of three. */
    double t_base = 1e300, loss = 0;
    for (int k = 0; k < 3; k++) {
        double t0 = ohm_bench_now();
        ohm_model_loss_grad(m, &b, &loss, g);
        double t = ohm_bench_now() - t0;
        if (t < t_base) t_base = t;
    }
    double t0 = ohm_bench_now();
    if (ohm_hvp_set_params_float(h, w)) return 1;
    ohm_flat_result_t res;
    int rc = ohm_flatness_measure(h, &o, &res);
    double t_total = ohm_bench_now() - t0;
    if (rc) return 1;
    /* One more Hessian-vector product alone (forward already cached). */
    for (size_t i = 0; i < P; i++)
        v[i] = ohm_rng_normal(&r);
    t0 = ohm_bench_now();
    ohm_hvp_apply(h, v, hv);
    double t_hvp = ohm_bench_now() - t0;

    const char *base = "model_full_batch_gradient";
    ohm_bench_emit("flatness_gradient_double", res.t_grad, "s", base, t_base);
    ohm_bench_emit("flatness_hvp", t_hvp, "s/product", base, t_base);
    ohm_bench_emit("flatness_trace", res.t_trace, "s", base, t_base);
    ohm_bench_emit("flatness_top_eigenvalue", res.t_eig, "s", base, t_base);
    ohm_bench_emit("flatness_sharpness", res.t_sharp, "s", base, t_base);
    ohm_bench_emit("flatness_total", t_total, "s", base, t_base);
    printf("{\"name\":\"flatness_setup\",\"samples\":%d,\"params\":%zu,\"probes\":%d,"
           "\"lanczos_iters\":%d,\"radii\":%d,\"draws\":%d,\"trace\":%.6g,\"top_eigenvalue\":%.6g,"
           "\"loss\":%.6g}\n",
           n, P, o.probes, res.eig_iters, o.nradii, o.draws, res.trace, res.top_eig, res.loss);
    ohm_hvp_destroy(&h);
    ohm_model_destroy(&m);
    free(x);
    free(y);
    free(teacher);
    free(w);
    free(g);
    free(v);
    free(hv);
    return 0;
}
