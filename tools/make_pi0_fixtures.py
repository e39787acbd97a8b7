#!/usr/bin/env python3
"""Make pi0 / pi0.5 reference fixtures with LeRobot 0.6.1's own classes (offline, tiny random weights).

Usage (from anywhere; paths are resolved against the repository root; needs the Python 3.12 venv with
lerobot==0.6.1, transformers 5.5.x, torch):
    .venv312/bin/python tools/make_pi0_fixtures.py                       # all small cases -> tests/data/pi0/
    .venv312/bin/python tools/make_pi0_fixtures.py --only pi0_a_one_cam  # selected cases only
    .venv312/bin/python tools/make_pi0_fixtures.py --full-size models/pi0_random_full   # full-size, bf16

Nothing is downloaded (HF_HUB_OFFLINE=1):
  * LeRobot's PI0Config/PI05Config only accept paligemma_variant / action_expert_variant in
    {gemma_300m, gemma_2b}. For the small cases `get_gemma_config` of modeling_pi0 / modeling_pi05 is
    replaced (while building and while reloading) by one that returns the tiny tower sizes of the case, and
    the module-level names `PaliGemmaForConditionalGenerationWithPiGemma` / `PiGemmaForCausalLM` are replaced
    by factories that shrink the SigLIP vision config, set `projection_dim` to the VLM width and the vocab to
    1024 before calling LeRobot's classes. The saved config.json therefore still names gemma_2b / gemma_300m;
    the real sizes are in the tensor shapes (and in case.json).
  * The processors' TokenizerProcessorStep(tokenizer_name="google/paligemma-3b-pt-224") loads its tokenizer
    with `transformers.AutoTokenizer.from_pretrained`; the name `AutoTokenizer` inside
    lerobot.processor.tokenizer_processor is replaced by a shim that returns our small Gemma-style
    tokenizer (tests/data/tokenizer/gemma_style.json) for that one name, so the saved
    policy_preprocessor.json is exactly what LeRobot writes for a real checkpoint. A copy of the tokenizer
    is written to checkpoint/tokenizer.json.

Reference outputs are produced by reloading the checkpoint from disk with LeRobot's loaders
(PI0Policy/PI05Policy.from_pretrained, make_pre_post_processors(pretrained_path=...)) and running
prepare_observation_for_inference -> preprocessor -> policy.predict_action_chunk(noise=...) -> postprocessor.
Intermediates are captured by wrapping methods of that same policy instance during that call.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "data" / "pi0"
DEFAULT_FULL = REPO / "models" / "pi0_random_full"
TOKENIZER_JSON = REPO / "tests" / "data" / "tokenizer" / "gemma_style.json"
HUB_TOKENIZER_NAME = "google/paligemma-3b-pt-224"
GENERATOR = "tools/make_pi0_fixtures.py"

# ----------------------------------------------------------------------------------------------------------
# Case specifications
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Tower:
    width: int
    mlp: int
    depth: int


@dataclass
class VisionSpec:
    hidden: int = 48
    layers: int = 2
    # 16 heads as PaliGemma's default SigLIP (So400m) has them: LeRobot always builds that tower, and
    # head counts are not in the tensors, so vlart takes 16 (here head_dim 3).
    heads: int = 16
    mlp: int = 96
    patch: int = 14


@dataclass
class Sample:
    name: str
    task: str
    frames: dict[str, tuple[int, int]]  # camera short name -> (H, W); cameras left out are missing
    seed: int
    state_override: dict[int, float] = field(default_factory=dict)  # raw state dims forced to a value


@dataclass
class CaseSpec:
    name: str
    family: str  # "pi0" | "pi05"
    description: str
    cameras: list[str]  # short names, in input_features order
    state_dim: int
    action_dim: int
    samples: list[Sample]
    vlm: Tower = field(default_factory=lambda: Tower(64, 128, 2))
    expert: Tower = field(default_factory=lambda: Tower(32, 64, 2))
    vision: VisionSpec = field(default_factory=VisionSpec)
    num_heads: int = 8  # the joint attention code hard-codes 8 heads
    num_kv_heads: int = 1
    head_dim: int = 16
    vocab_size: int = 1024
    image_resolution: int = 56
    chunk_size: int = 50
    n_action_steps: int | None = None  # None: chunk_size
    num_steps: int = 10
    tokenizer_max_length: int | None = None  # None: LeRobot's default (48 pi0, 200 pi05)
    max_state_dim: int = 32
    max_action_dim: int = 32
    dtype: str = "float32"
    empty_cameras: int = 0
    camera_stats: bool = False  # also give (unused, IDENTITY) image stats like a real dataset has
    seed: int = 0


LONG_TASK = (
    "pick up the red cube on the left side of the table, move it slowly over the blue bowl and put it "
    "down gently in the center of the plate"
)


def _family_cases(family: str, base_seed: int) -> list[CaseSpec]:
    p = family  # prefix
    pi05 = family == "pi05"
    return [
        CaseSpec(
            name=f"{p}_a_one_cam",
            family=family,
            description="1 camera (top) with 56x56 frames == image_resolution (no resize), state 6 / action 6, "
            "VLM 64/128 x2 layers, expert 32/64 x2, chunk 50, 10 steps, float32, LeRobot default "
            f"tokenizer_max_length ({200 if pi05 else 48}).",
            cameras=["top"],
            state_dim=6,
            action_dim=6,
            samples=[
                Sample("s0", "pick up the red cube and place it in the box", {"top": (56, 56)}, base_seed + 10),
                Sample("s1", "fold the towel in half", {"top": (56, 56)}, base_seed + 11),
            ],
            seed=base_seed + 1,
        ),
        CaseSpec(
            name=f"{p}_b_three_cam",
            family=family,
            description="3 cameras listed non-alphabetically (wrist, top, side) with non-square frames 48x64, "
            "40x56, 64x44 (bilinear resize + centered zero pad to 56), state 7 / action 5, max_state_dim = "
            "max_action_dim = 24, chunk 16, n_action_steps 8, 4 steps, tokenizer_max_length "
            f"{40 if pi05 else 12} (s0 truncated{'; s1 exactly 40 tokens, no padding' if pi05 else ''}), s2 without the 'top' camera (LeRobot appends an all -1 "
            "image with mask 0 after the present ones), image stats present in the normalizer file"
            + ("; s1 has raw state values outside [q01, q99] (normalized beyond [-1, 1]: bins -1 and 255)."
               if pi05 else "."),
            cameras=["wrist", "top", "side"],
            state_dim=7,
            action_dim=5,
            chunk_size=16,
            n_action_steps=8,
            num_steps=4,
            tokenizer_max_length=40 if pi05 else 12,
            max_state_dim=24,
            max_action_dim=24,
            camera_stats=True,
            samples=[
                Sample("s0", LONG_TASK, {"wrist": (48, 64), "top": (40, 56), "side": (64, 44)}, base_seed + 20),
                Sample("s1", "stack cups", {"wrist": (48, 64), "top": (40, 56), "side": (64, 44)},
                       base_seed + 21, state_override={1: 50.0, 4: -50.0} if pi05 else {}),
                Sample("s2", "open the drawer", {"wrist": (48, 64), "side": (64, 44)}, base_seed + 22),
            ],
            seed=base_seed + 2,
        ),
        CaseSpec(
            name=f"{p}_c_bf16",
            family=family,
            description="dtype bfloat16 (LeRobot keeps vision_tower, multi_modal_projector, *_layernorm and "
            "*.norm in float32), 2 cameras (wrist, front) + empty_cameras=1 (observation.images.empty_camera_0, "
            "never in a batch), image_resolution 42 (9 tokens per image), frames 42x42 and 60x80, depth 3, "
            "VLM 96/192, expert 48/96, state 8 / action 7, chunk 10, 5 steps.",
            cameras=["wrist", "front"],
            state_dim=8,
            action_dim=7,
            vlm=Tower(96, 192, 3),
            expert=Tower(48, 96, 3),
            image_resolution=42,
            chunk_size=10,
            num_steps=5,
            dtype="bfloat16",
            empty_cameras=1,
            tokenizer_max_length=64 if pi05 else 20,
            samples=[
                Sample("s0", "insert the peg into the hole", {"wrist": (42, 42), "front": (60, 80)}, base_seed + 30),
                Sample("s1", "wipe the table", {"wrist": (42, 42), "front": (60, 80)}, base_seed + 31),
            ],
            seed=base_seed + 3,
        ),
    ]


def small_cases() -> list[CaseSpec]:
    return _family_cases("pi0", 1000) + _family_cases("pi05", 2000)


# ----------------------------------------------------------------------------------------------------------
# Offline patches
# ----------------------------------------------------------------------------------------------------------


def local_tokenizer():
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=str(TOKENIZER_JSON),
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


@contextlib.contextmanager
def offline_tokenizer():
    """Make AutoTokenizer.from_pretrained("google/paligemma-3b-pt-224") return the local tokenizer."""
    from lerobot.processor import tokenizer_processor as tp

    orig = tp.AutoTokenizer

    class _Shim:
        @staticmethod
        def from_pretrained(name, *a, **k):
            if name != HUB_TOKENIZER_NAME:
                raise RuntimeError(f"offline fixtures: unexpected tokenizer {name!r}")
            return local_tokenizer()

    tp.AutoTokenizer = _Shim
    try:
        yield
    finally:
        tp.AutoTokenizer = orig


@contextlib.contextmanager
def tiny_architecture(spec: CaseSpec | None):
    """Patch LeRobot's pi0/pi05 modules so the named variants build the tiny towers of `spec`."""
    from lerobot.policies.pi0 import modeling_pi0
    from lerobot.policies.pi05 import modeling_pi05

    if spec is None:
        yield
        return
    mods = (modeling_pi0, modeling_pi05)
    saved = [(m, m.get_gemma_config, m.PaliGemmaForConditionalGenerationWithPiGemma, m.PiGemmaForCausalLM)
             for m in mods]

    def patched(mod, orig_pali, orig_expert):
        def get_gemma_config(variant):
            tower = {"gemma_2b": spec.vlm, "gemma_300m": spec.expert}[variant]
            return mod.GemmaConfig(width=tower.width, depth=tower.depth, mlp_dim=tower.mlp,
                                   num_heads=spec.num_heads, num_kv_heads=spec.num_kv_heads,
                                   head_dim=spec.head_dim)

        def paligemma(config):
            vc = config.vision_config
            vc.hidden_size = spec.vision.hidden
            vc.num_hidden_layers = spec.vision.layers
            vc.num_attention_heads = spec.vision.heads
            vc.intermediate_size = spec.vision.mlp
            vc.patch_size = spec.vision.patch
            width = config.text_config.hidden_size
            vc.projection_dim = width
            config.projection_dim = width
            config.hidden_size = width
            config.vocab_size = spec.vocab_size
            config.text_config.vocab_size = spec.vocab_size
            config.image_token_index = spec.vocab_size
            config.text_config.num_image_tokens = (vc.image_size // vc.patch_size) ** 2
            return orig_pali(config)

        def expert(config):
            config.vocab_size = spec.vocab_size
            return orig_expert(config)

        return get_gemma_config, paligemma, expert

    for m, _, pali, exp in saved:
        g, p, e = patched(m, pali, exp)
        m.get_gemma_config, m.PaliGemmaForConditionalGenerationWithPiGemma, m.PiGemmaForCausalLM = g, p, e
    try:
        yield
    finally:
        for m, g, p, e in saved:
            m.get_gemma_config, m.PaliGemmaForConditionalGenerationWithPiGemma, m.PiGemmaForCausalLM = g, p, e


# ----------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------


def versions() -> dict:
    import numpy
    import safetensors
    import tokenizers
    import torch
    import transformers
    from importlib.metadata import version as pkg_version

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lerobot": pkg_version("lerobot"),
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": numpy.__version__,
    }


