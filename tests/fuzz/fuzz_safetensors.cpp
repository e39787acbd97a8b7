// Fuzz target for the safetensors parser: any byte string must either parse into tensors whose
// bytes all lie inside the input, or raise FormatError. Any other exception, crash or sanitizer
// report is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/safetensors.h"
#include "vlart/error.h"

namespace {
// Beyond this a converted copy would only slow the fuzzer down; the raw byte walk still covers it.
constexpr int64_t kMaxConvertElems = 1 << 14;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vlart::SafetensorsFile f;
  try {
    f = vlart::SafetensorsFile::from_memory(data, size, "fuzz-input");
  } catch (const vlart::FormatError&) {
    return 0;
  }
  uint64_t sum = 0;
  for (const std::string& name : f.names()) {
    const vlart::SafetensorsTensorInfo& info = f.info(name);
    const vlart::Tensor t = f.get(name);
    // The parser's promises: the view spans exactly the declared bytes, inside the input.
    if (t.nbytes() != info.nbytes() || info.file_offset + info.nbytes() > size) std::abort();
    const uint8_t* p = t.data<const uint8_t>();
    for (size_t i = 0; i < t.nbytes(); ++i) sum += p[i];  // ASan flags any byte outside the input
    if (t.numel() <= kMaxConvertElems) {
      for (float v : t.to_float_vector()) sum += static_cast<uint64_t>(v != v);
    }
  }
  for (const auto& kv : f.metadata()) sum += kv.first.size() + kv.second.size();
  volatile uint64_t sink = sum;
  (void)sink;
  return 0;
}
