/* Integration: the commands that answer for the C parsers, so that the
 * launcher and the example scripts never read topology or INI files
 * themselves: `ohmpeer config --get`, `ohmtopo show --json`, `ohmtopo edit`. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ohm_testproc.h"

static const char *ohmtopo(void)
{
    const char *t = getenv("OHMTOPO");
    return t ? t : "build/topology/ohmtopo";
}

/* Runs argv to completion (stdout and stderr into log); returns its exit status. */
static int run_cmd(const char *const *argv, const char *log)
{
    unlink(log);
    return ohm_test_wait(ohm_test_spawn((char *const *)argv, log), 60000);
}

/* Values resolve as in a run: defaults, the file (by the C parser's rules: a
 * '#' inside a value is data, comments start after a blank), then --set. */
Test(tools, config_get_resolves_like_a_run)
{
    char dir[128], ini[256], log[300];
    ohm_test_tmpdir(dir, sizeof dir, "config-get");
    snprintf(ini, sizeof ini, "%s/run.ini", dir);
    snprintf(log, sizeof log, "%s/get.log", dir);
    FILE *f = fopen(ini, "w");
    cr_assert_not_null(f);
    fputs("; a comment\n[data]\npath = /data/set#1 ; the folder\n[train]\n"
          "rounds = 321 # inline\n",
          f);
    fclose(f);
    const char *get[] = {
        ohm_test_ohmpeer(), "config",   "--get", "data.path", "--get", "train.rounds", "--get",
        "train.eval_every", "--config", ini,     NULL};
    cr_assert_eq(run_cmd(get, log), 0);
    char *s = ohm_test_slurp(log);
    cr_expect_str_eq(s, "/data/set#1\n321\n10\n");
    free(s);
    const char *set[] = {ohm_test_ohmpeer(), "config", "--config",     ini, "--set",
                         "train.rounds=77",  "--get",  "train.rounds", NULL};
    cr_assert_eq(run_cmd(set, log), 0);
    cr_expect(ohm_test_file_has(log, "77\n"));
    const char *unknown[] = {ohm_test_ohmpeer(), "config", "--get", "train.nope", NULL};
    cr_expect_eq(run_cmd(unknown, log), 1);
    cr_expect(ohm_test_file_has(log, "unknown key 'train.nope'"));
    f = fopen(ini, "w");
    fputs("[train]\nrounds = -3\n", f);
    fclose(f);
    const char *bad[] = {ohm_test_ohmpeer(), "config", "--get", "train.rounds",
                         "--config",         ini,      NULL};
    cr_expect_eq(run_cmd(bad, log), 1);
    cr_expect(ohm_test_file_has(log, "run.ini:2:") && ohm_test_file_has(log, "train.rounds"),
              "no FILE:LINE");
    ohm_test_rmdir(dir);
}

Test(tools, ohmtopo_show_json_and_edit)
{
    char dir[128], topo[256], log[300], keys[256], edited[256], pre[300], pub[300];
    ohm_test_tmpdir(dir, sizeof dir, "topo-show");
    snprintf(topo, sizeof topo, "%s/t.topo", dir);
    snprintf(log, sizeof log, "%s/show.log", dir);
    FILE *f = fopen(topo, "w");
    cr_assert_not_null(f);
    fputs("peer 0 tcp://h0:7000 # first\npeer 1 tcp://[::1]:7001 role=byzantine attack=signflip\n"
          "peer 2 tcp://h2:7002 rule=median b=1 bind=tcp://*:7002\n"
          "edge 0 1 w=0.125\nedge 1 2\nedge 2 0\n",
          f);
    fclose(f);
    const char *show_argv[] = {ohmtopo(), "show", "--json", topo, NULL};
    cr_assert_eq(run_cmd(show_argv, log), 0);
    static const char *const want[] = {"\"peer_count\": 3",
                                       "\"byzantine\": [1]",
                                       "\"host\": \"[::1]\", \"port\": 7001",
                                       "\"role\": \"byzantine\", \"attack\": \"signflip\"",
                                       "\"rule\": \"median\", \"b\": 1",
                                       "\"bind\": \"tcp://*:7002\"",
                                       "\"neighbors\": [1, 2], \"weights\": [0.125,",
                                       "\"edges\": [[0, 1], [0, 2], [1, 2]]"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(ohm_test_file_has(log, want[i]), "show --json lacks %s", want[i]);
    const char *py[] = {"/usr/bin/env",
                        "python3",
                        "-c",
                        "import json,sys; json.load(open(sys.argv[1]))",
                        log,
                        NULL};
    char pylog[300];
    snprintf(pylog, sizeof pylog, "%s/py.log", dir);
    cr_expect_eq(run_cmd(py, pylog), 0, "show --json is not valid JSON");

    /* edit: each peer's key from keys/peer-<id>.pub, bind on every interface. */
    snprintf(keys, sizeof keys, "%s/keys", dir);
    snprintf(edited, sizeof edited, "%s/keyed.topo", dir);
    mkdir(keys, 0700);
    const char *edit[] = {ohmtopo(), "edit",    topo, "--keys", keys,
                          "--bind",  "0.0.0.0", "-o", edited,   NULL};
    cr_expect_eq(run_cmd(edit, log), 1, "edit without keys succeeded");
    cr_expect(ohm_test_file_has(log, "peer-0.pub"), "the missing key file is not named");
    for (int i = 0; i < 3; i++) {
        snprintf(pre, sizeof pre, "%s/peer-%d", keys, i);
        const char *kg[] = {ohm_test_ohmpeer(), "keygen", "--out", pre, NULL};
        cr_assert_eq(run_cmd(kg, log), 0);
    }
    cr_assert_eq(run_cmd(edit, log), 0);
    for (int i = 0; i < 3; i++) {
        snprintf(pub, sizeof pub, "%s/peer-%d.pub", keys, i);
        char *k = ohm_test_slurp(pub), line[200];
        cr_assert_not_null(k);
        k[strcspn(k, "\n")] = '\0';
        snprintf(line, sizeof line, "bind=tcp://0.0.0.0:%d", 7000 + i);
        cr_expect(ohm_test_file_has(edited, k) && ohm_test_file_has(edited, line),
                  "peer %d: no key or bind", i);
        free(k);
    }
    const char *check[] = {ohmtopo(), "check", edited, NULL};
    cr_expect_eq(run_cmd(check, log), 0, "the edited topology does not check");
    ohm_test_rmdir(dir);
}
