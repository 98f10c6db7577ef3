/* Tests of the layer-list language, the plan of a spec (shapes, parameter
 * counts, fingerprints) and the model spec a configuration describes, with
 * errors that name where the key was set and the bad token. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ohm_config.h"
#include "ohm_data.h"
#include "ohm_error.h"
#include "ohm_layers.h"
#include "ohm_model.h"
#include "ohm_model_spec.h"
#include "ohm_plan.h"

static void round_trip(const char *text, const char *canon, int count)
{
    ohm_layer_spec_t l[OHM_LAYERS_MAX];
    int n = -1;
    cr_assert_eq(ohm_layers_parse(text, "t", l, &n), OHM_OK, "%s: %s", text, ohm_error_detail());
    cr_expect_eq(n, count, "%s", text);
    char buf[512];
    ohm_layers_format(l, n, buf, sizeof buf);
    cr_expect_str_eq(buf, canon);
    /* The canonical text reads back to the same layers. */
    ohm_layer_spec_t l2[OHM_LAYERS_MAX];
    int n2 = -1;
    cr_assert_eq(ohm_layers_parse(buf, "t", l2, &n2), OHM_OK);
    cr_expect_eq(n2, n);
    cr_expect_eq(memcmp(l, l2, sizeof(ohm_layer_spec_t) * (size_t)n), 0);
}

Test(layers, parse_and_format)
{
    round_trip("conv:6x5x5,pool:max2,conv:16x5x5,pool:max2,fc:120,fc:84,fc:10",
               "conv:6x5x5,pool:max2,conv:16x5x5,pool:max2,fc:120,fc:84,fc:10", 7);
    round_trip(" conv:6x5/p2 , pool:avg3/s2,flatten,  fc:10 ",
               "conv:6x5x5/p2,pool:avg3/s2,flatten,fc:10", 4);
    round_trip("conv:4x1x3/s2/p0,pool:max1x2/s1,fc:3", "conv:4x1x3/s2,pool:max1x2/s1,fc:3", 3);
    round_trip("conv:8x3x3/p1/s2", "conv:8x3x3/s2/p1", 1);
    round_trip("", "", 0);
    round_trip("   ", "", 0);
    ohm_layer_spec_t l[OHM_LAYERS_MAX];
    int n;
    cr_assert_eq(ohm_layers_parse("conv:6x5x3/s2/p1,pool:max2", "t", l, &n), OHM_OK);
    cr_expect(l[0].kind == OHM_LAYER_CONV && l[0].out == 6 && l[0].kh == 5 && l[0].kw == 3 &&
              l[0].stride == 2 && l[0].pad == 1);
    cr_expect(l[1].kind == OHM_LAYER_MAXPOOL && l[1].kh == 2 && l[1].kw == 2 && l[1].stride == 0);
}

