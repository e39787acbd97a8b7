// safetensors reader/writer: round trips, spec-exact bytes, sharded checkpoints, broken-file corpus.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/safetensors.h"
#include "vlart/error.h"
#include "vlart/tensor.h"

using namespace vlart;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<uint8_t>;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "vlart_st_XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (!p) throw std::runtime_error("mkdtemp failed");
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (fs::path(path_) / name).string(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void write_bytes(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
void write_text(const std::string& path, const std::string& s) { write_bytes(path, Bytes(s.begin(), s.end())); }

// u64 length + header text + `data_bytes` bytes of data (value = index). `len` overrides the
// length field (to lie about it).
Bytes make_file(const std::string& header, size_t data_bytes, int64_t len = -1) {
  const uint64_t n = len < 0 ? header.size() : static_cast<uint64_t>(len);
  Bytes b;
  b.reserve(8 + header.size() + data_bytes);
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(n >> (8 * i)));
  for (char c : header) b.push_back(static_cast<uint8_t>(c));
  for (size_t i = 0; i < data_bytes; ++i) b.push_back(static_cast<uint8_t>(i));
  return b;
}

Bytes random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes b(n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

Tensor tensor_with_bytes(const Shape& s, DType dt, uint32_t seed) {
  Tensor t = Tensor::empty(s, dt);
  const Bytes b = random_bytes(t.nbytes(), seed);
  if (!b.empty()) std::memcpy(t.raw(), b.data(), b.size());
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

// Asserts that parsing `b` raises ErrorT whose message contains every needle, through both the
// in-memory path and the mmap path (the file name must appear in the latter).
template <typename ErrorT = FormatError>
void expect_broken(const Bytes& b, const std::vector<std::string>& needles) {
  SCOPED_TRACE(needles.empty() ? std::string() : needles[0]);
  try {
    SafetensorsFile::from_memory(b.data(), b.size(), "corpus.safetensors");
    ADD_FAILURE() << "from_memory accepted a broken file";
  } catch (const ErrorT& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("corpus.safetensors"), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
  }
  TempDir dir;
  const std::string path = dir.file("broken.safetensors");
  write_bytes(path, b);
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE() << "open accepted a broken file";
  } catch (const ErrorT& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
  }
}

const DType kPlain[] = {DType::kBool, DType::kU8,   DType::kI8,  DType::kI16,    DType::kU16,
                        DType::kF16,  DType::kBF16, DType::kI32, DType::kU32,    DType::kF32,
                        DType::kF64,  DType::kI64,  DType::kU64, DType::kF8E4M3, DType::kF8E5M2};

}  // namespace

// ---------------- round trips ----------------

TEST(Safetensors, RoundTripEveryPlainDType) {
  TempDir dir;
  NamedTensors in;
  uint32_t seed = 1;
  for (DType dt : kPlain) {
    const std::string base = dtype_name(dt);
    in.emplace_back(base + ".odd", tensor_with_bytes({3, 5, 7}, dt, seed++));
    in.emplace_back(base + ".scalar", tensor_with_bytes(Shape{}, dt, seed++));
    in.emplace_back(base + ".empty", tensor_with_bytes({0, 4}, dt, seed++));
  }
  const std::string path = dir.file("all.safetensors");
  write_safetensors(path, in, {{"format", "pt"}});
  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.size(), in.size());
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.header_bytes() % 8, 0u);
  for (const auto& [name, t] : in) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(f.has(name));
    const Tensor g = f.get(name);
    EXPECT_EQ(g.dtype(), t.dtype());
    EXPECT_EQ(g.shape(), t.shape());
    EXPECT_TRUE(same_bytes(g, t));
    // Zero-copy and aligned to the element size (the writer orders tensors widest-first).
    EXPECT_EQ(f.get(name).raw(), g.raw());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(g.raw()) % dtype_size(t.dtype()), 0u);
    EXPECT_EQ(f.info(name).stored_dtype, t.dtype());
  }
  // The writer's file-level checks: data section exactly covered, no holes.
  uint64_t total = 0;
  for (const auto& n : f.names()) total += f.info(n).nbytes();
  EXPECT_EQ(total, f.data_bytes());
  EXPECT_EQ(fs::file_size(path), 8 + f.header_bytes() + f.data_bytes());
}

