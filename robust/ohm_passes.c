/* ohm_passes: the streaming passes of the weighted and distance-based rules,
 * see ohm_passes.h. Each reads the k rows once, in blocks of coordinates,
 * with sums in float lanes per block added up in double. */
#include "ohm_passes.h"

#include "ohm_kernel.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WM_BLK 256 /* coordinates per block in the weighted mean (checked, then summed) */

/* One block of out = sum_j (ws[j] inv) rp[j] over the na listed rows, up to
 * four rows per sweep of a float accumulator (a fixed grouping, so the result
 * is deterministic); returns the position in rp of the first row found
 * non-finite in this block, or -1. The weights are scaled to sum to one, so
 * the sums are convex combinations and stay finite for finite inputs (short of
 * rounding past FLT_MAX, which sane() then catches): the finiteness check runs
 * once on the sums, and the rows are searched only when it fails. */
OHM_HOT static int wmean_block(const float *const *rp, const double *ws, int na, size_t off,
                               size_t n, double inv, const float *own, float *restrict out)
{
    float acc[WM_BLK];
    for (int j = 0; j < na; j += 4) {
        const int m = na - j < 4 ? na - j : 4, first = j == 0;
        const float *a0 = rp[j] + off, *a1 = m > 1 ? rp[j + 1] + off : a0,
                    *a2 = m > 2 ? rp[j + 2] + off : a0, *a3 = m > 3 ? rp[j + 3] + off : a0;
        const float w0 = (float)(ws[j] * inv), w1 = m > 1 ? (float)(ws[j + 1] * inv) : 0,
                    w2 = m > 2 ? (float)(ws[j + 2] * inv) : 0,
                    w3 = m > 3 ? (float)(ws[j + 3] * inv) : 0;
        switch (m) {
        case 4:
            for (size_t c = 0; c < n; c++)
                acc[c] = (first ? 0.0f : acc[c]) +
                         ((w0 * a0[c] + w1 * a1[c]) + (w2 * a2[c] + w3 * a3[c]));
            break;
        case 3:
            for (size_t c = 0; c < n; c++)
                acc[c] = (first ? 0.0f : acc[c]) + ((w0 * a0[c] + w1 * a1[c]) + w2 * a2[c]);
            break;
        case 2:
            for (size_t c = 0; c < n; c++)
                acc[c] = (first ? 0.0f : acc[c]) + (w0 * a0[c] + w1 * a1[c]);
            break;
        default:
            for (size_t c = 0; c < n; c++)
                acc[c] = (first ? 0.0f : acc[c]) + w0 * a0[c];
            break;
        }
    }
    if (na == 0)
        for (size_t c = 0; c < n; c++)
            acc[c] = 0.0f;
    /* exponent all ones (NaN/Inf) carries into bit 31 when one is added to it;
     * integer ORs, so the check vectorizes (a float reduction would not) */
    uint32_t probe = 0;
    for (size_t c = 0; c < n; c++)
        probe |= (fbits(acc[c]) & 0x7f800000u) + 0x00800000u;
    if (probe & 0x80000000u)
        for (int j = 0; j < na; j++)
            if (absmax_bits(rp[j] + off, n) >= ABS_INF) return j;
    own += off;
    for (size_t c = 0; c < n; c++)
        out[off + c] = sane(acc[c], own[c]);
    return -1;
}

/* out = sum over active rows of wt[i] x_i / sum of those wt. A row found
 * non-finite is deactivated (counted in *nbad) and the pass restarts without
 * it, so finite inputs cost one pass. If no weight remains, out is the own
 * vector (sanitized). rp, ws, idx: k-entry scratch. */
