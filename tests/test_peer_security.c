/* Integration: what a peer does with connections and messages it must not
 * trust. A client whose CURVE key is not in the topology is refused before any
 * byte reaches the decoder, so it changes nothing; a neighbour that holds a
 * valid key but sends garbage leaves the target running, every bad message
 * dropped and counted by reason under that neighbour's id. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ohm_ckpt.h"
#include "ohm_error.h"
#include "ohm_keys.h"
#include "ohm_model.h"
#include "ohm_rng.h"
#include "ohm_testproc.h"
#include "ohm_topology.h"
#include "ohm_transport.h"
#include "ohm_wire.h"

#define SEED 7
#define DIM 12
#define CLASSES 3
#define HIDDEN 8

/* ---- set-up helpers ------------------------------------------------------ */

typedef struct {
    char host[16];
    int port;
    uint8_t pub[8][OHM_KEY_BYTES], sec[8][OHM_KEY_BYTES];
} peers_t;

/* Writes DIR/net.topo: n peers with fresh CURVE keys in DIR/keys and the given
 * undirected edges, on fresh loopback endpoints. */
static void write_topology(const char *dir, int n, const int (*edges)[2], int nedges, peers_t *ps)
{
    cr_assert_leq(n, 8, "peers_t holds 8 key pairs");
    char path[512], keys[512];
    snprintf(path, sizeof path, "%s/net.topo", dir);
    snprintf(keys, sizeof keys, "%s/keys", dir);
    cr_assert_eq(ohm_test_keyed_topology(path, keys, n, edges, nedges, ps->host, &ps->port,
                                         ps->pub, ps->sec),
                 0);
}

static void endpoint_of(const peers_t *ps, int id, char *ep, size_t cap)
{
    snprintf(ep, cap, "tcp://%s:%d", ps->host, ps->port + id);
}

/* The run id every peer of this topology derives (no net.run_id set). */
static uint64_t run_id_of(const char *topo)
{
    ohm_topology_t *t = NULL;
    cr_assert_eq(ohm_topology_load(topo, &t), 0, "%s", ohm_error_detail());
    uint64_t parts[2] = {ohm_topology_digest(t), SEED};
    ohm_topology_destroy(&t);
    return ohm_hash64(parts, sizeof parts, 0x72756e);
}

/* Parameter count and fingerprint of the model the peers build from `sets`. */
static void model_shape(uint32_t *count, uint64_t *fp)
{
    ohm_model_spec_t s = {.n_in = DIM,
                          .n_out = CLASSES,
                          .n_hidden = 1,
                          .hidden = {HIDDEN},
                          .act = OHM_ACT_RELU,
                          .loss = OHM_LOSS_XENT,
                          .bias = 1};
    ohm_model_t *m = NULL;
    cr_assert_eq(ohm_model_new(&s, NULL, NULL, &m), 0);
    *count = (uint32_t)ohm_model_nparams(m);
    *fp = ohm_model_fingerprint(m);
    ohm_model_destroy(&m);
}

#define STR_(x) #x
#define STR(x) STR_(x)
static const char *const common_sets[] = {"data.name=synthetic",
                                          "data.dim=" STR(DIM),
                                          "data.classes=" STR(CLASSES),
                                          "data.train_size=1200",
                                          "data.test_size=300",
                                          "model.hidden=" STR(HIDDEN),
                                          "optimizer.lr=0.1",
                                          "optimizer.batch=16",
                                          "train.seed=" STR(SEED),
                                          "net.insecure=false",
                                          NULL};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- hand-built messages ---------------------------------------------------- */

typedef struct {
    uint8_t *b;
    size_t n, cap;
} mp_t;

static void mp_put(mp_t *m, const void *d, size_t n)
{
    if (m->n + n > m->cap) {
        m->cap = 2 * (m->n + n) + 64;
        m->b = realloc(m->b, m->cap);
        cr_assert(m->b);
    }
    memcpy(m->b + m->n, d, n);
    m->n += n;
}

static void mp_byte(mp_t *m, uint8_t x)
{
    mp_put(m, &x, 1);
}

static void mp_be(mp_t *m, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--)
        mp_byte(m, (uint8_t)(v >> (8 * i)));
}

