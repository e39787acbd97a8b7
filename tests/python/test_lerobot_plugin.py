#!/usr/bin/env python3
"""The LeRobot plugin lerobot_policy_vlart through LeRobot 0.6.1's own evaluation call path.

LeRobot's `lerobot-eval` does: register_third_party_plugins(); make_policy(cfg.policy) with
`--policy.type=vlart` (draccus resolves the registered choice); make_pre_post_processors(cfg.policy);
then `rollout()` steps a gymnasium vector env, turning its observations into LeRobot batches
(preprocess_observation, the task from the env), running preprocessor -> policy.select_action ->
postprocessor every step. This test runs exactly those functions, with a small gymnasium env that
replays camera frames and states, for (a) LeRobot's own SmolVLAPolicy on a committed fixture
checkpoint (loaded as `--policy.path` does, processors from the checkpoint) and (b) the vlart plugin on
the same checkpoint (`--policy.type=vlart --policy.checkpoint=DIR`), with the same torch seed, and
compares every action of the rollouts: max abs <= 1e-4.

Needs Python 3.12 with lerobot 0.6.1 + torch (.venv312, `bash scripts/test_lerobot_plugin.sh` sets it up),
the vlart extension built for that Python and the plugin installed (pip install -e).
"""
import argparse
import contextlib
import io
import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--steps", type=int, default=60)  # > one chunk: the policy re-plans mid-rollout
    args = ap.parse_args()

    import draccus
    import gymnasium as gym
    import torch
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    from lerobot.processor import PolicyProcessorPipeline
    from lerobot.scripts.lerobot_eval import rollout
    from lerobot.utils.import_utils import register_third_party_plugins

    # Offline: a checkpoint that names the hub's PaliGemma tokenizer (pi0 / pi0.5) carries the fixture's
    # tokenizer.json, which LeRobot's TokenizerProcessorStep gets instead of a download (as the fixture
    # generator, tools/make_pi0_fixtures.py, did when it wrote the reference).
    local_tok = os.path.join(args.checkpoint, "tokenizer.json")
    if os.path.isfile(local_tok):
        from lerobot.processor import tokenizer_processor as tp
        from transformers import PreTrainedTokenizerFast

        class _OfflineTokenizer:
            @staticmethod
            def from_pretrained(name, *a, **k):
                if name != "google/paligemma-3b-pt-224":
                    raise RuntimeError(f"offline test: unexpected tokenizer {name!r}")
                return PreTrainedTokenizerFast(tokenizer_file=local_tok, bos_token="<bos>", eos_token="<eos>",
                                               pad_token="<pad>", unk_token="<unk>")

        tp.AutoTokenizer = _OfflineTokenizer

    # ---- discovery, as every LeRobot script does it ----
    register_third_party_plugins()
    check = lambda c, m: (_ for _ in ()).throw(AssertionError(m)) if not c else None  # noqa: E731
    check("lerobot_policy_vlart" in sys.modules, "register_third_party_plugins did not import lerobot_policy_vlart")
    # `--policy.type=vlart --policy.checkpoint=DIR`, parsed by draccus into a `policy: PreTrainedConfig`
    # field as lerobot-eval's EvalPipelineConfig parses its --policy.* arguments.
    from dataclasses import dataclass

    @dataclass
    class _Cli:
        policy: PreTrainedConfig | None = None

    vcfg = draccus.parse(_Cli, args=["--policy.type=vlart", f"--policy.checkpoint={args.checkpoint}",
                                     "--policy.threads=1"]).policy
    check(type(vcfg).__name__ == "VlartConfig", f"--policy.type=vlart parsed to {type(vcfg).__name__}")
    vlart_cls = get_policy_class("vlart")
    check(vlart_cls.__name__ == "VlartPolicy", f"get_policy_class('vlart') = {vlart_cls}")

    ref_cfg = PreTrainedConfig.from_pretrained(args.checkpoint)
    ref_cls = get_policy_class(ref_cfg.type)
    cams = [k for k, f in ref_cfg.input_features.items() if f.type.name == "VISUAL"]
    state_dim = ref_cfg.input_features["observation.state"].shape[0]
    action_dim = ref_cfg.output_features["action"].shape[0]
    print(f"checkpoint {args.checkpoint}: {ref_cfg.type}, cameras {cams}, state {state_dim}, action {action_dim}")

    # ---- a gymnasium env replaying frames and states (LeRobot env layout: pixels dict + agent_pos) ----
    rng = np.random.default_rng(11)
    sizes = [(48, 64), (64, 64), (40, 56)]
    n_frames = args.steps + 1
    frames = {c.split(".")[-1]: rng.integers(0, 256, (n_frames, *sizes[i % 3], 3), dtype=np.uint8)
              for i, c in enumerate(cams)}
    states = rng.normal(size=(n_frames, state_dim)).astype(np.float32)

    class ReplayEnv(gym.Env):
        metadata = {"render_fps": 10}

        def __init__(self):
            self.observation_space = gym.spaces.Dict({
                "pixels": gym.spaces.Dict({k: gym.spaces.Box(0, 255, v.shape[1:], np.uint8) for k, v in frames.items()}),
                "agent_pos": gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)})
            self.action_space = gym.spaces.Box(-np.inf, np.inf, (action_dim,), np.float32)
            self._max_episode_steps = args.steps
            self.task_description = "pick up the red cube and put it in the box"
            self.task = "pick_cube"
            self.t = 0

        def _obs(self):
            return {"pixels": {k: v[self.t] for k, v in frames.items()}, "agent_pos": states[self.t]}

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return self._obs(), {}

        def step(self, action):
            self.t += 1
            return self._obs(), 0.0, False, self.t >= args.steps, {}

    def run(policy, pre, post, seed=1234):
        env = gym.vector.SyncVectorEnv([ReplayEnv])
        identity = PolicyProcessorPipeline(steps=[])
        torch.manual_seed(seed)  # lerobot-eval's set_seed: the flow policies' noise comes from torch's RNG
        with contextlib.redirect_stderr(io.StringIO()):  # rollout's progress bar
            out = rollout(env, policy, identity, identity, pre, post, seeds=[0])
        env.close()
        return out["action"][0].numpy()  # [steps, action_dim]

    # (a) LeRobot's own policy, as `lerobot-eval --policy.path=DIR` loads it. A tiny committed pi0 / pi0.5
    # fixture needs its generator's patch on LeRobot's side: LeRobot's configs only know the full-size
    # gemma_2b / gemma_300m towers, and from_pretrained would build those and skip the fixture's tensors.
    build_ctx = contextlib.nullcontext()
    case_json = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "case.json")
    if ref_cfg.type in ("pi0", "pi05") and os.path.isfile(case_json):
        import json

        case = json.load(open(case_json))
        tools = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools")
        sys.path.insert(0, tools)
        import make_pi0_fixtures as gen

        spec = next(sp for sp in gen.small_cases() if sp.name == case["name"])
        build_ctx = gen.tiny_architecture(spec)
    with build_ctx:
        ref = ref_cls.from_pretrained(args.checkpoint)
    ref.eval()
    ref_pre, ref_post = make_pre_post_processors(ref.config, pretrained_path=args.checkpoint)
    want = run(ref, ref_pre, ref_post)
    # (b) the plugin, as `lerobot-eval --policy.type=vlart --policy.checkpoint=DIR` builds it
    pol = vlart_cls(vcfg)
    pol.eval()
    pre, post = make_pre_post_processors(vcfg)
    check([type(s).__name__ for s in pre.steps] ==
          ["RenameObservationsProcessorStep", "AddBatchDimensionProcessorStep", "DeviceProcessorStep"],
          f"plugin preprocessor {[type(s).__name__ for s in pre.steps]}")
    got = run(pol, pre, post)
    check(got.shape == want.shape == (args.steps, action_dim), f"rollout actions {got.shape} vs {want.shape}")
    err = float(np.abs(got - want).max())
    per_step = np.abs(got - want).max(axis=1)
    if err > 1e-4:
        print("per-step max abs:", np.array2string(per_step, precision=2))
    chunks = -(-args.steps // vcfg.n_action_steps)
    print(f"lerobot rollout, {args.steps} steps ({chunks} action chunks): vlart plugin vs LeRobot {ref_cfg.type}: "
          f"max abs {err:.3e}")
    check(err <= 1e-4, f"plugin actions differ from LeRobot's by {err}")
    # and a different seed changes the actions (the noise really comes from torch's RNG)
    other = run(pol, pre, post, seed=99)
    check(float(np.abs(other - got).max()) > 1e-3, "another torch seed gave the same actions")
    print("PASS")


if __name__ == "__main__":
    main()
