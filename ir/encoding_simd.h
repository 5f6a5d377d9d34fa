// Internal to ir: the kernels behind quantize_rtn and quantize_tensor_rtn.
//
// The scalar reference (encoding.cpp: choose_qparams, quantize_value, pack_row) defines
// the bytes. An optimised table (encoding_simd.cpp: AVX2 + FMA + F16C, chosen at run time
// from the CPU's features) must write exactly the same bytes for every input: blocks that
// hold an infinity or a NaN go through the reference block by block. A null entry in a
// table means "no optimised variant: use the reference's".
#pragma once

#include <cstdint>

#include "encoding.h"

namespace ep::detail {

struct RtnKernels {
    const char* isa = "scalar";
    // Blocks [0, nblocks) of one stored row piece (grouped schemes): x holds `len` valid
    // floats (len > (nblocks - 1) * group); a block reaching past them is padded with the
    // code of 0.0 as the reference pads a row's last block. Writes nblocks * block_bytes.
    void (*blocks)(const Encoding& e, const float* x, int64_t len, int64_t nblocks,
                   uint8_t* out) = nullptr;
    // int8c: one row of `cols` codes, and its f32 scale at `scale` (4 bytes, unaligned).
    void (*int8c_row)(const Encoding& e, const float* x, int64_t cols, uint8_t* codes,
                      uint8_t* scale) = nullptr;
    // dst[j * ldd + i] = src[i * lds + j] for i < m, j < n (a tile of a transpose).
    void (*transpose)(const float* src, int64_t lds, int64_t m, int64_t n, float* dst,
                      int64_t ldd) = nullptr;
};

// The scalar reference, entry by entry (encoding.cpp): every entry is set.
[[nodiscard]] const RtnKernels& rtn_reference_kernels();
// The AVX2 table for `e` (encoding_simd.cpp): isa "avx2", entries null where `e` is not
// covered; all null (isa "scalar") when the CPU lacks AVX2, FMA or F16C or the build is not
// for x86-64. Ignores EDGEPACK_ISA (the caller checks it).
[[nodiscard]] RtnKernels rtn_avx2_kernels(const Encoding& e);

}  // namespace ep::detail
