# vlart serve (included by tests/CMakeLists.txt before the suites' label files, which list test_serve):
# the server library's suite (tests/serve/test_serve.cpp), built when the server is
# (Boost.Beast + msgpack-cxx found), and the openpi-client end-to-end test (real PyPI client).
if(TARGET vlart_serve)
  if(VLART_TSAN)
    add_executable(test_serve ${CMAKE_CURRENT_LIST_DIR}/test_serve.cpp)
  else()
    add_executable(test_serve ${CMAKE_CURRENT_LIST_DIR}/test_serve.cpp $<TARGET_OBJECTS:vlart_alloc_hook>)
  endif()
  target_include_directories(test_serve PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${MSGPACK_INCLUDE_DIR})
  target_link_libraries(test_serve PRIVATE vlart_serve Boost::headers GTest::gtest GTest::gtest_main)
  target_compile_definitions(test_serve PRIVATE VLART_TEST_DATA_DIR="${CMAKE_CURRENT_SOURCE_DIR}/data"
                             MSGPACK_DEFAULT_API_VERSION=3)
  vlart_set_warnings(test_serve)
  gtest_discover_tests(test_serve DISCOVERY_TIMEOUT 60 PROPERTIES LABELS "unit;serve")
endif()

# The real openpi-client (PyPI, in .venv-client made by scripts/setup.sh) against `vlart serve` on
# the bundled policy. Skipped, saying why, when that environment is missing.
if(TARGET vlart_serve AND TARGET vlart_cli)
  set(_venv_py ${PROJECT_SOURCE_DIR}/.venv-client/bin/python)
  add_test(NAME serve_openpi_client
    COMMAND sh -c "if [ -x '${_venv_py}' ]; then exec '${_venv_py}' '${CMAKE_CURRENT_LIST_DIR}/../python/test_serve_openpi_client.py' --vlart '$<TARGET_FILE:vlart_cli>' --model '${PROJECT_SOURCE_DIR}/assets/default_policy'; else echo 'SKIPPED: no .venv-client with openpi-client (bash scripts/setup.sh creates it)'; exit 77; fi")
  set_tests_properties(serve_openpi_client PROPERTIES LABELS "serve;python" TIMEOUT 600 SKIP_RETURN_CODE 77)
endif()

# Fuzzing the wire decoder: a standalone mutation driver (any compiler; ctest fuzz_wire_smoke) and,
# with clang, a libFuzzer binary (ctest fuzz_wire_libfuzzer).
if(TARGET vlart_serve)
  add_executable(fuzz_wire_standalone ${CMAKE_CURRENT_LIST_DIR}/../fuzz/fuzz_wire.cpp)
  target_include_directories(fuzz_wire_standalone PRIVATE ${MSGPACK_INCLUDE_DIR})
  target_compile_definitions(fuzz_wire_standalone PRIVATE MSGPACK_DEFAULT_API_VERSION=3)
  target_link_libraries(fuzz_wire_standalone PRIVATE vlart_serve)
  vlart_set_warnings(fuzz_wire_standalone)
  add_test(NAME fuzz_wire_smoke COMMAND fuzz_wire_standalone --mutations 50000 --seed 1)
  set_tests_properties(fuzz_wire_smoke PROPERTIES LABELS "fuzz;sanitize;serve" TIMEOUT 120)
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    set(_fzw_flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
    add_executable(fuzz_wire ${CMAKE_CURRENT_LIST_DIR}/../fuzz/fuzz_wire.cpp
                   ${PROJECT_SOURCE_DIR}/src/serve/wire.cpp)
    target_include_directories(fuzz_wire PRIVATE ${MSGPACK_INCLUDE_DIR})
    target_compile_definitions(fuzz_wire PRIVATE MSGPACK_DEFAULT_API_VERSION=3 VLART_LIBFUZZER=1)
    target_compile_options(fuzz_wire PRIVATE ${_fzw_flags})
    target_link_options(fuzz_wire PRIVATE ${_fzw_flags})
    target_link_libraries(fuzz_wire PRIVATE vlart)
    vlart_set_warnings(fuzz_wire)
    set(_fzw_corpus ${CMAKE_CURRENT_BINARY_DIR}/fuzz_wire_corpus)
    file(MAKE_DIRECTORY ${_fzw_corpus})
    add_test(NAME fuzz_wire_libfuzzer
      COMMAND fuzz_wire -runs=100000 -max_total_time=30 -max_len=8192 -rss_limit_mb=2048 ${_fzw_corpus})
    set_tests_properties(fuzz_wire_libfuzzer PROPERTIES LABELS "fuzz;sanitize;serve" TIMEOUT 120)
  endif()
endif()
