/* Topology parser, validator, weights, spectral gap, writer and digest. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ohm_error.h"
#include "ohm_rng.h"
#include "ohm_topo_internal.h"
#include "ohm_topology.h"

static int parse(const char *s, ohm_topology_t **t)
{
    return ohm_topology_parse(s, strlen(s), "t.topo", t);
}

static ohm_topology_t *must_parse(const char *s)
{
    ohm_topology_t *t = NULL;
    int rc = parse(s, &t);
    cr_assert_eq(rc, 0, "parse failed: %s", ohm_error_detail());
    cr_assert_not_null(t);
    return t;
}

/* Peers 0..n-1 on 127.0.0.1:(5000+i), one per line, into buf. */
static char *peers_text(char *buf, size_t len, int n)
{
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, len - l, "peer %d tcp://127.0.0.1:%d\n", i, 5000 + i);
    }
    return buf;
}

static void z85_key(char out[41], uint8_t fill)
{
    uint8_t k[32];
    for (int i = 0; i < 32; i++)
        k[i] = (uint8_t)(fill + 7 * i);
    cr_assert_not_null(zmq_z85_encode(out, k, 32));
}

/* The spectral gap (must succeed); *estimate tells how it was found. */
static double gap_of(const ohm_topology_t *t, int *estimate)
{
    ohm_topo_gap_t g;
    cr_assert_eq(ohm_topology_spectral_gap(t, &g), 0, "spectral gap: %s", ohm_error_detail());
    if (estimate) *estimate = g.estimate;
    return g.gap;
}

static uint64_t round_trip_digest(const ohm_topology_t *t)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cr_assert_eq(ohm_topology_write(t, f), 0);
    fclose(f);
    ohm_topology_t *u = NULL;
    int rc = ohm_topology_parse(buf, len, "written", &u);
    cr_assert_eq(rc, 0, "written topology does not load: %s\n%s", ohm_error_detail(), buf);
    uint64_t d = ohm_topology_digest(u);
    ohm_topology_destroy(&u);
    free(buf);
    return d;
}

static void assert_rows_sum_to_one(const ohm_topology_t *t)
{
    int n = ohm_topology_size(t);
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < n; j++) {
            double w = ohm_topology_weight(t, (uint32_t)i, (uint32_t)j);
            cr_assert(w >= 0, "negative weight a_%d%d = %g", i, j, w);
            s += w;
        }
        cr_assert(fabs(s - 1) < 1e-12, "row %d sums to %.17g", i, s);
    }
}

