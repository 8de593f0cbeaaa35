/* `sotu bench train`: median time of one training step on synthetic data. */
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/isa.h"
#include "common/log.h"
#include "common/rng.h"
#include "common/status.h"
#include "common/threads.h"
#include "cli/bench/bench.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "mpi/node.h"
#include "worker/optim.h"
#include "worker/resnet.h"
#include "worker/vit.h"

typedef struct {
    const char *name;
    vit_config cfg;
} bench_model;

/* image_size, channels, patch, dim, depth, heads, mlp_hidden, classes */
static const bench_model bench_models[] = {
    {"tiny", {28, 1, 4, 96, 6, 3, 384, 10}},
    {"small", {32, 3, 4, 192, 12, 3, 768, 10}},
    {"vitb", {224, 3, 16, 768, 12, 12, 3072, 1000}},
};

/* resnet18-w8: the CLR benchmark's backbone (ResNet-18 of base width 8,
 * small-input stem, 28x28 grey images, 10 classes). */
static const resnet_config bench_resnet = {18, 8, 1, 28, 10, true, RESNET_CLR_CONV3};

static void bench_train_usage(FILE *f)
{
    fprintf(f, "usage: sotu bench train --model tiny|small|vitb|resnet18-w8 [--threads N]\n"
               "                        [--batch B] [--steps S] [--warmup W] [--seed X]\n"
               "                        [--tune clr|all|fc]   (resnet18-w8 only)\n"
               "Times zero_grad + forward + backward + AdamW step on synthetic data and prints\n"
               "one JSON line: model, threads, batch, images_per_s, gflops, step_seconds\n"
               "(median of S steps after W warm-up steps), cpu_step_seconds (their median\n"
               "CPU time, all threads: steadier on a shared machine), peak_rss_mb.\n"
               "resnet18-w8 (28x28, small-input stem) trains as CLR's jobs do: --tune clr a\n"
               "model with CLR layers and CLR's set, all every weight of the plain ResNet\n"
               "(full fine-tuning), fc the head of the plain ResNet; flops_ratio is the\n"
               "step's FLOPs relative to full fine-tuning.\n"
               "Defaults: threads by the rule of README.md (Threads), batch 64,\n"
               "steps 20, warmup 3, tune clr.\n");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int parse_int(const char *opt, const char *v, int lo, int hi, int *out)
{
    sotu_status s = sotu_cli_int(opt, v, lo, hi, out);
    return s == SOTU_OK ? 0 : sotu_cmd_fail("bench train", s);
}

static double median_seconds(double *times, int steps)
{
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    return steps % 2 ? times[steps / 2] : 0.5 * (times[steps / 2 - 1] + times[steps / 2]);
}

/* Prints the JSON line j (consumed) on stdout. */
static sotu_status print_json_line(json_t *j)
{
    if (j)
        json_object_set_new(j, "isa", json_string(sotu_isa_name(sotu_isa_active())));
    char *line = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6))
                   : NULL;
    json_decref(j);
    if (!line)
        return sotu_error(SOTU_ERR_NOMEM, "bench train: building the JSON line");
    printf("%s\n", line);
    fflush(stdout);
    free(line);
    return SOTU_OK;
}

/* The ResNet step of CLR's jobs: tune "clr" on a CLR model, "all" or "fc"
 * on the plain model, AdamW without weight decay as examples/clr-*.yaml. */
/* A synthetic batch: standard normal images, uniform labels below classes. */
static void synthetic_batch(float *x, int32_t *y, size_t img, int batch, int classes, int seed)
{
    sotu_rng r;
    sotu_rng_init(&r, (uint64_t)seed, SOTU_STREAM_DATA);
    for (size_t i = 0; i < img * (size_t)batch; i++)
        x[i] = sotu_rng_normal(&r);
    for (int b = 0; b < batch; b++)
        y[b] = (int32_t)sotu_rng_below(&r, (uint64_t)classes);
}

/* One training step (zero_grad, forward, backward) of either model; returns the loss. */
typedef float (*bench_step_fn)(void *model, const float *x, const int32_t *y, int batch);

static float resnet_step(void *model, const float *x, const int32_t *y, int batch)
{
    resnet_model *m = model;
    resnet_zero_grad(m);
    float loss = resnet_forward(m, x, y, batch);
    resnet_backward(m);
    return loss;
}

