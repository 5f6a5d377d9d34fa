#include "runtime-check/executor.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <set>
#include <tuple>
#include <unordered_set>

#include "ir/sparse.h"
#include "runtime-check/elementwise_fusion.h"
#include "runtime-check/kernels/igemm.h"
#include "runtime-check/kernels/qgemm.h"
#include "runtime-check/node_cost.h"
#include "runtime-check/op_registry.h"
#include "runtime-check/ops/ops.h"
#include "runtime-check/ops/quant_matmul.h"
#include "runtime-check/qdq_fusion.h"

namespace ep::rt {

// A value a step reads: a slot of the frame `depth` levels up (0 = the step's own graph).
struct Ref {
    int32_t depth = 0;
    int32_t slot = -1;
};

struct Executor::Plan {
    struct Step {
        const Node* node = nullptr;
        KernelFn kernel = nullptr;
        int64_t opset = 0;
        std::vector<Ref> inputs;  // slot -1: a missing optional input
        std::vector<int32_t> outputs;
        std::vector<int32_t> free_after;  // local slots whose last reader is this step
        // A Relu whose input (a local slot) is last read here: runs in place on that
        // value when the run does not keep it.
        int32_t in_place_slot = -1;
        uint64_t constant_inputs = 0;          // bit k: input k is an initializer of this plan
        CostFormula cost = CostFormula::None;  // node_cost.h: one thread below a threshold
        // bit k: input k (a local slot) is last read here, by a kernel that may write into
        // it (OpContext::take_input) in a run with shared_kv_buffer: GroupQueryAttention's
        // past_key / past_value, so that present is written in place into the past buffer
        // (decoder.h).
        uint64_t donated_inputs = 0;
    };
    const Graph* graph = nullptr;
    const Plan* parent = nullptr;
    std::unordered_map<std::string, int32_t> slot_of;
    std::vector<std::string> slot_names;
    std::vector<std::pair<int32_t, const Tensor*>> initializers;
    std::vector<int32_t> input_slots;
    std::vector<Ref> output_refs;
    std::vector<Step> steps;
    std::unordered_map<const Graph*, std::unique_ptr<Plan>> subplans;
    // Encoded initializers (by slot), and the float copies made for kernels that cannot
    // read them (qgemm.h): one per tensor, made when the plan is compiled.
    std::unordered_map<int32_t, const Tensor*> encoded;
    std::unordered_map<const Tensor*, int32_t> dequantized_slot;
    std::vector<std::unique_ptr<Tensor>> dequantized;

    [[nodiscard]] bool is_initializer(int32_t slot) const {
        for (const auto& [s, t] : initializers)
            if (s == slot) return true;
        return false;
    }
    int32_t add_slot(const std::string& name) {
        auto [it, inserted] = slot_of.emplace(name, static_cast<int32_t>(slot_names.size()));
        if (inserted) slot_names.push_back(name);
        return it->second;
    }
    [[nodiscard]] std::optional<Ref> resolve(const std::string& name) const {
        int32_t depth = 0;
        for (const Plan* p = this; p; p = p->parent, ++depth) {
            auto it = p->slot_of.find(name);
            if (it != p->slot_of.end()) return Ref{depth, it->second};
        }
        return std::nullopt;
    }
};

struct Executor::Frame {
    std::vector<Tensor> values;      // values computed in this frame
    std::vector<const Tensor*> ptr;  // per slot: into `values` or an initializer; null when freed
    const Frame* parent = nullptr;

