// openpi's wire format: msgpack maps with numpy arrays as {__ndarray__, data, dtype, shape} maps
// (bin keys), decoded into a vlart::Observation and encoded from an ActionChunk. Every size is
// checked against the limits before anything is allocated; every error names the key and what was
// expected against what came.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "vlart/policy.h"

namespace vlart::serve {

struct WireLimits {
  size_t max_message_bytes = size_t{64} << 20;
  uint32_t max_map_entries = 256;   // per map (the observation map, an ndarray map)
  uint32_t max_array_items = 64;    // per array (ndarray shapes, lists)
  uint32_t max_str_bytes = 1 << 20; // task / prompt and other strings
  uint32_t max_depth = 8;           // nesting of maps and arrays
  int64_t max_image_side = 8192;
};

// One decoded observation. Its images borrow the message bytes: keep them alive and unchanged
// until the request has been answered.
struct Request {
  Observation obs;
  std::optional<std::vector<float>> noise;  // [noise_numel] from "noise"
  std::optional<uint64_t> seed;             // "seed"
  std::optional<double> deadline_ms;        // "deadline_ms" (> 0)
  std::vector<std::string> unused_keys;     // top-level keys this policy does not read
};

// Decodes one observation message for a policy with contract `info`. Throws InvalidArgument
// (malformed or truncated msgpack, a wrong dtype or shape, a missing camera or state, a size over
// a limit) with a one-line message.
Request decode_request(const uint8_t* data, size_t size, const PolicyInfo& info, const WireLimits& limits);

struct ResponseTiming {
  double infer_ms = 0;                 // receipt of the request -> its result (queue + inference)
  double queue_ms = 0;                 // waiting in the scheduler's queue
  std::optional<double> prev_total_ms; // the previous request of this connection: receipt -> sent
};

// The response map (binary msgpack) for one action chunk.
std::string encode_response(const ActionChunk& chunk, const ResponseTiming& timing, bool emits_text);
// Writing openpi's format (also what the tests and the fuzz seeds build requests with).
using Packer = msgpack::packer<msgpack::sbuffer>;
void pack_str(Packer& pk, const std::string& s);  // a msgpack str
void pack_bin(Packer& pk, const std::string& s);  // a msgpack bin
// An ndarray map exactly as openpi's msgpack_numpy.pack_array writes it (bin keys; `dtype` as
// numpy's dtype.str). Any dtype / shape / byte count may be given (tests build bad ones).
void pack_ndarray(Packer& pk, const void* data, size_t nbytes, const std::string& dtype,
                  const std::vector<int64_t>& shape);

// The metadata map sent on connect.
std::string encode_metadata(const PolicyInfo& info, const std::string& version, size_t max_message_bytes);

}  // namespace vlart::serve
