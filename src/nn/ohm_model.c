/* ohm_model: a network over tiles: forward, backward, loss, and flat parameters.
 *
 * Every layer keeps its output for the batch (out, after the activation) and
 * the loss gradient at that output (grd; for a layer with a tile, turned in
 * place into the gradient at its pre-activation). A layer with a tile also
 * keeps the rows the tile read (tin: the input with its bias column for a dense
 * layer, the unrolled patches for a convolution), because the tile's update
 * needs them. */
#include "ohm_model.h"

#include "ohm_conv.h"
#include "ohm_dense.h"
#include "ohm_error.h"
#include "ohm_plan.h"
#include "ohm_pool.h"

#include <assert.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Examples per chunk when evaluating large batches, at most; fewer when one
 * example's workspace is large (convolutions), so a chunk stays near EVAL_FLOATS. */
#define EVAL_CHUNK 256
#define EVAL_FLOATS (4u << 20)

#define MAXL OHM_LAYERS_MAX

struct ohm_model {
    ohm_model_spec_t spec;
    ohm_plan_t plan;
    ohm_tile_t *tiles[MAXL];
    size_t per_example; /* workspace floats of one example */
    int chunk;          /* examples per evaluation chunk */
    int cap;            /* examples the workspace holds */
    float *out[MAXL];   /* n x out_size */
    float *grd[MAXL];   /* n x out_size */
    float *tin[MAXL];   /* tile layers: (n * positions) x cols */
    int32_t *arg[MAXL]; /* max pools: n x out_size */
    float *back;        /* the backward read: (n * positions) x cols, the largest */
};

static void free_work(ohm_model_t *m)
{
    for (int i = 0; i < MAXL; i++) {
        free(m->out[i]);
        free(m->grd[i]);
        free(m->tin[i]);
        free(m->arg[i]);
        m->out[i] = m->grd[i] = m->tin[i] = NULL;
        m->arg[i] = NULL;
    }
    free(m->back);
    m->back = NULL;
    m->cap = 0;
}

/* Floats of rows read by layer L's tile per example. */
static size_t tile_rows_floats(const ohm_plan_layer_t *L)
{
    return (size_t)L->positions * (size_t)L->cols;
}

/* Grows the workspace to n examples. */
static int reserve(ohm_model_t *m, int n)
{
    if (n <= m->cap) return OHM_OK;
    free_work(m);
    size_t backmax = 0;
    for (int i = 0; i < m->plan.n; i++) {
        const ohm_plan_layer_t *L = &m->plan.l[i];
        size_t o = (size_t)n * L->out_size;
        if (!(m->out[i] = malloc(sizeof(float) * o)) || !(m->grd[i] = malloc(sizeof(float) * o)))
            goto oom;
        if (L->tile >= 0) {
            if (!(m->tin[i] = malloc(sizeof(float) * n * tile_rows_floats(L)))) goto oom;
            if (i > 0 && tile_rows_floats(L) > backmax) backmax = tile_rows_floats(L);
        } else if (L->kind == OHM_LAYER_MAXPOOL && !(m->arg[i] = malloc(sizeof(int32_t) * o))) {
            goto oom;
        }
    }
    if (!(m->back = malloc(sizeof(float) * (backmax ? n * backmax : 1)))) goto oom;
    m->cap = n;
    return OHM_OK;
oom:
    free_work(m);
    return ohm_error_set(OHM_ENOMEM, "model workspace for %d examples", n);
}

static int check_act_loss(const ohm_model_spec_t *spec)
{
    if (spec->act < OHM_ACT_RELU || spec->act > OHM_ACT_SIGMOID || spec->loss < OHM_LOSS_XENT ||
        spec->loss > OHM_LOSS_MSE)
        return ohm_error_set(OHM_EINVAL, "model: bad activation or loss");
    if (spec->loss == OHM_LOSS_XENT && spec->n_out < 2)
        return ohm_error_set(OHM_EINVAL, "model: cross-entropy needs at least 2 outputs");
    return OHM_OK;
}

