/* ohm_lsq: least-squares experiment for the analog optimizers (see ohm_lsq.h). */
#include "ohm_lsq.h"

#include "ohm_analog_tile.h"
#include "ohm_error.h"
#include "ohm_rng.h"
#include "ohm_tile.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ohm_lsq {
    int n, d;
    float *x;     /* n x d */
    float *y;     /* n */
    double *xd;   /* n x d, double copy for the exact computations */
    double *h;    /* d x d Hessian X^T X / N */
    double *wopt; /* d */
};

/* Solves h w = b by Cholesky (h symmetric positive definite); 0 on success. */
static int cholesky_solve(const double *h, const double *b, double *w, int d)
{
    double *l = calloc((size_t)d * d, sizeof(double));
    if (!l) return OHM_ENOMEM;
    for (int i = 0; i < d; i++)
        for (int j = 0; j <= i; j++) {
            double s = h[(size_t)i * d + j];
            for (int k = 0; k < j; k++)
                s -= l[(size_t)i * d + k] * l[(size_t)j * d + k];
            if (i == j) {
                if (!(s > 0)) {
                    free(l);
                    return ohm_error_set(OHM_EINVAL, "least squares: singular design");
                }
                l[(size_t)i * d + i] = sqrt(s);
            } else {
                l[(size_t)i * d + j] = s / l[(size_t)j * d + j];
            }
        }
    for (int i = 0; i < d; i++) { /* L z = b */
        double s = b[i];
        for (int k = 0; k < i; k++)
            s -= l[(size_t)i * d + k] * w[k];
        w[i] = s / l[(size_t)i * d + i];
    }
    for (int i = d - 1; i >= 0; i--) { /* L^T w = z */
        double s = w[i];
        for (int k = i + 1; k < d; k++)
            s -= l[(size_t)k * d + i] * w[k];
        w[i] = s / l[(size_t)i * d + i];
    }
    free(l);
    return OHM_OK;
}

int ohm_lsq_new(int rows, int dim, double teacher_std, double noise, uint64_t seed, ohm_lsq_t **out)
{
    *out = NULL;
    if (dim < 1 || rows < dim)
        return ohm_error_set(OHM_EINVAL, "least squares: %d rows for %d features", rows, dim);
    ohm_lsq_t *q = calloc(1, sizeof *q);
    if (!q) return ohm_error_set(OHM_ENOMEM, "least squares");
    q->n = rows;
    q->d = dim;
    q->x = malloc(sizeof(float) * (size_t)rows * dim);
    q->y = malloc(sizeof(float) * (size_t)rows);
    q->xd = malloc(sizeof(double) * (size_t)rows * dim);
    q->h = calloc((size_t)dim * dim, sizeof(double));
    q->wopt = calloc((size_t)dim, sizeof(double));
    double *b = calloc((size_t)dim, sizeof(double)), *wt = malloc(sizeof(double) * (size_t)dim);
    int rc = OHM_OK;
    if (!q->x || !q->y || !q->xd || !q->h || !q->wopt || !b || !wt) {
        rc = ohm_error_set(OHM_ENOMEM, "least squares");
        goto done;
    }
    ohm_rng_t r;
    ohm_rng_seed(&r, seed, 0, OHM_STREAM_DATA);
    for (int j = 0; j < dim; j++)
        wt[j] = teacher_std * ohm_rng_normal(&r);
    for (int i = 0; i < rows; i++) {
        double t = 0;
        for (int j = 0; j < dim; j++) {
            /* Stored as float (what the tile sees), exact maths on the same values. */
            float v = (float)ohm_rng_normal(&r);
            q->x[(size_t)i * dim + j] = v;
            q->xd[(size_t)i * dim + j] = v;
            t += v * wt[j];
        }
        q->y[i] = (float)(t + noise * ohm_rng_normal(&r));
    }
    for (int i = 0; i < rows; i++) {
        const double *xi = q->xd + (size_t)i * dim;
        for (int j = 0; j < dim; j++) {
            b[j] += xi[j] * q->y[i] / rows;
            for (int k = 0; k < dim; k++)
                q->h[(size_t)j * dim + k] += xi[j] * xi[k] / rows;
        }
    }
    rc = cholesky_solve(q->h, b, q->wopt, dim);
done:
    free(b);
    free(wt);
    if (rc) ohm_lsq_destroy(&q);
    *out = q;
    return rc;
}

void ohm_lsq_destroy(ohm_lsq_t **q)
{
    if (!q || !*q) return;
    free((*q)->x);
    free((*q)->y);
    free((*q)->xd);
    free((*q)->h);
    free((*q)->wopt);
    free(*q);
    *q = NULL;
}

int ohm_lsq_dim(const ohm_lsq_t *q)
{
    return q->d;
}

const double *ohm_lsq_optimum(const ohm_lsq_t *q)
{
    return q->wopt;
}

/* f(w) - f* = 1/2 (w - w_opt)^T H (w - w_opt) exactly for a quadratic; this form
 * does not lose the small differences that subtracting two losses would. */
static double error_d(const ohm_lsq_t *q, const double *w)
{
    int d = q->d;
    double e = 0;
    for (int j = 0; j < d; j++) {
        double s = 0;
        for (int k = 0; k < d; k++)
            s += q->h[(size_t)j * d + k] * (w[k] - q->wopt[k]);
        e += (w[j] - q->wopt[j]) * s;
    }
    return 0.5 * e;
}

double ohm_lsq_error(const ohm_lsq_t *q, const float *w)
{
    double *p = malloc(sizeof(double) * (size_t)(q->d > 0 ? q->d : 1));
    if (!p) return NAN;
    for (int j = 0; j < q->d; j++)
        p[j] = w[j];
    double e = error_d(q, p);
    free(p);
    return e;
}

