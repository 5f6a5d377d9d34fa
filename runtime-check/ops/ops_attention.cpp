// The attention family: what ONNX Runtime GenAI's model builder and transformer optimizer
// write (com.microsoft GroupQueryAttention, MultiHeadAttention, RotaryEmbedding,
// SkipLayerNormalization, SkipSimplifiedLayerNormalization, FastGelu, BiasGelu, QuickGelu and
// the onnx-domain contrib SimplifiedLayerNormalization) and the opset-23 Attention,
// RMSNormalization and RotaryEmbedding (runtime-check/README.md lists what each supports).
//
//   RMS norm          y = x / sqrt(mean(x^2) + epsilon) * scale over the axes [axis, rank);
//                     the mean of squares accumulated in double, the rest in float.
//   SkipSimplified... s = input + skip (+ bias); y = RMS norm of s * gamma; outputs y, (mean:
//                     not produced), inv_std_var, s.
//   RotaryEmbedding   per head vector x of head_size, its first rotary_dim elements in pairs
//                     (x1, x2) = (x[i], x[i + rotary_dim / 2]), or (x[2i], x[2i + 1]) when
//                     interleaved, become (c x1 - s x2, s x1 + c x2) with c / s the
//                     cos / sin cache rows of the token's position.
//   GroupQueryAttention  Q [B, S, N * H], K / V [B, S, Nkv * H] (or packed into Q), past K / V
//                     [B, Nkv, P, H] (BNSH), seqlens_k [B] = total length - 1 per batch entry,
//                     total_sequence_length. First prompt (S == total_sequence_length): past
//                     length 0; else past_b = seqlens_k[b] + 1 - S. present = past[0, past_b) then
//                     the S new rows, length max(P, total_sequence_length), the rest zero;
//                     except in a run sharing the past / present buffer (the decode loop's
//                     opt-in, ONNX Runtime GenAI's past_present_share_buffer) where past has
//                     that length: present is past with the new rows written in place, the
//                     rest as past had it.
//                     Query s of head h attends keys [0, past_b + s] of KV head h / (N / Nkv)
//                     (causal; with local_window_size W the last W of them, as ONNX Runtime
//                     1.31 does): softmax(softcap(scale Q K^T) + attention_bias) V, scale
//                     1/sqrt(H) by default; rotary (do_rotary) at positions past_b + s (first
//                     prompt: s) on Q and the new K.
//
// GroupQueryAttention runs one (batch, head) pair per task, a fixed partition: Q K^T and P V
// go through gemm_f32 on one thread each, so the result is bit-identical for any thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "ir/checked.h"
#include "runtime-check/kernels/gemm.h"
#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"

namespace ep::rt {
namespace {

// ---------------------------------------------------------------------------------------
// RMS normalization

// `scale` expanded to the n normalized elements (numpy broadcast against dims [axis, rank)).
std::vector<float> expand_to_normalized(const OpContext& c, const Tensor& scale,
                                        std::span<const int64_t> norm_shape, int64_t n,
                                        const char* what) {
    std::vector<float> s = as_f32(c, scale).to_floats();
    if (static_cast<int64_t>(s.size()) == n && scale.shape.size() <= 1) return s;
    if (scale.shape.size() > norm_shape.size())
        c.fail(cat(what, " has rank ", scale.shape.size(), ", more than the ", norm_shape.size(),
                   " normalized dimensions"));
    std::vector<int64_t> out_shape(norm_shape.begin(), norm_shape.end());
    if (broadcast_shapes(c, out_shape, scale.shape) != out_shape)
        c.fail(cat(what, " does not broadcast to the normalized dimensions"));
    std::vector<int64_t> strides = broadcast_strides(scale.shape, out_shape);
    std::vector<float> full(static_cast<size_t>(n));
    std::vector<int64_t> idx(out_shape.size(), 0);
    for (int64_t k = 0; k < n; ++k) {
        int64_t at = 0;
        for (size_t d = 0; d < idx.size(); ++d) at += idx[d] * strides[d];
        full[static_cast<size_t>(k)] = s[static_cast<size_t>(at)];
        for (size_t d = idx.size(); d-- > 0;) {
            if (++idx[d] < out_shape[d]) break;
            idx[d] = 0;
        }
    }
    return full;
}

struct RmsRows {
    int64_t rows = 0, n = 0;
    std::vector<int64_t> stat_shape;  // X's shape with 1 from axis on
    std::vector<float> scale;         // [n]
};

RmsRows plan_rms(const OpContext& c, const Tensor& x, int64_t axis_attr, const Tensor& scale,
                 const char* scale_name) {
    if (!is_float(x.dtype)) c.fail(cat("expected a float input, found ", dtype_name(x.dtype)));
    auto rank = static_cast<int64_t>(x.shape.size());
    if (rank == 0) c.fail("expects an input of rank >= 1");
    int64_t axis = normalize_axis(c, axis_attr, rank);
    RmsRows r;
    r.rows = 1;
    r.n = 1;
    for (int64_t d = 0; d < rank; ++d) (d < axis ? r.rows : r.n) *= x.shape[static_cast<size_t>(d)];
    r.stat_shape = x.shape;
    for (int64_t d = axis; d < rank; ++d) r.stat_shape[static_cast<size_t>(d)] = 1;
    r.scale = expand_to_normalized(
        c, scale, std::span<const int64_t>(x.shape).subspan(static_cast<size_t>(axis)), r.n,
        scale_name);
    return r;
}

// y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * scale; inv_std[r] = that 1 / sqrt(...).
void rms_rows(const ExecOptions& options, const RmsRows& p, const float* x, float eps, float* y,
              float* inv_std) {
    const int64_t n = p.n;
    parallel_for(options, p.rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)),
                 [&](int64_t r0, int64_t r1) {
                     for (int64_t r = r0; r < r1; ++r) {
                         const float* xr = x + r * n;
                         double sq = 0;
                         for (int64_t k = 0; k < n; ++k) sq += static_cast<double>(xr[k]) * xr[k];
                         const auto inv = static_cast<float>(
                             1.0 / std::sqrt(sq / static_cast<double>(std::max<int64_t>(n, 1)) +
                                             static_cast<double>(eps)));
                         inv_std[r] = inv;
                         float* yr = y + r * n;
                         for (int64_t k = 0; k < n; ++k)
                             yr[k] = xr[k] * inv * p.scale[static_cast<size_t>(k)];
                     }
                 });
}

// RMSNormalization (opset 23) and SimplifiedLayerNormalization (ONNX Runtime's onnx-domain
// contrib op, with an optional inv_std_var output).
void rms_normalization(OpContext& c, bool simplified) {
    const Tensor& x = c.input(0);
    RmsRows p = plan_rms(c, x, c.node.attr_int("axis", -1), c.input(1), "scale");
    float eps = c.node.attr_float("epsilon", simplified ? 1e-5f : 1e-5f);
    Tensor xf = as_f32(c, x);
    Tensor y = make_uninitialized_tensor(DType::F32, x.shape);
    Tensor inv = make_uninitialized_tensor(DType::F32, p.stat_shape);
    rms_rows(c.options, p, xf.values<float>().data(), eps, y.mutable_values<float>().data(),
             inv.mutable_values<float>().data());
    c.outputs.push_back(from_f32(std::move(y), x.dtype));
    if (simplified && c.node.outputs.size() > 1) c.outputs.push_back(std::move(inv));
}

