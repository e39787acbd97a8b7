#!/usr/bin/env bash
# Runs every benchmark program in build/bench. `--short` (CI) uses tiny measuring times.
# Google Benchmark suites get the --benchmark_* flags; plain programs (listed in PLAIN below) get
# their own arguments, because they reject flags they do not know.
set -euo pipefail
cd "$(dirname "$0")/.."
MIN_TIME=0.5
REPS=3
SHORT=0
if [ "${1:-}" = "--short" ]; then MIN_TIME=0.05; REPS=1; SHORT=1; fi
# Plain programs and their arguments (short mode, full mode).
plain_args() {
  case "$1" in
    bench_vision_reuse)
      if [ "$SHORT" = 1 ]; then echo "--frames 3 --thresholds 0,4 --task-reps 3"; else echo ""; fi ;;
    *) return 1 ;;
  esac
}
BENCH_DIR="${VLART_BENCH_DIR:-build/bench}"
shopt -s nullglob
for b in "$BENCH_DIR"/bench_*; do
  [ -x "$b" ] && [ -f "$b" ] || continue
  name=$(basename "$b")
  echo "=== $name ==="
  if args=$(plain_args "$name"); then
    # shellcheck disable=SC2086
    "$b" $args
    continue
  fi
  "$b" --benchmark_min_time="$MIN_TIME" --benchmark_repetitions="$REPS" \
       --benchmark_report_aggregates_only="$([ "$REPS" -gt 1 ] && echo true || echo false)" \
       ${VLART_BENCH_FILTER:+--benchmark_filter="$VLART_BENCH_FILTER"}
done
