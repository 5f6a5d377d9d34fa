// Normalizations over groups of elements (InstanceNormalization and LayerNormalization
// live in ops_reduce.cpp):
//   LpNormalization (axis = -1, p = 1 or 2):  y = x / ||x||_p along axis
//   LRN (size, alpha = 1e-4, beta = 0.75, bias = 1), X [N, C, ...]:
//       y[c] = x[c] / (bias + alpha / size * sum_{c' in window(c)} x[c']^2) ^ beta,
//       window(c) = [c - floor((size - 1) / 2), c + ceil((size - 1) / 2)] within [0, C)
//   MeanVarianceNormalization (axes = [0, 2, 3]):
//       y = (x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9), expectations over axes
//   GroupNormalization (num_groups G, epsilon = 1e-5), X [N, C, ...]:
//       y = scale * (x - mean_g) / sqrt(var_g + epsilon) + bias, mean / var over the
//       C / G channels of group g and all spatial positions; scale / bias per channel [C]
//       from opset 21, per group [G] in opset 18
// Statistics and results in double, stored in X's dtype. Each output element is written
// by one thread from sums taken in one fixed order: the same bits for any thread count.
#include <cmath>

#include "runtime-check/ops/element_access.h"
#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"

namespace ep::rt {
namespace {

// X's elements as double (X must be of a float dtype).
std::vector<double> float_values(const OpContext& c, const Tensor& x, const char* what) {
    if (!is_float(x.dtype))
        c.fail(cat(what, " of type ", dtype_name(x.dtype), ": expected a float type"));
    std::vector<double> v(static_cast<size_t>(x.element_count()));
    if (x.dtype == DType::F64) {
        auto xs = x.values<double>();
        std::copy(xs.begin(), xs.end(), v.begin());
    } else {
        for (int64_t i = 0; i < x.element_count(); ++i)
            v[static_cast<size_t>(i)] = load_float(x.dtype, x.data.bytes().data(), i);
    }
    return v;
}

Tensor float_tensor(DType dtype, const std::vector<int64_t>& shape, const std::vector<double>& v) {
    Tensor y = make_uninitialized_tensor(dtype, shape);
    if (dtype == DType::F64) {
        std::copy(v.begin(), v.end(), y.mutable_values<double>().begin());
    } else {
        std::byte* out = y.data.mutable_bytes().data();
        for (size_t i = 0; i < v.size(); ++i)
            store_float(dtype, out, static_cast<int64_t>(i), static_cast<float>(v[i]));
    }
    return y;
}

}  // namespace

void op_lp_normalization(OpContext& c) {
    const Tensor& x = c.input(0);
    auto v = float_values(c, x, "input");
    const int64_t rank = static_cast<int64_t>(x.shape.size());
    if (rank == 0) c.fail("input is a scalar: expected a tensor of rank >= 1");
    const int64_t axis = normalize_axis(c, c.node.attr_int("axis", -1), rank);
    const int64_t p = c.node.attr_int("p", 2);
    if (p != 1 && p != 2) c.fail(cat("p ", p, ": expected 1 or 2"));
    AxisSplit s = split_at(x.shape, axis);
    std::vector<double> y(v.size());
    parallel_for(c.options, s.outer * s.inner, 256, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            const int64_t o = r / s.inner, i = r % s.inner;
            auto at = [&](int64_t k) {
                return static_cast<size_t>((o * s.axis + k) * s.inner + i);
            };
            double norm = 0;
            for (int64_t k = 0; k < s.axis; ++k)
                norm += p == 1 ? std::abs(v[at(k)]) : v[at(k)] * v[at(k)];
            if (p == 2) norm = std::sqrt(norm);
            for (int64_t k = 0; k < s.axis; ++k) y[at(k)] = v[at(k)] / norm;
        }
    });
    c.outputs.push_back(float_tensor(x.dtype, x.shape, y));
}

void op_lrn(OpContext& c) {
    const Tensor& x = c.input(0);
    auto v = float_values(c, x, "input");
    if (x.shape.size() < 2)
        c.fail(cat("input of shape ", shape_string(x.shape), ": expected [N, C, ...]"));
    const Attribute* size_attr = c.node.attr("size");
    if (!size_attr) c.fail("attribute 'size' is required");
    const int64_t size = c.node.attr_int("size", 0);
    if (size < 1) c.fail(cat("size ", size, ": expected >= 1"));
    const double alpha = c.node.attr_float("alpha", 1e-4f), beta = c.node.attr_float("beta", 0.75f),
                 bias = c.node.attr_float("bias", 1.0f);
    AxisSplit s = split_at(x.shape, 1);
    const int64_t before = (size - 1) / 2, after = size - 1 - before;
    std::vector<double> y(v.size());
    parallel_for(c.options, s.outer * s.axis, 16, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            const int64_t n = r / s.axis, ch = r % s.axis;
            const int64_t lo = std::max<int64_t>(0, ch - before),
                          hi = std::min<int64_t>(s.axis - 1, ch + after);
            for (int64_t i = 0; i < s.inner; ++i) {
                double sq = 0;
                for (int64_t k = lo; k <= hi; ++k) {
                    double t = v[static_cast<size_t>((n * s.axis + k) * s.inner + i)];
                    sq += t * t;
                }
                size_t at = static_cast<size_t>(r * s.inner + i);
                y[at] = v[at] / std::pow(bias + alpha / static_cast<double>(size) * sq, beta);
            }
        }
    });
    c.outputs.push_back(float_tensor(x.dtype, x.shape, y));
}

