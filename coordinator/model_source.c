/* Model parameters from a weights file or a checkpoint (model_source.h). */
#include "coordinator/model_source.h"

#include <stdlib.h>
#include <string.h>

#include "io/checkpoint.h"
#include "io/fsutil.h"
#include "io/h5util.h"
#include "io/weights.h"
#include "worker/resnet_io.h"

static int find_task(const sotu_checkpoint_info *info, const char *task)
{
    int i = sotu_checkpoint_find_task(info, task);
    if (i >= 0)
        return i;
    char *end;
    long v = strtol(task, &end, 10);
    return *task && !*end && v >= 0 && v < info->n_tasks ? (int)v : -1;
}

static sotu_status load_task(const char *path, const char *task, int batch_cap, vit_model *m)
{
    sotu_checkpoint_info info;
    sotu_status s = sotu_checkpoint_read_info(path, &info);
    if (s != SOTU_OK)
        return s;
    int t = find_task(&info, task);
    if (t < 0) {
        s = sotu_error(SOTU_ERR_DATA, "%s: no task '%s' (the checkpoint has %d tasks%s%s)", path,
                       task, info.n_tasks, info.n_tasks ? ", e.g. " : "",
                       info.n_tasks ? info.tasks[0].name : "");
        goto cleanup;
    }
    const sotu_checkpoint_task_info *ti = &info.tasks[t];
    if (!ti->head_weight) {
        s = sotu_error(SOTU_ERR_DATA, "%s: task '%s' has no head (/heads/%s; status %s)", path,
                       ti->name, ti->name, ti->status);
        goto cleanup;
    }
    sotu_vit_config c = info.model;
    c.classes = ti->classes;
    if ((s = vit_init(m, &c, batch_cap)) != SOTU_OK)
        goto cleanup;
    if ((s = sotu_checkpoint_read_merged(path, 0, &m->table, m->params,
                                         SOTU_WEIGHTS_SKIP_HEAD)) != SOTU_OK)
        goto cleanup;
    int hw = sotu_tensor_find(&m->table, "head.weight"), hb = sotu_tensor_find(&m->table, "head.bias");
    memcpy(m->params + m->table.t[hw].offset, ti->head_weight,
           sizeof(float) * m->table.t[hw].count);
    memcpy(m->params + m->table.t[hb].offset, ti->head_bias, sizeof(float) * m->table.t[hb].count);
cleanup:
    sotu_checkpoint_info_free(&info);
    return s;
}

sotu_status sotu_model_load(const char *path, const char *task, int batch_cap, vit_model *m)
{
    memset(m, 0, sizeof *m);
    if (!sotu_file_exists(path))
        return sotu_error(SOTU_ERR_IO, "%s: no such file", path);
    char format[64];
    if (!sotu_h5_file_format(path, format, sizeof format))
        return sotu_error(SOTU_ERR_DATA,
                          "%s: not a sotu weights file or checkpoint (no HDF5 'format' "
                          "attribute)",
                          path);
    int is_ckpt = !strcmp(format, SOTU_CHECKPOINT_FORMAT);
    if (!is_ckpt && strcmp(format, "sotu-weights"))
        return sotu_error(SOTU_ERR_DATA,
                          "%s: HDF5 file of format '%s', expected sotu-weights or "
                          "sotu-checkpoint",
                          path, format);
    sotu_status s;
    if (task && !is_ckpt)
        return sotu_error(SOTU_ERR_USAGE,
                          "%s: --task %s needs a run checkpoint; this is a pretrained weights "
                          "file without task heads",
                          path, task);
    if (task) {
        s = load_task(path, task, batch_cap, m);
    } else {
        sotu_vit_config c;
        if ((s = sotu_weights_read_config(path, &c)) == SOTU_OK &&
            (s = vit_init(m, &c, batch_cap)) == SOTU_OK)
            s = is_ckpt ? sotu_checkpoint_read_merged(path, 0, &m->table, m->params, 0)
                        : sotu_weights_read_into(path, SOTU_WEIGHTS_GROUP, &m->table, m->params,
                                                 0);
    }
    if (s != SOTU_OK)
        vit_free(m);
    return s;
}

sotu_status sotu_model_load_resnet(const char *path, const char *task, int batch_cap,
                                   resnet_model *m)
{
    memset(m, 0, sizeof *m);
    if (task)
        return sotu_error(SOTU_ERR_USAGE, "%s: --task %s needs a run checkpoint; this is a "
                          "ResNet weights file without task heads", path, task);
    resnet_config c;
    sotu_status s = resnet_weights_read_config(path, &c);
    if (s == SOTU_OK && (s = resnet_init(m, &c, batch_cap)) == SOTU_OK)
        s = resnet_weights_read(path, SOTU_WEIGHTS_GROUP, m);
    if (s != SOTU_OK) {
        resnet_free(m);
        return s;
    }
    m->training = false;
    return SOTU_OK;
}
