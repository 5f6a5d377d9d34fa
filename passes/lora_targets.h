// Where each module of a PEFT LoRA adapter lands in a model (merge-lora, issue 13).
//
// A PEFT adapter names its modules by the Hugging Face module path of the base model
// ("base_model.model.transformer.h.0.attn.c_attn" with tensors "...lora_A.weight" [r, in]
// and "...lora_B.weight" [out, r]). On a safetensors checkpoint the target is found by name
// ("transformer.h.0.attn.c_attn.weight", the PEFT prefix "base_model.model." dropped). On an
// ONNX graph exporters rename weights ("onnx::MatMul_123"), so the target is found through
// the graph: first a node or initializer name that contains the module path (with "." or
// "/" separators, as torch.onnx writes "/transformer/h.0/attn/c_attn/MatMul"), else by
// matching shapes in layer order (the k-th module of a shape [in, out] to the k-th
// MatMul / Gemm weight of that shape in topological order), which the report states.
//
// Every adapter module must find exactly one target: a module with none, or with two
// candidates it cannot tell apart, is an InputError listing the module names (the pass's
// `allow_unmatched` turns the first into a warning).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/ir.h"

namespace ep {

struct AdapterModule {
    std::string module;                         // the adapter's module path, PEFT prefix removed:
                                                // "transformer.h.0.attn.c_attn"
    int64_t in_features = 0, out_features = 0;  // from lora_A [r, in] and lora_B [out, r]
};

struct LoraTarget {
    std::string module;  // as in AdapterModule
    std::string tensor;  // the initializer of `model` that holds the weight ("" if none found)
    // Layout of that weight: true when stored [in, out] (ONNX MatMul B, GPT-2 Conv1D with
    // fan_in_fan_out), false when [out, in] (nn.Linear, Gemm transB = 1).
    bool in_out = false;
    std::string how;  // "name", "node name", "shape order": how it was found (for the report)
};

// Module paths in layer order: "h.2" before "h.10" (runs of digits compare as numbers).
[[nodiscard]] bool natural_less(const std::string& a, const std::string& b);

// One entry per module, same order. `fan_in_fan_out` is the adapter config's flag (the
// layout of a checkpoint's weight; ignored on a graph, where the reading op decides).
// Throws InputError listing every module without a target unless allow_unmatched (then its
// `tensor` is empty), and every module with an ambiguous one.
[[nodiscard]] std::vector<LoraTarget> find_lora_targets(const Model& model,
                                                        const std::vector<AdapterModule>& modules,
                                                        bool fan_in_fan_out, bool allow_unmatched);

}  // namespace ep
