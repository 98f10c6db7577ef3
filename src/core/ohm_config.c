/* ohm_config: the schema table, presets, the INI reader, overrides and getters
 * (the writer and the printers are ohm_config_print.c).
 *
 * Every value is validated when it is set, so the getters never fail: a typo
 * in a config file stops the run at start-up with FILE:LINE instead of
 * training for an hour on a default. */
#include "ohm_config.h"
#include "ohm_config_impl.h"

#include "ohm_error.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define INT_RANGE(n, d, l, h, doc)                                                                 \
    {                                                                                              \
        n, K_INT, d, NULL, B_LO | B_HI, l, h, doc                                                  \
    }
#define DBL(n, d, b, l, h, doc)                                                                    \
    {                                                                                              \
        n, K_DOUBLE, d, NULL, b, l, h, doc                                                         \
    }
#define DBL_GT0(n, d, doc) DBL(n, d, B_LO | B_LO_OPEN, 0, 0, doc)
#define DBL_GE0(n, d, doc) DBL(n, d, B_LO, 0, 0, doc)
#define DBL_ANY(n, d, doc) DBL(n, d, 0, 0, 0, doc)
#define BOOL(n, d, doc)                                                                            \
    {                                                                                              \
        n, K_BOOL, d, NULL, 0, 0, 0, doc                                                           \
    }
#define STR(n, d, doc)                                                                             \
    {                                                                                              \
        n, K_STR, d, NULL, 0, 0, 0, doc                                                            \
    }
#define ENUM(n, d, a, doc)                                                                         \
    {                                                                                              \
        n, K_ENUM, d, a, 0, 0, 0, doc                                                              \
    }
#define LIST(n, d, l, h, doc)                                                                      \
    {                                                                                              \
        n, K_LIST, d, NULL, B_LO | B_HI, l, h, doc                                                 \
    }

/* At most this many elements in an int-list value (hidden layers). */
#define LIST_MAX 16

/* The schema. Keys are grouped by section, sections in file order. To add a
 * key, add one line here: parsing, validation, `ohmpeer config` and the
 * written config all follow from it. */
