#!/usr/bin/env python3
"""Make a `vlart compare --obs` directory from a SmolVLA fixture case.

    python3 tools/make_obs_dir.py tests/data/smolvla/a_one_cam_square /tmp/obs_a

Writes one subdirectory per fixture sample (s0, s1, ...) holding <camera>.png (the recorded uint8
HWC frames), state.txt (comma-separated, round-trippable float32), task.txt and noise.npy (the
recorded [horizon, max_action_dim] initial noise), so that `vlart compare` runs the models on the
same inputs and noise as the LeRobot reference.

Needs numpy only: the safetensors file is parsed directly and PNGs are written with zlib.
"""
import argparse
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "U8": np.uint8, "I64": np.int64, "I32": np.int32,
           "F64": np.float64, "I8": np.int8, "BOOL": np.bool_}


def read_safetensors(path):
    data = Path(path).read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[base + b:base + e], dtype=_DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def write_png(path, rgb):
    """8-bit RGB PNG, no filtering."""
    h, w, c = rgb.shape
    assert c == 3 and rgb.dtype == np.uint8
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag, payload):
        return (struct.pack(">I", len(payload)) + tag + payload +
                struct.pack(">I", zlib.crc32(tag + payload) & 0xFFFFFFFF))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
           chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    Path(path).write_bytes(png)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case_dir", help="tests/data/smolvla/<case> (reference.safetensors + case.json)")
    ap.add_argument("out_dir")
    ap.add_argument("--no-noise", action="store_true", help="omit noise.npy (compare then draws seeded noise)")
    a = ap.parse_args()
    case = Path(a.case_dir)
    meta = json.loads((case / "case.json").read_text())
    ref = read_safetensors(case / "reference.safetensors")
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for smp in meta["samples"]:
        s = smp["name"]
        d = out / s
        d.mkdir(exist_ok=True)
        for cam in smp["frames"]:
            write_png(d / f"{cam}.png", np.ascontiguousarray(ref[f"{s}.input.image.{cam}"]))
        state = ref[f"{s}.input.state"].astype(np.float32).reshape(-1)
        (d / "state.txt").write_text(",".join(repr(float(v)) for v in state))
        (d / "task.txt").write_text(smp["task"])
        if not a.no_noise:
            noise = ref[f"{s}.noise"].astype(np.float32)
            np.save(d / "noise.npy", noise.reshape(noise.shape[-2], noise.shape[-1]))
    print(f"{out}: {len(meta['samples'])} observation(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
