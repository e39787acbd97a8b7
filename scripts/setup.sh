#!/usr/bin/env bash
# Installs what building and testing vlart needs on Debian 12. Idempotent: installs only what is missing.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config git python3 python3-pip python3-venv python3-dev
  libdnnl-dev ocl-icd-opencl-dev   # oneDNN 2.6 (its CMake config needs OpenCL)
  libeigen3-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libstb-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libboost-dev libmsgpack-cxx-dev  # vlart serve: Boost.Asio/Beast websocket + HTTP, msgpack-cxx (header-only)
  clang libclang-rt-14-dev         # ASan/UBSan + libFuzzer build of the loaders
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "[setup] all Debian packages present"
fi

# CUDA: the toolkit is optional; the build enables the CUDA backend when nvcc is found.
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "[setup] note: nvcc found at /usr/local/cuda/bin (add it to PATH to build the CUDA backend)"
fi

# Python environment for the server and Python-package tests: the stock openpi-client from PyPI (its
# websocket_client_policy imports typing_extensions without declaring it) and nanobind, which the
# build uses for the vlart Python extension. No torch.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.venv-client"
if "$VENV/bin/python" -c "import openpi_client.websocket_client_policy, nanobind" >/dev/null 2>&1; then
  echo "[setup] .venv-client present (openpi-client, nanobind)"
else
  echo "[setup] creating .venv-client (openpi-client, nanobind from PyPI)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "openpi-client==0.1.2" typing_extensions "nanobind>=2.0"
fi
# Opt-in: Ray Serve for the replica test (tests/python/test_ray_serve.py, ctest python_ray_serve).
if [ "${VLART_SETUP_RAY:-0}" = 1 ] && ! "$VENV/bin/python" -c "import ray.serve" >/dev/null 2>&1; then
  echo "[setup] installing ray[serve] into .venv-client"
  "$VENV/bin/pip" install -q --disable-pip-version-check "ray[serve]"
fi
