// NumPy .npy files (format versions 1.0, 2.0, 3.0): the input and output format of
// `edgepack run` and the exchange format with the Python oracles.
//
//   6 bytes  "\x93NUMPY"
//   2 bytes  major, minor version
//   2 bytes (v1) or 4 bytes (v2, v3) little-endian header length H
//   H bytes  a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
//            padded with spaces and a final '\n' so the data starts 64-byte aligned
//   data     C-order elements
// The reader accepts little-endian and byte-order-free descriptors for the dtypes of
// DType (f2, f4, f8, i1..i8, u1..u8, b1) and rejects Fortran order, big-endian data,
// object arrays, and any header or size that does not match the bytes present.
#pragma once

#include <filesystem>
#include <span>
#include <string>

#include "ir/tensor.h"

namespace ep {

[[nodiscard]] Tensor read_npy(const std::filesystem::path& path);
// `what` names the source in error messages.
[[nodiscard]] Tensor parse_npy(std::span<const std::byte> bytes, const std::string& what);
void write_npy(const Tensor& tensor, const std::filesystem::path& path);
[[nodiscard]] std::string npy_descr(DType dtype);  // "<f4"; throws InputError if none

}  // namespace ep
