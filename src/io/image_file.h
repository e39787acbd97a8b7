// Image files (PNG, JPEG, BMP, ... through stb_image) decoded to the RGB uint8 frames that
// vlart::Observation takes.
#pragma once

#include <string>

#include "vlart/policy.h"

namespace vlart::io {

// Decodes `path` to HWC RGB uint8 (grey/alpha inputs are converted). IoError when the file cannot
// be read, FormatError naming the file and stb's reason when it cannot be decoded.
Image load_image_rgb(const std::string& path);

}  // namespace vlart::io