    [[nodiscard]] const Tensor* get(Ref r) const {
        const Frame* f = this;
        for (int32_t d = 0; d < r.depth && f; ++d) f = f->parent;
        return f ? f->ptr[static_cast<size_t>(r.slot)] : nullptr;
    }
};

namespace {

// Names a node reads: its inputs and whatever its subgraphs capture from outside.
void collect_reads(const Node& node, std::vector<std::string>& reads) {
    for (const auto& in : node.inputs)
        if (!in.empty()) reads.push_back(in);
    for (const auto& attr : node.attributes)
        for (const auto& sub : attr.graphs) {
            auto uses = sub.use_counts();
            std::unordered_set<std::string> defined;
            for (const auto& v : sub.inputs) defined.insert(v.name);
            for (const auto& t : sub.initializers) defined.insert(t.name);
            for (const auto& n : sub.nodes)
                for (const auto& o : n.outputs) defined.insert(o);
            for (const auto& [name, count] : uses)
                if (!defined.count(name)) reads.push_back(name);
        }
}

// Orders nodes so every value is produced before it is read (Kahn's algorithm, stable:
// among ready nodes the earliest in file order goes first). Values from outside the
// graph count as available. Fails naming a node that can never run.
void topo_sort(Graph& graph, const std::string& where) {
    std::unordered_map<std::string, size_t> producer;
    for (size_t i = 0; i < graph.nodes.size(); ++i)
        for (const auto& o : graph.nodes[i].outputs)
            if (!o.empty()) producer[o] = i;
    std::vector<std::vector<size_t>> dependents(graph.nodes.size());
    std::vector<size_t> missing(graph.nodes.size(), 0);
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
        std::vector<std::string> reads;
        collect_reads(graph.nodes[i], reads);
        std::set<size_t> deps;
        for (const auto& r : reads) {
            auto it = producer.find(r);
            if (it != producer.end() && it->second != i) deps.insert(it->second);
        }
        missing[i] = deps.size();
        for (size_t d : deps) dependents[d].push_back(i);
    }
    std::set<size_t> ready;
    for (size_t i = 0; i < graph.nodes.size(); ++i)
        if (missing[i] == 0) ready.insert(i);
    std::vector<size_t> order;
    while (!ready.empty()) {
        size_t i = *ready.begin();
        ready.erase(ready.begin());
        order.push_back(i);
        for (size_t d : dependents[i])
            if (--missing[d] == 0) ready.insert(d);
    }
    if (order.size() != graph.nodes.size()) {
        for (size_t i = 0; i < graph.nodes.size(); ++i)
            if (missing[i] != 0)
                throw InputError(cat(where, "node ", graph.nodes[i].label(),
                                     " is part of a cycle and can never run"));
    }
    bool sorted = std::is_sorted(order.begin(), order.end());
    if (!sorted) {
        std::vector<Node> nodes;
        nodes.reserve(order.size());
        for (size_t i : order) nodes.push_back(std::move(graph.nodes[i]));
        graph.nodes = std::move(nodes);
    }
    for (auto& node : graph.nodes)
        for (auto& attr : node.attributes)
            for (auto& sub : attr.graphs)
                topo_sort(sub, cat(where, node.label(), ".", attr.name, ": "));
}

uint64_t tensor_bytes(const Tensor& t) {
    if (t.dtype == DType::String) {
        uint64_t n = 0;
        for (const auto& s : t.strings) n += s.size();
        return n;
    }
    return t.data.size();
}

bool declared_matches(const ValueInfo& info, const Tensor& t, std::string& why) {
    if (!info.type || !info.type->is_tensor) return true;
    if (info.type->elem != DType::Undefined && info.type->elem != t.dtype) {
        why = cat("expected ", dtype_name(info.type->elem), ", found ", dtype_name(t.dtype));
        return false;
    }
    if (!info.type->shape) return true;
    const auto& dims = *info.type->shape;
    if (dims.size() != t.shape.size()) {
        why = cat("expected rank ", dims.size(), ", found shape ", shape_string(t.shape));
        return false;
    }
    for (size_t i = 0; i < dims.size(); ++i)
        if (dims[i].value && *dims[i].value != t.shape[i]) {
            why = cat("dimension ", i, " must be ", *dims[i].value, ", found shape ",
                      shape_string(t.shape));
            return false;
        }
    return true;
}

// Ops whose kernels produce more than one output whatever the node names: ONNX makes
// these outputs required, so a node may not leave them out.
struct RequiredOutputs {
    std::string_view op_type;
    size_t count;
    std::string_view names;
};
constexpr RequiredOutputs kRequiredOutputs[] = {
    {"DynamicQuantizeLinear", 3, "y, y_scale, y_zero_point"},
    {"TopK", 2, "Values, Indices"},
};

// A run would otherwise reach a value nothing produced (an If branch or a Loop / Scan body
// with too few outputs) or get more outputs than the node names.
void check_node_output_counts(const Node& node) {
    if (!node.domain.empty()) return;
    const size_t named = node.outputs.size();
    for (const auto& r : kRequiredOutputs)
        if (node.op_type == r.op_type && named < r.count)
            throw InputError(cat(r.op_type, " node '", node.label(), "' names ", named, " output",
                                 named == 1 ? "" : "s", "; ", r.op_type, " produces ", r.count,
                                 " (", r.names, ")"));
    if (node.op_type == "If")
        for (const char* branch : {"then_branch", "else_branch"}) {
            const Attribute* a = node.attr(branch);
            if (!a || a->graphs.empty()) continue;  // op_if names a missing branch when taken
            const size_t declared = a->graphs[0].outputs.size();
            if (declared != named)
                throw InputError(cat("If node '", node.label(), "': ", branch, " declares ",
                                     declared, " output", declared == 1 ? "" : "s",
                                     ", the node names ", named));
        }
    if (node.op_type == "Loop" || node.op_type == "Scan") {
        const Attribute* a = node.attr("body");
        if (!a || a->graphs.empty()) return;  // the kernel names the missing body
        const Graph& body = a->graphs[0];
        // Loop's body also produces cond first; its other outputs are the node's.
        const size_t extra = node.op_type == "Loop" ? 1 : 0;
        if (body.outputs.size() != named + extra)
            throw InputError(cat(node.op_type, " node '", node.label(), "': body declares ",
                                 body.outputs.size(), " output",
                                 body.outputs.size() == 1 ? "" : "s", ", the node names ", named,
                                 extra ? " (the body's first output is cond)" : ""));
    }
}

}  // namespace

