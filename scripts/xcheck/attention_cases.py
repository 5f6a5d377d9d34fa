"""The attention family's one-node cases for op_cases.py (group "attention"): ONNX Runtime's
com.microsoft GroupQueryAttention, RotaryEmbedding, SkipSimplifiedLayerNormalization, the
onnx-domain contrib SimplifiedLayerNormalization, and opset-23 RMSNormalization /
RotaryEmbedding. Random inputs (seeded), prefill and decode shapes, with and without a past
KV cache, GQA head ratios 1, 2 and 4."""
import numpy as np

from op_cases import Case

MS = "com.microsoft"


def rope_cache(max_pos, half, base=10000.0):
    inv = 1.0 / (base ** (np.arange(half, dtype=np.float64) / half))
    ang = np.arange(max_pos, dtype=np.float64)[:, None] * inv[None, :]
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def attention_cases(rng):
    cases = []
    f32 = np.float32

    def gqa(name, B, S, N, NKV, H, past=0, seqlens=None, total=None, rotary=False,
            interleaved=False, packed=False, outputs=("out", "present_key", "present_value"),
            rotary_half=None, bias=False, sink=False, **attrs):
        total = total if total is not None else (past + S)
        seqlens = seqlens if seqlens is not None else [total - 1] * B
        feeds, consts, order = {}, {}, []
        if packed:
            feeds["qkv"] = rng.standard_normal((B, S, (N + 2 * NKV) * H)).astype(f32)
            order += ["qkv", "", ""]
        else:
            feeds["q"] = rng.standard_normal((B, S, N * H)).astype(f32)
            feeds["k"] = rng.standard_normal((B, S, NKV * H)).astype(f32)
            feeds["v"] = rng.standard_normal((B, S, NKV * H)).astype(f32)
            order += ["q", "k", "v"]
        if past:
            feeds["past_key"] = rng.standard_normal((B, NKV, past, H)).astype(f32)
            feeds["past_value"] = rng.standard_normal((B, NKV, past, H)).astype(f32)
            order += ["past_key", "past_value"]
        else:
            order += ["", ""]
        feeds["seqlens_k"] = np.array(seqlens, np.int32)
        feeds["total_sequence_length"] = np.array(total, np.int32)
        order += ["seqlens_k", "total_sequence_length"]
        if rotary:
            cos, sin = rope_cache(max(total, past) + 4, rotary_half or H // 2)
            consts["cos_cache"], consts["sin_cache"] = cos, sin
            order += ["cos_cache", "sin_cache"]
            attrs.update(do_rotary=1, rotary_interleaved=int(interleaved))
        if bias or sink:
            while len(order) < 10:
                order.append("")
            if bias:
                feeds["attention_bias"] = rng.standard_normal((B, 1, S, total)).astype(f32)
            order.append("attention_bias" if bias else "")
            if sink:
                consts["head_sink"] = rng.standard_normal(N).astype(f32)
                order.append("head_sink")
        attrs.update(num_heads=N, kv_num_heads=NKV)
        cases.append(Case("gqa_" + name, "GroupQueryAttention", feeds, consts, list(outputs),
                          attrs=attrs, domain=MS, atol=2e-5, rtol=2e-4, input_order=order))

    # prefill, no past: head ratios 1, 2 and 4
    gqa("prefill_r1", 2, 5, 4, 4, 16)
    gqa("prefill_r2", 2, 5, 4, 2, 16)
    gqa("prefill_r4", 1, 7, 8, 2, 16, rotary=True)
    gqa("prefill_rotary_interleaved", 2, 6, 4, 2, 16, rotary=True, interleaved=True)
    gqa("prefill_packed", 2, 4, 4, 1, 16, packed=True, rotary=True)
    gqa("prefill_window_softcap", 1, 9, 2, 1, 16, local_window_size=3, softcap=2.0)
    gqa("prefill_scale", 1, 4, 2, 2, 32, scale=0.3, outputs=("out",))
    gqa("prefill_large", 1, 40, 8, 2, 32, rotary=True)
    # decode: one new token after a past of 6 (present = 7), ragged past in a longer buffer
    gqa("decode_r1", 2, 1, 4, 4, 16, past=6, rotary=True)
    gqa("decode_r2", 2, 1, 4, 2, 16, past=6)
    gqa("decode_r4", 2, 1, 8, 2, 16, past=6, rotary=True)
    gqa("decode_buffer_ragged", 2, 1, 4, 2, 16, past=10, seqlens=[4, 6], total=7, rotary=True)
    gqa("decode_packed", 1, 1, 4, 2, 16, past=5, packed=True, rotary=True)
    gqa("decode_window", 1, 1, 4, 1, 16, past=8, local_window_size=4)
    # a second prompt after a past context (batch 1)
    gqa("subsequent_prompt", 1, 3, 4, 2, 16, past=4, rotary=True)
    gqa("bias_sink", 2, 3, 4, 2, 16, bias=True, sink=True)
    gqa("smooth_softmax", 1, 4, 2, 1, 16, smooth_softmax=1)

    # RMS normalizations
    x = rng.standard_normal((2, 3, 8)).astype(f32)
    cases.append(Case("simplified_ln", "SimplifiedLayerNormalization", {"x": x},
                      {"scale": rng.standard_normal(8).astype(f32)}, ["y", "inv"],
                      attrs={"epsilon": 1e-5}, opset=17, atol=1e-5, rtol=1e-5))
    cases.append(Case("simplified_ln_axis1", "SimplifiedLayerNormalization", {"x": x},
                      {"scale": rng.standard_normal((3, 8)).astype(f32)}, ["y"],
                      attrs={"axis": 1, "epsilon": 1e-3}, opset=17, atol=1e-5, rtol=1e-5))
    cases.append(Case("rms_norm_23", "RMSNormalization", {"x": x},
                      {"scale": rng.standard_normal(8).astype(f32)}, ["y"], opset=23,
                      atol=1e-5, rtol=1e-5))
    for name, bias, outs in (("skip_sln", False, ["y"]),
                             ("skip_sln_bias_sum", True, ["y", "", "", "sum"]),
                             ("skip_sln_inv", True, ["y", "", "inv", "sum"])):
        consts = {"gamma": rng.standard_normal(8).astype(f32)}
        order = ["x", "skip", "gamma"]
        if bias:
            consts["bias"] = rng.standard_normal(8).astype(f32)
            order.append("bias")
        cases.append(Case(name, "SkipSimplifiedLayerNormalization",
                          {"x": x, "skip": rng.standard_normal((2, 3, 8)).astype(f32)}, consts,
                          outs, attrs={"epsilon": 1e-6}, domain=MS, atol=1e-5, rtol=1e-5,
                          input_order=order))

    # rotary embeddings
    cos, sin = rope_cache(12, 8)
    x3 = rng.standard_normal((2, 4, 3 * 16)).astype(f32)
    x4 = rng.standard_normal((2, 3, 4, 16)).astype(f32)
    pos = np.array([[0, 1, 2, 3], [5, 6, 7, 8]], np.int64)
    for name, x, p, attrs in (("rope_ms_3d", x3, pos, {}),
                              ("rope_ms_4d_interleaved", x4, pos, {"interleaved": 1}),
                              ("rope_ms_offset", x3, np.array([3], np.int64), {})):
        cases.append(Case(name, "RotaryEmbedding", {"x": x, "position_ids": p},
                          {"cos_cache": cos, "sin_cache": sin}, ["y"], attrs=attrs, domain=MS,
                          atol=1e-5, rtol=1e-5))
    cos4, sin4 = rope_cache(12, 4)
    cases.append(Case("rope_ms_partial", "RotaryEmbedding", {"x": x3, "position_ids": pos},
                      {"cos_cache": cos4, "sin_cache": sin4}, ["y"],
                      attrs={"num_heads": 3, "rotary_embedding_dim": 8}, domain=MS,
                      atol=1e-5, rtol=1e-5))
    cases.append(Case("rope_23_4d", "RotaryEmbedding", {"x": x4, "position_ids": pos},
                      {"cos_cache": cos, "sin_cache": sin}, ["y"], opset=23,
                      input_order=["x", "cos_cache", "sin_cache", "position_ids"],
                      atol=1e-5, rtol=1e-5))
    cases.append(Case("rope_23_3d_nopos", "RotaryEmbedding", {"x": x3},
                      {"cos_cache": cos[pos], "sin_cache": sin[pos]}, ["y"],
                      attrs={"num_heads": 3, "interleaved": 1}, opset=23, atol=1e-5, rtol=1e-5))
    return cases
