#!/usr/bin/env python3
"""Make pi0.5 "reason-then-act" (predict_response=True) reference fixtures with opentau 0.14.0's own classes.

Usage (from anywhere; paths are resolved against the repository root; needs the Python 3.10 venv described in
tools/requirements-reason-fixtures.txt):
    .venv310/bin/python tools/make_reason_fixtures.py                   # all cases -> tests/data/pi05_reason/
    .venv310/bin/python tools/make_reason_fixtures.py --only a_one_cam  # selected cases only

Nothing is downloaded (HF_HUB_OFFLINE=1). What is patched, and why (the policy's own forward code runs unchanged):
  * Tokenizer: `PI05Policy.__init__` calls `AutoTokenizer.from_pretrained("google/paligemma-3b-pt-224")`
    (modeling_pi05.py:336). The name `AutoTokenizer` inside `opentau.policies.pi05.modeling_pi05` is replaced by a
    shim that returns the repo's small Gemma-style tokenizer (tests/data/tokenizer/gemma_style.json: <pad>=0,
    <eos>=1, <bos>=2, 958 ids, TemplateProcessing prepends <bos>) for exactly that name (anything else raises).
    opentau then runs `ensure_loc_tokens` on it (appends <loc0000>..<loc1023> as ids 958..1981; they never occur in
    our prompts and the model vocab stays 958, as PaliGemma's does not grow either).
  * FAST processor: `AutoProcessor.from_pretrained("physical-intelligence/fast", trust_remote_code=True)`
    (modeling_pi05.py:338) is replaced (same way, name `AutoProcessor` in modeling_pi05) by a stub object whose
    only attribute is `vocab_size` (16). The predict_response inference path never calls the processor: it is
    used only by `prepare_discrete_actions` in the training `forward`; at construction only its `vocab_size` is
    read to size `discrete_action_embedding` / `da_head` (both unused at inference, kept in the checkpoint).
    `_check_discrete_action_tokenizer_convention` is a fail-open no-op offline.
  * Tiny model: the sizes are hard-coded defaults of `PaliGemmaWithExpertConfig` (paligemma_with_expert.py:176-251),
    which `PI05FlowMatching.__init__` builds with no size arguments (modeling_pi05.py:1306). The name
    `PaliGemmaWithExpertConfig` inside modeling_pi05 is replaced by a factory that builds the original config
    and then shrinks its sub-configs (text: width/mlp/depth/heads 8/kv 1/head_dim 16/vocab 958; SigLIP: hidden
    48, 2 layers, 16 heads, mlp 96, patch 14, image_size = resolution; expert: width = proj_width, adarms_cond_dim
    = proj_width). The saved config.json is the PI05Config only (it never had sizes); real sizes are the tensor
    shapes and case.json["model"].
  * float32 compute: opentau's eager path casts activations to `_preferred_dtype()` = bfloat16 unless
    `torch.onnx.is_in_onnx_export()` (modeling_pi05.py:77, paligemma_with_expert.py:54); the serving scripts
    therefore cast the whole policy to bf16. For float32 references the two module-level `_preferred_dtype`
    functions are replaced by `lambda: torch.float32` -- exactly what they return during ONNX export -- and
    the reloaded policy is cast with `policy.to(torch.float32)` (what scripts/export_to_onnx.py does).

The checkpoint is written by `PI05Policy.save_pretrained` straight after construction + seeded re-draw of all
weights, so it has opentau's natural mixed dtypes (bf16 for PaliGemma and expert layers, f32 for SigLIP
patch/pos embeddings, expert final norm, policy-level projections and normalization stats). References come from
reloading it with `PI05Policy.from_pretrained(ckpt)`, `policy.to(torch.float32)`, `policy.eval()`, then the
public entry point `policy.sample_actions(batch, noise=noise)` (predict_action_chunk raises NotImplementedError
in opentau's pi05; select_action only queues sample_actions' output). Intermediates are captured by wrapping
methods of that same policy instance / forward hooks during that call. An independent pure-torch
re-implementation (no opentau/transformers code) recomputes every stage from the saved files (case.json
"independent_check_max_abs_diff").
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "data" / "pi05_reason"
TOKENIZER_JSON = REPO / "tests" / "data" / "tokenizer" / "gemma_style.json"
HUB_TOKENIZER_NAME = "google/paligemma-3b-pt-224"
FAST_NAME = "physical-intelligence/fast"
FAST_STUB_VOCAB = 16
GENERATOR = "tools/make_reason_fixtures.py"
VOCAB = 958  # len(gemma_style.json) before ensure_loc_tokens: every id is a real token of the tokenizer
PAD_ID, EOS_ID, BOS_ID = 0, 1, 2

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
    heads: int = 16  # PaliGemma's SigLIP head count (not in the tensors; vlart assumes 16)
    mlp: int = 96
    patch: int = 14


@dataclass
class CaseSpec:
    name: str
    description: str
    cameras: list[str]  # config image features, in order (camera0, camera1, ...)
    frames: dict[str, tuple[int, int]]  # present cameras -> raw (H, W) of the uint8 frame
    task: str
    state_dim: int  # real robot dims; the state vector fed is zero-padded to max_state_dim (as opentau's server)
    action_dim: int  # real robot dims (stats are zero-padded beyond it)
    action_feature_dim: int  # output_features["actions"].shape[0]; sample_actions returns this many columns
    max_state_dim: int = 32
    max_action_dim: int = 32
    empty_cameras: int = 0
    image_resolution: int = 56
    chunk_size: int = 50
    n_action_steps: int | None = None
    num_steps: int = 10
    prompt_max_length: int = 256
    response_max_length: int = 52
    norm_mode: str = "MEAN_STD"  # for STATE and ACTION (opentau default MEAN_STD)
    state_override: dict[int, float] = field(default_factory=dict)
    force_eos_at: int | None = None  # response index (0 = the fed <bos>) that must become <eos>
    vlm: Tower = field(default_factory=lambda: Tower(64, 128, 2))
    expert: Tower = field(default_factory=lambda: Tower(32, 64, 2))
    vision: VisionSpec = field(default_factory=VisionSpec)
    num_heads: int = 8
    num_kv_heads: int = 1
    head_dim: int = 16
    seed: int = 0


def cases() -> list[CaseSpec]:
    return [
        CaseSpec(
            name="a_one_cam",
            description="1 camera (camera0) 56x56 == resolution (no resize), opentau defaults everywhere it is "
            "affordable: prompt_max_length 256, response_max_length 52, chunk 50, 10 steps, max_state_dim = "
            "max_action_dim = 32 (real robot 6/6, stats zero-padded, action feature 32 wide as opentau's "
            "dataset mixture declares it), MEAN_STD, VLM 64/128 x2, expert 32/64 x2, float32. Greedy decode "
            "runs the full 52 tokens without <eos>.",
            cameras=["camera0"],
            frames={"camera0": (56, 56)},
            task="pick up the red cube and place it in the box",
            state_dim=6,
            action_dim=6,
            action_feature_dim=32,
            seed=3051,
        ),
        CaseSpec(
            name="b_two_cam",
            description="2 cameras (camera0 48x64 -> bilinear resize to 42x56 + 14 rows of padding on TOP, camera1 "
            "64x44 -> 56x38 + 18 columns of padding on the LEFT) + empty_cameras=1 (empty_camera_0 not in the "
            "batch: an all -1 image with mask 0), QUANTILE normalization for state and actions, max_state_dim 12 "
            "(real 9; padded dims normalize to ~-1e-6 -> bin 127), action feature 7 with max_action_dim 12 "
            "(sample_actions unpads to 7), raw state dims 1 / 4 far outside [q01, q99] (clamped -> bins 255 / 0), "
            "prompt_max_length 64, response_max_length 12, chunk 16, n_action_steps 8, 4 steps.",
            cameras=["camera0", "camera1"],
            frames={"camera0": (48, 64), "camera1": (64, 44)},
            task="Stack the green cups",
            state_dim=9,
            action_dim=7,
            action_feature_dim=7,
            max_state_dim=12,
            max_action_dim=12,
            empty_cameras=1,
            chunk_size=16,
            n_action_steps=8,
            num_steps=4,
            prompt_max_length=64,
            response_max_length=12,
            norm_mode="QUANTILE",
            state_override={1: 50.0, 4: -50.0},
            seed=3022,
        ),
        CaseSpec(
            name="c_early_eos",
            description="forced early <eos>: after the seeded re-draw, the tied embed_tokens/lm_head row of <eos> "
            "(id 1) is set (weights only) so that greedy decoding predicts <eos> at response index 4 "
            "([<bos>, t1, t2, t3, <eos>]); opentau then feeds <pad> (id 0) with pad mask 0 for indices 5..11, which "
            "the action expert must not attend to. 1 camera 40x56 frame (resize to 40x56 -> 40 rows + 16 rows "
            "padding on top), max_state_dim = max_action_dim = 8 (real 8), MEAN_STD, prompt_max_length 48, "
            "response_max_length 12, chunk 10, 5 steps.",
            cameras=["camera0"],
            frames={"camera0": (40, 56)},
            task="open the top drawer",
            state_dim=8,
            action_dim=8,
            action_feature_dim=8,
            max_state_dim=8,
            max_action_dim=8,
            chunk_size=10,
            num_steps=5,
            prompt_max_length=48,
            response_max_length=12,
            force_eos_at=4,
            seed=3003,
        ),
    ]


# ----------------------------------------------------------------------------------------------------------
# Offline / tiny / float32 patches
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


class FastProcessorStub:
    """Stands in for the FAST action processor: the predict_response inference path never calls it."""

    vocab_size = FAST_STUB_VOCAB

    def __call__(self, *a, **k):
        raise RuntimeError("offline fixtures: the FAST processor stub cannot tokenize (training path only)")


@contextlib.contextmanager
def offline_hub_names():
    from opentau.policies.pi05 import modeling_pi05 as mp

    orig_tok, orig_proc = mp.AutoTokenizer, mp.AutoProcessor

    class _Tok:
        @staticmethod
        def from_pretrained(name, *a, **k):
            if name != HUB_TOKENIZER_NAME:
                raise RuntimeError(f"offline fixtures: unexpected tokenizer {name!r}")
            return local_tokenizer()

    class _Proc:
        @staticmethod
        def from_pretrained(name, *a, **k):
            if name != FAST_NAME:
                raise RuntimeError(f"offline fixtures: unexpected processor {name!r}")
            return FastProcessorStub()

    mp.AutoTokenizer, mp.AutoProcessor = _Tok, _Proc
    try:
        yield
    finally:
        mp.AutoTokenizer, mp.AutoProcessor = orig_tok, orig_proc


@contextlib.contextmanager
def tiny_architecture(spec: CaseSpec):
    from opentau.policies.pi05 import modeling_pi05 as mp

    orig = mp.PaliGemmaWithExpertConfig

    def factory(*a, **k):
        c = orig(*a, **k)
        pc = c.paligemma_config
        tc, vc, ec = pc.text_config, pc.vision_config, c.gemma_expert_config
        r, v = spec.image_resolution, spec.vision
        tc.hidden_size, tc.intermediate_size, tc.num_hidden_layers = spec.vlm.width, spec.vlm.mlp, spec.vlm.depth
        tc.num_attention_heads, tc.num_key_value_heads, tc.head_dim = spec.num_heads, spec.num_kv_heads, spec.head_dim
        tc.vocab_size = VOCAB
        tc.num_image_tokens = (r // v.patch) ** 2
        vc.hidden_size, vc.intermediate_size, vc.num_hidden_layers = v.hidden, v.mlp, v.layers
        vc.num_attention_heads, vc.patch_size, vc.image_size = v.heads, v.patch, r
        vc.projection_dim = spec.vlm.width
        pc.projection_dim = spec.vlm.width
        pc.hidden_size = spec.vlm.width
        pc.image_token_index = VOCAB
        ec.hidden_size, ec.intermediate_size, ec.num_hidden_layers = (spec.expert.width, spec.expert.mlp,
                                                                       spec.expert.depth)
        ec.num_attention_heads, ec.num_key_value_heads, ec.head_dim = spec.num_heads, spec.num_kv_heads, spec.head_dim
        ec.vocab_size = VOCAB
        ec.adarms_cond_dim = spec.expert.width
        return c

    mp.PaliGemmaWithExpertConfig = factory
    try:
        yield
    finally:
        mp.PaliGemmaWithExpertConfig = orig


@contextlib.contextmanager
def float32_compute():
    """`_preferred_dtype()` -> float32 in both pi05 modules (what it returns under ONNX export)."""
    import torch
    from opentau.policies.pi05 import modeling_pi05 as mp
    from opentau.policies.pi05 import paligemma_with_expert as pw

    saved = (mp._preferred_dtype, pw._preferred_dtype)
    mp._preferred_dtype = pw._preferred_dtype = lambda: torch.float32
    try:
        yield
    finally:
        mp._preferred_dtype, pw._preferred_dtype = saved


# ----------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------


def versions() -> dict:
    from importlib.metadata import version as pkg_version

    import numpy
    import safetensors
    import tokenizers
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "opentau": pkg_version("opentau"),
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": numpy.__version__,
    }


def u8(x):
    import torch

    return x.detach().clone().to(torch.uint8)


def f32(x):
    import torch

    return x.detach().clone().to(torch.float32)


def i64(x):
    import torch

    return x.detach().clone().to(torch.int64)


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


def make_stats(spec: CaseSpec) -> dict:
    """opentau-format stats ({"state": {...}, "actions": {...}}) from a synthetic affine-Gaussian data set,
    zero-padded beyond the real dims the way opentau's dataset mixture pads them (dataset_mixture.py:700-711)."""
    import numpy as np

    rng = np.random.default_rng(spec.seed + 7)
    n = 1000

    def feature(dim: int, padded: int):
        mean = rng.normal(0.0, 0.8, size=dim)
        std = rng.uniform(0.5, 2.0, size=dim)
        skew = rng.uniform(-0.5, 0.5, size=dim)
        z = rng.standard_normal((n, dim))
        s = stats_of(mean + std * (z + skew * (z**2 - 1.0)))
        return {k: (v if k == "count" else np.pad(v, (0, padded - dim)).astype(np.float32)) for k, v in s.items()}

    return {"state": feature(spec.state_dim, spec.max_state_dim),
            "actions": feature(spec.action_dim, spec.action_feature_dim)}


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
    from opentau.configs.types import FeatureType, NormalizationMode, PolicyFeature
    from opentau.policies.pi05.configuration_pi05 import PI05Config

    r = spec.image_resolution
    inputs = {cam: PolicyFeature(type=FeatureType.VISUAL, shape=(3, r, r)) for cam in spec.cameras}
    inputs["state"] = PolicyFeature(type=FeatureType.STATE, shape=(spec.max_state_dim,))
    outputs = {"actions": PolicyFeature(type=FeatureType.ACTION, shape=(spec.action_feature_dim,))}
    mode = NormalizationMode[spec.norm_mode]
    return PI05Config(
        input_features=inputs,
        output_features=outputs,
        normalization_mapping={"VISUAL": NormalizationMode.IDENTITY, "STATE": mode, "ACTION": mode},
        device="cpu",
        predict_response=True,
        state_type="discrete",
        use_torch_compile=False,
        resize_imgs_with_padding=(r, r),
        empty_cameras=spec.empty_cameras,
        prompt_max_length=spec.prompt_max_length,
        response_max_length=spec.response_max_length,
        chunk_size=spec.chunk_size,
        n_action_steps=spec.n_action_steps or spec.chunk_size,
        num_steps=spec.num_steps,
        max_state_dim=spec.max_state_dim,
        max_action_dim=spec.max_action_dim,
        proj_width=spec.expert.width,
        attention_implementation="eager",
        dataset_names=["fixture"],
    )