Test(topology, valid_file_with_everything)
{
    char k0[41], k1[41], k2[41], text[2048];
    z85_key(k0, 1);
    z85_key(k1, 2);
    z85_key(k2, 3);
    snprintf(text, sizeof text,
             "# a small line of three peers\n"
             "\n"
             "   weights uniform   # default scheme\n"
             "peer 2 tcp://node-b.lan:6002 key=%s role=byzantine attack=gaussian:sigma=30,x=1.5\n"
             "peer 0 tcp://10.0.0.1:6000 key=%s rule=ios b=1 bind=tcp://*:6000\n"
             "\tpeer 1 tcp://[::1]:6001 key=%s role=honest # trailing comment\n"
             "edge 0 1 w=0.25\n"
             "edge 1 2\r\n"
             "weight 2 1 0.5\n",
             k2, k0, k1);
    ohm_topology_t *t = must_parse(text);
    cr_assert_eq(ohm_topology_size(t), 3);
    cr_assert_eq(ohm_topology_edge_count(t), 2);
    cr_assert_str_eq(ohm_topology_scheme(t), "uniform");

    const ohm_peer_info_t *p0 = ohm_topology_peer(t, 0), *p1 = ohm_topology_peer(t, 1),
                          *p2 = ohm_topology_peer(t, 2);
    cr_assert_eq(p0->id, 0);
    cr_assert_str_eq(p0->endpoint, "tcp://10.0.0.1:6000");
    cr_assert_str_eq(p0->bind, "tcp://*:6000");
    cr_assert_str_eq(p0->rule, "ios");
    cr_assert_eq(p0->b, 1);
    cr_assert_eq(p0->byzantine, 0);
    cr_assert_null(p0->attack);
    cr_assert(p0->has_key);
    uint8_t raw[32];
    cr_assert_not_null(zmq_z85_decode(raw, k0));
    cr_assert_eq(memcmp(raw, p0->key, 32), 0);
    cr_assert_str_eq(p1->endpoint, "tcp://[::1]:6001");
    cr_assert_null(p1->bind);
    cr_assert_null(p1->rule);
    cr_assert_eq(p1->b, -1);
    cr_assert_eq(p2->byzantine, 1);
    cr_assert_str_eq(p2->attack, "gaussian:sigma=30,x=1.5");
    cr_assert_eq(ohm_topology_byzantine_count(t), 1);
    cr_assert_eq(ohm_topology_byzantine_neighbors(t, 1), 1);
    cr_assert_eq(ohm_topology_byzantine_neighbors(t, 0), 0);

    const uint32_t *nb;
    cr_assert_eq(ohm_topology_neighbors(t, 1, &nb), 2);
    cr_assert_eq(nb[0], 0);
    cr_assert_eq(nb[1], 2);
    /* Explicit entries kept, uniform fills the rest, self takes the remainder. */
    cr_assert_float_eq(ohm_topology_weight(t, 0, 1), 0.25, 1e-15);
    cr_assert_float_eq(ohm_topology_weight(t, 1, 0), 0.25, 1e-15);
    cr_assert_float_eq(ohm_topology_weight(t, 1, 2), 1.0 / 3, 1e-15);
    cr_assert_float_eq(ohm_topology_weight(t, 2, 1), 0.5, 1e-15);
    cr_assert_float_eq(ohm_topology_weight(t, 0, 0), 0.75, 1e-15);
    cr_assert_float_eq(ohm_topology_weight(t, 1, 1), 1 - 0.25 - 1.0 / 3, 1e-15);
    cr_assert_float_eq(ohm_topology_weight(t, 2, 2), 0.5, 1e-15);
    cr_assert_eq(ohm_topology_weight(t, 0, 2), 0);
    assert_rows_sum_to_one(t);
    cr_assert_not(ohm_topology_is_symmetric(t));
    cr_assert_eq(round_trip_digest(t), ohm_topology_digest(t));
    ohm_topology_destroy(&t);
    cr_assert_null(t);
    ohm_topology_destroy(&t); /* NULL-safe */
}

Test(topology, metropolis_by_hand_on_a_path)
{
    char text[512];
    peers_text(text, sizeof text, 4);
    strcat(text, "edge 0 1\nedge 1 2\nedge 2 3\n");
    ohm_topology_t *t = must_parse(text);
    /* Degrees 1 2 2 1, n_i = d_i + 1 = 2 3 3 2: a_ij = 1/max(n_i, n_j). */
    cr_assert_float_eq(ohm_topology_weight(t, 0, 1), 1.0 / 3, 1e-15);
    cr_assert_float_eq(ohm_topology_weight(t, 1, 2), 1.0 / 3, 1e-15);
    cr_assert_float_eq(ohm_topology_weight(t, 0, 0), 2.0 / 3, 1e-15);
    cr_assert_float_eq(ohm_topology_weight(t, 1, 1), 1.0 / 3, 1e-15);
    cr_assert_float_eq(ohm_topology_weight(t, 3, 3), 2.0 / 3, 1e-15);
    cr_assert_eq(ohm_topology_weight(t, 0, 2), 0);
    cr_assert(ohm_topology_is_symmetric(t));
    cr_assert(ohm_topology_is_doubly_stochastic(t));
    assert_rows_sum_to_one(t);
    ohm_topology_destroy(&t);
}

Test(topology, uniform_by_hand_on_a_path)
{
    char text[512];
    peers_text(text, sizeof text, 3);
    strcat(text, "weights uniform\nedge 0 1\nedge 1 2\n");
    ohm_topology_t *t = must_parse(text);
    cr_assert_float_eq(ohm_topology_weight(t, 0, 1), 0.5, 1e-15);
    cr_assert_float_eq(ohm_topology_weight(t, 1, 0), 1.0 / 3, 1e-15);
    cr_assert_float_eq(ohm_topology_weight(t, 0, 0), 0.5, 1e-15);
    cr_assert_float_eq(ohm_topology_weight(t, 1, 1), 1.0 / 3, 1e-15);
    cr_assert_not(ohm_topology_is_doubly_stochastic(t));
    assert_rows_sum_to_one(t);
    ohm_topology_destroy(&t);
}

