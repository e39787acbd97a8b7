#!/usr/bin/env bash
# Cross-builds vlart for aarch64 (Debian's g++-aarch64-linux-gnu) into build-aarch64/ and runs the core
# op suites, one SmolVLA parity fixture and the pi0 / pi0.5 fixtures under qemu-user. Idempotent: installs only what is missing.
#
#   bash scripts/test-aarch64.sh            # VLART_JOBS=N to set build parallelism (default: nproc)
#
# Host packages: g++-aarch64-linux-gnu, qemu-user (apt-get, only when missing; an install that would
# remove a package is refused). The arm64 builds of oneDNN, spdlog, fmt, GoogleTest, Eigen,
# nlohmann-json and stb are Debian's arm64 .debs, fetched with a private apt configuration (its own
# package lists and state under build-aarch64/apt, architecture arm64) and unpacked into
# build-aarch64/sysroot: the host's dpkg database and its amd64 -dev packages are never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="$ROOT/build-aarch64"
SYSROOT="$OUT/sysroot"
BUILD="$OUT/build"
JOBS="${VLART_JOBS:-$(nproc)}"
T0=$(date +%s)

# ---------------------------------------------------------------- host toolchain
HOST_PKGS=(g++-aarch64-linux-gnu qemu-user cmake ninja-build)
missing=()
for p in "${HOST_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "[aarch64] installing: ${missing[*]}"
  $SUDO apt-get update -qq
  if DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -s --no-install-recommends "${missing[@]}" | grep -q '^Remv'; then
    echo "[aarch64] refusing: installing ${missing[*]} would remove packages:" >&2
    $SUDO apt-get install -s --no-install-recommends "${missing[@]}" | grep '^Remv' >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "[aarch64] host packages present (${HOST_PKGS[*]})"
fi

# ---------------------------------------------------------------- arm64 libraries (private sysroot)
# Libraries the build links and their runtime parts; libc, libstdc++ and libgomp come from the cross
# toolchain (/usr/aarch64-linux-gnu). oneDNN's arm64 build has no GPU runtime, so no OpenCL.
ARM_PKGS=(libdnnl2 libdnnl-dev libspdlog1.10 libspdlog-dev libfmt9 libfmt-dev libgtest-dev libgmock-dev
          libeigen3-dev nlohmann-json3-dev libstb0 libstb-dev)
