// Public inference API for vision-language-action policies loaded from a checkpoint directory
// (LeRobot / Hugging Face layout; the family is detected from config.json, see PolicyInfo::family).
//
//   vlart::PolicyOptions o;  o.threads = 4;
//   auto policy = vlart::Policy::load("path/to/checkpoint", o);
//   const vlart::PolicyInfo& info = policy->info();   // cameras, dims, horizon, noise shape, stages
//   vlart::Observation obs;  obs.images["camera1"] = {rgb_bytes, 480, 640};
//   obs.state = {...};  obs.task = "pick up the cube";
//   vlart::ActionChunk a = policy->infer(obs);   // a.data: horizon x action_dim, unnormalised
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vlart/cache_stats.h"
#include "vlart/dtype.h"
#include "vlart/log.h"

namespace vlart {

class Tensor;  // vlart/tensor.h (PolicyOptions::linear_input_observer)

// Options of Policy::load. Most apply to every family; those only some families read (flow_steps,
// attention, max_batch, vision_cache_bytes, visual_tokens_keep, vision_reuse_*, tokenizer_path,
// vlm_config_dir; today all of them are SmolVLA's) are refused with InvalidArgument, naming them, by a
// family that does not read them: a non-default value is never silently ignored.
struct PolicyOptions {
  // "cpu"; "cuda": GPU first, with the CPU running the ops the CUDA backend does not implement yet
  // (experimental: compiled and unit-tested, not yet validated end to end on a GPU); "auto": cuda
  // when a usable GPU is present, else cpu. "cuda" without a GPU is an UnsupportedError.
  std::string backend = "cpu";
  int threads = 0;                    // 0 = all hardware threads (CPU backend)
  // f32, or bf16: weights converted to bf16 once at load, the vision tower, VLM layers and action
  // expert compute in bf16 (f32 accumulation), while the flow state, the action/time MLP, the final
  // norm and action_out_proj stay f32. Its action error against f32 is bounded in test_smolvla.
  DType compute_dtype = DType::kF32;
  int flow_steps = 0;                 // 0 = num_steps from the checkpoint config
  // Quantized checkpoints (vlart quantize) keep their int8/int4 weights packed and run on the
  // quantized kernels (weight-only int8/int4 dequantize in registers; w8a8 quantizes activations
  // per token for its int8 matmuls). true = dequantize every weight to f32 at load instead (the
  // reference for comparisons; no memory or speed gain).
  bool dequantize_weights = false;
  // Attention products: kAuto follows the checkpoint's "quantization" section ("attention": "f32",
  // "int16" or "int8"; `vlart quantize --scheme w8a8` writes int8 by default) and is f32 without one.
  // On CPUs with AVX512_VNNI (elsewhere, and on the CUDA backend, f32):
  //   kInt16: q.k and p.v with int16-quantized operands (per query row / key / value column
  //           scales, exact int32 sums, f32 softmax): ~1e-4 relative error, 1.15-1.4x f32 speed.
  //   kInt8:  q.k and p.v with int8 operands (vpdpbusd; softmax weights in 255 steps of the
  //           running maximum, v per column): ~1-2% relative error per attention output, about
  //           1.7x (2 threads) to 2.1x (1 thread) f32 speed on the SigLIP shape.
  // kF32: always f32.
  enum class AttentionPrecision : uint8_t { kAuto, kF32, kInt16, kInt8 };
  AttentionPrecision attention = AttentionPrecision::kAuto;
  // Largest number of observations whose camera frames infer_batch() runs through the vision
  // tower in one pass (larger batches are split into groups of this size). Default 1: on the CPU
  // the vision tower is compute-bound at one observation already (>= 1024 patch rows per camera),
  // so a joint pass gains nothing, while every new group size builds and packs another vision
  // graph (measured on the smolvla_base-shaped checkpoint, 8 clients through a Scheduler: 0.71x
  // the sequential throughput with groups, 1.0x without). Larger values suit backends whose
  // throughput grows with batch size.
  int max_batch = 1;
  // Time every graph step and sum by stage and op kind (see Policy::profile_report()).
  bool profile = false;
  // Exact vision-feature cache (0 = off): a camera frame identical to one seen before (same robot_id,
  // camera, size and bytes) reuses its vision-tower output instead of recomputing it. Entries are
  // LRU-evicted to stay within this many bytes (one 512x512 SmolVLA frame: 64 tokens x 960 x 4 B
  // = 240 KiB in f32). With the cache on, each camera runs through the vision tower on its own, so
  // hits and misses give bit-identical actions.
  size_t vision_cache_bytes = 0;
  // Visual-token pruning (0 = off): keep this many of each camera's visual tokens (SmolVLA: 64 per
  // 512x512 frame), those whose connector output has the largest L2 norm, in their original order;
  // the others are removed from the prefix (positions and masks count only the kept tokens), which
  // shortens every VLM layer and the expert's attention over the prefix. Approximate: the action
  // error it costs is measured in docs/compression.md. Values >= tokens per image mean off.
  int visual_tokens_keep = 0;
  // Task cache (0 = off): a prompt's token ids and language embeddings (the only part of the prefix
  // that depends on the task alone), kept per task string (or per token_ids) and shared by all
  // robots, LRU-evicted to this many bytes (one 48-token SmolVLA prompt: 48 x 960 x 4 B = 180 KiB
  // in f32). Hits give bit-identical actions. It saves the tokenizer and the embedding gather,
  // a few microseconds per inference (measured in docs/serving.md), so it is small but free.
  size_t task_cache_bytes = size_t{4} << 20;
  // Approximate visual token reuse in the style of VLA-Cache (0 = off; see docs/serving.md).
  // For every (robot_id, camera) the policy keeps the last computed frame's vision-tower state: the
  // resized frame, per SigLIP layer the K and V of every patch, and the connector tokens. A new frame
  // is compared with it per connector token (the token's (patch*scale_factor)^2-pixel square, mean
  // absolute change on the 0..255 scale, in the resized image); tokens that changed by less than
  // `vision_reuse_threshold` keep their cached features. When no token changed, the camera's
  // features are reused whole; when at most `vision_reuse_max_fraction` of them changed, only the
  // changed tokens' patches run through SigLIP, attending to the cached K/V of the others, and
  // their K/V, pixels and features replace the cached ones; otherwise the camera is recomputed in
  // full. Threshold 0 never reuses (bit-identical to running without it). Each entry holds
  // 2 x layers x patches x hidden values (full-size SmolVLA f32: 72 MiB per camera), LRU-evicted to
  // this many bytes.
  size_t vision_reuse_bytes = 0;
  float vision_reuse_threshold = 0.f;      // 0..255 pixel scale; a token is reused when change < threshold
  float vision_reuse_max_fraction = 0.5f;  // above this changed fraction the camera is recomputed in full
  // A camera recomputed sparsely this many times in a row is recomputed in full next (bounds how
  // long a token's cached K/V can miss the changes of the others); 0 = never forced.
  int vision_reuse_refresh = 8;
  // LeRobot does not save the tokenizer or the VLM config with the checkpoint. Default search:
  // the checkpoint dir, then the dir named by vlm_model_name (as given, or relative to an ancestor
  // of the checkpoint dir). An override may name a tokenizer.json file or a directory holding it.
  std::string tokenizer_path;
  std::string vlm_config_dir;  // directory with the SmolVLM config.json (default: same search)
  // Analysis hook (calibration, activation statistics; empty = off, the default): called before
  // every Linear whose W is a checkpoint weight, on the policy's compute thread, with the weight's
  // name as the checkpoint spells it without the leading "model." and the activation input x (a
  // CPU tensor [..., K] in the compute dtype, valid during the call only). Families that do not
  // expose their Linear inputs refuse it at load.
  std::function<void(const std::string& weight, const Tensor& x)> linear_input_observer;
  // Text-decoding policies (PolicyInfo::emits_text: opentau's pi05 with predict_response, which
  // decodes a short text response before the action expert; refused by the other families).
  // response_max_tokens: decode steps, the fed <bos> included (0 = the checkpoint's
  // response_max_length, which is also the most): a shorter cap trades reasoning for latency.
  int response_max_tokens = 0;
  // Stop at the first <eos> / <pad> (default). The reference feeds masked <pad> tokens up to the
  // cap, which nothing attends to, so the tokens and actions are the same either way; false runs
  // those steps too (to measure what the early stop saves).
  bool response_stop_at_eos = true;
  // The decode's weights: "" = as the checkpoint stores them (in the compute dtype); "int8" = the
  // language model's Linear weights and the tied head quantized per row to int8 at load, for the
  // decode steps only (weight-only: a token streams 4x fewer bytes than in f32), while the prefix,
  // the vision tower and the action expert keep the checkpoint's weights. Approximate: the decoded
  // text may differ from f32 where two tokens' logits are close.
  std::string decode_weights;
  // Reasoning reuse (0 or 1 = decode at every call). Per robot_id the last decoded response (its
  // tokens and K/V) is kept and later calls' action experts attend to it instead of a new decode,
  // until `reason_every` calls have used it (the next one decodes again), the task changes, or a
  // camera frame changed by more than `reason_scene_threshold` since the decode (mean absolute
  // change of the resized frame on the 0..255 scale; 0 = not checked). Approximate: the action
  // error it costs is measured in docs/reasoning.md.
  int reason_every = 0;
  float reason_scene_threshold = 0.f;
  uint64_t noise_seed = 0;     // seed of the Gaussian noise drawn when infer() gets none
  // Telemetry log (0 = off, the default): every this many inferred observations, one line on the
  // "vlart" spdlog logger at telemetry_log_level with the mean stage times since the previous line
  // and the cache counters. Logged by the thread that called infer()/infer_batch(), after the
  // inference, outside every lock; nothing is formatted when the logger's level filters it out
  // (the logger starts at warn: raise it with set_log_level, or VLART_LOG_LEVEL in the CLI).
  // A Scheduler has its own (SchedulerOptions::telemetry_log_every).
  uint64_t telemetry_log_every = 0;
  LogLevel telemetry_log_level = LogLevel::kInfo;
};

// One camera frame, HWC RGB uint8: owned bytes in `data`, or a borrowed view of the caller's memory
// (no copy: a camera driver's buffer, a numpy array, a frame with padded rows) that must stay valid
// and unchanged until the infer call returns (for Scheduler / ChunkRunner submissions: until the
// result is ready).
struct Image {
  std::vector<uint8_t> data;  // owned: height*width*3 bytes (empty for a view)
  int64_t height = 0;
  int64_t width = 0;
  const uint8_t* view = nullptr;  // borrowed pixels instead of `data`; row y starts at view + y * row_stride
  int64_t row_stride = 0;         // bytes between rows of a view; 0 = width * 3 (contiguous)

