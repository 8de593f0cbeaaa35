#include "coordinator/merge.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/isa.h"
#include "common/mask.h"
#include "common/rng.h"

#define OWNER_TASK_WORD (0x80000000u | (uint32_t)SOTU_STREAM_DISJOINT)

static const char *const mode_names[] = {"sum", "mean", "disjoint"};

sotu_status sotu_merge_mode_parse(const char *name, sotu_merge_mode *mode)
{
    for (int m = 0; m < 3; m++)
        if (!strcmp(name, mode_names[m])) {
            *mode = (sotu_merge_mode)m;
            return SOTU_OK;
        }
    return sotu_error(SOTU_ERR_CONFIG, "merge.mode '%s': expected sum, mean or disjoint", name);
}

const char *sotu_merge_mode_name(sotu_merge_mode mode)
{
    return (unsigned)mode < 3 ? mode_names[mode] : "?";
}

static sotu_mask owner_mask(uint64_t seed, uint32_t tensor, uint64_t count)
{
    return sotu_mask_of(seed, OWNER_TASK_WORD, tensor, count, 1.0);
}

static inline uint32_t owner_of(const sotu_mask *owner, uint32_t i, uint32_t n_tasks)
{
    return (uint32_t)(((uint64_t)sotu_mask_u32(owner, i) * n_tasks) >> 32);
}

uint32_t sotu_merge_owner(uint64_t seed, uint32_t tensor, uint64_t count, uint64_t i,
                          uint32_t n_tasks)
{
    sotu_mask owner = owner_mask(seed, tensor, count);
    return owner_of(&owner, (uint32_t)i, n_tasks);
}

void sotu_merge_stats_free(sotu_merge_stats *st)
{
    if (!st)
        return;
    free(st->task_index);
    free(st->cosine);
    free(st->norms);
    memset(st, 0, sizeof *st);
}

double sotu_merge_stats_max_cosine(const sotu_merge_stats *st)
{
    double max_cos = 0;
    for (int i = 0; st->cosine && i < st->n; i++)
        for (int j = 0; j < st->n; j++)
            if (i != j && fabs(st->cosine[(size_t)i * st->n + j]) > max_cos)
                max_cos = fabs(st->cosine[(size_t)i * st->n + j]);
    return max_cos;
}

void sotu_merge_task_head(const sotu_tensor_table *model, const float *theta0, const sotu_delta *d,
                          float *params)
{
    for (int k = 0; k < d->n_tensors; k++) {
        const sotu_delta_tensor *t = &d->tensors[k];
        if (t->mask != SOTU_MASK_DENSE)
            continue;
        size_t off = model->t[t->table_index].offset;
        for (uint64_t i = 0; i < t->count; i++)
            params[off + i] = theta0[off + i] + t->values[i];
    }
}

static int by_task(const void *a, const void *b)
{
    uint32_t x = (*(const sotu_delta *const *)a)->task_index;
    uint32_t y = (*(const sotu_delta *const *)b)->task_index;
    return (x > y) - (x < y);
}

/* One selected contribution of a task to the tensor being merged. */
typedef struct {
    uint32_t index;
    float value;
} contrib;

/* Scratch of the general path, reused across tensors; grown as needed. */
typedef struct {
    contrib *sel;      /* selected contributions, task after task */
    size_t sel_cap;
    size_t *task_end;  /* [n] end of each task's run in sel */
    double *rs, *factor; /* [n] each task's rescale, and rescale × λ */
    uint32_t *cnt;     /* [count + 1] contributions per element, then offsets */
    size_t cnt_cap;
    uint32_t *slot_row;
    size_t slot_cap;
    float *slot_val;
    size_t val_cap;
} merge_scratch;

/* p grown to hold need elements; on failure p itself and *ok = false. */
static void *reserve(void *p, size_t *cap, size_t need, size_t elem, bool *ok)
{
    if (need <= *cap)
        return p;
    size_t ncap = need + need / 2 + 1024;
    void *q = realloc(p, ncap * elem);
    if (!q) {
        *ok = false;
        return p;
    }
    *cap = ncap;
    return q;
}

