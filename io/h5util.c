#include "io/h5util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sotu_h5_quiet(void)
{
    static int done;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = 1;
    }
}

sotu_status sotu_h5_open_read(const char *path, hid_t *file)
{
    sotu_h5_quiet();
    *file = H5I_INVALID_HID;
    if (access(path, R_OK) != 0)
        return sotu_error(SOTU_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (H5Fis_hdf5(path) <= 0)
        return sotu_error(SOTU_ERR_DATA, "%s: not an HDF5 file", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return sotu_error(SOTU_ERR_DATA, "%s: HDF5 file cannot be opened (damaged?)", path);
    *file = f;
    return SOTU_OK;
}

int sotu_h5_has_attr(hid_t loc, const char *name) { return H5Aexists(loc, name) > 0; }

static hid_t vlen_str_type(H5T_cset_t cset)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, cset) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

static sotu_status write_attr(hid_t loc, const char *name, hid_t type, hid_t space,
                              const void *buf, const char *path)
{
    sotu_status s = SOTU_OK;
    if (H5Aexists(loc, name) > 0 && H5Adelete(loc, name) < 0)
        return sotu_error(SOTU_ERR_IO, "%s: cannot replace attribute '%s'", path, name);
    hid_t a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, type, buf) < 0)
        s = sotu_error(SOTU_ERR_IO, "%s: cannot write attribute '%s'", path, name);
    if (a >= 0)
        H5Aclose(a);
    return s;
}

sotu_status sotu_h5_write_str_attr(hid_t loc, const char *name, const char *value,
                                   const char *path)
{
    hid_t t = vlen_str_type(H5T_CSET_UTF8), sp = H5Screate(H5S_SCALAR);
    sotu_status s;
    if (t < 0 || sp < 0)
        s = sotu_error(SOTU_ERR_IO, "%s: cannot create type for attribute '%s'", path, name);
    else
        s = write_attr(loc, name, t, sp, &value, path);
    if (t >= 0)
        H5Tclose(t);
    if (sp >= 0)
        H5Sclose(sp);
    return s;
}

sotu_status sotu_h5_write_int_attr(hid_t loc, const char *name, int64_t value, const char *path)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    if (sp < 0)
        return sotu_error(SOTU_ERR_IO, "%s: cannot create space for attribute '%s'", path, name);
    sotu_status s;
    if (value >= INT32_MIN && value <= INT32_MAX) {
        int32_t v = (int32_t)value;
        s = write_attr(loc, name, H5T_NATIVE_INT32, sp, &v, path);
    } else {
        s = write_attr(loc, name, H5T_NATIVE_INT64, sp, &value, path);
    }
    H5Sclose(sp);
    return s;
}

sotu_status sotu_h5_write_f64_attr(hid_t loc, const char *name, double value, const char *path)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    if (sp < 0)
        return sotu_error(SOTU_ERR_IO, "%s: cannot create space for attribute '%s'", path, name);
    sotu_status s = write_attr(loc, name, H5T_NATIVE_DOUBLE, sp, &value, path);
    H5Sclose(sp);
    return s;
}

sotu_status sotu_h5_write_f64_dataset(hid_t loc, const char *name, int ndim, const int64_t *dims,
                                      const double *data, const char *path)
{
    hsize_t d[8];
    for (int k = 0; k < ndim && k < 8; k++)
        d[k] = (hsize_t)dims[k];
    hid_t sp = H5Screate_simple(ndim, d, NULL), dcpl = sotu_h5_dcpl();
    hid_t ds = sp >= 0 && dcpl >= 0 ? H5Dcreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, dcpl,
                                                 H5P_DEFAULT)
                                    : H5I_INVALID_HID;
    sotu_status s = SOTU_OK;
    if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        s = sotu_error(SOTU_ERR_IO, "%s: cannot write dataset '%s'", path, name);
    if (ds >= 0)
        H5Dclose(ds);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (sp >= 0)
        H5Sclose(sp);
    return s;
}

