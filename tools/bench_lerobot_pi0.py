#!/usr/bin/env python3
"""Peer benchmark: LeRobot 0.6.1's own PyTorch PI0Policy (CPU, float32) on the inputs vlart uses.

Usage (from the repository root, with the Python 3.12 venv: lerobot==0.6.1, transformers 5.4/5.5, torch):
    .venv312/bin/python tools/bench_lerobot_pi0.py --checkpoint models/pi0_random_full \
        --cams 1 --steps 10 --threads 2 --iters 3 --warmup 1 --seed 0 \
        --inputs-dir out/inputs_cams1 --json out/lerobot_cams1.json

--checkpoint is a LeRobot pi0 / pi0.5 checkpoint directory (config.json, model.safetensors, processor files,
tokenizer.json) or a directory holding one in checkpoint/. --cams N below the checkpoint's camera count makes
(idempotently) a sibling checkpoint `<checkpoint>_camsN` whose config.json keeps the first N cameras (every
other file a symlink), as the SmolVLA peer does: LeRobot would otherwise run the cameras left out of a batch
as masked all -1 images through SigLIP. The JSON's "checkpoint" names the directory run, for vlart.
The inputs (one 480x640 RGB frame per used camera, state, task, initial flow noise) are derived from --seed
and written to --inputs-dir (<camera short name>.png, state.txt, task.txt, noise.npy [chunk, max_action_dim]
float32) so vlart can run the same observation.

The timed call is LeRobot's full inference path: prepare_observation_for_inference -> preprocessor pipeline
(newline, tokenisation, normalisation) -> policy.predict_action_chunk(batch, noise=noise) -> postprocessor
(unnormalisation), under torch.inference_mode with torch.set_num_threads(--threads). The config's dtype is
overridden to float32 (LeRobot computes in f32; bf16-stored weights upcast exactly).

Loading (--loader lean, the default) keeps the peak RSS at about the f32 model size (15 GiB at full size):
PI0Policy(config) is built with transformers' no_init_weights (torch.empty storage, no random init, so the
pages stay untouched until written), then every tensor of model.safetensors is read on its own (plain file
reads, no mmap) and copied into its parameter, after LeRobot's own per-key fix-ups
(PI0Policy._fix_pytorch_state_dict_keys, the `model.` prefix) and with from_pretrained's strict key check.
--loader from_pretrained uses PI0Policy.from_pretrained instead (whole file + f32 model in memory at once:
fine for the tiny fixtures, too much for the full-size checkpoint on 24 GB); both give identical actions.

Tiny fixtures (tests/data/pi0/<case>/checkpoint, config.json naming gemma_2b / gemma_300m with tiny tensors)
are recognised by the case.json beside the checkpoint and built with tools/make_pi0_fixtures.py's
tiny_architecture patch. The PaliGemma tokenizer is the checkpoint's own tokenizer.json (what vlart reads);
nothing is downloaded (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import struct
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TASK = "pick up the red cube and place it in the box"
FRAME_HW = (480, 640)
IMG_PREFIX = "observation.images."
HUB_TOKENIZER_NAME = "google/paligemma-3b-pt-224"
STAGES = ("preprocess", "vision", "prefix", "denoise", "postprocess", "total")


def resolve_checkpoint(path: Path) -> Path:
    path = path.resolve()
    if (path / "config.json").is_file():
        return path
    if (path / "checkpoint" / "config.json").is_file():
        return path / "checkpoint"
    sys.exit(f"{path}: no config.json (nor checkpoint/config.json)")


def camera_keys(config: dict) -> list[str]:
    """Real cameras in config order (LeRobot's empty_camera_<i> placeholders are never in a batch)."""
    return [k for k, v in config["input_features"].items()
            if k.startswith(IMG_PREFIX) and v["type"] == "VISUAL" and not k.startswith(IMG_PREFIX + "empty_camera_")]


def make_inputs(config: dict, cams: int, seed: int, inputs_dir: Path) -> tuple[dict, str, np.ndarray]:
    """Deterministic raw observation (uint8 HWC frames of the first `cams` cameras, f32 state), task and noise;
    written to inputs_dir. Same generator as tools/bench_lerobot_smolvla.py."""
    from PIL import Image

    # One independent stream per input (camera i: [seed, i]), so camera1/state/noise do not depend on --cams.
    def rng(stream: int) -> np.random.Generator:
        return np.random.default_rng([seed, stream])

    h, w = FRAME_HW
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    inputs_dir.mkdir(parents=True, exist_ok=True)
    keys = camera_keys(config)
    for key in keys[cams:]:  # a frame left from an earlier run with more cameras would be passed to vlart
        (inputs_dir / f"{key[len(IMG_PREFIX):]}.png").unlink(missing_ok=True)
    raw: dict[str, np.ndarray] = {}
    for i, key in enumerate(keys[:cams]):
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


def cpu_info() -> dict:
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name in ("", platform.machine(), platform.processor()):
                name = line.split(":", 1)[1].strip()
            elif line.startswith(("flags", "Features")) and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa_flags = [f for f in ("avx2", "fma", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8") if f in flags]
    if {"amx_tile", "amx_bf16"} <= flags:
        isa = "amx"
    elif "avx512_bf16" in flags:
        isa = "avx512_bf16"
    elif "avx512f" in flags:
        isa = "avx512"
    elif "avx2" in flags:
        isa = "avx2"
    else:
        isa = platform.machine()
    return {"cpu": f"{name} ({platform.machine()}, {os.cpu_count()} cpus)", "isa_flags": isa_flags, "isa_class": isa}


def versions() -> dict:
    from importlib.metadata import version

    import safetensors
    import torch
    import transformers

    return {"torch": torch.__version__, "lerobot": version("lerobot"), "transformers": transformers.__version__,
            "safetensors": safetensors.__version__, "numpy": np.__version__, "python": platform.python_version()}


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------------------------------------
# Offline construction
# ----------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def local_tokenizer(ckpt: Path):
    """TokenizerProcessorStep loads "google/paligemma-3b-pt-224" with AutoTokenizer: give it the checkpoint's."""
    from lerobot.processor import tokenizer_processor as tp
    from transformers import PreTrainedTokenizerFast

    path = next((p for p in (ckpt / "tokenizer.json", ckpt / "tokenizer" / "tokenizer.json") if p.is_file()), None)
    if path is None:
        sys.exit(f"{ckpt}: no tokenizer.json (nor tokenizer/tokenizer.json)")
    orig = tp.AutoTokenizer

    class _Shim:
        @staticmethod
        def from_pretrained(name, *a, **k):
            if name != HUB_TOKENIZER_NAME:
                raise RuntimeError(f"offline benchmark: unexpected tokenizer {name!r}")
            return PreTrainedTokenizerFast(tokenizer_file=str(path), bos_token="<bos>", eos_token="<eos>",
                                           pad_token="<pad>", unk_token="<unk>")

    tp.AutoTokenizer = _Shim
    try:
        yield
    finally:
        tp.AutoTokenizer = orig


def fixture_architecture(ckpt: Path):
    """tools/make_pi0_fixtures.py's tiny-tower patch when ckpt is a fixture (case.json beside it), else a no-op."""
    case_path = ckpt.parent / "case.json"
    if not case_path.is_file():
        return contextlib.nullcontext(), None
    sys.path.insert(0, str(REPO / "tools"))
    import make_pi0_fixtures as mf

    case = json.loads(case_path.read_text())
    md = case["model"]
    spec = mf.CaseSpec(
        name=case["name"], family=case["family"], description="", cameras=[], state_dim=0, action_dim=0,
        samples=[], vlm=mf.Tower(md["vlm"]["width"], md["vlm"]["mlp_dim"], md["vlm"]["depth"]),
        expert=mf.Tower(md["expert"]["width"], md["expert"]["mlp_dim"], md["expert"]["depth"]),
        vision=mf.VisionSpec(hidden=md["vision"]["hidden"], layers=md["vision"]["layers"],
                             heads=md["vision"]["heads"], mlp=md["vision"]["mlp"], patch=md["vision"]["patch"]),
        num_heads=md["num_heads"], num_kv_heads=md["num_kv_heads"], head_dim=md["head_dim"],
        vocab_size=md["vocab_size"])
    return mf.tiny_architecture(spec), case["name"]


ST_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64", "I64": "int64",
             "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def read_safetensors(path: Path):
    """Yield (name, tensor) one at a time, in the order safetensors.torch.load_file returns them, each read into
    its own buffer with plain reads (no mmap: the file's pages never count in this process's RSS)."""
    import torch

    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        header.pop("__metadata__", None)
        base = 8 + n
        # load_file returns safe_open(...).get_tensors(), in file (offset) order; the order decides which of
        # lm_head / embed_tokens wins in _fix_pytorch_state_dict_keys, so keep it.
        for name in sorted(header, key=lambda k: header[k]["data_offsets"][0]):
            info = header[name]
            start, end = info["data_offsets"]
            buf = torch.empty(end - start, dtype=torch.uint8)
            f.seek(base + start)
            if f.readinto(memoryview(buf.numpy())) != end - start:
                raise OSError(f"{path}: short read of {name}")
            yield name, buf.view(getattr(torch, ST_DTYPES[info["dtype"]])).reshape(info["shape"])
            del buf  # free it before the next tensor's buffer is allocated


def load_lean(policy_cls, config, ckpt: Path):
    """PI0Policy(config) without weight init, then model.safetensors tensor by tensor (see the module doc)."""
    import torch
    from transformers.initialization import no_init_weights

    with no_init_weights():
        policy = policy_cls(config)
    targets = policy.state_dict(keep_vars=True)  # persistent parameters and buffers, "model." prefixed
    loaded: set[str] = set()
    unexpected: list[str] = []

    def put(name, tensor) -> None:  # a function, so the tensor (and its fix-up copies) die on return
        # LeRobot's own per-key fix-ups (renames; lm_head -> embed_tokens copy), then the "model." prefix.
        for key, value in policy._fix_pytorch_state_dict_keys({name: tensor}, policy.config).items():
            key = key if key.startswith("model.") else f"model.{key}"
            dst = targets.get(key)
            if dst is None:
                unexpected.append(key)
                continue
            if tuple(dst.shape) != tuple(value.shape):
                raise RuntimeError(f"{key}: checkpoint shape {tuple(value.shape)}, model {tuple(dst.shape)}")
            dst.copy_(value)  # converts to the parameter's float32; later keys win, as in from_pretrained's dict
            loaded.add(key)

    with torch.no_grad():
        for name, tensor in read_safetensors(ckpt / "model.safetensors"):
            put(name, tensor)
            del tensor
    missing = sorted(set(targets) - loaded)
    if missing or unexpected:  # from_pretrained loads with strict=True
        raise RuntimeError(f"state dict mismatch: missing {missing[:5]} ({len(missing)}), "
                           f"unexpected {unexpected[:5]} ({len(unexpected)})")
    return policy


# ----------------------------------------------------------------------------------------------------------
# Stage timing
# ----------------------------------------------------------------------------------------------------------


class StageTimer:
    """Wraps methods of one policy instance (instance attributes shadow the class's) to split one call:

    preprocess  = call start -> model.sample_actions start (prepare_observation_for_inference, the preprocessor
                  pipeline, PI0Policy._preprocess_images resize/pad, state padding);
    vision      = the paligemma_with_expert.embed_image calls (SigLIP + projector; every config camera, the
                  masked ones too);
    prefix      = rest of sample_actions up to the first denoise_step (language embedding, masks, the
                  PaliGemma prefill of the K/V cache);
    denoise     = first denoise_step -> sample_actions end (all flow-matching steps);
    postprocess = sample_actions end -> call end (unpadding, postprocessor pipeline).
    """

    def __init__(self, policy):
        model = policy.model
        pwe = model.paligemma_with_expert
        self.m: dict = {}
        orig_sample, orig_step, orig_img, orig_prefix = (model.sample_actions, model.denoise_step,
                                                         pwe.embed_image, model.embed_prefix)

        def sample_actions(*a, **k):
            self.m["sample_start"] = time.perf_counter()
            out = orig_sample(*a, **k)
            self.m["sample_end"] = time.perf_counter()
            return out

        def denoise_step(*a, **k):
            self.m.setdefault("first_step", time.perf_counter())
            self.m["steps"] = self.m.get("steps", 0) + 1
            return orig_step(*a, **k)

        def embed_image(*a, **k):
            t0 = time.perf_counter()
            out = orig_img(*a, **k)
            self.m["vision"] = self.m.get("vision", 0.0) + time.perf_counter() - t0
            self.m["images"] = self.m.get("images", 0) + 1
            return out

        def embed_prefix(*a, **k):
            out = orig_prefix(*a, **k)
            self.m["prefix_tokens"] = int(out[0].shape[1])
            self.m["valid_prefix_tokens"] = int(out[1][0].sum())
            return out

        model.sample_actions, model.denoise_step = sample_actions, denoise_step
        pwe.embed_image, model.embed_prefix = embed_image, embed_prefix

    def start(self) -> None:
        self.m = {"start": time.perf_counter()}

    def stop(self) -> dict:
        m = self.m
        m["end"] = time.perf_counter()
        ms = {
            "preprocess": m["sample_start"] - m["start"],
            "vision": m["vision"],
            "prefix": m["first_step"] - m["sample_start"] - m["vision"],
            "denoise": m["sample_end"] - m["first_step"],
            "postprocess": m["end"] - m["sample_end"],
            "total": m["end"] - m["start"],
        }
        return {k: 1e3 * v for k, v in ms.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True, help="LeRobot pi0 checkpoint directory")
    ap.add_argument("--cams", type=int, required=True, help="number of cameras to use (first N of the config)")
    ap.add_argument("--steps", type=int, default=10, help="flow-matching steps (config num_inference_steps override)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--inputs-dir", type=Path, required=True)
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--loader", choices=["lean", "from_pretrained"], default="lean",
                    help="lean: no-init build + tensor-by-tensor load (default); from_pretrained: LeRobot's loader")
    args = ap.parse_args()
    if args.iters < 1 or args.warmup < 0 or args.steps < 1:
        ap.error("--iters and --steps must be >= 1 and --warmup >= 0")

    ckpt = resolve_checkpoint(args.checkpoint)
    inputs_dir, json_path = args.inputs_dir.resolve(), args.json.resolve()
    cfg_json = json.loads((ckpt / "config.json").read_text())
    keys = camera_keys(cfg_json)
    if not 1 <= args.cams <= len(keys):
        sys.exit(f"--cams {args.cams}: the checkpoint has {len(keys)} cameras")
    # Fewer cameras than the checkpoint has: a sibling checkpoint whose config lists only the first N
    # (weights symlinked), as the SmolVLA peer does, so LeRobot does not run the others as masked
    # images. vlart runs the same directory (the JSON's "checkpoint").
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_lerobot_smolvla import variant_checkpoint
    ckpt = variant_checkpoint(ckpt, args.cams, keys)
    cfg_json = json.loads((ckpt / "config.json").read_text())
    keys = camera_keys(cfg_json)
    print(f"checkpoint: {ckpt}", flush=True)
    os.chdir(REPO)
    # Offline, set before huggingface_hub / transformers are first imported (below).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    import torch
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.utils import prepare_observation_for_inference

    if cfg_json["type"] == "pi05":
        from lerobot.policies.pi05.modeling_pi05 import PI05Policy as policy_cls
    elif cfg_json["type"] == "pi0":
        from lerobot.policies.pi0.modeling_pi0 import PI0Policy as policy_cls
    else:
        sys.exit(f"{ckpt}: policy type {cfg_json['type']!r}, expected pi0 or pi05")

    torch.set_num_threads(args.threads)
    raw, task, noise_np = make_inputs(cfg_json, args.cams, args.seed, inputs_dir)
    noise = torch.from_numpy(noise_np).unsqueeze(0)  # [1, chunk, max_action_dim]

    arch, fixture = fixture_architecture(ckpt)
    t0 = time.perf_counter()
    with arch, local_tokenizer(ckpt):
        config = PreTrainedConfig.from_pretrained(str(ckpt))
        config.dtype = "float32"  # LeRobot f32 compute (bf16-stored weights upcast exactly)
        config.num_inference_steps = args.steps
        config.device = "cpu"
        if args.loader == "lean":
            policy = load_lean(policy_cls, config, ckpt)
        else:
            policy = policy_cls.from_pretrained(str(ckpt), config=config)
        policy.eval()
        pre, post = make_pre_post_processors(policy.config, pretrained_path=str(ckpt))
    load_s = time.perf_counter() - t0
    rss_loaded = rss_mib()
    dtypes = {p.dtype for p in policy.parameters()}
    assert dtypes == {torch.float32}, f"expected float32 parameters, got {dtypes}"
    n_params = sum(p.numel() for p in policy.parameters())
    print(f"loaded ({args.loader}) in {load_s:.1f} s: {n_params / 1e6:.1f} M f32 parameters, "
          f"peak RSS {rss_loaded:.0f} MiB", flush=True)
    timer = StageTimer(policy)

    def infer() -> torch.Tensor:
        # prepare_observation_for_inference replaces dict values in place: give it a fresh (shallow) dict.
        obs = prepare_observation_for_inference(dict(raw), torch.device("cpu"), task)
        batch = pre(obs)
        return post(policy.predict_action_chunk(batch, noise=noise.clone()))

    samples: list[dict] = []
    out = None
    with torch.inference_mode():
        first_ms = None
        for i in range(args.warmup):
            timer.start()
            infer()
            if i == 0:
                first_ms = timer.stop()["total"]
        for i in range(args.iters):
            timer.start()
            out = infer()
            samples.append(timer.stop())
            print(f"  call {i + 1}/{args.iters}: {samples[-1]['total']:.0f} ms", flush=True)
    actions = out[0].float().tolist()  # [chunk, action_dim], unnormalised, of the last timed call
    info = timer.m
    stages = {}
    for s in STAGES:
        v = sorted(x[s] for x in samples)
        stages[s] = {"p50": nearest_rank(v, 0.5), "p99": nearest_rank(v, 0.99), "max": v[-1]}
    tot = sorted(x["total"] for x in samples)
    result = {
        "checkpoint": str(ckpt), "fixture": fixture, "family": cfg_json["type"], "cams": args.cams,
        "cameras_present": [k[len(IMG_PREFIX):] for k in keys[:args.cams]],
        "cameras_masked": [k[len(IMG_PREFIX):] for k, v in cfg_json["input_features"].items()
                           if k.startswith(IMG_PREFIX) and v["type"] == "VISUAL" and k not in keys[:args.cams]],
        "steps": args.steps, "threads": args.threads, "iters": args.iters, "warmup": args.warmup, "seed": args.seed,
        "inputs_dir": str(inputs_dir), "frame_hw": list(FRAME_HW), "compute_dtype": "float32",
        "checkpoint_dtype": cfg_json.get("dtype"), "loader": args.loader, "load_s": load_s,
        "num_parameters": n_params,
        # What LeRobot ran per call: images through SigLIP (masked cameras included) and prefix length.
        "images_embedded": info.get("images"), "denoise_steps_run": info.get("steps"),
        "prefix_tokens": info.get("prefix_tokens"), "valid_prefix_tokens": info.get("valid_prefix_tokens"),
        "first_call_ms": first_ms,
        "samples_ms": [x["total"] for x in samples], "samples_stages_ms": samples, "stages_ms": stages,
        "p50_ms": nearest_rank(tot, 0.50), "p99_ms": nearest_rank(tot, 0.99), "min_ms": tot[0],
        "vision_p50_ms": stages["vision"]["p50"], "prefix_p50_ms": stages["prefix"]["p50"],
        "denoise_p50_ms": stages["denoise"]["p50"],
        "rss_after_load_mb": rss_loaded, "peak_rss_mb": rss_mib(),
        "actions": actions,
        "versions": versions(),
        **cpu_info(),
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"lerobot {cfg_json['type']}: cams={args.cams} steps={args.steps} threads={args.threads} "
          f"iters={args.iters} p50={result['p50_ms']:.1f} ms p99={result['p99_ms']:.1f} ms "
          f"(vision {stages['vision']['p50']:.1f}, prefix {stages['prefix']['p50']:.1f}, "
          f"denoise {stages['denoise']['p50']:.1f} ms p50; {result['images_embedded']} images, "
          f"{result['prefix_tokens']} prefix tokens) peak_rss={result['peak_rss_mb']:.0f} MiB -> {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
