// Tensor: a named, typed, shaped block of little-endian element bytes.
//
// The bytes live in TensorData, which is either an owned heap block or a read-only view
// into a memory-mapped file. Copying a Tensor shares its bytes; a pass that changes a
// tensor calls mutable_bytes(), which copies only then (copy-on-write). Invariant kept by
// every reader: the data pointer is aligned for the element type, so typed spans are safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dtype.h"
#include "encoding.h"
#include "error.h"
#include "mapped_file.h"

namespace ep {

class TensorData {
  public:
    TensorData() = default;
    [[nodiscard]] static TensorData owned(std::vector<std::byte> bytes);
    // `size` owned bytes, 64-byte aligned and NOT initialized: for writers that fill
    // every byte (kernel outputs). Copy-on-write as for owned().
    [[nodiscard]] static TensorData uninitialized(size_t size);
    // A view of [offset, offset+size) of `file`; the caller has checked the range.
    [[nodiscard]] static TensorData view(std::shared_ptr<const MappedFile> file, size_t offset,
                                         size_t size);

    [[nodiscard]] std::span<const std::byte> bytes() const { return {ptr_, size_}; }
    [[nodiscard]] size_t size() const { return size_; }
    [[nodiscard]] bool is_view() const { return file_ != nullptr; }
    // The mapping a view points into (null for owned data): lets writers stream and
    // release pages of large tensors.
    [[nodiscard]] const std::shared_ptr<const MappedFile>& file() const { return file_; }
    [[nodiscard]] size_t file_offset() const { return file_offset_; }

    // Writable bytes; copies first if the data is a view or shared with another tensor.
    [[nodiscard]] std::span<std::byte> mutable_bytes();

  private:
    std::shared_ptr<std::vector<std::byte>> owned_;
    std::shared_ptr<std::byte[]> block_;  // storage of uninitialized()
    std::shared_ptr<const MappedFile> file_;
    size_t file_offset_ = 0;
    const std::byte* ptr_ = nullptr;
    size_t size_ = 0;
};

struct Tensor {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    TensorData data;                   // packed element bytes (not for strings)
    std::vector<std::string> strings;  // elements of a DType::String tensor
    std::string doc_string;
    // Quantized weights (encoding.h): when set, dtype is what the tensor dequantizes to
    // (F32), shape its logical shape, and data the encoded rows. Kernels that do not read
    // an encoding see such a tensor only after dequantize_tensor().
    Encoding encoding;

    [[nodiscard]] bool is_encoded() const { return !encoding.is_none(); }
    [[nodiscard]] int64_t element_count() const;  // product of shape (1 for a scalar)
    // Bytes the dtype and shape call for; throws InputError naming the tensor on overflow.
    [[nodiscard]] uint64_t expected_bytes() const;
    // Throws InputError naming the tensor when data size and dtype x shape disagree.
    void check_consistent() const;

    template <typename T>
    [[nodiscard]] std::span<const T> values() const {
        auto b = data.bytes();
        return {reinterpret_cast<const T*>(b.data()), b.size() / sizeof(T)};
    }
    template <typename T>
    [[nodiscard]] std::span<T> mutable_values() {
        auto b = data.mutable_bytes();
        return {reinterpret_cast<T*>(b.data()), b.size() / sizeof(T)};
    }
    // Elements as float, converting from f64/f32/f16/bf16 or dequantizing an encoded
    // tensor (in its logical layout); throws for other dtypes.
    [[nodiscard]] std::vector<float> to_floats() const;
    // Fraction of elements whose bytes are all zero (0 for empty tensors and strings).
    [[nodiscard]] double zero_fraction() const;
};

[[nodiscard]] std::string shape_string(std::span<const int64_t> shape);  // "[128, 3136]"

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);  // round to nearest even
float bf16_to_float(uint16_t b);
uint16_t float_to_bf16(float f);  // round to nearest even

// A tensor of f32 values with the given shape (owned).
[[nodiscard]] Tensor make_f32_tensor(std::string name, std::vector<int64_t> shape,
                                     std::span<const float> values);

}  // namespace ep
