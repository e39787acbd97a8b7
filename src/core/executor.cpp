#include "core/executor.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "core/alloc_guard.h"
#include "core/log.h"
#include "vlart/error.h"

namespace vlart {
namespace {

// A value as the executor sees it: graph values plus the copies placement inserts.
struct ExecValue {
  std::string name;
  Shape shape;
  DType dtype = DType::kF32;
  int slot = 0;          // device slot (0 = host)
  bool weight = false;   // constant, not planned
  bool pinned = false;   // graph input or output: never reused
  int alias_of = -1;     // reshape: view of this exec value's memory
  int def = -1;          // defining step (-1: before the first step)
  int last = -1;         // last reading step
  int request = -1;      // index into the planner's requests
  Tensor tensor;         // bound view
};

enum class StepKind { kKernel, kCopy, kAlias };

struct Step {
  StepKind kind = StepKind::kKernel;
  Backend* backend = nullptr;
  std::unique_ptr<OpKernel> kernel;
  std::vector<int> ins;  // exec value ids (-1 for absent optional)
  int out = -1;
  OpKind op = OpKind::kCount;
  std::vector<const Tensor*> arg_ptrs;
  KernelArgs args;
  std::string observe;  // Linear with a weight W: the weight's name (for linear_input_observer)
};

bool elementwise_inplace_ok(OpKind op) {
  switch (op) {
    case OpKind::kGelu:
    case OpKind::kSilu:
    case OpKind::kRelu:
    case OpKind::kScale:
    case OpKind::kAdd:
    case OpKind::kMul:
    case OpKind::kSub:
    case OpKind::kDiv:
    case OpKind::kTanh:
    case OpKind::kSigmoid:
    case OpKind::kExp:
    case OpKind::kSwiGLU:
    case OpKind::kGeGLU:
      return true;
    default:
      return false;
  }
}

size_t value_bytes(const ExecValue& v) { return dtype_nbytes(v.dtype, v.shape.numel()); }

}  // namespace

struct Executor::Impl {
  std::vector<Backend*> backends;
  std::vector<Device> slot_devices;       // slot -> device
  std::vector<Backend*> slot_backends;    // slot -> backend owning its allocator (host: nullptr)
  std::vector<ExecValue> values;
  std::vector<Step> steps;
  std::vector<int> input_ids, output_ids;
  std::vector<std::shared_ptr<Storage>> arenas;     // per slot
  std::vector<std::shared_ptr<Storage>> scratches;  // per slot
  std::vector<Tensor> uploaded_weights;             // device copies of weights
  MemoryPlan plan;

