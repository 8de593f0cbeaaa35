/* Task datasets (HDF5, one file per task) and the task manifest (YAML).
 *
 * Task file layout:
 *   /train/images  uint8 [N, H, W, C]      /train/labels  int32 [N]
 *   /test/images   uint8 [M, H, W, C]      /test/labels   int32 [M]
 *   root attributes: name (string), classes (int32), class_names (string
 *   array of length classes), format "sotu-task", format_version 1.
 * Labels are local to the task: 0 <= label < classes. Readers require
 * classes and the four datasets; name defaults to the file's stem and
 * class_names to "0".."classes-1" when absent (files made by other tools);
 * labels may be stored as any integer type.
 *
 * Manifest (YAML), tasks in stream order, file paths relative to the
 * manifest's directory:
 *   name: fmnist5
 *   tasks:
 *     - {name: t00-..., file: t00.h5, classes: 2, train: 1000, test: 500}
 */
#ifndef SOTU_IO_TASKSET_H
#define SOTU_IO_TASKSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/status.h"

#define SOTU_TASK_NAME_MAX 64
#define SOTU_TASK_FORMAT "sotu-task"
#define SOTU_TASK_FORMAT_VERSION 1
/* Reader limits, checked before allocating. */
#define SOTU_TASK_MAX_CLASSES 65536
#define SOTU_TASK_MAX_SIDE 4096
#define SOTU_TASK_MAX_CHANNELS 16
#define SOTU_TASK_MAX_BYTES ((size_t)1 << 34)

typedef struct {
    char name[SOTU_TASK_NAME_MAX];
    int classes;
    char (*class_names)[SOTU_TASK_NAME_MAX]; /* [classes] */
    int height, width, channels;             /* H, W, C */
    int32_t n_train, n_test;
    uint8_t *train_images; /* [n_train, H, W, C] */
    int32_t *train_labels; /* [n_train] */
    uint8_t *test_images;  /* [n_test, H, W, C] */
    int32_t *test_labels;  /* [n_test] */
    int32_t n_val;         /* validation images held out of the file's training split */
    uint8_t *val_images;   /* [n_val, H, W, C]; NULL without a hold-out */
    int32_t *val_labels;   /* [n_val] */
} sotu_taskset;

/* Writes t to path atomically (tmp + fsync + rename). SOTU_ERR_IO names the
 * file on failure; no partial file is left. */
sotu_status sotu_taskset_write(const char *path, const sotu_taskset *t);

/* Reads and validates a task file: every dataset present with the documented
 * dtype and rank, shapes that agree, labels in [0, classes). Fails with
 * SOTU_ERR_IO (cannot open) or SOTU_ERR_DATA naming the file and dataset. */
sotu_status sotu_taskset_read(const char *path, sotu_taskset *t);

/* Only the class names of a task file (its class_names attribute, or "0",
 * "1", ... when it has none) into a malloc'ed [classes] array *names, which
 * the caller frees. SOTU_ERR_DATA when the file's classes differ from
 * classes; the reader's errors otherwise. */
sotu_status sotu_taskset_read_class_names(const char *path, int classes,
                                          char (**names)[SOTU_TASK_NAME_MAX]);

/* Same checks on an HDF5 file held in memory (a file image, opened with the
 * core driver; buf is copied). what names the input in messages and gives
 * the default task name. */
sotu_status sotu_taskset_read_image(const void *buf, size_t size, const char *what,
                                    sotu_taskset *t);

void sotu_taskset_free(sotu_taskset *t); /* accepts NULL and zeroed structs */

/* The validation split (data.val_fraction): round(fraction * n_train)
 * training images, at least 1 when fraction > 0 and at most n_train - 1,
 * chosen by a permutation of the training indices from (seed, stream
 * SOTU_STREAM_VALIDATION + (task << 8)) - a pure function of (fraction,
 * seed, task, n_train), the same on every rank and at any thread count.
 * They move to val_images/val_labels in that permutation's order; the rest
 * stay the training split in their file order (fraction 0: t unchanged,
 * bitwise). Call once, right after reading. SOTU_ERR_NOMEM; t unchanged on
 * failure. */
sotu_status sotu_taskset_hold_out(sotu_taskset *t, double fraction, uint64_t seed,
                                  uint32_t task);
/* The number of images sotu_taskset_hold_out moves for n_train. */
int32_t sotu_taskset_val_count(int64_t n_train, double fraction);

/* What a task file says about itself without its images (cheap: root
 * attributes and dataset shapes). */
typedef struct {
    char name[SOTU_TASK_NAME_MAX];  /* the file's stem when absent */
    int classes;
    int64_t n_train, n_test;        /* rows of /train/labels, /test/labels */
} sotu_taskset_header;

/* Reads the header of the task file at path: format (when present)
 * "sotu-task" of format_version 1..SOTU_TASK_FORMAT_VERSION, classes in
 * 1..SOTU_TASK_MAX_CLASSES, the two label datasets 1-D. SOTU_ERR_IO if it
 * cannot be opened, SOTU_ERR_DATA naming the file and the attribute or
 * dataset otherwise. */
sotu_status sotu_taskset_read_header(const char *path, sotu_taskset_header *h);

typedef struct {
    char name[SOTU_TASK_NAME_MAX];
    char path[SOTU_PATH_MAX]; /* resolved (manifest dir + file) */
    char file[SOTU_PATH_MAX]; /* as written in the manifest */
    int classes;
    int64_t n_train, n_test;  /* as listed; used to order the queue */
} sotu_manifest_task;

typedef struct {
    char name[SOTU_TASK_NAME_MAX];
    char path[SOTU_PATH_MAX];
    int n_tasks;
    sotu_manifest_task *tasks; /* [n_tasks], stream order */
} sotu_manifest;

/* Reads a manifest; every listed file must exist. Fails with SOTU_ERR_IO or
 * SOTU_ERR_DATA naming the manifest, the line and the problem. */
sotu_status sotu_manifest_read(const char *path, sotu_manifest *m);

/* Checks every task file of m against m before a run (headers only, so it
 * is cheap): it must be readable in a format version this sotu reads, have
 * the classes the manifest lists, and hold test images (training images
 * too when training). SOTU_ERR_DATA naming the manifest, the task and its
 * file; SOTU_ERR_IO when a file cannot be opened. */
sotu_status sotu_manifest_check_files(const sotu_manifest *m, bool training);

/* Writes m to path atomically, with each task's file as given in .file. */
sotu_status sotu_manifest_write(const char *path, const sotu_manifest *m);

void sotu_manifest_free(sotu_manifest *m);

#endif
