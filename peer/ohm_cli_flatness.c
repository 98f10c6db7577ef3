/* ohmpeer flatness: flatness measures of a trained model, as one JSON object.
 *
 *   ohmpeer flatness --checkpoint F [--checkpoint F2 ...] [--config C] [--set s.k=v]...
 *                    [--samples N] [--probes P] [--iters T] [--radii r1,r2,...] [--draws D]
 *                    [--tol E] [--seed S] [--peer-probes P2] [--peer-iters T2]
 *
 * Configuration: the first checkpoint's "config" section, then --config, then
 * every --set. Data: the run's whole training set (no partition), of which a
 * uniform subset of N examples without replacement, drawn from the seed (so
 * every model of one invocation, and every invocation with the same seed, sees
 * the same examples); all of it when N is at least its size.
 *
 * Several checkpoints are the peers of one decentralised run: those whose meta
 * says byzantine are left out (listed under "excluded"); the measures are taken
 * at the average of the others' parameters, with the consensus distance
 * (1/H) sum_i ||w_i - w_mean||^2 and its square root, and a "peers" array with
 * each honest model's loss, gradient norm, trace and top eigenvalue at cheaper
 * settings (--peer-probes, default max(2, P/4); --peer-iters, default
 * max(1, T/3); no sharpness). Probes and perturbation directions come from the
 * same seed for every model, so differences between peers are not probe noise.
 *
 * "sharpness" is the value at the middle radius of the list (for an even count
 * the upper of the two middle ones); every radius is in "sharpness_by_radius". */
#include "ohm_cli.h"

#include "ohm_ckpt.h"
#include "ohm_config.h"
#include "ohm_data.h"
#include "ohm_dense.h"
#include "ohm_error.h"
#include "ohm_flatness.h"
#include "ohm_hvp.h"
#include "ohm_model.h"
#include "ohm_model_spec.h"
#include "ohm_plan.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: ohmpeer flatness --checkpoint FILE [--checkpoint FILE]... [--config FILE]\n"
               "         [--set section.key=value]... [--samples N] [--probes P] [--iters T]\n"
               "         [--tol E] [--radii R1,R2,...] [--draws D] [--seed S]\n"
               "         [--peer-probes P2] [--peer-iters T2]\n"
               "\n"
               "Flatness of the model in the checkpoint(s) on the run's training data, printed\n"
               "as one JSON object:\n"
               "  hessian_trace, hessian_trace_se  Hutchinson, P Rademacher probes (20)\n"
               "  top_eigenvalue                   Lanczos, at most T products (30), stopped\n"
               "                                   at a relative change below E (1e-4)\n"
               "  sharpness, sharpness_by_radius   mean loss increase under antithetic Gaussian\n"
               "                                   perturbations of norm rho ||w||, D draws (10)\n"
               "                                   per radius (0.01,0.05,0.1); the middle radius\n"
               "                                   is the one reported as sharpness\n"
               "  train_loss, grad_norm            at the model\n"
               "on a seeded subset of N training examples (10000; seed: train.seed).\n"
               "Configuration: the first checkpoint's, then --config, then --set.\n"
               "Several checkpoints are the peers of one run: byzantine ones are excluded, the\n"
               "measures are taken at the honest average, with consensus_distance and per-peer\n"
               "values at P2 probes (max(2,P/4)) and T2 products (max(1,T/3)).\n"
               "Exit status: 0 done, 1 error, 2 usage.\n");
}

typedef struct {
    const char *path;
    long peer;  /* from meta; -1 unknown */
    long round; /* from meta; -1 unknown */
    int byzantine;
    int has_fp;
    uint64_t fp;
    float *params; /* honest ones only */
} model_in_t;

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* "0.01,0.05,0.1" into r[max]; the count, or -1 on a bad or non-positive value. */
static int parse_radii(const char *s, double *r, int max)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || !(v > 0) || !isfinite(v) || n == max) return -1;
        r[n++] = v;
        if (*end == ',' && end[1])
            p = end + 1;
        else if (*end)
            return -1;
        else
            p = end;
    }
    return n;
}

