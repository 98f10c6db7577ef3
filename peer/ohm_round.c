/* ohm_round: the synchronous round loop of one peer
 * (docs/design.md, section "One round").
 *
 * Per round r:
 *   atc:       psi = local steps from w;  send psi;  w = Rule(psi, psi_j)
 *   cta:       send w;  phi = Rule(w, w_j);  w = local steps from phi
 *   consensus: send w;  psi = local steps from w;  w = Rule(w, w_j) + (psi - w)
 * Receiving, waiting and catching up are the exchange's (ohm_exchange.c);
 * what the peer records is ohm_records.c's. */
#include "ohm_peer_impl.h"

#include "ohm_error.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

volatile sig_atomic_t ohm_peer_stop_requested;

void ohm_peer_request_stop(void)
{
    ohm_peer_stop_requested = 1;
}

double ohm_peer_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds used by all the process's threads / by the calling thread. */
static double cpu_now(clockid_t clk)
{
    struct timespec ts;
    if (clock_gettime(clk, &ts) != 0) return 0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seconds a thread was runnable (on a core, or ready and waiting for one):
 * the first two fields of a schedstat file. -1 when it cannot be read. */
static double schedstat_s(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    unsigned long long run = 0, queued = 0;
    int n = fscanf(f, "%llu %llu", &run, &queued);
    fclose(f);
    return n == 2 ? 1e-9 * (double)(run + queued) : -1;
}

/* Runnable seconds of every thread of the process (thread = 0) or of the
 * calling one; -1 when /proc does not say. */
static double runnable_now(int thread)
{
    if (thread) return schedstat_s("/proc/thread-self/schedstat");
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    double sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", e->d_name);
        double s = schedstat_s(path);
        if (s >= 0) sum += s; /* a thread that just ended has no file: skip it */
    }
    closedir(d);
    return sum;
}

/* The straggler's clock (train.slowdown_basis cpu or runnable), for the whole
 * process or the calling thread. Where /proc has no schedstat, basis runnable
 * falls back to CPU time, once said on stderr. */
static double slow_clock(ohm_peer_t *p, int thread)
{
    if (p->s.slow_basis == OHM_SLOW_RUNNABLE) {
        double r = runnable_now(thread);
        if (r >= 0) return r;
        fprintf(stderr,
                "ohmpeer %u: train.slowdown_basis = runnable: no /proc schedstat; using CPU "
                "time (basis cpu)\n",
                p->id);
        p->s.slow_basis = OHM_SLOW_CPU;
    }
    return cpu_now(thread ? CLOCK_THREAD_CPUTIME_ID : CLOCK_PROCESS_CPUTIME_ID);
}

/* A straggler (train.slowdown = F): sleep (F - 1) * `basis` seconds, so the
 * work measured by `basis` takes F times as long. slow_s: the sleep asked for
 * (on a loaded machine the wake-up comes later). */
static void straggle(ohm_peer_t *p, double basis)
{
    double d = (p->s.slowdown - 1.0) * basis, end = ohm_peer_now() + d;
    /* In slices, handing on the models waiting in the outboxes meanwhile. */
    for (double left = d; left > 0 && !ohm_peer_stop_requested; left = end - ohm_peer_now()) {
        double s = left < 0.002 ? left : 0.002;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(s * 1e9)};
        nanosleep(&ts, NULL);
        ohm_exchange_flush(p);
    }
    p->slow_s += d;
}

/* train.slowdown_basis = cpu (or runnable), at the end of a round: the
 * process CPU time (every thread: steps, encoding, ZeroMQ's encryption and
 * TCP, decoding, combining; for runnable, plus the time its threads were
 * ready but waiting for a core) since the end of the last sleep, less the
 * evaluations and checkpoints in between. A blocked wait for the neighbours
 * counts in neither. What is used during the sleep itself (receiving what the
 * neighbours send meanwhile) is not counted, or the sleep would feed itself.
 * Returns the seconds slept. */
