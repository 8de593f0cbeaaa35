#include "coordinator/evaluate.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/rng.h"
#include "common/threads.h"
#include "coordinator/classifier.h"
#include "coordinator/mpi_util.h"
#include "coordinator/report.h"
#include "worker/finetune.h"

enum { TAG_EV_STATS = 41, TAG_EV_HEAD = 42, TAG_EV_SEQ = 43 };

static const char *const classifier_names[SOTU_EV_N] = {"task_heads", "ncm", "ridge", "ncm_til",
                                                        "ridge_til"};

const char *sotu_eval_classifier_name(int c)
{
    return c >= 0 && c < SOTU_EV_N ? classifier_names[c] : "?";
}

bool sotu_eval_classifier_til(int c)
{
    return c == SOTU_EV_TASK_HEADS || c == SOTU_EV_NCM_TIL || c == SOTU_EV_RIDGE_TIL;
}

/* ------------------------------------------------------------------------ */
/* The thin MPI layer: no MPI call at all with one rank                      */
/* ------------------------------------------------------------------------ */

static void ev_bcast_floats(float *buf, size_t n, int nranks)
{
    if (nranks > 1 && n)
        sotu_mpi_bcast_floats(buf, n, 0);
}

static void ev_bcast_bytes(void *buf, size_t n, int nranks)
{
    if (nranks > 1 && n)
        sotu_mpi_bcast_bytes(buf, n, 0);
}

/* out (rank 0) = Σ over ranks of in; the values are integers, so exact. */
static void ev_sum_to_root(const double *in, double *out, int n, int nranks)
{
    if (nranks == 1) {
        memcpy(out, in, sizeof(double) * (size_t)n);
        return;
    }
    SOTU_MPI_CHECK(MPI_Reduce(in, out, n, MPI_DOUBLE, MPI_SUM, 0, sotu_mpi_comm()));
}

/* ------------------------------------------------------------------------ */
/* One task on one backbone                                                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    int t, K, n_test;
    int32_t *labels;     /* [n_test] local */
    float *feats;        /* [n_test, D] */
    double head_acc;     /* NaN without a head */
    sotu_cls_stats stats;/* K classes; data NULL when no classifier needs it */
} task_eval;

static void task_eval_free(task_eval *e)
{
    free(e->labels);
    free(e->feats);
    sotu_cls_stats_free(&e->stats);
    memset(e, 0, sizeof *e);
}

/* The training images fitting the classifiers: up to fit_per_task of them
 * drawn without replacement from (seed, task); every fifth held out. */
static int fit_subset(int n_train, int fit_per_task, uint64_t seed, int t, int32_t *idx)
{
    sotu_rng r;
    sotu_rng_init(&r, seed, SOTU_STREAM_PROJECTION + ((uint64_t)(t + 1) << 8));
    sotu_rng_permutation(&r, idx, n_train);
    return fit_per_task > 0 && fit_per_task < n_train ? fit_per_task : n_train;
}

