"""VlartConfig: which checkpoint vlart runs, and how."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.optim.optimizers import AdamWConfig


@PreTrainedConfig.register_subclass("vlart")
@dataclass
class VlartConfig(PreTrainedConfig):
    """A LeRobot (or vlart quantized / pruned) checkpoint directory run by vlart.

    vlart does the checkpoint's own preprocessing (image resize and padding, tokenizer, state and
    action normalisation) from the files in the directory, so the LeRobot processors of this policy
    only batch the observation and move it to the CPU.
    """

    checkpoint: str = ""       # checkpoint directory (SmolVLA, pi0, pi0.5 as LeRobot saves them)
    threads: int = 0           # CPU threads (0 = all)
    dtype: str = "f32"         # f32 or bf16 compute
    backend: str = "cpu"       # cpu, cuda, auto
    n_action_steps: int = 0    # actions executed per chunk (0 = the checkpoint's n_action_steps)
    tokenizer: str = ""        # tokenizer.json or its directory (default: searched next to the checkpoint)
    vlm_config: str = ""       # SmolVLA: directory of the SmolVLM config (default: searched)

    def __post_init__(self):
        super().__post_init__()
        self.device = "cpu"  # the inputs vlart reads are host arrays; it places its own compute
        if self.checkpoint:
            path = os.path.join(self.checkpoint, "config.json")
            if not os.path.isfile(path):
                raise FileNotFoundError(f"vlart policy: no config.json in --policy.checkpoint={self.checkpoint}")
            with open(path) as f:
                ck = json.load(f)
            # The checkpoint's features, in its own order (the order the model stacks cameras in).
            if not self.input_features:
                self.input_features = {k: _feature(v) for k, v in ck.get("input_features", {}).items()}
            if not self.output_features:
                self.output_features = {k: _feature(v) for k, v in ck.get("output_features", {}).items()}
            if self.n_action_steps <= 0:
                self.n_action_steps = int(ck.get("n_action_steps", ck.get("chunk_size", 1)))

    @property
    def observation_delta_indices(self):
        return None

    @property
    def action_delta_indices(self):
        return None

    @property
    def reward_delta_indices(self):
        return None

    def get_optimizer_preset(self):
        return AdamWConfig()  # not used: vlart runs inference only

    def get_scheduler_preset(self):
        return None

    def validate_features(self) -> None:
        if not self.checkpoint:
            raise ValueError("vlart policy: set --policy.checkpoint=DIR (a LeRobot checkpoint directory)")


def _feature(v) -> PolicyFeature:
    if isinstance(v, PolicyFeature):
        return v
    return PolicyFeature(type=FeatureType(v["type"]), shape=tuple(v["shape"]))
