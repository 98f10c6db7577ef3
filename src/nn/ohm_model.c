/* ohm_model: an MLP over tiles: forward, backward, loss, and flat parameters. */
#include "ohm_model.h"

#include "ohm_dense.h"
#include "ohm_error.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Examples per chunk when evaluating large batches: bounds the workspace. */
#define EVAL_CHUNK 256

struct ohm_model {
    ohm_model_spec_t spec;
    int L;                              /* number of layers (tiles) */
    int dims[OHM_MODEL_MAX_LAYERS + 1]; /* dims[0] = n_in ... dims[L] = n_out */
    ohm_tile_t *tiles[OHM_MODEL_MAX_LAYERS];
    size_t nparams;
    /* Workspace for up to `cap` examples: act[l] is the input of layer l with
     * its bias column (n x cols_l); out is the last layer's output; del[l] is
     * the error at layer l's output (n x rows_l); back is the backward read. */
    int cap;
    float *act[OHM_MODEL_MAX_LAYERS];
    float *del[OHM_MODEL_MAX_LAYERS];
    float *out;
    float *back;
};

static int cols_of(const ohm_model_t *m, int l)
{
    return m->dims[l] + (m->spec.bias ? 1 : 0);
}

static void free_work(ohm_model_t *m)
{
    for (int l = 0; l < m->L; l++) {
        free(m->act[l]);
        free(m->del[l]);
        m->act[l] = m->del[l] = NULL;
    }
    free(m->out);
    free(m->back);
    m->out = m->back = NULL;
    m->cap = 0;
}

/* Grows the workspace to n examples. */
static int reserve(ohm_model_t *m, int n)
{
    if (n <= m->cap) return OHM_OK;
    free_work(m);
    int maxcols = 0;
    for (int l = 0; l < m->L; l++) {
        m->act[l] = malloc(sizeof(float) * (size_t)n * cols_of(m, l));
        m->del[l] = malloc(sizeof(float) * (size_t)n * m->dims[l + 1]);
        if (!m->act[l] || !m->del[l]) goto oom;
        if (cols_of(m, l) > maxcols) maxcols = cols_of(m, l);
    }
    m->out = malloc(sizeof(float) * (size_t)n * m->dims[m->L]);
    m->back = malloc(sizeof(float) * (size_t)n * maxcols);
    if (!m->out || !m->back) goto oom;
    m->cap = n;
    return OHM_OK;
oom:
    free_work(m);
    return ohm_error_set(OHM_ENOMEM, "model workspace for %d examples", n);
}

int ohm_model_new(const ohm_model_spec_t *spec, ohm_tile_factory_fn factory, void *ctx,
                  ohm_model_t **out)
{
    *out = NULL;
    if (spec->n_in < 1 || spec->n_out < 1 || spec->n_hidden < 0 ||
        spec->n_hidden > OHM_MODEL_MAX_LAYERS - 1)
        return ohm_error_set(OHM_EINVAL, "model: bad shape (in %d, out %d, %d hidden layers)",
                             spec->n_in, spec->n_out, spec->n_hidden);
    if (spec->act < OHM_ACT_RELU || spec->act > OHM_ACT_SIGMOID || spec->loss < OHM_LOSS_XENT ||
        spec->loss > OHM_LOSS_MSE)
        return ohm_error_set(OHM_EINVAL, "model: bad activation or loss");
    if (spec->loss == OHM_LOSS_XENT && spec->n_out < 2)
        return ohm_error_set(OHM_EINVAL, "model: cross-entropy needs at least 2 outputs");
    for (int i = 0; i < spec->n_hidden; i++)
        if (spec->hidden[i] < 1)
            return ohm_error_set(OHM_EINVAL, "model: hidden layer %d has size %d", i,
                                 spec->hidden[i]);
    ohm_model_t *m = calloc(1, sizeof *m);
    if (!m) return ohm_error_set(OHM_ENOMEM, "model");
    m->spec = *spec;
    m->L = spec->n_hidden + 1;
    m->dims[0] = spec->n_in;
    for (int i = 0; i < spec->n_hidden; i++)
        m->dims[i + 1] = spec->hidden[i];
    m->dims[m->L] = spec->n_out;
    for (int l = 0; l < m->L; l++) {
        int rows = m->dims[l + 1], cols = cols_of(m, l);
        m->tiles[l] = factory ? factory(ctx, l, rows, cols) : ohm_tile_digital_new(rows, cols);
        if (!m->tiles[l]) {
            ohm_model_destroy(&m);
            if (!*ohm_error_detail())
                ohm_error_set(OHM_ENOMEM, "model: tile %d (%d x %d)", l, rows, cols);
            return OHM_ENOMEM;
        }
        assert(ohm_tile_rows(m->tiles[l]) == rows && ohm_tile_cols(m->tiles[l]) == cols);
        m->nparams += (size_t)rows * cols;
    }
    *out = m;
    return OHM_OK;
}

void ohm_model_destroy(ohm_model_t **pm)
{
    if (!pm || !*pm) return;
    ohm_model_t *m = *pm;
    for (int l = 0; l < m->L; l++)
        ohm_tile_destroy(&m->tiles[l]);
    free_work(m);
    free(m);
    *pm = NULL;
}

