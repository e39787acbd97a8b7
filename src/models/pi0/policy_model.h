// pi0 and pi0.5 as PolicyModels, and opentau's pi05 (with its text response: reason, then act) (models/policy_model.h): a LeRobot pi0 / pi05 checkpoint directory
// as save_pretrained writes it (config.json, model.safetensors f32 or bf16, policy pre/post-processor
// pipelines with their normaliser statistics), the PaliGemma tokenizer found beside it or given by
// PolicyOptions::tokenizer_path. Observations are preprocessed as LeRobot 0.6.1 does it; missing
// cameras are left out as LeRobot masks them (at least one camera must be present).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/checkpoint_description.h"
#include "models/policy_model.h"

namespace vlart::pi0 {

std::unique_ptr<PolicyModel> load_policy_model(const std::string& dir, const ModelContext& ctx);
// models/pi0/describe.cpp (both families share the tensor layout)
FamilyWeights family_weights_pi0();
FamilyWeights family_weights_pi05();
FamilyWeights family_weights_opentau_pi05();
CheckpointDescription describe_checkpoint(const std::string& dir, const std::string& companion_dir);
// pi0.5's prompt from the task and the normalised state (LeRobot's Pi05PrepareStateTokenizerProcessorStep):
// "Task: <task stripped, '_' and newlines as spaces>, State: <256-bin indices>;\nAction: ".
std::string pi05_prompt(const std::string& task, const std::vector<float>& state_norm);
// opentau's pi05 prompt (PI05FlowMatching.prepare_language, discrete state): "Task: <task as given>, State:
// <bins>;\n", bin = clamp(int((clamp(s, -1, 1) + 1) * 128), 0, 255) in float32.
std::string opentau_prompt(const std::string& task, const std::vector<float>& state_norm);

}  // namespace vlart::pi0
