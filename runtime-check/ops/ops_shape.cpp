// Data-movement operators: Constant, Identity, Cast, Shape, Size, Reshape, Flatten,
// Squeeze, Unsqueeze, Transpose, Concat, Split, Slice, Gather, Expand, Tile, Pad,
// ConstantOfShape, Range. They move element bytes; only Cast and Range compute.
#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <limits>

#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"
#include "runtime-check/ops/quant_common.h"
#include "runtime-check/ops/quant_matmul.h"

namespace ep::rt {
namespace {

size_t elem_size(const OpContext& c, DType dt) {
    int bits = traits(dt).bits;
    if (bits < 8 || dt == DType::String)
        c.fail(cat("dtype ", dtype_name(dt), " is not supported here"));
    return static_cast<size_t>(bits / 8);
}

// Same bytes under a new shape (shares storage: no copy).
Tensor reshaped(const Tensor& x, std::vector<int64_t> shape) {
    Tensor y = x;
    y.shape = std::move(shape);
    return y;
}

// n elements of `width` bytes: dst[j] = src[j * stride] (stride in elements, 0 repeats
// one element). Typed loops for the common widths, so short rows cost no memcpy calls.
template <typename T>
void gather_typed(std::byte* dst, const std::byte* src, int64_t stride, int64_t n) {
    auto* d = reinterpret_cast<T*>(dst);
    for (int64_t j = 0; j < n; ++j)
        std::memcpy(d + j, src + static_cast<size_t>(j * stride) * sizeof(T), sizeof(T));
}

void gather_elements(std::byte* dst, const std::byte* src, int64_t stride, int64_t n,
                     size_t width) {
    if (stride == 1 && n * static_cast<int64_t>(width) > 64) {
        std::memcpy(dst, src, static_cast<size_t>(n) * width);
        return;
    }
    switch (width) {
        case 1:
            return gather_typed<uint8_t>(dst, src, stride, n);
        case 2:
            return gather_typed<uint16_t>(dst, src, stride, n);
        case 4:
            return gather_typed<uint32_t>(dst, src, stride, n);
        case 8:
            return gather_typed<uint64_t>(dst, src, stride, n);
        default:
            for (int64_t j = 0; j < n; ++j)
                std::memcpy(dst + static_cast<size_t>(j) * width,
                            src + static_cast<size_t>(j * stride) * width, width);
    }
}

// `rows` rows of `bytes` bytes: row r from src + r * src_step to dst + r * dst_step.
template <size_t B>
void copy_rows_fixed(std::byte* dst, size_t dst_step, const std::byte* src, size_t src_step,
                     int64_t rows) {
    for (int64_t r = 0; r < rows; ++r)
        std::memcpy(dst + static_cast<size_t>(r) * dst_step,
                    src + static_cast<size_t>(r) * src_step, B);
}

void copy_rows(std::byte* dst, size_t dst_step, const std::byte* src, size_t src_step, size_t bytes,
               int64_t rows) {
    switch (bytes) {
        case 0:
            return;
        case 1:
            return copy_rows_fixed<1>(dst, dst_step, src, src_step, rows);
        case 2:
            return copy_rows_fixed<2>(dst, dst_step, src, src_step, rows);
        case 4:
            return copy_rows_fixed<4>(dst, dst_step, src, src_step, rows);
        case 8:
            return copy_rows_fixed<8>(dst, dst_step, src, src_step, rows);
        case 16:
            return copy_rows_fixed<16>(dst, dst_step, src, src_step, rows);
        case 32:
            return copy_rows_fixed<32>(dst, dst_step, src, src_step, rows);
        default:
            for (int64_t r = 0; r < rows; ++r)
                std::memcpy(dst + static_cast<size_t>(r) * dst_step,
                            src + static_cast<size_t>(r) * src_step, bytes);
    }
}

// Generic strided copy: out[idx] = in[sum(idx_d * in_strides_d) + base], out row-major.
// Dimensions of size 1 are dropped and neighbours that are contiguous in the input are
// merged first; rows of the innermost dimension are then walked with an odometer.
void strided_copy(const OpContext& c, const std::byte* in, std::byte* out, size_t width,
                  std::span<const int64_t> out_shape, std::span<const int64_t> in_strides,
                  int64_t base) {
    int64_t count = 1;
    for (int64_t d : out_shape) count *= d;
    if (count == 0) return;
    std::vector<int64_t> dims, strides;
    for (size_t d = 0; d < out_shape.size(); ++d) {
        if (out_shape[d] == 1) continue;
        if (!dims.empty() && strides.back() == in_strides[d] * out_shape[d]) {
            dims.back() *= out_shape[d];
            strides.back() = in_strides[d];
            continue;
        }
        dims.push_back(out_shape[d]);
        strides.push_back(in_strides[d]);
    }
    const size_t rank = dims.size();
    const int64_t inner = rank ? dims[rank - 1] : 1;
    const int64_t inner_stride = rank ? strides[rank - 1] : 0;
    const int64_t rows = count / inner;
    parallel_for(c.options, rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, inner)),
                 [&](int64_t b, int64_t e) {
                     // Index of row b in the outer dimensions, then incremented row by row.
                     std::vector<int64_t> idx(rank ? rank - 1 : 0, 0);
                     int64_t off = base, rem = b;
                     for (size_t d = idx.size(); d-- > 0;) {
                         idx[d] = rem % dims[d];
                         rem /= dims[d];
                         off += idx[d] * strides[d];
                     }
                     for (int64_t row = b; row < e; ++row) {
                         gather_elements(out + static_cast<size_t>(row * inner) * width,
                                         in + static_cast<size_t>(off) * width, inner_stride, inner,
                                         width);
                         for (size_t d = idx.size(); d-- > 0;) {
                             off += strides[d];
                             if (++idx[d] < dims[d]) break;
                             off -= idx[d] * strides[d];
                             idx[d] = 0;
                         }
                     }
                 });
}

