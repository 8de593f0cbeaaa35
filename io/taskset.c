#include "io/taskset.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "common/rng.h"
#include "io/fsutil.h"
#include "io/h5util.h"

/* ------------------------------------------------------------------------ */
/* Task files                                                               */
/* ------------------------------------------------------------------------ */

static void file_stem(char *dst, size_t cap, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    snprintf(dst, cap, "%.*s", (int)len, base);
}

/* "uint8", "int16", "float32", "string", ... for messages. */
static const char *type_name(hid_t t, char *buf, size_t cap)
{
    H5T_class_t c = H5Tget_class(t);
    size_t bits = H5Tget_size(t) * 8;
    if (c == H5T_INTEGER)
        snprintf(buf, cap, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", bits);
    else if (c == H5T_FLOAT)
        snprintf(buf, cap, "float%zu", bits);
    else if (c == H5T_STRING)
        snprintf(buf, cap, "string");
    else
        snprintf(buf, cap, "HDF5 type class %d", (int)c);
    return buf;
}

static sotu_status write_dataset(hid_t file, const char *name, hid_t file_type, hid_t mem_type,
                                 int rank, const hsize_t *dims, const void *buf, int compress,
                                 const char *path)
{
    sotu_status s = SOTU_OK;
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = sotu_h5_dcpl(), d = H5I_INVALID_HID;
    if (sp < 0 || dcpl < 0) {
        s = sotu_error(SOTU_ERR_IO, "%s: cannot create dataset %s", path, name);
        goto cleanup;
    }
    if (compress && dims[0] > 0 && H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
        hsize_t chunk[4];
        for (int i = 0; i < rank; i++)
            chunk[i] = dims[i];
        chunk[0] = dims[0] < 256 ? dims[0] : 256;
        if (H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_deflate(dcpl, 1) < 0) {
            s = sotu_error(SOTU_ERR_IO, "%s: cannot set compression of %s", path, name);
            goto cleanup;
        }
    }
    d = H5Dcreate2(file, name, file_type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    char why[256];
    if (d < 0) {
        s = sotu_error(SOTU_ERR_IO, "%s: cannot create dataset %s: %s", path, name,
                       sotu_h5_reason(why, sizeof why));
        goto cleanup;
    }
    if (dims[0] > 0 && H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        s = sotu_error(SOTU_ERR_IO, "%s: cannot write dataset %s: %s", path, name,
                       sotu_h5_reason(why, sizeof why));
cleanup:
    if (d >= 0)
        H5Dclose(d);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (sp >= 0)
        H5Sclose(sp);
    return s;
}

static sotu_status write_split(hid_t file, const char *split, const sotu_taskset *t, int32_t n,
                               const uint8_t *images, const int32_t *labels, const char *path)
{
    char name[64];
    hid_t gcpl = sotu_h5_gcpl();
    hid_t g = gcpl >= 0 ? H5Gcreate2(file, split, H5P_DEFAULT, gcpl, H5P_DEFAULT) : gcpl;
    if (gcpl >= 0)
        H5Pclose(gcpl);
    if (g < 0)
        return sotu_error(SOTU_ERR_IO, "%s: cannot create group /%s", path, split);
    H5Gclose(g);
    hsize_t idims[4] = {(hsize_t)n, (hsize_t)t->height, (hsize_t)t->width, (hsize_t)t->channels};
    snprintf(name, sizeof name, "/%s/images", split);
    sotu_status s = write_dataset(file, name, H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, idims, images, 1,
                                  path);
    if (s != SOTU_OK)
        return s;
    hsize_t ldims[1] = {(hsize_t)n};
    snprintf(name, sizeof name, "/%s/labels", split);
    return write_dataset(file, name, H5T_STD_I32LE, H5T_NATIVE_INT32, 1, ldims, labels, 0, path);
}

static sotu_status check_labels(const char *path, const char *dataset, const int32_t *labels,
                                int32_t n, int classes)
{
    for (int32_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= classes)
            return sotu_error(SOTU_ERR_DATA,
                              "%s: %s[%" PRId32 "] = %" PRId32 ", expected 0..%d (classes = %d)",
                              path, dataset, i, labels[i], classes - 1, classes);
    return SOTU_OK;
}

static sotu_status fill_taskset(hid_t f, const void *ctx, const char *path)
{
    const sotu_taskset *t = ctx;
    const char **names = malloc((size_t)t->classes * sizeof *names);
    if (!names)
        return sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate class names", path);
    for (int i = 0; i < t->classes; i++)
        names[i] = t->class_names[i];
    sotu_status s;
    if ((s = sotu_h5_write_str_attr(f, "format", SOTU_TASK_FORMAT, path)) == SOTU_OK &&
        (s = sotu_h5_write_int_attr(f, "format_version", SOTU_TASK_FORMAT_VERSION, path)) == SOTU_OK &&
        (s = sotu_h5_write_str_attr(f, "name", t->name, path)) == SOTU_OK &&
        (s = sotu_h5_write_int_attr(f, "classes", t->classes, path)) == SOTU_OK &&
        (s = sotu_h5_write_str_array_attr(f, "class_names", names, t->classes, path)) == SOTU_OK &&
        (s = write_split(f, "train", t, t->n_train, t->train_images, t->train_labels, path)) == SOTU_OK)
        s = write_split(f, "test", t, t->n_test, t->test_images, t->test_labels, path);
    free(names);
    return s;
}

sotu_status sotu_taskset_write(const char *path, const sotu_taskset *t)
{
    assert(t->classes > 0 && t->height > 0 && t->width > 0 && t->channels > 0);
    assert(t->n_train >= 0 && t->n_test >= 0 && t->class_names);
    sotu_status s = check_labels(path, "/train/labels", t->train_labels, t->n_train, t->classes);
    if (s == SOTU_OK)
        s = check_labels(path, "/test/labels", t->test_labels, t->n_test, t->classes);
    if (s != SOTU_OK)
        return s;
    return sotu_h5_write_file(path, fill_taskset, t);
}

/* Opens dataset name and returns its type and dims; SOTU_ERR_DATA naming the
 * dataset if it is missing, is not a dataset, or has another rank. */
static sotu_status open_dataset(hid_t f, const char *name, int rank, hsize_t *dims,
                                const char *path, hid_t *dset, hid_t *type)
{
    *dset = *type = H5I_INVALID_HID;
    const char *group_end = strchr(name + 1, '/');
    char group[64];
    snprintf(group, sizeof group, "%.*s", (int)(group_end - name), name);
    if (H5Lexists(f, group, H5P_DEFAULT) <= 0 || H5Lexists(f, name, H5P_DEFAULT) <= 0)
        return sotu_error(SOTU_ERR_DATA, "%s: dataset %s is missing", path, name);
    H5O_info_t info;
    if (H5Oget_info_by_name(f, name, &info, H5P_DEFAULT) < 0 || info.type != H5O_TYPE_DATASET)
        return sotu_error(SOTU_ERR_DATA, "%s: %s is not a dataset", path, name);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0)
        return sotu_error(SOTU_ERR_DATA, "%s: dataset %s cannot be opened", path, name);
    hid_t sp = H5Dget_space(d);
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (r != rank) {
        if (sp >= 0)
            H5Sclose(sp);
        H5Dclose(d);
        return sotu_error(SOTU_ERR_DATA, "%s: dataset %s has rank %d, expected %d (%s)", path,
                          name, r, rank, rank == 4 ? "[N,H,W,C]" : "[N]");
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    *dset = d;
    *type = H5Dget_type(d);
    return SOTU_OK;
}

static sotu_status read_split(hid_t f, const char *split, const char *path, sotu_taskset *t,
                              int32_t *n_out, uint8_t **images_out, int32_t **labels_out)
{
    char iname[32], lname[32], tn[64];
    snprintf(iname, sizeof iname, "/%s/images", split);
    snprintf(lname, sizeof lname, "/%s/labels", split);
    sotu_status s = SOTU_OK;
    hid_t di = H5I_INVALID_HID, ti = H5I_INVALID_HID, dl = H5I_INVALID_HID, tl = H5I_INVALID_HID;
    uint8_t *images = NULL;
    int32_t *labels = NULL;
    hsize_t idims[4], ldims[1];

    if ((s = open_dataset(f, iname, 4, idims, path, &di, &ti)) != SOTU_OK)
        goto cleanup;
    if (H5Tget_class(ti) != H5T_INTEGER || H5Tget_size(ti) != 1 ||
        H5Tget_sign(ti) != H5T_SGN_NONE) {
        s = sotu_error(SOTU_ERR_DATA, "%s: dataset %s has dtype %s, expected uint8", path, iname,
                       type_name(ti, tn, sizeof tn));
        goto cleanup;
    }
    for (int i = 1; i < 4; i++) {
        hsize_t limit = i == 3 ? SOTU_TASK_MAX_CHANNELS : SOTU_TASK_MAX_SIDE;
        if (idims[i] == 0 || idims[i] > limit) {
            s = sotu_error(SOTU_ERR_DATA, "%s: dataset %s dimension %d is %llu, expected 1..%llu",
                           path, iname, i, (unsigned long long)idims[i],
                           (unsigned long long)limit);
            goto cleanup;
        }
    }
    if (t->height == 0) {
        t->height = (int)idims[1];
        t->width = (int)idims[2];
        t->channels = (int)idims[3];
    } else if (idims[1] != (hsize_t)t->height || idims[2] != (hsize_t)t->width ||
               idims[3] != (hsize_t)t->channels) {
        s = sotu_error(SOTU_ERR_DATA,
                       "%s: dataset %s has images of %llux%llux%llu, /train/images has %dx%dx%d",
                       path, iname, (unsigned long long)idims[1], (unsigned long long)idims[2],
                       (unsigned long long)idims[3], t->height, t->width, t->channels);
        goto cleanup;
    }
    size_t item = (size_t)idims[1] * idims[2] * idims[3];
    if (idims[0] > INT32_MAX || idims[0] > SOTU_TASK_MAX_BYTES / item) {
        s = sotu_error(SOTU_ERR_DATA, "%s: dataset %s has %llu images, more than allowed", path,
                       iname, (unsigned long long)idims[0]);
        goto cleanup;
    }
    int32_t n = (int32_t)idims[0];

    if ((s = open_dataset(f, lname, 1, ldims, path, &dl, &tl)) != SOTU_OK)
        goto cleanup;
    if (H5Tget_class(tl) != H5T_INTEGER) {
        s = sotu_error(SOTU_ERR_DATA, "%s: dataset %s has dtype %s, expected int32", path, lname,
                       type_name(tl, tn, sizeof tn));
        goto cleanup;
    }
    if (ldims[0] != (hsize_t)n) {
        s = sotu_error(SOTU_ERR_DATA, "%s: dataset %s has %llu labels but %s has %d images",
                       path, lname, (unsigned long long)ldims[0], iname, (int)n);
        goto cleanup;
    }
    images = malloc(n ? (size_t)n * item : 1);
    labels = malloc(n ? (size_t)n * sizeof *labels : 1);
    if (!images || !labels) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate %s (%d images)", path, split, (int)n);
        goto cleanup;
    }
    if (n > 0 && H5Dread(di, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, images) < 0) {
        s = sotu_error(SOTU_ERR_DATA, "%s: dataset %s cannot be read", path, iname);
        goto cleanup;
    }
    /* Wider integer labels convert with clipping, which the range check catches. */
    if (n > 0 && H5Dread(dl, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels) < 0) {
        s = sotu_error(SOTU_ERR_DATA, "%s: dataset %s cannot be read", path, lname);
        goto cleanup;
    }
    if ((s = check_labels(path, lname, labels, n, t->classes)) != SOTU_OK)
        goto cleanup;
    *n_out = n;
    *images_out = images;
    *labels_out = labels;
    images = NULL;
    labels = NULL;
cleanup:
    free(images);
    free(labels);
    if (ti >= 0)
        H5Tclose(ti);
    if (tl >= 0)
        H5Tclose(tl);
    if (di >= 0)
        H5Dclose(di);
    if (dl >= 0)
        H5Dclose(dl);
    return s;
}

/* Reads the task from the open file f (closed on return); path names it in
 * messages and gives the default name. */
static sotu_status read_task_file(hid_t f, const char *path, sotu_taskset *t)
{
    sotu_status s = SOTU_OK;
    char format[64];
    int64_t classes = 0;
    if (sotu_h5_has_attr(f, "format")) {
        if ((s = sotu_h5_read_str_attr(f, "format", format, sizeof format, path)) != SOTU_OK)
            goto cleanup;
        if (strcmp(format, SOTU_TASK_FORMAT) != 0) {
            s = sotu_error(SOTU_ERR_DATA, "%s: attribute format is '%s', expected '%s'", path,
                           format, SOTU_TASK_FORMAT);
            goto cleanup;
        }
    }
    if ((s = sotu_h5_check_format_version(f, SOTU_TASK_FORMAT_VERSION, "task file", path)) !=
        SOTU_OK)
        goto cleanup;
    if ((s = sotu_h5_read_int_attr(f, "classes", &classes, path)) != SOTU_OK)
        goto cleanup;
    if (classes < 1 || classes > SOTU_TASK_MAX_CLASSES) {
        s = sotu_error(SOTU_ERR_DATA, "%s: attribute classes is %lld, expected 1..%d", path,
                       (long long)classes, SOTU_TASK_MAX_CLASSES);
        goto cleanup;
    }
    t->classes = (int)classes;
    if (sotu_h5_has_attr(f, "name")) {
        if ((s = sotu_h5_read_str_attr(f, "name", t->name, sizeof t->name, path)) != SOTU_OK)
            goto cleanup;
    } else {
        file_stem(t->name, sizeof t->name, path);
    }
    t->class_names = calloc((size_t)t->classes, sizeof *t->class_names);
    if (!t->class_names) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate %d class names", path, t->classes);
        goto cleanup;
    }
    if (sotu_h5_has_attr(f, "class_names")) {
        s = sotu_h5_read_str_array_attr(f, "class_names", t->classes, t->class_names[0],
                                        sizeof t->class_names[0], path);
        if (s != SOTU_OK)
            goto cleanup;
    } else {
        for (int i = 0; i < t->classes; i++)
            snprintf(t->class_names[i], sizeof t->class_names[i], "%d", i);
    }
    s = read_split(f, "train", path, t, &t->n_train, &t->train_images, &t->train_labels);
    if (s == SOTU_OK)
        s = read_split(f, "test", path, t, &t->n_test, &t->test_images, &t->test_labels);
cleanup:
    H5Fclose(f);
    if (s != SOTU_OK)
        sotu_taskset_free(t);
    return s;
}

sotu_status sotu_taskset_read(const char *path, sotu_taskset *t)
{
    memset(t, 0, sizeof *t);
    hid_t f;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    return read_task_file(f, path, t);
}

sotu_status sotu_taskset_read_class_names(const char *path, int classes,
                                          char (**names)[SOTU_TASK_NAME_MAX])
{
    *names = NULL;
    hid_t f;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    int64_t have = 0;
    char (*n)[SOTU_TASK_NAME_MAX] = NULL;
    if ((s = sotu_h5_read_int_attr(f, "classes", &have, path)) == SOTU_OK && have != classes)
        s = sotu_error(SOTU_ERR_DATA, "%s: attribute classes is %lld, expected %d", path,
                       (long long)have, classes);
    if (s == SOTU_OK && !(n = calloc((size_t)classes + 1, sizeof *n)))
        s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate %d class names", path, classes);
    if (s == SOTU_OK && sotu_h5_has_attr(f, "class_names"))
        s = sotu_h5_read_str_array_attr(f, "class_names", classes, n[0], sizeof n[0], path);
    else
        for (int i = 0; s == SOTU_OK && i < classes; i++)
            snprintf(n[i], sizeof n[i], "%d", i);
    H5Fclose(f);
    if (s != SOTU_OK) {
        free(n);
        return s;
    }
    *names = n;
    return SOTU_OK;
}

sotu_status sotu_taskset_read_image(const void *buf, size_t size, const char *what,
                                    sotu_taskset *t)
{
    memset(t, 0, sizeof *t);
    sotu_h5_quiet();
    static const uint8_t signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    if (size < sizeof signature || memcmp(buf, signature, sizeof signature) != 0)
        return sotu_error(SOTU_ERR_DATA, "%s: not an HDF5 file", what);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_core(fapl, 1 << 16, 0) < 0 ||
        H5Pset_file_image(fapl, (void *)buf, size) < 0) {
        if (fapl >= 0)
            H5Pclose(fapl);
        return sotu_error(SOTU_ERR_INTERNAL, "%s: cannot set up an HDF5 file image", what);
    }
    hid_t f = H5Fopen(what, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (f < 0)
        return sotu_error(SOTU_ERR_DATA, "%s: HDF5 file cannot be opened (damaged?)", what);
    return read_task_file(f, what, t);
}

/* Rows of the 1-D dataset name (SOTU_ERR_DATA naming it if missing or not 1-D). */
static sotu_status dataset_rows(hid_t f, const char *name, const char *path, int64_t *rows)
{
    hsize_t dims[1];
    hid_t d, t;
    sotu_status s = open_dataset(f, name, 1, dims, path, &d, &t);
    if (s != SOTU_OK)
        return s;
    *rows = (int64_t)dims[0];
    H5Tclose(t);
    H5Dclose(d);
    return SOTU_OK;
}

sotu_status sotu_taskset_read_header(const char *path, sotu_taskset_header *h)
{
    memset(h, 0, sizeof *h);
    hid_t f;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    char format[64];
    int64_t classes = 0;
    if (sotu_h5_has_attr(f, "format")) {
        s = sotu_h5_read_str_attr(f, "format", format, sizeof format, path);
        if (s == SOTU_OK && strcmp(format, SOTU_TASK_FORMAT) != 0)
            s = sotu_error(SOTU_ERR_DATA, "%s: attribute format is '%s', expected '%s'", path,
                           format, SOTU_TASK_FORMAT);
    }
    if (s == SOTU_OK)
        s = sotu_h5_check_format_version(f, SOTU_TASK_FORMAT_VERSION, "task file", path);
    if (s == SOTU_OK)
        s = sotu_h5_read_int_attr(f, "classes", &classes, path);
    if (s == SOTU_OK && (classes < 1 || classes > SOTU_TASK_MAX_CLASSES))
        s = sotu_error(SOTU_ERR_DATA, "%s: attribute classes is %lld, expected 1..%d", path,
                       (long long)classes, SOTU_TASK_MAX_CLASSES);
    h->classes = (int)classes;
    if (s == SOTU_OK && sotu_h5_has_attr(f, "name"))
        s = sotu_h5_read_str_attr(f, "name", h->name, sizeof h->name, path);
    else if (s == SOTU_OK)
        file_stem(h->name, sizeof h->name, path);
    if (s == SOTU_OK)
        s = dataset_rows(f, "/train/labels", path, &h->n_train);
    if (s == SOTU_OK)
        s = dataset_rows(f, "/test/labels", path, &h->n_test);
    H5Fclose(f);
    if (s != SOTU_OK)
        memset(h, 0, sizeof *h);
    return s;
}

sotu_status sotu_manifest_check_files(const sotu_manifest *m, bool training)
{
    for (int i = 0; i < m->n_tasks; i++) {
        const sotu_manifest_task *t = &m->tasks[i];
        sotu_taskset_header h;
        sotu_status s = sotu_taskset_read_header(t->path, &h);
        if (s != SOTU_OK)
            return sotu_error_context(s, "%s: task '%s'", m->path, t->name);
        if (h.classes != t->classes)
            return sotu_error(SOTU_ERR_DATA, "%s: task '%s' lists classes %d, but its file %s "
                              "has classes %d: fix the manifest (sotu data manifest DIR writes "
                              "it from the files)", m->path, t->name, t->classes, t->path,
                              h.classes);
        if (h.n_test == 0)
            return sotu_error(SOTU_ERR_DATA, "%s: task '%s': its file %s has no test images "
                              "(/test/labels is empty), so it cannot be evaluated: add test "
                              "images or leave the task out of the manifest", m->path, t->name,
                              t->path);
        if (training && h.n_train == 0)
            return sotu_error(SOTU_ERR_DATA, "%s: task '%s': its file %s has no training "
                              "images (/train/labels is empty): add some or leave the task out "
                              "of the manifest", m->path, t->name, t->path);
    }
    return SOTU_OK;
}

void sotu_taskset_free(sotu_taskset *t)
{
    if (!t)
        return;
    free(t->class_names);
    free(t->train_images);
    free(t->train_labels);
    free(t->test_images);
    free(t->test_labels);
    free(t->val_images);
    free(t->val_labels);
    memset(t, 0, sizeof *t);
}

int32_t sotu_taskset_val_count(int64_t n_train, double fraction)
{
    if (!(fraction > 0) || n_train < 2)
        return 0;
    double v = floor(fraction * (double)n_train + 0.5);
    if (v < 1)
        v = 1;
    if (v > (double)(n_train - 1))
        v = (double)(n_train - 1);
    return (int32_t)v;
}

sotu_status sotu_taskset_hold_out(sotu_taskset *t, double fraction, uint64_t seed,
                                  uint32_t task)
{
    assert(!t->val_images && t->n_val == 0);
    int32_t n = t->n_train, nv = sotu_taskset_val_count(n, fraction);
    if (nv == 0)
        return SOTU_OK;
    size_t pix = (size_t)t->height * t->width * t->channels;
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)n);
    bool *held = calloc((size_t)n, sizeof *held);
    uint8_t *vi = malloc(pix * (size_t)nv);
    int32_t *vl = malloc(sizeof(int32_t) * (size_t)nv);
    if (!perm || !held || !vi || !vl) {
        free(perm);
        free(held);
        free(vi);
        free(vl);
        return sotu_error(SOTU_ERR_NOMEM, "task %s: validation split of %d images", t->name,
                          (int)nv);
    }
    sotu_rng r;
    sotu_rng_init(&r, seed, SOTU_STREAM_VALIDATION + ((uint64_t)task << 8));
    sotu_rng_permutation(&r, perm, n);
    for (int32_t k = 0; k < nv; k++) {
        int32_t i = perm[k];
        held[i] = true;
        memcpy(vi + (size_t)k * pix, t->train_images + (size_t)i * pix, pix);
        vl[k] = t->train_labels[i];
    }
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++) {
        if (held[i])
            continue;
        if (m != i) {
            memmove(t->train_images + (size_t)m * pix, t->train_images + (size_t)i * pix, pix);
            t->train_labels[m] = t->train_labels[i];
        }
        m++;
    }
    t->n_train = m;
    t->n_val = nv;
    t->val_images = vi;
    t->val_labels = vl;
    free(perm);
    free(held);
    return SOTU_OK;
}

