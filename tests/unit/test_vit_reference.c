/* The C ViT against PyTorch: tests/data/vit_reference.h5, written by
 * tests/reference/gen_vit_reference.py (float64 torch from float32 inputs).
 * Checks logits and loss (1e-4 relative), every gradient tensor (1e-3
 * relative to the tensor's max |value|), label smoothing, frozen subsets
 * (trainable grads still match, frozen ones stay zero), and 5 AdamW steps
 * (loss trajectory and final weights, 1e-3), under 1 and 2 threads.
 * Fixture path: $SOTU_SOURCE_DIR/tests/data/vit_reference.h5 or argv[1]. */
#include <hdf5.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/threads.h"
#include "worker/optim.h"
#include "worker/vit.h"

static hid_t file;

static void read_floats(const char *path, float *dst, size_t count)
{
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    if (d < 0) {
        fprintf(stderr, "fixture: missing dataset %s\n", path);
        exit(1);
    }
    hid_t sp = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    if (n != (hssize_t)count) {
        fprintf(stderr, "fixture: %s has %lld elements, expected %zu\n", path, (long long)n,
                count);
        exit(1);
    }
    if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) {
        fprintf(stderr, "fixture: cannot read %s\n", path);
        exit(1);
    }
    H5Sclose(sp);
    H5Dclose(d);
}

static double read_attr(const char *name)
{
    double v = 0.0;
    hid_t g = H5Gopen2(file, "/config", H5P_DEFAULT);
    hid_t a = g >= 0 ? H5Aopen(g, name, H5P_DEFAULT) : -1;
    if (a < 0 || H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) {
        fprintf(stderr, "fixture: cannot read /config attribute %s\n", name);
        exit(1);
    }
    H5Aclose(a);
    H5Gclose(g);
    return v;
}

/* max |a - b| / max |b| (absolute if b is all zero). */
static double rel_err(const float *a, const float *b, size_t n)
{
    double err = 0.0, ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= err))
            err = e; /* NaN counts as the worst */
        if (fabs(b[i]) > ref)
            ref = fabs(b[i]);
    }
    return ref > 0.0 ? err / ref : err;
}

/* The key bias never changes attention (it shifts every score of a query by
 * the same q.b_k), so its gradient is exactly zero and Adam, which divides by
 * sqrt(v), turns float rounding of that zero into steps of up to lr. After
 * an optimizer run its slice [D, 2D) of attn.qkv.bias is held only to
 * |error| <= kbias_abs; kbias_abs 0 compares it like everything else. */
static double kbias_abs;

static double qkv_bias_err(const float *c, const float *ref, int D)
{
    double e = fmax(rel_err(c, ref, (size_t)D), rel_err(c + 2 * D, ref + 2 * D, (size_t)D));
    for (int k = D; k < 2 * D; k++)
        if (!(fabs((double)c[k] - ref[k]) <= kbias_abs))
            e = INFINITY;
    return e;
}

/* Compares the trainable tensors of block against /<group>/<name>; frozen
 * ones must be exactly zero. Prints the worst tensor. */
static void compare_tensors(const vit_model *m, const float *block, const char *group,
                            double tol, const char *what)
{
    float *ref = malloc(m->num_params * sizeof *ref);
    double worst = 0.0;
    int worst_i = -1;
    for (int i = 0; i < m->table.n; i++) {
        const sotu_tensor_info *t = &m->table.t[i];
        const float *c = block + t->offset;
        if (!m->trainable[i]) {
            int nonzero = 0;
            for (size_t k = 0; k < t->count; k++)
                nonzero += c[k] != 0.0f;
            CHECK_MSG(nonzero == 0, "%s: frozen %s has %d non-zero gradients", what, t->name,
                      nonzero);
            continue;
        }
        char path[256];
        snprintf(path, sizeof path, "/%s/%s", group, t->name);
        read_floats(path, ref + t->offset, t->count);
        size_t len = strlen(t->name);
        bool qkv_bias = len > 13 && !strcmp(t->name + len - 13, "attn.qkv.bias");
        double e = kbias_abs > 0.0 && qkv_bias
                       ? qkv_bias_err(c, ref + t->offset, m->cfg.dim)
                       : rel_err(c, ref + t->offset, t->count);
        CHECK_MSG(e <= tol, "%s: %s relative error %.3g > %.g", what, t->name, e, tol);
        if (!(e <= worst)) {
            worst = e;
            worst_i = i;
        }
    }
    printf("%-28s worst %-32s %.3g\n", what, worst_i >= 0 ? m->table.t[worst_i].name : "-",
           worst);
    free(ref);
}

static void load_params(vit_model *m)
{
    char path[256];
    for (int i = 0; i < m->table.n; i++) {
        snprintf(path, sizeof path, "/params/%s", m->table.t[i].name);
        read_floats(path, m->params + m->table.t[i].offset, m->table.t[i].count);
    }
}

