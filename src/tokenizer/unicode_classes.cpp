#include "tokenizer/unicode_classes.h"

#include <algorithm>
#include <array>
#include <iterator>

namespace vlart::tok {
namespace {

struct Range {
  char32_t first, last;
  uint8_t flags;
};

constexpr Range kRanges[] = {
#include "tokenizer/unicode_classes.inc"
};

// ASCII is most of the text a robot task string holds; avoid the binary search for it.
std::array<uint8_t, 128> make_ascii_table() {
  std::array<uint8_t, 128> t{};
  for (const Range& r : kRanges) {
    for (char32_t c = r.first; c <= r.last && c < 128; ++c) t[c] = r.flags;
  }
  return t;
}

}  // namespace

uint8_t unicode_flags(char32_t cp) {
  static const std::array<uint8_t, 128> ascii = make_ascii_table();
  if (cp < 128) return ascii[cp];
  const Range* end = std::end(kRanges);
  const Range* it = std::upper_bound(std::begin(kRanges), end, cp,
                                     [](char32_t c, const Range& r) { return c < r.first; });
  if (it == std::begin(kRanges)) return 0;
  --it;
  return cp <= it->last ? it->flags : 0;
}

}  // namespace vlart::tok
