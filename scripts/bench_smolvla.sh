#!/usr/bin/env bash
# SmolVLA end-to-end benchmark against LeRobot, same checkpoint, same inputs, same machine, one run:
#   1. sets up the LeRobot Python environment (.venv, tools/requirements-fixtures.txt) and writes the
#      smolvla_base-shaped random-weight checkpoint (models/smolvla_random_full) when missing;
#   2. measures the machine's peaks (raw oneDNN matmul f32/bf16, DRAM read; bench_linear);
#   3. for 1 and 3 cameras: LeRobot's SmolVLAPolicy f32 (tools/bench_lerobot_smolvla.py, which also
#      writes the shared inputs: frames, state, task, initial noise), then `vlart bench` f32 and bf16;
#      LeRobot runs with identity SigLIP position ids (--identity-vision-pos), the semantics vlart
#      implements (stock transformers' f32 path computes other ids, transformers#41190; see
#      docs/smolvla_reference_notes.md), so the action error column compares like with like;
#   4. prints the table (tools/smolvla_bench_report.py): p50/p99 per stage, peak RSS, speed-up,
#      lower bound from the measured peaks, action error against LeRobot.
# Environment: ITERS (timed calls, default 10), THREADS (default 2), STEPS (default 10),
# VLART_SMOLVLA_MODEL (default models/smolvla_random_full), OUT (default out/bench_smolvla).
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS="${ITERS:-10}"
THREADS="${THREADS:-2}"
STEPS="${STEPS:-10}"
MODEL="${VLART_SMOLVLA_MODEL:-models/smolvla_random_full}"
OUT="${OUT:-out/bench_smolvla}"
PY=.venv/bin/python

bash scripts/setup.sh
bash scripts/build.sh
if ! "$PY" -c "import lerobot, torch" 2>/dev/null; then
  python3.11 -m venv .venv
  "$PY" -m pip install -q -r tools/requirements-fixtures.txt
fi
if [ ! -f "$MODEL/checkpoint/model.safetensors" ]; then
  "$PY" tools/make_smolvla_fixtures.py --full-size "$MODEL"
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

for CAMS in 1 3; do
  IN="$OUT/inputs_cams$CAMS"
  echo "=== LeRobot f32, $CAMS camera(s) ==="
  OMP_NUM_THREADS="$THREADS" "$PY" tools/bench_lerobot_smolvla.py --checkpoint "$MODEL/checkpoint" --cams "$CAMS" \
    --steps "$STEPS" --threads "$THREADS" --iters "$ITERS" --warmup 1 --seed 0 --inputs-dir "$IN" \
    --identity-vision-pos --json "$OUT/lerobot_cams$CAMS.json"
  CKPT="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["checkpoint"])' "$OUT/lerobot_cams$CAMS.json")"
  IMAGES=()
  for f in "$IN"/*.png; do IMAGES+=(--image "$(basename "$f" .png)=$f"); done
  for DT in f32 bf16; do
    echo "=== vlart $DT, $CAMS camera(s) ==="
    ./build/bin/vlart bench "$CKPT" "${IMAGES[@]}" --state "$(cat "$IN/state.txt")" --task "$(cat "$IN/task.txt")" \
      --noise "$IN/noise.npy" --steps "$STEPS" --threads "$THREADS" --iters "$ITERS" --warmup 1 --dtype "$DT" \
      --json > "$OUT/vlart_${DT}_cams$CAMS.json"
  done
done
peaks "$OUT/peaks_end.json"
echo "=== report ($OUT/report.md) ==="
"$PY" tools/smolvla_bench_report.py "$OUT"
