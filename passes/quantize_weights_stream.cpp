// The quantize-weights pass's chunked RTN encoder (contract in quantize_weights.h).
#include <algorithm>
#include <cstring>
#include <vector>

#include "ir/error.h"
#include "ir/mapped_file.h"
#include "passes/quantize_weights.h"

namespace ep {

namespace {

// Source elements [first, first + count) of `t` as floats (f32, f16, bf16).
void to_floats(const Tensor& t, size_t first, size_t count, float* out) {
    auto bytes = t.data.bytes();
    switch (t.dtype) {
        case DType::F32:
            std::memcpy(out, bytes.data() + first * 4, count * 4);
            return;
        case DType::F16:
        case DType::BF16: {
            const auto* v = reinterpret_cast<const uint16_t*>(bytes.data()) + first;
            if (t.dtype == DType::F16)
                for (size_t i = 0; i < count; ++i) out[i] = half_to_float(v[i]);
            else
                for (size_t i = 0; i < count; ++i) out[i] = bf16_to_float(v[i]);
            return;
        }
        default:
            throw InternalError(cat("tensor '", t.name, "': streaming quantization reads f32, ",
                                    "f16 or bf16, found ", dtype_name(t.dtype)));
    }
}

}  // namespace

void write_rtn_chunked(const Tensor& t, const Encoding& e, ByteSink& out, size_t chunk_floats) {
    const std::string what = cat("tensor '", t.name, "'");
    check_encoding(e, what);
    if (e.axis != 1)
        throw InternalError(cat(what, ": streaming quantization takes axis 1 (rows = shape[0])"));
    t.check_consistent();
    const auto dims = encoded_dims(e, t.shape, what);
    const int64_t rows = dims.rows, cols = dims.cols;
    const auto total = encoded_bytes(e, rows, cols);
    if (!total) throw InputError(cat(what, ": the encoded size overflows"));
    if (rows == 0 || cols == 0) {
        out.write_zeros(static_cast<size_t>(*total));
        return;
    }
    const size_t element_bytes = static_cast<size_t>(traits(t.dtype).bits / 8);
    const auto ucols = static_cast<size_t>(cols);
    const int64_t chunk_rows =
        std::max<int64_t>(1, static_cast<int64_t>(std::max<size_t>(chunk_floats, 1) / ucols));
    std::vector<float> floats(static_cast<size_t>(std::min(rows, chunk_rows)) * ucols);
    // int8c: every row's codes first, then every row's f32 scale (encoding.h).
    const bool per_channel = !traits(e.scheme).grouped;
    std::vector<std::byte> scales;
    if (per_channel) scales.reserve(static_cast<size_t>(rows) * 4);

    for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
        const int64_t n = std::min(chunk_rows, rows - r0);
        const size_t first = static_cast<size_t>(r0) * ucols;
        const size_t count = static_cast<size_t>(n) * ucols;
        to_floats(t, first, count, floats.data());
        std::vector<std::byte> q = quantize_rtn(e, std::span(floats.data(), count), n, cols);
        if (per_channel) {
            out.write(std::span<const std::byte>(q).first(count));
            scales.insert(scales.end(), q.end() - n * 4, q.end());
        } else {
            out.write(std::span<const std::byte>(q));
        }
        if (t.data.is_view())
            t.data.file()->release(t.data.file_offset() + first * element_bytes,
                                   count * element_bytes);
    }
    if (per_channel) {
        const uint64_t codes = static_cast<uint64_t>(rows) * ucols;
        out.write_zeros(static_cast<size_t>((4 - codes % 4) % 4));
        out.write(std::span<const std::byte>(scales));
    }
    // Pages the chunk boundaries split (release() keeps partial pages) go too.
    if (t.data.is_view()) t.data.file()->release(t.data.file_offset(), t.data.size());
}

}  // namespace ep
