// SmoothQuant (contract and formula in smooth_quant.h).
#include "passes/smooth_quant.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "calibration/calibration.h"
#include "ir/error.h"
#include "ir/progress.h"
#include "runtime-check/executor.h"

namespace ep {

namespace {

constexpr double kFloor = 1e-5;  // max|W_j| and s_j are clamped below at this

// How X / s reaches the model.
enum class FoldKind : uint8_t { Insert, LayerNorm, Mul, MatMul, Gemm };

struct Reader {
    size_t node = 0;
    std::string weight;
    bool channel_is_column = false;  // Gemm transB = 1: W [N, K], channel j = column j
};

struct Group {
    std::string x;
    int64_t k = 0;
    std::vector<Reader> readers;
    FoldKind fold = FoldKind::Insert;
    size_t producer = 0;
    std::string scale;                 // LayerNorm scale, Mul g, MatMul / Gemm W0
    std::string bias;                  // LayerNorm bias, Gemm C (may be empty)
    bool producer_transposed = false;  // Gemm transB = 1: W0 [K, K0], column j = row j
    std::string why_insert;            // why no fold (for the plan)
};

struct Plan {
    std::vector<Group> groups;
    std::vector<Skipped> skipped;
};

struct GraphFacts {
    const Graph& g;
    std::unordered_map<std::string, size_t> uses;
    std::unordered_map<std::string, size_t> producers;
    std::unordered_set<std::string> feeds;

    explicit GraphFacts(const Graph& graph)
        : g(graph), uses(graph.use_counts()), producers(graph.producers()) {
        for (const auto& v : graph.inputs) feeds.insert(v.name);
    }

    size_t uses_of(const std::string& name) const {
        auto it = uses.find(name);
        return it == uses.end() ? 0 : it->second;
    }

