/* Tests of the flatness measures: the double gradient against the model and
 * finite differences, Hessian-vector products against finite differences of
 * gradients and against explicitly formed Hessians (least squares, softmax
 * regression), Hutchinson's trace against the exact trace, Lanczos against
 * known spectra, and perturbation sharpness against its closed form on a
 * quadratic. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ohm_error.h"
#include "ohm_flatness.h"
#include "ohm_hvp.h"
#include "ohm_model.h"
#include "ohm_testdata.h"

static ohm_model_spec_t spec_of(int in, int out, int nh, const int *hid, int act, int loss,
                                int bias)
{
    ohm_model_spec_t s = {
        .n_in = in, .n_out = out, .n_hidden = nh, .act = act, .loss = loss, .bias = bias};
    for (int i = 0; i < nh; i++)
        s.hidden[i] = hid[i];
    return s;
}

static double vnorm(const double *a, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * a[i];
    return sqrt(s);
}

/* The double gradient path agrees with the model's float gradient (same layout, same loss). */
static void check_against_model(int act, int loss, int bias)
{
    int hid[2] = {7, 5};
    ohm_model_spec_t s = spec_of(6, 4, 2, hid, act, loss, bias);
    ohm_test_data_t d;
    ohm_test_data_fill(&d, 600, 6, 4, loss == OHM_LOSS_MSE, 11); /* > one chunk */
    ohm_model_t *m = NULL;
    cr_assert_eq(ohm_model_new(&s, NULL, NULL, &m), OHM_OK);
    size_t P = ohm_model_nparams(m);
    cr_assert_eq(P, ohm_hvp_nparams_of(&s));
    double *w = ohm_test_rand_vec(P, 0.4, 5);
    float *wf = malloc(sizeof(float) * P), *gf = malloc(sizeof(float) * P);
    double *g = malloc(sizeof(double) * P);
    for (size_t i = 0; i < P; i++)
        wf[i] = (float)w[i];
    ohm_model_set_params(m, wf, OHM_WB_EXACT);
    double lm = 0, lh = 0, acc_m = 0, acc_h = 0;
    cr_assert_eq(ohm_model_loss_grad(m, &d.b, &lm, gf), OHM_OK);
    cr_assert_eq(ohm_model_evaluate(m, &d.b, NULL, &acc_m), OHM_OK);
    ohm_hvp_t *h = NULL;
    cr_assert_eq(ohm_hvp_new(&s, &d.b, &h), OHM_OK);
    cr_assert_eq(ohm_hvp_nparams(h), P);
    cr_assert_eq(ohm_hvp_set_params_float(h, wf), OHM_OK);
    ohm_hvp_loss_grad(h, &lh, &acc_h, g);
    cr_assert_float_eq(lh, lm, 1e-5 * (1 + fabs(lm)), "loss %g vs model %g", lh, lm);
    cr_assert_float_eq(acc_h, acc_m, 1e-12);
    double gn = 0;
    for (size_t i = 0; i < P; i++)
        gn = fmax(gn, fabs(g[i]));
    for (size_t i = 0; i < P; i++)
        cr_assert_float_eq(g[i], gf[i], 1e-4 * gn + 1e-6, "param %zu: %g vs model %g", i, g[i],
                           (double)gf[i]);
    ohm_hvp_destroy(&h);
    cr_assert_null(h);
    ohm_model_destroy(&m);
    free(w);
    free(wf);
    free(gf);
    free(g);
    ohm_test_data_free(&d);
}

Test(hvp, gradient_matches_model)
{
    for (int act = OHM_ACT_RELU; act <= OHM_ACT_SIGMOID; act++)
        for (int loss = OHM_LOSS_XENT; loss <= OHM_LOSS_MSE; loss++) {
            check_against_model(act, loss, 1);
            check_against_model(act, loss, 0);
        }
}

/* Gradient by central differences of the loss, and Hv by central differences
 * of the gradient, for one architecture; both in double. */
