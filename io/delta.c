/* For ZSTD_c_literalCompressionMode only (force_literal_compression). */
#define ZSTD_STATIC_LINKING_ONLY
#include "io/delta.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd_errors.h>

#include "common/isa.h"
#include "common/mask.h"
#include "io/bytes.h"
#include "io/fsutil.h"

enum {
    FIXED_HEADER = 50, /* through the task name length */
    PLANE_FLUSH_MIN = 256, /* values; fewer go in one zstd block */
};

/* ---------------------------------------------------------------- values */

uint16_t sotu_bf16_from_f32(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float sotu_bf16_to_f32(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static size_t dtype_size(sotu_delta_dtype t) { return t == SOTU_DELTA_BF16 ? 2 : 4; }

/* The value bits as they travel: rotated left by one bit, so the sign
 * sits in bit 0 beside the mantissa and the exponent fills the top byte
 * (one byte plane of its own after shuffling). */
static inline uint32_t rotl32(uint32_t u) { return u << 1 | u >> 31; }
static inline uint32_t rotr32(uint32_t u) { return u >> 1 | u << 31; }
static inline uint16_t rotl16(uint16_t u) { return (uint16_t)(u << 1 | u >> 15); }

/* Byte b of the k values v, rotated, goes to dst[b * stride + i]: one
 * tensor's share of the planes of the whole delta (stride = all values).
 * The loops are written per dtype, without branches inside, so they
 * vectorise; each is compiled for every ISA level (common/isa.h) and
 * called through SOTU_ISA_PICK, never inlined into the encoder or decoder
 * (there GCC 12 loses restrict and leaves these loops scalar). */
SOTU_ISA_INLINE void shuffle_values(uint8_t *restrict dst, const float *restrict v, uint64_t k,
                                    uint64_t stride, sotu_delta_dtype t)
{
    uint8_t *restrict d0 = dst, *restrict d1 = dst + stride, *restrict d2 = dst + 2 * stride,
                      *restrict d3 = dst + 3 * stride;
    if (t == SOTU_DELTA_BF16) {
        for (uint64_t i = 0; i < k; i++) {
            uint16_t b = rotl16(sotu_bf16_from_f32(v[i]));
            d0[i] = (uint8_t)b;
            d1[i] = (uint8_t)(b >> 8);
        }
        return;
    }
    for (uint64_t i = 0; i < k; i++) {
        uint32_t x;
        memcpy(&x, &v[i], 4);
        x = rotl32(x);
        d0[i] = (uint8_t)x, d1[i] = (uint8_t)(x >> 8);
        d2[i] = (uint8_t)(x >> 16), d3[i] = (uint8_t)(x >> 24);
    }
}
SOTU_ISA_VARIANTS(shuffle_values,
                  (uint8_t *restrict dst, const float *restrict v, uint64_t k, uint64_t stride,
                   sotu_delta_dtype t),
                  (dst, v, k, stride, t));

SOTU_ISA_INLINE void unshuffle_values(float *restrict v, const uint8_t *restrict src,
                                      uint64_t k, uint64_t stride, sotu_delta_dtype t)
{
    const uint8_t *restrict s0 = src, *restrict s1 = src + stride, *restrict s2 = src + 2 * stride,
                            *restrict s3 = src + 3 * stride;
    if (t == SOTU_DELTA_BF16) {
        for (uint64_t i = 0; i < k; i++) {
            uint32_t b = (uint32_t)s0[i] | (uint32_t)s1[i] << 8;
            b = ((b >> 1 | b << 15) & 0xffffu) << 16; /* rotate back, bf16 to f32 */
            memcpy(&v[i], &b, 4);
        }
        return;
    }
    for (uint64_t i = 0; i < k; i++) {
        uint32_t x = rotr32((uint32_t)s0[i] | (uint32_t)s1[i] << 8 | (uint32_t)s2[i] << 16 |
                            (uint32_t)s3[i] << 24);
        memcpy(&v[i], &x, 4);
    }
}
SOTU_ISA_VARIANTS(unshuffle_values,
                  (float *restrict v, const uint8_t *restrict src, uint64_t k, uint64_t stride,
                   sotu_delta_dtype t),
                  (v, src, k, stride, t));

/* ------------------------------------------------------------- writing */

static size_t varint_put(uint8_t *p, uint64_t x)
{
    size_t n = 0;
    while (x >= 0x80) {
        p[n++] = (uint8_t)(x | 0x80);
        x >>= 7;
    }
    p[n++] = (uint8_t)x;
    return n;
}

/* Bytes of the records and index lists: fixed fields plus worst-case varints. */
static size_t record_bound(const sotu_delta_tensor *t)
{
    size_t n = 2 + strlen(t->name) + 10 + 2 + 10 * (size_t)t->ndim + 10 + 10;
    if (t->mask == SOTU_MASK_INDEXED)
        n += 10 * (size_t)t->kept;
    return n;
}

static uint64_t total_kept(const sotu_delta *d)
{
    uint64_t k = 0;
    for (int i = 0; i < d->n_tensors; i++)
        k += d->tensors[i].kept;
    return k;
}

size_t sotu_delta_encode_bound(const sotu_delta *d)
{
    size_t n = FIXED_HEADER + strlen(d->task_name) + sotu_provenance_size(&d->prov) + 4;
    for (int i = 0; i < d->n_tensors; i++)
        n += record_bound(&d->tensors[i]);
    /* + the block headers of the per-plane flushes (compress_planes) */
    return n + ZSTD_compressBound((size_t)total_kept(d) * dtype_size(d->dtype)) + 64;
}

static sotu_status check_for_encode(const sotu_delta *d)
{
    size_t ln = strlen(d->task_name);
    if (ln == 0 || ln >= SOTU_DELTA_TASK_NAME_MAX)
        return sotu_error(SOTU_ERR_DATA, "delta encode: task name '%s': length %zu, expected 1..%d",
                          d->task_name, ln, SOTU_DELTA_TASK_NAME_MAX - 1);
    if (!(d->keep > 0.0 && d->keep <= 1.0))
        return sotu_error(SOTU_ERR_DATA, "delta encode: task '%s': keep %g, expected (0, 1]",
                          d->task_name, d->keep);
    if (d->dtype != SOTU_DELTA_F32 && d->dtype != SOTU_DELTA_BF16)
        return sotu_error(SOTU_ERR_DATA, "delta encode: task '%s': dtype %d, expected f32 or bf16",
                          d->task_name, (int)d->dtype);
    if (d->flags & ~(uint32_t)SOTU_DELTA_FLAG_RESCALE)
        return sotu_error(SOTU_ERR_DATA, "delta encode: task '%s': unknown flags 0x%x",
                          d->task_name, d->flags);
    if (d->n_tensors < 0 || d->n_tensors > SOTU_DELTA_TENSORS_MAX)
        return sotu_error(SOTU_ERR_DATA, "delta encode: task '%s': %d tensors, expected <= %d",
                          d->task_name, d->n_tensors, SOTU_DELTA_TENSORS_MAX);
    char what[SOTU_DELTA_TASK_NAME_MAX + 32];
    snprintf(what, sizeof what, "delta encode: task '%s'", d->task_name);
    sotu_status ps = sotu_provenance_check(&d->prov, what);
    if (ps != SOTU_OK)
        return ps;
    for (int i = 0; i < d->n_tensors; i++) {
        const sotu_delta_tensor *t = &d->tensors[i];
        size_t l = strlen(t->name);
        uint64_t prod = 1;
        for (int a = 0; a < t->ndim && a < SOTU_TENSOR_NDIM_MAX; a++)
            prod *= (uint64_t)t->shape[a];
        if (l == 0 || l >= SOTU_TENSOR_NAME_MAX || t->ndim < 1 || t->ndim > SOTU_TENSOR_NDIM_MAX ||
            prod != t->count || t->kept > t->count ||
            (t->mask == SOTU_MASK_DENSE && t->kept != t->count) ||
            (t->mask == SOTU_MASK_INDEXED && t->kept && !t->indices) ||
            (t->kept && !t->values) || (unsigned)t->mask > SOTU_MASK_INDEXED ||
            (t->mask != SOTU_MASK_DENSE && t->count > SOTU_DELTA_SPARSE_COUNT_MAX))
            return sotu_error(SOTU_ERR_DATA,
                              "delta encode: task '%s': tensor '%s': inconsistent record (ndim %d, "
                              "count %llu, kept %llu, mask %d)",
                              d->task_name, t->name, t->ndim, (unsigned long long)t->count,
                              (unsigned long long)t->kept, (int)t->mask);
        if (i > 0 && t->table_index <= d->tensors[i - 1].table_index)
            return sotu_error(SOTU_ERR_DATA,
                              "delta encode: task '%s': tensor '%s': table index %u not above the "
                              "previous %u",
                              d->task_name, t->name, t->table_index, d->tensors[i - 1].table_index);
        if (t->mask == SOTU_MASK_INDEXED)
            for (uint64_t m = 0; m < t->kept; m++)
                if (t->indices[m] >= t->count || (m > 0 && t->indices[m] <= t->indices[m - 1]))
                    return sotu_error(SOTU_ERR_DATA,
                                      "delta encode: task '%s': tensor '%s': index %llu at %llu is "
                                      "not increasing below %llu",
                                      d->task_name, t->name, (unsigned long long)t->indices[m],
                                      (unsigned long long)m, (unsigned long long)t->count);
    }
    return SOTU_OK;
}

/* Huffman-codes literals at every level. zstd's negative levels skip it
 * (they aim at speed), but the values are nearly all literals: the search
 * for matches finds none worth having in the mantissa planes, and the
 * Huffman stage is what compresses the exponent plane. So sotu's level
 * (SOTU_DELTA_ZSTD_LEVEL, very negative) barely searches and still codes
 * literals: 3.18 bytes per f32 value at ~800 MB/s against 3.23 at ~300 MB/s
 * for level 1 (real fmnist deltas). The switch is zstd's experimental
 * ZSTD_c_literalCompressionMode, set only when the library at run time is
 * the minor version sotu was compiled against; otherwise, or if zstd
 * refuses, frames are still valid, only larger at negative levels. */
static void force_literal_compression(ZSTD_CCtx *cctx)
{
    if (ZSTD_versionNumber() / 100 != ZSTD_VERSION_NUMBER / 100)
        return;
    (void)ZSTD_CCtx_setParameter(cctx, ZSTD_c_literalCompressionMode, ZSTD_ps_enable);
}

/* One zstd frame (content size and checksum) of the k shuffled values src
 * of vs bytes each, into dst[0, cap); returns its size or a zstd error
 * code. Each byte plane ends with a flush, which closes the zstd block, so
 * every plane gets its own literal (Huffman) statistics: in one block the
 * low-entropy exponent plane would share a table with the near-random
 * mantissa planes (3.59 against 3.32 bytes per f32 value on real deltas).
 * The decoder reads any block layout; tiny tensors skip the flushes, whose
 * block headers would cost more than they save. */
static size_t compress_planes(ZSTD_CCtx *cctx, uint8_t *dst, size_t cap, const uint8_t *src,
                              uint64_t k, size_t vs)
{
    size_t total = (size_t)k * vs, plane = k >= PLANE_FLUSH_MIN ? (size_t)k : total;
    size_t r = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setPledgedSrcSize(cctx, total);
    if (ZSTD_isError(r))
        return r;
    ZSTD_outBuffer out = {dst, cap, 0};
    for (size_t off = 0; off < total || off == 0; off += plane) {
        bool last = off + plane >= total;
        ZSTD_inBuffer in = {src + off, last ? total - off : plane, 0};
        do {
            r = ZSTD_compressStream2(cctx, &out, &in, last ? ZSTD_e_end : ZSTD_e_flush);
            if (ZSTD_isError(r))
                return r;
            if (r && out.pos == out.size)
                return (size_t)-ZSTD_error_dstSize_tooSmall;
        } while (r);
        if (last)
            break;
    }
    return out.pos;
}

/* Bytes the name shares with the previous one (at most 255). */
static size_t shared_prefix(const char *prev, const char *name)
{
    size_t k = 0;
    while (k < 255 && prev[k] && prev[k] == name[k])
        k++;
    return k;
}

sotu_status sotu_delta_encode(void *dst, size_t cap, size_t *written, const sotu_delta *d,
                              ZSTD_CCtx *cctx, int zstd_level)
{
    sotu_status s = check_for_encode(d);
    uint8_t *planes = NULL;
    *written = 0;
    if (s != SOTU_OK)
        return s;
    if (cap < sotu_delta_encode_bound(d))
        return sotu_error(SOTU_ERR_NOMEM, "delta encode: task '%s': buffer of %zu bytes, need %zu",
                          d->task_name, cap, sotu_delta_encode_bound(d));
    const size_t vs = dtype_size(d->dtype);
    const uint64_t all = total_kept(d);
    planes = malloc((size_t)all * vs + 1);
    if (!planes) {
        s = sotu_error(SOTU_ERR_NOMEM, "delta encode: task '%s': %zu bytes of scratch",
                       d->task_name, (size_t)all * vs);
        goto cleanup;
    }
    size_t zr = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
    if (!ZSTD_isError(zr))
        zr = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, zstd_level);
    if (!ZSTD_isError(zr))
        zr = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    if (!ZSTD_isError(zr))
        zr = ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
    if (ZSTD_isError(zr)) {
        s = sotu_error(SOTU_ERR_INTERNAL, "delta encode: task '%s': zstd parameters: %s",
                       d->task_name, ZSTD_getErrorName(zr));
        goto cleanup;
    }
    force_literal_compression(cctx);

    uint8_t *p = dst;
    memcpy(p, SOTU_DELTA_MAGIC, SOTU_DELTA_MAGIC_LEN);
    p += SOTU_DELTA_MAGIC_LEN;
    p = sotu_put_le(p, SOTU_DELTA_VERSION, 4);
    p = sotu_put_le(p, d->flags, 4);
    p = sotu_put_le(p, d->task_index, 4);
    p = sotu_put_le(p, (uint32_t)d->dtype, 4);
    p = sotu_put_le(p, d->seed, 8);
    uint64_t keep_bits;
    memcpy(&keep_bits, &d->keep, 8);
    p = sotu_put_le(p, keep_bits, 8);
    p = sotu_put_le(p, (uint32_t)d->n_tensors, 4);
    uint8_t *crc_at_field = p; /* H, filled below */
    p += 4;
    size_t ln = strlen(d->task_name);
    p = sotu_put_le(p, ln, 2);
    memcpy(p, d->task_name, ln);
    p += ln;
    p = sotu_provenance_put(p, &d->prov);

    const char *prev = "";
    uint64_t at = 0; /* the tensor's first value in the planes */
    for (int i = 0; i < d->n_tensors; i++) {
        const sotu_delta_tensor *t = &d->tensors[i];
        size_t l = strlen(t->name), shared = shared_prefix(prev, t->name);
        *p++ = (uint8_t)shared;
        *p++ = (uint8_t)(l - shared);
        memcpy(p, t->name + shared, l - shared);
        p += l - shared;
        prev = t->name;
        p += varint_put(p, t->table_index);
        *p++ = (uint8_t)t->ndim;
        *p++ = (uint8_t)t->mask;
        for (int a = 0; a < t->ndim; a++)
            p += varint_put(p, (uint64_t)t->shape[a]);
        p += varint_put(p, t->kept);
        uint64_t index_bytes = 0, prev_index = 0;
        uint8_t scratch[10];
        if (t->mask == SOTU_MASK_INDEXED)
            for (uint64_t m = 0; m < t->kept; m++) {
                uint64_t gap = m == 0 ? t->indices[0] : t->indices[m] - prev_index - 1;
                index_bytes += varint_put(scratch, gap);
                prev_index = t->indices[m];
            }
        p += varint_put(p, index_bytes);
        SOTU_ISA_PICK(shuffle_values)(planes + at, t->values, t->kept, all, d->dtype);
        at += t->kept;
    }
    for (int i = 0; i < d->n_tensors; i++) {
        const sotu_delta_tensor *t = &d->tensors[i];
        uint64_t prev_index = 0;
        if (t->mask == SOTU_MASK_INDEXED)
            for (uint64_t m = 0; m < t->kept; m++) {
                p += varint_put(p, m == 0 ? t->indices[0] : t->indices[m] - prev_index - 1);
                prev_index = t->indices[m];
            }
    }
    size_t h = (size_t)(p - (uint8_t *)dst);
    if (h > UINT32_MAX) {
        s = sotu_error(SOTU_ERR_DATA, "delta encode: task '%s': %zu bytes of records and index "
                       "lists, at most %u", d->task_name, h, UINT32_MAX);
        goto cleanup;
    }
    sotu_put_le(crc_at_field, (uint32_t)h, 4);
    p = sotu_put_le(p, sotu_crc32(dst, h), 4);
    size_t z = compress_planes(cctx, p, cap - (h + 4), planes, all, vs);
    if (ZSTD_isError(z)) {
        s = sotu_error(SOTU_ERR_INTERNAL, "delta encode: task '%s': zstd: %s", d->task_name,
                       ZSTD_getErrorName(z));
        goto cleanup;
    }
    *written = h + 4 + z;

cleanup:
    free(planes);
    return s;
}

/* ------------------------------------------------------------- reading */

typedef struct {
    const uint8_t *p;
    size_t n, pos;
    const char *what;
} reader;

static sotu_status truncated(const reader *r, const char *field, const char *tensor, size_t need)
{
    return sotu_error(SOTU_ERR_DATA,
                      "%s: truncated at byte %zu reading %s%s%s: need %zu more bytes, %zu left",
                      r->what, r->pos, tensor ? "tensor '" : "", tensor ? tensor : "",
                      tensor ? "' " : "", need, r->n - r->pos);
}

static bool have(const reader *r, size_t k) { return r->n - r->pos >= k; }

static uint64_t get_le(reader *r, int bytes)
{
    uint64_t x = sotu_get_le(r->p + r->pos, bytes);
    r->pos += (size_t)bytes;
    return x;
}

#define READ(r, dst, bytes, field, tensor)                                                         \
    do {                                                                                           \
        if (!have(r, bytes)) {                                                                     \
            s = truncated(r, field, tensor, bytes);                                                \
            goto cleanup;                                                                          \
        }                                                                                          \
        dst = get_le(r, bytes);                                                                    \
    } while (0)

static sotu_status kept_mismatch(const sotu_delta *d, const sotu_delta_tensor *t, uint64_t want,
                                 const char *what)
{
    return sotu_error(SOTU_ERR_DATA,
                      "%s: tensor '%s': kept count %llu, the mask of seed %llu, task %u, keep %g "
                      "keeps %s%llu",
                      what, t->name, (unsigned long long)t->kept, (unsigned long long)d->seed,
                      d->task_index, d->keep, want > t->kept ? "more than " : "",
                      (unsigned long long)(want > t->kept ? t->kept : want));
}

static sotu_status read_indices(reader *r, sotu_delta_tensor *t, uint64_t bytes)
{
    const uint8_t *p = r->p + r->pos, *end = p + bytes;
    uint64_t next = 0;
    for (uint64_t m = 0; m < t->kept; m++) {
        uint64_t gap = 0;
        for (int shift = 0;; shift += 7) {
            if (p == end || shift > 63)
                return sotu_error(SOTU_ERR_DATA,
                                  "%s: tensor '%s': index list of %llu bytes ends inside varint %llu "
                                  "of %llu",
                                  r->what, t->name, (unsigned long long)bytes,
                                  (unsigned long long)m, (unsigned long long)t->kept);
            uint8_t b = *p++;
            gap |= (uint64_t)(b & 0x7f) << shift;
            if (!(b & 0x80))
                break;
        }
        if (gap >= t->count || next > t->count - 1 - gap)
            return sotu_error(SOTU_ERR_DATA,
                              "%s: tensor '%s': kept index %llu runs past the %llu elements",
                              r->what, t->name, (unsigned long long)m,
                              (unsigned long long)t->count);
        t->indices[m] = (uint32_t)(next + gap);
        next = next + gap + 1;
    }
    if (p != end)
        return sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': %td bytes left after %llu indices",
                          r->what, t->name, end - p, (unsigned long long)t->kept);
    return SOTU_OK;
}

