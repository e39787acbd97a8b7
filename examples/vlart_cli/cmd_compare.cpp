// `vlart compare <ref_dir> <cand_dir>... --obs OBS_DIR`: runs the reference and every candidate
// policy on the same observations and initial noise and reports, per candidate, the action error
// against the reference (cosine similarity, relative L2, max abs, per action dimension), the size of
// its *.safetensors files, the peak RSS of loading and running it, its p50 latency and the speed-up.
//
// Each model runs in its own forked child process: the peak RSS reported is that child's
// ru_maxrss (from wait4), i.e. everything it had resident at once while loading and running, plus
// the small footprint of this tool at fork time (printed as the baseline). Children run one after
// another, so models never compete for cores or memory.
//
// OBS_DIR holds one subdirectory per observation (sorted by name), each with <camera>.png per
// camera (short names, e.g. camera1.png), state.txt (comma-separated), task.txt and optionally
// noise.npy ([horizon, max_action_dim] f32). Without noise.npy the noise is drawn from --seed and
// the observation's index, identically for every model.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "models/registry.h"
#include "compress/metrics.h"
#include "compress/quantize.h"
#include "io/image_file.h"
#include "io/npy.h"
#include "vlart/error.h"
#include "vlart/policy.h"

namespace vlart::cli {
namespace {
namespace fs = std::filesystem;

struct CompareArgs {
  std::vector<std::string> dirs;  // reference first
  std::string obs_dir, tokenizer, vlm_config;
  int threads = 0, iters = 5;
  int visual_tokens = 0;  // candidates only: visual tokens kept per camera (0 = off)
  uint64_t seed = 0;
  bool json = false;
};

struct ObsSpec {
  std::string name;
  std::map<std::string, std::string> images;  // file stem -> path
  std::string state, task, noise;             // noise: path of noise.npy or empty
};

struct RunResult {
  std::vector<std::vector<float>> actions;  // per observation
  std::vector<double> latencies_ms;
  int64_t horizon = 0, action_dim = 0;
  double load_ms = 0, peak_rss_mib = 0;
};

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  VLART_CHECK(f.good(), IoError, "compare: cannot open ", p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

std::vector<float> parse_state(const std::string& s, const std::string& file) {
  std::vector<float> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    const size_t b = tok.find_first_not_of(" \t\r\n");
    VLART_CHECK(b != std::string::npos, FormatError, file, ": value ", out.size() + 1, " is empty");
    errno = 0;
    char* end = nullptr;
    const float v = std::strtof(tok.c_str() + b, &end);
    while (end && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) ++end;
    VLART_CHECK(end && *end == '\0' && errno != ERANGE, FormatError, file, ": value ", out.size() + 1, " ('", tok,
                "') is not a number");
    out.push_back(v);
  }
  VLART_CHECK(!out.empty(), FormatError, file, ": no values");
  return out;
}

std::vector<ObsSpec> scan_obs(const std::string& dir) {
  VLART_CHECK(fs::is_directory(dir), NotFoundError, "compare: --obs ", dir, " is not a directory");
  std::vector<fs::path> subs;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) subs.push_back(e.path());
  std::sort(subs.begin(), subs.end());
  VLART_CHECK(!subs.empty(), InvalidArgument, "compare: --obs ", dir,
              " holds no observation subdirectories (one per observation: <camera>.png, state.txt, task.txt)");
  std::vector<ObsSpec> out;
  for (const fs::path& p : subs) {
    ObsSpec o;
    o.name = p.filename().string();
    for (const auto& e : fs::directory_iterator(p)) {
      const std::string ext = e.path().extension().string();
      if (ext == ".png" || ext == ".jpg" || ext == ".jpeg") o.images[e.path().stem().string()] = e.path().string();
    }
    VLART_CHECK(fs::exists(p / "state.txt"), NotFoundError, "compare: observation ", p.string(), " has no state.txt");
    o.state = read_text(p / "state.txt");
    o.task = fs::exists(p / "task.txt") ? read_text(p / "task.txt") : "";
    if (fs::exists(p / "noise.npy")) o.noise = (p / "noise.npy").string();
    out.push_back(std::move(o));
  }
  return out;
}

std::vector<float> obs_noise(const ObsSpec& o, size_t index, uint64_t seed, int64_t horizon, int64_t width) {
  if (!o.noise.empty()) {
    io::NpyArray a = io::read_npy_f32(o.noise);
    const bool ok2 = a.shape.size() == 2 && a.shape[0] == horizon && a.shape[1] == width;
    const bool ok3 = a.shape.size() == 3 && a.shape[0] == 1 && a.shape[1] == horizon && a.shape[2] == width;
    std::string s;
    for (int64_t d : a.shape) s += (s.empty() ? "" : ", ") + std::to_string(d);
    VLART_CHECK(ok2 || ok3, FormatError, o.noise, ": shape [", s, "], expected [", horizon, ", ", width,
                "] (horizon, max_action_dim)");
    return a.data;
  }
  std::mt19937_64 gen(seed * 1000003ull + index);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(horizon * width));
  for (float& x : v) x = nd(gen);
  return v;
}


