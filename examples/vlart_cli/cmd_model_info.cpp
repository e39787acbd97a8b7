// `vlart info <model_dir>`: what a checkpoint contains, through its family's description
// (models/checkpoint_description.h): architecture from the configs, parameter counts per part from
// the safetensors tensors, dtypes, file sizes and a rough f32 activation-memory estimate.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "compress/quantize.h"
#include "core/safetensors.h"
#include "models/registry.h"
#include "vlart/error.h"

namespace vlart::cli {
namespace {
namespace fs = std::filesystem;

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

std::string human_count(double n) {
  char buf[32];
  if (n >= 1e9) std::snprintf(buf, sizeof buf, "%.2fB", n / 1e9);
  else if (n >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else if (n >= 1e3) std::snprintf(buf, sizeof buf, "%.1fK", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

}  // namespace

int cmd_model_info(const char* model_dir) {
  const std::string dir = model_dir;
  VLART_CHECK(fs::is_directory(dir), NotFoundError, "info: ", dir, " is not a directory");
  const CheckpointDescription d = describe_checkpoint(dir);
  std::printf("model:        %s (%s)\n", dir.c_str(), d.weights.display_name.c_str());
  for (const std::string& line : d.summary) std::printf("%s\n", line.c_str());
  if (d.pruned && !d.stacks.empty()) {
    // Per stored layer: source index in the unpruned checkpoint, query heads, MLP width.
    auto row = [](const std::string& what, const std::vector<int64_t>& v) {
      std::string s;
      for (int64_t x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
      std::printf("  %-14s%s\n", what.c_str(), s.c_str());
    };
    std::printf("pruned:       per stored layer (config.json \"pruning\")\n");
    for (const LayerStack& st : d.stacks) {
      std::vector<int64_t> src, heads, mlp;
      for (const StackLayer& l : st.layers) {
        src.push_back(l.source);
        heads.push_back(l.heads);
        mlp.push_back(l.mlp);
      }
      row(st.name + " source", src);
      row(st.name + " heads", heads);
      row(st.name + " mlp", mlp);
    }
  }
  auto part_of = [&](const std::string& name) -> std::string {
    for (const WeightGroup& g : d.weights.groups)
      for (const std::string& p : g.patterns)
        if (compress::glob_match(p, name)) return g.name;
    return "other";
  };

  // Parameters per part and dtype, from the tensors themselves. In a quantized checkpoint a
  // `.qweight` counts its logical elements (two per byte for int4) under the scheme's name, and
  // its `.scales` / `.zeros` add bytes but no parameters.
  const auto quant = compress::read_quant_config((fs::path(dir) / "config.json").string());
  if (quant)
    std::printf("quantization: %s, %lld tensors quantized\n",
                quant->scheme.name().c_str(), static_cast<long long>(quant->quantized));
  auto ends = [](const std::string& n, const char* suf) {
    const size_t k = std::char_traits<char>::length(suf);
    return n.size() >= k && n.compare(n.size() - k, k, suf) == 0;
  };
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir);
  std::map<std::string, std::pair<double, double>> parts;  // part -> (params, bytes)
  std::map<std::string, double> dtypes;                    // dtype -> params
  double total = 0, total_bytes = 0;
  for (const std::string& n : ck.names()) {
    const SafetensorsTensorInfo& ti = ck.info(n);
    double cnt = static_cast<double>(ti.shape.numel());
    std::string dt = dtype_name(ti.dtype);
    if (quant && ends(n, compress::kQWeightSuffix)) {
      if (ti.dtype == DType::kU8) cnt *= 2;
      dt = quant->scheme.name();
    } else if (quant && (ends(n, compress::kScalesSuffix) || ends(n, compress::kZerosSuffix))) {
      cnt = 0;
    }
    auto& p = parts[part_of(n)];
    p.first += cnt;
    p.second += static_cast<double>(ti.nbytes());
    if (cnt > 0) dtypes[dt] += cnt;
    total += cnt;
    total_bytes += static_cast<double>(ti.nbytes());
  }
  std::printf("parameters:   %s in %zu tensors (%s)\n", human_count(total).c_str(), ck.names().size(),
              human_bytes(total_bytes).c_str());
  // Pipeline order first, anything unexpected after.
  std::vector<std::string> order;
  for (const WeightGroup& g : d.weights.groups) order.push_back(g.name);
  order.push_back("other");
  for (const std::string& name : order) {
    auto it = parts.find(name);
    if (it == parts.end()) continue;
    const auto& p = it->second;
    std::printf("  %-34s %10s  %5.1f%%  %s\n", name.c_str(), human_count(p.first).c_str(), 100.0 * p.first / total,
                human_bytes(p.second).c_str());
  }
  std::string dts;
  for (const auto& [d, n] : dtypes) dts += (dts.empty() ? "" : ", ") + d + " " + human_count(n);
  std::printf("dtypes:       %s\n", dts.c_str());

  std::printf("files:\n");
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(fs::relative(e.path(), dir));
  std::sort(files.begin(), files.end());
  double on_disk = 0;
  for (const fs::path& f : files) {
    const double sz = static_cast<double>(fs::file_size(fs::path(dir) / f));
    on_disk += sz;
    std::printf("  %-64s %11s\n", f.string().c_str(), human_bytes(sz).c_str());
  }
  std::printf("  %-64s %11s\n", "(total)", human_bytes(on_disk).c_str());

  if (!d.activation_bytes.empty()) {
    std::string est;
    for (const auto& [stage, bytes] : d.activation_bytes)
      est += (est.empty() ? "" : ", ") + stage + " " + human_bytes(bytes);
    std::printf("f32 activations (estimate): %s\n", est.c_str());
  }
  return 0;
}

}  // namespace vlart::cli
