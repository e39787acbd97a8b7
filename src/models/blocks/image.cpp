#include "models/blocks/image.h"

#include <algorithm>

#include "vlart/error.h"

namespace vlart::blocks {
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

std::vector<float> resize_with_pad(const uint8_t* hwc, int64_t h, int64_t w, int64_t row_stride, const ResizePad& p) {
  VLART_CHECK(h > 0 && w > 0, InvalidArgument, "resize_with_pad: empty frame ", h, "x", w);
  VLART_CHECK(p.out_h > 0 && p.out_w > 0, InvalidArgument, "resize_with_pad: target ", p.out_h, "x", p.out_w);
  const int64_t rs = row_stride > 0 ? row_stride : w * 3;
  const int64_t out_h = p.out_h, out_w = p.out_w;
  const double ratio = std::max(static_cast<double>(w) / static_cast<double>(out_w),
                                static_cast<double>(h) / static_cast<double>(out_h));
  const int64_t rh = static_cast<int64_t>(static_cast<double>(h) / ratio);
  const int64_t rw = static_cast<int64_t>(static_cast<double>(w) / ratio);
  const int64_t top = p.place == PadPlace::kTopLeft ? out_h - rh : (out_h - rh) / 2;
  const int64_t left = p.place == PadPlace::kTopLeft ? out_w - rw : (out_w - rw) / 2;
  std::vector<float> out(static_cast<size_t>(3 * out_h * out_w), p.pad * p.mul + p.add);
  const std::vector<Tap> ty = taps(h, rh), tx = taps(w, rw);
  auto px = [&](int64_t y, int64_t x, int64_t c) { return static_cast<float>(hwc[y * rs + x * 3 + c]) / 255.f; };
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
        out[static_cast<size_t>((c * out_h + top + y) * out_w + left + x)] = v * p.mul + p.add;
      }
    }
  return out;
}

}  // namespace vlart::blocks
