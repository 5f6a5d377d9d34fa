// MatMulInteger, ConvInteger, QLinearMatMul and QLinearConv: one file, because the
// QLinear ops are the *Integer products (int_matmul, int_conv) followed by a requantize.
//
//   *Integer          y[i, j] = sum_k (a[i, k] - a_zp[i]) * (b[k, j] - b_zp[j])   in int32
//                     (wrap-around: the ONNX contract lets only the 32-bit accumulation overflow)
//   QLinear*          y = saturate(round_half_even(acc * (a_scale * b_scale / y_scale)) + y_zp),
//                     with the multiplier and product in f32 as ONNX Runtime computes them
//
// The integer products run as exact int16 dot products (8-bit values minus their zero
// points fit int16; no partial sum can overflow before it is widened), so they do not
// depend on summation order. Convolution geometry: conv_shape.h.
//
// Threads split work so that each output element is computed by one thread, in a fixed
// order: results are bit-identical for any thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <tuple>
#include <utility>

#include "ir/checked.h"
#include "runtime-check/kernels/igemm.h"
#include "runtime-check/ops/conv_shape.h"
#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"
#include "runtime-check/ops/quant_common.h"

namespace ep::rt {
namespace {

// ---- integer GEMM ---------------------------------------------------------------

// sum_k a[k] * b[k] of zero-point-adjusted 8-bit values (|value| <= 255) held in int16:
// exact. A chunk of at most 32768 products (each |p| <= 65025) cannot overflow int32;
// chunks add up in int64. Integer addition is associative, so the vectorized reduction
// gives the same bits as the plain loop.
inline int64_t dot_i16(const int16_t* a, const int16_t* b, int64_t k) {
    int64_t total = 0;
    for (int64_t k0 = 0; k0 < k; k0 += 32768) {
        const int64_t len = std::min<int64_t>(32768, k - k0);
        const int16_t* pa = a + k0;
        const int16_t* pb = b + k0;
        int32_t lanes[16] = {};
        int64_t t = 0;
        for (; t + 16 <= len; t += 16)
#pragma omp simd
            for (int l = 0; l < 16; ++l)
                lanes[l] += static_cast<int32_t>(pa[t + l]) * static_cast<int32_t>(pb[t + l]);
        int32_t sum = 0;
        for (int l = 0; l < 16; ++l) sum += lanes[l];
        for (; t < len; ++t) sum += static_cast<int32_t>(pa[t]) * static_cast<int32_t>(pb[t]);
        total += sum;
    }
    return total;
}

// C[i, j] (row stride ldc) = sum_k A[i, k] * B[k, j] as int32, wrapped as the ONNX
// contract allows (only the 32-bit accumulation may overflow). A is m x k row-major;
// B is given transposed a column tile at a time: panel(j0, width, buf) returns
// B^T[j0, 0] and its row stride (a view of a prepared matrix, or rows filled into buf).
// Work goes in fixed (row block, column tile) tasks; each element is one exact dot.
template <typename Panel>
void qgemm(const ExecOptions& options, int64_t m, int64_t n, int64_t k, const int16_t* a,
           Panel&& panel, int32_t* c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    constexpr int64_t kRows = 32, kCols = 64;
    const int64_t mt = (m + kRows - 1) / kRows, nt = (n + kCols - 1) / kCols;
    parallel_for(options, mt * nt, 1, [&](int64_t t0, int64_t t1) {
        std::vector<int16_t> buf;
        int64_t built = -1;
        const int16_t* p = nullptr;
        int64_t ldp = 0;
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t jt = t / mt, it = t % mt;
            const int64_t j0 = jt * kCols, width = std::min(kCols, n - j0);
            if (built != jt) {
                std::tie(p, ldp) = panel(j0, width, buf);
                built = jt;
            }
            const int64_t i1 = std::min(m, (it + 1) * kRows);
            for (int64_t i = it * kRows; i < i1; ++i) {
                int32_t* crow = c + i * ldc + j0;
                for (int64_t j = 0; j < width; ++j)
                    crow[j] = static_cast<int32_t>(
                        static_cast<uint32_t>(dot_i16(a + i * k, p + j * ldp, k)));
            }
        }
    });
}

void check_8bit(const OpContext& c, const Tensor& t, const char* what) {
    if (t.dtype != DType::U8 && t.dtype != DType::I8)
        c.fail(cat(what, " must be uint8 or int8, found ", dtype_name(t.dtype)));
    check_bytes(c, t, what);
}

// Element i of a uint8/int8 tensor.
inline int32_t load_8bit(const std::byte* p, bool is_signed, int64_t i) {
    return is_signed ? static_cast<int32_t>(static_cast<int8_t>(p[i]))
                     : static_cast<int32_t>(static_cast<uint8_t>(p[i]));
}

// A per-tensor, per-row or per-column parameter (zero point or scale) broadcast to
// `target` (A's shape with the last dim 1, or B's with the second-to-last 1) and
// flattened: one value per row of each A matrix / column of each B matrix.
template <typename T>
std::vector<T> expand_param(const OpContext& c, std::vector<T> values, std::vector<int64_t> shape,
                            const std::vector<int64_t>& target, const char* what) {
    int64_t want = 1;
    for (int64_t d : target) want *= d;
    if (values.size() == 1) return std::vector<T>(static_cast<size_t>(want), values[0]);
    // A 1-D per-row vector [M] means [M, 1].
    if (shape.size() == 1 && target.size() >= 2 && target.back() == 1 &&
        shape[0] == target[target.size() - 2])
        shape.push_back(1);
    if (shape.size() > target.size() || broadcast_shapes(c, shape, target) != target)
        c.fail(
            cat(what, " ", shape_string(shape), " does not broadcast to ", shape_string(target)));
    auto strides = broadcast_strides(shape, target);
    std::vector<T> out(static_cast<size_t>(want));
    for (int64_t i = 0; i < want; ++i) {
        int64_t rem = i, off = 0;
        for (size_t d = target.size(); d-- > 0;) {
            off += (rem % target[d]) * strides[d];
            rem /= target[d];
        }
        out[static_cast<size_t>(i)] = values[static_cast<size_t>(off)];
    }
    return out;
}

struct IntMatMul {
    Tensor y;                     // int32 [batch..., M, N]
    std::vector<int64_t> a_mats;  // A matrix index of each output batch
    std::vector<int64_t> b_mats;  // B matrix index of each output batch
    int64_t m = 0, n = 0, batches = 0;
};

// The shared core of MatMulInteger and QLinearMatMul (numpy matmul broadcasting).
IntMatMul int_matmul(const OpContext& c, const Tensor& a, const Tensor* a_zp, const Tensor& b,
                     const Tensor* b_zp) {
    check_8bit(c, a, "A");
    check_8bit(c, b, "B");
    std::vector<int64_t> as = a.shape, bs = b.shape;
    if (as.empty() || bs.empty()) c.fail("inputs must have rank >= 1");
    const bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
    if (a_vec) as.insert(as.begin(), 1);
    if (b_vec) bs.push_back(1);
    const int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
    if (bs[bs.size() - 2] != k)
        c.fail(cat("shapes ", shape_string(a.shape), " and ", shape_string(b.shape),
                   " cannot be multiplied"));
    std::vector<int64_t> a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
    std::vector<int64_t> batch = broadcast_shapes(c, a_batch, b_batch);
    auto a_str = broadcast_strides(a_batch, batch), b_str = broadcast_strides(b_batch, batch);
    std::vector<int64_t> a_target = as, b_target = bs;
    a_target.back() = 1;
    b_target[b_target.size() - 2] = 1;
    std::vector<int32_t> azp(static_cast<size_t>(a.element_count() / std::max<int64_t>(k, 1)), 0);
    std::vector<int32_t> bzp(static_cast<size_t>(b.element_count() / std::max<int64_t>(k, 1)), 0);
    if (a_zp) {
        if (a_zp->dtype != a.dtype) c.fail("a_zero_point must have A's type");
        azp = expand_param(c, read_q_values(c, *a_zp, "a_zero_point"), a_zp->shape, a_target,
                           "a_zero_point");
    }
    if (b_zp) {
        if (b_zp->dtype != b.dtype) c.fail("b_zero_point must have B's type");
        bzp = expand_param(c, read_q_values(c, *b_zp, "b_zero_point"), b_zp->shape, b_target,
                           "b_zero_point");
    }
    std::vector<int64_t> out_shape = batch;
    if (!a_vec) out_shape.push_back(m);
    if (!b_vec) out_shape.push_back(n);
    IntMatMul r;
    r.y = make_tensor(DType::I32, out_shape);
    r.m = m;
    r.n = n;
    r.batches = 1;
    for (int64_t d : batch) r.batches *= d;
    int32_t* py = r.y.mutable_values<int32_t>().data();
    const std::byte* pa = a.data.bytes().data();
    const std::byte* pb = b.data.bytes().data();
    const bool a_signed = a.dtype == DType::I8, b_signed = b.dtype == DType::I8;
    std::vector<int16_t> a_adj(static_cast<size_t>(m * k));
    for (int64_t bi = 0; bi < r.batches; ++bi) {
        int64_t am = 0, bm = 0, rem = bi;
        for (size_t d = batch.size(); d-- > 0;) {
            int64_t idx = rem % batch[d];
            rem /= batch[d];
            am += idx * a_str[d];
            bm += idx * b_str[d];
        }
        r.a_mats.push_back(am);
        r.b_mats.push_back(bm);
        for (int64_t i = 0; i < m; ++i) {
            const int32_t z = azp[static_cast<size_t>(am * m + i)];
            for (int64_t kk = 0; kk < k; ++kk)
                a_adj[static_cast<size_t>(i * k + kk)] =
                    static_cast<int16_t>(load_8bit(pa, a_signed, (am * m + i) * k + kk) - z);
        }
        const int64_t b0 = bm * k * n;
        const int32_t* bz = bzp.data() + bm * n;
        qgemm(
            c.options, m, n, k, a_adj.data(),
            [&](int64_t j0, int64_t width, std::vector<int16_t>& buf) {
                buf.resize(static_cast<size_t>(width * k));
                for (int64_t kk = 0; kk < k; ++kk)
                    for (int64_t j = 0; j < width; ++j)
                        buf[static_cast<size_t>(j * k + kk)] = static_cast<int16_t>(
                            load_8bit(pb, b_signed, b0 + kk * n + j0 + j) - bz[j0 + j]);
                return std::pair<const int16_t*, int64_t>(buf.data(), k);
            },
            py + bi * m * n, n);
    }
    return r;
}

// The shared core of ConvInteger and QLinearConv: int32 [N, M, out...] of
// sum (x - x_zp) * (w - w_zp[m]), where padding counts as x_zp (contributes 0). Per
// (image, group): im2row of (x - x_zp) (one row of C/group x kernel values per output
// pixel), then qgemm with W.
Tensor int_conv(const OpContext& c, const ConvShape& g, const Tensor& x, int32_t x_zp,
                const Tensor& w, const std::vector<int32_t>& w_zp) {
    check_8bit(c, x, "x");
    check_8bit(c, w, "w");
    const size_t s = g.spatial_rank();
    const int64_t in_pixels = g.in_pixels(), out_pixels = g.out_pixels(), ks = g.kernel_size();
    const int64_t cin_g = g.c_in / g.group, cout_g = g.c_out / g.group, rows = cin_g * ks;
    Tensor y = make_tensor(DType::I32, g.output_shape());
    int32_t* py = y.mutable_values<int32_t>().data();
    const std::byte* px = x.data.bytes().data();
    const std::byte* pw = w.data.bytes().data();
    const bool x_signed = x.dtype == DType::I8, w_signed = w.dtype == DType::I8;
    std::vector<int64_t> in_strides(s, 1);
    for (size_t d = s - 1; d > 0; --d) in_strides[d - 1] = in_strides[d] * g.in[d];
    // Dilated offset of every kernel position on every axis.
    std::vector<int64_t> koff(static_cast<size_t>(ks) * s);
    for (int64_t kr = 0; kr < ks; ++kr) {
        int64_t rem = kr;
        for (size_t d = s; d-- > 0;) {
            koff[static_cast<size_t>(kr) * s + d] = (rem % g.kernel[d]) * g.dilations[d];
            rem /= g.kernel[d];
        }
    }
    auto im2row_count = checked_mul(static_cast<uint64_t>(out_pixels), static_cast<uint64_t>(rows));
    if (!im2row_count || *im2row_count > (uint64_t{1} << 36))
        c.fail(cat("the patch matrix (", out_pixels, " output pixels x ", rows, ") is too large"));
    std::vector<int16_t> im2row(static_cast<size_t>(*im2row_count));
    std::vector<int16_t> w_adj(static_cast<size_t>(cout_g * rows));
    for (int64_t b = 0; b < g.n; ++b)
        for (int64_t gi = 0; gi < g.group; ++gi) {
            for (int64_t o = 0; o < cout_g; ++o) {
                const int64_t oc = gi * cout_g + o;
                for (int64_t r = 0; r < rows; ++r)
                    w_adj[static_cast<size_t>(o * rows + r)] = static_cast<int16_t>(
                        load_8bit(pw, w_signed, oc * rows + r) - w_zp[static_cast<size_t>(oc)]);
            }
            const int64_t x0 = (b * g.c_in + gi * cin_g) * in_pixels;
            parallel_for(c.options, out_pixels, 16, [&](int64_t p0, int64_t p1) {
                std::vector<int64_t> base(s);
                for (int64_t p = p0; p < p1; ++p) {
                    int64_t rem = p;
                    for (size_t d = s; d-- > 0;) {
                        base[d] = (rem % g.out[d]) * g.strides[d] - g.pads_begin[d];
                        rem /= g.out[d];
                    }
                    int16_t* dst = im2row.data() + p * rows;
                    for (int64_t kr = 0; kr < ks; ++kr) {
                        const int64_t* off = koff.data() + kr * static_cast<int64_t>(s);
                        int64_t at = 0;
                        bool inside = true;
                        for (size_t d = 0; d < s; ++d) {
                            const int64_t pos = base[d] + off[d];
                            if (pos < 0 || pos >= g.in[d]) {
                                inside = false;
                                break;
                            }
                            at += pos * in_strides[d];
                        }
                        for (int64_t ch = 0; ch < cin_g; ++ch)
                            dst[ch * ks + kr] =
                                inside
                                    ? static_cast<int16_t>(
                                          load_8bit(px, x_signed, x0 + ch * in_pixels + at) - x_zp)
                                    : 0;
                    }
                }
            });
            qgemm(
                c.options, cout_g, out_pixels, rows, w_adj.data(),
                [&](int64_t j0, int64_t, std::vector<int16_t>&) {
                    return std::pair<const int16_t*, int64_t>(im2row.data() + j0 * rows, rows);
                },
                py + (b * g.c_out + gi * cout_g) * out_pixels, out_pixels);
        }
    return y;
}

// One scalar zero point of a per-tensor input (0 when absent).
int32_t scalar_zp(const OpContext& c, size_t index, const char* what, DType expect) {
    if (!c.has_input(index)) return 0;
    const Tensor& t = *c.inputs[index];
    if (t.element_count() != 1)
        c.fail(cat(what, " must be a scalar, found ", shape_string(t.shape)));
    if (t.dtype != expect)
        c.fail(cat(what, " has type ", dtype_name(t.dtype), ", expected ", dtype_name(expect)));
    return read_q_values(c, t, what)[0];
}

float scalar_scale(const OpContext& c, size_t index, const char* what) {
    const Tensor& t = c.input(index);
    if (t.element_count() != 1)
        c.fail(cat(what, " must be a scalar, found ", shape_string(t.shape)));
    return read_float_values(c, t, what)[0];
}

// Zero points of W: one, or one per output channel.
std::vector<int32_t> per_channel_zp(const OpContext& c, size_t index, const Tensor& w, int64_t m) {
    if (!c.has_input(index)) return std::vector<int32_t>(static_cast<size_t>(m), 0);
    const Tensor& t = *c.inputs[index];
    if (t.dtype != w.dtype) c.fail("w_zero_point must have w's type");
    std::vector<int32_t> v = read_q_values(c, t, "w_zero_point");
    if (v.size() == 1) return std::vector<int32_t>(static_cast<size_t>(m), v[0]);
    if (t.shape.size() != 1 || static_cast<int64_t>(v.size()) != m)
        c.fail(cat("w_zero_point must be a scalar or have ", m, " elements, found ",
                   shape_string(t.shape)));
    return v;
}

// y[row, j] = saturate(round_half_even(float(acc[row, j]) * multiplier(row, j)) + zp) for
// rows of `len` elements, into a uint8/int8 tensor shaped like acc.
template <typename Multiplier>
Tensor requantize(const OpContext& c, const Tensor& acc, int64_t len, DType out_dt, int32_t zp,
                  Multiplier&& multiplier) {
    Tensor y = make_tensor(out_dt, acc.shape);
    const int32_t* in = acc.values<int32_t>().data();
    std::byte* out = y.data.mutable_bytes().data();
    const int64_t rows = len ? acc.element_count() / len : 0;
    dispatch_q(c, out_dt, false, "output", [&](auto q) {
        using QT = decltype(q);
        if constexpr (QT::bits != 8) {
            c.fail(cat("output must be uint8 or int8, found ", dtype_name(out_dt)));
        } else {
            parallel_for(
                c.options, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(len, 1)),
                [&](int64_t r0, int64_t r1) {
                    for (int64_t r = r0; r < r1; ++r)
                        for (int64_t j = 0; j < len; ++j) {
                            const int64_t i = r * len + j;
                            QT::store(out, i,
                                      saturate_round(static_cast<float>(in[i]) * multiplier(r, j),
                                                     zp, QT::lo, QT::hi));
                        }
                });
        }
    });
    return y;
}