static sotu_status task_evaluate(const sotu_eval_input *in, const float *params, int t,
                                 const float *hw, const float *hb, const float *R, int M,
                                 bool want_cls, task_eval *e)
{
    const sotu_config *cfg = in->cfg;
    int D = in->vc->dim, B = cfg->train.batch_size;
    sotu_taskset ts = {0};
    vit_model m = {0};
    int32_t *idx = NULL, *lab = NULL;
    uint8_t *img = NULL;
    float *phi = NULL, *h = NULL;
    bool *held = NULL;
    memset(e, 0, sizeof *e);
    e->t = t;
    e->head_acc = NAN;
    sotu_status st = sotu_taskset_read(in->man->tasks[t].path, &ts);
    if (st != SOTU_OK)
        goto cleanup;
    e->K = ts.classes;
    e->n_test = ts.n_test;
    if (ts.classes != in->man->tasks[t].classes) {
        st = sotu_error(SOTU_ERR_DATA, "%s: %d classes, the manifest %s lists %d", ts.name,
                        ts.classes, in->man->path, in->man->tasks[t].classes);
        goto cleanup;
    }
    if ((st = vit_init(&m, in->vc, B)) != SOTU_OK)
        goto cleanup;
    memcpy(m.params, params, in->n_params * sizeof(float));
    if ((st = sotu_finetune_reset_head(&m, ts.classes, B, 0, (uint32_t)t)) != SOTU_OK)
        goto cleanup;
    if (hw) {
        const sotu_tensor_info *w = &m.table.t[sotu_tensor_find(&m.table, "head.weight")];
        const sotu_tensor_info *b = &m.table.t[sotu_tensor_find(&m.table, "head.bias")];
        memcpy(m.params + w->offset, hw, w->count * sizeof(float));
        memcpy(m.params + b->offset, hb, b->count * sizeof(float));
    }
    e->labels = malloc(sizeof(int32_t) * (size_t)(ts.n_test ? ts.n_test : 1));
    e->feats = malloc(sizeof(float) * (size_t)(ts.n_test ? ts.n_test : 1) * D);
    if (!e->labels || !e->feats) {
        st = sotu_error(SOTU_ERR_NOMEM, "task %s: test features", ts.name);
        goto cleanup;
    }
    memcpy(e->labels, ts.test_labels, sizeof(int32_t) * (size_t)ts.n_test);
    double acc;
    if ((st = sotu_finetune_eval_test(&m, &ts, cfg, &acc, e->feats)) != SOTU_OK)
        goto cleanup;
    for (size_t i = 0; i < (size_t)ts.n_test * D; i++)
        if (!isfinite(e->feats[i])) {
            st = sotu_error(SOTU_ERR_NUMERIC, "task %s: the backbone gives a non-finite feature "
                            "(image %zu of the test split)", ts.name, i / (size_t)D);
            goto cleanup;
        }
    if (hw)
        e->head_acc = acc;
    if (!want_cls)
        goto cleanup;

    int n_tr = ts.n_train;
    idx = malloc(sizeof(int32_t) * (size_t)(n_tr ? n_tr : 1));
    if (!idx) {
        st = sotu_error(SOTU_ERR_NOMEM, "task %s: %d training indices", ts.name, n_tr);
        goto cleanup;
    }
    int n = fit_subset(n_tr, cfg->eval.fit_per_task, cfg->train.seed, t, idx);
    size_t pix = (size_t)ts.height * ts.width * ts.channels;
    img = malloc(pix * (size_t)(n ? n : 1));
    lab = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    phi = malloc(sizeof(float) * (size_t)(n ? n : 1) * D);
    h = malloc(sizeof(float) * (size_t)(n ? n : 1) * M);
    held = malloc(sizeof(bool) * (size_t)(n ? n : 1));
    if (!img || !lab || !phi || !h || !held) {
        st = sotu_error(SOTU_ERR_NOMEM, "task %s: features of %d training images", ts.name, n);
        goto cleanup;
    }
    for (int k = 0; k < n; k++) {
        memcpy(img + (size_t)k * pix, ts.train_images + (size_t)idx[k] * pix, pix);
        lab[k] = ts.train_labels[idx[k]];
        held[k] = k % 5 == 4;
    }
    st = sotu_finetune_eval_cfg(&m, img, NULL, n, ts.height, ts.width, ts.channels, cfg, NULL,
                                phi, NULL);
    if (st != SOTU_OK)
        goto cleanup;
    if ((st = sotu_cls_stats_init(&e->stats, ts.classes, D, M)) != SOTU_OK)
        goto cleanup;
    sotu_cls_project(R, M, D, phi, n, h);
    sotu_cls_stats_accumulate(&e->stats, phi, h, lab, held, n);

cleanup:
    if (st != SOTU_OK) {
        sotu_error_context(st, "evaluating task %s", in->man->tasks[t].name);
        task_eval_free(e);
    }
    free(idx);
    free(lab);
    free(img);
    free(phi);
    free(h);
    free(held);
    vit_free(&m);
    sotu_taskset_free(&ts);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Accuracy matrices                                                         */
/* ------------------------------------------------------------------------ */

/* Right answers of pred against offset + labels. */
static double count_right(const int32_t *pred, const int32_t *labels, int n, int offset)
{
    double c = 0;
    for (int k = 0; k < n; k++)
        c += pred[k] == offset + labels[k];
    return c;
}

/* Rank 0 adds every task's sums in task order: its own, or received from
 * their owner (which sends its share in order). */
static sotu_status gather_stats(task_eval *mine, int64_t b, int64_t e, const int *list, int nL,
                                const int *off, int rank, int nranks, sotu_cls_stats *global)
{
    sotu_status st = SOTU_OK;
    if (rank != 0) {
        for (int64_t k = b; k < e; k++) {
            task_eval *te = &mine[k - b];
            sotu_mpi_send_bytes(te->stats.data,
                                sizeof(double) * sotu_cls_stats_size(te->stats.C, te->stats.D,
                                                                     te->stats.M),
                                0, TAG_EV_STATS);
        }
        return SOTU_OK;
    }
    sotu_cls_stats_zero(global);
    sotu_mpi_buffer buf = {0};
    for (int k = 0; k < nL; k++) {
        int t = list[k], owner = sotu_share_owner(k, nL, nranks);
        if (owner == 0) {
            sotu_cls_stats_add(global, &mine[k - b].stats, off[t]);
            continue;
        }
        if ((st = sotu_mpi_recv_any(&buf, owner, TAG_EV_STATS, NULL, NULL)) != SOTU_OK)
            break;
        int K = off[t + 1] - off[t];
        size_t want = sizeof(double) * sotu_cls_stats_size(K, global->D, global->M);
        if (buf.len != want) {
            st = sotu_error(SOTU_ERR_INTERNAL, "classifier sums of task %d from rank %d: %zu "
                            "bytes, expected %zu", t, owner, buf.len, want);
            break;
        }
        sotu_cls_stats ts = {.C = K, .D = global->D, .M = global->M, .data = buf.data};
        size_t Cs = (size_t)K, Ds = (size_t)global->D, Ms = (size_t)global->M;
        ts.sum = ts.data;
        ts.count = ts.sum + Cs * Ds;
        ts.G_fit = ts.count + Cs;
        ts.G_val = ts.G_fit + Ms * Ms;
        ts.S_fit = ts.G_val + Ms * Ms;
        ts.S_val = ts.S_fit + Cs * Ms;
        ts.n_val = ts.S_val + Cs * Ms;
        sotu_cls_stats_add(global, &ts, off[t]);
    }
    sotu_mpi_buffer_free(&buf);
    return st;
}

sotu_status sotu_evaluate_matrices(const sotu_eval_input *in, int rank, int nranks,
                                   double *acc[SOTU_EV_N], double *lambda)
{
    const sotu_manifest *man = in->man;
    int T = man->n_tasks, D = in->vc->dim, rp = in->cfg->eval.rp_dim;
    int M = rp > 0 ? rp : D;
    bool want_cls = in->want[SOTU_EV_NCM] || in->want[SOTU_EV_RIDGE] ||
                    in->want[SOTU_EV_NCM_TIL] || in->want[SOTU_EV_RIDGE_TIL];
    bool want_ridge = in->want[SOTU_EV_RIDGE] || in->want[SOTU_EV_RIDGE_TIL];
    sotu_status st = SOTU_OK;
    int *active = calloc((size_t)T, sizeof *active), *has_head = calloc((size_t)T, sizeof(int));
    int *off = calloc((size_t)T + 1, sizeof *off), *list = calloc((size_t)T, sizeof *list);
    float **hw = calloc((size_t)T, sizeof *hw), **hb = calloc((size_t)T, sizeof *hb);
    float *params = malloc(sizeof(float) * in->n_params), *R = NULL;
    double *part = calloc(2 * (size_t)SOTU_EV_N * T, sizeof(double));
    double *sum = calloc(2 * (size_t)SOTU_EV_N * T, sizeof(double));
    task_eval *mine = calloc((size_t)T, sizeof *mine);
    sotu_cls_stats global = {0};
    sotu_cls_model cm = {0};
    int32_t *pred = NULL;
    float *hbuf = NULL;
    if (lambda)
        *lambda = NAN;
    if (!active || !has_head || !off || !list || !hw || !hb || !params || !part || !sum || !mine)
        st = sotu_error(SOTU_ERR_NOMEM, "evaluation of %d tasks", T);
    if (!sotu_mpi_all_ok(&st, nranks, "evaluation"))
        goto cleanup;
    for (int t = 0; t < T; t++) {
        off[t + 1] = off[t] + man->tasks[t].classes;
        if (rank == 0) {
            active[t] = in->active[t];
            has_head[t] = in->active[t] && in->head_w && in->head_w[t] && in->head_b[t];
        }
    }
    int C = off[T];
    ev_bcast_bytes(active, sizeof(int) * (size_t)T, nranks);
    ev_bcast_bytes(has_head, sizeof(int) * (size_t)T, nranks);
    for (int t = 0; t < T && st == SOTU_OK; t++) {
        if (!has_head[t])
            continue;
        size_t K = (size_t)man->tasks[t].classes;
        hw[t] = malloc(sizeof(float) * K * D);
        hb[t] = malloc(sizeof(float) * K);
        if (!hw[t] || !hb[t]) {
            st = sotu_error(SOTU_ERR_NOMEM, "evaluation heads");
            break;
        }
        if (rank == 0) {
            memcpy(hw[t], in->head_w[t], sizeof(float) * K * D);
            memcpy(hb[t], in->head_b[t], sizeof(float) * K);
        }
    }
    if (!sotu_mpi_all_ok(&st, nranks, "evaluation"))
        goto cleanup;
    for (int t = 0; t < T; t++)
        if (has_head[t]) {
            ev_bcast_floats(hw[t], (size_t)man->tasks[t].classes * D, nranks);
            ev_bcast_floats(hb[t], (size_t)man->tasks[t].classes, nranks);
        }
    if (want_cls) {
        if (rp > 0 && !(R = malloc(sizeof(float) * (size_t)M * D)))
            st = sotu_error(SOTU_ERR_NOMEM, "random projection %d x %d", M, D);
        if (st == SOTU_OK && rank == 0)
            st = sotu_cls_stats_init(&global, C, D, M);
        if (st == SOTU_OK)
            st = sotu_cls_model_init(&cm, C, D, M);
        if (R)
            sotu_cls_projection(R, M, D, in->cfg->train.seed);
    }
    if (!sotu_mpi_all_ok(&st, nranks, "evaluation"))
        goto cleanup;
    if (rank == 0)
        for (int c = 0; c < SOTU_EV_N; c++)
            if (acc[c])
                for (size_t i = 0; i < (size_t)T * T; i++)
                    acc[c][i] = NAN;

    for (int row = 0; row < T; row++) {
        if (in->last_row_only ? row != T - 1
                              : !sotu_metrics_row_selected(row, T, in->cfg->eval.every))
            continue;
        double t0 = sotu_now();
        if (rank == 0)
            st = in->backbone(in->ctx, row, params);
        if (!sotu_mpi_all_ok(&st, nranks, "evaluation backbone"))
            goto cleanup;
        ev_bcast_floats(params, in->n_params, nranks);
        int nL = 0;
        for (int t = 0; t <= row; t++)
            if (active[t])
                list[nL++] = t;
        int64_t b, e;
        sotu_share(nL, rank, nranks, &b, &e);
        for (int64_t k = b; k < e && st == SOTU_OK; k++) {
            int t = list[k];
            st = task_evaluate(in, params, t, hw[t], hb[t], R, M, want_cls, &mine[k - b]);
        }
        if (!sotu_mpi_all_ok(&st, nranks, "evaluation"))
            goto cleanup;

        int C_use = off[row + 1];
        if (want_cls) {
            st = gather_stats(mine, b, e, list, nL, off, rank, nranks, &global);
            if (st == SOTU_OK && rank == 0)
                st = sotu_cls_fit(&global, C_use, want_ridge, &cm);
            if (!sotu_mpi_all_ok(&st, nranks, "evaluation classifiers"))
                goto cleanup;
            ev_bcast_bytes(cm.valid, sizeof(bool) * (size_t)C, nranks);
            ev_bcast_floats(cm.protos, (size_t)C * D, nranks);
            ev_bcast_floats(cm.W, (size_t)C * M, nranks);
            ev_bcast_bytes(&cm.lambda, sizeof cm.lambda, nranks);
            if (rank == 0 && lambda && want_ridge)
                *lambda = cm.lambda;
        }

        /* part[c*T + t] right answers, part[(N + c)*T + t] images evaluated. */
        memset(part, 0, 2 * sizeof(double) * SOTU_EV_N * T);
        for (int64_t k = b; k < e && st == SOTU_OK; k++) {
            task_eval *te = &mine[k - b];
            int t = te->t, n = te->n_test, ot = off[t], K = te->K;
            double *right = part, *total = part + (size_t)SOTU_EV_N * T;
            if (!isnan(te->head_acc)) {
                right[SOTU_EV_TASK_HEADS * T + t] = round(te->head_acc * n);
                total[SOTU_EV_TASK_HEADS * T + t] = n;
            }
            if (!want_cls || n == 0)
                continue;
            free(pred);
            free(hbuf);
            pred = malloc(sizeof(int32_t) * (size_t)n);
            hbuf = malloc(sizeof(float) * (size_t)n * M);
            if (!pred || !hbuf) {
                st = sotu_error(SOTU_ERR_NOMEM, "evaluation: predictions of %d images", n);
                break;
            }
            sotu_cls_predict_ncm(&cm, te->feats, n, 0, C_use, pred);
            right[SOTU_EV_NCM * T + t] = count_right(pred, te->labels, n, ot);
            sotu_cls_predict_ncm(&cm, te->feats, n, ot, ot + K, pred);
            right[SOTU_EV_NCM_TIL * T + t] = count_right(pred, te->labels, n, ot);
            total[SOTU_EV_NCM * T + t] = total[SOTU_EV_NCM_TIL * T + t] = n;
            if (want_ridge) {
                sotu_cls_project(R, M, D, te->feats, n, hbuf);
                sotu_cls_predict_ridge(&cm, hbuf, n, 0, C_use, pred);
                right[SOTU_EV_RIDGE * T + t] = count_right(pred, te->labels, n, ot);
                sotu_cls_predict_ridge(&cm, hbuf, n, ot, ot + K, pred);
                right[SOTU_EV_RIDGE_TIL * T + t] = count_right(pred, te->labels, n, ot);
                total[SOTU_EV_RIDGE * T + t] = total[SOTU_EV_RIDGE_TIL * T + t] = n;
            }
        }
        for (int64_t k = b; k < e; k++)
            task_eval_free(&mine[k - b]);
        if (!sotu_mpi_all_ok(&st, nranks, "evaluation"))
            goto cleanup;
        ev_sum_to_root(part, sum, 2 * SOTU_EV_N * T, nranks);
        if (rank == 0) {
            for (int c = 0; c < SOTU_EV_N; c++) {
                if (!acc[c] || !in->want[c])
                    continue;
                for (int t = 0; t <= row; t++) {
                    double n = sum[(size_t)(SOTU_EV_N + c) * T + t];
                    acc[c][(size_t)row * T + t] = n > 0 ? sum[(size_t)c * T + t] / n : NAN;
                }
            }
            SOTU_INFO("evaluation %s: row %d/%d (%d tasks, %d classes) in %.1fs",
                      in->label ? in->label : "", row + 1, T, nL, C_use, sotu_now() - t0);
        }
    }

cleanup:
    for (int t = 0; mine && t < T; t++)
        task_eval_free(&mine[t]);
    for (int t = 0; hw && t < T; t++) {
        free(hw[t]);
        free(hb[t]);
    }
    free(mine);
    free(hw);
    free(hb);
    free(active);
    free(has_head);
    free(off);
    free(list);
    free(params);
    free(R);
    free(part);
    free(sum);
    free(pred);
    free(hbuf);
    sotu_cls_stats_free(&global);
    sotu_cls_model_free(&cm);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Reports                                                                   */
/* ------------------------------------------------------------------------ */

void sotu_eval_method_finish(sotu_eval_method *m, int T)
{
    for (int c = 0; c < SOTU_EV_N; c++) {
        if (m->acc[c])
            sotu_metrics_compute(m->acc[c], T, &m->metrics[c]);
        else
            m->metrics[c] = (sotu_cl_metrics){NAN, NAN, NAN, NAN, 0, -1};
    }
}

const sotu_eval_method *sotu_eval_report_find(const sotu_eval_report *rep, const char *name)
{
    for (int i = 0; i < rep->n_methods; i++)
        if (!strcmp(rep->methods[i].name, name))
            return &rep->methods[i];
    return NULL;
}

sotu_eval_method *sotu_eval_report_add(sotu_eval_report *rep, const char *name, double keep,
                                       const bool want[SOTU_EV_N])
{
    if (rep->n_methods >= SOTU_EVAL_METHODS_MAX) {
        sotu_error(SOTU_ERR_INTERNAL, "evaluation report: more than %d methods",
                   SOTU_EVAL_METHODS_MAX);
        return NULL;
    }
    sotu_eval_method *m = &rep->methods[rep->n_methods];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    m->keep = keep;
    m->lambda = NAN;
    size_t TT = (size_t)rep->T * rep->T;
    for (int c = 0; c < SOTU_EV_N; c++) {
        if (!want[c])
            continue;
        m->acc[c] = malloc(sizeof(double) * (TT ? TT : 1));
        if (!m->acc[c]) {
            for (int k = 0; k < c; k++)
                free(m->acc[k]);
            sotu_error(SOTU_ERR_NOMEM, "evaluation report: accuracy matrices");
            return NULL;
        }
        for (size_t i = 0; i < TT; i++)
            m->acc[c][i] = NAN;
    }
    rep->n_methods++;
    return m;
}

void sotu_eval_report_free(sotu_eval_report *rep)
{
    if (!rep)
        return;
    for (int i = 0; i < rep->n_methods; i++)
        for (int c = 0; c < SOTU_EV_N; c++)
            free(rep->methods[i].acc[c]);
    memset(rep, 0, sizeof *rep);
}

void sotu_eval_report_print(const sotu_eval_report *rep, FILE *f)
{
    fprintf(f, "\n%-16s %-11s %-4s %10s %10s %10s %10s\n", "method", "classifier", "", "final acc",
            "avg inc", "forgetting", "BWT");
    for (int i = 0; i < rep->n_methods; i++) {
        const sotu_eval_method *m = &rep->methods[i];
        for (int c = 0; c < SOTU_EV_N; c++) {
            if (!m->acc[c])
                continue;
            const sotu_cl_metrics *x = &m->metrics[c];
            fprintf(f, "%-16s %-11s %-4s %10.4f %10.4f %10.4f %10.4f\n", m->name,
                    sotu_eval_classifier_name(c), sotu_eval_classifier_til(c) ? "TIL" : "CIL",
                    x->final_avg_acc, x->avg_inc_acc, x->forgetting, x->bwt);
        }
    }
}

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

static json_t *num_or_null(double v)
{
    return isnan(v) ? json_null() : json_real(v);
}

static void log_method(sotu_run *run, const sotu_eval_method *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "method", json_string(m->name));
    json_object_set_new(o, "keep", num_or_null(m->keep));
    json_object_set_new(o, "seconds", json_real(m->seconds));
    if (m->reused)
        json_object_set_new(o, "reused", json_true());
    json_object_set_new(o, "ridge_lambda", num_or_null(m->lambda));
    json_t *cls = json_object();
    for (int c = 0; c < SOTU_EV_N; c++) {
        if (!m->acc[c])
            continue;
        const sotu_cl_metrics *x = &m->metrics[c];
        json_t *v = json_object();
        json_object_set_new(v, "setting", json_string(sotu_eval_classifier_til(c) ? "task-incremental"
                                                                              : "class-incremental"));
        json_object_set_new(v, "final_avg_acc", num_or_null(x->final_avg_acc));
        json_object_set_new(v, "avg_inc_acc", num_or_null(x->avg_inc_acc));
        json_object_set_new(v, "forgetting", num_or_null(x->forgetting));
        json_object_set_new(v, "bwt", num_or_null(x->bwt));
        json_object_set_new(v, "acc_matrix", matrix_json(m->acc[c], run->T));
        json_object_set_new(cls, sotu_eval_classifier_name(c), v);
    }
    json_object_set_new(o, "classifiers", cls);
    sotu_run_metric(run, "evaluation", o);
}

/* Evaluates one merged/frozen method with sotu_evaluate_matrices. */
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
 * and the tasks it merges (active_i, the same on every rank). */
typedef struct {
    sotu_eval_cache *cache;
    char prefix[96];
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

static void cache_prefix(cache_ctx *cc, sotu_eval_cache *cache, int group, const int *active,
                         int T)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the active flags */
    for (int t = 0; t < T; t++) {
        h ^= (uint64_t)(active[t] != 0);
        h *= 1099511628211ull;
    }
    cc->cache = cache;
    snprintf(cc->prefix, sizeof cc->prefix, "g%d|T%d|%016llx", group, T, (unsigned long long)h);
}

/* A merge at keep (frozen: θ0) under the run's mode and scale. */
static void cache_key(const cache_ctx *cc, const sotu_run *run, const char *kind, double keep,
                      char *key, size_t cap)
{
    if (!strcmp(kind, "merge"))
        snprintf(key, cap, "%s|merge|%s|%.17g|%.17g", cc->prefix, sotu_merge_mode_name(run->mode),
                 run->cfg.merge.scale, keep);
    else
        snprintf(key, cap, "%s|%s", cc->prefix, kind);
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
    m->last_row_only = last_row_only;
    m->reused = true;
    m->seconds = 0;
    sotu_eval_method_finish(m, T);
    log_method(run, m);
    SOTU_INFO("evaluation %s: the same model as an earlier point's (%s), not evaluated again",
              name, e->m.name);
    return SOTU_OK;
}

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
    };
    memcpy(in.want, want, sizeof in.want);
    double lambda;
    st = sotu_evaluate_matrices(&in, rank, nranks, acc, &lambda);
    if (st == SOTU_OK && rank == 0) {
        m->lambda = lambda;
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
    sotu_mpi_all_ok(&st, nranks, "evaluation");
    return st;
}