static void mp_str(mp_t *m, const char *s)
{
    mp_byte(m, (uint8_t)(0xa0 | strlen(s)));
    mp_put(m, s, strlen(s));
}

/* uint32 or uint64: never wider than the sender's own encoder, so a hand-built
 * message stays within the receiver's size limit. */
static void mp_uint(mp_t *m, uint64_t v)
{
    mp_byte(m, v <= UINT32_MAX ? 0xce : 0xcf);
    mp_be(m, v, v <= UINT32_MAX ? 4 : 8);
}

static void mp_bin(mp_t *m, const void *d, size_t n)
{
    mp_byte(m, 0xc6);
    mp_be(m, n, 4);
    if (n) mp_put(m, d, n);
}

typedef struct {
    uint64_t v, type, run, from, round, fp, n;
} fields_t;

/* The eleven-key map of the wire format with arbitrary values, a whole f32
 * model (kind 0, b = the round, no sparse entries); p holds p_len bytes. */
static void mp_message(mp_t *m, const fields_t *f, const void *p, size_t p_len)
{
    mp_byte(m, 0x8b);
    const char *names[] = {"v", "type", "run", "from", "round", "fp", "n", "k", "b", "m"};
    const uint64_t b = f->type == OHM_MSG_MODEL ? f->round : 0;
    const uint64_t vals[] = {f->v, f->type, f->run, f->from, f->round, f->fp, f->n, 0, b, 0};
    for (int i = 0; i < 10; i++) {
        mp_str(m, names[i]);
        mp_uint(m, vals[i]);
    }
    mp_str(m, "p");
    mp_bin(m, p, p_len);
}

/* Hands a copy of bytes to the transport for peer 0. */
static void send_bytes(ohm_transport_t *t, const void *d, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    cr_assert(copy);
    memcpy(copy, d, n);
    uint32_t to = 0;
    ohm_transport_send_all(t, &to, 1, copy, n);
}

/* Encodes a model (or hello when params is NULL) with ohm_wire_encode and sends it. */
static void send_model(ohm_transport_t *t, const fields_t *f, const float *params)
{
    ohm_wire_msg_t m = {.version = (uint32_t)f->v,
                        .type = (uint32_t)f->type,
                        .run = f->run,
                        .from = (uint32_t)f->from,
                        .round = (uint32_t)f->round,
                        .fp = f->fp,
                        .count = params ? (uint32_t)f->n : 0};
    size_t cap = ohm_wire_max_size(m.count), len = 0;
    uint8_t *buf = malloc(cap);
    cr_assert(buf);
    cr_assert_eq(ohm_wire_encode(&m, params, buf, cap, &len), 0);
    send_bytes(t, buf, len);
    free(buf);
}

/* ---- an unknown key ------------------------------------------------------- */

#define RING 3
#define ROGUE_ROUNDS 400

/* Runs the 3-peer ring into out (topology and keys from dir), with a rogue CURVE
 * client sending to peer 0 while it runs when `rogue` is set. Returns the number
 * of rogue messages handed to its transport. */
