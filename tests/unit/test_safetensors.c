/* io/safetensors: writer/reader round trip, F16/BF16 conversion, sharded
 * sets, and every malformed input of the format's header comment, built as
 * crafted bytes, rejected with SOTU_ERR_DATA naming the file and problem. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "io/delta.h"
#include "io/safetensors.h"

static const char *DIR_ = "test_safetensors.d";

/* Writes u64 len (header length, or len_override if not ~0), header, then
 * data_len bytes of pattern. */
static void write_raw(const char *path, const char *header, uint64_t len_override,
                      size_t data_len)
{
    FILE *f = fopen(path, "wb");
    uint64_t n = len_override != UINT64_MAX ? len_override : strlen(header);
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(n >> (8 * i));
    fwrite(b, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_len; i++)
        fputc((int)(i & 0xff), f);
    fclose(f);
}

/* Opening path must fail with SOTU_ERR_DATA and a message naming the file
 * and containing word. */
static void expect_bad(const char *path, const char *word)
{
    sotu_safetensors st;
    sotu_status s = sotu_safetensors_open(path, &st);
    const char *msg = sotu_last_error();
    CHECK_MSG(s == SOTU_ERR_DATA, "%s: status %d (%s)", path, (int)s, msg);
    CHECK_MSG(strstr(msg, path) != NULL, "%s: message does not name the file: %s", path, msg);
    CHECK_MSG(strstr(msg, word) != NULL, "%s: message lacks '%s': %s", path, word, msg);
    CHECK(st.n_tensors == 0 && st.tensors == NULL);
    printf("  rejected %-28s %s\n", strrchr(path, '/') + 1, msg);
}

static void bad_case(const char *name, const char *header, size_t data_len, const char *word)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.safetensors", DIR_, name);
    write_raw(path, header, UINT64_MAX, data_len);
    expect_bad(path, word);
}

static void test_conversions(void)
{
    CHECK(sotu_f16_to_f32(0x3c00) == 1.0f);
    CHECK(sotu_f16_to_f32(0xc000) == -2.0f);
    CHECK(sotu_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(sotu_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(sotu_f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    CHECK(sotu_f16_to_f32(0x3555) == 0x1.554p-2f);
    CHECK(sotu_f16_to_f32(0x8000) == 0.0f);
    CHECK(isinf(sotu_f16_to_f32(0x7c00)) && isnan(sotu_f16_to_f32(0x7e00)));
    CHECK(sotu_bf16_to_f32(0x3f80) == 1.0f && sotu_bf16_to_f32(0xc040) == -3.0f);
}

static void test_round_trip(void)
{
    sotu_tensor_info ti[3] = {
        {"a.weight", 2, {2, 3}, 0, 6}, {"b", 0, {0}, 6, 1}, {"c.bias", 1, {4}, 7, 4}};
    sotu_tensor_table tab = {3, ti, 11};
    float p[11];
    for (int i = 0; i < 11; i++)
        p[i] = 0.25f * (float)i - 1.0f;
    char path[256];
    snprintf(path, sizeof path, "%s/good.safetensors", DIR_);
    const char *meta[] = {"format", "pt", "num_heads", "3"};
    CHECK(sotu_safetensors_write(path, &tab, p, meta, 2) == SOTU_OK);
    sotu_safetensors st;
    CHECK(sotu_safetensors_open(path, &st) == SOTU_OK);
    CHECK(st.n_tensors == 3 && st.n_shards == 1);
    CHECK(st.shards[0].data_start % 8 == 0);
    CHECK(sotu_safetensors_meta(&st, "num_heads") && !strcmp(sotu_safetensors_meta(&st, "num_heads"), "3"));
    CHECK(sotu_safetensors_meta(&st, "missing") == NULL);
    for (int k = 0; k < 3; k++) {
        int i = sotu_safetensors_find(&st, ti[k].name);
        CHECK(i >= 0);
        if (i < 0)
            continue;
        CHECK(st.tensors[i].ndim == ti[k].ndim && st.tensors[i].count == ti[k].count);
        float got[6];
        CHECK(sotu_safetensors_read_f32(&st, i, got) == SOTU_OK);
        CHECK(memcmp(got, p + ti[k].offset, ti[k].count * sizeof(float)) == 0);
    }
    sotu_safetensors_free(&st);
    sotu_safetensors_free(&st); /* idempotent */

    /* F16 and BF16 data, hand-built. */
    snprintf(path, sizeof path, "%s/half.safetensors", DIR_);
    const char *h = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,8]},"
                    "\"i\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[8,12]}}";
    FILE *f = fopen(path, "wb");
    uint64_t n = strlen(h);
    fwrite(&n, 8, 1, f);
    fwrite(h, 1, n, f);
    const uint16_t v[4] = {0x3c00, 0xc000, 0x3f80, 0xc040};
    fwrite(v, 2, 4, f);
    int32_t i32 = 7;
    fwrite(&i32, 4, 1, f);
    fclose(f);
    CHECK(sotu_safetensors_open(path, &st) == SOTU_OK);
    float out[2];
    CHECK(sotu_safetensors_read_f32(&st, sotu_safetensors_find(&st, "h"), out) == SOTU_OK);
    CHECK(out[0] == 1.0f && out[1] == -2.0f);
    CHECK(sotu_safetensors_read_f32(&st, sotu_safetensors_find(&st, "b"), out) == SOTU_OK);
    CHECK(out[0] == 1.0f && out[1] == -3.0f);
    int ii = sotu_safetensors_find(&st, "i");
    CHECK(ii >= 0 && st.tensors[ii].ndim == 0 && st.tensors[ii].count == 1);
    CHECK(sotu_safetensors_read_f32(&st, ii, out) == SOTU_ERR_DATA);
    CHECK(strstr(sotu_last_error(), "I32") != NULL);
    sotu_safetensors_free(&st);
}

static void test_sharded(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/s1.safetensors", DIR_);
    write_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", UINT64_MAX,
              4);
    snprintf(path, sizeof path, "%s/s2.safetensors", DIR_);
    write_raw(path, "{\"__metadata__\":{\"num_heads\":\"2\"},"
                    "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
              UINT64_MAX, 8);
    snprintf(path, sizeof path, "%s/good.safetensors.index.json", DIR_);
    FILE *f = fopen(path, "w");
    fputs("{\"metadata\":{\"total_size\":12},\"weight_map\":{\"x\":\"s1.safetensors\","
          "\"y\":\"s2.safetensors\"}}",
          f);
    fclose(f);
    sotu_safetensors st;
    CHECK(sotu_safetensors_open(path, &st) == SOTU_OK);
    CHECK(st.n_tensors == 2 && st.n_shards == 2);
    CHECK(sotu_safetensors_meta(&st, "num_heads") != NULL);
    float y[2];
    CHECK(sotu_safetensors_read_f32(&st, sotu_safetensors_find(&st, "y"), y) == SOTU_OK);
    sotu_safetensors_free(&st);

    snprintf(path, sizeof path, "%s/missing.safetensors.index.json", DIR_);
    f = fopen(path, "w");
    fputs("{\"weight_map\":{\"x\":\"s1.safetensors\",\"z\":\"s1.safetensors\"}}", f);
    fclose(f);
    expect_bad(path, "'z'");
    snprintf(path, sizeof path, "%s/s3.safetensors", DIR_);
    write_raw(path, "{\"p\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"q\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
              UINT64_MAX, 8);
    snprintf(path, sizeof path, "%s/unmapped.safetensors.index.json", DIR_);
    f = fopen(path, "w");
    fputs("{\"weight_map\":{\"p\":\"s3.safetensors\"}}", f);
    fclose(f);
    expect_bad(path, "'q'");
    snprintf(path, sizeof path, "%s/badjson.safetensors.index.json", DIR_);
    f = fopen(path, "w");
    fputs("{\"weight_map\":", f);
    fclose(f);
    expect_bad(path, "JSON");
}