TEST(Safetensors, RoundTripQuantizedAsU8WithMetadata) {
  TempDir dir;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> ud(-2.f, 2.f);
  std::vector<float> v(3 * 64);
  for (auto& x : v) x = ud(rng);
  const Tensor w = Tensor::from_vector(v, {3, 64}).to(DType::kQ4G32);
  const Tensor w8 = Tensor::from_vector(v, {3, 64}).to(DType::kQ8G64);
  const Tensor odd = tensor_with_bytes({5}, DType::kU8, 3);  // pushes later 1-byte data to odd offsets
  const std::string path = dir.file("q.safetensors");
  write_safetensors(path, {{"w", w}, {"w8", w8}, {"odd", odd}}, {{"note", "compressed"}});

  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata().at("vlart.dtype.w"), "q4_g32");
  EXPECT_EQ(f.metadata().at("vlart.dtype.w8"), "q8_g64");
  EXPECT_EQ(f.metadata().at("note"), "compressed");
  const auto& info = f.info("w");
  EXPECT_EQ(info.stored_dtype, DType::kU8);
  EXPECT_EQ(info.dtype, DType::kQ4G32);
  EXPECT_EQ(info.shape, Shape({3, 64}));
  EXPECT_EQ(info.nbytes(), 3u * 2 * 18);
  for (const auto& [name, t] : NamedTensors{{"w", w}, {"w8", w8}}) {
    const Tensor g = f.get(name);
    EXPECT_EQ(g.dtype(), t.dtype());
    EXPECT_EQ(g.shape(), t.shape());
    EXPECT_TRUE(same_bytes(g, t));
    EXPECT_EQ(g.to_float_vector(), t.to_float_vector());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(g.raw()) % 2, 0u) << "quant blocks hold f16 scales";
  }
  // The stored shape is the byte array: [3, 2 blocks * 18 bytes].
  std::ifstream in(path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(all.find("\"w\":{\"dtype\":\"U8\",\"shape\":[3,36]"), std::string::npos);
}

TEST(Safetensors, NonContiguousTensorIsWrittenInLogicalOrder) {
  const Tensor t = Tensor::from_vector({0, 1, 2, 3, 4, 5}, {2, 3}).permute({1, 0});
  const Bytes b = serialize_safetensors({{"t", t}});
  SafetensorsFile f = SafetensorsFile::from_memory(b.data(), b.size());
  EXPECT_EQ(f.get("t").shape(), Shape({3, 2}));
  EXPECT_EQ(f.get("t").to_float_vector(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
}

TEST(Safetensors, ViewsOutliveFileObjectAndFile) {
  TempDir dir;
  const std::string path = dir.file("v.safetensors");
  write_safetensors(path, {{"x", Tensor::from_vector({1.5f, -2.f, 3.25f}, {3})}});
  Tensor view;
  {
    SafetensorsFile f = SafetensorsFile::open(path);
    view = f.get("x");
  }
  fs::remove(path);  // the mapping keeps the pages alive
  EXPECT_EQ(view.to_float_vector(), (std::vector<float>{1.5f, -2.f, 3.25f}));
}

TEST(Safetensors, LayoutFollowsReferenceOrder) {
  const Bytes b = serialize_safetensors({{"a", tensor_with_bytes({3}, DType::kU8, 1)},
                                         {"m", tensor_with_bytes({3}, DType::kF16, 2)},
                                         {"z", tensor_with_bytes({1}, DType::kF64, 3)},
                                         {"b", tensor_with_bytes({1}, DType::kF64, 4)}});
  SafetensorsFile f = SafetensorsFile::from_memory(b.data(), b.size());
  EXPECT_EQ(f.info("b").begin, 0u);
  EXPECT_EQ(f.info("z").begin, 8u);
  EXPECT_EQ(f.info("m").begin, 16u);
  EXPECT_EQ(f.info("a").begin, 22u);
  EXPECT_EQ(f.info("a").end, 25u);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "b", "m", "z"}));
}

