/* analog-lsq: least squares on one analog tile, comparing digital SGD, Analog
 * SGD, Tiki-Taka and Residual Learning (the experiment of Wu et al., NeurIPS
 * 2024/2025). Prints CSV "iteration,algorithm,error" (error = f(w) - f*) and,
 * on stderr, the predicted Analog SGD floor and each algorithm's final figures.
 *
 *   analog-lsq [--algos digital,analog-sgd,tiki-taka,residual] [--iters 200000]
 *              [--every 1000] [--lr 0.005] [--decay 5000] [--batch 1] [--dim 50]
 *              [--rows 100] [--teacher 0.5] [--noise 0.5] [--response softbounds]
 *              [--tau 3.5] [--c 0] [--dw-min 0.001] [--update expected]
 *              [--beta 0.0001] [--gamma 0.5] [--transfer-columns D] [--buffered 0]
 *              [--seed 1] [--tag SUFFIX] [--no-header] [--out FILE]
 * --tag appends SUFFIX to the algorithm names in the CSV (to tell runs apart).
 * The defaults are the setting of tests/test_analog_theory.c: alpha_k =
 * lr/(1 + k/decay) removes SGD's noise floor but not the analog bias; beta is
 * small against alpha gamma^2 so the two-array methods are overdamped. */
#include "ohm_analog.h"
#include "ohm_dense.h"
#include "ohm_error.h"
#include "ohm_lsq.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *opt(int argc, char **argv, const char *key, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], key) == 0) return argv[i + 1];
    return def;
}

typedef struct {
    FILE *f;
    const char *algo, *tag;
} rec_t;

static void record(void *ctx, long it, double err)
{
    rec_t *r = ctx;
    fprintf(r->f, "%ld,%s%s,%.9g\n", it, r->algo, r->tag, err);
}

static int has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], flag) == 0) return 1;
    return 0;
}

static int parse_index(const char *v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0) return i;
    return -1;
}

int main(int argc, char **argv)
{
    static const char *const resp[] = {"ideal", "softbounds", "pow", "exp"};
    static const char *const algos[] = {"digital", "analog-sgd", "tiki-taka", "residual"};
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: analog-lsq [--algos LIST] [--iters N] [--every N] [--lr A] "
                   "[--decay K] [--batch B] [--dim D] [--rows N] [--teacher S] [--noise S] "
                   "[--response R] [--tau T] [--c C] [--dw-min D] [--update MODE] [--beta B] "
                   "[--gamma G] [--transfer-columns K] [--buffered 0|1] [--seed S] [--tag SUFFIX] "
                   "[--no-header] [--out FILE]\n");
            return 0;
        }
    ohm_dense_single_thread();
    int dim = atoi(opt(argc, argv, "--dim", "50")), rows = atoi(opt(argc, argv, "--rows", "100"));
    ohm_analog_params_t p;
    ohm_analog_params_default(&p);
    p.dev.response = parse_index(opt(argc, argv, "--response", "softbounds"), resp, 4);
    if (p.dev.response < 0) {
        fprintf(stderr, "analog-lsq: unknown --response\n");
        return 2;
    }
    p.dev.tau = atof(opt(argc, argv, "--tau", "3.5"));
    p.dev.c = atof(opt(argc, argv, "--c", "0"));
    p.dev.dw_min = atof(opt(argc, argv, "--dw-min", "0.001"));
    p.update = strcmp(opt(argc, argv, "--update", "expected"), "stochastic") == 0
                   ? OHM_UPDATE_STOCHASTIC
                   : OHM_UPDATE_EXPECTED;
    p.beta = atof(opt(argc, argv, "--beta", "0.0001"));
    p.gamma = atof(opt(argc, argv, "--gamma", "0.5"));
    p.transfer_columns = atoi(opt(argc, argv, "--transfer-columns", "0"));
    if (p.transfer_columns <= 0) p.transfer_columns = dim;
    p.buffered = atoi(opt(argc, argv, "--buffered", "0"));
    ohm_lsq_run_t run = {.iters = atol(opt(argc, argv, "--iters", "200000")),
                         .batch = atoi(opt(argc, argv, "--batch", "1")),
                         .lr = atof(opt(argc, argv, "--lr", "0.005")),
                         .lr_decay = atof(opt(argc, argv, "--decay", "5000")),
                         .every = atol(opt(argc, argv, "--every", "1000")),
                         .seed = strtoull(opt(argc, argv, "--seed", "1"), NULL, 10)};
    const char *out = opt(argc, argv, "--out", NULL);
    ohm_lsq_t *q = NULL;
    int rc = ohm_lsq_new(rows, dim, atof(opt(argc, argv, "--teacher", "0.5")),
                         atof(opt(argc, argv, "--noise", "0.5")), run.seed, &q);
    if (rc) {
        fprintf(stderr, "analog-lsq: %s: %s\n", ohm_strerror(rc), ohm_error_detail());
        return 1;
    }
    double floor_err = NAN;
    if (ohm_lsq_predict_floor(q, &p.dev, NULL, &floor_err) == OHM_OK)
        fprintf(stderr, "# predicted analog-sgd floor (batch 1, expected mode): %.6g\n", floor_err);
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) {
        perror(out);
        ohm_lsq_destroy(&q);
        return 1;
    }
    if (!has_flag(argc, argv, "--no-header")) fprintf(f, "iteration,algorithm,error\n");
    const char *tag = opt(argc, argv, "--tag", "");
    char list[256];
    snprintf(list, sizeof list, "%s",
             opt(argc, argv, "--algos", "digital,analog-sgd,tiki-taka,residual"));
    for (char *save = NULL, *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
        int k = parse_index(a, algos, 4);
        if (k < 0) {
            fprintf(stderr, "analog-lsq: unknown algorithm '%s'\n", a);
            rc = 2;
            break;
        }
        p.opt = k;
        rec_t r = {f, a, tag};
        run.record = record;
        run.ctx = &r;
        ohm_lsq_result_t res;
        rc = ohm_lsq_run(q, &p, &run, &res);
        if (rc) {
            fprintf(stderr, "analog-lsq: %s: %s: %s\n", a, ohm_strerror(rc), ohm_error_detail());
            break;
        }
        fprintf(stderr, "# %s%s: last %.6g  mean(2nd half) %.6g  averaged-iterate %.6g\n", a, tag,
                res.last_err, res.mean_err, res.avg_err);
    }
    if (f != stdout) fclose(f);
    ohm_lsq_destroy(&q);
    return rc ? 1 : 0;
}
