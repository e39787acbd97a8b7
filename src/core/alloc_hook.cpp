// Replacement global operator new/delete that report to alloc_guard. Built as the object library
// `vlart_alloc_hook`; link it to count (and optionally forbid) allocations during Executor::run.
#include <cstdlib>
#include <new>

#include "core/alloc_guard.h"

namespace {
struct Installer {
  Installer() { vlart::alloc_guard::detail::set_hook_installed(); }
} g_installer;

void* checked_malloc(std::size_t n) {
  vlart::alloc_guard::detail::on_allocate(n);
  void* p = std::malloc(n == 0 ? 1 : n);
  if (!p) throw std::bad_alloc();
  return p;
}
void* checked_aligned(std::size_t n, std::align_val_t al) {
  vlart::alloc_guard::detail::on_allocate(n);
  const std::size_t a = static_cast<std::size_t>(al);
  const std::size_t sz = (n + a - 1) / a * a;
  void* p = std::aligned_alloc(a, sz == 0 ? a : sz);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return checked_malloc(n); }
void* operator new[](std::size_t n) { return checked_malloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return checked_malloc(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return checked_malloc(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t n, std::align_val_t a) { return checked_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return checked_aligned(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
