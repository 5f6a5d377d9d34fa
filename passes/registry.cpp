// The one explicit list of passes (no static initialisers): a new pass adds its factory
// declaration and one row to kPasses, in the order `edgepack` lists them.
#include "passes/registry.h"

#include <cstdio>

#include "ir/error.h"

namespace ep {

// Factories, one per pass file.
std::unique_ptr<Pass> make_promote_constants_pass();  // passes/promote_constants.cpp
std::unique_ptr<Pass> make_fold_batchnorm_pass();     // passes/fold_batchnorm.cpp
std::unique_ptr<Pass> make_quantize_weights_pass();   // passes/quantize_weights.cpp
std::unique_ptr<Pass> make_quantize_static_pass();    // passes/quantize_static.cpp
std::unique_ptr<Pass> make_quantize_dynamic_pass();   // passes/quantize_dynamic.cpp
std::unique_ptr<Pass> make_prune_structured_pass();   // passes/prune_structured.cpp
std::unique_ptr<Pass> make_prune_pass();              // passes/prune.cpp
std::unique_ptr<Pass> make_merge_lora_pass();         // passes/merge_lora.cpp

namespace {

struct PassEntry {
    std::string_view name;
    std::unique_ptr<Pass> (*make)();
};

constexpr PassEntry kPasses[] = {
    {"promote-constants", make_promote_constants_pass},
    {"fold-batchnorm", make_fold_batchnorm_pass},
    {"quantize-weights", make_quantize_weights_pass},
    {"quantize-static", make_quantize_static_pass},
    {"quantize-dynamic", make_quantize_dynamic_pass},
    {"prune-structured", make_prune_structured_pass},
    {"prune", make_prune_pass},
    {"merge-lora", make_merge_lora_pass},
};

}  // namespace

std::string_view pass_kind_name(PassKind kind) {
    switch (kind) {
        case PassKind::Cleanup:
            return "cleanup";
        case PassKind::Quantization:
            return "quantization";
        case PassKind::Pruning:
            return "pruning";
        case PassKind::Merge:
            return "merge";
        case PassKind::Evaluation:
            return "evaluation";
    }
    return "unknown";
}

std::string quantized_group_line(const QuantizedGroup& g) {
    const std::string what = g.op == "tensor" ? "tensor" : g.op + " weight";
    return cat(g.tensors, " ", what, g.tensors == 1 ? "" : "s", " ",
               g.encoding == "int8c" ? std::string("int8 per channel") : g.encoding, " with ",
               g.method, " (", g.input_bytes, " -> ", g.output_bytes, " bytes)");
}

std::string pruned_tensor_line(const PrunedTensor& t) {
    char percent[32];
    std::snprintf(percent, sizeof percent, "%.1f%%", 100.0 * t.sparsity);
    const std::string what = t.op == "tensor" ? "tensor" : t.op + " weight";
    const std::string stored = t.storage == "removed" ? "removed" : "stored " + t.storage;
    return cat(t.name, " (", what, "): ", percent, " pruned by ", t.method, ", ", t.pattern, ", ",
               stored, " (", t.input_bytes, " -> ", t.output_bytes, " bytes)");
}

std::unique_ptr<Pass> create_pass(std::string_view name) {
    for (const auto& entry : kPasses)
        if (entry.name == name) return entry.make();
    return nullptr;
}

std::vector<std::string_view> pass_names() {
    std::vector<std::string_view> names;
    for (const auto& entry : kPasses) names.push_back(entry.name);
    return names;
}

}  // namespace ep
