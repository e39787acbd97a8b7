#!/usr/bin/env python3
"""`vlart serve` driven by the real openpi-client from PyPI (WebsocketClientPolicy, msgpack_numpy).

1. The metadata map, then 200 inferences through WebsocketClientPolicy, in both key styles (openpi's
   observation/<cam> + prompt, LeRobot's observation.images.<cam> + task), with per-request seeds or
   explicit noise: every action chunk bit-identical to `vlart run --json` on the same PNG frames,
   state, task and seed / --noise file.
2. 16 clients x 50 mixed valid / invalid requests (bad dtype, wrong shape, missing camera, NaN state,
   truncated msgpack, a 2 GB declared array, a 2 GB declared bin): every request answered exactly
   once (valid: bit-identical to step 1; invalid: one text line, then close 1011), the server alive
   (/healthz), its counters (/metrics) equal to what was sent, its resident memory bounded.
3. SIGTERM stops it with exit code 0.

usage: test_serve_openpi_client.py --vlart build/bin/vlart --model assets/default_policy
"""
import argparse
import os
import sys
import tempfile
import threading
import warnings

import numpy as np
from openpi_client import msgpack_numpy, websocket_client_policy
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import ServerProcess, observation, same_bits, vlart_run, write_png  # noqa: E402

# websockets 17 prefers `with connect(...)`; openpi-client itself calls connect() directly too.
warnings.filterwarnings("ignore", category=DeprecationWarning)

CLIENTS, PER_CLIENT = 16, 50
# The server and the reference runs use the same thread count (a different split of a reduction
# rounds differently).
THREADS = ("--threads", "1")


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def make_inputs(tmp, meta, vlart, model, n):
    """n distinct inputs (frames of varied sizes, states, tasks, seed or noise) with their `vlart run` actions."""
    rng = np.random.default_rng(7)
    inputs = []
    for i in range(n):
        images, files = {}, {}
        for c, cam in enumerate(meta["cameras"]):
            h, w = [(48, 64), (96, 80), (64, 64), (30, 50)][(i + c) % 4]
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            images[cam] = img
            files[cam] = os.path.join(tmp, f"in{i}_{cam}.png")
            write_png(files[cam], img)
        state = rng.normal(size=meta["state_dim"]).astype(np.float32)
        task = ["pick up the red cube", "open the drawer", "stack the blocks on the left", ""][i % 4]
        if i % 3 == 2:  # explicit noise, as LeRobot's noise= argument
            noise = rng.normal(size=meta["noise_shape"]).astype(np.float32)
            nf = os.path.join(tmp, f"noise{i}.npy")
            np.save(nf, noise)
            want, _ = vlart_run(vlart, model, files, state, task, noise_file=nf, extra=THREADS)
            inputs.append(dict(images=images, state=state, task=task, seed=None, noise=noise, want=want))
        else:
            seed = 1000 + i
            want, _ = vlart_run(vlart, model, files, state, task, seed=seed, extra=THREADS)
            inputs.append(dict(images=images, state=state, task=task, seed=seed, noise=None, want=want))
    return inputs


