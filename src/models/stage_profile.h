// Per-op wall time summed by stage and op kind over every graph run since load (PolicyOptions::profile;
// the executors record each step's time, two clock reads per step), rendered as a table by share.
#pragma once

#include <map>
#include <string>

#include "core/executor.h"
#include "vlart/dtype.h"

namespace vlart {

class StageProfile {
 public:
  // Adds the step times of `ex`'s last run under "<stage> <op>".
  void record(const char* stage, const Executor& ex);
  // "op time by stage (<dtype> compute), all runs since load:" and one line per stage/op, largest first.
  std::string report(DType compute) const;

 private:
  struct Entry {
    double us = 0;
    int64_t calls = 0;
  };
  std::map<std::string, Entry> m_;
};

}  // namespace vlart
