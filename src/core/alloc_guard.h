// Counting heap allocations made during Executor::run, and the debug switch that turns any such
// allocation into an error.
//
// The counting hook (replacement global operator new/delete) lives in the separate object library
// `vlart_alloc_hook`, linked into the tests and the CLI; applications opt in by linking it too.
// Counting is per thread: only allocations made on the thread that armed the guard are seen
// (worker threads of the OpenMP pool are not instrumented). Allocations made inside a third-party
// library call that vlart cannot avoid (oneDNN builds a small argument map on every primitive
// execute) are wrapped in an ExemptScope and counted separately, never hidden.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

namespace vlart::alloc_guard {

// True when vlart_alloc_hook is linked into the process.
bool hook_installed();

struct Counts {
  uint64_t allocations = 0;  // operator new calls on this thread while armed, outside exempt scopes
  uint64_t bytes = 0;
  uint64_t exempt_allocations = 0;  // inside ExemptScope (third-party library internals)
};

// Thrown by the hook when the guard is armed with `forbid` and vlart code allocates.
class AllocationInRun : public std::bad_alloc {
 public:
  const char* what() const noexcept override { return "heap allocation during Executor::run"; }
};

// Arms counting on this thread for the scope's lifetime. Nested scopes add up.
class ArmScope {
 public:
  explicit ArmScope(bool forbid);
  ~ArmScope();
  ArmScope(const ArmScope&) = delete;
  ArmScope& operator=(const ArmScope&) = delete;
  Counts counts() const;  // counted since this scope was armed

 private:
  Counts start_;
  bool prev_forbid_;
};

// Allocations inside are counted as exempt and never forbidden.
class ExemptScope {
 public:
  ExemptScope();
  ~ExemptScope();
  ExemptScope(const ExemptScope&) = delete;
  ExemptScope& operator=(const ExemptScope&) = delete;
};

// Temporarily disarms (used to build an error message after a forbidden allocation).
class PauseScope {
 public:
  PauseScope();
  ~PauseScope();
  PauseScope(const PauseScope&) = delete;
  PauseScope& operator=(const PauseScope&) = delete;

 private:
  int saved_;
};

namespace detail {
// Called by the hook on every allocation; may throw AllocationInRun.
void on_allocate(size_t nbytes);
void set_hook_installed();
}  // namespace detail

}  // namespace vlart::alloc_guard
