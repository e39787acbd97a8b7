// vlart._vlart: the Python binding of vlart::Policy (nanobind). The thin, typed layer; the
// friendlier conversions (dtype casts of state and noise, dict observations) live in
// python/vlart/__init__.py.
//
// Frames are borrowed, not copied: a uint8 [H, W, 3] numpy array whose pixels and channels are
// contiguous (any row stride) becomes a vlart::Image view for the duration of the call. The GIL is
// released while the policy runs, so other Python threads (a control loop, another policy) go on.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "vlart/error.h"
#include "vlart/policy.h"
#include "vlart/system.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using U8Image = nb::ndarray<const uint8_t, nb::ndim<3>, nb::device::cpu>;
using F32Vec = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using F32Any = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;
using F32Out = nb::ndarray<float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

PyObject* g_error = nullptr;          // vlart.VlartError(RuntimeError)
PyObject* g_invalid = nullptr;        // vlart.InvalidArgumentError(VlartError, ValueError)
PyObject* g_not_found = nullptr;      // vlart.NotFoundError(VlartError, FileNotFoundError)
PyObject* g_unsupported = nullptr;    // vlart.UnsupportedError(VlartError, NotImplementedError)
PyObject* g_format = nullptr;         // vlart.FormatError(VlartError, ValueError)
PyObject* g_io = nullptr;             // vlart.IoError(VlartError, OSError)

vlart::Image borrow(const std::string& cam, const U8Image& a) {
  // shape [H, W, 3], pixel stride 3 and channel stride 1 (elements); rows may be padded.
  if (a.shape(2) != 3 || a.stride(2) != 1 || a.stride(1) != 3 || a.stride(0) < static_cast<int64_t>(a.shape(1)) * 3)
    throw vlart::InvalidArgument("image '" + cam + "': expected uint8 [height, width, 3] with contiguous pixels (HWC "
                                 "RGB; np.ascontiguousarray), got shape [" +
                                 std::to_string(a.shape(0)) + ", " + std::to_string(a.shape(1)) + ", " +
                                 std::to_string(a.shape(2)) + "]");
  return vlart::Image::borrow(a.data(), static_cast<int64_t>(a.shape(0)), static_cast<int64_t>(a.shape(1)),
                              a.stride(0));
}

vlart::Observation make_obs(const std::map<std::string, U8Image>& images, const F32Vec& state, const std::string& task,
                            const std::optional<std::vector<int64_t>>& token_ids, const std::string& robot_id) {
  vlart::Observation o;
  for (const auto& [cam, a] : images) o.images[cam] = borrow(cam, a);
  o.state.assign(state.data(), state.data() + state.shape(0));
  o.task = task;
  o.token_ids = token_ids;
  o.robot_id = robot_id;
  return o;
}

// The actions as a bytearray (one allocation + an 800-byte copy for a 50 x 4 chunk): the Python
// layer views it with np.frombuffer. Measured cheaper than exporting an ndarray from C++ right after
// an inference (cold caches: ~30 us against ~1 us).
nb::object actions_bytes(const vlart::ActionChunk& c) {
  PyObject* b = PyByteArray_FromStringAndSize(reinterpret_cast<const char*>(c.data.data()),
                                              static_cast<Py_ssize_t>(c.data.size() * sizeof(float)));
  if (!b) throw nb::python_error();
  return nb::steal(b);
}

void check_noise(const vlart::Policy& p, const F32Any& noise, size_t count) {
  const size_t want = static_cast<size_t>(p.noise_numel()) * count;
  if (noise.size() != want)
    throw vlart::InvalidArgument("noise has " + std::to_string(noise.size()) + " floats, expected " +
                                 std::to_string(want) + (count > 1 ? " (observations x " : " (") +
                                 "noise_shape of info)");
}

nb::dict cache_dict(const vlart::CacheStats& s) {
  nb::dict d;
  d["hits"] = s.hits;
  d["misses"] = s.misses;
  d["evictions"] = s.evictions;
  d["entries"] = s.entries;
  d["bytes"] = s.bytes;
  d["budget_bytes"] = s.budget_bytes;
  return d;
}

nb::dict timings_dict(const vlart::StageTimings& t) {
  nb::dict d;
  for (const vlart::StageTime& s : t.stages) d[s.name.c_str()] = s.ms;
  d["total"] = t.total_ms;
  return d;
}

