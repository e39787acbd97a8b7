#include "serve/wire.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>

#include "vlart/error.h"

namespace vlart::serve {
namespace {

constexpr const char* kImagePrefix = "observation.images.";
constexpr const char* kOpenpiPrefix = "observation/";
// Every object of a message becomes a msgpack::object (24 bytes) in the decoded tree: an
// observation has a few dozen, so this bounds that memory at ~100 KiB whatever the message size.
constexpr uint64_t kMaxObjects = 4096;

// First pass over the bytes without building anything: counts objects and nesting, so the decoded
// tree (and the parser's own stack) stay small; a declared size the bytes do not hold stops it.
struct ShapeScan : msgpack::null_visitor {
  uint32_t depth = 0, max_depth = 0;
  uint64_t objects = 0;
  bool too_many = false, too_deep = false, truncated = false, malformed = false;
  bool count() {
    if (++objects > kMaxObjects) too_many = true;
    return !too_many;
  }
  bool visit_nil() { return count(); }
  bool visit_boolean(bool) { return count(); }
  bool visit_positive_integer(uint64_t) { return count(); }
  bool visit_negative_integer(int64_t) { return count(); }
  bool visit_float32(float) { return count(); }
  bool visit_float64(double) { return count(); }
  bool visit_str(const char*, uint32_t) { return count(); }
  bool visit_bin(const char*, uint32_t) { return count(); }
  bool visit_ext(const char*, uint32_t) { return count(); }
  bool open(uint32_t n) {
    if (!count()) return false;
    if (n > kMaxObjects) {
      too_many = true;
      return false;
    }
    if (++depth > max_depth) {
      too_deep = true;
      return false;
    }
    return true;
  }
  bool start_array(uint32_t n) { return open(n); }
  bool end_array() {
    --depth;
    return true;
  }
  bool start_map(uint32_t n) { return open(n); }
  bool end_map() {
    --depth;
    return true;
  }
  void parse_error(size_t, size_t) { malformed = true; }
  void insufficient_bytes(size_t, size_t) { truncated = true; }
};

bool is_text(const msgpack::object& o) {
  return o.type == msgpack::type::STR || o.type == msgpack::type::BIN;
}
std::string text_of(const msgpack::object& o) {
  return o.type == msgpack::type::STR ? std::string(o.via.str.ptr, o.via.str.size)
                                      : std::string(o.via.bin.ptr, o.via.bin.size);
}
const char* type_name(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "bool";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER: return "int";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return "float";
    case msgpack::type::STR: return "str";
    case msgpack::type::BIN: return "bytes";
    case msgpack::type::ARRAY: return "array";
    case msgpack::type::MAP: return "map";
    default: return "ext";
  }
}

// A map value by key (str or bin keys; openpi's ndarray maps use bin keys).
const msgpack::object* find(const msgpack::object& map, const char* key) {
  const size_t n = std::strlen(key);
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const msgpack::object& k = map.via.map.ptr[i].key;
    if (k.type == msgpack::type::STR && k.via.str.size == n && std::memcmp(k.via.str.ptr, key, n) == 0)
      return &map.via.map.ptr[i].val;
    if (k.type == msgpack::type::BIN && k.via.bin.size == n && std::memcmp(k.via.bin.ptr, key, n) == 0)
      return &map.via.map.ptr[i].val;
  }
  return nullptr;
}

// A numpy array as openpi's msgpack_numpy packs it (bytes stay in the message).
struct NdArray {
  std::string dtype;            // numpy dtype.str: "|u1", "<f4", ...
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  int64_t numel = 0;
  std::string shape_str() const {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }
  std::string describe() const { return dtype + " " + shape_str(); }
};

bool is_ndarray(const msgpack::object& o) { return o.type == msgpack::type::MAP && find(o, "__ndarray__"); }

// Bytes per element of a little-endian (or byte-sized) bool/int/uint/float numpy dtype; 0 for any
// other (big-endian, complex, strings, records, objects).
size_t itemsize(const std::string& dtype) {
  if (dtype.size() < 3) return 0;
  if (dtype[0] != '<' && dtype[0] != '|' && dtype[0] != '=') return 0;
  if (dtype[1] != 'f' && dtype[1] != 'i' && dtype[1] != 'u' && dtype[1] != 'b') return 0;
  const std::string digits = dtype.substr(2);
  if (digits == "1") return 1;
  if (digits == "2") return 2;
  if (digits == "4") return 4;
  if (digits == "8") return 8;
  return 0;
}