int ohm_model_new(const ohm_model_spec_t *spec, ohm_tile_factory_fn factory, void *ctx,
                  ohm_model_t **out)
{
    *out = NULL;
    ohm_plan_t plan;
    int rc = check_act_loss(spec);
    if (rc || (rc = ohm_plan_build(spec, &plan))) return rc;
    ohm_model_t *m = calloc(1, sizeof *m);
    if (!m) return ohm_error_set(OHM_ENOMEM, "model");
    m->spec = *spec;
    m->plan = plan;
    for (int i = 0; i < plan.n; i++) {
        const ohm_plan_layer_t *L = &plan.l[i];
        m->per_example += 2 * (size_t)L->out_size;
        if (L->tile < 0) {
            m->per_example += L->kind == OHM_LAYER_MAXPOOL ? (size_t)L->out_size : 0;
            continue;
        }
        m->per_example += 2 * tile_rows_floats(L); /* its rows, and the backward read at most */
        int t = L->tile;
        m->tiles[t] = factory ? factory(ctx, t, L->rows, L->cols)
                              : ohm_tile_digital_new(L->rows, L->cols);
        if (!m->tiles[t]) {
            ohm_model_destroy(&m);
            if (!*ohm_error_detail())
                ohm_error_set(OHM_ENOMEM, "model: tile %d (%d x %d)", t, L->rows, L->cols);
            return OHM_ENOMEM;
        }
        assert(ohm_tile_rows(m->tiles[t]) == L->rows && ohm_tile_cols(m->tiles[t]) == L->cols);
    }
    size_t c = EVAL_FLOATS / m->per_example;
    m->chunk = c < 1 ? 1 : c > EVAL_CHUNK ? EVAL_CHUNK : (int)c;
    *out = m;
    return OHM_OK;
}

void ohm_model_destroy(ohm_model_t **pm)
{
    if (!pm || !*pm) return;
    ohm_model_t *m = *pm;
    for (int t = 0; t < m->plan.ntiles; t++)
        ohm_tile_destroy(&m->tiles[t]);
    free_work(m);
    free(m);
    *pm = NULL;
}

void ohm_model_init(ohm_model_t *m, ohm_rng_t *rng)
{
    ohm_model_init_kind(m, OHM_INIT_GLOROT, 0.0, rng);
}

void ohm_model_init_kind(ohm_model_t *m, int kind, double sigma, ohm_rng_t *rng)
{
    assert(kind == OHM_INIT_GLOROT || (kind == OHM_INIT_NORMAL && sigma >= 0));
    float *w = malloc(sizeof(float) * m->plan.nparams);
    assert(w); /* start-up allocation of the parameter vector */
    float *p = w;
    for (int i = 0; i < m->plan.n; i++) {
        const ohm_plan_layer_t *L = &m->plan.l[i];
        if (L->tile < 0) continue;
        /* He where ReLU follows (keeps activation variance), Glorot otherwise;
         * the normal start (the IOS authors' N(0, sigma^2)) draws biases too. */
        double sd = kind == OHM_INIT_NORMAL ? sigma
                    : m->spec.act == OHM_ACT_RELU && L->act ? sqrt(2.0 / L->fan_in)
                                                            : sqrt(2.0 / (L->fan_in + L->fan_out));
        int zero_bias = kind == OHM_INIT_GLOROT && m->spec.bias;
        for (int r = 0; r < L->rows; r++)
            for (int c = 0; c < L->cols; c++)
                *p++ = (zero_bias && c == L->cols - 1) ? 0.0f : (float)(sd * ohm_rng_normal(rng));
    }
    ohm_model_set_params(m, w, OHM_WB_EXACT);
    free(w);
}

