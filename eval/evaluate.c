#include "eval/evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/rng.h"
#include "eval/classifier.h"
#include "mpi/mpi_util.h"
#include "worker/finetune.h"

enum { TAG_EV_STATS = 41 };

static const char *const classifier_names[SOTU_EV_N] = {"task_heads", "ncm", "ridge", "ncm_til",
                                                        "ridge_til"};

void sotu_eval_wanted(const sotu_config *cfg, bool want[SOTU_EV_N])
{
    for (int c = 0; c < SOTU_EV_N; c++)
        want[c] = false;
    for (int i = 0; i < cfg->eval.n_classifiers; i++) {
        const char *c = cfg->eval.classifiers[i];
        if (!strcmp(c, "task_heads"))
            want[SOTU_EV_TASK_HEADS] = true;
        else if (!strcmp(c, "ncm"))
            want[SOTU_EV_NCM] = want[SOTU_EV_NCM_TIL] = true;
        else if (!strcmp(c, "ridge"))
            want[SOTU_EV_RIDGE] = want[SOTU_EV_RIDGE_TIL] = true;
    }
}

const char *sotu_eval_classifier_name(int c)
{
    return c >= 0 && c < SOTU_EV_N ? classifier_names[c] : "?";
}

int sotu_eval_classifier_index(const char *name)
{
    for (int c = 0; c < SOTU_EV_N; c++)
        if (!strcmp(classifier_names[c], name))
            return c;
    return -1;
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
    double val_head_acc; /* on the validation hold-out; NaN without a head or hold-out */
    int n_val;
    int32_t *val_labels; /* [n_val] local, when a classifier is wanted (else NULL) */
    float *val_feats;    /* [n_val, D] the hold-out images' features, likewise */
    sotu_cls_stats stats;/* K classes; data NULL when no classifier needs it */
} task_eval;

static void task_eval_free(task_eval *e)
{
    free(e->labels);
    free(e->feats);
    free(e->val_labels);
    free(e->val_feats);
    sotu_cls_stats_free(&e->stats);
    memset(e, 0, sizeof *e);
}

/* The training images fitting the classifiers: up to fit_per_task of them
 * drawn without replacement from (seed, task) out of the training split
 * left after the validation hold-out. The ridge λ is picked on the
 * validation images; without a hold-out (data.val_fraction 0) every fifth
 * fitting image is held out for it instead. */
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
    e->val_head_acc = NAN;
    sotu_status st = sotu_taskset_read(in->man->tasks[t].path, &ts);
    if (st == SOTU_OK)
        st = sotu_taskset_hold_out(&ts, in->cfg->data.val_fraction, in->cfg->train.seed,
                                   (uint32_t)t);
    if (st != SOTU_OK)
        goto cleanup;
    e->n_val = ts.n_val;
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
    if (!want_cls && !(hw && ts.n_val > 0))
        goto cleanup;

    int n_tr = ts.n_train, nv = ts.n_val;
    idx = malloc(sizeof(int32_t) * (size_t)(n_tr ? n_tr : 1));
    if (!idx) {
        st = sotu_error(SOTU_ERR_NOMEM, "task %s: %d training indices", ts.name, n_tr);
        goto cleanup;
    }
    /* Fitting images first, then the validation images (held out). */
    int nf = want_cls ? fit_subset(n_tr, cfg->eval.fit_per_task, cfg->train.seed, t, idx) : 0;
    int n = nf + nv;
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
    for (int k = 0; k < nf; k++) {
        memcpy(img + (size_t)k * pix, ts.train_images + (size_t)idx[k] * pix, pix);
        lab[k] = ts.train_labels[idx[k]];
        held[k] = nv == 0 && k % 5 == 4;
    }
    if (nv > 0) {
        memcpy(img + (size_t)nf * pix, ts.val_images, pix * (size_t)nv);
        memcpy(lab + nf, ts.val_labels, sizeof(int32_t) * (size_t)nv);
        for (int k = nf; k < n; k++)
            held[k] = true;
    }
    if (nf > 0)
        st = sotu_finetune_eval_cfg(&m, img, NULL, nf, ts.height, ts.width, ts.channels, cfg,
                                    NULL, phi, NULL);
    double val_acc = NAN;
    if (st == SOTU_OK && nv > 0)
        st = sotu_finetune_eval_cfg(&m, img + (size_t)nf * pix, lab + nf, nv, ts.height,
                                    ts.width, ts.channels, cfg, &val_acc, phi + (size_t)nf * D,
                                    NULL);
    if (st != SOTU_OK)
        goto cleanup;
    if (hw)
        e->val_head_acc = val_acc;
    if (!want_cls)
        goto cleanup;
    if (nv > 0) { /* kept for the fit-only classifiers' validation figures */
        e->val_labels = malloc(sizeof(int32_t) * (size_t)nv);
        e->val_feats = malloc(sizeof(float) * (size_t)nv * D);
        if (!e->val_labels || !e->val_feats) {
            st = sotu_error(SOTU_ERR_NOMEM, "task %s: features of %d validation images", ts.name,
                            nv);
            goto cleanup;
        }
        memcpy(e->val_labels, lab + nf, sizeof(int32_t) * (size_t)nv);
        memcpy(e->val_feats, phi + (size_t)nf * D, sizeof(float) * (size_t)nv * D);
    }
    if ((st = sotu_cls_stats_init(&e->stats, ts.classes, D, M)) != SOTU_OK)
        goto cleanup;
    sotu_cls_project(R, M, D, phi, n, h);
    st = sotu_cls_stats_accumulate(&e->stats, phi, h, lab, held, n);

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

