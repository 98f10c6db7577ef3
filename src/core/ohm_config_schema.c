/* ohm_config_schema: every configuration key with its type, default, bounds
 * and documentation, and the presets; the data behind ohm_config.c (reader,
 * overrides, getters) and ohm_config_print.c (writer, printers). */
#include "ohm_config_impl.h"

#include <stddef.h>

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

/* The schema. Keys are grouped by section, sections in file order. To add a
 * key, add one line here: parsing, validation, `ohmpeer config` and the
 * written config all follow from it. */
const key_def_t ohm_config_schema[] = {
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
        "straggler emulation: each local step takes this many times its work "
        "(train.slowdown_basis)"),
    BOOL("train.join", "false",
         "a late joiner: start from the robust combination of the first models the neighbours "
         "send instead of its own initialization"),
    INT_RANGE("train.leave_at", "0", 0, IMAX,
              "leave cleanly (bye to the neighbours) after this many rounds (0 = never)"),
    ENUM("train.slowdown_basis", "cpu", "cpu|compute|runnable",
         "what train.slowdown = F multiplies: cpu: after each round the peer sleeps F-1 times "
         "the process CPU time (all threads: steps, encoding, encryption, decoding, combining) "
         "used since its previous sleep, a machine F times slower at everything; runnable: the "
         "same plus the time its threads waited for a core (F times slower than peers sharing "
         "its cores); compute: F-1 times the wall time of its gradient steps only (the meaning "
         "before this key existed)"),

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
    DBL_GE0("energy.read_s", "1.33e-7",
            "duration of one vector read (MVM), s (Le Gallo et al. 2023)"),
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
    ENUM("comm.compress", "none", "none|f16|bf16|q8|q4|topk|randk",
         "send compressed differences to a public copy, with error feedback (CHOCO)"),
    DBL("comm.ratio", "0.05", B_LO | B_HI | B_LO_OPEN, 0, 0.5,
        "share of the coordinates topk and randk send each round"),
    DBL("comm.gamma", "0", B_LO | B_HI, 0, 1,
        "consensus step on copies: x <- x + gamma (Rule(xhat, copies) - xhat); 0 = 1 for "
        "f16, bf16, q8, q4 and censoring, min(1, 4 ratio) for topk, ratio for randk"),
    ENUM("comm.entropy", "deflate", "none|deflate",
         "lossless stage after q8: deflate sends the int8 codes Huffman-coded when shorter "
         "(about 10 % fewer bytes for about 2 ms of CPU per message; none where the CPU, not "
         "the link, is the bound; docs/protocol.md)"),

    /* [async] */
    INT_RANGE("async.max_staleness", "20", 0, IMAX,
              "a neighbour's model older than this many of our steps is not combined (0 = no "
              "bound)"),
    DBL_GE0("async.max_staleness_s", "0",
            "... nor one older than this many seconds (0 = no bound)"),
    STR("async.staleness_weight", "poly:1",
        "none, or poly:A: a model tau steps old weighs (1 + tau)^(-A) times its weight"),
};

const size_t ohm_config_schema_len = sizeof ohm_config_schema / sizeof ohm_config_schema[0];

/* Presets: a value of a preset key stands for assignments made when the key is
 * set; later assignments override them ("none" assigns nothing). Device
 * presets map IBM aihwkit's preset devices (aihwkit/simulator/presets/devices.py)
 * onto ohmpeer's device model; docs/analog.md, section "Presets", gives every mapping
 * and what it leaves out. */
const ohm_config_preset_t ohm_config_presets[] = {
    /* IdealizedPresetDevice (ConstantStep): Gokmen & Vlasov, Front. Neurosci. 2016,
     * with ~10000 states (Rasch, Gokmen & Haensch, IEEE Design & Test 2019). */
    {"device.preset",
     "idealized",
     {"device.response=ideal", "device.tau=1.0", "device.gamma=1.0", "device.c=0.0",
      "device.dw_min=0.0002", "device.dw_min_dtod=0.3", "device.dw_min_std=0.3",
      "device.up_down=0.0", "device.up_down_dtod=0.0", "device.tau_dtod=0.3",
      "device.asymmetry_convention=aihwkit", NULL}},
    /* GokmenVlasovPresetDevice (ConstantStep): Gokmen & Vlasov, Front. Neurosci. 2016,
     * 1200 states over [-1, 1]. */
    {"device.preset",
     "gokmen-vlasov",
     {"device.response=ideal", "device.tau=1.0", "device.gamma=1.0", "device.c=0.0",
      "device.dw_min=0.0016", "device.dw_min_dtod=0.3", "device.dw_min_std=0.3",
      "device.up_down=0.0", "device.up_down_dtod=0.01", "device.tau_dtod=0.3",
      "device.asymmetry_convention=aihwkit", NULL}},
    /* ReRamSBPresetDevice (SoftBounds): fit to Gong et al., Nat. Commun. 2018. Range
     * [-0.75, 1.25] shifted to [-1, 1]: slopes 1/1.25 and 1/0.75 give c = -0.25 and
     * dw_min 0.002 x 16/15; bound spreads 0.3/1.25 and 0.3/0.75 are 0.3 absolute. */
    {"device.preset",
     "reram-sb",
     {"device.response=softbounds", "device.tau=1.0", "device.gamma=1.0", "device.c=-0.25",
      "device.dw_min=0.0021333333333333334", "device.dw_min_dtod=0.3", "device.dw_min_std=3.75",
      "device.up_down=0.0", "device.up_down_dtod=0.01", "device.tau_dtod=0.3",
      "device.asymmetry_convention=aihwkit", NULL}},
    /* CapacitorPresetDevice (LinearStep): fit to Li et al., VLSI 2018; slopes
     * gamma_up = gamma_down = 0.05 over [-1, 1]. Leakage (lifetime) is not modelled. */
    {"device.preset",
     "capacitor",
     {"device.response=linear", "device.tau=1.0", "device.gamma=0.05", "device.c=0.0",
      "device.dw_min=0.005", "device.dw_min_dtod=0.1", "device.dw_min_std=0.3",
      "device.up_down=0.0", "device.up_down_dtod=0.06", "device.tau_dtod=0.07",
      "device.asymmetry_convention=aihwkit", NULL}},
};

const size_t ohm_config_presets_len = sizeof ohm_config_presets / sizeof ohm_config_presets[0];
