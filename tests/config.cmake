# Configuration (common/config.c) and the shared command-line helpers (cli/cli.c).
sotu_add_test(test_config SOURCES unit/test_config.c LABELS unit)
sotu_add_test(test_cli SOURCES unit/test_cli.c LABELS unit)
