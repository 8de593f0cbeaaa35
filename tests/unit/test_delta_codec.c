/* The .sotud codec: round trips (f32 exact, bf16 within rounding, DENSE and
 * INDEXED tensors), and every corrupt input rejected with a message naming
 * the input and the problem: bad magic, version, dtype, mask kind, keep,
 * model mismatch, truncation at every byte, checksum, tampered kept count,
 * trailing bytes; plus the saved corrupt corpus in tests/data/delta.
 *
 *   test_delta_codec                    run the tests
 *   test_delta_codec --write-corpus DIR regenerate the saved corpus */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check.h"
#include "common/threads.h"
#include "common/status.h"
#include "delta_fixture.h"
#include "io/delta.h"
#include "io/fsutil.h"
#include "worker/delta_extract.h"

static const uint64_t SEED = 20240611;

typedef struct {
    sotu_tensor_table tab;
    float *theta0, *thetat;
} fixture;

static fixture make_fixture(int width)
{
    fixture f = {fixture_table(width), NULL, NULL};
    f.theta0 = malloc(f.tab.total * sizeof(float));
    f.thetat = malloc(f.tab.total * sizeof(float));
    fixture_perturb(&f.tab, NULL, f.theta0, SEED, 0.02f);
    fixture_perturb(&f.tab, f.theta0, f.thetat, SEED + 1, 1e-3f);
    return f;
}

static void free_fixture(fixture *f)
{
    free(f->tab.t);
    free(f->theta0);
    free(f->thetat);
}

static sotu_delta extract(const fixture *f, double keep, sotu_delta_dtype dtype)
{
    sotu_extract_opts o = {.task_index = 3, .task_name = "t03-shirts", .seed = SEED,
                           .keep = keep, .rescale = true, .dtype = dtype,
                           .prov = fixture_provenance()};
    sotu_delta d;
    sotu_status s = sotu_delta_extract(&f->tab, f->theta0, f->thetat, &o, &d);
    CHECK_MSG(s == SOTU_OK, "%s", sotu_last_error());
    return d;
}

static uint8_t *encode(const sotu_delta *d, size_t *n)
{
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    size_t cap = sotu_delta_encode_bound(d);
    uint8_t *buf = malloc(cap);
    sotu_status s = sotu_delta_encode(buf, cap, n, d, cctx, 3);
    CHECK_MSG(s == SOTU_OK, "%s", sotu_last_error());
    ZSTD_freeCCtx(cctx);
    return buf;
}

/* Decodes buf; returns the status, leaves the message in sotu_last_error. */
static sotu_status decode(const uint8_t *buf, size_t n, const sotu_tensor_table *model,
                          sotu_delta *out)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    sotu_status s = sotu_delta_decode(buf, n, model, out, dctx, "message from rank 3");
    ZSTD_freeDCtx(dctx);
    return s;
}

static void expect_reject(const uint8_t *buf, size_t n, const sotu_tensor_table *model,
                          const char *needle, const char *label)
{
    sotu_delta d;
    sotu_status s = decode(buf, n, model, &d);
    CHECK_MSG(s == SOTU_ERR_DATA, "%s: status %d", label, (int)s);
    CHECK_MSG(strstr(sotu_last_error(), "message from rank 3") != NULL, "%s: '%s'", label,
              sotu_last_error());
    CHECK_MSG(strstr(sotu_last_error(), needle) != NULL, "%s: '%s' lacks '%s'", label,
              sotu_last_error(), needle);
    CHECK(d.tensors == NULL && d.n_tensors == 0);
}

static void same_delta(const sotu_delta *a, const sotu_delta *b, double rel_tol)
{
    CHECK(a->task_index == b->task_index && !strcmp(a->task_name, b->task_name));
    CHECK(a->seed == b->seed && a->keep == b->keep && a->flags == b->flags);
    CHECK(a->dtype == b->dtype && a->n_tensors == b->n_tensors);
    for (int i = 0; i < a->n_tensors && i < b->n_tensors; i++) {
        const sotu_delta_tensor *x = &a->tensors[i], *y = &b->tensors[i];
        CHECK_MSG(!strcmp(x->name, y->name) && x->table_index == y->table_index &&
                      x->ndim == y->ndim && x->count == y->count && x->mask == y->mask &&
                      x->kept == y->kept,
                  "tensor %s", x->name);
        if (x->kept != y->kept)
            continue;
        int bad = 0;
        for (uint64_t m = 0; m < x->kept; m++) {
            double ex = x->values[m], ey = y->values[m];
            if (rel_tol == 0 ? memcmp(&x->values[m], &y->values[m], 4) != 0
                             : fabs(ex - ey) > rel_tol * fabs(ex))
                bad++;
            if (x->indices && y->indices && x->indices[m] != y->indices[m])
                bad++;
        }
        CHECK_MSG(bad == 0, "tensor %s: %d values or indices differ", x->name, bad);
    }
}

