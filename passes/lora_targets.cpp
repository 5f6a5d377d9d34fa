// find_lora_targets (lora_targets.h): where each adapter module lands.
//
// Checkpoint (no nodes): the target is the 2-D tensor "<path>.weight" whose module path
// shares the longest dotted suffix with the adapter module's path, one being a suffix of
// the other ("transformer.h.0.attn.c_attn" finds "transformer.h.0.attn.c_attn.weight",
// or "h.0.attn.c_attn.weight" in a checkpoint saved without the "transformer." prefix).
//
// Graph: the candidates are the 2-D initializers a MatMul reads as B (stored [in, out]),
// also through a Transpose (then [out, in]), or a Gemm reads as B ([in, out] unless
// transB). A module's name score on a candidate is the number of trailing components of
// its path that appear, at component boundaries, in the initializer's name or in a reading
// node's name ('/' read as '.'). The best-scoring candidate wins; a tie is broken by shape
// alone, else it is ambiguous. Modules no name reaches fall back to shape order: per
// [in -> out] shape, the modules (in natural order: "h.2" before "h.10") and the unclaimed
// candidates of that shape (in node order) must be as many, and no two of those modules
// may sit in one layer (same path up to its last number), since shape order cannot tell
// two weights of one layer apart; otherwise the modules are ambiguous.
#include "passes/lora_targets.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <unordered_map>
#include <utility>

#include "ir/error.h"

namespace ep {

namespace {

std::vector<std::string> split_path(std::string_view path) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t i = 0; i <= path.size(); ++i) {
        if (i == path.size() || path[i] == '.') {
            if (i > start) parts.emplace_back(path.substr(start, i - start));
            start = i + 1;
        }
    }
    return parts;
}

std::string join_path(const std::vector<std::string>& parts, size_t from) {
    std::string s;
    for (size_t i = from; i < parts.size(); ++i) {
        if (!s.empty()) s += '.';
        s += parts[i];
    }
    return s;
}

// True when `needle` occurs in `hay` with a '.' (or the end) on both sides.
bool contains_at_boundaries(std::string_view hay, std::string_view needle) {
    for (size_t pos = hay.find(needle); pos != std::string_view::npos;
         pos = hay.find(needle, pos + 1)) {
        bool left = pos == 0 || hay[pos - 1] == '.';
        size_t end = pos + needle.size();
        bool right = end == hay.size() || hay[end] == '.';
        if (left && right) return true;
    }
    return false;
}

// How many trailing components of `module` occur together in `name` ('/' read as '.').
size_t name_score(const std::vector<std::string>& module, std::string name) {
    std::replace(name.begin(), name.end(), '/', '.');
    for (size_t from = 0; from < module.size(); ++from)
        if (contains_at_boundaries(name, join_path(module, from))) return module.size() - from;
    return 0;
}

// Trailing components two dotted paths share, when one is a suffix of the other; 0 if not.
size_t suffix_score(const std::vector<std::string>& a, const std::vector<std::string>& b) {
    size_t n = std::min(a.size(), b.size());
    for (size_t i = 0; i < n; ++i)
        if (a[a.size() - 1 - i] != b[b.size() - 1 - i]) return 0;
    return n;
}

bool is_number(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c)) != 0;
    });
}

// The module's layer: its path up to and including its last numeric component ("" if none).
std::string layer_key(const std::string& module) {
    auto parts = split_path(module);
    for (size_t i = parts.size(); i-- > 0;) {
        if (is_number(parts[i])) {
            parts.resize(i + 1);
            return join_path(parts, 0);
        }
    }
    return "";
}

std::string join_list(const std::vector<std::string>& names) {
    std::string s;
    for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
    return s;
}

// A weight a MatMul / Gemm of the main graph reads.
struct Candidate {
    std::string tensor;
    std::vector<int64_t> shape;
    bool in_out = false;
    std::vector<std::string> names;  // the initializer's name and its readers' node names
    std::string op;                  // the first reader's op ("MatMul", "Gemm")
};

