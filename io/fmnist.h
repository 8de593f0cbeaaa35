/* Task streams built from Fashion-MNIST (Debian's dataset-fashion-mnist IDX
 * files), deterministic in (preset, seed, sizes).
 *
 * Presets:
 *   fmnist5   5 tasks of 2 classes, the disjoint pairs 0/1, 2/3, 4/5, 6/7,
 *             8/9, each with its own transform (rot90, inv, vflip, gauss5,
 *             pperm).
 *   fmnist53  53 tasks; task i has a fixed transform recipe (plain, single
 *             and combined transforms) and a class subset of 2..10 classes
 *             drawn from the seed.
 *   split5    one domain split into tasks of disjoint classes (the paper's
 *             class-incremental protocol): 5 tasks of the pairs 0/1 .. 8/9,
 *             every task under the SAME transform recipe (option transform,
 *             required), its permutations (pperm, xperm) those of task 0.
 *   split10   the same with 10 tasks of one class each (class t): only the
 *             class-incremental classifiers mean anything there, a one-class
 *             head's cross-entropy is zero and gives the backbone no gradient.
 *
 * A recipe is transform tokens joined by '+', applied left to right to the
 * 28x28 image (values kept in float between steps, rounded once):
 *   orig                    identity
 *   rot90 rot180 rot270     exact rotations, counter-clockwise
 *   rot15 rot30 rot45 rotm15 rotm30
 *                           small rotations (m = clockwise), bilinear,
 *                           zero outside the source image
 *   hflip vflip             mirror left-right / top-bottom
 *   inv                     255 - v
 *   pperm                   a fixed shuffle of the 16 7x7 patches per task
 *   xperm                   a fixed shuffle of the 784 pixels per task
 *   box3 box5 gauss3 gauss5 3x3 / 5x5 box or binomial blur, edges clamped
 *   zoom20 zoom16           centre crop of 20x20 / 16x16, bilinear zoom to 28
 *   lowcon highcon          contrast 0.5 / 1.8 about 128, clipped to 0..255
 *
 * Each task draws its train and test images without replacement from the
 * matching split, balanced over its classes as far as the split allows, in
 * a shuffled order; labels are local (0..k-1, ascending Fashion-MNIST
 * class). Task t is named "tNN-<recipe>-<k>cls" and written to DIR/tNN.h5;
 * DIR/manifest.yaml is written last.
 *
 * Random streams (common/rng.h, key = seed): the fmnist53 class subsets use
 * SOTU_STREAM_DATA; task t uses SOTU_STREAM_DATA + ((t+1) << 8) + (p << 32)
 * with p = 0 train sampling, 1 test sampling, 2 transform permutations.
 */
#ifndef SOTU_IO_FMNIST_H
#define SOTU_IO_FMNIST_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"
#include "io/taskset.h"

#define SOTU_FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define SOTU_FMNIST_SIDE 28
#define SOTU_FMNIST_CLASSES 10
#define SOTU_FMNIST_DEFAULT_TRAIN 1000
#define SOTU_FMNIST_DEFAULT_TEST 500
#define SOTU_FMNIST_TRANSFORM_MAX 40 /* characters of a shared recipe (fits the task names) */

extern const char *const sotu_fmnist_class_names[SOTU_FMNIST_CLASSES];

typedef struct {
    char name[SOTU_TASK_NAME_MAX];   /* "t07-rot90-4cls" */
    char file[16];                   /* "t07.h5" */
    char recipe[48];                 /* "rot90" */
    int classes;                     /* k */
    int class_ids[SOTU_FMNIST_CLASSES]; /* Fashion-MNIST class of local label i, ascending */
} sotu_fmnist_task_plan;

/* The task list of a preset: fills plan[0 .. min(count, cap)) and returns
 * the preset's task count, or 0 for an unknown preset name. shared_recipe is
 * the shared recipe of split5/split10 (NULL for the others: "orig"). */
int sotu_fmnist_plan(const char *preset, const char *shared_recipe, uint64_t seed,
                     sotu_fmnist_task_plan *plan, int cap);

/* True for the single-domain presets (split5, split10), which take a
 * transform and share it over every task. */
bool sotu_fmnist_preset_shared(const char *preset);

/* Applies a recipe to n images of 28x28 uint8 (src and dst may not
 * overlap), with the permutations of (seed, task). SOTU_ERR_USAGE naming
 * the token for an unknown recipe. */
sotu_status sotu_fmnist_transform(const char *recipe, uint64_t seed, int task,
                                  const uint8_t *src, uint8_t *dst, int32_t n);

typedef struct {
    const char *preset;   /* "fmnist5" | "fmnist53" | "split5" | "split10" */
    const char *transform;/* split5/split10: the recipe every task shares; NULL otherwise */
    const char *data_dir; /* IDX directory; NULL = SOTU_FMNIST_DEFAULT_DIR */
    const char *out_dir;  /* created if missing */
    int32_t n_train;      /* per task; 0 = SOTU_FMNIST_DEFAULT_TRAIN */
    int32_t n_test;       /* per task; 0 = SOTU_FMNIST_DEFAULT_TEST */
    uint64_t seed;
} sotu_fmnist_options;

/* Reads the four IDX files ({train,t10k}-{images-idx3,labels-idx1}-ubyte.gz)
 * of data_dir and writes every task file and then the manifest to out_dir,
 * each atomically. Errors: SOTU_ERR_USAGE (unknown preset, sizes the split
 * cannot supply), SOTU_ERR_IO / SOTU_ERR_DATA from the readers and writers
 * (naming the file). Task files finished before a failure stay complete;
 * the manifest is only written when every task file is. */
sotu_status sotu_fmnist_build(const sotu_fmnist_options *o);

#endif
