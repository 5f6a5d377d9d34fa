// The one explicit list of passes edgepack knows, by recipe name.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "passes/pass.h"

namespace ep {

// A fresh instance of the named pass, or null if there is none.
[[nodiscard]] std::unique_ptr<Pass> create_pass(std::string_view name);
// Names of every registered pass, in registry order.
[[nodiscard]] std::vector<std::string_view> pass_names();

}  // namespace ep
