// Sharded safetensors checkpoints (model.safetensors.index.json + shard files).
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/safetensors.h"
#include "vlart/error.h"

namespace vlart {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

template <typename... Args>
[[noreturn]] void fail_index(const std::string& index, const Args&... args) {
  throw FormatError(detail::concat("safetensors index '", index, "': ", args...));
}

json read_index(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) throw IoError(detail::concat("cannot read safetensors index '", path, "': ", ec.message()));
  if (size > kSafetensorsMaxHeaderBytes)
    fail_index(path, "file is ", size, " bytes, over the limit of ", kSafetensorsMaxHeaderBytes);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(detail::concat("cannot open safetensors index '", path, "'"));
  std::ostringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    fail_index(path, "not valid JSON: ", e.what());
  }
}

// Shard names are plain relative paths inside the index's directory.
bool safe_relative(const std::string& s) {
  if (s.empty()) return false;
  const fs::path p(s);
  if (p.is_absolute()) return false;
  for (const auto& part : p)
    if (part == "..") return false;
  return true;
}

}  // namespace

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::string& dir_or_file) {
  SafetensorsCheckpoint ck;
  std::error_code ec;
  std::string index;
  std::string single;
  if (fs::is_directory(dir_or_file, ec)) {
    const fs::path dir(dir_or_file);
    if (fs::exists(dir / kIndexName, ec)) {
      index = (dir / kIndexName).string();
    } else if (fs::exists(dir / kSingleName, ec)) {
      single = (dir / kSingleName).string();
    } else {
      throw NotFoundError(detail::concat("checkpoint directory '", dir_or_file, "' has neither ", kIndexName,
                                         " nor ", kSingleName));
    }
  } else if (dir_or_file.size() >= 11 && dir_or_file.compare(dir_or_file.size() - 11, 11, ".index.json") == 0) {
    index = dir_or_file;
  } else {
    single = dir_or_file;
  }

  if (!single.empty()) {
    ck.label_ = single;
    ck.shards_.push_back(SafetensorsFile::open(single));
    for (const std::string& n : ck.shards_[0].names()) ck.shard_of_.emplace(n, 0);
    return ck;
  }

  ck.index_path_ = index;
  ck.label_ = index;
  const json j = read_index(index);
  if (!j.is_object()) fail_index(index, "must be a JSON object, got ", j.type_name());
  auto wm = j.find("weight_map");
  if (wm == j.end()) fail_index(index, "has no 'weight_map'");
  if (!wm->is_object()) fail_index(index, "'weight_map' must be an object, got ", wm->type_name());
  const fs::path dir = fs::path(index).parent_path();
  std::map<std::string, size_t> shard_index;  // shard file name -> index into shards_
  for (const auto& [tensor, file] : wm->items()) {
    if (!file.is_string())
      fail_index(index, "weight_map entry of tensor '", tensor, "' must be a file name string, got ", file.dump());
    const std::string& fname = file.get_ref<const std::string&>();
    if (!safe_relative(fname))
      fail_index(index, "tensor '", tensor, "' maps to '", fname, "', expected a relative path inside ",
                 dir.string());
    auto it = shard_index.find(fname);
    if (it == shard_index.end()) {
      const std::string shard_path = (dir / fname).string();
      try {
        ck.shards_.push_back(SafetensorsFile::open(shard_path));
      } catch (const IoError& e) {
        throw IoError(detail::concat("safetensors index '", index, "': shard '", fname, "' (for tensor '", tensor,
                                     "') cannot be opened: ", e.what()));
      }
      it = shard_index.emplace(fname, ck.shards_.size() - 1).first;
    }
    if (!ck.shards_[it->second].has(tensor))
      fail_index(index, "tensor '", tensor, "' is mapped to shard '", fname, "' which does not contain it");
    ck.shard_of_.emplace(tensor, it->second);
  }
  return ck;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(shard_of_.size());
  for (const auto& kv : shard_of_) out.push_back(kv.first);
  return out;
}

bool SafetensorsCheckpoint::has(const std::string& name) const { return shard_of_.count(name) != 0; }

void SafetensorsCheckpoint::release_resident_pages() const {
  for (const SafetensorsFile& f : shards_) f.release_resident_pages();
}

const SafetensorsFile& SafetensorsCheckpoint::file_of(const std::string& name) const {
  auto it = shard_of_.find(name);
  if (it == shard_of_.end())
    throw NotFoundError(detail::concat("checkpoint '", label_, "' has no tensor '", name, "'"));
  return shards_[it->second];
}

const SafetensorsTensorInfo& SafetensorsCheckpoint::info(const std::string& name) const {
  return file_of(name).info(name);
}

Tensor SafetensorsCheckpoint::get(const std::string& name) const { return file_of(name).get(name); }

}  // namespace vlart
