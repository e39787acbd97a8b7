// safetensors reader: mmap (or an in-memory copy) + header validation + zero-copy tensor views.
#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "vlart/error.h"

namespace vlart {

using nlohmann::json;

struct SafetensorsFile::Impl {
  std::string label;                // path (or the from_memory label) used in messages
  std::shared_ptr<void> keepalive;  // owns the bytes at `base`
  const uint8_t* base = nullptr;
  uint64_t file_size = 0;
  uint64_t header_len = 0;
  uint64_t data_size = 0;
  bool mapped = false;              // base .. base + file_size is an mmap of the file
  std::map<std::string, SafetensorsTensorInfo> tensors;
  std::map<std::string, std::string> metadata;
};

namespace {

using Impl = SafetensorsFile::Impl;

// Deeper nesting than this is never a real header; rejecting it bounds recursion in nlohmann
// (copy/dump are recursive) on hostile inputs.
constexpr int kMaxJsonDepth = 64;

template <typename... Args>
[[noreturn]] void fail(const std::string& label, const Args&... args) {
  throw FormatError(detail::concat("safetensors file '", label, "': ", args...));
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Short JSON rendering of a (possibly huge) value for error messages.
std::string brief(const json& v) {
  std::string s = v.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

// Parses the header text, rejecting duplicate keys (nlohmann would silently keep the last one) and
// absurd nesting, and rethrowing JSON errors as FormatError.
json parse_header_json(const char* begin, const char* end, const std::string& label) {
  std::vector<std::set<std::string>> keys;  // keys seen, one set per open object
  std::string duplicate;
  int depth = 0;
  auto cb = [&](int, json::parse_event_t ev, json& parsed) -> bool {
    switch (ev) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (++depth > kMaxJsonDepth)
          fail(label, "header JSON nested deeper than ", kMaxJsonDepth, " levels");
        if (ev == json::parse_event_t::object_start) keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        --depth;
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::array_end:
        --depth;
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && parsed.is_string() && !keys.back().insert(parsed.get_ref<const std::string&>()).second &&
            duplicate.empty())
          duplicate = parsed.get<std::string>();
        break;
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(begin, end, cb, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    fail(label, "header is not valid JSON: ", e.what());
  }
  if (!duplicate.empty()) fail(label, "header has the key '", duplicate, "' more than once");
  return j;
}

// A JSON value that must be a non-negative integer (uint64). `what` names it for messages.
uint64_t get_uint(const json& v, const std::string& label, const std::string& tensor, const char* what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) fail(label, "tensor '", tensor, "': ", what, " is negative (", v.get<int64_t>(), ")");
  fail(label, "tensor '", tensor, "': ", what, " must be a non-negative integer, got ", brief(v));
}

SafetensorsTensorInfo parse_entry(const std::string& name, const json& e, const Impl& f) {
  const std::string& label = f.label;
  if (!e.is_object()) fail(label, "tensor '", name, "': entry must be an object, got ", brief(e));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!e.contains(key)) fail(label, "tensor '", name, "': entry is missing the '", key, "' key");

  SafetensorsTensorInfo info;
  info.name = name;
  const json& jd = e["dtype"];
  if (!jd.is_string()) fail(label, "tensor '", name, "': dtype must be a string, got ", brief(jd));
  const std::string& ds = jd.get_ref<const std::string&>();
  if (!dtype_from_safetensors(ds, &info.stored_dtype))
    fail(label, "tensor '", name, "': unknown dtype '", ds, "'");
  info.dtype = info.stored_dtype;

  const json& js = e["shape"];
  if (!js.is_array()) fail(label, "tensor '", name, "': shape must be a list of integers, got ", brief(js));
  if (js.size() > static_cast<size_t>(kMaxDims))
    fail(label, "tensor '", name, "': shape has rank ", js.size(), ", vlart supports at most ", kMaxDims);
  // The product of the non-zero dims must fit int64 too: strides are suffix products, and a zero
  // dim elsewhere does not stop them from overflowing.
  uint64_t numel = 1;
  uint64_t nonzero = 1;
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  for (const json& d : js) {
    const uint64_t v = get_uint(d, label, name, "shape dimension");
    if (v > kMax || __builtin_mul_overflow(nonzero, v == 0 ? 1 : v, &nonzero) || nonzero > kMax)
      fail(label, "tensor '", name, "': element count of shape ", brief(js), " overflows 64 bits");
    numel *= v;  // <= nonzero, cannot overflow
    info.shape.push_back(static_cast<int64_t>(v));
  }

  const json& jo = e["data_offsets"];
  if (!jo.is_array() || jo.size() != 2)
    fail(label, "tensor '", name, "': data_offsets must be a list of two integers, got ", brief(jo));
  info.begin = get_uint(jo[0], label, name, "data_offsets begin");
  info.end = get_uint(jo[1], label, name, "data_offsets end");
  if (info.begin > info.end)
    fail(label, "tensor '", name, "': data_offsets begin ", info.begin, " > end ", info.end);
  if (info.end > f.data_size)
    fail(label, "tensor '", name, "': data_offsets end ", info.end, " is beyond the data section of ",
         f.data_size, " bytes");
  uint64_t expect = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(info.stored_dtype)), &expect))
    fail(label, "tensor '", name, "': byte size of shape ", brief(js), " overflows 64 bits");
  if (expect != info.nbytes())
    fail(label, "tensor '", name, "': ", ds, " shape ", info.shape.str(), " needs ", expect,
         " bytes but data_offsets [", info.begin, ", ", info.end, "] span ", info.nbytes());
  info.file_offset = 8 + f.header_len + info.begin;
  return info;
}

