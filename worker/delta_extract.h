/* Delta extraction: δ = θt − θ0 cut down to the SoTU mask, as a sotu_delta
 * ready for sotu_delta_encode (io/delta.h).
 *
 * For every included tensor j of the model table (a tensor the task trained):
 *   DENSE tensors (by default those whose name starts with "head.", the
 *   per-task head) ship every element of δ;
 *   the others are SEEDED: element i ships iff
 *   u(seed, task, j, i) < keep (common/mask.h), its raw δ in element order.
 * A tensor whose δ is exactly zero everywhere (frozen in practice, or not
 * moved at all) is omitted from the delta: the merge treats a missing tensor
 * as a zero delta, so nothing is lost and nothing is shipped. Tensors are
 * listed in table order. Values are raw δ (rescaling happens at merge time).
 *
 * Deterministic: the result depends only on the inputs, not on the thread
 * count (tensors are processed in parallel, each into its own arrays).
 */
#ifndef SOTU_WORKER_DELTA_EXTRACT_H
#define SOTU_WORKER_DELTA_EXTRACT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"
#include "common/tensor.h"
#include "io/delta.h"

typedef struct {
    uint32_t task_index;
    const char *task_name;
    uint64_t seed;
    double keep;              /* (0, 1] */
    bool rescale;             /* sets SOTU_DELTA_FLAG_RESCALE */
    sotu_delta_dtype dtype;   /* how the values will travel */
    const bool *include;      /* [model->n]: tensors to consider; NULL = all */
    const bool *dense;        /* [model->n]: DENSE tensors; NULL = names "head.*" */
    const sotu_provenance *prov; /* copied into the delta; NULL leaves it empty, which
                                  * the encoder refuses (io/provenance.h) */
} sotu_extract_opts;

/* Builds *out from θ0 and θt (flat blocks laid out by model). Fails with
 * SOTU_ERR_CONFIG for keep outside (0, 1] or a task name of bad length,
 * SOTU_ERR_NOMEM naming the tensor. out is zeroed on failure and is freed
 * with sotu_delta_free. */
sotu_status sotu_delta_extract(const sotu_tensor_table *model, const float *theta0,
                               const float *thetat, const sotu_extract_opts *opts,
                               sotu_delta *out);

#endif
