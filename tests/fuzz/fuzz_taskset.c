/* libFuzzer target: the HDF5 task-file reader (io/taskset.h) on a file image
 * in memory. A task that reads must have labels in range and the shapes
 * its header promised. */
#include <stdlib.h>

#include "fuzz_util.h"
#include "io/taskset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sotu_taskset t;
    if (sotu_taskset_read_image(data, size, "fuzz-task.h5", &t) != SOTU_OK)
        return 0;
    if (t.classes < 1 || !t.class_names)
        abort();
    for (int i = 0; i < t.n_train; i++)
        if (t.train_labels[i] < 0 || t.train_labels[i] >= t.classes)
            abort();
    for (int i = 0; i < t.n_test; i++)
        if (t.test_labels[i] < 0 || t.test_labels[i] >= t.classes)
            abort();
    size_t item = (size_t)t.height * (size_t)t.width * (size_t)t.channels;
    volatile uint8_t sink = 0;
    if (t.n_train)
        sink ^= t.train_images[(size_t)t.n_train * item - 1];
    if (t.n_test)
        sink ^= t.test_images[(size_t)t.n_test * item - 1];
    (void)sink;
    sotu_taskset_free(&t);
    return 0;
}
