/* ohm_hvp: gradient and exact Hessian-vector products of a network in double.
 *
 * Notation per chunk of c examples, layer i with a tile: T_i its input rows
 * (the input with a bias column, or the unrolled patches of a convolution;
 * ohm_conv.h), z_i = T_i W_i^T, out_i = act(z_i) (or z_i for the output
 * layer); a pooling layer is out_i = P_i(out_{i-1}), a linear map at the
 * argmax of the forward pass (ohm_pool.h). The backward pass carries
 * g_i = dLoss/d out_i (with the 1/n of the mean), turned in place into
 * d_i = g_i act'(z_i) at a tile layer, whose gradient is d_i^T T_i. The
 * R-operator R{f} = d/de f(w + e v) at e = 0 applied to every line gives
 * H v = R{d_i^T T_i}:
 *   R{T_i} = unroll(R{out_{i-1}}) (bias column 0),  R{z_i} = R{T_i} W_i^T + T_i V_i^T,
 *   R{out_i} = act'(z_i) R{z_i}, or P_i(R{out_{i-1}}) for a pool;
 *   R{d_i} = R{g_i} act'(z_i) + g_i act''(z_i) R{z_i},
 *   H v for W_i = R{d_i}^T T_i + d_i^T R{T_i},
 *   R{g_{i-1}} = fold(R{d_i} W_i + d_i V_i), or P_i^T(R{g_i}) below a pool;
 * with the output's R{g} = softmax Jacobian times R{y} (cross-entropy) or
 * R{y} (squared error). act' and act'' are recovered from the outputs. The
 * first layer's input does not depend on the weights, so its R-terms vanish.
 *
 * Memory: every layer's output for the whole batch is kept from the forward
 * pass at the current parameters when that fits KEEP_DOUBLES (MLPs, small
 * batches); otherwise each product recomputes the chunk's forward pass. */
#include "ohm_hvp.h"

#include "ohm_conv.h"
#include "ohm_error.h"
#include "ohm_plan.h"
#include "ohm_pool.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef OHM_HAVE_OPENBLAS
#include <cblas.h>
#endif

/* Examples per chunk at most: large enough for efficient GEMMs. Fewer when one
 * example's workspace is large (convolutions), so a chunk's workspace stays
 * near CHUNK_DOUBLES. */
#define CHUNK 512
#define CHUNK_DOUBLES (8u << 20)
/* Layer outputs of the whole batch kept across products up to this many doubles. */
#define KEEP_DOUBLES (32u << 20)

#define MAXL OHM_LAYERS_MAX

struct ohm_hvp {
    ohm_model_spec_t spec;
    ohm_plan_t plan;
    const ohm_batch_t *b;
    size_t P;
    double *w;
    int chunk; /* examples per chunk */
    int keep;  /* 1: Out/Arg hold every example's layer outputs at w */
    /* Forward at w: loss, accuracy, and outc = softmax(y) (cross-entropy) or y - t. */
    int cached;
    double loss, acc;
    double *outc;
    double *Out[MAXL];  /* keep: n x out_size */
    int32_t *Arg[MAXL]; /* keep: max pools, n x out_size */
    /* Per-chunk workspace. */
    double *x0;           /* chunk x in_size: the input as doubles */
    double *out[MAXL];    /* chunk x out_size: outputs when not kept, and of loss_at */
    int32_t *arg[MAXL];   /* max pools */
    double *probs;        /* chunk x n_out: scratch output of recomputed passes */
    double *tin[MAXL];    /* tile layers: (chunk * positions) x cols */
    double *rtin[MAXL];   /* tile layers after the first: R{T} */
    double *rz[MAXL];     /* chunk x out_size: R{z} (tile layers) */
    double *rout[MAXL];   /* chunk x out_size: R{out} */
    double *g[MAXL];      /* chunk x out_size */
    double *rg[MAXL];     /* chunk x out_size */
    double *back, *rback; /* (chunk * positions) x cols, the largest */
};

/* C[m x n] = alpha op(A) op(B) + beta C, row-major, natural leading dimensions. */
static void dgemm(int ta, int tb, int m, int n, int k, double alpha, const double *a,
                  const double *b, double beta, double *c)
{
#ifdef OHM_HAVE_OPENBLAS
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
                k, alpha, a, ta ? m : k, b, tb ? k : n, beta, c, n);
