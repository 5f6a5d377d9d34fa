// MatMul, Gemm, Conv, ConvTranspose and pooling (max, average, Lp), in float32 (f16/bf16/f64 inputs
// are converted to f32 and back: the reference runtime computes these in f32).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "ir/checked.h"
#include "runtime-check/kernels/conv2d.h"
#include "runtime-check/kernels/gemm.h"
#include "runtime-check/kernels/igemm.h"
#include "runtime-check/ops/conv_shape.h"
#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"
#include "runtime-check/ops/quant_matmul.h"

namespace ep::rt {
namespace {

// The 1-D or 2-D window of a resolved geometry (1-D as height 1).
Window2D window_2d(const ConvShape& g) {
    Window2D w{};
    const size_t s = g.in.size();
    const size_t x = s - 1;
    w.iw = g.in[x], w.kw = g.kernel[x], w.ow = g.out[x];
    w.sw = g.strides[x], w.dw = g.dilations[x], w.pw = g.pads_begin[x], w.pw_end = g.pads_end[x];
    if (s == 2) {
        w.ih = g.in[0], w.kh = g.kernel[0], w.oh = g.out[0];
        w.sh = g.strides[0], w.dh = g.dilations[0], w.ph = g.pads_begin[0],
        w.ph_end = g.pads_end[0];
    } else {
        w.ih = w.kh = w.oh = w.sh = w.dh = 1;
        w.ph = w.ph_end = 0;
    }
    return w;
}

int64_t product(const std::vector<int64_t>& v) {
    int64_t p = 1;
    for (int64_t d : v) p *= d;
    return p;
}

}  // namespace

void op_matmul(OpContext& c) {
    const Tensor& a0 = c.input(0);
    const Tensor& b0 = c.input(1);
    if (!is_float(a0.dtype)) c.fail(cat("MatMul on ", dtype_name(a0.dtype), " is not supported"));
    if (b0.is_encoded()) {  // a quantized weight (quant_matmul.h)
        c.outputs.push_back(from_f32(qmatmul(c, as_f32(c, a0), b0), a0.dtype));
        return;
    }
    Tensor a = as_f32(c, a0), b = as_f32(c, b0);
    std::vector<int64_t> as = a.shape, bs = b.shape;
    bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
    if (as.empty() || bs.empty()) c.fail("MatMul inputs must have rank >= 1");
    if (a_vec) as.insert(as.begin(), 1);
    if (b_vec) bs.push_back(1);
    int64_t m = as[as.size() - 2], k = as.back(), k2 = bs[bs.size() - 2], n = bs.back();
    if (k != k2)
        c.fail(cat("shapes ", shape_string(a.shape), " and ", shape_string(b.shape),
                   " cannot be multiplied"));
    std::vector<int64_t> a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
    std::vector<int64_t> batch = broadcast_shapes(c, a_batch, b_batch);
    auto a_str = broadcast_strides(a_batch, batch), b_str = broadcast_strides(b_batch, batch);
    std::vector<int64_t> out_shape = batch;
    if (!a_vec) out_shape.push_back(m);
    if (!b_vec) out_shape.push_back(n);
    Tensor y = make_uninitialized_tensor(DType::F32, out_shape);
    int64_t batches = product(batch);
    const float* pa = a.values<float>().data();
    const float* pb = b.values<float>().data();
    float* py = y.mutable_values<float>().data();
    auto one_batch = [&](const ExecOptions& options, int64_t bi) {
        int64_t ao = 0, bo = 0, rem = bi;
        for (size_t d = batch.size(); d-- > 0;) {
            int64_t idx = rem % batch[d];
            rem /= batch[d];
            ao += idx * a_str[d];
            bo += idx * b_str[d];
        }
        MatrixView av{pa + ao * m * k, m, k, k, false};
        MatrixView bv{pb + bo * k * n, k, n, n, false};
        gemm_f32(options, av, bv, py + bi * m * n, n, false);
    };
    const int64_t batch_work = m * n * k;
    if (batches > 1 && c.options.threads > 1 && batch_work < 2 * kGemmParallelWork) {
        // Many small products (attention heads): one thread per batch range; each product
        // is computed exactly as on one thread.
        const ExecOptions single{};
        parallel_for(c.options, batches,
                     std::max<int64_t>(1, kGemmParallelWork / std::max<int64_t>(batch_work, 1)),
                     [&](int64_t b0, int64_t b1) {
                         for (int64_t bi = b0; bi < b1; ++bi) one_batch(single, bi);
                     });
    } else {
        for (int64_t bi = 0; bi < batches; ++bi) one_batch(c.options, bi);
    }
    c.outputs.push_back(from_f32(std::move(y), a0.dtype));
}

void op_gemm(OpContext& c) {
    const Tensor& a0 = c.input(0);
    Tensor a = as_f32(c, a0), b = as_f32(c, c.input(1));
    if (a.shape.size() != 2 || b.shape.size() != 2) c.fail("Gemm inputs must be 2-D");
    bool ta = c.node.attr_int("transA", 0) != 0, tb = c.node.attr_int("transB", 0) != 0;
    float alpha = c.node.attr_float("alpha", 1.0f), beta = c.node.attr_float("beta", 1.0f);
    int64_t m = ta ? a.shape[1] : a.shape[0], k = ta ? a.shape[0] : a.shape[1];
    int64_t kb = tb ? b.shape[1] : b.shape[0], n = tb ? b.shape[0] : b.shape[1];
    if (k != kb)
        c.fail(cat("shapes ", shape_string(a.shape), " and ", shape_string(b.shape),
                   " do not match for Gemm"));
    Tensor y = make_uninitialized_tensor(DType::F32, {m, n});
    MatrixView av{a.values<float>().data(), m, k, a.shape[1], ta};
    MatrixView bv{b.values<float>().data(), k, n, b.shape[1], tb};
    float* py = y.mutable_values<float>().data();
    if (b.is_encoded())  // a quantized weight (quant_matmul.h)
        qgemm_f32(c, av, b, n, py, n);
    else
        gemm_f32(c.options, av, bv, py, n, false);
    if (alpha != 1.0f)
        for (int64_t i = 0; i < m * n; ++i) py[i] *= alpha;
    if (c.has_input(2) && beta != 0.0f) {
        Tensor bias = as_f32(c, *c.inputs[2]);
        std::vector<int64_t> out_shape{m, n};
        if (broadcast_shapes(c, bias.shape, out_shape) != out_shape)
            c.fail("C does not broadcast to [M, N]");
        auto st = broadcast_strides(bias.shape, out_shape);
        const float* pc = bias.values<float>().data();
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) py[i * n + j] += beta * pc[i * st[0] + j * st[1]];
    }
    c.outputs.push_back(from_f32(std::move(y), a0.dtype));
}

