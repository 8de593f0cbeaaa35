#include "worker/task.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mask.h"
#include "io/delta.h"
#include "worker/delta_extract.h"
#include "worker/finetune.h"

sotu_status sotu_task_table(const sotu_tensor_table *backbone, int classes, int dim,
                            sotu_tensor_table *tab)
{
    *tab = (sotu_tensor_table){0};
    int hw = sotu_tensor_find(backbone, "head.weight"), hb = sotu_tensor_find(backbone, "head.bias");
    if (hw != backbone->n - 2 || hb != backbone->n - 1)
        return sotu_error(SOTU_ERR_INTERNAL, "model table: head.weight and head.bias must be "
                          "its last two tensors");
    tab->t = malloc(sizeof *tab->t * (size_t)backbone->n);
    if (!tab->t)
        return sotu_error(SOTU_ERR_NOMEM, "model table of %d tensors", backbone->n);
    memcpy(tab->t, backbone->t, sizeof *tab->t * (size_t)backbone->n);
    tab->n = backbone->n;
    sotu_tensor_info *w = &tab->t[hw], *b = &tab->t[hb];
    w->shape[0] = classes;
    w->shape[1] = dim;
    w->count = (size_t)classes * (size_t)dim;
    b->shape[0] = classes;
    b->count = (size_t)classes;
    b->offset = w->offset + w->count;
    tab->total = b->offset + b->count;
    return SOTU_OK;
}

void sotu_task_table_free(sotu_tensor_table *tab)
{
    if (!tab)
        return;
    free(tab->t);
    *tab = (sotu_tensor_table){0};
}

/* The per-step scalars of one task as JSONL lines (train.log_every). */
typedef struct {
    const char *task;
    uint32_t index;
    FILE *f;
    char *text;
    size_t len;
} step_log;

static void log_step(void *ctx, const sotu_finetune_step *s)
{
    step_log *l = ctx;
    fprintf(l->f, "{\"task\": \"%s\", \"task_index\": %u, \"phase\": \"%s\", \"epoch\": %d, "
                  "\"step\": %lld, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, "
                  "\"images\": %d, \"images_per_s\": %.6g, \"seconds\": %.6g}\n",
            l->task, l->index, s->probe ? "head" : "tune", s->epoch, (long long)s->step, s->loss,
            s->lr, s->grad_norm, s->images,
            s->step_seconds > 0 ? s->images / s->step_seconds : 0.0, s->seconds);
}

void sotu_task_result_free(sotu_task_result *res)
{
    if (!res)
        return;
    free(res->message);
    free(res->scalars);
    *res = (sotu_task_result){0};
}

const sotu_config *sotu_task_fault_config(const sotu_config *cfg, const char *task,
                                          sotu_config *scratch)
{
    const char *fault = getenv("SOTU_FAULT_DIVERGE_TASK");
    if (!fault || strcmp(fault, task))
        return cfg;
    *scratch = *cfg;
    scratch->train.lr = 1e30;
    scratch->train.grad_clip = 0;
    return scratch;
}

static sotu_delta_dtype parse_dtype(const char *s)
{
    return strcmp(s, "bf16") == 0 ? SOTU_DELTA_BF16 : SOTU_DELTA_F32;
}