def policy_classes(family: str):
    if family == "pi0":
        from lerobot.policies.pi0.configuration_pi0 import PI0Config
        from lerobot.policies.pi0.modeling_pi0 import PI0Policy
        from lerobot.policies.pi0.processor_pi0 import make_pi0_pre_post_processors

        return PI0Config, PI0Policy, make_pi0_pre_post_processors
    if family == "pi05":
        from lerobot.policies.pi05.configuration_pi05 import PI05Config
        from lerobot.policies.pi05.modeling_pi05 import PI05Policy
        from lerobot.policies.pi05.processor_pi05 import make_pi05_pre_post_processors

        return PI05Config, PI05Policy, make_pi05_pre_post_processors
    raise ValueError(family)


def randomize_(policy, seed: int) -> None:
    """Re-draw every parameter so that activations stay O(1) and every term matters.

    Gemma RMSNorm weights act as (1 + w) and are drawn around 0; SigLIP LayerNorm weights around 1; the
    pi0.5 adaRMS `dense` layers (zero-initialised by LeRobot) get small random weights so scale, shift and
    gate are all non-trivial. Token embeddings get std 1/sqrt(width) (Gemma scales them by sqrt(width)).
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            shape = p.shape
            if name.endswith("dense.weight"):  # adaRMS modulation [3W, W]
                val = torch.randn(shape, generator=g) / math.sqrt(shape[1])
            elif name.endswith("dense.bias"):  # -> scale, shift, gate of O(0.5)
                val = 0.5 * torch.randn(shape, generator=g)
            elif p.ndim == 1 and name.endswith("bias"):
                val = 0.1 * torch.randn(shape, generator=g)
            elif p.ndim == 1 and "vision_tower" in name:  # LayerNorm weight
                val = 1.0 + 0.2 * torch.randn(shape, generator=g)
            elif p.ndim == 1:  # Gemma RMSNorm weight, used as (1 + w)
                val = 0.2 * torch.randn(shape, generator=g)
            elif "embed_tokens" in name or "lm_head" in name:
                val = torch.randn(shape, generator=g) / math.sqrt(shape[-1])
            elif "position_embedding" in name:
                val = 0.5 * torch.randn(shape, generator=g)
            else:
                fan_in = p[0].numel()
                val = torch.randn(shape, generator=g) / math.sqrt(fan_in)
            p.copy_(val.to(p.dtype))
        # PaliGemma ties lm_head to embed_tokens; LeRobot's module swap leaves two parameters, and
        # PI0Policy.from_pretrained copies lm_head.weight into embed_tokens.weight when loading (key order then
        # decides which wins). Keep them identical so that does not matter.
        pali = policy.model.paligemma_with_expert.paligemma
        pali.lm_head.weight.copy_(pali.model.language_model.embed_tokens.weight)


def make_stats(spec: CaseSpec) -> dict:
    """LeRobot-format dataset stats computed from a synthetic per-dim affine-Gaussian data set."""
    import numpy as np

    rng = np.random.default_rng(spec.seed + 7)
    n = 1000

    def feature(dim: int):
        mean = rng.normal(0.0, 0.8, size=dim)
        std = rng.uniform(0.5, 2.0, size=dim)
        skew = rng.uniform(-0.5, 0.5, size=dim)
        z = rng.standard_normal((n, dim))
        data = mean + std * (z + skew * (z**2 - 1.0))
        return stats_of(data)

    stats = {"observation.state": feature(spec.state_dim), "action": feature(spec.action_dim)}
    if spec.camera_stats:
        for cam in spec.cameras:
            data = rng.uniform(0.0, 1.0, size=(n, 3)) * rng.uniform(0.5, 1.0, size=3)
            s = stats_of(data)
            stats[f"observation.images.{cam}"] = {
                k: (v if k == "count" else v.reshape(3, 1, 1)) for k, v in s.items()
            }
    return stats


def stats_of(data):
    import numpy as np

    out = {
        "min": data.min(axis=0),
        "max": data.max(axis=0),
        "mean": data.mean(axis=0),
        "std": data.std(axis=0),
        "count": np.array([data.shape[0]], dtype=np.int64),
    }
    for q in (0.01, 0.10, 0.50, 0.90, 0.99):
        out[f"q{int(round(q * 100)):02d}"] = np.quantile(data, q, axis=0)
    return {k: (v if k == "count" else v.astype(np.float32)) for k, v in out.items()}


def make_frame(h: int, w: int, seed: int):
    """uint8 HWC frame: smooth gradients plus noise (so resampling is exercised on structured data)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    phase = rng.uniform(0, 2 * np.pi, size=3)
    base = np.stack([yy, xx, 0.5 + 0.5 * np.sin(6 * (yy + xx) + phase[2])], axis=-1) * 200.0
    noise = rng.normal(0.0, 25.0, size=(h, w, 3))
    return np.clip(base + noise + 20.0, 0, 255).astype(np.uint8)


