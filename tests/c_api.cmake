# The C ABI header compiled by a C compiler (tests/c_api_compile_check.c), linked to libvlart and
# run once without and once with the bundled default policy.
add_executable(c_api_compile_check ${CMAKE_CURRENT_SOURCE_DIR}/c_api_compile_check.c)
set_target_properties(c_api_compile_check PROPERTIES LINKER_LANGUAGE CXX C_STANDARD 99 C_STANDARD_REQUIRED ON)
target_compile_options(c_api_compile_check PRIVATE -Wall -Wextra -pedantic)
target_link_libraries(c_api_compile_check PRIVATE vlart)
add_test(NAME c_api_compile_check COMMAND c_api_compile_check)
add_test(NAME c_api_c_infer_default COMMAND c_api_compile_check ${PROJECT_SOURCE_DIR}/assets/default_policy)
set_tests_properties(c_api_compile_check c_api_c_infer_default PROPERTIES LABELS "unit")
set_tests_properties(c_api_c_infer_default PROPERTIES PASS_REGULAR_EXPRESSION "50 x 4 actions")
