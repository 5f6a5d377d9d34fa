// Reductions, Softmax/LogSoftmax/Hardmax, normalization (BatchNormalization,
// LayerNormalization, InstanceNormalization), ArgMax/ArgMin, TopK, and If. Float
// reductions accumulate in double in a fixed order.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "runtime-check/kernels/simd.h"
#include "runtime-check/kernels/vec_math.h"
#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"

namespace ep::rt {
namespace {

// [outer, axis-extent, inner] geometry for a set of reduced axes (as a list of
// kept/reduced flags over the shape).
struct ReduceGeometry {
    std::vector<int64_t> out_shape;      // keepdims shape
    std::vector<int64_t> out_shape_nok;  // without the reduced dims
    std::vector<bool> reduced;
};

ReduceGeometry reduce_geometry(OpContext& c, const Tensor& x, std::vector<int64_t> axes,
                               bool noop_empty) {
    int64_t rank = static_cast<int64_t>(x.shape.size());
    ReduceGeometry g;
    g.reduced.assign(x.shape.size(), false);
    if (axes.empty() && !noop_empty) g.reduced.assign(x.shape.size(), true);
    for (int64_t a : axes) g.reduced[static_cast<size_t>(normalize_axis(c, a, rank))] = true;
    for (size_t d = 0; d < x.shape.size(); ++d) {
        g.out_shape.push_back(g.reduced[d] ? 1 : x.shape[d]);
        if (!g.reduced[d]) g.out_shape_nok.push_back(x.shape[d]);
    }
    return g;
}

enum class Reduce { Sum, Mean, Max, Min, Prod, SumSquare, L1, L2, LogSum, LogSumExp };

void reduce(OpContext& c, Reduce kind) {
    const Tensor& x = c.input(0);
    std::vector<int64_t> axes;
    bool axes_as_input = (c.opset >= 13 && c.node.op_type == "ReduceSum") || c.opset >= 18;
    if (axes_as_input) {
        if (c.has_input(1)) axes = read_ints(c, *c.inputs[1]);
    } else {
        axes = c.node.attr_ints("axes");
    }
    bool keepdims = c.node.attr_int("keepdims", 1) != 0;
    bool noop = c.node.attr_int("noop_with_empty_axes", 0) != 0;
    if (noop && axes.empty()) {
        c.outputs.push_back(x);
        return;
    }
    ReduceGeometry g = reduce_geometry(c, x, axes, false);
    Tensor y = make_uninitialized_tensor(x.dtype, keepdims ? g.out_shape : g.out_shape_nok);
    int64_t out_count = y.element_count();
    size_t rank = x.shape.size();
    // Output index -> base offset; reduced index space enumerated in row-major order.
    std::vector<int64_t> strides(rank, 1);
    for (size_t i = rank; i-- > 1;) strides[i - 1] = strides[i] * x.shape[i];
    std::vector<int64_t> red_dims, red_strides, keep_dims, keep_strides;
    for (size_t d = 0; d < rank; ++d) {
        (g.reduced[d] ? red_dims : keep_dims).push_back(x.shape[d]);
        (g.reduced[d] ? red_strides : keep_strides).push_back(strides[d]);
    }
    int64_t red_count = 1;
    for (int64_t d : red_dims) red_count *= d;
    bool float_io = is_float(x.dtype);
    // Fast path: float32 Sum/Mean over a contiguous suffix of the axes (e.g. the last axis
    // of a normalization). Same double sum in the same index order as the general loop.
    bool suffix = !red_dims.empty();
    for (size_t d = 0, seen = 0; d < rank; ++d) {
        if (g.reduced[d])
            seen = 1;
        else if (seen && x.shape[d] != 1)
            suffix = false;
    }
    if (suffix && x.dtype == DType::F32 && (kind == Reduce::Sum || kind == Reduce::Mean) &&
        red_count > 0) {
        const float* in = x.values<float>().data();
        float* out = y.mutable_values<float>().data();
        parallel_for(c.options, out_count, std::max<int64_t>(1, 16384 / red_count),
                     [&](int64_t o0, int64_t o1) {
                         for (int64_t o = o0; o < o1; ++o) {
                             const float* src = in + o * red_count;
                             double acc = 0;
                             for (int64_t r = 0; r < red_count; ++r) acc += src[r];
                             if (kind == Reduce::Mean) acc /= static_cast<double>(red_count);
                             out[o] = static_cast<float>(acc);
                         }
                     });
        c.outputs.push_back(std::move(y));
        return;
    }
    auto run = [&](auto load, auto store) {
        parallel_for(c.options, out_count, 64, [&](int64_t o0, int64_t o1) {
            std::vector<int64_t> ridx(red_dims.size());
            for (int64_t o = o0; o < o1; ++o) {
                int64_t base = 0, rem = o;
                for (size_t d = keep_dims.size(); d-- > 0;) {
                    base += (rem % keep_dims[d]) * keep_strides[d];
                    rem /= keep_dims[d];
                }
                double acc = kind == Reduce::Max    ? -std::numeric_limits<double>::infinity()
                             : kind == Reduce::Min  ? std::numeric_limits<double>::infinity()
                             : kind == Reduce::Prod ? 1.0
                                                    : 0.0;
                double maxv = -std::numeric_limits<double>::infinity();
                if (kind == Reduce::LogSumExp) {
                    std::fill(ridx.begin(), ridx.end(), 0);
                    for (int64_t r = 0; r < red_count; ++r) {
                        int64_t off = base;
                        for (size_t d = 0; d < ridx.size(); ++d) off += ridx[d] * red_strides[d];
                        maxv = std::max(maxv, load(off));
                        for (size_t d = ridx.size(); d-- > 0;) {
                            if (++ridx[d] < red_dims[d]) break;
                            ridx[d] = 0;
                        }
                    }
                    if (!std::isfinite(maxv)) maxv = 0;
                }
                std::fill(ridx.begin(), ridx.end(), 0);
                for (int64_t r = 0; r < red_count; ++r) {
                    int64_t off = base;
                    for (size_t d = 0; d < ridx.size(); ++d) off += ridx[d] * red_strides[d];
                    double v = load(off);
                    switch (kind) {
                        case Reduce::Sum:
                        case Reduce::Mean:
                        case Reduce::LogSum:
                            acc += v;
                            break;
                        case Reduce::Max:
                            acc = std::isnan(v) || v > acc ? v : acc;
                            break;
                        case Reduce::Min:
                            acc = std::isnan(v) || v < acc ? v : acc;
                            break;
                        case Reduce::Prod:
                            acc *= v;
                            break;
                        case Reduce::SumSquare:
                        case Reduce::L2:
                            acc += v * v;
                            break;
                        case Reduce::L1:
                            acc += std::abs(v);
                            break;
                        case Reduce::LogSumExp:
                            acc += std::exp(v - maxv);
                            break;
                    }
                    for (size_t d = ridx.size(); d-- > 0;) {
                        if (++ridx[d] < red_dims[d]) break;
                        ridx[d] = 0;
                    }
                }
                if (kind == Reduce::Mean)
                    acc = red_count ? acc / static_cast<double>(red_count) : std::nan("");
                if (kind == Reduce::L2) acc = std::sqrt(acc);
                if (kind == Reduce::LogSum) acc = std::log(acc);
                if (kind == Reduce::LogSumExp) acc = std::log(acc) + maxv;
                store(o, acc);
            }
        });
    };
    if (float_io) {
        const std::byte* in = x.data.bytes().data();
        std::byte* out = y.data.mutable_bytes().data();
        if (x.dtype == DType::F64)
            run([&](int64_t i) { return x.values<double>()[static_cast<size_t>(i)]; },
                [&](int64_t o, double v) { reinterpret_cast<double*>(out)[o] = v; });
        else
            run([&](int64_t i) { return static_cast<double>(load_float(x.dtype, in, i)); },
                [&](int64_t o, double v) { store_float(x.dtype, out, o, static_cast<float>(v)); });
    } else if (x.dtype == DType::Bool && (kind == Reduce::Max || kind == Reduce::Min)) {
        // ReduceMax / ReduceMin over bool (opset 20): any / all; an empty reduction gives
        // false / true.
        const uint8_t* in = x.values<uint8_t>().data();
        uint8_t* out = y.mutable_values<uint8_t>().data();
        run([&](int64_t i) { return in[i] ? 1.0 : 0.0; },
            [&](int64_t o, double v) { out[o] = v > 0.5 ? 1 : 0; });
    } else {
        dispatch_numeric(c, x.dtype, [&](auto tag) {
            using T = decltype(tag);
            const T* in = x.values<T>().data();
            T* out = y.mutable_values<T>().data();
            run([&](int64_t i) { return static_cast<double>(in[i]); },
                [&](int64_t o, double v) {
                    if (std::isinf(v))
                        v = v > 0 ? static_cast<double>(std::numeric_limits<T>::max())
                                  : static_cast<double>(std::numeric_limits<T>::lowest());
                    out[o] = static_cast<T>(v);
                });
        });
    }
    c.outputs.push_back(std::move(y));
}

void softmax(OpContext& c, bool log) {
    const Tensor& x = c.input(0);
    if (!is_float(x.dtype)) c.fail("expected a float input");
    int64_t rank = static_cast<int64_t>(x.shape.size());
    int64_t axis = normalize_axis(c, c.node.attr_int("axis", c.opset >= 13 ? -1 : 1), rank);
    // Opset < 13 coerces to 2-D at axis; opset >= 13 normalizes along one axis.
    int64_t outer = 1, n = 1, inner = 1;
    for (int64_t d = 0; d < rank; ++d) {
        int64_t dim = x.shape[static_cast<size_t>(d)];
        if (c.opset >= 13) {
            if (d < axis)
                outer *= dim;
            else if (d == axis)
                n = dim;
            else
                inner *= dim;
        } else {
            (d < axis ? outer : n) *= dim;
        }
    }
    Tensor y = make_uninitialized_tensor(x.dtype, x.shape);
    const std::byte* in = x.data.bytes().data();
    std::byte* out = y.data.mutable_bytes().data();
    if (x.dtype == DType::F32 && n > 0) {
        // Rows gathered into a buffer (in place when contiguous), exp vectorized, the sum
        // accumulated in double.
        const float* px = x.values<float>().data();
        float* py = y.mutable_values<float>().data();
        parallel_for(c.options, outer * inner, std::max<int64_t>(1, 8192 / std::max<int64_t>(n, 1)),
                     [&](int64_t r0, int64_t r1) {
                         std::vector<float> buf(static_cast<size_t>(inner == 1 ? 0 : n)),
                             e(static_cast<size_t>(log ? n : 0));
                         for (int64_t r = r0; r < r1; ++r) {
                             const int64_t o = r / inner, i = r % inner;
                             const int64_t base = o * n * inner + i;
                             if (inner == 1 && !log && simd_kernels().softmax_row) {
                                 simd_kernels().softmax_row(px + base, py + base,
                                                            n);  // contiguous row: no copy
                                 continue;
                             }
                             float* row = inner == 1 ? py + base : buf.data();
                             for (int64_t k = 0; k < n; ++k) row[k] = px[base + k * inner];
                             if (!log && simd_kernels().softmax_row) {
                                 simd_kernels().softmax_row(row, row, n);
                                 if (inner != 1)
                                     for (int64_t k = 0; k < n; ++k) py[base + k * inner] = row[k];
                                 continue;
                             }
                             // Four interleaved partial maxima / sums (element k in partial k % 4),
                             // combined in a fixed order: short dependency chains, same bits every
                             // run.
                             const float inf = std::numeric_limits<float>::infinity();
                             float m4[4] = {-inf, -inf, -inf, -inf};
                             int64_t k4 = 0;
                             for (; k4 + 4 <= n; k4 += 4)
                                 for (int j = 0; j < 4; ++j) m4[j] = std::max(m4[j], row[k4 + j]);
                             for (int j = 0; k4 + j < n; ++j) m4[j] = std::max(m4[j], row[k4 + j]);
                             const float m =
                                 std::max(std::max(m4[0], m4[1]), std::max(m4[2], m4[3]));
                             for (int64_t k = 0; k < n; ++k) row[k] -= m;
                             float* ex = log ? e.data() : row;
                             exp_f32(row, ex, n);
                             double s4[4] = {0, 0, 0, 0};
                             for (k4 = 0; k4 + 4 <= n; k4 += 4)
                                 for (int j = 0; j < 4; ++j) s4[j] += ex[k4 + j];
                             for (int j = 0; k4 + j < n; ++j) s4[j] += ex[k4 + j];
                             const double sum = (s4[0] + s4[1]) + (s4[2] + s4[3]);
                             if (log) {
                                 const float ls = static_cast<float>(std::log(sum));
                                 for (int64_t k = 0; k < n; ++k) row[k] -= ls;
                             } else {
                                 const float inv = static_cast<float>(1.0 / sum);
                                 for (int64_t k = 0; k < n; ++k) row[k] *= inv;
                             }
                             if (inner != 1)
                                 for (int64_t k = 0; k < n; ++k) py[base + k * inner] = row[k];
                         }
                     });
        c.outputs.push_back(std::move(y));
        return;
    }
    parallel_for(c.options, outer * inner, 16, [&](int64_t r0, int64_t r1) {
        std::vector<float> buf(static_cast<size_t>(n));
        for (int64_t r = r0; r < r1; ++r) {
            int64_t o = r / inner, i = r % inner;
            int64_t base = o * n * inner + i;
            float m = -std::numeric_limits<float>::infinity();
            for (int64_t k = 0; k < n; ++k) {
                buf[static_cast<size_t>(k)] = load_float(x.dtype, in, base + k * inner);
                m = std::max(m, buf[static_cast<size_t>(k)]);
            }
            double sum = 0;
            for (int64_t k = 0; k < n; ++k)
                sum += std::exp(static_cast<double>(buf[static_cast<size_t>(k)] - m));
            for (int64_t k = 0; k < n; ++k) {
                double v = buf[static_cast<size_t>(k)] - m;
                float r_v = log ? static_cast<float>(v - std::log(sum))
                                : static_cast<float>(std::exp(v) / sum);
                store_float(x.dtype, out, base + k * inner, r_v);
            }
        }
    });
    c.outputs.push_back(std::move(y));
}

void arg_reduce(OpContext& c, bool is_max) {
    const Tensor& x = c.input(0);
    int64_t rank = static_cast<int64_t>(x.shape.size());
    int64_t axis = normalize_axis(c, c.node.attr_int("axis", 0), rank);
    bool keepdims = c.node.attr_int("keepdims", 1) != 0;
    bool last = c.node.attr_int("select_last_index", 0) != 0;
    int64_t outer = 1, n = x.shape[static_cast<size_t>(axis)], inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x.shape[static_cast<size_t>(d)];
    for (int64_t d = axis + 1; d < rank; ++d) inner *= x.shape[static_cast<size_t>(d)];
    std::vector<int64_t> shape = x.shape;
    if (keepdims)
        shape[static_cast<size_t>(axis)] = 1;
    else
        shape.erase(shape.begin() + axis);
    Tensor y = make_tensor(DType::I64, shape);
    auto yo = y.mutable_values<int64_t>();
    auto run = [&](auto load) {
        for (int64_t o = 0; o < outer; ++o)
            for (int64_t i = 0; i < inner; ++i) {
                int64_t best = 0;
                double bv = load(o * n * inner + i);
                for (int64_t k = 1; k < n; ++k) {
                    double v = load((o * n + k) * inner + i);
                    bool better = is_max ? (last ? v >= bv : v > bv) : (last ? v <= bv : v < bv);
                    if (better) {
                        bv = v;
                        best = k;
                    }
                }
                yo[static_cast<size_t>(o * inner + i)] = best;
            }
    };
    if (is_float(x.dtype))
        run([&](int64_t i) {
            return static_cast<double>(load_float(x.dtype, x.data.bytes().data(), i));
        });
    else
        dispatch_numeric(c, x.dtype, [&](auto tag) {
            run([&](int64_t i) {
                return static_cast<double>(x.values<decltype(tag)>()[static_cast<size_t>(i)]);
            });
        });
    c.outputs.push_back(std::move(y));
}

}  // namespace

void op_reduce_sum(OpContext& c) {
    reduce(c, Reduce::Sum);
}
void op_reduce_mean(OpContext& c) {
    reduce(c, Reduce::Mean);
}
void op_reduce_max(OpContext& c) {
    reduce(c, Reduce::Max);
}
void op_reduce_min(OpContext& c) {
    reduce(c, Reduce::Min);
}
void op_reduce_prod(OpContext& c) {
    reduce(c, Reduce::Prod);
}
void op_reduce_sum_square(OpContext& c) {
    reduce(c, Reduce::SumSquare);
}
void op_reduce_l1(OpContext& c) {
    reduce(c, Reduce::L1);
}
void op_reduce_l2(OpContext& c) {
    reduce(c, Reduce::L2);
}
void op_reduce_log_sum(OpContext& c) {
    reduce(c, Reduce::LogSum);
}
void op_reduce_log_sum_exp(OpContext& c) {
    reduce(c, Reduce::LogSumExp);
}
void op_softmax(OpContext& c) {
    softmax(c, false);
}
void op_log_softmax(OpContext& c) {
    softmax(c, true);
}
void op_arg_max(OpContext& c) {
    arg_reduce(c, true);
}
void op_arg_min(OpContext& c) {
    arg_reduce(c, false);
}

void op_hardmax(OpContext& c) {
    const Tensor& x = c.input(0);
    if (!is_float(x.dtype)) c.fail("expected a float input");
    int64_t rank = static_cast<int64_t>(x.shape.size());
    int64_t axis = normalize_axis(c, c.node.attr_int("axis", c.opset >= 13 ? -1 : 1), rank);
    int64_t outer = 1, n = 1, inner = 1;
    for (int64_t d = 0; d < rank; ++d) {
        int64_t dim = x.shape[static_cast<size_t>(d)];
        if (c.opset >= 13)
            (d < axis ? outer : d == axis ? n : inner) *= dim;
        else
            (d < axis ? outer : n) *= dim;
    }
    Tensor y = make_tensor(x.dtype, x.shape);
    const std::byte* in = x.data.bytes().data();
    std::byte* out = y.data.mutable_bytes().data();
    for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < inner; ++i) {
            int64_t best = 0;
            float bv = -std::numeric_limits<float>::infinity();
            for (int64_t k = 0; k < n; ++k) {
                float v = load_float(x.dtype, in, (o * n + k) * inner + i);
                if (v > bv) {
                    bv = v;
                    best = k;
                }
            }
            store_float(x.dtype, out, (o * n + best) * inner + i, 1.0f);
        }
    c.outputs.push_back(std::move(y));
}

