/* ohm_config: defaults, INI loading, overrides, every error path (with its
 * file:line detail), int lists, and write -> load round trips. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ohm_config.h"
#include "ohm_error.h"

static ohm_config_t *cfg;

static void setup(void)
{
    cfg = ohm_config_new();
    cr_assert_not_null(cfg);
}

static void teardown(void)
{
    ohm_config_destroy(&cfg);
    cr_assert_null(cfg);
}

TestSuite(config, .init = setup, .fini = teardown);

static int load(const char *text)
{
    return ohm_config_load_string(cfg, text, strlen(text), "run.ini");
}

/* Writes `text` to a fresh temporary file; the caller unlinks `path`. */
static void write_tmp(char *path, const char *text)
{
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static char *written(const ohm_config_t *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cr_assert_eq(ohm_config_write(c, f), OHM_OK);
    fclose(f);
    return buf;
}

Test(config, defaults)
{
    cr_expect_str_eq(ohm_config_str(cfg, "data.name"), "fashion-mnist");
    cr_expect_str_eq(ohm_config_str(cfg, "data.path"), "");
    cr_expect_str_eq(ohm_config_str(cfg, "data.partition"), "iid");
    cr_expect_eq(ohm_config_double(cfg, "data.alpha"), 0.5);
    cr_expect_eq(ohm_config_int(cfg, "data.dim"), 32);
    cr_expect_eq(ohm_config_int(cfg, "data.test_subset"), 1000);
    cr_expect_str_eq(ohm_config_str(cfg, "model.activation"), "relu");
    cr_expect_eq(ohm_config_bool(cfg, "model.bias"), 1);
    cr_expect_eq(ohm_config_int(cfg, "device.bl"), 31);
    cr_expect_eq(ohm_config_double(cfg, "device.dw_min"), 0.001);
    cr_expect_eq(ohm_config_bool(cfg, "device.granular"), 0);
    cr_expect_str_eq(ohm_config_str(cfg, "optimizer.name"), "digital");
    cr_expect_eq(ohm_config_double(cfg, "optimizer.lr"), 0.1);
    cr_expect_eq(ohm_config_int(cfg, "optimizer.batch"), 32);
    cr_expect_eq(ohm_config_int(cfg, "train.rounds"), 100);
    cr_expect_eq(ohm_config_int(cfg, "train.seed"), 1);
    cr_expect_str_eq(ohm_config_str(cfg, "aggregate.rule"), "weighted");
    cr_expect_eq(ohm_config_double(cfg, "aggregate.nu"), 1e-6);
    cr_expect_eq(ohm_config_double(cfg, "aggregate.tol"), 1e-5);
    cr_expect_eq(ohm_config_int(cfg, "net.round_timeout_ms"), 2000);
    cr_expect_eq(ohm_config_int(cfg, "net.startup_timeout_ms"), 30000);
    cr_expect_eq(ohm_config_bool(cfg, "net.insecure"), 0);
    int h[4];
    cr_expect_eq(ohm_config_int_list(cfg, "model.hidden", h, 4), 1);
    cr_expect_eq(h[0], 128);
}

Test(config, file_with_comments_quotes_and_blanks)
{
    char path[] = "/tmp/ohm-config-XXXXXX";
    write_tmp(path, "\xEF\xBB\xBF# a run\n"
                    "; another comment\n"
                    "\n"
                    "[data]\n"
                    "  name = synthetic   # inline comment\n"
                    "\tpartition=dirichlet\r\n"
                    "alpha = 0.1;not a comment without a blank? no: part of the value\n");
    /* The last line's ';' follows a digit, so it is part of the value: an error. */
    cr_expect_eq(ohm_config_load(cfg, path), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), ":7: data.alpha"), "%s", ohm_error_detail());
    cr_expect_str_eq(ohm_config_str(cfg, "data.name"), "fashion-mnist", "unchanged on error");
    unlink(path);

    char path2[] = "/tmp/ohm-config-XXXXXX";
    write_tmp(path2, "[data]\n"
                     "  name = synthetic   # inline comment\n"
                     "\tpartition=dirichlet\r\n"
                     "alpha = 0.1 ; comment\n"
                     "path = \"/data/my #1 \\\"set\\\"\"  # quoted keeps # and quotes\n"
                     "[ model ]\n"
                     "hidden = 256, 128\n"
                     "bias = no\n"
                     "[net]\n"
                     "key =\n"
                     "[data]\n"
                     "dim = 8\n");
    cr_assert_eq(ohm_config_load(cfg, path2), OHM_OK, "%s", ohm_error_detail());
    unlink(path2);
    cr_expect_str_eq(ohm_config_str(cfg, "data.name"), "synthetic");
    cr_expect_str_eq(ohm_config_str(cfg, "data.partition"), "dirichlet");
    cr_expect_eq(ohm_config_double(cfg, "data.alpha"), 0.1);
    cr_expect_str_eq(ohm_config_str(cfg, "data.path"), "/data/my #1 \"set\"");
    cr_expect_eq(ohm_config_bool(cfg, "model.bias"), 0);
    cr_expect_str_eq(ohm_config_str(cfg, "net.key"), "");
    cr_expect_eq(ohm_config_int(cfg, "data.dim"), 8);
    int h[4];
    cr_expect_eq(ohm_config_int_list(cfg, "model.hidden", h, 4), 2);
    cr_expect_eq(h[0], 256);
    cr_expect_eq(h[1], 128);
}

