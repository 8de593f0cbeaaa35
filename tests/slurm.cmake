# Slurm batch runs (label slurm: each script starts a real single-node Slurm
# with tests/slurm/cluster.sh under the build directory and stops it on exit;
# needs root, slurm-wlm and munge), and crash/signal resume without Slurm
# (label mpi).
if(SOTU_SLURM_TESTS)
  foreach(t sbatch_run array_sweep requeue)
    sotu_add_script_test(slurm_${t} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/slurm/${t}.sh
                         LABELS slurm TIMEOUT 300 NEEDS root slurm numpy h5py torch fmnist)
    # One cluster at a time: the daemons listen on fixed ports.
    set_tests_properties(slurm_${t} PROPERTIES RESOURCE_LOCK sotu_slurm_cluster)
  endforeach()
endif()
sotu_add_script_test(mpi_kill_resume COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/kill_resume.sh
                     LABELS mpi TIMEOUT 300 NEEDS numpy h5py torch fmnist)
sotu_add_script_test(mpi_signal_stop COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/signal_stop.sh
                     LABELS mpi TIMEOUT 300 NEEDS numpy h5py torch fmnist)
sotu_add_script_test(mpi_sweep_job COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/sweep_job.sh
                     LABELS mpi TIMEOUT 300 NEEDS numpy h5py torch fmnist)
sotu_add_script_test(mpi_sweep_summary COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/sweep_summary.sh
                     LABELS mpi TIMEOUT 400 NEEDS numpy h5py torch fmnist)
sotu_add_script_test(mpi_step_scalars COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/step_scalars.sh
                     LABELS mpi TIMEOUT 400 NEEDS numpy h5py torch fmnist)
