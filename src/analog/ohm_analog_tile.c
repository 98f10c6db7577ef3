/* ohm_analog_tile: simulated analog crossbar tile (docs/analog.md).
 *
 * Update modes of the gradient array (W for analog-sgd, A, P for the others),
 * with dW = -lr d^T x the requested change:
 *  - expected: W' = U_q(W, scale dW) = W + dW F(W) - |dW| G(W) (the model of
 *    Wu et al.), one Euler step per update. With `granular`, dW is first
 *    rounded to n whole pulses of the nominal dw_min by stochastic rounding
 *    (n = floor(v) + [u < frac(v)], v = dW/dw_min: unbiased, E n = v), and the n
 *    pulses go through ohm_device_pulses (closed form for ideal/softbounds,
 *    count at the current response for pow/exp), with cycle-to-cycle noise.
 *    Without `granular` the expected mode is noise-free: it is the mean.
 *  - stochastic: per example, the crossbar's rank-one update by pulse trains of
 *    BL slots: column j fires in a slot with probability px_j = B |x_j|, row i
 *    with pd_i = A |d_i| (both clipped to 1). A = B = sqrt(lr/(dw_min BL));
 *    with update management (aihwkit's default) B = A0 k, A = A0/k with
 *    k = sqrt(max|d|/max|x|), which keeps the product A B = lr/(dw_min BL) and so
 *    the mean, but balances the two probabilities so fewer of them clip at 1.
 *    Each coincidence is one pulse of sign -sign(x_j d_i); the expected count is
 *    BL px_j pd_i = lr |x_j d_i|/dw_min. Trains are bits of a uint32 and a cell's
 *    count is popcount(row & col); the count is applied in closed form.
 * Transfers (tiki-taka, residual) and pulsed write-back program a whole matrix
 * or column from a digital value: in expected mode as an expected update (or
 * rounded, when granular); in stochastic mode as per-cell pulse counts by
 * stochastic rounding of value/dw_min (the periphery fires the rounded count),
 * not as pulse-train coincidences.
 * Cycle-to-cycle noise: each pulse is dw_min scale (1 + dw_min_std xi); n pulses
 * together are applied as a fractional count n + dw_min_std sqrt(n) xi (the sum
 * of n independent pulse sizes, exact in mean and variance). */
#include "ohm_analog_tile.h"

#include "ohm_dense.h"
#include "ohm_error.h"
#include "ohm_rng.h"
#include "ohm_tile_impl.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STATE_MAGIC 0x414d484fu /* "OHMA" little-endian */
#define STATE_VERSION 1u

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
    float *xin;   /* periphery input scratch */
    size_t xin_cap;
    float *vscale; /* per-vector input scale */
    size_t vscale_cap;
    uint32_t *rbits, *cbits; /* pulse trains */
    int8_t *rsign, *csign;
    int *nz;          /* columns whose train is not empty */
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

static int reserve(float **buf, size_t *cap, size_t need)
{
    if (*cap >= need) return 0;
    float *nb = realloc(*buf, need * sizeof(float));
    if (!nb) return -1;
    *buf = nb;
    *cap = need;
    return 0;
}

/* out[n x k_out] = in[n x k_in] M (trans = 0: M is the effective weights, rows x
 * cols, read with M^T; trans = 1: backward read with M) through the periphery. */
