// Index-driven data movement: GatherElements, ScatterElements, GatherND, ScatterND,
// OneHot, CumSum, Trilu, DepthToSpace, SpaceToDepth, NonZero and EyeLike.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"

namespace ep::rt {
namespace {

size_t width_of(const OpContext& c, DType dt) {
    int bits = traits(dt).bits;
    if (bits < 8 || dt == DType::String)
        c.fail(cat("dtype ", dtype_name(dt), " is not supported here"));
    return static_cast<size_t>(bits / 8);
}

std::vector<int64_t> strides_of(const std::vector<int64_t>& shape) {
    std::vector<int64_t> s(shape.size(), 1);
    for (size_t i = shape.size(); i-- > 1;) s[i - 1] = s[i] * shape[i];
    return s;
}

int64_t checked_index(const OpContext& c, int64_t i, int64_t dim) {
    if (i < -dim || i >= dim) c.fail(cat("index ", i, " is out of range for dimension ", dim));
    return i < 0 ? i + dim : i;
}

}  // namespace

void op_gather_elements(OpContext& c) {
    const Tensor& data = c.input(0);
    const Tensor& idx_t = c.input(1);
    int64_t rank = static_cast<int64_t>(data.shape.size());
    int64_t axis = normalize_axis(c, c.node.attr_int("axis", 0), rank);
    if (static_cast<int64_t>(idx_t.shape.size()) != rank)
        c.fail("indices must have the rank of data");
    auto idx = read_ints(c, idx_t);
    size_t w = width_of(c, data.dtype);
    Tensor y = make_tensor(data.dtype, idx_t.shape);
    auto ds = strides_of(data.shape), is = strides_of(idx_t.shape);
    for (size_t i = 0; i < idx.size(); ++i) {
        int64_t rem = static_cast<int64_t>(i), off = 0;
        for (int64_t d = 0; d < rank; ++d) {
            int64_t coord = rem / is[static_cast<size_t>(d)];
            rem %= is[static_cast<size_t>(d)];
            if (d == axis)
                coord = checked_index(c, idx[i], data.shape[static_cast<size_t>(d)]);
            else if (coord >= data.shape[static_cast<size_t>(d)])
                c.fail("indices shape exceeds data shape");
            off += coord * ds[static_cast<size_t>(d)];
        }
        std::memcpy(y.data.mutable_bytes().data() + i * w,
                    data.data.bytes().data() + static_cast<size_t>(off) * w, w);
    }
    c.outputs.push_back(std::move(y));
}

namespace {

// Combines `update` into `dst` per the reduction attribute (none/add/mul/max/min).
void combine(const OpContext& c, DType dt, std::byte* dst, const std::byte* src,
             const std::string& reduction) {
    if (reduction == "none" || reduction.empty()) {
        std::memcpy(dst, src, width_of(c, dt));
        return;
    }
    double a, b;
    if (is_float(dt)) {
        a = load_float(dt, dst, 0);
        b = load_float(dt, src, 0);
    } else {
        dispatch_numeric(c, dt, [&](auto tag) {
            using T = decltype(tag);
            T x, y;
            std::memcpy(&x, dst, sizeof(T));
            std::memcpy(&y, src, sizeof(T));
            a = static_cast<double>(x);
            b = static_cast<double>(y);
        });
    }
    double r = reduction == "add"   ? a + b
               : reduction == "mul" ? a * b
               : reduction == "max" ? std::max(a, b)
               : reduction == "min" ? std::min(a, b)
                                    : std::nan("");
    if (std::isnan(r) && reduction != "add" && reduction != "mul" && reduction != "max" &&
        reduction != "min")
        c.fail(cat("reduction '", reduction, "' is not supported"));
    if (is_float(dt))
        store_float(dt, dst, 0, static_cast<float>(r));
    else
        dispatch_numeric(c, dt, [&](auto tag) {
            auto v = static_cast<decltype(tag)>(r);
            std::memcpy(dst, &v, sizeof v);
        });
}

Tensor copy_of(const Tensor& t) {
    Tensor y = make_tensor(t.dtype, t.shape);
    if (t.data.size())
        std::memcpy(y.data.mutable_bytes().data(), t.data.bytes().data(), t.data.size());
    return y;
}

}  // namespace

void op_scatter_elements(OpContext& c) {
    const Tensor& data = c.input(0);
    const Tensor& idx_t = c.input(1);
    const Tensor& upd = c.input(2);
    int64_t rank = static_cast<int64_t>(data.shape.size());
    int64_t axis = normalize_axis(c, c.node.attr_int("axis", 0), rank);
    if (idx_t.shape != upd.shape) c.fail("indices and updates shapes differ");
    std::string reduction = c.node.attr("reduction") ? c.node.attr("reduction")->s : "none";
    auto idx = read_ints(c, idx_t);
    size_t w = width_of(c, data.dtype);
    Tensor y = copy_of(data);
    auto ds = strides_of(data.shape), is = strides_of(idx_t.shape);
    for (size_t i = 0; i < idx.size(); ++i) {
        int64_t rem = static_cast<int64_t>(i), off = 0;
        for (int64_t d = 0; d < rank; ++d) {
            int64_t coord = rem / is[static_cast<size_t>(d)];
            rem %= is[static_cast<size_t>(d)];
            if (d == axis)
                coord = checked_index(c, idx[i], data.shape[static_cast<size_t>(d)]);
            else if (coord >= data.shape[static_cast<size_t>(d)])
                c.fail("indices shape exceeds data shape");
            off += coord * ds[static_cast<size_t>(d)];
        }
        combine(c, data.dtype, y.data.mutable_bytes().data() + static_cast<size_t>(off) * w,
                upd.data.bytes().data() + i * w, reduction);
    }
    c.outputs.push_back(std::move(y));
}

void op_gather_nd(OpContext& c) {
    const Tensor& data = c.input(0);
    const Tensor& idx_t = c.input(1);
    int64_t b = c.node.attr_int("batch_dims", 0);
    if (idx_t.shape.empty()) c.fail("indices must have rank >= 1");
    int64_t k = idx_t.shape.back(), r = static_cast<int64_t>(data.shape.size());
    if (b < 0 || k > r - b) c.fail("indices' last dimension is too large for data");
    auto idx = read_ints(c, idx_t);
    size_t w = width_of(c, data.dtype);
    std::vector<int64_t> out_shape(idx_t.shape.begin(), idx_t.shape.end() - 1);
    for (int64_t d = b + k; d < r; ++d) out_shape.push_back(data.shape[static_cast<size_t>(d)]);
    Tensor y = make_tensor(data.dtype, out_shape);
    auto ds = strides_of(data.shape);
    int64_t batch = 1;
    for (int64_t d = 0; d < b; ++d) batch *= data.shape[static_cast<size_t>(d)];
    int64_t slice = 1;
    for (int64_t d = b + k; d < r; ++d) slice *= data.shape[static_cast<size_t>(d)];
    int64_t tuples = static_cast<int64_t>(idx.size()) / std::max<int64_t>(k, 1);
    if (k == 0)
        tuples = idx_t.element_count() ? idx_t.element_count() : [&] {
            int64_t t = 1;
            for (size_t d = 0; d + 1 < idx_t.shape.size(); ++d) t *= idx_t.shape[d];
            return t;
        }();
    int64_t per_batch = tuples / std::max<int64_t>(batch, 1);
    int64_t batch_stride = b > 0 ? ds[static_cast<size_t>(b - 1)] : 0;
    for (int64_t t = 0; t < tuples; ++t) {
        int64_t off = (t / std::max<int64_t>(per_batch, 1)) * batch_stride;
        for (int64_t j = 0; j < k; ++j)
            off += checked_index(c, idx[static_cast<size_t>(t * k + j)],
                                 data.shape[static_cast<size_t>(b + j)]) *
                   ds[static_cast<size_t>(b + j)];
        std::memcpy(y.data.mutable_bytes().data() + static_cast<size_t>(t * slice) * w,
                    data.data.bytes().data() + static_cast<size_t>(off) * w,
                    static_cast<size_t>(slice) * w);
    }
    c.outputs.push_back(std::move(y));
}

void op_scatter_nd(OpContext& c) {
    const Tensor& data = c.input(0);
    const Tensor& idx_t = c.input(1);
    const Tensor& upd = c.input(2);
    if (idx_t.shape.empty()) c.fail("indices must have rank >= 1");
    int64_t k = idx_t.shape.back(), r = static_cast<int64_t>(data.shape.size());
    if (k > r) c.fail("indices' last dimension exceeds data rank");
    std::string reduction = c.node.attr("reduction") ? c.node.attr("reduction")->s : "none";
    auto idx = read_ints(c, idx_t);
    size_t w = width_of(c, data.dtype);
    Tensor y = copy_of(data);
    auto ds = strides_of(data.shape);
    int64_t slice = 1;
    for (int64_t d = k; d < r; ++d) slice *= data.shape[static_cast<size_t>(d)];
    int64_t tuples = k ? static_cast<int64_t>(idx.size()) / k : 0;
    if (upd.element_count() != tuples * slice)
        c.fail("updates shape does not match indices and data");
    for (int64_t t = 0; t < tuples; ++t) {
        int64_t off = 0;
        for (int64_t j = 0; j < k; ++j)
            off += checked_index(c, idx[static_cast<size_t>(t * k + j)],
                                 data.shape[static_cast<size_t>(j)]) *
                   ds[static_cast<size_t>(j)];
        for (int64_t e = 0; e < slice; ++e)
            combine(c, data.dtype, y.data.mutable_bytes().data() + static_cast<size_t>(off + e) * w,
                    upd.data.bytes().data() + static_cast<size_t>(t * slice + e) * w, reduction);
    }
    c.outputs.push_back(std::move(y));
}

void op_one_hot(OpContext& c) {
    const Tensor& indices = c.input(0);
    int64_t depth = static_cast<int64_t>(read_scalar(c, c.input(1)));
    const Tensor& values = c.input(2);
    if (depth < 0) c.fail("depth must be non-negative");
    if (values.element_count() != 2) c.fail("values must have two elements [off, on]");
    std::vector<double> idx;
    if (is_float(indices.dtype))
        for (int64_t i = 0; i < indices.element_count(); ++i)
            idx.push_back(load_float(indices.dtype, indices.data.bytes().data(), i));
    else
        dispatch_numeric(c, indices.dtype, [&](auto tag) {
            for (auto v : indices.values<decltype(tag)>()) idx.push_back(static_cast<double>(v));
        });
    int64_t rank = static_cast<int64_t>(indices.shape.size()) + 1;
    int64_t axis = normalize_axis(c, c.node.attr_int("axis", -1), rank);
    std::vector<int64_t> shape = indices.shape;
    shape.insert(shape.begin() + axis, depth);
    Tensor y = make_tensor(values.dtype, shape);
    size_t w = width_of(c, values.dtype);
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= indices.shape[static_cast<size_t>(d)];
    for (size_t d = static_cast<size_t>(axis); d < indices.shape.size(); ++d)
        inner *= indices.shape[d];
    const std::byte* off_v = values.data.bytes().data();
    const std::byte* on_v = off_v + w;
    std::byte* out = y.data.mutable_bytes().data();
    for (int64_t o = 0; o < outer; ++o)
        for (int64_t d = 0; d < depth; ++d)
            for (int64_t i = 0; i < inner; ++i) {
                int64_t v = static_cast<int64_t>(idx[static_cast<size_t>(o * inner + i)]);
                if (v < 0) v += depth;
                std::memcpy(out + static_cast<size_t>((o * depth + d) * inner + i) * w,
                            v == d ? on_v : off_v, w);
            }
    c.outputs.push_back(std::move(y));
}

void op_cum_sum(OpContext& c) {
    const Tensor& x = c.input(0);
    int64_t rank = static_cast<int64_t>(x.shape.size());
    int64_t axis = normalize_axis(c, static_cast<int64_t>(read_scalar(c, c.input(1))), rank);
    bool exclusive = c.node.attr_int("exclusive", 0) != 0,
         reverse = c.node.attr_int("reverse", 0) != 0;
    int64_t outer = 1, n = x.shape[static_cast<size_t>(axis)], inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x.shape[static_cast<size_t>(d)];
    for (int64_t d = axis + 1; d < rank; ++d) inner *= x.shape[static_cast<size_t>(d)];
    Tensor y = make_tensor(x.dtype, x.shape);
    auto run = [&](auto load, auto store) {
        for (int64_t o = 0; o < outer; ++o)
            for (int64_t i = 0; i < inner; ++i) {
                double acc = 0;
                for (int64_t s = 0; s < n; ++s) {
                    int64_t k = reverse ? n - 1 - s : s;
                    int64_t idx = (o * n + k) * inner + i;
                    double v = load(idx);
                    if (exclusive) {
                        store(idx, acc);
                        acc += v;
                    } else {
                        acc += v;
                        store(idx, acc);
                    }
                }
            }
    };
    if (is_float(x.dtype) && x.dtype != DType::F64) {
        const std::byte* in = x.data.bytes().data();
        std::byte* out = y.data.mutable_bytes().data();
        // Accumulate in the element type, as ONNX Runtime does.
        for (int64_t o = 0; o < outer; ++o)
            for (int64_t i = 0; i < inner; ++i) {
                float acc = 0;
                for (int64_t s = 0; s < n; ++s) {
                    int64_t k = reverse ? n - 1 - s : s;
                    int64_t idx = (o * n + k) * inner + i;
                    float v = load_float(x.dtype, in, idx);
                    if (exclusive) {
                        store_float(x.dtype, out, idx, acc);
                        acc += v;
                    } else {
                        acc += v;
                        store_float(x.dtype, out, idx, acc);
                    }
                }
            }
    } else if (x.dtype == DType::F64) {
        run([&](int64_t i) { return x.values<double>()[static_cast<size_t>(i)]; },
            [&](int64_t i, double v) { y.mutable_values<double>()[static_cast<size_t>(i)] = v; });
    } else {
        dispatch_numeric(c, x.dtype, [&](auto tag) {
            using T = decltype(tag);
            const T* in = x.values<T>().data();
            T* out = y.mutable_values<T>().data();
            for (int64_t o = 0; o < outer; ++o)
                for (int64_t i = 0; i < inner; ++i) {
                    T acc = 0;
                    for (int64_t s = 0; s < n; ++s) {
                        int64_t k = reverse ? n - 1 - s : s;
                        int64_t idx = (o * n + k) * inner + i;
                        T v = in[idx];
                        if (exclusive) {
                            out[idx] = acc;
                            acc = static_cast<T>(acc + v);
                        } else {
                            acc = static_cast<T>(acc + v);
                            out[idx] = acc;
                        }
                    }
                }
        });
    }
    c.outputs.push_back(std::move(y));
}

void op_trilu(OpContext& c) {
    const Tensor& x = c.input(0);
    if (x.shape.size() < 2) c.fail("expects rank >= 2");
    int64_t k = c.has_input(1) ? static_cast<int64_t>(read_scalar(c, *c.inputs[1])) : 0;
    bool upper = c.node.attr_int("upper", 1) != 0;
    size_t w = width_of(c, x.dtype);
    Tensor y = copy_of(x);
    int64_t rows = x.shape[x.shape.size() - 2], cols = x.shape.back();
    int64_t mats = rows * cols != 0 ? x.element_count() / (rows * cols) : 0;
    std::byte* out = y.data.mutable_bytes().data();
    for (int64_t m = 0; m < mats; ++m)
        for (int64_t i = 0; i < rows; ++i)
            for (int64_t j = 0; j < cols; ++j) {
                bool keep = upper ? j - i >= k : j - i <= k;
                if (!keep)
                    std::memset(out + static_cast<size_t>((m * rows + i) * cols + j) * w, 0, w);
            }
    c.outputs.push_back(std::move(y));
}

namespace {

// DepthToSpace (DCR or CRD) and SpaceToDepth as one 6-D transpose.
void space_depth(OpContext& c, bool to_space) {
    const Tensor& x = c.input(0);
    if (x.shape.size() != 4) c.fail("expects a 4-D input");
    int64_t bs = c.node.attr_int("blocksize", 0);
    if (bs <= 0) c.fail("blocksize must be positive");
    int64_t n = x.shape[0], ch = x.shape[1], h = x.shape[2], wd = x.shape[3];
    std::vector<int64_t> shape6, perm, out_shape;
    if (to_space) {
        if (ch % (bs * bs)) c.fail("channels must be divisible by blocksize^2");
        std::string mode = c.node.attr("mode") ? c.node.attr("mode")->s : "DCR";
        if (mode == "DCR") {
            shape6 = {n, bs, bs, ch / (bs * bs), h, wd};
            perm = {0, 3, 4, 1, 5, 2};
        } else {
            shape6 = {n, ch / (bs * bs), bs, bs, h, wd};
            perm = {0, 1, 4, 2, 5, 3};
        }
        out_shape = {n, ch / (bs * bs), h * bs, wd * bs};
    } else {
        if (h % bs || wd % bs) c.fail("height and width must be divisible by blocksize");
        shape6 = {n, ch, h / bs, bs, wd / bs, bs};
        perm = {0, 3, 5, 1, 2, 4};
        out_shape = {n, ch * bs * bs, h / bs, wd / bs};
    }
    size_t w = width_of(c, x.dtype);
    auto st = strides_of(shape6);
    std::vector<int64_t> pshape(6), pstride(6);
    for (size_t i = 0; i < 6; ++i) {
        pshape[i] = shape6[static_cast<size_t>(perm[i])];
        pstride[i] = st[static_cast<size_t>(perm[i])];
    }
    Tensor y = make_tensor(x.dtype, out_shape);
    int64_t total = x.element_count();
    std::vector<int64_t> idx(6, 0);
    for (int64_t o = 0; o < total; ++o) {
        int64_t off = 0;
        for (size_t d = 0; d < 6; ++d) off += idx[d] * pstride[d];
        std::memcpy(y.data.mutable_bytes().data() + static_cast<size_t>(o) * w,
                    x.data.bytes().data() + static_cast<size_t>(off) * w, w);
        for (size_t d = 6; d-- > 0;) {
            if (++idx[d] < pshape[d]) break;
            idx[d] = 0;
        }
    }
    c.outputs.push_back(std::move(y));
}

}  // namespace

void op_depth_to_space(OpContext& c) {
    space_depth(c, true);
}
void op_space_to_depth(OpContext& c) {
    space_depth(c, false);
}

void op_non_zero(OpContext& c) {
    const Tensor& x = c.input(0);
    size_t w = width_of(c, x.dtype);
    std::vector<int64_t> hits;
    for (int64_t i = 0; i < x.element_count(); ++i) {
        const std::byte* e = x.data.bytes().data() + static_cast<size_t>(i) * w;
        bool nonzero = false;
        if (is_float(x.dtype))
            nonzero = load_float(x.dtype, x.data.bytes().data(), i) != 0.0f;
        else
            for (size_t k = 0; k < w; ++k) nonzero |= e[k] != std::byte{0};
        if (nonzero) hits.push_back(i);
    }
    int64_t rank = static_cast<int64_t>(x.shape.size());
    Tensor y = make_tensor(DType::I64, {rank, static_cast<int64_t>(hits.size())});
    auto st = strides_of(x.shape);
    auto out = y.mutable_values<int64_t>();
    for (size_t j = 0; j < hits.size(); ++j) {
        int64_t rem = hits[j];
        for (int64_t d = 0; d < rank; ++d) {
            out[static_cast<size_t>(d) * hits.size() + j] = rem / st[static_cast<size_t>(d)];
            rem %= st[static_cast<size_t>(d)];
        }
    }
    c.outputs.push_back(std::move(y));
}

void op_eye_like(OpContext& c) {
    const Tensor& x = c.input(0);
    if (x.shape.size() != 2) c.fail("expects a 2-D input");
    DType dt = x.dtype;
    if (const Attribute* a = c.node.attr("dtype")) {
        auto d = dtype_from_onnx(static_cast<int>(a->i));
        if (!d) c.fail("unknown dtype");
        dt = *d;
    }
    int64_t k = c.node.attr_int("k", 0);
    Tensor y = make_tensor(dt, x.shape);
    for (int64_t i = 0; i < x.shape[0]; ++i) {
        int64_t j = i + k;
        if (j < 0 || j >= x.shape[1]) continue;
        int64_t idx = i * x.shape[1] + j;
        if (is_float(dt)) {
            if (dt == DType::F64)
                y.mutable_values<double>()[static_cast<size_t>(idx)] = 1.0;
            else
                store_float(dt, y.data.mutable_bytes().data(), idx, 1.0f);
        } else if (dt == DType::Bool) {
            y.mutable_values<uint8_t>()[static_cast<size_t>(idx)] = 1;
        } else {
            dispatch_numeric(c, dt, [&](auto tag) {
                y.mutable_values<decltype(tag)>()[static_cast<size_t>(idx)] = 1;
            });
        }
    }
    c.outputs.push_back(std::move(y));
}

}  // namespace ep::rt
