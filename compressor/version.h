#pragma once
#include <string_view>
namespace ep {
[[nodiscard]] std::string_view edgepack_version();
}  // namespace ep
