# Data side: IDX reader, task files and manifest, weights files, the
# Fashion-MNIST presets and the `sotu data` / `sotu inspect` commands.
sotu_add_test(test_idx SOURCES unit/test_idx.c LABELS unit TIMEOUT 60)
sotu_add_test(test_taskset SOURCES unit/test_taskset.c LABELS unit TIMEOUT 60)
sotu_add_test(test_manifest SOURCES unit/test_manifest.c LABELS unit TIMEOUT 60)
sotu_add_test(test_weights SOURCES unit/test_weights.c LABELS unit TIMEOUT 60)