static float vit_step(void *model, const float *x, const int32_t *y, int batch)
{
    vit_model *m = model;
    vit_zero_grad(m);
    float loss = vit_forward(m, x, y, batch);
    vit_backward(m);
    return loss;
}

/* Runs warmup + steps timed steps (the step and an AdamW update), keeps the
 * last steps' seconds in times and returns the last loss. */
/* CPU seconds of the process (all its threads): on a machine shared with
 * other work a step's CPU time moves much less than its wall time. */
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* times [2, steps]: the wall and then the CPU seconds of each step after
 * the warm-up. */
static float time_steps(bench_step_fn step, void *model, optim_state *opt, float *params,
                        const float *grads, const float *x, const int32_t *y, int batch,
                        int warmup, int steps, double *times)
{
    float loss = 0;
    for (int i = 0; i < warmup + steps; i++) {
        double t0 = sotu_now(), c0 = cpu_seconds();
        loss = step(model, x, y, batch);
        optim_step(opt, params, grads, 1e-4f);
        double dt = sotu_now() - t0, dc = cpu_seconds() - c0;
        if (i >= warmup) {
            times[i - warmup] = dt;
            times[steps + i - warmup] = dc;
        }
    }
    return loss;
}

static int bench_train_resnet(const char *tune, int threads, int batch, int steps, int warmup,
                              int seed)
{
    resnet_model m = {0}, full = {0};
    optim_state opt;
    memset(&opt, 0, sizeof opt);
    float *x = NULL;
    int32_t *y = NULL;
    double *times = malloc(sizeof(double) * 2 * (size_t)steps);
    resnet_config rc = bench_resnet;
    if (strcmp(tune, "clr"))
        rc.clr = RESNET_CLR_NONE;
    resnet_config rc_full = rc;
    rc_full.clr = RESNET_CLR_NONE;
    sotu_status st = resnet_init(&m, &rc, batch);
    if (st == SOTU_OK)
        st = resnet_init(&full, &rc_full, batch);
    if (st == SOTU_OK)
        st = resnet_set_trainable(&m, tune);
    if (st != SOTU_OK)
        goto cleanup;
    resnet_init_random(&m, (uint64_t)seed);
    size_t img = (size_t)rc.channels * rc.image_size * rc.image_size;
    x = malloc(sizeof(float) * img * (size_t)batch);
    y = malloc(sizeof(int32_t) * (size_t)batch);
    if (!x || !y || !times) {
        st = sotu_error(SOTU_ERR_NOMEM, "bench train: input buffers for batch %d", batch);
        goto cleanup;
    }
    synthetic_batch(x, y, img, batch, rc.classes, seed);
    optim_config oc = optim_config_default(OPTIM_ADAMW);
    oc.weight_decay = 0.0f;
    if ((st = optim_init(&opt, &oc, &m.table, m.trainable)) != SOTU_OK)
        goto cleanup;

    float loss = time_steps(resnet_step, &m, &opt, m.params, m.grads, x, y, batch, warmup, steps,
                            times);
    double med = median_seconds(times, steps), flops = resnet_train_flops(&m, batch);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = median_seconds(times + steps, steps);
    st = print_json_line(json_pack(
        "{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "bench", "train",
        "impl", "sotu", "model", "resnet18-w8", "tune", tune, "threads", threads, "batch", batch,
        "steps", steps, "images_per_s", batch / med, "gflops", flops / med / 1e9, "flops_ratio",
        flops / resnet_train_flops(&full, batch), "step_seconds", med, "cpu_step_seconds", cpu,
        "peak_rss_mb", (double)ru.ru_maxrss / 1024.0, "loss", (double)loss));

cleanup:
    optim_free(&opt);
    resnet_free(&m);
    resnet_free(&full);
    free(x);
    free(y);
    free(times);
    return st == SOTU_OK ? SOTU_EXIT_OK : sotu_cmd_fail("bench train", st);
}

