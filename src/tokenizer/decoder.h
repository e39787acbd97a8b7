// Decoders: turn the token strings of decode() back into text. ByteLevel maps the byte-level
// alphabet back to bytes (tokens outside the alphabet, e.g. added tokens with spaces, pass through
// as their UTF-8) and repairs invalid UTF-8 like Rust's from_utf8_lossy. No decoder joins tokens
// with spaces, as tokenizers does.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/json_fields.h"

namespace vlart::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::string decode(const std::vector<const std::string*>& tokens) const = 0;
};

std::unique_ptr<Decoder> parse_decoder(const Json* j, const JsonCtx& ctx, const std::string& path);

}  // namespace vlart::tok
