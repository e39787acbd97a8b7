// Test helpers: run one node of a graph directly on a backend (no executor), and compare results
// against a naive reference with a normalised mean squared error bound.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/backend.h"
#include "core/graph.h"
#include "vlart/tensor.h"

namespace vlart::testing {

// NMSE = sum (a-b)^2 / sum b^2 (b is the reference). Returns 0 when both are all zero.
inline double nmse(const std::vector<float>& got, const std::vector<float>& ref) {
  EXPECT_EQ(got.size(), ref.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size() && i < ref.size(); ++i) {
    const double d = static_cast<double>(got[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  if (den == 0) return num;
  return num / den;
}

inline Tensor random_tensor(const Shape& shape, DType dtype, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> ud(lo, hi);
  std::vector<float> v(static_cast<size_t>(shape.numel()));
  for (auto& x : v) x = ud(rng);
  Tensor t = Tensor::from_vector(v, shape);
  return dtype == DType::kF32 ? t : t.to(dtype);
}

// Runs the last node of `g` on `backend`. `inputs` are bound to g.inputs() in order (CPU tensors);
// weights come from the graph. Returns the output tensor (CPU).
inline Tensor run_last_node(Backend& backend, const Graph& g, const std::vector<Tensor>& inputs) {
  const Node& n = g.nodes().back();
  EXPECT_TRUE(backend.supports(g, n)) << "backend " << backend.name() << " does not support " << n.name;
  std::vector<Tensor> bound(g.values().size());
  for (size_t i = 0; i < g.inputs().size(); ++i) bound[static_cast<size_t>(g.inputs()[i])] = inputs.at(i);
  for (size_t i = 0; i < g.values().size(); ++i)
    if (g.values()[i].kind == ValueKind::kWeight) bound[i] = g.values()[i].constant;
  std::unique_ptr<OpKernel> k = backend.prepare(g, n);
  std::vector<const Tensor*> in;
  for (ValueId v : n.inputs) in.push_back(v == kNoValue ? nullptr : &bound[static_cast<size_t>(v)]);
  const Value& ov = g.value(n.output);
  Tensor out = Tensor::empty(ov.shape, ov.dtype);
  std::vector<uint8_t> scratch(k->scratch_bytes() + 64);
  KernelArgs args;
  args.inputs = in.data();
  args.num_inputs = static_cast<int>(in.size());
  args.output = &out;
  args.scratch = scratch.data() + (64 - reinterpret_cast<uintptr_t>(scratch.data()) % 64) % 64;
  backend.begin_run();
  k->run(args);
  backend.synchronize();
  return out;
}

}  // namespace vlart::testing