static const key_def_t schema[] = {
    /* [data] */
    ENUM("data.name", "fashion-mnist", "fashion-mnist|synthetic",
         "data set: Fashion-MNIST gzip IDX files, or a seeded synthetic task"),
    STR("data.path", "", "directory of the IDX files (\"\" = /usr/share/datasets/fashion-mnist)"),
    ENUM("data.task", "classify", "classify|regress",
         "synthetic only: Gaussian-mixture classes, or a linear least-squares teacher"),
    ENUM("data.partition", "iid", "iid|dirichlet|label|label-honest",
         "split of the training set over peers (label: sorted by label, contiguous; "
         "label-honest: one class per honest peer in id order, Byzantine peers hold none)"),
    DBL_GT0("data.alpha", "0.5", "Dirichlet concentration: small = skewed, large = near iid"),
    INT_RANGE("data.dim", "32", 1, 1 << 20, "synthetic input dimension"),
    INT_RANGE("data.classes", "10", 1, 1 << 16,
              "synthetic classes (>= 2), or target dimension for regress"),
    INT_RANGE("data.train_size", "0", 0, IMAX,
              "first N training examples (0 = all of fashion-mnist / 10000 synthetic)"),
    INT_RANGE("data.test_size", "0", 0, IMAX,
              "first N test examples (0 = all of fashion-mnist / 2000 synthetic)"),
    DBL_GE0("data.noise", "1.0", "synthetic: class spread (classify) or target noise (regress)"),
    INT_RANGE("data.test_subset", "1000", 0, IMAX,
              "test examples of intermediate evaluations, held in memory; full set at the last "
              "round, the rest read from the file (0 = full, all held)"),
    ENUM("data.scale", "unit", "unit|symmetric",
         "Fashion-MNIST pixel range: [0, 1], or [-1, 1] (2x - 1, as the IOS authors' code)"),

    /* [model] */
    LIST("model.hidden", "128", 1, 1 << 16,
         "model.arch = mlp: hidden layer widths, e.g. 256,128 (\"\" or 0 = none: softmax "
         "regression / least squares)"),
    ENUM("model.activation", "relu", "relu|tanh|sigmoid",
         "activation after every hidden dense and every conv layer"),
    BOOL("model.bias", "true", "layers have a bias"),
    ENUM("model.arch", "mlp", "mlp|lenet5|custom",
         "network: an MLP of model.hidden; LeNet-5 (conv:6x5x5/p2,pool:max2,conv:16x5x5,"
         "pool:max2,fc:120,fc:84,fc:K for K classes); or the list of model.layers (docs/usage.md)"),
    STR("model.layers", "",
        "model.arch = custom: layer list, e.g. conv:6x5x5,pool:max2,fc:120,fc:10 (grammar in "
        "docs/usage.md)"),
    ENUM("model.init", "glorot", "glorot|normal",
         "initial weights: He (ReLU) / Glorot with zero biases, or every weight and bias "
         "N(0, init_sigma^2)"),
    DBL_GE0("model.init_sigma", "1.0", "standard deviation of model.init = normal"),
    BOOL("model.init_per_peer", "false",
         "each peer draws its own initial model (else all peers start from the same one)"),

    /* [device] */
    /* First in its section: a preset sets device keys, which the keys written
     * after it override (so a written config reads back to the same values). */
    ENUM("device.preset", "none", "none|idealized|gokmen-vlasov|reram-sb|capacitor",
         "device family from published parameters (docs/analog.md); keys set after it "
         "override it"),
    ENUM("device.response", "ideal", "ideal|softbounds|pow|exp|linear",
         "device response to a pulse as a function of its conductance"),
    DBL_GT0("device.tau", "1.0", "conductance bound (weights live in [-tau, tau])"),
    DBL_GT0("device.gamma", "1.0", "shape of the pow/exp responses, slope of linear"),
    DBL("device.c", "0.0", B_LO | B_HI | B_LO_OPEN | B_HI_OPEN, -1, 1,
        "softbounds/linear asymmetry offset (|c| < 1)"),
    DBL_GT0("device.dw_min", "0.001", "weight change of one pulse"),
    DBL_GE0("device.dw_min_dtod", "0.0", "device-to-device spread of dw_min (relative)"),
    DBL_GE0("device.dw_min_std", "0.0", "cycle-to-cycle spread of each pulse (relative)"),
    DBL("device.up_down", "0.0", B_LO | B_HI | B_LO_OPEN | B_HI_OPEN, -1, 1,
        "up/down asymmetry u: ohm convention up dw_min(1+u), down dw_min(1-u); aihwkit "
        "convention the weaker direction dw_min(1-|u|)"),
    DBL_GE0("device.up_down_dtod", "0.0", "device-to-device spread of up_down"),
    DBL_GE0("device.tau_dtod", "0.0", "device-to-device spread of tau (relative)"),
    ENUM("device.update", "expected", "expected|stochastic",
         "pulsed update: its expected value, or stochastic pulse trains"),
    BOOL("device.granular", "false", "round expected updates to whole pulses"),
    INT_RANGE("device.bl", "31", 1, 32, "pulse-train length of a stochastic update"),
    INT_RANGE("device.in_bits", "0", 0, 24, "input DAC resolution (0 = ideal)"),
    INT_RANGE("device.out_bits", "0", 0, 24, "output ADC resolution (0 = ideal)"),
    DBL_GE0("device.out_bound", "0", "output saturation bound (0 = unbounded)"),
    DBL_GE0("device.out_noise", "0.0", "output read noise (std)"),
    BOOL(
        "device.update_management", "true",
        "stochastic mode: balance the x and d train probabilities, rescale d past BL (aihwkit UM)"),
    BOOL("device.update_bl_management", "false",
         "stochastic mode: train length ceil(lr max|x| max|d| / dw_min) up to bl (aihwkit UBLM)"),
    ENUM("device.asymmetry_convention", "ohm", "ohm|aihwkit",
         "how up_down and the device-to-device spreads are drawn (docs/analog.md)"),
    /* More analog device keys go here, in [device], one line each. */

    /* [optimizer] */
    ENUM("optimizer.name", "digital", "digital|analog-sgd|tiki-taka|residual",
         "training algorithm on the tiles"),
    DBL_GT0("optimizer.lr", "0.1", "learning rate"),
    ENUM("optimizer.schedule", "const", "const|invsqrt|cosine",
         "learning-rate schedule (invsqrt = lr/sqrt(round+1); "
         "cosine = lr(1+cos(pi round/rounds))/2)"),
    DBL_GE0("optimizer.weight_decay", "0",
            "decoupled L2 decay before each step, W <- (1 - lr wd) W (digital only)"),
    DBL_GE0("optimizer.beta", "0.01", "tiki-taka / residual transfer rate"),
    DBL_GE0("optimizer.gamma", "0.1", "tiki-taka / residual mixing of the fast tile"),
    INT_RANGE("optimizer.batch", "32", 1, IMAX, "mini-batch size"),
    INT_RANGE("optimizer.transfer_every", "1", 1, IMAX, "updates between two transfers"),
    INT_RANGE("optimizer.transfer_columns", "1", 1, IMAX, "columns moved per transfer"),
    BOOL("optimizer.buffered", "false", "residual learning keeps a digital buffer H"),
    DBL("optimizer.momentum", "0", B_LO | B_HI | B_HI_OPEN, 0, 1,
        "local momentum m <- beta m + (1 - beta) g, step along m (0 = off; digital only)"),
    ENUM("optimizer.variance_reduction", "none", "none|saga",
         "SAGA: the step uses g_i(w) - table_i + mean(table) (digital only)"),
    ENUM("optimizer.saga_table", "auto", "auto|sample|batch",
         "SAGA table: one entry per example, or per fixed mini-batch (auto: per example when "
         "it fits saga_max_mb)"),
    INT_RANGE("optimizer.saga_max_mb", "256", 1, IMAX, "bound on a peer's SAGA table, MiB"),
    DBL("optimizer.batch_growth", "1", B_LO, 1, 0,
        "mini-batch size of round r: batch growth^r, at most the peer's shard (CSGD's "
        "increasing batch; 1 = fixed)"),

    /* [train] */
    INT_RANGE("train.rounds", "100", 0, IMAX, "rounds to run"),
    INT_RANGE("train.eval_every", "10", 1, IMAX, "rounds between two evaluations"),
    INT_RANGE("train.seed", "1", 0, (double)LONG_MAX,
              "run seed: data, partition, init, batches, devices"),
    INT_RANGE("train.checkpoint_every", "100", 0, IMAX,
              "rounds between two checkpoints (0 = only at shutdown)"),
    INT_RANGE("train.local_steps", "1", 1, IMAX, "mini-batch steps per round"),
    BOOL("train.snapshots", "false",
         "write the model at every evaluation to <out>/snapshots/ (consensus distance)"),
    ENUM("train.mode", "sync", "sync|async",
         "sync: rounds in lock-step with the neighbours; async: each peer on its own clock, "
         "combining the newest model of each neighbour"),
    DBL_GE0("train.max_seconds", "0", "end the run after this many seconds (0 = no limit)"),
    DBL("train.slowdown", "1", B_LO, 1, 0,
        "straggler emulation: each local step takes this many times its compute time"),
    BOOL("train.join", "false",
         "a late joiner: start from the robust combination of the first models the neighbours "
         "send instead of its own initialization"),
    INT_RANGE("train.leave_at", "0", 0, IMAX,
              "leave cleanly (bye to the neighbours) after this many rounds (0 = never)"),

    /* [aggregate] */
    ENUM("aggregate.rule", "weighted",
         "mean|weighted|trimmed-mean|median|geomed|krum|multi-krum|cc|scc|faba|ios",
         "combination rule over own and received models"),
    INT_RANGE("aggregate.b", "0", 0, IMAX, "Byzantine neighbours the rule tolerates"),
    ENUM("aggregate.order", "atc", "atc|cta|consensus",
         "adapt-then-combine, combine-then-adapt, or consensus"),
    ENUM("aggregate.writeback", "exact", "exact|pulsed",
         "combined weights programmed exactly, or applied as pulses"),
    DBL_ANY("aggregate.tau", "1.0", "clipping radius of cc/scc (<= 0 = adaptive)"),
    DBL_GT0("aggregate.nu", "1e-6", "geometric median smoothing"),
    INT_RANGE("aggregate.iters", "8", 1, IMAX, "iterations of iterative rules"),
    DBL_GT0("aggregate.tol", "1e-5", "convergence tolerance of iterative rules"),
    INT_RANGE("aggregate.m", "0", 0, IMAX, "multi-krum: models averaged (0 = k-b)"),
    ENUM("aggregate.faba_self", "include", "include|exclude",
         "faba: the own model is in the screening mean (include), or only in the final "
         "mean as in the IOS paper (exclude)"),

    /* [net] */
    INT_RANGE("net.round_timeout_ms", "2000", 1, IMAX, "deadline of one round's receive"),
    INT_RANGE("net.startup_timeout_ms", "30000", 0, IMAX, "wait for neighbours at start-up"),
    INT_RANGE("net.future_rounds", "4", 0, 256,
              "future rounds buffered per neighbour; a neighbour that many rounds behind is "
              "still waited for"),
    INT_RANGE(
        "net.hwm", "32", 16, IMAX,
        "ZeroMQ high-water mark per link, messages (its flow-control credit stalls below 16)"),
    DBL("net.hold_share", "0.05", B_LO | B_HI, 0, 1,
        "hold time a neighbour far behind may cost, per second of the run (0 = never hold)"),
    DBL_GE0("net.hold_burst_s", "5", "hold time a neighbour far behind may cost at once"),
    BOOL("net.insecure", "false", "plain TCP without CURVE (trusted test networks only)"),
    STR("net.key", "", "secret key file (\"\" = keys/peer-<id>.key beside the topology file)"),
    STR("net.run_id", "", "run identifier (\"\" = derived from topology and seed)"),
    STR("net.bind", "", "endpoint to bind (\"\" = the peer's endpoint from the topology)"),
    LIST("net.late_joiners", "", 0, 1 << 20,
         "ids of peers that start late (ohm-launch --join): the start-up barrier does not "
         "wait for them"),

    /* [energy]: constants of the energy and latency estimates in summary.json
     * (per event, from published hardware: docs/energy.md cites each). */
    DBL_GE0("energy.pulse_j", "1e-15",
            "energy of one programming pulse on one cell, J (ECRAM, Tang et al. 2018)"),
    DBL_GE0("energy.pulse_s", "5e-9", "duration of one pulse slot, s (Tang et al. 2018)"),
    DBL_GE0("energy.read_cell_j", "2.05e-13",
            "energy of one vector read per cell, converters included, J (Le Gallo et al. 2023)"),
    DBL_GE0("energy.read_s", "1.33e-7", "duration of one vector read (MVM), s (Le Gallo et al. 2023)"),
    DBL_GE0("energy.adc_j", "0",
            "energy of one output conversion beyond read_cell_j, J (0: included there)"),
    DBL_GE0("energy.dac_j", "0",
            "energy of one input conversion beyond read_cell_j, J (0: included there)"),
    DBL_GE0("energy.net_byte_j", "2.16e-4",
            "energy of one byte sent over the network, J (Aslan et al. 2018)"),

    /* [comm] */
    ENUM("comm.censor", "none", "none|threshold",
         "threshold: send \"unchanged\" in a round where the model moved little since the "
         "public copy was last sent (docs/protocol.md)"),
    DBL_GE0("comm.censor_tau0", "0.01",
            "censoring threshold at round 0, relative: unchanged when ||x - xhat|| <= tau0 "
            "decay^round ||x||"),
    DBL("comm.censor_decay", "0.999", B_LO | B_HI | B_LO_OPEN, 0, 1,
        "factor per round of the censoring threshold"),
    INT_RANGE("comm.max_staleness", "10", 1, IMAX,
              "rounds a neighbour's copy may be reused; a censoring sender sends at least this "
              "often"),
    ENUM("comm.compress", "none", "none|f16|bf16|q8|topk|randk",
         "send compressed differences to a public copy, with error feedback (CHOCO)"),
    DBL("comm.ratio", "0.05", B_LO | B_HI | B_LO_OPEN, 0, 0.5,
        "share of the coordinates topk and randk send each round"),
    DBL("comm.gamma", "0", B_LO | B_HI, 0, 1,
        "consensus step on copies: x <- x + gamma (Rule(xhat, copies) - xhat); 0 = 1 for "
        "f16, bf16, q8 and censoring, min(1, 4 ratio) for topk, ratio for randk"),

    /* [async] */
    INT_RANGE("async.max_staleness", "20", 0, IMAX,
              "a neighbour's model older than this many of our steps is not combined (0 = no "
              "bound)"),
    DBL_GE0("async.max_staleness_s", "0",
            "... nor one older than this many seconds (0 = no bound)"),
    STR("async.staleness_weight", "poly:1",
        "none, or poly:A: a model tau steps old weighs (1 + tau)^(-A) times its weight"),
};

