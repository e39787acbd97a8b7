// `vlart prune <in_dir> <out_dir> [options]`: writes a structurally pruned copy of a checkpoint whose
// family describes prunable layer stacks (SmolVLA today; compress/prune.h; format and measured costs in
// docs/compression.md) and prints the per-layer shapes it kept.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "commands.h"
#include "compress/prune.h"
#include "vlart/error.h"
#include "vlart/policy.h"

namespace vlart::cli {
namespace {

double parse_frac(const std::string& opt, const std::string& v) {
  errno = 0;
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  VLART_CHECK(!v.empty() && end && *end == '\0' && errno == 0, InvalidArgument, "prune: ", opt,
              " expects a fraction in [0, 1), got '", v, "'");
  return x;  // the range is checked (with the same wording) by prune_checkpoint
}

std::string list(const std::vector<int64_t>& v) {
  std::string s;
  for (int64_t i : v) s += (s.empty() ? "" : ",") + std::to_string(i);
  return s.empty() ? "none" : s;
}

}  // namespace

int cmd_prune(int argc, char** argv) {
  std::vector<std::string> pos;
  compress::PruneOptions o;
  int64_t rank_vlm = 0, rank_expert = 0;  // --drop-*-layers-by-rank N
  std::string calibrate;
  std::string importance = "magnitude";
  int threads = 0;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      VLART_CHECK(i + 1 < argc, InvalidArgument, "prune: option ", a, " needs a value");
      return argv[++i];
    };
    if (a == "--drop-vlm-layers") {
      o.drop_vlm_layers = compress::parse_index_list(next(), "prune: --drop-vlm-layers");
    } else if (a == "--drop-expert-layers") {
      o.drop_expert_layers = compress::parse_index_list(next(), "prune: --drop-expert-layers");
    } else if (a == "--drop-vlm-layers-by-rank" || a == "--drop-expert-layers-by-rank") {
      const std::string v = next();
      char* end = nullptr;
      const long long n = std::strtoll(v.c_str(), &end, 10);
      VLART_CHECK(!v.empty() && *end == '\0' && n > 0, InvalidArgument, "prune: ", a,
                  " expects a positive number of layers, got '", v, "'");
      (a == "--drop-vlm-layers-by-rank" ? rank_vlm : rank_expert) = n;
    } else if (a == "--calibrate") {
      calibrate = next();
    } else if (a == "--importance") {
      importance = next();
      VLART_CHECK(importance == "magnitude" || importance == "activation", InvalidArgument,
                  "prune: --importance expects magnitude or activation, got '", importance, "'");
    } else if (a == "--threads") {
      const std::string v = next();
      char* end = nullptr;
      const long t = std::strtol(v.c_str(), &end, 10);
      VLART_CHECK(!v.empty() && *end == '\0' && t >= 0 && t <= 4096, InvalidArgument,
                  "prune: --threads expects an integer in [0, 4096], got '", v, "'");
      threads = static_cast<int>(t);
    } else if (a == "--prune-heads-frac") {
      o.heads_frac = parse_frac(a, next());
    } else if (a == "--prune-mlp-frac") {
      o.mlp_frac = parse_frac(a, next());
    } else if (a == "--parts") {
      const std::string v = next();
      VLART_CHECK(v == "vlm" || v == "expert" || v == "vlm,expert" || v == "expert,vlm", InvalidArgument,
                  "prune: --parts expects vlm, expert or vlm,expert, got '", v, "'");
      o.vlm = v.find("vlm") != std::string::npos;
      o.expert = v.find("expert") != std::string::npos;
    } else if (a == "--vlm-config") {
      o.vlm_config_dir = next();
    } else if (a == "--force") {
      o.force = true;
    } else if (!a.empty() && a[0] == '-') {
      throw InvalidArgument("prune: unknown option '" + a + "'");
    } else {
      pos.push_back(a);
    }
  }
  VLART_CHECK(pos.size() == 2, InvalidArgument, "prune: expected <in_dir> <out_dir>, got ", pos.size(),
              " positional argument(s)");
  const bool by_activation = importance == "activation";
  VLART_CHECK((rank_vlm == 0 && rank_expert == 0) || !calibrate.empty(), InvalidArgument,
              "prune: --drop-vlm-layers-by-rank / --drop-expert-layers-by-rank need --calibrate OBS_DIR");
  VLART_CHECK(!by_activation || !calibrate.empty(), InvalidArgument,
              "prune: --importance activation needs --calibrate OBS_DIR (the observations it is measured on)");
  VLART_CHECK(!by_activation || o.heads_frac > 0 || o.mlp_frac > 0, InvalidArgument,
              "prune: --importance applies to --prune-heads-frac / --prune-mlp-frac, and neither is given");
  VLART_CHECK(calibrate.empty() || rank_vlm > 0 || rank_expert > 0 || by_activation, InvalidArgument,
              "prune: --calibrate is used by --drop-vlm-layers-by-rank / --drop-expert-layers-by-rank N and "
              "--importance activation only");
  VLART_CHECK(rank_vlm == 0 || o.drop_vlm_layers.empty(), InvalidArgument,
              "prune: give --drop-vlm-layers or --drop-vlm-layers-by-rank, not both");
  VLART_CHECK(rank_expert == 0 || o.drop_expert_layers.empty(), InvalidArgument,
              "prune: give --drop-expert-layers or --drop-expert-layers-by-rank, not both");
  compress::CalibrationData acts;
  if (by_activation) {
    compress::CalibrateOptions co;
    co.policy.threads = threads;
    co.policy.vlm_config_dir = o.vlm_config_dir;
    std::vector<Observation> obs;
    std::vector<std::vector<float>> noise;
    {
      auto p = Policy::load(pos[0], co.policy);
      read_obs_dir(calibrate, *p, 0, &obs, &noise);
    }
    acts = compress::collect_prune_activations(pos[0], obs, noise, co);
    o.activations = &acts;
    std::printf("activation importance measured on %lld observation(s) of %s\n",
                static_cast<long long>(acts.observations), calibrate.c_str());
  }
  if (rank_vlm > 0 || rank_expert > 0) {
    // Importance on the calibration observations: the layers whose output is closest to their input
    // (highest input/output cosine) go first.
    const LayerRanking rk = rank_layers(pos[0], calibrate, threads, "", o.vlm_config_dir);
    auto take = [](const std::vector<int64_t>& order, int64_t n, const char* opt, const char* what) {
      VLART_CHECK(n < static_cast<int64_t>(order.size()), InvalidArgument, "prune: ", opt, " ", n,
                  " would drop all ", order.size(), " ", what, " layers; at least one must stay");
      std::vector<int64_t> v(order.begin(), order.begin() + n);
      std::sort(v.begin(), v.end());
      return v;
    };
    if (rank_vlm > 0) o.drop_vlm_layers = take(rk.vlm_least_important_first, rank_vlm, "--drop-vlm-layers-by-rank", "VLM");
    if (rank_expert > 0) o.drop_expert_layers = take(rk.expert_least_important_first, rank_expert, "--drop-expert-layers-by-rank", "expert");
    std::printf("ranked on %zu observation(s) of %s: dropping VLM layers %s, expert layers %s\n", rk.observations,
                calibrate.c_str(), list(o.drop_vlm_layers).c_str(), list(o.drop_expert_layers).c_str());
  }
  const compress::PruneSummary s = compress::prune_checkpoint(pos[0], pos[1], o);

  std::printf("pruned %s -> %s\n", pos[0].c_str(), pos[1].c_str());
  std::printf("dropped VLM layers: %s; dropped expert layers: %s\n", list(s.dropped_vlm).c_str(),
              list(s.dropped_expert).c_str());
  std::printf("VLM layers kept: %zu (stored index, source index, heads, MLP width, expert layer)\n", s.vlm.size());
  for (size_t i = 0; i < s.vlm.size(); ++i) {
    const compress::PrunedLayer& l = s.vlm[i];
    std::printf("  %2zu  src %2lld  heads %lld -> %lld  mlp %lld -> %lld  expert %s\n", i, (long long)l.source,
                (long long)l.heads_before, (long long)l.heads, (long long)l.mlp_before, (long long)l.mlp,
                l.expert < 0 ? "-" : (std::to_string(l.expert) + (l.self_attn ? " (self)" : " (cross)")).c_str());
  }
  std::printf("expert layers kept: %zu\n", s.expert.size());
  for (size_t i = 0; i < s.expert.size(); ++i) {
    const compress::PrunedLayer& l = s.expert[i];
    std::printf("  %2zu  src %2lld  heads %lld -> %lld  mlp %lld -> %lld\n", i, (long long)l.source,
                (long long)l.heads_before, (long long)l.heads, (long long)l.mlp_before, (long long)l.mlp);
  }
  std::printf("parameters: %lld -> %lld (%.1f%%); tensor bytes %.2f MiB -> %.2f MiB\n", (long long)s.params_before,
              (long long)s.params_after,
              s.params_before > 0 ? 100.0 * static_cast<double>(s.params_after) / static_cast<double>(s.params_before) : 0.0,
              static_cast<double>(s.bytes_before) / 1048576.0, static_cast<double>(s.bytes_after) / 1048576.0);
  if (!s.vlm_dir_found_from_output)
    std::fprintf(stderr,
                 "vlart: note: the SmolVLM config (%s) is not found from %s by its vlm_model_name; load it with "
                 "--vlm-config %s (PolicyOptions::vlm_config_dir)\n",
                 s.vlm_dir.c_str(), pos[1].c_str(), s.vlm_dir.c_str());
  return 0;
}

}  // namespace vlart::cli