void ohm_pass_wmean(const float *const *x, int k, size_t d, const double *wt, unsigned char *act,
                    const float **rp, double *ws, int *idx, float *out, int *nbad)
{
    for (;;) {
        double s = 0;
        int na = 0;
        for (int i = 0; i < k; i++)
            if (act[i] && wt[i] > 0) {
                s += wt[i];
                rp[na] = x[i];
                ws[na] = wt[i];
                idx[na++] = i;
            }
        if (!(s > 0)) {
            for (size_t c = 0; c < d; c++)
                out[c] = sane(x[0][c], 0.0f);
            return;
        }
        int bad = -1;
        for (size_t off = 0; off < d && bad < 0; off += WM_BLK)
            bad = wmean_block(rp, ws, na, off, d - off < WM_BLK ? d - off : WM_BLK, 1.0 / s, x[0],
                              out);
        if (bad < 0) return;
        act[idx[bad]] = 0;
        (*nbad)++;
    }
}

/* --------------------------------------------------------- distance passes */

/* D[i*k+j] = ||x_i - x_j||^2 for all pairs, in one pass over the blocks. */
OHM_HOT static void pairwise_pass(const float *const *x, int k, size_t d, double *D,
                                  uint32_t *absmax)
{
    for (size_t off = 0; off < d; off += DS_BLK) {
        size_t n = d - off < DS_BLK ? d - off : DS_BLK;
        for (int i = 0; i < k; i++) {
            uint32_t m = absmax_bits(x[i] + off, n);
            absmax[i] = m > absmax[i] ? m : absmax[i];
        }
        for (int i = 0; i < k; i++)
            for (int j = i + 1; j < k; j++)
                D[(size_t)i * k + j] += sqdist(x[i] + off, x[j] + off, n);
    }
    for (int i = 0; i < k; i++) {
        D[(size_t)i * k + i] = 0;
        for (int j = i + 1; j < k; j++)
            D[(size_t)j * k + i] = D[(size_t)i * k + j];
    }
}

/* dist2[i] = ||x_i - ref||^2 for every row, one pass. */
OHM_HOT static void dist_pass(const float *const *x, int k, size_t d, const float *ref,
                              double *dist2, uint32_t *absmax)
{
    for (size_t off = 0; off < d; off += DS_BLK) {
        size_t n = d - off < DS_BLK ? d - off : DS_BLK;
        for (int i = 0; i < k; i++) {
            uint32_t m = absmax_bits(x[i] + off, n);
            absmax[i] = m > absmax[i] ? m : absmax[i];
            dist2[i] += sqdist(x[i] + off, ref + off, n);
        }
    }
}

#ifdef OHM_CW_REGS
/* combine_pass for at most 8 active rows on AVX2, in one sweep per 8
 * coordinates: the new value, ||z_new - z||^2, ||z_new||^2, the store and
 * every row's squared distance to it, with the rows still in L1. Sums are
 * taken per DS_BLK block in float lanes and added up in double. The active
 * rows are finite and the coefficients convex, so a value can only leave the
 * floats by rounding past FLT_MAX: a block whose ||z_new||^2 is not finite is
 * then sanitized afterwards and its sums redone in double (its ||z_new - z||^2
 * becomes +Inf when z was overwritten: that only delays the stopping test). */