// ---- the fast paths: kernels/igemm.h, same numbers as the reference code above -----------

const uint8_t* u8_data(const Tensor& t) {
    return reinterpret_cast<const uint8_t*>(t.data.bytes().data());
}

// `rows` row-major rows of `k` codes of `a`, starting `offset` codes in, as igemm's
// activation with zero point `zp`.
IgemmActivation row_major_activation(const Tensor& a, int64_t offset, int64_t rows, int64_t k,
                                     int32_t zp) {
    IgemmActivation x;
    x.src = u8_data(a) + offset;
    x.is_signed = a.dtype == DType::I8;
    x.cols = rows;
    x.k_stride = 1;
    x.c_stride = k;
    x.zp = zp;
    return x;
}

// A row-major [rows, n] 8-bit output of type `dt` at `dst`, zero point `zp`.
IgemmOutput row_major_output(uint8_t* dst, DType dt, int64_t n, int32_t zp) {
    IgemmOutput o;
    o.dst = dst;
    o.is_signed = dt == DType::I8;
    o.row_stride = 1;
    o.col_stride = n;
    o.zp = zp;
    return o;
}

// An int32 bias of `n` values (shape [n], [1, n] or a scalar broadcast), or empty when the
// input is absent; nullopt when it has another shape (the reference code handles it).
std::optional<std::vector<int32_t>> row_bias(const OpContext& c, size_t index, int64_t n,
                                             const char* what) {
    if (!c.has_input(index)) return std::vector<int32_t>{};
    const Tensor& bias = *c.inputs[index];
    if (bias.dtype != DType::I32) return std::nullopt;
    check_bytes(c, bias, what);
    auto v = bias.values<int32_t>();
    if (static_cast<int64_t>(v.size()) == n &&
        (bias.shape.size() == 1 || (bias.shape.size() == 2 && bias.shape[0] == 1)))
        return std::vector<int32_t>(v.begin(), v.end());
    if (v.size() == 1 && bias.shape.size() <= 1)
        return std::vector<int32_t>(static_cast<size_t>(n), v[0]);
    return std::nullopt;
}