static void run(const vit_config *cfg, int B, const float *images, const int32_t *labels,
                int threads)
{
    printf("-- %d thread(s)\n", threads);
    sotu_threads_set(threads);
    vit_model m;
    /* batch_cap > B exercises the activation strides */
    if (vit_init(&m, cfg, B + 3) != SOTU_OK) {
        fprintf(stderr, "vit_init: %s\n", sotu_last_error());
        exit(1);
    }
    load_params(&m);
    int K = cfg->classes;
    float *ref_logits = malloc((size_t)B * K * sizeof(float));
    float ref_loss, ref_loss_s;
    read_floats("/logits", ref_logits, (size_t)B * K);
    read_floats("/loss", &ref_loss, 1);
    read_floats("/loss_smooth", &ref_loss_s, 1);

    vit_forward(&m, images, NULL, B);
    double e = rel_err(m.logits, ref_logits, (size_t)B * K);
    CHECK_MSG(e <= 1e-4, "logits without labels: relative error %.3g", e);

    vit_zero_grad(&m);
    float loss = vit_forward(&m, images, labels, B);
    e = rel_err(m.logits, ref_logits, (size_t)B * K);
    printf("%-28s %.3g\n", "logits", e);
    CHECK_MSG(e <= 1e-4, "logits: relative error %.3g", e);
    CHECK_MSG(fabs(loss - ref_loss) <= 1e-4 * fabs(ref_loss), "loss %.7f vs %.7f", loss,
              ref_loss);
    vit_backward(&m);
    compare_tensors(&m, m.grads, "grads", 1e-3, "gradients");

    m.label_smoothing = (float)read_attr("label_smoothing");
    vit_zero_grad(&m);
    loss = vit_forward(&m, images, labels, B);
    CHECK_MSG(fabs(loss - ref_loss_s) <= 1e-4 * fabs(ref_loss_s), "smoothed loss %.7f vs %.7f",
              loss, ref_loss_s);
    vit_backward(&m);
    compare_tensors(&m, m.grads, "grads_smooth", 1e-3, "gradients, smoothing 0.1");
    m.label_smoothing = 0.0f;

    /* Frozen subsets: backward may stop early, but what trains must match. */
    const char *specs[] = {"head", "norm", "mlp", "attn", "blocks.1.*",
                           "patch_embed.*,head", "cls_token", "blocks.0.norm1.bias"};
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        CHECK(vit_set_trainable(&m, specs[s]) == SOTU_OK);
        memset(m.grads, 0, m.num_params * sizeof(float));
        vit_forward(&m, images, labels, B);
        vit_backward(&m);
        char what[64];
        snprintf(what, sizeof what, "tune %s", specs[s]);
        compare_tensors(&m, m.grads, "grads", 1e-3, what);
    }
    CHECK(vit_set_trainable(&m, "nothing.matches") == SOTU_ERR_CONFIG);
    CHECK(vit_set_trainable(&m, "all") == SOTU_OK);

    /* 5 AdamW steps on the same batch, constant lr, no clipping. */
    optim_config oc = optim_config_default(OPTIM_ADAMW);
    oc.weight_decay = (float)read_attr("weight_decay");
    oc.beta1 = (float)read_attr("beta1");
    oc.beta2 = (float)read_attr("beta2");
    oc.eps = (float)read_attr("eps");
    float lr = (float)read_attr("lr");
    int steps = (int)read_attr("steps");
    optim_state opt;
    CHECK(optim_init(&opt, &oc, &m.table, m.trainable) == SOTU_OK);
    float *ref_losses = malloc((size_t)steps * sizeof(float));
    read_floats("/adamw/losses", ref_losses, (size_t)steps);
    for (int s = 0; s < steps; s++) {
        vit_zero_grad(&m);
        loss = vit_forward(&m, images, labels, B);
        vit_backward(&m);
        CHECK(optim_find_nonfinite(&m.table, m.trainable, m.grads) == -1);
        optim_step(&opt, m.params, m.grads, lr);
        printf("adamw step %d loss %.6f (torch %.6f)\n", s, loss, ref_losses[s]);
        CHECK_MSG(fabs(loss - ref_losses[s]) <= 1e-3 * fabs(ref_losses[s]),
                  "step %d loss %.6f vs %.6f", s, loss, ref_losses[s]);
    }
    kbias_abs = 2.0 * lr * steps;
    compare_tensors(&m, m.params, "adamw/params", 1e-3, "params after 5 AdamW steps");
    kbias_abs = 0.0;
    optim_free(&opt);
    free(ref_losses);
    free(ref_logits);
    vit_free(&m);
}

int main(int argc, char **argv)
{
    char path[4096];
    const char *src = getenv("SOTU_SOURCE_DIR");
    if (argc > 1)
        snprintf(path, sizeof path, "%s", argv[1]);
    else
        snprintf(path, sizeof path, "%s/tests/data/vit_reference.h5", src ? src : ".");
    file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        fprintf(stderr, "cannot open fixture %s (set SOTU_SOURCE_DIR)\n", path);
        return 1;
    }
    vit_config cfg = {
        .image_size = (int)read_attr("image_size"), .channels = (int)read_attr("channels"),
        .patch = (int)read_attr("patch"),           .dim = (int)read_attr("dim"),
        .depth = (int)read_attr("depth"),           .heads = (int)read_attr("heads"),
        .mlp_hidden = (int)read_attr("mlp_hidden"), .classes = (int)read_attr("classes"),
    };
    int B = (int)read_attr("batch");
    size_t npix = (size_t)B * cfg.channels * cfg.image_size * cfg.image_size;
    float *images = malloc(npix * sizeof *images);
    int32_t *labels = malloc((size_t)B * sizeof *labels);
    read_floats("/inputs", images, npix);
    hid_t d = H5Dopen2(file, "/labels", H5P_DEFAULT);
    if (d < 0 || H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels) < 0) {
        fprintf(stderr, "fixture: cannot read /labels\n");
        return 1;
    }
    H5Dclose(d);

    run(&cfg, B, images, labels, 1);
    run(&cfg, B, images, labels, 2);

    free(images);
    free(labels);
    H5Fclose(file);
    return check_finish("test_vit_reference");
}
