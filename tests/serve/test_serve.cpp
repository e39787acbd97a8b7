// vlart::Server and its wire format: openpi's websocket + msgpack protocol, driven here by a
// Boost.Beast client (the real openpi-client drives it in tests/python/test_serve_openpi_client.py).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <msgpack.hpp>

#include "serve/wire.h"
#include "serve_fixture.h"
#include "vlart/error.h"
#include "vlart/server.h"

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using vlart::Observation;
using vlart::Policy;
using vlart::Server;
using vlart::ServerOptions;

#ifdef VLART_TSAN_BUILD
constexpr int kClients = 4, kPerClient = 12;
#else
constexpr int kClients = 16, kPerClient = 50;
#endif

// ---- building messages as openpi's msgpack_numpy does (serve/wire.h's writers) ----
using vlart::serve::Packer;
void str(Packer& pk, const std::string& s) { vlart::serve::pack_str(pk, s); }
void ndarray(Packer& pk, const void* data, size_t nbytes, const std::string& dtype, const std::vector<int64_t>& shape) {
  vlart::serve::pack_ndarray(pk, data, nbytes, dtype, shape);
}

struct Frame {
  int64_t h, w;
  std::vector<uint8_t> px;
};
Frame frame(int64_t h, int64_t w, uint32_t seed) {
  std::mt19937 g(seed);
  Frame f{h, w, std::vector<uint8_t>(static_cast<size_t>(h * w * 3))};
  for (uint8_t& v : f.px) v = static_cast<uint8_t>(g() & 0xff);
  return f;
}

// What a request carries; `openpi_keys` picks "observation/<cam>" + "prompt" over LeRobot's names.
struct Obs {
  std::map<std::string, Frame> images;
  std::vector<float> state;
  std::string task = "pick up the cube";
  bool openpi_keys = false;
  std::optional<uint64_t> seed;
  std::optional<std::vector<float>> noise;
  std::optional<double> deadline_ms;
  std::vector<std::string> extra_keys;  // ignored by the server
};
std::string pack(const Obs& o) {
  msgpack::sbuffer buf;
  Packer pk(&buf);
  const size_t n = o.images.size() + 2 + (o.seed ? 1 : 0) + (o.noise ? 1 : 0) + (o.deadline_ms ? 1 : 0) +
                   o.extra_keys.size();
  pk.pack_map(static_cast<uint32_t>(n));
  for (const auto& [cam, f] : o.images) {
    str(pk, (o.openpi_keys ? "observation/" : "observation.images.") + cam);
    ndarray(pk, f.px.data(), f.px.size(), "|u1", {f.h, f.w, 3});
  }
  str(pk, o.openpi_keys ? "observation/state" : "observation.state");
  ndarray(pk, o.state.data(), o.state.size() * 4, "<f4", {static_cast<int64_t>(o.state.size())});
  str(pk, o.openpi_keys ? "prompt" : "task");
  str(pk, o.task);
  if (o.seed) {
    str(pk, "seed");
    pk.pack(*o.seed);
  }
  if (o.noise) {
    str(pk, "noise");
    ndarray(pk, o.noise->data(), o.noise->size() * 4, "<f4", {50, 32});
  }
  if (o.deadline_ms) {
    str(pk, "deadline_ms");
    pk.pack_double(*o.deadline_ms);
  }
  for (const std::string& k : o.extra_keys) {
    str(pk, k);
    pk.pack(1);
  }
  return std::string(buf.data(), buf.size());
}

Obs valid_obs(uint64_t seed, bool openpi_keys = false) {
  Obs o;
  o.images["camera1"] = frame(48, 64, 1);
  o.images["camera2"] = frame(40, 40, 2);
  o.state = {0.1f, -0.2f, 0.3f, 0.05f, 0.5f};
  o.openpi_keys = openpi_keys;
  o.seed = seed;
  return o;
}

Observation to_observation(const Obs& o) {
  Observation obs;
  for (const auto& [cam, f] : o.images) {
    vlart::Image im;
    im.data = f.px;
    im.height = f.h;
    im.width = f.w;
    obs.images[cam] = im;
  }
  obs.state = o.state;
  obs.task = o.task;
  return obs;
}

