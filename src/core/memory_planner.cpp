#include "core/memory_planner.h"

#include <algorithm>
#include <map>

#include "vlart/error.h"

namespace vlart {
namespace {

size_t align_up(size_t n) { return (n + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment; }

// Free ranges of one arena, keyed by offset; adjacent ranges are merged on release.
class Arena {
 public:
  size_t allocate(size_t bytes) {
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it)
      if (it->second >= bytes && (best == free_.end() || it->second < best->second)) best = it;
    if (best != free_.end()) {
      const size_t off = best->first, size = best->second;
      free_.erase(best);
      if (size > bytes) free_[off + bytes] = size - bytes;
      return off;
    }
    // Grow: extend a free range touching the end if there is one.
    if (!free_.empty()) {
      auto last = std::prev(free_.end());
      if (last->first + last->second == top_) {
        const size_t off = last->first;
        free_.erase(last);
        top_ = off + bytes;
        return off;
      }
    }
    const size_t off = top_;
    top_ += bytes;
    return off;
  }
  void release(size_t off, size_t bytes) {
    auto it = free_.emplace(off, bytes).first;
    auto next = std::next(it);
    if (next != free_.end() && it->first + it->second == next->first) {
      it->second += next->second;
      free_.erase(next);
    }
    if (it != free_.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second == it->first) {
        prev->second += it->second;
        free_.erase(it);
      }
    }
  }
  size_t top() const { return top_; }

 private:
  std::map<size_t, size_t> free_;
  size_t top_ = 0;
};

}  // namespace

MemoryPlan plan_memory(const std::vector<BufferRequest>& reqs, int num_device_slots) {
  MemoryPlan plan;
  plan.buffers.resize(reqs.size());
  plan.arena_bytes.assign(static_cast<size_t>(num_device_slots), 0);
  plan.naive_bytes.assign(static_cast<size_t>(num_device_slots), 0);
  std::vector<Arena> arenas(static_cast<size_t>(num_device_slots));
  // Releases due after each step: (step -> list of request indices).
  std::multimap<int, size_t> due;
  int cursor = -2;
  auto release_until = [&](int step) {
    while (!due.empty() && due.begin()->first < step) {
      const size_t r = due.begin()->second;
      due.erase(due.begin());
      arenas[static_cast<size_t>(reqs[r].device_slot)].release(plan.buffers[r].offset, align_up(reqs[r].bytes));
    }
  };
  for (size_t i = 0; i < reqs.size(); ++i) {
    const BufferRequest& q = reqs[i];
    VLART_CHECK(q.first >= cursor, InternalError, "memory planner: requests not sorted by definition step");
    VLART_CHECK(q.device_slot >= 0 && q.device_slot < num_device_slots, InternalError,
                "memory planner: bad device slot ", q.device_slot);
    VLART_CHECK(q.last >= q.first, InternalError, "memory planner: buffer ", i, " dies before it is defined");
    cursor = q.first;
    // Buffers whose last read is strictly before this definition step are free now.
    release_until(q.first);
    plan.naive_bytes[static_cast<size_t>(q.device_slot)] += align_up(q.bytes);
    Arena& arena = arenas[static_cast<size_t>(q.device_slot)];
    if (q.reuse_of >= 0) {
      const auto src = static_cast<size_t>(q.reuse_of);
      VLART_CHECK(src < i && reqs[src].last == q.first && reqs[src].device_slot == q.device_slot &&
                      align_up(reqs[src].bytes) >= align_up(q.bytes),
                  InternalError, "memory planner: illegal in-place reuse of buffer ", src, " by ", i);
      // Cancel the source's pending release: the range now belongs to this request.
      for (auto it = due.lower_bound(reqs[src].last); it != due.end() && it->first == reqs[src].last; ++it) {
        if (it->second == src) {
          due.erase(it);
          break;
        }
      }
      plan.buffers[i].offset = plan.buffers[src].offset;
      if (align_up(reqs[src].bytes) > align_up(q.bytes))
        arena.release(plan.buffers[i].offset + align_up(q.bytes), align_up(reqs[src].bytes) - align_up(q.bytes));
    } else {
      plan.buffers[i].offset = arena.allocate(align_up(q.bytes));
    }
    if (q.last != kPinned) due.emplace(q.last, i);
  }
  for (int s = 0; s < num_device_slots; ++s) plan.arena_bytes[static_cast<size_t>(s)] = arenas[static_cast<size_t>(s)].top();
  return plan;
}

}  // namespace vlart
