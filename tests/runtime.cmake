# The run's life cycle under faults of the launcher and the machine
# (docs/RELIABILITY.md): SIGTERM/SIGINT to mpiexec and to scripts/sotu-mpiexec,
# a worker stopped mid-task (mpi.task_timeout), two runs into one directory.
sotu_add_script_test(mpi_launcher_stop COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/launcher_stop.sh
                     LABELS mpi TIMEOUT 300 NEEDS numpy h5py torch fmnist)
sotu_add_script_test(mpi_hung_worker COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/hung_worker.sh
                     LABELS mpi TIMEOUT 400 NEEDS numpy h5py torch fmnist)
sotu_add_script_test(mpi_run_lock COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/run_lock.sh
                     LABELS mpi TIMEOUT 300 NEEDS numpy torch fmnist)
set_property(TEST mpi_run_lock APPEND PROPERTY ENVIRONMENT
             "CLR_TASK_BIN=$<TARGET_FILE:test_clr_task>")
# One rank of `sotu eval` fails before the first collective (its manifest is
# missing): a clean error and exit status, no hang (issue 16).
sotu_add_script_test(mpi_eval_rank_fails COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/eval_rank_fails.sh
                     LABELS mpi TIMEOUT 600 NEEDS numpy h5py torch fmnist)