Test(config, missing_file_is_eio)
{
    cr_expect_eq(ohm_config_load(cfg, "/nonexistent/ohm.ini"), OHM_EIO);
    cr_expect(strstr(ohm_error_detail(), "/nonexistent/ohm.ini"));
}

Test(config, overrides_apply_after_a_file)
{
    cr_assert_eq(load("[optimizer]\nlr = 0.5\n"), OHM_OK);
    cr_assert_eq(ohm_config_set(cfg, " optimizer.lr = 0.25 ", "--set"), OHM_OK);
    cr_expect_eq(ohm_config_double(cfg, "optimizer.lr"), 0.25);
    cr_assert_eq(ohm_config_set(cfg, "net.key=/k/a b#c", "--set"), OHM_OK);
    cr_expect_str_eq(ohm_config_str(cfg, "net.key"), "/k/a b#c", "--set values are literal");
    cr_assert_eq(ohm_config_set(cfg, "model.hidden=", "--set"), OHM_OK);
    int h[2];
    cr_expect_eq(ohm_config_int_list(cfg, "model.hidden", h, 2), 0);
    /* A file loaded later can set the same key again: duplicates are per file. */
    cr_assert_eq(load("[optimizer]\nlr = 0.125\n"), OHM_OK);
    cr_expect_eq(ohm_config_double(cfg, "optimizer.lr"), 0.125);
}

/* Each value remembers where it was set, so later checks of its meaning can
 * name the line; a failed load changes no origin. */
Test(config, values_remember_their_origin)
{
    ohm_config_t *cfg = ohm_config_new();
    cr_expect_str_eq(ohm_config_origin(cfg, "model.hidden"), "default");
    const char *ini = "[model]\nhidden = 64\n\nactivation = tanh\n[device]\npreset = reram-sb\n";
    cr_assert_eq(ohm_config_load_string(cfg, ini, strlen(ini), "a.ini"), OHM_OK);
    cr_expect_str_eq(ohm_config_origin(cfg, "model.hidden"), "a.ini:2");
    cr_expect_str_eq(ohm_config_origin(cfg, "model.activation"), "a.ini:4");
    cr_expect_str_eq(ohm_config_origin(cfg, "device.c"), "a.ini:6", "set by the preset's line");
    cr_expect_str_eq(ohm_config_origin(cfg, "model.bias"), "default");
    cr_assert_eq(ohm_config_set(cfg, "model.hidden=32", "--set"), OHM_OK);
    cr_expect_str_eq(ohm_config_origin(cfg, "model.hidden"), "--set");
    const char *bad = "[model]\nhidden = 16\nbias = maybe\n";
    cr_expect_eq(ohm_config_load_string(cfg, bad, strlen(bad), "b.ini"), OHM_EINVAL);
    cr_expect_str_eq(ohm_config_origin(cfg, "model.hidden"), "--set");
    cr_expect_eq(ohm_config_set(cfg, "model.bias=maybe", "x"), OHM_EINVAL);
    cr_expect_str_eq(ohm_config_origin(cfg, "model.bias"), "default");
    /* A long path keeps its tail: the file name and the line. */
    char name[300];
    memset(name, 'd', sizeof name);
    memcpy(name + 280, "/deep.ini", 10);
    cr_assert_eq(ohm_config_load_string(cfg, ini, strlen(ini), name), OHM_OK);
    const char *o = ohm_config_origin(cfg, "model.activation");
    cr_expect(strncmp(o, "...", 3) == 0 && strstr(o, "/deep.ini:4") != NULL, "%s", o);
    ohm_config_destroy(&cfg);
}