void op_batch_normalization(OpContext& c) {
    const Tensor& x = c.input(0);
    if (!is_float(x.dtype)) c.fail("expected a float input");
    if (x.shape.size() < 2) c.fail("expects X [N, C, ...]");
    int64_t n = x.shape[0], ch = x.shape[1],
            pixels = x.element_count() / std::max<int64_t>(n * ch, 1);
    auto scale = c.input(1).to_floats(), bias = c.input(2).to_floats();
    auto mean = c.input(3).to_floats(), var = c.input(4).to_floats();
    for (auto* v : {&scale, &bias, &mean, &var})
        if (static_cast<int64_t>(v->size()) != ch)
            c.fail(cat("scale/B/mean/var must have ", ch, " elements"));
    double eps = c.node.attr_float("epsilon", 1e-5f);
    Tensor y = make_uninitialized_tensor(x.dtype, x.shape);
    const std::byte* in = x.data.bytes().data();
    std::byte* out = y.data.mutable_bytes().data();
    bool training = c.opset >= 14 && c.node.attr_int("training_mode", 0) != 0;
    if (training) {
        // Normalize with this batch's statistics (population variance) and return the
        // updated running statistics: running = input_running * momentum + batch * (1 - momentum).
        double momentum = c.node.attr_float("momentum", 0.9f);
        Tensor run_mean = make_tensor(DType::F32, {ch}), run_var = make_tensor(DType::F32, {ch});
        const std::vector<float> in_mean = mean, in_var = var;
        for (int64_t k = 0; k < ch; ++k) {
            double sum = 0, sq = 0, count = static_cast<double>(n * pixels);
            for (int64_t b = 0; b < n; ++b)
                for (int64_t i = 0; i < pixels; ++i)
                    sum += load_float(x.dtype, in, (b * ch + k) * pixels + i);
            double m = sum / count;
            for (int64_t b = 0; b < n; ++b)
                for (int64_t i = 0; i < pixels; ++i) {
                    double d = load_float(x.dtype, in, (b * ch + k) * pixels + i) - m;
                    sq += d * d;
                }
            double v = sq / count;
            auto kk = static_cast<size_t>(k);
            mean[kk] = static_cast<float>(m);
            var[kk] = static_cast<float>(v);
            run_mean.mutable_values<float>()[kk] =
                static_cast<float>(in_mean[kk] * momentum + m * (1 - momentum));
            run_var.mutable_values<float>()[kk] =
                static_cast<float>(in_var[kk] * momentum + v * (1 - momentum));
        }
        for (int64_t p = 0; p < n * ch; ++p) {
            size_t k = static_cast<size_t>(p % ch);
            double inv = 1.0 / std::sqrt(static_cast<double>(var[k]) + eps);
            for (int64_t i = 0; i < pixels; ++i) {
                int64_t idx = p * pixels + i;
                store_float(
                    x.dtype, out, idx,
                    static_cast<float>((load_float(x.dtype, in, idx) - mean[k]) * inv * scale[k] +
                                       bias[k]));
            }
        }
        c.outputs.push_back(std::move(y));
        c.outputs.push_back(std::move(run_mean));
        c.outputs.push_back(std::move(run_var));
        return;
    }
    const bool f32 = x.dtype == DType::F32;
    parallel_for(
        c.options, n * ch, std::max<int64_t>(1, kElementwiseChunk / std::max<int64_t>(pixels, 1)),
        [&](int64_t p0, int64_t p1) {
            for (int64_t p = p0; p < p1; ++p) {
                size_t k = static_cast<size_t>(p % ch);
                float s =
                    static_cast<float>(scale[k] / std::sqrt(static_cast<double>(var[k]) + eps));
                float b = bias[k] - mean[k] * s;
                if (f32) {
                    const float* src = reinterpret_cast<const float*>(in) + p * pixels;
                    float* dst = reinterpret_cast<float*>(out) + p * pixels;
                    for (int64_t i = 0; i < pixels; ++i) dst[i] = src[i] * s + b;
                    continue;
                }
                for (int64_t i = 0; i < pixels; ++i) {
                    int64_t idx = p * pixels + i;
                    store_float(x.dtype, out, idx, load_float(x.dtype, in, idx) * s + b);
                }
            }
        });
    c.outputs.push_back(std::move(y));
}