std::vector<int64_t> row_major_strides(std::span<const int64_t> shape) {
    std::vector<int64_t> s(shape.size(), 1);
    for (size_t i = shape.size(); i-- > 1;) s[i - 1] = s[i] * shape[i];
    return s;
}

template <typename To, typename From>
To convert_number(From v) {
    if constexpr (std::is_same_v<To, bool>)
        return v != From{};
    else if constexpr (std::is_floating_point_v<From> && std::is_integral_v<To>) {
        if (std::isnan(v)) return To{0};
        return static_cast<To>(v);
    } else
        return static_cast<To>(v);
}

}  // namespace

void op_identity(OpContext& c) {
    c.outputs.push_back(c.input(0));
}

void op_constant(OpContext& c) {
    for (const auto& a : c.node.attributes) {
        if (a.name == "value" && !a.tensors.empty()) {
            c.outputs.push_back(a.tensors[0]);
            return;
        }
        if (a.name == "value_float") {
            std::array<float, 1> v{a.f};
            c.outputs.push_back(make_f32_tensor("", {}, v));
            return;
        }
        if (a.name == "value_floats") {
            c.outputs.push_back(
                make_f32_tensor("", {static_cast<int64_t>(a.floats.size())}, a.floats));
            return;
        }
        if (a.name == "value_int" || a.name == "value_ints") {
            std::vector<int64_t> v = a.name == "value_int" ? std::vector<int64_t>{a.i} : a.ints;
            Tensor t =
                make_tensor(DType::I64, a.name == "value_int"
                                            ? std::vector<int64_t>{}
                                            : std::vector<int64_t>{static_cast<int64_t>(v.size())});
            std::copy(v.begin(), v.end(), t.mutable_values<int64_t>().begin());
            c.outputs.push_back(std::move(t));
            return;
        }
        if (a.name == "value_string" || a.name == "value_strings") {
            Tensor t;
            t.dtype = DType::String;
            if (a.name == "value_string")
                t.strings = {a.s};
            else {
                t.strings = a.strings;
                t.shape = {static_cast<int64_t>(a.strings.size())};
            }
            c.outputs.push_back(std::move(t));
            return;
        }
    }
    c.fail("has no value attribute edgepack supports");
}

