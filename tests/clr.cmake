# CLR as a method of `sotu train` (issue 9): the per-task pieces and the
# module codec, then the pipeline over MPI (tests/mpi/clr_train.sh).
sotu_add_test(test_clr_task SOURCES unit/test_clr_task.c LABELS unit TIMEOUT 60)

# The pipeline on 3 ranks: corrupt module rejected, checkpoint checked with
# h5py + PyTorch, --resume, damaged files on disk (backbone written by
# test_clr_task --backbone).
sotu_add_script_test(mpi_clr_train COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/clr_train.sh
                     LABELS mpi TIMEOUT 300 NEEDS numpy h5py torch fmnist)
set_property(TEST mpi_clr_train APPEND PROPERTY ENVIRONMENT
             "CLR_TASK_BIN=$<TARGET_FILE:test_clr_task>")

# The commands on a CLR checkpoint (tests/mpi/clr_cli.sh): predict --task T
# against the run's recorded accuracies, predict without --task and merge on
# a CLR run fail with a reason, eval re-evaluates every module (1 and 2 ranks).
sotu_add_script_test(mpi_clr_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/clr_cli.sh
                     LABELS mpi TIMEOUT 300 NEEDS numpy h5py fmnist)
set_property(TEST mpi_clr_cli APPEND PROPERTY ENVIRONMENT
             "CLR_TASK_BIN=$<TARGET_FILE:test_clr_task>")