static void check_fd(int act, int loss, int bias, int n)
{
    int hid[2] = {6, 5};
    ohm_model_spec_t s = spec_of(5, 3, 2, hid, act, loss, bias);
    ohm_test_data_t d;
    ohm_test_data_fill(&d, n, 5, 3, loss == OHM_LOSS_MSE, 23);
    ohm_hvp_t *h = NULL;
    cr_assert_eq(ohm_hvp_new(&s, &d.b, &h), OHM_OK);
    size_t P = ohm_hvp_nparams(h);
    double *w = ohm_test_rand_vec(P, 0.5, 31 + (uint64_t)act);
    double *g = malloc(sizeof(double) * P), *gp = malloc(sizeof(double) * P),
           *gm = malloc(sizeof(double) * P), *hv = malloc(sizeof(double) * P),
           *wp = malloc(sizeof(double) * P);
    cr_assert_eq(ohm_hvp_set_params(h, w), OHM_OK);
    ohm_hvp_loss_grad(h, NULL, NULL, g);

    /* Gradient: every coordinate. */
    const double eg = 1e-6;
    double gmax = 0;
    for (size_t i = 0; i < P; i++)
        gmax = fmax(gmax, fabs(g[i]));
    for (size_t i = 0; i < P; i++) {
        memcpy(wp, w, sizeof(double) * P);
        wp[i] = w[i] + eg;
        double lp = ohm_hvp_loss_at(h, wp);
        wp[i] = w[i] - eg;
        double lm = ohm_hvp_loss_at(h, wp);
        double fd = (lp - lm) / (2 * eg);
        cr_assert_float_eq(g[i], fd, 1e-6 * gmax + 1e-9, "act %d loss %d: grad %zu %g vs fd %g",
                           act, loss, i, g[i], fd);
    }

    /* Hv against (g(w + e v) - g(w - e v)) / 2e for a few random directions. */
    const double e = 1e-5;
    for (int k = 0; k < 3; k++) {
        double *v = ohm_test_rand_vec(P, 1.0, 100 + (uint64_t)k);
        ohm_hvp_apply(h, v, hv);
        for (size_t i = 0; i < P; i++)
            wp[i] = w[i] + e * v[i];
        cr_assert_eq(ohm_hvp_set_params(h, wp), OHM_OK);
        ohm_hvp_loss_grad(h, NULL, NULL, gp);
        for (size_t i = 0; i < P; i++)
            wp[i] = w[i] - e * v[i];
        cr_assert_eq(ohm_hvp_set_params(h, wp), OHM_OK);
        ohm_hvp_loss_grad(h, NULL, NULL, gm);
        cr_assert_eq(ohm_hvp_set_params(h, w), OHM_OK);
        double err = 0;
        for (size_t i = 0; i < P; i++) {
            double fd = (gp[i] - gm[i]) / (2 * e);
            err = fmax(err, fabs(fd - hv[i]));
        }
        double scale = 0;
        for (size_t i = 0; i < P; i++)
            scale = fmax(scale, fabs(hv[i]));
        cr_assert(scale > 1e-6, "act %d loss %d: Hv vanishes", act, loss);
        cr_assert(err <= 1e-5 * scale, "act %d loss %d bias %d: |Hv - fd| = %g of %g", act, loss,
                  bias, err, scale);
        free(v);
    }

    /* Symmetry: u^T H v = v^T H u. */
    double *u = ohm_test_rand_vec(P, 1.0, 7), *v = ohm_test_rand_vec(P, 1.0, 8);
    ohm_hvp_apply(h, v, hv);
    double uhv = 0, vhu = 0;
    for (size_t i = 0; i < P; i++)
        uhv += u[i] * hv[i];
    ohm_hvp_apply(h, u, hv);
    for (size_t i = 0; i < P; i++)
        vhu += v[i] * hv[i];
    cr_assert_float_eq(uhv, vhu, 1e-10 * (fabs(uhv) + 1e-12));
    free(u);
    free(v);

    ohm_hvp_destroy(&h);
    free(w);
    free(g);
    free(gp);
    free(gm);
    free(hv);
    free(wp);
    ohm_test_data_free(&d);
}

Test(hvp, finite_differences_relu)
{
    check_fd(OHM_ACT_RELU, OHM_LOSS_XENT, 1, 40);
    check_fd(OHM_ACT_RELU, OHM_LOSS_MSE, 1, 40);
}