static void periphery_read(atile_t *a, const float *in, float *out, int n, int backward)
{
    int rows = a->base.rows, cols = a->base.cols;
    int k_in = backward ? rows : cols, k_out = backward ? cols : rows;
    if (a->ideal_reads || n == 0) {
        if (backward)
            ohm_dense_gemm(0, 0, n, cols, rows, 1.0f, in, a->eff, 0.0f, out);
        else
            ohm_dense_gemm(0, 1, n, rows, cols, 1.0f, in, a->eff, 0.0f, out);
        return;
    }
    if (reserve(&a->xin, &a->xin_cap, (size_t)n * k_in) ||
        reserve(&a->vscale, &a->vscale_cap, (size_t)n)) {
        /* Out of memory for scratch: an ideal read is better than none; the
         * tile interface has no error path for reads. */
        a->ideal_reads = 1;
        periphery_read(a, in, out, n, backward);
        a->ideal_reads = 0;
        return;
    }
    double lv = a->p.in_bits ? levels(a->p.in_bits) : 0;
    for (int e = 0; e < n; e++) {
        const float *v = in + (size_t)e * k_in;
        float *q = a->xin + (size_t)e * k_in;
        double m = 0;
        for (int j = 0; j < k_in; j++)
            m = fmax(m, fabs((double)v[j]));
        a->vscale[e] = (float)m;
        for (int j = 0; j < k_in; j++) {
            double u = m > 0 ? v[j] / m : 0.0;      /* noise management: input in [-1, 1] */
            if (lv > 0) u = nearbyint(u * lv) / lv; /* DAC */
            q[j] = (float)u;
        }
    }
    if (backward)
        ohm_dense_gemm(0, 0, n, cols, rows, 1.0f, a->xin, a->eff, 0.0f, out);
    else
        ohm_dense_gemm(0, 1, n, rows, cols, 1.0f, a->xin, a->eff, 0.0f, out);
    for (int e = 0; e < n; e++)
        out_periphery(a, out + (size_t)e * k_out, (size_t)k_out, a->vscale[e]);
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

/* A pulse count with cycle-to-cycle noise: |n| + sigma sqrt|n| xi, never below 0. */
static inline double noisy_count(atile_t *a, double n)
{
    double s = a->p.dev.dw_min_std;
    if (s <= 0 || n == 0) return n;
    double m = fabs(n), k = fmax(0.0, m + s * sqrt(m) * ohm_rng_normal(&a->rng_pulse));
    return n > 0 ? k : -k;
}

/* Whole pulses for a requested change dw (nominal units): stochastic rounding. */
static inline double round_pulses(atile_t *a, double dw)
{
    double v = dw / a->p.dev.dw_min, f = floor(v);
    return f + (ohm_rng_uniform(&a->rng_pulse) < v - f ? 1.0 : 0.0);
}

/* Is a programming step made of whole pulses (granular or stochastic mode)? */
static inline int discrete(const atile_t *a)
{
    return a->p.granular || a->p.update == OHM_UPDATE_STOCHASTIC;
}

/* Moves cell i of array r by the requested change dw. */
static inline void program_cell(atile_t *a, arr_t *r, size_t i, double dw)
{
    if (dw == 0) return;
    if (discrete(a)) {
        double n = round_pulses(a, dw);
        if (n != 0)
            r->w[i] = (float)ohm_device_pulses(&a->p.dev, &r->dev[i], r->w[i], noisy_count(a, n));
    } else {
        r->w[i] = (float)ohm_device_step(&a->p.dev, &r->dev[i], r->w[i], dw);
    }
}

/* Moves every cell of array r by dw[rows x cols]. */
static void program_all(atile_t *a, arr_t *r, const float *dw)
{
    if (!discrete(a)) {
        ohm_device_step_array(&a->p.dev, r->dev, r->w, dw, a->rc);
        return;
    }
    for (size_t i = 0; i < a->rc; i++)
        program_cell(a, r, i, dw[i]);
}

/* ---- stochastic pulse trains ------------------------------------------------ */

/* BL Bernoulli(p) slots as bits; 32-bit thresholds, two slots per 64-bit draw. */
static inline uint32_t train(ohm_rng_t *r, double p, int bl)
{
    uint32_t full = bl == 32 ? 0xffffffffu : ((1u << bl) - 1u);
    if (p <= 0) return 0;
    if (p >= 1) return full;
    uint64_t th = (uint64_t)(p * 4294967296.0);
    uint32_t b = 0;
    for (int s = 0; s < bl; s += 2) {
        uint64_t u = ohm_rng_next(r);
        if ((u & 0xffffffffu) < th) b |= 1u << s;
        if (s + 1 < bl && (u >> 32) < th) b |= 1u << (s + 1);
    }
    return b;
}

/* The popcount instruction where the CPU has it (one instruction instead of a
 * libgcc call per cell); resolved once at load time, portable elsewhere. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define OHM_POPCNT_CLONES __attribute__((target_clones("popcnt", "default")))
#else
#define OHM_POPCNT_CLONES
#endif

/* Per-example rank-one pulsed updates of array r by -lr d^T x. */
OHM_POPCNT_CLONES static void stochastic_update(atile_t *a, arr_t *r, const float *x,
                                                const float *d, int n, double lr)
{
    int rows = a->base.rows, cols = a->base.cols, bl = a->p.bl;
    double a0 = sqrt(lr / (a->p.dev.dw_min * bl));
    for (int e = 0; e < n; e++) {
        const float *xe = x + (size_t)e * cols, *de = d + (size_t)e * rows;
        double bx = a0, bd = a0;
        if (a->p.update_management) {
            double xm = 0, dm = 0;
            for (int j = 0; j < cols; j++)
                xm = fmax(xm, fabs((double)xe[j]));
            for (int i = 0; i < rows; i++)
                dm = fmax(dm, fabs((double)de[i]));
            if (xm == 0 || dm == 0) continue;
            double k = sqrt(dm / xm);
            bx = a0 * k;
            bd = a0 / k;
        }
        int nnz = 0;
        for (int j = 0; j < cols; j++) {
            a->cbits[j] = train(&a->rng_pulse, bx * fabs((double)xe[j]), bl);
            a->csign[j] = xe[j] >= 0 ? 1 : -1;
            if (a->cbits[j]) a->nz[nnz++] = j;
        }
        for (int i = 0; i < rows; i++) {
            a->rbits[i] = train(&a->rng_pulse, bd * fabs((double)de[i]), bl);
            a->rsign[i] = de[i] >= 0 ? 1 : -1;
        }
        if (a->naive) {
            /* Reference: every cell, every slot, one pulse at a time. */
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++) {
                    size_t idx = (size_t)i * cols + j;
                    double w = r->w[idx], sgn = -(double)(a->rsign[i] * a->csign[j]);
                    for (int s = 0; s < bl; s++)
                        if ((a->rbits[i] >> s) & (a->cbits[j] >> s) & 1u)
                            w = ohm_device_pulses(&a->p.dev, &r->dev[idx], w, noisy_count(a, sgn));
                    r->w[idx] = (float)w;
                }
            continue;
        }
        for (int i = 0; i < rows; i++) {
            uint32_t rb = a->rbits[i];
            if (!rb) continue;
            float *wr = r->w + (size_t)i * cols;
            const ohm_device_t *dr = r->dev + (size_t)i * cols;
            for (int q = 0; q < nnz; q++) {
                int j = a->nz[q];
                int k = __builtin_popcount(rb & a->cbits[j]);
                if (!k) continue;
                double cnt = a->rsign[i] == a->csign[j] ? -(double)k : (double)k;
                wr[j] = (float)ohm_device_pulses(&a->p.dev, &dr[j], wr[j], noisy_count(a, cnt));
            }
        }
    }
}

