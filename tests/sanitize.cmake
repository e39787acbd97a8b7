# Suites that also run under ASan+UBSan (`ctest -L sanitize` in a VLART_SANITIZE build): the loaders,
# the executor, the core types, quantized and pruned checkpoints, the scheduler, the chunk runner, the caches and telemetry. `vlart_sanitize_targets` builds just these.
set(VLART_SANITIZE_SUITES test_tensor test_executor test_ops_basic test_ops_attention test_transformer_block test_c_api test_io_files
    test_tokenizer test_smolvla test_smolvla_config test_quantize test_quantize_policy test_qgemm test_scheduler test_chunk_runner test_prune test_caches test_telemetry test_pi0
    test_serve test_reason)
add_custom_target(vlart_sanitize_targets)
foreach(t ${VLART_SANITIZE_SUITES})
  if(TARGET ${t})
    add_dependencies(vlart_sanitize_targets ${t})
    if(VLART_SANITIZE)
      add_test(NAME ${t}_sanitized COMMAND ${t})
      set_tests_properties(${t}_sanitized PROPERTIES LABELS "sanitize")
    endif()
  endif()
endforeach()
foreach(t test_safetensors fuzz_safetensors_standalone fuzz_safetensors fuzz_wire_standalone fuzz_wire)  # run by fuzz.cmake tests
  if(TARGET ${t})
    add_dependencies(vlart_sanitize_targets ${t})
  endif()
endforeach()
