/* Integration: crashes and restarts. A peer of an 8-peer ring is SIGKILLed
 * mid-run and restarted with --resume: it continues from its checkpoint,
 * catches up with its neighbours, nobody stalls, and the run ends as well as
 * an undisturbed one. A peer killed at random moments while it checkpoints
 * every round always leaves a readable checkpoint (or none), never a torn one. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
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
#include "ohm_testproc.h"

#define N 8
#define VICTIM 3
#define ROUNDS 2000    /* long enough that the restart is a small part of it at any speed */
#define KILL_AFTER 100 /* the victim is killed once its metrics show this round */
/* Peers wait for each other during a start-up window (neighbours may be held
 * in their own barriers); the kill comes after it, as in a long run. */
#define STARTUP_MS 1000
#define KILL_AFTER_S 2.5

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* DIR/ring.topo: an n-peer ring on fresh loopback endpoints with CURVE keys in DIR/keys. */
static void write_ring(const char *dir, int n)
{
    char host[16], path[512], keys[512];
    int port;
    snprintf(path, sizeof path, "%s/ring.topo", dir);
    snprintf(keys, sizeof keys, "%s/keys", dir);
    cr_assert_eq(ohm_test_keyed_topology(path, keys, n, NULL, 0, host, &port, NULL, NULL), 0);
}

#define STR_(x) #x
#define STR(x) STR_(x)
static const char *const ring_sets[] = {"data.name=synthetic",
                                        "data.dim=128",
                                        "data.classes=4",
                                        "data.noise=1.0",
                                        "model.hidden=128",
                                        "optimizer.lr=0.1",
                                        "optimizer.batch=32",
                                        "train.local_steps=4", /* rounds of a few ms */
                                        "train.rounds=" STR(ROUNDS),
                                        "train.eval_every=10",
                                        "train.checkpoint_every=10",
                                        "train.seed=11",
                                        "net.insecure=false",
                                        "net.round_timeout_ms=1000",
                                        "net.startup_timeout_ms=" STR(STARTUP_MS),
                                        NULL};

/* Waits for every peer (bounded), asserts a clean finish at the last round,
 * and returns the mean final accuracy. */
static double finish_all(const char *out, const pid_t *pids)
{
    double sum = 0;
    for (int i = 0; i < N; i++) {
        int st = ohm_test_wait(pids[i], 120000);
        if (st != 0) ohm_test_show_log(out, i);
        cr_assert_eq(st, 0, "peer %d exit status %d", i, st);
    }
    for (int i = 0; i < N; i++) {
        double acc = 0, round = 0;
        cr_assert_eq(ohm_test_final(out, i, "test_acc", &acc), 0, "peer %d: no final line", i);
        cr_assert_eq(ohm_test_final(out, i, "round", &round), 0);
        cr_expect_eq((int)round, ROUNDS, "peer %d ended at round %g", i, round);
        sum += acc;
    }
    return sum / N;
}

/* Whether a peer's log holds `text`. */
/* How many lines of peer id's log contain text. */
static int log_count(const char *out, int id, const char *text)
{
    char path[512], line[1024];
    snprintf(path, sizeof path, "%s/peer-%d.log", out, id);
    FILE *f = fopen(path, "r");
    int found = 0;
    while (f && fgets(line, sizeof line, f))
        found += strstr(line, text) != NULL;
    if (f) fclose(f);
    return found;
}

static int log_has(const char *out, int id, const char *text)
{
    return log_count(out, id, text) > 0;
}

/* "accepted" and "missed" of neighbour nb in peer id's final line, and the
 * rounds peer id skipped catching up. */
static int neighbour_counts(const char *out, int id, int nb, long *accepted, long *missed,
                            long *skipped)
{
    double s = -1;
    char line[16384], obj[1024];
    if (ohm_test_final(out, id, "rounds_skipped", &s) ||
        ohm_test_final_line(out, id, line, sizeof line) ||
        ohm_test_neighbour(line, nb, obj, sizeof obj))
        return -1;
    *skipped = (long)s;
    *accepted = ohm_test_counter(obj, "accepted");
    *missed = ohm_test_counter(obj, "missed");
    return 0;
}

