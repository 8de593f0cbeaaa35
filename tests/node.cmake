# The node: threads, the OpenBLAS core, doctor, installation (issue 15).
sotu_add_test(test_threads SOURCES unit/test_threads.c LABELS unit TIMEOUT 60)
sotu_add_test(test_blas_core SOURCES unit/test_blas_core.c LABELS unit TIMEOUT 60)

set(_node_sh ${CMAKE_CURRENT_SOURCE_DIR}/node)
sotu_add_script_test(node_doctor COMMAND bash ${_node_sh}/doctor.sh
                     LABELS unit TIMEOUT 120 NEEDS python3)
sotu_add_script_test(node_blas_reexec COMMAND bash ${_node_sh}/blas_reexec.sh
                     LABELS mpi TIMEOUT 300 NEEDS python3)
sotu_add_script_test(node_threads_rule COMMAND bash ${_node_sh}/threads_rule.sh
                     LABELS mpi TIMEOUT 300 NEEDS python3 taskset)
sotu_add_script_test(node_install
  COMMAND bash ${_node_sh}/install.sh ${CMAKE_COMMAND} ${CMAKE_BINARY_DIR}
  LABELS unit TIMEOUT 120)