// A 1x1 convolution with unit strides and no padding reads its input as the GEMM's
// activation directly; any other needs an im2col buffer.
bool is_pointwise(const ConvShape& g) {
    bool pointwise = g.kernel_size() == 1;
    for (size_t d = 0; d < g.spatial_rank(); ++d)
        pointwise = pointwise && g.strides[d] == 1 && g.pads_begin[d] == 0 && g.pads_end[d] == 0;
    return pointwise;
}

// Sizes the im2col buffer of `rows` x `out_pixels` bytes; false (the reference code runs)
// when that would overflow or exceed 16 GiB.
bool size_im2col(std::vector<uint8_t>& cols, int64_t out_pixels, int64_t rows) {
    auto count = checked_mul(static_cast<uint64_t>(out_pixels), static_cast<uint64_t>(rows));
    if (!count || *count > (uint64_t{1} << 34)) return false;
    cols.resize(static_cast<size_t>(*count));
    return true;
}

bool is_8bit(DType dt) {
    return dt == DType::U8 || dt == DType::I8;
}

// The weights of input `input` prepared for igemm: from the executor's cache when the input
// is an initializer, else made into `local`.
const IgemmWeights& weights_for(const OpContext& c, size_t input, IgemmWeights& local,
                                const uint8_t* src, bool is_signed, int64_t rows, int64_t k,
                                int64_t row_stride, int64_t k_stride,
                                const std::vector<int32_t>& zp) {
    if (c.igemm_cache && input < 64 && ((c.constant_inputs >> input) & 1))
        return c.igemm_cache->get(src, is_signed, rows, k, row_stride, k_stride, zp);
    local = igemm_prepare_weights(src, is_signed, rows, k, row_stride, k_stride, zp);
    return local;
}