#else
    for (int i = 0; i < m; i++) {
        double *ci = c + (size_t)i * n;
        for (int j = 0; j < n; j++)
            ci[j] = beta == 0.0 ? 0.0 : beta * ci[j];
        for (int p = 0; p < k; p++) {
            double av = alpha * (ta ? a[(size_t)p * m + i] : a[(size_t)i * k + p]);
            if (av == 0.0) continue;
            if (!tb) {
                const double *bp = b + (size_t)p * n;
                for (int j = 0; j < n; j++)
                    ci[j] += av * bp[j];
            } else {
                for (int j = 0; j < n; j++)
                    ci[j] += av * b[(size_t)j * k + p];
            }
        }
    }
#endif
}

static double act_f(int act, double v)
{
    switch (act) {
    case OHM_ACT_RELU:
        return v > 0 ? v : 0.0;
    case OHM_ACT_TANH:
        return tanh(v);
    default:
        return 1.0 / (1.0 + exp(-v));
    }
}

/* First and second derivative of the activation, from its output h. ReLU's
 * second derivative is 0 almost everywhere (its kink has measure zero). */
static void act_d(int act, double h, double *d1, double *d2)
{
    switch (act) {
    case OHM_ACT_RELU:
        *d1 = h > 0 ? 1.0 : 0.0;
        *d2 = 0.0;
        break;
    case OHM_ACT_TANH:
        *d1 = 1.0 - h * h;
        *d2 = -2.0 * h * *d1;
        break;
    default:
        *d1 = h * (1.0 - h);
        *d2 = *d1 * (1.0 - 2.0 * h);
        break;
    }
}

static int spec_check(const ohm_model_spec_t *s, ohm_plan_t *plan)
{
    if (s->act < OHM_ACT_RELU || s->act > OHM_ACT_SIGMOID || s->loss < OHM_LOSS_XENT ||
        s->loss > OHM_LOSS_MSE)
        return ohm_error_set(OHM_EINVAL, "hvp: bad activation or loss");
    if (s->loss == OHM_LOSS_XENT && s->n_out < 2)
        return ohm_error_set(OHM_EINVAL, "hvp: cross-entropy needs at least 2 outputs");
    int rc = ohm_plan_build(s, plan);
    if (rc) {
        char d[400];
        snprintf(d, sizeof d, "%s", ohm_error_detail());
        return ohm_error_set(rc, "hvp: %s", d);
    }
    return OHM_OK;
}

size_t ohm_hvp_nparams_of(const ohm_model_spec_t *s)
{
    ohm_plan_t p;
    return ohm_plan_build(s, &p) ? 0 : p.nparams;
}

void ohm_hvp_destroy(ohm_hvp_t **ph)
{
    if (!ph || !*ph) return;
    ohm_hvp_t *h = *ph;
    free(h->w);
    free(h->outc);
    free(h->x0);
    free(h->probs);
    free(h->back);
    free(h->rback);
    for (int l = 0; l < MAXL; l++) {
        free(h->Out[l]);
        free(h->Arg[l]);
        free(h->out[l]);
        free(h->arg[l]);
        free(h->tin[l]);
        free(h->rtin[l]);
        free(h->rz[l]);
        free(h->rout[l]);
        free(h->g[l]);
        free(h->rg[l]);
    }
    free(h);
    *ph = NULL;
}

static double *dalloc(size_t n)
{
    return malloc(sizeof(double) * (n ? n : 1));
}

static size_t rows_of(const ohm_plan_layer_t *L)
{
    return (size_t)L->positions * (size_t)L->cols;
}

