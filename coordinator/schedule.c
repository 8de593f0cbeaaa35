#include "coordinator/schedule.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static const int64_t *sort_sizes;

static int by_size_desc(const void *a, const void *b)
{
    int ta = *(const int *)a, tb = *(const int *)b;
    if (sort_sizes[ta] != sort_sizes[tb])
        return sort_sizes[ta] > sort_sizes[tb] ? -1 : 1;
    return (ta > tb) - (ta < tb);
}

sotu_status sotu_queue_init(sotu_queue *q, int n_tasks, const int64_t *sizes)
{
    *q = (sotu_queue){.n_tasks = n_tasks};
    q->order = malloc(sizeof(int) * (size_t)(n_tasks ? n_tasks : 1));
    q->state = calloc((size_t)(n_tasks ? n_tasks : 1), sizeof(sotu_task_state));
    q->owner = malloc(sizeof(int) * (size_t)(n_tasks ? n_tasks : 1));
    q->started = calloc((size_t)(n_tasks ? n_tasks : 1), sizeof(double));
    q->retry = malloc(sizeof(int) * (size_t)(n_tasks ? n_tasks : 1));
    if (!q->order || !q->state || !q->owner || !q->started || !q->retry) {
        sotu_queue_free(q);
        return sotu_error(SOTU_ERR_NOMEM, "task queue of %d tasks: out of memory", n_tasks);
    }
    for (int t = 0; t < n_tasks; t++) {
        q->order[t] = t;
        q->owner[t] = -1;
    }
    sort_sizes = sizes; /* qsort has no context argument in C11 */
    qsort(q->order, (size_t)n_tasks, sizeof(int), by_size_desc);
    sort_sizes = NULL;
    return SOTU_OK;
}

void sotu_queue_free(sotu_queue *q)
{
    if (!q)
        return;
    free(q->order);
    free(q->state);
    free(q->owner);
    free(q->started);
    free(q->retry);
    *q = (sotu_queue){0};
}

void sotu_queue_mark_done(sotu_queue *q, int t)
{
    assert(t >= 0 && t < q->n_tasks && q->state[t] == SOTU_TASK_PENDING);
    q->state[t] = SOTU_TASK_DONE;
    q->n_done++;
}

int sotu_queue_take(sotu_queue *q, int rank, double now)
{
    while (q->n_retry > 0) {
        int t = q->retry[0];
        memmove(q->retry, q->retry + 1, sizeof(int) * (size_t)--q->n_retry);
        if (q->state[t] != SOTU_TASK_RUNNING)
            continue; /* its first attempt reported meanwhile */
        q->owner[t] = rank;
        q->started[t] = now;
        return t;
    }
    while (q->next < q->n_tasks) {
        int t = q->order[q->next++];
        if (q->state[t] != SOTU_TASK_PENDING)
            continue;
        q->state[t] = SOTU_TASK_RUNNING;
        q->owner[t] = rank;
        q->started[t] = now;
        q->n_running++;
        return t;
    }
    return -1;
}

void sotu_queue_retry(sotu_queue *q, int t)
{
    assert(t >= 0 && t < q->n_tasks && q->state[t] == SOTU_TASK_RUNNING);
    assert(q->n_retry < q->n_tasks);
    for (int i = 0; i < q->n_retry; i++)
        if (q->retry[i] == t)
            return;
    q->retry[q->n_retry++] = t;
}

bool sotu_queue_has_work(const sotu_queue *q)
{
    for (int i = 0; i < q->n_retry; i++)
        if (q->state[q->retry[i]] == SOTU_TASK_RUNNING)
            return true;
    for (int i = q->next; i < q->n_tasks; i++)
        if (q->state[q->order[i]] == SOTU_TASK_PENDING)
            return true;
    return false;
}

void sotu_queue_recover(sotu_queue *q, int t)
{
    assert(t >= 0 && t < q->n_tasks && q->state[t] == SOTU_TASK_FAILED);
    q->state[t] = SOTU_TASK_DONE;
    q->n_failed--;
    q->n_done++;
}

void sotu_queue_finish(sotu_queue *q, int t, bool ok)
{
    assert(t >= 0 && t < q->n_tasks && q->state[t] == SOTU_TASK_RUNNING);
    q->state[t] = ok ? SOTU_TASK_DONE : SOTU_TASK_FAILED;
    q->n_running--;
    if (ok)
        q->n_done++;
    else
        q->n_failed++;
}

bool sotu_queue_finished(const sotu_queue *q)
{
    return q->n_running == 0 && q->n_done + q->n_failed == q->n_tasks;
}
