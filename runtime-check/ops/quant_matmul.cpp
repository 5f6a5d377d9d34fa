#include "runtime-check/ops/quant_matmul.h"

#include <algorithm>
#include <string>
#include <vector>

#include "ir/checked.h"
#include "runtime-check/kernels/qgemm.h"
#include "runtime-check/kernels/sparse_gemm.h"

namespace ep::rt {

bool kernel_reads_encoding(const Node& node, size_t input, const Tensor& weight) {
    if (!node.domain.empty() || weight.shape.empty()) return false;
    const auto rank = weight.shape.size();
    // Sparse storage (ir/sparse.h): MatMul and Gemm read the forms kernels/sparse_gemm.h
    // reads in place; every other reader gets the dense tensor.
    if (weight.encoding.is_sparse() &&
        (node.op_type == "Gather" || !sparse_kernel_reads(weight.encoding, weight.dtype)))
        return false;
    // int4gGm and the K-quants (ggml's block forms) have no qgemm kernel: dequantized at
    // load for MatMul / Gemm; Gather reads any encoding row by row.
    const bool qgemm_scheme =
        weight.encoding.scheme != QScheme::Int4Min && !is_kquant(weight.encoding);
    if (node.op_type == "MatMul")
        return qgemm_scheme && input == 1 && rank == 2 && weight.encoding.axis == 0;
    if (node.op_type == "Gemm") {
        const int64_t tb = node.attr_int("transB", 0) != 0 ? 1 : 0;
        return qgemm_scheme && input == 1 && rank == 2 && weight.encoding.axis == tb;
    }
    if (node.op_type == "Gather") {
        const int64_t axis = node.attr_int("axis", 0);
        return input == 0 && weight.encoding.axis == 1 &&
               (axis == 0 || axis == -static_cast<int64_t>(rank));
    }
    return false;
}

void qgemm_f32(const OpContext& c, const MatrixView& a, const Tensor& w, int64_t n, float* y,
               int64_t ldy) {
    // The kernel checks the encoding again; these are the checks that name the node.
    const std::string what = cat("weight '", w.name, "'");
    check_encoding(w.encoding, what);
    w.check_consistent();
    const EncodedDims dims = encoded_dims(w.encoding, w.shape, what);
    if (dims.cols != a.cols || dims.rows != n)
        c.fail(cat("A has ", a.cols, " columns but the encoded weight '", w.name, "' ",
                   shape_string(w.shape), " has ", dims.rows, " output channels of ", dims.cols,
                   " (expected ", n, " of ", a.cols, ")"));
    qgemm_encoded_f32(c.options, c.qpacks, a, w, y, ldy);
}

Tensor qmatmul(const OpContext& c, const Tensor& a, const Tensor& w) {
    if (w.shape.size() != 2 || w.encoding.axis != 0)
        c.fail(cat("encoded MatMul weight '", w.name, "' must be 2-D [K, N] encoded along axis 0"));
    const int64_t k = w.shape[0], n = w.shape[1];
    if (a.shape.empty() || a.shape.back() != k)
        c.fail(cat("shapes ", shape_string(a.shape), " and ", shape_string(w.shape),
                   " cannot be multiplied"));
    const int64_t m = k == 0 ? 0 : a.element_count() / k;
    std::vector<int64_t> out_shape = a.shape;
    out_shape.back() = n;
    if (a.shape.size() == 1) out_shape = {n};
    Tensor y = make_uninitialized_tensor(DType::F32, out_shape);
    float* py = y.mutable_values<float>().data();
    if (k == 0) {
        std::fill(py, py + m * n, 0.0f);
        return y;
    }
    qgemm_f32(c, MatrixView{a.values<float>().data(), m, k, k, false}, w, n, py, n);
    return y;
}

void gather_encoded(OpContext& c) {
    const Tensor& data = c.input(0);
    const Tensor& indices = c.input(1);
    const std::string what = cat("table '", data.name, "'");
    check_encoding(data.encoding, what);
    data.check_consistent();
    const auto dims = encoded_dims(data.encoding, data.shape, what);
    if (data.encoding.axis != 1) c.fail(cat(what, " must be encoded along axis 1 to be gathered"));
    std::vector<int64_t> idx = read_ints(c, indices);
    const int64_t rows = dims.rows;
    for (auto& i : idx) {
        if (i < -rows || i >= rows)
            c.fail(cat("index ", i, " is out of range for dimension ", rows));
        if (i < 0) i += rows;
    }
    std::vector<int64_t> shape = indices.shape;
    shape.insert(shape.end(), data.shape.begin() + 1, data.shape.end());
    Tensor y = make_uninitialized_tensor(DType::F32, shape);
    float* out = y.mutable_values<float>().data();
    const auto bytes = data.data.bytes();
    const int64_t cols = dims.cols;
    parallel_for(c.options, static_cast<int64_t>(idx.size()),
                 std::max<int64_t>(1, 4096 / std::max<int64_t>(cols, 1)),
                 [&](int64_t i0, int64_t i1) {
                     for (int64_t i = i0; i < i1; ++i)
                         dequantize_row(data.encoding, bytes, rows, cols,
                                        idx[static_cast<size_t>(i)], out + i * cols);
                 });
    c.outputs.push_back(std::move(y));
}

}  // namespace ep::rt