  int slot_of(Device d) {
    for (size_t i = 0; i < slot_devices.size(); ++i)
      if (slot_devices[i] == d) return static_cast<int>(i);
    slot_devices.push_back(d);
    slot_backends.push_back(nullptr);
    return static_cast<int>(slot_devices.size() - 1);
  }
  // Views of the values that alias another (Reshape, in-place KVWrite), after any (re)binding; an
  // alias always has a higher id than what it aliases.
  void bind_aliases() {
    for (ExecValue& ev : values)
      if (ev.alias_of >= 0 && values[static_cast<size_t>(ev.alias_of)].tensor.defined())
        ev.tensor = values[static_cast<size_t>(ev.alias_of)].tensor.reshape(ev.shape);
  }
  std::vector<std::string> output_names;  // graph names of the outputs, in order
  int root(int v) const {
    while (values[static_cast<size_t>(v)].alias_of >= 0) v = values[static_cast<size_t>(v)].alias_of;
    return v;
  }
  std::shared_ptr<Storage> alloc_on(int slot, size_t bytes) {
    Allocator* a = slot == 0 ? cpu_allocator() : slot_backends[static_cast<size_t>(slot)]->allocator();
    void* p = a->allocate(std::max<size_t>(bytes, kArenaAlignment));
    return std::make_shared<Storage>(p, bytes, a->device(), a, nullptr);
  }
};

Executor::~Executor() = default;

Executor::Executor(const Graph& graph, std::vector<Backend*> backends, const ExecutorOptions& opts)
    : Executor(graph, nullptr, std::move(backends), opts) {}

std::unique_ptr<Executor> Executor::consume(Graph& graph, std::vector<Backend*> backends, const ExecutorOptions& opts) {
  return std::unique_ptr<Executor>(new Executor(graph, &graph, std::move(backends), opts));
}

Executor::Executor(const Graph& graph, Graph* release, std::vector<Backend*> backends, const ExecutorOptions& opts)
    : impl_(std::make_unique<Impl>()), opts_(opts) {
  Impl& m = *impl_;
  VLART_CHECK(!backends.empty(), InvalidArgument, "executor needs at least one backend");
  for (Backend* b : backends) VLART_CHECK(b != nullptr, InvalidArgument, "executor: null backend");
  VLART_CHECK(!opts.forbid_allocations_in_run || alloc_guard::hook_installed(), InvalidArgument,
              "ExecutorOptions::forbid_allocations_in_run needs the vlart_alloc_hook object linked into the program");
  VLART_CHECK(!graph.outputs().empty(), InvalidArgument, "graph has no outputs");
  m.backends = backends;
  m.slot_of(Device::cpu());
  for (Backend* b : backends) {
    const int s = m.slot_of(b->device());
    if (s != 0) m.slot_backends[static_cast<size_t>(s)] = b;
  }

  // Graph values first, same ids.
  for (const Value& gv : graph.values()) {
    ExecValue ev;
    ev.name = gv.name;
    ev.shape = gv.shape;
    ev.dtype = gv.dtype;
    ev.weight = gv.kind == ValueKind::kWeight;
    ev.pinned = gv.kind == ValueKind::kInput;
    if (ev.weight) ev.tensor = gv.constant;
    m.values.push_back(std::move(ev));
  }
  m.input_ids.assign(graph.inputs().begin(), graph.inputs().end());

  std::map<std::pair<int, int>, int> copies;    // (value, slot) -> copied value
  std::map<std::pair<int, int>, int> uploads;   // (weight, slot) -> uploaded value
  auto add_copy = [&](int src, int slot, Backend* via) {
    auto key = std::make_pair(src, slot);
    auto it = copies.find(key);
    if (it != copies.end()) return it->second;
    ExecValue ev = m.values[static_cast<size_t>(src)];
    ev.name = "copy:" + ev.name + "@" + m.slot_devices[static_cast<size_t>(slot)].str();
    ev.slot = slot;
    ev.pinned = false;
    ev.alias_of = -1;
    ev.tensor = Tensor();
    m.values.push_back(ev);
    const int id = static_cast<int>(m.values.size() - 1);
    Step st;
    st.kind = StepKind::kCopy;
    st.backend = via;
    st.ins = {src};
    st.out = id;
    st.op = OpKind::kCopy;
    m.steps.push_back(std::move(st));
    step_info_.push_back({ev.name, "Copy", via->name()});
    copies[key] = id;
    return id;
  };

  // consume(): weight uses still to prepare, and those whose kernel repacked the weight.
  std::vector<int> uses_left(graph.values().size(), 0), repacked(graph.values().size(), 0);
  if (release)
    for (const Node& n : graph.nodes())
      for (ValueId v : n.inputs)
        if (v != kNoValue && graph.value(v).kind == ValueKind::kWeight) ++uses_left[static_cast<size_t>(v)];
  const std::vector<int> uses_total = uses_left;
  for (const Node& n : graph.nodes()) {
    if (n.op == OpKind::kReshape) {
      const int src = n.inputs.at(0);
      ExecValue& out = m.values[static_cast<size_t>(n.output)];
      out.alias_of = src;
      out.slot = m.values[static_cast<size_t>(src)].slot;
      Step st;
      st.kind = StepKind::kAlias;
      st.ins = {src};
      st.out = n.output;
      st.op = n.op;
      m.steps.push_back(std::move(st));
      step_info_.push_back({n.name, op_name(n.op), "alias"});
      continue;
    }
    Backend* chosen = nullptr;
    for (Backend* b : m.backends)
      if (b->supports(graph, n)) {
        chosen = b;
        break;
      }
    if (!chosen) {
      std::string shapes;
      for (ValueId v : n.inputs)
        if (v != kNoValue) shapes += std::string(" ") + dtype_name(graph.value(v).dtype) + graph.value(v).shape.str();
      throw UnsupportedError(detail::concat("no backend supports node '", n.name, "' (", op_name(n.op),
                                            ") with inputs", shapes));
    }
    const int slot = m.slot_of(chosen->device());
    std::unique_ptr<OpKernel> kernel = chosen->prepare(graph, n);
    Step st;
    st.kind = StepKind::kKernel;
    st.backend = chosen;
    st.op = n.op;
    if (n.op == OpKind::kLinear && n.inputs.size() > 1 && graph.value(n.inputs[1]).kind == ValueKind::kWeight)
      st.observe = graph.value(n.inputs[1]).name;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const ValueId v = n.inputs[i];
      if (v == kNoValue) {
        st.ins.push_back(-1);
        continue;
      }
      ExecValue& ev = m.values[static_cast<size_t>(v)];
      if (ev.slot == slot || (ev.weight && kernel->owns_input(static_cast<int>(i)))) {
        st.ins.push_back(v);
      } else if (ev.weight) {
        auto key = std::make_pair(static_cast<int>(v), slot);
        auto it = uploads.find(key);
        if (it == uploads.end()) {
          Tensor dev = Tensor::empty(ev.shape, ev.dtype, chosen->allocator());
          chosen->copy(ev.tensor, dev);
          chosen->synchronize();
          m.uploaded_weights.push_back(dev);
          ExecValue up = ev;
          up.slot = slot;
          up.tensor = dev;
          m.values.push_back(up);
          it = uploads.emplace(key, static_cast<int>(m.values.size() - 1)).first;
        }
        st.ins.push_back(it->second);
      } else {
        Backend* via = slot != 0 ? chosen : m.slot_backends[static_cast<size_t>(ev.slot)];
        st.ins.push_back(add_copy(v, slot, via));
      }
    }
    st.out = n.output;
    m.values[static_cast<size_t>(n.output)].slot = slot;
    if (n.op == OpKind::kKVWrite) {
      // In place: the output is the cache input's own memory, so the cache must be where the kernel runs.
      VLART_CHECK(st.ins[0] == n.inputs[0], UnsupportedError, "node '", n.name, "' (KVWrite) runs on ",
                  chosen->name(), " but its cache '", m.values[static_cast<size_t>(n.inputs[0])].name,
                  "' lives on ", m.slot_devices[static_cast<size_t>(m.values[static_cast<size_t>(n.inputs[0])].slot)].str(),
                  ": a cache must live on the device of its writer");
      m.values[static_cast<size_t>(n.output)].alias_of = st.ins[0];
    }
    if (release)
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        const ValueId v = n.inputs[i];
        if (v == kNoValue || graph.value(v).kind != ValueKind::kWeight) continue;
        const size_t u = static_cast<size_t>(v);
        --uses_left[u];
        if (kernel->owns_input(static_cast<int>(i))) ++repacked[u];
        if (uses_left[u] == 0 && repacked[u] == uses_total[u]) {  // every reader repacked it
          m.values[u].tensor = Tensor();
          release->value(v).constant = Tensor();
        }
      }
    st.kernel = std::move(kernel);
    m.steps.push_back(std::move(st));
    step_info_.push_back({n.name, op_name(n.op), chosen->name()});
  }
  // Outputs end on the host.
  for (ValueId o : graph.outputs()) {
    int id = o;
    const ExecValue& ev = m.values[static_cast<size_t>(o)];
    VLART_CHECK(!ev.weight, InvalidArgument, "graph output '", ev.name, "' is a weight");
    if (ev.slot != 0) id = add_copy(o, 0, m.slot_backends[static_cast<size_t>(ev.slot)]);
    m.output_ids.push_back(id);
    m.output_names.push_back(graph.value(o).name);
  }

  // Liveness.
  for (size_t s = 0; s < m.steps.size(); ++s) {
    Step& st = m.steps[s];
    m.values[static_cast<size_t>(st.out)].def = static_cast<int>(s);
    for (int v : st.ins)
      if (v >= 0) {
        const int r = m.root(v);
        m.values[static_cast<size_t>(r)].last = std::max(m.values[static_cast<size_t>(r)].last, static_cast<int>(s));
        m.values[static_cast<size_t>(v)].last = std::max(m.values[static_cast<size_t>(v)].last, static_cast<int>(s));
      }
  }
  for (int o : m.output_ids) m.values[static_cast<size_t>(m.root(o))].pinned = true;
  for (int i : m.input_ids) m.values[static_cast<size_t>(i)].pinned = true;

  // Planner requests in definition order: inputs, then step outputs.
  std::vector<BufferRequest> reqs;
  std::vector<int> req_value;
  auto request = [&](int v, int reuse_of_value) {
    ExecValue& ev = m.values[static_cast<size_t>(v)];
    BufferRequest q;
    q.bytes = value_bytes(ev);
    q.device_slot = ev.slot;
    q.first = ev.def;
    q.last = ev.pinned ? kPinned : std::max(ev.last, ev.def);
    q.reuse_of = reuse_of_value >= 0 ? m.values[static_cast<size_t>(reuse_of_value)].request : -1;
    ev.request = static_cast<int>(reqs.size());
    reqs.push_back(q);
    req_value.push_back(v);
  };
  for (int i : m.input_ids) request(i, -1);
  for (size_t s = 0; s < m.steps.size(); ++s) {
    Step& st = m.steps[s];
    if (st.kind == StepKind::kAlias || m.values[static_cast<size_t>(st.out)].alias_of >= 0) continue;
    int reuse = -1;
    if (st.kind == StepKind::kKernel && elementwise_inplace_ok(st.op) && st.ins[0] >= 0) {
      const int r = m.root(st.ins[0]);
      const ExecValue& src = m.values[static_cast<size_t>(r)];
      const ExecValue& out = m.values[static_cast<size_t>(st.out)];
      const bool input_is_whole = value_bytes(m.values[static_cast<size_t>(st.ins[0])]) == value_bytes(src);
      if (!src.weight && !src.pinned && src.request >= 0 && src.slot == out.slot && src.last == static_cast<int>(s) &&
          src.dtype == out.dtype && m.values[static_cast<size_t>(st.ins[0])].shape.numel() == out.shape.numel() &&
          input_is_whole && value_bytes(src) >= value_bytes(out))
        reuse = r;
    }
    request(st.out, reuse);
  }
  m.plan = plan_memory(reqs, static_cast<int>(m.slot_devices.size()));

  // Allocate arenas and scratch, bind views.
  std::vector<size_t> scratch_bytes(m.slot_devices.size(), 0);
  for (const Step& st : m.steps)
    if (st.kernel) {
      const int slot = m.values[static_cast<size_t>(st.out)].slot;
      scratch_bytes[static_cast<size_t>(slot)] = std::max(scratch_bytes[static_cast<size_t>(slot)], st.kernel->scratch_bytes());
    }
  for (size_t s = 0; s < m.slot_devices.size(); ++s) {
    m.arenas.push_back(m.alloc_on(static_cast<int>(s), m.plan.arena_bytes[s]));
    m.scratches.push_back(m.alloc_on(static_cast<int>(s), scratch_bytes[s]));
  }
  for (size_t r = 0; r < reqs.size(); ++r) {
    ExecValue& ev = m.values[static_cast<size_t>(req_value[r])];
    char* base = static_cast<char*>(m.arenas[static_cast<size_t>(ev.slot)]->data());
    ev.tensor = Tensor::from_blob(base + m.plan.buffers[r].offset, ev.shape, ev.dtype,
                                  m.slot_devices[static_cast<size_t>(ev.slot)]);
  }
  m.bind_aliases();
  // Weights that every consuming kernel repacked into its own copy at prepare time are never read
  // again: drop this executor's reference (the memory goes once the graph drops its own too).
  {
    std::vector<int> uses(m.values.size(), 0), owned(m.values.size(), 0);
    for (const Step& st : m.steps)
      for (size_t i = 0; i < st.ins.size(); ++i) {
        const int v = st.ins[i];
        if (v < 0 || !m.values[static_cast<size_t>(v)].weight) continue;
        ++uses[static_cast<size_t>(v)];
        if (st.kind == StepKind::kKernel && st.kernel && st.kernel->owns_input(static_cast<int>(i)))
          ++owned[static_cast<size_t>(v)];
      }
    for (size_t v = 0; v < m.values.size(); ++v)
      if (m.values[v].weight && uses[v] > 0 && uses[v] == owned[v]) m.values[v].tensor = Tensor();
  }
  for (Step& st : m.steps) {
    if (st.kind != StepKind::kKernel) continue;
    for (int v : st.ins) st.arg_ptrs.push_back(v >= 0 ? &m.values[static_cast<size_t>(v)].tensor : nullptr);
    st.args.inputs = st.arg_ptrs.data();
    st.args.num_inputs = static_cast<int>(st.arg_ptrs.size());
    st.args.output = &m.values[static_cast<size_t>(st.out)].tensor;
    st.args.scratch = m.scratches[static_cast<size_t>(m.values[static_cast<size_t>(st.out)].slot)]->data();
  }
  step_times_us_.assign(m.steps.size(), 0.0);
  logger().info("executor: {} steps on {} device(s); arena {} KiB (without reuse {} KiB); forbid_allocations={}",
                m.steps.size(), m.slot_devices.size(), m.plan.arena_bytes[0] / 1024, m.plan.naive_bytes[0] / 1024,
                opts.forbid_allocations_in_run);
}

