/* ohm_pulse: stochastic pulse trains and the coincidence kernel (see ohm_pulse.h). */
#include "ohm_pulse.h"

#include "ohm_burst.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Examples per chunk: a row's states are loaded once per chunk. */
#define CHUNK 32
/* Lines whose uniforms are drawn at once (32 per line). */
#define LINE_BLOCK 64
/* Normals drawn at once for cycle-to-cycle noise. */
#define NORMALS 2048
/* A row firing in more slots than this takes the burst path (see apply_chunk). */
#define ENUM_MAX 8

struct ohm_pulser {
    int rows, cols, words;
    uint32_t *cb;    /* CHUNK x cols: column trains */
    uint8_t *cneg;   /* CHUNK x cols: column j's input is negative */
    uint32_t *pool;  /* firing columns per example and slot: j | negative << 31 */
    size_t pool_cap; /* entries */
    uint32_t *off;   /* CHUNK x 33: slot s of example e is pool[off[33e+s] .. off[33e+s+1]) */
    uint32_t *rb;    /* CHUNK x rows: row trains */
    uint8_t *rneg;   /* CHUNK x rows: row i's error is negative */
    uint64_t *hm;    /* words: candidate cells of one row and example (burst path) */
    uint32_t *hits;  /* cols + 8: their column indices */
    uint32_t *uni;   /* LINE_BLOCK x 32 uniforms */
    float *nrm;      /* normals */
    int nrm_len, nrm_pos;
};

/* Hardware popcount where the CPU has it (one instruction instead of a libgcc
 * call per cell), wider vectors for the train comparisons; resolved once at
 * load time, portable elsewhere. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define OHM_POPCNT_CLONES __attribute__((target_clones("popcnt", "default")))
#define OHM_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define OHM_POPCNT_CLONES
#define OHM_AVX2_CLONES
#endif

ohm_pulser_t *ohm_pulser_new(int rows, int cols)
{
    assert(rows > 0 && cols > 0);
    ohm_pulser_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->rows = rows;
    p->cols = cols;
    p->words = (cols + 63) / 64;
    /* At least one example whose every column fires in every slot; typical
     * examples use a few percent of that, so a chunk is rarely cut short. */
    p->pool_cap = (size_t)cols * 32 > 131072 ? (size_t)cols * 32 : 131072;
    p->cb = malloc((size_t)CHUNK * cols * sizeof(uint32_t));
    p->cneg = malloc((size_t)CHUNK * cols);
    p->pool = malloc((p->pool_cap + 1) * sizeof(uint32_t)); /* + the spare entry */
    p->off = malloc((size_t)CHUNK * 33 * sizeof(uint32_t));
    p->rb = malloc((size_t)CHUNK * rows * sizeof(uint32_t));
    p->rneg = malloc((size_t)CHUNK * rows);
    p->hm = malloc((size_t)p->words * sizeof(uint64_t));
    p->hits = malloc(((size_t)cols + 8) * sizeof(uint32_t));
    p->uni = malloc((size_t)LINE_BLOCK * 32 * sizeof(uint32_t));
    /* A row of one example needs at most ENUM_MAX x cols normals (one per pulse). */
    p->nrm_len = ENUM_MAX * cols + 8 > NORMALS ? ENUM_MAX * cols + 8 : NORMALS;
    p->nrm = malloc((size_t)p->nrm_len * sizeof(float));
    if (!p->cb || !p->cneg || !p->pool || !p->off || !p->rb || !p->rneg || !p->hm || !p->hits ||
        !p->uni || !p->nrm) {
        ohm_pulser_destroy(&p);
        return NULL;
    }
    return p;
}

void ohm_pulser_destroy(ohm_pulser_t **pp)
{
    if (!pp || !*pp) return;
    ohm_pulser_t *p = *pp;
    free(p->cb);
    free(p->cneg);
    free(p->pool);
    free(p->off);
    free(p->rb);
    free(p->rneg);
    free(p->hm);
    free(p->hits);
    free(p->uni);
    free(p->nrm);
    free(p);
    *pp = NULL;
}

/* ---- trains -------------------------------------------------------------- */

/* Probabilities of one example: returns the train length (0: nothing fires)
 * and the scales B (columns) and A (rows). */
