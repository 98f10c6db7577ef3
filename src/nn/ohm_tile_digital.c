/* ohm_tile_digital: a floating-point tile trained by plain SGD (the reference). */
#include "ohm_dense.h"
#include "ohm_error.h"
#include "ohm_tile_impl.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    ohm_tile_t base;
    float *w;
} digital_t;

static void dig_forward(ohm_tile_t *t, const float *x, float *y, int n)
{
    digital_t *d = (digital_t *)t;
    ohm_dense_gemm(0, 1, n, t->rows, t->cols, 1.0f, x, d->w, 0.0f, y);
}

static void dig_backward(ohm_tile_t *t, const float *dd, float *z, int n)
{
    digital_t *d = (digital_t *)t;
    ohm_dense_gemm(0, 0, n, t->cols, t->rows, 1.0f, dd, d->w, 0.0f, z);
}

static void dig_update(ohm_tile_t *t, const float *x, const float *dd, int n, float lr)
{
    digital_t *d = (digital_t *)t;
    /* W -= lr * d^T x, accumulated straight into W by the GEMM's beta = 1. */
    ohm_dense_gemm(1, 0, t->rows, t->cols, n, -lr, dd, x, 1.0f, d->w);
}

static void dig_decay(ohm_tile_t *t, float factor)
{
    float *w = ((digital_t *)t)->w;
    size_t n = (size_t)t->rows * t->cols;
    for (size_t i = 0; i < n; i++)
        w[i] *= factor;
}

static void dig_get(const ohm_tile_t *t, float *w)
{
    memcpy(w, ((const digital_t *)t)->w, sizeof(float) * (size_t)t->rows * t->cols);
}

static void dig_set(ohm_tile_t *t, const float *w, int mode)
{
    (void)mode; /* a digital tile programs exactly either way */
    memcpy(((digital_t *)t)->w, w, sizeof(float) * (size_t)t->rows * t->cols);
}

static size_t dig_size(const ohm_tile_t *t)
{
    return sizeof(float) * (size_t)t->rows * t->cols;
}

static void dig_save(const ohm_tile_t *t, void *buf)
{
    dig_get(t, buf);
}

static int dig_load(ohm_tile_t *t, const void *buf, size_t len)
{
    if (len != dig_size(t))
        return ohm_error_set(OHM_ESHAPE, "digital tile state: %zu bytes, expected %zu", len,
                             dig_size(t));
    memcpy(((digital_t *)t)->w, buf, len);
    return OHM_OK;
}

static void dig_destroy(ohm_tile_t *t)
{
    digital_t *d = (digital_t *)t;
    free(d->w);
    free(d);
}

static const ohm_tile_ops_t digital_ops = {
    .kind = "digital",
    .forward = dig_forward,
    .backward = dig_backward,
    .update = dig_update,
    .decay = dig_decay,
    .get_weights = dig_get,
    .set_weights = dig_set,
    .state_size = dig_size,
    .state_save = dig_save,
    .state_load = dig_load,
    .destroy = dig_destroy,
};

ohm_tile_t *ohm_tile_digital_new(int rows, int cols)
{
    digital_t *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->w = calloc((size_t)rows * cols, sizeof(float));
    if (!d->w) {
        free(d);
        return NULL;
    }
    d->base.ops = &digital_ops;
    d->base.rows = rows;
    d->base.cols = cols;
    return &d->base;
}
