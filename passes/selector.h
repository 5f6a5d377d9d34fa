// Include/exclude glob selection of tensors and nodes, as recipes write it:
//   {"include": ["*.weight", "layers.[0-3].*"], "exclude": ["*embed*"]}
// A name is selected when it matches some include pattern (default: "*") and no exclude
// pattern. Patterns: '*' any run of characters, '?' one character, '[abc]' / '[a-z]' /
// '[!x]' a class. Matching is on the whole name.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace ep {

[[nodiscard]] bool glob_match(std::string_view pattern, std::string_view name);

class Selector {
  public:
    Selector() = default;
    Selector(std::vector<std::string> include, std::vector<std::string> exclude);
    // From a pass entry's "include"/"exclude" fields (both optional).
    [[nodiscard]] static Selector from_options(const nlohmann::json& options);
    [[nodiscard]] bool selects(std::string_view name) const;

  private:
    std::vector<std::string> include_{"*"};
    std::vector<std::string> exclude_;
};

}  // namespace ep