static int sample_scales(const ohm_pulse_opts_t *o, double dw_min, const float *xe, int cols,
                         const float *de, int rows, double lr, double *bx, double *bd)
{
    float xm = 0, dm = 0;
    for (int j = 0; j < cols; j++) {
        float v = fabsf(xe[j]);
        xm = v > xm ? v : xm;
    }
    for (int i = 0; i < rows; i++) {
        float v = fabsf(de[i]);
        dm = v > dm ? v : dm;
    }
    if (xm == 0 || dm == 0) return 0; /* no cell can be pulsed */
    int bl = o->bl;
    double kv = lr * xm * dm / dw_min; /* pulses the largest product asks for */
    if (o->ublm) {
        double c = ceil(kv);
        bl = c < 1 ? 1 : c > o->bl ? o->bl : (int)c;
    }
    double a0 = sqrt(lr / (dw_min * bl));
    *bx = *bd = a0;
    if (o->um) {
        double dv = kv > o->bl ? dm * o->bl / kv : dm;
        *bd = a0 * sqrt(xm / dv);
        *bx = a0 * sqrt(dv / xm);
    }
    return bl;
}

/* Trains of 8 lines at once from nu x 8 uniforms laid out slot by slot
 * (u[8 s + l] for slot s of line l): bit s of line l is set iff u[8 s + l] < th[l]
 * (th = p 2^32). Lane-parallel, so it vectorises without horizontal work. */
static inline void trains8(const uint32_t *u, const uint32_t *th, uint32_t *out, int nu)
{
    uint32_t b[8] = {0};
    for (int sl = 0; sl < nu; sl++)
        for (int l = 0; l < 8; l++)
            b[l] |= (uint32_t)(u[8 * sl + l] < th[l]) << sl;
    memcpy(out, b, sizeof b);
}

/* Trains of `len` lines with probabilities min(1, sc |v|), bits at and above
 * bl cleared; every group of 8 lines takes 8 nu uniforms from the bulk
 * stream, nu = bl rounded up to a multiple of 8. neg[j] = v[j] < 0. Returns
 * the set bits. */
OHM_AVX2_CLONES static uint64_t make_trains(ohm_pulser_t *p, ohm_bulk_t *bulk, const float *v,
                                            int len, double sc, int bl, uint32_t *out, uint8_t *neg)
{
    uint32_t full = bl == 32 ? 0xffffffffu : ((1u << bl) - 1u);
    int nu = (bl + 7) / 8 * 8, avail = 0; /* uniforms per line; groups left in p->uni */
    const uint32_t *u = p->uni;
    uint64_t set = 0;
    for (int j0 = 0; j0 < len; j0 += 8) {
        uint32_t th[8], sat = 0, b[8];
        for (int l = 0; l < 8; l++) {
            double pr = j0 + l < len ? sc * fabs((double)v[j0 + l]) : 0.0;
            th[l] = pr > 0 && pr < 1 ? (uint32_t)(pr * 4294967296.0) : 0;
            sat |= (uint32_t)(pr >= 1) << l;
        }
        if (!avail) {
            ohm_bulk_u32(bulk, p->uni, (size_t)LINE_BLOCK * nu);
            u = p->uni;
            avail = LINE_BLOCK / 8;
        }
        trains8(u, th, b, nu);
        u += 8 * nu;
        avail--;
        int m = len - j0 < 8 ? len - j0 : 8;
        for (int l = 0; l < m; l++) {
            uint32_t t = ((sat >> l) & 1u ? full : b[l]) & full;
            out[j0 + l] = t;
            set += (uint64_t)__builtin_popcount(t);
            neg[j0 + l] = v[j0 + l] < 0;
        }
    }
    return set;
}

/* Lists, slot by slot, the columns of example e (trains already in cb, cneg)
 * into the pool from `base`: a counting sort of the set bits by slot. The
 * counts are column sums of bits (no branch); the fill writes a column's first
 * two entries unconditionally (an empty train writes into the spare entry at
 * pool_cap, slot 32), so only columns firing in three slots or more loop. */
