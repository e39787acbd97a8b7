#include "io/npy.h"

#include <cstring>
#include <fstream>
#include <iterator>

#include "vlart/error.h"

namespace vlart::io {
namespace {

// Value of `key` in the header dict text, e.g. "'descr': '<f4'" -> "'<f4'" (trimmed, up to the
// next top-level comma or the closing brace).
std::string dict_value(const std::string& h, const std::string& key, const std::string& label) {
  const std::string k = "'" + key + "'";
  size_t p = h.find(k);
  VLART_CHECK(p != std::string::npos, FormatError, label, ": .npy header has no ", k, " (header: ", h, ")");
  p = h.find(':', p + k.size());
  VLART_CHECK(p != std::string::npos, FormatError, label, ": .npy header: no ':' after ", k);
  ++p;
  int depth = 0;
  size_t e = p;
  for (; e < h.size(); ++e) {
    const char c = h[e];
    if (c == '(') ++depth;
    else if (c == ')') --depth;
    else if ((c == ',' || c == '}') && depth == 0) break;
  }
  std::string v = h.substr(p, e - p);
  const size_t b = v.find_first_not_of(" \t");
  const size_t z = v.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : v.substr(b, z - b + 1);
}

std::vector<int64_t> parse_shape(const std::string& v, const std::string& label) {
  VLART_CHECK(v.size() >= 2 && v.front() == '(' && v.back() == ')', FormatError, label,
              ": .npy shape is not a tuple: ", v);
  std::vector<int64_t> shape;
  size_t i = 1;
  const size_t end = v.size() - 1;
  while (i < end) {
    while (i < end && (v[i] == ' ' || v[i] == ',')) ++i;
    if (i >= end) break;
    VLART_CHECK(v[i] >= '0' && v[i] <= '9', FormatError, label, ": .npy shape has a non-integer entry: ", v);
    int64_t d = 0;
    while (i < end && v[i] >= '0' && v[i] <= '9') {
      d = d * 10 + (v[i] - '0');
      VLART_CHECK(d <= (int64_t(1) << 40), FormatError, label, ": .npy dimension too large in ", v);
      ++i;
    }
    VLART_CHECK(i >= end || v[i] == ',' || v[i] == ' ', FormatError, label, ": .npy shape has a bad entry: ", v);
    shape.push_back(d);
  }
  return shape;
}

}  // namespace

NpyArray parse_npy_f32(const void* bytes, size_t size, const std::string& label) {
  const auto* b = static_cast<const uint8_t*>(bytes);
  static const uint8_t kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  VLART_CHECK(size >= 10 && std::memcmp(b, kMagic, 6) == 0, FormatError, label,
              ": not a .npy file (missing \\x93NUMPY magic)");
  const int major = b[6];
  VLART_CHECK(major >= 1 && major <= 3, FormatError, label, ": unsupported .npy version ", major, ".", int(b[7]));
  size_t hlen = 0, off = 0;
  if (major == 1) {
    hlen = size_t(b[8]) | size_t(b[9]) << 8;
    off = 10;
  } else {
    VLART_CHECK(size >= 12, FormatError, label, ": truncated .npy preamble");
    hlen = size_t(b[8]) | size_t(b[9]) << 8 | size_t(b[10]) << 16 | size_t(b[11]) << 24;
    off = 12;
  }
  VLART_CHECK(hlen <= size - off, FormatError, label, ": .npy header length ", hlen, " exceeds the file (",
              size, " bytes)");
  const std::string h(reinterpret_cast<const char*>(b + off), hlen);
  VLART_CHECK(h.find('{') != std::string::npos && h.find('}') != std::string::npos, FormatError, label,
              ": .npy header is not a dict: ", h);
  const std::string descr = dict_value(h, "descr", label);
  const bool little = [] {
    const uint16_t one = 1;
    uint8_t c;
    std::memcpy(&c, &one, 1);
    return c == 1;
  }();
  VLART_CHECK(descr == "'<f4'" || (little && descr == "'=f4'"), FormatError, label,
              ": .npy dtype must be little-endian float32 ('<f4'), got ", descr);
  const std::string fo = dict_value(h, "fortran_order", label);
  VLART_CHECK(fo == "False", FormatError, label, ": .npy array must be C order (fortran_order is ", fo, ")");
  NpyArray a;
  a.shape = parse_shape(dict_value(h, "shape", label), label);
  int64_t n = 1;
  for (int64_t d : a.shape) {
    n *= d;
    VLART_CHECK(n <= (int64_t(1) << 40), FormatError, label, ": .npy array too large");
  }
  const size_t data_off = off + hlen;
  const size_t want = static_cast<size_t>(n) * 4;
  VLART_CHECK(size - data_off == want, FormatError, label, ": .npy data is ", size - data_off,
              " bytes, expected ", want, " for shape with ", n, " float32 values");
  a.data.resize(static_cast<size_t>(n));
  if (n > 0) std::memcpy(a.data.data(), b + data_off, want);
  return a;
}

NpyArray read_npy_f32(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  VLART_CHECK(f.good(), IoError, "cannot open ", path);
  std::vector<char> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  VLART_CHECK(!f.bad(), IoError, "cannot read ", path);
  return parse_npy_f32(buf.data(), buf.size(), path);
}

}  // namespace vlart::io