namespace {

using Plan = Executor::Plan;

// Slots of `plan` that steps of `sub` (a subgraph `level` levels below) read.
void collect_captures(const Plan& sub, int32_t level, std::vector<int32_t>& out) {
    for (const auto& step : sub.steps) {
        for (const auto& r : step.inputs)
            if (r.slot >= 0 && r.depth == level) out.push_back(r.slot);
    }
    for (const auto& r : sub.output_refs)
        if (r.depth == level) out.push_back(r.slot);
    for (const auto& [g, subsub] : sub.subplans) collect_captures(*subsub, level + 1, out);
}

// `ref` is input `index` of `node`. When it names an encoded initializer that the node's
// kernel does not read natively, returns a slot of `plan` holding its dequantized copy.
Ref dequantize_if_needed(Plan& plan, const Node& node, size_t index, Ref ref) {
    const Plan* owner = &plan;
    for (int32_t d = 0; d < ref.depth && owner; ++d) owner = owner->parent;
    if (!owner) return ref;
    auto it = owner->encoded.find(ref.slot);
    if (it == owner->encoded.end() || kernel_reads_encoding(node, index, *it->second)) return ref;
    const Tensor* t = it->second;
    auto [at, inserted] = plan.dequantized_slot.emplace(t, -1);
    if (inserted) {
        auto copy = std::make_unique<Tensor>();
        if (!t->encoding.is_quantized()) {
            // Sparse float storage (ir/sparse.h): the dense tensor, in its own dtype.
            *copy = densify_tensor(*t);
        } else {
            copy->name = t->name;
            copy->shape = t->shape;
            copy->dtype = DType::F32;
            std::vector<float> values = dequantize_tensor(*t);
            copy->data = TensorData::owned(std::vector<std::byte>(
                reinterpret_cast<const std::byte*>(values.data()),
                reinterpret_cast<const std::byte*>(values.data() + values.size())));
        }
        // A name no graph value can have: the slot is internal to this plan.
        at->second = plan.add_slot(cat(t->name, "\x1f", "dequantized"));
        plan.initializers.emplace_back(at->second, copy.get());
        plan.dequantized.push_back(std::move(copy));
    }
    return Ref{0, at->second};
}

std::unique_ptr<Plan> compile(const Model& model, const Graph& graph, const Plan* parent) {
    auto plan = std::make_unique<Plan>();
    plan->graph = &graph;
    plan->parent = parent;
    for (const auto& t : graph.initializers) {
        plan->initializers.emplace_back(plan->add_slot(t.name), &t);
        if (t.is_encoded()) plan->encoded.emplace(plan->initializers.back().first, &t);
    }
    for (const auto& v : graph.inputs) plan->input_slots.push_back(plan->add_slot(v.name));
    std::vector<bool> no_free;
    for (const auto& node : graph.nodes) {
        Plan::Step step;
        step.node = &node;
        step.kernel = find_kernel(node.domain, node.op_type);
        if (!step.kernel) step.kernel = fused_kernel(node);
        if (!step.kernel)
            throw InternalError(cat("node ", node.label(), ": no kernel for ", node.op_type));
        step.opset = model.opset(node.domain);
        step.cost = node_cost_formula(node);
        for (const auto& in : node.inputs) {
            if (in.empty()) {
                step.inputs.push_back({0, -1});
                continue;
            }
            auto ref = plan->resolve(in);
            if (!ref)
                throw InputError(
                    cat("node ", node.label(), ": input '", in,
                        "' is not produced by any earlier node, input or initializer"));
            step.inputs.push_back(dequantize_if_needed(*plan, node, step.inputs.size(), *ref));
        }
        for (size_t k = 0; k < step.inputs.size() && k < 64; ++k)
            if (step.inputs[k].depth == 0 && step.inputs[k].slot >= 0 &&
                plan->is_initializer(step.inputs[k].slot))
                step.constant_inputs |= uint64_t{1} << k;
        for (const auto& attr : node.attributes)
            for (const auto& sub : attr.graphs)
                plan->subplans.emplace(&sub, compile(model, sub, plan.get()));
        for (const auto& out : node.outputs)
            step.outputs.push_back(out.empty() ? -1 : plan->add_slot(out));
        plan->steps.push_back(std::move(step));
    }
    for (const auto& v : graph.outputs) {
        auto ref = plan->resolve(v.name);
        if (!ref) throw InputError(cat("graph output '", v.name, "' is never produced"));
        plan->output_refs.push_back(*ref);
    }
    // Last reader of every local slot; initializers and outputs are never freed.
    std::vector<int64_t> last(plan->slot_names.size(), -1);
    for (size_t i = 0; i < plan->steps.size(); ++i) {
        const auto& step = plan->steps[i];
        for (const auto& r : step.inputs)
            if (r.slot >= 0 && r.depth == 0)
                last[static_cast<size_t>(r.slot)] = static_cast<int64_t>(i);
        std::vector<int32_t> captured;
        for (const auto& attr : step.node->attributes)
            for (const auto& sub : attr.graphs)
                collect_captures(*plan->subplans.at(&sub), 1, captured);
        for (int32_t s : captured) last[static_cast<size_t>(s)] = static_cast<int64_t>(i);
    }
    std::vector<bool> keep(plan->slot_names.size(), false);
    for (const auto& [slot, t] : plan->initializers) keep[static_cast<size_t>(slot)] = true;
    for (const auto& r : plan->output_refs)
        if (r.depth == 0) keep[static_cast<size_t>(r.slot)] = true;
    for (size_t s = 0; s < last.size(); ++s)
        if (last[s] >= 0 && !keep[s])
            plan->steps[static_cast<size_t>(last[s])].free_after.push_back(static_cast<int32_t>(s));
    for (size_t i = 0; i < plan->steps.size(); ++i) {
        auto& step = plan->steps[i];
        if (step.kernel != &op_relu || step.inputs.size() != 1 || step.outputs.size() != 1 ||
            step.outputs[0] < 0 || step.inputs[0].depth != 0 || step.inputs[0].slot < 0)
            continue;
        const int32_t in = step.inputs[0].slot;
        if (std::find(step.free_after.begin(), step.free_after.end(), in) != step.free_after.end())
            step.in_place_slot = in;
    }
    for (auto& step : plan->steps) {
        if (step.kernel != &op_group_query_attention) continue;
        for (size_t k = 3; k < 5 && k < step.inputs.size() && k < 64; ++k) {
            const Ref r = step.inputs[k];
            if (r.depth != 0 || r.slot < 0 ||
                std::find(step.free_after.begin(), step.free_after.end(), r.slot) ==
                    step.free_after.end())
                continue;
            // Read once by this step: another input naming the same value must not see it
            // change.
            if (std::count_if(step.inputs.begin(), step.inputs.end(),
                              [&](const Ref& o) { return o.depth == 0 && o.slot == r.slot; }) == 1)
                step.donated_inputs |= uint64_t{1} << k;
        }
    }
    return plan;
}

}  // namespace

