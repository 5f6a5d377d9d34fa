#!/usr/bin/env bash
# The main job on a bundled example: inspect the PP-OCR mobile text-direction classifier
# (a real model from a registry package), run the cleanup recipe on it
# (promote-constants + fold-batchnorm), inspect the result, and check with ONNX Runtime
# that the cleaned model computes the same thing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
ep="build/compressor/edgepack"
model=".cache/models/ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx"
out="build/demo/cls-clean.onnx"
mkdir -p build/demo

echo "== edgepack inspect $model"
"$ep" inspect "$model"
echo
echo "== edgepack compress examples/recipes/cleanup-ppocr-cls.json -o $out --time-passes"
"$ep" compress examples/recipes/cleanup-ppocr-cls.json -o "$out" --time-passes
echo
echo "== edgepack inspect $out"
"$ep" inspect "$out"
echo
echo "== ONNX Runtime: original vs cleaned, same seeded inputs"
.venv/bin/python scripts/xcheck/ort_compare.py "$model" "$out" --mode tol --rtol 1e-4 \
  --shape x=4,3,48,192 --samples 3 > build/demo/ort_compare.json
.venv/bin/python - build/demo/ort_compare.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for name, o in r["outputs"].items():
    print(f"{name}: max |diff| / max |reference| = {o['rel']:.2e} (limit 1e-4)")
print("verdict: the cleaned model computes the same as the original" if r["ok"] else "verdict: OUTPUTS DIFFER")
sys.exit(0 if r["ok"] else 1)
PY
