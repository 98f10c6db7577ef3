/* ohm_peer: the synchronous adapt-combine round loop of one peer.
 *
 * Per round r (docs/design.md, section "One round"):
 *   atc:       psi = local steps from w;  send psi;  w = Rule(psi, psi_j)
 *   cta:       send w;  phi = Rule(w, w_j);  w = local steps from phi
 *   consensus: send w;  psi = local steps from w;  w = Rule(w, w_j) + (psi - w)
 * Receiving waits for every live in-neighbour's round-r model until the
 * round's deadline. A neighbour that misses a deadline is marked down and not
 * waited for until it is heard again; messages of past rounds are dropped,
 * a bounded window of future rounds is buffered, duplicates and invalid
 * messages are dropped and counted by reason and by sender. */
#include "ohm_peer.h"

#include "ohm_analog.h"
#include "ohm_byzantine.h"
#include "ohm_ckpt.h"
#include "ohm_data.h"
#include "ohm_error.h"
#include "ohm_keys.h"
#include "ohm_metrics.h"
#include "ohm_model.h"
#include "ohm_robust.h"
#include "ohm_rng.h"
#include "ohm_topology.h"
#include "ohm_transport.h"
#include "ohm_wire.h"

#include <assert.h>
#include <sodium.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_FUTURE 16
#define EVAL_CHUNK 1000

/* Why a message was dropped; each is counted per sender. */
enum {
    DROP_TRUNCATED,
    DROP_MALFORMED,
    DROP_VERSION,
    DROP_OTHER_RUN,
    DROP_SHAPE,
    DROP_RANGE,
    DROP_TOO_BIG,
    DROP_NONFINITE,
    DROP_NOT_NEIGHBOUR,
    DROP_SPOOFED,
    DROP_STALE,
    DROP_DUPLICATE,
    DROP_FUTURE,
    DROP_COUNT
};

static const char *const drop_names[DROP_COUNT] = {
    "truncated", "malformed",     "version", "other_run", "shape",     "range",  "too_big",
    "nonfinite", "not_neighbour", "spoofed", "stale",     "duplicate", "future",
};

typedef struct {
    uint32_t id;
    double w;           /* a_self,id: the weight this peer gives to the neighbour's model */
    int byzantine;      /* per the topology (only Byzantine peers use it: they collude) */
    int live;           /* waited for in the receive phase */
    int heard;          /* heard since start (start-up barrier) */
    int got;            /* this round's model arrived (valid or not) */
    int valid;          /* ... and was accepted into vec */
    int late;           /* still waited for when this round's deadline passed */
    int cut;            /* its link dropped and has not come back */
    int64_t seen_round; /* highest round announced (hello or model); -1 none */
    int64_t sent_round; /* highest round of a model it sent us (kept, dropped or not); -1 none */
    ohm_frame_t *cur;   /* this round's accepted message, kept until the round ends */
    const float *view;  /* its parameters: in place in cur, or copied into vec */
    float *vec;         /* where they are copied when cur's payload is unaligned */
    ohm_frame_t *slot[MAX_FUTURE + 1]; /* buffered future rounds, by round % (F+1) */
    uint32_t slot_round[MAX_FUTURE + 1];
    ohm_frame_t *ahead; /* its newest model beyond the window: where catching up lands */
    uint32_t ahead_round;
    uint64_t drops[DROP_COUNT];
    uint64_t accepted, missed;
} nbr_t;

struct ohm_peer {
    const ohm_config_t *cfg;
    ohm_peer_opts_t o;
    ohm_topology_t *topo;
    const ohm_peer_info_t *self;
    int npeers;
    uint32_t id;
    char *out_dir;
    char path_ckpt[4096], path_metrics[4096];
    /* learning */
    ohm_data_t *data;
    ohm_model_t *model;
    ohm_analog_ctx_t actx;
    ohm_batchbuf_t *trainbuf, *evalbuf;
    ohm_sampler_t sampler;
    uint32_t *idx;
    int32_t *flipped; /* labelflip's label copy */
    size_t P;
    float *own, *psi, *out, *tmp;
    const float **rows;
    double *weights;
    ohm_rule_params_t rule;
    int order, writeback, batch, local_steps;
    double weight_decay;
    /* byzantine */
    ohm_byz_t *byz;
    /* network */
    ohm_transport_t *tr;
    nbr_t *nb;
    int nn;
    uint32_t *nb_ids;
    ohm_wire_expect_t expect;
    uint64_t run_id, fp;
    int future, timeout_ms;
    uint64_t drops_unknown[DROP_COUNT]; /* sender could not be identified */
    /* progress */
    uint32_t round, rounds;
    double loss_sum;
    long loss_n;
    double t_start;
    double startup_deadline; /* until then, a neighbour heard at start-up is waited for */
    float *t_compute, *t_wait, *t_combine, *t_round;
    ohm_metrics_t *metrics;
    uint64_t rule_discarded, rule_clipped, rule_fallbacks;
    uint64_t skipped;    /* rounds jumped over by catching up */
    uint64_t links_lost; /* connections to neighbours that dropped */
    int last_missing;    /* neighbours without a valid model in the last round */
};

static volatile sig_atomic_t stop_requested;

void ohm_peer_request_stop(void)
{
    stop_requested = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static nbr_t *find_nbr(ohm_peer_t *p, uint32_t id)
{
    for (int i = 0; i < p->nn; i++)
        if (p->nb[i].id == id) return &p->nb[i];
    return NULL;
}

static int ensure_dir(const char *d)
{
    if (mkdir(d, 0755) && errno != EEXIST)
        return ohm_error_set(OHM_EIO, "%s: cannot create: %s", d, strerror(errno));
    return OHM_OK;
}

/* ---- set-up -------------------------------------------------------------- */

/* Removes PATH.tmp.PID files that ohm_ckpt_write left behind when a process
 * of this peer was killed mid-write (PID no longer running): they are never
 * read, but each holds a whole checkpoint's worth of disk. */
static void remove_stale_temps(const ohm_peer_t *p)
{
    char prefix[64];
    int pl = snprintf(prefix, sizeof prefix, "peer-%u.ckpt.tmp.", p->id);
    DIR *d = opendir(p->o.out_dir);
    if (!d) return;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, (size_t)pl) != 0) continue;
        char *end;
        long pid = strtol(e->d_name + pl, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* its writer may be alive */
        char path[4096 + 256];
        snprintf(path, sizeof path, "%s/%s", p->o.out_dir, e->d_name);
        removed += unlink(path) == 0;
    }
    closedir(d);
    if (removed)
        fprintf(stderr, "ohmpeer %u: removed %d temporary checkpoint file%s of killed runs\n",
                p->id, removed, removed == 1 ? "" : "s");
}

static int enum_index(const char *v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0) return i;
    return -1;
}