/* Allocates the whole-batch cache (if it fits) and the per-chunk workspace. */
static int alloc_work(ohm_hvp_t *h)
{
    const ohm_plan_t *p = &h->plan;
    size_t n = (size_t)h->b->n, K = (size_t)p->out_size;
    size_t per = (size_t)p->in_size + 2 * K, kept = 0, backmax = 0;
    for (int i = 0; i < p->n; i++) {
        const ohm_plan_layer_t *L = &p->l[i];
        per += 6 * (size_t)L->out_size;
        kept += (size_t)L->out_size;
        if (L->tile >= 0) per += 2 * rows_of(L);
        if (L->tile >= 0 && i > 0 && rows_of(L) > backmax) backmax = rows_of(L);
    }
    per += 2 * backmax;
    size_t c = CHUNK_DOUBLES / per;
    h->chunk = c < 1 ? 1 : c > CHUNK ? CHUNK : (int)c;
    if ((size_t)h->chunk > n) h->chunk = (int)n;
    h->keep = kept * n <= KEEP_DOUBLES;
    size_t C = (size_t)h->chunk;
    int ok = (h->outc = dalloc(n * K)) && (h->x0 = dalloc(C * p->in_size)) &&
             (h->probs = dalloc(C * K)) && (h->back = dalloc(C * backmax)) &&
             (h->rback = dalloc(C * backmax));
    for (int i = 0; ok && i < p->n; i++) {
        const ohm_plan_layer_t *L = &p->l[i];
        size_t o = (size_t)L->out_size;
        int mx = L->kind == OHM_LAYER_MAXPOOL;
        ok = (h->out[i] = dalloc(C * o)) && (h->rout[i] = dalloc(C * o)) &&
             (h->g[i] = dalloc(C * o)) && (h->rg[i] = dalloc(C * o)) &&
             (!mx || (h->arg[i] = malloc(sizeof(int32_t) * C * o)));
        if (ok && L->tile >= 0)
            ok = (h->tin[i] = dalloc(C * rows_of(L))) && (h->rz[i] = dalloc(C * o)) &&
                 (i == 0 || (h->rtin[i] = dalloc(C * rows_of(L))));
        if (ok && h->keep)
            ok = (h->Out[i] = dalloc(n * o)) &&
                 (!mx || (h->Arg[i] = malloc(sizeof(int32_t) * n * o)));
    }
    return ok ? OHM_OK : ohm_error_set(OHM_ENOMEM, "hvp: workspace for %zu examples", n);
}

int ohm_hvp_new(const ohm_model_spec_t *spec, const ohm_batch_t *b, ohm_hvp_t **out)
{
    *out = NULL;
    ohm_plan_t plan;
    int rc = spec_check(spec, &plan);
    if (rc) return rc;
    if (b->n < 1 || b->dim != spec->n_in)
        return ohm_error_set(OHM_ESHAPE, "hvp: batch of %d x %d for a model with %d inputs", b->n,
                             b->dim, spec->n_in);
    if (spec->loss == OHM_LOSS_XENT ? !b->y : (!b->t || b->tdim != spec->n_out))
        return ohm_error_set(OHM_ESHAPE, "hvp: batch targets do not fit the model's loss");
    if (spec->loss == OHM_LOSS_XENT)
        for (int i = 0; i < b->n; i++)
            if (b->y[i] < 0 || b->y[i] >= spec->n_out)
                return ohm_error_set(OHM_ERANGE, "hvp: label %d of example %d outside [0, %d)",
                                     (int)b->y[i], i, spec->n_out);
    ohm_hvp_t *h = calloc(1, sizeof *h);
    if (!h) return ohm_error_set(OHM_ENOMEM, "hvp");
    h->spec = *spec;
    h->plan = plan;
    h->b = b;
    h->P = plan.nparams;
    if (!(h->w = calloc(h->P ? h->P : 1, sizeof(double))) || (rc = alloc_work(h))) {
        ohm_hvp_destroy(&h);
        return rc ? rc : ohm_error_set(OHM_ENOMEM, "hvp: parameters");
    }
    *out = h;
    return OHM_OK;
}

void ohm_hvp_recompute(ohm_hvp_t *h)
{
    for (int i = 0; i < MAXL; i++) {
        free(h->Out[i]);
        free(h->Arg[i]);
        h->Out[i] = NULL;
        h->Arg[i] = NULL;
    }
    h->keep = 0;
    h->cached = 0;
}

size_t ohm_hvp_nparams(const ohm_hvp_t *h)
{
    return h->P;
}

const double *ohm_hvp_params(const ohm_hvp_t *h)
{
    return h->w;
}

int ohm_hvp_set_params(ohm_hvp_t *h, const double *w)
{
    for (size_t i = 0; i < h->P; i++)
        if (!isfinite(w[i]))
            return ohm_error_set(OHM_ENONFINITE, "hvp: parameter %zu is not finite", i);
    memcpy(h->w, w, sizeof(double) * h->P);
    h->cached = 0;
    return OHM_OK;
}

