#include "io/resnet_io.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5util.h"
#include "io/weights.h"

#define RESNET_ARCH "resnet"
#define NBT_SUFFIX ".num_batches_tracked"
#define MEAN_SUFFIX ".running_mean"

/* The config attributes, their fields and ranges. */
typedef struct {
    const char *name;
    int64_t lo, hi;
} attr_spec;

static const attr_spec attrs[] = {
    {"depth", 18, 34},         {"width", 1, 1 << 16},   {"channels", 1, 1 << 16},
    {"image_size", 1, 1 << 16}, {"classes", 1, 1 << 24}, {"small_input", 0, 1},
    {"clr", RESNET_CLR_NONE, RESNET_CLR_ALL},
};
enum { N_ATTRS = sizeof attrs / sizeof attrs[0] };

static void config_values(const resnet_config *c, int64_t v[N_ATTRS])
{
    v[0] = c->depth;
    v[1] = c->width;
    v[2] = c->channels;
    v[3] = c->image_size;
    v[4] = c->classes;
    v[5] = c->small_input;
    v[6] = c->clr;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */
/* ------------------------------------------------------------------------ */

sotu_status resnet_weights_write_config_attrs(int64_t loc, const resnet_config *cfg,
                                              const char *path_for_errors)
{
    sotu_status s = sotu_h5_write_str_attr((hid_t)loc, "arch", RESNET_ARCH, path_for_errors);
    int64_t v[N_ATTRS];
    config_values(cfg, v);
    for (int i = 0; i < N_ATTRS && s == SOTU_OK; i++)
        s = sotu_h5_write_int_attr((hid_t)loc, attrs[i].name, v[i], path_for_errors);
    return s;
}

/* One int64 scalar dataset <bn>.num_batches_tracked per BatchNorm of t. */
static sotu_status write_counters(hid_t loc, const char *group, const resnet_tensors *t,
                                  const char *path)
{
    hid_t g = H5Gopen2(loc, group, H5P_DEFAULT);
    if (g < 0)
        return sotu_error(SOTU_ERR_IO, "%s: cannot open group %s", path, group);
    hid_t sp = H5Screate(H5S_SCALAR), dcpl = sotu_h5_dcpl();
    sotu_status s = SOTU_OK;
    if (sp < 0 || dcpl < 0)
        s = sotu_error(SOTU_ERR_IO, "%s: cannot create a dataspace for num_batches_tracked", path);
    for (int i = 0; i < t->buffers->n && s == SOTU_OK; i++) {
        const char *name = t->buffers->t[i].name;
        if (!ends_with(name, MEAN_SUFFIX))
            continue;
        char dname[SOTU_TENSOR_NAME_MAX + 32];
        snprintf(dname, sizeof dname, "%.*s%s", (int)(strlen(name) - strlen(MEAN_SUFFIX)), name,
                 NBT_SUFFIX);
        hid_t d = H5Dcreate2(g, dname, H5T_STD_I64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        if (d < 0 || H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                              &t->num_batches_tracked) < 0)
            s = sotu_error(SOTU_ERR_IO, "%s: cannot write %s/%s", path, group, dname);
        if (d >= 0)
            H5Dclose(d);
    }
    if (sp >= 0)
        H5Sclose(sp);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    H5Gclose(g);
    return s;
}

sotu_status resnet_tensors_write_group(int64_t loc, const char *group, const resnet_tensors *t,
                                       const char *path_for_errors)
{
    sotu_status s = sotu_weights_write_group(loc, group, t->table, t->params, path_for_errors);
    if (s == SOTU_OK)
        s = sotu_weights_write_group(loc, group, t->buffers, t->running, path_for_errors);
    if (s == SOTU_OK)
        s = write_counters((hid_t)loc, group, t, path_for_errors);
    return s;
}

static sotu_status fill_resnet(int64_t f, const void *ctx, const char *path)
{
    const resnet_tensors *t = ctx;
    sotu_status s = resnet_weights_write_config_attrs(f, &t->cfg, path);
    if (s == SOTU_OK)
        s = resnet_tensors_write_group(f, SOTU_WEIGHTS_GROUP, t, path);
    return s;
}

sotu_status resnet_tensors_write(const char *path, const resnet_tensors *t)
{
    return sotu_weights_write_file(path, fill_resnet, t);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

/* Reads the "arch" attribute of an open file: "vit" when absent. */
static sotu_status file_arch(hid_t f, const char *path, char *arch, size_t cap)
{
    if (!sotu_h5_has_attr(f, "arch")) {
        snprintf(arch, cap, "vit");
        return SOTU_OK;
    }
    char a[32];
    sotu_status s = sotu_h5_read_str_attr(f, "arch", a, sizeof a, path);
    if (s != SOTU_OK)
        return s;
    if (strcmp(a, "vit") && strcmp(a, RESNET_ARCH))
        return sotu_error(SOTU_ERR_DATA, "%s: attribute 'arch' is '%s', expected vit or resnet",
                          path, a);
    snprintf(arch, cap, "%s", a);
    return SOTU_OK;
}

sotu_status sotu_weights_arch(const char *path, char *arch, size_t cap)
{
    hid_t f;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    s = file_arch(f, path, arch, cap);
    H5Fclose(f);
    return s;
}

sotu_status resnet_weights_read_config(const char *path, resnet_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    hid_t f;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    char arch[32];
    s = sotu_weights_check_version((int64_t)f, path);
    if (s == SOTU_OK)
        s = file_arch(f, path, arch, sizeof arch);
    if (s == SOTU_OK && strcmp(arch, RESNET_ARCH))
        s = sotu_error(SOTU_ERR_DATA, "%s: holds a %s, not a resnet", path, arch);
    int64_t v[N_ATTRS] = {0};
    for (int i = 0; i < N_ATTRS && s == SOTU_OK; i++) {
        s = sotu_h5_read_int_attr(f, attrs[i].name, &v[i], path);
        if (s == SOTU_OK && i == 0 && v[i] != 18 && v[i] != 34)
            s = sotu_error(SOTU_ERR_DATA, "%s: attribute 'depth' is %lld, expected 18 or 34", path,
                           (long long)v[i]);
        else if (s == SOTU_OK && (v[i] < attrs[i].lo || v[i] > attrs[i].hi))
            s = sotu_error(SOTU_ERR_DATA, "%s: attribute '%s' is %lld, expected %lld..%lld", path,
                           attrs[i].name, (long long)v[i], (long long)attrs[i].lo,
                           (long long)attrs[i].hi);
    }
    H5Fclose(f);
    if (s != SOTU_OK)
        return s;
    *cfg = (resnet_config){.depth = (int)v[0],
                           .width = (int)v[1],
                           .channels = (int)v[2],
                           .image_size = (int)v[3],
                           .classes = (int)v[4],
                           .small_input = v[5] != 0,
                           .clr = (resnet_clr)v[6]};
    return SOTU_OK;
}

/* 1 and dims[0] (-1 for a scalar) if name opens as a dataset in g, else 0. */
static int probe(hid_t g, const char *name, int64_t *rows)
{
    *rows = -1;
    if (H5Lexists(g, name, H5P_DEFAULT) <= 0)
        return 0;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0)
        return 0;
    hid_t sp = H5Dget_space(d);
    hsize_t dims[H5S_MAX_RANK];
    if (sp >= 0 && H5Sget_simple_extent_ndims(sp) > 0 &&
        H5Sget_simple_extent_dims(sp, dims, NULL) > 0)
        *rows = (int64_t)dims[0];
    if (sp >= 0)
        H5Sclose(sp);
    H5Dclose(d);
    return 1;
}

/* Reads bn1.num_batches_tracked, an integer scalar, into *n (0 if absent). */
static sotu_status read_counter(hid_t g, const char *group, const char *path, int64_t *n)
{
    const char *name = "bn1" NBT_SUFFIX;
    *n = 0;
    if (H5Lexists(g, name, H5P_DEFAULT) <= 0)
        return SOTU_OK;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0)
        return sotu_error(SOTU_ERR_DATA, "%s: %s/%s is not a dataset", path, group, name);
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    sotu_status s = SOTU_OK;
    if (t < 0 || H5Tget_class(t) != H5T_INTEGER || sp < 0 ||
        H5Sget_simple_extent_npoints(sp) != 1)
        s = sotu_error(SOTU_ERR_DATA, "%s: %s/%s is not an integer scalar", path, group, name);
    else if (H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, n) < 0)
        s = sotu_error(SOTU_ERR_DATA, "%s: %s/%s cannot be read", path, group, name);
    else if (*n < 0)
        s = sotu_error(SOTU_ERR_DATA, "%s: %s/%s is %lld, expected >= 0", path, group, name,
                       (long long)*n);
    if (t >= 0)
        H5Tclose(t);
    if (sp >= 0)
        H5Sclose(sp);
    H5Dclose(d);
    return s;
}

