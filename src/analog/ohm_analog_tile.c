/* ohm_analog_tile: simulated analog crossbar tile (docs/analog.md).
 *
 * Update modes of the gradient array (W for analog-sgd, A, P for the others),
 * with dW = -lr d^T x the requested change:
 *  - expected: W' = U_q(W, scale dW) = W + dW F(W) - |dW| G(W) (the model of
 *    Wu et al.), one Euler step per update: the mean of the pulsed update to
 *    first order, noise-free. With `granular`, dW is first rounded to n whole
 *    pulses of the nominal dw_min by stochastic rounding (n = floor(v) +
 *    [u < frac(v)], v = dW/dw_min: unbiased, E n = v), and the n pulses are
 *    applied as an exact burst (ohm_burst.h), with cycle-to-cycle noise.
 *  - stochastic: per example, the crossbar's rank-one update by pulse trains
 *    (ohm_pulse.h: update management, coincidences, exact bursts per cell).
 * Transfers (tiki-taka, residual) and pulsed write-back program a whole matrix
 * or column from a digital value: in expected mode as an expected update (or
 * rounded, when granular); in stochastic mode as per-cell pulse counts by
 * stochastic rounding of value/dw_min (the periphery fires the rounded count),
 * not as pulse-train coincidences; either way each cell's count is one exact burst.
 * Random numbers of updates, transfers and write-back come in bulk (ohm_bulk.h)
 * from a generator seeded per operation from the tile's pulse stream. */
#include "ohm_analog_tile.h"

#include "ohm_bulk.h"
#include "ohm_burst.h"
#include "ohm_dense.h"
#include "ohm_error.h"
#include "ohm_pulse.h"
#include "ohm_rng.h"
#include "ohm_tile_impl.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STATE_MAGIC 0x414d484fu /* "OHMA" little-endian */
#define STATE_VERSION 1u

/* Vectors read per pass of the periphery: its scratch is sized once, at creation. */
#define READ_CHUNK 64
/* Cells programmed per draw of uniforms and normals. */
#define PROG_CHUNK 1024

typedef struct {
    float *w;          /* device states, rows x cols */
    ohm_device_t *dev; /* per-device parameters */
    float *ref;        /* fast arrays: each device's symmetric point (value = w - ref); else NULL */
} arr_t;

typedef struct {
    ohm_tile_t base;
    ohm_analog_params_t p;
    size_t rc;    /* rows * cols */
    int nar;      /* 1 (analog-sgd) or 2 (main + fast) */
    arr_t ar[2];  /* [0] main (W or C), [1] fast (A or P) */
    float *h;     /* residual: digital buffer H (zero unless buffered) */
    float *eff;   /* effective weights: ar[0].w itself for analog-sgd */
    float *delta; /* rows x cols scratch */
    float *col;   /* max(rows, cols) scratch */
    float *xin;    /* periphery input scratch, READ_CHUNK x max(rows, cols) */
    float *vscale; /* per-vector input scale, READ_CHUNK */
    uint32_t *uni; /* PROG_CHUNK uniforms for stochastic rounding */
    float *nrm;    /* PROG_CHUNK normals for cycle-to-cycle noise */
    ohm_pulser_t *pulser; /* stochastic mode: trains and coincidences */
    ohm_bulk_t bulk;      /* bulk random numbers of the operation under way */
    ohm_analog_counters_t cnt;
    uint64_t updates; /* update calls so far */
    uint32_t tcol;    /* next column tiki-taka transfers */
    int naive;        /* stochastic mode: per-pulse reference loop */
    int ideal_reads;  /* every periphery option is off */
    ohm_rng_t rng_pulse, rng_read;
} atile_t;

static inline double clipd(double w, double tau)
{
    return w > tau ? tau : (w < -tau ? -tau : w);
}

/* ---- effective weights --------------------------------------------------- */

