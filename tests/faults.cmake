# Fault injection (docs/RELIABILITY.md): unit-level write failures and a
# model too large for memory; `sotu train` with divergent tasks, a bad task
# file and ranks killed with SIGKILL (then --resume).
sotu_add_test(test_faults SOURCES unit/test_faults.c LABELS unit TIMEOUT 60)
sotu_add_script_test(faults_train COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/faults/faults_train.sh
                     LABELS mpi TIMEOUT 400)
# The real `sotu train` and the other writing commands on a full tmpfs (root)
# and under a file-size limit (ulimit -f): exit 4 naming the file and
# strerror, no crash, previous files intact, no temporary file; exit 77
# (skipped) where neither is possible.
sotu_add_script_test(disk_full_train COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/faults/disk_full_train.sh
                     LABELS mpi TIMEOUT 600)
set_tests_properties(disk_full_train PROPERTIES SKIP_RETURN_CODE 77)
set_property(TEST disk_full_train APPEND PROPERTY ENVIRONMENT
             "CLR_TASK_BIN=$<TARGET_FILE:test_clr_task>")
sotu_add_script_test(disk_full_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/faults/disk_full_cli.sh
                     LABELS unit TIMEOUT 600)
set_tests_properties(disk_full_cli PROPERTIES SKIP_RETURN_CODE 77)
# Fletcher32 checksums in every weights file and checkpoint; a flipped bit is
# exit 3 naming the dataset in eval, export, predict, inspect and train.
sotu_add_script_test(checksums COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/faults/checksums.sh
                     LABELS unit TIMEOUT 300)
