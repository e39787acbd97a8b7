# Fuzzing the safetensors parser, and the "sanitize" label for the suites an ASan+UBSan build runs
# (cmake -DVLART_SANITIZE=ON ... && ctest -L sanitize).

set(VLART_FUZZ_SEEDS ${CMAKE_CURRENT_SOURCE_DIR}/data/safetensors_seeds)

# Target + deterministic mutation driver: works with any compiler.
add_executable(fuzz_safetensors_standalone
  ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_safetensors.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/standalone_driver.cpp)
target_link_libraries(fuzz_safetensors_standalone PRIVATE vlart)
vlart_set_warnings(fuzz_safetensors_standalone)
add_test(NAME fuzz_safetensors_smoke
  COMMAND fuzz_safetensors_standalone --mutations 20000 --seed 1 ${VLART_FUZZ_SEEDS})
set_tests_properties(fuzz_safetensors_smoke PROPERTIES LABELS "fuzz;sanitize" TIMEOUT 120)

# The whole gtest suite again as one ctest entry, so `ctest -L sanitize` picks it up.
add_test(NAME safetensors_suite COMMAND test_safetensors)
set_tests_properties(safetensors_suite PROPERTIES LABELS "sanitize")

# Real libFuzzer binary with clang. The parser sources are compiled into it so they carry the
# fuzzer's coverage instrumentation (objects in the executable take precedence over the copies in
# the static libvlart, which only supplies anything else they need).
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  set(_fz_flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_executable(fuzz_safetensors
    ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_safetensors.cpp
    ${PROJECT_SOURCE_DIR}/src/core/safetensors.cpp
    ${PROJECT_SOURCE_DIR}/src/core/dtype.cpp
    ${PROJECT_SOURCE_DIR}/src/core/tensor.cpp)
  target_compile_options(fuzz_safetensors PRIVATE ${_fz_flags})
  target_link_options(fuzz_safetensors PRIVATE ${_fz_flags})
  target_link_libraries(fuzz_safetensors PRIVATE vlart)
  vlart_set_warnings(fuzz_safetensors)
  # New corpus entries go to the build tree, never into the committed seeds.
  set(_fz_corpus ${CMAKE_CURRENT_BINARY_DIR}/fuzz_safetensors_corpus)
  file(MAKE_DIRECTORY ${_fz_corpus})
  add_test(NAME fuzz_safetensors_libfuzzer
    COMMAND fuzz_safetensors -runs=50000 -max_total_time=30 -max_len=4096 -rss_limit_mb=2048
            ${_fz_corpus} ${VLART_FUZZ_SEEDS})
  set_tests_properties(fuzz_safetensors_libfuzzer PROPERTIES LABELS "fuzz;sanitize" TIMEOUT 120)
endif()
