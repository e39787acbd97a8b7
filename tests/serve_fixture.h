// Shared by the serving tests (test_scheduler, test_chunk_runner): the bundled default policy and
// an observation built from the sample frames.
#pragma once

#include <string>

#include "io/image_file.h"
#include "vlart/policy.h"

namespace vlart::testing {

inline std::string default_policy_dir() {
  return std::string(VLART_TEST_DATA_DIR) + "/../../assets/default_policy";
}

// One OpenMP thread: the serving tests are about the scheduler's threads, and the TSan build must
// not run libgomp worker threads (not instrumented: TSan would report false races).
inline std::unique_ptr<Policy> load_default_policy() {
  PolicyOptions o;
  o.threads = 1;
  o.noise_seed = 7;
  return Policy::load(default_policy_dir(), o);
}

inline Observation sample_observation(float state0 = 0.1f) {
  const std::string s = std::string(VLART_TEST_DATA_DIR) + "/../../assets/samples/";
  Observation o;
  o.images["camera1"] = io::load_image_rgb(s + "camera1.png");
  o.images["camera2"] = io::load_image_rgb(s + "camera2.png");
  o.state = {state0, -0.2f, 0.3f, 0.05f, 0.5f};
  o.task = "pick up the red cube";
  return o;
}

}  // namespace vlart::testing
