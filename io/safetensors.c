/* safetensors reader (validating, F32/F16/BF16 to float32) and float32
 * writer; format and checks in safetensors.h. */
#include "io/safetensors.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/delta.h"
#include "io/fsutil.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors data is little-endian and read in place");

static const struct {
    const char *name;
    int size;
} dtypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
    {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
    {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8},     {"U64", 8},
};
enum { N_DTYPES = sizeof dtypes / sizeof dtypes[0] };

float sotu_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {
        /* Subnormal half: normalise into a float's wider exponent range. */
        int e = -1;
        do {
            e++;
            mant <<= 1;
        } while (!(mant & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ------------------------------------------------------------------------ */
/* Header parsing                                                           */
/* ------------------------------------------------------------------------ */

void sotu_safetensors_free(sotu_safetensors *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->n_tensors; i++)
        free(st->tensors[i].name);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->tensors);
    free(st->meta_keys);
    free(st->meta_values);
    free(st->shards);
    memset(st, 0, sizeof *st);
}

static sotu_status add_meta(sotu_safetensors *st, const char *path, const char *key,
                            const char *value)
{
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta_keys[i], key)) {
            if (strcmp(st->meta_values[i], value))
                return sotu_error(SOTU_ERR_DATA,
                                  "%s: __metadata__ key '%s' is '%s' here but '%s' in another "
                                  "shard",
                                  path, key, value, st->meta_values[i]);
            return SOTU_OK;
        }
    char **k = realloc(st->meta_keys, sizeof *k * (size_t)(st->n_meta + 1));
    if (k)
        st->meta_keys = k;
    char **v = realloc(st->meta_values, sizeof *v * (size_t)(st->n_meta + 1));
    if (v)
        st->meta_values = v;
    if (!k || !v)
        return sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate metadata", path);
    st->meta_keys[st->n_meta] = strdup(key);
    st->meta_values[st->n_meta] = strdup(value);
    st->n_meta++;
    if (!st->meta_keys[st->n_meta - 1] || !st->meta_values[st->n_meta - 1])
        return sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate metadata", path);
    return SOTU_OK;
}

static sotu_status parse_metadata(sotu_safetensors *st, const char *path, json_t *meta)
{
    if (!json_is_object(meta))
        return sotu_error(SOTU_ERR_DATA, "%s: __metadata__ is not an object of strings", path);
    const char *key;
    json_t *v;
    json_object_foreach(meta, key, v)
    {
        if (!json_is_string(v))
            return sotu_error(SOTU_ERR_DATA,
                              "%s: __metadata__ key '%s' is not a string (expected string "
                              "values only)",
                              path, key);
        sotu_status s = add_meta(st, path, key, json_string_value(v));
        if (s != SOTU_OK)
            return s;
    }
    return SOTU_OK;
}

