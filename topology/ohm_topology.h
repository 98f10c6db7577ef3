/* ohm_topology: who the peers are, where they listen, which keys they hold,
 * who talks to whom, and with which combination weights.
 *
 * File format (human-writable text, one declaration per line):
 *
 *   peer ID ENDPOINT [key=Z85PUB] [role=byzantine|honest] [attack=NAME[:k=v,...]]
 *                    [rule=NAME] [b=N] [bind=ENDPOINT]
 *   edge I J [w=WEIGHT]          undirected edge; w sets a_IJ = a_JI explicitly
 *   weights metropolis|uniform   default scheme for entries not set explicitly (metropolis)
 *   weight I J VALUE             explicit directed weight a_IJ: what I gives to J's model
 *
 * Tokens are separated by blanks; a token starting with '#' starts a comment
 * that runs to the end of the line (a '#' inside a token is data: Z85 keys use it).
 * ENDPOINT is tcp://HOST:PORT, HOST a name, dotted IPv4 or [IPv6], PORT 1..65535
 * (bind= also accepts the wildcard host '*'). Keys are 40 Z85 characters.
 * attack= needs role=byzantine. Declarations may come in any order.
 *
 * Peer ids are 0..N-1, each declared once. Combination weights: entries given
 * explicitly (edge w=, weight) are kept, the scheme fills the other edges
 * (metropolis: a_ij = 1/max(d_i+1, d_j+1); uniform: a_ij = 1/(d_i+1)), and the
 * self weight takes the remainder 1 - sum, which must not be negative (1e-9
 * tolerance), so every row sums to 1 with non-negative entries. Errors
 * (duplicate ids, unknown peers in edges, self-loops, bad endpoints, keys,
 * disconnected graphs, bad rows) name FILE:LINE in the error detail. */
#ifndef OHM_TOPOLOGY_H
#define OHM_TOPOLOGY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define OHM_TOPO_MAX_PEERS 4096
/* Longest accepted line (bytes, without the newline). */
#define OHM_TOPO_MAX_LINE 4096
/* Most undirected edges (the complete graph on OHM_TOPO_MAX_PEERS fits). */
#define OHM_TOPO_MAX_EDGES (1u << 23)

typedef struct ohm_topology ohm_topology_t;

typedef struct {
    uint32_t id;
    const char *endpoint; /* tcp://host:port others connect to */
    const char *bind;     /* endpoint to bind (NULL: the same as endpoint) */
    int has_key;
    uint8_t key[32];    /* CURVE public key when has_key */
    int byzantine;      /* role=byzantine */
    const char *attack; /* attack spec "name[:k=v,...]" or NULL */
    const char *rule;   /* per-peer rule override or NULL */
    int b;              /* per-peer b override, -1 if none */
} ohm_peer_info_t;

/* Parses and validates a topology file. Caller owns *out. Errors: OHM_EIO,
 * OHM_EPARSE / OHM_EINVAL / OHM_ERANGE / OHM_ENOTFOUND / OHM_ETOOBIG with
 * "FILE:LINE: reason" in the detail. */
int ohm_topology_load(const char *path, ohm_topology_t **out);

/* Same from memory (need not be NUL-terminated; a NUL byte is an error);
 * `name` stands for the file name in errors. */
int ohm_topology_parse(const char *text, size_t len, const char *name, ohm_topology_t **out);

/* Frees; NULL-safe; clears the caller's pointer. */
void ohm_topology_destroy(ohm_topology_t **t);

int ohm_topology_size(const ohm_topology_t *t);

/* Number of undirected edges. */
size_t ohm_topology_edge_count(const ohm_topology_t *t);

/* Peer `id` (< size). The pointers live as long as the topology. */
const ohm_peer_info_t *ohm_topology_peer(const ohm_topology_t *t, uint32_t id);

/* Neighbours of `id` (excluding itself), ascending; returns their count and sets *ids. */
int ohm_topology_neighbors(const ohm_topology_t *t, uint32_t id, const uint32_t **ids);

/* Combination weight a_ij: what peer i gives to j's model (0 if not adjacent;
 * a_ii is the self weight). */
double ohm_topology_weight(const ohm_topology_t *t, uint32_t i, uint32_t j);

/* The default scheme's name: "metropolis" or "uniform". */
const char *ohm_topology_scheme(const ohm_topology_t *t);

/* 1 if a_ij == a_ji for all pairs (up to 1e-12); rows always sum to 1, so a
 * symmetric matrix is doubly stochastic. */
int ohm_topology_is_symmetric(const ohm_topology_t *t);

/* 1 if every column also sums to 1 (up to 1e-9). */
int ohm_topology_is_doubly_stochastic(const ohm_topology_t *t);

/* Number of Byzantine peers, and of Byzantine neighbours of `id`. */
int ohm_topology_byzantine_count(const ohm_topology_t *t);
int ohm_topology_byzantine_neighbors(const ohm_topology_t *t, uint32_t id);

#define OHM_TOPO_DENSE_MAX 1024

/* The spectral gap of the combination weights, and how it was found. */
typedef struct {
    double gap;         /* 1 - |lambda_2|, in [0, 1]; 1 for a single peer */
    int estimate;       /* 1: a power-iteration estimate, 0: exact */
    const char *method; /* static text: "LAPACK dsyevr", "power iteration", ... */
} ohm_topo_gap_t;

