#!/usr/bin/env python3
"""Writes a llama GGUF from a Hugging Face checkpoint with the `gguf` package's writer.

usage: make_gguf_llama.py MODEL.safetensors OUT.gguf [--type F32|F16|Q8_0]

config.json next to the checkpoint gives the llama.* metadata; tensors get llama.cpp's
names (token_embd, blk.N.attn_q, ..., output_norm; no output.weight when the embeddings are
tied) and the q/k row permutation llama.cpp's convert_hf_to_gguf.py applies (rotate-half
order -> interleaved pairs per head). 2-D weights are stored as --type (quantized by
gguf.quants), norms and rows that are no whole number of blocks (stories260k's
ffn_down, 172 columns) as F32, as llama.cpp's quantizer falls back. A test input for scripts/make_decoder.py's GGUF reader.
"""
import argparse
import json
import os
import sys

import gguf
import numpy as np
from safetensors.numpy import load_file

NAMES = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def permute(w, n_head):
    rows, cols = w.shape
    return w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("output")
    ap.add_argument("--type", choices=["F32", "F16", "Q8_0"], default="F32")
    a = ap.parse_args()
    with open(os.path.join(os.path.dirname(os.path.abspath(a.checkpoint)), "config.json")) as f:
        cfg = json.load(f)
    w = load_file(a.checkpoint)
    qtype = getattr(gguf.GGMLQuantizationType, a.type)
    g = gguf.GGUFWriter(a.output, "llama")
    g.add_context_length(cfg["max_position_embeddings"])
    g.add_embedding_length(cfg["hidden_size"])
    g.add_block_count(cfg["num_hidden_layers"])
    g.add_feed_forward_length(cfg["intermediate_size"])
    g.add_head_count(cfg["num_attention_heads"])
    g.add_head_count_kv(cfg.get("num_key_value_heads", cfg["num_attention_heads"]))
    g.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    g.add_rope_freq_base(cfg.get("rope_theta", 10000.0))

    def add(name, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        block = gguf.GGML_QUANT_SIZES[qtype][0]
        if x.ndim == 2 and qtype != gguf.GGMLQuantizationType.F32 and x.shape[1] % block == 0:
            g.add_tensor(name, gguf.quants.quantize(x, qtype), raw_dtype=qtype)
        else:
            g.add_tensor(name, x)

    add("token_embd.weight", w["model.embed_tokens.weight"])
    add("output_norm.weight", w["model.norm.weight"])
    if "lm_head.weight" in w and not cfg.get("tie_word_embeddings", False):
        add("output.weight", w["lm_head.weight"])
    for i in range(cfg["num_hidden_layers"]):
        for hf, gg in NAMES.items():
            x = w[f"model.layers.{i}.{hf}.weight"]
            if gg == "attn_q":
                x = permute(x, cfg["num_attention_heads"])
            elif gg == "attn_k":
                x = permute(x, cfg.get("num_key_value_heads", cfg["num_attention_heads"]))
            add(f"blk.{i}.{gg}.weight", x)
    g.write_header_to_file()
    g.write_kv_data_to_file()
    g.write_tensors_to_file()
    g.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
