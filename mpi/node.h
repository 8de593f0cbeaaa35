/* The node a command computes on: its threads (common/threads.h's rule), its
 * BLAS kernel (common/blas_core.h) and one log line that says both.
 *
 * Every command that computes calls sotu_node_setup() once, after
 * sotu_mpi_init() when it runs on MPI, before its first BLAS call:
 *
 *   [sotu r0 0.1s] node n01: 16 threads (sched_getaffinity: 16 CPUs); OpenBLAS
 *   0.3.21, core SkylakeX (switched by sotu from Prescott), sgemm 1024^3
 *   1012.3 GFLOP/s
 *
 * On MPI the line comes from the first rank of each node only (the others
 * skip the measurement). */
#ifndef SOTU_MPI_NODE_H
#define SOTU_MPI_NODE_H

#include "common/status.h"
#include "common/threads.h"

/* Seconds the sgemm measurement of the log line may take. */
#define SOTU_NODE_MEASURE_SECONDS 0.03

/* Collective over MPI_COMM_WORLD (sotu_mpi_init calls it on every rank): finds
 * the ranks on this node (MPI_COMM_TYPE_SHARED), how many of them share each
 * of this rank's CPUs (their sched_getaffinity masks, gathered) and the CPUs
 * of the node's ranks together, and records it with sotu_threads_set_node. */
void sotu_node_layout_mpi(void);

/* Resolves the thread count (option: --threads, config: train.threads; 0 when
 * not given), sets OpenMP and OpenBLAS to it, checks OpenBLAS's sgemm
 * against a naive product and logs the node line (module comment) at info
 * level; warns when the node's ranks times threads exceed its CPUs. plan
 * may be NULL. SOTU_ERR_NUMERIC when the sgemm check fails (the message
 * names the core and what to set). Not collective. */
sotu_status sotu_node_setup(int option, int config, sotu_threads_plan *plan);

#endif