int ohm_hvp_set_params_float(ohm_hvp_t *h, const float *w)
{
    for (size_t i = 0; i < h->P; i++)
        if (!isfinite(w[i]))
            return ohm_error_set(OHM_ENONFINITE, "hvp: parameter %zu is not finite", i);
    for (size_t i = 0; i < h->P; i++)
        h->w[i] = w[i];
    h->cached = 0;
    return OHM_OK;
}

/* Examples [off, off+c) into x0 as doubles. */
static void load_input(ohm_hvp_t *h, int off, int c)
{
    size_t k = (size_t)c * h->plan.in_size;
    const float *x = h->b->x + (size_t)off * h->plan.in_size;
    for (size_t i = 0; i < k; i++)
        h->x0[i] = x[i];
}

/* The rows tile layer L reads from its input x (c examples), bias input `one`. */
static void tile_input(const ohm_hvp_t *h, const ohm_plan_layer_t *L, const double *x, int c,
                       double *t, double one)
{
    if (L->kind == OHM_LAYER_CONV) {
        ohm_conv_unroll_d(L, x, c, t, L->cols, one);
        return;
    }
    int in = L->in_size;
    for (int e = 0; e < c; e++) {
        memcpy(t + (size_t)e * L->cols, x + (size_t)e * in, sizeof(double) * in);
        if (h->spec.bias) t[(size_t)e * L->cols + in] = one;
    }
}

/* Forward of the chunk in x0 at weights w: layer outputs into outs[i] (max
 * pools' indices into args[i]), tile rows into tin[i], and softmax
 * probabilities or residuals into probs (c x n_out). Returns the summed loss;
 * *correct counts right argmax predictions. */
static double forward_chunk(ohm_hvp_t *h, const double *w, int off, int c, double *const *outs,
                            int32_t *const *args, double *probs, long *correct)
{
    const ohm_plan_t *p = &h->plan;
    int K = p->out_size;
    const double *in = h->x0;
    for (int i = 0; i < p->n; i++) {
        const ohm_plan_layer_t *L = &p->l[i];
        double *o = outs[i];
        if (L->tile >= 0) {
            tile_input(h, L, in, c, h->tin[i], 1.0);
            dgemm(0, 1, c * L->positions, L->rows, L->cols, 1.0, h->tin[i], w + L->off, 0.0, o);
            if (L->act) {
                size_t k = (size_t)c * L->out_size;
                for (size_t j = 0; j < k; j++)
                    o[j] = act_f(h->spec.act, o[j]);
            }
        } else {
            ohm_pool_forward_d(L, in, c, o, args[i]);
        }
        in = o;
    }
    double loss = 0.0;
    long ok = 0;
    for (int i = 0; i < c; i++) {
        const double *y = in + (size_t)i * K;
        double *q = probs + (size_t)i * K;
        if (h->spec.loss == OHM_LOSS_XENT) {
            int label = h->b->y[off + i], arg = 0;
            double mx = y[0];
            for (int k = 1; k < K; k++)
                if (y[k] > mx) {
                    mx = y[k];
                    arg = k;
                }
            ok += arg == label;
            double s = 0.0;
            for (int k = 0; k < K; k++)
                s += exp(y[k] - mx);
            loss += log(s) - (y[label] - mx);
            for (int k = 0; k < K; k++)
                q[k] = exp(y[k] - mx) / s;
        } else {
            const float *t = h->b->t + (size_t)(off + i) * K;
            for (int k = 0; k < K; k++) {
                q[k] = y[k] - t[k];
                loss += 0.5 * q[k] * q[k];
            }
        }
    }
    if (correct) *correct += ok;
    return loss;
}

static int chunk_len(const ohm_hvp_t *h, int off)
{
    return h->b->n - off < h->chunk ? h->b->n - off : h->chunk;
}

/* Pointers to the kept outputs of the chunk at off. */
static void kept_chunk(ohm_hvp_t *h, int off, double **outs, int32_t **args)
{
    for (int i = 0; i < h->plan.n; i++) {
        size_t o = (size_t)off * h->plan.l[i].out_size;
        outs[i] = h->Out[i] + o;
        args[i] = h->Arg[i] ? h->Arg[i] + o : NULL;
    }
}

