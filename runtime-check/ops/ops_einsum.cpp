// Einsum and Det: linear algebra on small tensors, as plain reference loops.
//   Einsum(equation, inputs...): numpy's einsum. Each operand's term names its axes with
//       letters ("..." stands for the leading axes the letters leave, right-aligned and
//       broadcast across operands). Output: the term after "->", or without one (implicit
//       mode) the "..." axes then every letter used once, in alphabetical order.
//       y[out] = sum over the other letters of the product of the operands' elements;
//       a letter repeated in one term reads its diagonal. Float inputs, summed in double
//       in a fixed order per output element.
//   Det(X [..., M, M]): the determinant of each matrix, by LU decomposition with partial
//       pivoting in double.
// Each output element is computed by one thread: the same bits for any thread count.
#include <cmath>
#include <map>

#include "runtime-check/ops/element_access.h"
#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"

namespace ep::rt {
namespace {

constexpr int kEllipsis = -1;

// A term's labels: letters as their char code, "..." as kEllipsis.
std::vector<int> parse_term(const OpContext& c, const std::string& term) {
    std::vector<int> labels;
    for (size_t i = 0; i < term.size(); ++i) {
        char ch = term[i];
        if (ch == ' ') continue;
        if (ch == '.') {
            if (term.compare(i, 3, "...") != 0)
                c.fail(cat("equation term '", term, "': a '.' outside '...'"));
            if (std::find(labels.begin(), labels.end(), kEllipsis) != labels.end())
                c.fail(cat("equation term '", term, "': '...' twice"));
            labels.push_back(kEllipsis);
            i += 2;
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) {
            labels.push_back(ch);
        } else {
            c.fail(cat("equation term '", term, "': '", std::string(1, ch), "' is not a letter"));
        }
    }
    return labels;
}

}  // namespace

void op_einsum(OpContext& c) {
    const std::string equation = c.node.attr_string("equation", "");
    if (equation.empty()) c.fail("attribute 'equation' is required");
    const size_t arrow = equation.find("->");
    const std::string lhs = equation.substr(0, arrow);
    std::vector<std::string> terms;
    for (size_t start = 0;;) {
        size_t comma = lhs.find(',', start);
        terms.push_back(
            lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    if (terms.size() != c.input_count())
        c.fail(cat("equation '", equation, "' has ", terms.size(), " operands; the node has ",
                   c.input_count(), " inputs"));
    const DType dtype = c.input(0).dtype;
    if (!is_float(dtype))
        c.fail(cat("inputs of type ", dtype_name(dtype), ": expected a float type"));

    // Labels of every operand with "..." expanded into ellipsis axes 0 .. E-1, numbered
    // 1000 + k so that they sort before no letter and never clash with one.
    int64_t ellipsis_rank = 0;
    std::vector<std::vector<int>> operand_labels(terms.size());
    for (size_t i = 0; i < terms.size(); ++i) {
        const Tensor& t = c.input(i);
        if (t.dtype != dtype)
            c.fail(cat("input ", i, " of type ", dtype_name(t.dtype), ", input 0 of ",
                       dtype_name(dtype)));
        auto labels = parse_term(c, terms[i]);
        const int64_t letters = static_cast<int64_t>(labels.size()) -
                                (std::count(labels.begin(), labels.end(), kEllipsis) ? 1 : 0);
        const int64_t rank = static_cast<int64_t>(t.shape.size());
        const bool has_ellipsis = letters != static_cast<int64_t>(labels.size());
        if (has_ellipsis ? rank < letters : rank != letters)
            c.fail(cat("equation term '", terms[i], "' does not fit input ", i, " of shape ",
                       shape_string(t.shape)));
        if (has_ellipsis) ellipsis_rank = std::max(ellipsis_rank, rank - letters);
        operand_labels[i] = labels;
    }
    std::map<int, int64_t> dims;
    for (size_t i = 0; i < terms.size(); ++i) {
        const Tensor& t = c.input(i);
        const auto& labels = operand_labels[i];
        const int64_t rank = static_cast<int64_t>(t.shape.size());
        std::vector<int> expanded;
        for (int l : labels) {
            if (l != kEllipsis) {
                expanded.push_back(l);
                continue;
            }
            const int64_t k = rank - static_cast<int64_t>(labels.size()) + 1;
            for (int64_t e = ellipsis_rank - k; e < ellipsis_rank; ++e)
                expanded.push_back(1000 + static_cast<int>(e));
        }
        for (size_t d = 0; d < expanded.size(); ++d) {
            const int64_t n = t.shape[d];
            auto [it, fresh] = dims.emplace(expanded[d], n);
            if (fresh || it->second == n) continue;
            if (expanded[d] >= 1000 && (it->second == 1 || n == 1)) {
                it->second = std::max(it->second, n);  // ellipsis axes broadcast
                continue;
            }
            c.fail(cat("label '",
                       expanded[d] >= 1000 ? std::string("...") : std::string(1, char(expanded[d])),
                       "' has sizes ", it->second, " and ", n));
        }
        operand_labels[i] = expanded;
    }
    std::vector<int> out_labels;
    if (arrow != std::string::npos) {
        for (int l : parse_term(c, equation.substr(arrow + 2))) {
            if (l == kEllipsis) {
                for (int64_t e = 0; e < ellipsis_rank; ++e)
                    out_labels.push_back(1000 + static_cast<int>(e));
            } else {
                if (!dims.count(l))
                    c.fail(cat("output label '", std::string(1, char(l)), "' is not in any input"));
                out_labels.push_back(l);
            }
        }
    } else {
        for (int64_t e = 0; e < ellipsis_rank; ++e)
            out_labels.push_back(1000 + static_cast<int>(e));
        std::map<int, int> uses;
        for (const auto& labels : operand_labels)
            for (int l : labels) ++uses[l];
        for (const auto& [l, n] : uses)
            if (l < 1000 && n == 1) out_labels.push_back(l);
    }
    std::vector<int> sum_labels;
    for (const auto& [l, n] : dims)
        if (std::find(out_labels.begin(), out_labels.end(), l) == out_labels.end())
            sum_labels.push_back(l);

    // Position of each label in the index vector: output labels, then summed labels.
    std::vector<int> all = out_labels;
    all.insert(all.end(), sum_labels.begin(), sum_labels.end());
    std::map<int, size_t> slot;
    for (size_t k = 0; k < all.size(); ++k) slot[all[k]] = k;
    // Per operand, per index slot: the element stride (0 for a broadcast axis).
    std::vector<std::vector<int64_t>> strides(terms.size(), std::vector<int64_t>(all.size(), 0));
    for (size_t i = 0; i < terms.size(); ++i) {
        const Tensor& t = c.input(i);
        int64_t stride = 1;
        for (size_t d = t.shape.size(); d-- > 0;) {
            if (t.shape[d] != 1) strides[i][slot[operand_labels[i][d]]] += stride;
            stride *= t.shape[d];
        }
    }
    std::vector<int64_t> out_shape;
    for (int l : out_labels) out_shape.push_back(dims[l]);
    int64_t sum_count = 1;
    for (int l : sum_labels) sum_count *= dims[l];
    Tensor y = make_uninitialized_tensor(dtype, out_shape);
    const int64_t out_count = y.element_count();
    const size_t n_out = out_labels.size();
    std::vector<int64_t> size_of(all.size());
    for (size_t k = 0; k < all.size(); ++k) size_of[k] = dims[all[k]];
    parallel_for(c.options, out_count, 64, [&](int64_t b, int64_t e) {
        std::vector<int64_t> idx(all.size());
        for (int64_t o = b; o < e; ++o) {
            int64_t rem = o;
            for (size_t k = n_out; k-- > 0;) {
                idx[k] = rem % size_of[k];
                rem /= size_of[k];
            }
            double acc = 0;
            for (int64_t s = 0; s < sum_count; ++s) {
                int64_t r = s;
                for (size_t k = all.size(); k-- > n_out;) {
                    idx[k] = r % size_of[k];
                    r /= size_of[k];
                }
                double prod = 1;
                for (size_t i = 0; i < terms.size(); ++i) {
                    int64_t off = 0;
                    for (size_t k = 0; k < all.size(); ++k) off += idx[k] * strides[i][k];
                    prod *= load_double(*c.inputs[i], off);
                }
                acc += prod;
            }
            store_double(y, o, acc);
        }
    });
    c.outputs.push_back(std::move(y));
}

void op_det(OpContext& c) {
    const Tensor& x = c.input(0);
    if (!is_float(x.dtype))
        c.fail(cat("input of type ", dtype_name(x.dtype), ": expected a float type"));
    const size_t rank = x.shape.size();
    if (rank < 2 || x.shape[rank - 1] != x.shape[rank - 2])
        c.fail(cat("input of shape ", shape_string(x.shape), ": expected [..., M, M]"));
    const int64_t m = x.shape[rank - 1];
    std::vector<int64_t> out_shape(x.shape.begin(), x.shape.end() - 2);
    Tensor y = make_uninitialized_tensor(x.dtype, out_shape);
    parallel_for(c.options, y.element_count(), 1, [&](int64_t b, int64_t e) {
        std::vector<double> a(static_cast<size_t>(m * m));
        for (int64_t batch = b; batch < e; ++batch) {
            for (int64_t i = 0; i < m * m; ++i)
                a[static_cast<size_t>(i)] = load_double(x, batch * m * m + i);
            auto at = [&](int64_t r, int64_t col) -> double& {
                return a[static_cast<size_t>(r * m + col)];
            };
            double det = 1;
            for (int64_t k = 0; k < m && det != 0; ++k) {
                int64_t pivot = k;
                for (int64_t r = k + 1; r < m; ++r)
                    if (std::abs(at(r, k)) > std::abs(at(pivot, k))) pivot = r;
                if (at(pivot, k) == 0) {
                    det = 0;
                    break;
                }
                if (pivot != k) {
                    for (int64_t col = 0; col < m; ++col) std::swap(at(k, col), at(pivot, col));
                    det = -det;
                }
                det *= at(k, k);
                for (int64_t r = k + 1; r < m; ++r) {
                    const double f = at(r, k) / at(k, k);
                    for (int64_t col = k; col < m; ++col) at(r, col) -= f * at(k, col);
                }
            }
            store_double(y, batch, det);
        }
    });
    c.outputs.push_back(std::move(y));
}

}  // namespace ep::rt
