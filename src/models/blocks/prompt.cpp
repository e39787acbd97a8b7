#include "models/blocks/prompt.h"

#include "vlart/error.h"
#include "vlart/tokenizer.h"

namespace vlart::blocks {

PromptTokens tokenize_prompt(const Tokenizer& tok, const std::string& text, int64_t max_length, bool pad_to_max,
                             int32_t pad_id) {
  VLART_CHECK(max_length > 0, InvalidArgument, "tokenize_prompt: max_length must be > 0, got ", max_length);
  const PaddedEncoding e = tok.encode_padded(text, static_cast<size_t>(max_length), pad_id);
  PromptTokens t;
  for (size_t i = 0; i < e.ids.size(); ++i) {
    if (!pad_to_max && e.attention_mask[i] == 0) break;
    t.ids.push_back(e.ids[i]);
    t.mask.push_back(static_cast<uint8_t>(e.attention_mask[i] != 0));
  }
  return t;
}

std::string with_trailing_newline(std::string text) {
  if (text.empty() || text.back() != '\n') text += '\n';
  return text;
}

}  // namespace vlart::blocks