def file_tree_sizes(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def build_config(spec: CaseSpec):
    from lerobot.configs.types import FeatureType, PolicyFeature

    config_cls, _, _ = policy_classes(spec.family)
    r = spec.image_resolution
    input_features = {
        f"observation.images.{cam}": PolicyFeature(type=FeatureType.VISUAL, shape=(3, r, r)) for cam in spec.cameras
    }
    input_features["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(spec.state_dim,))
    output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(spec.action_dim,))}
    kwargs = {}
    if spec.tokenizer_max_length is not None:
        kwargs["tokenizer_max_length"] = spec.tokenizer_max_length
    return config_cls(
        input_features=input_features,
        output_features=output_features,
        device="cpu",
        dtype=spec.dtype,
        chunk_size=spec.chunk_size,
        n_action_steps=spec.n_action_steps or spec.chunk_size,
        num_inference_steps=spec.num_steps,
        max_state_dim=spec.max_state_dim,
        max_action_dim=spec.max_action_dim,
        image_resolution=(r, r),
        empty_cameras=spec.empty_cameras,
        push_to_hub=False,
        **kwargs,
    )


def u8(x):
    import torch

    return x.detach().clone().to(torch.uint8)


def f32(x):
    import torch

    return x.detach().clone().to(torch.float32)


