# CLR as a method of `sotu train` (issue 9): the per-task pieces and the
# module codec, then the pipeline over MPI (tests/mpi/clr_train.sh).
sotu_add_test(test_clr_task SOURCES unit/test_clr_task.c LABELS unit TIMEOUT 60)