int ohm_model_init_from_config(ohm_model_t *m, const ohm_config_t *cfg, uint32_t peer)
{
    const char *name = ohm_config_str(cfg, "model.init");
    int kind = strcmp(name, "glorot") == 0 ? OHM_INIT_GLOROT
               : strcmp(name, "normal") == 0 ? OHM_INIT_NORMAL
                                             : -1;
    if (kind < 0) return ohm_error_set(OHM_EINVAL, "model.init = '%s': not glorot or normal", name);
    /* The common stream is the one every peer has always used (slot 0); a
     * peer's own stream sits above 2^32 so it never meets the common one. */
    uint64_t slot = ohm_config_bool(cfg, "model.init_per_peer") ? (1ULL << 32) + peer : 0;
    ohm_rng_t r;
    ohm_rng_seed(&r, (uint64_t)ohm_config_int(cfg, "train.seed"), slot, OHM_STREAM_INIT);
    ohm_model_init_kind(m, kind, ohm_config_double(cfg, "model.init_sigma"), &r);
    return OHM_OK;
}

const ohm_model_spec_t *ohm_model_spec(const ohm_model_t *m)
{
    return &m->spec;
}

int ohm_model_layers(const ohm_model_t *m)
{
    return m->plan.ntiles;
}

ohm_tile_t *ohm_model_tile(ohm_model_t *m, int layer)
{
    assert(layer >= 0 && layer < m->plan.ntiles);
    return m->tiles[layer];
}

size_t ohm_model_nparams(const ohm_model_t *m)
{
    return m->plan.nparams;
}

uint64_t ohm_model_fingerprint(const ohm_model_t *m)
{
    return ohm_plan_fingerprint(&m->plan, m->spec.bias);
}

void ohm_model_get_params(const ohm_model_t *m, float *flat)
{
    for (int i = 0; i < m->plan.n; i++) {
        const ohm_plan_layer_t *L = &m->plan.l[i];
        if (L->tile >= 0) ohm_tile_get_weights(m->tiles[L->tile], flat + L->off);
    }
}

void ohm_model_set_params(ohm_model_t *m, const float *flat, int mode)
{
    for (int i = 0; i < m->plan.n; i++) {
        const ohm_plan_layer_t *L = &m->plan.l[i];
        if (L->tile >= 0) ohm_tile_set_weights(m->tiles[L->tile], flat + L->off, mode);
    }
}

/* o <- act(o), one loop per activation so each vectorises. */
static void activate_all(int act, float *o, size_t k)
{
    if (act == OHM_ACT_RELU)
        for (size_t j = 0; j < k; j++)
            o[j] = o[j] > 0 ? o[j] : 0.0f;
    else if (act == OHM_ACT_TANH)
        for (size_t j = 0; j < k; j++)
            o[j] = tanhf(o[j]);
    else
        for (size_t j = 0; j < k; j++)
            o[j] = 1.0f / (1.0f + expf(-o[j]));
}

/* g <- g act'(z), the derivative expressed through the activation's output h (what we keep). */
static void activate_back(int act, const float *h, float *g, size_t k)
{
    if (act == OHM_ACT_RELU)
        for (size_t j = 0; j < k; j++)
            g[j] = h[j] > 0 ? g[j] : 0.0f;
    else if (act == OHM_ACT_TANH)
        for (size_t j = 0; j < k; j++)
            g[j] *= 1.0f - h[j] * h[j];
    else
        for (size_t j = 0; j < k; j++)
            g[j] *= h[j] * (1.0f - h[j]);
}

/* The rows layer L's tile reads, from its input x (n examples). */
static void tile_input(const ohm_model_t *m, const ohm_plan_layer_t *L, const float *x, int n,
                       float *tin)
{
    if (L->kind == OHM_LAYER_CONV) {
        ohm_conv_unroll(L, x, n, tin, L->cols, 1.0f);
        return;
    }
    int in = L->in_size;
    if (!m->spec.bias) {
        memcpy(tin, x, sizeof(float) * (size_t)n * in);
        return;
    }
    for (int i = 0; i < n; i++) {
        memcpy(tin + (size_t)i * L->cols, x + (size_t)i * in, sizeof(float) * in);
        tin[(size_t)i * L->cols + in] = 1.0f;
    }
}

