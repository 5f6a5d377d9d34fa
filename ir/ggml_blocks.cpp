// ggml block decoders (contract in ggml_blocks.h).
#include "ggml_blocks.h"

#include <cstdint>
#include <cstring>

#include "tensor.h"

namespace ep::ggml {
namespace {

constexpr size_t kQK = 32;     // block size of Q4_0 .. Q8_0
constexpr size_t kQK_K = 256;  // block size of the K-quants

float f16(const std::byte* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return half_to_float(h);
}
uint8_t u8(const std::byte* p) {
    return static_cast<uint8_t>(*p);
}

}  // namespace

void decode_f32(const std::byte* p, size_t n, float* out) {
    std::memcpy(out, p, n * 4);
}
void decode_f16(const std::byte* p, size_t n, float* out) {
    for (size_t i = 0; i < n; ++i) out[i] = f16(p + 2 * i);
}
// BF16: the 16 bits are the high half of the f32.
void decode_bf16(const std::byte* p, size_t n, float* out) {
    for (size_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, p + 2 * i, 2);
        out[i] = bf16_to_float(b);
    }
}
// Q4_0 {f16 d; u8 qs[16]}, 4.5 bits: x[j] = d * (lo(qs[j]) - 8), x[j+16] = d * (hi(qs[j]) - 8).
void decode_q4_0(const std::byte* p, size_t n, float* out) {
    for (size_t b = 0; b < n; ++b, p += 18, out += kQK) {
        float d = f16(p);
        for (size_t j = 0; j < 16; ++j) {
            out[j] = d * static_cast<float>((u8(p + 2 + j) & 0x0F) - 8);
            out[j + 16] = d * static_cast<float>((u8(p + 2 + j) >> 4) - 8);
        }
    }
}
// Q4_1 {f16 d; f16 m; u8 qs[16]}, 5 bits: x = d * q + m, q as Q4_0's nibbles (no offset).
void decode_q4_1(const std::byte* p, size_t n, float* out) {
    for (size_t b = 0; b < n; ++b, p += 20, out += kQK) {
        float d = f16(p), m = f16(p + 2);
        for (size_t j = 0; j < 16; ++j) {
            out[j] = d * static_cast<float>(u8(p + 4 + j) & 0x0F) + m;
            out[j + 16] = d * static_cast<float>(u8(p + 4 + j) >> 4) + m;
        }
    }
}
// Q5_0 {f16 d; u32 qh; u8 qs[16]}, 5.5 bits: q = nibble | bit j of qh << 4; x = d * (q - 16).
// Q5_1 {f16 d; f16 m; u32 qh; u8 qs[16]}, 6 bits: x = d * q + m.
template <bool WithMin>
void decode_q5_t(const std::byte* p, size_t n, float* out) {
    constexpr size_t head = WithMin ? 4 : 2, size = head + 4 + 16;
    for (size_t b = 0; b < n; ++b, p += size, out += kQK) {
        float d = f16(p), m = WithMin ? f16(p + 2) : 0.0f;
        uint32_t qh;
        std::memcpy(&qh, p + head, 4);
        const std::byte* qs = p + head + 4;
        for (size_t j = 0; j < 16; ++j) {
            int lo = (u8(qs + j) & 0x0F) | static_cast<int>(((qh >> j) & 1) << 4);
            int hi = (u8(qs + j) >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
            if constexpr (WithMin) {
                out[j] = d * static_cast<float>(lo) + m;
                out[j + 16] = d * static_cast<float>(hi) + m;
            } else {
                out[j] = d * static_cast<float>(lo - 16);
                out[j + 16] = d * static_cast<float>(hi - 16);
            }
        }
    }
}
// Q8_0 {f16 d; i8 qs[32]}, 8.5 bits: x = q * d.
void decode_q8_0(const std::byte* p, size_t n, float* out) {
    for (size_t b = 0; b < n; ++b, p += 34, out += kQK) {
        float d = f16(p);
        for (size_t j = 0; j < kQK; ++j)
            out[j] = static_cast<float>(static_cast<int8_t>(u8(p + 2 + j))) * d;
    }
}
// Q2_K {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}, 2.625 bits: 16 groups of 16; group g has
// dl = d * (scales[g] & 15), ml = dmin * (scales[g] >> 4); x = dl * q - ml with q 2 bits:
// element 128c + 32s + k is bits 2s..2s+1 of qs[32c + k].
void decode_q2_k(const std::byte* p, size_t n, float* out) {
    for (size_t b = 0; b < n; ++b, p += 84, out += kQK_K) {
        const std::byte* scales = p;
        const std::byte* qs = p + 16;
        float d = f16(p + 80), dmin = f16(p + 82);
        for (size_t e = 0; e < kQK_K; ++e) {
            size_t c = e / 128, s = (e % 128) / 32, k = e % 32;
            uint8_t sc = u8(scales + e / 16);
            float dl = d * static_cast<float>(sc & 0x0F);
            float ml = dmin * static_cast<float>(sc >> 4);
            int q = (u8(qs + 32 * c + k) >> (2 * s)) & 3;
            out[e] = dl * static_cast<float>(q) - ml;
        }
    }
}
// Q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}, 3.4375 bits: 16 groups of 16 with a
// 6-bit scale sc (low 4 bits from scales[g % 8] >> 4 (g / 8), high 2 from
// scales[8 + g % 4] >> 2 (g / 4)); x = (d * (sc - 32)) * q, q = low2 - (hmask bit clear ? 4 : 0).
void decode_q3_k(const std::byte* p, size_t n, float* out) {
    for (size_t b = 0; b < n; ++b, p += 110, out += kQK_K) {
        const std::byte* hmask = p;
        const std::byte* qs = p + 32;
        const std::byte* scales = p + 96;
        float d = f16(p + 108);
        for (size_t e = 0; e < kQK_K; ++e) {
            size_t g = e / 16;
            int lo = (u8(scales + g % 8) >> (4 * (g / 8))) & 0x0F;
            int hi = (u8(scales + 8 + g % 4) >> (2 * (g / 4))) & 0x03;
            float dl = d * static_cast<float>(static_cast<int8_t>(lo | (hi << 4)) - 32);
            size_t c = e / 128, s = (e % 128) / 32, k = e % 32;
            int low2 = (u8(qs + 32 * c + k) >> (2 * s)) & 3;
            int high = (u8(hmask + k) >> (e / 32)) & 1;
            out[e] = dl * static_cast<float>(low2 - ((high ^ 1) << 2));
        }
    }
}
// The 6-bit scales and minimums of Q4_K / Q5_K's 8 sub-blocks (12 bytes: gguf's
// Q4_K.get_scale_min).
void scale_min_k4(const std::byte* s, uint8_t sc[8], uint8_t mn[8]) {
    for (size_t j = 0; j < 4; ++j) {
        sc[j] = u8(s + j) & 0x3F;
        mn[j] = u8(s + 4 + j) & 0x3F;
        sc[j + 4] = static_cast<uint8_t>((u8(s + 8 + j) & 0x0F) | ((u8(s + j) >> 2) & 0x30));
        mn[j + 4] = static_cast<uint8_t>((u8(s + 8 + j) >> 4) | ((u8(s + 4 + j) >> 2) & 0x30));
    }
}
// Q4_K {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}, 4.5 bits: 8 sub-blocks of 32;
// x = (d * sc) * q - dmin * m; sub-block 2c + h element k is nibble h of qs[32c + k].
// Q5_K {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}, 5.5 bits: q |= bit s of
// qh[k] << 4 for sub-block s.
template <bool Five>
void decode_q45_k_t(const std::byte* p, size_t n, float* out) {
    constexpr size_t size = Five ? 176 : 144;
    for (size_t b = 0; b < n; ++b, p += size, out += kQK_K) {
        float d = f16(p), dmin = f16(p + 2);
        uint8_t sc[8], mn[8];
        scale_min_k4(p + 4, sc, mn);
        const std::byte* qh = p + 16;
        const std::byte* qs = p + (Five ? 48 : 16);
        for (size_t s = 0; s < 8; ++s) {
            float ds = d * static_cast<float>(sc[s]);
            float dm = dmin * static_cast<float>(mn[s]);
            for (size_t k = 0; k < 32; ++k) {
                int q = (u8(qs + 32 * (s / 2) + k) >> (4 * (s % 2))) & 0x0F;
                if constexpr (Five) q |= ((u8(qh + k) >> s) & 1) << 4;
                out[32 * s + k] = ds * static_cast<float>(q) - dm;
            }
        }
    }
}
// Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}, 6.5625 bits: x = (d * scales[e / 16])
// * (q - 32), q = nibble h of ql[64c + k'] | bits 2s.. of qh[32c + k] << 4, for element
// e = 128c + 64h + k' = 128c + 32s + k.
void decode_q6_k(const std::byte* p, size_t n, float* out) {
    for (size_t b = 0; b < n; ++b, p += 210, out += kQK_K) {
        const std::byte* ql = p;
        const std::byte* qh = p + 128;
        const std::byte* scales = p + 192;
        float d = f16(p + 208);
        for (size_t e = 0; e < kQK_K; ++e) {
            size_t c = e / 128, r = e % 128;
            int lo = (u8(ql + 64 * c + r % 64) >> (4 * (r / 64))) & 0x0F;
            int hi = (u8(qh + 32 * c + r % 32) >> (2 * (r / 32))) & 0x03;
            float ds = d * static_cast<float>(static_cast<int8_t>(u8(scales + e / 16)));
            out[e] = ds * static_cast<float>(static_cast<int8_t>(lo | (hi << 4)) - 32);
        }
    }
}

void decode_q5_0(const std::byte* p, size_t n, float* out) {
    decode_q5_t<false>(p, n, out);
}
void decode_q5_1(const std::byte* p, size_t n, float* out) {
    decode_q5_t<true>(p, n, out);
}
void decode_q4_k(const std::byte* p, size_t n, float* out) {
    decode_q45_k_t<false>(p, n, out);
}
void decode_q5_k(const std::byte* p, size_t n, float* out) {
    decode_q45_k_t<true>(p, n, out);
}

}  // namespace ep::ggml
