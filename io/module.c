#include "io/module.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

enum { FIXED_HEADER = 50 };

static size_t records_size(const sotu_tensor_table *layout)
{
    size_t n = 0;
    for (int i = 0; i < layout->n; i++)
        n += 2 + strlen(layout->t[i].name) + 1 + 8 * (size_t)layout->t[i].ndim;
    return n;
}

size_t sotu_module_encode_bound(const sotu_tensor_table *layout, size_t name_len)
{
    return FIXED_HEADER + name_len + records_size(layout) + 4 +
           ZSTD_compressBound(layout->total * sizeof(float));
}

/* The format packs the values in record order: the layout must have no gaps. */
static sotu_status check_packed(const sotu_tensor_table *layout, const char *what)
{
    size_t off = 0;
    for (int i = 0; i < layout->n; i++) {
        if (layout->t[i].offset != off)
            return sotu_error(SOTU_ERR_INTERNAL, "%s: module layout tensor '%s' at offset %zu, "
                              "expected %zu (packed)", what, layout->t[i].name,
                              layout->t[i].offset, off);
        off += layout->t[i].count;
    }
    if (off != layout->total)
        return sotu_error(SOTU_ERR_INTERNAL, "%s: module layout of %zu values totals %zu", what,
                          off, layout->total);
    return SOTU_OK;
}

/* Little-endian writer and reader over a byte buffer. */
static uint8_t *put_le(uint8_t *p, uint64_t x, int bytes)
{
    for (int b = 0; b < bytes; b++)
        p[b] = (uint8_t)(x >> (8 * b));
    return p + bytes;
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t x = 0;
    for (int b = 0; b < bytes; b++)
        x |= (uint64_t)p[b] << (8 * b);
    return x;
}

/* The header and records are far below 4 GiB (names and shapes of at most
 * SOTU_MODULE_TENSORS_MAX tensors), so one zlib call covers them. */
static uint32_t crc_of(const uint8_t *p, size_t n)
{
    return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)n);
}

sotu_status sotu_module_encode(void *dst, size_t cap, size_t *written, const sotu_module *m,
                               const sotu_tensor_table *layout, ZSTD_CCtx *cctx, int zstd_level)
{
    *written = 0;
    size_t ln = strlen(m->task_name);
    if (ln < 1 || ln >= SOTU_MODULE_TASK_NAME_MAX)
        return sotu_error(SOTU_ERR_DATA, "module: task name '%s' must have 1..%d bytes",
                          m->task_name, SOTU_MODULE_TASK_NAME_MAX - 1);
    if (layout->n < 1 || layout->n > SOTU_MODULE_TENSORS_MAX)
        return sotu_error(SOTU_ERR_DATA, "module of task %s: %d tensors, expected 1..%d",
                          m->task_name, layout->n, SOTU_MODULE_TENSORS_MAX);
    if (m->count != layout->total || m->counter < 0)
        return sotu_error(SOTU_ERR_DATA, "module of task %s: %zu values for a layout of %zu "
                          "(counter %lld)", m->task_name, m->count, layout->total,
                          (long long)m->counter);
    for (int i = 0; i < layout->n; i++) {
        size_t l = strlen(layout->t[i].name);
        if (l < 1 || l >= SOTU_TENSOR_NAME_MAX || layout->t[i].ndim < 1 ||
            layout->t[i].ndim > SOTU_TENSOR_NDIM_MAX)
            return sotu_error(SOTU_ERR_DATA, "module of task %s: tensor %d '%s' has a name or "
                              "rank outside the format's limits", m->task_name, i,
                              layout->t[i].name);
    }
    sotu_status st = check_packed(layout, m->task_name);
    if (st != SOTU_OK)
        return st;
    if (cap < sotu_module_encode_bound(layout, ln))
        return sotu_error(SOTU_ERR_NOMEM, "module of task %s: %zu bytes of room, the bound is %zu",
                          m->task_name, cap, sotu_module_encode_bound(layout, ln));

    uint8_t *base = dst, *p = base;
    memcpy(p, SOTU_MODULE_MAGIC, SOTU_MODULE_MAGIC_LEN);
    p += SOTU_MODULE_MAGIC_LEN;
    p = put_le(p, SOTU_MODULE_VERSION, 4);
    p = put_le(p, m->task_index, 4);
    p = put_le(p, m->kind, 4);
    p = put_le(p, (uint64_t)layout->n, 4);
    p = put_le(p, (uint64_t)m->counter, 8);
    p = put_le(p, (uint64_t)layout->total, 8);
    uint8_t *payload_size_at = p;
    p += 8;
    p = put_le(p, ln, 2);
    memcpy(p, m->task_name, ln);
    p += ln;
    for (int i = 0; i < layout->n; i++) {
        const sotu_tensor_info *t = &layout->t[i];
        size_t l = strlen(t->name);
        p = put_le(p, l, 2);
        memcpy(p, t->name, l);
        p += l;
        *p++ = (uint8_t)t->ndim;
        for (int d = 0; d < t->ndim; d++)
            p = put_le(p, (uint64_t)t->shape[d], 8);
    }
    uint8_t *crc_at = p;
    p += 4;

    size_t zr = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
    if (!ZSTD_isError(zr))
        zr = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, zstd_level);
    if (!ZSTD_isError(zr))
        zr = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    if (!ZSTD_isError(zr))
        zr = ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
    size_t z = ZSTD_isError(zr) ? zr
                                : ZSTD_compress2(cctx, p, cap - (size_t)(p - base), m->values,
                                                 sizeof(float) * layout->total);
    if (ZSTD_isError(z))
        return sotu_error(SOTU_ERR_INTERNAL, "module of task %s: zstd: %s", m->task_name,
                          ZSTD_getErrorName(z));
    put_le(payload_size_at, z, 8);
    put_le(crc_at, crc_of(base, (size_t)(crc_at - base)), 4);
    *written = (size_t)(p - base) + z;
    return SOTU_OK;
}

