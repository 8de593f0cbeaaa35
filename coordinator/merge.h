/* Merge math on decoded deltas (io/delta.h): pure functions over in-memory
 * deltas, no MPI, so tests simulate any number of ranks in one process.
 *
 *   merged = θ0 + λ · Σ_t δ̂_t      over the backbone (non-DENSE tensors)
 *
 * δ̂_t is task t's shipped delta cut to an effective keep k_use <= the
 * shipped keep: a SEEDED element i stays iff u(seed, t, j, i) < k_use. The
 * masks are nested, so this is exactly the mask a run at k_use would have
 * shipped. If the delta's rescale flag is set its SEEDED values are
 * multiplied by 1/k_use (DARE), with the keep actually used. INDEXED
 * tensors (top-k masks) are merged whole and never rescaled.
 *
 * Modes:
 *   sum       every kept value adds in (SoTU);
 *   mean      an element written by c tasks gets the mean of their values
 *             (the sum divided by c), then λ;
 *   disjoint  element i of tensor j belongs to exactly one task of the run,
 *             t* = floor(T · floor(u(i) 2^32) / 2^32) with u the mask value
 *             of (seed, j) drawn under the reserved task word 0x80000000 |
 *             SOTU_STREAM_DISJOINT (common/mask.h, sotu_mask_u32);
 *             task t contributes only the kept elements it owns: no element
 *             is ever written twice (exact orthogonality). Ownership applies
 *             on top of the mask, so each task contributes a k_use / T share
 *             of its tensor: ship keep = 1 for the plain disjoint partition
 *             (each task then writes exactly the ~1/T of elements it owns).
 *             T is the run's task count (opts.n_tasks), not the number of
 *             deltas at hand, so a partial merge leaves absent tasks' elements
 *             at θ0. Rescale stays 1/k_use: ownership selects, it does not
 *             drop at random.
 * DENSE tensors (the per-task heads) are not merged: merged keeps θ0 there,
 * and sotu_merge_task_head puts one task's head on top.
 *
 * Arithmetic: merged starts as θ0; then, task after task in task-index order,
 * each selected element gets merged[i] += (float)(v · rescale · λ / c_i),
 * with c_i the number of tasks writing element i in mean mode and 1 in the
 * other modes (the float running sum a streaming coordinator would keep).
 * Determinism: the task-index order is fixed whatever the order of the
 * input list, so the result is bitwise independent of arrival order and of
 * the thread count.
 * Speed: sum and disjoint without statistics take a fast path that splits
 * the model block into one contiguous share per OpenMP thread and, block
 * by block (1 MiB), copies θ0 and lets every task add into the block
 * while it is in cache: one pass over the weights, plus each kept value and
 * its 32-bit index read once.
 * Memory: the output block, a (tensor, task) table of records and rules,
 * plus on the general path (mean or statistics), per tensor in turn,
 * O(kept values) lists and O(tensor size) counters.
 */
#ifndef SOTU_COORDINATOR_MERGE_H
#define SOTU_COORDINATOR_MERGE_H

#include <stdint.h>

#include "common/status.h"
#include "common/tensor.h"
#include "io/delta.h"

typedef enum {
    SOTU_MERGE_SUM = 0,
    SOTU_MERGE_MEAN = 1,
    SOTU_MERGE_DISJOINT = 2,
} sotu_merge_mode;

/* "sum" | "mean" | "disjoint"; SOTU_ERR_CONFIG naming the value otherwise. */
sotu_status sotu_merge_mode_parse(const char *name, sotu_merge_mode *mode);
const char *sotu_merge_mode_name(sotu_merge_mode mode);

typedef struct {
    sotu_merge_mode mode;
    double scale;        /* λ */
    double keep;         /* k_use in (0, 1]; 0 = each delta's shipped keep */
    uint32_t n_tasks;    /* T of the run (disjoint owners 0..T-1); every
                          * task index must be below it when mode is disjoint */
} sotu_merge_opts;

typedef struct {
    int n;                 /* deltas merged; rows in task-index order */
    int n_tensors;         /* the model table's */
    uint32_t *task_index;  /* [n] task index of each row */
    double *cosine;        /* [n, n] cosine of the masked backbone deltas as merged */
    double *norms;         /* [n, n_tensors] L2 of each task's contribution to each
                            * tensor as merged (δ̂ after selection and rescale,
                            * before λ); DENSE tensors: the head delta's norm */
    uint64_t touched;      /* backbone elements written by >= 1 task */
    uint64_t collided;     /* written by >= 2 tasks */
    double collision_rate; /* collided / touched (0 if nothing touched) */
} sotu_merge_stats;

/* merged[model->total] = θ0 + λ Σ δ̂ over deltas[0..n) as above. The deltas
 * must have been decoded against (or extracted from) this model, carry their
 * indices, share one seed, and have distinct task indices. opts->keep must
 * not exceed any delta's shipped keep. stats may be NULL (skips the cosine
 * work); otherwise it is filled and freed with sotu_merge_stats_free.
 * Fails with SOTU_ERR_CONFIG (keep, mode, n_tasks), SOTU_ERR_DATA (delta
 * that does not fit the model, duplicate task), SOTU_ERR_NOMEM. */
sotu_status sotu_merge_apply(const sotu_tensor_table *model, const float *theta0,
                             const sotu_delta *const *deltas, int n, const sotu_merge_opts *opts,
                             float *merged, sotu_merge_stats *stats);

/* params[DENSE tensor] = θ0 + δ for each DENSE tensor of d (the task's own
 * head on a merged backbone). Other tensors are left alone. */
void sotu_merge_task_head(const sotu_tensor_table *model, const float *theta0, const sotu_delta *d,
                          float *params);

void sotu_merge_stats_free(sotu_merge_stats *st); /* accepts NULL and zeroed structs */

/* The largest |cosine| between two different deltas of the merge; 0 with
 * fewer than two. */
double sotu_merge_stats_max_cosine(const sotu_merge_stats *st);

/* The disjoint owner of element i of tensor j (count elements) among T tasks. */
uint32_t sotu_merge_owner(uint64_t seed, uint32_t tensor, uint64_t count, uint64_t i,
                          uint32_t n_tasks);

#endif
