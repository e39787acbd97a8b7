// Prefix-LM masks and positions (models/blocks/masks.h) on hand-checked layouts: SmolVLA's prefix
// (image and language tokens one bidirectional block, the state token its own block), pi0's
// (a suffix whose tokens each start a block: causal), and padding in the middle of the prompt.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "models/blocks/masks.h"
#include "vlart/error.h"

using namespace vlart;
using vlart::blocks::prefix_lm_layout;

namespace {

// Rows of '1'/'.' for readability.
std::vector<std::string> rows(const std::vector<uint8_t>& m, size_t L) {
  std::vector<std::string> r(L, std::string(L, '.'));
  for (size_t i = 0; i < L; ++i)
    for (size_t j = 0; j < L; ++j)
      if (m[i * L + j]) r[i][j] = '1';
  return r;
}

TEST(Masks, SmolvlaPrefixWithPaddedPrompt) {
  // 2 image tokens, 3 language tokens of which the last is padding, 1 state token.
  const std::vector<uint8_t> pad = {1, 1, 1, 1, 0, 1}, starts = {0, 0, 0, 0, 0, 1};
  const auto lay = prefix_lm_layout(pad, starts);
  const std::vector<std::string> want = {"1111..",   // image/lang tokens: their block, never the state
                                         "1111..", "1111..", "1111..",
                                         "......",   // padding attends nothing and is never attended
                                         "1111.1"};  // the state token: everything real before it and itself
  EXPECT_EQ(rows(lay.att2d, 6), want);
  EXPECT_EQ(lay.positions, (std::vector<int64_t>{0, 1, 2, 3, 3, 4}));  // padding does not advance positions
}

TEST(Masks, CausalSuffixBlocks) {
  // pi0-style: prefix block (3 tokens), then a state token and 3 action tokens that each start a block.
  const std::vector<uint8_t> pad(7, 1), starts = {0, 0, 0, 1, 1, 1, 1};
  const auto lay = prefix_lm_layout(pad, starts);
  const std::vector<std::string> want = {"111....", "111....", "111....", "1111...",
                                         "11111..", "111111.", "1111111"};
  EXPECT_EQ(rows(lay.att2d, 7), want);
  EXPECT_EQ(lay.block, (std::vector<int64_t>{0, 0, 0, 1, 2, 3, 4}));
  // One block for the whole suffix instead: bidirectional within it.
  const auto one = prefix_lm_layout(pad, {0, 0, 0, 1, 0, 0, 0});
  EXPECT_EQ(rows(one.att2d, 7)[4], "1111111");
}

TEST(Masks, SizeMismatchIsAnError) { EXPECT_THROW(prefix_lm_layout({1, 1}, {0}), InvalidArgument); }

}  // namespace