void op_cast(OpContext& c) {
    const Tensor& x = c.input(0);
    auto to = dtype_from_onnx(static_cast<int>(c.node.attr_int("to", 0)));
    if (!to) c.fail(cat("attribute 'to' = ", c.node.attr_int("to", 0), " is not a known dtype"));
    if (*to == x.dtype) {
        c.outputs.push_back(x);
        return;
    }
    Tensor y = make_tensor(*to, x.shape);
    int64_t n = x.element_count();
    const bool saturate = c.node.attr_int("saturate", 1) != 0;  // float8 targets only
    E8M0Rounding e8m0_rounding = E8M0Rounding::Up;
    if (*to == DType::F8E8M0) {
        std::string mode = c.node.attr_string("round_mode", "up");
        if (mode == "down")
            e8m0_rounding = E8M0Rounding::Down;
        else if (mode == "nearest")
            e8m0_rounding = E8M0Rounding::Nearest;
        else if (mode != "up")
            c.fail(cat("round_mode '", mode, "' is not one of up, down, nearest"));
    }
    if (x.dtype == DType::I32 && *to == DType::F32) {
        // MatMulInteger / ConvInteger's sums to float (dynamic quantization): one rounding to
        // nearest even, the value the general path below gives through double.
        auto in = x.values<int32_t>();
        auto out = y.mutable_values<float>();
        for (size_t i = 0; i < in.size(); ++i) out[i] = static_cast<float>(in[i]);
        c.outputs.push_back(std::move(y));
        return;
    }
    if (x.dtype == DType::String || *to == DType::String) {
        if (x.dtype == DType::String) {
            for (int64_t i = 0; i < n; ++i) {
                double v = std::strtod(x.strings[static_cast<size_t>(i)].c_str(), nullptr);
                if (*to == DType::F64)
                    y.mutable_values<double>()[static_cast<size_t>(i)] = v;
                else if (is_float(*to))
                    store_float(*to, y.data.mutable_bytes().data(), i, static_cast<float>(v));
                else
                    dispatch_numeric(c, *to, [&](auto tag) {
                        y.mutable_values<decltype(tag)>()[static_cast<size_t>(i)] =
                            static_cast<decltype(tag)>(v);
                    });
            }
        } else {
            // Shortest text that reads back to the same value (as numpy prints float32).
            for (int64_t i = 0; i < n; ++i) {
                char buf[64];
                std::to_chars_result r{};
                if (x.dtype == DType::F64)
                    r = std::to_chars(buf, buf + sizeof buf,
                                      x.values<double>()[static_cast<size_t>(i)]);
                else if (is_float(x.dtype))
                    r = std::to_chars(buf, buf + sizeof buf,
                                      load_float(x.dtype, x.data.bytes().data(), i));
                else if (x.dtype == DType::Bool)
                    r = std::to_chars(
                        buf, buf + sizeof buf,
                        static_cast<int>(x.values<uint8_t>()[static_cast<size_t>(i)]));
                else
                    dispatch_numeric(c, x.dtype, [&](auto tag) {
                        r = std::to_chars(buf, buf + sizeof buf,
                                          x.values<decltype(tag)>()[static_cast<size_t>(i)]);
                    });
                y.strings[static_cast<size_t>(i)].assign(buf, r.ptr);
            }
        }
        c.outputs.push_back(std::move(y));
        return;
    }
    // Read every element as double (or int64 for integers, to keep 64-bit values exact).
    auto is_packed_int = [](DType dt) {
        return dt == DType::I4 || dt == DType::U4 || dt == DType::I2 || dt == DType::U2;
    };
    auto read = [&](int64_t i, double& d, int64_t& l, bool& integral) {
        if (is_small_float(x.dtype)) {
            d = load_float(x.dtype, x.data.bytes().data(), i);
            integral = false;
        } else if (is_packed_int(x.dtype)) {
            dispatch_q(c, x.dtype, false, "input",
                       [&](auto q) { l = q.load(x.data.bytes().data(), i); });
            integral = true;
        } else if (is_float(x.dtype)) {
            d = x.dtype == DType::F64 ? x.values<double>()[static_cast<size_t>(i)]
                                      : load_float(x.dtype, x.data.bytes().data(), i);
            integral = false;
        } else if (x.dtype == DType::Bool) {
            l = x.values<uint8_t>()[static_cast<size_t>(i)] != 0;
            integral = true;
        } else {
            dispatch_numeric(c, x.dtype, [&](auto tag) {
                l = static_cast<int64_t>(x.values<decltype(tag)>()[static_cast<size_t>(i)]);
            });
            integral = true;
        }
    };
    std::byte* out = y.data.mutable_bytes().data();
    for (int64_t i = 0; i < n; ++i) {
        double d = 0;
        int64_t l = 0;
        bool integral = false;
        read(i, d, l, integral);
        if (*to == DType::F8E8M0) {
            float v = integral ? static_cast<float>(l) : static_cast<float>(d);
            out[i] = static_cast<std::byte>(float_to_e8m0(v, saturate, e8m0_rounding));
        } else if (is_small_float(*to)) {
            double v = integral ? static_cast<double>(l) : d;
            store_small_float_bits(*to, out, i, float_to_small_float(*to, v, saturate));
        } else if (is_packed_int(*to)) {
            // The integer's low bits (the ONNX test data wrap, e.g. -9 to int4 gives 7);
            // floats are truncated toward zero first, NaN and inf give 0.
            int64_t v = l;
            if (!integral)
                v = std::isfinite(d) && std::fabs(d) < 9.2e18 ? static_cast<int64_t>(d) : 0;
            dispatch_q(c, *to, false, "output",
                       [&](auto q) { q.store(out, i, static_cast<int32_t>(v & 0xF)); });
        } else if (is_float(*to)) {
            double v = integral ? static_cast<double>(l) : d;
            if (*to == DType::F64)
                y.mutable_values<double>()[static_cast<size_t>(i)] = v;
            else
                store_float(*to, out, i, static_cast<float>(v));
        } else if (*to == DType::Bool) {
            y.mutable_values<uint8_t>()[static_cast<size_t>(i)] = integral ? l != 0 : d != 0.0;
        } else {
            dispatch_numeric(c, *to, [&](auto tag) {
                using T = decltype(tag);
                y.mutable_values<T>()[static_cast<size_t>(i)] =
                    integral ? static_cast<T>(l) : convert_number<T>(d);
            });
        }
    }
    c.outputs.push_back(std::move(y));
}

