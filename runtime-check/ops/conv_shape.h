// The one convolution geometry of the runtime: channel counts, strides, dilations, resolved
// pads (explicit or auto_pad) and output spatial sizes, for Conv, ConvTranspose, pooling,
// ConvInteger and QLinearConv.
//
//   k[d]   = (kernel[d] - 1) * dilation[d] + 1                      (the dilated kernel)
//   out[d] = floor((in[d] + pad_begin[d] + pad_end[d] - k[d]) / stride[d]) + 1
//            (ceil instead of floor with pooling's ceil_mode, the last window then starting
//            inside the input or the left padding)
//   auto_pad SAME_UPPER / SAME_LOWER: out[d] = ceil(in[d] / stride[d]), the total padding
//   split evenly with the odd one at the end (UPPER) or the beginning (LOWER); VALID: no pads.
//   Transposed (ConvTranspose): out[d] = stride[d] * (in[d] - 1) + output_padding[d] + k[d]
//            - pad_begin[d] - pad_end[d]; with SAME_*, out[d] = in[d] * stride[d] and the
//            total padding split the same way.
// Every attribute is checked against the spatial rank; a failure names the node.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime-check/ops/op_context.h"

namespace ep::rt {

enum class AutoPad { NotSet, Valid, SameUpper, SameLower };

// The node's auto_pad attribute (NOTSET when absent); fails naming the node on an unknown value.
[[nodiscard]] AutoPad read_auto_pad(const OpContext& c);

struct ConvShape {
    int64_t n = 0, c_in = 0, c_out = 0, group = 1;
    std::vector<int64_t> in, kernel, out;  // spatial sizes
    std::vector<int64_t> strides, dilations, pads_begin, pads_end;

    [[nodiscard]] size_t spatial_rank() const { return in.size(); }
    [[nodiscard]] int64_t in_pixels() const;
    [[nodiscard]] int64_t out_pixels() const;
    [[nodiscard]] int64_t kernel_size() const;
    [[nodiscard]] std::vector<int64_t> output_shape() const;  // [N, C_out, out...]
};

struct WindowOptions {
    bool ceil_mode = false;               // pooling: round the output size up
    bool transposed = false;              // ConvTranspose
    std::vector<int64_t> output_padding;  // ConvTranspose: per spatial axis, or empty (0)
};

// Reads strides, dilations, pads and auto_pad from the node and sets g.strides,
// g.dilations, g.pads_begin, g.pads_end and g.out from g.in and g.kernel.
void resolve_window(const OpContext& c, ConvShape& g, const WindowOptions& options = {});

// X [N, C, in...] and W [C_out, C / group, kernel...]; reads group, kernel_shape, strides,
// dilations, pads and auto_pad from the node.
[[nodiscard]] ConvShape conv_shape(const OpContext& c, const std::vector<int64_t>& x_shape,
                                   const std::vector<int64_t>& w_shape);

}  // namespace ep::rt