/* Forward through every layer; the logits land in out[last]. */
static void forward(ohm_model_t *m, const float *x, int n)
{
    const float *in = x;
    for (int i = 0; i < m->plan.n; i++) {
        const ohm_plan_layer_t *L = &m->plan.l[i];
        if (L->tile >= 0) {
            tile_input(m, L, in, n, m->tin[i]);
            ohm_tile_forward(m->tiles[L->tile], m->tin[i], m->out[i], n * L->positions);
            if (L->act) activate_all(m->spec.act, m->out[i], (size_t)n * L->out_size);
        } else {
            ohm_pool_forward(L, in, n, m->out[i], m->arg[i]);
        }
        in = m->out[i];
    }
}

/* Loss of examples [off, off+n) of the batch and the output error dL/dy times
 * `inv` into grd[last]. Accuracy counts correct argmax predictions (classification). */
static double output_loss_scaled(ohm_model_t *m, const ohm_batch_t *b, int off, int n,
                                 int with_grad, float inv, int *correct)
{
    int last = m->plan.n - 1, K = m->plan.out_size;
    const float *out = m->out[last];
    float *d = m->grd[last];
    double loss = 0.0;
    int ok = 0;
    for (int i = 0; i < n; i++) {
        const float *y = out + (size_t)i * K;
        float *di = d + (size_t)i * K;
        if (m->spec.loss == OHM_LOSS_XENT) {
            int label = b->y[off + i];
            assert(label >= 0 && label < K);
            float mx = y[0];
            int arg = 0;
            for (int k = 1; k < K; k++)
                if (y[k] > mx) {
                    mx = y[k];
                    arg = k;
                }
            ok += arg == label;
            double s = 0.0;
            for (int k = 0; k < K; k++)
                s += exp((double)(y[k] - mx));
            loss += log(s) - (double)(y[label] - mx);
            if (with_grad)
                for (int k = 0; k < K; k++)
                    di[k] = inv * ((float)(exp((double)(y[k] - mx)) / s) - (k == label));
        } else {
            const float *t = b->t + (size_t)(off + i) * b->tdim;
            for (int k = 0; k < K; k++) {
                float e = y[k] - t[k];
                loss += 0.5 * (double)e * e;
                if (with_grad) di[k] = inv * e;
            }
        }
    }
    if (correct) *correct = ok;
    return loss;
}

/* The same with the error divided by the batch size (the mean loss's gradient). */
static double output_loss(ohm_model_t *m, const ohm_batch_t *b, int off, int n, int with_grad,
                          int *correct)
{
    return output_loss_scaled(m, b, off, n, with_grad, 1.0f / (float)b->n, correct);
}

/* Back-propagates grd[last] down to the first layer. For each layer with a
 * tile it calls `visit` (update or gradient) AFTER reading through the tile,
 * so the backward read always sees the weights the forward pass used. */
typedef void (*visit_fn)(ohm_model_t *m, int i, int n, void *arg);

static void backward(ohm_model_t *m, int n, visit_fn visit, void *arg)
{
    for (int i = m->plan.n - 1; i >= 0; i--) {
        const ohm_plan_layer_t *L = &m->plan.l[i];
        float *g = m->grd[i];
        if (L->tile < 0) {
            if (i > 0) ohm_pool_backward(L, g, m->arg[i], n, m->grd[i - 1]);
            continue;
        }
        if (L->act) activate_back(m->spec.act, m->out[i], g, (size_t)n * L->out_size);
        if (i > 0) {
            int rows = n * L->positions;
            ohm_tile_backward(m->tiles[L->tile], g, m->back, rows);
            float *below = m->grd[i - 1];
            if (L->kind == OHM_LAYER_CONV) {
                ohm_conv_fold(L, m->back, L->cols, n, below);
            } else {
                for (int e = 0; e < n; e++)
                    memcpy(below + (size_t)e * L->in_size, m->back + (size_t)e * L->cols,
                           sizeof(float) * L->in_size);
            }
        }
        visit(m, i, n, arg);
    }
}

