#!/usr/bin/env bash
# Acceptance for bounded-memory checkpoint quantization (issue 4, item 6): a generated
# 4 GiB f16 safetensors checkpoint quantizes to int4 g32 with peak resident memory at most
# 2 x its largest tensor + 256 MB.
#
#   scripts/xcheck/large_checkpoint_rss.sh BUILD_DIR [WORK_DIR] [TENSORS ROWS COLS]
#
# 1. scripts/xcheck/make_large_safetensors.py writes WORK_DIR/big.safetensors: TENSORS x
#    [ROWS, COLS] f16 (default 16 x [8192, 16384] = 4 GiB, largest tensor 256 MiB).
# 2. For each output (big-int4.epk, big-int4.safetensors): `/usr/bin/time -v edgepack
#    compress big-int4.json -o OUT` (recipe: quantize-weights bits 4, group_size 32, rtn),
#    the streaming path (compressor/stream_compress.h); "Maximum resident set size" is its
#    peak RSS. The .epk is then verified with `edgepack inspect` (whole-file and per-tensor
#    checksums).
# 3. Prints one JSON line per output:
#    {"output": ..., "peak_rss_mib": N, "limit_mib": N, "wall_s": S, "output_bytes": N, "ok": B}
# Exit 0 when every peak RSS is within the limit, else 1. The generated checkpoint and the
# outputs are deleted at the end (KEEP=1 keeps them).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${EDGEPACK_PYTHON:-$root/.venv/bin/python}"

build="${1:?usage: large_checkpoint_rss.sh BUILD_DIR [WORK_DIR] [TENSORS ROWS COLS]}"
work="${2:-/work/tmp-large}"
tensors="${3:-16}"
rows="${4:-8192}"
cols="${5:-16384}"
edgepack="$(cd "$build" && pwd)/compressor/edgepack"

[ -x /usr/bin/time ] || { echo "large_checkpoint_rss: /usr/bin/time is missing" >&2; exit 2; }
[ -x "$edgepack" ] || { echo "large_checkpoint_rss: $edgepack is not built" >&2; exit 2; }
mkdir -p "$work"
cd "$work"
cleanup() {
    if [ "${KEEP:-0}" != 1 ]; then
        rm -f big.safetensors big-int4.epk big-int4.safetensors big-int4.json time-*.txt
    fi
}
trap cleanup EXIT

"$python" "$root/scripts/xcheck/make_large_safetensors.py" big.safetensors \
    --tensors "$tensors" --rows "$rows" --cols "$cols" >&2
cat > big-int4.json <<'EOF'
{"model": "big.safetensors",
 "passes": [{"pass": "quantize-weights", "bits": 4, "group_size": 32, "method": "rtn"}],
 "output": "big-int4.epk"}
EOF

largest_mib=$(( rows * cols * 2 / 1048576 ))
limit_mib=$(( 2 * largest_mib + 256 ))
status=0
for out in big-int4.epk big-int4.safetensors; do
    # RSS counts the mapped checkpoint pages the process touches (released as it goes),
    # not the kernel's page cache, so a warm cache does not change the figure.
    /usr/bin/time -v "$edgepack" compress big-int4.json -o "$out" --time-passes 2> "time-$out.txt" >&2 ||
        { cat "time-$out.txt" >&2; exit 1; }
    grep -v '^\s' "time-$out.txt" >&2 || true
    rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "time-$out.txt")
    wall=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "time-$out.txt")
    bytes=$(stat -c %s "$out")
    rss_mib=$(( rss_kb / 1024 ))
    ok=true
    [ "$rss_mib" -le "$limit_mib" ] || { ok=false; status=1; }
    if [ "$out" = big-int4.epk ]; then
        "$edgepack" inspect "$out" --json > /dev/null || { ok=false; status=1; }
    fi
    echo "{\"output\": \"$out\", \"peak_rss_mib\": $rss_mib, \"limit_mib\": $limit_mib," \
         "\"largest_tensor_mib\": $largest_mib, \"wall\": \"$wall\", \"output_bytes\": $bytes," \
         "\"ok\": $ok}"
done
exit $status
