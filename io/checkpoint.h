/* Run checkpoints (HDF5): the merged model of a run with everything needed
 * to evaluate, predict with and explain it. `sotu train` and `sotu merge`
 * write it; `sotu eval`, `sotu predict` and `sotu inspect` read it.
 *
 * Layout, format version 1 (T tasks, D model width, K_t classes of task t):
 *
 *   /                          attrs: format "sotu-checkpoint" (string),
 *                              format_version 1 (int32), sotu_version,
 *                              created (ISO 8601 UTC, "2024-05-01T12:00:00Z"),
 *                              config (the run's YAML text, "" if none),
 *                              provenance (where the run had it):
 *                              theta0_xxh64, manifest_xxh64 (16 hex
 *                              digits, io/provenance.h), model_pretrained,
 *                              sotu_commit (io/h5util.h),
 *                              and the model config as int32 attrs
 *                              image_size, channels, patch, dim, depth,
 *                              heads, mlp_hidden, classes (io/weights.h)
 *   /merged/<timm name>        float32, the merged weights at merge keep;
 *                              h5py.File(p)["merged"] is a state dict that
 *                              PyTorch load_state_dict(strict=True) accepts
 *   /keeps/<label>/merged/...  optional: the same weights merged with a
 *                              smaller keep (masks are nested, so one run
 *                              serves a keep sweep); <label> is the keep
 *                              printed with "%.6g" ("0.05"), and the group
 *                              /keeps/<label> has a double attr keep.
 *                              Chosen over one file per keep so a run stays
 *                              one self-describing file.
 *   /heads/<task>/weight       float32 [K_t, D], the task's own head
 *   /heads/<task>/bias         float32 [K_t]; absent for a failed task
 *   /tasks/<task>              group with attrs index (int32, 0..T-1 in
 *                              stream order), classes (int32), keep, lr,
 *                              train_seconds, finetuned_acc (doubles, NaN
 *                              when not measured), seed (uint64), epochs
 *                              (int32), kept_values, bytes (int64), status
 *                              ("ok" | "failed" | "not_run": not trained,
 *                              e.g. stopped by a signal | "left_out": a
 *                              `sotu merge` without its verified delta)
 *                              root attr partial (int32): 1 when some task
 *                              is not "ok", i.e. /merged lacks its delta
 *                              class_names (1-D string array of `classes`
 *                              names, from the task file; absent in older
 *                              checkpoints)
 *   /merge/cosine              float64 [T, T], cosine of the masked deltas
 *                              (by task index); attrs collision_rate (double),
 *                              mode ("sum" | "mean" | "disjoint"), scale
 *                              (double), keep (double, the keep of /merged)
 *   /eval/acc_matrix           float64 [T, T], A[i][j] = accuracy on task j
 *                              after merging tasks 0..i, NaN where not
 *                              evaluated; every other attr is a double
 *                              summary figure (e.g. final_avg_acc)
 *
 * Strings are variable-length UTF-8 scalars, so h5py returns str. Task names
 * are HDF5 link names: non-empty, without '/', not "." or "..".
 *
 * Every float dataset is one chunk with a Fletcher32 checksum, which
 * libhdf5 verifies on every read (h5py too): a damaged dataset fails to
 * read with SOTU_ERR_DATA naming the file and the dataset. Checkpoints
 * written before checksums were added (contiguous datasets) read the same
 * way, unverified.
 *
 * Writing is atomic (io/h5util.h, sotu_h5_write_file): the file is built in
 * memory, written under a temporary name, fsynced and renamed over the
 * path. A failed write (disk full, quota, file-size limit, no permission)
 * is SOTU_ERR_IO naming the path and strerror, leaves the previous
 * checkpoint untouched and no temporary file.
 */
#ifndef SOTU_IO_CHECKPOINT_H
#define SOTU_IO_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "common/tensor.h"
#include "io/provenance.h"

#define SOTU_CHECKPOINT_FORMAT "sotu-checkpoint"
#define SOTU_CHECKPOINT_VERSION 1
#define SOTU_CHECKPOINT_NAME_MAX 128

/* ---- writing: plain structs the coordinator fills; the writer only reads
 * them and keeps no pointer after returning ---- */

typedef struct {
    const char *name;          /* task name, the link name under /tasks and /heads */
    int index;                 /* 0..T-1, stream order; indexes cosine and acc_matrix */
    int classes;               /* K_t */
    double keep;
    uint64_t seed;
    double lr;
    int epochs;
    double train_seconds;
    double finetuned_acc;      /* NaN if not measured */
    int64_t kept_values;
    int64_t bytes;             /* bytes of the delta as shipped */
    bool failed;               /* not merged (status "failed"); its head may be NULL */
    const char *status;        /* NULL: "failed" or "ok" by failed; else one of
                                  the statuses above, "ok" exactly when !failed */
    const float *head_weight;  /* [K_t, D] or NULL (no /heads/<task>) */
    const float *head_bias;    /* [K_t], NULL exactly when head_weight is */
    const char *const *class_names; /* [K_t], NULL: not recorded */
} sotu_checkpoint_task;