/* An unsigned LEB128 varint of at most 10 bytes that fits in 64 bits. */
static bool get_varint(reader *r, uint64_t *x)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (!have(r, 1))
            return false;
        uint8_t b = r->p[r->pos++];
        if (shift == 63 && b > 1)
            return false;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *x = v;
            return true;
        }
    }
    return false;
}

#define READ_VARINT(r, dst, field, tensor)                                                         \
    do {                                                                                           \
        if (!get_varint(r, &(dst))) {                                                              \
            s = sotu_error(SOTU_ERR_DATA, "%s: bad or truncated varint at byte %zu reading %s of "  \
                           "tensor '%s'", (r)->what, (r)->pos, field, tensor);                     \
            goto cleanup;                                                                          \
        }                                                                                          \
    } while (0)

/* Record i (its name front-coded against record i - 1's); *index_bytes
 * gets its index list's size. Checks the record alone and against model. */
static sotu_status read_record(reader *r, sotu_delta *d, int i, const sotu_tensor_table *model,
                               uint64_t *index_bytes)
{
    sotu_status s = SOTU_OK;
    sotu_delta_tensor *t = &d->tensors[i];
    const char *prev = i > 0 ? d->tensors[i - 1].name : "";
    uint64_t shared, rest, x;
    char label[32];
    snprintf(label, sizeof label, "#%d", i);

    READ(r, shared, 1, "tensor name", label);
    READ(r, rest, 1, "tensor name", label);
    if (shared > strlen(prev) || shared + rest == 0 || shared + rest >= SOTU_TENSOR_NAME_MAX) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor %s: name of %llu + %llu bytes (the previous "
                       "name has %zu), expected 1..%d in all", r->what, label,
                       (unsigned long long)shared, (unsigned long long)rest, strlen(prev),
                       SOTU_TENSOR_NAME_MAX - 1);
        goto cleanup;
    }
    if (!have(r, rest)) {
        s = truncated(r, "tensor name", label, rest);
        goto cleanup;
    }
    memcpy(t->name, prev, shared);
    memcpy(t->name + shared, r->p + r->pos, rest);
    t->name[shared + rest] = 0;
    r->pos += rest;
    if (strlen(t->name) != shared + rest) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor %s: name contains a NUL byte", r->what, label);
        goto cleanup;
    }
    READ_VARINT(r, x, "table index", t->name);
    if (x > UINT32_MAX) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': table index %llu", r->what, t->name,
                       (unsigned long long)x);
        goto cleanup;
    }
    t->table_index = (uint32_t)x;
    READ(r, x, 1, "ndim", t->name);
    t->ndim = (int)x;
    READ(r, x, 1, "mask kind", t->name);
    if (x > SOTU_MASK_INDEXED) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': mask kind %llu, expected 0 SEEDED, "
                       "1 DENSE or 2 INDEXED", r->what, t->name, (unsigned long long)x);
        goto cleanup;
    }
    t->mask = (sotu_mask_kind)x;
    if (t->ndim < 1 || t->ndim > SOTU_TENSOR_NDIM_MAX) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': ndim %d, expected 1..%d", r->what, t->name,
                       t->ndim, SOTU_TENSOR_NDIM_MAX);
        goto cleanup;
    }
    uint64_t prod = 1;
    for (int a = 0; a < t->ndim; a++) {
        READ_VARINT(r, x, "shape", t->name);
        if (x == 0 || x > SOTU_DELTA_COUNT_MAX || prod > SOTU_DELTA_COUNT_MAX / x) {
            s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': shape[%d] = %llu, expected 1..%llu "
                           "elements in all", r->what, t->name, a, (unsigned long long)x,
                           (unsigned long long)SOTU_DELTA_COUNT_MAX);
            goto cleanup;
        }
        t->shape[a] = (int64_t)x;
        prod *= x;
    }
    t->count = prod;
    READ_VARINT(r, t->kept, "kept count", t->name);
    READ_VARINT(r, *index_bytes, "index bytes", t->name);
    if (t->mask != SOTU_MASK_DENSE && t->count > SOTU_DELTA_SPARSE_COUNT_MAX) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': %llu elements, a %s tensor has at most "
                       "%llu", r->what, t->name, (unsigned long long)t->count,
                       t->mask == SOTU_MASK_SEEDED ? "SEEDED" : "INDEXED",
                       (unsigned long long)SOTU_DELTA_SPARSE_COUNT_MAX);
        goto cleanup;
    }
    if (model) {
        int j = sotu_tensor_find(model, t->name);
        if (j < 0) {
            s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s' is not in the model", r->what, t->name);
            goto cleanup;
        }
        const sotu_tensor_info *mi = &model->t[j];
        if ((uint32_t)j != t->table_index) {
            s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': table index %u, the model has it at %d",
                           r->what, t->name, t->table_index, j);
            goto cleanup;
        }
        bool same = mi->ndim == t->ndim;
        for (int a = 0; same && a < t->ndim; a++)
            same = mi->shape[a] == t->shape[a];
        if (!same) {
            char want[96] = "", got[96] = "";
            for (int a = 0; a < mi->ndim; a++)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", a ? "," : "",
                         (long long)mi->shape[a]);
            for (int a = 0; a < t->ndim; a++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", a ? "," : "",
                         (long long)t->shape[a]);
            s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': shape [%s], the model has [%s]",
                           r->what, t->name, got, want);
            goto cleanup;
        }
    }
    if (i > 0 && t->table_index <= d->tensors[i - 1].table_index) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': table index %u not above the previous "
                       "tensor's %u (duplicate or out of order)", r->what, t->name,
                       t->table_index, d->tensors[i - 1].table_index);
        goto cleanup;
    }
    if (t->kept > t->count || (t->mask == SOTU_MASK_DENSE && t->kept != t->count)) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': kept count %llu of %llu elements%s",
                       r->what, t->name, (unsigned long long)t->kept, (unsigned long long)t->count,
                       t->mask == SOTU_MASK_DENSE ? ", a DENSE tensor keeps all" : "");
        goto cleanup;
    }
    /* An INDEXED list has 1..10 bytes an index; other kinds have none. */
    bool indexed = t->mask == SOTU_MASK_INDEXED;
    if ((indexed && (*index_bytes < t->kept || *index_bytes / 10 > t->kept)) ||
        (!indexed && *index_bytes != 0)) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': %llu index bytes for %llu kept values "
                       "of mask kind %d", r->what, t->name, (unsigned long long)*index_bytes,
                       (unsigned long long)t->kept, (int)t->mask);
        goto cleanup;
    }

