// Camera-frame preprocessing shared by the families: an aspect-preserving bilinear resize into a
// fixed frame with padding, as LeRobot's policies do it (PyTorch F.interpolate, bilinear,
// align_corners=False, no antialias; resized to int(h / r) x int(w / r) with r = max(w / out_w,
// h / out_h)), then an affine map of the [0, 1] values:
//   SmolVLA  pad left/top with 0, then x * 2 - 1            (padding ends at -1)
//   pi0      pad centred (extra row/column at the bottom/right), then x * 2 - 1: LeRobot 0.4.4 pads
//            float frames with -1 before the map (padding ends at -3); LeRobot 0.6.1, whose pi0 /
//            pi0.5 vlart loads (src/models/pi0), pads with 0 (padding ends at -1)
// Verified against LeRobot's own functions (tests/data/preprocess for 0.4.4, tools/make_preprocess_fixtures.py;
// tests/data/pi0 end to end for 0.6.1).
#pragma once

#include <cstdint>
#include <vector>

namespace vlart::blocks {

enum class PadPlace { kTopLeft, kCenter };

struct ResizePad {
  int64_t out_h = 0, out_w = 0;
  PadPlace place = PadPlace::kTopLeft;
  float pad = 0.f;              // padded pixels, in the [0, 1] units before the map
  float mul = 2.f, add = -1.f;  // out = v * mul + add
};

// uint8 HWC RGB frame (rows `row_stride` bytes apart; 0 = w * 3) -> f32 CHW [3, out_h, out_w].
std::vector<float> resize_with_pad(const uint8_t* hwc, int64_t h, int64_t w, int64_t row_stride, const ResizePad& spec);

}  // namespace vlart::blocks