/* eff = main + gamma (fast - ref), recomputed after every change of the arrays. */
static void refresh_eff(atile_t *a)
{
    if (a->nar == 1) return; /* eff aliases W */
    const float *m = a->ar[0].w, *f = a->ar[1].w, *ref = a->ar[1].ref;
    float g = (float)a->p.gamma;
    for (size_t i = 0; i < a->rc; i++)
        a->eff[i] = m[i] + g * (f[i] - ref[i]);
}

/* ---- read periphery -------------------------------------------------------- */

/* Quantisation levels on each side of zero for b bits: 2^(b-1) - 1 (7 bits: 63),
 * a symmetric mid-tread converter as aihwkit's inp_res / out_res = 1/(2^b - 2) of the range. */
static inline double levels(int bits)
{
    return ldexp(1.0, bits - 1) - 1.0;
}

/* Two independent N(0, 1) by Marsaglia's polar method: one log and one sqrt
 * per pair and no trigonometry, so read noise on every output of a large read
 * costs a fraction of one Box-Muller draw per value. */
static inline void normal_pair(ohm_rng_t *r, double *z0, double *z1)
{
    double u, v, s;
    do {
        u = 2 * ohm_rng_uniform(r) - 1;
        v = 2 * ohm_rng_uniform(r) - 1;
        s = u * u + v * v;
    } while (s >= 1 || s == 0);
    double f = sqrt(-2 * log(s) / s);
    *z0 = u * f;
    *z1 = v * f;
}

/* Output side of a read of `n` values that came from an input scaled by s:
 * noise, bound, ADC (all in normalised units), then scaled back by s. */
static void out_periphery(atile_t *a, float *y, size_t n, double s)
{
    const ohm_analog_params_t *p = &a->p;
    double bound = p->out_bound, step = p->out_bits ? bound / levels(p->out_bits) : 0;
    double z[2] = {0, 0};
    for (size_t i = 0; i < n; i++) {
        double v = y[i];
        if (p->out_noise > 0) {
            if ((i & 1) == 0) normal_pair(&a->rng_read, &z[0], &z[1]);
            v += p->out_noise * z[i & 1];
        }
        if (bound > 0) v = clipd(v, bound);
        if (step > 0) v = nearbyint(v / step) * step;
        y[i] = (float)(v * s);
    }
}

/* out[n x k_out] = in[n x k_in] M (trans = 0: M is the effective weights, rows x
 * cols, read with M^T; trans = 1: backward read with M) through the periphery.
 * Non-ideal reads go READ_CHUNK vectors at a time through scratch allocated
 * with the tile, so a read cannot fail. */
static void periphery_read(atile_t *a, const float *in, float *out, int n, int backward)
{
    int rows = a->base.rows, cols = a->base.cols;
    int k_in = backward ? rows : cols, k_out = backward ? cols : rows;
    if (backward)
        a->cnt.backward_mvms += (uint64_t)n;
    else
        a->cnt.forward_mvms += (uint64_t)n;
    a->cnt.dac += (uint64_t)n * (uint64_t)k_in;
    a->cnt.adc += (uint64_t)n * (uint64_t)k_out;
    if (a->ideal_reads || n == 0) {
        if (backward)
            ohm_dense_gemm(0, 0, n, cols, rows, 1.0f, in, a->eff, 0.0f, out);
        else
            ohm_dense_gemm(0, 1, n, rows, cols, 1.0f, in, a->eff, 0.0f, out);
        return;
    }
    double lv = a->p.in_bits ? levels(a->p.in_bits) : 0;
    for (int e0 = 0; e0 < n; e0 += READ_CHUNK) {
        int m = n - e0 < READ_CHUNK ? n - e0 : READ_CHUNK;
        for (int e = 0; e < m; e++) {
            const float *v = in + (size_t)(e0 + e) * k_in;
            float *q = a->xin + (size_t)e * k_in;
            double mx = 0;
            for (int j = 0; j < k_in; j++)
                mx = fmax(mx, fabs((double)v[j]));
            a->vscale[e] = (float)mx;
            for (int j = 0; j < k_in; j++) {
                double u = mx > 0 ? v[j] / mx : 0.0;    /* noise management: input in [-1, 1] */
                if (lv > 0) u = nearbyint(u * lv) / lv; /* DAC */
                q[j] = (float)u;
            }
        }
        float *o = out + (size_t)e0 * k_out;
        if (backward)
            ohm_dense_gemm(0, 0, m, cols, rows, 1.0f, a->xin, a->eff, 0.0f, o);
        else
            ohm_dense_gemm(0, 1, m, rows, cols, 1.0f, a->xin, a->eff, 0.0f, o);
        for (int e = 0; e < m; e++)
            out_periphery(a, o + (size_t)e * k_out, (size_t)k_out, a->vscale[e]);
    }
}

