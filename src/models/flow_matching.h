// The flow-matching sampler every flow-head family and every analysis probe uses, so inference and
// probes integrate exactly the same way: Euler steps from t0 to t1 (LeRobot SmolVLA / pi0 / pi0.5:
// t0 = 1, t1 = 0, steps = num_steps), dt = (t1 - t0) / steps computed in double and rounded to f32
// once (as PyTorch rounds the Python scalar for an f32 tensor), t_k = f32(t0 + k dt), and
// x <- x + f32(dt * v) with two roundings (no fused multiply-add), as PyTorch's `x_t + dt * v_t`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vlart {

// The sinusoidal time embedding of openpi / LeRobot (create_sinusoidal_pos_embedding), [width] =
// [sin | cos] of t * 2pi / period, periods geometric from min_period to max_period over width / 2:
// f64 math on the f32-rounded t, cast to f32.
std::vector<float> time_embedding(float t, int64_t width, double min_period, double max_period);

struct FlowSchedule {
  double t0 = 1.0;
  double t1 = 0.0;
  int64_t steps = 10;
  // false: t_k = t0 + k * dt in double, rounded once (LeRobot); true: t = float(t0), then t += float(dt)
  // in float32 each step (opentau's `time += dt` on a float32 tensor).
  bool f32_time_accumulation = false;
};

// Integrates `x` in place. `velocity(x, t, k)` returns v_t(x) (same size as x) for step k.
template <class Velocity>
void euler_flow(std::vector<float>& x, const FlowSchedule& s, Velocity&& velocity) {
  const double dt = (s.t1 - s.t0) / static_cast<double>(s.steps);
  const float dtf = static_cast<float>(dt);
  volatile float acc = static_cast<float>(s.t0);
  for (int64_t k = 0; k < s.steps; ++k) {
    const float t = s.f32_time_accumulation ? acc : static_cast<float>(s.t0 + static_cast<double>(k) * dt);
    acc = acc + dtf;
    const std::vector<float> v = velocity(static_cast<const std::vector<float>&>(x), t, k);
    for (size_t i = 0; i < x.size(); ++i) {
      volatile float d = dtf * v[i];  // keep PyTorch's two roundings (no fused multiply-add)
      x[i] = x[i] + d;
    }
  }
}

}  // namespace vlart
