/* Analog parameters from the configuration: the [device] and [optimizer]
 * keys, device presets and the tile factory (ohm_analog). */
#include "ohm_analog.h"
#include "ohm_analog_tile.h"
#include "ohm_config.h"
#include "ohm_error.h"
#include "ohm_model.h"
#include "ohm_rng.h"
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

/* The model's counters (what the metrics report) are the sums of its tiles'
 * own counters, field by field, for every optimizer and pulsing mode; the
 * training reads are batch x steps per tile, and a digital model counts nothing. */
Test(analog, model_counters_are_the_tiles_counters)
{
    const char *modes[][3] = {
        {"optimizer.name=analog-sgd", "device.granular=true", "aggregate.writeback=exact"},
        {"optimizer.name=tiki-taka", "device.granular=true", "optimizer.transfer_columns=3"},
        {"optimizer.name=residual", "device.update=stochastic", "optimizer.buffered=true"},
        {"optimizer.name=residual", "device.update=stochastic", "optimizer.buffered=false"},
        {"optimizer.name=digital", "device.granular=true", "optimizer.beta=0.1"},
    };
    enum { N = 8, IN = 6, H = 5, OUT = 3, STEPS = 7 };
    float x[N * IN];
    int32_t y[N];
    ohm_rng_t rng;
    ohm_rng_seed(&rng, 5, 0, 0);
    for (int i = 0; i < N * IN; i++)
        x[i] = (float)(2 * ohm_rng_uniform(&rng) - 1);
    for (int i = 0; i < N; i++)
        y[i] = i % OUT;
    ohm_batch_t b = {.n = N, .dim = IN, .x = x, .y = y};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        ohm_config_t *cfg = ohm_config_new();
        cr_assert(cfg);
        cr_assert_eq(ohm_config_set(cfg, "device.response=softbounds", "--set"), OHM_OK);
        for (int k = 0; k < 3; k++)
            cr_assert_eq(ohm_config_set(cfg, modes[m][k], "--set"), OHM_OK, "%s", modes[m][k]);
        ohm_analog_ctx_t ctx = {.seed = 3, .peer = 1};
        cr_assert_eq(ohm_analog_params_from_config(cfg, &ctx.params), OHM_OK, "%s",
                     ohm_error_detail());
        ohm_model_spec_t spec = {.n_in = IN,
                                 .n_out = OUT,
                                 .n_hidden = 1,
                                 .hidden = {H},
                                 .act = OHM_ACT_TANH,
                                 .loss = OHM_LOSS_XENT,
                                 .bias = 1};
        ohm_model_t *model = NULL;
        cr_assert_eq(ohm_model_new(&spec, ohm_analog_tile_factory, &ctx, &model), OHM_OK);
        ohm_model_init(model, &rng);
        for (int s = 0; s < STEPS; s++)
            cr_assert_eq(ohm_model_train_step(model, &b, 0.5f, NULL), OHM_OK);
        /* A pulsed write-back of shifted weights programs cells too. */
        size_t np = ohm_model_nparams(model);
        float *w = malloc(np * sizeof *w);
        cr_assert(w);
        ohm_model_get_params(model, w);
        for (size_t i = 0; i < np; i++)
            w[i] += 0.01f;
        ohm_model_set_params(model, w, OHM_WB_PULSED);
        free(w);

        ohm_tile_counters_t sum, own, c;
        int analog = ctx.params.opt != OHM_OPT_DIGITAL;
        cr_expect_eq(ohm_model_counters(model, &sum), analog ? 2 : 0, "%s", modes[m][0]);
        memset(&own, 0, sizeof own);
        for (int l = 0; l < ohm_model_layers(model); l++) {
            ohm_tile_t *tile = ohm_model_tile(model, l);
            cr_expect_eq(ohm_tile_counters(tile, &c), analog);
            if (!analog) continue;
            /* The tile's own count, through its module's accessor. */
            ohm_analog_counters_t a = ohm_analog_tile_counters(tile);
            cr_expect_eq(memcmp(&a, &c, sizeof a), 0, "%s layer %d", modes[m][0], l);
            cr_expect_eq(a.forward_mvms, (uint64_t)(N * STEPS), "%s layer %d", modes[m][0], l);
            cr_expect_eq(a.backward_mvms, l > 0 ? (uint64_t)(N * STEPS) : 0, "%s layer %d",
                         modes[m][0], l);
            cr_expect_eq(a.dac, a.forward_mvms * (uint64_t)ohm_tile_cols(tile) +
                                    a.backward_mvms * (uint64_t)ohm_tile_rows(tile) +
                                    a.transfer_mvms * (uint64_t)ohm_tile_cols(tile));
            cr_expect_gt(a.update_pulses, 0, "%s layer %d", modes[m][0], l);
            cr_expect_gt(a.program_pulses, 0, "%s layer %d", modes[m][0], l);
            own.update_pulses += a.update_pulses;
            own.program_pulses += a.program_pulses;
            own.train_slots += a.train_slots;
            own.line_pulses += a.line_pulses;
            own.program_slots += a.program_slots;
            own.forward_mvms += a.forward_mvms;
            own.backward_mvms += a.backward_mvms;
            own.transfer_mvms += a.transfer_mvms;
            own.dac += a.dac;
            own.adc += a.adc;
            own.cells_programmed += a.cells_programmed;
        }
        cr_expect_eq(memcmp(&own, &sum, sizeof own), 0, "%s: model sum != tiles' counts",
                     modes[m][0]);
        if (analog) {
            int stochastic = strstr(modes[m][1], "stochastic") != NULL;
            cr_expect_eq(sum.train_slots > 0, stochastic, "%s", modes[m][0]);
            /* A programming operation lasts at least one slot, at most its pulses. */
            cr_expect_gt(sum.program_slots, 0, "%s", modes[m][0]);
            cr_expect_leq(sum.program_slots,
                          sum.program_pulses + (stochastic ? 0 : sum.update_pulses));
        }
        ohm_model_destroy(&model);
        ohm_config_destroy(&cfg);
    }
}