// A map value by str or bin key.
const msgpack::object* get(const msgpack::object& m, const std::string& k) {
  if (m.type != msgpack::type::MAP) return nullptr;
  for (uint32_t i = 0; i < m.via.map.size; ++i) {
    const msgpack::object& key = m.via.map.ptr[i].key;
    const std::string s = key.type == msgpack::type::STR   ? std::string(key.via.str.ptr, key.via.str.size)
                          : key.type == msgpack::type::BIN ? std::string(key.via.bin.ptr, key.via.bin.size)
                                                           : std::string();
    if (s == k) return &m.via.map.ptr[i].val;
  }
  return nullptr;
}

struct Response {
  std::vector<float> actions;
  std::vector<int64_t> shape;
  msgpack::object_handle oh;
};
Response unpack_response(const std::string& bytes) {
  Response r;
  r.oh = msgpack::unpack(bytes.data(), bytes.size());
  const msgpack::object* a = get(r.oh.get(), "actions");
  EXPECT_NE(a, nullptr);
  if (!a) return r;
  const msgpack::object* d = get(*a, "data");
  const msgpack::object* dt = get(*a, "dtype");
  const msgpack::object* sh = get(*a, "shape");
  EXPECT_TRUE(d && dt && sh && d->type == msgpack::type::BIN);
  EXPECT_EQ(std::string(dt->via.str.ptr, dt->via.str.size), "<f4");
  EXPECT_NE(get(*a, "__ndarray__"), nullptr);
  for (uint32_t i = 0; i < sh->via.array.size; ++i) r.shape.push_back(sh->via.array.ptr[i].as<int64_t>());
  r.actions.resize(d->via.bin.size / 4);
  std::memcpy(r.actions.data(), d->via.bin.ptr, r.actions.size() * 4);
  return r;
}

// ---- a synchronous websocket client ----
struct Client {
  net::io_context ioc;
  websocket::stream<tcp::socket> ws{ioc};
  std::string metadata;
  std::atomic<int> pongs{0};
  std::chrono::steady_clock::time_point first_pong;

  explicit Client(uint16_t port, bool read_metadata = true) {
    ws.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    ws.handshake("127.0.0.1", "/");
    ws.read_message_max(64 << 20);
    ws.control_callback([this](websocket::frame_type kind, beast::string_view) {
      if (kind == websocket::frame_type::pong && pongs++ == 0) first_pong = std::chrono::steady_clock::now();
    });
    if (read_metadata) {
      bool text = false;
      metadata = recv(&text);
      EXPECT_FALSE(text);
    }
  }
  void send(const std::string& m) {
    ws.binary(true);
    ws.write(net::buffer(m));
  }
  std::string recv(bool* text) {
    beast::flat_buffer b;
    ws.read(b);
    *text = ws.got_text();
    return beast::buffers_to_string(b.data());
  }
  // After an error frame: the server closes; returns the close code (0 if the read did not end in a close).
  int read_close_code() {
    beast::flat_buffer b;
    beast::error_code ec;
    ws.read(b, ec);
    return ec == websocket::error::closed ? static_cast<int>(ws.reason().code) : 0;
  }
};

// Polls `cond` for up to 5 s (counters are updated after the bytes went out).
template <class F>
bool eventually(F cond) {
  for (int i = 0; i < 5000 && !cond(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return cond();
}

int http_get(uint16_t port, const std::string& target, std::string* body) {
  net::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, "127.0.0.1");
  http::write(s, req);
  beast::flat_buffer b;
  http::response<http::string_body> res;
  http::read(s, b, res);
  if (body) *body = res.body();
  beast::error_code ec;
  s.socket().shutdown(tcp::socket::shutdown_both, ec);
  return static_cast<int>(res.result_int());
}

std::unique_ptr<Policy> load_policy() { return vlart::testing::load_default_policy(); }

ServerOptions local_opts() {
  ServerOptions o;
  o.port = 0;
  o.io_threads = 2;
  return o;
}

// ====================================================================================
// Wire format (no network)

class Wire : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { policy_ = load_policy().release(); }
  static void TearDownTestSuite() {
    delete policy_;
    policy_ = nullptr;
  }
  static vlart::serve::Request decode(const std::string& m) {
    return vlart::serve::decode_request(reinterpret_cast<const uint8_t*>(m.data()), m.size(), policy_->info(), {});
  }
  static std::string error_of(const std::string& m) {
    try {
      decode(m);
    } catch (const vlart::InvalidArgument& e) {
      return e.what();
    }
    return "";
  }
  static Policy* policy_;
};
Policy* Wire::policy_ = nullptr;

