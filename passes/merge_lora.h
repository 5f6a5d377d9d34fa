// merge-lora: merges PEFT LoRA adapters into the base model's weights (docs/lora.md).
//
// Before: a base model (a safetensors checkpoint by module name, or an ONNX graph by graph
// position, passes/lora_targets.h) and one or more PEFT adapter directories
// (adapter_config.json + adapter_model.safetensors).
// After:  every targeted weight W [out, in] (stored [in, out] when the layout says so) is
//
//     W' = W + s * B A                 s = lora_alpha / r  (use_rslora: lora_alpha / sqrt(r))
//     W' = m / ||W + s B A||_row * (W + s B A)      with use_dora (m the magnitude vector,
//                                                   the norm per output row, as PEFT merges)
//
// with A = lora_A [r, in], B = lora_B [out, r], r and lora_alpha from rank_pattern /
// alpha_pattern when a pattern matches the module (PEFT's rule: "(.*\.)?(key)$"). A lora_B
// bias adds s * b to the layer's bias; a saved tensor (modules_to_save, bias "all" /
// "lora_only") replaces the base tensor of the same name. Arithmetic in double, the result
// rounded once to the base dtype (f32 / f16 / bf16; f16 and bf16 through f32).
//
// Several adapters (`adapters` + `weights` w_i), following PEFT's add_weighted_adapter:
//   cat           A = [A_1; A_2; ...], B = [w_1 s_1 B_1, w_2 s_2 B_2, ...]: exactly
//                 W + sum_i w_i s_i B_i A_i (rank r_1 + r_2 + ...)
//   linear        A = sum_i v_i A_i, B = sum_i v_i B_i with v_i = sqrt(w_i s_i) (equal ranks)
//   ties, dare_linear, dare_ties, magnitude_prune: PEFT's merge_utils on A and on B (density,
//                 majority_sign_method; DARE keeps each value with probability density from
//                 a generator seeded by `seed`, the module and the adapter, and rescales the
//                 kept values by 1 / density).
// `subtract: true` merges -delta instead: run on the merged model, it gives the base back
// within rounding (not for DoRA, whose row norms are lost; saved tensors are skipped).
//
// Every check runs before anything changes: the adapter files and config fields (r,
// lora_alpha, target_modules, ...), ranks against the config, shapes and dtypes against
// the base, every adapter module and saved tensor with a target (else an InputError
// listing them, unless allow_unmatched). Self-check: while each merged tensor is written,
// W' x is compared with W x + B (A x) on seeded random probes, to 1e-5 relative plus the
// rounding of the base dtype; a miss is an InternalError naming the tensor.
//
// On a weights-only checkpoint the pass offers plan_streaming: each merged tensor is
// computed a chunk of rows at a time from its base tensor and the small adapter factors.
#pragma once

#include <memory>

#include "passes/pass.h"

namespace ep {

[[nodiscard]] std::unique_ptr<Pass> make_merge_lora_pass();

}  // namespace ep