void ohm_model_init(ohm_model_t *m, ohm_rng_t *rng)
{
    float *w = malloc(sizeof(float) * m->nparams);
    assert(w); /* start-up allocation of the parameter vector */
    float *p = w;
    for (int l = 0; l < m->L; l++) {
        int rows = m->dims[l + 1], cols = cols_of(m, l), fan_in = m->dims[l];
        /* He for ReLU (keeps activation variance), Glorot otherwise. */
        double sd = m->spec.act == OHM_ACT_RELU && l < m->L - 1 ? sqrt(2.0 / fan_in)
                                                                : sqrt(2.0 / (fan_in + rows));
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                *p++ = (m->spec.bias && c == cols - 1) ? 0.0f : (float)(sd * ohm_rng_normal(rng));
    }
    ohm_model_set_params(m, w, OHM_WB_EXACT);
    free(w);
}

const ohm_model_spec_t *ohm_model_spec(const ohm_model_t *m)
{
    return &m->spec;
}

int ohm_model_layers(const ohm_model_t *m)
{
    return m->L;
}

ohm_tile_t *ohm_model_tile(ohm_model_t *m, int layer)
{
    assert(layer >= 0 && layer < m->L);
    return m->tiles[layer];
}

size_t ohm_model_nparams(const ohm_model_t *m)
{
    return m->nparams;
}

uint64_t ohm_model_fingerprint(const ohm_model_t *m)
{
    /* Shapes, bias flag and dtype: exactly what must agree for flat vectors to combine. */
    uint32_t desc[OHM_MODEL_MAX_LAYERS + 4];
    int n = 0;
    desc[n++] = 0x66333200u; /* "f32" */
    desc[n++] = (uint32_t)m->L;
    desc[n++] = (uint32_t)m->spec.bias;
    for (int l = 0; l <= m->L; l++)
        desc[n++] = (uint32_t)m->dims[l];
    return ohm_hash64(desc, sizeof(uint32_t) * (size_t)n, 0x6f686d70ULL);
}

void ohm_model_get_params(const ohm_model_t *m, float *flat)
{
    for (int l = 0; l < m->L; l++) {
        ohm_tile_get_weights(m->tiles[l], flat);
        flat += (size_t)m->dims[l + 1] * cols_of(m, l);
    }
}

void ohm_model_set_params(ohm_model_t *m, const float *flat, int mode)
{
    for (int l = 0; l < m->L; l++) {
        ohm_tile_set_weights(m->tiles[l], flat, mode);
        flat += (size_t)m->dims[l + 1] * cols_of(m, l);
    }
}

/* Copies x (n x dim) into act[0] with the bias column. */
static void load_input(ohm_model_t *m, const float *x, int n)
{
    int in = m->dims[0], cols = cols_of(m, 0);
    if (!m->spec.bias) {
        memcpy(m->act[0], x, sizeof(float) * (size_t)n * in);
        return;
    }
    for (int i = 0; i < n; i++) {
        memcpy(m->act[0] + (size_t)i * cols, x + (size_t)i * in, sizeof(float) * in);
        m->act[0][(size_t)i * cols + in] = 1.0f;
    }
}

static float activate(int act, float v)
{
    switch (act) {
    case OHM_ACT_RELU:
        return v > 0 ? v : 0.0f;
    case OHM_ACT_TANH:
        return tanhf(v);
    default:
        return 1.0f / (1.0f + expf(-v));
    }
}

/* Derivative expressed through the activation's output h (what we keep). */
static float activate_grad(int act, float h)
{
    switch (act) {
    case OHM_ACT_RELU:
        return h > 0 ? 1.0f : 0.0f;
    case OHM_ACT_TANH:
        return 1.0f - h * h;
    default:
        return h * (1.0f - h);
    }
}

/* Forward through all tiles; the last layer's output lands in m->out. */
static void forward(ohm_model_t *m, const float *x, int n)
{
    load_input(m, x, n);
    for (int l = 0; l < m->L; l++) {
        int rows = m->dims[l + 1];
        float *y = l == m->L - 1 ? m->out : m->del[l]; /* del[l] as scratch for hidden outputs */
        ohm_tile_forward(m->tiles[l], m->act[l], y, n);
        if (l == m->L - 1) break;
        int cn = cols_of(m, l + 1);
        for (int i = 0; i < n; i++) {
            float *dst = m->act[l + 1] + (size_t)i * cn;
            const float *src = y + (size_t)i * rows;
            for (int j = 0; j < rows; j++)
                dst[j] = activate(m->spec.act, src[j]);
            if (m->spec.bias) dst[rows] = 1.0f;
        }
    }
}

/* Loss of the batch and the output error dL/dy (mean over the batch) into del[L-1].
 * Accuracy counts correct argmax predictions (classification). */
