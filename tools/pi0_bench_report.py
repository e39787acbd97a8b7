#!/usr/bin/env python3
"""Report of one scripts/bench_pi0.sh run: vlart (f32, bf16) against LeRobot (f32) on the same pi0 checkpoint,
inputs and machine, with the lower bound computed from the peaks measured in the same run.

Usage: python3 tools/pi0_bench_report.py OUT_DIR

Reads, from OUT_DIR:
  peaks.json, peaks_end.json    Google Benchmark JSON of bench_linear before/after (raw oneDNN matmul, DRAM)
  lerobot_cams{N}.json          tools/bench_lerobot_pi0.py
  vlart_{f32,bf16}_cams{N}.json `vlart bench --json`
Writes OUT_DIR/report.md and OUT_DIR/report.json and prints the markdown. Standard library only.

Work counted (for the N cameras given; the tensor shapes come from the checkpoint's safetensors header):
  vision  per camera: SigLIP over L = (image_resolution / patch)^2 tokens (256 at 224 px): patch embedding,
          every encoder matmul, the multi-modal projector, attention products 4 L^2 C per layer;
  prefix  P = N * L + tokenizer_max_length tokens (LeRobot pads the prompt to max_length) through the Gemma LM:
          every layer's matmuls except the last layer, of which only k_proj / v_proj are needed (the prefix
          output is only its K/V cache), attention 4 P^2 (heads * head_dim) for all layers but the last;
  expert  per flow step: S = chunk + 1 suffix tokens for pi0 (state + actions; chunk for pi0.5) through every
          expert layer, attending to P + S keys (4 S (P+S) heads*head_dim per layer), plus the action/state/time
          projections (action_in/out and action_time_mlp over the chunk, state_proj over one token).
The token embedding and the unused lm_head weights are not counted. The lower bound of a path is, per stage,
max(FLOPs / measured matmul peak at its compute dtype, weight bytes / measured DRAM bandwidth), summed over the
stages (vision, prefix once; the expert step `steps` times); weight bytes at the dtype the path computes with
(4 B for f32 paths: LeRobot upcasts the bf16 file; 2 B for vlart bf16, which converts every weight).
LeRobot itself runs SigLIP on every config camera (absent ones as masked all -1 images) and a prefix over all
of their tokens: its bound column uses the same (minimal) work as vlart's, its work is larger.
"""
import json
import math
import re
import struct
import sys
from pathlib import Path


def st_header(path: Path) -> dict:
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    return h


