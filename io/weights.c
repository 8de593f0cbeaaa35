#include "io/weights.h"

#include <hdf5.h>
#include <stdio.h>
#include <string.h>

#include "io/checkpoint.h"
#include "io/fsutil.h"
#include "io/h5util.h"

#define WEIGHTS_FORMAT "sotu-weights"
#define WEIGHTS_FORMAT_VERSION 1

static const char *const config_names[] = {"image_size", "channels", "patch", "dim",
                                           "depth",      "heads",    "mlp_hidden", "classes"};
enum { N_CONFIG = sizeof config_names / sizeof config_names[0] };

static int *config_field(sotu_vit_config *c, int i)
{
    int *f[N_CONFIG] = {&c->image_size, &c->channels, &c->patch,      &c->dim,
                        &c->depth,      &c->heads,    &c->mlp_hidden, &c->classes};
    return f[i];
}

sotu_status sotu_weights_write_config_attrs(int64_t loc, const sotu_vit_config *cfg,
                                            const char *path_for_errors)
{
    sotu_vit_config c = *cfg;
    for (int i = 0; i < N_CONFIG; i++) {
        sotu_status s = sotu_h5_write_int_attr((hid_t)loc, config_names[i], *config_field(&c, i),
                                               path_for_errors);
        if (s != SOTU_OK)
            return s;
    }
    return SOTU_OK;
}

/* Opens group in loc, creating it (and missing parents) if absent. */
static hid_t open_or_create_group(hid_t loc, const char *group)
{
    if (H5Lexists(loc, group, H5P_DEFAULT) > 0)
        return H5Gopen2(loc, group, H5P_DEFAULT);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), gcpl = sotu_h5_gcpl(), g = H5I_INVALID_HID;
    if (lcpl >= 0 && gcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0)
        g = H5Gcreate2(loc, group, lcpl, gcpl, H5P_DEFAULT);
    if (lcpl >= 0)
        H5Pclose(lcpl);
    if (gcpl >= 0)
        H5Pclose(gcpl);
    return g;
}

sotu_status sotu_weights_write_group(int64_t loc, const char *group, const sotu_tensor_table *tab,
                                     const float *params, const char *path_for_errors)
{
    sotu_h5_quiet();
    const char *path = path_for_errors;
    char why[256];
    hid_t g = open_or_create_group((hid_t)loc, group);
    if (g < 0)
        return sotu_error(SOTU_ERR_IO, "%s: cannot create group %s: %s", path, group,
                          sotu_h5_reason(why, sizeof why));
    sotu_status s = SOTU_OK;
    for (int i = 0; i < tab->n && s == SOTU_OK; i++) {
        const sotu_tensor_info *ti = &tab->t[i];
        hsize_t dims[SOTU_TENSOR_NDIM_MAX];
        for (int k = 0; k < ti->ndim; k++)
            dims[k] = (hsize_t)ti->shape[k];
        hid_t sp = ti->ndim > 0 ? H5Screate_simple(ti->ndim, dims, NULL) : H5Screate(H5S_SCALAR);
        hid_t dcpl = sotu_h5_dcpl_checked(ti->ndim, dims, sizeof(float));
        hid_t d = sp >= 0 && dcpl >= 0 ? H5Dcreate2(g, ti->name, H5T_IEEE_F32LE, sp, H5P_DEFAULT,
                                                    dcpl, H5P_DEFAULT)
                                       : H5I_INVALID_HID;
        if (d < 0 || (ti->count > 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL,
                                                H5P_DEFAULT, params + ti->offset) < 0))
            s = sotu_error(SOTU_ERR_IO, "%s: cannot write tensor %s/%s: %s", path, group,
                           ti->name, sotu_h5_reason(why, sizeof why));
        if (d >= 0)
            H5Dclose(d);
        if (dcpl >= 0)
            H5Pclose(dcpl);
        if (sp >= 0)
            H5Sclose(sp);
    }
    H5Gclose(g);
    return s;
}

typedef struct {
    sotu_weights_fill_fn fill;
    const void *ctx;
} weights_fill;

static sotu_status fill_weights_file(hid_t f, const void *ctx, const char *path)
{
    const weights_fill *w = ctx;
    sotu_status s = sotu_h5_write_str_attr(f, "format", WEIGHTS_FORMAT, path);
    if (s == SOTU_OK)
        s = sotu_h5_write_int_attr(f, "format_version", WEIGHTS_FORMAT_VERSION, path);
    if (s == SOTU_OK)
        s = w->fill((int64_t)f, w->ctx, path);
    return s;
}

sotu_status sotu_weights_write_file(const char *path, sotu_weights_fill_fn fill, const void *ctx)
{
    weights_fill w = {fill, ctx};
    return sotu_h5_write_file(path, fill_weights_file, &w);
}

typedef struct {
    const sotu_vit_config *cfg;
    const sotu_tensor_table *tab;
    const float *params;
} vit_file;

static sotu_status fill_vit(int64_t f, const void *ctx, const char *path)
{
    const vit_file *v = ctx;
    sotu_status s = sotu_weights_write_config_attrs(f, v->cfg, path);
    if (s == SOTU_OK)
        s = sotu_weights_write_group(f, SOTU_WEIGHTS_GROUP, v->tab, v->params, path);
    return s;
}