/* Fills the forward cache at the current parameters (once per set_params). */
static void ensure_forward(ohm_hvp_t *h)
{
    if (h->cached) return;
    int K = h->plan.out_size;
    double total = 0.0;
    long correct = 0;
    double *outs[MAXL];
    int32_t *args[MAXL];
    for (int off = 0; off < h->b->n; off += h->chunk) {
        int c = chunk_len(h, off);
        if (h->keep) {
            kept_chunk(h, off, outs, args);
        } else {
            memcpy(outs, h->out, sizeof outs);
            memcpy(args, h->arg, sizeof args);
        }
        load_input(h, off, c);
        total += forward_chunk(h, h->w, off, c, outs, args, h->outc + (size_t)off * K, &correct);
    }
    h->loss = total / h->b->n;
    h->acc = h->spec.loss == OHM_LOSS_XENT ? (double)correct / h->b->n : 0.0;
    h->cached = 1;
}

/* Everything the backward passes of the chunk at off need at the current
 * parameters: its input, every layer's output (outs, args) and tile rows. */
static void prepare_chunk(ohm_hvp_t *h, int off, int c, double **outs, int32_t **args)
{
    load_input(h, off, c);
    if (!h->keep) {
        memcpy(outs, h->out, sizeof(double *) * MAXL);
        memcpy(args, h->arg, sizeof(int32_t *) * MAXL);
        forward_chunk(h, h->w, off, c, outs, args, h->probs, NULL);
        return;
    }
    kept_chunk(h, off, outs, args);
    const double *in = h->x0;
    for (int i = 0; i < h->plan.n; i++) {
        const ohm_plan_layer_t *L = &h->plan.l[i];
        if (L->tile >= 0) tile_input(h, L, in, c, h->tin[i], 1.0);
        in = outs[i];
    }
}

/* Output error dLoss/dy (with 1/n) of the chunk at off into g[last]. */
static void output_delta(ohm_hvp_t *h, int off, int c)
{
    int K = h->plan.out_size;
    double inv = 1.0 / h->b->n;
    const double *o = h->outc + (size_t)off * K;
    double *d = h->g[h->plan.n - 1];
    for (size_t i = 0; i < (size_t)c * K; i++)
        d[i] = inv * o[i];
    if (h->spec.loss == OHM_LOSS_XENT)
        for (int i = 0; i < c; i++)
            d[(size_t)i * K + h->b->y[off + i]] -= inv;
}

/* x (c x in_size) from the backward read rows of tile layer L (fold or drop the bias column). */
static void read_down(const ohm_plan_layer_t *L, const double *rows, int c, double *x)
{
    if (L->kind == OHM_LAYER_CONV) {
        ohm_conv_fold_d(L, rows, L->cols, c, x);
        return;
    }
    for (int e = 0; e < c; e++)
        memcpy(x + (size_t)e * L->in_size, rows + (size_t)e * L->cols,
               sizeof(double) * L->in_size);
}

void ohm_hvp_loss_grad(ohm_hvp_t *h, double *loss, double *acc, double *grad)
{
    ensure_forward(h);
    if (loss) *loss = h->loss;
    if (acc) *acc = h->acc;
    if (!grad) return;
    memset(grad, 0, sizeof(double) * h->P);
    double *outs[MAXL];
    int32_t *args[MAXL];
    for (int off = 0; off < h->b->n; off += h->chunk) {
        int c = chunk_len(h, off);
        prepare_chunk(h, off, c, outs, args);
        output_delta(h, off, c);
        for (int i = h->plan.n - 1; i >= 0; i--) {
            const ohm_plan_layer_t *L = &h->plan.l[i];
            double *g = h->g[i];
            if (L->tile < 0) {
                if (i > 0) ohm_pool_backward_d(L, g, args[i], c, h->g[i - 1]);
                continue;
            }
            if (L->act) {
                size_t k = (size_t)c * L->out_size;
                for (size_t j = 0; j < k; j++) {
                    double d1, d2;
                    act_d(h->spec.act, outs[i][j], &d1, &d2);
                    g[j] *= d1;
                }
            }
            int n = c * L->positions;
            dgemm(1, 0, L->rows, L->cols, n, 1.0, g, h->tin[i], 1.0, grad + L->off);
            if (i == 0) break;
            dgemm(0, 0, n, L->cols, L->rows, 1.0, g, h->w + L->off, 0.0, h->back);
            read_down(L, h->back, c, h->g[i - 1]);
        }
    }
}