OHM_AVX2_CLONES static void column_lists(ohm_pulser_t *p, int e, size_t base, int bl)
{
    int cols = p->cols;
    const uint32_t *cb = p->cb + (size_t)e * cols;
    const uint8_t *cn = p->cneg + (size_t)e * cols;
    uint32_t *off = p->off + (size_t)e * 33, pos[33], cnt[32] = {0};
    for (int sl = 0; sl < bl; sl++) {
        uint32_t c = 0;
        for (int j = 0; j < cols; j++)
            c += (cb[j] >> sl) & 1u;
        cnt[sl] = c;
    }
    uint32_t at = (uint32_t)base;
    for (int sl = 0; sl < 32; sl++) {
        off[sl] = pos[sl] = at;
        at += sl < bl ? cnt[sl] : 0;
    }
    off[32] = at;
    pos[32] = (uint32_t)p->pool_cap; /* the spare entry */
    uint32_t *pool = p->pool;
    for (int j = 0; j < cols; j++) {
        uint32_t b = cb[j], ent = (uint32_t)j | (uint32_t)cn[j] << 31;
        for (int t = 0; t < 2; t++) {
            int sl = b ? __builtin_ctz(b) : 32;
            pool[pos[sl]] = ent;
            pos[sl] += sl < 32;
            b &= b - 1;
        }
        for (; b; b &= b - 1)
            pool[pos[__builtin_ctz(b)]++] = ent;
    }
}

/* ---- applying the pulses --------------------------------------------------- */

static void refill_normals(ohm_pulser_t *p, ohm_bulk_t *bulk)
{
    ohm_bulk_normal(bulk, p->nrm, (size_t)p->nrm_len);
    p->nrm_pos = 0;
}

/* Burst path: the distinct cells of row train rb in example e (the union of
 * its slots' column lists) as column indices in p->hits; returns their number. */
static int row_candidates(ohm_pulser_t *p, int e, uint32_t rb)
{
    int words = p->words;
    const uint32_t *off = p->off + (size_t)e * 33;
    uint64_t *hm = p->hm;
    memset(hm, 0, (size_t)words * sizeof(uint64_t));
    for (uint32_t r = rb; r; r &= r - 1) {
        int sl = __builtin_ctz(r);
        for (uint32_t q = off[sl]; q < off[sl + 1]; q++) {
            uint32_t j = p->pool[q] & 0x7fffffffu;
            hm[j >> 6] |= 1ull << (j & 63);
        }
    }
    int nh = 0;
    for (int w = 0; w < words; w++)
        for (uint64_t m = hm[w]; m; m &= m - 1)
            p->hits[nh++] = (uint32_t)w * 64 + (uint32_t)__builtin_ctzll(m);
    return nh;
}

/* One pulse in float, for the responses whose single pulse is a few products
 * (ideal, softbounds, linear, pow with gamma 1 or 2): the formulas of
 * ohm_burst_single and of the k = 1 branch of ohm_burst, in the precision the
 * states are stored in. */
static inline __attribute__((always_inline)) int float_single(const ohm_burst_t *b, int resp)
{
    return resp == OHM_RESP_IDEAL || resp == OHM_RESP_SOFTBOUNDS || resp == OHM_RESP_LINEAR ||
           (resp == OHM_RESP_POW && b->pow_kind);
}

static inline __attribute__((always_inline)) float single_f(const ohm_burst_t *b, int resp, float w,
                                                            float s, const ohm_device_t *d,
                                                            float dwf, float cf, float gf)
{
    float tau = d->tau, step = dwf * d->scale * (1.0f + s * d->a), v;
    if (resp == OHM_RESP_IDEAL) {
        v = w + s * step;
    } else if (resp == OHM_RESP_POW) {
        float y = 1.0f - s * (w / tau);
        y = y > 0 ? y : 0.0f;
        v = w + s * step * (b->pow_kind == 2 ? y * y : y);
    } else {
        v = w + step * (1.0f + s * cf) * (s - gf * (w / tau));
    }
    v = v < tau ? v : tau;
    return v > -tau ? v : -tau;
}

/* One pulse of sign s on state w0 of device d, with its own noise when noisy. */
static inline __attribute__((always_inline)) float one_pulse(ohm_pulser_t *p, const ohm_burst_t *b,
                                                             int resp, int noisy, float w0, float s,
                                                             const ohm_device_t *d, float dwf,
                                                             float cf, float gf, float c2c)
{
    float v;
    if (float_single(b, resp))
        v = single_f(b, resp, w0, s, d, dwf, cf, gf);
    else
        v = (float)ohm_burst(b, resp, w0, 1, s, d->tau, d->scale, d->a);
    if (noisy) {
        float tau = d->tau;
        v = w0 + (v - w0) * (1.0f + c2c * p->nrm[p->nrm_pos++]);
        v = v < tau ? v : tau;
        v = v > -tau ? v : -tau;
    }
    return v;
}

