/* ohm_topology: who the peers are, where they listen, which keys they hold,
 * who talks to whom, and with which combination weights.
 *
 * File format (human-writable text, one declaration per line, '#' comments):
 *
 *   peer ID ENDPOINT [key=Z85PUB] [role=byzantine] [attack=NAME[:k=v,...]]
 *                    [rule=NAME] [b=N] [bind=ENDPOINT]
 *   edge I J [w=WEIGHT]          undirected edge; w sets a_IJ = a_JI explicitly
 *   weights metropolis|uniform   default scheme for edges without w (metropolis)
 *   weight I J VALUE             explicit directed weight a_IJ: what I gives to J's model
 *
 * Peer ids are 0..N-1, each declared once. Self weights are 1 - sum of the
 * others; every row must sum to 1 (checked) with non-negative entries.
 * Errors (duplicate ids, unknown peers in edges, self-loops, bad endpoints,
 * disconnected graphs, bad rows) name FILE:LINE in the error detail. */
#ifndef OHM_TOPOLOGY_H
#define OHM_TOPOLOGY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define OHM_TOPO_MAX_PEERS 4096

typedef struct ohm_topology ohm_topology_t;

typedef struct {
    uint32_t id;
    const char *endpoint;   /* tcp://host:port others connect to */
    const char *bind;       /* endpoint to bind (NULL: the same as endpoint) */
    int has_key;
    uint8_t key[32];        /* CURVE public key when has_key */
    int byzantine;          /* role=byzantine */
    const char *attack;     /* attack spec "name[:k=v,...]" or NULL */
    const char *rule;       /* per-peer rule override or NULL */
    int b;                  /* per-peer b override, -1 if none */
} ohm_peer_info_t;

/* Parses and validates a topology file. Caller owns *out. Errors: OHM_EIO,
 * OHM_EPARSE / OHM_EINVAL with "FILE:LINE: reason" in the detail. */
int ohm_topology_load(const char *path, ohm_topology_t **out);

/* Same from memory; `name` stands for the file name in errors. */
int ohm_topology_parse(const char *text, size_t len, const char *name, ohm_topology_t **out);

/* Frees; NULL-safe; clears the caller's pointer. */
void ohm_topology_destroy(ohm_topology_t **t);

int ohm_topology_size(const ohm_topology_t *t);

/* Peer `id` (< size). The pointers live as long as the topology. */
const ohm_peer_info_t *ohm_topology_peer(const ohm_topology_t *t, uint32_t id);

/* Neighbours of `id` (excluding itself), ascending; returns their count and sets *ids. */
int ohm_topology_neighbors(const ohm_topology_t *t, uint32_t id, const uint32_t **ids);

/* Combination weight a_ij: what peer i gives to j's model (0 if not adjacent). */
double ohm_topology_weight(const ohm_topology_t *t, uint32_t i, uint32_t j);

/* Number of Byzantine peers, and of Byzantine neighbours of `id`. */
int ohm_topology_byzantine_count(const ohm_topology_t *t);
int ohm_topology_byzantine_neighbors(const ohm_topology_t *t, uint32_t id);

/* Spectral gap 1 - |lambda_2| of the weight matrix (second largest eigenvalue modulus). */
double ohm_topology_spectral_gap(const ohm_topology_t *t);

/* Writes the topology in the file format (loadable by ohm_topology_parse). */
int ohm_topology_write(const ohm_topology_t *t, FILE *f);

/* A stable 64-bit digest of the topology's content (ids, endpoints, keys, edges, weights). */
uint64_t ohm_topology_digest(const ohm_topology_t *t);

/* Generators. */
typedef struct {
    const char *kind;   /* ring, torus, complete, er, exp, star, clusters */
    int n;              /* peers */
    uint64_t seed;
    double p;           /* er: edge probability */
    int byzantine;      /* how many peers to mark byzantine (spread by the seed) */
    const char *attack; /* attack spec for them, or NULL */
    const char *host;   /* default "127.0.0.1" */
    int port;           /* first port; peer i listens on port + i (per host with hosts) */
    int n_hosts;        /* hosts for round-robin placement (0: host) */
    const char *const *hosts;
} ohm_topogen_t;

/* Builds a connected topology of the given kind. Caller owns *out. Errors:
 * OHM_EINVAL (unknown kind, bad n/p, torus n not a product), OHM_ERANGE. */
int ohm_topology_generate(const ohm_topogen_t *g, ohm_topology_t **out);

#endif
