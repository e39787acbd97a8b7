// Layouts of the quantized block types. One block covers `G` consecutive values of a row's
// innermost dimension; scales are IEEE f16 bit patterns stored first in each block.
#pragma once

#include <cstdint>

namespace vlart {

// Symmetric int8 group: x = q * d.
template <int G>
struct BlockQ8 {
  static constexpr int kGroup = G;
  uint16_t d;   // f16 scale
  int8_t q[G];
};
// Symmetric int4 group: x = (nibble - 8) * d. Element 2i is the low nibble of q[i],
// element 2i+1 the high nibble.
template <int G>
struct BlockQ4 {
  static constexpr int kGroup = G;
  uint16_t d;   // f16 scale
  uint8_t q[G / 2];
};
// Asymmetric int4 group: x = nibble * d + m.
template <int G>
struct BlockQ4Z {
  static constexpr int kGroup = G;
  uint16_t d;   // f16 scale
  uint16_t m;   // f16 min (zero point expressed as the value of nibble 0)
  uint8_t q[G / 2];
};

static_assert(sizeof(BlockQ8<32>) == 34, "BlockQ8<32> layout");
static_assert(sizeof(BlockQ8<64>) == 66, "BlockQ8<64> layout");
static_assert(sizeof(BlockQ8<128>) == 130, "BlockQ8<128> layout");
static_assert(sizeof(BlockQ4<32>) == 18, "BlockQ4<32> layout");
static_assert(sizeof(BlockQ4<64>) == 34, "BlockQ4<64> layout");
static_assert(sizeof(BlockQ4<128>) == 66, "BlockQ4<128> layout");
static_assert(sizeof(BlockQ4Z<32>) == 20, "BlockQ4Z<32> layout");
static_assert(sizeof(BlockQ4Z<64>) == 36, "BlockQ4Z<64> layout");
static_assert(sizeof(BlockQ4Z<128>) == 68, "BlockQ4Z<128> layout");
static_assert(alignof(BlockQ8<32>) == 2 && alignof(BlockQ4Z<32>) == 2, "blocks are 2-byte aligned");

}  // namespace vlart
