#!/usr/bin/env python3
"""Builds a llama-family decoder ONNX graph with a KV cache from a checkpoint.

usage: make_decoder.py CHECKPOINT -o MODEL.onnx [--attention gqa|plain] [--weights int4|fp32|gguf]
                       [--block-size 32] [--accuracy-level N] [--context N]

CHECKPOINT is a Hugging Face `model.safetensors` with its `config.json` next to it
(LlamaForCausalLM naming, q/k rows in rotate-half order), or a `.gguf` file (llama.cpp
names and metadata; its q/k rows are permuted back from llama.cpp's interleaved order).

The graph is the one ONNX Runtime GenAI's model builder (onnxruntime-genai
src/python/py/models/builder.py, CPU, fp32 I/O) writes for a llama decoder:

  inputs   input_ids [batch_size, sequence_length] int64
           attention_mask [batch_size, total_sequence_length] int64
           past_key_values.N.key / .value [batch_size, kv_heads, past_sequence_length, head_size]
  outputs  logits [batch_size, sequence_length, vocab]
           present.N.key / .value [batch_size, kv_heads, total_sequence_length, head_size]

  --attention gqa (the builder's graph): attention_mask -> ReduceSum - 1 -> int32 seqlens_k,
  Shape[1] -> int32 total_seq_len; Gather embedding; SimplifiedLayerNormalization first,
  then com.microsoft SkipSimplifiedLayerNormalization (output 3 = the residual sum carried
  to the next norm); packed q|k|v MatMul -> com.microsoft GroupQueryAttention with
  do_rotary=1 (cos_cache / sin_cache [context, head_size/2], rotate-half) -> o_proj;
  with --rotary separate (the default when head_size % 16 != 0, e.g. stories260k's 8:
  ONNX Runtime's CPU kernel refuses do_rotary there) q/k/v MatMuls, q and k through
  com.microsoft RotaryEmbedding with a `position_ids [batch_size, sequence_length]` input,
  GroupQueryAttention with do_rotary=0 (the builder's layout for rotary outside attention);
  SwiGLU MLP as Sigmoid * x * up; final SkipSimplifiedLayerNormalization; lm_head MatMul.
  --weights int4 (default, the builder's `-p int4`): every MatMul becomes com.microsoft
  MatMulNBits by ONNX Runtime's MatMulNBitsQuantizer (symmetric, block_size 32), as the
  builder's to_int4 does; accuracy_level is left out (0: fp32 activations) unless given.
  --weights gguf (a .gguf checkpoint): every projection stored as Q4_0 or Q8_0 keeps its
  codes and scales as MatMulNBits (bits 4 / 8, block_size 32, no zero points: ggml's
  implied 8 / 128): Q4_0's nibbles reordered (ggml: byte j holds elements j and j + 16 of a
  block; MatMulNBits: elements 2j and 2j + 1), the f16 scale widened to f32 exactly, Q8_0's
  int8 codes offset by 128. The weights are then exactly the file's, so llama.cpp and our
  runtime multiply by the same numbers (bench/bench_vs_llamacpp.py). Projections of other
  types stay float MatMuls of their dequantized values; the embedding Gather is float.

  --attention plain: the same inputs, outputs, weights and names, attention and the norms
  made of standard ONNX ops (MatMul / Softmax / Concat past / Expand for the KV-head groups,
  RoPE by Gather of the same caches + Split/Neg/Concat, RMSNorm by ReduceMean/Sqrt/Div):
  a graph any ONNX runtime runs.

The decode convention (both variants; scripts/xcheck/decoder_ort.py and `edgepack bench
--decode` follow it): prefill feeds P tokens with empty past (past_sequence_length 0) and
attention_mask ones [1, P]; each decode step feeds one token with past = the previous
present.* and attention_mask ones [1, P + step + 1]. Positions are the past length plus the
index in the step (no left padding): implicit, or fed as position_ids when the graph has it.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def load_safetensors(path):
    from safetensors.numpy import load_file

    config_path = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
    if not os.path.exists(config_path):
        sys.exit(f"make_decoder.py: {config_path}: config.json not found next to the checkpoint")
    with open(config_path) as f:
        config = json.load(f)
    weights = load_file(path)
    if "lm_head.weight" not in weights:
        weights["lm_head.weight"] = weights["model.embed_tokens.weight"]
    return config, {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}


def unpermute_gguf_rows(w, n_head):
    # llama.cpp's convert_hf_to_gguf.py permutes q/k rows of each head from rotate-half
    # order (first half, second half) to interleaved pairs:
    #   w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols)
    # so this is the inverse.
    rows, cols = w.shape
    return w.reshape(n_head, rows // n_head // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


# ggml types --weights gguf keeps as MatMulNBits codes (gguf.GGMLQuantizationType values).
NBITS_TYPES = (2, 8)  # Q4_0, Q8_0


def gguf_blocks_to_nbits(ggml_type, data, rows, cols):
    """Q4_0 / Q8_0 blocks of a [rows, cols] weight as MatMulNBits (codes [rows, cols/32,
    blob] uint8, scales [rows * cols/32] f32, bits), or None for other types."""
    import gguf

    if ggml_type not in NBITS_TYPES:
        return None
    blocks = np.asarray(data, dtype=np.uint8).reshape(rows, cols // 32, -1)
    scales = blocks[:, :, :2].copy().view(np.float16).astype(np.float32).reshape(-1)
    if ggml_type == gguf.GGMLQuantizationType.Q4_0:
        qs = blocks[:, :, 2:18]
        codes = np.concatenate([qs & 0x0F, qs >> 4], axis=2)  # elements 0..15, 16..31
        packed = (codes[:, :, 0::2] | (codes[:, :, 1::2] << 4)).astype(np.uint8)
        return packed, scales, 4
    if ggml_type == gguf.GGMLQuantizationType.Q8_0:
        q = blocks[:, :, 2:34].view(np.int8).astype(np.int16) + 128
        return q.astype(np.uint8), scales, 8
    return None


def load_gguf(path, keep_blocks=False):
    """(config, weights); with keep_blocks also {weight name: (ggml type, raw block rows)}
    for the projections (q / k rows permuted back like the floats)."""
    import gguf

    reader = gguf.GGUFReader(path)

    def field(name, default=None):
        f = reader.fields.get(name)
        if f is None:
            return default
        value = f.contents()
        return value

    arch = field("general.architecture", "llama")
    if arch != "llama":
        sys.exit(f"make_decoder.py: {path}: general.architecture '{arch}' is not llama")
    n_head = int(field("llama.attention.head_count"))
    n_kv = int(field("llama.attention.head_count_kv", n_head))
    tensors, raw = {}, {}
    for t in reader.tensors:
        shape = [int(d) for d in reversed(list(t.shape))]
        values = gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float32)
        tensors[t.name] = values
        if keep_blocks and len(shape) == 2 and t.tensor_type in NBITS_TYPES:
            raw[t.name] = (t.tensor_type, np.asarray(t.data, dtype=np.uint8).reshape(shape[0], -1))
    embed = tensors["token_embd.weight"]
    config = {
        "hidden_size": int(field("llama.embedding_length")),
        "intermediate_size": int(field("llama.feed_forward_length")),
        "num_hidden_layers": int(field("llama.block_count")),
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "vocab_size": int(embed.shape[0]),
        "max_position_embeddings": int(field("llama.context_length", 2048)),
        "rms_norm_eps": float(field("llama.attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": float(field("llama.rope.freq_base", 10000.0)),
        "hidden_act": "silu",
    }
    weights = {
        "model.embed_tokens.weight": embed,
        "model.norm.weight": tensors["output_norm.weight"],
        "lm_head.weight": tensors.get("output.weight", embed),
    }
    blocks = {}
    if keep_blocks:
        blocks["lm_head.weight"] = raw.get("output.weight", raw.get("token_embd.weight"))
        # Tied embeddings: lm_head is the embedding array itself, found under either name.
        blocks["model.embed_tokens.weight"] = raw.get("token_embd.weight")
    names = {
        "attn_norm": "input_layernorm",
        "ffn_norm": "post_attention_layernorm",
        "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }
    for i in range(config["num_hidden_layers"]):
        for g, h in names.items():
            w = tensors[f"blk.{i}.{g}.weight"]
            r = raw.get(f"blk.{i}.{g}.weight")
            if g in ("attn_q", "attn_k"):
                heads = n_head if g == "attn_q" else n_kv
                w = unpermute_gguf_rows(w, heads)
                r = (r[0], unpermute_gguf_rows(r[1], heads)) if r else None
            weights[f"model.layers.{i}.{h}.weight"] = w
            if keep_blocks:
                blocks[f"model.layers.{i}.{h}.weight"] = r
    if keep_blocks:
        return config, weights, blocks
    return config, weights


class Builder:
    """Node and initializer bookkeeping with the model builder's naming habits."""

    def __init__(self, config, attention, context, rotary):
        self.config = config
        self.attention = attention
        self.hidden = config["hidden_size"]
        self.n_head = config["num_attention_heads"]
        self.n_kv = config.get("num_key_value_heads", self.n_head)
        self.head_size = config.get("head_dim", self.hidden // self.n_head)
        self.n_layers = config["num_hidden_layers"]
        self.vocab = config["vocab_size"]
        self.eps = float(config.get("rms_norm_eps", 1e-5))
        self.context = context or config.get("max_position_embeddings", 2048)
        self.theta = float(config.get("rope_theta", 10000.0))
        self.nodes, self.initializers, self.constants = [], [], set()
        self.sources = {}  # MatMul B initializer -> the checkpoint weights it holds (rows out)
        self.source_of = {}  # id(weight array) -> its checkpoint name
        # ONNX Runtime's CPU GroupQueryAttention refuses do_rotary unless head_size % 16 == 0
        # ("head_size shall be a multiple of 16"): below that, rotary runs as its own op.
        if rotary == "auto":
            rotary = "fused" if self.head_size % 16 == 0 else "separate"
        self.rotary = rotary

    def constant(self, dtype, values):
        # "/model/constants/{dtype}/{shape}/{values}" as Constant nodes, like the builder.
        np_dtype = {TensorProto.INT64: np.int64, TensorProto.FLOAT: np.float32}[dtype]
        dtype_name = {TensorProto.INT64: "TensorProto.INT64", TensorProto.FLOAT: "TensorProto.FLOAT"}[dtype]
        if isinstance(values, (list, tuple)):
            dims, text, array = "1D", ", ".join(str(v) for v in values), np.array(values, dtype=np_dtype)
        else:
            dims, text, array = "0D", str(values), np.array(values, dtype=np_dtype)
        name = f"/model/constants/{dtype_name}/{dims}/{text}"
        if name not in self.constants:
            self.constants.add(name)
            value = numpy_helper.from_array(array, name=name.replace("constants", "numpy_helper"))
            self.nodes.append(
                helper.make_node("Constant", [], [name], name=name.replace("constants", "constant_nodes"), value=value)
            )
        return name

    def i64(self, values):
        return self.constant(TensorProto.INT64, values)

    def f32(self, value):
        return self.constant(TensorProto.FLOAT, value)

    def node(self, op, name, inputs, n_outputs=1, domain=None, outputs=None, **attrs):
        outputs = outputs or [f"{name}/output_{i}" for i in range(n_outputs)]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, domain=domain, **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def weight(self, name, array):
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def matmul(self, basename, root, w_rows_out, output=None, sources=None):
        # nn.Linear weight [out, in] -> MatMul B [in, out]
        weight = self.weight(basename[1:].replace("/", ".") + ".weight", w_rows_out.T)
        self.sources[weight] = sources or [self.source_of.get(id(w_rows_out))]
        return self.node("MatMul", basename, [root, weight], outputs=[output] if output else None)

    # --- the norms -------------------------------------------------------------------
    def simplified_norm(self, name, root, weight):
        if self.attention == "gqa":
            return self.node(
                "SimplifiedLayerNormalization", name, [root, weight], axis=-1, epsilon=self.eps, stash_type=1
            )
        sq = self.node("Mul", f"{name}/Mul_sq", [root, root])
        mean = self.node("ReduceMean", f"{name}/ReduceMean", [sq], axes=[-1], keepdims=1)
        var = self.node("Add", f"{name}/Add_eps", [mean, self.f32(self.eps)])
        std = self.node("Sqrt", f"{name}/Sqrt", [var])
        normed = self.node("Div", f"{name}/Div", [root, std])
        return self.node("Mul", f"{name}/Mul_weight", [normed, weight])

    def skip_norm(self, name, root, skip, weight, want_sum):
        """Returns (normed, root + skip)."""
        if self.attention == "gqa":
            outputs = [f"{name}/output_0"] + (["", "", f"{name}/output_3"] if want_sum else [])
            self.nodes.append(
                helper.make_node(
                    "SkipSimplifiedLayerNormalization",
                    [root, skip, weight],
                    outputs,
                    name=name,
                    domain="com.microsoft",
                    epsilon=self.eps,
                )
            )
            return outputs[0], (outputs[3] if want_sum else None)
        total = self.node("Add", f"{name}/Add_skip", [root, skip])
        return self.simplified_norm(name, total, weight), total

    # --- rotary caches ----------------------------------------------------------------
    def rotary_caches(self):
        # As make_rotary_embedding_caches_from_scratch (float32 arithmetic), then [:, :H/2].
        dim = self.head_size
        inv_freq = (1.0 / (np.float32(self.theta) ** (np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / dim))).astype(
            np.float32
        )
        t = np.arange(self.context, dtype=np.int64).astype(np.float32)
        freqs = np.outer(t, inv_freq).astype(np.float32)
        self.weight("cos_cache", np.cos(freqs))
        self.weight("sin_cache", np.sin(freqs))
        return "cos_cache", "sin_cache"

    # --- graph pieces -----------------------------------------------------------------
    def mask_inputs_gqa(self):
        base = "/model/attn_mask_reformat/attn_mask_subgraph"
        s = self.node("ReduceSum", f"{base}/ReduceSum", ["attention_mask", self.i64([1])])
        s = self.node("Sub", f"{base}/Sub", [s, self.i64([1])])
        seqlens_k = self.node("Cast", f"{base}/Sub/Cast", [s], to=TensorProto.INT32)
        shape = self.node("Shape", f"{base}/Shape", ["attention_mask"])
        total = self.node("Gather", f"{base}/Gather", [shape, self.i64(1)], axis=0)
        total_seq_len = self.node("Cast", f"{base}/Gather/Cast", [total], to=TensorProto.INT32)
        return seqlens_k, total_seq_len

    def mask_inputs_plain(self):
        """Additive mask [B, 1, S, T] (0 or float min) and RoPE cos/sin [S, H] of this step."""
        base = "/model/attn_mask_reformat"
        past_shape = self.node("Shape", f"{base}/past_key/Shape", ["past_key_values.0.key"])
        past_len = self.node("Gather", f"{base}/past_key/Gather", [past_shape, self.i64(2)], axis=0)
        ids_shape = self.node("Shape", f"{base}/input_ids/Shape", ["input_ids"])
        seq_len = self.node("Gather", f"{base}/input_ids/Gather", [ids_shape, self.i64(1)], axis=0)
        end = self.node("Add", f"{base}/input_ids/Add", [past_len, seq_len])
        positions = self.node("Range", f"{base}/positions/Range", [past_len, end, self.i64(1)])  # [S]
        mask_shape = self.node("Shape", f"{base}/attn_mask/Shape", ["attention_mask"])
        total = self.node("Gather", f"{base}/attn_mask/Gather", [mask_shape, self.i64(1)], axis=0)
        keys = self.node("Range", f"{base}/keys/Range", [self.i64(0), total, self.i64(1)])  # [T]
        query_col = self.node("Unsqueeze", f"{base}/positions/Unsqueeze", [positions, self.i64([1])])  # [S, 1]
        causal = self.node("LessOrEqual", f"{base}/causal/LessOrEqual", [keys, query_col])  # [S, T]
        present = self.node("Cast", f"{base}/attn_mask/Cast", ["attention_mask"], to=TensorProto.BOOL)
        present = self.node("Unsqueeze", f"{base}/attn_mask/Unsqueeze", [present, self.i64([1, 2])])  # [B,1,1,T]
        allowed = self.node("And", f"{base}/And", [causal, present])  # [B, 1, S, T]
        mask = self.node(
            "Where", f"{base}/Where", [allowed, self.f32(0.0), self.f32(float(np.finfo(np.float32).min))]
        )
        cos_cache, sin_cache = self.rotary_caches()
        cos = self.node("Gather", "/model/rotemb/cos/Gather", [cos_cache, positions], axis=0)  # [S, H/2]
        sin = self.node("Gather", "/model/rotemb/sin/Gather", [sin_cache, positions], axis=0)
        cos = self.node("Concat", "/model/rotemb/cos/Concat", [cos, cos], axis=-1)  # [S, H]
        sin = self.node("Concat", "/model/rotemb/sin/Concat", [sin, sin], axis=-1)
        return mask, cos, sin

    def heads(self, name, x, n):
        """[B, S, n*H] -> [B, n, S, H]"""
        r = self.node("Reshape", f"{name}/Reshape", [x, self.i64([0, 0, n, self.head_size])])
        return self.node("Transpose", f"{name}/Transpose", [r], perm=[0, 2, 1, 3])

    def rotate(self, name, x, cos, sin):
        """x * cos + rotate_half(x) * sin, rotate_half(x) = concat(-x2, x1) over the last axis."""
        x1, x2 = self.node("Split", f"{name}/Split", [x, self.i64([self.head_size // 2] * 2)], n_outputs=2, axis=-1)
        neg = self.node("Neg", f"{name}/Neg", [x2])
        rotated = self.node("Concat", f"{name}/Concat", [neg, x1], axis=-1)
        a = self.node("Mul", f"{name}/Mul_cos", [x, cos])
        b = self.node("Mul", f"{name}/Mul_sin", [rotated, sin])
        return self.node("Add", f"{name}/Add", [a, b])

    def repeat_kv(self, name, x):
        """[B, kv, T, H] -> [B, heads, T, H], query head h reading kv head h // (heads / kv)."""
        group = self.n_head // self.n_kv
        if group == 1:
            return x
        u = self.node("Unsqueeze", f"{name}/Unsqueeze", [x, self.i64([2])])
        e = self.node("Expand", f"{name}/Expand", [u, self.i64([1, 1, group, 1, 1])])
        return self.node("Reshape", f"{name}/Reshape", [e, self.i64([0, self.n_head, -1, self.head_size])])

    def attention_gqa(self, i, root, w, masks):
        seqlens_k, total_seq_len = masks
        base = f"/model/layers.{i}/attn"
        weights = [w[f"model.layers.{i}.self_attn.{p}_proj.weight"] for p in ("q", "k", "v")]
        if self.rotary == "fused":
            qkv = self.matmul(f"{base}/qkv_proj/MatMul", root, np.concatenate(weights, axis=0),
                              sources=[f"model.layers.{i}.self_attn.{p}_proj.weight" for p in "qkv"])
            q, k, v, caches = qkv, "", "", ["cos_cache", "sin_cache"]
        else:
            # The builder's layout when rotary is not inside attention: q/k/v MatMuls, each of
            # q and k through com.microsoft RotaryEmbedding with the position_ids input.
            q, k, v = (self.matmul(f"{base}/{p}_proj/MatMul", root, wp) for p, wp in zip("qkv", weights))
            q = self.node("RotaryEmbedding", f"{base}/q_rotary/RotaryEmbedding",
                          [q, "position_ids", "cos_cache", "sin_cache"], domain="com.microsoft", interleaved=0)
            k = self.node("RotaryEmbedding", f"{base}/k_rotary/RotaryEmbedding",
                          [k, "position_ids", "cos_cache", "sin_cache"], domain="com.microsoft", interleaved=0)
            caches = ["", ""]
        name = f"{base}/GroupQueryAttention"
        out = f"{name}/output_0"
        self.nodes.append(
            helper.make_node(
                "GroupQueryAttention",
                [q, k, v, f"past_key_values.{i}.key", f"past_key_values.{i}.value", seqlens_k, total_seq_len]
                + caches,
                [out, f"present.{i}.key", f"present.{i}.value"],
                name=name,
                domain="com.microsoft",
                num_heads=self.n_head,
                kv_num_heads=self.n_kv,
                scale=float(1 / np.sqrt(self.head_size)),
                do_rotary=int(self.rotary == "fused"),
                rotary_interleaved=0,
            )
        )
        return self.matmul(f"{base}/o_proj/MatMul", out, w[f"model.layers.{i}.self_attn.o_proj.weight"])

    def attention_plain(self, i, root, w, masks):
        mask, cos, sin = masks
        base = f"/model/layers.{i}/attn"
        q = self.matmul(f"{base}/q_proj/MatMul", root, w[f"model.layers.{i}.self_attn.q_proj.weight"])
        k = self.matmul(f"{base}/k_proj/MatMul", root, w[f"model.layers.{i}.self_attn.k_proj.weight"])
        v = self.matmul(f"{base}/v_proj/MatMul", root, w[f"model.layers.{i}.self_attn.v_proj.weight"])
        q = self.rotate(f"{base}/q_rotary", self.heads(f"{base}/q_heads", q, self.n_head), cos, sin)
        k = self.rotate(f"{base}/k_rotary", self.heads(f"{base}/k_heads", k, self.n_kv), cos, sin)
        v = self.heads(f"{base}/v_heads", v, self.n_kv)
        self.node("Concat", f"{base}/k_past/Concat", [f"past_key_values.{i}.key", k], outputs=[f"present.{i}.key"], axis=2)
        self.node("Concat", f"{base}/v_past/Concat", [f"past_key_values.{i}.value", v], outputs=[f"present.{i}.value"], axis=2)
        k_all = self.repeat_kv(f"{base}/k_proj/repeat_kv", f"present.{i}.key")
        v_all = self.repeat_kv(f"{base}/v_proj/repeat_kv", f"present.{i}.value")
        kt = self.node("Transpose", f"{base}/k_all/Transpose", [k_all], perm=[0, 1, 3, 2])
        scores = self.node("MatMul", f"{base}/qk/MatMul", [q, kt])
        scores = self.node("Mul", f"{base}/qk/Mul", [scores, self.f32(float(1 / np.sqrt(self.head_size)))])
        scores = self.node("Add", f"{base}/qk/Add_mask", [scores, mask])
        probs = self.node("Softmax", f"{base}/Softmax", [scores], axis=-1)
        ctx = self.node("MatMul", f"{base}/pv/MatMul", [probs, v_all])  # [B, N, S, H]
        ctx = self.node("Transpose", f"{base}/ctx/Transpose", [ctx], perm=[0, 2, 1, 3])
        ctx = self.node("Reshape", f"{base}/ctx/Reshape", [ctx, self.i64([0, 0, self.n_head * self.head_size])])
        return self.matmul(f"{base}/o_proj/MatMul", ctx, w[f"model.layers.{i}.self_attn.o_proj.weight"])

    def mlp(self, i, root, w):
        base = f"/model/layers.{i}/mlp"
        gate = self.matmul(f"{base}/gate_proj/MatMul", root, w[f"model.layers.{i}.mlp.gate_proj.weight"])
        up = self.matmul(f"{base}/up_proj/MatMul", root, w[f"model.layers.{i}.mlp.up_proj.weight"])
        sig = self.node("Sigmoid", f"{base}/act_fn/Sigmoid", [gate])
        act = self.node("Mul", f"{base}/act_fn/Mul", [gate, sig])
        prod = self.node("Mul", f"{base}/Mul", [act, up])
        return self.matmul(f"{base}/down_proj/MatMul", prod, w[f"model.layers.{i}.mlp.down_proj.weight"])

    def build(self, w):
        self.source_of = {id(v): k for k, v in reversed(list(w.items()))}
        masks = self.mask_inputs_gqa() if self.attention == "gqa" else self.mask_inputs_plain()
        if self.attention == "gqa":
            self.rotary_caches()
        embed = self.weight("model.embed_tokens.weight", w["model.embed_tokens.weight"])
        x = self.node("Gather", "/model/embed_tokens/Gather", [embed, "input_ids"])
        root, skip = x, None
        for i in range(self.n_layers):
            norm_w = self.weight(f"model.layers.{i}.input_layernorm.weight", w[f"model.layers.{i}.input_layernorm.weight"])
            if skip is None:
                normed = self.simplified_norm(f"/model/layers.{i}/input_layernorm/LayerNorm", root, norm_w)
            else:
                normed, root = self.skip_norm(f"/model/layers.{i}/input_layernorm/SkipLayerNorm", root, skip, norm_w, True)
            attn = (self.attention_gqa if self.attention == "gqa" else self.attention_plain)(i, normed, w, masks)
            post_w = self.weight(
                f"model.layers.{i}.post_attention_layernorm.weight", w[f"model.layers.{i}.post_attention_layernorm.weight"]
            )
            normed, root = self.skip_norm(f"/model/layers.{i}/post_attention_layernorm/SkipLayerNorm", root, attn, post_w, True)
            skip = self.mlp(i, normed, w)
        final_w = self.weight(f"model.layers.{self.n_layers}.final_norm_layernorm.weight", w["model.norm.weight"])
        normed, _ = self.skip_norm(f"/model/layers.{self.n_layers}/final_norm_layernorm/SkipLayerNorm", root, skip, final_w, False)
        self.matmul("/lm_head/MatMul", normed, w["lm_head.weight"], output="logits")

    def model(self):
        f = TensorProto.FLOAT
        inputs = [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"]),
        ]
        if self.attention == "gqa" and self.rotary == "separate":
            inputs.append(helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch_size", "sequence_length"]))
        outputs = [helper.make_tensor_value_info("logits", f, ["batch_size", "sequence_length", self.vocab])]
        kv_in = ["batch_size", self.n_kv, "past_sequence_length", self.head_size]
        kv_out = ["batch_size", self.n_kv, "total_sequence_length", self.head_size]
        for i in range(self.n_layers):
            for kind in ("key", "value"):
                inputs.append(helper.make_tensor_value_info(f"past_key_values.{i}.{kind}", f, kv_in))
                outputs.append(helper.make_tensor_value_info(f"present.{i}.{kind}", f, kv_out))
        graph = helper.make_graph(self.nodes, "main_graph", inputs, outputs, self.initializers)
        opsets = [helper.make_operatorsetid("", 14)]
        if self.attention == "gqa":
            opsets.append(helper.make_operatorsetid("com.microsoft", 1))
        return helper.make_model(
            graph, opset_imports=opsets, ir_version=7, producer_name="onnxruntime-genai", producer_version="0.0.0"
        )


def replace_graph(model, nodes, inits):
    """The model with these nodes and initializers, and the com.microsoft opset."""
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits.values())
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_operatorsetid("com.microsoft", 1))
    return model


def to_int4(model, block_size, accuracy_level):
    """Every MatMul with a constant B becomes com.microsoft MatMulNBits (bits 4, symmetric),
    with the bytes, names and shapes ONNX Runtime's MatMulNBitsQuantizer writes (the builder's
    to_int4): the same MLAS quantizer, B_Q4 [N, k_blocks, block_size/2] uint8 and B_scales
    [N * k_blocks] float, node name + "_Q4"."""
    from onnxruntime.capi._pybind_state import quantize_matmul_4bits

    inits = {t.name: t for t in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        if node.op_type != "MatMul" or node.input[1] not in inits:
            nodes.append(node)
            continue
        b = inits.pop(node.input[1])
        w = numpy_helper.to_array(b).astype(np.float32)
        rows, cols = w.shape
        k_blocks = (rows + block_size - 1) // block_size
        padded = np.pad(w, ((0, k_blocks * block_size - rows), (0, 0))) if k_blocks * block_size != rows else w
        packed = np.zeros((cols, k_blocks, block_size // 2), dtype=np.uint8)
        zero_point = np.zeros((cols, (k_blocks + 1) // 2), dtype=np.uint8)
        scales = np.zeros((cols, k_blocks), dtype=np.float32)
        quantize_matmul_4bits(packed, np.ascontiguousarray(padded), scales, zero_point, block_size, cols, rows, True)
        inits[b.name + "_Q4"] = numpy_helper.from_array(packed, b.name + "_Q4")
        inits[b.name + "_scales"] = numpy_helper.from_array(scales.reshape(-1), b.name + "_scales")
        attrs = {"K": rows, "N": cols, "bits": 4, "block_size": block_size}
        if accuracy_level:
            attrs["accuracy_level"] = accuracy_level
        nodes.append(
            helper.make_node(
                "MatMulNBits", [node.input[0], b.name + "_Q4", b.name + "_scales"], list(node.output),
                name=node.name + "_Q4", domain="com.microsoft", **attrs,
            )
        )
    return replace_graph(model, nodes, inits)


def to_nbits_from_gguf(model, sources, blocks):
    """Every MatMul whose B holds Q4_0 / Q8_0 checkpoint weights (all of one type) becomes
    MatMulNBits with the file's codes and scales (--weights gguf); the rest stay MatMul."""
    inits = {t.name: t for t in model.graph.initializer}
    nodes, kept = [], {"float": 0, "nbits": 0}
    for node in model.graph.node:
        names = sources.get(node.input[1]) if node.op_type == "MatMul" else None
        parts = [blocks.get(n) for n in names] if names and None not in names else None
        if not parts or None in parts or len({p[0] for p in parts}) != 1:
            if node.op_type == "MatMul" and node.input[1] in inits:
                kept["float"] += 1
            nodes.append(node)
            continue
        b = inits[node.input[1]]
        cols, rows = b.dims[1], b.dims[0]  # B [K, N]: N output rows of K
        converted = gguf_blocks_to_nbits(parts[0][0], np.concatenate([p[1] for p in parts], axis=0), cols, rows)
        if converted is None:
            kept["float"] += 1
            nodes.append(node)
            continue
        packed, scales, bits = converted
        inits.pop(node.input[1])
        inits[b.name + "_Q"] = numpy_helper.from_array(packed, b.name + "_Q")
        inits[b.name + "_scales"] = numpy_helper.from_array(scales, b.name + "_scales")
        nodes.append(
            helper.make_node(
                "MatMulNBits", [node.input[0], b.name + "_Q", b.name + "_scales"], list(node.output),
                name=node.name + "_Q", domain="com.microsoft", K=rows, N=cols, bits=bits, block_size=32,
            )
        )
        kept["nbits"] += 1
    return replace_graph(model, nodes, inits), kept


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="model.safetensors (config.json next to it) or model.gguf")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--attention", choices=["gqa", "plain"], default="gqa")
    ap.add_argument("--weights", choices=["int4", "fp32", "gguf"], default="int4",
                    help="gguf: a .gguf's Q4_0 / Q8_0 projections keep their codes (MatMulNBits)")
    ap.add_argument("--block-size", type=int, default=32)
    ap.add_argument("--accuracy-level", type=int, default=None)
    ap.add_argument("--rotary", choices=["auto", "fused", "separate"], default="auto",
                    help="gqa: RoPE inside GroupQueryAttention (do_rotary) or as RotaryEmbedding nodes "
                    "(auto: fused when head_size %% 16 == 0, what ONNX Runtime's CPU kernel needs)")
    ap.add_argument("--context", type=int, default=None, help="rotary cache length (default max_position_embeddings)")
    a = ap.parse_args()
    blocks = None
    if a.weights == "gguf" and not a.checkpoint.endswith(".gguf"):
        sys.exit("make_decoder.py: --weights gguf needs a .gguf checkpoint")
    if a.checkpoint.endswith(".gguf"):
        loaded = load_gguf(a.checkpoint, keep_blocks=a.weights == "gguf")
        config, weights = loaded[0], loaded[1]
        blocks = loaded[2] if a.weights == "gguf" else None
    else:
        config, weights = load_safetensors(a.checkpoint)
    b = Builder(config, a.attention, a.context, a.rotary)
    b.build(weights)
    model = b.model()
    if a.weights == "int4":
        model = to_int4(model, a.block_size, a.accuracy_level)
    elif a.weights == "gguf":
        model, kept = to_nbits_from_gguf(model, b.sources, blocks)
        print(f"{a.output}: {kept['nbits']} projections keep the GGUF's codes, {kept['float']} stay float")
    if a.attention == "plain":
        onnx.checker.check_model(model)  # the contrib ops of the gqa graph have no onnx schema
    onnx.save(model, a.output)
    counts = {}
    for n in model.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    rotary = f" (rotary {b.rotary})" if a.attention == "gqa" else ""
    print(f"{a.output}: {a.attention} attention{rotary}, {a.weights} weights, {len(model.graph.node)} nodes: "
          + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()) if k != "Constant"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