/* Every row over examples [0, ns) of the chunk; `resp` and `noisy` are
 * constants in each instantiation, so the response's switch and the noise
 * test leave the inner loops. A row that fires in few slots (the common case)
 * walks those slots' column lists and applies each pulse as it comes: a cell's
 * pulses of one example all have its sign, so slot order is pulse order and
 * the result is the state of its single pulses, each with its own noise. A
 * row firing in many slots instead takes the union of the lists once and gives
 * each cell its whole count, popcount(row & column), as one exact burst. */
static inline __attribute__((always_inline)) uint64_t
apply_chunk(ohm_pulser_t *p, const ohm_burst_t *b, int resp, int noisy, float *w,
            const ohm_device_t *dev, int ns, ohm_bulk_t *bulk)
{
    int rows = p->rows, cols = p->cols;
    const float dwf = (float)b->dw_min, cf = (float)b->c, gf = (float)b->gamma;
    const float c2c = (float)b->c2c;
    uint64_t pulses = 0;
    for (int i = 0; i < rows; i++) {
        float *wr = w + (size_t)i * cols;
        const ohm_device_t *dr = dev + (size_t)i * cols;
        for (int e = 0; e < ns; e++) {
            uint32_t rb = p->rb[(size_t)e * rows + i];
            if (!rb) continue;
            unsigned dneg = p->rneg[(size_t)e * rows + i];
            const uint32_t *off = p->off + (size_t)e * 33;
            if (__builtin_popcount(rb) <= ENUM_MAX) {
                uint32_t need = 0;
                for (uint32_t r = rb; r; r &= r - 1) {
                    int sl = __builtin_ctz(r);
                    need += off[sl + 1] - off[sl];
                }
                if (noisy && (uint32_t)(p->nrm_len - p->nrm_pos) < need) refill_normals(p, bulk);
                pulses += need;
                for (uint32_t r = rb; r; r &= r - 1) {
                    int sl = __builtin_ctz(r);
                    for (uint32_t q = off[sl]; q < off[sl + 1]; q++) {
                        uint32_t ent = p->pool[q], j = ent & 0x7fffffffu;
                        /* change -lr x d: down where x and d have one sign */
                        float s = (float)(int)(2 * ((ent >> 31) ^ dneg)) - 1.0f;
                        wr[j] = one_pulse(p, b, resp, noisy, wr[j], s, &dr[j], dwf, cf, gf, c2c);
                    }
                }
                continue;
            }
            int nh = row_candidates(p, e, rb);
            const uint32_t *cb = p->cb + (size_t)e * cols;
            const uint8_t *cn = p->cneg + (size_t)e * cols;
            if (noisy && p->nrm_len - p->nrm_pos < nh) refill_normals(p, bulk);
            for (int h = 0; h < nh; h++) {
                uint32_t j = p->hits[h];
                int k = __builtin_popcount(rb & cb[j]);
                double s = (double)(int)(2 * (cn[j] ^ dneg)) - 1.0;
                double w0 = wr[j], tau = dr[j].tau;
                double wk = ohm_burst(b, resp, w0, k, s, tau, dr[j].scale, dr[j].a);
                if (noisy) wk = ohm_burst_noisy(b, w0, wk, k, p->nrm[p->nrm_pos++], tau);
                wr[j] = (float)wk;
                pulses += (uint64_t)k;
            }
        }
    }
    return pulses;
}

#define APPLY(R)                                                                                   \
    (noisy ? apply_chunk(p, b, R, 1, w, dev, ns, bulk) : apply_chunk(p, b, R, 0, w, dev, ns, bulk))

OHM_POPCNT_CLONES static uint64_t apply_fast(ohm_pulser_t *p, const ohm_burst_t *b, float *w,
                                             const ohm_device_t *dev, int ns, ohm_bulk_t *bulk)
{
    int noisy = b->c2c > 0;
    switch (b->response) {
    case OHM_RESP_IDEAL:
        return APPLY(OHM_RESP_IDEAL);
    case OHM_RESP_SOFTBOUNDS:
        return APPLY(OHM_RESP_SOFTBOUNDS);
    case OHM_RESP_LINEAR:
        return APPLY(OHM_RESP_LINEAR);
    case OHM_RESP_POW:
        return APPLY(OHM_RESP_POW);
    default:
        return APPLY(OHM_RESP_EXP);
    }
}