static int check_batch(const ohm_model_t *m, const ohm_batch_t *b)
{
    if (b->n < 1 || b->dim != m->plan.in_size)
        return ohm_error_set(OHM_ESHAPE, "batch of %d x %d for a model with %d inputs", b->n,
                             b->dim, m->plan.in_size);
    if (m->spec.loss == OHM_LOSS_XENT ? !b->y : (!b->t || b->tdim != m->plan.out_size))
        return ohm_error_set(OHM_ESHAPE, "batch targets do not fit the model's loss");
    for (int i = 0; i < m->plan.n; i++)
        if ((long long)b->n * m->plan.l[i].positions > INT_MAX / 2)
            return ohm_error_set(OHM_ETOOBIG, "batch of %d: too many unrolled rows", b->n);
    return OHM_OK;
}

static void visit_update(ohm_model_t *m, int i, int n, void *arg)
{
    const ohm_plan_layer_t *L = &m->plan.l[i];
    ohm_tile_update(m->tiles[L->tile], m->tin[i], m->grd[i], n * L->positions, *(float *)arg);
}

int ohm_model_train_step(ohm_model_t *m, const ohm_batch_t *b, float lr, double *loss)
{
    int rc = check_batch(m, b);
    if (rc || (rc = reserve(m, b->n))) return rc;
    forward(m, b->x, b->n);
    double l = output_loss(m, b, 0, b->n, 1, NULL);
    backward(m, b->n, visit_update, &lr);
    if (loss) *loss = l / b->n;
    return OHM_OK;
}

int ohm_model_decay(ohm_model_t *m, float factor)
{
    for (int t = 0; t < m->plan.ntiles; t++) {
        int rc = ohm_tile_decay(m->tiles[t], factor);
        if (rc) return rc;
    }
    return OHM_OK;
}

int ohm_model_evaluate(ohm_model_t *m, const ohm_batch_t *b, double *loss, double *acc)
{
    int rc = check_batch(m, b);
    int chunk = m->chunk;
    if (rc || (rc = reserve(m, b->n < chunk ? b->n : chunk))) return rc;
    double total = 0.0;
    long correct = 0;
    for (int off = 0; off < b->n; off += chunk) {
        int n = b->n - off < chunk ? b->n - off : chunk;
        int ok = 0;
        forward(m, b->x + (size_t)off * b->dim, n);
        total += output_loss(m, b, off, n, 0, &ok);
        correct += ok;
    }
    if (loss) *loss = total / b->n;
    if (acc) *acc = m->spec.loss == OHM_LOSS_XENT ? (double)correct / b->n : 0.0;
    return OHM_OK;
}

static void visit_grad(ohm_model_t *m, int i, int n, void *arg)
{
    const ohm_plan_layer_t *L = &m->plan.l[i];
    float *g = (float *)arg + L->off;
    /* G = grd^T tin over every unrolled row, accumulated (the caller zeroed g). */
    ohm_dense_gemm(1, 0, L->rows, L->cols, n * L->positions, 1.0f, m->grd[i], m->tin[i], 1.0f, g);
}

int ohm_model_loss_grad(ohm_model_t *m, const ohm_batch_t *b, double *loss, float *grad)
{
    int rc = check_batch(m, b);
    int chunk = m->chunk;
    if (rc || (rc = reserve(m, b->n < chunk ? b->n : chunk))) return rc;
    memset(grad, 0, sizeof(float) * m->plan.nparams);
    double total = 0.0;
    /* Chunks share the 1/b->n scaling of output_loss, so their sums are the full gradient. */
    for (int off = 0; off < b->n; off += chunk) {
        int n = b->n - off < chunk ? b->n - off : chunk;
        forward(m, b->x + (size_t)off * b->dim, n);
        total += output_loss(m, b, off, n, 1, NULL);
        backward(m, n, visit_grad, grad);
    }
    if (loss) *loss = total / b->n;
    return OHM_OK;
}

int ohm_model_example_errors(ohm_model_t *m, const ohm_batch_t *b, float *err, double *loss)
{
    int rc = check_batch(m, b);
    int chunk = m->chunk;
    if (rc || (rc = reserve(m, b->n < chunk ? b->n : chunk))) return rc;
    const int last = m->plan.n - 1, K = m->plan.out_size;
    double total = 0.0;
    for (int off = 0; off < b->n; off += chunk) {
        int n = b->n - off < chunk ? b->n - off : chunk;
        forward(m, b->x + (size_t)off * b->dim, n);
        total += output_loss_scaled(m, b, off, n, 1, 1.0f, NULL);
        memcpy(err + (size_t)off * K, m->grd[last], sizeof(float) * (size_t)n * K);
    }
    if (loss) *loss = total / b->n;
    return OHM_OK;
}

