/* safetensors weight files (Hugging Face's format, as timm writes them):
 * reading F32/F16/BF16 tensors as float32, single files and sharded sets,
 * and writing float32 files.
 *
 * Byte layout (integers little-endian):
 *
 *   offset 0      u64 N: length of the header in bytes
 *   offset 8      N bytes of UTF-8 JSON, one object, possibly padded at the
 *                 end with spaces (writers pad to a multiple of 8):
 *                   { "__metadata__": {"key": "string value", ...},   optional
 *                     "<tensor name>": { "dtype": "F32",
 *                                        "shape": [d0, d1, ...],      [] is a scalar
 *                                        "data_offsets": [begin, end] }, ... }
 *   offset 8+N    the data buffer, to the end of the file; tensor bytes are
 *                 row-major, little-endian, at [begin, end) of the buffer
 *
 * dtypes: BOOL U8 I8 F8_E5M2 F8_E4M3 I16 U16 F16 BF16 I32 U32 F32 F64 I64
 * U64 are known; F32, F16 and BF16 convert to float32.
 *
 * The reader rejects with SOTU_ERR_DATA, naming the file and the problem:
 * a file shorter than 8 bytes; a header length beyond the file or above
 * SOTU_SAFETENSORS_HEADER_MAX; invalid JSON or a header that is not an
 * object; a duplicate name; an entry without dtype, shape or data_offsets
 * (or with other keys); an unknown dtype; a negative dimension or a shape
 * whose byte size overflows 64 bits; data_offsets with begin > end, end
 * beyond the buffer, or a length other than shape x dtype size; tensors
 * that overlap, leave a gap, or do not cover the data buffer exactly.
 * __metadata__ must map strings to strings.
 *
 * Sharded sets: "<name>.safetensors.index.json" holds
 *   { "metadata": {...}, "weight_map": {"<tensor>": "<shard file>", ...} }
 * with shard files relative to the index's directory. Each shard is checked
 * as above; every tensor of a shard must be listed in weight_map for that
 * shard and every weight_map entry must be present in its shard. The
 * __metadata__ of the shards is merged (a key given twice with different
 * values is an error).
 */
#ifndef SOTU_IO_SAFETENSORS_H
#define SOTU_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/status.h"
#include "common/tensor.h"

#define SOTU_SAFETENSORS_HEADER_MAX 100000000u /* as the reference implementation */
#define SOTU_SAFETENSORS_NDIM_MAX 8

typedef struct {
    char *name;              /* malloc'ed */
    char dtype[12];          /* "F32", "BF16", ... */
    int elem_size;           /* bytes per element of dtype */
    int ndim;
    int64_t shape[SOTU_SAFETENSORS_NDIM_MAX];
    uint64_t count;          /* product of shape (1 for a scalar) */
    uint64_t begin, end;     /* byte range in the shard's data buffer */
    int shard;               /* index into sotu_safetensors.shards */
} sotu_safetensors_tensor;

typedef struct {
    char path[SOTU_PATH_MAX];
    uint64_t data_start;     /* 8 + header length */
    uint64_t data_size;      /* bytes of the data buffer */
} sotu_safetensors_shard;

typedef struct {
    char path[SOTU_PATH_MAX];           /* as opened (file or index) */
    int n_tensors;
    sotu_safetensors_tensor *tensors;   /* [n_tensors], by shard then offset */
    int n_meta;
    char **meta_keys, **meta_values;    /* [n_meta] each, malloc'ed */
    int n_shards;
    sotu_safetensors_shard *shards;     /* [n_shards] */
} sotu_safetensors;

/* Opens a .safetensors file, or a sharded set when path ends in ".json",
 * reading and validating the header(s) only. SOTU_ERR_IO if a file cannot
 * be read, SOTU_ERR_DATA for any malformed input listed above. On failure
 * st is freed and zeroed. */
sotu_status sotu_safetensors_open(const char *path, sotu_safetensors *st);

/* Index of the tensor called name, or -1. */
int sotu_safetensors_find(const sotu_safetensors *st, const char *name);

/* The __metadata__ value of key, or NULL. */
const char *sotu_safetensors_meta(const sotu_safetensors *st, const char *key);

/* Reads tensor i converted to float32 into dst [count]. A dtype other than
 * F32/F16/BF16 is SOTU_ERR_DATA naming the tensor; a short read SOTU_ERR_IO. */
sotu_status sotu_safetensors_read_f32(const sotu_safetensors *st, int i, float *dst);

void sotu_safetensors_free(sotu_safetensors *st); /* accepts NULL and zeroed */

/* Writes the tensors of tab from params as F32 in table order, with
 * __metadata__ from n_meta key/value string pairs (meta[2k], meta[2k+1];
 * may be 0), atomically (io/fsutil.h). The header is padded with spaces
 * to a multiple of 8 bytes. SOTU_ERR_IO naming path on failure. */
sotu_status sotu_safetensors_write(const char *path, const sotu_tensor_table *tab,
                                   const float *params, const char *const *meta, int n_meta);

/* An IEEE half bit pattern to float (exact; bfloat16 is io/delta.h's
 * sotu_bf16_to_f32). */
float sotu_f16_to_f32(uint16_t h);

#endif