def workload(ckpt: Path, cams: int, steps: int) -> dict:
    cfg = json.loads((ckpt / "config.json").read_text())
    pi05 = cfg["type"] == "pi05"
    tensors = {}
    for f in sorted(ckpt.glob("model*.safetensors")):
        tensors.update(st_header(f))
    shapes = {(k[len("model."):] if k.startswith("model.") else k): v["shape"] for k, v in tensors.items()}
    V = "paligemma_with_expert.paligemma.model.vision_tower.vision_model."
    LM = "paligemma_with_expert.paligemma.model.language_model.layers."
    EX = "paligemma_with_expert.gemma_expert.model.layers."
    patch = shapes[V + "embeddings.patch_embedding.weight"][-1]
    C = shapes[V + "embeddings.patch_embedding.weight"][0]
    res = cfg["image_resolution"][0]
    L = (res // patch) ** 2
    lang = cfg["tokenizer_max_length"]
    P = cams * L + lang
    chunk = cfg["chunk_size"]
    S = chunk + (0 if pi05 else 1)

    def layer_of(n, pre):
        return int(n[len(pre):].split(".")[0])

    n_vis = 1 + max(layer_of(n, V + "encoder.layers.") for n in shapes if n.startswith(V + "encoder.layers."))
    n_lm = 1 + max(layer_of(n, LM) for n in shapes if n.startswith(LM))
    n_ex = 1 + max(layer_of(n, EX) for n in shapes if n.startswith(EX))
    fl = {"vision": 0.0, "prefix": 0.0, "expert_step": 0.0}
    el = {"vision": 0, "prefix": 0, "expert_step": 0}  # weight elements each stage reads

    def add(stage, tokens, shape):
        e = math.prod(shape)
        fl[stage] += 2.0 * tokens * e
        el[stage] += e

    for n, shp in shapes.items():
        if n.startswith(V) and (len(shp) == 2 or n.endswith("patch_embedding.weight")):
            if "position_embedding" not in n:
                add("vision", cams * L, shp)
        elif n.startswith("paligemma_with_expert.paligemma.model.multi_modal_projector.") and len(shp) == 2:
            add("vision", cams * L, shp)
        elif n.startswith(LM) and len(shp) == 2:
            if layer_of(n, LM) < n_lm - 1 or ".k_proj." in n or ".v_proj." in n:
                add("prefix", P, shp)
        elif n.startswith(EX) and len(shp) == 2:
            # pi0.5 adaRMS modulation (".dense.") acts on the one time-conditioning vector.
            add("expert_step", 1 if ".dense." in n else S, shp)
        elif n.startswith("paligemma_with_expert.gemma_expert.model.norm.dense.") and len(shp) == 2:
            add("expert_step", 1, shp)
        elif re.match(r"(action_in_proj|action_out_proj|action_time_mlp_in|action_time_mlp_out)\.weight$", n):
            add("expert_step", chunk, shp)
        elif re.match(r"(state_proj|time_mlp_in|time_mlp_out)\.weight$", n):
            add("expert_step", 1, shp)
    qw = shapes[LM + "0.self_attn.q_proj.weight"][0]
    qw_e = shapes[EX + "0.self_attn.q_proj.weight"][0]
    fl["vision"] += cams * n_vis * 4.0 * L * L * C
    fl["prefix"] += (n_lm - 1) * 4.0 * P * P * qw
    fl["expert_step"] += n_ex * 4.0 * S * (P + S) * qw_e
    return {"flops": fl, "weight_elems": el, "prefix_tokens": P, "lang_tokens": lang, "tokens_per_image": L,
            "suffix_tokens": S, "steps": steps, "chunk": chunk, "family": cfg["type"],
            "layers": {"vision": n_vis, "lm": n_lm, "expert": n_ex}}


def peaks(paths) -> dict:
    """Best matmul throughput and DRAM bandwidth over every measurement (all repetitions, all files)."""
    out = {"f32_gflops": 0.0, "bf16_gflops": 0.0, "dram_gbs": 0.0}
    benches = []
    for path in paths:
        if path.exists():
            benches += json.loads(path.read_text())["benchmarks"]
    for b in benches:
        if b.get("run_type") == "aggregate" or b.get("error_occurred"):
            continue  # skipped rows (e.g. no bf16 matmul in oneDNN on this CPU) carry no counters
        n = b["name"]
        if n.startswith("BM_OneDnnMatmul") and "/thr:2/" in n and "/M:1/" not in n:
            key = "bf16_gflops" if "/bf16:1/" in n else "f32_gflops"
            out[key] = max(out[key], b["GFLOP/s"] / 1e9 if b["GFLOP/s"] > 1e6 else b["GFLOP/s"])
        if n.startswith("BM_DramRead/thr:2"):
            v = b["GB/s"]
            out["dram_gbs"] = max(out["dram_gbs"], v / 1e9 if v > 1e6 else v)
    return out


def bound_ms(w: dict, pk: dict, dtype: str):
    gf = pk["bf16_gflops"] if dtype == "bf16" else pk["f32_gflops"]
    if dtype == "bf16" and gf == 0.0:
        gf = pk["f32_gflops"]  # no bf16 matmul on this CPU: vlart's bf16 runs f32 matmuls
    bw = pk["dram_gbs"]
    if gf <= 0.0 or bw <= 0.0:
        return None  # no peaks measured
    nbytes = 2 if dtype == "bf16" else 4
    t = 0.0
    for stage, reps in (("vision", 1), ("prefix", 1), ("expert_step", w["steps"])):
        t += reps * max(w["flops"][stage] / (gf * 1e9), w["weight_elems"][stage] * nbytes / (bw * 1e9))
    return 1e3 * t


def err(a, b) -> dict:
    fa = [x for row in a for x in row]
    fb = [x for row in b for x in row]
    if len(fa) != len(fb):
        raise SystemExit(f"action shapes differ: {len(fa)} vs {len(fb)} values")
    d = [x - y for x, y in zip(fa, fb)]
    return {"max_abs": max(abs(x) for x in d),
            "rel_l2": math.sqrt(sum(x * x for x in d) / max(1e-30, sum(y * y for y in fb)))}


def ms(x) -> str:
    """Milliseconds (or GFLOP) at a precision that suits the size: 4521, 23.4, 3.4, 0.21."""
    if x is None:
        return ""
    a = abs(x)
    return f"{x:.0f}" if a >= 100 else f"{x:.1f}" if a >= 1 else f"{x:.2g}"


def cell(st: dict, name: str) -> str:
    s = st.get(name)
    return f"{ms(s['p50'])} / {ms(s['p99'])}" if s else ""


def main() -> int:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    pk = peaks([out / "peaks.json", out / "peaks_end.json"])
    files = sorted(out.glob("lerobot_cams*.json"), key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))
    if not files:
        sys.exit(f"{out}: no lerobot_cams*.json")
    first = json.loads(files[0].read_text())
    lines = [f"CPU: {first.get('cpu', '?')}; ISA class **{first.get('isa_class', '?')}** "
             f"(flags: {' '.join(first.get('isa_flags', [])) or 'none of avx2/avx512/amx'})",
             f"LeRobot {first['versions'].get('lerobot', '?')}, torch {first['versions'].get('torch', '?')}, "
             f"transformers {first['versions'].get('transformers', '?')}, Python {first['versions'].get('python', '?')}; "
             f"checkpoint {first['checkpoint']} (stored {first.get('checkpoint_dtype', '?')}, LeRobot computes f32); "
             f"{first['steps']} flow steps, {first['threads']} threads, {first['iters']} timed calls after "
             f"{first['warmup']} warm-up",
             f"Measured peaks (same run, best of before/after, 2 threads): oneDNN matmul f32 {pk['f32_gflops']:.0f} "
             f"GFLOP/s, bf16 {pk['bf16_gflops']:.0f} GFLOP/s"
             + (" (none: no oneDNN bf16 matmul on this CPU; vlart bf16 runs f32 matmuls, its bound uses the f32 peak)"
                if pk["bf16_gflops"] == 0.0 else "")
             + f"; DRAM read {pk['dram_gbs']:.1f} GB/s", ""]
    rows = []
    header = ("| path | preprocess | vision | prefix | denoise | total p50 | total p99 | peak RSS MiB | "
              "speed-up vs LeRobot | bound ms | p50 / bound | action err vs LeRobot (max abs / rel L2) |")
    for lf in files:
        lr = json.loads(lf.read_text())
        cams = lr["cams"]
        ckpt = Path(lr["checkpoint"])
        w = workload(ckpt, cams, lr["steps"])
        g = {s: w["flops"][s] * (w["steps"] if s == "expert_step" else 1) / 1e9 for s in w["flops"]}
        lines.append(f"### {cams} camera(s): {', '.join(lr.get('cameras_present', []))}")
        lines.append("")
        lines.append(f"Counted work: prefix {w['prefix_tokens']} tokens ({cams} x {w['tokens_per_image']} image + "
                     f"{w['lang_tokens']} prompt), {w['suffix_tokens']} suffix tokens x {w['steps']} steps; "
                     f"{ms(sum(g.values()))} GFLOP per inference (vision {ms(g['vision'])}, prefix {ms(g['prefix'])}, "
                     f"expert {ms(g['expert_step'])}). LeRobot ran {lr.get('images_embedded')} image(s) through "
                     f"SigLIP and a {lr.get('prefix_tokens')}-token prefix ({lr.get('valid_prefix_tokens')} valid)"
                     + (f"; masked cameras: {', '.join(lr['cameras_masked'])}" if lr.get("cameras_masked") else "")
                     + ". Cells: p50 / p99 ms.")
        lines.append("")
        lines.append(header)
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        ls = lr.get("stages_ms", {})
        lb = bound_ms(w, pk, "f32")
        lines.append(f"| LeRobot f32 (torch {lr['versions'].get('torch', '?')}) | {cell(ls, 'preprocess')} | "
                     f"{cell(ls, 'vision')} | {cell(ls, 'prefix')} | {cell(ls, 'denoise')} | {ms(lr['p50_ms'])} | "
                     f"{ms(lr['p99_ms'])} | {lr['peak_rss_mb']:.0f} | 1.00 | {ms(lb)} | "
                     f"{'' if lb is None else format(lr['p50_ms'] / lb, '.2f')} | |")
        rows.append({"cams": cams, "path": "lerobot_f32", "stages_ms": ls, "p50_ms": lr["p50_ms"],
                     "p99_ms": lr["p99_ms"], "peak_rss_mib": lr["peak_rss_mb"],
                     "rss_after_load_mib": lr.get("rss_after_load_mb"), "bound_ms": lb, "workload": w})
        for dt in ("f32", "bf16"):
            vf = out / f"vlart_{dt}_cams{cams}.json"
            if not vf.exists():
                continue
            v = json.loads(vf.read_text())
            s = v["stages_ms"]
            b = bound_ms(w, pk, dt)
            e = err(v["actions"], lr["actions"])
            sp = lr["p50_ms"] / s["total"]["p50"]
            lines.append(f"| vlart {dt} | {cell(s, 'preprocess')} | {cell(s, 'vision')} | {cell(s, 'prefix')} | "
                         f"{cell(s, 'denoise')} | {ms(s['total']['p50'])} | {ms(s['total']['p99'])} | "
                         f"{v['rss_peak_mib']:.0f} | {sp:.2f} | {ms(b)} | "
                         f"{'' if b is None else format(s['total']['p50'] / b, '.2f')} | "
                         f"{e['max_abs']:.2g} / {e['rel_l2']:.2g} |")
            rows.append({"cams": cams, "path": f"vlart_{dt}", "stages_ms": s, "speedup_vs_lerobot": sp,
                         "bound_ms": b, "p50_over_bound": None if b is None else s["total"]["p50"] / b,
                         "action_err_vs_lerobot": e, "peak_rss_mib": v["rss_peak_mib"],
                         "rss_after_load_mib": v.get("rss_after_load_mib")})
        lines.append("")
    text = "\n".join(lines)
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps({"peaks": pk, "cpu": first.get("cpu"),
                                                 "isa_class": first.get("isa_class"),
                                                 "isa_flags": first.get("isa_flags"), "rows": rows}, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
