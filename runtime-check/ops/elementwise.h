// Typed dispatch and N-ary broadcasting loops shared by the elementwise kernels.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "runtime-check/ops/op_context.h"

namespace ep::rt {

// Elements of a cheap elementwise op (a few instructions each) below which a chunk is not
// worth another thread: waking a pool thread and joining it costs a few microseconds,
// about what 64 Ki such elements take on one core (ONNX Runtime runs ops this small
// serially too).
inline constexpr int64_t kElementwiseChunk = 65536;

// Calls fn(T{}) with the C++ type that stores `dtype` (f16/bf16 as uint16_t: use the
// float-compute helpers below for those).
template <typename Fn>
void dispatch_numeric(const OpContext& ctx, DType dtype, Fn&& fn) {
    switch (dtype) {
        case DType::F32:
            return fn(float{});
        case DType::F64:
            return fn(double{});
        case DType::I64:
            return fn(int64_t{});
        case DType::I32:
            return fn(int32_t{});
        case DType::I16:
            return fn(int16_t{});
        case DType::I8:
            return fn(int8_t{});
        case DType::U64:
            return fn(uint64_t{});
        case DType::U32:
            return fn(uint32_t{});
        case DType::U16:
            return fn(uint16_t{});
        case DType::U8:
            return fn(uint8_t{});
        default:
            ctx.fail(cat("dtype ", dtype_name(dtype), " is not supported here"));
    }
}

// Broadcast geometry of an elementwise op: the output shape, and per input the stride
// (in elements) of each output dimension. Dimensions are collapsed where possible.
struct Broadcast {
    std::vector<int64_t> shape;                 // output shape (uncollapsed)
    std::vector<int64_t> dims;                  // collapsed output dims
    std::vector<std::vector<int64_t>> strides;  // per input, per collapsed dim
    int64_t count = 1;
};

[[nodiscard]] Broadcast make_broadcast(const OpContext& ctx, std::span<const Tensor* const> inputs);

// Walks the outer (all but the innermost) collapsed dimensions row by row from row
// `begin`: base[k] is input k's offset of the row's first element.
template <size_t N>
struct BroadcastRows {
    const Broadcast& bc;
    size_t outer_rank;
    std::array<int64_t, N> base{};
    std::array<int64_t, 8> idx_small{};
    std::vector<int64_t> idx_big;
    int64_t* idx;