Test(hvp, finite_differences_tanh)
{
    check_fd(OHM_ACT_TANH, OHM_LOSS_XENT, 1, 40);
    check_fd(OHM_ACT_TANH, OHM_LOSS_MSE, 1, 40);
    check_fd(OHM_ACT_TANH, OHM_LOSS_XENT, 0, 40);
}

Test(hvp, finite_differences_sigmoid)
{
    check_fd(OHM_ACT_SIGMOID, OHM_LOSS_XENT, 1, 40);
    check_fd(OHM_ACT_SIGMOID, OHM_LOSS_MSE, 0, 40);
}

Test(hvp, finite_differences_across_chunks)
{
    /* More examples than one chunk: partial sums over chunks must add up. */
    check_fd(OHM_ACT_TANH, OHM_LOSS_XENT, 1, 1100);
}

/* Full Hessian through H e_j, column by column (P x P, row-major). */
static double *hessian_by_columns(ohm_hvp_t *h)
{
    size_t P = ohm_hvp_nparams(h);
    double *H = malloc(sizeof(double) * P * P), *e = calloc(P, sizeof(double));
    cr_assert(H && e);
    for (size_t j = 0; j < P; j++) {
        e[j] = 1.0;
        double *col = malloc(sizeof(double) * P);
        ohm_hvp_apply(h, e, col);
        for (size_t i = 0; i < P; i++)
            H[i * P + j] = col[i];
        free(col);
        e[j] = 0.0;
    }
    free(e);
    return H;
}

Test(hvp, least_squares_exact_hessian)
{
    /* One linear layer with bias, squared error: L = 1/(2n) sum_i ||W a_i - t_i||^2,
     * so H[(k,c),(k',c')] = [k == k'] M[c][c'], M = A^T A / n with A = [X, 1]. */
    const int n = 13, dim = 4, K = 3, cols = dim + 1;
    ohm_model_spec_t s = spec_of(dim, K, 0, NULL, OHM_ACT_RELU, OHM_LOSS_MSE, 1);
    ohm_test_data_t d;
    ohm_test_data_fill(&d, n, dim, K, 1, 5);
    ohm_hvp_t *h = NULL;
    cr_assert_eq(ohm_hvp_new(&s, &d.b, &h), OHM_OK);
    size_t P = ohm_hvp_nparams(h);
    cr_assert_eq(P, (size_t)K * cols);
    double *w = ohm_test_rand_vec(P, 1.0, 3);
    cr_assert_eq(ohm_hvp_set_params(h, w), OHM_OK);
    double M[5][5] = {{0}};
    for (int i = 0; i < n; i++)
        for (int a = 0; a < cols; a++)
            for (int b = 0; b < cols; b++) {
                double xa = a < dim ? d.x[i * dim + a] : 1.0, xb = b < dim ? d.x[i * dim + b] : 1.0;
                M[a][b] += xa * xb / n;
            }
    double *H = hessian_by_columns(h);
    for (int k = 0; k < K; k++)
        for (int c = 0; c < cols; c++)
            for (int k2 = 0; k2 < K; k2++)
                for (int c2 = 0; c2 < cols; c2++) {
                    double want = k == k2 ? M[c][c2] : 0.0;
                    double got = H[(size_t)(k * cols + c) * P + (size_t)(k2 * cols + c2)];
                    cr_assert_float_eq(got, want, 1e-12, "H[(%d,%d),(%d,%d)] = %g, want %g", k, c,
                                       k2, c2, got, want);
                }
    free(H);
    free(w);
    ohm_hvp_destroy(&h);
    ohm_test_data_free(&d);
}

