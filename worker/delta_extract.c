#include "worker/delta_extract.h"

#include <stdlib.h>
#include <string.h>

#include "common/mask.h"

static bool all_zero_delta(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

/* Fills t's values (and indices for SEEDED) from d0, dt; false on OOM. */
static bool extract_tensor(sotu_delta_tensor *t, const float *d0, const float *dt, uint64_t seed,
                           uint32_t task, double keep)
{
    if (t->mask == SOTU_MASK_DENSE) {
        t->values = malloc((size_t)t->count * sizeof(float) + 1);
        if (!t->values)
            return false;
        for (uint64_t i = 0; i < t->count; i++)
            t->values[i] = dt[i] - d0[i];
        t->kept = t->count;
        return true;
    }
    /* The mask lists its kept elements (at most F + 1 a block, common/mask.h),
     * then the values are gathered at them: ascending indices, so the
     * reads of θ0 and θt stream. */
    sotu_mask m = sotu_mask_of(seed, task, t->table_index, t->count, keep);
    uint64_t most = sotu_mask_kept_max(&m);
    t->indices = malloc(((size_t)most + SOTU_MASK_SLACK) * sizeof *t->indices);
    if (!t->indices)
        return false;
    uint64_t kept = sotu_mask_list(&m, t->indices, most);
    t->values = malloc((size_t)kept * sizeof(float) + 1);
    if (!t->values)
        return false;
    for (uint64_t k = 0; k < kept; k++) {
        uint32_t i = t->indices[k];
        t->values[k] = dt[i] - d0[i];
    }
    t->kept = kept;
    return true;
}

sotu_status sotu_delta_extract(const sotu_tensor_table *model, const float *theta0,
                               const float *thetat, const sotu_extract_opts *o, sotu_delta *out)
{
    sotu_status s = SOTU_OK;
    memset(out, 0, sizeof *out);
    size_t ln = o->task_name ? strlen(o->task_name) : 0;
    if (ln == 0 || ln >= SOTU_DELTA_TASK_NAME_MAX)
        return sotu_error(SOTU_ERR_CONFIG, "delta extract: task name '%s': expected 1..%d bytes",
                          o->task_name ? o->task_name : "", SOTU_DELTA_TASK_NAME_MAX - 1);
    if (!(o->keep > 0.0 && o->keep <= 1.0))
        return sotu_error(SOTU_ERR_CONFIG, "delta extract: task '%s': sotu.keep %g, expected (0, 1]",
                          o->task_name, o->keep);

    out->task_index = o->task_index;
    if (o->prov)
        out->prov = *o->prov;
    memcpy(out->task_name, o->task_name, ln + 1);
    out->seed = o->seed;
    out->keep = o->keep;
    out->flags = o->rescale ? SOTU_DELTA_FLAG_RESCALE : 0;
    out->dtype = o->dtype;
    out->tensors = calloc((size_t)model->n + 1, sizeof *out->tensors);
    if (!out->tensors) {
        s = sotu_error(SOTU_ERR_NOMEM, "delta extract: task '%s': %d tensor records",
                       o->task_name, model->n);
        goto cleanup;
    }
    for (int j = 0; j < model->n; j++) {
        const sotu_tensor_info *ti = &model->t[j];
        if ((o->include && !o->include[j]) ||
            all_zero_delta(theta0 + ti->offset, thetat + ti->offset, ti->count))
            continue;
        sotu_delta_tensor *t = &out->tensors[out->n_tensors++];
        memcpy(t->name, ti->name, sizeof t->name);
        t->table_index = (uint32_t)j;
        t->ndim = ti->ndim;
        memcpy(t->shape, ti->shape, sizeof t->shape);
        t->count = ti->count;
        bool dense = o->dense ? o->dense[j] : strncmp(ti->name, "head.", 5) == 0;
        t->mask = dense ? SOTU_MASK_DENSE : SOTU_MASK_SEEDED;
        if (!dense && ti->count > SOTU_DELTA_SPARSE_COUNT_MAX) {
            s = sotu_error(SOTU_ERR_CONFIG, "delta extract: task '%s': tensor '%s': %zu elements, "
                           "a masked tensor has at most %llu", o->task_name, ti->name, ti->count,
                           (unsigned long long)SOTU_DELTA_SPARSE_COUNT_MAX);
            goto cleanup;
        }
    }

    int failed = -1;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < out->n_tensors; i++) {
        sotu_delta_tensor *t = &out->tensors[i];
        size_t off = model->t[t->table_index].offset;
        if (!extract_tensor(t, theta0 + off, thetat + off, o->seed, o->task_index, o->keep)) {
#pragma omp critical(sotu_delta_extract_fail)
            failed = i;
        }
    }
    if (failed >= 0)
        s = sotu_error(SOTU_ERR_NOMEM, "delta extract: task '%s': tensor '%s': out of memory",
                       o->task_name, out->tensors[failed].name);

cleanup:
    if (s != SOTU_OK)
        sotu_delta_free(out);
    return s;
}
