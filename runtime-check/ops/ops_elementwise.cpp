// Elementwise operators: unary math, binary arithmetic with numpy broadcasting,
// comparisons, logic, Where, Clip, Cast. Float16/bfloat16 compute in float, round on store.
#include <algorithm>
#include <array>
#include <limits>

#include "runtime-check/kernels/vec_math.h"
#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"

namespace ep::rt {

Broadcast make_broadcast(const OpContext& ctx, std::span<const Tensor* const> inputs) {
    Broadcast bc;
    for (const Tensor* t : inputs) bc.shape = broadcast_shapes(ctx, bc.shape, t->shape);
    bc.count = 1;
    for (int64_t d : bc.shape) bc.count *= d;
    std::vector<std::vector<int64_t>> full;
    for (const Tensor* t : inputs) full.push_back(broadcast_strides(t->shape, bc.shape));
    // Collapse adjacent dims where every input is contiguous across the pair (or all-broadcast).
    size_t rank = bc.shape.size();
    bc.strides.assign(inputs.size(), {});
    for (size_t d = 0; d < rank; ++d) {
        if (bc.shape[d] == 1) continue;
        bool merge = !bc.dims.empty();
        for (size_t k = 0; merge && k < inputs.size(); ++k) {
            int64_t prev = bc.strides[k].back();
            int64_t cur = full[k][d];
            merge = (prev == 0 && cur == 0) || (cur != 0 && prev == cur * bc.shape[d]);
        }
        if (merge) {
            bc.dims.back() *= bc.shape[d];
            for (size_t k = 0; k < inputs.size(); ++k) bc.strides[k].back() = full[k][d];
        } else {
            bc.dims.push_back(bc.shape[d]);
            for (size_t k = 0; k < inputs.size(); ++k) bc.strides[k].push_back(full[k][d]);
        }
    }
    return bc;
}

namespace {

template <typename F>
void unary_float(OpContext& ctx, F f) {
    const Tensor& x = ctx.input(0);
    if (!is_float(x.dtype)) ctx.fail(cat("expected a float input, found ", dtype_name(x.dtype)));
    Tensor y = make_uninitialized_tensor(x.dtype, x.shape);
    int64_t n = x.element_count();
    const std::byte* in = x.data.bytes().data();
    std::byte* out = y.data.mutable_bytes().data();
    parallel_for(ctx.options, n, kElementwiseChunk, [&](int64_t b, int64_t e) {
        if (x.dtype == DType::F32) {
            auto* xi = reinterpret_cast<const float*>(in);
            auto* yo = reinterpret_cast<float*>(out);
            for (int64_t i = b; i < e; ++i) yo[i] = f(xi[i]);
        } else if (x.dtype == DType::F64) {
            auto* xi = reinterpret_cast<const double*>(in);
            auto* yo = reinterpret_cast<double*>(out);
            for (int64_t i = b; i < e; ++i) yo[i] = f(xi[i]);
        } else {
            for (int64_t i = b; i < e; ++i)
                store_float(x.dtype, out, i, f(load_float(x.dtype, in, i)));
        }
    });
    ctx.outputs.push_back(std::move(y));
}

// Signed numeric unary ops (Abs, Neg, Sign) over every numeric dtype.
template <typename F>
void unary_numeric(OpContext& ctx, F f) {
    const Tensor& x = ctx.input(0);
    if (is_float(x.dtype)) return unary_float(ctx, f);
    Tensor y = make_uninitialized_tensor(x.dtype, x.shape);
    dispatch_numeric(ctx, x.dtype, [&](auto tag) {
        using T = decltype(tag);
        auto xi = x.values<T>();
        auto yo = y.mutable_values<T>();
        for (size_t i = 0; i < xi.size(); ++i) yo[i] = static_cast<T>(f(xi[i]));
    });
    ctx.outputs.push_back(std::move(y));
}

template <typename C>
C erf_of(C x) {
    return std::erf(x);
}

// Binary arithmetic with broadcasting; f(a, b) on the compute type.
template <typename F>
void binary_arith(OpContext& ctx, F f) {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    if (a.dtype != b.dtype && ctx.node.op_type != "Pow")
        ctx.fail(cat("input dtypes differ: ", dtype_name(a.dtype), " and ", dtype_name(b.dtype)));
    if (a.dtype == DType::F32 && b.dtype == DType::F32) {
        // Common float32 cases without the broadcast machinery: equal shapes, or one side
        // a single element of no higher rank than the other.
        const bool same = a.shape == b.shape;
        const bool b_scalar = !same && b.element_count() == 1 && b.shape.size() <= a.shape.size();
        const bool a_scalar =
            !same && !b_scalar && a.element_count() == 1 && a.shape.size() <= b.shape.size();
        if (same || a_scalar || b_scalar) {
            Tensor y = make_uninitialized_tensor(DType::F32, a_scalar ? b.shape : a.shape);
            const float* xa = a.values<float>().data();
            const float* xb = b.values<float>().data();
            float* yo = y.mutable_values<float>().data();
            parallel_for(ctx.options, y.element_count(), kElementwiseChunk,
                         [&](int64_t i0, int64_t i1) {
                             if (same) {
                                 for (int64_t i = i0; i < i1; ++i) yo[i] = f(xa[i], xb[i]);
                             } else if (b_scalar) {
                                 const float vb = xb[0];
                                 for (int64_t i = i0; i < i1; ++i) yo[i] = f(xa[i], vb);
                             } else {
                                 const float va = xa[0];
                                 for (int64_t i = i0; i < i1; ++i) yo[i] = f(va, xb[i]);
                             }
                         });
            ctx.outputs.push_back(std::move(y));
            return;
        }
    }
    std::array<const Tensor*, 2> ins{&a, &b};
    Broadcast bc = make_broadcast(ctx, ins);
    Tensor y = make_uninitialized_tensor(a.dtype, bc.shape);
    if (is_float(a.dtype) && (a.dtype == b.dtype || is_float(b.dtype))) {
        const std::byte* pa = a.data.bytes().data();
        const std::byte* pb = b.data.bytes().data();
        std::byte* py = y.data.mutable_bytes().data();
        if (a.dtype == DType::F32 && b.dtype == DType::F32) {
            auto* xa = reinterpret_cast<const float*>(pa);
            auto* xb = reinterpret_cast<const float*>(pb);
            auto* yo = reinterpret_cast<float*>(py);
            // Row loops specialised on the steps (1 or 0) so that they vectorize.
            for_each_broadcast_row<2>(ctx.options, bc,
                                      [&](int64_t o, const std::array<int64_t, 2>& off,
                                          const std::array<int64_t, 2>& step, int64_t n) {
                                          const float* ra = xa + off[0];
                                          const float* rb = xb + off[1];
                                          float* ry = yo + o;
                                          if (step[0] == 1 && step[1] == 1) {
                                              for (int64_t j = 0; j < n; ++j)
                                                  ry[j] = f(ra[j], rb[j]);
                                          } else if (step[0] == 1 && step[1] == 0) {
                                              const float vb = *rb;
                                              for (int64_t j = 0; j < n; ++j) ry[j] = f(ra[j], vb);
                                          } else if (step[0] == 0 && step[1] == 1) {
                                              const float va = *ra;
                                              for (int64_t j = 0; j < n; ++j) ry[j] = f(va, rb[j]);
                                          } else {
                                              for (int64_t j = 0; j < n; ++j)
                                                  ry[j] = f(ra[j * step[0]], rb[j * step[1]]);
                                          }
                                      });
        } else if (a.dtype == DType::F64 && b.dtype == DType::F64) {
            auto* xa = reinterpret_cast<const double*>(pa);
            auto* xb = reinterpret_cast<const double*>(pb);
            auto* yo = reinterpret_cast<double*>(py);
            for_each_broadcast<2>(ctx.options, bc,
                                  [&](int64_t o, const std::array<int64_t, 2>& off) {
                                      yo[o] = f(xa[off[0]], xb[off[1]]);
                                  });
        } else {
            for_each_broadcast<2>(
                ctx.options, bc, [&](int64_t o, const std::array<int64_t, 2>& off) {
                    store_float(
                        a.dtype, py, o,
                        f(load_float(a.dtype, pa, off[0]), load_float(b.dtype, pb, off[1])));
                });
        }
    } else if (a.dtype == b.dtype) {
        dispatch_numeric(ctx, a.dtype, [&](auto tag) {
            using T = decltype(tag);
            const T* xa = a.values<T>().data();
            const T* xb = b.values<T>().data();
            T* yo = y.mutable_values<T>().data();
            for_each_broadcast<2>(ctx.options, bc,
                                  [&](int64_t o, const std::array<int64_t, 2>& off) {
                                      yo[o] = static_cast<T>(f(xa[off[0]], xb[off[1]]));
                                  });
        });
    } else {
        // Pow with mixed types: compute in double.
        Tensor af = a, bf = b;
        std::vector<double> va(static_cast<size_t>(a.element_count())),
            vb(static_cast<size_t>(b.element_count()));
        auto load = [&](const Tensor& t, std::vector<double>& v) {
            if (is_float(t.dtype)) {
                for (size_t i = 0; i < v.size(); ++i)
                    v[i] = load_float(t.dtype, t.data.bytes().data(), static_cast<int64_t>(i));
            } else {
                dispatch_numeric(ctx, t.dtype, [&](auto tag) {
                    using T = decltype(tag);
                    auto s = t.values<T>();
                    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(s[i]);
                });
            }
        };
        load(a, va);
        load(b, vb);
        std::byte* py = y.data.mutable_bytes().data();
        for_each_broadcast<2>(ctx.options, bc, [&](int64_t o, const std::array<int64_t, 2>& off) {
            double r = f(va[static_cast<size_t>(off[0])], vb[static_cast<size_t>(off[1])]);
            if (is_float(a.dtype))
                store_float(a.dtype, py, o, static_cast<float>(r));
            else
                dispatch_numeric(ctx, a.dtype, [&](auto tag) {
                    using T = decltype(tag);
                    reinterpret_cast<T*>(py)[o] = static_cast<T>(r);
                });
        });
    }
    ctx.outputs.push_back(std::move(y));
}

template <typename F>
void compare(OpContext& ctx, F f) {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    if (a.dtype != b.dtype)
        ctx.fail(cat("input dtypes differ: ", dtype_name(a.dtype), " and ", dtype_name(b.dtype)));
    std::array<const Tensor*, 2> ins{&a, &b};
    Broadcast bc = make_broadcast(ctx, ins);
    Tensor y = make_tensor(DType::Bool, bc.shape);
    uint8_t* yo = y.mutable_values<uint8_t>().data();
    if (is_float(a.dtype)) {
        const std::byte* pa = a.data.bytes().data();
        const std::byte* pb = b.data.bytes().data();
        for_each_broadcast<2>(ctx.options, bc, [&](int64_t o, const std::array<int64_t, 2>& off) {
            if (a.dtype == DType::F64) {
                yo[o] = f(a.values<double>()[static_cast<size_t>(off[0])],
                          b.values<double>()[static_cast<size_t>(off[1])]);
            } else {
                yo[o] = f(load_float(a.dtype, pa, off[0]), load_float(b.dtype, pb, off[1]));
            }
        });
    } else if (a.dtype == DType::Bool) {
        const uint8_t* xa = a.values<uint8_t>().data();
        const uint8_t* xb = b.values<uint8_t>().data();
        for_each_broadcast<2>(ctx.options, bc, [&](int64_t o, const std::array<int64_t, 2>& off) {
            yo[o] = f(xa[off[0]] != 0, xb[off[1]] != 0);
        });
    } else if (a.dtype == DType::String) {
        for_each_broadcast<2>(ctx.options, bc, [&](int64_t o, const std::array<int64_t, 2>& off) {
            yo[o] =
                f(a.strings[static_cast<size_t>(off[0])], b.strings[static_cast<size_t>(off[1])]);
        });
    } else {
        dispatch_numeric(ctx, a.dtype, [&](auto tag) {
            using T = decltype(tag);
            const T* xa = a.values<T>().data();
            const T* xb = b.values<T>().data();
            for_each_broadcast<2>(ctx.options, bc,
                                  [&](int64_t o, const std::array<int64_t, 2>& off) {
                                      yo[o] = f(xa[off[0]], xb[off[1]]);
                                  });
        });
    }
    ctx.outputs.push_back(std::move(y));
}

template <typename F>
void logical(OpContext& ctx, F f) {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    if (a.dtype != DType::Bool || b.dtype != DType::Bool) ctx.fail("expected bool inputs");
    std::array<const Tensor*, 2> ins{&a, &b};
    Broadcast bc = make_broadcast(ctx, ins);
    Tensor y = make_tensor(DType::Bool, bc.shape);
    uint8_t* yo = y.mutable_values<uint8_t>().data();
    const uint8_t* xa = a.values<uint8_t>().data();
    const uint8_t* xb = b.values<uint8_t>().data();
    for_each_broadcast<2>(ctx.options, bc, [&](int64_t o, const std::array<int64_t, 2>& off) {
        yo[o] = f(xa[off[0]] != 0, xb[off[1]] != 0);
    });
    ctx.outputs.push_back(std::move(y));
}

// Variadic Min/Max/Sum/Mean: fold pairwise with broadcasting.
template <typename F>
void variadic(OpContext& ctx, F f, bool mean = false) {
    if (ctx.input_count() == 0) ctx.fail("expected at least one input");
    Tensor acc = ctx.input(0);
    for (size_t i = 1; i < ctx.input_count(); ++i) {
        OpContext pair{ctx.node, {&acc, &ctx.input(i)}, {}, ctx.options, ctx.opset, nullptr};
        binary_arith(pair, f);
        acc = std::move(pair.outputs[0]);
    }
    if (mean && ctx.input_count() > 1) {
        double n = static_cast<double>(ctx.input_count());
        OpContext one{ctx.node, {&acc}, {}, ctx.options, ctx.opset, nullptr};
        unary_float(one, [n](auto x) { return static_cast<decltype(x)>(x / n); });
        acc = std::move(one.outputs[0]);
    }
    if (ctx.input_count() == 1) {
        Tensor copy = make_tensor(acc.dtype, acc.shape);
        if (acc.dtype != DType::String)
            std::copy(acc.data.bytes().begin(), acc.data.bytes().end(),
                      copy.data.mutable_bytes().begin());
        acc = std::move(copy);
    }
    ctx.outputs.push_back(std::move(acc));
}

}  // namespace

void op_abs(OpContext& c) {
    unary_numeric(c, [](auto x) { return x < 0 ? -x : x; });
}
void op_neg(OpContext& c) {
    unary_numeric(c, [](auto x) { return -x; });
}
void op_sign(OpContext& c) {
    unary_numeric(c, [](auto x) { return static_cast<decltype(x)>((x > 0) - (x < 0)); });
}
void op_sqrt(OpContext& c) {
    unary_float(c, [](auto x) { return std::sqrt(x); });
}
void op_reciprocal(OpContext& c) {
    unary_float(c, [](auto x) { return static_cast<decltype(x)>(1) / x; });
}
void op_exp(OpContext& c) {
    unary_float(c, [](auto x) { return std::exp(x); });
}
void op_log(OpContext& c) {
    unary_float(c, [](auto x) { return std::log(x); });
}
void op_erf(OpContext& c) {
    unary_float(c, [](auto x) { return std::erf(x); });
}
void op_tanh(OpContext& c) {
    unary_float(c, [](auto x) { return std::tanh(x); });
}
void op_floor(OpContext& c) {
    unary_float(c, [](auto x) { return std::floor(x); });
}
void op_ceil(OpContext& c) {
    unary_float(c, [](auto x) { return std::ceil(x); });
}
void op_round(OpContext& c) {
    unary_float(c, [](auto x) { return std::nearbyint(x); });
}
void op_sin(OpContext& c) {
    unary_float(c, [](auto x) { return std::sin(x); });
}
void op_cos(OpContext& c) {
    unary_float(c, [](auto x) { return std::cos(x); });
}
void op_sigmoid(OpContext& c) {
    const Tensor& x = c.input(0);
    if (x.dtype == DType::F32) {
        Tensor y = make_uninitialized_tensor(x.dtype, x.shape);
        const float* in = x.values<float>().data();
        float* out = y.mutable_values<float>().data();
        parallel_for(c.options, x.element_count(), 16384,
                     [&](int64_t b, int64_t e) { sigmoid_f32(in + b, out + b, e - b); });
        c.outputs.push_back(std::move(y));
        return;
    }
    unary_float(c, [](auto x) {
        using C = decltype(x);
        return x >= 0 ? static_cast<C>(1) / (static_cast<C>(1) + std::exp(-x))
                      : std::exp(x) / (static_cast<C>(1) + std::exp(x));
    });
}
void op_relu(OpContext& c) {
    unary_numeric(c, [](auto x) { return x > 0 ? x : static_cast<decltype(x)>(0); });
}
void relu_f32_in_place(const ExecOptions& options, float* x, int64_t n) {
    parallel_for(options, n, kElementwiseChunk, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) x[i] = x[i] > 0 ? x[i] : 0.0f;
    });
}
void op_leaky_relu(OpContext& c) {
    float alpha = c.node.attr_float("alpha", 0.01f);
    // Both sides, then a select: vectorizes (a multiply on the negative elements only would
    // not, under -ftrapping-math); the same bits.
    unary_float(c, [alpha](auto x) {
        const auto scaled = static_cast<decltype(x)>(alpha) * x;
        return x >= 0 ? x : scaled;
    });
}
void op_elu(OpContext& c) {
    float alpha = c.node.attr_float("alpha", 1.0f);
    unary_float(c, [alpha](auto x) {
        return x >= 0 ? x : static_cast<decltype(x)>(alpha) * (std::exp(x) - 1);
    });
}
void op_softplus(OpContext& c) {
    unary_float(c, [](auto x) { return std::log(std::exp(x) + static_cast<decltype(x)>(1)); });
}
void op_hard_sigmoid(OpContext& c) {
    float alpha = c.node.attr_float("alpha", 0.2f), beta = c.node.attr_float("beta", 0.5f);
    unary_float(c, [alpha, beta](auto x) {
        using C = decltype(x);
        return std::max(static_cast<C>(0), std::min(static_cast<C>(1), static_cast<C>(alpha) * x +
                                                                           static_cast<C>(beta)));
    });
}
void op_hard_swish(OpContext& c) {
    unary_float(c, [](auto x) {
        using C = decltype(x);
        return x *
               std::max(static_cast<C>(0),
                        std::min(static_cast<C>(1), x / static_cast<C>(6) + static_cast<C>(0.5)));
    });
}
void op_gelu(OpContext& c) {
    const Attribute* a = c.node.attr("approximate");
    bool tanh_form = a && a->s == "tanh";
    if (tanh_form)
        unary_float(c, [](auto x) { return gelu_tanh(x); });
    else
        unary_float(c, [](auto x) { return gelu_exact(x); });
}