static void at_forward(ohm_tile_t *t, const float *x, float *y, int n)
{
    periphery_read((atile_t *)t, x, y, n, 0);
}

static void at_backward(ohm_tile_t *t, const float *d, float *z, int n)
{
    periphery_read((atile_t *)t, d, z, n, 1);
}

/* ---- programming cells ------------------------------------------------------ */

/* Is a programming step made of whole pulses (granular or stochastic mode)? */
static inline int discrete(const atile_t *a)
{
    return a->p.granular || a->p.update == OHM_UPDATE_STOCHASTIC;
}

/* Moves n cells of array r, cell `start + t stride` by the requested change dw[t].
 * Discrete modes: stochastic rounding to whole pulses, one exact burst per cell
 * with cycle-to-cycle noise; else the expected step. Pulses go to the update or
 * the programming counters (`programming`: transfers and write-back). */
static void program(atile_t *a, arr_t *r, size_t start, size_t stride, size_t n, const float *dw,
                    int programming)
{
    if (programming)
        for (size_t t = 0; t < n; t++)
            a->cnt.cells_programmed += dw[t] != 0;
    if (!discrete(a)) {
        if (stride == 1) {
            ohm_device_step_array(&a->p.dev, r->dev + start, r->w + start, dw, n);
            return;
        }
        for (size_t t = 0; t < n; t++) {
            size_t i = start + t * stride;
            if (dw[t] != 0) r->w[i] = (float)ohm_device_step(&a->p.dev, &r->dev[i], r->w[i], dw[t]);
        }
        return;
    }
    ohm_burst_t b;
    ohm_burst_init(&b, &a->p.dev);
    double inv = 1.0 / a->p.dev.dw_min;
    uint64_t pulses = 0, longest = 0; /* the operation lasts as long as its longest burst */
    for (size_t t0 = 0; t0 < n; t0 += PROG_CHUNK) {
        size_t m = n - t0 < PROG_CHUNK ? n - t0 : PROG_CHUNK;
        ohm_bulk_u32(&a->bulk, a->uni, PROG_CHUNK);
        if (b.c2c > 0) ohm_bulk_normal(&a->bulk, a->nrm, m);
        for (size_t t = 0; t < m; t++) {
            if (dw[t0 + t] == 0) continue;
            double v = dw[t0 + t] * inv, f = floor(v);
            long k = (long)f + ((double)a->uni[t] * 0x1.0p-32 < v - f ? 1 : 0);
            if (k == 0) continue;
            size_t i = start + (t0 + t) * stride;
            const ohm_device_t *d = &r->dev[i];
            long nk = k > 0 ? k : -k;
            double w0 = r->w[i], wk = ohm_burst(&b, b.response, w0, nk, k > 0 ? 1.0 : -1.0, d->tau,
                                                d->scale, d->a);
            if (b.c2c > 0) wk = ohm_burst_noisy(&b, w0, wk, nk, a->nrm[t], d->tau);
            r->w[i] = (float)wk;
            pulses += (uint64_t)nk;
            if ((uint64_t)nk > longest) longest = (uint64_t)nk;
        }
    }
    a->cnt.program_slots += longest;
    if (programming)
        a->cnt.program_pulses += pulses;
    else
        a->cnt.update_pulses += pulses;
}

/* ---- optimizers ------------------------------------------------------------- */

