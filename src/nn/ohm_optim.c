/* ohm_optim: momentum and SAGA steps for digital models; see ohm_optim.h. */
#include "ohm_optim.h"

#include "ohm_error.h"
#include "ohm_rng.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The fixed batches' permutation and draws: a stream of the batch purpose in a
 * slot no epoch sampler uses (those take (seed, peer, epoch << 32 | BATCH)). */
#define SLOT_FIXED (1ULL << 33)

struct ohm_optim {
    ohm_optim_params_t p;
    size_t P;        /* model parameters */
    int K;           /* model outputs */
    int linear;      /* single layer: sample entries are output errors (K floats) */
    int kind;        /* OHM_SAGA_OFF, _SAMPLE or _BATCH */
    size_t entry;    /* floats per table entry */
    size_t entries;  /* table entries */
    float *table;    /* entries x entry */
    double *avg;     /* P: mean of the table's gradients, in double (a running sum) */
    float *dir, *mom, *w; /* P each */
    int has_mom;     /* the momentum holds a direction (first step: m = g) */
    float *err, *delta;   /* batch x K (linear sample table) */
    float *g1;            /* P: one example's or batch's gradient */
    uint32_t *perm;       /* batch table: the fixed permutation (n) */
    uint32_t *which;      /* batch table: the batch of each example (n) */
    size_t nbatches;
    ohm_rng_t rng;        /* batch table: the draws */
    float *gx;            /* saga_fill of the batch table: gathered rows */
    int32_t *gy;
    float *gt;
};

static size_t batches_of(const ohm_optim_params_t *p)
{
    return (p->n + (size_t)p->batch - 1) / (size_t)p->batch;
}

size_t ohm_optim_table_bytes(const ohm_model_t *m, const ohm_optim_params_t *p, int kind)
{
    size_t P = ohm_model_nparams(m);
    if (kind == OHM_SAGA_BATCH) return batches_of(p) * P * sizeof(float);
    if (kind != OHM_SAGA_SAMPLE) return 0;
    size_t entry = ohm_model_layers(m) == 1 ? (size_t)ohm_model_spec(m)->n_out : P;
    return p->n * entry * sizeof(float);
}

void ohm_optim_destroy(ohm_optim_t **po)
{
    if (!po || !*po) return;
    ohm_optim_t *o = *po;
    free(o->table);
    free(o->avg);
    free(o->dir);
    free(o->mom);
    free(o->w);
    free(o->err);
    free(o->delta);
    free(o->g1);
    free(o->perm);
    free(o->which);
    free(o->gx);
    free(o->gy);
    free(o->gt);
    free(o);
    *po = NULL;
}

