# The sparse delta pipeline: codec, masks, merge.
sotu_add_test(test_delta_codec SOURCES unit/test_delta_codec.c LABELS unit)
target_compile_definitions(test_delta_codec PRIVATE SOTU_SOURCE_DIR_FALLBACK="${CMAKE_SOURCE_DIR}")
sotu_add_test(test_delta_mask SOURCES unit/test_delta_mask.c LABELS unit)
sotu_add_test(test_merge SOURCES unit/test_merge.c LABELS unit)
