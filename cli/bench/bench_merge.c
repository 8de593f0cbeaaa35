/* `sotu bench merge`: the merge of T sparse deltas (coordinator/merge.h)
 * beside memcpy of the same model block in the same process. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/isa.h"
#include "common/log.h"
#include "common/status.h"
#include "common/threads.h"
#include "cli/bench/bench.h"
#include "cli/bench/bench_delta.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "coordinator/merge.h"
#include "mpi/node.h"
#include "io/delta.h"
#include "worker/delta_extract.h"

enum { MAX_DELTA_FILES = 1024 };

static void merge_usage(FILE *f)
{
    fprintf(f,
            "usage: sotu bench merge [--model tiny|small|vitb] [--tasks T] [--keep K]\n"
            "                        [--mode sum|mean|disjoint] [--repeat R] [--seed S]\n"
            "                        [--threads N] [--delta FILE.sotud ... [--ship-keep K]]\n\n"
            "Merges T deltas into θ0 and prints one JSON line: the merge time without and\n"
            "with statistics, and memcpy of the same model block on the same threads,\n"
            "interleaved with the merge in the same process. merge_gb_s counts the bytes\n"
            "the merge must move (θ0 read, merged written, 4-byte value and 4-byte index\n"
            "of every kept value read), memcpy_gb_s the bytes memcpy moves (read and\n"
            "write); bandwidth_vs_memcpy is their ratio (the _cpu variant uses process CPU\n"
            "time, less sensitive to other load), model_vs_memcpy the memcpy time over\n"
            "the merge time. Default: synthetic ViT (--model small), T 8, keep 1/T, mode\n"
            "sum, threads by the rule of README.md (Threads). With --delta (repeatable) the given deltas are merged into a zero θ0\n"
            "laid out from their own tensor records; --keep K merges them at K (cutting\n"
            "each list inside the timed merge, as sotu merge --keep does), --ship-keep K\n"
            "cuts them to K before timing (the deltas a run at keep K ships).\n");
}

/* CPU seconds of the whole process (all threads): unlike wall time, not
 * inflated by other processes taking the cores. */
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* memcpy of n floats on the OpenMP threads (the merge's thread count), in
 * 1 MiB pieces. */
static void copy_threads(float *dst, const float *src, size_t n)
{
    enum { PIECE = 1 << 18 };
    int64_t pieces = (int64_t)((n + PIECE - 1) / PIECE);
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < pieces; p++) {
        size_t from = (size_t)p * PIECE, len = n - from < PIECE ? n - from : PIECE;
        memcpy(dst + from, src + from, len * sizeof *dst);
    }
}

/* A table covering every tensor the deltas name, at their table index. */
static sotu_status table_from_deltas(const sotu_delta *d, int n, sotu_tensor_table *tab)
{
    int max = -1;
    for (int a = 0; a < n; a++)
        for (int k = 0; k < d[a].n_tensors; k++)
            if ((int)d[a].tensors[k].table_index > max)
                max = (int)d[a].tensors[k].table_index;
    tab->n = max + 1;
    tab->t = calloc((size_t)tab->n + 1, sizeof *tab->t);
    tab->total = 0;
    if (!tab->t)
        return sotu_error(SOTU_ERR_NOMEM, "bench merge: table of %d tensors", tab->n);
    for (int a = 0; a < n; a++)
        for (int k = 0; k < d[a].n_tensors; k++) {
            const sotu_delta_tensor *t = &d[a].tensors[k];
            sotu_tensor_info *ti = &tab->t[t->table_index];
            if (ti->name[0] && (strcmp(ti->name, t->name) || ti->count != t->count))
                return sotu_error(SOTU_ERR_DATA, "bench merge: deltas disagree on tensor %u (%s)",
                                  t->table_index, t->name);
            memcpy(ti->name, t->name, sizeof ti->name);
            ti->ndim = t->ndim;
            memcpy(ti->shape, t->shape, sizeof ti->shape);
            ti->count = t->count;
        }
    for (int j = 0; j < tab->n; j++) {
        if (!tab->t[j].name[0])
            snprintf(tab->t[j].name, sizeof tab->t[j].name, "unshipped.%d", j);
        tab->t[j].offset = tab->total;
        tab->total += tab->t[j].count;
    }
    return SOTU_OK;
}