static void test_round_trip(void)
{
    fixture f = make_fixture(16);
    sotu_delta d = extract(&f, 0.25, SOTU_DELTA_F32);
    CHECK(d.n_tensors == f.tab.n);
    CHECK(d.tensors[d.n_tensors - 1].mask == SOTU_MASK_DENSE);
    CHECK(d.tensors[0].mask == SOTU_MASK_SEEDED);
    size_t n;
    uint8_t *buf = encode(&d, &n);
    sotu_delta back;
    CHECK_MSG(decode(buf, n, &f.tab, &back) == SOTU_OK, "%s", sotu_last_error());
    same_delta(&d, &back, 0);
    sotu_delta nomodel;
    CHECK_MSG(decode(buf, n, NULL, &nomodel) == SOTU_OK, "%s", sotu_last_error());
    same_delta(&d, &nomodel, 0);
    uint64_t kept = 0, total = 0;
    for (int i = 0; i < d.n_tensors; i++)
        if (d.tensors[i].mask == SOTU_MASK_SEEDED)
            kept += d.tensors[i].kept, total += d.tensors[i].count;
    printf("f32 round trip: %zu bytes for %llu kept of %llu backbone values\n", n,
           (unsigned long long)kept, (unsigned long long)total);
    sotu_delta_free(&back);
    sotu_delta_free(&nomodel);
    free(buf);

    d.dtype = SOTU_DELTA_BF16;
    buf = encode(&d, &n);
    CHECK_MSG(decode(buf, n, &f.tab, &back) == SOTU_OK, "%s", sotu_last_error());
    same_delta(&d, &back, 0x1.0p-8);
    printf("bf16 round trip: %zu bytes\n", n);
    sotu_delta_free(&back);
    free(buf);

    /* A file through the atomic writer. */
    const char *path = "test_delta_codec.sotud";
    CHECK_MSG(sotu_delta_write_file(path, &d, 3) == SOTU_OK, "%s", sotu_last_error());
    CHECK_MSG(sotu_delta_read_file(path, &f.tab, &back) == SOTU_OK, "%s", sotu_last_error());
    same_delta(&d, &back, 0x1.0p-8);
    sotu_delta_free(&back);
    remove(path);

    sotu_delta_free(&d);
    sotu_delta_free(&d); /* a freed delta is zeroed: freeing twice is harmless */
    free_fixture(&f);
}

/* Larger tensors: payloads whose byte planes end their own zstd blocks
 * (>= 256 values) and planes longer than one zstd block (128 KiB), at keep
 * 1, 0.3 and 0.001 (where small tensors keep nothing). */
static void test_round_trip_large(void)
{
    fixture f = make_fixture(192);
    const double keeps[] = {1.0, 0.3, 0.001};
    for (int k = 0; k < 3; k++)
        for (int dt = 0; dt < 2; dt++) {
            sotu_delta d = extract(&f, keeps[k], dt ? SOTU_DELTA_BF16 : SOTU_DELTA_F32);
            size_t n;
            uint8_t *buf = encode(&d, &n);
            sotu_delta back;
            CHECK_MSG(decode(buf, n, &f.tab, &back) == SOTU_OK, "%s", sotu_last_error());
            same_delta(&d, &back, dt ? 0x1.0p-8 : 0);
            uint64_t kept = 0, empty = 0;
            for (int i = 0; i < d.n_tensors; i++)
                kept += d.tensors[i].kept, empty += d.tensors[i].kept == 0;
            printf("%s keep %g: %llu values (%llu empty tensors) in %zu bytes, %.3f per value\n",
                   dt ? "bf16" : "f32", keeps[k], (unsigned long long)kept,
                   (unsigned long long)empty, n, (double)n / (double)kept);
            if (k == 2)
                CHECK(empty > 0);
            sotu_delta_free(&back);
            sotu_delta_free(&d);
            free(buf);
        }
    free_fixture(&f);
}

