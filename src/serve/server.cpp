// vlart::Server: Boost.Beast websocket + HTTP on an asio io_context, every request through one
// vlart::Scheduler. Per connection, a read is always pending while a request is in flight, so
// websocket pings are answered during inference (Beast replies to control frames inside reads).
#include "vlart/server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <list>
#include <mutex>
#include <set>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "core/log.h"
#include "serve/metrics.h"
#include "serve/wire.h"
#include "vlart/error.h"
#include "vlart/system.h"

namespace vlart {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// What sessions share with the server; held by shared_ptr so a session that outlives the server's
// threads (its handler destroyed with the io_context) never touches freed memory.
struct State {
  Policy* policy = nullptr;
  Scheduler* scheduler = nullptr;
  ServerOptions opts;
  serve::WireLimits limits;
  std::string metadata;  // encoded once
  std::atomic<uint64_t> connections_total{0}, connections_open{0}, connections_refused{0};
  std::atomic<uint64_t> requests{0}, responses{0}, bad_requests{0}, failed{0}, http_requests{0};
  std::atomic<uint64_t> bytes_in{0}, bytes_out{0};
  std::atomic<uint64_t> next_connection{0};
  std::atomic<bool> stopping{false};

  ServerStats stats() const {
    ServerStats s;
    s.connections_total = connections_total;
    s.connections_open = connections_open;
    s.connections_refused = connections_refused;
    s.requests = requests;
    s.responses = responses;
    s.bad_requests = bad_requests;
    s.failed = failed;
    s.http_requests = http_requests;
    s.bytes_in = bytes_in;
    s.bytes_out = bytes_out;
    return s;
  }
};

// One line: the error text frame must stay a single line.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  if (s.size() > 1000) s = s.substr(0, 1000) + "...";
  return s;
}