void op_add(OpContext& c) {
    binary_arith(c, [](auto a, auto b) { return a + b; });
}
void op_sub(OpContext& c) {
    binary_arith(c, [](auto a, auto b) { return a - b; });
}
void op_mul(OpContext& c) {
    binary_arith(c, [](auto a, auto b) { return a * b; });
}
void op_div(OpContext& c) {
    binary_arith(c, [](auto a, auto b) {
        using C = decltype(a);
        if constexpr (std::is_integral_v<C>)
            return b == 0 ? C{0} : static_cast<C>(a / b);
        else
            return a / b;
    });
}
void op_pow(OpContext& c) {
    binary_arith(c, [](auto a, auto b) {
        using C = decltype(a);
        if constexpr (std::is_floating_point_v<C>) {
            if (b == static_cast<C>(2)) return a * a;
            return std::pow(a, b);
        } else {
            return static_cast<C>(std::pow(static_cast<double>(a), static_cast<double>(b)));
        }
    });
}
void op_mod(OpContext& c) {
    bool fmod = c.node.attr_int("fmod", 0) != 0;
    binary_arith(c, [fmod](auto a, auto b) {
        using C = decltype(a);
        if constexpr (std::is_floating_point_v<C>) {
            C r = std::fmod(a, b);
            if (!fmod && r != 0 && ((r < 0) != (b < 0))) r += b;
            return r;
        } else {
            if (b == 0) return C{0};
            C r = static_cast<C>(a % b);
            if constexpr (std::is_signed_v<C>)
                if (!fmod && r != 0 && ((r < 0) != (b < 0))) r = static_cast<C>(r + b);
            return r;
        }
    });
}
void op_min(OpContext& c) {
    variadic(c, [](auto a, auto b) {
        if constexpr (std::is_floating_point_v<decltype(a)>)
            if (std::isnan(a) || std::isnan(b))
                return std::numeric_limits<decltype(a)>::quiet_NaN();
        return std::min(a, b);
    });
}
void op_max(OpContext& c) {
    variadic(c, [](auto a, auto b) {
        if constexpr (std::is_floating_point_v<decltype(a)>)
            if (std::isnan(a) || std::isnan(b))
                return std::numeric_limits<decltype(a)>::quiet_NaN();
        return std::max(a, b);
    });
}
void op_sum(OpContext& c) {
    variadic(c, [](auto a, auto b) { return a + b; });
}
void op_mean(OpContext& c) {
    variadic(
        c, [](auto a, auto b) { return a + b; }, true);
}

