/* ohmbench: shared helpers of the benchmark programs. Each KIND lives in its
 * own bench_KIND.c defining `int ohm_bench_KIND(int argc, char **argv)`; the
 * dispatcher finds the kinds that were built. Output: one JSON object per line
 * with name, value, unit and, where a baseline ran in the same process,
 * baseline, baseline_value and ratio. */
#ifndef OHMBENCH_H
#define OHMBENCH_H

/* Monotonic seconds. */
double ohm_bench_now(void);

/* Seconds of CPU time used by the calling thread: for single-thread compute
 * timings on a shared machine, where wall time also counts the time other
 * processes held the core. */
double ohm_bench_cpu_now(void);

/* Prints {"name":..,"value":..,"unit":..} or, when baseline is non-NULL,
 * also "baseline","baseline_value" and "ratio" (= value / baseline_value). */
void ohm_bench_emit(const char *name, double value, const char *unit, const char *baseline,
                    double baseline_value);

/* Integer / double option "--key value" from argv, or `def`. */
long ohm_bench_opt_int(int argc, char **argv, const char *key, long def);
double ohm_bench_opt_double(int argc, char **argv, const char *key, double def);
const char *ohm_bench_opt_str(int argc, char **argv, const char *key, const char *def);

int ohm_bench_wire(int argc, char **argv);
int ohm_bench_round(int argc, char **argv);
int ohm_bench_aggregate(int argc, char **argv);
int ohm_bench_tile(int argc, char **argv);
int ohm_bench_flatness(int argc, char **argv);
int ohm_bench_curve(int argc, char **argv);
int ohm_bench_model(int argc, char **argv);
int ohm_bench_compress(int argc, char **argv);

#endif