/* Tiki-taka transfer: columns of A read by unit-vector forward passes (exact
 * DAC, output periphery) and pulsed into C with rate beta. */
static void transfer_tt(atile_t *a)
{
    int rows = a->base.rows, cols = a->base.cols;
    int ncol = a->p.transfer_columns < cols ? a->p.transfer_columns : cols;
    arr_t *C = &a->ar[0], *A = &a->ar[1];
    a->cnt.transfer_mvms += (uint64_t)ncol;
    a->cnt.dac += (uint64_t)ncol * (uint64_t)cols;
    a->cnt.adc += (uint64_t)ncol * (uint64_t)rows;
    for (int k = 0; k < ncol; k++) {
        uint32_t j = a->tcol;
        for (int i = 0; i < rows; i++) {
            size_t idx = (size_t)i * cols + j;
            a->col[i] = A->w[idx] - A->ref[idx];
        }
        if (!a->ideal_reads) out_periphery(a, a->col, (size_t)rows, 1.0);
        for (int i = 0; i < rows; i++)
            a->col[i] = (float)(a->p.beta * a->col[i]);
        program(a, C, j, (size_t)cols, (size_t)rows, a->col, 1);
        a->tcol = (j + 1) % (uint32_t)cols;
    }
}

/* Residual learning's W step: W <- U_q(W, beta P) with P read column by column
 * through the output periphery, or the buffered limited-granularity variant. */
static void transfer_residual(atile_t *a)
{
    arr_t *W = &a->ar[0], *P = &a->ar[1];
    int rows = a->base.rows, cols = a->base.cols;
    a->cnt.transfer_mvms += (uint64_t)cols;
    a->cnt.dac += (uint64_t)cols * (uint64_t)cols;
    a->cnt.adc += (uint64_t)cols * (uint64_t)rows;
    for (size_t i = 0; i < a->rc; i++)
        a->delta[i] = P->w[i] - P->ref[i];
    if (!a->ideal_reads) out_periphery(a, a->delta, a->rc, 1.0);
    double beta = a->p.beta;
    if (a->p.buffered) {
        /* H <- (1-beta) H + beta P; where |H| >= dw_min fire trunc(H/dw_min)
         * pulses of the sign of H and take them off H (usually one, since
         * beta P is small; taking all keeps |H| < dw_min after the step). */
        ohm_burst_t b;
        ohm_burst_init(&b, &a->p.dev);
        double dwm = a->p.dev.dw_min;
        uint64_t longest = 0;
        for (size_t i0 = 0; i0 < a->rc; i0 += PROG_CHUNK) {
            size_t m = a->rc - i0 < PROG_CHUNK ? a->rc - i0 : PROG_CHUNK;
            if (b.c2c > 0) ohm_bulk_normal(&a->bulk, a->nrm, m);
            for (size_t t = 0; t < m; t++) {
                size_t i = i0 + t;
                double h = (1 - beta) * a->h[i] + beta * a->delta[i];
                long n = (long)trunc(h / dwm);
                if (n != 0) {
                    const ohm_device_t *d = &W->dev[i];
                    long nk = n > 0 ? n : -n;
                    double w0 = W->w[i], wk = ohm_burst(&b, b.response, w0, nk, n > 0 ? 1.0 : -1.0,
                                                        d->tau, d->scale, d->a);
                    if (b.c2c > 0) wk = ohm_burst_noisy(&b, w0, wk, nk, a->nrm[t], d->tau);
                    W->w[i] = (float)wk;
                    h -= (double)n * dwm;
                    a->cnt.program_pulses += (uint64_t)nk;
                    a->cnt.cells_programmed++;
                    if ((uint64_t)nk > longest) longest = (uint64_t)nk;
                }
                a->h[i] = (float)h;
            }
        }
        a->cnt.program_slots += longest;
        return;
    }
    for (size_t i = 0; i < a->rc; i++)
        a->delta[i] = (float)(beta * a->delta[i]);
    program(a, W, 0, 1, a->rc, a->delta, 1);
}