/* Every bad token is refused with the origin, the token and the reason. */
Test(layers, bad_tokens_are_named)
{
    static const char *const bad[][2] = {
        {"conv:6x5y5,fc:10", "conv:6x5y5"},   {"conv:0x5,fc:10", "conv:0x5"},
        {"fc:10,,fc:3", ""},                   {"fc:10,", ""},
        {"pool:min2,fc:3", "pool:min2"},       {"pool:max2/p1,fc:3", "pool:max2/p1"},
        {"conv:6x5/s0", "conv:6x5/s0"},        {"conv:6x65", "conv:6x65"},
        {"conv:6x5/s1/s2", "conv:6x5/s1/s2"},  {"fc:65537", "fc:65537"},
        {"dense:10", "dense:10"},              {"fc:10x", "fc:10x"},
        {"Conv:6x5", "Conv:6x5"},              {"conv:6x5/q1", "conv:6x5/q1"},
        {"fc:-3", "fc:-3"},                    {"conv:99999999999999999999x3", "conv:9999"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ohm_layer_spec_t l[OHM_LAYERS_MAX];
        int n;
        cr_expect_eq(ohm_layers_parse(bad[i][0], "cfg.ini:7", l, &n), OHM_EINVAL, "%s", bad[i][0]);
        const char *d = ohm_error_detail();
        char want[80];
        snprintf(want, sizeof want, "bad token '%s", bad[i][1]);
        cr_expect(strstr(d, "cfg.ini:7: model.layers: ") == d, "%s", d);
        cr_expect(strstr(d, want) != NULL, "%s: %s", bad[i][0], d);
    }
    char many[400] = "";
    for (int i = 0; i < OHM_LAYERS_MAX + 1; i++)
        strcat(many, i ? ",fc:4" : "fc:4");
    ohm_layer_spec_t l[OHM_LAYERS_MAX];
    int n;
    cr_expect_eq(ohm_layers_parse(many, "t", l, &n), OHM_ETOOBIG);
}

static ohm_model_spec_t image_spec(const char *layers, int c, int h, int w, int out, int bias)
{
    ohm_model_spec_t s = {.n_in = c * h * w,
                          .n_out = out,
                          .bias = bias,
                          .in_shape = {c, h, w},
                          .act = OHM_ACT_RELU,
                          .loss = OHM_LOSS_XENT};
    cr_assert_eq(ohm_layers_parse(layers, "t", s.layers, &s.n_layers), OHM_OK);
    return s;
}

Test(layers, lenet5_plan)
{
    char text[128];
    snprintf(text, sizeof text, OHM_LENET5_LAYERS, 10);
    ohm_model_spec_t s = image_spec(text, 1, 28, 28, 10, 1);
    ohm_plan_t p;
    cr_assert_eq(ohm_plan_build(&s, &p), OHM_OK, "%s", ohm_error_detail());
    cr_expect_eq(p.n, 7);
    cr_expect_eq(p.ntiles, 5);
    cr_expect(p.images);
    /* 28x28x6 -> 14x14x6 -> 10x10x16 -> 5x5x16 -> 120 -> 84 -> 10 */
    const int oh[7] = {28, 14, 10, 5, 1, 1, 1}, oc[7] = {6, 6, 16, 16, 120, 84, 10};
    for (int i = 0; i < 7; i++) {
        cr_expect_eq(p.l[i].out_h, oh[i], "layer %d", i);
        cr_expect_eq(p.l[i].out_w, oh[i], "layer %d", i);
        cr_expect_eq(p.l[i].out_c, oc[i], "layer %d", i);
    }
    cr_expect_eq(p.l[0].cols, 26);
    cr_expect_eq(p.l[0].positions, 784);
    cr_expect_eq(p.l[2].cols, 151);
    cr_expect_eq(p.l[4].cols, 401);
    cr_expect_eq(p.l[1].tile, -1);
    cr_expect_eq(p.l[4].tile, 2);
    cr_expect_eq(p.nparams, 6u * 26 + 16 * 151 + 120 * 401 + 84 * 121 + 10 * 85);
    cr_expect_eq(p.l[2].off, 6u * 26);
    ohm_model_t *m = NULL;
    cr_assert_eq(ohm_model_new(&s, NULL, NULL, &m), OHM_OK);
    cr_expect_eq(ohm_model_nparams(m), p.nparams);
    cr_expect_eq(ohm_model_layers(m), 5);
    cr_expect_eq(ohm_tile_cols(ohm_model_tile(m, 1)), 151);
    ohm_model_destroy(&m);
    /* Stride and no bias. */
    s = image_spec("conv:4x3x3/s2/p1,pool:avg2x3/s1,fc:5", 2, 9, 8, 5, 0);
    cr_assert_eq(ohm_plan_build(&s, &p), OHM_OK, "%s", ohm_error_detail());
    cr_expect_eq(p.l[0].out_h, 5); /* (9 + 2 - 3) / 2 + 1 */
    cr_expect_eq(p.l[0].out_w, 4); /* (8 + 2 - 3) / 2 + 1 */
    cr_expect_eq(p.l[0].cols, 18);
    cr_expect_eq(p.l[1].out_h, 4);
    cr_expect_eq(p.l[1].out_w, 2);
    cr_expect_eq(p.l[2].cols, 4 * 4 * 2);
}

static void plan_error(const char *layers, int c, int h, int w, int out, const char *want)
{
    ohm_model_spec_t s = image_spec(layers, c, h, w, out, 1);
    ohm_plan_t p;
    cr_expect_eq(ohm_plan_build(&s, &p), OHM_EINVAL, "%s", layers);
    cr_expect(strstr(ohm_error_detail(), want) != NULL, "%s: %s", layers, ohm_error_detail());
}

Test(layers, shapes_that_do_not_fit)
{
    plan_error("conv:6x5x5,conv:6x5x5,conv:6x5x5,fc:10", 1, 12, 12, 10,
               "layer 3 'conv:6x5x5': window 5x5 larger than its input 4x4");
    plan_error("fc:20,conv:6x3,fc:10", 1, 8, 8, 10, "layer 2 'conv:6x3x3' needs an image");
    plan_error("flatten,pool:max2,fc:10", 1, 8, 8, 10, "layer 2 'pool:max2' needs an image");
    plan_error("conv:2x3,fc:12", 1, 8, 8, 10, "the last layer must be fc:10");
    plan_error("conv:2x3", 1, 8, 8, 10, "the last layer must be fc:10");
    plan_error("conv:2x3/p3,fc:10", 1, 8, 8, 10, "padding 3 must be smaller than the kernel");
    plan_error("fc:10,flatten", 1, 8, 8, 10, "layer 2 'flatten': it follows a dense layer");
    /* A vector input (no shape) takes dense layers only. */
    ohm_model_spec_t s = {.n_in = 16, .n_out = 3, .act = OHM_ACT_RELU};
    cr_assert_eq(ohm_layers_parse("conv:2x1x3,fc:3", "t", s.layers, &s.n_layers), OHM_OK);
    ohm_plan_t p;
    cr_expect_eq(ohm_plan_build(&s, &p), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "the input is a vector") != NULL, "%s",
              ohm_error_detail());
    s.in_shape[0] = 2; /* 2 x 1 x 7 != 16 */
    s.in_shape[1] = 1;
    s.in_shape[2] = 7;
    cr_expect_eq(ohm_plan_build(&s, &p), OHM_EINVAL);
}

