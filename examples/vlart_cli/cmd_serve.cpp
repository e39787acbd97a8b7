// `vlart serve <model_dir> ...`: the policy behind openpi's websocket protocol (vlart/server.h).
#include <csignal>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "run_args.h"
#include "vlart/error.h"
#include "vlart/system.h"
#ifdef VLART_HAVE_SERVER
#include "vlart/server.h"
#endif

namespace vlart::cli {

int cmd_serve(int argc, char** argv) {
#ifndef VLART_HAVE_SERVER
  (void)argc;
  (void)argv;
  throw UnsupportedError(
      "this vlart was built without the policy server (it needs libboost-dev and libmsgpack-cxx-dev at build time)");
#else
  const RunArgs a = parse_args("serve", argc, argv);
  // SIGINT/SIGTERM are taken by sigwait below; blocked before any thread starts, so every thread
  // (scheduler, network, OpenMP) inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  std::unique_ptr<Policy> policy = load_policy(a);
  ServerOptions so;
  so.host = a.host;
  so.port = static_cast<uint16_t>(a.port);
  so.io_threads = a.io_threads;
  so.max_connections = a.max_connections;
  so.max_message_bytes = static_cast<size_t>(a.max_message_mib) << 20;
  so.scheduler.max_batch = a.max_batch;
  so.scheduler.max_queue = static_cast<size_t>(a.max_queue);
  so.scheduler.noise_seed = a.seed;
  if (a.deadline_ms > 0) so.scheduler.default_deadline = std::chrono::milliseconds(a.deadline_ms);
  Server server(*policy, so);
  const PolicyInfo& info = policy->info();
  // The line scripts wait for (with --port 0 it carries the port picked).
  std::printf("vlart serve: %s policy %s (%s, %s) listening on ws://%s:%u (GET /healthz, /metrics)\n",
              info.family.c_str(), a.model_dir.c_str(), dtype_name(info.compute_dtype), info.backend.c_str(),
              a.host.c_str(), static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  int sig = 0;
  sigwait(&sigs, &sig);
  std::printf("vlart serve: signal %d, stopping\n", sig);
  std::fflush(stdout);
  server.stop();
  const ServerStats st = server.stats();
  std::printf("vlart serve: %llu connections, %llu requests, %llu responses, %llu bad requests, %llu failed\n",
              static_cast<unsigned long long>(st.connections_total), static_cast<unsigned long long>(st.requests),
              static_cast<unsigned long long>(st.responses), static_cast<unsigned long long>(st.bad_requests),
              static_cast<unsigned long long>(st.failed));
  return 0;
#endif
}

}  // namespace vlart::cli
