// Options shared by `vlart run`, `vlart bench` and `vlart serve` (cmd_run.cpp parses them).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "vlart/policy.h"

namespace vlart::cli {

struct RunArgs {
  std::string model_dir;
  std::vector<std::pair<std::string, std::string>> images;  // camera name, file
  std::string state;
  bool has_state = false;
  std::string task;
  bool json = false;
  uint64_t seed = 0;
  std::string noise, noise_key, tokenizer, vlm_config;
  std::string backend = "cpu";
  int visual_tokens = 0;        // visual-token pruning: tokens kept per camera, 0 = off
  int threads = 0, steps = 0, warmup = 0;
  int iters = 10;               // bench only
  // bench only: timed call i sees a drifted observation (state + 0.01 * i per dimension, alternating
  // sign; every frame shifted i pixels right), as a moving robot would; per-call actions in --json
  bool drift = false;
  bool profile = false;         // bench only
  int64_t vision_cache_mib = 0;
  int response_max_tokens = 0;  // text-decoding policies: decode-step cap (0 = checkpoint's)
  bool response_full_length = false;  // --no-early-stop: decode every step up to the cap
  int reason_every = 0;
  std::string decode_weights;   // text-decoding policies: "" or "int8"
  float reason_scene_threshold = 0.f;
  int clients = 0;              // bench only: > 0 serves that many client threads through a Scheduler
  int max_batch = 8;            // bench --clients: Scheduler max_batch
  int64_t telemetry_every = 0;  // bench --clients: SchedulerOptions::telemetry_log_every
  // serve only
  std::string host = "127.0.0.1";
  int port = 8000, io_threads = 1, max_connections = 64;
  int64_t max_queue = 1024, max_message_mib = 64, deadline_ms = 0;
  std::string run_only_option;
  DType dtype = DType::kF32;
  PolicyOptions::AttentionPrecision attention = PolicyOptions::AttentionPrecision::kAuto;
};

// Parses the options of `cmd` ("run", "bench" or "serve"); throws InvalidArgument naming a bad one.
RunArgs parse_args(const char* cmd, int argc, char** argv);
// Policy::load with the model options of `a` (threads, steps, seed, dtype, backend, caches, ...).
std::unique_ptr<Policy> load_policy(const RunArgs& a);

}  // namespace vlart::cli
