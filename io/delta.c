/* For ZSTD_c_literalCompressionMode only (force_literal_compression). */
#define ZSTD_STATIC_LINKING_ONLY
#include "io/delta.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd_errors.h>

#include "common/rng.h"
#include "io/fsutil.h"

enum {
    FIXED_HEADER = 46,
    MASK_CHUNK = 16384,
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

/* The value bits as they travel in format version >= 2: rotated left by
 * one bit, so the sign sits in bit 0 beside the mantissa and the exponent
 * fills the top byte (one byte plane of its own after shuffling). */
static inline uint32_t rotl32(uint32_t u) { return u << 1 | u >> 31; }
static inline uint32_t rotr32(uint32_t u) { return u >> 1 | u << 31; }
static inline uint16_t rotl16(uint16_t u) { return (uint16_t)(u << 1 | u >> 15); }

/* dst gets k values of vs bytes each, rotated (version >= 2) and
 * byte-shuffled: byte 0 of every value, then byte 1, ... The loops are
 * written per case, without branches inside, so they vectorise. */
/* noinline: inlined into the encoder and decoder, GCC 12 loses restrict
 * and leaves these loops scalar. */
__attribute__((noinline)) static void shuffle_values(uint8_t *restrict dst,
                                                     const float *restrict v, uint64_t k,
                                                     sotu_delta_dtype t, bool rotate)
{
    uint8_t *restrict d0 = dst, *restrict d1 = dst + k, *restrict d2 = dst + 2 * k,
                      *restrict d3 = dst + 3 * k;
    if (t == SOTU_DELTA_BF16) {
        for (uint64_t i = 0; i < k; i++) {
            uint16_t b = sotu_bf16_from_f32(v[i]);
            if (rotate)
                b = rotl16(b);
            d0[i] = (uint8_t)b;
            d1[i] = (uint8_t)(b >> 8);
        }
        return;
    }
    if (rotate)
        for (uint64_t i = 0; i < k; i++) {
            uint32_t x;
            memcpy(&x, &v[i], 4);
            x = rotl32(x);
            d0[i] = (uint8_t)x, d1[i] = (uint8_t)(x >> 8);
            d2[i] = (uint8_t)(x >> 16), d3[i] = (uint8_t)(x >> 24);
        }
    else
        for (uint64_t i = 0; i < k; i++) {
            uint32_t x;
            memcpy(&x, &v[i], 4);
            d0[i] = (uint8_t)x, d1[i] = (uint8_t)(x >> 8);
            d2[i] = (uint8_t)(x >> 16), d3[i] = (uint8_t)(x >> 24);
        }
}

__attribute__((noinline)) static void unshuffle_values(float *restrict v,
                                                       const uint8_t *restrict src, uint64_t k,
                                                       sotu_delta_dtype t, bool rotated)
{
    const uint8_t *restrict s0 = src, *restrict s1 = src + k, *restrict s2 = src + 2 * k,
                            *restrict s3 = src + 3 * k;
    if (t == SOTU_DELTA_BF16) {
        for (uint64_t i = 0; i < k; i++) {
            uint32_t b = (uint32_t)s0[i] | (uint32_t)s1[i] << 8;
            if (rotated)
                b = (b >> 1 | b << 15) & 0xffffu;
            b <<= 16; /* bf16 to f32 */
            memcpy(&v[i], &b, 4);
        }
        return;
    }
    if (rotated)
        for (uint64_t i = 0; i < k; i++) {
            uint32_t x = rotr32((uint32_t)s0[i] | (uint32_t)s1[i] << 8 | (uint32_t)s2[i] << 16 |
                                (uint32_t)s3[i] << 24);
            memcpy(&v[i], &x, 4);
        }
    else
        for (uint64_t i = 0; i < k; i++) {
            uint32_t x = (uint32_t)s0[i] | (uint32_t)s1[i] << 8 | (uint32_t)s2[i] << 16 |
                         (uint32_t)s3[i] << 24;
            memcpy(&v[i], &x, 4);
        }
}

/* ------------------------------------------------------------- writing */

static uint8_t *put_u16(uint8_t *p, uint16_t x)
{
    p[0] = (uint8_t)x, p[1] = (uint8_t)(x >> 8);
    return p + 2;
}

static uint8_t *put_u32(uint8_t *p, uint32_t x)
{
    for (int b = 0; b < 4; b++)
        p[b] = (uint8_t)(x >> (8 * b));
    return p + 4;
}

static uint8_t *put_u64(uint8_t *p, uint64_t x)
{
    for (int b = 0; b < 8; b++)
        p[b] = (uint8_t)(x >> (8 * b));
    return p + 8;
}

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

static size_t record_header_size(const sotu_delta_tensor *t)
{
    return 2 + strlen(t->name) + 4 + 1 + 1 + 8 * (size_t)t->ndim + 8 * 5 + 4;
}

size_t sotu_delta_encode_bound(const sotu_delta *d)
{
    size_t n = FIXED_HEADER + strlen(d->task_name);
    for (int i = 0; i < d->n_tensors; i++) {
        const sotu_delta_tensor *t = &d->tensors[i];
        /* + the block headers of the per-plane flushes (compress_planes) */
        n += record_header_size(t) + ZSTD_compressBound((size_t)t->kept * dtype_size(d->dtype)) +
             32;
        if (t->mask == SOTU_MASK_INDEXED)
            n += 10 * (size_t)t->kept;
    }
    return n;
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

sotu_status sotu_delta_encode(void *dst, size_t cap, size_t *written, const sotu_delta *d,
                              ZSTD_CCtx *cctx, int zstd_level)
{
    sotu_status s = check_for_encode(d);
    uint8_t *scratch = NULL;
    *written = 0;
    if (s != SOTU_OK)
        return s;
    if (cap < sotu_delta_encode_bound(d))
        return sotu_error(SOTU_ERR_NOMEM, "delta encode: task '%s': buffer of %zu bytes, need %zu",
                          d->task_name, cap, sotu_delta_encode_bound(d));
    size_t vs = dtype_size(d->dtype), max_kept = 0;
    for (int i = 0; i < d->n_tensors; i++)
        if (d->tensors[i].kept > max_kept)
            max_kept = d->tensors[i].kept;
    scratch = malloc(max_kept * vs + 1);
    if (!scratch) {
        s = sotu_error(SOTU_ERR_NOMEM, "delta encode: task '%s': %zu bytes of scratch",
                       d->task_name, max_kept * vs);
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
    p = put_u32(p, SOTU_DELTA_VERSION);
    p = put_u32(p, d->flags);
    p = put_u32(p, d->task_index);
    p = put_u32(p, (uint32_t)d->dtype);
    p = put_u64(p, d->seed);
    uint64_t keep_bits;
    memcpy(&keep_bits, &d->keep, 8);
    p = put_u64(p, keep_bits);
    p = put_u32(p, (uint32_t)d->n_tensors);
    size_t ln = strlen(d->task_name);
    p = put_u16(p, (uint16_t)ln);
    memcpy(p, d->task_name, ln);
    p += ln;

    for (int i = 0; i < d->n_tensors; i++) {
        const sotu_delta_tensor *t = &d->tensors[i];
        size_t l = strlen(t->name);
        p = put_u16(p, (uint16_t)l);
        memcpy(p, t->name, l);
        p += l;
        p = put_u32(p, t->table_index);
        *p++ = (uint8_t)t->ndim;
        *p++ = (uint8_t)t->mask;
        for (int a = 0; a < t->ndim; a++)
            p = put_u64(p, (uint64_t)t->shape[a]);
        p = put_u64(p, t->count);
        p = put_u64(p, t->kept);
        uint8_t *sizes = p; /* index bytes, payload bytes, crc: filled below */
        p += 8 + 8 + 4;

        uint8_t *data = p;
        uint64_t index_bytes = 0, prev = 0;
        if (t->mask == SOTU_MASK_INDEXED)
            for (uint64_t m = 0; m < t->kept; m++) {
                uint64_t gap = m == 0 ? t->indices[0] : t->indices[m] - prev - 1;
                index_bytes += varint_put(p + index_bytes, gap);
                prev = t->indices[m];
            }
        p += index_bytes;
        shuffle_values(scratch, t->values, t->kept, d->dtype, true);
        size_t room = cap - (size_t)(p - (uint8_t *)dst);
        size_t z = compress_planes(cctx, p, room, scratch, t->kept, vs);
        if (ZSTD_isError(z)) {
            s = sotu_error(SOTU_ERR_INTERNAL, "delta encode: task '%s': tensor '%s': zstd: %s",
                           d->task_name, t->name, ZSTD_getErrorName(z));
            goto cleanup;
        }
        p += z;
        uLong crc = crc32(0L, Z_NULL, 0);
        for (size_t off = 0, len = index_bytes + z; off < len;) {
            uInt step = (uInt)((len - off) > (1u << 30) ? (1u << 30) : (len - off));
            crc = crc32(crc, data + off, step);
            off += step;
        }
        sizes = put_u64(sizes, index_bytes);
        sizes = put_u64(sizes, z);
        put_u32(sizes, (uint32_t)crc);
    }
    *written = (size_t)(p - (uint8_t *)dst);

cleanup:
    free(scratch);
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
    uint64_t x = 0;
    for (int b = 0; b < bytes; b++)
        x |= (uint64_t)r->p[r->pos + (size_t)b] << (8 * b);
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

static uint32_t crc32_big(const uint8_t *p, size_t n)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t off = 0; off < n;) {
        uInt step = (uInt)((n - off) > (1u << 30) ? (1u << 30) : (n - off));
        crc = crc32(crc, p + off, step);
        off += step;
    }
    return (uint32_t)crc;
}

/* A growing list of kept indices for one part of a tensor's mask. */
typedef struct {
    int tensor;
    uint64_t from, to;    /* the part's elements */
    uint32_t *idx;
    size_t n, cap, limit; /* stops once n > limit */
    bool oom;
} mask_part;

/* Appends the kept indices of the part to its list, stopping past limit. */
static void scan_part(sotu_mask_key key, uint32_t bound, mask_part *l)
{
    for (uint64_t first = l->from; first < l->to && l->n <= l->limit; first += MASK_CHUNK) {
        size_t n = (size_t)(l->to - first < MASK_CHUNK ? l->to - first : MASK_CHUNK);
        if (l->cap - l->n < n + SOTU_MASK_SCAN_SLACK) {
            size_t cap = l->cap * 2 + n + SOTU_MASK_SCAN_SLACK;
            uint32_t *p = realloc(l->idx, cap * sizeof *p);
            if (!p) {
                l->oom = true;
                return;
            }
            l->idx = p, l->cap = cap;
        }
        l->n += sotu_mask_scan(key, first, n, bound, l->idx + l->n);
    }
}

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

/* Regenerates every SEEDED mask of d, checks each tensor's kept count
 * (the first that differs, in tensor order, is the error) and fills
 * t->indices (room for t->kept). On one thread each tensor is scanned
 * straight into its index list; on more, every tensor is cut into parts of
 * MASK_PART elements, all parts of all tensors are scanned in one parallel
 * region (one wake-up of the threads per delta) into lists of their own,
 * which are joined in order: the same indices at any thread count. */
static sotu_status verify_masks(sotu_delta *d, const char *what)
{
    enum { MASK_PART = 1 << 20 };
    const uint32_t bound = sotu_mask_bound(d->keep);
    if (omp_get_max_threads() == 1) {
        uint32_t spill[MASK_CHUNK + SOTU_MASK_SCAN_SLACK];
        for (int i = 0; i < d->n_tensors; i++) {
            sotu_delta_tensor *t = &d->tensors[i];
            if (t->mask != SOTU_MASK_SEEDED)
                continue;
            const sotu_mask_key key = sotu_mask_key_of(d->seed, d->task_index, t->table_index);
            uint64_t kept = 0;
            for (uint64_t first = 0; first < t->count; first += MASK_CHUNK) {
                size_t n = (size_t)(t->count - first < MASK_CHUNK ? t->count - first : MASK_CHUNK);
                /* Straight into the index list while it has room for a chunk
                 * and the kernel's slack; near its end through spill. */
                bool direct = t->kept - kept >= n + SOTU_MASK_SCAN_SLACK;
                uint32_t *dst = direct ? t->indices + kept : spill;
                size_t c = sotu_mask_scan(key, first, n, bound, dst);
                if (c > t->kept - kept)
                    return kept_mismatch(d, t, t->kept + 1, what);
                if (!direct)
                    memcpy(t->indices + kept, spill, c * sizeof *spill);
                kept += c;
            }
            if (kept != t->kept)
                return kept_mismatch(d, t, kept, what);
        }
        return SOTU_OK;
    }

    size_t n_parts = 0;
    for (int i = 0; i < d->n_tensors; i++)
        if (d->tensors[i].mask == SOTU_MASK_SEEDED)
            n_parts += (size_t)((d->tensors[i].count + MASK_PART - 1) / MASK_PART);
    mask_part *parts = calloc(n_parts + 1, sizeof *parts);
    if (!parts)
        return sotu_error(SOTU_ERR_NOMEM, "%s: %zu mask lists", what, n_parts);
    size_t k = 0;
    for (int i = 0; i < d->n_tensors; i++) {
        const sotu_delta_tensor *t = &d->tensors[i];
        for (uint64_t from = 0; t->mask == SOTU_MASK_SEEDED && from < t->count; from += MASK_PART)
            parts[k++] = (mask_part){.tensor = i, .from = from,
                                     .to = t->count - from < MASK_PART ? t->count : from + MASK_PART,
                                     .limit = (size_t)t->kept};
    }
    for (size_t p = 0; p < n_parts; p++) { /* room for the expected count: no regrowing */
        size_t cap = (size_t)((double)(parts[p].to - parts[p].from) * d->keep * 1.1) +
                     MASK_CHUNK + SOTU_MASK_SCAN_SLACK;
        parts[p].idx = malloc(cap * sizeof *parts[p].idx);
        parts[p].cap = parts[p].idx ? cap : 0;
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t p = 0; p < n_parts; p++) {
        const sotu_delta_tensor *t = &d->tensors[parts[p].tensor];
        scan_part(sotu_mask_key_of(d->seed, d->task_index, t->table_index), bound, &parts[p]);
    }
    sotu_status s = SOTU_OK;
    for (size_t p = 0; p < n_parts && s == SOTU_OK;) {
        sotu_delta_tensor *t = &d->tensors[parts[p].tensor];
        uint64_t kept = 0;
        size_t q = p;
        for (; q < n_parts && parts[q].tensor == parts[p].tensor; q++) {
            if (parts[q].oom)
                s = sotu_error(SOTU_ERR_NOMEM, "%s: tensor '%s': mask list", what, t->name);
            kept += parts[q].n;
        }
        if (s == SOTU_OK && kept != t->kept)
            s = kept_mismatch(d, t, kept, what);
        for (size_t at = 0; s == SOTU_OK && p < q; p++) {
            memcpy(t->indices + at, parts[p].idx, parts[p].n * sizeof *parts[p].idx);
            at += parts[p].n;
        }
        p = q;
    }
    for (size_t p = 0; p < n_parts; p++)
        free(parts[p].idx);
    free(parts);
    return s;
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

static sotu_status read_tensor(reader *r, sotu_delta *d, int i, const sotu_tensor_table *model,
                               ZSTD_DCtx *dctx)
{
    sotu_status s = SOTU_OK;
    sotu_delta_tensor *t = &d->tensors[i];
    uint8_t *raw = NULL;
    uint64_t len, x, index_bytes, payload, crc;
    char label[32];
    snprintf(label, sizeof label, "#%d", i);

    READ(r, len, 2, "tensor name length", label);
    if (len == 0 || len >= SOTU_TENSOR_NAME_MAX) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor %s: name length %llu, expected 1..%d", r->what,
                       label, (unsigned long long)len, SOTU_TENSOR_NAME_MAX - 1);
        goto cleanup;
    }
    if (!have(r, len)) {
        s = truncated(r, "tensor name", label, len);
        goto cleanup;
    }
    memcpy(t->name, r->p + r->pos, len);
    t->name[len] = 0;
    r->pos += len;
    if (strlen(t->name) != len) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor %s: name contains a NUL byte", r->what, label);
        goto cleanup;
    }
    READ(r, x, 4, "table index", t->name);
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
        READ(r, x, 8, "shape", t->name);
        if (x == 0 || x > SOTU_DELTA_COUNT_MAX || prod > SOTU_DELTA_COUNT_MAX / x) {
            s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': shape[%d] = %llu, expected 1..%llu "
                           "elements in all", r->what, t->name, a, (unsigned long long)x,
                           (unsigned long long)SOTU_DELTA_COUNT_MAX);
            goto cleanup;
        }
        t->shape[a] = (int64_t)x;
        prod *= x;
    }
    READ(r, t->count, 8, "count", t->name);
    READ(r, t->kept, 8, "kept count", t->name);
    READ(r, index_bytes, 8, "index bytes", t->name);
    READ(r, payload, 8, "payload bytes", t->name);
    READ(r, crc, 4, "payload checksum", t->name);
    if (t->count != prod) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': count %llu, expected %llu from the shape",
                       r->what, t->name, (unsigned long long)t->count, (unsigned long long)prod);
        goto cleanup;
    }
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
    if ((t->mask == SOTU_MASK_INDEXED) != (index_bytes != 0) && !(t->mask == SOTU_MASK_INDEXED &&
                                                                 t->kept == 0)) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': %llu index bytes for mask kind %d",
                       r->what, t->name, (unsigned long long)index_bytes, (int)t->mask);
        goto cleanup;
    }
    if (index_bytes > r->n - r->pos || payload > r->n - r->pos - index_bytes) {
        s = sotu_error(SOTU_ERR_DATA,
                       "%s: truncated at byte %zu in tensor '%s': index + payload of %llu + %llu "
                       "bytes, %zu left",
                       r->what, r->pos, t->name, (unsigned long long)index_bytes,
                       (unsigned long long)payload, r->n - r->pos);
        goto cleanup;
    }
    t->stored_bytes = index_bytes + payload;
    uint32_t got_crc = crc32_big(r->p + r->pos, (size_t)(index_bytes + payload));
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    if (got_crc != (uint32_t)crc) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': payload checksum 0x%08x, expected 0x%08x",
                       r->what, t->name, got_crc, (unsigned)crc);
        goto cleanup;
    }
