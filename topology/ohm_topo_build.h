/* ohm_topo_build: the one path by which a topology comes to exist (internal to
 * topology/). The file parser and the generators both feed declarations into
 * a builder and call finish, so generated and parsed topologies obey exactly
 * the same checks and weight rules. Not installed; not for other areas. */
#ifndef OHM_TOPO_BUILD_H
#define OHM_TOPO_BUILD_H

#include "ohm_topology.h"

typedef struct ohm_topo_build ohm_topo_build_t;

/* A new builder; `name` prefixes every error detail ("NAME:LINE: ..."; just
 * "NAME: ..." for line 0). Caller owns *out. Errors: OHM_ENOMEM. */
int ohm_topo_build_new(const char *name, ohm_topo_build_t **out);

/* Frees; NULL-safe; clears the caller's pointer. */
void ohm_topo_build_destroy(ohm_topo_build_t **b);

/* Declares peer p->id (strings are copied). Validates the endpoints, the
 * attack and rule syntax, duplicates of the id. Errors: OHM_EPARSE, OHM_EINVAL,
 * OHM_ETOOBIG. */
int ohm_topo_build_peer(ohm_topo_build_t *b, const ohm_peer_info_t *p, int line);

/* Undirected edge i-j; with has_w, a_ij = a_ji = w. Errors: OHM_EINVAL
 * (self-loop, w outside [0,1]), OHM_ETOOBIG. Unknown ids are found by finish. */
int ohm_topo_build_edge(ohm_topo_build_t *b, uint32_t i, uint32_t j, int has_w, double w, int line);

/* Explicit directed weight a_ij = v. Errors as for edges. */
int ohm_topo_build_weight(ohm_topo_build_t *b, uint32_t i, uint32_t j, double v, int line);

/* Default scheme "metropolis" or "uniform" (once). Errors: OHM_EPARSE, OHM_EINVAL. */
int ohm_topo_build_scheme(ohm_topo_build_t *b, const char *scheme, int line);

/* Cross-checks everything, computes the weights and returns the topology;
 * `end_line` is named by whole-file errors (no peers). Consumes and clears *b
 * whatever the outcome. Caller owns *out. */
int ohm_topo_build_finish(ohm_topo_build_t **b, int end_line, ohm_topology_t **out);

/* Sets the error detail "NAME:LINE: reason" ("NAME: reason" for line 0) and
 * returns code: the parser's errors name the file as the builder's do. */
int ohm_topo_build_error(const ohm_topo_build_t *b, int line, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Syntax check of an attack spec "name[:k=v,...]"; 0 if fine, else writes why. */
int ohm_topo_check_attack(const char *spec, char *why, size_t whylen);

#endif