// The observations of `specs` for `policy`'s cameras, with their noise.
void load_observations(const std::vector<ObsSpec>& specs, const Policy& policy, uint64_t seed,
                       std::vector<Observation>* obs, std::vector<std::vector<float>>* noise) {
  for (size_t i = 0; i < specs.size(); ++i) {
    const ObsSpec& s = specs[i];
    Observation o;
    for (const CameraInfo& ci : policy.info().cameras) {
      const std::string& cam = ci.name;
      const std::string sn = cam.substr(cam.rfind('.') + 1);
      auto it = s.images.find(sn);
      if (it == s.images.end()) it = s.images.find(cam);
      if (it == s.images.end() && ci.optional) continue;  // the family runs without it (pi0: masked)
      VLART_CHECK(it != s.images.end(), NotFoundError, "observation '", s.name, "' has no image ", sn,
                  ".png for camera ", cam);
      o.images[sn] = io::load_image_rgb(it->second);
    }
    o.state = parse_state(s.state, s.name + "/state.txt");
    o.task = s.task;
    obs->push_back(std::move(o));
    noise->push_back(obs_noise(s, i, seed, policy.horizon(), vlart::cli::noise_width(policy)));
  }
}

// Body of the child process: load, run every observation once (recorded actions), then --iters
// timed calls cycling over the observations.
nlohmann::json run_model(const CompareArgs& a, const std::string& dir, const std::vector<ObsSpec>& obs,
                         int visual_tokens) {
  PolicyOptions po;
  po.threads = a.threads;
  po.visual_tokens_keep = visual_tokens;
  po.tokenizer_path = a.tokenizer;
  po.vlm_config_dir = a.vlm_config;
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Policy> p = Policy::load(dir, po);
  const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::vector<Observation> os;
  std::vector<std::vector<float>> noise;
  load_observations(obs, *p, a.seed, &os, &noise);
  nlohmann::json j;
  j["load_ms"] = load_ms;
  j["horizon"] = p->horizon();
  j["action_dim"] = p->action_dim();
  nlohmann::json acts = nlohmann::json::array();
  for (size_t i = 0; i < os.size(); ++i) acts.push_back(p->infer(os[i], noise[i].data()).data);
  j["actions"] = std::move(acts);
  std::vector<double> lat;
  for (int k = 0; k < a.iters; ++k) {
    const size_t i = static_cast<size_t>(k) % os.size();
    const auto s = std::chrono::steady_clock::now();
    p->infer(os[i], noise[i].data());
    lat.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count());
  }
  j["latencies_ms"] = lat;
  return j;
}

