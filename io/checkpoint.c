#include "io/checkpoint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/h5util.h"
#include "io/weights.h"

void sotu_checkpoint_keep_label(char *dst, size_t cap, double keep)
{
    snprintf(dst, cap, "%.6g", keep);
}

/* ======================================================================
 * HDF5 helpers local to the checkpoint
 * ====================================================================== */

static sotu_status write_f64_attr(hid_t loc, const char *name, double v, const char *path,
                                  const char *obj)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = sp >= 0 ? H5Acreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT)
                      : H5I_INVALID_HID;
    sotu_status s = SOTU_OK;
    if (a < 0 || H5Awrite(a, H5T_NATIVE_DOUBLE, &v) < 0) {
        char why[256];
        s = sotu_error(SOTU_ERR_IO, "%s: cannot write attribute %s of %s: %s", path, name, obj,
                       sotu_h5_reason(why, sizeof why));
    }
    if (a >= 0)
        H5Aclose(a);
    if (sp >= 0)
        H5Sclose(sp);
    return s;
}

static sotu_status write_typed_attr(hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                                    const void *v, const char *path, const char *obj)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = sp >= 0 ? H5Acreate2(loc, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT)
                      : H5I_INVALID_HID;
    sotu_status s = SOTU_OK;
    if (a < 0 || H5Awrite(a, mem_type, v) < 0) {
        char why[256];
        s = sotu_error(SOTU_ERR_IO, "%s: cannot write attribute %s of %s: %s", path, name, obj,
                       sotu_h5_reason(why, sizeof why));
    }
    if (a >= 0)
        H5Aclose(a);
    if (sp >= 0)
        H5Sclose(sp);
    return s;
}

static hid_t create_group(hid_t loc, const char *name)
{
    hid_t gcpl = sotu_h5_gcpl();
    if (gcpl < 0)
        return H5I_INVALID_HID;
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    return g;
}

/* Writes a row-major float64 or float32 dataset of rank ndim under loc. */
static sotu_status write_dataset(hid_t loc, const char *name, int ndim, const hsize_t *dims,
                                 hid_t file_type, hid_t mem_type, const void *data,
                                 const char *path, const char *obj, hid_t *out)
{
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t dcpl = sotu_h5_dcpl_checked(ndim, dims, H5Tget_size(file_type));
    hid_t d = (sp >= 0 && dcpl >= 0)
                  ? H5Dcreate2(loc, name, file_type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)
                  : H5I_INVALID_HID;
    sotu_status s = SOTU_OK;
    if (d < 0 || H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        char why[256];
        s = sotu_error(SOTU_ERR_IO, "%s: cannot write %s: %s", path, obj, sotu_h5_reason(why, sizeof why));
    }
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (sp >= 0)
        H5Sclose(sp);
    if (s == SOTU_OK && out)
        *out = d;
    else if (d >= 0)
        H5Dclose(d);
    return s;
}

/* ======================================================================
 * Writer
 * ====================================================================== */

static int valid_link_name(const char *name)
{
    return name && name[0] && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..") &&
           strlen(name) < SOTU_CHECKPOINT_NAME_MAX;
}

static const char *const task_statuses[] = {"ok", "failed", "not_run", "left_out", NULL};

/* A task's status attribute (io/checkpoint.h). */
static const char *task_status(const sotu_checkpoint_task *t)
{
    return t->status ? t->status : t->failed ? "failed" : "ok";
}

static bool known_status(const char *status)
{
    for (int i = 0; task_statuses[i]; i++)
        if (!strcmp(status, task_statuses[i]))
            return true;
    return false;
}

static sotu_status validate_input(const char *path, const sotu_checkpoint *ck)
{
    if (!ck->table || !ck->merged)
        return sotu_error(SOTU_ERR_DATA, "%s: checkpoint has no merged weights", path);
    int T = ck->n_tasks;
    if (T < 0 || (T > 0 && !ck->tasks))
        return sotu_error(SOTU_ERR_DATA, "%s: task list of %d entries is missing", path, T);
    char *seen = calloc((size_t)T + 1, 1);
    if (!seen)
        return sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate %d task flags", path, T);
    sotu_status s = SOTU_OK;
    for (int i = 0; i < T && s == SOTU_OK; i++) {
        const sotu_checkpoint_task *t = &ck->tasks[i];
        if (!valid_link_name(t->name))
            s = sotu_error(SOTU_ERR_DATA,
                           "%s: task %d name '%s': expected a non-empty name without '/' "
                           "shorter than %d bytes",
                           path, i, t->name ? t->name : "(null)", SOTU_CHECKPOINT_NAME_MAX);
        else if (t->index < 0 || t->index >= T || seen[t->index])
            s = sotu_error(SOTU_ERR_DATA,
                           "%s: task '%s' index %d: expected each of 0..%d exactly once", path,
                           t->name, t->index, T - 1);
        else if (!t->head_weight != !t->head_bias)
            s = sotu_error(SOTU_ERR_DATA, "%s: task '%s' has a head weight without bias or the "
                           "reverse", path, t->name);
        else if (t->head_weight && t->classes <= 0)
            s = sotu_error(SOTU_ERR_DATA, "%s: task '%s' has a head with %d classes", path,
                           t->name, t->classes);
        else if (!known_status(task_status(t)) || !strcmp(task_status(t), "ok") == t->failed)
            s = sotu_error(SOTU_ERR_DATA, "%s: task '%s' status '%s' with failed %d: expected "
                           "ok (not failed), failed, not_run or left_out", path, t->name,
                           task_status(t), (int)t->failed);
        else
            seen[t->index] = 1;
        for (int j = 0; j < i && s == SOTU_OK; j++)
            if (!strcmp(ck->tasks[j].name, t->name))
                s = sotu_error(SOTU_ERR_DATA, "%s: task name '%s' appears twice", path, t->name);
    }
    free(seen);
    for (int k = 0; k < ck->n_keeps && s == SOTU_OK; k++)
        if (!ck->keeps[k].merged || !(ck->keeps[k].keep > 0 && ck->keeps[k].keep <= 1))
            s = sotu_error(SOTU_ERR_DATA, "%s: extra merged set %d: expected weights and a keep "
                           "in (0, 1], got %g", path, k, ck->keeps[k].keep);
    return s;
}