/* Reads a JSON integer in [0, 2^63) into *out. */
static int json_u64(json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 0;
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

static sotu_status parse_tensor(sotu_safetensors_tensor *t, const char *path, const char *name,
                                json_t *e, uint64_t data_size)
{
    if (!json_is_object(e))
        return sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': entry is not an object", path, name);
    json_t *jd = json_object_get(e, "dtype"), *js = json_object_get(e, "shape"),
           *jo = json_object_get(e, "data_offsets");
    if (!jd || !js || !jo || json_object_size(e) != 3)
        return sotu_error(SOTU_ERR_DATA,
                          "%s: tensor '%s': expected exactly the keys dtype, shape and "
                          "data_offsets",
                          path, name);
    if (!json_is_string(jd))
        return sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': dtype is not a string", path, name);
    const char *dt = json_string_value(jd);
    int k = 0;
    while (k < N_DTYPES && strcmp(dtypes[k].name, dt))
        k++;
    if (k == N_DTYPES)
        return sotu_error(SOTU_ERR_DATA,
                          "%s: tensor '%s': unknown dtype '%s' (expected F32, F16, BF16, F64, "
                          "I8..I64, U8..U64, BOOL, F8_E5M2 or F8_E4M3)",
                          path, name, dt);
    snprintf(t->dtype, sizeof t->dtype, "%s", dt);
    t->elem_size = dtypes[k].size;

    if (!json_is_array(js) || json_array_size(js) > SOTU_SAFETENSORS_NDIM_MAX)
        return sotu_error(SOTU_ERR_DATA,
                          "%s: tensor '%s': shape is not an array of at most %d dimensions",
                          path, name, SOTU_SAFETENSORS_NDIM_MAX);
    t->ndim = (int)json_array_size(js);
    uint64_t bytes = (uint64_t)t->elem_size, count = 1;
    for (int d = 0; d < t->ndim; d++) {
        uint64_t dim;
        if (!json_u64(json_array_get(js, (size_t)d), &dim))
            return sotu_error(SOTU_ERR_DATA,
                              "%s: tensor '%s': shape[%d] is not a non-negative integer", path,
                              name, d);
        if (dim && (count > UINT64_MAX / dim || bytes > UINT64_MAX / dim))
            return sotu_error(SOTU_ERR_DATA,
                              "%s: tensor '%s': the byte size of shape overflows 64 bits "
                              "(size overflow)",
                              path, name);
        count *= dim;
        bytes *= dim;
        t->shape[d] = (int64_t)dim;
    }
    t->count = count;

    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        !json_u64(json_array_get(jo, 0), &t->begin) || !json_u64(json_array_get(jo, 1), &t->end))
        return sotu_error(SOTU_ERR_DATA,
                          "%s: tensor '%s': data_offsets is not [begin, end] of non-negative "
                          "integers",
                          path, name);
    if (t->begin > t->end || t->end > data_size)
        return sotu_error(SOTU_ERR_DATA,
                          "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                          "] out of range (data buffer has %" PRIu64 " bytes)",
                          path, name, t->begin, t->end, data_size);
    if (t->end - t->begin != bytes)
        return sotu_error(SOTU_ERR_DATA,
                          "%s: tensor '%s': data_offsets span %" PRIu64
                          " bytes but shape x %s needs %" PRIu64 " (shape and offsets disagree)",
                          path, name, t->end - t->begin, dt, bytes);
    t->name = strdup(name);
    if (!t->name)
        return sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate a name", path);
    return SOTU_OK;
}