/* Tensors of several 2^20-element mask parts decode to the same indices
 * and values on 1, 2 and 3 threads; a kept count one short is caught on
 * each. */
static void test_decode_threads(void)
{
    sotu_tensor_table tab = fixture_table(600); /* fc1, fc2: 1.44 M elements */
    float *t0 = malloc(tab.total * sizeof(float)), *t1 = malloc(tab.total * sizeof(float));
    fixture_perturb(&tab, NULL, t0, SEED, 0.02f);
    fixture_perturb(&tab, t0, t1, SEED + 1, 1e-3f);
    sotu_extract_opts o = {.task_index = 7, .task_name = "t07-big", .seed = SEED, .keep = 0.05,
                           .dtype = SOTU_DELTA_F32, .prov = fixture_provenance()};
    sotu_delta d;
    CHECK(sotu_delta_extract(&tab, t0, t1, &o, &d) == SOTU_OK);
    size_t n;
    uint8_t *buf = encode(&d, &n);
    for (int threads = 1; threads <= 3; threads++) {
        sotu_threads_set(threads);
        sotu_delta back;
        CHECK_MSG(decode(buf, n, &tab, &back) == SOTU_OK, "%s", sotu_last_error());
        same_delta(&d, &back, 0);
        sotu_delta_free(&back);
    }
    int j = sotu_tensor_find(&tab, "blocks.0.mlp.fc2.weight");
    sotu_delta_tensor *t = NULL;
    for (int i = 0; i < d.n_tensors; i++)
        if (d.tensors[i].table_index == (uint32_t)j)
            t = &d.tensors[i];
    CHECK(t != NULL && t->count > (1u << 20));
    if (t) {
        t->kept--;
        free(buf);
        buf = encode(&d, &n);
        for (int threads = 1; threads <= 3; threads++) {
            sotu_threads_set(threads);
            expect_reject(buf, n, &tab, "blocks.0.mlp.fc2.weight': kept count", "kept - 1");
        }
        t->kept++;
    }
    sotu_threads_set(1);
    printf("decode on 1-3 threads: %d tensors, same indices and values\n", d.n_tensors);
    free(buf);
    sotu_delta_free(&d);
    free(t0);
    free(t1);
    free(tab.t);
}

static void test_bf16_rounding(void)
{
    CHECK(sotu_bf16_from_f32(1.0f) == 0x3f80);
    /* 1 + 2^-8 is exactly halfway between bf16 1 and 1 + 2^-7: ties to even (1). */
    CHECK(sotu_bf16_from_f32(1.0f + 0x1.0p-8f) == 0x3f80);
    CHECK(sotu_bf16_from_f32(1.0f + 0x1.8p-8f) == 0x3f81);
    CHECK(sotu_bf16_from_f32(1.0f + 0x1.0p-7f + 0x1.0p-8f) == 0x3f82);
    CHECK(sotu_bf16_to_f32(sotu_bf16_from_f32(-2.5f)) == -2.5f);
    CHECK(isnan(sotu_bf16_to_f32(sotu_bf16_from_f32(NAN))));
    CHECK(isinf(sotu_bf16_to_f32(sotu_bf16_from_f32(INFINITY))));
}

static void test_indexed(void)
{
    fixture f = make_fixture(8);
    sotu_delta d = extract(&f, 0.5, SOTU_DELTA_F32);
    /* Replace the fc1 tensor's SEEDED mask by a top-k style index list. */
    sotu_delta_tensor *t = NULL;
    for (int i = 0; i < d.n_tensors; i++)
        if (!strcmp(d.tensors[i].name, "blocks.0.mlp.fc1.weight"))
            t = &d.tensors[i];
    CHECK(t != NULL);
    if (!t)
        return;
    uint64_t k = 0;
    for (uint64_t i = 0; i < t->count; i += 1 + (i * 7) % 300)
        t->indices[k] = i, t->values[k] = (float)i * 0.5f - 3.0f, k++;
    t->indices[k] = t->count - 1, t->values[k] = 1.0f, k++;
    t->kept = k;
    t->mask = SOTU_MASK_INDEXED;
    size_t n;
    uint8_t *buf = encode(&d, &n);
    sotu_delta back;
    CHECK_MSG(decode(buf, n, &f.tab, &back) == SOTU_OK, "%s", sotu_last_error());
    same_delta(&d, &back, 0);
    sotu_delta_free(&back);
    free(buf);

    /* The encoder refuses indices that do not increase. */
    t->indices[1] = t->indices[0];
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    size_t cap = sotu_delta_encode_bound(&d);
    buf = malloc(cap);
    CHECK(sotu_delta_encode(buf, cap, &n, &d, cctx, 3) == SOTU_ERR_DATA);
    CHECK(strstr(sotu_last_error(), "blocks.0.mlp.fc1.weight") != NULL);
    ZSTD_freeCCtx(cctx);
    free(buf);
    sotu_delta_free(&d);
    free_fixture(&f);
}

