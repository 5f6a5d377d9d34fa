#!/usr/bin/env bash
# Builds edgepack (Release, in build-bench unless EDGEPACK_BUILD_DIR is set) and runs
# bench/bench_vs_ort.py with the repo's .venv. Extra arguments go to the script, e.g.
#   bench/run.sh --threads 1 --models ppocr-cls,ppocr-rec --rounds 3
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
exec "$python" "$root/bench/bench_vs_ort.py" --edgepack "$build/compressor/edgepack" "$@"