/* ------------------------------------------------------------- reading */

typedef struct {
    const uint8_t *p;
    size_t n, pos;
    const char *what;
} reader;

/* Takes `bytes` bytes as an integer, or fails naming the field. */
static sotu_status take(reader *r, int bytes, uint64_t *v, const char *field)
{
    if (r->n - r->pos < (size_t)bytes)
        return sotu_error(SOTU_ERR_DATA, "%s: truncated at byte %zu of %zu, in %s", r->what,
                          r->pos, r->n, field);
    *v = get_le(r->p + r->pos, bytes);
    r->pos += (size_t)bytes;
    return SOTU_OK;
}

#define TAKE(bytes, dst, field)                                                                    \
    do {                                                                                           \
        if ((st = take(&r, bytes, &(dst), field)) != SOTU_OK)                                      \
            goto fail;                                                                             \
    } while (0)

sotu_status sotu_module_decode(const void *src, size_t n, const sotu_tensor_table *layout,
                               sotu_module *out, ZSTD_DCtx *dctx, const char *what)
{
    memset(out, 0, sizeof *out);
    reader r = {src, n, 0, what};
    sotu_status st = check_packed(layout, what);
    if (st != SOTU_OK)
        return st;
    uint64_t version = 0, index = 0, kind = 0, n_tensors = 0, counter = 0, values = 0,
             payload = 0, ln = 0;
    if (n < SOTU_MODULE_MAGIC_LEN || memcmp(src, SOTU_MODULE_MAGIC, SOTU_MODULE_MAGIC_LEN))
        return sotu_error(SOTU_ERR_DATA, "%s: not a sotu task module (bad magic)", what);
    r.pos = SOTU_MODULE_MAGIC_LEN;
    TAKE(4, version, "the format version");
    if (version != SOTU_MODULE_VERSION) {
        st = sotu_error(SOTU_ERR_DATA, "%s: format version %llu, this sotu reads %u", what,
                        (unsigned long long)version, SOTU_MODULE_VERSION);
        goto fail;
    }
    TAKE(4, index, "the task index");
    TAKE(4, kind, "the kind");
    TAKE(4, n_tensors, "the tensor count");
    TAKE(8, counter, "the counter");
    TAKE(8, values, "the value count");
    TAKE(8, payload, "the payload size");
    TAKE(2, ln, "the task name length");
    if (ln < 1 || ln >= SOTU_MODULE_TASK_NAME_MAX || r.n - r.pos < ln ||
        memchr(r.p + r.pos, 0, ln)) {
        st = sotu_error(SOTU_ERR_DATA, "%s: task name of %llu bytes, expected 1..%d bytes without "
                        "NUL within the message", what, (unsigned long long)ln,
                        SOTU_MODULE_TASK_NAME_MAX - 1);
        goto fail;
    }
    memcpy(out->task_name, r.p + r.pos, ln);
    r.pos += ln;
    if ((int64_t)counter < 0) {
        st = sotu_error(SOTU_ERR_DATA, "%s: counter %lld, expected >= 0", what,
                        (long long)(int64_t)counter);
        goto fail;
    }
    if (n_tensors != (uint64_t)layout->n || values != (uint64_t)layout->total) {
        st = sotu_error(SOTU_ERR_DATA, "%s: %llu tensors of %llu values, the model expects %d "
                        "tensors of %zu values", what, (unsigned long long)n_tensors,
                        (unsigned long long)values, layout->n, layout->total);
        goto fail;
    }
    for (int i = 0; i < layout->n; i++) {
        const sotu_tensor_info *t = &layout->t[i];
        uint64_t l = 0, ndim = 0, dim = 0;
        TAKE(2, l, "a tensor name length");
        if (l != strlen(t->name) || r.n - r.pos < l || memcmp(r.p + r.pos, t->name, l)) {
            int shown = (int)(l < 80 && r.n - r.pos >= l ? l : 0);
            st = sotu_error(SOTU_ERR_DATA, "%s: tensor %d is '%.*s', the model expects '%s'",
                            what, i, shown, (const char *)r.p + r.pos, t->name);
            goto fail;
        }
        r.pos += l;
        TAKE(1, ndim, "a tensor rank");
        bool same = ndim == (uint64_t)t->ndim;
        for (uint64_t d = 0; d < ndim && d < SOTU_TENSOR_NDIM_MAX; d++) {
            TAKE(8, dim, "a tensor shape");
            same = same && dim == (uint64_t)t->shape[d];
        }
        if (!same || ndim > SOTU_TENSOR_NDIM_MAX) {
            st = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s' has another shape than the model's "
                            "(rank %llu, expected %d)", what, t->name, (unsigned long long)ndim,
                            t->ndim);
            goto fail;
        }
    }
    uint64_t crc = 0;
    size_t header_end = r.pos;
    TAKE(4, crc, "the header checksum");
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    if ((uint32_t)crc != crc_of(r.p, header_end)) {
        st = sotu_error(SOTU_ERR_DATA, "%s: header checksum mismatch (damaged in transit or on "
                        "disk)", what);
        goto fail;
    }
