// LeRobot's normaliser steps as a checkpoint saves them: a processor pipeline JSON
// (policy_preprocessor.json / policy_postprocessor.json) whose "normalizer_processor" /
// "unnormalizer_processor" step names the features (type, shape), the mode per feature type
// (norm_map) and eps, with the statistics in its state_file (safetensors, "<feature>.<stat>").
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "models/blocks/normalize.h"

namespace vlart::blocks {

struct LeRobotNormStep {
  std::string json_path;   // the pipeline file it came from
  std::string state_path;  // its statistics file
  float eps = kNormEps;
  std::vector<std::string> features;                     // in the file's order
  std::map<std::string, std::string> feature_type;       // "STATE", "ACTION", "VISUAL", ...
  std::map<std::string, std::vector<int64_t>> feature_shape;
  std::map<std::string, NormMode> norm_map;              // feature type -> mode
  std::map<std::string, FeatureStats> stats;             // feature -> statistics

  // The mode of `feature` (through its type; IDENTITY when the type has none, as LeRobot does).
  NormMode mode_of(const std::string& feature) const;
  // A normaliser for `feature` with `dim` values; InvalidArgument when its statistics are missing.
  FeatureNormalizer normalizer(const std::string& feature, int64_t dim) const;
};

// The step `registry_name` of `<dir>/<json_name>`; nullopt when the file is absent. FormatError
// naming the file and field for a malformed pipeline or statistics file, NotFoundError when the
// step's state_file is missing.
std::optional<LeRobotNormStep> read_lerobot_norm_step(const std::string& dir, const std::string& json_name,
                                                      const std::string& registry_name);

}  // namespace vlart::blocks
