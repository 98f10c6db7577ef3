/* ohm_robust: robust decentralized aggregation rules (docs/robust.md, section "Rules").
 *
 * Pure functions over k vectors of d floats: row 0 is the peer's own vector,
 * rows 1..k-1 its neighbours'. `w[k]` are the combination weights (w[0] the
 * self weight; they sum to 1 for the weighted rules; ignored by rules that do
 * not use them). `b` is the number of Byzantine neighbours tolerated. No rule
 * lets a NaN or Inf input reach its output; every rule is deterministic.
 * This module depends on libc and libm only. */
#ifndef OHM_ROBUST_H
#define OHM_ROBUST_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    OHM_RULE_MEAN = 0,
    OHM_RULE_WEIGHTED,
    OHM_RULE_TRIMMED_MEAN,
    OHM_RULE_MEDIAN,
    OHM_RULE_GEOMED,
    OHM_RULE_KRUM,
    OHM_RULE_MULTI_KRUM,
    OHM_RULE_CC,
    OHM_RULE_SCC,
    OHM_RULE_FABA,
    OHM_RULE_IOS,
    OHM_RULE_COUNT
} ohm_rule_t;

/* Return codes of this module (it has no dependency on libohm's error table). */
enum {
    OHM_ROBUST_OK = 0,
    OHM_ROBUST_EARGS = -1, /* k, b or d cannot satisfy the rule (e.g. k <= 2b for trimmed mean) */
    OHM_ROBUST_ENOMEM = -2
};

typedef struct {
    ohm_rule_t rule;
    int b;      /* Byzantine neighbours tolerated */
    double tau; /* clipping radius for cc/scc; <= 0 selects the adaptive radius */
    double nu;  /* geomed smoothing (Weiszfeld denominator floor) */
    int iters;  /* geomed / cc iteration cap */
    double tol; /* geomed relative-change stop */
    int m;      /* multi-krum: how many to average (0: k - b) */
    int exclude_self; /* faba: leave row 0 out of the screening means (the IOS paper's
                         decentralized FABA; it stays in the final mean); 0: in them */
} ohm_rule_params_t;

/* What the rule did, for the metrics. */
typedef struct {
    int discarded; /* inputs dropped entirely (krum, faba, ios; trimmed counts per coordinate are
                      2b) */
    int clipped;   /* inputs clipped (cc, scc) */
    int nonfinite; /* inputs that contained NaN/Inf and were treated as hostile */
    int iters;     /* iterations used (geomed, cc) */
    uint64_t dropped_rows; /* bit i: row i (< 64) dropped entirely (krum, multi-krum, faba,
                              ios; non-finite rows of every rule that drops them) */
} ohm_rule_stats_t;

/* Default parameters for a rule (b = 0, tau = 1, nu = 1e-6, iters = 8, tol = 1e-5, m = 0,
 * exclude_self = 0). */
void ohm_rule_defaults(ohm_rule_params_t *p, ohm_rule_t rule);

/* Rule from its name ("mean", "weighted", "trimmed-mean", "median", "geomed",
 * "krum", "multi-krum", "cc", "scc", "faba", "ios"); -1 if unknown. */
int ohm_rule_from_name(const char *name);
const char *ohm_rule_name(ohm_rule_t r);

/* out[d] = Rule(x[0..k), w, b). x[i] points at d floats each; out may not alias
 * any input. w may be NULL (1/k each); used weights must be finite and >= 0.
 * `st` may be NULL. Returns OHM_ROBUST_OK, OHM_ROBUST_EARGS (per-rule limits
 * in ohm_robust.c) or OHM_ROBUST_ENOMEM (scratch is allocated per call,
 * O(k*k + k*block) with a block of 128-256 coordinates; nothing of size d). */
int ohm_robust_aggregate(const ohm_rule_params_t *p, const float *const *x, const double *w, int k,
                         size_t d, float *out, ohm_rule_stats_t *st);

#endif