int Executor::num_inputs() const { return static_cast<int>(impl_->input_ids.size()); }
int Executor::num_outputs() const { return static_cast<int>(impl_->output_ids.size()); }
int Executor::num_device_slots() const { return static_cast<int>(impl_->slot_devices.size()); }
size_t Executor::arena_bytes(int slot) const { return impl_->plan.arena_bytes.at(static_cast<size_t>(slot)); }
size_t Executor::naive_bytes(int slot) const { return impl_->plan.naive_bytes.at(static_cast<size_t>(slot)); }

Tensor& Executor::input(int i) {
  VLART_CHECK(i >= 0 && i < num_inputs(), InvalidArgument, "input index ", i, " out of range (", num_inputs(), " inputs)");
  return impl_->values[static_cast<size_t>(impl_->input_ids[static_cast<size_t>(i)])].tensor;
}
Tensor& Executor::input(const std::string& name) {
  for (int i : impl_->input_ids)
    if (impl_->values[static_cast<size_t>(i)].name == name) return impl_->values[static_cast<size_t>(i)].tensor;
  throw NotFoundError("executor has no input named '" + name + "'");
}
int Executor::input_index(const std::string& name) const {
  for (size_t i = 0; i < impl_->input_ids.size(); ++i)
    if (impl_->values[static_cast<size_t>(impl_->input_ids[i])].name == name) return static_cast<int>(i);
  return -1;
}
int Executor::output_index(const std::string& name) const {
  for (size_t i = 0; i < impl_->output_names.size(); ++i)
    if (impl_->output_names[i] == name) return static_cast<int>(i);
  return -1;
}
const std::string& Executor::output_name(int i) const {
  VLART_CHECK(i >= 0 && i < num_outputs(), InvalidArgument, "output index ", i, " out of range (", num_outputs(), " outputs)");
  return impl_->output_names[static_cast<size_t>(i)];
}
const Tensor& Executor::output(const std::string& name) const {
  const int i = output_index(name);
  if (i < 0) throw NotFoundError("executor has no output named '" + name + "'");
  return output(i);
}

