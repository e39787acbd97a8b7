// C ABI over vlart::Policy (include/vlart/vlart.h). Every entry point catches everything: C callers
// get a status code plus a thread-local message, never an exception.
#include "vlart/vlart.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "vlart/error.h"
#include "vlart/policy.h"

struct vlart_policy {
  std::unique_ptr<vlart::Policy> impl;
  std::vector<std::string> cameras;  // owns the strings vlart_policy_camera_name hands out
  std::string family;
};

struct vlart_result {
  vlart::ActionChunk chunk;
};

// The C codes 1..9 are vlart::ErrorCode's values (the exception mapping below casts).
static_assert(static_cast<int>(vlart::ErrorCode::kInvalidArgument) == VLART_ERR_INVALID_ARGUMENT, "code drift");
static_assert(static_cast<int>(vlart::ErrorCode::kFormat) == VLART_ERR_FORMAT, "code drift");
static_assert(static_cast<int>(vlart::ErrorCode::kNotFound) == VLART_ERR_NOT_FOUND, "code drift");
static_assert(static_cast<int>(vlart::ErrorCode::kUnsupported) == VLART_ERR_UNSUPPORTED, "code drift");
static_assert(static_cast<int>(vlart::ErrorCode::kBackend) == VLART_ERR_BACKEND, "code drift");
static_assert(static_cast<int>(vlart::ErrorCode::kOutOfMemory) == VLART_ERR_OUT_OF_MEMORY, "code drift");
static_assert(static_cast<int>(vlart::ErrorCode::kIo) == VLART_ERR_IO, "code drift");
static_assert(static_cast<int>(vlart::ErrorCode::kInternal) == VLART_ERR_INTERNAL, "code drift");
static_assert(static_cast<int>(vlart::ErrorCode::kAllocationInRun) == VLART_ERR_ALLOCATION_IN_RUN, "code drift");

namespace {

thread_local std::string g_last_error;

vlart_status fail(vlart_status s, const std::string& msg) {
  g_last_error = msg;
  return s;
}

// Runs `f`, mapping exceptions onto status codes. vlart::ErrorCode values equal the C codes.
template <typename F>
vlart_status guarded(const char* fn, F&& f) {
  try {
    f();
    return VLART_OK;
  } catch (const vlart::Error& e) {
    return fail(static_cast<vlart_status>(static_cast<int>(e.code())), std::string(fn) + ": " + e.what());
  } catch (const std::bad_alloc&) {
    return fail(VLART_ERR_OUT_OF_MEMORY, std::string(fn) + ": out of memory");
  } catch (const std::exception& e) {
    return fail(VLART_ERR_UNKNOWN, std::string(fn) + ": " + e.what());
  } catch (...) {
    return fail(VLART_ERR_UNKNOWN, std::string(fn) + ": unknown exception");
  }
}

}  // namespace

