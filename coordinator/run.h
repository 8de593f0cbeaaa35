/* The state of one run, as the coordinator keeps it: the run directory is
 * the state, so a restarted coordinator rebuilds this from disk.
 *
 *   <output.dir>/config.yaml          resolved configuration of the run (written
 *                                     when the stored deltas verified against it:
 *                                     never what they were not trained with)
 *   <output.dir>/deltas/<task>.sotud  each finished task's delta (atomic)
 *   <output.dir>/deltas/<task>.json   its worker report (atomic, after .sotud)
 *   <output.dir>/deltas/<task>.steps.jsonl  its per-step scalars (atomic)
 *   <output.dir>/steps.jsonl, steps.csv     every task's, joined in task order
 *   <output.dir>/checkpoint.h5        merged weights and statistics (atomic)
 *   <output.dir>/metrics.jsonl        one JSON object per event, appended
 *
 * No MPI here: coordinator/train.c drives ranks, and `sotu merge` uses the same
 * functions in one process.
 */
#ifndef SOTU_COORDINATOR_RUN_H
#define SOTU_COORDINATOR_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <zstd.h>

#include "common/config.h"
#include "coordinator/merge.h"
#include "eval/report.h"
#include "io/checkpoint.h"
#include "io/delta.h"
#include "io/taskset.h"
#include "worker/vit.h"

/* What a worker reports with its delta (sent before the .sotud bytes). */
typedef struct {
    int32_t task;
    int32_t status;          /* sotu_status of the worker's attempt */
    double finetuned_acc;    /* [0, 1] */
    double val_acc;          /* on the validation hold-out, [0, 1]; NaN without one */
    double train_loss;
    double seconds;
    int64_t steps;
    int32_t rank;
    int64_t scalars_bytes;   /* per-step scalars (JSONL text) sent after the message */
    char error[480];         /* the worker's message when status != OK */
} sotu_task_report;

typedef struct {
    bool done, failed;
    sotu_task_report report;
    sotu_delta delta;        /* backbone tensors only; the head is below */
    int classes;
    float *head_weight;      /* [classes, D] */
    float *head_bias;        /* [classes] */
    int64_t kept_values;     /* backbone values at the primary keep */
    int64_t bytes;           /* the .sotud as shipped */
} sotu_run_task;

typedef struct {
    sotu_config cfg;
    char *config_yaml;
    sotu_manifest man;
    int T;
    vit_config vc;                 /* the backbone's (pretrained head) */
    sotu_tensor_table table;       /* owned copy of the backbone table */
    float *theta0;                 /* [table.total] */
    int n_keeps;
    double keeps[SOTU_LIST_MAX];   /* [0] is the primary keep (/merged) */
    double keep_ship;              /* the largest (1 with the dense baseline): what workers cut at */
    sotu_merge_mode mode;
    char dir[SOTU_PATH_MAX];
    char deltas_dir[SOTU_PATH_MAX];
    char checkpoint_path[SOTU_PATH_MAX];
    sotu_run_task *tasks;          /* [T] */
    FILE *metrics;                 /* metrics.jsonl, append mode */
    ZSTD_DCtx *dctx;
    sotu_provenance prov;          /* what this run trains with (task_file 0) */
    uint64_t manifest_xxh64;       /* checksum of the manifest file */
    bool retrain_changed;          /* load: retrain stored deltas trained otherwise */
    /* `sotu merge`: a task without a verified delta is left out of this
     * merge (status "left_out"), not trained again; results go to dir (a
     * new result directory) under the name title. */
    bool merging;
    char title[SOTU_PATH_MAX];     /* how the reports name the run; "" = dir */
} sotu_run;

/* Resolves keeps (auto = 1/T), the merge mode and the paths of a run over
 * man with backbone table/θ0 (copied; its fingerprint, cfg's training text
 * and the manifest's checksum go to run->prov and run->manifest_xxh64).
 * With create set (the coordinator), makes the directories, writes
 * config.yaml if there is none yet (sotu_run_write_config rewrites it once
 * the stored deltas verified) and opens metrics.jsonl. */
