/* Run configuration: a YAML file plus `--set a.b=value` overrides.
 *
 * Every key has a type, a default and a range, listed once in the key table
 * in config.c; the struct below is what the rest of sotu reads. Loading
 * rejects an unknown key, a wrong type or an out-of-range value with a
 * message naming the key, the file and the line (or the --set argument).
 * Relative paths in the file are resolved against the file's directory
 * (model.pretrained, data.manifest, pretrain.data_dir, pretrain.out, so that
 * pretrain.out and model.pretrained name the same file when written alike);
 * output.dir is relative to the working directory, as a user running a job
 * expects. Defaults and --set values are relative to the working directory.
 */
#ifndef SOTU_COMMON_CONFIG_H
#define SOTU_COMMON_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/status.h"

#define SOTU_PATH_MAX 1024
#define SOTU_LIST_MAX 16
#define SOTU_SWEEP_MAX 8
#define SOTU_CONFIG_AUTO (-1.0) /* a number key set to `auto` */

/* One sweep axis: `sweep: {train.lr: [1e-3, 3e-4]}`. Each value was checked
 * against the key when loaded; apply one with sotu_config_set("key=value"). */
typedef struct {
    char key[64];                     /* e.g. "train.lr" */
    int n_values;
    char values[SOTU_LIST_MAX][64];   /* as written; parsed when applied */
} sotu_sweep_axis;

typedef struct {
    char method[32];                  /* sotu | clr */

    struct {
        char pretrained[SOTU_PATH_MAX];
        /* Architecture used by `sotu pretrain` (a loaded file carries its own). */
        char arch[16];                /* vit | resnet18 | resnet34 */
        int image_size, channels, patch, dim, depth, heads, mlp_ratio; /* vit */
        int width;                    /* resnet: base width W (torchvision 64) */
        bool small_input;             /* resnet: 3x3/1 conv1, no max-pool */
    } model;

    struct {
        char manifest[SOTU_PATH_MAX];
        double mean, std;             /* pixel normalisation after /255 */
        char normalize[16];           /* scalar (mean, std) | inception | imagenet: io/preprocess.h */
        double crop_pct;              /* resize to size / crop_pct, centre crop (1 = none) */
        double val_fraction;          /* training images held out per task for validation */
    } data;

    struct {
        int epochs;
        int head_epochs;              /* LP-FT: epochs training only the head first, 0 = off */
        int batch_size;
        double lr;
        char optimizer[16];           /* adamw | sgd */
        double weight_decay;
        double momentum;              /* sgd */
        double beta1, beta2, eps;     /* adamw */
        int warmup_steps;
        double grad_clip;             /* 0 = off */
        double label_smoothing;
        char tune[256];               /* all|blocks|attn|mlp|norm|head or comma-separated globs */
        int threads;                  /* 0 = sotu_threads_default() */
        uint64_t seed;
        int augment_pad;              /* random crop padding in pixels, 0 = off */
        bool augment_flip;
        int max_steps;                /* 0 = no limit; for tests and benchmarks */
        int log_every;                /* per-step scalars every N steps (steps.jsonl); 0 = off */
    } train;

    struct {
        int n_keep;                   /* 0 = auto (1/T) */
        double keep[SOTU_LIST_MAX];   /* as listed; the largest ships */
        bool rescale;
        char value_dtype[8];          /* f32 | bf16 */
        char tuning[16];              /* posthoc | masked (train only the shipped mask) */
    } sotu;

    struct {
        char variant[16];             /* clr | clr-full (worker/resnet.h) */
    } clr;

    struct {
        char mode[16];                /* sum | mean | disjoint */
        double scale;
    } merge;

    struct {
        int n_classifiers;
        char classifiers[SOTU_LIST_MAX][32];
        int every;
        int n_baselines;
        char baselines[SOTU_LIST_MAX][32];
        int rp_dim;                   /* ridge: random projection width M; 0 = raw features */
        int fit_per_task;             /* training images per task fitting NCM/ridge; 0 = all */
        char rank_by[16];             /* the validation figure ranking a sweep's points:
                                       * task_heads | ncm | ridge | ncm_til | ridge_til */
    } eval;

    struct {
        int every;                    /* 0 = only at the end */
    } checkpoint;

    struct {
        char dir[SOTU_PATH_MAX];
    } output;

    struct {
        bool coordinator_trains;      /* rank 0 also fine-tunes (small N) */
        double task_timeout;          /* seconds before a running task is late and
                                       * handed to another rank; 0 = never;
                                       * SOTU_CONFIG_AUTO: coordinator/dispatch.h */
    } mpi;

    struct {                          /* `sotu pretrain` */
        int epochs;
        int batch_size;
        double lr;
        int warmup_steps;
        char data_dir[SOTU_PATH_MAX]; /* Fashion-MNIST IDX .gz files */
        char out[SOTU_PATH_MAX];      /* the checkpoint written */
    } pretrain;

    int n_sweep;
    sotu_sweep_axis sweep[SOTU_SWEEP_MAX];

    char source_path[SOTU_PATH_MAX];  /* the file loaded, "" for defaults only */
} sotu_config;

