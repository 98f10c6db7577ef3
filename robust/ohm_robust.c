/* ohm_robust: robust decentralized aggregation rules (docs/robust.md, section "Rules").
 *
 * Conventions shared by every rule (the header gives the interface):
 * - Row 0 is the peer's own vector; it is trusted (never dropped by the
 *   selection rules) unless it is itself non-finite.
 * - A row holding any NaN or +-Inf is hostile. Distance-based rules (krum,
 *   multi-krum, faba, ios, cc, scc, geomed) give it distance +Inf and drop it
 *   before anything else; mean and weighted drop it and renormalize the
 *   remaining weights (a deliberate choice: they have no robustness, but a
 *   single NaN must not poison a whole network). Coordinate-wise rules
 *   (trimmed-mean, median) order NaN as +Inf per coordinate, so trimming
 *   removes it whenever at most b values of that coordinate are bad.
 *   Such rows are counted in st->nonfinite.
 * - Last line of defence: an output coordinate that would still be non-finite
 *   (only possible when more inputs are hostile than the rule tolerates, or when
 *   finite inputs overflow) takes the own value, or 0 if that is not finite.
 * - w may be NULL: rules that use weights then use 1/k each. Weights must be
 *   finite and >= 0 (else OHM_ROBUST_EARGS).
 * - Sums run in a fixed order, so the same inputs give bitwise the same output.
 *
 * Layout: this file holds the rules' logic (selection, weights, iterations
 * on a few numbers per row); the passes over the d coordinates are in
 * ohm_coordwise.c (sorting per coordinate: median, trimmed mean, geomed's
 * start) and ohm_passes.c (weighted sums and distances), with what they share
 * in ohm_kernel.h. Every rule streams through the k rows in blocks of
 * coordinates, so each pass reads the input once. */
#include "ohm_robust.h"

#include "ohm_coordwise.h"
#include "ohm_kernel.h"
#include "ohm_passes.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef GRAM_MAX
#define GRAM_MAX 16 /* geomed: most rows for the Gram-matrix iteration */
#endif

static const char *const rule_names[OHM_RULE_COUNT] = {
    "mean",       "weighted", "trimmed-mean", "median", "geomed", "krum",
    "multi-krum", "cc",       "scc",          "faba",   "ios"};

void ohm_rule_defaults(ohm_rule_params_t *p, ohm_rule_t rule)
{
    assert(p);
    p->rule = rule;
    p->b = 0;
    p->tau = 1.0;
    p->nu = 1e-6;
    p->iters = 8;
    p->tol = 1e-5;
    p->m = 0;
    p->exclude_self = 0;
}

int ohm_rule_from_name(const char *name)
{
    if (!name) return -1;
    for (int r = 0; r < OHM_RULE_COUNT; r++)
        if (strcmp(name, rule_names[r]) == 0) return r;
    return -1;
}

const char *ohm_rule_name(ohm_rule_t r)
{
    return (unsigned)r < OHM_RULE_COUNT ? rule_names[r] : "unknown";
}

/* ------------------------------------------------------------------ rules */

typedef struct {
    double *D;          /* k*k pairwise squared distances (krum, faba, ios) */
    double *dist2;      /* k */
    double *wt;         /* k: weights in use */
    double *tmp;        /* k */
    float *coef;        /* k */
    uint32_t *absmax;   /* k */
    unsigned char *act; /* k: row still taken into account */
    const float **rp;   /* k: rows listed for wmean */
    int *idx;           /* k */
} scratch_t;

static void scratch_free(scratch_t *s)
{
    free(s->D);
    free(s->dist2);
    free(s->wt);
    free(s->tmp);
    free(s->coef);
    free(s->absmax);
    free(s->act);
    free(s->rp);
    free(s->idx);
}