Test(config, override_errors_name_their_origin)
{
    cr_expect_eq(ohm_config_set(cfg, "optimizer.lr", "--set"), OHM_EPARSE);
    cr_expect(strstr(ohm_error_detail(), "--set"));
    cr_expect_eq(ohm_config_set(cfg, "optimizer.lrr=1", "cli"), OHM_ENOTFOUND);
    cr_expect(strstr(ohm_error_detail(), "cli: unknown key 'optimizer.lrr'"), "%s",
              ohm_error_detail());
    cr_expect_eq(ohm_config_set(cfg, "lr=1", "cli"), OHM_ENOTFOUND);
    cr_expect_eq(ohm_config_set(cfg, "optimizer.lr=-1", "cli"), OHM_ERANGE);
    cr_expect(strstr(ohm_error_detail(), "cli: optimizer.lr"), "%s", ohm_error_detail());
    cr_expect_eq(ohm_config_set(cfg, "net.key=a\nb", "cli"), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "control character"), "%s", ohm_error_detail());
    cr_expect_eq(ohm_config_set(cfg, "aggregate.rule=avg", "cli"), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "krum"), "the detail lists the allowed values");
    cr_expect_eq(ohm_config_double(cfg, "optimizer.lr"), 0.1, "unchanged on error");
    cr_expect_str_eq(ohm_config_str(cfg, "aggregate.rule"), "weighted");
}

/* One bad line after one good one: the code, the detail naming run.ini:LINE,
 * and nothing applied (the good line is rolled back too). */
static void bad(const char *text, int code, const char *detail)
{
    cr_assert_eq(ohm_config_set(cfg, "train.rounds=7", "t"), OHM_OK);
    int rc = load(text);
    cr_expect_eq(rc, code, "'%s' gave %d (%s)", text, rc, ohm_error_detail());
    cr_expect(strstr(ohm_error_detail(), detail), "'%s': detail '%s' lacks '%s'", text,
              ohm_error_detail(), detail);
    cr_expect_eq(ohm_config_int(cfg, "train.rounds"), 7, "'%s' changed the config", text);
}

