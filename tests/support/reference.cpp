#include "tests/support/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ep::rt::ref {
namespace {

std::vector<double> values_of(const Tensor& t, const char* what) {
    if (t.dtype != DType::F32)
        throw InputError(cat("reference: ", what, " must be f32, found ", dtype_name(t.dtype)));
    t.check_consistent();
    auto v = t.values<float>();
    return {v.begin(), v.end()};
}

Tensor to_tensor(const std::vector<int64_t>& shape, const std::vector<double>& v) {
    std::vector<float> f(v.size());
    for (size_t i = 0; i < v.size(); ++i) f[i] = static_cast<float>(v[i]);
    return make_f32_tensor("", shape, f);
}

int64_t count(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

// Row-major multi-index of flat index i.
std::vector<int64_t> unravel(int64_t i, const std::vector<int64_t>& shape) {
    std::vector<int64_t> idx(shape.size());
    for (size_t d = shape.size(); d-- > 0;) {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    return idx;
}

// Flat index into `shape` of the multi-index `idx` of a broadcast output (aligned at
// the right; dimensions of size 1 repeat).
int64_t broadcast_index(const std::vector<int64_t>& idx, const std::vector<int64_t>& shape) {
    int64_t flat = 0;
    size_t off = idx.size() - shape.size();
    for (size_t d = 0; d < shape.size(); ++d)
        flat = flat * shape[d] + (shape[d] == 1 ? 0 : idx[off + d]);
    return flat;
}

std::vector<int64_t> broadcast_shape(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
    size_t rank = std::max(a.size(), b.size());
    std::vector<int64_t> out(rank);
    for (size_t i = 0; i < rank; ++i) {
        int64_t da = i + a.size() >= rank ? a[i + a.size() - rank] : 1;
        int64_t db = i + b.size() >= rank ? b[i + b.size() - rank] : 1;
        if (da != db && da != 1 && db != 1)
            throw InputError(cat("reference: shapes ", shape_string(a), " and ", shape_string(b),
                                 " do not broadcast"));
        out[i] = da == 1 ? db : da;
    }
    return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
    std::vector<double> av = values_of(a, "A"), bv = values_of(b, "B");
    std::vector<int64_t> as = a.shape, bs = b.shape;
    if (as.empty() || bs.empty()) throw InputError("reference: matmul needs rank >= 1");
    bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
    if (a_vec) as.insert(as.begin(), 1);
    if (b_vec) bs.push_back(1);
    int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
    if (bs[bs.size() - 2] != k)
        throw InputError(
            cat("reference: matmul ", shape_string(a.shape), " x ", shape_string(b.shape)));
    std::vector<int64_t> a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
    std::vector<int64_t> batch = broadcast_shape(a_batch, b_batch);
    std::vector<int64_t> out_shape = batch;
    out_shape.push_back(m);
    out_shape.push_back(n);
    std::vector<double> y(static_cast<size_t>(count(out_shape)));
    for (int64_t bi = 0; bi < count(batch); ++bi) {
        std::vector<int64_t> idx = unravel(bi, batch);
        int64_t ab = a_batch.empty() ? 0 : broadcast_index(idx, a_batch);
        int64_t bb = b_batch.empty() ? 0 : broadcast_index(idx, b_batch);
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
                double sum = 0;
                for (int64_t kk = 0; kk < k; ++kk)
                    sum += av[static_cast<size_t>((ab * m + i) * k + kk)] *
                           bv[static_cast<size_t>((bb * k + kk) * n + j)];
                y[static_cast<size_t>((bi * m + i) * n + j)] = sum;
            }
    }
    if (a_vec) out_shape.erase(out_shape.end() - 2);
    if (b_vec) out_shape.pop_back();
    return to_tensor(out_shape, y);
}

Tensor gemm(const Tensor& a, const Tensor& b, const Tensor* c, const GemmParams& p) {
    std::vector<double> av = values_of(a, "A"), bv = values_of(b, "B");
    if (a.shape.size() != 2 || b.shape.size() != 2)
        throw InputError("reference: gemm needs 2-D A and B");
    int64_t m = p.trans_a ? a.shape[1] : a.shape[0], k = p.trans_a ? a.shape[0] : a.shape[1];
    int64_t kb = p.trans_b ? b.shape[1] : b.shape[0], n = p.trans_b ? b.shape[0] : b.shape[1];
    if (k != kb) throw InputError("reference: gemm inner dimensions differ");
    auto at = [&](int64_t i, int64_t kk) {
        return av[static_cast<size_t>(p.trans_a ? kk * m + i : i * k + kk)];
    };
    auto bt = [&](int64_t kk, int64_t j) {
        return bv[static_cast<size_t>(p.trans_b ? j * k + kk : kk * n + j)];
    };
    std::vector<double> cv;
    if (c) {
        cv = values_of(*c, "C");
        if (broadcast_shape(c->shape, {m, n}) != std::vector<int64_t>{m, n})
            throw InputError("reference: C does not broadcast to [M, N]");
    }
    std::vector<double> y(static_cast<size_t>(m * n));
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double sum = 0;
            for (int64_t kk = 0; kk < k; ++kk) sum += at(i, kk) * bt(kk, j);
            double v = p.alpha * sum;
            if (c) v += p.beta * cv[static_cast<size_t>(broadcast_index({i, j}, c->shape))];
            y[static_cast<size_t>(i * n + j)] = v;
        }
    return to_tensor({m, n}, y);
}

namespace {

struct Geometry {
    size_t s = 0;
    std::vector<int64_t> strides, pads_begin, pads_end, dilations;
};

Geometry geometry(const ConvParams& p, size_t s) {
    Geometry g;
    g.s = s;
    g.strides = p.strides.empty() ? std::vector<int64_t>(s, 1) : p.strides;
    g.dilations = p.dilations.empty() ? std::vector<int64_t>(s, 1) : p.dilations;
    std::vector<int64_t> pads = p.pads.empty() ? std::vector<int64_t>(2 * s, 0) : p.pads;
    if (g.strides.size() != s || g.dilations.size() != s || pads.size() != 2 * s)
        throw InputError("reference: strides, dilations or pads do not match the spatial rank");
    g.pads_begin.assign(pads.begin(), pads.begin() + static_cast<int64_t>(s));
    g.pads_end.assign(pads.begin() + static_cast<int64_t>(s), pads.end());
    return g;
}

}  // namespace

Tensor conv(const Tensor& x, const Tensor& w, const Tensor* bias, const ConvParams& p) {
    std::vector<double> xv = values_of(x, "X"), wv = values_of(w, "W");
    if (x.shape.size() < 3 || w.shape.size() != x.shape.size())
        throw InputError("reference: conv needs X [N, C, ...] and W [M, C/group, ...]");
    const size_t s = x.shape.size() - 2;
    const int64_t n = x.shape[0], c = x.shape[1], m = w.shape[0], group = p.group;
    if (group <= 0 || c % group || m % group || w.shape[1] != c / group)
        throw InputError("reference: conv channels do not match the group");
    Geometry g = geometry(p, s);
    std::vector<int64_t> in(x.shape.begin() + 2, x.shape.end()),
        kernel(w.shape.begin() + 2, w.shape.end());
    std::vector<int64_t> out(s);
    for (size_t d = 0; d < s; ++d)
        out[d] =
            (in[d] + g.pads_begin[d] + g.pads_end[d] - ((kernel[d] - 1) * g.dilations[d] + 1)) /
                g.strides[d] +
            1;
    std::vector<double> bv =
        bias ? values_of(*bias, "B") : std::vector<double>(static_cast<size_t>(m), 0.0);
    std::vector<int64_t> out_shape{n, m};
    out_shape.insert(out_shape.end(), out.begin(), out.end());
    std::vector<double> y(static_cast<size_t>(count(out_shape)));
    const int64_t cg = c / group, mg = m / group;
    const int64_t out_count = count(out), kernel_count = count(kernel), in_count = count(in);
    std::vector<std::vector<int64_t>> kernel_index;
    for (int64_t kk = 0; kk < kernel_count; ++kk) kernel_index.push_back(unravel(kk, kernel));
    for (int64_t b = 0; b < n; ++b)
        for (int64_t oc = 0; oc < m; ++oc) {
            const int64_t gi = oc / mg;
            for (int64_t o = 0; o < out_count; ++o) {
                std::vector<int64_t> oi = unravel(o, out);
                double sum = bv[static_cast<size_t>(oc)];
                for (int64_t ic = 0; ic < cg; ++ic)
                    for (int64_t kk = 0; kk < kernel_count; ++kk) {
                        const std::vector<int64_t>& ki = kernel_index[static_cast<size_t>(kk)];
                        int64_t flat = 0;
                        bool inside = true;
                        for (size_t d = 0; d < s; ++d) {
                            int64_t pos =
                                oi[d] * g.strides[d] - g.pads_begin[d] + ki[d] * g.dilations[d];
                            if (pos < 0 || pos >= in[d]) inside = false;
                            flat = flat * in[d] + pos;
                        }
                        if (!inside) continue;
                        double xval =
                            xv[static_cast<size_t>((b * c + gi * cg + ic) * in_count + flat)];
                        double wval = wv[static_cast<size_t>((oc * cg + ic) * kernel_count + kk)];
                        sum += xval * wval;
                    }
                y[static_cast<size_t>((b * m + oc) * out_count + o)] = sum;
            }
        }
    return to_tensor(out_shape, y);
}

Tensor conv_transpose(const Tensor& x, const Tensor& w, const Tensor* bias, const ConvParams& p) {
    std::vector<double> xv = values_of(x, "X"), wv = values_of(w, "W");
    if (x.shape.size() < 3 || w.shape.size() != x.shape.size())
        throw InputError("reference: conv_transpose needs X [N, C, ...] and W [C, M/group, ...]");
    const size_t s = x.shape.size() - 2;
    const int64_t n = x.shape[0], c = x.shape[1], group = p.group;
    if (group <= 0 || w.shape[0] != c || c % group)
        throw InputError("reference: conv_transpose channels do not match the group");
    const int64_t mg = w.shape[1], m = mg * group, cg = c / group;
    Geometry g = geometry(p, s);
    std::vector<int64_t> op =
        p.output_padding.empty() ? std::vector<int64_t>(s, 0) : p.output_padding;
    std::vector<int64_t> in(x.shape.begin() + 2, x.shape.end()),
        kernel(w.shape.begin() + 2, w.shape.end());
    std::vector<int64_t> out(s);
    for (size_t d = 0; d < s; ++d)
        out[d] = g.strides[d] * (in[d] - 1) + op[d] + (kernel[d] - 1) * g.dilations[d] + 1 -
                 g.pads_begin[d] - g.pads_end[d];
    std::vector<int64_t> out_shape{n, m};
    out_shape.insert(out_shape.end(), out.begin(), out.end());
    std::vector<double> y(static_cast<size_t>(count(out_shape)), 0.0);
    const int64_t in_count = count(in), out_count = count(out), kernel_count = count(kernel);
    std::vector<std::vector<int64_t>> kernel_index;
    for (int64_t kk = 0; kk < kernel_count; ++kk) kernel_index.push_back(unravel(kk, kernel));
    for (int64_t b = 0; b < n; ++b)
        for (int64_t ic = 0; ic < c; ++ic) {
            const int64_t gi = ic / cg;
            for (int64_t i = 0; i < in_count; ++i) {
                std::vector<int64_t> ii = unravel(i, in);
                double xval = xv[static_cast<size_t>((b * c + ic) * in_count + i)];
                for (int64_t oc = 0; oc < mg; ++oc)
                    for (int64_t kk = 0; kk < kernel_count; ++kk) {
                        const std::vector<int64_t>& ki = kernel_index[static_cast<size_t>(kk)];
                        int64_t flat = 0;
                        bool inside = true;
                        for (size_t d = 0; d < s; ++d) {
                            int64_t pos =
                                ii[d] * g.strides[d] - g.pads_begin[d] + ki[d] * g.dilations[d];
                            if (pos < 0 || pos >= out[d]) inside = false;
                            flat = flat * out[d] + pos;
                        }
                        if (!inside) continue;
                        y[static_cast<size_t>((b * m + gi * mg + oc) * out_count + flat)] +=
                            xval * wv[static_cast<size_t>((ic * mg + oc) * kernel_count + kk)];
                    }
            }
        }
    if (bias) {
        std::vector<double> bv = values_of(*bias, "B");
        for (int64_t b = 0; b < n; ++b)
            for (int64_t oc = 0; oc < m; ++oc)
                for (int64_t o = 0; o < out_count; ++o)
                    y[static_cast<size_t>((b * m + oc) * out_count + o)] +=
                        bv[static_cast<size_t>(oc)];
    }
    return to_tensor(out_shape, y);
}

Tensor softmax(const Tensor& x, int64_t axis, bool log) {
    std::vector<double> xv = values_of(x, "X");
    auto rank = static_cast<int64_t>(x.shape.size());
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) throw InputError("reference: softmax axis out of range");
    int64_t outer = 1, len = x.shape[static_cast<size_t>(axis)], inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x.shape[static_cast<size_t>(d)];
    for (int64_t d = axis + 1; d < rank; ++d) inner *= x.shape[static_cast<size_t>(d)];
    std::vector<double> y(xv.size());
    for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < inner; ++i) {
            auto at = [&](int64_t k) { return static_cast<size_t>((o * len + k) * inner + i); };
            double mx = -std::numeric_limits<double>::infinity();
            for (int64_t k = 0; k < len; ++k) mx = std::max(mx, xv[at(k)]);
            double sum = 0;
            for (int64_t k = 0; k < len; ++k) sum += std::exp(xv[at(k)] - mx);
            for (int64_t k = 0; k < len; ++k)
                y[at(k)] = log ? xv[at(k)] - mx - std::log(sum) : std::exp(xv[at(k)] - mx) / sum;
        }
    return to_tensor(x.shape, y);
}