Test(hvp, softmax_regression_exact_hessian)
{
    /* One linear layer, cross-entropy: H = 1/n sum_i (diag(p_i) - p_i p_i^T) (x) a_i a_i^T. */
    const int n = 9, dim = 3, K = 4, cols = dim + 1;
    ohm_model_spec_t s = spec_of(dim, K, 0, NULL, OHM_ACT_TANH, OHM_LOSS_XENT, 1);
    ohm_test_data_t d;
    ohm_test_data_fill(&d, n, dim, K, 0, 17);
    ohm_hvp_t *h = NULL;
    cr_assert_eq(ohm_hvp_new(&s, &d.b, &h), OHM_OK);
    size_t P = ohm_hvp_nparams(h);
    double *w = ohm_test_rand_vec(P, 0.7, 9);
    cr_assert_eq(ohm_hvp_set_params(h, w), OHM_OK);
    double *want = calloc(P * P, sizeof(double));
    for (int i = 0; i < n; i++) {
        double a[4], z[4], p[4], mx = -INFINITY, sum = 0;
        for (int c = 0; c < cols; c++)
            a[c] = c < dim ? d.x[i * dim + c] : 1.0;
        for (int k = 0; k < K; k++) {
            z[k] = 0;
            for (int c = 0; c < cols; c++)
                z[k] += w[k * cols + c] * a[c];
            mx = fmax(mx, z[k]);
        }
        for (int k = 0; k < K; k++)
            sum += (p[k] = exp(z[k] - mx));
        for (int k = 0; k < K; k++)
            p[k] /= sum;
        for (int k = 0; k < K; k++)
            for (int k2 = 0; k2 < K; k2++)
                for (int c = 0; c < cols; c++)
                    for (int c2 = 0; c2 < cols; c2++)
                        want[(size_t)(k * cols + c) * P + (size_t)(k2 * cols + c2)] +=
                            ((k == k2 ? p[k] : 0.0) - p[k] * p[k2]) * a[c] * a[c2] / n;
    }
    double *H = hessian_by_columns(h);
    for (size_t i = 0; i < P * P; i++)
        cr_assert_float_eq(H[i], want[i], 1e-12, "entry %zu: %g, want %g", i, H[i], want[i]);
    free(H);
    free(want);
    free(w);
    ohm_hvp_destroy(&h);
    ohm_test_data_free(&d);
}

/* ---- trace, eigenvalue, sharpness -------------------------------------- */

typedef struct {
    size_t n;
    const double *A; /* n x n, symmetric */
} dense_op_t;

static void dense_matvec(void *ctx, const double *x, double *y)
{
    const dense_op_t *o = ctx;
    for (size_t i = 0; i < o->n; i++) {
        y[i] = 0;
        for (size_t j = 0; j < o->n; j++)
            y[i] += o->A[i * o->n + j] * x[j];
    }
}

static void hvp_matvec(void *ctx, const double *x, double *y)
{
    ohm_hvp_apply(ctx, x, y);
}

static double hvp_loss(void *ctx, const double *w)
{
    return ohm_hvp_loss_at(ctx, w);
}

Test(flatness, hutchinson_exact_on_diagonal)
{
    /* Rademacher probes give v^T D v = tr(D) exactly for a diagonal D: zero spread. */
    double A[16] = {3, 0, 0, 0, 0, -1, 0, 0, 0, 0, 2.5, 0, 0, 0, 0, 7};
    dense_op_t o = {4, A};
    ohm_rng_t r;
    ohm_rng_seed(&r, 1, 0, OHM_STREAM_FLAT);
    double tr = 0, se = 1;
    cr_assert_eq(ohm_flat_trace(dense_matvec, &o, 4, 5, &r, &tr, &se), OHM_OK);
    cr_assert_float_eq(tr, 11.5, 1e-12);
    cr_assert_float_eq(se, 0.0, 1e-12);
    cr_assert_eq(ohm_flat_trace(dense_matvec, &o, 4, 1, &r, &tr, &se), OHM_EINVAL);
}

