#!/usr/bin/env python3
"""Greedy CTC decoding of a text recognizer's outputs, against a reference model's and the
labels: the line agreement and character error rate (an oracle for the PP-OCR tables).

usage: ctc_lines.py ALPHABET LABELS.txt CANDIDATE_OUT [REFERENCE_OUT]
CANDIDATE_OUT and REFERENCE_OUT are `edgepack run --data DIR --out OUT` folders
(OUT/sample_K/NAME.npy, one [1, T, C] probability output per sample, samples in order).
Class 0 is the CTC blank, class k >= 1 is line k of ALPHABET, and a class one past the last
line is a space (PaddleOCR's use_space_char). Greedy decoding: argmax per position, merge
repeats, drop blanks. Prints JSON: lines, line_accuracy and cer against the labels for each
model, and line_agreement (the share of lines both models decode identically).
"""
import json
import pathlib
import sys

import numpy as np


def decode(probs: np.ndarray, alphabet: list) -> str:
    out, prev = [], -1
    for k in probs.reshape(-1, probs.shape[-1]).argmax(-1):
        k = int(k)
        if k != prev and k != 0:
            out.append(alphabet[k - 1] if k <= len(alphabet) else " ")
        prev = k
    return "".join(out)


def edits(a: str, b: str) -> int:
    d = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, cb in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (ca != cb))
    return d[-1]


def decoded(out_dir: str, alphabet: list) -> list:
    samples = sorted(p for p in pathlib.Path(out_dir).iterdir() if p.is_dir())
    texts = []
    for s in samples:
        files = sorted(s.glob("*.npy"))
        if len(files) != 1:
            raise SystemExit(f"{s}: expected one output .npy, found {len(files)}")
        texts.append(decode(np.load(files[0]), alphabet))
    return texts


def scores(texts: list, labels: list) -> dict:
    chars = sum(len(l) for l in labels)
    return {"line_accuracy": sum(t == l for t, l in zip(texts, labels)) / len(labels),
            "cer": sum(edits(t, l) for t, l in zip(texts, labels)) / chars}


def main() -> int:
    if len(sys.argv) not in (4, 5):
        raise SystemExit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        alphabet = [line.rstrip("\n") for line in f]
    with open(sys.argv[2], encoding="utf-8") as f:
        labels = [line.rstrip("\n") for line in f]
    cand = decoded(sys.argv[3], alphabet)
    if len(cand) != len(labels):
        raise SystemExit(f"{len(cand)} samples, {len(labels)} labels")
    result = {"lines": len(labels), "candidate": scores(cand, labels)}
    if len(sys.argv) == 5:
        ref = decoded(sys.argv[4], alphabet)
        result["reference"] = scores(ref, labels)
        result["line_agreement"] = sum(a == b for a, b in zip(cand, ref)) / len(labels)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