void ohm_hvp_apply(ohm_hvp_t *h, const double *v, double *hv)
{
    ensure_forward(h);
    const ohm_plan_t *p = &h->plan;
    int last = p->n - 1, K = p->out_size;
    double inv = 1.0 / h->b->n;
    memset(hv, 0, sizeof(double) * h->P);
    double *outs[MAXL];
    int32_t *args[MAXL];
    for (int off = 0; off < h->b->n; off += h->chunk) {
        int c = chunk_len(h, off);
        prepare_chunk(h, off, c, outs, args);
        /* R-forward; the input's R{x} is 0. */
        for (int i = 0; i < p->n; i++) {
            const ohm_plan_layer_t *L = &p->l[i];
            size_t k = (size_t)c * L->out_size;
            if (L->tile < 0) {
                if (i == 0)
                    memset(h->rout[i], 0, sizeof(double) * k);
                else
                    ohm_pool_linear_d(L, h->rout[i - 1], args[i], c, h->rout[i]);
                continue;
            }
            int n = c * L->positions;
            double *rz = h->rz[i];
            if (i > 0) {
                tile_input(h, L, h->rout[i - 1], c, h->rtin[i], 0.0);
                dgemm(0, 1, n, L->rows, L->cols, 1.0, h->rtin[i], h->w + L->off, 0.0, rz);
            }
            dgemm(0, 1, n, L->rows, L->cols, 1.0, h->tin[i], v + L->off, i > 0 ? 1.0 : 0.0, rz);
            for (size_t j = 0; j < k; j++) {
                double d1 = 1.0, d2;
                if (L->act) act_d(h->spec.act, outs[i][j], &d1, &d2);
                h->rout[i][j] = d1 * rz[j];
            }
        }
        /* Output: g = dLoss/dy, R{g} = (d^2 Loss/dy^2) R{y}, both with 1/n. */
        output_delta(h, off, c);
        const double *ry = h->rout[last];
        double *rd = h->rg[last];
        for (int i = 0; i < c; i++) {
            const double *ri = ry + (size_t)i * K;
            double *di = rd + (size_t)i * K;
            if (h->spec.loss == OHM_LOSS_XENT) {
                const double *q = h->outc + (size_t)(off + i) * K;
                double pr = 0.0;
                for (int k = 0; k < K; k++)
                    pr += q[k] * ri[k];
                for (int k = 0; k < K; k++)
                    di[k] = inv * q[k] * (ri[k] - pr);
            } else {
                for (int k = 0; k < K; k++)
                    di[k] = inv * ri[k];
            }
        }
        /* R-backward. */
        for (int i = last; i >= 0; i--) {
            const ohm_plan_layer_t *L = &p->l[i];
            double *g = h->g[i], *rg = h->rg[i];
            if (L->tile < 0) {
                if (i == 0) continue;
                ohm_pool_backward_d(L, g, args[i], c, h->g[i - 1]);
                ohm_pool_backward_d(L, rg, args[i], c, h->rg[i - 1]);
                continue;
            }
            if (L->act) {
                size_t k = (size_t)c * L->out_size;
                const double *rz = h->rz[i];
                for (size_t j = 0; j < k; j++) {
                    double d1, d2;
                    act_d(h->spec.act, outs[i][j], &d1, &d2);
                    rg[j] = rg[j] * d1 + g[j] * d2 * rz[j];
                    g[j] *= d1;
                }
            }
            int n = c * L->positions;
            double *hl = hv + L->off;
            dgemm(1, 0, L->rows, L->cols, n, 1.0, rg, h->tin[i], 1.0, hl);
            if (i == 0) break;
            dgemm(1, 0, L->rows, L->cols, n, 1.0, g, h->rtin[i], 1.0, hl);
            const double *W = h->w + L->off, *V = v + L->off;
            dgemm(0, 0, n, L->cols, L->rows, 1.0, g, W, 0.0, h->back);
            dgemm(0, 0, n, L->cols, L->rows, 1.0, rg, W, 0.0, h->rback);
            dgemm(0, 0, n, L->cols, L->rows, 1.0, g, V, 1.0, h->rback);
            read_down(L, h->back, c, h->g[i - 1]);
            read_down(L, h->rback, c, h->rg[i - 1]);
        }
    }
}

double ohm_hvp_loss_at(ohm_hvp_t *h, const double *w)
{
    double total = 0.0;
    for (int off = 0; off < h->b->n; off += h->chunk) {
        int c = chunk_len(h, off);
        load_input(h, off, c);
        total += forward_chunk(h, w, off, c, h->out, h->arg, h->probs, NULL);
    }
    return total / h->b->n;
}
