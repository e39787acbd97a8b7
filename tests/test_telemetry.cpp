// Telemetry logging (SchedulerOptions / PolicyOptions::telemetry_log_*): lines arrive on the "vlart"
// spdlog logger when enabled and due, never when disabled or filtered by the logger's level.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>
#include <string>
#include <vector>

#include "core/log.h"
#include "serve_fixture.h"
#include "vlart/error.h"
#include "vlart/scheduler.h"

using namespace vlart;
namespace vt = vlart::testing;

namespace {

// Captures what the "vlart" logger writes while alive; restores its sinks and level afterwards.
class LogCapture {
 public:
  explicit LogCapture(LogLevel level) : old_level_(logger().level()), old_sinks_(logger().sinks()) {
    sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    sink_->set_pattern("%l %v");
    logger().sinks().clear();
    logger().sinks().push_back(sink_);
    set_log_level(level);
  }
  ~LogCapture() {
    logger().sinks() = old_sinks_;
    logger().set_level(old_level_);
  }
  std::vector<std::string> lines(const std::string& with) {
    logger().flush();
    std::vector<std::string> v;
    std::istringstream in(out_.str());
    for (std::string l; std::getline(in, l);)
      if (l.find(with) != std::string::npos) v.push_back(l);
    return v;
  }

 private:
  std::ostringstream out_;
  spdlog::level::level_enum old_level_;
  std::vector<spdlog::sink_ptr> old_sinks_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

void run_requests(Scheduler& s, int n) {
  const Observation o = vt::sample_observation();
  for (int i = 0; i < n; ++i) ASSERT_EQ(s.submit(o).get().status, Scheduler::Status::kOk);
}

}  // namespace

TEST(Telemetry, SchedulerLogsEveryNRequestsWhenEnabled) {
  auto policy = vt::load_default_policy();
  LogCapture cap(LogLevel::kInfo);
  SchedulerOptions o;
  o.max_batch = 1;
  o.telemetry_log_every = 4;
  {
    Scheduler s(*policy, o);
    run_requests(s, 9);
    s.shutdown();
  }
  const std::vector<std::string> l = cap.lines("scheduler telemetry:");
  ASSERT_EQ(l.size(), 2u);  // after the 4th and the 8th answer
  EXPECT_EQ(l[0].rfind("info ", 0), 0u) << l[0];
  EXPECT_NE(l[1].find("ok 8"), std::string::npos) << l[1];
  EXPECT_NE(l[1].find("sizes 1x8"), std::string::npos) << l[1];
  EXPECT_NE(l[1].find("total "), std::string::npos) << l[1];
  EXPECT_NE(l[1].find("task cache 7/8 hits"), std::string::npos) << l[1];
}

TEST(Telemetry, SchedulerLogsByPeriodAtTheChosenLevel) {
  auto policy = vt::load_default_policy();
  LogCapture cap(LogLevel::kDebug);
  SchedulerOptions o;
  o.max_batch = 1;
  o.telemetry_log_period = std::chrono::milliseconds(1);  // every batch takes longer than that
  o.telemetry_log_level = LogLevel::kDebug;
  {
    Scheduler s(*policy, o);
    run_requests(s, 3);
  }
  const std::vector<std::string> l = cap.lines("scheduler telemetry:");
  EXPECT_GE(l.size(), 2u);
  for (const std::string& x : l) EXPECT_EQ(x.rfind("debug ", 0), 0u) << x;
}

TEST(Telemetry, NothingWhenDisabledOrFilteredOut) {
  auto policy = vt::load_default_policy();
  {
    LogCapture cap(LogLevel::kTrace);  // everything passes the logger, but telemetry is off
    Scheduler s(*policy, {});
    run_requests(s, 5);
    s.shutdown();
    for (int i = 0; i < 5; ++i) policy->infer(vt::sample_observation());
    EXPECT_TRUE(cap.lines("telemetry").empty());
  }
  {
    LogCapture cap(LogLevel::kWarn);  // enabled at info, but the logger is at warn
    SchedulerOptions o;
    o.telemetry_log_every = 1;
    Scheduler s(*policy, o);
    run_requests(s, 3);
    s.shutdown();
    EXPECT_TRUE(cap.lines("telemetry").empty());
  }
}

TEST(Telemetry, PolicyLogsEveryNInferences) {
  PolicyOptions po;
  po.threads = 1;
  po.telemetry_log_every = 3;
  po.vision_cache_bytes = size_t{8} << 20;
  auto policy = Policy::load(vt::default_policy_dir(), po);
  LogCapture cap(LogLevel::kInfo);
  const Observation o = vt::sample_observation();
  for (int i = 0; i < 4; ++i) policy->infer(o);
  policy->infer_batch({o, o});  // the 5th and 6th observation
  const std::vector<std::string> l = cap.lines("policy telemetry:");
  ASSERT_EQ(l.size(), 2u);
  EXPECT_NE(l[0].find("3 inferences"), std::string::npos) << l[0];
  EXPECT_NE(l[0].find("vision cache 4/6 hits"), std::string::npos) << l[0];  // 2 cameras x 3 inferences
  EXPECT_NE(l[1].find("3 inferences"), std::string::npos) << l[1];
}

TEST(Telemetry, BadOptionsAreRejected) {
  auto policy = vt::load_default_policy();
  SchedulerOptions o;
  o.telemetry_log_period = std::chrono::milliseconds(-1);
  EXPECT_THROW(Scheduler(*policy, o), InvalidArgument);
  o = {};
  o.telemetry_log_level = static_cast<LogLevel>(42);
  EXPECT_THROW(Scheduler(*policy, o), InvalidArgument);
}
