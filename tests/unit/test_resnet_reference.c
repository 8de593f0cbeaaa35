/* The C ResNet against PyTorch: tests/data/resnet_reference.h5, written by
 * tests/reference/gen_resnet_reference.py (float64 torch from float32
 * inputs). For each case (std: torchvision stem with CLR; small: small stem
 * with CLR after every conv; plain: no CLR) checks, under 1 and 2 threads:
 * train-mode logits and loss (1e-4 relative), every gradient (1e-3 relative
 * to the tensor's max |value|), the running statistics after the forward
 * and num_batches_tracked; CLR mode (only CLR weights, BatchNorm affine and
 * fc train: their gradients match, the frozen convolutions' stay zero);
 * frozen subsets that let backward stop early; eval-mode logits, loss,
 * gradients and untouched running statistics. Prints the worst tensor of
 * each comparison. Fixture: $SOTU_SOURCE_DIR/tests/data/resnet_reference.h5
 * or argv[1]. */
#include <hdf5.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/threads.h"
#include "worker/resnet.h"

static hid_t file;

static void fail(const char *what, const char *path)
{
    fprintf(stderr, "fixture: %s %s\n", what, path);
    exit(1);
}

static void read_floats(const char *path, float *dst, size_t count)
{
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    if (d < 0)
        fail("missing dataset", path);
    hid_t sp = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    if (n != (hssize_t)count) {
        fprintf(stderr, "fixture: %s has %lld elements, expected %zu\n", path, (long long)n,
                count);
        exit(1);
    }
    if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
        fail("cannot read", path);
    H5Sclose(sp);
    H5Dclose(d);
}

static bool exists(const char *path)
{
    return H5Lexists(file, path, H5P_DEFAULT) > 0;
}

static int read_int(const char *group, const char *name)
{
    int v = 0;
    hid_t a = H5Aopen_by_name(file, group, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_INT, &v) < 0)
        fail("cannot read attribute", name);
    H5Aclose(a);
    return v;
}

/* A fixed-length string attribute (numpy bytes) into buf. */
static void read_str(const char *group, const char *name, char *buf, size_t cap)
{
    hid_t a = H5Aopen_by_name(file, group, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0)
        fail("cannot open attribute", name);
    hid_t ft = H5Aget_type(a);
    size_t n = H5Tget_size(ft);
    if (n + 1 > cap)
        fail("attribute too long", name);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, n + 1);
    H5Tset_strpad(mt, H5T_STR_NULLTERM);
    memset(buf, 0, cap);
    if (H5Aread(a, mt, buf) < 0)
        fail("cannot read attribute", name);
    H5Tclose(mt);
    H5Tclose(ft);
    H5Aclose(a);
}

/* max |a - b| / max |b| (absolute if b is all zero); NaN is the worst. */
static double rel_err(const float *a, const float *b, size_t n)
{
    double err = 0.0, ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= err))
            err = e;
        if (fabs(b[i]) > ref)
            ref = fabs(b[i]);
    }
    return ref > 0.0 ? err / ref : err;
}

/* Compares every tensor of tab marked in only (NULL: all) against
 * /<group>/<name>; tensors not marked must be exactly zero. */
static void compare(const sotu_tensor_table *tab, const float *block, const bool *only,
                    const char *group, double tol, const char *what)
{
    double worst = 0.0;
    int worst_i = -1;
    for (int i = 0; i < tab->n; i++) {
        const sotu_tensor_info *t = &tab->t[i];
        const float *c = block + t->offset;
        if (only && !only[i]) {
            int nonzero = 0;
            for (size_t k = 0; k < t->count; k++)
                nonzero += c[k] != 0.0f;
            CHECK_MSG(nonzero == 0, "%s: frozen %s has %d non-zero gradients", what, t->name,
                      nonzero);
            continue;
        }
        char path[256];
        snprintf(path, sizeof path, "%s/%s", group, t->name);
        float *ref = malloc(t->count * sizeof *ref);
        read_floats(path, ref, t->count);
        double e = rel_err(c, ref, t->count);
        CHECK_MSG(e <= tol, "%s: %s relative error %.3g > %.g", what, t->name, e, tol);
        if (!(e <= worst)) {
            worst = e;
            worst_i = i;
        }
        free(ref);
    }
    printf("  %-30s worst %-34s %.3g\n", what, worst_i >= 0 ? tab->t[worst_i].name : "-", worst);
}