cleanup:
    return s;
}

/* How many elements the SEEDED tensors of d have in all. */
static size_t seeded_elements(const sotu_delta *d)
{
    size_t elements = 0;
    for (int i = 0; i < d->n_tensors; i++)
        if (d->tensors[i].mask == SOTU_MASK_SEEDED)
            elements += (size_t)d->tensors[i].count;
    return elements;
}

/* The frame from r's position to the end, and the SEEDED masks. Checks the
 * frame, allocates every tensor's values and index list, then in one
 * parallel region decompresses the planes of all k values and unshuffles
 * each tensor's share (one thread) while the others list the masks into
 * the index lists, whole tensors each (so the indices are the same at any
 * thread count). Errors in this order: the
 * frame, then the first tensor, in tensor order, whose mask keeps another
 * count than its record says. */
static sotu_status read_values(reader *r, sotu_delta *d, ZSTD_DCtx *dctx)
{
    sotu_status s = SOTU_OK;
    const size_t vs = dtype_size(d->dtype);
    const uint64_t all = total_kept(d); /* each <= 2^40, at most 2^16 tensors */
    const uint8_t *frame = r->p + r->pos;
    const size_t payload = r->n - r->pos;
    uint8_t *raw = NULL;
    uint64_t *listed = NULL;
    /* One zstd frame (magic 0xFD2FB528) whose descriptor byte has the
     * content-checksum bit (RFC 8878, 3.1.1.1.1) and declares the size;
     * checked before allocating, so kept counts the payload does not back
     * cost nothing. */
    unsigned long long content = ZSTD_getFrameContentSize(frame, payload);
    bool is_frame = payload >= 5 && frame[0] == 0x28 && frame[1] == 0xB5 && frame[2] == 0x2F &&
                    frame[3] == 0xFD;
    if (!is_frame || !(frame[4] & 0x04) || content != (unsigned long long)all * vs) {
        s = sotu_error(SOTU_ERR_DATA,
                       "%s: the values are not one zstd frame with content checksum and %llu "
                       "content bytes (%llu kept x %zu)%s", r->what,
                       (unsigned long long)all * vs, (unsigned long long)all, vs,
                       payload < 5 ? ": truncated" : "");
        goto cleanup;
    }
    size_t fsize = ZSTD_findFrameCompressedSize(frame, payload);
    if (ZSTD_isError(fsize) || fsize > payload) {
        s = sotu_error(SOTU_ERR_DATA, "%s: truncated zstd frame (%zu bytes left): %s", r->what,
                       payload, ZSTD_isError(fsize) ? ZSTD_getErrorName(fsize) : "short");
        goto cleanup;
    }
    if (fsize < payload) {
        s = sotu_error(SOTU_ERR_DATA, "%s: %zu bytes after the last of %d tensors' values",
                       r->what, payload - fsize, d->n_tensors);
        goto cleanup;
    }
    if (all > SIZE_MAX / 8) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: %llu kept values do not fit in memory", r->what,
                       (unsigned long long)all);
        goto cleanup;
    }
    raw = malloc((size_t)all * vs + 1);
    listed = malloc((size_t)d->n_tensors * sizeof *listed + 1);
    if (!raw || !listed) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: %llu kept values do not fit in memory", r->what,
                       (unsigned long long)all);
        goto cleanup;
    }
    for (int i = 0; i < d->n_tensors; i++) {
        sotu_delta_tensor *t = &d->tensors[i];
        t->values = malloc((size_t)t->kept * sizeof(float) + 1);
        if (t->mask != SOTU_MASK_DENSE)
            t->indices = malloc(((size_t)t->kept + SOTU_MASK_SLACK) * sizeof *t->indices);
        if (!t->values || (t->mask != SOTU_MASK_DENSE && !t->indices)) {
            s = sotu_error(SOTU_ERR_NOMEM, "%s: tensor '%s': %llu kept values do not fit in "
                           "memory", r->what, t->name, (unsigned long long)t->kept);
            goto cleanup;
        }
    }
    size_t elements = seeded_elements(d), got = 0;
    /* Threads only pay off past a few tensors' worth of work. */
