/* ohm_testproc: real processes on loopback for integration tests. */
#include "ohm_testproc.h"

#include "ohm_ckpt.h"
#include "ohm_error.h"
#include "ohm_keys.h"
#include "ohm_topology.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

void ohm_test_tmpdir(char *dir, size_t cap, const char *tag)
{
    snprintf(dir, cap, "/tmp/ohm-%s-XXXXXX", tag);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
}

void ohm_test_rmdir(const char *dir)
{
    if (getenv("OHM_KEEP_TEST_DIRS") || strncmp(dir, "/tmp/ohm-", 9) != 0) return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static unsigned long mix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    static unsigned long counter;
    unsigned long x = (unsigned long)ts.tv_nsec ^ ((unsigned long)getpid() << 20) ^
                      (++counter * 0x9e3779b97f4a7c15UL);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9UL;
    return x ^ (x >> 29);
}

static int port_free(const char *host, int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    int ok = bind(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

void ohm_test_endpoints(char *host, int *port, int n)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        unsigned long r = mix();
        snprintf(host, 16, "127.%lu.%lu.%lu", 1 + (r & 0x7f), (r >> 8) & 0xff,
                 1 + ((r >> 16) % 250));
        int base = 20000 + (int)((r >> 24) % 30000);
        int ok = 1;
        for (int i = 0; i < n && ok; i++)
            ok = port_free(host, base + i);
        if (ok) {
            *port = base;
            return;
        }
    }
    fprintf(stderr, "no free loopback ports found\n");
    abort();
}

void ohm_test_topology(const char *path, const char *kind, int n, int byzantine, const char *attack,
                       unsigned long seed)
{
    char host[16];
    int port;
    ohm_test_endpoints(host, &port, n);
    ohm_topogen_t g = {.kind = kind,
                       .n = n,
                       .seed = seed,
                       .p = 0.7,
                       .byzantine = byzantine,
                       .attack = attack,
                       .host = host,
                       .port = port};
    ohm_topology_t *t = NULL;
    int rc = ohm_topology_generate(&g, &t);
    if (rc) {
        fprintf(stderr, "topology: %s\n", ohm_error_detail());
        abort();
    }
    FILE *f = fopen(path, "w");
    if (!f || ohm_topology_write(t, f) != 0) {
        perror(path);
        abort();
    }
    fclose(f);
    ohm_topology_destroy(&t);
}

int ohm_test_keyed_topology(const char *path, const char *keydir, int n, const int (*edges)[2],
                            int nedges, char *host, int *port, uint8_t (*pub)[32],
                            uint8_t (*sec)[32])
{
    ohm_test_endpoints(host, port, n);
    if (mkdir(keydir, 0700) != 0 && errno != EEXIST) {
        perror(keydir);
        return -1;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        uint8_t p[OHM_KEY_BYTES], k[OHM_KEY_BYTES];
        char prefix[600], z[41];
        snprintf(prefix, sizeof prefix, "%s/peer-%d", keydir, i);
        if (ohm_keys_generate(p, k) || ohm_keys_write(prefix, p, k)) {
            fprintf(stderr, "keys of peer %d: %s\n", i, ohm_error_detail());
            fclose(f);
            return -1;
        }
        ohm_keys_encode(p, z);
        fprintf(f, "peer %d tcp://%s:%d key=%s\n", i, host, *port + i, z);
        if (pub) memcpy(pub[i], p, OHM_KEY_BYTES);
        if (sec) memcpy(sec[i], k, OHM_KEY_BYTES);
    }
    if (edges)
        for (int e = 0; e < nedges; e++)
            fprintf(f, "edge %d %d\n", edges[e][0], edges[e][1]);
    else
        for (int i = 0; i < n; i++)
            fprintf(f, "edge %d %d\n", i, (i + 1) % n);
    return fclose(f) == 0 ? 0 : -1;
}

const char *ohm_test_ohmpeer(void)
{
    const char *p = getenv("OHMPEER");
    if (p) return p;
    /* Beside the calling binary's build folder: build/tests/X -> build/peer/ohmpeer. */
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
    if (n > 0) {
        path[n] = '\0';
        char *slash = strrchr(path, '/');
        if (slash) {
            strcpy(slash, "/../peer/ohmpeer");
            if (access(path, X_OK) == 0) return path;
        }
    }
    return "build/peer/ohmpeer";
}

pid_t ohm_test_spawn(char *const argv[], const char *log)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        fprintf(stderr, "spawn %s: %s\n", argv[0], strerror(rc));
        abort();
    }
    return pid;
}

pid_t ohm_test_peer(const char *topo, int id, const char *out, const char *const *sets, int resume)
{
    char idtext[16], log[512];
    snprintf(idtext, sizeof idtext, "%d", id);
    snprintf(log, sizeof log, "%s/peer-%d.log", out, id);
    const char *argv[96];
    int n = 0;
    argv[n++] = ohm_test_ohmpeer();
    argv[n++] = "run";
    argv[n++] = "--topology";
    argv[n++] = topo;
    argv[n++] = "--id";
    argv[n++] = idtext;
    argv[n++] = "--out";
    argv[n++] = out;
    for (int i = 0; sets && sets[i] && n < 90; i++) {
        argv[n++] = "--set";
        argv[n++] = sets[i];
    }
    if (resume) argv[n++] = "--resume";
    argv[n] = NULL;
    return ohm_test_spawn((char *const *)argv, log);
}

