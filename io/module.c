#include "io/module.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/bytes.h"

enum { FIXED_HEADER = 50 };

static size_t records_size(const sotu_tensor_table *layout)
{
    size_t n = 0;
    for (int i = 0; i < layout->n; i++)
        n += 2 + strlen(layout->t[i].name) + 1 + 8 * (size_t)layout->t[i].ndim;
    return n;
}

size_t sotu_module_encode_bound(const sotu_tensor_table *layout, const sotu_module *m)
{
    return FIXED_HEADER + strlen(m->task_name) + sotu_provenance_size(&m->prov) +
           records_size(layout) + 4 +
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
    char what[SOTU_MODULE_TASK_NAME_MAX + 32];
    snprintf(what, sizeof what, "module of task %s", m->task_name);
    if (st == SOTU_OK)
        st = sotu_provenance_check(&m->prov, what);
    if (st != SOTU_OK)
        return st;
    if (cap < sotu_module_encode_bound(layout, m))
        return sotu_error(SOTU_ERR_NOMEM, "module of task %s: %zu bytes of room, the bound is %zu",
                          m->task_name, cap, sotu_module_encode_bound(layout, m));

    uint8_t *base = dst, *p = base;
    memcpy(p, SOTU_MODULE_MAGIC, SOTU_MODULE_MAGIC_LEN);
    p += SOTU_MODULE_MAGIC_LEN;
    p = sotu_put_le(p, SOTU_MODULE_VERSION, 4);
    p = sotu_put_le(p, m->task_index, 4);
    p = sotu_put_le(p, m->kind, 4);
    p = sotu_put_le(p, (uint64_t)layout->n, 4);
    p = sotu_put_le(p, (uint64_t)m->counter, 8);
    p = sotu_put_le(p, (uint64_t)layout->total, 8);
    uint8_t *payload_size_at = p;
    p += 8;
    p = sotu_put_le(p, ln, 2);
    memcpy(p, m->task_name, ln);
    p += ln;
    p = sotu_provenance_put(p, &m->prov);
    for (int i = 0; i < layout->n; i++) {
        const sotu_tensor_info *t = &layout->t[i];
        size_t l = strlen(t->name);
        p = sotu_put_le(p, l, 2);
        memcpy(p, t->name, l);
        p += l;
        *p++ = (uint8_t)t->ndim;
        for (int d = 0; d < t->ndim; d++)
            p = sotu_put_le(p, (uint64_t)t->shape[d], 8);
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
    sotu_put_le(payload_size_at, z, 8);
    sotu_put_le(crc_at, sotu_crc32(base, (size_t)(crc_at - base)), 4);
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
    *v = sotu_get_le(r->p + r->pos, bytes);
    r->pos += (size_t)bytes;
    return SOTU_OK;
}


/* The header and records of src up to the payload: checked against expect
 * when it is not NULL, else collected into found (found->t malloc'ed,
 * packed). out gets the header fields (values NULL), *payload the declared
 * size, r->pos ends at the payload. */
static sotu_status parse_head(reader *r, const sotu_tensor_table *expect, sotu_module *out,
                              sotu_tensor_table *found, uint64_t *payload)
{
    reader rr = *r;
    const char *what = r->what;
    sotu_status st = SOTU_OK;
    uint64_t version = 0, index = 0, kind = 0, n_tensors = 0, counter = 0, values = 0, ln = 0;
    if (rr.n < SOTU_MODULE_MAGIC_LEN || memcmp(rr.p, SOTU_MODULE_MAGIC, SOTU_MODULE_MAGIC_LEN))
        return sotu_error(SOTU_ERR_DATA, "%s: not a sotu task module (bad magic)", what);
    rr.pos = SOTU_MODULE_MAGIC_LEN;
#define TAKE_R(bytes, dst, field)                                                                  \
    do {                                                                                           \
        if ((st = take(&rr, bytes, &(dst), field)) != SOTU_OK)                                     \
            return st;                                                                             \
    } while (0)
    TAKE_R(4, version, "the format version");
    if (version == 1)
        return sotu_error(SOTU_ERR_DATA, "%s: format version 1, written by an older sotu that "
                          "did not record the pretrained weights, training settings and task "
                          "file a module was trained with (this sotu reads version %u): re-run "
                          "the task", what, SOTU_MODULE_VERSION);
    if (version != SOTU_MODULE_VERSION)
        return sotu_error(SOTU_ERR_DATA, "%s: format version %llu, this sotu reads %u", what,
                          (unsigned long long)version, SOTU_MODULE_VERSION);
    TAKE_R(4, index, "the task index");
    TAKE_R(4, kind, "the kind");
    TAKE_R(4, n_tensors, "the tensor count");
    TAKE_R(8, counter, "the counter");
    TAKE_R(8, values, "the value count");
    TAKE_R(8, *payload, "the payload size");
    TAKE_R(2, ln, "the task name length");
    if (ln < 1 || ln >= SOTU_MODULE_TASK_NAME_MAX || rr.n - rr.pos < ln ||
        memchr(rr.p + rr.pos, 0, ln))
        return sotu_error(SOTU_ERR_DATA, "%s: task name of %llu bytes, expected 1..%d bytes "
                          "without NUL within the message", what, (unsigned long long)ln,
                          SOTU_MODULE_TASK_NAME_MAX - 1);
    memcpy(out->task_name, rr.p + rr.pos, ln);
    out->task_name[ln] = '\0';
    rr.pos += ln;
    if ((st = sotu_provenance_get(rr.p, rr.n, &rr.pos, &out->prov, what)) != SOTU_OK)
        return st;
    if ((int64_t)counter < 0)
        return sotu_error(SOTU_ERR_DATA, "%s: counter %lld, expected >= 0", what,
                          (long long)(int64_t)counter);
    if (expect && (n_tensors != (uint64_t)expect->n || values != (uint64_t)expect->total))
        return sotu_error(SOTU_ERR_DATA, "%s: %llu tensors of %llu values, the model expects %d "
                          "tensors of %zu values", what, (unsigned long long)n_tensors,
                          (unsigned long long)values, expect->n, expect->total);
    if (!expect) {
        if (n_tensors < 1 || n_tensors > SOTU_MODULE_TENSORS_MAX)
            return sotu_error(SOTU_ERR_DATA, "%s: %llu tensors, expected 1..%d", what,
                              (unsigned long long)n_tensors, SOTU_MODULE_TENSORS_MAX);
        *found = (sotu_tensor_table){0};
        found->t = calloc((size_t)n_tensors, sizeof *found->t);
        if (!found->t)
            return sotu_error(SOTU_ERR_NOMEM, "%s: a table of %llu tensors", what,
                              (unsigned long long)n_tensors);
    }
    for (int i = 0; i < (int)n_tensors; i++) {
        const sotu_tensor_info *t = expect ? &expect->t[i] : NULL;
        sotu_tensor_info *f = expect ? NULL : &found->t[i];
        uint64_t l = 0, ndim = 0, dim = 0;
        TAKE_R(2, l, "a tensor name length");
        if (rr.n - rr.pos < l)
            return sotu_error(SOTU_ERR_DATA, "%s: truncated in the name of tensor %d", what, i);
        if (t && (l != strlen(t->name) || memcmp(rr.p + rr.pos, t->name, l))) {
            int shown = (int)(l < 80 ? l : 0);
            return sotu_error(SOTU_ERR_DATA, "%s: tensor %d is '%.*s', the model expects '%s'",
                              what, i, shown, (const char *)rr.p + rr.pos, t->name);
        }
        if (f) {
            if (l < 1 || l >= SOTU_TENSOR_NAME_MAX || memchr(rr.p + rr.pos, 0, l))
                return sotu_error(SOTU_ERR_DATA, "%s: tensor %d has a name of %llu bytes, "
                                  "expected 1..%d without NUL", what, i, (unsigned long long)l,
                                  SOTU_TENSOR_NAME_MAX - 1);
            memcpy(f->name, rr.p + rr.pos, l);
        }
        rr.pos += l;
        TAKE_R(1, ndim, "a tensor rank");
        if (ndim < 1 || ndim > SOTU_TENSOR_NDIM_MAX || (t && ndim != (uint64_t)t->ndim))
            return sotu_error(SOTU_ERR_DATA, "%s: tensor %d has rank %llu, expected %s%d", what,
                              i, (unsigned long long)ndim, t ? "" : "1..",
                              t ? t->ndim : SOTU_TENSOR_NDIM_MAX);
        uint64_t count = 1;
        for (uint64_t d = 0; d < ndim; d++) {
            TAKE_R(8, dim, "a tensor shape");
            if (t && dim != (uint64_t)t->shape[d])
                return sotu_error(SOTU_ERR_DATA, "%s: tensor '%s' has another shape than the "
                                  "model's (dimension %llu is %llu, expected %lld)", what,
                                  t->name, (unsigned long long)d, (unsigned long long)dim,
                                  (long long)t->shape[d]);
            if (dim < 1 || dim > ((uint64_t)1 << 32) || count > ((uint64_t)1 << 32) / dim)
                return sotu_error(SOTU_ERR_DATA, "%s: tensor %d: dimension %llu of %llu "
                                  "elements is out of range", what, i, (unsigned long long)d,
                                  (unsigned long long)dim);
            count *= dim;
            if (f)
                f->shape[d] = (int64_t)dim;
        }
        if (f) {
            f->ndim = (int)ndim;
            f->count = (size_t)count;
            f->offset = found->total;
            found->total += (size_t)count;
            found->n = i + 1;
            if (found->total > ((size_t)1 << 32))
                return sotu_error(SOTU_ERR_DATA, "%s: more than 2^32 values", what);
        }
    }
    if (!expect && values != (uint64_t)found->total)
        return sotu_error(SOTU_ERR_DATA, "%s: %llu values declared, the tensors hold %zu", what,
                          (unsigned long long)values, found->total);
    uint64_t crc = 0;
    size_t header_end = rr.pos;
    TAKE_R(4, crc, "the header checksum");
#undef TAKE_R
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    if ((uint32_t)crc != sotu_crc32(rr.p, header_end))
        return sotu_error(SOTU_ERR_DATA, "%s: header checksum mismatch (damaged in transit or on "
                          "disk)", what);
#else
    (void)header_end; /* libFuzzer builds: mutations reach the payload checks behind the CRC */
#endif
    if (*payload != rr.n - rr.pos)
        return sotu_error(SOTU_ERR_DATA, "%s: payload of %llu bytes declared, %zu present%s",
                          what, (unsigned long long)*payload, rr.n - rr.pos,
                          *payload > rr.n - rr.pos ? " (truncated)" : " (trailing bytes)");
    out->task_index = (uint32_t)index;
    out->kind = (uint32_t)kind;
    out->counter = (int64_t)counter;
    *r = rr;
    return SOTU_OK;
}

sotu_status sotu_module_read_head(const void *src, size_t n, sotu_module *out,
                                  sotu_tensor_table *layout, size_t *payload_bytes,
                                  const char *what)
{
    memset(out, 0, sizeof *out);
    *layout = (sotu_tensor_table){0};
    reader r = {src, n, 0, what};
    uint64_t payload = 0;
    sotu_status st = parse_head(&r, NULL, out, layout, &payload);
    if (st != SOTU_OK) {
        free(layout->t);
        *layout = (sotu_tensor_table){0};
        memset(out, 0, sizeof *out);
        return st;
    }
    out->count = layout->total;
    *payload_bytes = (size_t)payload;
    return SOTU_OK;
}

sotu_status sotu_module_decode(const void *src, size_t n, const sotu_tensor_table *layout,
                               sotu_module *out, ZSTD_DCtx *dctx, const char *what)
{
    memset(out, 0, sizeof *out);
    reader r = {src, n, 0, what};
    sotu_status st = check_packed(layout, what);
    uint64_t payload = 0;
    if (st == SOTU_OK)
        st = parse_head(&r, layout, out, NULL, &payload);
    if (st != SOTU_OK)
        goto fail;
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