void op_layer_normalization(OpContext& c) {
    const Tensor& x = c.input(0);
    if (!is_float(x.dtype)) c.fail("expected a float input");
    int64_t rank = static_cast<int64_t>(x.shape.size());
    int64_t axis = normalize_axis(c, c.node.attr_int("axis", -1), rank);
    double eps = c.node.attr_float("epsilon", 1e-5f);
    int64_t outer = 1, n = 1;
    for (int64_t d = 0; d < rank; ++d) (d < axis ? outer : n) *= x.shape[static_cast<size_t>(d)];
    std::vector<float> scale = c.input(1).to_floats();
    std::vector<float> bias = c.has_input(2) ? c.inputs[2]->to_floats() : std::vector<float>();
    auto expand = [&](std::vector<float>& v, const char* what) {
        if (v.empty()) return;
        if (static_cast<int64_t>(v.size()) == n) return;
        if (v.size() == 1) {
            v.assign(static_cast<size_t>(n), v[0]);
            return;
        }
        c.fail(cat(what, " has ", v.size(), " elements, expected ", n));
    };
    expand(scale, "scale");
    expand(bias, "B");
    Tensor y = make_uninitialized_tensor(x.dtype, x.shape);
    Tensor mean_t = make_uninitialized_tensor(DType::F32, {outer}),
           inv_t = make_uninitialized_tensor(DType::F32, {outer});
    const std::byte* in = x.data.bytes().data();
    std::byte* out = y.data.mutable_bytes().data();
    float* pm = mean_t.mutable_values<float>().data();
    float* pi = inv_t.mutable_values<float>().data();
    parallel_for(c.options, outer, 4, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            double sum = 0, sq = 0;
            for (int64_t k = 0; k < n; ++k) sum += load_float(x.dtype, in, r * n + k);
            double mean = sum / static_cast<double>(n);
            for (int64_t k = 0; k < n; ++k) {
                double d = load_float(x.dtype, in, r * n + k) - mean;
                sq += d * d;
            }
            double inv = 1.0 / std::sqrt(sq / static_cast<double>(n) + eps);
            pm[r] = static_cast<float>(mean);
            pi[r] = static_cast<float>(inv);
            for (int64_t k = 0; k < n; ++k) {
                double v = (load_float(x.dtype, in, r * n + k) - mean) * inv *
                           scale[static_cast<size_t>(k)];
                if (!bias.empty()) v += bias[static_cast<size_t>(k)];
                store_float(x.dtype, out, r * n + k, static_cast<float>(v));
            }
        }
    });
    c.outputs.push_back(std::move(y));
    std::vector<int64_t> stat_shape = x.shape;
    for (int64_t d = axis; d < rank; ++d) stat_shape[static_cast<size_t>(d)] = 1;
    mean_t.shape = stat_shape;
    inv_t.shape = stat_shape;
    // Mean and InvStdDev are optional outputs: emit only those the node names.
    if (c.node.outputs.size() > 1) c.outputs.push_back(std::move(mean_t));
    if (c.node.outputs.size() > 2) c.outputs.push_back(std::move(inv_t));
}

