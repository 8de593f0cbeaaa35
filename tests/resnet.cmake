# ResNet engine with CLR layers: PyTorch reference fixture
# (tests/data/resnet_reference.h5, found through SOTU_SOURCE_DIR), finite
# differences of every kernel, naive-loop kernel comparisons, model checks.
sotu_add_test(test_resnet_reference SOURCES unit/test_resnet_reference.c LABELS reference TIMEOUT 120)
sotu_add_test(test_resnet_gradcheck SOURCES unit/test_resnet_gradcheck.c LABELS unit TIMEOUT 60)
sotu_add_test(test_resnet_kernels SOURCES unit/test_resnet_kernels.c LABELS unit TIMEOUT 60)
sotu_add_test(test_resnet_model SOURCES unit/test_resnet_model.c LABELS unit TIMEOUT 60)
