/* IDX reader: good gzip and plain files, truncated and corrupt gzip, wrong
 * magic, data shorter or longer than the header, dimensions out of bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "io/idx.h"

static char dir[64];

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* An IDX byte image: header for dims, then `payload` bytes of pattern. */
static size_t make_idx(uint8_t *buf, uint32_t magic, int ndim, const uint32_t *dims,
                       size_t payload)
{
    put_be32(buf, magic);
    for (int i = 0; i < ndim; i++)
        put_be32(buf + 4 + 4 * i, dims[i]);
    size_t h = 4 + 4 * (size_t)ndim;
    for (size_t i = 0; i < payload; i++)
        buf[h + i] = (uint8_t)((i * 37 + 11) ^ (i >> 3));
    return h + payload;
}

static void write_gz(const char *path, const uint8_t *data, size_t n)
{
    gzFile g = gzopen(path, "wb9");
    CHECK(g != NULL);
    CHECK(gzwrite(g, data, (unsigned)n) == (int)n);
    CHECK(gzclose(g) == Z_OK);
}

static void write_raw(const char *path, const uint8_t *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(data, 1, n, f) == n);
    fclose(f);
}

static uint8_t *read_raw(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    uint8_t *b = malloc(*n);
    CHECK(fread(b, 1, *n, f) == *n);
    fclose(f);
    return b;
}

static void path_of(char *dst, size_t cap, const char *name)
{
    snprintf(dst, cap, "%s/%s", dir, name);
}

/* Expects a DATA failure whose message names the file and contains want. */
static void expect_data_error(const char *path, uint32_t magic, const char *want)
{
    sotu_idx x;
    sotu_status s = sotu_idx_read(path, magic, &x);
    const char *msg = sotu_last_error();
    CHECK_MSG(s == SOTU_ERR_DATA, "%s: status %d (%s)", path, (int)s, msg);
    CHECK_MSG(strstr(msg, path) != NULL, "message does not name the file: %s", msg);
    CHECK_MSG(!want || strstr(msg, want) != NULL, "message lacks '%s': %s", want, msg);
    CHECK(x.data == NULL && x.n == 0);
}

static void test_good(void)
{
    static uint8_t buf[1 << 16];
    uint32_t dims[3] = {7, 12, 9};
    size_t n = make_idx(buf, SOTU_IDX_MAGIC_IMAGES, 3, dims, 7 * 12 * 9);
    char path[128];
    path_of(path, sizeof path, "good-images.gz");
    write_gz(path, buf, n);
    sotu_idx x;
    CHECK(sotu_idx_read(path, SOTU_IDX_MAGIC_IMAGES, &x) == SOTU_OK);
    CHECK(x.n == 7 && x.rows == 12 && x.cols == 9 && x.ndim == 3 && x.size == 7 * 12 * 9);
    CHECK(x.data && memcmp(x.data, buf + 16, x.size) == 0);
    sotu_idx_free(&x);
    sotu_idx_free(&x);
    sotu_idx_free(NULL);

    uint32_t ldims[1] = {300};
    n = make_idx(buf, SOTU_IDX_MAGIC_LABELS, 1, ldims, 300);
    path_of(path, sizeof path, "good-labels.gz");
    write_gz(path, buf, n);
    CHECK(sotu_idx_read(path, SOTU_IDX_MAGIC_LABELS, &x) == SOTU_OK);
    CHECK(x.n == 300 && x.ndim == 1 && x.rows == 0 && memcmp(x.data, buf + 8, 300) == 0);
    sotu_idx_free(&x);

    /* An uncompressed file reads the same (documented). */
    path_of(path, sizeof path, "plain-labels");
    write_raw(path, buf, n);
    CHECK(sotu_idx_read(path, SOTU_IDX_MAGIC_LABELS, &x) == SOTU_OK);
    CHECK(x.n == 300 && memcmp(x.data, buf + 8, 300) == 0);
    sotu_idx_free(&x);

    /* Zero items is a valid, empty file. */
    uint32_t zdims[3] = {0, 28, 28};
    n = make_idx(buf, SOTU_IDX_MAGIC_IMAGES, 3, zdims, 0);
    path_of(path, sizeof path, "empty-images.gz");
    write_gz(path, buf, n);
    CHECK(sotu_idx_read(path, SOTU_IDX_MAGIC_IMAGES, &x) == SOTU_OK);
    CHECK(x.n == 0 && x.size == 0);
    sotu_idx_free(&x);
}