/* The classifiers' right answers on n images (features feats [n, D], local
 * labels) of the task at class offset ot with K classes: right[c * T + t]
 * and total[c * T + t] for ncm, ncm_til and, with ridge, ridge, ridge_til
 * (class-incremental over [0, C_use), task-incremental over the task's own
 * classes). */
static sotu_status classify_count(const sotu_cls_model *cm, const float *R, int M, int D,
                                  const float *feats, const int32_t *labels, int n, int C_use,
                                  int ot, int K, bool ridge, int T, int t, double *right,
                                  double *total)
{
    int32_t *pred = malloc(sizeof(int32_t) * (size_t)n);
    float *hbuf = ridge ? malloc(sizeof(float) * (size_t)n * M) : NULL;
    sotu_status st = SOTU_OK;
    if (!pred || (ridge && !hbuf)) {
        st = sotu_error(SOTU_ERR_NOMEM, "evaluation: predictions of %d images", n);
        goto cleanup;
    }
    if ((st = sotu_cls_predict_ncm(cm, feats, n, 0, C_use, pred)) != SOTU_OK)
        goto cleanup;
    right[SOTU_EV_NCM * T + t] = count_right(pred, labels, n, ot);
    if ((st = sotu_cls_predict_ncm(cm, feats, n, ot, ot + K, pred)) != SOTU_OK)
        goto cleanup;
    right[SOTU_EV_NCM_TIL * T + t] = count_right(pred, labels, n, ot);
    total[SOTU_EV_NCM * T + t] = total[SOTU_EV_NCM_TIL * T + t] = n;
    if (ridge) {
        sotu_cls_project(R, M, D, feats, n, hbuf);
        if ((st = sotu_cls_predict_ridge(cm, hbuf, n, 0, C_use, pred)) != SOTU_OK)
            goto cleanup;
        right[SOTU_EV_RIDGE * T + t] = count_right(pred, labels, n, ot);
        if ((st = sotu_cls_predict_ridge(cm, hbuf, n, ot, ot + K, pred)) != SOTU_OK)
            goto cleanup;
        right[SOTU_EV_RIDGE_TIL * T + t] = count_right(pred, labels, n, ot);
        total[SOTU_EV_RIDGE * T + t] = total[SOTU_EV_RIDGE_TIL * T + t] = n;
    }
cleanup:
    free(pred);
    free(hbuf);
    return st;
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
        sotu_cls_stats ts;
        sotu_cls_stats_wrap(&ts, K, global->D, global->M, buf.data);
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
    /* Right answers and images per classifier and task, then the same two
     * for the task heads on the validation hold-out, then the two per
     * classifier on the validation hold-out (the fit-only classifiers). */
    const int n_part = 4 * SOTU_EV_N * T + 2 * T;
    double *part = calloc((size_t)n_part, sizeof(double));
    double *sum = calloc((size_t)n_part, sizeof(double));
    task_eval *mine = calloc((size_t)T, sizeof *mine);
    sotu_cls_stats global = {0};
    sotu_cls_model cm = {0}, cm_fit = {0};
    /* The fit-only classifiers are fitted and sent only with a hold-out. */
    bool want_val = want_cls && in->cfg->data.val_fraction > 0;
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
        if (st == SOTU_OK && want_val)
            st = sotu_cls_model_init(&cm_fit, C, D, M);
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
    for (int t = 0; rank == 0 && in->val_acc && t < T; t++)
        in->val_acc[t] = NAN;
    for (int c = 0; rank == 0 && c < SOTU_EV_N; c++)
        for (int t = 0; in->cls_val_acc[c] && t < T; t++)
            in->cls_val_acc[c][t] = NAN;

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
                st = sotu_cls_fit(&global, C_use, want_ridge, &cm, want_val ? &cm_fit : NULL);
            if (!sotu_mpi_all_ok(&st, nranks, "evaluation classifiers"))
                goto cleanup;
            ev_bcast_bytes(cm.valid, sizeof(bool) * (size_t)C, nranks);
            ev_bcast_floats(cm.protos, (size_t)C * D, nranks);
            ev_bcast_floats(cm.W, (size_t)C * M, nranks);
            ev_bcast_bytes(&cm.lambda, sizeof cm.lambda, nranks);
            if (want_val) {
                ev_bcast_bytes(cm_fit.valid, sizeof(bool) * (size_t)C, nranks);
                ev_bcast_floats(cm_fit.protos, (size_t)C * D, nranks);
                ev_bcast_floats(cm_fit.W, (size_t)C * M, nranks);
            }
            if (rank == 0 && lambda && want_ridge)
                *lambda = cm.lambda;
        }

        /* part[c*T + t] right answers, part[(N + c)*T + t] images evaluated,
         * part[2N*T + t] and part[(2N + 1)*T + t] the same for validation,
         * vpart = part + (2N + 2)*T: vpart[c*T + t] and vpart[(N + c)*T + t]
         * the fit-only classifiers' on validation. */
        memset(part, 0, sizeof(double) * (size_t)n_part);
        double *vpart = part + (size_t)(2 * SOTU_EV_N + 2) * T;
        for (int64_t k = b; k < e && st == SOTU_OK; k++) {
            task_eval *te = &mine[k - b];
            int t = te->t, n = te->n_test, ot = off[t], K = te->K;
            double *right = part, *total = part + (size_t)SOTU_EV_N * T;
            if (want_val && te->n_val > 0 && te->val_feats &&
                (st = classify_count(&cm_fit, R, M, D, te->val_feats, te->val_labels, te->n_val,
                                     C_use, ot, K, want_ridge, T, t, vpart,
                                     vpart + (size_t)SOTU_EV_N * T)) != SOTU_OK)
                break;
            if (!isnan(te->head_acc)) {
                right[SOTU_EV_TASK_HEADS * T + t] = round(te->head_acc * n);
                total[SOTU_EV_TASK_HEADS * T + t] = n;
            }
            if (!isnan(te->val_head_acc)) {
                part[(size_t)2 * SOTU_EV_N * T + t] = round(te->val_head_acc * te->n_val);
                part[(size_t)(2 * SOTU_EV_N + 1) * T + t] = te->n_val;
            }
            if (!want_cls || n == 0)
                continue;
            if ((st = classify_count(&cm, R, M, D, te->feats, te->labels, n, C_use, ot, K,
                                     want_ridge, T, t, right, total)) != SOTU_OK)
                break;
        }
        for (int64_t k = b; k < e; k++)
            task_eval_free(&mine[k - b]);
        if (!sotu_mpi_all_ok(&st, nranks, "evaluation"))
            goto cleanup;
        ev_sum_to_root(part, sum, n_part, nranks);
        if (rank == 0 && in->val_acc)
            for (int t = 0; t <= row; t++) {
                double n = sum[(size_t)(2 * SOTU_EV_N + 1) * T + t];
                in->val_acc[t] = n > 0 ? sum[(size_t)2 * SOTU_EV_N * T + t] / n : NAN;
            }
        const double *vsum = sum + (size_t)(2 * SOTU_EV_N + 2) * T;
        for (int c = 0; rank == 0 && c < SOTU_EV_N; c++) {
            if (!in->cls_val_acc[c] || c == SOTU_EV_TASK_HEADS || !in->want[c])
                continue;
            for (int t = 0; t <= row; t++) {
                double n = vsum[(size_t)(SOTU_EV_N + c) * T + t];
                in->cls_val_acc[c][t] = n > 0 ? vsum[(size_t)c * T + t] / n : NAN;
            }
        }
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
    sotu_cls_stats_free(&global);
    sotu_cls_model_free(&cm);
    sotu_cls_model_free(&cm_fit);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Reports                                                                   */