/* Byte offsets of the header fields (io/delta.h). */
enum { OFF_VERSION = 8, OFF_FLAGS = 12, OFF_DTYPE = 20, OFF_KEEP = 32, OFF_CRC_AT = 44,
       OFF_NAME_LEN = 48 };

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t x = 0;
    for (int b = 0; b < bytes; b++)
        x |= (uint64_t)p[b] << (8 * b);
    return x;
}

static void put_le(uint8_t *p, uint64_t x, int bytes)
{
    for (int b = 0; b < bytes; b++)
        p[b] = (uint8_t)(x >> (8 * b));
}

/* Recomputes the header checksum after a test changed a field behind it. */
static void reseal(uint8_t *buf)
{
    size_t h = (size_t)get_le(buf + OFF_CRC_AT, 4);
    put_le(buf + h, crc32(crc32(0L, Z_NULL, 0), buf, (uInt)h), 4);
}

/* The first record's fields (names short, table index < 128: one byte each). */
typedef struct {
    size_t mask_kind, shape; /* offsets of the mask kind byte and the first shape varint */
    int ndim;
} record_at;

/* Offset of the provenance block (after the task name) and of the first
 * record (after the block). */
static size_t provenance_at(const uint8_t *buf)
{
    return 50 + (size_t)get_le(buf + OFF_NAME_LEN, 2);
}

static size_t records_at(const uint8_t *buf)
{
    size_t pos = provenance_at(buf);
    sotu_provenance p;
    CHECK(sotu_provenance_get(buf, (size_t)get_le(buf + OFF_CRC_AT, 4), &pos, &p, "fixture") ==
          SOTU_OK);
    return pos;
}

static record_at first_record(const uint8_t *buf)
{
    size_t rec = records_at(buf);
    size_t rest = buf[rec + 1];
    record_at r = {.mask_kind = rec + 2 + rest + 2, .ndim = buf[rec + 2 + rest + 1]};
    r.shape = r.mask_kind + 1;
    return r;
}

/* Versions 1 to 3 (older masks) and 4 (no provenance) are refused by name:
 * the saved version-1 to -4 files of the width-2 fixture. */
static void test_versions(void)
{
    fixture f = make_fixture(2);
    const char *src = getenv("SOTU_SOURCE_DIR");
    for (int v = 1; v <= 4; v++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tests/data/delta/old_v%d.sotud",
                 src ? src : SOTU_SOURCE_DIR_FALLBACK, v);
        sotu_delta old;
        CHECK(sotu_delta_read_file(path, &f.tab, &old) == SOTU_ERR_DATA);
        char want[64];
        snprintf(want, sizeof want, "format version %d, written by an older sotu", v);
        CHECK_MSG(strstr(sotu_last_error(), want) != NULL, "%s", sotu_last_error());
    }
    CHECK(strstr(sotu_last_error(), "did not record the pretrained weights") != NULL);
    printf("versions 1 to 4 refused by name\n");
    free_fixture(&f);
}

/* The provenance block round-trips, and sits under the header checksum:
 * every byte of it flipped is refused as a damaged header. */