std::vector<Candidate> graph_candidates(const Model& model) {
    const Graph& g = model.graph;
    std::unordered_map<std::string, const Node*> transposes;  // output -> Transpose node
    for (const auto& n : g.nodes) {
        if (n.op_type != "Transpose" || !n.domain.empty() || n.inputs.empty() || n.outputs.empty())
            continue;
        auto perm = n.attr_ints("perm");
        if (perm.empty() || perm == std::vector<int64_t>{1, 0}) transposes[n.outputs[0]] = &n;
    }
    std::vector<Candidate> out;
    std::unordered_map<std::string, size_t> index;
    for (const auto& n : g.nodes) {
        if (!n.domain.empty() || (n.op_type != "MatMul" && n.op_type != "Gemm") ||
            n.inputs.size() < 2)
            continue;
        std::string b = n.inputs[1];
        bool in_out = n.op_type == "MatMul" || n.attr_int("transB", 0) == 0;
        std::string via;
        if (g.find_initializer(b) == nullptr) {
            auto t = transposes.find(b);
            if (t == transposes.end()) continue;
            via = t->second->name;
            b = t->second->inputs[0];
            in_out = !in_out;
        }
        const Tensor* w = g.find_initializer(b);
        if (w == nullptr || w->shape.size() != 2) continue;
        auto [it, fresh] = index.emplace(b, out.size());
        if (fresh) out.push_back({b, w->shape, in_out, {b}, n.op_type});
        Candidate& c = out[it->second];
        if (c.in_out != in_out) continue;  // read in both layouts: merge-lora cannot pick one
        c.names.push_back(n.name);
        if (!via.empty()) c.names.push_back(via);
    }
    return out;
}

bool fits(const Candidate& c, const AdapterModule& m) {
    std::vector<int64_t> want = c.in_out ? std::vector<int64_t>{m.in_features, m.out_features}
                                         : std::vector<int64_t>{m.out_features, m.in_features};
    return c.shape == want;
}

std::vector<LoraTarget> by_name_on_checkpoint(const Model& model,
                                              const std::vector<AdapterModule>& modules,
                                              bool fan_in_fan_out,
                                              std::vector<std::string>& ambiguous) {
    std::vector<LoraTarget> targets;
    for (const auto& m : modules) {
        auto path = split_path(m.module);
        size_t best = 0;
        std::vector<const Tensor*> found;
        for (const auto& t : model.graph.initializers) {
            std::string_view name = t.name;
            if (t.shape.size() != 2 || !name.ends_with(".weight")) continue;
            size_t s = suffix_score(path, split_path(name.substr(0, name.size() - 7)));
            if (s == 0 || s < best) continue;
            if (s > best) found.clear();
            best = s;
            found.push_back(&t);
        }
        LoraTarget target{m.module, "", fan_in_fan_out, "name"};
        if (found.size() == 1) {
            target.tensor = found[0]->name;
        } else if (found.size() > 1) {
            std::vector<std::string> names;
            for (const Tensor* t : found) names.push_back(t->name);
            ambiguous.push_back(cat(m.module, " (", join_list(names), ")"));
        }
        targets.push_back(std::move(target));
    }
    return targets;
}

