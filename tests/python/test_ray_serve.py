#!/usr/bin/env python3
"""vlart replicas under Ray Serve (examples/ray_serve/vlart_deployment.py) on a local Ray instance.

1. 2 replicas (1 thread each) behind one endpoint, driven by 8 client threads x 12 requests with
   seeded noise: every answer bit-identical to in-process vlart.Policy (1 thread) on the same inputs,
   and both replicas served requests; a bad request is HTTP 400 with the library's message.
2. Throughput, same client load, same run: 1 replica x 2 threads against 2 replicas x 1 thread
   (threads per replica = cores / replicas); requests/s printed side by side.

usage: test_ray_serve.py --pythonpath build/python --repo . [--model DIR] [--requests N]
"""
import argparse
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pythonpath", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--model", default="")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=12)
    args = ap.parse_args()
    # Replica processes import vlart from the same place as this driver.
    os.environ["PYTHONPATH"] = os.pathsep.join([args.pythonpath, os.path.join(args.repo, "examples", "ray_serve"),
                                                os.environ.get("PYTHONPATH", "")])
    sys.path[:0] = [args.pythonpath, os.path.join(args.repo, "examples", "ray_serve")]
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # On a loaded 2-core machine the HTTP proxy actor takes longer than Serve's 5 s readiness check to start.
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
    import ray
    import vlart
    from ray import serve
    from vlart_deployment import app, packb, unpackb

    model = os.path.abspath(args.model or os.path.join(args.repo, "assets", "default_policy"))
    ref = vlart.Policy(model, threads=1)
    info = ref.info
    rng = np.random.default_rng(5)
    inputs = []
    for i in range(6):
        images = {c["key"]: rng.integers(0, 256, (48 + 8 * i, 64, 3), dtype=np.uint8) for c in info["cameras"]}
        state = rng.normal(size=info["state_dim"]).astype(np.float32)
        task = ["pick up the red cube", "open the drawer", ""][i % 3]
        want = ref.infer(images, state, task, noise=ref.seeded_noise(100 + i))
        obs = {("observation/" + k): v for k, v in images.items()}
        obs.update({"observation/state": state, "prompt": task, "seed": 100 + i})
        inputs.append((packb(obs), want))

    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"],
                                       "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60"}})
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}/"

    def post(body):
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/msgpack"})
        with urllib.request.urlopen(req, timeout=120) as r:
            return unpackb(r.read())

    def drive(n_clients, n_requests, check_answers):
        replicas, failures = {}, []
        lock = threading.Lock()

        def client(ci):
            for j in range(n_requests):
                body, want = inputs[(ci + j) % len(inputs)]
                try:
                    out = post(body)
                    a = np.asarray(out["actions"], dtype=np.float32)
                    if check_answers and not (a.shape == want.shape and np.array_equal(a.view(np.uint32),
                                                                                      want.view(np.uint32))):
                        raise AssertionError(f"answer differs from in-process infer by {np.abs(a - want).max()}")
                    with lock:
                        replicas[out["replica"]] = replicas.get(out["replica"], 0) + 1
                except Exception as e:  # noqa: BLE001 - collected
                    with lock:
                        failures.append(f"client {ci} request {j}: {e!r}")

        threads = [threading.Thread(target=client, args=(ci,)) for ci in range(n_clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return replicas, failures, n_clients * n_requests / (time.perf_counter() - t0)

    try:
        # ---- 1. two replicas, answers and spread ----
        serve.run(app(model, replicas=2, threads=1), name="vlart2", route_prefix="/")
        for body, _ in inputs[:2]:
            post(body)  # warm both paths
        replicas, failures, rps2 = drive(args.clients, args.requests, check_answers=True)
        print(f"2 replicas x 1 thread: {sum(replicas.values())} answers bit-identical to in-process infer, "
              f"per replica {sorted(replicas.values())}, {rps2:.1f} requests/s")
        check(not failures, "failures:\n" + "\n".join(failures[:10]))
        check(len(replicas) == 2 and min(replicas.values()) > 0, f"not both replicas served: {replicas}")
        print("bad request ...", flush=True)
        try:
            post(packb({"observation/state": np.zeros(3, np.float32)}))
            raise AssertionError("a bad request was answered 200")
        except urllib.error.HTTPError as e:
            msg = e.read().decode()
            check(e.code == 400 and "missing camera" in msg, f"bad request: HTTP {e.code} {msg!r}")
        # ---- 2. throughput: 1 replica x 2 threads vs 2 replicas x 1 thread ----
        print("throughput, 2 replicas ...", flush=True)
        _, _, rps2b = drive(args.clients, args.requests, check_answers=False)
        serve.delete("vlart2")
        print("1 replica x 2 threads ...", flush=True)
        serve.run(app(model, replicas=1, threads=2), name="vlart1", route_prefix="/")
        post(inputs[0][0])
        _, f1, rps1 = drive(args.clients, args.requests, check_answers=False)
        check(not f1, f"1-replica run failed: {f1[:3]}")
        print(f"throughput, {args.clients} clients x {args.requests} requests: 1 replica x 2 threads {rps1:.1f} req/s, "
              f"2 replicas x 1 thread {max(rps2, rps2b):.1f} req/s (ratio {max(rps2, rps2b) / rps1:.2f})")
    finally:
        serve.shutdown()
        ray.shutdown()
    print("PASS")


if __name__ == "__main__":
    main()