#else
    (void)got_crc; /* libFuzzer builds: mutated bytes reach the parsing behind the checksum */
#endif

    size_t vs = dtype_size(d->dtype);
    const uint8_t *frame = r->p + r->pos + index_bytes;
    /* One zstd frame (magic 0xFD2FB528) whose descriptor byte has the
     * content-checksum bit (RFC 8878, 3.1.1.1.1) and declares the size;
     * checked before allocating, so a kept count the payload does not back
     * costs nothing. */
    unsigned long long content = ZSTD_getFrameContentSize(frame, (size_t)payload);
    bool is_frame = payload >= 5 && frame[0] == 0x28 && frame[1] == 0xB5 && frame[2] == 0x2F &&
                    frame[3] == 0xFD;
    if (!is_frame || !(frame[4] & 0x04) || content != (unsigned long long)t->kept * vs) {
        s = sotu_error(SOTU_ERR_DATA,
                       "%s: tensor '%s': payload is not one zstd frame with content checksum and "
                       "%llu content bytes (%llu kept x %zu)",
                       r->what, t->name, (unsigned long long)t->kept * vs,
                       (unsigned long long)t->kept, vs);
        goto cleanup;
    }
    size_t fsize = ZSTD_findFrameCompressedSize(frame, (size_t)payload);
    if (ZSTD_isError(fsize) || fsize != payload) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': zstd frame of %zu bytes in a payload of "
                       "%llu", r->what, t->name, ZSTD_isError(fsize) ? 0 : fsize,
                       (unsigned long long)payload);
        goto cleanup;
    }
    if (t->kept > SIZE_MAX / 8) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: tensor '%s': %llu kept values do not fit in memory",
                       r->what, t->name, (unsigned long long)t->kept);
        goto cleanup;
    }
    t->values = malloc((size_t)t->kept * sizeof(float) + 1);
    if (t->mask != SOTU_MASK_DENSE)
        t->indices = malloc((size_t)t->kept * sizeof *t->indices + 1);
    raw = malloc((size_t)t->kept * vs + 1);
    if (!t->values || !raw || (t->mask != SOTU_MASK_DENSE && !t->indices)) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: tensor '%s': %llu kept values do not fit in memory",
                       r->what, t->name, (unsigned long long)t->kept);
        goto cleanup;
    }
    if (t->mask == SOTU_MASK_INDEXED && (s = read_indices(r, t, index_bytes)) != SOTU_OK)
        goto cleanup;
    r->pos += index_bytes;

    size_t got = ZSTD_decompressDCtx(dctx, raw, (size_t)t->kept * vs, frame, (size_t)payload);
    if (ZSTD_isError(got) || got != (size_t)t->kept * vs) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': zstd: %s", r->what, t->name,
                       ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short content");
        goto cleanup;
    }
    r->pos += payload;
    unshuffle_values(t->values, raw, t->kept, d->dtype, d->version >= 2);

