/* `sotu bench train|codec|merge`: timing commands that print one JSON object
 * per line on stdout (scripts in bench/ put them beside the peers).
 * Each takes the arguments after its name (argv[0] is "train", "codec" or
 * "merge") and returns a process exit code like every command. */
#ifndef SOTU_CLI_BENCH_BENCH_H
#define SOTU_CLI_BENCH_BENCH_H

/* Training step (zero_grad + forward + backward + AdamW) on synthetic data:
 *   sotu bench train --model tiny|small|vitb|resnet18-w8 --threads N --batch B
 *                    [--steps S] [--warmup W] [--seed X] [--tune clr|all|fc]
 * prints {"bench":"train","model":..,"threads":..,"batch":..,"steps":..,
 * "images_per_s":..,"gflops":..,"step_seconds":..,"peak_rss_mb":..};
 * resnet18-w8 adds "tune" and "flops_ratio" (FLOPs relative to --tune all). */
int sotu_bench_train(int argc, char **argv);

/* The delta codec (bench_codec.c). */
int sotu_bench_codec(int argc, char **argv);

/* The merge (bench_merge.c). */
int sotu_bench_merge(int argc, char **argv);

#endif
