// Device memory for the CUDA backend: a caching allocator with size buckets, and an owning buffer.
//
// Freed blocks go to a per-bucket free list instead of cudaFree (which synchronises the whole
// device); a later request of the same bucket reuses them. Reuse is safe for work ordered on one
// stream: the backend enqueues all of its work on its single stream, so a block freed while a
// kernel still reads it is only handed to kernels enqueued after that one. (Two backends on the
// same device use two streams; the allocator does not track streams, so such a setup must
// synchronise before memory freed by one is reused by the other.)
// One allocator per device lives for the whole process (never destroyed), so tensors may outlive
// the backend that allocated them and no cudaFree runs during CUDA's own teardown at exit.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <vector>

#include "vlart/tensor.h"

namespace vlart::cuda {

class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(int device) : device_(device) {}
  void* allocate(size_t nbytes) override;
  void deallocate(void* p, size_t nbytes) override;
  Device device() const override { return Device::cuda(device_); }

  // Returns every cached (free) block to the driver.
  void empty_cache();
  // Bucket a request of `nbytes` is served from (exposed for tests).
  static size_t bucket_size(size_t nbytes);

  struct Stats {
    size_t bytes_in_use = 0;  // handed out, bucket-rounded
    size_t bytes_cached = 0;  // in free lists
    size_t device_allocs = 0;  // cudaMalloc calls
    size_t cache_hits = 0;
  };
  Stats stats() const;

 private:
  void release_cached_locked();

  int device_;
  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;  // bucket size -> free blocks
  Stats stats_;
};

// The process-wide allocator of device `index` (created on first use).
CudaAllocator* device_allocator(int index);

// An owning device allocation (weights, workspaces) returned to its allocator on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Allocator* a, size_t nbytes) : alloc_(a), nbytes_(nbytes), p_(a->allocate(nbytes)) {}
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : alloc_(o.alloc_), nbytes_(o.nbytes_), p_(o.p_) { o.p_ = nullptr; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      alloc_ = o.alloc_;
      nbytes_ = o.nbytes_;
      p_ = o.p_;
      o.p_ = nullptr;
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return p_; }
  size_t size() const { return nbytes_; }
  void reset() {
    if (p_) alloc_->deallocate(p_, nbytes_);
    p_ = nullptr;
  }

 private:
  Allocator* alloc_ = nullptr;
  size_t nbytes_ = 0;
  void* p_ = nullptr;
};

}  // namespace vlart::cuda