def cache_layers(cache) -> list[tuple]:
    """(keys, values) per layer of a transformers DynamicCache."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return [(k, v) for k, v, *_ in cache]


# ----------------------------------------------------------------------------------------------------------
# Recording one sample
# ----------------------------------------------------------------------------------------------------------


def run_sample(policy, pre, post, spec: CaseSpec, sample: Sample) -> tuple[dict, dict]:
    """Run LeRobot's inference path once, capturing intermediates. Returns (tensors, info)."""
    import numpy as np
    import torch
    from lerobot.policies.utils import prepare_observation_for_inference

    t: dict[str, torch.Tensor] = {}
    info: dict = {"task": sample.task}
    present = [c for c in spec.cameras if c in sample.frames]
    missing = [c for c in spec.cameras if c not in sample.frames] + [
        f"empty_camera_{i}" for i in range(spec.empty_cameras)
    ]
    info["cameras_present"] = present
    info["cameras_missing"] = missing
    info["frames"] = {c: list(sample.frames[c]) for c in present}
    info["image_order"] = present + missing  # the order LeRobot stacks them in the prefix

    raw = {}
    for i, cam in enumerate(spec.cameras):
        if cam not in sample.frames:
            continue
        h, w = sample.frames[cam]
        frame = make_frame(h, w, sample.seed * 10 + i)
        raw[f"observation.images.{cam}"] = frame
        t[f"input.image.{cam}"] = torch.from_numpy(frame.copy())
    g = torch.Generator().manual_seed(sample.seed)
    stats_mean = pre_stats(pre)["observation.state"]
    state = stats_mean["mean"] + stats_mean["std"] * torch.randn(spec.state_dim, generator=g)
    for idx, val in sample.state_override.items():
        state[idx] = val
    state = state.to(torch.float32).numpy()
    raw["observation.state"] = state
    t["input.state"] = torch.from_numpy(state.copy())
    noise = torch.randn(1, spec.chunk_size, spec.max_action_dim, generator=g, dtype=torch.float32)
    t["noise"] = noise.clone()

    tok_step = next(s for s in pre.steps if type(s).__name__ == "TokenizerProcessorStep")
    cap: dict = {"prompts": None}
    orig_tok = tok_step._tokenize_text

    def tokenize_text(text):
        cap["prompts"] = list(text) if isinstance(text, list) else [text]
        return orig_tok(text)

    tok_step._tokenize_text = tokenize_text
    try:
        obs = prepare_observation_for_inference({k: v.copy() for k, v in raw.items()}, torch.device("cpu"),
                                                sample.task)
        batch = pre(obs)
    finally:
        del tok_step._tokenize_text
    prompt = cap["prompts"][0]
    info["prompt"] = prompt
    t["pre.lang_tokens"] = batch["observation.language.tokens"].clone().to(torch.int64)
    t["pre.lang_mask"] = u8(batch["observation.language.attention_mask"])
    t["pre.state_norm"] = f32(batch["observation.state"])
    ids = t["pre.lang_tokens"][0].tolist()
    info["num_valid_lang_tokens"] = int(t["pre.lang_mask"].sum())
    info["decoded_tokens"] = tok_step.input_tokenizer.convert_ids_to_tokens(ids)
    full_len = len(tok_step.input_tokenizer(prompt)["input_ids"])
    info["untruncated_num_tokens"] = full_len
    info["truncated"] = full_len > len(ids)
    if spec.family == "pi05":
        m = re.search(r"State: ([-0-9 ]*);", prompt)
        bins = [int(x) for x in m.group(1).split()]
        expect = np.digitize(t["pre.state_norm"][0].numpy(), bins=np.linspace(-1, 1, 256 + 1)[:-1]) - 1
        assert bins == expect.tolist(), (bins, expect)
        info["state_bins"] = bins
        t["pre.state_bins"] = torch.tensor(bins, dtype=torch.int64)

    model = policy.model
    pwe = model.paligemma_with_expert
    cap.update({"images": None, "vision": [], "prefix": None, "fill": None, "suffix": [], "steps": []})
    names = {"policy": ["_preprocess_images"], "model": ["embed_prefix", "embed_suffix", "denoise_step",
                                                         "sample_actions"], "pwe": ["embed_image", "forward"]}
    objs = {"policy": policy, "model": model, "pwe": pwe}
    orig = {(o, n): getattr(objs[o], n) for o, ns in names.items() for n in ns}

    def preprocess_images(batch_):
        out = orig[("policy", "_preprocess_images")](batch_)
        cap["images"] = ([x.detach().clone() for x in out[0]], [x.detach().clone() for x in out[1]])
        return out

    def embed_image(image):
        out = orig[("pwe", "embed_image")](image)
        cap["vision"].append(out.detach().clone())
        return out

    def embed_prefix(*a, **k):
        out = orig[("model", "embed_prefix")](*a, **k)
        cap["prefix"] = tuple(x.detach().clone() for x in out)
        return out

    def embed_suffix(*a, **k):
        out = orig[("model", "embed_suffix")](*a, **k)
        cap["suffix"].append(tuple(None if x is None else x.detach().clone() for x in out))
        return out

    def pwe_forward(*a, **k):
        out = orig[("pwe", "forward")](*a, **k)
        embeds = k["inputs_embeds"]
        if embeds[1] is None:  # prefix fill
            cap["fill"] = {
                "attention_mask": k["attention_mask"].detach().clone(),
                "position_ids": k["position_ids"].detach().clone(),
                "kv": [(kk.detach().clone(), vv.detach().clone()) for kk, vv in cache_layers(out[1])],
            }
        elif "suffix_attn" not in cap:
            cap["suffix_attn"] = k["attention_mask"].detach().clone()
            cap["suffix_pos"] = k["position_ids"].detach().clone()
        return out

    def denoise_step(**k):
        x_in = k["x_t"].detach().clone()
        v = orig[("model", "denoise_step")](**k)
        cap["steps"].append((x_in, k["timestep"].detach().clone(), v.detach().clone()))
        return v

    def sample_actions(*a, **k):
        out = orig[("model", "sample_actions")](*a, **k)
        cap["x0_full"] = out.detach().clone()
        return out

    wrappers = {("policy", "_preprocess_images"): preprocess_images, ("pwe", "embed_image"): embed_image,
                ("model", "embed_prefix"): embed_prefix, ("model", "embed_suffix"): embed_suffix,
                ("pwe", "forward"): pwe_forward, ("model", "denoise_step"): denoise_step,
                ("model", "sample_actions"): sample_actions}
    for (o, n), fn in wrappers.items():
        setattr(objs[o], n, fn)
    try:
        policy.reset()
        with torch.no_grad():
            actions_norm = policy.predict_action_chunk(batch, noise=noise.clone())
            actions = post(actions_norm.clone())
    finally:
        for (o, n), fn in orig.items():
            delattr(objs[o], n)  # the class attribute is visible again
            assert getattr(objs[o], n).__func__ is fn.__func__

    images, masks = cap["images"]
    order = info["image_order"]
    assert len(images) == len(order) == len(cap["vision"])
    for cam, img, m, vis in zip(order, images, masks, cap["vision"], strict=True):
        t[f"pre.image.{cam}"] = f32(img)
        t[f"pre.img_mask.{cam}"] = u8(m)
        t[f"vision.{cam}"] = f32(vis)
    if spec.family == "pi0":
        t["pre.state_padded"] = f32(policy.prepare_state(batch))
    pe, pm, am = cap["prefix"]
    t["prefix.embs"] = f32(pe)
    t["prefix.pad_mask"] = u8(pm)
    t["prefix.att_mask"] = u8(am)
    fill = cap["fill"]
    t["prefix.position_ids"] = fill["position_ids"].to(torch.int64)
    # The 4D additive mask LeRobot fed to the prefix forward must be the documented pad[i] & pad[j] rule.
    assert torch.equal(fill["attention_mask"][:, 0] == 0, pm[:, None, :] & pm[:, :, None])
    for li, (k_, v_) in enumerate(fill["kv"]):
        t[f"kv.{li}.k"] = f32(k_)
        t[f"kv.{li}.v"] = f32(v_)
    info["kv_source_dtype"] = str(fill["kv"][0][0].dtype).replace("torch.", "")
    info["prefix_embs_source_dtype"] = str(pe.dtype).replace("torch.", "")
    t["suffix.position_ids"] = cap["suffix_pos"].to(torch.int64)
    _, spm, sam, _ = cap["suffix"][0]
    t["suffix.pad_mask"] = u8(spm)
    t["suffix.att_mask"] = u8(sam)
    cum = sam.to(torch.int64).cumsum(1)
    expect_2d = torch.cat([pm[:, None, :].expand(-1, sam.shape[1], -1),
                           (cum[:, None, :] <= cum[:, :, None]) & spm[:, None, :] & spm[:, :, None]], dim=2)
    assert torch.equal(cap["suffix_attn"][:, 0] == 0, expect_2d)
    times = []
    for i, (x_in, ts, v) in enumerate(cap["steps"]):
        t[f"step.{i}.x_t"] = f32(x_in)
        t[f"step.{i}.v_t"] = f32(v)
        times.append(float(ts[0]))
    for i, sfx in enumerate(cap["suffix"]):
        if i == 0:
            t["step.0.suffix_embs"] = f32(sfx[0])
        if spec.family == "pi05":
            t[f"step.{i}.adarms_cond"] = f32(sfx[3])
    t["time"] = torch.tensor(times, dtype=torch.float32)
    t["x0_full"] = f32(cap["x0_full"])
    t["actions_norm"] = f32(actions_norm)
    t["actions"] = f32(actions)
    info["num_prefix_tokens"] = int(pe.shape[1])
    info["num_valid_prefix_tokens"] = int(pm.sum())
    return t, info