static int run_ring(const char *dir, const char *out, const peers_t *ps, int rogue)
{
    char topo[512];
    snprintf(topo, sizeof topo, "%s/net.topo", dir);
    const char *extra[] = {"train.rounds=" STR(ROGUE_ROUNDS), "train.eval_every=100",
                           "net.round_timeout_ms=8000", "net.startup_timeout_ms=20000", NULL};
    const char *sets[40];
    ohm_test_sets(sets, 40, common_sets, extra);
    mkdir(out, 0755);
    pid_t pids[RING];
    for (int i = 0; i < RING; i++)
        pids[i] = ohm_test_peer(topo, i, out, sets, 0);

    ohm_transport_t *t = NULL;
    float *params = NULL;
    fields_t f = {0};
    if (rogue) {
        /* A fresh key pair that no topology line lists, aimed at peer 0 with
         * peer 0's real server key: the handshake itself must be refused. */
        uint8_t pub[OHM_KEY_BYTES], sec[OHM_KEY_BYTES];
        cr_assert_eq(ohm_keys_generate(pub, sec), 0);
        char bind[64], ep0[64];
        snprintf(bind, sizeof bind, "tcp://%s:*", ps->host);
        endpoint_of(ps, 0, ep0, sizeof ep0);
        uint32_t count;
        uint64_t fp;
        model_shape(&count, &fp);
        ohm_transport_opts_t o = {.bind = bind,
                                  .max_msg_size = ohm_wire_max_size(count),
                                  .hwm = 1000,
                                  .public_key = pub,
                                  .secret_key = sec};
        cr_assert_eq(ohm_transport_new(&o, &t), 0, "%s", ohm_error_detail());
        cr_assert_eq(ohm_transport_add_peer(t, 0, ep0, ps->pub[0]), 0, "%s", ohm_error_detail());
        /* Well-formed and plausible: right run, shape and count, claiming to be
         * peer 1, with values that would visibly move peer 0's model. */
        params = malloc(sizeof(float) * count);
        for (uint32_t i = 0; i < count; i++)
            params[i] = 3.0f;
        f = (fields_t){.v = OHM_WIRE_VERSION,
                       .type = OHM_MSG_MODEL,
                       .run = run_id_of(topo),
                       .from = 1,
                       .fp = fp,
                       .n = count};
    }
    int sent = 0, done[RING] = {0}, status[RING] = {0};
    double deadline = mono_s() + 90;
    for (int left = RING; left > 0 && mono_s() < deadline;) {
        for (int i = 0; i < RING; i++) {
            int st;
            if (!done[i] && waitpid(pids[i], &st, WNOHANG) == pids[i]) {
                done[i] = 1;
                status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                left--;
            }
        }
        if (t) {
            /* Cover every round, a hello too, so no timing lets one slip in. */
            f.round = (uint64_t)(sent % ROGUE_ROUNDS);
            send_model(t, &f, params);
            if (sent % 10 == 0) {
                fields_t h = f;
                h.type = OHM_MSG_HELLO;
                send_model(t, &h, NULL);
            }
            sent++;
        }
        usleep(2000);
    }
    for (int i = 0; i < RING; i++) {
        if (!done[i]) status[i] = ohm_test_wait(pids[i], 1000);
        if (status[i] != 0) ohm_test_show_log(out, i);
        cr_assert_eq(status[i], 0, "peer %d exit status %d", i, status[i]);
    }
    ohm_transport_destroy(&t);
    free(params);
    return sent;
}

/* The "params" section of a peer's final checkpoint into a malloc'd buffer. */
static void *ckpt_params(const char *out, int id, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/peer-%d.ckpt", out, id);
    ohm_ckpt_t *ck = NULL;
    cr_assert_eq(ohm_ckpt_read(path, &ck), 0, "%s", ohm_error_detail());
    const void *d;
    cr_assert_eq(ohm_ckpt_get(ck, "params", &d, len), 0);
    void *copy = malloc(*len);
    memcpy(copy, d, *len);
    ohm_ckpt_destroy(&ck);
    return copy;
}

