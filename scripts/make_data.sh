#!/usr/bin/env bash
# Makes the real data the example recipes calibrate and validate on, under .cache/data
# (idempotent: a data set is remade only when its recipe line below or its generator
# changed; every generator is seeded, so the bytes are the same on every machine).
#   ppocr-rec-eval, ppocr-rec-calib  text lines rendered in DejaVu Sans, PP-OCR rec inputs
#                                    [1,3,48,320] + labels.txt (scripts/render_text_lines.py)
#   ppocr-cls-eval                   the same at [1,3,48,192], every other line rotated 180
#                                    degrees + labels.npy (0 upright, 1 rotated)
#   ppocr-cls-calib                  32 other lines the same way (quantize-static's ranges)
# With ../shared/models beside the repository (CI has it; a fresh clone may not):
#   mnist-test                       the 10k MNIST test images, 10 .npz batches + labels.npy
#   mnist-calib                      the first 1000 of them as 10 batches of 100 (the
#                                    training set is not available offline): the
#                                    calibration set of the static int8 recipe
#   stories260k-calib.npy, -eval.npy token sequences stories260k sampled itself (there is no
#                                    tokenizer for its 512-token vocabulary offline: this is
#                                    the real token text we have), [64, 64] int64
#   stories260k-ref.npy              ../shared/models/stories260k/ref_tokens.npy as [1, 64]
#   stories260k-lora, -lora-hf       a seeded rank-4 LoRA adapter in PEFT's layout on each
#                                    layer's q / v / FFN-down projections (no torch:
#                                    scripts/make_lora_adapter.py); -lora names the modules as
#                                    model.onnx's initializers (llama2.c paths), -lora-hf as
#                                    model.safetensors' tensors (Hugging Face paths), same values
#   stories260k-lora-2               another adapter like stories260k-lora (seed 2): the
#                                    LoRA-updated pack of the delta example (docs/delivery.md)
# With the MiniLM's vocabulary fetched (scripts/fetch_models.sh):
#   minilm-eval                      64 English sentences from the license texts in
#                                    /usr/share/common-licenses (every Debian system has them),
#                                    BERT-uncased WordPiece ids: 16 .npz of input_ids and
#                                    attention_mask [4, 32] + sentences.txt
#                                    (scripts/tokenize_text.py)
# With the Silero VAD and the speech sample fetched (scripts/fetch_models.sh):
#   silero-vad-eval, silero-vad-calib  96 / 32 consecutive 512-sample frames of recorded
#                                    speech (pyannote.audio's sample.wav, from 6.0 s: silence
#                                    then two speakers / from 18.0 s) with the LSTM states the
#                                    model carries between frames, .npz of input, sr, h, c;
#                                    the eval set also has labels.npy, each frame's speech /
#                                    silence from sample.rttm (scripts/make_vad_data.py)
# Always:
#   logmel                           a log-mel front end (STFT -> |X|^2 -> mel MatMul -> Log)
#                                    as logmel.onnx and 1 s of make_vad_data.py's synthesized
#                                    signal as audio.npy [1, 16000] (scripts/make_logmel.py;
#                                    bench/run.sh times it against ONNX Runtime)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py=.venv/bin/python
data=.cache/data
keys=.cache/models/ppocr/ppocr_keys_v1.txt
shared=../shared/models
mkdir -p "$data"

# make_set NAME GENERATOR ARGS...: runs GENERATOR with ARGS (OUT starts the output path)
# into $data/NAME unless $data/NAME.stamp holds the digest of the generator and the args.
make_set() {
  local name="$1" gen="$2"
  shift 2
  local stamp
  stamp="$(printf '%s\n' "$@" | cat - "$gen" | sha256sum | cut -d' ' -f1)"
  [ -e "$data/$name" ] && [ "$(cat "$data/$name.stamp" 2>/dev/null)" = "$stamp" ] && return 0
  echo "make_data: $name" >&2
  local tmp="$data/.tmp.$name"
  rm -rf "$tmp" "$data/$name" "$data/$name.stamp"
  local args=()
  for a in "$@"; do [[ "$a" == OUT* ]] && args+=("$tmp${a#OUT}") || args+=("$a"); done
  "$py" "$gen" "${args[@]}" >/dev/null
  mv "$tmp" "$data/$name"
  echo "$stamp" > "$data/$name.stamp"
}

render=scripts/render_text_lines.py
make_set ppocr-rec-eval "$render" "$keys" OUT --count 64 --seed 1
make_set ppocr-rec-calib "$render" "$keys" OUT --count 32 --seed 2
make_set ppocr-cls-eval "$render" "$keys" OUT --count 64 --seed 3 --width 192 --min-chars 3 \
  --max-chars 8 --rotate-half
make_set ppocr-cls-calib "$render" "$keys" OUT --count 32 --seed 4 --width 192 --min-chars 3 \
  --max-chars 8 --rotate-half

if [ -f "$shared/mnist/t10k-images-idx3-ubyte.gz" ]; then
  make_set mnist-test scripts/xcheck/mnist_to_npz.py "$shared/mnist/t10k-images-idx3-ubyte.gz" \
    "$shared/mnist/t10k-labels-idx1-ubyte.gz" OUT --labels-out OUT/labels.npy --batch 1000
  make_set mnist-calib scripts/xcheck/mnist_to_npz.py "$shared/mnist/t10k-images-idx3-ubyte.gz" \
    "$shared/mnist/t10k-labels-idx1-ubyte.gz" OUT --labels-out OUT/labels.npy --batch 100 \
    --limit 1000
fi
if [ -f "$shared/stories260k/model.onnx" ]; then
  sample=scripts/xcheck/sample_tokens.py
  make_set stories260k-calib.npy "$sample" "$shared/stories260k/model.onnx" OUT --seed 1 \
    --count 64 --length 64
  make_set stories260k-eval.npy "$sample" "$shared/stories260k/model.onnx" OUT --seed 2 \
    --count 64 --length 64
  make_set stories260k-ref.npy scripts/xcheck/reshape_npy.py "$shared/stories260k/ref_tokens.npy" \
    OUT 1,-1
  make_set stories260k-lora scripts/make_lora_adapter.py "$shared/stories260k/model.safetensors" \
    OUT --naming llama2c --rank 4 --alpha 8 --seed 1
  make_set stories260k-lora-hf scripts/make_lora_adapter.py \
    "$shared/stories260k/model.safetensors" OUT --naming hf --rank 4 --alpha 8 --seed 1
  make_set stories260k-lora-2 scripts/make_lora_adapter.py \
    "$shared/stories260k/model.safetensors" OUT --naming llama2c --rank 4 --alpha 8 --seed 2
fi
make_set logmel scripts/make_logmel.py OUT --seconds 1 --seed 1

if [ -f .cache/models/minilm/vocab.json ]; then
  make_set minilm-eval scripts/tokenize_text.py .cache/models/minilm/vocab.json OUT --count 64 \
    --batch 4 --length 32 --seed 1 --text /usr/share/common-licenses/*
fi
speech=.cache/models/speech-sample
if [ -f .cache/models/silero-vad/silero_vad.onnx ] && [ -f "$speech/sample.wav" ]; then
  make_set silero-vad-eval scripts/make_vad_data.py .cache/models/silero-vad/silero_vad.onnx OUT \
    --frames 96 --wav "$speech/sample.wav" --start 6.0 --rttm "$speech/sample.rttm"
  make_set silero-vad-calib scripts/make_vad_data.py .cache/models/silero-vad/silero_vad.onnx \
    OUT --frames 32 --wav "$speech/sample.wav" --start 18.0
fi
