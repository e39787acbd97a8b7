#include "vlart/dtype.h"

#include <algorithm>
#include <cmath>

#include "core/quant_blocks.h"
#include "vlart/error.h"

namespace vlart {

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      u = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
    }
  } else if (exp == 0x1f) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | (exp + 112u) << 23 | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return sign | 0x7e00u;                 // NaN
  if (absu >= 0x477ff000u) return sign | 0x7c00u;                // overflow -> inf (rounded)
  if (absu < 0x38800000u) {                                      // subnormal or zero in f16
    if (absu < 0x33000000u) return sign;                         // underflow to zero
    const uint32_t e = absu >> 23;
    const uint32_t m = (absu & 0x7fffffu) | 0x800000u;
    // value = m * 2^(e-150) and the f16 subnormal unit is 2^-24, so q = m * 2^(e-126).
    const int shift = 126 - static_cast<int>(e);
    const uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    uint32_t r = q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = absu - 0x38000000u;  // rebias exponent 127 -> 15
  r += 0xfffu + ((r >> 13) & 1u);   // round to nearest even
  return static_cast<uint16_t>(sign | (r >> 13));
}

namespace {

// FP8 E4M3 (fn variant: no inf, 0x7f/0xff NaN, bias 7) and E5M2 (IEEE-like, bias 15).
float f8e4m3_to_f32(uint8_t v) {
  const float sign = (v & 0x80) ? -1.f : 1.f;
  const int exp = (v >> 3) & 0xf;
  const int mant = v & 0x7;
  if (exp == 0xf && mant == 0x7) return std::nanf("");
  if (exp == 0) return sign * std::ldexp(static_cast<float>(mant), -9);
  return sign * std::ldexp(1.f + mant / 8.f, exp - 7);
}
float f8e5m2_to_f32(uint8_t v) { return f16_to_f32(static_cast<uint16_t>(v) << 8); }

uint8_t f32_to_f8e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  float a = std::fabs(f);
  if (a >= 448.f) return sign | 0x7e;  // saturate to max finite
  // Try all 127 non-negative finite codes: exact nearest (ties to even code).
  uint8_t best = 0;
  float best_err = a;
  for (uint8_t c = 1; c < 0x7f; ++c) {
    const float err = std::fabs(f8e4m3_to_f32(c) - a);
    if (err < best_err || (err == best_err && (c & 1) == 0)) {
      best = c;
      best_err = err;
    }
  }
  return sign | best;
}
uint8_t f32_to_f8e5m2(float f) {
  // Round the f16 pattern to its top byte, nearest even.
  uint16_t h = f32_to_f16(f);
  if ((h & 0x7fffu) > 0x7c00u) return static_cast<uint8_t>((h >> 8) | 0x02);
  uint16_t r = static_cast<uint16_t>(h + 0x7f + ((h >> 8) & 1));
  if ((h & 0x7c00u) != 0x7c00u && (r & 0x7c00u) == 0x7c00u) r = (h & 0x8000u) | 0x7b00u;  // saturate
  return static_cast<uint8_t>(r >> 8);
}

template <typename T>
void to_f32_plain(const void* src, float* dst, int64_t n) {
  const T* s = static_cast<const T*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
}
template <typename T>
void from_f32_plain(const float* src, void* dst, int64_t n) {
  T* d = static_cast<T*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = static_cast<T>(src[i]);
}
template <typename T>
void from_f32_int(const float* src, void* dst, int64_t n) {
  T* d = static_cast<T*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = static_cast<T>(std::nearbyint(src[i]));
}
void bool_to_f32(const void* src, float* dst, int64_t n) {
  const uint8_t* s = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = s[i] ? 1.f : 0.f;
}
void bool_from_f32(const float* src, void* dst, int64_t n) {
  uint8_t* d = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = src[i] != 0.f;
}
void f16_to(const void* src, float* dst, int64_t n) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
}
void f16_from(const float* src, void* dst, int64_t n) {
  uint16_t* d = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
}
void bf16_to(const void* src, float* dst, int64_t n) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
}
void bf16_from(const float* src, void* dst, int64_t n) {
  uint16_t* d = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
}
void e4m3_to(const void* src, float* dst, int64_t n) {
  const uint8_t* s = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = f8e4m3_to_f32(s[i]);
}
void e4m3_from(const float* src, void* dst, int64_t n) {
  uint8_t* d = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f8e4m3(src[i]);
}
void e5m2_to(const void* src, float* dst, int64_t n) {
  const uint8_t* s = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = f8e5m2_to_f32(s[i]);
}
void e5m2_from(const float* src, void* dst, int64_t n) {
  uint8_t* d = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f8e5m2(src[i]);
}

