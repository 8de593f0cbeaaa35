#include "coordinator/evaluate_run.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/threads.h"
#include "eval/report.h"
#include "mpi/mpi_util.h"
#include "worker/finetune.h"

enum { TAG_EV_HEAD = 42, TAG_EV_SEQ = 43 };

/* ------------------------------------------------------------------------ */
/* Baselines                                                                 */
/* ------------------------------------------------------------------------ */

static bool has_name(const char (*names)[32], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name))
            return true;
    return false;
}

/* Copies m's head (K classes) out into w [K, D] and b [K]. */
static void head_out(const vit_model *m, float *w, float *b)
{
    const sotu_tensor_info *tw = &m->table.t[sotu_tensor_find(&m->table, "head.weight")];
    const sotu_tensor_info *tb = &m->table.t[sotu_tensor_find(&m->table, "head.bias")];
    memcpy(w, m->params + tw->offset, tw->count * sizeof(float));
    memcpy(b, m->params + tb->offset, tb->count * sizeof(float));
}

/* Fine-tunes m (backbone as it is) on task t with a fresh head and cfg's
 * train.tune, keeping the trained head in w/b; *acc its test accuracy. */
static sotu_status train_on_task(vit_model *m, const sotu_config *cfg, const sotu_manifest *man,
                                 int t, const char *what, float *w, float *b, double *acc)
{
    sotu_taskset ts = {0};
    sotu_status st = sotu_taskset_read(man->tasks[t].path, &ts);
    if (st == SOTU_OK) /* the same hold-out as the task's worker: never trained on */
        st = sotu_taskset_hold_out(&ts, cfg->data.val_fraction, cfg->train.seed, (uint32_t)t);
    if (st == SOTU_OK)
        st = sotu_finetune_reset_head(m, ts.classes, cfg->train.batch_size, cfg->train.seed,
                                      (uint32_t)t);
    if (st == SOTU_OK)
        st = vit_set_trainable(m, cfg->train.tune);
    char label[128];
    snprintf(label, sizeof label, "%s %s", what, man->tasks[t].name);
    sotu_finetune_opts fo = sotu_finetune_opts_default();
    fo.task = (uint32_t)t;
    fo.label = label;
    sotu_finetune_result fr;
    if (st == SOTU_OK)
        st = sotu_finetune_run(m, &ts, cfg, &fo, &fr);
    if (st == SOTU_OK) {
        head_out(m, w, b);
        *acc = fr.test_acc;
    }
    sotu_taskset_free(&ts);
    return st;
}

/* Task t's test accuracy with head w/b on m's backbone. */
static sotu_status eval_with_head(vit_model *m, const sotu_config *cfg, const sotu_manifest *man,
                                  int t, const float *w, const float *b, double *acc)
{
    sotu_taskset ts = {0};
    sotu_status st = sotu_taskset_read(man->tasks[t].path, &ts);
    if (st == SOTU_OK)
        st = sotu_finetune_reset_head(m, ts.classes, cfg->train.batch_size, 0, (uint32_t)t);
    if (st == SOTU_OK) {
        const sotu_tensor_info *tw = &m->table.t[sotu_tensor_find(&m->table, "head.weight")];
        const sotu_tensor_info *tb = &m->table.t[sotu_tensor_find(&m->table, "head.bias")];
        memcpy(m->params + tw->offset, w, tw->count * sizeof(float));
        memcpy(m->params + tb->offset, b, tb->count * sizeof(float));
        st = sotu_finetune_eval_test(m, &ts, cfg, acc, NULL);
    }
    sotu_taskset_free(&ts);
    return st;
}

typedef struct {
    float **w, **b; /* [T] heads */
    double *acc;    /* [T] */
} head_set;

static void head_set_free(head_set *h, int T)
{
    for (int t = 0; h->w && t < T; t++) {
        free(h->w[t]);
        free(h->b[t]);
    }
    free(h->w);
    free(h->b);
    free(h->acc);
    memset(h, 0, sizeof *h);
}

static sotu_status head_set_init(head_set *h, const sotu_manifest *man, int D)
{
    int T = man->n_tasks;
    h->w = calloc((size_t)T, sizeof *h->w);
    h->b = calloc((size_t)T, sizeof *h->b);
    h->acc = malloc(sizeof(double) * (size_t)T);
    if (!h->w || !h->b || !h->acc)
        return sotu_error(SOTU_ERR_NOMEM, "heads of %d tasks", T);
    for (int t = 0; t < T; t++) {
        h->acc[t] = NAN;
        size_t K = (size_t)man->tasks[t].classes;
        h->w[t] = malloc(sizeof(float) * K * D);
        h->b[t] = malloc(sizeof(float) * K);
        if (!h->w[t] || !h->b[t])
            return sotu_error(SOTU_ERR_NOMEM, "heads of %d tasks", T);
    }
    return SOTU_OK;
}

