/* ohm_hvp: gradient and exact Hessian-vector products of an MLP in double.
 *
 * Notation per chunk of c examples (rows): a_l is the input of layer l with its
 * bias column (c x cols_l), z_l = a_l W_l^T, a_{l+1} = [act(z_l), 1]. The
 * backward pass carries d_l = dLoss/dz_l (with the 1/n of the mean), and the
 * gradient of W_l is d_l^T a_l. The R-operator R{f} = d/de f(w + e v) at e = 0
 * applied to every line of forward and backward gives H v = R{d_l^T a_l}:
 *   R{z_l} = R{a_l} W_l^T + a_l V_l^T,  R{h} = act'(z) R{z},
 *   R{d_l} W_l + d_l V_l carried down as the backward read,
 *   R{d_{l-1}} = R{back} act'(z) + back act''(z) R{z},
 * with the output's R{d} = softmax Jacobian times R{y} (cross-entropy) or R{y}
 * (squared error). act' and act'' are recovered from the cached outputs h. */
#include "ohm_hvp.h"

#include "ohm_error.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef OHM_HAVE_OPENBLAS
#include <cblas.h>
#endif

/* Examples per chunk: large enough for efficient GEMMs, small enough that the
 * per-chunk workspace stays a few MB for 784-wide inputs. */
#define CHUNK 512

#define MAXL OHM_MODEL_MAX_LAYERS

