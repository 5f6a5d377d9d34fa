#!/usr/bin/env bash
# Cross-builds the device binary `edgepack-run` for aarch64 (64-bit Arm Linux) with
# Debian's g++-aarch64-linux-gnu: ir + .epk reader + runtime only (EDGEPACK_RUNTIME_ONLY,
# no protobuf/ONNX), into build-aarch64/ (or $EDGEPACK_AARCH64_BUILD). Incremental: a
# second run with nothing changed takes a second. Prints the binary's path on stdout.
#
#   scripts/cross_aarch64.sh            # build (configure the first time)
#   qemu-aarch64 -L /usr/aarch64-linux-gnu build-aarch64/runtime-check/edgepack-run --help
#
# Needs (scripts/setup.sh installs them): g++-aarch64-linux-gnu, libssl-dev:arm64,
# libgomp1:arm64 (dpkg --add-architecture arm64), and qemu-user to run the result here.
# Exit 2 with a message when the cross compiler is absent.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${EDGEPACK_AARCH64_BUILD:-$root/build-aarch64}

if ! command -v aarch64-linux-gnu-g++ >/dev/null; then
    echo "cross_aarch64.sh: aarch64-linux-gnu-g++ not found (apt-get install g++-aarch64-linux-gnu)" >&2
    exit 2
fi
if [[ ! -e /usr/lib/aarch64-linux-gnu/libcrypto.so ]]; then
    echo "cross_aarch64.sh: /usr/lib/aarch64-linux-gnu/libcrypto.so not found (dpkg --add-architecture arm64; apt-get install libssl-dev:arm64)" >&2
    exit 2
fi
if [[ ! -f $build/build.ninja ]]; then
    launcher=()
    command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    cmake -S "$root" -B "$build" -G Ninja \
        -DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake" \
        -DCMAKE_BUILD_TYPE=Release -DEDGEPACK_RUNTIME_ONLY=ON "${launcher[@]}" >&2
fi
ninja -C "$build" edgepack-run >&2
echo "$build/runtime-check/edgepack-run"
