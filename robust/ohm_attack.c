/* ohm_attack: Byzantine attacks (docs/robust.md, section "Attacks"); interface in ohm_attack.h.
 *
 * Conventions:
 * - "honest mean" is the plain mean of the honest vectors in the view (what
 *   the Byzantine peer received this round from honest neighbours), summed in
 *   double. When the view holds no honest vector, attacks that need one fall
 *   back to the target's own vector, and to zeros when that is missing too
 *   (documented per attack below).
 * - Noise: xoshiro256** seeded through splitmix64 from (seed, round,
 *   target_id), normals by Box-Muller; the same view gives the same vector. */
#include "ohm_attack.h"
#include "ohm_xoshiro.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const attack_names[OHM_ATTACK_COUNT] = {
    "gaussian", "signflip", "isolation", "duplicate", "alie",  "ipm",         "labelflip",
    "zero",     "crash",    "nan",       "roundlie",  "stale", "hello-flood", "mute-then-burst"};

/* ------------------------------------------------------------------- rng */

typedef struct {
    uint64_t s[4];
} rng_t;

static uint64_t rng_next(rng_t *r)
{
    return ohm_xoshiro_next(r->s);
}

/* One stream per (seed, round, target): the three are mixed through
 * splitmix64 so that neighbouring rounds or targets give unrelated streams. */
static void rng_seed(rng_t *r, uint64_t seed, uint32_t round, uint32_t target)
{
    uint64_t x = seed;
    uint64_t a = ohm_splitmix64(&x);
    x = a ^ (((uint64_t)round << 32) | target);
    for (int i = 0; i < 4; i++)
        r->s[i] = ohm_splitmix64(&x);
}

/* Uniform in (0, 1]: never 0, so log() below is finite. */
static double rng_unit(rng_t *r)
{
    return (double)((rng_next(r) >> 11) + 1) * 0x1.0p-53;
}

/* ---------------------------------------------------------------- parsing */

void ohm_attack_defaults(ohm_attack_params_t *p, ohm_attack_kind_t kind)
{
    assert(p);
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->sigma = 30.0;
    p->eps = 0.1;
    p->z = 0.0;
    p->z_set = 0;
    p->dup = 0;
    p->view = OHM_ATTACK_VIEW_SELF;
    p->seed = 0;
    p->lag = 10;
    p->count = 100;
    p->mute = 3;
    p->burst = 8;
}

const char *ohm_attack_name(ohm_attack_kind_t kind)
{
    return (unsigned)kind < OHM_ATTACK_COUNT ? attack_names[kind] : "unknown";
}

int ohm_attack_from_name(const char *name)
{
    if (!name) return -1;
    for (int i = 0; i < OHM_ATTACK_COUNT; i++)
        if (strcmp(name, attack_names[i]) == 0) return i;
    return -1;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return OHM_ATTACK_EARGS;
}

/* The keys each attack takes (a key that would be ignored is an error). */
static const char *keys_of(ohm_attack_kind_t k)
{
    switch (k) {
    case OHM_ATTACK_GAUSSIAN:
        return "sigma, seed, view";
    case OHM_ATTACK_SIGNFLIP:
    case OHM_ATTACK_ISOLATION:
        return "view";
    case OHM_ATTACK_ALIE:
        return "z, view";
    case OHM_ATTACK_IPM:
        return "eps, view";
    case OHM_ATTACK_DUPLICATE:
        return "dup, view";
    case OHM_ATTACK_ROUNDLIE:
        return "shift, nan";
    case OHM_ATTACK_STALE:
        return "lag, restamp";
    case OHM_ATTACK_HELLO_FLOOD:
        return "count";
    case OHM_ATTACK_MUTE_BURST:
        return "mute, burst";
    default:
        return "";
    }
}

static int takes_key(ohm_attack_kind_t k, const char *key)
{
    const char *list = keys_of(k);
    size_t n = strlen(key);
    for (const char *s = list; (s = strstr(s, key)) != NULL; s += n)
        if ((s == list || s[-1] == ' ') && (s[n] == ',' || s[n] == '\0')) return 1;
    return 0;
}

/* Integer keys of the control-plane attacks and their bounds. */
static const struct {
    const char *key;
    long long lo, hi;
} control_keys[] = {
    {"shift", -4000000000LL, 4000000000LL},
    {"nan", 0, 1},
    {"lag", 1, 1000},
    {"restamp", 0, 1},
    {"count", 1, 100000},
    {"mute", 0, 1000000},
    {"burst", 0, 1000},
};

