#!/usr/bin/env bash
# README command (2): set up, build and run the whole vlart test suite.
#  1. Release build (CUDA backend compiled when the toolkit is present) and every ctest test.
#  2. ASan+UBSan build (clang) of the loaders, executor and fuzz targets, run as `ctest -L sanitize`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
JOBS="${VLART_JOBS:-$(nproc)}"
echo "=== ctest: full suite (build/) ==="
ctest --test-dir build --output-on-failure -j "$JOBS"

echo "=== ctest: sanitizer suite (build-asan/, clang ASan+UBSan) ==="
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DVLART_SANITIZE=ON \
  -DVLART_WITH_CUDA=OFF -DVLART_BUILD_BENCH=OFF -DVLART_BUILD_EXAMPLES=OFF
cmake --build build-asan -j "$JOBS" --target vlart_sanitize_targets
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -L sanitize -j "$JOBS"
