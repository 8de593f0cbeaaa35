/* Inputs shared by `sotu bench codec` and `sotu bench merge` (internal). */
#ifndef SOTU_CLI_BENCH_BENCH_DELTA_H
#define SOTU_CLI_BENCH_BENCH_DELTA_H

#include <stdint.h>

#include "common/status.h"
#include "common/tensor.h"
#include "io/delta.h"

/* A timm ViT tensor table for "tiny" (D 192), "small" (D 384) or "vitb"
 * (D 768), depth 12, 224 px, patch 16, 1000 classes, in block order.
 * SOTU_ERR_USAGE for another name; free tab->t. */
sotu_status sotu_bench_vit_table(const char *model, sotu_tensor_table *tab);

/* θ0 ~ N(0, 0.02) and θt = θ0 + δ with δ ~ N(0, s_j), s_j a per-tensor
 * scale between 2e-5 and 2e-3 drawn from the seed (fine-tuning deltas are
 * small and their scale differs by tensor). Both blocks malloc'ed. */
sotu_status sotu_bench_synthetic_weights(const sotu_tensor_table *tab, uint64_t seed,
                                         float **theta0, float **thetat);

/* Cuts a decoded delta's SEEDED tensors to keep (<= its own) in place: the
 * values a run at that keep would have shipped (masks are nested). */
void sotu_bench_cut_to_keep(sotu_delta *d, double keep);

#endif