Test(layers, fingerprints_separate_architectures)
{
    ohm_model_spec_t mlp = {.n_in = 784, .n_out = 10, .n_hidden = 1, .hidden = {128}, .bias = 1};
    ohm_model_spec_t fc = image_spec("fc:128,fc:10", 1, 28, 28, 10, 1);
    ohm_model_spec_t fl = image_spec("flatten,fc:128,fc:10", 1, 28, 28, 10, 1);
    ohm_plan_t a, b, c;
    cr_assert_eq(ohm_plan_build(&mlp, &a), OHM_OK);
    cr_assert_eq(ohm_plan_build(&fc, &b), OHM_OK);
    cr_assert_eq(ohm_plan_build(&fl, &c), OHM_OK);
    /* The same MLP, however it is written: the same model, one fingerprint. */
    cr_expect_eq(ohm_plan_fingerprint(&a, 1), ohm_plan_fingerprint(&b, 1));
    cr_expect_eq(ohm_plan_fingerprint(&a, 1), ohm_plan_fingerprint(&c, 1));
    cr_expect_neq(ohm_plan_fingerprint(&a, 1), ohm_plan_fingerprint(&a, 0));
    /* Every conv/pool hyper-parameter enters, even where the parameter count does not change. */
    static const char *const nets[] = {
        "conv:6x5x5,pool:max2,fc:10",    "conv:6x5x5,pool:avg2,fc:10", "conv:6x5x5/p2,pool:max2,fc:10",
        "conv:6x5x5,pool:max2/s1,fc:10", "conv:6x5x5/s2,fc:10",        "conv:6x3x3,conv:6x3x3,fc:10",
        "conv:150x1,fc:10",
    };
    uint64_t fp[8];
    int k = (int)(sizeof nets / sizeof nets[0]);
    for (int i = 0; i < k; i++) {
        ohm_model_spec_t s = image_spec(nets[i], 1, 28, 28, 10, 1);
        ohm_plan_t p;
        cr_assert_eq(ohm_plan_build(&s, &p), OHM_OK, "%s: %s", nets[i], ohm_error_detail());
        fp[i] = ohm_plan_fingerprint(&p, 1);
        cr_expect_neq(fp[i], ohm_plan_fingerprint(&a, 1), "%s", nets[i]);
        for (int j = 0; j < i; j++)
            cr_expect_neq(fp[i], fp[j], "%s vs %s", nets[i], nets[j]);
    }
    /* A model reports its plan's fingerprint. */
    ohm_model_spec_t s = image_spec(nets[0], 1, 28, 28, 10, 1);
    ohm_model_t *m = NULL;
    cr_assert_eq(ohm_model_new(&s, NULL, NULL, &m), OHM_OK);
    cr_expect_eq(ohm_model_fingerprint(m), fp[0]);
    ohm_model_destroy(&m);
}

/* Synthetic data of dim 12: an image of 1 x 1 x 12. */
static ohm_data_t *synth(ohm_config_t *cfg)
{
    cr_assert_eq(ohm_config_set(cfg, "data.name=synthetic", "t"), OHM_OK);
    cr_assert_eq(ohm_config_set(cfg, "data.dim=12", "t"), OHM_OK);
    cr_assert_eq(ohm_config_set(cfg, "data.classes=3", "t"), OHM_OK);
    cr_assert_eq(ohm_config_set(cfg, "data.train_size=30", "t"), OHM_OK);
    cr_assert_eq(ohm_config_set(cfg, "data.test_size=10", "t"), OHM_OK);
    ohm_data_t *d = NULL;
    cr_assert_eq(ohm_data_open(cfg, 1, 0, &d), OHM_OK, "%s", ohm_error_detail());
    int shape[3];
    ohm_data_shape(d, shape);
    cr_assert(shape[0] == 1 && shape[1] == 1 && shape[2] == 12);
    return d;
}