#define NKEYS (sizeof schema / sizeof schema[0])

/* Presets: a value of a preset key stands for assignments made when the key is
 * set; later assignments override them ("none" assigns nothing). Device
 * presets map IBM aihwkit's preset devices (aihwkit/simulator/presets/devices.py)
 * onto ohmpeer's device model; docs/analog.md, section "Presets", gives every mapping
 * and what it leaves out. */
typedef struct {
    const char *key, *value;
    const char *const sets[16]; /* "section.key=value", NULL-terminated */
} preset_t;

static const preset_t presets[] = {
    /* IdealizedPresetDevice (ConstantStep): Gokmen & Vlasov, Front. Neurosci. 2016,
     * with ~10000 states (Rasch, Gokmen & Haensch, IEEE Design & Test 2019). */
    {"device.preset", "idealized",
     {"device.response=ideal", "device.tau=1.0", "device.gamma=1.0", "device.c=0.0",
      "device.dw_min=0.0002", "device.dw_min_dtod=0.3", "device.dw_min_std=0.3",
      "device.up_down=0.0", "device.up_down_dtod=0.0", "device.tau_dtod=0.3",
      "device.asymmetry_convention=aihwkit", NULL}},
    /* GokmenVlasovPresetDevice (ConstantStep): Gokmen & Vlasov, Front. Neurosci. 2016,
     * 1200 states over [-1, 1]. */
    {"device.preset", "gokmen-vlasov",
     {"device.response=ideal", "device.tau=1.0", "device.gamma=1.0", "device.c=0.0",
      "device.dw_min=0.0016", "device.dw_min_dtod=0.3", "device.dw_min_std=0.3",
      "device.up_down=0.0", "device.up_down_dtod=0.01", "device.tau_dtod=0.3",
      "device.asymmetry_convention=aihwkit", NULL}},
    /* ReRamSBPresetDevice (SoftBounds): fit to Gong et al., Nat. Commun. 2018. Range
     * [-0.75, 1.25] shifted to [-1, 1]: slopes 1/1.25 and 1/0.75 give c = -0.25 and
     * dw_min 0.002 x 16/15; bound spreads 0.3/1.25 and 0.3/0.75 are 0.3 absolute. */
    {"device.preset", "reram-sb",
     {"device.response=softbounds", "device.tau=1.0", "device.gamma=1.0", "device.c=-0.25",
      "device.dw_min=0.0021333333333333334", "device.dw_min_dtod=0.3", "device.dw_min_std=3.75",
      "device.up_down=0.0", "device.up_down_dtod=0.01", "device.tau_dtod=0.3",
      "device.asymmetry_convention=aihwkit", NULL}},
    /* CapacitorPresetDevice (LinearStep): fit to Li et al., VLSI 2018; slopes
     * gamma_up = gamma_down = 0.05 over [-1, 1]. Leakage (lifetime) is not modelled. */
    {"device.preset", "capacitor",
     {"device.response=linear", "device.tau=1.0", "device.gamma=0.05", "device.c=0.0",
      "device.dw_min=0.005", "device.dw_min_dtod=0.1", "device.dw_min_std=0.3",
      "device.up_down=0.0", "device.up_down_dtod=0.06", "device.tau_dtod=0.07",
      "device.asymmetry_convention=aihwkit", NULL}},
};

