/* ohm_records: what a peer leaves behind: one metrics line per evaluated round
 * (and a final line with the run's accounting), snapshots of the model for
 * the consensus distance, and atomic checkpoints it can resume from. */
#include "ohm_peer_impl.h"

#include "ohm_ckpt.h"
#include "ohm_error.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Mean loss and accuracy on the first n test examples (or all). The tile
 * reads this costs are counted apart (p->eval_reads): they measure the run,
 * they are not part of training. */
static int evaluate_chunks(ohm_peer_t *p, size_t n, double *loss, double *acc);

static int evaluate(ohm_peer_t *p, size_t n, double *loss, double *acc)
{
    ohm_tile_counters_t a, b;
    ohm_model_counters(p->model, &a);
    int rc = evaluate_chunks(p, n, loss, acc);
    ohm_model_counters(p->model, &b);
    p->eval_reads.forward_mvms += b.forward_mvms - a.forward_mvms;
    p->eval_reads.dac += b.dac - a.dac;
    p->eval_reads.adc += b.adc - a.adc;
    return rc;
}

static int evaluate_chunks(ohm_peer_t *p, size_t n, double *loss, double *acc)
{
    size_t total = ohm_data_test_size(p->data);
    if (n == 0 || n > total) n = total;
    double ls = 0, as = 0;
    for (size_t s = 0; s < n; s += OHM_EVAL_CHUNK) {
        int c = (int)(n - s < OHM_EVAL_CHUNK ? n - s : OHM_EVAL_CHUNK);
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

/* ---- metrics ------------------------------------------------------------- */

static uint64_t total_drops(const ohm_peer_t *p, uint64_t *by_reason)
{
    uint64_t t = 0;
    for (int r = 0; r < OHM_DROP_COUNT; r++) {
        uint64_t c = ohm_inbox_unknown_drops(p->inbox, (ohm_drop_t)r);
        for (int i = 0; i < p->nn; i++) {
            ohm_inbox_nbr_t s;
            ohm_inbox_stats(p->inbox, i, &s);
            c += s.drops[r];
        }
        by_reason[r] = c;
        t += c;
    }
    return t;
}

/* {"name":count,...} of the non-zero counters into buf[cap]. */
static void counts_json(const uint64_t *c, const char *const *names, int n, char *buf, size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "{");
    int first = 1;
    for (int r = 0; r < n && k < cap; r++)
        if (c[r]) {
            k += (size_t)snprintf(buf + k, cap - k, "%s\"%s\":%" PRIu64, first ? "" : ",", names[r],
                                  c[r]);
            first = 0;
        }
    if (k < cap) snprintf(buf + k, cap - k, "}");
}

static void drops_json(const uint64_t *c, char *buf, size_t cap)
{
    const char *names[OHM_DROP_COUNT];
    for (int r = 0; r < OHM_DROP_COUNT; r++)
        names[r] = ohm_drop_name((ohm_drop_t)r);
    counts_json(c, names, OHM_DROP_COUNT, buf, cap);
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

/* CPU seconds of this process's main thread (the round loop) and of its
 * other threads (ZeroMQ's I/O thread: CURVE encryption, TCP; the ZAP
 * handler), from /proc/self/task. -1 where there is no /proc. */
static int thread_cpu(double *main_s, double *other_s)
{
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    long tick = sysconf(_SC_CLK_TCK);
    pid_t self = getpid();
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], buf[1024];
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* After "(comm)": state and 10 more fields, then utime and stime in ticks. */
        const char *q = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        if (!q ||
            sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
            continue;
        double s = (double)(ut + st) / (double)(tick > 0 ? tick : 100);
        if (atol(e->d_name) == (long)self)
            *main_s += s;
        else
            *other_s += s;
    }
    closedir(d);
    return 0;
}

static int ensure_dir(const char *d)
{
    if (mkdir(d, 0755) && errno != EEXIST)
        return ohm_error_set(OHM_EIO, "%s: cannot create: %s", d, strerror(errno));
    return OHM_OK;
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

/* What the transport dropped or refused, and who knocked: every visitor of
 * the receiving socket is counted, admitted or not. */
static void transport_json(const ohm_transport_stats_t *ts, ohm_metrics_t *m)
{
    char buf[512];
    static const char *const recv_names[] = {"multipart", "oversized", "duplicate_session"};
    uint64_t recv[] = {ts->drop_multipart, ts->drop_oversized, ts->drop_session};
    counts_json(recv, recv_names, 3, buf, sizeof buf);
    ohm_metrics_raw(m, "recv_dropped", buf);
    static const char *const zap_names[] = {"unknown_key", "mechanism", "domain", "malformed"};
    uint64_t zap[] = {ts->zap_unknown_key, ts->zap_mechanism, ts->zap_domain, ts->zap_malformed};
    counts_json(zap, zap_names, 4, buf, sizeof buf);
    ohm_metrics_raw(m, "auth_refused_by", buf);
    static const char *const vis_names[] = {"connections", "handshakes_ok", "failed_protocol",
                                            "failed_auth", "failed_other",  "disconnects"};
    uint64_t vis[] = {ts->accepted,
                      ts->handshake_ok,
                      ts->handshake_failed_protocol,
                      ts->handshake_failed_auth,
                      ts->handshake_failed_other,
                      ts->disconnected};
    counts_json(vis, vis_names, 6, buf, sizeof buf);
    ohm_metrics_raw(m, "visitors", buf);
}

/* The staleness (age in steps) of the neighbour models combined, from the
 * histogram: median, 95th percentile and largest (the last bin holds the
 * older ones). */
static void staleness_json(const ohm_peer_t *p, ohm_metrics_t *m)
{
    uint64_t n = 0, seen = 0;
    for (int a = 0; a < OHM_AGE_BINS; a++)
        n += p->age_hist[a];
    int med = -1, p95 = -1, max = -1;
    for (int a = 0; a < OHM_AGE_BINS && n; a++) {
        if (!p->age_hist[a]) continue;
        seen += p->age_hist[a];
        if (med < 0 && 2 * seen >= n) med = a;
        if (p95 < 0 && 100 * seen >= 95 * n) p95 = a;
        max = a;
    }
    ohm_metrics_int(m, "staleness_median", med);
    ohm_metrics_int(m, "staleness_p95", p95);
    ohm_metrics_int(m, "staleness_max", max);
}

/* Per-neighbour accounting: accepted, missed rounds, strikes, drops by reason. */
static void neighbours_json(const ohm_peer_t *p, ohm_metrics_t *m)
{
    char *pb = NULL, dj[512];
    size_t pl = 0;
    FILE *f = open_memstream(&pb, &pl);
    if (!f) return;
    fputc('{', f);
    for (int i = 0; i < p->nn; i++) {
        ohm_inbox_nbr_t s;
        ohm_inbox_stats(p->inbox, i, &s);
        drops_json(s.drops, dj, sizeof dj);
        fprintf(f,
                "%s\"%u\":{\"accepted\":%" PRIu64 ",\"missed\":%" PRIu64
                ",\"strikes\":%d,\"drops\":%s}",
                i ? "," : "", s.id, s.accepted, s.missed, s.strikes, dj);
    }
    fputc('}', f);
    if (fclose(f) == 0) ohm_metrics_raw(m, "neighbours", pb);
    free(pb);
}

/* The counters as JSON members (no braces). */
static void counters_members(FILE *f, const ohm_tile_counters_t *c)
{
    fprintf(f,
            "\"update_pulses\":%" PRIu64 ",\"program_pulses\":%" PRIu64 ",\"train_slots\":%" PRIu64
            ",\"line_pulses\":%" PRIu64 ",\"program_slots\":%" PRIu64 ",\"forward_mvms\":%" PRIu64
            ",\"backward_mvms\":%" PRIu64 ",\"transfer_mvms\":%" PRIu64 ",\"dac\":%" PRIu64
            ",\"adc\":%" PRIu64 ",\"cells_programmed\":%" PRIu64,
            c->update_pulses, c->program_pulses, c->train_slots, c->line_pulses, c->program_slots,
            c->forward_mvms, c->backward_mvms, c->transfer_mvms, c->dac, c->adc,
            c->cells_programmed);
}

/* "analog": what the tiles did since the process started (docs/energy.md):
 * the sums over the tiles, the part of the forward reads spent evaluating,
 * and each tile's own counters. Nothing for a model whose tiles count nothing. */
static void analog_json(ohm_peer_t *p, ohm_metrics_t *m)
{
    ohm_tile_counters_t sum;
    int n = ohm_model_counters(p->model, &sum);
    if (n == 0) return;
    char *pb = NULL;
    size_t pl = 0;
    FILE *f = open_memstream(&pb, &pl);
    if (!f) return;
    fprintf(f, "{\"tiles\":%d,", n);
    counters_members(f, &sum);
    fprintf(f,
            ",\"eval\":{\"forward_mvms\":%" PRIu64 ",\"dac\":%" PRIu64 ",\"adc\":%" PRIu64
            "},\"per_tile\":[",
            p->eval_reads.forward_mvms, p->eval_reads.dac, p->eval_reads.adc);
    int first = 1;
    for (int l = 0; l < ohm_model_layers(p->model); l++) {
        ohm_tile_t *t = ohm_model_tile(p->model, l);
        ohm_tile_counters_t c;
        if (!ohm_tile_counters(t, &c)) continue;
        fprintf(f, "%s{\"layer\":%d,\"kind\":\"%s\",\"rows\":%d,\"cols\":%d,", first ? "" : ",", l,
                ohm_tile_kind(t), ohm_tile_rows(t), ohm_tile_cols(t));
        counters_members(f, &c);
        fputc('}', f);
        first = 0;
    }
    fputs("]}", f);
    if (fclose(f) == 0) ohm_metrics_raw(m, "analog", pb);
    free(pb);
}

int ohm_records_metrics(ohm_peer_t *p, uint32_t done, int final, uint32_t timed)
{
    int honest_model = !p->byz || ohm_byz_trains(p->byz);
    double tl = NAN, ta = NAN;
    size_t ntest = final ? 0 : p->s.test_subset;
    if (honest_model) {
        int rc = evaluate(p, ntest, &tl, &ta);
        if (rc) return rc;
    }
    ohm_transport_stats_t ts;
    ohm_transport_stats(p->tr, &ts);
    uint64_t by[OHM_DROP_COUNT];
    uint64_t dropped = total_drops(p, by);
    char dj[512];
    drops_json(by, dj, sizeof dj);
    ohm_metrics_t *m = p->metrics;
    ohm_metrics_begin(m);
    ohm_metrics_int(m, "round", done);
    ohm_metrics_int(m, "peer", p->id);
    ohm_metrics_bool(m, "byzantine", p->self->byzantine);
    ohm_metrics_double(m, "train_loss", p->loss_n ? p->loss_sum / (double)p->loss_n : NAN);
    if (honest_model) {
        size_t total = ohm_data_test_size(p->data);
        ohm_metrics_double(m, "test_acc", ta);
        ohm_metrics_double(m, "test_loss", tl);
        ohm_metrics_int(m, "test_n", (int64_t)(ntest && ntest < total ? ntest : total));
    }
    ohm_metrics_double(m, "lr", ohm_settings_lr(&p->s, done ? done - 1 : 0));
    ohm_metrics_int(m, "bytes_sent", (int64_t)ts.bytes_sent);
    ohm_metrics_int(m, "bytes_recv", (int64_t)ts.bytes_recv);
    ohm_metrics_int(m, "msgs_sent", (int64_t)ts.msgs_sent);
    ohm_metrics_int(m, "msgs_recv", (int64_t)ts.msgs_recv);
    ohm_metrics_int(m, "msgs_dropped", (int64_t)dropped);
    ohm_metrics_raw(m, "drops", dj);
    ohm_metrics_int(m, "send_dropped", (int64_t)ts.send_dropped);
    ohm_metrics_int(m, "send_failures", (int64_t)p->send_failures);
    ohm_metrics_int(m, "links_lost", (int64_t)p->links_lost);
    ohm_metrics_int(m, "auth_refused", (int64_t)ts.auth_refused);
    ohm_metrics_int(m, "missing", p->last_missing);
    ohm_metrics_int(m, "live_neighbours", ohm_inbox_live(p->inbox));
    ohm_metrics_int(m, "rule_discarded", (int64_t)p->rule_discarded);
    ohm_metrics_int(m, "rule_byz_rows", (int64_t)p->byz_rows);
    ohm_metrics_int(m, "rule_byz_dropped", (int64_t)p->byz_dropped);
    ohm_metrics_int(m, "rule_clipped", (int64_t)p->rule_clipped);
    ohm_metrics_int(m, "rule_fallbacks", (int64_t)p->rule_fallbacks);
    ohm_metrics_int(m, "rounds_skipped", (int64_t)p->skipped);
    ohm_metrics_int(m, "rounds_held", (int64_t)p->held);
    ohm_metrics_int(m, "rounds_timed_out", (int64_t)p->timed_out);
    ohm_metrics_double(m, "wall_s", ohm_peer_now() - p->t_start);
    ohm_comm_metrics(p, m, final);

    if (final) {
        ohm_metrics_bool(m, "final", 1);
        ohm_metrics_double(m, "round_ms_median", median_ms(p->t_round, timed));
        ohm_metrics_double(m, "compute_ms_median", median_ms(p->t_compute, timed));
        ohm_metrics_double(m, "send_ms_median", median_ms(p->t_send, timed));
        ohm_metrics_double(m, "wait_ms_median", median_ms(p->t_wait, timed));
        ohm_metrics_double(m, "combine_ms_median", median_ms(p->t_combine, timed));
        ohm_metrics_double(m, "hold_s", p->hold_s);
        ohm_metrics_str(m, "mode", p->s.async ? "async" : "sync");
        ohm_metrics_double(m, "wait_s", p->wait_s);
        ohm_metrics_double(m, "work_s", p->work_s);
        if (p->s.slowdown > 1) { /* the sleep and what it was proportional to */
            static const char *const bases[] = {"cpu", "compute", "runnable"};
            ohm_metrics_str(m, "slow_basis", bases[p->s.slow_basis]);
            ohm_metrics_double(m, "slow_s", p->slow_s);
            ohm_metrics_double(m, "slow_basis_s", p->slow_basis_s);
            ohm_metrics_double(m, "slow_compute_s", p->slow_compute_s);
        }
        ohm_metrics_double(m, "combined_per_step", done ? (double)p->combined / done : 0);
        if (p->latest) staleness_json(p, m);
        if (p->s.join) ohm_metrics_int(m, "joined_from", p->joined_from);
        if (p->left) ohm_metrics_bool(m, "left", 1);
        if (p->s.async) {
            ohm_metrics_int(m, "outbox_replaced", (int64_t)ts.outbox_replaced);
            ohm_metrics_int(m, "outbox_peak_inflight", ts.outbox_peak_inflight);
            ohm_metrics_int(m, "outbox_peak_waiting", ts.outbox_peak_waiting);
        }
        ohm_metrics_int(m, "rss_max_kb", rss_max_kb());
        double cpu_main = 0, cpu_io = 0;
        if (thread_cpu(&cpu_main, &cpu_io) == 0) {
            ohm_metrics_double(m, "cpu_main_s", cpu_main);
            ohm_metrics_double(m, "cpu_io_s", cpu_io);
        }
        transport_json(&ts, m);
        neighbours_json(p, m);
        analog_json(p, m);
    }
    p->loss_sum = 0;
    p->loss_n = 0;
    int rc = ohm_metrics_end(m);
    if (rc == OHM_OK && honest_model && !p->self->byzantine && p->s.snapshots)
        rc = write_snapshot(p, done);
    return rc;
}

/* ---- checkpoints --------------------------------------------------------- */

int ohm_records_checkpoint(ohm_peer_t *p)
{
    ohm_ckpt_t *ck = ohm_ckpt_new();
    if (!ck) return ohm_error_set(OHM_ENOMEM, "checkpoint");
    int rc = OHM_OK;
    char meta[512];
    int ml = snprintf(meta, sizeof meta,
                      "{\"peer\":%u,\"round\":%u,\"rounds\":%u,\"npeers\":%d,\"byzantine\":%s,"
                      "\"fingerprint\":\"%016" PRIx64 "\",\"params\":%zu}",
                      p->id, p->round, p->s.rounds, p->npeers,
                      p->self->byzantine ? "true" : "false", p->fp, p->P);
    char *cfgtext = NULL;
    size_t cfglen = 0;
    /* A memory stream fails only for want of memory. */
    FILE *mf = open_memstream(&cfgtext, &cfglen);
    int wrc = mf ? ohm_config_write(p->cfg, mf) : OHM_ENOMEM;
    if (mf && fclose(mf) != 0) wrc = OHM_ENOMEM;
    size_t ss = ohm_model_state_size(p->model);
    unsigned char *state = malloc(ss ? ss : 1);
    uint32_t next = p->round;
    double acc[2] = {p->loss_sum, (double)p->loss_n};
    if (wrc || !cfgtext || !state) {
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

int ohm_records_resume(ohm_peer_t *p)
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
    ohm_exchange_advance(p, next);
    p->loss_sum = acc[0];
    p->loss_n = (long)acc[1];
    fprintf(stderr, "ohmpeer %u: resumed from %s at round %u\n", p->id, p->path_ckpt, next);
out:
    ohm_ckpt_destroy(&ck);
    return rc;
}
