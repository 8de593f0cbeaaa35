/* `sotu bench codec`: bytes per kept value and encode/decode speed of the
 * delta codec (io/delta.h) on synthetic or real deltas. One JSON line per
 * value dtype. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/isa.h"
#include "common/log.h"
#include "common/mask.h"
#include "common/rng.h"
#include "common/status.h"
#include "common/threads.h"
#include "cli/bench/bench.h"
#include "cli/bench/bench_delta.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "mpi/node.h"
#include "io/bytes.h"
#include "io/delta.h"
#include "worker/delta_extract.h"

/* ------------------------------------------------------------ inputs */

static sotu_status table_add(sotu_tensor_table *tab, int *cap, const char *name, int ndim,
                             int64_t a, int64_t b, int64_t c, int64_t d)
{
    if (tab->n == *cap) {
        *cap = *cap * 2 + 16;
        sotu_tensor_info *t = realloc(tab->t, (size_t)*cap * sizeof *t);
        if (!t)
            return sotu_error(SOTU_ERR_NOMEM, "bench: tensor table of %d entries", *cap);
        tab->t = t;
    }
    sotu_tensor_info *t = &tab->t[tab->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    int64_t dims[4] = {a, b, c, d};
    t->ndim = ndim;
    t->count = 1;
    for (int k = 0; k < ndim; k++) {
        t->shape[k] = dims[k];
        t->count *= (size_t)dims[k];
    }
    t->offset = tab->total;
    tab->total += t->count;
    return SOTU_OK;
}

sotu_status sotu_bench_vit_table(const char *model, sotu_tensor_table *tab)
{
    int D;
    if (!strcmp(model, "tiny"))
        D = 192;
    else if (!strcmp(model, "small"))
        D = 384;
    else if (!strcmp(model, "vitb"))
        D = 768;
    else
        return sotu_error(SOTU_ERR_USAGE, "--model %s: expected tiny, small or vitb", model);
    const int L = 12, F = 4 * D, P = 16, C = 3, N = (224 / P) * (224 / P), K = 10;
    int cap = 0;
    sotu_status s = SOTU_OK;
    memset(tab, 0, sizeof *tab);
    char name[SOTU_TENSOR_NAME_MAX];
#define ADD(nm, nd, a, b, c, d)                                                                  \
    do {                                                                                         \
        if ((s = table_add(tab, &cap, nm, nd, a, b, c, d)) != SOTU_OK)                           \
            goto cleanup;                                                                        \
    } while (0)
    ADD("cls_token", 3, 1, 1, D, 0);
    ADD("pos_embed", 3, 1, 1 + N, D, 0);
    ADD("patch_embed.proj.weight", 4, D, C, P, P);
    ADD("patch_embed.proj.bias", 1, D, 0, 0, 0);
    for (int i = 0; i < L; i++) {
        static const struct {
            const char *suffix;
            int ndim, rows, cols; /* in units: 1 = D, 3 = 3D, 4 = F */
        } block[] = {
            {"norm1.weight", 1, 1, 0}, {"norm1.bias", 1, 1, 0},
            {"attn.qkv.weight", 2, 3, 1}, {"attn.qkv.bias", 1, 3, 0},
            {"attn.proj.weight", 2, 1, 1}, {"attn.proj.bias", 1, 1, 0},
            {"norm2.weight", 1, 1, 0}, {"norm2.bias", 1, 1, 0},
            {"mlp.fc1.weight", 2, 4, 1}, {"mlp.fc1.bias", 1, 4, 0},
            {"mlp.fc2.weight", 2, 1, 4}, {"mlp.fc2.bias", 1, 1, 0},
        };
        for (size_t k = 0; k < sizeof block / sizeof block[0]; k++) {
            snprintf(name, sizeof name, "blocks.%d.%s", i, block[k].suffix);
            int64_t r = block[k].rows == 4 ? F : (int64_t)block[k].rows * D;
            int64_t c = block[k].cols == 4 ? F : (int64_t)block[k].cols * D;
            ADD(name, block[k].ndim, r, c, 0, 0);
        }
    }
    ADD("norm.weight", 1, D, 0, 0, 0);
    ADD("norm.bias", 1, D, 0, 0, 0);
    ADD("head.weight", 2, K, D, 0, 0);
    ADD("head.bias", 1, K, 0, 0, 0);
#undef ADD
cleanup:
    if (s != SOTU_OK) {
        free(tab->t);
        memset(tab, 0, sizeof *tab);
    }
    return s;
}

sotu_status sotu_bench_synthetic_weights(const sotu_tensor_table *tab, uint64_t seed,
                                         float **theta0, float **thetat)
{
    *theta0 = malloc(tab->total * sizeof(float) + 1);
    *thetat = malloc(tab->total * sizeof(float) + 1);
    if (!*theta0 || !*thetat) {
        free(*theta0);
        free(*thetat);
        *theta0 = *thetat = NULL;
        return sotu_error(SOTU_ERR_NOMEM, "bench: two weight blocks of %zu floats", tab->total);
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int j = 0; j < tab->n; j++) {
        sotu_rng r;
        sotu_rng_init(&r, seed, SOTU_STREAM_INIT + ((uint64_t)(j + 1) << 8));
        /* log-uniform scale in [2e-5, 2e-3] */
        float scale = 2e-5f * powf(100.0f, sotu_rng_uniform(&r));
        float *a = *theta0 + tab->t[j].offset, *b = *thetat + tab->t[j].offset;
        for (size_t i = 0; i < tab->t[j].count; i++) {
            a[i] = 0.02f * sotu_rng_normal(&r);
            b[i] = a[i] + scale * sotu_rng_normal(&r);
        }
    }
    return SOTU_OK;
}

/* ------------------------------------------------------------ bench */

/* CPU seconds of the process, all threads. */
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static sotu_status emit(json_t *o)
{
    if (o)
        json_object_set_new(o, "isa", json_string(sotu_isa_name(sotu_isa_active())));
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!s)
        return sotu_error(SOTU_ERR_INTERNAL, "bench codec: cannot format the JSON line");
    printf("%s\n", s);
    fflush(stdout);
    free(s);
    return SOTU_OK;
}