Test(peer_crash, killed_peer_resumes_and_the_ring_finishes, .timeout = 300)
{
    char dir[128], topo[256], calm[256], hurt[256];
    ohm_test_tmpdir(dir, sizeof dir, "crash");
    write_ring(dir, N);
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    snprintf(calm, sizeof calm, "%s/undisturbed", dir);
    snprintf(hurt, sizeof hurt, "%s/killed", dir);
    mkdir(calm, 0755);
    mkdir(hurt, 0755);
    pid_t pids[N];

    for (int i = 0; i < N; i++)
        pids[i] = ohm_test_peer(topo, i, calm, ring_sets, 0);
    double acc_calm = finish_all(calm, pids);

    for (int i = 0; i < N; i++)
        pids[i] = ohm_test_peer(topo, i, hurt, ring_sets, 0);
    double round = 0, wall = 0, t0 = mono_s();
    while (mono_s() - t0 < 90) {
        if (ohm_test_last(hurt, VICTIM, "round", &round) == 0 && round >= KILL_AFTER &&
            ohm_test_last(hurt, VICTIM, "wall_s", &wall) == 0 && wall >= KILL_AFTER_S)
            break;
        usleep(20000);
    }
    cr_assert(round >= KILL_AFTER && wall >= KILL_AFTER_S,
              "peer %d never reached round %d after %.1f s", VICTIM, KILL_AFTER, KILL_AFTER_S);
    cr_assert_eq(kill(pids[VICTIM], SIGKILL), 0);
    int st;
    cr_assert_eq(waitpid(pids[VICTIM], &st, 0), pids[VICTIM]);
    cr_assert(WIFSIGNALED(st));
    /* Down for a while: its neighbours pass a deadline and go on without it. */
    double others = 0;
    for (t0 = mono_s(); mono_s() - t0 < 30 && others < round + 30; usleep(20000))
        ohm_test_last(hurt, VICTIM + 1, "round", &others);
    cr_assert_geq(others, round + 30, "the neighbours did not go on without the victim");
    pids[VICTIM] = ohm_test_peer(topo, VICTIM, hurt, ring_sets, 1);
    double acc_hurt = finish_all(hurt, pids);

    cr_log_info("honest mean accuracy: undisturbed %.4f, with peer %d killed at round >= %g "
                "(neighbour at %g when it restarted) and resumed: %.4f",
                acc_calm, VICTIM, round, others, acc_hurt);
    cr_expect(fabs(acc_hurt - acc_calm) <= 0.02, "accuracy %.4f vs %.4f undisturbed", acc_hurt,
              acc_calm);
    cr_expect(log_has(hurt, VICTIM, "resumed from"), "the victim did not resume");
    /* In one step, to a round its neighbours proved (the models they queued
     * for it while it was away are taken first, not believed one by one); a
     * second step when they moved on again before its first round back was
     * done (seen in about one sanitizer run in seven, which slows that
     * round). Crawling through the rounds it missed would take dozens. */
    int steps = log_count(hurt, VICTIM, "catching up");
    cr_expect(steps >= 1 && steps <= 2, "the victim caught up in %d steps, not one or two", steps);
    /* Its neighbours account for every round: the victim's model was delivered
     * or missed, or they skipped the round themselves catching up. */
    for (int nb = VICTIM - 1; nb <= VICTIM + 1; nb += 2) {
        long acc = -1, miss = -1, skip = -1;
        cr_assert_eq(neighbour_counts(hurt, nb, VICTIM, &acc, &miss, &skip), 0);
        cr_log_info("peer %d's record of the victim: %ld accepted, %ld missed, %ld skipped", nb,
                    acc, miss, skip);
        cr_expect_gt(miss, 0, "peer %d never missed the victim", nb);
        /* It rejoined: the rounds it was away are a fraction of those after the kill. */
        cr_expect_gt(acc, round + (ROUNDS - round) / 2, "peer %d: %ld accepted from the victim", nb,
                     acc);
        cr_expect_leq(skip, 10, "peer %d skipped %ld rounds", nb, skip);
        cr_expect_eq(acc + miss + skip, ROUNDS, "peer %d: %ld accepted + %ld missed + %ld skipped",
                     nb, acc, miss, skip);
    }
    ohm_test_rmdir(dir);
}

