"""Helpers shared by the Python-side tests and benchmarks (vlart serve, the Python package): start/stop
a server process, write PNG files without PIL, run `vlart run --json` for reference actions, build
observation dicts, compare float32 arrays bit for bit."""
import json
import os
import re
import signal
import struct
import subprocess
import time
import urllib.request
import zlib

import numpy as np


def write_png(path, img):
    """An RGB uint8 HWC array as an 8-bit truecolour PNG (what `vlart run --image` reads)."""
    h, w, c = img.shape
    assert c == 3 and img.dtype == np.uint8
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


class ServerProcess:
    """`vlart serve MODEL --port 0 ...` in a child process; .port once it listens."""

    def __init__(self, vlart, model, *args, timeout=300):
        self.proc = subprocess.Popen([vlart, "serve", model, "--port", "0", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines = []
        deadline = time.time() + timeout
        self.port = None
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("vlart serve exited before listening:\n" + "".join(self.lines))
            self.lines.append(line)
            m = re.search(r"listening on ws://[0-9.]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            raise RuntimeError("vlart serve did not start listening in time")

    def rss_mib(self, field="VmRSS"):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
        return float("nan")

    def http(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return r.status, r.read().decode()

    def stop(self, timeout=30):
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=timeout)
        self.lines.append(out)
        return self.proc.returncode


def fmt_state(state):
    # repr of the exact float32 value: strtof in `vlart run` reads back the same float.
    return ",".join(repr(float(v)) for v in np.asarray(state, np.float32))


def vlart_run(vlart, model, image_files, state, task, seed=None, noise_file=None, extra=()):
    """Actions of `vlart run --json` as float32 [horizon, action_dim]."""
    cmd = [vlart, "run", model, "--state", fmt_state(state), "--task", task, "--json", *extra]
    for cam, path in image_files.items():
        cmd += ["--image", f"{cam}={path}"]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if noise_file is not None:
        cmd += ["--noise", noise_file]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    j = json.loads(out)
    return np.asarray(j["actions"], dtype=np.float64).astype(np.float32), j


def observation(images, state, task, openpi_keys, seed=None, noise=None):
    """An observation dict in openpi's ("observation/<cam>", "prompt") or LeRobot's key style."""
    obs = {}
    for cam, img in images.items():
        obs[("observation/" if openpi_keys else "observation.images.") + cam] = img
    obs["observation/state" if openpi_keys else "observation.state"] = np.asarray(state, np.float32)
    obs["prompt" if openpi_keys else "task"] = task
    if seed is not None:
        obs["seed"] = seed
    if noise is not None:
        obs["noise"] = noise
    return obs


def same_bits(a, b):
    """float32 arrays equal bit for bit (shape and every value)."""
    a, b = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))
