"""vlart: a C++ inference runtime for vision-language-action robot policies.

    import numpy as np, vlart
    policy = vlart.Policy("path/to/checkpoint", threads=4)        # LeRobot SmolVLA / pi0 / pi0.5 directory
    policy.info                                                    # cameras, state_dim, action_dim, horizon, ...
    actions = policy.infer({"top": rgb_uint8_hwc}, state, "pick up the cube")   # float32 [horizon, action_dim]

Frames are uint8 [H, W, 3] RGB arrays, read in place (no copy); the GIL is released while the policy runs.
Errors raise vlart.VlartError subclasses carrying the library's message (InvalidArgumentError is also a
ValueError, NotFoundError a FileNotFoundError, IoError an OSError, UnsupportedError a NotImplementedError).
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from ._vlart import (  # noqa: F401
    FormatError,
    _Meta,
    InvalidArgumentError,
    IoError,
    NotFoundError,
    UnsupportedError,
    VlartError,
    _Policy,
    version,
)

__all__ = ["Policy", "Chunk", "VlartError", "InvalidArgumentError", "FormatError", "NotFoundError", "IoError",
           "UnsupportedError", "version"]
__version__ = version()

_IMAGE_PREFIX = "observation.images."


class Chunk:
    """One inference: `actions` float32 [horizon, action_dim] (unnormalised), `text` and `tokens` (policies that
    decode text; empty otherwise), `timings` (ms per stage, "total" = their sum, "call" = the C++ call's wall time)."""

    __slots__ = ("actions", "_meta")

    def __init__(self, actions: np.ndarray, meta):
        self.actions = actions
        self._meta = meta

    @property
    def text(self) -> str:
        return self._meta.text

    @property
    def tokens(self) -> list:
        return self._meta.tokens

    @property
    def timings(self) -> dict:
        return self._meta.timings

    def __repr__(self) -> str:
        return f"<vlart.Chunk actions {self.actions.shape}{' text ' + repr(self.text) if self.text else ''}>"


def _frames(images: Mapping[str, np.ndarray]) -> dict:
    out = {}
    for cam, img in images.items():
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
            raise InvalidArgumentError(
                f"image '{cam}': expected a numpy uint8 array [height, width, 3] (HWC RGB), got "
                f"{type(img).__name__}{'' if not isinstance(img, np.ndarray) else ' ' + str(img.dtype) + ' ' + str(list(img.shape))}")
        out[cam[len(_IMAGE_PREFIX):] if cam.startswith(_IMAGE_PREFIX) else cam] = img
    return out


def _f32(x, flat: bool = False) -> np.ndarray:
    """float32 C-contiguous (no copy when x already is); flat: 1-D (a [1, state_dim] state is accepted)."""
    a = np.ascontiguousarray(x, dtype=np.float32)
    return a.reshape(-1) if flat else a


class Policy:
    """A policy checkpoint loaded once; `infer` at every re-plan.

    Args:
      path: checkpoint directory (LeRobot `save_pretrained` layout; SmolVLA, pi0, pi0.5, or a vlart
        quantized / pruned copy).
      threads: CPU threads (0 = all hardware threads).
      dtype: "f32" or "bf16" compute.
      backend: "cpu", "cuda" or "auto".
      flow_steps: override of the checkpoint's integration steps (0 = the checkpoint's).
      tokenizer: tokenizer.json file or directory (default: searched next to the checkpoint).
      noise_seed: seed of the noise drawn when `infer` gets none.
      vision_cache_bytes / task_cache_bytes: exact feature caches (0 = off).
      attention: "auto", "f32", "int16" or "int8" attention products.
      vlm_config: directory of the SmolVLM config.json (SmolVLA; default: searched).
      response_max_tokens, response_stop_at_eos, decode_weights ("" or "int8"), reason_every,
        reason_scene_threshold: text-decoding policies (opentau pi05 with predict_response; docs/reasoning.md):
        decode-step cap, early stop at <eos>, int8 decode weights, reasoning reuse per robot_id.
    """

    def __init__(self, path: str, threads: int = 0, dtype: str = "f32", backend: str = "cpu", flow_steps: int = 0,
                 tokenizer: str = "", noise_seed: int = 0, vision_cache_bytes: int = 0,
                 task_cache_bytes: int = 4 << 20, attention: str = "auto", vlm_config: str = "",
                 response_max_tokens: int = 0, response_stop_at_eos: bool = True, decode_weights: str = "",
                 reason_every: int = 0, reason_scene_threshold: float = 0.0):
        self._p = _Policy(str(path), threads=threads, dtype=dtype, backend=backend, flow_steps=flow_steps,
                          tokenizer=str(tokenizer), noise_seed=noise_seed, vision_cache_bytes=vision_cache_bytes,
                          task_cache_bytes=task_cache_bytes, attention=attention, vlm_config=str(vlm_config),
                          response_max_tokens=response_max_tokens, response_stop_at_eos=response_stop_at_eos,
                          decode_weights=decode_weights, reason_every=reason_every,
                          reason_scene_threshold=reason_scene_threshold)
        self.path = str(path)
        self.info: dict = self._p.info
        self._shape = (self.info["horizon"], self.info["action_dim"])

    def __repr__(self) -> str:
        i = self.info
        return (f"<vlart.Policy {i['family']} {self.path}: {len(i['cameras'])} camera(s), state {i['state_dim']}, "
                f"actions {i['horizon']}x{i['action_dim']}, {i['compute_dtype']} on {i['backend']}>")

    def infer_chunk(self, images: Mapping[str, np.ndarray], state, task: str = "", noise=None,
                    token_ids: Optional[Sequence[int]] = None, robot_id: str = "") -> Chunk:
        """One inference; the Chunk carries actions, text (policies that emit text), tokens and stage timings."""
        nz = None if noise is None else _f32(noise)
        ids = None if token_ids is None else [int(t) for t in token_ids]
        out, meta = np.empty(self._shape, np.float32), _Meta()
        self._p.infer(_frames(images), _f32(state, flat=True), task, nz, ids, robot_id, out, meta)
        return Chunk(out, meta)

    def infer(self, images: Mapping[str, np.ndarray], state, task: str = "", noise=None,
              token_ids: Optional[Sequence[int]] = None, robot_id: str = "") -> np.ndarray:
        """Action chunk float32 [horizon, action_dim] (unnormalised) for one observation.

        images: camera name (short "top" or "observation.images.top") -> uint8 [H, W, 3] RGB, any size.
        state: state_dim raw values. task: the instruction. noise: optional initial noise of
        info["noise_shape"] (LeRobot's noise=). robot_id: vision-cache namespace.
        """
        nz = None if noise is None else _f32(noise)
        ids = None if token_ids is None else [int(t) for t in token_ids]
        out = np.empty(self._shape, np.float32)
        self._p.infer(_frames(images), _f32(state, flat=True), task, nz, ids, robot_id, out, _Meta())
        return out

    def infer_batch(self, observations: Sequence[Mapping], noise=None) -> list:
        """Several observations (dicts with "images", "state", optional "task", "robot_id") in one call;
        noise optional [len(observations), *noise_shape]. Returns one Chunk per observation, equal to
        infer_chunk on each with the same noise."""
        images = [_frames(o["images"]) for o in observations]
        states = [_f32(o["state"], flat=True) for o in observations]
        tasks = [str(o.get("task", "")) for o in observations]
        rids = [str(o.get("robot_id", "")) for o in observations]
        nz = None if noise is None else _f32(noise)
        return [Chunk(np.frombuffer(buf, np.float32).reshape(self._shape), meta)
                for buf, meta in self._p.infer_batch(images, states, tasks, nz, rids if any(rids) else [])]

    def validate(self, images: Mapping[str, np.ndarray], state, task: str = "") -> None:
        """The checks infer makes, without running; raises InvalidArgumentError naming the problem."""
        self._p.validate(_frames(images), _f32(state, flat=True), task)

    def seeded_noise(self, seed: int) -> np.ndarray:
        """The initial noise of the first inference with noise_seed=seed (`vlart run --seed`), noise_shape."""
        return self._p.seeded_noise(seed).reshape(tuple(self.info["noise_shape"]))

    def cache_stats(self) -> dict:
        """Counters of the vision, task, visual-reuse and packed-weight caches."""
        return self._p.cache_stats()

    def clear_vision_cache(self, robot_id: Optional[str] = None) -> None:
        self._p.clear_vision_cache(robot_id)

    def profile_report(self) -> str:
        return self._p.profile_report()