/* Task a's selection rule and factor for the tensor being merged. */
typedef struct {
    const uint32_t *idx;  /* [kept] the record's indices and values */
    const float *val;
    uint64_t kept;
    bool nested;          /* re-test the mask (SEEDED shipped at a larger keep,
                           * and the cut copy below could not be made) */
    uint32_t *own_idx;    /* the cut copy of idx and val at k_use, or NULL */
    float *own_val;
    sotu_mask mask;       /* the task's mask of this tensor at k_use */
    bool disjoint;        /* keep only elements whose owner is task */
    sotu_mask owner;      /* the owner permutation of this tensor */
    uint32_t n_tasks, task;
    double factor;        /* rescale × λ */
    double rs;            /* rescale alone (statistics are before λ) */
    bool every;           /* the list is every element (keep 1): idx[m] = m */
} task_rule;

typedef struct {
    const sotu_tensor_table *model;
    const float *theta0;
    const sotu_delta *const *d; /* sorted by task */
    const sotu_delta_tensor **rec; /* [n_tensors, n] each tensor's record per delta, or
                                    * NULL (absent, or DENSE) */
    int n;
    const sotu_merge_opts *o;
    double *gram;               /* [n, n] or NULL */
    sotu_merge_stats *st;
    task_rule *rule;            /* [n_tensors, n] valid where rec is not NULL */
    bool *dense;                /* [n_tensors] some delta has the tensor DENSE (a head) */
    uint64_t *cursors;          /* [threads, cursor_stride] scratch of merge_range */
    size_t cursor_stride;       /* >= n, whole cache lines (no false sharing) */
} merge_ctx;

static task_rule rule_for(const merge_ctx *c, int a, uint32_t j)
{
    const sotu_delta_tensor *r = c->rec[(size_t)j * (size_t)c->n + (size_t)a];
    const sotu_delta *d = c->d[a];
    task_rule q;
    double k_use = c->o->keep > 0 ? c->o->keep : d->keep;
    q.idx = r->indices;
    q.val = r->values;
    q.kept = r->kept;
    q.nested = r->mask == SOTU_MASK_SEEDED && k_use < d->keep;
    q.own_idx = NULL;
    q.own_val = NULL;
    if (q.nested) {
        /* Cut once to k_use (listing the smaller mask), so the merge loops
         * see a plain list; on no memory, test each element as it goes. */
        q.mask = sotu_mask_of(d->seed, d->task_index, j, r->count, k_use);
        uint64_t most = sotu_mask_kept_max(&q.mask);
        size_t room = (size_t)(r->kept < most ? r->kept : most);
        uint32_t *ix = malloc(room * sizeof *ix + 1);
        float *v = malloc(room * sizeof *v + 1);
        if (ix && v) {
            q.kept = sotu_mask_filter(&q.mask, r->indices, r->values, (size_t)r->kept, ix, v);
            q.idx = q.own_idx = ix;
            q.val = q.own_val = v;
            q.nested = false;
        } else {
            free(ix);
            free(v);
        }
    }
    q.disjoint = c->o->mode == SOTU_MERGE_DISJOINT;
    if (q.disjoint)
        q.owner = owner_mask(d->seed, j, r->count);
    q.n_tasks = c->o->n_tasks;
    q.task = d->task_index;
    q.rs = r->mask == SOTU_MASK_SEEDED && (d->flags & SOTU_DELTA_FLAG_RESCALE) ? 1.0 / k_use : 1.0;
    q.factor = q.rs * c->o->scale;
    /* Strictly increasing indices below count, as many as count: 0..n-1. */
    q.every = q.kept == r->count;
    return q;
}

/* Whether kept element i of the rule's task is merged: the nested mask at
 * k_use and, in disjoint mode, ownership (sotu_merge_owner, in integers). */
static inline bool selected(const task_rule *q, uint32_t i)
{
    if (q->nested && !sotu_mask_keeps(&q->mask, i))
        return false;
    return !q->disjoint || owner_of(&q->owner, i, q->n_tasks) == q->task;
}

