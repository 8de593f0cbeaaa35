/* `sotu inspect` for safetensors files and sharded index files. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"
#include "cli/commands.h"
#include "cli/inspect/inspect.h"
#include "io/safetensors.h"

int sotu_inspect_safetensors(const char *path)
{
    sotu_safetensors st;
    sotu_status s = sotu_safetensors_open(path, &st);
    if (s != SOTU_OK)
        return sotu_cmd_fail("inspect", s);
    uint64_t values = 0, bytes = 0;
    char dtypes[128] = "";
    for (int i = 0; i < st.n_tensors; i++) {
        const sotu_safetensors_tensor *t = &st.tensors[i];
        values += t->count;
        bytes += t->end - t->begin;
        char key[16];
        snprintf(key, sizeof key, " %s", t->dtype);
        if (!strstr(dtypes, key) && strlen(dtypes) + strlen(key) < sizeof dtypes)
            strcat(dtypes, key);
    }
    printf("safetensors %s\n", path);
    printf("shards      %d\n", st.n_shards);
    printf("tensors     %d, %" PRIu64 " values (%.2f M), %" PRIu64 " bytes, dtypes%s\n",
           st.n_tensors, values, (double)values / 1e6, bytes, dtypes);
    for (int i = 0; i < st.n_meta; i++)
        printf("metadata    %s = %s\n", st.meta_keys[i], st.meta_values[i]);
    if (sotu_log_get_level() >= SOTU_LOG_DEBUG) {
        printf("\n  %-48s %-6s %-20s %12s\n", "tensor", "dtype", "shape", "elements");
        for (int i = 0; i < st.n_tensors; i++) {
            const sotu_safetensors_tensor *t = &st.tensors[i];
            char shape[96];
            size_t n = (size_t)snprintf(shape, sizeof shape, "[");
            for (int d = 0; d < t->ndim && n < sizeof shape; d++)
                n += (size_t)snprintf(shape + n, sizeof shape - n, "%s%lld", d ? "," : "",
                                      (long long)t->shape[d]);
            if (n < sizeof shape)
                snprintf(shape + n, sizeof shape - n, "]");
            printf("  %-48s %-6s %-20s %12" PRIu64 "\n", t->name, t->dtype, shape, t->count);
        }
    }
    sotu_safetensors_free(&st);
    return SOTU_EXIT_OK;
}
