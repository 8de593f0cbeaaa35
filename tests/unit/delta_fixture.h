/* A small ViT-shaped tensor table and random weights shared by the delta,
 * mask and merge tests. */
#ifndef SOTU_TESTS_DELTA_FIXTURE_H
#define SOTU_TESTS_DELTA_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "common/rng.h"
#include "common/tensor.h"
#include "io/provenance.h"

/* A fixed provenance for the deltas and modules the tests and the seed
 * corpus make (fixed strings: the committed fixtures do not change with the
 * commit that regenerates them). */
static inline const sotu_provenance *fixture_provenance(void)
{
    static sotu_provenance p;
    if (!p.config[0]) {
        p.theta0 = 0x0123456789abcdefull;
        p.task_file = 0x0f1e2d3c4b5a6978ull;
        snprintf(p.config, sizeof p.config, "method: sotu\ntrain.lr: 0.001\ntrain.seed: 0\n");
        p.config_hash = sotu_xxh64(p.config, strlen(p.config));
        snprintf(p.pretrained, sizeof p.pretrained, "data/pretrained/fixture.h5");
        snprintf(p.version, sizeof p.version, "0.1.0");
        snprintf(p.commit, sizeof p.commit, "fixture");
    }
    return &p;
}

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[SOTU_TENSOR_NDIM_MAX];
} fixture_tensor;

/* scale multiplies every dimension marked 0 below ("width"). */
static inline sotu_tensor_table fixture_table(int width)
{
    int D = width, F = 4 * width;
    fixture_tensor spec[] = {
        {"cls_token", 3, {1, 1, D}},
        {"pos_embed", 3, {1, 17, D}},
        {"blocks.0.norm1.weight", 1, {D}},
        {"blocks.0.attn.qkv.weight", 2, {3 * D, D}},
        {"blocks.0.attn.qkv.bias", 1, {3 * D}},
        {"blocks.0.mlp.fc1.weight", 2, {F, D}},
        {"blocks.0.mlp.fc2.weight", 2, {D, F}},
        {"norm.weight", 1, {D}},
        {"head.weight", 2, {5, D}},
        {"head.bias", 1, {5}},
    };
    int n = (int)(sizeof spec / sizeof spec[0]);
    sotu_tensor_table tab = {n, calloc((size_t)n, sizeof(sotu_tensor_info)), 0};
    for (int j = 0; j < n; j++) {
        sotu_tensor_info *t = &tab.t[j];
        strcpy(t->name, spec[j].name);
        t->ndim = spec[j].ndim;
        t->count = 1;
        for (int a = 0; a < t->ndim; a++) {
            t->shape[a] = spec[j].shape[a];
            t->count *= (size_t)t->shape[a];
        }
        t->offset = tab.total;
        tab.total += t->count;
    }
    return tab;
}

/* out[i] = base[i] + sd_j * N(0,1) with a per-tensor scale sd_j. */
static inline void fixture_perturb(const sotu_tensor_table *tab, const float *base, float *out,
                                   uint64_t seed, float sd)
{
    sotu_rng r;
    sotu_rng_init(&r, seed, 77);
    for (int j = 0; j < tab->n; j++) {
        float s = sd * (float)(1 + j % 3);
        for (size_t i = 0; i < tab->t[j].count; i++) {
            size_t k = tab->t[j].offset + i;
            out[k] = (base ? base[k] : 0.0f) + s * sotu_rng_normal(&r);
        }
    }
}

#endif