Tensor layer_norm(const Tensor& x, const Tensor& scale, const Tensor* bias, int64_t axis,
                  double eps) {
    std::vector<double> xv = values_of(x, "X"), sv = values_of(scale, "scale");
    std::vector<double> bv = bias ? values_of(*bias, "B") : std::vector<double>();
    auto rank = static_cast<int64_t>(x.shape.size());
    if (axis < 0) axis += rank;
    int64_t outer = 1, len = 1;
    for (int64_t d = 0; d < rank; ++d) (d < axis ? outer : len) *= x.shape[static_cast<size_t>(d)];
    if (static_cast<int64_t>(sv.size()) != len || (bias && static_cast<int64_t>(bv.size()) != len))
        throw InputError("reference: layer_norm scale/bias must cover the normalized axes");
    std::vector<double> y(xv.size());
    for (int64_t o = 0; o < outer; ++o) {
        const double* row = xv.data() + o * len;
        double mean = 0;
        for (int64_t k = 0; k < len; ++k) mean += row[k];
        mean /= static_cast<double>(len);
        double var = 0;
        for (int64_t k = 0; k < len; ++k) var += (row[k] - mean) * (row[k] - mean);
        var /= static_cast<double>(len);
        for (int64_t k = 0; k < len; ++k) {
            double v = (row[k] - mean) / std::sqrt(var + eps) * sv[static_cast<size_t>(k)];
            y[static_cast<size_t>(o * len + k)] = bias ? v + bv[static_cast<size_t>(k)] : v;
        }
    }
    return to_tensor(x.shape, y);
}