static sotu_status write_root_attrs(hid_t f, const char *path, const sotu_checkpoint *ck)
{
    char created[40];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    sotu_status s = sotu_h5_write_str_attr(f, "format", SOTU_CHECKPOINT_FORMAT, path);
    if (s == SOTU_OK)
        s = sotu_h5_write_int_attr(f, "format_version", SOTU_CHECKPOINT_VERSION, path);
    if (s == SOTU_OK)
        s = sotu_h5_write_str_attr(f, "sotu_version", SOTU_VERSION, path);
    if (s == SOTU_OK)
        s = sotu_h5_write_str_attr(f, "created", created, path);
    if (s == SOTU_OK)
        s = sotu_h5_write_str_attr(f, "config", ck->config_yaml ? ck->config_yaml : "", path);
    if (s == SOTU_OK)
        s = sotu_weights_write_config_attrs((int64_t)f, &ck->model, path);
    if (s == SOTU_OK && ck->prov)
        s = sotu_h5_write_provenance(f, ck->prov, ck->manifest_xxh64, path);
    return s;
}

static sotu_status write_task(hid_t tasks, hid_t heads, const char *path,
                              const sotu_checkpoint *ck, const sotu_checkpoint_task *t)
{
    char obj[SOTU_CHECKPOINT_NAME_MAX + 32];
    snprintf(obj, sizeof obj, "/tasks/%s", t->name);
    hid_t g = create_group(tasks, t->name);
    if (g < 0) {
        char why[256];
        return sotu_error(SOTU_ERR_IO, "%s: cannot create %s: %s", path, obj, sotu_h5_reason(why, sizeof why));
    }
    int32_t index = t->index, classes = t->classes, epochs = t->epochs;
    sotu_status s = write_typed_attr(g, "index", H5T_STD_I32LE, H5T_NATIVE_INT32, &index, path, obj);
    if (s == SOTU_OK)
        s = write_typed_attr(g, "classes", H5T_STD_I32LE, H5T_NATIVE_INT32, &classes, path, obj);
    if (s == SOTU_OK)
        s = write_f64_attr(g, "keep", t->keep, path, obj);
    if (s == SOTU_OK)
        s = write_typed_attr(g, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &t->seed, path, obj);
    if (s == SOTU_OK)
        s = write_f64_attr(g, "lr", t->lr, path, obj);
    if (s == SOTU_OK)
        s = write_typed_attr(g, "epochs", H5T_STD_I32LE, H5T_NATIVE_INT32, &epochs, path, obj);
    if (s == SOTU_OK)
        s = write_f64_attr(g, "train_seconds", t->train_seconds, path, obj);
    if (s == SOTU_OK)
        s = write_f64_attr(g, "finetuned_acc", t->finetuned_acc, path, obj);
    if (s == SOTU_OK)
        s = write_typed_attr(g, "kept_values", H5T_STD_I64LE, H5T_NATIVE_INT64, &t->kept_values,
                             path, obj);
    if (s == SOTU_OK)
        s = write_typed_attr(g, "bytes", H5T_STD_I64LE, H5T_NATIVE_INT64, &t->bytes, path, obj);
    if (s == SOTU_OK)
        s = sotu_h5_write_str_attr(g, "status", task_status(t), path);
    if (s == SOTU_OK && t->class_names && t->classes > 0)
        s = sotu_h5_write_str_array_attr(g, "class_names", t->class_names, t->classes, path);
    H5Gclose(g);
    if (s != SOTU_OK || !t->head_weight)
        return s;

    snprintf(obj, sizeof obj, "/heads/%s", t->name);
    hid_t h = create_group(heads, t->name);
    if (h < 0) {
        char why[256];
        return sotu_error(SOTU_ERR_IO, "%s: cannot create %s: %s", path, obj, sotu_h5_reason(why, sizeof why));
    }
    hsize_t wd[2] = {(hsize_t)t->classes, (hsize_t)ck->model.dim}, bd[1] = {(hsize_t)t->classes};
    snprintf(obj, sizeof obj, "/heads/%s/weight", t->name);
    s = write_dataset(h, "weight", 2, wd, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->head_weight, path,
                      obj, NULL);
    snprintf(obj, sizeof obj, "/heads/%s/bias", t->name);
    if (s == SOTU_OK)
        s = write_dataset(h, "bias", 1, bd, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->head_bias, path,
                          obj, NULL);
    H5Gclose(h);
    return s;
}

