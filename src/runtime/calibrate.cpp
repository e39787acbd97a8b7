// The calibration driver (compress/calibrate.h declares it): loads the float policy with a
// Linear-input observer (PolicyOptions::linear_input_observer) and runs it on the observations. In
// the runtime layer because it drives a Policy; the statistics it fills are compress's.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "compress/calibrate.h"
#include "core/quant_format.h"
#include "models/registry.h"
#include "vlart/error.h"

namespace vlart::compress {

CalibrationData collect_calibration(const std::string& dir, const std::vector<Observation>& obs,
                                    const std::vector<std::vector<float>>& noise, const CalibrateOptions& opts) {
  VLART_CHECK(!obs.empty(), InvalidArgument, "calibrate: no observations");
  VLART_CHECK(noise.empty() || noise.size() == obs.size(), InvalidArgument, "calibrate: ", noise.size(),
              " noise arrays for ", obs.size(), " observations");
  VLART_CHECK(opts.max_rows >= 1, InvalidArgument, "calibrate: max_rows must be >= 1, got ", opts.max_rows);
  const std::filesystem::path cfg = std::filesystem::path(dir) / "config.json";
  VLART_CHECK(!std::filesystem::exists(cfg) || !read_quant_config(cfg.string()), InvalidArgument, "calibrate: ", dir,
              " is already quantized; calibrate with the float checkpoint it came from");
  CalibrationData data;
  // Statistics are keyed by full tensor names: the observer's names plus the family's weight prefix.
  const std::string prefix = checkpoint_weights(dir).weight_prefix;
  std::mt19937_64 rng(opts.seed);
  std::vector<float> row;
  PolicyOptions po = opts.policy;
  po.linear_input_observer = [&](const std::string& name, const Tensor& x) {
    const int64_t k = x.dim(x.rank() - 1);
    const int64_t m = k > 0 ? x.numel() / k : 0;
    LayerActStats& st = data.layers[prefix + name];
    if (st.k == 0) {
      st.k = k;
      st.sum_abs.assign(static_cast<size_t>(k), 0.0);
      st.sum_sq.assign(static_cast<size_t>(k), 0.0);
      st.sample.reserve(static_cast<size_t>(opts.max_rows * k));
      const int64_t b = opts.block_moments ? opts.block_moments(prefix + name) : 0;
      VLART_CHECK(b >= 0 && (b == 0 || k % b == 0), InvalidArgument, "calibrate: block size ", b, " for layer ", name,
                  " does not divide its ", k, " inputs");
      st.block = b;
      if (b > 0) st.block_sq.assign(static_cast<size_t>(k * b), 0.0);
    }
    VLART_CHECK(st.k == k, InvalidArgument, "calibrate: layer ", name, " seen with ", st.k, " and ", k, " inputs");
    const bool bf16 = x.dtype() == DType::kBF16;
    VLART_CHECK(bf16 || x.dtype() == DType::kF32, UnsupportedError, "calibrate: activation dtype ",
                dtype_name(x.dtype()));
    row.resize(static_cast<size_t>(k));
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t i = 0; i < k; ++i)
        row[static_cast<size_t>(i)] =
            bf16 ? bf16_to_f32(x.data<uint16_t>()[r * k + i]) : x.data<float>()[r * k + i];
      for (int64_t i = 0; i < k; ++i) {
        const float a = std::fabs(row[static_cast<size_t>(i)]);
        st.sum_abs[static_cast<size_t>(i)] += a;
        st.sum_sq[static_cast<size_t>(i)] += static_cast<double>(a) * a;
        st.absmax = std::max(st.absmax, a);
      }
      const int64_t b = st.block;
      for (int64_t b0 = 0; b > 0 && b0 < k; b0 += b) {
        double* acc = st.block_sq.data() + b0 * b;
        const float* xb = row.data() + b0;
        for (int64_t i = 0; i < b; ++i) {
          const double xi = xb[i];
          for (int64_t j = 0; j < b; ++j) acc[i * b + j] += xi * xb[j];
        }
      }
      ++st.rows;
      // Reservoir sampling (algorithm R): every row seen has the same chance to be kept.
      int64_t slot = -1;
      if (st.sampled < opts.max_rows) {
        slot = st.sampled++;
        st.sample.resize(static_cast<size_t>(st.sampled * k));
      } else {
        const int64_t j = static_cast<int64_t>(rng() % static_cast<uint64_t>(st.rows));
        if (j < opts.max_rows) slot = j;
      }
      if (slot >= 0) std::copy(row.begin(), row.end(), st.sample.begin() + slot * k);
    }
  };
  std::unique_ptr<Policy> p = Policy::load(dir, po);
  for (size_t i = 0; i < obs.size(); ++i) {
    p->infer(obs[i], noise.empty() ? nullptr : noise[i].data());
    ++data.observations;
  }
  return data;
}

}  // namespace vlart::compress