// ---------------------------------------------------------------------------------------
// Rotary embedding

// Rotates the first rotary_dim elements of one head vector in place.
void rotate_head(float* x, const float* cos_row, const float* sin_row, int64_t rotary_dim,
                 bool interleaved) {
    const int64_t half = rotary_dim / 2;
    for (int64_t i = 0; i < half; ++i) {
        const int64_t i1 = interleaved ? 2 * i : i, i2 = interleaved ? 2 * i + 1 : i + half;
        const float x1 = x[i1], x2 = x[i2], co = cos_row[i], si = sin_row[i];
        x[i1] = co * x1 - si * x2;
        x[i2] = si * x1 + co * x2;
    }
}

// The cos / sin caches as f32 [rows, half], checked against each other.
struct RotaryCache {
    Tensor cos, sin;
    int64_t rows = 0, half = 0;
};

RotaryCache read_rotary_cache(const OpContext& c, const Tensor& cos, const Tensor& sin) {
    if (cos.shape != sin.shape) c.fail("cos_cache and sin_cache must have the same shape");
    if (cos.shape.size() < 2) c.fail("cos_cache must have rank >= 2");
    RotaryCache r{as_f32(c, cos), as_f32(c, sin), 1, cos.shape.back()};
    for (size_t d = 0; d + 1 < cos.shape.size(); ++d) r.rows *= cos.shape[d];
    return r;
}

// x as [B, N, S, H] (4D) or [B, S, N * H] (3D): offset of element 0 of head vector (b, n, s).
struct HeadLayout {
    int64_t batch = 0, heads = 0, seq = 0, head_size = 0;
    bool bnsh = false;
    [[nodiscard]] int64_t offset(int64_t b, int64_t n, int64_t s) const {
        return bnsh ? ((b * heads + n) * seq + s) * head_size
                    : ((b * seq + s) * heads + n) * head_size;
    }
};

// RotaryEmbedding, com.microsoft (position_ids required: [1] = offset of token 0, or [B, S];
// caches [max_position, rotary_dim / 2]) and opset 23 (position_ids optional input 3; without
// it the caches are [B, S, rotary_dim / 2]).
void rotary_embedding(OpContext& c, bool contrib) {
    const Tensor& x = c.input(0);
    const Tensor* pos_t = contrib ? &c.input(1) : (c.has_input(3) ? c.inputs[3] : nullptr);
    RotaryCache cache = read_rotary_cache(c, c.input(contrib ? 2 : 1), c.input(contrib ? 3 : 2));
    if (contrib && c.node.attr_int("is_packed_batching", 0) != 0)
        c.fail("is_packed_batching = 1 is not supported");
    const bool interleaved = c.node.attr_int("interleaved", 0) != 0;
    const int64_t num_heads = c.node.attr_int("num_heads", 0);
    int64_t rotary_dim = c.node.attr_int("rotary_embedding_dim", 0);
    HeadLayout l;
    if (x.shape.size() == 4) {
        l = {x.shape[0], x.shape[1], x.shape[2], x.shape[3], true};
    } else if (x.shape.size() == 3) {
        const int64_t hidden = x.shape[2];
        const int64_t heads = num_heads > 0                       ? num_heads
                              : rotary_dim == 0 && cache.half > 0 ? hidden / (2 * cache.half)
                                                                  : 0;
        if (heads <= 0 || hidden % heads != 0)
            c.fail(cat("cannot split hidden size ", hidden, " into heads: set num_heads"));
        l = {x.shape[0], heads, x.shape[1], hidden / heads, false};
    } else {
        c.fail(cat("expects input of rank 3 or 4, found rank ", x.shape.size()));
    }
    if (rotary_dim == 0) rotary_dim = l.head_size;
    if (rotary_dim > l.head_size || rotary_dim % 2 != 0)
        c.fail(cat("rotary_embedding_dim ", rotary_dim, " must be even and <= head size ",
                   l.head_size));
    if (cache.half != rotary_dim / 2)
        c.fail(cat("cos_cache's last dimension is ", cache.half,
                   ", expected rotary_dim / 2 = ", rotary_dim / 2));
    // The cache row of token (b, s).
    std::vector<int64_t> rows(static_cast<size_t>(l.batch * l.seq));
    if (pos_t) {
        std::vector<int64_t> pos = read_ints(c, *pos_t);
        const bool one = contrib && pos.size() == 1;
        if (!one && static_cast<int64_t>(pos.size()) != l.batch * l.seq)
            c.fail(cat("position_ids has ", pos.size(),
                       " elements, expected batch x sequence = ", l.batch * l.seq));
        for (int64_t b = 0; b < l.batch; ++b)
            for (int64_t s = 0; s < l.seq; ++s) {
                const int64_t p = one ? pos[0] + s : pos[static_cast<size_t>(b * l.seq + s)];
                if (p < 0 || p >= cache.rows)
                    c.fail(cat("position ", p, " is outside the cos / sin caches' ", cache.rows,
                               " rows"));
                rows[static_cast<size_t>(b * l.seq + s)] = p;
            }
    } else {
        if (cache.rows != l.batch * l.seq)
            c.fail(cat("without position_ids, cos_cache must be [batch, sequence, ", rotary_dim / 2,
                       "]"));
        for (int64_t i = 0; i < l.batch * l.seq; ++i) rows[static_cast<size_t>(i)] = i;
    }
    Tensor y = make_uninitialized_tensor(DType::F32, x.shape);
    {
        Tensor xf = as_f32(c, x);
        std::memcpy(y.data.mutable_bytes().data(), xf.data.bytes().data(),
                    static_cast<size_t>(x.element_count()) * 4);
    }
    float* py = y.mutable_values<float>().data();
    const float* pc = cache.cos.values<float>().data();
    const float* ps = cache.sin.values<float>().data();
    // Tokens per chunk: about 64 Ki rotated elements, so a prompt of a small model stays on
    // one thread (a fork costs more than the work).
    const int64_t token_work = std::max<int64_t>(1, l.heads * rotary_dim);
    parallel_for(c.options, l.batch * l.seq, std::max<int64_t>(16, 65536 / token_work),
                 [&](int64_t t0, int64_t t1) {
                     for (int64_t t = t0; t < t1; ++t) {
                         const int64_t b = t / l.seq, s = t % l.seq,
                                       row = rows[static_cast<size_t>(t)];
                         for (int64_t n = 0; n < l.heads; ++n)
                             rotate_head(py + l.offset(b, n, s), pc + row * cache.half,
                                         ps + row * cache.half, rotary_dim, interleaved);
                     }
                 });
    c.outputs.push_back(from_f32(std::move(y), x.dtype));
}

// ---------------------------------------------------------------------------------------
// GroupQueryAttention

// past_key / past_value inputs key_input and key_input + 1, both or neither, each
// [B, heads, past, hs / hv].
struct PastKv {
    const Tensor* key = nullptr;
    const Tensor* value = nullptr;
    int64_t length = 0;
};