static void test_bad(void)
{
    char path[256];
    const char *ok1 = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";
    char h[512];

    snprintf(path, sizeof path, "%s/short.safetensors", DIR_);
    FILE *f = fopen(path, "wb");
    fputs("abc", f);
    fclose(f);
    expect_bad(path, "too short");

    snprintf(path, sizeof path, "%s/len_beyond_file.safetensors", DIR_);
    write_raw(path, "{}", 1000, 0);
    expect_bad(path, "beyond the end of the file");

    /* A sparse file larger than the limit, so only the limit can reject. */
    snprintf(path, sizeof path, "%s/len_over_limit.safetensors", DIR_);
    write_raw(path, "{}", (uint64_t)SOTU_SAFETENSORS_HEADER_MAX + 1, 0);
    CHECK(truncate(path, (off_t)SOTU_SAFETENSORS_HEADER_MAX + 64) == 0);
    expect_bad(path, "exceeds the limit");
    remove(path);

    bad_case("invalid_json", "{\"a\":{\"dtype\":\"F32\",", 0, "not valid JSON");
    bad_case("not_object", "[1, 2]", 0, "not a JSON object");
    snprintf(h, sizeof h, "{%s,%s}", ok1, ok1);
    bad_case("duplicate", h, 8, "duplicate");
    bad_case("unknown_dtype", "{\"a\":{\"dtype\":\"F17\",\"shape\":[2],\"data_offsets\":[0,8]}}",
             8, "unknown dtype 'F17'");
    bad_case("size_overflow",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
             "\"data_offsets\":[0,8]}}",
             8, "overflow");
    bad_case("negative_dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",
             8, "shape[0]");
    bad_case("out_of_range", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
             "out of range");
    bad_case("begin_after_end",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8,
             "out of range");
    bad_case("shape_offsets_disagree",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
             "disagree");
    snprintf(h, sizeof h,
             "{%s,\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", ok1);
    bad_case("overlap", h, 12, "overlap");
    snprintf(h, sizeof h,
             "{%s,\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", ok1);
    bad_case("gap", h, 16, "do not cover");
    snprintf(h, sizeof h, "{%s}", ok1);
    bad_case("trailing_bytes", h, 12, "do not cover");
    bad_case("missing_key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets");
    bad_case("extra_key",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8,
             "exactly the keys");
    snprintf(h, sizeof h, "{\"__metadata__\":{\"n\":3},%s}", ok1);
    bad_case("metadata_not_string", h, 8, "__metadata__");
    bad_case("offsets_not_pair", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}",
             8, "data_offsets");

    snprintf(path, sizeof path, "%s/no_such_file.safetensors", DIR_);
    sotu_safetensors st;
    CHECK(sotu_safetensors_open(path, &st) == SOTU_ERR_IO);
}

int main(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", DIR_, DIR_);
    if (system(cmd) != 0)
        return 1;
    test_conversions();
    test_round_trip();
    test_sharded();
    test_bad();
    return check_finish("test_safetensors");
}
