// `vlart info <model_dir>`: what a SmolVLA checkpoint contains (architecture from the configs,
// parameter counts per part from the safetensors tensors, dtypes, file sizes) and a rough f32
// activation-memory estimate.
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
#include "models/smolvla/config.h"
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

// Which part of the model a tensor belongs to (LeRobot SmolVLA naming).
std::string part_of(const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has(".vision_model.")) return "vision encoder (SigLIP)";
  if (has(".connector.")) return "connector (pixel shuffle + proj)";
  if (has(".embed_tokens.")) return "token embeddings";
  if (has(".text_model.")) return "VLM text layers";
  if (has(".lm_head.")) return "lm_head (unused at inference)";
  if (has(".lm_expert.")) return "action expert";
  if (has("state_proj") || has("action_")) return "state/action/time projections";
  if (has("normalize") || has("buffer_")) return "normaliser stats";
  return "other";
}

}  // namespace

int cmd_model_info(const char* model_dir) {
  const std::string dir = model_dir;
  VLART_CHECK(fs::is_directory(dir), NotFoundError, "info: ", dir, " is not a directory");
  const std::string vlm_name = smolvla::read_vlm_model_name(dir);
  const std::string vlm_dir = smolvla::find_vlm_dir(dir, vlm_name);
  VLART_CHECK(!vlm_dir.empty(), NotFoundError, "info: SmolVLM config dir '", vlm_name,
              "' (vlm_model_name) not found next to or above ", dir);
  const smolvla::SmolVLAConfig c = smolvla::load_config(dir, (fs::path(vlm_dir) / "config.json").string());
  const auto& v = c.vision;
  const auto& t = c.text;

  std::printf("model:        %s (SmolVLA)\n", dir.c_str());
  std::printf("vlm config:   %s\n", vlm_dir.c_str());
  std::printf("vision:       width %lld, %lld layers, %lld heads, mlp %lld, patch %lld, image %lldx%lld\n",
              (long long)v.hidden, (long long)v.layers, (long long)v.heads, (long long)v.mlp, (long long)v.patch,
              (long long)v.image_size, (long long)v.image_size);
  std::printf("              pixel-shuffle scale %d -> %lld tokens per image\n", c.scale_factor,
              (long long)c.tokens_per_image());
  std::printf("VLM text:     width %lld, %lld of %lld layers kept, %lld heads / %lld kv heads, head dim %lld, "
              "mlp %lld, vocab %lld\n",
              (long long)t.hidden, (long long)c.num_vlm_layers, (long long)t.layers, (long long)t.heads,
              (long long)t.kv_heads, (long long)t.head_dim, (long long)t.mlp, (long long)t.vocab);
  std::string pattern;
  for (int64_t l = 0; l < c.num_vlm_layers; ++l) {
    if (!pattern.empty()) pattern += ' ';
    pattern += c.expert_layer_of(l) < 0 ? '-' : (c.is_self_attn(l) ? 'S' : 'C');
  }
  std::printf("expert:       width %lld (x%.3g), %lld layers; per VLM layer: %s  (S self, C cross, - skipped)\n",
              (long long)c.expert_hidden(), c.expert_width_multiplier, (long long)c.num_expert(), pattern.c_str());
  if (c.pruned) {
    // Per stored layer: source index in the unpruned checkpoint, query heads, MLP width.
    auto row = [](const char* what, const std::vector<int64_t>& v) {
      std::string s;
      for (int64_t x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
      std::printf("  %-14s%s\n", what, s.c_str());
    };
    std::vector<int64_t> vs, vh, vm, es, eh, em;
    for (const smolvla::VlmLayerSpec& l : c.vlm_layers) {
      vs.push_back(l.source);
      vh.push_back(l.heads);
      vm.push_back(l.mlp);
    }
    for (const smolvla::ExpertLayerSpec& l : c.expert_layers) {
      es.push_back(l.source);
      eh.push_back(l.heads);
      em.push_back(l.mlp);
    }
    std::printf("pruned:       per stored layer (config.json \"pruning\")\n");
    row("VLM source", vs);
    row("VLM heads", vh);
    row("VLM mlp", vm);
    row("expert source", es);
    row("expert heads", eh);
    row("expert mlp", em);
  }
  std::printf("actions:      chunk %lld x %lld (padded to %lld), %lld flow steps\n", (long long)c.chunk_size,
              (long long)c.action_dim, (long long)c.max_action_dim, (long long)c.num_steps);
  std::printf("state:        %lld (padded to %lld)\n", (long long)c.state_dim, (long long)c.max_state_dim);
  std::string cams;
  for (const std::string& cam : c.cameras) cams += (cams.empty() ? "" : ", ") + cam;
  std::printf("cameras:      %zu: %s (checkpoint order; resized with padding to %lldx%lld)\n", c.cameras.size(),
              cams.c_str(), (long long)c.resize_h, (long long)c.resize_w);
  if (!c.empty_camera_features.empty())
    std::printf("              + %zu empty-camera placeholder(s) (empty_cameras; masked in LeRobot, not run)\n",
                c.empty_camera_features.size());
  std::printf("language:     up to %lld tokens, padding to %s\n", (long long)c.tokenizer_max_length,
              c.pad_to_max_length ? "max_length" : "longest");

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
  const char* order[] = {"vision encoder (SigLIP)", "connector (pixel shuffle + proj)", "token embeddings",
                         "VLM text layers", "action expert", "state/action/time projections",
                         "lm_head (unused at inference)", "normaliser stats", "other"};
  for (const char* name : order) {
    auto it = parts.find(name);
    if (it == parts.end()) continue;
    const auto& p = it->second;
    std::printf("  %-34s %10s  %5.1f%%  %s\n", name, human_count(p.first).c_str(), 100.0 * p.first / total,
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

  // Rough f32 activation estimate: the largest live buffers of each stage (not an exact plan).
  const double f = 4;
  const double n_cam = static_cast<double>(c.cameras.size());
  const double np = static_cast<double>((v.image_size / v.patch) * (v.image_size / v.patch));
  const double vision = n_cam * (np * (4.0 * v.hidden + v.mlp) + v.heads * np * np) * f;
  const double P = n_cam * c.tokens_per_image() + c.tokenizer_max_length + 1;
  const double prefix = (P * (4.0 * t.hidden + 2.0 * t.mlp) + t.heads * P * P) * f;
  const double kv = 2.0 * c.num_vlm_layers * P * t.kv_heads * t.head_dim * f;
  const double H = static_cast<double>(c.chunk_size), We = static_cast<double>(c.expert_hidden());
  const double denoise = (H * (4.0 * We + 2.0 * We * 4) + t.heads * H * (P + H)) * f;
  std::printf("f32 activations (estimate, prefix <= %.0f tokens): vision %s, prefix %s, prefix KV cache %s, "
              "denoise step %s\n",
              P, human_bytes(vision).c_str(), human_bytes(prefix).c_str(), human_bytes(kv).c_str(),
              human_bytes(denoise).c_str());
  return 0;
}

}  // namespace vlart::cli
