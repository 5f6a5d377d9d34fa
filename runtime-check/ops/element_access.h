// Element access in double and the outer x axis x inner split of a shape, shared by the
// reference ops that compute in double (ops_loss, ops_einsum, ops_spatial,
// ops_normalization, ops_rearrange).
#pragma once

#include <cstdint>
#include <vector>

#include "runtime-check/ops/elementwise.h"

namespace ep::rt {

// Element i of a float-family tensor as double (f64 exactly, the others through float).
inline double load_double(const Tensor& t, int64_t i) {
    if (t.dtype == DType::F64) return t.values<double>()[static_cast<size_t>(i)];
    return load_float(t.dtype, t.data.bytes().data(), i);
}

// Stores v into element i of a float-family tensor, rounded once to its dtype.
inline void store_double(Tensor& t, int64_t i, double v) {
    if (t.dtype == DType::F64)
        t.mutable_values<double>()[static_cast<size_t>(i)] = v;
    else
        store_float(t.dtype, t.data.mutable_bytes().data(), i, static_cast<float>(v));
}

// A shape seen as [outer, axis, inner] around one axis.
struct AxisSplit {
    int64_t outer = 1, axis = 1, inner = 1;
};
inline AxisSplit split_at(const std::vector<int64_t>& shape, int64_t axis) {
    AxisSplit s;
    for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
        const int64_t n = shape[static_cast<size_t>(d)];
        if (d < axis)
            s.outer *= n;
        else if (d == axis)
            s.axis = n;
        else
            s.inner *= n;
    }
    return s;
}

}  // namespace ep::rt
