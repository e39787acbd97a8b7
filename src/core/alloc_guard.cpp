#include "core/alloc_guard.h"

namespace vlart::alloc_guard {
namespace {
bool g_installed = false;
thread_local int t_armed = 0;
thread_local bool t_forbid = false;
thread_local int t_exempt = 0;
thread_local Counts t_counts;
}  // namespace

bool hook_installed() { return g_installed; }

namespace detail {
void set_hook_installed() { g_installed = true; }
void on_allocate(size_t nbytes) {
  if (t_armed <= 0) return;
  if (t_exempt > 0) {
    ++t_counts.exempt_allocations;
    return;
  }
  ++t_counts.allocations;
  t_counts.bytes += nbytes;
  if (t_forbid) throw AllocationInRun();
}
}  // namespace detail

ArmScope::ArmScope(bool forbid) : start_(t_counts), prev_forbid_(t_forbid) {
  ++t_armed;
  t_forbid = t_forbid || forbid;
}
ArmScope::~ArmScope() {
  --t_armed;
  t_forbid = prev_forbid_;
}
Counts ArmScope::counts() const {
  Counts c;
  c.allocations = t_counts.allocations - start_.allocations;
  c.bytes = t_counts.bytes - start_.bytes;
  c.exempt_allocations = t_counts.exempt_allocations - start_.exempt_allocations;
  return c;
}

ExemptScope::ExemptScope() { ++t_exempt; }
ExemptScope::~ExemptScope() { --t_exempt; }

PauseScope::PauseScope() : saved_(t_armed) { t_armed = 0; }
PauseScope::~PauseScope() { t_armed = saved_; }

}  // namespace vlart::alloc_guard
