// safetensors checkpoints: validated zero-copy reader, sharded checkpoints, atomic writer.
//
// File layout (https://github.com/huggingface/safetensors): u64 little-endian header length N,
// N bytes of JSON header, then the data section. The header maps tensor names to
// {"dtype", "shape", "data_offsets": [begin, end]} with offsets relative to the data section, plus
// an optional "__metadata__" string->string map.
//
// Every malformed input raises vlart::FormatError naming the file, the tensor and the problem
// (expected vs got); open/mmap failures raise IoError; unknown tensor names NotFoundError. No input
// can make the reader crash or touch bytes outside the file (the fuzz target in tests/fuzz checks
// this), with one exception the OS imposes: truncating a file while it is mapped raises SIGBUS.
//
// Quantized vlart tensors are stored as raw U8 bytes: the leading dims are kept and the innermost
// dim is counted in bytes (blocks * block_bytes), and "__metadata__" records the vlart dtype under
// "vlart.dtype.<tensor name>". The reader restores the quantized dtype and logical shape from it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "vlart/dtype.h"
#include "vlart/tensor.h"

namespace vlart {

// Largest header accepted (same bound as the reference implementation): anything bigger is a
// corrupt or hostile length field, not a real checkpoint.
constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;
// Prefix of the "__metadata__" keys that record the vlart dtype of a tensor stored as U8 bytes.
constexpr const char* kSafetensorsDTypeKeyPrefix = "vlart.dtype.";

struct SafetensorsTensorInfo {
  std::string name;
  DType dtype = DType::kF32;         // vlart dtype (quantized types restored from metadata)
  DType stored_dtype = DType::kF32;  // dtype written in the file
  Shape shape;                       // logical shape
  uint64_t begin = 0;                // byte offsets relative to the data section
  uint64_t end = 0;
  uint64_t file_offset = 0;          // absolute offset of `begin` in the file
  uint64_t nbytes() const { return end - begin; }
};

// One .safetensors file. Cheap to copy (shared state). Tensors returned by get() are read-only
// views into a PROT_READ mapping (writing through them faults) and keep the mapping alive on
// their own, so they stay valid after every SafetensorsFile referring to it is gone. A tensor whose
// bytes are not aligned to its element size (possible in files from other writers) is returned as
// an aligned owning copy instead, so kernels may use typed loads.
class SafetensorsFile {
 public:
  SafetensorsFile() = default;

  // mmaps `path` read-only (MAP_PRIVATE) and validates the whole header.
  static SafetensorsFile open(const std::string& path);
  // Parses a copy of `size` bytes with exactly the same validation; `label` names the input in
  // error messages.
  static SafetensorsFile from_memory(const void* data, size_t size, const std::string& label = "<memory>");

  bool valid() const { return impl_ != nullptr; }
  const std::string& path() const;
  size_t size() const;                      // number of tensors
  std::vector<std::string> names() const;   // sorted by name
  bool has(const std::string& name) const;
  const SafetensorsTensorInfo& info(const std::string& name) const;  // NotFoundError if absent
  Tensor get(const std::string& name) const;                         // NotFoundError if absent
  // The "__metadata__" map as stored (including the vlart.dtype.* entries); empty if absent.
  const std::map<std::string, std::string>& metadata() const;
  uint64_t header_bytes() const;  // N
  uint64_t data_bytes() const;    // size of the data section
  // For a mapped file: tells the kernel this process does not need the mapping's pages resident
  // now (madvise MADV_DONTNEED). Views stay valid: a later read faults the page back in from the
  // page cache. Called once kernels have repacked the weights they use, so the mapped copy stops
  // counting in the resident set. No effect on from_memory() files.
  void release_resident_pages() const;

  struct Impl;

 private:
  explicit SafetensorsFile(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// A checkpoint that is either one file or a set of shards listed by model.safetensors.index.json
// ({"weight_map": {tensor: shard file}}, shard names relative to the index's directory).
class SafetensorsCheckpoint {
 public:
  // `dir_or_file`: a directory (uses model.safetensors.index.json if present, else
  // model.safetensors), an *.index.json file, or a single .safetensors file. Each shard is opened
  // once; every tensor of the weight map must exist in its shard (FormatError otherwise); a shard
  // that cannot be opened raises IoError naming the index and the shard.
  static SafetensorsCheckpoint open(const std::string& dir_or_file);

  std::vector<std::string> names() const;  // sorted
  bool has(const std::string& name) const;
  const SafetensorsTensorInfo& info(const std::string& name) const;
  Tensor get(const std::string& name) const;
  // Shard holding `name` (NotFoundError if absent).
  const SafetensorsFile& file_of(const std::string& name) const;
  const std::vector<SafetensorsFile>& shards() const { return shards_; }
  // SafetensorsFile::release_resident_pages() on every shard.
  void release_resident_pages() const;
  // The index file, or empty for a single-file checkpoint.
  const std::string& index_path() const { return index_path_; }

 private:
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, size_t> shard_of_;  // tensor name -> index into shards_
  std::string index_path_;
  std::string label_;
};

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Serialises CPU tensors (any layout; non-contiguous ones are copied) into safetensors bytes.
// Tensors are laid out contiguously in the order the reference implementation uses (widest dtype
// first, then by name), so every tensor is aligned to its element size; quantized tensors follow
// the 2-byte dtypes. The header is padded with spaces to a multiple of 8 bytes. Throws
// InvalidArgument for duplicate or reserved names, non-CPU tensors, or user metadata keys in the
// vlart.dtype. namespace.
std::vector<uint8_t> serialize_safetensors(const NamedTensors& tensors,
                                           const std::map<std::string, std::string>& metadata = {});
// Same bytes, streamed to `path` through a temporary file in the same directory that is renamed
// over `path` once complete (IoError on failure; the temporary is removed).
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace vlart