TEST_F(Wire, DecodesLeRobotAndOpenpiKeysAlike) {
  for (bool openpi : {false, true}) {
    Obs o = valid_obs(3, openpi);
    o.extra_keys = {"observation/joint_velocity", "episode_id"};
    const std::string m = pack(o);
    const vlart::serve::Request r = decode(m);
    ASSERT_EQ(r.obs.images.size(), 2u);
    const vlart::Image& im = r.obs.images.at("camera1");
    EXPECT_EQ(im.height, 48);
    EXPECT_EQ(im.width, 64);
    // Borrowed from the message, not copied.
    EXPECT_GE(im.pixels(), reinterpret_cast<const uint8_t*>(m.data()));
    EXPECT_LT(im.pixels(), reinterpret_cast<const uint8_t*>(m.data()) + m.size());
    EXPECT_EQ(std::memcmp(im.pixels(), o.images["camera1"].px.data(), o.images["camera1"].px.size()), 0);
    EXPECT_EQ(r.obs.state, o.state);
    EXPECT_EQ(r.obs.task, o.task);
    ASSERT_TRUE(r.seed.has_value());
    EXPECT_EQ(*r.seed, 3u);
    EXPECT_EQ(r.unused_keys, o.extra_keys);
  }
}

TEST_F(Wire, StateAsFloat64AndNoiseArePassedThrough) {
  msgpack::sbuffer buf;
  Packer pk(&buf);
  pk.pack_map(4);
  const Frame f = frame(8, 8, 1);
  for (const char* cam : {"observation.images.camera1", "observation/camera2"}) {
    str(pk, cam);
    ndarray(pk, f.px.data(), f.px.size(), "|u1", {8, 8, 3});
  }
  const double st[5] = {0.5, 1, 2, 3, 4};
  str(pk, "observation.state");
  ndarray(pk, st, sizeof st, "<f8", {1, 5});
  std::vector<float> noise(50 * 32);
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<float>(i) * 0.001f;
  str(pk, "noise");
  ndarray(pk, noise.data(), noise.size() * 4, "<f4", {1, 50, 32});
  const vlart::serve::Request r = decode(std::string(buf.data(), buf.size()));
  EXPECT_EQ(r.obs.state, (std::vector<float>{0.5f, 1, 2, 3, 4}));
  ASSERT_TRUE(r.noise.has_value());
  EXPECT_EQ(*r.noise, noise);
  EXPECT_EQ(r.obs.task, "");
}