static int by_offset(const void *a, const void *b)
{
    const sotu_safetensors_tensor *x = a, *y = b;
    if (x->shard != y->shard)
        return x->shard < y->shard ? -1 : 1;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Reads the header of one file and appends its tensors and metadata to st
 * as shard number st->n_shards. */
static sotu_status open_shard(sotu_safetensors *st, const char *path)
{
    sotu_status s = SOTU_OK;
    char *header = NULL;
    json_t *root = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sotu_error(SOTU_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        s = sotu_error(SOTU_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto cleanup;
    }
    uint64_t size = (uint64_t)sb.st_size;
    uint8_t lenb[8];
    if (size < 8 || fread(lenb, 1, 8, f) != 8) {
        s = sotu_error(SOTU_ERR_DATA,
                       "%s: %" PRIu64 " bytes, too short for the 8-byte header length", path,
                       size);
        goto cleanup;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | lenb[i];
    if (n > size - 8) {
        s = sotu_error(SOTU_ERR_DATA,
                       "%s: header length %" PRIu64 " is beyond the end of the file (%" PRIu64
                       " bytes)",
                       path, n, size);
        goto cleanup;
    }
    if (n > SOTU_SAFETENSORS_HEADER_MAX) {
        s = sotu_error(SOTU_ERR_DATA, "%s: header length %" PRIu64 " exceeds the limit of %u bytes",
                       path, n, SOTU_SAFETENSORS_HEADER_MAX);
        goto cleanup;
    }
    header = malloc(n + 1);
    if (!header) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate a header of %" PRIu64 " bytes", path,
                       n);
        goto cleanup;
    }
    if (fread(header, 1, n, f) != n) {
        s = sotu_error(SOTU_ERR_IO, "%s: short read of the header", path);
        goto cleanup;
    }
    header[n] = '\0';
    json_error_t jerr;
    root = json_loadb(header, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        s = sotu_error(SOTU_ERR_DATA, "%s: header is not valid JSON: %s (header byte %d)", path,
                       jerr.text, jerr.position);
        goto cleanup;
    }
    if (!json_is_object(root)) {
        s = sotu_error(SOTU_ERR_DATA, "%s: header is not a JSON object", path);
        goto cleanup;
    }

    sotu_safetensors_shard *sh = realloc(st->shards, sizeof *sh * (size_t)(st->n_shards + 1));
    if (!sh) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate", path);
        goto cleanup;
    }
    st->shards = sh;
    int shard = st->n_shards++;
    snprintf(sh[shard].path, sizeof sh[shard].path, "%s", path);
    sh[shard].data_start = 8 + n;
    sh[shard].data_size = size - 8 - n;

    size_t entries = json_object_size(root);
    sotu_safetensors_tensor *ts =
        realloc(st->tensors, sizeof *ts * ((size_t)st->n_tensors + entries + 1));
    if (!ts) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate %zu tensor entries", path, entries);
        goto cleanup;
    }
    st->tensors = ts;
    int first = st->n_tensors;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (!strcmp(key, "__metadata__")) {
            if ((s = parse_metadata(st, path, v)) != SOTU_OK)
                goto cleanup;
            continue;
        }
        if (sotu_safetensors_find(st, key) >= 0) {
            s = sotu_error(SOTU_ERR_DATA, "%s: duplicate tensor name '%s'", path, key);
            goto cleanup;
        }
        sotu_safetensors_tensor *t = &st->tensors[st->n_tensors];
        memset(t, 0, sizeof *t);
        t->shard = shard;
        if ((s = parse_tensor(t, path, key, v, sh[shard].data_size)) != SOTU_OK)
            goto cleanup;
        st->n_tensors++;
    }

    /* Sorted by offset, each tensor must start where the previous ended and
     * the last must end at the end of the buffer. */
    int count = st->n_tensors - first;
    qsort(st->tensors + first, (size_t)count, sizeof *st->tensors, by_offset);
    uint64_t at = 0;
    for (int i = first; i < st->n_tensors; i++) {
        const sotu_safetensors_tensor *t = &st->tensors[i];
        if (t->begin < at) {
            s = sotu_error(SOTU_ERR_DATA,
                           "%s: tensor '%s' at [%" PRIu64 ", %" PRIu64
                           ") overlaps '%s' (offsets overlap)",
                           path, t->name, t->begin, t->end, st->tensors[i - 1].name);
            goto cleanup;
        }
        if (t->begin > at) {
            s = sotu_error(SOTU_ERR_DATA,
                           "%s: bytes [%" PRIu64 ", %" PRIu64
                           ") of the data buffer belong to no tensor (offsets do not cover the "
                           "buffer)",
                           path, at, t->begin);
            goto cleanup;
        }
        at = t->end;
    }
    if (at != sh[shard].data_size) {
        s = sotu_error(SOTU_ERR_DATA,
                       "%s: tensors cover %" PRIu64 " bytes but the data buffer has %" PRIu64
                       " (offsets do not cover the buffer)",
                       path, at, sh[shard].data_size);
        goto cleanup;
    }
