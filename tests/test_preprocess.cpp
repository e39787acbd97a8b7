// Shared camera-frame preprocessing (models/blocks/image.h) against LeRobot's own SmolVLA and pi0
// functions on frames of several sizes (tests/data/preprocess, tools/make_preprocess_fixtures.py),
// and the same frames as padded-row views.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "models/blocks/image.h"
#include "vlart/error.h"

using namespace vlart;
using namespace vlart::blocks;

namespace {

const std::string kFile = std::string(VLART_TEST_DATA_DIR) + "/preprocess/resize_with_pad.safetensors";
constexpr int64_t kH = 48, kW = 40;

double max_abs(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

void check(const char* family, PadPlace place, float pad) {
  const SafetensorsFile f = SafetensorsFile::open(kFile);
  const int cases = std::stoi(f.metadata().at("cases"));
  ASSERT_GE(cases, 5);
  ResizePad spec;
  spec.out_h = kH;
  spec.out_w = kW;
  spec.place = place;
  spec.pad = pad;
  for (int i = 0; i < cases; ++i) {
    const Tensor in = f.get("in." + std::to_string(i));
    const std::vector<float> want = f.get(std::string(family) + "." + std::to_string(i)).to_float_vector();
    const int64_t h = in.dim(0), w = in.dim(1);
    SCOPED_TRACE(std::string(family) + " " + std::to_string(h) + "x" + std::to_string(w));
    const std::vector<float> got = resize_with_pad(in.data<uint8_t>(), h, w, 0, spec);
    // Bilinear taps in another summation order than PyTorch's: f32 rounding (measured <= 6e-7).
    EXPECT_LE(max_abs(got, want), 2e-6);
    // The padding itself is exact, in the same places.
    size_t pads = 0;
    for (size_t k = 0; k < want.size(); ++k)
      if (want[k] == pad * 2.f - 1.f) {
        ++pads;
        EXPECT_EQ(got[k], want[k]) << k;
      }
    if (h * kW != w * kH) {
      EXPECT_GT(pads, 0u) << "an aspect change must pad";
    }
    // The same frame with padded rows.
    const int64_t stride = w * 3 + 5;
    std::vector<uint8_t> padded(static_cast<size_t>(stride * h), 0xEE);
    for (int64_t y = 0; y < h; ++y) std::copy_n(in.data<uint8_t>() + y * w * 3, w * 3, padded.data() + y * stride);
    EXPECT_EQ(resize_with_pad(padded.data(), h, w, stride, spec), got);
  }
}

TEST(Preprocess, SmolvlaResizeWithPadMatchesLeRobot) { check("smolvla", PadPlace::kTopLeft, 0.f); }
TEST(Preprocess, Pi0ResizeWithCentredPadMatchesLeRobot) { check("pi0", PadPlace::kCenter, -1.f); }

TEST(Preprocess, BadSizesAreErrors) {
  const uint8_t px[3] = {1, 2, 3};
  ResizePad s;
  s.out_h = 4;
  s.out_w = 4;
  EXPECT_THROW(resize_with_pad(px, 0, 1, 0, s), InvalidArgument);
  s.out_w = 0;
  EXPECT_THROW(resize_with_pad(px, 1, 1, 0, s), InvalidArgument);
}

}  // namespace
