// How a shared block builder gets its weights: the family resolves a full weight name (and the
// shape the block expects) to a graph value, deciding dtype conversion and quantization.
#pragma once

#include <functional>
#include <string>

#include "core/graph.h"

namespace vlart::blocks {

// Fetches weight `name` (the full name) with `shape` as a graph value; `linear` marks the W input
// of a Linear (which a family may keep quantized), else a norm weight, bias or scale.
using WeightFn = std::function<ValueId(const std::string& name, const Shape& shape, bool linear)>;

}  // namespace vlart::blocks