struct ohm_config {
    value_t v[NKEYS];
};

/* ---- schema helpers ----------------------------------------------------- */

static int find_key(const char *name)
{
    for (size_t k = 0; k < NKEYS; k++)
        if (strcmp(schema[k].name, name) == 0) return (int)k;
    return -1;
}

/* Length of the "section" part of a schema name. */
size_t ohm_config_section_len(const char *name)
{
    const char *dot = strchr(name, '.');
    assert(dot);
    return (size_t)(dot - name);
}

static int section_known(const char *s, size_t n)
{
    for (size_t k = 0; k < NKEYS; k++)
        if (ohm_config_section_len(schema[k].name) == n && memcmp(schema[k].name, s, n) == 0)
            return 1;
    return 0;
}

/* " data model ...": the sections in schema order, for error messages. */
static void section_names(char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < NKEYS && len < cap; k++) {
        size_t sl = ohm_config_section_len(schema[k].name);
        if (k > 0 && ohm_config_section_len(schema[k - 1].name) == sl &&
            memcmp(schema[k - 1].name, schema[k].name, sl) == 0)
            continue;
        len += (size_t)snprintf(buf + len, cap - len, " %.*s", (int)sl, schema[k].name);
    }
}

static int in_bounds(const key_def_t *k, double v)
{
    unsigned b = k->bounds;
    if (b & B_LO) {
        if ((b & B_LO_OPEN) ? !(v > k->lo) : !(v >= k->lo)) return 0;
    }
    if (b & B_HI) {
        if ((b & B_HI_OPEN) ? !(v < k->hi) : !(v <= k->hi)) return 0;
    }
    return 1;
}