/* First m with idx[m] >= i (binary search; idx ascending). */
static uint64_t lower_bound(const uint32_t *idx, uint64_t kept, uint64_t i)
{
    uint64_t lo = 0, hi = kept;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (idx[mid] < i)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Elements per block of the fast path: 1 MiB of weights, which stay in a
 * core's L2 (1 MiB on the AMD EPYC measured) while every task adds into
 * them; each task's run in a block (keep x 256 Ki values) streams. ViT-B,
 * 8 tasks at keep 1/8, one thread, five interleaved runs each: bandwidth
 * vs memcpy 0.49 (256 KiB blocks), 0.52 (512 KiB), 0.55 (1 MiB); smaller
 * blocks were slower still. */
enum { MERGE_BLOCK = 262144 };

/* First m' >= m with idx[m'] >= i: galloping from m, so the search reads
 * only near m (the next block's run starts where this one ended). */
static uint64_t gallop(const uint32_t *idx, uint64_t m, uint64_t kept, uint64_t i)
{
    uint64_t step = 1, lo = m;
    while (m < kept && idx[m] < i) {
        lo = m + 1;
        m = kept - m > step ? m + step : kept;
        step *= 2;
    }
    return lo + lower_bound(idx + lo, m - lo, i);
}

/* Tensor j's elements [from, to): out = θ0 + every task's selected
 * contributions, in task order. Works block by block (MERGE_BLOCK): a
 * block of out is copied from θ0 and stays in cache while every task adds
 * into it, so the weights pass through memory once however many tasks
 * there are. cur: [n] scratch cursors. Compiled for each ISA level
 * (common/isa.h). */
SOTU_ISA_INLINE void merge_range(const merge_ctx *c, int j, uint64_t from, uint64_t to,
                                 float *merged, uint64_t *cur)
{
    const sotu_tensor_info *ti = &c->model->t[j];
    const sotu_delta_tensor *const *rec = c->rec + (size_t)j * (size_t)c->n;
    const task_rule *rule = c->rule + (size_t)j * (size_t)c->n;
    const float *theta0 = c->theta0 + ti->offset;
    float *out = merged + ti->offset;
    for (int a = 0; a < c->n; a++)
        cur[a] = rec[a] ? lower_bound(rule[a].idx, rule[a].kept, from) : 0;
    for (uint64_t start = from; start < to; start += MERGE_BLOCK) {
        uint64_t end = to - start < MERGE_BLOCK ? to : start + MERGE_BLOCK;
        memcpy(out + start, theta0 + start, (end - start) * sizeof *out);
        for (int a = 0; a < c->n; a++) {
            if (!rec[a])
                continue;
            const task_rule *q = &rule[a];
            const uint32_t *idx = q->idx;
            const float *val = q->val;
            uint64_t m = cur[a];
            if (q->every && !q->nested && !q->disjoint) {
                /* Every element: a streaming add, vectorised; the same
                 * float operations as the scattered loops below. */
                if (q->factor == 1.0)
                    for (uint64_t i = start; i < end; i++)
                        out[i] += val[i];
                else
                    for (uint64_t i = start; i < end; i++)
                        out[i] += (float)((double)val[i] * q->factor);
                cur[a] = end;
                continue;
            }
            /* This block's run of the task: one search instead of a bound
             * test per element. */
            uint64_t stop = gallop(idx, m, q->kept, end);
            if (!q->nested && !q->disjoint && q->factor == 1.0) {
                for (; m < stop; m++) /* (float)((double)v * 1.0) is v */
                    out[idx[m]] += val[m];
            } else if (!q->nested && !q->disjoint) {
                for (; m < stop; m++)
                    out[idx[m]] += (float)((double)val[m] * q->factor);
            } else {
                for (; m < stop; m++)
                    if (selected(q, idx[m]))
                        out[idx[m]] += (float)((double)val[m] * q->factor);
            }
            cur[a] = m;
        }
    }
}
SOTU_ISA_VARIANTS(merge_range,
                  (const merge_ctx *c, int j, uint64_t from, uint64_t to, float *merged,
                   uint64_t *cur),
                  (c, j, from, to, merged, cur));

/* The fast path (sum or disjoint, no statistics): the model block is cut
 * into one contiguous share per thread (whole blocks), each thread merges
 * the parts of every tensor inside its share; heads (DENSE) get θ0. Each
 * element still sees its tasks in task order: the same bits at any thread
 * count, and one parallel region for the whole model. */
static void merge_fast(const merge_ctx *c, float *merged)
{
    const sotu_tensor_table *model = c->model;
    int threads = model->total >= 2 * (size_t)MERGE_BLOCK ? omp_get_max_threads() : 1;
#pragma omp parallel num_threads(threads)
    {
        uint64_t blocks = (model->total + MERGE_BLOCK - 1) / MERGE_BLOCK;
        uint64_t t = (uint64_t)omp_get_thread_num(), nt = (uint64_t)omp_get_num_threads();
        uint64_t lo = blocks * t / nt * MERGE_BLOCK, hi = blocks * (t + 1) / nt * MERGE_BLOCK;
        for (int j = 0; j < model->n; j++) {
            const sotu_tensor_info *ti = &model->t[j];
            uint64_t from = ti->offset > lo ? ti->offset : lo;
            uint64_t to = ti->offset + ti->count < hi ? ti->offset + ti->count : hi;
            if (from >= to)
                continue;
            if (c->dense[j])
                memcpy(merged + from, c->theta0 + from, (to - from) * sizeof *merged);
            else
                SOTU_ISA_PICK(merge_range)(c, j, from - ti->offset, to - ti->offset, merged,
                                           c->cursors + (size_t)t * c->cursor_stride);
        }
    }
}

/* Merges tensor j on the general path (mean mode or statistics): out =
 * θ0, then for each task in task order and each of its selected elements
 * out[i] += (float)(v · rescale · λ / c_i), with c_i the element's
 * contributor count in mean mode and 1 otherwise; the selected
 * contributions are listed first, as the counts and the Gram matrix need
 * them. merge_fast adds the same floats in the same order. */
static sotu_status merge_tensor(merge_ctx *c, int j, merge_scratch *w, float *merged)
{
    const sotu_tensor_info *ti = &c->model->t[j];
    float *out = merged + ti->offset;
    const float *theta0 = c->theta0 + ti->offset;
    const sotu_delta_tensor *const *rec = c->rec + (size_t)j * (size_t)c->n;
    const task_rule *rule = c->rule + (size_t)j * (size_t)c->n;
    size_t count = ti->count, n_sel = 0;

    memcpy(out, theta0, count * sizeof *out);
    for (int a = 0; a < c->n; a++) {
        const sotu_delta_tensor *r = rec[a];
        if (r) {
            const task_rule *q = &rule[a];
            w->rs[a] = q->rs;
            w->factor[a] = q->factor;
            bool ok = true;
            w->sel = reserve(w->sel, &w->sel_cap, n_sel + q->kept, sizeof *w->sel, &ok);
            if (!ok)
                return sotu_error(SOTU_ERR_NOMEM, "merge: tensor '%s': %llu contributions",
                                  ti->name, (unsigned long long)(n_sel + q->kept));
            for (uint64_t m = 0; m < q->kept; m++) {
                uint32_t i = q->idx[m];
                if (!selected(q, i))
                    continue;
                w->sel[n_sel].index = i;
                w->sel[n_sel].value = q->val[m];
                n_sel++;
            }
        }
        w->task_end[a] = n_sel;
    }
    if (n_sel == 0)
        return SOTU_OK;
    if (n_sel >= UINT32_MAX)
        return sotu_error(SOTU_ERR_NOMEM, "merge: tensor '%s': %zu contributions, at most %u",
                          ti->name, n_sel, UINT32_MAX - 1);
    bool ok = true;
    w->cnt = reserve(w->cnt, &w->cnt_cap, count + 1, sizeof *w->cnt, &ok);
    if (c->gram) {
        w->slot_row = reserve(w->slot_row, &w->slot_cap, n_sel, sizeof *w->slot_row, &ok);
        w->slot_val = reserve(w->slot_val, &w->val_cap, n_sel, sizeof *w->slot_val, &ok);
    }
    if (!ok)
        return sotu_error(SOTU_ERR_NOMEM, "merge: tensor '%s': counters for %zu elements",
                          ti->name, count);
    uint32_t *cnt = w->cnt;
    memset(cnt, 0, (count + 1) * sizeof *cnt);
    for (size_t q = 0; q < n_sel; q++)
        cnt[w->sel[q].index + 1]++;

    bool mean = c->o->mode == SOTU_MERGE_MEAN;
    size_t from = 0;
    for (int a = 0; a < c->n; a++) {
        double ss = 0;
        for (size_t p = from; p < w->task_end[a]; p++) {
            uint64_t i = w->sel[p].index;
            double v = (double)w->sel[p].value;
            out[i] += (float)(v * w->factor[a] / (mean ? (double)cnt[i + 1] : 1.0));
            ss += v * w->rs[a] * v * w->rs[a];
        }
        if (c->st) {
            c->gram[(size_t)a * (size_t)c->n + a] += ss;
            c->st->norms[(size_t)a * (size_t)c->st->n_tensors + j] = sqrt(ss);
        }
        from = w->task_end[a];
    }
    if (!c->gram)
        return SOTU_OK;

    /* Counting sort by element for the Gram matrix: each element's run lists
     * its contributions in task order; cnt[i] ends as the end of run i. */
    uint64_t touched = 0, collided = 0;
    for (size_t i = 0; i < count; i++) {
        touched += cnt[i + 1] > 0;
        collided += cnt[i + 1] > 1;
        cnt[i + 1] += cnt[i];
    }
    c->st->touched += touched;
    c->st->collided += collided;
    from = 0;
    for (int a = 0; a < c->n; a++)
        for (; from < w->task_end[a]; from++) {
            uint32_t at = cnt[w->sel[from].index]++;
            w->slot_row[at] = (uint32_t)a;
            w->slot_val[at] = (float)((double)w->sel[from].value * w->rs[a]);
        }
    uint32_t start = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t end = cnt[i];
        for (uint32_t p = start; end - start > 1 && p < end; p++)
            for (uint32_t p2 = p + 1; p2 < end; p2++)
                c->gram[(size_t)w->slot_row[p] * (size_t)c->n + w->slot_row[p2]] +=
                    (double)w->slot_val[p] * (double)w->slot_val[p2];
        start = end;
    }
    return SOTU_OK;
}

