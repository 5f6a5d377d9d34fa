#!/usr/bin/env python3
"""Writes inputs for the Silero VAD v4 model (silero_vad.onnx): consecutive 512-sample
frames of a 16 kHz signal with the LSTM states the model itself carries from frame to frame.

    make_vad_data.py MODEL OUT [--frames 48] [--wav FILE [--start SECONDS] [--rttm FILE]]
                               [--seed 1]

With --wav the signal is that recording (16 kHz mono 16-bit PCM, e.g. the recorded speech
scripts/fetch_models.sh puts in .cache/models/speech-sample/), from --start on; with --rttm
(its speaker turns) OUT/labels.npy [F] int64 says which frames are speech (1: the frame's
centre lies in a turn), and the script prints how often the model's decision (probability
> 0.5) agrees with it. Without --wav the signal is synthesized, not recorded: voiced
stretches of 0.3 to 0.7 s (a glottal-like harmonic series on a gliding pitch of 90 to
240 Hz, shaped by two vowel-like formant peaks, with a syllable-rate envelope) alternate with
stretches of low background noise, all seeded. Each frame is OUT/frame_NNN.npz with
  input [1, 512] float32, sr int64 scalar (16000), h, c [2, 1, 64] float32
where h / c are the states ONNX Runtime's run of MODEL returned for the frame before (zeros
for the first), so every sample is what a streaming caller feeds. Prints the model's speech
probability per frame.
"""
import argparse
import os
import wave

import numpy as np
import onnxruntime as ort

RATE = 16000
FRAME = 512


def voiced(rng, n):
    t = np.arange(n) / RATE
    f0 = rng.uniform(90, 240) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    formants = rng.uniform([300, 900], [800, 2400])
    out = np.zeros(n)
    for k in range(1, 30):
        freq = k * f0
        gain = sum(np.exp(-((freq - f) / 120.0) ** 2) for f in formants) + 0.05 / k
        out += gain * np.sin(k * phase) * (freq < RATE / 2)
    envelope = 0.5 - 0.5 * np.cos(2 * np.pi * rng.uniform(3, 6) * t)
    out *= envelope
    return 0.3 * out / max(np.max(np.abs(out)), 1e-9)


def signal(rng, samples):
    parts, total, speech = [], 0, rng.random() < 0.5
    while total < samples:
        n = int(rng.uniform(0.3, 0.7) * RATE)
        part = voiced(rng, n) if speech else np.zeros(n)
        parts.append(part + rng.normal(0, 0.003, n))
        total += n
        speech = not speech
    return np.concatenate(parts)[:samples].astype(np.float32)


def recording(path, start, samples):
    with wave.open(path, "rb") as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
            raise SystemExit(f"{path}: expected 16 kHz mono 16-bit PCM")
        first = int(round(start * RATE))
        if first + samples > w.getnframes():
            raise SystemExit(f"{path}: {w.getnframes() / RATE:.2f} s, needs "
                             f"{(first + samples) / RATE:.2f} s")
        w.setpos(first)
        pcm = np.frombuffer(w.readframes(samples), "<i2")
    return (pcm.astype(np.float32) / 32768.0)


def speech_labels(rttm, start, frames):
    turns = []
    with open(rttm) as f:
        for line in f:
            p = line.split()
            if p and p[0] == "SPEAKER":
                turns.append((float(p[3]), float(p[3]) + float(p[4])))
    centre = start + (np.arange(frames) + 0.5) * FRAME / RATE
    return np.array([any(a <= t < b for a, b in turns) for t in centre], np.int64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--wav")
    ap.add_argument("--start", type=float, default=0.0)
    ap.add_argument("--rttm")
    a = ap.parse_args()
    if a.wav:
        x = recording(a.wav, a.start, a.frames * FRAME)
    else:
        x = signal(np.random.default_rng(a.seed), a.frames * FRAME)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    os.makedirs(a.out, exist_ok=True)
    h = np.zeros((2, 1, 64), np.float32)
    c = np.zeros((2, 1, 64), np.float32)
    sr = np.array(RATE, np.int64)
    labels = speech_labels(a.rttm, a.start, a.frames) if a.rttm else None
    agree = 0
    for i in range(a.frames):
        frame = x[i * FRAME:(i + 1) * FRAME].reshape(1, FRAME)
        np.savez(os.path.join(a.out, f"frame_{i:03d}.npz"), input=frame, sr=sr, h=h, c=c)
        prob, h, c = sess.run(None, {"input": frame, "sr": sr, "h": h, "c": c})
        p = float(prob.reshape(-1)[0])
        print(f"frame {i}: speech probability {p:.3f}" +
              ("" if labels is None else f" (labelled {'speech' if labels[i] else 'silence'})"))
        agree += labels is not None and (p > 0.5) == bool(labels[i])
    if labels is not None:
        np.save(os.path.join(a.out, "labels.npy"), labels)
        print(f"agreement with {a.rttm}: {agree} / {a.frames} frames "
              f"({100.0 * agree / a.frames:.1f} %), {int(labels.sum())} labelled speech")


if __name__ == "__main__":
    main()