/* ------------------------------------------------------------------------ */
/* Manifest                                                                 */
/* ------------------------------------------------------------------------ */

static int node_line(const yaml_node_t *n) { return (int)n->start_mark.line + 1; }

static const char *scalar(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static sotu_status parse_int(const char *path, const yaml_node_t *n, const char *what,
                             const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    const char *v = scalar(n);
    char *end = NULL;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || !v[0] || *end || errno || x < lo || x > hi)
        return sotu_error(SOTU_ERR_DATA, "%s:%d: %s: '%s' is %s%s%s, expected an integer in %lld..%lld",
                          path, node_line(n), what, key, v ? "'" : "not a scalar", v ? v : "",
                          v ? "'" : "", (long long)lo, (long long)hi);
    *out = x;
    return SOTU_OK;
}

static sotu_status copy_string(const char *path, const yaml_node_t *n, const char *what,
                               const char *key, char *dst, size_t cap)
{
    const char *v = scalar(n);
    if (!v || !v[0])
        return sotu_error(SOTU_ERR_DATA, "%s:%d: %s: '%s' must be a non-empty string", path,
                          node_line(n), what, key);
    if (strlen(v) >= cap)
        return sotu_error(SOTU_ERR_DATA, "%s:%d: %s: '%s' is longer than %zu characters", path,
                          node_line(n), what, key, cap - 1);
    memcpy(dst, v, strlen(v) + 1);
    return SOTU_OK;
}