/* The sequential chain: one model fine-tuned through the active tasks in
 * stream order; after task i (a selected row) every active task j <= i is
 * evaluated with the head it was trained with. A [T*T]. */
static sotu_status sequential_chain(const sotu_run *run, const int *active, const head_set *h,
                                    double *A)
{
    int T = run->T;
    vit_model m = {0};
    sotu_status st = vit_init(&m, &run->vc, run->cfg.train.batch_size);
    if (st != SOTU_OK)
        return st;
    memcpy(m.params, run->theta0, sizeof(float) * run->table.total);
    for (int i = 0; i < T && st == SOTU_OK; i++) {
        if (!active[i])
            continue;
        double a;
        double t0 = sotu_now();
        st = train_on_task(&m, &run->cfg, &run->man, i, "sequential", h->w[i], h->b[i], &a);
        if (st != SOTU_OK || !sotu_metrics_row_selected(i, T, run->cfg.eval.every))
            continue;
        double s = 0;
        int n = 0;
        for (int j = 0; j <= i && st == SOTU_OK; j++) {
            if (!active[j])
                continue;
            st = eval_with_head(&m, &run->cfg, &run->man, j, h->w[j], h->b[j],
                                &A[(size_t)i * T + j]);
            s += A[(size_t)i * T + j];
            n++;
        }
        if (st == SOTU_OK)
            SOTU_INFO("sequential baseline: %d/%d tasks trained (%.1fs), mean accuracy on them "
                      "%.4f", i + 1, T, sotu_now() - t0, s / n);
    }
    vit_free(&m);
    return st;
}

/* Frozen θ0 with a head trained per active task (train.tune = head), the
 * tasks shared over ranks [0, workers); heads and accuracies end on rank 0. */
static sotu_status frozen_heads(const sotu_run *run, const int *active, int rank, int workers,
                                head_set *h)
{
    int T = run->T;
    sotu_config cfg = run->cfg;
    snprintf(cfg.train.tune, sizeof cfg.train.tune, "head");
    sotu_status st = SOTU_OK;
    int64_t b = 0, e = 0;
    if (rank < workers)
        sotu_share(T, rank, workers, &b, &e);
    vit_model m = {0};
    for (int64_t t = b; t < e && st == SOTU_OK; t++) {
        if (!active[t])
            continue;
        if (!m.params && (st = vit_init(&m, &run->vc, cfg.train.batch_size)) != SOTU_OK)
            break;
        /* The head is the table's tail and m's may have another size by now. */
        size_t backbone = run->table.t[sotu_tensor_find(&run->table, "head.weight")].offset;
        memcpy(m.params, run->theta0, sizeof(float) * backbone);
        st = train_on_task(&m, &cfg, &run->man, (int)t, "frozen", h->w[t], h->b[t], &h->acc[t]);
        if (st == SOTU_OK)
            SOTU_INFO("frozen baseline: task %s head trained, accuracy %.4f",
                      run->man.tasks[t].name, h->acc[t]);
    }
    vit_free(&m);
    return st;
}

/* Sends the frozen heads of [b, e) to rank 0, which receives them in task
 * order (one message per task: acc, weight, bias). */
static sotu_status gather_heads(const sotu_run *run, const int *active, int rank, int workers,
                                head_set *h)
{
    int T = run->T, D = run->vc.dim;
    sotu_status st = SOTU_OK;
    sotu_mpi_buffer buf = {0};
    for (int t = 0; t < T; t++) {
        if (!active[t])
            continue;
        int owner = sotu_share_owner(t, T, workers);
        if (owner == 0)
            continue;
        size_t K = (size_t)run->man.tasks[t].classes, n = 1 + 2 * (K * D + K);
        if (rank == owner) {
            float *msg = malloc(sizeof(float) * n);
            if (!msg)
                sotu_mpi_fail(MPI_ERR_NO_MEM, "frozen head message", __FILE__, __LINE__);
            msg[0] = 0;
            double a = h->acc[t];
            memcpy(msg, &a, sizeof a);
            memcpy(msg + 2, h->w[t], sizeof(float) * K * D);
            memcpy(msg + 2 + K * D, h->b[t], sizeof(float) * K);
            sotu_mpi_send_bytes(msg, sizeof(float) * (2 + K * D + K), 0, TAG_EV_HEAD);
            free(msg);
        } else if (rank == 0) {
            if ((st = sotu_mpi_recv_any(&buf, owner, TAG_EV_HEAD, NULL, NULL)) != SOTU_OK)
                break;
            if (buf.len != sizeof(float) * (2 + K * D + K)) {
                st = sotu_error(SOTU_ERR_INTERNAL, "frozen head of task %d: %zu bytes", t,
                                buf.len);
                break;
            }
            const float *msg = buf.data;
            memcpy(&h->acc[t], msg, sizeof(double));
            memcpy(h->w[t], msg + 2, sizeof(float) * K * D);
            memcpy(h->b[t], msg + 2 + K * D, sizeof(float) * K);
        }
    }
    sotu_mpi_buffer_free(&buf);
    return st;
}