TEST_F(Wire, BadRequestsNameTheProblem) {
  const Frame f = frame(8, 8, 1);
  auto with = [&](const std::string& key, const std::function<void(Packer&)>& value, bool drop_cam2 = false) {
    Obs o = valid_obs(0);
    if (drop_cam2) o.images.erase("camera2");
    msgpack::sbuffer buf;
    Packer pk(&buf);
    std::string base = pack(o);
    // Re-pack: the valid map plus (or replacing) one key.
    msgpack::object_handle oh = msgpack::unpack(base.data(), base.size());
    const msgpack::object& m = oh.get();
    uint32_t n = 0;
    for (uint32_t i = 0; i < m.via.map.size; ++i)
      if (std::string(m.via.map.ptr[i].key.via.str.ptr, m.via.map.ptr[i].key.via.str.size) != key) ++n;
    pk.pack_map(n + 1);
    for (uint32_t i = 0; i < m.via.map.size; ++i) {
      if (std::string(m.via.map.ptr[i].key.via.str.ptr, m.via.map.ptr[i].key.via.str.size) == key) continue;
      pk.pack(m.via.map.ptr[i].key);
      pk.pack(m.via.map.ptr[i].val);
    }
    str(pk, key);
    value(pk);
    return std::string(buf.data(), buf.size());
  };
  const float fimg[8 * 8 * 3] = {};
  // bad dtype
  EXPECT_NE(error_of(with("observation.images.camera1",
                          [&](Packer& pk) { ndarray(pk, fimg, sizeof fimg, "<f4", {8, 8, 3}); }))
                .find("expected a uint8 image [height, width, 3] (HWC RGB), got <f4 [8, 8, 3]"),
            std::string::npos);
  // CHW instead of HWC
  EXPECT_NE(error_of(with("observation.images.camera1",
                          [&](Packer& pk) { ndarray(pk, f.px.data(), f.px.size(), "|u1", {3, 8, 8}); }))
                .find("got |u1 [3, 8, 8]"),
            std::string::npos);
  // wrong state length
  const float st4[4] = {};
  EXPECT_NE(error_of(with("observation.state", [&](Packer& pk) { ndarray(pk, st4, sizeof st4, "<f4", {4}); }))
                .find("'observation.state': expected a float array [5], got <f4 [4]"),
            std::string::npos);
  // missing camera, named with both spellings
  const std::string miss = error_of(with("task", [&](Packer& pk) { str(pk, "x"); }, /*drop_cam2=*/true));
  EXPECT_NE(miss.find("missing camera 'camera2'"), std::string::npos) << miss;
  EXPECT_NE(miss.find("observation/camera2"), std::string::npos) << miss;
  // data shorter than the shape declares: a 2 GB array in a small message
  EXPECT_NE(error_of(with("observation.images.camera1",
                          [&](Packer& pk) { ndarray(pk, f.px.data(), f.px.size(), "|u1", {32768, 32768, 2}); }))
                .find("needs 2147483648 bytes, the message carries 192"),
            std::string::npos);
  // a shape whose product overflows
  EXPECT_NE(error_of(with("noise",
                          [&](Packer& pk) {
                            ndarray(pk, f.px.data(), f.px.size(), "<f4", {1LL << 40, 1LL << 40});
                          }))
                .find("more than 2^40 elements"),
            std::string::npos);
  // not a map at all, a text task, seed and noise together
  EXPECT_NE(error_of(std::string("\x93\x01\x02\x03", 4)).find("must be a msgpack map, got array"), std::string::npos);
  EXPECT_NE(error_of(with("task", [&](Packer& pk) { pk.pack(5); })).find("'task': expected a string, got int"),
            std::string::npos);
  const std::vector<float> nz(50 * 32, 0.f);
  EXPECT_NE(error_of(with("noise", [&](Packer& pk) { ndarray(pk, nz.data(), nz.size() * 4, "<f4", {50, 32}); }))
                .find("either 'noise' or 'seed'"),
            std::string::npos);
  EXPECT_NE(error_of(with("noise", [&](Packer& pk) { ndarray(pk, nz.data(), 40 * 32 * 4, "<f4", {40, 32}); }))
                .find("'noise': expected a float array [50, 32], got <f4 [40, 32]"),
            std::string::npos);
  EXPECT_NE(error_of(with("seed", [&](Packer& pk) { pk.pack(-1); })).find("'seed': expected a non-negative integer"),
            std::string::npos);
  EXPECT_NE(error_of(with("deadline_ms", [&](Packer& pk) { pk.pack(0); })).find("'deadline_ms'"), std::string::npos);
  EXPECT_NE(error_of(with("observation.images.camera1",
                          [&](Packer& pk) { ndarray(pk, f.px.data(), f.px.size(), "|c8", {8, 8, 3}); }))
                .find("unsupported dtype '|c8'"),
            std::string::npos);
}

