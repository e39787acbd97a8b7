// vlart command-line tool. Subcommands:
//   vlart version                 print the version
//   vlart info [model_dir]        CPU features, backends and library versions; or a model summary
//   vlart run <model_dir> ...     one policy inference from image files, state and task
//   vlart bench <model_dir> ...   the same inputs, timed: p50/p99 per stage, resident memory
//   vlart serve <model_dir> ...   the policy behind openpi's websocket protocol (vlart/server.h)
//   vlart bench-ops [options]     short benchmark of the core ops through the executor
//   vlart quantize <in> <out> ... quantized copy of a checkpoint (docs/quantization.md)
//   vlart compare <ref> <cand>... action error, size, memory and latency of quantized candidates
//   vlart prune <in> <out> ...    structurally pruned copy of a checkpoint (docs/compression.md)
//   vlart rank-layers <dir> ...   layer importance (input/output cosine) on recorded observations
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "commands.h"
#include "vlart/error.h"
#include "vlart/log.h"
#include "vlart/system.h"

namespace {
void usage() {
  std::fprintf(stderr,
               "usage: vlart <command> [options]\n"
               "  version                       print the vlart version\n"
               "  info                          CPU features, backends, library versions\n"
               "  info <model_dir>              architecture, parameters per part, files of a checkpoint\n"
               "  run <model_dir> --image NAME=FILE ... --state V1,V2,... --task TEXT\n"
               "      [--json] [--seed N] [--noise FILE.npy|FILE.safetensors [--noise-key K]]\n"
               "      [--threads N] [--steps N] [--tokenizer PATH] [--warmup N] [--dtype f32|bf16]\n"
               "      [--backend cpu|cuda|auto] [--vision-cache MiB] [--visual-tokens K] [--vlm-config DIR]\n"
               "      [--attention auto|f32|int16|int8]\n"
               "      text-decoding policies (opentau pi05 with predict_response): [--response-max-tokens N]\n"
               "      [--no-early-stop] [--decode-weights int8] [--reason-every N] [--reason-scene-threshold X (0..255)]\n"
               "                                one inference; prints the action chunk, the decoded text and\n"
               "                                stage timings\n"
               "  bench <model_dir> (run's options) [--iters N] [--warmup N (default 2)] [--profile]\n"
               "      [--clients N [--max-batch B] [--telemetry-every N]] [--drift (call i: state + 0.01 i, frames shifted i px)]\n"
               "                                N client threads through a Scheduler (telemetry: a log\n"
               "                                line every N requests, at info: VLART_LOG_LEVEL=info)\n"
               "                                timed inference: p50/p99/max per stage, RSS; --json\n"
               "  serve <model_dir> [--host 127.0.0.1] [--port 8000 (0: any)] [--max-batch B] [--max-queue N]\n"
               "      [--deadline-ms MS] [--max-message-mb MB] [--max-connections N] [--io-threads N] [--seed N]\n"
               "      [--threads N] [--dtype f32|bf16] [--backend ...] [--tokenizer PATH] (run's model options)\n"
               "                                openpi websocket + msgpack policy server (openpi-client drives it);\n"
               "                                GET /healthz, GET /metrics (Prometheus)\n"
               "  bench-ops [--threads N] [--dtype f32|bf16] [--reps N] [--backend cpu|cuda]\n"
               "                                short op benchmark through the graph executor\n"
               "  quantize <in_dir> <out_dir> --scheme bf16|int8|w8a8|int4-g32|int4-g64|int4-g128[-asym]\n"
               "      [--keep-float PAT,...] [--no-default-keep] [--scales-f16] [--force]\n"
               "      [--attention f32|int16|int8 (default: int8 for w8a8, else f32)]\n"
               "      [--calibrate OBS_DIR [--calib-rows N] [--gptq]] (int4: AWQ scales or GPTQ rounding;\n"
               "      w8a8: static activation ranges)\n"
               "                                write a quantized copy of a checkpoint directory\n"
               "  compare <ref_dir> <cand_dir> [<cand_dir> ...] --obs OBS_DIR [--threads N] [--iters N]\n"
               "      [--seed N] [--tokenizer PATH] [--vlm-config DIR] [--visual-tokens K] [--json]\n"
               "                                action error, file size, peak RSS and latency vs the reference\n"
               "                                (--visual-tokens: candidates keep K visual tokens per camera)\n"
               "  prune <in_dir> <out_dir> [--drop-vlm-layers I,J,...] [--drop-expert-layers I,...]\n"
               "      [--drop-vlm-layers-by-rank N] [--drop-expert-layers-by-rank N] [--calibrate OBS_DIR]\n"
               "      [--prune-heads-frac F] [--prune-mlp-frac F] [--importance magnitude|activation]\n"
               "      [--parts vlm,expert] [--vlm-config DIR] [--threads N] [--force]\n"
               "                                structurally pruned copy of a checkpoint (docs/compression.md;\n"
               "                                by-rank and activation importance measure on --calibrate)\n"
               "  rank-layers <model_dir> --obs OBS_DIR [--threads N] [--vlm-config DIR] [--json]\n"
               "                                per-layer input/output cosine on recorded observations\n");
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  const std::string cmd = argv[1];
  try {
    if (const char* lv = std::getenv("VLART_LOG_LEVEL")) vlart::set_log_level(vlart::parse_log_level(lv));
    if (cmd == "version" || cmd == "--version") {
      std::printf("vlart %s\n", vlart::version().c_str());
      return 0;
    }
    if (cmd == "info") return vlart::cli::cmd_info(argc - 2, argv + 2);
    if (cmd == "run") return vlart::cli::cmd_run(argc - 2, argv + 2);
    if (cmd == "bench") return vlart::cli::cmd_bench(argc - 2, argv + 2);
    if (cmd == "serve") return vlart::cli::cmd_serve(argc - 2, argv + 2);
    if (cmd == "bench-ops") return vlart::cli::cmd_bench_ops(argc - 2, argv + 2);
    if (cmd == "quantize") return vlart::cli::cmd_quantize(argc - 2, argv + 2);
    if (cmd == "compare") return vlart::cli::cmd_compare(argc - 2, argv + 2);
    if (cmd == "prune") return vlart::cli::cmd_prune(argc - 2, argv + 2);
    if (cmd == "rank-layers") return vlart::cli::cmd_rank_layers(argc - 2, argv + 2);
    if (cmd == "help" || cmd == "--help" || cmd == "-h") {
      usage();
      return 0;
    }
    std::fprintf(stderr, "vlart: unknown command '%s'\n", cmd.c_str());
    usage();
    return 2;
  } catch (const vlart::Error& e) {
    std::fprintf(stderr, "vlart: error (%s): %s\n", vlart::error_code_name(e.code()), e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vlart: error: %s\n", e.what());
    return 1;
  }
}