static sotu_status parse_task(const char *path, const char *dir, yaml_document_t *doc,
                              yaml_node_t *item, int index, sotu_manifest_task *task)
{
    char what[32];
    snprintf(what, sizeof what, "task %d", index);
    if (item->type != YAML_MAPPING_NODE)
        return sotu_error(SOTU_ERR_DATA, "%s:%d: %s must be a mapping with name, file, classes",
                          path, node_line(item), what);
    int have_name = 0, have_file = 0, have_classes = 0;
    sotu_status s = SOTU_OK;
    for (yaml_node_pair_t *p = item->data.mapping.pairs.start;
         p < item->data.mapping.pairs.top && s == SOTU_OK; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        const char *key = scalar(k);
        int64_t x = 0;
        if (!key) {
            s = sotu_error(SOTU_ERR_DATA, "%s:%d: %s: keys must be scalars", path, node_line(k),
                           what);
        } else if (!strcmp(key, "name")) {
            s = copy_string(path, v, what, key, task->name, sizeof task->name);
            have_name = 1;
        } else if (!strcmp(key, "file")) {
            s = copy_string(path, v, what, key, task->file, sizeof task->file);
            have_file = 1;
        } else if (!strcmp(key, "classes")) {
            s = parse_int(path, v, what, key, 1, SOTU_TASK_MAX_CLASSES, &x);
            task->classes = (int)x;
            have_classes = 1;
        } else if (!strcmp(key, "train")) {
            s = parse_int(path, v, what, key, 0, INT32_MAX, &task->n_train);
        } else if (!strcmp(key, "test")) {
            s = parse_int(path, v, what, key, 0, INT32_MAX, &task->n_test);
        } else {
            s = sotu_error(SOTU_ERR_DATA,
                           "%s:%d: %s: unknown key '%s' (expected name, file, classes, train, "
                           "test)",
                           path, node_line(k), what, key);
        }
    }
    if (s != SOTU_OK)
        return s;
    const char *missing = !have_name ? "name" : !have_file ? "file" : !have_classes ? "classes" : NULL;
    if (missing)
        return sotu_error(SOTU_ERR_DATA, "%s:%d: %s: missing key '%s'", path, node_line(item),
                          what, missing);
    sotu_path_join(task->path, sizeof task->path, dir, task->file);
    if (!sotu_file_exists(task->path))
        return sotu_error(SOTU_ERR_DATA,
                          "%s:%d: task '%s': file '%s' not found (looked for %s)", path,
                          node_line(item), task->name, task->file, task->path);
    return SOTU_OK;
}