int ohm_test_wait(pid_t pid, int timeout_ms)
{
    for (int waited = 0;; waited += 20) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0) return -1;
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        usleep(20000);
    }
}

void ohm_test_start(const char *topo, int n, const char *out, const char *const *sets, pid_t *pids)
{
    for (int i = 0; i < n; i++)
        pids[i] = ohm_test_peer(topo, i, out, sets, 0);
}

int ohm_test_wait_all(const char *out, const pid_t *pids, int n, int timeout_ms, int *bad)
{
    int first = 0;
    for (int i = 0; i < n; i++) {
        int st = ohm_test_wait(pids[i], timeout_ms);
        if (st == 0) continue;
        ohm_test_show_log(out, i);
        fprintf(stderr, "peer %d exit status %d\n", i, st);
        if (!first) {
            first = st;
            if (bad) *bad = i;
        }
    }
    return first;
}

int ohm_test_run(const char *topo, int n, const char *out, const char *const *sets, int timeout_ms,
                 int *bad)
{
    pid_t pids[n];
    ohm_test_start(topo, n, out, sets, pids);
    return ohm_test_wait_all(out, pids, n, timeout_ms, bad);
}

void ohm_test_sets(const char **out, int cap, const char *const *a, const char *const *b)
{
    int n = 0;
    for (int i = 0; a && a[i] && n < cap - 1; i++)
        out[n++] = a[i];
    for (int i = 0; b && b[i] && n < cap - 1; i++)
        out[n++] = b[i];
    out[n] = NULL;
}

int ohm_test_final_line(const char *dir, int id, char *line, size_t cap)
{
    char path[512], buf[65536];
    snprintf(path, sizeof path, "%s/peer-%d.jsonl", dir, id);
    FILE *f = fopen(path, "r");
    int found = -1;
    while (f && fgets(buf, sizeof buf, f))
        if (strstr(buf, "\"final\":true")) {
            snprintf(line, cap, "%s", buf);
            found = 0;
        }
    if (f) fclose(f);
    return found;
}

int ohm_test_neighbour(const char *line, int nb, char *obj, size_t cap)
{
    const char *p = strstr(line, "\"neighbours\":{");
    if (!p) return -1;
    char key[32];
    snprintf(key, sizeof key, "\"%d\":{", nb);
    p = strstr(p, key);
    if (!p) return -1;
    p += strlen(key) - 1;
    int depth = 0;
    size_t n = 0;
    for (; *p && n + 1 < cap; p++) {
        obj[n++] = *p;
        depth += (*p == '{') - (*p == '}');
        if (depth == 0) break;
    }
    obj[n] = '\0';
    return depth == 0 ? 0 : -1;
}

long ohm_test_counter(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? strtol(p + strlen(pat), NULL, 10) : 0;
}

static int find_number(const char *line, const char *key, double *v)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p) return -1;
    p += strlen(pat);
    if (!strncmp(p, "true", 4)) {
        *v = 1;
        return 0;
    }
    if (!strncmp(p, "false", 5)) {
        *v = 0;
        return 0;
    }
    char *end;
    *v = strtod(p, &end);
    return end == p ? -1 : 0;
}

static int scan(const char *dir, int id, const char *key, double *v, int need_final)
{
    char path[512], line[16384];
    snprintf(path, sizeof path, "%s/peer-%d.jsonl", dir, id);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        if (need_final && !strstr(line, "\"final\":true")) continue;
        double x;
        if (find_number(line, key, &x) == 0) {
            *v = x;
            found = 0;
        } else if (!need_final) {
            found = -1;
        }
    }
    fclose(f);
    return found;
}

int ohm_test_final(const char *dir, int id, const char *key, double *v)
{
    return scan(dir, id, key, v, 1);
}

int ohm_test_last(const char *dir, int id, const char *key, double *v)
{
    return scan(dir, id, key, v, 0);
}

void ohm_test_show_log(const char *dir, int id)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "tail -n 15 '%s/peer-%d.log' >&2", dir, id);
    if (system(cmd) != 0) fprintf(stderr, "(no log for peer %d)\n", id);
}

float *ohm_test_params(const char *dir, int id, size_t *n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/peer-%d.ckpt", dir, id);
    ohm_ckpt_t *ck = NULL;
    const void *d;
    size_t len;
    float *w = NULL;
    if (ohm_ckpt_read(path, &ck) || ohm_ckpt_get(ck, "params", &d, &len)) {
        fprintf(stderr, "%s: %s\n", path, ohm_error_detail());
    } else if ((w = malloc(len ? len : 1))) {
        memcpy(w, d, len);
        *n = len / sizeof(float);
    }
    ohm_ckpt_destroy(&ck);
    return w;
}

char *ohm_test_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) {
        fclose(f);
        return NULL;
    }
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(m);
    fclose(f);
    return buf;
}

int ohm_test_file_has(const char *path, const char *needle)
{
    char *s = ohm_test_slurp(path);
    int yes = s && strstr(s, needle) != NULL;
    free(s);
    return yes;
}