void Executor::bind(const std::string& name, const Tensor& t) {
  Impl& m = *impl_;
  int id = -1;
  const char* what = "input";
  const int ii = input_index(name);
  if (ii >= 0) {
    id = m.input_ids[static_cast<size_t>(ii)];
  } else {
    const int oi = output_index(name);
    if (oi < 0) throw NotFoundError("executor has no input or output named '" + name + "' to bind");
    id = m.output_ids[static_cast<size_t>(oi)];
    what = "output";
  }
  ExecValue& ev = m.values[static_cast<size_t>(id)];
  VLART_CHECK(ev.alias_of < 0, InvalidArgument, "executor ", what, " '", name,
              "' is a view of another value (a reshape or an in-place write): bind that value instead");
  VLART_CHECK(t.defined(), InvalidArgument, "executor ", what, " '", name, "': cannot bind an undefined tensor");
  VLART_CHECK(t.shape() == ev.shape && t.dtype() == ev.dtype, InvalidArgument, "executor ", what, " '", name,
              "': expected ", dtype_name(ev.dtype), ev.shape.str(), ", got ", dtype_name(t.dtype()), t.shape().str());
  const Device want = m.slot_devices[static_cast<size_t>(ev.slot)];
  VLART_CHECK(t.device() == want, InvalidArgument, "executor ", what, " '", name, "' lives on ", want.str(),
              ", got a tensor on ", t.device().str());
  VLART_CHECK(t.is_contiguous(), InvalidArgument, "executor ", what, " '", name, "': the tensor must be contiguous");
  ev.tensor = t;
  m.bind_aliases();
}

