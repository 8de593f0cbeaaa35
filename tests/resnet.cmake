# ResNet engine with CLR layers: PyTorch reference fixture
# (tests/data/resnet_reference.h5, found through SOTU_SOURCE_DIR), finite
# differences of every kernel, naive-loop kernel comparisons, model checks.
sotu_add_test(test_resnet_reference SOURCES unit/test_resnet_reference.c LABELS reference TIMEOUT 120)
sotu_add_test(test_resnet_gradcheck SOURCES unit/test_resnet_gradcheck.c LABELS unit TIMEOUT 60)
sotu_add_test(test_resnet_kernels SOURCES unit/test_resnet_kernels.c LABELS unit TIMEOUT 60)
sotu_add_test(test_resnet_model SOURCES unit/test_resnet_model.c LABELS unit TIMEOUT 60)

# ResNet weight files (io/resnet_io): round trip, bad files, and the
# files loaded into a torchvision-named PyTorch ResNet with strict=True.
sotu_add_test(test_resnet_io SOURCES unit/test_resnet_io.c LABELS unit TIMEOUT 60)
sotu_add_script_test(test_resnet_weights_torch
  COMMAND ${SOTU_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/check_resnet_weights.py
          resnet_weights_torch.d $<TARGET_FILE:test_resnet_io>
  LABELS reference TIMEOUT 120 NEEDS numpy h5py torch)
# `sotu import safetensors` of torchvision ResNets, checked with sotu predict.
sotu_add_script_test(test_resnet_import_torch
  COMMAND ${SOTU_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/check_resnet_import.py
          resnet_import_torch.d
  LABELS reference TIMEOUT 120 NEEDS numpy h5py torch)
# `sotu pretrain` with model.arch resnet18 on a made-up Fashion-MNIST.
sotu_add_script_test(test_pretrain_resnet
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pretrain_resnet.sh
  LABELS unit TIMEOUT 120 NEEDS numpy h5py)
# `sotu bench train --model resnet18-w8 --tune clr|all` (CLR's step time
# relative to full fine-tuning in bench/RESULTS.md).
sotu_add_script_test(test_bench_train_resnet
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/bench_train_resnet.sh
  LABELS unit TIMEOUT 60)
