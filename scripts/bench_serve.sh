#!/usr/bin/env bash
# `vlart serve` overhead against in-process inference (tools/bench_serve.py), same machine, same run:
#  1. the bundled policy, frames at its input size (what `bash scripts/demo.sh` sends), 200 calls x 3 rounds;
#  2. the bundled policy with 480x640 camera frames (transfer-dominated), 200 calls x 3 rounds;
#  3. the full-size smolvla_base-shaped checkpoint (models/smolvla_random_full, written by
#     scripts/bench_smolvla.sh; skipped with a message when absent), 512x512 frames, ITERS_FULL x 2 rounds.
# Results: out/bench_serve/*.json and a summary table. Env: THREADS (default: all cores), ITERS_FULL (10).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
bash scripts/build.sh >/dev/null
PY=.venv-client/bin/python
OUT=out/bench_serve
mkdir -p "$OUT"
THREADS="${THREADS:-0}"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(./build/bin/vlart info | grep -m1 "kernels:" | xargs)"
$PY tools/bench_serve.py --vlart build/bin/vlart --model assets/default_policy --iters 200 --rounds 3 \
  --threads "$THREADS" --json "$OUT/bundled.json"
$PY tools/bench_serve.py --vlart build/bin/vlart --model assets/default_policy --iters 200 --rounds 3 \
  --threads "$THREADS" --height 480 --width 640 --json "$OUT/bundled_480x640.json"
FULL=models/smolvla_random_full/checkpoint_cams1
if [ -f "$FULL/model.safetensors" ]; then
  $PY tools/bench_serve.py --vlart build/bin/vlart --model "$FULL" --iters "${ITERS_FULL:-10}" --rounds 2 \
    --threads "$THREADS" --json "$OUT/smolvla_full.json"
else
  echo "SKIPPED full-size SmolVLA: $FULL missing (bash scripts/bench_smolvla.sh writes it)"
fi
$PY - "$OUT" <<'PYEOF'
import json, os, sys
out = sys.argv[1]
print("\n| model | frames | in-process p50 ms | served round trip p50 ms | difference | paired overhead p50 ms |")
print("|---|---|---|---|---|---|")
for name in ["bundled", "bundled_480x640", "smolvla_full"]:
    p = os.path.join(out, name + ".json")
    if not os.path.exists(p):
        continue
    r = json.load(open(p)); m = r["median"]
    fr = ", ".join("x".join(str(d) for d in f[:2]) for f in r["frames"])
    print(f"| {r['model']} | {fr} | {m['inproc_p50']:.3f} | {m['rtt_p50']:.3f} | "
          f"{r['rtt_minus_inproc_ms']:+.3f} ms ({100 * (r['rtt_over_inproc'] - 1):+.2f}%) | {m['paired_overhead_p50']:.3f} |")
PYEOF