static double straggle_work(ohm_peer_t *p)
{
    double used = slow_clock(p, 0) - p->slow_mark - p->slow_skip;
    if (used < 0) used = 0;
    p->slow_basis_s += used;
    double t0 = ohm_peer_now();
    straggle(p, used);
    p->slow_mark = slow_clock(p, 0);
    p->slow_skip = 0;
    return ohm_peer_now() - t0;
}

/* local_steps mini-batch steps on the tiles. */
static int adapt(ohm_peer_t *p)
{
    double t0 = ohm_peer_now();
    float lr = (float)ohm_settings_lr(&p->s, p->round);
    int flip = p->byz && ohm_byz_trains(p->byz);
    int batch = ohm_settings_batch(&p->s, p->round, ohm_data_train_size(p->data));
    if (batch > p->batch_max) batch = p->batch_max; /* the buffers' size: the run's largest */
    for (int s = 0; s < p->s.local_steps; s++) {
        int nb = ohm_optim_sample(p->opt, &p->sampler, p->data, p->idx, batch);
        const ohm_batch_t *b = ohm_data_train_batch(p->data, p->trainbuf, p->idx, nb);
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
        int rc = p->s.weight_decay > 0
                     ? ohm_model_decay(p->model, 1.0f - lr * (float)p->s.weight_decay)
                     : OHM_OK;
        if (!rc)
            rc = p->opt ? ohm_optim_step(p->opt, p->model, b, p->idx, lr, &loss)
                        : ohm_model_train_step(p->model, b, lr, &loss);
        if (rc) return rc;
        p->loss_sum += loss;
        p->loss_n++;
    }
    if (p->s.slowdown > 1) {
        double took = ohm_peer_now() - t0;
        p->slow_compute_s += took;
        if (p->s.slow_basis == OHM_SLOW_COMPUTE) {
            p->slow_basis_s += took;
            straggle(p, took);
        }
    }
    return OHM_OK;
}

/* out = Rule(own, received) with the weights of the neighbours that delivered
 * (times their staleness factor in asynchronous mode); the weight of those
 * that did not goes to self so the weights still sum to 1.
 * With public copies (comm on) the rule runs on copies, ours included, and
 * out = own + gamma (Rule(pub, copies) - pub): the CHOCO-SGD consensus step,
 * which keeps the average of the models where compression error would move
 * it. A rule that cannot run on what arrived (too few inputs for its b) keeps
 * our own model and is counted; running out of memory is an error. */
static int combine(ohm_peer_t *p, const float *own)
{
    int k = 0;
    double wself = 1.0;
    p->rows[k] = p->comm_on ? p->pub : own;
    p->weights[k++] = 0; /* filled below */
    for (int i = 0; i < p->nn; i++) {
        if (p->view[i]) {
            /* asynchronous mode scales a stale model's weight down; the rest
             * goes to self, as the weight of a missing model does */
            double w = p->nb_w[i] * p->factor[i];
            p->rows[k] = p->view[i];
            p->weights[k++] = w;
            wself -= w;
            p->combined++;
        }
    }
    p->weights[0] = wself;
    p->last_missing = p->nn - (k - 1);
    ohm_rule_stats_t st = {0};
    int rc = ohm_robust_aggregate(&p->rule, p->rows, p->weights, k, p->P, p->out, &st);
    if (rc == OHM_ROBUST_ENOMEM)
        return ohm_error_set(OHM_ENOMEM, "rule %s: out of memory", ohm_rule_name(p->rule.rule));
    if (rc != OHM_ROBUST_OK) {
        if (p->rule_fallbacks++ == 0)
            fprintf(stderr,
                    "ohmpeer %u: round %u: rule %s cannot run on %d inputs with b = %d; keeping "
                    "the own model (counted as rule_fallbacks)\n",
                    p->id, p->round, ohm_rule_name(p->rule.rule), k, p->rule.b);
        memcpy(p->out, own, sizeof(float) * p->P);
        return OHM_OK;
    }
    p->rule_discarded += (uint64_t)st.discarded;
    p->rule_clipped += (uint64_t)st.clipped;
    /* Which of the dropped rows were Byzantine neighbours' (rows follow p->view). */
    for (int i = 0, row = 1; i < p->nn && row < 64; i++)
        if (p->view[i]) {
            p->byz_rows += (uint64_t)(p->nb_byz[i] != 0);
            p->byz_dropped += (uint64_t)(p->nb_byz[i] && (st.dropped_rows >> row & 1));
            row++;
        }
    if (p->comm_on) {
        float g = (float)p->s.gamma;
        for (size_t i = 0; i < p->P; i++)
            p->out[i] = own[i] + g * (p->out[i] - p->pub[i]);
    }
    return OHM_OK;
}

