// `vlart run <model_dir> ...`: one inference of a policy from image files, a state vector and a
// task string; prints the action chunk as a table or JSON.
// `vlart bench <model_dir> ...`: the same inputs, timed over --iters warm calls: p50/p99/max per
// stage and total, resident memory after load and at peak.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>
#include <thread>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "run_args.h"
#include "core/safetensors.h"
#include "io/image_file.h"
#include "io/npy.h"
#include "vlart/error.h"
#include "vlart/policy.h"
#include "vlart/scheduler.h"

namespace vlart::cli {
namespace {

constexpr const char* kImagePrefix = "observation.images.";



long long parse_int(const std::string& opt, const std::string& s, long long lo, long long hi) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  VLART_CHECK(!s.empty() && end && *end == '\0' && errno == 0 && v >= lo && v <= hi, InvalidArgument, opt,
              " expects an integer in [", lo, ", ", hi, "], got '", s, "'");
  return v;
}

// "1.5,-2,3e-1" -> floats; every entry must be a full number (no empty entries).
std::vector<float> parse_floats(const std::string& s) {
  std::vector<float> out;
  VLART_CHECK(!s.empty(), InvalidArgument, "--state: no values given");
  size_t p = 0;
  while (true) {
    const size_t c = s.find(',', p);
    const std::string tok = s.substr(p, c == std::string::npos ? std::string::npos : c - p);
    const size_t b = tok.find_first_not_of(" \t");
    VLART_CHECK(b != std::string::npos, InvalidArgument, "--state: value ", out.size() + 1, " is missing in '", s,
                "'");
    errno = 0;
    char* end = nullptr;
    const float v = std::strtof(tok.c_str() + b, &end);
    while (end && (*end == ' ' || *end == '\t')) ++end;
    VLART_CHECK(end && *end == '\0' && end != tok.c_str() + b && errno != ERANGE, InvalidArgument, "--state: value ",
                out.size() + 1, " ('", tok, "') is not a number");
    out.push_back(v);
    if (c == std::string::npos) break;
    p = c + 1;
  }
  return out;
}

}  // namespace

