// GPTQ and AWQ (contract in solvers.h).
#include "calibration/solvers.h"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "calibration/hessian_factor.h"
#include "ir/error.h"
#include "ir/sparse.h"
#include "runtime-check/kernels/parallel.h"

namespace ep::calib {

namespace {

using detail::MatrixD;

// Parameters per stored row and block: params[r * nb + b] (int8c: nb = 1; K-quants: one
// per sub-block).
int64_t groups_per_row(const Encoding& e, int64_t cols) {
    return params_per_row(e, cols);
}

int64_t group_width(const Encoding& e, int64_t cols) {
    return traits(e.scheme).grouped ? param_width(e) : cols;
}

// The encoded bytes of rows x cols codes with their parameters (both layouts of encoding.h).
std::vector<std::byte> pack_matrix(const Encoding& e, int64_t rows, int64_t cols,
                                   const std::vector<int>& codes,
                                   const std::vector<QParams>& params) {
    auto total = encoded_bytes(e, rows, cols);
    if (!total) throw InternalError("pack_matrix: size overflow");
    std::vector<std::byte> out(*total);
    const int64_t nb = groups_per_row(e, cols);
    if (!traits(e.scheme).grouped) {
        auto scale_at = static_cast<size_t>(*total - static_cast<uint64_t>(rows) * 4);
        for (int64_t r = 0; r < rows; ++r) {
            pack_row(
                e,
                std::span(codes).subspan(static_cast<size_t>(r * cols), static_cast<size_t>(cols)),
                {},
                std::span(out).subspan(static_cast<size_t>(r * cols), static_cast<size_t>(cols)));
            float s = params[static_cast<size_t>(r)].scale;
            std::memcpy(out.data() + scale_at + static_cast<size_t>(r) * 4, &s, 4);
        }
        return out;
    }
    const uint64_t rb = row_bytes(e, cols);
    for (int64_t r = 0; r < rows; ++r)
        pack_row(e,
                 std::span(codes).subspan(static_cast<size_t>(r * cols), static_cast<size_t>(cols)),
                 std::span(params).subspan(static_cast<size_t>(r * nb), static_cast<size_t>(nb)),
                 std::span(out).subspan(static_cast<size_t>(r) * rb, static_cast<size_t>(rb)));
    return out;
}

}  // namespace

GptqResult gptq_quantize(const Encoding& e, std::span<const float> w, int64_t rows, int64_t cols,
                         std::span<const double> hessian, const GptqOptions& options,
                         const std::string& what) {
    if (rows <= 0 || cols <= 0 || w.size() != static_cast<size_t>(rows * cols) ||
        hessian.size() != static_cast<size_t>(cols * cols))
        throw InternalError(cat("gptq: ", what, ": sizes"));
    if (options.block_size <= 0) throw InternalError("gptq: block_size");
    GptqResult result;

    // Column permutation (act_order) and dead columns.
    std::vector<int64_t> perm(static_cast<size_t>(cols));
    std::iota(perm.begin(), perm.end(), int64_t{0});
    auto diag = [&](int64_t c) { return hessian[static_cast<size_t>(c * cols + c)]; };
    if (options.act_order)
        std::stable_sort(perm.begin(), perm.end(),
                         [&](int64_t a, int64_t b) { return diag(a) > diag(b); });

    MatrixD h(cols, cols);
    MatrixD wd(rows, cols);  // permuted columns, double
    for (int64_t i = 0; i < cols; ++i) {
        for (int64_t j = 0; j < cols; ++j)
            h(i, j) = hessian[static_cast<size_t>(perm[static_cast<size_t>(i)] * cols +
                                                  perm[static_cast<size_t>(j)])];
        for (int64_t r = 0; r < rows; ++r)
            wd(r, i) = static_cast<double>(
                w[static_cast<size_t>(r * cols + perm[static_cast<size_t>(i)])]);
    }
    result.dead_columns = detail::prepare_hessian(h, wd, what, "GPTQ");
    auto factor = detail::damped_inverse_cholesky(h, options.damp, what, "GPTQ",
                                                  "exclude it or quantize it with rtn");
    const MatrixD& u = factor.upper;
    result.damp = factor.damp;
    result.retries = factor.retries;

    // Group parameters, indexed by original column.
    const int64_t nb = groups_per_row(e, cols);
    const int64_t gw = group_width(e, cols);
    std::vector<QParams> params(static_cast<size_t>(rows * nb));
    std::vector<int> codes(static_cast<size_t>(rows * cols));
    std::vector<float> buf(static_cast<size_t>(gw));
    auto set_params = [&](int64_t r, int64_t b, auto&& value_of_col) {
        int64_t c0 = b * gw, c1 = std::min(cols, c0 + gw);
        for (int64_t c = c0; c < c1; ++c) buf[static_cast<size_t>(c - c0)] = value_of_col(c);
        params[static_cast<size_t>(r * nb + b)] =
            choose_qparams(e, std::span<const float>(buf.data(), static_cast<size_t>(c1 - c0)));
    };
    // Pruned weights (options.mask, original columns): stored as the code of 0.0, and their
    // value 0 is what the group's parameters see, so the range covers the kept weights.
    const int64_t words = mask_words(cols);
    if (!options.mask.empty() && options.mask.size() != static_cast<size_t>(rows * words))
        throw InternalError(cat("gptq: ", what, ": mask size"));
    auto pruned = [&](int64_t r, int64_t c) {
        return !options.mask.empty() && !mask_bit(options.mask, words, r, c);
    };
    // The K-quants' grid is fixed by each super-block's scales: taken from the RTN pass over
    // the weights (dead columns and pruned weights zeroed), then GPTQ rounds to that grid.
    const bool fixed_grid = is_kquant(e);
    const bool static_groups = options.act_order || !traits(e.scheme).grouped || fixed_grid;
    std::vector<std::byte> grid_bytes;
    if (fixed_grid) {
        std::vector<float> w0(w.begin(), w.end());
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c)
                if (diag(c) == 0.0 || pruned(r, c)) w0[static_cast<size_t>(r * cols + c)] = 0.0f;
        grid_bytes = quantize_rtn(e, w0, rows, cols);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t b = 0; b < nb; ++b)
                params[static_cast<size_t>(r * nb + b)] =
                    row_qparams(e, grid_bytes, rows, cols, r, b);
    } else if (static_groups) {
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t b = 0; b < nb; ++b)
                set_params(r, b, [&](int64_t c) {
                    // dead columns were zeroed
                    return diag(c) == 0.0 || pruned(r, c) ? 0.0f
                                                          : w[static_cast<size_t>(r * cols + c)];
                });
    }
    // Position of each original column in the permuted order (dynamic groups only use
    // the identity permutation).
    const int64_t bs = options.block_size;
    MatrixD err;
    for (int64_t i1 = 0; i1 < cols; i1 += bs) {
        const int64_t i2 = std::min(cols, i1 + bs), count = i2 - i1;
        err.setZero(rows, count);
        for (int64_t j = i1; j < i2; ++j) {
            const int64_t orig = perm[static_cast<size_t>(j)];
            if (!static_groups && orig % gw == 0)
                for (int64_t r = 0; r < rows; ++r)
                    set_params(r, orig / gw, [&](int64_t c) {
                        return pruned(r, c) ? 0.0f : static_cast<float>(wd(r, c));
                    });
            const double d = u(j, j);
            for (int64_t r = 0; r < rows; ++r) {
                const QParams& p = params[static_cast<size_t>(r * nb + orig / gw)];
                const double x = wd(r, j);
                // A pruned weight takes the code of 0.0 (0, or the zero point: exact), and
                // its whole current value is the error spread over the later columns.
                int q = quantize_value(e, pruned(r, orig) ? 0.0f : static_cast<float>(x), p);
                codes[static_cast<size_t>(r * cols + orig)] = q;
                double deq = static_cast<double>(dequantize_value(e, q, p));
                double ej = (x - deq) / d;
                result.loss += (x - deq) * (x - deq) / (2.0 * d * d);
                err(r, j - i1) = ej;
            }
            if (j + 1 < i2)
                wd.block(0, j + 1, rows, i2 - j - 1).noalias() -=
                    err.col(j - i1) * u.block(j, j + 1, 1, i2 - j - 1);
        }
        if (i2 < cols) wd.rightCols(cols - i2).noalias() -= err * u.block(i1, i2, count, cols - i2);
    }
    if (fixed_grid) {
        const uint64_t rb = row_bytes(e, cols);
        for (int64_t r = 0; r < rows; ++r)
            set_row_codes(
                e,
                std::span(codes).subspan(static_cast<size_t>(r * cols), static_cast<size_t>(cols)),
                std::span(grid_bytes)
                    .subspan(static_cast<size_t>(r) * rb, static_cast<size_t>(rb)));
        result.bytes = std::move(grid_bytes);
        return result;
    }
    result.bytes = pack_matrix(e, rows, cols, codes, params);
    return result;
}

