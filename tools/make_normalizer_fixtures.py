#!/usr/bin/env python3
"""Expected outputs of LeRobot's normaliser for every NormalizationMode, for tests/test_normalize.cpp.

    .venv/bin/python tools/make_normalizer_fixtures.py   (needs lerobot + torch; writes
    tests/data/normalizer/cases.json)

Random float32 stats per mode (some dimensions with a zero range, so the eps branch runs), random
inputs, and LeRobot's NormalizerProcessorStep._apply_transform forward and inverse outputs, all as
exact float32 values. No downloads.
"""
import json
import os

import numpy as np
import torch
from lerobot import __version__ as lerobot_version
from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature
from lerobot.processor.normalize_processor import NormalizerProcessorStep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "normalizer", "cases.json")


def f32(a):
    return [float(x) for x in np.asarray(a, dtype=np.float32).ravel()]


def main():
    rng = np.random.default_rng(20261203)
    dim, rows = 7, 6
    cases = []
    for mode in ["MEAN_STD", "MIN_MAX", "QUANTILES", "QUANTILE10", "IDENTITY"]:
        lo = rng.uniform(-3, 1, dim).astype(np.float32)
        hi = (lo + rng.uniform(0.1, 4, dim)).astype(np.float32)
        hi[2] = lo[2]  # zero range: the eps branch
        stats = {"mean": rng.uniform(-2, 2, dim).astype(np.float32),
                 "std": rng.uniform(0.01, 3, dim).astype(np.float32),
                 "min": lo, "max": hi, "q01": lo, "q99": hi, "q10": lo, "q90": hi}
        stats["std"][4] = 0.0  # std 0: divides by eps
        step = NormalizerProcessorStep(
            features={"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(dim,))},
            norm_map={FeatureType.STATE: NormalizationMode[mode]},
            stats={"observation.state": {k: v.tolist() for k, v in stats.items()}},
            dtype=torch.float32)
        x = rng.uniform(-5, 5, (rows, dim)).astype(np.float32)
        t = torch.from_numpy(x)
        fwd = step._apply_transform(t, "observation.state", FeatureType.STATE, inverse=False).numpy()
        inv = step._apply_transform(t, "observation.state", FeatureType.STATE, inverse=True).numpy()
        cases.append({"mode": mode, "dim": dim, "stats": {k: f32(v) for k, v in stats.items()},
                      "x": f32(x), "normalized": f32(fwd), "unnormalized": f32(inv)})
    with open(OUT, "w") as f:
        json.dump({"lerobot": lerobot_version, "torch": torch.__version__, "eps": 1e-8, "cases": cases}, f, indent=1)
    print("wrote", OUT, len(cases), "cases; lerobot", lerobot_version)


if __name__ == "__main__":
    main()