RunArgs parse_args(const char* cmd, int argc, char** argv) {
  RunArgs a;
  const bool bench = std::string(cmd) == "bench";
  const bool serve = std::string(cmd) == "serve";
  if (bench) a.warmup = 2;
  for (int i = 0; i < argc; ++i) {
    const std::string o = argv[i];
    auto next = [&]() -> std::string {
      VLART_CHECK(i + 1 < argc, InvalidArgument, "option ", o, " needs a value");
      return argv[++i];
    };
    if (serve && a.run_only_option.empty() &&
        (o == "--image" || o == "--state" || o == "--task" || o == "--json" || o == "--noise" ||
         o == "--noise-key" || o == "--warmup"))
      a.run_only_option = o;
    if (o == "--image") {
      const std::string v = next();
      const size_t eq = v.find('=');
      VLART_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < v.size(), InvalidArgument,
                  "--image expects NAME=path.png, got '", v, "'");
      a.images.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    } else if (o == "--state") {
      a.state = next();
      a.has_state = true;
    } else if (o == "--task") {
      a.task = next();
    } else if (o == "--json") {
      a.json = true;
    } else if (o == "--seed") {
      a.seed = static_cast<uint64_t>(parse_int(o, next(), 0, (1LL << 62)));
    } else if (o == "--noise") {
      a.noise = next();
    } else if (o == "--noise-key") {
      a.noise_key = next();
    } else if (o == "--threads") {
      a.threads = static_cast<int>(parse_int(o, next(), 0, 4096));
    } else if (o == "--steps") {
      a.steps = static_cast<int>(parse_int(o, next(), 1, 10000));
    } else if (o == "--warmup") {
      a.warmup = static_cast<int>(parse_int(o, next(), 0, 1000));
    } else if (o == "--tokenizer") {
      a.tokenizer = next();
    } else if (o == "--vlm-config") {
      a.vlm_config = next();
    } else if (o == "--visual-tokens") {
      a.visual_tokens = static_cast<int>(parse_int(o, next(), 0, 1 << 20));
    } else if (o == "--backend") {
      a.backend = next();
    } else if (o == "--dtype") {
      const std::string d = next();
      VLART_CHECK(d == "f32" || d == "bf16", InvalidArgument, "--dtype expects f32 or bf16, got '", d, "'");
      a.dtype = d == "bf16" ? DType::kBF16 : DType::kF32;
    } else if (o == "--attention") {
      const std::string v = next();
      VLART_CHECK(v == "auto" || v == "f32" || v == "int16" || v == "int8", InvalidArgument,
                  "--attention expects auto, f32, int16 or int8, got '", v, "'");
      using AP = PolicyOptions::AttentionPrecision;
      a.attention = v == "f32" ? AP::kF32 : v == "int16" ? AP::kInt16 : v == "int8" ? AP::kInt8 : AP::kAuto;
    } else if (o == "--vision-cache") {
      a.vision_cache_mib = parse_int(o, next(), 0, 1 << 20);
    } else if (o == "--response-max-tokens") {
      a.response_max_tokens = static_cast<int>(parse_int(o, next(), 0, 1 << 20));
    } else if (o == "--decode-weights") {
      a.decode_weights = next();
      VLART_CHECK(a.decode_weights == "int8", InvalidArgument, "--decode-weights expects int8, got '",
                  a.decode_weights, "'");
    } else if (o == "--no-early-stop") {
      a.response_full_length = true;
    } else if (o == "--reason-every") {
      a.reason_every = static_cast<int>(parse_int(o, next(), 0, 1 << 30));
    } else if (o == "--reason-scene-threshold") {
      const std::string v = next();
      char* end = nullptr;
      errno = 0;
      const float f = std::strtof(v.c_str(), &end);
      VLART_CHECK(end && *end == '\0' && end != v.c_str() && errno != ERANGE && f >= 0.f && f <= 255.f,
                  InvalidArgument, "--reason-scene-threshold expects a number in [0, 255], got '", v, "'");
      a.reason_scene_threshold = f;
    } else if (bench && o == "--clients") {
      a.clients = static_cast<int>(parse_int(o, next(), 1, 1024));
    } else if (serve && o == "--host") {
      a.host = next();
    } else if (serve && o == "--port") {
      a.port = static_cast<int>(parse_int(o, next(), 0, 65535));
    } else if (serve && o == "--io-threads") {
      a.io_threads = static_cast<int>(parse_int(o, next(), 1, 256));
    } else if (serve && o == "--max-connections") {
      a.max_connections = static_cast<int>(parse_int(o, next(), 1, 1 << 20));
    } else if (serve && o == "--max-queue") {
      a.max_queue = parse_int(o, next(), 1, 1 << 24);
    } else if (serve && o == "--max-message-mb") {
      a.max_message_mib = parse_int(o, next(), 1, 2048);
    } else if (serve && o == "--deadline-ms") {
      a.deadline_ms = parse_int(o, next(), 0, 1LL << 40);
    } else if ((bench || serve) && o == "--max-batch") {
      a.max_batch = static_cast<int>(parse_int(o, next(), 1, 1024));
    } else if (bench && o == "--telemetry-every") {
      a.telemetry_every = parse_int(o, next(), 0, 1 << 30);
    } else if (bench && o == "--profile") {
      a.profile = true;
    } else if (bench && o == "--drift") {
      a.drift = true;
    } else if (bench && o == "--iters") {
      a.iters = static_cast<int>(parse_int(o, next(), 1, 100000));
    } else if (!o.empty() && o[0] == '-') {
      throw InvalidArgument(std::string(cmd) + ": unknown option '" + o + "'");
    } else {
      VLART_CHECK(a.model_dir.empty(), InvalidArgument, cmd, ": unexpected argument '", o,
                  "' (the model directory is already '", a.model_dir, "')");
      a.model_dir = o;
    }
  }
  VLART_CHECK(!a.model_dir.empty(), InvalidArgument, cmd, ": missing <model_dir>");
  VLART_CHECK(a.noise_key.empty() || !a.noise.empty(), InvalidArgument, "--noise-key needs --noise");
  VLART_CHECK(!serve || a.run_only_option.empty(), InvalidArgument, "serve: ", a.run_only_option,
              " is an option of run/bench (a served request carries its own images, state, task and noise)");
  return a;
}

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

std::string short_name(const std::string& cam) {
  return cam.rfind(kImagePrefix, 0) == 0 ? cam.substr(std::string(kImagePrefix).size()) : cam;
}