namespace {

// Q(W diag(s)) diag(s)^-1 of one matrix, as floats (rows x cols).
std::vector<float> fake_quant_scaled(const Encoding& e, std::span<const float> w, int64_t rows,
                                     int64_t cols, std::span<const float> s) {
    std::vector<float> scaled(w.size());
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
            scaled[static_cast<size_t>(r * cols + c)] =
                w[static_cast<size_t>(r * cols + c)] * s[static_cast<size_t>(c)];
    auto bytes = quantize_rtn(e, scaled, rows, cols);
    std::vector<float> out(w.size());
    for (int64_t r = 0; r < rows; ++r) {
        dequantize_row(e, bytes, rows, cols, r, out.data() + r * cols);
        for (int64_t c = 0; c < cols; ++c)
            out[static_cast<size_t>(r * cols + c)] /= s[static_cast<size_t>(c)];
    }
    return out;
}

}  // namespace

AwqResult awq_search(const Encoding& e, std::span<const AwqMatrix> matrices, int64_t cols,
                     std::span<const float> x, int64_t x_rows, std::span<const double> abs_mean,
                     int grid, int threads) {
    if (grid < 1 || abs_mean.size() != static_cast<size_t>(cols) ||
        x.size() != static_cast<size_t>(x_rows * cols))
        throw InternalError("awq_search: sizes");
    using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Eigen::Map<const MatF> xm(x.data(), x_rows, cols);
    // The loss ||X (W - Q)^T||^2, by whichever form is cheaper for these sizes: with more
    // rows than columns, sum over weight rows r of d_r^T G d_r with G = X^T X (double), so
    // each candidate costs rows * cols^2; else directly, x_rows * rows * cols. The form
    // depends on the sizes only, never on the thread count.
    const bool use_gram = x_rows > cols;
    Eigen::MatrixXd gram;
    Eigen::MatrixXd xd;
    if (use_gram) {
        gram = Eigen::MatrixXd::Zero(cols, cols);
        gram.selfadjointView<Eigen::Lower>().rankUpdate(xm.cast<double>().transpose());
        gram.triangularView<Eigen::StrictlyUpper>() = gram.transpose();
    } else {
        xd = xm.cast<double>();
    }
    auto loss_of = [&](std::span<const float> wm, const std::vector<float>& q, int64_t rows) {
        Eigen::MatrixXd d(cols, rows);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c)
                d(c, r) = static_cast<double>(wm[static_cast<size_t>(r * cols + c)]) -
                          static_cast<double>(q[static_cast<size_t>(r * cols + c)]);
        if (use_gram) return (d.transpose() * gram).cwiseProduct(d.transpose()).sum();
        return (xd * d).squaredNorm();
    };

    // Mean normalised weight magnitude per input channel (|w| / max |w| of its group).
    std::vector<double> w_mean(static_cast<size_t>(cols), 0.0);
    int64_t total_rows = 0;
    const int64_t gw = traits(e.scheme).grouped ? e.group : cols;
    for (const auto& m : matrices) {
        for (int64_t r = 0; r < m.rows; ++r)
            for (int64_t c0 = 0; c0 < cols; c0 += gw) {
                int64_t c1 = std::min(cols, c0 + gw);
                double mx = 0.0;
                for (int64_t c = c0; c < c1; ++c)
                    mx = std::max(
                        mx, static_cast<double>(std::fabs(m.w[static_cast<size_t>(r * cols + c)])));
                for (int64_t c = c0; c < c1; ++c)
                    w_mean[static_cast<size_t>(c)] +=
                        std::fabs(m.w[static_cast<size_t>(r * cols + c)]) / (mx + 1e-6);
            }
        total_rows += m.rows;
    }
    for (auto& v : w_mean) v /= static_cast<double>(std::max<int64_t>(total_rows, 1));

    // Candidates: i < grid: s = x^a (a = i / grid; i = 0 is plain RTN); i >= grid: AutoAWQ's
    // duo scaling s = x^a / w^(1-a). Each is scored by one thread on its own; the best (the
    // first on ties) is picked afterwards in candidate order: the same for any thread count.
    const int candidates = 2 * grid;
    std::vector<std::vector<float>> scales(static_cast<size_t>(candidates));
    std::vector<double> losses(static_cast<size_t>(candidates));
    rt::ExecOptions exec;
    exec.threads = std::max(1, threads);
    rt::parallel_for(exec, candidates, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            const bool duo = i >= grid;
            const double alpha = static_cast<double>(i % grid) / grid;
            double lo = INFINITY, hi = 0.0;
            std::vector<double> raw(static_cast<size_t>(cols));
            for (int64_t c = 0; c < cols; ++c) {
                double v = std::pow(std::max(abs_mean[static_cast<size_t>(c)], 1e-12), alpha);
                if (duo) v /= std::pow(w_mean[static_cast<size_t>(c)], 1.0 - alpha) + 1e-4;
                v = std::max(v, 1e-4);
                raw[static_cast<size_t>(c)] = v;
                lo = std::min(lo, v);
                hi = std::max(hi, v);
            }
            const double norm = std::sqrt(hi * lo);
            auto& s = scales[static_cast<size_t>(i)];
            s.resize(static_cast<size_t>(cols));
            for (int64_t c = 0; c < cols; ++c)
                s[static_cast<size_t>(c)] =
                    static_cast<float>(std::max(raw[static_cast<size_t>(c)] / norm, 1e-4));
            double loss = 0.0;
            for (const auto& m : matrices)
                loss += loss_of(m.w, fake_quant_scaled(e, m.w, m.rows, cols, s), m.rows);
            losses[static_cast<size_t>(i)] = loss;
        }
    });

    AwqResult best;
    best.loss = INFINITY;
    best.rtn_loss = losses[0];
    for (int i = 0; i < candidates; ++i)
        if (losses[static_cast<size_t>(i)] < best.loss) {
            best.loss = losses[static_cast<size_t>(i)];
            best.alpha = static_cast<double>(i % grid) / grid;
            best.duo = i >= grid;
            best.scales = scales[static_cast<size_t>(i)];
        }
    return best;
}

