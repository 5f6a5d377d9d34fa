#!/usr/bin/env bash
# The PP-OCRv4 rec table of docs/quantization.md: examples/recipes/ppocr-rec-int8.json with
# its quantize-weights step varied (Conv int8 or float, MatMul/Gemm per channel or grouped),
# validated on the rendered text lines of scripts/make_data.sh (.cache/data/ppocr-rec-eval),
# plus greedy-CTC line agreement and character error rates (scripts/xcheck/ctc_lines.py on
# `edgepack run --data` outputs of the original and of each .epk).
#   usage: scripts/xcheck/ppocr_rec_table.sh [EDGEPACK] [WORK_DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ep="${1:-$root/build/compressor/edgepack}"
work="${2:-$(mktemp -d)}"
py="$root/.venv/bin/python"
recipe="$root/examples/recipes/ppocr-rec-int8.json"
data="$root/.cache/data/ppocr-rec-eval"
keys="$root/.cache/models/ppocr/ppocr_keys_v1.txt"
model="$root/.cache/models/ppocr/ch_PP-OCRv4_rec_infer.onnx"
mkdir -p "$work"
"$ep" run "$model" --data "$data" --out "$work/ref" --threads 2 -q
cer="$("$py" "$root/scripts/xcheck/ctc_lines.py" "$keys" "$data/labels.txt" "$work/ref" |
  "$py" -c 'import json,sys; r=json.load(sys.stdin)["candidate"]; print("%.2f%%, lines %.1f%%" % (100*r["cer"], 100*r["line_accuracy"]))')"
printf '| Conv weights | MatMul/Gemm weights | KL mean | KL p99 | top-1 %% | SQNR dB | lines as original | CER (original %s) | .epk bytes | ratio | peak memory |\n' "$cer"
echo '|---|---|---|---|---|---|---|---|---|---|---|'
# Each row: a label for the table, then the quantize-weights steps that replace the recipe's
# (after promote-constants and fold-batchnorm); "recipe" keeps the recipe's own passes.
q() { printf '{"pass":"quantize-weights","bits":%s,"group_size":%s,"conv":%s,"conv_group_size":%s}' "$@"; }
early='["conv2d_160.w_0","conv2d_162.w_0","conv2d_164.w_0","conv2d_165.w_0","conv2d_166.w_0","conv2d_167.w_0","conv2d_168.w_0","conv2d_169.w_0"]'
head='{"pass":"quantize-weights","bits":4,"group_size":32,"include":["linear_85.w_0"]}'
rows=(
  "int8 per channel|int8 per channel|$(q 8 0 true 0)"
  "float|int8 per channel|$(q 8 0 false 0)"
  "float|int8 g32|$(q 8 32 false 0)"
  "float|int8 g64|$(q 8 64 false 0)"
  "float|int8 g128|$(q 8 128 false 0)"
  "float|int4 g32|$(q 4 32 false 0)"
  "int8 g32|int8 per channel|$(q 8 0 true 32)"
  "int8 g64|int8 per channel|$(q 8 0 true 64)"
  "int8 g128|int8 per channel|$(q 8 0 true 128)"
  "int8 g64|int4 g32|$(q 4 32 true 64)"
  "int8 g32|linear_85 int4 g32, rest int8 per channel|$head,$(q 8 0 true 32)"
  "int8 g32, first 8 float|linear_85 int4 g32, rest int8 per channel|$head,$(q 8 0 true 32 | sed "s/}\$/,\"exclude\":$early}/")"
  "int8 g32, first 8 float|linear_85 int4 g32 GPTQ, rest int8 per channel (the recipe)|recipe"
)
i=0
for row in "${rows[@]}"; do
  IFS='|' read -r conv_label mm_label quant <<<"$row"
  out="$work/row$i"
  i=$((i + 1))
  set_passes=()
  [ "$quant" = recipe ] ||
    set_passes=(--set "passes=[{\"pass\":\"promote-constants\"},{\"pass\":\"fold-batchnorm\"},$quant]")
  "$ep" compress "$recipe" -o "$out.epk" --report-dir "$out-report" --quiet \
    --set "validate.data=$data" --set validate.benchmark_runs=0 --set validate.per_layer=false \
    "${set_passes[@]}" --set 'gates={}' --set 'baseline={}' || true
  "$ep" run "$out.epk" --data "$data" --out "$out-out" --threads 2 -q
  ctc="$("$py" "$root/scripts/xcheck/ctc_lines.py" "$keys" "$data/labels.txt" "$out-out" "$work/ref")"
  "$py" - "$out-report/report.json" "$ctc" "$conv_label" "$mm_label" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); m = r["metrics"]; c = json.loads(sys.argv[2])
print(f"| {sys.argv[3]} | {sys.argv[4]} | {m['kl_mean']:.4f} | {m['kl_p99']:.4f} | "
      f"{m['top1_agreement']:.2f} | {m['sqnr_db']:.2f} | {c['line_agreement']*100:.1f}% | "
      f"{c['candidate']['cer']*100:.2f}% | {r['outputs'][0]['bytes']:,} | "
      f"{m['compression_ratio']:.2f} | {m['peak_memory_bytes']:,} |")
PY
done
