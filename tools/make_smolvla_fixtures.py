#!/usr/bin/env python3
"""Make SmolVLA reference fixtures with LeRobot's own classes (offline, random weights).

Usage (from anywhere; paths are resolved against the repository root):
    .venv/bin/python tools/make_smolvla_fixtures.py                 # all small cases -> tests/data/smolvla/
    .venv/bin/python tools/make_smolvla_fixtures.py --only a_one_cam_square   # selected cases only
    .venv/bin/python tools/make_smolvla_fixtures.py --full-size models/smolvla_random_full

Nothing is downloaded: LeRobot's SmolVLA normally fetches the SmolVLM2 config/processor named in
`vlm_model_name`; here a small SmolVLM-compatible config, a byte-level BPE tokenizer trained on built-in
text and a SmolVLM processor are written to a local directory (`<case>/vlm`) and `vlm_model_name` points
there (relative to the repository root, with `load_vlm_weights=False`).

Each case directory holds:
    vlm/                     the local "VLM model id" (config.json, tokenizer, processor files)
    checkpoint/              SmolVLAPolicy.save_pretrained + policy_{pre,post}processor files
    reference.safetensors    recorded inputs / intermediates / outputs (see case.json["tensors"])
    case.json                inputs, config summary, package versions, notes

Reference outputs are produced by reloading the checkpoint from disk with LeRobot's loaders
(SmolVLAPolicy.from_pretrained, make_pre_post_processors(pretrained_path=...)) and running
prepare_observation_for_inference -> preprocessor -> policy.predict_action_chunk(noise=...) -> postprocessor.
Intermediates are captured by wrapping methods of that same policy instance during that call.

Vision position ids: transformers >= 4.55.1 computes SmolVLM vision position ids with a float32
bucketize that yields [0,0,1,...,n-2] per axis for f32 pixel values (transformers issue #41190);
in bf16, and in transformers <= 4.54.1, the ids are the identity (row-major 0..N-1), which is what the
released bf16 checkpoints see. The main reference uses identity ids (the embeddings' forward is patched);
the stock-transformers f32 result is recorded as `<sample>.stock_tf.*` for information.
"""

from __future__ import annotations

import argparse
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
DEFAULT_OUT = REPO / "tests" / "data" / "smolvla"

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<fake_token_around_image>",
    "<image>",
    "<global-img>",
    "<end_of_utterance>",
]

CORPUS = """
pick up the red cube and place it in the box
put the green block on top of the blue block
open the drawer and take out the spoon
close the top drawer of the cabinet
push the button on the left side of the table
stack the cups from largest to smallest
grasp the handle of the mug and lift it
move the bowl to the center of the plate
insert the peg into the hole
fold the towel in half
pour water from the bottle into the glass
turn the knob clockwise until it stops
slide the window open
pick the banana and put it in the basket
wipe the table with the sponge
place the lid on the pot
hand the screwdriver to the person
sort the objects by color: red, green, blue, yellow
the robot arm moves slowly toward the target object
SmolVLA is a small vision-language-action model for robots
Observation: camera images and joint states. Action: a chunk of fifty joint targets.
So100 follower arm, wrist camera, top camera, side camera.
Numbers 0 1 2 3 4 5 6 7 8 9 10 42 100 3.14 -1.5
""".strip().splitlines()


# ----------------------------------------------------------------------------------------------------------
# Case specifications
# ----------------------------------------------------------------------------------------------------------


@dataclass
class VlmSpec:
    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    vision_mlp: int = 128
    patch: int = 16
    image_size: int = 128
    scale_factor: int = 4
    text_hidden: int = 96
    text_layers: int = 4
    text_heads: int = 3
    text_kv_heads: int = 1
    head_dim: int = 32
    text_mlp: int = 128
    vocab_size: int | None = None  # None: tokenizer size rounded up to 64
    bpe_vocab: int = 384
    rope_theta: float = 100000.0  # SmolLM2's value; SmolVLA ignores it (apply_rope hard-codes 10000)
    rms_norm_eps: float = 1e-5


@dataclass
class Sample:
    name: str
    task: str
    frames: dict[str, tuple[int, int]]  # camera key suffix -> (H, W)
    seed: int


@dataclass
class CaseSpec:
    name: str
    description: str
    vlm: VlmSpec
    cameras: list[str]
    state_dim: int
    action_dim: int
    samples: list[Sample]
    tokenizer_max_length: int = 48
    pad_language_to: str = "max_length"
    num_vlm_layers: int = 4
    num_expert_layers: int = 0
    self_attn_every_n_layers: int = 2
    expert_width_multiplier: float = 0.75
    prefix_length: int = 0
    chunk_size: int = 50
    num_steps: int = 10
    seed: int = 0
    empty_cameras: int = 0  # LeRobot adds VISUAL features observation.images.empty_camera_{i}; never given
    extra_config: dict = field(default_factory=dict)