void op_shape(OpContext& c) {
    const Tensor& x = c.input(0);
    int64_t rank = static_cast<int64_t>(x.shape.size());
    int64_t start = c.node.attr_int("start", 0), end = c.node.attr_int("end", rank);
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = std::clamp<int64_t>(start, 0, rank);
    end = std::clamp<int64_t>(end, start, rank);
    Tensor y = make_tensor(DType::I64, {end - start});
    for (int64_t i = start; i < end; ++i)
        y.mutable_values<int64_t>()[static_cast<size_t>(i - start)] =
            x.shape[static_cast<size_t>(i)];
    c.outputs.push_back(std::move(y));
}

void op_size(OpContext& c) {
    Tensor y = make_tensor(DType::I64, {});
    y.mutable_values<int64_t>()[0] = c.input(0).element_count();
    c.outputs.push_back(std::move(y));
}

void op_reshape(OpContext& c) {
    const Tensor& x = c.input(0);
    std::vector<int64_t> target =
        c.opset >= 5 ? read_ints(c, c.input(1)) : c.node.attr_ints("shape");
    bool allowzero = c.node.attr_int("allowzero", 0) != 0;
    int64_t known = 1, infer = -1;
    for (size_t i = 0; i < target.size(); ++i) {
        if (target[i] == 0 && !allowzero) {
            if (i >= x.shape.size())
                c.fail(cat("shape ", shape_string(target), ": 0 at axis ", i,
                           " has no input dimension"));
            target[i] = x.shape[i];
        }
        if (target[i] == -1) {
            if (infer >= 0) c.fail(cat("shape ", shape_string(target), " has more than one -1"));
            infer = static_cast<int64_t>(i);
        } else if (target[i] < 0) {
            c.fail(cat("shape ", shape_string(target), " has a negative dimension"));
        } else {
            known *= target[i];
        }
    }
    int64_t n = x.element_count();
    if (infer >= 0) {
        if (known == 0 || n % known != 0)
            c.fail(cat("cannot reshape ", shape_string(x.shape), " to ", shape_string(target)));
        target[static_cast<size_t>(infer)] = n / known;
    } else if (known != n) {
        c.fail(cat("cannot reshape ", shape_string(x.shape), " (", n, " elements) to ",
                   shape_string(target)));
    }
    c.outputs.push_back(reshaped(x, target));
}

void op_flatten(OpContext& c) {
    const Tensor& x = c.input(0);
    int64_t rank = static_cast<int64_t>(x.shape.size());
    int64_t axis = c.node.attr_int("axis", 1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank) c.fail(cat("axis ", axis, " out of range for rank ", rank));
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < rank; ++i)
        (i < axis ? outer : inner) *= x.shape[static_cast<size_t>(i)];
    c.outputs.push_back(reshaped(x, {outer, inner}));
}

void op_squeeze(OpContext& c) {
    const Tensor& x = c.input(0);
    std::vector<int64_t> axes =
        c.opset >= 13 ? (c.has_input(1) ? read_ints(c, *c.inputs[1]) : std::vector<int64_t>{})
                      : c.node.attr_ints("axes");
    int64_t rank = static_cast<int64_t>(x.shape.size());
    std::vector<bool> drop(x.shape.size(), false);
    if (axes.empty()) {
        for (size_t i = 0; i < x.shape.size(); ++i) drop[i] = x.shape[i] == 1;
    } else {
        for (int64_t a : axes) {
            int64_t k = normalize_axis(c, a, rank);
            if (x.shape[static_cast<size_t>(k)] != 1)
                c.fail(cat("cannot squeeze axis ", a, " of shape ", shape_string(x.shape)));
            drop[static_cast<size_t>(k)] = true;
        }
    }
    std::vector<int64_t> shape;
    for (size_t i = 0; i < x.shape.size(); ++i)
        if (!drop[i]) shape.push_back(x.shape[i]);
    c.outputs.push_back(reshaped(x, shape));
}

void op_unsqueeze(OpContext& c) {
    const Tensor& x = c.input(0);
    std::vector<int64_t> axes = c.opset >= 13 ? read_ints(c, c.input(1)) : c.node.attr_ints("axes");
    int64_t out_rank = static_cast<int64_t>(x.shape.size() + axes.size());
    std::vector<bool> inserted(static_cast<size_t>(out_rank), false);
    for (int64_t a : axes) {
        int64_t k = normalize_axis(c, a, out_rank);
        if (inserted[static_cast<size_t>(k)]) c.fail(cat("axis ", a, " given twice"));
        inserted[static_cast<size_t>(k)] = true;
    }
    std::vector<int64_t> shape;
    size_t src = 0;
    for (int64_t i = 0; i < out_rank; ++i)
        shape.push_back(inserted[static_cast<size_t>(i)] ? 1 : x.shape[src++]);
    c.outputs.push_back(reshaped(x, shape));
}

