// Element types, including the self-describing quantized block types.
//
// Every dtype has a row in a traits table: how many logical elements one block holds, how many
// bytes a block takes, and conversion to/from f32. Plain types have block_size 1. Quantized
// types store blocks of `block_size` consecutive values of the innermost dimension, each block
// carrying its own scale (and zero point where named "Z"); their layouts are fixed by the structs
// in quant_blocks.h and checked with static_assert.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace vlart {

enum class DType : uint8_t {
  // Plain types (all the safetensors dtypes).
  kF32 = 0,
  kF16,
  kBF16,
  kF64,
  kI8,
  kU8,
  kI16,
  kU16,
  kI32,
  kU32,
  kI64,
  kU64,
  kBool,
  kF8E4M3,
  kF8E5M2,
  // Quantized block types. Q8: int8 values with one f16 scale per group (symmetric).
  kQ8G32,
  kQ8G64,
  kQ8G128,
  // Q4: int4 values (offset 8) with one f16 scale per group (symmetric).
  kQ4G32,
  kQ4G64,
  kQ4G128,
  // Q4Z: uint4 values with f16 scale and f16 min per group (asymmetric, zero point as min).
  kQ4ZG32,
  kQ4ZG64,
  kQ4ZG128,
  kCount
};

using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);
using FromFloatFn = void (*)(const float* src, void* dst, int64_t n);

struct DTypeTraits {
  const char* name;        // lower-case vlart name, e.g. "f32", "q4z_g64"
  const char* st_name;     // safetensors name ("F32", ...), nullptr for quantized types
  int64_t block_size;      // logical elements per block (1 for plain types)
  size_t block_bytes;      // bytes per block
  bool is_float;
  bool is_integer;
  bool is_quantized;
  ToFloatFn to_float;      // n = number of logical elements (multiple of block_size)
  FromFloatFn from_float;  // nullptr where conversion from float makes no sense (bool)
};

const DTypeTraits& dtype_traits(DType t);
inline const char* dtype_name(DType t) { return dtype_traits(t).name; }
// Bytes needed for `n` logical elements. Throws InvalidArgument if n is not a multiple of the
// block size.
size_t dtype_nbytes(DType t, int64_t n);
inline bool is_quantized(DType t) { return dtype_traits(t).is_quantized; }
// Size of one element for plain types; 0 for quantized types.
inline size_t dtype_size(DType t) {
  const auto& tr = dtype_traits(t);
  return tr.block_size == 1 ? tr.block_bytes : 0;
}
// Parse a safetensors dtype string ("F32", "BF16", ...). Returns false if unknown.
bool dtype_from_safetensors(const std::string& s, DType* out);
// Parse a vlart dtype name ("f32", "bf16", "q4_g64"...). Returns false if unknown.
bool dtype_from_name(const std::string& s, DType* out);

// Scalar conversions used by kernels.
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Round-to-nearest-even, NaN preserved (quiet).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace vlart
