// The fused elementwise op of a QDQ model (runtime-check/qdq_fusion.h): a binary Add, Sub,
// Mul or Div between DequantizeLinear inputs and a QuantizeLinear output, run on the 8-bit
// values without materialising the float tensors:
//
//   da = float(a - a_zp) * a_scale        (or a's float value when a is a float tensor)
//   y  = saturate(round_half_even((da OP db) / y_scale) + y_zp)
//
// exactly the operations (and f32 roundings) of DequantizeLinear, the float op and
// QuantizeLinear one after the other, so the bytes are the unfused reference's. Where one
// input is constant along a row of the broadcast (a scalar, or a per-channel [1, C, 1, 1]
// operand) and the row is long, the row runs through a 256-entry table of the same formula
// indexed by the other input's byte.
//
// Node (made by the fusion, never read from a file): domain "ai.edgepack.fused", op_type
// "QdqBinary", attribute op = "Add" | "Sub" | "Mul" | "Div", inputs
// A, A_scale, A_zero_point, B, B_scale, B_zero_point, Y_scale, Y_zero_point
// (a float input has its scale and zero point empty).
#include <algorithm>
#include <array>
#include <cstring>

#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"
#include "runtime-check/ops/quant_common.h"

namespace ep::rt {
namespace {

enum class BinOp { Add, Sub, Mul, Div };

template <BinOp OP>
inline float apply(float a, float b) {
    if constexpr (OP == BinOp::Add) return a + b;
    if constexpr (OP == BinOp::Sub) return a - b;
    if constexpr (OP == BinOp::Mul) return a * b;
    return a / b;
}

// One input as float values: 256 dequantized codes (8-bit input) or the float data.
struct Operand {
    const uint8_t* codes = nullptr;  // 8-bit input
    std::array<float, 256> table{};  // dequantized value of each byte
    const float* values = nullptr;   // float input

    [[nodiscard]] float at(int64_t i) const { return codes ? table[codes[i]] : values[i]; }
};

Operand operand(const OpContext& c, size_t index, const char* what) {
    const Tensor& t = c.input(index);
    Operand op;
    if (t.dtype == DType::F32) {
        check_bytes(c, t, what);
        op.values = t.values<float>().data();
        return op;
    }
    if (t.dtype != DType::U8 && t.dtype != DType::I8)
        c.fail(cat(what, " must be uint8, int8 or float, found ", dtype_name(t.dtype)));
    check_bytes(c, t, what);
    const float scale = static_cast<float>(read_scalar(c, c.input(index + 1)));
    const int32_t zp = read_q_values(c, c.input(index + 2), what)[0];
    const bool is_signed = t.dtype == DType::I8;
    for (int b = 0; b < 256; ++b) {
        const int32_t v = is_signed ? static_cast<int8_t>(b) : b;
        op.table[static_cast<size_t>(b)] = static_cast<float>(v - zp) * scale;
    }
    op.codes = reinterpret_cast<const uint8_t*>(t.data.bytes().data());
    return op;
}

template <BinOp OP, typename T>
void run(OpContext& c, const Operand& a, const Operand& b, const Broadcast& bc, float ys,
         int32_t yz, T* y) {
    constexpr int32_t lo = std::is_signed_v<T> ? -128 : 0, hi = std::is_signed_v<T> ? 127 : 255;
    auto q = [&](float v) { return static_cast<T>(saturate_round(v / ys, yz, lo, hi)); };
    for_each_broadcast_row<2>(
        c.options, bc,
        [&](int64_t out, const std::array<int64_t, 2>& base, const std::array<int64_t, 2>& step,
            int64_t n) {
            T* dst = y + out;
            // A row where one input is constant and the other an 8-bit input: a table.
            const bool a_const = step[0] == 0, b_const = step[1] == 0;
            if (n >= 512 && b_const && a.codes && !a_const) {
                const float bv = b.at(base[1]);
                std::array<T, 256> lut;
                for (int k = 0; k < 256; ++k)
                    lut[static_cast<size_t>(k)] = q(apply<OP>(a.table[static_cast<size_t>(k)], bv));
                const uint8_t* src = a.codes + base[0];
                for (int64_t j = 0; j < n; ++j) dst[j] = lut[src[j]];
                return;
            }
            if (n >= 512 && a_const && b.codes && !b_const) {
                const float av = a.at(base[0]);
                std::array<T, 256> lut;
                for (int k = 0; k < 256; ++k)
                    lut[static_cast<size_t>(k)] = q(apply<OP>(av, b.table[static_cast<size_t>(k)]));
                const uint8_t* src = b.codes + base[1];
                for (int64_t j = 0; j < n; ++j) dst[j] = lut[src[j]];
                return;
            }
            for (int64_t j = 0; j < n; ++j)
                dst[j] = q(apply<OP>(a.at(base[0] + j * step[0]), b.at(base[1] + j * step[1])));
        });
}

}  // namespace

void op_qdq_binary(OpContext& c) {
    const std::string name = c.node.attr_string("op", "");
    BinOp op;
    if (name == "Add")
        op = BinOp::Add;
    else if (name == "Sub")
        op = BinOp::Sub;
    else if (name == "Mul")
        op = BinOp::Mul;
    else if (name == "Div")
        op = BinOp::Div;
    else
        c.fail(cat("op '", name, "' is not Add, Sub, Mul or Div"));
    const Tensor& y_zp = c.input(7);
    if (y_zp.dtype != DType::U8 && y_zp.dtype != DType::I8)
        c.fail(cat("Y_zero_point must be uint8 or int8, found ", dtype_name(y_zp.dtype)));
    const Operand a = operand(c, 0, "A"), b = operand(c, 3, "B");
    const float ys = static_cast<float>(read_scalar(c, c.input(6)));
    const int32_t yz = read_q_values(c, y_zp, "Y_zero_point")[0];
    const Tensor* ins[2] = {&c.input(0), &c.input(3)};
    Broadcast bc = make_broadcast(c, ins);
    Tensor y = make_uninitialized_tensor(y_zp.dtype, bc.shape);
    auto go = [&](auto tag) {
        using T = decltype(tag);
        T* out = reinterpret_cast<T*>(y.data.mutable_bytes().data());
        switch (op) {
            case BinOp::Add:
                return run<BinOp::Add>(c, a, b, bc, ys, yz, out);
            case BinOp::Sub:
                return run<BinOp::Sub>(c, a, b, bc, ys, yz, out);
            case BinOp::Mul:
                return run<BinOp::Mul>(c, a, b, bc, ys, yz, out);
            case BinOp::Div:
                return run<BinOp::Div>(c, a, b, bc, ys, yz, out);
        }
    };
    if (y_zp.dtype == DType::I8)
        go(int8_t{});
    else
        go(uint8_t{});
    c.outputs.push_back(std::move(y));
}

}  // namespace ep::rt
