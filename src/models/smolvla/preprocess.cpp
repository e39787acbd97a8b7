#include "models/smolvla/preprocess.h"

#include <algorithm>
#include <cmath>

#include "models/blocks/image.h"
#include "models/blocks/prompt.h"
#include "vlart/error.h"
#include "vlart/tokenizer.h"

namespace vlart::smolvla {

std::vector<float> resize_with_pad(const uint8_t* hwc, int64_t h, int64_t w, int64_t out_h, int64_t out_w,
                                   int64_t row_stride) {
  blocks::ResizePad spec;  // LeRobot SmolVLA: pad left/top with 0, then x * 2 - 1
  spec.out_h = out_h;
  spec.out_w = out_w;
  spec.place = blocks::PadPlace::kTopLeft;
  return blocks::resize_with_pad(hwc, h, w, row_stride, spec);
}

std::vector<float> normalize_state(const std::vector<float>& state, const std::vector<float>& mean,
                                   const std::vector<float>& std, int64_t padded_dim) {
  VLART_CHECK(state.size() == mean.size() && state.size() == std.size(), InvalidArgument,
              "smolvla: state has ", state.size(), " values, normaliser stats have ", mean.size());
  VLART_CHECK(static_cast<int64_t>(state.size()) <= padded_dim, InvalidArgument, "smolvla: state dim ",
              state.size(), " exceeds max_state_dim ", padded_dim);
  std::vector<float> out(static_cast<size_t>(padded_dim), 0.f);
  for (size_t i = 0; i < state.size(); ++i) out[i] = (state[i] - mean[i]) / (std[i] + 1e-8f);
  return out;
}

LangTokens tokenize_task(const Tokenizer& tok, const std::string& task, int64_t max_length, bool pad_to_max,
                         int32_t pad_id) {
  blocks::PromptTokens p = blocks::tokenize_prompt(tok, blocks::with_trailing_newline(task), max_length, pad_to_max,
                                                   pad_id);
  LangTokens t;
  t.ids = std::move(p.ids);
  t.mask = std::move(p.mask);
  return t;
}

}  // namespace vlart::smolvla
