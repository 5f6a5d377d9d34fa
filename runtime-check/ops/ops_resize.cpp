// Resize (opsets 10, 11, 13, 18, 19): nearest, linear and cubic interpolation over any
// subset of axes, from `scales` or `sizes`.
//
// Every output coordinate j on a resized axis maps to an input coordinate x
// (coordinate_transformation_mode; `scale` = scales[i], or out / in when sizes are given,
// `out_w` = in * scale, the possibly fractional output length):
//   half_pixel            x = (j + 0.5) / scale - 0.5                 (default from opset 11)
//   half_pixel_symmetric  x = in / 2 * (1 - out / out_w) + (j + 0.5) / scale - 0.5
//   pytorch_half_pixel    x = out > 1 ? (j + 0.5) / scale - 0.5 : 0
//   tf_half_pixel_for_nn  x = (j + 0.5) / scale                       (opsets 11, 12)
//   align_corners         x = out_w == 1 ? 0 : j * (in - 1) / (out_w - 1)
//   asymmetric            x = j / scale                               (opset 10)
//   tf_crop_and_resize    x = roi_start * (in - 1) + j * (roi_end - roi_start) * (in - 1) / (out_w
//   - 1)
//                         (the middle of the roi when out_w == 1); outside [0, in - 1] the
//                         output is extrapolation_value
// and takes taps around x as the ONNX reference does: with ratio r = x - floor(x) (1 when x
// is whole) and n taps starting at floor(x) - n/2 + 1 (x - n/2 when x is whole), indices
// clamped to the input (edge padding):
//   nearest  one tap by nearest_mode (round_prefer_floor default; opset 10: floor when
//            upsampling, ceil when downsampling, as ONNX Runtime does)
//   linear   [1 - r, r]
//   cubic    Keys' kernel with a = cubic_coeff_a at distances 1 + r, r, 1 - r, 2 - r
//   antialias (opset 18, scale < 1): the linear/cubic kernel stretched by 1 / scale, normalized
// exclude_outside zeroes taps outside the input and renormalizes. The interpolation is
// separable: axes are resized one after another in double precision, then rounded once
// to the output type (integers round half to even and saturate).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "ir/checked.h"
#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"