  static Image borrow(const uint8_t* pixels, int64_t height, int64_t width, int64_t row_stride = 0) {
    Image im;
    im.view = pixels;
    im.height = height;
    im.width = width;
    im.row_stride = row_stride;
    return im;
  }
  const uint8_t* pixels() const { return view ? view : data.data(); }
  int64_t stride() const { return view && row_stride ? row_stride : width * 3; }
};

struct Observation {
  // Camera name -> frame; names as in the checkpoint ("observation.images.top") or without the
  // "observation.images." prefix.
  std::map<std::string, Image> images;
  std::vector<float> state;  // raw (unnormalised) robot state, state_dim values
  std::string task;
  // Pre-tokenised prompt; when set, `task` is ignored (padding/truncation still follow the config).
  std::optional<std::vector<int64_t>> token_ids;
  // Namespace of this observation's vision-cache entries (one per robot or environment), so robots
  // never share or evict each other's entries by key, and one robot's can be cleared at episode start.
  std::string robot_id;
};

using VisionCacheStats = CacheStats;
using TaskCacheStats = CacheStats;

// Approximate visual reuse (PolicyOptions::vision_reuse_bytes). `cache` counts entry look-ups
// (a miss: the first frame of a robot's camera, or after a clear or an eviction).
struct VisionReuseStats {
  CacheStats cache;
  uint64_t frames_full = 0;      // camera frames computed in full (miss, too many changes, refresh)
  uint64_t frames_reused = 0;    // no token changed: the cached features were used whole
  uint64_t frames_sparse = 0;    // only the changed tokens ran through the vision tower
  uint64_t tokens_reused = 0;    // connector tokens kept from the cache (in reused and sparse frames)
  uint64_t tokens_computed = 0;  // connector tokens computed (full and sparse frames)
};

// The CPU backend's packed-weight cache: one packed copy per weight and kernel layout, shared by
// the executors of every shape bucket (a new prompt length or camera count packs nothing again).
struct WeightCacheStats {
  uint64_t hits = 0, misses = 0;  // look-ups by graph builds since load
  size_t entries = 0;             // packed weights held
  size_t bytes = 0;               // their memory
};

// Wall time of one named stage of an inference ("preprocess", "vision", "prefix", "denoise", ...:
// the names PolicyInfo::stages lists, in that order).
struct StageTime {
  std::string name;
  double ms = 0;
};

struct StageTimings {
  std::vector<StageTime> stages;  // in the order the policy ran them
  double total_ms = 0;            // the whole call for this observation (>= the sum of the stages)
  // The stage's time, 0 when this inference has no such stage.
  double ms(const std::string& name) const {
    for (const StageTime& s : stages)
      if (s.name == name) return s.ms;
    return 0;
  }
  // Sets (or adds, at the end) the stage's time.
  void set(const std::string& name, double v) {
    for (StageTime& s : stages)
      if (s.name == name) {
        s.ms = v;
        return;
      }
    stages.push_back({name, v});
  }
};

struct ActionChunk {
  int64_t horizon = 0;
  int64_t action_dim = 0;
  std::vector<float> data;  // [horizon, action_dim], unnormalised
  StageTimings timings;
  // Text the policy decoded on the way (a reasoning plan; PolicyInfo::emits_text) and its token ids;
  // empty for policies that emit none.
  std::string text;
  std::vector<int32_t> tokens;
};

// What a loaded policy is and expects: the contract every layer above the model family (CLI, C ABI,
// scheduler, server, bindings) works from.
struct CameraInfo {
  std::string name;  // checkpoint feature name ("observation.images.top"), the order the model stacks them
  std::string key;   // the short name an Observation may use instead ("top")
  int64_t height = 0, width = 0;  // the model's input size after preprocessing (any frame size is accepted)
  bool optional = false;          // may be left out of an observation
};

struct PolicyInfo {
  std::string family;  // registry name of the model family ("smolvla")
  std::vector<CameraInfo> cameras;
  int64_t state_dim = 0;   // raw state values an observation carries (0: no state)
  int64_t action_dim = 0;  // per action row of the chunk
  int64_t horizon = 0;     // action rows per chunk
  // Shape of the initial noise infer() accepts (e.g. {horizon, max_action_dim}); empty when the
  // policy draws none.
  std::vector<int64_t> noise_shape;
  int64_t flow_steps = 0;     // integration steps per inference (0: no flow head)
  bool has_language = false;  // reads Observation::task / token_ids
  bool emits_text = false;    // fills ActionChunk::text
  std::vector<std::string> stages;  // ActionChunk::timings stage names, in run order
  DType compute_dtype = DType::kF32;
  std::string backend;  // backends in placement order: "cpu" or "cuda+cpu"
  int64_t noise_numel() const {
    if (noise_shape.empty()) return 0;
    int64_t n = 1;
    for (int64_t d : noise_shape) n *= d;
    return n;
  }
};

// Per-layer importance on recorded observations (`vlart rank-layers`): per named layer stack of the
// family (SmolVLA: "vlm", over the valid prefix tokens; "expert", over the action tokens and flow
// steps), the mean cosine similarity of each layer's input and output hidden state (stored layer
// index). Near 1: the layer barely changes the residual stream, a candidate for `vlart prune`.
using LayerCosines = std::map<std::string, std::vector<double>>;

class Policy {
 public:
  static std::unique_ptr<Policy> load(const std::string& checkpoint_dir, const PolicyOptions& opts = {});
  ~Policy();
  Policy(const Policy&) = delete;
  Policy& operator=(const Policy&) = delete;

