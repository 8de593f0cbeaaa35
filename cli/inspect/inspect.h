/* `sotu inspect FILE`: a description of a sotu file on stdout.
 *
 * sotu_cmd_inspect picks the reader by extension and, for HDF5 files, by the
 * root "format" attribute. Each reader below prints its file and returns a
 * process exit code (0, or 3 / 4 with the error printed as "sotu inspect:
 * message"). Per-tensor and per-task detail is printed at -v.
 */
#ifndef SOTU_CLI_INSPECT_INSPECT_H
#define SOTU_CLI_INSPECT_INSPECT_H

#include "common/status.h"
#include "io/provenance.h"

/* Task file ("sotu-task"): name, classes and class names, image shape,
 * per split: count, label histogram, pixel mean. */
int sotu_inspect_task(const char *path);

/* Task manifest (.yaml/.yml): a table of the tasks in stream order. */
int sotu_inspect_manifest(const char *path);

/* Weights file ("sotu-weights"): model config, tensor and parameter count;
 * per-tensor shapes at -v. */
int sotu_inspect_weights(const char *path);

/* Run checkpoint ("sotu-checkpoint"): tasks, keep, kept counts, bytes, cosine and accuracy summary. */
int sotu_inspect_checkpoint(const char *path);

/* CLR task module (.clrm, io/module.h): task, variant, tensors, values and
 * bytes, verified against its own records; per tensor at -v. */
int sotu_inspect_module(const char *path);

/* CLR run checkpoint ("sotu-clr-checkpoint", coordinator/clr/clr_eval.h): the
 * backbone, every task's accuracy with the baselines, the summary and CLR's
 * cost figures. */
int sotu_inspect_clr_checkpoint(const char *path);

/* Reads every dataset of an HDF5 file so that libhdf5 verifies each
 * Fletcher32 checksum, and prints a "checksums" line: how many datasets
 * carry one (files of an older sotu or of other tools have none). A
 * dataset that fails is SOTU_ERR_DATA naming the file and the dataset.
 * Weights files and both kinds of checkpoint end with it. */
sotu_status sotu_inspect_checksums(const char *path);

/* Delta (.sotud): task, seed, keep, dtype, kept counts and bytes; per tensor at -v. */
int sotu_inspect_delta(const char *path);

/* The provenance lines of a delta or module (θ0 fingerprint and path, task
 * file checksum, sotu version and commit, the training keys) and of a
 * checkpoint's attributes ("not recorded" where an older file has none). */
void sotu_inspect_print_provenance(const sotu_provenance *p);
void sotu_inspect_print_provenance_attrs(const sotu_provenance_attrs *a);

/* safetensors file or sharded index (.safetensors, .safetensors.index.json):
 * shards, tensors, values, dtypes and __metadata__; per tensor at -v. */
int sotu_inspect_safetensors(const char *path);

#endif
