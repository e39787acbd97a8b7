// Pre-tokenizers: split a text segment into the pieces the model tokenizes independently.
// Each step maps the current list of pieces to a new one; empty pieces are dropped after every
// step, as `tokenizers` does. ByteLevel also rewrites its pieces into the byte-level alphabet,
// Metaspace spaces into its replacement character.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/json_fields.h"

namespace vlart::tok {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // `at_start`: the segment begins at offset 0 of the input (Metaspace's prepend_scheme "first").
  virtual void apply(std::vector<std::string>& pieces, bool at_start) const = 0;
  // True when the pieces come out in the byte-level alphabet (the vocabulary is byte-level).
  virtual bool byte_level() const { return false; }
};

// `j` may be null (no pre-tokenizer: the segment is one piece). Throws FormatError/UnsupportedError.
std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const Json* j, const JsonCtx& ctx, const std::string& path);

}  // namespace vlart::tok