Tensor batch_norm(const Tensor& x, const Tensor& scale, const Tensor& bias, const Tensor& mean,
                  const Tensor& var, double eps) {
    std::vector<double> xv = values_of(x, "X"), sv = values_of(scale, "scale"),
                        bv = values_of(bias, "B");
    std::vector<double> mv = values_of(mean, "mean"), vv = values_of(var, "var");
    if (x.shape.size() < 2) throw InputError("reference: batch_norm needs X [N, C, ...]");
    const int64_t n = x.shape[0], c = x.shape[1],
                  pixels = count(x.shape) / std::max<int64_t>(n * c, 1);
    std::vector<double> y(xv.size());
    for (int64_t b = 0; b < n; ++b)
        for (int64_t ch = 0; ch < c; ++ch) {
            auto k = static_cast<size_t>(ch);
            for (int64_t p = 0; p < pixels; ++p) {
                auto i = static_cast<size_t>((b * c + ch) * pixels + p);
                y[i] = (xv[i] - mv[k]) / std::sqrt(vv[k] + eps) * sv[k] + bv[k];
            }
        }
    return to_tensor(x.shape, y);
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
    std::vector<double> av = values_of(a, "A"), bv = values_of(b, "B");
    std::vector<int64_t> shape = broadcast_shape(a.shape, b.shape);
    std::vector<double> y(static_cast<size_t>(count(shape)));
    for (int64_t i = 0; i < count(shape); ++i) {
        std::vector<int64_t> idx = unravel(i, shape);
        double x1 = av[static_cast<size_t>(broadcast_index(idx, a.shape))];
        double x2 = bv[static_cast<size_t>(broadcast_index(idx, b.shape))];
        double v = 0;
        switch (op) {
            case BinaryOp::Add:
                v = x1 + x2;
                break;
            case BinaryOp::Sub:
                v = x1 - x2;
                break;
            case BinaryOp::Mul:
                v = x1 * x2;
                break;
            case BinaryOp::Div:
                v = x1 / x2;
                break;
        }
        y[static_cast<size_t>(i)] = v;
    }
    return to_tensor(shape, y);
}

