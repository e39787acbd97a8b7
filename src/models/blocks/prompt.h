// Prompt tokenisation as LeRobot's TokenizerProcessorStep does it (Hugging Face tokenizer call with
// truncation to max_length and right padding): the text is encoded with the tokenizer's special
// tokens, truncated so that the template's tokens survive (Tokenizer::encode_padded), and padded
// with pad_id to max_length when `pad_to_max` (else only truncated).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vlart {
class Tokenizer;
}

namespace vlart::blocks {

struct PromptTokens {
  std::vector<int64_t> ids;
  std::vector<uint8_t> mask;  // 1 = a real token, 0 = padding
};

PromptTokens tokenize_prompt(const Tokenizer& tok, const std::string& text, int64_t max_length, bool pad_to_max,
                             int32_t pad_id);

// `text` ending in "\n" (SmolVLA's and pi0's newline steps: appended unless already there).
std::string with_trailing_newline(std::string text);

}  // namespace vlart::blocks
