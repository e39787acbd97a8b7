"""vlart policy replicas under Ray Serve: N replicas of one checkpoint behind one HTTP endpoint.

Each replica loads the checkpoint once with the vlart Python package (threads = its CPU share) and
answers POST / requests whose body is one msgpack observation in openpi's format (the same keys and
numpy-array maps `vlart serve` reads: "observation/<cam>" or "observation.images.<cam>" uint8 HWC,
"observation/state" or "observation.state", "prompt" or "task", optional "noise" or "seed"). The
answer is a msgpack map {"actions": ndarray f32 [horizon, action_dim], "policy_timing": {...},
"replica": "<pid>"}; a bad request gets HTTP 400 with the library's one-line message.

    ray start --head  (or let serve.run start a local instance)
    python examples/ray_serve/vlart_deployment.py --checkpoint assets/default_policy --replicas 2 --threads 1
"""
from __future__ import annotations

import argparse
import asyncio
import os

import msgpack
import numpy as np
from ray import serve
from starlette.requests import Request
from starlette.responses import Response

_IMG = "observation.images."
_OPENPI = "observation/"


def _decode(obj):
    """openpi's msgpack_numpy: {b"__ndarray__": True, b"data", b"dtype", b"shape"} -> ndarray."""
    if b"__ndarray__" in obj:
        return np.ndarray(buffer=obj[b"data"], dtype=np.dtype(obj[b"dtype"]), shape=obj[b"shape"])
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


def _encode(obj):
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def unpackb(b: bytes):
    return msgpack.unpackb(b, object_hook=_decode, raw=False)


def packb(obj) -> bytes:
    return msgpack.packb(obj, default=_encode, use_bin_type=True)


@serve.deployment(ray_actor_options={"num_cpus": 1})
class VlartPolicyDeployment:
    def __init__(self, checkpoint: str, threads: int = 1, dtype: str = "f32"):
        import vlart  # imported in the replica's process

        self.policy = vlart.Policy(checkpoint, threads=threads, dtype=dtype)
        self.info = self.policy.info
        self.replica = str(os.getpid())
        self._vlart = vlart

    def _infer(self, obs: dict) -> dict:
        images = {}
        for cam in self.info["cameras"]:
            for key in (_OPENPI + cam["key"], cam["name"]):
                if key in obs:
                    images[cam["key"]] = np.ascontiguousarray(obs[key])
        state = obs.get("observation/state", obs.get("observation.state"))
        if state is None:
            raise self._vlart.InvalidArgumentError("missing 'observation/state' (or 'observation.state')")
        task = obs.get("prompt", obs.get("task", ""))
        noise = obs.get("noise")
        if noise is None and "seed" in obs:
            noise = self.policy.seeded_noise(int(obs["seed"]))
        chunk = self.policy.infer_chunk(images, state, task, noise=noise)
        return {"actions": chunk.actions, "policy_timing": chunk.timings, "replica": self.replica}

    async def __call__(self, request: Request) -> Response:
        body = await request.body()
        try:
            obs = unpackb(body)
            # The GIL is released during inference: the replica's event loop stays responsive.
            out = await asyncio.to_thread(self._infer, obs)
        except (self._vlart.VlartError, ValueError, KeyError, TypeError, msgpack.ExtraData,
                msgpack.UnpackValueError) as e:
            return Response(f"vlart: invalid request: {e}".replace("\n", " "), status_code=400,
                            media_type="text/plain")
        return Response(packb(out), media_type="application/msgpack")


def app(checkpoint: str, replicas: int, threads: int, dtype: str = "f32"):
    return VlartPolicyDeployment.options(num_replicas=replicas).bind(checkpoint, threads, dtype)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="threads per replica (cores / replicas)")
    ap.add_argument("--port", type=int, default=8000)
    a = ap.parse_args()
    serve.start(http_options={"host": "127.0.0.1", "port": a.port})
    serve.run(app(os.path.abspath(a.checkpoint), a.replicas, a.threads), blocking=True)