void op_mean_variance_normalization(OpContext& c) {
    const Tensor& x = c.input(0);
    auto v = float_values(c, x, "input");
    const int64_t rank = static_cast<int64_t>(x.shape.size());
    std::vector<int64_t> axes =
        c.node.attr("axes") ? c.node.attr_ints("axes") : std::vector<int64_t>{0, 2, 3};
    std::vector<bool> reduced(static_cast<size_t>(rank), false);
    for (int64_t a : axes) reduced[static_cast<size_t>(normalize_axis(c, a, rank))] = true;
    // Each element's group: its index with the reduced axes dropped.
    const int64_t n = x.element_count();
    std::vector<int64_t> group(static_cast<size_t>(n));
    int64_t groups = 1;
    for (int64_t d = 0; d < rank; ++d)
        if (!reduced[static_cast<size_t>(d)]) groups *= x.shape[static_cast<size_t>(d)];
    for (int64_t i = 0; i < n; ++i) {
        int64_t rem = i, g = 0, mul = 1;
        for (int64_t d = rank - 1; d >= 0; --d) {
            int64_t dim = x.shape[static_cast<size_t>(d)];
            int64_t idx = rem % dim;
            rem /= dim;
            if (!reduced[static_cast<size_t>(d)]) {
                g += idx * mul;
                mul *= dim;
            }
        }
        group[static_cast<size_t>(i)] = g;
    }
    std::vector<double> sum(static_cast<size_t>(groups)), sum_sq(static_cast<size_t>(groups));
    std::vector<int64_t> count(static_cast<size_t>(groups));
    for (int64_t i = 0; i < n; ++i) {
        size_t g = static_cast<size_t>(group[static_cast<size_t>(i)]);
        sum[g] += v[static_cast<size_t>(i)];
        sum_sq[g] += v[static_cast<size_t>(i)] * v[static_cast<size_t>(i)];
        ++count[g];
    }
    std::vector<double> y(v.size());
    for (int64_t i = 0; i < n; ++i) {
        size_t g = static_cast<size_t>(group[static_cast<size_t>(i)]);
        double mean = sum[g] / static_cast<double>(count[g]);
        double var = sum_sq[g] / static_cast<double>(count[g]) - mean * mean;
        y[static_cast<size_t>(i)] =
            (v[static_cast<size_t>(i)] - mean) / (std::sqrt(std::max(var, 0.0)) + 1e-9);
    }
    c.outputs.push_back(float_tensor(x.dtype, x.shape, y));
}

void op_group_normalization(OpContext& c) {
    const Tensor& x = c.input(0);
    auto v = float_values(c, x, "input");
    auto scale = float_values(c, c.input(1), "scale");
    auto bias = float_values(c, c.input(2), "bias");
    if (x.shape.size() < 2)
        c.fail(cat("input of shape ", shape_string(x.shape), ": expected [N, C, ...]"));
    if (!c.node.attr("num_groups")) c.fail("attribute 'num_groups' is required");
    const int64_t groups = c.node.attr_int("num_groups", 0);
    const double epsilon = c.node.attr_float("epsilon", 1e-5f);
    AxisSplit s = split_at(x.shape, 1);
    if (groups < 1 || s.axis % groups != 0)
        c.fail(cat("num_groups ", groups, " does not divide the ", s.axis, " channels"));
    const bool per_channel = c.opset >= 21;
    const size_t want = static_cast<size_t>(per_channel ? s.axis : groups);
    if (scale.size() != want || bias.size() != want)
        c.fail(cat("scale and bias of ", scale.size(), " and ", bias.size(), " elements: expected ",
                   want,
                   per_channel ? " (one per channel, opset 21)" : " (one per group, opset 18)"));
    const int64_t per_group = s.axis / groups * s.inner;
    std::vector<double> y(v.size());
    parallel_for(c.options, s.outer * groups, 1, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            const size_t base = static_cast<size_t>(r * per_group);
            double sum = 0;
            for (int64_t i = 0; i < per_group; ++i) sum += v[base + static_cast<size_t>(i)];
            const double mean = sum / static_cast<double>(per_group);
            double var = 0;
            for (int64_t i = 0; i < per_group; ++i) {
                double d = v[base + static_cast<size_t>(i)] - mean;
                var += d * d;
            }
            var /= static_cast<double>(per_group);
            const double inv = 1.0 / std::sqrt(var + epsilon);
            for (int64_t i = 0; i < per_group; ++i) {
                const int64_t ch = (r % groups) * (s.axis / groups) + i / s.inner;
                const size_t k = static_cast<size_t>(per_channel ? ch : r % groups);
                y[base + static_cast<size_t>(i)] =
                    scale[k] * (v[base + static_cast<size_t>(i)] - mean) * inv + bias[k];
            }
        }
    });
    c.outputs.push_back(float_tensor(x.dtype, x.shape, y));
}

}  // namespace ep::rt
