// UTF-8 helpers for the tokenizer: strict decoding, encoding, and lossy decoding that matches
// Rust's String::from_utf8_lossy (one U+FFFD per maximal invalid subpart), which `tokenizers` uses.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace vlart::tok {

struct DecodedChar {
  char32_t cp;    // U+FFFD when invalid
  size_t len;     // bytes consumed; for invalid input the length of the maximal invalid subpart (>= 1)
  bool valid;
};

// Decodes the code point starting at s[i] (i < s.size()).
DecodedChar decode_utf8(std::string_view s, size_t i);

// Byte offset of the first invalid sequence, or npos when `s` is valid UTF-8.
size_t find_invalid_utf8(std::string_view s);

void append_utf8(std::string& out, char32_t cp);

std::string utf8_lossy(std::string_view bytes);

// Replaces every non-overlapping occurrence of `from` (non-empty), left to right, with `to`.
void replace_all(std::string& s, const std::string& from, const std::string& to);

}  // namespace vlart::tok
