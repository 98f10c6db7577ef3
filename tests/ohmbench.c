/* ohmbench: dispatcher of the benchmark kinds (docs/benchmarks.md). */
#include "ohmbench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Kinds are weak so the dispatcher links whichever bench_*.c files were built. */
#pragma weak ohm_bench_wire
#pragma weak ohm_bench_round
#pragma weak ohm_bench_aggregate
#pragma weak ohm_bench_tile
#pragma weak ohm_bench_flatness
#pragma weak ohm_bench_curve
#pragma weak ohm_bench_model
#pragma weak ohm_bench_compress

double ohm_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double ohm_bench_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ohm_bench_emit(const char *name, double value, const char *unit, const char *baseline,
                    double baseline_value)
{
    if (baseline)
        printf("{\"name\":\"%s\",\"value\":%.6g,\"unit\":\"%s\",\"baseline\":\"%s\","
               "\"baseline_value\":%.6g,\"ratio\":%.4f}\n",
               name, value, unit, baseline, baseline_value,
               baseline_value != 0 ? value / baseline_value : 0.0);
    else
        printf("{\"name\":\"%s\",\"value\":%.6g,\"unit\":\"%s\"}\n", name, value, unit);
    fflush(stdout);
}

const char *ohm_bench_opt_str(int argc, char **argv, const char *key, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], key) == 0) return argv[i + 1];
    return def;
}

long ohm_bench_opt_int(int argc, char **argv, const char *key, long def)
{
    const char *s = ohm_bench_opt_str(argc, argv, key, NULL);
    return s ? strtol(s, NULL, 10) : def;
}

double ohm_bench_opt_double(int argc, char **argv, const char *key, double def)
{
    const char *s = ohm_bench_opt_str(argc, argv, key, NULL);
    return s ? strtod(s, NULL) : def;
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} kinds[] = {
    {"wire", ohm_bench_wire, "encode+send+recv+decode vs raw ZeroMQ (--d)"},
    {"round", ohm_bench_round, "16-peer ring round time split"},
    {"aggregate", ohm_bench_aggregate, "robust rules vs memcpy and naive median (--d --k --rule)"},
    {"tile", ohm_bench_tile,
     "analog tile update (--rows --cols --bl --lr --n --c2c --d2d --ublm --response --gamma)"},
    {"flatness", ohm_bench_flatness, "cost of the flatness measures"},
    {"curve", ohm_bench_curve, "CURVE vs plain round trip (--d)"},
    {"model", ohm_bench_model,
     "training step per example: digital, analog expected, analog stochastic vs the GEMM floor "
     "(--arch lenet5|mlp --layers --batch --opt --response)"},
    {"compress", ohm_bench_compress,
     "q8 message with and without the entropy stage: bytes, encode, check+apply (--d --iters)"},
};

static int usage(FILE *f)
{
    fprintf(f, "usage: ohmbench KIND [options]\nkinds:\n");
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        fprintf(f, "  %-10s %s%s\n", kinds[i].name, kinds[i].help,
                kinds[i].fn ? "" : " (not built)");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
        return usage(argc < 2 ? stderr : stdout);
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(argv[1], kinds[i].name) != 0) continue;
        int (*fn)(int, char **) = kinds[i].fn;
        if (!fn) {
            fprintf(stderr, "ohmbench: kind '%s' is not built in this build\n", argv[1]);
            return 2;
        }
        return fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "ohmbench: unknown kind '%s'\n", argv[1]);
    return usage(stderr);
}
