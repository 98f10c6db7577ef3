/* ohm_settings: typed run settings, resolved once from the configuration. */
#include "ohm_settings.h"

#include "ohm_compress.h"
#include "ohm_error.h"
#include "ohm_inbox.h"
#include "ohm_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Index of v in names[n]; the schema admitted only these values. */
static int pick(const char *v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0) return i;
    return -1;
}

int ohm_settings_resolve(const ohm_config_t *c, ohm_settings_t *s)
{
    static const char *const orders[] = {"atc", "cta", "consensus"};
    static const char *const schedules[] = {"const", "invsqrt", "cosine"};
    static const char *const bases[] = {"cpu", "compute", "runnable"}; /* ohm_slow_basis_t */
    memset(s, 0, sizeof *s);
    s->async = strcmp(ohm_config_str(c, "train.mode"), "async") == 0;
    s->max_seconds = ohm_config_double(c, "train.max_seconds");
    s->slowdown = ohm_config_double(c, "train.slowdown");
    s->slow_basis = pick(ohm_config_str(c, "train.slowdown_basis"), bases, 3);
    s->join = ohm_config_bool(c, "train.join");
    s->leave_at = (uint32_t)ohm_config_int(c, "train.leave_at");
    s->rounds = (uint32_t)ohm_config_int(c, "train.rounds");
    s->eval_every = (uint32_t)ohm_config_int(c, "train.eval_every");
    s->checkpoint_every = (uint32_t)ohm_config_int(c, "train.checkpoint_every");
    s->local_steps = (int)ohm_config_int(c, "train.local_steps");
    s->snapshots = ohm_config_bool(c, "train.snapshots");
    s->seed = (uint64_t)ohm_config_int(c, "train.seed");
    s->batch = (int)ohm_config_int(c, "optimizer.batch");
    s->lr = ohm_config_double(c, "optimizer.lr");
    s->weight_decay = ohm_config_double(c, "optimizer.weight_decay");
    s->schedule = (ohm_schedule_t)pick(ohm_config_str(c, "optimizer.schedule"), schedules, 3);
    s->order = (ohm_order_t)pick(ohm_config_str(c, "aggregate.order"), orders, 3);
    s->writeback = strcmp(ohm_config_str(c, "aggregate.writeback"), "pulsed") == 0 ? OHM_WB_PULSED
                                                                                   : OHM_WB_EXACT;
    s->future = (int)ohm_config_int(c, "net.future_rounds");
    s->timeout_ms = (int)ohm_config_int(c, "net.round_timeout_ms");
    s->startup_timeout_ms = (int)ohm_config_int(c, "net.startup_timeout_ms");
    s->hwm = (int)ohm_config_int(c, "net.hwm");
    s->insecure = ohm_config_bool(c, "net.insecure");
    s->hold_share = ohm_config_double(c, "net.hold_share");
    s->hold_burst_s = ohm_config_double(c, "net.hold_burst_s");
    s->test_subset = (size_t)ohm_config_int(c, "data.test_subset");
    s->batch_growth = ohm_config_double(c, "optimizer.batch_growth");
    s->censor = strcmp(ohm_config_str(c, "comm.censor"), "threshold") == 0;
    s->tau0 = ohm_config_double(c, "comm.censor_tau0");
    s->decay = ohm_config_double(c, "comm.censor_decay");
    s->max_staleness = (uint32_t)ohm_config_int(c, "comm.max_staleness");
    s->compress = ohm_compress_from_name(ohm_config_str(c, "comm.compress"));
    s->entropy = ohm_entropy_from_name(ohm_config_str(c, "comm.entropy"));
    s->ratio = ohm_config_double(c, "comm.ratio");
    s->gamma = ohm_config_double(c, "comm.gamma");
    if (s->gamma == 0) {
        /* CHOCO's consensus step must be of the order of the compressor's
         * quality: ratio for randk, which keeps that share of the difference's
         * energy on average, a few times more for topk, which keeps the
         * largest coordinates (docs/protocol.md, section "Compressed gossip and
         * censoring"). */
        s->gamma = s->compress == OHM_COMPRESS_TOPK    ? fmin(1.0, 4.0 * s->ratio)
                   : s->compress == OHM_COMPRESS_RANDK ? s->ratio
                                                       : 1.0;
    }
    s->async_max_staleness = (uint64_t)ohm_config_int(c, "async.max_staleness");
    s->async_max_staleness_s = ohm_config_double(c, "async.max_staleness_s");
    const char *w = ohm_config_str(c, "async.staleness_weight");
    if (strcmp(w, "none") == 0) {
        s->staleness_a = 0;
    } else {
        char *end;
        double a = strncmp(w, "poly:", 5) == 0 ? strtod(w + 5, &end) : -1;
        if (a < 0 || !isfinite(a) || *end || !w[5])
            return ohm_error_set(OHM_EINVAL,
                                 "async.staleness_weight = '%s': expected none or poly:A with "
                                 "A >= 0 (e.g. poly:0.5)",
                                 w);
        s->staleness_a = a;
    }
    /* The schema bounds what it can; these are checked here so a change of the
     * schema cannot make the loop run with an unchecked value. */
    if ((int)s->order < 0 || (int)s->schedule < 0 || s->compress < 0 || s->entropy < 0)
        return ohm_error_set(OHM_EINVAL,
                             "aggregate.order, optimizer.schedule, comm.compress or comm.entropy: "
                             "unknown value");
    if (s->future > OHM_INBOX_MAX_FUTURE)
        return ohm_error_set(OHM_EINVAL, "net.future_rounds = %d: at most %d", s->future,
                             OHM_INBOX_MAX_FUTURE);
    if (s->weight_decay > 0 && strcmp(ohm_config_str(c, "optimizer.name"), "digital") != 0)
        return ohm_error_set(OHM_EINVAL,
                             "optimizer.weight_decay = %g: weight decay applies to the digital "
                             "optimizer only (optimizer.name = %s)",
                             s->weight_decay, ohm_config_str(c, "optimizer.name"));
    /* Public copies are tracked round by round, identically at both ends of a
     * link; asynchronous mode keeps only the newest model and drops the rest,
     * which would desynchronise them. */
    if (s->async && (s->censor || s->compress != OHM_COMPRESS_NONE))
        return ohm_error_set(OHM_EINVAL,
                             "train.mode = async works with whole models only: comm.compress = "
                             "%s and comm.censor = %s need train.mode = sync",
                             ohm_config_str(c, "comm.compress"), ohm_config_str(c, "comm.censor"));
    return OHM_OK;
}

double ohm_settings_lr(const ohm_settings_t *s, uint32_t r)
{
    switch (s->schedule) {
    case OHM_SCHEDULE_INVSQRT:
        return s->lr / sqrt((double)r + 1.0);
    case OHM_SCHEDULE_COSINE:
        /* Half a cosine from lr at round 0 to 0 at round `rounds`: a long phase at a large
         * step, then small steps in which the ring's averaging brings the replicas together. */
        return s->rounds ? s->lr * 0.5 * (1.0 + cos(M_PI * (double)r / (double)s->rounds)) : s->lr;
    case OHM_SCHEDULE_CONST:
        break;
    }
    return s->lr;
}

int ohm_settings_batch(const ohm_settings_t *s, uint32_t r, size_t cap)
{
    double b = s->batch_growth > 1 ? floor(s->batch * pow(s->batch_growth, (double)r)) : s->batch;
    if (cap > 0 && b > (double)cap) b = (double)cap;
    if (b > (double)INT32_MAX) b = (double)INT32_MAX;
    return b < s->batch ? s->batch : (int)b;
}

int ohm_settings_copies(const ohm_settings_t *s)
{
    return s->censor || s->compress != OHM_COMPRESS_NONE;
}