static void at_update(ohm_tile_t *t, const float *x, const float *d, int n, float lr)
{
    atile_t *a = (atile_t *)t;
    arr_t *g = &a->ar[a->nar - 1]; /* the array receiving the gradient */
    a->updates++;
    ohm_bulk_seed(&a->bulk, &a->rng_pulse);
    if (n > 0 && lr > 0) {
        if (a->p.update == OHM_UPDATE_STOCHASTIC) {
            ohm_pulse_opts_t o = {.bl = a->p.bl,
                                  .um = a->p.update_management,
                                  .ublm = a->p.update_bl_management,
                                  .naive = a->naive};
            ohm_pulse_tally_t tl = {0};
            ohm_pulser_update(a->pulser, &o, &a->p.dev, g->w, g->dev, x, d, n, lr, &a->bulk, &tl);
            a->cnt.update_pulses += tl.pulses;
            a->cnt.train_slots += tl.slots;
            a->cnt.line_pulses += tl.line_pulses;
        } else {
            ohm_dense_gemm(1, 0, t->rows, t->cols, n, -lr, d, x, 0.0f, a->delta);
            program(a, g, 0, 1, a->rc, a->delta, 0);
        }
    }
    if (a->p.opt == OHM_OPT_TIKI_TAKA && a->updates % (uint64_t)a->p.transfer_every == 0)
        transfer_tt(a);
    else if (a->p.opt == OHM_OPT_RESIDUAL)
        transfer_residual(a);
    refresh_eff(a);
}

/* ---- weights in and out ----------------------------------------------------- */

static void at_get(const ohm_tile_t *t, float *w)
{
    const atile_t *a = (const atile_t *)t;
    memcpy(w, a->eff, sizeof(float) * a->rc);
}

static void at_set(ohm_tile_t *t, const float *w, int mode)
{
    atile_t *a = (atile_t *)t;
    arr_t *m = &a->ar[0];
    /* Target of the main array: effective = main + gamma fast, fast untouched. */
    for (size_t i = 0; i < a->rc; i++) {
        double target = w[i];
        if (a->nar == 2) target -= a->p.gamma * ((double)a->ar[1].w[i] - a->ar[1].ref[i]);
        a->delta[i] = (float)(target - m->w[i]);
        if (mode == OHM_WB_EXACT) {
            float v = (float)clipd(target, m->dev[i].tau);
            a->cnt.cells_programmed += v != m->w[i];
            m->w[i] = v;
        }
    }
    if (mode == OHM_WB_PULSED) {
        ohm_bulk_seed(&a->bulk, &a->rng_pulse);
        program(a, m, 0, 1, a->rc, a->delta, 1);
    }
    refresh_eff(a);
}

/* ---- state ---------------------------------------------------------------- */

typedef struct {
    uint32_t magic, version, kind, rows, cols, nar, flags, reserved;
    uint64_t updates;
    uint32_t tcol, reserved2;
    ohm_rng_t rng_pulse, rng_read;
} state_hdr_t;

static size_t at_size(const ohm_tile_t *t)
{
    const atile_t *a = (const atile_t *)t;
    size_t s = sizeof(state_hdr_t);
    for (int k = 0; k < a->nar; k++) {
        s += a->rc * (sizeof(float) + sizeof(ohm_device_t));
        if (a->ar[k].ref) s += a->rc * sizeof(float);
    }
    if (a->h) s += a->rc * sizeof(float);
    return s;
}

