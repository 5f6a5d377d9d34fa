// Op functions of the reference runtime (one file per op family in ops/); the registry
// (op_registry.cpp) maps ONNX op types to them. Each is a plain reference implementation.
#pragma once

#include <span>

#include "runtime-check/ops/op_context.h"

namespace ep::rt {

struct ChainStep;

void op_abs(OpContext& c);
void op_add(OpContext& c);
void op_and(OpContext& c);
void op_arg_max(OpContext& c);
void op_arg_min(OpContext& c);
void op_average_pool(OpContext& c);
void op_batch_normalization(OpContext& c);
void op_cast(OpContext& c);
void op_ceil(OpContext& c);
void op_clip(OpContext& c);
void op_concat(OpContext& c);
void op_constant(OpContext& c);
void op_constant_of_shape(OpContext& c);
void op_conv(OpContext& c);
// Conv on float32 with an elementwise chain applied to its output as it is produced
// (elementwise_fusion.h's fused Conv + activation); an empty chain is op_conv.
void conv_with_epilogue(OpContext& c, std::span<const ChainStep> epilogue);
void op_conv_integer(OpContext& c);
void op_conv_transpose(OpContext& c);
void op_cos(OpContext& c);
void op_dequantize_linear(OpContext& c);
void op_div(OpContext& c);
void op_dynamic_quantize_linear(OpContext& c);
void op_elu(OpContext& c);
void op_equal(OpContext& c);
void op_erf(OpContext& c);
void op_exp(OpContext& c);
void op_expand(OpContext& c);
void op_flatten(OpContext& c);
void op_floor(OpContext& c);
void op_gather(OpContext& c);
void op_gelu(OpContext& c);
void op_gemm(OpContext& c);
void op_global_average_pool(OpContext& c);
void op_global_max_pool(OpContext& c);
void op_greater(OpContext& c);
void op_greater_or_equal(OpContext& c);
void op_hard_sigmoid(OpContext& c);
void op_hard_swish(OpContext& c);
void op_identity(OpContext& c);
void op_if(OpContext& c);
// Loop, Scan: ops_control.cpp
void op_loop(OpContext& c);
void op_scan(OpContext& c);
void op_layer_normalization(OpContext& c);
void op_leaky_relu(OpContext& c);
void op_less(OpContext& c);
void op_less_or_equal(OpContext& c);
void op_log(OpContext& c);
void op_log_softmax(OpContext& c);
void op_matmul(OpContext& c);
void op_matmul_integer(OpContext& c);
void op_matmul_nbits(OpContext& c);
void op_max(OpContext& c);
void op_max_pool(OpContext& c);
void op_mean(OpContext& c);
void op_min(OpContext& c);
void op_mod(OpContext& c);
void op_mul(OpContext& c);
void op_neg(OpContext& c);
void op_not(OpContext& c);
void op_or(OpContext& c);
void op_pad(OpContext& c);
void op_pow(OpContext& c);
void op_qlinear_conv(OpContext& c);
void op_qlinear_matmul(OpContext& c);
// com.microsoft.QGemm (ONNX Runtime's contrib op): the fused form of a QDQ Gemm.
void op_qgemm(OpContext& c);
// ai.edgepack.fused.QdqBinary: a QDQ Add / Sub / Mul / Div on 8-bit codes (ops_qdq.cpp).
void op_qdq_binary(OpContext& c);
void op_quantize_linear(OpContext& c);
void op_range(OpContext& c);
void op_reciprocal(OpContext& c);
void op_reduce_l1(OpContext& c);
void op_reduce_l2(OpContext& c);
void op_reduce_log_sum(OpContext& c);
void op_reduce_log_sum_exp(OpContext& c);
void op_reduce_max(OpContext& c);
void op_reduce_mean(OpContext& c);
void op_reduce_min(OpContext& c);
void op_reduce_prod(OpContext& c);
void op_reduce_sum(OpContext& c);
void op_reduce_sum_square(OpContext& c);
void op_relu(OpContext& c);
// Relu over float32 data in place, the same values as op_relu: the executor's path for a
// Relu whose input is not read after it.
void relu_f32_in_place(const ExecOptions& options, float* x, int64_t n);
void op_reshape(OpContext& c);
void op_resize(OpContext& c);
void op_round(OpContext& c);
void op_shape(OpContext& c);
void op_sigmoid(OpContext& c);
void op_sign(OpContext& c);
void op_sin(OpContext& c);
void op_size(OpContext& c);
void op_slice(OpContext& c);
void op_softmax(OpContext& c);
void op_softplus(OpContext& c);
void op_split(OpContext& c);
void op_sqrt(OpContext& c);
void op_squeeze(OpContext& c);
void op_sub(OpContext& c);
void op_sum(OpContext& c);
void op_tanh(OpContext& c);
void op_tile(OpContext& c);
void op_top_k(OpContext& c);
void op_transpose(OpContext& c);
void op_unsqueeze(OpContext& c);
void op_where(OpContext& c);
void op_xor(OpContext& c);

// ops_activation.cpp, ops_indexing.cpp, and Hardmax / InstanceNormalization in
// ops_reduce.cpp
void op_acos(OpContext& c);
void op_acosh(OpContext& c);
void op_asin(OpContext& c);
void op_asinh(OpContext& c);
void op_atan(OpContext& c);
void op_atanh(OpContext& c);
void op_cast_like(OpContext& c);
void op_celu(OpContext& c);
void op_cosh(OpContext& c);
void op_cum_sum(OpContext& c);
void op_depth_to_space(OpContext& c);
void op_dropout(OpContext& c);
void op_eye_like(OpContext& c);
void op_gather_elements(OpContext& c);
void op_gather_nd(OpContext& c);
void op_hardmax(OpContext& c);
void op_instance_normalization(OpContext& c);
void op_is_inf(OpContext& c);
void op_is_nan(OpContext& c);
void op_non_zero(OpContext& c);
void op_one_hot(OpContext& c);
void op_prelu(OpContext& c);
void op_scatter_elements(OpContext& c);
void op_scatter_nd(OpContext& c);
void op_selu(OpContext& c);
void op_shrink(OpContext& c);
void op_sinh(OpContext& c);
void op_softsign(OpContext& c);
void op_space_to_depth(OpContext& c);
void op_tan(OpContext& c);
void op_thresholded_relu(OpContext& c);
void op_trilu(OpContext& c);

// ops_loss.cpp
void op_negative_log_likelihood_loss(OpContext& c);
void op_softmax_cross_entropy_loss(OpContext& c);

// ops_bitwise.cpp
void op_bit_shift(OpContext& c);
void op_bitwise_and(OpContext& c);
void op_bitwise_not(OpContext& c);
void op_bitwise_or(OpContext& c);
void op_bitwise_xor(OpContext& c);

// ops_rearrange.cpp
void op_center_crop_pad(OpContext& c);
void op_compress(OpContext& c);
void op_reverse_sequence(OpContext& c);
void op_tensor_scatter(OpContext& c);
void op_unique(OpContext& c);

// ops_normalization.cpp
void op_group_normalization(OpContext& c);
void op_lp_normalization(OpContext& c);
void op_lrn(OpContext& c);
void op_mean_variance_normalization(OpContext& c);

// ops_einsum.cpp
void op_det(OpContext& c);
void op_einsum(OpContext& c);

// Mish / Swish in ops_activation.cpp
void op_mish(OpContext& c);
void op_swish(OpContext& c);

// LpPool in ops_linalg.cpp
void op_lp_pool(OpContext& c);
// recurrent.cpp
void op_gru(OpContext& c);
void op_lstm(OpContext& c);
void op_rnn(OpContext& c);

// ops_audio.cpp
void op_blackman_window(OpContext& c);
void op_dft(OpContext& c);
void op_hamming_window(OpContext& c);
void op_hann_window(OpContext& c);
void op_mel_weight_matrix(OpContext& c);
void op_stft(OpContext& c);

// ops_spatial.cpp
void op_affine_grid(OpContext& c);
void op_col2im(OpContext& c);
void op_deform_conv(OpContext& c);
void op_grid_sample(OpContext& c);
void op_max_unpool(OpContext& c);
void op_non_max_suppression(OpContext& c);
void op_roi_align(OpContext& c);

// ops_attention.cpp
void op_attention(OpContext& c);
void op_group_query_attention(OpContext& c);
void op_rms_normalization(OpContext& c);
void op_rotary_embedding(OpContext& c);
// com.microsoft RotaryEmbedding (position_ids required, caches indexed by position)
void op_rotary_embedding_ms(OpContext& c);
void op_simplified_layer_normalization(OpContext& c);
void op_skip_simplified_layer_normalization(OpContext& c);
// com.microsoft SkipLayerNormalization, FastGelu, BiasGelu, QuickGelu
void op_bias_gelu(OpContext& c);
void op_fast_gelu(OpContext& c);
void op_multi_head_attention(OpContext& c);
void op_quick_gelu(OpContext& c);
void op_skip_layer_normalization(OpContext& c);

}  // namespace ep::rt
