// Serving many clients from one policy: N client threads, each sending requests one after the
// other (submit, wait for the answer, next), through
//   Scheduler/clients:N/max_wait_us:W : vlart::Scheduler (batches concurrent requests into
//                  Policy::infer_batch), with max_wait_us 0 (the default) and 500
//   Mutex/N      : the baseline, every client calling Policy::infer under one mutex
// on $VLART_SMOLVLA_DIR when set, else the bundled tiny policy. Frames are the 480x640 synthetic
// kind (resize-with-pad included). Counters: inferences per second (wall clock) and the client-seen
// latency p50/p99 (ms) over all requests of the run. Policy threads: $VLART_BENCH_THREADS (default
// 0 = all cores). Each client sends kRequests per iteration; thread start-up is inside the timing
// but small against kRequests inferences.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_policy_inputs.h"
#include "vlart/policy.h"
#include "vlart/scheduler.h"

using namespace vlart;

namespace {

constexpr int kRequests = 16;  // per client per iteration

using bench::policy_dir;
using bench::synthetic_obs;

Policy* shared_policy(std::string* error) {
  static std::unique_ptr<Policy> p;
  static std::string err;
  static std::once_flag once;
  std::call_once(once, [] {
    PolicyOptions opt;
    const char* t = std::getenv("VLART_BENCH_THREADS");
    opt.threads = t ? std::atoi(t) : 0;
    try {
      p = Policy::load(policy_dir(), opt);
    } catch (const std::exception& e) {
      err = e.what();
    }
  });
  *error = err;
  return p.get();
}

double percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t r = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size(), std::max<size_t>(1, r)) - 1];
}

// Runs `clients` threads each calling `one(client)` kRequests times; returns per-request latency ms.
template <typename F>
std::vector<double> run_clients(int clients, F one) {
  std::vector<std::vector<double>> lat(static_cast<size_t>(clients));
  std::vector<std::thread> th;
  for (int c = 0; c < clients; ++c)
    th.emplace_back([&, c] {
      for (int i = 0; i < kRequests; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        one(c);
        lat[static_cast<size_t>(c)].push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
    });
  for (auto& t : th) t.join();
  std::vector<double> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  return all;
}

void report(benchmark::State& st, std::vector<double>& lat, int64_t total) {
  st.counters["inf/s"] = benchmark::Counter(static_cast<double>(total), benchmark::Counter::kIsRate);
  st.counters["p50_ms"] = percentile(lat, 0.50);
  st.counters["p99_ms"] = percentile(lat, 0.99);
}

void BM_Scheduler(benchmark::State& st) {
  std::string err;
  Policy* p = shared_policy(&err);
  if (!p) return st.SkipWithError(err.c_str());
  const int clients = static_cast<int>(st.range(0));
  std::vector<Observation> obs;
  for (int c = 0; c < clients; ++c) obs.push_back(synthetic_obs(*p, 100 + static_cast<unsigned>(c)));
  SchedulerOptions so;
  so.max_batch = 8;
  // Second argument: max_wait_us. 0 is the default (start as soon as the worker is free); with a
  // wait, a lone client pays it on every request (the scheduler waits for a batch to fill).
  so.max_wait_us = st.range(1);
  so.max_queue = 1024;
  Scheduler sched(*p, so);
  std::vector<double> lat;
  int64_t total = 0;
  std::atomic<int64_t> failed{0};
  for (auto _ : st) {
    std::vector<double> l = run_clients(clients, [&](int c) {
      Scheduler::Result r = sched.submit(obs[static_cast<size_t>(c)]).get();
      if (r.status != Scheduler::Status::kOk) ++failed;
    });
    lat.insert(lat.end(), l.begin(), l.end());
    total += static_cast<int64_t>(l.size());
  }
  if (failed) st.SkipWithError("scheduler answered a request with an error");
  report(st, lat, total);
  const SchedulerStats s = sched.stats();
  st.counters["mean_batch"] = s.batches ? static_cast<double>(s.ok) / static_cast<double>(s.batches) : 0.0;
}

void BM_Mutex(benchmark::State& st) {
  std::string err;
  Policy* p = shared_policy(&err);
  if (!p) return st.SkipWithError(err.c_str());
  const int clients = static_cast<int>(st.range(0));
  std::vector<Observation> obs;
  for (int c = 0; c < clients; ++c) obs.push_back(synthetic_obs(*p, 100 + static_cast<unsigned>(c)));
  std::mutex mu;
  std::vector<double> lat;
  int64_t total = 0;
  for (auto _ : st) {
    std::vector<double> l = run_clients(clients, [&](int c) {
      std::lock_guard<std::mutex> lk(mu);
      benchmark::DoNotOptimize(p->infer(obs[static_cast<size_t>(c)]));
    });
    lat.insert(lat.end(), l.begin(), l.end());
    total += static_cast<int64_t>(l.size());
  }
  report(st, lat, total);
}

}  // namespace

BENCHMARK(BM_Scheduler)
    ->ArgsProduct({{1, 2, 4, 8, 16}, {0, 500}})
    ->ArgNames({"clients", "max_wait_us"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);
BENCHMARK(BM_Mutex)->RangeMultiplier(2)->Range(1, 16)->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(3);

BENCHMARK_MAIN();
