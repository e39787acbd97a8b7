#!/usr/bin/env bash
# README command (1): set up, build and run the vlart CLI's main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
./build/bin/vlart info
./build/bin/vlart bench-ops