// Applies a "vlart.dtype.<name>" metadata entry: U8 bytes [..., blocks * block_bytes] become the
// quantized dtype with logical shape [..., blocks * block_size].
void restore_quantized(Impl& f, const std::string& name, const std::string& dname) {
  const std::string& label = f.label;
  auto it = f.tensors.find(name);
  if (it == f.tensors.end())
    fail(label, "metadata '", kSafetensorsDTypeKeyPrefix, name, "' names a tensor that is not in the file");
  SafetensorsTensorInfo& info = it->second;
  DType dt;
  if (!dtype_from_name(dname, &dt) || !is_quantized(dt))
    fail(label, "tensor '", name, "': metadata dtype '", dname, "' is not a vlart quantized dtype");
  if (info.stored_dtype != DType::kU8)
    fail(label, "tensor '", name, "': quantized ", dname, " must be stored as U8, got ",
         dtype_traits(info.stored_dtype).st_name);
  const auto& tr = dtype_traits(dt);
  const int r = info.shape.rank();
  if (r < 1 || info.shape[r - 1] % static_cast<int64_t>(tr.block_bytes) != 0)
    fail(label, "tensor '", name, "': stored U8 shape ", info.shape.str(), " must end in a multiple of the ",
         tr.block_bytes, "-byte ", dname, " block");
  // blocks * block_size <= bytes (block_bytes > block_size for every vlart type): cannot overflow.
  info.shape[r - 1] = info.shape[r - 1] / static_cast<int64_t>(tr.block_bytes) * tr.block_size;
  info.dtype = dt;
}

std::shared_ptr<const SafetensorsFile::Impl> parse(const uint8_t* base, uint64_t size, std::shared_ptr<void> keepalive,
                                                   const std::string& label) {
  auto f = std::make_shared<SafetensorsFile::Impl>();
  f->label = label;
  f->keepalive = std::move(keepalive);
  f->base = base;
  f->file_size = size;
  if (size < 8) fail(label, "file is ", size, " bytes, shorter than the 8-byte header length prefix");
  const uint64_t n = read_le64(base);
  if (n > kSafetensorsMaxHeaderBytes)
    fail(label, "header length ", n, " exceeds the limit of ", kSafetensorsMaxHeaderBytes, " bytes");
  if (n > size - 8)
    fail(label, "header length ", n, " exceeds the ", size - 8, " bytes that follow the length prefix (file is ",
         size, " bytes)");
  f->header_len = n;
  f->data_size = size - 8 - n;

  const char* h = reinterpret_cast<const char*>(base + 8);
  const json j = parse_header_json(h, h + n, label);
  if (!j.is_object()) fail(label, "header must be a JSON object, got ", j.type_name());

  for (const auto& [key, val] : j.items()) {
    if (key == "__metadata__") {
      if (!val.is_object()) fail(label, "__metadata__ must be an object of strings, got ", brief(val));
      for (const auto& [mk, mv] : val.items()) {
        if (!mv.is_string()) fail(label, "__metadata__ value of '", mk, "' must be a string, got ", brief(mv));
        f->metadata.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    f->tensors.emplace(key, parse_entry(key, val, *f));
  }

  const std::string prefix = kSafetensorsDTypeKeyPrefix;
  for (const auto& [mk, mv] : f->metadata)
    if (mk.compare(0, prefix.size(), prefix) == 0) restore_quantized(*f, mk.substr(prefix.size()), mv);

  // Overlaps: after sorting by (begin, end) every tensor must start at or after the previous end.
  std::vector<const SafetensorsTensorInfo*> order;
  order.reserve(f->tensors.size());
  for (const auto& kv : f->tensors) order.push_back(&kv.second);
  std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->begin < order[i - 1]->end)
      fail(label, "tensors '", order[i - 1]->name, "' [", order[i - 1]->begin, ", ", order[i - 1]->end, ") and '",
           order[i]->name, "' [", order[i]->begin, ", ", order[i]->end, ") overlap");
  return f;
}

// Owns an mmap of a whole file.
struct Mapping {
  void* addr = nullptr;
  size_t len = 0;
  ~Mapping() {
    if (addr) munmap(addr, len);
  }
};

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

size_t required_alignment(DType t) { return is_quantized(t) ? 2 : dtype_size(t); }

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  Fd fd;
  fd.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd.fd < 0)
    throw IoError(detail::concat("cannot open safetensors file '", path, "': ", std::strerror(errno)));
  struct stat st;
  if (::fstat(fd.fd, &st) != 0)
    throw IoError(detail::concat("cannot stat safetensors file '", path, "': ", std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) throw IoError(detail::concat("safetensors path '", path, "' is not a regular file"));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    // Too small to map usefully (mmap of 0 bytes fails); the parser reports the exact problem.
    uint8_t buf[8] = {};
    if (::pread(fd.fd, buf, static_cast<size_t>(size), 0) != static_cast<ssize_t>(size))
      throw IoError(detail::concat("cannot read safetensors file '", path, "': ", std::strerror(errno)));
    return from_memory(buf, static_cast<size_t>(size), path);
  }
  void* addr = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_PRIVATE, fd.fd, 0);
  if (addr == MAP_FAILED)
    throw IoError(detail::concat("cannot mmap safetensors file '", path, "' (", size, " bytes): ",
                                 std::strerror(errno)));
  auto map = std::make_shared<Mapping>();
  map->addr = addr;
  map->len = static_cast<size_t>(size);
  auto impl = parse(static_cast<const uint8_t*>(addr), size, map, path);
  const_cast<Impl&>(*impl).mapped = true;
  return SafetensorsFile(impl);
}

