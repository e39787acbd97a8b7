"""VlartPolicy: a LeRobot PreTrainedPolicy whose inference is vlart's."""
from __future__ import annotations

from collections import deque

import numpy as np
import torch
import vlart
from lerobot.policies.pretrained import PreTrainedPolicy

from .configuration_vlart import VlartConfig

_STATE = "observation.state"


def _to_uint8_hwc(img: torch.Tensor) -> np.ndarray:
    """A LeRobot image (float32 [3, H, W] in [0, 1], from uint8 / 255) back to the uint8 HWC frame."""
    if img.dtype == torch.uint8:
        t = img
    else:
        t = (img.detach().to(torch.float32) * 255.0).round().clamp(0, 255).to(torch.uint8)
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"vlart policy: expected an image [3, H, W], got {list(t.shape)}")
    return np.ascontiguousarray(t.permute(1, 2, 0).cpu().numpy())


class VlartPolicy(PreTrainedPolicy):
    """Runs `config.checkpoint` on vlart. Same contract as LeRobot's SmolVLAPolicy / PI0Policy after
    their processors: `select_action` pops one action of the current chunk and re-plans when the
    queue is empty; `predict_action_chunk` returns [B, chunk_size, action_dim], unnormalised.
    Initial noise: the caller's `noise=` or, as LeRobot's flow policies draw it, torch.normal(0, 1)
    of [B, chunk_size, max_action_dim] float32 on the CPU (so a seeded torch RNG reproduces LeRobot's).
    """

    config_class = VlartConfig
    name = "vlart"

    def __init__(self, config: VlartConfig, **kwargs):
        super().__init__(config)
        config.validate_features()
        self.config = config
        self.vlart = vlart.Policy(config.checkpoint, threads=config.threads, dtype=config.dtype,
                                  backend=config.backend, tokenizer=config.tokenizer, vlm_config=config.vlm_config)
        info = self.vlart.info
        self._cameras = info["cameras"]
        self._noise_shape = tuple(info["noise_shape"])
        self.register_buffer("_device_anchor", torch.zeros(0), persistent=False)
        self.reset()

    def reset(self):
        self._queue: deque = deque(maxlen=self.config.n_action_steps)

    def get_optim_params(self) -> dict:
        return {}

    def forward(self, batch):
        raise NotImplementedError("vlart policy: inference only (train with LeRobot's own policy, run it with vlart)")

    def _observations(self, batch) -> list:
        state = batch[_STATE]
        if state.ndim == 1:
            state = state.unsqueeze(0)
        n = state.shape[0]
        tasks = batch.get("task", [""] * n)
        if isinstance(tasks, str):
            tasks = [tasks] * n
        obs = []
        for b in range(n):
            images = {}
            for cam in self._cameras:
                key = cam["name"]
                if key in batch:
                    img = batch[key]
                    images[cam["key"]] = _to_uint8_hwc(img[b] if img.ndim == 4 else img)
                elif not cam["optional"]:
                    raise KeyError(f"vlart policy: the batch has no '{key}' (this checkpoint's cameras: "
                                   f"{[c['name'] for c in self._cameras]})")
            obs.append({"images": images, "state": state[b].detach().to(torch.float32).cpu().numpy(),
                        "task": str(tasks[b])})
        return obs

    @torch.no_grad()
    def predict_action_chunk(self, batch, noise: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        obs = self._observations(batch)
        if noise is None:
            noise = torch.normal(mean=0.0, std=1.0, size=(len(obs), *self._noise_shape), dtype=torch.float32,
                                 device="cpu")
        nz = noise.detach().to(torch.float32).cpu().numpy().reshape(len(obs), *self._noise_shape)
        chunks = self.vlart.infer_batch(obs, noise=nz)
        return torch.from_numpy(np.stack([c.actions for c in chunks]))

    @torch.no_grad()
    def select_action(self, batch, noise: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        if len(self._queue) == 0:
            actions = self.predict_action_chunk(batch, noise=noise)[:, : self.config.n_action_steps]
            self._queue.extend(actions.transpose(0, 1))
        return self._queue.popleft()