/* A [T, T] float64 matrix; NULL data is written as NaN. */
static sotu_status write_square(hid_t loc, const char *name, int T, const double *data,
                                const char *path, const char *obj, hid_t *out)
{
    double *nan_fill = NULL;
    if (!data) {
        nan_fill = malloc(sizeof(double) * ((size_t)T * (size_t)T + 1));
        if (!nan_fill)
            return sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate %s", path, obj);
        for (size_t i = 0; i < (size_t)T * (size_t)T; i++)
            nan_fill[i] = NAN;
        data = nan_fill;
    }
    hsize_t dims[2] = {(hsize_t)T, (hsize_t)T};
    sotu_status s = write_dataset(loc, name, 2, dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, data,
                                  path, obj, out);
    free(nan_fill);
    return s;
}

static sotu_status write_body(hid_t f, const char *path, const sotu_checkpoint *ck)
{
    hid_t tasks = H5I_INVALID_HID, heads = H5I_INVALID_HID, grp = H5I_INVALID_HID;
    hid_t d = H5I_INVALID_HID;
    char why[256];
    sotu_status s = write_root_attrs(f, path, ck);
    if (s != SOTU_OK)
        goto cleanup;
    s = sotu_weights_write_group((int64_t)f, "/merged", ck->table, ck->merged, path);
    if (s != SOTU_OK)
        goto cleanup;

    if (ck->n_keeps > 0) {
        grp = create_group(f, "/keeps");
        if (grp < 0) {
            s = sotu_error(SOTU_ERR_IO, "%s: cannot create /keeps: %s", path, sotu_h5_reason(why, sizeof why));
            goto cleanup;
        }
        for (int k = 0; k < ck->n_keeps && s == SOTU_OK; k++) {
            char label[32], obj[64];
            sotu_checkpoint_keep_label(label, sizeof label, ck->keeps[k].keep);
            snprintf(obj, sizeof obj, "/keeps/%s", label);
            hid_t kg = create_group(grp, label);
            if (kg < 0) {
                s = sotu_error(SOTU_ERR_IO, "%s: cannot create %s (each keep once): %s", path, obj,
                               sotu_h5_reason(why, sizeof why));
                break;
            }
            s = write_f64_attr(kg, "keep", ck->keeps[k].keep, path, obj);
            if (s == SOTU_OK)
                s = sotu_weights_write_group((int64_t)kg, "merged", ck->table, ck->keeps[k].merged,
                                             path);
            H5Gclose(kg);
        }
        H5Gclose(grp);
        grp = H5I_INVALID_HID;
        if (s != SOTU_OK)
            goto cleanup;
    }

    tasks = create_group(f, "/tasks");
    heads = create_group(f, "/heads");
    if (tasks < 0 || heads < 0) {
        s = sotu_error(SOTU_ERR_IO, "%s: cannot create /tasks and /heads: %s", path,
                       sotu_h5_reason(why, sizeof why));
        goto cleanup;
    }
    int partial = 0;
    for (int i = 0; i < ck->n_tasks && s == SOTU_OK; i++) {
        s = write_task(tasks, heads, path, ck, &ck->tasks[i]);
        partial |= ck->tasks[i].failed;
    }
    if (s == SOTU_OK)
        s = sotu_h5_write_int_attr(f, "partial", partial, path);
    if (s != SOTU_OK)
        goto cleanup;

    grp = create_group(f, "/merge");
    if (grp < 0) {
        s = sotu_error(SOTU_ERR_IO, "%s: cannot create /merge: %s", path, sotu_h5_reason(why, sizeof why));
        goto cleanup;
    }
    s = write_square(grp, "cosine", ck->n_tasks, ck->cosine, path, "/merge/cosine", &d);
    if (s == SOTU_OK)
        s = write_f64_attr(d, "collision_rate", ck->collision_rate, path, "/merge/cosine");
    if (s == SOTU_OK)
        s = sotu_h5_write_str_attr(d, "mode", ck->merge_mode ? ck->merge_mode : "sum", path);
    if (s == SOTU_OK)
        s = write_f64_attr(d, "scale", ck->merge_scale, path, "/merge/cosine");
    if (s == SOTU_OK)
        s = write_f64_attr(d, "keep", ck->keep, path, "/merge/cosine");
    if (s != SOTU_OK)
        goto cleanup;
    H5Dclose(d);
    d = H5I_INVALID_HID;
    H5Gclose(grp);

    grp = create_group(f, "/eval");
    if (grp < 0) {
        s = sotu_error(SOTU_ERR_IO, "%s: cannot create /eval: %s", path, sotu_h5_reason(why, sizeof why));
        goto cleanup;
    }
    s = write_square(grp, "acc_matrix", ck->n_tasks, ck->acc_matrix, path, "/eval/acc_matrix", &d);
    for (int i = 0; i < ck->n_summary && s == SOTU_OK; i++) {
        const char *name = ck->summary[i].name;
        if (!name || !name[0] || strlen(name) >= 64)
            s = sotu_error(SOTU_ERR_DATA, "%s: summary figure %d: expected a name of 1..63 bytes",
                           path, i);
        else if (H5Aexists(d, name) > 0)
            s = sotu_error(SOTU_ERR_DATA, "%s: summary figure '%s' appears twice", path, name);
        else
            s = write_f64_attr(d, name, ck->summary[i].value, path, "/eval/acc_matrix");
    }

cleanup:
    if (d >= 0)
        H5Dclose(d);
    if (grp >= 0)
        H5Gclose(grp);
    if (heads >= 0)
        H5Gclose(heads);
    if (tasks >= 0)
        H5Gclose(tasks);
    return s;
}

