/* Writes a checkpoint of a small ViT with seeded random weights, and the
 * logits of sotu's own forward on seeded images, for
 * check_checkpoint_torch.py to load into PyTorch and compare.
 *
 *   ckpt_torch_fixture CKPT.h5 LOGITS.h5 [SEED]
 *
 * LOGITS.h5: /images float32 [B, C, S, S], /logits float32 [B, K] of the
 * primary /merged weights, /logits_keep float32 [B, K] of /keeps/0.05. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "io/checkpoint.h"
#include "worker/vit.h"

enum { B = 4, NTASKS = 2 };

static int write_array(hid_t f, const char *name, int ndim, const hsize_t *dims, const float *v)
{
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t d = H5Dcreate2(f, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0;
    if (d >= 0)
        H5Dclose(d);
    H5Sclose(sp);
    return ok;
}

/* Weights far from a fresh init, so a wrong layout cannot pass: norms near
 * 1, everything else normal with a scale that keeps activations moderate. */
static void fill_params(vit_model *m, uint64_t seed, uint64_t stream)
{
    sotu_rng r;
    sotu_rng_init(&r, seed, stream);
    for (int i = 0; i < m->table.n; i++) {
        const sotu_tensor_info *t = &m->table.t[i];
        int norm_w = strstr(t->name, "norm") && strstr(t->name, ".weight");
        for (size_t k = 0; k < t->count; k++) {
            float z = sotu_rng_normal(&r);
            m->params[t->offset + k] = norm_w ? 1.0f + 0.1f * z : 0.15f * z;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s CKPT.h5 LOGITS.h5 [SEED]\n", argv[0]);
        return 2;
    }
    uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 7;
    printf("ckpt_torch_fixture: seed %llu\n", (unsigned long long)seed);
    vit_config cfg = {.image_size = 16, .channels = 3, .patch = 4, .dim = 32, .depth = 2,
                      .heads = 4, .mlp_hidden = 64, .classes = 5};
    vit_model m, mk;
    int rc = 1;
    float *images = NULL, *logits = NULL, *logits_keep = NULL, *heads = NULL;
    if (vit_init(&m, &cfg, B) != SOTU_OK || vit_init(&mk, &cfg, B) != SOTU_OK) {
        fprintf(stderr, "%s\n", sotu_last_error());
        return 1;
    }
    fill_params(&m, seed, 100);
    fill_params(&mk, seed, 101);

    size_t img_n = (size_t)B * cfg.channels * cfg.image_size * cfg.image_size;
    images = malloc(img_n * sizeof *images);
    logits = malloc((size_t)B * cfg.classes * sizeof *logits);
    logits_keep = malloc((size_t)B * cfg.classes * sizeof *logits);
    heads = malloc((size_t)NTASKS * (cfg.classes * cfg.dim + cfg.classes) * sizeof *heads);
    sotu_rng r;
    sotu_rng_init(&r, seed, 102);
    for (size_t i = 0; i < img_n; i++)
        images[i] = sotu_rng_normal(&r);
    for (size_t i = 0; i < (size_t)NTASKS * (cfg.classes * cfg.dim + cfg.classes); i++)
        heads[i] = 0.1f * sotu_rng_normal(&r);
    vit_forward(&m, images, NULL, B);
    memcpy(logits, m.logits, (size_t)B * cfg.classes * sizeof *logits);
    vit_forward(&mk, images, NULL, B);
    memcpy(logits_keep, mk.logits, (size_t)B * cfg.classes * sizeof *logits);

    sotu_checkpoint_task tasks[NTASKS];
    const char *names[NTASKS] = {"shirts", "sandals"};
    size_t hstride = (size_t)cfg.classes * cfg.dim + cfg.classes;
    for (int t = 0; t < NTASKS; t++)
        tasks[t] = (sotu_checkpoint_task){
            .name = names[t], .index = t, .classes = cfg.classes, .keep = 0.5, .seed = seed,
            .lr = 1e-3, .epochs = 1, .train_seconds = 0.25, .finetuned_acc = 0.8 + 0.1 * t,
            .kept_values = 1234 + t, .bytes = 5000 + t,
            .head_weight = heads + t * hstride,
            .head_bias = heads + t * hstride + (size_t)cfg.classes * cfg.dim};
    double cosine[NTASKS * NTASKS] = {1.0, 0.02, 0.02, 1.0};
    double acc[NTASKS * NTASKS] = {0.8, NAN, 0.75, 0.85};
    sotu_checkpoint_figure summary[1] = {{"final_avg_acc", 0.8}};
    sotu_checkpoint_keep keeps[1] = {{0.05, mk.params}};
    sotu_checkpoint ck = {.config_yaml = "method: sotu\n", .model = cfg, .table = &m.table,
                          .merged = m.params, .keep = 0.5, .n_tasks = NTASKS, .tasks = tasks,
                          .cosine = cosine, .collision_rate = 0.25, .merge_mode = "sum",
                          .merge_scale = 1.0, .n_keeps = 1, .keeps = keeps, .acc_matrix = acc,
                          .n_summary = 1, .summary = summary};
    if (sotu_checkpoint_write(argv[1], &ck) != SOTU_OK) {
        fprintf(stderr, "%s\n", sotu_last_error());
        goto cleanup;
    }

    hid_t f = H5Fcreate(argv[2], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t idims[4] = {B, (hsize_t)cfg.channels, (hsize_t)cfg.image_size,
                        (hsize_t)cfg.image_size};
    hsize_t ldims[2] = {B, (hsize_t)cfg.classes};
    int ok = f >= 0 && write_array(f, "images", 4, idims, images) &&
             write_array(f, "logits", 2, ldims, logits) &&
             write_array(f, "logits_keep", 2, ldims, logits_keep);
    if (f >= 0 && H5Fclose(f) < 0)
        ok = 0;
    if (!ok) {
        fprintf(stderr, "%s: cannot write the logits file\n", argv[2]);
        goto cleanup;
    }
    rc = 0;
cleanup:
    free(images);
    free(logits);
    free(logits_keep);
    free(heads);
    vit_free(&m);
    vit_free(&mk);
    return rc;
}
