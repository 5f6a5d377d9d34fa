#!/usr/bin/env bash
# The main job on a bundled example, as CI runs it: compress the PP-OCRv4 text recognizer
# (a real model from a registry package) with examples/recipes/ppocr-rec-int8.json
# (promote constants, fold BatchNorm, int8 weights per channel), validate the packed .epk
# against the original in the same run, judge the recipe's gates, and write the reports.
# Exits with edgepack's code: 0 every gate held, 1 a gate failed, 2 bad input, 3 internal.
# Extra arguments go to `edgepack compress` (e.g. --set gates.max_kl_mean=0.001).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
ep="build/compressor/edgepack"
recipe="examples/recipes/ppocr-rec-int8.json"

echo "== edgepack compress $recipe $*"
rc=0
"$ep" compress "$recipe" "$@" || rc=$?
echo
echo "== build/demo/ppocr-rec-int8-report/report.md (first lines)"
head -n 16 build/demo/ppocr-rec-int8-report/report.md 2>/dev/null || true
exit "$rc"