int ohm_model_outer_add(const ohm_model_t *m, const ohm_batch_t *b, const float *err, float alpha,
                        float *grad)
{
    const ohm_plan_layer_t *L = &m->plan.l[0];
    if (m->plan.n != 1 || L->kind != OHM_LAYER_FC)
        return ohm_error_set(OHM_EUNSUPPORTED,
                             "outer-product gradients need a single dense layer (%d layers)",
                             m->plan.n);
    assert(b->dim == m->plan.in_size);
    const int K = L->rows, in = m->plan.in_size, cols = L->cols;
    /* G[k][c] += alpha sum_i err[i][k] x[i][c] (bias column: x = 1), in the
     * tile's row-major layout with the bias last in each row. */
    for (int i = 0; i < b->n; i++) {
        const float *x = b->x + (size_t)i * in, *e = err + (size_t)i * K;
        for (int k = 0; k < K; k++) {
            float a = alpha * e[k];
            if (a == 0.0f) continue;
            float *g = grad + (size_t)k * cols;
            for (int c = 0; c < in; c++)
                g[c] += a * x[c];
            if (m->spec.bias) g[in] += a;
        }
    }
    return OHM_OK;
}

/* State layout: for each tile, a uint64 byte count then the tile's state. */
int ohm_model_counters(const ohm_model_t *m, ohm_tile_counters_t *sum)
{
    *sum = (ohm_tile_counters_t){0};
    int counting = 0;
    for (int l = 0; l < m->plan.ntiles; l++) {
        ohm_tile_counters_t c;
        if (!ohm_tile_counters(m->tiles[l], &c)) continue;
        counting++;
        sum->update_pulses += c.update_pulses;
        sum->program_pulses += c.program_pulses;
        sum->train_slots += c.train_slots;
        sum->line_pulses += c.line_pulses;
        sum->program_slots += c.program_slots;
        sum->forward_mvms += c.forward_mvms;
        sum->backward_mvms += c.backward_mvms;
        sum->transfer_mvms += c.transfer_mvms;
        sum->dac += c.dac;
        sum->adc += c.adc;
        sum->cells_programmed += c.cells_programmed;
    }
    return counting;
}

size_t ohm_model_state_size(const ohm_model_t *m)
{
    size_t s = 0;
    for (int l = 0; l < m->plan.ntiles; l++)
        s += sizeof(uint64_t) + ohm_tile_state_size(m->tiles[l]);
    return s;
}

void ohm_model_state_save(const ohm_model_t *m, void *buf)
{
    unsigned char *p = buf;
    for (int l = 0; l < m->plan.ntiles; l++) {
        uint64_t n = ohm_tile_state_size(m->tiles[l]);
        memcpy(p, &n, sizeof n);
        p += sizeof n;
        ohm_tile_state_save(m->tiles[l], p);
        p += n;
    }
}

int ohm_model_state_load(ohm_model_t *m, const void *buf, size_t len)
{
    const unsigned char *p = buf, *end = p + len;
    for (int l = 0; l < m->plan.ntiles; l++) {
        uint64_t n;
        if ((size_t)(end - p) < sizeof n)
            return ohm_error_set(OHM_ETRUNC, "model state: tile %d header missing", l);
        memcpy(&n, p, sizeof n);
        p += sizeof n;
        if (n > (uint64_t)(end - p))
            return ohm_error_set(OHM_ETRUNC, "model state: tile %d needs %llu bytes", l,
                                 (unsigned long long)n);
        int rc = ohm_tile_state_load(m->tiles[l], p, (size_t)n);
        if (rc) return rc;
        p += n;
    }
    if (p != end)
        return ohm_error_set(OHM_EFORMAT, "model state: %zu trailing bytes", (size_t)(end - p));
    return OHM_OK;
}
