// The fused elementwise op of a QDQ model (runtime-check/qdq_fusion.h): a binary Add, Sub,
// Mul or Div between DequantizeLinear inputs and a QuantizeLinear output, run on the 8-bit
// values without materialising the float tensors:
//
//   da = float(a - a_zp) * a_scale        (or a's float value when a is a float tensor)
//   y  = saturate(round_half_even((da OP db) / y_scale) + y_zp)
//
// exactly the operations (and f32 roundings) of DequantizeLinear, the float op and
// QuantizeLinear one after the other, so the bytes are the unfused reference's. Rows of the
// broadcast go a chunk at a time: 8-bit inputs dequantized into a float buffer, then
// kernels/qdq_binary.h's vectorised loop.
//
// Node (made by the fusion, never read from a file): domain "ai.edgepack.fused", op_type
// "QdqBinary", attribute op = "Add" | "Sub" | "Mul" | "Div", inputs
// A, A_scale, A_zero_point, B, B_scale, B_zero_point, Y_scale, Y_zero_point
// (a float input has its scale and zero point empty).
#include <algorithm>
#include <array>
#include <cstring>

#include "runtime-check/kernels/qdq_binary.h"
#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"
#include "runtime-check/ops/quant_common.h"

namespace ep::rt {
namespace {

// One input as float values: 256 dequantized codes (8-bit input) or the float data.
struct Operand {
    const uint8_t* codes = nullptr;  // 8-bit input
    std::array<float, 256> table{};  // dequantized value of each byte
    const float* values = nullptr;   // float input
    bool is_signed = false;          // 8-bit input: its parameters
    int32_t zp = 0;
    float scale = 0.0f;

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
    op.is_signed = is_signed;
    op.zp = zp;
    op.scale = scale;
    return op;
}

void run(OpContext& c, QdqBinaryOp op, const Operand& a, const Operand& b, const Broadcast& bc,
         float ys, int32_t yz, bool y_signed, uint8_t* y) {
    constexpr int64_t kChunk = 1024;  // floats per operand buffer (stays in L1)
    auto row = [&](int64_t out, const std::array<int64_t, 2>& base,
                   const std::array<int64_t, 2>& step, int64_t n) {
        float buf[2][kChunk];
        float scalar[2];
        const Operand* ops[2] = {&a, &b};
        if (step[0] == 0 && step[1] == 0) {
            uint8_t v;
            scalar[0] = a.at(base[0]);
            scalar[1] = b.at(base[1]);
            qdq_binary_row(op, &scalar[0], 1, &scalar[1], 1, ys, yz, y_signed, &v, 1);
            std::fill(y + out, y + out + n, v);
            return;
        }
        // One input constant along a long row, the other 8-bit: the row's 256 possible
        // outputs (the same loop on every code), then a table lookup per element.
        for (int k = 0; k < 2 && n >= 512; ++k) {
            const Operand& var = *ops[1 - k];
            if (step[k] != 0 || step[1 - k] != 1 || !var.codes) continue;
            alignas(64) uint8_t codes[256], lut[256];
            float deq[256];
            for (int v = 0; v < 256; ++v) codes[v] = static_cast<uint8_t>(v);
            dequantize_row(codes, var.is_signed, var.zp, var.scale, deq, 256);
            scalar[0] = ops[k]->at(base[k]);
            if (k == 0)
                qdq_binary_row(op, &scalar[0], 0, deq, 1, ys, yz, y_signed, lut, 256);
            else
                qdq_binary_row(op, deq, 1, &scalar[0], 0, ys, yz, y_signed, lut, 256);
            lookup_row(lut, var.codes + base[1 - k], y + out, n);
            return;
        }
        for (int64_t j0 = 0; j0 < n; j0 += kChunk) {
            const int64_t len = std::min(kChunk, n - j0);
            const float* p[2];
            for (int k = 0; k < 2; ++k) {
                const Operand& o = *ops[k];
                if (step[k] == 0) {
                    scalar[k] = o.at(base[k]);
                    p[k] = &scalar[k];
                } else if (o.codes) {
                    dequantize_row(o.codes + base[k] + j0, o.is_signed, o.zp, o.scale, buf[k], len);
                    p[k] = buf[k];
                } else {
                    p[k] = o.values + base[k] + j0;
                }
            }
            qdq_binary_row(op, p[0], step[0], p[1], step[1], ys, yz, y_signed, y + out + j0, len);
        }
    };
    // One long row (a scalar operand, or equal shapes): split it over the threads too.
    constexpr int64_t kSplit = 16384;
    if (bc.dims.size() == 1 && bc.count > kSplit) {
        std::array<int64_t, 2> step{bc.strides[0][0], bc.strides[1][0]};
        parallel_for(c.options, (bc.count + kSplit - 1) / kSplit, 1, [&](int64_t t0, int64_t t1) {
            for (int64_t t = t0; t < t1; ++t) {
                const int64_t j0 = t * kSplit;
                row(j0, {j0 * step[0], j0 * step[1]}, step, std::min(kSplit, bc.count - j0));
            }
        });
        return;
    }
    for_each_broadcast_row<2>(c.options, bc, row);
}

}  // namespace

void op_qdq_binary(OpContext& c) {
    const std::string name = c.node.attr_string("op", "");
    QdqBinaryOp op = QdqBinaryOp::Add;
    if (name == "Sub")
        op = QdqBinaryOp::Sub;
    else if (name == "Mul")
        op = QdqBinaryOp::Mul;
    else if (name == "Div")
        op = QdqBinaryOp::Div;
    else if (name != "Add")
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
    run(c, op, a, b, bc, ys, yz, y_zp.dtype == DType::I8,
        reinterpret_cast<uint8_t*>(y.data.mutable_bytes().data()));
    c.outputs.push_back(std::move(y));
}

}  // namespace ep::rt