Test(peer_security, unknown_key_is_refused_and_changes_nothing, .timeout = 180)
{
    char dir[128], ref[256], att[256];
    ohm_test_tmpdir(dir, sizeof dir, "unknownkey");
    peers_t ps;
    const int edges[RING][2] = {{0, 1}, {1, 2}, {2, 0}};
    write_topology(dir, RING, edges, RING, &ps);
    snprintf(ref, sizeof ref, "%s/reference", dir);
    snprintf(att, sizeof att, "%s/attacked", dir);

    run_ring(dir, ref, &ps, 0);
    int sent = run_ring(dir, att, &ps, 1);
    cr_assert_gt(sent, 10, "the rogue sent only %d messages", sent);

    char line[16384], obj[1024];
    cr_assert_eq(ohm_test_final_line(att, 0, line, sizeof line), 0, "peer 0: no final line");
    double refused = 0, dropped = -1, acc = -1, acc_ref = -2;
    cr_assert_eq(ohm_test_final(att, 0, "auth_refused", &refused), 0);
    cr_expect_gt(refused, 0, "peer 0 counted no refused handshake");
    /* Nothing of the rogue reached the decoder: no drop of any kind. */
    ohm_test_final(att, 0, "msgs_dropped", &dropped);
    cr_expect_eq(dropped, 0, "peer 0 dropped %g messages", dropped);
    cr_expect(strstr(line, "\"drops\":{}"), "drops: %s", line);
    /* Each honest neighbour delivered one model per round, and nothing more was accepted. */
    for (int nb = 1; nb <= 2; nb++) {
        cr_assert_eq(ohm_test_neighbour(line, nb, obj, sizeof obj), 0, "no record of neighbour %d",
                     nb);
        cr_expect_eq(ohm_test_counter(obj, "accepted"), ROGUE_ROUNDS, "neighbour %d: %s", nb, obj);
        cr_expect_eq(ohm_test_counter(obj, "missed"), 0, "neighbour %d: %s", nb, obj);
    }
    /* Same seed, same honest messages: the same numbers, bit for bit. */
    for (int i = 0; i < RING; i++) {
        cr_assert_eq(ohm_test_final(ref, i, "test_acc", &acc_ref), 0);
        cr_assert_eq(ohm_test_final(att, i, "test_acc", &acc), 0);
        cr_expect(fabs(acc - acc_ref) < 1e-9, "peer %d accuracy %.6f vs %.6f undisturbed", i, acc,
                  acc_ref);
        size_t la, lb;
        void *a = ckpt_params(ref, i, &la), *b = ckpt_params(att, i, &lb);
        cr_expect(la == lb && memcmp(a, b, la) == 0, "peer %d: final model differs", i);
        free(a);
        free(b);
    }
    cr_log_info("rogue: %d messages sent, %g handshakes refused, peer 0 accuracy %.4f (%.4f "
                "undisturbed)",
                sent, refused, acc, acc_ref);
    ohm_test_rmdir(dir);
}

/* ---- a hostile neighbour -------------------------------------------------- */

#define HOSTILE_ROUNDS 8
#define HOSTILE_AT 2 /* the round in which the garbage arrives */
/* The garbage round buffers models up to HOSTILE_AT + 4 (the window); the
 * rounds after it are answered by the out-of-window message alone. */
_Static_assert(HOSTILE_AT + 5 == HOSTILE_ROUNDS - 1, "hostile test schedule");

/* Everything wrong a neighbour holding a valid key can send, in the round
 * `r` peer 0 is waiting in; `good` is a finite model of the right shape. */