sotu_status sotu_weights_write(const char *path, const sotu_vit_config *cfg,
                               const sotu_tensor_table *tab, const float *params)
{
    vit_file v = {cfg, tab, params};
    return sotu_weights_write_file(path, fill_vit, &v);
}

sotu_status sotu_weights_check_version(int64_t file, const char *path)
{
    hid_t f = (hid_t)file;
    char format[64] = "";
    if (sotu_h5_has_attr(f, "format") &&
        sotu_h5_read_str_attr(f, "format", format, sizeof format, path) != SOTU_OK)
        format[0] = '\0'; /* another tool's file: its format_version, if any, is checked below */
    if (!strcmp(format, SOTU_CHECKPOINT_FORMAT))
        return sotu_h5_check_format_version(f, SOTU_CHECKPOINT_VERSION, "checkpoint", path);
    return sotu_h5_check_format_version(f, WEIGHTS_FORMAT_VERSION, "weights file", path);
}

sotu_status sotu_weights_read_config(const char *path, sotu_vit_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    hid_t f;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    s = sotu_weights_check_version((int64_t)f, path);
    for (int i = 0; i < N_CONFIG && s == SOTU_OK; i++) {
        int64_t v = 0;
        s = sotu_h5_read_int_attr(f, config_names[i], &v, path);
        if (s == SOTU_OK && (v <= 0 || v > (1 << 24)))
            s = sotu_error(SOTU_ERR_DATA, "%s: model attribute %s is %lld, expected 1..%d", path,
                           config_names[i], (long long)v, 1 << 24);
        if (s == SOTU_OK)
            *config_field(cfg, i) = (int)v;
    }
    H5Fclose(f);
    if (s != SOTU_OK)
        memset(cfg, 0, sizeof *cfg);
    return s;
}

static void shape_string(char *dst, size_t cap, int ndim, const hsize_t *dims64,
                         const int64_t *dims)
{
    size_t n = (size_t)snprintf(dst, cap, "[");
    for (int k = 0; k < ndim && n < cap; k++)
        n += (size_t)snprintf(dst + n, cap - n, "%s%lld", k ? "," : "",
                              dims64 ? (long long)dims64[k] : (long long)dims[k]);
    if (n < cap)
        snprintf(dst + n, cap - n, "]");
}

/* Reads one tensor from group g into dst after checking kind and shape. */
static sotu_status read_tensor(hid_t g, const char *group, const sotu_tensor_info *ti, float *dst,
                               const char *path)
{
    if (H5Lexists(g, ti->name, H5P_DEFAULT) <= 0)
        return sotu_error(SOTU_ERR_DATA, "%s: tensor %s/%s is missing", path, group, ti->name);
    hid_t d = H5Dopen2(g, ti->name, H5P_DEFAULT);
    if (d < 0)
        return sotu_error(SOTU_ERR_DATA, "%s: %s/%s is not a dataset", path, group, ti->name);
    sotu_status s = SOTU_OK;
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    int ndim = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t dims[H5S_MAX_RANK];
    if (t < 0 || H5Tget_class(t) != H5T_FLOAT) {
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor %s/%s is not floating point", path, group,
                       ti->name);
        goto cleanup;
    }
    int same = ndim == ti->ndim;
    if (ndim > 0)
        H5Sget_simple_extent_dims(sp, dims, NULL);
    for (int k = 0; same && k < ndim; k++)
        same = dims[k] == (hsize_t)ti->shape[k];
    if (!same) {
        char have[128], want[128];
        shape_string(have, sizeof have, ndim < 0 ? 0 : ndim, dims, NULL);
        shape_string(want, sizeof want, ti->ndim, NULL, ti->shape);
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor %s/%s has shape %s, expected %s", path, group,
                       ti->name, have, want);
        goto cleanup;
    }
    if (ti->count > 0 && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) {
        char why[256];
        s = sotu_error(SOTU_ERR_DATA, "%s: tensor %s/%s cannot be read (damaged?): %s", path,
                       group, ti->name, sotu_h5_reason(why, sizeof why));
    }
cleanup:
    if (t >= 0)
        H5Tclose(t);
    if (sp >= 0)
        H5Sclose(sp);
    H5Dclose(d);
    return s;
}

sotu_status sotu_weights_read_into(const char *path, const char *group,
                                   const sotu_tensor_table *tab, float *params, int flags)
{
    hid_t f;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    hid_t g = H5I_INVALID_HID;
    if (H5Lexists(f, group, H5P_DEFAULT) <= 0 || (g = H5Gopen2(f, group, H5P_DEFAULT)) < 0) {
        s = sotu_error(SOTU_ERR_DATA, "%s: group %s is missing", path, group);
        goto cleanup;
    }
    for (int i = 0; i < tab->n && s == SOTU_OK; i++) {
        const sotu_tensor_info *ti = &tab->t[i];
        if ((flags & SOTU_WEIGHTS_SKIP_HEAD) && !strncmp(ti->name, "head.", 5))
            continue;
        s = read_tensor(g, group, ti, params + ti->offset, path);
    }
cleanup:
    if (g >= 0)
        H5Gclose(g);
    H5Fclose(f);
    return s;
}
