/* The coordinator's task queue: largest task first, handed out on request.
 *
 * Pure bookkeeping with no MPI, so tests can simulate any number of ranks in
 * one process. Tasks already finished (e.g. found on disk when resuming) are
 * marked done before the first request and never handed out.
 *
 * A running task whose rank is late (coordinator/dispatch.h) is offered
 * again with sotu_queue_retry: the next take hands it to another rank
 * first, while it stays RUNNING (counted once) until a result arrives.
 */
#ifndef SOTU_COORDINATOR_SCHEDULE_H
#define SOTU_COORDINATOR_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"

typedef enum {
    SOTU_TASK_PENDING = 0,
    SOTU_TASK_RUNNING,
    SOTU_TASK_DONE,
    SOTU_TASK_FAILED,
} sotu_task_state;

typedef struct {
    int n_tasks;
    int *order;             /* [n_tasks] task indices, largest first, ties by index */
    int next;               /* position in order of the next candidate */
    sotu_task_state *state; /* [n_tasks] */
    int *owner;             /* [n_tasks] rank running or that ran it, -1 none */
    double *started;        /* [n_tasks] sotu_now() at the last hand-out */
    int *retry;             /* [n_tasks] running tasks offered again, oldest first */
    int n_retry;
    int n_done, n_failed, n_running;
} sotu_queue;

/* sizes[t] orders the queue (e.g. training images of task t). */
sotu_status sotu_queue_init(sotu_queue *q, int n_tasks, const int64_t *sizes);
void sotu_queue_free(sotu_queue *q);

/* Marks t done before scheduling starts (a verified delta found on disk). */
void sotu_queue_mark_done(sotu_queue *q, int t);

/* The next task for rank: a task offered again (sotu_queue_retry) that is
 * still running, else the next pending one, now RUNNING; -1 when none. */
int sotu_queue_take(sotu_queue *q, int rank, double now);

/* Offers running task t again (its rank is late); once per call. */
void sotu_queue_retry(sotu_queue *q, int t);

/* True when a take would return a task. */
bool sotu_queue_has_work(const sotu_queue *q);

/* Records the end of a running task. */
void sotu_queue_finish(sotu_queue *q, int t, bool ok);

/* A failed task whose late second attempt succeeded: FAILED -> DONE. */
void sotu_queue_recover(sotu_queue *q, int t);

/* True when no task is pending or running. */
bool sotu_queue_finished(const sotu_queue *q);

#endif
