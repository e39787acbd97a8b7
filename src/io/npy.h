// Minimal .npy reader for float32 arrays (numpy's own format, versions 1-3): enough for feeding
// recorded noise / inputs to the runtime without Python. Everything else is rejected with a
// FormatError naming the file and the field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vlart::io {

struct NpyArray {
  std::vector<int64_t> shape;  // empty for a 0-d array
  std::vector<float> data;     // C order
};

// Parses `size` bytes of a .npy file; `label` names the input in error messages. Accepts only
// little-endian (or native-order on a little-endian host) float32, C order.
NpyArray parse_npy_f32(const void* bytes, size_t size, const std::string& label);
// Reads and parses `path` (IoError when it cannot be read).
NpyArray read_npy_f32(const std::string& path);

}  // namespace vlart::io
