// Policy server speaking openpi's websocket + msgpack protocol, so existing robot clients
// (`openpi_client.websocket_client_policy.WebsocketClientPolicy`, PyPI openpi-client) drive a vlart
// policy unchanged. `vlart serve <model_dir>` runs one; programs may embed it:
//
//   auto policy = vlart::Policy::load("ckpt");
//   vlart::ServerOptions so;  so.port = 8000;
//   vlart::Server server(*policy, so);   // listening when the constructor returns
//   server.wait();                        // until stop() (from any thread or a signal handler)
//
// Protocol (docs/serving.md): on connect the server sends one binary msgpack map, the metadata
// (from PolicyInfo); then for every binary msgpack observation map one binary response map:
//   {"actions": ndarray f32 [horizon, action_dim], "server_timing": {"infer_ms", "queue_ms",
//    "prev_total_ms"}, "policy_timing": {stage: ms, ..., "total": ms}} (+ "text", "tokens" when the
//    policy emits text).
// ndarrays are maps with bin keys __ndarray__, data, dtype (numpy dtype.str), shape (openpi's
// msgpack_numpy). Observation keys: LeRobot's ("observation.images.<cam>" uint8 HWC,
// "observation.state", "task") or openpi's ("observation/<cam>", "observation/state", "prompt");
// optional "noise" (ndarray of PolicyInfo::noise_shape), "seed" (int: the noise `vlart run --seed`
// draws), "deadline_ms" (latest start, from receipt), "robot_id" (vision-cache namespace). Other
// keys are ignored (logged once per connection). A bad request is answered with one text frame
// holding a one-line error, then the connection is closed with code 1011; other connections are
// not affected. GET /healthz answers 200 "OK", GET /metrics the Prometheus text of the counters.
// All requests go through one vlart::Scheduler (bounded queue, deadlines, batching).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "vlart/policy.h"
#include "vlart/scheduler.h"

namespace vlart {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;       // 0: any free port (Server::port() tells which)
  int io_threads = 1;         // network threads (decode/encode); inference runs on the scheduler's worker
  int max_connections = 64;   // more websocket upgrades are answered HTTP 503
  // Largest websocket message accepted; a larger one is refused by the websocket layer (close
  // code 1009) before it is buffered. Three 640x480 RGB frames are 2.8 MB.
  size_t max_message_bytes = size_t{64} << 20;
  int64_t max_image_side = 8192;   // frames with a larger height or width are refused
  SchedulerOptions scheduler;      // queue bound, batching, default deadline, noise seed
};

// Server-side counters (also on GET /metrics).
struct ServerStats {
  uint64_t connections_total = 0, connections_open = 0, connections_refused = 0;
  uint64_t requests = 0;       // observation messages received
  uint64_t responses = 0;      // action responses produced (queued to be sent)
  uint64_t bad_requests = 0;   // refused before the scheduler (decode / validation errors)
  uint64_t failed = 0;         // answered with an error by the scheduler (invalid, timeout, queue full, ...)
  uint64_t http_requests = 0;  // plain HTTP requests (healthz, metrics, others)
  uint64_t bytes_in = 0, bytes_out = 0;
};

class Server {
 public:
  // Binds and starts listening (throws IoError naming host:port when that fails) and starts the
  // network threads and the scheduler. `policy` must outlive the server and is used by nothing else.
  Server(Policy& policy, const ServerOptions& opts = {});
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const;  // the bound port
  // Stops accepting, answers queued requests with an error, closes every connection and joins the
  // threads. Idempotent; safe from any thread (not from a scheduler callback).
  void stop();
  void wait();  // blocks until stop() has been called (by another thread)

  ServerStats stats() const;
  std::string metrics_text() const;  // the Prometheus text GET /metrics serves
  Scheduler& scheduler();            // pause()/resume() for maintenance; stats()

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace vlart
