#!/usr/bin/env bash
# The whole test suite: installs what is missing (scripts/setup.sh), builds, runs CTest.
#   EDGEPACK_SANITIZE=ON scripts/test.sh   runs it under AddressSanitizer + UBSan (build-asan/)
# Extra arguments go to ctest (e.g. -R onnx, -L large).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ "${EDGEPACK_SANITIZE:-OFF}" = "ON" ]; then
  export BUILD_DIR="${BUILD_DIR:-build-asan}"
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
fi
bash scripts/setup.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "$(nproc)" "$@"
