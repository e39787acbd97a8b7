/* vlart C ABI: load a policy checkpoint once, run inference per observation.
 *
 *   vlart_policy* p = NULL;
 *   if (vlart_policy_load("path/to/checkpoint", 4, &p) != VLART_OK) fprintf(stderr, "%s\n", vlart_last_error());
 *   vlart_image img = {"camera1", rgb, 480, 640};
 *   int h, a;
 *   vlart_policy_infer(p, &img, 1, state, 6, "pick up the cube", NULL, actions, 50 * 6, &h, &a);
 *   vlart_policy_free(p);
 *
 * Every function returns a vlart_status; on failure vlart_last_error() holds a message naming the
 * problem (file, camera, expected vs got). No C++ exception crosses this boundary. A policy may be
 * used from one thread at a time; different policies are independent.
 */
#ifndef VLART_VLART_H_
#define VLART_VLART_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. 1..9 mirror vlart::ErrorCode (include/vlart/error.h). */
typedef enum vlart_status {
  VLART_OK = 0,
  VLART_ERR_INVALID_ARGUMENT = 1, /* bad argument or observation (null pointer, camera, state length) */
  VLART_ERR_FORMAT = 2,           /* a checkpoint file is malformed */
  VLART_ERR_NOT_FOUND = 3,        /* a required file, tensor or key is missing */
  VLART_ERR_UNSUPPORTED = 4,      /* valid request this build cannot do */
  VLART_ERR_BACKEND = 5,          /* oneDNN / CUDA reported a failure */
  VLART_ERR_OUT_OF_MEMORY = 6,
  VLART_ERR_IO = 7,               /* a file could not be opened or read */
  VLART_ERR_INTERNAL = 8,         /* a vlart bug */
  VLART_ERR_ALLOCATION_IN_RUN = 9,
  VLART_ERR_BUFFER_TOO_SMALL = 10, /* out_capacity < horizon * action_dim; the sizes are still reported */
  VLART_ERR_UNKNOWN = 99           /* any other exception */
} vlart_status;

typedef struct vlart_policy vlart_policy;

/* One camera frame: HWC RGB uint8, height * width * 3 bytes. `name` is the checkpoint's camera name
 * ("observation.images.top") or its short form ("top"). */
typedef struct vlart_image {
  const char* name;
  const uint8_t* data;
  int height;
  int width;
} vlart_image;

/* Loads the checkpoint directory `dir`; `threads` <= 0 uses every hardware thread. On success
 * *out is a new policy (free with vlart_policy_free); on failure *out is set to NULL. */
vlart_status vlart_policy_load(const char* dir, int threads, vlart_policy** out);

/* Load options for vlart_policy_load_ex; start from vlart_load_options_default(). */
typedef struct vlart_load_options {
  int threads;         /* <= 0: every hardware thread */
  int compute_bf16;    /* 0: f32 compute; 1: bf16 compute (see vlart::PolicyOptions::compute_dtype) */
  int flow_steps;      /* <= 0: num_steps from the checkpoint config */
  uint64_t noise_seed; /* seed of the noise drawn when infer gets none */
} vlart_load_options;

/* Fills *opts with the defaults (all threads, f32, the checkpoint's steps, seed 0). */
void vlart_load_options_default(vlart_load_options* opts);

/* vlart_policy_load with options; `opts` NULL means the defaults. */
vlart_status vlart_policy_load_ex(const char* dir, const vlart_load_options* opts, vlart_policy** out);

/* Versioned load options (preferred over vlart_load_options): start from
 * vlart_policy_options_init(), which sets struct_size to the size this header declares. The library
 * reads only the first struct_size bytes, so a binary built against an older header keeps working
 * when fields are appended; a struct_size larger than the library knows is refused
 * (VLART_ERR_UNSUPPORTED) rather than silently ignored. */
typedef struct vlart_policy_options {
  uint32_t struct_size;       /* sizeof(vlart_policy_options) as compiled by the caller */
  int threads;                /* <= 0: every hardware thread */
  int compute_bf16;           /* 0: f32 compute; 1: bf16 compute */
  int flow_steps;             /* <= 0: the checkpoint's; refused for a family without a flow head */
  uint64_t noise_seed;        /* seed of the noise drawn when infer gets none */
  const char* backend;        /* NULL or "cpu"; "cuda"; "auto" */
  const char* tokenizer_path; /* NULL: the family's default search */
} vlart_policy_options;

