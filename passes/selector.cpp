// Include/exclude glob selection (contract in selector.h).
//
// glob_match is iterative with one backtracking point for the last '*' seen, so it runs in
// O(|pattern| * |name|) at worst and never recurses: a hostile pattern cannot blow the stack.
// A '[' without a closing ']' matches a literal '['.
#include "passes/selector.h"

#include <optional>

#include "ir/error.h"

namespace ep {

namespace {

// Matches the class starting at pattern[p] == '[' against c. Sets `end` to the index just
// past the closing ']'; returns nullopt when the class is not closed (then '[' is literal).
std::optional<bool> match_class(std::string_view pattern, size_t p, char c, size_t& end) {
    size_t i = p + 1;
    bool negate = false;
    if (i < pattern.size() && (pattern[i] == '!' || pattern[i] == '^')) {
        negate = true;
        ++i;
    }
    bool matched = false;
    bool first = true;
    while (i < pattern.size() && (first || pattern[i] != ']')) {
        first = false;
        char lo = pattern[i];
        if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
            char hi = pattern[i + 2];
            if (lo <= c && c <= hi) matched = true;
            i += 3;
        } else {
            if (lo == c) matched = true;
            ++i;
        }
    }
    if (i >= pattern.size()) return std::nullopt;
    end = i + 1;
    return matched != negate;
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view name) {
    size_t p = 0, n = 0;
    size_t star_p = std::string_view::npos, star_n = 0;
    while (n < name.size()) {
        if (p < pattern.size()) {
            char pc = pattern[p];
            if (pc == '*') {
                star_p = p++;
                star_n = n;
                continue;
            }
            if (pc == '?') {
                ++p;
                ++n;
                continue;
            }
            if (pc == '[') {
                size_t end = 0;
                auto m = match_class(pattern, p, name[n], end);
                if (m.has_value()) {
                    if (*m) {
                        p = end;
                        ++n;
                        continue;
                    }
                } else if (name[n] == '[') {
                    ++p;
                    ++n;
                    continue;
                }
            } else if (pc == name[n]) {
                ++p;
                ++n;
                continue;
            }
        }
        if (star_p == std::string_view::npos) return false;
        p = star_p + 1;
        n = ++star_n;
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

Selector::Selector(std::vector<std::string> include, std::vector<std::string> exclude)
    : include_(std::move(include)), exclude_(std::move(exclude)) {
    if (include_.empty()) include_ = {"*"};
}

namespace {

std::vector<std::string> string_list(const nlohmann::json& options, const char* key) {
    std::vector<std::string> out;
    if (!options.is_object() || !options.contains(key)) return out;
    const auto& v = options.at(key);
    if (!v.is_array()) throw InputError(cat(key, ": expected a list of strings"));
    for (size_t i = 0; i < v.size(); ++i) {
        if (!v[i].is_string()) throw InputError(cat(key, "[", i, "]: expected a string"));
        out.push_back(v[i].get<std::string>());
    }
    return out;
}

}  // namespace

Selector Selector::from_options(const nlohmann::json& options) {
    return Selector(string_list(options, "include"), string_list(options, "exclude"));
}

bool Selector::selects(std::string_view name) const {
    bool included = false;
    for (const auto& p : include_)
        if (glob_match(p, name)) {
            included = true;
            break;
        }
    if (!included) return false;
    for (const auto& p : exclude_)
        if (glob_match(p, name)) return false;
    return true;
}

}  // namespace ep