// im2col of one image's group of channels for igemm: row (channel, kernel position), one
// column per output pixel; the padding holds the zero point `pad`, which contributes 0.
void im2col_u8(const ExecOptions& options, const ConvShape& g, const uint8_t* xg, uint8_t pad,
               uint8_t* cols) {
    const size_t s = g.spatial_rank();
    const int64_t in_pixels = g.in_pixels(), out_pixels = g.out_pixels(), ks = g.kernel_size();
    const int64_t rows = g.c_in / g.group * ks;
    std::vector<int64_t> in_strides(s, 1);
    for (size_t d = s - 1; d > 0; --d) in_strides[d - 1] = in_strides[d] * g.in[d];
    parallel_for(options, rows, 1, [&](int64_t r0, int64_t r1) {
        std::vector<int64_t> kpos(s);
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t ch = r / ks;
            int64_t rem = r % ks;
            for (size_t d = s; d-- > 0;) {
                kpos[d] = (rem % g.kernel[d]) * g.dilations[d] - g.pads_begin[d];
                rem /= g.kernel[d];
            }
            uint8_t* dst = cols + r * out_pixels;
            const uint8_t* src = xg + ch * in_pixels;
            if (s == 2) {
                for (int64_t oy = 0; oy < g.out[0]; ++oy) {
                    const int64_t iy = oy * g.strides[0] + kpos[0];
                    uint8_t* drow = dst + oy * g.out[1];
                    if (iy < 0 || iy >= g.in[0]) {
                        std::memset(drow, pad, static_cast<size_t>(g.out[1]));
                        continue;
                    }
                    const uint8_t* srow = src + iy * g.in[1];
                    if (g.strides[1] == 1) {
                        // ix = ox + kpos[1] is inside for ox in [lo, hi): one copy.
                        const int64_t lo = std::clamp<int64_t>(-kpos[1], 0, g.out[1]);
                        const int64_t hi = std::clamp<int64_t>(g.in[1] - kpos[1], lo, g.out[1]);
                        std::memset(drow, pad, static_cast<size_t>(lo));
                        std::memcpy(drow + lo, srow + lo + kpos[1], static_cast<size_t>(hi - lo));
                        std::memset(drow + hi, pad, static_cast<size_t>(g.out[1] - hi));
                        continue;
                    }
                    for (int64_t ox = 0; ox < g.out[1]; ++ox) {
                        const int64_t ix = ox * g.strides[1] + kpos[1];
                        drow[ox] = ix < 0 || ix >= g.in[1] ? pad : srow[ix];
                    }
                }
                continue;
            }
            for (int64_t p = 0; p < out_pixels; ++p) {
                int64_t prem = p, at = 0;
                bool inside = true;
                for (size_t d = s; d-- > 0;) {
                    const int64_t pos = (prem % g.out[d]) * g.strides[d] + kpos[d];
                    prem /= g.out[d];
                    inside = inside && pos >= 0 && pos < g.in[d];
                    at += pos * in_strides[d];
                }
                dst[p] = inside ? src[at] : pad;
            }
        }
    });
}

