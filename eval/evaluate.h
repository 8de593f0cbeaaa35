/* Continual-learning evaluation: accuracy matrices of the backbones a
 * method gives after each task, distributed over ranks. Needs no run state:
 * the caller hands in the tasks, the heads and a function that builds each
 * row's backbone.
 *
 * Classifiers (each gives an accuracy matrix, eval/metrics.h):
 *   task_heads  task-incremental: task j's own head on the backbone
 *   ncm, ridge  class-incremental over the classes of the tasks merged so
 *               far (global label = task offset + local label), fitted on
 *               up to eval.fit_per_task training images per task (the
 *               validation hold-out excluded) and the task's validation
 *               images, on which the ridge λ is picked (without a hold-out:
 *               a fifth of the fitting images; eval/classifier.h)
 * Validation: every task's training split loses its data.val_fraction
 * hold-out (io/taskset.h) before anything trains on it; each method's
 * task-head accuracy on those images (val_acc) is what choices use (sweep
 * ranking, eval.rank_by); test accuracy is reported, never used to choose.
 * The fitted classifiers' validation figures (cls_val_acc) come from the
 * same hold-out images classified by classifiers fitted on the fitting
 * images only (their prototypes and ridge W never saw the hold-out, which
 * the reported classifiers use for λ and the refit; eval/classifier.h), at
 * the same λ, class-incremental over the classes merged at that row.
 *   ncm_til, ridge_til  the same classifiers restricted to task j's classes
 *               (task-incremental without the task's own head)
 * Row i of a matrix uses the backbone after merging tasks 0..i; rows are
 * thinned by eval.every (metrics.h) and entries j > i are NaN.
 *
 * Methods (the rows of a report, sotu_eval_report): a SoTU run's are
 * filled by coordinator/evaluate_run.h (sotu, dense, frozen, sequential,
 * finetuned, sotu@<keep>), CLR's by coordinator/clr/clr_eval.h.
 *
 * Distribution: rank 0 builds each row's backbone and broadcasts it; the
 * tasks are shared over ranks (sotu_share); each rank computes features,
 * head accuracies and per-task classifier sums for its share; rank 0 adds
 * the per-task sums in task order (so any number of ranks gives bitwise the
 * same classifiers), fits, broadcasts the classifiers; the ranks count right
 * answers and the counts are summed on rank 0. With nranks == 1 no MPI call
 * is made. Every rank must call these functions together.
 */
#ifndef SOTU_EVAL_EVALUATE_H
#define SOTU_EVAL_EVALUATE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"
#include "common/status.h"
#include "eval/metrics.h"
#include "io/taskset.h"
#include "worker/vit.h"

enum {
    SOTU_EV_TASK_HEADS = 0,
    SOTU_EV_NCM,
    SOTU_EV_RIDGE,
    SOTU_EV_NCM_TIL,
    SOTU_EV_RIDGE_TIL,
    SOTU_EV_N
};

/* want[c]: classifier c is computed under cfg's eval.classifiers
 * ("ncm" and "ridge" bring their task-restricted variants along). */
void sotu_eval_wanted(const sotu_config *cfg, bool want[SOTU_EV_N]);

/* "task_heads", "ncm", "ridge", "ncm_til", "ridge_til". */
const char *sotu_eval_classifier_name(int c);
/* The SOTU_EV_* called name, -1 if none. */
int sotu_eval_classifier_index(const char *name);
/* True for the task-incremental ones (task id given). */
bool sotu_eval_classifier_til(int c);

/* Writes the backbone after merging tasks 0..row into params (rank 0). */
typedef sotu_status (*sotu_eval_backbone_fn)(void *ctx, int row, float *params);

typedef struct {
    const vit_config *vc;          /* the backbone's config (pretrained head) */
    size_t n_params;               /* its parameter count (the backbone block) */
    const sotu_manifest *man;      /* tasks in stream order */
    const sotu_config *cfg;        /* data.*, train.batch_size/seed, eval.* */
    const bool *active;            /* [T], rank 0: tasks evaluated (others NaN) */
    float *const *head_w;          /* [T], rank 0: [K_t, D] heads, NULL entries: none */
    float *const *head_b;          /* [T], rank 0: [K_t] */
    sotu_eval_backbone_fn backbone;
    void *ctx;
    bool last_row_only;            /* evaluate only row T-1 (ignores eval.every) */
    bool want[SOTU_EV_N];          /* classifiers to compute */
    const char *label;             /* for the log, e.g. "sotu" */
    double *val_acc;               /* [T], rank 0, may be NULL: task-head accuracy on each
                                    * task's validation hold-out (data.val_fraction) on the
                                    * last row evaluated; NaN without a head or hold-out */
    double *cls_val_acc[SOTU_EV_N]; /* [T] each, rank 0, may be NULL (always for task_heads:
                                    * val_acc): the wanted fitted classifier's accuracy on
                                    * each task's hold-out on the last row evaluated, fitted
                                    * on the fitting images only; NaN without a hold-out */
} sotu_eval_input;

/* Fills acc[c] [T*T] on rank 0 for each wanted classifier c (caller-owned;
 * set to NaN here, then the evaluated rows). *lambda (rank 0, may be NULL)
 * gets the ridge λ of the last row. Errors on any rank fail every rank. */
sotu_status sotu_evaluate_matrices(const sotu_eval_input *in, int rank, int nranks,
                                   double *acc[SOTU_EV_N], double *lambda);

#define SOTU_EVAL_METHODS_MAX (8 + SOTU_LIST_MAX)

typedef struct {
    char name[32];                 /* sotu | dense | frozen | sequential | finetuned | sotu@k */
    double keep;                   /* NaN when it does not apply */
    bool last_row_only;
    double *acc[SOTU_EV_N];        /* [T*T] or NULL (classifier not computed) */
    sotu_cl_metrics metrics[SOTU_EV_N];
    double lambda;                 /* ridge λ of the last row, NaN if none */
    double val_acc;                /* mean task-head accuracy on the validation hold-outs
                                    * (last row); NaN without them */
    double cls_val_acc[SOTU_EV_N]; /* the same per classifier (cls_val_acc of the input,
                                    * mean over the tasks of the last row, as final_avg_acc);
                                    * [SOTU_EV_TASK_HEADS] is val_acc; NaN when not computed */
    double seconds;
    bool reused;                   /* taken from a sotu_eval_cache, not evaluated again */
} sotu_eval_method;

typedef struct {
    int T;
    int n_methods;
    sotu_eval_method methods[SOTU_EVAL_METHODS_MAX];
    double seconds;
} sotu_eval_report;

/* Metrics of every matrix of m (rank 0 after evaluation; also for callers
 * that fill methods themselves). */
void sotu_eval_method_finish(sotu_eval_method *m, int T);

/* The method called name, or NULL. */
const sotu_eval_method *sotu_eval_report_find(const sotu_eval_report *rep, const char *name);

/* Adds an empty method to rep (acc arrays allocated NaN for each wanted
 * classifier); NULL with SOTU_ERR_NOMEM or when rep is full. */
sotu_eval_method *sotu_eval_report_add(sotu_eval_report *rep, const char *name, double keep,
                                       const bool want[SOTU_EV_N]);

void sotu_eval_report_free(sotu_eval_report *rep); /* accepts NULL and zeroed */

/* Prints the summary table of every method (one line per method and
 * classifier: final average, average incremental, forgetting, BWT). */
void sotu_eval_report_print(const sotu_eval_report *rep, FILE *f);

#endif
