// Runs the fuzz target without libFuzzer (for g++ builds and ctest): every seed input, then N
// deterministic random mutations of them (bit flips, byte edits, truncations, lies in the header
// length, numeric splices into the JSON).
//
//   fuzz_safetensors_standalone [--mutations N] [--seed S] [--write-seeds DIR] [FILE|DIR ...]
//
// Seeds: a few valid files built in code, plus every file named (or inside a named directory).
// --write-seeds DIR writes the built-in seeds there (how tests/data/safetensors_seeds was made).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "vlart/error.h"
#include "vlart/tensor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

using Bytes = std::vector<uint8_t>;
namespace fs = std::filesystem;

vlart::Tensor patterned(const vlart::Shape& s, vlart::DType dt, uint8_t start) {
  vlart::Tensor t = vlart::Tensor::empty(s, dt);
  auto* p = t.data<uint8_t>();
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(start + i * 37);
  return t;
}

std::vector<std::pair<std::string, Bytes>> builtin_seeds() {
  using vlart::DType;
  std::vector<std::pair<std::string, Bytes>> out;
  out.emplace_back("empty.safetensors", vlart::serialize_safetensors({}));
  out.emplace_back("f32_meta.safetensors",
                   vlart::serialize_safetensors({{"w", vlart::Tensor::from_vector({1, -2, 3.5f, 0}, {2, 2})}},
                                                {{"format", "pt"}}));
  out.emplace_back("mixed.safetensors",
                   vlart::serialize_safetensors({{"a.bf16", patterned({3}, DType::kBF16, 1)},
                                                 {"b.i64", patterned({2, 1}, DType::kI64, 2)},
                                                 {"c.bool", patterned({5}, DType::kBool, 0)},
                                                 {"d.e4m3", patterned({2, 2}, DType::kF8E4M3, 3)},
                                                 {"s.f16", patterned({}, DType::kF16, 4)},
                                                 {"z.u8", patterned({0, 3}, DType::kU8, 5)}}));
  std::vector<float> v(64);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.25f - 8.f;
  out.emplace_back("quant.safetensors",
                   vlart::serialize_safetensors({{"q", vlart::Tensor::from_vector(v, {2, 32}).to(DType::kQ4ZG32)},
                                                 {"bias", vlart::Tensor::from_vector({1, 2}, {2})}}));
  return out;
}

Bytes read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Values that tend to sit on validation boundaries.
const char* const kNumbers[] = {"0", "1", "-1", "8", "4294967296", "9223372036854775807", "9223372036854775808",
                                "18446744073709551615", "18446744073709551616", "1e30", "2.5", "-0",
                                "1099511627776"};
const char kTokens[] = {'"', '[', ']', '{', '}', ',', ':', '-', '0', '9', ' ', '\\', 0, '\xff'};

void set_len(Bytes& b, uint64_t n) {
  if (b.size() < 8) return;
  for (int i = 0; i < 8; ++i) b[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
}

uint64_t get_len(const Bytes& b) {
  uint64_t n = 0;
  if (b.size() < 8) return 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[static_cast<size_t>(i)];
  return n;
}

void mutate(Bytes& b, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits; ++e) {
    switch (rng() % 9) {
      case 0:  // bit flip
        if (!b.empty()) b[pick(b.size())] ^= static_cast<uint8_t>(1u << (rng() % 8));
        break;
      case 1:  // JSON-ish token
        if (!b.empty()) b[pick(b.size())] = static_cast<uint8_t>(kTokens[pick(sizeof(kTokens))]);
        break;
      case 2:  // truncate
        b.resize(pick(b.size() + 1));
        break;
      case 3: {  // header length lie
        const uint64_t n = get_len(b);
        const uint64_t choices[] = {0, n + 1, n - 1, n + 8, b.size(), b.size() - 8, uint64_t{1} << 40, ~uint64_t{0},
                                    100'000'001, rng() % 256};
        set_len(b, choices[pick(std::size(choices))]);
        break;
      }
      case 4: {  // replace a digit run with a boundary number, keeping the length field right
        const size_t hdr_end = std::min<size_t>(b.size(), 8 + static_cast<size_t>(std::min<uint64_t>(get_len(b), b.size())));
        std::vector<size_t> digits;
        for (size_t i = 8; i < hdr_end; ++i)
          if (b[i] >= '0' && b[i] <= '9' && (i == 8 || b[i - 1] < '0' || b[i - 1] > '9')) digits.push_back(i);
        if (digits.empty()) break;
        const size_t at = digits[pick(digits.size())];
        size_t end = at;
        while (end < hdr_end && b[end] >= '0' && b[end] <= '9') ++end;
        const std::string num = kNumbers[pick(std::size(kNumbers))];
        b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(end));
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), num.begin(), num.end());
        set_len(b, get_len(b) + num.size() - (end - at));
        break;
      }
      case 5: {  // insert random bytes
        const size_t at = pick(b.size() + 1);
        const size_t n = 1 + pick(8);
        for (size_t i = 0; i < n; ++i) b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), static_cast<uint8_t>(rng()));
        break;
      }
      case 6: {  // delete a range
        if (b.empty()) break;
        const size_t at = pick(b.size());
        const size_t n = std::min(b.size() - at, 1 + pick(16));
        b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + n));
        break;
      }
      case 7: {  // duplicate a range (e.g. a whole header entry)
        if (b.empty()) break;
        const size_t at = pick(b.size());
        const size_t n = std::min(b.size() - at, 1 + pick(64));
        const Bytes piece(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + n));
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(pick(b.size() + 1)), piece.begin(), piece.end());
        break;
      }
      default:  // random byte
        if (!b.empty()) b[pick(b.size())] = static_cast<uint8_t>(rng());
        break;
    }
  }
}

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--mutations N] [--seed S] [--write-seeds DIR] [FILE|DIR ...]\n", argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t mutations = 10000;
  uint64_t seed = 1;
  std::vector<std::pair<std::string, Bytes>> seeds = builtin_seeds();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--mutations" || a == "--seed" || a == "--write-seeds") && i + 1 >= argc) return usage(argv[0]);
    if (a == "--mutations") {
      mutations = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--seed") {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--write-seeds") {
      const fs::path dir = argv[++i];
      fs::create_directories(dir);
      for (const auto& [name, bytes] : builtin_seeds()) {
        std::ofstream out(dir / name, std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
      }
      return 0;
    } else if (a.rfind("--", 0) == 0) {
      return usage(argv[0]);
    } else if (fs::is_directory(a)) {
      for (const auto& e : fs::directory_iterator(a))
        if (e.is_regular_file()) seeds.emplace_back(e.path().string(), read_file(e.path()));
    } else {
      seeds.emplace_back(a, read_file(a));
    }
  }

  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& s : seeds) LLVMFuzzerTestOneInput(s.second.data(), s.second.size());
  std::mt19937_64 rng(seed);
  uint64_t accepted = 0;
  for (uint64_t i = 0; i < mutations; ++i) {
    Bytes b = seeds[static_cast<size_t>(rng() % seeds.size())].second;
    mutate(b, rng);
    LLVMFuzzerTestOneInput(b.data(), b.size());
    // Count inputs that still parse, to show the mutations reach past the first checks.
    try {
      vlart::SafetensorsFile::from_memory(b.data(), b.size());
      ++accepted;
    } catch (const vlart::FormatError&) {
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("fuzz_safetensors_standalone: %zu seeds, %llu mutations (seed %llu), %llu still valid, %.2f s\n",
              seeds.size(), static_cast<unsigned long long>(mutations), static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(accepted), secs);
  return 0;
}
