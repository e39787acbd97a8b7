// Decoders: turn the token strings of decode() back into text, as tokenizers' decode_chain does:
// each step maps the list of token strings to a new list, and the result is their concatenation.
// ByteLevel maps the byte-level alphabet back to bytes (tokens outside the alphabet, e.g. added
// tokens with spaces, pass through as their UTF-8) and repairs invalid UTF-8 like Rust's
// from_utf8_lossy; ByteFallback turns runs of <0xXX> tokens into their bytes (one U+FFFD per token
// where they are not valid UTF-8); Replace, Strip, Fuse and Metaspace are the SentencePiece-side
// steps. No decoder joins tokens with spaces, as tokenizers does.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/json_fields.h"

namespace vlart::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void chain(std::vector<std::string>& tokens) const = 0;
  // The final text: the chain's output concatenated (joined with spaces when there is no decoder).
  virtual std::string decode(std::vector<std::string> tokens) const {
    chain(tokens);
    std::string out;
    for (const std::string& t : tokens) out += t;
    return out;
  }
};

std::unique_ptr<Decoder> parse_decoder(const Json* j, const JsonCtx& ctx, const std::string& path);

}  // namespace vlart::tok
