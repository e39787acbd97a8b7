// GPT-2 byte-level pieces: the byte <-> printable-character alphabet and the GPT-2 split regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// implemented by hand (std::regex has no Unicode classes).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace vlart::tok {

// One segment of a piece: [begin, end) bytes, and whether it is a pattern match or the text between.
struct Span {
  size_t begin, end;
  bool is_match;
};

// The printable character (as UTF-8) that stands for byte b.
const std::string& byte_to_char_utf8(unsigned char b);
// The byte a byte-level character stands for, or -1 when cp is not in the alphabet.
int char_to_byte(char32_t cp);

// Maps every byte of s to its byte-level character.
std::string byte_level_encode(std::string_view s);

// Appends the GPT-2 regex matches of s (valid UTF-8) to `out`; they cover s without gaps.
void gpt2_split(std::string_view s, std::vector<Span>& out);

// Same for the Qwen2 / Qwen2.5 split regex
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
void qwen2_split(std::string_view s, std::vector<Span>& out);

}  // namespace vlart::tok