static int build_model(ohm_peer_t *p)
{
    const ohm_config_t *c = p->cfg;
    ohm_model_spec_t s = {0};
    s.n_in = ohm_data_dim(p->data);
    s.n_out = ohm_data_outputs(p->data);
    s.n_hidden = ohm_config_int_list(c, "model.hidden", s.hidden, OHM_MODEL_MAX_LAYERS - 1);
    if (s.n_hidden < 0)
        return ohm_error_set(OHM_EINVAL, "model.hidden: at most %d hidden layers",
                             OHM_MODEL_MAX_LAYERS - 1);
    static const char *const acts[] = {"relu", "tanh", "sigmoid"};
    s.act = enum_index(ohm_config_str(c, "model.activation"), acts, 3);
    s.loss = ohm_data_is_regression(p->data) ? OHM_LOSS_MSE : OHM_LOSS_XENT;
    s.bias = ohm_config_bool(c, "model.bias");
    int rc = ohm_analog_params_from_config(c, &p->actx.params);
    if (rc) return rc;
    p->actx.seed = (uint64_t)ohm_config_int(c, "train.seed");
    p->actx.peer = p->id;
    rc = ohm_model_new(&s, ohm_analog_tile_factory, &p->actx, &p->model);
    if (rc) return rc;
    p->weight_decay = ohm_config_double(c, "optimizer.weight_decay");
    if (p->weight_decay > 0 && strcmp(ohm_config_str(c, "optimizer.name"), "digital") != 0)
        return ohm_error_set(OHM_EINVAL,
                             "optimizer.weight_decay = %g: weight decay applies to the digital "
                             "optimizer only (optimizer.name = %s)",
                             p->weight_decay, ohm_config_str(c, "optimizer.name"));
    /* Every peer starts from the same weights: the stream does not depend on the id. */
    ohm_rng_t r;
    ohm_rng_seed(&r, p->actx.seed, 0, OHM_STREAM_INIT);
    ohm_model_init(p->model, &r);
    return OHM_OK;
}

static int load_keys(ohm_peer_t *p, uint8_t pub[OHM_KEY_BYTES], uint8_t *sec)
{
    const char *k = ohm_config_str(p->cfg, "net.key");
    char path[4096];
    if (k[0]) {
        snprintf(path, sizeof path, "%s", k);
    } else {
        char *tcopy = strdup(p->o.topology);
        if (!tcopy) return ohm_error_set(OHM_ENOMEM, "path");
        snprintf(path, sizeof path, "%s/keys/peer-%u.key", dirname(tcopy), p->id);
        free(tcopy);
    }
    int rc = ohm_keys_read_secret(path, pub, sec);
    if (rc) return rc;
    if (memcmp(pub, p->self->key, OHM_KEY_BYTES) != 0)
        return ohm_error_set(OHM_EAUTH,
                             "%s: this secret key does not match peer %u's public key in %s", path,
                             p->id, p->o.topology);
    return OHM_OK;
}

static int setup_network(ohm_peer_t *p)
{
    int insecure = ohm_config_bool(p->cfg, "net.insecure");
    int any_key = 0, all_keys = 1;
    for (int i = 0; i < p->npeers; i++) {
        const ohm_peer_info_t *pi = ohm_topology_peer(p->topo, (uint32_t)i);
        any_key |= pi->has_key;
        all_keys &= pi->has_key;
    }
    if (!insecure && !all_keys)
        return ohm_error_set(OHM_EAUTH,
                             "%s: %s peers have no public key; generate keys (ohm-launch does, "
                             "or `ohmpeer keygen`) or set net.insecure=true for plain TCP",
                             p->o.topology, any_key ? "some" : "the");
    const char *bind = ohm_config_str(p->cfg, "net.bind");
    if (!bind[0]) bind = p->self->bind ? p->self->bind : p->self->endpoint;
    size_t max_msg = ohm_wire_max_size((uint32_t)p->P);
    ohm_transport_opts_t to = {.bind = bind,
                               .max_msg_size = max_msg,
                               .hwm = (int)ohm_config_int(p->cfg, "net.hwm"),
                               .watch_links = 1};
    uint8_t pub[OHM_KEY_BYTES], sec[OHM_KEY_BYTES];
    uint8_t(*keys)[OHM_KEY_BYTES] = NULL;
    uint32_t *ids = NULL;
    int rc = OHM_OK;
    if (!insecure) {
        if ((rc = load_keys(p, pub, sec))) return rc;
        keys = calloc((size_t)p->nn + 1, OHM_KEY_BYTES);
        ids = calloc((size_t)p->nn + 1, sizeof *ids);
        if (!keys || !ids) {
            rc = ohm_error_set(OHM_ENOMEM, "key list");
            goto out;
        }
        for (int i = 0; i < p->nn; i++) {
            memcpy(keys[i], ohm_topology_peer(p->topo, p->nb[i].id)->key, OHM_KEY_BYTES);
            ids[i] = p->nb[i].id;
        }
        to.public_key = pub;
        to.secret_key = sec;
        to.n_allowed = p->nn;
        to.allowed_keys = (const uint8_t(*)[OHM_KEY_BYTES])keys;
        to.allowed_ids = ids;
    }
    rc = ohm_transport_new(&to, &p->tr);
    if (rc) {
        ohm_error_set(rc, "peer %u: %s", p->id, ohm_error_detail());
        goto out;
    }
    for (int i = 0; i < p->nn; i++) {
        const ohm_peer_info_t *q = ohm_topology_peer(p->topo, p->nb[i].id);
        rc = ohm_transport_add_peer(p->tr, q->id, q->endpoint, insecure ? NULL : q->key);
        if (rc) {
            ohm_error_set(rc, "peer %u -> neighbour %u (%s): %s", p->id, q->id, q->endpoint,
                          ohm_error_detail());
            goto out;
        }
    }
out:
    /* The transport keeps its own locked copy of the secret. */
    sodium_memzero(sec, sizeof sec);
    free(keys);
    free(ids);
    return rc;
}

static uint64_t derive_run_id(const ohm_peer_t *p)
{
    const char *r = ohm_config_str(p->cfg, "net.run_id");
    if (r[0]) return ohm_hash64(r, strlen(r), 0x72756e);
    uint64_t parts[2] = {ohm_topology_digest(p->topo),
                         (uint64_t)ohm_config_int(p->cfg, "train.seed")};
    return ohm_hash64(parts, sizeof parts, 0x72756e);
}