static void test_provenance_header(void)
{
    fixture f = make_fixture(2);
    sotu_delta d = extract(&f, 0.5, SOTU_DELTA_F32);
    const sotu_provenance *want = fixture_provenance();
    size_t n;
    uint8_t *buf = encode(&d, &n);
    sotu_delta back;
    CHECK(decode(buf, n, &f.tab, &back) == SOTU_OK);
    CHECK(back.version == 5);
    CHECK(back.prov.theta0 == want->theta0 && back.prov.task_file == want->task_file);
    CHECK(back.prov.config_hash == want->config_hash && !strcmp(back.prov.config, want->config));
    CHECK(!strcmp(back.prov.pretrained, want->pretrained));
    CHECK(!strcmp(back.prov.version, "0.1.0") && !strcmp(back.prov.commit, "fixture"));
    sotu_delta_free(&back);
    size_t from = provenance_at(buf), to = records_at(buf);
    CHECK(to - from == sotu_provenance_size(want));
    int accepted = 0;
    for (size_t i = from; i < to; i++) {
        buf[i] ^= 0x40;
        if (decode(buf, n, &f.tab, &back) == SOTU_OK) {
            accepted++;
            sotu_delta_free(&back);
        } else {
            CHECK_MSG(strstr(sotu_last_error(), "header checksum"), "byte %zu: %s", i,
                      sotu_last_error());
        }
        buf[i] ^= 0x40;
    }
    CHECK_MSG(accepted == 0, "%d provenance byte flips accepted", accepted);
    /* An encoder refuses a delta without provenance. */
    sotu_provenance saved = d.prov;
    memset(&d.prov, 0, sizeof d.prov);
    size_t cap = sotu_delta_encode_bound(&d), m = 0;
    uint8_t *out = malloc(cap);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    CHECK(sotu_delta_encode(out, cap, &m, &d, cctx, 3) == SOTU_ERR_DATA);
    CHECK(strstr(sotu_last_error(), "provenance") != NULL);
    d.prov = saved;
    ZSTD_freeCCtx(cctx);
    free(out);
    printf("provenance: %zu bytes, round trip and checksum over every byte\n", to - from);
    free(buf);
    sotu_delta_free(&d);
    free_fixture(&f);
}

/* buf[0, n) with the bytes [at, at + len) replaced by repl[0, rlen): H
 * moves with them (the change must lie before it) and the header is
 * resealed. *out_n gets the new size. */
static uint8_t *splice(const uint8_t *buf, size_t n, size_t at, size_t len, const uint8_t *repl,
                       size_t rlen, size_t *out_n)
{
    uint8_t *o = malloc(n - len + rlen + 16);
    memcpy(o, buf, at);
    memcpy(o + at, repl, rlen);
    memcpy(o + at + rlen, buf + at + len, n - at - len);
    put_le(o + OFF_CRC_AT, get_le(buf + OFF_CRC_AT, 4) - len + rlen, 4);
    reseal(o);
    *out_n = n - len + rlen;
    return o;
}

/* A small message (width 2) and its corrupt variants; with corpus_dir
 * non-NULL the variants are also written there. */
