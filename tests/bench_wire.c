/* ohmbench wire: what the message format costs on top of ZeroMQ.
 *
 *   ohmbench wire [--d 1000000] [--iters N] [--reps 3] [--hwm 8] [--pool 2]
 *
 * (a) raw ZeroMQ: the sending thread pushes one ready 4d-byte buffer again and
 *     again (blocking zmq_send, which copies it into a new message; and again
 *     zero-copy, zmq_msg_init_data) through PUSH -> PULL over tcp loopback to
 *     a receiver thread (zmq_msg_recv, no copy);
 * (b) the same stream through the wire codec and ohm_transport: encode from a
 *     float array into the buffer handed to send_all (zero-copy), recv, decode,
 *     view_params (the finiteness check, in place: the payload is aligned), as
 *     the peer reads its neighbours' models.
 * Both are pipelines of many messages; each is run --reps times, alternating,
 * and the best is kept (the machine is shared). Also encode-only and
 * decode+read_params-only (the copying path, for unaligned payloads) and
 * decode+view_params-only, each against memcpy of the same size. */
#include "bench_net.h"
#include "ohm_error.h"
#include "ohm_keys.h"
#include "ohm_transport.h"
#include "ohm_wire.h"
#include "ohmbench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define RUN_ID 99
#define FP 0xbe9c4ULL

int bench_net_default_iters(size_t d)
{
    size_t it = 1000000000 / (4 * d + 1);
    return it < 20 ? 20 : it > 100000 ? 100000 : (int)it;
}

static void fill(float *p, size_t d)
{
    for (size_t i = 0; i < d; i++)
        p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
}

/* ---- (a) raw ZeroMQ ---- */

typedef struct {
    void *sock;
    int iters;
    size_t len;
    double t_first, t_last;
    int ok;
} raw_rx_t;

static void *raw_receiver(void *arg)
{
    raw_rx_t *r = arg;
    zmq_msg_t m;
    zmq_msg_init(&m);
    for (int i = 0; i < r->iters; i++) {
        if (zmq_msg_recv(&m, r->sock, 0) < 0 || zmq_msg_size(&m) != r->len) return NULL;
        if (i == 0) r->t_first = ohm_bench_now();
    }
    r->t_last = ohm_bench_now();
    zmq_msg_close(&m);
    r->ok = 1;
    return NULL;
}

