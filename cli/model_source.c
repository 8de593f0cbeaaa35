/* Model parameters from a weights file or a checkpoint (model_source.h). */
#include "cli/model_source.h"

#include <stdlib.h>
#include <string.h>

#include "io/checkpoint.h"
#include "io/fsutil.h"
#include "io/h5util.h"
#include "io/weights.h"
#include "worker/resnet.h"

static int find_task(const sotu_checkpoint_info *info, const char *task)
{
    int i = sotu_checkpoint_find_task(info, task);
    if (i >= 0)
        return i;
    char *end;
    long v = strtol(task, &end, 10);
    return *task && !*end && v >= 0 && v < info->n_tasks ? (int)v : -1;
}

void sotu_model_head_free(sotu_model_head *h)
{
    if (!h)
        return;
    free(h->class_names);
    memset(h, 0, sizeof *h);
}

/* Copies a checkpoint task's class names (if recorded) into head. */
static sotu_status head_names(const sotu_checkpoint_task_info *ti, sotu_model_head *head)
{
    head->classes = ti->classes;
    if (!ti->class_names)
        return SOTU_OK;
    head->class_names = calloc((size_t)ti->classes, sizeof *head->class_names);
    if (!head->class_names)
        return sotu_error(SOTU_ERR_NOMEM, "%d class names", ti->classes);
    for (int k = 0; k < ti->classes; k++)
        snprintf(head->class_names[k], sizeof head->class_names[k], "%s", ti->class_names[k]);
    return SOTU_OK;
}

/* "a, b, c" (the first few task names) for messages. */
static void task_list(const sotu_checkpoint_info *info, char *dst, size_t cap)
{
    dst[0] = '\0';
    for (int i = 0; i < info->n_tasks && strlen(dst) + 4 < cap; i++) {
        if (i == 6) {
            snprintf(dst + strlen(dst), cap - strlen(dst), ", ... (%d in all)", info->n_tasks);
            break;
        }
        snprintf(dst + strlen(dst), cap - strlen(dst), "%s%s", i ? ", " : "",
                 info->tasks[i].name);
    }
}

static sotu_status load_task(const char *path, const char *task, int batch_cap, vit_model *m,
                             sotu_model_head *head)
{
    sotu_checkpoint_info info;
    sotu_status s = sotu_checkpoint_read_info(path, &info);
    if (s != SOTU_OK)
        return s;
    int t = find_task(&info, task);
    if (t < 0) {
        char names[512];
        task_list(&info, names, sizeof names);
        s = sotu_error(SOTU_ERR_DATA, "%s: no task '%s' (the checkpoint has %d tasks: %s)", path,
                       task, info.n_tasks, names);
        goto cleanup;
    }
    const sotu_checkpoint_task_info *ti = &info.tasks[t];
    if (!ti->head_weight) {
        s = sotu_error(SOTU_ERR_DATA, "%s: task '%s' has no head (/heads/%s; status %s)", path,
                       ti->name, ti->name, ti->status);
        goto cleanup;
    }
    snprintf(head->task, sizeof head->task, "%s", ti->name);
    if ((s = head_names(ti, head)) != SOTU_OK)
        goto cleanup;
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

/* SOTU_ERR_USAGE when the checkpoint has task heads (a task must be chosen). */
static sotu_status need_task(const char *path)
{
    sotu_checkpoint_info info;
    sotu_status s = sotu_checkpoint_read_info(path, &info);
    if (s != SOTU_OK)
        return s;
    int heads = 0;
    for (int i = 0; i < info.n_tasks; i++)
        heads += info.tasks[i].head_weight != NULL;
    if (heads > 0) {
        char names[512];
        task_list(&info, names, sizeof names);
        s = sotu_error(SOTU_ERR_USAGE, "%s is a run checkpoint with %d task heads: pass --task T "
                       "(a name or index: %s). --pretrained-head uses /merged's own head "
                       "instead, the %d-class head of the pretrained backbone, which no task "
                       "trained", path, heads, names, info.model.classes);
    }
    sotu_checkpoint_info_free(&info);
    return s;
}

sotu_status sotu_model_load(const char *path, const char *task, bool pretrained_head,
                            int batch_cap, vit_model *m, sotu_model_head *head)
{
    memset(m, 0, sizeof *m);
    sotu_model_head local;
    if (!head)
        head = &local;
    memset(head, 0, sizeof *head);
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
    if (task && pretrained_head)
        return sotu_error(SOTU_ERR_USAGE, "--task and --pretrained-head exclude each other");
    if (task) {
        s = load_task(path, task, batch_cap, m, head);
    } else if (is_ckpt && !pretrained_head) {
        s = need_task(path);
    } else {
        sotu_vit_config c;
        if ((s = sotu_weights_read_config(path, &c)) == SOTU_OK &&
            (s = vit_init(m, &c, batch_cap)) == SOTU_OK)
            s = is_ckpt ? sotu_checkpoint_read_merged(path, 0, &m->table, m->params, 0)
                        : sotu_weights_read_into(path, SOTU_WEIGHTS_GROUP, &m->table, m->params,
                                                 0);
        head->pretrained_head = is_ckpt;
        head->classes = s == SOTU_OK ? c.classes : 0;
    }
    /* need_task passes only a checkpoint without task heads: its own head. */
    if (s == SOTU_OK && !task && is_ckpt && !pretrained_head)
        return sotu_model_load(path, NULL, true, batch_cap, m, head == &local ? NULL : head);
    if (s != SOTU_OK) {
        vit_free(m);
        sotu_model_head_free(head);
    } else if (head == &local) {
        sotu_model_head_free(head);
    }
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