static double output_loss(ohm_model_t *m, const ohm_batch_t *b, int off, int n, int with_grad,
                          int *correct)
{
    int K = m->dims[m->L];
    float *d = m->del[m->L - 1];
    double loss = 0.0;
    int ok = 0;
    float inv = 1.0f / (float)b->n;
    for (int i = 0; i < n; i++) {
        const float *y = m->out + (size_t)i * K;
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

/* Back-propagates del[L-1] down to del[0]. For each layer it calls `visit`
 * (update or gradient) AFTER reading through the tile, so the backward read
 * always sees the weights the forward pass used. */
typedef void (*visit_fn)(ohm_model_t *m, int l, int n, void *arg);

static void backward(ohm_model_t *m, int n, visit_fn visit, void *arg)
{
    for (int l = m->L - 1; l >= 0; l--) {
        if (l > 0) {
            int cols = cols_of(m, l), below = m->dims[l];
            ohm_tile_backward(m->tiles[l], m->del[l], m->back, n);
            for (int i = 0; i < n; i++) {
                const float *z = m->back + (size_t)i * cols;
                const float *h = m->act[l] + (size_t)i * cols;
                float *dd = m->del[l - 1] + (size_t)i * below;
                for (int j = 0; j < below; j++)
                    dd[j] = z[j] * activate_grad(m->spec.act, h[j]);
            }
        }
        visit(m, l, n, arg);
    }
}

static int check_batch(const ohm_model_t *m, const ohm_batch_t *b)
{
    if (b->n < 1 || b->dim != m->dims[0])
        return ohm_error_set(OHM_ESHAPE, "batch of %d x %d for a model with %d inputs", b->n,
                             b->dim, m->dims[0]);
    if (m->spec.loss == OHM_LOSS_XENT ? !b->y : (!b->t || b->tdim != m->dims[m->L]))
        return ohm_error_set(OHM_ESHAPE, "batch targets do not fit the model's loss");
    return OHM_OK;
}

static void visit_update(ohm_model_t *m, int l, int n, void *arg)
{
    ohm_tile_update(m->tiles[l], m->act[l], m->del[l], n, *(float *)arg);
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
    for (int l = 0; l < m->L; l++) {
        int rc = ohm_tile_decay(m->tiles[l], factor);
        if (rc) return rc;
    }
    return OHM_OK;
}

int ohm_model_evaluate(ohm_model_t *m, const ohm_batch_t *b, double *loss, double *acc)
{
    int rc = check_batch(m, b);
    if (rc || (rc = reserve(m, b->n < EVAL_CHUNK ? b->n : EVAL_CHUNK))) return rc;
    double total = 0.0;
    long correct = 0;
    for (int off = 0; off < b->n; off += EVAL_CHUNK) {
        int n = b->n - off < EVAL_CHUNK ? b->n - off : EVAL_CHUNK;
        int ok = 0;
        forward(m, b->x + (size_t)off * b->dim, n);
        total += output_loss(m, b, off, n, 0, &ok);
        correct += ok;
    }
    if (loss) *loss = total / b->n;
    if (acc) *acc = m->spec.loss == OHM_LOSS_XENT ? (double)correct / b->n : 0.0;
    return OHM_OK;
}

static void visit_grad(ohm_model_t *m, int l, int n, void *arg)
{
    float *g = arg;
    for (int k = 0; k < l; k++)
        g += (size_t)m->dims[k + 1] * cols_of(m, k);
    /* G_l = del_l^T act_l, accumulated (the caller zeroed g). */
    ohm_dense_gemm(1, 0, m->dims[l + 1], cols_of(m, l), n, 1.0f, m->del[l], m->act[l], 1.0f, g);
}

int ohm_model_loss_grad(ohm_model_t *m, const ohm_batch_t *b, double *loss, float *grad)
{
    int rc = check_batch(m, b);
    if (rc || (rc = reserve(m, b->n < EVAL_CHUNK ? b->n : EVAL_CHUNK))) return rc;
    memset(grad, 0, sizeof(float) * m->nparams);
    double total = 0.0;
    /* Chunks share the 1/b->n scaling of output_loss, so their sums are the full gradient. */
    for (int off = 0; off < b->n; off += EVAL_CHUNK) {
        int n = b->n - off < EVAL_CHUNK ? b->n - off : EVAL_CHUNK;
        forward(m, b->x + (size_t)off * b->dim, n);
        total += output_loss(m, b, off, n, 1, NULL);
        backward(m, n, visit_grad, grad);
    }
    if (loss) *loss = total / b->n;
    return OHM_OK;
}

/* State layout: for each tile, a uint64 byte count then the tile's state. */
int ohm_model_counters(const ohm_model_t *m, ohm_tile_counters_t *sum)
{
    *sum = (ohm_tile_counters_t){0};
    int counting = 0;
    for (int l = 0; l < m->L; l++) {
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
    for (int l = 0; l < m->L; l++)
        s += sizeof(uint64_t) + ohm_tile_state_size(m->tiles[l]);
    return s;
}

void ohm_model_state_save(const ohm_model_t *m, void *buf)
{
    unsigned char *p = buf;
    for (int l = 0; l < m->L; l++) {
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
    for (int l = 0; l < m->L; l++) {
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