static int scratch_alloc(scratch_t *s, int k, int need_pairs)
{
    size_t K = (size_t)k;
    memset(s, 0, sizeof *s);
    s->D = need_pairs ? calloc(K * K, sizeof(double)) : NULL;
    s->dist2 = calloc(K, sizeof(double));
    s->wt = calloc(K, sizeof(double));
    s->tmp = calloc(K, sizeof(double));
    s->coef = calloc(K, sizeof(float));
    s->absmax = calloc(K, sizeof(uint32_t));
    s->act = calloc(K, 1);
    s->rp = calloc(K, sizeof(float *));
    s->idx = calloc(K, sizeof(int));
    if ((need_pairs && !s->D) || !s->dist2 || !s->wt || !s->tmp || !s->coef || !s->absmax ||
        !s->act || !s->rp || !s->idx) {
        scratch_free(s);
        return OHM_ROBUST_ENOMEM;
    }
    return OHM_ROBUST_OK;
}

/* Marks rows with NaN/Inf inactive; returns how many. */
static int mark_nonfinite(const scratch_t *s, int k)
{
    int n = 0;
    for (int i = 0; i < k; i++)
        if (s->absmax[i] >= ABS_INF) {
            s->act[i] = 0;
            n++;
        }
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Krum scores: sum of the k-b-2 smallest squared distances to the other rows
 * (non-finite rows are at +Inf from everything and score +Inf themselves). */
static void krum_scores(const scratch_t *s, int k, int b, double *score)
{
    int nn = k - b - 2;
    for (int i = 0; i < k; i++) {
        if (!s->act[i]) {
            score[i] = INFINITY;
            continue;
        }
        int c = 0;
        for (int j = 0; j < k; j++)
            if (j != i) s->tmp[c++] = s->act[j] ? s->D[(size_t)i * k + j] : INFINITY;
        qsort(s->tmp, (size_t)c, sizeof(double), cmp_double);
        double sum = 0;
        for (int j = 0; j < nn; j++)
            sum += s->tmp[j];
        score[i] = sum;
    }
}

/* krum: the row with the smallest score (ties: the lower index), copied.
 * multi-krum: the plain average of the m rows with the smallest scores
 * (m = 0: k - b), among finite rows only. Needs k >= b + 3. */
static int rule_krum(const ohm_rule_params_t *p, const float *const *x, int k, size_t d, float *out,
                     ohm_rule_stats_t *st, scratch_t *s)
{
    ohm_pass_pairwise(x, k, d, s->D, s->absmax);
    memset(s->act, 1, (size_t)k);
    st->nonfinite = mark_nonfinite(s, k);
    double *score = s->dist2;
    krum_scores(s, k, p->b, score);
    int m = p->rule == OHM_RULE_KRUM ? 1 : (p->m > 0 ? p->m : k - p->b);
    /* selection by repeated minimum keeps ties in index order */
    unsigned char *chosen = (unsigned char *)s->coef; /* k bytes fit in k floats */
    memset(chosen, 0, (size_t)k);
    int got = 0;
    for (; got < m; got++) {
        int best = -1;
        for (int i = 0; i < k; i++)
            if (s->act[i] && !chosen[i] && (best < 0 || score[i] < score[best])) best = i;
        if (best < 0) break;
        chosen[best] = 1;
    }
    for (int i = 0; i < k; i++) {
        s->act[i] = chosen[i];
        s->wt[i] = 1.0;
    }
    st->discarded = k - got;
    for (int i = 0; i < k && i < 64; i++)
        if (!s->act[i]) st->dropped_rows |= 1ULL << i;
    int nbad = 0;
    ohm_pass_wmean(x, k, d, s->wt, s->act, s->rp, s->tmp, s->idx, out,
                   &nbad); /* got == 0: own vector */
    return OHM_ROBUST_OK;
}

/* faba / ios: b times, the (uniform for faba, w-weighted for ios) mean of the
 * active rows is formed and the active neighbour (never row 0) farthest from it
 * is dropped (ties: the lower index); non-finite rows are dropped first and use
 * up the b drops. The output is the same kind of mean over what remains.
 * faba with exclude_self forms the screening means over the active neighbours
 * only (row 0 still joins the final mean), as the IOS authors' FABA does.
 * Distances to the mean come from the pairwise table:
 * ||x_i - m||^2 = sum_j a_j D_ij - 1/2 sum_jl a_j a_l D_jl  with sum_j a_j = 1,
 * so the whole selection costs one pass, plus one for the final mean. */
static int rule_faba_ios(const ohm_rule_params_t *p, const float *const *x, const double *w, int k,
                         size_t d, float *out, ohm_rule_stats_t *st, scratch_t *s)
{
    ohm_pass_pairwise(x, k, d, s->D, s->absmax);
    memset(s->act, 1, (size_t)k);
    int bad = mark_nonfinite(s, k);
    st->nonfinite = bad;
    int drops = p->b - (bad - (s->absmax[0] >= ABS_INF)); /* self does not use a drop */
    for (int i = 0; i < k; i++)
        s->wt[i] = p->rule == OHM_RULE_IOS && w ? w[i] : 1.0 / k;
    int dropped = bad;
    for (; drops > 0; drops--) {
        double sw = 0;
        const int skip0 = p->rule == OHM_RULE_FABA && p->exclude_self;
        for (int i = skip0; i < k; i++)
            if (s->act[i]) sw += s->wt[i];
        if (!(sw > 0)) break;
        double *a = s->tmp;
        for (int i = 0; i < k; i++)
            a[i] = s->act[i] && !(i == 0 && skip0) ? s->wt[i] / sw : 0.0;
        double spread = 0; /* rows out of the mean are skipped, not weighted by 0: D may hold NaN */
        for (int j = skip0; j < k; j++)
            if (s->act[j])
                for (int l = skip0; l < k; l++)
                    if (s->act[l]) spread += a[j] * a[l] * s->D[(size_t)j * k + l];
        int far = -1;
        double fard = -1;
        for (int i = 1; i < k; i++) {
            if (!s->act[i]) continue;
            double di = -0.5 * spread;
            for (int j = skip0; j < k; j++)
                if (s->act[j]) di += a[j] * s->D[(size_t)i * k + j];
            if (di > fard) {
                fard = di;
                far = i;
            }
        }
        if (far < 0) break; /* no neighbour left */
        s->act[far] = 0;
        dropped++;
    }
    st->discarded = dropped;
    for (int i = 0; i < k && i < 64; i++)
        if (!s->act[i]) st->dropped_rows |= 1ULL << i;
    int nbad = 0;
    ohm_pass_wmean(x, k, d, s->wt, s->act, s->rp, s->tmp, s->idx, out, &nbad);
    return OHM_ROBUST_OK;
}

/* The (b+1)-th largest neighbour distance (rows 1..k-1; inactive ones count
 * as +Inf), or 0 when there are at most b neighbours: the adaptive radius
 * clips exactly the b farthest neighbours (fewer on ties). */
static double adaptive_tau(const scratch_t *s, int k, int b)
{
    int c = 0;
    for (int i = 1; i < k; i++)
        s->tmp[c++] = s->act[i] ? sqrt(s->dist2[i]) : INFINITY;
    if (b >= c) return 0.0;
    qsort(s->tmp, (size_t)c, sizeof(double), cmp_double);
    return s->tmp[c - 1 - b];
}

/* Clipping scale of row i: min(1, tau / ||x_i - center||). */
static double clip_scale(double dist, double tau)
{
    return dist <= tau ? 1.0 : tau / dist;
}

/* cc: m starts at the own vector x_0; each of `iters` rounds does
 * m <- m + sum_{j >= 0} w_j clip(x_j - m, tau) (self included; the adaptive
 * radius, tau <= 0, is recomputed every round from the neighbours' distances
 * to m). Non-finite rows contribute nothing. st->clipped: rows clipped in the
 * last round. Each round is one pass (its distances are fused into the
 * previous round's update). */
static int rule_cc(const ohm_rule_params_t *p, const float *const *x, const double *w, int k,
                   size_t d, float *out, ohm_rule_stats_t *st, scratch_t *s)
{
    ohm_pass_dist(x, k, d, x[0], s->dist2, s->absmax);
    memset(s->act, 1, (size_t)k);
    st->nonfinite = mark_nonfinite(s, k);
    const float *z = x[0];
    for (int t = 0; t < p->iters; t++) {
        double tau = p->tau > 0 ? p->tau : adaptive_tau(s, k, p->b);
        double sum = 0;
        int clipped = 0;
        for (int i = 0; i < k; i++) {
            double c = 0;
            if (s->act[i]) {
                double dist = sqrt(s->dist2[i]);
                c = (w ? w[i] : 1.0 / k) * clip_scale(dist, tau);
                clipped += dist > tau;
            }
            s->coef[i] = (float)c;
            sum += c;
            s->dist2[i] = 0;
        }
        st->clipped = clipped;
        double dz2, zn2;
        ohm_pass_combine(x, k, d, s->coef, s->act, (float)(1.0 - sum), z, out,
                         t + 1 < p->iters ? s->dist2 : NULL, &dz2, &zn2);
        z = out;
    }
    st->iters = p->iters;
    return OHM_ROBUST_OK;
}

/* scc (ClippedGossip): x_0 + sum_{j >= 1} w_j clip(x_j - x_0, tau); fixed tau,
 * or adaptive (tau <= 0) = the (b+1)-th largest neighbour distance to x_0.
 * Non-finite neighbours contribute nothing. Two passes. */
static int rule_scc(const ohm_rule_params_t *p, const float *const *x, const double *w, int k,
                    size_t d, float *out, ohm_rule_stats_t *st, scratch_t *s)
{
    ohm_pass_dist(x, k, d, x[0], s->dist2, s->absmax);
    memset(s->act, 1, (size_t)k);
    st->nonfinite = mark_nonfinite(s, k);
    double tau = p->tau > 0 ? p->tau : adaptive_tau(s, k, p->b);
    double sum = 0;
    s->act[0] = 0; /* x_0 enters through c0 */
    s->coef[0] = 0;
    for (int i = 1; i < k; i++) {
        double c = 0;
        if (s->act[i]) {
            double dist = sqrt(s->dist2[i]);
            c = (w ? w[i] : 1.0 / k) * clip_scale(dist, tau);
            st->clipped += dist > tau;
        }
        s->coef[i] = (float)c;
        sum += c;
    }
    ohm_pass_combine(x, k, d, s->coef, s->act, (float)(1.0 - sum), x[0], out, NULL, NULL, NULL);
    return OHM_ROBUST_OK;
}

/* Smoothed Weiszfeld on z = m + sum_j c_j (x_j - m), entirely in the
 * coefficients: with G the Gram matrix of the centred rows (and m as row k),
 * ||z - x_i||^2 = G_ii - 2 (Gc)_i + c'Gc and ||z||^2 = G_kk + 2 c'G_k + c'Gc.
 * Returns the updates run; c[k] receives the coefficients. */
static int weiszfeld_gram(const ohm_rule_params_t *p, const double *w, int k, const double *G,
                          const unsigned char *act, double *c, double *cn, int *ai)
{
    const size_t K = (size_t)k + 1;
    /* only the finite rows: entries of the others may be NaN */
#define GRAM(i, j) ((i) <= (j) ? G[(size_t)(i)*K + (j)] : G[(size_t)(j)*K + (i)])
    int na = 0;
    for (int i = 0; i < k; i++) {
        c[i] = cn[i] = 0;
        if (act[i]) ai[na++] = i;
    }
    int t = 0;
    while (t < p->iters) {
        double cgc = 0, sb = 0;
        for (int a = 0; a < na; a++) /* c'Gc */
            for (int b = 0; b < na; b++)
                cgc += c[ai[a]] * GRAM(ai[a], ai[b]) * c[ai[b]];
        for (int a = 0; a < na; a++) {
            const int i = ai[a];
            double gi = 0;
            for (int b = 0; b < na; b++)
                gi += GRAM(i, ai[b]) * c[ai[b]];
            double d2 = GRAM(i, i) - 2 * gi + cgc, dist = d2 > 0 ? sqrt(d2) : 0;
            cn[i] = (w ? w[i] : 1.0) / (dist > p->nu ? dist : p->nu);
            sb += cn[i];
        }
        if (!(sb > 0)) break;
        t++;
        /* ||z_new - z||^2 = e'Ge with e = cn - c; ||z_new||^2 from G's last row */
        double dz2 = 0, zn2 = GRAM(k, k);
        for (int a = 0; a < na; a++)
            cn[ai[a]] /= sb;
        for (int a = 0; a < na; a++) {
            const int i = ai[a];
            double ge = 0, gn = 0;
            for (int b = 0; b < na; b++) {
                ge += GRAM(i, ai[b]) * (cn[ai[b]] - c[ai[b]]);
                gn += GRAM(i, ai[b]) * cn[ai[b]];
            }
            dz2 += (cn[i] - c[i]) * ge;
            zn2 += cn[i] * (2 * GRAM(i, k) + gn);
        }
        for (int a = 0; a < na; a++)
            c[ai[a]] = cn[ai[a]];
        if (sqrt(dz2 > 0 ? dz2 : 0) <= p->tol * sqrt(zn2 > 0 ? zn2 : 0)) break;
    }
#undef GRAM
    return t;
}

/* geomed: smoothed Weiszfeld from the coordinate-wise median,
 * z <- sum b_j x_j / sum b_j, b_j = w_j / max(||z - x_j||, nu), over finite
 * rows; stops when ||z_new - z|| <= tol ||z_new|| or after `iters` updates
 * (st->iters). Up to GRAM_MAX rows, the median pass also takes the Gram matrix
 * of the rows centred on the median, the updates run on k coefficients, and
 * one more pass writes the result: three passes whatever the iterations.
 * Beyond, where the Gram matrix costs more than a pass, each update is one
 * pass with its distances fused in. */
static int rule_geomed(const ohm_rule_params_t *p, const float *const *x, const double *w, int k,
                       size_t d, float *out, ohm_rule_stats_t *st, scratch_t *s)
{
    if (k <= GRAM_MAX) {
        const size_t K = (size_t)k + 1;
        double *G = calloc(K * K + 2 * K, sizeof(double));
        if (!G) return OHM_ROBUST_ENOMEM;
        double *c = G + K * K, *cn = c + K;
        int rc = ohm_coordwise_run(x, k, d, (k - 1) / 2, k / 2, 1, s->absmax, NULL, G, out);
        if (!rc) {
            memset(s->act, 1, (size_t)k);
            st->nonfinite = mark_nonfinite(s, k);
            st->iters = weiszfeld_gram(p, w, k, G, s->act, c, cn, s->idx);
            if (st->iters) ohm_pass_correct(x, k, d, c, out);
        }
        free(G);
        return rc;
    }
    int rc = ohm_coordwise_run(x, k, d, (k - 1) / 2, k / 2, 1, s->absmax, s->dist2, NULL, out);
    if (rc) return rc;
    memset(s->act, 1, (size_t)k);
    st->nonfinite = mark_nonfinite(s, k);
    int t = 0;
    while (t < p->iters) {
        double sb = 0;
        for (int i = 0; i < k; i++) {
            double dist = sqrt(s->dist2[i]);
            s->tmp[i] = s->act[i] ? (w ? w[i] : 1.0) / (dist > p->nu ? dist : p->nu) : 0.0;
            sb += s->tmp[i];
            s->dist2[i] = 0;
        }
        if (!(sb > 0)) break;
        for (int i = 0; i < k; i++)
            s->coef[i] = (float)(s->tmp[i] / sb);
        double dz2, zn2;
        t++;
        ohm_pass_combine(x, k, d, s->coef, s->act, 0.0f, out, out, t < p->iters ? s->dist2 : NULL,
                         &dz2, &zn2);
        if (sqrt(dz2) <= p->tol * sqrt(zn2)) break;
    }
    st->iters = t;
    return OHM_ROBUST_OK;
}

/* ----------------------------------------------------------------- driver */

static int uses_weights(ohm_rule_t r)
{
    return r == OHM_RULE_WEIGHTED || r == OHM_RULE_GEOMED || r == OHM_RULE_CC ||
           r == OHM_RULE_SCC || r == OHM_RULE_IOS;
}

/* Argument checks per rule (OHM_ROBUST_EARGS):
 * all: k >= 1, b >= 0, no NULL row/out when d > 0, weights finite and >= 0;
 * trimmed-mean: k > 2b; krum, multi-krum: k >= b + 3, 0 <= m <= k;
 * faba, ios: b <= k - 1 (b neighbours can be dropped);
 * geomed: nu > 0, iters >= 1, tol >= 0; cc: iters >= 1; cc, scc: tau not NaN. */
static int check_args(const ohm_rule_params_t *p, const float *const *x, const double *w, int k,
                      size_t d, const float *out)
{
    if (!p || (unsigned)p->rule >= OHM_RULE_COUNT || k < 1 || p->b < 0) return 0;
    if (d > 0) {
        if (!x || !out) return 0;
        for (int i = 0; i < k; i++)
            if (!x[i]) return 0;
    }
    if (w && uses_weights(p->rule))
        for (int i = 0; i < k; i++)
            if (!(w[i] >= 0) || !isfinite(w[i])) return 0;
    switch (p->rule) {
    case OHM_RULE_TRIMMED_MEAN:
        return k > 2 * p->b;
    case OHM_RULE_KRUM:
    case OHM_RULE_MULTI_KRUM:
        return k >= p->b + 3 && p->m >= 0 && p->m <= k;
    case OHM_RULE_FABA:
    case OHM_RULE_IOS:
        return p->b <= k - 1;
    case OHM_RULE_GEOMED:
        return p->nu > 0 && p->iters >= 1 && p->tol >= 0;
    case OHM_RULE_CC:
        return p->iters >= 1 && !isnan(p->tau);
    case OHM_RULE_SCC:
        return !isnan(p->tau);
    default:
        return 1;
    }
}

int ohm_robust_aggregate(const ohm_rule_params_t *p, const float *const *x, const double *w, int k,
                         size_t d, float *out, ohm_rule_stats_t *st)
{
    ohm_rule_stats_t dummy;
    if (!st) st = &dummy;
    memset(st, 0, sizeof *st);
    if (!check_args(p, x, w, k, d, out)) return OHM_ROBUST_EARGS;
    if (d == 0) return OHM_ROBUST_OK;

    scratch_t s;
    int pairs = p->rule == OHM_RULE_KRUM || p->rule == OHM_RULE_MULTI_KRUM ||
                p->rule == OHM_RULE_FABA || p->rule == OHM_RULE_IOS;
    if (scratch_alloc(&s, k, pairs)) return OHM_ROBUST_ENOMEM;
    int rc = OHM_ROBUST_OK;
    switch (p->rule) {
    case OHM_RULE_MEAN:
    case OHM_RULE_WEIGHTED: {
        memset(s.act, 1, (size_t)k);
        for (int i = 0; i < k; i++)
            s.wt[i] = p->rule == OHM_RULE_WEIGHTED && w ? w[i] : 1.0 / k;
        ohm_pass_wmean(x, k, d, s.wt, s.act, s.rp, s.tmp, s.idx, out, &st->nonfinite);
        st->discarded = st->nonfinite;
        break;
    }
    case OHM_RULE_TRIMMED_MEAN:
        /* self is among the values trimmed: per coordinate, sort self U
         * neighbours, drop the b smallest and b largest, average the rest */
        rc = ohm_coordwise_run(x, k, d, p->b, k - 1 - p->b, 0, s.absmax, NULL, NULL, out);
        st->discarded = 2 * p->b;
        break;
    case OHM_RULE_MEDIAN:
        /* over self U neighbours; even k: midpoint of the two middle values */
        rc = ohm_coordwise_run(x, k, d, (k - 1) / 2, k / 2, 1, s.absmax, NULL, NULL, out);
        break;
    case OHM_RULE_GEOMED:
        rc = rule_geomed(p, x, w, k, d, out, st, &s);
        break;
    case OHM_RULE_KRUM:
    case OHM_RULE_MULTI_KRUM:
        rc = rule_krum(p, x, k, d, out, st, &s);
        break;
    case OHM_RULE_CC:
        rc = rule_cc(p, x, w, k, d, out, st, &s);
        break;
    case OHM_RULE_SCC:
        rc = rule_scc(p, x, w, k, d, out, st, &s);
        break;
    case OHM_RULE_FABA:
    case OHM_RULE_IOS:
        rc = rule_faba_ios(p, x, w, k, d, out, st, &s);
        break;
    default:
        assert(0 && "rule checked above");
    }
    if (p->rule == OHM_RULE_TRIMMED_MEAN || p->rule == OHM_RULE_MEDIAN)
        for (int i = 0; i < k; i++)
            st->nonfinite += s.absmax[i] >= ABS_INF;
    scratch_free(&s);
    return rc;
}