int sotu_bench_merge(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"tasks", required_argument, NULL, 'T'},
        {"keep", required_argument, NULL, 'k'},  {"mode", required_argument, NULL, 'M'},
        {"repeat", required_argument, NULL, 'r'}, {"seed", required_argument, NULL, 's'},
        {"threads", required_argument, NULL, 't'}, {"delta", required_argument, NULL, 'd'},
        {"ship-keep", required_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    const char *model = "small", *mode_name = "sum";
    const char *files[MAX_DELTA_FILES];
    int n_files = 0, T = 8, repeat = 3, threads = 0, o;
    double keep = 0, ship_keep = 0;
    uint64_t seed = 1;
    sotu_status ps = SOTU_OK;
    optind = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1 && ps == SOTU_OK) {
        switch (o) {
        case 'm': model = optarg; break;
        case 'T': ps = sotu_cli_int("--tasks", optarg, 1, 1000000, &T); break;
        case 'k': ps = sotu_cli_number("--keep", optarg, 0, 1, 0, &keep); break;
        case 'K': ps = sotu_cli_number("--ship-keep", optarg, 0, 1, 0, &ship_keep); break;
        case 'M': mode_name = optarg; break;
        case 'r': ps = sotu_cli_int("--repeat", optarg, 1, 1000000, &repeat); break;
        case 's': ps = sotu_cli_uint64("--seed", optarg, &seed); break;
        case 't': ps = sotu_cli_int("--threads", optarg, 0, 4096, &threads); break;
        case 'd':
            if (n_files == MAX_DELTA_FILES) {
                fprintf(stderr, "sotu bench merge: at most %d --delta files\n", MAX_DELTA_FILES);
                return SOTU_EXIT_USAGE;
            }
            files[n_files++] = optarg;
            break;
        case 'h': merge_usage(stdout); return SOTU_EXIT_OK;
        default: merge_usage(stderr); return SOTU_EXIT_USAGE;
        }
    }
    if (ps != SOTU_OK)
        return sotu_cmd_fail("bench merge", ps);
    if (optind != argc || (ship_keep > 0 && !n_files)) {
        merge_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    sotu_merge_mode mode;
    sotu_status s = sotu_merge_mode_parse(mode_name, &mode);
    if (s != SOTU_OK)
        return sotu_cmd_fail("bench merge", s);
    sotu_threads_plan plan;
    if ((s = sotu_node_setup(threads, 0, &plan)) != SOTU_OK)
        return sotu_cmd_fail("bench merge", s);
    threads = plan.threads;
    if (n_files)
        T = n_files;
    if (keep == 0 && !n_files)
        keep = 1.0 / T;

    sotu_tensor_table tab = {0};
    float *theta0 = NULL, *thetat = NULL, *merged = NULL;
    sotu_delta *d = calloc((size_t)T, sizeof *d);
    const sotu_delta **list = calloc((size_t)T, sizeof *list);
    sotu_merge_stats st = {0};
    if (!d || !list) {
        s = sotu_error(SOTU_ERR_NOMEM, "bench merge: %d deltas", T);
        goto cleanup;
    }
    if (n_files) {
        for (int a = 0; a < T; a++) {
            if ((s = sotu_delta_read_file(files[a], NULL, &d[a])) != SOTU_OK)
                goto cleanup;
            if (ship_keep > 0 && ship_keep < d[a].keep) /* untimed: what a run at it ships */
                sotu_bench_cut_to_keep(&d[a], ship_keep);
        }
        if ((s = table_from_deltas(d, T, &tab)) != SOTU_OK)
            goto cleanup;
        theta0 = calloc(tab.total + 1, sizeof *theta0);
        model = "files";
        if (!theta0) {
            s = sotu_error(SOTU_ERR_NOMEM, "bench merge: θ0 of %zu floats", tab.total);
            goto cleanup;
        }
    } else {
        if ((s = sotu_bench_vit_table(model, &tab)) != SOTU_OK ||
            (s = sotu_bench_synthetic_weights(&tab, seed, &theta0, &thetat)) != SOTU_OK)
            goto cleanup;
        for (int a = 0; a < T; a++) {
            char name[32];
            snprintf(name, sizeof name, "task%d", a);
            sotu_extract_opts eo = {.task_index = (uint32_t)a, .task_name = name, .seed = seed,
                                    .keep = mode == SOTU_MERGE_DISJOINT ? 1.0 : keep,
                                    .dtype = SOTU_DELTA_F32};
            if ((s = sotu_delta_extract(&tab, theta0, thetat, &eo, &d[a])) != SOTU_OK)
                goto cleanup;
        }
        free(thetat);
        thetat = NULL;
    }
    uint64_t kept = 0;
    for (int a = 0; a < T; a++) {
        list[a] = &d[a];
        for (int k = 0; k < d[a].n_tensors; k++)
            if (d[a].tensors[k].mask != SOTU_MASK_DENSE) /* heads are not merged */
                kept += d[a].tensors[k].kept;
    }
    merged = malloc(tab.total * sizeof *merged + 1);
    if (!merged) {
        s = sotu_error(SOTU_ERR_NOMEM, "bench merge: merged block of %zu floats", tab.total);
        goto cleanup;
    }
    /* Interleaved so both see the same machine; best of the repeats. */
    size_t bytes = tab.total * sizeof(float);
    double t_copy = 1e30, t_merge = 1e30, c_copy = 1e30, c_merge = 1e30, t_stats;
    sotu_merge_opts mo = {mode, 1.0, n_files ? keep : 0, (uint32_t)T};
    if (n_files)
        for (int a = 0; a < T; a++)
            if ((uint32_t)mo.n_tasks <= d[a].task_index)
                mo.n_tasks = d[a].task_index + 1;
    for (int r = 0; r < repeat; r++) {
        double c0 = cpu_seconds(), t0 = sotu_now();
        copy_threads(merged, theta0, tab.total);
        double t1 = sotu_now(), c1 = cpu_seconds();
        if ((s = sotu_merge_apply(&tab, theta0, list, T, &mo, merged, NULL)) != SOTU_OK)
            goto cleanup;
        double t2 = sotu_now(), c2 = cpu_seconds();
        t_copy = t1 - t0 < t_copy ? t1 - t0 : t_copy;
        t_merge = t2 - t1 < t_merge ? t2 - t1 : t_merge;
        c_copy = c1 - c0 < c_copy ? c1 - c0 : c_copy;
        c_merge = c2 - c1 < c_merge ? c2 - c1 : c_merge;
    }
    double t0 = sotu_now();
    if ((s = sotu_merge_apply(&tab, theta0, list, T, &mo, merged, &st)) != SOTU_OK)
        goto cleanup;
    t_stats = sotu_now() - t0;
    double max_cos = 0;
    for (int a = 0; a < T; a++)
        for (int b = 0; b < T; b++)
            if (a != b && fabs(st.cosine[a * T + b]) > max_cos)
                max_cos = fabs(st.cosine[a * T + b]);

    /* Bytes each must move at least: memcpy reads and writes the block;
     * the merge reads θ0, writes the merged block and reads every kept
     * value (4 bytes) and its index (4 bytes). */
    double copy_bytes = 2.0 * (double)bytes;
    double merge_bytes = 2.0 * (double)bytes + 8.0 * (double)kept;
    json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:f, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
                          "s:f, s:f, s:f, s:f, s:i}",
                          "bench", "merge", "model", model, "mode", sotu_merge_mode_name(mode),
                          "tasks", T, "keep", d[0].keep, "params", (json_int_t)tab.total,
                          "kept_total", (json_int_t)kept, "merge_s", t_merge, "memcpy_s", t_copy,
                          "merge_gb_s", merge_bytes / t_merge / 1e9, "memcpy_gb_s",
                          copy_bytes / t_copy / 1e9, "bandwidth_vs_memcpy",
                          (merge_bytes / t_merge) / (copy_bytes / t_copy), "model_vs_memcpy",
                          t_copy / t_merge, "bandwidth_vs_memcpy_cpu",
                          (merge_bytes / c_merge) / (copy_bytes / c_copy), "per_delta_ms",
                          t_merge / T * 1e3, "stats_s", t_stats, "collision_rate",
                          st.collision_rate, "max_offdiag_cosine", max_cos, "threads", threads);
    if (j)
        json_object_set_new(j, "isa", json_string(sotu_isa_name(sotu_isa_active())));
    char *line = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (!line) {
        json_decref(j);
        s = sotu_error(SOTU_ERR_INTERNAL, "bench merge: cannot format the JSON line");
        goto cleanup;
    }
    printf("%s\n", line);
    free(line);
    json_decref(j);

cleanup:
    sotu_merge_stats_free(&st);
    for (int a = 0; d && a < T; a++)
        sotu_delta_free(&d[a]);
    free(d);
    free(list);
    free(theta0);
    free(thetat);
    free(merged);
    free(tab.t);
    return s == SOTU_OK ? SOTU_EXIT_OK : sotu_cmd_fail("bench merge", s);
}