static sotu_status fill_checkpoint(hid_t f, const void *ctx, const char *path)
{
    return write_body(f, path, ctx);
}

sotu_status sotu_checkpoint_write(const char *path, const sotu_checkpoint *ck)
{
    sotu_status s = validate_input(path, ck);
    if (s != SOTU_OK)
        return s;
    return sotu_h5_write_file(path, fill_checkpoint, ck);
}

/* ======================================================================
 * Reader
 * ====================================================================== */

void sotu_checkpoint_info_free(sotu_checkpoint_info *info)
{
    if (!info)
        return;
    free(info->config_yaml);
    free(info->keeps);
    if (info->tasks)
        for (int i = 0; i < info->n_tasks; i++) {
            free(info->tasks[i].head_weight);
            free(info->tasks[i].head_bias);
            free(info->tasks[i].class_names);
        }
    free(info->tasks);
    free(info->cosine);
    free(info->acc_matrix);
    free(info->summary_names);
    free(info->summary_values);
    memset(info, 0, sizeof *info);
}

int sotu_checkpoint_find_task(const sotu_checkpoint_info *info, const char *name)
{
    for (int i = 0; i < info->n_tasks; i++)
        if (!strcmp(info->tasks[i].name, name))
            return i;
    return -1;
}

/* Opens a numeric scalar attribute and reads it converted to mem_type. */
static sotu_status read_num_attr(hid_t loc, const char *name, hid_t mem_type, void *v,
                                 const char *path, const char *obj)
{
    if (H5Aexists(loc, name) <= 0)
        return sotu_error(SOTU_ERR_DATA, "%s: %s has no attribute '%s'", path, obj, name);
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    hid_t sp = a >= 0 ? H5Aget_space(a) : H5I_INVALID_HID;
    H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    H5T_class_t want = H5Tget_class(mem_type);
    sotu_status s = SOTU_OK;
    if (a < 0 || sp < 0 || H5Sget_simple_extent_npoints(sp) != 1)
        s = sotu_error(SOTU_ERR_DATA, "%s: %s attribute '%s': expected one number", path, obj,
                       name);
    else if (c != H5T_INTEGER && !(c == H5T_FLOAT && want == H5T_FLOAT))
        s = sotu_error(SOTU_ERR_DATA, "%s: %s attribute '%s': expected %s", path, obj, name,
                       want == H5T_FLOAT ? "a number" : "an integer");
    else if (H5Aread(a, mem_type, v) < 0)
        s = sotu_error(SOTU_ERR_DATA, "%s: %s attribute '%s' cannot be read", path, obj, name);
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    return s;
}

static sotu_status read_f64_attr(hid_t loc, const char *name, double *v, const char *path,
                                 const char *obj)
{
    return read_num_attr(loc, name, H5T_NATIVE_DOUBLE, v, path, obj);
}

static sotu_status read_int_attr(hid_t loc, const char *name, int lo, int hi, int *v,
                                 const char *path, const char *obj)
{
    int64_t x;
    sotu_status s = read_num_attr(loc, name, H5T_NATIVE_INT64, &x, path, obj);
    if (s == SOTU_OK && (x < lo || x > hi))
        s = sotu_error(SOTU_ERR_DATA, "%s: %s attribute '%s' is %lld, expected %d..%d", path, obj,
                       name, (long long)x, lo, hi);
    if (s == SOTU_OK)
        *v = (int)x;
    return s;
}

/* Opens name under loc as a group; SOTU_ERR_DATA naming obj if missing. */
static sotu_status open_group(hid_t loc, const char *name, const char *path, const char *obj,
                              hid_t *g)
{
    *g = H5I_INVALID_HID;
    H5O_info_t oi;
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0 ||
        H5Oget_info_by_name(loc, name, &oi, H5P_DEFAULT) < 0)
        return sotu_error(SOTU_ERR_DATA, "%s: %s is missing (not a sotu checkpoint, or damaged)",
                          path, obj);
    if (oi.type != H5O_TYPE_GROUP)
        return sotu_error(SOTU_ERR_DATA, "%s: %s is not a group", path, obj);
    *g = H5Gopen2(loc, name, H5P_DEFAULT);
    if (*g < 0)
        return sotu_error(SOTU_ERR_DATA, "%s: %s cannot be opened", path, obj);
    return SOTU_OK;
}

