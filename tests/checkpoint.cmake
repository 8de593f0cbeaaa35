# Checkpoint (io/checkpoint.c), its inspection and the thin MPI layer.
sotu_add_test(test_checkpoint SOURCES unit/test_checkpoint.c LABELS unit TIMEOUT 60)
sotu_add_test(test_mpi_util SOURCES mpi/test_mpi_util.c LABELS mpi MPI 3 TIMEOUT 120)

# Interop: the checkpoint loads into a PyTorch ViT (tests/reference/torch_vit.py)
# with load_state_dict(strict=True) and its logits match sotu's forward.
add_executable(ckpt_torch_fixture reference/ckpt_torch_fixture.c)
target_link_libraries(ckpt_torch_fixture PRIVATE sotu_worker)
sotu_add_script_test(test_checkpoint_torch
  COMMAND ${SOTU_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/check_checkpoint_torch.py
          $<TARGET_FILE:ckpt_torch_fixture> ckpt_torch.d
  LABELS reference TIMEOUT 120 NEEDS numpy h5py torch)