int ohm_peer_new(const ohm_peer_opts_t *o, const ohm_config_t *cfg, ohm_peer_t **out)
{
    *out = NULL;
    ohm_peer_t *p = calloc(1, sizeof *p);
    if (!p) return ohm_error_set(OHM_ENOMEM, "peer");
    p->cfg = cfg;
    p->o = *o;
    p->id = o->id;
    int rc = ohm_topology_load(o->topology, &p->topo);
    if (rc) goto fail;
    p->npeers = ohm_topology_size(p->topo);
    if (o->id >= (uint32_t)p->npeers) {
        rc = ohm_error_set(OHM_EINVAL, "peer id %u: %s declares peers 0..%d", o->id, o->topology,
                           p->npeers - 1);
        goto fail;
    }
    p->self = ohm_topology_peer(p->topo, o->id);
    if ((rc = ensure_dir(o->out_dir))) goto fail;
    snprintf(p->path_ckpt, sizeof p->path_ckpt, "%s/peer-%u.ckpt", o->out_dir, o->id);
    snprintf(p->path_metrics, sizeof p->path_metrics, "%s/peer-%u.jsonl", o->out_dir, o->id);
    remove_stale_temps(p);

    if (p->self->byzantine && p->self->attack) {
        rc = ohm_byz_new(p->self->attack, (uint64_t)ohm_config_int(cfg, "train.seed"), p->id,
                         &p->byz);
        if (rc) {
            ohm_error_set(rc, "%s: peer %u: %s", o->topology, p->id, ohm_error_detail());
            goto fail;
        }
    }

    if ((rc = ohm_data_open(cfg, p->npeers, (int)p->id, &p->data))) goto fail;
    if ((rc = build_model(p))) goto fail;
    p->P = ohm_model_nparams(p->model);
    p->fp = ohm_model_fingerprint(p->model);
    p->batch = (int)ohm_config_int(cfg, "optimizer.batch");
    p->local_steps = (int)ohm_config_int(cfg, "train.local_steps");
    p->rounds = (uint32_t)ohm_config_int(cfg, "train.rounds");
    static const char *const orders[] = {"atc", "cta", "consensus"};
    p->order = enum_index(ohm_config_str(cfg, "aggregate.order"), orders, 3);
    p->writeback = strcmp(ohm_config_str(cfg, "aggregate.writeback"), "pulsed") == 0 ? OHM_WB_PULSED
                                                                                     : OHM_WB_EXACT;
    const char *rule = p->self->rule ? p->self->rule : ohm_config_str(cfg, "aggregate.rule");
    int ri = ohm_rule_from_name(rule);
    if (ri < 0) {
        rc = ohm_error_set(OHM_EINVAL, "%s: peer %u: unknown rule '%s'", o->topology, p->id, rule);
        goto fail;
    }
    ohm_rule_defaults(&p->rule, (ohm_rule_t)ri);
    p->rule.b = p->self->b >= 0 ? p->self->b : (int)ohm_config_int(cfg, "aggregate.b");
    p->rule.tau = ohm_config_double(cfg, "aggregate.tau");
    p->rule.nu = ohm_config_double(cfg, "aggregate.nu");
    p->rule.iters = (int)ohm_config_int(cfg, "aggregate.iters");
    p->rule.tol = ohm_config_double(cfg, "aggregate.tol");
    p->rule.m = (int)ohm_config_int(cfg, "aggregate.m");

    const uint32_t *ids;
    p->nn = ohm_topology_neighbors(p->topo, p->id, &ids);
    p->nb = calloc((size_t)p->nn + 1, sizeof *p->nb);
    p->nb_ids = calloc((size_t)p->nn + 1, sizeof *p->nb_ids);
    p->future = (int)ohm_config_int(cfg, "net.future_rounds");
    if (p->future > MAX_FUTURE) p->future = MAX_FUTURE;
    p->timeout_ms = (int)ohm_config_int(cfg, "net.round_timeout_ms");
    if (!p->nb || !p->nb_ids) goto oom;
    for (int i = 0; i < p->nn; i++) {
        nbr_t *n = &p->nb[i];
        n->id = ids[i];
        p->nb_ids[i] = ids[i];
        n->w = ohm_topology_weight(p->topo, p->id, ids[i]);
        n->byzantine = ohm_topology_peer(p->topo, ids[i])->byzantine;
        n->live = 1;
        n->seen_round = n->sent_round = -1;
        if (!(n->vec = malloc(sizeof(float) * p->P))) goto oom;
    }
    p->own = malloc(sizeof(float) * p->P);
    p->psi = malloc(sizeof(float) * p->P);
    p->out = malloc(sizeof(float) * p->P);
    p->tmp = malloc(sizeof(float) * p->P);
    p->rows = calloc((size_t)p->nn + 1, sizeof *p->rows);
    p->weights = calloc((size_t)p->nn + 1, sizeof *p->weights);
    p->idx = calloc((size_t)p->batch, sizeof *p->idx);
    p->flipped = calloc((size_t)p->batch, sizeof *p->flipped);
    p->trainbuf = ohm_batchbuf_new(p->data, p->batch);
    p->evalbuf = ohm_batchbuf_new(p->data, EVAL_CHUNK);
    size_t R = p->rounds ? p->rounds : 1;
    p->t_compute = calloc(R, sizeof(float));
    p->t_wait = calloc(R, sizeof(float));
    p->t_combine = calloc(R, sizeof(float));
    p->t_round = calloc(R, sizeof(float));
    if (!p->own || !p->psi || !p->out || !p->tmp || !p->rows || !p->weights || !p->idx ||
        !p->flipped || !p->trainbuf || !p->evalbuf || !p->t_compute || !p->t_wait ||
        !p->t_combine || !p->t_round)
        goto oom;
    ohm_sampler_init(&p->sampler, (uint64_t)ohm_config_int(cfg, "train.seed"), p->id);

    p->run_id = derive_run_id(p);
    p->expect = (ohm_wire_expect_t){
        .run = p->run_id, .fp = p->fp, .count = (uint32_t)p->P, .max_from = (uint32_t)p->npeers};
    if ((rc = setup_network(p))) goto fail;
    if ((rc = ohm_metrics_open(p->path_metrics, &p->metrics))) goto fail;
    *out = p;
    return OHM_OK;
oom:
    rc = ohm_error_set(OHM_ENOMEM, "peer %u: buffers for %zu parameters", o->id, p->P);
fail:
    ohm_peer_destroy(&p);
    return rc;
}

void ohm_peer_destroy(ohm_peer_t **pp)
{
    if (!pp || !*pp) return;
    ohm_peer_t *p = *pp;
    for (int i = 0; i < p->nn && p->nb; i++) {
        free(p->nb[i].vec);
        ohm_frame_destroy(&p->nb[i].cur);
        for (int s = 0; s <= MAX_FUTURE; s++)
            ohm_frame_destroy(&p->nb[i].slot[s]);
        ohm_frame_destroy(&p->nb[i].ahead);
    }
    free(p->nb);
    free(p->nb_ids);
    ohm_transport_destroy(&p->tr);
    ohm_metrics_close(&p->metrics);
    ohm_model_destroy(&p->model);
    ohm_batchbuf_destroy(&p->trainbuf);
    ohm_batchbuf_destroy(&p->evalbuf);
    ohm_data_destroy(&p->data);
    ohm_byz_destroy(&p->byz);
    ohm_topology_destroy(&p->topo);
    free(p->own);
    free(p->psi);
    free(p->out);
    free(p->tmp);
    free(p->rows);
    free(p->weights);
    free(p->idx);
    free(p->flipped);
    free(p->t_compute);
    free(p->t_wait);
    free(p->t_combine);
    free(p->t_round);
    free(p);
    *pp = NULL;
}

