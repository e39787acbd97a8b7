#!/usr/bin/env python3
"""Expected image preprocessing of LeRobot's SmolVLA and pi0 for tests/test_preprocess.cpp.

    .venv/bin/python tools/make_preprocess_fixtures.py   (needs lerobot + torch + safetensors;
    writes tests/data/preprocess/resize_with_pad.safetensors)

Random uint8 frames of several sizes through LeRobot's own functions, to a non-square target (so an
(h, w) order mix-up shows): SmolVLA's `resize_with_pad(img, width, height, pad_value=0)` (pads
left/top) then x*2-1, and pi0's `resize_with_pad_torch(img, height, width)` (pads centred, with
-1 for float frames; skipped when the frame already has the target size) then x*2-1, as
PI0Policy._preprocess_images does. No downloads.
"""
import os

import numpy as np
import torch
from lerobot import __version__ as lerobot_version
from lerobot.policies.pi0.modeling_pi0 import resize_with_pad_torch
from lerobot.policies.smolvla.modeling_smolvla import resize_with_pad
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "preprocess", "resize_with_pad.safetensors")
TH, TW = 48, 40  # target height, width


def main():
    rng = np.random.default_rng(7)
    tensors = {}
    sizes = [(37, 53), (48, 40), (90, 30), (20, 100), (96, 80), (47, 41)]
    for i, (h, w) in enumerate(sizes):
        u8 = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        x = torch.from_numpy(u8.astype(np.float32) / 255.0)  # HWC in [0, 1], as LeRobot feeds policies
        chw = x.permute(2, 0, 1).unsqueeze(0)
        sv = resize_with_pad(chw, TW, TH, pad_value=0) * 2.0 - 1.0
        bhwc = x.unsqueeze(0)
        if tuple(bhwc.shape[1:3]) != (TH, TW):
            bhwc = resize_with_pad_torch(bhwc, TH, TW)
        p0 = (bhwc * 2.0 - 1.0).permute(0, 3, 1, 2)
        tensors[f"in.{i}"] = u8
        tensors[f"smolvla.{i}"] = sv[0].numpy().astype(np.float32)
        tensors[f"pi0.{i}"] = p0[0].contiguous().numpy().astype(np.float32)
    save_file(tensors, OUT, metadata={"lerobot": lerobot_version, "torch": torch.__version__,
                                      "target": f"{TH}x{TW}", "cases": str(len(sizes))})
    print("wrote", OUT, len(sizes), "cases; lerobot", lerobot_version)


if __name__ == "__main__":
    main()
