#include "vlart/policy.h"

#include <algorithm>
#include <mutex>
#include <random>

#include "core/log.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/packed_cache.h"
#include "models/registry.h"
#include "runtime/compute_thread.h"
#include "runtime/telemetry.h"
#include "vlart/error.h"

namespace vlart {

// The policy's noise: standard normal floats from its mt19937_64 generator.
static void draw_normal(std::mt19937_64& rng, std::vector<float>& out) {
  std::normal_distribution<float> nd(0.f, 1.f);
  for (float& v : out) v = nd(rng);
}

// What every family shares. Members are destroyed in reverse order: the model (its executors use
// the backends) goes before the backends, both before the compute thread.
struct Policy::Impl {
  std::unique_ptr<ComputeThread> compute;  // every graph run happens on this one thread
  std::unique_ptr<Backend> cpu;            // always present (fallback)
  std::unique_ptr<Backend> gpu;            // CUDA when selected
  std::unique_ptr<PolicyModel> model;
  std::mt19937_64 rng;
  VisionFeatureCache vcache;
  TaskCache tcache;
  // Telemetry log (PolicyOptions::telemetry_log_every): stage-time sums since the last line.
  uint64_t tel_every = 0;
  LogLevel tel_level = LogLevel::kInfo;
  std::mutex tel_m;
  uint64_t tel_count = 0;
  StageTimings tel_sum;