// Initial noise [horizon, max_action_dim] from a .npy or a safetensors file.
std::vector<float> load_noise(const RunArgs& a, int64_t horizon, int64_t width) {
  std::vector<int64_t> shape;
  std::vector<float> data;
  const bool npy = a.noise.size() >= 4 && a.noise.compare(a.noise.size() - 4, 4, ".npy") == 0;
  if (npy) {
    VLART_CHECK(a.noise_key.empty(), InvalidArgument, "--noise-key applies to safetensors files, not ", a.noise);
    io::NpyArray arr = io::read_npy_f32(a.noise);
    shape = arr.shape;
    data = std::move(arr.data);
  } else {
    SafetensorsFile f = SafetensorsFile::open(a.noise);
    const std::vector<std::string> names = f.names();
    VLART_CHECK(!names.empty(), FormatError, a.noise, " holds no tensors");
    const std::string key = a.noise_key.empty() ? names.front() : a.noise_key;
    VLART_CHECK(f.has(key), NotFoundError, a.noise, " has no tensor '", key, "'");
    if (a.noise_key.empty() && names.size() > 1)
      std::fprintf(stderr, "vlart: %s holds %zu tensors; using '%s' (choose with --noise-key)\n", a.noise.c_str(),
                   names.size(), key.c_str());
    Tensor t = f.get(key);
    shape = t.shape().vec();
    data = t.to_float_vector();
  }
  std::string s;
  for (int64_t d : shape) s += (s.empty() ? "" : ", ") + std::to_string(d);
  const bool ok2 = shape.size() == 2 && shape[0] == horizon && shape[1] == width;
  const bool ok3 = shape.size() == 3 && shape[0] == 1 && shape[1] == horizon && shape[2] == width;
  VLART_CHECK(ok2 || ok3, InvalidArgument, "--noise ", a.noise, ": shape [", s, "], expected [", horizon, ", ",
              width, "] or [1, ", horizon, ", ", width, "] (horizon, max_action_dim)");
  return data;
}

}  // namespace

std::unique_ptr<Policy> load_policy(const RunArgs& a) {
  PolicyOptions opts;
  opts.threads = a.threads;
  opts.flow_steps = a.steps;
  opts.noise_seed = a.seed;
  opts.tokenizer_path = a.tokenizer;
  opts.vlm_config_dir = a.vlm_config;
  opts.visual_tokens_keep = a.visual_tokens;
  opts.compute_dtype = a.dtype;
  opts.attention = a.attention;
  opts.profile = a.profile;
  opts.backend = a.backend;
  opts.vision_cache_bytes = static_cast<size_t>(a.vision_cache_mib) << 20;
  opts.response_max_tokens = a.response_max_tokens;
  opts.response_stop_at_eos = !a.response_full_length;
  opts.reason_every = a.reason_every;
  opts.decode_weights = a.decode_weights;
  opts.reason_scene_threshold = a.reason_scene_threshold;
  return Policy::load(a.model_dir, opts);
}

namespace {

Observation make_observation(const RunArgs& a, const Policy& p) {
  const Policy* policy = &p;

  // Input checks with the expected values spelled out (Policy::infer checks again).
  const std::vector<std::string> cams = policy->camera_names();
  std::vector<std::string> shorts;
  for (const std::string& c : cams) shorts.push_back(short_name(c));
  Observation obs;
  for (const auto& [name, path] : a.images) {
    bool known = false;
    for (const std::string& c : cams) known = known || name == c || name == short_name(c);
    VLART_CHECK(known, InvalidArgument, "--image: unknown camera '", name, "'; this policy expects: ",
                join(shorts));
    const std::string key = short_name(name);
    VLART_CHECK(obs.images.count(key) == 0, InvalidArgument, "--image: camera '", key, "' given twice");
    obs.images[key] = io::load_image_rgb(path);
  }
  for (const CameraInfo& c : policy->info().cameras)  // optional cameras (pi0: masked) may be left out
    VLART_CHECK(c.optional || obs.images.count(short_name(c.name)) != 0, InvalidArgument, "missing --image ",
                short_name(c.name), "=FILE (this policy expects: ", join(shorts), ")");
  VLART_CHECK(a.has_state, InvalidArgument, "missing --state (", policy->state_dim(), " comma-separated values)");
  obs.state = parse_floats(a.state);
  VLART_CHECK(static_cast<int64_t>(obs.state.size()) == policy->state_dim(), InvalidArgument, "--state has ",
              obs.state.size(), " values, this policy expects ", policy->state_dim());
  obs.task = a.task;
  return obs;
}

// Nearest-rank percentile of `v` (copied, sorted).
double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t r = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, r == 0 ? 0 : r - 1)];
}

}  // namespace