void op_equal(OpContext& c) {
    compare(c, [](const auto& a, const auto& b) { return a == b; });
}
void op_less(OpContext& c) {
    compare(c, [](const auto& a, const auto& b) { return a < b; });
}
void op_less_or_equal(OpContext& c) {
    compare(c, [](const auto& a, const auto& b) { return a <= b; });
}
void op_greater(OpContext& c) {
    compare(c, [](const auto& a, const auto& b) { return a > b; });
}
void op_greater_or_equal(OpContext& c) {
    compare(c, [](const auto& a, const auto& b) { return a >= b; });
}
void op_and(OpContext& c) {
    logical(c, [](bool a, bool b) { return a && b; });
}
void op_or(OpContext& c) {
    logical(c, [](bool a, bool b) { return a || b; });
}
void op_xor(OpContext& c) {
    logical(c, [](bool a, bool b) { return a != b; });
}
void op_not(OpContext& c) {
    const Tensor& x = c.input(0);
    if (x.dtype != DType::Bool) c.fail("expected a bool input");
    Tensor y = make_tensor(DType::Bool, x.shape);
    auto xi = x.values<uint8_t>();
    auto yo = y.mutable_values<uint8_t>();
    for (size_t i = 0; i < xi.size(); ++i) yo[i] = xi[i] ? 0 : 1;
    c.outputs.push_back(std::move(y));
}

