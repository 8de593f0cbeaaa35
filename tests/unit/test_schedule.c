/* Task queue: largest first, each task handed out once, resume skips done. */
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

    CHECK(sotu_queue_init(&q, 0, NULL) == SOTU_OK);
    CHECK(sotu_queue_take(&q, 0, 0.0) == -1 && sotu_queue_finished(&q));
    sotu_queue_free(&q);
    return check_finish("test_schedule");
}