// A file spelled out byte by byte from the format description, as the reference writer emits it.
TEST(Safetensors, SpecExactBytes) {
  const std::string header =
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]}}      ";  // 138 + 6 spaces
  ASSERT_EQ(header.size(), 0x90u);
  Bytes expect = {0x90, 0, 0, 0, 0, 0, 0, 0};
  expect.insert(expect.end(), header.begin(), header.end());
  const Bytes data = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x01, 0xff, 0x7f};  // 1.0f, -2.0f; 1,255,127
  expect.insert(expect.end(), data.begin(), data.end());

  SafetensorsFile f = SafetensorsFile::from_memory(expect.data(), expect.size(), "ref");
  EXPECT_EQ(f.get("a").to_float_vector(), (std::vector<float>{1.f, -2.f}));
  const Tensor b = f.get("b");
  EXPECT_EQ(b.dtype(), DType::kU8);
  EXPECT_EQ(b.shape(), Shape({3}));
  EXPECT_EQ(b.data<uint8_t>()[1], 255);
  EXPECT_EQ(b.data<uint8_t>()[2], 127);
  EXPECT_EQ(f.metadata().size(), 1u);

  Tensor u8 = Tensor::empty({3}, DType::kU8);
  u8.data<uint8_t>()[0] = 1;
  u8.data<uint8_t>()[1] = 255;
  u8.data<uint8_t>()[2] = 127;
  const Bytes got = serialize_safetensors({{"b", u8}, {"a", Tensor::from_vector({1.f, -2.f}, {2})}}, {{"format", "pt"}});
  EXPECT_EQ(got, expect);
}

TEST(Safetensors, EmptyFileAndUnalignedForeignData) {
  const Bytes empty = serialize_safetensors({});
  EXPECT_EQ(empty.size(), 16u);  // "{}" padded to 8
  EXPECT_EQ(SafetensorsFile::from_memory(empty.data(), empty.size()).size(), 0u);

  // Padding the header so the data starts at an odd file offset leaves the F32 unaligned: get()
  // returns an aligned copy with the same values.
  const std::string h = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  std::string padded = h;
  while ((8 + padded.size()) % 4 != 1) padded += ' ';
  Bytes b = make_file(padded, 0);
  const float vals[2] = {0.5f, -7.f};
  const uint8_t* vp = reinterpret_cast<const uint8_t*>(vals);
  b.insert(b.end(), vp, vp + 8);
  ASSERT_EQ((b.size() - 8) % 2, 1u);
  SafetensorsFile f = SafetensorsFile::from_memory(b.data(), b.size());
  const Tensor t = f.get("x");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 4, 0u);
  EXPECT_EQ(t.to_float_vector(), (std::vector<float>{0.5f, -7.f}));
}

TEST(Safetensors, LookupAndOpenErrors) {
  const Bytes b = serialize_safetensors({{"x", Tensor::from_vector({1}, {1})}});
  SafetensorsFile f = SafetensorsFile::from_memory(b.data(), b.size(), "mem");
  EXPECT_THROW(f.get("nope"), NotFoundError);
  try {
    f.info("nope");
  } catch (const NotFoundError& e) {
    EXPECT_NE(std::string(e.what()).find("'nope'"), std::string::npos);
  }
  EXPECT_THROW(SafetensorsFile::open("/nonexistent/dir/x.safetensors"), IoError);
  TempDir dir;
  EXPECT_THROW(SafetensorsFile::open(dir.path()), IoError);
}

TEST(Safetensors, WriterRejectsBadInput) {
  const Tensor t = Tensor::from_vector({1}, {1});
  EXPECT_THROW(serialize_safetensors({{"a", t}, {"a", t}}), InvalidArgument);
  EXPECT_THROW(serialize_safetensors({{"__metadata__", t}}), InvalidArgument);
  EXPECT_THROW(serialize_safetensors({{"a", t}}, {{"vlart.dtype.a", "q4_g32"}}), InvalidArgument);
  EXPECT_THROW(serialize_safetensors({{"a", Tensor()}}), InvalidArgument);
}

TEST(Safetensors, AtomicWriteReplacesAndLeavesNoTemporaries) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  write_safetensors(path, {{"x", Tensor::from_vector({1}, {1})}});
  write_safetensors(path, {{"y", Tensor::from_vector({2, 3}, {2})}});
  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_FALSE(f.has("x"));
  EXPECT_EQ(f.get("y").to_float_vector(), (std::vector<float>{2, 3}));
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1u);
  EXPECT_THROW(write_safetensors(dir.file("no/such/dir/m.safetensors"), {}), IoError);
}