Test(config, every_error_names_file_and_line)
{
    bad("[train]\nrounds = 3\nrnds = 4\n", OHM_ENOTFOUND,
        "run.ini:3: unknown key 'rnds' in [train]");
    bad("[train]\nrounds = 3\n[training]\n", OHM_ENOTFOUND,
        "run.ini:3: unknown section [training] (known: data model device optimizer "
        "train aggregate net energy comm async)");
    bad("[train]\nrounds = 3\nseed = 1.5\n", OHM_EINVAL, "run.ini:3: train.seed: '1.5' is not");
    bad("[train]\nrounds = 3\nseed = \n", OHM_EINVAL, "run.ini:3: train.seed");
    bad("[train]\nrounds = 3\nseed = 99999999999999999999999\n", OHM_ERANGE, "run.ini:3:");
    bad("[train]\nrounds = 3\n[optimizer]\nlr = fast\n", OHM_EINVAL, "run.ini:4: optimizer.lr");
    bad("[train]\nrounds = 3\n[optimizer]\nlr = nan\n", OHM_EINVAL, "run.ini:4: optimizer.lr");
    bad("[train]\nrounds = 3\n[optimizer]\nlr = inf\n", OHM_EINVAL, "run.ini:4: optimizer.lr");
    bad("[train]\nrounds = 3\n[optimizer]\nlr = 1e999\n", OHM_ERANGE, "run.ini:4: optimizer.lr");
    bad("[train]\nrounds = 3\n[model]\nbias = maybe\n", OHM_EINVAL, "run.ini:4: model.bias");
    bad("[train]\nrounds = 3\n[device]\nresponse = quadratic\n", OHM_EINVAL,
        "run.ini:4: device.response: 'quadratic' is not one of ideal|softbounds|pow|exp|linear");
    bad("[train]\nrounds = 3\n[device]\nresponse = Ideal\n", OHM_EINVAL, "run.ini:4:");
    bad("[train]\nrounds = 3\n[device]\nbl = 33\n", OHM_ERANGE,
        "run.ini:4: device.bl: 33 is out of range (1..32)");
    bad("[train]\nrounds = 3\n[device]\nbl = 0\n", OHM_ERANGE, "run.ini:4: device.bl");
    bad("[train]\nrounds = 3\n[device]\nc = 1\n", OHM_ERANGE, "run.ini:4: device.c");
    bad("[train]\nrounds = 3\n[device]\ntau = 0\n", OHM_ERANGE, "run.ini:4: device.tau");
    bad("[train]\nrounds = 3\n[data]\nalpha = -0.5\n", OHM_ERANGE, "run.ini:4: data.alpha");
    bad("[train]\nrounds = 3\n[optimizer]\nbatch = 3000000000\n", OHM_ERANGE,
        "run.ini:4: optimizer.batch");
    bad("[train]\nrounds = 3\nseed\n", OHM_EPARSE, "run.ini:3: expected 'key = value'");
    bad("[train]\nrounds = 3\n= 4\n", OHM_EPARSE, "run.ini:3: missing key");
    bad("rounds = 3\n", OHM_EPARSE, "run.ini:1: key 'rounds' outside a [section]");
    bad("[train]\nrounds = 3\n\nrounds = 4\n", OHM_EPARSE,
        "run.ini:4: duplicate key train.rounds (first set at line 2)");
    bad("[train]\nrounds = 3\n[train\n", OHM_EPARSE, "run.ini:3: malformed section header");
    bad("[train]\nrounds = 3\n[train] x\n", OHM_EPARSE, "run.ini:3: malformed section header");
    bad("[train]\nrounds = 3\n[]\n", OHM_ENOTFOUND, "run.ini:3: unknown section");
    bad("[train]\nrounds = 3\n[net]\nkey = \"abc\n", OHM_EPARSE, "run.ini:4: unterminated");
    bad("[train]\nrounds = 3\n[net]\nkey = \"a\\nb\"\n", OHM_EPARSE, "run.ini:4: bad escape");
    bad("[train]\nrounds = 3\n[net]\nkey = \"a\" b\n", OHM_EPARSE, "run.ini:4: text after");
    bad("[train]\nrounds = 3\ndata.name = synthetic\n", OHM_ENOTFOUND, "run.ini:3: unknown key");
}

Test(config, nul_byte_is_an_error)
{
    const char text[] = "[train]\nrounds = 3\x00\n";
    cr_expect_eq(ohm_config_load_string(cfg, text, sizeof text - 1, "bin"), OHM_EPARSE);
    cr_expect(strstr(ohm_error_detail(), "bin:2: NUL byte"), "%s", ohm_error_detail());
}