const Tensor& Executor::output(int i) const {
  VLART_CHECK(i >= 0 && i < num_outputs(), InvalidArgument, "output index ", i, " out of range (", num_outputs(), " outputs)");
  return impl_->values[static_cast<size_t>(impl_->output_ids[static_cast<size_t>(i)])].tensor;
}

void Executor::run() {
  Impl& m = *impl_;
  alloc_guard::ArmScope guard(opts_.forbid_allocations_in_run);
  for (Backend* b : m.backends) b->begin_run();
  size_t s = 0;
  try {
    for (; s < m.steps.size(); ++s) {
      Step& st = m.steps[s];
      const auto t0 = opts_.profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
      switch (st.kind) {
        case StepKind::kKernel:
          if (opts_.linear_input_observer && !st.observe.empty() && st.arg_ptrs[0] &&
              st.arg_ptrs[0]->device().is_cpu()) {
            alloc_guard::PauseScope pause;
            opts_.linear_input_observer(st.observe, *st.arg_ptrs[0]);
          }
          st.kernel->run(st.args);
          break;
        case StepKind::kCopy:
          st.backend->copy(m.values[static_cast<size_t>(st.ins[0])].tensor, m.values[static_cast<size_t>(st.out)].tensor);
          break;
        case StepKind::kAlias:
          break;
      }
      if (opts_.profile)
        step_times_us_[s] = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    }
    for (Backend* b : m.backends) b->synchronize();
  } catch (const alloc_guard::AllocationInRun&) {
    alloc_guard::PauseScope pause;
    const StepInfo& si = step_info_.at(std::min(s, step_info_.size() - 1));
    throw Error(ErrorCode::kAllocationInRun,
                detail::concat("heap allocation during Executor::run in step ", s, " ('", si.name, "', ", si.op,
                               " on ", si.backend, ") with forbid_allocations_in_run set"));
  }
  const alloc_guard::Counts c = guard.counts();
  last_allocs_ = c.allocations;
  last_exempt_ = c.exempt_allocations;
}

}  // namespace vlart