/* ---- killed inside the start-up window ------------------------------------- */

/* During the start-up window a neighbour that said hello is waited for as long
 * as the window lasts (it may be held by its own barrier). One that dies there
 * must not hold the others until the window ends: its dropped connection is
 * reported by the transport, and they stop waiting for it at once. */
#define EARLY_ROUNDS 300
Test(peer_crash, killed_in_the_startup_window_does_not_hold_the_others, .timeout = 180)
{
    enum { WINDOW_S = 40 };
    char dir[128], topo[256];
    ohm_test_tmpdir(dir, sizeof dir, "crash-early");
    write_ring(dir, N);
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    const char *sets[] = {"data.name=synthetic",
                          "data.dim=16",
                          "data.classes=4",
                          "model.hidden=16",
                          "train.rounds=" STR(EARLY_ROUNDS),
                          "train.eval_every=5",
                          "train.checkpoint_every=0",
                          "net.round_timeout_ms=5000",
                          "net.startup_timeout_ms=40000",
                          NULL};
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = ohm_test_peer(topo, i, dir, sets, 0);
    double round = 0, t0 = mono_s();
    while (mono_s() - t0 < 20 && !(ohm_test_last(dir, VICTIM, "round", &round) == 0 && round >= 20))
        usleep(20000);
    cr_assert_geq(round, 20, "peer %d never reached round 20", VICTIM);
    cr_assert_eq(kill(pids[VICTIM], SIGKILL), 0);
    double t_kill = mono_s();
    int st;
    cr_assert_eq(waitpid(pids[VICTIM], &st, 0), pids[VICTIM]);
    for (int i = 0; i < N; i++) {
        if (i == VICTIM) continue;
        st = ohm_test_wait(pids[i], 120000);
        if (st != 0) ohm_test_show_log(dir, i);
        cr_assert_eq(st, 0, "peer %d exit status %d", i, st);
        double r = 0;
        cr_assert_eq(ohm_test_final(dir, i, "round", &r), 0);
        cr_expect_eq((int)r, EARLY_ROUNDS, "peer %d ended at round %g", i, r);
    }
    double after = mono_s() - t_kill, since_start = mono_s() - t0;
    cr_log_info("peer %d killed at round %g, %.1f s into a %d s start-up window; the others "
                "finished %d rounds %.1f s after the kill",
                VICTIM, round, t_kill - t0, WINDOW_S, EARLY_ROUNDS, after);
    /* Held until the window's end they would finish after it, 40 s from the start. */
    cr_expect_lt(since_start, WINDOW_S - 10, "the others finished %.1f s after the start",
                 since_start);
    for (int nb = VICTIM - 1; nb <= VICTIM + 1; nb += 2)
        cr_expect(log_has(dir, nb, "link to " STR(VICTIM) " lost"),
                  "peer %d did not see its link to %d drop", nb, VICTIM);
    ohm_test_rmdir(dir);
}

/* ---- kill while checkpointing --------------------------------------------- */

#define CK_DIM 784
#define CK_HIDDEN 512
#define CK_CLASSES 10
#define CK_PARAMS                                                                                  \
    ((size_t)CK_DIM * CK_HIDDEN + CK_HIDDEN + (size_t)CK_HIDDEN * CK_CLASSES + CK_CLASSES)

