sotu_add_test(test_schedule SOURCES unit/test_schedule.c LABELS unit)