typedef struct {
    sotu_run *run;
    double keep;     /* 0: θ0 (frozen) */
} backbone_ctx;

static sotu_status backbone_merge(void *ctx, int row, float *params)
{
    backbone_ctx *c = ctx;
    if (c->keep <= 0) {
        memcpy(params, c->run->theta0, sizeof(float) * c->run->table.total);
        return SOTU_OK;
    }
    return sotu_run_merge_prefix(c->run, c->keep, row + 1, params, NULL);
}

static json_t *matrix_json(const double *A, int T)
{
    json_t *rows = json_array();
    for (int i = 0; i < T; i++) {
        json_t *r = json_array();
        for (int j = 0; j < T; j++)
            json_array_append_new(r, isnan(A[(size_t)i * T + j]) ? json_null()
                                                                 : json_real(A[(size_t)i * T + j]));
        json_array_append_new(rows, r);
    }
    return rows;
}

static void log_method(sotu_run *run, const sotu_eval_method *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "method", json_string(m->name));
    json_object_set_new(o, "keep", sotu_metrics_number(m->keep));
    json_object_set_new(o, "seconds", json_real(m->seconds));
    if (m->reused)
        json_object_set_new(o, "reused", json_true());
    json_object_set_new(o, "ridge_lambda", sotu_metrics_number(m->lambda));
    json_object_set_new(o, "val_acc", sotu_metrics_number(m->val_acc));
    json_t *cls = json_object();
    for (int c = 0; c < SOTU_EV_N; c++) {
        if (!m->acc[c])
            continue;
        const sotu_cl_metrics *x = &m->metrics[c];
        json_t *v = json_object();
        json_object_set_new(v, "setting", json_string(sotu_eval_classifier_til(c) ? "task-incremental"
                                                                              : "class-incremental"));
        json_object_set_new(v, "final_avg_acc", sotu_metrics_number(x->final_avg_acc));
        json_object_set_new(v, "avg_inc_acc", sotu_metrics_number(x->avg_inc_acc));
        json_object_set_new(v, "forgetting", sotu_metrics_number(x->forgetting));
        json_object_set_new(v, "bwt", sotu_metrics_number(x->bwt));
        json_object_set_new(v, "val_acc", sotu_metrics_number(m->cls_val_acc[c]));
        json_object_set_new(v, "acc_matrix", matrix_json(m->acc[c], run->T));
        json_object_set_new(cls, sotu_eval_classifier_name(c), v);
    }
    json_object_set_new(o, "classifiers", cls);
    sotu_run_metric(run, "evaluation", o);
}

/* Mean of x over the active tasks whose x is known; NaN if none. */
static double mean_active(const double *x, const bool *active, int T)
{
    double sum = 0;
    int n = 0;
    for (int t = 0; t < T; t++)
        if (active[t] && !isnan(x[t]))
            sum += x[t], n++;
    return n ? sum / n : NAN;
}

/* ------------------------------------------------------------------------ */
/* The sweep's cache of evaluated methods                                    */
/* ------------------------------------------------------------------------ */

typedef struct {
    char key[192];
    bool last_row_only;
    sotu_eval_method m;   /* rank 0: a copy owning its matrices; elsewhere no matrices */
} cache_entry;

struct sotu_eval_cache {
    cache_entry *e;
    int n, cap;
    int hits;
};

/* The part of a cache key every method of a run shares: its training group
 * and the tasks it merges (active_i, the same on every rank); the frozen
 * baseline's has its frozen group instead of the training group. */
typedef struct {
    sotu_eval_cache *cache;
    char prefix[96];
    char frozen_prefix[96];
} cache_ctx;

sotu_eval_cache *sotu_eval_cache_new(void)
{
    return calloc(1, sizeof(sotu_eval_cache));
}

void sotu_eval_cache_free(sotu_eval_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        for (int k = 0; k < SOTU_EV_N; k++)
            free(c->e[i].m.acc[k]);
    free(c->e);
    free(c);
}

int sotu_eval_cache_hits(const sotu_eval_cache *c)
{
    return c ? c->hits : 0;
}

static void cache_prefix(cache_ctx *cc, sotu_eval_cache *cache, int group, int frozen_group,
                         const int *active, int T)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the active flags */
    for (int t = 0; t < T; t++) {
        h ^= (uint64_t)(active[t] != 0);
        h *= 1099511628211ull;
    }
    cc->cache = cache;
    snprintf(cc->prefix, sizeof cc->prefix, "g%d|T%d|%016llx", group, T, (unsigned long long)h);
    snprintf(cc->frozen_prefix, sizeof cc->frozen_prefix, "f%d|T%d|%016llx", frozen_group, T,
             (unsigned long long)h);
}