struct ohm_hvp {
    ohm_model_spec_t spec;
    const ohm_batch_t *b;
    int L;
    int dims[MAXL + 1];
    int cols[MAXL];
    size_t off[MAXL]; /* offset of layer l in the flat vector */
    size_t P;
    double *w;
    /* Forward cache at w: A[l] (l >= 1) is the input of layer l for every
     * example (n x cols_l); outc is softmax(y) (cross-entropy) or y - t. */
    int cached;
    double loss, acc;
    double *A[MAXL];
    double *outc;
    /* Per-chunk workspace. */
    double *a0;           /* CHUNK x cols_0: the input with its bias column */
    double *z[MAXL];      /* CHUNK x dims_{l+1}: pre-activations (scratch) */
    double *act[MAXL];    /* CHUNK x cols_l, l >= 1: activations of loss_at */
    double *outs;         /* CHUNK x n_out (loss_at) */
    double *del[MAXL];    /* CHUNK x dims_{l+1} */
    double *rdel[MAXL];   /* CHUNK x dims_{l+1} */
    double *rz[MAXL];     /* CHUNK x dims_{l+1} */
    double *ra[MAXL];     /* CHUNK x cols_l, l >= 1 */
    double *back, *rback; /* CHUNK x max cols */
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

static int spec_check(const ohm_model_spec_t *s)
{
    if (s->n_in < 1 || s->n_out < 1 || s->n_hidden < 0 || s->n_hidden > MAXL - 1)
        return ohm_error_set(OHM_EINVAL, "hvp: bad shape (in %d, out %d, %d hidden layers)",
                             s->n_in, s->n_out, s->n_hidden);
    if (s->act < OHM_ACT_RELU || s->act > OHM_ACT_SIGMOID || s->loss < OHM_LOSS_XENT ||
        s->loss > OHM_LOSS_MSE)
        return ohm_error_set(OHM_EINVAL, "hvp: bad activation or loss");
    if (s->loss == OHM_LOSS_XENT && s->n_out < 2)
        return ohm_error_set(OHM_EINVAL, "hvp: cross-entropy needs at least 2 outputs");
    for (int i = 0; i < s->n_hidden; i++)
        if (s->hidden[i] < 1)
            return ohm_error_set(OHM_EINVAL, "hvp: hidden layer %d has size %d", i, s->hidden[i]);
    return OHM_OK;
}

size_t ohm_hvp_nparams_of(const ohm_model_spec_t *s)
{
    size_t p = 0;
    int in = s->n_in;
    for (int l = 0; l <= s->n_hidden; l++) {
        int out = l < s->n_hidden ? s->hidden[l] : s->n_out;
        p += (size_t)out * (size_t)(in + (s->bias ? 1 : 0));
        in = out;
    }
    return p;
}

void ohm_hvp_destroy(ohm_hvp_t **ph)
{
    if (!ph || !*ph) return;
    ohm_hvp_t *h = *ph;
    free(h->w);
    free(h->outc);
    free(h->a0);
    free(h->outs);
    free(h->back);
    free(h->rback);
    for (int l = 0; l < MAXL; l++) {
        free(h->A[l]);
        free(h->z[l]);
        free(h->act[l]);
        free(h->del[l]);
        free(h->rdel[l]);
        free(h->rz[l]);
        free(h->ra[l]);
    }
    free(h);
    *ph = NULL;
}

static double *dalloc(size_t n)
{
    return malloc(sizeof(double) * (n ? n : 1));
}

int ohm_hvp_new(const ohm_model_spec_t *spec, const ohm_batch_t *b, ohm_hvp_t **out)
{
    *out = NULL;
    int rc = spec_check(spec);
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
    h->b = b;
    h->L = spec->n_hidden + 1;
    h->dims[0] = spec->n_in;
    for (int i = 0; i < spec->n_hidden; i++)
        h->dims[i + 1] = spec->hidden[i];
    h->dims[h->L] = spec->n_out;
    int maxcols = 0;
    for (int l = 0; l < h->L; l++) {
        h->cols[l] = h->dims[l] + (spec->bias ? 1 : 0);
        h->off[l] = h->P;
        h->P += (size_t)h->dims[l + 1] * (size_t)h->cols[l];
        if (h->cols[l] > maxcols) maxcols = h->cols[l];
    }
    size_t n = (size_t)b->n, K = (size_t)spec->n_out;
    int ok = (h->w = calloc(h->P, sizeof(double))) && (h->outc = dalloc(n * K)) &&
             (h->a0 = dalloc((size_t)CHUNK * h->cols[0])) && (h->outs = dalloc(CHUNK * K)) &&
             (h->back = dalloc((size_t)CHUNK * maxcols)) &&
             (h->rback = dalloc((size_t)CHUNK * maxcols));
    for (int l = 0; ok && l < h->L; l++) {
        size_t r = (size_t)h->dims[l + 1];
        ok = (h->z[l] = dalloc(CHUNK * r)) && (h->del[l] = dalloc(CHUNK * r)) &&
             (h->rdel[l] = dalloc(CHUNK * r)) && (h->rz[l] = dalloc(CHUNK * r));
        if (ok && l > 0)
            ok = (h->A[l] = dalloc(n * h->cols[l])) &&
                 (h->act[l] = dalloc((size_t)CHUNK * h->cols[l])) &&
                 (h->ra[l] = dalloc((size_t)CHUNK * h->cols[l]));
    }
    if (!ok) {
        ohm_hvp_destroy(&h);
        return ohm_error_set(OHM_ENOMEM, "hvp: workspace for %zu examples", n);
    }
    *out = h;
    return OHM_OK;
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

/* Examples [off, off+c) into a0 as doubles, with the bias column. */
static void load_input(ohm_hvp_t *h, int off, int c)
{
    int in = h->dims[0], cols = h->cols[0];
    const float *x = h->b->x + (size_t)off * in;
    for (int i = 0; i < c; i++) {
        double *d = h->a0 + (size_t)i * cols;
        const float *s = x + (size_t)i * in;
        for (int j = 0; j < in; j++)
            d[j] = s[j];
        if (h->spec.bias) d[in] = 1.0;
    }
}

/* Forward of the chunk in a0 at weights w: layer inputs into acts[l] (l >= 1,
 * c x cols_l each), softmax probabilities or residuals into out (c x n_out).
 * Returns the summed loss; *correct counts right argmax predictions. */
static double forward_chunk(ohm_hvp_t *h, const double *w, int off, int c, double *const *acts,
                            double *out, long *correct)
{
    int L = h->L, K = h->dims[L];
    const double *a = h->a0;
    for (int l = 0; l < L; l++) {
        int r = h->dims[l + 1], cl = h->cols[l];
        double *z = l == L - 1 ? out : h->z[l];
        dgemm(0, 1, c, r, cl, 1.0, a, w + h->off[l], 0.0, z);
        if (l == L - 1) break;
        double *an = acts[l + 1];
        int cn = h->cols[l + 1];
        for (int i = 0; i < c; i++) {
            double *dst = an + (size_t)i * cn;
            const double *src = z + (size_t)i * r;
            for (int j = 0; j < r; j++)
                dst[j] = act_f(h->spec.act, src[j]);
            if (h->spec.bias) dst[r] = 1.0;
        }
        a = an;
    }
    double loss = 0.0;
    long ok = 0;
    for (int i = 0; i < c; i++) {
        double *y = out + (size_t)i * K;
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
                y[k] = exp(y[k] - mx) / s;
        } else {
            const float *t = h->b->t + (size_t)(off + i) * K;
            for (int k = 0; k < K; k++) {
                y[k] -= t[k];
                loss += 0.5 * y[k] * y[k];
            }
        }
    }
    if (correct) *correct += ok;
    return loss;
}

static int chunk_len(const ohm_hvp_t *h, int off)
{
    return h->b->n - off < CHUNK ? h->b->n - off : CHUNK;
}

/* Fills the forward cache at the current parameters (once per set_params). */
static void ensure_forward(ohm_hvp_t *h)
{
    if (h->cached) return;
    int K = h->dims[h->L];
    double total = 0.0;
    long correct = 0;
    double *acts[MAXL] = {0};
    for (int off = 0; off < h->b->n; off += CHUNK) {
        int c = chunk_len(h, off);
        for (int l = 1; l < h->L; l++)
            acts[l] = h->A[l] + (size_t)off * h->cols[l];
        load_input(h, off, c);
        total += forward_chunk(h, h->w, off, c, acts, h->outc + (size_t)off * K, &correct);
    }
    h->loss = total / h->b->n;
    h->acc = h->spec.loss == OHM_LOSS_XENT ? (double)correct / h->b->n : 0.0;
    h->cached = 1;
}

/* Input of layer l for the chunk at off. */
static const double *layer_input(const ohm_hvp_t *h, int l, int off)
{
    return l == 0 ? h->a0 : h->A[l] + (size_t)off * h->cols[l];
}

/* Output error dLoss/dy (with 1/n) of the chunk at off into del[L-1]. */
static void output_delta(ohm_hvp_t *h, int off, int c)
{
    int K = h->dims[h->L];
    double inv = 1.0 / h->b->n;
    const double *o = h->outc + (size_t)off * K;
    double *d = h->del[h->L - 1];
    for (size_t i = 0; i < (size_t)c * K; i++)
        d[i] = inv * o[i];
    if (h->spec.loss == OHM_LOSS_XENT)
        for (int i = 0; i < c; i++)
            d[(size_t)i * K + h->b->y[off + i]] -= inv;
}

void ohm_hvp_loss_grad(ohm_hvp_t *h, double *loss, double *acc, double *grad)
{
    ensure_forward(h);
    if (loss) *loss = h->loss;
    if (acc) *acc = h->acc;
    if (!grad) return;
    memset(grad, 0, sizeof(double) * h->P);
    for (int off = 0; off < h->b->n; off += CHUNK) {
        int c = chunk_len(h, off);
        load_input(h, off, c);
        output_delta(h, off, c);
        for (int l = h->L - 1; l >= 0; l--) {
            int r = h->dims[l + 1], cl = h->cols[l];
            dgemm(1, 0, r, cl, c, 1.0, h->del[l], layer_input(h, l, off), 1.0, grad + h->off[l]);
            if (l == 0) break;
            dgemm(0, 0, c, cl, r, 1.0, h->del[l], h->w + h->off[l], 0.0, h->back);
            int below = h->dims[l];
            const double *A = layer_input(h, l, off);
            for (int i = 0; i < c; i++)
                for (int j = 0; j < below; j++) {
                    double d1, d2;
                    act_d(h->spec.act, A[(size_t)i * cl + j], &d1, &d2);
                    h->del[l - 1][(size_t)i * below + j] = h->back[(size_t)i * cl + j] * d1;
                }
        }
    }
}

void ohm_hvp_apply(ohm_hvp_t *h, const double *v, double *hv)
{
    ensure_forward(h);
    int L = h->L, K = h->dims[L];
    double inv = 1.0 / h->b->n;
    memset(hv, 0, sizeof(double) * h->P);
    for (int off = 0; off < h->b->n; off += CHUNK) {
        int c = chunk_len(h, off);
        load_input(h, off, c);
        /* R-forward: R{a_0} = 0, so R{z_0} = a_0 V_0^T. */
        dgemm(0, 1, c, h->dims[1], h->cols[0], 1.0, h->a0, v + h->off[0], 0.0, h->rz[0]);
        for (int l = 1; l < L; l++) {
            int r = h->dims[l], cl = h->cols[l];
            const double *A = layer_input(h, l, off);
            double *ra = h->ra[l];
            for (int i = 0; i < c; i++) {
                for (int j = 0; j < r; j++) {
                    double d1, d2;
                    act_d(h->spec.act, A[(size_t)i * cl + j], &d1, &d2);
                    ra[(size_t)i * cl + j] = d1 * h->rz[l - 1][(size_t)i * r + j];
                }
                if (h->spec.bias) ra[(size_t)i * cl + r] = 0.0;
            }
            dgemm(0, 1, c, h->dims[l + 1], cl, 1.0, ra, h->w + h->off[l], 0.0, h->rz[l]);
            dgemm(0, 1, c, h->dims[l + 1], cl, 1.0, A, v + h->off[l], 1.0, h->rz[l]);
        }
        /* Output: d = dLoss/dy, R{d} = (d^2 Loss/dy^2) R{y}, both with 1/n. */
        output_delta(h, off, c);
        const double *ry = h->rz[L - 1];
        double *rd = h->rdel[L - 1];
        for (int i = 0; i < c; i++) {
            const double *ri = ry + (size_t)i * K;
            double *di = rd + (size_t)i * K;
            if (h->spec.loss == OHM_LOSS_XENT) {
                const double *p = h->outc + (size_t)(off + i) * K;
                double pr = 0.0;
                for (int k = 0; k < K; k++)
                    pr += p[k] * ri[k];
                for (int k = 0; k < K; k++)
                    di[k] = inv * p[k] * (ri[k] - pr);
            } else {
                for (int k = 0; k < K; k++)
                    di[k] = inv * ri[k];
            }
        }
        /* R-backward. */
        for (int l = L - 1; l >= 0; l--) {
            int r = h->dims[l + 1], cl = h->cols[l];
            const double *A = layer_input(h, l, off);
            double *hl = hv + h->off[l];
            dgemm(1, 0, r, cl, c, 1.0, h->rdel[l], A, 1.0, hl);
            if (l == 0) break;
            dgemm(1, 0, r, cl, c, 1.0, h->del[l], h->ra[l], 1.0, hl);
            const double *W = h->w + h->off[l], *V = v + h->off[l];
            dgemm(0, 0, c, cl, r, 1.0, h->del[l], W, 0.0, h->back);
            dgemm(0, 0, c, cl, r, 1.0, h->rdel[l], W, 0.0, h->rback);
            dgemm(0, 0, c, cl, r, 1.0, h->del[l], V, 1.0, h->rback);
            int below = h->dims[l];
            double *dd = h->del[l - 1], *rdd = h->rdel[l - 1];
            const double *rzb = h->rz[l - 1];
            for (int i = 0; i < c; i++)
                for (int j = 0; j < below; j++) {
                    double d1, d2;
                    act_d(h->spec.act, A[(size_t)i * cl + j], &d1, &d2);
                    double bk = h->back[(size_t)i * cl + j];
                    dd[(size_t)i * below + j] = bk * d1;
                    rdd[(size_t)i * below + j] =
                        h->rback[(size_t)i * cl + j] * d1 + bk * d2 * rzb[(size_t)i * below + j];
                }
        }
    }
}

double ohm_hvp_loss_at(ohm_hvp_t *h, const double *w)
{
    double total = 0.0;
    for (int off = 0; off < h->b->n; off += CHUNK) {
        int c = chunk_len(h, off);
        load_input(h, off, c);
        total += forward_chunk(h, w, off, c, h->act, h->outs, NULL);
    }
    return total / h->b->n;
}