sotu_status sotu_run_init(sotu_run *run, const sotu_config *cfg, const sotu_manifest *man,
                          const vit_config *vc, const sotu_tensor_table *table,
                          const float *theta0, bool create);
void sotu_run_free(sotu_run *run);

/* Verifies and records task t's delta message bytes[0, n): decoded against
 * the task's table, task index/seed/keep checked against the run, the head
 * taken out, its provenance compared with the run's (sotu_provenance_compare:
 * θ0, training keys, task file). With persist (a worker's message), writes
 * deltas/<task>.sotud then .json atomically and logs a metrics event; a bad
 * delta leaves the task failed (not merged) and returns the status. A stored
 * file (persist false) only returns the status. */
sotu_status sotu_run_accept(sotu_run *run, int t, const void *bytes, size_t n,
                            const sotu_task_report *rep, bool persist);

/* Marks t failed with the worker's report (logged and in metrics.jsonl). */
void sotu_run_fail(sotu_run *run, int t, const sotu_task_report *rep);

/* Loads every deltas/<task>.sotud that verifies (resume; sotu merge).
 * A corrupt or partial file, or one of an older format, is logged: its task
 * is redone by a resume, left out by a merge (run->merging). A delta whose provenance differs from the
 * run's (sotu_provenance_compare: another θ0, other training keys, a task
 * file that changed) is refused: SOTU_ERR_CONFIG naming the file and the
 * difference, nothing loaded; with run->retrain_changed, other settings or
 * a changed task file only log that the task is retrained. *n_loaded gets
 * the number of tasks now done. */
sotu_status sotu_run_load_deltas(sotu_run *run, int *n_loaded);

/* What a user can do about a stored delta or module refused for other
 * settings (the end of sotu_provenance_compare's message). */
extern const char *const sotu_retrain_hint;

/* Writes run->config_yaml to <dir>/config.yaml atomically: after the
 * stored deltas verified against the run's configuration. */
sotu_status sotu_run_write_config(const sotu_run *run);

/* A whole provenance (io/provenance.h) as a member `key` of the jansson
 * object json_object (hashes as 16 hex digits), for results stored as JSON
 * (CLR's baseline results); and back: false when the member is absent or
 * incomplete (a file of an older sotu). */
void sotu_provenance_json_put(void *json_object, const char *key, const sotu_provenance *p);
bool sotu_provenance_json_get(const void *json_object, const char *key, sotu_provenance *p);

/* The provenance fields every output records, as JSON members added to
 * the jansson object json_object: theta0_xxh64, manifest_xxh64 (hex),
 * pretrained, sotu_version, sotu_commit. */
void sotu_run_provenance_json(const sotu_provenance *prov, uint64_t manifest_xxh64,
                              void *json_object);

/* Task t's status as checkpoints and reports name it: "ok" (done),
 * "failed" (its training or its delta failed), "left_out" (merging: no
 * verified delta) or "not_run" (not trained, e.g. stopped by a signal). */
const char *sotu_run_task_status(const sotu_run *run, int t);

/* Number of .sotud files in the run's delta directory. */
int sotu_run_count_delta_files(const sotu_run *run);

/* ---- pieces every method's run directory shares (coordinator/clr/clr_run.h) ---- */

/* Makes subdir (with parents), writes dir/config.yaml atomically unless
 * one exists (a resumed run rewrites it only once its stored results
 * verified against the new configuration) and opens dir/metrics.jsonl for
 * appending into *metrics. */
sotu_status sotu_run_dir_create(const char *dir, const char *subdir, const char *config_yaml,
                                FILE **metrics);

/* Number of files in directory path whose names end with suffix (0 if the
 * directory cannot be read). */
