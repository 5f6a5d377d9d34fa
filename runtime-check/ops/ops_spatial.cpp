// Vision and detection ops on image geometry: GridSample, AffineGrid, Col2Im, MaxUnpool,
// DeformConv, RoiAlign, NonMaxSuppression. Plain reference loops; values in double, stored in X's
// dtype. Each output element is computed by one thread in a fixed order (NonMaxSuppression and
// Col2Im run serially): the same bits for any thread count.
//
// GridSample(X [N, C, D1..Dr], grid [N, O1..Or, r]; mode linear|nearest|cubic (opset 16:
//   bilinear|bicubic), padding_mode zeros|border|reflection, align_corners): grid[..., 0]
//   is the coordinate of the last axis Dr (x), grid[..., 1] of Dr-1 (y), ... in [-1, 1];
//   denormalized as (g + 1) / 2 * (D - 1) with align_corners, else ((g + 1) * D - 1) / 2.
//   Out-of-range coordinates are clamped (border) or reflected about [-0.5, D - 0.5]
//   ([0, D - 1] with align_corners) before interpolation; pixels read outside X are 0
//   (zeros), clamped (border) or reflected (reflection). nearest rounds half to even;
//   cubic uses A = -0.75 over the 4^r neighbours. As the ONNX reference implementation.
// AffineGrid(theta [N, 2, 3] | [N, 3, 4], size [N, C, H, W] | [N, C, D, H, W];
//   align_corners): grid[n, (d,) h, w] = theta[n] @ (x_w, y_h, (z_d,) 1), the base
//   coordinates -1 + 2 i / (S - 1) with align_corners, else -1 + (2 i + 1) / S.
// Col2Im(input [N, C * prod(block), L], image_shape, block_shape; dilations, pads,
//   strides): the sum of every block column back into its image position.
// MaxUnpool(X, I, output_shape?; kernel_shape, pads, strides): zeros, then
//   y.flat[I] = X, I indexing the unpooled shape (in - 1) * stride + kernel - pads; a
//   larger output_shape keeps each value's coordinates (as the ONNX reference does).
// DeformConv(X [N, C, H, W], W [M, C / group, kH, kW], offset [N, G * 2 * kH * kW, oH,
//   oW], B [M]?, mask [N, G * kH * kW, oH, oW]?; dilations, group, kernel_shape,
//   offset_group G, pads, strides): Conv where each kernel tap (i, j) reads X at
//   (oh * s_h - pad_h + i * d_h + offset_h, ow * s_w - pad_w + j * d_w + offset_w) by
//   bilinear interpolation (pixels outside X are 0), times the mask; offsets and mask of
//   the tap's channel group (C / G channels each). 2-D only.
// RoiAlign(X [N, C, H, W], rois [R, 4] (x1, y1, x2, y2), batch_indices [R];
//   coordinate_transformation_mode half_pixel | output_half_pixel, mode avg | max,
//   output_height, output_width, sampling_ratio, spatial_scale): per ROI and output bin,
//   grid_h x grid_w bilinear samples (sampling_ratio, else ceil(bin size)), averaged, or
//   for max the largest weighted corner of any sample (as ONNX Runtime and the ONNX
//   reference do); output_half_pixel keeps ROIs at least 1 pixel wide and high.
// NonMaxSuppression(boxes [B, N, 4], scores [B, C, N], max_output_boxes_per_class = 0,
//   iou_threshold = 0, score_threshold; center_point_box): per batch and class, the boxes
//   scoring above score_threshold by descending score (ties: lower index first), each
//   kept unless its IoU with a kept box exceeds iou_threshold, at most
//   max_output_boxes_per_class: rows (batch, class, box) int64.
#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

#include "runtime-check/ops/conv_shape.h"
#include "runtime-check/ops/element_access.h"
#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"