PastKv read_past_kv(const OpContext& c, size_t key_input, int64_t batch, int64_t heads, int64_t hs,
                    int64_t hv) {
    PastKv p;
    p.key = c.has_input(key_input) ? c.inputs[key_input] : nullptr;
    p.value = c.has_input(key_input + 1) ? c.inputs[key_input + 1] : nullptr;
    if (!p.key != !p.value) c.fail("past_key and past_value must be both given or both absent");
    if (!p.key) return p;
    p.length = p.key->shape.size() == 4 ? p.key->shape[2] : -1;
    if (p.key->shape != std::vector<int64_t>{batch, heads, p.length, hs} ||
        p.value->shape != std::vector<int64_t>{batch, heads, p.length, hv})
        c.fail(cat("past_key / past_value must be [", batch, ", ", heads, ", past, ", hs, " / ", hv,
                   "]"));
    return p;
}

// t ([B, seq, heads * h], or [B, heads, seq, h] when bnsh) as f32 into rows
// [seq0, seq0 + seq) of dst [B, heads, dst_seq, h], plus add[n * h + i] when given.
void copy_to_bnsh(const OpContext& c, const Tensor& t, bool bnsh, int64_t batch, int64_t heads,
                  int64_t seq, int64_t h, const float* add, float* dst, int64_t dst_seq,
                  int64_t seq0) {
    Tensor f = as_f32(c, t);
    const float* src = f.values<float>().data();
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t n = 0; n < heads; ++n)
            for (int64_t s = 0; s < seq; ++s) {
                const float* from = bnsh ? src + ((b * heads + n) * seq + s) * h
                                         : src + ((b * seq + s) * heads + n) * h;
                float* to = dst + ((b * heads + n) * dst_seq + seq0 + s) * h;
                for (int64_t i = 0; i < h; ++i) to[i] = from[i] + (add ? add[n * h + i] : 0.0f);
            }
}

struct Gqa {
    int64_t batch = 0, seq = 0, heads = 0, kv_heads = 0, head_size = 0;
    int64_t past_len = 0, present_len = 0;  // buffer lengths
    std::vector<int64_t> past;              // [B] valid past rows
    std::vector<int64_t> total;             // [B] past + new rows
    bool first_prompt = false;
};

// Softmax of row[start, end) in place (the rest of [0, width) set to 0), with a sink logit
// that adds exp(sink - max) to the denominator (smooth softmax: sink 0) when has_sink.
void softmax_span(float* row, int64_t width, int64_t start, int64_t end, bool has_sink,
                  float sink) {
    float mx = has_sink ? sink : -std::numeric_limits<float>::infinity();
    for (int64_t j = start; j < end; ++j) mx = std::max(mx, row[j]);
    double sum = has_sink ? std::exp(static_cast<double>(sink - mx)) : 0.0;
    for (int64_t j = start; j < end; ++j) {
        row[j] = std::exp(row[j] - mx);
        sum += row[j];
    }
    const auto inv = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < start; ++j) row[j] = 0.0f;
    for (int64_t j = start; j < end; ++j) row[j] *= inv;
    for (int64_t j = end; j < width; ++j) row[j] = 0.0f;
}

}  // namespace

