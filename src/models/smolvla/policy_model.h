// SmolVLA as a PolicyModel (models/policy_model.h): a LeRobot SmolVLA checkpoint directory loaded as
// saved (config.json + the SmolVLM config it names, model.safetensors, normaliser stats, tokenizer),
// observations validated and preprocessed as LeRobot does, the vision tower / prefix / flow stages
// run by SmolVLAModel, actions un-normalised.
#pragma once

#include <memory>
#include <string>

#include "models/checkpoint_description.h"
#include "models/policy_model.h"

namespace vlart::smolvla {

// Whether config.json `cfg_type` (LeRobot's "type") names this family.
inline constexpr const char* kFamilyName = "smolvla";

std::unique_ptr<PolicyModel> load_policy_model(const std::string& dir, const ModelContext& ctx);
// models/smolvla/describe.cpp
FamilyWeights family_weights();
CheckpointDescription describe_checkpoint(const std::string& dir, const std::string& vlm_config_dir);

}  // namespace vlart::smolvla
