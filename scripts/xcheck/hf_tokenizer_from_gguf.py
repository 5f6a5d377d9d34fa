#!/usr/bin/env python3
"""A Hugging Face llama checkpoint folder made from a GGUF, to test the GGUF writer's tokenizer
conversion against the tokenizer.* keys llama.cpp's converter wrote into that GGUF.

usage: hf_tokenizer_from_gguf.py MODEL.gguf OUT_DIR [--hidden 32]
OUT_DIR gets tokenizer.json, tokenizer_config.json (and chat_template.jinja) from
transformers (AutoTokenizer.from_pretrained(gguf_file=...).save_pretrained: it rebuilds the
Hugging Face tokenizer from the GGUF's tokenizer.ggml.* keys), a config.json (model_type
llama, the GGUF's vocabulary size and special ids, one layer of width --hidden), and a
model.safetensors holding model.embed_tokens.weight (the first --hidden columns of the GGUF's
token_embd, dequantized by gguf.quants.dequantize) and model.norm.weight (ones): only the
tokenizer is under test, so the weights are a small real slice.
Exit 77 (the test skips) when transformers' GGUF reader cannot load: it imports torch, which
the default set-up does not install.
"""
import argparse
import json
import os
import sys

import gguf
import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--hidden", type=int, default=32)
    a = ap.parse_args()
    from safetensors.numpy import save_file
    from transformers import AutoTokenizer

    os.makedirs(a.out, exist_ok=True)
    try:
        tok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(a.model)),
                                            gguf_file=os.path.basename(a.model))
    except ModuleNotFoundError as e:  # transformers' GGUF reader imports torch
        print(f"hf_tokenizer_from_gguf: transformers cannot read a GGUF here ({e}); "
              "it needs torch, which the default set-up does not install", file=sys.stderr)
        return 77
    tok.save_pretrained(a.out)
    reader = gguf.GGUFReader(a.model)
    field = lambda k: reader.fields[k].contents()
    tensors = {t.name: t for t in reader.tensors}
    emb = tensors["token_embd.weight"]
    table = gguf.quants.dequantize(emb.data, emb.tensor_type).reshape(-1, int(emb.shape[0]))
    vocab = table.shape[0]
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
              "hidden_size": a.hidden, "intermediate_size": 2 * a.hidden,
              "num_hidden_layers": 1, "num_attention_heads": 1, "num_key_value_heads": 1,
              "vocab_size": vocab, "max_position_embeddings": int(field("llama.context_length")),
              "rms_norm_eps": float(field("llama.attention.layer_norm_rms_epsilon")),
              "rope_theta": float(field("llama.rope.freq_base")), "tie_word_embeddings": True,
              "bos_token_id": int(field("tokenizer.ggml.bos_token_id")),
              "eos_token_id": int(field("tokenizer.ggml.eos_token_id"))}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    save_file({"model.embed_tokens.weight": np.ascontiguousarray(table[:, :a.hidden], np.float32),
               "model.norm.weight": np.ones(a.hidden, np.float32)},
              os.path.join(a.out, "model.safetensors"))
    print(f"{a.out}: vocabulary {vocab}, {sorted(os.listdir(a.out))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