extern "C" {

void vlart_load_options_default(vlart_load_options* opts) {
  if (!opts) return;
  opts->threads = 0;
  opts->compute_bf16 = 0;
  opts->flow_steps = 0;
  opts->noise_seed = 0;
}

vlart_status vlart_policy_load(const char* dir, int threads, vlart_policy** out) {
  vlart_load_options o;
  vlart_load_options_default(&o);
  o.threads = threads;
  return vlart_policy_load_ex(dir, &o, out);
}

// The Observation a C caller describes (frames borrowed as views, no copy).
static vlart::Observation c_observation(const vlart_image* images, int n_images, const float* state, int state_len,
                                        const char* task) {
  vlart::Observation obs;
  for (int i = 0; i < n_images; ++i) {
    const vlart_image& im = images[i];
    VLART_CHECK(im.name != nullptr, InvalidArgument, "images[", i, "].name is NULL");
    VLART_CHECK(im.data != nullptr, InvalidArgument, "images[", i, "] ('", im.name, "') data is NULL");
    VLART_CHECK(im.height > 0 && im.width > 0, InvalidArgument, "images[", i, "] ('", im.name, "') is ", im.height,
                "x", im.width);
    VLART_CHECK(obs.images.count(im.name) == 0, InvalidArgument, "camera '", im.name, "' given twice");
    // Borrowed, not copied: the C call is synchronous, so the caller's frame outlives its use.
    obs.images[im.name] = vlart::Image::borrow(im.data, im.height, im.width);
  }
  obs.state.assign(state, state + state_len);
  obs.task = task;
  return obs;
}

// Checks the pointer/length arguments shared by the infer calls; VLART_OK when they are usable.
static vlart_status check_infer_args(const char* fn, const vlart_image* images, int n_images, const float* state,
                                     int state_len, const char* task) {
  if (n_images < 0 || (n_images > 0 && !images))
    return fail(VLART_ERR_INVALID_ARGUMENT, std::string(fn) + ": images is NULL or n_images (" +
                                                std::to_string(n_images) + ") is negative");
  if (state_len < 0 || (state_len > 0 && !state))
    return fail(VLART_ERR_INVALID_ARGUMENT, std::string(fn) + ": state is NULL or state_len (" +
                                                std::to_string(state_len) + ") is negative");
  if (!task) return fail(VLART_ERR_INVALID_ARGUMENT, std::string(fn) + ": task is NULL (pass \"\" for none)");
  return VLART_OK;
}

static vlart_status open_policy(const char* fn, const char* dir, const vlart::PolicyOptions& o, vlart_policy** out) {
  return guarded(fn, [&] {
    auto p = std::make_unique<vlart_policy>();
    p->impl = vlart::Policy::load(dir, o);
    p->cameras = p->impl->camera_names();
    p->family = p->impl->info().family;
    *out = p.release();
  });
}

void vlart_policy_options_init(vlart_policy_options* opts) {
  if (!opts) return;
  *opts = vlart_policy_options{};
  opts->struct_size = sizeof(vlart_policy_options);
}

vlart_status vlart_policy_open(const char* dir, const vlart_policy_options* opts, vlart_policy** out) {
  const char* fn = "vlart_policy_open";
  if (!out) return fail(VLART_ERR_INVALID_ARGUMENT, std::string(fn) + ": out is NULL");
  *out = nullptr;
  if (!dir) return fail(VLART_ERR_INVALID_ARGUMENT, std::string(fn) + ": dir is NULL");
  vlart_policy_options lo;
  vlart_policy_options_init(&lo);
  if (opts) {
    constexpr size_t kMin = offsetof(vlart_policy_options, threads) + sizeof(int);
    if (opts->struct_size < kMin)
      return fail(VLART_ERR_INVALID_ARGUMENT, std::string(fn) + ": opts->struct_size is " +
                                                  std::to_string(opts->struct_size) +
                                                  " (call vlart_policy_options_init first)");
    if (opts->struct_size > sizeof(vlart_policy_options))
      return fail(VLART_ERR_UNSUPPORTED, std::string(fn) + ": opts->struct_size " + std::to_string(opts->struct_size) +
                                             " is larger than this library's vlart_policy_options (" +
                                             std::to_string(sizeof(vlart_policy_options)) +
                                             " bytes): built against a newer vlart.h");
    std::memcpy(&lo, opts, opts->struct_size);  // fields the caller's header lacks keep their defaults
  }
  if (lo.compute_bf16 != 0 && lo.compute_bf16 != 1)
    return fail(VLART_ERR_INVALID_ARGUMENT,
                std::string(fn) + ": compute_bf16 must be 0 or 1, got " + std::to_string(lo.compute_bf16));
  vlart::PolicyOptions o;
  o.threads = lo.threads > 0 ? lo.threads : 0;
  o.compute_dtype = lo.compute_bf16 ? vlart::DType::kBF16 : vlart::DType::kF32;
  o.flow_steps = lo.flow_steps > 0 ? lo.flow_steps : 0;
  o.noise_seed = lo.noise_seed;
  if (lo.backend) o.backend = lo.backend;
  if (lo.tokenizer_path) o.tokenizer_path = lo.tokenizer_path;
  return open_policy(fn, dir, o, out);
}

const char* vlart_policy_family(const vlart_policy* policy) { return policy ? policy->family.c_str() : nullptr; }

vlart_status vlart_policy_noise_len(const vlart_policy* policy, int* noise_len) {
  if (!policy) return fail(VLART_ERR_INVALID_ARGUMENT, "vlart_policy_noise_len: policy is NULL");
  if (noise_len) *noise_len = static_cast<int>(policy->impl->noise_numel());
  return VLART_OK;
}

vlart_status vlart_policy_infer_ex(vlart_policy* policy, const vlart_image* images, int n_images, const float* state,
                                   int state_len, const char* task, const float* noise_or_null, int noise_len,
                                   vlart_result** out) {
  const char* fn = "vlart_policy_infer_ex";
  if (!out) return fail(VLART_ERR_INVALID_ARGUMENT, std::string(fn) + ": out is NULL");
  *out = nullptr;
  if (!policy) return fail(VLART_ERR_INVALID_ARGUMENT, std::string(fn) + ": policy is NULL");
  if (vlart_status s = check_infer_args(fn, images, n_images, state, state_len, task); s != VLART_OK) return s;
  const int64_t want = policy->impl->noise_numel();
  if (noise_or_null && noise_len != want)
    return fail(VLART_ERR_INVALID_ARGUMENT, std::string(fn) + ": noise_len is " + std::to_string(noise_len) +
                                                ", the policy's noise has " + std::to_string(want) + " floats");
  return guarded(fn, [&] {
    auto r = std::make_unique<vlart_result>();
    r->chunk = policy->impl->infer(c_observation(images, n_images, state, state_len, task), noise_or_null);
    *out = r.release();
  });
}

const float* vlart_result_actions(const vlart_result* r, int* horizon, int* action_dim) {
  if (horizon) *horizon = r ? static_cast<int>(r->chunk.horizon) : 0;
  if (action_dim) *action_dim = r ? static_cast<int>(r->chunk.action_dim) : 0;
  return r ? r->chunk.data.data() : nullptr;
}
const char* vlart_result_text(const vlart_result* r) { return r ? r->chunk.text.c_str() : ""; }
const int32_t* vlart_result_tokens(const vlart_result* r, int* n_tokens) {
  if (n_tokens) *n_tokens = r ? static_cast<int>(r->chunk.tokens.size()) : 0;
  return r ? r->chunk.tokens.data() : nullptr;
}
int vlart_result_stage_count(const vlart_result* r) { return r ? static_cast<int>(r->chunk.timings.stages.size()) : 0; }
const char* vlart_result_stage_name(const vlart_result* r, int i) {
  if (!r || i < 0 || static_cast<size_t>(i) >= r->chunk.timings.stages.size()) return nullptr;
  return r->chunk.timings.stages[static_cast<size_t>(i)].name.c_str();
}
double vlart_result_stage_ms(const vlart_result* r, int i) {
  if (!r || i < 0 || static_cast<size_t>(i) >= r->chunk.timings.stages.size()) return 0;
  return r->chunk.timings.stages[static_cast<size_t>(i)].ms;
}
double vlart_result_total_ms(const vlart_result* r) { return r ? r->chunk.timings.total_ms : 0; }
void vlart_result_free(vlart_result* r) { delete r; }

vlart_status vlart_policy_load_ex(const char* dir, const vlart_load_options* opts, vlart_policy** out) {
  if (!out) return fail(VLART_ERR_INVALID_ARGUMENT, "vlart_policy_load: out is NULL");
  *out = nullptr;
  if (!dir) return fail(VLART_ERR_INVALID_ARGUMENT, "vlart_policy_load: dir is NULL");
  vlart_load_options lo;
  vlart_load_options_default(&lo);
  if (opts) lo = *opts;
  if (lo.compute_bf16 != 0 && lo.compute_bf16 != 1)
    return fail(VLART_ERR_INVALID_ARGUMENT,
                "vlart_policy_load: compute_bf16 must be 0 or 1, got " + std::to_string(lo.compute_bf16));
  vlart::PolicyOptions o;
  o.threads = lo.threads > 0 ? lo.threads : 0;
  o.compute_dtype = lo.compute_bf16 ? vlart::DType::kBF16 : vlart::DType::kF32;
  o.flow_steps = lo.flow_steps > 0 ? lo.flow_steps : 0;
  o.noise_seed = lo.noise_seed;
  return open_policy("vlart_policy_load", dir, o, out);
}

vlart_status vlart_policy_dims(const vlart_policy* policy, int* n_cameras, int* state_dim, int* horizon,
                               int* action_dim, int* max_action_dim) {
  if (!policy) return fail(VLART_ERR_INVALID_ARGUMENT, "vlart_policy_dims: policy is NULL");
  const vlart::Policy& p = *policy->impl;
  if (n_cameras) *n_cameras = static_cast<int>(policy->cameras.size());
  if (state_dim) *state_dim = static_cast<int>(p.state_dim());
  if (horizon) *horizon = static_cast<int>(p.horizon());
  if (action_dim) *action_dim = static_cast<int>(p.action_dim());
  if (max_action_dim) {  // columns of the [horizon, width] noise (0 for a policy without noise)
    const std::vector<int64_t>& ns = p.info().noise_shape;
    *max_action_dim = ns.size() == 2 ? static_cast<int>(ns[1]) : 0;
  }
  return VLART_OK;
}

const char* vlart_policy_camera_name(const vlart_policy* policy, int index) {
  if (!policy || index < 0 || static_cast<size_t>(index) >= policy->cameras.size()) return nullptr;
  return policy->cameras[static_cast<size_t>(index)].c_str();
}

vlart_status vlart_policy_infer(vlart_policy* policy, const vlart_image* images, int n_images, const float* state,
                                int state_len, const char* task, const float* noise_or_null, float* out_actions,
                                int out_capacity, int* out_horizon, int* out_action_dim) {
  const char* fn = "vlart_policy_infer";
  if (!policy) return fail(VLART_ERR_INVALID_ARGUMENT, std::string(fn) + ": policy is NULL");
  const vlart::Policy& p = *policy->impl;
  const int64_t need = p.horizon() * p.action_dim();
  if (out_horizon) *out_horizon = static_cast<int>(p.horizon());
  if (out_action_dim) *out_action_dim = static_cast<int>(p.action_dim());
  if (vlart_status s = check_infer_args(fn, images, n_images, state, state_len, task); s != VLART_OK) return s;
  if (!out_actions) return fail(VLART_ERR_INVALID_ARGUMENT, std::string(fn) + ": out_actions is NULL");
  if (out_capacity < need)
    return fail(VLART_ERR_BUFFER_TOO_SMALL, std::string(fn) + ": out_capacity is " + std::to_string(out_capacity) +
                                                " floats, the action chunk needs " + std::to_string(need) + " (" +
                                                std::to_string(p.horizon()) + " x " + std::to_string(p.action_dim()) +
                                                ")");
  return guarded(fn, [&] {
    const vlart::ActionChunk ch =
        policy->impl->infer(c_observation(images, n_images, state, state_len, task), noise_or_null);
    std::copy(ch.data.begin(), ch.data.end(), out_actions);
  });
}

void vlart_policy_free(vlart_policy* policy) { delete policy; }

const char* vlart_last_error(void) { return g_last_error.c_str(); }

const char* vlart_status_name(int status) {
  switch (status) {
    case VLART_OK: return "ok";
    case VLART_ERR_INVALID_ARGUMENT: return "invalid_argument";
    case VLART_ERR_FORMAT: return "format";
    case VLART_ERR_NOT_FOUND: return "not_found";
    case VLART_ERR_UNSUPPORTED: return "unsupported";
    case VLART_ERR_BACKEND: return "backend";
    case VLART_ERR_OUT_OF_MEMORY: return "out_of_memory";
    case VLART_ERR_IO: return "io";
    case VLART_ERR_INTERNAL: return "internal";
    case VLART_ERR_ALLOCATION_IN_RUN: return "allocation_in_run";
    case VLART_ERR_BUFFER_TOO_SMALL: return "buffer_too_small";
    case VLART_ERR_UNKNOWN: return "unknown";
  }
  return "unknown";
}

}  // extern "C"
