// Logging through spdlog under the logger name "vlart". Default level: warn (nothing on the hot path
// logs above debug). Applications may raise it, or install their own sinks on the "vlart" logger.
#pragma once

#include <string>

namespace vlart {

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError, kOff };

void set_log_level(LogLevel level);
// Parses "trace|debug|info|warn|error|off"; throws InvalidArgument otherwise.
LogLevel parse_log_level(const std::string& s);

}  // namespace vlart
