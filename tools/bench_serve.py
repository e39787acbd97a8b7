#!/usr/bin/env python3
"""Overhead of `vlart serve` + the stock openpi-client against in-process inference, same machine, same
inputs, same run (scripts/bench_serve.sh).

Per round: `vlart bench` (in-process Policy::infer, --iters warm calls) gives its p50; then the same
number of openpi-client `infer` calls against a `vlart serve` process of the same model and threads
give the round-trip p50, and per call the server-reported policy total, so that
round trip - policy total is the server + client overhead of that very call (paired, immune to the
host's noise). Rounds alternate; medians over rounds are reported.

usage: bench_serve.py --vlart build/bin/vlart --model DIR [--iters N] [--rounds R] [--threads T]
                      [--height H --width W] [--json OUT]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from openpi_client import websocket_client_policy

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
from serve_util import ServerProcess, fmt_state, observation, write_png  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)


def model_info(vlart, model):
    """Cameras and state size from the server's metadata (a short-lived server)."""
    s = ServerProcess(vlart, model, "--threads", "1")
    try:
        c = websocket_client_policy.WebsocketClientPolicy(host="127.0.0.1", port=s.port)
        meta = c.get_server_metadata()
        c._ws.close()
    finally:
        s.stop()
    return meta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vlart", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    # Frame size sent (and written to the PNGs `vlart bench` reads); default: each camera's model input size.
    ap.add_argument("--height", type=int, default=0)
    ap.add_argument("--width", type=int, default=0)
    ap.add_argument("--task", default="pick up the red cube")
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    meta = model_info(args.vlart, args.model)
    rng = np.random.default_rng(0)
    images = {}
    for cam, (h, w) in zip(meta["cameras"], meta["image_size"]):
        images[cam] = rng.integers(0, 256, (args.height or h, args.width or w, 3), dtype=np.uint8)
    state = rng.normal(size=meta["state_dim"]).astype(np.float32)
    thr = ["--threads", str(args.threads)]
    with tempfile.TemporaryDirectory() as tmp:
        img_args = []
        for cam, img in images.items():
            p = os.path.join(tmp, cam + ".png")
            write_png(p, img)
            img_args += ["--image", f"{cam}={p}"]
        bench_cmd = [args.vlart, "bench", args.model, *img_args, "--state", fmt_state(state), "--task", args.task,
                     "--iters", str(args.iters), "--warmup", "2", "--json", "--seed", "0", *thr]
        server = ServerProcess(args.vlart, args.model, *thr)
        rounds = []
        try:
            client = websocket_client_policy.WebsocketClientPolicy(host="127.0.0.1", port=server.port)
            obs = observation(images, state, args.task, openpi_keys=True, seed=0)
            for _ in range(2):
                client.infer(obs)  # warm-up, as vlart bench --warmup 2
            for r in range(args.rounds):
                out = subprocess.run(bench_cmd, check=True, capture_output=True, text=True).stdout
                inproc = json.loads(out)["stages_ms"]["total"]["p50"]
                rtt, pol = [], []
                for _ in range(args.iters):
                    t0 = time.perf_counter()
                    resp = client.infer(obs)
                    rtt.append((time.perf_counter() - t0) * 1e3)
                    pol.append(resp["policy_timing"]["total"])
                over = [a - b for a, b in zip(rtt, pol)]
                rounds.append(dict(inproc_p50=inproc, rtt_p50=statistics.median(rtt), policy_p50=statistics.median(pol),
                                   paired_overhead_p50=statistics.median(over)))
                print(f"round {r + 1}: in-process p50 {inproc:.3f} ms | served round trip p50 "
                      f"{rounds[-1]['rtt_p50']:.3f} ms (server's policy total p50 {rounds[-1]['policy_p50']:.3f}) | "
                      f"paired overhead p50 {rounds[-1]['paired_overhead_p50']:.3f} ms", flush=True)
            client._ws.close()
        finally:
            server.stop()
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    res = dict(model=args.model, cameras=len(meta["cameras"]), frames=[list(i.shape) for i in images.values()], iters=args.iters,
               rounds=args.rounds, threads=args.threads, rounds_detail=rounds, median=med,
               rtt_minus_inproc_ms=med["rtt_p50"] - med["inproc_p50"],
               rtt_over_inproc=med["rtt_p50"] / med["inproc_p50"])
    print(f"median of {args.rounds} rounds: in-process p50 {med['inproc_p50']:.3f} ms, served round trip p50 "
          f"{med['rtt_p50']:.3f} ms: +{res['rtt_minus_inproc_ms']:.3f} ms ({100 * (res['rtt_over_inproc'] - 1):+.2f}%); "
          f"paired overhead (round trip - server's policy total) p50 {med['paired_overhead_p50']:.3f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