    // An f32 initializer read once (by the node asking), not encoded, not a graph input.
    // Empty string: usable; else why not.
    std::string private_f32(const std::string& name) const {
        const Tensor* t = g.find_initializer(name);
        if (!t) return cat("'", name, "' is not an initializer");
        if (feeds.count(name)) return cat("'", name, "' is also a graph input");
        if (t->is_encoded()) return cat("'", name, "' is already quantized");
        if (t->dtype != DType::F32)
            return cat("'", name, "' is ", dtype_name(t->dtype), ", not f32");
        if (uses_of(name) != 1) return cat("'", name, "' is read by ", uses_of(name), " nodes");
        return "";
    }
};

// A per-channel vector of K elements: [K] or [1, ..., 1, K].
bool is_channel_vector(const Tensor& t, int64_t k) {
    if (t.shape.empty() || t.shape.back() != k) return false;
    for (size_t i = 0; i + 1 < t.shape.size(); ++i)
        if (t.shape[i] != 1) return false;
    return true;
}

std::string node_label(const Node& n) {
    return cat(n.op_type, " '", n.name, "'");
}

// Why `node` cannot be smoothed (empty: it can), and its reader entry and K.
std::string check_reader(const GraphFacts& f, size_t index, Reader& reader, int64_t& k) {
    const Node& n = f.g.nodes[index];
    if (n.op_type != "MatMul" && n.op_type != "Gemm") return "not a MatMul or Gemm";
    if (n.inputs.size() < 2) return "fewer than two inputs";
    if (n.op_type == "Gemm" && n.attr_int("transA", 0) != 0)
        return "Gemm with transA = 1 (its input channels are not the last axis)";
    const std::string& w = n.inputs[1];
    if (std::string why = f.private_f32(w); !why.empty()) return cat("weight ", why);
    const Tensor& t = *f.g.find_initializer(w);
    if (t.shape.size() != 2)
        return cat("weight '", w, "' has shape ", shape_string(t.shape), ", not 2-D");
    reader.node = index;
    reader.weight = w;
    reader.channel_is_column = n.op_type == "Gemm" && n.attr_int("transB", 0) != 0;
    k = reader.channel_is_column ? t.shape[1] : t.shape[0];
    if (k <= 0) return "weight has no input channels";
    return "";
}

// Chooses where X / s goes (group.fold and its tensors), or why it is an inserted Mul.
void choose_fold(const GraphFacts& f, Group& group) {
    group.fold = FoldKind::Insert;
    if (f.uses_of(group.x) != group.readers.size()) {
        group.why_insert = "other readers";
        return;
    }
    auto it = f.producers.find(group.x);
    if (it == f.producers.end()) {
        group.why_insert = "a graph input";
        return;
    }
    const Node& p = f.g.nodes[it->second];
    group.producer = it->second;
    const int64_t k = group.k;
    auto usable_vector = [&](const std::string& name) {
        return !name.empty() && f.private_f32(name).empty() &&
               is_channel_vector(*f.g.find_initializer(name), k);
    };
    if (p.op_type == "LayerNormalization" && p.outputs[0] == group.x && p.inputs.size() >= 2 &&
        p.attr_int("axis", -1) == -1 && usable_vector(p.inputs[1]) &&
        (p.inputs.size() < 3 || p.inputs[2].empty() || usable_vector(p.inputs[2]))) {
        group.fold = FoldKind::LayerNorm;
        group.scale = p.inputs[1];
        if (p.inputs.size() >= 3) group.bias = p.inputs[2];
        return;
    }
    if (p.op_type == "Mul" && p.inputs.size() == 2) {
        for (int side = 0; side < 2; ++side) {
            const std::string& g = p.inputs[static_cast<size_t>(side)];
            const std::string& other = p.inputs[static_cast<size_t>(1 - side)];
            if (usable_vector(g) && !f.g.find_initializer(other)) {
                group.fold = FoldKind::Mul;
                group.scale = g;
                return;
            }
        }
    }
    if ((p.op_type == "MatMul" || p.op_type == "Gemm") && p.inputs.size() >= 2 &&
        p.outputs[0] == group.x && f.private_f32(p.inputs[1]).empty()) {
        const Tensor& w0 = *f.g.find_initializer(p.inputs[1]);
        const bool transposed = p.op_type == "Gemm" && p.attr_int("transB", 0) != 0;
        const bool columns_k =
            w0.shape.size() == 2 && (transposed ? w0.shape[0] : w0.shape[1]) == k;
        const bool has_c = p.op_type == "Gemm" && p.inputs.size() >= 3 && !p.inputs[2].empty();
        if (columns_k && (!has_c || usable_vector(p.inputs[2]))) {
            group.fold = p.op_type == "Gemm" ? FoldKind::Gemm : FoldKind::MatMul;
            group.scale = p.inputs[1];
            group.producer_transposed = transposed;
            if (has_c) group.bias = p.inputs[2];
            return;
        }
    }
    group.why_insert = cat("produced by ", node_label(p), ", which cannot take the scales");
}

Plan make_plan(const Model& model, const SmoothQuantOptions& options) {
    const Graph& g = model.graph;
    GraphFacts facts(g);
    Plan plan;
    std::set<std::string> asked(options.nodes.begin(), options.nodes.end());
    std::set<std::string> found;
    std::map<std::string, size_t> group_of;  // X -> index in plan.groups
    for (size_t i = 0; i < g.nodes.size(); ++i) {
        const Node& n = g.nodes[i];
        const bool linear = n.op_type == "MatMul" || n.op_type == "Gemm";
        if (asked.empty() ? !linear : !asked.count(n.name)) continue;
        found.insert(n.name);
        Reader reader;
        int64_t k = 0;
        if (std::string why = check_reader(facts, i, reader, k); !why.empty()) {
            plan.skipped.push_back({n.name, cat("smoothquant: ", why)});
            continue;
        }
        const std::string& x = n.inputs[0];
        auto [it, fresh] = group_of.emplace(x, plan.groups.size());
        if (fresh) {
            plan.groups.push_back({});
            plan.groups.back().x = x;
            plan.groups.back().k = k;
        }
        Group& group = plan.groups[it->second];
        if (group.k != k) {
            plan.skipped.push_back({n.name, cat("smoothquant: weight has ", k, " input channels, ",
                                                "another reader of '", x, "' has ", group.k)});
            continue;
        }
        group.readers.push_back(reader);
    }
    for (const auto& name : asked)
        if (!found.count(name)) plan.skipped.push_back({name, "smoothquant: no node of this name"});
    std::erase_if(plan.groups, [](const Group& gr) { return gr.readers.empty(); });
    for (auto& group : plan.groups) choose_fold(facts, group);
    return plan;
}

std::string readers_text(const Graph& g, const Group& group) {
    std::string op = g.nodes[group.readers[0].node].op_type;
    std::string names;
    for (const auto& r : group.readers) {
        const Node& n = g.nodes[r.node];
        if (n.op_type != op) op = "MatMul/Gemm";
        names += cat(names.empty() ? "" : ", ", "'", n.name, "'");
    }
    return cat(op, " ", names);
}

std::string fold_text(const Graph& g, const Group& group, bool planned) {
    if (group.fold == FoldKind::Insert)
        return cat(planned ? "insert" : "inserted", " Mul '", group.x, "_smooth' (",
                   group.why_insert == "other readers" ? "'" + group.x + "' has other readers"
                                                       : "'" + group.x + "' is " + group.why_insert,
                   ")");
    return cat(planned ? "fold into " : "folded into ", node_label(g.nodes[group.producer]));
}

// A name not used by any value, node or initializer of `g`.
std::string fresh_name(const Graph& g, const std::string& base) {
    std::unordered_set<std::string> taken;
    for (const auto& n : g.nodes) {
        taken.insert(n.name);
        for (const auto& o : n.outputs) taken.insert(o);
        for (const auto& i : n.inputs) taken.insert(i);
    }
    for (const auto& t : g.initializers) taken.insert(t.name);
    for (const auto& v : g.inputs) taken.insert(v.name);
    std::string name = base;
    for (int i = 1; taken.count(name); ++i) name = cat(base, "_", i);
    return name;
}

// Multiplies channel j of a 2-D f32 tensor by factor[j]: rows when !columns, else columns.
void scale_channels(Tensor& t, const std::vector<float>& factor, bool columns) {
    auto v = t.mutable_values<float>();
    const auto rows = static_cast<size_t>(t.shape[0]);
    const auto cols = static_cast<size_t>(t.shape[1]);
    for (size_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < cols; ++c) v[r * cols + c] *= factor[columns ? c : r];
}

void scale_vector(Tensor& t, const std::vector<float>& factor) {
    auto v = t.mutable_values<float>();
    for (size_t j = 0; j < v.size(); ++j) v[j] *= factor[j];
}

}  // namespace

std::vector<std::string> SmoothQuantResult::summary() const {
    std::vector<std::string> lines;
    for (const auto& s : smoothed) {
        std::string names;
        for (const auto& r : s.readers) names += cat(names.empty() ? "" : ", ", "'", r, "'");
        lines.push_back(cat("smooth '", s.activation, "' (", s.channels, " channels) for ", names,
                            ": ", s.folded_into, "; max |x| ", s.max_before, " -> ", s.max_after));
    }
    return lines;
}

std::vector<std::string> plan_smooth_quant(const Model& model, const SmoothQuantOptions& options) {
    Plan plan = make_plan(model, options);
    std::vector<std::string> lines;
    for (const auto& group : plan.groups)
        lines.push_back(cat("smooth '", group.x, "' (", group.k, " channels) for ",
                            readers_text(model.graph, group), ": ",
                            fold_text(model.graph, group, true)));
    for (const auto& s : plan.skipped) lines.push_back(cat("keep '", s.name, "': ", s.reason));
    return lines;
}

SmoothQuantResult smooth_quant(Model& model, const SmoothQuantOptions& options,
                               const PassContext& context) {
    if (!(options.alpha >= 0.0 && options.alpha <= 1.0))
        throw InputError(cat("smooth_alpha: ", options.alpha, " is outside [0, 1]"));
    if (!context.calibration)
        throw InputError(
            "smooth_alpha: SmoothQuant needs calibration data (calibration.data) "
            "for the per-channel activation maxima");
    Plan plan = make_plan(model, options);
    SmoothQuantResult result;
    result.skipped = plan.skipped;
    if (plan.groups.empty()) return result;

    // Capture max|X_j| on the model as it is (nothing has changed yet).
    std::vector<calib::ActivationStats> stats;
    {
        rt::ExecOptions exec_options;
        exec_options.threads = std::max(1, context.threads);
        rt::Executor exec(model, exec_options);
        auto samples = context.calibration->open(exec);
        std::vector<calib::CaptureRequest> requests;
        for (const auto& group : plan.groups) {
            calib::CaptureRequest req;
            req.activation = group.x;
            req.k = group.k;
            req.abs_max = true;
            requests.push_back(req);
        }
        auto step = progress_step(context.progress, "smoothquant", samples->size(), "samples");
        stats = calib::capture_activations(exec, *samples, requests, &step);
    }

    // The scales first, from the weights as they are (a weight may also be a fold target of
    // another activation: each change below commutes with the others, but the maxima must
    // be read before any of them).
    Graph& g = model.graph;
    std::vector<SmoothedActivation> outs(plan.groups.size());
    for (size_t gi = 0; gi < plan.groups.size(); ++gi) {
        const Group& group = plan.groups[gi];
        const auto k = static_cast<size_t>(group.k);
        // max|W_j| over every reader's channel j.
        std::vector<double> wmax(k, 0.0);
        for (const auto& r : group.readers) {
            const Tensor& w = *g.find_initializer(r.weight);
            auto v = w.values<float>();
            const auto cols = static_cast<size_t>(w.shape[1]);
            for (size_t i = 0; i < v.size(); ++i) {
                const size_t j = r.channel_is_column ? i % cols : i / cols;
                wmax[j] = std::max(wmax[j], std::fabs(static_cast<double>(v[i])));
            }
        }
        SmoothedActivation& out = outs[gi];
        out.activation = group.x;
        out.channels = group.k;
        out.scales.resize(k);
        for (size_t j = 0; j < k; ++j) {
            const double xmax = stats[gi].abs_max[j];
            double s = 1.0;
            if (xmax > 0.0)
                s = std::max(kFloor, std::pow(xmax, options.alpha) /
                                         std::pow(std::max(wmax[j], kFloor), 1.0 - options.alpha));
            out.scales[j] = static_cast<float>(s);
            out.max_before = std::max(out.max_before, xmax);
            out.max_after = std::max(out.max_after, xmax / static_cast<double>(out.scales[j]));
        }
    }

    std::vector<std::pair<size_t, Node>> inserted;  // (before node index, node)
    for (size_t gi = 0; gi < plan.groups.size(); ++gi) {
        const Group& group = plan.groups[gi];
        SmoothedActivation& out = outs[gi];
        std::vector<float> inverse(out.scales.size());
        for (size_t j = 0; j < inverse.size(); ++j) inverse[j] = 1.0f / out.scales[j];
        for (const auto& r : group.readers) {
            scale_channels(*g.find_initializer(r.weight), out.scales, r.channel_is_column);
            out.readers.push_back(g.nodes[r.node].name);
        }
        out.folded_into = fold_text(g, group, false);
        switch (group.fold) {
            case FoldKind::LayerNorm:
            case FoldKind::Mul:
                scale_vector(*g.find_initializer(group.scale), inverse);
                if (!group.bias.empty()) scale_vector(*g.find_initializer(group.bias), inverse);
                break;
            case FoldKind::MatMul:
            case FoldKind::Gemm:
                // Output column j of X = Y W0 (+ C): W0's column j (Gemm transB: row j).
                scale_channels(*g.find_initializer(group.scale), inverse,
                               !group.producer_transposed);
                if (!group.bias.empty()) scale_vector(*g.find_initializer(group.bias), inverse);
                break;
            case FoldKind::Insert: {
                const std::string node_name = fresh_name(g, group.x + "_smooth");
                const std::string scale_name = fresh_name(g, group.x + "_smooth_scale");
                const std::string value_name = fresh_name(g, group.x + "_smoothed");
                g.initializers.push_back(make_f32_tensor(scale_name, {group.k}, inverse));
                Node mul;
                mul.op_type = "Mul";
                mul.name = node_name;
                mul.inputs = {group.x, scale_name};
                mul.outputs = {value_name};
                size_t first = g.nodes.size();
                for (const auto& r : group.readers) {
                    g.nodes[r.node].inputs[0] = value_name;
                    first = std::min(first, r.node);
                }
                inserted.emplace_back(first, std::move(mul));
                out.folded_into = cat("inserted Mul '", node_name, "'");
                break;
            }
        }
        result.smoothed.push_back(std::move(out));
    }
    // Insert the new Mul nodes, each before its first reader (from the back, so the
    // indices of the earlier ones hold).
    std::stable_sort(inserted.begin(), inserted.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    for (auto& [index, node] : inserted)
        g.nodes.insert(g.nodes.begin() + static_cast<std::ptrdiff_t>(index), std::move(node));
    return result;
}

}  // namespace ep