bool qlinear_conv_fast(OpContext& c, const ConvShape& g, const Tensor& x, float x_scale,
                       int32_t x_zp, const Tensor& w, const std::vector<float>& w_scale,
                       const std::vector<int32_t>& w_zp, float y_scale, DType out_dt,
                       int32_t y_zp) {
    if (!is_8bit(out_dt)) return false;
    check_8bit(c, x, "x");
    check_8bit(c, w, "w");
    auto bias = row_bias(c, 8, g.c_out, "B");
    if (!bias || (c.has_input(8) && c.inputs[8]->element_count() != g.c_out)) return false;
    if (!bias->empty() && c.inputs[8]->shape.size() != 1) return false;
    std::vector<float> mult(static_cast<size_t>(g.c_out));
    for (int64_t o = 0; o < g.c_out; ++o)
        mult[static_cast<size_t>(o)] =
            x_scale * w_scale[w_scale.size() == 1 ? 0 : static_cast<size_t>(o)] / y_scale;
    Tensor y = make_uninitialized_tensor(out_dt, g.output_shape());
    uint8_t* py = reinterpret_cast<uint8_t*>(y.data.mutable_bytes().data());
    const uint8_t* px = u8_data(x);
    const uint8_t* pw = u8_data(w);
    const bool x_signed = x.dtype == DType::I8, w_signed = w.dtype == DType::I8;
    const bool y_signed = out_dt == DType::I8;
    const size_t s = g.spatial_rank();
    const int64_t in_pixels = g.in_pixels(), out_pixels = g.out_pixels(), ks = g.kernel_size();
    const int64_t cin_g = g.c_in / g.group, cout_g = g.c_out / g.group, rows = cin_g * ks;
    const int32_t* bias_p = bias->empty() ? nullptr : bias->data();
    if (s == 2 && cin_g == 1 && cout_g == 1) {  // depthwise
        for (int64_t b = 0; b < g.n; ++b) {
            DepthwiseI8 p;
            p.x = px + b * g.c_in * in_pixels;
            p.x_signed = x_signed;
            p.x_zp = x_zp;
            p.w = pw;
            p.w_signed = w_signed;
            p.w_zp = w_zp.data();
            p.bias = bias_p;
            p.mult = mult.data();
            p.y = py + b * g.c_out * out_pixels;
            p.y_signed = y_signed;
            p.y_zp = y_zp;
            p.channels = g.c_out;
            p.ih = g.in[0];
            p.iw = g.in[1];
            p.oh = g.out[0];
            p.ow = g.out[1];
            p.kh = g.kernel[0];
            p.kw = g.kernel[1];
            p.sh = g.strides[0];
            p.sw = g.strides[1];
            p.dh = g.dilations[0];
            p.dw = g.dilations[1];
            p.pad_top = g.pads_begin[0];
            p.pad_left = g.pads_begin[1];
            depthwise_i8(c.options, p);
        }
        c.outputs.push_back(std::move(y));
        return true;
    }
    const bool pointwise = is_pointwise(g);
    std::vector<uint8_t> cols;
    if (!pointwise && !size_im2col(cols, out_pixels, rows)) return false;
    const auto pad = static_cast<uint8_t>(x_zp);
    for (int64_t b = 0; b < g.n; ++b)
        for (int64_t gi = 0; gi < g.group; ++gi) {
            std::vector<int32_t> zps(w_zp.begin() + gi * cout_g, w_zp.begin() + (gi + 1) * cout_g);
            IgemmWeights local;
            const IgemmWeights& wp = weights_for(c, 3, local, pw + gi * cout_g * rows, w_signed,
                                                 cout_g, rows, rows, 1, zps);
            const uint8_t* xg = px + (b * g.c_in + gi * cin_g) * in_pixels;
            IgemmActivation a;
            a.is_signed = x_signed;
            a.cols = out_pixels;
            a.zp = x_zp;
            a.c_stride = 1;
            if (pointwise) {
                a.src = xg;
                a.k_stride = in_pixels;
            } else {
                im2col_u8(c.options, g, xg, pad, cols.data());
                a.src = cols.data();
                a.k_stride = out_pixels;
            }
            IgemmOutput o;
            o.dst = py + (b * g.c_out + gi * cout_g) * out_pixels;
            o.is_signed = y_signed;
            o.row_stride = out_pixels;
            o.col_stride = 1;
            o.zp = y_zp;
            igemm_requantize(c.options, wp, a, bias_p ? bias_p + gi * cout_g : nullptr,
                             mult.data() + gi * cout_g, o);
        }
    c.outputs.push_back(std::move(y));
    return true;
}

// ConvInteger through igemm_int32: per (image, group), the group's output channels are the
// weight rows (prepared once when w is an initializer) and the activation is x itself for a
// pointwise convolution, else its im2col (padding = x_zp). Same sums as int_conv.
bool conv_integer_fast(OpContext& c, const ConvShape& g, const Tensor& x, int32_t x_zp,
                       const Tensor& w, const std::vector<int32_t>& w_zp) {
    check_8bit(c, x, "x");
    check_8bit(c, w, "w");
    const int64_t in_pixels = g.in_pixels(), out_pixels = g.out_pixels(), ks = g.kernel_size();
    const int64_t cin_g = g.c_in / g.group, cout_g = g.c_out / g.group, rows = cin_g * ks;
    const bool pointwise = is_pointwise(g);
    std::vector<uint8_t> cols;
    if (!pointwise && !size_im2col(cols, out_pixels, rows)) return false;
    Tensor y = make_uninitialized_tensor(DType::I32, g.output_shape());
    int32_t* py = y.mutable_values<int32_t>().data();
    const bool w_signed = w.dtype == DType::I8;
    for (int64_t b = 0; b < g.n; ++b)
        for (int64_t gi = 0; gi < g.group; ++gi) {
            std::vector<int32_t> zps(w_zp.begin() + gi * cout_g, w_zp.begin() + (gi + 1) * cout_g);
            IgemmWeights local;
            const IgemmWeights& wp = weights_for(c, 1, local, u8_data(w) + gi * cout_g * rows,
                                                 w_signed, cout_g, rows, rows, 1, zps);
            const uint8_t* xg = u8_data(x) + (b * g.c_in + gi * cin_g) * in_pixels;
            IgemmActivation a;
            a.is_signed = x.dtype == DType::I8;
            a.cols = out_pixels;
            a.zp = x_zp;
            a.c_stride = 1;
            a.src = xg;
            a.k_stride = in_pixels;
            if (!pointwise) {
                im2col_u8(c.options, g, xg, static_cast<uint8_t>(x_zp), cols.data());
                a.src = cols.data();
                a.k_stride = out_pixels;
            }
            igemm_int32(c.options, wp, a, nullptr, py + (b * g.c_out + gi * cout_g) * out_pixels,
                        out_pixels, 1);
        }
    c.outputs.push_back(std::move(y));
    return true;
}

