#!/usr/bin/env bash
# README command (2): set up, build and run the whole vlart test suite.
#  1. Release build (CUDA backend compiled when the toolkit is present) and every ctest test, among them
#     the policy server against the real openpi-client and the Python package (both from .venv-client,
#     which scripts/setup.sh creates; no torch), and the Ray Serve test when ray[serve] is installed.
#  2. ASan+UBSan build (clang) of the loaders, executor, server and fuzz targets, run as `ctest -L sanitize`.
#  3. ThreadSanitizer build (clang) of the scheduler, chunk-runner and server suites, run as `ctest -L tsan`
#     (policy on one OpenMP thread: libgomp is not TSan-instrumented, see tests/tsan.cmake).
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

echo "=== ctest: thread sanitizer suite (build-tsan/, clang TSan) ==="
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DVLART_TSAN=ON \
  -DVLART_WITH_CUDA=OFF -DVLART_BUILD_BENCH=OFF -DVLART_BUILD_EXAMPLES=OFF
cmake --build build-tsan -j "$JOBS" --target vlart_tsan_targets
OMP_NUM_THREADS=1 ctest --test-dir build-tsan --output-on-failure -L tsan -j "$JOBS"
