#include "backends/cuda/cuda_allocator.h"

#include <cuda_runtime_api.h>

#include <array>
#include <string>

#include "backends/cuda/cuda_check.h"
#include "vlart/error.h"

namespace vlart::cuda {

size_t CudaAllocator::bucket_size(size_t nbytes) {
  // 512-byte granularity up to 4 KiB, then four buckets per power of two (at most 25% waste).
  constexpr size_t kMin = 512;
  if (nbytes <= kMin) return kMin;
  size_t pow2 = kMin;
  while (pow2 * 2 <= nbytes) pow2 *= 2;
  const size_t step = pow2 / 4 < kMin ? kMin : pow2 / 4;
  return (nbytes + step - 1) / step * step;
}

void* CudaAllocator::allocate(size_t nbytes) {
  const size_t b = bucket_size(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = free_.find(b);
  if (it != free_.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    stats_.bytes_cached -= b;
    stats_.bytes_in_use += b;
    ++stats_.cache_hits;
    return p;
  }
  const std::string where = "allocating " + std::to_string(nbytes) + " bytes on cuda:" + std::to_string(device_);
  int prev = 0;
  VLART_CUDA_CHECK(cudaGetDevice(&prev), where.c_str());
  if (prev != device_) VLART_CUDA_CHECK(cudaSetDevice(device_), where.c_str());
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, b);
  if (e == cudaErrorMemoryAllocation) {
    // Give the cached blocks back and try once more before reporting out-of-memory.
    (void)cudaGetLastError();
    release_cached_locked();
    e = cudaMalloc(&p, b);
  }
  if (prev != device_) (void)cudaSetDevice(prev);
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    throw OutOfMemoryError("cudaMalloc: out of device memory " + where + " (" +
                           std::to_string(stats_.bytes_in_use) + " bytes in use)");
  }
  check_cuda(e, "cudaMalloc", where.c_str());
  stats_.bytes_in_use += b;
  ++stats_.device_allocs;
  return p;
}

void CudaAllocator::deallocate(void* p, size_t nbytes) {
  if (!p) return;
  const size_t b = bucket_size(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  free_[b].push_back(p);
  stats_.bytes_in_use -= b;
  stats_.bytes_cached += b;
}

void CudaAllocator::release_cached_locked() {
  int prev = 0;
  const bool have_prev = cudaGetDevice(&prev) == cudaSuccess;
  if (!have_prev || prev != device_) (void)cudaSetDevice(device_);
  for (auto& kv : free_) {
    for (void* p : kv.second) (void)cudaFree(p);  // best effort: nothing useful to do on failure
    stats_.bytes_cached -= kv.first * kv.second.size();
    kv.second.clear();
  }
  free_.clear();
  if (have_prev && prev != device_) (void)cudaSetDevice(prev);
}

void CudaAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cached_locked();
}

CudaAllocator::Stats CudaAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

CudaAllocator* device_allocator(int index) {
  constexpr int kMaxDevices = 64;
  VLART_CHECK(index >= 0 && index < kMaxDevices, InvalidArgument, "CUDA device index ", index,
              " out of range [0, ", kMaxDevices, ")");
  static std::mutex mu;
  static std::array<CudaAllocator*, kMaxDevices> allocs{};
  std::lock_guard<std::mutex> lock(mu);
  auto& a = allocs[static_cast<size_t>(index)];
  if (!a) a = new CudaAllocator(index);  // intentionally leaked: see the header
  return a;
}

}  // namespace vlart::cuda