TEST_F(Wire, EveryTruncationAndDeclaredSizeLieIsRefusedCleanly) {
  const std::string m = pack(valid_obs(1));
  // Every prefix: an InvalidArgument, never a crash or an out-of-bounds read (ASan build).
  for (size_t n = 0; n < m.size(); n += (n < 64 ? 1 : 97)) {
    const std::string e = error_of(m.substr(0, n));
    EXPECT_FALSE(e.empty()) << "prefix of " << n << " bytes decoded";
  }
  EXPECT_NE(error_of(m + "\x01").find("1 trailing bytes"), std::string::npos);
  // A bin header declaring 2 GiB with 3 bytes behind it.
  EXPECT_NE(error_of(std::string("\x81\xa4task\xc6\x80\x00\x00\x00" "abc", 13)).find("truncated"), std::string::npos);
  // A map header declaring 4 billion entries.
  EXPECT_NE(error_of(std::string("\xdf\xff\xff\xff\xff", 5)).find("more than"), std::string::npos);
  // Deep nesting (arrays in arrays).
  EXPECT_NE(error_of("\x81\xa1x" + std::string(100, '\x91') + "\x01").find("nests deeper"), std::string::npos);
  // Many small objects: bounded before the decoded tree is built.
  std::string many = "\x81\xa1x\xdd\x00\x01\x00\x00";  // array of 65536
  many += std::string(65536, '\x01');
  EXPECT_NE(error_of(many).find("more than 4096 objects"), std::string::npos);
  // Random bytes never crash.
  std::mt19937 g(5);
  for (int i = 0; i < 2000; ++i) {
    std::string r = m;
    for (int k = 0; k < 4; ++k) r[g() % r.size()] = static_cast<char>(g() & 0xff);
    try {
      decode(r);
    } catch (const vlart::InvalidArgument&) {
    }
  }
}

TEST_F(Wire, ResponseAndMetadataAreOpenpiMaps) {
  vlart::ActionChunk c;
  c.horizon = 2;
  c.action_dim = 3;
  c.data = {1, 2, 3, 4, 5, 6};
  c.timings.set("vision", 1.5);
  c.timings.total_ms = 2.5;
  vlart::serve::ResponseTiming t;
  t.infer_ms = 3;
  const std::string bytes = vlart::serve::encode_response(c, t, false);
  Response r = unpack_response(bytes);
  EXPECT_EQ(r.actions, c.data);
  EXPECT_EQ(r.shape, (std::vector<int64_t>{2, 3}));
  const msgpack::object* st = get(r.oh.get(), "server_timing");
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(get(*st, "infer_ms")->as<double>(), 3.0);
  EXPECT_EQ(get(*st, "prev_total_ms"), nullptr);  // absent on the first response, as openpi's
  EXPECT_EQ(get(*get(r.oh.get(), "policy_timing"), "vision")->as<double>(), 1.5);
  EXPECT_EQ(get(r.oh.get(), "text"), nullptr);
  // ndarray keys are bin, as msgpack_numpy writes them; top-level keys str.
  const msgpack::object* a = get(r.oh.get(), "actions");
  for (uint32_t i = 0; i < a->via.map.size; ++i) EXPECT_EQ(a->via.map.ptr[i].key.type, msgpack::type::BIN);

  const std::string md = vlart::serve::encode_metadata(policy_->info(), "9.9", 1024);
  msgpack::object_handle oh = msgpack::unpack(md.data(), md.size());
  EXPECT_EQ(get(oh.get(), "family")->as<std::string>(), "smolvla");
  EXPECT_EQ(get(oh.get(), "action_horizon")->as<int64_t>(), 50);
  EXPECT_EQ(get(oh.get(), "state_dim")->as<int64_t>(), 5);
  EXPECT_EQ(get(oh.get(), "cameras")->as<std::vector<std::string>>(),
            (std::vector<std::string>{"camera1", "camera2"}));
}

// ====================================================================================
// The server over real sockets

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    policy_ = load_policy();
    ref_ = load_policy();
  }
  // The reference: the same inputs and seeded noise through Policy::infer in this process.
  std::vector<float> reference(const Obs& o) {
    const std::vector<float> noise = ref_->seeded_noise(*o.seed);
    return ref_->infer(to_observation(o), noise.data()).data;
  }
  std::unique_ptr<Policy> policy_, ref_;
};

