/* The sparse delta format (`.sotud` files and the MPI message), version 5.
 *
 * A delta is what one task's fine-tuning changed, δ = θt − θ0, cut down to the
 * elements of a mask. All integers are little-endian, all offsets in bytes;
 * "varint" is unsigned LEB128 (at most 10 bytes).
 *
 *   header
 *     0   8   magic      'S' 'O' 'T' 'U' 'D' 0x00 0x0D 0x0A  (CR LF catch
 *                        text-mode transfers, the NUL catches C-string copies)
 *     8   4   u32        format version (5)
 *     12  4   u32        flags: bit 0 = rescale requested (DARE, 1/keep at
 *                        merge time); other bits must be zero
 *     16  4   u32        task index (position in the run's manifest)
 *     20  4   u32        value dtype: 0 = f32, 1 = bf16
 *     24  8   u64        seed of the mask
 *     32  8   f64        keep: the keep the SEEDED values were cut at, in (0, 1]
 *     40  4   u32        tensor count, <= SOTU_DELTA_TENSORS_MAX
 *     44  4   u32        H: where the checksum sits (the header, the records
 *                        and the index lists are bytes [0, H))
 *     48  2   u16        task name length Ln, 1 <= Ln < SOTU_DELTA_TASK_NAME_MAX
 *     50  Ln             task name (bytes, no NUL)
 *     50+Ln              provenance block (io/provenance.h), 34 bytes and up:
 *       8  u64           θ0 fingerprint (XXH64 of the pretrained parameters)
 *       8  u64           task file checksum (XXH64 of its bytes)
 *       8  u64           XXH64 of the training configuration text below
 *       2  u16 + Lc      the training configuration, "key: value\n" lines
 *       2  u16 + Lp      model.pretrained as the run named it
 *       1  u8  + Lv      sotu version
 *       1  u8  + Lg      sotu git commit
 *   then tensor count records, in ascending table index, each
 *     1   u8             shared: leading bytes of the name equal to the
 *                        previous record's name (0 in the first record)
 *     1   u8             s: bytes of the name after those
 *     s                  the rest of the name (timm name; shared + s is
 *                        1..SOTU_TENSOR_NAME_MAX-1, no NUL)
 *     varint             table index j: the tensor's index in the model's
 *                        tensor table (the j of the mask)
 *     1   u8             ndim, 1 <= ndim <= SOTU_TENSOR_NDIM_MAX
 *     1   u8             mask kind: 0 SEEDED, 1 DENSE, 2 INDEXED
 *     varint × ndim      shape; n = product (SEEDED and INDEXED: n <= 2^32)
 *     varint             kept count k <= n (DENSE: k = n)
 *     varint             index bytes B (INDEXED with k > 0: > 0; others 0)
 *   then the index lists of the INDEXED tensors, in record order: each the
 *     k kept indices as varints of gaps g0 = i0, g_m = i_m − i_{m−1} − 1
 *     (indices strictly increasing, < n), B bytes
 *   H 4   u32            crc32 (zlib) of bytes [0, H)
 *   H+4 to the end       one zstd frame with content size and content
 *                        checksum (XXH64, which guards the values), whose
 *                        content is every record's k values in record order
 *                        and element order (f32, or bf16 = the top half of
 *                        the f32 bits rounded to nearest even), each value's
 *                        bits rotated left by one (f32 u -> u << 1 | u >> 31,
 *                        bf16 b -> b << 1 | b >> 15: the sign moves to bit 0
 *                        and the 8 exponent bits fill the top byte), then
 *                        byte-shuffled over the whole delta: byte 0 of every
 *                        value, then byte 1 of every value, ... The exponent
 *                        plane compresses to about its entropy (2-3 bits a
 *                        value on fine-tuning deltas); sign and mantissa
 *                        planes are near-random. The encoder ends a zstd
 *                        block after each plane (each plane gets literal
 *                        statistics of its own); any block layout decodes.
 *   nothing may follow the frame.
 *
 * Why one frame and front-coded names: with a frame and fixed-width fields
 * per tensor (version 2) a small model at small keep paid ~0.5 byte per
 * value in framing (80 records of ~84 bytes and 80 frames for 12.9 k values
 * of the tiny ViT at keep 1/53); versions 3 and 4 pay one set of plane
 * tables and ~20 bytes a record.
 *
 * Mask kinds. SEEDED: element i is kept iff its mask value
 *   u(seed, task index, j, i) < keep   (common/mask.h)
 * so indices never travel; the decoder lists the mask (one pass over its
 * 64-element blocks, not a hash per element) and checks k against it. DENSE: every element (per-task
 * heads travel this way). INDEXED: an explicit index list, for masks no seed
 * generates (e.g. top-k magnitude).
 *
 * Versions 1 to 4 are refused with a message that names them: 1 to 3 have
 * masks that are not this version's (1 and 2: per-tensor frames and a
 * 24-bit hash mask; 3: the same layout as 4 with one permutation over the
 * whole tensor instead of one per 64-element block, common/mask.h); 4 has
 * this version's masks and values but no provenance block, so nothing
 * says which θ0, settings and task file it was trained with. A resumed run
 * retrains such tasks (the run logs why).
 *
 * The provenance is under the header checksum: `sotu train --resume` and
 * `sotu merge` compare it with the run's (io/provenance.h,
 * sotu_provenance_compare) before a stored delta is kept.
 *
 * Values are stored raw (δ itself, never multiplied by 1/keep): the rescale
 * flag is applied at merge time with the keep actually used, so a smaller
 * keep taken from the nested masks (a keep sweep without retraining) is
 * rescaled by its own 1/keep, not by the shipped one.
 */
