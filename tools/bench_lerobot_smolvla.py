#!/usr/bin/env python3
"""Peer benchmark: LeRobot's own PyTorch SmolVLAPolicy (CPU, float32) on the inputs vlart uses.

Usage (from the repository root, with the venv of tools/requirements-fixtures.txt):
    .venv/bin/python tools/bench_lerobot_smolvla.py --checkpoint models/smolvla_random_full/checkpoint \
        --cams 1 --steps 10 --threads 2 --iters 5 --warmup 1 --seed 0 \
        --inputs-dir out/inputs_cams1 --json out/lerobot_cams1.json

--cams N below the checkpoint's camera count makes (idempotently) a sibling checkpoint `<checkpoint>_camsN`
whose config.json keeps the first N cameras; every other file is a symlink to the original (same weights).
The inputs (one 480x640 RGB frame per camera, state, task, initial flow noise) are derived from --seed and
written to --inputs-dir (<camera>.png, state.txt, task.txt, noise.npy) so vlart can run the same observation.

The timed call is LeRobot's full inference path, as in tools/make_smolvla_fixtures.py:
prepare_observation_for_inference -> preprocessor pipeline (newline, tokenisation, normalisation)
-> policy.predict_action_chunk(batch, noise=noise) -> postprocessor pipeline (unnormalisation).
Stock transformers computes f32 SmolVLM vision position ids with a bucketize that is not the identity
(transformers#41190, see docs/smolvla_reference_notes.md); vlart uses identity ids like the bf16 checkpoints.
--identity-vision-pos patches LeRobot to identity ids (as the fixtures do) so `actions` are comparable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TASK = "pick up the red cube and place it in the box"
FRAME_HW = (480, 640)
IMG_PREFIX = "observation.images."


def camera_keys(config: dict) -> list[str]:
    return [k for k in config["input_features"] if k.startswith(IMG_PREFIX)]


def variant_checkpoint(ckpt: Path, cams: int, keys: list[str] | None = None) -> Path:
    """Return ckpt itself, or `<ckpt>_cams<N>` keeping only the first N of `keys` (default: every camera
    feature) in its config.json, every other file a symlink to the original (created idempotently)."""
    config = json.loads((ckpt / "config.json").read_text())
    keys = camera_keys(config) if keys is None else keys
    if not 1 <= cams <= len(keys):
        sys.exit(f"--cams {cams}: the checkpoint has {len(keys)} cameras")
    if cams == len(keys):
        return ckpt
    out = ckpt.parent / f"{ckpt.name}_cams{cams}"
    out.mkdir(exist_ok=True)
    for src in ckpt.iterdir():
        dst = out / src.name
        if src.name != "config.json" and not dst.is_symlink():
            dst.symlink_to(os.path.relpath(src, out))
    drop = set(keys[cams:])
    config["input_features"] = {k: v for k, v in config["input_features"].items() if k not in drop}
    text = json.dumps(config, indent=4) + "\n"
    cfg_path = out / "config.json"
    if not cfg_path.exists() or cfg_path.read_text() != text:
        tmp = out / "config.json.tmp"
        tmp.write_text(text)
        tmp.replace(cfg_path)
    return out


def make_inputs(config: dict, seed: int, inputs_dir: Path) -> tuple[dict, str, np.ndarray]:
    """Deterministic raw observation (uint8 HWC frames, f32 state), task and noise; written to inputs_dir."""
    from PIL import Image

    # One independent stream per input (camera i: [seed, i]), so camera1/state/noise do not depend on --cams.
    def rng(stream: int) -> np.random.Generator:
        return np.random.default_rng([seed, stream])

    h, w = FRAME_HW
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    inputs_dir.mkdir(parents=True, exist_ok=True)
    raw: dict[str, np.ndarray] = {}
    for i, key in enumerate(camera_keys(config)):
        # Smooth per-camera colour pattern (gradients + a low-frequency wave) plus Gaussian noise.
        wave = np.sin(2 * np.pi * ((i + 1) * xx + 0.5 * yy))
        base = np.stack([yy, xx, 0.5 * (1 + wave)], axis=-1) * 180.0 + 30.0 * i
        frame = np.clip(base + rng(i).normal(0.0, 20.0, size=(h, w, 3)), 0, 255).astype(np.uint8)
        path = inputs_dir / f"{key[len(IMG_PREFIX):]}.png"
        Image.fromarray(frame).save(path)
        raw[key] = np.array(Image.open(path).convert("RGB"))  # use exactly what the (lossless) file holds
    state_dim = config["input_features"]["observation.state"]["shape"][0]
    state = rng(100).normal(size=state_dim).astype(np.float32)
    raw["observation.state"] = state
    noise = rng(101).normal(size=(config["chunk_size"], config["max_action_dim"])).astype(np.float32)
    (inputs_dir / "state.txt").write_text(",".join(repr(float(v)) for v in state) + "\n")
    (inputs_dir / "task.txt").write_text(TASK)  # no trailing newline: the file content is the task
    np.save(inputs_dir / "noise.npy", noise)
    return raw, TASK, noise


def nearest_rank(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[max(0, math.ceil(q * len(sorted_ms)) - 1)]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({platform.machine()}, {os.cpu_count()} cpus)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict:
    from importlib.metadata import version

    import torch
    import transformers

    return {"torch": torch.__version__, "lerobot": version("lerobot"),
            "transformers": transformers.__version__, "python": platform.python_version()}


class PhaseTimer:
    """Wraps model.sample_actions / model.denoise_step of one policy instance to time prefix vs. denoising.

    prefix = sample_actions start -> first denoise_step (vision encoder, embed_prefix, VLM prefill of the KV
    cache); denoise = first denoise_step -> sample_actions end (all flow-matching steps).
    """

    def __init__(self, model):
        self.marks: dict[str, float] = {}
        orig_sample, orig_step = model.sample_actions, model.denoise_step

        def sample_actions(*a, **k):
            self.marks = {"start": time.perf_counter()}
            out = orig_sample(*a, **k)
            self.marks["end"] = time.perf_counter()
            return out

        def denoise_step(*a, **k):
            self.marks.setdefault("first_step", time.perf_counter())
            return orig_step(*a, **k)

        model.sample_actions, model.denoise_step = sample_actions, denoise_step

    def phases_ms(self) -> tuple[float, float]:
        m = self.marks
        return 1e3 * (m["first_step"] - m["start"]), 1e3 * (m["end"] - m["first_step"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True, help="LeRobot SmolVLA checkpoint directory")
    ap.add_argument("--cams", type=int, required=True, help="number of cameras to use (first N of the config)")
    ap.add_argument("--steps", type=int, default=10, help="flow-matching steps (config num_steps override)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--inputs-dir", type=Path, required=True)
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--identity-vision-pos", action="store_true",
                    help="use identity SmolVLM vision position ids like vlart (default: stock transformers)")
    args = ap.parse_args()
    if args.iters < 1 or args.warmup < 0:
        ap.error("--iters must be >= 1 and --warmup >= 0")

    # Resolve user paths before chdir: vlm_model_name in the checkpoint is relative to the repository root.
    ckpt = variant_checkpoint(args.checkpoint.resolve(), args.cams)
    inputs_dir, json_path = args.inputs_dir.resolve(), args.json.resolve()
    print(f"checkpoint: {ckpt}", flush=True)
    os.chdir(REPO)
    # Offline, set before huggingface_hub / transformers are first imported (below).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    import torch
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.policies.utils import prepare_observation_for_inference

    torch.set_num_threads(args.threads)
    raw, task, noise_np = make_inputs(json.loads((ckpt / "config.json").read_text()), args.seed, inputs_dir)
    noise = torch.from_numpy(noise_np).unsqueeze(0)  # [1, chunk, max_action_dim]

    config = PreTrainedConfig.from_pretrained(str(ckpt))
    config.num_steps = args.steps
    config.device = "cpu"
    policy = SmolVLAPolicy.from_pretrained(str(ckpt), config=config)  # bf16 file -> f32 parameters
    policy.eval()
    assert {p.dtype for p in policy.parameters()} == {torch.float32}, "expected float32 parameters"
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(ckpt))
    timer = PhaseTimer(policy.model)

    vision_pos = contextlib.nullcontext()
    if args.identity_vision_pos:
        sys.path.insert(0, str(REPO / "tools"))
        from make_smolvla_fixtures import VisionPositionMode  # the fixtures' identity-ids patch

        vision_pos = VisionPositionMode(identity=True)

    def infer() -> torch.Tensor:
        # prepare_observation_for_inference replaces dict values in place: give it a fresh (shallow) dict.
        obs = prepare_observation_for_inference(dict(raw), torch.device("cpu"), task)
        batch = pre(obs)
        return post(policy.predict_action_chunk(batch, noise=noise.clone()))

    samples_ms, phases, actions = [], [], None
    with torch.inference_mode(), vision_pos:
        for _ in range(args.warmup):
            infer()
        for i in range(args.iters):
            t0 = time.perf_counter()
            out = infer()
            samples_ms.append(1e3 * (time.perf_counter() - t0))
            phases.append(timer.phases_ms())
            if i == 0:
                actions = out[0].float().tolist()  # [chunk, action_dim], unnormalised

    s = sorted(samples_ms)
    prefix = sorted(p[0] for p in phases)
    denoise = sorted(p[1] for p in phases)
    result = {
        "checkpoint": str(ckpt), "cams": args.cams, "steps": args.steps, "threads": args.threads,
        "iters": args.iters, "warmup": args.warmup, "seed": args.seed,
        "inputs_dir": str(inputs_dir), "frame_hw": list(FRAME_HW),
        "vision_position_ids": "identity" if args.identity_vision_pos else "stock_transformers",
        "samples_ms": samples_ms, "p50_ms": nearest_rank(s, 0.50), "p99_ms": nearest_rank(s, 0.99), "min_ms": s[0],
        "prefix_p50_ms": nearest_rank(prefix, 0.50), "denoise_p50_ms": nearest_rank(denoise, 0.50),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "actions": actions,
        "versions": versions(),
        "cpu": cpu_name(),
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"lerobot smolvla: cams={args.cams} steps={args.steps} threads={args.threads} iters={args.iters} "
          f"p50={result['p50_ms']:.1f} ms p99={result['p99_ms']:.1f} ms min={result['min_ms']:.1f} ms "
          f"(prefix p50 {result['prefix_p50_ms']:.1f} ms, denoise p50 {result['denoise_p50_ms']:.1f} ms) "
          f"peak_rss={result['peak_rss_mb']:.0f} MB -> {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
