#pragma once

#include <spdlog/spdlog.h>

#include <memory>

#include "vlart/log.h"

namespace vlart {
// The shared "vlart" logger (created on first use, stderr sink).
spdlog::logger& logger();
spdlog::level::level_enum to_spdlog(LogLevel level);
}  // namespace vlart