cleanup:
    json_decref(root);
    free(header);
    fclose(f);
    return s;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static sotu_status open_index(sotu_safetensors *st, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    json_t *root = NULL;
    sotu_status s = sotu_read_file(path, SOTU_SAFETENSORS_HEADER_MAX, &text, &len);
    if (s != SOTU_OK)
        return s;
    json_error_t jerr;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        s = sotu_error(SOTU_ERR_DATA, "%s: not valid JSON: %s (line %d)", path, jerr.text,
                       jerr.line);
        goto cleanup;
    }
    json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map) || json_object_size(map) == 0) {
        s = sotu_error(SOTU_ERR_DATA, "%s: expected a non-empty object 'weight_map'", path);
        goto cleanup;
    }
    char dir[SOTU_PATH_MAX], shard[SOTU_PATH_MAX];
    sotu_path_dirname(dir, sizeof dir, path);
    const char *key;
    json_t *v;
    json_object_foreach(map, key, v)
    {
        if (!json_is_string(v) || !json_string_value(v)[0]) {
            s = sotu_error(SOTU_ERR_DATA, "%s: weight_map['%s'] is not a file name", path, key);
            goto cleanup;
        }
        sotu_path_join(shard, sizeof shard, dir, json_string_value(v));
        int known = 0;
        for (int i = 0; i < st->n_shards && !known; i++)
            known = !strcmp(st->shards[i].path, shard);
        if (!known && (s = open_shard(st, shard)) != SOTU_OK)
            goto cleanup;
    }
    for (int i = 0; i < st->n_tensors; i++) {
        const sotu_safetensors_tensor *t = &st->tensors[i];
        json_t *f = json_object_get(map, t->name);
        if (f)
            sotu_path_join(shard, sizeof shard, dir, json_string_value(f));
        if (!f || strcmp(shard, st->shards[t->shard].path)) {
            s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s' of %s is not mapped to that file in "
                           "weight_map",
                           path, t->name, st->shards[t->shard].path);
            goto cleanup;
        }
    }
    json_object_foreach(map, key, v)
    {
        if (sotu_safetensors_find(st, key) < 0) {
            s = sotu_error(SOTU_ERR_DATA, "%s: weight_map lists '%s' but %s has no such tensor",
                           path, key, json_string_value(v));
            goto cleanup;
        }
    }
cleanup:
    json_decref(root);
    free(text);
    return s;
}

sotu_status sotu_safetensors_open(const char *path, sotu_safetensors *st)
{
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path, "%s", path);
    sotu_status s = has_suffix(path, ".json") ? open_index(st, path) : open_shard(st, path);
    if (s != SOTU_OK)
        sotu_safetensors_free(st);
    return s;
}

int sotu_safetensors_find(const sotu_safetensors *st, const char *name)
{
    for (int i = 0; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i].name, name))
            return i;
    return -1;
}

const char *sotu_safetensors_meta(const sotu_safetensors *st, const char *key)
{
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta_keys[i], key))
            return st->meta_values[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Tensor data                                                              */
/* ------------------------------------------------------------------------ */

sotu_status sotu_safetensors_read_f32(const sotu_safetensors *st, int i, float *dst)
{
    assert(i >= 0 && i < st->n_tensors);
    const sotu_safetensors_tensor *t = &st->tensors[i];
    const sotu_safetensors_shard *sh = &st->shards[t->shard];
    int f32 = !strcmp(t->dtype, "F32"), f16 = !strcmp(t->dtype, "F16"),
        bf16 = !strcmp(t->dtype, "BF16");
    if (!f32 && !f16 && !bf16)
        return sotu_error(SOTU_ERR_DATA,
                          "%s: tensor '%s' has dtype %s; weights must be F32, F16 or BF16",
                          sh->path, t->name, t->dtype);
    uint64_t bytes = t->end - t->begin;
    if (bytes > SIZE_MAX / 2)
        return sotu_error(SOTU_ERR_NOMEM, "%s: tensor '%s' is too large", sh->path, t->name);
    FILE *f = fopen(sh->path, "rb");
    if (!f)
        return sotu_error(SOTU_ERR_IO, "%s: cannot open: %s", sh->path, strerror(errno));
    sotu_status s = SOTU_OK;
    uint16_t *half = NULL;
    if (fseeko(f, (off_t)(sh->data_start + t->begin), SEEK_SET) != 0) {
        s = sotu_error(SOTU_ERR_IO, "%s: cannot seek to tensor '%s'", sh->path, t->name);
        goto cleanup;
    }
    if (f32) {
        if (fread(dst, 1, bytes, f) != bytes)
            s = sotu_error(SOTU_ERR_IO, "%s: short read of tensor '%s'", sh->path, t->name);
        goto cleanup;
    }
    half = malloc(bytes ? bytes : 1);
    if (!half) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate %" PRIu64 " bytes for '%s'", sh->path,
                       bytes, t->name);
        goto cleanup;
    }
    if (fread(half, 1, bytes, f) != bytes) {
        s = sotu_error(SOTU_ERR_IO, "%s: short read of tensor '%s'", sh->path, t->name);
        goto cleanup;
    }
    for (uint64_t k = 0; k < t->count; k++)
        dst[k] = f16 ? sotu_f16_to_f32(half[k]) : sotu_bf16_to_f32(half[k]);