static void test_corrupt(const char *corpus_dir)
{
    fixture f = make_fixture(2);
    sotu_delta d = extract(&f, 0.5, SOTU_DELTA_F32);
    size_t n;
    uint8_t *good = encode(&d, &n);
    uint8_t *bad = malloc(n + 16);
    printf("corrupt cases on a message of %zu bytes\n", n);

    struct {
        const char *file, *needle;
        size_t len;
    } cases[32];
    int n_cases = 0;
#define VARIANT(file_, needle_, len_, ...)                                                        \
    do {                                                                                          \
        memcpy(bad, good, n);                                                                     \
        __VA_ARGS__;                                                                              \
        expect_reject(bad, len_, &f.tab, needle_, file_);                                         \
        if (corpus_dir) {                                                                         \
            char p[1024];                                                                         \
            snprintf(p, sizeof p, "%s/%s", corpus_dir, file_);                                    \
            CHECK(sotu_write_file_atomic(p, bad, len_) == SOTU_OK);                               \
        }                                                                                         \
        cases[n_cases].file = file_, cases[n_cases].needle = needle_, cases[n_cases].len = len_;  \
        n_cases++;                                                                                \
    } while (0)

    VARIANT("bad_magic.sotud", "bad magic", n, bad[1] = 'X');
    VARIANT("bad_version.sotud", "format version 6", n, put_le(bad + OFF_VERSION, 6, 4));
    VARIANT("version_zero.sotud", "format version 0", n, put_le(bad + OFF_VERSION, 0, 4));
    VARIANT("old_version.sotud", "written by an older sotu", n, put_le(bad + OFF_VERSION, 2, 4));
    VARIANT("header_checksum.sotud", "header checksum", n, bad[OFF_NAME_LEN + 3] ^= 1);
    VARIANT("bad_crc_offset.sotud", "checksum is at byte", n, put_le(bad + OFF_CRC_AT, n, 4));
    /* Fields behind the checksum: changed, then resealed, so the field's
     * own check is what rejects them. */
    VARIANT("bad_flags.sotud", "flags", n, put_le(bad + OFF_FLAGS, 6, 4); reseal(bad));
    VARIANT("bad_dtype.sotud", "dtype", n, put_le(bad + OFF_DTYPE, 7, 4); reseal(bad));
    double zero = 0.0, big = 1.5, nan = NAN;
    uint64_t bits;
    memcpy(&bits, &zero, 8);
    VARIANT("keep_zero.sotud", "keep 0", n, put_le(bad + OFF_KEEP, bits, 8); reseal(bad));
    memcpy(&bits, &big, 8);
    VARIANT("keep_above_one.sotud", "keep 1.5", n, put_le(bad + OFF_KEEP, bits, 8); reseal(bad));
    memcpy(&bits, &nan, 8);
    VARIANT("keep_nan.sotud", "expected (0, 1]", n, put_le(bad + OFF_KEEP, bits, 8); reseal(bad));
    /* The provenance block's own checks, behind the checksum. */
    size_t prov = provenance_at(good);
    VARIANT("prov_config_hash.sotud", "does not match its text", n, bad[prov + 26] ^= 1;
            reseal(bad));
    VARIANT("prov_config_len.sotud", "provenance training configuration of 0 bytes", n,
            put_le(bad + prov + 24, 0, 2); reseal(bad));
    record_at rec = first_record(good);
    VARIANT("bad_mask_kind.sotud", "mask kind 9", n, bad[rec.mask_kind] = 9; reseal(bad));
    VARIANT("checksum.sotud", "checksum", n, bad[n - 3] ^= 0x10);
    VARIANT("truncated.sotud", "truncated", n - 7, (void)0);
    VARIANT("trailing.sotud", "after the last", n + 1, bad[n] = 0);
    /* keep changed to a value with a different mask: every kept count is off. */
    double other = 0.4;
    memcpy(&bits, &other, 8);
    VARIANT("mask_keep_changed.sotud", "kept count", n, put_le(bad + OFF_KEEP, bits, 8);
            reseal(bad));
    /* A SEEDED tensor past 2^32 elements (kept indices are 32-bit): the
     * first record (cls_token [1, 1, 2]) claims [1, 1, 2^33]. */
    {
        CHECK(rec.ndim == 3 && good[rec.shape + 2] == 2);
        const uint8_t big_dim[5] = {0x80, 0x80, 0x80, 0x80, 0x20}; /* 2^33 */
        size_t n2;
        uint8_t *b2 = splice(good, n, rec.shape + 2, 1, big_dim, 5, &n2);
        expect_reject(b2, n2, &f.tab, "at most 4294967296", "sparse_too_big.sotud");
        if (corpus_dir) {
            char p[1024];
            snprintf(p, sizeof p, "%s/sparse_too_big.sotud", corpus_dir);
            CHECK(sotu_write_file_atomic(p, b2, n2) == SOTU_OK);
        }
        free(b2);
    }

    /* Truncation at every byte offset fails cleanly. */
    int ok_prefix = 0;
    for (size_t len = 0; len < n; len++) {
        sotu_delta out;
        sotu_status s = decode(good, len, &f.tab, &out);
        if (s != SOTU_ERR_DATA) {
            ok_prefix++;
            sotu_delta_free(&out);
        }
    }
    CHECK_MSG(ok_prefix == 0, "%d truncated prefixes were accepted", ok_prefix);

    /* A kept count that disagrees with the regenerated mask: drop one value,
     * and add one. */
    sotu_delta_tensor *t = &d.tensors[3];
    CHECK(t->mask == SOTU_MASK_SEEDED && t->kept > 2);
    t->kept--;
    size_t n2;
    uint8_t *tampered = encode(&d, &n2);
    expect_reject(tampered, n2, &f.tab, "kept count", "kept count minus one");
    CHECK(strstr(sotu_last_error(), t->name) != NULL);
    if (corpus_dir) {
        char p[1024];
        snprintf(p, sizeof p, "%s/kept_count.sotud", corpus_dir);
        CHECK(sotu_write_file_atomic(p, tampered, n2) == SOTU_OK);
    }
    cases[n_cases].file = "kept_count.sotud", cases[n_cases].needle = "kept count";
    cases[n_cases++].len = n2;
    free(tampered);
    t->kept += 2;
    float *v = realloc(t->values, t->kept * sizeof(float));
    t->values = v;
    v[t->kept - 1] = 0.5f;
    tampered = encode(&d, &n2);
    expect_reject(tampered, n2, &f.tab, "kept count", "kept count plus one");
    free(tampered);
    t->kept--;

    /* Model mismatches: a shape, a missing tensor, a different index. */
    sotu_tensor_table other_tab = fixture_table(2);
    other_tab.t[3].shape[0] = 5;
    expect_reject(good, n, &other_tab, "shape [6,2], the model has [5,2]", "shape");
    CHECK(strstr(sotu_last_error(), "blocks.0.attn.qkv.weight") != NULL);
    other_tab.t[3].shape[0] = 6;
    strcpy(other_tab.t[5].name, "blocks.0.mlp.fc9.weight");
    expect_reject(good, n, &other_tab, "'blocks.0.mlp.fc1.weight' is not in the model", "name");
    if (corpus_dir) {
        sotu_tensor_table wide = fixture_table(3);
        float *w0 = calloc(wide.total, sizeof(float)), *w1 = malloc(wide.total * sizeof(float));
        fixture_perturb(&wide, w0, w1, 9, 1e-3f);
        sotu_extract_opts o = {.task_index = 3, .task_name = "t03-shirts", .seed = SEED,
                               .keep = 0.5, .dtype = SOTU_DELTA_F32, .prov = fixture_provenance()};
        sotu_delta dw;
        CHECK(sotu_delta_extract(&wide, w0, w1, &o, &dw) == SOTU_OK);
        char p[1024];
        snprintf(p, sizeof p, "%s/shape_mismatch.sotud", corpus_dir);
        CHECK(sotu_delta_write_file(p, &dw, 3) == SOTU_OK);
        sotu_delta_free(&dw);
        free(w0);
        free(w1);
        free(wide.t);
        snprintf(p, sizeof p, "%s/good.sotud", corpus_dir);
        CHECK(sotu_write_file_atomic(p, good, n) == SOTU_OK);
    }
    free(other_tab.t);
    (void)cases;
    free(good);
    free(bad);
    sotu_delta_free(&d);
    free_fixture(&f);
}