sotu_status sotu_evaluate_run(sotu_run *run, int rank, int nranks, sotu_eval_report *rep)
{
    return sotu_evaluate_run_cached(run, rank, nranks, rep, NULL, 0);
}

sotu_status sotu_evaluate_run_cached(sotu_run *run, int rank, int nranks, sotu_eval_report *rep,
                                     sotu_eval_cache *cache, int group)
{
    const sotu_config *cfg = &run->cfg;
    int T = run->T;
    double t_start = sotu_now();
    memset(rep, 0, sizeof *rep);
    rep->T = T;
    bool want[SOTU_EV_N] = {0};
    for (int i = 0; i < cfg->eval.n_classifiers; i++) {
        const char *c = cfg->eval.classifiers[i];
        if (!strcmp(c, "task_heads"))
            want[SOTU_EV_TASK_HEADS] = true;
        else if (!strcmp(c, "ncm"))
            want[SOTU_EV_NCM] = want[SOTU_EV_NCM_TIL] = true;
        else if (!strcmp(c, "ridge"))
            want[SOTU_EV_RIDGE] = want[SOTU_EV_RIDGE_TIL] = true;
    }
    const char (*bl)[32] = cfg->eval.baselines;
    int nb = cfg->eval.n_baselines;
    bool b_ft = has_name(bl, nb, "finetuned"), b_frozen = has_name(bl, nb, "frozen"),
         b_dense = has_name(bl, nb, "dense") && run->keep_ship >= 1.0,
         b_seq = has_name(bl, nb, "sequential");

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
    ev_bcast_bytes(active_i, sizeof(int) * (size_t)T, nranks);
    cache_ctx cc_store, *cc = NULL;
    if (cache) {
        cache_prefix(&cc_store, cache, group, active_i, T);
        cc = &cc_store;
    }
    char seq_key[192] = "", frozen_key[192] = "";
    if (cc) {
        cache_key(cc, run, "sequential", 0, seq_key, sizeof seq_key);
        cache_key(cc, run, "frozen", 0, frozen_key, sizeof frozen_key);
    }
    const cache_entry *seq_hit = b_seq && cc ? cache_find(cc, seq_key, false) : NULL;
    /* A baseline an earlier point of the group evaluated is not trained again. */
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
    int cap = 4 + rep->n_methods * SOTU_EV_N * 4;
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
    for (int i = 0; i < rep->n_methods; i++)
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
    double max_cos = NAN;
    for (int i = 0; stats && stats->cosine && i < stats->n; i++)
        for (int j = 0; j < stats->n; j++)
            if (i != j && (isnan(max_cos) || fabs(stats->cosine[(size_t)i * stats->n + j]) > max_cos))
                max_cos = fabs(stats->cosine[(size_t)i * stats->n + j]);
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
        .max_cosine = max_cos,
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