// QLinearMatMul with per-tensor a and y, b per tensor or per column, and B either 2-D or
// with the same batch dimensions as A.
bool qlinear_matmul_fast(OpContext& c) {
    const Tensor& a = c.input(0);
    const Tensor& b = c.input(3);
    if (!c.has_input(2) || !c.has_input(5) || !c.has_input(7)) return false;
    if (!is_8bit(a.dtype) || !is_8bit(b.dtype) || a.shape.size() < 2 || b.shape.size() < 2)
        return false;
    check_8bit(c, a, "A");
    check_8bit(c, b, "B");
    const int64_t k = a.shape.back(), m = a.shape[a.shape.size() - 2], n = b.shape.back();
    if (b.shape[b.shape.size() - 2] != k) return false;
    const bool b_2d = b.shape.size() == 2;
    if (!b_2d && (b.shape.size() != a.shape.size() ||
                  !std::equal(a.shape.begin(), a.shape.end() - 2, b.shape.begin())))
        return false;
    const Tensor& a_scale = c.input(1);
    const Tensor& b_scale = c.input(4);
    const Tensor& y_zp_t = c.input(7);
    if (a_scale.element_count() != 1 || c.input(2).element_count() != 1 || !is_8bit(y_zp_t.dtype))
        return false;
    const int64_t nb = b_scale.element_count();
    if (nb != 1 && !(b_2d && nb == n && b_scale.shape.size() == 1)) return false;
    if (c.input(5).element_count() != nb || c.input(5).shape != b_scale.shape) return false;
    const float as = scalar_scale(c, 1, "a_scale");
    const int32_t azp = scalar_zp(c, 2, "a_zero_point", a.dtype);
    std::vector<float> bs = read_float_values(c, b_scale, "b_scale");
    if (c.input(5).dtype != b.dtype) c.fail("b_zero_point must have B's type");
    std::vector<int32_t> bzp = read_q_values(c, c.input(5), "b_zero_point");
    const float ys = scalar_scale(c, 6, "y_scale");
    const int32_t yzp = scalar_zp(c, 7, "y_zero_point", y_zp_t.dtype);
    std::vector<float> mult(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j)
        mult[static_cast<size_t>(j)] = as * bs[nb == 1 ? 0 : static_cast<size_t>(j)] / ys;
    std::vector<int64_t> out_shape = a.shape;
    out_shape.back() = n;
    Tensor y = make_uninitialized_tensor(y_zp_t.dtype, out_shape);
    uint8_t* py = reinterpret_cast<uint8_t*>(y.data.mutable_bytes().data());
    const int64_t batches = b_2d ? 1 : a.element_count() / std::max<int64_t>(m * k, 1);
    const int64_t rows_a = b_2d ? a.element_count() / std::max<int64_t>(k, 1) : m;
    for (int64_t bi = 0; bi < batches; ++bi) {
        IgemmWeights local;
        const IgemmWeights& wp = weights_for(c, 3, local, u8_data(b) + bi * k * n,
                                             b.dtype == DType::I8, n, k, 1, n, bzp);
        const IgemmActivation x = row_major_activation(a, bi * m * k, rows_a, k, azp);
        const IgemmOutput o = row_major_output(py + bi * m * n, y_zp_t.dtype, n, yzp);
        igemm_requantize(c.options, wp, x, nullptr, mult.data(), o);
    }
    c.outputs.push_back(std::move(y));
    return true;
}

bool qgemm_fast(OpContext& c, const Tensor& a, float a_scale, int32_t a_zp, const Tensor& b,
                bool tb, const std::vector<float>& b_scale, const std::vector<int32_t>& b_zp,
                float alpha, float y_scale, DType out_dt, int32_t y_zp) {
    if (!is_8bit(out_dt)) return false;
    const int64_t m = a.shape[0], k = a.shape[1], n = tb ? b.shape[0] : b.shape[1];
    auto bias = row_bias(c, 6, n, "C");
    if (!bias) return false;
    std::vector<float> mult(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j)
        mult[static_cast<size_t>(j)] =
            alpha * a_scale * b_scale[b_scale.size() == 1 ? 0 : static_cast<size_t>(j)] / y_scale;
    IgemmWeights local;
    const IgemmWeights& wp = weights_for(c, 3, local, u8_data(b), b.dtype == DType::I8, n, k,
                                         tb ? k : 1, tb ? 1 : n, b_zp);
    Tensor y = make_uninitialized_tensor(out_dt, {m, n});
    const IgemmActivation x = row_major_activation(a, 0, m, k, a_zp);
    const IgemmOutput o = row_major_output(
        reinterpret_cast<uint8_t*>(y.data.mutable_bytes().data()), out_dt, n, y_zp);
    igemm_requantize(c.options, wp, x, bias->empty() ? nullptr : bias->data(), mult.data(), o);
    c.outputs.push_back(std::move(y));
    return true;
}