class WsSession : public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(tcp::socket&& sock, std::shared_ptr<State> st)
      : ws_(std::move(sock)), st_(std::move(st)), id_(st_->next_connection++) {
    ++st_->connections_open;
    ++st_->connections_total;
  }
  ~WsSession() { --st_->connections_open; }

  template <class Body, class Alloc>
  void run(http::request<Body, http::basic_fields<Alloc>> req) {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "vlart/" + version()); }));
    ws_.read_message_max(st_->opts.max_message_bytes);
    ws_.auto_fragment(false);
    ws_.async_accept(req, beast::bind_front_handler(&WsSession::on_accept, shared_from_this()));
  }

  // Server stop: once the frames already queued (a cancelled request's error line) are sent, the
  // connection is closed with 1001 (going away). Posted after the scheduler's cancellations, which
  // therefore reach the client first.
  void shutdown() {
    net::post(ws_.get_executor(), [self = shared_from_this()] {
      self->stop_requested_ = true;
      if (!self->writing_ && self->outq_.empty()) self->close(websocket::close_code::going_away);
    });
  }

 private:
  struct Out {
    std::string bytes;
    bool text = false;   // an error line: a close with 1011 follows
    bool response = false;
  };

  void on_accept(beast::error_code ec) {
    if (ec) return;
    queue({st_->metadata, false, false});
    do_read();
  }

  void do_read() {
    if (closing_ || reading_) return;
    reading_ = true;
    rbuf_ = std::make_shared<beast::flat_buffer>();
    rbuf_->reserve(last_message_bytes_);  // frames keep their size: one allocation, no regrowth copies
    ws_.async_read(*rbuf_, beast::bind_front_handler(&WsSession::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    reading_ = false;
    if (ec) {  // closed by the peer, a protocol error, too big a message (Beast closed with 1009)
      closing_ = true;
      return;
    }
    if (closing_) return;
    st_->bytes_in += rbuf_->size();
    last_message_bytes_ = std::min(rbuf_->size(), st_->opts.max_message_bytes);
    if (!ws_.got_binary()) {
      ++st_->requests;  // counted like any message, so requests == responses + bad_requests + failed
      ++st_->bad_requests;
      fail("vlart: invalid request: observations are binary msgpack frames, got a text frame");
      return;
    }
    if (in_flight_) {  // the client sent the next observation before its answer: keep it for later
      stashed_ = std::move(rbuf_);
      return;          // no read until it is handled (one request in flight per connection)
    }
    handle(std::move(rbuf_));
    do_read();
  }

  void handle(std::shared_ptr<beast::flat_buffer> msg) {
    ++st_->requests;
    const Clock::time_point recv = Clock::now();
    serve::Request req;
    try {
      const auto* data = static_cast<const uint8_t*>(msg->cdata().data());
      req = serve::decode_request(data, msg->size(), st_->policy->info(), st_->limits);
    } catch (const std::exception& e) {
      ++st_->bad_requests;
      fail(std::string("vlart: invalid request: ") + e.what());
      return;
    }
    for (const std::string& k : req.unused_keys)
      if (logged_keys_.size() < 64 && logged_keys_.insert(k).second)
        logger().info("serve: connection {}: ignoring observation key '{}' (not read by this {} policy)", id_, k,
                      st_->policy->info().family);
    if (req.obs.robot_id.empty()) req.obs.robot_id = "connection-" + std::to_string(id_);
    std::optional<std::vector<float>> noise = std::move(req.noise);
    if (req.seed) noise = st_->policy->seeded_noise(*req.seed);
    std::optional<Scheduler::Clock::time_point> deadline;
    if (req.deadline_ms)
      deadline = recv + std::chrono::microseconds(static_cast<int64_t>(*req.deadline_ms * 1000.0));
    in_flight_ = true;
    recv_ = recv;
    // The callback runs on the scheduler's worker (or here, when answered at submit); the message
    // bytes the images borrow stay alive in it until then.
    auto self = shared_from_this();
    st_->scheduler->submit(
        std::move(req.obs),
        [self, msg](Scheduler::Result&& r) {
          auto res = std::make_shared<Scheduler::Result>(std::move(r));
          net::post(self->ws_.get_executor(), [self, res] { self->on_result(*res); });
        },
        deadline, std::move(noise));
  }

  void on_result(Scheduler::Result& r) {
    in_flight_ = false;
    if (r.status != Scheduler::Status::kOk) {
      ++st_->failed;
      fail(std::string("vlart: ") + Scheduler::status_name(r.status) + ": " + r.message);
      return;
    }
    serve::ResponseTiming t;
    t.infer_ms = ms_since(recv_);
    t.queue_ms = static_cast<double>(r.queue_us) / 1000.0;
    t.prev_total_ms = prev_total_ms_;
    ++st_->responses;  // answered (counted here: a peer that drops the connection can abort the write's completion)
    queue({serve::encode_response(r.chunk, t, st_->policy->info().emits_text), false, true});
  }

  // One text frame with the error line, then close 1011 (openpi's server does the same).
  void fail(const std::string& msg) {
    if (closing_) return;
    logger().info("serve: connection {}: {}", id_, one_line(msg));
    queue({one_line(msg), true, false});
    closing_ = true;
  }

  void queue(Out o) {
    outq_.push_back(std::move(o));
    if (!writing_) write_next();
  }

  void write_next() {
    if (outq_.empty()) return;
    writing_ = true;
    ws_.text(outq_.front().text);
    ws_.async_write(net::buffer(outq_.front().bytes),
                    beast::bind_front_handler(&WsSession::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t n) {
    writing_ = false;
    const Out done = std::move(outq_.front());
    outq_.pop_front();
    if (ec) {
      closing_ = true;
      outq_.clear();
      return;
    }
    st_->bytes_out += n;
    if (done.text) {
      outq_.clear();
      close(websocket::close_code::internal_error);
      return;
    }
    if (done.response) {
      prev_total_ms_ = ms_since(recv_);
      if (stashed_) {
        auto next = std::move(stashed_);
        stashed_.reset();
        handle(std::move(next));
        do_read();
      }
    }
    if (outq_.empty() && stop_requested_) close(websocket::close_code::going_away);
    write_next();
  }

  void close(websocket::close_code code) {
    if (close_sent_) return;
    close_sent_ = closing_ = true;
    const char* why = code == websocket::close_code::internal_error ? "vlart: request failed" : "vlart: server stopping";
    ws_.async_close(websocket::close_reason(code, why), [self = shared_from_this()](beast::error_code) {});
  }

  websocket::stream<beast::tcp_stream> ws_;
  std::shared_ptr<State> st_;
  uint64_t id_;
  std::shared_ptr<beast::flat_buffer> rbuf_, stashed_;
  std::deque<Out> outq_;
  bool reading_ = false, writing_ = false, in_flight_ = false, closing_ = false;
  bool close_sent_ = false, stop_requested_ = false;
  Clock::time_point recv_;
  std::optional<double> prev_total_ms_;
  std::set<std::string> logged_keys_;
  size_t last_message_bytes_ = 0;
};

// Plain HTTP on a fresh connection: GET /healthz, GET /metrics, or the websocket upgrade.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket&& sock, std::shared_ptr<State> st, std::function<void(std::weak_ptr<WsSession>)> track)
      : stream_(std::move(sock)), st_(std::move(st)), track_(std::move(track)) {}

  void run() {
    net::dispatch(stream_.get_executor(), beast::bind_front_handler(&HttpSession::do_read, shared_from_this()));
  }

 private:
  void do_read() {
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    parser_->body_limit(16 * 1024);
    stream_.expires_after(std::chrono::seconds(30));
    http::async_read(stream_, buf_, *parser_, beast::bind_front_handler(&HttpSession::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      return;
    }
    if (websocket::is_upgrade(parser_->get())) {
      if (st_->stopping || st_->connections_open.load() >= static_cast<uint64_t>(st_->opts.max_connections)) {
        ++st_->connections_refused;
        respond(http::status::service_unavailable, "text/plain",
                "vlart: too many connections (" + std::to_string(st_->opts.max_connections) + ")\n", false);
        return;
      }
      stream_.expires_never();
      beast::error_code nd;
      stream_.socket().set_option(tcp::no_delay(true), nd);  // small responses go out at once
      auto ws = std::make_shared<WsSession>(stream_.release_socket(), st_);
      track_(ws);
      ws->run(parser_->release());
      return;
    }
    ++st_->http_requests;
    const auto& req = parser_->get();
    const std::string target(req.target());
    const bool keep = req.keep_alive();
    if (req.method() == http::verb::get && (target == "/healthz" || target == "/health")) {
      respond(http::status::ok, "text/plain", "OK\n", keep);
    } else if (req.method() == http::verb::get && target == "/metrics") {
      respond(http::status::ok, "text/plain; version=0.0.4",
              serve::metrics_text(st_->stats(), st_->scheduler->stats(), *st_->policy), keep);
    } else {
      respond(http::status::not_found, "text/plain",
              "vlart: no such endpoint; GET /healthz, GET /metrics, or a websocket upgrade\n", keep);
    }
  }

  void respond(http::status status, const char* type, std::string body, bool keep) {
    auto res = std::make_shared<http::response<http::string_body>>(status, parser_->get().version());
    res->set(http::field::server, "vlart/" + version());
    res->set(http::field::content_type, type);
    res->keep_alive(keep);
    res->body() = std::move(body);
    res->prepare_payload();
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res, keep](beast::error_code ec, std::size_t) {
                        if (!ec && keep) return self->do_read();
                        beast::error_code ignored;
                        self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                      });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<State> st_;
  std::function<void(std::weak_ptr<WsSession>)> track_;
};

}  // namespace

struct Server::Impl {
  net::io_context ioc;  // first member: destroyed last, after everything that posts to it
  std::shared_ptr<State> st = std::make_shared<State>();
  std::unique_ptr<Scheduler> scheduler;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;
  std::mutex sessions_m;
  std::list<std::weak_ptr<WsSession>> sessions;
  std::mutex stop_m;
  std::condition_variable stop_cv;
  bool stopped = false;
  uint16_t port = 0;

  void track(std::weak_ptr<WsSession> s) {
    std::lock_guard<std::mutex> lk(sessions_m);
    for (auto it = sessions.begin(); it != sessions.end();) it = it->expired() ? sessions.erase(it) : std::next(it);
    sessions.push_back(std::move(s));
  }

  void do_accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket sock) {
      if (ec) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
        logger().warn("serve: accept failed: {}", ec.message());
      } else {
        std::make_shared<HttpSession>(std::move(sock), st, [this](std::weak_ptr<WsSession> s) { track(std::move(s)); })
            ->run();
      }
      if (acceptor.is_open()) do_accept();
    });
  }
};

