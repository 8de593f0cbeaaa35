#include "coordinator/clr/clr_checkpoint.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/clr/clr_eval.h"
#include "io/fsutil.h"
#include "io/h5util.h"
#include "io/weights.h"
#include "worker/clr_task.h"
#include "worker/resnet.h"

bool clr_checkpoint_detect(const char *path)
{
    char format[64];
    return sotu_h5_file_format(path, format, sizeof format) &&
           !strcmp(format, SOTU_CLR_CHECKPOINT_FORMAT);
}

static sotu_status check_format(hid_t f, const char *path)
{
    char format[64];
    int64_t fv = 0;
    sotu_status s = sotu_h5_read_str_attr(f, "format", format, sizeof format, path);
    if (s == SOTU_OK && strcmp(format, SOTU_CLR_CHECKPOINT_FORMAT))
        s = sotu_error(SOTU_ERR_DATA, "%s: format is \"%s\", expected \"%s\"", path, format,
                       SOTU_CLR_CHECKPOINT_FORMAT);
    if (s == SOTU_OK)
        s = sotu_h5_read_int_attr(f, "format_version", &fv, path);
    if (s == SOTU_OK && fv != SOTU_CLR_CHECKPOINT_VERSION)
        s = sotu_error(SOTU_ERR_DATA, "%s: format_version %lld, this sotu reads %d", path,
                       (long long)fv, SOTU_CLR_CHECKPOINT_VERSION);
    return s;
}

sotu_status clr_checkpoint_read_config(const char *path, char *const *sets, int n_sets,
                                       sotu_config *cfg)
{
    hid_t f;
    char *yaml = NULL;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    if ((s = check_format(f, path)) == SOTU_OK)
        s = sotu_h5_read_str_attr_alloc(f, "config", &yaml, path);
    H5Fclose(f);
    if (s != SOTU_OK)
        return s;
    /* sotu_config_load reads files: the YAML goes through a private one. */
    char tmp[] = "/tmp/sotu-clr-config-......";
    memset(tmp + sizeof tmp - 7, 'X', 6); /* mkstemp's template */
    int fd = mkstemp(tmp);
    if (fd < 0) {
        free(yaml);
        return sotu_error(SOTU_ERR_IO, "%s: cannot create a temporary file for its "
                          "configuration: %s", path, strerror(errno));
    }
    close(fd);
    sotu_config_defaults(cfg);
    s = sotu_write_file_atomic(tmp, yaml, strlen(yaml));
    if (s == SOTU_OK)
        s = sotu_config_load(cfg, tmp);
    unlink(tmp);
    free(yaml);
    if (s != SOTU_OK)
        return sotu_error_context(s, "%s: the stored configuration", path);
    for (int i = 0; s == SOTU_OK && i < n_sets; i++)
        s = sotu_config_set(cfg, sets[i]);
    if (s == SOTU_OK)
        s = sotu_config_validate(cfg);
    return s;
}

sotu_status clr_checkpoint_read_backbone(const char *path, int batch_cap, resnet_model *base)
{
    memset(base, 0, sizeof *base);
    hid_t f;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    s = check_format(f, path);
    H5Fclose(f);
    resnet_config c;
    if (s == SOTU_OK)
        s = resnet_weights_read_config(path, &c);
    if (s == SOTU_OK)
        s = resnet_init(base, &c, batch_cap);
    if (s == SOTU_OK)
        s = resnet_weights_read(path, "/backbone", base);
    if (s != SOTU_OK) {
        resnet_free(base);
        return s;
    }
    base->training = false;
    return SOTU_OK;
}

/* The names of /tasks in index order, for an error message. */
static void list_tasks(hid_t tasks, hsize_t T, char *dst, size_t cap)
{
    dst[0] = '\0';
    for (hsize_t i = 0; i < T; i++) {
        char name[SOTU_TASK_NAME_MAX];
        if (H5Lget_name_by_idx(tasks, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                               H5P_DEFAULT) < 0)
            continue;
        size_t n = strlen(dst);
        snprintf(dst + n, cap - n, "%s%s", n ? ", " : "", name);
    }
}