Test(flatness, hutchinson_within_standard_errors)
{
    int hid[1] = {4};
    ohm_model_spec_t s = spec_of(3, 3, 1, hid, OHM_ACT_TANH, OHM_LOSS_XENT, 1);
    ohm_test_data_t d;
    ohm_test_data_fill(&d, 30, 3, 3, 0, 2);
    ohm_hvp_t *h = NULL;
    cr_assert_eq(ohm_hvp_new(&s, &d.b, &h), OHM_OK);
    size_t P = ohm_hvp_nparams(h);
    double *w = ohm_test_rand_vec(P, 0.8, 12);
    cr_assert_eq(ohm_hvp_set_params(h, w), OHM_OK);
    double *H = hessian_by_columns(h), exact = 0, off2 = 0;
    for (size_t i = 0; i < P; i++) {
        exact += H[i * P + i];
        for (size_t j = 0; j < P; j++)
            off2 += i != j ? H[i * P + j] * H[i * P + j] : 0.0;
    }
    /* Rademacher probes: Var(v^T H v) = 2 sum_{i != j} H_ij^2, so the standard
     * error of 100 probes is about sqrt(2 off2 / 100). Several seeds: each
     * estimate within 3.5 standard errors of the exact trace. */
    double se_theory = sqrt(2.0 * off2 / 100.0);
    int within = 0;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        ohm_rng_t r;
        ohm_rng_seed(&r, seed, 1, OHM_STREAM_FLAT);
        double tr, se;
        cr_assert_eq(ohm_flat_trace(hvp_matvec, h, P, 100, &r, &tr, &se), OHM_OK);
        cr_assert(se > 0.6 * se_theory && se < 1.5 * se_theory, "se %g, theory %g", se, se_theory);
        within += fabs(tr - exact) <= 3.5 * se;
    }
    cr_assert_geq(within, 4, "only %d of 5 estimates within 3.5 se of %g", within, exact);
    free(H);
    free(w);
    ohm_hvp_destroy(&h);
    ohm_test_data_free(&d);
}

/* Random orthogonal n x n matrix (Gram-Schmidt on Gaussian columns). */
static void orthogonal(double *Q, int n, uint64_t seed)
{
    ohm_rng_t r;
    ohm_rng_seed(&r, seed, 0, 77);
    for (int i = 0; i < n * n; i++)
        Q[i] = ohm_rng_normal(&r);
    for (int j = 0; j < n; j++) {
        for (int k = 0; k < j; k++) {
            double c = 0;
            for (int i = 0; i < n; i++)
                c += Q[i * n + j] * Q[i * n + k];
            for (int i = 0; i < n; i++)
                Q[i * n + j] -= c * Q[i * n + k];
        }
        double s = 0;
        for (int i = 0; i < n; i++)
            s += Q[i * n + j] * Q[i * n + j];
        for (int i = 0; i < n; i++)
            Q[i * n + j] /= sqrt(s);
    }
}

Test(flatness, top_eigenvalue_of_designed_least_squares)
{
    /* X = sqrt(n) D Q^T (n = dim rows) gives X^T X / n = Q D^2 Q^T: the Hessian
     * I (x) Q D^2 Q^T has top eigenvalue max D^2 = 6.25, the next 3.0. */
    enum { N = 12 };
    const double d2[N] = {6.25, 3.0, 2.5, 2.0, 1.5, 1.2, 1.0, 0.8, 0.5, 0.3, 0.2, 0.1};
    double Q[N * N];
    orthogonal(Q, N, 4);
    ohm_test_data_t d;
    ohm_test_data_fill(&d, N, N, 2, 1, 8);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            d.x[i * N + j] = (float)(sqrt((double)N * d2[i]) * Q[j * N + i]);
    /* The float copy of X perturbs M slightly: compare with the spectrum of
     * the M actually seen (its Rayleigh quotient bound is enough: 1e-5). */
    ohm_model_spec_t s = spec_of(N, 2, 0, NULL, OHM_ACT_RELU, OHM_LOSS_MSE, 0);
    ohm_hvp_t *h = NULL;
    cr_assert_eq(ohm_hvp_new(&s, &d.b, &h), OHM_OK);
    size_t P = ohm_hvp_nparams(h);
    double *w = ohm_test_rand_vec(P, 1.0, 1);
    cr_assert_eq(ohm_hvp_set_params(h, w), OHM_OK);
    ohm_rng_t r;
    ohm_rng_seed(&r, 3, 2, OHM_STREAM_FLAT);
    double lam = 0;
    int it = 0;
    cr_assert_eq(ohm_flat_top_eig(hvp_matvec, h, P, 40, 1e-10, &r, &lam, &it), OHM_OK);
    cr_assert_float_eq(lam, 6.25, 1e-5 * 6.25, "top eigenvalue %.10g after %d", lam, it);
    cr_assert(it <= 2 * N + 1);
    free(w);
    ohm_hvp_destroy(&h);
    ohm_test_data_free(&d);
}

