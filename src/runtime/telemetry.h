// One-line telemetry summaries for the log (SchedulerOptions / PolicyOptions::telemetry_log_*).
// Called off the hot path: after a batch or an inference, outside every lock.
#pragma once

#include <string>

#include "vlart/policy.h"
#include "vlart/scheduler.h"

namespace vlart::detail {

// "vision cache 12/16 hits (75.0%), task cache 9/10 hits (90.0%), visual reuse 75.0% tokens reused
// (frames full/sparse/reused 2/5/9)"; caches that are off are left out ("caches off" if all are).
std::string format_caches(const Policy& p);
// Answers by status, batches and batch-size histogram, queue depth, p50/p99/max per stage.
std::string format_scheduler(const SchedulerStats& s);

}  // namespace vlart::detail