Test(layers, spec_from_config)
{
    ohm_config_t *cfg = ohm_config_new();
    ohm_data_t *d = synth(cfg);
    ohm_model_spec_t s;
    /* The default: the MLP of model.hidden. */
    cr_assert_eq(ohm_model_spec_from_config(cfg, d, &s), OHM_OK);
    cr_expect_eq(s.n_layers, 0);
    cr_expect_eq(s.n_hidden, 1);
    cr_expect_eq(s.hidden[0], 128);
    cr_expect_eq(s.n_in, 12);
    cr_expect_eq(s.n_out, 3);
    /* A custom one-dimensional CNN from a file: shapes from the data. */
    const char *ini = "[model]\narch = custom\n\nlayers = conv:4x1x3/p0, pool:max1x2, fc:3\n"
                      "activation = tanh\n";
    cr_assert_eq(ohm_config_load_string(cfg, ini, strlen(ini), "net.ini"), OHM_OK);
    cr_expect_str_eq(ohm_config_origin(cfg, "model.layers"), "net.ini:4");
    cr_expect_str_eq(ohm_config_origin(cfg, "model.bias"), "default");
    cr_assert_eq(ohm_model_spec_from_config(cfg, d, &s), OHM_OK, "%s", ohm_error_detail());
    cr_expect_eq(s.n_layers, 3);
    cr_expect_eq(s.act, OHM_ACT_TANH);
    cr_expect(s.in_shape[0] == 1 && s.in_shape[1] == 1 && s.in_shape[2] == 12);
    ohm_model_t *m = NULL;
    cr_assert_eq(ohm_model_new(&s, NULL, NULL, &m), OHM_OK);
    cr_expect_eq(ohm_model_nparams(m), 4u * 4 + 3 * (4 * 5 + 1));
    ohm_model_destroy(&m);
    /* A bad token names the file, the line and the token. */
    const char *bad = "[model]\narch = custom\nlayers = conv:4x1x3,pool:mx2,fc:3\n";
    cr_assert_eq(ohm_config_load_string(cfg, bad, strlen(bad), "bad.ini"), OHM_OK);
    cr_expect_eq(ohm_model_spec_from_config(cfg, d, &s), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "bad.ini:3: model.layers: bad token 'pool:mx2'") != NULL,
              "%s", ohm_error_detail());
    /* A shape that does not fit names the origin and the layer. */
    cr_assert_eq(ohm_config_set(cfg, "model.layers=conv:4x3x3,fc:3", "--set"), OHM_OK);
    cr_expect_eq(ohm_model_spec_from_config(cfg, d, &s), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "--set: model.layers for input 1x1x12") != NULL &&
                  strstr(ohm_error_detail(), "'conv:4x3x3'") != NULL,
              "%s", ohm_error_detail());
    /* lenet5 needs an image of at least 5 x 5: refused on this data, naming the arch. */
    cr_assert_eq(ohm_config_set(cfg, "model.layers=", "t"), OHM_OK);
    cr_assert_eq(ohm_config_set(cfg, "model.arch=lenet5", "--set"), OHM_OK);
    cr_expect_eq(ohm_model_spec_from_config(cfg, d, &s), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "model.arch = lenet5") != NULL, "%s", ohm_error_detail());
    /* Layers with another arch, and custom without layers, are contradictions. */
    cr_assert_eq(ohm_config_set(cfg, "model.arch=mlp", "t"), OHM_OK);
    cr_assert_eq(ohm_config_set(cfg, "model.layers=fc:3", "x.ini:9"), OHM_OK);
    cr_expect_eq(ohm_model_spec_from_config(cfg, d, &s), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "x.ini:9: model.layers is set") != NULL, "%s",
              ohm_error_detail());
    cr_assert_eq(ohm_config_set(cfg, "model.layers=", "t"), OHM_OK);
    cr_assert_eq(ohm_config_set(cfg, "model.arch=custom", "y.ini:2"), OHM_OK);
    cr_expect_eq(ohm_model_spec_from_config(cfg, d, &s), OHM_EINVAL);
    cr_expect(strstr(ohm_error_detail(), "y.ini:2: model.arch = custom needs model.layers") !=
                  NULL,
              "%s", ohm_error_detail());
    ohm_data_destroy(&d);
    ohm_config_destroy(&cfg);
}