Tensor unary(UnaryOp op, const Tensor& x) {
    std::vector<double> v = values_of(x, "X");
    const double pi = 3.14159265358979323846;
    for (double& e : v) {
        switch (op) {
            case UnaryOp::Exp:
                e = std::exp(e);
                break;
            case UnaryOp::Log:
                e = std::log(e);
                break;
            case UnaryOp::Sqrt:
                e = std::sqrt(e);
                break;
            case UnaryOp::Reciprocal:
                e = 1.0 / e;
                break;
            case UnaryOp::Tanh:
                e = std::tanh(e);
                break;
            case UnaryOp::Sigmoid:
                e = 1.0 / (1.0 + std::exp(-e));
                break;
            case UnaryOp::Erf:
                e = std::erf(e);
                break;
            case UnaryOp::Gelu:
                e = 0.5 * e * (1.0 + std::erf(e / std::sqrt(2.0)));
                break;
            case UnaryOp::GeluTanh:
                e = 0.5 * e * (1.0 + std::tanh(std::sqrt(2.0 / pi) * (e + 0.044715 * e * e * e)));
                break;
            case UnaryOp::Relu:
                e = e > 0 ? e : 0.0;
                break;
            case UnaryOp::HardSwish:
                e = e * std::clamp(e / 6.0 + 0.5, 0.0, 1.0);
                break;
        }
    }
    return to_tensor(x.shape, v);
}

Tensor abs(const Tensor& t) {
    std::vector<double> v = values_of(t, "tensor");
    for (double& x : v) x = std::abs(x);
    return to_tensor(t.shape, v);
}

}  // namespace ep::rt::ref
