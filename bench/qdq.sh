#!/usr/bin/env bash
# Builds edgepack (Release, in build-bench unless EDGEPACK_BUILD_DIR is set) and runs
# bench/qdq_vs_float.py: PP-OCRv4 rec as a QDQ model (ONNX Runtime's quantize_static) in
# edgepack's int8 kernels, against the float model in edgepack and the same QDQ model in
# ONNX Runtime, 1 and 2 threads. Extra arguments go to the script, e.g.
#   bench/qdq.sh --threads 1 --rounds 3
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${EDGEPACK_BUILD_DIR:-$root/build-bench}"
python="$root/.venv/bin/python"
if [[ ! -x "$python" ]]; then
    echo "error: $python not found; run scripts/setup.sh first" >&2
    exit 2
fi
if [[ ! -f "$build/build.ninja" ]]; then
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEDGEPACK_BUILD_TESTS=OFF >/dev/null
fi
ninja -C "$build" edgepack >/dev/null
exec "$python" "$root/bench/qdq_vs_float.py" --edgepack "$build/compressor/edgepack" --work "$build" "$@"
