#include "runtime-check/kernels/conv2d.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "runtime-check/kernels/gemm.h"
#include "runtime-check/kernels/simd.h"

namespace ep::rt {
namespace {

int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

// Scratch up to this many floats per thread is kept between calls.
constexpr int64_t kKeptScratchFloats = int64_t{1} << 20;  // 4 MiB

// `floats` floats of scratch, 64-byte aligned, for the calling thread: a buffer kept
// between calls when small (a pool thread's malloc arena would otherwise hand a freed block
// back to the OS and fault it in again on every run), else `big`, freed by the caller.
// Each Slot is its own buffer.
template <int Slot = 0>
float* scratch(int64_t floats, std::unique_ptr<float[]>& big) {
    thread_local std::vector<float> kept;
    const auto want = static_cast<size_t>(floats + 16);
    float* p = nullptr;
    if (floats + 16 <= kKeptScratchFloats) {
        if (kept.size() < want) kept.resize(want);
        p = kept.data();
    } else {
        big.reset(new float[want]);
        p = big.get();
    }
    return p + (64 - reinterpret_cast<uintptr_t>(p) % 64) % 64 / sizeof(float);
}

// Portable depthwise plane (same contract as SimdKernels::depthwise_plane): row-wise
// updates the compiler vectorizes, each element summed in tap order.
void depthwise_plane_portable(const DepthwisePlane& p) {
    for (int64_t y = 0; y < p.oh; ++y) {
        float* out = p.out + y * p.ow;
        std::fill(out, out + p.ow, p.bias);
        const float* origin = p.in + y * p.row_step;
        for (int64_t t = 0; t < p.ntaps; ++t) {
            const float w = p.w[t];
            const float* src = origin + p.taps[t];
            for (int64_t x = 0; x < p.ow; ++x) out[x] += w * src[x];
        }
    }
}

// Layout of the zero-padded copy of an input plane that the depthwise kernel reads with
// unit stride: the padded columns are split into sw phase planes (phase q holds padded
// columns q, q + sw, q + 2 sw, ...), so output column x of tap kx reads phase
// (kx dw) % sw at index x + (kx dw) / sw.
struct PhasePlanes {
    int64_t rows, cols, phases, stride, plane;  // stride: floats per row; plane: per phase

