#!/usr/bin/env bash
# Bounded-memory LoRA merge (issue 13): a generated >= 1 GiB f16 safetensors checkpoint
# merged with a generated rank-16 PEFT adapter streams (Pass::plan_streaming), with peak
# resident memory at most 2 x its largest tensor + 256 MB.
#
#   scripts/xcheck/large_lora_rss.sh BUILD_DIR [WORK_DIR] [TENSORS ROWS COLS]
#
# 1. scripts/xcheck/make_large_safetensors.py writes WORK_DIR/big.safetensors: TENSORS x
#    [ROWS, COLS] f16 (default 8 x [8192, 8192] = 1 GiB, largest tensor 128 MiB), and a
#    seeded random PEFT adapter (random values, not a trained one: this measures memory and
#    speed) with lora_A [16, COLS] / lora_B [ROWS, 16] for every tensor "layers.I.weight".
# 2. `/usr/bin/time -v edgepack compress big-lora.json` (merge-lora -> big-merged.safetensors)
#    and the same with --dry-run (the base: reading and planning, no merge).
# 3. Prints one JSON line: peak RSS of both, wall time, throughput (checkpoint bytes / wall).
# Exit 0 when the peak RSS is within the limit, else 1. Generated files are deleted at the
# end (KEEP=1 keeps them).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${EDGEPACK_PYTHON:-$root/.venv/bin/python}"

build="${1:?usage: large_lora_rss.sh BUILD_DIR [WORK_DIR] [TENSORS ROWS COLS]}"
work="${2:-/work/tmp-large-lora}"
tensors="${3:-8}"
rows="${4:-8192}"
cols="${5:-8192}"
edgepack="$(cd "$build" && pwd)/compressor/edgepack"

[ -x /usr/bin/time ] || { echo "large_lora_rss: /usr/bin/time is missing" >&2; exit 2; }
[ -x "$edgepack" ] || { echo "large_lora_rss: $edgepack is not built" >&2; exit 2; }
mkdir -p "$work"
cd "$work"
cleanup() {
    if [ "${KEEP:-0}" != 1 ]; then
        rm -rf big.safetensors big-merged.safetensors big-lora.json big-adapter time-*.txt
    fi
}
trap cleanup EXIT

"$python" "$root/scripts/xcheck/make_large_safetensors.py" big.safetensors \
    --tensors "$tensors" --rows "$rows" --cols "$cols" >&2
"$python" - "$tensors" "$rows" "$cols" <<'PY'
import json, os, sys
import numpy as np
from safetensors.numpy import save_file
n, rows, cols = map(int, sys.argv[1:])
rng = np.random.default_rng(13)
r = 16
tensors = {}
for i in range(n):
    key = f"base_model.model.layers.{i}"
    tensors[f"{key}.lora_A.weight"] = (rng.standard_normal((r, cols)) / np.sqrt(cols)).astype(np.float32)
    tensors[f"{key}.lora_B.weight"] = (rng.standard_normal((rows, r)) * 0.01).astype(np.float32)
os.makedirs("big-adapter", exist_ok=True)
save_file(tensors, "big-adapter/adapter_model.safetensors")
json.dump({"peft_type": "LORA", "r": r, "lora_alpha": 32, "target_modules": r"layers\.[0-9]+",
           "fan_in_fan_out": False}, open("big-adapter/adapter_config.json", "w"))
PY
cat > big-lora.json <<'EOF2'
{"model": "big.safetensors",
 "passes": [{"pass": "merge-lora", "adapter": "big-adapter"}],
 "output": "big-merged.safetensors"}
EOF2

largest_mib=$(( rows * cols * 2 / 1048576 ))
limit_mib=$(( 2 * largest_mib + 256 ))
total_bytes=$(stat -c %s big.safetensors)
/usr/bin/time -v "$edgepack" compress big-lora.json --dry-run 2> time-dry.txt >&2 ||
    { cat time-dry.txt >&2; exit 1; }
/usr/bin/time -v "$edgepack" compress big-lora.json --time-passes 2> time-run.txt >&2 ||
    { cat time-run.txt >&2; exit 1; }
grep -v '^\s' time-run.txt >&2 || true
rss() { awk -F': ' '/Maximum resident set size/ {print int($2 / 1024)}' "$1"; }
secs() { awk '/Elapsed \(wall clock\)/ {n = split($NF, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$1"; }
rss_run=$(rss time-run.txt)
rss_dry=$(rss time-dry.txt)
wall=$(secs time-run.txt)
ok=true
[ "$rss_run" -le "$limit_mib" ] || ok=false
load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "{\"checkpoint_bytes\": $total_bytes, \"largest_tensor_mib\": $largest_mib," \
     "\"peak_rss_mib\": $rss_run, \"dry_run_peak_rss_mib\": $rss_dry, \"limit_mib\": $limit_mib," \
     "\"wall_s\": $wall, \"mib_per_s\": $(awk -v b="$total_bytes" -v s="$wall" 'BEGIN {printf "%.1f", b / 1048576 / s}')," \
     "\"load_average\": \"$load\", \"ok\": $ok}"
[ "$ok" = true ]
