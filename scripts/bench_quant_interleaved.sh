#!/usr/bin/env bash
# End-to-end latency of quantized checkpoints against the float one, interleaved: ROUNDS rounds,
# each running `vlart bench` once per model (own process, WARMUP + ITERS calls, one observation),
# so slow phases of a shared, noisy host hit every model alike. Prints each round's p50 total per
# model and, per model, the median over rounds and its speed-up against the float reference.
# Run scripts/bench_quant.sh first (it writes the checkpoints and the observations).
#   scripts/bench_quant_interleaved.sh [REF_DIR CAND_DIR ...]
# Variables: ROUNDS (5), ITERS (6), THREADS (2), OBS (out/bench_quant/obs/o0), VLART_SMOLVLA_MODEL.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-5}"
ITERS="${ITERS:-6}"
THREADS="${THREADS:-2}"
MODEL="${VLART_SMOLVLA_MODEL:-models/smolvla_random_full}"
OBS="${OBS:-out/bench_quant/obs/o0}"
if [ $# -ge 2 ]; then
  DIRS=("$@")
else
  DIRS=("$MODEL/checkpoint_cams1" models/quant/w8a8 models/quant/w8a8-static)
fi
for d in "${DIRS[@]}"; do [ -f "$d/config.json" ] || { echo "missing $d (run scripts/bench_quant.sh)" >&2; exit 1; }; done
[ -f "$OBS/camera1.png" ] || { echo "missing $OBS (run scripts/bench_quant.sh)" >&2; exit 1; }
declare -A T
for r in $(seq 1 "$ROUNDS"); do
  line="round $r:"
  for d in "${DIRS[@]}"; do
    p50=$(./build/bin/vlart bench "$d" --image camera1="$OBS/camera1.png" --state "$(cat "$OBS/state.txt")" \
            --task "$(cat "$OBS/task.txt")" --threads "$THREADS" --iters "$ITERS" \
            --vlm-config "$MODEL/vlm" --tokenizer "$MODEL/vlm/tokenizer.json" | awk '$1 == "total" {print $2}')
    T[$d]="${T[$d]:-} $p50"
    line="$line $(basename "$d") $p50 ms;"
  done
  echo "$line"
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ref=$(echo "${T[${DIRS[0]}]}" | median)
echo
echo "| model | p50 total per round (ms) | median (ms) | speed-up vs $(basename "${DIRS[0]}") |"
echo "|---|---|---:|---:|"
for d in "${DIRS[@]}"; do
  m=$(echo "${T[$d]}" | median)
  echo "| $d |${T[$d]} | $m | $(awk -v a="$ref" -v b="$m" 'BEGIN {printf "%.2fx", a / b}') |"
done