/* A Byzantine peer's round: observe the honest neighbours, then send each
 * target what the attack crafts for it (and whatever its control-plane attack
 * adds: hellos, lies about rounds, silence, bursts). */
static int byzantine_round(ohm_peer_t *p)
{
    int rc = ohm_exchange_round(p);
    if (rc && rc != OHM_EINTR) return rc;
    const float **recv = p->rows;
    uint32_t ids[p->nn + 1];
    int n = 0;
    for (int i = 0; i < p->nn; i++)
        if (p->view[i] && !p->nb_byz[i]) {
            recv[n] = p->view[i];
            ids[n++] = p->nb_ids[i];
        }
    int src = ohm_byz_act(p->byz, p->topo, p->round, p->s.rounds, recv, ids, n, p->P, p->nb_ids,
                          p->nn, ohm_exchange_byz_send, p);
    return src ? src : rc;
}

/* Encodes and sends the round's model; *ts: the time it took (encoding,
 * compression, handing to the transport; encryption runs on ZeroMQ's threads). */
static int timed_send(ohm_peer_t *p, uint32_t stamp, double *ts)
{
    double t = ohm_peer_now();
    int rc = ohm_comm_send(p, stamp, p->own);
    *ts = ohm_peer_now() - t;
    return rc;
}

static int honest_round(ohm_peer_t *p, double *tc, double *ts, double *tw, double *tb)
{
    double t0 = ohm_peer_now();
    int rc;
    /* Asynchronous models carry the step after which they were sent: stamp
     * round (0 at the start) is the starting model (ohm_exchange_async_start). */
    uint32_t stamp = p->round + (p->s.async ? 1u : 0u);
    if (p->s.order == OHM_ORDER_ATC) {
        if ((rc = adapt(p))) return rc;
        ohm_model_get_params(p->model, p->own);
        if ((rc = timed_send(p, stamp, ts))) return rc;
    } else {
        ohm_model_get_params(p->model, p->own);
        if ((rc = timed_send(p, stamp, ts))) return rc;
        if (p->s.order == OHM_ORDER_CONSENSUS) { /* the gradient at our own current point */
            if ((rc = adapt(p))) return rc;
            ohm_model_get_params(p->model, p->psi);
        }
    }
    double t1 = ohm_peer_now();
    int stop = ohm_exchange_round(p);
    if (stop && stop != OHM_EINTR) return stop;
    double t2 = ohm_peer_now();
    if ((rc = combine(p, p->own))) return rc;
    if (p->s.order == OHM_ORDER_CONSENSUS)
        for (size_t i = 0; i < p->P; i++)
            p->out[i] += p->psi[i] - p->own[i];
    ohm_model_set_params(p->model, p->out, p->s.writeback);
    ohm_exchange_flush(p);
    double t3 = ohm_peer_now();
    if (p->s.order == OHM_ORDER_CTA && (rc = adapt(p))) /* adapt from the combined point */
        return rc;
    double t4 = ohm_peer_now();
    *tc = (t1 - t0) - *ts + (t4 - t3);
    *tw = t2 - t1;
    *tb = t3 - t2;
    return stop;
}

