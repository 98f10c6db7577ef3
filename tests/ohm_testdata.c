/* ohm_testdata: random examples for the unit suites (see ohm_testdata.h). */
#include "ohm_testdata.h"

#include "ohm_rng.h"

#include <criterion/criterion.h>
#include <stdlib.h>

void ohm_test_data_fill(ohm_test_data_t *d, int n, int dim, int outs, int regress, uint64_t seed)
{
    ohm_rng_t r;
    ohm_rng_seed(&r, seed, 0, OHM_STREAM_DATA);
    d->x = malloc(sizeof(float) * (size_t)n * dim);
    d->y = malloc(sizeof(int32_t) * (size_t)n);
    d->t = malloc(sizeof(float) * (size_t)n * outs);
    cr_assert(d->x && d->y && d->t);
    for (int i = 0; i < n * dim; i++)
        d->x[i] = (float)ohm_rng_normal(&r);
    for (int i = 0; i < n; i++)
        d->y[i] = (int32_t)ohm_rng_below(&r, (uint32_t)outs);
    for (int i = 0; i < n * outs; i++)
        d->t[i] = (float)ohm_rng_normal(&r);
    d->b = (ohm_batch_t){.n = n,
                         .dim = dim,
                         .x = d->x,
                         .y = regress ? NULL : d->y,
                         .t = regress ? d->t : NULL,
                         .tdim = regress ? outs : 0};
}

void ohm_test_data_free(ohm_test_data_t *d)
{
    free(d->x);
    free(d->y);
    free(d->t);
    d->x = d->t = NULL;
    d->y = NULL;
}

double *ohm_test_rand_vec(size_t n, double sd, uint64_t seed)
{
    double *w = malloc(sizeof(double) * n);
    cr_assert(w);
    ohm_rng_t r;
    ohm_rng_seed(&r, seed, 0, 4242);
    for (size_t i = 0; i < n; i++)
        w[i] = sd * ohm_rng_normal(&r);
    return w;
}