Server::Server(Policy& policy, const ServerOptions& opts) : impl_(std::make_unique<Impl>()) {
  VLART_CHECK(opts.io_threads >= 1 && opts.io_threads <= 256, InvalidArgument, "ServerOptions::io_threads must be in "
              "[1, 256], got ", opts.io_threads);
  VLART_CHECK(opts.max_connections >= 1, InvalidArgument, "ServerOptions::max_connections must be >= 1, got ",
              opts.max_connections);
  VLART_CHECK(opts.max_message_bytes >= 1024 && opts.max_message_bytes <= (size_t{1} << 31), InvalidArgument,
              "ServerOptions::max_message_bytes must be in [1 KiB, 2 GiB], got ", opts.max_message_bytes);
  VLART_CHECK(opts.max_image_side >= 1, InvalidArgument, "ServerOptions::max_image_side must be >= 1");
  Impl& m = *impl_;
  State& st = *m.st;
  st.policy = &policy;
  st.opts = opts;
  st.limits.max_message_bytes = opts.max_message_bytes;
  st.limits.max_image_side = opts.max_image_side;
  st.metadata = serve::encode_metadata(policy.info(), version(), opts.max_message_bytes);

  beast::error_code ec;
  const net::ip::address addr = net::ip::make_address(opts.host, ec);
  VLART_CHECK(!ec, InvalidArgument, "serve: --host '", opts.host, "' is not an IP address (", ec.message(), ")");
  const tcp::endpoint ep(addr, opts.port);
  const std::string where = opts.host + ":" + std::to_string(opts.port);
  m.acceptor.open(ep.protocol(), ec);
  VLART_CHECK(!ec, IoError, "serve: cannot open a socket for ", where, ": ", ec.message());
  m.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  m.acceptor.bind(ep, ec);
  VLART_CHECK(!ec, IoError, "serve: cannot bind ", where, ": ", ec.message());
  m.acceptor.listen(net::socket_base::max_listen_connections, ec);
  VLART_CHECK(!ec, IoError, "serve: cannot listen on ", where, ": ", ec.message());
  m.port = m.acceptor.local_endpoint().port();

  m.scheduler = std::make_unique<Scheduler>(policy, opts.scheduler);
  st.scheduler = m.scheduler.get();
  m.do_accept();
  for (int i = 0; i < opts.io_threads; ++i) m.threads.emplace_back([&m] { m.ioc.run(); });
}