#else
    (void)header_end; /* libFuzzer builds: mutations reach the payload checks behind the CRC */
#endif
    if (payload != r.n - r.pos) {
        st = sotu_error(SOTU_ERR_DATA, "%s: payload of %llu bytes declared, %zu present%s", what,
                        (unsigned long long)payload, r.n - r.pos,
                        payload > r.n - r.pos ? " (truncated)" : " (trailing bytes)");
        goto fail;
    }
    const uint8_t *frame = r.p + r.pos;
    size_t raw = sizeof(float) * layout->total;
    /* One frame (magic 0xFD2FB528) whose descriptor byte has the content
     * checksum bit (RFC 8878, 3.1.1.1.1) and declares the size, checked
     * before allocating. */
    unsigned long long content = ZSTD_getFrameContentSize(frame, (size_t)payload);
    bool is_frame = payload >= 5 && frame[0] == 0x28 && frame[1] == 0xB5 && frame[2] == 0x2F &&
                    frame[3] == 0xFD && (frame[4] & 0x04);
    size_t fsize = is_frame ? ZSTD_findFrameCompressedSize(frame, (size_t)payload) : 0;
    if (!is_frame || content != raw || ZSTD_isError(fsize) || fsize != payload) {
        st = sotu_error(SOTU_ERR_DATA, "%s: the payload is not one zstd frame of %zu bytes with "
                        "a content checksum", what, raw);
        goto fail;
    }
    out->values = malloc(raw ? raw : 1);
    if (!out->values) {
        st = sotu_error(SOTU_ERR_NOMEM, "%s: %zu bytes of values", what, raw);
        goto fail;
    }
    size_t got = ZSTD_decompressDCtx(dctx, out->values, raw, frame, (size_t)payload);
    if (ZSTD_isError(got) || got != raw) {
        st = sotu_error(SOTU_ERR_DATA, "%s: payload does not decompress: %s", what,
                        ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short content");
        goto fail;
    }
    for (int i = 0; i < layout->n; i++)
        for (size_t k = 0; k < layout->t[i].count; k++)
            if (!isfinite(out->values[layout->t[i].offset + k])) {
                st = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s' holds NaN or Inf at element %zu",
                                what, layout->t[i].name, k);
                goto fail;
            }
    out->task_index = (uint32_t)index;
    out->kind = (uint32_t)kind;
    out->counter = (int64_t)counter;
    out->count = layout->total;
    return SOTU_OK;
fail:
    sotu_module_free(out);
    return st;
}

void sotu_module_free(sotu_module *m)
{
    if (!m)
        return;
    free(m->values);
    memset(m, 0, sizeof *m);
}