static void clr_identity(float *w, const sotu_tensor_info *ti)
{
    memset(w, 0, ti->count * sizeof *w);
    for (int64_t c = 0; c < ti->shape[0]; c++)
        w[c * 9 + 4] = 1.0f;
}

sotu_status resnet_tensors_read(const char *path, const char *group, resnet_tensors *t)
{
    hid_t f;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    hid_t g = H5I_INVALID_HID;
    sotu_tensor_table sub = {0};
    if (H5Lexists(f, group, H5P_DEFAULT) <= 0 || (g = H5Gopen2(f, group, H5P_DEFAULT)) < 0) {
        s = sotu_error(SOTU_ERR_DATA, "%s: group %s is missing", path, group);
        goto cleanup;
    }
    sub.t = malloc((size_t)t->table->n * sizeof *sub.t);
    if (!sub.t) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    /* The parameters to read: all but absent CLR weights and an unusable fc. */
    int64_t w_rows, b_rows;
    bool fc = probe(g, "fc.weight", &w_rows) && probe(g, "fc.bias", &b_rows) &&
              w_rows == t->cfg.classes;
    for (int i = 0; i < t->table->n; i++) {
        const sotu_tensor_info *ti = &t->table->t[i];
        int64_t rows;
        if (!strncmp(ti->name, "fc.", 3) && !fc)
            continue;
        if (ends_with(ti->name, ".clr.weight") && !probe(g, ti->name, &rows)) {
            clr_identity(t->params + ti->offset, ti);
            continue;
        }
        sub.t[sub.n++] = *ti;
    }
    s = read_counter(g, group, path, &t->num_batches_tracked);
    H5Gclose(g);
    g = H5I_INVALID_HID;
    H5Fclose(f);
    f = H5I_INVALID_HID;
    if (s == SOTU_OK)
        s = sotu_weights_read_into(path, group, &sub, t->params, 0);
    if (s == SOTU_OK)
        s = sotu_weights_read_into(path, group, t->buffers, t->running, 0);
cleanup:
    free(sub.t);
    if (g >= 0)
        H5Gclose(g);
    if (f >= 0)
        H5Fclose(f);
    return s;
}