static void test_bad_gzip(void)
{
    static uint8_t buf[1 << 16];
    uint32_t dims[3] = {40, 28, 28};
    size_t n = make_idx(buf, SOTU_IDX_MAGIC_IMAGES, 3, dims, 40 * 28 * 28);
    char good[128], path[128];
    path_of(good, sizeof good, "src-images.gz");
    write_gz(good, buf, n);
    size_t gn;
    uint8_t *gz = read_raw(good, &gn);
    CHECK(gn > 64);

    /* Cut in the middle of the deflate stream, and just before the trailer. */
    path_of(path, sizeof path, "trunc-half.gz");
    write_raw(path, gz, gn / 2);
    expect_data_error(path, SOTU_IDX_MAGIC_IMAGES, NULL);
    path_of(path, sizeof path, "trunc-trailer.gz");
    write_raw(path, gz, gn - 4);
    expect_data_error(path, SOTU_IDX_MAGIC_IMAGES, NULL);
    path_of(path, sizeof path, "trunc-header.gz");
    write_raw(path, gz, 6);
    expect_data_error(path, SOTU_IDX_MAGIC_IMAGES, NULL);

    /* Flipped bytes inside the deflate data, and a wrong CRC. */
    uint8_t *bad = malloc(gn);
    memcpy(bad, gz, gn);
    for (size_t i = gn / 3; i < gn / 3 + 8; i++)
        bad[i] ^= 0x5a;
    path_of(path, sizeof path, "corrupt-deflate.gz");
    write_raw(path, bad, gn);
    expect_data_error(path, SOTU_IDX_MAGIC_IMAGES, NULL);
    memcpy(bad, gz, gn);
    bad[gn - 8] ^= 0xff;
    path_of(path, sizeof path, "corrupt-crc.gz");
    write_raw(path, bad, gn);
    expect_data_error(path, SOTU_IDX_MAGIC_IMAGES, "gzip");
    free(bad);
    free(gz);

    path_of(path, sizeof path, "empty.gz");
    write_raw(path, buf, 0);
    expect_data_error(path, SOTU_IDX_MAGIC_IMAGES, "too short");

    sotu_idx x;
    path_of(path, sizeof path, "does-not-exist.gz");
    CHECK(sotu_idx_read(path, SOTU_IDX_MAGIC_IMAGES, &x) == SOTU_ERR_IO);
    CHECK(strstr(sotu_last_error(), path) != NULL);
}

static void test_bad_header(void)
{
    static uint8_t buf[1 << 16];
    char path[128];

    uint32_t ldims[1] = {10};
    size_t n = make_idx(buf, SOTU_IDX_MAGIC_LABELS, 1, ldims, 10);
    path_of(path, sizeof path, "labels-as-images.gz");
    write_gz(path, buf, n);
    expect_data_error(path, SOTU_IDX_MAGIC_IMAGES, "0x00000801");

    uint32_t dims[3] = {5, 6, 6};
    n = make_idx(buf, 0x00000d03u, 3, dims, 5 * 36 * 4); /* float32 images */
    path_of(path, sizeof path, "float-images.gz");
    write_gz(path, buf, n);
    expect_data_error(path, SOTU_IDX_MAGIC_IMAGES, "magic");

    /* Header says 5 images of 6x6 = 180 bytes; give 144 and 216. */
    n = make_idx(buf, SOTU_IDX_MAGIC_IMAGES, 3, dims, 4 * 36);
    path_of(path, sizeof path, "short.gz");
    write_gz(path, buf, n);
    expect_data_error(path, SOTU_IDX_MAGIC_IMAGES, "144");
    expect_data_error(path, SOTU_IDX_MAGIC_IMAGES, "180");
    n = make_idx(buf, SOTU_IDX_MAGIC_IMAGES, 3, dims, 6 * 36);
    path_of(path, sizeof path, "long.gz");
    write_gz(path, buf, n);
    expect_data_error(path, SOTU_IDX_MAGIC_IMAGES, "216");
    expect_data_error(path, SOTU_IDX_MAGIC_IMAGES, "180");
    ldims[0] = 10;
    n = make_idx(buf, SOTU_IDX_MAGIC_LABELS, 1, ldims, 11);
    path_of(path, sizeof path, "labels-long.gz");
    write_gz(path, buf, n);
    expect_data_error(path, SOTU_IDX_MAGIC_LABELS, "1 trailing");

    /* Header cut inside the dimensions. */
    make_idx(buf, SOTU_IDX_MAGIC_IMAGES, 3, dims, 0);
    path_of(path, sizeof path, "cut-dims.gz");
    write_gz(path, buf, 9);
    expect_data_error(path, SOTU_IDX_MAGIC_IMAGES, "header");

    /* Dimensions out of bounds are refused before any allocation. */
    uint32_t huge[3] = {4000000000u, 28, 28};
    n = make_idx(buf, SOTU_IDX_MAGIC_IMAGES, 3, huge, 0);
    path_of(path, sizeof path, "huge-n.gz");
    write_gz(path, buf, n);
    expect_data_error(path, SOTU_IDX_MAGIC_IMAGES, "limit");
    uint32_t wide[3] = {10, 0xffffffffu, 0xffffffffu};
    n = make_idx(buf, SOTU_IDX_MAGIC_IMAGES, 3, wide, 0);
    path_of(path, sizeof path, "huge-side.gz");
    write_gz(path, buf, n);
    expect_data_error(path, SOTU_IDX_MAGIC_IMAGES, "dimension");
    uint32_t big[3] = {90000000u, 100, 100}; /* each bound holds, the product does not */
    n = make_idx(buf, SOTU_IDX_MAGIC_IMAGES, 3, big, 0);
    path_of(path, sizeof path, "huge-product.gz");
    write_gz(path, buf, n);
    expect_data_error(path, SOTU_IDX_MAGIC_IMAGES, "limit");
    uint32_t zero[3] = {3, 0, 28};
    n = make_idx(buf, SOTU_IDX_MAGIC_IMAGES, 3, zero, 0);
    path_of(path, sizeof path, "zero-rows.gz");
    write_gz(path, buf, n);
    expect_data_error(path, SOTU_IDX_MAGIC_IMAGES, "dimension");
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sotu-test-idx-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_good();
    test_bad_gzip();
    test_bad_header();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_finish("test_idx");
}
