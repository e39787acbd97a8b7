#include "models/smolvla/preprocess.h"

#include <algorithm>
#include <cmath>

#include "vlart/error.h"
#include "vlart/tokenizer.h"

namespace vlart::smolvla {

namespace {
// PyTorch's source index for align_corners=False (clamped at 0), with the f32 scale in/out.
struct Tap {
  int64_t i0, i1;
  float l0, l1;
};
std::vector<Tap> taps(int64_t in, int64_t out) {
  std::vector<Tap> t(static_cast<size_t>(out));
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t o = 0; o < out; ++o) {
    float src = scale * (static_cast<float>(o) + 0.5f) - 0.5f;
    if (src < 0.f) src = 0.f;
    const int64_t i0 = static_cast<int64_t>(src);
    const int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
    const float l1 = src - static_cast<float>(i0);
    t[static_cast<size_t>(o)] = {i0, i1, 1.f - l1, l1};
  }
  return t;
}
}  // namespace

std::vector<float> resize_with_pad(const uint8_t* hwc, int64_t h, int64_t w, int64_t out_h, int64_t out_w,
                                   int64_t row_stride) {
  const int64_t rs = row_stride > 0 ? row_stride : w * 3;
  VLART_CHECK(h > 0 && w > 0, InvalidArgument, "smolvla: empty frame ", h, "x", w);
  const double ratio = std::max(static_cast<double>(w) / static_cast<double>(out_w),
                                static_cast<double>(h) / static_cast<double>(out_h));
  const int64_t rh = static_cast<int64_t>(static_cast<double>(h) / ratio);
  const int64_t rw = static_cast<int64_t>(static_cast<double>(w) / ratio);
  const int64_t top = out_h - rh, left = out_w - rw;
  std::vector<float> out(static_cast<size_t>(3 * out_h * out_w), -1.f);  // pad 0 maps to -1
  const std::vector<Tap> ty = taps(h, rh), tx = taps(w, rw);
  auto px = [&](int64_t y, int64_t x, int64_t c) {
    return static_cast<float>(hwc[y * rs + x * 3 + c]) / 255.f;
  };
  const bool identity = rh == h && rw == w;
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < rh; ++y) {
      const Tap& a = ty[static_cast<size_t>(y)];
      for (int64_t x = 0; x < rw; ++x) {
        float v;
        if (identity) {
          v = px(y, x, c);
        } else {
          const Tap& b = tx[static_cast<size_t>(x)];
          v = a.l0 * (b.l0 * px(a.i0, b.i0, c) + b.l1 * px(a.i0, b.i1, c)) +
              a.l1 * (b.l0 * px(a.i1, b.i0, c) + b.l1 * px(a.i1, b.i1, c));
        }
        out[static_cast<size_t>((c * out_h + top + y) * out_w + left + x)] = v * 2.f - 1.f;
      }
    }
  return out;
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
  std::string text = task;
  if (text.empty() || text.back() != '\n') text += '\n';
  std::vector<int32_t> ids = tok.encode(text, true);
  if (static_cast<int64_t>(ids.size()) > max_length) ids.resize(static_cast<size_t>(max_length));
  LangTokens t;
  for (int32_t id : ids) {
    t.ids.push_back(id);
    t.mask.push_back(1);
  }
  if (pad_to_max)
    while (static_cast<int64_t>(t.ids.size()) < max_length) {
      t.ids.push_back(pad_id);
      t.mask.push_back(0);
    }
  return t;
}

std::vector<float> time_embedding(float t, int64_t width, double min_period, double max_period) {
  VLART_CHECK(width % 2 == 0, InvalidArgument, "smolvla: time embedding width ", width, " is odd");
  const int64_t half = width / 2;
  std::vector<float> out(static_cast<size_t>(width));
  const double step = half > 1 ? 1.0 / static_cast<double>(half - 1) : 0.0;
  for (int64_t i = 0; i < half; ++i) {
    // torch.linspace fills the second half from the end, which keeps the last value exactly 1.
    const double frac = i < half / 2 ? step * static_cast<double>(i) : 1.0 - step * static_cast<double>(half - 1 - i);
    const double period = min_period * std::pow(max_period / min_period, frac);
    const double x = (1.0 / period * 2.0 * M_PI) * static_cast<double>(t);
    out[static_cast<size_t>(i)] = static_cast<float>(std::sin(x));
    out[static_cast<size_t>(half + i)] = static_cast<float>(std::cos(x));
  }
  return out;
}

}  // namespace vlart::smolvla