LONG_TASK = (
    "pick up the red cube on the left side of the table, move it slowly over the blue bowl, "
    "put it down gently in the center of the plate and then push the button on the right side "
    "of the table twice before you open the top drawer of the cabinet"
)


def small_cases() -> list[CaseSpec]:
    return [
        CaseSpec(
            name="a_one_cam_square",
            description="1 camera, square 64x64 frames (pure 2x bilinear upsample to 128, no padding); "
            "smolvla_base-like layout: pad_language_to=max_length 48, expert 0.75x, SA every 2 layers.",
            vlm=VlmSpec(),
            cameras=["camera1"],
            state_dim=6,
            action_dim=6,
            samples=[Sample("s0", "pick up the red cube and place it in the box", {"camera1": (64, 64)}, 100)],
            seed=1,
        ),
        CaseSpec(
            name="b_three_cam_nonsquare",
            description="3 cameras with non-square frames: 96x128 (top padding), 120x90 (left padding), "
            "200x300 (bilinear downsample without antialias + top padding); state 8, action 7; 2 VLM/expert layers "
            "(layer 0 self-attention, layer 1 cross-attention).",
            vlm=VlmSpec(text_layers=2),
            cameras=["camera1", "camera2", "camera3"],
            num_vlm_layers=2,
            state_dim=8,
            action_dim=7,
            samples=[
                Sample(
                    "s0",
                    "stack the cups from largest to smallest",
                    {"camera1": (96, 128), "camera2": (120, 90), "camera3": (200, 300)},
                    200,
                )
            ],
            seed=2,
        ),
        CaseSpec(
            name="c_task_lengths",
            description="1 camera 48x80, 2 VLM/expert layers; tokenizer_max_length=24, padding max_length: a short task "
            "(many pad tokens), a task already ending in a newline, and a long task truncated to 24 tokens.",
            vlm=VlmSpec(text_layers=2),
            cameras=["camera1"],
            state_dim=6,
            action_dim=6,
            num_vlm_layers=2,
            tokenizer_max_length=24,
            samples=[
                Sample("short", "fold", {"camera1": (48, 80)}, 300),
                Sample("newline", "open the drawer\n", {"camera1": (48, 80)}, 301),
                Sample("long", LONG_TASK, {"camera1": (48, 80)}, 302),
            ],
            seed=3,
        ),
        CaseSpec(
            name="d_shallow_distilled",
            description="shallower/distilled-like: VLM config has 6 text layers truncated to num_vlm_layers=3, "
            "expert 3 layers at 0.5x width, self_attn_every_n_layers=3 (SA at layer 0, CA at 1,2), "
            "image_size 64 with scale_factor 2, 2 cameras, pad_language_to=longest (LeRobot's code default).",
            vlm=VlmSpec(image_size=64, scale_factor=2, text_layers=6, vision_layers=1),
            cameras=["camera1", "camera2"],
            state_dim=5,
            action_dim=4,
            pad_language_to="longest",
            num_vlm_layers=3,
            num_expert_layers=0,
            self_attn_every_n_layers=3,
            expert_width_multiplier=0.5,
            samples=[
                Sample("s0", "wipe the table with the sponge", {"camera1": (48, 64), "camera2": (64, 64)}, 400)
            ],
            seed=4,
        ),
        CaseSpec(
            name="e_expert_skip_all_cross",
            description="num_vlm_layers=4 with num_expert_layers=2 (expert layer e pairs with VLM layer 2e; "
            "odd VLM layers pass the action tokens through), self_attn_every_n_layers=0 (all expert "
            "layers cross-attend to the VLM cache), expert 0.75x.",
            vlm=VlmSpec(),
            cameras=["camera1"],
            state_dim=6,
            action_dim=6,
            num_vlm_layers=4,
            num_expert_layers=2,
            self_attn_every_n_layers=0,
            samples=[Sample("s0", "insert the peg into the hole", {"camera1": (72, 96)}, 500)],
            seed=5,
        ),
        CaseSpec(
            name="f_student",
            description="distilled-student-shaped: 1 camera, VLM config with 4 text layers truncated to "
            "num_vlm_layers=2, expert at 0.25x width (hidden 24), 4 flow steps, chunk_size 10, state 4 / "
            "action 3, SA every 2 layers (layer 0 self-attention, layer 1 cross-attention).",
            vlm=VlmSpec(image_size=64, scale_factor=2, text_layers=4, vision_layers=1),
            cameras=["camera1"],
            state_dim=4,
            action_dim=3,
            num_vlm_layers=2,
            self_attn_every_n_layers=2,
            expert_width_multiplier=0.25,
            chunk_size=10,
            num_steps=4,
            samples=[Sample("s0", "push the block to the left", {"camera1": (64, 48)}, 600)],
            seed=6,
        ),
        CaseSpec(
            name="g_two_cam_wrist_top",
            description="2 cameras listed out of alphabetical order in input_features (wrist before top), as "
            "LeRobot keeps them (config.image_features is insertion-ordered); non-square frames 72x96 (wrist, "
            "top padding) and 100x60 (top, left padding); state 6 / action 5; 2 VLM/expert layers.",
            vlm=VlmSpec(text_layers=2),
            cameras=["wrist", "top"],
            state_dim=6,
            action_dim=5,
            num_vlm_layers=2,
            samples=[Sample("s0", "pick the banana and put it in the basket", {"wrist": (72, 96), "top": (100, 60)},
                            700)],
            seed=7,
        ),
        CaseSpec(
            name="h_three_cam_up_side_front",
            description="3 cameras listed in reverse alphabetical order (up, side, front); non-square frames 80x120, "
            "90x60, 50x70 resized with padding to 64 (image_size 64, scale_factor 2); state 7 / action 6; 2 VLM/"
            "expert layers.",
            vlm=VlmSpec(image_size=64, scale_factor=2, text_layers=2, vision_layers=1),
            cameras=["up", "side", "front"],
            state_dim=7,
            action_dim=6,
            num_vlm_layers=2,
            samples=[Sample("s0", "slide the window open", {"up": (80, 120), "side": (90, 60), "front": (50, 70)},
                            800)],
            seed=8,
        ),
        CaseSpec(
            name="i_empty_camera",
            description="empty_cameras=1: LeRobot adds the VISUAL feature observation.images.empty_camera_0 to "
            "input_features (validate_features); an observation never has it, so prepare_images appends an all -1 "
            "image with mask 0 after the real cameras; 2 real cameras listed non-alphabetically (side, front), "
            "frames 60x80 / 64x64, image_size 64, state 5 / action 4, 2 VLM/expert layers.",
            vlm=VlmSpec(image_size=64, scale_factor=2, text_layers=2, vision_layers=1),
            cameras=["side", "front"],
            empty_cameras=1,
            state_dim=5,
            action_dim=4,
            num_vlm_layers=2,
            samples=[Sample("s0", "place the lid on the pot", {"side": (60, 80), "front": (64, 64)}, 900)],
            seed=9,
        ),
    ]