cleanup:
    free(half);
    fclose(f);
    return s;
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                   */
/* ------------------------------------------------------------------------ */

static json_t *build_header(const sotu_tensor_table *tab, const char *const *meta, int n_meta)
{
    json_t *root = json_object();
    if (!root)
        return NULL;
    if (n_meta > 0) {
        json_t *m = json_object();
        if (!m || json_object_set_new(root, "__metadata__", m)) {
            json_decref(root);
            return NULL;
        }
        for (int k = 0; k < n_meta; k++)
            if (json_object_set_new(m, meta[2 * k], json_string(meta[2 * k + 1]))) {
                json_decref(root);
                return NULL;
            }
    }
    uint64_t at = 0;
    for (int i = 0; i < tab->n; i++) {
        const sotu_tensor_info *ti = &tab->t[i];
        json_t *shape = json_array(), *e = json_object();
        uint64_t end = at + 4 * (uint64_t)ti->count;
        int bad = !shape || !e;
        for (int d = 0; d < ti->ndim && !bad; d++)
            bad = json_array_append_new(shape, json_integer(ti->shape[d]));
        bad = bad || json_object_set_new(e, "dtype", json_string("F32")) ||
              json_object_set_new(e, "shape", shape) ||
              json_object_set_new(e, "data_offsets",
                                  json_pack("[II]", (json_int_t)at, (json_int_t)end)) ||
              json_object_set_new(root, ti->name, e);
        if (bad) {
            json_decref(root);
            return NULL;
        }
        at = end;
    }
    return root;
}

sotu_status sotu_safetensors_write(const char *path, const sotu_tensor_table *tab,
                                   const float *params, const char *const *meta, int n_meta)
{
    char *text = NULL, *head = NULL;
    json_t *root = build_header(tab, meta, n_meta);
    sotu_status s = SOTU_OK;
    if (!root || !(text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot build the header", path);
        goto cleanup;
    }
    size_t len = strlen(text), padded = (len + 7) / 8 * 8;
    if (!(head = malloc(8 + padded))) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot build the header", path);
        goto cleanup;
    }
    for (int i = 0; i < 8; i++)
        head[i] = (char)(uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(head + 8, text, len);
    memset(head + 8 + len, ' ', padded - len);
    sotu_atomic_file af;
    s = sotu_atomic_open(&af, path);
    if (s == SOTU_OK)
        s = sotu_atomic_write(&af, head, 8 + padded);
    for (int i = 0; i < tab->n && s == SOTU_OK; i++)
        s = sotu_atomic_write(&af, params + tab->t[i].offset, sizeof(float) * tab->t[i].count);
    if (s == SOTU_OK)
        s = sotu_atomic_finish(&af);
cleanup:
    free(head);
    free(text);
    json_decref(root);
    return s;
}
