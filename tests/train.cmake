# Fine-tuning loop (worker/finetune.c), `sotu finetune`, and the sgemm peak
# used by bench/bench_train.sh.
sotu_add_test(test_finetune SOURCES unit/test_finetune.c LABELS unit TIMEOUT 120)


# fmnist5 task 0 from the committed pretrained backbone: fine-tuning all
# weights must beat the frozen backbone with a trained head.
sotu_add_script_test(test_finetune_vs_frozen
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/finetune_vs_frozen.sh
  LABELS slow TIMEOUT 900 NEEDS fmnist)
