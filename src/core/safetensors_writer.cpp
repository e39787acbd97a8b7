// safetensors writer: header layout compatible with the reference implementation, atomic file write.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/safetensors.h"
#include "vlart/error.h"

namespace vlart {

namespace {

struct Entry {
  std::string name;
  Tensor t;          // contiguous CPU tensor
  DType stored;      // dtype written in the file (U8 for quantized)
  Shape stored_shape;
  uint64_t nbytes = 0;
  int rank_key = 0;  // layout order, larger first
};

// Order of the reference writer (its dtype enum, sorted descending, so wider dtypes come first and
// every tensor stays aligned to its element size). Quantized bytes go right after the 2-byte types:
// their blocks hold f16 scales and need 2-byte alignment.
int layout_rank(DType t) {
  switch (t) {
    case DType::kU64: return 100;
    case DType::kI64: return 99;
    case DType::kF64: return 98;
    case DType::kF32: return 97;
    case DType::kU32: return 96;
    case DType::kI32: return 95;
    case DType::kBF16: return 94;
    case DType::kF16: return 93;
    case DType::kU16: return 92;
    case DType::kI16: return 91;
    case DType::kF8E4M3: return 80;
    case DType::kF8E5M2: return 79;
    case DType::kI8: return 78;
    case DType::kU8: return 77;
    case DType::kBool: return 76;
    default: return 90;  // quantized
  }
}

std::string json_string(const std::string& s) { return nlohmann::json(s).dump(); }

// Builds the padded header and the ordered entries.
std::string build_header(const NamedTensors& tensors, const std::map<std::string, std::string>& user_meta,
                         std::vector<Entry>* entries) {
  std::set<std::string> seen;
  std::map<std::string, std::string> meta = user_meta;
  for (const auto& kv : user_meta)
    VLART_CHECK(kv.first.rfind(kSafetensorsDTypeKeyPrefix, 0) != 0, InvalidArgument, "write_safetensors: metadata key '",
                kv.first, "' is reserved for vlart's quantized dtype records");
  for (const auto& [name, t] : tensors) {
    VLART_CHECK(name != "__metadata__", InvalidArgument, "write_safetensors: tensor name '__metadata__' is reserved");
    VLART_CHECK(seen.insert(name).second, InvalidArgument, "write_safetensors: duplicate tensor name '", name, "'");
    VLART_CHECK(t.defined(), InvalidArgument, "write_safetensors: tensor '", name, "' is undefined");
    VLART_CHECK(t.device().is_cpu(), InvalidArgument, "write_safetensors: tensor '", name, "' is on ",
                t.device().str(), ", expected cpu");
    Entry e;
    e.name = name;
    e.t = t.contiguous();
    e.nbytes = e.t.nbytes();
    e.stored_shape = t.shape();
    if (is_quantized(t.dtype())) {
      const auto& tr = dtype_traits(t.dtype());
      const int r = t.rank();
      e.stored = DType::kU8;
      e.stored_shape[r - 1] = t.shape()[r - 1] / tr.block_size * static_cast<int64_t>(tr.block_bytes);
      meta[kSafetensorsDTypeKeyPrefix + name] = tr.name;
    } else {
      e.stored = t.dtype();
    }
    e.rank_key = layout_rank(t.dtype());
    entries->push_back(std::move(e));
  }
  std::stable_sort(entries->begin(), entries->end(), [](const Entry& a, const Entry& b) {
    return a.rank_key != b.rank_key ? a.rank_key > b.rank_key : a.name < b.name;
  });

  // Written by hand (not json::dump) to keep the reference key order: __metadata__ first, then
  // tensors in data order, each as {"dtype","shape","data_offsets"}.
  std::string h = "{";
  bool first = true;
  if (!meta.empty()) {
    h += "\"__metadata__\":{";
    bool mfirst = true;
    for (const auto& [k, v] : meta) {
      h += (mfirst ? "" : ",") + json_string(k) + ":" + json_string(v);
      mfirst = false;
    }
    h += "}";
    first = false;
  }
  uint64_t off = 0;
  for (const Entry& e : *entries) {
    h += (first ? "" : ",") + json_string(e.name) + ":{\"dtype\":\"" + dtype_traits(e.stored).st_name +
         "\",\"shape\":[";
    for (int i = 0; i < e.stored_shape.rank(); ++i) h += (i ? "," : "") + std::to_string(e.stored_shape[i]);
    h += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + e.nbytes) + "]}";
    off += e.nbytes;
    first = false;
  }
  h += "}";
  h.append((8 - h.size() % 8) % 8, ' ');
  return h;
}

void put_le64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// Writes all of [p, p+n) to fd.
bool write_all(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    c += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

std::vector<uint8_t> serialize_safetensors(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  std::vector<Entry> entries;
  const std::string h = build_header(tensors, metadata, &entries);
  uint64_t total = 8 + h.size();
  for (const Entry& e : entries) total += e.nbytes;
  std::vector<uint8_t> out(static_cast<size_t>(total));
  put_le64(out.data(), h.size());
  std::memcpy(out.data() + 8, h.data(), h.size());
  size_t off = 8 + h.size();
  for (const Entry& e : entries) {
    if (e.nbytes) std::memcpy(out.data() + off, e.t.raw(), static_cast<size_t>(e.nbytes));
    off += static_cast<size_t>(e.nbytes);
  }
  return out;
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<Entry> entries;
  const std::string h = build_header(tensors, metadata, &entries);

  static std::atomic<unsigned> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    throw IoError(detail::concat("write_safetensors: cannot create '", tmp, "': ", std::strerror(errno)));
  uint8_t len[8];
  put_le64(len, h.size());
  bool ok = write_all(fd, len, 8) && write_all(fd, h.data(), h.size());
  for (size_t i = 0; ok && i < entries.size(); ++i)
    ok = write_all(fd, entries[i].t.raw(), static_cast<size_t>(entries[i].nbytes));
  // fsync before rename so a crash never leaves a complete-looking name over partial contents.
  ok = ok && ::fsync(fd) == 0;
  int err = ok ? 0 : errno;
  if (::close(fd) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    throw IoError(detail::concat("write_safetensors: writing '", tmp, "' failed: ", std::strerror(err)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw IoError(detail::concat("write_safetensors: cannot rename '", tmp, "' to '", path, "': ", std::strerror(e)));
  }
}

}  // namespace vlart