static sotu_status check_inputs(const sotu_tensor_table *model, const sotu_delta *const *d, int n,
                                const sotu_merge_opts *o)
{
    if (!(o->keep == 0.0 || (o->keep > 0.0 && o->keep <= 1.0)))
        return sotu_error(SOTU_ERR_CONFIG, "merge: keep %g, expected (0, 1]", o->keep);
    if ((unsigned)o->mode > SOTU_MERGE_DISJOINT)
        return sotu_error(SOTU_ERR_CONFIG, "merge: mode %d, expected sum, mean or disjoint",
                          (int)o->mode);
    for (int a = 0; a < n; a++) {
        if (a > 0 && d[a]->task_index == d[a - 1]->task_index)
            return sotu_error(SOTU_ERR_DATA, "merge: tasks '%s' and '%s' share task index %u",
                              d[a - 1]->task_name, d[a]->task_name, d[a]->task_index);
        if (d[a]->seed != d[0]->seed)
            return sotu_error(SOTU_ERR_DATA, "merge: task '%s' has seed %llu, task '%s' %llu",
                              d[a]->task_name, (unsigned long long)d[a]->seed, d[0]->task_name,
                              (unsigned long long)d[0]->seed);
        if (o->keep > d[a]->keep)
            return sotu_error(SOTU_ERR_CONFIG,
                              "merge: keep %g is above task '%s''s shipped keep %g (masks only "
                              "nest downwards)", o->keep, d[a]->task_name, d[a]->keep);
        if (o->mode == SOTU_MERGE_DISJOINT && d[a]->task_index >= o->n_tasks)
            return sotu_error(SOTU_ERR_CONFIG,
                              "merge: disjoint over %u tasks, but task '%s' has index %u",
                              o->n_tasks, d[a]->task_name, d[a]->task_index);
        for (int k = 0; k < d[a]->n_tensors; k++) {
            const sotu_delta_tensor *t = &d[a]->tensors[k];
            if (t->table_index >= (uint32_t)model->n ||
                strcmp(model->t[t->table_index].name, t->name) ||
                model->t[t->table_index].count != t->count ||
                (k > 0 && t->table_index <= d[a]->tensors[k - 1].table_index))
                return sotu_error(SOTU_ERR_DATA,
                                  "merge: task '%s': tensor '%s' (table index %u) does not fit "
                                  "the model",
                                  d[a]->task_name, t->name, t->table_index);
            if (t->mask != SOTU_MASK_DENSE && t->kept && !t->indices)
                return sotu_error(SOTU_ERR_DATA,
                                  "merge: task '%s': tensor '%s' carries no kept indices (decode "
                                  "or extract it first)", d[a]->task_name, t->name);
        }
    }
    return SOTU_OK;
}