/* ---- messages ------------------------------------------------------------ */

static void count_drop(ohm_peer_t *p, uint32_t sender, int reason)
{
    nbr_t *n = sender == OHM_PEER_UNKNOWN ? NULL : find_nbr(p, sender);
    if (n)
        n->drops[reason]++;
    else
        p->drops_unknown[reason]++;
}

static int drop_reason_of(int rc)
{
    switch (rc) {
    case OHM_ETRUNC:
        return DROP_TRUNCATED;
    case OHM_EUNSUPPORTED:
        return DROP_VERSION;
    case OHM_ESTALE:
        return DROP_OTHER_RUN;
    case OHM_ESHAPE:
        return DROP_SHAPE;
    case OHM_ERANGE:
        return DROP_RANGE;
    case OHM_ETOOBIG:
        return DROP_TOO_BIG;
    default:
        return DROP_MALFORMED;
    }
}

/* Encodes a message and sends it to ids[n]; the transport frees the buffer. */
static int send_msg(ohm_peer_t *p, uint32_t type, uint32_t round, const float *params,
                    const uint32_t *ids, int n)
{
    if (n == 0) return OHM_OK;
    ohm_wire_msg_t m = {.version = OHM_WIRE_VERSION,
                        .type = type,
                        .run = p->run_id,
                        .from = p->id,
                        .round = round,
                        .fp = p->fp,
                        .count = params ? (uint32_t)p->P : 0};
    size_t cap = ohm_wire_max_size(m.count), len = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) return ohm_error_set(OHM_ENOMEM, "message buffer");
    int rc = ohm_wire_encode(&m, params, buf, cap, &len);
    if (rc) {
        free(buf);
        return rc;
    }
    ohm_transport_send_all(p->tr, ids, n, buf, len);
    return OHM_OK;
}

/* Takes frame f (decoded as m) as the neighbour's model for the current round.
 * The frame is kept until the round ends so its parameters are read in place,
 * without a copy, where the payload is aligned. Takes ownership of f. */
static void accept_model(nbr_t *n, const ohm_wire_msg_t *m, ohm_frame_t *f)
{
    n->got = 1;
    if (ohm_wire_view_params(m, n->vec, &n->view) != OHM_OK) {
        n->drops[DROP_NONFINITE]++;
        ohm_frame_destroy(&f);
        return;
    }
    ohm_frame_destroy(&n->cur);
    n->cur = f;
    n->valid = 1; /* counted as accepted when the round closes (it may be skipped) */
}

/* A frame makes its sender live (waited for) again, unless its link dropped
 * and has not come back: such a frame was sent before the loss and only read
 * after it, and the neighbour may be dead. */
static void revive(ohm_peer_t *p, nbr_t *n)
{
    if (n->cut && ohm_transport_link_up(p->tr, n->id)) n->cut = 0;
    if (!n->cut) n->live = 1;
}

/* Handles one received frame: validate, attribute, then file it by type and round. */
static void handle_frame(ohm_peer_t *p, ohm_frame_t *f, int in_barrier)
{
    uint32_t auth = ohm_frame_peer(f);
    ohm_wire_msg_t m;
    int rc = ohm_wire_decode(ohm_frame_data(f), ohm_frame_size(f), &p->expect, &m);
    if (rc) {
        count_drop(p, auth, drop_reason_of(rc));
        ohm_frame_destroy(&f);
        return;
    }
    if (auth != OHM_PEER_UNKNOWN && auth != m.from) {
        count_drop(p, auth, DROP_SPOOFED);
        ohm_frame_destroy(&f);
        return;
    }
    nbr_t *n = find_nbr(p, m.from);
    if (!n) {
        count_drop(p, OHM_PEER_UNKNOWN, DROP_NOT_NEIGHBOUR);
        ohm_frame_destroy(&f);
        return;
    }
    n->heard = 1;
    if (m.type == OHM_MSG_HELLO) {
        /* A neighbour (re)starting, perhaps from an older checkpoint: its round is
         * what it says now, and its earlier models are history. One ahead of us
         * is answering our hello from its receive phase: it has sent that round's
         * model. Wait for it: it catches up with us. Answer only one that is
         * behind, so two hellos never answer each other forever. */
        revive(p, n);
        n->seen_round = m.round;
        n->sent_round = m.round > p->round ? (int64_t)m.round : -1;
        if (!in_barrier && m.round < p->round)
            send_msg(p, OHM_MSG_HELLO, p->round, NULL, &n->id, 1);
        ohm_frame_destroy(&f);
        return;
    }
    /* Up again, even when behind: it catches up as soon as it sees our rounds. */
    revive(p, n);
    if ((int64_t)m.round > n->seen_round) n->seen_round = m.round;
    if (m.type == OHM_MSG_MODEL && (int64_t)m.round > n->sent_round) n->sent_round = m.round;
    if (m.type == OHM_MSG_BYE) {
        n->live = 0; /* finished: never wait for it again */
        n->seen_round = n->sent_round = -1;
        ohm_frame_destroy(&f);
        return;
    }
    if (m.round < p->round) {
        n->drops[DROP_STALE]++;
        ohm_frame_destroy(&f);
        return;
    }
    if (m.round == p->round) {
        if (n->got) {
            n->drops[DROP_DUPLICATE]++;
            ohm_frame_destroy(&f);
        } else {
            accept_model(n, &m, f);
        }
        return;
    }
    if (m.round - p->round > (uint32_t)p->future) {
        /* Beyond the window: keep only the newest such model. If we catch up to
         * this neighbour's round, that is exactly the model the round needs. */
        n->drops[DROP_FUTURE]++;
        if (!n->ahead || m.round > n->ahead_round) {
            ohm_frame_destroy(&n->ahead);
            n->ahead = f;
            n->ahead_round = m.round;
        } else {
            ohm_frame_destroy(&f);
        }
        return;
    }
    int s = (int)(m.round % (uint32_t)(p->future + 1));
    if (n->slot[s] && n->slot_round[s] == m.round) {
        n->drops[DROP_DUPLICATE]++;
        ohm_frame_destroy(&f);
        return;
    }
    ohm_frame_destroy(&n->slot[s]); /* an older round's leftover */
    n->slot[s] = f;
    n->slot_round[s] = m.round;
}

/* Moves to round `r`: forgets the finished round's arrivals and takes the
 * frames buffered for r. Models of r that arrived earlier (during the start-up
 * barrier, or while we were finishing r-1) are already filed and kept. */