Test(flatness, top_eigenvalue_is_algebraic_not_magnitude)
{
    /* Indefinite: eigenvalues -10, 4, 2, 1, 0.5, rotated. Lanczos must return 4. */
    enum { N = 5 };
    const double ev[N] = {-10, 4, 2, 1, 0.5};
    double Q[N * N], A[N * N];
    orthogonal(Q, N, 9);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            A[i * N + j] = 0;
            for (int k = 0; k < N; k++)
                A[i * N + j] += Q[i * N + k] * ev[k] * Q[j * N + k];
        }
    dense_op_t o = {N, A};
    ohm_rng_t r;
    ohm_rng_seed(&r, 5, 2, OHM_STREAM_FLAT);
    double lam = 0;
    int it = 0;
    cr_assert_eq(ohm_flat_top_eig(dense_matvec, &o, N, 30, 1e-12, &r, &lam, &it), OHM_OK);
    cr_assert_float_eq(lam, 4.0, 1e-9, "got %.12g", lam);
    cr_assert_leq(it, N); /* the Krylov space is exhausted after n products */
    /* A stop on relative change: a loose tolerance stops earlier, near the value. */
    ohm_rng_seed(&r, 5, 2, OHM_STREAM_FLAT);
    cr_assert_eq(ohm_flat_top_eig(dense_matvec, &o, N, 1, 0.1, &r, &lam, &it), OHM_OK);
    cr_assert_eq(it, 1);
    cr_assert_eq(ohm_flat_top_eig(dense_matvec, &o, N, 0, 0.1, &r, &lam, &it), OHM_EINVAL);
}

Test(flatness, sharpness_on_a_quadratic)
{
    /* Least squares is exactly quadratic, so an antithetic draw counts
     * delta^T H delta / 2 and the mean is rho^2 ||w||^2 tr(H) / (2 d). */
    const int n = 40, dim = 6, K = 2;
    ohm_model_spec_t s = spec_of(dim, K, 0, NULL, OHM_ACT_RELU, OHM_LOSS_MSE, 1);
    ohm_test_data_t d;
    ohm_test_data_fill(&d, n, dim, K, 1, 6);
    ohm_hvp_t *h = NULL;
    cr_assert_eq(ohm_hvp_new(&s, &d.b, &h), OHM_OK);
    size_t P = ohm_hvp_nparams(h);
    double *w = ohm_test_rand_vec(P, 1.0, 2);
    cr_assert_eq(ohm_hvp_set_params(h, w), OHM_OK);
    double *H = hessian_by_columns(h), trH = 0, loss0 = 0;
    for (size_t i = 0; i < P; i++)
        trH += H[i * P + i];
    ohm_hvp_loss_grad(h, &loss0, NULL, NULL);
    double radii[4] = {1e-7, 0.01, 0.05, 0.1}, mean[4], se[4];
    ohm_rng_t r;
    ohm_rng_seed(&r, 1, 3, OHM_STREAM_FLAT);
    cr_assert_eq(ohm_flat_sharpness(hvp_loss, h, w, P, loss0, radii, 4, 400, &r, mean, se), OHM_OK);
    double wn2 = vnorm(w, P) * vnorm(w, P);
    cr_assert(fabs(mean[0]) < 1e-10, "sharpness at rho -> 0: %g", mean[0]);
    for (int k = 1; k < 4; k++) {
        double want = radii[k] * radii[k] * wn2 * trH / (2.0 * (double)P);
        cr_assert(se[k] > 0);
        cr_assert(fabs(mean[k] - want) <= 4 * se[k], "rho %g: %g +- %g, want %g", radii[k], mean[k],
                  se[k], want);
        cr_assert(fabs(mean[k] - want) <= 0.1 * want);
        cr_assert(mean[k] > mean[k - 1]);
    }
    /* Common directions across radii: on a quadratic the curve is exactly rho^2. */
    cr_assert_float_eq(mean[3] / mean[2], 4.0, 1e-6);
    cr_assert_eq(ohm_flat_sharpness(hvp_loss, h, w, P, loss0, radii, 4, 1, &r, mean, se),
                 OHM_EINVAL);
    free(H);
    free(w);
    ohm_hvp_destroy(&h);
    ohm_test_data_free(&d);
}

