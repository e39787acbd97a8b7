// Tensor: shape, dtype, strides, device; owning (64-byte aligned storage) or a view.
//
// Shapes and strides live inline (no heap), so making views, slices and permutations never
// allocates; only creating new storage does. Strides are in elements. Quantized dtypes are
// always contiguous with the innermost dimension a multiple of the block size.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "vlart/dtype.h"

namespace vlart {

enum class DeviceType : uint8_t { kCPU = 0, kCUDA = 1 };

struct Device {
  DeviceType type = DeviceType::kCPU;
  int index = 0;
  static Device cpu() { return {}; }
  static Device cuda(int i = 0) { return {DeviceType::kCUDA, i}; }
  bool is_cpu() const { return type == DeviceType::kCPU; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;
};

constexpr int kMaxDims = 8;
constexpr size_t kTensorAlignment = 64;

// Fixed-capacity shape (up to kMaxDims dims); never allocates.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims);
  static Shape from(const int64_t* dims, int rank);

  int rank() const { return rank_; }
  int64_t operator[](int i) const { return d_[static_cast<size_t>(i)]; }
  int64_t& operator[](int i) { return d_[static_cast<size_t>(i)]; }
  // Python-style index (-1 = last). Throws InvalidArgument when out of range.
  int64_t dim(int i) const;
  int64_t numel() const;
  void push_back(int64_t v);
  const int64_t* data() const { return d_.data(); }
  std::vector<int64_t> vec() const { return {d_.begin(), d_.begin() + rank_}; }
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const;  // "[2, 3, 4]"

 private:
  std::array<int64_t, kMaxDims> d_{};
  int rank_ = 0;
};

// Allocator for device memory. The CPU one returns 64-byte aligned host memory; backends register
// their own (see backend.h).
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* p, size_t nbytes) = 0;
  virtual Device device() const = 0;
};
Allocator* cpu_allocator();

// A block of memory. Owning storage frees itself through its allocator; a view keeps an
// optional keep-alive handle (e.g. the mmap of a safetensors file).
class Storage {
 public:
  Storage(void* data, size_t nbytes, Device dev, Allocator* owner, std::shared_ptr<void> keepalive);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  bool owning() const { return owner_ != nullptr; }
  // What keeps borrowed memory alive (e.g. a file mapping), null for owning storage.
  const std::shared_ptr<void>& keepalive() const { return keepalive_; }

 private:
  void* data_;
  size_t nbytes_;
  Device device_;
  Allocator* owner_;
  std::shared_ptr<void> keepalive_;
};

class Tensor {
 public:
  Tensor() = default;

  // New contiguous owning tensor (uninitialised contents).
  static Tensor empty(const Shape& shape, DType dtype, Allocator* alloc = nullptr);
  static Tensor zeros(const Shape& shape, DType dtype);  // CPU only
  // View of memory owned elsewhere. `keepalive` is held as long as any view exists.
  static Tensor from_blob(void* data, const Shape& shape, DType dtype, Device dev = Device::cpu(),
                          std::shared_ptr<void> keepalive = {});
  // CPU f32 tensor holding a copy of `values` (for tests and small constants).
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape);

  bool defined() const { return storage_ != nullptr || data_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int i) const { return shape_.dim(i); }
  int64_t numel() const { return shape_.numel(); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  size_t nbytes() const;  // bytes spanned by the logical elements if contiguous
  bool is_contiguous() const;

  void* raw() const { return data_; }
  // A weak reference to the owner of the memory this tensor views (the keepalive of borrowed
  // memory, e.g. a file mapping, else the storage; empty for views without storage): expires when
  // that memory can be freed. Lets caches keyed by address detect reuse.
  std::weak_ptr<const void> storage_token() const {
    if (!storage_) return {};
    if (storage_->keepalive()) return std::static_pointer_cast<const void>(storage_->keepalive());
    return std::static_pointer_cast<const void>(storage_);
  }
  template <typename T>
  T* data() const { return static_cast<T*>(data_); }

  // Views (no copy, no allocation). Throw InvalidArgument on bad arguments.
  Tensor reshape(const Shape& new_shape) const;  // contiguous only; one dim may be -1
  Tensor slice(int dim, int64_t start, int64_t end) const;
  Tensor permute(const std::vector<int>& perm) const;
  Tensor select(int dim, int64_t index) const;  // removes `dim`

  // Copies.
  Tensor contiguous() const;  // CPU; returns *this when already contiguous
  Tensor clone() const;       // CPU; always a fresh contiguous copy
  Tensor to(DType dtype) const;  // CPU; converts through f32 (quantized included)
  std::vector<float> to_float_vector() const;  // CPU; any dtype, logical order
  // Copies the logical contents of `src` (same shape and dtype, CPU) into this tensor.
  void copy_from(const Tensor& src);

  std::string str() const;  // "f32[2, 3] cpu"

 private:
  std::shared_ptr<Storage> storage_;
  void* data_ = nullptr;
  Shape shape_;
  Shape strides_;
  DType dtype_ = DType::kF32;
  Device device_;
};

Shape contiguous_strides(const Shape& shape);

}  // namespace vlart
