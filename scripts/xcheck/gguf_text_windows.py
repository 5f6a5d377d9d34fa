#!/usr/bin/env python3
"""Real token windows for a GGUF language model: English text tokenized with the model's own
tokenizer (transformers reads it from the GGUF's tokenizer.* metadata), cut into windows.

usage: gguf_text_windows.py MODEL.gguf OUT_DIR --count N --length T [--skip K]
                            [--text FILE...] [--kv-cache]
The text is the license texts every Debian system has (/usr/share/common-licenses/*, in
sorted order) unless --text is given; the token stream is cut into consecutive windows of T
tokens, the first K windows skipped (so calibration and evaluation sets do not overlap).
OUT_DIR/window_NNNN.npz holds input_ids [1, T] int64 per window (`edgepack validate --data`,
one sample per file) and, with --kv-cache, the inputs of a KV-cache decoder
(scripts/make_decoder.py) run from an empty context: attention_mask ones [1, T] and every
past_key_values.N.key / .value [1, kv_heads, 0, head_size]; OUT_DIR/tokens.npy all
windows as [N, T] (scripts/xcheck/llamacpp_kl.py, perplexity_oracle.py).
"""
import argparse
import glob
import os
import sys

import gguf
import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--length", type=int, required=True)
    ap.add_argument("--skip", type=int, default=0)
    ap.add_argument("--text", nargs="*")
    ap.add_argument("--kv-cache", action="store_true")
    a = ap.parse_args()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(a.model)),
                                        gguf_file=os.path.basename(a.model))
    files = a.text or sorted(glob.glob("/usr/share/common-licenses/*"))
    stream = []
    for f in files:
        if os.path.isfile(f):
            with open(f, encoding="utf-8", errors="replace") as fh:
                stream += tok(fh.read(), add_special_tokens=False)["input_ids"]
    need = (a.skip + a.count) * a.length
    if len(stream) < need:
        sys.exit(f"gguf_text_windows: {len(stream)} tokens, {need} needed")
    windows = np.array(stream[a.skip * a.length: need], dtype=np.int64).reshape(a.count, a.length)
    reader = gguf.GGUFReader(a.model)
    field = lambda k: int(reader.fields[k].contents())
    layers = field("llama.block_count")
    kv_heads = field("llama.attention.head_count_kv")
    head = field("llama.embedding_length") // field("llama.attention.head_count")
    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "tokens.npy"), windows)
    for i, w in enumerate(windows):
        feeds = {"input_ids": w[None, :]}
        if a.kv_cache:
            feeds["attention_mask"] = np.ones((1, a.length), dtype=np.int64)
            empty = np.zeros((1, kv_heads, 0, head), dtype=np.float32)
            for n in range(layers):
                feeds[f"past_key_values.{n}.key"] = empty
                feeds[f"past_key_values.{n}.value"] = empty
        np.savez(os.path.join(a.out, f"window_{i:04d}.npz"), **feeds)
    print(f"{a.count} windows of {a.length} tokens ({len(stream)} in the text), "
          f"{len(np.unique(windows))} distinct")
    return 0


if __name__ == "__main__":
    sys.exit(main())