void op_group_query_attention(OpContext& c) {
    const Tensor& query = c.input(0);
    for (size_t i = 12; i < c.input_count(); ++i)
        if (c.has_input(i))
            c.fail(cat("input ", i,
                       " (k_scale / v_scale / q_norm_weight / k_norm_weight) is not supported"));
    if (c.has_input(9)) c.fail("the position_ids input is not supported");
    if (c.node.attr_int("sliding_window_cache", 0) != 0)
        c.fail("sliding_window_cache = 1 is not supported");
    if (c.node.attr_int("qk_output", 0) != 0) c.fail("qk_output is not supported");
    if (c.node.attr_int("kv_cache_bit_width", 0) != 0)
        c.fail("a quantized KV cache (kv_cache_bit_width) is not supported");
    Gqa g;
    g.heads = c.node.attr_int("num_heads", 0);
    g.kv_heads = c.node.attr_int("kv_num_heads", 0);
    if (g.heads <= 0 || g.kv_heads <= 0 || g.heads % g.kv_heads != 0)
        c.fail(cat("num_heads (", g.heads, ") must be a positive multiple of kv_num_heads (",
                   g.kv_heads, ")"));
    const bool causal = c.node.attr_int("causal", 1) != 0;
    const int64_t window = c.node.attr_int("local_window_size", -1);
    const float softcap = c.node.attr_float("softcap", 0.0f);
    const bool do_rotary = c.node.attr_int("do_rotary", 0) != 0;
    const bool interleaved = c.node.attr_int("rotary_interleaved", 0) != 0;
    const bool smooth = c.node.attr_int("smooth_softmax", 0) != 0;
    if (query.shape.size() != 3) c.fail("query must be [batch, sequence, hidden]");
    if (!is_float(query.dtype))
        c.fail(cat("expected a float query, found ", dtype_name(query.dtype)));
    g.batch = query.shape[0];
    g.seq = query.shape[1];
    const int64_t d = query.shape[2];
    const bool packed = !c.has_input(1);
    if (packed != !c.has_input(2)) c.fail("key and value must be both given or both absent");
    const int64_t q_parts = packed ? g.heads + 2 * g.kv_heads : g.heads;
    if (d % q_parts != 0)
        c.fail(cat("query's last dimension ", d, " is not a multiple of ", q_parts, " heads"));
    g.head_size = d / q_parts;
    const int64_t hs = g.head_size, kv_hidden = g.kv_heads * hs;
    if (!packed)
        for (size_t i : {size_t{1}, size_t{2}}) {
            const Tensor& t = c.input(i);
            if (t.shape != std::vector<int64_t>{g.batch, g.seq, kv_hidden})
                c.fail(cat(i == 1 ? "key" : "value", " must be [", g.batch, ", ", g.seq, ", ",
                           kv_hidden, "]"));
        }
    const PastKv past = read_past_kv(c, 3, g.batch, g.kv_heads, hs, hs);
    g.past_len = past.length;
    std::vector<int64_t> seqlens = read_ints(c, c.input(5));
    if (static_cast<int64_t>(seqlens.size()) != g.batch)
        c.fail(cat("seqlens_k has ", seqlens.size(), " elements, expected batch ", g.batch));
    if (c.input(6).element_count() != 1) c.fail("total_sequence_length must be one element");
    const int64_t total_len = read_ints(c, c.input(6)).at(0);
    g.present_len = std::max(total_len, g.past_len);
    g.first_prompt = g.seq == total_len;
    if (!g.first_prompt && g.seq > 1 && g.batch != 1)
        c.fail("a prompt after a past context (sequence > 1) needs batch 1");
    g.past.resize(static_cast<size_t>(g.batch));
    g.total.resize(static_cast<size_t>(g.batch));
    for (int64_t b = 0; b < g.batch; ++b) {
        const int64_t tot = seqlens[static_cast<size_t>(b)] + 1;
        const int64_t past = g.first_prompt ? 0 : tot - g.seq;
        if (tot < 1 || tot > g.present_len || past < 0 || past > g.past_len ||
            past + g.seq > g.present_len)
            c.fail(cat("seqlens_k[", b, "] = ", tot - 1, " does not fit sequence ", g.seq,
                       ", past buffer ", g.past_len, " and total_sequence_length ", total_len));
        g.past[static_cast<size_t>(b)] = past;
        g.total[static_cast<size_t>(b)] = g.first_prompt ? std::min(tot, g.seq) : tot;
    }
    RotaryCache rope;
    int64_t rotary_dim = 0;
    if (do_rotary) {
        if (!c.has_input(7) || !c.has_input(8))
            c.fail("do_rotary = 1 needs cos_cache and sin_cache");
        rope = read_rotary_cache(c, c.input(7), c.input(8));
        rotary_dim = 2 * rope.half;
        if (rotary_dim > hs)
            c.fail(cat("cos_cache's last dimension ", rope.half, " exceeds head size / 2"));
    }
    const Tensor* bias_t = c.has_input(10) ? c.inputs[10] : nullptr;
    Tensor bias_f;
    int64_t bias_b = 0, bias_h = 0, bias_cols = 0;
    if (bias_t) {
        const auto& s = bias_t->shape;
        if (s.size() != 4 || (s[0] != 1 && s[0] != g.batch) || (s[1] != 1 && s[1] != g.heads) ||
            s[2] != g.seq || s[3] < total_len)
            c.fail(cat("attention_bias must be [batch or 1, num_heads or 1, ", g.seq, ", ",
                       total_len, "]"));
        bias_f = as_f32(c, *bias_t);
        bias_b = s[0] == 1 ? 0 : s[1] * s[2] * s[3];
        bias_h = s[1] == 1 ? 0 : s[2] * s[3];
        bias_cols = s[3];
    }
    std::vector<float> sinks;
    if (c.has_input(11)) {
        sinks = as_f32(c, c.input(11)).to_floats();
        if (static_cast<int64_t>(sinks.size()) != g.heads)
            c.fail(cat("head_sink has ", sinks.size(), " elements, expected num_heads ", g.heads));
    }
    const float scale = c.node.attr_float("scale", 0.0f) == 0.0f
                            ? 1.0f / std::sqrt(static_cast<float>(hs))
                            : c.node.attr_float("scale", 0.0f);

    // Q as [B, N, S, H]; the new K / V rows go straight into present [B, Nkv, T, H].
    Tensor qf = as_f32(c, query);
    const float* pq = qf.values<float>().data();
    Tensor kf, vf;
    if (!packed) {
        kf = as_f32(c, c.input(1));
        vf = as_f32(c, c.input(2));
    }
    const DType cache_dtype = query.dtype;
    // present: the valid past rows, then the new rows (written below), the rest zero. When
    // the run shares the past / present buffer (Executor::run's shared_kv_buffer: ONNX
    // Runtime GenAI's past_present_share_buffer, the decode loop's opt-in, decoder.h), the
    // past already has present's length and the executor hands it over (take_input:
    // nothing else reads it), present IS that buffer, as in ONNX Runtime when past and
    // present share memory: only the new rows are written, the rows after them keep the
    // buffer's values (zero in the decode loop's buffer, which only appends).
    Tensor present_k, present_v;
    Tensor* own_k = c.take_input(3);
    Tensor* own_v = c.take_input(4);
    const bool in_place = own_k && own_v && g.past_len == g.present_len &&
                          own_k->dtype == DType::F32 && own_v->dtype == DType::F32 &&
                          cache_dtype == DType::F32 && !own_k->is_encoded() && !own_v->is_encoded();
    if (in_place) {
        present_k = std::move(*own_k);
        present_v = std::move(*own_v);
    } else {
        present_k = make_uninitialized_tensor(DType::F32, {g.batch, g.kv_heads, g.present_len, hs});
        present_v = make_uninitialized_tensor(DType::F32, {g.batch, g.kv_heads, g.present_len, hs});
    }
    float* pk = present_k.mutable_values<float>().data();
    float* pv = present_v.mutable_values<float>().data();
    if (!in_place) {
        Tensor pkf, pvf;
        if (past.key) {
            pkf = as_f32(c, *past.key);
            pvf = as_f32(c, *past.value);
        }
        for (int64_t b = 0; b < g.batch; ++b)
            for (int64_t h = 0; h < g.kv_heads; ++h) {
                const int64_t dst = (b * g.kv_heads + h) * g.present_len * hs;
                const int64_t rows = g.past[static_cast<size_t>(b)];
                const auto n = static_cast<size_t>(rows * hs);
                if (n > 0) {
                    const int64_t src = (b * g.kv_heads + h) * g.past_len * hs;
                    std::memcpy(pk + dst, pkf.values<float>().data() + src, n * 4);
                    std::memcpy(pv + dst, pvf.values<float>().data() + src, n * 4);
                }
                const int64_t tail = (rows + g.seq) * hs, end = g.present_len * hs;
                std::fill(pk + dst + tail, pk + dst + end, 0.0f);
                std::fill(pv + dst + tail, pv + dst + end, 0.0f);
            }
    }
    std::vector<float> q(static_cast<size_t>(g.batch * g.heads * g.seq * hs));
    auto position = [&](int64_t b, int64_t s) {
        return g.first_prompt ? (s < g.total[static_cast<size_t>(b)] ? s : 1)
                              : g.past[static_cast<size_t>(b)] + s;
    };
    for (int64_t b = 0; b < g.batch; ++b)
        for (int64_t s = 0; s < g.seq; ++s) {
            const int64_t pos = position(b, s);
            if (do_rotary && pos >= rope.rows)
                c.fail(cat("position ", pos, " is outside the cos / sin caches' ", rope.rows,
                           " rows"));
            const float* cos_row =
                do_rotary ? rope.cos.values<float>().data() + pos * rope.half : nullptr;
            const float* sin_row =
                do_rotary ? rope.sin.values<float>().data() + pos * rope.half : nullptr;
            const float* row = pq + (b * g.seq + s) * d;
            for (int64_t h = 0; h < g.heads; ++h) {
                float* dst = q.data() + ((b * g.heads + h) * g.seq + s) * hs;
                std::memcpy(dst, row + h * hs, static_cast<size_t>(hs) * 4);
                if (do_rotary) rotate_head(dst, cos_row, sin_row, rotary_dim, interleaved);
            }
            const float* krow = packed ? row + g.heads * hs
                                       : kf.values<float>().data() + (b * g.seq + s) * kv_hidden;
            const float* vrow = packed ? row + (g.heads + g.kv_heads) * hs
                                       : vf.values<float>().data() + (b * g.seq + s) * kv_hidden;
            const int64_t t = g.past[static_cast<size_t>(b)] + s;
            for (int64_t h = 0; h < g.kv_heads; ++h) {
                const int64_t at = ((b * g.kv_heads + h) * g.present_len + t) * hs;
                std::memcpy(pk + at, krow + h * hs, static_cast<size_t>(hs) * 4);
                std::memcpy(pv + at, vrow + h * hs, static_cast<size_t>(hs) * 4);
                if (do_rotary) rotate_head(pk + at, cos_row, sin_row, rotary_dim, interleaved);
            }
        }

    Tensor out = make_uninitialized_tensor(DType::F32, {g.batch, g.seq, g.heads * hs});
    float* po = out.mutable_values<float>().data();
    const int64_t group = g.heads / g.kv_heads;
    ExecOptions one = c.options;
    one.threads = 1;
    const float* pbias = bias_t ? bias_f.values<float>().data() : nullptr;
    // One task per (batch, head): every output element is written by one task.
    // Tasks of about kGemmParallelWork multiply-adds at least: a decode step's few heads
    // stay on one thread.
    const int64_t task_work = std::max<int64_t>(1, g.seq * g.present_len * 2 * hs);
    parallel_for(c.options, g.batch * g.heads, std::max<int64_t>(1, kGemmParallelWork / task_work),
                 [&](int64_t t0, int64_t t1) {
                     std::vector<float> scores;
                     for (int64_t t = t0; t < t1; ++t) {
                         const int64_t b = t / g.heads, h = t % g.heads, kvh = h / group;
                         const int64_t total = g.total[static_cast<size_t>(b)],
                                       past = g.past[static_cast<size_t>(b)];
                         scores.assign(static_cast<size_t>(g.seq * total), 0.0f);
                         const float* kb = pk + (b * g.kv_heads + kvh) * g.present_len * hs;
                         const float* vb = pv + (b * g.kv_heads + kvh) * g.present_len * hs;
                         gemm_f32(one, {q.data() + t * g.seq * hs, g.seq, hs, hs, false},
                                  {kb, hs, total, hs, true}, scores.data(), total, false);
                         for (int64_t s = 0; s < g.seq; ++s) {
                             float* row = scores.data() + s * total;
                             const int64_t end = causal ? std::min(past + s + 1, total) : total;
                             const int64_t start =
                                 causal && window > 0 && end > window ? end - window : 0;
                             for (int64_t j = start; j < end; ++j) {
                                 float v = row[j] * scale;
                                 if (softcap > 0.0f) v = softcap * std::tanh(v / softcap);
                                 if (pbias) v += pbias[b * bias_b + h * bias_h + s * bias_cols + j];
                                 row[j] = v;
                             }
                             softmax_span(row, total, start, end, smooth || !sinks.empty(),
                                          sinks.empty() ? 0.0f : sinks[static_cast<size_t>(h)]);
                         }
                         gemm_f32(one, {scores.data(), g.seq, total, total, false},
                                  {vb, total, hs, hs, false},
                                  po + b * g.seq * g.heads * hs + h * hs, g.heads * hs, false);
                     }
                 });
    c.outputs.push_back(from_f32(std::move(out), query.dtype));
    if (c.node.outputs.size() > 1) c.outputs.push_back(from_f32(std::move(present_k), cache_dtype));
    if (c.node.outputs.size() > 2) c.outputs.push_back(from_f32(std::move(present_v), cache_dtype));
}

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Q [B, Nq, S, H], K [B, Nkv, T, H], V [B, Nkv, T, Hv] (f32, contiguous); Y [B, S, Nq * Hv]
// when out_bsnh, else [B, Nq, S, Hv].
struct AttendShape {
    int64_t batch, q_heads, kv_heads, q_seq, keys, head_size, v_head_size;
    bool out_bsnh;
};

