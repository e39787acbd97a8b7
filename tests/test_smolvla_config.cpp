// SmolVLA configuration loading against the LeRobot fixtures: every case loads, cameras and
// features keep the checkpoint's order, and every malformed field is an error naming the file, the
// field, what was expected and what was found.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "models/smolvla/config.h"
#include "smolvla_fixture.h"
#include "vlart/error.h"
#include "vlart/policy.h"

using namespace vlart;
using namespace vlart::smolvla;
using namespace vlart::smolvla::fixture;

TEST(SmolVLAConfig, LoadsEveryFixtureCase) {
  for (const std::string& c : kCases) {
    SCOPED_TRACE(c);
    Case k = open_case(c);
    const auto& v = k.js["vlm"];
    const auto& p = k.js["policy"];
    EXPECT_EQ(k.cfg.vision.hidden, v["vision_hidden"].get<int64_t>());
    EXPECT_EQ(k.cfg.text.hidden, v["text_hidden"].get<int64_t>());
    EXPECT_EQ(k.cfg.text.kv_heads, v["text_kv_heads"].get<int64_t>());
    EXPECT_EQ(k.cfg.tokens_per_image(), v["tokens_per_image"].get<int64_t>());
    EXPECT_EQ(k.cfg.cameras.size(), p["cameras"].size());
    EXPECT_EQ(k.cfg.state_dim, p["state_dim"].get<int64_t>());
    EXPECT_EQ(k.cfg.action_dim, p["action_dim"].get<int64_t>());
    EXPECT_EQ(k.cfg.pad_to_max_length, p["pad_language_to"] == "max_length");
    EXPECT_EQ(k.cfg.num_vlm_layers, p["num_vlm_layers"].get<int64_t>());
    EXPECT_EQ(k.stats.action_std.size(), static_cast<size_t>(k.cfg.action_dim));
  }
}

TEST(SmolVLAConfig, ErrorsNameFileAndField) {
  EXPECT_THROW(load_config(kRoot + "does_not_exist", kRoot + "a_one_cam_square/vlm/config.json"), IoError);
  SmolVLAWeights w = SmolVLAWeights::open(kRoot + "a_one_cam_square/checkpoint");
  try {
    w.get("state_proj.weight", {1, 2});
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("model.state_proj.weight"), std::string::npos);
  }
  EXPECT_THROW(w.get("no.such.tensor"), NotFoundError);
}