static sotu_status export_raw(const char *prefix, const sotu_delta *d)
{
    char path[4096];
    sotu_status s = SOTU_OK;
    snprintf(path, sizeof path, "%s.f32", prefix);
    FILE *fv = fopen(path, "wb");
    snprintf(path, sizeof path, "%s.i64", prefix);
    FILE *fi = fopen(path, "wb");
    if (!fv || !fi) {
        s = sotu_error(SOTU_ERR_IO, "%s.{f32,i64}: cannot create", prefix);
        goto cleanup;
    }
    uint64_t base = 0;
    for (int k = 0; k < d->n_tensors; k++) {
        const sotu_delta_tensor *t = &d->tensors[k];
        for (uint64_t m = 0; m < t->kept; m++) {
            int64_t g = (int64_t)(base + (t->indices ? t->indices[m] : m));
            if (fwrite(&t->values[m], 4, 1, fv) != 1 || fwrite(&g, 8, 1, fi) != 1) {
                s = sotu_error(SOTU_ERR_IO, "%s.{f32,i64}: write failed", prefix);
                goto cleanup;
            }
        }
        base += t->count;
    }
cleanup:
    if (fv && fclose(fv) != 0 && s == SOTU_OK)
        s = sotu_error(SOTU_ERR_IO, "%s.f32: close failed", prefix);
    if (fi && fclose(fi) != 0 && s == SOTU_OK)
        s = sotu_error(SOTU_ERR_IO, "%s.i64: close failed", prefix);
    return s;
}

static void codec_usage(FILE *f)
{
    fprintf(f,
            "usage: sotu bench codec [--model tiny|small|vitb] [--keep K] [--level L]\n"
            "                        [--repeat R] [--seed S] [--threads N]\n"
            "                        [--delta FILE.sotud] [--export PREFIX]\n\n"
            "Encodes and decodes one task's delta at f32 and bf16 and prints one JSON line\n"
            "per dtype: bytes per kept value, encode and decode MB/s of kept values (4 bytes\n"
            "each, as in memory). Decoding verifies everything, including listing the\n"
            "seeded masks (mask_kernel names the vector kernel; with --threads one thread\n"
            "decompresses while the others list masks; default: the thread rule of\n"
            "README.md, Threads). --level is zstd's (default %d).\n"
            "Default input: synthetic ViT weights (--model small), keep 0.2,\n"
            "deltas normal with per-tensor scales; --delta benches a real .sotud instead.\n"
            "--export writes PREFIX.f32 (kept values) and PREFIX.i64 (flat indices) for\n"
            "bench/peer_codec.py.\n", SOTU_DELTA_ZSTD_LEVEL);
}

void sotu_bench_cut_to_keep(sotu_delta *d, double keep)
{
    for (int k = 0; k < d->n_tensors; k++) {
        sotu_delta_tensor *t = &d->tensors[k];
        if (t->mask != SOTU_MASK_SEEDED)
            continue;
        sotu_mask m = sotu_mask_of(d->seed, d->task_index, t->table_index, t->count, keep);
        t->kept = sotu_mask_filter(&m, t->indices, t->values, (size_t)t->kept, t->indices,
                                   t->values);
    }
    d->keep = keep;
}