#pragma omp parallel if (elements >= ((size_t)1 << 20))
    {
#pragma omp single nowait
        {
            got = ZSTD_decompressDCtx(dctx, raw, (size_t)all * vs, frame, payload);
            uint64_t at = 0;
            for (int i = 0; i < d->n_tensors && got == (size_t)all * vs; i++) {
                SOTU_ISA_PICK(unshuffle_values)(d->tensors[i].values, raw + at,
                                                d->tensors[i].kept, all, d->dtype);
                at += d->tensors[i].kept;
            }
        }
#pragma omp for schedule(dynamic, 1)
        for (int i = 0; i < d->n_tensors; i++) {
            sotu_delta_tensor *t = &d->tensors[i];
            if (t->mask != SOTU_MASK_SEEDED)
                continue;
            sotu_mask m = sotu_mask_of(d->seed, d->task_index, t->table_index, t->count, d->keep);
            listed[i] = sotu_mask_list(&m, t->indices, t->kept);
        }
    }
    if (ZSTD_isError(got) || got != (size_t)all * vs) {
        s = sotu_error(SOTU_ERR_DATA, "%s: zstd: %s", r->what,
                       ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short content");
        goto cleanup;
    }
    r->pos += payload;
    for (int i = 0; i < d->n_tensors && s == SOTU_OK; i++) {
        const sotu_delta_tensor *t = &d->tensors[i];
        if (t->mask != SOTU_MASK_SEEDED)
            continue;
        if (listed[i] != t->kept)
            s = kept_mismatch(d, t, listed[i], r->what);
    }

cleanup:
    free(raw);
    free(listed);
    return s;
}

