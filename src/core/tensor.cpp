#include "vlart/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>

#include "vlart/error.h"

namespace vlart {

std::string Device::str() const {
  return type == DeviceType::kCPU ? std::string("cpu") : "cuda:" + std::to_string(index);
}

// ---------------- Shape ----------------
Shape::Shape(std::initializer_list<int64_t> dims) {
  VLART_CHECK(dims.size() <= static_cast<size_t>(kMaxDims), InvalidArgument, "shape rank ",
              dims.size(), " exceeds the maximum ", kMaxDims);
  for (int64_t v : dims) d_[static_cast<size_t>(rank_++)] = v;
}
Shape::Shape(const std::vector<int64_t>& dims) : Shape(Shape::from(dims.data(), static_cast<int>(dims.size()))) {}
Shape Shape::from(const int64_t* dims, int rank) {
  VLART_CHECK(rank >= 0 && rank <= kMaxDims, InvalidArgument, "shape rank ", rank,
              " exceeds the maximum ", kMaxDims);
  Shape s;
  for (int i = 0; i < rank; ++i) s.d_[static_cast<size_t>(i)] = dims[i];
  s.rank_ = rank;
  return s;
}
int64_t Shape::dim(int i) const {
  const int j = i < 0 ? i + rank_ : i;
  VLART_CHECK(j >= 0 && j < rank_, InvalidArgument, "dim ", i, " out of range for shape ", str());
  return d_[static_cast<size_t>(j)];
}
int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= d_[static_cast<size_t>(i)];
  return n;
}
void Shape::push_back(int64_t v) {
  VLART_CHECK(rank_ < kMaxDims, InvalidArgument, "shape rank exceeds the maximum ", kMaxDims);
  d_[static_cast<size_t>(rank_++)] = v;
}
bool Shape::operator==(const Shape& o) const {
  if (rank_ != o.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (d_[static_cast<size_t>(i)] != o.d_[static_cast<size_t>(i)]) return false;
  return true;
}
std::string Shape::str() const {
  std::ostringstream os;
  os << '[';
  for (int i = 0; i < rank_; ++i) os << (i ? ", " : "") << d_[static_cast<size_t>(i)];
  os << ']';
  return os.str();
}

Shape contiguous_strides(const Shape& shape) {
  Shape s = shape;
  int64_t acc = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

// ---------------- allocation ----------------
namespace {
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    const size_t n = (nbytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
    void* p = std::aligned_alloc(kTensorAlignment, n == 0 ? kTensorAlignment : n);
    if (!p) throw OutOfMemoryError(detail::concat("failed to allocate ", nbytes, " bytes of host memory"));
    return p;
  }
  void deallocate(void* p, size_t) override { std::free(p); }
  Device device() const override { return Device::cpu(); }
};
}  // namespace

Allocator* cpu_allocator() {
  static CpuAllocator a;
  return &a;
}

Storage::Storage(void* data, size_t nbytes, Device dev, Allocator* owner, std::shared_ptr<void> keepalive)
    : data_(data), nbytes_(nbytes), device_(dev), owner_(owner), keepalive_(std::move(keepalive)) {}
Storage::~Storage() {
  if (owner_) owner_->deallocate(data_, nbytes_);
}

// ---------------- Tensor ----------------
namespace {
void check_shape(const Shape& shape, DType dtype) {
  for (int i = 0; i < shape.rank(); ++i)
    VLART_CHECK(shape[i] >= 0, InvalidArgument, "negative dimension in shape ", shape.str());
  const auto& tr = dtype_traits(dtype);
  if (tr.block_size > 1) {
    VLART_CHECK(shape.rank() >= 1 && shape[shape.rank() - 1] % tr.block_size == 0, InvalidArgument,
                "innermost dimension of ", shape.str(), " is not a multiple of the block size ",
                tr.block_size, " of ", tr.name);
  }
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Allocator* alloc) {
  check_shape(shape, dtype);
  if (!alloc) alloc = cpu_allocator();
  const size_t nbytes = dtype_nbytes(dtype, shape.numel());
  Tensor t;
  void* p = alloc->allocate(nbytes);
  t.storage_ = std::make_shared<Storage>(p, nbytes, alloc->device(), alloc, nullptr);
  t.data_ = p;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  t.device_ = alloc->device();
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::from_blob(void* data, const Shape& shape, DType dtype, Device dev,
                         std::shared_ptr<void> keepalive) {
  check_shape(shape, dtype);
  Tensor t;
  if (keepalive)
    t.storage_ = std::make_shared<Storage>(data, dtype_nbytes(dtype, shape.numel()), dev, nullptr,
                                           std::move(keepalive));
  t.data_ = data;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  t.device_ = dev;
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape) {
  VLART_CHECK(static_cast<int64_t>(values.size()) == shape.numel(), InvalidArgument,
              "from_vector: ", values.size(), " values for shape ", shape.str());
  Tensor t = empty(shape, DType::kF32);
  if (!values.empty()) std::memcpy(t.data_, values.data(), values.size() * sizeof(float));
  return t;
}

size_t Tensor::nbytes() const { return dtype_nbytes(dtype_, numel()); }

bool Tensor::is_contiguous() const {
  int64_t acc = 1;
  for (int i = rank() - 1; i >= 0; --i) {
    if (shape_[i] != 1 && strides_[i] != acc) return false;
    acc *= shape_[i];
  }
  return true;
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  VLART_CHECK(is_contiguous(), InvalidArgument, "reshape of non-contiguous tensor ", str());
  Shape s = new_shape;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < s.rank(); ++i) {
    if (s[i] == -1) {
      VLART_CHECK(infer < 0, InvalidArgument, "reshape: more than one -1 in ", new_shape.str());
      infer = i;
    } else {
      VLART_CHECK(s[i] >= 0, InvalidArgument, "reshape: negative dim in ", new_shape.str());
      known *= s[i];
    }
  }
  if (infer >= 0) {
    VLART_CHECK(known > 0 && numel() % known == 0, InvalidArgument, "reshape: cannot infer -1 in ",
                new_shape.str(), " for ", numel(), " elements");
    s[infer] = numel() / known;
  }
  VLART_CHECK(s.numel() == numel(), InvalidArgument, "reshape: ", shape_.str(), " (", numel(),
              " elements) to ", s.str());
  check_shape(s, dtype_);
  Tensor t = *this;
  t.shape_ = s;
  t.strides_ = contiguous_strides(s);
  return t;
}

Tensor Tensor::slice(int dim, int64_t start, int64_t end) const {
  const int d = dim < 0 ? dim + rank() : dim;
  VLART_CHECK(d >= 0 && d < rank(), InvalidArgument, "slice: dim ", dim, " out of range for ", str());
  VLART_CHECK(0 <= start && start <= end && end <= shape_[d], InvalidArgument, "slice: range [",
              start, ", ", end, ") out of bounds for dim ", d, " of ", str());
  VLART_CHECK(!is_quantized(dtype_) || d != rank() - 1, InvalidArgument,
              "slice: cannot slice the blocked innermost dim of ", str());
  Tensor t = *this;
  t.shape_[d] = end - start;
  if (!is_quantized(dtype_)) {
    t.data_ = static_cast<char*>(data_) + start * strides_[d] * static_cast<int64_t>(dtype_size(dtype_));
  } else {
    VLART_CHECK(is_contiguous(), InvalidArgument, "slice of non-contiguous quantized tensor");
    int64_t inner = 1;
    for (int i = d + 1; i < rank(); ++i) inner *= shape_[i];
    t.data_ = static_cast<char*>(data_) + dtype_nbytes(dtype_, start * inner);
  }
  return t;
}

Tensor Tensor::permute(const std::vector<int>& perm) const {
  VLART_CHECK(static_cast<int>(perm.size()) == rank(), InvalidArgument, "permute: ", perm.size(),
              " axes for rank ", rank());
  VLART_CHECK(!is_quantized(dtype_), InvalidArgument, "permute of quantized tensor ", str());
  bool seen[kMaxDims] = {};
  Tensor t = *this;
  for (int i = 0; i < rank(); ++i) {
    const int p = perm[static_cast<size_t>(i)];
    VLART_CHECK(p >= 0 && p < rank() && !seen[p], InvalidArgument, "permute: invalid permutation");
    seen[p] = true;
    t.shape_[i] = shape_[p];
    t.strides_[i] = strides_[p];
  }
  return t;
}

Tensor Tensor::select(int dim, int64_t index) const {
  const int d = dim < 0 ? dim + rank() : dim;
  Tensor t = slice(d, index, index + 1);
  Shape s, st;
  for (int i = 0; i < rank(); ++i) {
    if (i == d) continue;
    s.push_back(t.shape_[i]);
    st.push_back(t.strides_[i]);
  }
  t.shape_ = s;
  t.strides_ = st;
  return t;
}

namespace {
// Calls f(linear_index, element_offset) for every logical element in row-major order.
template <typename F>
void for_each_offset(const Shape& shape, const Shape& strides, F f) {
  const int r = shape.rank();
  const int64_t n = shape.numel();
  if (n == 0) return;
  int64_t idx[kMaxDims] = {};
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    f(i, off);
    for (int d = r - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        off += strides[d];
        break;
      }
      off -= strides[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}
}  // namespace

void Tensor::copy_from(const Tensor& src) {
  VLART_CHECK(device_.is_cpu() && src.device_.is_cpu(), InvalidArgument, "copy_from: CPU tensors only");
  VLART_CHECK(src.shape_ == shape_ && src.dtype_ == dtype_, InvalidArgument, "copy_from: ",
              src.str(), " into ", str());
  if (is_contiguous() && src.is_contiguous()) {
    std::memmove(data_, src.data_, nbytes());
    return;
  }
  VLART_CHECK(!is_quantized(dtype_), InvalidArgument, "copy_from: non-contiguous quantized tensor");
  const size_t es = dtype_size(dtype_);
  // Gather source offsets, then scatter to destination offsets, element by element.
  std::vector<int64_t> soff(static_cast<size_t>(numel()));
  for_each_offset(src.shape_, src.strides_, [&](int64_t i, int64_t o) { soff[static_cast<size_t>(i)] = o; });
  const char* s = static_cast<const char*>(src.data_);
  char* d = static_cast<char*>(data_);
  for_each_offset(shape_, strides_, [&](int64_t i, int64_t o) {
    std::memcpy(d + o * static_cast<int64_t>(es), s + soff[static_cast<size_t>(i)] * static_cast<int64_t>(es), es);
  });
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  VLART_CHECK(device_.is_cpu(), InvalidArgument, "clone: CPU tensors only, got ", str());
  Tensor t = empty(shape_, dtype_);
  t.copy_from(*this);
  return t;
}

std::vector<float> Tensor::to_float_vector() const {
  VLART_CHECK(device_.is_cpu(), InvalidArgument, "to_float_vector: CPU tensors only, got ", str());
  Tensor c = contiguous();
  std::vector<float> out(static_cast<size_t>(numel()));
  dtype_traits(dtype_).to_float(c.data_, out.data(), numel());
  return out;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return clone();
  const auto& tr = dtype_traits(dtype);
  VLART_CHECK(tr.from_float != nullptr, InvalidArgument, "cannot convert to ", tr.name);
  std::vector<float> f = to_float_vector();
  Tensor t = empty(shape_, dtype);
  tr.from_float(f.data(), t.data_, numel());
  return t;
}

std::string Tensor::str() const {
  return std::string(dtype_name(dtype_)) + shape_.str() + " " + device_.str();
}

}  // namespace vlart