void op_conv(OpContext& c) {
    conv_with_epilogue(c, {});
}

void conv_with_epilogue(OpContext& c, std::span<const ChainStep> epilogue) {
    const Tensor& x0 = c.input(0);
    Tensor x = as_f32(c, x0), w = as_f32(c, c.input(1));
    ConvShape g = conv_shape(c, x.shape, w.shape);
    size_t s = g.in.size();
    int64_t out_pixels = product(g.out), in_pixels = product(g.in), kernel_size = product(g.kernel);
    int64_t cin_g = g.c_in / g.group, cout_g = g.c_out / g.group;
    int64_t col_rows = cin_g * kernel_size;
    std::vector<int64_t> out_shape{g.n, g.c_out};
    out_shape.insert(out_shape.end(), g.out.begin(), g.out.end());
    Tensor y = make_uninitialized_tensor(DType::F32, out_shape);
    const float* px = x.values<float>().data();
    const float* pw = w.values<float>().data();
    float* py = y.mutable_values<float>().data();
    Tensor bias;
    if (c.has_input(2)) {
        bias = as_f32(c, *c.inputs[2]);
        if (bias.element_count() != g.c_out)
            c.fail(cat("bias has ", bias.element_count(), " elements, expected ", g.c_out));
    }
    // Scratch of the fast path (im2col matrix or a padded plane) and of the N-d path.
    const Window2D win = s <= 2 ? window_2d(g) : Window2D{};
    // Every window lies inside the padded input, so a padded plane is at most that big.
    const uint64_t plane_rows = s <= 2 ? static_cast<uint64_t>(win.ih + win.ph + win.ph_end) : 0;
    const uint64_t plane_cols =
        s <= 2 ? static_cast<uint64_t>(win.iw + win.pw + win.pw_end + 8) : 0;
    auto col_floats =
        checked_mul(static_cast<uint64_t>(col_rows), static_cast<uint64_t>(out_pixels));
    auto plane_floats = checked_mul(plane_rows, plane_cols);
    constexpr uint64_t kMaxScratch = uint64_t{1} << 34;  // floats
    if (!col_floats || *col_floats > kMaxScratch || !plane_floats || *plane_floats > kMaxScratch)
        c.fail(cat("the patch matrix (", col_rows, " x ", out_pixels,
                   ") or padded plane is too large"));
    if (s <= 2) {
        const Conv2DShape shape{g.n, g.c_in, g.c_out, g.group, win};
        // A float32 initializer weight: its per-group transpose made once per executor
        // (IgemmCache) when the transposed GEMM is the cheaper orientation (same bits).
        const float* w_t = nullptr;
        const Tensor& w0 = c.input(1);
        if (c.igemm_cache && (c.constant_inputs & 2) && w0.dtype == DType::F32 &&
            !w0.is_encoded() && conv2d_prefers_transposed(shape))
            w_t =
                c.igemm_cache->transposed_f32(w0.values<float>().data(), g.group, cout_g, col_rows);
        conv2d_f32(c.options, shape, px, pw, c.has_input(2) ? bias.values<float>().data() : nullptr,
                   py, epilogue, w_t);
        c.outputs.push_back(from_f32(std::move(y), x0.dtype));
        return;
    }
    // Generic N-d path: im2col with per-element index arithmetic, then GEMM.
    std::vector<float> col(static_cast<size_t>(col_rows * out_pixels));
    std::vector<int64_t> in_strides(s, 1);
    for (size_t i = s - 1; i > 0; --i) in_strides[i - 1] = in_strides[i] * g.in[i];
    bool pointwise =
        kernel_size == 1 && product(g.strides) == 1 &&
        std::all_of(g.pads_begin.begin(), g.pads_begin.end(), [](int64_t p) { return p == 0; }) &&
        std::all_of(g.pads_end.begin(), g.pads_end.end(), [](int64_t p) { return p == 0; });
    for (int64_t b = 0; b < g.n; ++b) {
        for (int64_t gi = 0; gi < g.group; ++gi) {
            const float* xin = px + (b * g.c_in + gi * cin_g) * in_pixels;
            const float* colp = xin;
            if (!pointwise) {
                // im2col: rows (channel, kernel offset), columns output pixels.
                parallel_for(c.options, col_rows, 4, [&](int64_t r0, int64_t r1) {
                    std::vector<int64_t> kidx(s), oidx(s);
                    for (int64_t r = r0; r < r1; ++r) {
                        int64_t ch = r / kernel_size, kr = r % kernel_size;
                        for (size_t d = s; d-- > 0;) {
                            kidx[d] = kr % g.kernel[d];
                            kr /= g.kernel[d];
                        }
                        float* dst = col.data() + r * out_pixels;
                        const float* src = xin + ch * in_pixels;
                        std::fill(oidx.begin(), oidx.end(), 0);
                        for (int64_t o = 0; o < out_pixels; ++o) {
                            int64_t off = 0;
                            bool inside = true;
                            for (size_t d = 0; d < s; ++d) {
                                int64_t pos = oidx[d] * g.strides[d] - g.pads_begin[d] +
                                              kidx[d] * g.dilations[d];
                                if (pos < 0 || pos >= g.in[d]) {
                                    inside = false;
                                    break;
                                }
                                off += pos * in_strides[d];
                            }
                            dst[o] = inside ? src[off] : 0.0f;
                            for (size_t d = s; d-- > 0;) {
                                if (++oidx[d] < g.out[d]) break;
                                oidx[d] = 0;
                            }
                        }
                    }
                });
                colp = col.data();
            }
            MatrixView wv{pw + gi * cout_g * col_rows, cout_g, col_rows, col_rows, false};
            MatrixView cv{colp, col_rows, out_pixels, out_pixels, false};
            gemm_f32(c.options, wv, cv, py + (b * g.c_out + gi * cout_g) * out_pixels, out_pixels,
                     false);
        }
    }
    if (c.has_input(2)) {
        auto pb = bias.values<float>();
        for (int64_t b = 0; b < g.n; ++b)
            for (int64_t o = 0; o < g.c_out; ++o) {
                float* row = py + (b * g.c_out + o) * out_pixels;
                for (int64_t p = 0; p < out_pixels; ++p) row[p] += pb[static_cast<size_t>(o)];
            }
    }
    if (!epilogue.empty()) run_elementwise_chain(c.options, epilogue, py, py, y.element_count());
    c.outputs.push_back(from_f32(std::move(y), x0.dtype));
}