// ---- quantized blocks ----
template <int G>
void q8_to(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ8<G>*>(src);
  for (int64_t i = 0; i < n / G; ++i) {
    const float d = f16_to_f32(b[i].d);
    for (int j = 0; j < G; ++j) dst[i * G + j] = d * b[i].q[j];
  }
}
template <int G>
void q8_from(const float* src, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ8<G>*>(dst);
  for (int64_t i = 0; i < n / G; ++i) {
    const float* x = src + i * G;
    float amax = 0.f;
    for (int j = 0; j < G; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    b[i].d = f32_to_f16(d);
    const float dq = f16_to_f32(b[i].d);  // quantize against the stored scale
    const float inv = dq > 0.f ? 1.f / dq : 0.f;
    for (int j = 0; j < G; ++j)
      b[i].q[j] = static_cast<int8_t>(std::clamp(std::nearbyint(x[j] * inv), -127.f, 127.f));
  }
}
template <int G>
void q4_to(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ4<G>*>(src);
  for (int64_t i = 0; i < n / G; ++i) {
    const float d = f16_to_f32(b[i].d);
    for (int j = 0; j < G / 2; ++j) {
      dst[i * G + 2 * j] = d * (static_cast<int>(b[i].q[j] & 0xf) - 8);
      dst[i * G + 2 * j + 1] = d * (static_cast<int>(b[i].q[j] >> 4) - 8);
    }
  }
}
template <int G>
void q4_from(const float* src, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ4<G>*>(dst);
  for (int64_t i = 0; i < n / G; ++i) {
    const float* x = src + i * G;
    float amax = 0.f;
    for (int j = 0; j < G; ++j) amax = std::max(amax, std::fabs(x[j]));
    b[i].d = f32_to_f16(amax / 7.f);
    const float dq = f16_to_f32(b[i].d);
    const float inv = dq > 0.f ? 1.f / dq : 0.f;
    for (int j = 0; j < G / 2; ++j) {
      const int lo = static_cast<int>(std::clamp(std::nearbyint(x[2 * j] * inv), -8.f, 7.f)) + 8;
      const int hi = static_cast<int>(std::clamp(std::nearbyint(x[2 * j + 1] * inv), -8.f, 7.f)) + 8;
      b[i].q[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}
template <int G>
void q4z_to(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ4Z<G>*>(src);
  for (int64_t i = 0; i < n / G; ++i) {
    const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
    for (int j = 0; j < G / 2; ++j) {
      dst[i * G + 2 * j] = d * (b[i].q[j] & 0xf) + m;
      dst[i * G + 2 * j + 1] = d * (b[i].q[j] >> 4) + m;
    }
  }
}
template <int G>
void q4z_from(const float* src, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ4Z<G>*>(dst);
  for (int64_t i = 0; i < n / G; ++i) {
    const float* x = src + i * G;
    float lo = x[0], hi = x[0];
    for (int j = 1; j < G; ++j) {
      lo = std::min(lo, x[j]);
      hi = std::max(hi, x[j]);
    }
    b[i].d = f32_to_f16((hi - lo) / 15.f);
    b[i].m = f32_to_f16(lo);
    const float dq = f16_to_f32(b[i].d), mq = f16_to_f32(b[i].m);
    const float inv = dq > 0.f ? 1.f / dq : 0.f;
    for (int j = 0; j < G / 2; ++j) {
      const int a = static_cast<int>(std::clamp(std::nearbyint((x[2 * j] - mq) * inv), 0.f, 15.f));
      const int c = static_cast<int>(std::clamp(std::nearbyint((x[2 * j + 1] - mq) * inv), 0.f, 15.f));
      b[i].q[j] = static_cast<uint8_t>(a | (c << 4));
    }
  }
}

#define PLAIN(name, st, T, isf, isi, from) \
  {name, st, 1, sizeof(T), isf, isi, false, to_f32_plain<T>, from}
#define QUANT(name, Block, to, from) \
  {name, nullptr, Block::kGroup, sizeof(Block), false, false, true, to, from}

const DTypeTraits kTraits[] = {
    PLAIN("f32", "F32", float, true, false, from_f32_plain<float>),
    {"f16", "F16", 1, 2, true, false, false, f16_to, f16_from},
    {"bf16", "BF16", 1, 2, true, false, false, bf16_to, bf16_from},
    PLAIN("f64", "F64", double, true, false, from_f32_plain<double>),
    PLAIN("i8", "I8", int8_t, false, true, from_f32_int<int8_t>),
    PLAIN("u8", "U8", uint8_t, false, true, from_f32_int<uint8_t>),
    PLAIN("i16", "I16", int16_t, false, true, from_f32_int<int16_t>),
    PLAIN("u16", "U16", uint16_t, false, true, from_f32_int<uint16_t>),
    PLAIN("i32", "I32", int32_t, false, true, from_f32_int<int32_t>),
    PLAIN("u32", "U32", uint32_t, false, true, from_f32_int<uint32_t>),
    PLAIN("i64", "I64", int64_t, false, true, from_f32_int<int64_t>),
    PLAIN("u64", "U64", uint64_t, false, true, from_f32_int<uint64_t>),
    {"bool", "BOOL", 1, 1, false, false, false, bool_to_f32, bool_from_f32},
    {"f8_e4m3", "F8_E4M3", 1, 1, true, false, false, e4m3_to, e4m3_from},
    {"f8_e5m2", "F8_E5M2", 1, 1, true, false, false, e5m2_to, e5m2_from},
    QUANT("q8_g32", BlockQ8<32>, q8_to<32>, q8_from<32>),
    QUANT("q8_g64", BlockQ8<64>, q8_to<64>, q8_from<64>),
    QUANT("q8_g128", BlockQ8<128>, q8_to<128>, q8_from<128>),
    QUANT("q4_g32", BlockQ4<32>, q4_to<32>, q4_from<32>),
    QUANT("q4_g64", BlockQ4<64>, q4_to<64>, q4_from<64>),
    QUANT("q4_g128", BlockQ4<128>, q4_to<128>, q4_from<128>),
    QUANT("q4z_g32", BlockQ4Z<32>, q4z_to<32>, q4z_from<32>),
    QUANT("q4z_g64", BlockQ4Z<64>, q4z_to<64>, q4z_from<64>),
    QUANT("q4z_g128", BlockQ4Z<128>, q4z_to<128>, q4z_from<128>),
};
#undef PLAIN
#undef QUANT
static_assert(sizeof(kTraits) / sizeof(kTraits[0]) == static_cast<size_t>(DType::kCount),
              "traits table must cover every DType");

}  // namespace

const DTypeTraits& dtype_traits(DType t) {
  const auto i = static_cast<size_t>(t);
  if (i >= static_cast<size_t>(DType::kCount))
    throw InvalidArgument(detail::concat("invalid dtype value ", i));
  return kTraits[i];
}

size_t dtype_nbytes(DType t, int64_t n) {
  const auto& tr = dtype_traits(t);
  VLART_CHECK(n >= 0, InvalidArgument, "negative element count ", n);
  VLART_CHECK(n % tr.block_size == 0, InvalidArgument, "element count ", n,
              " is not a multiple of the block size ", tr.block_size, " of dtype ", tr.name);
  return static_cast<size_t>(n / tr.block_size) * tr.block_bytes;
}

bool dtype_from_safetensors(const std::string& s, DType* out) {
  for (size_t i = 0; i < static_cast<size_t>(DType::kCount); ++i) {
    if (kTraits[i].st_name && s == kTraits[i].st_name) {
      *out = static_cast<DType>(i);
      return true;
    }
  }
  return false;
}

bool dtype_from_name(const std::string& s, DType* out) {
  for (size_t i = 0; i < static_cast<size_t>(DType::kCount); ++i) {
    if (s == kTraits[i].name) {
      *out = static_cast<DType>(i);
      return true;
    }
  }
  return false;
}

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kFormat: return "format";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kBackend: return "backend";
    case ErrorCode::kOutOfMemory: return "out_of_memory";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kInternal: return "internal";
    case ErrorCode::kAllocationInRun: return "allocation_in_run";
  }
  return "unknown";
}

}  // namespace vlart
