/* Flat parameter blocks and their tables.
 *
 * Parameters, gradients and optimizer moments each live in one contiguous
 * float block; a table of (name, shape, offset) says where each tensor sits,
 * so delta extraction, masking, MPI, zstd and HDF5 all work on flat ranges.
 * Names are timm's (DESIGN.md), shapes row-major, linear weights [out, in].
 */
#ifndef SOTU_COMMON_TENSOR_H
#define SOTU_COMMON_TENSOR_H

#include <stddef.h>
#include <stdint.h>

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

/* Index of the tensor called name, or -1. */
int sotu_tensor_find(const sotu_tensor_table *tab, const char *name);

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
