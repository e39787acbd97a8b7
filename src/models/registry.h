// Model-family registry: which families vlart loads, and which one a checkpoint directory holds.
// Adding a family = files under src/models/<family>/ plus one entry in registry.cpp.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/checkpoint_description.h"
#include "models/policy_model.h"

namespace vlart {

struct ModelFamily {
  std::string name;         // LeRobot config.json "type" ("smolvla")
  std::string description;  // one line for `vlart info`
  std::unique_ptr<PolicyModel> (*load)(const std::string& dir, const ModelContext& ctx) = nullptr;
  // PolicyOptions fields that only some families read, which this one reads ("flow_steps", ...);
  // a non-default value of any other is refused at load (see check_family_options).
  std::vector<std::string> options;
  // What the checkpoint tools know of its weights (models/checkpoint_description.h); nullptr: the
  // family cannot be inspected, quantized or pruned by vlart's tools.
  FamilyWeights (*weights)() = nullptr;
  CheckpointDescription (*describe)(const std::string& dir, const std::string& companion_dir) = nullptr;
};

// Every family this build loads, in registry order.
const std::vector<ModelFamily>& model_families();
// Adds a family defined outside src/models (tests, an application's own policy); call before the
// first Policy::load that needs it, from one thread. InvalidArgument for a duplicate name.
void register_model_family(ModelFamily family);
// "smolvla, ..." (for error messages).
std::string model_family_names();

// The family of the checkpoint at `dir` from its config.json: LeRobot's "type"; a Hugging Face config
// ("model_type" / "architectures") or an unknown type is a FormatError that names what was found
// and lists the families vlart knows. IoError when config.json is missing or unreadable.
const ModelFamily& detect_model_family(const std::string& dir);

// Throws InvalidArgument naming every family-specific PolicyOptions field set to a non-default
// value that `family` does not read (an option that does not apply is refused, not ignored).
void check_family_options(const ModelFamily& family, const PolicyOptions& opts);

}  // namespace vlart
