/* Task queue: largest first, each task handed out once, resume skips done;
 * a late task offered again goes first, counted once, and a task that
 * finished meanwhile is not handed out again. */
#include "check.h"
#include "coordinator/schedule.h"

int main(void)
{
    int64_t sizes[7] = {100, 500, 300, 500, 50, 1000, 300};
    sotu_queue q;
    CHECK(sotu_queue_init(&q, 7, sizes) == SOTU_OK);
    sotu_queue_mark_done(&q, 1); /* as if found on disk */
    int expect[] = {5, 3, 2, 6, 0, 4};
    for (int k = 0; k < 6; k++) {
        int t = sotu_queue_take(&q, 1 + k % 3, 0.0);
        CHECK_MSG(t == expect[k], "take %d gave %d, expected %d", k, t, expect[k]);
        CHECK(!sotu_queue_finished(&q));
        sotu_queue_finish(&q, t, t != 0);
    }
    CHECK(sotu_queue_take(&q, 1, 0.0) == -1);
    CHECK(sotu_queue_finished(&q));
    CHECK(q.n_done == 6 && q.n_failed == 1);
    sotu_queue_free(&q);
    sotu_queue_free(NULL);

    /* Retry: task 5 (largest) is late on rank 1 and offered again. */
    CHECK(sotu_queue_init(&q, 7, sizes) == SOTU_OK);
    CHECK(sotu_queue_take(&q, 1, 0.0) == 5);
    CHECK(sotu_queue_take(&q, 2, 0.0) == 1);
    sotu_queue_retry(&q, 5);
    sotu_queue_retry(&q, 5); /* twice: offered once */
    CHECK(q.n_retry == 1 && sotu_queue_has_work(&q));
    CHECK(sotu_queue_take(&q, 3, 7.0) == 5);
    CHECK(q.owner[5] == 3 && q.started[5] == 7.0 && q.n_running == 2);
    CHECK(sotu_queue_take(&q, 3, 7.0) == 3); /* then the ordered ones */
    sotu_queue_retry(&q, 1);
    sotu_queue_finish(&q, 1, true); /* its first attempt reported meanwhile */
    CHECK(sotu_queue_take(&q, 2, 8.0) == 2);
    sotu_queue_finish(&q, 5, false);
    sotu_queue_recover(&q, 5); /* the late attempt succeeded after all */
    CHECK(q.n_done == 2 && q.n_failed == 0 && q.state[5] == SOTU_TASK_DONE);
    for (int t; (t = sotu_queue_take(&q, 1, 9.0)) >= 0;)
        sotu_queue_finish(&q, t, true);
    sotu_queue_finish(&q, 3, true);
    sotu_queue_finish(&q, 2, true);
    CHECK(!sotu_queue_has_work(&q) && sotu_queue_finished(&q) && q.n_done == 7);
    sotu_queue_free(&q);

    CHECK(sotu_queue_init(&q, 0, NULL) == SOTU_OK);
    CHECK(sotu_queue_take(&q, 0, 0.0) == -1 && sotu_queue_finished(&q));
    sotu_queue_free(&q);
    return check_finish("test_schedule");
}
