#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/, clang-19 with ASan + UBSan, in build-fuzz/)
# and runs each reader's harness for a fixed time, all at once, then prints the execs each
# reached and records them in docs/fuzzing.md.
#   scripts/fuzz.sh [SECONDS] [READER...]    default 600 s each; readers: onnx safetensors epk npy recipe
# Exit 1 when a harness found a crash: the input is in build-fuzz/crashes/READER/ (replay
# it with build-fuzz/tests/fuzz/fuzz_READER FILE); fix the reader, then keep the input as
# tests/fuzz/regressions/READER/NAME (the default suite replays every file there).
# EDGEPACK_FUZZ_NO_DOC=1 leaves docs/fuzzing.md alone (short trial runs);
# EDGEPACK_FUZZ_SUMMARY_ONLY=1 neither builds nor runs: it reports the last run's logs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${1:-600}"
shift || true
readers=("$@")
[ ${#readers[@]} -gt 0 ] || readers=(onnx safetensors epk npy recipe)
build=build-fuzz
compiler="${EDGEPACK_FUZZ_CXX:-clang++-19}"
# The project's own packages (scripts/setup.sh), then clang-19 and its libFuzzer runtime,
# which only this script needs (kept out of the default set-up and CI).
bash "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
fuzz_packages=(clang-19 libfuzzer-19-dev libclang-rt-19-dev)
fuzz_missing=()
for p in "${fuzz_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || fuzz_missing+=("$p")
done
if [ ${#fuzz_missing[@]} -gt 0 ]; then
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${fuzz_missing[@]}" >/dev/null
fi
command -v "$compiler" >/dev/null || { echo "fuzz.sh: $compiler not found (apt-get install clang-19 libfuzzer-19-dev)" >&2; exit 2; }

summary_only="${EDGEPACK_FUZZ_SUMMARY_ONLY:-0}"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
[ "$summary_only" = 1 ] || cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$compiler" "${launcher[@]}" \
  -DCMAKE_BUILD_TYPE=Debug -DEDGEPACK_FUZZ=ON -DEDGEPACK_BUILD_TESTS=OFF >/dev/null
[ "$summary_only" = 1 ] || ninja -C "$build" "${readers[@]/#/fuzz_}"

# Leaks are findings too; UBSan stops at the first report (the build has no recovery).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
pids=()
for r in "${readers[@]}"; do
  [ "$summary_only" = 1 ] && break
  # libFuzzer adds what it learns to the first folder (build-fuzz/corpus/R, kept between
  # runs); the committed seeds and regressions are read only.
  # Crashes of an earlier run move aside (crashes/R.TIME), so this run counts its own.
  if [ -n "$(ls -A "$build/crashes/$r" 2>/dev/null)" ]; then
    mv "$build/crashes/$r" "$build/crashes/$r.$(date +%s)"
  fi
  mkdir -p "$build/corpus/$r" "$build/crashes/$r"
  seeds=("tests/fuzz/corpus/$r")
  [ -d "tests/fuzz/regressions/$r" ] && seeds+=("tests/fuzz/regressions/$r")
  "$build/tests/fuzz/fuzz_$r" "$build/corpus/$r" "${seeds[@]}" \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/crashes/$r/" >"$build/fuzz_$r.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done

date_utc="$(date -u '+%Y-%m-%d %H:%M UTC')"
rows=""
found=0
printf '%-12s %12s %10s %8s %8s\n' reader execs exec/s seconds crashes
for r in "${readers[@]}"; do
  log="$build/fuzz_$r.log"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1 || true)"
  cov="$( (grep -o 'cov: [0-9]*' "$log" || true) | tail -1 | cut -d' ' -f2)"
  crashes="$(find "$build/crashes/$r" -type f | wc -l)"
  if grep -q 'ERROR: libFuzzer\|ERROR: AddressSanitizer\|runtime error:\|ERROR: LeakSanitizer' "$log"; then
    [ "$crashes" -gt 0 ] || crashes=1
  fi
  [ "$crashes" -eq 0 ] || found=1
  printf '%-12s %12s %10s %8s %8s\n' "$r" "${execs:-?}" "${rate:-?}" "$seconds" "$crashes"
  rows+="| $r | ${execs:-?} | ${rate:-?} | ${cov:-?} | $seconds | $crashes | $date_utc | \`scripts/fuzz.sh $seconds${*:+ $*}\` |"$'\n'
done

# docs/fuzzing.md keeps one row per reader: the rows of this run replace theirs.
if [ "${EDGEPACK_FUZZ_NO_DOC:-0}" != 1 ]; then
  python3 - "$rows" "$(nproc)" <<'PY'
import re, sys
path = "docs/fuzzing.md"
text = open(path).read()
begin, end = "<!-- fuzz.sh results: begin -->", "<!-- fuzz.sh results: end -->"
old = text[text.index(begin) + len(begin):text.index(end)]
rows = {}
for line in old.splitlines() + sys.argv[1].splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) == 8 and cells[0] not in ("reader", "---"):
        rows[cells[0]] = line.strip()
order = ["onnx", "safetensors", "epk", "npy", "recipe"]
table = "\n".join(rows[r] for r in sorted(rows, key=lambda r: (r not in order, order.index(r) if r in order else 0, r)))
new = (f"{begin}\n| reader | execs | execs/s | coverage (edges) | seconds | crashes | when | command |\n"
       f"|---|---:|---:|---:|---:|---:|---|---|\n{table}\n\n"
       f"Machine: {sys.argv[2]} cores, shared with other builds and test runs.\n{end}")
text = text.replace(text[text.index(begin):text.index(end) + len(end)], new)
open(path, "w").write(text)
PY
fi
[ "$found" -eq 0 ] || { echo "fuzz.sh: crashes found: see $build/crashes/ and $build/fuzz_*.log" >&2; exit 1; }
