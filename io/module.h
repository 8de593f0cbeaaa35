/* The task-module format (`.clrm` files and the MPI message), version 2:
 * a small set of dense float tensors a worker trained for one task (CLR:
 * its depthwise layers, BatchNorm affine parameters and running statistics,
 * and fc), shipped whole. Unlike a delta (io/delta.h) nothing is masked, so
 * the values of every tensor travel together in ONE zstd frame.
 *
 * All integers little-endian, offsets in bytes:
 *
 *   0   8   magic       'S' 'O' 'T' 'U' 'M' 0x00 0x0D 0x0A
 *   8   4   u32         format version (2)
 *   12  4   u32         task index (position in the run's manifest)
 *   16  4   u32         kind: what the tensors are, the caller's enum
 *                       (CLR: 1 = clr, 2 = clr-full; worker/clr_task.h)
 *   20  4   u32         tensor count n, 1 <= n <= SOTU_MODULE_TENSORS_MAX
 *   24  8   i64         counter: a number the module carries besides its
 *                       tensors (CLR: BatchNorm num_batches_tracked), >= 0
 *   32  8   u64         value count V = sum of the tensors' element counts
 *   40  8   u64         payload bytes Z
 *   48  2   u16         task name length Ln, 1 <= Ln < SOTU_MODULE_TASK_NAME_MAX
 *   50  Ln              task name (bytes, no NUL)
 *   50+Ln               provenance block (io/provenance.h), 34 bytes and up:
 *       8   u64         θ0 fingerprint (XXH64 of the backbone's parameters
 *                       then its BatchNorm running statistics)
 *       8   u64         task file checksum (XXH64 of its bytes)
 *       8   u64         XXH64 of the training configuration text below
 *       2   u16 + Lc    the training configuration, "key: value\n" lines
 *       2   u16 + Lp    model.pretrained as the run named it
 *       1   u8  + Lv    sotu version
 *       1   u8  + Lg    sotu git commit
 *   then n records, each
 *       2   u16         name length L, 1 <= L < SOTU_TENSOR_NAME_MAX
 *       L               tensor name (no NUL)
 *       1   u8          ndim, 1 <= ndim <= SOTU_TENSOR_NDIM_MAX
 *       8*ndim u64      shape, each >= 1
 *   4   u32             crc32 (zlib) of every byte before it (header and
 *                       records; the payload has zstd's own checksum)
 *   Z                   payload: one zstd frame with its content size (4V)
 *                       and content checksum; the content is the V values
 *                       as f32, tensor after tensor in record order
 *   nothing may follow the payload.
 *
 * Version 1 (no provenance block) is refused by name; a resumed run
 * retrains its tasks. The provenance is under the header checksum and is
 * compared with the run's (sotu_provenance_compare) before a stored module
 * is kept.
 *
 * The decoder checks all of it against the layout the coordinator expects
 * for the task (names, order and shapes), plus finite values, so a module
 * that decodes can be loaded into the model without further checks.
 */
#ifndef SOTU_IO_MODULE_H
#define SOTU_IO_MODULE_H

#include <stddef.h>
#include <stdint.h>

#include <zstd.h>

#include "common/status.h"
#include "common/tensor.h"
#include "io/provenance.h"

#define SOTU_MODULE_VERSION 2u
#define SOTU_MODULE_MAGIC "SOTUM\0\r\n"
#define SOTU_MODULE_MAGIC_LEN 8
#define SOTU_MODULE_TASK_NAME_MAX 64
#define SOTU_MODULE_TENSORS_MAX 4096

typedef struct {
    uint32_t task_index;
    char task_name[SOTU_MODULE_TASK_NAME_MAX];
    uint32_t kind;
    int64_t counter;
    size_t count;     /* values: the layout's total */
    float *values;    /* [count] in layout order (a module layout is packed: no gaps) */
    sotu_provenance prov; /* what trained it */
} sotu_module;

/* Largest encoding of module m (its task name and provenance) over layout. */
size_t sotu_module_encode_bound(const sotu_tensor_table *layout, const sotu_module *m);

/* Encodes m's values laid out by layout (tensor offsets into m->values) into
 * dst[0, cap); *written gets the size. cctx is the caller's, reused.
 * SOTU_ERR_DATA if a name or count breaks the format's limits,
 * SOTU_ERR_NOMEM if cap is too small, SOTU_ERR_INTERNAL naming a zstd
 * error. */
sotu_status sotu_module_encode(void *dst, size_t cap, size_t *written, const sotu_module *m,
                               const sotu_tensor_table *layout, ZSTD_CCtx *cctx, int zstd_level);

/* Decodes and verifies src[0, n) against the expected layout: the same
 * tensor names in the same order with the same shapes, checksums, sizes,
 * finite values. out->values is malloc'ed (laid out by layout; free with
 * sotu_module_free); out is zeroed on failure. SOTU_ERR_DATA, the message
 * starting with `what` (a path, or "module of task t03 from rank 2") and
 * naming the field or tensor; SOTU_ERR_NOMEM. */
sotu_status sotu_module_decode(const void *src, size_t n, const sotu_tensor_table *layout,
                               sotu_module *out, ZSTD_DCtx *dctx, const char *what);

/* Parses the header and records of src[0, n) without an expected layout
 * (sotu inspect): out gets the header fields (values NULL, count the total),
 * layout the tensors as recorded (layout->t malloc'ed and packed; free it),
 * *payload_bytes the payload's size. The header checksum and the sizes are
 * checked; the payload is not decompressed (sotu_module_decode against the
 * returned layout does that). SOTU_ERR_DATA naming the field; on failure
 * out and layout are zeroed. */
sotu_status sotu_module_read_head(const void *src, size_t n, sotu_module *out,
                                  sotu_tensor_table *layout, size_t *payload_bytes,
                                  const char *what);

void sotu_module_free(sotu_module *m); /* accepts NULL and zeroed structs */

#endif