static void advance_to(ohm_peer_t *p, uint32_t r)
{
    p->round = r;
    for (int i = 0; i < p->nn; i++) {
        nbr_t *n = &p->nb[i];
        n->got = n->valid = 0;
        n->view = NULL;
        ohm_frame_destroy(&n->cur);
        if (n->ahead && n->ahead_round <= r) {
            ohm_wire_msg_t m;
            if (n->ahead_round == r &&
                ohm_wire_decode(ohm_frame_data(n->ahead), ohm_frame_size(n->ahead), &p->expect,
                                &m) == OHM_OK) {
                n->drops[DROP_FUTURE]--; /* counted as dropped on arrival; used after all */
                accept_model(n, &m, n->ahead);
                n->ahead = NULL;
            }
            ohm_frame_destroy(&n->ahead);
        }
        for (int s = 0; s <= p->future; s++) {
            if (!n->slot[s]) continue;
            if (n->slot_round[s] < p->round) {
                ohm_frame_destroy(&n->slot[s]);
            } else if (n->slot_round[s] == p->round) {
                ohm_wire_msg_t m;
                /* Validated on arrival; decoding again only re-derives the view. */
                if (ohm_wire_decode(ohm_frame_data(n->slot[s]), ohm_frame_size(n->slot[s]),
                                    &p->expect, &m) == OHM_OK) {
                    accept_model(n, &m, n->slot[s]);
                    n->slot[s] = NULL;
                }
                ohm_frame_destroy(&n->slot[s]);
            }
        }
    }
}

/* Whether this round waits for neighbour n. Not when it sent a model of this
 * round or a later one, or announced a later round: this round's model has
 * been sent already (links keep their order), so if it is not here it is lost
 * (dropped while we were behind, or on the way). Not when it is further behind than the
 * buffered window (restarting from a checkpoint, or fallen far behind): it
 * jumps to our round once it sees it, and waiting would only stall us. */
static int waited_for(const ohm_peer_t *p, const nbr_t *n)
{
    int64_t r = p->round, lag = p->future > 1 ? p->future : 1;
    return n->live && !n->got && n->seen_round <= r && n->sent_round < r &&
           n->seen_round + lag >= r;
}

static int all_arrived(const ohm_peer_t *p)
{
    for (int i = 0; i < p->nn; i++)
        if (waited_for(p, &p->nb[i])) return 0;
    return 1;
}

/* Links whose connection dropped (the neighbour's process ended, or the
 * network gave up on it): not waited for, from now on, until heard again.
 * Without this a neighbour killed inside the start-up window held us until the
 * window ended, and one killed later cost a whole round deadline. */
static void links_lost(ohm_peer_t *p)
{
    uint32_t id;
    while (ohm_transport_lost(p->tr, &id)) {
        nbr_t *n = find_nbr(p, id);
        if (!n) continue;
        p->links_lost++;
        if (n->live)
            fprintf(stderr, "ohmpeer %u: link to %u lost at round %u; not waiting for it\n", p->id,
                    id, p->round);
        n->live = 0;
        n->cut = 1;
    }
}

/* What ohm_transport_recv handed out: a frame, or (NULL) news of lost links. */
static void dispatch(ohm_peer_t *p, ohm_frame_t *f, int in_barrier)
{
    if (f)
        handle_frame(p, f, in_barrier);
    else
        links_lost(p);
}

/* Handles frames until done(p) holds or the deadline (monotonic seconds)
 * passes. OHM_EINTR when a stop was requested, a transport error as is. */
static int receive_until(ohm_peer_t *p, double deadline, int (*done)(const ohm_peer_t *),
                         int in_barrier)
{
    while (!done(p)) {
        if (stop_requested) return OHM_EINTR;
        int left = (int)((deadline - now_s()) * 1000.0);
        if (left <= 0) break;
        ohm_frame_t *f = NULL;
        int rc = ohm_transport_recv(p->tr, left, &f);
        if (rc == OHM_ETIMEOUT) break;
        if (rc == OHM_EINTR) continue;
        if (rc) return rc;
        dispatch(p, f, in_barrier);
    }
    return OHM_OK;
}

static int all_heard(const ohm_peer_t *p)
{
    for (int i = 0; i < p->nn; i++)
        if (!p->nb[i].heard) return 0;
    return 1;
}

/* Receives until every live neighbour delivered this round or the deadline passed.
 * Neighbours that missed it are marked down (not waited for until heard again). */
static int receive_round(ohm_peer_t *p)
{
    double deadline = now_s() + p->timeout_ms / 1000.0;
    /* During the start-up window, neighbours that said hello may still be held
     * by their own barrier (waiting for a peer that is slow or absent), and
     * their neighbours by them: wait as long as the start-up allows instead of
     * marking them down and racing ahead of the whole graph. */
    if (p->startup_deadline > deadline) deadline = p->startup_deadline;
    int rc = receive_until(p, deadline, all_arrived, 0);
    if (rc) return rc;
    /* Down only if we were still waiting for it when the deadline passed: one
     * whose model was lost, or that is far behind, is alive. Decided before the
     * drain below, so a neighbour heard again there stays up and is waited for
     * next round (deciding after it put a neighbour one round behind down again
     * every round, and the two never lined up). */
    for (int i = 0; i < p->nn; i++)
        p->nb[i].late = waited_for(p, &p->nb[i]);
    /* Take what is already queued without waiting: this is how a neighbour that
     * is down (not waited for) is heard again. Bounded, so a flood cannot hold
     * the round. */
    for (int k = 0; k < 4 * p->nn + 4; k++) {
        ohm_frame_t *f = NULL;
        if (ohm_transport_recv(p->tr, 0, &f) != OHM_OK) break;
        dispatch(p, f, 0);
    }
    for (int i = 0; i < p->nn; i++) {
        nbr_t *n = &p->nb[i];
        n->accepted += (uint64_t)n->valid;
        if (!n->got) {
            if (n->late) n->live = 0;
            n->missed++; /* counted for down neighbours too: every round without it */
        }
    }
    return OHM_OK;
}

/* Start-up barrier: announce ourselves and wait (bounded) until every
 * neighbour has been heard, so nobody loses round 0 to a slow start. */
static int barrier(ohm_peer_t *p)
{
    send_msg(p, OHM_MSG_HELLO, p->round, NULL, p->nb_ids, p->nn);
    double deadline = now_s() + ohm_config_int(p->cfg, "net.startup_timeout_ms") / 1000.0;
    p->startup_deadline = deadline + p->timeout_ms / 1000.0;
    int rc = receive_until(p, deadline, all_heard, 1);
    if (rc) return rc;
    for (int i = 0; i < p->nn; i++)
        if (!p->nb[i].heard) {
            p->nb[i].live = 0;
            fprintf(stderr, "ohmpeer %u: neighbour %u not heard at start-up; going on without it\n",
                    p->id, p->nb[i].id);
        }
    return OHM_OK;
}

