#include "tokenizer/normalizer.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tokenizer/utf8.h"

namespace vlart::tok {
namespace {

// ---------------------------------------------------------------- NFC tables (unicode_nfc.inc)

struct Decomp {
  char32_t cp;
  char32_t to[4];  // zero-terminated when shorter
};
struct Ccc {
  char32_t cp;
  uint8_t cls;
};
struct Comp {
  char32_t a, b, to;
};

constexpr Decomp kDecomp[] = {
#define VLART_NFC_DECOMP
#include "tokenizer/unicode_nfc.inc"
#undef VLART_NFC_DECOMP
};
constexpr Ccc kCcc[] = {
#define VLART_NFC_CCC
#include "tokenizer/unicode_nfc.inc"
#undef VLART_NFC_CCC
};
constexpr Comp kComp[] = {
#define VLART_NFC_COMP
#include "tokenizer/unicode_nfc.inc"
#undef VLART_NFC_COMP
};

// Hangul syllables compose and decompose algorithmically (Unicode 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

uint8_t ccc(char32_t cp) {
  if (cp < 0x300) return 0;
  const Ccc* it = std::lower_bound(std::begin(kCcc), std::end(kCcc), cp,
                                   [](const Ccc& e, char32_t c) { return e.cp < c; });
  return it != std::end(kCcc) && it->cp == cp ? it->cls : 0;
}

void decompose(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  if (cp >= 0xC0) {
    const Decomp* it = std::lower_bound(std::begin(kDecomp), std::end(kDecomp), cp,
                                        [](const Decomp& e, char32_t c) { return e.cp < c; });
    if (it != std::end(kDecomp) && it->cp == cp) {
      for (char32_t c : it->to)
        if (c) out.push_back(c);
      return;
    }
  }
  out.push_back(cp);
}

// The primary composite of (a, b), or 0.
char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  const Comp* it = std::lower_bound(std::begin(kComp), std::end(kComp), std::make_pair(a, b),
                                    [](const Comp& e, const std::pair<char32_t, char32_t>& k) {
                                      return e.a < k.first || (e.a == k.first && e.b < k.second);
                                    });
  return it != std::end(kComp) && it->a == a && it->b == b ? it->to : 0;
}

// ---------------------------------------------------------------- normalizers

class ReplaceNorm final : public Normalizer {
 public:
  ReplaceNorm(std::string pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void apply(std::string& s) const override { replace_all(s, pattern_, content_); }

 private:
  std::string pattern_, content_;
};

class PrependNorm final : public Normalizer {
 public:
  explicit PrependNorm(std::string p) : prefix_(std::move(p)) {}
  void apply(std::string& s) const override {
    if (!s.empty()) s.insert(0, prefix_);  // tokenizers leaves an empty string empty
  }

 private:
  std::string prefix_;
};

class NfcNorm final : public Normalizer {
 public:
  void apply(std::string& s) const override { s = nfc(s); }
};

class SequenceNorm final : public Normalizer {
 public:
  explicit SequenceNorm(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void apply(std::string& s) const override {
    for (const auto& n : steps_) n->apply(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::string nfc(const std::string& s) {
  // ASCII (and Latin-1 below U+0300 without decompositions) is its own NFC.
  bool simple = true;
  for (unsigned char c : s)
    if (c >= 0x80) {
      simple = false;
      break;
    }
  if (simple) return s;
  std::vector<char32_t> buf;
  buf.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const DecodedChar d = decode_utf8(s, i);
    decompose(d.cp, buf);
    i += d.len;
  }
  // Canonical order: stable sort of every run of non-starters by combining class.
  for (size_t i = 0; i < buf.size();) {
    if (ccc(buf[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < buf.size() && ccc(buf[j]) != 0) ++j;
    std::stable_sort(buf.begin() + static_cast<std::ptrdiff_t>(i), buf.begin() + static_cast<std::ptrdiff_t>(j),
                     [](char32_t a, char32_t b) { return ccc(a) < ccc(b); });
    i = j;
  }
  // Canonical composition (UAX #15): a character joins the last starter unless blocked.
  if (!buf.empty()) {
    size_t starter = 0, w = 1;
    int last_cls = ccc(buf[0]) ? 256 : 0;
    for (size_t r = 1; r < buf.size(); ++r) {
      const char32_t c = buf[r];
      const int cls = ccc(c);
      const char32_t comp = last_cls == 256 ? 0 : compose(buf[starter], c);
      if (comp && (last_cls < cls || last_cls == 0)) {
        buf[starter] = comp;
        continue;
      }
      if (cls == 0) starter = w;
      last_cls = cls;
      buf[w++] = c;
    }
    buf.resize(w);
  }
  std::string out;
  out.reserve(s.size());
  for (char32_t c : buf) append_utf8(out, c);
  return out;
}

std::unique_ptr<Normalizer> parse_normalizer(const Json* j, const JsonCtx& ctx, const std::string& path) {
  if (!j) return nullptr;
  const std::string type = ctx.string_member(*j, path, "type");
  if (type == "Replace")
    return std::make_unique<ReplaceNorm>(ctx.replace_literal(*j, path), ctx.string_member(*j, path, "content"));
  if (type == "Prepend") return std::make_unique<PrependNorm>(ctx.string_member(*j, path, "prepend"));
  if (type == "NFC") return std::make_unique<NfcNorm>();
  if (type == "Sequence") {
    const Json& list = ctx.member(*j, path, "normalizers");
    if (!list.is_array()) ctx.fail(path + ".normalizers", "must be an array");
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      auto n = parse_normalizer(&list[i], ctx, path + ".normalizers[" + std::to_string(i) + "]");
      if (n) steps.push_back(std::move(n));
    }
    return std::make_unique<SequenceNorm>(std::move(steps));
  }
  ctx.unsupported(path + ".type", "'" + type + "'");
}

}  // namespace vlart::tok
