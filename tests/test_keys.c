/* test_keys: key generation, Z85, key files (modes, atomic replacement,
 * refusal of readable secrets) and the `ohmpeer keygen` subcommand. */
#include "ohm_error.h"
#include "ohm_keys.h"

/* The subcommand is part of the ohmpeer program, not of libohm: build it in. */
#include "../peer/ohm_cli_keygen.c"

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/ohm-test-keys-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(keys, .init = make_dir, .fini = remove_dir);

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return st.st_mode & 07777;
}

Test(keys, generate_is_a_curve_pair)
{
    uint8_t pub[32], sec[32], pub2[32], sec2[32], derived[32];
    cr_assert_eq(ohm_keys_generate(pub, sec), OHM_OK);
    cr_assert_eq(ohm_keys_generate(pub2, sec2), OHM_OK);
    cr_expect_neq(memcmp(pub, pub2, 32), 0);
    crypto_scalarmult_base(derived, sec);
    cr_expect_arr_eq(derived, pub, 32);
}

Test(keys, z85_round_trip_and_rejects)
{
    /* the CURVE example key pair from the ZeroMQ documentation */
    const char *z = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    uint8_t k[32];
    cr_assert_eq(ohm_keys_decode(z, k), OHM_OK, "%s", ohm_error_detail());
    char back[41];
    ohm_keys_encode(k, back);
    cr_expect_str_eq(back, z);

    cr_expect_eq(ohm_keys_decode("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf", k), OHM_EINVAL);
    cr_expect_eq(ohm_keys_decode("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7x", k), OHM_EINVAL);
    cr_expect_eq(ohm_keys_decode("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]y f7", k), OHM_EINVAL);
    cr_expect_eq(ohm_keys_decode("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]y\"7", k), OHM_EINVAL);
    /* "#####" is 85^5 - 1, over 32 bits: not the spelling of any bytes */
    cr_expect_eq(ohm_keys_decode("#####Lns47E1%kR.o@n%FcmmsL/@{H8]yf7rq:rM", k), OHM_EINVAL);
    cr_expect_eq(ohm_keys_decode(NULL, k), OHM_EINVAL);
}

Test(keys, write_then_read)
{
    uint8_t pub[32], sec[32], pub2[32], sec2[32];
    cr_assert_eq(ohm_keys_generate(pub, sec), OHM_OK);
    char prefix[300], kp[320], pp[320];
    path_of(prefix, sizeof prefix, "peer-0");
    cr_assert_eq(ohm_keys_write(prefix, pub, sec), OHM_OK, "%s", ohm_error_detail());
    snprintf(kp, sizeof kp, "%s.key", prefix);
    snprintf(pp, sizeof pp, "%s.pub", prefix);
    cr_expect_eq(mode_of(kp), 0600);
    cr_expect_eq(mode_of(pp), 0644);
    cr_assert_eq(ohm_keys_read_secret(kp, pub2, sec2), OHM_OK, "%s", ohm_error_detail());
    cr_expect_arr_eq(sec2, sec, 32);
    cr_expect_arr_eq(pub2, pub, 32);
    /* the .pub file is one Z85 line the topology can quote */
    FILE *f = fopen(pp, "r");
    char line[64] = {0};
    cr_assert(fgets(line, sizeof line, f));
    fclose(f);
    char z[41];
    ohm_keys_encode(pub, z);
    cr_expect_eq(strlen(line), 41);
    cr_expect_eq(strncmp(line, z, 40), 0);
    /* rewriting replaces atomically and leaves no temp files */
    cr_assert_eq(ohm_keys_generate(pub, sec), OHM_OK);
    cr_assert_eq(ohm_keys_write(prefix, pub, sec), OHM_OK);
    cr_assert_eq(ohm_keys_read_secret(kp, pub2, sec2), OHM_OK);
    cr_expect_arr_eq(pub2, pub, 32);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test $(ls '%s' | wc -l) -eq 2", dir);
    cr_expect_eq(system(cmd), 0, "only the .key and .pub files remain");
}

Test(keys, readable_secret_refused)
{
    uint8_t pub[32], sec[32];
    cr_assert_eq(ohm_keys_generate(pub, sec), OHM_OK);
    char prefix[300], kp[320];
    path_of(prefix, sizeof prefix, "peer-1");
    cr_assert_eq(ohm_keys_write(prefix, pub, sec), OHM_OK);
    snprintf(kp, sizeof kp, "%s.key", prefix);
    mode_t bad[] = {0640, 0604, 0620, 0602, 0601, 0610};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(chmod(kp, bad[i]), 0);
        int rc = ohm_keys_read_secret(kp, pub, sec);
        cr_expect_eq(rc, OHM_EPERM, "mode %04o", (unsigned)bad[i]);
        char m[16];
        snprintf(m, sizeof m, "%04o", (unsigned)bad[i]);
        cr_expect(strstr(ohm_error_detail(), m) && strstr(ohm_error_detail(), kp),
                  "detail names file and mode: %s", ohm_error_detail());
    }
    cr_assert_eq(chmod(kp, 0400), 0);
    cr_expect_eq(ohm_keys_read_secret(kp, pub, sec), OHM_OK, "owner-only read is fine");
}