/* A merge at keep (frozen: θ0) under the run's mode and scale. */
static void cache_key(const cache_ctx *cc, const sotu_run *run, const char *kind, double keep,
                      char *key, size_t cap)
{
    if (!strcmp(kind, "merge"))
        snprintf(key, cap, "%s|merge|%s|%.17g|%.17g", cc->prefix, sotu_merge_mode_name(run->mode),
                 run->cfg.merge.scale, keep);
    else
        snprintf(key, cap, "%s|%s", strcmp(kind, "frozen") ? cc->prefix : cc->frozen_prefix,
                 kind);
}

static const cache_entry *cache_find(const cache_ctx *cc, const char *key, bool last_row_only)
{
    for (int i = 0; cc && cc->cache && i < cc->cache->n; i++) {
        const cache_entry *e = &cc->cache->e[i];
        if (!strcmp(e->key, key) && (last_row_only || !e->last_row_only))
            return e;
    }
    return NULL;
}

/* Remembers m under key (every rank; rank 0 copies the matrices). */
static sotu_status cache_put(const cache_ctx *cc, const char *key, const sotu_eval_method *m,
                             bool last_row_only, int T, int rank)
{
    if (!cc || !cc->cache)
        return SOTU_OK;
    sotu_eval_cache *c = cc->cache;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        cache_entry *e = realloc(c->e, sizeof *e * (size_t)cap);
        if (!e)
            return sotu_error(SOTU_ERR_NOMEM, "evaluation cache of %d methods", cap);
        c->e = e;
        c->cap = cap;
    }
    cache_entry *e = &c->e[c->n];
    memset(e, 0, sizeof *e);
    snprintf(e->key, sizeof e->key, "%s", key);
    e->last_row_only = last_row_only;
    if (rank == 0 && m) {
        e->m = *m;
        size_t TT = (size_t)T * T;
        for (int k = 0; k < SOTU_EV_N; k++) {
            e->m.acc[k] = NULL;
            if (!m->acc[k])
                continue;
            if (!(e->m.acc[k] = malloc(sizeof(double) * (TT ? TT : 1)))) {
                for (int j = 0; j < k; j++)
                    free(e->m.acc[j]);
                return sotu_error(SOTU_ERR_NOMEM, "evaluation cache: accuracy matrices");
            }
            memcpy(e->m.acc[k], m->acc[k], sizeof(double) * TT);
        }
    }
    c->n++;
    return SOTU_OK;
}

/* Rank 0: adds method name to rep from the cached e; only the last row when
 * last_row_only. */
static sotu_status cache_copy(const cache_entry *e, sotu_run *run, sotu_eval_report *rep,
                              const char *name, double keep, bool last_row_only)
{
    int T = run->T;
    bool want[SOTU_EV_N];
    for (int k = 0; k < SOTU_EV_N; k++)
        want[k] = e->m.acc[k] != NULL;
    sotu_eval_method *m = sotu_eval_report_add(rep, name, keep, want);
    if (!m)
        return SOTU_ERR_NOMEM;
    for (int k = 0; k < SOTU_EV_N; k++) {
        if (!want[k])
            continue;
        size_t from = last_row_only ? (size_t)(T - 1) * T : 0;
        memcpy(m->acc[k] + from, e->m.acc[k] + from, sizeof(double) * ((size_t)T * T - from));
    }
    m->lambda = e->m.lambda;
    m->val_acc = e->m.val_acc;
    memcpy(m->cls_val_acc, e->m.cls_val_acc, sizeof m->cls_val_acc);
    m->last_row_only = last_row_only;
    m->reused = true;
    m->seconds = 0;
    sotu_eval_method_finish(m, T);
    log_method(run, m);
    SOTU_INFO("evaluation %s: the same model as an earlier point's (%s), not evaluated again",
              name, e->m.name);
    return SOTU_OK;
}