static void send_garbage(ohm_transport_t *t, const fields_t *ok, const float *good, size_t max_msg)
{
    uint32_t count = (uint32_t)ok->n;
    size_t plen = 4u * count;
    mp_t m = {0};
    fields_t f;

    /* Over the receiver's size limit: refused by the transport, never decoded
     * (one just over, one far over). Then a pause, in case the link was reset. */
    uint8_t *big = calloc(1, 4 * max_msg);
    cr_assert(big);
    big[0] = 0x88;
    send_bytes(t, big, max_msg + 1);
    send_bytes(t, big, 4 * max_msg);
    free(big);
    usleep(500000);

    /* truncated x2: half of a valid model; a map header with nothing after it. */
    mp_message(&m, ok, good, plen);
    send_bytes(t, m.b, m.n / 2);
    m.n = 0;
    mp_byte(&m, 0x88);
    send_bytes(t, m.b, 1);
    m.n = 0;

    /* malformed x3: round as a string; from as a float; an array instead of a map. */
    mp_byte(&m, 0x8b);
    const char *names[] = {"v", "type", "run", "from", "round", "fp", "n", "k", "b", "m"};
    const uint64_t vals[] = {ok->v,  ok->type, ok->run, ok->from,  ok->round,
                             ok->fp, ok->n,    0,       ok->round, 0};
    for (int i = 0; i < 10; i++) {
        mp_str(&m, names[i]);
        if (i == 4)
            mp_str(&m, "two");
        else
            mp_uint(&m, vals[i]);
    }
    mp_str(&m, "p");
    mp_bin(&m, good, plen);
    send_bytes(t, m.b, m.n);
    m.n = 0;
    mp_byte(&m, 0x8b);
    for (int i = 0; i < 10; i++) {
        mp_str(&m, names[i]);
        if (i == 3) {
            mp_byte(&m, 0xca);
            mp_be(&m, 0x3f800000u, 4); /* float32 1.0 */
        } else {
            mp_uint(&m, vals[i]);
        }
    }
    mp_str(&m, "p");
    mp_bin(&m, good, plen);
    send_bytes(t, m.b, m.n);
    m.n = 0;
    mp_byte(&m, 0x93);
    mp_uint(&m, 1);
    mp_uint(&m, 2);
    mp_uint(&m, 3);
    send_bytes(t, m.b, m.n);
    m.n = 0;

    /* version x1 */
    f = *ok;
    f.v = OHM_WIRE_VERSION + 1;
    mp_message(&m, &f, good, plen);
    send_bytes(t, m.b, m.n);
    m.n = 0;

    /* other_run x1 */
    f = *ok;
    f.run ^= 0x5a5a;
    send_model(t, &f, good);

    /* shape x2: one parameter short; another model's fingerprint. */
    f = *ok;
    f.n = count - 1;
    send_model(t, &f, good);
    f = *ok;
    f.fp ^= 1;
    send_model(t, &f, good);

    /* range x2: a sender id outside the topology; an unknown message type. */
    f = *ok;
    f.from = 7;
    send_model(t, &f, good);
    f = *ok;
    f.type = 9;
    mp_message(&m, &f, good, plen);
    send_bytes(t, m.b, m.n);
    m.n = 0;

    /* too_big x1: a count over the wire limit (with an empty payload). */
    f = *ok;
    f.n = (uint64_t)OHM_WIRE_MAX_COUNT + 1;
    mp_message(&m, &f, NULL, 0);
    send_bytes(t, m.b, m.n);
    m.n = 0;

    /* spoofed x1: a valid model claiming to come from peer 2. */
    f = *ok;
    f.from = 2;
    send_model(t, &f, good);

    /* stale x1: last round's model. */
    f = *ok;
    f.round = ok->round - 1;
    send_model(t, &f, good);

    /* nonfinite x1: this round's model full of NaN; it ends the round (it was
     * delivered). Everything after it belongs to later rounds, in order. */
    float *nan_params = malloc(plen);
    for (uint32_t i = 0; i < count; i++)
        nan_params[i] = NAN;
    send_model(t, ok, nan_params);
    free(nan_params);
    /* A replay: next round's model twice: one accepted next round, one dropped.
     * Then the models of the rounds up to the window's end, so
     * peer 0 has them before it gets there (it does not wait for a neighbour
     * that announced a later round, as the hello below does). */
    f = *ok;
    f.round = ok->round + 1;
    send_model(t, &f, good);
    send_model(t, &f, good);
    for (f.round = ok->round + 2; f.round <= ok->round + 4; f.round++)
        send_model(t, &f, good);

    free(m.b);

    /* A hello announcing round r+4: with aggregate.b = 1 a single neighbour's
     * word cannot make peer 0 jump ahead (with b = 0 it would skip rounds). */
    f = *ok;
    f.type = OHM_MSG_HELLO;
    f.round = ok->round + 4;
    send_model(t, &f, NULL);
}

