/* CLR's per-task pieces: the task model built from a backbone (identity CLR
 * layers change nothing), the fine-tuning loop on a ResNet training CLR's
 * set only (frozen convolutions bitwise unchanged, deterministic), the
 * module layout, extract/apply, and the module codec (io/module.h): round
 * trip, and every single-byte flip, every truncation, trailing bytes, a
 * layout of another task and NaN values rejected with a message.
 *
 *   test_clr_task                          the checks above
 *   test_clr_task --backbone OUT W S K     writes a random plain ResNet-18 of
 *       width W for S x S grey images with K classes (small input) to OUT, the
 *       backbone of the pipeline tests (tests/mpi/clr_train.sh). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "unit/delta_fixture.h"
#include "unit/quadrants_task.h"
#include "common/config.h"
#include "common/log.h"
#include "common/rng.h"
#include "io/fsutil.h"
#include "io/module.h"
#include "io/taskset.h"
#include "worker/clr_task.h"
#include "worker/finetune.h"
#include "worker/resnet.h"

enum { S = 8, CH = 1, K = 4, N_TRAIN = 192, N_TEST = 64 };
static const uint64_t SEED = 77;

static void make_task(sotu_taskset *t)
{
    quadrants_task(t, S, N_TRAIN, N_TEST, SEED);
}

static void make_config(sotu_config *cfg)
{
    sotu_config_defaults(cfg);
    cfg->train.epochs = 6;
    cfg->train.batch_size = 25; /* 192 = 7 * 25 + 17: a partial last batch */
    cfg->train.lr = 1e-2;
    cfg->train.warmup_steps = 4;
    cfg->train.augment_pad = 0;
    cfg->train.augment_flip = false;
    cfg->train.seed = SEED;
    cfg->data.mean = 0.5;
    cfg->data.std = 0.25;
}

/* The shared backbone: a plain ResNet-18 of width 4 with 10 classes. */
static void make_base(resnet_model *base)
{
    resnet_config rc = {.depth = 18, .width = 4, .channels = CH, .image_size = S, .classes = 10,
                        .small_input = true, .clr = RESNET_CLR_NONE};
    CHECK(resnet_init(base, &rc, 1) == SOTU_OK);
    resnet_init_random(base, SEED);
    /* Non-trivial running statistics, as a pretrained backbone has. */
    for (size_t i = 0; i < base->buffers.total; i++)
        base->running[i] = 0.5f + 0.25f * (float)(i % 7);
    base->num_batches_tracked = 123;
}

