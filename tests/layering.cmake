# Layering is enforced by the per-layer include roots (top-level CMakeLists.txt, vlart_layer): these
# two targets are compiled exactly like a models-layer source. The control (includes core) must
# build; the probe (includes runtime, a layer above) must fail to compile.
foreach(kind includes_core includes_runtime)
  add_library(layering_models_${kind} OBJECT EXCLUDE_FROM_ALL
    ${CMAKE_CURRENT_SOURCE_DIR}/layering/models_${kind}.cpp)
  get_target_property(_inc vlart_models INCLUDE_DIRECTORIES)
  target_include_directories(layering_models_${kind} PRIVATE ${_inc})
  target_link_libraries(layering_models_${kind} PRIVATE ${VLART_PUBLIC_DEPS})
  add_test(NAME layering_models_${kind}
    COMMAND ${CMAKE_COMMAND} --build ${PROJECT_BINARY_DIR} --target layering_models_${kind})
  set_tests_properties(layering_models_${kind} PROPERTIES LABELS "unit" TIMEOUT 120)
endforeach()
# The probe passes only when its build fails on that include (GCC: "No such file", clang: "not found").
set_tests_properties(layering_models_includes_runtime PROPERTIES
  PASS_REGULAR_EXPRESSION "runtime/compute_thread\\.h.*(No such file|not found)")