static void load_block(const sotu_tensor_table *tab, float *block, const char *group)
{
    char path[256];
    for (int i = 0; i < tab->n; i++) {
        snprintf(path, sizeof path, "%s/%s", group, tab->t[i].name);
        read_floats(path, block + tab->t[i].offset, tab->t[i].count);
    }
}

static void check_logits(const resnet_model *m, float loss, const char *cs, const char *mode,
                         int B)
{
    char path[256];
    int K = m->cfg.classes;
    float *ref = malloc((size_t)B * K * sizeof *ref), ref_loss;
    snprintf(path, sizeof path, "/%s/%s/logits", cs, mode);
    read_floats(path, ref, (size_t)B * K);
    snprintf(path, sizeof path, "/%s/%s/loss", cs, mode);
    read_floats(path, &ref_loss, 1);
    double e = rel_err(m->logits, ref, (size_t)B * K);
    printf("  %-30s %.3g, loss %.7f (torch %.7f)\n", mode, e, loss, ref_loss);
    CHECK_MSG(e <= 1e-4, "%s %s logits: relative error %.3g", cs, mode, e);
    CHECK_MSG(fabs(loss - ref_loss) <= 1e-4 * fabs(ref_loss), "%s %s loss %.7f vs %.7f", cs, mode,
              loss, ref_loss);
    free(ref);
}