void op_transpose(OpContext& c) {
    const Tensor& x = c.input(0);
    size_t rank = x.shape.size();
    std::vector<int64_t> perm = c.node.attr_ints("perm");
    if (perm.empty())
        for (size_t i = 0; i < rank; ++i) perm.push_back(static_cast<int64_t>(rank - 1 - i));
    if (perm.size() != rank) c.fail(cat("perm has ", perm.size(), " entries for rank ", rank));
    std::vector<bool> seen(rank, false);
    for (int64_t p : perm) {
        if (p < 0 || p >= static_cast<int64_t>(rank) || seen[static_cast<size_t>(p)])
            c.fail("perm is not a permutation");
        seen[static_cast<size_t>(p)] = true;
    }
    auto in_strides = row_major_strides(x.shape);
    std::vector<int64_t> out_shape(rank), strides(rank);
    for (size_t i = 0; i < rank; ++i) {
        out_shape[i] = x.shape[static_cast<size_t>(perm[i])];
        strides[i] = in_strides[static_cast<size_t>(perm[i])];
    }
    if (x.dtype == DType::String) c.fail("string tensors are not supported");
    Tensor y = make_uninitialized_tensor(x.dtype, out_shape);
    strided_copy(c, x.data.bytes().data(), y.data.mutable_bytes().data(), elem_size(c, x.dtype),
                 out_shape, strides, 0);
    c.outputs.push_back(std::move(y));
}

void op_concat(OpContext& c) {
    if (c.input_count() == 0) c.fail("expected at least one input");
    const Tensor& first = c.input(0);
    int64_t rank = static_cast<int64_t>(first.shape.size());
    int64_t axis = normalize_axis(c, c.node.attr_int("axis", 0), rank);
    std::vector<int64_t> shape = first.shape;
    shape[static_cast<size_t>(axis)] = 0;
    for (size_t i = 0; i < c.input_count(); ++i) {
        const Tensor& t = c.input(i);
        if (t.dtype != first.dtype || static_cast<int64_t>(t.shape.size()) != rank)
            c.fail(cat("input ", i, " has a different dtype or rank"));
        for (int64_t d = 0; d < rank; ++d)
            if (d != axis && t.shape[static_cast<size_t>(d)] != first.shape[static_cast<size_t>(d)])
                c.fail(cat("input ", i, " shape ", shape_string(t.shape), " does not match ",
                           shape_string(first.shape)));
        shape[static_cast<size_t>(axis)] += t.shape[static_cast<size_t>(axis)];
    }
    Tensor y = first.dtype == DType::String ? make_tensor(first.dtype, shape)
                                            : make_uninitialized_tensor(first.dtype, shape);
    int64_t outer = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= shape[static_cast<size_t>(d)];
    if (first.dtype == DType::String) {
        size_t pos = 0;
        for (int64_t o = 0; o < outer; ++o)
            for (size_t i = 0; i < c.input_count(); ++i) {
                const Tensor& t = c.input(i);
                int64_t block = t.element_count() / std::max<int64_t>(outer, 1);
                for (int64_t k = 0; k < block; ++k)
                    y.strings[pos++] = t.strings[static_cast<size_t>(o * block + k)];
            }
        c.outputs.push_back(std::move(y));
        return;
    }
    if (outer == 0) {
        c.outputs.push_back(std::move(y));
        return;
    }
    // Each input is a column of `outer` blocks in the output rows.
    const size_t w = elem_size(c, first.dtype);
    size_t inner = w;
    for (int64_t d = axis + 1; d < rank; ++d)
        inner *= static_cast<size_t>(shape[static_cast<size_t>(d)]);
    std::vector<std::pair<const std::byte*, size_t>> parts;
    for (size_t i = 0; i < c.input_count(); ++i) {
        const Tensor& t = c.input(i);
        parts.emplace_back(t.data.bytes().data(),
                           static_cast<size_t>(t.shape[static_cast<size_t>(axis)]) * inner);
    }
    const size_t row = static_cast<size_t>(shape[static_cast<size_t>(axis)]) * inner;
    std::byte* out = y.data.mutable_bytes().data();
    parallel_for(c.options, outer,
                 std::max<int64_t>(1, 65536 / static_cast<int64_t>(std::max<size_t>(row, 1))),
                 [&](int64_t o0, int64_t o1) {
                     size_t pos = 0;
                     for (const auto& [src, block] : parts) {
                         copy_rows(out + static_cast<size_t>(o0) * row + pos, row,
                                   src + static_cast<size_t>(o0) * block, block, block, o1 - o0);
                         pos += block;
                     }
                 });
    c.outputs.push_back(std::move(y));
}

