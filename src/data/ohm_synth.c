/* ohm_synth: Gaussian-mixture classification and linear-teacher regression. */
#include "ohm_synth.h"

#include "ohm_error.h"
#include "ohm_rng.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>

/* Stream "peer" slots under OHM_STREAM_DATA. Examples use (split + 1) << 48 | i,
 * the task parameters a slot no example index reaches. */
#define SLOT_PARAMS (1ULL << 62)
#define SLOT_EXAMPLE(split, i) (((uint64_t)(split) + 1) << 48 | (uint64_t)(i))

/* Examples per split stay below 2^48 so their slots never meet. */
#define MAX_INDEX (1ULL << 48)

struct ohm_synth {
    int task, dim, outputs;
    double noise;
    uint64_t seed;
    double *params; /* outputs x dim: class means or W* */
};

int ohm_synth_new(int task, int dim, int outputs, double noise, uint64_t seed, ohm_synth_t **out)
{
    *out = NULL;
    if (task != OHM_SYNTH_CLASSIFY && task != OHM_SYNTH_REGRESS)
        return ohm_error_set(OHM_EINVAL, "synthetic data: unknown task %d", task);
    if (dim < 1 || outputs < (task == OHM_SYNTH_CLASSIFY ? 2 : 1))
        return ohm_error_set(OHM_EINVAL, "synthetic data: dim %d, %s %d", dim,
                             task == OHM_SYNTH_CLASSIFY ? "classes (>= 2)" : "outputs", outputs);
    if (!(noise >= 0) || !isfinite(noise))
        return ohm_error_set(OHM_EINVAL, "synthetic data: noise %g", noise);
    ohm_synth_t *s = calloc(1, sizeof *s);
    if (!s || !(s->params = malloc(sizeof(double) * (size_t)dim * (size_t)outputs))) {
        free(s);
        return ohm_error_set(OHM_ENOMEM, "synthetic data: %d x %d parameters", outputs, dim);
    }
    s->task = task;
    s->dim = dim;
    s->outputs = outputs;
    s->noise = noise;
    s->seed = seed;
    ohm_rng_t r;
    ohm_rng_seed(&r, seed, SLOT_PARAMS, OHM_STREAM_DATA);
    double scale = (task == OHM_SYNTH_CLASSIFY ? OHM_SYNTH_SEP : 1.0) / sqrt((double)dim);
    for (size_t k = 0; k < (size_t)dim * (size_t)outputs; k++)
        s->params[k] = scale * ohm_rng_normal(&r);
    *out = s;
    return OHM_OK;
}

void ohm_synth_destroy(ohm_synth_t **ps)
{
    if (!ps || !*ps) return;
    free((*ps)->params);
    free(*ps);
    *ps = NULL;
}

/* The example's stream, positioned after its label draw. */
static int32_t example_stream(const ohm_synth_t *s, int split, size_t i, ohm_rng_t *r)
{
    assert(split == OHM_SPLIT_TRAIN || split == OHM_SPLIT_TEST);
    assert((uint64_t)i < MAX_INDEX);
    ohm_rng_seed(r, s->seed, SLOT_EXAMPLE(split, i), OHM_STREAM_DATA);
    /* The label is drawn first in both tasks so labels alone are cheap. */
    return (int32_t)ohm_rng_below(r, (uint32_t)s->outputs);
}

int32_t ohm_synth_label(const ohm_synth_t *s, int split, size_t i)
{
    assert(s->task == OHM_SYNTH_CLASSIFY);
    ohm_rng_t r;
    return example_stream(s, split, i, &r);
}

void ohm_synth_example(const ohm_synth_t *s, int split, size_t i, float *x, int32_t *y, float *t)
{
    ohm_rng_t r;
    int32_t label = example_stream(s, split, i, &r);
    const int d = s->dim;
    if (s->task == OHM_SYNTH_CLASSIFY) {
        const double *mu = s->params + (size_t)label * (size_t)d;
        for (int j = 0; j < d; j++)
            x[j] = (float)(mu[j] + s->noise * ohm_rng_normal(&r));
        if (y) *y = label;
        return;
    }
    for (int j = 0; j < d; j++)
        x[j] = (float)ohm_rng_normal(&r);
    /* Targets from the stored (float) inputs, so t = W* x holds for what the model sees. */
    for (int k = 0; k < s->outputs; k++) {
        const double *w = s->params + (size_t)k * (size_t)d;
        double acc = 0;
        for (int j = 0; j < d; j++)
            acc += w[j] * (double)x[j];
        double v = acc + s->noise * ohm_rng_normal(&r);
        if (t) t[k] = (float)v;
    }
}

const double *ohm_synth_params(const ohm_synth_t *s)
{
    return s->params;
}