void op_conv_transpose(OpContext& c) {
    const Tensor& x0 = c.input(0);
    Tensor x = as_f32(c, x0), w = as_f32(c, c.input(1));
    if (x.shape.size() < 3 || w.shape.size() != x.shape.size())
        c.fail("ConvTranspose expects X [N, C, ...] and W [C, M/group, ...]");
    ConvShape g;
    g.n = x.shape[0];
    g.c_in = x.shape[1];
    g.group = c.node.attr_int("group", 1);
    if (g.group <= 0 || w.shape[0] != g.c_in || g.c_in % g.group)
        c.fail("channel counts do not match");
    g.c_out = w.shape[1] * g.group;
    g.in.assign(x.shape.begin() + 2, x.shape.end());
    g.kernel.assign(w.shape.begin() + 2, w.shape.end());
    size_t s = g.in.size();
    std::vector<int64_t> output_padding = c.node.attr_ints("output_padding");
    resolve_window(c, g, WindowOptions{false, true, output_padding});
    if (std::vector<int64_t> os = c.node.attr_ints("output_shape"); !os.empty()) {
        const AutoPad auto_pad = read_auto_pad(c);
        std::vector<int64_t> spatial(os.end() - static_cast<int64_t>(s), os.end());
        for (size_t i = 0; i < s; ++i) {
            int64_t k = (g.kernel[i] - 1) * g.dilations[i] + 1;
            int64_t op = output_padding.empty() ? 0 : output_padding[i];
            int64_t total = g.strides[i] * (g.in[i] - 1) + op + k - spatial[i];
            // Floor division, as the ONNX reference: a negative total pads the end with zeros.
            int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
            g.pads_begin[i] = auto_pad == AutoPad::SameUpper ? half : total - half;
            g.pads_end[i] = total - g.pads_begin[i];
            g.out[i] = spatial[i];
        }
    }
    int64_t in_pixels = product(g.in), out_pixels = product(g.out), kernel_size = product(g.kernel);
    int64_t cin_g = g.c_in / g.group, cout_g = g.c_out / g.group;
    std::vector<int64_t> out_shape{g.n, g.c_out};
    out_shape.insert(out_shape.end(), g.out.begin(), g.out.end());
    Tensor y = make_tensor(DType::F32, out_shape);
    const float* px = x.values<float>().data();
    const float* pw = w.values<float>().data();
    float* py = y.mutable_values<float>().data();
    std::vector<int64_t> out_strides(s, 1);
    for (size_t i = s - 1; i > 0; --i) out_strides[i - 1] = out_strides[i] * g.out[i];
    // col[cout_g*kernel, in_pixels] = W_g^T [cout_g*kernel, cin_g] * X_g [cin_g, in_pixels]; then
    // col2im.
    std::vector<float> col(static_cast<size_t>(cout_g * kernel_size * in_pixels));
    for (int64_t b = 0; b < g.n; ++b)
        for (int64_t gi = 0; gi < g.group; ++gi) {
            MatrixView wv{pw + gi * cin_g * cout_g * kernel_size, cout_g * kernel_size, cin_g,
                          cout_g * kernel_size, true};
            MatrixView xv{px + (b * g.c_in + gi * cin_g) * in_pixels, cin_g, in_pixels, in_pixels,
                          false};
            gemm_f32(c.options, wv, xv, col.data(), in_pixels, false);
            float* yout = py + (b * g.c_out + gi * cout_g) * out_pixels;
            // col2im: per output channel, sequential over (kernel offset, input pixel) for
            // determinism.
            parallel_for(c.options, cout_g, 1, [&](int64_t o0, int64_t o1) {
                std::vector<int64_t> kidx(s), iidx(s);
                for (int64_t oc = o0; oc < o1; ++oc)
                    for (int64_t kr = 0; kr < kernel_size; ++kr) {
                        int64_t rem = kr;
                        for (size_t d = s; d-- > 0;) {
                            kidx[d] = rem % g.kernel[d];
                            rem /= g.kernel[d];
                        }
                        const float* src = col.data() + (oc * kernel_size + kr) * in_pixels;
                        std::fill(iidx.begin(), iidx.end(), 0);
                        for (int64_t p = 0; p < in_pixels; ++p) {
                            int64_t off = 0;
                            bool inside = true;
                            for (size_t d = 0; d < s; ++d) {
                                int64_t pos = iidx[d] * g.strides[d] - g.pads_begin[d] +
                                              kidx[d] * g.dilations[d];
                                if (pos < 0 || pos >= g.out[d]) {
                                    inside = false;
                                    break;
                                }
                                off += pos * out_strides[d];
                            }
                            if (inside) yout[oc * out_pixels + off] += src[p];
                            for (size_t d = s; d-- > 0;) {
                                if (++iidx[d] < g.in[d]) break;
                                iidx[d] = 0;
                            }
                        }
                    }
            });
        }
    if (c.has_input(2)) {
        Tensor bias = as_f32(c, *c.inputs[2]);
        auto pb = bias.values<float>();
        for (int64_t b = 0; b < g.n; ++b)
            for (int64_t o = 0; o < g.c_out; ++o)
                for (int64_t p = 0; p < out_pixels; ++p)
                    py[(b * g.c_out + o) * out_pixels + p] += pb[static_cast<size_t>(o)];
    }
    c.outputs.push_back(from_f32(std::move(y), x0.dtype));
}

