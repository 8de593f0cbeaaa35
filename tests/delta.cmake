# The sparse delta pipeline: codec, masks, merge.
sotu_add_test(test_delta_codec SOURCES unit/test_delta_codec.c LABELS unit)
target_compile_definitions(test_delta_codec PRIVATE SOTU_SOURCE_DIR_FALLBACK="${CMAKE_SOURCE_DIR}")
sotu_add_test(test_delta_mask SOURCES unit/test_delta_mask.c LABELS unit)
sotu_add_test(test_merge SOURCES unit/test_merge.c LABELS unit)
sotu_add_script_test(test_bench_codec_smoke
  COMMAND $<TARGET_FILE:sotu> bench codec --model tiny --keep 0.1 --repeat 1 LABELS unit)
sotu_add_script_test(test_bench_merge_smoke
  COMMAND $<TARGET_FILE:sotu> bench merge --model tiny --tasks 4 --repeat 1 LABELS unit)
sotu_add_script_test(test_inspect_delta
  COMMAND $<TARGET_FILE:sotu> -v inspect ${CMAKE_SOURCE_DIR}/tests/data/delta/good.sotud LABELS unit)
# --ship-keep cuts the stored delta (keep 0.5) to the nested keep-0.3 sub-mask
# before timing; the codec line carries the zstd-alone peer.
sotu_add_script_test(test_bench_merge_ship_keep
  COMMAND $<TARGET_FILE:sotu> bench merge --delta ${CMAKE_SOURCE_DIR}/tests/data/delta/good.sotud
          --ship-keep 0.3 --repeat 1 LABELS unit)
set_tests_properties(test_bench_merge_ship_keep PROPERTIES
                     PASS_REGULAR_EXPRESSION "\"keep\":0\\.29999")
set_tests_properties(test_bench_codec_smoke PROPERTIES PASS_REGULAR_EXPRESSION "\"decode_vs_zstd\":")

# Provenance (io/provenance.h): the block's round trip and truncations, the
# file checksum, the key diff, and the comparison resume and merge make.
sotu_add_test(test_provenance SOURCES unit/test_provenance.c LABELS unit)