static void at_save(const ohm_tile_t *t, void *buf)
{
    const atile_t *a = (const atile_t *)t;
    state_hdr_t h = {.magic = STATE_MAGIC,
                     .version = STATE_VERSION,
                     .kind = (uint32_t)a->p.opt,
                     .rows = (uint32_t)t->rows,
                     .cols = (uint32_t)t->cols,
                     .nar = (uint32_t)a->nar,
                     .flags = a->h ? 1u : 0u,
                     .updates = a->updates,
                     .tcol = a->tcol,
                     .rng_pulse = a->rng_pulse,
                     .rng_read = a->rng_read};
    unsigned char *p = buf;
    memcpy(p, &h, sizeof h);
    p += sizeof h;
    for (int k = 0; k < a->nar; k++) {
        memcpy(p, a->ar[k].w, a->rc * sizeof(float));
        p += a->rc * sizeof(float);
        memcpy(p, a->ar[k].dev, a->rc * sizeof(ohm_device_t));
        p += a->rc * sizeof(ohm_device_t);
        if (a->ar[k].ref) {
            memcpy(p, a->ar[k].ref, a->rc * sizeof(float));
            p += a->rc * sizeof(float);
        }
    }
    if (a->h) memcpy(p, a->h, a->rc * sizeof(float));
}

/* Checks a saved array before anything is copied, so a bad state leaves the tile unchanged. */
static int check_saved_array(const unsigned char *p, size_t rc, int k)
{
    for (size_t i = 0; i < rc; i++) {
        float w;
        ohm_device_t d;
        memcpy(&w, p + i * sizeof(float), sizeof w);
        memcpy(&d, p + rc * sizeof(float) + i * sizeof d, sizeof d);
        if (!(d.tau > 0) || !isfinite(d.tau) || !(d.scale > 0) || !isfinite(d.scale) ||
            !(fabsf(d.a) < 1))
            return ohm_error_set(OHM_EFORMAT, "analog tile state: array %d device %zu invalid", k,
                                 i);
        if (!(fabsf(w) <= d.tau))
            return ohm_error_set(OHM_EFORMAT,
                                 "analog tile state: array %d state %zu outside its bounds", k, i);
    }
    return OHM_OK;
}

static int at_load(ohm_tile_t *t, const void *buf, size_t len)
{
    atile_t *a = (atile_t *)t;
    state_hdr_t h;
    if (len < sizeof h)
        return ohm_error_set(OHM_ETRUNC, "analog tile state: %zu bytes, header needs %zu", len,
                             sizeof h);
    memcpy(&h, buf, sizeof h);
    if (h.magic != STATE_MAGIC || h.version != STATE_VERSION)
        return ohm_error_set(OHM_EFORMAT, "analog tile state: bad magic or version %u",
                             (unsigned)h.version);
    if (h.kind != (uint32_t)a->p.opt || h.nar != (uint32_t)a->nar || h.flags != (a->h ? 1u : 0u))
        return ohm_error_set(OHM_EFORMAT, "analog tile state: saved by optimizer %u, tile is %s",
                             (unsigned)h.kind, t->ops->kind);
    if (h.rows != (uint32_t)t->rows || h.cols != (uint32_t)t->cols)
        return ohm_error_set(OHM_ESHAPE, "analog tile state: %ux%u, tile is %dx%d",
                             (unsigned)h.rows, (unsigned)h.cols, t->rows, t->cols);
    if (len != at_size(t))
        return ohm_error_set(OHM_ESHAPE, "analog tile state: %zu bytes, expected %zu", len,
                             at_size(t));
    if (h.tcol >= (uint32_t)t->cols)
        return ohm_error_set(OHM_EFORMAT, "analog tile state: transfer column %u of %d",
                             (unsigned)h.tcol, t->cols);
    const unsigned char *p = (const unsigned char *)buf + sizeof h;
    const unsigned char *q = p;
    for (int k = 0; k < a->nar; k++) {
        int rc = check_saved_array(q, a->rc, k);
        if (rc) return rc;
        q += a->rc * (sizeof(float) + sizeof(ohm_device_t)) +
             (a->ar[k].ref ? a->rc * sizeof(float) : 0);
    }
    for (int k = 0; k < a->nar; k++) {
        memcpy(a->ar[k].w, p, a->rc * sizeof(float));
        p += a->rc * sizeof(float);
        memcpy(a->ar[k].dev, p, a->rc * sizeof(ohm_device_t));
        p += a->rc * sizeof(ohm_device_t);
        if (a->ar[k].ref) {
            memcpy(a->ar[k].ref, p, a->rc * sizeof(float));
            p += a->rc * sizeof(float);
        }
    }
    if (a->h) memcpy(a->h, p, a->rc * sizeof(float));
    a->updates = h.updates;
    a->tcol = h.tcol;
    a->rng_pulse = h.rng_pulse;
    a->rng_read = h.rng_read;
    refresh_eff(a);
    return OHM_OK;
}

