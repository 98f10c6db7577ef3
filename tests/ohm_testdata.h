/* ohm_testdata: random examples for the model, flatness and Hessian suites.
 * Internal to tests/. */
#ifndef OHM_TESTDATA_H
#define OHM_TESTDATA_H

#include "ohm_data.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float *x;
    int32_t *y;
    float *t;
    ohm_batch_t b; /* views x with labels y (classification) or targets t (regress) */
} ohm_test_data_t;

/* n examples of dim N(0, 1) inputs, labels uniform in [0, outs) and N(0, 1)
 * targets of outs values, from the data stream of `seed`. Aborts the test when
 * out of memory; release with ohm_test_data_free. */
void ohm_test_data_fill(ohm_test_data_t *d, int n, int dim, int outs, int regress, uint64_t seed);
void ohm_test_data_free(ohm_test_data_t *d);

/* n values N(0, sd^2) from the stream of `seed` (parameters or probe
 * directions). Aborts the test when out of memory; caller frees. */
double *ohm_test_rand_vec(size_t n, double sd, uint64_t seed);

#endif