/* Jumps ahead when neighbours are two or more rounds further (we were
 * restarted or fell behind): waiting would stall them, and their models carry
 * the progress we missed. The target is the (b+1)-th highest announced round,
 * so b Byzantine neighbours announcing far-off rounds cannot make us skip the
 * run; with b = 0 it is the highest, and with b >= degree there is none. */
static void catch_up(ohm_peer_t *p)
{
    if (p->nn == 0) return;
    /* Announced rounds in decreasing order (insertion sort: degrees are small). */
    int64_t r[p->nn];
    for (int i = 0; i < p->nn; i++) {
        int j = i;
        for (; j > 0 && r[j - 1] < p->nb[i].seen_round; j--)
            r[j] = r[j - 1];
        r[j] = p->nb[i].seen_round;
    }
    if (p->rule.b >= p->nn) return; /* no announcement can be trusted */
    int64_t best = r[p->rule.b];
    if (best >= (int64_t)p->round + 2 && best < (int64_t)p->rounds) {
        fprintf(stderr, "ohmpeer %u: catching up from round %u to %" PRId64 "\n", p->id, p->round,
                best);
        p->skipped += (uint64_t)best - p->round;
        advance_to(p, (uint32_t)best);
    }
}

/* ---- learning ------------------------------------------------------------ */

static float step_size(const ohm_peer_t *p, uint32_t round)
{
    double lr = ohm_config_double(p->cfg, "optimizer.lr");
    if (strcmp(ohm_config_str(p->cfg, "optimizer.schedule"), "invsqrt") == 0)
        lr /= sqrt((double)round + 1.0);
    return (float)lr;
}

/* local_steps mini-batch steps on the tiles. */
static int adapt(ohm_peer_t *p)
{
    float lr = step_size(p, p->round);
    int flip = p->byz && ohm_byz_trains(p->byz);
    for (int s = 0; s < p->local_steps; s++) {
        ohm_sampler_next(&p->sampler, p->data, p->idx, p->batch);
        const ohm_batch_t *b = ohm_data_train_batch(p->data, p->trainbuf, p->idx, p->batch);
        ohm_batch_t fb;
        if (flip && b->y) {
            /* labelflip trains on y -> C-1-y and is otherwise honest. */
            int C = ohm_data_outputs(p->data);
            for (int i = 0; i < b->n; i++)
                p->flipped[i] = C - 1 - b->y[i];
            fb = *b;
            fb.y = p->flipped;
            b = &fb;
        }
        double loss = 0;
        int rc = p->weight_decay > 0 ? ohm_model_decay(p->model, 1.0f - lr * (float)p->weight_decay)
                                     : OHM_OK;
        if (!rc) rc = ohm_model_train_step(p->model, b, lr, &loss);
        if (rc) return rc;
        p->loss_sum += loss;
        p->loss_n++;
    }
    return OHM_OK;
}

/* out = Rule(own, received) with the weights of the neighbours that delivered;
 * the weight of those that did not goes to self so the weights still sum to 1. */
static void combine(ohm_peer_t *p, const float *own)
{
    int k = 0;
    double wself = 1.0;
    p->rows[k] = own;
    p->weights[k++] = 0; /* filled below */
    for (int i = 0; i < p->nn; i++) {
        nbr_t *n = &p->nb[i];
        wself -= n->w;
        if (n->valid) {
            p->rows[k] = n->view;
            p->weights[k++] = n->w;
        } else {
            wself += n->w;
        }
    }
    p->weights[0] = wself;
    p->last_missing = p->nn - (k - 1);
    ohm_rule_stats_t st = {0};
    int rc = ohm_robust_aggregate(&p->rule, p->rows, p->weights, k, p->P, p->out, &st);
    if (rc != OHM_ROBUST_OK) {
        /* Too few inputs for the rule this round (neighbours missing): keep our own. */
        memcpy(p->out, own, sizeof(float) * p->P);
        p->rule_fallbacks++;
        return;
    }
    p->rule_discarded += (uint64_t)st.discarded;
    p->rule_clipped += (uint64_t)st.clipped;
}

/* Mean loss and accuracy on the first n test examples (or all). */
static int evaluate(ohm_peer_t *p, size_t n, double *loss, double *acc)
{
    size_t total = ohm_data_test_size(p->data);
    if (n == 0 || n > total) n = total;
    double ls = 0, as = 0;
    for (size_t s = 0; s < n; s += EVAL_CHUNK) {
        int c = (int)(n - s < EVAL_CHUNK ? n - s : EVAL_CHUNK);
        const ohm_batch_t *b = NULL;
        double l, a;
        int rc = ohm_data_test_batch(p->data, p->evalbuf, s, c, &b);
        if (!rc) rc = ohm_model_evaluate(p->model, b, &l, &a);
        if (rc) return rc;
        ls += l * c;
        as += a * c;
    }
    *loss = ls / (double)n;
    *acc = as / (double)n;
    return OHM_OK;
}

/* ---- checkpoints --------------------------------------------------------- */

static int save_checkpoint(ohm_peer_t *p)
{
    ohm_ckpt_t *ck = ohm_ckpt_new();
    if (!ck) return ohm_error_set(OHM_ENOMEM, "checkpoint");
    int rc = OHM_OK;
    char meta[512];
    int ml = snprintf(meta, sizeof meta,
                      "{\"peer\":%u,\"round\":%u,\"rounds\":%u,\"npeers\":%d,\"byzantine\":%s,"
                      "\"fingerprint\":\"%016" PRIx64 "\",\"params\":%zu}",
                      p->id, p->round, p->rounds, p->npeers, p->self->byzantine ? "true" : "false",
                      p->fp, p->P);
    char *cfgtext = NULL;
    size_t cfglen = 0;
    FILE *mf = open_memstream(&cfgtext, &cfglen);
    if (mf) {
        ohm_config_write(p->cfg, mf);
        fclose(mf);
    }
    size_t ss = ohm_model_state_size(p->model);
    unsigned char *state = malloc(ss ? ss : 1);
    uint32_t next = p->round;
    double acc[2] = {p->loss_sum, (double)p->loss_n};
    if (!cfgtext || !state) {
        rc = ohm_error_set(OHM_ENOMEM, "checkpoint buffers");
        goto out;
    }
    ohm_model_get_params(p->model, p->tmp);
    ohm_model_state_save(p->model, state);
    if ((rc = ohm_ckpt_put(ck, "meta", meta, (size_t)ml)) ||
        (rc = ohm_ckpt_put(ck, "config", cfgtext, cfglen)) ||
        (rc = ohm_ckpt_put(ck, "params", p->tmp, sizeof(float) * p->P)) ||
        (rc = ohm_ckpt_put(ck, "model", state, ss)) ||
        (rc = ohm_ckpt_put(ck, "sampler", &p->sampler, sizeof p->sampler)) ||
        (rc = ohm_ckpt_put(ck, "round", &next, sizeof next)) ||
        (rc = ohm_ckpt_put(ck, "loss", acc, sizeof acc)))
        goto out;
    rc = ohm_ckpt_write(ck, p->path_ckpt);
out:
    free(cfgtext);
    free(state);
    ohm_ckpt_destroy(&ck);
    return rc;
}