std::vector<float> awq_clip(const Encoding& e, std::span<const float> w, int64_t rows, int64_t cols,
                            std::span<const float> x, int64_t x_rows, int grid, double max_shrink,
                            int threads) {
    std::vector<float> out(w.begin(), w.end());
    const auto& t = traits(e.scheme);
    const int64_t gw = t.grouped ? e.group : cols;
    const bool ggml_rtn = e.scheme == QScheme::Int4Min || is_kquant(e);
    const int steps = std::max(1, static_cast<int>(max_shrink * grid));
    // Rows are independent: each is searched by one thread, so the result does not depend
    // on the thread count.
    rt::ExecOptions exec;
    exec.threads = std::max(1, threads);
    rt::parallel_for(exec, rows, 1, [&](int64_t row_begin, int64_t row_end) {
        std::vector<float> cand(static_cast<size_t>(gw)), best_vals(static_cast<size_t>(gw)),
            deq(static_cast<size_t>(gw));
        std::vector<double> dot_ref(static_cast<size_t>(x_rows));
        for (int64_t r = row_begin; r < row_end; ++r)
            for (int64_t c0 = 0; c0 < cols; c0 += gw) {
                const int64_t n = std::min(cols, c0 + gw) - c0;
                const float* wg = w.data() + r * cols + c0;
                float lo = 0.0f, hi = 0.0f;
                for (int64_t j = 0; j < n; ++j) {
                    lo = std::min(lo, wg[j]);
                    hi = std::max(hi, wg[j]);
                }
                float amax = std::max(-lo, hi);
                for (int64_t i = 0; i < x_rows; ++i) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < n; ++j)
                        acc +=
                            static_cast<double>(x[static_cast<size_t>(i * cols + c0 + j)]) * wg[j];
                    dot_ref[static_cast<size_t>(i)] = acc;
                }
                double best_err = INFINITY;
                for (int k = 0; k <= steps; ++k) {
                    const float ratio = 1.0f - static_cast<float>(k) / static_cast<float>(grid);
                    float clo = t.symmetric ? -amax * ratio : lo * ratio;
                    float chi = t.symmetric ? amax * ratio : hi * ratio;
                    for (int64_t j = 0; j < n; ++j)
                        cand[static_cast<size_t>(j)] = std::clamp(wg[j], clo, chi);
                    std::span<const float> group(cand.data(), static_cast<size_t>(n));
                    if (ggml_rtn) {
                        // ggml's RTN (int4gGm, K-quants): the group as AWQ will store it.
                        const auto bytes = quantize_rtn(e, group, 1, n);
                        dequantize_row(e, bytes, 1, n, 0, deq.data());
                    } else {
                        QParams p = choose_qparams(e, group);
                        for (int64_t j = 0; j < n; ++j)
                            deq[static_cast<size_t>(j)] = dequantize_value(
                                e, quantize_value(e, cand[static_cast<size_t>(j)], p), p);
                    }
                    double err = 0.0;
                    for (int64_t i = 0; i < x_rows; ++i) {
                        double acc = 0.0;
                        for (int64_t j = 0; j < n; ++j)
                            acc += static_cast<double>(x[static_cast<size_t>(i * cols + c0 + j)]) *
                                   deq[static_cast<size_t>(j)];
                        double d = acc - dot_ref[static_cast<size_t>(i)];
                        err += d * d;
                    }
                    if (err < best_err) {
                        best_err = err;
                        std::copy_n(cand.begin(), n, best_vals.begin());
                    }
                }
                std::copy_n(best_vals.begin(), n, out.begin() + r * cols + c0);
            }
    });
    return out;
}

