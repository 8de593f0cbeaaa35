/* libFuzzer target: the YAML configuration loader and --set overrides
 * (common/config.h). The input is the file's bytes, then after each NUL
 * byte one override ("a.b=value"). A configuration that loads must print
 * as YAML that loads back to the same YAML (the contract of
 * sotu_config_print). */
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t file_size = nul ? (size_t)(nul - data) : size;
    sotu_config *cfg = malloc(sizeof *cfg), *back = malloc(sizeof *back);
    char *sets = malloc(size - file_size + 1), *yaml = NULL, *yaml_back = NULL;
    if (!cfg || !back || !sets)
        abort();
    const char *path = fuzz_write_temp(data, file_size, "config.yaml");
    if (sotu_config_load(cfg, path) != SOTU_OK)
        goto cleanup;
    if (nul) {
        size_t n = size - file_size - 1;
        memcpy(sets, nul + 1, n);
        sets[n] = '\0';
        for (char *a = sets; a <= sets + n; a += strlen(a) + 1)
            sotu_config_set(cfg, a);
    }
    sotu_config_validate(cfg);
    if (!(yaml = sotu_config_to_yaml(cfg)))
        abort();
    path = fuzz_write_temp((const uint8_t *)yaml, strlen(yaml), "config.yaml");
    if (sotu_config_load(back, path) != SOTU_OK) {
        fprintf(stderr, "printed configuration does not load: %s\n%s", sotu_last_error(), yaml);
        abort();
    }
    if (!(yaml_back = sotu_config_to_yaml(back)))
        abort();
    if (strcmp(yaml, yaml_back) != 0) {
        fprintf(stderr, "printed configuration loads differently:\n%s\n---\n%s", yaml, yaml_back);
        abort();
    }
cleanup:
    free(yaml);
    free(yaml_back);
    free(sets);
    free(cfg);
    free(back);
    return 0;
}