// What an inference returns besides the actions; the timings dict is built when asked for.
struct Meta {
  vlart::StageTimings timings;
  double call_ms = 0;  // wall time of the C++ Policy call as the binding saw it
  std::string text;
  std::vector<int32_t> tokens;
  nb::dict timings_dict() const {
    nb::dict d = ::timings_dict(timings);
    d["call"] = call_ms;
    return d;
  }
};

nb::tuple result(vlart::ActionChunk&& c, double call_ms) {
  nb::object actions = actions_bytes(c);
  Meta m;
  m.timings = std::move(c.timings);
  m.call_ms = call_ms;
  m.text = std::move(c.text);
  m.tokens = std::move(c.tokens);
  return nb::make_tuple(actions, std::move(m));
}

class PyPolicy {
 public:
  PyPolicy(const std::string& path, int threads, const std::string& dtype, const std::string& backend, int flow_steps,
           const std::string& tokenizer, uint64_t noise_seed, size_t vision_cache_bytes, size_t task_cache_bytes,
           const std::string& attention, const std::string& vlm_config, int response_max_tokens,
           bool response_stop_at_eos, const std::string& decode_weights, int reason_every,
           float reason_scene_threshold) {
    vlart::PolicyOptions o;
    o.threads = threads;
    if (dtype == "f32" || dtype == "float32") o.compute_dtype = vlart::DType::kF32;
    else if (dtype == "bf16" || dtype == "bfloat16") o.compute_dtype = vlart::DType::kBF16;
    else throw vlart::InvalidArgument("dtype must be 'f32' or 'bf16', got '" + dtype + "'");
    o.backend = backend;
    o.flow_steps = flow_steps;
    o.tokenizer_path = tokenizer;
    o.vlm_config_dir = vlm_config;
    o.noise_seed = noise_seed;
    o.response_max_tokens = response_max_tokens;
    o.response_stop_at_eos = response_stop_at_eos;
    o.decode_weights = decode_weights;
    o.reason_every = reason_every;
    o.reason_scene_threshold = reason_scene_threshold;
    o.vision_cache_bytes = vision_cache_bytes;
    o.task_cache_bytes = task_cache_bytes;
    using AP = vlart::PolicyOptions::AttentionPrecision;
    if (attention == "auto") o.attention = AP::kAuto;
    else if (attention == "f32") o.attention = AP::kF32;
    else if (attention == "int16") o.attention = AP::kInt16;
    else if (attention == "int8") o.attention = AP::kInt8;
    else throw vlart::InvalidArgument("attention must be auto, f32, int16 or int8, got '" + attention + "'");
    nb::gil_scoped_release nogil;  // loading can take seconds (packing weights)
    p_ = vlart::Policy::load(path, o);
  }

  nb::dict info() const {
    const vlart::PolicyInfo& i = p_->info();
    nb::dict d;
    d["family"] = i.family;
    nb::list cams;
    for (const vlart::CameraInfo& c : i.cameras) {
      nb::dict cd;
      cd["name"] = c.name;
      cd["key"] = c.key;
      cd["height"] = c.height;
      cd["width"] = c.width;
      cd["optional"] = c.optional;
      cams.append(cd);
    }
    d["cameras"] = cams;
    d["state_dim"] = i.state_dim;
    d["action_dim"] = i.action_dim;
    d["horizon"] = i.horizon;
    d["noise_shape"] = nb::tuple(nb::cast(i.noise_shape));
    d["flow_steps"] = i.flow_steps;
    d["has_language"] = i.has_language;
    d["emits_text"] = i.emits_text;
    d["stages"] = i.stages;
    d["compute_dtype"] = vlart::dtype_name(i.compute_dtype);
    d["backend"] = i.backend;
    return d;
  }