int sotu_count_files_with_suffix(const char *path, const char *suffix);

/* Writes a worker report (a jansson json_t*, stolen) to path as indented
 * JSON, atomically. */
sotu_status sotu_task_report_store(const char *path, void *json_object);

/* Per-step scalars (train.log_every): task t's JSONL lines text[0, n) are
 * stored atomically as deltas/<task>.steps.jsonl (rank 0, once its delta is
 * accepted). sotu_run_write_scalars joins the stored files of the done tasks
 * in task order into run->dir/steps.jsonl and steps.csv (columns
 * SOTU_SCALAR_COLUMNS; the same rows), so any number of ranks writes the
 * same files but for the timing columns images_per_s and seconds. A done
 * task without a stored file (trained with log_every 0, or by a sotu
 * without it) is named in *missing (may be NULL) and left out. */
#define SOTU_SCALAR_COLUMNS \
    "task,task_index,phase,epoch,step,loss,lr,grad_norm,images,images_per_s,seconds"
sotu_status sotu_run_store_scalars(const sotu_run *run, int t, const char *text, size_t n);

/* curves (may be NULL): [run->T] training curves (eval/report.h) filled
 * from the files (free with sotu_scalar_curves_free). */
sotu_status sotu_run_write_scalars(const sotu_run *run, int *missing, sotu_scalar_curve *curves);
void sotu_scalar_curves_free(sotu_scalar_curve *curves, int T);

/* Reads the figures of a stored worker report (finetuned_acc, train_loss,
 * seconds, steps, rank) into rep, defaults (NaN accuracy, rank -1, task t)
 * where absent; returns the parsed json_t* for the caller's own fields
 * (json_decref it), NULL when path is missing or not JSON. */
void *sotu_task_report_load(const char *path, int t, sotu_task_report *rep);

/* merged = θ0 + λ Σ δ̂ over the done tasks at keep (0 = primary), in task
 * order. stats may be NULL. */
sotu_status sotu_run_merge(sotu_run *run, double keep, float *merged, sotu_merge_stats *stats);

/* sotu_run_merge over the done tasks with index < n_prefix only (row
 * n_prefix - 1 of the accuracy matrix). */
sotu_status sotu_run_merge_prefix(sotu_run *run, double keep, int n_prefix, float *merged,
                                  sotu_merge_stats *stats);

/* Writes the checkpoint: /merged at the primary keep (merged), extra keeps
 * merged here, heads, task records, cosine from stats (may be NULL), and the
 * accuracy matrix acc [T*T] (may be NULL). path NULL = run's checkpoint. */
sotu_status sotu_run_write_checkpoint(sotu_run *run, const char *path, const float *merged,
                                      const sotu_merge_stats *stats, const double *acc);

/* The same with summary figures as attrs of /eval (io/checkpoint.h). */
sotu_status sotu_run_write_checkpoint_eval(sotu_run *run, const char *path, const float *merged,
                                           const sotu_merge_stats *stats, const double *acc,
                                           int n_summary, const sotu_checkpoint_figure *summary);

/* Appends one JSON object (a jansson json_t*, stolen) to metrics.jsonl with
 * "event" and "time" fields added. */
void sotu_run_metric(sotu_run *run, const char *event, void *json_object);

/* The same on any open metrics file (NULL: the object is only released). A
 * record that cannot be written is warned about and leaves ferror(metrics)
 * set; sotu_finish_end turns that into the run's error. */
void sotu_metrics_append(FILE *metrics, const char *event, void *json_object);

/* A figure for a metrics object (a new jansson json_t*): the number, or
 * null for NaN (jansson refuses NaN, and the whole line would be lost). */
void *sotu_metrics_number(double v);

/* Prints the per-task table (fine-tuned and merged accuracy, kept values,
 * bytes) to f. merged_acc [T] may hold NaN. */
void sotu_run_print_table(const sotu_run *run, const double *merged_acc, FILE *f);

#endif
