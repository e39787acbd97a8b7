#!/usr/bin/env bash
# Quantized SmolVLA end to end, on the smolvla_base-shaped random checkpoint (1 camera):
#   1. writes the checkpoint if missing (tools/make_smolvla_fixtures.py --full-size, needs the
#      fixture venv: LeRobot + torch from PyPI) and an observation directory from the bundled frames;
#   2. quantizes it with every scheme (w8a8, w8a8 with static calibrated ranges, int8, int4-g64,
#      int4-g64 with activation-aware calibration, int4-g64 with GPTQ rounding) into models/quant/
#      (git-ignored);
#   3. runs `vlart compare` (each model in its own process, one after another: actions vs the float
#      reference, file size, peak RSS, p50 latency and speed-up) and the kernel micro-benchmark.
# Output: $OUT/compare.md, $OUT/kernels.json. Variables: ITERS, THREADS, OUT,
# VLART_SMOLVLA_MODEL (a directory with checkpoint/ and vlm/ as the fixture tool writes them).
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS="${ITERS:-6}"
THREADS="${THREADS:-2}"
MODEL="${VLART_SMOLVLA_MODEL:-models/smolvla_random_full}"
OUT="${OUT:-out/bench_quant}"
QDIR="${QDIR:-models/quant}"
PY=.venv/bin/python

bash scripts/setup.sh
bash scripts/build.sh
if [ ! -f "$MODEL/checkpoint/model.safetensors" ]; then
  if ! "$PY" -c "import lerobot, torch" 2>/dev/null; then
    python3 -m venv .venv
    "$PY" -m pip install -q -r tools/requirements-fixtures.txt
  fi
  "$PY" tools/make_smolvla_fixtures.py --full-size "$MODEL"
fi
mkdir -p "$OUT" "$QDIR"

# One-camera copy of the checkpoint (same weights; config lists camera1 only), as bench_smolvla.sh uses.
REF="$MODEL/checkpoint_cams1"
if [ ! -f "$REF/config.json" ]; then
  mkdir -p "$REF"
  for f in "$MODEL"/checkpoint/*; do
    [ "$(basename "$f")" = config.json ] || ln -sf "$(realpath "$f")" "$REF/$(basename "$f")"
  done
  python3 - "$MODEL/checkpoint/config.json" "$REF/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["input_features"] = {k: v for k, v in c["input_features"].items()
                       if v["type"] != "VISUAL" or k.endswith("camera1")}
json.dump(c, open(sys.argv[2], "w"), indent=2)
EOF
fi

# Observations: the bundled frames with different states and tasks (noise drawn per index).
OBS="$OUT/obs"
rm -rf "$OBS"
i=0
for spec in "camera1.png|0.1,-0.4,0.3,0.05,-0.1,0.2|pick up the red cube and place it in the box" \
            "camera2.png|-0.6,0.2,0.0,0.4,0.3,-0.2|open the drawer" \
            "camera1.png|0.9,0.1,-0.5,-0.3,0.6,0.0|stack the blocks"; do
  IFS='|' read -r img state task <<<"$spec"
  mkdir -p "$OBS/o$i"
  cp "assets/samples/$img" "$OBS/o$i/camera1.png"
  echo "$state" >"$OBS/o$i/state.txt"
  echo "$task" >"$OBS/o$i/task.txt"
  i=$((i + 1))
done

VLM=(--vlm-config "$MODEL/vlm" --tokenizer "$MODEL/vlm/tokenizer.json")
quant() {  # name scheme [extra args]
  local name="$1" scheme="$2"
  shift 2
  echo "=== vlart quantize --scheme $scheme $* -> $QDIR/$name ==="
  ./build/bin/vlart quantize "$REF" "$QDIR/$name" --scheme "$scheme" --force --threads "$THREADS" "${VLM[@]}" "$@"
}
quant w8a8 w8a8
quant w8a8-static w8a8 --calibrate "$OBS"
quant int8 int8
quant int4-g64 int4-g64
quant int4-g64-awq int4-g64 --calibrate "$OBS"
quant int4-g64-gptq int4-g64 --calibrate "$OBS" --gptq

CANDS=("$QDIR/w8a8" "$QDIR/w8a8-static" "$QDIR/int8" "$QDIR/int4-g64" "$QDIR/int4-g64-awq" "$QDIR/int4-g64-gptq")
echo "=== vlart compare (reference f32 + ${#CANDS[@]} candidates, $ITERS timed calls each, $THREADS threads) ==="
./build/bin/vlart compare "$REF" "${CANDS[@]}" --obs "$OBS" --threads "$THREADS" --iters "$ITERS" "${VLM[@]}" \
  | tee "$OUT/compare.md"
echo "=== kernels (bench_quant_linear, medians of 3) ==="
./build/bench/bench_quant_linear --benchmark_min_time=0.3 --benchmark_repetitions=3 \
  --benchmark_report_aggregates_only=true --benchmark_format=json >"$OUT/kernels.json"
echo "wrote $OUT/compare.md $OUT/kernels.json"
