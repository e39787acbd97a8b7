# Forced-ISA mode: the op, kernel and policy suites again with the CPU features capped, so the lower
# paths of every kernel family run (and stay green) on any machine. VLART_MAX_CPU_ISA caps vlart's own
# kernels (cpu/isa.h), ONEDNN_MAX_CPU_ISA oneDNN's (with an AVX2 cap oneDNN has no bf16 primitives and
# no VNNI, so the bf16 conversion bridge and the int8 fallbacks run too). On an AVX2-only CPU the avx2
# runs repeat the default ones (cheap); on an AVX-512 CPU they are the only AVX2 coverage.
set(VLART_ISA_OP_SUITES test_ops_basic test_ops_gemm test_ops_attention test_ops_decode test_decode_loop
    test_vit_block test_transformer_block test_qgemm test_executor)
foreach(level avx2 portable)
  if(level STREQUAL "avx2")
    set(dnnl_cap AVX2)
  else()
    set(dnnl_cap SSE41)
  endif()
  set(env "VLART_MAX_CPU_ISA=${level};DNNL_MAX_CPU_ISA=${dnnl_cap};ONEDNN_MAX_CPU_ISA=${dnnl_cap}")
  foreach(t ${VLART_ISA_OP_SUITES})
    if(TARGET ${t})
      add_test(NAME ${t}_isa_${level} COMMAND ${t})
      set_tests_properties(${t}_isa_${level} PROPERTIES ENVIRONMENT "${env}" LABELS "unit;isa")
    endif()
  endforeach()
  # The policy: parity with LeRobot on every fixture (f32 and bf16) and batching, on the capped paths.
  if(TARGET test_smolvla)
    add_test(NAME test_smolvla_isa_${level} COMMAND test_smolvla
             --gtest_filter=SmolVLAPolicy.InferMatchesLeRobotActions:SmolVLAPolicy.Bf16PathErrorIsBounded:SmolVLAPolicy.InferBatchMatchesSingleInfer:SmolVLAModel.*)
    set_tests_properties(test_smolvla_isa_${level} PROPERTIES ENVIRONMENT "${env}" LABELS "unit;isa")
  endif()
  # pi0 / pi0.5: parity with LeRobot on every fixture (f32 and bf16), on the capped paths.
  if(TARGET test_pi0)
    add_test(NAME test_pi0_isa_${level} COMMAND test_pi0 --gtest_filter=Fixtures/Pi0Parity.*)
    set_tests_properties(test_pi0_isa_${level} PROPERTIES ENVIRONMENT "${env}" LABELS "unit;isa")
  endif()
  # opentau pi0.5 with its text response: token ids and actions against opentau, on the capped paths.
  if(TARGET test_reason)
    add_test(NAME test_reason_isa_${level} COMMAND test_reason --gtest_filter=Fixtures/ReasonParity.*:Reason.EarlyStop*)
    set_tests_properties(test_reason_isa_${level} PROPERTIES ENVIRONMENT "${env}" LABELS "unit;isa")
  endif()
  # vlart info names the capped paths (and says the cap is in force where the CPU has more).
  if(TARGET vlart_cli)
    add_test(NAME cli_info_isa_${level} COMMAND $<TARGET_FILE:vlart_cli> info)
    set_tests_properties(cli_info_isa_${level} PROPERTIES ENVIRONMENT "${env}" LABELS "unit;isa"
                         PASS_REGULAR_EXPRESSION "attention f32 +(avx2|generic)")
  endif()
endforeach()

# The quantized Linear kernels with oneDNN limited to AVX2: its int8 matmul must not take an AVX-512
# implementation (the verbose log is checked), and the qgemm tests force the scalar path themselves
# (gemv_force_isa).
add_test(NAME qgemm_onednn_isa_avx2 COMMAND test_qgemm --gtest_filter=QuantLinear.*)
set_tests_properties(qgemm_onednn_isa_avx2 PROPERTIES
  ENVIRONMENT "DNNL_MAX_CPU_ISA=AVX2;ONEDNN_MAX_CPU_ISA=AVX2;DNNL_VERBOSE=1;ONEDNN_VERBOSE=1"
  FAIL_REGULAR_EXPRESSION "matmul,brg:avx512|matmul,[a-z_:]*avx512|FAILED"
  LABELS "unit")