/* Pointer to the value of "key" in a one-line JSON object, or NULL. */
static const char *json_value(const char *obj, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(obj, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static void parse_meta(const ohm_ckpt_t *ck, model_in_t *m)
{
    m->peer = m->round = -1;
    const void *d;
    size_t n;
    if (ohm_ckpt_get(ck, "meta", &d, &n)) return;
    char *s = malloc(n + 1);
    if (!s) return;
    memcpy(s, d, n);
    s[n] = 0;
    const char *v;
    if ((v = json_value(s, "peer"))) m->peer = strtol(v, NULL, 10);
    if ((v = json_value(s, "round"))) m->round = strtol(v, NULL, 10);
    if ((v = json_value(s, "byzantine"))) m->byzantine = strncmp(v, "true", 4) == 0;
    if ((v = json_value(s, "fingerprint")) && *v == '"')
        m->has_fp = sscanf(v + 1, "%16" SCNx64, &m->fp) == 1;
    free(s);
}

/* JSON string with the characters JSON needs escaped. */
static void put_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* A number, or null where JSON has none (NaN, infinities). */
static void put_num(FILE *f, const char *key, double v, int comma)
{
    fprintf(f, "\"%s\":", key);
    if (isfinite(v))
        fprintf(f, "%.10g", v);
    else
        fputs("null", f);
    if (comma) fputc(',', f);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Reads one checkpoint's meta and (honest ones) params, checking the shape. */
static int load_model(const ohm_ckpt_t *ck, model_in_t *m, size_t P, uint64_t fp, const char *shape)
{
    parse_meta(ck, m);
    if (m->byzantine) return OHM_OK;
    if (m->has_fp && m->fp != fp)
        return ohm_error_set(
            OHM_ESHAPE,
            "%s: its model differs from the configuration's %s (fingerprint %016" PRIx64
            ", expected %016" PRIx64 ")",
            m->path, shape, m->fp, fp);
    const void *d;
    size_t n;
    if (ohm_ckpt_get(ck, "params", &d, &n))
        return ohm_error_set(OHM_EFORMAT, "%s: no \"params\" section", m->path);
    if (n != sizeof(float) * P)
        return ohm_error_set(OHM_ESHAPE,
                             "%s: %zu parameters, but the configuration's model has %zu", m->path,
                             n / sizeof(float), P);
    m->params = malloc(n ? n : 1);
    if (!m->params) return ohm_error_set(OHM_ENOMEM, "%s: parameters", m->path);
    const unsigned char *b = d;
    for (size_t i = 0; i < P; i++) { /* float32 little-endian, whatever the host's order */
        uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 |
                     (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24;
        memcpy(&m->params[i], &u, sizeof u);
    }
    for (size_t i = 0; i < P; i++)
        if (!isfinite(m->params[i]))
            return ohm_error_set(OHM_ENONFINITE, "%s: parameter %zu is not finite", m->path, i);
    return OHM_OK;
}

/* Seeded uniform subset of `want` of `total` indices (caller sorts), or all of them. */
static uint32_t *pick_subset(size_t total, size_t want, uint64_t seed, size_t *n)
{
    uint32_t *idx = malloc(sizeof(uint32_t) * (total ? total : 1));
    if (!idx) return NULL;
    for (size_t i = 0; i < total; i++)
        idx[i] = (uint32_t)i;
    if (want >= total) {
        *n = total;
        return idx;
    }
    ohm_rng_t r;
    ohm_rng_seed(&r, seed, 0, OHM_STREAM_FLAT);
    for (size_t i = 0; i < want; i++) { /* partial Fisher-Yates */
        size_t j = i + ohm_rng_below(&r, (uint32_t)(total - i));
        uint32_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    *n = want;
    return idx;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int ohm_cli_flatness(int argc, char **argv)
{
    double t_start = now_s();
    const char **ckpts = calloc((size_t)argc + 1, sizeof *ckpts);
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    int nck = 0, nsets = 0, status = 2;
    const char *config = NULL;
    long samples = 10000, seed = -1, peer_probes = -1, peer_iters = -1;
    ohm_flat_opts_t o;
    ohm_flat_opts_default(&o);
    ohm_config_t *cfg = NULL;
    ohm_ckpt_t *first = NULL;
    ohm_data_t *data = NULL;
    ohm_batchbuf_t *bb = NULL;
    ohm_hvp_t *h = NULL;
    ohm_model_t *probe_model = NULL;
    model_in_t *models = NULL;
    uint32_t *idx = NULL;
    double *avg = NULL, *dist = NULL;
    ohm_flat_result_t *per = NULL;
    int rc = OHM_OK;
    if (!ckpts || !sets) {
        fprintf(stderr, "ohmpeer flatness: out of memory\n");
        status = 1;
        goto out;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        long v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            status = 0;
            goto out;
        } else if (!strcmp(a, "--checkpoint") && has) {
            ckpts[nck++] = argv[++i];
        } else if (!strcmp(a, "--config") && has) {
            config = argv[++i];
        } else if (!strcmp(a, "--set") && has) {
            sets[nsets++] = argv[++i];
        } else if (!strcmp(a, "--samples") && has) {
            if (parse_long(argv[++i], 1, 100000000L, &samples)) goto bad_value;
        } else if (!strcmp(a, "--probes") && has) {
            if (parse_long(argv[++i], 2, 100000L, &v)) goto bad_value;
            o.probes = (int)v;
        } else if (!strcmp(a, "--iters") && has) {
            if (parse_long(argv[++i], 1, 100000L, &v)) goto bad_value;
            o.iters = (int)v;
        } else if (!strcmp(a, "--tol") && has) {
            char *end;
            o.tol = strtod(argv[++i], &end);
            if (*end || !(o.tol >= 0) || !isfinite(o.tol)) goto bad_value;
        } else if (!strcmp(a, "--draws") && has) {
            if (parse_long(argv[++i], 2, 100000L, &v)) goto bad_value;
            o.draws = (int)v;
        } else if (!strcmp(a, "--radii") && has) {
            int k = parse_radii(argv[++i], o.radii, OHM_FLAT_MAX_RADII);
            if (k < 1) goto bad_value;
            o.nradii = k;
        } else if (!strcmp(a, "--seed") && has) {
            if (parse_long(argv[++i], 0, 0x7fffffffffffffffL, &seed)) goto bad_value;
        } else if (!strcmp(a, "--peer-probes") && has) {
            if (parse_long(argv[++i], 2, 100000L, &peer_probes)) goto bad_value;
        } else if (!strcmp(a, "--peer-iters") && has) {
            if (parse_long(argv[++i], 1, 100000L, &peer_iters)) goto bad_value;
        } else {
            fprintf(stderr, "ohmpeer flatness: unknown option or missing value: %s\n", a);
            usage(stderr);
            goto out;
        }
        continue;
    bad_value:
        fprintf(stderr, "ohmpeer flatness: bad value for %s: %s\n", a, argv[i]);
        goto out;
    }
    if (nck == 0) {
        fprintf(stderr, "ohmpeer flatness: at least one --checkpoint is needed\n");
        usage(stderr);
        goto out;
    }
    status = 1;
    ohm_dense_single_thread();

    /* Configuration: the run's own, then the file, then the overrides. */
    cfg = ohm_config_new();
    if (!cfg) {
        rc = ohm_error_set(OHM_ENOMEM, "configuration");
        goto fail;
    }
    if ((rc = ohm_ckpt_read(ckpts[0], &first))) goto fail;
    {
        const void *text;
        size_t len;
        char name[4200];
        snprintf(name, sizeof name, "%s[config]", ckpts[0]);
        if (ohm_ckpt_get(first, "config", &text, &len)) {
            rc = ohm_error_set(OHM_EFORMAT, "%s: no \"config\" section", ckpts[0]);
            goto fail;
        }
        if ((rc = ohm_config_load_string(cfg, text, len, name))) goto fail;
    }
    if (config && (rc = ohm_config_load(cfg, config))) goto fail;
    for (int i = 0; i < nsets; i++)
        if ((rc = ohm_config_set(cfg, sets[i], "--set"))) goto fail;
    if (seed < 0) seed = ohm_config_int(cfg, "train.seed");
    o.seed = (unsigned long long)seed;

    /* The model the configuration describes, and its training data. */
    if ((rc = ohm_data_open(cfg, 1, -1, &data))) goto fail;
    ohm_model_spec_t spec;
    if ((rc = ohm_model_spec_from_config(cfg, data, &spec))) goto fail;
    if ((rc = ohm_model_new(&spec, NULL, NULL, &probe_model))) goto fail;
    size_t P = ohm_model_nparams(probe_model);
    uint64_t fp = ohm_model_fingerprint(probe_model);
    ohm_model_destroy(&probe_model);
    char shape[600] = "model "; /* "model 784-128-10 with bias", for error messages */
    ohm_plan_describe(&spec, shape + 6, sizeof shape - 6);

    /* Every checkpoint: meta, shape, parameters. */
    models = calloc((size_t)nck, sizeof *models);
    if (!models) {
        rc = ohm_error_set(OHM_ENOMEM, "checkpoints");
        goto fail;
    }
    int honest = 0;
    for (int i = 0; i < nck; i++) {
        models[i].path = ckpts[i];
        ohm_ckpt_t *ck = first;
        if (i > 0 && (rc = ohm_ckpt_read(ckpts[i], &ck))) goto fail;
        rc = load_model(ck, &models[i], P, fp, shape);
        if (i > 0) ohm_ckpt_destroy(&ck);
        if (rc) goto fail;
        honest += !models[i].byzantine;
    }
    ohm_ckpt_destroy(&first);
    if (honest == 0) {
        rc = ohm_error_set(OHM_EINVAL, "every checkpoint given is of a byzantine peer");
        goto fail;
    }

    /* The honest average and how far the peers are from it. */
    avg = calloc(P ? P : 1, sizeof(double));
    per = calloc((size_t)nck, sizeof *per);
    if (!avg || !per) {
        rc = ohm_error_set(OHM_ENOMEM, "parameters");
        goto fail;
    }
    for (int i = 0; i < nck; i++)
        if (!models[i].byzantine)
            for (size_t j = 0; j < P; j++)
                avg[j] += models[i].params[j];
    for (size_t j = 0; j < P; j++)
        avg[j] /= honest;
    double consensus = 0.0;
    dist = calloc((size_t)nck, sizeof(double));
    if (!dist) {
        rc = ohm_error_set(OHM_ENOMEM, "distances");
        goto fail;
    }
    for (int i = 0; i < nck; i++) {
        if (models[i].byzantine) continue;
        double s = 0.0;
        for (size_t j = 0; j < P; j++) {
            double e = models[i].params[j] - avg[j];
            s += e * e;
        }
        dist[i] = sqrt(s);
        consensus += s / honest;
    }

    /* Data subset and the operator. */
    size_t total = ohm_data_train_size(data), n = 0;
    idx = pick_subset(total, (size_t)samples, (uint64_t)seed, &n);
    if (!idx || n == 0 || n > 0x7fffffff) {
        rc = idx ? ohm_error_set(OHM_EINVAL, "the training set is empty")
                 : ohm_error_set(OHM_ENOMEM, "subset");
        goto fail;
    }
    qsort(idx, n, sizeof *idx, cmp_u32);
    bb = ohm_batchbuf_new(data, (int)n);
    if (!bb) {
        rc = ohm_error_set(OHM_ENOMEM, "a batch of %zu examples", n);
        goto fail;
    }
    const ohm_batch_t *batch = ohm_data_train_batch(data, bb, idx, (int)n);
    if ((rc = ohm_hvp_new(&spec, batch, &h)) || (rc = ohm_hvp_set_params(h, avg))) {
        goto fail;
    }
    ohm_flat_result_t res;
    if ((rc = ohm_flatness_measure(h, &o, &res))) {
        goto fail;
    }
    ohm_flat_opts_t po = o;
    po.probes = peer_probes > 0 ? (int)peer_probes : (o.probes / 4 > 2 ? o.probes / 4 : 2);
    po.iters = peer_iters > 0 ? (int)peer_iters : (o.iters / 3 > 1 ? o.iters / 3 : 1);
    po.draws = 0;
    int with_peers = nck > 1;
    for (int i = 0; with_peers && i < nck; i++) {
        if (models[i].byzantine) continue;
        if ((rc = ohm_hvp_set_params_float(h, models[i].params)) ||
            (rc = ohm_flatness_measure(h, &po, &per[i]))) {
            ohm_error_set(rc, "%s: %s", models[i].path, ohm_error_detail());
            goto fail;
        }
    }

    /* One JSON object. */
    FILE *f = stdout;
    int mid = o.nradii / 2;
    fputc('{', f);
    fprintf(f, "\"checkpoints\":%d,\"models\":%d,\"params\":%zu,\"samples\":%zu,", nck, honest, P,
            n);
    put_num(f, "train_loss", res.loss, 1);
    if (spec.loss == OHM_LOSS_XENT) put_num(f, "train_acc", res.acc, 1);
    put_num(f, "grad_norm", res.grad_norm, 1);
    put_num(f, "param_norm", res.param_norm, 1);
    put_num(f, "hessian_trace", res.trace, 1);
    put_num(f, "hessian_trace_se", res.trace_se, 1);
    fprintf(f, "\"hessian_probes\":%d,", o.probes);
    put_num(f, "top_eigenvalue", res.top_eig, 1);
    fprintf(f, "\"top_eigenvalue_iters\":%d,", res.eig_iters);
    put_num(f, "sharpness", res.sharp[mid], 1);
    put_num(f, "sharpness_se", res.sharp_se[mid], 1);
    put_num(f, "sharpness_radius", o.radii[mid], 1);
    fprintf(f, "\"sharpness_draws\":%d,\"sharpness_by_radius\":[", o.draws);
    for (int k = 0; k < o.nradii; k++) {
        fputc('{', f);
        put_num(f, "radius", o.radii[k], 1);
        put_num(f, "mean", res.sharp[k], 1);
        put_num(f, "se", res.sharp_se[k], 0);
        fputs(k + 1 < o.nradii ? "}," : "}", f);
    }
    fputs("],", f);
    put_num(f, "consensus_distance", consensus, 1);
    put_num(f, "consensus_distance_rms", sqrt(consensus), 1);
    fputs("\"excluded\":[", f);
    for (int i = 0, c = 0; i < nck; i++) {
        if (!models[i].byzantine) continue;
        fprintf(f, "%s{\"file\":", c++ ? "," : "");
        put_str(f, models[i].path);
        fprintf(f, ",\"peer\":%ld,\"reason\":\"byzantine\"}", models[i].peer);
    }
    fputs("],\"peers\":[", f);
    for (int i = 0, c = 0; with_peers && i < nck; i++) {
        if (models[i].byzantine) continue;
        const ohm_flat_result_t *r = &per[i];
        fprintf(f, "%s{\"file\":", c++ ? "," : "");
        put_str(f, models[i].path);
        fprintf(f, ",\"peer\":%ld,\"round\":%ld,", models[i].peer, models[i].round);
        put_num(f, "train_loss", r->loss, 1);
        put_num(f, "grad_norm", r->grad_norm, 1);
        put_num(f, "hessian_trace", r->trace, 1);
        put_num(f, "hessian_trace_se", r->trace_se, 1);
        put_num(f, "top_eigenvalue", r->top_eig, 1);
        put_num(f, "distance_to_mean", dist[i], 0);
        fputc('}', f);
    }
    fprintf(f, "],\"peer_probes\":%d,\"peer_iters\":%d,\"seed\":%ld,", with_peers ? po.probes : 0,
            with_peers ? po.iters : 0, seed);
    fputs("\"seconds_by_measure\":{", f);
    put_num(f, "gradient", res.t_grad, 1);
    put_num(f, "trace", res.t_trace, 1);
    put_num(f, "top_eigenvalue", res.t_eig, 1);
    put_num(f, "sharpness", res.t_sharp, 0);
    fputs("},", f);
    put_num(f, "seconds", now_s() - t_start, 0);
    fputs("}\n", f);
    status = fflush(f) == 0 && !ferror(f) ? 0 : 1;
    if (status) fprintf(stderr, "ohmpeer flatness: writing the result failed\n");
    goto out;
fail:
    fprintf(stderr, "ohmpeer flatness: %s: %s\n", ohm_strerror(rc),
            *ohm_error_detail() ? ohm_error_detail() : "failed");
    status = 1;
out:
    for (int i = 0; models && i < nck; i++)
        free(models[i].params);
    free(models);
    free(per);
    free(avg);
    free(dist);
    free(idx);
    ohm_hvp_destroy(&h);
    ohm_batchbuf_destroy(&bb);
    ohm_data_destroy(&data);
    ohm_model_destroy(&probe_model);
    ohm_ckpt_destroy(&first);
    ohm_config_destroy(&cfg);
    free(ckpts);
    free(sets);
    return status;
}
