/* ohm_bulk: four-lane xoshiro256** and a Ziggurat normal generator (see ohm_bulk.h). */
#include "ohm_bulk.h"
#include "ohm_xoshiro.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

typedef uint64_t v4u64 __attribute__((vector_size(32)));

/* Wider vector units where the CPU has them; resolved once at load time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define OHM_BULK_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define OHM_BULK_CLONES
#endif

void ohm_bulk_seed(ohm_bulk_t *b, ohm_rng_t *r)
{
    for (int j = 0; j < 4; j++)
        for (int l = 0; l < 4; l++) {
            uint64_t x = ohm_rng_next(r);
            b->s[j][l] = ohm_splitmix64(&x);
        }
    for (int l = 0; l < 4; l++)
        if (!(b->s[0][l] | b->s[1][l] | b->s[2][l] | b->s[3][l]))
            b->s[0][l] = 1; /* the all-zero state is a fixed point */
    b->pos = 32;
}

/* A macro, not a function: a 32-byte vector return value changes the ABI
 * between the clones (-Wpsabi). */
#define ROTL(x, k) (((x) << (k)) | ((x) >> (64 - (k))))

/* n64 words (a multiple of 4), lane-interleaved, stored bytewise into out
 * (any alignment). Multiplications by 5 and 9 are written as shifts and adds:
 * vector units lack a 64-bit multiply. */
OHM_BULK_CLONES static void fill_words(uint64_t st[4][4], void *out, size_t n64)
{
    v4u64 s0, s1, s2, s3;
    memcpy(&s0, st[0], sizeof s0);
    memcpy(&s1, st[1], sizeof s1);
    memcpy(&s2, st[2], sizeof s2);
    memcpy(&s3, st[3], sizeof s3);
    for (size_t i = 0; i < n64; i += 4) {
        v4u64 x = (s1 << 2) + s1;
        x = ROTL(x, 7);
        x = (x << 3) + x;
        memcpy((unsigned char *)out + 8 * i, &x, sizeof x);
        v4u64 t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = ROTL(s3, 45);
    }
    memcpy(st[0], &s0, sizeof s0);
    memcpy(st[1], &s1, sizeof s1);
    memcpy(st[2], &s2, sizeof s2);
    memcpy(st[3], &s3, sizeof s3);
}

void ohm_bulk_u32(ohm_bulk_t *b, uint32_t *out, size_t n)
{
    assert(n % 8 == 0);
    fill_words(b->s, out, n / 2); /* uint32 pairs are the words' halves */
}

uint64_t ohm_bulk_next(ohm_bulk_t *b)
{
    if (b->pos >= 32) {
        fill_words(b->s, b->buf, 32);
        b->pos = 0;
    }
    return b->buf[b->pos++];
}

/* ---- Ziggurat ---------------------------------------------------------------- */

#define ZIG_R 3.442619855899      /* start of the tail */
#define ZIG_V 9.91256303526217e-3 /* area of each layer */

static uint32_t kn[128];
static double wn[128], fn[128];
static float wnf[128]; /* wn in float, for the vectorised fast path */
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;

/* The tables of Marsaglia and Tsang's zigset for 128 layers. */
static void zig_init(void)
{
    const double m1 = 2147483648.0;
    double dn = ZIG_R, tn = dn, q = ZIG_V / exp(-0.5 * dn * dn);
    kn[0] = (uint32_t)((dn / q) * m1);
    kn[1] = 0;
    wn[0] = q / m1;
    wn[127] = dn / m1;
    fn[0] = 1.0;
    fn[127] = exp(-0.5 * dn * dn);
    for (int i = 126; i >= 1; i--) {
        dn = sqrt(-2.0 * log(ZIG_V / dn + exp(-0.5 * dn * dn)));
        kn[i + 1] = (uint32_t)((dn / tn) * m1);
        tn = dn;
        fn[i] = exp(-0.5 * dn * dn);
        wn[i] = dn / m1;
    }
    for (int i = 0; i < 128; i++)
        wnf[i] = (float)wn[i];
}

/* Uniform in (0, 1) from the scalar words. */
static inline double uni(ohm_bulk_t *b)
{
    return ((double)(ohm_bulk_next(b) >> 11) + 0.5) * 0x1.0p-53;
}

/* The rare draws: the wedges of layers 1..127 and the tail of layer 0. */
static double zig_slow(ohm_bulk_t *b, int32_t hz, unsigned iz)
{
    for (;;) {
        double x = hz * wn[iz];
        if (iz == 0) {
            double y;
            do {
                x = -log(uni(b)) / ZIG_R;
                y = -log(uni(b));
            } while (y + y < x * x);
            return hz > 0 ? ZIG_R + x : -ZIG_R - x;
        }
        if (fn[iz] + uni(b) * (fn[iz - 1] - fn[iz]) < exp(-0.5 * x * x)) return x;
        uint32_t w = (uint32_t)ohm_bulk_next(b);
        hz = (int32_t)(w & 0xffffff80u);
        iz = w & 127u;
        uint32_t ahz = (uint32_t)(hz < 0 ? -(int64_t)hz : hz);
        if (ahz < kn[iz]) return hz * wn[iz];
    }
}

/* The fast path of 32 draws from 32-bit words (two per generator word): the
 * layer from the low 7 bits, the value from the other 25 (sign and 24 bits of
 * magnitude, as many as a float holds), so the two never share a bit. A draw
 * inside its layer's rectangle is the normal itself; the others (about 1.2 %)
 * are marked NAN for zig_slow. Written without branches so that it vectorises;
 * returns the number marked. */
static inline uint32_t zig_fast32(const uint32_t *restrict u, float *restrict out)
{
    uint32_t bad = 0;
    for (int k = 0; k < 32; k++) {
        int32_t hz = (int32_t)(u[k] & 0xffffff80u);
        uint32_t iz = u[k] & 127u, sg = (uint32_t)(hz >> 31);
        uint32_t ahz = ((uint32_t)hz ^ sg) - sg;
        float x = (float)hz * wnf[iz];
        uint32_t ok = 0u - (uint32_t)(ahz < kn[iz]), xb;
        memcpy(&xb, &x, sizeof xb);
        xb = (xb & ok) | (0x7fc00000u & ~ok); /* a quiet NAN where rejected */
        memcpy(&out[k], &xb, sizeof xb);
        bad += ~ok & 1u;
    }
    return bad;
}

OHM_BULK_CLONES static void zig_fast(const uint32_t *restrict u, float *restrict out,
                                     uint32_t *restrict bad, size_t groups)
{
    for (size_t g = 0; g < groups; g++)
        bad[g] = zig_fast32(u + 32 * g, out + 32 * g);
}

void ohm_bulk_normal(ohm_bulk_t *b, float *out, size_t n)
{
    pthread_once(&zig_once, zig_init);
    uint64_t w[128];
    float z[256];
    uint32_t bad[8];
    const uint32_t *u = (const uint32_t *)w;
    for (size_t i = 0; i < n;) {
        size_t m = n - i < 256 ? n - i : 256;
        fill_words(b->s, w, 128);
        zig_fast(u, z, bad, 8);
        for (int g = 0; g < 8; g++)
            for (int k = 32 * g; bad[g] && k < 32 * g + 32; k++)
                if (isnan(z[k])) {
                    z[k] = (float)zig_slow(b, (int32_t)(u[k] & 0xffffff80u), u[k] & 127u);
                    bad[g]--;
                }
        memcpy(out + i, z, m * sizeof(float));
        i += m;
    }
}