static double raw_zmq(size_t d, int iters, int hwm, int zerocopy)
{
    size_t len = 4 * d;
    void *cr = zmq_ctx_new(), *cs = zmq_ctx_new();
    void *pull = zmq_socket(cr, ZMQ_PULL), *push = zmq_socket(cs, ZMQ_PUSH);
    int zero = 0;
    zmq_setsockopt(pull, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(push, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(pull, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(push, ZMQ_LINGER, &zero, sizeof zero);
    char ep[256];
    size_t eplen = sizeof ep;
    if (zmq_bind(pull, "tcp://127.0.0.1:*") ||
        zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, ep, &eplen) || zmq_connect(push, ep)) {
        fprintf(stderr, "ohmbench wire: raw sockets: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    uint8_t *buf = malloc(len);
    fill((float *)buf, d);
    raw_rx_t r = {.sock = pull, .iters = iters, .len = len};
    pthread_t th;
    pthread_create(&th, NULL, raw_receiver, &r);
    /* Blocking sends (ZeroMQ's own backpressure) of one ready buffer: copied
     * into a new message by zmq_send, the usual call, or zero-copy, the
     * cheapest way to move these bytes through ZeroMQ at all. */
    for (int i = 0; i < iters; i++) {
        if (!zerocopy) {
            zmq_send(push, buf, len, 0);
            continue;
        }
        zmq_msg_t m;
        zmq_msg_init_data(&m, buf, len, NULL, NULL);
        if (zmq_msg_send(&m, push, 0) < 0) zmq_msg_close(&m);
    }
    pthread_join(th, NULL);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(cs);
    zmq_ctx_term(cr);
    free(buf);
    if (!r.ok) return -1;
    return (double)len * (iters - 1) / (r.t_last - r.t_first) * 1e-9;
}

/* ---- (b) through the codec and ohm_transport ---- */

static double last_in_place; /* share of the last roundtrip's messages read in place */

typedef struct {
    ohm_transport_t *t;
    size_t d;
    int iters, in_place; /* messages read in place rather than copied */
    double t_first, t_last;
    int ok;
} rx_t;

static void *receiver(void *arg)
{
    rx_t *r = arg;
    float *dst = malloc(r->d * sizeof *dst), sink = 0;
    ohm_wire_expect_t e = {.run = RUN_ID, .fp = FP, .count = (uint32_t)r->d, .max_from = 2};
    for (int i = 0; i < r->iters; i++) {
        ohm_frame_t *f = NULL;
        ohm_wire_msg_t m;
        const float *view = NULL;
        if (ohm_transport_recv(r->t, 10000, &f) ||
            ohm_wire_decode(ohm_frame_data(f), ohm_frame_size(f), &e, &m) ||
            ohm_wire_view_params(&m, dst, &view) || m.round != (uint32_t)i) {
            fprintf(stderr, "ohmbench: message %d: %s\n", i, ohm_error_detail());
            ohm_frame_destroy(&f);
            free(dst);
            return NULL;
        }
        r->in_place += view != dst;
        sink += view[i % r->d];
        ohm_frame_destroy(&f);
        if (i == 0) r->t_first = ohm_bench_now();
    }
    r->t_last = ohm_bench_now();
    r->ok = sink == sink; /* keep the reads observable */
    free(dst);
    return NULL;
}

/* `pool` send buffers (2 by default: one being written to the socket while the
 * next is encoded), handed to send_all_with and given back by the release
 * callback (on a ZeroMQ I/O thread) once written. Waiting for a free buffer is
 * the sender's backpressure, as a blocking send is for raw ZeroMQ; with no
 * more buffers than the high-water mark the link never refuses one. Reused
 * buffers stay in cache and never fault in fresh pages, which is the point of
 * encoding into them: raw zmq_send allocates a new message each time. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    uint8_t **free;
} pool_t;

static uint8_t *pool_get(pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->n == 0)
        pthread_cond_wait(&p->cv, &p->mu);
    uint8_t *b = p->free[--p->n];
    pthread_mutex_unlock(&p->mu);
    return b;
}

static void pool_put(void *buf, void *hint)
{
    pool_t *p = hint;
    pthread_mutex_lock(&p->mu);
    p->free[p->n++] = buf;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

double bench_net_roundtrip(size_t d, int iters, int secure, int hwm, int npool)
{
    uint8_t rpub[32], rsec[32], spub[32], ssec[32];
    uint32_t sender_id = 1;
    if (secure && (ohm_keys_generate(rpub, rsec) || ohm_keys_generate(spub, ssec))) return -1;
    size_t max = ohm_wire_max_size((uint32_t)d);
    ohm_transport_opts_t ro = {.bind = "tcp://127.0.0.1:*", .max_msg_size = max, .hwm = hwm};
    ohm_transport_opts_t so = ro;
    if (secure) {
        ro.public_key = rpub, ro.secret_key = rsec, ro.n_allowed = 1;
        ro.allowed_keys = (const uint8_t(*)[OHM_KEY_BYTES])spub, ro.allowed_ids = &sender_id;
        so.public_key = spub, so.secret_key = ssec;
    }
    ohm_transport_t *rt = NULL, *st = NULL;
    if (ohm_transport_new(&ro, &rt) || ohm_transport_new(&so, &st) ||
        ohm_transport_add_peer(st, 0, ohm_transport_endpoint(rt), secure ? rpub : NULL)) {
        fprintf(stderr, "ohmbench: transport: %s\n", ohm_error_detail());
        ohm_transport_destroy(&rt);
        ohm_transport_destroy(&st);
        return -1;
    }
    float *params = malloc(d * sizeof *params);
    fill(params, d);
    rx_t r = {.t = rt, .d = d, .iters = iters};
    pthread_t th;
    pthread_create(&th, NULL, receiver, &r);
    uint32_t to = 0;
    pool_t pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    pool.free = calloc((size_t)npool, sizeof *pool.free);
    for (; pool.n < npool; pool.n++) {
        pool.free[pool.n] = malloc(max);
        if (!pool.free[pool.n]) abort();
        memset(pool.free[pool.n], 0, max);
    }
    for (int i = 0; i < iters;) {
        ohm_wire_msg_t m = {.version = OHM_WIRE_VERSION,
                            .type = OHM_MSG_MODEL,
                            .run = RUN_ID,
                            .from = sender_id,
                            .round = (uint32_t)i,
                            .fp = FP,
                            .count = (uint32_t)d};
        uint8_t *buf = pool_get(&pool);
        size_t len = 0;
        if (!buf || ohm_wire_encode(&m, params, buf, max, &len)) abort();
        /* Should the link refuse anyway, the message is gone (a peer would move
         * on); the benchmark sends that round again. */
        if (ohm_transport_send_all_with(st, &to, 1, buf, len, pool_put, &pool) == 0) i++;
    }
    pthread_join(th, NULL);
    last_in_place = (double)r.in_place / iters;
    ohm_transport_destroy(&st); /* every buffer is back in the pool */
    ohm_transport_destroy(&rt);
    for (int i = 0; i < pool.n; i++)
        free(pool.free[i]);
    free(pool.free);
    free(params);
    if (!r.ok) return -1;
    return 4.0 * (double)d * (iters - 1) / (r.t_last - r.t_first) * 1e-9;
}

/* ---- codec alone ---- */

/* GB/s of `n` calls of fn, each moving `bytes`. */
typedef void (*op_fn)(void *ctx);
static double rate(op_fn fn, void *ctx, size_t bytes, int n)
{
    double t0 = ohm_bench_now();
    for (int i = 0; i < n; i++)
        fn(ctx);
    return (double)bytes * n / (ohm_bench_now() - t0) * 1e-9;
}

typedef struct {
    size_t d, cap, len;
    float *params, *dst;
    uint8_t *buf;
    ohm_wire_expect_t e;
} codec_t;

static void op_encode(void *p)
{
    codec_t *c = p;
    ohm_wire_msg_t m = {
        .version = 1, .type = OHM_MSG_MODEL, .run = RUN_ID, .fp = FP, .count = (uint32_t)c->d};
    if (ohm_wire_encode(&m, c->params, c->buf, c->cap, &c->len)) abort();
}

static void op_decode(void *p)
{
    codec_t *c = p;
    ohm_wire_msg_t m;
    if (ohm_wire_decode(c->buf, c->len, &c->e, &m) || ohm_wire_read_params(&m, c->dst)) abort();
}

static void op_view(void *p)
{
    codec_t *c = p;
    ohm_wire_msg_t m;
    const float *v = NULL;
    if (ohm_wire_decode(c->buf, c->len, &c->e, &m) || ohm_wire_view_params(&m, c->dst, &v) ||
        v == c->dst)
        abort(); /* c->buf is malloc'ed, hence aligned: the view must be in place */
}

static void op_memcpy(void *p)
{
    codec_t *c = p;
    memcpy(c->dst, c->params, 4 * c->d);
    __asm__ volatile("" : : "r"(c->dst) : "memory");
}

int ohm_bench_wire(int argc, char **argv)
{
    size_t d = (size_t)ohm_bench_opt_int(argc, argv, "--d", 1000000);
    if (d < 1 || d > OHM_WIRE_MAX_COUNT) {
        fprintf(stderr, "ohmbench wire: --d must be in 1..%u\n", (unsigned)OHM_WIRE_MAX_COUNT);
        return 2;
    }
    int iters = (int)ohm_bench_opt_int(argc, argv, "--iters", bench_net_default_iters(d));
    int reps = (int)ohm_bench_opt_int(argc, argv, "--reps", 3);
    int hwm = (int)ohm_bench_opt_int(argc, argv, "--hwm", 8);
    int npool = (int)ohm_bench_opt_int(argc, argv, "--pool", 2);
    if (iters < 2 || reps < 1 || hwm < 1 || npool < 1) {
        fprintf(stderr, "ohmbench wire: need --iters >= 2, --reps >= 1, --hwm >= 1, --pool >= 1\n");
        return 2;
    }
    double raw = 0, zc = 0, enc = 0;
    for (int r = 0; r < reps; r++) {
        double a = raw_zmq(d, iters, hwm, 0), b = raw_zmq(d, iters, hwm, 1);
        double c = bench_net_roundtrip(d, iters, 0, hwm, npool);
        if (a < 0 || b < 0 || c < 0) return 1;
        raw = a > raw ? a : raw;
        zc = b > zc ? b : zc;
        enc = c > enc ? c : enc;
    }
    ohm_bench_emit("wire_raw_zmq", raw, "GB/s", NULL, 0);
    ohm_bench_emit("wire_raw_zmq_zerocopy", zc, "GB/s", NULL, 0);
    ohm_bench_emit("wire_roundtrip", enc, "GB/s", "wire_raw_zmq", raw);
    ohm_bench_emit("wire_roundtrip", enc, "GB/s", "wire_raw_zmq_zerocopy", zc);
    ohm_bench_emit("wire_roundtrip_in_place", last_in_place, "fraction", NULL, 0);

    codec_t c = {.d = d, .cap = ohm_wire_max_size((uint32_t)d)};
    c.params = malloc(4 * d);
    c.dst = malloc(4 * d);
    c.buf = malloc(c.cap);
    c.e = (ohm_wire_expect_t){.run = RUN_ID, .fp = FP, .count = (uint32_t)d, .max_from = 1};
    fill(c.params, d);
    memset(c.dst, 0, 4 * d);
    memset(c.buf, 0, c.cap);
    op_encode(&c);
    /* About 0.1 s a timing; the three alternate so load on a shared
     * machine hits them alike, and the best of each is kept. */
    int n = (int)(4e8 / (4.0 * (double)d)) + 1;
    op_fn ops[4] = {op_memcpy, op_encode, op_decode, op_view};
    double best[4] = {0, 0, 0, 0};
    for (int r = 0; r < 3 * reps; r++)
        for (int k = 0; k < 4; k++) {
            double g = rate(ops[k], &c, 4 * d, n);
            if (g > best[k]) best[k] = g;
        }
    double mc = best[0], en = best[1], de = best[2];
    ohm_bench_emit("wire_memcpy", mc, "GB/s", NULL, 0);
    ohm_bench_emit("wire_encode", en, "GB/s", "wire_memcpy", mc);
    ohm_bench_emit("wire_decode_read_params", de, "GB/s", "wire_memcpy", mc);
    ohm_bench_emit("wire_decode_view", best[3], "GB/s", "wire_memcpy", mc);
    free(c.params);
    free(c.dst);
    free(c.buf);
    return 0;
}
