sotu_add_test(test_rng SOURCES unit/test_rng.c LABELS unit)
sotu_add_test(test_mask SOURCES unit/test_mask.c LABELS unit)
