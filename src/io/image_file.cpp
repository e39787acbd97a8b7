#include "io/image_file.h"

#include <cstdio>
#include <memory>

#include "vlart/error.h"

// The one translation unit holding stb_image's implementation.
#define STB_IMAGE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#include <stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace vlart::io {

Image load_image_rgb(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  VLART_CHECK(f != nullptr, IoError, "cannot open image ", path);
  int w = 0, h = 0, ch = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> px(stbi_load_from_file(f.get(), &w, &h, &ch, 3), &stbi_image_free);
  VLART_CHECK(px != nullptr, FormatError, "cannot decode image ", path, ": ", stbi_failure_reason());
  Image im;
  im.height = h;
  im.width = w;
  im.data.assign(px.get(), px.get() + static_cast<size_t>(w) * static_cast<size_t>(h) * 3);
  return im;
}

}  // namespace vlart::io
