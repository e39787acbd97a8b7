// A KV cache for autoregressive decode: per decoder layer one K and one V buffer [B, capacity,
// kv_heads, head_dim], owned here and bound as graph inputs of every executor that writes or reads
// them (Executor::bind), with each sequence's filled length. A decode graph built by
// blocks::decoder_layer with a cache reads "k<i>" / "v<i>" and the runtime inputs write_pos / kv_len;
// fill_step() sets those for the next `n` tokens of every sequence and advance() records them.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/executor.h"
#include "vlart/error.h"
#include "vlart/tensor.h"

namespace vlart {

class KVCache {
 public:
  KVCache(int64_t layers, int64_t batch, int64_t capacity, int64_t kv_heads, int64_t head_dim,
          DType dtype = DType::kF32)
      : batch_(batch), capacity_(capacity), len_(static_cast<size_t>(batch), 0) {
    VLART_CHECK(layers > 0 && batch > 0 && capacity > 0 && kv_heads > 0 && head_dim > 0, InvalidArgument,
                "KVCache: every size must be positive, got layers ", layers, ", batch ", batch, ", capacity ",
                capacity, ", kv_heads ", kv_heads, ", head_dim ", head_dim);
    for (int64_t i = 0; i < 2 * layers; ++i) bufs_.push_back(Tensor::empty({batch, capacity, kv_heads, head_dim}, dtype));
  }

  int64_t layers() const { return static_cast<int64_t>(bufs_.size() / 2); }
  int64_t batch() const { return batch_; }
  int64_t capacity() const { return capacity_; }
  int64_t length(int64_t b) const { return len_.at(static_cast<size_t>(b)); }
  Tensor& k(int64_t layer) { return bufs_.at(static_cast<size_t>(2 * layer)); }
  Tensor& v(int64_t layer) { return bufs_.at(static_cast<size_t>(2 * layer + 1)); }

  // Binds k<i> / v<i> (with `prefix` before the names) of `ex` to this cache's buffers.
  void bind(Executor& ex, const std::string& prefix = "") {
    for (int64_t i = 0; i < layers(); ++i) {
      ex.bind(prefix + "k" + std::to_string(i), k(i));
      ex.bind(prefix + "v" + std::to_string(i), v(i));
    }
  }

  // Fills `ex`'s i32 [B] inputs `write_pos` (each sequence's length) and `kv_len` (length + n) for
  // a step that appends `n` tokens to every sequence. InvalidArgument when one would overflow.
  void fill_step(Executor& ex, int64_t n, const std::string& write_pos = "write_pos",
                 const std::string& kv_len = "kv_len") const {
    Tensor& wp = ex.input(write_pos);
    Tensor& kl = ex.input(kv_len);
    VLART_CHECK(wp.dtype() == DType::kI32 && wp.numel() == batch_ && kl.dtype() == DType::kI32 && kl.numel() == batch_,
                InvalidArgument, "KVCache::fill_step: inputs '", write_pos, "' and '", kv_len, "' must be i32 [",
                batch_, "]");
    for (int64_t b = 0; b < batch_; ++b) {
      const int64_t l = len_[static_cast<size_t>(b)];
      VLART_CHECK(n >= 0 && l + n <= capacity_, InvalidArgument, "KVCache: sequence ", b, " holds ", l, " of ",
                  capacity_, " positions; ", n, " more do not fit");
      static_cast<int32_t*>(wp.raw())[b] = static_cast<int32_t>(l);
      static_cast<int32_t*>(kl.raw())[b] = static_cast<int32_t>(l + n);
    }
  }
  // Records that the step filled by fill_step(n) ran.
  void advance(int64_t n) {
    for (int64_t& l : len_) {
      VLART_CHECK(l + n <= capacity_, InvalidArgument, "KVCache::advance: ", l, " + ", n, " exceeds capacity ",
                  capacity_);
      l += n;
    }
  }
  // Forgets every sequence (the buffers keep their bytes; rows past a length are never read).
  void reset() { std::fill(len_.begin(), len_.end(), 0); }

 private:
  int64_t batch_, capacity_;
  std::vector<int64_t> len_;
  std::vector<Tensor> bufs_;  // k0, v0, k1, v1, ...
};

}  // namespace vlart