/* ---- value parsing -------------------------------------------------------- */

/* Parses a whole base-10 integer; 0, or OHM_EINVAL / OHM_ERANGE (no detail). */
static int parse_long(const char *s, long *out)
{
    if (!*s) return OHM_EINVAL;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end) return OHM_EINVAL;
    if (errno == ERANGE) return OHM_ERANGE;
    *out = v;
    return OHM_OK;
}

/* Validates `text` for key `k` and fills `out` (text owned by out). `where`
 * names the source ("file:line" or the override's origin) in the detail. */
static int parse_value(const key_def_t *k, const char *text, const char *where, value_t *out)
{
    char canon[128];
    const char *keep = text;
    char range[64];
    out->i = 0;
    out->d = 0;
    switch (k->type) {
    case K_INT: {
        long v;
        int rc = parse_long(text, &v);
        if (rc == OHM_EINVAL)
            return ohm_error_set(OHM_EINVAL, "%s: %s: '%.64s' is not an integer", where, k->name,
                                 text);
        ohm_config_format_bounds(k, range, sizeof range, 0);
        if (rc == OHM_ERANGE || !in_bounds(k, (double)v))
            return ohm_error_set(OHM_ERANGE, "%s: %s: %.64s is out of range (%s)", where, k->name,
                                 text, range);
        out->i = v;
        snprintf(canon, sizeof canon, "%ld", v);
        keep = canon;
        break;
    }
    case K_DOUBLE: {
        char *end;
        errno = 0;
        double v = strtod(text, &end);
        if (!*text || end == text || *end || isnan(v) || (isinf(v) && errno != ERANGE))
            return ohm_error_set(OHM_EINVAL, "%s: %s: '%.64s' is not a finite number", where,
                                 k->name, text);
        ohm_config_format_bounds(k, range, sizeof range, 0);
        if ((errno == ERANGE && fabs(v) > 1.0) || !in_bounds(k, v))
            return ohm_error_set(OHM_ERANGE, "%s: %s: %.64s is out of range (%s)", where, k->name,
                                 text, range);
        out->d = v;
        ohm_config_format_double(canon, sizeof canon, v);
        keep = canon;
        break;
    }
    case K_BOOL: {
        static const char *const yes[] = {"true", "yes", "on", "1"};
        static const char *const no[] = {"false", "no", "off", "0"};
        int b = -1;
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(text, yes[i]) == 0) b = 1;
            if (strcasecmp(text, no[i]) == 0) b = 0;
        }
        if (b < 0)
            return ohm_error_set(OHM_EINVAL, "%s: %s: '%.64s' is not a bool (true|false)", where,
                                 k->name, text);
        out->i = b;
        keep = b ? "true" : "false";
        break;
    }
    case K_STR:
        /* Written configs must read back: one line, no control characters. */
        for (const char *c = text; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                return ohm_error_set(OHM_EINVAL, "%s: %s: control character in the value", where,
                                     k->name);
        break;
    case K_ENUM: {
        size_t n = strlen(text);
        const char *a = k->allowed;
        int ok = 0;
        while (*a && !ok) {
            size_t m = strcspn(a, "|");
            ok = m == n && n > 0 && memcmp(a, text, n) == 0;
            a += m + (a[m] == '|');
        }
        if (!ok)
            return ohm_error_set(OHM_EINVAL, "%s: %s: '%.64s' is not one of %s", where, k->name,
                                 text, k->allowed);
        break;
    }
    case K_LIST: {
        /* "a, b, c" of integers in bounds; "" or "0" alone is the empty list. */
        ohm_config_format_bounds(k, range, sizeof range, 0);
        size_t len = 0, count = 0;
        const char *p = text;
        canon[0] = '\0';
        if (strcmp(text, "0") == 0) p = "";
        while (*p) {
            char item[32];
            size_t m = strcspn(p, ",");
            const char *s = p, *e = p + m;
            while (s < e && isspace((unsigned char)*s))
                s++;
            while (e > s && isspace((unsigned char)e[-1]))
                e--;
            long v = 0;
            int rc = OHM_EINVAL;
            if ((size_t)(e - s) < sizeof item) {
                memcpy(item, s, (size_t)(e - s));
                item[e - s] = '\0';
                rc = parse_long(item, &v);
            }
            if (rc == OHM_EINVAL)
                return ohm_error_set(OHM_EINVAL,
                                     "%s: %s: '%.64s' is not a comma-separated list of integers",
                                     where, k->name, text);
            if (rc == OHM_ERANGE || !in_bounds(k, (double)v))
                return ohm_error_set(OHM_ERANGE,
                                     "%s: %s: element %zu of '%.64s' is out of range "
                                     "(%s)",
                                     where, k->name, count + 1, text, range);
            if (++count > LIST_MAX)
                return ohm_error_set(OHM_ERANGE, "%s: %s: more than %d elements", where, k->name,
                                     LIST_MAX);
            len +=
                (size_t)snprintf(canon + len, sizeof canon - len, "%s%ld", count > 1 ? "," : "", v);
            p += m;
            if (*p == ',') {
                p++;
                if (!*p)
                    return ohm_error_set(OHM_EINVAL, "%s: %s: '%.64s' ends with a comma", where,
                                         k->name, text);
            }
        }
        /* LIST_MAX elements of at most 6 characters each fit: canon is exact. */
        assert(len < sizeof canon);
        keep = canon;
        break;
    }
    }
    out->text = strdup(keep);
    if (!out->text) return ohm_error_set(OHM_ENOMEM, "%s: %s", where, k->name);
    /* The tail of a long "path:line" keeps the file name and the line. */
    size_t wl = strlen(where), cap = sizeof out->origin;
    if (wl < cap)
        memcpy(out->origin, where, wl + 1);
    else
        snprintf(out->origin, cap, "...%s", where + wl - (cap - 4));
    return OHM_OK;
}