NdArray as_ndarray(const msgpack::object& o, const std::string& key) {
  VLART_CHECK(is_ndarray(o), InvalidArgument, "'", key, "': expected a numpy array (openpi msgpack_numpy map), got ",
              type_name(o));
  NdArray a;
  const msgpack::object* dt = find(o, "dtype");
  const msgpack::object* sh = find(o, "shape");
  const msgpack::object* da = find(o, "data");
  VLART_CHECK(dt && is_text(*dt), InvalidArgument, "'", key, "': numpy array without a dtype string");
  VLART_CHECK(sh && sh->type == msgpack::type::ARRAY, InvalidArgument, "'", key, "': numpy array without a shape list");
  VLART_CHECK(da && (da->type == msgpack::type::BIN || da->type == msgpack::type::STR), InvalidArgument, "'", key,
              "': numpy array without its data bytes");
  a.dtype = text_of(*dt);
  VLART_CHECK(a.dtype.size() <= 16, InvalidArgument, "'", key, "': dtype string too long");
  const size_t isz = itemsize(a.dtype);
  VLART_CHECK(isz != 0, InvalidArgument, "'", key, "': unsupported dtype '", a.dtype, "'");
  VLART_CHECK(sh->via.array.size <= 8, InvalidArgument, "'", key, "': ", sh->via.array.size,
              " dimensions (at most 8)");
  // Element count and byte size with overflow checks, before anything is read or allocated.
  uint64_t numel = 1;
  for (uint32_t i = 0; i < sh->via.array.size; ++i) {
    const msgpack::object& d = sh->via.array.ptr[i];
    VLART_CHECK(d.type == msgpack::type::POSITIVE_INTEGER && d.via.u64 <= (uint64_t{1} << 40), InvalidArgument, "'", key, "': shape entry ", i, " is not a non-negative integer");
    a.shape.push_back(static_cast<int64_t>(d.via.u64));
    VLART_CHECK(d.via.u64 == 0 || numel <= (uint64_t{1} << 40) / d.via.u64, InvalidArgument, "'", key,
                "': shape ", a.shape_str(), "... declares more than 2^40 elements");
    numel *= d.via.u64;
  }
  const size_t data_size = da->type == msgpack::type::BIN ? da->via.bin.size : da->via.str.size;
  VLART_CHECK(numel * isz == data_size, InvalidArgument, "'", key, "': ", a.describe(), " needs ", numel * isz,
              " bytes, the message carries ", data_size);
  a.data = reinterpret_cast<const uint8_t*>(da->type == msgpack::type::BIN ? da->via.bin.ptr : da->via.str.ptr);
  a.nbytes = data_size;
  a.numel = static_cast<int64_t>(numel);
  return a;
}

// Float values of a little-endian f4/f8 (or native-order "=") array, copied out (the message
// bytes need not be aligned).
std::vector<float> floats_of(const NdArray& a, const std::string& key) {
  const bool little = a.dtype[0] == '<' || a.dtype[0] == '=' || a.dtype[0] == '|';
  VLART_CHECK(little && (a.dtype.substr(1) == "f4" || a.dtype.substr(1) == "f8"), InvalidArgument, "'", key,
              "': expected a float32 or float64 array, got ", a.describe());
  std::vector<float> out(static_cast<size_t>(a.numel));
  if (a.dtype.substr(1) == "f4") {
    std::memcpy(out.data(), a.data, a.nbytes);
  } else {
    for (size_t i = 0; i < out.size(); ++i) {
      double d;
      std::memcpy(&d, a.data + i * 8, 8);
      out[i] = static_cast<float>(d);
    }
  }
  return out;
}

std::string short_name(const std::string& cam) {
  return cam.rfind(kImagePrefix, 0) == 0 ? cam.substr(std::strlen(kImagePrefix)) : cam;
}

// A scalar that may come as a msgpack number or as openpi's {__npgeneric__, data, dtype} map.
const msgpack::object& scalar_of(const msgpack::object& o) {
  if (o.type == msgpack::type::MAP && find(o, "__npgeneric__")) {
    const msgpack::object* d = find(o, "data");
    if (d) return *d;
  }
  return o;
}

