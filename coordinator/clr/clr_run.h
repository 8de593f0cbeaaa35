/* The state of a CLR run (method: clr) as the coordinator keeps it; the
 * run directory is the state, so a restarted coordinator rebuilds it:
 *
 *   <output.dir>/config.yaml              resolved configuration of the run
 *   <output.dir>/modules/<task>.clrm      each finished task's module
 *                                         (io/module.h), atomic
 *   <output.dir>/modules/<task>.json      its worker report (atomic, after .clrm)
 *   <output.dir>/modules/<task>.<baseline>.json   a baseline's result
 *                                         (frozen | finetuned), atomic
 *   <output.dir>/checkpoint.h5            backbone, modules, evaluation (atomic;
 *                                         layout in coordinator/clr/clr_eval.h)
 *   <output.dir>/metrics.jsonl            one JSON object per event, appended
 *   <output.dir>/report.{md,html}, summary.csv
 *
 * Jobs: job = kind * T + task for the kinds of worker/clr_task.h; the module
 * jobs always, a baseline's jobs when eval.baselines lists it. No MPI here.
 */
#ifndef SOTU_COORDINATOR_CLR_CLR_RUN_H
#define SOTU_COORDINATOR_CLR_CLR_RUN_H

#include <stdbool.h>
#include <stdio.h>

#include <zstd.h>

#include "common/config.h"
#include "coordinator/run.h"
#include "io/module.h"
#include "io/taskset.h"
#include "worker/clr_task.h"
#include "worker/resnet.h"

typedef struct {
    bool done[CLR_JOB_KINDS];    /* module verified / baseline result recorded */
    bool failed[CLR_JOB_KINDS];
    sotu_task_report report[CLR_JOB_KINDS]; /* finetuned_acc: the job's test accuracy */
    sotu_module module;          /* decoded, laid out by the task's module layout */
    int classes;
    int64_t bytes;               /* the .clrm as shipped */
} clr_run_task;

typedef struct {
    sotu_config cfg;
    char *config_yaml;
    sotu_manifest man;           /* shallow copy; the caller keeps it alive */
    int T;
    const resnet_model *base;    /* the plain frozen backbone (borrowed) */
    resnet_clr clr;              /* clr.variant */
    bool want[CLR_JOB_KINDS];    /* the job kinds of this run */
    char dir[SOTU_PATH_MAX];
    char modules_dir[SOTU_PATH_MAX];
    char checkpoint_path[SOTU_PATH_MAX];
    clr_run_task *tasks;         /* [T] */
    FILE *metrics;
    ZSTD_DCtx *dctx;
    sotu_provenance prov;        /* what this run trains with (task_file 0) */
    uint64_t manifest_xxh64;     /* checksum of the manifest file */
    bool retrain_changed;        /* load: retrain stored modules trained otherwise */
} clr_run;

/* Checks the config for CLR (clr.variant clr | clr-full, eval.baselines
 * only frozen/finetuned among the ones that apply), sets the paths and job
 * kinds, and the provenance (θ0 = base's parameters and running statistics).
 * With create (the coordinator) makes the directories, writes config.yaml
 * if there is none yet and opens metrics.jsonl. */
sotu_status clr_run_init(clr_run *run, const sotu_config *cfg, const sotu_manifest *man,
                         const resnet_model *base, bool create);
void clr_run_free(clr_run *run);

/* The module layout of task t (its classes on the run's backbone and
 * variant); free with sotu_task_table_free. */
sotu_status clr_run_layout(const clr_run *run, int t, sotu_tensor_table *layout);

/* Verifies and records job (kind, t)'s result: a module message bytes[0,
 * n) is decoded against the task's layout, its task index, name and kind
 * checked against the run; a baseline carries no bytes. With persist, writes
 * the module then its .json (or the baseline's .json) atomically and logs a
 * metrics event. A bad message leaves the task failed (logged, metrics)
 * and returns the decoder's status; a bad file (persist false) only
 * returns it. */
sotu_status clr_run_accept(clr_run *run, clr_job_kind kind, int t, const void *bytes, size_t n,
                           const sotu_task_report *rep, bool persist);

/* Marks job (kind, t) failed with the worker's report (logged, metrics). */
void clr_run_fail(clr_run *run, clr_job_kind kind, int t, const sotu_task_report *rep);

/* Loads every module and baseline result in modules/ that verifies
 * (resume). A corrupt or partial file, or a module of an older format, is
 * logged and its job redone. A module whose provenance differs from the
 * run's is refused (SOTU_ERR_CONFIG, nothing loaded) or, for other settings
 * or task data with run->retrain_changed, retrained, as in
 * sotu_run_load_deltas. *n_loaded gets the number of jobs now done. */
sotu_status clr_run_load(clr_run *run, int *n_loaded);

/* Writes the run's config.yaml atomically (after clr_run_load verified). */
sotu_status clr_run_write_config(const clr_run *run);

/* Number of .clrm files in the run's modules directory. */
int clr_run_count_module_files(const clr_run *run);

/* Appends one JSON object (a jansson json_t*, stolen) to metrics.jsonl. */
void clr_run_metric(clr_run *run, const char *event, void *json_object);

#endif