// ---------------- sharded checkpoints ----------------

TEST(SafetensorsCheckpoint, ShardedRoundTrip) {
  TempDir dir;
  const Tensor a = tensor_with_bytes({4, 3}, DType::kF32, 11);
  const Tensor b = tensor_with_bytes({5}, DType::kBF16, 12);
  const Tensor c = tensor_with_bytes({2, 2}, DType::kI64, 13);
  write_safetensors(dir.file("model-00001-of-00002.safetensors"), {{"enc.a", a}, {"enc.b", b}});
  write_safetensors(dir.file("model-00002-of-00002.safetensors"), {{"dec.c", c}});
  write_text(dir.file("model.safetensors.index.json"),
             R"({"metadata": {"total_size": 92}, "weight_map": {
                 "enc.a": "model-00001-of-00002.safetensors",
                 "enc.b": "model-00001-of-00002.safetensors",
                 "dec.c": "model-00002-of-00002.safetensors"}})");
  SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir.path());
  EXPECT_EQ(ck.shards().size(), 2u);
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"dec.c", "enc.a", "enc.b"}));
  EXPECT_TRUE(same_bytes(ck.get("enc.a"), a));
  EXPECT_TRUE(same_bytes(ck.get("enc.b"), b));
  EXPECT_TRUE(same_bytes(ck.get("dec.c"), c));
  EXPECT_EQ(ck.info("dec.c").dtype, DType::kI64);
  EXPECT_EQ(&ck.file_of("enc.a"), &ck.file_of("enc.b"));
  EXPECT_FALSE(ck.has("x"));
  EXPECT_THROW(ck.get("x"), NotFoundError);
  EXPECT_EQ(ck.index_path(), dir.file("model.safetensors.index.json"));

  // The index file itself can be passed too.
  EXPECT_EQ(SafetensorsCheckpoint::open(dir.file("model.safetensors.index.json")).names().size(), 3u);
}

TEST(SafetensorsCheckpoint, SingleFileDirectoryAndFile) {
  TempDir dir;
  write_safetensors(dir.file("model.safetensors"), {{"w", Tensor::from_vector({4, 5}, {2})}});
  SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir.path());
  EXPECT_EQ(ck.get("w").to_float_vector(), (std::vector<float>{4, 5}));
  EXPECT_TRUE(ck.index_path().empty());
  EXPECT_TRUE(SafetensorsCheckpoint::open(dir.file("model.safetensors")).has("w"));
  TempDir empty;
  EXPECT_THROW(SafetensorsCheckpoint::open(empty.path()), NotFoundError);
}

TEST(SafetensorsCheckpoint, BrokenIndexes) {
  TempDir dir;
  write_safetensors(dir.file("s1.safetensors"), {{"a", Tensor::from_vector({1}, {1})}});
  const std::string idx = dir.file("model.safetensors.index.json");
  auto expect_msg = [&](auto error_tag, const std::string& json, const std::vector<std::string>& needles) {
    using E = decltype(error_tag);
    write_text(idx, json);
    try {
      SafetensorsCheckpoint::open(dir.path());
      ADD_FAILURE() << "accepted: " << json;
    } catch (const E& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(idx), std::string::npos) << msg;
      for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
    }
  };
  expect_msg(IoError(""), R"({"weight_map": {"a": "missing.safetensors"}})", {"missing.safetensors", "'a'"});
  expect_msg(FormatError(""), R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}})",
             {"'b'", "s1.safetensors", "does not contain"});
  expect_msg(FormatError(""), R"({"metadata": {}})", {"weight_map"});
  expect_msg(FormatError(""), R"({"weight_map": [1, 2]})", {"'weight_map' must be an object"});
  expect_msg(FormatError(""), R"({"weight_map": {"a": 3}})", {"'a'", "file name string"});
  expect_msg(FormatError(""), R"({"weight_map": {"a": "../s1.safetensors"}})", {"relative path"});
  expect_msg(FormatError(""), R"({"weight_map": )", {"not valid JSON"});
  // A shard that is itself broken surfaces the shard's own FormatError.
  write_text(dir.file("bad.safetensors"), "xx");
  write_text(idx, R"({"weight_map": {"a": "bad.safetensors"}})");
  EXPECT_THROW(SafetensorsCheckpoint::open(dir.path()), FormatError);
}