    BroadcastRows(const Broadcast& b, int64_t begin)
        : bc(b), outer_rank(b.dims.empty() ? 0 : b.dims.size() - 1) {
        if (outer_rank > idx_small.size()) idx_big.assign(outer_rank, 0);
        idx = outer_rank > idx_small.size() ? idx_big.data() : idx_small.data();
        int64_t rem = begin;
        for (size_t d = outer_rank; d-- > 0;) {
            idx[d] = rem % bc.dims[d];
            rem /= bc.dims[d];
            for (size_t k = 0; k < N; ++k) base[k] += idx[d] * bc.strides[k][d];
        }
    }
    void next() {
        for (size_t d = outer_rank; d-- > 0;) {
            for (size_t k = 0; k < N; ++k) base[k] += bc.strides[k][d];
            if (++idx[d] < bc.dims[d]) return;
            for (size_t k = 0; k < N; ++k) base[k] -= idx[d] * bc.strides[k][d];
            idx[d] = 0;
        }
    }
    BroadcastRows(const BroadcastRows&) = delete;
    BroadcastRows& operator=(const BroadcastRows&) = delete;
};

// Calls fn(out_index, in_offsets...) for every output element in row-major order, split
// over threads by output rows; each output index is visited once.
template <size_t N, typename Fn>
void for_each_broadcast(const ExecOptions& options, const Broadcast& bc, Fn&& fn) {
    if (bc.count == 0) return;
    const size_t rank = bc.dims.size();
    const int64_t inner = rank ? bc.dims[rank - 1] : 1;
    const int64_t outer = inner ? bc.count / inner : 0;
    parallel_for(options, outer,
                 std::max<int64_t>(1, kElementwiseChunk / std::max<int64_t>(inner, 1)),
                 [&](int64_t begin, int64_t end) {
                     std::array<int64_t, N> step{};
                     for (size_t k = 0; k < N; ++k) step[k] = rank ? bc.strides[k][rank - 1] : 0;
                     BroadcastRows<N> rows(bc, begin);
                     for (int64_t row = begin; row < end; ++row, rows.next()) {
                         int64_t out = row * inner;
                         for (int64_t j = 0; j < inner; ++j) {
                             std::array<int64_t, N> off;
                             for (size_t k = 0; k < N; ++k) off[k] = rows.base[k] + j * step[k];
                             fn(out + j, off);
                         }
                     }
                 });
}

// Calls fn(out_begin, in_offsets, in_steps, count) for each row of the collapsed
// broadcast: output elements out_begin + j and input k's elements in_offsets[k] +
// j * in_steps[k] for j in [0, count). A step is 1 (the input has the dimension) or 0
// (broadcast), so a loop over a row vectorizes. Rows are split over threads.
template <size_t N, typename Fn>
void for_each_broadcast_row(const ExecOptions& options, const Broadcast& bc, Fn&& fn) {
    if (bc.count == 0) return;
    const size_t rank = bc.dims.size();
    const int64_t inner = rank ? bc.dims[rank - 1] : 1;
    const int64_t outer = inner ? bc.count / inner : 0;
    std::array<int64_t, N> step{};
    for (size_t k = 0; k < N; ++k) step[k] = rank ? bc.strides[k][rank - 1] : 0;
    parallel_for(options, outer,
                 std::max<int64_t>(1, kElementwiseChunk / std::max<int64_t>(inner, 1)),
                 [&](int64_t begin, int64_t end) {
                     BroadcastRows<N> rows(bc, begin);
                     for (int64_t row = begin; row < end; ++row, rows.next())
                         fn(row * inner, rows.base, step, inner);
                 });
}

// Gelu, exact (erf) and the tanh approximation (also com.microsoft FastGelu / BiasGelu).
template <typename C>
C gelu_exact(C x) {
    return static_cast<C>(0.5) * x *
           (static_cast<C>(1) + std::erf(x / std::sqrt(static_cast<C>(2))));
}
template <typename C>
C gelu_tanh(C x) {
    const C k = std::sqrt(static_cast<C>(2) / static_cast<C>(M_PI));
    return static_cast<C>(0.5) * x *
           (static_cast<C>(1) + std::tanh(k * (x + static_cast<C>(0.044715) * x * x * x)));
}

// float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz, e8m0) and float4e2m1: one byte or one nibble
// an element, converted through ir/dtype.h.
[[nodiscard]] inline bool is_small_float(DType dt) {
    return dt == DType::F8E4M3FN || dt == DType::F8E4M3FNUZ || dt == DType::F8E5M2 ||
           dt == DType::F8E5M2FNUZ || dt == DType::F8E8M0 || dt == DType::F4E2M1;
}
inline uint8_t load_small_float_bits(DType dt, const std::byte* p, int64_t i) {
    if (dt == DType::F4E2M1) return (static_cast<uint8_t>(p[i >> 1]) >> ((i & 1) * 4)) & 0xF;
    return static_cast<uint8_t>(p[i]);
}
// Read-modify-write of the shared byte for float4e2m1: callers write in index order.
inline void store_small_float_bits(DType dt, std::byte* p, int64_t i, uint8_t bits) {
    if (dt != DType::F4E2M1) {
        p[i] = static_cast<std::byte>(bits);
        return;
    }
    auto b = static_cast<uint8_t>(p[i >> 1]);
    int shift = static_cast<int>(i & 1) * 4;
    p[i >> 1] = static_cast<std::byte>((b & ~(0xF << shift)) | ((bits & 0xF) << shift));
}

// Reads element i of a float-family tensor (f32/f64/f16/bf16, float8, float4) as float.
inline float load_float(DType dt, const std::byte* p, int64_t i) {
    if (is_small_float(dt)) return small_float_to_float(dt, load_small_float_bits(dt, p, i));
    switch (dt) {
        case DType::F32: {
            float v;
            std::memcpy(&v, p + i * 4, 4);
            return v;
        }
        case DType::F64: {
            double v;
            std::memcpy(&v, p + i * 8, 8);
            return static_cast<float>(v);
        }
        case DType::F16: {
            uint16_t v;
            std::memcpy(&v, p + i * 2, 2);
            return half_to_float(v);
        }
        case DType::BF16: {
            uint16_t v;
            std::memcpy(&v, p + i * 2, 2);
            return bf16_to_float(v);
        }
        default:
            return 0.0f;
    }
}

inline void store_float(DType dt, std::byte* p, int64_t i, float v) {
    switch (dt) {
        case DType::F32:
            std::memcpy(p + i * 4, &v, 4);
            break;
        case DType::F64: {
            double d = v;
            std::memcpy(p + i * 8, &d, 8);
            break;
        }
        case DType::F16: {
            uint16_t h = float_to_half(v);
            std::memcpy(p + i * 2, &h, 2);
            break;
        }
        case DType::BF16: {
            uint16_t h = float_to_bf16(v);
            std::memcpy(p + i * 2, &h, 2);
            break;
        }
        default:
            break;
    }
}

[[nodiscard]] inline bool is_float(DType dt) {
    return dt == DType::F32 || dt == DType::F64 || dt == DType::F16 || dt == DType::BF16;
}

// The input as a float32 tensor (shares bytes when it already is one); fails naming the
// node when it is not a float type.
[[nodiscard]] inline Tensor as_f32(const OpContext& c, const Tensor& t) {
    if (t.dtype == DType::F32) return t;
    if (!is_float(t.dtype)) c.fail(cat("expected a float input, found ", dtype_name(t.dtype)));
    Tensor f = make_uninitialized_tensor(DType::F32, t.shape);
    auto out = f.mutable_values<float>();
    for (size_t i = 0; i < out.size(); ++i)
        out[i] = load_float(t.dtype, t.data.bytes().data(), static_cast<int64_t>(i));
    return f;
}

// A float32 tensor stored as `dt` (a float type).
[[nodiscard]] inline Tensor from_f32(Tensor f, DType dt) {
    if (dt == DType::F32) return f;
    Tensor t = make_uninitialized_tensor(dt, f.shape);
    auto in = f.values<float>();
    for (size_t i = 0; i < in.size(); ++i)
        store_float(dt, t.data.mutable_bytes().data(), static_cast<int64_t>(i), in[i]);
    return t;
}

}  // namespace ep::rt
