#include "worker/clr_task.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/rng.h"
#include "worker/finetune.h"

static const char *const kind_names[CLR_JOB_KINDS] = {"module", "frozen", "finetuned"};

const char *clr_job_kind_name(clr_job_kind k)
{
    return k >= 0 && k < CLR_JOB_KINDS ? kind_names[k] : "?";
}

static bool is_fc(const char *name)
{
    return !strncmp(name, "fc.", 3);
}

sotu_status clr_model_for_task(const resnet_model *base, resnet_clr clr, int classes,
                               int batch_cap, uint64_t seed, uint32_t task, resnet_model *m)
{
    memset(m, 0, sizeof *m);
    resnet_config rc = base->cfg;
    rc.clr = clr;
    rc.classes = classes;
    sotu_status st = resnet_init(m, &rc, batch_cap);
    if (st != SOTU_OK)
        return st;
    resnet_clr_reset(m);
    for (int i = 0; i < m->table.n; i++) {
        const sotu_tensor_info *t = &m->table.t[i];
        if (is_fc(t->name))
            continue;
        int k = sotu_tensor_find(&base->table, t->name);
        if (k < 0)
            continue; /* a CLR weight the base has no place for: identity */
        memcpy(m->params + t->offset, base->params + base->table.t[k].offset,
               sizeof(float) * t->count);
    }
    memcpy(m->running, base->running, sizeof(float) * m->buffers.total);
    m->num_batches_tracked = base->num_batches_tracked;

    sotu_rng r;
    sotu_rng_init(&r, seed, SOTU_STREAM_INIT + ((uint64_t)task << 8));
    float bound = 1.0f / sqrtf((float)m->feature_dim);
    for (int i = 0; i < m->table.n; i++) {
        const sotu_tensor_info *t = &m->table.t[i];
        if (!is_fc(t->name))
            continue;
        for (size_t k = 0; k < t->count; k++)
            m->params[t->offset + k] = bound * (2.0f * sotu_rng_uniform(&r) - 1.0f);
    }
    return SOTU_OK;
}

sotu_status clr_module_layout(const resnet_model *m, sotu_tensor_table *layout)
{
    *layout = (sotu_tensor_table){0};
    if (m->cfg.clr == RESNET_CLR_NONE)
        return sotu_error(SOTU_ERR_CONFIG, "CLR module: the model has no CLR layers");
    /* CLR's set as resnet_set_trainable defines it, on a scratch copy of
     * the model's flags. */
    resnet_model probe = *m;
    probe.trainable = malloc(sizeof(bool) * (size_t)m->table.n);
    layout->t = malloc(sizeof *layout->t * (size_t)(m->table.n + m->buffers.n));
    if (!probe.trainable || !layout->t) {
        free(probe.trainable);
        free(layout->t);
        layout->t = NULL;
        return sotu_error(SOTU_ERR_NOMEM, "CLR module layout of %d tensors",
                          m->table.n + m->buffers.n);
    }
    sotu_status st = resnet_set_trainable(&probe, "clr");
    size_t off = 0;
    for (int i = 0; st == SOTU_OK && i < m->table.n + m->buffers.n; i++) {
        bool param = i < m->table.n;
        if (param && !probe.trainable[i])
            continue;
        sotu_tensor_info t = param ? m->table.t[i] : m->buffers.t[i - m->table.n];
        t.offset = off;
        off += t.count;
        layout->t[layout->n++] = t;
    }
    free(probe.trainable);
    layout->total = off;
    if (st != SOTU_OK) {
        free(layout->t);
        *layout = (sotu_tensor_table){0};
    }
    return st;
}

/* Where layout tensor i lives in m: its block and offset. */
static float *module_source(const resnet_model *m, const sotu_tensor_info *t)
{
    int k = sotu_tensor_find(&m->table, t->name);
    if (k >= 0)
        return m->params + m->table.t[k].offset;
    k = sotu_tensor_find(&m->buffers, t->name);
    return k >= 0 ? m->running + m->buffers.t[k].offset : NULL;
}

void clr_module_extract(const resnet_model *m, const sotu_tensor_table *layout, float *values)
{
    for (int i = 0; i < layout->n; i++) {
        const float *src = module_source(m, &layout->t[i]);
        if (src)
            memcpy(values + layout->t[i].offset, src, sizeof(float) * layout->t[i].count);
    }
}

void clr_module_apply(resnet_model *m, const sotu_tensor_table *layout, const float *values,
                      int64_t num_batches_tracked)
{
    for (int i = 0; i < layout->n; i++) {
        float *dst = module_source(m, &layout->t[i]);
        if (dst)
            memcpy(dst, values + layout->t[i].offset, sizeof(float) * layout->t[i].count);
    }
    m->num_batches_tracked = num_batches_tracked;
}