int cmd_run(int argc, char** argv) {
  const RunArgs a = parse_args("run", argc, argv);
  std::unique_ptr<Policy> policy = load_policy(a);
  const Observation obs = make_observation(a, *policy);
  const std::vector<std::string> cams = policy->camera_names();

  std::vector<float> noise;
  if (!a.noise.empty()) noise = load_noise(a, policy->horizon(), vlart::cli::noise_width(*policy));
  if (a.warmup > 0) {
    // Warm-up calls get explicit zero noise so they do not advance the seeded generator: the
    // printed chunk is the same with or without --warmup.
    const std::vector<float> zeros(static_cast<size_t>(policy->noise_numel()), 0.f);
    for (int i = 0; i < a.warmup; ++i) policy->infer(obs, zeros.data());
  }
  const ActionChunk ch = policy->infer(obs, noise.empty() ? nullptr : noise.data());
  const StageTimings& t = ch.timings;

  if (a.json) {
    nlohmann::ordered_json j;
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (int64_t r = 0; r < ch.horizon; ++r) {
      nlohmann::ordered_json row = nlohmann::ordered_json::array();
      for (int64_t c = 0; c < ch.action_dim; ++c) row.push_back(ch.data[static_cast<size_t>(r * ch.action_dim + c)]);
      rows.push_back(std::move(row));
    }
    j["actions"] = std::move(rows);
    for (const StageTime& st : t.stages) j["timings_ms"][st.name] = st.ms;
    j["timings_ms"]["total"] = t.total_ms;
    j["horizon"] = ch.horizon;
    j["action_dim"] = ch.action_dim;
    j["family"] = policy->info().family;
    if (policy->info().emits_text) {
      j["text"] = ch.text;
      j["tokens"] = ch.tokens;
    }
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("policy %s (%s): %zu camera(s), state %lld, action chunk %lld x %lld\n", a.model_dir.c_str(),
              policy->info().family.c_str(), cams.size(), static_cast<long long>(policy->state_dim()),
              static_cast<long long>(ch.horizon), static_cast<long long>(ch.action_dim));
  if (policy->info().emits_text) std::printf("text: %s\n", ch.text.c_str());
  std::printf("%5s", "step");
  for (int64_t c = 0; c < ch.action_dim; ++c) std::printf(" %10s", ("a" + std::to_string(c)).c_str());
  std::printf("\n");
  for (int64_t r = 0; r < ch.horizon; ++r) {
    std::printf("%5lld", static_cast<long long>(r));
    for (int64_t c = 0; c < ch.action_dim; ++c)
      std::printf(" %10.5f", static_cast<double>(ch.data[static_cast<size_t>(r * ch.action_dim + c)]));
    std::printf("\n");
  }
  std::printf("timings (ms, %s):", a.warmup > 0 ? "warm" : "first call, incl. graph setup; --warmup N for warm numbers");
  for (const StageTime& st : t.stages) std::printf(" %s %.2f ", st.name.c_str(), st.ms);
  std::printf(" total %.2f\n", t.total_ms);
  return 0;
}

}  // namespace vlart::cli

