// Library-internal access to a Policy (not part of the public API): hooks used by vlart's own
// tools, e.g. calibration (compress/calibrate.cpp) observing the inputs of every Linear.
#pragma once

#include <functional>
#include <string>

#include "backends/cpu/packed_cache.h"
#include "vlart/policy.h"
#include "vlart/tensor.h"

namespace vlart {

struct PolicyInternals {
  // Calls `fn(weight_name, x)` before every Linear with a weight W, on the policy's compute thread,
  // with x the activation input (valid during the call). Graphs built so far are dropped so the
  // hook reaches every stage. Pass an empty function to turn it off.
  static void set_linear_observer(Policy& p, std::function<void(const std::string&, const Tensor&)> fn);
  // The CPU backend's packed-weight cache: one packed copy per weight and layout, shared by the
  // executors of every shape bucket.
  static PackedCacheStats packed_weight_stats(const Policy& p);
};

}  // namespace vlart
