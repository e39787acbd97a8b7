#include "models/policy_model.h"

#include "vlart/error.h"

namespace vlart {

std::map<std::string, std::vector<double>> PolicyModel::layer_cosines(const Observation&, const float*) {
  throw UnsupportedError("Policy::layer_cosines: the " + info().family + " family has no layer probes");
}

void PolicyModel::set_linear_observer(std::function<void(const std::string&, const Tensor&)>) {
  throw UnsupportedError("calibration: the " + info().family + " family does not expose its Linear inputs");
}

}  // namespace vlart
