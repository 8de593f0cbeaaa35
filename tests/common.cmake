sotu_add_test(test_rng SOURCES unit/test_rng.c LABELS unit)