/* ---- life cycle ------------------------------------------------------------- */

static void at_destroy(ohm_tile_t *t)
{
    atile_t *a = (atile_t *)t;
    if (!a) return;
    for (int k = 0; k < 2; k++) {
        free(a->ar[k].w);
        free(a->ar[k].dev);
        free(a->ar[k].ref);
    }
    if (a->nar == 2) free(a->eff);
    free(a->h);
    free(a->delta);
    free(a->col);
    free(a->xin);
    free(a->vscale);
    free(a->uni);
    free(a->nrm);
    ohm_pulser_destroy(&a->pulser);
    free(a);
}

static void at_counters(const ohm_tile_t *t, ohm_tile_counters_t *c)
{
    *c = ((const atile_t *)t)->cnt;
}

/* One ops table per optimizer so that ohm_tile_kind names it; they share the functions. */
#define ANALOG_OPS(name)                                                                           \
    {                                                                                              \
        .kind = name, .forward = at_forward, .backward = at_backward, .update = at_update,         \
        .get_weights = at_get, .set_weights = at_set, .state_size = at_size,                       \
        .state_save = at_save, .state_load = at_load, .destroy = at_destroy,                       \
        .counters = at_counters                                                                    \
    }
static const ohm_tile_ops_t ops_sgd = ANALOG_OPS("analog-sgd");
static const ohm_tile_ops_t ops_tt = ANALOG_OPS("tiki-taka");
static const ohm_tile_ops_t ops_res = ANALOG_OPS("residual");

int ohm_analog_tile_is(const ohm_tile_t *t)
{
    return t && (t->ops == &ops_sgd || t->ops == &ops_tt || t->ops == &ops_res);
}

/* Mixes the layer into a stream purpose, above the purposes' own range. */
static uint64_t purpose(int base, int layer)
{
    return (uint64_t)base | ((uint64_t)(uint32_t)(layer + 1) << 32);
}

