#include "runtime-check/qgemm.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "compressor/ir/checked.h"

namespace ep::rt {
namespace {

// Elements dequantized at a time along a row of an int8c (per-channel) weight.
constexpr int64_t kInt8cChunk = 256;

// The stored matrix of an encoded weight and how to find its blocks.
struct QMat {
    Encoding e;
    const uint8_t* data = nullptr;
    int64_t rows = 0, cols = 0;
    int64_t chunk = 0;       // elements per dequantized piece: the group, or kInt8cChunk
    int64_t chunks = 0;      // pieces per row
    uint64_t row_stride = 0; // grouped: bytes per stored row
    size_t blk_bytes = 0;    // grouped: bytes per block
    uint64_t scales_at = 0;  // int8c: offset of the f32 scales
};

QMat qmat_of(const Tensor& w, const std::string& what) {
    check_encoding(w.encoding, what);
    w.check_consistent();
    QMat q;
    q.e = w.encoding;
    auto dims = encoded_dims(w.encoding, w.shape, what);
    q.rows = dims.rows;
    q.cols = dims.cols;
    q.data = reinterpret_cast<const uint8_t*>(w.data.bytes().data());
    if (traits(q.e.scheme).grouped) {
        q.chunk = q.e.group;
        q.row_stride = row_bytes(q.e, q.cols);
        q.blk_bytes = block_bytes(q.e);
    } else {
        q.chunk = kInt8cChunk;
        const uint64_t codes = static_cast<uint64_t>(q.rows) * static_cast<uint64_t>(q.cols);
        q.scales_at = codes + (4 - codes % 4) % 4;
    }
    q.chunks = (q.cols + q.chunk - 1) / q.chunk;
    return q;
}

float load_scale(const Encoding& e, const uint8_t* p) {
    uint16_t d;
    std::memcpy(&d, p, 2);
    return e.scale_dtype == DType::BF16 ? bf16_to_float(d) : half_to_float(d);
}

// Dequantizes piece b of stored row r (elements [b * chunk, min(cols, (b + 1) * chunk)))
// into out; returns the element count. The values are exactly dequantize_row's:
// scale * float(code - zero).
template <QScheme S>
int64_t dequant_piece(const QMat& q, int64_t r, int64_t b, float* out) {
    const int64_t c0 = b * q.chunk, len = std::min(q.chunk, q.cols - c0);
    if constexpr (S == QScheme::Int8Channel) {
        const auto* codes = reinterpret_cast<const int8_t*>(q.data + r * q.cols + c0);
        float s;
        std::memcpy(&s, q.data + q.scales_at + static_cast<uint64_t>(r) * 4, 4);
        for (int64_t j = 0; j < len; ++j) out[j] = s * static_cast<float>(codes[j]);
        return len;
    } else {
        const uint8_t* blk = q.data + static_cast<uint64_t>(r) * q.row_stride + static_cast<uint64_t>(b) * q.blk_bytes;
        const float s = load_scale(q.e, blk);
        if constexpr (S == QScheme::Int8Sym) {
            const auto* codes = reinterpret_cast<const int8_t*>(blk + 2);
            for (int64_t j = 0; j < len; ++j) out[j] = s * static_cast<float>(codes[j]);
        } else if constexpr (S == QScheme::Int8Asym) {
            const int z = blk[2];
            const uint8_t* codes = blk + 4;
            for (int64_t j = 0; j < len; ++j) out[j] = s * static_cast<float>(int{codes[j]} - z);
        } else {
            const int z = S == QScheme::Int4Sym ? 8 : blk[2];
            const uint8_t* qs = blk + (S == QScheme::Int4Sym ? 2 : 4);
            int8_t codes[128];
            for (int64_t i = 0; i < q.chunk / 2; ++i) {
                codes[2 * i] = static_cast<int8_t>((qs[i] & 0xF) - z);
                codes[2 * i + 1] = static_cast<int8_t>((qs[i] >> 4) - z);
            }
            for (int64_t j = 0; j < len; ++j) out[j] = s * static_cast<float>(codes[j]);
        }
        return len;
    }
}

// Few rows of A: each output channel dequantizes one piece at a time (on the stack,
// kInt8cChunk floats at most) and takes dot products with 8 interleaved partial sums,
// combined in a fixed order. No other scratch.
template <QScheme S>
void small_m(const ExecOptions& options, const QMat& q, const float* a, int64_t m, int64_t lda,
             float* y, int64_t ldy) {
    const int64_t min_chunk = std::max<int64_t>(16, kGemmParallelWork / std::max<int64_t>(1, q.cols * m));
    parallel_for(options, q.rows, min_chunk, [&](int64_t n0, int64_t n1) {
        alignas(64) float w[kInt8cChunk];
        for (int64_t col = n0; col < n1; ++col) {
            float acc[kQSmallM][8] = {};
            for (int64_t b = 0; b < q.chunks; ++b) {
                const int64_t k0 = b * q.chunk, len = dequant_piece<S>(q, col, b, w);
                for (int64_t i = 0; i < m; ++i) {
                    const float* ar = a + i * lda + k0;
                    float lanes[8];
                    std::copy(acc[i], acc[i] + 8, lanes);
                    int64_t t = 0;
                    for (; t + 8 <= len; t += 8)
#pragma omp simd
                        for (int l = 0; l < 8; ++l) lanes[l] += ar[t + l] * w[t + l];
                    for (; t < len; ++t) lanes[t % 8] += ar[t] * w[t];
                    std::copy(lanes, lanes + 8, acc[i]);
                }
            }
            for (int64_t i = 0; i < m; ++i) {
                const float* v = acc[i];
                y[i * ldy + col] = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
            }
        }
    });
}

// More rows: fixed panels of kQPanel output channels; each panel is dequantized into a
// thread-local [kQPanel, K] buffer (kQPanel * K floats per thread: 512 KiB at K = 4096)
// and multiplied with the float GEMM on the calling thread (one thread per panel).
template <QScheme S>
void panels(const ExecOptions& options, const QMat& q, const float* a, int64_t m, int64_t lda,
            float* y, int64_t ldy) {
    const int64_t count = (q.rows + kQPanel - 1) / kQPanel;
    const int64_t panel_work = std::max<int64_t>(1, kQPanel * q.cols * m);
    const ExecOptions single{};
    parallel_for(options, count, std::max<int64_t>(1, kGemmParallelWork / panel_work), [&](int64_t p0, int64_t p1) {
        std::vector<float> w(static_cast<size_t>(kQPanel * q.cols));
        for (int64_t p = p0; p < p1; ++p) {
            const int64_t n0 = p * kQPanel, width = std::min(kQPanel, q.rows - n0);
            for (int64_t r = 0; r < width; ++r) {
                float* row = w.data() + r * q.cols;
                for (int64_t b = 0; b < q.chunks; ++b) dequant_piece<S>(q, n0 + r, b, row + b * q.chunk);
            }
            MatrixView av{a, m, q.cols, lda, false};
            MatrixView wv{w.data(), q.cols, width, q.cols, true};
            gemm_f32(single, av, wv, y + n0, ldy, false);
        }
    });
}

template <QScheme S>
void run(const ExecOptions& options, const QMat& q, const float* a, int64_t m, int64_t lda, float* y,
         int64_t ldy) {
    if (m <= kQSmallM)
        small_m<S>(options, q, a, m, lda, y, ldy);
    else
        panels<S>(options, q, a, m, lda, y, ldy);
}

}  // namespace

bool kernel_reads_encoding(const Node& node, size_t input, const Tensor& weight) {
    if (!node.domain.empty() || weight.shape.empty()) return false;
    const auto rank = weight.shape.size();
    if (node.op_type == "MatMul") return input == 1 && rank == 2 && weight.encoding.axis == 0;
    if (node.op_type == "Gemm") {
        const int64_t tb = node.attr_int("transB", 0) != 0 ? 1 : 0;
        return input == 1 && rank == 2 && weight.encoding.axis == tb;
    }
    if (node.op_type == "Gather") {
        const int64_t axis = node.attr_int("axis", 0);
        return input == 0 && weight.encoding.axis == 1 && (axis == 0 || axis == -static_cast<int64_t>(rank));
    }
    return false;
}

void qgemm_f32(const OpContext& c, const MatrixView& a, const Tensor& w, int64_t n, float* y,
               int64_t ldy) {
    const QMat q = qmat_of(w, cat("weight '", w.name, "'"));
    if (q.cols != a.cols || q.rows != n)
        c.fail(cat("A has ", a.cols, " columns but the encoded weight '", w.name, "' ",
                   shape_string(w.shape), " has ", q.rows, " output channels of ", q.cols, " (expected ", n, " of ", a.cols, ")"));
    std::vector<float> at;  // A made row-major when it is transposed
    const float* pa = a.data;
    int64_t lda = a.ld;
    if (a.transposed) {
        at.resize(static_cast<size_t>(a.rows * a.cols));
        for (int64_t i = 0; i < a.rows; ++i)
            for (int64_t k = 0; k < a.cols; ++k) at[static_cast<size_t>(i * a.cols + k)] = a.data[k * a.ld + i];
        pa = at.data();
        lda = a.cols;
    }
    if (a.rows == 0 || q.rows == 0) return;
    switch (q.e.scheme) {
        case QScheme::Int8Channel: return run<QScheme::Int8Channel>(c.options, q, pa, a.rows, lda, y, ldy);
        case QScheme::Int8Sym: return run<QScheme::Int8Sym>(c.options, q, pa, a.rows, lda, y, ldy);
        case QScheme::Int8Asym: return run<QScheme::Int8Asym>(c.options, q, pa, a.rows, lda, y, ldy);
        case QScheme::Int4Sym: return run<QScheme::Int4Sym>(c.options, q, pa, a.rows, lda, y, ldy);
        case QScheme::Int4Asym: return run<QScheme::Int4Asym>(c.options, q, pa, a.rows, lda, y, ldy);
        default: c.fail(cat("weight '", w.name, "' has no encoding this kernel reads"));
    }
}

Tensor qmatmul(const OpContext& c, const Tensor& a, const Tensor& w) {
    if (w.shape.size() != 2 || w.encoding.axis != 0)
        c.fail(cat("encoded MatMul weight '", w.name, "' must be 2-D [K, N] encoded along axis 0"));
    const int64_t k = w.shape[0], n = w.shape[1];
    if (a.shape.empty() || a.shape.back() != k)
        c.fail(cat("shapes ", shape_string(a.shape), " and ", shape_string(w.shape), " cannot be multiplied"));
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
        if (i < -rows || i >= rows) c.fail(cat("index ", i, " is out of range for dimension ", rows));
        if (i < 0) i += rows;
    }
    std::vector<int64_t> shape = indices.shape;
    shape.insert(shape.end(), data.shape.begin() + 1, data.shape.end());
    Tensor y = make_uninitialized_tensor(DType::F32, shape);
    float* out = y.mutable_values<float>().data();
    const auto bytes = data.data.bytes();
    const int64_t cols = dims.cols;
    parallel_for(c.options, static_cast<int64_t>(idx.size()), std::max<int64_t>(1, 4096 / std::max<int64_t>(cols, 1)),
                 [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i)
            dequantize_row(data.encoding, bytes, rows, cols, idx[static_cast<size_t>(i)], out + i * cols);
    });
    c.outputs.push_back(std::move(y));
}

}  // namespace ep::rt
