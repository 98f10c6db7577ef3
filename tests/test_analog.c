/* Analog parameters from the configuration: the [device] and [optimizer]
 * keys, device presets and the tile factory (ohm_analog). */
#include "ohm_analog.h"
#include "ohm_analog_tile.h"
#include "ohm_config.h"
#include "ohm_error.h"
#include "ohm_tile.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Test(analog, params_from_config_and_factory)
{
    ohm_config_t *cfg = ohm_config_new();
    cr_assert(cfg);
    ohm_analog_ctx_t ctx = {.seed = 1, .peer = 0};
    cr_assert_eq(ohm_analog_params_from_config(cfg, &ctx.params), OHM_OK, "%s", ohm_error_detail());
    cr_expect_eq(ctx.params.opt, OHM_OPT_DIGITAL);
    ohm_tile_t *t = ohm_analog_tile_factory(&ctx, 0, 3, 4);
    cr_expect_str_eq(ohm_tile_kind(t), "digital");
    cr_expect_not(ohm_analog_tile_is(t));
    ohm_tile_destroy(&t);
    const char *sets[] = {"device.response=softbounds",
                          "device.tau=3.5",
                          "device.c=0.1",
                          "device.update=stochastic",
                          "device.bl=16",
                          "optimizer.name=residual",
                          "optimizer.beta=0.02",
                          "optimizer.gamma=0.5",
                          "optimizer.buffered=true",
                          "device.out_noise=0.06",
                          "device.update_management=false",
                          "device.update_bl_management=true",
                          "device.asymmetry_convention=aihwkit",
                          "device.response=linear"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        cr_assert_eq(ohm_config_set(cfg, sets[i], "--set"), OHM_OK, "%s", sets[i]);
    cr_assert_eq(ohm_analog_params_from_config(cfg, &ctx.params), OHM_OK);
    cr_expect_eq(ctx.params.dev.response, OHM_RESP_LINEAR);
    cr_expect_eq(ctx.params.dev.tau, 3.5);
    cr_expect_eq(ctx.params.update_management, 0);
    cr_expect_eq(ctx.params.update_bl_management, 1);
    cr_expect_eq(ctx.params.dev.convention, OHM_ASYM_AIHWKIT);
    cr_expect_eq(ctx.params.update, OHM_UPDATE_STOCHASTIC);
    cr_expect_eq(ctx.params.bl, 16);
    cr_expect_eq(ctx.params.opt, OHM_OPT_RESIDUAL);
    cr_expect_eq(ctx.params.gamma, 0.5);
    cr_expect(ctx.params.buffered);
    t = ohm_analog_tile_factory(&ctx, 1, 3, 4);
    cr_expect_str_eq(ohm_tile_kind(t), "residual");
    cr_expect(ohm_analog_tile_is(t));
    ohm_tile_destroy(&t);
    /* An ADC without a range is refused with the key named. */
    cr_assert_eq(ohm_config_set(cfg, "device.out_bits=9", "--set"), OHM_OK);
    cr_expect_eq(ohm_analog_params_from_config(cfg, &ctx.params), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "device.out_bound") != NULL);
    ohm_config_destroy(&cfg);
}

/* device.preset sets the device keys when it is read; keys set after it win. */
Test(analog, presets_and_overrides)
{
    ohm_config_t *cfg = ohm_config_new();
    ohm_analog_params_t p;
    cr_assert_eq(ohm_config_set(cfg, "device.preset=reram-sb", "--set"), OHM_OK);
    cr_assert_eq(ohm_analog_params_from_config(cfg, &p), OHM_OK, "%s", ohm_error_detail());
    cr_expect_eq(p.dev.response, OHM_RESP_SOFTBOUNDS);
    cr_expect_eq(p.dev.c, -0.25);
    cr_expect(fabs(p.dev.dw_min - 0.002 * 16 / 15) < 1e-15);
    cr_expect_eq(p.dev.dw_min_std, 3.75);
    cr_expect_eq(p.dev.convention, OHM_ASYM_AIHWKIT);
    /* An override after the preset, even back to the default value, wins. */
    cr_assert_eq(ohm_config_set(cfg, "device.dw_min_std=0", "--set"), OHM_OK);
    cr_assert_eq(ohm_analog_params_from_config(cfg, &p), OHM_OK);
    cr_expect_eq(p.dev.dw_min_std, 0.0);
    cr_expect_eq(p.dev.c, -0.25);
    /* The written configuration reads back to the same parameters. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(ohm_config_write(cfg, f), OHM_OK);
    fclose(f);
    ohm_config_t *back = ohm_config_new();
    ohm_analog_params_t q;
    cr_assert_eq(ohm_config_load_string(back, buf, len, "written"), OHM_OK, "%s",
                 ohm_error_detail());
    cr_assert_eq(ohm_analog_params_from_config(back, &q), OHM_OK);
    cr_expect(memcmp(&p.dev, &q.dev, sizeof p.dev) == 0);
    free(buf);
    ohm_config_destroy(&back);
    /* In a file the preset comes first: after a key it sets, it is an error. */
    const char *bad = "[device]\ndw_min = 0.01\npreset = capacitor\n";
    cr_expect_eq(ohm_config_load_string(cfg, bad, strlen(bad), "run.ini"), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "run.ini:3") &&
                  strstr(ohm_error_detail(), "device.dw_min"),
              "%s", ohm_error_detail());
    const char *good = "[device]\npreset = capacitor\ndw_min = 0.01\n";
    cr_assert_eq(ohm_config_load_string(cfg, good, strlen(good), "run.ini"), OHM_OK, "%s",
                 ohm_error_detail());
    cr_assert_eq(ohm_analog_params_from_config(cfg, &p), OHM_OK);
    cr_expect_eq(p.dev.response, OHM_RESP_LINEAR);
    cr_expect_eq(p.dev.gamma, 0.05);
    cr_expect_eq(p.dev.dw_min, 0.01);
    /* Every preset is a valid model. */
    const char *names[] = {"idealized", "gokmen-vlasov", "reram-sb", "capacitor"};
    for (int i = 0; i < 4; i++) {
        char a[64];
        snprintf(a, sizeof a, "device.preset=%s", names[i]);
        cr_assert_eq(ohm_config_set(cfg, a, "t"), OHM_OK, "%s", names[i]);
        cr_expect_eq(ohm_analog_params_from_config(cfg, &p), OHM_OK, "%s: %s", names[i],
                     ohm_error_detail());
    }
    ohm_config_destroy(&cfg);
}
