// The one explicit list of operators the runtime implements.
#pragma once

#include <string_view>
#include <vector>

#include "runtime-check/ops/op_context.h"

namespace ep::rt {

struct OpEntry {
    std::string_view domain;  // "" for the default ONNX domain
    std::string_view op_type;
    KernelFn kernel;
};

// The kernel for an op, or null when the runtime has none.
[[nodiscard]] KernelFn find_kernel(std::string_view domain, std::string_view op_type);
[[nodiscard]] const std::vector<OpEntry>& op_table();

}  // namespace ep::rt