namespace {

// 8-bit integer inputs of MaxPool: every value is exact in f32, so pool there and convert back.
Tensor int8_to_f32(const Tensor& t) {
    Tensor f = make_uninitialized_tensor(DType::F32, t.shape);
    auto out = f.mutable_values<float>();
    for (size_t i = 0; i < out.size(); ++i)
        out[i] = t.dtype == DType::U8 ? static_cast<float>(t.values<uint8_t>()[i])
                                      : static_cast<float>(t.values<int8_t>()[i]);
    return f;
}

Tensor f32_to_int8(const Tensor& f, DType dt) {
    Tensor t = make_uninitialized_tensor(dt, f.shape);
    auto in = f.values<float>();
    for (size_t i = 0; i < in.size(); ++i) {
        if (dt == DType::U8)
            t.mutable_values<uint8_t>()[i] = static_cast<uint8_t>(in[i]);
        else
            t.mutable_values<int8_t>()[i] = static_cast<int8_t>(in[i]);
    }
    return t;
}

void pool(OpContext& c, bool is_max) {
    const Tensor& x0 = c.input(0);
    bool int8 = is_max && (x0.dtype == DType::U8 || x0.dtype == DType::I8);
    Tensor x = int8 ? int8_to_f32(x0) : as_f32(c, x0);
    if (x.shape.size() < 3) c.fail("pooling expects X [N, C, ...]");
    ConvShape g;
    g.n = x.shape[0];
    g.c_in = g.c_out = x.shape[1];
    g.in.assign(x.shape.begin() + 2, x.shape.end());
    g.kernel = c.node.attr_ints("kernel_shape");
    if (g.kernel.size() != g.in.size()) c.fail("kernel_shape does not match the spatial rank");
    bool ceil_mode = c.node.attr_int("ceil_mode", 0) != 0;
    bool count_pad = c.node.attr_int("count_include_pad", 0) != 0;
    resolve_window(c, g, WindowOptions{ceil_mode, false, {}});
    size_t s = g.in.size();
    int64_t in_pixels = product(g.in), out_pixels = product(g.out), kernel_size = product(g.kernel);
    std::vector<int64_t> out_shape{g.n, g.c_in};
    out_shape.insert(out_shape.end(), g.out.begin(), g.out.end());
    Tensor y = make_uninitialized_tensor(DType::F32, out_shape);
    bool want_indices = is_max && c.node.outputs.size() > 1 && !c.node.outputs[1].empty();
    int64_t storage_order = c.node.attr_int("storage_order", 0);
    std::vector<int64_t> in_strides(s, 1);
    for (size_t i = s - 1; i > 0; --i) in_strides[i - 1] = in_strides[i] * g.in[i];
    const float* px = x.values<float>().data();
    float* py = y.mutable_values<float>().data();
    if (s <= 2 && !want_indices) {
        pool2d_f32(c.options, g.n * g.c_in, window_2d(g), is_max, count_pad, px, py);
        c.outputs.push_back(int8 ? f32_to_int8(y, x0.dtype) : from_f32(std::move(y), x0.dtype));
        return;
    }
    Tensor indices = make_tensor(DType::I64, want_indices ? out_shape : std::vector<int64_t>{0});
    int64_t* pi = indices.mutable_values<int64_t>().data();
    parallel_for(c.options, g.n * g.c_in, 1, [&](int64_t p0, int64_t p1) {
        std::vector<int64_t> oidx(s), kidx(s);
        for (int64_t plane = p0; plane < p1; ++plane) {
            const float* src = px + plane * in_pixels;
            std::fill(oidx.begin(), oidx.end(), 0);
            for (int64_t o = 0; o < out_pixels; ++o) {
                float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
                int64_t best = -1, count = 0;
                for (int64_t kr = 0; kr < kernel_size; ++kr) {
                    int64_t rem = kr;
                    for (size_t d = s; d-- > 0;) {
                        kidx[d] = rem % g.kernel[d];
                        rem /= g.kernel[d];
                    }
                    int64_t off = 0;
                    bool inside = true, in_padded = true;
                    for (size_t d = 0; d < s; ++d) {
                        int64_t pos =
                            oidx[d] * g.strides[d] - g.pads_begin[d] + kidx[d] * g.dilations[d];
                        if (pos < 0 || pos >= g.in[d]) inside = false;
                        if (pos >= g.in[d] + g.pads_end[d]) in_padded = false;
                        off += pos * in_strides[d];
                    }
                    if (!inside) {
                        if (!is_max && count_pad && in_padded) ++count;
                        continue;
                    }
                    float v = src[off];
                    if (is_max) {
                        if (v > acc || best < 0) {
                            acc = v;
                            best = off;
                        }
                    } else {
                        acc += v;
                        ++count;
                    }
                }
                if (!is_max) acc = count ? acc / static_cast<float>(count) : 0.0f;
                py[plane * out_pixels + o] = acc;
                if (want_indices) {
                    int64_t flat = best;
                    if (storage_order == 1 && s == 2) {
                        int64_t h = best / g.in[1], w = best % g.in[1];
                        flat = w * g.in[0] + h;
                    }
                    pi[plane * out_pixels + o] = plane * in_pixels + flat;
                }
                for (size_t d = s; d-- > 0;) {
                    if (++oidx[d] < g.out[d]) break;
                    oidx[d] = 0;
                }
            }
        }
    });
    c.outputs.push_back(int8 ? f32_to_int8(y, x0.dtype) : from_f32(std::move(y), x0.dtype));
    if (want_indices) c.outputs.push_back(std::move(indices));
}

void global_pool(OpContext& c, bool is_max) {
    const Tensor& x0 = c.input(0);
    Tensor x = as_f32(c, x0);
    if (x.shape.size() < 2) c.fail("expects X [N, C, ...]");
    int64_t planes = x.shape[0] * x.shape[1],
            pixels = x.element_count() / std::max<int64_t>(planes, 1);
    std::vector<int64_t> out_shape{x.shape[0], x.shape[1]};
    out_shape.resize(x.shape.size(), 1);
    Tensor y = make_uninitialized_tensor(DType::F32, out_shape);
    const float* px = x.values<float>().data();
    float* py = y.mutable_values<float>().data();
    parallel_for(c.options, planes, std::max<int64_t>(1, 32768 / std::max<int64_t>(pixels, 1)),
                 [&](int64_t p0, int64_t p1) {
                     for (int64_t p = p0; p < p1; ++p) {
                         const float* src = px + p * pixels;
                         if (is_max) {
                             float m = -std::numeric_limits<float>::infinity();
                             for (int64_t i = 0; i < pixels; ++i) m = std::max(m, src[i]);
                             py[p] = m;
                         } else {
                             // Four interleaved double sums (element i goes to sum i % 4), added in
                             // a fixed order: independent chains instead of one long dependency.
                             double s4[4] = {0, 0, 0, 0};
                             int64_t i = 0;
                             for (; i + 4 <= pixels; i += 4)
                                 for (int j = 0; j < 4; ++j) s4[j] += src[i + j];
                             for (int j = 0; i < pixels; ++i, ++j) s4[j] += src[i];
                             const double sum = (s4[0] + s4[1]) + (s4[2] + s4[3]);
                             py[p] = static_cast<float>(sum / static_cast<double>(pixels));
                         }
                     }
                 });
    c.outputs.push_back(from_f32(std::move(y), x0.dtype));
}

// LpPool: y = (sum over the window of |x|^p)^(1/p), p = 2 by default; padded positions
// add nothing. The window geometry is pooling's (kernel_shape, strides, pads / auto_pad,
// dilations, ceil_mode). Sums in double in window order, one thread per plane.
void lp_pool(OpContext& c) {
    const Tensor& x0 = c.input(0);
    Tensor x = as_f32(c, x0);
    if (x.shape.size() < 3) c.fail("LpPool expects X [N, C, ...]");
    const double p = static_cast<double>(c.node.attr_int("p", 2));
    if (p < 1) c.fail(cat("p ", p, ": expected >= 1"));
    ConvShape g;
    g.n = x.shape[0];
    g.c_in = g.c_out = x.shape[1];
    g.in.assign(x.shape.begin() + 2, x.shape.end());
    g.kernel = c.node.attr_ints("kernel_shape");
    if (g.kernel.size() != g.in.size()) c.fail("kernel_shape does not match the spatial rank");
    resolve_window(c, g, WindowOptions{c.node.attr_int("ceil_mode", 0) != 0, false, {}});
    const size_t s = g.in.size();
    const int64_t in_pixels = product(g.in), out_pixels = product(g.out),
                  kernel_size = product(g.kernel);
    std::vector<int64_t> out_shape{g.n, g.c_in};
    out_shape.insert(out_shape.end(), g.out.begin(), g.out.end());
    Tensor y = make_uninitialized_tensor(DType::F32, out_shape);
    std::vector<int64_t> in_strides(s, 1);
    for (size_t i = s - 1; i > 0; --i) in_strides[i - 1] = in_strides[i] * g.in[i];
    const float* px = x.values<float>().data();
    float* py = y.mutable_values<float>().data();
    parallel_for(c.options, g.n * g.c_in, 1, [&](int64_t p0, int64_t p1) {
        std::vector<int64_t> oidx(s), kidx(s);
        for (int64_t plane = p0; plane < p1; ++plane) {
            const float* src = px + plane * in_pixels;
            std::fill(oidx.begin(), oidx.end(), 0);
            for (int64_t o = 0; o < out_pixels; ++o) {
                double acc = 0;
                for (int64_t kr = 0; kr < kernel_size; ++kr) {
                    int64_t rem = kr;
                    for (size_t d = s; d-- > 0;) {
                        kidx[d] = rem % g.kernel[d];
                        rem /= g.kernel[d];
                    }
                    int64_t off = 0;
                    bool inside = true;
                    for (size_t d = 0; d < s; ++d) {
                        int64_t pos =
                            oidx[d] * g.strides[d] - g.pads_begin[d] + kidx[d] * g.dilations[d];
                        if (pos < 0 || pos >= g.in[d]) inside = false;
                        off += pos * in_strides[d];
                    }
                    if (inside) acc += std::pow(std::abs(static_cast<double>(src[off])), p);
                }
                py[plane * out_pixels + o] = static_cast<float>(std::pow(acc, 1.0 / p));
                for (size_t d = s; d-- > 0;) {
                    if (++oidx[d] < g.out[d]) break;
                    oidx[d] = 0;
                }
            }
        }
    });
    c.outputs.push_back(from_f32(std::move(y), x0.dtype));
}

}  // namespace

void op_lp_pool(OpContext& c) {
    lp_pool(c);
}

void op_max_pool(OpContext& c) {
    pool(c, true);
}
void op_average_pool(OpContext& c) {
    pool(c, false);
}
void op_global_average_pool(OpContext& c) {
    global_pool(c, false);
}
void op_global_max_pool(OpContext& c) {
    global_pool(c, true);
}

}  // namespace ep::rt