/* ---- object ----------------------------------------------------------------- */

static void free_values(value_t *v)
{
    for (size_t k = 0; k < NKEYS; k++) {
        free(v[k].text);
        v[k].text = NULL;
    }
}

ohm_config_t *ohm_config_new(void)
{
    ohm_config_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg) return NULL;
    for (size_t k = 0; k < NKEYS; k++) {
        int rc = parse_value(&schema[k], schema[k].def, "default", &cfg->v[k]);
        assert(rc != OHM_EINVAL && rc != OHM_ERANGE); /* the schema's defaults are valid */
        if (rc) {
            free_values(cfg->v);
            free(cfg);
            return NULL;
        }
    }
    return cfg;
}

void ohm_config_destroy(ohm_config_t **cfg)
{
    if (!cfg || !*cfg) return;
    free_values((*cfg)->v);
    free(*cfg);
    *cfg = NULL;
}

/* Copies all values so a load can fail half-way and leave `cfg` as it was. */
static int clone_values(const ohm_config_t *cfg, value_t *out)
{
    for (size_t k = 0; k < NKEYS; k++) {
        out[k] = cfg->v[k];
        out[k].text = strdup(cfg->v[k].text);
        if (!out[k].text) {
            for (size_t j = 0; j < k; j++)
                free(out[j].text);
            return ohm_error_set(OHM_ENOMEM, "config copy");
        }
    }
    return OHM_OK;
}

static void set_value(value_t *slot, value_t *nv)
{
    free(slot->text);
    *slot = *nv;
}

/* After key k got its value in v: the assignments of its preset, if that value
 * names one. `first_set` (file reads) holds the line each key was set at in
 * this file: a preset after such a key would silently override it, an error.
 * All or nothing: v is unchanged on error. */
static int apply_preset(value_t *v, int k, const char *where, const int *first_set)
{
    const preset_t *pr = NULL;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(presets[i].key, schema[k].name) == 0 &&
            strcmp(presets[i].value, v[k].text) == 0)
            pr = &presets[i];
    if (!pr) return OHM_OK;
    value_t nv[16];
    int idx[16], n = 0, rc = OHM_OK;
    for (; pr->sets[n]; n++) {
        const char *eq = strchr(pr->sets[n], '=');
        char name[64];
        assert(eq && (size_t)(eq - pr->sets[n]) < sizeof name);
        memcpy(name, pr->sets[n], (size_t)(eq - pr->sets[n]));
        name[eq - pr->sets[n]] = '\0';
        idx[n] = find_key(name);
        assert(idx[n] >= 0); /* presets name schema keys */
        if (first_set && first_set[idx[n]]) {
            rc = ohm_error_set(OHM_EINVAL,
                               "%s: %s = %s would override %s set at line %d (put the preset "
                               "first)",
                               where, schema[k].name, v[k].text, name, first_set[idx[n]]);
            break;
        }
        rc = parse_value(&schema[idx[n]], eq + 1, where, &nv[n]);
        assert(rc != OHM_EINVAL && rc != OHM_ERANGE); /* presets hold valid values */
        if (rc) break;
    }
    if (rc) {
        for (int i = 0; i < n; i++)
            free(nv[i].text);
        return rc;
    }
    for (int i = 0; i < n; i++)
        set_value(&v[idx[i]], &nv[i]);
    return OHM_OK;
}

