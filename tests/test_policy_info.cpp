// The model-family seam: family detection from config.json (models/registry), family options that do
// not apply are refused, and PolicyInfo / named stage timings describe what the checkpoint defines
// (camera order, dims, horizon, noise shape) on fixtures whose camera order is not alphabetical.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "models/registry.h"
#include "vlart/error.h"
#include "vlart/policy.h"
#include "vlart/scheduler.h"

namespace vlart {
namespace {
namespace fs = std::filesystem;

const std::string kRoot = std::string(VLART_TEST_DATA_DIR) + "/smolvla/";

fs::path fresh_dir(const std::string& tag) {
  const fs::path d = fs::path(::testing::TempDir()) / ("vlart_reg_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write_text(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }

// The error's message for loading `dir`, expecting error code `code`.
std::string load_error(const std::string& dir, ErrorCode code, const PolicyOptions& o = {}) {
  try {
    Policy::load(dir, o);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "loaded " << dir;
  return "";
}

void expect_has(const std::string& s, const std::vector<std::string>& needles) {
  for (const std::string& n : needles) EXPECT_NE(s.find(n), std::string::npos) << "'" << n << "' not in: " << s;
}

PolicyOptions fixture_options(const std::string& c) {
  PolicyOptions o;
  o.threads = 2;
  o.vlm_config_dir = kRoot + c + "/vlm";
  return o;
}

TEST(ModelRegistry, KnowsSmolVLA) {
  ASSERT_FALSE(model_families().empty());
  EXPECT_EQ(model_families()[0].name, "smolvla");
  EXPECT_NE(model_family_names().find("smolvla"), std::string::npos);
  EXPECT_EQ(detect_model_family(kRoot + "a_one_cam_square/checkpoint").name, "smolvla");
}

TEST(ModelRegistry, UnknownFamiliesAreFormatErrorsThatListTheKnownOnes) {
  const fs::path d = fresh_dir("detect");
  const std::string file = (d / "config.json").string();
  EXPECT_NE(load_error(d.string(), ErrorCode::kIo).find("config.json"), std::string::npos);
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {R"({"type": "groot"})", {file, "field 'type' is 'groot'", "vlart loads: smolvla, pi0, pi05"}},
      {R"({"model_type": "openvla", "architectures": ["OpenVLAForActionPrediction"]})",
       {file, "no field 'type'", "model_type \"openvla\"", "OpenVLAForActionPrediction", "vlart loads: smolvla"}},
      {R"({"hidden_size": 4})", {file, "no field 'type'", "vlart loads: smolvla"}},
      {R"({"type": 7})", {file, "field 'type' is integer 7", "expected a string"}},
      {R"([1, 2])", {file, "expected a JSON object", "array"}},
      {R"({"type": "smolvla",)", {file, "not valid JSON"}},
  };
  for (const auto& [text, needles] : cases) {
    SCOPED_TRACE(text);
    write_text(d / "config.json", text);
    expect_has(load_error(d.string(), ErrorCode::kFormat), needles);
  }
  fs::remove_all(d);
}

TEST(ModelRegistry, FamilyOptionsOutsideTheFamilyAreRefused) {
  ModelFamily bare{"bare", "test family without options", nullptr, {}};
  PolicyOptions o;
  EXPECT_NO_THROW(check_family_options(bare, o));  // defaults are never refused
  o.flow_steps = 3;
  o.visual_tokens_keep = 8;
  o.vision_reuse_threshold = 2.f;
  try {
    check_family_options(bare, o);
    ADD_FAILURE() << "accepted options a bare family does not read";
  } catch (const InvalidArgument& e) {
    expect_has(e.what(), {"flow_steps", "visual_tokens_keep", "vision_reuse", "do not apply to a bare policy"});
  }
  // SmolVLA reads all of them.
  EXPECT_NO_THROW(check_family_options(detect_model_family(kRoot + "a_one_cam_square/checkpoint"), o));
}

// The contract follows the checkpoint: cameras in config.json's order (not alphabetical), dims,
// horizon, noise shape; the stage timings of every chunk are the stages PolicyInfo names, in order.
TEST(PolicyInfo, FollowsTheCheckpoint) {
  struct Want {
    std::string c;
    std::vector<std::string> cams;
  };
  for (const Want& w : {Want{"h_three_cam_up_side_front", {"up", "side", "front"}},
                        Want{"g_two_cam_wrist_top", {"wrist", "top"}}, Want{"a_one_cam_square", {"camera1"}}}) {
    SCOPED_TRACE(w.c);
    const std::string ckpt = kRoot + w.c + "/checkpoint";
    std::ifstream in(ckpt + "/config.json");
    const nlohmann::ordered_json j = nlohmann::ordered_json::parse(in);
    PolicyOptions o = fixture_options(w.c);
    o.flow_steps = 3;
    auto p = Policy::load(ckpt, o);
    const PolicyInfo& info = p->info();
    EXPECT_EQ(info.family, "smolvla");
    ASSERT_EQ(info.cameras.size(), w.cams.size());
    for (size_t i = 0; i < w.cams.size(); ++i) {
      EXPECT_EQ(info.cameras[i].key, w.cams[i]);
      EXPECT_EQ(info.cameras[i].name, "observation.images." + w.cams[i]);
      EXPECT_EQ(info.cameras[i].height, j["resize_imgs_with_padding"][0].get<int64_t>());
      EXPECT_EQ(info.cameras[i].width, j["resize_imgs_with_padding"][1].get<int64_t>());
      EXPECT_FALSE(info.cameras[i].optional);
    }
    EXPECT_EQ(p->camera_names().size(), w.cams.size());
    EXPECT_EQ(info.state_dim, j["input_features"]["observation.state"]["shape"][0].get<int64_t>());
    EXPECT_EQ(info.action_dim, j["output_features"]["action"]["shape"][0].get<int64_t>());
    EXPECT_EQ(info.horizon, j["chunk_size"].get<int64_t>());
    ASSERT_EQ(info.noise_shape.size(), 2u);
    EXPECT_EQ(info.noise_shape[0], j["chunk_size"].get<int64_t>());
    EXPECT_EQ(info.noise_shape[1], j["max_action_dim"].get<int64_t>());
    EXPECT_EQ(p->noise_numel(), info.noise_shape[0] * info.noise_shape[1]);
    EXPECT_EQ(info.flow_steps, 3);
    EXPECT_TRUE(info.has_language);
    EXPECT_FALSE(info.emits_text);
    EXPECT_EQ(info.backend, "cpu");
    EXPECT_EQ(info.compute_dtype, DType::kF32);
    const std::vector<std::string> stages = {"preprocess", "vision", "prefix", "denoise"};
    EXPECT_EQ(info.stages, stages);

    Observation obs;
    for (const CameraInfo& c : info.cameras) obs.images[c.key] = Image{std::vector<uint8_t>(48 * 64 * 3, 90), 48, 64};
    obs.state.assign(static_cast<size_t>(info.state_dim), 0.1f);
    obs.task = "pick";
    const ActionChunk a = p->infer(obs);
    EXPECT_EQ(a.horizon, info.horizon);
    EXPECT_EQ(a.action_dim, info.action_dim);
    EXPECT_TRUE(a.text.empty());
    EXPECT_TRUE(a.tokens.empty());
    ASSERT_EQ(a.timings.stages.size(), stages.size());
    double sum = 0;
    for (size_t i = 0; i < stages.size(); ++i) {
      EXPECT_EQ(a.timings.stages[i].name, stages[i]);
      EXPECT_GE(a.timings.stages[i].ms, 0.0);
      EXPECT_EQ(a.timings.ms(stages[i]), a.timings.stages[i].ms);
      sum += a.timings.stages[i].ms;
    }
    EXPECT_GE(a.timings.total_ms, sum * 0.999);
    EXPECT_EQ(a.timings.ms("decode"), 0.0);  // a stage this family does not have

    // The scheduler's latency summaries carry the same stage names.
    Scheduler sch(*p, {});
    Scheduler::Result r = sch.submit(obs).get();
    ASSERT_EQ(r.status, Scheduler::Status::kOk) << r.message;
    const SchedulerStats st = sch.stats();
    ASSERT_EQ(st.stages.size(), stages.size());
    for (size_t i = 0; i < stages.size(); ++i) EXPECT_EQ(st.stages[i].first, stages[i]);
    EXPECT_EQ(st.stage("denoise").samples, 1u);
  }
}

}  // namespace
}  // namespace vlart

#include "serve_fixture.h"

namespace vlart {
namespace {

double rss_mib() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1 << 20);
}

// The bundled policy pads prompts to the longest (pad_language_to: longest), so every new prompt
// length builds new prefix and denoise executors. Their weights are packed once per backend and
// layout and shared: once every layout has been seen (prompts of 1..20 words: the prefix Linears go
// from the GEMV path, M <= 16, to oneDNN), longer prompts add no packed copy (the cache only
// hits), and the actions of a prompt are the same whether it comes first or after 25 others.
TEST(PackedWeights, SharedAcrossPromptLengths) {
  PolicyOptions o;
  o.threads = 2;
  o.task_cache_bytes = 0;
  auto p = Policy::load(vlart::testing::default_policy_dir(), o);
  const PolicyInfo& info = p->info();
  Observation obs;
  for (const CameraInfo& c : info.cameras) obs.images[c.key] = Image{std::vector<uint8_t>(60 * 80 * 3, 120), 60, 80};
  obs.state.assign(static_cast<size_t>(info.state_dim), 0.2f);
  const std::vector<float> noise(static_cast<size_t>(p->noise_numel()), 0.3f);
  auto task = [](int words) {
    std::string t = "pick";
    for (int i = 1; i < words; ++i) t += " up";
    return t;
  };
  obs.task = task(1);
  const std::vector<float> first = p->infer(obs, noise.data()).data;
  const double rss1 = rss_mib();
  for (int words = 2; words <= 20; ++words) {
    obs.task = task(words);
    p->infer(obs, noise.data());
  }
  const WeightCacheStats s20 = p->weight_cache_stats();
  const double rss20 = rss_mib();
  for (int words = 21; words <= 26; ++words) {  // the longest ones truncate to tokenizer_max_length
    obs.task = task(words);
    p->infer(obs, noise.data());
  }
  const WeightCacheStats s40 = p->weight_cache_stats();
  const double rss40 = rss_mib();
  std::printf("packed weights after 20 prompt lengths: %zu entries, %.2f MiB, %llu hits; after 26: %zu entries, "
              "%.2f MiB, %llu hits; RSS after 1 / 20 / 26 lengths: %.1f / %.1f / %.1f MiB\n",
              s20.entries, static_cast<double>(s20.bytes) / (1 << 20), static_cast<unsigned long long>(s20.hits),
              s40.entries, static_cast<double>(s40.bytes) / (1 << 20), static_cast<unsigned long long>(s40.hits), rss1,
              rss20, rss40);
  EXPECT_GT(s20.entries, 0u);
  EXPECT_EQ(s40.entries, s20.entries);
  EXPECT_EQ(s40.bytes, s20.bytes);
  EXPECT_EQ(s40.misses, s20.misses);
  EXPECT_GT(s40.hits, s20.hits);  // the new buckets' Linears found their packed weights
  obs.task = task(1);
  EXPECT_EQ(p->infer(obs, noise.data()).data, first);
}

}  // namespace
}  // namespace vlart

#include "models/stage_cache.h"

namespace vlart {
namespace {

// Shape-bucket executors are LRU-bounded: past the capacity the least recently *used* bucket goes
// (not the oldest built), a hit builds nothing, and a dropped bucket is rebuilt on demand.
TEST(StageCache, EvictsLeastRecentlyUsedBucket) {
  StageCache<int64_t> c(3);
  int builds = 0;
  auto make = [&] {
    ++builds;
    return std::make_unique<Stage>();
  };
  Stage* s1 = &c.get(1, make);
  c.get(2, make);
  c.get(3, make);
  EXPECT_EQ(&c.get(1, make), s1);  // hit: same stage, touched
  EXPECT_EQ(builds, 3);
  c.get(4, make);  // evicts 2 (least recently used), not 1
  EXPECT_EQ(c.size(), 3u);
  EXPECT_EQ(c.evictions(), 1u);
  EXPECT_EQ(&c.get(1, make), s1);
  EXPECT_EQ(builds, 4);
  c.get(2, make);  // rebuilt
  EXPECT_EQ(builds, 5);
  EXPECT_EQ(c.size(), 3u);
}

}  // namespace
}  // namespace vlart
