/* AdamW, SGD with momentum, the learning-rate schedule and gradient checks
 * (contracts in optim.h). */
#include "worker/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/isa.h"

optim_config optim_config_default(optim_kind kind)
{
    optim_config c = {.kind = kind, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    if (kind == OPTIM_ADAMW)
        c.weight_decay = 0.01f;
    else
        c.momentum = 0.9f;
    return c;
}

static bool default_decay(const sotu_tensor_info *t)
{
    return t->ndim > 1 && strcmp(t->name, "pos_embed") != 0 && strcmp(t->name, "cls_token") != 0;
}

sotu_status optim_init(optim_state *o, const optim_config *cfg, const sotu_tensor_table *tab,
                       const bool *trainable)
{
    return optim_init_sparse(o, cfg, tab, trainable, NULL, NULL);
}

sotu_status optim_init_sparse(optim_state *o, const optim_config *cfg,
                              const sotu_tensor_table *tab, const bool *trainable,
                              const uint32_t *const *idx, const size_t *nidx)
{
    memset(o, 0, sizeof *o);
    o->sp_idx = idx;
    o->sp_n = nidx;
    o->cfg = *cfg;
    o->table = tab;
    o->n = tab->n;
    o->active = calloc((size_t)tab->n, sizeof *o->active);
    o->decay = calloc((size_t)tab->n, sizeof *o->decay);
    o->moff = calloc((size_t)tab->n, sizeof *o->moff);
    if (!o->active || !o->decay || !o->moff)
        goto nomem;
    for (int i = 0; i < tab->n; i++) {
        o->active[i] = trainable[i];
        o->decay[i] = default_decay(&tab->t[i]);
        o->moff[i] = o->moment_count;
        bool sparse = trainable[i] && idx && idx[i];
        if (trainable[i])
            o->moment_count += sparse ? nidx[i] : tab->t[i].count;
        if (sparse && nidx[i] > o->scratch_count)
            o->scratch_count = nidx[i];
    }
    if (o->scratch_count &&
        !(o->scratch = malloc(2 * o->scratch_count * sizeof *o->scratch)))
        goto nomem;
    size_t bytes = (o->moment_count ? o->moment_count : 1) * sizeof(float);
    o->m = calloc(1, bytes);
    if (!o->m)
        goto nomem;
    if (cfg->kind == OPTIM_ADAMW) {
        o->v = calloc(1, bytes);
        if (!o->v)
            goto nomem;
    }
    return SOTU_OK;
nomem:;
    size_t count = o->moment_count;
    optim_free(o);
    return sotu_error(SOTU_ERR_NOMEM, "optimizer: cannot allocate moments (%zu floats each)",
                      count);
}

void optim_set_decay(optim_state *o, int tensor, bool decay)
{
    if (tensor >= 0 && tensor < o->n)
        o->decay[tensor] = decay;
}

/* The AdamW update of n elements (torch's order of operations), compiled
 * for each ISA level (common/isa.h). */
SOTU_ISA_INLINE void adamw_update(float *restrict p, const float *restrict g, float *restrict m,
                                  float *restrict v, long n, const optim_config *c, float shrink,
                                  float step_size, float bc2_sqrt)
{
    float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    for (long k = 0; k < n; k++) {
        m[k] = b1 * m[k] + (1.0f - b1) * g[k];
        v[k] = b2 * v[k] + (1.0f - b2) * g[k] * g[k];
        p[k] = p[k] * shrink - step_size * m[k] / (sqrtf(v[k]) / bc2_sqrt + eps);
    }
}
SOTU_ISA_VARIANTS(adamw_update,
                  (float *restrict p, const float *restrict g, float *restrict m,
                   float *restrict v, long n, const optim_config *c, float shrink,
                   float step_size, float bc2_sqrt),
                  (p, g, m, v, n, c, shrink, step_size, bc2_sqrt));

/* SGD with momentum (torch's order) over n elements. */
SOTU_ISA_INLINE void sgd_update(float *restrict p, const float *restrict g, float *restrict m,
                                long n, float wd, float mom, float lr)
{
    for (long k = 0; k < n; k++) {
        float gk = g[k] + wd * p[k];
        m[k] = mom * m[k] + gk;
        p[k] -= lr * m[k];
    }
}
SOTU_ISA_VARIANTS(sgd_update,
                  (float *restrict p, const float *restrict g, float *restrict m, long n,
                   float wd, float mom, float lr),
                  (p, g, m, n, wd, mom, lr));

/* Elements a thread updates at a time. Every element's update reads only
 * that element, so any split gives the same bits. */
#define OPTIM_BLOCK 16384

/* One parallel region over every block of every active tensor (a tensor's
 * blocks are shared out without a barrier between tensors). */
void optim_step(optim_state *o, float *params, const float *grads, float lr)
{
    const optim_config *c = &o->cfg;
    o->step++;
    double bc1 = 1.0 - pow(c->beta1, (double)o->step);
    double bc2 = 1.0 - pow(c->beta2, (double)o->step);
    float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    /* Sparse tensors: the kept entries gathered, updated by the same kernel
     * (so the same arithmetic per element), scattered back; the others are
     * never read or written. */
    for (int i = 0; i < o->n; i++) {
        if (!o->active[i] || !o->sp_idx || !o->sp_idx[i])
            continue;
        const sotu_tensor_info *t = &o->table->t[i];
        const uint32_t *ix = o->sp_idx[i];
        long n = (long)o->sp_n[i];
        float *p = o->scratch, *g = o->scratch + o->scratch_count;
        float *params_t = params + t->offset;
        const float *grads_t = grads + t->offset;
        for (long k = 0; k < n; k++) {
            p[k] = params_t[ix[k]];
            g[k] = grads_t[ix[k]];
        }
        float wd = o->decay[i] ? c->weight_decay : 0.0f;
        float *m = o->m + o->moff[i];
        if (c->kind == OPTIM_ADAMW)
            SOTU_ISA_PICK(adamw_update)(p, g, m, o->v + o->moff[i], n, c, 1.0f - lr * wd,
                                        step_size, bc2_sqrt);
        else
            SOTU_ISA_PICK(sgd_update)(p, g, m, n, wd, c->momentum, lr);
        for (long k = 0; k < n; k++)
            params_t[ix[k]] = p[k];
    }
#pragma omp parallel if (o->moment_count > 4 * OPTIM_BLOCK)
    for (int i = 0; i < o->n; i++) {
        if (!o->active[i] || (o->sp_idx && o->sp_idx[i]))
            continue;
        const sotu_tensor_info *t = &o->table->t[i];
        float *p = params + t->offset;
        const float *g = grads + t->offset;
        float *m = o->m + o->moff[i];
        float wd = o->decay[i] ? c->weight_decay : 0.0f;
        long n = (long)t->count;
#pragma omp for schedule(dynamic, 1) nowait
        for (long k = 0; k < n; k += OPTIM_BLOCK) {
            long len = n - k < OPTIM_BLOCK ? n - k : OPTIM_BLOCK;
            if (c->kind == OPTIM_ADAMW)
                SOTU_ISA_PICK(adamw_update)(p + k, g + k, m + k, o->v + o->moff[i] + k, len, c,
                                            1.0f - lr * wd, step_size, bc2_sqrt);
            else
                SOTU_ISA_PICK(sgd_update)(p + k, g + k, m + k, len, wd, c->momentum, lr);
        }
    }
}

void optim_free(optim_state *o)
{
    if (!o)
        return;
    free(o->active);
    free(o->decay);
    free(o->moff);
    free(o->m);
    free(o->v);
    free(o->scratch);
    memset(o, 0, sizeof *o);
}

float optim_lr_at(float peak, long step, long total, long warmup)
{
    if (step < warmup)
        return peak * (float)(step + 1) / (float)warmup;
    long span = total - warmup;
    if (span <= 0)
        return peak;
    double progress = (double)(step - warmup) / (double)span;
    if (progress > 1.0)
        progress = 1.0;
    return (float)(0.5 * peak * (1.0 + cos(M_PI * progress)));
}

/* A tensor's sum of squares over at most NORM_PARTS fixed blocks (each one
 * vector reduction, whose lane order the build fixes), added in block order:
 * the same bits at any thread count. */
#define NORM_PARTS 256

static double sum_squares(const float *g, long n)
{
    long block = (n + NORM_PARTS - 1) / NORM_PARTS;
    block = block < OPTIM_BLOCK ? OPTIM_BLOCK : block;
    int parts = (int)((n + block - 1) / block);
    double part[NORM_PARTS];
#pragma omp parallel for schedule(static) if (parts > 1)
    for (int b = 0; b < parts; b++) {
        long k0 = (long)b * block, k1 = k0 + block < n ? k0 + block : n;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (long k = k0; k < k1; k++)
            s += (double)g[k] * g[k];
        part[b] = s;
    }
    double sum = 0.0;
    for (int b = 0; b < parts; b++)
        sum += part[b];
    return sum;
}

void optim_mask_grads(const optim_state *o, float *grads)
{
    for (int i = 0; o->sp_idx && i < o->n; i++) {
        if (!o->active[i] || !o->sp_idx[i])
            continue;
        const sotu_tensor_info *t = &o->table->t[i];
        float *g = grads + t->offset;
        const uint32_t *ix = o->sp_idx[i];
        size_t n = o->sp_n[i], next = 0;
        for (size_t k = 0; k < n; k++) {
            for (; next < ix[k]; next++)
                g[next] = 0.0f;
            next = (size_t)ix[k] + 1;
        }
        for (; next < t->count; next++)
            g[next] = 0.0f;
    }
}

float optim_clip_grad_norm(const sotu_tensor_table *tab, const bool *trainable, float *grads,
                           float max_norm)
{
    double sum = 0.0;
    for (int i = 0; i < tab->n; i++)
        if (trainable[i])
            sum += sum_squares(grads + tab->t[i].offset, (long)tab->t[i].count);
    float norm = (float)sqrt(sum);
    if (max_norm > 0.0f && norm > max_norm) {
        float scale = max_norm / (norm + 1e-6f);
        for (int i = 0; i < tab->n; i++) {
            if (!trainable[i])
                continue;
            float *g = grads + tab->t[i].offset;
            long n = (long)tab->t[i].count;
#pragma omp parallel for simd schedule(static) if (n > 65536)
            for (long k = 0; k < n; k++)
                g[k] *= scale;
        }
    }
    return norm;
}

int optim_find_nonfinite(const sotu_tensor_table *tab, const bool *trainable,
                         const float *grads)
{
    for (int i = 0; i < tab->n; i++) {
        if (!trainable[i])
            continue;
        const float *g = grads + tab->t[i].offset;
        long n = (long)tab->t[i].count;
        int bad = 0;
#pragma omp parallel for simd reduction(| : bad) schedule(static) if (n > 65536)
        for (long k = 0; k < n; k++)
            bad |= !isfinite(g[k]);
        if (bad)
            return i;
    }
    return -1;
}
