// Bit operations on integer tensors: BitwiseAnd / BitwiseOr / BitwiseXor (numpy
// broadcasting, any integer dtype, both inputs of the same dtype), BitwiseNot, and
// BitShift (unsigned dtypes; direction "LEFT" or "RIGHT"; a shift by the bit width or
// more gives 0, as numpy's left_shift / right_shift do for unsigned values).
// Exact integer results, so any thread split gives the same bits.
#include <array>

#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"

namespace ep::rt {
namespace {

// Calls fn(T{}) with the C++ type of an integer dtype.
template <typename Fn>
void dispatch_integer(const OpContext& c, DType dtype, Fn&& fn) {
    switch (dtype) {
        case DType::I8:
            return fn(int8_t{});
        case DType::I16:
            return fn(int16_t{});
        case DType::I32:
            return fn(int32_t{});
        case DType::I64:
            return fn(int64_t{});
        case DType::U8:
            return fn(uint8_t{});
        case DType::U16:
            return fn(uint16_t{});
        case DType::U32:
            return fn(uint32_t{});
        case DType::U64:
            return fn(uint64_t{});
        default:
            c.fail(cat("input of type ", dtype_name(dtype), ": expected an integer type"));
    }
}

template <typename F>
void binary_bits(OpContext& c, bool unsigned_only, F f) {
    const Tensor& a = c.input(0);
    const Tensor& b = c.input(1);
    if (a.dtype != b.dtype)
        c.fail(cat("input dtypes differ: ", dtype_name(a.dtype), " and ", dtype_name(b.dtype)));
    if (unsigned_only && a.dtype != DType::U8 && a.dtype != DType::U16 && a.dtype != DType::U32 &&
        a.dtype != DType::U64)
        c.fail(cat("inputs of type ", dtype_name(a.dtype), ": expected an unsigned integer type"));
    std::array<const Tensor*, 2> ins{&a, &b};
    Broadcast bc = make_broadcast(c, ins);
    Tensor y = make_uninitialized_tensor(a.dtype, bc.shape);
    dispatch_integer(c, a.dtype, [&](auto tag) {
        using T = decltype(tag);
        const T* xa = a.values<T>().data();
        const T* xb = b.values<T>().data();
        T* yo = y.mutable_values<T>().data();
        for_each_broadcast<2>(c.options, bc, [&](int64_t o, const std::array<int64_t, 2>& off) {
            yo[o] = f(xa[off[0]], xb[off[1]]);
        });
    });
    c.outputs.push_back(std::move(y));
}

}  // namespace

void op_bitwise_and(OpContext& c) {
    binary_bits(c, false, [](auto a, auto b) { return static_cast<decltype(a)>(a & b); });
}
void op_bitwise_or(OpContext& c) {
    binary_bits(c, false, [](auto a, auto b) { return static_cast<decltype(a)>(a | b); });
}
void op_bitwise_xor(OpContext& c) {
    binary_bits(c, false, [](auto a, auto b) { return static_cast<decltype(a)>(a ^ b); });
}

void op_bitwise_not(OpContext& c) {
    const Tensor& x = c.input(0);
    Tensor y = make_uninitialized_tensor(x.dtype, x.shape);
    dispatch_integer(c, x.dtype, [&](auto tag) {
        using T = decltype(tag);
        auto xi = x.values<T>();
        auto yo = y.mutable_values<T>();
        for (size_t i = 0; i < xi.size(); ++i) yo[i] = static_cast<T>(~xi[i]);
    });
    c.outputs.push_back(std::move(y));
}

void op_bit_shift(OpContext& c) {
    std::string direction = c.node.attr_string("direction", "");
    if (direction != "LEFT" && direction != "RIGHT")
        c.fail(cat("direction '", direction, "': expected LEFT or RIGHT"));
    const bool left = direction == "LEFT";
    binary_bits(c, true, [left](auto a, auto b) {
        using T = decltype(a);
        if (static_cast<uint64_t>(b) >= sizeof(T) * 8) return T{0};
        return static_cast<T>(left ? a << b : a >> b);
    });
}

}  // namespace ep::rt