Test(topology, explicit_row_summing_to_one_within_tolerance)
{
    char text[512];
    peers_text(text, sizeof text, 3);
    /* 0.7 + 0.3 + 5e-10 exceeds 1 by less than the tolerance: self weight 0. */
    strcat(text, "edge 0 1\nedge 0 2\nweight 0 1 0.7\nweight 0 2 0.3000000005\n");
    ohm_topology_t *t = must_parse(text);
    cr_assert_eq(ohm_topology_weight(t, 0, 0), 0);
    /* Row 1 keeps its scheme weight: metropolis 1/max(2, 3). */
    cr_assert_float_eq(ohm_topology_weight(t, 1, 0), 1.0 / 3, 1e-15);
    ohm_topology_destroy(&t);
}

Test(topology, single_peer_is_valid)
{
    ohm_topology_t *t = must_parse("peer 0 tcp://localhost:7000\n");
    cr_assert_eq(ohm_topology_size(t), 1);
    cr_assert_eq(ohm_topology_weight(t, 0, 0), 1);
    cr_assert_eq(gap_of(t, NULL), 1);
    ohm_topology_destroy(&t);
}

/* ---- every error path: "t.topo:LINE:" and the reason ---- */

typedef struct {
    const char *text;
    int line;
    const char *why;
} bad_case_t;

#define P2 "peer 0 tcp://127.0.0.1:5000\npeer 1 tcp://127.0.0.1:5001\n"
#define P3 P2 "peer 2 tcp://127.0.0.1:5002\n"

static void check_bad(const bad_case_t *c)
{
    ohm_topology_t *t = (ohm_topology_t *)0x1;
    int rc = parse(c->text, &t);
    cr_assert_neq(rc, 0, "accepted:\n%s", c->text);
    cr_assert_null(t);
    char where[32];
    snprintf(where, sizeof where, "t.topo:%d: ", c->line);
    const char *d = ohm_error_detail();
    cr_assert(strstr(d, where) == d, "detail '%s' does not start with '%s' for:\n%s", d, where,
              c->text);
    cr_assert(strstr(d, c->why), "detail '%s' lacks '%s'", d, c->why);
}