static void test_identity_and_loop(const resnet_model *base, const sotu_taskset *t,
                                   const sotu_config *cfg)
{
    resnet_model plain, clr, clr2;
    CHECK(clr_model_for_task(base, RESNET_CLR_NONE, K, 32, SEED, 3, &plain) == SOTU_OK);
    CHECK(clr_model_for_task(base, RESNET_CLR_CONV3, K, 32, SEED, 3, &clr) == SOTU_OK);
    CHECK(clr.num_batches_tracked == 123);
    /* Identity CLR layers: the same logits as the plain model (eval mode). */
    double acc_plain, acc_clr;
    float *lp = malloc(sizeof(float) * N_TEST * K), *lc = malloc(sizeof(float) * N_TEST * K);
    CHECK(sotu_finetune_eval_resnet(&plain, t->test_images, t->test_labels, N_TEST, S, S, CH,
                                    cfg, &acc_plain, NULL, lp) == SOTU_OK);
    CHECK(sotu_finetune_eval_resnet(&clr, t->test_images, t->test_labels, N_TEST, S, S, CH, cfg,
                                    &acc_clr, NULL, lc) == SOTU_OK);
    double maxd = 0;
    for (int i = 0; i < N_TEST * K; i++)
        maxd = fabs(lp[i] - lc[i]) > maxd ? fabs(lp[i] - lc[i]) : maxd;
    CHECK_MSG(maxd < 1e-4, "identity CLR changed logits by %g", maxd);
    CHECK(clr.training); /* evaluation restores the mode */

    /* CLR training: convolutions frozen bitwise, the rest moves, it learns. */
    float *before = malloc(sizeof(float) * clr.num_params);
    memcpy(before, clr.params, sizeof(float) * clr.num_params);
    sotu_finetune_opts fo = sotu_finetune_opts_default();
    fo.task = 3;
    fo.tune = "clr";
    sotu_finetune_result r;
    CHECK(sotu_finetune_run_resnet(&clr, t, cfg, &fo, &r) == SOTU_OK);
    CHECK_MSG(r.test_acc > 0.6, "CLR test accuracy %g on a 4-class task", r.test_acc);
    CHECK(r.steps == 6 * 8);
    int moved_conv = 0, moved_clr = 0;
    for (int i = 0; i < clr.table.n; i++) {
        const sotu_tensor_info *ti = &clr.table.t[i];
        bool same = !memcmp(before + ti->offset, clr.params + ti->offset,
                            sizeof(float) * ti->count);
        bool is_clr = strstr(ti->name, ".clr.") != NULL;
        if (ti->ndim == 4 && !is_clr)
            moved_conv += !same;
        if (is_clr)
            moved_clr += !same;
    }
    CHECK_MSG(moved_conv == 0, "%d frozen convolutions changed", moved_conv);
    CHECK(moved_clr > 0);
    CHECK(clr.num_batches_tracked == 123 + r.steps);

    /* Deterministic: a second run from the same start is bitwise equal. */
    CHECK(clr_model_for_task(base, RESNET_CLR_CONV3, K, 32, SEED, 3, &clr2) == SOTU_OK);
    CHECK(sotu_finetune_run_resnet(&clr2, t, cfg, &fo, NULL) == SOTU_OK);
    CHECK(!memcmp(clr.params, clr2.params, sizeof(float) * clr.num_params));
    CHECK(!memcmp(clr.running, clr2.running, sizeof(float) * clr.buffers.total));

    /* Extract -> apply onto a fresh task model gives the trained model's
     * accuracy: the module is all a task needs. */
    sotu_tensor_table layout;
    CHECK(clr_module_layout(&clr, &layout) == SOTU_OK);
    resnet_param_counts pc = resnet_count_params(&clr);
    CHECK(layout.total == pc.clr + pc.bn + pc.head + clr.buffers.total);
    CHECK(!strcmp(layout.t[layout.n - 1].name + strlen(layout.t[layout.n - 1].name) - 11,
                  "running_var"));
    float *vals = malloc(sizeof(float) * layout.total);
    clr_module_extract(&clr, &layout, vals);
    resnet_model fresh;
    CHECK(clr_model_for_task(base, RESNET_CLR_CONV3, K, 16, 999, 3, &fresh) == SOTU_OK);
    clr_module_apply(&fresh, &layout, vals, clr.num_batches_tracked);
    double acc_fresh, acc_trained;
    CHECK(sotu_finetune_eval_test_resnet(&fresh, t, cfg, &acc_fresh) == SOTU_OK);
    CHECK(sotu_finetune_eval_test_resnet(&clr, t, cfg, &acc_trained) == SOTU_OK);
    CHECK_MSG(acc_fresh == acc_trained && acc_trained == r.test_acc, "%g %g %g", acc_fresh,
              acc_trained, r.test_acc);

    /* Frozen baseline set: fc only. */
    CHECK(clr_module_layout(&plain, &(sotu_tensor_table){0}) == SOTU_ERR_CONFIG);

    free(vals);
    sotu_task_table_free(&layout);
    free(before);
    free(lp);
    free(lc);
    resnet_free(&fresh);
    resnet_free(&plain);
    resnet_free(&clr);
    resnet_free(&clr2);
}