Test(config, length_bounds_the_text)
{
    /* Only the first len bytes count: the rest (a bad line) is never read. */
    const char *text = "[train]\nrounds = 3\nbogus\n";
    cr_assert_eq(ohm_config_load_string(cfg, text, 19, "part"), OHM_OK);
    cr_expect_eq(ohm_config_int(cfg, "train.rounds"), 3);
    cr_expect_eq(ohm_config_load_string(cfg, "", 0, NULL), OHM_OK);
}

Test(config, int_lists)
{
    int h[8];
    cr_assert_eq(ohm_config_set(cfg, "model.hidden= 512 ,256,  64", "t"), OHM_OK);
    cr_expect_eq(ohm_config_int_list(cfg, "model.hidden", h, 8), 3);
    cr_expect(h[0] == 512 && h[1] == 256 && h[2] == 64);
    cr_expect_eq(ohm_config_int_list(cfg, "model.hidden", h, 2), -1, "more than max");
    cr_assert_eq(ohm_config_set(cfg, "model.hidden=0", "t"), OHM_OK);
    cr_expect_eq(ohm_config_int_list(cfg, "model.hidden", h, 8), 0);
    cr_assert_eq(ohm_config_set(cfg, "model.hidden=7", "t"), OHM_OK);
    cr_expect_eq(ohm_config_int_list(cfg, "model.hidden", h, 8), 1);
    cr_expect_eq(h[0], 7);
    cr_expect_eq(ohm_config_set(cfg, "model.hidden=1,,2", "t"), OHM_EINVAL);
    cr_expect_eq(ohm_config_set(cfg, "model.hidden=1,2,", "t"), OHM_EINVAL);
    cr_expect_eq(ohm_config_set(cfg, "model.hidden=1;2", "t"), OHM_EINVAL);
    cr_expect_eq(ohm_config_set(cfg, "model.hidden=128,0", "t"), OHM_ERANGE);
    cr_expect(strstr(ohm_error_detail(), "element 2"), "%s", ohm_error_detail());
    cr_expect_eq(ohm_config_set(cfg, "model.hidden=-5", "t"), OHM_ERANGE);
    cr_expect_eq(ohm_config_set(cfg, "model.hidden=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", "t"),
                 OHM_ERANGE);
    cr_expect_eq(ohm_config_set(cfg, "model.hidden=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", "t"),
                 OHM_OK);
    cr_expect_eq(ohm_config_int_list(cfg, "model.hidden", h, 8), -1);
    cr_expect_eq(ohm_config_set(cfg,
                                "model.hidden=65536,65536,65536,65536,65536,65536,65536,65536,"
                                "65536,65536,65536,65536,65536,65536,65536,65536",
                                "t"),
                 OHM_OK);
    cr_expect_eq(ohm_config_set(cfg, "model.hidden=65537", "t"), OHM_ERANGE);
}

Test(config, bools_accept_common_spellings)
{
    const char *yes[] = {"true", "TRUE", "yes", "on", "1"};
    const char *no[] = {"false", "No", "off", "0"};
    char a[64];
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        snprintf(a, sizeof a, "net.insecure=%s", yes[i]);
        cr_assert_eq(ohm_config_set(cfg, a, "t"), OHM_OK);
        cr_expect_eq(ohm_config_bool(cfg, "net.insecure"), 1, "%s", yes[i]);
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        snprintf(a, sizeof a, "net.insecure=%s", no[i]);
        cr_assert_eq(ohm_config_set(cfg, a, "t"), OHM_OK);
        cr_expect_eq(ohm_config_bool(cfg, "net.insecure"), 0, "%s", no[i]);
    }
}

