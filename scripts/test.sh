#!/usr/bin/env bash
# The whole test suite: installs what is missing (scripts/setup.sh), builds, runs CTest.
#   EDGEPACK_SANITIZE=ON scripts/test.sh   runs it under AddressSanitizer + UBSan (build-asan/)
#   scripts/test.sh --sanitize-subset      builds and runs only the sanitizer subset under
#                                          ASan + UBSan (build-asan/): what .ci/run adds to the
#                                          suite. The subset's files: EDGEPACK_SANITIZE_SUBSET in
#                                          tests/CMakeLists.txt (docs/ci.md, Sanitizers)
# Under the sanitizers every AddressSanitizer / LeakSanitizer report (from the tests and from the
# edgepack processes they start) goes to BUILD_DIR/sanitizer-logs/; any file there fails the
# run, printed, even when the test that caused it passed. UBSan halts the process (exit 1) and
# prints on stderr (GCC's libubsan ignores log_path), which fails the test that shows it.
# Extra arguments go to ctest (e.g. -R onnx, -L large).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ "${1:-}" = "--sanitize-subset" ]; then
  shift
  export EDGEPACK_SANITIZE=ON EDGEPACK_TESTS_SANITIZE_SUBSET=ON
fi
sanitizer_logs=""
if [ "${EDGEPACK_SANITIZE:-OFF}" = "ON" ]; then
  export BUILD_DIR="${BUILD_DIR:-build-asan}"
  case "$BUILD_DIR" in
    /*) sanitizer_logs="$BUILD_DIR/sanitizer-logs" ;;
    *) sanitizer_logs="$root/$BUILD_DIR/sanitizer-logs" ;;
  esac
  rm -rf "$sanitizer_logs"
  mkdir -p "$sanitizer_logs"
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:log_path=$sanitizer_logs/asan}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
fi
bash scripts/setup.sh
status=0
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "$(nproc)" "$@" || status=$?
if [ -n "$sanitizer_logs" ] && [ -n "$(ls -A "$sanitizer_logs")" ]; then
  for f in "$sanitizer_logs"/*; do
    printf '\n== sanitizer report %s\n' "$f" >&2
    cat "$f" >&2
  done
  printf 'test: %s sanitizer report(s) in %s\n' "$(ls "$sanitizer_logs" | wc -l)" "$sanitizer_logs" >&2
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
