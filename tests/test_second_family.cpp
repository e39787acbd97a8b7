// A second model family added without touching the runtime: a test-only state-to-action MLP policy
// ("toy_state_mlp": no cameras, no prompt, no noise) implemented against models/policy_model.h,
// registered with register_model_family, loaded by Policy::load from its own checkpoint directory
// (config.json + model.safetensors), and run through every layer above the models: Policy,
// infer_batch, Scheduler and the C ABI. It proves the seam carries a family whose contract differs
// from SmolVLA's in every optional part (PolicyInfo without cameras, language or noise; its own stage
// names; family options it does not read are refused).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/executor.h"
#include "core/graph.h"
#include "core/safetensors.h"
#include "models/registry.h"
#include "vlart/error.h"
#include "vlart/policy.h"
#include "vlart/scheduler.h"
#include "vlart/vlart.h"

namespace vlart {
namespace {
namespace fs = std::filesystem;

constexpr const char* kToy = "toy_state_mlp";

// actions = fc2(silu(fc1(state))), reshaped [horizon, action_dim].
class ToyStateMlp final : public PolicyModel {
 public:
  ToyStateMlp(const std::string& dir, const ModelContext& ctx) {
    std::ifstream in(fs::path(dir) / "config.json");
    const nlohmann::json j = nlohmann::json::parse(in);
    info_.family = kToy;
    info_.state_dim = j.at("state_dim").get<int64_t>();
    info_.action_dim = j.at("action_dim").get<int64_t>();
    info_.horizon = j.at("horizon").get<int64_t>();
    info_.stages = {"preprocess", "head"};
    info_.backend = ctx.backend_names;
    weights_ = SafetensorsFile::open((fs::path(dir) / "model.safetensors").string());
    Graph g;
    const ValueId x = g.input("state", {1, info_.state_dim}, DType::kF32);
    ValueId h = g.linear(x, g.weight("fc1.weight", weights_.get("fc1.weight")), g.weight("fc1.bias", weights_.get("fc1.bias")),
                         Activation::kSilu);
    g.mark_output(g.linear(h, g.weight("fc2.weight", weights_.get("fc2.weight")),
                           g.weight("fc2.bias", weights_.get("fc2.bias"))));
    exec_ = std::make_unique<Executor>(g, ctx.placement);
  }
  const PolicyInfo& info() const override { return info_; }
  void validate(const Observation& obs, const std::string& where) const override {
    VLART_CHECK(obs.images.empty(), InvalidArgument, where, ": unknown camera '", obs.images.begin()->first,
                "' (this policy has no cameras)");
    VLART_CHECK(static_cast<int64_t>(obs.state.size()) == info_.state_dim, InvalidArgument, where, ": state has ",
                obs.state.size(), " values, expected ", info_.state_dim);
  }
  std::vector<ActionChunk> infer(const std::vector<InferItem>& items, const InferCaches&,
                                 const std::function<std::string(size_t)>&) override {
    std::vector<ActionChunk> out;
    for (const InferItem& it : items) {
      EXPECT_EQ(it.noise, nullptr);  // the runtime draws no noise for a policy without one
      auto t0 = std::chrono::steady_clock::now();
      std::copy(it.obs->state.begin(), it.obs->state.end(), exec_->input("state").data<float>());
      const double pre = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      exec_->run();
      ActionChunk c;
      c.horizon = info_.horizon;
      c.action_dim = info_.action_dim;
      c.data = exec_->output(0).to_float_vector();
      const double all = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      c.timings.set("preprocess", pre);
      c.timings.set("head", all - pre);
      c.timings.total_ms = all;
      out.push_back(std::move(c));
    }
    return out;
  }

