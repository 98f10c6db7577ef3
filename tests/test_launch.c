/* Integration: the launcher (ohm-launch) locally and over ssh, from the build
 * tree and installed, what it reports when a peer fails (also after a
 * restart), the tools it asks (ohmpeer config --get, ohmtopo show --json and
 * edit), the errors a peer gives for a taken port or an unknown host, and the
 * SLURM topology recipe. The ssh tests start a private sshd on a random loopback port with
 * its own host key and an authorized_keys file in a scratch folder; they are
 * skipped when sshd is not installed or cannot start. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ohm_testproc.h"

#define SSHD "/usr/sbin/sshd"

/* ---- small helpers ------------------------------------------------------- */

/* The number after "key": in a JSON text, or NAN. */
static double json_number(const char *text, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = text ? strstr(text, pat) : NULL;
    if (!p) return NAN;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    char *end;
    double v = strtod(p, &end);
    return end == p ? NAN : v;
}

static const char *launcher(void)
{
    const char *l = getenv("OHM_LAUNCH");
    return l ? l : "build/peer/ohm-launch";
}

static const char *ohmtopo(void)
{
    const char *t = getenv("OHMTOPO");
    return t ? t : "build/topology/ohmtopo";
}

/* An absolute ohmpeer path: the remote side starts in the home folder. */
static const char *ohmpeer_abs(void)
{
    static char path[PATH_MAX];
    if (!realpath(ohm_test_ohmpeer(), path)) snprintf(path, sizeof path, "%s", ohm_test_ohmpeer());
    return path;
}

/* Processes whose command line mentions needle (ours all name their run folder). */
static int procs_with(const char *needle)
{
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300], buf[8192];
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (size_t i = 0; i < len; i++)
            if (!buf[i]) buf[i] = ' ';
        buf[len] = '\0';
        if (strstr(buf, needle) && (pid_t)atoi(e->d_name) != getpid()) n++;
    }
    closedir(d);
    return n;
}

static void wait_no_procs(const char *needle, int timeout_ms)
{
    for (int t = 0; t < timeout_ms && procs_with(needle) > 0; t += 50)
        usleep(50000);
}

/* A listening socket on host:port, so a peer finds its port taken. */
static int occupy(const char *host, int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(s, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0, "bind %s:%d: %s", host, port,
                 strerror(errno));
    cr_assert_eq(listen(s, 4), 0);
    return s;
}

static const char *const run_sets[] = {"data.name=synthetic", "data.dim=16",
                                       "data.classes=4",      "model.hidden=16",
                                       "optimizer.batch=16",  NULL};

