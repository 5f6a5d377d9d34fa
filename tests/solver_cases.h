// Inputs the solver cross-checks share (GPTQ in test_quantize.cpp and test_prune_quantize.cpp,
// SparseGPT in test_sparsegpt.cpp): a seeded Hessian of correlated calibration rows, and
// tensors of raw values for the .npy files the numpy oracles read.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "ir/tensor.h"
#include "pass_model.h"

namespace ep::test {

// GPTQ's H = 2/n X^T X of the n rows of x (n x cols), cols x cols row-major.
inline std::vector<double> hessian_of_rows(const std::vector<float>& x, int64_t n, int64_t cols) {
    std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
    for (int64_t s = 0; s < n; ++s)
        for (int64_t i = 0; i < cols; ++i)
            for (int64_t j = 0; j < cols; ++j)
                h[static_cast<size_t>(i * cols + j)] += 2.0 / n *
                                                        x[static_cast<size_t>(s * cols + i)] *
                                                        x[static_cast<size_t>(s * cols + j)];
    return h;
}

// The Hessian of n seeded normal rows whose neighbouring columns are correlated
// (x[c] += 0.7 x[c - 1]).
inline std::vector<double> correlated_hessian(int64_t cols, int64_t n, uint32_t seed) {
    auto x = normal_values(static_cast<size_t>(n * cols), seed);
    for (int64_t s = 0; s < n; ++s)
        for (int64_t c = 1; c < cols; ++c)
            x[static_cast<size_t>(s * cols + c)] += 0.7f * x[static_cast<size_t>(s * cols + c - 1)];
    return hessian_of_rows(x, n, cols);
}

// A tensor of `dtype` holding the bytes of `values` (f64 Hessians, u8 masks) for write_npy.
template <class T>
Tensor raw_tensor(std::string name, DType dtype, std::vector<int64_t> shape,
                  const std::vector<T>& values) {
    Tensor t;
    t.name = std::move(name);
    t.dtype = dtype;
    t.shape = std::move(shape);
    std::vector<std::byte> bytes(values.size() * sizeof(T));
    if (!bytes.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
    t.data = TensorData::owned(std::move(bytes));
    return t;
}

}  // namespace ep::test