#ifndef SOTU_IO_DELTA_H
#define SOTU_IO_DELTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zstd.h>

#include "common/status.h"
#include "common/tensor.h"
#include "io/provenance.h"

#define SOTU_DELTA_VERSION 5u
#define SOTU_DELTA_MAGIC "SOTUD\0\r\n"
#define SOTU_DELTA_MAGIC_LEN 8
#define SOTU_DELTA_TASK_NAME_MAX 64
#define SOTU_DELTA_TENSORS_MAX 65536
/* Largest tensor a decoder accepts without a model table (2^40 elements). */
#define SOTU_DELTA_COUNT_MAX ((uint64_t)1 << 40)
/* Largest SEEDED or INDEXED tensor: kept indices are 32-bit in memory. */
#define SOTU_DELTA_SPARSE_COUNT_MAX ((uint64_t)1 << 32)
/* The zstd level sotu writes deltas at. The encoder Huffman-codes literals
 * at every level (io/delta.c), so a very negative level, which all but
 * skips the search for matches (the mantissa planes have none), keeps the
 * exponent plane's compression at several times the speed of level 1. */
#define SOTU_DELTA_ZSTD_LEVEL (-1000)

enum {
    SOTU_DELTA_FLAG_RESCALE = 1u,
};

typedef enum {
    SOTU_DELTA_F32 = 0,
    SOTU_DELTA_BF16 = 1,
} sotu_delta_dtype;

typedef enum {
    SOTU_MASK_SEEDED = 0,
    SOTU_MASK_DENSE = 1,
    SOTU_MASK_INDEXED = 2,
} sotu_mask_kind;

typedef struct {
    char name[SOTU_TENSOR_NAME_MAX];
    uint32_t table_index;       /* j: index in the model's tensor table */
    int ndim;
    int64_t shape[SOTU_TENSOR_NDIM_MAX];
    uint64_t count;             /* n, product of shape */
    sotu_mask_kind mask;
    uint64_t kept;              /* k values below */
    float *values;              /* [k] raw δ of the kept elements, element order */
    /* [k] ascending element indices of the kept values: read from the file
     * for INDEXED; for SEEDED filled from the regenerated mask by the decoder
     * and by sotu_delta_extract (the encoder ignores them); NULL for DENSE.
     * 32-bit: SEEDED and INDEXED tensors have at most 2^32 elements. */
    uint32_t *indices;
} sotu_delta_tensor;

typedef struct {
    uint32_t task_index;
    char task_name[SOTU_DELTA_TASK_NAME_MAX];
    uint64_t seed;
    double keep;                /* (0, 1]: SEEDED values were cut at this keep */
    uint32_t flags;             /* SOTU_DELTA_FLAG_* */
    sotu_delta_dtype dtype;     /* how values travel; in memory always f32 */
    int n_tensors;
    sotu_delta_tensor *tensors; /* [n_tensors], ascending table_index */
    sotu_provenance prov;       /* what trained it (checked by the encoder, read by decode) */
    uint32_t version;           /* after decode: the input's format version; the
                                 * encoder always writes SOTU_DELTA_VERSION */
    uint64_t encoded_bytes;     /* after decode: the size of the input */
} sotu_delta;

/* Encoded size can never exceed this (zstd's ZSTD_compressBound of the
 * values plus headers and worst-case varints). */
size_t sotu_delta_encode_bound(const sotu_delta *d);

/* Encodes d into dst[0, cap); *written gets the size. cctx is the caller's
 * (one per rank, reused); zstd_level as zstd's (SOTU_DELTA_ZSTD_LEVEL).
 * Fails with SOTU_ERR_DATA if d breaks the format's limits (names, keep,
 * kept > count, INDEXED indices not increasing), SOTU_ERR_NOMEM if cap is
 * too small, SOTU_ERR_INTERNAL naming a zstd error. */
sotu_status sotu_delta_encode(void *dst, size_t cap, size_t *written, const sotu_delta *d,
                              ZSTD_CCtx *cctx, int zstd_level);

/* Decodes and verifies src[0, n) into *out (freed with sotu_delta_free; left
 * zeroed on failure). With model non-NULL every tensor must be in the table
 * at its table index with the same shape. Lists every SEEDED mask (the
 * tensors on the OpenMP threads, the same indices at any thread count) and
 * checks the kept count. Fails with SOTU_ERR_DATA, the message starting with
 * `what` (a path, or "message from rank 3") and naming the tensor and the
 * problem; SOTU_ERR_NOMEM if the values do not fit in memory. */
sotu_status sotu_delta_decode(const void *src, size_t n, const sotu_tensor_table *model,
                              sotu_delta *out, ZSTD_DCtx *dctx, const char *what);

/* Encodes d and writes it to path atomically (io/fsutil.h). */
sotu_status sotu_delta_write_file(const char *path, const sotu_delta *d, int zstd_level);

/* Reads and decodes path (what = path). */
sotu_status sotu_delta_read_file(const char *path, const sotu_tensor_table *model,
                                 sotu_delta *out);

void sotu_delta_free(sotu_delta *d); /* accepts NULL and zeroed structs */

/* bf16 bits of x, rounded to nearest even (NaN stays NaN); and back. */
uint16_t sotu_bf16_from_f32(float x);
float sotu_bf16_to_f32(uint16_t b);

#endif