/* The encoded module of a trained model into res->message. */
static sotu_status ship_module(const resnet_model *m, const sotu_manifest_task *task,
                               uint32_t index, const sotu_provenance *prov, ZSTD_CCtx *cctx,
                               sotu_task_result *res)
{
    sotu_tensor_table layout;
    sotu_status st = clr_module_layout(m, &layout);
    if (st != SOTU_OK)
        return st;
    sotu_module mod = {.task_index = index, .kind = (uint32_t)m->cfg.clr,
                       .counter = m->num_batches_tracked, .count = layout.total};
    snprintf(mod.task_name, sizeof mod.task_name, "%s", task->name);
    mod.prov = *prov;
    mod.values = malloc(sizeof(float) * (layout.total ? layout.total : 1));
    size_t cap = sotu_module_encode_bound(&layout, &mod);
    res->message = malloc(cap);
    if (!mod.values || !res->message) {
        st = sotu_error(SOTU_ERR_NOMEM, "task %s: %zu bytes for the module", task->name, cap);
    } else {
        clr_module_extract(m, &layout, mod.values);
        st = sotu_module_encode(res->message, cap, &res->message_bytes, &mod, &layout, cctx, 3);
    }
    const char *fault = getenv("SOTU_FAULT_CORRUPT_MODULE");
    if (st == SOTU_OK && fault && !strcmp(fault, task->name))
        ((unsigned char *)res->message)[res->message_bytes - 3] ^= 0x5a;
    free(mod.values);
    sotu_task_table_free(&layout);
    return st;
}

sotu_status sotu_clr_task_run(const resnet_model *base, const sotu_config *cfg,
                              const sotu_provenance *prov, const sotu_manifest_task *task,
                              uint32_t index, clr_job_kind kind, ZSTD_CCtx *cctx,
                              sotu_task_result *res)
{
    *res = (sotu_task_result){0};
    double start = sotu_now();
    sotu_taskset ts = {0};
    resnet_model m = {0};
    resnet_clr clr = RESNET_CLR_NONE;
    sotu_status st = SOTU_OK;
    if (kind == CLR_JOB_MODULE)
        st = resnet_parse_clr(cfg->clr.variant, "clr.variant", &clr);
    if (st == SOTU_OK && kind == CLR_JOB_MODULE && clr == RESNET_CLR_NONE)
        st = sotu_error(SOTU_ERR_CONFIG, "clr.variant: none, expected clr or clr-full");
    sotu_provenance p = *prov;
    /* The checksum first: the reader below then finds the file in the page cache. */
    if (st == SOTU_OK && kind == CLR_JOB_MODULE)
        st = sotu_file_xxh64(task->path, &p.task_file);
    if (st == SOTU_OK)
        st = sotu_taskset_read(task->path, &ts);
    if (st == SOTU_OK)
        st = sotu_taskset_hold_out(&ts, cfg->data.val_fraction, cfg->train.seed, index);
    if (st == SOTU_OK)
        st = clr_model_for_task(base, clr, ts.classes, cfg->train.batch_size, cfg->train.seed,
                                index, &m);
    if (st != SOTU_OK)
        goto cleanup;

    char label[96];
    snprintf(label, sizeof label, "%s %s", kind == CLR_JOB_MODULE ? "clr" : kind_names[kind],
             task->name);
    sotu_finetune_opts fo = sotu_finetune_opts_default();
    fo.task = index;
    fo.label = label;
    fo.tune = kind == CLR_JOB_MODULE ? "clr" : kind == CLR_JOB_FROZEN ? "fc" : "all";
    sotu_config diverge;
    cfg = sotu_task_fault_config(cfg, task->name, &diverge);
    sotu_finetune_result fr;
    if ((st = sotu_finetune_run_resnet(&m, &ts, cfg, &fo, &fr)) != SOTU_OK)
        goto cleanup;
    res->val_acc = NAN;
    res->n_val = ts.n_val;
    if (ts.n_val > 0 &&
        (st = sotu_finetune_eval_resnet(&m, ts.val_images, ts.val_labels, ts.n_val, ts.height,
                                        ts.width, ts.channels, cfg, &res->val_acc, NULL,
                                        NULL)) != SOTU_OK)
        goto cleanup;
    if (kind == CLR_JOB_MODULE && (st = ship_module(&m, task, index, &p, cctx, res)) != SOTU_OK)
        goto cleanup;
    res->finetuned_acc = fr.test_acc;
    res->train_loss = fr.train_loss;
    res->steps = fr.steps;
    res->seconds = sotu_now() - start;

cleanup:
    if (st != SOTU_OK) {
        sotu_task_result_free(res);
        sotu_error_context(st, "task %s (%s)", task->name, kind_names[kind]);
    }
    resnet_free(&m);
    sotu_taskset_free(&ts);
    return st;
}