STAMP="$SYSROOT/.vlart-packages"
if [ "$(cat "$STAMP" 2>/dev/null)" != "${ARM_PKGS[*]}" ]; then
  echo "[aarch64] fetching arm64 packages into $SYSROOT: ${ARM_PKGS[*]}"
  APT="$OUT/apt"
  mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$OUT/debs"
  touch "$APT/status"
  cat > "$APT/apt.conf" <<EOF
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
Dir::State "$APT";
Dir::State::Lists "$APT/lists";
Dir::State::status "$APT/status";
Dir::Cache "$APT";
Dir::Cache::archives "$APT/archives";
Dir::Etc::SourceParts "/etc/apt/sources.list.d";
Dir::Etc::SourceList "/etc/apt/sources.list";
EOF
  APT_CONFIG="$APT/apt.conf" apt-get update -qq
  rm -f "$OUT"/debs/*.deb
  (cd "$OUT/debs" && APT_CONFIG="$APT/apt.conf" apt-get download -qq "${ARM_PKGS[@]/%/:arm64}" 2>&1 |
     grep -v 'unsandboxed as root' || true)
  for p in "${ARM_PKGS[@]}"; do
    ls "$OUT/debs/${p}_"*.deb >/dev/null 2>&1 || { echo "[aarch64] download of $p failed" >&2; exit 1; }
  done
  rm -rf "$SYSROOT"
  mkdir -p "$SYSROOT"
  for d in "$OUT"/debs/*.deb; do dpkg-deb -x "$d" "$SYSROOT"; done
  # Symlinks with absolute targets (/usr/lib/...) would point into the host: make them sysroot-relative.
  while IFS= read -r link; do
    target=$(readlink "$link")
    ln -sfn "$SYSROOT$target" "$link"
  done < <(find "$SYSROOT" -type l -lname '/*')
  echo "${ARM_PKGS[*]}" > "$STAMP"
else
  echo "[aarch64] arm64 packages present in $SYSROOT"
fi

# ---------------------------------------------------------------- cross build
SUITES=(test_tensor test_ops_basic test_ops_gemm test_ops_attention test_ops_decode test_decode_loop test_vit_block
        test_normalize test_preprocess test_qgemm test_executor test_safetensors test_tokenizer test_smolvla test_pi0)
LAUNCHER=()
command -v ccache >/dev/null 2>&1 && LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchain-aarch64-linux-gnu.cmake" -DVLART_AARCH64_SYSROOT="$SYSROOT" \
  -DVLART_WITH_CUDA=OFF -DVLART_BUILD_BENCH=OFF -DVLART_BUILD_EXAMPLES=ON -DVLART_BUILD_TESTS=ON \
  -DVLART_BUILD_PYTHON=OFF -DVLART_WITH_SERVER=OFF \
  "${LAUNCHER[@]}" > "$OUT/configure.log" || { cat "$OUT/configure.log"; exit 1; }
cmake --build "$BUILD" -j "$JOBS" --target vlart_cli "${SUITES[@]}"
T1=$(date +%s)
echo "[aarch64] build: $((T1 - T0)) s"

# ---------------------------------------------------------------- run under qemu
QEMU=(qemu-aarch64 -L /usr/aarch64-linux-gnu -E "LD_LIBRARY_PATH=$SYSROOT/usr/lib/aarch64-linux-gnu")
# ELF e_machine (bytes 18-19) of an aarch64 executable: 0xb7 0x00.
[ "$(od -An -tx1 -j18 -N2 "$BUILD/bin/vlart" | tr -d ' ')" = "b700" ] ||
  { echo "[aarch64] $BUILD/bin/vlart is not an aarch64 executable" >&2; exit 1; }
echo "[aarch64] vlart info under qemu:"
"${QEMU[@]}" "$BUILD/bin/vlart" info

# Debian's oneDNN 2.6 has no bf16 matmul or convolution on aarch64; bf16 compute runs there through
# oneDNN's f32 primitives between vlart's bf16<->f32 conversions (the bridge), so the bf16 Linear,
# MatMul and Conv2d tests run like every other test.
SMOLVLA_CASE="${VLART_AARCH64_SMOLVLA_CASE:-a_one_cam_square}"

passed=0 failed=0 skipped=0
failed_suites=()
run_suite() {  # name, extra gtest args...
  local name=$1; shift
  local log="$OUT/$name.log" t=$(date +%s) rc=0
  "${QEMU[@]}" "$BUILD/tests/$name" --gtest_color=no "$@" > "$log" 2>&1 || rc=$?
  local p f s
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  p=${p:-0} f=${f:-0} s=${s:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi  # crashed or exited non-zero without a count
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
  printf '[aarch64] %-20s %4d passed %3d failed %3d skipped  %4d s\n' "$name" "$p" "$f" "$s" $(( $(date +%s) - t ))
  if [ "$f" -ne 0 ]; then
    failed_suites+=("$name")
    grep -E '^\[  FAILED  \]|Failure|exception' "$log" | head -20
  fi
}

for s in test_tensor test_ops_basic test_ops_attention test_ops_decode test_decode_loop test_vit_block test_normalize \
         test_preprocess test_qgemm test_executor test_safetensors test_tokenizer; do
  run_suite "$s"
done
run_suite test_ops_gemm
echo "[aarch64] SmolVLA parity (stages and actions against LeRobot), fixture $SMOLVLA_CASE"
VLART_SMOLVLA_CASES="$SMOLVLA_CASE" run_suite test_smolvla \
  "--gtest_filter=SmolVLAModel.StagesAndActionsMatchLeRobot:SmolVLAPolicy.InferMatchesLeRobotActions"
echo "[aarch64] pi0 / pi0.5 parity (every fixture, f32 and bf16)"
run_suite test_pi0 "--gtest_filter=Fixtures/Pi0Parity.*"

T2=$(date +%s)
echo "[aarch64] tests under qemu: $((T2 - T1)) s; total $((T2 - T0)) s (logs: $OUT/<suite>.log)"
[ ${#failed_suites[@]} -eq 0 ] || echo "[aarch64] failing suites: ${failed_suites[*]}"
echo "aarch64: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
