# Fault injection (docs/RELIABILITY.md): unit-level write failures and a
# model too large for memory; `sotu train` with divergent tasks, a bad task
# file and ranks killed with SIGKILL (then --resume).
sotu_add_test(test_faults SOURCES unit/test_faults.c LABELS unit TIMEOUT 60)
sotu_add_script_test(faults_train COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/faults/faults_train.sh
                     LABELS mpi TIMEOUT 400 NEEDS numpy h5py torch fmnist)
