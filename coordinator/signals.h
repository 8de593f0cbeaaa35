/* Stop requests from the batch system, the launcher and the terminal.
 *
 * Slurm sends SIGTERM when it cancels, preempts or requeues a job, and the
 * warning signal chosen with `#SBATCH --signal=USR1@180` some time before the
 * time limit. Every rank of `sotu train` installs one handler for SIGTERM,
 * SIGUSR1, SIGUSR2 and SIGINT that only records the signal (a sig_atomic_t:
 * nothing else is async-signal-safe); the coordinator polls it between
 * messages:
 *
 *   - it answers every further task request with -1 (workers stop cleanly),
 *   - waits for the tasks still running until the grace period ends
 *     (SOTU_STOP_GRACE seconds; default 60 after SIGUSR1, 10 after SIGTERM,
 *     SIGUSR2 or SIGINT: Slurm kills KillWait seconds after SIGTERM),
 *   - writes the checkpoint of the tasks done so far (deltas on disk are
 *     already safe), and exits with SOTU_EXIT_REQUEUE.
 * Tasks still running after the grace period are abandoned: the coordinator
 * ends the job with MPI_Abort(SOTU_EXIT_REQUEUE); --resume trains them again.
 * Workers ignore the signal itself and finish their current task.
 *
 * SIGUSR2 is a stop forwarded by scripts/sotu-mpiexec: Open MPI's mpiexec
 * passes SIGUSR1 and SIGUSR2 on to every rank, and the wrapper turns the
 * SIGTERM, SIGINT or SIGHUP it gets into SIGUSR2; it behaves as SIGTERM.
 *
 * Open MPI's mpiexec itself (4.1) answers SIGTERM, SIGINT and SIGHUP by
 * ending the job: every rank gets SIGCONT, N seconds later SIGTERM, N more
 * seconds later SIGKILL (N = the MCA parameter odls_base_sigkill_timeout,
 * default 1), and mpiexec exits 1 whatever the ranks return. A rank that
 * mpiexec started (OMPI_MCA_orte_hnp_uri in its environment) and that gets
 * SIGTERM from its parent process (mpiexec, or orted on other nodes) is in
 * that sequence: sotu_signals_launcher_kill() is then true and the
 * coordinator writes the checkpoint at once, without waiting for running
 * tasks, to finish before the SIGKILL.
 *
 * A SIGINT (Ctrl-C) after any stop request (a first Ctrl-C or a SIGTERM)
 * ends the process at once (the default action):
 * a serial run notices a stop only between tasks.
 */
#ifndef SOTU_COORDINATOR_SIGNALS_H
#define SOTU_COORDINATOR_SIGNALS_H

#include <stdbool.h>

/* Exit status of a run stopped by a signal with its finished tasks saved:
 * "not done, run me again with --resume" (EX_TEMPFAIL of sysexits.h).
 * slurm/sotu.sbatch requeues the job on it. */
#define SOTU_EXIT_REQUEUE 75

/* Installs the handler for SIGTERM, SIGUSR1, SIGUSR2 and SIGINT
 * (sigaction, SA_RESTART | SA_SIGINFO) and clears any earlier request.
 * With announce (the process that trains tasks itself and coordinates: a
 * serial run), the handler also writes one line to stderr saying the run
 * stops after its current task, since nothing else is printed until then. */
void sotu_signals_install(bool announce);

/* Restores the default actions. */
void sotu_signals_restore(void);

/* The first signal received since install, or 0. */
int sotu_signals_pending(void);

/* True once any stop signal arrived. */
bool sotu_signals_stop_requested(void);

/* True once SIGTERM arrived from the parent process of a rank that Open
 * MPI's mpiexec started: its kill sequence, SIGKILL follows in
 * sotu_signals_kill_timeout() seconds. */
bool sotu_signals_launcher_kill(void);

/* Open MPI's odls_base_sigkill_timeout as mpiexec passes it to its ranks
 * (OMPI_MCA_odls_base_sigkill_timeout), else its default, 1. */
double sotu_signals_kill_timeout(void);

/* Seconds the coordinator waits for running tasks after signal sig: the
 * environment's SOTU_STOP_GRACE when it is a non-negative number, else the
 * default for sig. */
double sotu_signals_grace(int sig);

/* "SIGTERM", "SIGUSR1", ... for messages. */
const char *sotu_signals_name(int sig);

/* Test hook: records sig as if it had been delivered (0 clears). */
void sotu_signals_raise_for_test(int sig);

#endif