std::vector<std::byte> awq_quantize(const Encoding& e, std::span<const float> w, int64_t rows,
                                    int64_t cols, std::span<const float> scales) {
    std::vector<float> scaled(w.size());
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
            scaled[static_cast<size_t>(r * cols + c)] =
                w[static_cast<size_t>(r * cols + c)] * scales[static_cast<size_t>(c)];
    return quantize_rtn(e, scaled, rows, cols);
}

double hessian_error(const Encoding& e, std::span<const float> w, int64_t rows, int64_t cols,
                     std::span<const std::byte> bytes, std::span<const double> hessian, double damp,
                     std::span<const float> scales, int threads) {
    const auto n = static_cast<size_t>(cols);
    double mean_diag = 0.0;
    for (size_t c = 0; c < n; ++c) mean_diag += hessian[c * n + c];
    const double lambda = n ? damp * mean_diag / static_cast<double>(n) : 0.0;
    using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Eigen::Map<const MatD> h(hessian.data(), cols, cols);
    // Fixed blocks of rows (independent of the thread count), each one GEMM E_b H; the
    // per-row terms are summed afterwards in row order.
    constexpr int64_t kBlock = 64;
    const int64_t blocks = (rows + kBlock - 1) / kBlock;
    std::vector<double> per_row(static_cast<size_t>(rows));
    rt::ExecOptions exec;
    exec.threads = std::max(1, threads);
    rt::parallel_for(exec, blocks, 1, [&](int64_t b0, int64_t b1) {
        std::vector<float> q(n);
        for (int64_t b = b0; b < b1; ++b) {
            const int64_t r0 = b * kBlock, count = std::min(kBlock, rows - r0);
            MatD err(count, cols);
            for (int64_t r = 0; r < count; ++r) {
                dequantize_row(e, bytes, rows, cols, r0 + r, q.data());
                for (size_t c = 0; c < n; ++c) {
                    double v = q[c];
                    if (!scales.empty()) v /= static_cast<double>(scales[c]);
                    err(r, static_cast<Eigen::Index>(c)) =
                        static_cast<double>(w[static_cast<size_t>(r0 + r) * n + c]) - v;
                }
            }
            MatD he = err * h;
            for (int64_t r = 0; r < count; ++r)
                per_row[static_cast<size_t>(r0 + r)] =
                    err.row(r).dot(he.row(r)) + lambda * err.row(r).squaredNorm();
        }
    });
    double total = 0.0;
    for (double v : per_row) total += v;
    return total;
}

double output_error(const Encoding& e, std::span<const float> w, int64_t rows, int64_t cols,
                    std::span<const std::byte> bytes, std::span<const float> scales,
                    std::span<const float> x, int64_t x_rows) {
    const auto n = static_cast<size_t>(cols);
    // D = W - deq diag(1/s), rows x cols.
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> d(rows, cols);
    std::vector<float> q(n);
    for (int64_t r = 0; r < rows; ++r) {
        dequantize_row(e, bytes, rows, cols, r, q.data());
        for (size_t c = 0; c < n; ++c) {
            double v = q[c];
            if (!scales.empty()) v /= static_cast<double>(scales[c]);
            d(r, static_cast<Eigen::Index>(c)) =
                static_cast<double>(w[static_cast<size_t>(r) * n + c]) - v;
        }
    }
    double total = 0.0;
    Eigen::VectorXd xr(cols);
    for (int64_t i = 0; i < x_rows; ++i) {
        for (size_t c = 0; c < n; ++c)
            xr[static_cast<Eigen::Index>(c)] = x[static_cast<size_t>(i) * n + c];
        total += (d * xr).squaredNorm();
    }
    return total;
}

}  // namespace ep::calib