Test(peer_security, hostile_neighbour_is_survived_and_counted, .timeout = 120)
{
    char dir[128], topo[256], ep0[64], ep1[64];
    ohm_test_tmpdir(dir, sizeof dir, "hostile");
    peers_t ps;
    /* A path 0 - 1 - 2: peer 2 exists (so from=2 is in range) but is not peer 0's neighbour. */
    const int edges[2][2] = {{0, 1}, {1, 2}};
    write_topology(dir, 3, edges, 2, &ps);
    snprintf(topo, sizeof topo, "%s/net.topo", dir);
    endpoint_of(&ps, 0, ep0, sizeof ep0);
    endpoint_of(&ps, 1, ep1, sizeof ep1);
    uint32_t count;
    uint64_t fp;
    model_shape(&count, &fp);
    size_t max_msg = ohm_wire_max_size(count);

    /* This process is peer 1, with peer 1's real key pair. */
    uint32_t id0 = 0;
    const uint8_t(*allowed)[OHM_KEY_BYTES] = (const uint8_t(*)[OHM_KEY_BYTES])ps.pub[0];
    ohm_transport_opts_t o = {.bind = ep1,
                              .max_msg_size = max_msg,
                              .hwm = 1000,
                              .public_key = ps.pub[1],
                              .secret_key = ps.sec[1],
                              .n_allowed = 1,
                              .allowed_keys = allowed,
                              .allowed_ids = &id0};
    ohm_transport_t *t = NULL;
    cr_assert_eq(ohm_transport_new(&o, &t), 0, "%s", ohm_error_detail());
    cr_assert_eq(ohm_transport_add_peer(t, 0, ep0, ps.pub[0]), 0, "%s", ohm_error_detail());

    const char *extra[] = {
        "train.rounds=" STR(HOSTILE_ROUNDS), "train.eval_every=4",           "aggregate.b=1",
        "net.round_timeout_ms=5000",         "net.startup_timeout_ms=10000", NULL};
    const char *sets[40];
    ohm_test_sets(sets, 40, common_sets, extra);
    pid_t pid = ohm_test_peer(topo, 0, dir, sets, 0);

    fields_t ok = {.v = OHM_WIRE_VERSION,
                   .type = OHM_MSG_HELLO,
                   .run = run_id_of(topo),
                   .from = 1,
                   .fp = fp,
                   .n = count};
    send_model(t, &ok, NULL); /* hello: peer 0's start-up barrier hears us */
    ok.type = OHM_MSG_MODEL;
    ohm_wire_expect_t e = {.run = ok.run, .fp = fp, .count = count, .max_from = 3};
    float *good = malloc(sizeof(float) * count);
    int bye = 0, answered = 0;
    double deadline = mono_s() + 60;
    while (!bye && mono_s() < deadline) {
        ohm_frame_t *fr = NULL;
        int rc = ohm_transport_recv(t, 200, &fr);
        if (rc == OHM_ETIMEOUT || rc == OHM_EINTR) {
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) {
                pid = -1;
                cr_assert_fail("peer 0 ended early (status %d)", st);
            }
            continue;
        }
        cr_assert_eq(rc, 0, "%s", ohm_error_detail());
        ohm_wire_msg_t m;
        rc = ohm_wire_decode(ohm_frame_data(fr), ohm_frame_size(fr), &e, &m);
        cr_assert_eq(rc, 0, "peer 0 sent something we cannot decode: %s", ohm_error_detail());
        cr_assert_eq(ohm_frame_peer(fr), 0);
        if (m.type == OHM_MSG_BYE) bye = 1;
        if (m.type == OHM_MSG_MODEL) {
            cr_assert_eq(ohm_wire_read_params(&m, good), 0);
            ok.round = m.round;
            if (m.round == HOSTILE_AT) {
                send_garbage(t, &ok, good, max_msg);
                answered++;
            } else if (m.round < HOSTILE_AT) {
                /* An honest answer: peer 0's own model back. Rounds after the
                 * garbage were delivered ahead with it. */
                send_model(t, &ok, good);
                answered++;
            } else if (m.round == HOSTILE_ROUNDS - 1) {
                /* future x1: a model beyond the buffered window (net.future_rounds
                 * = 4). Peer 0 then knows this round's model was sent and lost,
                 * stops waiting, and counts the round as missed. */
                fields_t f = ok;
                f.round = m.round + 5;
                send_model(t, &f, good);
                answered++;
            }
        }
        ohm_frame_destroy(&fr);
    }
    free(good);
    int st = ohm_test_wait(pid, 20000);
    if (st != 0) ohm_test_show_log(dir, 0);
    cr_assert_eq(st, 0, "peer 0 exit status %d", st);
    cr_assert(bye, "peer 0 never said bye");
    cr_expect_eq(answered, HOSTILE_AT + 2);

    char line[16384], obj[1024];
    cr_assert_eq(ohm_test_final_line(dir, 0, line, sizeof line), 0, "peer 0: no final line");
    double round = 0, dropped = 0, skipped = -1;
    ohm_test_final(dir, 0, "round", &round);
    ohm_test_final(dir, 0, "msgs_dropped", &dropped);
    ohm_test_final(dir, 0, "rounds_skipped", &skipped);
    cr_expect_eq((int)round, HOSTILE_ROUNDS);
    cr_expect_eq(skipped, 0, "peer 0 jumped %g rounds on one neighbour's word", skipped);
    cr_assert_eq(ohm_test_neighbour(line, 1, obj, sizeof obj), 0, "no record of neighbour 1: %s",
                 line);
    cr_log_info("peer 0's record of neighbour 1: %s", obj);
    /* Every round's model was accepted except the NaN one (delivered, so not
     * missed) and the last one (only the out-of-window message came). */
    cr_expect_eq(ohm_test_counter(obj, "accepted"), HOSTILE_ROUNDS - 2, "%s", obj);
    cr_expect_eq(ohm_test_counter(obj, "missed"), 1, "%s", obj);
    static const struct {
        const char *reason;
        long n;
    } want[] = {{"truncated", 2}, {"malformed", 3}, {"version", 1},      {"other_run", 1},
                {"shape", 2},     {"range", 2},     {"too_big", 1},      {"nonfinite", 1},
                {"spoofed", 1},   {"future", 1},    {"not_neighbour", 0}};
    long total = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_expect_eq(ohm_test_counter(obj, want[i].reason), want[i].n, "%s: %s", want[i].reason,
                     obj);
        total += want[i].n;
    }
    /* The replayed model was dropped once: as a duplicate if its round was
     * still open when the copy arrived, else as stale (next to the one stale
     * message sent as such). */
    long replay = ohm_test_counter(obj, "duplicate") + ohm_test_counter(obj, "stale") - 1;
    cr_expect_eq(replay, 1, "replay dropped %ld times: %s", replay, obj);
    total += 2;
    /* The oversized frames were never seen by the decoder: no extra drop anywhere. */
    cr_expect_eq((long)dropped, total, "msgs_dropped %g, expected %ld", dropped, total);
    ohm_transport_destroy(&t);
    ohm_test_rmdir(dir);
}

