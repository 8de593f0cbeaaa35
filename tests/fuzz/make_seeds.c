/* Writes the seed corpora of tests/fuzz/corpus/<target> with sotu's own
 * writers (the inputs the tests and the program produce), small enough to
 * commit. Usage: fuzz_make_seeds CORPUS_DIR (run from any directory; the
 * config seeds are read from examples/ under SOTU_SOURCE_DIR). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "../unit/delta_fixture.h"
#include "io/delta.h"
#include "io/module.h"
#include "io/safetensors.h"
#include "io/taskset.h"
#include "worker/delta_extract.h"
#include "module_layout.h"

static char root[512];

static void die(const char *what)
{
    fprintf(stderr, "make_seeds: %s: %s\n", what, sotu_last_error());
    exit(1);
}

static const char *path_of(const char *target, const char *name)
{
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, target);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/%s", root, target, name);
    return p;
}

static void write_bytes(const char *target, const char *name, const void *b, size_t n)
{
    FILE *f = fopen(path_of(target, name), "wb");
    if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0)
        die(name);
}

static void delta_seeds(void)
{
    sotu_tensor_table tab = fixture_table(4);
    float *t0 = malloc(tab.total * sizeof *t0), *t1 = malloc(tab.total * sizeof *t1);
    fixture_perturb(&tab, NULL, t0, 1, 0.5f);
    fixture_perturb(&tab, t0, t1, 2, 0.01f);
    const struct {
        const char *name;
        double keep;
        sotu_delta_dtype dtype;
        bool rescale;
    } v[] = {{"seeded-f32", 0.3, SOTU_DELTA_F32, true},
             {"seeded-bf16", 0.1, SOTU_DELTA_BF16, false},
             {"keep1-f32", 1.0, SOTU_DELTA_F32, false}};
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        sotu_extract_opts o = {.task_index = (uint32_t)k, .task_name = "t00-seed", .seed = 7,
                               .keep = v[k].keep, .rescale = v[k].rescale, .dtype = v[k].dtype,
                               .prov = fixture_provenance()};
        sotu_delta d;
        if (sotu_delta_extract(&tab, t0, t1, &o, &d) != SOTU_OK)
            die("extract");
        if (k == 0) {
            /* One tensor as an explicit index list, as a top-k mask travels. */
            d.tensors[1].mask = SOTU_MASK_INDEXED;
        }
        if (sotu_delta_write_file(path_of("delta", v[k].name), &d, SOTU_DELTA_ZSTD_LEVEL) !=
            SOTU_OK)
            die(v[k].name);
        sotu_delta_free(&d);
    }
    /* Tensors of >= 256 kept values, whose byte planes end zstd blocks of
     * their own (io/delta.c). */
    sotu_tensor_table wide = fixture_table(16);
    float *w0 = malloc(wide.total * sizeof *w0), *w1 = malloc(wide.total * sizeof *w1);
    fixture_perturb(&wide, NULL, w0, 3, 0.5f);
    fixture_perturb(&wide, w0, w1, 4, 0.01f);
    sotu_extract_opts wo = {.task_index = 5, .task_name = "t05-planes", .seed = 7, .keep = 0.6,
                            .dtype = SOTU_DELTA_F32, .prov = fixture_provenance()};
    sotu_delta dw;
    if (sotu_delta_extract(&wide, w0, w1, &wo, &dw) != SOTU_OK ||
        sotu_delta_write_file(path_of("delta", "planes-f32"), &dw, SOTU_DELTA_ZSTD_LEVEL) !=
            SOTU_OK)
        die("planes-f32");
    sotu_delta_free(&dw);
    free(w0);
    free(w1);
    free(wide.t);
    const char *meta[] = {"format", "pt", "num_heads", "2"};
    if (sotu_safetensors_write(path_of("safetensors", "f32-meta.safetensors"), &tab, t0, meta,
                               2) != SOTU_OK)
        die("safetensors");
    sotu_tensor_table one = {2, tab.t + 8, 0};
    one.total = tab.t[8].count + tab.t[9].count;
    one.t[0].offset = 0;
    one.t[1].offset = one.t[0].count;
    if (sotu_safetensors_write(path_of("safetensors", "head.safetensors"), &one, t0, NULL, 0) !=
        SOTU_OK)
        die("safetensors");
    free(tab.t);
    free(t0);
    free(t1);
}

static void idx_seeds(void)
{
    uint8_t img[16 + 3 * 5 * 4] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0, 4};
    for (int i = 16; i < (int)sizeof img; i++)
        img[i] = (uint8_t)(i * 37);
    uint8_t lab[8 + 3] = {0, 0, 8, 1, 0, 0, 0, 3, 9, 0, 4};
    write_bytes("idx", "images-plain", img, sizeof img);
    write_bytes("idx", "labels-plain", lab, sizeof lab);
    gzFile g = gzopen(path_of("idx", "images.gz"), "wb9");
    if (!g || gzwrite(g, img, sizeof img) != (int)sizeof img || gzclose(g) != Z_OK)
        die("gzip");
    g = gzopen(path_of("idx", "labels.gz"), "wb9");
    if (!g || gzwrite(g, lab, sizeof lab) != (int)sizeof lab || gzclose(g) != Z_OK)
        die("gzip");
}

