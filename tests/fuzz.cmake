# libFuzzer targets for every parser of untrusted bytes (tests/fuzz/).
#
# With SOTU_FUZZ=ON and clang, the sotu libraries are built with coverage
# instrumentation and ASan+UBSan, and each tests/fuzz/fuzz_<target>.c links
# with libFuzzer into fuzz_<target>; a CTest per target (label fuzz) fuzzes
# for SOTU_FUZZ_SECONDS starting from tests/fuzz/corpus/<target> and the
# crash inputs kept in tests/fuzz/regressions/<target>, and fails on any
# crash, leak, timeout or sanitizer report (the task-file target: any that
# is sotu's, see run_fuzz_hdf5.sh). New corpus entries go to the
# build directory, never into the source tree.
#
# Whatever the compiler, fuzz_<target>_replay (label unit) runs the same
# harness once on every corpus and regression input, so the ordinary and
# sanitizer builds replay them too.
option(SOTU_FUZZ "Build the libFuzzer targets in tests/fuzz (clang only; instruments the sotu libraries with ASan+UBSan)" OFF)
set(SOTU_FUZZ_SECONDS 15 CACHE STRING "Seconds each fuzz test (label fuzz) fuzzes its target")

set(SOTU_FUZZ_TARGETS delta module safetensors config idx taskset manifest)
set(_fuzz_src ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)

foreach(t ${SOTU_FUZZ_TARGETS})
  set(_dirs ${_fuzz_src}/corpus/${t})
  if(EXISTS ${_fuzz_src}/regressions/${t})
    list(APPEND _dirs ${_fuzz_src}/regressions/${t})
  endif()
  sotu_add_test(fuzz_${t}_replay SOURCES fuzz/fuzz_${t}.c fuzz/replay_main.c
                LABELS unit ARGS ${_dirs} TIMEOUT 120)
endforeach()

# Regenerates the seed corpora: SOTU_SOURCE_DIR=... fuzz_make_seeds tests/fuzz/corpus
add_executable(fuzz_make_seeds fuzz/make_seeds.c)
target_link_libraries(fuzz_make_seeds PRIVATE sotu_worker)
target_include_directories(fuzz_make_seeds PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})

if(SOTU_FUZZ AND NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(WARNING "SOTU_FUZZ=ON needs clang (CC=clang); the fuzz targets are not built")
elseif(SOTU_FUZZ)
  # Asserts stay on; FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION lets mutated
  # bytes past checksums (io/delta.c) to the parsing behind them.
  set(_san -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
           -UNDEBUG -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION)
  foreach(lib sotu_common sotu_io sotu_worker sotu_mpi sotu_eval sotu_coordinator sotu_cli)
    target_compile_options(${lib} PRIVATE -fsanitize=fuzzer-no-link ${_san})
    target_link_options(${lib} INTERFACE -fsanitize=address,undefined)
  endforeach()
  add_custom_target(sotu_fuzz)
  foreach(t ${SOTU_FUZZ_TARGETS})
    add_executable(fuzz_${t} fuzz/fuzz_${t}.c)
    target_compile_options(fuzz_${t} PRIVATE -fsanitize=fuzzer ${_san})
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(fuzz_${t} PRIVATE sotu_io)
    target_include_directories(fuzz_${t} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
    add_dependencies(sotu_fuzz fuzz_${t})
    set(_work ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/${t})
    file(MAKE_DIRECTORY ${_work})
    set(_dirs ${_work} ${_fuzz_src}/corpus/${t})
    if(EXISTS ${_fuzz_src}/regressions/${t})
      list(APPEND _dirs ${_fuzz_src}/regressions/${t})
    endif()
    math(EXPR _timeout "${SOTU_FUZZ_SECONDS} + 240")
    if(t STREQUAL "taskset")
      # libhdf5 1.10 itself crashes, hangs or leaks on some damaged files:
      # run_fuzz_hdf5.sh keeps fuzzing past those and fails only on
      # failures whose first stack frame is sotu's (docs/RELIABILITY.md).
      sotu_add_script_test(fuzz_${t}
        COMMAND ${_fuzz_src}/run_fuzz_hdf5.sh $<TARGET_FILE:fuzz_${t}>
                ${CMAKE_CURRENT_BINARY_DIR}/fuzz-artifacts-${t} ${SOTU_FUZZ_SECONDS} ${_dirs}
        LABELS fuzz TIMEOUT ${_timeout})
    else()
      sotu_add_script_test(fuzz_${t}
        COMMAND $<TARGET_FILE:fuzz_${t}> -max_total_time=${SOTU_FUZZ_SECONDS}
                -rss_limit_mb=2048 -timeout=20 -max_len=65536 -print_final_stats=1
                -artifact_prefix=${CMAKE_CURRENT_BINARY_DIR}/fuzz-crash-${t}- ${_dirs}
        LABELS fuzz TIMEOUT ${_timeout})
    endif()
  endforeach()
endif()
