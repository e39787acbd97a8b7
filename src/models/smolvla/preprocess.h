// SmolVLA host-side preprocessing, matching LeRobot 0.4.4 (see docs/smolvla_reference_notes.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/flow_matching.h"

namespace vlart {
class Tokenizer;
}

namespace vlart::smolvla {

// uint8 HWC RGB frame -> f32 CHW [3, out_h, out_w] in [-1, 1]: /255, bilinear resize
// (align_corners=False, no antialias) to int(h/ratio) x int(w/ratio), pad left/top with 0, x*2-1.
// `row_stride`: bytes between the starts of rows (0 = w * 3, contiguous).
std::vector<float> resize_with_pad(const uint8_t* hwc, int64_t h, int64_t w, int64_t out_h, int64_t out_w,
                                   int64_t row_stride = 0);

// (x - mean) / (std + 1e-8), zero-padded to `padded_dim`.
std::vector<float> normalize_state(const std::vector<float>& state, const std::vector<float>& mean,
                                   const std::vector<float>& std, int64_t padded_dim);

struct LangTokens {
  std::vector<int64_t> ids;
  std::vector<uint8_t> mask;
};
// Appends "\n" if missing, tokenizes with special tokens, truncates to max_length and right-pads
// with pad_id to max_length when pad_to_max.
LangTokens tokenize_task(const Tokenizer& tok, const std::string& task, int64_t max_length, bool pad_to_max,
                         int32_t pad_id);

// The shared sinusoidal time embedding (models/flow_matching.h).
using vlart::time_embedding;

}  // namespace vlart::smolvla