/* Opens a float dataset and checks its rank and dims (dims[k] < 0: any). */
static sotu_status open_float_dataset(hid_t loc, const char *name, int ndim, const int64_t *dims,
                                      const char *path, const char *obj, hid_t *out,
                                      hsize_t *got)
{
    *out = H5I_INVALID_HID;
    H5O_info_t oi;
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0 ||
        H5Oget_info_by_name(loc, name, &oi, H5P_DEFAULT) < 0)
        return sotu_error(SOTU_ERR_DATA, "%s: %s is missing", path, obj);
    if (oi.type != H5O_TYPE_DATASET)
        return sotu_error(SOTU_ERR_DATA, "%s: %s is not a dataset", path, obj);
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    hid_t t = d >= 0 ? H5Dget_type(d) : H5I_INVALID_HID;
    hid_t sp = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
    hsize_t dd[8] = {0};
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    sotu_status s = SOTU_OK;
    if (d < 0 || t < 0 || sp < 0 || r < 0 || r > 8) {
        s = sotu_error(SOTU_ERR_DATA, "%s: %s cannot be opened", path, obj);
    } else if (H5Tget_class(t) != H5T_FLOAT) {
        s = sotu_error(SOTU_ERR_DATA, "%s: %s is not a float dataset", path, obj);
    } else {
        H5Sget_simple_extent_dims(sp, dd, NULL);
        int ok = r == ndim;
        for (int k = 0; ok && k < ndim; k++)
            ok = dims[k] < 0 || dd[k] == (hsize_t)dims[k];
        if (!ok) {
            char want[96] = "", have[96] = "";
            for (int k = 0; k < ndim; k++)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", k ? "," : "",
                         (long long)dims[k]);
            for (int k = 0; k < r; k++)
                snprintf(have + strlen(have), sizeof have - strlen(have), "%s%llu", k ? "," : "",
                         (unsigned long long)dd[k]);
            s = sotu_error(SOTU_ERR_DATA, "%s: %s has shape [%s], expected [%s]", path, obj, have,
                           want);
        }
    }
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    if (s != SOTU_OK) {
        if (d >= 0)
            H5Dclose(d);
        return s;
    }
    if (got)
        for (int k = 0; k < ndim; k++)
            got[k] = dd[k];
    *out = d;
    return SOTU_OK;
}

static sotu_status read_float_dataset(hid_t loc, const char *name, int ndim, const int64_t *dims,
                                      hid_t mem_type, size_t elem, const char *path,
                                      const char *obj, void **data, hid_t *keep_open)
{
    hid_t d;
    *data = NULL;
    sotu_status s = open_float_dataset(loc, name, ndim, dims, path, obj, &d, NULL);
    if (s != SOTU_OK)
        return s;
    size_t n = 1;
    for (int k = 0; k < ndim; k++)
        n *= (size_t)dims[k];
    void *buf = malloc(n * elem + 1);
    if (!buf)
        s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate %zu values for %s", path, n, obj);
    else if (n && H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        char why[256];
        s = sotu_error(SOTU_ERR_DATA, "%s: %s cannot be read (damaged?): %s", path, obj,
                       sotu_h5_reason(why, sizeof why));
    }
    if (s != SOTU_OK || !keep_open) {
        H5Dclose(d);
    } else {
        *keep_open = d;
    }
    if (s != SOTU_OK) {
        free(buf);
        return s;
    }
    *data = buf;
    return SOTU_OK;
}

typedef struct {
    const char *path;
    const char *obj;
    int count;
    int cap;
    char (*names)[SOTU_CHECKPOINT_NAME_MAX];
    sotu_status s;
} link_list;

static herr_t collect_link(hid_t g, const char *name, const H5L_info_t *li, void *data)
{
    link_list *l = data;
    if (strlen(name) >= SOTU_CHECKPOINT_NAME_MAX) {
        l->s = sotu_error(SOTU_ERR_DATA, "%s: %s/%s: name longer than %d bytes", l->path, l->obj,
                          name, SOTU_CHECKPOINT_NAME_MAX - 1);
        return -1;
    }
    if (l->count == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        void *p = realloc(l->names, (size_t)cap * sizeof *l->names);
        if (!p) {
            l->s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot list %s", l->path, l->obj);
            return -1;
        }
        l->names = p;
        l->cap = cap;
    }
    snprintf(l->names[l->count++], SOTU_CHECKPOINT_NAME_MAX, "%s", name);
    return 0;
}

static sotu_status list_links(hid_t g, const char *path, const char *obj, link_list *l)
{
    memset(l, 0, sizeof *l);
    l->path = path;
    l->obj = obj;
    hsize_t idx = 0;
    if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_link, l) < 0) {
        free(l->names);
        l->names = NULL;
        return l->s != SOTU_OK ? l->s
                               : sotu_error(SOTU_ERR_DATA, "%s: cannot list %s", path, obj);
    }
    return SOTU_OK;
}

