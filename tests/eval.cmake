# Evaluation (eval/evaluate.c, classifier.c, metrics.c, report.c).
sotu_add_test(test_eval_metrics SOURCES unit/test_eval_metrics.c LABELS unit TIMEOUT 60)
sotu_add_script_test(test_eval_report_chromium
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/eval_report_chromium.sh $<TARGET_FILE:test_eval_metrics>
  LABELS unit TIMEOUT 180 NEEDS python3 chromium)
sotu_add_test(test_eval_mpi SOURCES mpi/test_eval_mpi.c LABELS mpi MPI 3 TIMEOUT 120)
