/* Stop requests from the batch system.
 *
 * Slurm sends SIGTERM when it cancels, preempts or requeues a job, and the
 * warning signal chosen with `#SBATCH --signal=USR1@180` some time before the
 * time limit. Every rank of `sotu train` installs one handler for SIGTERM,
 * SIGUSR1 and SIGINT that only records the signal (a sig_atomic_t: nothing
 * else is async-signal-safe); the coordinator polls it between messages:
 *
 *   - it answers every further task request with -1 (workers stop cleanly),
 *   - waits for the tasks still running until the grace period ends
 *     (SOTU_STOP_GRACE seconds; default 60 after SIGUSR1, 10 after SIGTERM
 *     or SIGINT: Slurm kills KillWait seconds after SIGTERM),
 *   - writes the checkpoint of the tasks done so far (deltas on disk are
 *     already safe), and exits with SOTU_EXIT_REQUEUE.
 * Tasks still running after the grace period are abandoned: the coordinator
 * ends the job with MPI_Abort(SOTU_EXIT_REQUEUE); --resume trains them again.
 * Workers ignore the signal itself and finish their current task.
 */
#ifndef SOTU_COORDINATOR_SIGNALS_H
#define SOTU_COORDINATOR_SIGNALS_H

#include <stdbool.h>

/* Exit status of a run stopped by a signal with its finished tasks saved:
 * "not done, run me again with --resume" (EX_TEMPFAIL of sysexits.h).
 * slurm/sotu.sbatch requeues the job on it. */
#define SOTU_EXIT_REQUEUE 75

/* Installs the handler for SIGTERM, SIGUSR1 and SIGINT (sigaction, with
 * SA_RESTART) and clears any earlier request. */
void sotu_signals_install(void);

/* Restores the default actions. */
void sotu_signals_restore(void);

/* The first signal received since install, or 0. */
int sotu_signals_pending(void);

/* True once any stop signal arrived. */
bool sotu_signals_stop_requested(void);

/* Seconds the coordinator waits for running tasks after signal sig: the
 * environment's SOTU_STOP_GRACE when it is a non-negative number, else the
 * default for sig. */
double sotu_signals_grace(int sig);

/* Test hook: records sig as if it had been delivered (0 clears). */
void sotu_signals_raise_for_test(int sig);

#endif
