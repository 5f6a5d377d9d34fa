// llama.cpp's reference block quantizers (contract in encoding_ggml.h). Each function keeps
// ggml's operation order and float types: the bytes must equal llama.cpp's.
#include "encoding_ggml.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "error.h"
#include "tensor.h"

namespace ep::detail {
namespace {

constexpr float kGroupMaxEps = 1e-15f;  // ggml-quants.c GROUP_MAX_EPS
constexpr int kQK_K = 256;

void put_f16(uint8_t* p, float v) {
    const uint16_t h = float_to_half(v);
    std::memcpy(p, &h, 2);
}
float get_f16(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return half_to_float(h);
}

// quantize_row_q4_1_ref over one group of G (ggml: G = 32), codes in edgepack's nibble
// order (encoding.h: element 2i low); d and m in the encoding's scale dtype.
void q4_1_block(const Encoding& e, const float* x, uint8_t* out) {
    const int qk = e.group;
    float min = std::numeric_limits<float>::max();
    float max = -std::numeric_limits<float>::max();
    for (int j = 0; j < qk; j++) {
        const float v = x[j];
        if (v < min) min = v;
        if (v > max) max = v;
    }
    const float d = (max - min) / ((1 << 4) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t dh = e.scale_dtype == DType::BF16 ? float_to_bf16(d) : float_to_half(d);
    const uint16_t mh = e.scale_dtype == DType::BF16 ? float_to_bf16(min) : float_to_half(min);
    std::memcpy(out, &dh, 2);
    std::memcpy(out + 2, &mh, 2);
    uint8_t* qs = out + 4;
    std::memset(qs, 0, static_cast<size_t>(qk / 2));
    for (int j = 0; j < qk; ++j) {
        const float x0 = (x[j] - min) * id;
        const auto xi =
            static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(x0 + 0.5f))));
        qs[j / 2] |= static_cast<uint8_t>(j % 2 == 0 ? xi : xi << 4);
    }
}