/* Evaluates one merged/frozen method with sotu_evaluate_matrices. */
static sotu_status eval_method(sotu_run *run, int rank, int nranks, sotu_eval_report *rep,
                               const char *name, double keep, bool frozen, bool last_row_only,
                               const bool *active, float *const *hw, float *const *hb,
                               const bool want[SOTU_EV_N], const cache_ctx *cc)
{
    sotu_status st = SOTU_OK;
    sotu_eval_method *m = NULL;
    double *acc[SOTU_EV_N] = {0};
    char key[192] = "";
    if (cc)
        cache_key(cc, run, frozen ? "frozen" : "merge", keep, key, sizeof key);
    const cache_entry *hit = cc ? cache_find(cc, key, last_row_only) : NULL;
    if (hit) {
        cc->cache->hits++;
        if (rank == 0)
            st = cache_copy(hit, run, rep, name, frozen ? NAN : keep, last_row_only);
        sotu_mpi_all_ok(&st, nranks, "evaluation");
        return st;
    }
    if (rank == 0) {
        m = sotu_eval_report_add(rep, name, frozen ? NAN : keep, want);
        if (!m)
            st = SOTU_ERR_NOMEM;
        else
            memcpy(acc, m->acc, sizeof acc);
    }
    if (!sotu_mpi_all_ok(&st, nranks, "evaluation"))
        return st;
    double t0 = sotu_now();
    backbone_ctx bc = {run, frozen ? 0 : keep};
    /* val[0]: the task heads', val[c]: classifier c's (sotu_eval_input) */
    double *val = rank == 0 ? malloc(sizeof(double) * (size_t)run->T * SOTU_EV_N) : NULL;
    if (rank == 0 && !val)
        st = sotu_error(SOTU_ERR_NOMEM, "validation accuracies of %d tasks", run->T);
    if (!sotu_mpi_all_ok(&st, nranks, "evaluation"))
        return st;
    sotu_eval_input in = {
        .vc = &run->vc,
        .n_params = run->table.total,
        .man = &run->man,
        .cfg = &run->cfg,
        .active = active,
        .head_w = hw,
        .head_b = hb,
        .backbone = backbone_merge,
        .ctx = &bc,
        .last_row_only = last_row_only,
        .label = name,
        .val_acc = val,
    };
    memcpy(in.want, want, sizeof in.want);
    for (int c = 1; rank == 0 && c < SOTU_EV_N; c++)
        in.cls_val_acc[c] = val + (size_t)c * run->T;
    double lambda;
    st = sotu_evaluate_matrices(&in, rank, nranks, acc, &lambda);
    if (st == SOTU_OK && rank == 0) {
        m->lambda = lambda;
        m->val_acc = want[SOTU_EV_TASK_HEADS] ? mean_active(val, active, run->T) : NAN;
        for (int c = 1; c < SOTU_EV_N; c++)
            m->cls_val_acc[c] = want[c] ? mean_active(in.cls_val_acc[c], active, run->T) : NAN;
        m->last_row_only = last_row_only;
        m->seconds = sotu_now() - t0;
        sotu_eval_method_finish(m, run->T);
        log_method(run, m);
        if (cc)
            st = cache_put(cc, key, m, last_row_only, run->T, rank);
        SOTU_INFO("evaluation %s: task-incremental %.4f, class-incremental NCM %.4f, ridge %.4f "
                  "(final average accuracy, %.1fs)", name,
                  m->metrics[SOTU_EV_TASK_HEADS].final_avg_acc, m->metrics[SOTU_EV_NCM].final_avg_acc,
                  m->metrics[SOTU_EV_RIDGE].final_avg_acc, m->seconds);
    } else if (st == SOTU_OK && cc) {
        st = cache_put(cc, key, NULL, last_row_only, run->T, rank);
    }
    free(val);
    sotu_mpi_all_ok(&st, nranks, "evaluation");
    return st;
}

sotu_status sotu_evaluate_run(sotu_run *run, int rank, int nranks, sotu_eval_report *rep)
{
    return sotu_evaluate_run_cached(run, rank, nranks, rep, NULL, 0, 0);
}