std::vector<LoraTarget> through_graph(const Model& model, const std::vector<AdapterModule>& modules,
                                      std::vector<std::string>& ambiguous) {
    auto candidates = graph_candidates(model);
    std::vector<LoraTarget> targets;
    std::vector<std::optional<size_t>> chosen(modules.size());
    std::vector<bool> named(modules.size(), false);  // some name reached it (found or ambiguous)
    for (size_t i = 0; i < modules.size(); ++i) {
        const AdapterModule& m = modules[i];
        targets.push_back({m.module, "", false, ""});
        auto path = split_path(m.module);
        size_t best = 0;
        std::vector<size_t> found;
        for (size_t c = 0; c < candidates.size(); ++c) {
            size_t s = 0;
            for (const auto& n : candidates[c].names) s = std::max(s, name_score(path, n));
            if (s == 0 || s < best) continue;
            if (s > best) found.clear();
            best = s;
            found.push_back(c);
        }
        named[i] = !found.empty();
        if (found.size() > 1) {
            std::erase_if(found, [&](size_t c) { return !fits(candidates[c], m); });
            if (found.empty()) {
                ambiguous.push_back(cat(m.module, " (several weights by name, none of shape ",
                                        m.in_features, " -> ", m.out_features, ")"));
                continue;
            }
        }
        if (found.size() == 1) {
            chosen[i] = found[0];
            targets[i].how = "node name";
        } else if (found.size() > 1) {
            std::vector<std::string> names;
            for (size_t c : found) names.push_back(candidates[c].tensor);
            ambiguous.push_back(cat(m.module, " (", join_list(names), ")"));
        }
    }

    // Shape order for the modules no name reached.
    std::vector<bool> claimed(candidates.size(), false);
    for (const auto& c : chosen)
        if (c) claimed[*c] = true;
    std::map<std::pair<int64_t, int64_t>, std::vector<size_t>> groups;
    for (size_t i = 0; i < modules.size(); ++i)
        if (!named[i]) groups[{modules[i].in_features, modules[i].out_features}].push_back(i);
    for (auto& [shape, members] : groups) {
        std::sort(members.begin(), members.end(), [&](size_t a, size_t b) {
            return natural_less(modules[a].module, modules[b].module);
        });
        std::vector<size_t> free;
        for (size_t c = 0; c < candidates.size(); ++c)
            if (!claimed[c] && fits(candidates[c], modules[members[0]])) free.push_back(c);
        if (free.empty()) continue;  // no target: reported as unmatched
        std::vector<std::string> layers;
        for (size_t i : members) layers.push_back(layer_key(modules[i].module));
        std::sort(layers.begin(), layers.end());
        bool one_per_layer = std::adjacent_find(layers.begin(), layers.end()) == layers.end();
        if (free.size() != members.size() || !one_per_layer) {
            std::vector<std::string> names, weights;
            for (size_t i : members) names.push_back(modules[i].module);
            for (size_t c : free) weights.push_back(candidates[c].tensor);
            ambiguous.push_back(cat(join_list(names), " (no name matches; by shape ", shape.first,
                                    " -> ", shape.second, " they are ", members.size(),
                                    " modules for ", free.size(), " weights: ", join_list(weights),
                                    ")"));
            continue;
        }
        for (size_t k = 0; k < members.size(); ++k) {
            chosen[members[k]] = free[k];
            claimed[free[k]] = true;
            targets[members[k]].how = "shape order";
        }
    }

    for (size_t i = 0; i < modules.size(); ++i) {
        if (!chosen[i]) continue;
        targets[i].tensor = candidates[*chosen[i]].tensor;
        targets[i].in_out = candidates[*chosen[i]].in_out;
    }
    return targets;
}

}  // namespace

bool natural_less(const std::string& a, const std::string& b) {
    size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
        if (std::isdigit(static_cast<unsigned char>(a[i])) &&
            std::isdigit(static_cast<unsigned char>(b[j]))) {
            size_t ie = i, je = j;
            while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
            while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
            auto na = a.substr(i, ie - i), nb = b.substr(j, je - j);
            na.erase(0, std::min(na.find_first_not_of('0'), na.size()));
            nb.erase(0, std::min(nb.find_first_not_of('0'), nb.size()));
            if (na.size() != nb.size()) return na.size() < nb.size();
            if (na != nb) return na < nb;
            i = ie;
            j = je;
        } else {
            if (a[i] != b[j]) return a[i] < b[j];
            ++i;
            ++j;
        }
    }
    return a.size() - i < b.size() - j;
}

std::vector<LoraTarget> find_lora_targets(const Model& model,
                                          const std::vector<AdapterModule>& modules,
                                          bool fan_in_fan_out, bool allow_unmatched) {
    std::vector<std::string> ambiguous;
    bool checkpoint = model.graph.nodes.empty();
    auto targets = checkpoint ? by_name_on_checkpoint(model, modules, fan_in_fan_out, ambiguous)
                              : through_graph(model, modules, ambiguous);

    // Two modules on one weight: neither can be trusted.
    std::map<std::string, std::vector<std::string>> owners;
    for (const auto& t : targets)
        if (!t.tensor.empty()) owners[t.tensor].push_back(t.module);
    for (const auto& [tensor, mods] : owners)
        if (mods.size() > 1) ambiguous.push_back(cat(join_list(mods), " (all found ", tensor, ")"));
    if (!ambiguous.empty())
        throw InputError(cat("adapter modules with more than one possible target in the ",
                             checkpoint ? "checkpoint" : "graph", ": ", join_list(ambiguous)));

    std::vector<std::string> unmatched;
    for (const auto& t : targets)
        if (t.tensor.empty()) unmatched.push_back(t.module);
    if (!unmatched.empty() && !allow_unmatched)
        throw InputError(
            cat(unmatched.size(), " adapter module", unmatched.size() == 1 ? "" : "s",
                " found no target in the ", checkpoint ? "checkpoint" : "graph", ": ",
                join_list(unmatched),
                checkpoint ? " (no 2-D tensor named <module>.weight)"
                           : " (no MatMul / Gemm weight by name, nor one of its shape in order)",
                "; allow_unmatched skips them"));
    return targets;
}

}  // namespace ep