void vlart_policy_options_init(vlart_policy_options* opts);

/* Loads `dir` with versioned options (`opts` NULL = the defaults). */
vlart_status vlart_policy_open(const char* dir, const vlart_policy_options* opts, vlart_policy** out);

/* Registry name of the loaded policy's family ("smolvla"); valid while the policy lives. */
const char* vlart_policy_family(const vlart_policy* policy);

/* Floats of one initial noise sample (0: the policy draws no noise). */
vlart_status vlart_policy_noise_len(const vlart_policy* policy, int* noise_len);

/* The outcome of one inference: actions, decoded text (policies that emit text) and stage timings.
 * Owned by the caller (vlart_result_free); independent of the policy once returned. */
typedef struct vlart_result vlart_result;

/* Runs one inference like vlart_policy_infer. `noise_or_null` holds exactly `noise_len` floats
 * (vlart_policy_noise_len; a different length is VLART_ERR_INVALID_ARGUMENT), NULL draws noise.
 * On success *out is a new result; on failure NULL. */
vlart_status vlart_policy_infer_ex(vlart_policy* policy, const vlart_image* images, int n_images, const float* state,
                                   int state_len, const char* task, const float* noise_or_null, int noise_len,
                                   vlart_result** out);

/* [horizon, action_dim] unnormalised actions, row-major; the sizes through the pointers (either may
 * be NULL). Valid while the result lives; NULL for a NULL result. */
const float* vlart_result_actions(const vlart_result* result, int* horizon, int* action_dim);
/* Decoded text ("" when the policy emits none); token ids through *n_tokens (may be NULL). */
const char* vlart_result_text(const vlart_result* result);
const int32_t* vlart_result_tokens(const vlart_result* result, int* n_tokens);
/* Named stages in run order ("preprocess", "vision", ...): count, name (NULL out of range), ms. */
int vlart_result_stage_count(const vlart_result* result);
const char* vlart_result_stage_name(const vlart_result* result, int index);
double vlart_result_stage_ms(const vlart_result* result, int index);
double vlart_result_total_ms(const vlart_result* result);
/* Frees a result; NULL is a no-op. */
void vlart_result_free(vlart_result* result);

/* Sizes of the policy's inputs and outputs; any pointer may be NULL. The noise buffer of
 * vlart_policy_infer holds horizon * max_action_dim floats (max_action_dim: the columns of a
 * [horizon, width] noise, 0 for a policy without noise; vlart_policy_noise_len is the general form). */
vlart_status vlart_policy_dims(const vlart_policy* policy, int* n_cameras, int* state_dim, int* horizon,
                               int* action_dim, int* max_action_dim);

/* Name of camera `index` (0 <= index < n_cameras) as in the checkpoint, indexed in the checkpoint's
 * order (config.json input_features, never sorted); NULL when out of range.
 * Valid while the policy lives. */
const char* vlart_policy_camera_name(const vlart_policy* policy, int index);

/* Runs one inference. `images`: one frame per camera (any order, any size). `state`: state_len raw
 * values. `task`: UTF-8 instruction (may be ""). `noise_or_null`: optional initial sample,
 * horizon * max_action_dim floats (C order); NULL draws Gaussian noise from the policy's generator.
 * Writes horizon * action_dim unnormalised actions (row-major) to out_actions. *out_horizon and
 * *out_action_dim are set whenever the policy is valid, also with VLART_ERR_BUFFER_TOO_SMALL. */
vlart_status vlart_policy_infer(vlart_policy* policy, const vlart_image* images, int n_images, const float* state,
                                int state_len, const char* task, const float* noise_or_null, float* out_actions,
                                int out_capacity, int* out_horizon, int* out_action_dim);

/* Frees a policy; NULL is a no-op. */
void vlart_policy_free(vlart_policy* policy);

/* Message of the last failed call on this thread ("" when none); valid until the next failing call
 * on the same thread. */
const char* vlart_last_error(void);

/* Short name of a status ("ok", "invalid_argument", ...); never NULL. Takes an int so that a value
 * that is not a vlart_status (e.g. from a newer library or a foreign caller) yields "unknown". */
const char* vlart_status_name(int status);

#ifdef __cplusplus
}
#endif

#endif /* VLART_VLART_H_ */
