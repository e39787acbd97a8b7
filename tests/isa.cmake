# The quantized Linear kernels with the CPU features capped, so the fallbacks run on an AVX-512 machine:
# oneDNN limited to AVX2 (its int8 matmul then takes the avx2 gemm instead of brgemm/VNNI; the
# verbose log must not show an AVX-512 implementation), and the qgemm tests force the scalar path
# themselves (gemv_force_isa).
add_test(NAME qgemm_onednn_isa_avx2 COMMAND test_qgemm --gtest_filter=QuantLinear.*)
set_tests_properties(qgemm_onednn_isa_avx2 PROPERTIES
  ENVIRONMENT "DNNL_MAX_CPU_ISA=AVX2;ONEDNN_MAX_CPU_ISA=AVX2;DNNL_VERBOSE=1;ONEDNN_VERBOSE=1"
  FAIL_REGULAR_EXPRESSION "matmul,brg:avx512|matmul,[a-z_:]*avx512|FAILED"
  LABELS "unit")
