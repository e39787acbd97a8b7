#!/usr/bin/env python3
"""Report of one scripts/bench_smolvla.sh run: vlart (f32, bf16) against LeRobot (f32) on the same
checkpoint, inputs and machine, with the lower bound computed from the peaks measured in the same run.

Reads, from OUT_DIR:
  peaks.json, peaks_end.json    Google Benchmark JSON of bench_linear before/after (raw oneDNN matmul, DRAM)
  lerobot_cams{N}.json          tools/bench_lerobot_smolvla.py
  vlart_{f32,bf16}_cams{N}.json `vlart bench --json`
Writes OUT_DIR/report.md and OUT_DIR/report.json and prints the markdown.

FLOPs are counted from the checkpoint's tensor shapes (safetensors header) and config: every matmul
(2*M*N*K for the tokens each weight sees) plus the attention products (QK^T and PV). The lower bound
of a path is, per stage, max(FLOPs / measured matmul peak, weight bytes / measured DRAM bandwidth),
summed over stages (vision, prefix once; the expert's step 'steps' times). Standard library only.
"""
import json
import math
import struct
import sys
from pathlib import Path


def st_header(path: Path) -> dict:
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    return h


def count_tokens(vlm_dir: Path, task: str) -> int:
    """Prompt tokens as LeRobot builds them (task + newline); falls back to the max length."""
    try:
        from tokenizers import Tokenizer  # optional

        return len(Tokenizer.from_file(str(vlm_dir / "tokenizer.json")).encode(task + "\n").ids)
    except Exception:
        return -1