def randomize_(policy, seed: int) -> None:
    """Re-draw every weight (not the normalization stats) so activations stay O(1) and every term matters.

    Gemma RMSNorm weights act as (1 + w) and are drawn around 0; SigLIP LayerNorm weights around 1; the adaRMS
    `dense` layers (zero-initialised by opentau) get small random weights so scale, shift and gate are all
    non-trivial. Token embeddings get std 1/sqrt(width) (opentau scales them by sqrt(width)). Values are
    written into opentau's (mostly bf16) parameters, i.e. rounded to their storage dtype.

    Greedy decoding with tied embeddings degenerates into repeating the fed token (the residual stream still
    holds its embedding, and lm_head = embed_tokens) unless the layer outputs dominate it; so the VLM o_proj /
    down_proj get 3x the usual scale and the final VLM norm gain (1 + w) is drawn around 0 with std 4, which also
    spreads the logits (bigger top-1/top-2 margins; case.json samples[0].min_top2_logit_margin).
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "normalize" in name:
                continue
            shape = p.shape
            if name.endswith("dense.weight"):  # adaRMS modulation [3W, W]
                val = torch.randn(shape, generator=g) / math.sqrt(shape[1])
            elif name.endswith("dense.bias"):  # -> scale, shift, gate of O(0.5)
                val = 0.5 * torch.randn(shape, generator=g)
            elif name.endswith("language_model.norm.weight"):  # final VLM norm, (1 + w) ~ N(0, 4^2), see below
                val = -1.0 + 4.0 * torch.randn(shape, generator=g)
            elif "language_model.layers" in name and (name.endswith("o_proj.weight")
                                                      or name.endswith("down_proj.weight")):
                val = 3.0 * torch.randn(shape, generator=g) / math.sqrt(shape[1])
            elif p.ndim == 1 and name.endswith("bias"):
                val = 0.1 * torch.randn(shape, generator=g)
            elif p.ndim == 1 and "vision_tower" in name:  # LayerNorm weight
                val = 1.0 + 0.2 * torch.randn(shape, generator=g)
            elif p.ndim == 1:  # Gemma RMSNorm weight, used as (1 + w)
                val = 0.2 * torch.randn(shape, generator=g)
            elif "embed_tokens" in name or "lm_head" in name or "discrete_action_embedding" in name:
                val = torch.randn(shape, generator=g) / math.sqrt(shape[-1])
            elif "position_embedding" in name:
                val = 0.5 * torch.randn(shape, generator=g)
            else:
                fan_in = p[0].numel()
                val = torch.randn(shape, generator=g) / math.sqrt(fan_in)
            p.copy_(val.to(p.dtype))
    pali = policy.model.paligemma_with_expert.paligemma
    assert pali.lm_head.weight.data_ptr() == pali.model.language_model.embed_tokens.weight.data_ptr(), "untied"


# ----------------------------------------------------------------------------------------------------------
# Inputs and one recorded run
# ----------------------------------------------------------------------------------------------------------


def make_inputs(spec: CaseSpec, stats: dict) -> dict:
    """Raw inputs: uint8 HWC frames, raw state (real dims), noise (B, chunk, max_action_dim)."""
    import numpy as np
    import torch

    g = torch.Generator().manual_seed(spec.seed + 100)
    frames = {}
    for i, cam in enumerate(spec.cameras):
        if cam in spec.frames:
            h, w = spec.frames[cam]
            frames[cam] = make_frame(h, w, spec.seed * 10 + i)
    mean = torch.from_numpy(stats["state"]["mean"][: spec.state_dim])
    std = torch.from_numpy(stats["state"]["std"][: spec.state_dim])
    state = (mean + std * torch.randn(spec.state_dim, generator=g)).to(torch.float32)
    for idx, val in spec.state_override.items():
        state[idx] = val
    noise = torch.randn(1, spec.chunk_size, spec.max_action_dim, generator=g, dtype=torch.float32)
    return {"frames": frames, "state": state.numpy().astype(np.float32), "noise": noise, "task": spec.task}


def observation_batch(spec: CaseSpec, inputs: dict) -> dict:
    """What opentau's gRPC server builds (scripts/grpc/server.py:_prepare_observation / _decode_image):
    float32 CHW in [0, 1] (uint8 / 255) with a batch dim per present camera, state zero-padded to max_state_dim,
    prompt as a 1-element list. (The server also PIL-resizes to cfg.resolution first; here frames go in at their
    raw size so the policy's own resize_with_pad is exercised.)"""
    import numpy as np
    import torch

    batch = {}
    for cam, frame in inputs["frames"].items():
        batch[cam] = torch.from_numpy(frame.astype(np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0).contiguous()
    st = np.zeros(spec.max_state_dim, dtype=np.float32)
    st[: spec.state_dim] = inputs["state"]
    batch["state"] = torch.from_numpy(st)[None]
    batch["prompt"] = [inputs["task"]]
    return batch


def run_policy(policy, spec: CaseSpec, inputs: dict) -> tuple[dict, dict]:
    """policy.sample_actions(batch, noise=...) once, capturing intermediates. Returns (tensors, info)."""
    import torch

    t: dict[str, torch.Tensor] = {}
    info: dict = {}
    batch = observation_batch(spec, inputs)
    for cam, frame in inputs["frames"].items():
        t[f"input.image.{cam}"] = torch.from_numpy(frame.copy())
        t[f"input.image_f01.{cam}"] = batch[cam].clone()
    t["input.state"] = torch.from_numpy(inputs["state"].copy())
    t["input.state_padded"] = batch["state"].clone()
    t["noise"] = inputs["noise"].clone()

    model = policy.model
    pwe = model.paligemma_with_expert
    tok = policy.language_tokenizer
    lm_head = pwe.paligemma.lm_head
    cap: dict = {"prompts": None, "vision": [], "pwe_calls": [], "decode_out": [], "lm_in": [], "lm_out": [],
                 "suffix": [], "steps": []}

    names = {"policy": ["prepare_images", "prepare_language", "prepare_discrete_state"],
             "model": ["embed_prefix", "embed_suffix", "denoise_step", "infer_response", "sample_actions"],
             "pwe": ["embed_image", "forward"], "tok": ["__call__"]}
    objs = {"policy": policy, "model": model, "pwe": pwe, "tok": tok}
    orig = {(o, n): getattr(objs[o], n) for o, ns in names.items() for n in ns}

    def prepare_images(b):
        out = orig[("policy", "prepare_images")](b)
        cap["images"] = ([x.detach().clone() for x in out[0]], [x.detach().clone() for x in out[1]])
        return out

    def prepare_language(b):
        cap["state_norm"] = b["state"].detach().clone()
        out = orig[("policy", "prepare_language")](b)
        cap["lang"] = tuple(x.detach().clone() for x in out)
        return out

    def prepare_discrete_state(b):
        out = orig[("policy", "prepare_discrete_state")](b)
        cap["state_str"] = list(out)
        return out

    def tok_call(text, *a, **k):
        if cap["prompts"] is None:
            cap["prompts"] = list(text)
            cap["tok_kwargs"] = {kk: (vv if isinstance(vv, (int, str, bool)) else str(vv)) for kk, vv in k.items()}
        return orig[("tok", "__call__")](text, *a, **k)

    def embed_image(image):
        out = orig[("pwe", "embed_image")](image)
        cap["vision"].append(out.detach().clone())
        return out

    def embed_prefix(*a, **k):
        out = orig[("model", "embed_prefix")](*a, **k)
        cap["prefix"] = tuple(x.detach().clone() for x in out)
        return out

    def pwe_forward(*a, **k):
        out = orig[("pwe", "forward")](*a, **k)
        embeds = k["inputs_embeds"]
        rec = {"attention_mask": k["attention_mask"].detach().clone(),
               "position_ids": k["position_ids"].detach().clone(),
               "kind": "prefix" if k.get("past_key_values") is None else ("decode" if embeds[0] is not None
                                                                          else "expert")}
        if rec["kind"] in ("prefix", "decode"):
            rec["out"] = out[0][0].detach().clone()
            rec["in"] = embeds[0].detach().clone()
            rec["kv"] = {li: (v["key_states"].detach().clone(), v["value_states"].detach().clone())
                         for li, v in out[1].items()}
        cap["pwe_calls"].append(rec)
        return out

    def infer_response(*a, **k):
        out = orig[("model", "infer_response")](*a, **k)
        cap["response"] = out[5].detach().clone()
        cap["final_pad"] = out[2].detach().clone()
        cap["final_att"] = out[3].detach().clone()
        cap["final_embs"] = out[1].detach().clone()
        return out

    def embed_suffix(*a, **k):
        out = orig[("model", "embed_suffix")](*a, **k)
        cap["suffix"].append(tuple(x.detach().clone() for x in out))
        return out

    def denoise_step(*a, **k):
        args = list(a)
        x_in = (k["x_t"] if "x_t" in k else args[2]).detach().clone()
        ts = (k["time"] if "time" in k else args[3]).detach().clone()
        v = orig[("model", "denoise_step")](*a, **k)
        cap["steps"].append((x_in, ts, v.detach().clone()))
        return v

    def sample_actions(*a, **k):
        out = orig[("model", "sample_actions")](*a, **k)
        cap["x0_full"] = out.detach().clone()
        return out

    def lm_hook(mod, args, out):
        cap["lm_in"].append(args[0].detach().clone())
        cap["lm_out"].append(out.detach().clone())

    wrappers = {("policy", "prepare_images"): prepare_images, ("policy", "prepare_language"): prepare_language,
                ("policy", "prepare_discrete_state"): prepare_discrete_state, ("tok", "__call__"): tok_call,
                ("pwe", "embed_image"): embed_image, ("model", "embed_prefix"): embed_prefix,
                ("pwe", "forward"): pwe_forward, ("model", "infer_response"): infer_response,
                ("model", "embed_suffix"): embed_suffix, ("model", "denoise_step"): denoise_step,
                ("model", "sample_actions"): sample_actions}
    for (o, n), fn in wrappers.items():
        setattr(objs[o], n, fn)
    hook = lm_head.register_forward_hook(lm_hook)
    try:
        policy.reset()
        with torch.no_grad():
            actions = policy.sample_actions(batch, noise=inputs["noise"].clone())
    finally:
        hook.remove()
        for (o, n), _ in orig.items():
            delattr(objs[o], n)

    # ---- preprocessing
    images, masks = cap["images"]
    present = [c for c in spec.cameras if c in spec.frames]
    missing = [c for c in spec.cameras if c not in spec.frames] + [f"empty_camera_{i}"
                                                                    for i in range(spec.empty_cameras)]
    order = present + missing[: spec.empty_cameras]  # prepare_images pads at most empty_cameras missing ones
    assert len(images) == len(order) == len(cap["vision"]), (len(images), order, len(cap["vision"]))
    info["image_order"] = order
    info["cameras_present"] = present
    info["frames"] = {c: list(spec.frames[c]) for c in present}
    r_ = spec.image_resolution
    info["resized_hw_before_pad"] = {}  # opentau resize_with_pad: int(h / ratio), int(w / ratio) (double math)
    for c in present:
        h0, w0 = spec.frames[c]
        ratio = max(w0 / r_, h0 / r_)
        rh, rw = (h0, w0) if (h0, w0) == (r_, r_) else (int(h0 / ratio), int(w0 / ratio))
        info["resized_hw_before_pad"][c] = {"h": rh, "w": rw, "pad_top": r_ - rh, "pad_left": r_ - rw}
    for cam, img, m, vis in zip(order, images, masks, cap["vision"], strict=True):
        t[f"pre.image.{cam}"] = f32(img)
        t[f"pre.img_mask.{cam}"] = u8(m)
        t[f"vision.{cam}"] = f32(vis)
    t["pre.state_norm"] = f32(cap["state_norm"])
    info["state_string"] = cap["state_str"][0]
    t["pre.state_bins"] = torch.tensor([int(x) for x in cap["state_str"][0].split()], dtype=torch.int64)
    info["prompt"] = cap["prompts"][0]
    info["tokenizer_call_kwargs"] = cap["tok_kwargs"]
    lang_tokens, lang_masks = cap["lang"]
    t["pre.lang_tokens"] = i64(lang_tokens)
    t["pre.lang_mask"] = u8(lang_masks)
    ids = lang_tokens[0].tolist()
    info["num_valid_lang_tokens"] = int(lang_masks.sum())
    info["lang_tokens_decoded"] = tok.convert_ids_to_tokens(ids[: info["num_valid_lang_tokens"]])
    full_len = len(tok(info["prompt"])["input_ids"])
    info["untruncated_num_tokens"] = full_len
    info["truncated"] = full_len > len(ids)
    ind = tok.encode("Response: ", add_special_tokens=False)
    info["response_indicator_ids"] = ind
    info["response_indicator_tokens"] = tok.convert_ids_to_tokens(ind)
    t["prefix.response_indicator_ids"] = torch.tensor(ind, dtype=torch.int64)

    # ---- prefix
    pe, pm, am, seg = cap["prefix"]
    t["prefix.embs"] = f32(pe)
    t["prefix.pad_mask"] = u8(pm)
    t["prefix.att_mask"] = u8(am)
    t["prefix.segment_ids"] = i64(seg)
    calls = cap["pwe_calls"]
    pre_call = calls[0]
    assert pre_call["kind"] == "prefix"
    t["prefix.position_ids"] = i64(pre_call["position_ids"])
    t["prefix.attn_allowed"] = u8(pre_call["attention_mask"])
    t["prefix.out"] = f32(pre_call["out"])  # final-normed VLM output of every prefix token (unused downstream)
    P = pe.shape[1]
    info["num_prefix_tokens"] = int(P)
    info["num_valid_prefix_tokens"] = int(pm.sum())

    # ---- decode
    dec = [c for c in calls if c["kind"] == "decode"]
    L = spec.response_max_length
    assert len(dec) == L, (len(dec), L)
    resp = cap["response"]
    t["response.tokens"] = i64(resp)
    final_pad = cap["final_pad"]
    t["response.pad_mask"] = u8(final_pad[:, P:])
    t["response.position_ids"] = torch.cat([i64(c["position_ids"]) for c in dec], dim=1)
    t["response.embs"] = f32(cap["final_embs"][:, P:])
    t["decode.hidden"] = torch.cat([f32(c["out"]) for c in dec], dim=1)  # [1, L, W] (lm_head input rows)
    assert len(cap["lm_out"]) == L - 1
    t["decode.logits"] = torch.cat([f32(x) for x in cap["lm_out"]], dim=1)  # [1, L-1, V]: call s predicts token s+1
    for s_, (hin, c) in enumerate(zip(cap["lm_in"], dec[:-1], strict=True)):
        assert torch.equal(hin, c["out"][:, -1:]), s_
    # attention rows of each decode step (allowed over all keys so far: P + s + 1)
    for s_, c in enumerate(dec):
        allowed = c["attention_mask"][0, 0]
        expect = torch.cat([final_pad[0, : P + s_], final_pad[0, P + s_: P + s_ + 1]]) & final_pad[0, P + s_]
        assert torch.equal(allowed, expect), s_
    kv = dec[-1]["kv"]
    for li, (k_, v_) in kv.items():
        t[f"kv.{li}.k"] = f32(k_)
        t[f"kv.{li}.v"] = f32(v_)
        assert torch.equal(k_[:, :P], pre_call["kv"][li][0]) and torch.equal(v_[:, :P], pre_call["kv"][li][1])
    t["final.pad_mask"] = u8(final_pad)
    t["final.att_mask"] = u8(cap["final_att"])
    toks = resp[0].tolist()
    info["response_tokens"] = toks
    info["response_tokens_decoded"] = tok.convert_ids_to_tokens(toks)
    info["response_pad_mask"] = [int(x) for x in final_pad[0, P:].tolist()]
    first_eos = next((i for i, x in enumerate(toks) if i > 0 and x == EOS_ID), None)
    info["first_eos_index"] = first_eos
    info["num_valid_response_tokens"] = int(final_pad[0, P:].sum())
    top2 = t["decode.logits"][0].topk(2, dim=-1).values
    margins = (top2[:, 0] - top2[:, 1])[: max(0, info["num_valid_response_tokens"] - 1)]
    info["min_top2_logit_margin"] = float(margins.min()) if margins.numel() else None

    # ---- expert
    exp = [c for c in calls if c["kind"] == "expert"]
    assert len(exp) == spec.num_steps
    t["suffix.position_ids"] = i64(exp[0]["position_ids"])
    t["suffix.attn_allowed"] = u8(exp[0]["attention_mask"])
    for c in exp[1:]:
        assert torch.equal(c["position_ids"], exp[0]["position_ids"])
        assert torch.equal(c["attention_mask"], exp[0]["attention_mask"])
    _, spm, sam, _ = cap["suffix"][0]
    t["suffix.pad_mask"] = u8(spm)
    t["suffix.att_mask"] = u8(sam)
    times = []
    for i, (x_in, ts, v) in enumerate(cap["steps"]):
        t[f"step.{i}.x_t"] = f32(x_in)
        t[f"step.{i}.time"] = f32(ts)
        t[f"step.{i}.v_t"] = f32(v)
        times.append(float(ts.reshape(-1)[0]))
    for i, sfx in enumerate(cap["suffix"]):
        if i == 0:
            t["step.0.suffix_embs"] = f32(sfx[0])
        t[f"step.{i}.adarms_cond"] = f32(sfx[3])
    t["time"] = torch.tensor(times, dtype=torch.float32)
    t["x0_full"] = f32(cap["x0_full"])
    t["actions_norm"] = f32(cap["x0_full"][:, :, : spec.action_feature_dim])
    t["actions"] = f32(actions)
    return t, info


# ----------------------------------------------------------------------------------------------------------
# Building, forcing <eos>, saving and recording one case
# ----------------------------------------------------------------------------------------------------------


def f32_copy(policy):
    import torch

    p = copy.deepcopy(policy)
    p.to(torch.float32)
    p.eval()
    return p


def force_eos_(policy, spec: CaseSpec, inputs: dict) -> dict:
    """Set the tied <eos> embedding row so greedy decoding emits <eos> exactly at response index k.

    The row is set to alpha * d / |d| with d = h_k minus its projection on span(h_1..h_{k-1}), where h_j is the
    lm_head input that predicts response index j in an unmodified run: logits of <eos> stay ~0 at j < k (only
    bf16 rounding of the row) and exceed the best other logit by 4 at j = k. Only weights change.
    """
    import torch

    with float32_compute():
        t0, info0 = run_policy(f32_copy(policy), spec, inputs)
    k = spec.force_eos_at
    toks0 = info0["response_tokens"]
    assert all(x not in (EOS_ID, PAD_ID) for x in toks0[1:k]), toks0
    hid = t0["decode.hidden"][0]  # [L, W]: row j is the output at index j, it predicts index j+1
    H = hid[: k - 1]  # predict indices 1..k-1
    target = hid[k - 1]
    q, _ = torch.linalg.qr(H.T.to(torch.float64))  # [W, k-1]
    d = target.to(torch.float64) - q @ (q.T @ target.to(torch.float64))
    logits_k = t0["decode.logits"][0, k - 1].to(torch.float64)
    others = torch.cat([logits_k[:EOS_ID], logits_k[EOS_ID + 1:]])
    alpha = (float(others.max()) + 4.0) / float(d.norm())
    row = (alpha * d / d.norm()).to(torch.float32)
    emb = policy.model.paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight
    with torch.no_grad():
        emb[EOS_ID] = row.to(emb.dtype)
    with float32_compute():
        _, info1 = run_policy(f32_copy(policy), spec, inputs)
    toks1 = info1["response_tokens"]
    assert toks1[:k] == toks0[:k] and toks1[k] == EOS_ID and all(x == PAD_ID for x in toks1[k + 1:]), (toks0, toks1)
    return {"k": k, "alpha": alpha, "row_norm": float(row.norm()), "tokens_before": toks0, "tokens_after": toks1,
            "eos_logit_margin_at_k": 4.0}


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
        "expert": {"width": spec.expert.width, "mlp_dim": spec.expert.mlp, "depth": spec.expert.depth,
                   "adarms_cond_dim": spec.expert.width},
        "num_heads": spec.num_heads,
        "num_kv_heads": spec.num_kv_heads,
        "head_dim": spec.head_dim,
        "vocab_size": VOCAB,
        "rms_norm_eps": 1e-6,
        "rope_max_wavelength": 10000,
        "hidden_activation": "gelu_pytorch_tanh",
        "vision": {
            "hidden": spec.vision.hidden, "layers": spec.vision.layers, "heads": spec.vision.heads,
            "mlp": spec.vision.mlp, "patch": spec.vision.patch, "image_size": r,
            "layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh",
            "tokens_per_image": (r // spec.vision.patch) ** 2, "projection_dim": spec.vlm.width,
        },
        "fast_stub_vocab_size": FAST_STUB_VOCAB,
        "token_ids": {"pad": PAD_ID, "eos": EOS_ID, "bos": BOS_ID},
    }


def make_case(spec: CaseSpec, out_root: Path) -> dict:
    import torch
    from opentau.policies.pi05.modeling_pi05 import PI05Policy
    from safetensors.torch import save_file

    t0 = time.time()
    case_dir = out_root / spec.name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    ckpt = case_dir / "checkpoint"

    with tiny_architecture(spec), offline_hub_names():
        torch.manual_seed(spec.seed)
        config = build_config(spec)
        stats = make_stats(spec)
        policy = PI05Policy(config, per_dataset_stats=[stats], dataset_names=["fixture"])
        randomize_(policy, spec.seed)
        policy.eval()
        inputs = make_inputs(spec, stats)
        eos_info = force_eos_(policy, spec, inputs) if spec.force_eos_at is not None else None
        policy.save_pretrained(ckpt)
        shutil.copyfile(TOKENIZER_JSON, ckpt / "tokenizer.json")
        n_params = sum(p.numel() for p in policy.parameters())
        param_dtypes = sorted({str(p.dtype).replace("torch.", "") for p in policy.parameters()})
        del policy

        # Reload from disk with opentau's loader; float32 like scripts/export_to_onnx.py.
        policy = PI05Policy.from_pretrained(str(ckpt))
        policy.to(torch.float32)
        policy.eval()
        with float32_compute():
            tensors, info = run_policy(policy, spec, inputs)
            again, _ = run_policy(policy, spec, inputs)
            # select_action (the other public entry point) pops row 0 of the same chunk
            policy.reset()
            with torch.no_grad():
                first = policy.select_action(observation_batch(spec, inputs), noise=inputs["noise"].clone())
        info["rerun_max_abs_diff_actions"] = float((again["actions"] - tensors["actions"]).abs().max())
        info["rerun_response_equal"] = bool(torch.equal(again["response.tokens"], tensors["response.tokens"]))
        info["select_action_row0_max_abs_diff"] = float((first - tensors["actions"][:, 0]).abs().max())
        tokenizer_len = len(policy.language_tokenizer)
        pol_cfg = policy.config
    tensors = {f"s0.{k}": v.detach().contiguous().cpu() for k, v in tensors.items()}
    save_file(tensors, str(case_dir / "reference.safetensors"))
    for f in case_dir.rglob("*"):
        if f.is_file():
            f.chmod(0o644)  # safetensors writes 0600

    result = {
        "name": spec.name,
        "description": spec.description,
        "versions": versions(),
        "generator": GENERATOR,
        "entry_point": "PI05Policy.from_pretrained(checkpoint) -> .to(torch.float32) -> .eval() -> "
                       ".sample_actions(batch, noise=noise) with _preferred_dtype() = float32",
        "model": model_dims(spec),
        "policy": {
            "type": "pi05",
            "predict_response": True,
            "state_type": "discrete",
            # config.image_features keys, in prefix order; validate_features adds the empty cameras as
            # "observation.images.empty_camera_<i>" (tensor names / image_order use the short "empty_camera_<i>")
            "cameras": list(pol_cfg.image_features.keys()),
            "empty_cameras": spec.empty_cameras,
            "image_resolution": [spec.image_resolution, spec.image_resolution],
            "state_dim": spec.state_dim,
            "action_dim": spec.action_dim,
            "action_feature_dim": spec.action_feature_dim,
            "max_state_dim": spec.max_state_dim,
            "max_action_dim": spec.max_action_dim,
            "chunk_size": spec.chunk_size,
            "n_action_steps": spec.n_action_steps or spec.chunk_size,
            "num_steps": spec.num_steps,
            "prompt_max_length": spec.prompt_max_length,
            "response_max_length": spec.response_max_length,
            "normalization": {k: v.value for k, v in pol_cfg.normalization_mapping.items()},
            "normalization_eps": pol_cfg.normalization_epsilon(),
            "zero_range_centers_on_zero": pol_cfg.zero_range_centers_on_zero(),
            "config_version": pol_cfg.config_version,
            "proj_width": spec.expert.width,
            "parameter_dtypes_as_built": param_dtypes,
            "num_parameters": n_params,
            "tokenizer_len_after_ensure_loc_tokens": tokenizer_len,
        },
        "seed": spec.seed,
        "forced_eos": eos_info,
        "samples": [{"name": "s0", "task": spec.task, **info}],
        "tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                    for k, v in sorted(tensors.items())},
        "weights": describe_weights(ckpt / "model.safetensors"),
        "notes": NOTES,
    }
    check = verify_case(case_dir, result)
    result["independent_check_max_abs_diff"] = check
    result["files"] = file_tree_sizes(case_dir)
    with open(case_dir / "case.json", "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    result["elapsed_seconds"] = round(time.time() - t0, 2)
    return result


NOTES = [
    "All reference tensors are for one sample (prefix s0.). Float tensors float32, masks uint8 (1 = true), ids / "
    "positions / bins int64.",
    "input.image.<cam>: uint8 HWC frame; input.image_f01.<cam>: float32 [1,3,H,W] = frame/255 (what the policy "
    "receives); pre.image.<cam>: after prepare_images = resize_with_pad (only if H,W != resolution: bilinear, "
    "align_corners=False, no antialias, no clamp; new size int(H/ratio), int(W/ratio) with ratio = max(W/R, H/R) "
    "in double; padding value 0 on the LEFT and TOP only) then x*2-1. Missing image features (config order), at "
    "most empty_cameras of them, become all -1 images with mask 0 after the present ones.",
    "pre.state_norm: normalize_inputs output for 'state' (fed zero-padded to max_state_dim). MEAN_STD: "
    "(x-mean)/(std'+eps); QUANTILE: ((x-q01) + 0.5*(r'-r))/(r'+eps)*2-1 with r = q99-q01, r' = r or 1 where |r| < "
    "eps, std' = std or 1 where |std| < eps, eps = 1e-6 (config_version 1). pre.state_bins = clamp(long((clamp(s,"
    "-1,1)+1)*128), 0, 255) (float32 math, truncation).",
    "prompt = 'Task: {task}, State: {bins joined by spaces};\\n' (task verbatim), tokenized with <bos> "
    "prepended, right-padded with <pad>=0 to prompt_max_length, truncated to it; pre.lang_mask = attention_mask.",
    "prefix.embs = [SigLIP+projector tokens of each image in image_order] + [embed(lang) * sqrt(width)] + "
    "[embed('Response: ' ids, no specials) * sqrt(width)]; prefix.att_mask = 0 for images and language, 1 for each "
    "indicator token; prefix.pad_mask = image masks, lang mask, 1 for indicator tokens. prefix.attn_allowed "
    "[B,P,P]: c = cumsum(att); allowed[i,j] = c[j] <= c[i] & pad[i] & pad[j]. prefix.position_ids = cumsum(pad)-1. "
    "prefix.out = final-normed VLM output of the prefix forward (NOT used by the decode: step 0 feeds <bos>).",
    "Decode (response_max_length steps s = 0..L-1): token_0 = <bos>; token_s (s >= 1) = argmax(lm_head(hidden of "
    "token_{s-1})) where lm_head = tied embed_tokens (no bias, no softcap, no scaling); for s >= 2, if any of "
    "token_0..token_{s-1} is <eos> or <pad> then token_s := <pad> and pad_s = 0, else pad_s = 1 (pad_0 = pad_1 = 1); "
    "position_s = (sum of prefix pad) - 1 + sum_{j<=s} pad_j; the token (embed * sqrt(width)) attends to all "
    "earlier valid prefix/response keys and itself (a padded token attends to nothing: uniform softmax over all "
    "keys, irrelevant). decode.hidden[s] = final-normed output of token_s; decode.logits[s] = lm_head of it for s < "
    "L-1 (the last output is never projected). response.tokens includes the fed <bos> at index 0.",
    "kv.L.k / kv.L.v: VLM layer-L K/V cache after the decode, opentau layout [B, S, num_kv_heads, head_dim] "
    "(NOT transposed), S = P + L, keys after RoPE, values as projected; rows of padded positions are included "
    "(computed, then masked). final.pad_mask [B, P+L] is what the action expert's cross-attention uses.",
    "Expert (num_steps Euler steps): x = noise (B, chunk, max_action_dim); dt = float32(-1/N); t = float32 1.0, "
    "t += dt each step (float32 accumulation), loop while t >= -dt/2; time per token [B, chunk] (= t with delay 0); "
    "suffix = action_in_proj(x); adarms_cond = silu(time_mlp_out(silu(time_mlp_in(sincos(t))))) per token, sincos: "
    "float64 linspace(0,1,W/2) fractions, period = 4e-3*(4/4e-3)**frac, [sin(2*pi/period*t), cos(...)], cast f32. "
    "suffix attention: all suffix tokens see each other (att [1,0,..]) and every key with final.pad_mask = 1; "
    "suffix.position_ids = sum(final.pad_mask) + arange(chunk). v = action_out_proj(expert_final_norm(h)); x += dt*v.",
    "x0_full: sample_actions' inner output (max_action_dim wide); actions_norm = x0_full[..., :action_feature_dim]; "
    "actions = unnormalize_outputs(actions_norm): MEAN_STD x*(std'+eps)+mean; QUANTILE (x+1)/2*(r'+eps)+q01 - "
    "0.5*(r'-r).",
    "Checkpoint: model.safetensors as PI05Policy.save_pretrained writes it: embed_tokens is tied to lm_head and "
    "stored ONLY as model.paligemma_with_expert.paligemma.lm_head.weight; mixed dtypes (see case.json weights); "
    "normalization stats are in model.safetensors (normalize_inputs.buffer_state.*, unnormalize_outputs."
    "buffer_actions.*, shape [num_datasets=1, dim]). tokenizer.json is a copy of the tokenizer used (opentau "
    "does not write one).",
]


# ----------------------------------------------------------------------------------------------------------
# Independent re-implementation (plain torch ops on the saved files; no opentau / transformers code)
# ----------------------------------------------------------------------------------------------------------


def verify_case(case_dir: Path, case: dict) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    ckpt = case_dir / "checkpoint"
    W = {k: v.to(torch.float32) for k, v in load_file(str(ckpt / "model.safetensors")).items()}
    ref = {k[3:]: v for k, v in load_file(str(case_dir / "reference.safetensors")).items()}
    cfg = json.loads((ckpt / "config.json").read_text())
    md, pol = case["model"], case["policy"]
    sample = case["samples"][0]
    R = cfg["resize_imgs_with_padding"][0]
    H, KVH, D = md["num_heads"], md["num_kv_heads"], md["head_dim"]
    N, chunk = cfg["num_steps"], cfg["chunk_size"]
    eps = pol["normalization_eps"]
    P_ = "model.paligemma_with_expert."
    V_ = P_ + "paligemma.model.vision_tower.vision_model."
    L_ = P_ + "paligemma.model.language_model."
    E_ = P_ + "gemma_expert.model."
    EMB = W[P_ + "paligemma.lm_head.weight"]  # tied: embed_tokens is stored only as lm_head
    width = EMB.shape[1]
    diffs: dict[str, float] = {}

    def note(name, a, b):
        d = float((a.to(torch.float32) - b.to(torch.float32)).abs().max()) if a.numel() else 0.0
        diffs[name] = max(diffs.get(name, 0.0), d)

    def exact(name, a, b):
        assert torch.equal(a.to(torch.int64), b.to(torch.int64)), (name, a, b)
        diffs[name] = 0.0

    def lin(x, pre, bias=True):
        return F.linear(x, W[pre + ".weight"], W.get(pre + ".bias") if bias else None)

    def gelu(x):
        return F.gelu(x, approximate="tanh")

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * (1.0 + w)

    def norm(x, pre, cond):
        if cond is None:
            return rms(x, W[pre + ".weight"]), None
        scale, shift, gate = lin(cond, pre + ".dense").chunk(3, dim=-1)
        normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
        return normed * (1 + scale) + shift, gate

    def rope(x, pos):  # x [B, S, h, D], pos [B, S]
        half = D // 2
        timescale = 10000 ** ((2.0 / D) * torch.arange(half, dtype=torch.float32))
        rad = (pos[..., None].to(torch.float32) / timescale)[..., None, :]
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * rad.cos() - x2 * rad.sin(), x2 * rad.cos() + x1 * rad.sin()], dim=-1)

    def siglip(img):
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

    def attention(q, k, v, allowed):  # q [B,S,H,D], k/v [B,T,KVH,D], allowed [B,S,T]
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        k = k.repeat_interleave(H // KVH, dim=1)
        v = v.repeat_interleave(H // KVH, dim=1)
        s = q @ k.transpose(-1, -2) * D ** -0.5
        s = torch.where(allowed[:, None], s, torch.tensor(-2.3819763e38))
        return (torch.softmax(s, dim=-1) @ v).transpose(1, 2).flatten(2)

    def layer(x, p, pos, allowed, cond=None, past=None):
        h, g1 = norm(x, p + "input_layernorm", cond)
        q = lin(h, p + "self_attn.q_proj", False).unflatten(-1, (H, D))
        k = lin(h, p + "self_attn.k_proj", False).unflatten(-1, (KVH, D))
        v = lin(h, p + "self_attn.v_proj", False).unflatten(-1, (KVH, D))
        q, k = rope(q, pos), rope(k, pos)
        kk, vv = (k, v) if past is None else (torch.cat([past[0], k], 1), torch.cat([past[1], v], 1))
        o = lin(attention(q, kk, vv, allowed), p + "self_attn.o_proj", False)
        x = x + (o if g1 is None else o * g1)
        h, g2 = norm(x, p + "post_attention_layernorm", cond)
        m = lin(gelu(lin(h, p + "mlp.gate_proj", False)) * lin(h, p + "mlp.up_proj", False), p + "mlp.down_proj",
                False)
        return x + (m if g2 is None else m * g2), (kk, vv)

    def vlm(x, pos, allowed, past):
        new = []
        for li in range(md["vlm"]["depth"]):
            x, kv = layer(x, L_ + f"layers.{li}.", pos, allowed, None, None if past is None else past[li])
            new.append(kv)
        return rms(x, W[L_ + "norm.weight"]), new

    # ---- preprocessing
    images, masks = [], []
    for cam in sample["image_order"]:
        if cam in sample["cameras_present"]:
            x = ref[f"input.image.{cam}"].to(torch.float32).numpy() / np.float32(255.0)
            x = torch.from_numpy(x).permute(2, 0, 1)[None]
            note("input.image_f01", x, ref[f"input.image_f01.{cam}"])
            h0, w0 = x.shape[2:]
            if (h0, w0) != (R, R):
                ratio = max(w0 / R, h0 / R)
                rh, rw = int(h0 / ratio), int(w0 / ratio)
                x = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False)
                x = F.pad(x, (max(0, R - rw), 0, max(0, R - rh), 0), value=0.0)
            x = x * 2.0 - 1.0
            m = torch.ones(1, dtype=torch.bool)
        else:
            x = -torch.ones(1, 3, R, R)
            m = torch.zeros(1, dtype=torch.bool)
        note("pre.image", x, ref[f"pre.image.{cam}"])
        images.append(x)
        masks.append(m)
    st = ref["input.state_padded"]
    mode = pol["normalization"]["STATE"]
    if mode == "MEAN_STD":
        mean, std = W["normalize_inputs.buffer_state.mean"], W["normalize_inputs.buffer_state.std"]
        std = torch.where(std.abs() < eps, torch.ones_like(std), std)
        st_norm = (st - mean) / (std + eps)
    else:
        lo, hi = W["normalize_inputs.buffer_state.q01"], W["normalize_inputs.buffer_state.q99"]
        r = hi - lo
        r2 = torch.where(r.abs() < eps, torch.ones_like(r), r)
        st_norm = ((st - lo) + 0.5 * (r2 - r)) / (r2 + eps) * 2 - 1
    note("pre.state_norm", st_norm, ref["pre.state_norm"])
    bins = ((st_norm.clamp(-1.0, 1.0) + 1.0) * 128.0).long().clamp(0, 255)[0]
    exact("pre.state_bins", bins, ref["pre.state_bins"])
    prompt = f"Task: {sample['task']}, State: {' '.join(str(int(b)) for b in bins)};\n"
    assert prompt == sample["prompt"], (prompt, sample["prompt"])
    tk = Tokenizer.from_file(str(ckpt / "tokenizer.json"))
    ids = tk.encode(prompt).ids[: cfg["prompt_max_length"]]
    n_valid = len(ids)
    ids = ids + [PAD_ID] * (cfg["prompt_max_length"] - n_valid)
    exact("pre.lang_tokens", torch.tensor(ids)[None], ref["pre.lang_tokens"])
    lang_mask = torch.tensor([1] * n_valid + [0] * (cfg["prompt_max_length"] - n_valid), dtype=torch.bool)[None]
    exact("pre.lang_mask", lang_mask, ref["pre.lang_mask"])
    ind = tk.encode("Response: ", add_special_tokens=False).ids
    exact("prefix.response_indicator_ids", torch.tensor(ind), ref["prefix.response_indicator_ids"])

    # ---- prefix
    embs, pads, att = [], [], []
    for cam, x, m in zip(sample["image_order"], images, masks, strict=True):
        v = siglip(x)
        note("vision", v, ref[f"vision.{cam}"])
        embs.append(v)
        pads.append(m[:, None].expand(1, v.shape[1]))
        att += [0] * v.shape[1]
    scale = math.sqrt(width)
    embs.append(EMB[torch.tensor(ids)][None] * scale)
    pads.append(lang_mask)
    att += [0] * len(ids)
    embs.append(EMB[torch.tensor(ind)][None] * scale)
    pads.append(torch.ones(1, len(ind), dtype=torch.bool))
    att += [1] * len(ind)
    x = torch.cat(embs, 1)
    pad = torch.cat(pads, 1)
    att = torch.tensor(att)[None]
    note("prefix.embs", x, ref["prefix.embs"])
    exact("prefix.pad_mask", pad, ref["prefix.pad_mask"])
    exact("prefix.att_mask", att, ref["prefix.att_mask"])
    cum = att.cumsum(1)
    allowed = (cum[:, None, :] <= cum[:, :, None]) & pad[:, None, :] & pad[:, :, None]
    exact("prefix.attn_allowed", allowed, ref["prefix.attn_allowed"])
    pos = pad.long().cumsum(1) - 1
    exact("prefix.position_ids", pos, ref["prefix.position_ids"])
    out, kv = vlm(x, pos, allowed, None)
    note("prefix.out", out, ref["prefix.out"])

    # ---- decode (greedy, token ids must match exactly)
    Lr = cfg["response_max_length"]
    tokens, rpads, rpos, hiddens, logits_all = [], [], [], [], []
    full_pad = pad.clone()
    offset = int(pad.sum()) - 1
    for s in range(Lr):
        if s == 0:
            tok_ = BOS_ID
        else:
            lg = hiddens[-1] @ EMB.T
            logits_all.append(lg)
            tok_ = int(lg.argmax())
        valid = True
        if s >= 2 and any(t_ in (EOS_ID, PAD_ID) for t_ in tokens):
            valid, tok_ = False, PAD_ID
        tokens.append(tok_)
        rpads.append(int(valid))
        offset += int(valid)
        rpos.append(offset)
        e = EMB[tok_][None, None] * scale
        keys_pad = torch.cat([full_pad, torch.tensor([[valid]])], 1)
        allow = (keys_pad & valid)[:, None, :]
        h, kv = vlm(e, torch.tensor([[offset]]), allow, kv)
        full_pad = keys_pad
        hiddens.append(h[0, 0])
    exact("response.tokens", torch.tensor(tokens)[None], ref["response.tokens"])
    exact("response.pad_mask", torch.tensor(rpads)[None], ref["response.pad_mask"])
    exact("response.position_ids", torch.tensor(rpos)[None], ref["response.position_ids"])
    note("decode.hidden", torch.stack(hiddens)[None], ref["decode.hidden"])
    note("decode.logits", torch.stack(logits_all)[None], ref["decode.logits"])
    exact("final.pad_mask", full_pad, ref["final.pad_mask"])
    valid_rows = full_pad[0]
    for li, (kk, vv) in enumerate(kv):
        note("kv(valid rows)", kk[:, valid_rows], ref[f"kv.{li}.k"][:, valid_rows])
        note("kv(valid rows)", vv[:, valid_rows], ref[f"kv.{li}.v"][:, valid_rows])
        note("kv(all rows, incl. masked)", torch.cat([kk, vv]), torch.cat([ref[f"kv.{li}.k"], ref[f"kv.{li}.v"]]))

    # ---- expert / Euler
    spos = full_pad.long().sum(1, keepdim=True) + torch.arange(chunk)[None]
    exact("suffix.position_ids", spos, ref["suffix.position_ids"])
    s_allowed = torch.cat([full_pad[:, None, :].expand(1, chunk, -1), torch.ones(1, chunk, chunk, dtype=torch.bool)], 2)
    exact("suffix.attn_allowed", s_allowed, ref["suffix.attn_allowed"])
    ew = md["expert"]["width"]
    xt = ref["noise"].clone()
    dt = torch.tensor(-1.0 / N, dtype=torch.float32)
    t = torch.tensor(1.0, dtype=torch.float32)
    step = 0
    while t >= -dt / 2:
        note("step.x_t", xt, ref[f"step.{step}.x_t"])
        tt = torch.full((1, chunk), float(t), dtype=torch.float32)
        note("step.time", tt, ref[f"step.{step}.time"])
        frac = torch.linspace(0.0, 1.0, ew // 2, dtype=torch.float64)
        period = 4e-3 * (4.0 / 4e-3) ** frac
        arg = (1.0 / period * 2 * math.pi)[None, None] * tt.to(torch.float64)[..., None]
        temb = torch.cat([torch.sin(arg), torch.cos(arg)], 2).to(torch.float32)
        cond = F.silu(lin(F.silu(lin(temb, "model.time_mlp_in")), "model.time_mlp_out"))
        note("step.adarms_cond", cond, ref[f"step.{step}.adarms_cond"])
        h = lin(xt, "model.action_in_proj")
        if step == 0:
            note("step.0.suffix_embs", h, ref["step.0.suffix_embs"])
        for li in range(md["expert"]["depth"]):
            h, _ = layer(h, E_ + f"layers.{li}.", spos, s_allowed, cond, past=kv[li])
        h, _ = norm(h, E_ + "norm", cond)
        v = lin(h[:, -chunk:], "model.action_out_proj")
        note("step.v_t", v, ref[f"step.{step}.v_t"])
        if step == 0:
            note("step.0.v_t", v, ref["step.0.v_t"])
        xt = xt + dt * v
        t = t + dt
        step += 1
    assert step == N
    note("x0_full", xt, ref["x0_full"])
    an = xt[..., : pol["action_feature_dim"]]
    note("actions_norm", an, ref["actions_norm"])
    amode = pol["normalization"]["ACTION"]

    def unnorm(a):
        if amode == "MEAN_STD":
            mean, std = W["unnormalize_outputs.buffer_actions.mean"], W["unnormalize_outputs.buffer_actions.std"]
            std = torch.where(std.abs() < eps, torch.ones_like(std), std)
            return a * (std + eps) + mean
        lo, hi = W["unnormalize_outputs.buffer_actions.q01"], W["unnormalize_outputs.buffer_actions.q99"]
        r = hi - lo
        r2 = torch.where(r.abs() < eps, torch.ones_like(r), r)
        return (a + 1) / 2 * (r2 + eps) + lo - 0.5 * (r2 - r)

    note("actions", unnorm(an), ref["actions"])
    note("postprocessor_only", unnorm(ref["actions_norm"]), ref["actions"])
    return {k: float(f"{v:.3g}") for k, v in diffs.items()}


# ----------------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output root")
    ap.add_argument("--only", nargs="*", metavar="CASE", help="case names to (re)generate (others untouched)")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    torch.use_deterministic_algorithms(True)
    os.chdir(REPO)

    known = [c.name for c in cases()]
    unknown = sorted(set(args.only or []) - set(known))
    if unknown:
        ap.error(f"--only: unknown case(s) {', '.join(unknown)}; known: {', '.join(known)}")
    out_root = args.out.resolve()
    out_root.mkdir(parents=True, exist_ok=True)
    total = 0
    for spec in cases():
        if args.only and spec.name not in args.only:
            continue
        res = make_case(spec, out_root)
        size = sum(res["files"].values())
        total += size
        s = res["samples"][0]
        print(json.dumps({"name": spec.name, "bytes": size, "seconds": res["elapsed_seconds"],
                          "params": res["policy"]["num_parameters"], "prefix": s["num_prefix_tokens"],
                          "valid_lang": s["num_valid_lang_tokens"], "response": s["response_tokens"],
                          "first_eos": s["first_eos_index"], "rerun": s["rerun_max_abs_diff_actions"],
                          "select_action": s["select_action_row0_max_abs_diff"],
                          "check": res["independent_check_max_abs_diff"]}), flush=True)
    print("total bytes:", total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
