// .npy reader and image-file decoding used by `vlart run`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "io/image_file.h"
#include "io/npy.h"
#include "vlart/error.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

using namespace vlart;

namespace {

// A .npy file as numpy writes it: magic, version, header padded with spaces to a multiple of 64
// (including the preamble), '\n', then the data.
std::vector<uint8_t> make_npy(const std::string& dict, const std::vector<float>& data, int major = 1,
                              size_t extra_bytes = 0) {
  const size_t pre = major == 1 ? 10 : 12;
  std::string h = dict;
  while ((pre + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  std::vector<uint8_t> b = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<uint8_t>(major), 0};
  const size_t n = h.size();
  b.push_back(static_cast<uint8_t>(n & 0xff));
  b.push_back(static_cast<uint8_t>((n >> 8) & 0xff));
  if (major > 1) {
    b.push_back(static_cast<uint8_t>((n >> 16) & 0xff));
    b.push_back(static_cast<uint8_t>((n >> 24) & 0xff));
  }
  b.insert(b.end(), h.begin(), h.end());
  const size_t off = b.size();
  b.resize(off + data.size() * 4 + extra_bytes, 0);
  if (!data.empty()) std::memcpy(b.data() + off, data.data(), data.size() * 4);
  return b;
}

void expect_format_error(const std::vector<uint8_t>& b, const std::string& needle) {
  try {
    io::parse_npy_f32(b.data(), b.size(), "t.npy");
    ADD_FAILURE() << "expected FormatError mentioning " << needle;
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("t.npy"), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Npy, ParsesFloat32Shapes) {
  std::vector<float> v(3 * 5);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.25f * static_cast<float>(i) - 1.f;
  auto b = make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), }", v);
  io::NpyArray a = io::parse_npy_f32(b.data(), b.size(), "t.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(a.data, v);
  // Version 2 header, rank 3, 1-d with trailing comma, 0-d scalar, empty array.
  b = make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 5), }", v, 2);
  EXPECT_EQ(io::parse_npy_f32(b.data(), b.size(), "t.npy").shape, (std::vector<int64_t>{1, 3, 5}));
  b = make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (15,), }", v);
  EXPECT_EQ(io::parse_npy_f32(b.data(), b.size(), "t.npy").shape, (std::vector<int64_t>{15}));
  b = make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", {2.5f});
  a = io::parse_npy_f32(b.data(), b.size(), "t.npy");
  EXPECT_TRUE(a.shape.empty());
  EXPECT_EQ(a.data, std::vector<float>{2.5f});
  b = make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }", {});
  EXPECT_TRUE(io::parse_npy_f32(b.data(), b.size(), "t.npy").data.empty());
  // Key order is free.
  b = make_npy("{'shape': (3, 5), 'fortran_order': False, 'descr': '<f4'}", v);
  EXPECT_EQ(io::parse_npy_f32(b.data(), b.size(), "t.npy").data, v);
}

TEST(Npy, RejectsWhatItCannotRead) {
  const std::vector<float> v(6, 1.f);
  expect_format_error(make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", v), "float32");
  expect_format_error(make_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }", v), "float32");
  expect_format_error(make_npy("{'descr': '<i4', 'fortran_order': False, 'shape': (6,), }", v), "float32");
  expect_format_error(make_npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", v), "C order");
  expect_format_error(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }", v),
                      "data is 24 bytes, expected 32");
  expect_format_error(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", v, 1, 3),
                      "data is 27 bytes, expected 24");
  expect_format_error(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", v), "shape");
  expect_format_error(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': [6], }", v), "not a tuple");
  expect_format_error(make_npy("{'descr': '<f4', 'fortran_order': False}", v), "'shape'");
  expect_format_error(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999,), }", v),
                      "too large");
  auto b = make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", v);
  b[1] = 'X';
  expect_format_error(b, "magic");
  b = make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", v);
  b[6] = 9;
  expect_format_error(b, "version 9");
  b = make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", v);
  b[9] = 0x7f;  // header length beyond the file
  expect_format_error(b, "exceeds the file");
  b.resize(7);
  expect_format_error(b, "magic");
  EXPECT_THROW(io::read_npy_f32("/no/such/file.npy"), IoError);
}

TEST(Npy, ReadsFromDisk) {
  const std::vector<float> v = {1.f, -2.f, 3.5f, 1e-20f};
  const std::string path = ::testing::TempDir() + std::to_string(getpid()) + "_vlart_npy_test.npy";
  auto b = make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 2), }", v);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<long>(b.size()));
  io::NpyArray a = io::read_npy_f32(path);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{1, 2, 2}));
  EXPECT_EQ(a.data, v);
}