sotu_status sotu_h5_write_str_array_attr(hid_t loc, const char *name, const char *const *values,
                                         int n, const char *path)
{
    hsize_t dim = (hsize_t)n;
    hid_t t = vlen_str_type(H5T_CSET_UTF8), sp = H5Screate_simple(1, &dim, NULL);
    sotu_status s;
    if (t < 0 || sp < 0)
        s = sotu_error(SOTU_ERR_IO, "%s: cannot create type for attribute '%s'", path, name);
    else
        s = write_attr(loc, name, t, sp, values, path);
    if (t >= 0)
        H5Tclose(t);
    if (sp >= 0)
        H5Sclose(sp);
    return s;
}

/* Opens attribute name of loc and checks its type class and element count. */
static sotu_status open_attr(hid_t loc, const char *name, H5T_class_t want, hssize_t count,
                             const char *path, hid_t *attr, hid_t *type)
{
    *attr = *type = H5I_INVALID_HID;
    if (H5Aexists(loc, name) <= 0)
        return sotu_error(SOTU_ERR_DATA, "%s: attribute '%s' is missing", path, name);
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0)
        return sotu_error(SOTU_ERR_DATA, "%s: attribute '%s' cannot be opened", path, name);
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    sotu_status s = SOTU_OK;
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (t < 0 || H5Tget_class(t) != want) {
        s = sotu_error(SOTU_ERR_DATA, "%s: attribute '%s' has the wrong type, expected %s", path,
                       name, want == H5T_STRING ? "a string" : "an integer");
    } else if (n != count || rank > 1) {
        s = sotu_error(SOTU_ERR_DATA, "%s: attribute '%s' has %lld elements, expected %lld", path,
                       name, (long long)n, (long long)count);
    }
    if (sp >= 0)
        H5Sclose(sp);
    if (s != SOTU_OK) {
        if (t >= 0)
            H5Tclose(t);
        H5Aclose(a);
        return s;
    }
    *attr = a;
    *type = t;
    return SOTU_OK;
}

sotu_status sotu_h5_read_int_attr(hid_t loc, const char *name, int64_t *value, const char *path)
{
    hid_t a, t;
    sotu_status s = open_attr(loc, name, H5T_INTEGER, 1, path, &a, &t);
    if (s != SOTU_OK)
        return s;
    if (H5Aread(a, H5T_NATIVE_INT64, value) < 0)
        s = sotu_error(SOTU_ERR_DATA, "%s: attribute '%s' cannot be read", path, name);
    H5Tclose(t);
    H5Aclose(a);
    return s;
}

sotu_status sotu_h5_read_f64_attr(hid_t loc, const char *name, double *value, const char *path)
{
    hid_t a, t;
    sotu_status s = open_attr(loc, name, H5T_FLOAT, 1, path, &a, &t);
    if (s != SOTU_OK)
        return s;
    if (H5Aread(a, H5T_NATIVE_DOUBLE, value) < 0)
        s = sotu_error(SOTU_ERR_DATA, "%s: attribute '%s' cannot be read", path, name);
    H5Tclose(t);
    H5Aclose(a);
    return s;
}

