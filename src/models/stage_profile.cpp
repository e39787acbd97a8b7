#include "models/stage_profile.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "vlart/error.h"

namespace vlart {

void StageProfile::record(const char* stage, const Executor& ex) {
  const std::vector<StepInfo>& info = ex.steps();
  const std::vector<double>& us = ex.step_times_us();
  for (size_t i = 0; i < info.size() && i < us.size(); ++i) {
    Entry& e = m_[std::string(stage) + " " + info[i].op];
    e.us += us[i];
    e.calls += 1;
  }
}

std::string StageProfile::report(DType compute) const {
  std::vector<std::pair<std::string, Entry>> v(m_.begin(), m_.end());
  double total = 0;
  for (const auto& kv : v) total += kv.second.us;
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second.us > b.second.us; });
  std::string out = detail::concat("op time by stage (", dtype_name(compute), " compute), all runs since load:\n");
  char line[160];
  for (const auto& kv : v) {
    std::snprintf(line, sizeof line, "  %-28s %10.1f ms %6.1f%% %8lld calls\n", kv.first.c_str(), kv.second.us / 1e3,
                  total > 0 ? 100.0 * kv.second.us / total : 0.0, static_cast<long long>(kv.second.calls));
    out += line;
  }
  return out;
}

}  // namespace vlart