Test(keys, secret_owned_by_another_user_refused)
{
    if (geteuid() != 0) cr_skip_test("needs root to give the file to another user; skipped");
    uint8_t pub[32], sec[32];
    cr_assert_eq(ohm_keys_generate(pub, sec), OHM_OK);
    char prefix[300], kp[320];
    path_of(prefix, sizeof prefix, "peer-2");
    cr_assert_eq(ohm_keys_write(prefix, pub, sec), OHM_OK);
    snprintf(kp, sizeof kp, "%s.key", prefix);
    cr_assert_eq(chown(kp, 65534, 65534), 0); /* nobody */
    cr_expect_eq(ohm_keys_read_secret(kp, pub, sec), OHM_EPERM);
    cr_expect(strstr(ohm_error_detail(), "65534") && strstr(ohm_error_detail(), kp),
              "detail names the file and its owner: %s", ohm_error_detail());
    cr_assert_eq(chown(kp, 0, 0), 0);
    cr_expect_eq(ohm_keys_read_secret(kp, pub, sec), OHM_OK);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(chmod(path, mode), 0);
}

Test(keys, bad_files)
{
    uint8_t pub[32], sec[32];
    char p[320];
    path_of(p, sizeof p, "missing.key");
    cr_expect_eq(ohm_keys_read_secret(p, pub, sec), OHM_EIO);
    cr_expect(strstr(ohm_error_detail(), "missing.key") != NULL);
    path_of(p, sizeof p, "garbage.key");
    write_file(p, "not a key at all\n", 0600);
    cr_expect_eq(ohm_keys_read_secret(p, pub, sec), OHM_EAUTH);
    cr_expect(strstr(ohm_error_detail(), "garbage.key") != NULL);
    path_of(p, sizeof p, "two.key");
    write_file(
        p, "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\nrq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\n",
        0600);
    cr_expect_eq(ohm_keys_read_secret(p, pub, sec), OHM_EAUTH);
    path_of(p, sizeof p, "ok.key");
    write_file(p, "  rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\r\n", 0600);
    cr_expect_eq(ohm_keys_read_secret(p, pub, sec), OHM_OK, "%s", ohm_error_detail());
    cr_expect_eq(ohm_keys_read_secret(dir, pub, sec), OHM_EIO, "a directory is not a key file");
    char prefix[320];
    path_of(prefix, sizeof prefix, "no/such/dir/peer");
    cr_expect_eq(ohm_keys_write(prefix, pub, sec), OHM_EIO);
    cr_expect(strstr(ohm_error_detail(), "no/such/dir") != NULL, "%s", ohm_error_detail());
}

static int keygen(const char *a1, const char *a2, const char *a3)
{
    char *argv[] = {"keygen", (char *)a1, (char *)a2, (char *)a3, NULL};
    int argc = 1 + (a1 != NULL) + (a2 != NULL) + (a3 != NULL);
    return ohm_cli_keygen(argc, argv);
}

Test(keys, keygen_command)
{
    cr_redirect_stdout();
    cr_redirect_stderr();
    char prefix[300], kp[320];
    path_of(prefix, sizeof prefix, "k");
    snprintf(kp, sizeof kp, "%s.key", prefix);
    cr_expect_eq(keygen(NULL, NULL, NULL), 2, "--out is required");
    cr_expect_eq(keygen("--bogus", NULL, NULL), 2);
    cr_expect_eq(keygen("--out", NULL, NULL), 2);
    cr_expect_eq(keygen("--help", NULL, NULL), 0);
    cr_assert_eq(keygen("--out", prefix, NULL), 0);
    cr_expect_eq(mode_of(kp), 0600);
    uint8_t pub[32], sec[32], pub2[32], sec2[32];
    cr_assert_eq(ohm_keys_read_secret(kp, pub, sec), OHM_OK);
    cr_expect_eq(keygen("--out", prefix, NULL), 1, "refuses to overwrite");
    cr_assert_eq(ohm_keys_read_secret(kp, pub2, sec2), OHM_OK);
    cr_expect_arr_eq(sec2, sec, 32, "the old key is untouched");
    cr_expect_eq(keygen("--out", prefix, "--force"), 0);
    cr_assert_eq(ohm_keys_read_secret(kp, pub2, sec2), OHM_OK);
    cr_expect_neq(memcmp(sec2, sec, 32), 0, "--force replaced it");
}
