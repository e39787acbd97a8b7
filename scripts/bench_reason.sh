#!/usr/bin/env bash
# Reason-then-act benchmark: opentau's pi05 with predict_response (prefill, greedy 52-token text decode
# into the KV cache, then the action expert over prefix + response), full size, one run, same machine,
# same inputs, one program at a time (each holds the model in memory):
#   1. sets up opentau 0.14.0 in .venv310 (tools/requirements-reason-fixtures.txt) and writes the full-size
#      random-weight checkpoint (tools/make_reason_full.py -> models/pi05_reason_full: PaliGemma 2B +
#      Gemma 300M expert, SigLIP So400m/14 at 224 px, 1 camera, state/action 32, chunk 50, 10 steps,
#      prompt 256, response 52; ~6.7 GB, opentau's own bf16/f32 mix) when missing;
#   2. vlart quantize: int8 and int4-g64 (weight-only) copies;
#   3. measures the DRAM read bandwidth (bench_linear BM_DramRead, 2 threads) before and after;
#   4. opentau f32 on torch CPU (tools/bench_opentau.py): prefill, decode per token, action, total;
#   5. vlart f32, bf16 compute, int8 and int4 checkpoints, and f32 with int8 decode weights
#      (--decode-weights int8: only the decode's weights quantized): the same stages;
#   6. reasoning reuse (`vlart bench --drift`, a moving observation per call): f32 every call (the
#      reference), f32 re-decoding every REUSE calls, f32 + int8 decode weights every call and every
#      REUSE calls, and the same with the action expert int8 too: per-call action error (rel L2) against
#      the reference, amortised (mean) and p50 latency;
#   7. prints the tables (tools/reason_bench_report.py -> $OUT/report.md).
# Environment: ITERS (timed calls, default 3), WARMUP (1), THREADS (2), SEQ (calls of each reuse run, 10),
# REUSE (10), VLART_REASON_MODEL (default models/pi05_reason_full), OUT (out/bench_reason),
# SKIP_BUILD=1 (use build/ as it is), SKIP_OPENTAU=1 (reuse $OUT/opentau.json from an earlier run),
# STAGES (default "peers stages reuse"): which of the runs of steps 4-5 (peers = opentau, stages = the vlart
# stage table) and 6 (reuse) to run, to finish an interrupted run into the same OUT.
# Smoke test on a tiny fixture (seconds): SMOKE=1 OUT=/tmp/bench_reason_smoke bash scripts/bench_reason.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS="${ITERS:-3}"
WARMUP="${WARMUP:-1}"
THREADS="${THREADS:-2}"
SEQ="${SEQ:-10}"
REUSE="${REUSE:-10}"
MODEL="${VLART_REASON_MODEL:-models/pi05_reason_full}"
OUT="${OUT:-out/bench_reason}"
PY=.venv310/bin/python

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  bash scripts/setup.sh
  bash scripts/build.sh
fi
if ! "$PY" -c "import opentau.policies.pi05.modeling_pi05" 2>/dev/null; then
  # opentau pins Python 3.10 (pyenv); its full requirements pull GPU and API packages, so it is installed
  # without dependencies plus what its pi05 inference imports (tools/requirements-reason-fixtures.txt).
  PYENV_VERSION=3.10.13 "$HOME/.pyenv/versions/3.10.13/bin/python" -m venv .venv310
  "$PY" -m pip install -q --no-deps opentau==0.14.0
  "$PY" -m pip install -q -r tools/requirements-reason-fixtures.txt
fi
mkdir -p "$OUT"
if [ "${SMOKE:-0}" = 1 ]; then
  # The tiny fixture a_one_cam: its own inputs, written from its reference.safetensors.
  CKPT=tests/data/pi05_reason/a_one_cam/checkpoint
  IN="$OUT/inputs"
  mkdir -p "$IN"
  "$PY" - "$IN" <<'EOF'
import json, sys, numpy as np
from PIL import Image
from safetensors.numpy import load_file
out = sys.argv[1]
r = load_file("tests/data/pi05_reason/a_one_cam/reference.safetensors")
Image.fromarray(r["s0.input.image.camera0"]).save(f"{out}/camera0.png")
np.save(f"{out}/state.npy", r["s0.input.state_padded"][0])
np.save(f"{out}/noise.npy", r["s0.noise"][0])
case = json.load(open("tests/data/pi05_reason/a_one_cam/case.json"))
open(f"{out}/task.txt", "w").write(case["samples"][0]["task"])
EOF
  QUANT_OUT="$OUT/quant"
else
  CKPT="$MODEL/checkpoint"
  IN="$MODEL/inputs"
  if [ ! -f "$CKPT/model.safetensors" ] || [ ! -f "$CKPT/config.json" ]; then
    echo "=== writing the full-size random opentau pi05 checkpoint to $MODEL (about 6.7 GB) ==="
    "$PY" tools/make_reason_full.py --out "$MODEL" --threads "$THREADS"
  fi
  QUANT_OUT="$MODEL"