ohm_tile_t *ohm_analog_tile_new(const ohm_analog_params_t *p, int rows, int cols, uint64_t seed,
                                uint64_t peer, int layer)
{
    assert(p && rows > 0 && cols > 0);
    assert(ohm_analog_params_check(p) == OHM_OK);
    assert(p->opt == OHM_OPT_ANALOG_SGD || p->opt == OHM_OPT_TIKI_TAKA ||
           p->opt == OHM_OPT_RESIDUAL);
    atile_t *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->p = *p;
    a->base.ops = p->opt == OHM_OPT_TIKI_TAKA  ? &ops_tt
                  : p->opt == OHM_OPT_RESIDUAL ? &ops_res
                                               : &ops_sgd;
    a->base.rows = rows;
    a->base.cols = cols;
    a->rc = (size_t)rows * cols;
    a->nar = p->opt == OHM_OPT_ANALOG_SGD ? 1 : 2;
    a->ideal_reads = p->in_bits == 0 && p->out_bits == 0 && p->out_bound == 0 && p->out_noise == 0;
    int ok = 1;
    for (int k = 0; k < a->nar; k++) {
        a->ar[k].w = calloc(a->rc, sizeof(float));
        a->ar[k].dev = malloc(a->rc * sizeof(ohm_device_t));
        if (k == 1) a->ar[k].ref = calloc(a->rc, sizeof(float));
        ok &= a->ar[k].w && a->ar[k].dev && (k == 0 || a->ar[k].ref);
    }
    a->eff = a->nar == 2 ? calloc(a->rc, sizeof(float)) : a->ar[0].w;
    if (p->opt == OHM_OPT_RESIDUAL) a->h = calloc(a->rc, sizeof(float));
    a->delta = malloc(a->rc * sizeof(float));
    a->col = malloc((size_t)(rows > cols ? rows : cols) * sizeof(float));
    a->xin = malloc((size_t)READ_CHUNK * (size_t)(rows > cols ? rows : cols) * sizeof(float));
    a->vscale = malloc(READ_CHUNK * sizeof(float));
    a->uni = malloc(PROG_CHUNK * sizeof(uint32_t));
    a->nrm = malloc(PROG_CHUNK * sizeof(float));
    if (p->update == OHM_UPDATE_STOCHASTIC) a->pulser = ohm_pulser_new(rows, cols);
    ok &= a->eff && (p->opt != OHM_OPT_RESIDUAL || a->h) && a->delta && a->col && a->xin &&
          a->vscale && a->uni && a->nrm && (p->update != OHM_UPDATE_STOCHASTIC || a->pulser);
    if (!ok) {
        at_destroy(&a->base);
        return NULL;
    }
    ohm_rng_t r;
    ohm_rng_seed(&r, seed, peer, purpose(OHM_STREAM_DEVICE, layer));
    for (int k = 0; k < a->nar; k++)
        ohm_device_draw(&p->dev, &r, a->ar[k].dev, a->rc);
    if (a->nar == 2) {
        /* Zero-shift the fast array: its stored 0 is each device's symmetric point. */
        arr_t *f = &a->ar[1];
        for (size_t i = 0; i < a->rc; i++)
            f->w[i] = f->ref[i] = (float)ohm_device_symmetric_point(&p->dev, &f->dev[i]);
    }
    ohm_rng_seed(&a->rng_pulse, seed, peer, purpose(OHM_STREAM_PULSE, layer));
    ohm_rng_seed(&a->rng_read, seed, peer, purpose(OHM_STREAM_READ, layer));
    refresh_eff(a);
    return &a->base;
}

static const atile_t *cast(const ohm_tile_t *t)
{
    assert(ohm_analog_tile_is(t));
    return (const atile_t *)t;
}

const ohm_analog_params_t *ohm_analog_tile_params(const ohm_tile_t *t)
{
    return &cast(t)->p;
}

int ohm_analog_tile_read_array(const ohm_tile_t *t, int which, float *out)
{
    const atile_t *a = cast(t);
    if (which == OHM_ARRAY_BUFFER) {
        if (!a->h) return ohm_error_set(OHM_ENOTFOUND, "%s tile has no buffer H", t->ops->kind);
        memcpy(out, a->h, a->rc * sizeof(float));
        return OHM_OK;
    }
    if (which < 0 || which >= a->nar)
        return ohm_error_set(OHM_ENOTFOUND, "%s tile has no array %d", t->ops->kind, which);
    const arr_t *r = &a->ar[which];
    for (size_t i = 0; i < a->rc; i++)
        out[i] = r->ref ? r->w[i] - r->ref[i] : r->w[i];
    return OHM_OK;
}

const float *ohm_analog_tile_states(const ohm_tile_t *t, int which)
{
    const atile_t *a = cast(t);
    return which >= 0 && which < a->nar ? a->ar[which].w : NULL;
}

const ohm_device_t *ohm_analog_tile_devices(const ohm_tile_t *t, int which)
{
    const atile_t *a = cast(t);
    return which >= 0 && which < a->nar ? a->ar[which].dev : NULL;
}

const float *ohm_analog_tile_refs(const ohm_tile_t *t, int which)
{
    const atile_t *a = cast(t);
    return which >= 0 && which < a->nar ? a->ar[which].ref : NULL;
}

uint64_t ohm_analog_tile_updates(const ohm_tile_t *t)
{
    return cast(t)->updates;
}

ohm_analog_counters_t ohm_analog_tile_counters(const ohm_tile_t *t)
{
    return cast(t)->cnt;
}

void ohm_analog_tile_set_naive(ohm_tile_t *t, int on)
{
    assert(ohm_analog_tile_is(t));
    ((atile_t *)t)->naive = on;
}
