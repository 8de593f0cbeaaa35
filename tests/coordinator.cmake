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
# A sweep's summary (every classifier, forgetting, BWT, bytes, seconds, mean
# ± std over seeds, report.html) with each distinct model evaluated once
# (tests/mpi/sweep_summary.sh); per-step scalars, the same rows serially and
# on 3 ranks but for the timing columns (tests/mpi/step_scalars.sh).
sotu_add_script_test(mpi_sweep_summary COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/sweep_summary.sh
                     LABELS mpi TIMEOUT 600 NEEDS numpy h5py torch fmnist)
# The frozen baseline trained once for training groups that differ only in
# sotu.* keys (tests/mpi/sweep_frozen_shared.sh).
sotu_add_script_test(mpi_sweep_frozen_shared COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/sweep_frozen_shared.sh
                     LABELS mpi TIMEOUT 600 NEEDS numpy h5py torch fmnist)
sotu_add_script_test(mpi_step_scalars COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/step_scalars.sh
                     LABELS mpi TIMEOUT 600 NEEDS numpy h5py torch fmnist)
# eval.rank_by: a sweep ranked by the ridge classifier's validation figure
# (<classifier>_val columns, sorted, named in sweep.md and report.html), the
# default still by merged_val_acc, 1 rank = 3 ranks, config errors exit 2
# (tests/mpi/sweep_rank_by.sh).
sotu_add_script_test(mpi_sweep_rank_by COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/sweep_rank_by.sh
                     LABELS mpi TIMEOUT 600 NEEDS numpy h5py torch fmnist)