std::vector<UnsupportedOp> unsupported_ops(const Model& model) {
    std::vector<UnsupportedOp> found;
    for_each_graph(model.graph, [&](const Graph& g) {
        for (const auto& node : g.nodes) {
            if (find_kernel(node.domain, node.op_type)) continue;
            std::string domain = node.domain == "ai.onnx" ? "" : node.domain;
            auto it = std::find_if(found.begin(), found.end(), [&](const UnsupportedOp& u) {
                return u.domain == domain && u.op_type == node.op_type;
            });
            if (it == found.end()) {
                found.push_back({domain, node.op_type, model.opset(domain), {}});
                it = std::prev(found.end());
            }
            it->nodes.push_back(node.label());
        }
    });
    std::sort(found.begin(), found.end(), [](const UnsupportedOp& a, const UnsupportedOp& b) {
        return std::tie(a.domain, a.op_type) < std::tie(b.domain, b.op_type);
    });
    return found;
}

std::string UnsupportedOp::qualified_name() const {
    return domain.empty() ? op_type : domain + "." + op_type;
}

void check_supported_ops(const Model& model) {
    auto unsupported = unsupported_ops(model);
    if (unsupported.empty()) return;
    size_t kinds = unsupported.size();
    std::string list, where;
    for (const auto& u : unsupported) {
        size_t n = u.nodes.size();
        if (!list.empty()) list += ", ";
        list += cat(u.qualified_name(), " (", n, n == 1 ? " node)" : " nodes)");
        if (!where.empty()) where += ", ";
        std::string opset =
            u.opset > 0 ? cat("opset ", u.domain.empty() ? "ai.onnx" : u.domain, " ", u.opset)
                        : cat("domain '", u.domain, "' not imported");
        where += cat("node '", u.nodes[0], "' (", u.qualified_name(), ", ", opset, ")");
        if (n > 1) where += cat(" and ", n - 1, " more");
    }
    throw InputError(
        cat(kinds, " unsupported op", kinds == 1 ? "" : "s", ": ", list, "; first ", where));
}