__attribute__((target("avx2,fma"))) static void
combine_small_avx2(const float *const *rp, const float *cf, const int *ri, int na, size_t d,
                   float c0, const float *z, const float *own, float *out, double *dist2,
                   double *sdz, double *szn)
{
    const __m256 vc0 = _mm256_set1_ps(c0), zero = _mm256_setzero_ps();
    const int aliased = z == out;
    __m256 vcf[8];
    for (int j = 0; j < na; j++)
        vcf[j] = _mm256_set1_ps(cf[j]);
    for (size_t off = 0; off < d; off += DS_BLK) {
        size_t n = d - off < DS_BLK ? d - off : DS_BLK, n8 = n / 8 * 8;
        __m256 vdz = zero, vzn = zero, vd[8];
        for (int j = 0; j < na; j++)
            vd[j] = zero;
        for (size_t c = off; c < off + n8; c += 8) {
            __m256 zc = _mm256_loadu_ps(z + c); /* read before out + c is written */
            __m256 a = _mm256_mul_ps(vc0, zc);
            for (int j = 0; j < na; j++)
                a = _mm256_fmadd_ps(vcf[j], _mm256_loadu_ps(rp[j] + c), a);
            __m256 t = _mm256_sub_ps(a, zc);
            vdz = _mm256_fmadd_ps(t, t, vdz);
            vzn = _mm256_fmadd_ps(a, a, vzn);
            _mm256_storeu_ps(out + c, a);
            if (dist2)
                for (int j = 0; j < na; j++) {
                    __m256 u = _mm256_sub_ps(_mm256_loadu_ps(rp[j] + c), a);
                    vd[j] = _mm256_fmadd_ps(u, u, vd[j]);
                }
        }
        float bz[8], bn[8];
        _mm256_storeu_ps(bz, vdz);
        _mm256_storeu_ps(bn, vzn);
        double fz = 0, fn = 0;
        for (int l = 0; l < 8; l++)
            fz += bz[l], fn += bn[l];
        /* the tail of the block */
        for (size_t c = off + n8; c < off + n; c++) {
            float zc = z[c], a = c0 * zc;
            for (int j = 0; j < na; j++)
                a += cf[j] * rp[j][c];
            a = sane(a, own[c]);
            fz += ((double)a - zc) * ((double)a - zc);
            fn += (double)a * a;
            out[c] = a;
        }
        const int fix = !(fn <= FLT_MAX);
        if (fix) {
            for (size_t c = off; c < off + n; c++)
                out[c] = sane(out[c], own[c]);
            fn = sqnorm(out + off, n);
            fz = aliased ? INFINITY : sqdist(out + off, z + off, n);
        } else if (!(fz <= FLT_MAX)) {
            fz = aliased ? INFINITY : sqdist(out + off, z + off, n);
        }
        *sdz += fz;
        *szn += fn;
        if (!dist2) continue;
        for (int j = 0; j < na; j++) {
            float b[8];
            _mm256_storeu_ps(b, vd[j]);
            double s = 0;
            for (int l = 0; l < 8; l++)
                s += b[l];
            for (size_t c = off + n8; c < off + n; c++)
                s += ((double)rp[j][c] - out[c]) * ((double)rp[j][c] - out[c]);
            dist2[ri[j]] += !fix && s <= FLT_MAX ? s : sqdist(rp[j] + off, out + off, n);
        }
    }
}
#endif

/* One fused iteration of geomed / cc: z_new = c0 * z + sum_i coef[i] x_i over
 * active rows (z may alias out: each coordinate is read before it is
 * written), written to out; dz2 and zn2 get ||z_new - z||^2 and ||z_new||^2;
 * when dist2 is given it receives ||x_i - z_new||^2 for the next iteration. */
OHM_HOT static void combine_pass(const float *const *x, int k, size_t d, const float *coef,
                                 const unsigned char *act, float c0, const float *z, float *out,
                                 double *dist2, double *dz2, double *zn2)
{
    double sdz = 0, szn = 0;
    const float *rp[8];
    float cf[8];
#ifdef OHM_CW_REGS
    /* up to 8 active rows: the one-sweep kernel, when the CPU has AVX2 */
    int na = 0, ri[8];
    for (int i = 0; i < k && na <= 8; i++)
        if (act[i]) {
            if (na < 8) rp[na] = x[i], cf[na] = coef[i], ri[na] = i;
            na++;
        }
    if (na <= 8 && ohm_kernel_isa() >= 1 && (z == out || z + d <= out || out + d <= z)) {
        combine_small_avx2(rp, cf, ri, na, d, c0, z, x[0], out, dist2, &sdz, &szn);
        if (dz2) *dz2 = sdz;
        if (zn2) *zn2 = szn;
        return;
    }
#endif
    for (size_t off = 0; off < d; off += DS_BLK) {
        size_t n = d - off < DS_BLK ? d - off : DS_BLK;
        float acc[DS_BLK];
        const float *zb = z + off;
        for (size_t c = 0; c < n; c++)
            acc[c] = c0 * zb[c];
        /* four rows per sweep of the accumulator, in row order */
        int na = 0;
        for (int i = 0; i <= k; i++) {
            if (i < k && act[i]) {
                rp[na] = x[i] + off;
                cf[na++] = coef[i];
            }
            if (na == 4) {
                const float *restrict a0 = rp[0], *restrict a1 = rp[1], *restrict a2 = rp[2],
                                      *restrict a3 = rp[3];
                const float w0 = cf[0], w1 = cf[1], w2 = cf[2], w3 = cf[3];
                for (size_t c = 0; c < n; c++)
                    acc[c] += (w0 * a0[c] + w1 * a1[c]) + (w2 * a2[c] + w3 * a3[c]);
                na = 0;
            } else if (i == k) {
                for (int j = 0; j < na; j++)
                    for (size_t c = 0; c < n; c++)
                        acc[c] += cf[j] * rp[j][c];
            }
        }
        const float *own = x[0] + off;
        for (size_t c = 0; c < n; c++)
            acc[c] = sane(acc[c], own[c]);
        sdz += sqdist(acc, zb, n);
        szn += sqnorm(acc, n);
        memcpy(out + off, acc, sizeof(float) * n);
        if (dist2)
            for (int i = 0; i < k; i++)
                if (act[i]) dist2[i] += sqdist(x[i] + off, out + off, n);
    }
    if (dz2) *dz2 = sdz;
    if (zn2) *zn2 = szn;
}