  // Fills `out` (float32 [horizon, action_dim], allocated by the caller) and `meta`. Every Python
  // object involved exists before the call: the thread slept through the inference, and the first
  // Python work after such a sleep runs on cold caches (measured on a 2-vCPU VM: any Python call
  // right after a 3 ms inference took 7-40 us instead of 1-3), so nothing is created after it.
  void infer(const std::map<std::string, U8Image>& images, const F32Vec& state, const std::string& task,
             std::optional<F32Any> noise, std::optional<std::vector<int64_t>> token_ids, const std::string& robot_id,
             F32Out out, Meta& meta) {
    if (out.shape(0) != static_cast<size_t>(p_->horizon()) || out.shape(1) != static_cast<size_t>(p_->action_dim()))
      throw vlart::InvalidArgument("out must be float32 [" + std::to_string(p_->horizon()) + ", " +
                                   std::to_string(p_->action_dim()) + "]");
    vlart::Observation o = make_obs(images, state, task, token_ids, robot_id);
    if (noise) check_noise(*p_, *noise, 1);
    const float* nz = noise ? noise->data() : nullptr;
    vlart::ActionChunk c;
    double call_ms = 0;
    {
      nb::gil_scoped_release nogil;
      const auto t0 = std::chrono::steady_clock::now();
      c = p_->infer(o, nz);
      call_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      std::memcpy(out.data(), c.data.data(), c.data.size() * sizeof(float));
      meta.timings = std::move(c.timings);
      meta.call_ms = call_ms;
      meta.text = std::move(c.text);
      meta.tokens = std::move(c.tokens);
    }
  }

  std::vector<nb::tuple> infer_batch(const std::vector<std::map<std::string, U8Image>>& images,
                                 const std::vector<F32Vec>& states, const std::vector<std::string>& tasks,
                                 std::optional<F32Any> noise, const std::vector<std::string>& robot_ids) {
    const size_t n = images.size();
    if (states.size() != n || tasks.size() != n || (!robot_ids.empty() && robot_ids.size() != n))
      throw vlart::InvalidArgument("infer_batch: " + std::to_string(n) + " image dicts but " +
                                   std::to_string(states.size()) + " states, " + std::to_string(tasks.size()) +
                                   " tasks" + (robot_ids.empty() ? "" : ", " + std::to_string(robot_ids.size()) +
                                   " robot ids"));
    std::vector<vlart::Observation> obs;
    obs.reserve(n);
    for (size_t i = 0; i < n; ++i)
      obs.push_back(make_obs(images[i], states[i], tasks[i], std::nullopt, robot_ids.empty() ? "" : robot_ids[i]));
    if (noise) check_noise(*p_, *noise, n);
    const float* nz = noise ? noise->data() : nullptr;
    std::vector<vlart::ActionChunk> cs;
    double call_ms = 0;
    {
      nb::gil_scoped_release nogil;
      const auto t0 = std::chrono::steady_clock::now();
      cs = p_->infer_batch(obs, nz);
      call_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    std::vector<nb::tuple> out;
    out.reserve(cs.size());
    for (vlart::ActionChunk& c : cs) out.push_back(result(std::move(c), call_ms));
    return out;
  }

  void validate(const std::map<std::string, U8Image>& images, const F32Vec& state, const std::string& task) const {
    p_->validate(make_obs(images, state, task, std::nullopt, ""));
  }

  nb::ndarray<nb::numpy, float, nb::ndim<1>> seeded_noise(uint64_t seed) const {
    auto* v = new std::vector<float>(p_->seeded_noise(seed));
    nb::capsule owner(v, [](void* p) noexcept { delete static_cast<std::vector<float>*>(p); });
    const size_t shape[1] = {v->size()};
    return nb::ndarray<nb::numpy, float, nb::ndim<1>>(v->data(), 1, shape, owner);
  }

  nb::dict cache_stats() const {
    nb::dict d;
    d["vision"] = cache_dict(p_->vision_cache_stats());
    d["task"] = cache_dict(p_->task_cache_stats());
    const vlart::VisionReuseStats r = p_->vision_reuse_stats();
    nb::dict rd = cache_dict(r.cache);
    rd["frames_full"] = r.frames_full;
    rd["frames_reused"] = r.frames_reused;
    rd["frames_sparse"] = r.frames_sparse;
    d["vision_reuse"] = rd;
    const vlart::WeightCacheStats w = p_->weight_cache_stats();
    nb::dict wd;
    wd["hits"] = w.hits;
    wd["misses"] = w.misses;
    wd["entries"] = w.entries;
    wd["bytes"] = w.bytes;
    d["weights"] = wd;
    return d;
  }

  void clear_vision_cache(std::optional<std::string> robot_id) {
    if (robot_id) p_->clear_vision_cache(*robot_id);
    else p_->clear_vision_cache();
  }

  std::string profile_report() const { return p_->profile_report(); }

 private:
  std::unique_ptr<vlart::Policy> p_;
};

PyObject* new_error(nb::module_& m, const char* name, PyObject* base1, PyObject* base2) {
  const std::string full = std::string("vlart.") + name;
  PyObject* bases = base2 ? PyTuple_Pack(2, base1, base2) : PyTuple_Pack(1, base1);
  PyObject* t = PyErr_NewException(full.c_str(), bases, nullptr);
  Py_DECREF(bases);
  if (!t) throw nb::python_error();
  m.attr(name) = nb::handle(t);
  return t;
}

}  // namespace