static void run_case(const char *cs, int threads)
{
    char g[64], path[256], clr[32], eval_tune[64];
    snprintf(g, sizeof g, "/%s", cs);
    printf("-- %s, %d thread(s)\n", cs, threads);
    sotu_threads_set(threads);
    read_str(g, "clr", clr, sizeof clr);
    read_str(g, "eval_tune", eval_tune, sizeof eval_tune);
    resnet_config cfg = {
        .depth = read_int(g, "depth"),           .width = read_int(g, "width"),
        .channels = read_int(g, "channels"),     .image_size = read_int(g, "image_size"),
        .classes = read_int(g, "classes"),       .small_input = read_int(g, "small_input") != 0,
    };
    CHECK(resnet_parse_clr(clr, "clr", &cfg.clr) == SOTU_OK);
    int B = read_int(g, "batch"), S = cfg.image_size;
    size_t npix = (size_t)B * cfg.channels * S * S;
    float *images = malloc(npix * sizeof *images);
    int32_t *labels = malloc((size_t)B * sizeof *labels);
    snprintf(path, sizeof path, "%s/inputs", g);
    read_floats(path, images, npix);
    snprintf(path, sizeof path, "%s/labels", g);
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    if (d < 0 || H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels) < 0)
        fail("cannot read", path);
    H5Dclose(d);

    resnet_model m;
    /* batch_cap > B exercises the activation strides */
    if (resnet_init(&m, &cfg, B + 2) != SOTU_OK) {
        fprintf(stderr, "resnet_init: %s\n", sotu_last_error());
        exit(1);
    }
    snprintf(path, sizeof path, "%s/params", g);
    load_block(&m.table, m.params, path);
    char running[256];
    snprintf(running, sizeof running, "%s/running", g);
    load_block(&m.buffers, m.running, running);
    size_t K = (size_t)cfg.classes;

    /* train mode, everything trains */
    resnet_zero_grad(&m);
    float loss = resnet_forward(&m, images, labels, B);
    check_logits(&m, loss, cs, "train", B);
    CHECK(m.num_batches_tracked == 1);
    snprintf(path, sizeof path, "%s/train/running", g);
    compare(&m.buffers, m.running, NULL, path, 1e-4, "running stats after forward");
    resnet_backward(&m);
    snprintf(path, sizeof path, "%s/train/grads", g);
    compare(&m.table, m.grads, NULL, path, 1e-3, "gradients, train mode");

    float *logits = malloc((size_t)B * K * sizeof *logits);
    memcpy(logits, m.logits, (size_t)B * K * sizeof *logits);
    load_block(&m.buffers, m.running, running);
    resnet_forward(&m, images, NULL, B);
    CHECK_MSG(!memcmp(logits, m.logits, (size_t)B * K * sizeof *logits),
              "%s: logits without labels differ", cs);

    /* frozen subsets: backward may stop early, but what trains must match */
    const char *specs[] = {"clr", "head", "bn", "layer4.*", "layer3.1.*", "bn1.*,fc.*",
                           "conv", "layer2.0.downsample.*", "layer1.0.conv1.weight"};
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        if (!strcmp(specs[s], "clr") && cfg.clr == RESNET_CLR_NONE) {
            CHECK(resnet_set_trainable(&m, "clr") == SOTU_ERR_CONFIG);
            continue;
        }
        CHECK(resnet_set_trainable(&m, specs[s]) == SOTU_OK);
        memset(m.grads, 0, m.num_params * sizeof(float));
        load_block(&m.buffers, m.running, running);
        resnet_forward(&m, images, labels, B);
        resnet_backward(&m);
        char what[64];
        snprintf(what, sizeof what, "tune %s", specs[s]);
        bool clr_mode = !strcmp(specs[s], "clr");
        snprintf(path, sizeof path, "%s/%s/grads", g, clr_mode ? "clr" : "train");
        compare(&m.table, m.grads, m.trainable, path, 1e-3, what);
    }
    CHECK(resnet_set_trainable(&m, "nothing.matches") == SOTU_ERR_CONFIG);
    CHECK(resnet_set_trainable(&m, " , ") == SOTU_ERR_CONFIG);

    /* eval mode: running statistics, which stay as they were */
    load_block(&m.buffers, m.running, running);
    m.training = false;
    int64_t tracked = m.num_batches_tracked;
    CHECK(resnet_set_trainable(&m, eval_tune) == SOTU_OK);
    memset(m.grads, 0, m.num_params * sizeof(float));
    loss = resnet_forward(&m, images, labels, B);
    check_logits(&m, loss, cs, "eval", B);
    CHECK(m.num_batches_tracked == tracked);
    compare(&m.buffers, m.running, NULL, running, 0.0, "running stats after eval forward");
    resnet_backward(&m);
    snprintf(path, sizeof path, "%s/eval/grads", g);
    char what[96];
    snprintf(what, sizeof what, "gradients, eval, tune %s", eval_tune);
    compare(&m.table, m.grads, m.trainable, path, 1e-3, what);

    resnet_free(&m);
    free(logits);
    free(images);
    free(labels);
}

int main(int argc, char **argv)
{
    char path[4096];
    const char *src = getenv("SOTU_SOURCE_DIR");
    if (argc > 1)
        snprintf(path, sizeof path, "%s", argv[1]);
    else
        snprintf(path, sizeof path, "%s/tests/data/resnet_reference.h5", src ? src : ".");
    file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        fprintf(stderr, "cannot open fixture %s (set SOTU_SOURCE_DIR)\n", path);
        return 1;
    }
    const char *cases[] = {"std", "small", "plain"};
    for (int threads = 1; threads <= 2; threads++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            char g[64];
            snprintf(g, sizeof g, "/%s", cases[c]);
            CHECK_MSG(exists(g), "fixture has no case %s", cases[c]);
            if (exists(g))
                run_case(cases[c], threads);
        }
    H5Fclose(file);
    return check_finish("test_resnet_reference");
}