static int control_key(const char *key)
{
    for (size_t i = 0; i < sizeof control_keys / sizeof control_keys[0]; i++)
        if (strcmp(key, control_keys[i].key) == 0) return (int)i + 1;
    return 0;
}

static int parse_control(ohm_attack_params_t *q, const char *key, const char *val, char *err,
                         size_t errlen)
{
    int k = control_key(key) - 1;
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (*end || errno || v < control_keys[k].lo || v > control_keys[k].hi)
        return fail(err, errlen, "attack '%s': bad %s '%s' (an integer in %lld..%lld)",
                    attack_names[q->kind], key, val, control_keys[k].lo, control_keys[k].hi);
    if (!strcmp(key, "shift")) {
        q->shift = v;
        q->shift_set = 1;
    } else if (!strcmp(key, "nan")) {
        q->nan = (int)v;
    } else if (!strcmp(key, "lag")) {
        q->lag = (int)v;
    } else if (!strcmp(key, "restamp")) {
        q->restamp = (int)v;
    } else if (!strcmp(key, "count")) {
        q->count = (int)v;
    } else if (!strcmp(key, "mute")) {
        q->mute = (int)v;
    } else {
        q->burst = (int)v;
    }
    return OHM_ATTACK_OK;
}

int ohm_attack_parse(const char *spec, ohm_attack_params_t *p, char *err, size_t errlen)
{
    if (!spec || !p) return fail(err, errlen, "attack: no spec");
    char buf[256];
    if (strlen(spec) >= sizeof buf) return fail(err, errlen, "attack spec too long");
    strcpy(buf, spec);
    char *opts = strchr(buf, ':');
    if (opts) *opts++ = '\0';
    int kind = ohm_attack_from_name(buf);
    if (kind < 0)
        return fail(err, errlen,
                    "unknown attack '%s' (known: gaussian, signflip, isolation, duplicate, alie, "
                    "ipm, labelflip, zero, crash, nan, roundlie, stale, hello-flood, "
                    "mute-then-burst)",
                    buf);
    ohm_attack_params_t q;
    ohm_attack_defaults(&q, (ohm_attack_kind_t)kind);
    const char *name = attack_names[kind];
    if (opts && *opts == '\0') return fail(err, errlen, "attack '%s': empty option list", name);
    for (char *save = NULL, *kv = opts ? strtok_r(opts, ",", &save) : NULL; kv;
         kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv || eq[1] == '\0')
            return fail(err, errlen, "attack '%s': option '%s' is not key=value", name, kv);
        *eq = '\0';
        const char *key = kv, *val = eq + 1;
        if (strcmp(key, "sigma") && strcmp(key, "eps") && strcmp(key, "z") && strcmp(key, "dup") &&
            strcmp(key, "seed") && strcmp(key, "view") && !control_key(key))
            return fail(
                err, errlen,
                "attack '%s': unknown key '%s' (known: sigma, eps, z, dup, seed, view, shift, "
                "nan, lag, restamp, count, mute, burst)",
                name, key);
        if (!takes_key(q.kind, key))
            return fail(err, errlen, "attack '%s': takes no key '%s' (its keys: %s)", name, key,
                        *keys_of(q.kind) ? keys_of(q.kind) : "none");
        char *end;
        errno = 0;
        if (control_key(key)) {
            if (parse_control(&q, key, val, err, errlen)) return OHM_ATTACK_EARGS;
        } else if (strcmp(key, "view") == 0) {
            if (strcmp(val, "self") == 0)
                q.view = OHM_ATTACK_VIEW_SELF;
            else if (strcmp(val, "target") == 0)
                q.view = OHM_ATTACK_VIEW_TARGET;
            else
                return fail(err, errlen, "attack '%s': view=%s (want self or target)", name, val);
        } else if (strcmp(key, "dup") == 0 || strcmp(key, "seed") == 0) {
            if (*val == '-')
                return fail(err, errlen, "attack '%s': %s=%s is negative", name, key, val);
            unsigned long long u = strtoull(val, &end, 0);
            if (*end || errno || (key[0] == 'd' && u > 1000000))
                return fail(err, errlen, "attack '%s': bad %s '%s'", name, key, val);
            if (key[0] == 'd')
                q.dup = (int)u;
            else
                q.seed = u;
        } else {
            double v = strtod(val, &end);
            if (*end || errno || !isfinite(v))
                return fail(err, errlen, "attack '%s': bad %s '%s' (want a finite number)", name,
                            key, val);
            if (strcmp(key, "sigma") == 0) {
                if (v < 0) return fail(err, errlen, "attack '%s': sigma=%s < 0", name, val);
                q.sigma = v;
            } else if (strcmp(key, "eps") == 0) {
                q.eps = v;
            } else {
                q.z = v;
                q.z_set = 1;
            }
        }
    }
    *p = q;
    return OHM_ATTACK_OK;
}