/* What a change of a key's value does to a task's trained result (a SoTU
 * delta, a CLR module). Every key of the table in config.c has exactly one;
 * `sotu train --resume` and `sotu merge` compare the TRAINS* keys a stored
 * result was trained with (sotu_config_training_text) against the run's. */
typedef enum {
    SOTU_KEY_TRAINS = 1,  /* every method's training reads it (train.*, data preprocessing,
                           * method) */
    SOTU_KEY_TRAINS_SOTU, /* what a SoTU delta ships (sotu.rescale, sotu.value_dtype) */
    SOTU_KEY_TRAINS_CLR,  /* what a CLR module is (clr.variant) */
    SOTU_KEY_THETA0,      /* model.pretrained: compared through θ0's fingerprint, not the path */
    SOTU_KEY_SHIP_KEEP,   /* sotu.keep: compared as the keep deltas are shipped at (the
                           * largest); smaller keeps are nested sub-masks of it */
    SOTU_KEY_TASKS,       /* data.manifest: compared per task (name, index, file checksum) */
    SOTU_KEY_PRETRAIN,    /* read by `sotu pretrain` only (train takes the architecture
                           * from model.pretrained's file) */
    SOTU_KEY_RUN,         /* evaluation, merge, output, resources: no task result depends
                           * on it */
} sotu_key_role;

/* The key table, for tests and docs: key i's dotted name and role. */
int sotu_config_key_count(void);
const char *sotu_config_key_name(int i);
sotu_key_role sotu_config_key_role(int i);
const char *sotu_key_role_name(sotu_key_role r); /* "trains", ..., "run"; "?" if none */

/* The canonical text of the keys cfg's method trains with: one
 * "key: value\n" line per SOTU_KEY_TRAINS key, plus the SOTU_KEY_TRAINS_SOTU
 * keys (methods sotu, sequential) or the SOTU_KEY_TRAINS_CLR keys (clr), in
 * table order, values as sotu_config_print writes them. malloc'ed; NULL on
 * OOM. Two configurations train a task alike iff their texts are equal. */
char *sotu_config_training_text(const sotu_config *cfg);

/* Fills cfg with the defaults of every key. */
void sotu_config_defaults(sotu_config *cfg);

/* Loads path over the defaults. Fails with SOTU_ERR_IO (cannot read) or
 * SOTU_ERR_CONFIG (bad YAML, unknown key, wrong type, out of range), the
 * message naming the key, file and line. cfg is left in a defined state. */
sotu_status sotu_config_load(sotu_config *cfg, const char *path);

/* Applies one override "a.b=value" (value is YAML: 1e-3, [0.1, 0.2], true),
 * with the checks of sotu_config_load; errors name "--set a.b=value".
 * "sweep.a.b=[v1, v2]" sets one sweep axis, "sweep={}" clears the sweep.
 * cfg is unchanged on failure. */
sotu_status sotu_config_set(sotu_config *cfg, const char *assignment);

/* Checks cross-key constraints after all overrides (e.g. warmup vs steps). */
sotu_status sotu_config_validate(const sotu_config *cfg);

/* Writes the resolved configuration as YAML that sotu_config_load accepts
 * and that loads back to the same values from any directory: relative paths
 * are written made absolute against the working directory. */
void sotu_config_print(const sotu_config *cfg, FILE *out);

/* Same, into a malloc'ed string (for HDF5 attributes); NULL on OOM. */
char *sotu_config_to_yaml(const sotu_config *cfg);

#endif