cleanup:
    free(raw);
    return s;
}

sotu_status sotu_delta_decode(const void *src, size_t n, const sotu_tensor_table *model,
                              sotu_delta *out, ZSTD_DCtx *dctx, const char *what)
{
    sotu_status s = SOTU_OK;
    reader r = {src, n, 0, what};
    uint64_t x;
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
    if (x < 1 || x > SOTU_DELTA_VERSION) {
        s = sotu_error(SOTU_ERR_DATA, "%s: format version %llu, this sotu reads versions 1 to %u",
                       what, (unsigned long long)x, SOTU_DELTA_VERSION);
        goto cleanup;
    }
    out->version = (uint32_t)x;
    READ(&r, out->flags, 4, "flags", NULL);
    if (out->flags & ~(uint32_t)SOTU_DELTA_FLAG_RESCALE) {
        s = sotu_error(SOTU_ERR_DATA, "%s: flags 0x%x, only bit 0 (rescale) is defined", what,
                       out->flags);
        goto cleanup;
    }
    READ(&r, out->task_index, 4, "task index", NULL);
    READ(&r, x, 4, "value dtype", NULL);
    if (x != SOTU_DELTA_F32 && x != SOTU_DELTA_BF16) {
        s = sotu_error(SOTU_ERR_DATA, "%s: value dtype %llu, expected 0 (f32) or 1 (bf16)", what,
                       (unsigned long long)x);
        goto cleanup;
    }
    out->dtype = (sotu_delta_dtype)x;
    READ(&r, out->seed, 8, "seed", NULL);
    READ(&r, x, 8, "keep", NULL);
    memcpy(&out->keep, &x, 8);
    if (!(out->keep > 0.0 && out->keep <= 1.0)) {
        s = sotu_error(SOTU_ERR_DATA, "%s: keep %g, expected (0, 1]", what, out->keep);
        goto cleanup;
    }
    READ(&r, x, 4, "tensor count", NULL);
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
    READ(&r, x, 2, "task name length", NULL);
    if (x == 0 || x >= SOTU_DELTA_TASK_NAME_MAX) {
        s = sotu_error(SOTU_ERR_DATA, "%s: task name length %llu, expected 1..%d", what,
                       (unsigned long long)x, SOTU_DELTA_TASK_NAME_MAX - 1);
        goto cleanup;
    }
    if (!have(&r, x)) {
        s = truncated(&r, "task name", NULL, x);
        goto cleanup;
    }
    memcpy(out->task_name, r.p + r.pos, x);
    out->task_name[x] = 0;
    r.pos += x;
    if (strlen(out->task_name) != x) {
        s = sotu_error(SOTU_ERR_DATA, "%s: task name contains a NUL byte", what);
        goto cleanup;
    }
    out->tensors = calloc((size_t)n_tensors + 1, sizeof *out->tensors);
    if (!out->tensors) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: %d tensor records", what, n_tensors);
        goto cleanup;
    }
    for (int i = 0; i < n_tensors; i++) {
        out->n_tensors = i + 1;
        if ((s = read_tensor(&r, out, i, model, dctx)) != SOTU_OK)
            goto cleanup;
    }
    if (r.pos != n) {
        s = sotu_error(SOTU_ERR_DATA, "%s: %zu bytes after the last of %d tensors", what,
                       n - r.pos, n_tensors);
        goto cleanup;
    }
    s = verify_masks(out, what);

cleanup:
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