/* ---- optimizers ------------------------------------------------------------- */

/* Tiki-taka transfer: columns of A read by unit-vector forward passes (exact
 * DAC, output periphery) and pulsed into C with rate beta. */
static void transfer_tt(atile_t *a)
{
    int rows = a->base.rows, cols = a->base.cols;
    int ncol = a->p.transfer_columns < cols ? a->p.transfer_columns : cols;
    arr_t *C = &a->ar[0], *A = &a->ar[1];
    for (int k = 0; k < ncol; k++) {
        uint32_t j = a->tcol;
        for (int i = 0; i < rows; i++) {
            size_t idx = (size_t)i * cols + j;
            a->col[i] = A->w[idx] - A->ref[idx];
        }
        if (!a->ideal_reads) out_periphery(a, a->col, (size_t)rows, 1.0);
        for (int i = 0; i < rows; i++)
            program_cell(a, C, (size_t)i * cols + j, a->p.beta * a->col[i]);
        a->tcol = (j + 1) % (uint32_t)cols;
    }
}

/* Residual learning's W step: W <- U_q(W, beta P) with P read column by column
 * through the output periphery, or the buffered limited-granularity variant. */
static void transfer_residual(atile_t *a)
{
    arr_t *W = &a->ar[0], *P = &a->ar[1];
    for (size_t i = 0; i < a->rc; i++)
        a->delta[i] = P->w[i] - P->ref[i];
    if (!a->ideal_reads) out_periphery(a, a->delta, a->rc, 1.0);
    double beta = a->p.beta;
    if (a->p.buffered) {
        /* H <- (1-beta) H + beta P; where |H| >= dw_min fire floor(|H|/dw_min)
         * pulses of the sign of H and take them off H (usually one, since
         * beta P is small; taking all keeps |H| < dw_min after the step). */
        double dwm = a->p.dev.dw_min;
        for (size_t i = 0; i < a->rc; i++) {
            double h = (1 - beta) * a->h[i] + beta * a->delta[i];
            double n = trunc(h / dwm);
            if (n != 0) {
                W->w[i] =
                    (float)ohm_device_pulses(&a->p.dev, &W->dev[i], W->w[i], noisy_count(a, n));
                h -= n * dwm;
            }
            a->h[i] = (float)h;
        }
        return;
    }
    for (size_t i = 0; i < a->rc; i++)
        a->delta[i] = (float)(beta * a->delta[i]);
    program_all(a, W, a->delta);
}

