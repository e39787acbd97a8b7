"""LeRobot processors of the vlart policy: batch + CPU only (vlart normalises and tokenises itself)."""
from __future__ import annotations

from typing import Any

import torch
from lerobot.processor import (
    AddBatchDimensionProcessorStep,
    DeviceProcessorStep,
    PolicyAction,
    PolicyProcessorPipeline,
    RenameObservationsProcessorStep,
    make_policy_processor_pipelines,
)

from .configuration_vlart import VlartConfig


def make_vlart_pre_post_processors(
    config: VlartConfig,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[PolicyProcessorPipeline[dict[str, Any], dict[str, Any]], PolicyProcessorPipeline[PolicyAction, PolicyAction]]:
    """Pre: rename (for --rename_map), add the batch dimension, to the CPU. Post: to the CPU. The
    checkpoint's own normaliser and tokenizer steps run inside vlart (its raw-state / raw-action
    contract), so they must not run here too; `dataset_stats` is therefore not used."""
    del dataset_stats
    input_steps = [
        RenameObservationsProcessorStep(rename_map={}),
        AddBatchDimensionProcessorStep(),
        DeviceProcessorStep(device="cpu"),
    ]
    output_steps = [DeviceProcessorStep(device="cpu")]
    return make_policy_processor_pipelines(input_steps=input_steps, output_steps=output_steps)