/* ---- the round hijack ---------------------------------------------------- */

#define HIJACK_PEERS 4
#define HIJACK_ROUNDS 3000
#define HIJACK_STAMP (HIJACK_ROUNDS - 10) /* near the end of the run */

/* A transport holding peer `as`'s real key pair, aimed at peer `to`. */
static ohm_transport_t *impersonator(const peers_t *ps, int as, int to, size_t max_msg)
{
    char bind[64], ep[64];
    snprintf(bind, sizeof bind, "tcp://%s:*", ps->host);
    endpoint_of(ps, to, ep, sizeof ep);
    ohm_transport_opts_t o = {.bind = bind,
                              .max_msg_size = max_msg,
                              .hwm = 1000,
                              .public_key = ps->pub[as],
                              .secret_key = ps->sec[as]};
    ohm_transport_t *t = NULL;
    cr_assert_eq(ohm_transport_new(&o, &t), 0, "%s", ohm_error_detail());
    cr_assert_eq(ohm_transport_add_peer(t, (uint32_t)to, ep, ps->pub[to]), 0, "%s",
                 ohm_error_detail());
    return t;
}

/* The hijack: a NaN model and a finite one, both stamped near the last round,
 * sent to peer 0 with peer 1's own key pair. */
static void send_hijack(ohm_transport_t *t, const char *topo, uint32_t count, uint64_t fp)
{
    float *p = malloc(sizeof(float) * count);
    cr_assert(p);
    fields_t f = {.v = OHM_WIRE_VERSION,
                  .type = OHM_MSG_MODEL,
                  .run = run_id_of(topo),
                  .from = 1,
                  .round = HIJACK_STAMP,
                  .fp = fp,
                  .n = count};
    for (uint32_t i = 0; i < count; i++)
        p[i] = NAN;
    send_model(t, &f, p);
    for (uint32_t i = 0; i < count; i++)
        p[i] = 0.01f * (float)(i % 7);
    f.round = HIJACK_STAMP + 1;
    send_model(t, &f, p);
    free(p);
}

/* Every peer ran every round, skipping none. */
static void expect_whole_run(const char *out)
{
    for (int i = 0; i < HIJACK_PEERS; i++) {
        double round = 0, skipped = -1;
        cr_assert_eq(ohm_test_final(out, i, "round", &round), 0, "peer %d: no final line", i);
        ohm_test_final(out, i, "rounds_skipped", &skipped);
        cr_expect_eq((int)round, HIJACK_ROUNDS, "peer %d ended at round %g", i, round);
        cr_expect_eq(skipped, 0, "peer %d skipped %g rounds", i, skipped);
    }
}