void decode_image(const msgpack::object& v, const std::string& key, const std::string& cam, const WireLimits& lim,
                  Request& r) {
  const NdArray a = as_ndarray(v, key);
  VLART_CHECK(a.dtype == "|u1" && a.shape.size() == 3 && a.shape[2] == 3, InvalidArgument, "'", key,
              "': expected a uint8 image [height, width, 3] (HWC RGB), got ", a.describe());
  VLART_CHECK(a.shape[0] >= 1 && a.shape[1] >= 1 && a.shape[0] <= lim.max_image_side &&
                  a.shape[1] <= lim.max_image_side,
              InvalidArgument, "'", key, "': image ", a.shape[0], "x", a.shape[1], " outside 1..",
              lim.max_image_side, " per side");
  VLART_CHECK(r.obs.images.count(cam) == 0, InvalidArgument, "camera '", cam, "' given twice (as '", key, "' too)");
  r.obs.images[cam] = Image::borrow(a.data, a.shape[0], a.shape[1]);
}

}  // namespace

Request decode_request(const uint8_t* data, size_t size, const PolicyInfo& info, const WireLimits& lim) {
  VLART_CHECK(size <= lim.max_message_bytes, InvalidArgument, "message of ", size, " bytes exceeds the limit of ",
              lim.max_message_bytes);
  const char* p = reinterpret_cast<const char*>(data);
  {
    ShapeScan scan;
    scan.max_depth = lim.max_depth;
    size_t off = 0;
    const bool ok = msgpack::parse(p, size, off, scan);
    VLART_CHECK(!scan.too_many, InvalidArgument, "msgpack message has more than ", kMaxObjects, " objects");
    VLART_CHECK(!scan.too_deep, InvalidArgument, "msgpack message nests deeper than ", lim.max_depth, " levels");
    VLART_CHECK(!scan.truncated, InvalidArgument, "truncated msgpack message (", size,
                " bytes; a value declares more than the message holds)");
    VLART_CHECK(ok && !scan.malformed, InvalidArgument, "malformed msgpack message (", size, " bytes)");
    VLART_CHECK(off == size, InvalidArgument, "msgpack message has ", size - off,
                " trailing bytes after the observation map");
  }
  msgpack::object_handle oh;
  try {
    size_t off = 0;
    const msgpack::unpack_limit limit(lim.max_array_items, lim.max_map_entries, lim.max_str_bytes,
                                      lim.max_message_bytes, 0, lim.max_depth);
    oh = msgpack::unpack(
        p, size, off, [](msgpack::type::object_type, std::size_t, void*) { return true; }, nullptr, limit);
  } catch (const msgpack::size_overflow& e) {
    throw InvalidArgument(std::string("msgpack message over a size limit (") + e.what() + ")");
  } catch (const std::exception& e) {
    throw InvalidArgument(std::string("malformed msgpack message: ") + e.what());
  }
  const msgpack::object& root = oh.get();
  VLART_CHECK(root.type == msgpack::type::MAP, InvalidArgument, "an observation must be a msgpack map, got ",
              type_name(root));

  Request r;
  bool have_state = false;
  std::set<std::string> seen;
  for (uint32_t i = 0; i < root.via.map.size; ++i) {
    const msgpack::object& k = root.via.map.ptr[i].key;
    const msgpack::object& v = root.via.map.ptr[i].val;
    VLART_CHECK(is_text(k), InvalidArgument, "observation keys must be strings, got ", type_name(k));
    const std::string key = text_of(k);
    VLART_CHECK(key.size() <= 256, InvalidArgument, "observation key of ", key.size(), " bytes (at most 256)");
    VLART_CHECK(seen.insert(key).second, InvalidArgument, "observation key '", key, "' given twice");
    std::string rest;  // the part after "observation.images." / "observation/"
    if (key.rfind(kImagePrefix, 0) == 0) rest = key.substr(std::strlen(kImagePrefix));
    else if (key.rfind(kOpenpiPrefix, 0) == 0) rest = key.substr(std::strlen(kOpenpiPrefix));

    if (key == "observation.state" || key == "observation/state") {
      VLART_CHECK(!have_state, InvalidArgument, "the state is given twice (observation.state and observation/state)");
      const NdArray a = as_ndarray(v, key);
      const bool shape_ok = (a.shape.size() == 1 && a.shape[0] == info.state_dim) ||
                            (a.shape.size() == 2 && a.shape[0] == 1 && a.shape[1] == info.state_dim);
      VLART_CHECK(shape_ok, InvalidArgument, "'", key, "': expected a float array [", info.state_dim, "], got ",
                  a.describe());
      r.obs.state = floats_of(a, key);
      have_state = true;
    } else if (key == "task" || key == "prompt") {
      VLART_CHECK(v.type == msgpack::type::STR, InvalidArgument, "'", key, "': expected a string, got ", type_name(v));
      VLART_CHECK(!seen.count(key == "task" ? "prompt" : "task"), InvalidArgument,
                  "both 'task' and 'prompt' are given");
      r.obs.task = text_of(v);
    } else if (key == "noise") {
      const NdArray a = as_ndarray(v, key);
      std::string want = "[";
      for (size_t d = 0; d < info.noise_shape.size(); ++d) want += (d ? ", " : "") + std::to_string(info.noise_shape[d]);
      want += "]";
      VLART_CHECK(info.noise_numel() > 0, InvalidArgument, "'noise' given, but this policy draws no noise");
      std::vector<int64_t> with_batch{1};
      with_batch.insert(with_batch.end(), info.noise_shape.begin(), info.noise_shape.end());
      VLART_CHECK(a.shape == info.noise_shape || a.shape == with_batch, InvalidArgument,
                  "'noise': expected a float array ", want, ", got ", a.describe());
      r.noise = floats_of(a, key);
    } else if (key == "seed") {
      const msgpack::object& s = scalar_of(v);
      VLART_CHECK(s.type == msgpack::type::POSITIVE_INTEGER, InvalidArgument,
                  "'seed': expected a non-negative integer, got ", type_name(s));
      r.seed = s.via.u64;
    } else if (key == "deadline_ms") {
      const msgpack::object& s = scalar_of(v);
      double ms = -1;
      if (s.type == msgpack::type::POSITIVE_INTEGER) ms = static_cast<double>(s.via.u64);
      else if (s.type == msgpack::type::FLOAT32 || s.type == msgpack::type::FLOAT64) ms = s.via.f64;
      VLART_CHECK(std::isfinite(ms) && ms > 0, InvalidArgument, "'deadline_ms': expected a positive number of ms");
      r.deadline_ms = ms;
    } else if (key == "robot_id") {
      VLART_CHECK(v.type == msgpack::type::STR, InvalidArgument, "'robot_id': expected a string, got ", type_name(v));
      r.obs.robot_id = text_of(v);
    } else if (!rest.empty()) {
      const CameraInfo* cam = nullptr;
      for (const CameraInfo& c : info.cameras)
        if (rest == c.key || rest == short_name(c.name)) cam = &c;
      if (cam) decode_image(v, key, cam->key.empty() ? short_name(cam->name) : cam->key, lim, r);
      else r.unused_keys.push_back(key);
    } else {
      r.unused_keys.push_back(key);
    }
  }
  VLART_CHECK(!(r.noise && r.seed), InvalidArgument, "give either 'noise' or 'seed', not both");
  for (const CameraInfo& c : info.cameras) {
    const std::string k = c.key.empty() ? short_name(c.name) : c.key;
    if (c.optional || r.obs.images.count(k)) continue;
    std::string got;
    for (const auto& kv : r.obs.images) got += (got.empty() ? "" : ", ") + kv.first;
    throw InvalidArgument("missing camera '" + k + "' (key 'observation.images." + k + "' or 'observation/" + k +
                          "', uint8 [H, W, 3]); cameras in this request: " + (got.empty() ? "none" : got));
  }
  VLART_CHECK(have_state || info.state_dim == 0, InvalidArgument,
              "missing state ('observation.state' or 'observation/state', float [", info.state_dim, "])");
  return r;
}