void op_instance_normalization(OpContext& c) {
    const Tensor& x = c.input(0);
    if (!is_float(x.dtype) || x.shape.size() < 3) c.fail("expects float X [N, C, ...]");
    auto scale = c.input(1).to_floats(), bias = c.input(2).to_floats();
    int64_t n = x.shape[0], ch = x.shape[1],
            pixels = x.element_count() / std::max<int64_t>(n * ch, 1);
    if (static_cast<int64_t>(scale.size()) != ch || static_cast<int64_t>(bias.size()) != ch)
        c.fail("scale and B must have C elements");
    double eps = c.node.attr_float("epsilon", 1e-5f);
    Tensor y = make_tensor(x.dtype, x.shape);
    const std::byte* in = x.data.bytes().data();
    std::byte* out = y.data.mutable_bytes().data();
    parallel_for(c.options, n * ch, 1, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
            double sum = 0, sq = 0;
            for (int64_t i = 0; i < pixels; ++i) sum += load_float(x.dtype, in, p * pixels + i);
            double mean = sum / static_cast<double>(pixels);
            for (int64_t i = 0; i < pixels; ++i) {
                double d = load_float(x.dtype, in, p * pixels + i) - mean;
                sq += d * d;
            }
            double inv = 1.0 / std::sqrt(sq / static_cast<double>(pixels) + eps);
            size_t k = static_cast<size_t>(p % ch);
            for (int64_t i = 0; i < pixels; ++i)
                store_float(x.dtype, out, p * pixels + i,
                            static_cast<float>((load_float(x.dtype, in, p * pixels + i) - mean) *
                                                   inv * scale[k] +
                                               bias[k]));
        }
    });
    c.outputs.push_back(std::move(y));
}