// make_qkx2_quants (ggml-quants.c): a scale and a subtracted minimum for n values under
// weights, searching nstep + 1 scales around nmax / (max - min).
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                       float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                       bool use_mad) {
    float min = x[0];
    float max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        int l = ggml_nearest_int(iscale * (x[i] - min));
        L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        float w = weights[i];
        best_error += w * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = ggml_nearest_int(iscale * (x[i] - min));
            l = std::max(0, std::min(nmax, l));
            Laux[i] = static_cast<uint8_t>(l);
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? std::fabs(diff) : diff * diff;
                float w = weights[i];
                cur_error += w * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

// get_scale_min_k4: sub-block j's 6-bit scale and minimum from block_q4_K.scales.
void get_scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

// quantize_row_q4_K_ref for one super-block (BlockQ4K: d at 0, dmin at 2, scales at 4,
// qs at 16).
void q4_k_block(const float* x, uint8_t* y) {
    uint8_t L[kQK_K];
    uint8_t Laux[32];
    float weights[32];
    float mins[kQK_K / 32];
    float scales[kQK_K / 32];
    uint8_t* ys = y + 4;
    float max_scale = 0;
    float max_min = 0;
    for (int j = 0; j < kQK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f,
                                     0.1f, 20, false);
        float scale = scales[j];
        if (scale > max_scale) max_scale = scale;
        float min = mins[j];
        if (min > max_min) max_min = min;
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < kQK_K / 32; ++j) {
        auto ls = static_cast<uint8_t>(ggml_nearest_int(inv_scale * scales[j]));
        auto lm = static_cast<uint8_t>(ggml_nearest_int(inv_min * mins[j]));
        ls = std::min<uint8_t>(63, ls);
        lm = std::min<uint8_t>(63, lm);
        if (j < 4) {
            ys[j] = ls;
            ys[j + 4] = lm;
        } else {
            ys[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
            ys[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
            ys[j - 0] |= static_cast<uint8_t>((lm >> 4) << 6);
        }
    }
    put_f16(y, max_scale / 63.f);
    put_f16(y + 2, max_min / 63.f);
    uint8_t sc, m;
    for (int j = 0; j < kQK_K / 32; ++j) {
        get_scale_min_k4(j, ys, &sc, &m);
        const float d = get_f16(y) * sc;
        if (d == 0.0f) continue;
        const float dm = get_f16(y + 2) * m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = ggml_nearest_int((x[32 * j + ii] + dm) / d);
            l = std::max(0, std::min(15, l));
            L[32 * j + ii] = static_cast<uint8_t>(l);
        }
    }
    uint8_t* q = y + 16;
    for (int j = 0; j < kQK_K; j += 64) {
        for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
        q += 32;
    }
}

// make_qx_quants (ggml-quants.c) with rmse_type 1 and no importance weights (Q6_K's call).
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
    float max = 0;
    float amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < kGroupMaxEps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = ggml_nearest_int(iscale * x[i]);
        l = std::max(-nmax, std::min(nmax - 1, l));
        L[i] = static_cast<int8_t>(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = ggml_nearest_int(iscale * x[i]);
            l = std::max(-nmax, std::min(nmax - 1, l));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                int l = ggml_nearest_int(iscale * x[i]);
                L[i] = static_cast<int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Q6_K's packing of 256 codes 0..63 (L) into ql / qh (BlockQ6K: ql at 0, qh at 128).
void q6_k_pack(const int8_t* L, uint8_t* y) {
    uint8_t* ql = y;
    uint8_t* qh = y + 128;
    for (int j = 0; j < kQK_K; j += 128) {
        for (int l = 0; l < 32; ++l) {
            const uint8_t q1 = L[j + l + 0] & 0xF;
            const uint8_t q2 = L[j + l + 32] & 0xF;
            const uint8_t q3 = L[j + l + 64] & 0xF;
            const uint8_t q4 = L[j + l + 96] & 0xF;
            ql[l + 0] = static_cast<uint8_t>(q1 | (q3 << 4));
            ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
            qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                         ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
        }
        ql += 64;
        qh += 32;
    }
}

// quantize_row_q6_K_ref for one super-block (ql at 0, qh at 128, scales at 192, d at 208).
void q6_k_block(const float* x, uint8_t* y) {
    int8_t L[kQK_K];
    float scales[kQK_K / 16];
    float max_scale = 0;
    float max_abs_scale = 0;
    for (int ib = 0; ib < kQK_K / 16; ++ib) {
        const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
        scales[ib] = scale;
        const float abs_scale = std::fabs(scale);
        if (abs_scale > max_abs_scale) {
            max_abs_scale = abs_scale;
            max_scale = scale;
        }
    }
    if (max_abs_scale < kGroupMaxEps) {
        std::memset(y, 0, sizeof(BlockQ6K));
        put_f16(y + 208, 0.f);
        return;
    }
    auto* ysc = reinterpret_cast<int8_t*>(y + 192);
    float iscale = -128.f / max_scale;
    put_f16(y + 208, 1 / iscale);
    for (int ib = 0; ib < kQK_K / 16; ++ib)
        ysc[ib] = static_cast<int8_t>(std::min(127, ggml_nearest_int(iscale * scales[ib])));
    for (int j = 0; j < kQK_K / 16; ++j) {
        float d = get_f16(y + 208) * ysc[j];
        if (d == 0.0f) continue;
        for (int ii = 0; ii < 16; ++ii) {
            int l = ggml_nearest_int(x[16 * j + ii] / d);
            l = std::max(-32, std::min(31, l));
            L[16 * j + ii] = static_cast<int8_t>(l + 32);
        }
    }
    q6_k_pack(L, y);
}

}  // namespace

int ggml_nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    std::memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

bool has_ggml_rtn(const Encoding& e) {
    return e.scheme == QScheme::Int4Min || e.scheme == QScheme::Q4K || e.scheme == QScheme::Q6K;
}

void ggml_rtn_blocks(const Encoding& e, const float* x, int64_t len, int64_t nblocks,
                     uint8_t* out) {
    const size_t bb = block_bytes(e);
    std::vector<float> padded;
    for (int64_t b = 0; b < nblocks; ++b) {
        const int64_t n = std::min<int64_t>(e.group, len - b * e.group);
        const float* group = x + b * e.group;
        if (n < e.group) {
            padded.assign(static_cast<size_t>(e.group), 0.0f);
            std::copy(group, group + n, padded.begin());
            group = padded.data();
        }
        uint8_t* y = out + static_cast<size_t>(b) * bb;
        switch (e.scheme) {
            case QScheme::Int4Min:
                q4_1_block(e, group, y);
                break;
            case QScheme::Q4K:
                q4_k_block(group, y);
                break;
            case QScheme::Q6K:
                q6_k_block(group, y);
                break;
            default:
                throw InternalError("ggml_rtn_blocks: not a ggml scheme");
        }
    }
}

QParams kquant_params(const Encoding& e, const uint8_t* block, int64_t sub) {
    QParams p;
    if (e.scheme == QScheme::Q4K) {
        uint8_t sc, m;
        get_scale_min_k4(static_cast<int>(sub), block + 4, &sc, &m);
        p.scale = get_f16(block) * static_cast<float>(sc);
        p.min = get_f16(block + 2) * static_cast<float>(m);
        return p;
    }
    const auto sc = static_cast<int8_t>(block[192 + sub]);
    p.scale = get_f16(block + 208) * static_cast<float>(sc);
    return p;
}

int kquant_code(const Encoding& e, const uint8_t* block, int64_t i) {
    if (e.scheme == QScheme::Q4K) {
        const int64_t s = i / 32, k = i % 32;
        return (block[16 + 32 * (s / 2) + k] >> (4 * (s % 2))) & 0x0F;
    }
    const int64_t c = i / 128, r = i % 128;
    const int lo = (block[64 * c + r % 64] >> (4 * (r / 64))) & 0x0F;
    const int hi = (block[128 + 32 * c + r % 32] >> (2 * (r / 32))) & 0x03;
    return (lo | (hi << 4)) - 32;
}

void kquant_set_codes(const Encoding& e, const int* codes, uint8_t* block) {
    if (e.scheme == QScheme::Q4K) {
        uint8_t* q = block + 16;
        for (int j = 0; j < kQK_K; j += 64) {
            for (int l = 0; l < 32; ++l)
                q[l] =
                    static_cast<uint8_t>((codes[j + l] & 0xF) | ((codes[j + l + 32] & 0xF) << 4));
            q += 32;
        }
        return;
    }
    int8_t L[kQK_K];
    for (int i = 0; i < kQK_K; ++i) L[i] = static_cast<int8_t>(std::clamp(codes[i], -32, 31) + 32);
    q6_k_pack(L, block);
}

}  // namespace ep::detail
