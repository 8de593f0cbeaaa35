# Interop: safetensors import/export against PyTorch, predictions,
# preprocessing, image-folder import (io/safetensors, io/preprocess,
# io/images, sotu import/export/predict, sotu data import-images/manifest).
sotu_add_test(test_safetensors SOURCES unit/test_safetensors.c LABELS unit TIMEOUT 60)
sotu_add_test(test_preprocess SOURCES unit/test_preprocess.c LABELS unit TIMEOUT 60)

sotu_add_script_test(test_safetensors_torch
  COMMAND ${SOTU_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/check_safetensors_interop.py
          safetensors_torch.d $<TARGET_FILE:ckpt_torch_fixture>
  LABELS reference TIMEOUT 120 NEEDS numpy h5py torch)
sotu_add_script_test(test_import_images
  COMMAND ${SOTU_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/check_import_images.py
          import_images.d
  LABELS reference TIMEOUT 120 NEEDS numpy h5py)