static sotu_status read_task(hid_t tasks, hid_t heads, const char *name, const char *path,
                             int T, int D, sotu_checkpoint_task_info *t)
{
    char obj[SOTU_CHECKPOINT_NAME_MAX + 32], status[16];
    snprintf(obj, sizeof obj, "/tasks/%s", name);
    snprintf(t->name, sizeof t->name, "%s", name);
    hid_t g;
    sotu_status s = open_group(tasks, name, path, obj, &g);
    if (s != SOTU_OK)
        return s;
    int64_t kept = 0, bytes = 0;
    s = read_int_attr(g, "index", 0, T - 1, &t->index, path, obj);
    if (s == SOTU_OK)
        s = read_int_attr(g, "classes", 0, 1 << 30, &t->classes, path, obj);
    if (s == SOTU_OK)
        s = read_int_attr(g, "epochs", 0, 1 << 30, &t->epochs, path, obj);
    if (s == SOTU_OK)
        s = read_f64_attr(g, "keep", &t->keep, path, obj);
    if (s == SOTU_OK)
        s = read_f64_attr(g, "lr", &t->lr, path, obj);
    if (s == SOTU_OK)
        s = read_f64_attr(g, "train_seconds", &t->train_seconds, path, obj);
    if (s == SOTU_OK)
        s = read_f64_attr(g, "finetuned_acc", &t->finetuned_acc, path, obj);
    if (s == SOTU_OK)
        s = read_num_attr(g, "seed", H5T_NATIVE_UINT64, &t->seed, path, obj);
    if (s == SOTU_OK)
        s = read_num_attr(g, "kept_values", H5T_NATIVE_INT64, &kept, path, obj);
    if (s == SOTU_OK)
        s = read_num_attr(g, "bytes", H5T_NATIVE_INT64, &bytes, path, obj);
    if (s == SOTU_OK)
        s = sotu_h5_read_str_attr(g, "status", status, sizeof status, path);
    if (s == SOTU_OK && !known_status(status))
        s = sotu_error(SOTU_ERR_DATA, "%s: %s status '%s', expected ok, failed, not_run or "
                       "left_out", path, obj, status);
    if (s == SOTU_OK && t->classes > 0 && sotu_h5_has_attr(g, "class_names")) {
        t->class_names = calloc((size_t)t->classes, sizeof *t->class_names);
        if (!t->class_names)
            s = sotu_error(SOTU_ERR_NOMEM, "%s: %s: %d class names", path, obj, t->classes);
        else
            s = sotu_h5_read_str_array_attr(g, "class_names", t->classes, t->class_names[0],
                                            sizeof t->class_names[0], path);
    }
    H5Gclose(g);
    if (s != SOTU_OK)
        return s;
    t->kept_values = kept;
    t->bytes = bytes;
    t->failed = strcmp(status, "ok") != 0;
    snprintf(t->status, sizeof t->status, "%s", status);

    if (H5Lexists(heads, name, H5P_DEFAULT) <= 0)
        return SOTU_OK;
    snprintf(obj, sizeof obj, "/heads/%s", name);
    s = open_group(heads, name, path, obj, &g);
    if (s != SOTU_OK)
        return s;
    int64_t wd[2] = {t->classes, D}, bd[1] = {t->classes};
    void *w = NULL, *b = NULL;
    snprintf(obj, sizeof obj, "/heads/%s/weight", name);
    s = read_float_dataset(g, "weight", 2, wd, H5T_NATIVE_FLOAT, sizeof(float), path, obj, &w,
                           NULL);
    snprintf(obj, sizeof obj, "/heads/%s/bias", name);
    if (s == SOTU_OK)
        s = read_float_dataset(g, "bias", 1, bd, H5T_NATIVE_FLOAT, sizeof(float), path, obj, &b,
                               NULL);
    H5Gclose(g);
    if (s != SOTU_OK) {
        free(w);
        return s;
    }
    t->head_weight = w;
    t->head_bias = b;
    return SOTU_OK;
}

typedef struct {
    const char *path;
    int n;
    int64_t values;
    sotu_status s;
} merged_count;

static herr_t count_merged(hid_t g, const char *name, const H5L_info_t *li, void *data)
{
    merged_count *mc = data;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    hid_t sp = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0)
        H5Sclose(sp);
    if (d >= 0)
        H5Dclose(d);
    if (n < 0) {
        mc->s = sotu_error(SOTU_ERR_DATA, "%s: /merged/%s is not a dataset", mc->path, name);
        return -1;
    }
    mc->n++;
    mc->values += n;
    return 0;
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

static int cmp_task_index(const void *a, const void *b)
{
    const sotu_checkpoint_task_info *x = a, *y = b;
    return (x->index > y->index) - (x->index < y->index);
}

typedef struct {
    sotu_checkpoint_info *info;
    const char *path;
    sotu_status s;
} summary_ctx;

static herr_t collect_summary(hid_t loc, const char *name, const H5A_info_t *ai, void *data)
{
    summary_ctx *c = data;
    sotu_checkpoint_info *info = c->info;
    double v;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    int numeric = t >= 0 && (H5Tget_class(t) == H5T_FLOAT || H5Tget_class(t) == H5T_INTEGER);
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    if (!numeric || strlen(name) >= 64)
        return 0;
    if (read_f64_attr(loc, name, &v, c->path, "/eval/acc_matrix") != SOTU_OK)
        return 0;
    int n = info->n_summary + 1;
    void *pn = realloc(info->summary_names, (size_t)n * sizeof *info->summary_names);
    if (pn)
        info->summary_names = pn;
    void *pv = realloc(info->summary_values, (size_t)n * sizeof *info->summary_values);
    if (pv)
        info->summary_values = pv;
    if (!pn || !pv) {
        c->s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot collect the summary", c->path);
        return -1;
    }
    snprintf(info->summary_names[n - 1], 64, "%s", name);
    info->summary_values[n - 1] = v;
    info->n_summary = n;
    return 0;
}

