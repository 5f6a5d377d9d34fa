#!/usr/bin/env python3
"""Independent oracle for edgepack validate's CTC task metrics (compressor/task_metrics.h).

  ctc_oracle.py make DIR --samples N --seed S --alphabet FILE
      writes DIR/sample_KK/x.npy (f32 [1, 6, 5], seeded normal scores), DIR/labels.txt (one
      line per sample: the greedy decode of the scores, or a corrupted copy of it for about
      half the lines) and the alphabet FILE ("a", "é", "中"; 5 classes = blank + 3 + space)
  ctc_oracle.py score --reference A.onnx --candidate B.onnx --data DIR --alphabet FILE
                      --labels FILE
      runs both models in ONNX Runtime on every sample folder (sorted), decodes greedily
      (argmax per position, merge repeats, drop blank 0) and prints JSON: line accuracy,
      CER over code points (percent), line agreement.
"""
import argparse
import json
import os
import sys

import numpy as np

SYMBOLS = ["a", "é", "中"]


def decode(scores, alphabet):
    """Greedy CTC over [T, C]: argmax per row, repeats merged, blanks dropped."""
    out, prev = [], -1
    for k in np.argmax(scores, axis=-1):
        k = int(k)
        if k != prev and k != 0:
            out.append(alphabet[k - 1] if k <= len(alphabet) else " ")
        prev = k
    return "".join(out)


def levenshtein(a, b):
    """Edit distance over Python str (code points), full dynamic-programming table."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1,
                          d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[len(a)][len(b)]


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return [l[:-1] if l.endswith("\r") else l for l in lines]


def make(args):
    rng = np.random.default_rng(args.seed)
    with open(args.alphabet, "w", encoding="utf-8") as f:
        f.write("\n".join(SYMBOLS) + "\n")
    labels = []
    width = len(str(args.samples - 1))
    for k in range(args.samples):
        x = (rng.standard_normal((1, 6, 5)) * 2).astype(np.float32)
        folder = os.path.join(args.dir, f"sample_{k:0{width}d}")
        os.makedirs(folder, exist_ok=True)
        np.save(os.path.join(folder, "x.npy"), x)
        text = decode(x[0], SYMBOLS)
        if rng.random() < 0.5:  # a corrupted label: drop, add or change one character
            chars = list(text)
            op = rng.integers(3)
            if op == 0 and chars:
                del chars[rng.integers(len(chars))]
            elif op == 1:
                chars.insert(int(rng.integers(len(chars) + 1)), SYMBOLS[rng.integers(3)])
            elif chars:
                chars[rng.integers(len(chars))] = "x"
            text = "".join(chars)
        labels.append(text)
    with open(os.path.join(args.dir, "labels.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(labels) + "\n")


def score(args):
    import onnxruntime as ort

    alphabet = read_lines(args.alphabet)
    labels = read_lines(args.labels)
    folders = sorted(d for d in os.listdir(args.data)
                     if os.path.isdir(os.path.join(args.data, d)))
    sessions = [ort.InferenceSession(m, providers=["CPUExecutionProvider"])
                for m in (args.reference, args.candidate)]
    texts = [[], []]
    for folder in folders:
        x = np.load(os.path.join(args.data, folder, "x.npy"))
        for side, s in enumerate(sessions):
            y = s.run(None, {"x": x})[0]
            for seq in y.reshape(-1, y.shape[-2], y.shape[-1]):
                texts[side].append(decode(seq, alphabet))
    n = len(texts[0])
    assert n == len(labels), (n, len(labels))
    chars = sum(len(l) for l in labels)
    result = {
        "sequences": n,
        "characters": chars,
        "line_agreement": 100.0 * sum(r == c for r, c in zip(*texts)) / n,
    }
    for side, name in enumerate(("reference", "candidate")):
        result[f"line_accuracy_{name}"] = 100.0 * sum(
            t == l for t, l in zip(texts[side], labels)) / n
        result[f"cer_{name}"] = 100.0 * sum(
            levenshtein(t, l) for t, l in zip(texts[side], labels)) / chars
    json.dump(result, sys.stdout)
    print()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("--samples", type=int, default=40)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--alphabet", required=True)
    s = sub.add_parser("score")
    for a in ("--reference", "--candidate", "--data", "--alphabet", "--labels"):
        s.add_argument(a, required=True)
    args = p.parse_args()
    make(args) if args.cmd == "make" else score(args)


if __name__ == "__main__":
    main()
