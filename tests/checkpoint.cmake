# Checkpoint (io/checkpoint.c), its inspection and the thin MPI layer.
sotu_add_test(test_checkpoint SOURCES unit/test_checkpoint.c LABELS unit TIMEOUT 60)
sotu_add_test(test_mpi_util SOURCES mpi/test_mpi_util.c LABELS mpi MPI 3 TIMEOUT 120)