TEST_F(ServeTest, MetadataThenActionsEqualToInProcessInfer) {
  Server server(*policy_, local_opts());
  Client c(server.port());
  msgpack::object_handle md = msgpack::unpack(c.metadata.data(), c.metadata.size());
  EXPECT_EQ(get(md.get(), "server")->as<std::string>(), "vlart");
  EXPECT_EQ(get(md.get(), "action_dim")->as<int64_t>(), 4);
  for (uint64_t seed = 0; seed < 6; ++seed) {
    const Obs o = valid_obs(seed, seed % 2 == 1);
    c.send(pack(o));
    bool text = true;
    Response r = unpack_response(c.recv(&text));
    ASSERT_FALSE(text);
    EXPECT_EQ(r.shape, (std::vector<int64_t>{50, 4}));
    EXPECT_EQ(r.actions, reference(o)) << "seed " << seed;  // bit for bit
    const msgpack::object* st = get(r.oh.get(), "server_timing");
    EXPECT_EQ(get(*st, "prev_total_ms") != nullptr, seed > 0);
    EXPECT_GT(get(*get(r.oh.get(), "policy_timing"), "denoise")->as<double>(), 0.0);
  }
  // Explicit noise gives the same as the seed it was drawn from.
  Obs o = valid_obs(4);
  o.noise = ref_->seeded_noise(4);
  const std::vector<float> want = reference(o);
  o.seed.reset();
  c.send(pack(o));
  bool text = true;
  EXPECT_EQ(unpack_response(c.recv(&text)).actions, want);
  EXPECT_TRUE(eventually([&] { return server.stats().responses == 7u; }));
}

TEST_F(ServeTest, BadRequestGetsOneErrorLineAndClose1011OthersUnaffected) {
  Server server(*policy_, local_opts());
  Client good(server.port()), bad(server.port());
  Obs o = valid_obs(1);
  o.images.erase("camera2");
  bad.send(pack(o));
  bool text = false;
  const std::string err = bad.recv(&text);
  EXPECT_TRUE(text);
  EXPECT_NE(err.find("missing camera 'camera2'"), std::string::npos) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos);
  EXPECT_EQ(bad.read_close_code(), 1011);
  // NaN state: refused by the policy's validation through the scheduler.
  Client nan(server.port());
  Obs n = valid_obs(2);
  n.state[1] = std::numeric_limits<float>::quiet_NaN();
  nan.send(pack(n));
  const std::string nerr = nan.recv(&text);
  EXPECT_TRUE(text);
  EXPECT_NE(nerr.find("invalid"), std::string::npos) << nerr;
  EXPECT_EQ(nan.read_close_code(), 1011);
  // A text frame is not an observation.
  Client txt(server.port());
  txt.ws.text(true);
  txt.ws.write(net::buffer(std::string("hello")));
  EXPECT_NE(txt.recv(&text).find("binary msgpack"), std::string::npos);
  // The other connection carries on.
  const Obs ok = valid_obs(5);
  good.send(pack(ok));
  EXPECT_EQ(unpack_response(good.recv(&text)).actions, reference(ok));
  EXPECT_FALSE(text);
  EXPECT_TRUE(eventually([&] {
    const vlart::ServerStats st = server.stats();
    return st.bad_requests == 2u && st.failed == 1u && st.requests == st.responses + st.bad_requests + st.failed;
  }));
}

TEST_F(ServeTest, PingsAreAnsweredWhileAnInferenceIsPending) {
  Server server(*policy_, local_opts());
  Client c(server.port());
  server.scheduler().pause();  // the request stays in flight until resume
  const Obs o = valid_obs(3);
  c.send(pack(o));
  c.ws.ping({});
  std::chrono::steady_clock::time_point resumed;
  std::thread resumer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    resumed = std::chrono::steady_clock::now();
    server.scheduler().resume();
  });
  bool text = true;
  const std::string resp = c.recv(&text);  // the pong arrives inside this read, before the response
  resumer.join();
  EXPECT_FALSE(text);
  ASSERT_GE(c.pongs.load(), 1);
  EXPECT_LT(c.first_pong, resumed);
  EXPECT_EQ(unpack_response(resp).actions, reference(o));
}

