// A SmolVLAModel on a CPU backend of its own, for tests that drive the model directly (Policy::load
// creates the backends and hands them to the family; these tests stand in for it).
#pragma once

#include <memory>

#include "core/backend.h"
#include "models/smolvla/model.h"

namespace vlart::test_util {

struct StandaloneModel {
  std::unique_ptr<Backend> cpu;  // declared first: outlives the model's executors
  std::unique_ptr<smolvla::SmolVLAModel> m;
  StandaloneModel(smolvla::SmolVLAConfig cfg, smolvla::SmolVLAWeights w, int threads, DType dt = DType::kF32) {
    CpuBackendOptions o;
    o.threads = threads;
    cpu = make_cpu_backend(o);
    m = std::make_unique<smolvla::SmolVLAModel>(std::move(cfg), std::move(w), dt, std::vector<Backend*>{cpu.get()},
                                                "cpu");
  }
};

}  // namespace vlart::test_util
