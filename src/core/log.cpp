#include "core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include "vlart/error.h"

namespace vlart {

spdlog::logger& logger() {
  static std::shared_ptr<spdlog::logger> l = [] {
    auto existing = spdlog::get("vlart");
    if (existing) return existing;
    auto lg = spdlog::stderr_color_mt("vlart");
    lg->set_level(spdlog::level::warn);
    lg->set_pattern("[vlart %^%l%$] %v");
    return lg;
  }();
  return *l;
}

spdlog::level::level_enum to_spdlog(LogLevel level) {
  static const spdlog::level::level_enum map[] = {spdlog::level::trace, spdlog::level::debug, spdlog::level::info,
                                                  spdlog::level::warn,  spdlog::level::err,   spdlog::level::off};
  const int i = static_cast<int>(level);
  VLART_CHECK(i >= 0 && i <= static_cast<int>(LogLevel::kOff), InvalidArgument, "bad LogLevel ", i);
  return map[i];
}

void set_log_level(LogLevel level) { logger().set_level(to_spdlog(level)); }

LogLevel parse_log_level(const std::string& s) {
  if (s == "trace") return LogLevel::kTrace;
  if (s == "debug") return LogLevel::kDebug;
  if (s == "info") return LogLevel::kInfo;
  if (s == "warn") return LogLevel::kWarn;
  if (s == "error") return LogLevel::kError;
  if (s == "off") return LogLevel::kOff;
  throw InvalidArgument("log level must be trace|debug|info|warn|error|off, got '" + s + "'");
}

}  // namespace vlart
