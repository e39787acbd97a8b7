// Shared by the policy benchmarks: which checkpoint to run and synthetic observations for it.
#pragma once

#include <cstdlib>
#include <random>
#include <string>

#include "vlart/policy.h"

namespace vlart::bench {

// $VLART_SMOLVLA_DIR (e.g. the smolvla_base-shaped checkpoint of tools/make_smolvla_fixtures.py
// --full-size) or, by default, the bundled tiny policy.
inline std::string policy_dir() {
  const char* d = std::getenv("VLART_SMOLVLA_DIR");
  return d && *d ? d : std::string(VLART_SOURCE_DIR) + "/assets/default_policy";
}

// Random 480x640 RGB frames for every camera (resize-with-pad is part of a timed call), a random
// state and a fixed task.
inline Observation synthetic_obs(const Policy& p, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> px(0, 255);
  Observation o;
  for (const std::string& cam : p.camera_names()) {
    Image im;
    im.height = 480;
    im.width = 640;
    im.data.resize(480 * 640 * 3);
    for (auto& b : im.data) b = static_cast<uint8_t>(px(rng));
    o.images[cam] = std::move(im);
  }
  std::normal_distribution<float> nd(0.f, 1.f);
  o.state.resize(static_cast<size_t>(p.state_dim()));
  for (float& v : o.state) v = nd(rng);
  o.task = "pick up the red cube and place it in the box";
  return o;
}

}  // namespace vlart::bench
