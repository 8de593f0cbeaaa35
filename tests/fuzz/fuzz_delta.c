/* libFuzzer target: the sparse delta decoder (io/delta.h) on arbitrary bytes.
 * A decoded delta must encode again and decode to the same tensors. */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "fuzz_util.h"
#include "io/delta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ZSTD_DCtx *dctx;
    static ZSTD_CCtx *cctx;
    if (!dctx && !(dctx = ZSTD_createDCtx()))
        abort();
    if (!cctx && !(cctx = ZSTD_createCCtx()))
        abort();
    sotu_delta d, again;
    memset(&again, 0, sizeof again);
    if (sotu_delta_decode(data, size, NULL, &d, dctx, "fuzz input") != SOTU_OK)
        return 0;
    size_t cap = sotu_delta_encode_bound(&d), written = 0;
    void *buf = malloc(cap ? cap : 1);
    if (!buf)
        abort();
    if (sotu_delta_encode(buf, cap, &written, &d, cctx, 1) != SOTU_OK ||
        sotu_delta_decode(buf, written, NULL, &again, dctx, "re-encoded fuzz input") != SOTU_OK)
        abort();
    if (again.n_tensors != d.n_tensors || memcmp(&again.prov, &d.prov, sizeof d.prov) != 0)
        abort();
    for (int i = 0; i < d.n_tensors; i++) {
        const sotu_delta_tensor *a = &d.tensors[i], *b = &again.tensors[i];
        if (a->kept != b->kept || a->count != b->count || strcmp(a->name, b->name) != 0)
            abort();
        if (d.dtype == SOTU_DELTA_F32 && a->kept &&
            memcmp(a->values, b->values, a->kept * sizeof *a->values) != 0)
            abort();
    }
    free(buf);
    sotu_delta_free(&again);
    sotu_delta_free(&d);
    return 0;
}
