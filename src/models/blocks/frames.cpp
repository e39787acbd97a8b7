#include "models/blocks/frames.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "vlart/error.h"
#include "vlart/tokenizer.h"

namespace vlart::blocks {
namespace fs = std::filesystem;

void check_frame(const Image& im, const std::string& cam, const std::string& where) {
  VLART_CHECK(im.height > 0 && im.width > 0 && (im.view != nullptr || !im.data.empty()), InvalidArgument, where,
              ": camera '", cam, "' has an empty frame (", im.height, "x", im.width, ")");
  if (im.view) {
    VLART_CHECK(im.data.empty(), InvalidArgument, where, ": camera '", cam,
                "' has both owned bytes and a view; set one of them");
    VLART_CHECK(im.row_stride == 0 || im.row_stride >= im.width * 3, InvalidArgument, where, ": camera '", cam,
                "' view has row_stride ", im.row_stride, " bytes, less than a row of ", im.width, "x3");
  } else {
    VLART_CHECK(static_cast<int64_t>(im.data.size()) == im.height * im.width * 3, InvalidArgument, where,
                ": camera '", cam, "' frame has ", im.data.size(), " bytes, expected ", im.height, "x", im.width,
                "x3");
  }
}

int32_t find_pad_id(const Tokenizer& tok, const fs::path& dir, const std::string& fallback) {
  for (const char* f : {"tokenizer_config.json", "special_tokens_map.json"}) {
    std::ifstream in(dir / f);
    if (!in) continue;
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.contains("pad_token")) continue;
    const auto& p = j["pad_token"];
    std::string s;
    if (p.is_string()) s = p.get<std::string>();
    else if (p.is_object() && p.contains("content") && p["content"].is_string()) s = p["content"].get<std::string>();
    else continue;  // null or malformed: no pad token named here
    if (auto id = tok.token_to_id(s)) return *id;
  }
  if (!fallback.empty())
    if (auto id = tok.token_to_id(fallback)) return *id;
  return -1;
}

FoundTokenizer find_tokenizer(const std::string& override_path, const std::vector<fs::path>& candidates,
                              const std::string& pad_fallback) {
  std::vector<fs::path> cands;
  if (!override_path.empty()) {
    const fs::path p(override_path);
    cands.push_back(fs::is_directory(p) ? p / "tokenizer.json" : p);
    VLART_CHECK(fs::exists(cands.back()), NotFoundError, "Policy::load: tokenizer override ", cands.back().string(),
                " does not exist");
  }
  cands.insert(cands.end(), candidates.begin(), candidates.end());
  FoundTokenizer f;
  for (const fs::path& p : cands)
    if (fs::exists(p)) {
      f.tok = std::make_unique<Tokenizer>(Tokenizer::from_file(p.string()));
      f.pad_id = find_pad_id(*f.tok, p.parent_path(), pad_fallback);
      break;
    }
  return f;
}

uint64_t frame_hash(const Image& im) {
  // Row by row (a view may pad its rows); a contiguous frame is one long row. The same pixels as a
  // padded view and packed hash differently: a vision-cache miss, never a wrong hit.
  const bool packed = im.stride() == im.width * 3;
  const size_t n = static_cast<size_t>(packed ? im.height * im.width * 3 : im.width * 3);
  const int64_t rows = packed ? 1 : im.height;
  uint64_t h = 0x9e3779b97f4a7c15ull ^ (static_cast<uint64_t>(im.height) << 32) ^ static_cast<uint64_t>(im.width);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* p = im.pixels() + r * im.stride();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      h = (h ^ (w * 0xbf58476d1ce4e5b9ull)) * 0x94d049bb133111ebull;
      h ^= h >> 29;
    }
    for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  }
  return h ^ (h >> 31);
}

}  // namespace vlart::blocks