 private:
  PolicyInfo info_;
  SafetensorsFile weights_;
  std::unique_ptr<Executor> exec_;
};

struct ToyCheckpoint {
  fs::path dir;
  int64_t S = 5, A = 3, H = 4, Hd = 16;
  std::vector<float> w1, b1, w2, b2;
};

ToyCheckpoint write_toy(const std::string& tag) {
  ToyCheckpoint c;
  c.dir = fs::path(::testing::TempDir()) / ("vlart_toy_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(c.dir);
  fs::create_directories(c.dir);
  std::ofstream(c.dir / "config.json") << nlohmann::json{{"type", kToy}, {"state_dim", c.S}, {"action_dim", c.A},
                                                         {"horizon", c.H}}
                                              .dump();
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> ud(-0.5f, 0.5f);
  auto fill = [&](std::vector<float>& v, int64_t n) {
    v.resize(static_cast<size_t>(n));
    for (float& x : v) x = ud(rng);
  };
  fill(c.w1, c.Hd * c.S);
  fill(c.b1, c.Hd);
  fill(c.w2, c.H * c.A * c.Hd);
  fill(c.b2, c.H * c.A);
  write_safetensors((c.dir / "model.safetensors").string(),
                    {{"fc1.weight", Tensor::from_vector(c.w1, {c.Hd, c.S})},
                     {"fc1.bias", Tensor::from_vector(c.b1, {c.Hd})},
                     {"fc2.weight", Tensor::from_vector(c.w2, {c.H * c.A, c.Hd})},
                     {"fc2.bias", Tensor::from_vector(c.b2, {c.H * c.A})}});
  return c;
}

std::vector<double> reference(const ToyCheckpoint& c, const std::vector<float>& s) {
  std::vector<double> h(static_cast<size_t>(c.Hd)), y(static_cast<size_t>(c.H * c.A));
  for (int64_t i = 0; i < c.Hd; ++i) {
    double a = c.b1[static_cast<size_t>(i)];
    for (int64_t k = 0; k < c.S; ++k) a += double(c.w1[static_cast<size_t>(i * c.S + k)]) * s[static_cast<size_t>(k)];
    h[static_cast<size_t>(i)] = a / (1.0 + std::exp(-a));
  }
  for (int64_t o = 0; o < c.H * c.A; ++o) {
    double a = c.b2[static_cast<size_t>(o)];
    for (int64_t i = 0; i < c.Hd; ++i) a += double(c.w2[static_cast<size_t>(o * c.Hd + i)]) * h[static_cast<size_t>(i)];
    y[static_cast<size_t>(o)] = a;
  }
  return y;
}

void register_toy_once() {
  static const bool done = [] {
    register_model_family({kToy, "test-only state MLP",
                           [](const std::string& dir, const ModelContext& ctx) -> std::unique_ptr<PolicyModel> {
                             return std::make_unique<ToyStateMlp>(dir, ctx);
                           },
                           {}});
    return true;
  }();
  (void)done;
}

TEST(SecondFamily, LoadsAndRunsThroughEveryLayer) {
  register_toy_once();
  EXPECT_NE(model_family_names().find(kToy), std::string::npos);
  EXPECT_THROW(register_model_family({kToy, "dup", model_families()[0].load, {}}), InvalidArgument);
  const ToyCheckpoint c = write_toy("run");
  PolicyOptions o;
  o.threads = 1;
  auto p = Policy::load(c.dir.string(), o);
  const PolicyInfo& info = p->info();
  EXPECT_EQ(info.family, kToy);
  EXPECT_TRUE(info.cameras.empty());
  EXPECT_TRUE(info.noise_shape.empty());
  EXPECT_EQ(p->noise_numel(), 0);
  EXPECT_FALSE(info.has_language);
  EXPECT_EQ(info.stages, (std::vector<std::string>{"preprocess", "head"}));

  Observation obs;
  obs.state = {0.1f, -0.4f, 0.9f, 0.3f, -0.2f};
  const ActionChunk a = p->infer(obs);
  ASSERT_EQ(a.horizon, c.H);
  ASSERT_EQ(a.action_dim, c.A);
  const std::vector<double> ref = reference(c, obs.state);
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(a.data[i], ref[i], 1e-5) << i;
  EXPECT_EQ(a.timings.stages.size(), 2u);
  EXPECT_EQ(a.timings.stages[1].name, "head");

  // infer_batch and the Scheduler work from PolicyInfo alone (no noise to draw, its own stages).
  const std::vector<ActionChunk> b = p->infer_batch({obs, obs});
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[1].data, a.data);
  {
    Scheduler sch(*p, {});
    Scheduler::Result r = sch.submit(obs).get();
    ASSERT_EQ(r.status, Scheduler::Status::kOk) << r.message;
    EXPECT_EQ(r.chunk.data, a.data);
    EXPECT_EQ(sch.stats().stage("head").samples, 1u);
    Observation bad = obs;
    bad.state.pop_back();
    Scheduler::Result rb = sch.submit(bad).get();
    EXPECT_EQ(rb.status, Scheduler::Status::kInvalid);
    EXPECT_NE(rb.message.find("expected 5"), std::string::npos) << rb.message;
  }
  // A camera the family does not have is the family's error.
  Observation cam = obs;
  cam.images["top"] = Image{std::vector<uint8_t>(12, 0), 2, 2};
  EXPECT_THROW(p->infer(cam), InvalidArgument);
  // Layer probes are a capability this family does not have.
  EXPECT_THROW(p->layer_cosines(obs), UnsupportedError);

  // Family options it does not read are refused, naming them.
  PolicyOptions steps = o;
  steps.flow_steps = 3;
  steps.visual_tokens_keep = 4;
  try {
    Policy::load(c.dir.string(), steps);
    ADD_FAILURE() << "loaded with options the family does not read";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("flow_steps, visual_tokens_keep do not apply to a toy_state_mlp policy"),
              std::string::npos)
        << e.what();
  }

  // The C ABI: no noise, family name, the result handle.
  vlart_policy* cp = nullptr;
  ASSERT_EQ(vlart_policy_open(c.dir.string().c_str(), nullptr, &cp), VLART_OK) << vlart_last_error();
  EXPECT_STREQ(vlart_policy_family(cp), kToy);
  int nl = -1, mad = -1;
  ASSERT_EQ(vlart_policy_noise_len(cp, &nl), VLART_OK);
  EXPECT_EQ(nl, 0);
  ASSERT_EQ(vlart_policy_dims(cp, nullptr, nullptr, nullptr, nullptr, &mad), VLART_OK);
  EXPECT_EQ(mad, 0);
  vlart_result* r = nullptr;
  ASSERT_EQ(vlart_policy_infer_ex(cp, nullptr, 0, obs.state.data(), 5, "", nullptr, 0, &r), VLART_OK)
      << vlart_last_error();
  int h = 0, ad = 0;
  const float* acts = vlart_result_actions(r, &h, &ad);
  EXPECT_EQ(std::vector<float>(acts, acts + h * ad), a.data);
  EXPECT_STREQ(vlart_result_stage_name(r, 1), "head");
  vlart_result_free(r);
  vlart_policy_free(cp);
  fs::remove_all(c.dir);
}

}  // namespace
}  // namespace vlart