sotu_status sotu_task_run(const vit_config *vc, const float *theta0, const sotu_config *cfg,
                          const sotu_provenance *prov, const sotu_manifest_task *task,
                          uint32_t index, double keep, ZSTD_CCtx *cctx, sotu_task_result *res)
{
    *res = (sotu_task_result){0};
    double start = sotu_now();
    sotu_taskset ts = {0};
    vit_model m = {0};
    float *start_params = NULL;
    uint32_t **mask_idx = NULL;
    size_t *mask_n = NULL;
    sotu_delta d = {0};
    uint64_t task_file = 0;
    /* The checksum first: the reader below then finds the file in the page cache. */
    sotu_status st = sotu_file_xxh64(task->path, &task_file);
    if (st == SOTU_OK)
        st = sotu_taskset_read(task->path, &ts);
    if (st == SOTU_OK)
        st = sotu_taskset_hold_out(&ts, cfg->data.val_fraction, cfg->train.seed, index);
    if (st != SOTU_OK)
        goto cleanup;
    if ((st = vit_init(&m, vc, cfg->train.batch_size)) != SOTU_OK)
        goto cleanup;
    memcpy(m.params, theta0, m.num_params * sizeof *m.params);
    st = sotu_finetune_reset_head(&m, ts.classes, cfg->train.batch_size, cfg->train.seed, index);
    if (st != SOTU_OK)
        goto cleanup;
    if ((st = vit_set_trainable(&m, cfg->train.tune)) != SOTU_OK)
        goto cleanup;
    bool *include = malloc(sizeof *include * (size_t)m.table.n);
    start_params = malloc(m.num_params * sizeof *start_params);
    if (!include || !start_params) {
        free(include);
        st = sotu_error(SOTU_ERR_NOMEM, "task %s: %zu bytes for θ0", task->name,
                        m.num_params * sizeof *start_params);
        goto cleanup;
    }
    memcpy(start_params, m.params, m.num_params * sizeof *start_params);
    /* Every tensor the task trains ships, the head included even if frozen. */
    for (int j = 0; j < m.table.n; j++) {
        include[j] = m.trainable[j] || !strncmp(m.table.t[j].name, "head.", 5);
        if (!strncmp(m.table.t[j].name, "head.", 5))
            memset(start_params + m.table.t[j].offset, 0, m.table.t[j].count * sizeof(float));
    }

    /* sotu.tuning masked: each backbone tensor the task ships trains only
     * the entries of its seeded mask at the shipped keep, the very mask
     * sotu_delta_extract cuts with (seed, task, table index); the head whole. */
    if (!strcmp(cfg->sotu.tuning, "masked")) {
        mask_idx = calloc((size_t)m.table.n, sizeof *mask_idx);
        mask_n = calloc((size_t)m.table.n, sizeof *mask_n);
        if (!mask_idx || !mask_n) {
            free(include);
            st = sotu_error(SOTU_ERR_NOMEM, "task %s: mask lists", task->name);
            goto cleanup;
        }
        for (int j = 0; j < m.table.n && st == SOTU_OK; j++) {
            const sotu_tensor_info *ti = &m.table.t[j];
            if (!include[j] || !strncmp(ti->name, "head.", 5))
                continue;
            sotu_mask mk = sotu_mask_of(cfg->train.seed, index, (uint32_t)j, ti->count, keep);
            uint64_t most = sotu_mask_kept_max(&mk);
            mask_idx[j] = malloc(sizeof(uint32_t) * (size_t)(most + SOTU_MASK_SLACK));
            if (!mask_idx[j])
                st = sotu_error(SOTU_ERR_NOMEM, "task %s: mask of %s", task->name, ti->name);
            else
                mask_n[j] = (size_t)sotu_mask_list(&mk, mask_idx[j], most);
        }
        if (st != SOTU_OK) {
            free(include);
            goto cleanup;
        }
    }

    char label[96];
    snprintf(label, sizeof label, "fine-tune %s", task->name);
    sotu_finetune_opts fo = sotu_finetune_opts_default();
    fo.task = index;
    fo.label = label;
    fo.mask_idx = (const uint32_t *const *)mask_idx;
    fo.mask_n = mask_n;
    step_log sl = {.task = task->name, .index = index};
    if (cfg->train.log_every > 0 && (sl.f = open_memstream(&sl.text, &sl.len))) {
        fo.on_step = log_step;
        fo.step_every = cfg->train.log_every;
        fo.step_ctx = &sl;
    }
    sotu_config diverge;
    cfg = sotu_task_fault_config(cfg, task->name, &diverge);
    sotu_finetune_result fr;
    sotu_provenance stamped = *prov;
    stamped.task_file = task_file;
    st = sotu_finetune_run(&m, &ts, cfg, &fo, &fr);
    if (sl.f) {
        if (fclose(sl.f) == 0 && st == SOTU_OK) {
            res->scalars = sl.text;
            res->scalars_bytes = sl.len;
            sl.text = NULL;
        }
        free(sl.text);
    }
    res->val_acc = NAN;
    if (st == SOTU_OK && ts.n_val > 0)
        st = sotu_finetune_eval_cfg(&m, ts.val_images, ts.val_labels, ts.n_val, ts.height,
                                    ts.width, ts.channels, cfg, &res->val_acc, NULL, NULL);
    if (st == SOTU_OK) {
        sotu_extract_opts eo = {
            .task_index = index,
            .task_name = task->name,
            .seed = cfg->train.seed,
            .keep = keep,
            .rescale = cfg->sotu.rescale,
            .dtype = parse_dtype(cfg->sotu.value_dtype),
            .include = include,
            .prov = &stamped,
        };
        st = sotu_delta_extract(&m.table, start_params, m.params, &eo, &d);
    }
    free(include);
    if (st != SOTU_OK)
        goto cleanup;

    size_t cap = sotu_delta_encode_bound(&d);
    res->message = malloc(cap);
    if (!res->message) {
        st = sotu_error(SOTU_ERR_NOMEM, "task %s: %zu bytes for the encoded delta", task->name, cap);
        goto cleanup;
    }
    st = sotu_delta_encode(res->message, cap, &res->message_bytes, &d, cctx,
                           SOTU_DELTA_ZSTD_LEVEL);
    if (st != SOTU_OK)
        goto cleanup;
    res->finetuned_acc = fr.test_acc;
    res->n_val = ts.n_val;
    res->train_loss = fr.train_loss;
    res->steps = fr.steps;
    res->seconds = sotu_now() - start;

cleanup:
    if (st != SOTU_OK) {
        sotu_task_result_free(res);
        sotu_error_context(st, "task %s", task->name);
    }
    sotu_delta_free(&d);
    free(start_params);
    for (int j = 0; mask_idx && j < m.table.n; j++)
        free(mask_idx[j]);
    free(mask_idx);
    free(mask_n);
    vit_free(&m);
    sotu_taskset_free(&ts);
    return st;
}