static void task_seeds(void)
{
    char names[3][SOTU_TASK_NAME_MAX] = {"shirt", "coat", "bag"};
    uint8_t tr[4 * 3 * 3 * 1], te[2 * 3 * 3 * 1];
    for (int i = 0; i < (int)sizeof tr; i++)
        tr[i] = (uint8_t)(i * 11);
    for (int i = 0; i < (int)sizeof te; i++)
        te[i] = (uint8_t)(i * 5);
    int32_t ltr[4] = {0, 1, 2, 1}, lte[2] = {2, 0};
    sotu_taskset t = {.classes = 3, .class_names = names, .height = 3, .width = 3,
                      .channels = 1, .n_train = 4, .n_test = 2, .train_images = tr,
                      .train_labels = ltr, .test_images = te, .test_labels = lte};
    strcpy(t.name, "t00-shirt-coat-bag");
    if (sotu_taskset_write(path_of("taskset", "t00.h5"), &t) != SOTU_OK)
        die("task");
    t.n_test = 0;
    t.channels = 1;
    t.classes = 2;
    ltr[2] = 0;
    strcpy(t.name, "t01");
    if (sotu_taskset_write(path_of("taskset", "t01-no-test.h5"), &t) != SOTU_OK)
        die("task");

    sotu_manifest_task mt[2] = {
        {.name = "t00-shirt-coat-bag", .file = "t00.h5", .classes = 3, .n_train = 4, .n_test = 2},
        {.name = "t01", .file = "t01.h5", .classes = 2, .n_train = 4, .n_test = 0}};
    sotu_manifest m = {.name = "seed", .n_tasks = 2, .tasks = mt};
    if (sotu_manifest_write(path_of("manifest", "two-tasks.yaml"), &m) != SOTU_OK)
        die("manifest");
    m.n_tasks = 1;
    if (sotu_manifest_write(path_of("manifest", "one-task.yaml"), &m) != SOTU_OK)
        die("manifest");
}

static void config_seeds(const char *src)
{
    const char *files[] = {"quickstart.yaml", "fmnist53.yaml", "sweep.yaml", "pretrain.yaml"};
    const char *sets = "\0train.lr=3e-4\0sweep.train.keep=[0.1, 0.5]\0mpi.coordinator_trains=true";
    size_t sets_len = 1 + strlen("train.lr=3e-4") + 1 + strlen("sweep.train.keep=[0.1, 0.5]") +
                      1 + strlen("mpi.coordinator_trains=true");
    for (int i = 0; i < 4; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/examples/%s", src, files[i]);
        FILE *f = fopen(p, "rb");
        if (!f)
            die(p);
        static char buf[65536];
        size_t n = fread(buf, 1, sizeof buf - 256, f);
        fclose(f);
        if (i == 0) {
            memcpy(buf + n, sets, sets_len);
            n += sets_len;
        }
        write_bytes("config", files[i], buf, n);
    }
}

/* Two modules over the fuzz layout: near-identity CLR weights, and values
 * spread over many exponents. */
static void module_seeds(void)
{
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    float v[35];
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 35; i++)
            v[i] = k == 0 ? (i < 18 ? (i % 9 == 4 ? 1.0f : 0.01f * (float)i) : 0.5f)
                          : (float)(i - 17) * (float)(1 << (i % 12)) * 1e-3f;
        sotu_module m = {.task_index = (uint32_t)k, .kind = 1 + (uint32_t)k, .counter = 40 * k,
                         .count = 35, .values = v};
        snprintf(m.task_name, sizeof m.task_name, "t%02d", k);
        m.prov = *fixture_provenance();
        uint8_t buf[4096];
        size_t n = 0;
        if (!cctx || sotu_module_encode(buf, sizeof buf, &n, &m, &fuzz_module_layout, cctx, 3))
            die("module seed");
        write_bytes("module", k == 0 ? "identity" : "spread", buf, n);
    }
    ZSTD_freeCCtx(cctx);
}

int main(int argc, char **argv)
{
    const char *src = getenv("SOTU_SOURCE_DIR");
    if (argc != 2 || !src) {
        fprintf(stderr, "usage: SOTU_SOURCE_DIR=... fuzz_make_seeds CORPUS_DIR\n");
        return 2;
    }
    snprintf(root, sizeof root, "%s", argv[1]);
    mkdir(root, 0755);
    delta_seeds();
    module_seeds();
    idx_seeds();
    task_seeds();
    config_seeds(src);
    return 0;
}