static int section(const ohm_ckpt_t *ck, const char *name, void *dst, size_t len, const char *path)
{
    const void *d;
    size_t n;
    if (ohm_ckpt_get(ck, name, &d, &n) || n != len)
        return ohm_error_set(OHM_EFORMAT, "%s: section '%s' missing or of the wrong size", path,
                             name);
    memcpy(dst, d, len);
    return OHM_OK;
}

static int resume(ohm_peer_t *p)
{
    struct stat st;
    if (stat(p->path_ckpt, &st) != 0) {
        fprintf(stderr, "ohmpeer %u: --resume: no checkpoint at %s; starting from round 0\n", p->id,
                p->path_ckpt);
        return OHM_OK;
    }
    ohm_ckpt_t *ck = NULL;
    int rc = ohm_ckpt_read(p->path_ckpt, &ck);
    if (rc) return rc;
    const void *d;
    size_t n;
    uint32_t next = 0;
    double acc[2];
    if ((rc = ohm_ckpt_get(ck, "model", &d, &n)) || (rc = ohm_model_state_load(p->model, d, n))) {
        ohm_error_set(rc, "%s: %s", p->path_ckpt, ohm_error_detail());
        goto out;
    }
    if ((rc = section(ck, "sampler", &p->sampler, sizeof p->sampler, p->path_ckpt)) ||
        (rc = section(ck, "round", &next, sizeof next, p->path_ckpt)) ||
        (rc = section(ck, "loss", acc, sizeof acc, p->path_ckpt)))
        goto out;
    if (p->sampler.peer != p->id) {
        rc = ohm_error_set(OHM_EFORMAT, "%s: checkpoint of peer %u, not %u", p->path_ckpt,
                           p->sampler.peer, p->id);
        goto out;
    }
    p->round = next;
    p->loss_sum = acc[0];
    p->loss_n = (long)acc[1];
    fprintf(stderr, "ohmpeer %u: resumed from %s at round %u\n", p->id, p->path_ckpt, next);
out:
    ohm_ckpt_destroy(&ck);
    return rc;
}

/* ---- metrics ------------------------------------------------------------- */

static uint64_t total_drops(const ohm_peer_t *p, uint64_t *by_reason)
{
    uint64_t t = 0;
    for (int r = 0; r < DROP_COUNT; r++) {
        uint64_t c = p->drops_unknown[r];
        for (int i = 0; i < p->nn; i++)
            c += p->nb[i].drops[r];
        by_reason[r] = c;
        t += c;
    }
    return t;
}

