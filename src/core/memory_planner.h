// Liveness-based arena planner: assigns each planned buffer an offset in one arena per device so that
// buffers whose lifetimes overlap never share bytes, reusing freed ranges best-fit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vlart {

struct BufferRequest {
  size_t bytes = 0;
  int device_slot = 0;   // which arena (one per device)
  int first = 0;         // step index that defines it (inputs: -1)
  int last = 0;          // last step that reads it; INT32_MAX (kPinned) keeps it forever
  int reuse_of = -1;     // in-place: take over this request's range (it must die at `first`)
};

struct PlannedBuffer {
  size_t offset = 0;
};

struct MemoryPlan {
  std::vector<PlannedBuffer> buffers;  // parallel to the requests
  std::vector<size_t> arena_bytes;     // per device slot
  std::vector<size_t> naive_bytes;     // per device slot: sum of all requests (no reuse)
};

constexpr int kPinned = 0x7fffffff;
constexpr size_t kArenaAlignment = 64;

// Requests must be sorted by `first` (ties keep order). Throws InternalError on inconsistent input.
MemoryPlan plan_memory(const std::vector<BufferRequest>& reqs, int num_device_slots);

}  // namespace vlart
