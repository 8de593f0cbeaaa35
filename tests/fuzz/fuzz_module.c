/* libFuzzer target: the task-module reader (io/module.h) on arbitrary bytes:
 * the header parser without a layout (sotu inspect), then decoding against
 * the layout it found, and decoding against a fixed layout. A module that
 * decodes must also parse, and must encode again and decode to the same
 * header and bitwise the same values. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "fuzz_util.h"
#include "io/module.h"
#include "module_layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ZSTD_DCtx *dctx;
    static ZSTD_CCtx *cctx;
    if (!dctx && !(dctx = ZSTD_createDCtx()))
        abort();
    if (!cctx && !(cctx = ZSTD_createCCtx()))
        abort();
    const sotu_tensor_table *layout = &fuzz_module_layout;
    sotu_module m, again, head;
    sotu_tensor_table found;
    size_t payload = 0;
    bool parsed = sotu_module_read_head(data, size, &head, &found, &payload, "fuzz input") ==
                  SOTU_OK;
    if (parsed) {
        if (sotu_module_decode(data, size, &found, &again, dctx, "fuzz input") == SOTU_OK)
            sotu_module_free(&again);
        free(found.t);
    }
    if (sotu_module_decode(data, size, layout, &m, dctx, "fuzz input") != SOTU_OK)
        return 0;
    if (!parsed || head.counter != m.counter || strcmp(head.task_name, m.task_name) != 0)
        abort();
    size_t cap = sotu_module_encode_bound(layout, &m), written = 0;
    void *buf = malloc(cap);
    if (!buf)
        abort();
    if (sotu_module_encode(buf, cap, &written, &m, layout, cctx, 1) != SOTU_OK ||
        sotu_module_decode(buf, written, layout, &again, dctx, "re-encoded fuzz input") != SOTU_OK)
        abort();
    if (again.task_index != m.task_index || again.kind != m.kind || again.counter != m.counter ||
        strcmp(again.task_name, m.task_name) != 0 || again.prov.theta0 != m.prov.theta0 ||
        strcmp(again.prov.config, m.prov.config) != 0 ||
        memcmp(again.values, m.values, sizeof(float) * layout->total) != 0)
        abort();
    free(buf);
    sotu_module_free(&again);
    sotu_module_free(&m);
    return 0;
}