def workload(ckpt: Path, cams: int, steps: int, task: str) -> dict:
    cfg = json.loads((ckpt / "config.json").read_text())
    root = Path.cwd()
    vlm_dir = Path(cfg["vlm_model_name"])
    if not vlm_dir.is_absolute():
        vlm_dir = root / vlm_dir
    vcfg = json.loads((vlm_dir / "config.json").read_text())
    vis, txt = vcfg["vision_config"], vcfg["text_config"]
    S, patch, C = vis["image_size"], vis["patch_size"], vis["hidden_size"]
    L = (S // patch) ** 2
    r = vcfg.get("scale_factor", 1)
    T = L // (r * r)
    maxlen = cfg["tokenizer_max_length"]
    nt = count_tokens(vlm_dir, task)
    lang = maxlen if cfg.get("pad_language_to", "longest") == "max_length" or nt < 0 else min(nt, maxlen)
    P = cams * T + lang + 1
    chunk = cfg["chunk_size"]
    nvlm = cfg["num_vlm_layers"]
    every = cfg.get("self_attn_every_n_layers", 2)
    hd = txt.get("head_dim", txt["hidden_size"] // txt["num_attention_heads"])
    files = sorted(ckpt.glob("model*.safetensors"))
    tensors = {}
    for f in files:
        tensors.update(st_header(f))
    fl = {"vision": 0.0, "prefix": 0.0, "expert_step": 0.0}
    wb = {"vision": 0.0, "prefix": 0.0, "expert_step": 0.0}

    def elems(info):
        return math.prod(info["shape"])

    for name, info in tensors.items():
        shp = info["shape"]
        n = name[len("model."):] if name.startswith("model.") else name
        if ".vision_model.encoder.layers." in n and len(shp) == 2:
            fl["vision"] += 2.0 * cams * L * elems(info); wb["vision"] += 2 * elems(info)
        elif n.endswith("vision_model.embeddings.patch_embedding.weight"):
            fl["vision"] += 2.0 * cams * L * elems(info); wb["vision"] += 2 * elems(info)
        elif ".connector." in n and len(shp) == 2:
            fl["vision"] += 2.0 * cams * T * elems(info); wb["vision"] += 2 * elems(info)
        elif ".text_model.layers." in n and len(shp) == 2:
            layer = int(n.split(".text_model.layers.")[1].split(".")[0])
            if layer < nvlm:
                fl["prefix"] += 2.0 * P * elems(info); wb["prefix"] += 2 * elems(info)
        elif ".lm_expert.layers." in n and len(shp) == 2:
            e = int(n.split(".lm_expert.layers.")[1].split(".")[0])
            # Expert layer e pairs with VLM layer e * (nvlm // n_expert); cross-attention layers
            # project the prefix K/V (once per inference), everything else runs on the chunk.
            n_exp = 1 + max(int(k.split(".lm_expert.layers.")[1].split(".")[0])
                            for k in tensors if ".lm_expert.layers." in k)
            vlm_layer = e * (nvlm // n_exp)
            cross = not (every > 0 and vlm_layer % every == 0)
            if cross and (".k_proj." in n or ".v_proj." in n):
                fl["prefix"] += 2.0 * P * elems(info); wb["prefix"] += 2 * elems(info)
            else:
                fl["expert_step"] += 2.0 * chunk * elems(info); wb["expert_step"] += 2 * elems(info)
    # Attention products.
    vh = C
    fl["vision"] += cams * vis["num_hidden_layers"] * 4.0 * L * L * vh
    qw = txt["num_attention_heads"] * hd
    fl["prefix"] += (nvlm - 1) * 4.0 * P * P * qw
    n_exp = 1 + max(int(k.split(".lm_expert.layers.")[1].split(".")[0]) for k in tensors if ".lm_expert.layers." in k)
    for e in range(n_exp):
        vlm_layer = e * (nvlm // n_exp)
        sa = every > 0 and vlm_layer % every == 0
        fl["expert_step"] += 4.0 * chunk * (P + chunk if sa else P) * qw
    return {"flops": fl, "weight_bytes_bf16": wb, "prefix_tokens": P, "lang_tokens": lang,
            "tokens_per_image": T, "steps": steps, "chunk": chunk}


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


def bound_ms(w: dict, pk: dict, dtype: str) -> float:
    gf = pk["bf16_gflops"] if dtype == "bf16" else pk["f32_gflops"]
    if dtype == "bf16" and gf == 0.0:
        gf = pk["f32_gflops"]  # no bf16 matmul on this CPU: vlart's bf16 runs f32 matmuls
    scale = 1.0 if dtype == "bf16" else 2.0  # weight bytes per element relative to bf16
    bw = pk["dram_gbs"]
    t = 0.0
    for stage, reps in (("vision", 1), ("prefix", 1), ("expert_step", w["steps"])):
        t += reps * max(w["flops"][stage] / (gf * 1e9), w["weight_bytes_bf16"][stage] * scale / (bw * 1e9))
    return 1e3 * t


def err(a, b) -> dict:
    fa = [x for row in a for x in row]
    fb = [x for row in b for x in row]
    d = [x - y for x, y in zip(fa, fb)]
    return {"max_abs": max(abs(x) for x in d), "rel_l2": math.sqrt(sum(x * x for x in d) / max(1e-30, sum(y * y for y in fb)))}


def main() -> int:
    out = Path(sys.argv[1])
    pk = peaks([out / "peaks.json", out / "peaks_end.json"])
    rows, lines = [], []
    lines.append(f"Measured peaks (same run, best of before/after, 2 threads): oneDNN matmul f32 {pk['f32_gflops']:.0f} GFLOP/s, "
                 f"bf16 {pk['bf16_gflops']:.0f} GFLOP/s; DRAM read {pk['dram_gbs']:.1f} GB/s\n")
    lines.append("| cams | path | preprocess | vision | prefix | denoise | total p50 | total p99 | peak RSS MiB | "
                 "speed-up vs LeRobot | bound ms | p50 / bound | action err vs LeRobot (max abs / rel L2) |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for cams in (1, 3):
        lf = out / f"lerobot_cams{cams}.json"
        if not lf.exists():
            continue
        lr = json.loads(lf.read_text())
        ckpt = Path(lr["checkpoint"])
        task = (out / f"inputs_cams{cams}" / "task.txt").read_text()
        w = workload(ckpt, cams, lr["steps"], task)
        gflop = sum(w["flops"][s] * (w["steps"] if s == "expert_step" else 1) for s in w["flops"]) / 1e9
        lines_note = (f"cams={cams}: prefix tokens {w['prefix_tokens']}, {gflop:.0f} GFLOP per inference "
                      f"(vision {w['flops']['vision']/1e9:.0f}, prefix {w['flops']['prefix']/1e9:.0f}, "
                      f"expert {w['flops']['expert_step']*w['steps']/1e9:.0f})")
        lines.insert(1, lines_note + "\n")
        lp, ld = lr.get("prefix_p50_ms"), lr.get("denoise_p50_ms")
        lines.append(f"| {cams} | LeRobot f32 (torch {lr['versions'].get('torch', '?')}) | | "
                     f"{'' if lp is None else f'{lp:.0f} (vision+prefix)'} | | {'' if ld is None else f'{ld:.0f}'} | "
                     f"{lr['p50_ms']:.0f} | "
                     f"{lr['p99_ms']:.0f} | {lr['peak_rss_mb']:.0f} | 1.00 | | | |")
        rows.append({"cams": cams, "path": "lerobot_f32", "p50_ms": lr["p50_ms"], "p99_ms": lr["p99_ms"],
                     "peak_rss_mib": lr["peak_rss_mb"]})
        for dt in ("f32", "bf16"):
            vf = out / f"vlart_{dt}_cams{cams}.json"
            if not vf.exists():
                continue
            v = json.loads(vf.read_text())
            s = v["stages_ms"]
            b = bound_ms(w, pk, dt)
            e = err(v["actions"], lr["actions"])
            sp = lr["p50_ms"] / s["total"]["p50"]
            lines.append(f"| {cams} | vlart {dt} | {s['preprocess']['p50']:.1f} | {s['vision']['p50']:.0f} | "
                         f"{s['prefix']['p50']:.0f} | {s['denoise']['p50']:.0f} | {s['total']['p50']:.0f} | "
                         f"{s['total']['p99']:.0f} | {v['rss_peak_mib']:.0f} | {sp:.2f} | {b:.0f} | "
                         f"{s['total']['p50'] / b:.2f} | {e['max_abs']:.2g} / {e['rel_l2']:.2g} |")
            rows.append({"cams": cams, "path": f"vlart_{dt}", "stages_ms": s, "speedup_vs_lerobot": sp,
                         "bound_ms": b, "p50_over_bound": s["total"]["p50"] / b, "action_err_vs_lerobot": e,
                         "peak_rss_mib": v["rss_peak_mib"], "workload": w})
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps({"peaks": pk, "rows": rows}, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