// softmax(logits(Q K^T)) V with one task per (batch, head) pair, a fixed partition, each
// with gemm_f32 on its own thread: bit-identical for any thread count. logits(b, h, s, row)
// turns a row of raw Q K^T into logits in place and returns false when no key may be
// attended (that row's output is 0); probs(b, h, s, row) sees the row after the softmax.
template <typename Logits, typename Probs>
void attend(const ExecOptions& options, const AttendShape& d, const float* q, const float* k,
            const float* v, float* y, Logits logits, Probs probs) {
    const int64_t group = d.q_heads / d.kv_heads, hs = d.head_size, hv = d.v_head_size;
    ExecOptions one = options;
    one.threads = 1;
    parallel_for(options, d.batch * d.q_heads, 1, [&](int64_t t0, int64_t t1) {
        std::vector<float> scores(static_cast<size_t>(d.q_seq * d.keys));
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t b = t / d.q_heads, h = t % d.q_heads, kvh = h / group;
            const float* kb = k + (b * d.kv_heads + kvh) * d.keys * hs;
            const float* vb = v + (b * d.kv_heads + kvh) * d.keys * hv;
            gemm_f32(one, {q + t * d.q_seq * hs, d.q_seq, hs, hs, false},
                     {kb, hs, d.keys, hs, true}, scores.data(), d.keys, false);
            for (int64_t s = 0; s < d.q_seq; ++s) {
                float* row = scores.data() + s * d.keys;
                if (logits(b, h, s, row))
                    softmax_span(row, d.keys, 0, d.keys, false, 0.0f);
                else
                    std::fill(row, row + d.keys, 0.0f);  // no key to attend: zero output
                probs(b, h, s, row);
            }
            float* out =
                d.out_bsnh ? y + b * d.q_seq * d.q_heads * hv + h * hv : y + t * d.q_seq * hv;
            gemm_f32(one, {scores.data(), d.q_seq, d.keys, d.keys, false},
                     {vb, d.keys, hv, hv, false}, out, d.out_bsnh ? d.q_heads * hv : hv, false);
        }
    });
}

}  // namespace