static sotu_status read_keeps(hid_t f, const char *path, sotu_checkpoint_info *info)
{
    if (H5Lexists(f, "keeps", H5P_DEFAULT) <= 0)
        return SOTU_OK;
    hid_t g;
    link_list l = {0};
    sotu_status s = open_group(f, "keeps", path, "/keeps", &g);
    if (s != SOTU_OK)
        return s;
    s = list_links(g, path, "/keeps", &l);
    if (s == SOTU_OK && l.count > 0) {
        info->keeps = malloc((size_t)l.count * sizeof *info->keeps);
        if (!info->keeps)
            s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot list /keeps", path);
    }
    for (int i = 0; i < l.count && s == SOTU_OK; i++) {
        char obj[SOTU_CHECKPOINT_NAME_MAX + 16];
        snprintf(obj, sizeof obj, "/keeps/%s", l.names[i]);
        hid_t kg;
        s = open_group(g, l.names[i], path, obj, &kg);
        if (s != SOTU_OK)
            break;
        s = read_f64_attr(kg, "keep", &info->keeps[i], path, obj);
        if (s == SOTU_OK && H5Lexists(kg, "merged", H5P_DEFAULT) <= 0)
            s = sotu_error(SOTU_ERR_DATA, "%s: %s/merged is missing", path, obj);
        H5Gclose(kg);
        info->n_keeps = i + 1;
    }
    if (s == SOTU_OK)
        qsort(info->keeps, (size_t)info->n_keeps, sizeof *info->keeps, cmp_desc);
    free(l.names);
    H5Gclose(g);
    return s;
}

sotu_status sotu_checkpoint_read_info(const char *path, sotu_checkpoint_info *info)
{
    memset(info, 0, sizeof *info);
    hid_t f = H5I_INVALID_HID, g = H5I_INVALID_HID, heads = H5I_INVALID_HID;
    hid_t d = H5I_INVALID_HID;
    link_list l = {0};
    char format[64];
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        goto cleanup;
    if (!sotu_h5_has_attr(f, "format")) {
        s = sotu_error(SOTU_ERR_DATA, "%s: no root attribute 'format', expected \"%s\"", path,
                       SOTU_CHECKPOINT_FORMAT);
        goto cleanup;
    }
    s = sotu_h5_read_str_attr(f, "format", format, sizeof format, path);
    if (s == SOTU_OK && strcmp(format, SOTU_CHECKPOINT_FORMAT))
        s = sotu_error(SOTU_ERR_DATA, "%s: format is \"%s\", expected \"%s\"", path, format,
                       SOTU_CHECKPOINT_FORMAT);
    if (s == SOTU_OK)
        s = read_int_attr(f, "format_version", 1, SOTU_CHECKPOINT_VERSION, &info->format_version,
                          path, "root");
    if (s == SOTU_OK)
        s = sotu_h5_read_str_attr(f, "sotu_version", info->sotu_version,
                                  sizeof info->sotu_version, path);
    if (s == SOTU_OK)
        s = sotu_h5_read_str_attr(f, "created", info->created, sizeof info->created, path);
    if (s == SOTU_OK)
        sotu_h5_read_provenance(f, &info->prov, path);
    if (s == SOTU_OK)
        s = sotu_h5_read_str_attr_alloc(f, "config", &info->config_yaml, path);
    if (s == SOTU_OK)
        s = sotu_weights_read_config(path, &info->model);
    if (s != SOTU_OK)
        goto cleanup;

    s = open_group(f, "merged", path, "/merged", &g);
    if (s != SOTU_OK)
        goto cleanup;
    {
        merged_count mc = {path, 0, 0, SOTU_OK};
        hsize_t idx = 0;
        if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, count_merged, &mc) < 0) {
            s = mc.s != SOTU_OK ? mc.s : sotu_error(SOTU_ERR_DATA, "%s: cannot list /merged", path);
            goto cleanup;
        }
        if (mc.n == 0) {
            s = sotu_error(SOTU_ERR_DATA, "%s: /merged holds no tensors", path);
            goto cleanup;
        }
        info->n_merged_tensors = mc.n;
        info->merged_values = mc.values;
    }
    H5Gclose(g);
    g = H5I_INVALID_HID;
    s = read_keeps(f, path, info);
    if (s != SOTU_OK)
        goto cleanup;

    s = open_group(f, "tasks", path, "/tasks", &g);
    if (s == SOTU_OK)
        s = open_group(f, "heads", path, "/heads", &heads);
    if (s == SOTU_OK)
        s = list_links(g, path, "/tasks", &l);
    if (s != SOTU_OK)
        goto cleanup;
    int T = l.count;
    info->tasks = calloc((size_t)T + 1, sizeof *info->tasks);
    if (!info->tasks) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot allocate %d tasks", path, T);
        goto cleanup;
    }
    for (int i = 0; i < T && s == SOTU_OK; i++) {
        s = read_task(g, heads, l.names[i], path, T, info->model.dim, &info->tasks[i]);
        info->n_tasks = i + 1;
    }
    if (s != SOTU_OK)
        goto cleanup;
    qsort(info->tasks, (size_t)T, sizeof *info->tasks, cmp_task_index);
    for (int i = 0; i < T; i++)
        if (info->tasks[i].index != i) {
            s = sotu_error(SOTU_ERR_DATA,
                           "%s: task indices must be 0..%d once each; %d is missing or doubled "
                           "(at /tasks/%s)", path, T - 1, i, info->tasks[i].name);
            goto cleanup;
        }
    H5Gclose(g);
    g = H5I_INVALID_HID;

    int64_t sq[2] = {T, T};
    s = open_group(f, "merge", path, "/merge", &g);
    if (s == SOTU_OK)
        s = read_float_dataset(g, "cosine", 2, sq, H5T_NATIVE_DOUBLE, sizeof(double), path,
                               "/merge/cosine", (void **)&info->cosine, &d);
    if (s == SOTU_OK)
        s = read_f64_attr(d, "collision_rate", &info->collision_rate, path, "/merge/cosine");
    if (s == SOTU_OK)
        s = read_f64_attr(d, "scale", &info->merge_scale, path, "/merge/cosine");
    if (s == SOTU_OK)
        s = read_f64_attr(d, "keep", &info->keep, path, "/merge/cosine");
    if (s == SOTU_OK)
        s = sotu_h5_read_str_attr(d, "mode", info->merge_mode, sizeof info->merge_mode, path);
    if (s != SOTU_OK)
        goto cleanup;
    H5Dclose(d);
    d = H5I_INVALID_HID;
    H5Gclose(g);
    g = H5I_INVALID_HID;

    s = open_group(f, "eval", path, "/eval", &g);
    if (s == SOTU_OK)
        s = read_float_dataset(g, "acc_matrix", 2, sq, H5T_NATIVE_DOUBLE, sizeof(double), path,
                               "/eval/acc_matrix", (void **)&info->acc_matrix, &d);
    if (s == SOTU_OK) {
        summary_ctx c = {info, path, SOTU_OK};
        hsize_t idx = 0;
        if (H5Aiterate2(d, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, collect_summary, &c) < 0) {
            idx = 0;
            info->n_summary = 0;
            if (c.s != SOTU_OK ||
                H5Aiterate2(d, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_summary, &c) < 0)
                s = c.s != SOTU_OK ? c.s
                                   : sotu_error(SOTU_ERR_DATA,
                                                "%s: attributes of /eval/acc_matrix cannot be "
                                                "listed", path);
        }
    }