/* ------------------------------------------------------------------------ */

void sotu_eval_method_finish(sotu_eval_method *m, int T)
{
    m->cls_val_acc[SOTU_EV_TASK_HEADS] = m->val_acc;
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
    m->val_acc = NAN;
    for (int c = 0; c < SOTU_EV_N; c++)
        m->cls_val_acc[c] = NAN;
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
    bool any = false;
    for (int i = 0; i < rep->n_methods; i++)
        any |= !isnan(rep->methods[i].val_acc);
    if (any) {
        fprintf(f, "validation (task heads, last row; sweeps rank by it unless eval.rank_by names another):");
        for (int i = 0; i < rep->n_methods; i++)
            if (!isnan(rep->methods[i].val_acc))
                fprintf(f, " %s %.4f", rep->methods[i].name, rep->methods[i].val_acc);
        fprintf(f, "\n");
    }
    for (int c = 0; c < SOTU_EV_N; c++) {
        if (c == SOTU_EV_TASK_HEADS)
            continue;
        any = false;
        for (int i = 0; i < rep->n_methods; i++)
            any |= !isnan(rep->methods[i].cls_val_acc[c]);
        if (!any)
            continue;
        fprintf(f, "validation (%s fitted on the fitting images only):",
                sotu_eval_classifier_name(c));
        for (int i = 0; i < rep->n_methods; i++)
            if (!isnan(rep->methods[i].cls_val_acc[c]))
                fprintf(f, " %s %.4f", rep->methods[i].name, rep->methods[i].cls_val_acc[c]);
        fprintf(f, "\n");
    }
}