/* Spectral gap 1 - |lambda_2| of the weight matrix A (|lambda_2|: the second
 * largest eigenvalue modulus, the eigenvalue 1 of the consensus direction
 * removed once). Exact (dense symmetric eigenvalues, by LAPACK when built in)
 * when A is reversible (pi_i a_ij = pi_j a_ji for some pi > 0: every symmetric
 * A, Metropolis and uniform weights) and N <= OHM_TOPO_DENSE_MAX; otherwise a
 * power-iteration estimate. Errors: OHM_ENOMEM (the dense matrix of up to
 * 1024 x 1024 doubles), OHM_ERANGE (LAPACK reported a failure). */
int ohm_topology_spectral_gap(const ohm_topology_t *t, ohm_topo_gap_t *out);

/* Writes the topology in the file format (loadable by ohm_topology_parse; the
 * digest survives the round trip). Errors: OHM_EIO. */
int ohm_topology_write(const ohm_topology_t *t, FILE *f);

/* A stable 64-bit digest of the topology's content (ids, endpoints, keys,
 * roles, edges, weights), independent of how the file spelled it. */
uint64_t ohm_topology_digest(const ohm_topology_t *t);

/* What ohm_topology_edit changes of one peer; NULL fields keep the original. */
typedef struct {
    const uint8_t *key; /* new CURVE public key (32 bytes) */
    const char *bind;   /* new bind endpoint, tcp://HOST:PORT */
} ohm_topo_edit_t;

/* A copy of t whose peers' keys and bind endpoints are replaced as edits[id]
 * says (edits: NULL or one entry per peer), checked like a parsed file (a key
 * held by two peers, a bad bind endpoint are errors); `name` prefixes error
 * details. Caller owns *out. Errors: those of ohm_topology_parse. */
int ohm_topology_edit(const ohm_topology_t *t, const ohm_topo_edit_t *edits, const char *name,
                      ohm_topology_t **out);

/* Generators. */
typedef struct {
    const char *kind; /* ring, torus, complete, er, exp, star, clusters */
    int n;            /* peers */
    uint64_t seed;
    double p;           /* er: edge probability */
    int byzantine;      /* how many peers to mark byzantine (spread by the seed) */
    const char *attack; /* attack spec for them, or NULL */
    const char *host;   /* default "127.0.0.1" */
    int port;    /* first port (0: 27000); peer i listens on port + i (per host with hosts) */
    int n_hosts; /* hosts for placement (0: host) */
    const char *const *hosts;
    const char *weights; /* "metropolis" (NULL) or "uniform" */
    int tasks_per_node;  /* with hosts: 0 round-robin (peer i on host i % H); K > 0 block
                            placement (peers iK..iK+K-1 on host i, SLURM block) */
} ohm_topogen_t;

/* Builds a connected topology of the given kind. Caller owns *out. Errors:
 * OHM_EINVAL (unknown kind, bad n/p/byzantine/attack, torus n prime, too few
 * hosts), OHM_ERANGE (port past 65535, er found no connected graph). */
int ohm_topology_generate(const ohm_topogen_t *g, ohm_topology_t **out);

/* Expands a SLURM node list ("node[01-03,07],gpu5" -> node01 node02 node03
 * node07 gpu5; several bracket groups multiply out, zero padding follows the
 * lower bound). Caller owns *hosts (free with ohm_topogen_free_hosts).
 * Errors: OHM_EPARSE (syntax), OHM_ETOOBIG (more than OHM_TOPO_MAX_PEERS names). */
int ohm_topogen_expand_nodelist(const char *list, char ***hosts, int *n);

/* Reads a hosts file: one host per line, '#' comments, blank lines skipped.
 * Caller owns *hosts. Errors: OHM_EIO, OHM_EPARSE (two words on a line), OHM_ETOOBIG. */
int ohm_topogen_read_hosts(const char *path, char ***hosts, int *n);

/* Frees a host list from the two functions above; NULL-safe; clears *hosts. */
void ohm_topogen_free_hosts(char ***hosts, int n);

/* Where Linux keeps the range of local ports it picks for outgoing connections. */
#define OHM_EPHEMERAL_RANGE_FILE "/proc/sys/net/ipv4/ip_local_port_range"

/* Reads that range ("LO HI") from path. Errors: OHM_EIO (no such file: not
 * Linux, or a sandbox), OHM_EPARSE. A port inside it may be taken by any
 * outgoing connection of the machine (a peer's own links among them) before
 * the peer that owns it binds it. */
int ohm_topogen_ephemeral_range(const char *path, int *lo, int *hi);

/* The ports generated for g (its port, or the default when 0): first and last. */
void ohm_topogen_port_span(const ohm_topogen_t *g, int *first, int *last);

/* A first port for `count` consecutive ports clear of [lo, hi]: the default
 * 27000 when its span is clear, else the highest start whose span ends below
 * lo (not under 1024), else the port after hi; 0 when none fits. */
int ohm_topogen_safe_port(int count, int lo, int hi);

#endif