void op_where(OpContext& c) {
    const Tensor& cond = c.input(0);
    const Tensor& x = c.input(1);
    const Tensor& y = c.input(2);
    if (cond.dtype != DType::Bool) c.fail("condition must be bool");
    if (x.dtype != y.dtype) c.fail("X and Y dtypes differ");
    std::array<const Tensor*, 3> ins{&cond, &x, &y};
    Broadcast bc = make_broadcast(c, ins);
    Tensor out = make_tensor(x.dtype, bc.shape);
    const uint8_t* pc = cond.values<uint8_t>().data();
    if (x.dtype == DType::String) {
        for_each_broadcast<3>(c.options, bc, [&](int64_t o, const std::array<int64_t, 3>& off) {
            out.strings[static_cast<size_t>(o)] = pc[off[0]]
                                                      ? x.strings[static_cast<size_t>(off[1])]
                                                      : y.strings[static_cast<size_t>(off[2])];
        });
    } else {
        size_t w = static_cast<size_t>(traits(x.dtype).bits / 8);
        if (w == 0) c.fail("sub-byte dtypes are not supported");
        const std::byte* px = x.data.bytes().data();
        const std::byte* py = y.data.bytes().data();
        std::byte* po = out.data.mutable_bytes().data();
        for_each_broadcast<3>(c.options, bc, [&](int64_t o, const std::array<int64_t, 3>& off) {
            const std::byte* src = pc[off[0]] ? px + off[1] * static_cast<int64_t>(w)
                                              : py + off[2] * static_cast<int64_t>(w);
            std::memcpy(po + o * static_cast<int64_t>(w), src, w);
        });
    }
    c.outputs.push_back(std::move(out));
}