sotu_status sotu_manifest_read(const char *path, sotu_manifest *m)
{
    memset(m, 0, sizeof *m);
    yaml_parser_t parser;
    yaml_document_t doc;
    int have_parser = 0, have_doc = 0;
    sotu_status s = SOTU_OK;
    char dir[SOTU_PATH_MAX];
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return sotu_error(SOTU_ERR_IO, "%s: cannot open manifest: %s", path, strerror(errno));
    if (!yaml_parser_initialize(&parser)) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot initialise the YAML parser", path);
        goto cleanup;
    }
    have_parser = 1;
    yaml_parser_set_input_file(&parser, fp);
    if (!yaml_parser_load(&parser, &doc)) {
        s = sotu_error(SOTU_ERR_DATA, "%s:%zu:%zu: YAML error: %s%s%s", path,
                       parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                       parser.problem ? parser.problem : "unknown",
                       parser.context ? " " : "", parser.context ? parser.context : "");
        goto cleanup;
    }
    have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        s = sotu_error(SOTU_ERR_DATA, "%s:%d: expected a mapping with keys 'name' and 'tasks'",
                       path, root ? node_line(root) : 1);
        goto cleanup;
    }
    snprintf(m->path, sizeof m->path, "%s", path);
    sotu_path_dirname(dir, sizeof dir, path);
    yaml_node_t *tasks = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&doc, p->value);
        const char *key = scalar(k);
        if (key && !strcmp(key, "name")) {
            if ((s = copy_string(path, v, "manifest", key, m->name, sizeof m->name)) != SOTU_OK)
                goto cleanup;
        } else if (key && !strcmp(key, "tasks")) {
            tasks = v;
        } else {
            s = sotu_error(SOTU_ERR_DATA, "%s:%d: unknown key '%s' (expected name, tasks)", path,
                           node_line(k), key ? key : "?");
            goto cleanup;
        }
    }
    if (!tasks) {
        s = sotu_error(SOTU_ERR_DATA, "%s:%d: missing key 'tasks'", path, node_line(root));
        goto cleanup;
    }
    if (tasks->type != YAML_SEQUENCE_NODE ||
        tasks->data.sequence.items.top == tasks->data.sequence.items.start) {
        s = sotu_error(SOTU_ERR_DATA, "%s:%d: 'tasks' must be a non-empty list", path,
                       node_line(tasks));
        goto cleanup;
    }
    if (!m->name[0])
        file_stem(m->name, sizeof m->name, dir);
    int n = (int)(tasks->data.sequence.items.top - tasks->data.sequence.items.start);
    m->tasks = calloc((size_t)n, sizeof *m->tasks);
    if (!m->tasks) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate %d tasks", path, n);
        goto cleanup;
    }
    m->n_tasks = n;
    for (int i = 0; i < n; i++) {
        yaml_node_t *item = yaml_document_get_node(&doc, tasks->data.sequence.items.start[i]);
        if ((s = parse_task(path, dir, &doc, item, i, &m->tasks[i])) != SOTU_OK)
            goto cleanup;
        for (int j = 0; j < i; j++)
            if (!strcmp(m->tasks[j].name, m->tasks[i].name)) {
                s = sotu_error(SOTU_ERR_DATA, "%s:%d: task name '%s' is used twice", path,
                               node_line(item), m->tasks[i].name);
                goto cleanup;
            }
    }
