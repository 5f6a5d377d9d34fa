// A recipe's gates or baseline tolerances without those that read a latency: tests judge
// numbers, bytes and exit codes, never timing (speed belongs in bench/).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace ep::test {

inline nlohmann::json without_latency(const nlohmann::json& limits) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [k, v] : limits.items())
        if (k.find("latency") == std::string::npos) out[k] = v;
    return out;
}

}  // namespace ep::test