int ohm_lsq_predict_floor(const ohm_lsq_t *q, const ohm_device_model_t *m, double *w_out,
                          double *err)
{
    int n = q->n, d = q->d;
    double *w = calloc((size_t)d, sizeof(double)), *eg = malloc(sizeof(double) * (size_t)d),
           *ea = malloc(sizeof(double) * (size_t)d);
    if (!w || !eg || !ea) {
        free(w);
        free(eg);
        free(ea);
        return ohm_error_set(OHM_ENOMEM, "least squares prediction");
    }
    ohm_device_t dev = ohm_device_nominal(m);
    /* Step: below 1/L for L the largest curvature (H's trace bounds its top
     * eigenvalue) times the largest response, so the damped iteration contracts. */
    double tr = 0;
    for (int j = 0; j < d; j++)
        tr += q->h[(size_t)j * d + j];
    double qmax = fmax(ohm_device_F(m, &dev, -m->tau), ohm_device_F(m, &dev, m->tau)) +
                  fabs(ohm_device_G(m, &dev, m->tau)) + 1.0;
    double eta = 1.0 / (tr * qmax);
    int rc = ohm_error_set(OHM_ERANGE, "least squares prediction did not converge");
    for (long it = 0; it < 2000000; it++) {
        memset(eg, 0, sizeof(double) * (size_t)d);
        memset(ea, 0, sizeof(double) * (size_t)d);
        for (int i = 0; i < n; i++) {
            const double *xi = q->xd + (size_t)i * d;
            double r = -(double)q->y[i];
            for (int j = 0; j < d; j++)
                r += xi[j] * w[j];
            for (int j = 0; j < d; j++) {
                double g = xi[j] * r / n;
                eg[j] += g;
                ea[j] += fabs(g);
            }
        }
        double hmax = 0;
        for (int j = 0; j < d; j++) {
            double h = eg[j] * ohm_device_F(m, &dev, w[j]) + ea[j] * ohm_device_G(m, &dev, w[j]);
            hmax = fmax(hmax, fabs(h));
            w[j] -= eta * h;
        }
        if (hmax < 1e-13) {
            rc = OHM_OK;
            break;
        }
    }
    if (rc == OHM_OK) {
        ohm_error_clear();
        *err = error_d(q, w);
        if (w_out) memcpy(w_out, w, sizeof(double) * (size_t)d);
    }
    free(w);
    free(eg);
    free(ea);
    return rc;
}

int ohm_lsq_run(const ohm_lsq_t *q, const ohm_analog_params_t *p, const ohm_lsq_run_t *r,
                ohm_lsq_result_t *res)
{
    int d = q->d, b = r->batch;
    int rc = ohm_analog_params_check(p);
    if (rc) return rc;
    if (b < 1 || r->iters < 0)
        return ohm_error_set(OHM_EINVAL, "least squares run: batch %d, %ld iterations", b,
                             r->iters);
    ohm_analog_ctx_t ctx = {.params = *p, .seed = r->seed, .peer = 0};
    ohm_tile_t *t = ohm_analog_tile_factory(&ctx, 0, 1, d);
    float *xb = malloc(sizeof(float) * (size_t)b * d), *yb = malloc(sizeof(float) * (size_t)b),
          *db = malloc(sizeof(float) * (size_t)b), *w = calloc((size_t)d, sizeof(float));
    double *avg = calloc((size_t)d, sizeof(double));
    if (!t || !xb || !yb || !db || !w || !avg) {
        rc = ohm_error_set(OHM_ENOMEM, "least squares run");
        goto done;
    }
    ohm_tile_set_weights(t, w, OHM_WB_EXACT);
    ohm_rng_t rng;
    ohm_rng_seed(&rng, r->seed, 0, OHM_STREAM_BATCH);
    long half = r->iters / 2, navg = 0, nrec = 0;
    double rec_sum = 0;
    for (long k = 0; k < r->iters; k++) {
        for (int e = 0; e < b; e++) {
            uint32_t i = ohm_rng_below(&rng, (uint32_t)q->n);
            memcpy(xb + (size_t)e * d, q->x + (size_t)i * d, sizeof(float) * (size_t)d);
            yb[e] = q->y[i];
        }
        ohm_tile_forward(t, xb, db, b);
        for (int e = 0; e < b; e++)
            db[e] = (db[e] - yb[e]) / (float)b;
        double lr = r->lr_decay > 0 ? r->lr / (1.0 + (double)k / r->lr_decay) : r->lr;
        ohm_tile_update(t, xb, db, b, (float)lr);
        if (k >= half) {
            ohm_tile_get_weights(t, w);
            for (int j = 0; j < d; j++)
                avg[j] += w[j];
            navg++;
        }
        if (r->every > 0 && (k + 1) % r->every == 0) {
            ohm_tile_get_weights(t, w);
            double e = ohm_lsq_error(q, w);
            if (r->record) r->record(r->ctx, k + 1, e);
            if (k >= half) {
                rec_sum += e;
                nrec++;
            }
        }
    }
    ohm_tile_get_weights(t, w);
    res->last_err = ohm_lsq_error(q, w);
    if (navg > 0)
        for (int j = 0; j < d; j++)
            avg[j] /= (double)navg;
    res->avg_err = navg > 0 ? error_d(q, avg) : res->last_err;
    res->mean_err = nrec > 0 ? rec_sum / (double)nrec : NAN;
done:
    ohm_tile_destroy(&t);
    free(xb);
    free(yb);
    free(db);
    free(w);
    free(avg);
    return rc;
}