def full_size_case() -> CaseSpec:
    return CaseSpec(
        name="smolvla_random_full",
        description="random-weight checkpoint shaped like lerobot/smolvla_base",
        vlm=VlmSpec(
            vision_hidden=768,
            vision_layers=12,
            vision_heads=12,
            vision_mlp=3072,
            patch=16,
            image_size=512,
            scale_factor=4,
            text_hidden=960,
            text_layers=32,
            text_heads=15,
            text_kv_heads=5,
            head_dim=64,
            text_mlp=2560,
            vocab_size=49280,
            bpe_vocab=1024,
        ),
        cameras=["camera1", "camera2", "camera3"],
        state_dim=6,
        action_dim=6,
        num_vlm_layers=16,
        num_expert_layers=0,
        self_attn_every_n_layers=2,
        expert_width_multiplier=0.75,
        samples=[
            Sample(
                "s0",
                "pick up the cube",
                {"camera1": (256, 256), "camera2": (256, 256), "camera3": (256, 256)},
                900,
            )
        ],
        seed=9,
    )


# ----------------------------------------------------------------------------------------------------------
# Local VLM directory (config + tokenizer + processor)
# ----------------------------------------------------------------------------------------------------------


def build_vlm_dir(vlm_dir: Path, spec: VlmSpec) -> dict:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPT2TokenizerFast, SmolVLMConfig
    from transformers.models.smolvlm import SmolVLMImageProcessor, SmolVLMProcessor
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    vlm_dir.mkdir(parents=True, exist_ok=True)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=spec.bpe_vocab,
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer)

    # SmolVLM2-style special-token roles (GPT2 tokenizer class, no BOS added by default).
    hf_tok = GPT2TokenizerFast(
        tokenizer_object=tok,
        unk_token="<|endoftext|>",
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|im_end|>",
        extra_special_tokens={
            "fake_image_token": "<fake_token_around_image>",
            "image_token": "<image>",
            "global_image_token": "<global-img>",
            "end_of_utterance_token": "<end_of_utterance>",
        },
        model_max_length=8192,
    )
    n_tok = len(hf_tok)
    vocab = spec.vocab_size or ((n_tok + 63) // 64) * 64
    assert vocab >= n_tok

    tokens_per_image = (spec.image_size // spec.patch) ** 2 // (spec.scale_factor**2)
    cfg = SmolVLMConfig(
        vision_config={
            "hidden_size": spec.vision_hidden,
            "intermediate_size": spec.vision_mlp,
            "num_hidden_layers": spec.vision_layers,
            "num_attention_heads": spec.vision_heads,
            "num_channels": 3,
            "image_size": spec.image_size,
            "patch_size": spec.patch,
            "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6,
        },
        text_config={
            "model_type": "llama",
            "hidden_size": spec.text_hidden,
            "intermediate_size": spec.text_mlp,
            "num_hidden_layers": spec.text_layers,
            "num_attention_heads": spec.text_heads,
            "num_key_value_heads": spec.text_kv_heads,
            "head_dim": spec.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": spec.rms_norm_eps,
            "rope_theta": spec.rope_theta,
            "vocab_size": vocab,
            "max_position_embeddings": 8192,
            "tie_word_embeddings": False,
            "attention_bias": False,
            "mlp_bias": False,
            "pad_token_id": hf_tok.pad_token_id,
            "bos_token_id": hf_tok.bos_token_id,
            "eos_token_id": hf_tok.eos_token_id,
        },
        scale_factor=spec.scale_factor,
        image_token_id=hf_tok.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False,
        vocab_size=vocab,
        pad_token_id=hf_tok.pad_token_id,
    )
    cfg.save_pretrained(vlm_dir)

    image_processor = SmolVLMImageProcessor(
        size={"longest_edge": spec.image_size},
        max_image_size={"longest_edge": spec.image_size},
        do_image_splitting=False,
    )
    video_processor = SmolVLMVideoProcessor(
        size={"longest_edge": spec.image_size}, max_image_size={"longest_edge": spec.image_size}
    )
    processor = SmolVLMProcessor(
        image_processor=image_processor,
        tokenizer=hf_tok,
        video_processor=video_processor,
        image_seq_len=tokens_per_image,
    )
    processor.save_pretrained(vlm_dir)
    return {"tokenizer_size": n_tok, "vocab_size": vocab, "tokens_per_image": tokens_per_image}


# ----------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------


def versions() -> dict:
    import lerobot
    import numpy
    import safetensors
    import tokenizers
    import torch
    import transformers

    try:
        from importlib.metadata import version as pkg_version

        lerobot_v = pkg_version("lerobot")
    except Exception:  # pragma: no cover
        lerobot_v = getattr(lerobot, "__version__", "unknown")
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lerobot": lerobot_v,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": numpy.__version__,
    }


def identity_position_embeddings_forward(self, pixel_values, patch_attention_mask):
    """SmolVLMVisionEmbeddings.forward with row-major identity position ids (full, unpadded images)."""
    import torch

    patch_embeds = self.patch_embedding(pixel_values)
    embeddings = patch_embeds.flatten(2).transpose(1, 2)
    bsz, n = embeddings.shape[:2]
    if patch_attention_mask is not None and not bool(patch_attention_mask.all()):
        raise RuntimeError("identity position ids assume full (unmasked) patch grids")
    if n != self.num_patches:
        raise RuntimeError(f"expected {self.num_patches} patches, got {n}")
    position_ids = torch.arange(n, device=pixel_values.device)[None, :].expand(bsz, n)
    return embeddings + self.position_embedding(position_ids)


class VisionPositionMode:
    """Context manager switching SmolVLM vision position ids between identity and stock transformers."""

    def __init__(self, identity: bool):
        from transformers.models.smolvlm import modeling_smolvlm

        self.cls = modeling_smolvlm.SmolVLMVisionEmbeddings
        self.identity = identity
        self.orig = self.cls.forward

    def __enter__(self):
        if self.identity:
            self.cls.forward = identity_position_embeddings_forward
        return self

    def __exit__(self, *exc):
        self.cls.forward = self.orig
        return False


def stock_vision_position_ids(image_size: int, patch: int):
    """Position ids that stock transformers computes for a full f32 image (for the record)."""
    import torch
    from transformers.models.smolvlm import modeling_smolvlm

    n = image_size // patch
    captured = {}

    class Cfg:
        hidden_size = 8
        image_size = 0
        patch_size = 0
        num_channels = 3

    c = Cfg()
    c.image_size, c.patch_size = image_size, patch
    emb = modeling_smolvlm.SmolVLMVisionEmbeddings(c)
    orig = emb.position_embedding.forward

    def capture(ids):
        captured["ids"] = ids.clone()
        return orig(ids)

    emb.position_embedding.forward = capture
    x = torch.zeros(1, 3, image_size, image_size)
    mask = torch.ones(1, n, n, dtype=torch.bool)
    with torch.no_grad():
        emb(x, mask)
    return captured["ids"][0]


def randomize_(policy, seed: int) -> None:
    """Re-draw every parameter with a scale that keeps activations O(1) and makes all terms matter."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if p.ndim == 1:
                if name.endswith("bias"):
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
                else:  # norm weights (RMSNorm / LayerNorm)
                    p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name or "lm_head" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            elif "position_embedding" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))


def make_stats(state_dim: int, action_dim: int, seed: int) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed + 7)
    return {
        "observation.state": {
            "mean": 0.5 * torch.randn(state_dim, generator=g),
            "std": 0.2 + 1.5 * torch.rand(state_dim, generator=g),
        },
        "action": {
            "mean": 0.5 * torch.randn(action_dim, generator=g),
            "std": 0.2 + 1.5 * torch.rand(action_dim, generator=g),
        },
    }


def make_frame(h: int, w: int, seed: int):
    """uint8 HWC frame: smooth gradients plus noise (so resampling is exercised on structured data)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    base = np.stack([yy, xx, 0.5 * (yy + xx)], axis=-1) * 200.0
    noise = rng.normal(0.0, 25.0, size=(h, w, 3))
    return np.clip(base + noise + 20.0, 0, 255).astype(np.uint8)


def file_tree_sizes(root: Path) -> dict:
    return {
        str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()
    }


# ----------------------------------------------------------------------------------------------------------
# Building, saving and recording one case
# ----------------------------------------------------------------------------------------------------------


def build_config(spec: CaseSpec, vlm_model_name: str):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig

    s = spec.vlm.image_size
    input_features = {
        f"observation.images.{cam}": PolicyFeature(type=FeatureType.VISUAL, shape=(3, s, s))
        for cam in spec.cameras
    }
    input_features["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(spec.state_dim,))
    output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(spec.action_dim,))}
    return SmolVLAConfig(
        input_features=input_features,
        output_features=output_features,
        device="cpu",
        vlm_model_name=vlm_model_name,
        load_vlm_weights=False,
        resize_imgs_with_padding=(s, s),
        tokenizer_max_length=spec.tokenizer_max_length,
        pad_language_to=spec.pad_language_to,
        num_vlm_layers=spec.num_vlm_layers,
        num_expert_layers=spec.num_expert_layers,
        self_attn_every_n_layers=spec.self_attn_every_n_layers,
        expert_width_multiplier=spec.expert_width_multiplier,
        prefix_length=spec.prefix_length,
        chunk_size=spec.chunk_size,
        n_action_steps=spec.chunk_size,
        num_steps=spec.num_steps,
        push_to_hub=False,
        empty_cameras=spec.empty_cameras,
        **spec.extra_config,
    )


