// The attention family: what ONNX Runtime GenAI's model builder writes for a llama-style
// decoder (com.microsoft GroupQueryAttention, RotaryEmbedding, SkipSimplifiedLayerNormalization
// and the onnx-domain contrib SimplifiedLayerNormalization) and the opset-23 RMSNormalization
// and RotaryEmbedding.
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
//                     the S new rows, length max(P, total_sequence_length), the rest zero.
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
    parallel_for(c.options, l.batch * l.seq, 16, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t b = t / l.seq, s = t % l.seq, row = rows[static_cast<size_t>(t)];
            for (int64_t n = 0; n < l.heads; ++n)
                rotate_head(py + l.offset(b, n, s), pc + row * cache.half, ps + row * cache.half,
                            rotary_dim, interleaved);
        }
    });
    c.outputs.push_back(from_f32(std::move(y), x.dtype));
}

// ---------------------------------------------------------------------------------------
// GroupQueryAttention

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
    const Tensor* past_k = c.has_input(3) ? c.inputs[3] : nullptr;
    const Tensor* past_v = c.has_input(4) ? c.inputs[4] : nullptr;
    if (!past_k != !past_v) c.fail("past_key and past_value must be both given or both absent");
    if (past_k) {
        if (past_k->shape.size() != 4 || past_k->shape[0] != g.batch ||
            past_k->shape[1] != g.kv_heads || past_k->shape[3] != hs ||
            past_v->shape != past_k->shape)
            c.fail(cat("past_key / past_value must be [", g.batch, ", ", g.kv_heads,
                       ", past_length, ", hs, "]"));
        g.past_len = past_k->shape[2];
    }
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
    Tensor present_k = make_tensor(DType::F32, {g.batch, g.kv_heads, g.present_len, hs});
    Tensor present_v = make_tensor(DType::F32, {g.batch, g.kv_heads, g.present_len, hs});
    float* pk = present_k.mutable_values<float>().data();
    float* pv = present_v.mutable_values<float>().data();
    if (past_k) {
        Tensor pkf = as_f32(c, *past_k), pvf = as_f32(c, *past_v);
        for (int64_t b = 0; b < g.batch; ++b)
            for (int64_t h = 0; h < g.kv_heads; ++h) {
                const int64_t src = (b * g.kv_heads + h) * g.past_len * hs;
                const int64_t dst = (b * g.kv_heads + h) * g.present_len * hs;
                const auto n = static_cast<size_t>(g.past[static_cast<size_t>(b)] * hs);
                std::memcpy(pk + dst, pkf.values<float>().data() + src, n * 4);
                std::memcpy(pv + dst, pvf.values<float>().data() + src, n * 4);
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
    parallel_for(c.options, g.batch * g.heads, 1, [&](int64_t t0, int64_t t1) {
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
                const int64_t start = causal && window > 0 && end > window ? end - window : 0;
                for (int64_t j = start; j < end; ++j) {
                    float v = row[j] * scale;
                    if (softcap > 0.0f) v = softcap * std::tanh(v / softcap);
                    if (pbias) v += pbias[b * bias_b + h * bias_h + s * bias_cols + j];
                    row[j] = v;
                }
                softmax_span(row, total, start, end, smooth || !sinks.empty(),
                             sinks.empty() ? 0.0f : sinks[static_cast<size_t>(h)]);
            }
            gemm_f32(one, {scores.data(), g.seq, total, total, false}, {vb, total, hs, hs, false},
                     po + b * g.seq * g.heads * hs + h * hs, g.heads * hs, false);
        }
    });
    c.outputs.push_back(from_f32(std::move(out), query.dtype));
    if (c.node.outputs.size() > 1) c.outputs.push_back(from_f32(std::move(present_k), cache_dtype));
    if (c.node.outputs.size() > 2) c.outputs.push_back(from_f32(std::move(present_v), cache_dtype));
}

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
    const Tensor* past_k = c.has_input(4) ? c.inputs[4] : nullptr;
    const Tensor* past_v = c.has_input(5) ? c.inputs[5] : nullptr;
    if (!past_k != !past_v) c.fail("past_key and past_value must be both given or both absent");
    int64_t p_n = 0;
    if (past_k) {
        p_n = past_k->shape.size() == 4 ? past_k->shape[2] : -1;
        if (past_k->shape != std::vector<int64_t>{b_n, nkv, p_n, hq} ||
            past_v->shape != std::vector<int64_t>{b_n, nkv, p_n, hv})
            c.fail(cat("past_key / past_value must be [", b_n, ", ", nkv, ", past, ", hq, " / ", hv,
                       "]"));
    }
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
    auto to_bnsh = [&](const Tensor& t, bool bnsh, int64_t heads, int64_t seq, int64_t hs,
                       float* dst, int64_t dst_seq, int64_t seq0) {
        Tensor f = as_f32(c, t);
        const float* src = f.values<float>().data();
        for (int64_t b = 0; b < b_n; ++b)
            for (int64_t h = 0; h < heads; ++h)
                for (int64_t s = 0; s < seq; ++s) {
                    const float* from = bnsh ? src + ((b * heads + h) * seq + s) * hs
                                             : src + ((b * seq + s) * heads + h) * hs;
                    std::memcpy(dst + ((b * heads + h) * dst_seq + seq0 + s) * hs, from,
                                static_cast<size_t>(hs) * 4);
                }
    };
    std::vector<float> q(static_cast<size_t>(b_n * nq * s_n * hq));
    to_bnsh(q_in, rank == 4, nq, s_n, hq, q.data(), s_n, 0);
    Tensor present_k = make_uninitialized_tensor(DType::F32, {b_n, nkv, t_n, hq});
    Tensor present_v = make_uninitialized_tensor(DType::F32, {b_n, nkv, t_n, hv});
    float* pk = present_k.mutable_values<float>().data();
    float* pv = present_v.mutable_values<float>().data();
    if (past_k) {
        to_bnsh(*past_k, true, nkv, p_n, hq, pk, t_n, 0);
        to_bnsh(*past_v, true, nkv, p_n, hv, pv, t_n, 0);
    }
    to_bnsh(k_in, rank == 4, nkv, l_n, hq, pk, t_n, p_n);
    to_bnsh(v_in, rank == 4, nkv, l_n, hv, pv, t_n, p_n);

    Tensor y =
        make_uninitialized_tensor(DType::F32, rank == 4 ? std::vector<int64_t>{b_n, nq, s_n, hv}
                                                        : std::vector<int64_t>{b_n, s_n, nq * hv});
    Tensor qk = make_uninitialized_tensor(DType::F32, {b_n, nq, s_n, t_n});
    float* py = y.mutable_values<float>().data();
    float* pqk = qk.mutable_values<float>().data();
    const bool want_qk = c.node.outputs.size() > 3 && !c.node.outputs[3].empty();
    const int64_t group = nq / nkv;
    ExecOptions one = c.options;
    one.threads = 1;
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();
    parallel_for(c.options, b_n * nq, 1, [&](int64_t t0, int64_t t1) {
        std::vector<float> scores(static_cast<size_t>(s_n * t_n));
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t b = t / nq, h = t % nq, kvh = h / group;
            const float* kb = pk + (b * nkv + kvh) * t_n * hq;
            const float* vb = pv + (b * nkv + kvh) * t_n * hv;
            // Causal is bottom-right aligned: query i sees keys up to i + the keys before it.
            const int64_t causal_offset =
                past_k || nonpad.empty() ? p_n : nonpad[static_cast<size_t>(b)] - s_n;
            gemm_f32(one, {q.data() + t * s_n * hq, s_n, hq, hq, false}, {kb, hq, t_n, hq, true},
                     scores.data(), t_n, false);
            float* qk_out = pqk + t * s_n * t_n;
            for (int64_t s = 0; s < s_n; ++s) {
                float* row = scores.data() + s * t_n;
                bool any = false;
                for (int64_t j = 0; j < t_n; ++j) {
                    float v = row[j] * scale;
                    if (mode == 0) qk_out[s * t_n + j] = v;
                    float bias = 0.0f;
                    if (mask_t) {
                        if (j >= mask_cols) {
                            bias = kNegInf;
                        } else {
                            const int64_t at = b * mask_strides[0] + h * mask_strides[1] +
                                               s * mask_strides[2] + j * mask_strides[3];
                            bias = mask_bool ? (mask_t->values<uint8_t>()[static_cast<size_t>(at)]
                                                    ? 0.0f
                                                    : kNegInf)
                                             : mask_f.values<float>()[static_cast<size_t>(at)];
                        }
                    }
                    if (causal && j > s + causal_offset) bias = kNegInf;
                    if (!nonpad.empty() && j >= nonpad[static_cast<size_t>(b)]) bias = kNegInf;
                    any = any || bias != kNegInf;
                    v += bias;
                    if (mode == 1) qk_out[s * t_n + j] = v;
                    if (softcap > 0.0f) v = softcap * std::tanh(v / softcap);
                    if (mode == 2) qk_out[s * t_n + j] = v;
                    row[j] = v;
                }
                if (any) {
                    softmax_span(row, t_n, 0, t_n, false, 0.0f);
                } else {
                    std::fill(row, row + t_n, 0.0f);  // no key to attend: zero output
                }
                if (mode == 3) std::copy(row, row + t_n, qk_out + s * t_n);
            }
            float* out = rank == 4 ? py + t * s_n * hv : py + b * s_n * nq * hv + h * hv;
            gemm_f32(one, {scores.data(), s_n, t_n, t_n, false}, {vb, t_n, hv, hv, false}, out,
                     rank == 4 ? hv : nq * hv, false);
        }
    });
    c.outputs.push_back(from_f32(std::move(y), q_in.dtype));
    if (c.node.outputs.size() > 1) c.outputs.push_back(from_f32(std::move(present_k), q_in.dtype));
    if (c.node.outputs.size() > 2) c.outputs.push_back(from_f32(std::move(present_v), q_in.dtype));
    if (want_qk) c.outputs.push_back(from_f32(std::move(qk), q_in.dtype));
}

