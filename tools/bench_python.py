#!/usr/bin/env python3
"""Per-call overhead of the Python package over the C++ call, same inputs, same run.

Both sides time the whole call as its caller sees it: Python `policy.infer_chunk` wall time here, the
C++ `Policy::infer` wall time in `vlart bench` (call_wall_ms). Both also report the inference's stage
sum (ActionChunk timings total), so "wall - stages" per call is each side's call overhead (validation,
compute-thread handoff; plus for Python argument conversion, the GIL release/re-acquire and the result
array), paired per call so the host's noise mostly cancels; the Python overhead over C++ is the
difference of the two p50s. Also, in the same process and per call, Python wall - the C++ call's own
wall (timings["call"], taken by the binding around Policy::infer): what the binding adds. Rounds
alternate Python and C++. Frames: 64x64 (the bundled policy's input
size) and 480x640.

usage: bench_python.py --vlart build/bin/vlart --pythonpath build/python --model assets/default_policy
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vlart", required=True)
    ap.add_argument("--pythonpath", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    sys.path.insert(0, args.pythonpath)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
    import vlart
    from serve_util import fmt_state, write_png

    p = vlart.Policy(args.model, threads=args.threads)
    rng = np.random.default_rng(0)
    state = rng.normal(size=p.info["state_dim"]).astype(np.float32)
    rows = []
    for hw in [(64, 64), (480, 640)]:
        imgs = {c["key"]: rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for c in p.info["cameras"]}
        noise = p.seeded_noise(0)
        for _ in range(5):
            p.infer_chunk(imgs, state, "pick up the red cube", noise=noise)
        tmp = tempfile.mkdtemp()
        img_args = []
        for cam, im in imgs.items():
            f = os.path.join(tmp, cam + ".png")
            write_png(f, im)
            img_args += ["--image", f"{cam}={f}"]
        py_over, cpp_over, py_wall, cpp_wall, binding = [], [], [], [], []
        for _ in range(args.rounds):
            for _ in range(args.iters):
                t0 = time.perf_counter()
                c = p.infer_chunk(imgs, state, "pick up the red cube", noise=noise)
                w = (time.perf_counter() - t0) * 1e3
                py_wall.append(w)
                py_over.append(1e3 * (w - c.timings["total"]))
                binding.append(1e3 * (w - c.timings["call"]))  # Python wall - the C++ Policy call's wall
            out = subprocess.run([args.vlart, "bench", args.model, *img_args, "--state", fmt_state(state), "--task",
                                  "pick up the red cube", "--iters", str(args.iters), "--warmup", "5", "--json",
                                  "--threads", str(args.threads)], check=True, capture_output=True, text=True).stdout
            j = json.loads(out)
            cpp_wall += j["samples_call_wall_ms"]
            cpp_over += [1e3 * (w - s) for w, s in zip(j["samples_call_wall_ms"], j["samples_total_ms"])]
        row = dict(frames=list(hw), python_wall_p50_ms=statistics.median(py_wall),
                   cpp_wall_p50_ms=statistics.median(cpp_wall), python_call_overhead_p50_us=statistics.median(py_over),
                   cpp_call_overhead_p50_us=statistics.median(cpp_over))
        row["python_over_cpp_us"] = row["python_call_overhead_p50_us"] - row["cpp_call_overhead_p50_us"]
        binding.sort()
        row["binding_p50_us"], row["binding_min_us"] = statistics.median(binding), binding[0]
        rows.append(row)
        print(f"frames {hw[0]}x{hw[1]} x{len(imgs)}: wall p50 python {row['python_wall_p50_ms']:.3f} ms, C++ "
              f"{row['cpp_wall_p50_ms']:.3f} ms | call overhead (wall - stages) p50: python "
              f"{row['python_call_overhead_p50_us']:.1f} us, C++ {row['cpp_call_overhead_p50_us']:.1f} us -> "
              f"python over C++ {row['python_over_cpp_us']:.1f} us | same process, Python wall - C++ call wall: "
              f"p50 {row['binding_p50_us']:.1f} us (min {row['binding_min_us']:.1f})", flush=True)
    if args.json:
        json.dump(rows, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