NB_MODULE(_vlart, m) {
  m.doc() = "vlart: C++ inference runtime for vision-language-action robot policies";
  g_error = new_error(m, "VlartError", PyExc_RuntimeError, nullptr);
  g_invalid = new_error(m, "InvalidArgumentError", g_error, PyExc_ValueError);
  g_format = new_error(m, "FormatError", g_error, PyExc_ValueError);
  g_not_found = new_error(m, "NotFoundError", g_error, PyExc_FileNotFoundError);
  g_unsupported = new_error(m, "UnsupportedError", g_error, PyExc_NotImplementedError);
  g_io = new_error(m, "IoError", g_error, PyExc_OSError);
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const vlart::InvalidArgument& e) {
      PyErr_SetString(g_invalid, e.what());
    } catch (const vlart::FormatError& e) {
      PyErr_SetString(g_format, e.what());
    } catch (const vlart::NotFoundError& e) {
      PyErr_SetString(g_not_found, e.what());
    } catch (const vlart::UnsupportedError& e) {
      PyErr_SetString(g_unsupported, e.what());
    } catch (const vlart::IoError& e) {
      PyErr_SetString(g_io, e.what());
    } catch (const vlart::Error& e) {
      PyErr_SetString(g_error, (std::string(vlart::error_code_name(e.code())) + ": " + e.what()).c_str());
    }
  });

  m.def("version", &vlart::version, "The vlart library version.");

  nb::class_<Meta>(m, "_Meta")
      .def(nb::init<>())
      .def_prop_ro("timings", &Meta::timings_dict)
      .def_ro("text", &Meta::text)
      .def_ro("tokens", &Meta::tokens);

  nb::class_<PyPolicy>(m, "_Policy")
      .def(nb::init<const std::string&, int, const std::string&, const std::string&, int, const std::string&, uint64_t,
                    size_t, size_t, const std::string&, const std::string&, int, bool, const std::string&, int,
                    float>(),
           "path"_a, "threads"_a = 0, "dtype"_a = "f32", "backend"_a = "cpu", "flow_steps"_a = 0, "tokenizer"_a = "",
           "noise_seed"_a = 0, "vision_cache_bytes"_a = 0, "task_cache_bytes"_a = size_t{4} << 20,
           "attention"_a = "auto", "vlm_config"_a = "", "response_max_tokens"_a = 0, "response_stop_at_eos"_a = true,
           "decode_weights"_a = "", "reason_every"_a = 0, "reason_scene_threshold"_a = 0.f)
      .def_prop_ro("info", &PyPolicy::info)
      .def("infer", &PyPolicy::infer, "images"_a, "state"_a, "task"_a, "noise"_a.none(),
           "token_ids"_a.none(), "robot_id"_a, "out"_a, "meta"_a)
      .def("infer_batch", &PyPolicy::infer_batch, "images"_a, "states"_a, "tasks"_a, "noise"_a = nb::none(),
           "robot_ids"_a = std::vector<std::string>{})
      .def("validate", &PyPolicy::validate, "images"_a, "state"_a, "task"_a = "")
      .def("seeded_noise", &PyPolicy::seeded_noise, "seed"_a)
      .def("cache_stats", &PyPolicy::cache_stats)
      .def("clear_vision_cache", &PyPolicy::clear_vision_cache, "robot_id"_a = nb::none())
      .def("profile_report", &PyPolicy::profile_report);
}