/* ---- INI reader -------------------------------------------------------------- */

typedef struct {
    const char *name;
    int line;
    char section[32];
    value_t *v;     /* the values being built */
    int *first_set; /* line of each key's assignment in this file (0 = not yet) */
} reader_t;

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    *e = '\0';
    return s;
}

/* Whether what follows a value or a section header is only blanks or a comment. */
static int only_comment(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return *s == '\0' || *s == '#' || *s == ';';
}

/* Extracts the value after '=' in place: a "quoted string" with \" and \\
 * escapes, or bare text up to a comment that follows a blank. */
static int read_value(reader_t *r, char *s, char **out)
{
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '"') {
        char *w = s, *p = s + 1;
        for (;; p++) {
            if (*p == '\0')
                return ohm_error_set(OHM_EPARSE, "%s:%d: unterminated quoted value", r->name,
                                     r->line);
            if (*p == '"') break;
            if (*p == '\\') {
                p++;
                if (*p != '"' && *p != '\\')
                    return ohm_error_set(OHM_EPARSE,
                                         "%s:%d: bad escape in quoted value (only \\\" and \\\\)",
                                         r->name, r->line);
            }
            *w++ = *p;
        }
        if (!only_comment(p + 1))
            return ohm_error_set(OHM_EPARSE, "%s:%d: text after the closing quote", r->name,
                                 r->line);
        *w = '\0';
        *out = s;
        return OHM_OK;
    }
    for (char *p = s; *p; p++) {
        if ((*p == '#' || *p == ';') && (p == s || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            break;
        }
    }
    *out = trim(s);
    return OHM_OK;
}

static int read_line(reader_t *r, char *line)
{
    char *s = trim(line);
    if (*s == '\0' || *s == '#' || *s == ';') return OHM_OK;
    if (*s == '[') {
        char *close = strchr(s, ']');
        if (!close || !only_comment(close + 1))
            return ohm_error_set(OHM_EPARSE, "%s:%d: malformed section header", r->name, r->line);
        *close = '\0';
        char *name = trim(s + 1);
        size_t n = strlen(name);
        if (n == 0 || n >= sizeof r->section || !section_known(name, n)) {
            char known[128];
            section_names(known, sizeof known);
            return ohm_error_set(OHM_ENOTFOUND, "%s:%d: unknown section [%.40s] (known:%s)",
                                 r->name, r->line, name, known);
        }
        memcpy(r->section, name, n + 1);
        return OHM_OK;
    }
    char *eq = strchr(s, '=');
    if (!eq)
        return ohm_error_set(OHM_EPARSE, "%s:%d: expected 'key = value' or '[section]'", r->name,
                             r->line);
    *eq = '\0';
    char *key = trim(s);
    if (!*key) return ohm_error_set(OHM_EPARSE, "%s:%d: missing key before '='", r->name, r->line);
    if (!r->section[0])
        return ohm_error_set(OHM_EPARSE, "%s:%d: key '%.40s' outside a [section]", r->name, r->line,
                             key);
    char full[128];
    int k = -1;
    if (strlen(key) < 64) {
        snprintf(full, sizeof full, "%s.%s", r->section, key);
        k = find_key(full);
    }
    if (k < 0)
        return ohm_error_set(OHM_ENOTFOUND, "%s:%d: unknown key '%.40s' in [%s]", r->name, r->line,
                             key, r->section);
    if (r->first_set[k])
        return ohm_error_set(OHM_EPARSE, "%s:%d: duplicate key %s (first set at line %d)", r->name,
                             r->line, full, r->first_set[k]);
    char *val = NULL;
    int rc = read_value(r, eq + 1, &val);
    if (rc) return rc;
    char where[300];
    snprintf(where, sizeof where, "%s:%d", r->name, r->line);
    value_t nv;
    if ((rc = parse_value(&schema[k], val, where, &nv))) return rc;
    set_value(&r->v[k], &nv);
    r->first_set[k] = r->line;
    return apply_preset(r->v, k, where, r->first_set);
}

