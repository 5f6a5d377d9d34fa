// Geometry of a convolution node (Conv, ConvInteger, QLinearConv): channel counts,
// strides, dilations, resolved pads (explicit or auto_pad) and output spatial sizes.
//
//   out[d] = floor((in[d] + pad_begin[d] + pad_end[d] - ((kernel[d] - 1) * dilation[d] + 1))
//                  / stride[d]) + 1
//   auto_pad SAME_UPPER / SAME_LOWER: out[d] = ceil(in[d] / stride[d]), the total padding
//   split evenly with the odd one at the end (UPPER) or the beginning (LOWER); VALID: no pads.
// Every attribute is checked against the spatial rank; a failure names the node.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime-check/ops/op_context.h"

namespace ep::rt {

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

// X [N, C, in...] and W [C_out, C / group, kernel...]; reads group, kernel_shape, strides,
// dilations, pads and auto_pad from the node.
[[nodiscard]] ConvShape conv_shape(const OpContext& c, const std::vector<int64_t>& x_shape,
                                   const std::vector<int64_t>& w_shape);

}  // namespace ep::rt