def pre_stats(pre) -> dict:
    step = next(s for s in pre.steps if type(s).__name__ == "NormalizerProcessorStep")
    return step._tensor_stats


# ----------------------------------------------------------------------------------------------------------
# Building, saving and recording one case
# ----------------------------------------------------------------------------------------------------------


def describe_weights(path: Path) -> dict:
    from safetensors import safe_open

    out = {}
    with safe_open(str(path), "pt") as f:
        for k in f.keys():
            sl = f.get_slice(k)
            out[k] = {"dtype": sl.get_dtype(), "shape": list(sl.get_shape())}
    return out


def model_dims(spec: CaseSpec) -> dict:
    r = spec.image_resolution
    return {
        "vlm": {"width": spec.vlm.width, "mlp_dim": spec.vlm.mlp, "depth": spec.vlm.depth},
        "expert": {"width": spec.expert.width, "mlp_dim": spec.expert.mlp, "depth": spec.expert.depth},
        "num_heads": spec.num_heads,
        "num_kv_heads": spec.num_kv_heads,
        "head_dim": spec.head_dim,
        "vocab_size": spec.vocab_size,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "hidden_activation": "gelu_pytorch_tanh",
        "vision": {
            "hidden": spec.vision.hidden, "layers": spec.vision.layers, "heads": spec.vision.heads,
            "mlp": spec.vision.mlp, "patch": spec.vision.patch, "image_size": r,
            "layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh",
            "tokens_per_image": (r // spec.vision.patch) ** 2,
            "projection_dim": spec.vlm.width,
        },
        "adarms_expert": spec.family == "pi05",
    }


def make_case(spec: CaseSpec, out_root: Path) -> dict:
    import torch
    from lerobot.policies.factory import make_pre_post_processors
    from safetensors.torch import save_file

    t0 = time.time()
    _, policy_cls, make_pp = policy_classes(spec.family)
    case_dir = out_root / spec.name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    ckpt = case_dir / "checkpoint"

    with tiny_architecture(spec), offline_tokenizer():
        torch.manual_seed(spec.seed)
        config = build_config(spec)
        policy = policy_cls(config)
        randomize_(policy, spec.seed)
        policy.eval()
        stats = make_stats(spec)
        pre, post = make_pp(config, dataset_stats=stats)
        policy.save_pretrained(ckpt)
        pre.save_pretrained(ckpt)
        post.save_pretrained(ckpt)
        shutil.copyfile(TOKENIZER_JSON, ckpt / "tokenizer.json")
        n_params = sum(p.numel() for p in policy.parameters())
        param_dtypes = sorted({str(p.dtype).replace("torch.", "") for p in policy.parameters()})
        del policy, pre, post

        # Reload everything from disk with LeRobot's loaders and record outputs.
        policy = policy_cls.from_pretrained(str(ckpt))
        policy.eval()
        pre, post = make_pre_post_processors(policy.config, pretrained_path=str(ckpt))
        rotary = policy.model.paligemma_with_expert.paligemma.model.language_model.rotary_emb
        rope = {"inv_freq_dtype": str(rotary.inv_freq.dtype).replace("torch.", ""),
                "inv_freq": [float(x) for x in rotary.inv_freq.float()]}
        emb = policy.model.paligemma_with_expert.paligemma.model.language_model.embed_tokens
        embed_scale = {"dtype": str(emb.embed_scale.dtype).replace("torch.", ""),
                       "value_used": float(emb.embed_scale.to(emb.weight.dtype).float())}

        tensors: dict = {}
        samples_info = []
        for k, sample in enumerate(spec.samples):
            t, info = run_sample(policy, pre, post, spec, sample)
            t_again, _ = run_sample(policy, pre, post, spec, sample)
            info["rerun_max_abs_diff_actions"] = float((t_again["actions"] - t["actions"]).abs().max())
            for key, v in t.items():
                tensors[f"s{k}.{key}"] = v.detach().contiguous().cpu()
            samples_info.append({"name": f"s{k}", "seed": sample.seed, **info})
    save_file(tensors, str(case_dir / "reference.safetensors"))

    weights = describe_weights(ckpt / "model.safetensors")
    result = {
        "name": spec.name,
        "family": spec.family,
        "description": spec.description,
        "versions": versions(),
        "generator": GENERATOR,
        "model": model_dims(spec),
        "policy": {
            "type": spec.family,
            "cameras": [f"observation.images.{c}" for c in spec.cameras]
            + [f"observation.images.empty_camera_{i}" for i in range(spec.empty_cameras)],
            "empty_cameras": spec.empty_cameras,
            "image_resolution": [spec.image_resolution, spec.image_resolution],
            "state_dim": spec.state_dim,
            "action_dim": spec.action_dim,
            "max_state_dim": spec.max_state_dim,
            "max_action_dim": spec.max_action_dim,
            "chunk_size": spec.chunk_size,
            "n_action_steps": spec.n_action_steps or spec.chunk_size,
            "num_inference_steps": spec.num_steps,
            "tokenizer_max_length": policy.config.tokenizer_max_length,
            "normalization": {k: v.value for k, v in policy.config.normalization_mapping.items()},
            "dtype": spec.dtype,
            "parameter_dtypes": param_dtypes,
            "num_parameters": n_params,
            "config_image_resolution_type_after_load": type(policy.config.image_resolution).__name__,
        },
        "rope": rope,
        "embed_scale": embed_scale,
        "seed": spec.seed,
        "samples": samples_info,
        "tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                    for k, v in sorted(tensors.items())},
        "weights": weights,
        "notes": notes(spec),
    }
    check, recomputed = verify_case(case_dir, result)
    result["independent_check_max_abs_diff"] = check
    if spec.dtype == "bfloat16":
        # Also record what float32 math over the (bf16-stored) weights gives, for loaders that upcast.
        tensors.update({k: v.contiguous() for k, v in recomputed.items()})
        save_file(tensors, str(case_dir / "reference.safetensors"))
        result["tensors"] = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                             for k, v in sorted(tensors.items())}
    result["files"] = file_tree_sizes(case_dir)
    with open(case_dir / "case.json", "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    result["elapsed_seconds"] = round(time.time() - t0, 2)
    return result


def notes(spec: CaseSpec) -> list[str]:
    n = [
        "Images: input.image.* are uint8 HWC; prepare_observation_for_inference makes float32 /255 CHW with a "
        "batch dim; VISUAL features are IDENTITY-normalised; _preprocess_images resizes with "
        "resize_with_pad_torch (bilinear, align_corners=False, no antialias, clamp [0,1], centered pad with 0 "
        "in [0,1] space, i.e. -1 after the mapping) and maps x*2-1 (pre.image.*, BCHW). Missing cameras (in "
        "config order, after all present ones) become all -1 images with mask 0 (their prefix tokens are "
        "padding).",
        "Masks are uint8 (1 = true). Token ids, positions, bins are int64. All float tensors are stored as "
        "float32 (bf16 values are converted exactly; case.json samples[*].kv_source_dtype says what LeRobot "
        "held).",
        "vision.<cam> = multi_modal_projector output (no sqrt scaling; get_image_features pooler_output); "
        "prefix.embs = [vision tokens of each camera in image_order] + [embed_tokens(lang) * sqrt(width) (scale "
        "cast to the embedding dtype)]; prefix.att_mask all 0 (bidirectional); prefix.position_ids = "
        "cumsum(pad_mask) - 1; the prefix attention mask (not stored) is allowed[b,i,j] = pad[i] & pad[j] "
        "(additive 0 / -2.3819763e38).",
        "kv.L.k / kv.L.v: the prefix K/V of VLM layer L after the prefix forward (transformers DynamicCache "
        "layout [B, num_kv_heads, P, head_dim], keys post-RoPE, values as projected). Padding positions are "
        "included (they are computed, then masked).",
        "step.K.x_t is the input of Euler step K, step.K.v_t its velocity, time[K] = 1 + K*(-1/N) in float32; "
        "x_{K+1} = x_K + (-1/N) * v_K; x0_full = final x (max_action_dim wide); actions_norm = "
        "x0_full[..., :action_dim]; actions = postprocessor(actions_norm).",
        "suffix.position_ids = sum(prefix pad) + cumsum(suffix pad) - 1 (same every step); the suffix "
        "attention mask (not stored) is [B, S, P+S] = [prefix pad broadcast | make_att_2d_masks(suffix.pad_mask, "
        "suffix.att_mask)] with make_att_2d_masks: c = cumsum(att); allowed[i,j] = c[j] <= c[i] & pad[i] & "
        "pad[j].",
    ]
    if spec.dtype == "bfloat16":
        n.append("bf16 (LeRobot on CPU): all gemma/expert linear weights and embed_tokens/lm_head are bf16; vision "
                 "tower, projector, every *_layernorm (incl. pi05 adaRMS dense) and *.norm stay f32; the policy-level "
                 "projections (state_proj, action_in/out_proj, *time_mlp_*) are outside PaliGemmaWithExpertModel "
                 "and stay f32. Buffers are cast too: RoPE inv_freq is bf16-rounded (case.json rope.inv_freq) "
                 "and the embedding scale sqrt(width) is applied as a bf16 number (case.json embed_scale). Hidden "
                 "states enter the Gemma stacks as bf16; RMSNorm computes in f32 and casts back to bf16; the "
                 "additive mask is f32, so scores+mask and softmax are f32, probabilities cast to bf16; the expert "
                 "output is cast to f32 before action_out_proj. s*.f32math.* = this script's float32 "
                 "re-implementation over the same (bf16-valued) weights (not LeRobot), for upcasting loaders.")
    if spec.family == "pi0":
        n.append("pi0 suffix = [state_proj(state_padded)] + action_time_mlp_out(silu(action_time_mlp_in("
                 "[action_in_proj(x_t), sin/cos time emb]))); att_mask [1, 1, 0, ...]; state_norm = "
                 "(x - mean) / (std + 1e-8).")
    else:
        n.append("pi05 suffix = action_in_proj(x_t) only (att_mask [1, 0, ...]); adarms_cond = silu(time_mlp_out("
                 "silu(time_mlp_in(sin/cos time emb)))) conditions every expert RMSNorm ([scale, shift, gate] = "
                 "dense(cond); normed*(1+scale)+shift; residual x + y*gate); state_norm = 2*(x - q01)/(q99 - q01) "
                 "- 1 (no clamp); prompt = 'Task: {task.strip() with _ and \\n -> space}, State: {bins};\\n"
                 "Action: ' with bins = digitize(state_norm, linspace(-1,1,257)[:-1]) - 1 (so -1 below -1, "
                 "255 at/above 1-1/128).")
    return n


# ----------------------------------------------------------------------------------------------------------
# Independent re-implementation (plain torch ops on the saved files; no LeRobot / transformers code)
# ----------------------------------------------------------------------------------------------------------


def verify_case(case_dir: Path, case: dict) -> tuple[dict, dict]:
    """Recompute every recorded stage from checkpoint/ + reference inputs with the documented semantics.

    Float32 math throughout (for the bf16 cases this differs from LeRobot's bf16 activations, so the
    difference there is a measure of bf16 rounding, not a bug). Returns (max |diff| per stage, a few of the
    recomputed tensors keyed like the reference).
    """
    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file

    ckpt = case_dir / "checkpoint"
    W = {k: v.to(torch.float32) for k, v in load_file(str(ckpt / "model.safetensors")).items()}
    ref = load_file(str(case_dir / "reference.safetensors"))
    post_cfg = json.loads((ckpt / "policy_postprocessor.json").read_text())
    stats = load_file(str(ckpt / post_cfg["steps"][0]["state_file"]))
    pre_cfg = json.loads((ckpt / "policy_preprocessor.json").read_text())
    norm_file = next(st["state_file"] for st in pre_cfg["steps"] if st["registry_name"] == "normalizer_processor")
    pre_stats_ = load_file(str(ckpt / norm_file))
    cfg = json.loads((ckpt / "config.json").read_text())
    md, pol = case["model"], case["policy"]
    pi05 = cfg["type"] == "pi05"
    R = cfg["image_resolution"][0]
    H, KVH, D = md["num_heads"], md["num_kv_heads"], md["head_dim"]
    A, N, chunk = pol["action_dim"], cfg["num_inference_steps"], cfg["chunk_size"]
    P_ = "model.paligemma_with_expert."
    V_ = P_ + "paligemma.model.vision_tower.vision_model."
    L_ = P_ + "paligemma.model.language_model."
    E_ = P_ + "gemma_expert.model."
    inv_freq = torch.tensor(case["rope"]["inv_freq"], dtype=torch.float32)
    diffs: dict[str, float] = {}
    outs: dict = {}

    def note(name, a, b):
        d = float((a.to(torch.float32) - b.to(torch.float32)).abs().max()) if a.numel() else 0.0
        diffs[name] = max(diffs.get(name, 0.0), d)

    def lin(x, pre, bias=True):
        return F.linear(x, W[pre + ".weight"], W.get(pre + ".bias") if bias else None)

    def gelu(x):
        return F.gelu(x, approximate="tanh")

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * (1.0 + w)

    def ada_rms(x, pre, cond):
        if not pi05 or not pre.startswith(E_):
            return rms(x, W[pre + ".weight"]), None
        scale, shift, gate = lin(cond, pre + ".dense").unsqueeze(1).chunk(3, dim=-1)
        normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
        return normed * (1 + scale) + shift, gate

    def rope(x, pos):  # x [B, h, S, D]
        f = pos[:, :, None].to(torch.float32) * inv_freq[None, None, :]
        emb = torch.cat([f, f], dim=-1)
        cos, sin = emb.cos()[:, None], emb.sin()[:, None]
        x1, x2 = x[..., : D // 2], x[..., D // 2:]
        return x * cos + torch.cat([-x2, x1], dim=-1) * sin

    def siglip(img):  # [1, 3, R, R] in [-1, 1]
        x = F.conv2d(img, W[V_ + "embeddings.patch_embedding.weight"], W[V_ + "embeddings.patch_embedding.bias"],
                     stride=md["vision"]["patch"])
        x = x.flatten(2).transpose(1, 2) + W[V_ + "embeddings.position_embedding.weight"][None]
        heads = md["vision"]["heads"]
        for i in range(md["vision"]["layers"]):
            p = V_ + f"encoder.layers.{i}."
            h = F.layer_norm(x, x.shape[-1:], W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"], 1e-6)
            q, k, v = (lin(h, p + f"self_attn.{n}_proj").unflatten(-1, (heads, -1)).transpose(1, 2)
                       for n in ("q", "k", "v"))
            a = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1) @ v
            x = x + lin(a.transpose(1, 2).flatten(2), p + "self_attn.out_proj")
            h = F.layer_norm(x, x.shape[-1:], W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"], 1e-6)
            x = x + lin(gelu(lin(h, p + "mlp.fc1")), p + "mlp.fc2")
        x = F.layer_norm(x, x.shape[-1:], W[V_ + "post_layernorm.weight"], W[V_ + "post_layernorm.bias"], 1e-6)
        return lin(x, P_ + "paligemma.model.multi_modal_projector.linear")

    def attention(q, k, v, allowed):  # q [B,H,S,D], k/v [B,KVH,T,D], allowed [B,S,T]
        k = k.repeat_interleave(H // KVH, dim=1)
        v = v.repeat_interleave(H // KVH, dim=1)
        s = q @ k.transpose(-1, -2) * D ** -0.5
        s = s + torch.where(allowed[:, None], 0.0, -2.3819763e38)
        return (torch.softmax(s, dim=-1) @ v).transpose(1, 2).flatten(2)

    def layer(x, p, pos, allowed, cond=None, past=None):
        h, g1 = ada_rms(x, p + "input_layernorm", cond)
        q = lin(h, p + "self_attn.q_proj", False).unflatten(-1, (H, D)).transpose(1, 2)
        k = lin(h, p + "self_attn.k_proj", False).unflatten(-1, (KVH, D)).transpose(1, 2)
        v = lin(h, p + "self_attn.v_proj", False).unflatten(-1, (KVH, D)).transpose(1, 2)
        q, k = rope(q, pos), rope(k, pos)
        kk, vv = (k, v) if past is None else (torch.cat([past[0], k], 2), torch.cat([past[1], v], 2))
        o = lin(attention(q, kk, vv, allowed), p + "self_attn.o_proj", False)
        x = x + (o if g1 is None else o * g1)
        h, g2 = ada_rms(x, p + "post_attention_layernorm", cond)
        m = lin(gelu(lin(h, p + "mlp.gate_proj", False)) * lin(h, p + "mlp.up_proj", False), p + "mlp.down_proj",
                False)
        return x + (m if g2 is None else m * g2), (k, v)

    def time_emb(t, dim):
        frac = torch.linspace(0.0, 1.0, dim // 2, dtype=torch.float64)
        period = cfg["min_period"] * (cfg["max_period"] / cfg["min_period"]) ** frac
        x = (1.0 / period * 2 * math.pi)[None] * t.to(torch.float64)[:, None]
        return torch.cat([torch.sin(x), torch.cos(x)], dim=1).to(torch.float32)

    for k_, sample in enumerate(case["samples"]):
        s = f"s{k_}."
        # Preprocessing
        images, masks = [], []
        for cam in sample["image_order"]:
            if cam in sample["cameras_present"]:
                x = ref[s + f"input.image.{cam}"].to(torch.float32)[None] / 255  # [1, H, W, 3]
                x = x.permute(0, 3, 1, 2)
                h0, w0 = x.shape[2:]
                if (h0, w0) != (R, R):
                    ratio = max(w0 / R, h0 / R)
                    rh, rw = int(h0 / ratio), int(w0 / ratio)
                    x = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False).clamp(0, 1)
                    ph, pw = R - rh, R - rw
                    x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=0.0)
                x = x * 2 - 1
                m = torch.ones(1, dtype=torch.bool)
            else:
                x = -torch.ones(1, 3, R, R)
                m = torch.zeros(1, dtype=torch.bool)
            note("pre.image", x, ref[s + f"pre.image.{cam}"])
            images.append(x)
            masks.append(m)
        st = ref[s + "input.state"][None]
        if pi05:
            q01, q99 = pre_stats_["observation.state.q01"], pre_stats_["observation.state.q99"]
            st_norm = 2.0 * (st - q01) / (q99 - q01) - 1.0
            import numpy as np

            bins = np.digitize(st_norm[0].numpy(), np.linspace(-1, 1, 257)[:-1]) - 1
            assert bins.tolist() == ref[s + "pre.state_bins"].tolist()
        else:
            st_norm = (st - pre_stats_["observation.state.mean"]) / (pre_stats_["observation.state.std"] + 1e-8)
        note("pre.state_norm", st_norm, ref[s + "pre.state_norm"])
        # Prefix
        embs, pads = [], []
        for cam, x, m in zip(sample["image_order"], images, masks, strict=True):
            v = siglip(x)
            note("vision", v, ref[s + f"vision.{cam}"])
            embs.append(v)
            pads.append(m[:, None].expand(1, v.shape[1]))
        ids = ref[s + "pre.lang_tokens"]
        embs.append(W[L_ + "embed_tokens.weight"][ids] * case["embed_scale"]["value_used"])
        pads.append(ref[s + "pre.lang_mask"].bool())
        x = torch.cat(embs, 1)
        pad = torch.cat(pads, 1)
        note("prefix.embs", x, ref[s + "prefix.embs"])
        pos = pad.long().cumsum(1) - 1
        note("prefix.position_ids", pos, ref[s + "prefix.position_ids"])
        allowed = pad[:, None, :] & pad[:, :, None]
        kv = []
        for li in range(md["vlm"]["depth"]):
            x, (kk, vv) = layer(x, L_ + f"layers.{li}.", pos, allowed)
            note("kv", kk, ref[s + f"kv.{li}.k"])
            note("kv", vv, ref[s + f"kv.{li}.v"])
            kv.append((kk, vv))
        # Suffix / Euler
        n_suffix = chunk + (0 if pi05 else 1)
        spos = pad.long().sum(1, keepdim=True) + torch.arange(n_suffix)[None]
        note("suffix.position_ids", spos, ref[s + "suffix.position_ids"])
        att = torch.tensor(([] if pi05 else [1]) + [1] + [0] * (chunk - 1))
        cum = att.cumsum(0)
        s_allowed = torch.cat([pad[:, None, :].expand(1, n_suffix, -1), (cum[None, :] <= cum[:, None])[None]], 2)
        x_t = ref[s + "noise"].clone()
        dt = -1.0 / N
        for step in range(N):
            t = torch.tensor([1.0 + step * dt], dtype=torch.float32)
            note("step.x_t", x_t, ref[s + f"step.{step}.x_t"])
            temb = time_emb(t, md["expert"]["width"])
            a_emb = lin(x_t, "model.action_in_proj")
            cond = None
            if pi05:
                cond = F.silu(lin(F.silu(lin(temb, "model.time_mlp_in")), "model.time_mlp_out"))
                note("step.adarms_cond", cond, ref[s + f"step.{step}.adarms_cond"])
                h = a_emb
            else:
                st_pad = F.pad(st_norm, (0, cfg["max_state_dim"] - st_norm.shape[1]))
                at = torch.cat([a_emb, temb[:, None].expand_as(a_emb)], 2)
                at = lin(F.silu(lin(at, "model.action_time_mlp_in")), "model.action_time_mlp_out")
                h = torch.cat([lin(st_pad, "model.state_proj")[:, None], at], 1)
            if step == 0:
                note("step.0.suffix_embs", h, ref[s + "step.0.suffix_embs"])
            for li in range(md["expert"]["depth"]):
                h, _ = layer(h, E_ + f"layers.{li}.", spos, s_allowed, cond, past=kv[li])
            h, _ = ada_rms(h, E_ + "norm", cond)
            v_t = lin(h[:, -chunk:], "model.action_out_proj")
            if step == 0:
                outs[s + "f32math.step.0.v_t"] = v_t.clone()
            note("step.v_t", v_t, ref[s + f"step.{step}.v_t"])
            x_t = x_t + dt * v_t
        note("x0_full", x_t, ref[s + "x0_full"])
        an = x_t[..., :A]
        outs[s + "f32math.actions_norm"] = an.clone()
        note("actions_norm", an, ref[s + "actions_norm"])
        if pi05:
            q01, q99 = stats["action.q01"], stats["action.q99"]
            act = (an + 1.0) * (q99 - q01) / 2.0 + q01
        else:
            act = an * stats["action.std"] + stats["action.mean"]
        note("actions", act, ref[s + "actions"])
        outs[s + "f32math.actions"] = act.clone()
        # Using the recorded actions_norm removes the propagated error: checks the postprocessor alone.
        an_ref = ref[s + "actions_norm"]
        if pi05:
            act2 = (an_ref + 1.0) * (q99 - q01) / 2.0 + q01
        else:
            act2 = an_ref * stats["action.std"] + stats["action.mean"]
        note("postprocessor_only", act2, ref[s + "actions"])
    return {k: float(f"{v:.3g}") for k, v in diffs.items()}, outs


# ----------------------------------------------------------------------------------------------------------
# Full-size checkpoint (no tiny patches)
# ----------------------------------------------------------------------------------------------------------


def make_full_size(out_dir: Path, family: str, dtype: str, init: str) -> dict:
    import torch

    spec = CaseSpec(
        name=out_dir.name,
        family=family,
        description=f"random-weight full-size {family} (gemma_2b + gemma_300m, SigLIP So400m/14, 224 px)",
        cameras=["base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb"],
        state_dim=14,
        action_dim=14,
        samples=[],
        image_resolution=224,
        dtype=dtype,
        seed=7,
    )
    _, policy_cls, make_pp = policy_classes(family)
    t0 = time.time()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    prev = torch.get_default_dtype()
    # Build directly in bf16 (LeRobot then moves the vision path / norms back to f32) to halve peak memory.
    torch.set_default_dtype(torch.bfloat16 if dtype == "bfloat16" else torch.float32)
    try:
        with offline_tokenizer():
            torch.manual_seed(spec.seed)
            config = build_config(spec)
            policy = policy_cls(config)
            torch.set_default_dtype(prev)
            # LeRobot builds in f32: the policy-level projections (outside paligemma_with_expert) stay f32.
            for name, p in policy.model.named_parameters():
                if not name.startswith("paligemma_with_expert."):
                    p.data = p.data.to(torch.float32)
            if init == "random":
                randomize_(policy, spec.seed)
            policy.eval()
            pre, post = make_pp(config, dataset_stats=make_stats(spec))
            policy.save_pretrained(out_dir)
            pre.save_pretrained(out_dir)
            post.save_pretrained(out_dir)
            shutil.copyfile(TOKENIZER_JSON, out_dir / "tokenizer.json")
            n_params = sum(p.numel() for p in policy.parameters())
    finally:
        torch.set_default_dtype(prev)
    return {"dir": str(out_dir), "num_parameters": n_params, "seconds": round(time.time() - t0, 1),
            "files": file_tree_sizes(out_dir)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output root for the small cases")
    ap.add_argument("--only", nargs="*", metavar="CASE", help="case names to (re)generate (others untouched)")
    ap.add_argument("--full-size", type=Path, nargs="?", const=DEFAULT_FULL, metavar="DIR",
                    help=f"write a full-size random checkpoint to DIR (default {DEFAULT_FULL.relative_to(REPO)}) "
                         "instead of the small fixtures")
    ap.add_argument("--full-size-family", default="pi0", choices=["pi0", "pi05"])
    ap.add_argument("--full-size-dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--full-size-init", default="random", choices=["random", "hf"],
                    help="random: this script's O(1)-activation init; hf: LeRobot/transformers init")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    torch.use_deterministic_algorithms(True)
    os.chdir(REPO)

    if args.full_size:
        res = make_full_size(args.full_size.resolve(), args.full_size_family, args.full_size_dtype,
                             args.full_size_init)
        print(json.dumps(res, indent=2))
        return 0

    out_root = args.out.resolve()
    known = [c.name for c in small_cases()]
    unknown = sorted(set(args.only or []) - set(known))
    if unknown:
        ap.error(f"--only: unknown case(s) {', '.join(unknown)}; known: {', '.join(known)}")
    out_root.mkdir(parents=True, exist_ok=True)
    total = 0
    for spec in small_cases():
        if args.only and spec.name not in args.only:
            continue
        res = make_case(spec, out_root)
        size = sum(res["files"].values())
        total += size
        print(json.dumps({"name": spec.name, "bytes": size, "seconds": res["elapsed_seconds"],
                          "params": res["policy"]["num_parameters"],
                          "check": res["independent_check_max_abs_diff"],
                          "samples": [(s["name"], s["num_prefix_tokens"], s["num_valid_lang_tokens"],
                                       s["truncated"], s["rerun_max_abs_diff_actions"]) for s in res["samples"]]}),
              flush=True)
    print("total bytes:", total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