// ---------------- broken-file corpus ----------------

namespace {
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, const std::string& offs) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offs + "}";
}
}  // namespace

TEST(SafetensorsBroken, TruncatedFileAndHeader) {
  expect_broken({1, 2, 3, 4, 5}, {"5 bytes", "shorter than the 8-byte"});
  expect_broken({}, {"0 bytes"});
  Bytes good = serialize_safetensors({{"x", Tensor::from_vector({1, 2}, {2})}});
  Bytes cut(good.begin(), good.begin() + 20);  // cut in the middle of the header
  expect_broken(cut, {"header length", "exceeds the 12 bytes"});
  // Truncated in the data section: the tensor now ends beyond it.
  Bytes cut_data(good.begin(), good.end() - 3);
  expect_broken(cut_data, {"'x'", "beyond the data section of 5 bytes"});
}

TEST(SafetensorsBroken, LyingHeaderLength) {
  const std::string h = "{" + entry("x", "F32", "[1]", "[0,4]") + "}";
  expect_broken(make_file(h, 4, 4096), {"header length 4096", "exceeds the"});
  expect_broken(make_file(h, 4, int64_t{1} << 40), {"exceeds the limit of 100000000"});
  expect_broken(make_file(h, 4, 3), {"not valid JSON"});  // length shorter than the JSON text
  Bytes max = make_file(h, 4);
  for (int i = 0; i < 8; ++i) max[static_cast<size_t>(i)] = 0xff;
  expect_broken(max, {"exceeds the limit"});
}

TEST(SafetensorsBroken, HeaderNotJsonOrNotObject) {
  expect_broken(make_file("{not json}", 0), {"not valid JSON"});
  expect_broken(make_file("", 0), {"not valid JSON"});
  expect_broken(make_file("[1, 2]   ", 0), {"must be a JSON object", "array"});
  expect_broken(make_file("{\"a\":\"\xff\xfe\"}", 0), {"not valid JSON"});  // invalid UTF-8
  expect_broken(make_file(std::string(200, '[') + std::string(200, ']'), 0), {"nested deeper than 64"});
  expect_broken(make_file("{}{}", 0), {"not valid JSON"});
}

