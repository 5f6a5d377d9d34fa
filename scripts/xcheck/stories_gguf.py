#!/usr/bin/env python3
"""Writes stories260k (../shared/models/stories260k/model.onnx) as a llama.cpp GGUF with the
`gguf` package's writer, and the same weights back into an ONNX copy, so llama.cpp and
edgepack's runtime run the same weights (scripts/xcheck/llamacpp_kl.py compares them).

usage: stories_gguf.py MODEL.onnx CONFIG.json OUT.gguf [--type f32|q8_0|q4_0|q4_1]
                       [--onnx-out SAME_WEIGHTS.onnx]
The ONNX graph keeps its weights in Meta's layout (the Q / K rows interleaved per head, as
llama.cpp's rope "norm" mode reads them; model.safetensors is Hugging Face's permuted
layout), so they go to GGUF as they are, [out, in] row-major (MatMul's *_T initializers
transposed). With a quantized --type every 2-D projection whose input width is a multiple
of 32 (wq, wk, wv, wo, w1, w3: 64 wide) is quantized by gguf.quants.quantize; w2 (172
wide) and the token embedding (tied to the output) stay F32. --onnx-out writes the model
with every quantized weight replaced by gguf.quants.dequantize of its blocks: the weights
llama.cpp computes with. The vocabulary is a stand-in (no tokenizer ships with the model;
token ids are fed directly): <unk>, <s>, </s>, 256 byte tokens, then t259 ... t511.
"""
import argparse
import json
import sys

import gguf
import numpy as np
import onnx
from onnx import numpy_helper

TYPES = {"f32": None, "q8_0": gguf.GGMLQuantizationType.Q8_0,
         "q4_0": gguf.GGMLQuantizationType.Q4_0, "q4_1": gguf.GGMLQuantizationType.Q4_1}


def gguf_name(onnx_name: str):
    """llama.cpp's tensor name for a model.onnx initializer, or None."""
    if onnx_name == "tok_embeddings.weight":
        return "token_embd.weight"
    if onnx_name == "norm.weight":
        return "output_norm.weight"
    parts = onnx_name.split(".")
    if parts[0] != "layers":
        return None
    blk = f"blk.{parts[1]}."
    rest = ".".join(parts[2:]).removesuffix("_T")
    table = {"attention_norm.weight": "attn_norm.weight", "ffn_norm.weight": "ffn_norm.weight",
             "attention.wq.weight": "attn_q.weight", "attention.wk.weight": "attn_k.weight",
             "attention.wv.weight": "attn_v.weight", "attention.wo.weight": "attn_output.weight",
             "feed_forward.w1.weight": "ffn_gate.weight", "feed_forward.w2.weight": "ffn_down.weight",
             "feed_forward.w3.weight": "ffn_up.weight"}
    return blk + table[rest] if rest in table else None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--type", default="f32", choices=sorted(TYPES))
    ap.add_argument("--onnx-out")
    a = ap.parse_args()
    cfg = json.load(open(a.config))
    model = onnx.load(a.model)
    qtype = TYPES[a.type]

    w = gguf.GGUFWriter(a.out, "llama")
    w.add_name("stories260k")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_dimension_count(cfg["hidden_size"] // cfg["num_attention_heads"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type({"f32": 0, "q8_0": 7, "q4_0": 2, "q4_1": 3}[a.type])
    vocab = cfg["vocab_size"]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"t{i}" for i in range(len(tokens), vocab)]
    types = [2, 3, 3] + [6] * 256 + [1] * (vocab - 259)  # unknown, control, byte, normal
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens[:vocab])
    w.add_token_scores([0.0] * vocab)
    w.add_token_types(types[:vocab])
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)

    quantized = 0
    for init in model.graph.initializer:
        name = gguf_name(init.name)
        if name is None:
            continue
        t = numpy_helper.to_array(init).astype(np.float32)
        if init.name.endswith("_T"):
            t = np.ascontiguousarray(t.T)  # [in, out] -> [out, in]
        if qtype is not None and t.ndim == 2 and name != "token_embd.weight" and t.shape[1] % 32 == 0:
            q = gguf.quants.quantize(t, qtype)
            w.add_tensor(name, q, raw_dtype=qtype)
            same = gguf.quants.dequantize(q, qtype).astype(np.float32).reshape(t.shape)
            if init.name.endswith("_T"):
                same = same.T
            init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(same), init.name))
            quantized += 1
        else:
            w.add_tensor(name, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if a.onnx_out:
        onnx.save(model, a.onnx_out)
    print(f"{a.out}: {a.type}, {quantized} quantized tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