sotu_status sotu_delta_decode(const void *src, size_t n, const sotu_tensor_table *model,
                              sotu_delta *out, ZSTD_DCtx *dctx, const char *what)
{
    sotu_status s = SOTU_OK;
    reader r = {src, n, 0, what};
    uint64_t x, h;
    uint64_t *index_bytes = NULL;
    memset(out, 0, sizeof *out);

    if (!have(&r, SOTU_DELTA_MAGIC_LEN)) {
        s = truncated(&r, "magic", NULL, SOTU_DELTA_MAGIC_LEN);
        goto cleanup;
    }
    if (memcmp(r.p, SOTU_DELTA_MAGIC, SOTU_DELTA_MAGIC_LEN) != 0) {
        s = sotu_error(SOTU_ERR_DATA, "%s: bad magic, expected a sotu delta (\"SOTUD\\0\\r\\n\")",
                       what);
        goto cleanup;
    }
    r.pos = SOTU_DELTA_MAGIC_LEN;
    READ(&r, x, 4, "format version", NULL);
    if (x == 4) {
        s = sotu_error(SOTU_ERR_DATA, "%s: format version 4, written by an older sotu that did "
                       "not record the pretrained weights, training settings and task file a "
                       "delta was trained with (this sotu reads version %u): re-run the task",
                       what, SOTU_DELTA_VERSION);
        goto cleanup;
    }
    if (x >= 1 && x < 4) {
        s = sotu_error(SOTU_ERR_DATA, "%s: format version %llu, written by an older sotu whose "
                       "masks this one does not regenerate (it reads version %u): re-run the "
                       "task", what, (unsigned long long)x, SOTU_DELTA_VERSION);
        goto cleanup;
    }
    if (x != SOTU_DELTA_VERSION) {
        s = sotu_error(SOTU_ERR_DATA, "%s: format version %llu, this sotu reads version %u", what,
                       (unsigned long long)x, SOTU_DELTA_VERSION);
        goto cleanup;
    }
    out->version = (uint32_t)x;
    /* The checksum first: every field below is then known to be as written. */
    if (!have(&r, 44 + 4 - r.pos)) {
        s = truncated(&r, "header", NULL, 44 + 4 - r.pos);
        goto cleanup;
    }
    r.pos = 44;
    READ(&r, h, 4, "checksum offset", NULL);
    if (h < FIXED_HEADER || h > n || n - h < 4) {
        s = sotu_error(SOTU_ERR_DATA, "%s: truncated: the header says its checksum is at byte "
                       "%llu, the input has %zu bytes", what, (unsigned long long)h, n);
        goto cleanup;
    }
    uint32_t want_crc = (uint32_t)(r.p[h] | r.p[h + 1] << 8 | r.p[h + 2] << 16 |
                                   (uint32_t)r.p[h + 3] << 24);
    uint32_t got_crc = sotu_crc32(r.p, (size_t)h);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    if (got_crc != want_crc) {
        s = sotu_error(SOTU_ERR_DATA, "%s: header checksum 0x%08x, expected 0x%08x (the header, "
                       "records or index lists are damaged)", what, got_crc, want_crc);
        goto cleanup;
    }
#else
    (void)got_crc, (void)want_crc; /* libFuzzer: mutations reach the parsing behind it */
#endif
    reader hr = {src, (size_t)h, 12, what}; /* the checksummed part */
    READ(&hr, out->flags, 4, "flags", NULL);
    if (out->flags & ~(uint32_t)SOTU_DELTA_FLAG_RESCALE) {
        s = sotu_error(SOTU_ERR_DATA, "%s: flags 0x%x, only bit 0 (rescale) is defined", what,
                       out->flags);
        goto cleanup;
    }
    READ(&hr, out->task_index, 4, "task index", NULL);
    READ(&hr, x, 4, "value dtype", NULL);
    if (x != SOTU_DELTA_F32 && x != SOTU_DELTA_BF16) {
        s = sotu_error(SOTU_ERR_DATA, "%s: value dtype %llu, expected 0 (f32) or 1 (bf16)", what,
                       (unsigned long long)x);
        goto cleanup;
    }
    out->dtype = (sotu_delta_dtype)x;
    READ(&hr, out->seed, 8, "seed", NULL);
    READ(&hr, x, 8, "keep", NULL);
    memcpy(&out->keep, &x, 8);
    if (!(out->keep > 0.0 && out->keep <= 1.0)) {
        s = sotu_error(SOTU_ERR_DATA, "%s: keep %g, expected (0, 1]", what, out->keep);
        goto cleanup;
    }
    READ(&hr, x, 4, "tensor count", NULL);
    if (x > SOTU_DELTA_TENSORS_MAX) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor count %llu, expected <= %d", what,
                       (unsigned long long)x, SOTU_DELTA_TENSORS_MAX);
        goto cleanup;
    }
    if (model && x > (uint64_t)model->n) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor count %llu, the model has %d tensors", what,
                       (unsigned long long)x, model->n);
        goto cleanup;
    }
    int n_tensors = (int)x;
    hr.pos += 4; /* H */
    READ(&hr, x, 2, "task name length", NULL);
    if (x == 0 || x >= SOTU_DELTA_TASK_NAME_MAX) {
        s = sotu_error(SOTU_ERR_DATA, "%s: task name length %llu, expected 1..%d", what,
                       (unsigned long long)x, SOTU_DELTA_TASK_NAME_MAX - 1);
        goto cleanup;
    }
    if (!have(&hr, x)) {
        s = truncated(&hr, "task name", NULL, x);
        goto cleanup;
    }
    memcpy(out->task_name, hr.p + hr.pos, x);
    out->task_name[x] = 0;
    hr.pos += x;
    if (strlen(out->task_name) != x) {
        s = sotu_error(SOTU_ERR_DATA, "%s: task name contains a NUL byte", what);
        goto cleanup;
    }
    if ((s = sotu_provenance_get(hr.p, hr.n, &hr.pos, &out->prov, what)) != SOTU_OK)
        goto cleanup;
    out->tensors = calloc((size_t)n_tensors + 1, sizeof *out->tensors);
    index_bytes = calloc((size_t)n_tensors + 1, sizeof *index_bytes);
    if (!out->tensors || !index_bytes) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: %d tensor records", what, n_tensors);
        goto cleanup;
    }
    for (int i = 0; i < n_tensors; i++) {
        out->n_tensors = i + 1;
        if ((s = read_record(&hr, out, i, model, &index_bytes[i])) != SOTU_OK)
            goto cleanup;
    }
    uint64_t lists = 0;
    for (int i = 0; i < n_tensors; i++) {
        if (index_bytes[i] > hr.n - hr.pos - lists) {
            s = sotu_error(SOTU_ERR_DATA, "%s: index lists of %llu bytes and more, the header "
                           "leaves %zu", what, (unsigned long long)(lists + index_bytes[i]),
                           hr.n - hr.pos);
            goto cleanup;
        }
        lists += index_bytes[i];
    }
    if (hr.pos + lists != hr.n) {
        s = sotu_error(SOTU_ERR_DATA, "%s: records and index lists end at byte %llu, the header "
                       "says %zu", what, (unsigned long long)(hr.pos + lists), hr.n);
        goto cleanup;
    }
    r.pos = (size_t)h + 4;
    if ((s = read_values(&r, out, dctx)) != SOTU_OK)
        goto cleanup;
    for (int i = 0; i < n_tensors; i++) {
        if (out->tensors[i].mask != SOTU_MASK_INDEXED)
            continue;
        if ((s = read_indices(&hr, &out->tensors[i], index_bytes[i])) != SOTU_OK)
            goto cleanup;
        hr.pos += (size_t)index_bytes[i];
    }
    out->encoded_bytes = n;