sotu_status clr_checkpoint_find_task(const char *path, const char *task, char *name, int *index,
                                     int *classes)
{
    hid_t f, tasks = H5I_INVALID_HID;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    H5G_info_t gi = {0};
    if ((s = check_format(f, path)) == SOTU_OK &&
        ((tasks = H5Gopen2(f, "/tasks", H5P_DEFAULT)) < 0 || H5Gget_info(tasks, &gi) < 0))
        s = sotu_error(SOTU_ERR_DATA, "%s: no readable /tasks group", path);
    char *end = NULL;
    long want = strtol(task, &end, 10);
    bool by_index = task[0] && !*end;
    int found = 0;
    for (hsize_t i = 0; s == SOTU_OK && !found && i < gi.nlinks; i++) {
        char n[SOTU_TASK_NAME_MAX];
        if (H5Lget_name_by_idx(tasks, ".", H5_INDEX_NAME, H5_ITER_INC, i, n, sizeof n,
                               H5P_DEFAULT) < 0)
            continue;
        hid_t g = H5Gopen2(tasks, n, H5P_DEFAULT);
        int64_t ix = -1, k = 0;
        char status[16] = "";
        if (g < 0)
            continue;
        if ((s = sotu_h5_read_int_attr(g, "index", &ix, path)) == SOTU_OK &&
            (by_index ? ix == want : !strcmp(n, task))) {
            found = 1;
            s = sotu_h5_read_int_attr(g, "classes", &k, path);
            if (s == SOTU_OK)
                s = sotu_h5_read_str_attr(g, "status", status, sizeof status, path);
            snprintf(name, SOTU_TASK_NAME_MAX, "%s", n);
            *index = (int)ix;
            *classes = (int)k;
        }
        H5Gclose(g);
        if (s == SOTU_OK && found && strcmp(status, "ok"))
            s = sotu_error(SOTU_ERR_DATA, "%s: task %s has no module (status %s: %s; `sotu "
                           "train --resume` trains it)", path, n, status,
                           strcmp(status, "failed") ? "not trained" : "its training failed");
    }
    if (s == SOTU_OK && !found) {
        char names[2048];
        list_tasks(tasks, gi.nlinks, names, sizeof names);
        s = sotu_error(SOTU_ERR_DATA, "%s: no task '%s' (the checkpoint has %d: %s; give a name "
                       "or an index 0..%d)", path, task, (int)gi.nlinks, names,
                       (int)gi.nlinks - 1);
    }
    if (tasks >= 0)
        H5Gclose(tasks);
    H5Fclose(f);
    return s;
}

sotu_status clr_checkpoint_read_module(const char *path, const char *name,
                                       const sotu_tensor_table *layout, float *values,
                                       int64_t *counter)
{
    char group[SOTU_TASK_NAME_MAX + 16];
    snprintf(group, sizeof group, "/clr/%s", name);
    hid_t f;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    hid_t g = H5Lexists(f, "/clr", H5P_DEFAULT) > 0 && H5Lexists(f, group, H5P_DEFAULT) > 0
                  ? H5Gopen2(f, group, H5P_DEFAULT)
                  : H5I_INVALID_HID;
    if (g < 0)
        s = sotu_error(SOTU_ERR_DATA, "%s: no module group %s", path, group);
    else
        s = sotu_h5_read_int_attr(g, "num_batches_tracked", counter, path);
    if (g >= 0)
        H5Gclose(g);
    H5Fclose(f);
    if (s == SOTU_OK)
        s = sotu_weights_read_into(path, group, layout, values, 0);
    return s;
}

static sotu_status read_variant(const char *path, resnet_clr *clr)
{
    hid_t f;
    char v[32];
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    s = sotu_h5_read_str_attr(f, "clr_variant", v, sizeof v, path);
    H5Fclose(f);
    if (s == SOTU_OK)
        s = resnet_parse_clr(v, "clr_variant", clr);
    if (s == SOTU_OK && *clr == RESNET_CLR_NONE)
        s = sotu_error(SOTU_ERR_DATA, "%s: clr_variant none, expected clr or clr-full", path);
    return s;
}

sotu_status clr_checkpoint_load_task(const char *path, const char *task, int batch_cap,
                                     resnet_model *m, char *task_name)
{
    memset(m, 0, sizeof *m);
    resnet_model base = {0};
    sotu_tensor_table layout = {0};
    float *values = NULL;
    int index = 0, classes = 0;
    int64_t counter = 0;
    resnet_clr clr = RESNET_CLR_NONE;
    sotu_status s = clr_checkpoint_find_task(path, task, task_name, &index, &classes);
    if (s == SOTU_OK)
        s = read_variant(path, &clr);
    if (s == SOTU_OK)
        s = clr_checkpoint_read_backbone(path, 1, &base);
    if (s == SOTU_OK)
        s = clr_model_for_task(&base, clr, classes, batch_cap, 0, (uint32_t)index, m);
    if (s == SOTU_OK)
        s = clr_module_layout(m, &layout);
    if (s == SOTU_OK && !(values = malloc(sizeof(float) * (layout.total ? layout.total : 1))))
        s = sotu_error(SOTU_ERR_NOMEM, "%s: module of task %s", path, task_name);
    if (s == SOTU_OK)
        s = clr_checkpoint_read_module(path, task_name, &layout, values, &counter);
    if (s == SOTU_OK) {
        clr_module_apply(m, &layout, values, counter);
        m->training = false;
    } else {
        resnet_free(m);
    }
    free(values);
    sotu_task_table_free(&layout);
    resnet_free(&base);
    return s;
}

