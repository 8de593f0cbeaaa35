/* libFuzzer target: the safetensors reader (io/safetensors.h) on one file:
 * header validation, then every F32/F16/BF16 tensor read as float32. */
#include <stdlib.h>

#include "fuzz_util.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_temp(data, size, "input.safetensors");
    sotu_safetensors st;
    if (sotu_safetensors_open(path, &st) != SOTU_OK)
        return 0;
    for (int i = 0; i < st.n_tensors; i++) {
        const sotu_safetensors_tensor *t = &st.tensors[i];
        if (sotu_safetensors_find(&st, t->name) < 0)
            abort();
        if (t->count > ((size_t)1 << 24))
            continue;
        float *dst = malloc((size_t)t->count * sizeof *dst + 1);
        if (!dst)
            abort();
        sotu_safetensors_read_f32(&st, i, dst);
        free(dst);
    }
    for (int k = 0; k < st.n_meta; k++)
        if (!sotu_safetensors_meta(&st, st.meta_keys[k]))
            abort();
    sotu_safetensors_free(&st);
    return 0;
}