/* Every saved corrupt input fails cleanly against the width-2 model; good.sotud decodes. */
static void test_corpus(void)
{
    const char *src = getenv("SOTU_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/data/delta", src ? src : SOTU_SOURCE_DIR_FALLBACK);
    DIR *dp = opendir(dir);
    CHECK_MSG(dp != NULL, "cannot open %s", dir);
    if (!dp)
        return;
    sotu_tensor_table tab = fixture_table(2);
    int seen = 0, good = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 6, ".sotud"))
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        sotu_delta d;
        sotu_status s = sotu_delta_read_file(path, &tab, &d);
        if (!strncmp(e->d_name, "good", 4)) {
            CHECK_MSG(s == SOTU_OK, "%s: %s", path, sotu_last_error());
            good++;
        } else {
            CHECK_MSG(s == SOTU_ERR_DATA, "%s: accepted (status %d)", path, (int)s);
            CHECK_MSG(strstr(sotu_last_error(), path) != NULL, "%s", sotu_last_error());
            printf("  %-26s %s\n", e->d_name, sotu_last_error() + strlen(dir) + 1);
        }
        sotu_delta_free(&d);
        seen++;
    }
    closedir(dp);
    free(tab.t);
    printf("corpus: %d files\n", seen);
    CHECK(seen >= 22 && good == 1);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write-corpus")) {
        test_corrupt(argv[2]);
        return check_finish("test_delta_codec --write-corpus");
    }
    printf("seed %llu\n", (unsigned long long)SEED);
    test_bf16_rounding();
    /* The decoder verifies masks one way on one thread and another on
     * several (io/delta.c, verify_masks): everything runs on both. */
    for (int threads = 1; threads <= 3; threads += 2) {
        printf("-- %d thread%s\n", threads, threads > 1 ? "s" : "");
        sotu_threads_set(threads);
        test_round_trip();
        test_round_trip_large();
        test_indexed();
        test_versions();
        test_provenance_header();
        test_corrupt(NULL);
        test_corpus();
    }
    test_decode_threads();
    return check_finish("test_delta_codec");
}