Executor::~Executor() = default;

Executor::Executor(Model model, ExecOptions options) : model_(std::move(model)), options_(options) {
    serial_options_ = options_;
    serial_options_.threads = 1;
    if (model_.graph.nodes.empty() && model_.format == SourceFormat::Safetensors)
        throw InputError("this model is a weights-only checkpoint: there is no graph to run");
    check_supported_ops(model_);
    check_output_counts(model_.graph);
    topo_sort(model_.graph, "");
    feeds_ = graph_feeds(model_.graph);
    if (options_.fuse_qdq) {
        QdqFusion f = fuse_qdq(model_.graph);
        fused_ops_ = f.conv + f.matmul + f.gemm + f.elementwise + f.moves;
        if (fused_ops_ > 0) {
            fused_graph_ = std::make_unique<Graph>(model_.graph);
            fused_graph_->nodes = std::move(f.nodes);
            fused_away_ = std::move(f.removed_values);
        }
        // Then chains of float elementwise nodes (elementwise_fusion.h: the same bits).
        const Graph& source = fused_graph_ ? *fused_graph_ : model_.graph;
        ElementwiseFusion e = fuse_elementwise_chains(source, source.nodes, model_.opset(""));
        if (e.chains > 0) {
            if (!fused_graph_) fused_graph_ = std::make_unique<Graph>(model_.graph);
            fused_graph_->nodes = std::move(e.nodes);
            fused_away_.insert(e.removed_values.begin(), e.removed_values.end());
        }
    }
    plan_ = compile(model_, fused_graph_ ? *fused_graph_ : model_.graph, nullptr);
    if (options_.int8_activations) qpacks_ = std::make_unique<QPackCache>();
    igemm_cache_ = std::make_unique<IgemmCache>();
}

