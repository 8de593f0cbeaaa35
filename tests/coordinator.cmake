sotu_add_test(test_schedule SOURCES unit/test_schedule.c LABELS unit)
sotu_add_script_test(train_determinism COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi/train_determinism.sh
                     LABELS mpi reference TIMEOUT 600 NEEDS numpy h5py torch fmnist)
sotu_add_test(test_result_dir SOURCES unit/test_result_dir.c LABELS unit)
# Serial `sotu train` at 1 and 3 threads: bitwise the same merged weights,
# deltas and CLR modules (tests/train_threads.sh).
sotu_add_script_test(train_threads COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/train_threads.sh
                     LABELS reference TIMEOUT 600 NEEDS numpy h5py fmnist)
sotu_add_test(test_cli_parse SOURCES unit/test_cli_parse.c LABELS unit)
# sotu.tuning masked: serial vs mpiexec -n 3 bitwise, differs from posthoc,
# rescale refused (tests/mpi/masked_tuning.sh).
sotu_add_script_test(mpi_masked_tuning COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/masked_tuning.sh
                     LABELS mpi TIMEOUT 600 NEEDS numpy h5py torch fmnist)
