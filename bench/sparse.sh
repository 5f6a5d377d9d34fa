#!/usr/bin/env bash
# Builds edgepack_sparse_bench (Release, -DEDGEPACK_BUILD_BENCH=ON, in build-bench unless
# EDGEPACK_BUILD_DIR is set) and runs it: MatMul 4096 x 4096 with a 50% unstructured (bitmask)
# and a 2:4 sparse weight, f32 / int8c / int4g32, GEMV (M = 1) and a small-batch GEMM (M = 8),
# each as a ratio to the dense kernel in the same run, then prints the load average.
# Extra arguments go to the benchmark, e.g.  bench/sparse.sh --threads 2 --reps 40 --m 1,4,16
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${EDGEPACK_BUILD_DIR:-$root/build-bench}"
if [[ ! -f "$build/build.ninja" ]] || ! grep -q "EDGEPACK_BUILD_BENCH:BOOL=ON" "$build/CMakeCache.txt"; then
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEDGEPACK_BUILD_TESTS=OFF \
        -DEDGEPACK_BUILD_BENCH=ON >/dev/null
fi
ninja -C "$build" edgepack_sparse_bench >/dev/null
"$build/bench/edgepack_sparse_bench" "$@"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