static void test_codec(const resnet_model *base)
{
    resnet_model m, other;
    CHECK(clr_model_for_task(base, RESNET_CLR_ALL, K, 2, SEED, 1, &m) == SOTU_OK);
    CHECK(clr_model_for_task(base, RESNET_CLR_ALL, K + 1, 2, SEED, 1, &other) == SOTU_OK);
    sotu_tensor_table layout, layout_other;
    CHECK(clr_module_layout(&m, &layout) == SOTU_OK);
    CHECK(clr_module_layout(&other, &layout_other) == SOTU_OK);
    /* clr-full adds the downsample convolutions' CLR layers. */
    CHECK(sotu_tensor_find(&layout, "layer2.0.downsample.0.clr.weight") >= 0);

    sotu_module mod = {.task_index = 1, .kind = RESNET_CLR_ALL, .counter = 42,
                       .count = layout.total};
    snprintf(mod.task_name, sizeof mod.task_name, "t01");
    mod.prov = *fixture_provenance();
    mod.values = malloc(sizeof(float) * layout.total);
    sotu_rng r;
    sotu_rng_init(&r, SEED, SOTU_STREAM_DATA + 1);
    for (size_t i = 0; i < layout.total; i++)
        mod.values[i] = sotu_rng_normal(&r);
    size_t cap = sotu_module_encode_bound(&layout, &mod), n = 0;
    uint8_t *buf = malloc(cap + 1);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    CHECK(sotu_module_encode(buf, cap, &n, &mod, &layout, cctx, 3) == SOTU_OK);
    CHECK(sotu_module_encode(buf, 10, &n, &mod, &layout, cctx, 3) == SOTU_ERR_NOMEM);
    CHECK(sotu_module_encode(buf, cap, &n, &mod, &layout, cctx, 3) == SOTU_OK);

    sotu_module out;
    CHECK(sotu_module_decode(buf, n, &layout, &out, dctx, "msg") == SOTU_OK);
    CHECK(out.task_index == 1 && out.kind == RESNET_CLR_ALL && out.counter == 42);
    CHECK(!strcmp(out.task_name, "t01") && out.count == layout.total);
    CHECK(!memcmp(out.values, mod.values, sizeof(float) * layout.total));
    CHECK(out.prov.theta0 == mod.prov.theta0 && out.prov.task_file == mod.prov.task_file);
    CHECK(!strcmp(out.prov.config, mod.prov.config) && !strcmp(out.prov.commit, "fixture"));
    sotu_module_free(&out);

    /* Every single-byte flip is caught (header CRC, zstd frame checks and
     * content checksum, sizes), with a message naming the message. */
    int accepted = 0;
    for (size_t i = 0; i < n; i++) {
        buf[i] ^= 0x21;
        sotu_status st = sotu_module_decode(buf, n, &layout, &out, dctx, "flipped");
        if (st == SOTU_OK) {
            accepted++;
            fprintf(stderr, "flip at byte %zu of %zu accepted\n", i, n);
            sotu_module_free(&out);
        } else {
            CHECK(st == SOTU_ERR_DATA && !strncmp(sotu_last_error(), "flipped: ", 9));
            CHECK(out.values == NULL);
        }
        buf[i] ^= 0x21;
    }
    CHECK_MSG(accepted == 0, "%d of %zu flips accepted", accepted, n);
    for (size_t len = 0; len < n; len++)
        CHECK(sotu_module_decode(buf, len, &layout, &out, dctx, "cut") == SOTU_ERR_DATA);
    buf[n] = 0;
    CHECK(sotu_module_decode(buf, n + 1, &layout, &out, dctx, "long") == SOTU_ERR_DATA);
    CHECK(strstr(sotu_last_error(), "trailing") != NULL);

    /* A module for another class count fails naming the tensor. */
    CHECK(sotu_module_decode(buf, n, &layout_other, &out, dctx, "other") == SOTU_ERR_DATA);
    CHECK(strstr(sotu_last_error(), "values") || strstr(sotu_last_error(), "fc."));

    /* NaN values never decode. */
    mod.values[layout.total / 2] = NAN;
    CHECK(sotu_module_encode(buf, cap, &n, &mod, &layout, cctx, 3) == SOTU_OK);
    CHECK(sotu_module_decode(buf, n, &layout, &out, dctx, "nan") == SOTU_ERR_DATA);
    CHECK(strstr(sotu_last_error(), "NaN") != NULL);

    /* The provenance is under the header checksum (the flips above cover
     * it too); a module without one is not encoded; a version-1 module
     * (tests/data/module/old_v1.clrm, before the provenance) is refused by
     * name. */
    sotu_provenance saved = mod.prov;
    memset(&mod.prov, 0, sizeof mod.prov);
    CHECK(sotu_module_encode(buf, cap, &n, &mod, &layout, cctx, 3) == SOTU_ERR_DATA);
    CHECK(strstr(sotu_last_error(), "provenance") != NULL);
    mod.prov = saved;
    const char *src = getenv("SOTU_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/module/old_v1.clrm", src ? src : ".");
    char *old = NULL;
    size_t old_n = 0;
    CHECK_MSG(sotu_read_file(path, 1 << 20, &old, &old_n) == SOTU_OK, "%s", sotu_last_error());
    sotu_tensor_table found;
    size_t payload;
    CHECK(sotu_module_read_head(old, old_n, &out, &found, &payload, path) == SOTU_ERR_DATA);
    CHECK_MSG(strstr(sotu_last_error(), "format version 1, written by an older sotu"), "%s",
              sotu_last_error());
    free(old);

    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
    free(buf);
    free(mod.values);
    sotu_task_table_free(&layout);
    sotu_task_table_free(&layout_other);
    resnet_free(&m);
    resnet_free(&other);
}

static int write_backbone(const char *out, int width, int size, int classes)
{
    resnet_config rc = {.depth = 18, .width = width, .channels = 1, .image_size = size,
                        .classes = classes, .small_input = true, .clr = RESNET_CLR_NONE};
    resnet_model m;
    sotu_status st = resnet_init(&m, &rc, 1);
    if (st == SOTU_OK) {
        resnet_init_random(&m, SEED);
        st = resnet_weights_write(out, &m);
    }
    resnet_free(&m);
    if (st != SOTU_OK)
        fprintf(stderr, "test_clr_task --backbone: %s\n", sotu_last_error());
    return st != SOTU_OK;
}

int main(int argc, char **argv)
{
    if (argc == 6 && !strcmp(argv[1], "--backbone"))
        return write_backbone(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
    sotu_log_set_level(SOTU_LOG_WARN);
    printf("test_clr_task: seed %llu\n", (unsigned long long)SEED);
    sotu_taskset t;
    make_task(&t);
    sotu_config cfg;
    make_config(&cfg);
    resnet_model base;
    make_base(&base);
    test_identity_and_loop(&base, &t, &cfg);
    test_codec(&base);
    resnet_free(&base);
    sotu_taskset_free(&t);
    return check_finish("test_clr_task");
}
