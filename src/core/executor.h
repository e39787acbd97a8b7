// Executor: places a Graph on backends, plans its activation memory once, prepares every kernel
// (weights repacked once), then runs it any number of times without allocating.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/graph.h"
#include "core/memory_planner.h"

namespace vlart {

struct ExecutorOptions {
  // Debug switch: any heap allocation made by vlart code on the calling thread inside run() becomes an
  // Error(kAllocationInRun) naming the node. Needs the vlart_alloc_hook object linked.
  bool forbid_allocations_in_run = false;
  // Record the wall time of every step (read with step_times_us()).
  bool profile = false;
  // Calibration hook: called before every Linear whose W is a weight, with the weight's value name
  // and the activation input (a CPU tensor, valid during the call only). Empty = off (the default;
  // costs one branch per step).
  std::function<void(const std::string& weight, const Tensor& x)> linear_input_observer;
};

struct StepInfo {
  std::string name;  // node name, or "copy:<value>" for inserted copies
  std::string op;
  std::string backend;
};

class Executor {
 public:
  // `backends` in priority order; each node goes to the first one whose supports() accepts it.
  // Nodes no backend supports raise UnsupportedError naming the node.
  Executor(const Graph& graph, std::vector<Backend*> backends, const ExecutorOptions& opts = {});
  // Same, and drops `graph`'s reference to each weight as soon as every kernel reading it has
  // repacked it into its own copy, while the executor is built: a stage whose weights were converted
  // (bf16 checkpoint, f32 compute) then peaks at about one converted layer beside the packed ones,
  // not all of them. The graph cannot build another executor afterwards.
  static std::unique_ptr<Executor> consume(Graph& graph, std::vector<Backend*> backends,
                                           const ExecutorOptions& opts = {});
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  int num_inputs() const;
  int num_outputs() const;
  // Host tensors to fill before run(); they stay valid for the executor's lifetime.
  Tensor& input(int i);
  Tensor& input(const std::string& name);
  // Host views of the outputs after run(), by index or by name (the graph value's name, or the one
  // given to Graph::mark_output).
  const Tensor& output(int i) const;
  const Tensor& output(const std::string& name) const;
  const std::string& output_name(int i) const;
  int input_index(const std::string& name) const;   // -1 when absent
  int output_index(const std::string& name) const;  // -1 when absent

  // Caller-owned buffers: run() reads input `name` from / writes output `name` into `t` instead of
  // the executor's own memory, until bound again (the executor keeps a reference). `t` must be
  // contiguous with the value's shape and dtype, on the device where the value lives (the host for
  // inputs and outputs today). A KV cache written by KVWrite is such an input: bind it once, and
  // every run() appends to it in place. Outputs that are views of another value cannot be bound.
  void bind(const std::string& name, const Tensor& t);

  void run();

  // Introspection.
  const std::vector<StepInfo>& steps() const { return step_info_; }
  const std::vector<double>& step_times_us() const { return step_times_us_; }
  size_t arena_bytes(int device_slot = 0) const;
  size_t naive_bytes(int device_slot = 0) const;
  int num_device_slots() const;
  // Allocations counted during the last run() (needs vlart_alloc_hook).
  uint64_t last_run_allocations() const { return last_allocs_; }
  uint64_t last_run_exempt_allocations() const { return last_exempt_; }

 private:
  struct Impl;
  Executor(const Graph& graph, Graph* release, std::vector<Backend*> backends, const ExecutorOptions& opts);
  std::unique_ptr<Impl> impl_;
  std::vector<StepInfo> step_info_;
  std::vector<double> step_times_us_;
  ExecutorOptions opts_;
  uint64_t last_allocs_ = 0;
  uint64_t last_exempt_ = 0;
};

}  // namespace vlart
