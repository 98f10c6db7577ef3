/* ohm_settings: the run configuration a peer's loop needs, resolved once at
 * start into typed fields, so the round loop never looks a key up by name. */
#ifndef OHM_SETTINGS_H
#define OHM_SETTINGS_H

#include "ohm_config.h"

#include <stddef.h>
#include <stdint.h>

/* aggregate.order (docs/design.md, section "One round"). */
typedef enum {
    OHM_ORDER_ATC,       /* adapt, send, combine */
    OHM_ORDER_CTA,       /* send, combine, adapt */
    OHM_ORDER_CONSENSUS, /* send, adapt at the own point, combine + (psi - w) */
} ohm_order_t;

/* optimizer.schedule */
typedef enum { OHM_SCHEDULE_CONST, OHM_SCHEDULE_INVSQRT, OHM_SCHEDULE_COSINE } ohm_schedule_t;

/* train.slowdown_basis (docs/protocol.md, "Stragglers, late joiners, departures"). */
typedef enum { OHM_SLOW_CPU, OHM_SLOW_COMPUTE, OHM_SLOW_RUNNABLE } ohm_slow_basis_t;

typedef struct {
    /* [train] */
    int async;          /* train.mode = async */
    double max_seconds; /* 0: no limit */
    double slowdown;    /* >= 1 */
    int slow_basis;     /* train.slowdown_basis: ohm_slow_basis_t */
    int join;
    uint32_t leave_at; /* 0: never */
    uint32_t rounds, eval_every, checkpoint_every;
    int local_steps;
    int snapshots;
    uint64_t seed;
    /* [optimizer] */
    int batch;
    double lr, weight_decay;
    ohm_schedule_t schedule;
    /* [aggregate] */
    ohm_order_t order;
    int writeback; /* OHM_WB_EXACT or OHM_WB_PULSED */
    /* [net] */
    int future, timeout_ms, startup_timeout_ms, hwm, insecure;
    double hold_share, hold_burst_s;
    /* [data] */
    size_t test_subset;
    /* [optimizer] batch growth (CSGD) */
    double batch_growth;
    /* [comm] (docs/protocol.md, section "Compressed gossip and censoring") */
    int censor; /* comm.censor = threshold */
    double tau0, decay;
    uint32_t max_staleness;
    int compress; /* ohm_compressor_t */
    int entropy;  /* ohm_entropy_t */
    double ratio, gamma;
    /* [async] */
    uint64_t async_max_staleness;
    double async_max_staleness_s;
    double staleness_a; /* poly:A exponent; 0 for none */
} ohm_settings_t;

/* Reads every field from cfg (already validated by its schema). Errors:
 * OHM_EINVAL for a combination the schema cannot express (the detail names
 * the keys). */
int ohm_settings_resolve(const ohm_config_t *cfg, ohm_settings_t *s);

/* The step size of round r (0-based) under the schedule. */
double ohm_settings_lr(const ohm_settings_t *s, uint32_t r);

/* The mini-batch size of round r: batch growth^r, at most cap (the shard). */
int ohm_settings_batch(const ohm_settings_t *s, uint32_t r, size_t cap);

/* Whether peers exchange public copies (censoring or compression on) rather
 * than whole models every round. */
int ohm_settings_copies(const ohm_settings_t *s);

#endif