namespace vlart::cli {

namespace {

void print_latency(const char* name, const LatencySummary& l) {
  std::printf("%-11s %10.2f %10.2f %10.2f\n", name, l.p50_ms, l.p99_ms, l.max_ms);
}

// `vlart bench --clients N`: N client threads, each sending --iters requests one after the other
// through one Scheduler; prints throughput, client-seen latency and the scheduler's telemetry.
int bench_clients(const RunArgs& a, Policy& policy, const Observation& obs, const std::vector<float>& noise) {
  SchedulerOptions so;
  so.max_batch = a.max_batch;
  so.telemetry_log_every = static_cast<uint64_t>(a.telemetry_every);
  so.noise_seed = a.seed;
  Scheduler sched(policy, so);
  std::vector<std::vector<double>> lat(static_cast<size_t>(a.clients));
  std::vector<int> failures(static_cast<size_t>(a.clients), 0);
  for (int i = 0; i < a.warmup; ++i) sched.submit(obs).get();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < a.clients; ++c)
    threads.emplace_back([&, c] {
      for (int i = 0; i < a.iters; ++i) {
        const auto s = std::chrono::steady_clock::now();
        std::optional<std::vector<float>> nz;
        if (!noise.empty()) nz = noise;
        const Scheduler::Result r = sched.submit(obs, std::nullopt, std::move(nz)).get();
        if (r.status != Scheduler::Status::kOk) ++failures[static_cast<size_t>(c)];
        lat[static_cast<size_t>(c)].push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count());
      }
    });
  for (auto& t : threads) t.join();
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<double> all;
  int failed = 0;
  for (size_t c = 0; c < lat.size(); ++c) {
    all.insert(all.end(), lat[c].begin(), lat[c].end());
    failed += failures[c];
  }
  const SchedulerStats st = sched.stats();
  const double thr = static_cast<double>(all.size()) / wall_s;
  if (a.json) {
    nlohmann::ordered_json j;
    j["model_dir"] = a.model_dir;
    j["clients"] = a.clients;
    j["requests"] = all.size();
    j["failed"] = failed;
    j["throughput_per_s"] = thr;
    j["client_latency_ms"] = {{"p50", percentile(all, 0.5)}, {"p99", percentile(all, 0.99)},
                              {"max", percentile(all, 1.0)}};
    j["batches"] = st.batches;
    j["batch_size_histogram"] = st.batch_size_histogram;
    j["max_queue_depth"] = st.max_queue_depth;
    j["rss_peak_mib"] = rss_peak_mib();
    std::printf("%s\n", j.dump().c_str());
    return failed == 0 ? 0 : 1;
  }
  std::printf("bench %s: %d client(s) x %d requests through a Scheduler (max_batch %d), %s compute, threads %d\n",
              a.model_dir.c_str(), a.clients, a.iters, a.max_batch,
              a.dtype == DType::kBF16 ? "bf16" : "f32", a.threads);
  std::printf("throughput %.2f inferences/s over %.2f s; %d failed\n", thr, wall_s, failed);
  std::printf("%-11s %10s %10s %10s\n", "latency ms", "p50", "p99", "max");
  print_latency("client", {percentile(all, 0.5), percentile(all, 0.99), percentile(all, 1.0), all.size()});
  print_latency("queue", st.queue_wait);
  for (const auto& s : st.stages)
    if (s.first != "preprocess") print_latency(s.first.c_str(), s.second);
  print_latency("total", st.total);
  std::printf("batches %llu, sizes:", static_cast<unsigned long long>(st.batches));
  for (size_t b = 1; b < st.batch_size_histogram.size(); ++b)
    if (st.batch_size_histogram[b]) std::printf(" %zux%llu", b, static_cast<unsigned long long>(st.batch_size_histogram[b]));
  std::printf("; max queue depth %zu; RSS peak %.0f MiB\n", st.max_queue_depth, rss_peak_mib());
  return failed == 0 ? 0 : 1;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  const RunArgs a = parse_args("bench", argc, argv);
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Policy> policy = load_policy(a);
  const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const double rss_loaded = rss_now_mib();
  const Observation obs = make_observation(a, *policy);
  std::vector<float> noise;
  if (!a.noise.empty()) noise = load_noise(a, policy->horizon(), vlart::cli::noise_width(*policy));
  if (a.clients > 0) return bench_clients(a, *policy, obs, noise);
  const float* nz = noise.empty() ? nullptr : noise.data();
  double first_ms = 0;
  for (int i = 0; i < a.warmup; ++i) {
    const ActionChunk c = policy->infer(obs, nz);
    if (i == 0) first_ms = c.timings.total_ms;
  }
  // The policy's stages (PolicyInfo::stages), then the total.
  std::vector<std::string> names = policy->info().stages;
  names.push_back("total");
  const size_t ns = names.size();
  std::vector<std::vector<double>> st(ns);
  ActionChunk last;
  std::vector<double> wall;  // the caller's view of each call (stages + validation + handoff)
  std::vector<std::vector<float>> drift_actions;
  std::vector<size_t> drift_tokens;
  for (int i = 0; i < a.iters; ++i) {
    Observation o = obs;
    if (a.drift) {
      for (size_t d = 0; d < o.state.size(); ++d) o.state[d] += 0.01f * static_cast<float>(i) * (d % 2 ? -1.f : 1.f);
      for (auto& [cam, im] : o.images) {
        const int64_t W = im.width, row = im.stride(), sh = std::min<int64_t>(i, W - 1);
        std::vector<uint8_t> px(static_cast<size_t>(im.height * W * 3));
        for (int64_t y = 0; y < im.height; ++y)
          for (int64_t x = 0; x < W; ++x)
            std::memcpy(&px[static_cast<size_t>((y * W + x) * 3)], im.pixels() + y * row + std::max<int64_t>(0, x - sh) * 3, 3);
        im = Image();
        im.height = static_cast<int64_t>(px.size() / static_cast<size_t>(W * 3));
        im.width = W;
        im.data = std::move(px);
      }
    }
    const auto w0 = std::chrono::steady_clock::now();
    last = policy->infer(o, nz);
    if (a.drift) {
      drift_actions.push_back(last.data);
      drift_tokens.push_back(last.tokens.size());
    }
    wall.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - w0).count());
    const StageTimings& t = last.timings;
    for (size_t k = 0; k + 1 < ns; ++k) st[k].push_back(t.ms(names[k]));
    st[ns - 1].push_back(t.total_ms);
  }
  const double rss_peak = rss_peak_mib();
  const char* dt = a.dtype == DType::kBF16 ? "bf16" : "f32";
  if (a.json) {
    nlohmann::ordered_json j;
    j["model_dir"] = a.model_dir;
    j["dtype"] = dt;
    j["visual_tokens"] = a.visual_tokens;
    j["backend"] = policy->backend();
    j["cameras"] = policy->camera_names().size();
    j["threads"] = a.threads;
    j["iters"] = a.iters;
    j["warmup"] = a.warmup;
    j["load_ms"] = load_ms;
    j["first_call_ms"] = first_ms;
    j["family"] = policy->info().family;
    for (size_t k = 0; k < ns; ++k) {
      j["stages_ms"][names[k]] = {{"p50", percentile(st[k], 0.5)}, {"p99", percentile(st[k], 0.99)},
                                   {"max", percentile(st[k], 1.0)}};
    }
    j["samples_total_ms"] = st[ns - 1];
    j["call_wall_ms"] = {{"p50", percentile(wall, 0.5)}, {"p99", percentile(wall, 0.99)}};
    j["samples_call_wall_ms"] = wall;
    j["rss_after_load_mib"] = rss_loaded;
    j["rss_peak_mib"] = rss_peak;
    if (policy->info().emits_text) {
      j["text"] = last.text;
      j["tokens"] = last.tokens;
    }
    if (a.drift) {
      j["drift_actions"] = drift_actions;
      j["drift_tokens"] = drift_tokens;
      std::vector<double> dec;
      for (size_t k = 0; k + 1 < ns; ++k)
        if (names[k] == "decode") dec = st[k];
      j["samples_decode_ms"] = dec;
    }
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (int64_t r = 0; r < last.horizon; ++r) {
      nlohmann::ordered_json row = nlohmann::ordered_json::array();
      for (int64_t c = 0; c < last.action_dim; ++c)
        row.push_back(last.data[static_cast<size_t>(r * last.action_dim + c)]);
      rows.push_back(std::move(row));
    }
    j["actions"] = std::move(rows);
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("bench %s: %zu camera(s), %s compute on %s, threads %d, %d warm-up + %d timed calls\n",
              a.model_dir.c_str(), policy->camera_names().size(), dt, policy->backend().c_str(), a.threads, a.warmup,
              a.iters);
  if (a.visual_tokens > 0) std::printf("visual-token pruning: %d tokens kept per camera\n", a.visual_tokens);
  std::printf("load %.0f ms, first call %.1f ms\n", load_ms, first_ms);
  std::printf("%-11s %10s %10s %10s\n", "stage (ms)", "p50", "p99", "max");
  for (size_t k = 0; k < ns; ++k)
    std::printf("%-11s %10.2f %10.2f %10.2f\n", names[k].c_str(), percentile(st[k], 0.5), percentile(st[k], 0.99),
                percentile(st[k], 1.0));
  std::printf("RSS after load %.0f MiB, peak %.0f MiB\n", rss_loaded, rss_peak);
  if (a.vision_cache_mib > 0) {
    const VisionCacheStats cs = policy->vision_cache_stats();
    std::printf("vision cache: %llu hits, %llu misses, %zu entries, %.1f MiB of %.0f MiB\n",
                static_cast<unsigned long long>(cs.hits), static_cast<unsigned long long>(cs.misses), cs.entries,
                static_cast<double>(cs.bytes) / (1 << 20), static_cast<double>(cs.budget_bytes) / (1 << 20));
  }
  if (a.profile) std::printf("%s", policy->profile_report().c_str());
  return 0;
}

}  // namespace vlart::cli