Server::~Server() { stop(); }

uint16_t Server::port() const { return impl_->port; }

void Server::stop() {
  Impl& m = *impl_;
  {
    std::lock_guard<std::mutex> lk(m.stop_m);
    if (m.stopped) return;
    m.stopped = true;
  }
  m.st->stopping = true;
  net::post(m.ioc, [&m] {
    beast::error_code ec;
    m.acceptor.close(ec);
  });
  // Queued requests are answered (kCancelled -> an error frame), the running batch completes.
  m.scheduler->shutdown(/*drain=*/false);
  {
    std::lock_guard<std::mutex> lk(m.sessions_m);
    for (auto& w : m.sessions)
      if (auto s = w.lock()) s->shutdown();
    m.sessions.clear();
  }
  // Give the sessions a moment to flush the answers and close, then stop the loop.
  const Clock::time_point t0 = Clock::now();
  while (m.st->connections_open.load() > 0 && Clock::now() - t0 < std::chrono::seconds(2))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  m.ioc.stop();
  for (std::thread& t : m.threads)
    if (t.joinable()) t.join();
  m.stop_cv.notify_all();
}

void Server::wait() {
  std::unique_lock<std::mutex> lk(impl_->stop_m);
  impl_->stop_cv.wait(lk, [this] { return impl_->stopped; });
}

ServerStats Server::stats() const { return impl_->st->stats(); }

std::string Server::metrics_text() const {
  return serve::metrics_text(impl_->st->stats(), impl_->scheduler->stats(), *impl_->st->policy);
}

Scheduler& Server::scheduler() { return *impl_->scheduler; }

}  // namespace vlart