NamedTensors Executor::run(NamedTensors inputs, const std::vector<std::string>& fetch,
                           bool shared_kv_buffer) {
    stats_ = {};
    shared_kv_buffer_ = shared_kv_buffer;
    live_bytes_ = 0;
    bool unfused = false;
    for (const auto& name : fetch) unfused = unfused || fused_away_.count(name) > 0;
    if (unfused && !unfused_plan_) unfused_plan_ = compile(model_, model_.graph, nullptr);
    const Plan& plan = unfused ? *unfused_plan_ : *plan_;
    Frame frame;
    frame.values.resize(plan.slot_names.size());
    frame.ptr.assign(plan.slot_names.size(), nullptr);
    for (const auto& [slot, t] : plan.initializers) frame.ptr[static_cast<size_t>(slot)] = t;
    for (auto& [name, tensor] : inputs) {
        auto it = std::find_if(feeds_.begin(), feeds_.end(),
                               [&](const ValueInfo& v) { return v.name == name; });
        if (it == feeds_.end()) {
            std::string names;
            for (const auto& v : feeds_) names += (names.empty() ? "" : ", ") + v.name;
            throw InputError(
                cat("input '", name, "': the model has no such input (inputs: ", names, ")"));
        }
        std::string why;
        if (!declared_matches(*it, tensor, why)) throw InputError(cat("input '", name, "': ", why));
        auto slot = static_cast<size_t>(plan.slot_of.at(name));
        frame.values[slot] = std::move(tensor);  // a moved-in feed is the frame's alone
        frame.ptr[slot] = &frame.values[slot];
    }
    for (const auto& v : feeds_)
        if (!frame.ptr[static_cast<size_t>(plan.slot_of.at(v.name))])
            throw InputError(cat("input '", v.name, "' is required but was not given"));
    std::vector<bool> keep(plan.slot_names.size(), false);
    for (const auto& name : fetch)
        if (auto it = plan.slot_of.find(name); it != plan.slot_of.end())
            keep[static_cast<size_t>(it->second)] = true;
    auto outputs = run_plan(plan, frame, &keep);
    NamedTensors result;
    for (size_t i = 0; i < outputs.size(); ++i)
        result.emplace_back(model_.graph.outputs[i].name, std::move(outputs[i]));
    for (const auto& name : fetch)
        if (auto it = plan.slot_of.find(name); it != plan.slot_of.end())
            if (const Tensor* t = frame.ptr[static_cast<size_t>(it->second)])
                result.emplace_back(name, *t);
    return result;
}

namespace {

// `all`, or `one` (the same options with one thread) for a node whose estimated work is
// too small to split (node_cost.h); the estimate reads only the shapes of its inputs.
const ExecOptions& node_options(const Plan::Step& step, const Executor::Frame& frame,
                                const ExecOptions& all, const ExecOptions& one, RunStats& stats) {
    if (all.threads <= 1 || step.cost == CostFormula::None) return all;
    std::vector<const Tensor*> inputs;
    inputs.reserve(step.inputs.size());
    for (const Ref& r : step.inputs) inputs.push_back(r.slot < 0 ? nullptr : frame.get(r));
    if (!runs_serially(step.cost, *step.node, inputs)) return all;
    ++stats.serial_nodes;
    return one;
}

}  // namespace

