# Data side: IDX reader, task files and manifest, weights files, the
# Fashion-MNIST presets and the `sotu data` / `sotu inspect` commands.
sotu_add_test(test_idx SOURCES unit/test_idx.c LABELS unit TIMEOUT 60)
sotu_add_test(test_taskset SOURCES unit/test_taskset.c LABELS unit TIMEOUT 60)
sotu_add_test(test_manifest SOURCES unit/test_manifest.c LABELS unit TIMEOUT 60)
sotu_add_test(test_weights SOURCES unit/test_weights.c LABELS unit TIMEOUT 60)
sotu_add_test(test_fmnist SOURCES unit/test_fmnist.c LABELS unit TIMEOUT 120 NEEDS fmnist)

# Command-line scripts (env SOTU_BIN, SOTU_PYTHON from tests/CMakeLists.txt).
set(_data_sh ${CMAKE_CURRENT_SOURCE_DIR}/data)
sotu_add_script_test(cli_data_fmnist5_h5py COMMAND bash ${_data_sh}/cli_fmnist5_h5py.sh
                     LABELS reference TIMEOUT 120 NEEDS numpy h5py yaml fmnist)
sotu_add_script_test(cli_data_bad_input COMMAND bash ${_data_sh}/cli_bad_input.sh
                     LABELS unit TIMEOUT 180 NEEDS numpy h5py fmnist)
sotu_add_script_test(cli_inspect COMMAND bash ${_data_sh}/cli_inspect.sh LABELS unit TIMEOUT 120
                     NEEDS numpy h5py fmnist)
sotu_add_script_test(cli_data_fmnist53 COMMAND bash ${_data_sh}/cli_fmnist53.sh
                     LABELS slow TIMEOUT 180 NEEDS fmnist)
# Output commands refuse an output that is an input and an existing output
# without --force; export/predict need --task on a run checkpoint with heads.
sotu_add_script_test(cli_outputs COMMAND bash ${_data_sh}/cli_outputs.sh LABELS unit TIMEOUT 300 NEEDS numpy h5py torch fmnist)
