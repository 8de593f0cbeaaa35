/* libFuzzer target: the task manifest reader (io/taskset.h). The manifest is
 * written into a private directory holding empty t00.h5 .. t03.h5, so valid
 * manifests get past the existence check; one that reads must write and
 * read back to the same tasks. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "io/taskset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        const char *dir = fuzz_temp_dir();
        for (int i = 0; i < 4; i++) {
            char p[600];
            snprintf(p, sizeof p, "%s/t%02d.h5", dir, i);
            FILE *f = fopen(p, "wb");
            if (!f || fclose(f) != 0)
                abort();
        }
        ready = 1;
    }
    const char *path = fuzz_write_temp(data, size, "manifest.yaml");
    sotu_manifest m, back;
    if (sotu_manifest_read(path, &m) != SOTU_OK)
        return 0;
    if (sotu_manifest_write(path, &m) != SOTU_OK || sotu_manifest_read(path, &back) != SOTU_OK)
        abort();
    if (back.n_tasks != m.n_tasks || strcmp(back.name, m.name) != 0)
        abort();
    for (int i = 0; i < m.n_tasks; i++)
        if (strcmp(back.tasks[i].name, m.tasks[i].name) != 0 ||
            strcmp(back.tasks[i].file, m.tasks[i].file) != 0 ||
            back.tasks[i].classes != m.tasks[i].classes ||
            back.tasks[i].n_train != m.tasks[i].n_train)
            abort();
    sotu_manifest_free(&back);
    sotu_manifest_free(&m);
    return 0;
}