/* The reference: every cell, every slot, one pulse at a time (one normal per
 * pulse), example by example, in double precision. Same trains as the kernel. */
static uint64_t apply_naive(ohm_pulser_t *p, const ohm_burst_t *b, float *w,
                            const ohm_device_t *dev, int ns, ohm_bulk_t *bulk)
{
    int rows = p->rows, cols = p->cols;
    uint64_t pulses = 0;
    for (int e = 0; e < ns; e++) {
        const uint32_t *cb = p->cb + (size_t)e * cols;
        const uint8_t *cn = p->cneg + (size_t)e * cols;
        for (int i = 0; i < rows; i++) {
            uint32_t rb = p->rb[(size_t)e * rows + i];
            unsigned dneg = p->rneg[(size_t)e * rows + i];
            for (int j = 0; j < cols; j++) {
                size_t idx = (size_t)i * cols + j;
                double s = cn[j] == dneg ? -1.0 : 1.0, v = w[idx];
                const ohm_device_t *dv = &dev[idx];
                for (int slot = 0; slot < 32; slot++) {
                    if (!((rb >> slot) & (cb[j] >> slot) & 1u)) continue;
                    double v1 = ohm_burst(b, b->response, v, 1, s, dv->tau, dv->scale, dv->a);
                    if (b->c2c > 0) {
                        if (p->nrm_pos >= p->nrm_len) refill_normals(p, bulk);
                        v1 = ohm_burst_noisy(b, v, v1, 1, p->nrm[p->nrm_pos++], dv->tau);
                    }
                    v = v1;
                    pulses++;
                }
                w[idx] = (float)v;
            }
        }
    }
    return pulses;
}

static uint64_t apply(ohm_pulser_t *p, const ohm_pulse_opts_t *o, const ohm_burst_t *b, float *w,
                      const ohm_device_t *dev, int ns, ohm_bulk_t *bulk)
{
    if (ns == 0) return 0;
    return o->naive ? apply_naive(p, b, w, dev, ns, bulk) : apply_fast(p, b, w, dev, ns, bulk);
}

void ohm_pulser_update(ohm_pulser_t *p, const ohm_pulse_opts_t *o, const ohm_device_model_t *m,
                       float *w, const ohm_device_t *dev, const float *x, const float *d, int n,
                       double lr, ohm_bulk_t *bulk, ohm_pulse_tally_t *tally)
{
    assert(o->bl >= 1 && o->bl <= 32);
    int rows = p->rows, cols = p->cols;
    ohm_burst_t b;
    ohm_burst_init(&b, m);
    p->nrm_pos = p->nrm_len; /* normals are drawn when first needed */
    int ns = 0;              /* examples in the chunk */
    size_t used = 0;         /* pool entries of the chunk */
    for (int e = 0; e < n; e++) {
        const float *xe = x + (size_t)e * cols, *de = d + (size_t)e * rows;
        double bx = 0, bd = 0;
        int bl = sample_scales(o, m->dw_min, xe, cols, de, rows, lr, &bx, &bd);
        if (!bl) continue; /* nothing fires: no random numbers either */
        if (ns == CHUNK) {
            tally->pulses += apply(p, o, &b, w, dev, ns, bulk);
            ns = 0;
            used = 0;
        }
        uint64_t set = make_trains(p, bulk, xe, cols, bx, bl, p->cb + (size_t)ns * cols,
                                   p->cneg + (size_t)ns * cols);
        if (used + set > p->pool_cap) {
            /* The chunk's lists are full: apply what is there, restart with this example. */
            tally->pulses += apply(p, o, &b, w, dev, ns, bulk);
            memmove(p->cb, p->cb + (size_t)ns * cols, (size_t)cols * sizeof(uint32_t));
            memmove(p->cneg, p->cneg + (size_t)ns * cols, (size_t)cols);
            ns = 0;
            used = 0;
        }
        column_lists(p, ns, used, bl);
        used += set;
        tally->line_pulses += set;
        tally->line_pulses += make_trains(p, bulk, de, rows, bd, bl, p->rb + (size_t)ns * rows,
                                          p->rneg + (size_t)ns * rows);
        tally->slots += (uint64_t)bl;
        ns++;
    }
    tally->pulses += apply(p, o, &b, w, dev, ns, bulk);
}
