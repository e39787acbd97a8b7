// Deterministic fuzzing of the tokenizer: (1) mutated tokenizer.json files either load or fail with
// FormatError / UnsupportedError (never another exception, a crash or a sanitizer report); (2)
// random byte strings through every fixture pipeline either encode into in-range ids that decode
// without error, or are rejected as invalid UTF-8 with InvalidArgument.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vlart/error.h"
#include "vlart/tokenizer.h"

namespace {

using Json = nlohmann::json;
using vlart::Tokenizer;

const std::string kDir = std::string(VLART_TEST_DATA_DIR) + "/tokenizer/";
const char* kSmall[] = {"bpe_unk_fallback", "bpe_affixes", "gemma_style", "llama2_style", "metaspace_style"};
const char* kAll[] = {"smollm2_style", "bos_template",   "split_variants",  "bpe_unk_fallback", "bpe_affixes",
                      "gemma_style",   "llama2_style",   "metaspace_style", "metaspace_split",  "qwen2_style"};

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A replacement for one JSON value: another type, an edge number, a string from the pipelines'
// vocabulary of field values.
Json random_value(std::mt19937& rng) {
  static const std::vector<Json> pool = {
      nullptr, true, false, 0, -1, 1, 255, 1 << 30, -(int64_t{1} << 40), 1.5, "", "\u2581", " ", "ab", "<0x41>",
      "first", "always", "never", "Isolated", "MergedWithNext", "Metaspace", "Replace", "Prepend", "NFC", "Sequence",
      "ByteFallback", "Fuse", "Strip", "ByteLevel", "BPE", "Split", Json::array(), Json::object(),
      Json::array({"a", "b"}), Json{{"String", " "}}, Json{{"Regex", "x"}}, Json{{"type", "Fuse"}}};
  return pool[std::uniform_int_distribution<size_t>(0, pool.size() - 1)(rng)];
}

// Pointers to every value in j (objects and arrays included), for picking one to mutate.
void collect(Json& j, std::vector<Json*>& out) {
  out.push_back(&j);
  if (j.is_object() || j.is_array())
    for (auto& v : j) collect(v, out);
}

TEST(TokenizerFuzz, MutatedFilesLoadOrFailWithAFormatOrUnsupportedError) {
  std::mt19937 rng(1234);
  size_t loaded = 0, format = 0, unsupported = 0;
  for (const char* name : kSmall) {
    const Json base = Json::parse(read(kDir + name + ".json"));
    for (int it = 0; it < 300; ++it) {
      Json j = base;
      // Skip the vocabulary and merges (large, and their entries are checked one by one anyway) for
      // most mutations, so the pipeline fields get the attention.
      std::vector<Json*> all;
      for (const char* key : {"normalizer", "pre_tokenizer", "post_processor", "decoder", "added_tokens"})
        if (j.contains(key)) collect(j[key], all);
      if (it % 4 == 0) collect(j["model"], all);
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits && !all.empty(); ++e) {
        Json* v = all[rng() % all.size()];
        if (v->is_object() && !v->empty() && rng() % 2) {
          auto k = v->begin();
          std::advance(k, static_cast<long>(rng() % v->size()));
          v->erase(k.key());  // drop a field
        } else {
          *v = random_value(rng);
        }
        all.clear();
        collect(j, all);
      }
      std::string text = j.dump();
      if (it % 7 == 0) text.resize(rng() % text.size());  // truncated file
      try {
        const Tokenizer t = Tokenizer::from_json_string(text, "fuzz.json");
        // A file that loads must also run.
        const std::vector<int32_t> ids = t.encode("pick up the red cube \u2581 caf\u00e9 <bos>", true);
        for (int32_t id : ids) ASSERT_LT(static_cast<size_t>(id), t.id_upper_bound());
        (void)t.decode(ids, false);
        ++loaded;
      } catch (const vlart::UnsupportedError&) {
        ++unsupported;
      } catch (const vlart::FormatError&) {
        ++format;
      } catch (const vlart::InvalidArgument& e) {
        // Only decode may say this, for an id the mutated file left unmapped.
        ASSERT_NE(std::string(e.what()).find("decode"), std::string::npos) << e.what();
      }
    }
  }
  std::printf("[ fuzz ] tokenizer.json mutations: %zu loaded, %zu FormatError, %zu UnsupportedError\n", loaded,
              format, unsupported);
  EXPECT_GT(loaded, 100u);
  EXPECT_GT(format, 100u);
}

TEST(TokenizerFuzz, RandomBytesEncodeAndDecodeSafely) {
  std::mt19937 rng(99);
  const std::vector<std::string> pieces = {"\u2581", " ", "  ", "\n", "\r\n", "<bos>", "<eos>", "<start_of_turn>",
                                           "robot arm", "<0x41>", "e\u0301", "\xF0\x9F\xA4\x96", "'S", "123", "\t"};
  for (const char* name : kAll) {
    const Tokenizer t = Tokenizer::from_file(kDir + name + ".json");
    size_t rejected = 0;
    for (int it = 0; it < 1500; ++it) {
      std::string s;
      const int n = static_cast<int>(rng() % 12);
      for (int k = 0; k < n; ++k) {
        if (rng() % 3 == 0) {
          s += pieces[rng() % pieces.size()];
        } else {
          s.push_back(static_cast<char>(rng() % 256));  // often invalid UTF-8
        }
      }
      std::vector<int32_t> ids;
      try {
        ids = t.encode(s, it % 2 == 0);
      } catch (const vlart::InvalidArgument&) {
        ++rejected;
        continue;
      }
      for (int32_t id : ids) ASSERT_LT(static_cast<size_t>(id), t.id_upper_bound()) << name;
      (void)t.decode(ids, false);
      (void)t.decode(ids, true);
      const vlart::PaddedEncoding p = t.encode_padded(s, 16, 0);
      ASSERT_EQ(p.ids.size(), 16u);
    }
    EXPECT_GT(rejected, 100u) << name << ": the generator should produce invalid UTF-8 often";
    // Random ids decode or fail with InvalidArgument naming the id.
    for (int it = 0; it < 300; ++it) {
      std::vector<int32_t> ids;
      for (int k = 0; k < 6; ++k)
        ids.push_back(static_cast<int32_t>(rng() % (t.id_upper_bound() + 3)) - (rng() % 50 == 0 ? 5 : 0));
      try {
        (void)t.decode(ids, rng() % 2 == 0);
      } catch (const vlart::InvalidArgument& e) {
        ASSERT_NE(std::string(e.what()).find("not in the vocabulary"), std::string::npos) << e.what();
      }
    }
  }
}

}  // namespace