static double mib(size_t bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

int ohm_optim_new(const ohm_optim_params_t *p, const ohm_model_t *m, ohm_optim_t **out)
{
    *out = NULL;
    if (!(p->momentum >= 0 && p->momentum < 1))
        return ohm_error_set(OHM_EINVAL, "optimizer.momentum = %g: not in [0, 1)", p->momentum);
    if (p->saga != OHM_SAGA_OFF && (p->n == 0 || p->batch < 1))
        return ohm_error_set(OHM_EINVAL, "SAGA needs local examples (%zu) and a batch (%d)", p->n,
                             p->batch);
    if (p->n > UINT32_MAX) return ohm_error_set(OHM_ETOOBIG, "SAGA over %zu examples", p->n);
    int kind = p->saga;
    if (kind == OHM_SAGA_AUTO)
        kind = ohm_optim_table_bytes(m, p, OHM_SAGA_SAMPLE) <= p->max_bytes ? OHM_SAGA_SAMPLE
                                                                           : OHM_SAGA_BATCH;
    if (kind != OHM_SAGA_OFF && ohm_optim_table_bytes(m, p, kind) > p->max_bytes)
        return ohm_error_set(OHM_ETOOBIG,
                             "SAGA %s table: %.1f MiB over optimizer.saga_max_mb = %.0f MiB (the "
                             "per-example table would take %.1f MiB, the per-batch one %.1f MiB)",
                             kind == OHM_SAGA_SAMPLE ? "per-example" : "per-batch",
                             mib(ohm_optim_table_bytes(m, p, kind)), mib(p->max_bytes),
                             mib(ohm_optim_table_bytes(m, p, OHM_SAGA_SAMPLE)),
                             mib(ohm_optim_table_bytes(m, p, OHM_SAGA_BATCH)));
    ohm_optim_t *o = calloc(1, sizeof *o);
    if (!o) return ohm_error_set(OHM_ENOMEM, "optimizer");
    o->p = *p;
    o->P = ohm_model_nparams(m);
    o->K = ohm_model_spec(m)->n_out;
    o->linear = ohm_model_layers(m) == 1;
    o->kind = kind;
    const size_t P = o->P, B = (size_t)(p->batch > 0 ? p->batch : 1);
    o->dir = malloc(sizeof(float) * P);
    o->mom = malloc(sizeof(float) * P);
    o->w = malloc(sizeof(float) * P);
    int ok = o->dir && o->mom && o->w;
    if (kind != OHM_SAGA_OFF) {
        o->entry = kind == OHM_SAGA_SAMPLE && o->linear ? (size_t)o->K : P;
        o->entries = kind == OHM_SAGA_SAMPLE ? p->n : batches_of(p);
        o->table = calloc(o->entries * o->entry, sizeof(float));
        o->avg = calloc(P, sizeof(double));
        o->g1 = malloc(sizeof(float) * P);
        ok = ok && o->table && o->avg && o->g1;
        if (kind == OHM_SAGA_SAMPLE && o->linear) {
            o->err = malloc(sizeof(float) * B * (size_t)o->K);
            o->delta = malloc(sizeof(float) * B * (size_t)o->K);
            ok = ok && o->err && o->delta;
        }
    }
    if (ok && kind == OHM_SAGA_BATCH) {
        o->nbatches = batches_of(p);
        o->perm = malloc(sizeof(uint32_t) * p->n);
        o->which = malloc(sizeof(uint32_t) * p->n);
        ok = o->perm && o->which;
        if (ok) {
            for (size_t i = 0; i < p->n; i++)
                o->perm[i] = (uint32_t)i;
            ohm_rng_seed(&o->rng, p->seed, SLOT_FIXED + p->peer, OHM_STREAM_BATCH);
            ohm_rng_shuffle(&o->rng, o->perm, p->n);
            for (size_t i = 0; i < p->n; i++)
                o->which[o->perm[i]] = (uint32_t)(i / B);
        }
    }
    if (!ok) {
        ohm_optim_destroy(&o);
        return ohm_error_set(OHM_ENOMEM, "optimizer state for %zu parameters", P);
    }
    *out = o;
    return OHM_OK;
}

int ohm_optim_from_config(const ohm_config_t *cfg, const ohm_model_t *m, const ohm_data_t *d,
                          uint32_t peer, ohm_optim_t **out)
{
    *out = NULL;
    double beta = ohm_config_double(cfg, "optimizer.momentum");
    int saga = strcmp(ohm_config_str(cfg, "optimizer.variance_reduction"), "saga") == 0;
    if (beta == 0 && !saga) return OHM_OK;
    const char *name = ohm_config_str(cfg, "optimizer.name");
    if (strcmp(name, "digital") != 0)
        return ohm_error_set(OHM_EINVAL,
                             "optimizer.momentum / optimizer.variance_reduction apply to the "
                             "digital optimizer only (optimizer.name = %s)",
                             name);
    /* A peer without training data (a Byzantine peer of label-honest) never steps. */
    if (ohm_data_train_size(d) == 0) return OHM_OK;
    const char *table = ohm_config_str(cfg, "optimizer.saga_table");
    ohm_optim_params_t p = {
        .momentum = beta,
        .saga = !saga                            ? OHM_SAGA_OFF
                : strcmp(table, "sample") == 0   ? OHM_SAGA_SAMPLE
                : strcmp(table, "batch") == 0    ? OHM_SAGA_BATCH
                                                 : OHM_SAGA_AUTO,
        .max_bytes = (size_t)ohm_config_int(cfg, "optimizer.saga_max_mb") << 20,
        .n = ohm_data_train_size(d),
        .batch = (int)ohm_config_int(cfg, "optimizer.batch"),
        .seed = (uint64_t)ohm_config_int(cfg, "train.seed"),
        .peer = peer,
    };
    return ohm_optim_new(&p, m, out);
}

int ohm_optim_table_kind(const ohm_optim_t *o)
{
    return o->kind;
}

size_t ohm_optim_bytes(const ohm_optim_t *o)
{
    return o->entries * o->entry * sizeof(float);
}

int ohm_optim_sample(ohm_optim_t *o, ohm_sampler_t *s, const ohm_data_t *d, uint32_t *idx,
                     int cap)
{
    if (!o || o->kind != OHM_SAGA_BATCH) {
        ohm_sampler_next(s, d, idx, cap);
        return cap;
    }
    size_t j = ohm_rng_below(&o->rng, (uint32_t)o->nbatches);
    size_t a = j * (size_t)o->p.batch, e = a + (size_t)o->p.batch;
    if (e > o->p.n) e = o->p.n;
    assert(e - a <= (size_t)cap);
    memcpy(idx, o->perm + a, sizeof(uint32_t) * (e - a));
    return (int)(e - a);
}

/* dir = avg + (1/nb) sum_i (g_i - T_i); avg += (1/n) sum_i (g_i - T_i);
 * T_i = g_i, over the batch's examples, with the table per example. */
static int saga_sample(ohm_optim_t *o, ohm_model_t *m, const ohm_batch_t *b, const uint32_t *idx,
                       double *loss)
{
    const size_t P = o->P, K = (size_t)o->K;
    const double inv_n = 1.0 / (double)o->p.n;
    for (size_t c = 0; c < P; c++)
        o->dir[c] = (float)o->avg[c];
    if (o->linear) {
        /* Entries are output errors: the gradient difference of example i is
         * (e_i - T_i) (x) [x_i, 1]; one pass for the direction, one for the
         * mean (accumulated in float, then added to the double sum). */
        assert(b->n <= o->p.batch);
        int rc = ohm_model_example_errors(m, b, o->err, loss);
        if (rc) return rc;
        for (int i = 0; i < b->n; i++) {
            float *t = o->table + (size_t)idx[i] * K;
            for (size_t k = 0; k < K; k++) {
                o->delta[(size_t)i * K + k] = o->err[(size_t)i * K + k] - t[k];
                t[k] = o->err[(size_t)i * K + k];
            }
        }
        if ((rc = ohm_model_outer_add(m, b, o->delta, 1.0f / (float)b->n, o->dir))) return rc;
        memset(o->g1, 0, sizeof(float) * P);
        if ((rc = ohm_model_outer_add(m, b, o->delta, 1.0f, o->g1))) return rc;
        for (size_t c = 0; c < P; c++)
            o->avg[c] += inv_n * o->g1[c];
        return OHM_OK;
    }
    /* Whole gradients, one example at a time. */
    double lsum = 0;
    for (int i = 0; i < b->n; i++) {
        ohm_batch_t one = {.n = 1,
                           .dim = b->dim,
                           .x = b->x + (size_t)i * b->dim,
                           .y = b->y ? b->y + i : NULL,
                           .t = b->t ? b->t + (size_t)i * b->tdim : NULL,
                           .tdim = b->tdim};
        double l;
        int rc = ohm_model_loss_grad(m, &one, &l, o->g1);
        if (rc) return rc;
        lsum += l;
        float *t = o->table + (size_t)idx[i] * P;
        const float inv_b = 1.0f / (float)b->n;
        for (size_t c = 0; c < P; c++) {
            float dlt = o->g1[c] - t[c];
            o->dir[c] += inv_b * dlt;
            o->avg[c] += inv_n * dlt;
            t[c] = o->g1[c];
        }
    }
    if (loss) *loss = lsum / b->n;
    return OHM_OK;
}

/* The batch table: batch j drawn uniformly among J, weight pi_j = |B_j|/n, so
 * dir = avg + (pi_j J)(g_j - T_j) is unbiased; avg += pi_j (g_j - T_j). */
static int saga_batch(ohm_optim_t *o, ohm_model_t *m, const ohm_batch_t *b, const uint32_t *idx,
                      double *loss)
{
    const size_t P = o->P, B = (size_t)o->p.batch;
    size_t j = o->which[idx[0]], a = j * B, e = a + B < o->p.n ? a + B : o->p.n;
    if ((size_t)b->n != e - a)
        return ohm_error_set(OHM_EINVAL, "SAGA batch table: a batch of %d examples is not batch "
                                         "%zu (%zu examples): draw it with ohm_optim_sample",
                             b->n, j, e - a);
    int rc = ohm_model_loss_grad(m, b, loss, o->g1);
    if (rc) return rc;
    const double pi = (double)(e - a) / (double)o->p.n, scale = pi * (double)o->nbatches;
    float *t = o->table + j * P;
    for (size_t c = 0; c < P; c++) {
        double dlt = (double)o->g1[c] - t[c];
        o->dir[c] = (float)(o->avg[c] + scale * dlt);
        o->avg[c] += pi * dlt;
        t[c] = o->g1[c];
    }
    return OHM_OK;
}

int ohm_optim_direction(ohm_optim_t *o, ohm_model_t *m, const ohm_batch_t *b, const uint32_t *idx,
                        float *dir, double *loss)
{
    int rc;
    if (o->kind == OHM_SAGA_OFF)
        rc = ohm_model_loss_grad(m, b, loss, o->dir);
    else if (o->kind == OHM_SAGA_SAMPLE)
        rc = saga_sample(o, m, b, idx, loss);
    else
        rc = saga_batch(o, m, b, idx, loss);
    if (rc) return rc;
    if (dir != o->dir) memcpy(dir, o->dir, sizeof(float) * o->P);
    return OHM_OK;
}

int ohm_optim_step(ohm_optim_t *o, ohm_model_t *m, const ohm_batch_t *b, const uint32_t *idx,
                   float lr, double *loss)
{
    int rc = ohm_optim_direction(o, m, b, idx, o->dir, loss);
    if (rc) return rc;
    const size_t P = o->P;
    const float beta = (float)o->p.momentum;
    /* m = beta m + (1 - beta) g; the first step starts the average at g so
     * that early steps are not shrunk by (1 - beta). */
    if (beta > 0 && o->has_mom)
        for (size_t c = 0; c < P; c++)
            o->mom[c] = beta * o->mom[c] + (1.0f - beta) * o->dir[c];
    else
        memcpy(o->mom, o->dir, sizeof(float) * P);
    o->has_mom = 1;
    ohm_model_get_params(m, o->w);
    for (size_t c = 0; c < P; c++)
        o->w[c] -= lr * o->mom[c];
    ohm_model_set_params(m, o->w, OHM_WB_EXACT);
    return OHM_OK;
}

int ohm_optim_saga_fill(ohm_optim_t *o, ohm_model_t *m, const ohm_batch_t *all,
                        const uint32_t *idx)
{
    if (o->kind == OHM_SAGA_OFF) return ohm_error_set(OHM_ESTATE, "SAGA is off");
    const size_t P = o->P;
    if (o->kind == OHM_SAGA_SAMPLE) {
        /* A step's bookkeeping without its direction: saga_sample per chunk. */
        for (int off = 0; off < all->n; off += o->p.batch) {
            int n = all->n - off < o->p.batch ? all->n - off : o->p.batch;
            ohm_batch_t part = {.n = n,
                                .dim = all->dim,
                                .x = all->x + (size_t)off * all->dim,
                                .y = all->y ? all->y + off : NULL,
                                .t = all->t ? all->t + (size_t)off * all->tdim : NULL,
                                .tdim = all->tdim};
            int rc = saga_sample(o, m, &part, idx + off, NULL);
            if (rc) return rc;
        }
        return OHM_OK;
    }
    if ((size_t)all->n != o->p.n)
        return ohm_error_set(OHM_EINVAL, "SAGA batch table: fill needs the whole shard (%zu), got %d",
                             o->p.n, all->n);
    const size_t B = (size_t)o->p.batch, dim = (size_t)all->dim;
    const size_t tdim = all->t ? (size_t)all->tdim : 0;
    if (!o->gx) {
        o->gx = malloc(sizeof(float) * B * dim);
        o->gy = malloc(sizeof(int32_t) * B);
        o->gt = malloc(sizeof(float) * B * (tdim ? tdim : 1));
        if (!o->gx || !o->gy || !o->gt) return ohm_error_set(OHM_ENOMEM, "SAGA fill buffers");
    }
    memset(o->avg, 0, sizeof(double) * P);
    for (size_t j = 0; j < o->nbatches; j++) {
        size_t a = j * B, e = a + B < o->p.n ? a + B : o->p.n;
        for (size_t i = a; i < e; i++) {
            uint32_t r = o->perm[i];
            assert(idx[r] == r);
            memcpy(o->gx + (i - a) * dim, all->x + (size_t)r * dim, sizeof(float) * dim);
            if (all->y) o->gy[i - a] = all->y[r];
            if (tdim) memcpy(o->gt + (i - a) * tdim, all->t + (size_t)r * tdim, sizeof(float) * tdim);
        }
        ohm_batch_t part = {.n = (int)(e - a),
                            .dim = all->dim,
                            .x = o->gx,
                            .y = all->y ? o->gy : NULL,
                            .t = tdim ? o->gt : NULL,
                            .tdim = all->tdim};
        float *t = o->table + j * P;
        int rc = ohm_model_loss_grad(m, &part, NULL, t);
        if (rc) return rc;
        const double pi = (double)(e - a) / (double)o->p.n;
        for (size_t c = 0; c < P; c++)
            o->avg[c] += pi * t[c];
    }
    return OHM_OK;
}
