// Prometheus text exposition (format 0.0.4) of a server's counters, its scheduler's counters and
// latencies, and the policy's cache counters: what GET /metrics serves.
#pragma once

#include <string>

#include "vlart/policy.h"
#include "vlart/scheduler.h"
#include "vlart/server.h"

namespace vlart::serve {

std::string metrics_text(const ServerStats& server, const SchedulerStats& sched, const Policy& policy);

}  // namespace vlart::serve
