#include "runtime-check/ops/op_context.h"

#include <algorithm>
#include <cstring>

#include "ir/checked.h"

namespace ep::rt {

const Tensor& OpContext::input(size_t i) const {
    if (!has_input(i)) fail(cat("input ", i, " is required"));
    return *inputs[i];
}

void OpContext::fail(const std::string& what) const {
    throw InputError(what);  // the executor adds "node NAME (OP): "
}

Tensor make_uninitialized_tensor(DType dtype, std::vector<int64_t> shape) {
    Tensor t;
    t.dtype = dtype;
    t.shape = std::move(shape);
    uint64_t n = static_cast<uint64_t>(t.element_count());
    if (dtype == DType::String) {
        t.strings.resize(n);
        return t;
    }
    auto bytes = storage_bytes(dtype, n);
    if (!bytes || *bytes > (uint64_t{1} << 40))
        throw InputError(cat(dtype_name(dtype), " ", shape_string(t.shape), " is too large"));
    t.data = TensorData::uninitialized(static_cast<size_t>(*bytes));
    return t;
}

Tensor make_tensor(DType dtype, std::vector<int64_t> shape) {
    Tensor t = make_uninitialized_tensor(dtype, std::move(shape));
    if (dtype != DType::String) {
        auto bytes = t.data.mutable_bytes();
        if (!bytes.empty()) std::memset(bytes.data(), 0, bytes.size());
    }
    return t;
}

std::vector<int64_t> read_ints(const OpContext& ctx, const Tensor& t) {
    std::vector<int64_t> out;
    if (t.dtype == DType::I64) {
        auto v = t.values<int64_t>();
        out.assign(v.begin(), v.end());
    } else if (t.dtype == DType::I32) {
        auto v = t.values<int32_t>();
        out.assign(v.begin(), v.end());
    } else {
        ctx.fail(cat("tensor '", t.name, "': expected i64 or i32, found ", dtype_name(t.dtype)));
    }
    return out;
}

double read_scalar(const OpContext& ctx, const Tensor& t) {
    if (t.element_count() != 1)
        ctx.fail(cat("tensor '", t.name, "': expected one element, found shape ",
                     shape_string(t.shape)));
    switch (t.dtype) {
        case DType::F32:
            return t.values<float>()[0];
        case DType::F64:
            return t.values<double>()[0];
        case DType::F16:
            return half_to_float(t.values<uint16_t>()[0]);
        case DType::BF16:
            return bf16_to_float(t.values<uint16_t>()[0]);
        case DType::I64:
            return static_cast<double>(t.values<int64_t>()[0]);
        case DType::I32:
            return t.values<int32_t>()[0];
        case DType::I8:
            return t.values<int8_t>()[0];
        case DType::U8:
            return t.values<uint8_t>()[0];
        case DType::Bool:
            return t.values<uint8_t>()[0];
        default:
            ctx.fail(cat("tensor '", t.name, "': unsupported scalar dtype ", dtype_name(t.dtype)));
    }
}

std::vector<int64_t> broadcast_shapes(const OpContext& ctx, std::span<const int64_t> a,
                                      std::span<const int64_t> b) {
    size_t rank = std::max(a.size(), b.size());
    std::vector<int64_t> out(rank);
    for (size_t i = 0; i < rank; ++i) {
        int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
        int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
        if (da != db && da != 1 && db != 1)
            ctx.fail(
                cat("shapes ", shape_string(a), " and ", shape_string(b), " do not broadcast"));
        out[i] = da == 1 ? db : da;
    }
    return out;
}

std::vector<int64_t> broadcast_strides(std::span<const int64_t> shape,
                                       std::span<const int64_t> out_shape) {
    size_t rank = out_shape.size();
    std::vector<int64_t> strides(rank, 0);
    int64_t stride = 1;
    for (size_t k = 0; k < shape.size(); ++k) {
        size_t i = shape.size() - 1 - k;
        size_t o = rank - 1 - k;
        strides[o] = shape[i] == 1 ? 0 : stride;
        stride *= shape[i];
    }
    return strides;
}

int64_t normalize_axis(const OpContext& ctx, int64_t axis, int64_t rank) {
    int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= std::max<int64_t>(rank, 1))
        ctx.fail(cat("axis ", axis, " is out of range for rank ", rank));
    return a;
}

}  // namespace ep::rt