typedef struct {
    const char *name;
    double value;
} sotu_checkpoint_figure;

typedef struct {
    double keep;               /* < the primary keep */
    const float *merged;       /* [table->total] */
} sotu_checkpoint_keep;

typedef struct {
    const char *config_yaml;          /* NULL is written as "" */
    sotu_vit_config model;
    const sotu_tensor_table *table;   /* layout of every merged block */
    const float *merged;              /* [table->total] */
    double keep;                      /* keep of /merged */

    int n_tasks;                      /* T */
    const sotu_checkpoint_task *tasks;/* [T], any order, indices 0..T-1 once each */

    const double *cosine;             /* [T*T] row-major, NULL: written as NaN */
    double collision_rate;
    const char *merge_mode;           /* "sum" | "mean" | "disjoint" */
    double merge_scale;

    int n_keeps;                      /* extra merged sets under /keeps */
    const sotu_checkpoint_keep *keeps;

    const double *acc_matrix;         /* [T*T] row-major, NaN where not evaluated; NULL: all NaN */
    int n_summary;
    const sotu_checkpoint_figure *summary;

    const sotu_provenance *prov;      /* θ0 fingerprint, pretrained, commit; NULL: not written */
    uint64_t manifest_xxh64;          /* the manifest's checksum, with prov */
} sotu_checkpoint;

/* Writes ck to path atomically (see above). Invalid input (a bad task name,
 * indices that are not 0..T-1 once each, head without bias) is
 * SOTU_ERR_DATA; any HDF5 or file-system failure is SOTU_ERR_IO naming
 * path, and the file previously at path is left as it was. */
sotu_status sotu_checkpoint_write(const char *path, const sotu_checkpoint *ck);

/* ---- reading ---- */

typedef struct {
    char name[SOTU_CHECKPOINT_NAME_MAX];
    int index, classes, epochs;
    double keep, lr, train_seconds, finetuned_acc;
    uint64_t seed;
    int64_t kept_values, bytes;
    bool failed;                      /* status is not "ok": not merged */
    char status[16];                  /* "ok" | "failed" | "not_run" | "left_out" */
    float *head_weight;               /* [classes, D], NULL if the file has no head */
    float *head_bias;                 /* [classes] */
    char (*class_names)[SOTU_CHECKPOINT_NAME_MAX]; /* [classes], NULL if not recorded */
} sotu_checkpoint_task_info;

typedef struct {
    int format_version;
    char sotu_version[32];
    char created[40];
    sotu_provenance_attrs prov;       /* "" fields: not recorded (older sotu) */
    char *config_yaml;                /* malloc'ed, "" if none */
    sotu_vit_config model;

    int n_merged_tensors;             /* datasets under /merged */
    int64_t merged_values;            /* their elements in total */
    double keep;                      /* keep of /merged */
    int n_keeps;                      /* extra merged sets under /keeps */
    double *keeps;                    /* [n_keeps], descending */

    int n_tasks;
    sotu_checkpoint_task_info *tasks; /* [T], sorted by index (tasks[i].index == i) */

    double *cosine;                   /* [T*T] */
    double collision_rate;
    char merge_mode[16];
    double merge_scale;

    double *acc_matrix;               /* [T*T] */
    int n_summary;
    char (*summary_names)[64];        /* [n_summary] */
    double *summary_values;           /* [n_summary] */
} sotu_checkpoint_info;

/* Reads and validates everything but the merged weights: format and
 * version, model config, tasks (indices 0..T-1 once each), heads ([K_t, D]
 * and [K_t]), cosine and acc_matrix ([T, T]). SOTU_ERR_IO if the file
 * cannot be opened; SOTU_ERR_DATA naming the file and the object that is
 * missing or has the wrong type or shape. On failure info is freed and
 * zeroed. */
sotu_status sotu_checkpoint_read_info(const char *path, sotu_checkpoint_info *info);

/* Reads the merged weights into params laid out by tab (built from
 * info.model, e.g. by vit_init): the primary /merged when keep <= 0, else
 * /keeps/<keep>/merged (SOTU_ERR_DATA listing the keeps present if absent).
 * flags as sotu_weights_read_into (SOTU_WEIGHTS_SKIP_HEAD). A missing
 * tensor or a shape that differs from tab is SOTU_ERR_DATA. */
sotu_status sotu_checkpoint_read_merged(const char *path, double keep,
                                        const sotu_tensor_table *tab, float *params, int flags);

/* Both of the above: info, then the primary merged weights into params. */
sotu_status sotu_checkpoint_read(const char *path, const sotu_tensor_table *tab, float *params,
                                 sotu_checkpoint_info *info);

/* The index in info->tasks of the task called name, or -1. */
int sotu_checkpoint_find_task(const sotu_checkpoint_info *info, const char *name);

void sotu_checkpoint_info_free(sotu_checkpoint_info *info); /* accepts NULL and zeroed */

/* The /keeps group label of a keep value ("%.6g") into dst. */
void sotu_checkpoint_keep_label(char *dst, size_t cap, double keep);

#endif