void SafetensorsFile::release_resident_pages() const {
  if (!impl_ || !impl_->mapped) return;
  // Advice only: a failure leaves the pages resident, which is harmless.
  (void)::madvise(const_cast<uint8_t*>(impl_->base), static_cast<size_t>(impl_->file_size), MADV_DONTNEED);
}

SafetensorsFile SafetensorsFile::from_memory(const void* data, size_t size, const std::string& label) {
  // An exact-size copy: the sanitizers then flag any read past the end, as with a mapping.
  std::shared_ptr<uint8_t[]> buf(new uint8_t[size]);
  if (size) std::memcpy(buf.get(), data, size);
  const uint8_t* base = buf.get();
  return SafetensorsFile(parse(base, size, std::shared_ptr<void>(buf, buf.get()), label));
}

namespace {
const SafetensorsFile::Impl& need(const std::shared_ptr<const SafetensorsFile::Impl>& p) {
  VLART_CHECK(p != nullptr, InvalidArgument, "use of an unopened SafetensorsFile");
  return *p;
}
}  // namespace

const std::string& SafetensorsFile::path() const { return need(impl_).label; }
size_t SafetensorsFile::size() const { return need(impl_).tensors.size(); }
uint64_t SafetensorsFile::header_bytes() const { return need(impl_).header_len; }
uint64_t SafetensorsFile::data_bytes() const { return need(impl_).data_size; }
const std::map<std::string, std::string>& SafetensorsFile::metadata() const { return need(impl_).metadata; }

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(need(impl_).tensors.size());
  for (const auto& kv : impl_->tensors) out.push_back(kv.first);
  return out;
}

bool SafetensorsFile::has(const std::string& name) const { return need(impl_).tensors.count(name) != 0; }

const SafetensorsTensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = need(impl_).tensors.find(name);
  if (it == impl_->tensors.end())
    throw NotFoundError(detail::concat("safetensors file '", impl_->label, "' has no tensor '", name, "'"));
  return it->second;
}

Tensor SafetensorsFile::get(const std::string& name) const {
  const SafetensorsTensorInfo& ti = info(name);
  const uint8_t* p = impl_->base + ti.file_offset;
  const size_t align = required_alignment(ti.dtype);
  if (align > 1 && reinterpret_cast<uintptr_t>(p) % align != 0) {
    Tensor t = Tensor::empty(ti.shape, ti.dtype);
    if (ti.nbytes()) std::memcpy(t.raw(), p, static_cast<size_t>(ti.nbytes()));
    return t;
  }
  return Tensor::from_blob(const_cast<uint8_t*>(p), ti.shape, ti.dtype, Device::cpu(), impl_->keepalive);
}

}  // namespace vlart