// Attention (opset 23 / 24): Q [B, Nq, S, H] or [B, S, Nq * H] (then q_num_heads and
// kv_num_heads), K / V [B, Nkv, L, H / Hv], past_key / past_value [B, Nkv, P, ...] put
// before K / V (present, T = P + L); scores = scale Q K^T (+ attn_mask: bool, false = -inf,
// or added floats, right-aligned broadcast to [B, Nq, S, T], a shorter last dimension padded
// with -inf; + causal: key j > i + P is -inf; + nonpad_kv_seqlen: key j >= nonpad[b] is
// -inf), then softcap, softmax, times V. qk_matmul_output: scaled Q K^T (mode 0), after the
// mask (1), after softcap (2), after softmax (3).
void op_attention(OpContext& c) {
    const Tensor& q_in = c.input(0);
    const Tensor& k_in = c.input(1);
    const Tensor& v_in = c.input(2);
    const size_t rank = q_in.shape.size();
    if ((rank != 3 && rank != 4) || k_in.shape.size() != rank || v_in.shape.size() != rank)
        c.fail("Q, K and V must all have rank 3 or all rank 4");
    int64_t b_n = q_in.shape[0], nq = 0, nkv = 0, s_n = 0, l_n = 0, hq = 0, hv = 0;
    if (rank == 4) {
        nq = q_in.shape[1];
        s_n = q_in.shape[2];
        hq = q_in.shape[3];
        nkv = k_in.shape[1];
        l_n = k_in.shape[2];
        hv = v_in.shape[3];
        if (k_in.shape[3] != hq) c.fail("K's head size differs from Q's");
    } else {
        nq = c.node.attr_int("q_num_heads", 0);
        nkv = c.node.attr_int("kv_num_heads", 0);
        if (nq <= 0 || nkv <= 0) c.fail("3D inputs need q_num_heads and kv_num_heads");
        s_n = q_in.shape[1];
        l_n = k_in.shape[1];
        if (q_in.shape[2] % nq != 0 || k_in.shape[2] % nkv != 0 || v_in.shape[2] % nkv != 0)
            c.fail("hidden sizes are not multiples of the head counts");
        hq = q_in.shape[2] / nq;
        hv = v_in.shape[2] / nkv;
        if (k_in.shape[2] / nkv != hq) c.fail("K's head size differs from Q's");
    }
    if (k_in.shape[0] != b_n || v_in.shape[0] != b_n || v_in.shape[rank == 4 ? 2 : 1] != l_n ||
        (rank == 4 && v_in.shape[1] != nkv))
        c.fail("K and V must agree on batch, heads and sequence length");
    if (nkv <= 0 || nq % nkv != 0)
        c.fail(cat("q heads (", nq, ") must be a multiple of kv heads (", nkv, ")"));
    const PastKv past = read_past_kv(c, 4, b_n, nkv, hq, hv);
    const Tensor* past_k = past.key;
    const int64_t p_n = past.length;
    const int64_t t_n = p_n + l_n;
    const bool causal = c.node.attr_int("is_causal", 0) != 0;
    const float softcap = c.node.attr_float("softcap", 0.0f);
    const int64_t mode = c.node.attr_int("qk_matmul_output_mode", 0);
    if (mode < 0 || mode > 3) c.fail(cat("qk_matmul_output_mode ", mode, " is not 0..3"));
    const float scale = c.node.attr_float("scale", 0.0f) != 0.0f
                            ? c.node.attr_float("scale", 0.0f)
                            : 1.0f / std::sqrt(static_cast<float>(hq));
    std::vector<int64_t> nonpad;
    if (c.has_input(6)) {
        nonpad = read_ints(c, c.input(6));
        if (static_cast<int64_t>(nonpad.size()) != b_n)
            c.fail(cat("nonpad_kv_seqlen has ", nonpad.size(), " elements, expected ", b_n));
        if (past_k) c.fail("nonpad_kv_seqlen cannot be combined with past_key");
    }
    // The mask, right-aligned against [B, Nq, S, mask's last dimension].
    const Tensor* mask_t = c.has_input(3) ? c.inputs[3] : nullptr;
    Tensor mask_f;
    std::vector<int64_t> mask_strides;
    int64_t mask_cols = 0;
    bool mask_bool = false;
    if (mask_t) {
        if (mask_t->shape.empty() || mask_t->shape.size() > 4)
            c.fail("attn_mask must have rank 1..4");
        mask_cols = mask_t->shape.back();
        if (mask_cols > t_n)
            c.fail(cat("attn_mask's last dimension ", mask_cols, " exceeds ", t_n, " keys"));
        std::vector<int64_t> full{b_n, nq, s_n, mask_cols};
        if (broadcast_shapes(c, full, mask_t->shape) != full)
            c.fail("attn_mask does not broadcast to [batch, heads, q_sequence, kv_sequence]");
        mask_strides = broadcast_strides(mask_t->shape, full);
        mask_bool = mask_t->dtype == DType::Bool;
        mask_f = mask_bool ? Tensor{} : as_f32(c, *mask_t);
    }
    // Q, present K and V as f32 in BNSH.
    std::vector<float> q(static_cast<size_t>(b_n * nq * s_n * hq));
    copy_to_bnsh(c, q_in, rank == 4, b_n, nq, s_n, hq, nullptr, q.data(), s_n, 0);
    Tensor present_k = make_uninitialized_tensor(DType::F32, {b_n, nkv, t_n, hq});
    Tensor present_v = make_uninitialized_tensor(DType::F32, {b_n, nkv, t_n, hv});
    float* pk = present_k.mutable_values<float>().data();
    float* pv = present_v.mutable_values<float>().data();
    if (past_k) {
        copy_to_bnsh(c, *past.key, true, b_n, nkv, p_n, hq, nullptr, pk, t_n, 0);
        copy_to_bnsh(c, *past.value, true, b_n, nkv, p_n, hv, nullptr, pv, t_n, 0);
    }
    copy_to_bnsh(c, k_in, rank == 4, b_n, nkv, l_n, hq, nullptr, pk, t_n, p_n);
    copy_to_bnsh(c, v_in, rank == 4, b_n, nkv, l_n, hv, nullptr, pv, t_n, p_n);

    Tensor y =
        make_uninitialized_tensor(DType::F32, rank == 4 ? std::vector<int64_t>{b_n, nq, s_n, hv}
                                                        : std::vector<int64_t>{b_n, s_n, nq * hv});
    Tensor qk = make_uninitialized_tensor(DType::F32, {b_n, nq, s_n, t_n});
    float* py = y.mutable_values<float>().data();
    float* pqk = qk.mutable_values<float>().data();
    const bool want_qk = c.node.outputs.size() > 3 && !c.node.outputs[3].empty();
    const AttendShape shape{b_n, nq, nkv, s_n, t_n, hq, hv, rank == 3};
    auto logits = [&](int64_t b, int64_t h, int64_t s, float* row) {
        // Causal is bottom-right aligned: query i sees keys up to i + the keys before it.
        const int64_t causal_offset =
            past_k || nonpad.empty() ? p_n : nonpad[static_cast<size_t>(b)] - s_n;
        float* qk_out = pqk + ((b * nq + h) * s_n + s) * t_n;
        bool any = false;
        for (int64_t j = 0; j < t_n; ++j) {
            float v = row[j] * scale;
            if (mode == 0) qk_out[j] = v;
            float bias = 0.0f;
            if (mask_t) {
                if (j >= mask_cols) {
                    bias = kNegInf;
                } else {
                    const int64_t at = b * mask_strides[0] + h * mask_strides[1] +
                                       s * mask_strides[2] + j * mask_strides[3];
                    bias =
                        mask_bool
                            ? (mask_t->values<uint8_t>()[static_cast<size_t>(at)] ? 0.0f : kNegInf)
                            : mask_f.values<float>()[static_cast<size_t>(at)];
                }
            }
            if (causal && j > s + causal_offset) bias = kNegInf;
            if (!nonpad.empty() && j >= nonpad[static_cast<size_t>(b)]) bias = kNegInf;
            any = any || bias != kNegInf;
            v += bias;
            if (mode == 1) qk_out[j] = v;
            if (softcap > 0.0f) v = softcap * std::tanh(v / softcap);
            if (mode == 2) qk_out[j] = v;
            row[j] = v;
        }
        return any;
    };
    auto probs = [&](int64_t b, int64_t h, int64_t s, const float* row) {
        if (mode == 3) std::copy(row, row + t_n, pqk + ((b * nq + h) * s_n + s) * t_n);
    };
    attend(c.options, shape, q.data(), pk, pv, py, logits, probs);
    c.outputs.push_back(from_f32(std::move(y), q_in.dtype));
    if (c.node.outputs.size() > 1) c.outputs.push_back(from_f32(std::move(present_k), q_in.dtype));
    if (c.node.outputs.size() > 2) c.outputs.push_back(from_f32(std::move(present_v), q_in.dtype));
    if (want_qk) c.outputs.push_back(from_f32(std::move(qk), q_in.dtype));
}