// MatMulInteger with a per-tensor a_zero_point, b_zero_point per tensor or per column, and B
// either 2-D or with A's batch dimensions: the exact int32 sums of igemm_int32, B's columns
// being the weight rows (prepared once when B is an initializer). Other shapes: int_matmul.
bool matmul_integer_fast(OpContext& c) {
    const Tensor& a = c.input(0);
    const Tensor& b = c.input(1);
    if (!is_8bit(a.dtype) || !is_8bit(b.dtype) || a.shape.size() < 2 || b.shape.size() < 2)
        return false;
    check_8bit(c, a, "A");
    check_8bit(c, b, "B");
    const int64_t k = a.shape.back(), m = a.shape[a.shape.size() - 2], n = b.shape.back();
    if (k == 0 || b.shape[b.shape.size() - 2] != k) return false;
    const bool b_2d = b.shape.size() == 2;
    if (!b_2d && (b.shape.size() != a.shape.size() ||
                  !std::equal(a.shape.begin(), a.shape.end() - 2, b.shape.begin())))
        return false;
    int32_t azp = 0;
    if (c.has_input(2)) {
        if (c.input(2).element_count() != 1 || c.input(2).dtype != a.dtype) return false;
        azp = read_q_values(c, c.input(2), "a_zero_point")[0];
    }
    std::vector<int32_t> bzp{0};
    if (c.has_input(3)) {
        const Tensor& t = c.input(3);
        if (t.dtype != b.dtype) return false;
        if (t.element_count() != 1 && !(t.shape.size() == 1 && t.shape[0] == n)) return false;
        bzp = read_q_values(c, t, "b_zero_point");
    }
    std::vector<int64_t> out_shape = a.shape;
    out_shape.back() = n;
    Tensor y = make_uninitialized_tensor(DType::I32, out_shape);
    int32_t* py = y.mutable_values<int32_t>().data();
    const int64_t batches = b_2d || m == 0 ? 1 : a.element_count() / (m * k);
    const int64_t rows_a = b_2d ? a.element_count() / k : m;
    for (int64_t bi = 0; bi < batches && rows_a > 0; ++bi) {
        IgemmWeights local;
        const IgemmWeights& wp = weights_for(c, 1, local, u8_data(b) + bi * k * n,
                                             b.dtype == DType::I8, n, k, 1, n, bzp);
        const IgemmActivation x = row_major_activation(a, bi * m * k, rows_a, k, azp);
        igemm_int32(c.options, wp, x, nullptr, py + bi * m * n, 1, n);
    }
    c.outputs.push_back(std::move(y));
    return true;
}

}  // namespace

void op_matmul_integer(OpContext& c) {
    if (matmul_integer_fast(c)) return;
    const Tensor* a_zp = c.has_input(2) ? c.inputs[2] : nullptr;
    const Tensor* b_zp = c.has_input(3) ? c.inputs[3] : nullptr;
    IntMatMul r = int_matmul(c, c.input(0), a_zp, c.input(1), b_zp);
    c.outputs.push_back(std::move(r.y));
}

void op_conv_integer(OpContext& c) {
    const Tensor& x = c.input(0);
    const Tensor& w = c.input(1);
    ConvShape g = conv_shape(c, x.shape, w.shape);
    int32_t x_zp = scalar_zp(c, 2, "x_zero_point", x.dtype);
    std::vector<int32_t> w_zp = per_channel_zp(c, 3, w, g.c_out);
    if (conv_integer_fast(c, g, x, x_zp, w, w_zp)) return;
    c.outputs.push_back(int_conv(c, g, x, x_zp, w, w_zp));
}

void op_qlinear_matmul(OpContext& c) {
    const Tensor& a = c.input(0);
    const Tensor& b = c.input(3);
    const Tensor* a_zp = c.has_input(2) ? c.inputs[2] : nullptr;
    const Tensor* b_zp = c.has_input(5) ? c.inputs[5] : nullptr;
    if (qlinear_matmul_fast(c)) return;
    IntMatMul r = int_matmul(c, a, a_zp, b, b_zp);
    const Tensor& a_scale = c.input(1);
    const Tensor& b_scale = c.input(4);
    std::vector<int64_t> as = a.shape, bs = b.shape;
    if (as.size() == 1) as.insert(as.begin(), 1);
    if (bs.size() == 1) bs.push_back(1);
    std::vector<int64_t> a_target = as, b_target = bs;
    a_target.back() = 1;
    b_target[b_target.size() - 2] = 1;
    std::vector<float> a_s = expand_param(c, read_float_values(c, a_scale, "a_scale"),
                                          a_scale.shape, a_target, "a_scale");
    std::vector<float> b_s = expand_param(c, read_float_values(c, b_scale, "b_scale"),
                                          b_scale.shape, b_target, "b_scale");
    float y_scale = scalar_scale(c, 6, "y_scale");
    DType out_dt = c.has_input(7) ? c.inputs[7]->dtype : a.dtype;
    int32_t y_zp = scalar_zp(c, 7, "y_zero_point", out_dt);
    const int64_t m = std::max<int64_t>(r.m, 1), n = r.n;
    // Rows of the output are (batch, i); the multiplier a_scale * b_scale / y_scale in f32.
    Tensor y = requantize(c, r.y, n, out_dt, y_zp, [&](int64_t row, int64_t j) {
        const int64_t bi = row / m, i = row % m;
        const float as_v = a_s[static_cast<size_t>(r.a_mats[static_cast<size_t>(bi)] * m + i)];
        const float bs_v = b_s[static_cast<size_t>(r.b_mats[static_cast<size_t>(bi)] * n + j)];
        return as_v * bs_v / y_scale;
    });
    c.outputs.push_back(std::move(y));
}