Test(topology, syntax_errors)
{
    static const bad_case_t cases[] = {
        {"peer 0 tcp://a:1\nnode 1 2\n", 2, "unknown directive 'node'"},
        {"Peer 0 tcp://a:1\n", 1, "unknown directive"},
        {"peer 0\n", 1, "missing fields"},
        {P2 "edge 0\n", 3, "missing fields"},
        {P2 "edge 0 1 w=0.1 extra\n", 3, "too many fields"},
        {P2 "edge 0 1 x=0.1\n", 3, "unknown option"},
        {P2 "weight 0 1\n", 3, "missing fields"},
        {P2 "weight 0 1 0.1 0.2\n", 3, "too many fields"},
        {"peer x tcp://a:1\n", 1, "not a non-negative integer"},
        {"peer 1.5 tcp://a:1\n", 1, "not a non-negative integer"},
        {"peer -1 tcp://a:1\n", 1, "negative"},
        {"peer +1 tcp://a:1\n", 1, "not a non-negative integer"},
        {P2 "edge 0 -1\n", 3, "negative"},
        {P2 "weight a 1 0.5\n", 3, "not a non-negative integer"},
        {"peer 4096 tcp://a:1\n", 1, "limit"},
        {"peer 99999999999999999999 tcp://a:1\n", 1, "limit"},
        {"peer 0 tcp://a:1 foo=1\n", 1, "unknown option 'foo=1'"},
        {"peer 0 tcp://a:1 byzantine\n", 1, "unknown option"},
        {"peer 0 tcp://a:1 role=evil\n", 1, "unknown role"},
        {"peer 0 tcp://a:1 rule=ios rule=median\n", 1, "given twice"},
        {"peer 0 tcp://a:1 b=x\n", 1, "b='x'"},
        {"peer 0 tcp://a:1 b=-1\n", 1, "b='-1'"},
        {"peer 0 tcp://a:1 rule=a/b\n", 1, "bad rule name"},
        {"peer 0 tcp://a:1\nweights metropolis\nweights uniform\n", 3, "weights given twice"},
        {"peer 0 tcp://a:1\nweights laplacian\n", 2, "unknown weights scheme"},
        {"peer 0 tcp://a:1\nweights\n", 2, "weights: expected"},
        {"peer 0 tcp://a:1 a b c d e f g h i j k l m n\n", 1, "more than 16 fields"},
        {"peer 0 tcp://a:1\npeer 1 tcp://\x01:2\n", 2, "non-printable"},
        {"# nothing here\n\n", 2, "no peers declared"},
        {"", 1, "no peers declared"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_bad(&cases[i]);
}

Test(topology, nul_byte_and_long_line)
{
    ohm_topology_t *t = NULL;
    const char nul[] = "peer 0 tcp://a:1\npeer 1 tcp://a:2\0x\n";
    cr_assert_neq(ohm_topology_parse(nul, sizeof nul - 1, "t.topo", &t), 0);
    cr_assert(strstr(ohm_error_detail(), "t.topo:2: NUL byte"), "%s", ohm_error_detail());

    size_t n = OHM_TOPO_MAX_LINE + 10;
    char *text = malloc(n + 32);
    strcpy(text, "peer 0 tcp://a:1\n# ");
    size_t at = strlen(text);
    memset(text + at, 'x', n);
    text[at + n] = '\0';
    cr_assert_neq(parse(text, &t), 0);
    cr_assert(strstr(ohm_error_detail(), "t.topo:2: line longer"), "%s", ohm_error_detail());
    free(text);
}

Test(topology, endpoint_errors)
{
    static const char *const bad[] = {
        "udp://a:1",    "ipc:///tmp/x", "tcp://a",           "tcp://a:0",     "tcp://a:65536",
        "tcp://a:x",    "tcp://:5",     "tcp://1.2.3.256:5", "tcp://1.2.3:5", "tcp://::1:5",
        "tcp://[zz]:5", "tcp://[::1]5", "tcp://-a:5",        "tcp://a-:5",    "tcp://a..b:5",
        "tcp://*:5",    "tcp://a b:5",  "tcp://a:123456",    "tcp://[]:5",    "TCP://a:5",
        "tcp://a%b:5",  "tcp://a:-1",   "tcp://a:+80",       "tcp://[::1:5",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "peer 0 tcp://127.0.0.1:9\npeer 1 %s\n", bad[i]);
        if (strchr(bad[i], ' ')) {
            /* a blank splits the token: the rest is an unknown option */
            bad_case_t c = {text, 2, "peer 1"};
            check_bad(&c);
            continue;
        }
        bad_case_t c = {text, 2, "bad endpoint"};
        check_bad(&c);
    }
    bad_case_t bind = {"peer 0 tcp://a:1 bind=udp://*:1\n", 1, "bad bind endpoint"};
    check_bad(&bind);
    /* The good ones, including the wildcard in bind= only. */
    ohm_topology_t *t = must_parse("peer 0 tcp://a.b-c.d:1 bind=tcp://*:1\n"
                                   "peer 1 tcp://[fe80::1]:65535\n"
                                   "peer 2 tcp://192.168.0.1:80 bind=tcp://0.0.0.0:80\n"
                                   "edge 0 1\nedge 1 2\n");
    ohm_topology_destroy(&t);
}

Test(topology, id_errors)
{
    static const bad_case_t cases[] = {
        {"peer 0 tcp://a:1\npeer 2 tcp://a:2\n", 2, "peer 1 is missing"},
        {"peer 3 tcp://a:4\npeer 1 tcp://a:2\n", 1, "ids must be 0..1"},
        {"peer 0 tcp://a:1\npeer 0 tcp://a:2\n", 2,
         "duplicate peer id 0 (first declared on line 1)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_bad(&cases[i]);
}

Test(topology, endpoint_and_key_duplicates)
{
    bad_case_t e = {"peer 0 tcp://Host:5\npeer 1 tcp://host:05\nedge 0 1\n", 2,
                    "duplicate endpoint"};
    check_bad(&e);

    char k[41], text[512];
    z85_key(k, 9);
    snprintf(text, sizeof text,
             "peer 0 tcp://a:1 key=%s\npeer 1 tcp://a:2\npeer 2 tcp://a:3 key=%s\nedge 0 1\n"
             "edge 1 2\n",
             k, k);
    bad_case_t d = {text, 3, "same public key as peer 0"};
    check_bad(&d);
}

Test(topology, key_errors)
{
    char k[41];
    z85_key(k, 4);
    char tilde[41];
    memset(tilde, '~', 40);
    tilde[40] = '\0';
    char k39[41];
    memcpy(k39, k, 39);
    k39[39] = '\0';
    const char *bad[] = {"abc", tilde, k39, ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "peer 0 tcp://a:1 key=%s\n", bad[i]);
        bad_case_t c = {text, 1, "bad key"};
        check_bad(&c);
    }
    /* Z85 keys may contain '#': inside a token it is data, not a comment. */
    uint8_t raw[32];
    char hk[41];
    for (int s = 0;; s++) {
        for (int i = 0; i < 32; i++)
            raw[i] = (uint8_t)(s * 131 + i * 17);
        zmq_z85_encode(hk, raw, 32);
        if (strchr(hk, '#') && hk[0] != '#') break;
        cr_assert(s < 10000);
    }
    char text[256];
    snprintf(text, sizeof text, "peer 0 tcp://a:1 key=%s # comment\n", hk);
    ohm_topology_t *t = must_parse(text);
    cr_assert_eq(memcmp(ohm_topology_peer(t, 0)->key, raw, 32), 0);
    ohm_topology_destroy(&t);
}

Test(topology, edge_and_weight_errors)
{
    static const bad_case_t cases[] = {
        {P2 "edge 0 5\n", 3, "unknown peer 5"},
        {P2 "edge 7 1\n", 3, "unknown peer 7"},
        {P2 "edge 1 1\n", 3, "self-loop"},
        {P2 "edge 0 1\nedge 1 0\n", 4, "duplicate edge 0 1 (first on line 3)"},
        {P2 "edge 0 1 w=1.5\n", 3, "not in [0, 1]"},
        {P2 "edge 0 1 w=-0.1\n", 3, "not in [0, 1]"},
        {P2 "edge 0 1 w=nan\n", 3, "not in [0, 1]"},
        {P2 "edge 0 1 w=inf\n", 3, "not in [0, 1]"},
        {P2 "edge 0 1 w=abc\n", 3, "not a number"},
        {P2 "edge 0 1 w=0.5x\n", 3, "not a number"},
        {P2 "edge 0 1\nweight 0 1 2\n", 4, "not in [0, 1]"},
        {P2 "edge 0 1\nweight 0 9 0.5\n", 4, "unknown peer 9"},
        {P3 "edge 0 1\nedge 1 2\nweight 0 2 0.1\n", 6, "no edge between 0 and 2"},
        {P2 "edge 0 1\nweight 0 0 0.5\n", 4, "self weight"},
        {P2 "edge 0 1\nweight 0 1 0.5\nweight 0 1 0.4\n", 5,
         "duplicate weight 0 1 (first on line 4)"},
        {P2 "edge 0 1 w=0.2\nweight 1 0 0.5\n", 4, "already set by w= on the edge (line 3)"},
        {P3 "edge 0 1\nedge 0 2\nweight 0 1 0.7\nweight 0 2 0.6\n", 7, "sum to 1.3"},
        {P3 "edge 0 1\nedge 0 2 w=0.6\nweight 0 1 0.5\n", 6, "sum to 1.1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_bad(&cases[i]);
}

Test(topology, disconnected_graph_names_a_peer)
{
    bad_case_t c = {"peer 0 tcp://a:1\npeer 1 tcp://a:2\n# gap\npeer 2 tcp://a:3\n"
                    "peer 3 tcp://a:4\nedge 0 1\nedge 2 3\n",
                    4, "disconnected: peer 2 is not reachable from peer 0"};
    check_bad(&c);
    bad_case_t lone = {P2, 2, "peer 1 is not reachable"};
    check_bad(&lone);
}

Test(topology, attack_syntax)
{
    static const bad_case_t cases[] = {
        {"peer 0 tcp://a:1 role=byzantine attack=gauss:sigma\n", 1, "bad attack"},
        {"peer 0 tcp://a:1 role=byzantine attack=:x=1\n", 1, "bad attack"},
        {"peer 0 tcp://a:1 role=byzantine attack=a:b=1,,c=2\n", 1, "bad attack"},
        {"peer 0 tcp://a:1 role=byzantine attack=a:b=\n", 1, "bad attack"},
        {"peer 0 tcp://a:1 role=byzantine attack=a:\n", 1, "bad attack"},
        {"peer 0 tcp://a:1 role=byzantine attack=\n", 1, "bad attack"},
        {"peer 0 tcp://a:1 role=byzantine attack=a:=1\n", 1, "bad attack"},
        {"peer 0 tcp://a:1 role=byzantine attack=a$b\n", 1, "bad attack"},
        {"peer 0 tcp://a:1 attack=gaussian\n", 1, "needs role=byzantine"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_bad(&cases[i]);
    ohm_topology_t *t = must_parse("peer 0 tcp://a:1 role=byzantine attack=alie:z=1.5e-1,eps=-0.1\n"
                                   "peer 1 tcp://a:2 role=byzantine\nedge 0 1\n");
    cr_assert_str_eq(ohm_topology_peer(t, 0)->attack, "alie:z=1.5e-1,eps=-0.1");
    cr_assert_null(ohm_topology_peer(t, 1)->attack);
    cr_assert_eq(ohm_topology_byzantine_count(t), 2);
    ohm_topology_destroy(&t);
}

Test(topology, load_from_file_and_missing_file)
{
    char path[] = "/tmp/ohm-topo-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(P3 "edge 0 1\nedge 1 2\nedge 2 5\n", f);
    fclose(f);
    ohm_topology_t *t = NULL;
    cr_assert_eq(ohm_topology_load(path, &t), OHM_ENOTFOUND);
    char where[64];
    snprintf(where, sizeof where, "%s:6: ", path);
    cr_assert(strstr(ohm_error_detail(), where), "%s", ohm_error_detail());
    remove(path);
    cr_assert_eq(ohm_topology_load(path, &t), OHM_EIO);
    cr_assert(strstr(ohm_error_detail(), path));
    cr_assert_null(t);
}

/* ---- spectral gap ---- */

Test(topology, spectral_gap_ring8_metropolis)
{
    char text[1024];
    peers_text(text, sizeof text, 8);
    for (int i = 0; i < 8; i++) {
        size_t l = strlen(text);
        snprintf(text + l, sizeof text - l, "edge %d %d\n", i, (i + 1) % 8);
    }
    ohm_topology_t *t = must_parse(text);
    double expect = 1 - (1.0 / 3 + 2.0 / 3 * cos(2 * M_PI / 8));
    int est = 1;
    cr_assert_float_eq(gap_of(t, &est), expect, 1e-12);
    cr_assert_not(est);
    ohm_topology_destroy(&t);
}

Test(topology, spectral_gap_path_and_complete)
{
    char text[2048];
    peers_text(text, sizeof text, 3);
    strcat(text, "edge 0 1\nedge 1 2\n");
    ohm_topology_t *t = must_parse(text); /* eigenvalues 1, 2/3, 0 */
    cr_assert_float_eq(gap_of(t, NULL), 1.0 / 3, 1e-12);
    ohm_topology_destroy(&t);

    peers_text(text, sizeof text, 7);
    strcat(text, "weights uniform\n");
    for (int i = 0; i < 7; i++)
        for (int j = i + 1; j < 7; j++) {
            size_t l = strlen(text);
            snprintf(text + l, sizeof text - l, "edge %d %d\n", i, j);
        }
    t = must_parse(text);
    cr_assert_float_eq(gap_of(t, NULL), 1.0, 1e-12);
    ohm_topology_destroy(&t);
}

Test(topology, spectral_gap_star_uniform_is_reversible)
{
    /* Uniform weights on a star are not symmetric, but reversible: leaves keep
     * 1/2, which is the SLEM (the other eigenvalue is 1/n - 1/2). */
    char text[1024];
    peers_text(text, sizeof text, 6);
    strcat(text, "weights uniform\n");
    for (int i = 1; i < 6; i++) {
        size_t l = strlen(text);
        snprintf(text + l, sizeof text - l, "edge 0 %d\n", i);
    }
    ohm_topology_t *t = must_parse(text);
    cr_assert_not(ohm_topology_is_symmetric(t));
    int est = 1;
    cr_assert_float_eq(gap_of(t, &est), 0.5, 1e-12);
    cr_assert_not(est);
    ohm_topology_destroy(&t);
}

Test(topology, spectral_gap_non_reversible_by_power_iteration)
{
    /* A = (I + P)/2 with P the cyclic shift on 5 peers: eigenvalues
     * (1 + w^k)/2, moduli |cos(pi k / 5)|, a complex pair on top. */
    char text[1024];
    peers_text(text, sizeof text, 5);
    for (int i = 0; i < 5; i++) {
        size_t l = strlen(text);
        snprintf(text + l, sizeof text - l, "edge %d %d\nweight %d %d 0.5\nweight %d %d 0\n", i,
                 (i + 1) % 5, i, (i + 1) % 5, (i + 1) % 5, i);
    }
    ohm_topology_t *t = must_parse(text);
    int est = 0;
    cr_assert_float_eq(gap_of(t, &est), 1 - cos(M_PI / 5), 1e-8);
    cr_assert(est);
    ohm_topology_destroy(&t);

    /* A pure cyclic shift never mixes: gap 0. */
    peers_text(text, sizeof text, 3);
    strcat(text, "edge 0 1\nedge 1 2\nedge 2 0\nweight 0 1 1\nweight 1 2 1\nweight 2 0 1\n"
                 "weight 1 0 0\nweight 2 1 0\nweight 0 2 0\n");
    t = must_parse(text);
    cr_assert_float_eq(gap_of(t, NULL), 0, 1e-9);
    ohm_topology_destroy(&t);
}

Test(topology, spectral_gap_large_graph_is_estimated)
{
    /* Metropolis star on 1100 peers: spectrum {1, 1 - 1/n (n-2 times), 0},
     * so the power iteration converges at once to gap 1/n. */
    int n = 1100;
    size_t cap = (size_t)n * 64;
    char *text = malloc(cap);
    peers_text(text, cap, n);
    for (int i = 1; i < n; i++) {
        size_t l = strlen(text);
        snprintf(text + l, cap - l, "edge 0 %d\n", i);
    }
    ohm_topology_t *t = must_parse(text);
    int est = 0;
    cr_assert_float_eq(gap_of(t, &est), 1.0 / n, 1e-9);
    cr_assert(est);
    ohm_topology_destroy(&t);
    free(text);
}

/* ---- writer and digest ---- */

Test(topology, write_parse_round_trip_keeps_the_digest)
{
    char k[41], text[1024];
    z85_key(k, 77);
    snprintf(text, sizeof text,
             "weights metropolis\n"
             "peer 0 tcp://h:1 key=%s bind=tcp://*:1\n"
             "peer 1 tcp://h:2 role=byzantine attack=signflip\n"
             "peer 2 tcp://h:3 rule=median b=2\n"
             "peer 3 tcp://h:4\n"
             "edge 0 1 w=0.125\nedge 1 2\nedge 2 3\nedge 3 0\n"
             "weight 2 3 0.3333333333333333\nweight 3 2 0.1\n",
             k);
    ohm_topology_t *t = must_parse(text);
    uint64_t d = ohm_topology_digest(t);
    cr_assert_eq(round_trip_digest(t), d);
    ohm_topology_t *again = must_parse(text);
    cr_assert_eq(ohm_topology_digest(again), d);
    ohm_topology_destroy(&again);

    /* Any change of content changes the digest. */
    const char *from[] = {"w=0.125", "tcp://h:3", "b=2", "signflip", "weight 3 2 0.1"};
    const char *to[] = {"w=0.126", "tcp://h:5", "b=1", "zero", "weight 3 2 0.2"};
    for (int c = 0; c < 5; c++) {
        char alt[1024];
        const char *at = strstr(text, from[c]);
        cr_assert_not_null(at);
        size_t pre = (size_t)(at - text);
        snprintf(alt, sizeof alt, "%.*s%s%s", (int)pre, text, to[c], at + strlen(from[c]));
        ohm_topology_t *u = must_parse(alt);
        cr_assert_neq(ohm_topology_digest(u), d, "change %d kept the digest", c);
        ohm_topology_destroy(&u);
    }
    ohm_topology_destroy(&t);
}

Test(topology, digest_ignores_spelling)
{
    /* Same content, different order, comments and weight spelling. */
    ohm_topology_t *a = must_parse("peer 0 tcp://h:1\npeer 1 tcp://h:2\nedge 0 1 w=0.5\n");
    ohm_topology_t *b = must_parse("# x\npeer 1 tcp://h:2\nedge 1 0\n"
                                   "weight 0 1 0.5\nweight 1 0 0.5\npeer 0 tcp://h:1\n");
    cr_assert_eq(ohm_topology_digest(a), ohm_topology_digest(b));
    ohm_topology_destroy(&a);
    ohm_topology_destroy(&b);
}

/* ---- edits (keys, bind endpoints) ---- */

Test(topology, edit_without_changes_keeps_the_digest)
{
    char text[1024];
    snprintf(text, sizeof text,
             "weights uniform\n"
             "peer 0 tcp://h:1 bind=tcp://*:1\npeer 1 tcp://h:2 role=byzantine attack=signflip\n"
             "peer 2 tcp://h:3 rule=median b=2\npeer 3 tcp://h:4\n"
             "edge 0 1 w=0.125\nedge 1 2\nedge 2 3\nedge 3 0\n"
             "weight 2 3 0.3333333333333333\nweight 3 2 0.1\n");
    ohm_topology_t *t = must_parse(text), *u = NULL;
    cr_assert_eq(ohm_topology_edit(t, NULL, "e.topo", &u), 0, "%s", ohm_error_detail());
    cr_assert_eq(ohm_topology_digest(u), ohm_topology_digest(t));
    cr_assert_str_eq(ohm_topology_scheme(u), "uniform");
    cr_assert_float_eq(ohm_topology_weight(u, 3, 2), 0.1, 1e-17);
    ohm_topology_destroy(&u);
    ohm_topology_destroy(&t);
}

Test(topology, edit_sets_keys_and_bind)
{
    char text[512];
    peers_text(text, sizeof text, 3);
    strcat(text, "edge 0 1\nedge 1 2\nedge 2 0\n");
    ohm_topology_t *t = must_parse(text), *u = NULL;
    uint8_t keys[3][32];
    ohm_topo_edit_t ed[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 32; k++)
            keys[i][k] = (uint8_t)(31 * i + k);
        ed[i].key = keys[i];
    }
    ed[1].bind = "tcp://0.0.0.0:5001";
    cr_assert_eq(ohm_topology_edit(t, ed, "e.topo", &u), 0, "%s", ohm_error_detail());
    for (int i = 0; i < 3; i++) {
        const ohm_peer_info_t *p = ohm_topology_peer(u, (uint32_t)i);
        cr_assert(p->has_key);
        cr_assert_eq(memcmp(p->key, keys[i], 32), 0, "peer %d's key", i);
        cr_assert_str_eq(p->endpoint, ohm_topology_peer(t, (uint32_t)i)->endpoint);
        cr_assert_eq(ohm_topology_peer(t, (uint32_t)i)->has_key, 0, "the original changed");
    }
    cr_assert_null(ohm_topology_peer(u, 0)->bind);
    cr_assert_str_eq(ohm_topology_peer(u, 1)->bind, "tcp://0.0.0.0:5001");
    cr_assert_neq(ohm_topology_digest(u), ohm_topology_digest(t));
    cr_assert_eq(round_trip_digest(u), ohm_topology_digest(u));
    ohm_topology_destroy(&u);
    ohm_topology_destroy(&t);
}

Test(topology, edit_is_validated_like_a_file)
{
    char text[512];
    peers_text(text, sizeof text, 3);
    strcat(text, "edge 0 1\nedge 1 2\n");
    ohm_topology_t *t = must_parse(text), *u = NULL;
    uint8_t key[32] = {1, 2, 3};
    ohm_topo_edit_t ed[3] = {{.key = key}, {0}, {.key = key}};
    cr_assert_eq(ohm_topology_edit(t, ed, "e.topo", &u), OHM_EINVAL);
    cr_assert_null(u);
    cr_assert(strstr(ohm_error_detail(), "e.topo") && strstr(ohm_error_detail(), "same public key"),
              "detail '%s'", ohm_error_detail());
    ohm_topo_edit_t bad[3] = {{0}, {.bind = "tcp://no such host:1"}, {0}};
    cr_assert_eq(ohm_topology_edit(t, bad, "e.topo", &u), OHM_EPARSE);
    cr_assert(strstr(ohm_error_detail(), "peer 1: bad bind endpoint"), "detail '%s'",
              ohm_error_detail());
    ohm_topology_destroy(&t);
}
