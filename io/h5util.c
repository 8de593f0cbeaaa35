#include "io/h5util.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/fsutil.h"

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
    char why[256];
    if (a < 0 || H5Awrite(a, type, buf) < 0)
        s = sotu_error(SOTU_ERR_IO, "%s: cannot write attribute '%s': %s", path, name,
                       sotu_h5_reason(why, sizeof why));
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
    hid_t sp = H5Screate_simple(ndim, d, NULL), dcpl = sotu_h5_dcpl_checked(ndim, d, sizeof(double));
    hid_t ds = sp >= 0 && dcpl >= 0 ? H5Dcreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, dcpl,
                                                 H5P_DEFAULT)
                                    : H5I_INVALID_HID;
    sotu_status s = SOTU_OK;
    char why[256];
    if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        s = sotu_error(SOTU_ERR_IO, "%s: cannot write dataset '%s': %s", path, name,
                       sotu_h5_reason(why, sizeof why));
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

hid_t sotu_h5_dcpl_checked(int ndim, const hsize_t *dims, size_t elem)
{
    hid_t p = sotu_h5_dcpl();
    if (p < 0 || ndim <= 0 || ndim > 8)
        return p;
    hsize_t chunk[8];
    double bytes = (double)elem;
    for (int k = 0; k < ndim; k++) {
        if (dims[k] == 0)
            return p;
        chunk[k] = dims[k];
        bytes *= (double)dims[k];
    }
    /* HDF5 chunks hold less than 4 GiB. */
    for (int k = 0; k < ndim && bytes > (double)(1u << 30); ) {
        if (chunk[k] == 1) {
            k++;
            continue;
        }
        bytes /= (double)chunk[k];
        chunk[k] = (chunk[k] + 1) / 2;
        bytes *= (double)chunk[k];
    }
    if (H5Pset_chunk(p, ndim, chunk) < 0 || H5Pset_fletcher32(p) < 0) {
        H5Pclose(p);
        return H5I_INVALID_HID;
    }
    return p;
}

typedef struct {
    char *buf;
    size_t cap;
} reason_buf;

/* Keeps the innermost (last, walking downward) message of the stack. */
static herr_t keep_last_message(unsigned n, const H5E_error2_t *e, void *data)
{
    reason_buf *r = data;
    snprintf(r->buf, r->cap, "%s", e->desc ? e->desc : "");
    return 0;
}

const char *sotu_h5_reason(char *buf, size_t cap)
{
    if (cap == 0)
        return buf;
    buf[0] = '\0';
    reason_buf r = {buf, cap};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, keep_last_message, &r);
    /* A failed POSIX call reads "file write failed: time = ..., errno = 28,
     * error message = 'No space left on device', ...": keep the message. */
    const char *m = strstr(buf, "error message = '");
    if (m) {
        m += strlen("error message = '");
        size_t n = strcspn(m, "'");
        memmove(buf, m, n);
        buf[n] = '\0';
    }
    for (char *p = buf; *p; p++)
        if (*p == '\n')
            *p = ' ';
    if (!buf[0])
        snprintf(buf, cap, "HDF5 error");
    return buf;
}

/* ------------------------------------------------------------------------ */
/* The in-memory file of sotu_h5_write_file                                  */
/* ------------------------------------------------------------------------ */

/* The core driver's buffer, followed through HDF5's file image callbacks:
 * it is the file's bytes from address 0. */
typedef struct {
    void *mem;
} h5_image;

static int is_file_op(H5FD_file_image_op_t op)
{
    return op == H5FD_FILE_IMAGE_OP_FILE_OPEN || op == H5FD_FILE_IMAGE_OP_FILE_RESIZE;
}

static void *image_malloc(size_t size, H5FD_file_image_op_t op, void *udata)
{
    void *p = malloc(size ? size : 1);
    if (p && is_file_op(op))
        ((h5_image *)udata)->mem = p;
    return p;
}

static void *image_memcpy(void *dst, const void *src, size_t size, H5FD_file_image_op_t op,
                          void *udata)
{
    return memcpy(dst, src, size);
}

static void *image_realloc(void *ptr, size_t size, H5FD_file_image_op_t op, void *udata)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p && is_file_op(op))
        ((h5_image *)udata)->mem = p;
    return p;
}

static herr_t image_free(void *ptr, H5FD_file_image_op_t op, void *udata)
{
    h5_image *im = udata;
    if (ptr == im->mem)
        im->mem = NULL;
    free(ptr);
    return 0;
}

/* The callbacks' udata lives on sotu_h5_write_file's stack; property list
 * copies share it. */
static void *image_udata_copy(void *udata) { return udata; }
static herr_t image_udata_free(void *udata) { return 0; }

/* 16 MiB: the core driver grows its buffer in these steps. */
#define CORE_INCREMENT ((size_t)16 << 20)

