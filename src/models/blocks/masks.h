// Attention masks and positions of prefix-LM VLA policies, as LeRobot / openpi build them
// (make_att_2d_masks): each token has a padding flag and a "starts a new block" flag; token i may
// attend token j iff both are real tokens and block(j) <= block(i), where block = cumsum(starts).
// So tokens of one block see each other bidirectionally and every earlier block; a run of tokens
// that each start a block is causal. Positions count the real tokens: cumsum(pad) - 1.
#pragma once

#include <cstdint>
#include <vector>

namespace vlart::blocks {

struct PrefixLayout {
  std::vector<uint8_t> att2d;       // [L, L] row-major, 1 = may attend
  std::vector<int64_t> positions;   // [L]
  std::vector<int64_t> block;       // [L] cumsum of block starts
};

// `pad` and `block_start` have one entry per token (InvalidArgument otherwise).
PrefixLayout prefix_lm_layout(const std::vector<uint8_t>& pad, const std::vector<uint8_t>& block_start);

}  // namespace vlart::blocks