namespace ep::rt {
namespace {

void require_float(const OpContext& c, const Tensor& t, const char* what) {
    if (!is_float(t.dtype))
        c.fail(cat(what, " of type ", dtype_name(t.dtype), ": expected a float type"));
}

enum class Padding { Zeros, Border, Reflection };

// Reflects x about [lo, hi] until it lies inside (the ONNX reference's _gs_reflect).
double reflect(double x, double lo, double hi) {
    const double range = hi - lo;
    if (x < lo) {
        const double dx = lo - x;
        const int64_t n = static_cast<int64_t>(dx / range);
        const double r = dx - static_cast<double>(n) * range;
        return n % 2 == 0 ? lo + r : hi - r;
    }
    if (x > hi) {
        const double dx = x - hi;
        const int64_t n = static_cast<int64_t>(dx / range);
        const double r = dx - static_cast<double>(n) * range;
        return n % 2 == 0 ? hi - r : lo + r;
    }
    return x;
}

void cubic_coeffs(double x, double coeffs[4]) {
    const double a = -0.75;
    x = std::abs(x);
    coeffs[0] = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a;
    coeffs[1] = ((a + 2) * x - (a + 3)) * x * x + 1;
    coeffs[2] = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1;
    coeffs[3] = ((a * (2 - x) - 5 * a) * (2 - x) + 8 * a) * (2 - x) - 4 * a;
}

}  // namespace

void op_grid_sample(OpContext& c) {
    const Tensor& x = c.input(0);
    const Tensor& grid = c.input(1);
    require_float(c, x, "X");
    require_float(c, grid, "grid");
    const size_t r = x.shape.size() < 3 ? 0 : x.shape.size() - 2;
    if (r == 0 || grid.shape.size() != r + 2 || grid.shape[0] != x.shape[0] ||
        grid.shape[r + 1] != static_cast<int64_t>(r))
        c.fail(cat("X of shape ", shape_string(x.shape), " and grid of shape ",
                   shape_string(grid.shape),
                   ": expected X [N, C, D1..Dr] and grid [N, O1..Or, r]"));
    std::string mode = c.node.attr_string("mode", c.opset >= 20 ? "linear" : "bilinear");
    if (mode == "bilinear") mode = "linear";
    if (mode == "bicubic") mode = "cubic";
    if (mode != "linear" && mode != "nearest" && mode != "cubic")
        c.fail(cat("mode '", mode, "': expected linear, nearest or cubic"));
    const std::string pm = c.node.attr_string("padding_mode", "zeros");
    if (pm != "zeros" && pm != "border" && pm != "reflection")
        c.fail(cat("padding_mode '", pm, "': expected zeros, border or reflection"));
    const Padding padding = pm == "zeros"    ? Padding::Zeros
                            : pm == "border" ? Padding::Border
                                             : Padding::Reflection;
    const bool align = c.node.attr_int("align_corners", 0) != 0;

    const int64_t n = x.shape[0], channels = x.shape[1];
    std::vector<int64_t> dims(x.shape.begin() + 2, x.shape.end());
    std::vector<int64_t> out_shape{n, channels};
    out_shape.insert(out_shape.end(), grid.shape.begin() + 1, grid.shape.end() - 1);
    Tensor y = make_uninitialized_tensor(x.dtype, out_shape);
    int64_t in_pixels = 1, out_pixels = 1;
    for (int64_t d : dims) in_pixels *= d;
    for (size_t d = 1; d + 1 < grid.shape.size(); ++d) out_pixels *= grid.shape[d];
    std::vector<double> lo(r), hi(r);
    for (size_t d = 0; d < r; ++d) {
        lo[d] = align ? 0.0 : -0.5;
        hi[d] = align ? static_cast<double>(dims[d]) - 1 : static_cast<double>(dims[d]) - 0.5;
    }
    const int taps = mode == "nearest" ? 1 : mode == "linear" ? 2 : 4;
    int64_t corners = 1;
    for (size_t d = 0; d < r; ++d) corners *= taps;

    parallel_for(c.options, n * out_pixels, 16, [&](int64_t b, int64_t e) {
        std::vector<double> pos(r);
        std::vector<int64_t> base(r), idx(r);
        std::vector<std::array<double, 4>> weight(r);
        for (int64_t job = b; job < e; ++job) {
            const int64_t batch = job / out_pixels, o = job % out_pixels;
            // Coordinates in X's axis order: the grid's last axis holds them reversed.
            for (size_t d = 0; d < r; ++d) {
                double g = load_double(grid, (batch * out_pixels + o) * static_cast<int64_t>(r) +
                                                 static_cast<int64_t>(r - 1 - d));
                const double size = static_cast<double>(dims[d]);
                double v = align ? (g + 1) / 2 * (size - 1) : ((g + 1) * size - 1) / 2;
                if (mode == "nearest") v = std::nearbyint(v);
                if (v < lo[d] || v > hi[d]) {
                    if (padding == Padding::Border) v = std::clamp(v, 0.0, size - 1);
                    if (padding == Padding::Reflection) v = reflect(v, lo[d], hi[d]);
                }
                pos[d] = v;
                if (mode == "nearest") {
                    base[d] = static_cast<int64_t>(v);  // truncation, as the reference's astype
                    weight[d] = {1, 0, 0, 0};
                } else {
                    base[d] = static_cast<int64_t>(std::floor(v));
                    const double f = v - static_cast<double>(base[d]);
                    if (mode == "linear") {
                        weight[d] = {1 - f, f, 0, 0};
                    } else {
                        cubic_coeffs(f, weight[d].data());
                        base[d] -= 1;
                    }
                }
            }
            for (int64_t ch = 0; ch < channels; ++ch) {
                const int64_t plane = (batch * channels + ch) * in_pixels;
                double acc = 0;
                for (int64_t k = 0; k < corners; ++k) {
                    int64_t rem = k, off = 0;
                    double w = 1;
                    bool zero = false;
                    for (size_t d = r; d-- > 0;) {
                        const int64_t t = rem % taps;
                        rem /= taps;
                        w *= weight[d][static_cast<size_t>(t)];
                        int64_t i = base[d] + t;
                        if (i < 0 || i >= dims[d]) {
                            if (padding == Padding::Zeros) zero = true;
                            if (padding == Padding::Border)
                                i = std::clamp<int64_t>(i, 0, dims[d] - 1);
                            if (padding == Padding::Reflection)
                                i = static_cast<int64_t>(
                                    reflect(static_cast<double>(i), lo[d], hi[d]));
                        }
                        idx[d] = i;
                    }
                    if (zero) continue;
                    for (size_t d = 0; d < r; ++d) off = off * dims[d] + idx[d];
                    acc += w * load_double(x, plane + off);
                }
                store_double(y, (batch * channels + ch) * out_pixels + o, acc);
            }
        }
    });
    c.outputs.push_back(std::move(y));
}

void op_affine_grid(OpContext& c) {
    const Tensor& theta = c.input(0);
    require_float(c, theta, "theta");
    auto size = read_ints(c, c.input(1));
    const bool align = c.node.attr_int("align_corners", 0) != 0;
    const size_t r = size.size() >= 2 ? size.size() - 2 : 0;
    if ((r != 2 && r != 3) || theta.shape != std::vector<int64_t>{size[0], static_cast<int64_t>(r),
                                                                  static_cast<int64_t>(r + 1)})
        c.fail(cat("theta of shape ", shape_string(theta.shape), " and size of ", size.size(),
                   " elements: expected theta [N, 2, 3] with size [N, C, H, W], or [N, 3, 4] with "
                   "[N, C, D, H, W]"));
    std::vector<int64_t> out_shape{size[0]};
    out_shape.insert(out_shape.end(), size.begin() + 2, size.end());
    out_shape.push_back(static_cast<int64_t>(r));
    Tensor y = make_uninitialized_tensor(theta.dtype, out_shape);
    auto coord = [&](int64_t i, int64_t s) {
        if (align)
            return s == 1 ? -1.0 : -1.0 + 2.0 * static_cast<double>(i) / static_cast<double>(s - 1);
        return -1.0 + (2.0 * static_cast<double>(i) + 1) / static_cast<double>(s);
    };
    int64_t pixels = 1;
    for (size_t d = 0; d < r; ++d) pixels *= size[2 + d];
    const int64_t rows = static_cast<int64_t>(r), cols = rows + 1;
    for (int64_t b = 0; b < size[0]; ++b)
        for (int64_t p = 0; p < pixels; ++p) {
            // (x, y[, z], 1): x along the last axis.
            std::vector<double> in(static_cast<size_t>(cols), 1.0);
            int64_t rem = p;
            for (size_t d = r; d-- > 0;) {
                const int64_t s = size[2 + d];
                in[r - 1 - d] = coord(rem % s, s);
                rem /= s;
            }
            for (int64_t k = 0; k < rows; ++k) {
                double acc = 0;
                for (int64_t j = 0; j < cols; ++j)
                    acc +=
                        load_double(theta, (b * rows + k) * cols + j) * in[static_cast<size_t>(j)];
                store_double(y, (b * pixels + p) * rows + k, acc);
            }
        }
    c.outputs.push_back(std::move(y));
}

void op_col2im(OpContext& c) {
    const Tensor& input = c.input(0);
    require_float(c, input, "input");
    auto image = read_ints(c, c.input(1));
    auto block = read_ints(c, c.input(2));
    const size_t r = image.size();
    if (r == 0 || block.size() != r || input.shape.size() != 3)
        c.fail(
            cat("input of shape ", shape_string(input.shape), ", image_shape of ", image.size(),
                " and block_shape of ", block.size(),
                " elements: expected [N, C * prod(block), L] and two shapes of the same length"));
    auto attr_or = [&](const char* name, int64_t fallback, size_t count) {
        auto v = c.node.attr(name) ? c.node.attr_ints(name) : std::vector<int64_t>(count, fallback);
        if (v.size() != count)
            c.fail(cat("attribute '", name, "' has ", v.size(), " values, expected ", count));
        return v;
    };
    auto dil = attr_or("dilations", 1, r), strides = attr_or("strides", 1, r),
         pads = attr_or("pads", 0, 2 * r);
    int64_t kernel = 1, blocks = 1, pixels = 1;
    std::vector<int64_t> per_dim(r);
    for (size_t d = 0; d < r; ++d) {
        kernel *= block[d];
        pixels *= image[d];
        if (strides[d] < 1 || dil[d] < 1 || block[d] < 1)
            c.fail("strides, dilations and block_shape must be >= 1");
        per_dim[d] =
            (image[d] + pads[d] + pads[d + r] - dil[d] * (block[d] - 1) - 1) / strides[d] + 1;
        blocks *= per_dim[d];
    }
    if (input.shape[1] % kernel != 0 || input.shape[2] != blocks)
        c.fail(cat("input of shape ", shape_string(input.shape), ": expected [N, C * ", kernel,
                   ", ", blocks, "]"));
    const int64_t n = input.shape[0], channels = input.shape[1] / kernel;
    std::vector<int64_t> out_shape{n, channels};
    out_shape.insert(out_shape.end(), image.begin(), image.end());
    std::vector<double> acc(static_cast<size_t>(n * channels * pixels), 0.0);
    std::vector<int64_t> bidx(r), kidx(r);
    for (int64_t b = 0; b < n; ++b)
        for (int64_t ch = 0; ch < channels; ++ch)
            for (int64_t k = 0; k < kernel; ++k) {
                int64_t rem = k;
                for (size_t d = r; d-- > 0;) {
                    kidx[d] = rem % block[d];
                    rem /= block[d];
                }
                for (int64_t l = 0; l < blocks; ++l) {
                    int64_t lr = l, off = 0;
                    bool inside = true;
                    for (size_t d = r; d-- > 0;) {
                        bidx[d] = lr % per_dim[d];
                        lr /= per_dim[d];
                    }
                    for (size_t d = 0; d < r; ++d) {
                        const int64_t p = bidx[d] * strides[d] - pads[d] + kidx[d] * dil[d];
                        if (p < 0 || p >= image[d]) inside = false;
                        off = off * image[d] + p;
                    }
                    if (!inside) continue;
                    acc[static_cast<size_t>((b * channels + ch) * pixels + off)] +=
                        load_double(input, (b * channels * kernel + ch * kernel + k) * blocks + l);
                }
            }
    Tensor y = make_uninitialized_tensor(input.dtype, out_shape);
    for (size_t i = 0; i < acc.size(); ++i) store_double(y, static_cast<int64_t>(i), acc[i]);
    c.outputs.push_back(std::move(y));
}

void op_max_unpool(OpContext& c) {
    const Tensor& x = c.input(0);
    const Tensor& indices_t = c.input(1);
    require_float(c, x, "X");
    if (x.shape.size() < 3 || indices_t.shape != x.shape)
        c.fail(cat("X of shape ", shape_string(x.shape), " and I of shape ",
                   shape_string(indices_t.shape), ": expected equal shapes [N, C, ...]"));
    // The unpooled shape the indices refer to: (in - 1) * stride + kernel - pads.
    ConvShape g;
    g.in.assign(x.shape.begin() + 2, x.shape.end());
    g.kernel = c.node.attr_ints("kernel_shape");
    if (g.kernel.size() != g.in.size()) c.fail("kernel_shape does not match the spatial rank");
    resolve_window(c, g);
    std::vector<int64_t> inferred{x.shape[0], x.shape[1]};
    for (size_t d = 0; d < g.in.size(); ++d)
        inferred.push_back((g.in[d] - 1) * g.strides[d] + g.kernel[d] - g.pads_begin[d] -
                           g.pads_end[d]);
    std::vector<int64_t> out_shape = inferred;
    if (c.has_input(2)) {
        out_shape = read_ints(c, *c.inputs[2]);
        if (out_shape.size() != x.shape.size() || out_shape[0] != x.shape[0] ||
            out_shape[1] != x.shape[1])
            c.fail(cat("output_shape of ", out_shape.size(), " elements does not fit X of shape ",
                       shape_string(x.shape)));
    }
    Tensor y = make_tensor(x.dtype, out_shape);
    auto indices = read_ints(c, indices_t);
    int64_t total = 1;
    for (int64_t d : inferred) total *= d;
    for (size_t i = 0; i < indices.size(); ++i) {
        if (indices[i] < 0 || indices[i] >= total)
            c.fail(cat("I[", i, "] = ", indices[i], " is outside the unpooled shape ",
                       shape_string(inferred)));
        // The same coordinates in a larger output_shape (the extra rows and columns at the end).
        int64_t rem = indices[i], to = 0, scale = 1;
        for (size_t d = inferred.size(); d-- > 0;) {
            const int64_t coord = rem % inferred[d];
            rem /= inferred[d];
            if (coord >= out_shape[d])
                c.fail(cat("I[", i, "] = ", indices[i], " falls outside output_shape ",
                           shape_string(out_shape)));
            to += coord * scale;
            scale *= out_shape[d];
        }
        store_double(y, to, load_double(x, static_cast<int64_t>(i)));
    }
    c.outputs.push_back(std::move(y));
}

void op_deform_conv(OpContext& c) {
    const Tensor& x = c.input(0);
    const Tensor& w = c.input(1);
    const Tensor& offset = c.input(2);
    const Tensor* bias = c.has_input(3) ? c.inputs[3] : nullptr;
    const Tensor* mask = c.has_input(4) ? c.inputs[4] : nullptr;
    require_float(c, x, "X");
    require_float(c, w, "W");
    require_float(c, offset, "offset");
    if (x.shape.size() != 4 || w.shape.size() != 4)
        c.fail(cat("X of shape ", shape_string(x.shape), " and W of shape ", shape_string(w.shape),
                   ": expected 2-D convolution, X [N, C, H, W] and W [M, C / group, kH, kW]"));
    ConvShape g = conv_shape(c, x.shape, w.shape);
    const int64_t groups = c.node.attr_int("offset_group", 1);
    const int64_t kh = g.kernel[0], kw = g.kernel[1], taps = kh * kw;
    const int64_t oh = g.out[0], ow = g.out[1], ih = g.in[0], iw = g.in[1];
    if (groups < 1 || g.c_in % groups != 0)
        c.fail(cat("offset_group ", groups, " does not divide the ", g.c_in, " input channels"));
    if (offset.shape != std::vector<int64_t>{g.n, groups * 2 * taps, oh, ow})
        c.fail(cat("offset of shape ", shape_string(offset.shape), ": expected [", g.n, ", ",
                   groups * 2 * taps, ", ", oh, ", ", ow, "]"));
    if (mask && mask->shape != std::vector<int64_t>{g.n, groups * taps, oh, ow})
        c.fail(cat("mask of shape ", shape_string(mask->shape), ": expected [", g.n, ", ",
                   groups * taps, ", ", oh, ", ", ow, "]"));
    if (bias && bias->element_count() != g.c_out)
        c.fail(cat("B of ", bias->element_count(), " elements: expected ", g.c_out));
    const int64_t c_per_group = g.c_in / g.group, m_per_group = g.c_out / g.group;
    const int64_t c_per_offset = g.c_in / groups;
    Tensor y = make_uninitialized_tensor(x.dtype, g.output_shape());
    auto sample = [&](int64_t n, int64_t ch, double h, double v) {
        if (h <= -1 || h >= static_cast<double>(ih) || v <= -1 || v >= static_cast<double>(iw))
            return 0.0;
        const int64_t h0 = static_cast<int64_t>(std::floor(h)),
                      w0 = static_cast<int64_t>(std::floor(v));
        const double fh = h - static_cast<double>(h0), fw = v - static_cast<double>(w0);
        double acc = 0;
        for (int dy = 0; dy < 2; ++dy)
            for (int dx = 0; dx < 2; ++dx) {
                const int64_t yy = h0 + dy, xx = w0 + dx;
                if (yy < 0 || yy >= ih || xx < 0 || xx >= iw) continue;
                acc += (dy ? fh : 1 - fh) * (dx ? fw : 1 - fw) *
                       load_double(x, ((n * g.c_in + ch) * ih + yy) * iw + xx);
            }
        return acc;
    };
    parallel_for(c.options, g.n * g.c_out, 1, [&](int64_t b, int64_t e) {
        for (int64_t job = b; job < e; ++job) {
            const int64_t n = job / g.c_out, m = job % g.c_out, grp = m / m_per_group;
            for (int64_t p = 0; p < oh; ++p)
                for (int64_t q = 0; q < ow; ++q) {
                    double acc = bias ? load_double(*bias, m) : 0.0;
                    for (int64_t ci = 0; ci < c_per_group; ++ci) {
                        const int64_t ch = grp * c_per_group + ci, og = ch / c_per_offset;
                        for (int64_t i = 0; i < kh; ++i)
                            for (int64_t j = 0; j < kw; ++j) {
                                const int64_t tap = i * kw + j;
                                auto at = [&](const Tensor& t, int64_t k) {
                                    return load_double(t, ((n * t.shape[1] + k) * oh + p) * ow + q);
                                };
                                const double dh = at(offset, og * 2 * taps + 2 * tap);
                                const double dw = at(offset, og * 2 * taps + 2 * tap + 1);
                                const double h =
                                    static_cast<double>(p * g.strides[0] - g.pads_begin[0] +
                                                        i * g.dilations[0]) +
                                    dh;
                                const double v =
                                    static_cast<double>(q * g.strides[1] - g.pads_begin[1] +
                                                        j * g.dilations[1]) +
                                    dw;
                                double val = sample(n, ch, h, v);
                                if (mask) val *= at(*mask, og * taps + tap);
                                acc += val *
                                       load_double(w, ((m * c_per_group + ci) * kh + i) * kw + j);
                            }
                    }
                    store_double(y, ((n * g.c_out + m) * oh + p) * ow + q, acc);
                }
        }
    });
    c.outputs.push_back(std::move(y));
}

void op_roi_align(OpContext& c) {
    const Tensor& x = c.input(0);
    const Tensor& rois = c.input(1);
    require_float(c, x, "X");
    require_float(c, rois, "rois");
    auto batch = read_ints(c, c.input(2));
    if (x.shape.size() != 4 || rois.shape.size() != 2 || rois.shape[1] != 4 ||
        static_cast<int64_t>(batch.size()) != rois.shape[0])
        c.fail(cat("X of shape ", shape_string(x.shape), ", rois of shape ",
                   shape_string(rois.shape), " and ", batch.size(),
                   " batch_indices: expected [N, C, H, W], [R, 4] and R"));
    const std::string ctm = c.node.attr_string("coordinate_transformation_mode", "half_pixel");
    if (ctm != "half_pixel" && ctm != "output_half_pixel")
        c.fail(cat("coordinate_transformation_mode '", ctm,
                   "': expected half_pixel or output_half_pixel"));
    const std::string mode = c.node.attr_string("mode", "avg");
    if (mode != "avg" && mode != "max") c.fail(cat("mode '", mode, "': expected avg or max"));
    const int64_t out_h = c.node.attr_int("output_height", 1),
                  out_w = c.node.attr_int("output_width", 1);
    const int64_t ratio = c.node.attr_int("sampling_ratio", 0);
    const double scale = c.node.attr_float("spatial_scale", 1.0f);
    if (out_h < 1 || out_w < 1 || ratio < 0)
        c.fail("output sizes must be >= 1 and sampling_ratio >= 0");
    const bool half_pixel = ctm == "half_pixel";
    const int64_t n = x.shape[0], channels = x.shape[1], h = x.shape[2], w = x.shape[3],
                  r = rois.shape[0];
    for (size_t i = 0; i < batch.size(); ++i)
        if (batch[i] < 0 || batch[i] >= n)
            c.fail(cat("batch_indices[", i, "] = ", batch[i], " is outside [0, ", n, ")"));
    Tensor y = make_uninitialized_tensor(x.dtype, {r, channels, out_h, out_w});
    parallel_for(c.options, r * channels, 1, [&](int64_t b, int64_t e) {
        for (int64_t job = b; job < e; ++job) {
            const int64_t roi = job / channels, ch = job % channels;
            const double offset = half_pixel ? 0.5 : 0.0;
            const double x1 = load_double(rois, roi * 4) * scale - offset;
            const double y1 = load_double(rois, roi * 4 + 1) * scale - offset;
            double rw = load_double(rois, roi * 4 + 2) * scale - offset - x1;
            double rh = load_double(rois, roi * 4 + 3) * scale - offset - y1;
            if (!half_pixel) {
                rw = std::max(rw, 1.0);
                rh = std::max(rh, 1.0);
            }
            const double bin_h = rh / static_cast<double>(out_h),
                         bin_w = rw / static_cast<double>(out_w);
            const int64_t grid_h =
                ratio > 0 ? ratio
                          : static_cast<int64_t>(std::ceil(rh / static_cast<double>(out_h)));
            const int64_t grid_w =
                ratio > 0 ? ratio
                          : static_cast<int64_t>(std::ceil(rw / static_cast<double>(out_w)));
            const double count = static_cast<double>(std::max<int64_t>(grid_h * grid_w, 1));
            const int64_t plane = (batch[static_cast<size_t>(roi)] * channels + ch) * h * w;
            for (int64_t ph = 0; ph < out_h; ++ph)
                for (int64_t pw = 0; pw < out_w; ++pw) {
                    double acc = 0;
                    bool first = true;
                    for (int64_t iy = 0; iy < grid_h; ++iy)
                        for (int64_t ix = 0; ix < grid_w; ++ix) {
                            double yy = y1 + static_cast<double>(ph) * bin_h +
                                        (static_cast<double>(iy) + 0.5) * bin_h /
                                            static_cast<double>(grid_h);
                            double xx = x1 + static_cast<double>(pw) * bin_w +
                                        (static_cast<double>(ix) + 0.5) * bin_w /
                                            static_cast<double>(grid_w);
                            double corner[4] = {0, 0, 0, 0};
                            if (!(yy < -1.0 || yy > static_cast<double>(h) || xx < -1.0 ||
                                  xx > static_cast<double>(w))) {
                                yy = std::max(yy, 0.0);
                                xx = std::max(xx, 0.0);
                                int64_t y_lo = static_cast<int64_t>(yy),
                                        x_lo = static_cast<int64_t>(xx), y_hi, x_hi;
                                if (y_lo >= h - 1) {
                                    y_hi = y_lo = h - 1;
                                    yy = static_cast<double>(y_lo);
                                } else {
                                    y_hi = y_lo + 1;
                                }
                                if (x_lo >= w - 1) {
                                    x_hi = x_lo = w - 1;
                                    xx = static_cast<double>(x_lo);
                                } else {
                                    x_hi = x_lo + 1;
                                }
                                const double ly = yy - static_cast<double>(y_lo),
                                             lx = xx - static_cast<double>(x_lo);
                                const double hy = 1 - ly, hx = 1 - lx;
                                corner[0] = hy * hx * load_double(x, plane + y_lo * w + x_lo);
                                corner[1] = hy * lx * load_double(x, plane + y_lo * w + x_hi);
                                corner[2] = ly * hx * load_double(x, plane + y_hi * w + x_lo);
                                corner[3] = ly * lx * load_double(x, plane + y_hi * w + x_hi);
                            }
                            if (mode == "avg") {
                                acc += corner[0] + corner[1] + corner[2] + corner[3];
                            } else {
                                const double v =
                                    std::max({corner[0], corner[1], corner[2], corner[3]});
                                acc = first ? v : std::max(acc, v);
                                first = false;
                            }
                        }
                    store_double(y, ((roi * channels + ch) * out_h + ph) * out_w + pw,
                                 mode == "avg" ? acc / count : acc);
                }
        }
    });
    c.outputs.push_back(std::move(y));
}

void op_non_max_suppression(OpContext& c) {
    const Tensor& boxes = c.input(0);
    const Tensor& scores = c.input(1);
    require_float(c, boxes, "boxes");
    require_float(c, scores, "scores");
    if (boxes.shape.size() != 3 || boxes.shape[2] != 4 || scores.shape.size() != 3 ||
        scores.shape[0] != boxes.shape[0] || scores.shape[2] != boxes.shape[1])
        c.fail(cat("boxes of shape ", shape_string(boxes.shape), " and scores of shape ",
                   shape_string(scores.shape), ": expected [B, N, 4] and [B, C, N]"));
    const int64_t max_out =
        c.has_input(2) && c.inputs[2]->element_count() ? read_ints(c, *c.inputs[2]).at(0) : 0;
    const double iou_threshold =
        c.has_input(3) && c.inputs[3]->element_count() ? read_scalar(c, *c.inputs[3]) : 0.0;
    const bool has_score_threshold = c.has_input(4) && c.inputs[4]->element_count();
    const double score_threshold = has_score_threshold ? read_scalar(c, *c.inputs[4]) : 0.0;
    const bool center = c.node.attr_int("center_point_box", 0) != 0;
    const int64_t batches = boxes.shape[0], count = boxes.shape[1], classes = scores.shape[1];

    // A box as (y_min, x_min, y_max, x_max).
    auto corners = [&](int64_t b, int64_t i) {
        std::array<double, 4> v;
        for (int k = 0; k < 4; ++k)
            v[static_cast<size_t>(k)] = load_double(boxes, (b * count + i) * 4 + k);
        if (center)  // (x_center, y_center, width, height)
            return std::array<double, 4>{v[1] - v[3] / 2, v[0] - v[2] / 2, v[1] + v[3] / 2,
                                         v[0] + v[2] / 2};
        return std::array<double, 4>{std::min(v[0], v[2]), std::min(v[1], v[3]),
                                     std::max(v[0], v[2]), std::max(v[1], v[3])};
    };
    auto suppresses = [&](const std::array<double, 4>& a, const std::array<double, 4>& b) {
        const double ih = std::min(a[2], b[2]) - std::max(a[0], b[0]);
        const double iw = std::min(a[3], b[3]) - std::max(a[1], b[1]);
        if (ih <= 0 || iw <= 0) return false;
        const double area_a = (a[2] - a[0]) * (a[3] - a[1]), area_b = (b[2] - b[0]) * (b[3] - b[1]);
        if (area_a <= 0 || area_b <= 0) return false;
        const double inter = ih * iw;
        return inter / (area_a + area_b - inter) > iou_threshold;
    };
    std::vector<int64_t> selected;
    for (int64_t b = 0; b < batches; ++b)
        for (int64_t cl = 0; cl < classes; ++cl) {
            if (max_out <= 0) break;
            std::vector<int64_t> order;
            for (int64_t i = 0; i < count; ++i)
                if (!has_score_threshold ||
                    load_double(scores, (b * classes + cl) * count + i) > score_threshold)
                    order.push_back(i);
            std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) {
                return load_double(scores, (b * classes + cl) * count + i) >
                       load_double(scores, (b * classes + cl) * count + j);
            });
            std::vector<std::array<double, 4>> kept;
            for (int64_t i : order) {
                if (static_cast<int64_t>(kept.size()) >= max_out) break;
                auto box = corners(b, i);
                if (std::any_of(kept.begin(), kept.end(),
                                [&](const auto& k) { return suppresses(k, box); }))
                    continue;
                kept.push_back(box);
                selected.insert(selected.end(), {b, cl, i});
            }
        }
    Tensor y =
        make_uninitialized_tensor(DType::I64, {static_cast<int64_t>(selected.size() / 3), 3});
    std::copy(selected.begin(), selected.end(), y.mutable_values<int64_t>().begin());
    c.outputs.push_back(std::move(y));
}

}  // namespace ep::rt
