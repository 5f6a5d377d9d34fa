#!/usr/bin/env bash
# Builds edgepack_qbench (Release, -DEDGEPACK_BUILD_BENCH=ON, in build-qbench unless
# EDGEPACK_BUILD_DIR is set) and runs bench/qgemv_vs_ort.py with the repo's .venv: RTN int4g32
# quantize throughput and int4g32 GEMV vs a read-only pass vs ONNX Runtime MatMulNBits.
# Extra arguments go to the script, e.g.  bench/qgemv.sh --threads 1 --rounds 5 --copies 8
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${EDGEPACK_BUILD_DIR:-$root/build-qbench}"
python="$root/.venv/bin/python"
if [[ ! -x "$python" ]]; then
    echo "error: $python not found; run scripts/setup.sh first" >&2
    exit 2
fi
if [[ ! -f "$build/build.ninja" ]] || ! grep -q "EDGEPACK_BUILD_BENCH:BOOL=ON" "$build/CMakeCache.txt"; then
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEDGEPACK_BUILD_TESTS=OFF \
        -DEDGEPACK_BUILD_BENCH=ON >/dev/null
fi
ninja -C "$build" edgepack_qbench >/dev/null
exec "$python" "$root/bench/qgemv_vs_ort.py" --qbench "$build/bench/edgepack_qbench" "$@"