def run_sample(policy, pre, post, spec: CaseSpec, sample: Sample, identity_pos: bool) -> tuple[dict, dict]:
    """Run LeRobot's inference path once, capturing intermediates. Returns (tensors, info)."""
    import torch
    from lerobot.policies.smolvla.modeling_smolvla import create_sinusoidal_pos_embedding
    from lerobot.policies.utils import prepare_observation_for_inference

    t: dict[str, torch.Tensor] = {}
    info: dict = {"task": sample.task, "frames": {}}

    # Raw inputs.
    raw = {}
    for i, cam in enumerate(spec.cameras):
        h, w = sample.frames[cam]
        frame = make_frame(h, w, sample.seed * 10 + i)
        raw[f"observation.images.{cam}"] = frame
        t[f"input.image.{cam}"] = torch.from_numpy(frame.copy())
        info["frames"][cam] = [h, w]
    g = torch.Generator().manual_seed(sample.seed)
    state = (torch.randn(spec.state_dim, generator=g) * 0.8).numpy().astype("float32")
    raw["observation.state"] = state
    t["input.state"] = torch.from_numpy(state.copy())
    noise = torch.randn(1, spec.chunk_size, policy.config.max_action_dim, generator=g, dtype=torch.float32)
    t["noise"] = noise.clone()

    obs = prepare_observation_for_inference(
        {k: v.copy() for k, v in raw.items()}, torch.device("cpu"), sample.task
    )
    batch = pre(obs)
    t["pre.lang_tokens"] = batch["observation.language.tokens"].clone().to(torch.int64)
    t["pre.lang_mask"] = batch["observation.language.attention_mask"].clone().to(torch.uint8)
    t["pre.state_norm"] = batch["observation.state"].clone()

    model = policy.model
    vwe = model.vlm_with_expert
    cap: dict = {"embed_image": [], "vision": [], "v_t": [], "x_t_in": [], "suffix": [], "fill": None}

    images, img_masks = policy.prepare_images(dict(batch))
    # Present cameras in config order, then the empty-camera placeholders LeRobot appends (all -1, mask 0).
    stacked = spec.cameras + [f"empty_camera_{i}" for i in range(spec.empty_cameras)]
    for cam, img, m in zip(stacked, images, img_masks, strict=True):
        t[f"pre.image.{cam}"] = img.clone()
        t[f"pre.img_mask.{cam}"] = m.clone().to(torch.uint8)
    t["pre.state_padded"] = policy.prepare_state(batch).clone()

    # Wrap methods of this policy instance (restored afterwards).
    orig = {
        "embed_image": vwe.embed_image,
        "embed_prefix": model.embed_prefix,
        "embed_suffix": model.embed_suffix,
        "forward": vwe.forward,
        "denoise_step": model.denoise_step,
        "sample_actions": model.sample_actions,
    }
    vision_model = vwe.get_vlm_model().vision_model

    def vision_hook(_m, _inp, out):
        cap["vision"].append(out.last_hidden_state.detach().clone())

    hook = vision_model.register_forward_hook(vision_hook)

    def embed_image(image):
        out = orig["embed_image"](image)
        cap["embed_image"].append(out.detach().clone())
        return out

    def embed_prefix(*a, **k):
        out = orig["embed_prefix"](*a, **k)
        cap["prefix"] = tuple(x.detach().clone() for x in out)
        return out

    def embed_suffix(noisy_actions, timestep):
        out = orig["embed_suffix"](noisy_actions, timestep)
        cap["suffix"].append((timestep.detach().clone(), out[0].detach().clone()))
        return out

    def vwe_forward(*a, **k):
        out = orig["forward"](*a, **k)
        if k.get("fill_kv_cache"):
            cap["fill"] = {
                "attention_mask": k["attention_mask"].detach().clone(),
                "position_ids": k["position_ids"].detach().clone(),
                "kv": {
                    int(li): (d["key_states"].detach().clone(), d["value_states"].detach().clone())
                    for li, d in out[1].items()
                },
            }
        return out

    def denoise_step(prefix_pad_masks, past_key_values, x_t, timestep):
        cap["x_t_in"].append(x_t.detach().clone())
        v = orig["denoise_step"](
            prefix_pad_masks=prefix_pad_masks, past_key_values=past_key_values, x_t=x_t, timestep=timestep
        )
        cap["v_t"].append(v.detach().clone())
        return v

    def sample_actions(*a, **k):
        out = orig["sample_actions"](*a, **k)
        cap["x0_full"] = out.detach().clone()
        return out

    vwe.embed_image = embed_image
    model.embed_prefix = embed_prefix
    model.embed_suffix = embed_suffix
    vwe.forward = vwe_forward
    model.denoise_step = denoise_step
    model.sample_actions = sample_actions
    try:
        policy.reset()
        with VisionPositionMode(identity_pos), torch.no_grad():
            actions_norm = policy.predict_action_chunk(batch, noise=noise.clone())
            actions = post(actions_norm.clone())
    finally:
        hook.remove()
        for k, v in orig.items():
            obj = vwe if k in ("embed_image", "forward") else model
            delattr(obj, k)  # remove the instance attribute; the class method is visible again
            assert getattr(obj, k).__func__ is v.__func__

    for cam, vis, emb in zip(stacked, cap["vision"], cap["embed_image"], strict=True):
        t[f"vision.{cam}.last_hidden_state"] = vis
        t[f"vision.{cam}.connector"] = emb
    pe, pm, am = cap["prefix"]
    t["prefix.embs"] = pe
    t["prefix.pad_mask"] = pm.to(torch.uint8)
    t["prefix.att_mask"] = am.to(torch.uint8)
    t["prefix.att_2d_mask"] = cap["fill"]["attention_mask"].to(torch.uint8)
    t["prefix.position_ids"] = cap["fill"]["position_ids"].to(torch.int64)
    for li, (k_, v_) in sorted(cap["fill"]["kv"].items()):
        t[f"kv.{li}.k"] = k_
        t[f"kv.{li}.v"] = v_
    times = []
    for step, (x_in, v) in enumerate(zip(cap["x_t_in"], cap["v_t"], strict=True)):
        t[f"step.{step}.x_t"] = x_in
        t[f"step.{step}.v_t"] = v
    for step, (ts, semb) in enumerate(cap["suffix"]):
        times.append(float(ts[0]))
        if step == 0:
            t["step.0.suffix_embs"] = semb
    time_tensor = torch.tensor(times, dtype=torch.float32)
    t["time"] = time_tensor
    t["time_emb"] = create_sinusoidal_pos_embedding(
        time_tensor, vwe.expert_hidden_size, policy.config.min_period, policy.config.max_period,
        device=torch.device("cpu"),
    ).to(torch.float32)
    t["x0_full"] = cap["x0_full"]
    t["actions_norm"] = actions_norm.clone()
    t["actions"] = actions.clone()
    info["num_prefix_tokens"] = int(pe.shape[1])
    info["num_valid_lang_tokens"] = int(t["pre.lang_mask"].sum())
    info["decoded_tokens"] = pre.steps[  # the tokenizer step of the preprocessor
        [type(s).__name__ for s in pre.steps].index("TokenizerProcessorStep")
    ].input_tokenizer.convert_ids_to_tokens(t["pre.lang_tokens"][0].tolist())
    return t, info


