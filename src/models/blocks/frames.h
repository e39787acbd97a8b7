// Observation pieces every family handles alike: camera-frame validation, a frame's content hash
// (vision-cache keys), and the pad token a tokenizer directory names.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "vlart/policy.h"

namespace vlart {
class Tokenizer;
}

namespace vlart::blocks {

// InvalidArgument prefixed by `where` naming camera `cam` for an empty frame, a byte count that is
// not height x width x 3, or a view with a short row stride / owned bytes as well.
void check_frame(const Image& im, const std::string& cam, const std::string& where);

// 64-bit content hash of a frame (multiply-xorshift over 8-byte words; not cryptographic). Row by
// row: the same pixels as a padded view and packed hash differently (a cache miss, never a wrong hit).
uint64_t frame_hash(const Image& im);

// Pad token named by tokenizer_config.json / special_tokens_map.json in `dir` (a plain string or an
// AddedToken object), else `fallback` when the vocabulary has it ("" = none); -1 when none is found.
int32_t find_pad_id(const Tokenizer& tok, const std::filesystem::path& dir, const std::string& fallback = "");

// The first tokenizer.json of: `override_path` (a file, or a directory holding tokenizer.json;
// NotFoundError when it does not exist), then `candidates` in order; with its pad id (find_pad_id
// with `pad_fallback`). tok is null when none exists (the family reports it when a prompt needs it).
struct FoundTokenizer {
  std::unique_ptr<Tokenizer> tok;
  int32_t pad_id = -1;
};
FoundTokenizer find_tokenizer(const std::string& override_path, const std::vector<std::filesystem::path>& candidates,
                              const std::string& pad_fallback = "");

}  // namespace vlart::blocks
