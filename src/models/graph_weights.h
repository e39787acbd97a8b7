// How a family's graph builders take their weights and feed their inputs, shared by the families:
// a checkpoint tensor as a graph constant in the compute dtype (float tensors converted once per
// graph; a tensor already in that dtype stays a zero-copy view of the mapped file, which the CPU
// backend's packed-weight cache shares across shape buckets), a Linear's W kept packed when the
// checkpoint quantized it, and the byte-exact copy of host data into an executor input.
#pragma once

#include <cstddef>
#include <string>

#include "core/executor.h"
#include "core/graph.h"
#include "models/policy_weights.h"

namespace vlart {

// Tensor `name` of `w` (shape-checked when `shape` is given) as a constant of `g` in dtype `want`;
// the graph's existing value when it already has one of that name.
ValueId graph_weight(Graph& g, const PolicyWeights& w, const std::string& name, const Shape& shape, DType want);
// The W input of a Linear: a quantized weight as a QuantWeight (the quantized kernels) unless
// `dequantize`; anything else as graph_weight.
ValueId graph_linear_weight(Graph& g, const PolicyWeights& w, const std::string& name, const Shape& shape,
                            DType want, bool dequantize);
// Copies `bytes` into executor input `name`; InternalError (prefixed by `who`) when the sizes differ.
void fill_input(Executor& ex, const std::string& name, const void* src, size_t bytes, const char* who);

}  // namespace vlart