// com.microsoft MultiHeadAttention: query [B, S, D]; key / value [B, L, D / Dv] (projected
// here by `bias` [D + D + Dv] when given) or already BNSH [B, N, L, H] (cross attention);
// past_key / past_value [B, N, P, H] put before them (present); scores = scale Q K^T +
// attention_bias [B or 1, N or 1, S, T] + mask_filter_value where key_padding_mask ([B] valid
// key lengths, [B, T] or [B, S, T] with 0 = padding) says so; unidirectional: key j > i + P
// is not attended. Refused: packed QKV / KV, past_sequence_length, cache_indirection, the qk
// output.
void op_multi_head_attention(OpContext& c) {
    const Tensor& query = c.input(0);
    const int64_t heads = c.node.attr_int("num_heads", 0);
    if (heads <= 0) c.fail("num_heads must be positive");
    if (query.shape.size() != 3)
        c.fail("query must be [batch, sequence, hidden] (packed QKV is not supported)");
    if (!c.has_input(1) || !c.has_input(2))
        c.fail("key and value are required (packed KV is not supported)");
    for (size_t i : {size_t{8}, size_t{9}})
        if (c.has_input(i)) c.fail("past_sequence_length / cache_indirection are not supported");
    if (c.node.outputs.size() > 3 && !c.node.outputs[3].empty())
        c.fail("the qk output is not supported");
    const Tensor& key = c.input(1);
    const Tensor& value = c.input(2);
    const int64_t b_n = query.shape[0], s_n = query.shape[1], d = query.shape[2];
    if (d % heads != 0) c.fail(cat("hidden size ", d, " is not a multiple of num_heads ", heads));
    const int64_t hs = d / heads;
    const bool bnsh_kv = key.shape.size() == 4;
    if (bnsh_kv ? key.shape != std::vector<int64_t>{b_n, heads, key.shape[2], hs} ||
                      value.shape.size() != 4 || value.shape[0] != b_n || value.shape[1] != heads ||
                      value.shape[2] != key.shape[2]
                : key.shape.size() != 3 || key.shape[0] != b_n || key.shape[2] != d ||
                      value.shape.size() != 3 || value.shape[0] != b_n ||
                      value.shape[1] != key.shape[1] || value.shape[2] % heads != 0)
        c.fail(cat("key / value must be [", b_n, ", kv_sequence, ", d, "] or [", b_n, ", ", heads,
                   ", kv_sequence, ", hs, "]"));
    const int64_t l_n = bnsh_kv ? key.shape[2] : key.shape[1];
    const int64_t hv = bnsh_kv ? value.shape[3] : value.shape[2] / heads;
    std::vector<float> bias;
    if (c.has_input(3)) {
        bias = as_f32(c, c.input(3)).to_floats();
        if (static_cast<int64_t>(bias.size()) != 2 * d + heads * hv)
            c.fail(cat("bias has ", bias.size(), " elements, expected ", 2 * d + heads * hv));
        if (bnsh_kv) c.fail("bias with BNSH key / value is not supported");
    }
    const PastKv past = read_past_kv(c, 6, b_n, heads, hs, hv);
    const int64_t p_n = past.length;
    const int64_t t_n = p_n + l_n;
    // Q, present K / V in BNSH, the projection bias added.
    std::vector<float> q(static_cast<size_t>(b_n * heads * s_n * hs));
    const float* qkv_bias = bias.empty() ? nullptr : bias.data();
    copy_to_bnsh(c, query, false, b_n, heads, s_n, hs, qkv_bias, q.data(), s_n, 0);
    Tensor present_k = make_uninitialized_tensor(DType::F32, {b_n, heads, t_n, hs});
    Tensor present_v = make_uninitialized_tensor(DType::F32, {b_n, heads, t_n, hv});
    float* pk = present_k.mutable_values<float>().data();
    float* pv = present_v.mutable_values<float>().data();
    if (past.key) {
        copy_to_bnsh(c, *past.key, true, b_n, heads, p_n, hs, nullptr, pk, t_n, 0);
        copy_to_bnsh(c, *past.value, true, b_n, heads, p_n, hv, nullptr, pv, t_n, 0);
    }
    copy_to_bnsh(c, key, bnsh_kv, b_n, heads, l_n, hs, qkv_bias ? qkv_bias + d : nullptr, pk, t_n,
                 p_n);
    copy_to_bnsh(c, value, bnsh_kv, b_n, heads, l_n, hv, qkv_bias ? qkv_bias + 2 * d : nullptr, pv,
                 t_n, p_n);
    // key_padding_mask: [B] valid lengths, or [B, T] / [B, S, T] with 0 = padding.
    std::vector<int64_t> mask;
    int64_t mask_rank = 0;
    if (c.has_input(4)) {
        const Tensor& m = c.input(4);
        mask = read_ints(c, m);
        mask_rank = static_cast<int64_t>(m.shape.size());
        const bool ok = (mask_rank == 1 && m.shape[0] == b_n) ||
                        (mask_rank == 2 && m.shape == std::vector<int64_t>{b_n, t_n}) ||
                        (mask_rank == 3 && m.shape == std::vector<int64_t>{b_n, s_n, t_n});
        if (!ok)
            c.fail(cat("key_padding_mask must be [", b_n, "], [", b_n, ", ", t_n, "] or [", b_n,
                       ", ", s_n, ", ", t_n, "]"));
    }
    const Tensor* ab_t = c.has_input(5) ? c.inputs[5] : nullptr;
    Tensor ab;
    int64_t ab_b = 0, ab_h = 0;
    if (ab_t) {
        const auto& sh = ab_t->shape;
        if (sh.size() != 4 || (sh[0] != 1 && sh[0] != b_n) || (sh[1] != 1 && sh[1] != heads) ||
            sh[2] != s_n || sh[3] != t_n)
            c.fail(
                cat("attention_bias must be [batch or 1, num_heads or 1, ", s_n, ", ", t_n, "]"));
        ab = as_f32(c, *ab_t);
        ab_b = sh[0] == 1 ? 0 : sh[1] * s_n * t_n;
        ab_h = sh[1] == 1 ? 0 : s_n * t_n;
    }
    const bool causal = c.node.attr_int("unidirectional", 0) != 0;
    const float filter = c.node.attr_float("mask_filter_value", -10000.0f);
    const float scale = c.node.attr_float("scale", 0.0f) != 0.0f
                            ? c.node.attr_float("scale", 0.0f)
                            : 1.0f / std::sqrt(static_cast<float>(hs));
    auto logits = [&](int64_t b, int64_t h, int64_t s, float* row) {
        bool any = false;
        for (int64_t j = 0; j < t_n; ++j) {
            if (causal && j > s + p_n) {
                row[j] = kNegInf;
                continue;
            }
            any = true;
            float v = row[j] * scale;
            if (!mask.empty()) {
                const bool padded = mask_rank == 1 ? j >= mask[static_cast<size_t>(b)]
                                    : mask_rank == 2
                                        ? mask[static_cast<size_t>(b * t_n + j)] == 0
                                        : mask[static_cast<size_t>((b * s_n + s) * t_n + j)] == 0;
                if (padded) v += filter;
            }
            if (ab_t)
                v += ab.values<float>()[static_cast<size_t>(b * ab_b + h * ab_h + s * t_n + j)];
            row[j] = v;
        }
        return any;
    };
    Tensor y = make_uninitialized_tensor(DType::F32, {b_n, s_n, heads * hv});
    attend(c.options, {b_n, heads, heads, s_n, t_n, hs, hv, true}, q.data(), pk, pv,
           y.mutable_values<float>().data(), logits,
           [](int64_t, int64_t, int64_t, const float*) {});
    c.outputs.push_back(from_f32(std::move(y), query.dtype));
    if (c.node.outputs.size() > 1) c.outputs.push_back(from_f32(std::move(present_k), query.dtype));
    if (c.node.outputs.size() > 2) c.outputs.push_back(from_f32(std::move(present_v), query.dtype));
}