namespace ep::rt {
namespace {

enum class Mode { Nearest, Linear, Cubic };

// coordinate_transformation_mode, parsed once (read_coord_mode).
enum class CoordMode {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    TfHalfPixelForNn,
    AlignCorners,
    Asymmetric,
    TfCropAndResize,
};

struct ResizeAttrs {
    Mode mode = Mode::Nearest;
    CoordMode coord = CoordMode::HalfPixel;
    std::string nearest = "round_prefer_floor";
    double cubic_a = -0.75;
    bool exclude_outside = false;
    bool antialias = false;
    double extrapolation = 0.0;
};

// Taps of one resized axis: for output j, n (index, weight) pairs, or extrapolated.
struct AxisTaps {
    int64_t in = 0, out = 0, n = 1;
    std::vector<int64_t> index;  // out * n, clamped to [0, in)
    std::vector<double> weight;  // out * n
    std::vector<uint8_t> extrapolated;
    [[nodiscard]] bool identity() const {
        if (in != out) return false;
        for (int64_t j = 0; j < out; ++j) {
            if (extrapolated[static_cast<size_t>(j)]) return false;
            for (int64_t t = 0; t < n; ++t) {
                size_t k = static_cast<size_t>(j * n + t);
                if (weight[k] != 0.0 && (index[k] != j || weight[k] != 1.0)) return false;
            }
        }
        return true;
    }
};

std::string attr_string(const OpContext& c, const char* name, std::string fallback) {
    const Attribute* a = c.node.attr(name);
    return a ? a->s : fallback;
}

double cubic_weight(double d, double a) {
    d = std::abs(d);
    if (d <= 1) return ((a + 2) * d - (a + 3)) * d * d + 1;
    if (d < 2) return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a;
    return 0.0;
}

// Kernel weights for ratio r: plain (4 or 2 taps) or antialiased (stretched by 1/scale).
std::vector<double> kernel_weights(const ResizeAttrs& at, double r, double scale) {
    if (at.mode == Mode::Linear && !at.antialias) return {1 - r, r};
    if (at.mode == Mode::Cubic && !at.antialias)
        return {cubic_weight(1 + r, at.cubic_a), cubic_weight(r, at.cubic_a),
                cubic_weight(1 - r, at.cubic_a), cubic_weight(2 - r, at.cubic_a)};
    double s = std::min(scale, 1.0);
    double support = at.mode == Mode::Linear ? 1.0 : 2.0;
    // The stretched kernel spans 2 * support / s taps: refuse absurd ones.
    if (!(s * (1 << 20) > support)) return {};
    auto start = static_cast<int64_t>(std::floor(-support / s) + 1);
    int64_t count = 2 - 2 * start;
    std::vector<double> w(static_cast<size_t>(count));
    double sum = 0;
    for (int64_t t = 0; t < count; ++t) {
        double d = s * (static_cast<double>(start + t) - r);
        double v = at.mode == Mode::Linear ? std::clamp(1 - std::abs(d), 0.0, 1.0)
                                           : cubic_weight(d, at.cubic_a);
        w[static_cast<size_t>(t)] = v;
        sum += v;
    }
    for (double& v : w) v /= sum;
    return w;
}

CoordMode read_coord_mode(const OpContext& c, bool v10) {
    const std::string m =
        attr_string(c, "coordinate_transformation_mode", v10 ? "asymmetric" : "half_pixel");
    if (m == "half_pixel") return CoordMode::HalfPixel;
    if (m == "half_pixel_symmetric") return CoordMode::HalfPixelSymmetric;
    if (m == "pytorch_half_pixel") return CoordMode::PytorchHalfPixel;
    if (m == "tf_half_pixel_for_nn") return CoordMode::TfHalfPixelForNn;
    if (m == "align_corners") return CoordMode::AlignCorners;
    if (m == "asymmetric") return CoordMode::Asymmetric;
    if (m == "tf_crop_and_resize") return CoordMode::TfCropAndResize;
    c.fail(cat("coordinate_transformation_mode '", m, "' is not one of half_pixel, ",
               "half_pixel_symmetric, pytorch_half_pixel, tf_half_pixel_for_nn, ",
               "align_corners, asymmetric, tf_crop_and_resize"));
}

int64_t nearest_index(const std::string& mode, double x, double scale) {
    double f = std::floor(x), frac = x - f;
    auto fi = static_cast<int64_t>(f);
    if (frac == 0) return fi;
    if (mode == "round_prefer_floor") return frac <= 0.5 ? fi : fi + 1;
    if (mode == "round_prefer_ceil") return frac < 0.5 ? fi : fi + 1;
    if (mode == "floor") return fi;
    if (mode == "ceil") return fi + 1;
    // "simple" (opset 10, as ONNX Runtime): ceil when downsampling, else floor.
    return scale < 1 ? fi + 1 : fi;
}

AxisTaps make_taps(const OpContext& c, const ResizeAttrs& at, int64_t in, int64_t out, double scale,
                   double out_w, double roi_start, double roi_end) {
    AxisTaps t;
    t.in = in;
    t.out = out;
    t.extrapolated.assign(static_cast<size_t>(out), 0);
    if (out == 0) return t;
    if (in == 0) c.fail(cat("cannot resize an empty axis to ", out, " elements"));
    const double len = static_cast<double>(in);
    for (int64_t j = 0; j < out; ++j) {
        const double y = static_cast<double>(j);
        double x = 0;
        switch (at.coord) {
            case CoordMode::HalfPixel:
                x = (y + 0.5) / scale - 0.5;
                break;
            case CoordMode::HalfPixelSymmetric: {
                double offset = len / 2 * (1 - static_cast<double>(out) / out_w);
                x = offset + (y + 0.5) / scale - 0.5;
                break;
            }
            case CoordMode::PytorchHalfPixel:
                x = out > 1 ? (y + 0.5) / scale - 0.5 : 0.0;
                break;
            case CoordMode::TfHalfPixelForNn:
                x = (y + 0.5) / scale;
                break;
            case CoordMode::AlignCorners:
                x = out_w == 1 ? 0.0 : y * (len - 1) / (out_w - 1);
                break;
            case CoordMode::Asymmetric:
                x = y / scale;
                break;
            case CoordMode::TfCropAndResize:
                x = out_w == 1 ? (roi_end - roi_start) * (len - 1) / 2
                               : y * (roi_end - roi_start) * (len - 1) / (out_w - 1);
                x += roi_start * (len - 1);
                if (x < 0 || x > len - 1) {
                    t.extrapolated[static_cast<size_t>(j)] = 1;
                    x = 0;
                }
                break;
        }
        if (!std::isfinite(x)) c.fail(cat("coordinate ", x, " for output ", j, " is not finite"));
        // Far outside the input every tap clamps to the same edge element: bound x so the
        // index arithmetic below cannot overflow.
        x = std::clamp(x, -1e15, 1e15);
        if (at.mode == Mode::Nearest) {
            t.index.push_back(std::clamp<int64_t>(nearest_index(at.nearest, x, scale), 0, in - 1));
            t.weight.push_back(1.0);
            continue;
        }
        double f = std::floor(x);
        bool whole = x == f;
        double r = whole ? 1.0 : x - f;
        std::vector<double> w = kernel_weights(at, r, scale);
        if (w.empty()) c.fail(cat("antialias with scale ", scale, " would need over 2^20 taps"));
        auto n = static_cast<int64_t>(w.size());
        if (j == 0) t.n = n;
        int64_t base = static_cast<int64_t>(f) - n / 2 + (whole ? 0 : 1);
        if (at.exclude_outside) {
            double sum = 0;
            for (int64_t k = 0; k < n; ++k) {
                int64_t idx = base + k;
                if (idx < 0 || idx >= in) w[static_cast<size_t>(k)] = 0;
                sum += w[static_cast<size_t>(k)];
            }
            if (sum != 0)
                for (double& v : w) v /= sum;
        }
        for (int64_t k = 0; k < n; ++k) {
            t.index.push_back(std::clamp<int64_t>(base + k, 0, in - 1));
            t.weight.push_back(w[static_cast<size_t>(k)]);
        }
    }
    return t;
}

std::vector<double> read_doubles(const OpContext& c, const Tensor& t, const char* what) {
    if (!is_float(t.dtype)) c.fail(cat(what, " must be float, found ", dtype_name(t.dtype)));
    std::vector<double> v(static_cast<size_t>(t.element_count()));
    for (size_t i = 0; i < v.size(); ++i)
        v[i] = t.dtype == DType::F64
                   ? t.values<double>()[i]
                   : load_float(t.dtype, t.data.bytes().data(), static_cast<int64_t>(i));
    return v;
}

// An input that is present and not empty (opset 11+ passes "" or an empty tensor for
// the unused one of scales/sizes).
const Tensor* given(const OpContext& c, size_t i) {
    if (!c.has_input(i) || c.inputs[i]->element_count() == 0) return nullptr;
    return c.inputs[i];
}

// Elements of x as double; nearest mode copies bytes instead.
std::vector<double> to_doubles(const OpContext& c, const Tensor& x) {
    std::vector<double> v(static_cast<size_t>(x.element_count()));
    if (x.dtype == DType::F64) {
        auto s = x.values<double>();
        std::copy(s.begin(), s.end(), v.begin());
    } else if (is_float(x.dtype)) {
        for (size_t i = 0; i < v.size(); ++i)
            v[i] = load_float(x.dtype, x.data.bytes().data(), static_cast<int64_t>(i));
    } else {
        dispatch_numeric(c, x.dtype, [&](auto tag) {
            auto s = x.values<decltype(tag)>();
            for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(s[i]);
        });
    }
    return v;
}

void store_doubles(const OpContext& c, const std::vector<double>& v, Tensor& y) {
    if (y.dtype == DType::F64) {
        std::copy(v.begin(), v.end(), y.mutable_values<double>().begin());
    } else if (is_float(y.dtype)) {
        std::byte* out = y.data.mutable_bytes().data();
        for (size_t i = 0; i < v.size(); ++i)
            store_float(y.dtype, out, static_cast<int64_t>(i), static_cast<float>(v[i]));
    } else {
        dispatch_numeric(c, y.dtype, [&](auto tag) {
            using T = decltype(tag);
            auto out = y.mutable_values<T>();
            const auto lo = static_cast<double>(std::numeric_limits<T>::lowest());
            const auto hi = static_cast<double>(std::numeric_limits<T>::max());
            for (size_t i = 0; i < v.size(); ++i) {
                double r = std::nearbyint(v[i]);
                out[i] = std::isnan(r) ? T{0}
                         : r <= lo     ? std::numeric_limits<T>::lowest()
                         : r >= hi     ? std::numeric_limits<T>::max()
                                       : static_cast<T>(r);
            }
        });
    }
}

}  // namespace

void op_resize(OpContext& c) {
    const Tensor& x = c.input(0);
    const auto rank = static_cast<int64_t>(x.shape.size());
    ResizeAttrs at;
    std::string mode = attr_string(c, "mode", "nearest");
    if (mode == "nearest")
        at.mode = Mode::Nearest;
    else if (mode == "linear")
        at.mode = Mode::Linear;
    else if (mode == "cubic")
        at.mode = Mode::Cubic;
    else
        c.fail(cat("mode '", mode, "' is not one of nearest, linear, cubic"));
    const bool v10 = c.opset > 0 && c.opset < 11;
    at.coord = read_coord_mode(c, v10);
    at.nearest = attr_string(c, "nearest_mode", v10 ? "simple" : "round_prefer_floor");
    if (at.nearest != "round_prefer_floor" && at.nearest != "round_prefer_ceil" &&
        at.nearest != "floor" && at.nearest != "ceil" && !(v10 && at.nearest == "simple"))
        c.fail(cat("nearest_mode '", at.nearest, "' is not one of round_prefer_floor, ",
                   "round_prefer_ceil, floor, ceil"));
    at.cubic_a = c.node.attr_float("cubic_coeff_a", -0.75f);
    at.exclude_outside = c.node.attr_int("exclude_outside", 0) != 0;
    at.extrapolation = c.node.attr_float("extrapolation_value", 0.0f);
    at.antialias = c.node.attr_int("antialias", 0) != 0;
    if (at.antialias && at.mode == Mode::Nearest)
        c.fail("antialias applies to linear and cubic modes only, not nearest");
    std::string policy = attr_string(c, "keep_aspect_ratio_policy", "stretch");
    if (policy != "stretch" && policy != "not_larger" && policy != "not_smaller")
        c.fail(cat("keep_aspect_ratio_policy '", policy,
                   "' is not one of stretch, not_larger, not_smaller"));
    if (at.mode != Mode::Nearest && !is_float(x.dtype) &&
        (x.dtype == DType::Bool || x.dtype == DType::String || traits(x.dtype).bits < 8))
        c.fail(cat("mode ", mode, " cannot interpolate ", dtype_name(x.dtype)));

    // Which axes the roi/scales/sizes entries refer to.
    std::vector<int64_t> axes = c.node.attr_ints("axes");
    if (axes.empty())
        for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
    std::vector<bool> seen(static_cast<size_t>(rank), false);
    for (int64_t& a : axes) {
        a = normalize_axis(c, a, rank);
        if (seen[static_cast<size_t>(a)]) c.fail(cat("axis ", a, " appears twice in axes"));
        seen[static_cast<size_t>(a)] = true;
    }
    const auto na = static_cast<int64_t>(axes.size());

    const Tensor* roi_t = v10 ? nullptr : given(c, 1);
    const Tensor* scales_t = v10 ? &c.input(1) : given(c, 2);
    const Tensor* sizes_t = v10 ? nullptr : given(c, 3);
    if (scales_t && sizes_t) c.fail("only one of scales and sizes may be given");
    if (!scales_t && !sizes_t) c.fail("one of scales and sizes must be given");

    std::vector<double> roi_start(static_cast<size_t>(rank), 0.0),
        roi_end(static_cast<size_t>(rank), 1.0);
    if (roi_t && at.coord == CoordMode::TfCropAndResize) {
        std::vector<double> roi = read_doubles(c, *roi_t, "roi");
        if (static_cast<int64_t>(roi.size()) != 2 * na)
            c.fail(cat("roi must have 2 x ", na, " elements, found ", roi.size()));
        for (int64_t i = 0; i < na; ++i) {
            roi_start[static_cast<size_t>(axes[static_cast<size_t>(i)])] =
                roi[static_cast<size_t>(i)];
            roi_end[static_cast<size_t>(axes[static_cast<size_t>(i)])] =
                roi[static_cast<size_t>(na + i)];
        }
    }

    std::vector<int64_t> out_shape = x.shape;
    std::vector<double> scale(static_cast<size_t>(rank), 1.0), out_w(static_cast<size_t>(rank));
    for (int64_t d = 0; d < rank; ++d)
        out_w[static_cast<size_t>(d)] = static_cast<double>(x.shape[static_cast<size_t>(d)]);
    if (scales_t) {
        std::vector<double> s = read_doubles(c, *scales_t, "scales");
        if (static_cast<int64_t>(s.size()) != na)
            c.fail(cat("scales must have ", na, " elements, found ", s.size()));
        for (int64_t i = 0; i < na; ++i) {
            auto d = static_cast<size_t>(axes[static_cast<size_t>(i)]);
            double sv = s[static_cast<size_t>(i)];
            if (!(sv > 0) || !std::isfinite(sv))
                c.fail(cat("scales[", i, "] = ", sv, " must be positive"));
            scale[d] = sv;
            double in = static_cast<double>(x.shape[d]);
            double crop = at.coord == CoordMode::TfCropAndResize ? roi_end[d] - roi_start[d] : 1.0;
            out_w[d] = in * sv;
            double o = std::floor(in * crop * sv);
            if (!(o >= 0) || o > static_cast<double>(std::numeric_limits<int32_t>::max()))
                c.fail(cat("output size ", o, " on axis ", d, " is out of range"));
            out_shape[d] = static_cast<int64_t>(o);
        }
    } else {
        std::vector<int64_t> sz = read_ints(c, *sizes_t);
        if (static_cast<int64_t>(sz.size()) != na)
            c.fail(cat("sizes must have ", na, " elements, found ", sz.size()));
        for (int64_t i = 0; i < na; ++i) {
            auto d = static_cast<size_t>(axes[static_cast<size_t>(i)]);
            if (sz[static_cast<size_t>(i)] < 0) c.fail(cat("sizes[", i, "] is negative"));
            out_shape[d] = sz[static_cast<size_t>(i)];
            scale[d] = x.shape[d]
                           ? static_cast<double>(out_shape[d]) / static_cast<double>(x.shape[d])
                           : 1.0;
            out_w[d] = static_cast<double>(out_shape[d]);
        }
        if (policy != "stretch") {
            double s = policy == "not_larger" ? std::numeric_limits<double>::infinity() : 0.0;
            for (int64_t a : axes)
                s = policy == "not_larger" ? std::min(s, scale[static_cast<size_t>(a)])
                                           : std::max(s, scale[static_cast<size_t>(a)]);
            for (int64_t a : axes) {
                auto d = static_cast<size_t>(a);
                scale[d] = s;
                const double o = s * static_cast<double>(x.shape[d]) + 0.5;
                if (!(o < static_cast<double>(std::numeric_limits<int32_t>::max())))
                    c.fail(cat("output size ", o, " on axis ", d, " is out of range"));
                out_shape[d] = static_cast<int64_t>(o);
                out_w[d] = s * static_cast<double>(x.shape[d]);
            }
        }
    }
    if (!checked_element_count(out_shape))
        c.fail(cat("output shape ", shape_string(out_shape), " is too large"));

    std::vector<AxisTaps> taps;
    std::vector<int64_t> resized;  // axes that are not the identity, in order
    for (int64_t d = 0; d < rank; ++d) {
        auto u = static_cast<size_t>(d);
        taps.push_back(make_taps(c, at, x.shape[u], out_shape[u], scale[u], out_w[u], roi_start[u],
                                 roi_end[u]));
        if (!taps.back().identity()) resized.push_back(d);
    }
    Tensor y = make_tensor(x.dtype, out_shape);
    if (y.element_count() == 0 || resized.empty()) {
        if (y.element_count() != 0) y.data = x.data;  // identity on every axis
        c.outputs.push_back(std::move(y));
        return;
    }

    if (at.mode == Mode::Nearest) {
        // One gather over all axes, copying element bytes (exact for every type).
        int bits = traits(x.dtype).bits;
        if (x.dtype == DType::String || bits < 8)
            c.fail(cat("cannot resize ", dtype_name(x.dtype)));
        const auto width = static_cast<size_t>(bits / 8);
        std::vector<std::byte> fill(width);
        bool any_extrapolated = false;
        for (const auto& t : taps)
            for (uint8_t e : t.extrapolated) any_extrapolated |= e != 0;
        if (any_extrapolated) {
            Tensor e = make_tensor(x.dtype, {1});
            store_doubles(c, {at.extrapolation}, e);
            std::memcpy(fill.data(), e.data.bytes().data(), width);
        }
        std::vector<int64_t> in_strides(static_cast<size_t>(rank), 1);
        for (int64_t d = rank - 1; d > 0; --d)
            in_strides[static_cast<size_t>(d - 1)] =
                in_strides[static_cast<size_t>(d)] * x.shape[static_cast<size_t>(d)];
        const int64_t inner = out_shape.back(), rows = y.element_count() / inner;
        const std::byte* src = x.data.bytes().data();
        std::byte* dst = y.data.mutable_bytes().data();
        const AxisTaps& last = taps.back();
        parallel_for(
            c.options, rows, std::max<int64_t>(1, 16384 / inner), [&](int64_t r0, int64_t r1) {
                for (int64_t r = r0; r < r1; ++r) {
                    int64_t off = 0, rem = r;
                    bool outside = false;
                    for (int64_t d = rank - 2; d >= 0; --d) {
                        auto u = static_cast<size_t>(d);
                        int64_t j = rem % out_shape[u];
                        rem /= out_shape[u];
                        outside |= taps[u].extrapolated[static_cast<size_t>(j)] != 0;
                        off += taps[u].index[static_cast<size_t>(j)] * in_strides[u];
                    }
                    std::byte* out = dst + static_cast<size_t>(r * inner) * width;
                    for (int64_t j = 0; j < inner; ++j) {
                        const std::byte* from =
                            outside || last.extrapolated[static_cast<size_t>(j)]
                                ? fill.data()
                                : src + static_cast<size_t>(off +
                                                            last.index[static_cast<size_t>(j)]) *
                                            width;
                        std::memcpy(out + static_cast<size_t>(j) * width, from, width);
                    }
                }
            });
        c.outputs.push_back(std::move(y));
        return;
    }

    // Linear / cubic: resize one axis at a time in double. Every intermediate is bounded
    // like an output before anything is allocated.
    {
        std::vector<int64_t> s = x.shape;
        for (int64_t d : resized) {
            s[static_cast<size_t>(d)] = out_shape[static_cast<size_t>(d)];
            auto n = checked_element_count(s);
            if (!n || *n > (uint64_t{1} << 36))
                c.fail(cat("an intermediate of shape ", shape_string(s), " is too large"));
        }
    }
    std::vector<double> cur = to_doubles(c, x);
    std::vector<int64_t> shape = x.shape;
    for (int64_t d : resized) {
        const AxisTaps& t = taps[static_cast<size_t>(d)];
        int64_t outer = 1, inner = 1;
        for (int64_t k = 0; k < d; ++k) outer *= shape[static_cast<size_t>(k)];
        for (int64_t k = d + 1; k < rank; ++k) inner *= shape[static_cast<size_t>(k)];
        std::vector<double> next(static_cast<size_t>(outer * t.out * inner));
        if (inner == 1) {
            // The last axis: one output element per tap set.
            parallel_for(
                c.options, outer, std::max<int64_t>(1, 4096 / std::max<int64_t>(t.out, 1)),
                [&](int64_t o0, int64_t o1) {
                    for (int64_t o = o0; o < o1; ++o) {
                        const double* src = cur.data() + o * t.in;
                        double* dst = next.data() + o * t.out;
                        for (int64_t j = 0; j < t.out; ++j) {
                            if (t.extrapolated[static_cast<size_t>(j)]) {
                                dst[j] = at.extrapolation;
                                continue;
                            }
                            double acc = 0.0;
                            for (int64_t k = 0; k < t.n; ++k) {
                                const double w = t.weight[static_cast<size_t>(j * t.n + k)];
                                if (w != 0.0)
                                    acc += w * src[t.index[static_cast<size_t>(j * t.n + k)]];
                            }
                            dst[j] = acc;
                        }
                    }
                });
            cur = std::move(next);
            shape[static_cast<size_t>(d)] = t.out;
            continue;
        }
        parallel_for(c.options, outer * t.out,
                     std::max<int64_t>(1, 4096 / std::max<int64_t>(inner, 1)),
                     [&](int64_t r0, int64_t r1) {
                         for (int64_t r = r0; r < r1; ++r) {
                             int64_t o = r / t.out, j = r % t.out;
                             double* dst = next.data() + r * inner;
                             if (t.extrapolated[static_cast<size_t>(j)]) {
                                 std::fill(dst, dst + inner, at.extrapolation);
                                 continue;
                             }
                             std::fill(dst, dst + inner, 0.0);
                             for (int64_t k = 0; k < t.n; ++k) {
                                 const double w = t.weight[static_cast<size_t>(j * t.n + k)];
                                 if (w == 0.0) continue;
                                 const double* src =
                                     cur.data() +
                                     (o * t.in + t.index[static_cast<size_t>(j * t.n + k)]) * inner;
#pragma omp simd
                                 for (int64_t i = 0; i < inner; ++i) dst[i] += w * src[i];
                             }
                         }
                     });
        cur = std::move(next);
        shape[static_cast<size_t>(d)] = t.out;
    }
    store_doubles(c, cur, y);
    c.outputs.push_back(std::move(y));
}

}  // namespace ep::rt
