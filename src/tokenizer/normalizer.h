// Normalizers: rewrite a text segment before pre-tokenization (tokenizers' `normalizer` field).
// Supported: Replace (String pattern), Prepend, NFC, Sequence of those. Offsets are not tracked:
// vlart::Tokenizer returns ids, not alignments.
#pragma once

#include <memory>
#include <string>

#include "tokenizer/json_fields.h"

namespace vlart::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void apply(std::string& s) const = 0;
};

// `j` may be null (returns nullptr: no normalizer). Throws FormatError / UnsupportedError naming the field.
std::unique_ptr<Normalizer> parse_normalizer(const Json* j, const JsonCtx& ctx, const std::string& path);

// Unicode canonical composition (NFC) of valid UTF-8.
std::string nfc(const std::string& s);

}  // namespace vlart::tok
