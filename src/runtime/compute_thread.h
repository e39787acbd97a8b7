// One long-lived thread on which a Policy runs all of its graph work.
//
// Why: the CPU backend parallelises with OpenMP, and libgomp keeps one thread pool per thread that
// starts parallel regions. A policy called from several threads (a scheduler worker, a chunk
// runner, clients taking turns under a mutex) would grow one pool per caller; once the pools hold
// more threads than there are cores, libgomp stops spinning between regions and every one of the
// ~1000 small parallel regions of an inference pays a futex wake-up (measured: 25-70% slower
// denoising on 2 cores). Running everything on one thread keeps exactly one pool.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace vlart {

class ComputeThread {
 public:
  ComputeThread() : thread_([this] { loop(); }) {}
  ~ComputeThread() {
    {
      std::lock_guard<std::mutex> l(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  ComputeThread(const ComputeThread&) = delete;
  ComputeThread& operator=(const ComputeThread&) = delete;

  // Runs `f` on the compute thread and waits for it; exceptions propagate to the caller. Calls
  // from several threads are served one at a time; a call from the compute thread runs inline.
  void run(const std::function<void()>& f) {
    if (std::this_thread::get_id() == thread_.get_id()) {
      f();
      return;
    }
    std::lock_guard<std::mutex> one_at_a_time(call_m_);
    std::exception_ptr err;
    const std::function<void()> task = [&] {
      try {
        f();
      } catch (...) {
        err = std::current_exception();
      }
    };
    {
      std::unique_lock<std::mutex> l(m_);
      task_ = &task;
      done_ = false;
      cv_.notify_all();
      cv_.wait(l, [&] { return done_; });
    }
    if (err) std::rethrow_exception(err);
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> l(m_);
    for (;;) {
      cv_.wait(l, [&] { return stop_ || task_ != nullptr; });
      if (task_ == nullptr) return;  // stop requested and nothing pending
      const std::function<void()>* t = task_;
      l.unlock();
      (*t)();
      l.lock();
      task_ = nullptr;
      done_ = true;
      cv_.notify_all();
    }
  }

  std::mutex call_m_;  // serialises run() callers
  std::mutex m_;
  std::condition_variable cv_;
  const std::function<void()>* task_ = nullptr;
  bool done_ = false;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the state above is initialised
};

}  // namespace vlart