Test(peer_security, hijack_with_a_neighbours_key_skips_nothing, .timeout = 240)
{
    char dir[128], topo[256];
    ohm_test_tmpdir(dir, sizeof dir, "hijack");
    peers_t ps;
    const int edges[HIJACK_PEERS][2] = {{0, 1}, {1, 2}, {2, 3}, {3, 0}};
    write_topology(dir, HIJACK_PEERS, edges, HIJACK_PEERS, &ps);
    snprintf(topo, sizeof topo, "%s/net.topo", dir);
    uint32_t count;
    uint64_t fp;
    model_shape(&count, &fp);
    const char *extra[] = {"train.rounds=" STR(HIJACK_ROUNDS), "train.eval_every=1000",
                           "train.checkpoint_every=0",         "net.round_timeout_ms=5000",
                           "net.startup_timeout_ms=20000",     NULL};
    const char *sets[40];
    ohm_test_sets(sets, 40, common_sets, extra);

    /* 1. Next to the real peer 1: the impersonator's session is refused
     *    (one key, one session) and counted. */
    char out[256];
    snprintf(out, sizeof out, "%s/beside", dir);
    mkdir(out, 0755);
    pid_t pids[HIJACK_PEERS];
    for (int i = 0; i < HIJACK_PEERS; i++)
        pids[i] = ohm_test_peer(topo, i, out, sets, 0);
    double r = 0, t0 = mono_s();
    while ((ohm_test_last(out, 0, "round", &r) || r < 1000) && mono_s() - t0 < 60)
        usleep(20000);
    ohm_transport_t *imp = impersonator(&ps, 1, 0, ohm_wire_max_size(count));
    send_hijack(imp, topo, count, fp);
    usleep(300000);
    ohm_transport_destroy(&imp);
    for (int i = 0; i < HIJACK_PEERS; i++) {
        int st = ohm_test_wait(pids[i], 120000);
        if (st) ohm_test_show_log(out, i);
        cr_assert_eq(st, 0, "peer %d exit status %d", i, st);
    }
    expect_whole_run(out);
    char line[16384];
    cr_assert_eq(ohm_test_final_line(out, 0, line, sizeof line), 0);
    const char *rd = strstr(line, "\"recv_dropped\":");
    cr_assert_not_null(rd, "no recv_dropped in %s", line);
    cr_expect_geq(ohm_test_counter(rd, "duplicate_session"), 1,
                  "the second session was not refused: %s", rd);

    /* 2. Before the real peer 1 starts, the impersonator holds its key: its
     *    frames reach peer 0's protocol, which must not believe them. */
    snprintf(out, sizeof out, "%s/before", dir);
    mkdir(out, 0755);
    for (int i = 0; i < HIJACK_PEERS; i++)
        if (i != 1) pids[i] = ohm_test_peer(topo, i, out, sets, 0);
    usleep(500000);
    imp = impersonator(&ps, 1, 0, ohm_wire_max_size(count));
    send_hijack(imp, topo, count, fp);
    usleep(500000);
    ohm_transport_destroy(&imp);
    usleep(300000);
    pids[1] = ohm_test_peer(topo, 1, out, sets, 0);
    for (int i = 0; i < HIJACK_PEERS; i++) {
        int st = ohm_test_wait(pids[i], 120000);
        if (st) ohm_test_show_log(out, i);
        cr_assert_eq(st, 0, "peer %d exit status %d", i, st);
    }
    expect_whole_run(out);
    char obj[1024];
    cr_assert_eq(ohm_test_final_line(out, 0, line, sizeof line), 0);
    cr_assert_eq(ohm_test_neighbour(line, 1, obj, sizeof obj), 0);
    cr_log_info("hijack before peer 1 started: peer 0's record of neighbour 1: %s", obj);
    cr_expect_geq(ohm_test_counter(obj, "nonfinite") + ohm_test_counter(obj, "future"), 1,
                  "the hijack frames never reached peer 0's protocol: %s", obj);
    ohm_test_rmdir(dir);
}