int ohm_peer_run(ohm_peer_t *p)
{
    p->t_start = ohm_peer_now();
    int rc = OHM_OK;
    if (p->o.resume && (rc = ohm_records_resume(p))) return rc;
    if (p->s.join && (rc = ohm_exchange_join_begin(p))) return rc;
    if ((rc = ohm_exchange_barrier(p)) == OHM_EINTR) goto finish;
    if (rc) return rc;
    if (p->s.join && (rc = ohm_exchange_join(p))) {
        if (rc == OHM_EINTR) goto finish;
        return rc;
    }
    int byz_sender = p->byz && !ohm_byz_trains(p->byz);
    if (p->s.async && !byz_sender && (rc = ohm_exchange_async_start(p))) {
        if (rc == OHM_EINTR) goto finish;
        return rc;
    }
    uint32_t timed = 0;
    int slow_work = p->s.slowdown > 1 && p->s.slow_basis != OHM_SLOW_COMPUTE && !byz_sender;
    if (slow_work) p->slow_mark = slow_clock(p, 0); /* start-up is not a round */
    while (p->round < p->s.rounds) {
        if (p->s.leave_at && p->round >= p->s.leave_at) { /* a clean departure */
            p->left = 1;
            fprintf(stderr, "ohmpeer %u: leaving at round %u (train.leave_at)\n", p->id, p->round);
            break;
        }
        if (p->s.max_seconds > 0 && ohm_peer_now() - p->t_start >= p->s.max_seconds) {
            fprintf(stderr, "ohmpeer %u: train.max_seconds reached at round %u\n", p->id, p->round);
            break;
        }
        /* Synchronous rounds line up with the neighbours; asynchronous steps
         * never wait for them. */
        if (!p->s.async) ohm_exchange_catch_up(p);
        double t0 = ohm_peer_now(), tc = 0, ts = 0, tw = 0, tb = 0;
        int r = p->s.async ? OHM_OK : ohm_exchange_hold(p);
        if (!r) r = byz_sender ? byzantine_round(p) : honest_round(p, &tc, &ts, &tw, &tb);
        if (r && r != OHM_EINTR) {
            rc = r;
            goto finish;
        }
        /* The emulated slowness is work, as it is in the steps (basis compute). */
        if (slow_work && r != OHM_EINTR && !ohm_peer_stop_requested) tc += straggle_work(p);
        p->wait_s += tw;
        p->work_s += tc + tb;
        if (timed < p->s.rounds) {
            p->t_round[timed] = (float)(ohm_peer_now() - t0);
            p->t_compute[timed] = (float)tc;
            p->t_send[timed] = (float)ts;
            p->t_wait[timed] = (float)tw;
            p->t_combine[timed] = (float)tb;
            timed++;
        }
        ohm_exchange_advance(p, p->round + 1);
        int last = p->round == p->s.rounds || (p->s.leave_at && p->round >= p->s.leave_at);
        /* Evaluations and checkpoints measure the run; a straggler does not
         * multiply them (straggle_work). */
        double c0 = slow_work ? slow_clock(p, 1) : 0;
        if (!last && p->round % p->s.eval_every == 0 &&
            (rc = ohm_records_metrics(p, p->round, 0, timed)))
            goto finish;
        if (!last && p->s.checkpoint_every && p->round % p->s.checkpoint_every == 0 &&
            (rc = ohm_records_checkpoint(p)))
            goto finish;
        if (slow_work) p->slow_skip += slow_clock(p, 1) - c0;
        if (r == OHM_EINTR || ohm_peer_stop_requested) {
            rc = OHM_EINTR;
            goto finish;
        }
    }
    rc = ohm_records_metrics(p, p->round, 1, timed);
finish:;
    int bye = ohm_exchange_send(p, OHM_MSG_BYE, p->round, NULL, p->nb_ids, p->nn);
    if (bye) fprintf(stderr, "ohmpeer %u: could not send bye: %s\n", p->id, ohm_error_detail());
    /* Asynchronous mode keeps only the newest message per link: let the last
     * ones (the bye) leave before the sockets close, for a bounded time. */
    if (p->s.async) ohm_transport_drain_outboxes(p->tr, 1000);
    int ck = ohm_records_checkpoint(p);
    if (ck && rc == OHM_OK) rc = ck;
    return rc;
}