RunResult run_in_child(const CompareArgs& a, const std::string& dir, const std::vector<ObsSpec>& obs,
                       int visual_tokens) {
  int fds[2];
  VLART_CHECK(pipe(fds) == 0, IoError, "compare: pipe() failed: ", std::strerror(errno));
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  VLART_CHECK(pid >= 0, IoError, "compare: fork() failed: ", std::strerror(errno));
  if (pid == 0) {
    close(fds[0]);
    std::string out;
    int rc = 0;
    try {
      out = run_model(a, dir, obs, visual_tokens).dump();
    } catch (const std::exception& e) {
      out = nlohmann::json({{"error", std::string(e.what())}}).dump();
      rc = 1;
    }
    size_t off = 0;
    while (off < out.size()) {
      const ssize_t w = write(fds[1], out.data() + off, out.size() - off);
      if (w <= 0) {
        if (w < 0 && errno == EINTR) continue;
        _exit(3);
      }
      off += static_cast<size_t>(w);
    }
    close(fds[1]);
    _exit(rc);
  }
  close(fds[1]);
  std::string buf;
  char tmp[65536];
  while (true) {
    const ssize_t r = read(fds[0], tmp, sizeof tmp);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    buf.append(tmp, static_cast<size_t>(r));
  }
  close(fds[0]);
  int status = 0;
  rusage ru{};
  while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  VLART_CHECK(WIFEXITED(status), InternalError, "compare: the process running ", dir, " was killed (signal ",
              WIFSIGNALED(status) ? WTERMSIG(status) : 0, ")");
  nlohmann::json j = nlohmann::json::parse(buf, nullptr, false);
  VLART_CHECK(!j.is_discarded(), InternalError, "compare: no result from the process running ", dir, " (exit status ",
              WEXITSTATUS(status), ")");
  if (j.contains("error")) throw InvalidArgument("compare: " + dir + ": " + j["error"].get<std::string>());
  RunResult r;
  r.actions = j["actions"].get<std::vector<std::vector<float>>>();
  r.latencies_ms = j["latencies_ms"].get<std::vector<double>>();
  r.horizon = j["horizon"].get<int64_t>();
  r.action_dim = j["action_dim"].get<int64_t>();
  r.load_ms = j["load_ms"].get<double>();
  r.peak_rss_mib = static_cast<double>(ru.ru_maxrss) / 1024.0;  // KiB on Linux
  return r;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

uint64_t safetensors_bytes(const std::string& dir) {
  uint64_t s = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") s += e.file_size();
  return s;
}

std::string scheme_of(const std::string& dir) {
  const fs::path cfg = fs::path(dir) / "config.json";
  if (!fs::exists(cfg)) return "?";
  const auto q = compress::read_quant_config(cfg.string());
  std::string s = q ? q->scheme.name() : "float";
  // Pruned: the layer counts of the family's stacks (display only; a checkpoint the family cannot
  // describe shows just its scheme).
  try {
    const CheckpointDescription d = describe_checkpoint(dir);
    if (d.pruned && !d.stacks.empty()) {
      std::string counts;
      for (const LayerStack& st : d.stacks)
        counts += (counts.empty() ? "" : " / ") + std::to_string(st.layers.size()) + " " + st.name;
      s += ", pruned (" + counts + " layers)";
    }
  } catch (const Error&) {
  }
  return s;
}

CompareArgs parse(int argc, char** argv) {
  CompareArgs a;
  for (int i = 0; i < argc; ++i) {
    const std::string o = argv[i];
    auto next = [&]() -> std::string {
      VLART_CHECK(i + 1 < argc, InvalidArgument, "compare: option ", o, " needs a value");
      return argv[++i];
    };
    auto num = [&](long long lo, long long hi) {
      const std::string v = next();
      errno = 0;
      char* end = nullptr;
      const long long x = std::strtoll(v.c_str(), &end, 10);
      VLART_CHECK(!v.empty() && *end == '\0' && errno == 0 && x >= lo && x <= hi, InvalidArgument, "compare: ", o,
                  " expects an integer in [", lo, ", ", hi, "], got '", v, "'");
      return x;
    };
    if (o == "--obs") {
      a.obs_dir = next();
    } else if (o == "--threads") {
      a.threads = static_cast<int>(num(0, 4096));
    } else if (o == "--iters") {
      a.iters = static_cast<int>(num(1, 100000));
    } else if (o == "--seed") {
      a.seed = static_cast<uint64_t>(num(0, 1LL << 62));
    } else if (o == "--tokenizer") {
      a.tokenizer = next();
    } else if (o == "--vlm-config") {
      a.vlm_config = next();
    } else if (o == "--visual-tokens") {
      a.visual_tokens = static_cast<int>(num(0, 1 << 20));
    } else if (o == "--json") {
      a.json = true;
    } else if (!o.empty() && o[0] == '-') {
      throw InvalidArgument("compare: unknown option '" + o + "'");
    } else {
      a.dirs.push_back(o);
    }
  }
  VLART_CHECK(a.dirs.size() >= 2, InvalidArgument, "compare: expected <reference_dir> <candidate_dir> [...], got ",
              a.dirs.size(), " directory argument(s)");
  VLART_CHECK(!a.obs_dir.empty(), InvalidArgument, "compare: missing --obs OBS_DIR");
  for (const std::string& d : a.dirs)
    VLART_CHECK(fs::is_directory(d), NotFoundError, "compare: model directory ", d, " does not exist");
  return a;
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

}  // namespace

int cmd_compare(int argc, char** argv) {
  const CompareArgs a = parse(argc, argv);
  const std::vector<ObsSpec> obs = scan_obs(a.obs_dir);
  const double baseline_rss = rss_now_mib();
  std::vector<RunResult> runs;
  for (size_t m = 0; m < a.dirs.size(); ++m) {
    const std::string& d = a.dirs[m];
    if (!a.json) std::fprintf(stderr, "vlart compare: running %s on %zu observation(s)...\n", d.c_str(), obs.size());
    runs.push_back(run_in_child(a, d, obs, m == 0 ? 0 : a.visual_tokens));
  }
  const RunResult& ref = runs[0];
  const double ref_p50 = median(ref.latencies_ms);
  struct Row {
    std::string dir, scheme;
    compress::ActionError err;
    uint64_t size = 0;
    double rss = 0, p50 = 0, speedup = 0, load_ms = 0;
  };
  std::vector<Row> rows;
  for (size_t m = 0; m < runs.size(); ++m) {
    const RunResult& r = runs[m];
    VLART_CHECK(r.horizon == ref.horizon && r.action_dim == ref.action_dim, InvalidArgument, "compare: ", a.dirs[m],
                " produces ", r.horizon, "x", r.action_dim, " action chunks, the reference ", ref.horizon, "x",
                ref.action_dim);
    Row row;
    row.dir = a.dirs[m];
    row.scheme = scheme_of(a.dirs[m]);
    if (m > 0 && a.visual_tokens > 0) row.scheme += ", visual tokens " + std::to_string(a.visual_tokens);
    row.err = compress::action_error(ref.actions, r.actions, ref.action_dim);
    row.size = safetensors_bytes(a.dirs[m]);
    row.rss = r.peak_rss_mib;
    row.p50 = median(r.latencies_ms);
    row.speedup = row.p50 > 0 ? ref_p50 / row.p50 : 0;
    row.load_ms = r.load_ms;
    rows.push_back(std::move(row));
  }
  const char* note =
      "int8/int4 candidates run on the quantized kernels (weights kept packed, dequantized in registers); w8a8 also "
      "quantizes activations per token for its int8 matmuls (M > 16 rows); peak RSS includes loading";

  if (a.json) {
    nlohmann::ordered_json j;
    j["observations"] = obs.size();
    j["iters"] = a.iters;
    j["threads"] = a.threads;
    j["horizon"] = ref.horizon;
    j["action_dim"] = ref.action_dim;
    j["baseline_rss_mib"] = baseline_rss;
    j["note"] = note;
    nlohmann::ordered_json models = nlohmann::ordered_json::array();
    for (size_t m = 0; m < rows.size(); ++m) {
      const Row& r = rows[m];
      nlohmann::ordered_json x;
      x["dir"] = r.dir;
      x["role"] = m == 0 ? "reference" : "candidate";
      x["scheme"] = r.scheme;
      x["cosine"] = r.err.cosine;
      x["min_cosine"] = r.err.min_cosine;
      x["rel_l2"] = r.err.rel_l2;
      x["max_abs"] = r.err.max_abs;
      x["per_dim"] = {{"max_abs", r.err.dim_max_abs}, {"rel_l2", r.err.dim_rel_l2}};
      x["size_bytes"] = r.size;
      x["peak_rss_mib"] = r.rss;
      x["load_ms"] = r.load_ms;
      x["p50_ms"] = r.p50;
      x["speedup"] = r.speedup;
      models.push_back(std::move(x));
    }
    j["models"] = std::move(models);
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("## vlart compare\n\n");
  std::printf("%zu observation(s) from %s, action chunk %lld x %lld, p50 over %d warm call(s), threads %d; each model "
              "runs in its own process (baseline RSS at fork %.0f MiB).\n\n",
              obs.size(), a.obs_dir.c_str(), static_cast<long long>(ref.horizon),
              static_cast<long long>(ref.action_dim), a.iters, a.threads, baseline_rss);
  std::printf("| model | scheme | cosine | min cosine | rel L2 | max abs | size (MiB) | peak RSS (MiB) | p50 (ms) | "
              "speed-up |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t m = 0; m < rows.size(); ++m) {
    const Row& r = rows[m];
    std::printf("| %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.dir.c_str(),
                m == 0 ? " (reference)" : "", r.scheme.c_str(), fmt("%.6f", r.err.cosine).c_str(),
                fmt("%.6f", r.err.min_cosine).c_str(), fmt("%.3g", r.err.rel_l2).c_str(),
                fmt("%.3g", r.err.max_abs).c_str(), fmt("%.2f", static_cast<double>(r.size) / 1048576.0).c_str(),
                fmt("%.0f", r.rss).c_str(), fmt("%.2f", r.p50).c_str(), fmt("%.2fx", r.speedup).c_str());
  }
  for (size_t m = 1; m < rows.size(); ++m) {
    const Row& r = rows[m];
    std::printf("\n### %s: error per action dimension\n\n| dim | max abs | rel L2 |\n|---:|---:|---:|\n",
                r.dir.c_str());
    for (size_t d = 0; d < r.err.dim_max_abs.size(); ++d)
      std::printf("| %zu | %s | %s |\n", d, fmt("%.3g", r.err.dim_max_abs[d]).c_str(),
                  fmt("%.3g", r.err.dim_rel_l2[d]).c_str());
  }
  std::printf("\nNote: %s.\n", note);
  return 0;
}

LayerRanking rank_layers(const std::string& dir, const std::string& obs_dir, int threads, const std::string& tokenizer,
                         const std::string& vlm_config) {
  const std::vector<ObsSpec> obs = scan_obs(obs_dir);
  PolicyOptions po;
  po.threads = threads;
  po.tokenizer_path = tokenizer;
  po.vlm_config_dir = vlm_config;
  std::unique_ptr<Policy> p = Policy::load(dir, po);
  std::vector<double> vlm, expert;
  for (size_t i = 0; i < obs.size(); ++i) {
    const ObsSpec& s = obs[i];
    Observation o;
    for (const std::string& cam : p->camera_names()) {
      const std::string sn = cam.substr(cam.rfind('.') + 1);
      auto it = s.images.find(sn);
      VLART_CHECK(it != s.images.end(), NotFoundError, "rank-layers: observation '", s.name, "' has no image ", sn,
                  ".png for camera ", cam);
      o.images[sn] = io::load_image_rgb(it->second);
    }
    o.state = parse_state(s.state, s.name + "/state.txt");
    o.task = s.task;
    const std::vector<float> noise = obs_noise(s, i, /*seed=*/0, p->horizon(), vlart::cli::noise_width(*p));
    const LayerCosines c = p->layer_cosines(o, noise.data());
    const std::vector<double>& cv = c.at("vlm");
    const std::vector<double>& ce = c.at("expert");
    if (vlm.empty()) vlm.assign(cv.size(), 0.0);
    if (expert.empty()) expert.assign(ce.size(), 0.0);
    for (size_t l = 0; l < cv.size(); ++l) vlm[l] += cv[l] / static_cast<double>(obs.size());
    for (size_t l = 0; l < ce.size(); ++l) expert[l] += ce[l] / static_cast<double>(obs.size());
  }
  auto by_cosine = [](const std::vector<double>& v) {
    std::vector<int64_t> idx(v.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
    std::stable_sort(idx.begin(), idx.end(),
                     [&](int64_t x, int64_t y) { return v[static_cast<size_t>(x)] > v[static_cast<size_t>(y)]; });
    return idx;
  };
  LayerRanking r;
  r.observations = obs.size();
  r.vlm_least_important_first = by_cosine(vlm);
  r.expert_least_important_first = by_cosine(expert);
  r.vlm_cosine = std::move(vlm);
  r.expert_cosine = std::move(expert);
  return r;
}

// `vlart rank-layers <model_dir> --obs OBS_DIR`: per-layer input/output cosine similarity (the
// importance measure of docs/compression.md) averaged over the observations of OBS_DIR (same
// layout and noise rules as compare), printed per layer and as the layers ordered from least to
// most important (highest cosine first): candidates for `vlart prune --drop-vlm-layers`.
int cmd_rank_layers(int argc, char** argv) {
  CompareArgs a;
  std::string dir;
  for (int i = 0; i < argc; ++i) {
    const std::string o = argv[i];
    auto next = [&]() -> std::string {
      VLART_CHECK(i + 1 < argc, InvalidArgument, "rank-layers: option ", o, " needs a value");
      return argv[++i];
    };
    if (o == "--obs") {
      a.obs_dir = next();
    } else if (o == "--threads") {
      const std::string v = next();
      char* end = nullptr;
      const long t = std::strtol(v.c_str(), &end, 10);
      VLART_CHECK(!v.empty() && *end == '\0' && t >= 0 && t <= 4096, InvalidArgument,
                  "rank-layers: --threads expects an integer in [0, 4096], got '", v, "'");
      a.threads = static_cast<int>(t);
    } else if (o == "--tokenizer") {
      a.tokenizer = next();
    } else if (o == "--vlm-config") {
      a.vlm_config = next();
    } else if (o == "--json") {
      a.json = true;
    } else if (!o.empty() && o[0] == '-') {
      throw InvalidArgument("rank-layers: unknown option '" + o + "'");
    } else {
      VLART_CHECK(dir.empty(), InvalidArgument, "rank-layers: unexpected argument '", o, "'");
      dir = o;
    }
  }
  VLART_CHECK(!dir.empty(), InvalidArgument, "rank-layers: missing <model_dir>");
  VLART_CHECK(!a.obs_dir.empty(), InvalidArgument, "rank-layers: missing --obs OBS_DIR");
  const LayerRanking rk = rank_layers(dir, a.obs_dir, a.threads, a.tokenizer, a.vlm_config);
  const std::vector<double>& vlm = rk.vlm_cosine;
  const std::vector<double>& expert = rk.expert_cosine;
  const size_t n_obs = rk.observations;
  const std::vector<int64_t>& rv = rk.vlm_least_important_first;
  const std::vector<int64_t>& re = rk.expert_least_important_first;
  if (a.json) {
    nlohmann::ordered_json j;
    j["model_dir"] = dir;
    j["observations"] = n_obs;
    j["vlm_cosine"] = vlm;
    j["expert_cosine"] = expert;
    j["vlm_least_important_first"] = rv;
    j["expert_least_important_first"] = re;
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("layer input/output cosine over %zu observation(s) of %s (higher = the layer changes its input less)\n\n",
              n_obs, a.obs_dir.c_str());
  std::printf("| part | layer | cosine |\n|---|---:|---:|\n");
  for (size_t l = 0; l < vlm.size(); ++l) std::printf("| vlm | %zu | %.6f |\n", l, vlm[l]);
  for (size_t l = 0; l < expert.size(); ++l) std::printf("| expert | %zu | %.6f |\n", l, expert[l]);
  std::string sv, se;
  for (int64_t i : rv) sv += (sv.empty() ? "" : ",") + std::to_string(i);
  for (int64_t i : re) se += (se.empty() ? "" : ",") + std::to_string(i);
  std::printf("\nVLM layers, least important first: %s\nexpert layers, least important first: %s\n", sv.c_str(),
              se.c_str());
  std::printf("(dropping a VLM layer also drops its paired expert layer; the last VLM layer's output feeds nothing,\n"
              " only its K/V (read by its expert layer) do, so its cosine says little; see docs/compression.md)\n");
  return 0;
}

}  // namespace vlart::cli

namespace vlart::cli {

// Observations of an --obs directory (the layout `vlart compare` reads) for `policy`'s cameras,
// with their noise (noise.npy, or drawn from `seed` and the index as compare does).
void read_obs_dir(const std::string& dir, const Policy& policy, uint64_t seed, std::vector<Observation>* obs,
                  std::vector<std::vector<float>>* noise) {
  load_observations(scan_obs(dir), policy, seed, obs, noise);
}

}  // namespace vlart::cli