sotu_status sotu_h5_write_file(const char *path, sotu_h5_fill_fn fill, const void *ctx)
{
    sotu_h5_quiet();
    char why[256];
    h5_image im = {NULL};
    H5FD_file_image_callbacks_t cb = {image_malloc,     image_memcpy,     image_realloc, image_free,
                                      image_udata_copy, image_udata_free, &im};
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        H5Pset_fapl_core(fapl, CORE_INCREMENT, 0) < 0 ||
        H5Pset_file_image_callbacks(fapl, &cb) < 0) {
        sotu_status s = sotu_error(SOTU_ERR_IO, "%s: cannot set up HDF5 file access: %s", path,
                                   sotu_h5_reason(why, sizeof why));
        if (fapl >= 0)
            H5Pclose(fapl);
        return s;
    }
    /* With the core driver and no backing store, nothing at path is opened:
     * the name only labels HDF5's messages. */
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0)
        return sotu_error(SOTU_ERR_IO, "%s: cannot create an HDF5 file in memory: %s", path,
                          sotu_h5_reason(why, sizeof why));
    sotu_status s = fill(f, ctx, path);
    ssize_t size = -1;
    if (s == SOTU_OK) {
        /* fill must close what it opens; STRONG only covers failure paths. */
        assert(H5Fget_obj_count(f, H5F_OBJ_DATASET | H5F_OBJ_GROUP | H5F_OBJ_DATATYPE |
                                       H5F_OBJ_ATTR | H5F_OBJ_LOCAL) == 0);
        if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0 || (size = H5Fget_file_image(f, NULL, 0)) <= 0 ||
            !im.mem)
            s = sotu_error(SOTU_ERR_IO, "%s: HDF5 cannot finish the file: %s", path,
                           sotu_h5_reason(why, sizeof why));
    }
    if (s == SOTU_OK)
        s = sotu_write_file_atomic(path, im.mem, (size_t)size);
    /* Memory only: this close does no I/O, so it cannot fail the way a close
     * on a full disk does. */
    if (H5Fclose(f) < 0 && s == SOTU_OK)
        s = sotu_error(SOTU_ERR_INTERNAL, "%s: written, but HDF5 failed to close its "
                       "in-memory copy: %s", path, sotu_h5_reason(why, sizeof why));
    assert(!im.mem);
    return s;
}

/* ------------------------------------------------------------------------ */
/* Verifying every dataset                                                   */
/* ------------------------------------------------------------------------ */

typedef struct {
    const char *path;
    int n, checked;
    sotu_status s;
} verify_walk;

static int has_fletcher32(hid_t d)
{
    hid_t dcpl = H5Dget_create_plist(d);
    int found = 0;
    int n = dcpl >= 0 ? H5Pget_nfilters(dcpl) : 0;
    for (int i = 0; i < n && !found; i++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        char name[64];
        found = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof name, name, NULL) ==
                H5Z_FILTER_FLETCHER32;
    }
    if (dcpl >= 0)
        H5Pclose(dcpl);
    return found;
}

static herr_t verify_one(hid_t g, const char *name, const H5L_info_t *li, void *data)
{
    verify_walk *w = data;
    H5O_info_t oi;
    if (li->type != H5L_TYPE_HARD || H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0 ||
        oi.type != H5O_TYPE_DATASET)
        return 0;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    hid_t t = d >= 0 ? H5Dget_type(d) : H5I_INVALID_HID;
    hid_t sp = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    size_t size = t >= 0 ? H5Tget_size(t) : 0;
    int fixed = t >= 0 && H5Tget_class(t) != H5T_VLEN && H5Tis_variable_str(t) <= 0;
    void *buf = NULL;
    char why[256];
    if (d < 0 || t < 0 || n < 0) {
        w->s = sotu_error(SOTU_ERR_DATA, "%s: dataset /%s cannot be opened: %s", w->path, name,
                          sotu_h5_reason(why, sizeof why));
    } else if (fixed && n > 0) {
        buf = malloc((size_t)n * size);
        if (!buf)
            w->s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate %lld values to verify /%s",
                              w->path, (long long)n, name);
        else if (H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
            w->s = sotu_error(SOTU_ERR_DATA, "%s: dataset /%s is damaged: %s", w->path, name,
                              sotu_h5_reason(why, sizeof why));
    }
    if (w->s == SOTU_OK) {
        w->n++;
        w->checked += has_fletcher32(d);
    }
    free(buf);
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    if (d >= 0)
        H5Dclose(d);
    return w->s == SOTU_OK ? 0 : -1;
}

sotu_status sotu_h5_verify_datasets(hid_t file, const char *path, int *n_datasets,
                                    int *n_checked)
{
    verify_walk w = {path, 0, 0, SOTU_OK};
    if (H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, verify_one, &w) < 0 && w.s == SOTU_OK)
        w.s = sotu_error(SOTU_ERR_DATA, "%s: the file's groups cannot be listed", path);
    *n_datasets = w.n;
    *n_checked = w.checked;
    return w.s;
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