int ohm_config_load_string(ohm_config_t *cfg, const char *text, size_t len, const char *name)
{
    assert(cfg && (text || len == 0));
    value_t v[NKEYS];
    int first_set[NKEYS] = {0};
    reader_t r = {.name = name ? name : "<string>", .v = v, .first_set = first_set};
    int rc = clone_values(cfg, v);
    if (rc) return rc;
    char *line = NULL;
    size_t cap = 0, pos = 0;
    /* A UTF-8 byte-order mark, as some editors write, is not part of the first line. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) pos = 3;
    while (pos < len && rc == OHM_OK) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        r.line++;
        if (n + 1 > cap) {
            char *p = realloc(line, n + 1);
            if (!p) {
                rc = ohm_error_set(OHM_ENOMEM, "%s:%d: line of %zu bytes", r.name, r.line, n);
                break;
            }
            line = p;
            cap = n + 1;
        }
        memcpy(line, text + pos, n);
        line[n] = '\0';
        if (memchr(text + pos, '\0', n))
            rc = ohm_error_set(OHM_EPARSE, "%s:%d: NUL byte in a text file", r.name, r.line);
        else
            rc = read_line(&r, line);
        pos += n + 1;
    }
    free(line);
    if (rc) {
        free_values(v);
        return rc;
    }
    free_values(cfg->v);
    memcpy(cfg->v, v, sizeof v);
    return OHM_OK;
}

/* Largest config file accepted: a mistaken path to a data file fails fast. */
#define MAX_FILE (1u << 20)

int ohm_config_load(ohm_config_t *cfg, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return ohm_error_set(OHM_EIO, "%s: %s", path, strerror(errno));
    char *buf = malloc(MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        return ohm_error_set(OHM_ENOMEM, "%s", path);
    }
    size_t n = fread(buf, 1, MAX_FILE + 1, f);
    int err = ferror(f);
    fclose(f);
    int rc;
    if (err)
        rc = ohm_error_set(OHM_EIO, "%s: read error", path);
    else if (n > MAX_FILE)
        rc = ohm_error_set(OHM_ETOOBIG, "%s: larger than %u bytes: not a config file", path,
                           MAX_FILE);
    else
        rc = ohm_config_load_string(cfg, buf, n, path);
    free(buf);
    return rc;
}

int ohm_config_set(ohm_config_t *cfg, const char *assignment, const char *origin)
{
    assert(cfg && assignment);
    if (!origin) origin = "--set";
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return ohm_error_set(OHM_EPARSE, "%s: '%.64s': expected section.key=value", origin,
                             assignment);
    char key[128];
    const char *s = assignment, *e = eq;
    while (s < e && isspace((unsigned char)*s))
        s++;
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    int k = -1;
    if ((size_t)(e - s) < sizeof key) {
        memcpy(key, s, (size_t)(e - s));
        key[e - s] = '\0';
        k = find_key(key);
    } else {
        snprintf(key, sizeof key, "%.64s...", s);
    }
    if (k < 0)
        return ohm_error_set(OHM_ENOTFOUND, "%s: unknown key '%.64s' (see `ohmpeer config`)",
                             origin, key);
    char *val = strdup(eq + 1);
    if (!val) return ohm_error_set(OHM_ENOMEM, "%s", origin);
    value_t nv;
    int rc = parse_value(&schema[k], trim(val), origin, &nv);
    free(val);
    if (rc) return rc;
    value_t old = cfg->v[k];
    old.text = strdup(cfg->v[k].text);
    if (!old.text) {
        free(nv.text);
        return ohm_error_set(OHM_ENOMEM, "%s", origin);
    }
    set_value(&cfg->v[k], &nv);
    if ((rc = apply_preset(cfg->v, k, origin, NULL))) {
        set_value(&cfg->v[k], &old); /* unchanged on error */
        return rc;
    }
    free(old.text);
    return OHM_OK;
}

/* ---- getters -------------------------------------------------------------------- */

static const value_t *get(const ohm_config_t *cfg, const char *key, enum ktype t1, enum ktype t2)
{
    assert(cfg && key);
    int k = find_key(key);
    assert(k >= 0 && "key not in the config schema");
    assert((schema[k].type == t1 || schema[k].type == t2) && "config key read with another type");
    (void)t1;
    (void)t2;
    return &cfg->v[k];
}

const char *ohm_config_str(const ohm_config_t *cfg, const char *key)
{
    return get(cfg, key, K_STR, K_ENUM)->text;
}

long ohm_config_int(const ohm_config_t *cfg, const char *key)
{
    return get(cfg, key, K_INT, K_INT)->i;
}

double ohm_config_double(const ohm_config_t *cfg, const char *key)
{
    return get(cfg, key, K_DOUBLE, K_DOUBLE)->d;
}

int ohm_config_bool(const ohm_config_t *cfg, const char *key)
{
    return (int)get(cfg, key, K_BOOL, K_BOOL)->i;
}

const char *ohm_config_text(const ohm_config_t *cfg, const char *key)
{
    assert(cfg && key);
    int k = find_key(key);
    return k < 0 ? NULL : cfg->v[k].text;
}

const char *ohm_config_origin(const ohm_config_t *cfg, const char *key)
{
    assert(cfg && key);
    int k = find_key(key);
    assert(k >= 0 && "key not in the config schema");
    return cfg->v[k].origin;
}

int ohm_config_int_list(const ohm_config_t *cfg, const char *key, int *out, int max)
{
    /* The text is canonical ("" or "a,b,c") and validated, so this cannot fail to parse. */
    const char *p = get(cfg, key, K_LIST, K_LIST)->text;
    int n = 0;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (n >= max) return -1;
        out[n++] = (int)v;
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

/* ---- for the printers (ohm_config_impl.h) ------------------------------------------ */

size_t ohm_config_key_count(void)
{
    return NKEYS;
}

const key_def_t *ohm_config_key(size_t k)
{
    assert(k < NKEYS);
    return &schema[k];
}

const char *ohm_config_text_at(const ohm_config_t *cfg, size_t k)
{
    assert(cfg && k < NKEYS);
    return cfg->v[k].text;
}