void op_split(OpContext& c) {
    const Tensor& x = c.input(0);
    int64_t rank = static_cast<int64_t>(x.shape.size());
    int64_t axis = normalize_axis(c, c.node.attr_int("axis", 0), rank);
    int64_t dim = x.shape[static_cast<size_t>(axis)];
    std::vector<int64_t> sizes =
        c.opset >= 13 ? (c.has_input(1) ? read_ints(c, *c.inputs[1]) : std::vector<int64_t>{})
                      : c.node.attr_ints("split");
    size_t parts = c.node.outputs.size();
    if (sizes.empty()) {
        int64_t num = c.node.attr_int("num_outputs", static_cast<int64_t>(parts));
        int64_t each = (dim + num - 1) / num;
        for (int64_t i = 0; i < num; ++i) sizes.push_back(std::min(each, dim - i * each));
    }
    int64_t total = 0;
    for (int64_t s : sizes) total += s;
    if (total != dim || sizes.size() != parts)
        c.fail(cat("split sizes ", shape_string(sizes), " do not cover dimension ", dim, " in ",
                   parts, " outputs"));
    size_t w = elem_size(c, x.dtype);
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x.shape[static_cast<size_t>(d)];
    for (int64_t d = axis + 1; d < rank; ++d) inner *= x.shape[static_cast<size_t>(d)];
    const size_t row = static_cast<size_t>(dim * inner) * w;
    int64_t start = 0;
    for (int64_t s : sizes) {
        std::vector<int64_t> shape = x.shape;
        shape[static_cast<size_t>(axis)] = s;
        Tensor y = make_uninitialized_tensor(x.dtype, shape);
        const size_t block = static_cast<size_t>(s * inner) * w;
        if (block && outer) {
            std::byte* dst = y.data.mutable_bytes().data();
            const std::byte* src = x.data.bytes().data() + static_cast<size_t>(start * inner) * w;
            parallel_for(c.options, outer,
                         std::max<int64_t>(1, 65536 / static_cast<int64_t>(block)),
                         [&](int64_t o0, int64_t o1) {
                             copy_rows(dst + static_cast<size_t>(o0) * block, block,
                                       src + static_cast<size_t>(o0) * row, row, block, o1 - o0);
                         });
        }
        start += s;
        c.outputs.push_back(std::move(y));
    }
}

void op_slice(OpContext& c) {
    const Tensor& x = c.input(0);
    int64_t rank = static_cast<int64_t>(x.shape.size());
    std::vector<int64_t> starts, ends, axes, steps;
    if (c.opset < 10) {
        starts = c.node.attr_ints("starts");
        ends = c.node.attr_ints("ends");
        axes = c.node.attr_ints("axes");
    } else {
        starts = read_ints(c, c.input(1));
        ends = read_ints(c, c.input(2));
        if (c.has_input(3)) axes = read_ints(c, *c.inputs[3]);
        if (c.has_input(4)) steps = read_ints(c, *c.inputs[4]);
    }
    if (axes.empty())
        for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() ||
        steps.size() != starts.size())
        c.fail("starts, ends, axes and steps differ in length");
    std::vector<int64_t> begin(static_cast<size_t>(rank), 0), step(static_cast<size_t>(rank), 1),
        out_shape = x.shape;
    for (size_t i = 0; i < starts.size(); ++i) {
        int64_t a = normalize_axis(c, axes[i], rank);
        int64_t dim = x.shape[static_cast<size_t>(a)];
        int64_t s = starts[i], e = ends[i], st = steps[i];
        if (st == 0) c.fail("step 0");
        if (s < 0) s += dim;
        if (e < 0) e += dim;
        if (st > 0) {
            s = std::clamp<int64_t>(s, 0, dim);
            e = std::clamp<int64_t>(e, 0, dim);
            out_shape[static_cast<size_t>(a)] = e > s ? (e - s + st - 1) / st : 0;
        } else {
            s = std::clamp<int64_t>(s, -1, dim - 1);
            e = std::clamp<int64_t>(e, -1, dim - 1);
            out_shape[static_cast<size_t>(a)] = s > e ? (s - e + (-st) - 1) / (-st) : 0;
        }
        begin[static_cast<size_t>(a)] = s;
        step[static_cast<size_t>(a)] = st;
    }
    auto in_strides = row_major_strides(x.shape);
    std::vector<int64_t> strides(static_cast<size_t>(rank));
    int64_t base = 0;
    for (int64_t d = 0; d < rank; ++d) {
        strides[static_cast<size_t>(d)] =
            in_strides[static_cast<size_t>(d)] * step[static_cast<size_t>(d)];
        base += begin[static_cast<size_t>(d)] * in_strides[static_cast<size_t>(d)];
    }
    Tensor y = make_uninitialized_tensor(x.dtype, out_shape);
    if (y.element_count() > 0)
        strided_copy(c, x.data.bytes().data(), y.data.mutable_bytes().data(), elem_size(c, x.dtype),
                     out_shape, strides, base);
    c.outputs.push_back(std::move(y));
}