/* out = m + sum_j c_j (x_j - m) over the rows with c_j != 0, m = out on entry:
 * geomed's result from its coefficients (written as a correction of the
 * median, so rows equal to it give it back exactly). */
OHM_HOT static void correct_pass(const float *const *x, int k, size_t d, const double *c,
                                 float *out)
{
    const float *rp[4];
    float cf[4];
    for (size_t off = 0; off < d; off += DS_BLK) {
        size_t n = d - off < DS_BLK ? d - off : DS_BLK;
        float acc[DS_BLK];
        const float *restrict m = out + off;
        for (size_t i = 0; i < n; i++)
            acc[i] = 0.0f;
        /* four rows per sweep of the accumulator; absent ones weigh 0 */
        int na = 0;
        for (int j = 0; j <= k; j++) {
            if (j < k && c[j] != 0) {
                rp[na] = x[j] + off;
                cf[na++] = (float)c[j];
            }
            if (na == 4 || (j == k && na > 0)) {
                for (int r = na; r < 4; r++)
                    rp[r] = m, cf[r] = 0.0f;
                const float *restrict a0 = rp[0], *restrict a1 = rp[1], *restrict a2 = rp[2],
                                      *restrict a3 = rp[3];
                for (size_t i = 0; i < n; i++)
                    acc[i] += (cf[0] * (a0[i] - m[i]) + cf[1] * (a1[i] - m[i])) +
                              (cf[2] * (a2[i] - m[i]) + cf[3] * (a3[i] - m[i]));
                na = 0;
            }
        }
        const float *own = x[0] + off;
        for (size_t i = 0; i < n; i++)
            out[off + i] = sane(m[i] + acc[i], own[i]);
    }
}

/* ---------------------------------------------------------- entry points */

/* The passes above are compiled per instruction set (OHM_HOT); they are
 * called through these plain functions, because some compilers (clang 14)
 * resolve such clones only for calls from the same file. */
void ohm_pass_pairwise(const float *const *x, int k, size_t d, double *D, uint32_t *absmax)
{
    pairwise_pass(x, k, d, D, absmax);
}

void ohm_pass_dist(const float *const *x, int k, size_t d, const float *ref, double *dist2,
                   uint32_t *absmax)
{
    dist_pass(x, k, d, ref, dist2, absmax);
}

void ohm_pass_combine(const float *const *x, int k, size_t d, const float *coef,
                      const unsigned char *act, float c0, const float *z, float *out, double *dist2,
                      double *dz2, double *zn2)
{
    combine_pass(x, k, d, coef, act, c0, z, out, dist2, dz2, zn2);
}

void ohm_pass_correct(const float *const *x, int k, size_t d, const double *c, float *out)
{
    correct_pass(x, k, d, c, out);
}
