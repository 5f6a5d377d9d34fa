#include "runtime-check/ops/conv_shape.h"

#include <algorithm>
#include <string>

#include "ir/checked.h"

namespace ep::rt {

int64_t ConvShape::in_pixels() const {
    int64_t p = 1;
    for (int64_t d : in) p *= d;
    return p;
}

int64_t ConvShape::out_pixels() const {
    int64_t p = 1;
    for (int64_t d : out) p *= d;
    return p;
}

int64_t ConvShape::kernel_size() const {
    int64_t p = 1;
    for (int64_t d : kernel) p *= d;
    return p;
}

std::vector<int64_t> ConvShape::output_shape() const {
    std::vector<int64_t> s{n, c_out};
    s.insert(s.end(), out.begin(), out.end());
    return s;
}

AutoPad read_auto_pad(const OpContext& c) {
    const Attribute* a = c.node.attr("auto_pad");
    if (!a || a->s == "NOTSET") return AutoPad::NotSet;
    if (a->s == "VALID") return AutoPad::Valid;
    if (a->s == "SAME_UPPER") return AutoPad::SameUpper;
    if (a->s == "SAME_LOWER") return AutoPad::SameLower;
    c.fail(cat("auto_pad '", a->s, "' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER"));
}

void resolve_window(const OpContext& c, ConvShape& g, const WindowOptions& options) {
    const size_t s = g.in.size();
    g.strides = c.node.attr_ints("strides");
    g.dilations = c.node.attr_ints("dilations");
    std::vector<int64_t> pads = c.node.attr_ints("pads");
    if (g.strides.empty()) g.strides.assign(s, 1);
    if (g.dilations.empty()) g.dilations.assign(s, 1);
    if (pads.empty()) pads.assign(2 * s, 0);
    if (g.strides.size() != s || g.dilations.size() != s || pads.size() != 2 * s)
        c.fail(cat("strides, dilations or pads do not match the spatial rank ", s));
    if (options.transposed && !options.output_padding.empty() && options.output_padding.size() != s)
        c.fail(cat("output_padding does not match the spatial rank ", s));
    const AutoPad auto_pad = read_auto_pad(c);
    const bool same = auto_pad == AutoPad::SameUpper || auto_pad == AutoPad::SameLower;
    g.pads_begin.assign(s, 0);
    g.pads_end.assign(s, 0);
    g.out.assign(s, 0);
    // Attributes come from the file: bound them so that no size below can overflow.
    constexpr int64_t kMaxAttr = int64_t{1} << 31;
    for (size_t i = 0; i < s; ++i) {
        const int64_t st = g.strides[i], dil = g.dilations[i], in = g.in[i];
        if (st <= 0 || dil <= 0) c.fail("strides and dilations must be positive");
        if (g.kernel[i] <= 0)
            c.fail(cat("kernel size ", g.kernel[i], " on spatial axis ", i, " is not positive"));
        if (pads[i] < 0 || pads[i + s] < 0) c.fail("pads must not be negative");
        if (st > kMaxAttr || dil > kMaxAttr || pads[i] > kMaxAttr || pads[i + s] > kMaxAttr ||
            g.kernel[i] > kMaxAttr || in > kMaxAttr)
            c.fail(cat("strides, dilations, pads or sizes on spatial axis ", i, " exceed 2^31"));
        const int64_t k = (g.kernel[i] - 1) * dil + 1;
        if (options.transposed) {
            const int64_t op = options.output_padding.empty() ? 0 : options.output_padding[i];
            if (same) {
                const int64_t out = in * st;
                const int64_t total = std::max<int64_t>(0, st * (in - 1) + op + k - out);
                g.pads_begin[i] = auto_pad == AutoPad::SameUpper ? total / 2 : total - total / 2;
                g.pads_end[i] = total - g.pads_begin[i];
                g.out[i] = out;
            } else {  // explicit pads, with VALID too
                g.pads_begin[i] = pads[i];
                g.pads_end[i] = pads[i + s];
                g.out[i] = st * (in - 1) + op + k - g.pads_begin[i] - g.pads_end[i];
            }
            continue;
        }
        if (same) {
            const int64_t out = (in + st - 1) / st;
            const int64_t total = std::max<int64_t>(0, (out - 1) * st + k - in);
            g.pads_begin[i] = auto_pad == AutoPad::SameUpper ? total / 2 : total - total / 2;
            g.pads_end[i] = total - g.pads_begin[i];
            g.out[i] = out;
            continue;
        }
        if (auto_pad == AutoPad::NotSet) {
            g.pads_begin[i] = pads[i];
            g.pads_end[i] = pads[i + s];
        }
        const int64_t span = in + g.pads_begin[i] + g.pads_end[i] - k;
        if (span < 0)
            c.fail(cat("the kernel (", k, " with dilation) is larger than the padded input (",
                       in + g.pads_begin[i] + g.pads_end[i], ") on spatial axis ", i));
        int64_t out = options.ceil_mode ? (span + st - 1) / st + 1 : span / st + 1;
        // With ceil_mode the last window must start inside the input or left padding.
        if (options.ceil_mode && (out - 1) * st >= in + g.pads_begin[i]) --out;
        g.out[i] = out;
    }
}

ConvShape conv_shape(const OpContext& c, const std::vector<int64_t>& x_shape,
                     const std::vector<int64_t>& w_shape) {
    if (x_shape.size() < 3 || w_shape.size() != x_shape.size())
        c.fail(cat("expects X [N, C, ...] and W [M, C/group, ...] of the same rank >= 3, found ",
                   shape_string(x_shape), " and ", shape_string(w_shape)));
    ConvShape g;
    g.n = x_shape[0];
    g.c_in = x_shape[1];
    g.c_out = w_shape[0];
    g.group = c.node.attr_int("group", 1);
    g.in.assign(x_shape.begin() + 2, x_shape.end());
    g.kernel.assign(w_shape.begin() + 2, w_shape.end());
    if (std::vector<int64_t> ks = c.node.attr_ints("kernel_shape"); !ks.empty() && ks != g.kernel)
        c.fail(cat("kernel_shape ", shape_string(ks), " does not match W ", shape_string(w_shape)));
    if (g.group <= 0 || g.c_in % g.group != 0 || g.c_out % g.group != 0 ||
        w_shape[1] != g.c_in / g.group)
        c.fail(cat("channels do not match: X ", shape_string(x_shape), ", W ",
                   shape_string(w_shape), ", group ", g.group));
    for (int64_t k : g.kernel)
        if (k <= 0) c.fail(cat("kernel ", shape_string(g.kernel), " has an empty dimension"));
    if (!checked_element_count(x_shape) || !checked_element_count(w_shape))
        c.fail("input shapes are too large");
    resolve_window(c, g);
    if (!checked_element_count(g.output_shape())) c.fail("the output shape is too large");
    return g;
}

}  // namespace ep::rt