void op_gather(OpContext& c) {
    if (c.input(0).is_encoded()) return gather_encoded(c);  // a quantized table (quant_matmul.h)
    const Tensor& data = c.input(0);
    const Tensor& indices = c.input(1);
    int64_t rank = static_cast<int64_t>(data.shape.size());
    int64_t axis = normalize_axis(c, c.node.attr_int("axis", 0), rank);
    std::vector<int64_t> idx = read_ints(c, indices);
    int64_t dim = data.shape[static_cast<size_t>(axis)];
    for (auto& i : idx) {
        if (i < -dim || i >= dim) c.fail(cat("index ", i, " is out of range for dimension ", dim));
        if (i < 0) i += dim;
    }
    std::vector<int64_t> shape(data.shape.begin(), data.shape.begin() + axis);
    shape.insert(shape.end(), indices.shape.begin(), indices.shape.end());
    shape.insert(shape.end(), data.shape.begin() + axis + 1, data.shape.end());
    Tensor y = make_tensor(data.dtype, shape);
    size_t w = elem_size(c, data.dtype);
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= data.shape[static_cast<size_t>(d)];
    for (int64_t d = axis + 1; d < rank; ++d) inner *= data.shape[static_cast<size_t>(d)];
    size_t block = static_cast<size_t>(inner) * w;
    std::byte* out = y.data.mutable_bytes().data();
    const std::byte* in = data.data.bytes().data();
    size_t pos = 0;
    for (int64_t o = 0; o < outer; ++o)
        for (int64_t i : idx) {
            if (block)
                std::memcpy(out + pos, in + (static_cast<size_t>(o * dim + i)) * block, block);
            pos += block;
        }
    c.outputs.push_back(std::move(y));
}

void op_expand(OpContext& c) {
    const Tensor& x = c.input(0);
    std::vector<int64_t> target = read_ints(c, c.input(1));
    std::vector<int64_t> shape = broadcast_shapes(c, x.shape, target);
    auto strides = broadcast_strides(x.shape, shape);
    Tensor y = make_uninitialized_tensor(x.dtype, shape);
    if (y.element_count() > 0)
        strided_copy(c, x.data.bytes().data(), y.data.mutable_bytes().data(), elem_size(c, x.dtype),
                     shape, strides, 0);
    c.outputs.push_back(std::move(y));
}

void op_tile(OpContext& c) {
    const Tensor& x = c.input(0);
    std::vector<int64_t> repeats = read_ints(c, c.input(1));
    if (repeats.size() != x.shape.size()) c.fail("repeats must have one entry per dimension");
    size_t rank = x.shape.size();
    // View the output as [r0, d0, r1, d1, ...] with stride 0 on the repeat axes.
    std::vector<int64_t> shape2, strides2, out_shape(rank);
    auto in_strides = row_major_strides(x.shape);
    for (size_t d = 0; d < rank; ++d) {
        if (repeats[d] < 0) c.fail("negative repeat");
        shape2.push_back(repeats[d]);
        strides2.push_back(0);
        shape2.push_back(x.shape[d]);
        strides2.push_back(in_strides[d]);
        out_shape[d] = x.shape[d] * repeats[d];
    }
    Tensor y = make_uninitialized_tensor(x.dtype, out_shape);
    if (y.element_count() > 0)
        strided_copy(c, x.data.bytes().data(), y.data.mutable_bytes().data(), elem_size(c, x.dtype),
                     shape2, strides2, 0);
    c.outputs.push_back(std::move(y));
}

void op_constant_of_shape(OpContext& c) {
    std::vector<int64_t> shape = read_ints(c, c.input(0));
    for (int64_t d : shape)
        if (d < 0) c.fail(cat("negative dimension in ", shape_string(shape)));
    const Attribute* value = c.node.attr("value");
    DType dt = value && !value->tensors.empty() ? value->tensors[0].dtype : DType::F32;
    Tensor y = make_tensor(dt, shape);
    if (value && !value->tensors.empty()) {
        auto src = value->tensors[0].data.bytes();
        auto dst = y.data.mutable_bytes();
        for (size_t off = 0; off + src.size() <= dst.size() && !src.empty(); off += src.size())
            std::memcpy(dst.data() + off, src.data(), src.size());
    }
    c.outputs.push_back(std::move(y));
}

