// Post-processors (applied when add_special_tokens is true): ByteLevel (ids unchanged),
// TemplateProcessing (single-sequence template), and Sequence of those.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/json_fields.h"

namespace vlart::tok {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void apply(std::vector<int32_t>& ids) const = 0;
  // How many ids apply() adds (fixed for the supported processors); truncation leaves room for them.
  virtual size_t added() const = 0;
};

// Null JSON gives a processor that does nothing.
std::unique_ptr<PostProcessor> parse_post_processor(const Json* j, const JsonCtx& ctx, const std::string& path);

}  // namespace vlart::tok
