#include "models/graph_weights.h"

#include <cstring>

#include "vlart/error.h"

namespace vlart {

ValueId graph_weight(Graph& g, const PolicyWeights& w, const std::string& name, const Shape& shape, DType want) {
  ValueId id = g.find(name);
  if (id != kNoValue) return id;
  Tensor t = w.get(name, shape);
  // Float weights are converted here, per graph (a bf16 checkpoint in f32 compute, or the reverse);
  // a Linear's kernel repacks the converted copy and Executor::consume releases it. Matching dtypes
  // stay zero-copy views of the mapped file, which the backend's packed-weight cache shares across
  // shape buckets (converted copies are new per graph, so they are packed per graph).
  if (t.dtype() != want && (t.dtype() == DType::kF32 || t.dtype() == DType::kBF16 || t.dtype() == DType::kF16))
    t = t.to(want);
  return g.weight(name, t);
}

ValueId graph_linear_weight(Graph& g, const PolicyWeights& w, const std::string& name, const Shape& shape,
                            DType want, bool dequantize) {
  if (!w.is_quantized(name) || dequantize) return graph_weight(g, w, name, shape, want);
  ValueId id = g.find(name);
  if (id != kNoValue) return id;
  return g.quant_weight(name, w.get_quant(name, shape));
}

void fill_input(Executor& ex, const std::string& name, const void* src, size_t bytes, const char* who) {
  Tensor& t = ex.input(name);
  VLART_CHECK(t.nbytes() == bytes, InternalError, who, ": input '", name, "' expects ", t.nbytes(), " bytes, got ",
              bytes);
  std::memcpy(t.raw(), src, bytes);
}

}  // namespace vlart