void op_simplified_layer_normalization(OpContext& c) {
    rms_normalization(c, true);
}

void op_rms_normalization(OpContext& c) {
    rms_normalization(c, false);
}

namespace {

// SkipLayerNormalization (simplified: SkipSimplifiedLayerNormalization, an RMS norm):
// s = input + skip (+ bias), y = normalized s * gamma (+ beta); outputs y, mean (not for
// the simplified form), inv_std_var, s.
void skip_normalization(OpContext& c, bool simplified) {
    const Tensor& x = c.input(0);
    const Tensor& skip = c.input(1);
    if (x.shape.size() != 2 && x.shape.size() != 3)
        c.fail("input must be [batch, sequence, hidden] or [tokens, hidden]");
    const int64_t hidden = x.shape.back();
    RmsRows p = plan_rms(c, x, -1, c.input(2), "gamma");
    const int64_t count = x.element_count();
    const int64_t skip_count = skip.element_count();
    if (skip.shape.empty() || skip.shape.back() != hidden || skip_count == 0 ||
        count % skip_count != 0 || skip.shape.size() > x.shape.size() ||
        !std::equal(skip.shape.rbegin(), skip.shape.rend(), x.shape.rbegin()))
        c.fail("skip must have input's shape or its trailing dimensions");
    auto per_hidden = [&](size_t i, const char* what) {
        if (!c.has_input(i)) return std::vector<float>();
        std::vector<float> v = as_f32(c, c.input(i)).to_floats();
        if (static_cast<int64_t>(v.size()) != hidden)
            c.fail(cat(what, " has ", v.size(), " elements, expected hidden size ", hidden));
        return v;
    };
    const std::vector<float> beta = simplified ? std::vector<float>() : per_hidden(3, "beta");
    const std::vector<float> bias = per_hidden(simplified ? 3 : 4, "bias");
    Tensor xf = as_f32(c, x), sf = as_f32(c, skip);
    Tensor sum = make_uninitialized_tensor(DType::F32, x.shape);
    const float* px = xf.values<float>().data();
    const float* ps = sf.values<float>().data();
    float* pu = sum.mutable_values<float>().data();
    for (int64_t i = 0; i < count; ++i) {
        float v = px[i] + ps[i % skip_count];
        if (!bias.empty()) v += bias[static_cast<size_t>(i % hidden)];
        pu[i] = v;
    }
    const float eps = c.node.attr_float("epsilon", 1e-5f);
    Tensor y = make_uninitialized_tensor(DType::F32, x.shape);
    Tensor mean = make_uninitialized_tensor(DType::F32, p.stat_shape);
    Tensor inv = make_uninitialized_tensor(DType::F32, p.stat_shape);
    float* py = y.mutable_values<float>().data();
    if (simplified) {
        if (c.node.outputs.size() > 1 && !c.node.outputs[1].empty())
            c.fail("the mean output is not defined for the simplified (RMS) normalization");
        rms_rows(c.options, p, pu, eps, py, inv.mutable_values<float>().data());
    } else {
        float* pm = mean.mutable_values<float>().data();
        float* pi = inv.mutable_values<float>().data();
        parallel_for(c.options, p.rows, std::max<int64_t>(1, 4096 / hidden),
                     [&](int64_t r0, int64_t r1) {
                         for (int64_t r = r0; r < r1; ++r) {
                             const float* sr = pu + r * hidden;
                             double acc = 0, sq = 0;
                             for (int64_t k = 0; k < hidden; ++k) acc += sr[k];
                             const double m = acc / static_cast<double>(hidden);
                             for (int64_t k = 0; k < hidden; ++k) sq += (sr[k] - m) * (sr[k] - m);
                             const double iv = 1.0 / std::sqrt(sq / static_cast<double>(hidden) +
                                                               static_cast<double>(eps));
                             pm[r] = static_cast<float>(m);
                             pi[r] = static_cast<float>(iv);
                             for (int64_t k = 0; k < hidden; ++k) {
                                 double v = (sr[k] - m) * iv * p.scale[static_cast<size_t>(k)];
                                 if (!beta.empty()) v += beta[static_cast<size_t>(k)];
                                 py[r * hidden + k] = static_cast<float>(v);
                             }
                         }
                     });
    }
    c.outputs.push_back(from_f32(std::move(y), x.dtype));
    if (c.node.outputs.size() > 1) c.outputs.push_back(std::move(mean));
    if (c.node.outputs.size() > 2) c.outputs.push_back(std::move(inv));
    if (c.node.outputs.size() > 3) c.outputs.push_back(from_f32(std::move(sum), x.dtype));
}

// y = f(x + bias) over float x, bias (optional) broadcast along the last dimension.
template <typename F>
void biased_unary(OpContext& c, size_t bias_input, bool bias_required, F f) {
    const Tensor& x = c.input(0);
    if (x.shape.empty()) c.fail("expects an input of rank >= 1");
    const int64_t last = x.shape.back();
    std::vector<float> bias;
    if (bias_required || c.has_input(bias_input)) {
        bias = as_f32(c, c.input(bias_input)).to_floats();
        if (static_cast<int64_t>(bias.size()) != last)
            c.fail(cat("bias has ", bias.size(), " elements, expected the last dimension ", last));
    }
    Tensor xf = as_f32(c, x);
    Tensor y = make_uninitialized_tensor(DType::F32, x.shape);
    const float* px = xf.values<float>().data();
    float* py = y.mutable_values<float>().data();
    parallel_for(c.options, x.element_count(), 16384, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i)
            py[i] = f(bias.empty() ? px[i] : px[i] + bias[static_cast<size_t>(i % last)]);
    });
    c.outputs.push_back(from_f32(std::move(y), x.dtype));
}

}  // namespace

void op_skip_simplified_layer_normalization(OpContext& c) {
    skip_normalization(c, true);
}

void op_skip_layer_normalization(OpContext& c) {
    skip_normalization(c, false);
}

// com.microsoft FastGelu: the tanh Gelu of X (+ bias).
void op_fast_gelu(OpContext& c) {
    biased_unary(c, 1, false, [](float v) { return gelu_tanh(v); });
}

// com.microsoft BiasGelu: the exact (erf) Gelu of A + B.
void op_bias_gelu(OpContext& c) {
    biased_unary(c, 1, true, [](float v) { return gelu_exact(v); });
}

// com.microsoft QuickGelu: x * sigmoid(alpha x), alpha 1.702 by default.
void op_quick_gelu(OpContext& c) {
    const float alpha = c.node.attr_float("alpha", 1.702f);
    biased_unary(c, 1, false, [alpha](float v) { return v / (1.0f + std::exp(-alpha * v)); });
}

void op_rotary_embedding(OpContext& c) {
    rotary_embedding(c, false);
}

void op_rotary_embedding_ms(OpContext& c) {
    rotary_embedding(c, true);
}

}  // namespace ep::rt
