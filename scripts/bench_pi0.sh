#!/usr/bin/env bash
# pi0 end-to-end benchmark against LeRobot, same checkpoint, same inputs, same machine, one run:
#   1. sets up the LeRobot 0.6.1 Python environment (.venv312) and writes the full-size random-weight pi0
#      checkpoint (models/pi0_random_full: PaliGemma 3B + Gemma 300M expert, bf16 Gemma weights, 3 cameras
#      at 224 px, state/action 14, chunk 50) when missing;
#   2. measures the machine's peaks (raw oneDNN matmul f32/bf16, DRAM read; bench_linear);
#   3. for 1 and 2 cameras (the first N of the checkpoint's 3; the others are left out, which LeRobot masks):
#      LeRobot's PI0Policy f32 (tools/bench_lerobot_pi0.py: memory-lean load, ~15 GiB peak RSS at full size;
#      it also writes the shared inputs: frames, state, task, initial noise), then `vlart bench` f32 and bf16;
#   4. prints the tables (tools/pi0_bench_report.py): p50/p99 per stage, peak RSS, speed-up, lower bound
#      from the measured peaks, action error against LeRobot, ISA class.
# Environment: ITERS (timed calls, default 3: one LeRobot call takes ~30-60 s at full size on 2 cores),
# WARMUP (default 1), THREADS (default 2), STEPS (default 10), CAMS (default "1 2"),
# VLART_PI0_MODEL (default models/pi0_random_full; a checkpoint directory, or one holding checkpoint/),
# OUT (default out/bench_pi0), SKIP_BUILD=1 (skip scripts/setup.sh and scripts/build.sh; use build/ as is).
# Smoke test on a tiny fixture (seconds):
#   VLART_PI0_MODEL=tests/data/pi0/pi0_b_three_cam/checkpoint ITERS=2 OUT=/tmp/bench_pi0_smoke bash scripts/bench_pi0.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS="${ITERS:-3}"
WARMUP="${WARMUP:-1}"
THREADS="${THREADS:-2}"
STEPS="${STEPS:-10}"
CAMS="${CAMS:-1 2}"
MODEL="${VLART_PI0_MODEL:-models/pi0_random_full}"
OUT="${OUT:-out/bench_pi0}"
PY=.venv312/bin/python

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  bash scripts/setup.sh
  bash scripts/build.sh
fi
if ! "$PY" -c "import lerobot, torch, transformers, safetensors" 2>/dev/null; then
  python3.12 -m venv .venv312
  "$PY" -m pip install -q lerobot==0.6.1 "transformers>=5.4,<5.6" torch safetensors
fi
"$PY" -c 'import importlib.metadata as m, sys; v = m.version("lerobot"); v == "0.6.1" or sys.exit(f"lerobot {v} in .venv312, expected 0.6.1")'
if [ -f "$MODEL/checkpoint/config.json" ]; then
  CKPT="$MODEL/checkpoint"
else
  CKPT="$MODEL"
fi
if [ ! -f "$CKPT/model.safetensors" ] || [ ! -f "$CKPT/config.json" ]; then
  # make_pi0_fixtures.py --full-size replaces its output directory: only write into a missing or empty one.
  if [ -d "$CKPT" ] && [ -n "$(ls -A "$CKPT")" ]; then
    echo "bench_pi0: $CKPT is not a pi0 checkpoint (no config.json + model.safetensors) and not empty" >&2
    exit 1
  fi
  echo "=== writing the full-size random pi0 checkpoint to $CKPT (about 9 GB) ==="
  "$PY" tools/make_pi0_fixtures.py --full-size "$CKPT"
fi
mkdir -p "$OUT"

# Peaks are measured before and after the model runs (3 repetitions each); the report takes the
# best, so a noisy moment on a shared machine cannot make the bound look easy.
peaks() {
  echo "=== machine peaks (bench_linear: raw oneDNN matmul, DRAM read; 2 threads) ==="
  ./build/bench/bench_linear --benchmark_min_time=0.3 --benchmark_repetitions=3 --benchmark_format=json \
    --benchmark_filter='BM_OneDnnMatmul/M:(256|1024)/.*/thr:2/cold:0|BM_DramRead/thr:2' > "$1"
}
peaks "$OUT/peaks.json"

for N in $CAMS; do
  IN="$OUT/inputs_cams$N"
  echo "=== LeRobot f32, $N camera(s) ==="
  OMP_NUM_THREADS="$THREADS" HF_HUB_OFFLINE=1 "$PY" tools/bench_lerobot_pi0.py --checkpoint "$CKPT" --cams "$N" \
    --steps "$STEPS" --threads "$THREADS" --iters "$ITERS" --warmup "$WARMUP" --seed 0 --inputs-dir "$IN" \
    --json "$OUT/lerobot_cams$N.json"
  # The checkpoint LeRobot ran (a sibling listing only the first N cameras when N is fewer).
  RUN_CKPT="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["checkpoint"])' "$OUT/lerobot_cams$N.json")"
  IMAGES=()
  for f in "$IN"/*.png; do IMAGES+=(--image "$(basename "$f" .png)=$f"); done
  for DT in f32 bf16; do
    echo "=== vlart $DT, $N camera(s) ==="
    ./build/bin/vlart bench "$RUN_CKPT" "${IMAGES[@]}" --state "$(cat "$IN/state.txt")" --task "$(cat "$IN/task.txt")" \
      --noise "$IN/noise.npy" --steps "$STEPS" --threads "$THREADS" --iters "$ITERS" --warmup "$WARMUP" \
      --dtype "$DT" --json > "$OUT/vlart_${DT}_cams$N.json"
  done
done
peaks "$OUT/peaks_end.json"
echo "=== report ($OUT/report.md) ==="
"$PY" tools/pi0_bench_report.py "$OUT"