namespace {

// A fresh temp directory per test (removed by the caller when done).
std::filesystem::path fresh_dir(const std::string& tag) {
  namespace fs = std::filesystem;
  const fs::path d = fs::path(::testing::TempDir()) / ("vlart_cfg_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// The fixture's config.json in file order (ordered_json), with vlm_model_name made absolute so a
// copy in a temp dir still finds its VLM.
nlohmann::ordered_json fixture_config(const std::string& c) {
  std::ifstream f(kRoot + c + "/checkpoint/config.json");
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(f);
  j["vlm_model_name"] = kRoot + c + "/vlm";
  return j;
}

void write_config(const std::filesystem::path& dir, const nlohmann::ordered_json& j) {
  std::ofstream(dir / "config.json") << j.dump(2);
}

// load_config on `j` written to `dir`; the error message, or "" when it loaded.
template <typename E>
std::string config_error(const std::filesystem::path& dir, const nlohmann::ordered_json& j,
                         const std::string& vlm = kRoot + "a_one_cam_square/vlm/config.json") {
  write_config(dir, j);
  try {
    load_config(dir.string(), vlm);
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type for " << j.dump() << ": " << e.what();
    return std::string("wrong type: ") + e.what();
  }
  ADD_FAILURE() << "loaded, expected an error: " << j.dump();
  return "";
}

void expect_mentions(const std::string& msg, const std::vector<std::string>& needles) {
  for (const std::string& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
}

}  // namespace

// LeRobot stacks the cameras in the order input_features lists them (config.image_features keeps
// the file's insertion order); sorting them (std::map-backed JSON) silently permutes the images.
TEST(SmolVLAConfig, CamerasAndFeaturesInCheckpointOrder) {
  const auto dir = fresh_dir("order");
  nlohmann::ordered_json j = fixture_config("b_three_cam_nonsquare");
  nlohmann::ordered_json in = nlohmann::ordered_json::object();
  const nlohmann::ordered_json cam = j["input_features"]["observation.images.camera1"];
  in["observation.state"] = j["input_features"]["observation.state"];
  for (const char* n : {"observation.images.wrist", "observation.images.top", "observation.images.side"})
    in[n] = cam;
  j["input_features"] = in;
  write_config(dir, j);
  const SmolVLAConfig c = load_config(dir.string(), kRoot + "b_three_cam_nonsquare/vlm/config.json");
  EXPECT_EQ(c.cameras, (std::vector<std::string>{"observation.images.wrist", "observation.images.top",
                                                 "observation.images.side"}));
  EXPECT_EQ(c.state_dim, 8);
  EXPECT_TRUE(c.empty_camera_features.empty());
  // LeRobot's empty-camera placeholders (validate_features appends them, after the state here) are
  // not cameras an observation gives; beyond empty_cameras the same name is an ordinary camera.
  j["empty_cameras"] = 1;
  j["input_features"]["observation.images.empty_camera_0"] = cam;
  j["input_features"]["observation.images.empty_camera_1"] = cam;
  write_config(dir, j);
  const SmolVLAConfig e = load_config(dir.string(), kRoot + "b_three_cam_nonsquare/vlm/config.json");
  EXPECT_EQ(e.cameras, (std::vector<std::string>{"observation.images.wrist", "observation.images.top",
                                                 "observation.images.side", "observation.images.empty_camera_1"}));
  EXPECT_EQ(e.empty_camera_features, std::vector<std::string>{"observation.images.empty_camera_0"});
  j["empty_cameras"] = 1000000000000000000;  // a huge count is just a bound (no loop over it)
  write_config(dir, j);
  EXPECT_EQ(load_config(dir.string(), kRoot + "b_three_cam_nonsquare/vlm/config.json").empty_camera_features.size(), 2u);
  std::filesystem::remove_all(dir);
}

// Every config error names the file, the field and what was expected vs what was found; sizes
// that would run (num_steps -3 ran "-3 flow steps") or crash later are rejected at load.
TEST(SmolVLAConfig, InvalidFieldsNameFileFieldExpectedAndGot) {
  const auto dir = fresh_dir("invalid");
  const std::string file = (dir / "config.json").string();
  const nlohmann::ordered_json base = fixture_config("a_one_cam_square");
  write_config(dir, base);
  ASSERT_NO_THROW(load_config(dir.string(), kRoot + "a_one_cam_square/vlm/config.json"));
  struct Bad {
    std::string field;
    nlohmann::ordered_json value;
    std::vector<std::string> needles;
  };
  using J = nlohmann::ordered_json;
  const std::vector<Bad> bad = {
      {"num_steps", -3, {"'num_steps'", "-3", "expected an integer >= 1"}},
      {"num_steps", 0, {"'num_steps'", "is 0", ">= 1"}},
      {"num_steps", "ten", {"'num_steps'", "string \"ten\"", "expected an integer"}},
      {"num_steps", 2.5, {"'num_steps'", "number 2.5", "expected an integer"}},
      {"chunk_size", 0, {"'chunk_size'", "is 0", ">= 1"}},
      {"max_state_dim", -1, {"'max_state_dim'", "-1", ">= 1"}},
      {"max_action_dim", 0, {"'max_action_dim'", "is 0", ">= 1"}},
      {"max_state_dim", 4, {"max_state_dim", "state dim 6", "4", "expected state dim <= max_state_dim"}},
      {"max_action_dim", 5, {"max_action_dim", "action dim 6", "5", "expected action dim <= max_action_dim"}},
      {"tokenizer_max_length", 0, {"'tokenizer_max_length'", "is 0", ">= 1"}},
      {"empty_cameras", -1, {"'empty_cameras'", "-1", "expected an integer >= 0"}},
      {"n_action_steps", 0, {"'n_action_steps'", "is 0", ">= 1"}},
      {"n_action_steps", 51, {"'n_action_steps'", "51", "<= chunk_size 50"}},
      {"resize_imgs_with_padding", J::array({0, 128}), {"'resize_imgs_with_padding'", "[0,128]", "sizes >= 1"}},
      {"resize_imgs_with_padding", J::array({128}), {"'resize_imgs_with_padding'", "[128]", "[height, width]"}},
      {"resize_imgs_with_padding", "128", {"'resize_imgs_with_padding'", "\"128\"", "[height, width]"}},
      {"expert_width_multiplier", 0.0, {"'expert_width_multiplier'", "0", "expected a finite number > 0"}},
      {"min_period", -1.0, {"'min_period'", "-1", "> 0"}},
      {"pad_language_to", "left", {"'pad_language_to'", "'left'", "'max_length' or 'longest'"}},
      {"num_vlm_layers", "4", {"'num_vlm_layers'", "string \"4\"", "expected an integer"}},
      {"input_features", J::array(), {"'input_features'", "array", "expected an object"}},
      {"input_features", nullptr, {"missing field 'input_features'", "expected an object"}},
      {"output_features", J::object(), {"'output_features.action'", "expected an object {type, shape}"}},
      {"vlm_model_name", 3, {"'vlm_model_name'", "integer 3", "expected a string"}},
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.field + " = " + b.value.dump());
    J j = base;
    j[b.field] = b.value;
    const std::string msg = config_error<FormatError>(dir, j);
    expect_mentions(msg, b.needles);
    expect_mentions(msg, {file});
  }
  // input_features itself missing (the raw [json.exception.out_of_range.403] before).
  {
    J j = base;
    j.erase("input_features");
    expect_mentions(config_error<FormatError>(dir, j), {file, "missing field 'input_features'"});
  }
  // Per-feature type and shape.
  struct BadFeat {
    std::string feature, key;
    J value;
    std::vector<std::string> needles;
  };
  const std::vector<BadFeat> feats = {
      {"observation.state", "shape", J::array({6, 1}),
       {"'input_features.observation.state.shape'", "[6,1]", "expected [state_dim]"}},
      {"observation.state", "shape", J::array({"6"}), {"'input_features.observation.state.shape'", "[\"6\"]"}},
      {"observation.state", "shape", J::array({0}), {"'input_features.observation.state.shape'", "[0]", ">= 1"}},
      {"observation.state", "shape", nullptr, {"missing field 'input_features.observation.state.shape'"}},
      {"observation.images.camera1", "shape", J::array({3, 128}),
       {"'input_features.observation.images.camera1.shape'", "[3,128]", "[3, height, width]"}},
      {"observation.images.camera1", "type", "PICTURE",
       {"'input_features.observation.images.camera1.type'", "'PICTURE'", "VISUAL, STATE"}},
      {"observation.images.camera1", "type", 7,
       {"input_features.observation.images.camera1", "'type'", "integer 7", "expected a string"}},
  };
  for (const BadFeat& b : feats) {
    SCOPED_TRACE(b.feature + "." + b.key + " = " + b.value.dump());
    J j = base;
    if (b.value.is_null())
      j["input_features"][b.feature].erase(b.key);
    else
      j["input_features"][b.feature][b.key] = b.value;
    expect_mentions(config_error<FormatError>(dir, j), b.needles);
  }
  {
    J j = base;
    j["input_features"].erase("observation.state");
    expect_mentions(config_error<FormatError>(dir, j), {file, "no feature of type STATE"});
    j = base;
    j["output_features"]["action"]["shape"] = J::array({6, 2});
    expect_mentions(config_error<FormatError>(dir, j), {file, "'output_features.action.shape'", "[6,2]",
                                                        "expected [action_dim]"});
  }
  // A normalisation the runtime does not apply is refused, not silently replaced by mean/std.
  {
    J j = base;
    j["normalization_mapping"]["STATE"] = "MIN_MAX";
    expect_mentions(config_error<UnsupportedError>(dir, j),
                    {file, "'normalization_mapping.STATE'", "'MIN_MAX'", "expected 'MEAN_STD'"});
    j = base;
    j["normalization_mapping"]["VISUAL"] = "MEAN_STD";
    expect_mentions(config_error<UnsupportedError>(dir, j), {file, "'normalization_mapping.VISUAL'", "'IDENTITY'"});
  }
  // Not even a JSON object.
  {
    std::ofstream(dir / "config.json") << "[1, 2]";
    try {
      load_config(dir.string(), kRoot + "a_one_cam_square/vlm/config.json");
      ADD_FAILURE() << "loaded a JSON array";
    } catch (const FormatError& e) {
      expect_mentions(e.what(), {file, "expected a JSON object", "array"});
    }
  }
  std::filesystem::remove_all(dir);
}

// A config of another architecture says so: what it found (type / model_type / architectures) and
// the families vlart loads; Policy::load reports it before looking for a SmolVLM config.
TEST(SmolVLAConfig, OtherArchitecturesAreNamedAsUnsupported) {
  const auto dir = fresh_dir("family");
  const std::string file = (dir / "config.json").string();
  using J = nlohmann::ordered_json;
  const std::vector<std::pair<J, std::vector<std::string>>> cases = {
      {J{{"type", "groot"}}, {"field 'type' is 'groot'", "not supported", "vlart loads: smolvla"}},
      {J{{"model_type", "openvla"}}, {"model_type \"openvla\"", "vlart loads: smolvla", "\"type\": \"smolvla\""}},
      {J{{"architectures", J::array({"OpenVLAForActionPrediction"})}, {"model_type", "openvla"}},
       {"model_type \"openvla\"", "architectures [\"OpenVLAForActionPrediction\"]", "vlart loads: smolvla"}},
      {J{{"model_type", "smolvlm"}, {"vlm_model_name", "x"}}, {"model_type \"smolvlm\"", "vlart loads: smolvla"}},
  };
  for (const auto& [cfg, needles] : cases) {
    SCOPED_TRACE(cfg.dump());
    write_config(dir, cfg);
    // smolvla::load_config: UnsupportedError; Policy::load: the registry's FormatError (the
    // checkpoint is not of a family vlart knows).
    for (int api = 0; api < 2; ++api) {
      try {
        if (api == 0) load_config(dir.string(), kRoot + "a_one_cam_square/vlm/config.json");
        else Policy::load(dir.string());
        ADD_FAILURE() << "loaded";
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), api == 0 ? ErrorCode::kUnsupported : ErrorCode::kFormat) << e.what();
        expect_mentions(e.what(), needles);
        expect_mentions(e.what(), {file});
      } catch (const std::exception& e) {
        ADD_FAILURE() << (api ? "Policy::load" : "load_config") << ": wrong exception type: " << e.what();
      }
    }
  }
  {
    J j = fixture_config("a_one_cam_square");
    j["type"] = 5;
    expect_mentions(config_error<FormatError>(dir, j), {file, "'type'", "integer 5", "expected a string"});
  }
  std::filesystem::remove_all(dir);
}

