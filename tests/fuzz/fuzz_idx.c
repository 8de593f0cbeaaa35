/* libFuzzer target: the IDX reader (io/idx.h), plain or gzip, as images and
 * as labels. A file read must hold exactly the bytes its header promises. */
#include <stdlib.h>

#include "fuzz_util.h"
#include "io/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_temp(data, size, "input-idx");
    const uint32_t magics[2] = {SOTU_IDX_MAGIC_IMAGES, SOTU_IDX_MAGIC_LABELS};
    for (int m = 0; m < 2; m++) {
        sotu_idx x;
        if (sotu_idx_read(path, magics[m], &x) != SOTU_OK)
            continue;
        size_t expect = (size_t)x.n * (x.ndim == 3 ? (size_t)x.rows * (size_t)x.cols : 1);
        if (x.size != expect || (x.size && !x.data))
            abort();
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < x.size; i += 4096)
            sink ^= x.data[i];
        if (x.size)
            sink ^= x.data[x.size - 1];
        (void)sink;
        sotu_idx_free(&x);
    }
    return 0;
}