/* {"reason":count,...} of the non-zero counters; buf must hold 512 bytes. */
static void drops_json(const uint64_t *c, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "{");
    int first = 1;
    for (int r = 0; r < DROP_COUNT && n < cap; r++)
        if (c[r]) {
            n += (size_t)snprintf(buf + n, cap - n, "%s\"%s\":%" PRIu64, first ? "" : ",",
                                  drop_names[r], c[r]);
            first = 0;
        }
    if (n < cap) snprintf(buf + n, cap - n, "}");
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double median_ms(float *v, uint32_t n)
{
    if (n == 0) return 0;
    qsort(v, n, sizeof *v, cmp_float);
    return 1000.0 * (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

static long rss_max_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

/* Writes the effective weights of an evaluated round to
 * <out>/snapshots/peer-<id>-r<round>.f32 (float32, host order), atomically, so
 * the launcher can compute the consensus distance of every evaluated round. */
static int write_snapshot(ohm_peer_t *p, uint32_t done)
{
    char dir[4200], path[4300], tmp[4400];
    snprintf(dir, sizeof dir, "%s/snapshots", p->o.out_dir);
    int rc = ensure_dir(dir);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/peer-%u-r%u.f32", dir, p->id, done);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ohm_model_get_params(p->model, p->tmp);
    FILE *f = fopen(tmp, "wb");
    if (!f) return ohm_error_set(OHM_EIO, "%s: %s", tmp, strerror(errno));
    size_t w = fwrite(p->tmp, sizeof(float), p->P, f);
    if (fclose(f) != 0 || w != p->P || rename(tmp, path) != 0) {
        unlink(tmp);
        return ohm_error_set(OHM_EIO, "%s: write failed", path);
    }
    return OHM_OK;
}

static int record(ohm_peer_t *p, uint32_t done, int final, uint32_t timed)
{
    int honest_model = !p->byz || ohm_byz_trains(p->byz);
    double tl = NAN, ta = NAN;
    size_t ntest = final ? 0 : (size_t)ohm_config_int(p->cfg, "data.test_subset");
    if (honest_model) {
        int rc = evaluate(p, ntest, &tl, &ta);
        if (rc) return rc;
    }
    ohm_transport_stats_t ts;
    ohm_transport_stats(p->tr, &ts);
    uint64_t by[DROP_COUNT];
    uint64_t dropped = total_drops(p, by);
    char dj[512];
    drops_json(by, dj, sizeof dj);
    int live = 0;
    for (int i = 0; i < p->nn; i++)
        live += p->nb[i].live;
    ohm_metrics_t *m = p->metrics;
    ohm_metrics_begin(m);
    ohm_metrics_int(m, "round", done);
    ohm_metrics_int(m, "peer", p->id);
    ohm_metrics_bool(m, "byzantine", p->self->byzantine);
    ohm_metrics_double(m, "train_loss", p->loss_n ? p->loss_sum / (double)p->loss_n : NAN);
    if (honest_model) {
        ohm_metrics_double(m, "test_acc", ta);
        ohm_metrics_double(m, "test_loss", tl);
        ohm_metrics_int(m, "test_n",
                        (int64_t)(ntest && ntest < ohm_data_test_size(p->data)
                                      ? ntest
                                      : ohm_data_test_size(p->data)));
    }
    ohm_metrics_double(m, "lr", step_size(p, done ? done - 1 : 0));
    ohm_metrics_int(m, "bytes_sent", (int64_t)ts.bytes_sent);
    ohm_metrics_int(m, "bytes_recv", (int64_t)ts.bytes_recv);
    ohm_metrics_int(m, "msgs_sent", (int64_t)ts.msgs_sent);
    ohm_metrics_int(m, "msgs_recv", (int64_t)ts.msgs_recv);
    ohm_metrics_int(m, "msgs_dropped", (int64_t)dropped);
    ohm_metrics_raw(m, "drops", dj);
    ohm_metrics_int(m, "send_dropped", (int64_t)ts.send_dropped);
    ohm_metrics_int(m, "links_lost", (int64_t)p->links_lost);
    ohm_metrics_int(m, "auth_refused", (int64_t)ts.auth_refused);
    ohm_metrics_int(m, "missing", p->last_missing);
    ohm_metrics_int(m, "live_neighbours", live);
    ohm_metrics_int(m, "rule_discarded", (int64_t)p->rule_discarded);
    ohm_metrics_int(m, "rule_clipped", (int64_t)p->rule_clipped);
    ohm_metrics_int(m, "rule_fallbacks", (int64_t)p->rule_fallbacks);
    ohm_metrics_double(m, "wall_s", now_s() - p->t_start);

    if (final) {
        ohm_metrics_bool(m, "final", 1);
        ohm_metrics_double(m, "round_ms_median", median_ms(p->t_round, timed));
        ohm_metrics_double(m, "compute_ms_median", median_ms(p->t_compute, timed));
        ohm_metrics_double(m, "wait_ms_median", median_ms(p->t_wait, timed));
        ohm_metrics_double(m, "combine_ms_median", median_ms(p->t_combine, timed));
        ohm_metrics_int(m, "rss_max_kb", rss_max_kb());
        ohm_metrics_int(m, "rounds_skipped", (int64_t)p->skipped);
        /* Per-neighbour accounting: accepted, missed rounds, drops by reason. */
        char *pb = NULL;
        size_t pl = 0;
        FILE *f = open_memstream(&pb, &pl);
        if (f) {
            fputc('{', f);
            for (int i = 0; i < p->nn; i++) {
                drops_json(p->nb[i].drops, dj, sizeof dj);
                fprintf(f,
                        "%s\"%u\":{\"accepted\":%" PRIu64 ",\"missed\":%" PRIu64 ",\"drops\":%s}",
                        i ? "," : "", p->nb[i].id, p->nb[i].accepted, p->nb[i].missed, dj);
            }
            fputc('}', f);
            fclose(f);
            ohm_metrics_raw(m, "neighbours", pb);
            free(pb);
        }
    }
    p->loss_sum = 0;
    p->loss_n = 0;
    int rc = ohm_metrics_end(m);
    if (rc == OHM_OK && honest_model && !p->self->byzantine &&
        ohm_config_bool(p->cfg, "train.snapshots"))
        rc = write_snapshot(p, done);
    return rc;
}

/* ---- the loop ------------------------------------------------------------ */

/* A Byzantine peer's round: observe the honest neighbours, then send each
 * target what the attack crafts for it. */
static int byzantine_round(ohm_peer_t *p)
{
    int rc = receive_round(p);
    if (rc && rc != OHM_EINTR) return rc;
    if (!ohm_byz_sends(p->byz)) return rc;
    const float **recv = p->rows;
    uint32_t ids[p->nn + 1];
    int n = 0;
    for (int i = 0; i < p->nn; i++)
        if (p->nb[i].valid && !p->nb[i].byzantine) {
            recv[n] = p->nb[i].view;
            ids[n++] = p->nb[i].id;
        }
    for (int i = 0; i < p->nn; i++) {
        int crc = ohm_byz_craft(p->byz, p->topo, p->nb[i].id, p->round, recv, ids, n, p->P, p->out);
        if (crc == OHM_OK) send_msg(p, OHM_MSG_MODEL, p->round, p->out, &p->nb[i].id, 1);
    }
    return rc;
}

static int honest_round(ohm_peer_t *p, double *tc, double *tw, double *tb)
{
    double t0 = now_s();
    int rc;
    if (p->order == 0) { /* atc */
        if ((rc = adapt(p))) return rc;
        ohm_model_get_params(p->model, p->own);
        send_msg(p, OHM_MSG_MODEL, p->round, p->own, p->nb_ids, p->nn);
    } else {
        ohm_model_get_params(p->model, p->own);
        send_msg(p, OHM_MSG_MODEL, p->round, p->own, p->nb_ids, p->nn);
        if (p->order == 2) { /* consensus: the gradient at our own current point */
            if ((rc = adapt(p))) return rc;
            ohm_model_get_params(p->model, p->psi);
        }
    }
    double t1 = now_s();
    int stop = receive_round(p);
    if (stop && stop != OHM_EINTR) return stop;
    double t2 = now_s();
    combine(p, p->own);
    if (p->order == 2)
        for (size_t i = 0; i < p->P; i++)
            p->out[i] += p->psi[i] - p->own[i];
    ohm_model_set_params(p->model, p->out, p->writeback);
    double t3 = now_s();
    if (p->order == 1 && (rc = adapt(p))) /* cta: adapt from the combined point */
        return rc;
    double t4 = now_s();
    *tc = (t1 - t0) + (t4 - t3);
    *tw = t2 - t1;
    *tb = t3 - t2;
    return stop;
}

int ohm_peer_run(ohm_peer_t *p)
{
    p->t_start = now_s();
    int rc = OHM_OK;
    if (p->o.resume && (rc = resume(p))) return rc;
    if ((rc = barrier(p)) == OHM_EINTR) goto finish;
    if (rc) return rc;
    uint32_t eval_every = (uint32_t)ohm_config_int(p->cfg, "train.eval_every");
    uint32_t ck_every = (uint32_t)ohm_config_int(p->cfg, "train.checkpoint_every");
    int byz_sender = p->byz && !ohm_byz_trains(p->byz);
    uint32_t timed = 0;
    while (p->round < p->rounds) {
        catch_up(p);
        double t0 = now_s(), tc = 0, tw = 0, tb = 0;
        int r = byz_sender ? byzantine_round(p) : honest_round(p, &tc, &tw, &tb);
        if (r && r != OHM_EINTR) {
            rc = r;
            goto finish;
        }
        if (timed < p->rounds) {
            p->t_round[timed] = (float)(now_s() - t0);
            p->t_compute[timed] = (float)tc;
            p->t_wait[timed] = (float)tw;
            p->t_combine[timed] = (float)tb;
            timed++;
        }
        advance_to(p, p->round + 1);
        int last = p->round == p->rounds;
        if (!last && (p->round % eval_every == 0) && (rc = record(p, p->round, 0, timed)))
            goto finish;
        if (!last && ck_every && p->round % ck_every == 0 && (rc = save_checkpoint(p))) goto finish;
        if (r == OHM_EINTR || stop_requested) {
            rc = OHM_EINTR;
            goto finish;
        }
    }
    rc = record(p, p->round, 1, timed);
finish:
    send_msg(p, OHM_MSG_BYE, p->round, NULL, p->nb_ids, p->nn);
    {
        int ck = save_checkpoint(p);
        if (ck && rc == OHM_OK) rc = ck;
    }
    return rc;
}