sotu_status sotu_merge_apply(const sotu_tensor_table *model, const float *theta0,
                             const sotu_delta *const *deltas, int n, const sotu_merge_opts *o,
                             float *merged, sotu_merge_stats *stats)
{
    sotu_status s = SOTU_OK;
    merge_scratch w = {0};
    const sotu_delta **d = malloc(((size_t)n + 1) * sizeof *d);
    size_t cells = (size_t)model->n * (size_t)n + 1;
    const sotu_delta_tensor **rec = calloc(cells, sizeof *rec);
    task_rule *rule = malloc(cells * sizeof *rule);
    bool *dense = calloc((size_t)model->n + 1, sizeof *dense);
    int *cursor = calloc((size_t)n + 1, sizeof *cursor);
    double *gram = NULL;
    w.task_end = malloc(((size_t)n + 1) * sizeof *w.task_end);
    w.rs = malloc(((size_t)n + 1) * sizeof *w.rs);
    w.factor = malloc(((size_t)n + 1) * sizeof *w.factor);
    size_t stride = ((size_t)n + 7) / 8 * 8 + 8;
    uint64_t *cursors = malloc((size_t)omp_get_max_threads() * stride * sizeof *cursors);
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (!d || !rec || !cursor || !w.task_end || !w.rs || !w.factor || !rule || !dense ||
        !cursors) {
        s = sotu_error(SOTU_ERR_NOMEM, "merge: lists for %d deltas", n);
        goto cleanup;
    }
    memcpy(d, deltas, (size_t)n * sizeof *d);
    qsort(d, (size_t)n, sizeof *d, by_task);
    if ((s = check_inputs(model, d, n, o)) != SOTU_OK)
        goto cleanup;
    if (stats) {
        stats->n = n;
        stats->n_tensors = model->n;
        stats->task_index = malloc(((size_t)n + 1) * sizeof *stats->task_index);
        stats->cosine = calloc((size_t)n * (size_t)n + 1, sizeof *stats->cosine);
        stats->norms = calloc((size_t)n * (size_t)model->n + 1, sizeof *stats->norms);
        gram = calloc((size_t)n * (size_t)n + 1, sizeof *gram);
        if (!stats->task_index || !stats->cosine || !stats->norms || !gram) {
            s = sotu_error(SOTU_ERR_NOMEM, "merge: statistics for %d tasks", n);
            goto cleanup;
        }
        for (int a = 0; a < n; a++)
            stats->task_index[a] = d[a]->task_index;
    }

    merge_ctx c = {model, theta0, d, rec, n, o, gram, stats, rule, dense, cursors, stride};
    for (int j = 0; j < model->n; j++) {
        const sotu_delta_tensor **row = rec + (size_t)j * (size_t)n;
        for (int a = 0; a < n; a++) {
            const sotu_delta_tensor *t = NULL;
            if (cursor[a] < d[a]->n_tensors && d[a]->tensors[cursor[a]].table_index == (uint32_t)j)
                t = &d[a]->tensors[cursor[a]++];
            if (t && t->mask == SOTU_MASK_DENSE) {
                dense[j] = true;
                if (stats) {
                    double ss = 0;
                    for (uint64_t i = 0; i < t->count; i++)
                        ss += (double)t->values[i] * t->values[i];
                    stats->norms[(size_t)a * (size_t)model->n + j] = sqrt(ss);
                }
                t = NULL;
            }
            row[a] = t;
            if (t)
                rule[(size_t)j * (size_t)n + (size_t)a] = rule_for(&c, a, (uint32_t)j);
        }
    }
    if (!gram && o->mode != SOTU_MERGE_MEAN) {
        merge_fast(&c, merged);
    } else {
        for (int j = 0; j < model->n; j++) {
            const sotu_tensor_info *ti = &model->t[j];
            if (dense[j])
                memcpy(merged + ti->offset, theta0 + ti->offset, ti->count * sizeof *merged);
            else if ((s = merge_tensor(&c, j, &w, merged)) != SOTU_OK)
                goto cleanup;
        }
    }

    if (stats) {
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++) {
                int lo = a < b ? a : b, hi = a < b ? b : a;
                double g = gram[(size_t)lo * (size_t)n + hi];
                double na = gram[(size_t)a * (size_t)n + a], nb = gram[(size_t)b * (size_t)n + b];
                stats->cosine[(size_t)a * (size_t)n + b] =
                    na > 0 && nb > 0 ? g / sqrt(na * nb) : 0.0;
            }
        stats->collision_rate =
            stats->touched ? (double)stats->collided / (double)stats->touched : 0.0;
    }

cleanup:
    if (s != SOTU_OK && stats)
        sotu_merge_stats_free(stats);
    for (size_t cell = 0; rule && rec && cell + 1 < cells; cell++)
        if (rec[cell]) { /* the cut copies of nested rules */
            free(rule[cell].own_idx);
            free(rule[cell].own_val);
        }
    free(d);
    free(rec);
    free(cursor);
    free(gram);
    free(w.sel);
    free(w.task_end);
    free(w.rs);
    free(w.factor);
    free(w.cnt);
    free(w.slot_row);
    free(w.slot_val);
    free(rule);
    free(dense);
    free(cursors);
    return s;
}