cleanup:
    free(index_bytes);
    if (s != SOTU_OK)
        sotu_delta_free(out);
    return s;
}

/* --------------------------------------------------------------- files */

sotu_status sotu_delta_write_file(const char *path, const sotu_delta *d, int zstd_level)
{
    sotu_status s = SOTU_OK;
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    size_t cap = sotu_delta_encode_bound(d), n = 0;
    void *buf = malloc(cap);
    if (!cctx || !buf) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: %zu bytes to encode the delta", path, cap);
        goto cleanup;
    }
    if ((s = sotu_delta_encode(buf, cap, &n, d, cctx, zstd_level)) != SOTU_OK) {
        s = sotu_error_context(s, "%s", path);
        goto cleanup;
    }
    s = sotu_write_file_atomic(path, buf, n);

cleanup:
    ZSTD_freeCCtx(cctx);
    free(buf);
    return s;
}

sotu_status sotu_delta_read_file(const char *path, const sotu_tensor_table *model, sotu_delta *out)
{
    char *data = NULL;
    size_t n = 0;
    memset(out, 0, sizeof *out);
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    sotu_status s = SOTU_OK;
    if (!dctx) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: zstd decompression context", path);
        goto cleanup;
    }
    if ((s = sotu_read_file(path, SIZE_MAX / 2, &data, &n)) != SOTU_OK)
        goto cleanup;
    s = sotu_delta_decode(data, n, model, out, dctx, path);

cleanup:
    ZSTD_freeDCtx(dctx);
    free(data);
    return s;
}

void sotu_delta_free(sotu_delta *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n_tensors && d->tensors; i++) {
        free(d->tensors[i].values);
        free(d->tensors[i].indices);
    }
    free(d->tensors);
    memset(d, 0, sizeof *d);
}