cleanup:
    free(l.names);
    if (d >= 0)
        H5Dclose(d);
    if (g >= 0)
        H5Gclose(g);
    if (heads >= 0)
        H5Gclose(heads);
    if (f >= 0)
        H5Fclose(f);
    if (s != SOTU_OK)
        sotu_checkpoint_info_free(info);
    return s;
}

sotu_status sotu_checkpoint_read_merged(const char *path, double keep,
                                        const sotu_tensor_table *tab, float *params, int flags)
{
    sotu_h5_quiet();
    if (keep <= 0)
        return sotu_weights_read_into(path, "/merged", tab, params, flags);
    char label[32], group[96], primary[32] = "", have[512] = "";
    sotu_checkpoint_keep_label(label, sizeof label, keep);
    hid_t f;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    int found = 0;
    if (H5Lexists(f, "merge", H5P_DEFAULT) > 0 &&
        H5Lexists(f, "merge/cosine", H5P_DEFAULT) > 0) {
        hid_t d = H5Dopen2(f, "merge/cosine", H5P_DEFAULT);
        double pk;
        if (d >= 0 && read_f64_attr(d, "keep", &pk, path, "/merge/cosine") == SOTU_OK)
            sotu_checkpoint_keep_label(primary, sizeof primary, pk);
        if (d >= 0)
            H5Dclose(d);
    }
    if (H5Lexists(f, "keeps", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(f, "keeps", H5P_DEFAULT);
        link_list l;
        if (g >= 0 && list_links(g, path, "/keeps", &l) == SOTU_OK) {
            for (int i = 0; i < l.count; i++) {
                snprintf(have + strlen(have), sizeof have - strlen(have), ", %s", l.names[i]);
                found |= !strcmp(l.names[i], label);
            }
            free(l.names);
        }
        if (g >= 0)
            H5Gclose(g);
    }
    H5Fclose(f);
    sotu_clear_error();
    if (primary[0] && !strcmp(primary, label))
        return sotu_weights_read_into(path, "/merged", tab, params, flags);
    if (!found)
        return sotu_error(SOTU_ERR_DATA, "%s: no weights merged with keep %s; present: %s%s",
                          path, label, primary[0] ? primary : "/merged", have);
    snprintf(group, sizeof group, "/keeps/%s/merged", label);
    return sotu_weights_read_into(path, group, tab, params, flags);
}

sotu_status sotu_checkpoint_read(const char *path, const sotu_tensor_table *tab, float *params,
                                 sotu_checkpoint_info *info)
{
    sotu_status s = sotu_checkpoint_read_info(path, info);
    if (s != SOTU_OK)
        return s;
    s = sotu_checkpoint_read_merged(path, 0, tab, params, 0);
    if (s != SOTU_OK)
        sotu_checkpoint_info_free(info);
    return s;
}