  InferCaches caches() { return {&vcache, &tcache}; }
  // Initial noise for one observation: the caller's, or drawn from the policy's generator.
  const float* noise_for(const float* given, std::vector<float>& buf) {
    const int64_t n = model->info().noise_numel();
    if (n == 0 || given) return given;
    buf.resize(static_cast<size_t>(n));
    draw_normal(rng, buf);
    return buf.data();
  }
};

// Caller's thread, after an inference, no lock held while formatting: a telemetry line when due.
static void note_telemetry(const Policy& p, Policy::Impl& m, const std::vector<ActionChunk>& chunks) {
  if (m.tel_every == 0) return;
  uint64_t n = 0;
  StageTimings sum;
  {
    std::lock_guard<std::mutex> lk(m.tel_m);
    for (const ActionChunk& c : chunks) {
      for (const StageTime& st : c.timings.stages) m.tel_sum.set(st.name, m.tel_sum.ms(st.name) + st.ms);
      m.tel_sum.total_ms += c.timings.total_ms;
    }
    m.tel_count += chunks.size();
    if (m.tel_count < m.tel_every) return;
    n = m.tel_count;
    sum = m.tel_sum;
    m.tel_count = 0;
    m.tel_sum = StageTimings();
  }
  const spdlog::level::level_enum lvl = to_spdlog(m.tel_level);
  if (!logger().should_log(lvl)) return;
  const double k = 1.0 / static_cast<double>(n);
  std::string stages;
  for (const StageTime& st : sum.stages) stages += fmt::format("{} {:.2f} ", st.name, st.ms * k);
  logger().log(lvl, "policy telemetry: {} inferences, mean ms: {}total {:.2f}; {}", n, stages, sum.total_ms * k,
               detail::format_caches(p));
}

Policy::Policy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WeightCacheStats Policy::weight_cache_stats() const {
  const PackedCacheStats s = cpu_packed_cache_stats(*impl_->cpu);
  WeightCacheStats w;
  w.hits = s.hits;
  w.misses = s.misses;
  w.entries = s.entries;
  w.bytes = s.bytes;
  return w;
}
Policy::~Policy() = default;

std::unique_ptr<Policy> Policy::load(const std::string& dir, const PolicyOptions& opts) {
  VLART_CHECK(opts.compute_dtype == DType::kF32 || opts.compute_dtype == DType::kBF16, UnsupportedError,
              "Policy::load: compute dtype ", dtype_name(opts.compute_dtype), " is not supported (f32 or bf16)");
  VLART_CHECK(opts.max_batch >= 1, InvalidArgument, "Policy::load: max_batch must be >= 1, got ", opts.max_batch);
  VLART_CHECK(opts.backend == "cpu" || opts.backend == "cuda" || opts.backend == "auto", InvalidArgument,
              "Policy::load: backend '", opts.backend, "' is not one of cpu, cuda, auto");
  to_spdlog(opts.telemetry_log_level);  // throws InvalidArgument for a bad level
  const ModelFamily& family = detect_model_family(dir);
  check_family_options(family, opts);
  auto impl = std::make_unique<Impl>();
  impl->compute = std::make_unique<ComputeThread>();
  impl->compute->run([&] {
    // Backends once per policy, on the thread that runs every graph (its OpenMP pool).
    CpuBackendOptions co;
    co.threads = opts.threads;
    impl->cpu = make_cpu_backend(co);
    if (opts.backend != "cpu") {
      std::string why;
      impl->gpu = make_cuda_backend({}, &why);
      VLART_CHECK(impl->gpu != nullptr || opts.backend == "auto", UnsupportedError,
                  "Policy::load: backend 'cuda' requested but no usable CUDA backend: ", why);
    }
    ModelContext ctx;
    ctx.options = &opts;
    if (impl->gpu) ctx.placement.push_back(impl->gpu.get());
    ctx.placement.push_back(impl->cpu.get());
    ctx.backend_names = impl->gpu ? "cuda+cpu" : "cpu";
    impl->model = family.load(dir, ctx);
    if (opts.linear_input_observer) impl->model->set_linear_observer(opts.linear_input_observer);
  });
  impl->vcache.set_budget(opts.vision_cache_bytes);
  impl->tcache.set_budget(opts.task_cache_bytes);
  impl->tel_every = opts.telemetry_log_every;
  impl->tel_level = opts.telemetry_log_level;
  impl->rng.seed(opts.noise_seed);
  return std::unique_ptr<Policy>(new Policy(std::move(impl)));
}

const PolicyInfo& Policy::info() const { return impl_->model->info(); }

void Policy::validate(const Observation& obs) const { impl_->model->validate(obs, "Policy::validate"); }

ActionChunk Policy::infer(const Observation& obs, const float* noise) {
  ActionChunk out;
  impl_->compute->run([&] {
    Impl& m = *impl_;
    m.model->validate(obs, "Policy::infer");
    std::vector<float> buf;
    std::vector<ActionChunk> r =
        m.model->infer({{&obs, m.noise_for(noise, buf)}}, m.caches(), [](size_t) { return std::string("Policy::infer"); });
    out = std::move(r.at(0));
  });
  if (impl_->tel_every > 0) note_telemetry(*this, *impl_, {out});
  return out;
}

std::vector<ActionChunk> Policy::infer_batch(const std::vector<Observation>& obs, const float* noise) {
  std::vector<ActionChunk> out;
  impl_->compute->run([&] {
    Impl& m = *impl_;
    auto where = [](size_t i) { return "Policy::infer_batch: observation " + std::to_string(i); };
    for (size_t i = 0; i < obs.size(); ++i) m.model->validate(obs[i], where(i));
    const int64_t n_noise = m.model->info().noise_numel();
    std::vector<std::vector<float>> bufs(obs.size());
    std::vector<InferItem> items(obs.size());
    for (size_t i = 0; i < obs.size(); ++i)
      items[i] = {&obs[i], m.noise_for(noise ? noise + static_cast<int64_t>(i) * n_noise : nullptr, bufs[i])};
    if (!items.empty()) out = m.model->infer(items, m.caches(), where);
  });
  note_telemetry(*this, *impl_, out);
  return out;
}

std::vector<std::string> Policy::camera_names() const {
  std::vector<std::string> v;
  for (const CameraInfo& c : info().cameras) v.push_back(c.name);
  return v;
}
int64_t Policy::state_dim() const { return info().state_dim; }
int64_t Policy::action_dim() const { return info().action_dim; }
int64_t Policy::horizon() const { return info().horizon; }
int64_t Policy::noise_numel() const { return info().noise_numel(); }
std::vector<float> Policy::seeded_noise(uint64_t seed) const {
  std::mt19937_64 rng(seed);
  std::vector<float> out(static_cast<size_t>(info().noise_numel()));
  draw_normal(rng, out);
  return out;
}
DType Policy::compute_dtype() const { return info().compute_dtype; }
std::string Policy::backend() const { return info().backend; }

VisionCacheStats Policy::vision_cache_stats() const { return impl_->vcache.counters(); }
TaskCacheStats Policy::task_cache_stats() const { return impl_->tcache.counters(); }
VisionReuseStats Policy::vision_reuse_stats() const { return impl_->model->vision_reuse_stats(); }
void Policy::clear_vision_cache() {
  impl_->vcache.clear();
  impl_->model->clear_caches("");
  impl_->tcache.clear();
}
void Policy::clear_vision_cache(const std::string& robot_id) {
  impl_->vcache.clear(robot_id + '\x1f');
  impl_->model->clear_caches(robot_id + '\x1f');
}

LayerCosines Policy::layer_cosines(const Observation& obs, const float* noise) {
  LayerCosines r;
  impl_->compute->run([&] {
    Impl& m = *impl_;
    m.model->validate(obs, "Policy::layer_cosines");
    std::vector<float> buf;
    r = m.model->layer_cosines(obs, m.noise_for(noise, buf));
  });
  return r;
}

std::string Policy::profile_report() const { return impl_->model->profile_report(); }

}  // namespace vlart