static void at_update(ohm_tile_t *t, const float *x, const float *d, int n, float lr)
{
    atile_t *a = (atile_t *)t;
    arr_t *g = &a->ar[a->nar - 1]; /* the array receiving the gradient */
    a->updates++;
    if (n > 0 && lr > 0) {
        if (a->p.update == OHM_UPDATE_STOCHASTIC) {
            stochastic_update(a, g, x, d, n, lr);
        } else {
            ohm_dense_gemm(1, 0, t->rows, t->cols, n, -lr, d, x, 0.0f, a->delta);
            program_all(a, g, a->delta);
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
        if (mode == OHM_WB_EXACT) m->w[i] = (float)clipd(target, m->dev[i].tau);
    }
    if (mode == OHM_WB_PULSED) program_all(a, m, a->delta);
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
    free(a->rbits);
    free(a->cbits);
    free(a->rsign);
    free(a->csign);
    free(a->nz);
    free(a);
}

/* One ops table per optimizer so that ohm_tile_kind names it; they share the functions. */
#define ANALOG_OPS(name)                                                                           \
    {                                                                                              \
        .kind = name, .forward = at_forward, .backward = at_backward, .update = at_update,         \
        .get_weights = at_get, .set_weights = at_set, .state_size = at_size,                       \
        .state_save = at_save, .state_load = at_load, .destroy = at_destroy                        \
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
    a->rbits = malloc((size_t)rows * sizeof(uint32_t));
    a->cbits = malloc((size_t)cols * sizeof(uint32_t));
    a->rsign = malloc((size_t)rows);
    a->csign = malloc((size_t)cols);
    a->nz = malloc((size_t)cols * sizeof(int));
    ok &= a->eff && (p->opt != OHM_OPT_RESIDUAL || a->h) && a->delta && a->col && a->rbits &&
          a->cbits && a->rsign && a->csign && a->nz;
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

void ohm_analog_tile_set_naive(ohm_tile_t *t, int on)
{
    assert(ohm_analog_tile_is(t));
    ((atile_t *)t)->naive = on;
}
