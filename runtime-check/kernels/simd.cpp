// Chooses the kernel table once, at first use, from the CPU's features.
#include "runtime-check/kernels/simd.h"

#include <cstdlib>
#include <cstring>

namespace ep::rt {
namespace {

SimdKernels choose() {
    SimdKernels table;
    const char* isa = std::getenv("EDGEPACK_ISA");
    if (isa && std::strcmp(isa, "baseline") == 0) return table;
    if (!isa || std::strcmp(isa, "avx2") != 0) {
        SimdKernels avx512;
        if (fill_avx512_kernels(avx512)) return avx512;
    }
    SimdKernels avx2;
    if (fill_avx2_kernels(avx2)) return avx2;
    return table;
}

}  // namespace

const SimdKernels& simd_kernels() {
    static const SimdKernels table = choose();
    return table;
}

}  // namespace ep::rt