def make_case(spec: CaseSpec, out_root: Path, record: bool = True, dtype: str = "float32") -> dict:
    import torch
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors
    from safetensors.torch import save_file

    t0 = time.time()
    case_dir = out_root / spec.name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    vlm_dir = case_dir / "vlm"
    tok_info = build_vlm_dir(vlm_dir, spec.vlm)
    try:
        vlm_name = str(vlm_dir.relative_to(REPO))  # relative to the repo root (the script chdirs there)
    except ValueError:
        vlm_name = str(vlm_dir)

    torch.manual_seed(spec.seed)
    config = build_config(spec, vlm_name)
    policy = SmolVLAPolicy(config)
    randomize_(policy, spec.seed)
    if dtype == "bfloat16":
        policy = policy.to(torch.bfloat16)
    policy.eval()
    stats = make_stats(spec.state_dim, spec.action_dim, spec.seed)
    pre, post = make_smolvla_pre_post_processors(config, dataset_stats=stats)

    ckpt = case_dir / "checkpoint"
    policy.save_pretrained(ckpt)
    pre.save_pretrained(ckpt)
    post.save_pretrained(ckpt)
    build_s = time.time() - t0
    n_params = sum(p.numel() for p in policy.parameters())
    del policy

    result = {
        "name": spec.name,
        "description": spec.description,
        "versions": versions(),
        "generator": "tools/make_smolvla_fixtures.py",
        "vlm_model_name": vlm_name,
        "vlm": {**spec.vlm.__dict__, **tok_info},
        "policy": {
            "cameras": [f"observation.images.{c}" for c in spec.cameras],  # the ones an observation gives
            "empty_cameras": spec.empty_cameras,
            "state_dim": spec.state_dim,
            "action_dim": spec.action_dim,
            "tokenizer_max_length": spec.tokenizer_max_length,
            "pad_language_to": spec.pad_language_to,
            "num_vlm_layers": spec.num_vlm_layers,
            "num_expert_layers": spec.num_expert_layers,
            "self_attn_every_n_layers": spec.self_attn_every_n_layers,
            "expert_width_multiplier": spec.expert_width_multiplier,
            "chunk_size": spec.chunk_size,
            "num_steps": spec.num_steps,
            "dtype": dtype,
            "num_parameters": n_params,
        },
        "seed": spec.seed,
        "build_and_save_seconds": round(build_s, 2),
    }
    if not record:
        result["files"] = file_tree_sizes(case_dir)
        return result

    # Reload everything from disk with LeRobot's own loaders and record outputs.
    policy = SmolVLAPolicy.from_pretrained(str(ckpt))
    policy.eval()
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(ckpt))

    tensors: dict = {}
    samples_info = []
    for sample in spec.samples:
        t, info = run_sample(policy, pre, post, spec, sample, identity_pos=True)
        t_stock, _ = run_sample(policy, pre, post, spec, sample, identity_pos=False)
        t["stock_tf.actions_norm"] = t_stock["actions_norm"]
        t["stock_tf.prefix.embs"] = t_stock["prefix.embs"]
        info["stock_tf_max_abs_diff_actions_norm"] = float(
            (t_stock["actions_norm"] - t["actions_norm"]).abs().max()
        )
        # Re-run the identity path to check determinism.
        t_again, _ = run_sample(policy, pre, post, spec, sample, identity_pos=True)
        info["rerun_max_abs_diff_actions"] = float((t_again["actions"] - t["actions"]).abs().max())
        for k, v in t.items():
            tensors[f"{sample.name}.{k}"] = v.detach().contiguous().cpu()
        samples_info.append({"name": sample.name, "seed": sample.seed, **info})
    s = spec.vlm.image_size
    tensors["vision_position_ids.identity"] = torch.arange((s // spec.vlm.patch) ** 2, dtype=torch.int64)
    tensors["vision_position_ids.stock_tf_f32"] = stock_vision_position_ids(s, spec.vlm.patch).to(torch.int64)
    save_file(tensors, str(case_dir / "reference.safetensors"))

    result["samples"] = samples_info
    result["tensors"] = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                         for k, v in sorted(tensors.items())}
    result["notes"] = [
        "Images: input.image.* are uint8 HWC; LeRobot converts them to float32/255 CHW "
        "(prepare_observation_for_inference), the preprocessor leaves VISUAL features unnormalised, "
        "SmolVLAPolicy.prepare_images resizes with padding (left/top, value 0) and maps to [-1,1] "
        "(pre.image.*).",
        "Masks are stored as uint8 (1 = true). Token ids and positions are int64.",
        "step.K.x_t is the input of denoising step K, step.K.v_t its velocity; time[K] = 1 + K*(-1/num_steps) "
        "as float32; x0_full is the final x (all 32 action dims); actions_norm = x0_full[..., :action_dim]; "
        "actions = actions_norm * std + mean (policy_postprocessor).",
        "kv.L.k / kv.L.v are the post-RoPE prefix keys/values of VLM layer L, shape [B, P, kv_heads, head_dim].",
        "vision.*.last_hidden_state is the SigLIP output after post_layernorm; vision.*.connector is after "
        "pixel shuffle + modality projection, before the sqrt(hidden) scaling applied in embed_prefix.",
        "Vision position ids: the main reference uses identity ids (vision_position_ids.identity); "
        "stock transformers in f32 uses vision_position_ids.stock_tf_f32 (transformers#41190); "
        "<sample>.stock_tf.* holds those outputs for information.",
    ]
    result["elapsed_seconds"] = round(time.time() - t0, 2)
    result["files"] = file_tree_sizes(case_dir)
    with open(case_dir / "case.json", "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output root for the small cases")
    ap.add_argument("--only", nargs="*", help="case names to (re)generate (the others are left untouched)")
    ap.add_argument("--full-size", type=Path, metavar="OUT_DIR",
                    help="write a random-weight checkpoint shaped like lerobot/smolvla_base to OUT_DIR "
                         "(not committed; e.g. models/) instead of the small fixtures")
    ap.add_argument("--full-size-dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--full-size-record", action="store_true",
                    help="also run and record one inference for the full-size checkpoint (slow)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    os.chdir(REPO)  # vlm_model_name is stored relative to the repository root
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    if args.full_size:
        out_dir = args.full_size.resolve()
        spec = full_size_case()
        spec.name = out_dir.name  # the case directory is OUT_DIR itself
        res = make_case(spec, out_dir.parent, record=args.full_size_record, dtype=args.full_size_dtype)
        total = sum(res["files"].values())
        print(json.dumps({"name": res["name"], "dir": str(out_dir), "total_bytes": total,
                          "num_parameters": res["policy"]["num_parameters"],
                          "build_and_save_seconds": res["build_and_save_seconds"]}, indent=2))
        return 0

    out_root = args.out.resolve()
    known = [c.name for c in small_cases()]
    unknown = sorted(set(args.only or []) - set(known))
    if unknown:
        ap.error(f"--only: unknown case(s) {', '.join(unknown)}; known: {', '.join(known)}")
    out_root.mkdir(parents=True, exist_ok=True)
    summary = []
    for spec in small_cases():
        if args.only and spec.name not in args.only:
            continue
        res = make_case(spec, out_root)
        total = sum(res["files"].values())
        summary.append({"name": spec.name, "bytes": total, "seconds": res["elapsed_seconds"],
                        "samples": [(s["name"], s["num_prefix_tokens"], s["stock_tf_max_abs_diff_actions_norm"],
                                     s["rerun_max_abs_diff_actions"]) for s in res["samples"]]})
        print(json.dumps(summary[-1]), flush=True)
    print("total bytes:", sum(s["bytes"] for s in summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