TEST(ImageFile, DecodesPngExactlyAndConvertsGreyAndAlpha) {
  const int w = 7, h = 5;  // odd sizes
  std::vector<uint8_t> rgb(static_cast<size_t>(w * h * 3)), rgba(static_cast<size_t>(w * h * 4)),
      grey(static_cast<size_t>(w * h));
  for (int i = 0; i < w * h; ++i) {
    for (int c = 0; c < 3; ++c) rgb[static_cast<size_t>(i * 3 + c)] = static_cast<uint8_t>((i * 37 + c * 91) & 0xff);
    for (int c = 0; c < 4; ++c) rgba[static_cast<size_t>(i * 4 + c)] = static_cast<uint8_t>((i * 13 + c * 50) & 0xff);
    grey[static_cast<size_t>(i)] = static_cast<uint8_t>(i * 7);
  }
  const std::string d = ::testing::TempDir() + std::to_string(getpid()) + "_";
  ASSERT_TRUE(stbi_write_png((d + "vlart_rgb.png").c_str(), w, h, 3, rgb.data(), w * 3));
  ASSERT_TRUE(stbi_write_png((d + "vlart_rgba.png").c_str(), w, h, 4, rgba.data(), w * 4));
  ASSERT_TRUE(stbi_write_png((d + "vlart_grey.png").c_str(), w, h, 1, grey.data(), w));
  Image im = io::load_image_rgb(d + "vlart_rgb.png");
  EXPECT_EQ(im.height, h);
  EXPECT_EQ(im.width, w);
  EXPECT_EQ(im.data, rgb);
  im = io::load_image_rgb(d + "vlart_rgba.png");  // alpha dropped
  for (int i = 0; i < w * h; ++i)
    for (int c = 0; c < 3; ++c)
      EXPECT_EQ(im.data[static_cast<size_t>(i * 3 + c)], rgba[static_cast<size_t>(i * 4 + c)]);
  im = io::load_image_rgb(d + "vlart_grey.png");  // grey replicated
  for (int i = 0; i < w * h; ++i)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(im.data[static_cast<size_t>(i * 3 + c)], grey[static_cast<size_t>(i)]);
}

TEST(ImageFile, ErrorsNameTheFile) {
  try {
    io::load_image_rgb("/no/such/image.png");
    ADD_FAILURE();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/no/such/image.png"), std::string::npos);
  }
  const std::string junk = ::testing::TempDir() + std::to_string(getpid()) + "_vlart_junk.png";
  std::ofstream(junk) << "this is not a png";
  try {
    io::load_image_rgb(junk);
    ADD_FAILURE();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot decode image " + junk), std::string::npos) << e.what();
  }
  // A truncated PNG (valid signature, cut mid-stream) fails cleanly too.
  const std::string trunc = ::testing::TempDir() + std::to_string(getpid()) + "_vlart_trunc.png";
  std::ifstream src(std::string(VLART_TEST_DATA_DIR) + "/../../assets/samples/camera2.png", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(src)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 100u);
  std::ofstream(trunc, std::ios::binary) << bytes.substr(0, 60);
  EXPECT_THROW(io::load_image_rgb(trunc), FormatError);
}