    explicit PhasePlanes(const Window2D& g)
        : rows(std::max(g.ih + g.ph, (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1)),
          cols(std::max(g.iw + g.pw, (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1)),
          phases(g.sw),
          // Rows readable 8 floats past the last index any output uses.
          stride(ceil_div(cols, g.sw) + 8),
          plane(rows * stride) {}

    [[nodiscard]] int64_t floats() const { return phases * plane; }

    // Fills every float of dst (slack included) from one input plane.
    void fill(const float* src, const Window2D& g, float* dst) const {
        std::fill(dst, dst + floats(), 0.0f);
        for (int64_t iy = 0; iy < g.ih; ++iy) {
            const float* s = src + iy * g.iw;
            const int64_t r = iy + g.ph;
            if (phases == 1) {
                std::memcpy(dst + r * stride + g.pw, s, static_cast<size_t>(g.iw) * sizeof(float));
                continue;
            }
            for (int64_t ix = 0; ix < g.iw; ++ix) {
                const int64_t c = ix + g.pw;
                dst[(c % phases) * plane + r * stride + c / phases] = s[ix];
            }
        }
    }
};

void depthwise(const ExecOptions& options, const Conv2DShape& s, const float* x, const float* w,
               const float* bias, float* y, std::span<const ChainStep> epilogue) {
    ExecOptions one = options;
    one.threads = 1;
    const Window2D& g = s.win;
    const int64_t mult = s.c_out / s.group;  // output channels per input channel
    const int64_t in_plane = g.ih * g.iw, out_plane = g.oh * g.ow, ntaps = g.kh * g.kw;
    const PhasePlanes layout(g);
    std::vector<int64_t> taps(static_cast<size_t>(ntaps));
    for (int64_t ky = 0; ky < g.kh; ++ky)
        for (int64_t kx = 0; kx < g.kw; ++kx) {
            const int64_t c = kx * g.dw;
            taps[static_cast<size_t>(ky * g.kw + kx)] =
                (c % g.sw) * layout.plane + ky * g.dh * layout.stride + c / g.sw;
        }
    const auto plane_fn =
        simd_kernels().depthwise_plane ? simd_kernels().depthwise_plane : depthwise_plane_portable;
    const int64_t work = std::max<int64_t>(1, out_plane * ntaps);
    parallel_for(options, s.n * s.group, std::max<int64_t>(1, kGemmParallelWork / work),
                 [&](int64_t p0, int64_t p1) {
                     // Fully written by fill() before use: no need to zero it here.
                     std::unique_ptr<float[]> big;
                     float* padded = scratch(layout.floats(), big);
                     for (int64_t p = p0; p < p1; ++p) {
                         const int64_t b = p / s.group, ci = p % s.group;
                         layout.fill(x + (b * s.c_in + ci) * in_plane, g, padded);
                         for (int64_t mi = 0; mi < mult; ++mi) {
                             const int64_t co = ci * mult + mi;
                             float* out = y + (b * s.c_out + co) * out_plane;
                             plane_fn({padded, g.sh * layout.stride, taps.data(), ntaps,
                                       w + co * ntaps, bias ? bias[co] : 0.0f, out, g.oh, g.ow});
                             if (!epilogue.empty())
                                 run_elementwise_chain(one, epilogue, out, out, out_plane);
                         }
                     }
                 });
}

// col[(c * kh + ky) * kw + kx][oy * ow + ox] = X[c, oy*sh - ph + ky*dh, ox*sw - pw + kx*dw].
void im2col(const ExecOptions& options, const Window2D& g, int64_t channels, const float* x,
            float* col, int64_t ld) {
    const int64_t taps = g.kh * g.kw, out_plane = g.oh * g.ow;
    parallel_for(
        options, channels * taps,
        std::max<int64_t>(1, kGemmParallelWork / 8 / std::max<int64_t>(out_plane, 1)),
        [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
                const int64_t c = r / taps, ky = (r % taps) / g.kw, kx = r % g.kw;
                const float* src = x + c * g.ih * g.iw;
                float* dst = col + r * ld;
                const int64_t x0 = kx * g.dw - g.pw;
                // Columns ox with 0 <= ox*sw + x0 < iw.
                const int64_t lo = std::min(g.ow, x0 >= 0 ? 0 : ceil_div(-x0, g.sw));
                const int64_t hi =
                    std::max(lo, std::min(g.ow, g.iw - x0 <= 0 ? 0 : ceil_div(g.iw - x0, g.sw)));
                if (g.sh == 1 && g.sw == 1 && g.ow == g.iw) {
                    // Unit strides and rows as wide as the input: the valid rows are one shifted
                    // contiguous copy of the plane; then the out-of-range columns are zeroed.
                    const int64_t oy_lo = std::clamp<int64_t>(g.ph - ky * g.dh, 0, g.oh);
                    const int64_t oy_hi = std::clamp<int64_t>(g.ih + g.ph - ky * g.dh, oy_lo, g.oh);
                    std::fill(dst, dst + oy_lo * g.ow, 0.0f);
                    std::fill(dst + oy_hi * g.ow, dst + out_plane, 0.0f);
                    if (oy_lo < oy_hi && lo < hi) {
                        const float* s = src + (oy_lo - g.ph + ky * g.dh) * g.iw + x0;
                        const int64_t first = oy_lo * g.ow + lo, last = (oy_hi - 1) * g.ow + hi;
                        std::memcpy(dst + first, s + lo,
                                    static_cast<size_t>(last - first) * sizeof(float));
                    }
                    // Column by column: a store per row, not a (memset) call per row.
                    auto zero_column = [&](int64_t ox) {
                        for (int64_t oy = oy_lo; oy < oy_hi; ++oy) dst[oy * g.ow + ox] = 0.0f;
                    };
                    for (int64_t ox = 0; ox < lo; ++ox) zero_column(ox);
                    for (int64_t ox = hi; ox < g.ow; ++ox) zero_column(ox);
                    continue;
                }
                for (int64_t oy = 0; oy < g.oh; ++oy) {
                    float* d = dst + oy * g.ow;
                    const int64_t iy = oy * g.sh - g.ph + ky * g.dh;
                    if (iy < 0 || iy >= g.ih) {
                        std::fill(d, d + g.ow, 0.0f);
                        continue;
                    }
                    const float* s = src + iy * g.iw + x0;
                    std::fill(d, d + lo, 0.0f);
                    if (g.sw == 1) {
                        for (int64_t ox = lo; ox < hi; ++ox)
                            d[ox] = s[ox];  // short rows: no memcpy call
                    } else {
                        for (int64_t ox = lo; ox < hi; ++ox) d[ox] = s[ox * g.sw];
                    }
                    std::fill(d + hi, d + g.ow, 0.0f);
                }
            }
        });
}

}  // namespace

namespace {

// Cost of a GEMM of M rows by N columns per k, in FMA instructions of the AVX-512 kernels'
// register tiles (simd_avx2.cpp), in units of 6: rows in tiles of 6; columns in pairs of
// 16-float panels (6 x 32, 12 zmm FMAs: 2 units), then a last panel of 16 or of 9..15
// columns (6 x 16 in ymm: 12 FMAs, 2 units) and one of at most 8 (6 x 8: 1 unit).
int64_t tile_cost(int64_t m, int64_t n) {
    const int64_t r = n % 32;
    const int64_t units = 2 * (n / 32) + (r == 0 ? 0 : r <= 8 ? 1 : r <= 16 ? 2 : r <= 24 ? 3 : 4);
    return ceil_div(m, 6) * units;
}

}  // namespace

bool conv2d_prefers_transposed(const Conv2DShape& s) {
    const Window2D& g = s.win;
    const int64_t cin_g = s.c_in / s.group, cout_g = s.c_out / s.group;
    const int64_t out_plane = g.oh * g.ow;
    if (!simd_kernels().gemm_tile || (cin_g == 1 && cout_g == 1 && g.kh * g.kw > 1)) return false;
    // At most 4 MiB of transposed output per product; at least a fifth cheaper.
    return out_plane * cout_g <= (int64_t{1} << 20) &&
           5 * tile_cost(out_plane, cout_g) < 4 * tile_cost(cout_g, out_plane);
}

void conv2d_f32(const ExecOptions& options, const Conv2DShape& s, const float* x, const float* w,
                const float* bias, float* y, std::span<const ChainStep> epilogue,
                const float* w_t) {
    const Window2D& g = s.win;
    const int64_t cin_g = s.c_in / s.group, cout_g = s.c_out / s.group;
    const int64_t in_plane = g.ih * g.iw, out_plane = g.oh * g.ow, taps = g.kh * g.kw;
    if (cin_g == 1 && cout_g == 1 && taps > 1)
        return depthwise(options, s, x, w, bias, y, epilogue);
    const bool pointwise = taps == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 &&
                           g.oh == g.ih && g.ow == g.iw;
    const int64_t k = cin_g * taps;
    // The patch matrix: rows of `ld` floats (a multiple of 16, 64-byte aligned, so that
    // the GEMM's 16-float B loads never straddle cache lines); im2col writes every
    // element the GEMM reads, so no zeroing.
    const int64_t ld = pointwise ? out_plane : ceil_div(out_plane, 16) * 16;
    auto patch_buffer = [&](std::unique_ptr<float[]>& big) -> float* {
        return pointwise ? nullptr : scratch(k * ld, big);
    };
    const bool transposed = w_t && conv2d_prefers_transposed(s);
    // One product: image b, group gi (bias, im2col, GEMM), with `opt`'s threads.
    auto product = [&](const ExecOptions& opt, int64_t b, int64_t gi, float* col) {
        const float* xin = x + (b * s.c_in + gi * cin_g) * in_plane;
        float* out = y + (b * s.c_out + gi * cout_g) * out_plane;
        const float* cols = xin;
        if (!pointwise) {
            im2col(opt, g, cin_g, xin, col, ld);
            cols = col;
        }
        if (transposed) {
            // Y^T [out_plane, cout_g] = patches^T * W^T, from the bias, then transposed.
            std::unique_ptr<float[]> big;
            float* yt = scratch<1>(out_plane * cout_g, big);
            if (bias)
                for (int64_t j = 0; j < out_plane; ++j)
                    std::copy(bias + gi * cout_g, bias + (gi + 1) * cout_g, yt + j * cout_g);
            MatrixView pv{cols, out_plane, k, ld, true};
            MatrixView wv{w_t + gi * k * cout_g, k, cout_g, cout_g, false};
            gemm_f32(opt, pv, wv, yt, cout_g, bias != nullptr);
            for (int64_t o = 0; o < cout_g; ++o)
                for (int64_t j = 0; j < out_plane; ++j) out[o * out_plane + j] = yt[j * cout_g + o];
        } else {
            if (bias)
                for (int64_t o = 0; o < cout_g; ++o)
                    std::fill(out + o * out_plane, out + (o + 1) * out_plane,
                              bias[gi * cout_g + o]);
            MatrixView wv{w + gi * cout_g * k, cout_g, k, k, false};
            MatrixView cv{cols, k, out_plane, ld, false};
            gemm_f32(opt, wv, cv, out, out_plane, bias != nullptr);
        }
        if (!epilogue.empty()) run_elementwise_chain(opt, epilogue, out, out, cout_g * out_plane);
    };
    const int64_t products = s.n * s.group;
    const int64_t threads = std::max(1, options.threads);
    if (threads > 1 && products >= threads) {
        // Whole products per thread (a batch, or groups): one fork and join for the op
        // instead of two per product, and each product computed as on one thread (the
        // GEMM gives the same bits however it is cut).
        ExecOptions one = options;
        one.threads = 1;
        parallel_for(
            options, products,
            std::max<int64_t>(1, kGemmParallelWork / std::max<int64_t>(1, cout_g * k * out_plane)),
            [&](int64_t p0, int64_t p1) {
                std::unique_ptr<float[]> block;
                float* col = patch_buffer(block);
                for (int64_t p = p0; p < p1; ++p) product(one, p / s.group, p % s.group, col);
            });
        return;
    }
    std::unique_ptr<float[]> block;
    float* col = patch_buffer(block);
    for (int64_t b = 0; b < s.n; ++b)
        for (int64_t gi = 0; gi < s.group; ++gi) product(options, b, gi, col);
}

void pool2d_f32(const ExecOptions& options, int64_t planes, const Window2D& g, bool is_max,
                bool count_include_pad, const float* x, float* y) {
    const int64_t in_plane = g.ih * g.iw, out_plane = g.oh * g.ow;
    // Kernel offsets [lo, hi) that land inside the input for an output position, and the
    // count of offsets inside the padded input (for count_include_pad).
    struct Range {
        int64_t lo, hi, padded;
    };
    auto ranges = [](int64_t out, int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb,
                     int64_t pe) {
        std::vector<Range> r(static_cast<size_t>(out));
        for (int64_t o = 0; o < out; ++o) {
            const int64_t start = o * s - pb;
            Range& q = r[static_cast<size_t>(o)];
            q.lo = std::min(k, start >= 0 ? 0 : ceil_div(-start, d));
            q.hi = std::max(q.lo, std::min(k, in - start <= 0 ? 0 : ceil_div(in - start, d)));
            q.padded = std::min(k, in + pe - start <= 0 ? 0 : ceil_div(in + pe - start, d));
        }
        return r;
    };
    const std::vector<Range> rows = ranges(g.oh, g.ih, g.kh, g.sh, g.dh, g.ph, g.ph_end);
    const std::vector<Range> cols = ranges(g.ow, g.iw, g.kw, g.sw, g.dw, g.pw, g.pw_end);
    const int64_t work = std::max<int64_t>(1, out_plane * g.kh * g.kw);
    auto full = [](const std::vector<Range>& r, int64_t k) {
        return std::all_of(r.begin(), r.end(),
                           [k](const Range& q) { return q.lo == 0 && q.hi == k; });
    };
    if (is_max && g.kh == 2 && g.kw == 2 && full(rows, 2) && full(cols, 2)) {
        // Common 2x2 max pool with every window inside: same comparisons, no bounds.
        const auto row_s2 = g.sw == 2 && g.dw == 1 ? simd_kernels().max_pool_2x2_s2 : nullptr;
        parallel_for(options, planes, std::max<int64_t>(1, kGemmParallelWork / work),
                     [&](int64_t p0, int64_t p1) {
                         for (int64_t p = p0; p < p1; ++p) {
                             if (row_s2) {
                                 row_s2(x + p * in_plane - g.ph * g.iw - g.pw, g.sh * g.iw,
                                        g.dh * g.iw, y + p * out_plane, g.oh, g.ow);
                                 continue;
                             }
                             for (int64_t oy = 0; oy < g.oh; ++oy) {
                                 const float* r0 =
                                     x + p * in_plane + (oy * g.sh - g.ph) * g.iw - g.pw;
                                 const float* r1 = r0 + g.dh * g.iw;
                                 float* dst = y + p * out_plane + oy * g.ow;
                                 for (int64_t ox = 0; ox < g.ow; ++ox) {
                                     const int64_t x0 = ox * g.sw, x1 = x0 + g.dw;
                                     float acc = r0[x0];
                                     acc = r0[x1] > acc ? r0[x1] : acc;
                                     acc = r1[x0] > acc ? r1[x0] : acc;
                                     acc = r1[x1] > acc ? r1[x1] : acc;
                                     dst[ox] = acc;
                                 }
                             }
                         }
                     });
        return;
    }
    parallel_for(options, planes, std::max<int64_t>(1, kGemmParallelWork / work),
                 [&](int64_t p0, int64_t p1) {
                     for (int64_t p = p0; p < p1; ++p) {
                         const float* src = x + p * in_plane;
                         float* dst = y + p * out_plane;
                         for (int64_t oy = 0; oy < g.oh; ++oy) {
                             const Range& ry = rows[static_cast<size_t>(oy)];
                             const int64_t y0 = oy * g.sh - g.ph;
                             for (int64_t ox = 0; ox < g.ow; ++ox) {
                                 const Range& rx = cols[static_cast<size_t>(ox)];
                                 const int64_t x0 = ox * g.sw - g.pw;
                                 float acc =
                                     is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
                                 if (is_max && ry.lo < ry.hi && rx.lo < rx.hi) {
                                     // Start from the first element, then a branch-free max that
                                     // keeps the running value when either side is NaN (a NaN first
                                     // wins).
                                     acc = src[(y0 + ry.lo * g.dh) * g.iw + x0 + rx.lo * g.dw];
                                     for (int64_t ky = ry.lo; ky < ry.hi; ++ky) {
                                         const float* row = src + (y0 + ky * g.dh) * g.iw + x0;
                                         for (int64_t kx = rx.lo; kx < rx.hi; ++kx) {
                                             const float v = row[kx * g.dw];
                                             acc = v > acc ? v : acc;
                                         }
                                     }
                                 } else if (!is_max) {
                                     for (int64_t ky = ry.lo; ky < ry.hi; ++ky) {
                                         const float* row = src + (y0 + ky * g.dh) * g.iw + x0;
                                         for (int64_t kx = rx.lo; kx < rx.hi; ++kx)
                                             acc += row[kx * g.dw];
                                     }
                                     const int64_t count = count_include_pad
                                                               ? ry.padded * rx.padded
                                                               : (ry.hi - ry.lo) * (rx.hi - rx.lo);
                                     acc = count ? acc / static_cast<float>(count) : 0.0f;
                                 }
                                 dst[oy * g.ow + ox] = acc;
                             }
                         }
                     }
                 });
}

}  // namespace ep::rt