/* /tasks/<name>'s record into task t of run; *has_module when its status
 * is ok. */
static sotu_status read_record(hid_t f, const char *path, clr_run *run, int t, bool *has_module)
{
    const char *name = run->man.tasks[t].name;
    clr_run_task *k = &run->tasks[t];
    char group[SOTU_TASK_NAME_MAX + 16], status[16] = "";
    snprintf(group, sizeof group, "/tasks/%s", name);
    *has_module = false;
    if (H5Lexists(f, group, H5P_DEFAULT) <= 0)
        return SOTU_OK;
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    if (g < 0)
        return sotu_error(SOTU_ERR_DATA, "%s: cannot open %s", path, group);
    int64_t classes = 0, bytes = 0, steps = 0;
    sotu_status s = sotu_h5_read_int_attr(g, "classes", &classes, path);
    if (s == SOTU_OK)
        s = sotu_h5_read_str_attr(g, "status", status, sizeof status, path);
    if (s == SOTU_OK && classes != k->classes)
        s = sotu_error(SOTU_ERR_DATA, "%s: task %s has %lld classes in the checkpoint, %d in %s",
                       path, name, (long long)classes, k->classes, run->man.path);
    if (s == SOTU_OK && !strcmp(status, "ok")) {
        *has_module = true;
        if (sotu_h5_has_attr(g, "bytes") > 0)
            sotu_h5_read_int_attr(g, "bytes", &bytes, path);
        if (sotu_h5_has_attr(g, "steps") > 0)
            sotu_h5_read_int_attr(g, "steps", &steps, path);
        k->bytes = bytes;
        k->report[CLR_JOB_MODULE].finetuned_acc = sotu_h5_f64_attr_or_nan(g, "finetuned_acc", path);
        k->report[CLR_JOB_MODULE].seconds = sotu_h5_f64_attr_or_nan(g, "train_seconds", path);
        k->report[CLR_JOB_MODULE].steps = steps;
    }
    const struct {
        clr_job_kind kind;
        const char *attr;
    } base[] = {{CLR_JOB_FROZEN, "frozen_acc"}, {CLR_JOB_FINETUNED, "full_finetune_acc"}};
    for (size_t i = 0; s == SOTU_OK && i < sizeof base / sizeof base[0]; i++) {
        double a = sotu_h5_f64_attr_or_nan(g, base[i].attr, path);
        if (!isnan(a) && run->want[base[i].kind]) {
            k->done[base[i].kind] = true;
            k->report[base[i].kind].finetuned_acc = a;
        }
    }
    H5Gclose(g);
    return s;
}

sotu_status clr_checkpoint_fill_run(const char *path, clr_run *run, int *n_found)
{
    *n_found = 0;
    hid_t f;
    sotu_status s = sotu_h5_open_read(path, &f);
    if (s != SOTU_OK)
        return s;
    s = check_format(f, path);
    for (int t = 0; s == SOTU_OK && t < run->T; t++) {
        bool has = false;
        if ((s = read_record(f, path, run, t, &has)) != SOTU_OK || !has)
            continue;
        clr_run_task *k = &run->tasks[t];
        sotu_tensor_table layout = {0};
        if ((s = clr_run_layout(run, t, &layout)) != SOTU_OK)
            break;
        k->module.values = malloc(sizeof(float) * (layout.total ? layout.total : 1));
        k->module.count = layout.total;
        k->module.task_index = (uint32_t)t;
        k->module.kind = (uint32_t)run->clr;
        snprintf(k->module.task_name, sizeof k->module.task_name, "%s", run->man.tasks[t].name);
        if (!k->module.values)
            s = sotu_error(SOTU_ERR_NOMEM, "%s: module of task %s", path, run->man.tasks[t].name);
        else
            s = clr_checkpoint_read_module(path, run->man.tasks[t].name, &layout,
                                           k->module.values, &k->module.counter);
        sotu_task_table_free(&layout);
        if (s == SOTU_OK) {
            k->done[CLR_JOB_MODULE] = true;
            (*n_found)++;
        }
    }
    H5Fclose(f);
    return s;
}
