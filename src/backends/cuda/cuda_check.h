// Turning CUDA runtime / cuBLAS status codes into vlart::BackendError.
//
// Every message names the failing call, the library's error string and the node (or operation)
// it happened in. Only the failure path builds strings, so the checks are free on the hot path.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

namespace vlart::cuda {

[[noreturn]] void throw_cuda_error(const char* call, cudaError_t e, const char* where);
[[noreturn]] void throw_cublas_error(const char* call, cublasStatus_t s, const char* where);

inline void check_cuda(cudaError_t e, const char* call, const char* where) {
  if (e != cudaSuccess) throw_cuda_error(call, e, where);
}
inline void check_cublas(cublasStatus_t s, const char* call, const char* where) {
  if (s != CUBLAS_STATUS_SUCCESS) throw_cublas_error(call, s, where);
}

}  // namespace vlart::cuda

// VLART_CUDA_CHECK(cudaMemcpyAsync(...), "node 'x'") -> BackendError naming the call.
#define VLART_CUDA_CHECK(expr, where) ::vlart::cuda::check_cuda((expr), #expr, (where))
#define VLART_CUBLAS_CHECK(expr, where) ::vlart::cuda::check_cublas((expr), #expr, (where))
