# Fault injection (docs/RELIABILITY.md): unit-level write failures and a
# model too large for memory; `sotu train` with divergent tasks, a bad task
# file and ranks killed with SIGKILL (then --resume).
sotu_add_test(test_faults SOURCES unit/test_faults.c LABELS unit TIMEOUT 60)
sotu_add_script_test(faults_train COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/faults/faults_train.sh
                     LABELS mpi TIMEOUT 400 NEEDS numpy h5py torch fmnist)

# Provenance of stored results (issue 14, defect 2): resume and merge refuse
# deltas and modules of another θ0, other training settings or a changed task
# file (exit 2, nothing rewritten), --retrain-changed retrains exactly those
# tasks, a version-4 delta is redone (tests/faults/provenance.sh).
sotu_add_script_test(faults_provenance COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/faults/provenance.sh
                     LABELS mpi TIMEOUT 600 NEEDS numpy h5py torch fmnist)
set_property(TEST faults_provenance APPEND PROPERTY ENVIRONMENT
             "CLR_TASK_BIN=$<TARGET_FILE:test_clr_task>")
# `sotu merge` writes a new result directory and never touches the run's
# files: complete, partial (missing/truncated delta: exit 3), --out refusals,
# full disk (tmpfs as root: exit 4, nothing left).
sotu_add_script_test(faults_merge COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/faults/merge_result.sh
                     LABELS mpi TIMEOUT 600 NEEDS numpy h5py torch fmnist)
# Inputs refused at the start (classes differing from the manifest, no test
# images, a newer format_version, an empty config, method sequential, a
# stray key=value) and stopped tasks shown as not run (issue 14, defect 9).
sotu_add_script_test(faults_inputs COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/faults/inputs_status.sh
                     LABELS mpi TIMEOUT 400 NEEDS numpy h5py torch fmnist)
# The real `sotu train` and the other writing commands on a full tmpfs (root)
# and under a file-size limit (ulimit -f): exit 4 naming the file and
# strerror, no crash, previous files intact, no temporary file; exit 77
# (skipped) where neither is possible.
sotu_add_script_test(disk_full_train COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/faults/disk_full_train.sh
                     LABELS mpi TIMEOUT 600 NEEDS root numpy torch fmnist)
set_tests_properties(disk_full_train PROPERTIES SKIP_RETURN_CODE 77)
set_property(TEST disk_full_train APPEND PROPERTY ENVIRONMENT
             "CLR_TASK_BIN=$<TARGET_FILE:test_clr_task>")
sotu_add_script_test(disk_full_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/faults/disk_full_cli.sh
                     LABELS unit TIMEOUT 600 NEEDS root numpy torch fmnist)
set_tests_properties(disk_full_cli PROPERTIES SKIP_RETURN_CODE 77)
# Fletcher32 checksums in every weights file and checkpoint; a flipped bit is
# exit 3 naming the dataset in eval, export, predict, inspect and train.
sotu_add_script_test(checksums COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/faults/checksums.sh
                     LABELS unit TIMEOUT 300 NEEDS numpy h5py torch fmnist)
