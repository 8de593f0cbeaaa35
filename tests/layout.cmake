# The layout: the folders' includes follow common <- io <- worker <- eval <-
# coordinator <- cli (mpi beside: common <- mpi <- eval) and form no cycle
# (README, "Layout"; the build enforces the same order, CMakeLists.txt).
sotu_add_script_test(layout_includes
  COMMAND ${SOTU_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/check_layers.py ${CMAKE_SOURCE_DIR}
  LABELS unit TIMEOUT 60)