// The VLM config: sizes validated (a zero head count divided by zero before), sections typed.
TEST(SmolVLAConfig, InvalidVlmConfigNamesFileAndField) {
  const auto dir = fresh_dir("vlm");
  write_config(dir, fixture_config("a_one_cam_square"));
  std::ifstream f(kRoot + "a_one_cam_square/vlm/config.json");
  const nlohmann::ordered_json base = nlohmann::ordered_json::parse(f);
  const std::string vf = (dir / "vlm_config.json").string();
  struct Bad {
    std::string section, key;
    nlohmann::ordered_json value;
    std::vector<std::string> needles;
  };
  const std::vector<Bad> bad = {
      {"text_config", "num_attention_heads", 0, {"text_config", "'num_attention_heads'", "is 0", ">= 1"}},
      {"text_config", "num_key_value_heads", -1, {"text_config", "'num_key_value_heads'", "-1", ">= 1"}},
      {"text_config", "hidden_size", "96", {"text_config", "'hidden_size'", "string \"96\"", "expected an integer"}},
      {"vision_config", "patch_size", 0, {"vision_config", "'patch_size'", "is 0", ">= 1"}},
      {"vision_config", "num_attention_heads", 5, {"vision_config", "hidden_size 64", "num_attention_heads 5"}},
      {"", "scale_factor", 0, {"'scale_factor'", "is 0", ">= 1"}},
      {"", "text_config", 3, {"'text_config'", "integer 3", "expected an object"}},
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.section + "." + b.key);
    nlohmann::ordered_json v = base;
    (b.section.empty() ? v : v[b.section])[b.key] = b.value;
    std::ofstream(vf) << v.dump();
    try {
      load_config(dir.string(), vf);
      ADD_FAILURE() << "loaded";
    } catch (const FormatError& e) {
      expect_mentions(e.what(), b.needles);
      expect_mentions(e.what(), {vf});
    } catch (const std::exception& e) {
      ADD_FAILURE() << "wrong exception type: " << e.what();
    }
  }
  std::filesystem::remove_all(dir);
}

