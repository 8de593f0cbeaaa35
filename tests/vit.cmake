# ViT engine and optimizer: PyTorch reference fixture (tests/data/vit_reference.h5,
# found through SOTU_SOURCE_DIR), finite differences, naive kernel loops.
sotu_add_test(test_vit_reference SOURCES unit/test_vit_reference.c LABELS reference TIMEOUT 120)
sotu_add_test(test_vit_gradcheck SOURCES unit/test_vit_gradcheck.c LABELS unit TIMEOUT 60)
sotu_add_test(test_vit_kernels SOURCES unit/test_vit_kernels.c LABELS unit TIMEOUT 60)
sotu_add_test(test_optim SOURCES unit/test_optim.c LABELS unit TIMEOUT 60)
# Bitwise the same kernels and training steps at 1, 2, 3 and 4 threads.
sotu_add_test(test_thread_determinism SOURCES unit/test_thread_determinism.c LABELS unit TIMEOUT 300)