cleanup:
    if (have_doc)
        yaml_document_delete(&doc);
    if (have_parser)
        yaml_parser_delete(&parser);
    fclose(fp);
    if (s != SOTU_OK)
        sotu_manifest_free(m);
    return s;
}

typedef struct {
    char *data;
    size_t n, cap;
} out_buffer;

static int buffer_write(void *ctx, unsigned char *bytes, size_t size)
{
    out_buffer *b = ctx;
    if (b->n + size > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->n + size)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->n, bytes, size);
    b->n += size;
    return 1;
}

static int emit_scalar(yaml_emitter_t *e, const char *v)
{
    yaml_event_t ev;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)v, (int)strlen(v), 1, 1,
                                      YAML_ANY_SCALAR_STYLE))
        return 0;
    return yaml_emitter_emit(e, &ev);
}

static int emit_int(yaml_emitter_t *e, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    return emit_scalar(e, buf);
}

static int emit_mapping_start(yaml_emitter_t *e, yaml_mapping_style_t style)
{
    yaml_event_t ev;
    return yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, style) &&
           yaml_emitter_emit(e, &ev);
}

static int emit_manifest(yaml_emitter_t *e, const sotu_manifest *m)
{
    yaml_event_t ev;
    if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) || !yaml_emitter_emit(e, &ev))
        return 0;
    if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) ||
        !yaml_emitter_emit(e, &ev))
        return 0;
    if (!emit_mapping_start(e, YAML_BLOCK_MAPPING_STYLE) || !emit_scalar(e, "name") ||
        !emit_scalar(e, m->name) || !emit_scalar(e, "tasks"))
        return 0;
    if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE) ||
        !yaml_emitter_emit(e, &ev))
        return 0;
    for (int i = 0; i < m->n_tasks; i++) {
        const sotu_manifest_task *t = &m->tasks[i];
        if (!emit_mapping_start(e, YAML_FLOW_MAPPING_STYLE) || !emit_scalar(e, "name") ||
            !emit_scalar(e, t->name) || !emit_scalar(e, "file") || !emit_scalar(e, t->file) ||
            !emit_scalar(e, "classes") || !emit_int(e, t->classes) || !emit_scalar(e, "train") ||
            !emit_int(e, t->n_train) || !emit_scalar(e, "test") || !emit_int(e, t->n_test))
            return 0;
        if (!yaml_mapping_end_event_initialize(&ev) || !yaml_emitter_emit(e, &ev))
            return 0;
    }
    if (!yaml_sequence_end_event_initialize(&ev) || !yaml_emitter_emit(e, &ev))
        return 0;
    if (!yaml_mapping_end_event_initialize(&ev) || !yaml_emitter_emit(e, &ev))
        return 0;
    if (!yaml_document_end_event_initialize(&ev, 1) || !yaml_emitter_emit(e, &ev))
        return 0;
    if (!yaml_stream_end_event_initialize(&ev) || !yaml_emitter_emit(e, &ev))
        return 0;
    return yaml_emitter_flush(e);
}

sotu_status sotu_manifest_write(const char *path, const sotu_manifest *m)
{
    yaml_emitter_t e;
    out_buffer b = {0};
    if (!yaml_emitter_initialize(&e))
        return sotu_error(SOTU_ERR_NOMEM, "%s: cannot initialise the YAML emitter", path);
    yaml_emitter_set_output(&e, buffer_write, &b);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, 120);
    sotu_status s = SOTU_OK;
    if (!emit_manifest(&e, m))
        s = sotu_error(SOTU_ERR_INTERNAL, "%s: YAML emitter failed: %s", path,
                       e.problem ? e.problem : "out of memory");
    yaml_emitter_delete(&e);
    if (s == SOTU_OK)
        s = sotu_write_file_atomic(path, b.data, b.n);
    free(b.data);
    return s;
}

void sotu_manifest_free(sotu_manifest *m)
{
    if (!m)
        return;
    free(m->tasks);
    memset(m, 0, sizeof *m);
}