void op_top_k(OpContext& c) {
    const Tensor& x = c.input(0);
    int64_t rank = static_cast<int64_t>(x.shape.size());
    int64_t axis = normalize_axis(c, c.node.attr_int("axis", -1), rank);
    int64_t k = c.opset >= 10 ? read_ints(c, c.input(1)).at(0) : c.node.attr_int("k", 1);
    bool largest = c.node.attr_int("largest", 1) != 0;
    int64_t n = x.shape[static_cast<size_t>(axis)];
    if (k < 0 || k > n) c.fail(cat("k = ", k, " is out of range for dimension ", n));
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x.shape[static_cast<size_t>(d)];
    for (int64_t d = axis + 1; d < rank; ++d) inner *= x.shape[static_cast<size_t>(d)];
    std::vector<int64_t> shape = x.shape;
    shape[static_cast<size_t>(axis)] = k;
    Tensor values = make_tensor(x.dtype, shape), indices = make_tensor(DType::I64, shape);
    size_t w = static_cast<size_t>(traits(x.dtype).bits / 8);
    auto run = [&](auto load) {
        std::vector<int64_t> order(static_cast<size_t>(n));
        for (int64_t o = 0; o < outer; ++o)
            for (int64_t i = 0; i < inner; ++i) {
                std::iota(order.begin(), order.end(), 0);
                auto val = [&](int64_t j) { return load((o * n + j) * inner + i); };
                std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
                    double va = val(a), vb = val(b);
                    return largest ? va > vb : va < vb;
                });
                for (int64_t j = 0; j < k; ++j) {
                    int64_t src = (o * n + order[static_cast<size_t>(j)]) * inner + i;
                    int64_t dst = (o * k + j) * inner + i;
                    std::memcpy(values.data.mutable_bytes().data() + static_cast<size_t>(dst) * w,
                                x.data.bytes().data() + static_cast<size_t>(src) * w, w);
                    indices.mutable_values<int64_t>()[static_cast<size_t>(dst)] =
                        order[static_cast<size_t>(j)];
                }
            }
    };
    if (is_float(x.dtype))
        run([&](int64_t i) {
            return static_cast<double>(load_float(x.dtype, x.data.bytes().data(), i));
        });
    else
        dispatch_numeric(c, x.dtype, [&](auto tag) {
            run([&](int64_t i) {
                return static_cast<double>(x.values<decltype(tag)>()[static_cast<size_t>(i)]);
            });
        });
    c.outputs.push_back(std::move(values));
    c.outputs.push_back(std::move(indices));
}

void op_if(OpContext& c) {
    const Tensor& cond = c.input(0);
    if (cond.element_count() != 1) c.fail("condition must have one element");
    bool take = read_scalar(c, cond) != 0.0;
    const Attribute* branch = c.node.attr(take ? "then_branch" : "else_branch");
    if (!branch || branch->graphs.empty())
        c.fail(cat("has no ", take ? "then_branch" : "else_branch"));
    if (!c.run_subgraph) c.fail("subgraphs cannot run here");
    auto outs = (*c.run_subgraph)(branch->graphs[0], {});
    for (auto& t : outs) c.outputs.push_back(std::move(t));
}

}  // namespace ep::rt
