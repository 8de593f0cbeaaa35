# ViT engine and optimizer: PyTorch reference, finite differences, naive kernels.
sotu_add_test(test_vit_reference SOURCES unit/test_vit_reference.c LABELS reference)
