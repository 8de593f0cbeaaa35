# The ISA levels of the dispatched kernels (common/isa.h) and the proof that
# the default build is baseline x86-64.
sotu_add_test(test_isa_kernels SOURCES unit/test_isa_kernels.c LABELS unit TIMEOUT 300)
# More threads than CI has cores: per-thread scratch sized for them (the
# depthwise conv once overflowed a 1-thread scratch at 16 threads).
set_property(TEST test_isa_kernels APPEND PROPERTY ENVIRONMENT OMP_NUM_THREADS=6)

if(NOT SOTU_NATIVE AND CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  add_executable(isa_probe_avx2 unit/isa_probe_avx2.c)
  sotu_add_script_test(portable_baseline_objdump
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/portable_baseline.sh objdump ${CMAKE_OBJDUMP}
            $<TARGET_FILE:sotu>
    LABELS unit TIMEOUT 300)
  sotu_add_script_test(portable_baseline_qemu
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/portable_baseline.sh qemu $<TARGET_FILE:sotu>
            $<TARGET_FILE:isa_probe_avx2>
    LABELS slow TIMEOUT 900)
  set_tests_properties(portable_baseline_qemu PROPERTIES SKIP_RETURN_CODE 77)
endif()

# sotu train initialises MPI (a singleton), whose leaks at exit LeakSanitizer
# reports: labelled mpi, as train_determinism.
sotu_add_script_test(isa_determinism COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/isa_determinism.sh
  LABELS mpi TIMEOUT 900)
