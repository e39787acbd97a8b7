#!/usr/bin/env bash
# README command (1): set up, build, and run the vlart CLI's main job: one SmolVLA inference with the
# bundled tiny policy (assets/default_policy, random weights) on two sample camera frames.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
./build/bin/vlart info
./build/bin/vlart info assets/default_policy
./build/bin/vlart run assets/default_policy \
  --image camera1=assets/samples/camera1.png --image camera2=assets/samples/camera2.png \
  --state 0.1,-0.2,0.3,0.05,0.5 --task "pick up the red cube" --seed 0