/* Reads n strings of attribute a (type t) into dst + i * stride. */
static sotu_status read_strings(hid_t a, hid_t t, int n, char *dst, size_t stride,
                                const char *name, const char *path)
{
    sotu_status s = SOTU_OK;
    hid_t mt = H5I_INVALID_HID;
    void *buf = NULL;
    if (H5Tis_variable_str(t) > 0) {
        mt = vlen_str_type(H5Tget_cset(t));
        char **v = calloc((size_t)n + 1, sizeof *v);
        buf = v;
        if (mt < 0 || !v || H5Aread(a, mt, v) < 0) {
            s = sotu_error(SOTU_ERR_DATA, "%s: attribute '%s' cannot be read", path, name);
            goto cleanup;
        }
        for (int i = 0; i < n; i++) {
            snprintf(dst + (size_t)i * stride, stride, "%s", v[i] ? v[i] : "");
            H5free_memory(v[i]);
        }
    } else {
        size_t size = H5Tget_size(t);
        mt = H5Tcopy(H5T_C_S1);
        char *f = malloc((size + 1) * (size_t)n + 1);
        buf = f;
        if (mt < 0 || !f || size == 0 || H5Tset_size(mt, size) < 0 ||
            H5Tset_cset(mt, H5Tget_cset(t)) < 0 ||
            H5Tset_strpad(mt, H5T_STR_NULLPAD) < 0 || H5Aread(a, mt, f) < 0) {
            s = sotu_error(SOTU_ERR_DATA, "%s: attribute '%s' cannot be read", path, name);
            goto cleanup;
        }
        for (int i = 0; i < n; i++) {
            size_t len = strnlen(f + (size_t)i * size, size);
            if (len >= stride)
                len = stride - 1;
            memcpy(dst + (size_t)i * stride, f + (size_t)i * size, len);
            dst[(size_t)i * stride + len] = '\0';
        }
    }
cleanup:
    free(buf);
    if (mt >= 0)
        H5Tclose(mt);
    return s;
}

sotu_status sotu_h5_read_str_attr(hid_t loc, const char *name, char *dst, size_t cap,
                                  const char *path)
{
    hid_t a, t;
    sotu_status s = open_attr(loc, name, H5T_STRING, 1, path, &a, &t);
    if (s != SOTU_OK)
        return s;
    s = read_strings(a, t, 1, dst, cap, name, path);
    H5Tclose(t);
    H5Aclose(a);
    return s;
}

sotu_status sotu_h5_read_str_array_attr(hid_t loc, const char *name, int n, char *dst,
                                        size_t stride, const char *path)
{
    hid_t a, t;
    sotu_status s = open_attr(loc, name, H5T_STRING, n, path, &a, &t);
    if (s != SOTU_OK)
        return s;
    s = read_strings(a, t, n, dst, stride, name, path);
    H5Tclose(t);
    H5Aclose(a);
    return s;
}

hid_t sotu_h5_dcpl(void)
{
    hid_t p = H5Pcreate(H5P_DATASET_CREATE);
    if (p >= 0 && H5Pset_obj_track_times(p, 0) < 0) {
        H5Pclose(p);
        return H5I_INVALID_HID;
    }
    return p;
}

hid_t sotu_h5_gcpl(void)
{
    hid_t p = H5Pcreate(H5P_GROUP_CREATE);
    if (p >= 0 && H5Pset_obj_track_times(p, 0) < 0) {
        H5Pclose(p);
        return H5I_INVALID_HID;
    }
    return p;
}

const char *sotu_h5_file_format(const char *path, char *dst, size_t cap)
{
    sotu_h5_quiet();
    if (access(path, R_OK) != 0 || H5Fis_hdf5(path) <= 0)
        return NULL;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return NULL;
    const char *r = NULL;
    if (H5Aexists(f, "format") > 0) {
        hid_t a = H5Aopen(f, "format", H5P_DEFAULT);
        hid_t t = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
        if (t >= 0 && H5Tget_class(t) == H5T_STRING &&
            read_strings(a, t, 1, dst, cap, "format", path) == SOTU_OK)
            r = dst;
        if (t >= 0)
            H5Tclose(t);
        if (a >= 0)
            H5Aclose(a);
    }
    H5Fclose(f);
    return r;
}

double sotu_h5_f64_attr_or_nan(hid_t loc, const char *name, const char *path)
{
    double v = NAN;
    if (sotu_h5_has_attr(loc, name) > 0 && sotu_h5_read_f64_attr(loc, name, &v, path) != SOTU_OK)
        v = NAN;
    return v;
}