std::vector<Tensor> Executor::run_plan(const Plan& plan, Frame& frame,
                                       const std::vector<bool>* keep) {
    SubgraphRunner runner = [this, &plan, &frame](const Graph& sub, std::span<const Tensor> args) {
        const Plan& sp = *plan.subplans.at(&sub);
        if (args.size() > sp.input_slots.size())
            throw InputError(cat("subgraph '", sub.name, "' takes ", sp.input_slots.size(),
                                 " inputs, given ", args.size()));
        Frame inner;
        inner.parent = &frame;
        inner.values.resize(sp.slot_names.size());
        inner.ptr.assign(sp.slot_names.size(), nullptr);
        for (const auto& [slot, t] : sp.initializers) inner.ptr[static_cast<size_t>(slot)] = t;
        for (size_t i = 0; i < args.size(); ++i) {
            auto slot = static_cast<size_t>(sp.input_slots[i]);
            inner.values[slot] = args[i];
            inner.ptr[slot] = &inner.values[slot];
        }
        return run_plan(sp, inner, nullptr);
    };
    for (const auto& step : plan.steps) {
        const Node& node = *step.node;
        if (step.in_place_slot >= 0) {
            auto s = static_cast<size_t>(step.in_place_slot);
            Tensor& v = frame.values[s];
            if (frame.ptr[s] == &v && !(keep && (*keep)[s]) && v.dtype == DType::F32 &&
                !v.data.is_view()) {
                // The input dies here: Relu over its bytes (copied first only if shared).
                auto bytes = v.data.mutable_bytes();
                relu_f32_in_place(node_options(step, frame, options_, serial_options_, stats_),
                                  reinterpret_cast<float*>(bytes.data()),
                                  static_cast<int64_t>(bytes.size() / sizeof(float)));
                auto out = static_cast<size_t>(step.outputs[0]);
                frame.values[out] = std::move(v);
                frame.ptr[out] = &frame.values[out];
                v = Tensor{};
                frame.ptr[s] = nullptr;
                ++stats_.nodes_run;
                continue;
            }
        }
        const ExecOptions& node_opts = node_options(step, frame, options_, serial_options_, stats_);
        OpContext ctx{node, {}, {}, node_opts, step.opset, &runner, qpacks_.get()};
        ctx.igemm_cache = igemm_cache_.get();
        ctx.constant_inputs = step.constant_inputs;
        ctx.inputs.reserve(step.inputs.size());
        for (size_t k = 0; k < step.inputs.size(); ++k) {
            if (step.inputs[k].slot < 0) {
                ctx.inputs.push_back(nullptr);
                continue;
            }
            const Tensor* t = frame.get(step.inputs[k]);
            if (!t)
                throw InternalError(
                    cat("node ", node.label(), ": input '", node.inputs[k], "' has no value"));
            ctx.inputs.push_back(t);
        }
        if (step.donated_inputs != 0 && shared_kv_buffer_) {
            ctx.donated.assign(step.inputs.size(), nullptr);
            for (size_t k = 0; k < step.inputs.size(); ++k) {
                if (!(step.donated_inputs >> k & 1)) continue;
                auto s = static_cast<size_t>(step.inputs[k].slot);
                if (frame.ptr[s] == &frame.values[s] && !(keep && (*keep)[s]))
                    ctx.donated[k] = &frame.values[s];
            }
        }
        try {
            step.kernel(ctx);
        } catch (const Error& e) {
            throw Error(e.code(), cat("node ", node.label(), " (", node.op_type, "): ", e.what()));
        }
        ++stats_.nodes_run;
        if (ctx.outputs.size() > step.outputs.size())
            throw InternalError(cat("node ", node.label(), ": kernel produced ", ctx.outputs.size(),
                                    " outputs, the node names ", step.outputs.size()));
        for (size_t k = 0; k < ctx.outputs.size(); ++k) {
            int32_t slot = step.outputs[k];
            if (slot < 0) continue;
            live_bytes_ += tensor_bytes(ctx.outputs[k]);
            auto s = static_cast<size_t>(slot);
            frame.values[s] = std::move(ctx.outputs[k]);
            frame.ptr[s] = &frame.values[s];
        }
        stats_.peak_arena_bytes = std::max(stats_.peak_arena_bytes, live_bytes_);
        for (int32_t slot : step.free_after) {
            auto s = static_cast<size_t>(slot);
            if ((keep && (*keep)[s]) || frame.ptr[s] != &frame.values[s]) continue;
            live_bytes_ -= std::min(live_bytes_, tensor_bytes(frame.values[s]));
            frame.values[s] = Tensor{};
            frame.ptr[s] = nullptr;
        }
    }
    std::vector<Tensor> outputs;
    for (size_t i = 0; i < plan.output_refs.size(); ++i) {
        const Tensor* t = frame.get(plan.output_refs[i]);
        if (!t)
            throw InputError(
                cat("graph output '", plan.graph->outputs[i].name, "' was never produced"));
        outputs.push_back(*t);
    }
    return outputs;
}

std::vector<ValueInfo> graph_feeds(const Graph& graph) {
    std::unordered_set<std::string> initializers;
    for (const auto& t : graph.initializers) initializers.insert(t.name);
    std::vector<ValueInfo> feeds;
    for (const auto& v : graph.inputs)
        if (!initializers.count(v.name)) feeds.push_back(v);
    return feeds;
}

void check_output_counts(const Graph& graph) {
    for_each_graph(graph, [](const Graph& g) {
        for (const auto& node : g.nodes) check_node_output_counts(node);
    });
}

std::vector<std::string> supported_ops() {
    std::vector<std::string> out;
    for (const auto& e : op_table())
        out.push_back(e.domain.empty() ? std::string(e.op_type)
                                       : std::string(e.domain) + "." + std::string(e.op_type));
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace ep::rt