void op_simplified_layer_normalization(OpContext& c) {
    rms_normalization(c, true);
}

void op_rms_normalization(OpContext& c) {
    rms_normalization(c, false);
}

void op_skip_simplified_layer_normalization(OpContext& c) {
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
    std::vector<float> bias;
    if (c.has_input(3)) {
        bias = as_f32(c, c.input(3)).to_floats();
        if (static_cast<int64_t>(bias.size()) != hidden)
            c.fail(cat("bias has ", bias.size(), " elements, expected hidden size ", hidden));
    }
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
    float eps = c.node.attr_float("epsilon", 1e-5f);
    Tensor y = make_uninitialized_tensor(DType::F32, x.shape);
    Tensor inv = make_uninitialized_tensor(DType::F32, p.stat_shape);
    rms_rows(c.options, p, pu, eps, y.mutable_values<float>().data(),
             inv.mutable_values<float>().data());
    c.outputs.push_back(from_f32(std::move(y), x.dtype));
    if (c.node.outputs.size() > 1 && !c.node.outputs[1].empty())
        c.fail("the mean output is not defined for the simplified (RMS) normalization");
    if (c.node.outputs.size() > 1) c.outputs.emplace_back();
    if (c.node.outputs.size() > 2) c.outputs.push_back(std::move(inv));
    if (c.node.outputs.size() > 3) c.outputs.push_back(from_f32(std::move(sum), x.dtype));
}

void op_rotary_embedding(OpContext& c) {
    rotary_embedding(c, false);
}

void op_rotary_embedding_ms(OpContext& c) {
    rotary_embedding(c, true);
}

}  // namespace ep::rt