sotu_status sotu_evaluate_run_cached(sotu_run *run, int rank, int nranks, sotu_eval_report *rep,
                                     sotu_eval_cache *cache, int group, int frozen_group)
{
    const sotu_config *cfg = &run->cfg;
    int T = run->T;
    double t_start = sotu_now();
    memset(rep, 0, sizeof *rep);
    rep->T = T;
    bool want[SOTU_EV_N];
    sotu_eval_wanted(cfg, want);
    const char (*bl)[32] = cfg->eval.baselines;
    int nb = cfg->eval.n_baselines;
    bool b_ft = has_name(bl, nb, "finetuned"), b_frozen = has_name(bl, nb, "frozen"),
         b_dense = has_name(bl, nb, "dense") && run->keep_ship >= 1.0,
         b_seq = has_name(bl, nb, "sequential");

    if (rank == 0 && has_name(bl, nb, "dense") && !b_dense)
        SOTU_INFO("baseline dense skipped: the deltas ship at keep %g, not 1 (sotu.tuning masked "
                  "trains only that keep's mask, so a keep-1 merge is the same merge)",
                  run->keep_ship);
    sotu_status st = SOTU_OK;
    int *active_i = calloc((size_t)T, sizeof *active_i);
    bool *active = calloc((size_t)T, sizeof *active);
    float **hw = calloc((size_t)T, sizeof *hw), **hb = calloc((size_t)T, sizeof *hb);
    head_set frozen = {0}, seq = {0};
    double *seq_acc = NULL;
    if (!active_i || !active || !hw || !hb)
        st = sotu_error(SOTU_ERR_NOMEM, "evaluation of %d tasks", T);
    if (!sotu_mpi_all_ok(&st, nranks, "evaluation"))
        goto cleanup;
    for (int t = 0; rank == 0 && t < T; t++) {
        active_i[t] = run->tasks[t].done;
        active[t] = run->tasks[t].done;
        hw[t] = run->tasks[t].head_weight;
        hb[t] = run->tasks[t].head_bias;
    }
    if (nranks > 1)
        sotu_mpi_bcast_bytes(active_i, sizeof(int) * (size_t)T, 0);
    cache_ctx cc_store, *cc = NULL;
    if (cache) {
        cache_prefix(&cc_store, cache, group, frozen_group, active_i, T);
        cc = &cc_store;
    }
    char seq_key[192] = "", frozen_key[192] = "";
    if (cc) {
        cache_key(cc, run, "sequential", 0, seq_key, sizeof seq_key);
        cache_key(cc, run, "frozen", 0, frozen_key, sizeof frozen_key);
    }
    const cache_entry *seq_hit = b_seq && cc ? cache_find(cc, seq_key, false) : NULL;
    /* A baseline an earlier point of the group (the frozen group for the
     * frozen heads) evaluated is not trained again. */
    bool train_frozen = b_frozen && !(cc && cache_find(cc, frozen_key, false));
    bool train_seq = b_seq && !seq_hit;

    /* Baselines that train: frozen heads over ranks [0, workers), the
     * sequential chain on the last rank (after the frozen share when alone). */
    if (train_frozen || train_seq) {
        int workers = train_seq && nranks > 1 ? nranks - 1 : nranks;
        if (train_frozen)
            st = head_set_init(&frozen, &run->man, run->vc.dim);
        if (st == SOTU_OK && train_seq)
            st = head_set_init(&seq, &run->man, run->vc.dim);
        if (st == SOTU_OK && train_seq && (rank == nranks - 1 || rank == 0)) {
            seq_acc = malloc(sizeof(double) * (size_t)T * T);
            if (!seq_acc)
                st = sotu_error(SOTU_ERR_NOMEM, "sequential accuracy matrix");
            for (size_t i = 0; seq_acc && i < (size_t)T * T; i++)
                seq_acc[i] = NAN;
        }
        if (!sotu_mpi_all_ok(&st, nranks, "baselines"))
            goto cleanup;
        if (rank == 0)
            SOTU_INFO("baselines: %s%s(%d ranks)", train_frozen ? "frozen heads " : "",
                      train_seq ? "sequential chain " : "", nranks);
        if (train_frozen)
            st = frozen_heads(run, active_i, rank, workers, &frozen);
        if (st == SOTU_OK && train_seq && rank == nranks - 1)
            st = sequential_chain(run, active_i, &seq, seq_acc);
        if (!sotu_mpi_all_ok(&st, nranks, "baselines"))
            goto cleanup;
        if (train_frozen && nranks > 1)
            st = gather_heads(run, active_i, rank, workers, &frozen);
        if (st == SOTU_OK && train_seq && nranks > 1) {
            if (rank == nranks - 1)
                sotu_mpi_send_bytes(seq_acc, sizeof(double) * (size_t)T * T, 0, TAG_EV_SEQ);
            else if (rank == 0)
                SOTU_MPI_CHECK(MPI_Recv(seq_acc, T * T, MPI_DOUBLE, nranks - 1, TAG_EV_SEQ,
                                        sotu_mpi_comm(), MPI_STATUS_IGNORE));
        }
        if (!sotu_mpi_all_ok(&st, nranks, "baselines"))
            goto cleanup;
    }

    st = eval_method(run, rank, nranks, rep, "sotu", run->keeps[0], false, false, active, hw, hb,
                     want, cc);
    if (st == SOTU_OK && b_dense)
        st = eval_method(run, rank, nranks, rep, "dense", 1.0, false, false, active, hw, hb, want, cc);
    if (st == SOTU_OK && b_frozen)
        st = eval_method(run, rank, nranks, rep, "frozen", 0, true, false, active, frozen.w,
                         frozen.b, want, cc);
    for (int k = 1; st == SOTU_OK && k < run->n_keeps; k++) {
        if (run->keeps[k] > run->keep_ship)
            continue;
        char name[32];
        snprintf(name, sizeof name, "sotu@%.6g", run->keeps[k]);
        st = eval_method(run, rank, nranks, rep, name, run->keeps[k], false, true, active, hw, hb,
                         want, cc);
    }
    if (st == SOTU_OK && cc && train_seq && rank != 0)
        st = cache_put(cc, seq_key, NULL, false, T, rank);
    if (st != SOTU_OK || rank != 0)
        goto cleanup;

    bool heads_only[SOTU_EV_N] = {[SOTU_EV_TASK_HEADS] = true};
    if (seq_hit) {
        cache->hits++;
        if ((st = cache_copy(seq_hit, run, rep, "sequential", NAN, false)) != SOTU_OK)
            goto cleanup;
    } else if (b_seq) {
        sotu_eval_method *m = sotu_eval_report_add(rep, "sequential", NAN, heads_only);
        if (!m) {
            st = SOTU_ERR_NOMEM;
            goto cleanup;
        }
        memcpy(m->acc[SOTU_EV_TASK_HEADS], seq_acc, sizeof(double) * (size_t)T * T);
        sotu_eval_method_finish(m, T);
        log_method(run, m);
        if (cc && (st = cache_put(cc, seq_key, m, false, T, rank)) != SOTU_OK)
            goto cleanup;
    }
    if (b_ft) {
        sotu_eval_method *m = sotu_eval_report_add(rep, "finetuned", NAN, heads_only);
        if (!m) {
            st = SOTU_ERR_NOMEM;
            goto cleanup;
        }
        for (int i = 0; i < T; i++)
            for (int j = 0; j <= i; j++)
                if (active[j] && sotu_metrics_row_selected(i, T, cfg->eval.every))
                    m->acc[SOTU_EV_TASK_HEADS][(size_t)i * T + j] =
                        run->tasks[j].report.finetuned_acc;
        double sum = 0;
        int n = 0;
        for (int j = 0; j < T; j++)
            if (active[j] && !isnan(run->tasks[j].report.val_acc))
                sum += run->tasks[j].report.val_acc, n++;
        m->val_acc = n ? sum / n : NAN;
        sotu_eval_method_finish(m, T);
        log_method(run, m);
    }
    rep->seconds = sotu_now() - t_start;

cleanup:
    head_set_free(&frozen, T);
    head_set_free(&seq, T);
    free(seq_acc);
    free(active_i);
    free(active);
    free(hw);
    free(hb);
    return st;
}