void op_clip(OpContext& c) {
    const Tensor& x = c.input(0);
    double lo = -std::numeric_limits<double>::infinity(),
           hi = std::numeric_limits<double>::infinity();
    if (c.opset < 11) {
        lo = c.node.attr_float("min", -std::numeric_limits<float>::max());
        hi = c.node.attr_float("max", std::numeric_limits<float>::max());
    } else {
        if (c.has_input(1) && c.inputs[1]->element_count() > 0) lo = read_scalar(c, *c.inputs[1]);
        if (c.has_input(2) && c.inputs[2]->element_count() > 0) hi = read_scalar(c, *c.inputs[2]);
    }
    OpContext one{c.node, {&x}, {}, c.options, c.opset, nullptr};
    if (is_float(x.dtype)) {
        // std::max(v, lo) and std::min(., hi) return v itself when v is NaN (their
        // comparisons are false), so NaN passes through without a branch that would stop
        // the loop from vectorizing.
        unary_float(one, [lo, hi](auto v) {
            using C = decltype(v);
            return std::min(std::max(v, static_cast<C>(lo)), static_cast<C>(hi));
        });
    } else {
        unary_numeric(one, [lo, hi](auto v) {
            using C = decltype(v);
            double d = std::min(std::max(static_cast<double>(v), lo), hi);
            return static_cast<C>(d);
        });
    }
    c.outputs.push_back(std::move(one.outputs[0]));
}

}  // namespace ep::rt