int sotu_bench_codec(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"keep", required_argument, NULL, 'k'},
        {"level", required_argument, NULL, 'l'}, {"repeat", required_argument, NULL, 'r'},
        {"seed", required_argument, NULL, 's'},  {"threads", required_argument, NULL, 't'},
        {"delta", required_argument, NULL, 'd'}, {"export", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    const char *model = "small", *delta_path = NULL, *export_prefix = NULL;
    double keep = 0.2;
    bool keep_given = false;
    int level = SOTU_DELTA_ZSTD_LEVEL, repeat = 3, threads = 0, o;
    uint64_t seed = 1;
    sotu_status ps = SOTU_OK;
    optind = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1 && ps == SOTU_OK) {
        switch (o) {
        case 'm': model = optarg; break;
        case 'k':
            ps = sotu_cli_number("--keep", optarg, 0, 1, SOTU_CLI_LO_OPEN, &keep);
            keep_given = true;
            break;
        case 'l': ps = sotu_cli_int("--level", optarg, -131072, 22, &level); break;
        case 'r': ps = sotu_cli_int("--repeat", optarg, 1, 1000000, &repeat); break;
        case 's': ps = sotu_cli_uint64("--seed", optarg, &seed); break;
        case 't': ps = sotu_cli_int("--threads", optarg, 0, 4096, &threads); break;
        case 'd': delta_path = optarg; break;
        case 'e': export_prefix = optarg; break;
        case 'h': codec_usage(stdout); return SOTU_EXIT_OK;
        default: codec_usage(stderr); return SOTU_EXIT_USAGE;
        }
    }
    if (ps != SOTU_OK)
        return sotu_cmd_fail("bench codec", ps);
    if (optind != argc) {
        codec_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    sotu_threads_plan plan;
    sotu_status s = sotu_node_setup(threads, 0, &plan);
    if (s != SOTU_OK)
        return sotu_cmd_fail("bench codec", s);
    threads = plan.threads;

    sotu_tensor_table tab = {0};
    const sotu_tensor_table *check = NULL;
    float *theta0 = NULL, *thetat = NULL;
    sotu_delta d = {0}, back = {0};
    uint8_t *buf = NULL, *zraw = NULL; /* zraw: the zstd peer's output */
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    double extract_s = 0;
    uint64_t total = 0;
    if (!cctx || !dctx) {
        s = sotu_error(SOTU_ERR_NOMEM, "bench codec: zstd contexts");
        goto cleanup;
    }

    if (delta_path) {
        if ((s = sotu_delta_read_file(delta_path, NULL, &d)) != SOTU_OK)
            goto cleanup;
        model = "file";
        if (keep_given && keep < d.keep)
            sotu_bench_cut_to_keep(&d, keep); /* what a run at this keep ships: the nested sub-mask */
        keep = d.keep;
    } else {
        if ((s = sotu_bench_vit_table(model, &tab)) != SOTU_OK ||
            (s = sotu_bench_synthetic_weights(&tab, seed, &theta0, &thetat)) != SOTU_OK)
            goto cleanup;
        check = &tab;
        sotu_config defaults;
        sotu_config_defaults(&defaults);
        static sotu_provenance prov; /* what a run from these weights would stamp */
        if ((s = sotu_provenance_init(&prov, sotu_theta0_fingerprint(theta0, tab.total, NULL, 0),
                                      "synthetic", &defaults)) != SOTU_OK)
            goto cleanup;
        sotu_extract_opts eo = {.task_index = 0, .task_name = "bench", .seed = seed,
                                .keep = keep, .dtype = SOTU_DELTA_F32, .prov = &prov};
        double t0 = sotu_now();
        if ((s = sotu_delta_extract(&tab, theta0, thetat, &eo, &d)) != SOTU_OK)
            goto cleanup;
        extract_s = sotu_now() - t0;
        free(thetat);
        thetat = NULL;
    }
    uint64_t kept = 0, head = 0;
    for (int k = 0; k < d.n_tensors; k++) {
        kept += d.tensors[k].kept;
        total += d.tensors[k].count;
        if (d.tensors[k].mask == SOTU_MASK_DENSE)
            head += d.tensors[k].kept;
    }
    if (export_prefix && (s = export_raw(export_prefix, &d)) != SOTU_OK)
        goto cleanup;

    for (int dt = 0; dt < 2; dt++) {
        d.dtype = dt ? SOTU_DELTA_BF16 : SOTU_DELTA_F32;
        size_t cap = sotu_delta_encode_bound(&d), n = 0;
        free(buf);
        buf = malloc(cap);
        if (!buf) {
            s = sotu_error(SOTU_ERR_NOMEM, "bench codec: %zu bytes", cap);
            goto cleanup;
        }
        double enc = 1e30, dec = 1e30, zdec = 1e30, enc_cpu = 1e30, dec_cpu = 1e30;
        for (int r = 0; r < repeat; r++) {
            double t0 = sotu_now(), c0 = cpu_seconds();
            if ((s = sotu_delta_encode(buf, cap, &n, &d, cctx, level)) != SOTU_OK)
                goto cleanup;
            double t1 = sotu_now(), c1 = cpu_seconds();
            sotu_delta_free(&back);
            if ((s = sotu_delta_decode(buf, n, check, &back, dctx, "bench message")) != SOTU_OK)
                goto cleanup;
            double t2 = sotu_now(), c2 = cpu_seconds();
            enc = t1 - t0 < enc ? t1 - t0 : enc;
            dec = t2 - t1 < dec ? t2 - t1 : dec;
            enc_cpu = c1 - c0 < enc_cpu ? c1 - c0 : enc_cpu;
            dec_cpu = c2 - c1 < dec_cpu ? c2 - c1 : dec_cpu;
            /* The peer in the same run: zstd alone on the same frame (bytes
             * [H + 4, n) of the message, io/delta.h), into a buffer that is
             * reused, so none of the verification, mask listing, unshuffle
             * or allocation the decoder does. */
            size_t at = (size_t)sotu_get_le(buf + 44, 4) + 4, raw_n = (size_t)kept * (dt ? 2 : 4);
            if (!zraw && !(zraw = malloc((size_t)kept * 4 + 1))) {
                s = sotu_error(SOTU_ERR_NOMEM, "bench codec: %zu bytes", raw_n);
                goto cleanup;
            }
            double t3 = sotu_now();
            size_t zr = ZSTD_decompressDCtx(dctx, zraw, raw_n, buf + at, n - at);
            double t4 = sotu_now();
            if (ZSTD_isError(zr) || zr != raw_n) {
                s = sotu_error(SOTU_ERR_INTERNAL, "bench codec: zstd peer: %s",
                               ZSTD_isError(zr) ? ZSTD_getErrorName(zr) : "short");
                goto cleanup;
            }
            zdec = t4 - t3 < zdec ? t4 - t3 : zdec;
        }
        if (d.dtype == SOTU_DELTA_F32)
            for (int k = 0; k < d.n_tensors; k++)
                if (memcmp(d.tensors[k].values, back.tensors[k].values, d.tensors[k].kept * 4)) {
                    s = sotu_error(SOTU_ERR_INTERNAL, "bench codec: tensor '%s' did not round-trip",
                                   d.tensors[k].name);
                    goto cleanup;
                }
        double mb = (double)kept * 4.0 / 1e6;
        json_t *j = json_pack(
            "{s:s, s:s, s:s, s:I, s:f, s:I, s:I, s:i, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:i}",
            "bench", "codec", "source", delta_path ? delta_path : "synthetic", "dtype",
            dt ? "bf16" : "f32", "params", (json_int_t)total, "keep", keep, "kept",
            (json_int_t)kept, "dense_values", (json_int_t)head, "level", level, "bytes",
            (json_int_t)n, "bytes_per_kept", (double)n / (double)(kept ? kept : 1),
            "dense_f32_bytes_per_kept", 4.0 * (double)total / (double)(kept ? kept : 1),
            "encode_mb_s", mb / enc, "decode_mb_s", mb / dec, "extract_mb_s",
            extract_s > 0 ? mb / extract_s : 0.0, "decode_params_m_s", (double)total / 1e6 / dec,
            "threads", threads);
        if (j) {
            json_object_set_new(j, "zstd_decompress_mb_s", json_real(mb / zdec));
            json_object_set_new(j, "decode_vs_zstd", json_real(zdec / dec));
            /* by CPU time (all threads): steadier on a shared machine */
            json_object_set_new(j, "encode_cpu_mb_s", json_real(mb / enc_cpu));
            json_object_set_new(j, "decode_cpu_mb_s", json_real(mb / dec_cpu));
            json_object_set_new(j, "model", json_string(model));
            json_object_set_new(j, "mask_kernel", json_string(sotu_mask_kernel()));
        }
        if ((s = emit(j)) != SOTU_OK)
            goto cleanup;
    }

cleanup:
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
    sotu_delta_free(&d);
    sotu_delta_free(&back);
    free(buf);
    free(zraw);
    free(theta0);
    free(thetat);
    free(tab.t);
    return s == SOTU_OK ? SOTU_EXIT_OK : sotu_cmd_fail("bench codec", s);
}