/* argv for ohm-launch with the common --set list, then extra arguments. */
static pid_t spawn_launch(const char *log, const char *topo, const char *out,
                          const char *const *extra)
{
    const char *argv[96];
    int n = 0;
    argv[n++] = launcher();
    argv[n++] = "--topology";
    argv[n++] = topo;
    argv[n++] = "--out";
    argv[n++] = out;
    argv[n++] = "--ohmpeer";
    argv[n++] = ohm_test_ohmpeer();
    argv[n++] = "--quiet";
    for (int i = 0; run_sets[i]; i++) {
        argv[n++] = "--set";
        argv[n++] = run_sets[i];
    }
    for (int i = 0; extra && extra[i] && n < 94; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return ohm_test_spawn((char *const *)argv, log);
}

/* Runs argv to completion (stdout and stderr into log); returns its exit status. */
static int run_cmd(const char *const *argv, const char *log)
{
    unlink(log);
    return ohm_test_wait(ohm_test_spawn((char *const *)argv, log), 60000);
}

static void show(const char *path)
{
    char *s = ohm_test_slurp(path);
    if (s) fprintf(stderr, "---- %s ----\n%s\n", path, s);
    free(s);
}

static void check_summary(const char *out, int peers, int rounds)
{
    char path[400];
    snprintf(path, sizeof path, "%s/summary.json", out);
    char *s = ohm_test_slurp(path);
    cr_assert_not_null(s, "%s missing", path);
    static const char *const keys[] = {
        "\"rounds\"",         "\"peers\"",  "\"honest_acc_mean\"", "\"honest_acc_min\"",
        "\"honest_acc_max\"", "\"wall_s\"", "\"final_acc\"",       NULL};
    for (int i = 0; keys[i]; i++)
        cr_expect_not_null(strstr(s, keys[i]), "summary.json lacks %s", keys[i]);
    cr_expect_eq((int)json_number(s, "rounds"), rounds);
    cr_expect_eq((int)json_number(s, "peers"), peers);
    double mean = json_number(s, "honest_acc_mean"), lo = json_number(s, "honest_acc_min"),
           hi = json_number(s, "honest_acc_max");
    cr_expect(mean > 0.4 && lo <= mean && mean <= hi && hi <= 1.0,
              "accuracies min %g mean %g max %g", lo, mean, hi);
    for (int i = 0; i < peers; i++) {
        double r = 0;
        cr_expect_eq(ohm_test_final(out, i, "round", &r), 0, "peer %d has no final line", i);
        cr_expect_eq((int)r, rounds, "peer %d ended at round %g", i, r);
    }
    free(s);
}

/* ---- local launcher ------------------------------------------------------ */

Test(launch, local_ring_writes_summary, .timeout = 120)
{
    char dir[128], topo[256], out[256], log[300];
    ohm_test_tmpdir(dir, sizeof dir, "launch");
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(log, sizeof log, "%s/launch.log", dir);
    ohm_test_topology(topo, "ring", 4, 0, NULL, 1);
    const char *extra[] = {"--set", "train.rounds=40", "--set", "train.eval_every=20", NULL};
    int st = ohm_test_wait(spawn_launch(log, topo, out, extra), 90000);
    if (st != 0) show(log);
    cr_assert_eq(st, 0, "ohm-launch exit status %d", st);
    check_summary(out, 4, 40);
    char path[400];
    snprintf(path, sizeof path, "%s/summary.md", out);
    cr_expect(ohm_test_file_has(path, "honest accuracy"), "summary.md missing or empty");
    ohm_test_rmdir(dir);
}

Test(launch, failing_peer_stops_the_others, .timeout = 120)
{
    char dir[128], topo[256], out[256], log[300], host[16];
    int port;
    ohm_test_tmpdir(dir, sizeof dir, "launch-fail");
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(log, sizeof log, "%s/launch.log", dir);
    ohm_test_endpoints(host, &port, 4);
    FILE *f = fopen(topo, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 4; i++)
        fprintf(f, "peer %d tcp://%s:%d\n", i, host, port + i);
    fprintf(f, "edge 0 1\nedge 1 2\nedge 2 3\nedge 3 0\n");
    fclose(f);
    /* Peer 2's port is taken: it fails at once, the others would run for long. */
    int s = occupy(host, port + 2);
    const char *extra[] = {"--set", "train.rounds=1000000", NULL};
    int st = ohm_test_wait(spawn_launch(log, topo, out, extra), 60000);
    close(s);
    if (st != 1) show(log);
    cr_assert_eq(st, 1, "ohm-launch exit status %d, expected 1", st);
    cr_expect(ohm_test_file_has(log, "peer 2 failed"),
              "the launcher does not name the failed peer");
    char plog[400], ep[64];
    snprintf(plog, sizeof plog, "%s/peer-2.log", out);
    snprintf(ep, sizeof ep, "tcp://%s:%d", host, port + 2);
    cr_expect(ohm_test_file_has(plog, "peer 2") && ohm_test_file_has(plog, ep) &&
                  ohm_test_file_has(plog, "in use"),
              "peer 2's log does not explain the taken port");
    wait_no_procs(out, 10000);
    cr_expect_eq(procs_with(out), 0, "peers of the failed run still running");
    ohm_test_rmdir(dir);
}

/* A byte of the killed peer's checkpoint is flipped during the restart delay:
 * the restarted peer exits 1 on the CRC, and the launcher must say so (exit 1,
 * the peer and its last log line in summary.json and summary.md), not average
 * the accuracy over the others as if all had finished. */
Test(launch, peer_failing_after_restart_fails_the_run, .timeout = 120)
{
    char dir[128], topo[256], out[256], log[300], ckpt[300], path[400];
    ohm_test_tmpdir(dir, sizeof dir, "launch-ckpt");
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(log, sizeof log, "%s/launch.log", dir);
    snprintf(ckpt, sizeof ckpt, "%s/peer-2.ckpt", out);
    ohm_test_topology(topo, "ring", 4, 0, NULL, 1);
    const char *extra[] = {
        "--set",     "train.rounds=1500",         "--set",  "train.eval_every=100",
        "--set",     "train.checkpoint_every=50", "--kill", "2@300",
        "--restart", "--restart-delay",           "3",      NULL};
    pid_t launch = spawn_launch(log, topo, out, extra);
    int seen = 0;
    for (int t = 0; t < 3000 && !(seen = ohm_test_file_has(log, "killed peer 2")); t++)
        usleep(10000);
    cr_assert(seen, "the launcher never killed peer 2");
    FILE *f = fopen(ckpt, "r+b");
    cr_assert_not_null(f, "%s: %s", ckpt, strerror(errno));
    fseek(f, 0, SEEK_END);
    long mid = ftell(f) / 2;
    fseek(f, mid, SEEK_SET);
    int c = fgetc(f);
    fseek(f, mid, SEEK_SET);
    fputc(c ^ 0xff, f);
    fclose(f);
    int st = ohm_test_wait(launch, 90000);
    show(log);
    cr_assert(ohm_test_file_has(log, "restarted peer 2"), "peer 2 was not restarted in time");
    cr_assert_eq(st, 1, "ohm-launch exit status %d, expected 1", st);
    cr_expect(ohm_test_file_has(log, "peer 2 failed (exit 1 after 1 restart)"),
              "no failure message");
    snprintf(path, sizeof path, "%s/summary.json", out);
    char *s = ohm_test_slurp(path);
    cr_assert_not_null(s, "%s missing", path);
    cr_expect_eq((int)json_number(s, "honest_peers"), 4);
    cr_expect_lt((int)json_number(s, "honest_finished"), 4);
    cr_expect_eq((int)json_number(s, "exit_status"), 1);
    const char *fp = strstr(s, "\"failed_peers\"");
    cr_assert_not_null(fp, "summary.json lacks failed_peers");
    cr_expect_eq((int)json_number(fp, "peer"), 2, "failed_peers does not name peer 2");
    cr_expect(strstr(fp, "fails its CRC") != NULL, "failed_peers lacks the last log line");
    free(s);
    snprintf(path, sizeof path, "%s/summary.md", out);
    cr_expect(ohm_test_file_has(path, "of 4 honest peers") &&
                  ohm_test_file_has(path, "peer 2 failed") &&
                  ohm_test_file_has(path, "fails its CRC"),
              "summary.md does not say that peer 2 failed and why");
    wait_no_procs(out, 10000);
    ohm_test_rmdir(dir);
}

/* Interrupted, then continued with --resume in the same folder: every peer
 * resumes from its checkpoint and the run ends at its last round. */
Test(launch, resume_continues_an_interrupted_run, .timeout = 150)
{
    char dir[128], topo[256], out[256], log[300];
    ohm_test_tmpdir(dir, sizeof dir, "launch-resume");
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(log, sizeof log, "%s/launch.log", dir);
    ohm_test_topology(topo, "ring", 3, 0, NULL, 1);
    const char *extra[] = {"--set", "train.rounds=4000", "--set", "train.eval_every=100", NULL};
    pid_t launch = spawn_launch(log, topo, out, extra);
    double r = 0;
    for (int t = 0; t < 3000 && !(ohm_test_last(out, 0, "round", &r) == 0 && r >= 200); t++)
        usleep(10000);
    cr_assert_geq(r, 200, "peer 0 never reported round 200");
    kill(launch, SIGINT);
    int st = ohm_test_wait(launch, 60000);
    if (st != 130) show(log);
    cr_assert_eq(st, 130, "interrupted ohm-launch exit status %d", st);
    const char *more[] = {"--set", "train.rounds=4000", "--set", "train.eval_every=100", "--resume",
                          NULL};
    st = ohm_test_wait(spawn_launch(log, topo, out, more), 120000);
    if (st) show(log);
    cr_assert_eq(st, 0, "ohm-launch --resume exit status %d", st);
    for (int i = 0; i < 3; i++) {
        char plog[400];
        snprintf(plog, sizeof plog, "%s/peer-%d.log", out, i);
        cr_expect(ohm_test_file_has(plog, "resumed from"), "peer %d did not resume", i);
    }
    check_summary(out, 3, 4000);
    ohm_test_rmdir(dir);
}

/* The entry point finds its package and the binaries from the build tree, from
 * the source tree, and installed (meson install into a scratch DESTDIR), with
 * no path given on the command line or in the environment. */
Test(launch, entry_point_runs_from_build_source_and_install, .timeout = 240)
{
    const char *build = getenv("OHM_BUILDDIR"), *inst = getenv("OHM_INSTALLED_LAUNCH");
    const char *src = getenv("OHM_SRCDIR");
    cr_assert(build && inst && src, "meson sets OHM_BUILDDIR, OHM_INSTALLED_LAUNCH, OHM_SRCDIR");
    char dir[128], topo[256], dest[256], log[300], out[300], path[700], installed[600];
    ohm_test_tmpdir(dir, sizeof dir, "launch-install");
    snprintf(topo, sizeof topo, "%s/ring.topo", dir);
    snprintf(dest, sizeof dest, "%s/dest", dir);
    snprintf(log, sizeof log, "%s/install.log", dir);
    ohm_test_topology(topo, "ring", 3, 0, NULL, 1);
    const char *install[] = {"/usr/bin/env", "meson",   "install",   "-C", build,
                             "--no-rebuild", "--quiet", "--destdir", dest, NULL};
    int st = run_cmd(install, log);
    if (st) show(log);
    cr_assert_eq(st, 0, "meson install exit status %d", st);
    snprintf(installed, sizeof installed, "%s%s", dest, inst);
    char from_build[400], from_src[400], top[400];
    snprintf(from_build, sizeof from_build, "%s/peer/ohm-launch", build);
    snprintf(from_src, sizeof from_src, "%s/peer/ohm-launch", src);
    snprintf(top, sizeof top, "%s/topology/ohmtopo", build);
    const char *const launchers[] = {installed, from_build, from_src};
    for (int k = 0; k < 3; k++) {
        snprintf(out, sizeof out, "%s/run%d", dir, k);
        snprintf(log, sizeof log, "%s/launch%d.log", dir, k);
        /* Without OHMPEER/OHMTOPO (meson sets them for tests): the launcher must find the
         * binaries itself; the source tree's needs them named (build/ may be another). */
        const char *argv[32] = {"/usr/bin/env", "-u", "OHMPEER", "-u", "OHMTOPO", launchers[k],
                                "--topology",   topo, "--out",   out,  "--quiet"};
        int n = 11;
        if (k == 2) {
            argv[n++] = "--ohmpeer";
            argv[n++] = ohm_test_ohmpeer();
            argv[n++] = "--ohmtopo";
            argv[n++] = top;
        }
        for (int i = 0; run_sets[i]; i++) {
            argv[n++] = "--set";
            argv[n++] = run_sets[i];
        }
        argv[n++] = "--set";
        argv[n++] = "train.rounds=20";
        argv[n] = NULL;
        st = ohm_test_wait(ohm_test_spawn((char *const *)argv, log), 90000);
        if (st) show(log);
        cr_assert_eq(st, 0, "%s exit status %d", launchers[k], st);
        check_summary(out, 3, 20);
        snprintf(path, sizeof path, "%s/summary.json", out);
        char *s = ohm_test_slurp(path);
        char want[700];
        snprintf(want, sizeof want, "\"ohmpeer\": \"%s", k == 0 ? dest : "");
        cr_expect(s && strstr(s, want), "%s did not use its own ohmpeer:\n%s", launchers[k], s);
        free(s);
    }
    ohm_test_rmdir(dir);
}

/* ---- clear errors from ohmpeer ------------------------------------------- */

/* Runs one peer that is expected to fail at start; its log is out/peer-<id>.log. */
static int run_peer(const char *topo, int id, const char *out)
{
    const char *sets[] = {"net.insecure=true", "data.name=synthetic", "train.rounds=2",
                          "net.startup_timeout_ms=1000", NULL};
    return ohm_test_wait(ohm_test_peer(topo, id, out, sets, 0), 30000);
}

Test(launch, port_in_use_is_a_clear_error, .timeout = 60)
{
    char dir[128], topo[256], host[16], log[300], ep[64];
    int port;
    ohm_test_tmpdir(dir, sizeof dir, "err-port");
    snprintf(topo, sizeof topo, "%s/t.topo", dir);
    ohm_test_endpoints(host, &port, 3);
    FILE *f = fopen(topo, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 3; i++)
        fprintf(f, "peer %d tcp://%s:%d\n", i, host, port + i);
    fprintf(f, "edge 0 1\nedge 1 2\nedge 2 0\n");
    fclose(f);
    int s = occupy(host, port + 1);
    int st = run_peer(topo, 1, dir);
    close(s);
    snprintf(log, sizeof log, "%s/peer-1.log", dir);
    snprintf(ep, sizeof ep, "tcp://%s:%d", host, port + 1);
    show(log);
    cr_expect_eq(st, 1, "exit status %d", st);
    cr_expect(ohm_test_file_has(log, "peer 1"), "no peer id in the error");
    cr_expect(ohm_test_file_has(log, ep), "no endpoint in the error");
    cr_expect(ohm_test_file_has(log, "address already in use"), "no reason in the error");
    ohm_test_rmdir(dir);
}

Test(launch, unresolvable_host_is_a_clear_error, .timeout = 60)
{
    char dir[128], topo[256], host[16], log[300];
    int port;
    ohm_test_tmpdir(dir, sizeof dir, "err-host");
    snprintf(topo, sizeof topo, "%s/t.topo", dir);
    ohm_test_endpoints(host, &port, 3);
    FILE *f = fopen(topo, "w");
    cr_assert_not_null(f);
    fprintf(f, "peer 0 tcp://%s:%d\npeer 1 tcp://no-such-host.invalid:%d\npeer 2 tcp://%s:%d\n",
            host, port, port + 1, host, port + 2);
    fprintf(f, "edge 0 1\nedge 1 2\nedge 2 0\n");
    fclose(f);
    /* Peer 1 cannot bind its own endpoint; peer 0 cannot reach neighbour 1. */
    static const int ids[] = {1, 0};
    for (int k = 0; k < 2; k++) {
        int st = run_peer(topo, ids[k], dir);
        snprintf(log, sizeof log, "%s/peer-%d.log", dir, ids[k]);
        show(log);
        char who[16];
        snprintf(who, sizeof who, "peer %d", ids[k]);
        cr_expect_eq(st, 1, "peer %d exit status %d", ids[k], st);
        cr_expect(ohm_test_file_has(log, who), "peer %d: no peer id in the error", ids[k]);
        cr_expect(ohm_test_file_has(log, "tcp://no-such-host.invalid:"), "peer %d: no endpoint",
                  ids[k]);
        cr_expect(ohm_test_file_has(log, "cannot resolve host"), "peer %d: no reason", ids[k]);
    }
    ohm_test_rmdir(dir);
}

Test(launch, host_names_in_endpoints, .timeout = 60)
{
    char dir[128], topo[256];
    ohm_test_tmpdir(dir, sizeof dir, "hostname");
    snprintf(topo, sizeof topo, "%s/t.topo", dir);
    /* "localhost" resolves to 127.0.0.1: find three free ports there. */
    int port = 0;
    for (int attempt = 0; attempt < 100 && !port; attempt++) {
        int base = 20000 + (int)((getpid() * 7919u + (unsigned)attempt * 104729u) % 30000u);
        int ok = 1;
        for (int i = 0; i < 3 && ok; i++) {
            int t = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a = {.sin_family = AF_INET,
                                    .sin_port = htons((uint16_t)(base + i)),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            ok = bind(t, (struct sockaddr *)&a, sizeof a) == 0;
            close(t);
        }
        if (ok) port = base;
    }
    if (!port) cr_skip_test("no free ports on 127.0.0.1");
    FILE *f = fopen(topo, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 3; i++)
        fprintf(f, "peer %d tcp://localhost:%d\n", i, port + i);
    fprintf(f, "edge 0 1\nedge 1 2\nedge 2 0\n");
    fclose(f);
    const char *sets[] = {"net.insecure=true", "data.name=synthetic", "train.rounds=20",
                          "train.eval_every=10", NULL};
    pid_t pids[3];
    for (int i = 0; i < 3; i++)
        pids[i] = ohm_test_peer(topo, i, dir, sets, 0);
    for (int i = 0; i < 3; i++) {
        int st = ohm_test_wait(pids[i], 60000);
        if (st) ohm_test_show_log(dir, i);
        cr_expect_eq(st, 0, "peer %d on tcp://localhost exit status %d", i, st);
        double r = 0;
        ohm_test_final(dir, i, "round", &r);
        cr_expect_eq((int)r, 20, "peer %d ended at round %g", i, r);
    }
    ohm_test_rmdir(dir);
}

/* ---- SLURM: topology from the allocation's node list ---------------------- */

Test(launch, slurm_nodelist_topology)
{
    char dir[128], topo[256], log[300];
    ohm_test_tmpdir(dir, sizeof dir, "slurm");
    snprintf(topo, sizeof topo, "%s/t.topo", dir);
    snprintf(log, sizeof log, "%s/ohmtopo.log", dir);
    /* What examples/slurm/ohmpeer.sbatch runs for 2 nodes x 2 tasks. */
    const char *argv[] = {
        ohmtopo(),          "gen", "ring",   "-n",    "4",  "--nodelist", "node[01-02]",
        "--tasks-per-node", "2",   "--port", "27100", "-o", topo,         NULL};
    int st = ohm_test_wait(ohm_test_spawn((char *const *)argv, log), 10000);
    if (st) show(log);
    cr_assert_eq(st, 0);
    static const char *const want[] = {"peer 0 tcp://node01:27100", "peer 1 tcp://node01:27101",
                                       "peer 2 tcp://node02:27100", "peer 3 tcp://node02:27101"};
    for (int i = 0; i < 4; i++)
        cr_expect(ohm_test_file_has(topo, want[i]), "%s lacks '%s'", topo, want[i]);
    ohm_test_rmdir(dir);
}

/* The sbatch recipe itself, on one "node" (localhost) with a stand-in srun
 * that starts SLURM_NTASKS tasks with SLURM_PROCID 0..N-1 on this machine. */
Test(launch, slurm_sbatch_with_stand_in_srun, .timeout = 120)
{
    char dir[128], path[400], log[300], port_text[16], run[300], bin[300];
    ohm_test_tmpdir(dir, sizeof dir, "sbatch");
    snprintf(bin, sizeof bin, "%s/bin", dir);
    mkdir(bin, 0755);
    snprintf(path, sizeof path, "%s/srun", bin);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("#!/bin/bash\n"
          "while [[ $# -gt 0 && $1 == --* ]]; do shift; done\n"
          "pids=()\n"
          "for ((i = 0; i < SLURM_NTASKS; i++)); do\n"
          "  SLURM_PROCID=$i SLURM_LOCALID=$i \"$@\" & pids+=($!)\n"
          "done\n"
          "rc=0; for p in \"${pids[@]}\"; do wait \"$p\" || rc=1; done; exit $rc\n",
          f);
    fclose(f);
    chmod(path, 0755);
    /* The recipe binds every interface: three free ports there. */
    int port = 0;
    for (int attempt = 0; attempt < 100 && !port; attempt++) {
        int base = 20000 + (int)((getpid() * 7919u + (unsigned)attempt * 104729u) % 30000u);
        int ok = 1;
        for (int i = 0; i < 3 && ok; i++) {
            int t = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a = {.sin_family = AF_INET,
                                    .sin_port = htons((uint16_t)(base + i)),
                                    .sin_addr.s_addr = htonl(INADDR_ANY)};
            ok = bind(t, (struct sockaddr *)&a, sizeof a) == 0;
            close(t);
        }
        if (ok) port = base;
    }
    if (!port) cr_skip_test("no free ports");
    snprintf(port_text, sizeof port_text, "%d", port);
    snprintf(run, sizeof run, "%s/run", dir);
    char newpath[4096];
    snprintf(newpath, sizeof newpath, "%s:%s", bin,
             getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    setenv("PATH", newpath, 1); /* this test runs in its own process */
    setenv("OHMPEER", ohmpeer_abs(), 1);
    setenv("OHMTOPO", ohmtopo(), 1);
    setenv("OHM_PORT", port_text, 1);
    setenv("OHM_RUN", run, 1);
    setenv("SLURM_JOB_ID", "1", 1);
    setenv("SLURM_JOB_NODELIST", "localhost", 1);
    setenv("SLURM_NTASKS", "3", 1);
    setenv("SLURM_NTASKS_PER_NODE", "3(x1)", 1);
    char script[400];
    const char *src = getenv("OHM_SRCDIR");
    snprintf(script, sizeof script, "%s/examples/slurm/ohmpeer.sbatch", src ? src : ".");
    snprintf(log, sizeof log, "%s/sbatch.log", dir);
    const char *argv[] = {"/bin/bash", script,
                          "--set",     "data.name=synthetic",
                          "--set",     "train.rounds=20",
                          "--set",     "train.eval_every=10",
                          NULL};
    int st = ohm_test_wait(ohm_test_spawn((char *const *)argv, log), 90000);
    if (st) show(log);
    cr_assert_eq(st, 0, "ohmpeer.sbatch exit status %d", st);
    cr_expect(ohm_test_file_has(log, "honest accuracy: mean"), "no summary line");
    for (int i = 0; i < 3; i++) {
        double r = 0;
        cr_expect_eq(ohm_test_final(run, i, "round", &r), 0, "task %d wrote no final line", i);
        cr_expect_eq((int)r, 20);
    }
    snprintf(path, sizeof path, "%s/topology.topo", run);
    cr_expect(ohm_test_file_has(path, " key=") && ohm_test_file_has(path, " bind=tcp://0.0.0.0:"),
              "the recipe's topology lacks keys or bind addresses");
    ohm_test_rmdir(dir);
}

/* ---- ssh path ------------------------------------------------------------ */

static pid_t sshd_pid;
static char ssh_dir[128], ssh_host[16], ssh_opts[512];
static int ssh_port;

static void sshd_stop(void)
{
    if (sshd_pid > 0) {
        kill(sshd_pid, SIGTERM);
        ohm_test_wait(sshd_pid, 5000);
        sshd_pid = 0;
    }
}

static int port_open(const char *host, int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

static int sh(const char *fmt, const char *a, const char *b)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* A private sshd for this test on a random loopback address and port, admitting
 * one fresh client key. Skips the test when it cannot be had. */
static void sshd_start(void)
{
    if (access(SSHD, X_OK) != 0 || sh("command -v ssh >/dev/null && command -v ssh-keygen "
                                      ">/dev/null%s%s",
                                      "", "") != 0)
        cr_skip_test("sshd/ssh not installed (Debian: openssh-server, openssh-client); skipped");
    ohm_test_tmpdir(ssh_dir, sizeof ssh_dir, "sshd");
    atexit(sshd_stop);
    if (sh("ssh-keygen -q -t ed25519 -N '' -f '%s/host_key'%s", ssh_dir, "") ||
        sh("ssh-keygen -q -t ed25519 -N '' -f '%s/client_key'%s", ssh_dir, "") ||
        sh("cp '%s/client_key.pub' '%s/authorized_keys'", ssh_dir, ssh_dir))
        cr_skip_test("ssh-keygen failed; skipped");
    /* As root, sshd wants its privilege-separation folder. */
    if (geteuid() == 0) mkdir("/run/sshd", 0755);
    ohm_test_endpoints(ssh_host, &ssh_port, 1);
    char cfg[300];
    snprintf(cfg, sizeof cfg, "%s/sshd_config", ssh_dir);
    FILE *f = fopen(cfg, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "Port %d\nListenAddress %s\nHostKey %s/host_key\nAuthorizedKeysFile "
            "%s/authorized_keys\nPidFile none\nUsePAM no\nStrictModes no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nLogLevel ERROR\n",
            ssh_port, ssh_host, ssh_dir, ssh_dir);
    fclose(f);
    char log[300];
    snprintf(log, sizeof log, "%s/sshd.log", ssh_dir);
    char *argv[] = {SSHD, "-f", cfg, "-D", "-e", NULL};
    sshd_pid = ohm_test_spawn(argv, log);
    for (int t = 0; t < 100 && !port_open(ssh_host, ssh_port); t++) {
        if (waitpid(sshd_pid, NULL, WNOHANG) == sshd_pid) {
            sshd_pid = 0;
            show(log);
            cr_skip_test("sshd exited at start (log above); skipped");
        }
        usleep(50000);
    }
    if (!port_open(ssh_host, ssh_port)) {
        sshd_stop();
        cr_skip_test("sshd does not listen; skipped");
    }
    snprintf(ssh_opts, sizeof ssh_opts,
             "-p %d -i %s/client_key -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
             "-o UserKnownHostsFile=/dev/null",
             ssh_port, ssh_dir);
}

static void sshd_fini(void)
{
    sshd_stop();
    if (ssh_dir[0]) ohm_test_rmdir(ssh_dir);
}

/* Three peers on two "hosts" (two loopback addresses, both reached through the
 * one sshd): peers 0 and 2 on host A, peer 1 on host B. */
static void ssh_run_files(const char *dir, char *topo, char *hosts, char *remote_a, char *remote_b)
{
    char ha[16], hb[16];
    int pa, pb;
    ohm_test_endpoints(ha, &pa, 2);
    ohm_test_endpoints(hb, &pb, 1);
    sprintf(topo, "%s/t.topo", dir);
    sprintf(hosts, "%s/hosts.txt", dir);
    sprintf(remote_a, "%s/remote-a", dir);
    sprintf(remote_b, "%s/remote-b", dir);
    FILE *f = fopen(topo, "w");
    cr_assert_not_null(f);
    fprintf(f, "peer 0 tcp://%s:%d\npeer 1 tcp://%s:%d\npeer 2 tcp://%s:%d\n", ha, pa, hb, pb, ha,
            pa + 1);
    fprintf(f, "edge 0 1\nedge 1 2\nedge 2 0\n");
    fclose(f);
    f = fopen(hosts, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "# name  how to reach it\n%s ssh=%s ohmpeer=%s dir=%s\n%s ssh=%s ohmpeer=%s dir=%s\n",
            ha, ssh_host, ohmpeer_abs(), remote_a, hb, ssh_host, ohmpeer_abs(), remote_b);
    fclose(f);
}

Test(launch, ssh_to_localhost, .timeout = 180, .fini = sshd_fini)
{
    sshd_start();
    char dir[128], topo[256], hosts[256], ra[256], rb[256], out[256], log[300];
    ohm_test_tmpdir(dir, sizeof dir, "launch-ssh");
    ssh_run_files(dir, topo, hosts, ra, rb);
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(log, sizeof log, "%s/launch.log", dir);
    const char *extra[] = {"--hosts",    hosts,
                           "--ssh-opts", ssh_opts,
                           "--set",      "train.rounds=30",
                           "--set",      "train.eval_every=10",
                           "--timeout",  "150",
                           NULL};
    int st = ohm_test_wait(spawn_launch(log, topo, out, extra), 170000);
    show(log);
    cr_assert_eq(st, 0, "ohm-launch --hosts exit status %d", st);
    check_summary(out, 3, 30);
    char path[400];
    snprintf(path, sizeof path, "%s/summary.json", out);
    cr_expect(ohm_test_file_has(path, "\"hosts\""), "summary.json does not say where peers ran");
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/peer-%d.log", out, i);
        cr_expect_eq(access(path, R_OK), 0, "no streamed log for peer %d", i);
    }
    /* Each host received only its own peers' secret keys, private to the user. */
    struct stat sb;
    snprintf(path, sizeof path, "%s/keys/peer-1.key", rb);
    cr_expect_eq(stat(path, &sb), 0, "host B lacks peer 1's key");
    cr_expect_eq(sb.st_mode & 077, 0, "peer 1's key is readable by others: %o", sb.st_mode);
    snprintf(path, sizeof path, "%s/keys/peer-0.key", rb);
    cr_expect_neq(access(path, F_OK), 0, "host B received peer 0's secret key");
    snprintf(path, sizeof path, "%s/keys/peer-1.key", ra);
    cr_expect_neq(access(path, F_OK), 0, "host A received peer 1's secret key");
    snprintf(path, sizeof path, "%s/keys/peer-2.key", ra);
    cr_expect_eq(access(path, F_OK), 0, "host A lacks peer 2's key");
    cr_expect(ohm_test_file_has(log, "libzmq5"), "the launcher does not say what the hosts need");
    ohm_test_rmdir(dir);
}

Test(launch, ssh_abort_stops_remote_peers, .timeout = 180, .fini = sshd_fini)
{
    sshd_start();
    char dir[128], topo[256], hosts[256], ra[256], rb[256], out[256], log[300];
    ohm_test_tmpdir(dir, sizeof dir, "launch-ssh-abort");
    ssh_run_files(dir, topo, hosts, ra, rb);
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(log, sizeof log, "%s/launch.log", dir);
    const char *extra[] = {
        "--hosts", hosts, "--ssh-opts", ssh_opts, "--set", "train.rounds=100000000", NULL};
    pid_t launch = spawn_launch(log, topo, out, extra);
    /* Wait until every remote peer has recorded its pid and runs. */
    pid_t remote[3] = {0, 0, 0};
    for (int t = 0; t < 600; t++) {
        int all = 1;
        for (int i = 0; i < 3; i++) {
            char path[400];
            snprintf(path, sizeof path, "%s/peer-%d.pid", i == 1 ? rb : ra, i);
            char *s = ohm_test_slurp(path);
            remote[i] = s ? (pid_t)atoi(s) : 0;
            free(s);
            all &= remote[i] > 0 && kill(remote[i], 0) == 0;
        }
        if (all) break;
        usleep(100000);
    }
    for (int i = 0; i < 3; i++)
        cr_assert(remote[i] > 0 && kill(remote[i], 0) == 0, "remote peer %d is not running", i);
    usleep(500000);
    kill(launch, SIGTERM);
    int st = ohm_test_wait(launch, 60000);
    show(log);
    cr_expect_eq(st, 130, "ohm-launch exit status %d after SIGTERM, expected 130", st);
    for (int i = 0; i < 3; i++) {
        int t = 0;
        while (kill(remote[i], 0) == 0 && t++ < 100)
            usleep(100000);
        cr_expect_neq(kill(remote[i], 0), 0, "remote peer %d (pid %d) still runs", i,
                      (int)remote[i]);
        if (kill(remote[i], 0) == 0) kill(remote[i], SIGKILL);
    }
    cr_expect(ohm_test_file_has(log, "stopping remote peers"),
              "the launcher did not say it stops peers");
    ohm_test_rmdir(dir);
}