void pack_str(Packer& pk, const std::string& s) {
  pk.pack_str(static_cast<uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

void pack_bin(Packer& pk, const std::string& s) {
  pk.pack_bin(static_cast<uint32_t>(s.size()));
  pk.pack_bin_body(s.data(), static_cast<uint32_t>(s.size()));
}

void pack_ndarray(Packer& pk, const void* data, size_t nbytes, const std::string& dtype,
                  const std::vector<int64_t>& shape) {
  pk.pack_map(4);
  pack_bin(pk, "__ndarray__");
  pk.pack_true();
  pack_bin(pk, "data");
  pk.pack_bin(static_cast<uint32_t>(nbytes));
  pk.pack_bin_body(static_cast<const char*>(data), static_cast<uint32_t>(nbytes));
  pack_bin(pk, "dtype");
  pack_str(pk, dtype);
  pack_bin(pk, "shape");
  pk.pack_array(static_cast<uint32_t>(shape.size()));
  for (int64_t d : shape) pk.pack(d);
}

std::string encode_response(const ActionChunk& chunk, const ResponseTiming& t, bool emits_text) {
  msgpack::sbuffer buf(chunk.data.size() * 4 + 512);
  Packer pk(&buf);
  pk.pack_map(emits_text ? 5 : 3);
  pack_str(pk, "actions");
  pack_ndarray(pk, chunk.data.data(), chunk.data.size() * sizeof(float), "<f4", {chunk.horizon, chunk.action_dim});
  pack_str(pk, "server_timing");
  pk.pack_map(t.prev_total_ms ? 3 : 2);
  pack_str(pk, "infer_ms");
  pk.pack_double(t.infer_ms);
  pack_str(pk, "queue_ms");
  pk.pack_double(t.queue_ms);
  if (t.prev_total_ms) {
    pack_str(pk, "prev_total_ms");
    pk.pack_double(*t.prev_total_ms);
  }
  pack_str(pk, "policy_timing");
  pk.pack_map(static_cast<uint32_t>(chunk.timings.stages.size() + 1));
  for (const StageTime& s : chunk.timings.stages) {
    pack_str(pk, s.name);
    pk.pack_double(s.ms);
  }
  pack_str(pk, "total");
  pk.pack_double(chunk.timings.total_ms);
  if (emits_text) {
    pack_str(pk, "text");
    pack_str(pk, chunk.text);
    pack_str(pk, "tokens");
    pack_ndarray(pk, chunk.tokens.data(), chunk.tokens.size() * sizeof(int32_t), "<i4",
                 {static_cast<int64_t>(chunk.tokens.size())});
  }
  return std::string(buf.data(), buf.size());
}

std::string encode_metadata(const PolicyInfo& info, const std::string& version, size_t max_message_bytes) {
  msgpack::sbuffer buf;
  Packer pk(&buf);
  pk.pack_map(18);
  pack_str(pk, "server");
  pack_str(pk, "vlart");
  pack_str(pk, "version");
  pack_str(pk, version);
  pack_str(pk, "family");
  pack_str(pk, info.family);
  pack_str(pk, "cameras");  // the short names, in the order the model stacks them
  pk.pack_array(static_cast<uint32_t>(info.cameras.size()));
  for (const CameraInfo& c : info.cameras) pack_str(pk, c.key.empty() ? short_name(c.name) : c.key);
  pack_str(pk, "image_keys");  // LeRobot feature names
  pk.pack_array(static_cast<uint32_t>(info.cameras.size()));
  for (const CameraInfo& c : info.cameras) pack_str(pk, c.name);
  pack_str(pk, "optional_cameras");
  uint32_t n_opt = 0;
  for (const CameraInfo& c : info.cameras) n_opt += c.optional ? 1 : 0;
  pk.pack_array(n_opt);
  for (const CameraInfo& c : info.cameras)
    if (c.optional) pack_str(pk, c.key.empty() ? short_name(c.name) : c.key);
  pack_str(pk, "image_size");  // [height, width] per camera after preprocessing
  pk.pack_array(static_cast<uint32_t>(info.cameras.size()));
  for (const CameraInfo& c : info.cameras) {
    pk.pack_array(2);
    pk.pack(c.height);
    pk.pack(c.width);
  }
  pack_str(pk, "state_dim");
  pk.pack(info.state_dim);
  pack_str(pk, "action_dim");
  pk.pack(info.action_dim);
  pack_str(pk, "action_horizon");
  pk.pack(info.horizon);
  pack_str(pk, "noise_shape");
  pk.pack_array(static_cast<uint32_t>(info.noise_shape.size()));
  for (int64_t d : info.noise_shape) pk.pack(d);
  pack_str(pk, "flow_steps");
  pk.pack(info.flow_steps);
  pack_str(pk, "has_language");
  info.has_language ? pk.pack_true() : pk.pack_false();
  pack_str(pk, "emits_text");
  info.emits_text ? pk.pack_true() : pk.pack_false();
  pack_str(pk, "stages");
  pk.pack_array(static_cast<uint32_t>(info.stages.size()));
  for (const std::string& s : info.stages) pack_str(pk, s);
  pack_str(pk, "compute_dtype");
  pack_str(pk, dtype_name(info.compute_dtype));
  pack_str(pk, "backend");
  pack_str(pk, info.backend);
  pack_str(pk, "max_message_bytes");
  pk.pack(static_cast<uint64_t>(max_message_bytes));
  return std::string(buf.data(), buf.size());
}

}  // namespace vlart::serve
