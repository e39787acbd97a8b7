#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vlart/policy.h"

namespace vlart::cli {
// Columns of a policy's [horizon, width] initial noise (PolicyInfo::noise_shape); 0 without noise.
inline int64_t noise_width(const vlart::Policy& p) {
  const std::vector<int64_t>& s = p.info().noise_shape;
  return s.size() == 2 ? s[1] : 0;
}
}  // namespace vlart::cli

namespace vlart::cli {
int cmd_info(int argc, char** argv);  // no argument: system info; <model_dir>: model summary
int cmd_model_info(const char* model_dir);
int cmd_bench_ops(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_bench(int argc, char** argv);  // timed policy inference
int cmd_serve(int argc, char** argv);  // openpi websocket policy server
int cmd_quantize(int argc, char** argv);  // quantized copy of a checkpoint
int cmd_compare(int argc, char** argv);   // action error / size / memory / latency of candidates
int cmd_prune(int argc, char** argv);     // structurally pruned copy of a checkpoint
int cmd_rank_layers(int argc, char** argv);  // per-layer input/output cosine on recorded observations
// Layer input/output cosines of the model in `dir` averaged over the observations of `obs_dir`
// (compare's layout), and the layer indices ordered from the highest cosine (least important).
struct LayerRanking {
  std::vector<double> vlm_cosine, expert_cosine;
  std::vector<int64_t> vlm_least_important_first, expert_least_important_first;
  size_t observations = 0;
};
LayerRanking rank_layers(const std::string& dir, const std::string& obs_dir, int threads, const std::string& tokenizer,
                         const std::string& vlm_config);
// Resident set size of this process now (/proc/self/statm) and at its peak (getrusage), in MiB.
double rss_now_mib();
double rss_peak_mib();
// Observations of a `vlart compare --obs` directory for `policy`'s cameras, with their noise
// (cmd_compare.cpp).
void read_obs_dir(const std::string& dir, const Policy& policy, uint64_t seed, std::vector<Observation>* obs,
                  std::vector<std::vector<float>>* noise);
}  // namespace vlart::cli