// Robustness sweep: every field of a fixture config (top level, each feature, the VLM sections) set
// to each value of a set of wrong kinds either loads or throws a vlart::Error; no nlohmann
// exception and no crash (a division by zero, an out-of-range access) gets through.
TEST(SmolVLAConfig, MutatedConfigsNeverEscapeAsRawExceptions) {
  using J = nlohmann::ordered_json;
  const auto dir = fresh_dir("sweep");
  const std::string vf = (dir / "vlm_config.json").string();
  const J base = fixture_config("b_three_cam_nonsquare");
  std::ifstream f(kRoot + "b_three_cam_nonsquare/vlm/config.json");
  const J vbase = J::parse(f);
  const std::vector<J> values = {-3, 0, 1, "x", nullptr, J::array(), J::object(), 1.5, true, J::array({0, -1})};
  int loaded = 0, rejected = 0;
  auto attempt = [&](const J& p, const J& v) {
    write_config(dir, p);
    std::ofstream(vf) << v.dump();
    try {
      load_config(dir.string(), vf);
      ++loaded;
    } catch (const vlart::Error&) {
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "raw exception for " << p.dump() << ": " << e.what();
    }
  };
  for (auto it = base.begin(); it != base.end(); ++it)
    for (const J& x : values) {
      J p = base;
      p[it.key()] = x;
      attempt(p, vbase);
    }
  for (auto it = base["input_features"].begin(); it != base["input_features"].end(); ++it)
    for (const char* key : {"type", "shape"})
      for (const J& x : values) {
        J p = base;
        p["input_features"][it.key()][key] = x;
        attempt(p, vbase);
      }
  for (const char* sec : {"vision_config", "text_config"})
    for (auto it = vbase[sec].begin(); it != vbase[sec].end(); ++it)
      for (const J& x : values) {
        J v = vbase;
        v[sec][it.key()] = x;
        attempt(base, v);
      }
  std::printf("config mutation sweep: %d loaded, %d rejected with a vlart error\n", loaded, rejected);
  EXPECT_GT(rejected, 100);
  EXPECT_GT(loaded, 0);
  std::filesystem::remove_all(dir);
}