  // The loaded policy's contract (family, cameras, dims, horizon, noise shape, stages).
  const PolicyInfo& info() const;

  // `noise`: optional initial sample of PolicyInfo::noise_shape (SmolVLA: [horizon, max_action_dim],
  // as LeRobot's `noise=` argument).
  // Throws InvalidArgument for unknown/missing cameras, a wrong state length, non-finite state,
  // empty or mis-sized frames.
  ActionChunk infer(const Observation& obs, const float* noise = nullptr);

  // Several observations in one call: every observation is validated before anything runs (one
  // bad observation throws, naming its index); the frames of up to PolicyOptions::max_batch
  // observations go through the vision tower as one batch (default 1: each on its own), then each
  // observation's prefix and denoising run.
  // `noise`: optional [obs.size(), noise_shape...]. Each chunk's "vision" stage is the time
  // of the vision pass its frames were part of. Results equal infer() on each observation with
  // the same noise.
  std::vector<ActionChunk> infer_batch(const std::vector<Observation>& obs, const float* noise = nullptr);

  // The checks infer() makes before running anything (cameras, frame sizes, state length and
  // values, prompt); throws InvalidArgument / NotFoundError with the same messages. Thread-safe:
  // reads only the immutable configuration.
  void validate(const Observation& obs) const;