def invalid_message(kind, inp, meta):
    """Bytes of one invalid request of the given kind, and the text its error line must contain."""
    cams = meta["cameras"]
    obs = observation(inp["images"], inp["state"], inp["task"], openpi_keys=True, seed=1)
    if kind == "bad_dtype":
        obs["observation/" + cams[0]] = inp["images"][cams[0]].astype(np.float32) / 255.0
        return msgpack_numpy.packb(obs), "expected a uint8 image"
    if kind == "wrong_shape":
        obs["observation/" + cams[0]] = np.ascontiguousarray(inp["images"][cams[0]].transpose(2, 0, 1))
        return msgpack_numpy.packb(obs), "got |u1 [3,"
    if kind == "missing_camera":
        del obs["observation/" + cams[-1]]
        return msgpack_numpy.packb(obs), f"missing camera '{cams[-1]}'"
    if kind == "nan_state":
        st = inp["state"].copy()
        st[0] = np.nan
        obs["observation/state"] = st
        return msgpack_numpy.packb(obs), "invalid"
    if kind == "truncated":
        b = msgpack_numpy.packb(obs)
        return b[: len(b) // 2], "truncated"
    if kind == "declared_2gb_array":
        obs["observation/" + cams[0]] = {b"__ndarray__": True, b"data": b"\x00" * 12, b"dtype": "|u1",
                                          b"shape": [32768, 32768, 2]}
        return msgpack_numpy.packb(obs), "needs 2147483648 bytes"
    if kind == "declared_2gb_bin":
        return b"\x81\xa4task\xc6\x80\x00\x00\x00abc", "truncated"
    raise ValueError(kind)


INVALID_KINDS = ["bad_dtype", "wrong_shape", "missing_camera", "nan_state", "truncated", "declared_2gb_array",
                 "declared_2gb_bin"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vlart", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--inferences", type=int, default=200)
    ap.add_argument("--clients", type=int, default=CLIENTS)
    ap.add_argument("--per-client", type=int, default=PER_CLIENT)
    args = ap.parse_args()

    server = ServerProcess(args.vlart, args.model, *THREADS, "--max-batch", "4")
    try:
        # ---- 1. metadata + 200 inferences through the stock client ----
        client = websocket_client_policy.WebsocketClientPolicy(host="127.0.0.1", port=server.port)
        meta = client.get_server_metadata()
        print("metadata:", meta)
        check(meta["server"] == "vlart", f"metadata server {meta.get('server')}")
        for k in ("family", "cameras", "state_dim", "action_dim", "action_horizon", "noise_shape", "stages"):
            check(k in meta, f"metadata lacks {k}")
        with tempfile.TemporaryDirectory() as tmp:
            inputs = make_inputs(tmp, meta, args.vlart, args.model, 8)
        for inp in inputs:
            check(inp["want"].shape == (meta["action_horizon"], meta["action_dim"]), f"vlart run shape {inp['want'].shape}")
        for i in range(args.inferences):
            inp = inputs[i % len(inputs)]
            obs = observation(inp["images"], inp["state"], inp["task"], openpi_keys=(i % 2 == 0), seed=inp["seed"],
                              noise=inp["noise"])
            if i % 5 == 0:
                obs["observation/joint_velocity"] = np.zeros(3, np.float32)  # a key the policy does not read
            r = client.infer(obs)
            a = r["actions"]
            check(a.dtype == np.float32 and a.shape == (meta["action_horizon"], meta["action_dim"]),
                  f"inference {i}: actions {a.dtype} {a.shape}")
            check(same_bits(a, inp["want"]),
                  f"inference {i}: actions differ from vlart run (max abs {np.abs(a - inp['want']).max()})")
            check("infer_ms" in r["server_timing"] and (i == 0) != ("prev_total_ms" in r["server_timing"]),
                  f"server_timing {r['server_timing']}")
            check(set(meta["stages"]) <= set(r["policy_timing"]), f"policy_timing {r['policy_timing']}")
        print(f"{args.inferences} inferences through openpi-client: bit-identical to vlart run "
              f"({len(inputs)} distinct inputs, both key styles, seeds and explicit noise)")
        rss_warm = server.rss_mib()

        # ---- 2. many clients, valid and invalid mixed ----
        uri = f"ws://127.0.0.1:{server.port}"
        tally = {"ok": 0, "invalid": 0}
        failures = []
        lock = threading.Lock()

        def run_client(ci):
            rng = np.random.default_rng(100 + ci)
            ws = None
            for j in range(args.per_client):
                try:
                    if ws is None:
                        ws = connect(uri, compression=None, max_size=None)
                        msgpack_numpy.unpackb(ws.recv(timeout=60))  # metadata first
                    inp = inputs[int(rng.integers(len(inputs)))]
                    if rng.random() < 0.5:
                        obs = observation(inp["images"], inp["state"], inp["task"], openpi_keys=bool(rng.random() < 0.5),
                                          seed=inp["seed"], noise=inp["noise"])
                        ws.send(msgpack_numpy.packb(obs))
                        resp = ws.recv(timeout=120)
                        if isinstance(resp, str):
                            raise AssertionError(f"valid request answered with an error: {resp}")
                        a = msgpack_numpy.unpackb(resp)["actions"]
                        if not same_bits(a, inp["want"]):
                            raise AssertionError("valid answer differs from the single-client one")
                        with lock:
                            tally["ok"] += 1
                    else:
                        kind = INVALID_KINDS[int(rng.integers(len(INVALID_KINDS)))]
                        msg, expect = invalid_message(kind, inp, meta)
                        ws.send(msg)
                        resp = ws.recv(timeout=120)
                        if not isinstance(resp, str) or expect not in resp or "\n" in resp:
                            raise AssertionError(f"{kind}: expected one error line with '{expect}', got {resp!r:.200}")
                        try:  # exactly one answer: the next thing is the close, 1011
                            extra = ws.recv(timeout=30)
                            raise AssertionError(f"{kind}: a second frame after the error: {extra!r:.100}")
                        except ConnectionClosed as e:
                            if e.rcvd is None or e.rcvd.code != 1011:
                                raise AssertionError(f"{kind}: close {e.rcvd}, expected 1011")
                        ws = None
                        with lock:
                            tally["invalid"] += 1
                except Exception as e:  # noqa: BLE001 - collected and reported
                    with lock:
                        failures.append(f"client {ci} request {j}: {e!r}")
                    ws = None
            if ws is not None:
                ws.close()

        threads = [threading.Thread(target=run_client, args=(ci,)) for ci in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = args.clients * args.per_client
        print(f"{args.clients} clients x {args.per_client}: {tally['ok']} valid answered bit-identical, "
              f"{tally['invalid']} invalid answered with one error line + close 1011, {len(failures)} failures")
        check(not failures, "failures:\n" + "\n".join(failures[:20]))
        check(tally["ok"] + tally["invalid"] == total, f"answered {tally} of {total}")

        status, body = server.http("/healthz")
        check(status == 200 and body == "OK\n", f"healthz {status} {body!r}")
        status, metrics = server.http("/metrics")
        check(status == 200, f"metrics {status}")
        values = {}
        for line in metrics.splitlines():
            if line and not line.startswith("#"):
                name, val = line.rsplit(" ", 1)
                values[name] = float(val)
        want_responses = args.inferences + tally["ok"]
        check(values.get("vlart_responses_total") == want_responses,
              f"vlart_responses_total {values.get('vlart_responses_total')} != {want_responses}")
        check(values.get("vlart_requests_total") == want_responses + tally["invalid"], "vlart_requests_total")
        rss_after, rss_peak = server.rss_mib(), server.rss_mib("VmHWM")
        print(f"server RSS: {rss_warm:.1f} MiB warm, {rss_after:.1f} MiB after the mixed load (peak {rss_peak:.1f})")
        check(rss_after - rss_warm < 100, f"RSS grew by {rss_after - rss_warm:.1f} MiB under the mixed load")
        client._ws.close()
    finally:
        rc = server.stop()
    print("".join(server.lines[-2:]).strip())
    check(rc == 0, f"vlart serve exited with {rc}")
    print("PASS")


if __name__ == "__main__":
    main()