TEST(SafetensorsBroken, EntryShapeAndKeys) {
  expect_broken(make_file("{\"a\":5}", 0), {"'a'", "entry must be an object"});
  expect_broken(make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), {"'a'", "missing the 'data_offsets'"});
  expect_broken(make_file("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4), {"missing the 'dtype'"});
  expect_broken(make_file("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4), {"missing the 'shape'"});
  expect_broken(make_file("{" + entry("w", "F17", "[1]", "[0,4]") + "}", 4), {"'w'", "unknown dtype 'F17'"});
  expect_broken(make_file("{\"w\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4), {"dtype must be a string"});
  expect_broken(make_file("{" + entry("w", "F32", "3", "[0,12]") + "}", 12), {"shape must be a list"});
  expect_broken(make_file("{" + entry("w", "F32", "[-1,4]", "[0,16]") + "}", 16), {"'w'", "negative (-1)"});
  expect_broken(make_file("{" + entry("w", "F32", "[2.5]", "[0,8]") + "}", 8), {"non-negative integer", "2.5"});
  expect_broken(make_file("{" + entry("w", "F32", "[\"2\"]", "[0,8]") + "}", 8), {"non-negative integer"});
  expect_broken(make_file("{" + entry("w", "U8", "[1,1,1,1,1,1,1,1,1]", "[0,1]") + "}", 1), {"rank 9"});
}

TEST(SafetensorsBroken, OverflowingShapes) {
  // 2^40 * 2^40 elements.
  expect_broken(make_file("{" + entry("h", "F32", "[1099511627776,1099511627776]", "[0,4]") + "}", 4),
                {"'h'", "overflows 64 bits"});
  // 2^63 elements: fits u64 but not the int64 element count.
  expect_broken(make_file("{" + entry("h", "U8", "[4294967296,2147483648]", "[0,4]") + "}", 4), {"overflows"});
  // 2^61 F64 elements: the count fits, the byte size (2^64) does not.
  expect_broken(make_file("{" + entry("h", "F64", "[2305843009213693952]", "[0,8]") + "}", 8),
                {"byte size", "overflows"});
  // A dimension beyond int64, and one beyond u64 (parsed as a float by JSON).
  expect_broken(make_file("{" + entry("h", "U8", "[9223372036854775808]", "[0,1]") + "}", 1), {"overflows"});
  expect_broken(make_file("{" + entry("h", "U8", "[18446744073709551616]", "[0,1]") + "}", 1),
                {"non-negative integer"});
  // A zero dim does not excuse the others: strides are products of the trailing dims.
  expect_broken(make_file("{" + entry("z", "F32", "[0,1099511627776,1099511627776]", "[0,0]") + "}", 0),
                {"'z'", "overflows"});
  const Bytes ok = make_file("{" + entry("z", "F32", "[1099511627776,0,1000]", "[0,0]") + "}", 0);
  const Tensor z = SafetensorsFile::from_memory(ok.data(), ok.size()).get("z");
  EXPECT_EQ(z.numel(), 0);
  EXPECT_EQ(z.shape(), Shape({1099511627776, 0, 1000}));
}

TEST(SafetensorsBroken, Offsets) {
  expect_broken(make_file("{" + entry("w", "F32", "[2]", "[0,8]") + "}", 4), {"'w'", "end 8", "beyond the data section of 4"});
  expect_broken(make_file("{" + entry("w", "F32", "[1]", "[8,4]") + "}", 8), {"'w'", "begin 8 > end 4"});
  expect_broken(make_file("{" + entry("w", "F32", "[2]", "[0,12]") + "}", 12),
                {"'w'", "needs 8 bytes", "span 12"});
  expect_broken(make_file("{" + entry("w", "F32", "[1]", "[0]") + "}", 4), {"list of two integers"});
  expect_broken(make_file("{" + entry("w", "F32", "[1]", "[0,4,8]") + "}", 8), {"list of two integers"});
  expect_broken(make_file("{" + entry("w", "F32", "[1]", "{}") + "}", 4), {"list of two integers"});
  expect_broken(make_file("{" + entry("w", "F32", "[1]", "[-4,0]") + "}", 4), {"data_offsets begin is negative"});
  expect_broken(make_file("{" + entry("w", "F32", "[1]", "[0,18446744073709551615]") + "}", 4), {"beyond"});
  expect_broken(make_file("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[4,12]") + "}", 12),
                {"'a' [0, 8)", "'b' [4, 12)", "overlap"});
  expect_broken(make_file("{" + entry("a", "U8", "[4]", "[0,4]") + "," + entry("b", "U8", "[4]", "[0,4]") + "}", 4),
                {"overlap"});
}

TEST(SafetensorsBroken, DuplicatesAndMetadata) {
  expect_broken(make_file("{" + entry("a", "U8", "[1]", "[0,1]") + "," + entry("a", "U8", "[1]", "[1,2]") + "}", 2),
                {"key 'a' more than once"});
  expect_broken(make_file("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1),
                {"key 'dtype' more than once"});
  expect_broken(make_file("{\"__metadata__\":{\"k\":1}}", 0), {"__metadata__ value of 'k' must be a string"});
  expect_broken(make_file("{\"__metadata__\":[]}", 0), {"__metadata__ must be an object"});
  // Inconsistent vlart quantized records.
  expect_broken(make_file("{\"__metadata__\":{\"vlart.dtype.w\":\"q4_g32\"}," + entry("w", "F32", "[9]", "[0,36]") + "}", 36),
                {"'w'", "must be stored as U8, got F32"});
  expect_broken(make_file("{\"__metadata__\":{\"vlart.dtype.w\":\"q4_g32\"}," + entry("w", "U8", "[20]", "[0,20]") + "}", 20),
                {"'w'", "multiple of the 18-byte"});
  expect_broken(make_file("{\"__metadata__\":{\"vlart.dtype.w\":\"f32\"}," + entry("w", "U8", "[4]", "[0,4]") + "}", 4),
                {"not a vlart quantized dtype"});
  expect_broken(make_file("{\"__metadata__\":{\"vlart.dtype.q\":\"q4_g32\"}}", 0), {"'vlart.dtype.q'", "not in the file"});
}
