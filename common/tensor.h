/* Flat parameter blocks and their tables.
 *
 * Parameters, gradients and optimizer moments each live in one contiguous
 * float block; a table of (name, shape, offset) says where each tensor sits,
 * so delta extraction, masking, MPI, zstd and HDF5 all work on flat ranges.
 * Names are timm's (DESIGN.md), shapes row-major, linear weights [out, in].
 */
#ifndef SOTU_COMMON_TENSOR_H
#define SOTU_COMMON_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define SOTU_TENSOR_NAME_MAX 96
#define SOTU_TENSOR_NDIM_MAX 4

typedef struct {
    char name[SOTU_TENSOR_NAME_MAX];
    int ndim;
    int64_t shape[SOTU_TENSOR_NDIM_MAX];
    size_t offset; /* in elements, into the block */
    size_t count;  /* product of shape */
} sotu_tensor_info;

typedef struct {
    int n;
    sotu_tensor_info *t; /* [n], in block order */
    size_t total;        /* elements in the block */
} sotu_tensor_table;

/* Appends a tensor of the given shape at the end of tab's block: tab->t must
 * have room for one more entry; offset = the old total. */
void sotu_tensor_table_add(sotu_tensor_table *tab, const char *name, int ndim,
                           const int64_t *shape);

/* sotu_tensor_table_add with the shape written inline:
 * SOTU_TENSOR_ADD(tab, "pos_embed", 1, T, D). */
#define SOTU_TENSOR_ADD(tab, name, ...)                                                 \
    do {                                                                                \
        int64_t shape_[] = {__VA_ARGS__};                                               \
        sotu_tensor_table_add(tab, name, (int)(sizeof shape_ / sizeof shape_[0]), shape_); \
    } while (0)

/* Index of the tensor called name, or -1. */
int sotu_tensor_find(const sotu_tensor_table *tab, const char *name);

/* A keyword of a train.tune spec: the '|'-separated globs it stands for, or,
 * when refusal is set, a word the model cannot honour (the message says why). */
typedef struct {
    const char *word;
    const char *globs;
    const char *refusal;
} sotu_tune_word;

/* Sets mark[tab->n] from a train.tune spec: comma-separated items, each a
 * keyword of words[0, n_words) or an fnmatch glob over tensor names. An item
 * that matches nothing, a refused keyword or an empty spec is
 * SOTU_ERR_CONFIG; the message lists `keywords` and names the model's tensor
 * naming (`names`, e.g. "timm names such as blocks.*.attn.*"). mark is only
 * written on success. */
sotu_status sotu_tensor_select(const sotu_tensor_table *tab, const char *spec,
                               const sotu_tune_word *words, int n_words, const char *keywords,
                               const char *names, bool *mark);

/* Architecture of a timm-style ViT; stored as attributes beside weights. */
typedef struct {
    int image_size; /* square input, pixels */
    int channels;   /* C */
    int patch;      /* P; N = (image_size / P)^2 patches */
    int dim;        /* D */
    int depth;      /* L blocks */
    int heads;      /* H; head dim hd = D / H */
    int mlp_hidden; /* F, usually 4D */
    int classes;    /* K of the head */
} sotu_vit_config;

#endif
