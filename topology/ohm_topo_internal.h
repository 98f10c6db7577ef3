/* ohm_topo_internal: the representation of a topology, shared by the files of
 * topology/ (builder, parser and writer, spectral computation, accessors).
 * Not installed; not for other areas, which use ohm_topology.h.
 *
 * Storage is a CSR adjacency (neighbours ascending) with one weight per slot,
 * so a 4096-peer complete graph costs ~200 MB rather than a dense N x N matrix
 * per query; the spectral gap builds a dense matrix only when it is small. */
#ifndef OHM_TOPO_INTERNAL_H
#define OHM_TOPO_INTERNAL_H

#include "ohm_topology.h"

enum { OHM_TOPO_SCHEME_METROPOLIS = 0, OHM_TOPO_SCHEME_UNIFORM = 1 };

struct ohm_topology {
    int n;
    ohm_peer_info_t *peers;
    size_t n_edges;
    uint32_t *off;  /* n + 1 row offsets into adj/w/expl */
    uint32_t *adj;  /* neighbours of each peer, ascending */
    double *w;      /* a_ij for each adj slot */
    uint8_t *expl;  /* 1 where a_ij came from the file (edge w= or weight) */
    double *self_w; /* a_ii */
    int scheme;
    int scheme_given;      /* the file had a `weights` line: the writer keeps it */
    int doubly_stochastic; /* every column sums to 1 (found when built) */
};

/* Slot of j in row i of the CSR adjacency, or -1 when i and j are not adjacent. */
long ohm_topo_find_slot(const ohm_topology_t *t, uint32_t i, uint32_t j);

/* Frees the strings of one peer record and zeroes it. */
void ohm_topo_peer_info_free(ohm_peer_info_t *p);

/* How ohm_topo_sym_extremes finds eigenvalues. */
typedef enum { OHM_TOPO_EIG_BUILTIN, OHM_TOPO_EIG_LAPACK } ohm_topo_eig_t;

/* 1 when the build found LAPACKE (OHM_TOPO_EIG_LAPACK is available). */
int ohm_topo_have_lapack(void);

/* Smallest and largest eigenvalue of the symmetric n x n matrix a (destroyed).
 * Errors: OHM_ENOMEM, OHM_ERANGE (LAPACK failed), OHM_EUNSUPPORTED (LAPACK
 * asked for but not built in). */
int ohm_topo_sym_extremes(double *a, int n, ohm_topo_eig_t method, double *lmin, double *lmax);

/* ohm_topology_spectral_gap with a chosen eigenvalue method (tests compare them). */
int ohm_topo_spectral_gap_with(const ohm_topology_t *t, ohm_topo_eig_t method, ohm_topo_gap_t *out);

#endif
