/* ohm_peer: setting a peer up (topology, data, model, keys, sockets) and
 * tearing it down. The round loop is ohm_round.c; the files that make up the
 * peer are listed in ohm_peer_impl.h. */
#include "ohm_peer_impl.h"

#include "ohm_error.h"
#include "ohm_keys.h"
#include "ohm_model_spec.h"
#include "ohm_rng.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void release_frame(void *f)
{
    ohm_frame_t *fr = f;
    ohm_frame_destroy(&fr);
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

static int build_model(ohm_peer_t *p)
{
    const ohm_config_t *c = p->cfg;
    ohm_model_spec_t s;
    int rc = ohm_model_spec_from_config(c, p->data, &s);
    if (rc || (rc = ohm_analog_params_from_config(c, &p->actx.params))) return rc;
    p->actx.seed = p->s.seed;
    p->actx.peer = p->id;
    rc = ohm_model_new(&s, ohm_analog_tile_factory, &p->actx, &p->model);
    if (rc) return rc;
    if ((rc = ohm_model_init_from_config(p->model, c, p->id))) return rc;
    return ohm_optim_from_config(c, p->model, p->data, p->id, &p->opt);
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
    int insecure = p->s.insecure;
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
    ohm_transport_opts_t to = {
        .bind = bind, .max_msg_size = max_msg, .hwm = p->s.hwm, .watch_links = 1};
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
            memcpy(keys[i], ohm_topology_peer(p->topo, p->nb_ids[i])->key, OHM_KEY_BYTES);
            ids[i] = p->nb_ids[i];
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
        const ohm_peer_info_t *q = ohm_topology_peer(p->topo, p->nb_ids[i]);
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
    uint64_t parts[2] = {ohm_topology_digest(p->topo), p->s.seed};
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
    int rc = ohm_settings_resolve(cfg, &p->s);
    if (rc) goto fail;
    rc = ohm_topology_load(o->topology, &p->topo);
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
        rc = ohm_byz_new(p->self->attack, p->s.seed, p->id, &p->byz);
        if (rc) {
            ohm_error_set(rc, "%s: peer %u: %s", o->topology, p->id, ohm_error_detail());
            goto fail;
        }
    }

    if ((rc = ohm_byz_data_open(cfg, p->topo, p->id, p->byz, &p->data))) goto fail;
    if ((rc = build_model(p))) goto fail;
    p->P = ohm_model_nparams(p->model);
    p->fp = ohm_model_fingerprint(p->model);
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
    p->rule.exclude_self = strcmp(ohm_config_str(cfg, "aggregate.faba_self"), "exclude") == 0;

    const uint32_t *ids;
    p->nn = ohm_topology_neighbors(p->topo, p->id, &ids);
    size_t nn1 = (size_t)p->nn + 1;
    p->nb_ids = calloc(nn1, sizeof *p->nb_ids);
    p->nb_w = calloc(nn1, sizeof *p->nb_w);
    p->nb_byz = calloc(nn1, sizeof *p->nb_byz);
    p->nb_vec = calloc(nn1, sizeof *p->nb_vec);
    p->view = calloc(nn1, sizeof *p->view);
    p->factor = calloc(nn1, sizeof *p->factor);
    if (!p->nb_ids || !p->nb_w || !p->nb_byz || !p->nb_vec || !p->view || !p->factor) goto oom;
    for (int i = 0; i < p->nn; i++)
        p->factor[i] = 1.0;
    for (int i = 0; i < p->nn; i++) {
        p->nb_ids[i] = ids[i];
        p->nb_w[i] = ohm_topology_weight(p->topo, p->id, ids[i]);
        p->nb_byz[i] = ohm_topology_peer(p->topo, ids[i])->byzantine;
        if (!(p->nb_vec[i] = malloc(sizeof(float) * p->P))) goto oom;
    }
    /* The catch-up quorum tolerates the configured b (at least). */
    ohm_inbox_opts_t io = {.rounds = p->s.rounds,
                           .future = p->s.future,
                           .b = p->rule.b,
                           .hold_share = p->s.hold_share,
                           .hold_burst_s = p->s.hold_burst_s,
                           .hold_min_s = p->s.timeout_ms / 2000.0,
                           .release = release_frame};
    if ((rc = ohm_inbox_new(&io, p->nb_ids, p->nn, &p->inbox))) goto fail;
    if (p->s.async) {
        ohm_latest_opts_t lo = {.max_steps = p->s.async_max_staleness,
                                .max_s = p->s.async_max_staleness_s,
                                .poly_a = p->s.staleness_a,
                                .release = release_frame};
        if ((rc = ohm_latest_new(&lo, p->nn, &p->latest))) goto fail;
        if (!(p->age_hist = calloc(OHM_AGE_BINS, sizeof *p->age_hist))) goto oom;
    }
    /* Planned late joiners are not waited for at start-up. */
    int late[16];
    int nlate = ohm_config_int_list(cfg, "net.late_joiners", late, 16);
    for (int k = 0; k < nlate; k++) {
        int i = ohm_inbox_index(p->inbox, (uint32_t)late[k]);
        if (i >= 0 && (uint32_t)late[k] != p->id) ohm_inbox_expect_late(p->inbox, i);
    }
    /* A Byzantine peer does not wait for its fellow attackers (they collude). */
    for (int i = 0; p->self->byzantine && i < p->nn; i++)
        if (p->nb_byz[i]) ohm_inbox_ignore(p->inbox, i);
    p->own = malloc(sizeof(float) * p->P);
    p->psi = malloc(sizeof(float) * p->P);
    p->out = malloc(sizeof(float) * p->P);
    p->tmp = malloc(sizeof(float) * p->P);
    p->rows = calloc(nn1, sizeof *p->rows);
    p->weights = calloc(nn1, sizeof *p->weights);
    /* The mini-batch grows with optimizer.batch_growth: buffers for the largest. */
    p->batch_max =
        ohm_settings_batch(&p->s, p->s.rounds ? p->s.rounds - 1 : 0, ohm_data_train_size(p->data));
    p->idx = calloc((size_t)p->batch_max, sizeof *p->idx);
    p->flipped = calloc((size_t)p->batch_max, sizeof *p->flipped);
    p->trainbuf = ohm_batchbuf_new(p->data, p->batch_max);
    p->evalbuf = ohm_batchbuf_new(p->data, OHM_EVAL_CHUNK);
    size_t R = p->s.rounds ? p->s.rounds : 1;
    p->t_compute = calloc(R, sizeof(float));
    p->t_send = calloc(R, sizeof(float));
    p->t_wait = calloc(R, sizeof(float));
    p->t_combine = calloc(R, sizeof(float));
    p->t_round = calloc(R, sizeof(float));
    if (!p->own || !p->psi || !p->out || !p->tmp || !p->rows || !p->weights || !p->idx ||
        !p->flipped || !p->trainbuf || !p->evalbuf || !p->t_compute || !p->t_send || !p->t_wait ||
        !p->t_combine || !p->t_round)
        goto oom;
    ohm_sampler_init(&p->sampler, p->s.seed, p->id);

    p->run_id = derive_run_id(p);
    p->expect = (ohm_wire_expect_t){
        .run = p->run_id, .fp = p->fp, .count = (uint32_t)p->P, .max_from = (uint32_t)p->npeers};
    if ((rc = ohm_comm_init(p))) goto fail;
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
    for (int i = 0; i < p->nn && p->nb_vec; i++)
        free(p->nb_vec[i]);
    /* The inbox's frames belong to the transport's context: release them first. */
    ohm_inbox_destroy(&p->inbox);
    ohm_comm_free(p);
    ohm_latest_destroy(&p->latest);
    for (int i = 0; p->join_vec && i < p->nn; i++) /* a join that did not finish */
        free(p->join_vec[i]);
    free(p->join_vec);
    free(p->join_got);
    free(p->join_round);
    free(p->age_hist);
    free(p->factor);
    free(p->nb_ids);
    free(p->nb_w);
    free(p->nb_byz);
    free(p->nb_vec);
    free(p->view);
    ohm_transport_destroy(&p->tr);
    ohm_metrics_close(&p->metrics);
    ohm_model_destroy(&p->model);
    ohm_optim_destroy(&p->opt);
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
    free(p->t_send);
    free(p->t_wait);
    free(p->t_combine);
    free(p->t_round);
    free(p);
    *pp = NULL;
}