/* ------------------------------------------------------------------------ */
/* After a run                                                               */
/* ------------------------------------------------------------------------ */

typedef struct {
    const float *merged;
    size_t n;
} fixed_ctx;

static sotu_status backbone_fixed(void *ctx, int row, float *params)
{
    const fixed_ctx *c = ctx;
    (void)row;
    memcpy(params, c->merged, sizeof(float) * c->n);
    return SOTU_OK;
}

sotu_status sotu_evaluate_heads(const sotu_run *run, const float *merged, int rank, int nranks,
                                double *acc)
{
    int T = run->T;
    bool *active = calloc((size_t)T, sizeof *active);
    float **hw = calloc((size_t)T, sizeof *hw), **hb = calloc((size_t)T, sizeof *hb);
    double *A = rank == 0 ? malloc(sizeof(double) * (size_t)T * T) : NULL;
    sotu_status st = active && hw && hb && (rank != 0 || A)
                         ? SOTU_OK
                         : sotu_error(SOTU_ERR_NOMEM, "evaluation of %d tasks", T);
    if (!sotu_mpi_all_ok(&st, nranks, "evaluation"))
        goto cleanup;
    for (int t = 0; rank == 0 && t < T; t++) {
        active[t] = run->tasks[t].done;
        hw[t] = run->tasks[t].head_weight;
        hb[t] = run->tasks[t].head_bias;
    }
    fixed_ctx fc = {merged, run->table.total};
    sotu_eval_input in = {
        .vc = &run->vc,
        .n_params = run->table.total,
        .man = &run->man,
        .cfg = &run->cfg,
        .active = active,
        .head_w = hw,
        .head_b = hb,
        .backbone = backbone_fixed,
        .ctx = &fc,
        .last_row_only = true,
        .want = {[SOTU_EV_TASK_HEADS] = true},
        .label = "task heads",
    };
    double *acc_m[SOTU_EV_N] = {[SOTU_EV_TASK_HEADS] = A};
    st = sotu_evaluate_matrices(&in, rank, nranks, acc_m, NULL);
    if (st == SOTU_OK && rank == 0)
        memcpy(acc, A + (size_t)(T - 1) * T, sizeof(double) * (size_t)T);
cleanup:
    free(active);
    free(hw);
    free(hb);
    free(A);
    return st;
}

static const char *const figure_names[] = {"final_avg_acc", "avg_inc_acc", "forgetting", "bwt"};

static double figure_value(const sotu_cl_metrics *x, int k)
{
    return k == 0 ? x->final_avg_acc : k == 1 ? x->avg_inc_acc : k == 2 ? x->forgetting : x->bwt;
}

