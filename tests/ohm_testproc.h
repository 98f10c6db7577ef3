/* ohm_testproc: helpers for integration tests that run real ohmpeer processes
 * on loopback: scratch folders, collision-free endpoints, spawning, bounded
 * waits, and reading the peers' metrics. Every wait is bounded; processes are
 * ended by their pid only. */
#ifndef OHM_TESTPROC_H
#define OHM_TESTPROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Makes a fresh folder under /tmp into dir[cap]. */
void ohm_test_tmpdir(char *dir, size_t cap, const char *tag);

/* Removes a folder made by ohm_test_tmpdir (unless OHM_KEEP_TEST_DIRS is set). */
void ohm_test_rmdir(const char *dir);

/* A random 127.x.y.z address and a base port whose next n ports are free on it,
 * so tests running in parallel never collide. host must hold 16 bytes. */
void ohm_test_endpoints(char *host, int *port, int n);

/* Writes a generated topology (kind, n peers, optional Byzantine count and attack)
 * on fresh loopback endpoints to path. Asserts on failure. */
void ohm_test_topology(const char *path, const char *kind, int n, int byzantine, const char *attack,
                       unsigned long seed);

/* Writes a topology of n peers with fresh CURVE key pairs (files
 * keydir/peer-<id>.key and .pub, keydir made with mode 0700) on fresh loopback
 * endpoints (host[16] and the base *port returned), with the undirected edges
 * edges[nedges] (NULL: a ring). pub/sec receive the pairs when not NULL.
 * Returns 0, or -1 with the reason on stderr. */
int ohm_test_keyed_topology(const char *path, const char *keydir, int n, const int (*edges)[2],
                            int nedges, char *host, int *port, uint8_t (*pub)[32],
                            uint8_t (*sec)[32]);

/* The ohmpeer binary (from $OHMPEER, set by meson). */
const char *ohm_test_ohmpeer(void);

/* Starts argv[0] with argv, stdout+stderr appended to log. Returns the pid. */
pid_t ohm_test_spawn(char *const argv[], const char *log);

/* Starts one peer: ohmpeer run --topology T --id I --out DIR plus one "--set" per
 * assignment of the NULL-terminated list (tests without keys pass net.insecure=true). */
pid_t ohm_test_peer(const char *topo, int id, const char *out, const char *const *sets, int resume);

/* Waits up to timeout_ms for pid; returns its exit status, 128+signal if killed,
 * or -1 on timeout (the process is then SIGKILLed and reaped). */
int ohm_test_wait(pid_t pid, int timeout_ms);

/* Starts peers 0..n-1 of topo into out (pids[n]) with the settings sets. */
void ohm_test_start(const char *topo, int n, const char *out, const char *const *sets, pid_t *pids);

/* Waits for pids[n] (each within timeout_ms); shows the log of each peer that
 * did not exit 0. Returns 0, or the first bad status (its peer id in *bad
 * when bad is not NULL). */
int ohm_test_wait_all(const char *out, const pid_t *pids, int n, int timeout_ms, int *bad);

/* ohm_test_start then ohm_test_wait_all: one run of n peers. */
int ohm_test_run(const char *topo, int n, const char *out, const char *const *sets, int timeout_ms,
                 int *bad);

/* a, then b (both NULL-terminated, either may be NULL), into out[cap],
 * NULL-terminated: common settings and a test's own. */
void ohm_test_sets(const char **out, int cap, const char *const *a, const char *const *b);

/* The last line of DIR/peer-<id>.jsonl with "final":true into line[cap];
 * 0, or -1 when there is none. */
int ohm_test_final_line(const char *dir, int id, char *line, size_t cap);

/* The object of neighbour nb in a final line's "neighbours" map, e.g.
 * {"accepted":5,"missed":0,...}, into obj[cap]; 0, or -1 when absent. */
int ohm_test_neighbour(const char *line, int nb, char *obj, size_t cap);

/* The integer "key":N inside json; 0 when absent (only non-zero counters are
 * written in the drop maps). */
long ohm_test_counter(const char *json, const char *key);

/* Reads `key` as a number from the last line of DIR/peer-<id>.jsonl that has
 * "final":true. Returns 0 and *v, or -1 when absent. */
int ohm_test_final(const char *dir, int id, const char *key, double *v);

/* Same, from the last line of the file whatever it is. */
int ohm_test_last(const char *dir, int id, const char *key, double *v);

/* The effective weights a peer checkpointed (DIR/peer-<id>.ckpt, section "params"):
 * a malloc'd array of *n floats (caller frees), or NULL with the reason on stderr. */
float *ohm_test_params(const char *dir, int id, size_t *n);

/* The whole file as a malloc'd NUL-terminated string (caller frees), or NULL. */
char *ohm_test_slurp(const char *path);

/* 1 if the file exists and contains needle. */
int ohm_test_file_has(const char *path, const char *needle);

/* Prints the last lines of a peer's log (for failing tests). */
void ohm_test_show_log(const char *dir, int id);

#endif
