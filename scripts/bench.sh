#!/usr/bin/env bash
# Runs every Google Benchmark suite in build/bench. `--short` (CI) uses tiny measuring times.
set -euo pipefail
cd "$(dirname "$0")/.."
MIN_TIME=0.5
REPS=3
if [ "${1:-}" = "--short" ]; then MIN_TIME=0.05; REPS=1; fi
shopt -s nullglob
for b in build/bench/bench_*; do
  [ -x "$b" ] || continue
  echo "=== $(basename "$b") ==="
  "$b" --benchmark_min_time="$MIN_TIME" --benchmark_repetitions="$REPS" \
       --benchmark_report_aggregates_only="$([ "$REPS" -gt 1 ] && echo true || echo false)" \
       ${VLART_BENCH_FILTER:+--benchmark_filter="$VLART_BENCH_FILTER"}
done
