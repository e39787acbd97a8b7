#include "models/blocks/masks.h"

#include "vlart/error.h"

namespace vlart::blocks {

PrefixLayout prefix_lm_layout(const std::vector<uint8_t>& pad, const std::vector<uint8_t>& block_start) {
  VLART_CHECK(pad.size() == block_start.size(), InvalidArgument, "prefix_lm_layout: ", pad.size(),
              " padding flags but ", block_start.size(), " block flags");
  const size_t L = pad.size();
  PrefixLayout o;
  o.block.resize(L);
  o.positions.resize(L);
  int64_t c = 0, cp = 0;
  for (size_t i = 0; i < L; ++i) {
    c += block_start[i] != 0;
    cp += pad[i] != 0;
    o.block[i] = c;
    o.positions[i] = cp - 1;
  }
  o.att2d.resize(L * L);
  for (size_t i = 0; i < L; ++i)
    for (size_t j = 0; j < L; ++j) o.att2d[i * L + j] = o.block[j] <= o.block[i] && pad[i] && pad[j];
  return o;
}

}  // namespace vlart::blocks
