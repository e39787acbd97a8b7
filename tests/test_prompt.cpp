// Prompt tokenisation (models/blocks/prompt.h) against the Hugging Face truncation/padding the
// tokenizer fixtures recorded (tests/data/tokenizer/expected.json "padded": max_length 48, right
// padding), on a tokenizer with a BOS template (Gemma style) and one without (SmolLM2 style).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "models/blocks/prompt.h"
#include "vlart/tokenizer.h"

using namespace vlart;

namespace {

const std::string kDir = std::string(VLART_TEST_DATA_DIR) + "/tokenizer/";

TEST(Prompt, TruncationAndPaddingMatchHuggingFace) {
  std::ifstream f(kDir + "expected.json");
  std::stringstream ss;
  ss << f.rdbuf();
  const nlohmann::json e = nlohmann::json::parse(ss.str());
  for (const char* name : {"gemma_style", "smollm2_style"}) {
    SCOPED_TRACE(name);
    const Tokenizer tok = Tokenizer::from_file(kDir + name + ".json");
    const nlohmann::json& fx = e["fixtures"][name];
    const int64_t max_len = fx["max_length"];
    const int32_t pad = fx["pad_id"];
    size_t truncated = 0;
    for (const auto& c : fx["padded"]) {
      const std::string text = e["texts"][c["index"].get<size_t>()];
      const blocks::PromptTokens p = blocks::tokenize_prompt(tok, text, max_len, true, pad);
      const auto want = c["ids"].get<std::vector<int64_t>>();
      EXPECT_EQ(p.ids, want) << text;
      const auto mask = c["mask"].get<std::vector<int>>();
      ASSERT_EQ(p.mask.size(), mask.size());
      for (size_t i = 0; i < mask.size(); ++i) EXPECT_EQ(p.mask[i], mask[i]);
      truncated += mask.back() == 1;
      // Without padding: the same real tokens, nothing after them.
      const blocks::PromptTokens q = blocks::tokenize_prompt(tok, text, max_len, false, pad);
      size_t real = 0;
      for (int m : mask) real += m == 1;
      EXPECT_EQ(q.ids.size(), real);
      EXPECT_TRUE(std::equal(q.ids.begin(), q.ids.end(), p.ids.begin()));
    }
    EXPECT_GT(truncated, 5u);
  }
  // A BOS template survives truncation.
  const Tokenizer g = Tokenizer::from_file(kDir + "gemma_style.json");
  const blocks::PromptTokens p = blocks::tokenize_prompt(g, std::string(500, 'x'), 8, true, 0);
  EXPECT_EQ(p.ids.size(), 8u);
  EXPECT_EQ(p.ids[0], *g.token_to_id("<bos>"));
}

TEST(Prompt, TrailingNewline) {
  EXPECT_EQ(blocks::with_trailing_newline("pick"), "pick\n");
  EXPECT_EQ(blocks::with_trailing_newline("pick\n"), "pick\n");
  EXPECT_EQ(blocks::with_trailing_newline(""), "\n");
}

}  // namespace