/* Number of entries in dir whose name starts with prefix. */
static int count_prefixed(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    cr_assert(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

/* Reads and checks DIR/peer-0.ckpt: 1 when valid (round in *next), 0 when absent. */
static int check_ckpt(const char *dir, uint32_t *next)
{
    char path[512];
    snprintf(path, sizeof path, "%s/peer-0.ckpt", dir);
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    ohm_ckpt_t *ck = NULL;
    int rc = ohm_ckpt_read(path, &ck);
    cr_assert_eq(rc, 0, "torn checkpoint (%zu bytes): %s", (size_t)sb.st_size, ohm_error_detail());
    const void *d;
    size_t len;
    cr_assert_eq(ohm_ckpt_get(ck, "params", &d, &len), 0);
    cr_assert_eq(len, sizeof(float) * CK_PARAMS);
    cr_assert_eq(ohm_ckpt_get(ck, "round", &d, &len), 0);
    cr_assert_eq(len, sizeof *next);
    memcpy(next, d, sizeof *next);
    ohm_ckpt_destroy(&ck);
    return 1;
}

Test(peer_crash, checkpoint_survives_a_kill_during_its_write, .timeout = 120)
{
    char dir[128], topo[256], host[16];
    int port;
    ohm_test_tmpdir(dir, sizeof dir, "ckptkill");
    ohm_test_endpoints(host, &port, 1);
    snprintf(topo, sizeof topo, "%s/one.topo", dir);
    FILE *f = fopen(topo, "w");
    cr_assert(f);
    fprintf(f, "# a single peer: no neighbours, nothing to wait for\npeer 0 tcp://%s:%d\n", host,
            port);
    fclose(f);
    const char *sets[] = {
        "data.name=synthetic",      "data.dim=" STR(CK_DIM), "data.classes=" STR(CK_CLASSES),
        "data.train_size=2000",     "data.test_size=200",    "model.hidden=" STR(CK_HIDDEN),
        "optimizer.batch=8",        "train.rounds=1000000",  "train.eval_every=1000000",
        "train.checkpoint_every=1", "net.insecure=true",     NULL};
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    int tries = 0, present = 0, torn_writes = 0;
    uint32_t next = 0, last_next = 0;
    double t0 = mono_s();
    /* Bounded in count and in time; each try lives at most ~1.5 s. */
    while (tries < 20 && mono_s() - t0 < 45) {
        pid_t pid = ohm_test_peer(topo, 0, dir, sets, tries % 2);
        usleep(300000 + (useconds_t)(rand_r(&seed) % 1200000));
        kill(pid, SIGKILL);
        int st = ohm_test_wait(pid, 5000);
        tries++;
        if (st != 128 + SIGKILL) ohm_test_show_log(dir, 0); /* it ended by itself: why? */
        /* A killed write leaves its temporary file behind; the checkpoint
         * itself is the old one or the new one, whole. */
        torn_writes += count_prefixed(dir, "peer-0.ckpt.tmp.") > 0;
        if (check_ckpt(dir, &next)) {
            present++;
            last_next = next;
        }
    }
    cr_log_info("%d kills (seed %u): checkpoint present and valid after %d, temporary files left "
                "after %d, last at round %u",
                tries, seed, present, torn_writes, last_next);
    cr_assert_gt(present, 0, "no checkpoint was ever written");

    /* Resume from what the last kill left and finish three rounds later. */
    char rounds[64];
    snprintf(rounds, sizeof rounds, "train.rounds=%u", last_next + 3);
    const char *resume_sets[16];
    int n = 0;
    for (int i = 0; sets[i]; i++)
        resume_sets[n++] = sets[i];
    resume_sets[n++] = rounds;
    resume_sets[n] = NULL;
    pid_t pid = ohm_test_peer(topo, 0, dir, resume_sets, 1);
    int st = ohm_test_wait(pid, 30000);
    if (st != 0) ohm_test_show_log(dir, 0);
    cr_assert_eq(st, 0, "resumed peer exit status %d", st);
    double round = 0;
    cr_assert_eq(ohm_test_final(dir, 0, "round", &round), 0);
    cr_expect_eq((uint32_t)round, last_next + 3);
    cr_expect(log_has(dir, 0, "resumed from"));
    cr_assert_eq(check_ckpt(dir, &next), 1);
    cr_expect_eq(next, last_next + 3);
    /* A clean run leaves no temporary file behind, its own or a killed one's. */
    cr_expect_eq(count_prefixed(dir, "peer-0.ckpt.tmp."), 0, "temporary checkpoint files left");
    ohm_test_rmdir(dir);
}