Test(flatness, measure_all_is_reproducible_and_consistent)
{
    int hid[1] = {8};
    ohm_model_spec_t s = spec_of(5, 3, 1, hid, OHM_ACT_SIGMOID, OHM_LOSS_XENT, 1);
    ohm_test_data_t d;
    ohm_test_data_fill(&d, 50, 5, 3, 0, 3);
    ohm_hvp_t *h = NULL;
    cr_assert_eq(ohm_hvp_new(&s, &d.b, &h), OHM_OK);
    size_t P = ohm_hvp_nparams(h);
    double *w = ohm_test_rand_vec(P, 0.9, 4);
    cr_assert_eq(ohm_hvp_set_params(h, w), OHM_OK);
    double *H = hessian_by_columns(h), trH = 0;
    for (size_t i = 0; i < P; i++)
        trH += H[i * P + i];
    ohm_flat_opts_t o;
    ohm_flat_opts_default(&o);
    o.probes = 50;
    o.iters = (int)P;
    o.tol = 1e-12;
    ohm_flat_result_t a, b;
    cr_assert_eq(ohm_flatness_measure(h, &o, &a), OHM_OK);
    cr_assert_eq(ohm_flatness_measure(h, &o, &b), OHM_OK);
    cr_assert_eq(memcmp(&a.trace, &b.trace, sizeof a.trace), 0);
    cr_assert_eq(memcmp(&a.top_eig, &b.top_eig, sizeof a.top_eig), 0);
    cr_assert_eq(memcmp(a.sharp, b.sharp, sizeof a.sharp), 0);
    cr_assert(fabs(a.trace - trH) <= 4 * a.trace_se, "%g +- %g vs %g", a.trace, a.trace_se, trH);
    /* The top eigenvalue bounds every Rayleigh quotient, e.g. each diagonal entry. */
    for (size_t i = 0; i < P; i++)
        cr_assert_leq(H[i * P + i], a.top_eig + 1e-9);
    cr_assert(a.grad_norm > 0 && isfinite(a.loss) && a.acc >= 0 && a.acc <= 1);
    cr_assert(a.sharp[0] < a.sharp[1] && a.sharp[1] < a.sharp[2]);
    cr_assert(isnan(a.sharp[3]));
    /* Skipped measures are NaN. */
    o.probes = 0;
    o.iters = 0;
    cr_assert_eq(ohm_flatness_measure(h, &o, &b), OHM_OK);
    cr_assert(isnan(b.trace) && isnan(b.top_eig));
    free(H);
    free(w);
    ohm_hvp_destroy(&h);
    ohm_test_data_free(&d);
}

Test(hvp, bad_inputs_are_errors)
{
    int hid[1] = {3};
    ohm_model_spec_t s = spec_of(4, 3, 1, hid, OHM_ACT_RELU, OHM_LOSS_XENT, 1);
    ohm_test_data_t d;
    ohm_test_data_fill(&d, 10, 4, 3, 0, 1);
    ohm_hvp_t *h = NULL;
    ohm_batch_t wrong = d.b;
    wrong.dim = 5;
    cr_assert_eq(ohm_hvp_new(&s, &wrong, &h), OHM_ESHAPE);
    cr_assert_null(h);
    wrong = d.b;
    wrong.y = NULL;
    cr_assert_eq(ohm_hvp_new(&s, &wrong, &h), OHM_ESHAPE);
    d.y[4] = 3;
    cr_assert_eq(ohm_hvp_new(&s, &d.b, &h), OHM_ERANGE);
    cr_assert(strstr(ohm_error_detail(), "example 4"));
    d.y[4] = 0;
    ohm_model_spec_t bad = s;
    bad.n_out = 1;
    cr_assert_eq(ohm_hvp_new(&bad, &d.b, &h), OHM_EINVAL);
    cr_assert_eq(ohm_hvp_new(&s, &d.b, &h), OHM_OK);
    size_t P = ohm_hvp_nparams(h);
    double *w = ohm_test_rand_vec(P, 1.0, 1);
    w[2] = NAN;
    cr_assert_eq(ohm_hvp_set_params(h, w), OHM_ENONFINITE);
    cr_assert_eq(ohm_hvp_params(h)[2], 0.0); /* unchanged */
    free(w);
    ohm_hvp_destroy(&h);
    ohm_hvp_destroy(&h); /* NULL-safe */
    ohm_test_data_free(&d);
}