sotu_status sotu_evaluate_write(sotu_run *run, const float *merged, const sotu_merge_stats *stats,
                                const sotu_eval_report *rep, int nranks, double seconds,
                                double *acc)
{
    int T = run->T;
    const sotu_eval_method *s = sotu_eval_report_find(rep, "sotu");
    const double *A = s ? s->acc[SOTU_EV_TASK_HEADS] : NULL;
    for (int t = 0; t < T; t++)
        acc[t] = A && s->metrics[SOTU_EV_TASK_HEADS].last_row >= 0
                     ? A[(size_t)s->metrics[SOTU_EV_TASK_HEADS].last_row * T + t]
                     : NAN;
    int cap = 5 + rep->n_methods * (SOTU_EV_N * 4 + 1);
    sotu_checkpoint_figure *fig = calloc((size_t)cap, sizeof *fig);
    char (*names)[64] = calloc((size_t)cap, sizeof *names);
    const char **task_names = calloc((size_t)T, sizeof *task_names);
    const char **status = calloc((size_t)T, sizeof *status);
    int *classes = calloc((size_t)T, sizeof *classes);
    double *ft = calloc((size_t)T, sizeof *ft);
    sotu_scalar_curve *curves = NULL;
    int64_t *kept = calloc((size_t)T, sizeof *kept), *bytes = calloc((size_t)T, sizeof *bytes);
    sotu_status st = SOTU_OK;
    if (!fig || !names || !task_names || !status || !classes || !ft || !kept || !bytes) {
        st = sotu_error(SOTU_ERR_NOMEM, "evaluation outputs");
        goto cleanup;
    }
    int n = 0;
    for (int k = 0; s && k < 4; k++) {
        fig[n] = (sotu_checkpoint_figure){figure_names[k],
                                          figure_value(&s->metrics[SOTU_EV_TASK_HEADS], k)};
        n++;
    }
    if (s) /* SoTU's task heads on the validation hold-out: what a sweep ranks by */
        fig[n++] = (sotu_checkpoint_figure){"val_acc", s->val_acc};
    for (int i = 0; i < rep->n_methods; i++) {
        if (rep->methods[i].acc[SOTU_EV_TASK_HEADS]) {
            snprintf(names[n], sizeof names[n], "%s_task_heads_val_acc", rep->methods[i].name);
            fig[n] = (sotu_checkpoint_figure){names[n], rep->methods[i].val_acc};
            n++;
        }
        for (int c = 0; c < SOTU_EV_N; c++) {
            if (!rep->methods[i].acc[c])
                continue;
            for (int k = 0; k < 4; k++) {
                snprintf(names[n], sizeof names[n], "%s_%s_%s", rep->methods[i].name,
                         sotu_eval_classifier_name(c), figure_names[k]);
                fig[n] = (sotu_checkpoint_figure){names[n],
                                                  figure_value(&rep->methods[i].metrics[c], k)};
                n++;
            }
        }
    }
    st = sotu_run_write_checkpoint_eval(run, NULL, merged, stats, A, n, fig);
    if (st != SOTU_OK)
        goto cleanup;
    for (int t = 0; t < T; t++) {
        task_names[t] = run->man.tasks[t].name;
        status[t] = sotu_run_task_status(run, t);
        classes[t] = run->man.tasks[t].classes;
        ft[t] = run->tasks[t].done ? run->tasks[t].report.finetuned_acc : NAN;
        kept[t] = run->tasks[t].done ? run->tasks[t].kept_values : 0;
        bytes[t] = run->tasks[t].done ? run->tasks[t].bytes : 0;
    }
    int missing = 0;
    curves = calloc((size_t)T, sizeof *curves);
    if (!curves) {
        st = sotu_error(SOTU_ERR_NOMEM, "training curves of %d tasks", T);
        goto cleanup;
    }
    if ((st = sotu_run_write_scalars(run, &missing, curves)) != SOTU_OK)
        goto cleanup;
    if (missing && run->cfg.train.log_every > 0)
        SOTU_WARN("%s: %d done task(s) without stored step scalars (deltas/<task>.steps.jsonl): "
                  "left out of steps.jsonl and steps.csv", run->dir, missing);
    char note[SOTU_PATH_MAX + 64] = "";
    if (run->merging)
        snprintf(note, sizeof note, "Merged by sotu merge from the deltas in %s.",
                 run->deltas_dir);
    sotu_report_info info = {
        .title = run->title[0] ? run->title : run->dir,
        .note = note[0] ? note : NULL,
        .T = T,
        .task_names = task_names,
        .status = status,
        .classes = classes,
        .finetuned = ft,
        .keep = run->keeps[0],
        .merge_mode = sotu_merge_mode_name(run->mode),
        .collision_rate = stats ? stats->collision_rate : NAN,
        .seconds = seconds,
        .ranks = nranks,
        .curves = curves,
        .kept = kept,
        .bytes = bytes,
        .max_cosine = stats ? sotu_merge_stats_max_cosine(stats) : NAN,
        .config_yaml = run->config_yaml,
        .threads = sotu_threads_get(),
    };
    st = sotu_report_write(run->dir, &info, rep);
cleanup:
    sotu_scalar_curves_free(curves, T);
    free(curves);
    free(kept);
    free(bytes);
    free(fig);
    free(names);
    free(task_names);
    free(status);
    free(classes);
    free(ft);
    return st;
}
