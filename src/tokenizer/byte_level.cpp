#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/unicode_classes.h"
#include "tokenizer/utf8.h"

namespace vlart::tok {
namespace {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order, so every byte becomes a visible, non-space character.
struct Alphabet {
  std::array<char32_t, 256> to_char{};
  std::array<std::string, 256> to_utf8;
  Alphabet() {
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_char[b] = printable ? static_cast<char32_t>(b) : next++;
      append_utf8(to_utf8[b], to_char[b]);
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

}  // namespace

const std::string& byte_to_char_utf8(unsigned char b) { return alphabet().to_utf8[b]; }

int char_to_byte(char32_t cp) {
  if (cp < 256) {
    const bool printable = (cp >= '!' && cp <= '~') || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE);
    return printable ? static_cast<int>(cp) : -1;
  }
  if (cp < 256 + 68) {
    const auto& t = alphabet().to_char;
    for (int b = 0; b < 256; ++b)
      if (t[b] == cp) return b;
  }
  return -1;
}

std::string byte_level_encode(std::string_view s) {
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char b : s) out += byte_to_char_utf8(b);
  return out;
}

namespace {

enum class Cls { kLetter, kNumber, kSpace, kOther };

Cls classify(char32_t cp) {
  const uint8_t f = unicode_flags(cp);
  if (f & kLetter) return Cls::kLetter;
  if (f & kNumber) return Cls::kNumber;
  if (f & kSpace) return Cls::kSpace;
  return Cls::kOther;
}

// Contraction at s[i] == '\'': length of 's 't 're 've 'm 'll 'd (case-sensitive), or 0.
size_t contraction_len(std::string_view s, size_t i) {
  if (i + 1 >= s.size()) return 0;
  const char c = s[i + 1];
  if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
  if (i + 2 < s.size()) {
    const char d = s[i + 2];
    if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return 3;
  }
  return 0;
}

}  // namespace

namespace {

struct Ch {
  size_t pos;
  Cls cls;
  bool crlf;  // '\r' or '\n'
};

// Pre-decoded once: the split alternatives look at the classes of the next one or two characters.
// One sentinel at the end holds the end position.
std::vector<Ch> classify_chars(std::string_view s) {
  std::vector<Ch> chars;
  chars.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size();) {
    const DecodedChar d = decode_utf8(s, i);
    chars.push_back({i, classify(d.cp), d.cp == '\r' || d.cp == '\n'});
    i += d.len;
  }
  chars.push_back({s.size(), Cls::kOther, false});
  return chars;
}

// End of the run of characters of class `c` starting at k (n = characters before the sentinel).
size_t run_end(const std::vector<Ch>& chars, size_t n, size_t k, Cls c) {
  while (k < n && chars[k].cls == c) ++k;
  return k;
}

}  // namespace

void gpt2_split(std::string_view s, std::vector<Span>& out) {
  const std::vector<Ch> chars = classify_chars(s);
  const size_t n = chars.size() - 1;
  // A run of characters of class `c` (for kOther: "not space/letter/number").
  const auto run = [&](size_t k, Cls c) { return run_end(chars, n, k, c); };
  size_t k = 0;
  while (k < n) {
    const size_t begin = chars[k].pos;
    size_t end_k = k + 1;
    if (s[begin] == '\'' && contraction_len(s, begin) > 0) {
      const size_t len = contraction_len(s, begin);
      out.push_back({begin, begin + len, true});
      k += len;  // contraction characters are ASCII: one byte each
      continue;
    }
    // ' ?X+' for X in letter / number / other: an optional ASCII space then a non-empty run.
    size_t j = k;
    if (s[begin] == ' ' && k + 1 < n && chars[k + 1].cls != Cls::kSpace) j = k + 1;
    const Cls c = chars[j].cls;
    if (c != Cls::kSpace) {
      end_k = run(j, c);
    } else {
      // Whitespace: \s+(?!\S) takes the run minus its last character when a non-space follows
      // (that character then prefixes the next token); otherwise, or for a run of one, \s+ takes it all.
      const size_t e = run(k, Cls::kSpace);
      end_k = (e < n && e - k > 1) ? e - 1 : e;
    }
    out.push_back({begin, chars[end_k].pos, true});
    k = end_k;
  }
}

namespace {

// (?i:'s|'t|'re|'ve|'m|'ll|'d) at s[i] == '\'': the length, or 0 (ASCII case folding).
size_t contraction_len_ci(std::string_view s, size_t i) {
  if (i + 1 >= s.size()) return 0;
  const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  const char c = lower(s[i + 1]);
  if (i + 2 < s.size()) {
    const char d = lower(s[i + 2]);
    if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return 3;
  }
  if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
  return 0;
}

}  // namespace

void qwen2_split(std::string_view s, std::vector<Span>& out) {
  const std::vector<Ch> chars = classify_chars(s);
  const size_t n = chars.size() - 1;
  // A run of characters of class `c` (for kOther: "not space/letter/number").
  const auto run = [&](size_t k, Cls c) { return run_end(chars, n, k, c); };
  size_t k = 0;
  while (k < n) {
    const Ch& c = chars[k];
    size_t end_k = 0;
    if (s[c.pos] == '\'' && contraction_len_ci(s, c.pos) > 0) {
      end_k = k + contraction_len_ci(s, c.pos);  // ASCII: one byte per character
    } else if (c.cls == Cls::kLetter) {
      end_k = run(k, Cls::kLetter);  // [^\r\n\p{L}\p{N}]?\p{L}+ with the optional part empty
    } else if (c.cls != Cls::kNumber && !c.crlf && k + 1 < n && chars[k + 1].cls == Cls::kLetter) {
      end_k = run(k + 1, Cls::kLetter);  // one non-letter, non-number, non-newline, then letters
    } else if (c.cls == Cls::kNumber) {
      end_k = k + 1;  // \p{N}: one at a time
    } else if (c.cls == Cls::kOther || (s[c.pos] == ' ' && k + 1 < n && chars[k + 1].cls == Cls::kOther)) {
      // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
      end_k = run(c.cls == Cls::kOther ? k : k + 1, Cls::kOther);
      while (end_k < n && chars[end_k].crlf) ++end_k;
    } else {
      // Whitespace. \s*[\r\n]+ : up to the run's last newline; else \s+(?!\S) : the run minus its last
      // character when a non-space follows (and the run is longer than one); else \s+ : the run.
      const size_t e = run(k, Cls::kSpace);
      size_t last_nl = n;
      for (size_t j = k; j < e; ++j)
        if (chars[j].crlf) last_nl = j;
      if (last_nl != n)
        end_k = last_nl + 1;
      else
        end_k = (e < n && e - k > 1) ? e - 1 : e;
    }
    out.push_back({c.pos, chars[end_k].pos, true});
    k = end_k;
  }
}

}  // namespace vlart::tok
