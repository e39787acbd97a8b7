#!/usr/bin/env python3
"""Tables of scripts/bench_reason.sh (opentau pi05 with predict_response: reason, then act).

usage: reason_bench_report.py OUT_DIR [--checkpoint DIR]

OUT_DIR holds what bench_reason.sh wrote:
  peaks.json, peaks_end.json   bench_linear BM_DramRead/thr:2 (Google Benchmark JSON), before / after
  opentau.json                 tools/bench_opentau.py (opentau 0.14.0 f32, torch CPU)
  vlart_{f32,bf16,int8,int4,f32_dq8}.json  `vlart bench --json` (dq8: --decode-weights int8)
  drift_{f32,dq8}_{every,reuse}.json       `vlart bench --drift --json` (a moving observation per call)
Decode per token is the decode stage over its steps (the fed <bos> + the generated tokens; 52 without an
early <eos>), against the DRAM bound: the bytes one step streams (the language model's layer weights and
the tied head, in the dtype the decode reads them) / the best measured DRAM read bandwidth. Reuse rows:
per-call action error (rel L2) against f32 re-decoding every call on the same drifting observations, and
the amortised (mean) and p50 per-call latency.
"""
import argparse
import json
import os
import statistics
import struct


def load(path):
    with open(path) as f:
        return json.load(f)


def dram_gbps(out):
    best = 0.0
    for name in ("peaks.json", "peaks_end.json"):
        p = os.path.join(out, name)
        if not os.path.exists(p):
            continue
        for b in load(p).get("benchmarks", []):
            if b.get("name", "").startswith("BM_DramRead/thr:2") and b.get("run_type") != "aggregate":
                best = max(best, float(b.get("GB/s", b.get("bytes_per_second", 0.0) / 1e9)))
    return best


def safetensors_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


DT_BYTES = {"F32": 4, "BF16": 2, "F16": 2, "I8": 1, "U8": 1}


def decode_bytes(ckpt, layer_bytes, head_bytes):
    """Bytes of the weights one decode step reads: the language-model layers (+ final norm) at `layer_bytes`
    per parameter (None: as stored, e.g. int8 values + their scales) and the tied head at `head_bytes`."""
    h = safetensors_header(os.path.join(ckpt, "model.safetensors"))
    tot = 0
    for name, info in h.items():
        if name == "__metadata__":
            continue
        head = name.endswith("paligemma.lm_head.weight")
        if ".language_model." in name or head:
            n = 1
            for d in info["shape"]:
                n *= d
            per = head_bytes if head else layer_bytes
            tot += n * (per or DT_BYTES.get(info["dtype"], 4))
    return tot


def stage(j, s):
    return j["stages_ms"].get(s, {}).get("p50", 0.0)


def rel_l2(a, b):
    num = sum((x - y) ** 2 for x, y in zip(a, b))
    den = sum(y * y for y in b)
    return (num / max(den, 1e-30)) ** 0.5


def flat(rows):
    return [v for r in rows for v in r] if rows and isinstance(rows[0], list) else rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--checkpoint", default="models/pi05_reason_full/checkpoint")
    a = ap.parse_args()
    out = a.out
    bw = dram_gbps(out)
    ot = load(os.path.join(out, "opentau.json"))
    om = ot["median"]
    print(f"# Reason, then act: opentau pi05 with predict_response ({ot.get('torch_cpu_capability', '?')} CPU, "
          f"{ot['threads']} threads)\n")
    print(f"DRAM read bandwidth (bench_linear, 2 threads, best of before/after): {bw:.1f} GB/s\n")
    print("| runtime | prefill (vision + prefix) ms | decode ms/token | % of DRAM bound | action ms | total ms (p50) | "
          "speed-up vs opentau f32 |")
    print("|---|---|---|---|---|---|---|")
    ot_total = om["total_ms"]
    ot_bytes = decode_bytes(a.checkpoint, 4, 4)
    ot_bound = ot_bytes / (bw * 1e9) * 1e3 if bw else 0
    print(f"| opentau 0.14.0 f32 (torch {ot['versions']['torch']}) | {om['vision_ms'] + om['prefill_ms']:.0f} "
          f"({om['vision_ms']:.0f} + {om['prefill_ms']:.0f}) | {om['decode_ms_per_token']:.1f} | "
          f"{100 * ot_bound / om['decode_ms_per_token']:.0f}% | {om['action_ms']:.0f} | {ot_total:.0f} | 1.00x |")
    # (label, file, bytes per layer weight (None = as stored), bytes per head weight): f32 compute widens the
    # float head (kept float by vlart quantize) to f32.
    rows = [("f32", "vlart_f32.json", 4, 4), ("bf16 compute", "vlart_bf16.json", 2, 2),
            ("int8 checkpoint", "vlart_int8.json", None, 4), ("int4-g64 checkpoint", "vlart_int4.json", None, 4),
            ("f32 + int8 decode weights", "vlart_f32_dq8.json", 1, 1)]
    for label, f, wb, hb in rows:
        p = os.path.join(out, f)
        if not os.path.exists(p) or os.path.getsize(p) == 0:
            continue
        j = load(p)
        steps = len(j.get("tokens", [])) + 1
        dec = stage(j, "decode")
        per = dec / max(steps, 1)
        ck = j["model_dir"]
        nbytes = decode_bytes(ck, wb, hb)
        bound = nbytes / (bw * 1e9) * 1e3 if bw else 0
        tot = j["stages_ms"]["total"]["p50"]
        print(f"| vlart {label} | {stage(j, 'vision') + stage(j, 'prefix'):.0f} ({stage(j, 'vision'):.0f} + "
              f"{stage(j, 'prefix'):.0f}) | {per:.1f} ({steps} steps) | {100 * bound / per:.0f}% "
              f"({nbytes / 1e9:.2f} GB/step) | {stage(j, 'denoise'):.0f} | {tot:.0f} | {ot_total / tot:.2f}x |")
    ref_p = os.path.join(out, "drift_f32_every.json")
    if os.path.exists(ref_p):
        ref = load(ref_p)
        print("\n## Reasoning reuse on a moving observation (`vlart bench --drift`)\n")
        print("| setting | calls | decodes | action rel L2 vs f32 every call: mean / max | amortised (mean) ms | p50 ms | "
              "speed-up vs opentau f32 per call (amortised) |")
        print("|---|---|---|---|---|---|---|")
        for label, f in [("f32, decode every call (reference)", "drift_f32_every.json"),
                         ("f32, re-decode every N", "drift_f32_reuse.json"),
                         ("f32 + int8 decode weights, decode every call", "drift_dq8_every.json"),
                         ("f32 + int8 decode weights, re-decode every N", "drift_dq8_reuse.json"),
                         ("int8 expert + int8 decode weights, re-decode every N", "drift_dq8x_reuse.json")]:
            p = os.path.join(out, f)
            if not os.path.exists(p) or os.path.getsize(p) == 0:
                continue
            j = load(p)
            errs = [rel_l2(x, y) for x, y in zip(j["drift_actions"], ref["drift_actions"])]
            dec = j.get("samples_decode_ms", [])
            full = max(dec) if dec else 0
            n_dec = sum(1 for d in dec if d > 0.2 * full) if dec else 0
            tot = j["samples_total_ms"]
            mean = statistics.mean(tot)
            print(f"| {label} | {len(tot)} | {n_dec} | {statistics.mean(errs):.4f} / {max(errs):.4f} | {mean:.0f} | "
                  f"{statistics.median(tot):.0f} | {ot_total / mean:.2f}x |")


if __name__ == "__main__":
    main()