sotu_status sotu_h5_read_str_attr_alloc(hid_t loc, const char *name, char **out, const char *path)
{
    *out = NULL;
    if (H5Aexists(loc, name) <= 0)
        return sotu_error(SOTU_ERR_DATA, "%s: attribute '%s' is missing", path, name);
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    size_t cap = 0;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING)
        cap = H5Tis_variable_str(t) > 0 ? 0 : H5Tget_size(t);
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    if (cap == 0) {
        /* Variable length: HDF5 allocates the string. */
        hid_t aa = H5Aopen(loc, name, H5P_DEFAULT);
        hid_t mt = H5Tcopy(H5T_C_S1);
        char *v = NULL;
        sotu_status s = SOTU_OK;
        if (aa < 0 || mt < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 ||
            H5Aread(aa, mt, &v) < 0 || !v) {
            s = sotu_error(SOTU_ERR_DATA, "%s: attribute '%s': expected a string", path, name);
        } else {
            *out = strdup(v);
            if (!*out)
                s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot copy attribute '%s'", path, name);
        }
        if (v)
            H5free_memory(v);
        if (mt >= 0)
            H5Tclose(mt);
        if (aa >= 0)
            H5Aclose(aa);
        return s;
    }
    char *buf = malloc(cap + 1);
    if (!buf)
        return sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate attribute '%s'", path, name);
    sotu_status s = sotu_h5_read_str_attr(loc, name, buf, cap + 1, path);
    if (s != SOTU_OK) {
        free(buf);
        return s;
    }
    *out = buf;
    return SOTU_OK;
}

sotu_status sotu_h5_write_provenance(hid_t loc, const sotu_provenance *p,
                                     uint64_t manifest_xxh64, const char *path)
{
    char theta0[20], manifest[20];
    snprintf(theta0, sizeof theta0, "%016llx", (unsigned long long)p->theta0);
    snprintf(manifest, sizeof manifest, "%016llx", (unsigned long long)manifest_xxh64);
    sotu_status s = sotu_h5_write_str_attr(loc, "theta0_xxh64", theta0, path);
    if (s == SOTU_OK)
        s = sotu_h5_write_str_attr(loc, "model_pretrained", p->pretrained, path);
    if (s == SOTU_OK)
        s = sotu_h5_write_str_attr(loc, "manifest_xxh64", manifest, path);
    if (s == SOTU_OK)
        s = sotu_h5_write_str_attr(loc, "sotu_commit", p->commit, path);
    return s;
}

void sotu_h5_read_provenance(hid_t loc, sotu_provenance_attrs *out, const char *path)
{
    memset(out, 0, sizeof *out);
    struct {
        const char *name;
        char *dst;
        size_t cap;
    } f[] = {{"theta0_xxh64", out->theta0_xxh64, sizeof out->theta0_xxh64},
             {"manifest_xxh64", out->manifest_xxh64, sizeof out->manifest_xxh64},
             {"sotu_commit", out->commit, sizeof out->commit},
             {"model_pretrained", out->pretrained, sizeof out->pretrained}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (sotu_h5_has_attr(loc, f[i].name) > 0 &&
            sotu_h5_read_str_attr(loc, f[i].name, f[i].dst, f[i].cap, path) != SOTU_OK)
            f[i].dst[0] = '\0';
}

sotu_status sotu_h5_check_format_version(hid_t file, int newest, const char *kind,
                                         const char *path)
{
    if (!sotu_h5_has_attr(file, "format_version"))
        return SOTU_OK;
    int64_t v = 0;
    sotu_status s = sotu_h5_read_int_attr(file, "format_version", &v, path);
    if (s != SOTU_OK)
        return s;
    if (v > newest)
        return sotu_error(SOTU_ERR_DATA, "%s: %s of format_version %lld, newer than this sotu "
                          "reads (up to %d): it was written by a newer sotu; read it with that "
                          "version", path, kind, (long long)v, newest);
    if (v < 1)
        return sotu_error(SOTU_ERR_DATA, "%s: %s format_version %lld, expected 1..%d", path,
                          kind, (long long)v, newest);
    return SOTU_OK;
}