TEST_F(ServeTest, FullQueueAndMissedDeadlineAreClearErrors) {
  ServerOptions so = local_opts();
  so.scheduler.max_queue = 1;
  Server server(*policy_, so);
  Client a(server.port()), b(server.port()), d(server.port());
  server.scheduler().pause();
  a.send(pack(valid_obs(1)));
  while (server.scheduler().stats().queue_depth < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  b.send(pack(valid_obs(2)));
  bool text = false;
  const std::string full = b.recv(&text);
  EXPECT_TRUE(text);
  EXPECT_NE(full.find("rejected_queue_full"), std::string::npos) << full;
  server.scheduler().resume();
  EXPECT_EQ(unpack_response(a.recv(&text)).actions, reference(valid_obs(1)));

  server.scheduler().pause();
  Obs late = valid_obs(3);
  late.deadline_ms = 1;
  d.send(pack(late));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  server.scheduler().resume();
  const std::string to = d.recv(&text);
  EXPECT_TRUE(text);
  EXPECT_NE(to.find("timeout"), std::string::npos) << to;
}

TEST_F(ServeTest, LimitsHealthzMetricsAndConnectionCap) {
  ServerOptions so = local_opts();
  so.max_message_bytes = 64 * 1024;
  so.max_connections = 2;
  Server server(*policy_, so);
  std::string body;
  EXPECT_EQ(http_get(server.port(), "/healthz", &body), 200);
  EXPECT_EQ(body, "OK\n");
  EXPECT_EQ(http_get(server.port(), "/nope", nullptr), 404);
  {
    Client big(server.port());
    Obs o = valid_obs(1);
    o.images["camera1"] = frame(200, 200, 3);  // 120 KB > 64 KiB
    big.ws.auto_fragment(false);                // one frame: its header declares the size
    big.ws.binary(true);
    beast::error_code ec;
    big.ws.write(net::buffer(pack(o)), ec);  // may fail: the server drops the connection mid-write
    beast::flat_buffer b;
    big.ws.read(b, ec);
    // Refused by the websocket layer from the frame header: close 1009 (message too big) when the
    // close frame gets through before the reset, never a response.
    EXPECT_TRUE(ec);
    if (ec == websocket::error::closed) {
      EXPECT_EQ(static_cast<int>(big.ws.reason().code), 1009);
    }
  }
  EXPECT_EQ(server.stats().requests, 0u);
  while (server.stats().connections_open > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Client c1(server.port()), c2(server.port());
  // A third websocket upgrade is refused with HTTP 503 (read as plain HTTP: the status and the line).
  {
    net::io_context ioc;
    beast::tcp_stream st(ioc);
    st.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server.port()));
    http::request<http::empty_body> req(http::verb::get, "/", 11);
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::upgrade, "websocket");
    req.set(http::field::connection, "upgrade");
    req.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
    req.set(http::field::sec_websocket_version, "13");
    http::write(st, req);
    beast::flat_buffer b;
    http::response<http::string_body> res;
    http::read(st, b, res);
    EXPECT_EQ(res.result_int(), 503u);
    EXPECT_NE(res.body().find("too many connections (2)"), std::string::npos) << res.body();
  }
  bool text = false;
  c1.send(pack(valid_obs(1)));
  c1.recv(&text);
  EXPECT_EQ(http_get(server.port(), "/metrics", &body), 200);
  EXPECT_NE(body.find("vlart_responses_total 1\n"), std::string::npos) << body;
  EXPECT_NE(body.find("vlart_connections_refused_total 1\n"), std::string::npos);
  EXPECT_NE(body.find("vlart_scheduler_requests_total{status=\"ok\"} 1\n"), std::string::npos);
  EXPECT_NE(body.find("vlart_stage_ms{stage=\"denoise\",quantile=\"0.5\"}"), std::string::npos);
  EXPECT_NE(body.find("# TYPE vlart_stage_ms summary"), std::string::npos);
}

