#!/usr/bin/env python3
"""Write a FULL-SIZE opentau 0.14.0 pi0.5 "reason-then-act" (predict_response=True) checkpoint with random weights.

Usage (from anywhere; paths resolve against the repository root; the Python 3.10 venv of
tools/requirements-reason-fixtures.txt):
    .venv310/bin/python tools/make_reason_full.py                    # -> models/pi05_reason_full/
    .venv310/bin/python tools/make_reason_full.py --out DIR --seed N

Output (models/ is git-ignored; nothing here is committed):
    DIR/checkpoint/   PI05Policy.save_pretrained output (config.json, model.safetensors: opentau's natural mixed
                      dtypes, bf16 for most weights, ~6-7 GB) + tokenizer.json (copy of
                      tests/data/tokenizer/gemma_style.json, what the model was built with)
    DIR/inputs/       camera0.png (224x224 uint8 RGB), state.npy (float32 [32], raw, un-normalized),
                      task.txt, noise.npy (float32 [chunk=50, max_action_dim=32]), inputs.json (what is what)
    DIR/reference/    actions.npy (float32 [50, 32]) and response_tokens.json from one float32 opentau run
                      (from_pretrained -> .to(float32) -> .eval() -> sample_actions(batch, noise=noise))
    DIR/make_info.json  sizes, dtypes, timings, decoded ids, top-1/top-2 logit margins, versions

Architecture: opentau's defaults, untouched (PaliGemmaWithExpertConfig's hard-coded PaliGemma gemma_2b
language model 2048 wide / 18 layers / mlp 16384 / 8 heads / 1 kv head / head_dim 256 / vocab 257152, SigLIP
So400m/14 at 224 px (27 layers, 1152 wide), Gemma 300m expert 1024 wide / 18 layers / mlp 4096; proj_width
1024). Policy: 1 camera (camera0, 224x224), max_state_dim = max_action_dim = 32 (state 32, action feature 32),
chunk 50, 10 steps, prompt_max_length 256, response_max_length 52, MEAN_STD state/action stats, discrete state.

Patches (from tools/make_reason_fixtures.py, imported, nothing else): the `AutoTokenizer` / `AutoProcessor`
names inside opentau.policies.pi05.modeling_pi05 are shimmed (hub unreachable; the local Gemma-style tokenizer,
<pad>=0 <eos>=1 <bos>=2, and a FAST-processor stub only read for its vocab_size), and `_preferred_dtype` ->
float32 while running (what it returns under ONNX export). NO tiny-architecture patch.

Weights: opentau's own init, then make_reason_fixtures.randomize_ (seeded re-draw; VLM o_proj / down_proj 3x and
final-norm gain ~N(0, 4^2) so greedy decoding with the tied embedding does not just repeat the fed token). Then
the tied embedding rows of <pad> (0) and <eos> (1) are scaled by EOS_PAD_ROW_SCALE: their logits become ~0 while
the best of the other 257150 logits is ~+15..20, so greedy decoding never produces them and the full
52-step decode is exercised (checked after the reload; the script fails if either appears). <pad> rows only
ever enter the prompt as masked padding, so nothing else changes.

Memory (23 GiB box): the policy is built once (transient float32 construction ~14 GB, then opentau casts it to
bf16), saved, deleted, then reloaded once with PI05Policy.from_pretrained and cast to float32 (~12 GB).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import make_reason_fixtures as mrf  # noqa: E402  (shims, stats, frames, randomize_, batch builder)

DEFAULT_OUT = REPO / "models" / "pi05_reason_full"
MIN_FREE_GB = 15.0
EOS_PAD_ROW_SCALE = 0.02
TASK = "pick up the red cube and place it in the box"


def full_spec(seed: int) -> "mrf.CaseSpec":
    return mrf.CaseSpec(
        name="pi05_reason_full",
        description="full-size opentau pi05 predict_response, random weights",
        cameras=["camera0"],
        frames={"camera0": (224, 224)},
        task=TASK,
        state_dim=32,
        action_dim=32,
        action_feature_dim=32,
        max_state_dim=32,
        max_action_dim=32,
        image_resolution=224,
        chunk_size=50,
        num_steps=10,
        prompt_max_length=256,
        response_max_length=52,
        norm_mode="MEAN_STD",
        # only proj_width (= expert.width) is read by build_config; the rest are opentau's defaults, not patched
        vlm=mrf.Tower(2048, 16384, 18),
        expert=mrf.Tower(1024, 4096, 18),
        num_heads=8,
        num_kv_heads=1,
        head_dim=256,
        seed=seed,
    )


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} maxrss {rss_gb():.1f} GiB] {msg}", flush=True)


def dtype_summary(path: Path) -> dict:
    from safetensors import safe_open

    out: dict = {}
    with safe_open(str(path), "pt") as f:
        for k in f.keys():
            sl = f.get_slice(k)
            dt = sl.get_dtype()
            n = 1
            for s in sl.get_shape():
                n *= s
            e = out.setdefault(dt, {"tensors": 0, "elements": 0})
            e["tensors"] += 1
            e["elements"] += n
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=5105)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(out).free / 1e9
    if free_gb < MIN_FREE_GB:
        sys.exit(f"only {free_gb:.1f} GB free on the disk holding {out}; need >= {MIN_FREE_GB} GB "
                 "(the checkpoint is ~6-7 GB, plus headroom). Nothing written.")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import numpy as np
    import torch
    from PIL import Image
    from opentau.policies.pi05.modeling_pi05 import PI05Policy

    torch.set_num_threads(max(1, args.threads))
    os.chdir(REPO)
    spec = full_spec(args.seed)
    ckpt, inp_dir, ref_dir = out / "checkpoint", out / "inputs", out / "reference"
    for d in (ckpt, inp_dir, ref_dir):
        if d.exists():
            shutil.rmtree(d)
    timings: dict[str, float] = {}
    t_all = time.time()
    log(f"disk free {free_gb:.1f} GB; threads {torch.get_num_threads()}; building full-size PI05Policy")

    with mrf.offline_hub_names():
        # ---- build + seeded re-draw + save
        t = time.time()
        torch.manual_seed(spec.seed)
        config = mrf.build_config(spec)
        stats = mrf.make_stats(spec)
        policy = PI05Policy(config, per_dataset_stats=[stats], dataset_names=["fixture"])
        timings["construct_s"] = round(time.time() - t, 1)
        n_params = sum(p.numel() for p in policy.parameters())
        pwe = policy.model.paligemma_with_expert
        tc = pwe.config.paligemma_config.text_config
        vc = pwe.config.paligemma_config.vision_config
        ec = pwe.config.gemma_expert_config
        arch = {
            "vlm": {"width": tc.hidden_size, "mlp_dim": tc.intermediate_size, "depth": tc.num_hidden_layers,
                    "num_heads": tc.num_attention_heads, "num_kv_heads": tc.num_key_value_heads,
                    "head_dim": tc.head_dim, "vocab_size": tc.vocab_size},
            "vision": {"hidden": vc.hidden_size, "mlp": vc.intermediate_size, "layers": vc.num_hidden_layers,
                       "heads": vc.num_attention_heads, "patch": vc.patch_size, "image_size": vc.image_size},
            "expert": {"width": ec.hidden_size, "mlp_dim": ec.intermediate_size, "depth": ec.num_hidden_layers,
                       "num_heads": ec.num_attention_heads, "num_kv_heads": ec.num_key_value_heads,
                       "head_dim": ec.head_dim, "adarms_cond_dim": ec.adarms_cond_dim},
        }
        log(f"constructed in {timings['construct_s']} s: {n_params / 1e9:.3f} B params; {json.dumps(arch)}")
        assert arch["vlm"]["width"] == 2048 and arch["vlm"]["depth"] == 18 and arch["vlm"]["vocab_size"] == 257152
        assert arch["vision"]["image_size"] == 224 and arch["expert"]["width"] == 1024

        t = time.time()
        mrf.randomize_(policy, spec.seed)
        emb = pwe.paligemma.model.language_model.embed_tokens.weight
        with torch.no_grad():
            for tid in (mrf.PAD_ID, mrf.EOS_ID):
                emb[tid] = (emb[tid].to(torch.float32) * EOS_PAD_ROW_SCALE).to(emb.dtype)
        policy.eval()
        timings["randomize_s"] = round(time.time() - t, 1)
        log(f"randomized in {timings['randomize_s']} s")

        inputs = mrf.make_inputs(spec, stats)
        frame = inputs["frames"]["camera0"]
        inp_dir.mkdir(parents=True)
        Image.fromarray(frame, mode="RGB").save(inp_dir / "camera0.png")
        assert np.array_equal(np.asarray(Image.open(inp_dir / "camera0.png").convert("RGB")), frame)
        np.save(inp_dir / "state.npy", inputs["state"].astype(np.float32))
        np.save(inp_dir / "noise.npy", inputs["noise"][0].numpy().astype(np.float32))
        (inp_dir / "task.txt").write_text(spec.task + "\n")
        (inp_dir / "inputs.json").write_text(json.dumps({
            "cameras": {"camera0": "camera0.png"}, "frame_hw": list(frame.shape[:2]),
            "state": "state.npy (float32 [32], raw; the policy normalizes it with the checkpoint's MEAN_STD stats)",
            "noise": "noise.npy (float32 [chunk 50, max_action_dim 32], initial flow-matching x_t at t = 1)",
            "task": spec.task, "seed": spec.seed,
            "batch": "camera0: float32 [1,3,224,224] = png/255; state: [1,32]; prompt: [task]",
        }, indent=2) + "\n")

        t = time.time()
        policy.save_pretrained(ckpt)
        shutil.copyfile(mrf.TOKENIZER_JSON, ckpt / "tokenizer.json")
        for f in ckpt.iterdir():
            f.chmod(0o644)  # safetensors writes 0600
        timings["save_s"] = round(time.time() - t, 1)
        param_dtypes = sorted({str(p.dtype).replace("torch.", "") for p in policy.parameters()})
        del policy, pwe, emb, tc, vc, ec
        gc.collect()
        files = {p.name: p.stat().st_size for p in sorted(ckpt.iterdir())}
        log(f"saved in {timings['save_s']} s: {files}")

        # ---- reload exactly as the fixtures / bench do, float32, one run
        t = time.time()
        policy = PI05Policy.from_pretrained(str(ckpt))
        policy.to(torch.float32)
        policy.eval()
        timings["reload_f32_s"] = round(time.time() - t, 1)
        log(f"reloaded + float32 in {timings['reload_f32_s']} s")

        model = policy.model
        lm_head = model.paligemma_with_expert.paligemma.lm_head
        cap: dict = {"top2": [], "tokens": None}
        orig_infer = model.infer_response

        def infer_response(*a, **k):
            res = orig_infer(*a, **k)
            cap["tokens"] = res[5]
            return res

        def lm_hook(mod, a, o):
            v, i = o.reshape(-1, o.shape[-1])[0].topk(2)
            cap["top2"].append((float(v[0]), float(v[1]), int(i[0]), int(i[1])))

        model.infer_response = infer_response
        hook = lm_head.register_forward_hook(lm_hook)
        batch = mrf.observation_batch(spec, inputs)
        t = time.time()
        try:
            with mrf.float32_compute(), torch.inference_mode():
                policy.reset()
                actions = policy.sample_actions(batch, noise=inputs["noise"].clone())
        finally:
            hook.remove()
            del model.infer_response
        timings["sample_actions_s"] = round(time.time() - t, 1)
        tokens = [int(x) for x in cap["tokens"][0].tolist()]
        margins = [a - b for a, b, _, _ in cap["top2"]]
        log(f"sample_actions in {timings['sample_actions_s']} s")

    acts = actions[0].detach().to(torch.float32).numpy()
    ref_dir.mkdir(parents=True)
    np.save(ref_dir / "actions.npy", acts)
    (ref_dir / "response_tokens.json").write_text(json.dumps({"response_tokens": tokens}) + "\n")
    timings["total_s"] = round(time.time() - t_all, 1)

    bad = [i for i, x in enumerate(tokens) if x in (mrf.EOS_ID, mrf.PAD_ID)]
    distinct = len(set(tokens[1:]))
    ok = (len(tokens) == spec.response_max_length and tokens[0] == mrf.BOS_ID and not bad and distinct >= 10
          and bool(np.isfinite(acts).all()))
    info = {
        "generator": "tools/make_reason_full.py",
        "seed": spec.seed,
        "versions": mrf.versions(),
        "architecture": arch,
        "num_parameters": n_params,
        "parameter_dtypes_as_built": param_dtypes,
        "eos_pad_row_scale": EOS_PAD_ROW_SCALE,
        "checkpoint_files": files,
        "checkpoint_bytes": sum(files.values()),
        "weights_dtype_summary": dtype_summary(ckpt / "model.safetensors"),
        "policy": {"cameras": ["camera0"], "image_resolution": [224, 224], "state_dim": 32, "max_state_dim": 32,
                   "action_feature_dim": 32, "max_action_dim": 32, "chunk_size": 50, "num_steps": 10,
                   "prompt_max_length": 256, "response_max_length": 52, "normalization": "MEAN_STD"},
        "entry_point": "PI05Policy.from_pretrained(checkpoint) -> .to(torch.float32) -> .eval() -> "
                       ".sample_actions(batch, noise=noise) with _preferred_dtype() = float32, inference_mode",
        "response_tokens": tokens,
        "response_tokens_note": "index 0 is the fed <bos>; indices 1..51 are greedy argmax of the tied lm_head",
        "distinct_response_tokens": distinct,
        "eos_or_pad_positions": bad,
        "top1_minus_top2_logit_margin": {"min": min(margins), "median": float(np.median(margins)),
                                         "per_step": [round(m, 4) for m in margins]},
        "top1_logit_per_step": [round(a, 3) for a, _, _, _ in cap["top2"]],
        "actions_abs_max": float(np.abs(acts).max()),
        "actions_first_row": acts[0].tolist(),
        "timings_s": timings,
        "peak_rss_gib": round(rss_gb(), 2),
        "ok": ok,
    }
    (out / "make_info.json").write_text(json.dumps(info, indent=2) + "\n")
    print("response tokens (52, incl. <bos>):", tokens)
    print(f"distinct={distinct} eos/pad at {bad} min top2 margin={min(margins):.4f} "
          f"checkpoint={sum(files.values()) / 1e9:.2f} GB dtypes={info['weights_dtype_summary']} "
          f"timings={timings} peak_rss={rss_gb():.1f} GiB ok={ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