int sotu_bench_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},  {"threads", required_argument, NULL, 't'},
        {"batch", required_argument, NULL, 'b'},  {"steps", required_argument, NULL, 's'},
        {"warmup", required_argument, NULL, 'w'}, {"seed", required_argument, NULL, 'x'},
        {"tune", required_argument, NULL, 'u'},   {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *model_name = "tiny", *tune = "clr";
    int threads = 0, batch = 64, steps = 20, warmup = 3, seed = 0;
    int o;
    optind = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int rc = 0;
        switch (o) {
        case 'm': model_name = optarg; break;
        case 't': rc = parse_int("--threads", optarg, 1, 1000000, &threads); break;
        case 'b': rc = parse_int("--batch", optarg, 1, 1000000, &batch); break;
        case 's': rc = parse_int("--steps", optarg, 1, 1000000, &steps); break;
        case 'w': rc = parse_int("--warmup", optarg, 0, 1000000, &warmup); break;
        case 'x': rc = parse_int("--seed", optarg, 0, INT_MAX, &seed); break;
        case 'u': tune = optarg; break;
        case 'h': bench_train_usage(stdout); return SOTU_EXIT_OK;
        default: bench_train_usage(stderr); return SOTU_EXIT_USAGE;
        }
        if (rc)
            return SOTU_EXIT_USAGE;
    }
    if (optind != argc) {
        bench_train_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    sotu_threads_plan plan;
    sotu_status node = sotu_node_setup(threads, 0, &plan);
    if (node != SOTU_OK)
        return sotu_cmd_fail("bench train", node);
    threads = plan.threads;
    if (!strcmp(model_name, "resnet18-w8")) {
        if (strcmp(tune, "clr") && strcmp(tune, "all") && strcmp(tune, "fc")) {
            fprintf(stderr, "sotu bench train: --tune '%s', expected clr, all or fc\n", tune);
            return SOTU_EXIT_USAGE;
        }
        return bench_train_resnet(tune, threads, batch, steps, warmup, seed);
    }
    const bench_model *bm = NULL;
    for (size_t i = 0; i < sizeof bench_models / sizeof bench_models[0]; i++)
        if (!strcmp(model_name, bench_models[i].name))
            bm = &bench_models[i];
    if (!bm) {
        fprintf(stderr, "sotu bench train: --model '%s', expected tiny, small, vitb or resnet18-w8\n",
                model_name);
        return SOTU_EXIT_USAGE;
    }

    vit_model m;
    memset(&m, 0, sizeof m);
    optim_state opt;
    memset(&opt, 0, sizeof opt);
    float *x = NULL;
    int32_t *y = NULL;
    double *times = NULL;
    int rc = SOTU_EXIT_OK;
    sotu_status st = vit_init(&m, &bm->cfg, batch);
    if (st != SOTU_OK)
        goto cleanup;
    vit_init_random(&m, (uint64_t)seed);

    const vit_config *c = &bm->cfg;
    size_t img = (size_t)c->channels * c->image_size * c->image_size;
    x = malloc(sizeof(float) * img * (size_t)batch);
    y = malloc(sizeof(int32_t) * (size_t)batch);
    times = malloc(sizeof(double) * 2 * (size_t)steps);
    if (!x || !y || !times) {
        st = sotu_error(SOTU_ERR_NOMEM, "bench train: input buffers for batch %d", batch);
        goto cleanup;
    }
    synthetic_batch(x, y, img, batch, c->classes, seed);

    optim_config oc = optim_config_default(OPTIM_ADAMW);
    oc.weight_decay = 0.05f;
    st = optim_init(&opt, &oc, &m.table, m.trainable);
    if (st != SOTU_OK)
        goto cleanup;

    float loss = time_steps(vit_step, &m, &opt, m.params, m.grads, x, y, batch, warmup, steps,
                            times);
    double med = median_seconds(times, steps), cpu = median_seconds(times + steps, steps);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    st = print_json_line(json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f}",
                          "bench", "train", "impl", "sotu", "model", bm->name, "threads", threads,
                          "batch", batch, "steps", steps, "images_per_s", batch / med, "gflops",
                          vit_train_flops(c, batch) / med / 1e9, "step_seconds", med,
                          "cpu_step_seconds", cpu, "peak_rss_mb", (double)ru.ru_maxrss / 1024.0,
                          "loss", (double)loss));

cleanup:
    if (st != SOTU_OK)
        rc = sotu_cmd_fail("bench train", st);
    optim_free(&opt);
    vit_free(&m);
    free(x);
    free(y);
    free(times);
    return rc;
}