// 16 clients x 50 requests, valid and invalid mixed: every request answered exactly once, valid
// answers bit-identical to the single-client ones, the server alive afterwards.
TEST_F(ServeTest, ManyClientsMixedValidAndInvalid) {
  ServerOptions so = local_opts();
  so.scheduler.max_batch = 4;
  Server server(*policy_, so);
  constexpr int kSeeds = 4;
  std::vector<std::vector<float>> single(kSeeds);
  {
    Client c(server.port());
    for (int s = 0; s < kSeeds; ++s) {
      c.send(pack(valid_obs(static_cast<uint64_t>(s))));
      bool text = true;
      single[s] = unpack_response(c.recv(&text)).actions;
      ASSERT_FALSE(text);
    }
  }
  std::atomic<int> ok{0}, errors{0}, wrong{0}, unanswered{0};
  std::vector<std::thread> clients;
  for (int ci = 0; ci < kClients; ++ci) {
    clients.emplace_back([&, ci] {
      std::mt19937 g(static_cast<uint32_t>(ci) + 1);
      std::unique_ptr<Client> c;
      for (int i = 0; i < kPerClient; ++i) {
        try {
          if (!c) c = std::make_unique<Client>(server.port());
          const int kind = static_cast<int>(g() % 8);  // 0-3 valid, 4-7 invalid of four kinds
          const uint64_t seed = g() % kSeeds;
          Obs o = valid_obs(seed, (g() & 1) != 0);
          std::string m;
          if (kind == 4) o.images.erase("camera1");
          if (kind == 5) o.state[0] = std::numeric_limits<float>::infinity();
          m = pack(o);
          if (kind == 6) m = m.substr(0, m.size() / 2);  // truncated msgpack
          if (kind == 7) m = std::string("\x81\xa4task\xc6\x80\x00\x00\x00" "abc", 13);
          c->send(m);
          bool text = false;
          const std::string r = c->recv(&text);
          if (kind < 4) {
            if (text || unpack_response(r).actions != single[seed]) ++wrong;
            ++ok;
          } else {
            if (!text) ++wrong;
            ++errors;
            c->read_close_code();
            c.reset();  // the server closed it: a new connection for the next request
          }
        } catch (const std::exception&) {
          ++unanswered;
          c.reset();
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(unanswered.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(ok.load() + errors.load(), kClients * kPerClient);
  // The server's own count: every request answered once (counters settle once the last bytes went out).
  EXPECT_TRUE(eventually([&] {
    const vlart::ServerStats st = server.stats();
    return st.requests == static_cast<uint64_t>(kClients * kPerClient + kSeeds) &&
           st.responses + st.bad_requests + st.failed == st.requests;
  })) << "requests " << server.stats().requests << " responses " << server.stats().responses << " bad "
      << server.stats().bad_requests << " failed " << server.stats().failed << " client ok " << ok << " errors "
      << errors;
  std::string body;
  EXPECT_EQ(http_get(server.port(), "/healthz", &body), 200);
}

TEST_F(ServeTest, StopAnswersTheQueuedAndRefusesNewWork) {
  auto server = std::make_unique<Server>(*policy_, local_opts());
  Client c(server->port());
  server->scheduler().pause();
  c.send(pack(valid_obs(1)));
  while (server->scheduler().stats().queue_depth < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Client idle(server->port());
  std::thread stopper([&] { server->stop(); });
  bool text = false;
  const std::string err = c.recv(&text);  // the queued request is answered, then the connection closes
  EXPECT_TRUE(text);
  EXPECT_NE(err.find("cancelled"), std::string::npos) << err;
  EXPECT_EQ(c.read_close_code(), 1011);
  EXPECT_EQ(idle.read_close_code(), 1001);  // going away
  stopper.join();
  EXPECT_EQ(server->stats().connections_open, 0u);
  server.reset();
}

TEST(ServeOptions, BadOptionsAndBusyPortAreNamed) {
  std::unique_ptr<Policy> p = load_policy();
  ServerOptions o = local_opts();
  o.io_threads = 0;
  EXPECT_THROW(Server(*p, o), vlart::InvalidArgument);
  o = local_opts();
  o.host = "not-an-ip";
  try {
    Server s(*p, o);
    ADD_FAILURE();
  } catch (const vlart::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("not-an-ip"), std::string::npos);
  }
  Server first(*p, local_opts());
  std::unique_ptr<Policy> p2 = load_policy();
  o = local_opts();
  o.port = first.port();
  try {
    Server second(*p2, o);
    ADD_FAILURE();
  } catch (const vlart::IoError& e) {
    EXPECT_NE(std::string(e.what()).find(":" + std::to_string(first.port())), std::string::npos) << e.what();
  }
}

}  // namespace