void op_qlinear_conv(OpContext& c) {
    const Tensor& x = c.input(0);
    const Tensor& w = c.input(3);
    ConvShape g = conv_shape(c, x.shape, w.shape);
    float x_scale = scalar_scale(c, 1, "x_scale");
    int32_t x_zp = scalar_zp(c, 2, "x_zero_point", x.dtype);
    std::vector<float> w_scale = read_float_values(c, c.input(4), "w_scale");
    if (w_scale.size() != 1 && static_cast<int64_t>(w_scale.size()) != g.c_out)
        c.fail(cat("w_scale must be a scalar or have ", g.c_out, " elements, found ",
                   shape_string(c.input(4).shape)));
    std::vector<int32_t> w_zp = per_channel_zp(c, 5, w, g.c_out);
    float y_scale = scalar_scale(c, 6, "y_scale");
    DType out_dt = c.has_input(7) ? c.inputs[7]->dtype : x.dtype;
    int32_t y_zp = scalar_zp(c, 7, "y_zero_point", out_dt);
    if (qlinear_conv_fast(c, g, x, x_scale, x_zp, w, w_scale, w_zp, y_scale, out_dt, y_zp)) return;
    Tensor acc = int_conv(c, g, x, x_zp, w, w_zp);
    const int64_t pixels = g.out_pixels();
    if (c.has_input(8)) {
        const Tensor& bias = *c.inputs[8];
        if (bias.dtype != DType::I32 || bias.element_count() != g.c_out)
            c.fail(cat("B must be int32 with ", g.c_out, " elements, found ",
                       dtype_name(bias.dtype), " ", shape_string(bias.shape)));
        check_bytes(c, bias, "B");
        auto bv = bias.values<int32_t>();
        auto av = acc.mutable_values<int32_t>();
        for (int64_t b = 0; b < g.n; ++b)
            for (int64_t o = 0; o < g.c_out; ++o)
                for (int64_t p = 0; p < pixels; ++p) {
                    auto& v = av[static_cast<size_t>((b * g.c_out + o) * pixels + p)];
                    v = static_cast<int32_t>(static_cast<uint32_t>(v) +
                                             static_cast<uint32_t>(bv[static_cast<size_t>(o)]));
                }
    }
    std::vector<float> mult(static_cast<size_t>(g.c_out));
    for (int64_t o = 0; o < g.c_out; ++o)
        mult[static_cast<size_t>(o)] =
            x_scale * w_scale[w_scale.size() == 1 ? 0 : static_cast<size_t>(o)] / y_scale;
    // Rows of the output are (image, channel).
    Tensor y = requantize(c, acc, pixels, out_dt, y_zp, [&](int64_t row, int64_t) {
        return mult[static_cast<size_t>(row % g.c_out)];
    });
    c.outputs.push_back(std::move(y));
}

void op_qgemm(OpContext& c) {
    // com.microsoft.QGemm (ONNX Runtime's contrib op, quantized output only):
    //   acc = sum_k (A'[m, k] - a_zp) * (B'[k, n] - b_zp[n]) + C[m, n]  (int32, C broadcast)
    //   y   = saturate(round_half_even(float(acc) * (alpha * a_scale * b_scale[n] / y_scale))
    //         + y_zp)
    // with A' = transA ? A^T : A and B' = transB ? B^T : B.
    const Tensor& a = c.input(0);
    const Tensor& b = c.input(3);
    check_8bit(c, a, "A");
    check_8bit(c, b, "B");
    if (a.shape.size() != 2 || b.shape.size() != 2) c.fail("A and B must be 2-D");
    if (!c.has_input(7)) c.fail("QGemm with a float output (no y_scale) is not supported");
    const bool ta = c.node.attr_int("transA", 0) != 0, tb = c.node.attr_int("transB", 0) != 0;
    const float alpha = c.node.attr_float("alpha", 1.0f);
    const int64_t m = ta ? a.shape[1] : a.shape[0], k = ta ? a.shape[0] : a.shape[1];
    const int64_t n = tb ? b.shape[0] : b.shape[1];
    if ((tb ? b.shape[1] : b.shape[0]) != k)
        c.fail(cat("shapes ", shape_string(a.shape), " and ", shape_string(b.shape),
                   " cannot be multiplied (transA ", ta, ", transB ", tb, ")"));
    const float a_scale = scalar_scale(c, 1, "a_scale");
    const int32_t a_zp = scalar_zp(c, 2, "a_zero_point", a.dtype);
    std::vector<float> b_scale = read_float_values(c, c.input(4), "b_scale");
    if (b_scale.size() != 1 && static_cast<int64_t>(b_scale.size()) != n)
        c.fail(cat("b_scale must be a scalar or have ", n, " elements, found ",
                   shape_string(c.input(4).shape)));
    std::vector<int32_t> b_zp = per_channel_zp(c, 5, b, n);
    const float y_scale = scalar_scale(c, 7, "y_scale");
    DType out_dt = c.has_input(8) ? c.inputs[8]->dtype : a.dtype;
    const int32_t y_zp = scalar_zp(c, 8, "y_zero_point", out_dt);
    if (!ta && qgemm_fast(c, a, a_scale, a_zp, b, tb, b_scale, b_zp, alpha, y_scale, out_dt, y_zp))
        return;
    // A' and B' as row-major [m, k] and [k, n] copies, then the shared integer product.
    auto transposed = [](const Tensor& t) {
        Tensor r = make_tensor(t.dtype, {t.shape[1], t.shape[0]});
        const std::byte* in = t.data.bytes().data();
        std::byte* out = r.data.mutable_bytes().data();
        for (int64_t i = 0; i < t.shape[0]; ++i)
            for (int64_t j = 0; j < t.shape[1]; ++j)
                out[j * t.shape[0] + i] = in[i * t.shape[1] + j];
        return r;
    };
    Tensor at = ta ? transposed(a) : a, bt = tb ? transposed(b) : b;
    Tensor azp_t = make_tensor(a.dtype, {});
    azp_t.data.mutable_bytes()[0] = static_cast<std::byte>(a_zp);
    Tensor bzp_t = make_tensor(b.dtype, {n});
    for (int64_t j = 0; j < n; ++j)
        bzp_t.data.mutable_bytes()[static_cast<size_t>(j)] =
            static_cast<std::byte>(b_zp[static_cast<size_t>(j)]);
    IntMatMul r = int_matmul(c, at, &azp_t, bt, &bzp_t);
    if (c.has_input(6)) {
        const Tensor& bias = *c.inputs[6];
        if (bias.dtype != DType::I32)
            c.fail(cat("C must be int32, found ", dtype_name(bias.dtype)));
        check_bytes(c, bias, "C");
        std::vector<int32_t> cv(bias.values<int32_t>().begin(), bias.values<int32_t>().end());
        std::vector<int32_t> full = expand_param(c, cv, bias.shape, {m, n}, "C");
        auto av = r.y.mutable_values<int32_t>();
        for (size_t i = 0; i < full.size(); ++i)
            av[i] =
                static_cast<int32_t>(static_cast<uint32_t>(av[i]) + static_cast<uint32_t>(full[i]));
    }
    std::vector<float> mult(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j)
        mult[static_cast<size_t>(j)] =
            alpha * a_scale * b_scale[b_scale.size() == 1 ? 0 : static_cast<size_t>(j)] / y_scale;
    Tensor y = requantize(c, r.y, n, out_dt, y_zp,
                          [&](int64_t, int64_t j) { return mult[static_cast<size_t>(j)]; });
    c.outputs.push_back(std::move(y));
}

}  // namespace ep::rt
