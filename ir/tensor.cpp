#include "tensor.h"

#include "sparse.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "checked.h"

namespace ep {

TensorData TensorData::owned(std::vector<std::byte> bytes) {
    TensorData d;
    d.owned_ = std::make_shared<std::vector<std::byte>>(std::move(bytes));
    d.ptr_ = d.owned_->data();
    d.size_ = d.owned_->size();
    return d;
}

TensorData TensorData::view(std::shared_ptr<const MappedFile> file, size_t offset, size_t size) {
    TensorData d;
    d.ptr_ = file->bytes().data() + offset;
    d.size_ = size;
    d.file_offset_ = offset;
    d.file_ = std::move(file);
    return d;
}

TensorData TensorData::uninitialized(size_t size) {
    // One allocation for the count and the bytes (not value-initialized); the data starts
    // at the first 64-byte boundary inside it.
    constexpr size_t kAlign = 64;
    TensorData d;
    d.block_ = std::make_shared_for_overwrite<std::byte[]>(size + kAlign - 1);
    auto addr = reinterpret_cast<uintptr_t>(d.block_.get());
    d.ptr_ = d.block_.get() + ((kAlign - addr % kAlign) % kAlign);
    d.size_ = size;
    return d;
}

std::span<std::byte> TensorData::mutable_bytes() {
    if (block_ && block_.use_count() == 1) return {const_cast<std::byte*>(ptr_), size_};
    if (!block_ && owned_ && owned_.use_count() == 1) return {owned_->data(), owned_->size()};
    // A view, or bytes shared with another tensor: copy first.
    auto copy = std::make_shared<std::vector<std::byte>>(ptr_, ptr_ + size_);
    owned_ = std::move(copy);
    block_.reset();
    file_.reset();
    file_offset_ = 0;
    ptr_ = owned_->data();
    return {owned_->data(), owned_->size()};
}

int64_t Tensor::element_count() const {
    auto n = checked_element_count(shape);
    if (!n)
        throw InputError(
            cat("tensor '", name, "': shape ", shape_string(shape), " is negative or overflows"));
    return static_cast<int64_t>(*n);
}

uint64_t Tensor::expected_bytes() const {
    if (is_encoded()) {
        std::string what = cat("tensor '", name, "'");
        check_encoding(encoding, what);
        auto dims = encoded_dims(encoding, shape, what);
        check_sparsity(encoding, dtype, dims.rows, dims.cols, what);
        auto bytes = encoded_bytes(encoding, dims.rows, dims.cols, dtype);
        if (!bytes)
            throw InputError(
                cat(what, ": ", encoding_name(encoding), " x ", shape_string(shape), " overflows"));
        return *bytes;
    }
    if (dtype == DType::String) return 0;
    auto bytes = storage_bytes(dtype, static_cast<uint64_t>(element_count()));
    if (!bytes)
        throw InputError(cat("tensor '", name, "': ", dtype_name(dtype), " x ", shape_string(shape),
                             " overflows"));
    return *bytes;
}

void Tensor::check_consistent() const {
    if (dtype == DType::Undefined) throw InputError(cat("tensor '", name, "': undefined dtype"));
    if (dtype == DType::String) {
        if (strings.size() != static_cast<uint64_t>(element_count()))
            throw InputError(cat("tensor '", name, "': ", strings.size(), " strings for shape ",
                                 shape_string(shape)));
        return;
    }
    uint64_t want = expected_bytes();
    if (data.size() != want)
        throw InputError(
            cat("tensor '", name,
                "': ", is_encoded() ? encoding_name(encoding) : std::string(dtype_name(dtype)), " ",
                shape_string(shape), " needs ", want, " bytes, found ", data.size()));
}

std::vector<float> Tensor::to_floats() const {
    if (is_encoded()) return dequantize_tensor(*this);
    check_consistent();
    size_t n = static_cast<size_t>(element_count());
    std::vector<float> out(n);
    switch (dtype) {
        case DType::F32:
            std::memcpy(out.data(), data.bytes().data(), n * 4);
            break;
        case DType::F64: {
            auto v = values<double>();
            for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(v[i]);
            break;
        }
        case DType::F16: {
            auto v = values<uint16_t>();
            for (size_t i = 0; i < n; ++i) out[i] = half_to_float(v[i]);
            break;
        }
        case DType::BF16: {
            auto v = values<uint16_t>();
            for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(v[i]);
            break;
        }
        default:
            throw InputError(
                cat("tensor '", name, "': expected a float tensor, found ", dtype_name(dtype)));
    }
    return out;
}

double Tensor::zero_fraction() const {
    if (dtype == DType::String) return 0.0;
    if (is_encoded()) {
        auto v = to_floats();
        if (v.empty()) return 0.0;
        auto zeros = std::count(v.begin(), v.end(), 0.0f);
        return static_cast<double>(zeros) / static_cast<double>(v.size());
    }
    int bits = traits(dtype).bits;
    auto b = data.bytes();
    if (b.empty() || bits < 8) {
        if (b.empty()) return 0.0;
        // Packed sub-byte elements: count zero nibbles.
        uint64_t n = static_cast<uint64_t>(element_count()), zeros = 0;
        for (uint64_t i = 0; i < n; ++i) {
            auto byte = static_cast<uint8_t>(b[i / 2]);
            zeros += ((i % 2 == 0 ? byte : byte >> 4) & 0xF) == 0;
        }
        return n ? static_cast<double>(zeros) / static_cast<double>(n) : 0.0;
    }
    size_t width = static_cast<size_t>(bits / 8), n = b.size() / width, zeros = 0;
    for (size_t i = 0; i < n; ++i) {
        const std::byte* e = b.data() + i * width;
        bool zero = true;
        for (size_t k = 0; k < width; ++k) zero &= e[k] == std::byte{0};
        // -0.0 counts as zero for float types.
        if (!zero && traits(dtype).kind == DTypeKind::Float) {
            zero = true;
            for (size_t k = 0; k + 1 < width; ++k) zero &= e[k] == std::byte{0};
            zero &= (e[width - 1] & std::byte{0x7F}) == std::byte{0};
        }
        zeros += zero;
    }
    return n ? static_cast<double>(zeros) / static_cast<double>(n) : 0.0;
}

std::string shape_string(std::span<const int64_t> shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

float half_to_float(uint16_t h) {
    uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            exp = 127 - 15 + 1;
            while ((mant & 0x400) == 0) {
                mant <<= 1;
                --exp;
            }
            bits = sign | (exp << 23) | ((mant & 0x3FF) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000 | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t float_to_half(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t exp = (x >> 23) & 0xFF, mant = x & 0x7FFFFF;
    if (exp == 0xFF) return static_cast<uint16_t>(sign | 0x7C00 | (mant ? 0x200 : 0));
    int e = static_cast<int>(exp) - 127 + 15;
    if (e >= 31) return static_cast<uint16_t>(sign | 0x7C00);
    if (e <= 0) {
        if (e < -10) return static_cast<uint16_t>(sign);
        mant |= 0x800000;
        int shift = 14 - e;
        uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) ++half;
        return static_cast<uint16_t>(sign | half);
    }
    uint32_t half = (static_cast<uint32_t>(e) << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) ++half;  // may carry into exponent
    return static_cast<uint16_t>(sign | half);
}

float bf16_to_float(uint16_t b) {
    uint32_t bits = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t float_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFF) > 0x7F800000) return static_cast<uint16_t>((x >> 16) | 0x40);  // NaN
    x += 0x7FFF + ((x >> 16) & 1);
    return static_cast<uint16_t>(x >> 16);
}

Tensor make_f32_tensor(std::string name, std::vector<int64_t> shape,
                       std::span<const float> values) {
    Tensor t;
    t.name = std::move(name);
    t.dtype = DType::F32;
    t.shape = std::move(shape);
    std::vector<std::byte> bytes(values.size() * 4);
    if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
    t.data = TensorData::owned(std::move(bytes));
    return t;
}

}  // namespace ep