void op_range(OpContext& c) {
    const Tensor& start = c.input(0);
    double s = read_scalar(c, start), l = read_scalar(c, c.input(1)),
           d = read_scalar(c, c.input(2));
    if (d == 0) c.fail("delta is 0");
    int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((l - s) / d)));
    Tensor y = make_tensor(start.dtype, {n});
    if (is_float(start.dtype)) {
        if (start.dtype == DType::F64) {
            for (int64_t i = 0; i < n; ++i)
                y.mutable_values<double>()[static_cast<size_t>(i)] = s + static_cast<double>(i) * d;
        } else {
            float fs = static_cast<float>(s), fd = static_cast<float>(d);
            for (int64_t i = 0; i < n; ++i)
                store_float(start.dtype, y.data.mutable_bytes().data(), i,
                            fs + static_cast<float>(i) * fd);
        }
    } else {
        dispatch_numeric(c, start.dtype, [&](auto tag) {
            using T = decltype(tag);
            for (int64_t i = 0; i < n; ++i)
                y.mutable_values<T>()[static_cast<size_t>(i)] =
                    static_cast<T>(static_cast<int64_t>(s) + i * static_cast<int64_t>(d));
        });
    }
    c.outputs.push_back(std::move(y));
}

void op_pad(OpContext& c) {
    const Tensor& x = c.input(0);
    size_t rank = x.shape.size();
    std::vector<int64_t> pads = c.opset >= 11 ? read_ints(c, c.input(1)) : c.node.attr_ints("pads");
    std::string mode = "constant";
    if (const Attribute* m = c.node.attr("mode")) mode = m->s;
    std::vector<int64_t> axes;
    if (c.opset >= 18 && c.has_input(3)) axes = read_ints(c, *c.inputs[3]);
    if (axes.empty())
        for (size_t i = 0; i < rank; ++i) axes.push_back(static_cast<int64_t>(i));
    if (pads.size() != 2 * axes.size())
        c.fail(cat("pads has ", pads.size(), " entries, expected ", 2 * axes.size()));
    std::vector<int64_t> before(rank, 0), after(rank, 0);
    for (size_t i = 0; i < axes.size(); ++i) {
        int64_t a = normalize_axis(c, axes[i], static_cast<int64_t>(rank));
        before[static_cast<size_t>(a)] = pads[i];
        after[static_cast<size_t>(a)] = pads[i + axes.size()];
    }
    std::vector<int64_t> out_shape(rank);
    for (size_t d = 0; d < rank; ++d) {
        out_shape[d] = x.shape[d] + before[d] + after[d];
        if (out_shape[d] < 0) c.fail("pads make a negative dimension");
    }
    Tensor y = make_tensor(x.dtype, out_shape);
    size_t w = elem_size(c, x.dtype);
    // Constant fill value.
    std::vector<std::byte> fill(w);
    if (mode == "constant") {
        const Tensor* v = c.opset >= 11 && c.has_input(2) ? c.inputs[2] : nullptr;
        if (v && v->element_count() > 0)
            std::memcpy(fill.data(), v->data.bytes().data(), w);
        else if (c.opset < 11) {
            float f = c.node.attr_float("value", 0.0f);
            if (is_float(x.dtype)) store_float(x.dtype, fill.data(), 0, f);
        }
    } else if (mode != "reflect" && mode != "edge" && mode != "wrap") {
        c.fail(cat("mode '", mode, "' is not supported"));
    }
    auto in_strides = row_major_strides(x.shape);
    int64_t count = y.element_count();
    std::byte* out = y.data.mutable_bytes().data();
    const std::byte* in = x.data.bytes().data();
    for (int64_t o = 0; o < count; ++o) {
        int64_t rem = o, off = 0;
        bool outside = false;
        for (size_t d = rank; d-- > 0;) {
            int64_t i = rem % out_shape[d] - before[d];
            rem /= out_shape[d];
            int64_t dim = x.shape[d];
            if (i < 0 || i >= dim) {
                if (mode == "constant" || dim == 0) {
                    outside = true;
                    break;
                }
                if (mode == "edge")
                    i = std::clamp<int64_t>(i, 0, dim - 1);
                else if (mode == "wrap")
                    i = ((i % dim) + dim) % dim;
                else {  // reflect
                    int64_t period = 2 * (dim - 1);
                    if (period == 0)
                        i = 0;
                    else {
                        i = ((i % period) + period) % period;
                        if (i >= dim) i = period - i;
                    }
                }
            }
            off += i * in_strides[d];
        }
        std::memcpy(out + static_cast<size_t>(o) * w,
                    outside ? fill.data() : in + static_cast<size_t>(off) * w, w);
    }
    c.outputs.push_back(std::move(y));
}

}  // namespace ep::rt
