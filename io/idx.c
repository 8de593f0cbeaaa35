#include "io/idx.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Reads up to n bytes; *got says how many arrived. A short count without a
 * zlib error is the clean end of the stream; a zlib error (corrupt deflate
 * data, bad CRC, input that ends inside the stream) is SOTU_ERR_DATA. */
static sotu_status gz_read_some(gzFile g, const char *path, void *dst, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        size_t want = n - *got;
        if (want > (1u << 30))
            want = 1u << 30;
        int r = gzread(g, (char *)dst + *got, (unsigned)want);
        if (r < 0 || (r == 0 && !gzeof(g))) {
            int errnum = 0;
            const char *msg = gzerror(g, &errnum);
            if (errnum == Z_ERRNO)
                return sotu_error(SOTU_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            return sotu_error(SOTU_ERR_DATA, "%s: corrupt gzip stream: %s", path, msg);
        }
        *got += (size_t)r;
        if ((size_t)r < want)
            break;
    }
    int errnum = 0;
    const char *msg = gzerror(g, &errnum);
    if (errnum != Z_OK)
        return sotu_error(SOTU_ERR_DATA, "%s: %s gzip stream: %s", path,
                          errnum == Z_BUF_ERROR ? "truncated" : "corrupt", msg);
    return SOTU_OK;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

sotu_status sotu_idx_read(const char *path, uint32_t expect_magic, sotu_idx *out)
{
    assert(expect_magic == SOTU_IDX_MAGIC_IMAGES || expect_magic == SOTU_IDX_MAGIC_LABELS);
    memset(out, 0, sizeof *out);
    sotu_status s = SOTU_OK;
    uint8_t *data = NULL;
    gzFile g = gzopen(path, "rb");
    if (!g)
        return sotu_error(SOTU_ERR_IO, "%s: cannot open: %s", path,
                          errno ? strerror(errno) : "out of memory");
    gzbuffer(g, 1 << 17);

    unsigned char head[16];
    int ndim = (int)(expect_magic & 0xff);
    size_t head_len = 4 + 4 * (size_t)ndim, got = 0;
    s = gz_read_some(g, path, head, 4, &got);
    if (s != SOTU_OK)
        goto cleanup;
    if (got < 4) {
        s = sotu_error(SOTU_ERR_DATA, "%s: %zu bytes, too short for an IDX header", path, got);
        goto cleanup;
    }
    uint32_t magic = be32(head);
    if (magic != expect_magic) {
        s = sotu_error(SOTU_ERR_DATA, "%s: IDX magic 0x%08x, expected 0x%08x (%s)", path, magic,
                       expect_magic,
                       expect_magic == SOTU_IDX_MAGIC_IMAGES ? "uint8 images [n,rows,cols]"
                                                             : "uint8 labels [n]");
        goto cleanup;
    }
    s = gz_read_some(g, path, head + 4, head_len - 4, &got);
    if (s != SOTU_OK)
        goto cleanup;
    if (got < head_len - 4) {
        s = sotu_error(SOTU_ERR_DATA, "%s: IDX header cut short: %zu of %zu bytes", path,
                       4 + got, head_len);
        goto cleanup;
    }

    uint32_t dims[3] = {0, 0, 0};
    for (int i = 0; i < ndim; i++)
        dims[i] = be32(head + 4 + 4 * i);
    if (dims[0] > SOTU_IDX_MAX_ITEMS) {
        s = sotu_error(SOTU_ERR_DATA, "%s: IDX item count %u exceeds the limit %u", path,
                       dims[0], SOTU_IDX_MAX_ITEMS);
        goto cleanup;
    }
    size_t item = 1;
    for (int i = 1; i < ndim; i++) {
        if (dims[i] == 0 || dims[i] > SOTU_IDX_MAX_SIDE) {
            s = sotu_error(SOTU_ERR_DATA, "%s: IDX dimension %d is %u, expected 1..%u", path,
                           i, dims[i], SOTU_IDX_MAX_SIDE);
            goto cleanup;
        }
        item *= dims[i];
    }
    /* item <= 4096^2 and n <= 1e8, so the product fits in 64 bits. */
    if ((uint64_t)dims[0] * item > SOTU_IDX_MAX_BYTES) {
        s = sotu_error(SOTU_ERR_DATA, "%s: IDX payload of %u x %zu bytes exceeds the limit %zu",
                       path, dims[0], item, SOTU_IDX_MAX_BYTES);
        goto cleanup;
    }
    /* The buffer grows as data arrives: a short file whose header claims
     * gigabytes costs about its own size, not the header's. */
    size_t size = (size_t)dims[0] * item, have = 0;
    size_t cap = size < ((size_t)1 << 20) ? size : (size_t)1 << 20;
    data = malloc(cap ? cap : 1);
    for (;;) {
        if (!data) {
            s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, cap);
            goto cleanup;
        }
        s = gz_read_some(g, path, data + have, cap - have, &got);
        if (s != SOTU_OK)
            goto cleanup;
        have += got;
        if (have < cap || cap == size)
            break;
        cap = cap > size / 2 ? size : 2 * cap;
        uint8_t *grown = realloc(data, cap);
        if (!grown)
            free(data);
        data = grown;
    }
    if (have < size) {
        s = sotu_error(SOTU_ERR_DATA, "%s: IDX data has %zu bytes, header says %zu (%u items)",
                       path, have, size, dims[0]);
        goto cleanup;
    }
    size_t extra = 0;
    for (;;) {
        unsigned char tail[4096];
        s = gz_read_some(g, path, tail, sizeof tail, &got);
        if (s != SOTU_OK)
            goto cleanup;
        extra += got;
        if (got < sizeof tail)
            break;
    }
    if (extra) {
        s = sotu_error(SOTU_ERR_DATA,
                       "%s: IDX data has %zu bytes, header says %zu (%zu trailing bytes)", path,
                       size + extra, size, extra);
        goto cleanup;
    }

    out->magic = magic;
    out->ndim = ndim;
    out->n = (int32_t)dims[0];
    out->rows = (int32_t)dims[1];
    out->cols = (int32_t)dims[2];
    out->data = data;
    out->size = size;
    data = NULL;
cleanup:
    free(data);
    gzclose(g);
    return s;
}

void sotu_idx_free(sotu_idx *x)
{
    if (!x)
        return;
    free(x->data);
    memset(x, 0, sizeof *x);
}
