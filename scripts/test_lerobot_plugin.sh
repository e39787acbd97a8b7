#!/usr/bin/env bash
# The LeRobot plugin (python/lerobot_policy_vlart) through LeRobot 0.6.1's own evaluation call path
# (tests/python/test_lerobot_plugin.py): register_third_party_plugins, --policy.type=vlart parsed by
# draccus, make_policy's class lookup, make_pre_post_processors, lerobot_eval.rollout; actions
# compared with LeRobot's own policy on a committed fixture (max abs <= 1e-4).
# Not part of README command (2): it needs torch. It:
#  1. sets up .venv312 (Python 3.12: lerobot[dataset]==0.6.1 with torch, num2words, nanobind), as
#     scripts/bench_pi0.sh does;
#  2. builds the vlart extension for that Python (build-py312, CUDA/server/tests off; ~10 min on 2 cores
#     the first time);
#  3. installs the plugin into .venv312 (pip install -e, no dependencies: vlart comes from build-py312);
#  4. runs the test on a SmolVLA, a pi0 and a pi0.5 fixture (cameras listed non-alphabetically; the tiny pi0
#     towers are built on LeRobot's side with the fixture generator's patch; VLART_PLUGIN_CHECKPOINTS='DIR ...'
#     runs others).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
PY=.venv312/bin/python
if [ ! -x "$PY" ]; then
  command -v python3.12 >/dev/null 2>&1 || { echo "needs python3.12 (pyenv install 3.12)"; exit 1; }
  python3.12 -m venv .venv312
fi
"$PY" -m pip install -q "lerobot[dataset]==0.6.1" "transformers>=5.4,<5.6" torch safetensors num2words "nanobind>=2.0"
cmake -S . -B build-py312 -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$PWD/$PY" \
  -DVLART_BUILD_PYTHON=ON -DVLART_WITH_CUDA=OFF -DVLART_BUILD_TESTS=OFF -DVLART_BUILD_BENCH=OFF \
  -DVLART_BUILD_EXAMPLES=OFF -DVLART_WITH_SERVER=OFF >/dev/null
cmake --build build-py312 --target _vlart -j "${VLART_JOBS:-$(nproc)}"
"$PY" -m pip install -q --no-deps -e python/lerobot_policy_vlart
CKPTS="tests/data/smolvla/g_two_cam_wrist_top/checkpoint tests/data/pi0/pi0_b_three_cam/checkpoint"
CKPTS="$CKPTS tests/data/pi0/pi05_b_three_cam/checkpoint"
for ck in ${VLART_PLUGIN_CHECKPOINTS:-$CKPTS}; do
  PYTHONPATH="$PWD/build-py312/python" "$PY" tests/python/test_lerobot_plugin.py --checkpoint "$ck"
done