fi
for S in int8 int4-g64; do
  if [ ! -f "$QUANT_OUT/$S/model.safetensors" ]; then
    echo "=== vlart quantize --scheme $S ==="
    ./build/bin/vlart quantize "$CKPT" "$QUANT_OUT/$S" --scheme "$S" --force
  fi
done
# int8 action expert only: the prefix keeps the checkpoint's weights (weight-only int8 is slower than f32 at
# the prefix's M ~ 400 rows on AVX2, faster at the expert's 50); the decode takes --decode-weights int8.
if [ ! -f "$QUANT_OUT/int8-expert/model.safetensors" ]; then
  echo "=== vlart quantize --scheme int8, action expert only ==="
  ./build/bin/vlart quantize "$CKPT" "$QUANT_OUT/int8-expert" --scheme int8 --force \
    --keep-float '*.vision_tower.*,*.multi_modal_projector.*,*.language_model.*'
fi

STATE="$("$PY" -c 'import sys, numpy as np; print(",".join(f"{x:.9g}" for x in np.load(sys.argv[1]).reshape(-1)))' "$IN/state.npy")"
TASK="$(cat "$IN/task.txt")"
IMAGES=()
for f in "$IN"/*.png; do IMAGES+=(--image "$(basename "$f" .png)=$f"); done
vbench() {  # vbench <out.json> <checkpoint> [options...]
  local out="$1" ck="$2"
  shift 2
  ./build/bin/vlart bench "$ck" "${IMAGES[@]}" --state "$STATE" --task "$TASK" --noise "$IN/noise.npy" \
    --threads "$THREADS" --json "$@" > "$out"
}
peaks() {
  echo "=== DRAM read bandwidth (bench_linear, 2 threads) ==="
  ./build/bench/bench_linear --benchmark_min_time=0.3 --benchmark_repetitions=3 --benchmark_format=json \
    --benchmark_filter='BM_DramRead/thr:2' > "$1"
}
STAGES="${STAGES:-peers stages reuse}"
has() { case " $STAGES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
peaks "$OUT/peaks.json"
if has peers && { [ "${SKIP_OPENTAU:-0}" != 1 ] || [ ! -f "$OUT/opentau.json" ]; }; then
  echo "=== opentau 0.14.0 f32 (torch CPU, $THREADS threads) ==="
  OMP_NUM_THREADS="$THREADS" HF_HUB_OFFLINE=1 "$PY" tools/bench_opentau.py --checkpoint "$CKPT" --inputs "$IN" \
    --threads "$THREADS" --iters "$ITERS" --warmup "$WARMUP" --json "$OUT/opentau.json"
fi
if has stages; then
echo "=== vlart f32 / bf16 / int8 / int4-g64 ==="
vbench "$OUT/vlart_f32.json" "$CKPT" --iters "$ITERS" --warmup "$WARMUP"
vbench "$OUT/vlart_bf16.json" "$CKPT" --iters "$ITERS" --warmup "$WARMUP" --dtype bf16
vbench "$OUT/vlart_int8.json" "$QUANT_OUT/int8" --iters "$ITERS" --warmup "$WARMUP"
vbench "$OUT/vlart_int4.json" "$QUANT_OUT/int4-g64" --iters "$ITERS" --warmup "$WARMUP"
vbench "$OUT/vlart_f32_dq8.json" "$CKPT" --iters "$ITERS" --warmup "$WARMUP" --decode-weights int8
fi
if has reuse; then
echo "=== reasoning reuse: $SEQ moving observations, re-decode every $REUSE calls ==="
vbench "$OUT/drift_f32_every.json" "$CKPT" --iters "$SEQ" --warmup 1 --drift
vbench "$OUT/drift_f32_reuse.json" "$CKPT" --iters "$SEQ" --warmup 1 --drift --reason-every "$REUSE"
vbench "$OUT/drift_dq8_every.json" "$CKPT" --iters "$SEQ" --warmup 1 --drift --decode-weights int8
vbench "$OUT/drift_dq8_reuse.json" "$CKPT" --iters "$SEQ" --warmup 1 --drift --decode-weights int8 --reason-every "$REUSE"
vbench "$OUT/drift_dq8x_reuse.json" "$QUANT_OUT/int8-expert" --iters "$SEQ" --warmup 1 --drift --decode-weights int8 \
  --reason-every "$REUSE"
fi
peaks "$OUT/peaks_end.json"
echo "=== report ($OUT/report.md) ==="
"$PY" tools/reason_bench_report.py "$OUT" --checkpoint "$CKPT" | tee "$OUT/report.md"
