#!/usr/bin/env bash
# Acceptance for models over protobuf's 2 GB limit: generate one, round-trip it through
# edgepack's ONNX reader and writer, and prove the output is bit-identical while peak
# memory stays bounded.
#
#   scripts/large_model_roundtrip.sh DRIVER [WORK_DIR] [MAX_RSS_KB]
#
# DRIVER reads IN.onnx and writes OUT.onnx with default options (Auto external data):
# the test tool build/tests/edgepack_onnx_roundtrip, called as `DRIVER IN OUT`.
# 1. scripts/xcheck/make_large_model.py writes 5 MatMul weights of 512 MiB (2.5 GiB) as
#    external data, one 32 MiB chunk at a time.
# 2. `/usr/bin/time -v DRIVER in/large.onnx out/large.onnx` does the round trip;
#    "Maximum resident set size" is its peak RSS.
# 3. scripts/xcheck/external_data_compare.py compares every tensor's sha256 and the graphs,
#    and runs onnx.checker on the output.
# The last line of stdout is a JSON summary:
#   {"ok": true, "peak_rss_kb": N, "data_bytes": N, "roundtrip_seconds": S, ...}
# Exit 0 when the output matches and peak RSS < MAX_RSS_KB (default 1 GiB), else 1.
# WORK_DIR (default: a new directory under /tmp) gets a subdirectory that is always removed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${EDGEPACK_PYTHON:-$root/.venv/bin/python}"

driver="${1:?usage: large_model_roundtrip.sh DRIVER [WORK_DIR] [MAX_RSS_KB]}"
work_parent="${2:-${TMPDIR:-/tmp}}"
max_rss_kb="${3:-1048576}"

[ -x /usr/bin/time ] || { echo "large_model_roundtrip: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }
mkdir -p "$work_parent"
work="$(mktemp -d "$work_parent/large-roundtrip.XXXXXX")"
trap 'rm -rf "$work"' EXIT

log() { printf 'large_model_roundtrip: %s\n' "$*" >&2; }

log "generating a > 2 GB model in $work/in"
gen_start=$(date +%s.%N)
gen_json="$("$python" "$root/scripts/xcheck/make_large_model.py" "$work/in")"
gen_end=$(date +%s.%N)
log "$gen_json"

mkdir -p "$work/out"
log "round trip: $driver $work/in/large.onnx $work/out/large.onnx"
rt_start=$(date +%s.%N)
set +e
/usr/bin/time -v -o "$work/time.txt" "$driver" "$work/in/large.onnx" "$work/out/large.onnx"
rc=$?
set -e
rt_end=$(date +%s.%N)
peak_kb="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")"
log "driver exit $rc, peak RSS ${peak_kb} kB"

compare_json='{"ok": false, "mismatches": ["round trip failed"]}'
compare_rc=1
if [ "$rc" -eq 0 ]; then
  set +e
  compare_json="$("$python" "$root/scripts/xcheck/external_data_compare.py" \
    "$work/in/large.onnx" "$work/out/large.onnx")"
  compare_rc=$?
  set -e
  log "$compare_json"
fi
ls -l "$work/out" >&2 || true

ok=true
[ "$rc" -eq 0 ] && [ "$compare_rc" -eq 0 ] && [ "${peak_kb:-0}" -gt 0 ] && \
  [ "$peak_kb" -lt "$max_rss_kb" ] || ok=false
"$python" - "$ok" "$rc" "${peak_kb:-0}" "$max_rss_kb" "$gen_start" "$gen_end" "$rt_start" \
  "$rt_end" "$gen_json" "$compare_json" <<'EOF'
import json, sys
ok, rc, peak, limit, g0, g1, r0, r1, gen, cmp = sys.argv[1:]
gen, cmp = json.loads(gen), json.loads(cmp)
print(json.dumps({
    "ok": ok == "true", "driver_exit": int(rc), "peak_rss_kb": int(peak),
    "max_rss_kb": int(limit), "data_bytes": gen["data_bytes"],
    "generate_seconds": round(float(g1) - float(g0), 1),
    "roundtrip_seconds": round(float(r1) - float(r0), 1),
    "tensors": cmp.get("tensors"), "external_tensors": cmp.get("external_tensors"),
    "mismatches": cmp.get("mismatches")}))
EOF
[ "$ok" = true ]
