// Fuzz target for the server's wire decoder (serve/wire.h): any byte string must either decode
// into an observation whose borrowed frames lie inside the input, or raise InvalidArgument. Any
// other exception, crash or sanitizer report is a bug.
//
// Built twice: with libFuzzer (clang, -DVLART_LIBFUZZER) and as a standalone driver that mutates
// valid messages built in code (bit flips, byte edits, truncations, size-field lies, splices):
//   fuzz_wire_standalone [--mutations N] [--seed S]
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "serve/wire.h"
#include "vlart/error.h"

namespace {

long g_decoded = 0;  // inputs that decoded (the rest were refused)

vlart::PolicyInfo fuzz_info() {
  vlart::PolicyInfo info;
  info.family = "fuzz";
  info.cameras = {{"observation.images.top", "top", 64, 64, false}, {"observation.images.wrist", "wrist", 64, 64, true}};
  info.state_dim = 3;
  info.action_dim = 2;
  info.horizon = 4;
  info.noise_shape = {4, 8};
  info.has_language = true;
  return info;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const vlart::PolicyInfo info = fuzz_info();
  vlart::serve::WireLimits lim;
  lim.max_image_side = 64;
  try {
    const vlart::serve::Request r = vlart::serve::decode_request(data, size, info, lim);
    uint64_t sum = 0;
    for (const auto& [cam, im] : r.obs.images) {
      const uint8_t* p = im.pixels();
      const size_t n = static_cast<size_t>(im.height * im.width * 3);
      if (p < data || p + n > data + size) std::abort();  // a frame must borrow the input's bytes
      for (size_t i = 0; i < n; ++i) sum += p[i];
    }
    if (r.obs.state.size() != 3) std::abort();
    if (r.noise && r.noise->size() != 32) std::abort();
    volatile uint64_t sink = sum;
    (void)sink;
    ++g_decoded;
  } catch (const vlart::InvalidArgument&) {
  }
  return 0;
}

#ifndef VLART_LIBFUZZER
namespace {

using vlart::serve::Packer;
void str(Packer& pk, const std::string& s) { vlart::serve::pack_str(pk, s); }
void ndarray(Packer& pk, const std::string& bytes, const std::string& dtype, const std::vector<int64_t>& shape) {
  vlart::serve::pack_ndarray(pk, bytes.data(), bytes.size(), dtype, shape);
}

std::vector<std::string> seeds() {
  std::vector<std::string> out;
  for (int variant = 0; variant < 4; ++variant) {
    msgpack::sbuffer buf;
    Packer pk(&buf);
    pk.pack_map(variant == 3 ? 6 : 4);
    str(pk, variant % 2 ? "observation/top" : "observation.images.top");
    ndarray(pk, std::string(4 * 5 * 3, '\x7f'), "|u1", {4, 5, 3});
    str(pk, variant % 2 ? "observation/state" : "observation.state");
    if (variant == 2)
      ndarray(pk, std::string(24, '\0'), "<f8", {1, 3});
    else
      ndarray(pk, std::string(12, '\0'), "<f4", {3});
    str(pk, variant % 2 ? "prompt" : "task");
    str(pk, "pick up the cube");
    str(pk, variant == 1 ? "seed" : "observation/wrist");
    if (variant == 1)
      pk.pack(42);
    else
      ndarray(pk, std::string(2 * 2 * 3, '\x01'), "|u1", {2, 2, 3});
    if (variant == 3) {
      str(pk, "noise");
      ndarray(pk, std::string(4 * 8 * 4, '\0'), "<f4", {4, 8});
      str(pk, "deadline_ms");
      pk.pack_double(12.5);
    }
    out.emplace_back(buf.data(), buf.size());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  long mutations = 20000;
  unsigned seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--mutations") == 0) mutations = std::atol(argv[i + 1]);
    if (std::strcmp(argv[i], "--seed") == 0) seed = static_cast<unsigned>(std::atol(argv[i + 1]));
  }
  const std::vector<std::string> base = seeds();
  for (const std::string& s : base) LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  if (g_decoded != static_cast<long>(base.size())) {
    std::fprintf(stderr, "fuzz_wire: only %ld of %zu seeds decode\n", g_decoded, base.size());
    return 1;
  }
  std::mt19937 g(seed);
  const uint32_t lies[] = {0, 1, 0x7f, 0xff, 0xffff, 0x10000, 0x7fffffff, 0x80000000u, 0xffffffffu};
  for (long m = 0; m < mutations; ++m) {
    std::string s = base[g() % base.size()];
    const int edits = 1 + static_cast<int>(g() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const size_t at = g() % s.size();
      switch (g() % 6) {
        case 0: s[at] = static_cast<char>(s[at] ^ (1 << (g() % 8))); break;  // bit flip
        case 1: s[at] = static_cast<char>(g() & 0xff); break;               // byte edit
        case 2: s.resize(at); break;                                         // truncation
        case 3: {                                                            // a size field lie
          const uint32_t v = lies[g() % (sizeof lies / sizeof lies[0])];
          const char hdr[] = {'\xc6', '\xdd', '\xdf', '\xdb'};  // bin32, array32, map32, str32
          std::string field(1, hdr[g() % 4]);
          for (int b = 3; b >= 0; --b) field += static_cast<char>((v >> (8 * b)) & 0xff);
          s.replace(at, std::min<size_t>(5, s.size() - at), field);
          break;
        }
        case 4: {  // splice a piece of another seed
          const std::string& o = base[g() % base.size()];
          const size_t from = g() % o.size();
          s.insert(at, o.substr(from, g() % 16));
          break;
        }
        default: s.insert(at, 1, static_cast<char>(0x90 | (g() % 16))); break;  // a stray fixarray
      }
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  std::printf("fuzz_wire: %zu seeds + %ld mutations: %ld decoded, the rest refused cleanly\n", base.size(),
              mutations, g_decoded);
  // The seeds must decode, or the mutations explore nothing but the first error.
  return g_decoded >= static_cast<long>(base.size()) ? 0 : 1;
}
#endif