  // Layer importance on one observation (same validation and noise rules as infer()); builds its
  // own probe graphs each call, so it is for offline analysis, not the control loop.
  // UnsupportedError for a family without layer probes.
  LayerCosines layer_cosines(const Observation& obs, const float* noise = nullptr);

  // Shorthands for info(): full camera feature names ("observation.images.top") in the checkpoint's
  // order (the order config.json's input_features lists them, which is the order the model stacks
  // the images in), dims, horizon, floats of one initial noise sample (0: none).
  std::vector<std::string> camera_names() const;
  int64_t state_dim() const;
  int64_t action_dim() const;
  int64_t horizon() const;
  int64_t noise_numel() const;
  // The initial noise infer() draws on its first call without noise when PolicyOptions::noise_seed
  // is `seed` (what `vlart run --seed` uses): noise_numel() standard normal floats. Lets a client
  // (the server's "seed" field) reproduce that inference exactly.
  std::vector<float> seeded_noise(uint64_t seed) const;
  DType compute_dtype() const;
  std::string backend() const;  // backends in placement order: "cpu" or "cuda+cpu"

  // Cache counters (exact vision features, task embeddings, approximate visual reuse). Safe from
  // any thread, also while an inference runs.
  VisionCacheStats vision_cache_stats() const;
  TaskCacheStats task_cache_stats() const;
  VisionReuseStats vision_reuse_stats() const;
  WeightCacheStats weight_cache_stats() const;
  // Clearing at episode start (safe from any thread): without an argument every cache entry
  // (vision features, visual reuse state, task embeddings); with a robot_id that robot's vision
  // and visual-reuse entries (task entries are shared by all robots and stay).
  void clear_vision_cache();
  void clear_vision_cache(const std::string& robot_id);
  // With PolicyOptions::profile: per stage and op kind, total time and calls since load.
  std::string profile_report() const;

  struct Impl;

 private:
  explicit Policy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vlart
