#!/usr/bin/env python3
"""Peer benchmark: opentau 0.14.0's own PyTorch PI05Policy (predict_response=True, "reason then act"), CPU float32.

Usage (from the repository root, with the Python 3.10 venv of tools/requirements-reason-fixtures.txt):
    .venv310/bin/python tools/bench_opentau.py --checkpoint models/pi05_reason_full/checkpoint \
        --inputs models/pi05_reason_full/inputs --threads 2 --iters 3 --warmup 1 --json out.json

--checkpoint: an opentau pi05 checkpoint directory (config.json, model.safetensors as PI05Policy.save_pretrained
writes it, tokenizer.json = the tokenizer it was built with). Tiny fixtures (tests/data/pi05_reason/<case>/
checkpoint, with case.json beside the checkpoint) are rebuilt with tools/make_reason_fixtures.py's
tiny_architecture patch for that case (opentau's config.json carries no model sizes); any other checkpoint is
built at opentau's default (full) sizes, and the script checks the tensor shapes agree.
--inputs: a directory with one PNG per camera (<camera>.png for each VISUAL input feature of config.json, or
image.png when there is exactly one camera), state.npy (float32, raw; zero-padded to max_state_dim),
task.txt (the prompt, trailing newline dropped), noise.npy (float32 [chunk, max_action_dim] or [1, chunk, dim]).

Loading is what tools/make_reason_fixtures.py does: the AutoTokenizer / AutoProcessor names inside
opentau.policies.pi05.modeling_pi05 shimmed to the checkpoint's tokenizer.json / a FAST stub (hub offline),
PI05Policy.from_pretrained(ckpt), .to(torch.float32), .eval(), and opentau's `_preferred_dtype()` -> float32
(what it returns under ONNX export; otherwise activations are cast to bf16). Every call runs under
torch.inference_mode() with torch.set_num_threads(--threads):
    policy.reset(); actions = policy.sample_actions(batch, noise=noise)
with batch = {camera: float32 [1,3,H,W] = png/255, "state": [1, max_state_dim], "prompt": [task]} (what
opentau's gRPC server builds; the frame goes in at its own size, the policy's resize_with_pad handles it).

Stages are timed by wrapping methods of the loaded policy instance with perf_counter (opentau's code unchanged):
    preprocess  policy.sample_actions entry -> PI05FlowMatching.sample_actions entry (normalize, image prep,
                discrete-state prompt, tokenizer)
    embed_prefix  PI05FlowMatching.embed_prefix (SigLIP + projector = vision_ms, token embeddings, masks)
    prefill     the prefix call of paligemma_with_expert.forward (past_key_values=None, fill_kv_cache=True)
    decode      the response_max_length PI05FlowMatching.infer_response calls (step 0 feeds <bos>; steps >= 1
                run lm_head + argmax on the previous hidden, embed, one-token VLM forward with the KV cache);
                decode_ms_per_token = decode_ms / number of infer_response calls
    action      end of the last infer_response -> PI05FlowMatching.sample_actions return (the num_steps
                denoise_step calls = the action expert over the cache, plus the Euler updates); denoise_ms is
                the sum of denoise_step alone
    postprocess PI05FlowMatching.sample_actions return -> policy.sample_actions return (unpad, unnormalize)
    total       policy.sample_actions end to end
The JSON holds per-stage medians and every sample, the decoded token ids (incl. the fed <bos>) and the actions
of the last call, versions, thread count, load time and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import make_reason_fixtures as mrf  # noqa: E402  (offline shims, float32 patch, tiny fixture specs)

STAGES = ("total_ms", "preprocess_ms", "embed_prefix_ms", "vision_ms", "prefill_ms", "decode_ms",
          "decode_ms_per_token", "action_ms", "denoise_ms", "postprocess_ms")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tiny_spec_for(ckpt: Path):
    case_path = ckpt.parent / "case.json"
    if not case_path.is_file():
        return None
    name = json.loads(case_path.read_text())["name"]
    for spec in mrf.cases():
        if spec.name == name:
            return spec
    sys.exit(f"{case_path}: case {name!r} is not one of tools/make_reason_fixtures.py's cases")


def tensor_shapes(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}


def load_inputs(inputs: Path, cfg: dict):
    import numpy as np
    import torch
    from PIL import Image

    cams = [k for k, v in cfg["input_features"].items() if v["type"] == "VISUAL" and "empty_camera" not in k]
    state_key = next(k for k, v in cfg["input_features"].items() if v["type"] == "STATE")
    max_state = int(cfg["input_features"][state_key]["shape"][0])
    batch, frames = {}, {}
    for cam in cams:
        short = cam.split(".")[-1]
        cands = [inputs / f"{cam}.png", inputs / f"{short}.png"] + ([inputs / "image.png"] if len(cams) == 1 else [])
        path = next((p for p in cands if p.is_file()), None)
        if path is None:
            print(f"note: no PNG for camera {cam} in {inputs}: left out of the batch (opentau masks it if it can)")
            continue
        frame = np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)
        frames[cam] = {"file": path.name, "hw": list(frame.shape[:2])}
        batch[cam] = torch.from_numpy(frame.astype(np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0).contiguous()
    st = np.load(inputs / "state.npy").astype(np.float32).reshape(-1)
    if st.size > max_state:
        sys.exit(f"state.npy has {st.size} values, the checkpoint's state feature is {max_state} wide")
    batch[state_key] = torch.from_numpy(np.pad(st, (0, max_state - st.size)))[None]
    task = (inputs / "task.txt").read_text().rstrip("\n")
    batch["prompt"] = [task]
    noise = np.load(inputs / "noise.npy").astype(np.float32)
    chunk, adim = int(cfg["chunk_size"]), int(cfg["max_action_dim"])
    if noise.size != chunk * adim:
        sys.exit(f"noise.npy has shape {noise.shape}; expected [{chunk}, {adim}] (chunk_size, max_action_dim)")
    noise_t = torch.from_numpy(noise.reshape(1, chunk, adim))
    return batch, noise_t, {"cameras": frames, "state_len": int(st.size), "task": task}


class StageTimer:
    """Wraps methods of one policy instance; records perf_counter marks for the current call."""

    def __init__(self, policy):
        self.policy = policy
        self.model = policy.model
        self.pwe = policy.model.paligemma_with_expert
        self.rec: dict = {}
        self.orig = {}
        self._in = {"infer": False, "denoise": False}

    def reset(self):
        self.rec = {"vision": [], "prefill": [], "decode": [], "decode_fwd": [], "denoise": [], "tokens": None}

    def _wrap(self, obj, name, fn):
        self.orig[(id(obj), name)] = (obj, name, getattr(obj, name))
        setattr(obj, name, fn)

    def install(self):
        pc = time.perf_counter
        o_sample = self.model.sample_actions
        o_embed_prefix = self.model.embed_prefix
        o_embed_image = self.pwe.embed_image
        o_forward = self.pwe.forward
        o_infer = self.model.infer_response
        o_denoise = self.model.denoise_step

        def sample_actions(*a, **k):
            self.rec["inner_start"] = pc()
            out = o_sample(*a, **k)
            self.rec["inner_end"] = pc()
            return out

        def embed_prefix(*a, **k):
            t0 = pc()
            out = o_embed_prefix(*a, **k)
            self.rec["embed_prefix"] = (t0, pc())
            return out

        def embed_image(*a, **k):
            t0 = pc()
            out = o_embed_image(*a, **k)
            self.rec["vision"].append(pc() - t0)
            return out

        def forward(*a, **k):
            t0 = pc()
            out = o_forward(*a, **k)
            dt = pc() - t0
            if k.get("past_key_values") is None and not self._in["infer"] and not self._in["denoise"]:
                self.rec["prefill"].append((t0, t0 + dt))
            elif self._in["infer"]:
                self.rec["decode_fwd"].append(dt)
            return out

        def infer_response(*a, **k):
            self._in["infer"] = True
            t0 = pc()
            try:
                out = o_infer(*a, **k)
            finally:
                self._in["infer"] = False
            self.rec["decode"].append((t0, pc()))
            self.rec["tokens"] = out[5]
            return out

        def denoise_step(*a, **k):
            self._in["denoise"] = True
            t0 = pc()
            try:
                out = o_denoise(*a, **k)
            finally:
                self._in["denoise"] = False
            self.rec["denoise"].append(pc() - t0)
            return out

        self._wrap(self.model, "sample_actions", sample_actions)
        self._wrap(self.model, "embed_prefix", embed_prefix)
        self._wrap(self.pwe, "embed_image", embed_image)
        self._wrap(self.pwe, "forward", forward)
        self._wrap(self.model, "infer_response", infer_response)
        self._wrap(self.model, "denoise_step", denoise_step)

    def uninstall(self):
        for obj, name, _ in self.orig.values():
            delattr(obj, name)  # instance attribute -> the class method shows through again
        self.orig.clear()

    def summarize(self, t_start: float, t_end: float) -> dict:
        r = self.rec
        ms = 1000.0
        assert len(r["prefill"]) == 1, f"expected one prefix forward, saw {len(r['prefill'])}"
        dec = r["decode"]
        dec_ms = sum(b - a for a, b in dec) * ms
        action_from = dec[-1][1] if dec else r["prefill"][0][1]
        return {
            "total_ms": (t_end - t_start) * ms,
            "preprocess_ms": (r["inner_start"] - t_start) * ms,
            "embed_prefix_ms": (r["embed_prefix"][1] - r["embed_prefix"][0]) * ms,
            "vision_ms": sum(r["vision"]) * ms,
            "prefill_ms": (r["prefill"][0][1] - r["prefill"][0][0]) * ms,
            "decode_ms": dec_ms,
            "decode_ms_per_token": dec_ms / len(dec) if dec else 0.0,
            "action_ms": (r["inner_end"] - action_from) * ms,
            "denoise_ms": sum(r["denoise"]) * ms,
            "postprocess_ms": (t_end - r["inner_end"]) * ms,
            "n_decode_steps": len(dec),
            "decode_step_ms": [round((b - a) * ms, 3) for a, b in dec],
            "decode_forward_ms": [round(x * ms, 3) for x in r["decode_fwd"]],
            "denoise_step_ms": [round(x * ms, 3) for x in r["denoise"]],
            "n_denoise_steps": len(r["denoise"]),
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--inputs", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    if args.iters < 1 or args.warmup < 0:
        ap.error("--iters >= 1, --warmup >= 0")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import contextlib

    import numpy as np
    import torch
    from opentau.policies.pi05.modeling_pi05 import PI05Policy

    torch.set_num_threads(args.threads)
    ckpt = args.checkpoint.resolve()
    cfg = json.loads((ckpt / "config.json").read_text())
    if cfg.get("type") != "pi05":
        sys.exit(f"{ckpt}: policy type {cfg.get('type')!r}, expected pi05")
    tok_path = ckpt / "tokenizer.json"
    if not tok_path.is_file():
        sys.exit(f"{ckpt}: no tokenizer.json")
    mrf.TOKENIZER_JSON = tok_path  # the offline AutoTokenizer shim reads this
    spec = tiny_spec_for(ckpt)
    shapes = tensor_shapes(ckpt / "model.safetensors")
    lm = shapes.get("model.paligemma_with_expert.paligemma.lm_head.weight")
    if spec is None and lm != [257152, 2048]:
        sys.exit(f"{ckpt}: lm_head {lm} is not opentau's default PaliGemma [257152, 2048] and no case.json "
                 "beside the checkpoint names a tiny fixture case")
    batch, noise, inputs_info = load_inputs(args.inputs.resolve(), cfg)

    arch_ctx = mrf.tiny_architecture(spec) if spec is not None else contextlib.nullcontext()
    t0 = time.perf_counter()
    with arch_ctx, mrf.offline_hub_names():
        policy = PI05Policy.from_pretrained(str(ckpt))
        policy.to(torch.float32)
        policy.eval()
    load_s = time.perf_counter() - t0
    model_lm = list(policy.model.paligemma_with_expert.paligemma.lm_head.weight.shape)
    assert model_lm == lm, (model_lm, lm)
    print(f"loaded {ckpt} in {load_s:.1f} s (peak RSS {peak_rss_mib():.0f} MiB); "
          f"{sum(p.numel() for p in policy.parameters()) / 1e6:.1f} M params, "
          f"dtypes {sorted({str(p.dtype) for p in policy.parameters()})}", flush=True)

    timer = StageTimer(policy)
    samples = []
    actions = tokens = None
    timer.install()
    try:
        with mrf.float32_compute(), torch.inference_mode():
            for i in range(args.warmup + args.iters):
                timer.reset()
                policy.reset()
                ts = time.perf_counter()
                out = policy.sample_actions(batch, noise=noise.clone())
                te = time.perf_counter()
                s = timer.summarize(ts, te)
                warm = i < args.warmup
                print(f"{'warmup' if warm else 'iter'} {i - (0 if warm else args.warmup)}: "
                      f"total {s['total_ms']:.0f} ms, prefill {s['prefill_ms']:.0f}, decode {s['decode_ms']:.0f} "
                      f"({s['decode_ms_per_token']:.1f}/token x {s['n_decode_steps']}), action {s['action_ms']:.0f}",
                      flush=True)
                if not warm:
                    samples.append(s)
                actions = out
                tokens = timer.rec["tokens"]
    finally:
        timer.uninstall()

    acts = actions[0].detach().to(torch.float32).numpy()
    tok_list = [int(x) for x in tokens[0].tolist()] if tokens is not None else []
    eos = mrf.EOS_ID
    first_eos = tok_list.index(eos) if eos in tok_list else None
    medians = {k: statistics.median(s[k] for s in samples) for k in STAGES}
    from importlib.metadata import version as pkg_version

    result = {
        "tool": "tools/bench_opentau.py",
        "framework": "opentau",
        "checkpoint": str(ckpt),
        "inputs": str(args.inputs.resolve()),
        "fixture_case": spec.name if spec is not None else None,
        "entry_point": "PI05Policy.from_pretrained -> .to(float32) -> .eval(); _preferred_dtype()=float32; "
                       "torch.inference_mode(); policy.reset(); policy.sample_actions(batch, noise=noise)",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "opentau": pkg_version("opentau"), "transformers": pkg_version("transformers"),
                     "numpy": np.__version__},
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": args.threads,
        "torch_num_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "iters": args.iters,
        "warmup": args.warmup,
        "load_s": round(load_s, 2),
        "config": {k: cfg.get(k) for k in ("chunk_size", "num_steps", "max_state_dim", "max_action_dim",
                                           "prompt_max_length", "response_max_length",
                                           "resize_imgs_with_padding", "empty_cameras", "predict_response")},
        "lm_head_shape": lm,
        "inputs_info": inputs_info,
        "median": medians,
        **{k: medians[k] for k in STAGES},
        "n_response_tokens": len(tok_list),
        "n_decode_steps": samples[-1]["n_decode_steps"],
        "first_eos_index": first_eos,
        "response_tokens": tok_list,
        "response_tokens_note": "last call; index 0 is the fed <bos>, then greedy argmax ids; after <eos>/<pad> "
                                "opentau feeds <pad> (masked)",
        "actions_shape": list(acts.shape),
        "actions": acts.tolist(),
        "samples": samples,
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"opentau pi05 reason: threads={args.threads} iters={args.iters} median total {medians['total_ms']:.0f} ms "
          f"| prefill {medians['prefill_ms']:.0f} ms | decode {medians['decode_ms']:.0f} ms "
          f"({medians['decode_ms_per_token']:.1f} ms/token x {len(tok_list)}) | action {medians['action_ms']:.0f} ms "
          f"| vision {medians['vision_ms']:.0f} ms | load {load_s:.1f} s | peak RSS {peak_rss_mib():.0f} MiB "
          f"-> {args.json}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