int ohm_attack_sends(const ohm_attack_params_t *p)
{
    return !p || p->kind != OHM_ATTACK_CRASH;
}

int ohm_attack_flips_labels(const ohm_attack_params_t *p)
{
    return p && p->kind == OHM_ATTACK_LABELFLIP;
}

int ohm_attack_flip_label(int y, int classes)
{
    return y >= 0 && y < classes ? classes - 1 - y : y;
}

/* ------------------------------------------------------------ statistics */

/* Acklam's rational approximation of the normal quantile (relative error
 * about 1e-9), then one Halley step on erfc, which brings it to the limit of
 * double precision. Coefficients are those of the published algorithm. */
double ohm_attack_norm_ppf(double p)
{
    static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02,
                                -2.759285104469687e+02, 1.383577518672690e+02,
                                -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02,
                                -1.556989798598866e+02, 6.680131188771972e+01,
                                -1.328068155288572e+01};
    static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                -2.400758277161838e+00, -2.549732539343734e+00,
                                4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                3.754408661907416e+00};
    const double plow = 0.02425, phigh = 1 - plow;
    if (!(p > 0 && p < 1)) return NAN;
    double x;
    if (p < plow) {
        double q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p <= phigh) {
        double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    } else {
        double q = sqrt(-2 * log1p(-p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    }
    double e = 0.5 * erfc(-x / sqrt(2.0)) - p;
    double u = e * sqrt(2 * M_PI) * exp(x * x / 2);
    return x - u / (1 + x * u / 2);
}

double ohm_attack_alie_z(int n, int f)
{
    if (n <= 0) return 0.0;
    int s = n / 2 + 1 - f; /* floor(n/2 + 1) - f */
    double q = (double)(n - s) / n;
    return q > 0 && q < 1 ? ohm_attack_norm_ppf(q) : 0.0;
}

double ohm_attack_alie_z_paper(int N, int B)
{
    if (N <= 0) return 0.0;
    int s = (N + 1) / 2 - B; /* floor((N + 1)/2) - B */
    double q = (double)(N - s) / N;
    return q > 0 && q < 1 ? ohm_attack_norm_ppf(q) : 0.0;
}

/* ---------------------------------------------------------------- crafting */

/* out = mean of the honest vectors (n >= 1). */
static void honest_mean(const ohm_attack_view_t *v, size_t d, float *out)
{
    double inv = 1.0 / v->n_honest;
    for (size_t c = 0; c < d; c++) {
        double s = 0;
        for (int i = 0; i < v->n_honest; i++)
            s += v->honest[i][c];
        out[c] = (float)(s * inv);
    }
}

/* The honest mean, or the target's vector, or zeros (the documented fallback). */
static void base_vector(const ohm_attack_view_t *v, size_t d, float *out)
{
    if (v->n_honest > 0)
        honest_mean(v, d, out);
    else if (v->target)
        memcpy(out, v->target, sizeof(float) * d);
    else
        memset(out, 0, sizeof(float) * d);
}

/* Isolation against the target's own combination (the IOS authors' exact
 * formula): the target combines a_tt x_t + sum_j a_tj x_j + wb v over its
 * honest neighbours j and Byzantine weight wb, so
 *   v = ((1 - a_tt) x_t - sum_j a_tj x_j) / wb
 * makes its combination x_t. Honest neighbours the Byzantine peer did not
 * observe (weight h - sum of honest_w) are approximated by the weighted mean
 * of the observed ones; without any, by x_t; a missing x_t by that mean. */
static void isolation_target(const ohm_attack_view_t *v, size_t d, float *out)
{
    double sw = 0;
    for (int i = 0; i < v->n_honest; i++)
        sw += v->honest_w[i];
    double miss = v->h - sw;
    if (miss < 0) miss = 0; /* rounding of weights that sum to h */
    if (!v->target && !(sw > 0)) {
        memset(out, 0, sizeof(float) * d);
        return;
    }
    for (size_t c = 0; c < d; c++) {
        double s = 0;
        for (int i = 0; i < v->n_honest; i++)
            s += v->honest_w[i] * v->honest[i][c];
        double mean = sw > 0 ? s / sw : v->target[c];
        double xt = v->target ? v->target[c] : mean;
        out[c] = (float)(((1.0 - v->a_tt) * xt - s - miss * mean) / v->wb);
    }
}

int ohm_attack_craft(const ohm_attack_params_t *p, const ohm_attack_view_t *v, size_t d, float *out)
{
    if (!p || !v || (d > 0 && !out) || v->n_honest < 0 || (v->n_honest > 0 && !v->honest))
        return OHM_ATTACK_EARGS;
    for (int i = 0; i < v->n_honest; i++)
        if (!v->honest[i]) return OHM_ATTACK_EARGS;
    if (p->kind == OHM_ATTACK_ISOLATION && (!(v->wb > 0) || !isfinite(v->wb)))
        return OHM_ATTACK_EARGS;
    if (p->kind == OHM_ATTACK_ISOLATION && p->view == OHM_ATTACK_VIEW_TARGET && v->n_honest > 0 &&
        !v->honest_w)
        return OHM_ATTACK_EARGS;
    if (p->kind == OHM_ATTACK_LABELFLIP && !v->own) return OHM_ATTACK_EARGS;
    if (d == 0) return OHM_ATTACK_OK;
    switch (p->kind) {
    case OHM_ATTACK_GAUSSIAN: {
        /* honest mean + sigma N(0, I); fallback base: target, else zeros */
        base_vector(v, d, out);
        rng_t r;
        rng_seed(&r, p->seed, v->round, v->target_id);
        for (size_t c = 0; c < d; c += 2) {
            double rad = sqrt(-2.0 * log(rng_unit(&r))), ang = 2 * M_PI * rng_unit(&r);
            out[c] += (float)(p->sigma * rad * cos(ang));
            if (c + 1 < d) out[c + 1] += (float)(p->sigma * rad * sin(ang));
        }
        return OHM_ATTACK_OK;
    }
    case OHM_ATTACK_SIGNFLIP: {
        /* -mean(honest U target); zeros when both are missing */
        int n = v->n_honest + (v->target != NULL);
        for (size_t c = 0; c < d; c++) {
            double s = v->target ? v->target[c] : 0.0;
            for (int i = 0; i < v->n_honest; i++)
                s += v->honest[i][c];
            out[c] = n ? (float)(-s / n) : 0.0f;
        }
        return OHM_ATTACK_OK;
    }
    case OHM_ATTACK_ISOLATION: {
        if (p->view == OHM_ATTACK_VIEW_TARGET) {
            isolation_target(v, d, out);
            return OHM_ATTACK_OK;
        }
        /* The target combines a_tt x_t + (honest part) + wb v. The Byzantine
         * peer cannot see the target's other honest neighbours, so their part
         * is approximated by h * (mean of the honest vectors it observed); then
         * v = ((1 - a_tt) x_t - h mean)/wb makes the combination x_t exactly
         * when the approximation is (and a_tt + h + wb = 1). Without the
         * target's vector, x_t is approximated by the honest mean (v = mean);
         * without honest vectors the mean is approximated by x_t. */
        if (!v->target && v->n_honest == 0) {
            memset(out, 0, sizeof(float) * d);
            return OHM_ATTACK_OK;
        }
        if (v->n_honest > 0)
            honest_mean(v, d, out);
        else
            memcpy(out, v->target, sizeof(float) * d);
        const double a = (1.0 - v->a_tt) / v->wb, hb = v->h / v->wb;
        for (size_t c = 0; c < d; c++) {
            double xt = v->target ? v->target[c] : out[c];
            out[c] = (float)(a * xt - hb * out[c]);
        }
        return OHM_ATTACK_OK;
    }
    case OHM_ATTACK_DUPLICATE: {
        /* honest vector number dup (mod n_honest), or (view=target) one drawn
         * afresh for every round and target; fallback target, zeros */
        if (v->n_honest > 0 && p->view == OHM_ATTACK_VIEW_TARGET) {
            rng_t r;
            rng_seed(&r, p->seed, v->round, v->target_id);
            memcpy(out, v->honest[rng_next(&r) % (uint64_t)v->n_honest], sizeof(float) * d);
        } else if (v->n_honest > 0)
            memcpy(out, v->honest[p->dup % v->n_honest], sizeof(float) * d);
        else
            base_vector(v, d, out);
        return OHM_ATTACK_OK;
    }
    case OHM_ATTACK_ALIE: {
        /* per coordinate mu + z sigma over the honest vectors (population
         * standard deviation; view=target: the unbiased one and the IOS
         * paper's z over the target's N = n - 1 neighbours); fallback target,
         * zeros */
        if (v->n_honest == 0) {
            base_vector(v, d, out);
            return OHM_ATTACK_OK;
        }
        int tv = p->view == OHM_ATTACK_VIEW_TARGET;
        double z = p->z_set ? p->z : tv ? ohm_attack_alie_z_paper(v->n - 1, v->f)
                                        : ohm_attack_alie_z(v->n, v->f);
        double inv = 1.0 / v->n_honest;
        /* unbiased: sum / (n - 1), and 0 for a single vector */
        double vinv = !tv ? inv : v->n_honest > 1 ? 1.0 / (v->n_honest - 1) : 0.0;
        for (size_t c = 0; c < d; c++) {
            double s = 0, s2 = 0;
            for (int i = 0; i < v->n_honest; i++)
                s += v->honest[i][c];
            double mu = s * inv;
            for (int i = 0; i < v->n_honest; i++) {
                double t = v->honest[i][c] - mu;
                s2 += t * t;
            }
            out[c] = (float)(mu + z * sqrt(s2 * vinv));
        }
        return OHM_ATTACK_OK;
    }
    case OHM_ATTACK_IPM:
        /* -eps * honest mean; fallback -eps * target, zeros */
        base_vector(v, d, out);
        for (size_t c = 0; c < d; c++)
            out[c] = (float)(-p->eps * out[c]);
        return OHM_ATTACK_OK;
    case OHM_ATTACK_LABELFLIP:
        /* training-side: sends its own (flipped-label) model unchanged */
        memcpy(out, v->own, sizeof(float) * d);
        return OHM_ATTACK_OK;
    case OHM_ATTACK_ZERO:
        memset(out, 0, sizeof(float) * d);
        return OHM_ATTACK_OK;
    case OHM_ATTACK_CRASH:
        return OHM_ATTACK_OK; /* sends nothing: out untouched */
    case OHM_ATTACK_NAN:
        for (size_t c = 0; c < d; c++)
            out[c] = NAN;
        return OHM_ATTACK_OK;
    case OHM_ATTACK_ROUNDLIE:
    case OHM_ATTACK_STALE:
    case OHM_ATTACK_HELLO_FLOOD:
    case OHM_ATTACK_MUTE_BURST:
        /* an honest-looking value: the lies are in when and how it is sent */
        base_vector(v, d, out);
        if (p->nan)
            for (size_t c = 0; c < d; c++)
                out[c] = NAN;
        return OHM_ATTACK_OK;
    default:
        return OHM_ATTACK_EARGS;
    }
}

/* ------------------------------------------------------------ control plane */

void ohm_attack_plan(const ohm_attack_params_t *p, uint32_t round, uint32_t rounds,
                     ohm_attack_plan_t *out)
{
    assert(p && out);
    *out = (ohm_attack_plan_t){.models = 1, .stamp = round};
    switch (p->kind) {
    case OHM_ATTACK_CRASH:
        out->models = 0;
        break;
    case OHM_ATTACK_ROUNDLIE: {
        int64_t s = p->shift_set ? (int64_t)round + p->shift
                                 : ((int64_t)rounds - 10 > (int64_t)round + 2 ? (int64_t)rounds - 10
                                                                              : (int64_t)round + 2);
        out->stamp = s < 0 ? 0 : s > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)s;
        break;
    }
    case OHM_ATTACK_STALE:
        if (round >= (uint32_t)p->lag) {
            out->replay = 1;
            out->replay_round = round - (uint32_t)p->lag;
            out->stamp = p->restamp ? round : out->replay_round;
        }
        break;
    case OHM_ATTACK_HELLO_FLOOD:
        out->hellos = p->count;
        break;
    case OHM_ATTACK_MUTE_BURST:
        if (round % (uint32_t)(p->mute + 1) < (uint32_t)p->mute)
            out->models = 0;
        else
            out->models = 1 + p->burst;
        break;
    default:
        break;
    }
}

uint32_t ohm_attack_hello_stamp(const ohm_attack_params_t *p, uint32_t round, int k)
{
    rng_t r;
    rng_seed(&r, p->seed ^ 0x68656c6c6fULL, round, (uint32_t)k);
    return (uint32_t)(rng_next(&r) % ((uint64_t)round + 1));
}