Test(config, bounds_are_inclusive_or_exclusive_as_documented)
{
    cr_expect_eq(ohm_config_set(cfg, "device.bl=1", "t"), OHM_OK);
    cr_expect_eq(ohm_config_set(cfg, "device.bl=32", "t"), OHM_OK);
    cr_expect_eq(ohm_config_set(cfg, "device.c=-0.999", "t"), OHM_OK);
    cr_expect_eq(ohm_config_set(cfg, "device.c=-1", "t"), OHM_ERANGE);
    cr_expect_eq(ohm_config_set(cfg, "device.dw_min_dtod=0", "t"), OHM_OK);
    cr_expect_eq(ohm_config_set(cfg, "device.dw_min=0", "t"), OHM_ERANGE);
    cr_expect_eq(ohm_config_set(cfg, "aggregate.tau=-3", "t"), OHM_OK, "<= 0 means adaptive");
    cr_expect_eq(ohm_config_double(cfg, "aggregate.tau"), -3.0);
    cr_expect_eq(ohm_config_set(cfg, "train.seed=9000000000", "t"), OHM_OK, "seeds are 64-bit");
    cr_expect_eq(ohm_config_int(cfg, "train.seed"), 9000000000L);
    cr_expect_eq(ohm_config_set(cfg, "train.seed=-1", "t"), OHM_ERANGE);
}

Test(config, write_then_load_gives_identical_values)
{
    const char *sets[] = {
        "data.name=synthetic",
        "data.path=/d/a \"q\" #h ;s\\x",
        "data.alpha=0.1",
        "data.noise=0.30000000000000004",
        "model.hidden=256,128",
        "model.bias=false",
        "device.response=softbounds",
        "device.c=-0.25",
        "device.dw_min=1e-300",
        "optimizer.lr=0.123456789012345",
        "train.seed=12345678901",
        "aggregate.tau=-1",
        "aggregate.rule=multi-krum",
        "net.insecure=true",
        "net.run_id= spaced id ",
    };
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++)
        cr_assert_eq(ohm_config_set(cfg, sets[i], "t"), OHM_OK, "%s: %s", sets[i],
                     ohm_error_detail());
    char *a = written(cfg);
    ohm_config_t *fresh = ohm_config_new();
    char *d = written(fresh);
    cr_expect(strcmp(a, d) != 0, "non-defaults show in the written file");
    cr_assert_eq(ohm_config_load_string(fresh, a, strlen(a), "written"), OHM_OK, "%s",
                 ohm_error_detail());
    char *b = written(fresh);
    cr_expect_str_eq(a, b);
    cr_expect_str_eq(ohm_config_str(fresh, "data.path"), "/d/a \"q\" #h ;s\\x");
    cr_expect_str_eq(ohm_config_str(fresh, "net.run_id"), "spaced id");
    cr_expect_eq(ohm_config_double(fresh, "data.noise"), 0.30000000000000004);
    cr_expect_eq(ohm_config_double(fresh, "device.dw_min"), 1e-300);
    cr_expect_eq(ohm_config_double(fresh, "optimizer.lr"), 0.123456789012345);
    cr_expect_eq(ohm_config_int(fresh, "train.seed"), 12345678901L);
    int h[4];
    cr_expect_eq(ohm_config_int_list(fresh, "model.hidden", h, 4), 2);
    /* The empty list and the empty string survive too. */
    cr_assert_eq(ohm_config_set(fresh, "model.hidden=", "t"), OHM_OK);
    cr_assert_eq(ohm_config_set(fresh, "data.path=", "t"), OHM_OK);
    char *e = written(fresh);
    cr_assert_eq(ohm_config_load_string(cfg, e, strlen(e), "written"), OHM_OK);
    cr_expect_eq(ohm_config_int_list(cfg, "model.hidden", h, 4), 0);
    cr_expect_str_eq(ohm_config_str(cfg, "data.path"), "");
    free(a);
    free(b);
    free(d);
    free(e);
    ohm_config_destroy(&fresh);
}

Test(config, schema_lists_every_section_and_allowed_values)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ohm_config_print_schema(f);
    fclose(f);
    const char *must[] = {
        "[data]",      "[model]", "[device]",         "[optimizer]",      "[train]",
        "[aggregate]", "[net]",   "[comm]",           "round_timeout_ms", "fashion-mnist|synthetic",
        "multi-krum",  "1..32",   "checkpoint_every", "test_subset"};
    for (size_t i = 0; i < sizeof must / sizeof *must; i++)
        cr_expect(strstr(buf, must[i]), "schema lacks '%s'", must[i]);
    free(buf);
}
