// quantize-weights: encodes weight initializers in place (Tensor::encoding, encoding.h):
// int8 per output channel, or int8 / int4 group-wise along the reduction axis, with
// round-to-nearest (rtn), GPTQ or AWQ (calibration/solvers.h).
//
// Which tensors (graph models, main graph):
//   MatMul input B [K, N]              axis 0 (stored one output column per row)
//   Gemm input B, transB = 0 [K, N]    axis 0;  transB = 1 [N, K]: axis 1
//   Gather input 0 (axis 0) [V, D]     axis 1, with "embeddings": true (same scheme)
//   Conv input W [O, I, k...]          int8 per output channel (int8c), with "conv": true;
//                                      conv_group_size 32/64/128: int8 symmetric in groups
//                                      along the flattened [I x k...] axis (int8g32 ...)
// A candidate must be an F32 initializer of the main graph (not also a graph input),
// selected by include/exclude (matched on the tensor name), have at least min_elements
// elements, be 2-D (Conv: rank >= 3), and every use must be one of the roles above with
// one and the same layout. Everything else is skipped with the reason (the plan lists
// each; the summary groups them): not an initializer, excluded, below min_elements, shared
// with an op that cannot read an encoded tensor, used with two layouts, already encoded...
// Checkpoints (.safetensors, no graph): every selected 2-D float tensor (f32/f16/bf16) is
// a candidate with axis 1 (the [out, in] layout of nn.Linear weights); rtn only (GPTQ and
// AWQ need a graph to capture activations: the pass manager reports that). Tensors are
// quantized and replaced one at a time, so only one float copy exists at once; `edgepack
// compress` streams checkpoints instead (plan_streaming, pass.h; quantize_weights.h).
//
// GPTQ / AWQ need the recipe's calibration data. Activations are captured once from the
// model as it is before this pass (not sequentially through already quantized layers),
// for MatMul / Gemm (transA = 0) weights with a single use; Conv and Gather tables are
// quantized with rtn (the plan says so per tensor). Statistics are captured in batches of
// at most 1 GiB (the calibration set is re-run per batch), so memory stays bounded.
// GPTQ: a Cholesky failure after the damping retries is an error naming the tensor, never
// a silent fallback. AWQ searches one scale vector per activation, shared by every
// quantized matrix that reads it (q/k/v share theirs), and applies 1/s on the activation
// side: folded into the producing Mul's per-channel constant when the activation comes
// from a Mul by a [K] initializer (the RMSNorm weight in Llama graphs) and feeds only the
// quantized matrices; otherwise a Mul by 1/s ("<activation>_awq_inv") is inserted before
// them. GPTQ and AWQ compute every new tensor before changing the model, so an error
// leaves the model as it was.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "calibration/calibration.h"
#include "calibration/solvers.h"
#include "ir/checked.h"
#include "ir/encoding.h"
#include "ir/ir.h"
#include "ir/progress.h"
#include "passes/pass.h"
#include "passes/quantize_weights.h"
#include "passes/selector.h"

namespace ep {

namespace {

constexpr uint64_t kStatsBudgetBytes = uint64_t{1} << 30;

bool is_onnx_op(const Node& n, std::string_view op) {
    return n.op_type == op && (n.domain.empty() || n.domain == "ai.onnx");
}

std::string mib(uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
    return buf;
}

std::string lower_dtype(DType t) {
    std::string s(dtype_name(t));
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

enum class Role : uint8_t { MatMulB, GemmB, GatherTable, ConvW };

struct Candidate {
    std::string name;
    Encoding encoding;
    Role role = Role::MatMulB;
    bool calibrated = false;  // gptq / awq applies (else rtn)
    std::string activation;   // the A input (calibrated only)
    int64_t k = 0;            // reduction length
    int64_t rows = 0;         // output channels (stored rows)
    uint64_t old_bytes = 0, new_bytes = 0;
};

struct Analysis {
    std::vector<Candidate> candidates;
    std::vector<Skipped> skipped;
};

// How the weights are rounded: rtn (round to nearest), or with calibration data GPTQ / AWQ.
enum class Method : uint8_t { Rtn, Gptq, Awq };

std::string_view method_name(Method m) {
    switch (m) {
        case Method::Rtn:
            return "rtn";
        case Method::Gptq:
            return "gptq";
        case Method::Awq:
            return "awq";
    }
    return "?";
}

// The recipe loader checks the value against the option's choices; configure() called
// directly gets the same message for anything else.
Method parse_method(const std::string& name) {
    for (Method m : {Method::Rtn, Method::Gptq, Method::Awq})
        if (method_name(m) == name) return m;
    throw InputError(cat("method: ", name, " is not supported (expected rtn, gptq or awq)"));
}

class QuantizeWeights final : public Pass {
  public:
    std::string_view name() const override { return "quantize-weights"; }
    PassKind kind() const override { return PassKind::Quantization; }
    std::string_view description() const override {
        return "encode MatMul/Gemm weights (optionally Conv, Gather tables) as int8/int4 "
               "with rtn, gptq or awq";
    }
    uint32_t needs() const override {
        return method_ == Method::Rtn ? kNeedsNothing : (kNeedsCalibrationData | kNeedsGraph);
    }
    std::vector<OptionSpec> option_specs() const override {
        return {
            {"bits", OptionType::Int, 4, "bits per weight: 4 or 8", {}, 4, 8},
            {"group_size",
             OptionType::Int,
             32,
             "weights per scale along the reduction axis: 32, 64, 128; 0 = one scale per "
             "output channel (int8 only)",
             {},
             0,
             128},
            {"symmetric", OptionType::Bool, true, "symmetric codes (false: with a zero point)", {}},
            {"scale_dtype", OptionType::String, "f16", "group scale dtype", {"f16", "bf16"}},
            {"method",
             OptionType::String,
             "rtn",
             "rtn (round to nearest), gptq or awq (both need calibration data)",
             {"rtn", "gptq", "awq"}},
            {"min_elements", OptionType::Int, 1024, "smaller tensors stay float", {}, 0, 9e18},
            {"conv", OptionType::Bool, false, "also Conv weights (int8 per output channel)", {}},
            {"conv_group_size",
             OptionType::Int,
             0,
             "Conv weights: 0 = int8 per output channel; 32, 64, 128 = int8 in groups of "
             "that many along the reduction axis (symmetric, scale_dtype scales)",
             {},
             0,
             128},
            {"embeddings", OptionType::Bool, false, "also Gather tables (embeddings)", {}},
            {"damp",
             OptionType::Number,
             0.01,
             "gptq: damping, relative to mean diag(H)",
             {},
             0,
             10},
            {"block_size",
             OptionType::Int,
             128,
             "gptq: columns per lazy-update block",
             {},
             1,
             65536},
            {"act_order",
             OptionType::Bool,
             false,
             "gptq: visit columns in decreasing Hessian diagonal",
             {}},
            {"grid", OptionType::Int, 20, "awq: exponent grid points in [0, 1)", {}, 1, 1000},
            {"clip",
             OptionType::Bool,
             true,
             "awq: search a clipping range per group (AutoAWQ's auto_clip)",
             {}},
            {"awq_rows",
             OptionType::Int,
             1024,
             "awq: calibration rows kept per activation for the grid search",
             {},
             1,
             1 << 20},
        };
    }

    void configure(const nlohmann::json& o) override {
        selector_ = Selector::from_options(o);
        int bits = o.value("bits", 4);
        int group = o.value("group_size", 32);
        bool sym = o.value("symmetric", true);
        std::string sdt = o.value("scale_dtype", "f16");
        if (bits != 4 && bits != 8)
            throw InputError(cat("bits: ", bits, " is not supported (expected 4 or 8)"));
        if (group != 0 && group != 32 && group != 64 && group != 128)
            throw InputError(cat("group_size: ", group,
                                 " is not supported (expected 0, 32, 64 "
                                 "or 128)"));
        if (group == 0) {
            if (bits != 8)
                throw InputError(
                    "group_size: 0 (one scale per output channel) is int8 only; "
                    "use bits 8, or group_size 32, 64 or 128 for int4");
            if (!sym)
                throw InputError(
                    "symmetric: int8 per output channel (group_size 0) is "
                    "symmetric only");
            if (sdt != "f16")
                throw InputError(
                    "scale_dtype: int8 per output channel (group_size 0) stores "
                    "f32 scales; remove scale_dtype");
            encoding_ = {QScheme::Int8Channel, 0, DType::F32, 1};
        } else {
            QScheme s = bits == 8 ? (sym ? QScheme::Int8Sym : QScheme::Int8Asym)
                                  : (sym ? QScheme::Int4Sym : QScheme::Int4Asym);
            encoding_ = {s, static_cast<uint16_t>(group), sdt == "bf16" ? DType::BF16 : DType::F16,
                         1};
        }
        method_ = parse_method(o.value("method", "rtn"));
        min_elements_ = o.value("min_elements", int64_t{1024});
        conv_ = o.value("conv", false);
        const int conv_group = o.value("conv_group_size", 0);
        if (conv_group != 0 && conv_group != 32 && conv_group != 64 && conv_group != 128)
            throw InputError(cat("conv_group_size: ", conv_group,
                                 " is not supported (expected 0, 32, 64 or 128)"));
        conv_encoding_ = conv_group == 0
                             ? Encoding{QScheme::Int8Channel, 0, DType::F32, 1}
                             : Encoding{QScheme::Int8Sym, static_cast<uint16_t>(conv_group),
                                        sdt == "bf16" ? DType::BF16 : DType::F16, 1};
        embeddings_ = o.value("embeddings", false);
        gptq_.damp = o.value("damp", 0.01);
        gptq_.block_size = o.value("block_size", int64_t{128});
        gptq_.act_order = o.value("act_order", false);
        grid_ = o.value("grid", 20);
        awq_rows_ = o.value("awq_rows", uint64_t{1024});
        clip_ = o.value("clip", true);
    }

    std::vector<std::string> plan(const Model& model) const override {
        Analysis a = analyze(model);
        std::vector<std::string> lines;
        uint64_t before = 0, after = 0;
        size_t n = a.candidates.size();
        for (size_t i = 0; i < n; ++i) {
            const auto& c = a.candidates[i];
            before += c.old_bytes;
            after += c.new_bytes;
            lines.push_back(plan_line(model, a, i));
        }
        for (const auto& s : a.skipped) lines.push_back(cat("skip ", s.name, ": ", s.reason));
        lines.push_back(cat(n, " tensor", n == 1 ? "" : "s", " to quantize (", method_name(method_),
                            "): ", mib(before), " -> ", mib(after), "; ", a.skipped.size(),
                            " skipped"));
        return lines;
    }

    // A checkpoint with rtn streams (pass.h): each planned tensor is encoded a chunk of
    // rows at a time as the output is written (write_rtn_chunked, quantize_weights.h).
    std::optional<StreamingPlan> plan_streaming(const Model& model) const override {
        if (method_ != Method::Rtn || !model.graph.nodes.empty()) return std::nullopt;
        Analysis a = analyze(model);
        StreamingPlan p;
        p.action = "quantize";
        uint64_t before = 0, after = 0;
        for (size_t i = 0; i < a.candidates.size(); ++i) {
            const auto& c = a.candidates[i];
            before += c.old_bytes;
            after += c.new_bytes;
            const Tensor* source = model.graph.find_initializer(c.name);
            StreamItem item;
            item.source = source;
            item.header.name = source->name;  // as make_encoded_tensor (encoding.h) has it
            item.header.dtype = DType::F32;
            item.header.shape = source->shape;
            item.header.doc_string = source->doc_string;
            item.header.encoding = c.encoding;
            item.bytes = c.new_bytes;
            item.line = plan_line(model, a, i);
            item.write = [source, e = c.encoding](ByteSink& out) {
                write_rtn_chunked(*source, e, out);
            };
            p.items.push_back(std::move(item));
        }
        p.result.skipped = std::move(a.skipped);
        p.result.rewrites = p.items.size();
        p.result.changed = p.result.rewrites > 0;
        p.result.shapes_still_valid = true;
        p.result.summary.push_back(summary_line(p.result.rewrites, before, after));
        return p;
    }

    PassResult run(Model& model, PassContext& context) override {
        Analysis a = analyze(model);
        PassResult result;
        result.skipped = a.skipped;
        uint64_t before = 0, after = 0;
        for (const auto& c : a.candidates) {
            before += c.old_bytes;
            after += c.new_bytes;
        }
        if (method_ == Method::Rtn) {
            // One tensor at a time: the float copy lives only while it is encoded.
            for (const auto& c : a.candidates) {
                Tensor* t = model.graph.find_initializer(c.name);
                *t = quantize_tensor_rtn(*t, c.encoding);
                t->check_consistent();
                ++result.rewrites;
            }
        } else {
            run_calibrated(model, context, a, result);
        }
        result.changed = result.rewrites > 0;
        result.shapes_still_valid = true;
        result.summary.insert(result.summary.begin(), summary_line(result.rewrites, before, after));
        return result;
    }

  private:
    std::string summary_line(size_t rewrites, uint64_t before, uint64_t after) const {
        return cat("quantized ", rewrites, " tensor", rewrites == 1 ? "" : "s", " to ",
                   encoding_name(encoding_), " with ", method_name(method_), ": ", mib(before),
                   " -> ", mib(after));
    }

    // The plan's line for candidate i: "[i/N] name [shape] f32 -> int4g32, A MiB -> B MiB".
    std::string plan_line(const Model& model, const Analysis& a, size_t i) const {
        const auto& c = a.candidates[i];
        const Tensor* t = model.graph.find_initializer(c.name);
        std::string how;
        if (method_ != Method::Rtn)
            how = c.calibrated ? "" : cat(" (rtn: ", role_name(c.role), ")");
        return cat("[", i + 1, "/", a.candidates.size(), "] ", c.name, " ", shape_string(t->shape),
                   " ", lower_dtype(t->dtype), " -> ", encoding_name(c.encoding), ", ",
                   mib(c.old_bytes), " -> ", mib(c.new_bytes), how);
    }

    static std::string_view role_name(Role r) {
        switch (r) {
            case Role::MatMulB:
                return "MatMul";
            case Role::GemmB:
                return "Gemm";
            case Role::GatherTable:
                return "Gather";
            case Role::ConvW:
                return "Conv";
        }
        return "?";
    }

    // Bytes of t as stored now (logical element bytes).
    static uint64_t float_bytes(const Tensor& t) { return t.data.size(); }

    Analysis analyze(const Model& model) const {
        return model.graph.nodes.empty() ? analyze_checkpoint(model) : analyze_graph(model);
    }

    Analysis analyze_checkpoint(const Model& model) const {
        Analysis a;
        for (const auto& t : model.graph.initializers) {
            std::string why = common_problem(t);
            if (why.empty() && t.shape.size() != 2)
                why = cat("rank ", t.shape.size(), " (only 2-D weights are quantized in a ",
                          "checkpoint)");
            if (why.empty() && t.dtype != DType::F32 && t.dtype != DType::F16 &&
                t.dtype != DType::BF16)
                why = cat("dtype ", lower_dtype(t.dtype), " (expected f32, f16 or bf16)");
            if (!why.empty()) {
                a.skipped.push_back({t.name, why});
                continue;
            }
            Candidate c;
            c.name = t.name;
            c.encoding = encoding_;
            c.encoding.axis = 1;
            c.role = Role::MatMulB;
            c.rows = t.shape[0];
            c.k = t.shape[1];
            c.old_bytes = float_bytes(t);
            c.new_bytes = encoded_bytes(c.encoding, c.rows, c.k).value_or(0);
            a.candidates.push_back(std::move(c));
        }
        return a;
    }

    // Problems shared by both modes; "" when none.
    std::string common_problem(const Tensor& t) const {
        if (!selector_.selects(t.name)) return "not selected by include/exclude";
        if (t.is_encoded()) return cat("already encoded (", encoding_name(t.encoding), ")");
        if (t.element_count() == 0) return "empty tensor";
        if (t.element_count() < min_elements_)
            return cat(t.element_count(), " elements, below min_elements ", min_elements_);
        return {};
    }

    Analysis analyze_graph(const Model& model) const {
        const Graph& g = model.graph;
        Analysis a;
        std::unordered_set<std::string> graph_inputs;
        for (const auto& v : g.inputs) graph_inputs.insert(v.name);
        auto uses_total = g.use_counts();
        auto producers = g.producers();

        struct Use {
            size_t node;
            size_t input;
        };
        std::unordered_map<std::string, std::vector<Use>> uses;
        for (size_t i = 0; i < g.nodes.size(); ++i)
            for (size_t k = 0; k < g.nodes[i].inputs.size(); ++k)
                if (!g.nodes[i].inputs[k].empty()) uses[g.nodes[i].inputs[k]].push_back({i, k});

        // Weight operands in node order, each name once.
        std::vector<std::string> order;
        std::unordered_set<std::string> seen;
        for (const auto& n : g.nodes) {
            std::string w;
            if ((is_onnx_op(n, "MatMul") || is_onnx_op(n, "Gemm")) && n.inputs.size() >= 2)
                w = n.inputs[1];
            else if (conv_ && is_onnx_op(n, "Conv") && n.inputs.size() >= 2)
                w = n.inputs[1];
            else if (embeddings_ && is_onnx_op(n, "Gather") && !n.inputs.empty() &&
                     g.find_initializer(n.inputs[0]))
                w = n.inputs[0];  // index lookups into computed tensors are not tables
            if (w.empty() || !seen.insert(w).second) continue;
            order.push_back(w);
        }

        for (const auto& name : order) {
            const Tensor* t = g.find_initializer(name);
            if (!t) {
                auto p = producers.find(name);
                std::string from =
                    p != producers.end()
                        ? cat("an activation computed by ", g.nodes[p->second].op_type)
                        : (graph_inputs.count(name) ? "a graph input" : "not defined in the graph");
                // Gather index tensors etc. are not weights: only report MatMul/Gemm/Conv.
                a.skipped.push_back({name, cat("not an initializer (", from, ")")});
                continue;
            }
            std::string why = common_problem(*t);
            if (why.empty() && graph_inputs.count(name))
                why = "also a graph input (can be overridden at run time)";
            if (why.empty() && t->dtype != DType::F32)
                why = cat("dtype ", lower_dtype(t->dtype), " (the graph quantizes f32 weights)");
            const auto& us = uses[name];
            if (why.empty() && uses_total[name] != us.size())
                why = "also used by a subgraph or as a graph output";
            std::optional<uint8_t> axis;
            Role role = Role::MatMulB;
            std::string activation;
            for (const auto& u : us) {
                if (!why.empty()) break;
                const Node& n = g.nodes[u.node];
                std::optional<uint8_t> ax;
                Role r = Role::MatMulB;
                if (is_onnx_op(n, "MatMul") && u.input == 1) {
                    ax = 0;
                    r = Role::MatMulB;
                } else if (is_onnx_op(n, "Gemm") && u.input == 1) {
                    ax = n.attr_int("transB", 0) ? 1 : 0;
                    r = Role::GemmB;
                } else if (embeddings_ && is_onnx_op(n, "Gather") && u.input == 0 &&
                           n.attr_int("axis", 0) == 0) {
                    ax = 1;
                    r = Role::GatherTable;
                } else if (conv_ && is_onnx_op(n, "Conv") && u.input == 1) {
                    ax = 1;
                    r = Role::ConvW;
                }
                if (!ax) {
                    why = cat("shared with ", n.op_type, " '", n.label(), "' (input ", u.input,
                              "), which cannot read an encoded tensor");
                    break;
                }
                if (axis && (*axis != *ax || r != role)) {
                    why = cat("used with two layouts (", role_name(role), " and ", role_name(r),
                              " '", n.label(), "')");
                    break;
                }
                axis = ax;
                role = r;
                if ((r == Role::MatMulB || r == Role::GemmB) && !n.inputs.empty())
                    activation = n.inputs[0];
            }
            bool matrix = role == Role::MatMulB || role == Role::GemmB || role == Role::GatherTable;
            if (why.empty() && matrix && t->shape.size() != 2)
                why = cat("rank ", t->shape.size(), " ", role_name(role),
                          " operand (only 2-D weights are quantized)");
            if (why.empty() && role == Role::ConvW && t->shape.size() < 3)
                why = cat("rank ", t->shape.size(), " Conv weight");
            if (!why.empty()) {
                a.skipped.push_back({name, why});
                continue;
            }
            Candidate c;
            c.name = name;
            c.role = role;
            c.encoding = role == Role::ConvW ? conv_encoding_ : encoding_;
            c.encoding.axis = *axis;
            auto dims = encoded_dims(c.encoding, t->shape, cat("tensor '", name, "'"));
            c.rows = dims.rows;
            c.k = dims.cols;
            c.old_bytes = float_bytes(*t);
            c.new_bytes = encoded_bytes(c.encoding, dims.rows, dims.cols).value_or(0);
            if (method_ != Method::Rtn && (role == Role::MatMulB || role == Role::GemmB)) {
                const Node& n = g.nodes[us.front().node];
                if (us.size() != 1) {
                    a.skipped.push_back(
                        {name, cat("read by ", us.size(), " nodes; ", method_name(method_),
                                   " calibrates a weight with one activation")});
                    continue;
                }
                if (role == Role::GemmB && n.attr_int("transA", 0) != 0) {
                    a.skipped.push_back(
                        {name, cat("Gemm '", n.label(), "' has transA=1; ", method_name(method_),
                                   " needs row activations")});
                    continue;
                }
                if (activation.empty()) {
                    a.skipped.push_back({name, "the node has no A input"});
                    continue;
                }
                c.calibrated = true;
                c.activation = activation;
            }
            a.candidates.push_back(std::move(c));
        }
        return a;
    }

    void run_calibrated(Model& model, PassContext& context, Analysis& a, PassResult& result) {
        if (!context.calibration)
            throw InputError(cat("method ", method_name(method_), " needs calibration data: add a ",
                                 "\"calibration\" section to the recipe"));
        // Requests: one per activation.
        std::vector<calib::CaptureRequest> requests;
        std::map<std::string, size_t> request_of;
        for (const auto& c : a.candidates) {
            if (!c.calibrated || request_of.count(c.activation)) continue;
            calib::CaptureRequest r;
            r.activation = c.activation;
            r.k = c.k;
            r.hessian = method_ == Method::Gptq;
            r.abs_mean = method_ == Method::Awq;
            r.keep_rows = method_ == Method::Awq ? awq_rows_ : 0;
            request_of[c.activation] = requests.size();
            requests.push_back(std::move(r));
        }
        for (const auto& c : a.candidates)
            if (c.calibrated && requests[request_of[c.activation]].k != c.k)
                throw InputError(cat("tensor '", c.name, "': its activation '", c.activation,
                                     "' also feeds a weight with another reduction length"));

        std::vector<calib::ActivationStats> stats(requests.size());
        if (!requests.empty()) {
            rt::ExecOptions eo;
            eo.threads = std::max(1, context.threads);
            rt::Executor exec(model, eo);
            auto samples = context.calibration->open(exec);
            if (samples->size() == 0)
                throw InputError(cat(context.calibration->what(), ": no samples"));
            result.summary.push_back(cat("calibration: ", samples->describe(), ", ",
                                         requests.size(), " activation",
                                         requests.size() == 1 ? "" : "s"));
            // Batches of requests whose statistics fit the budget; each batch runs every sample.
            std::vector<std::vector<size_t>> batches;
            uint64_t bytes = 0;
            for (size_t i = 0; i < requests.size(); ++i) {
                const auto& r = requests[i];
                uint64_t k = static_cast<uint64_t>(r.k);
                uint64_t need = (r.hessian ? k * k * 8 : 0) + k * 8 + r.keep_rows * k * 4;
                if (batches.empty() || bytes + need > kStatsBudgetBytes) {
                    batches.emplace_back();
                    bytes = 0;
                }
                bytes += need;
                batches.back().push_back(i);
            }
            auto step = progress_step(context.progress, "calibration",
                                      samples->size() * batches.size(), "samples");
            for (size_t b = 0; b < batches.size(); ++b) {
                if (batches.size() > 1)
                    step.set_detail(cat("statistics batch ", b + 1, "/", batches.size()));
                std::vector<calib::CaptureRequest> batch;
                for (size_t i : batches[b]) batch.push_back(requests[i]);
                auto got = calib::capture_activations(exec, *samples, batch, &step);
                for (size_t j = 0; j < got.size(); ++j) stats[batches[b][j]] = std::move(got[j]);
            }
        }

        // Compute every new tensor (and AWQ's activation-side edits) before changing anything.
        std::vector<Tensor> replaced;
        std::map<std::string, std::vector<float>> awq_scales;  // activation -> s
        if (method_ == Method::Awq) {
            std::map<std::string, std::vector<const Candidate*>> groups;
            for (const auto& c : a.candidates)
                if (c.calibrated) groups[c.activation].push_back(&c);
            int better = 0;
            std::string alphas;
            size_t tensors = 0;
            for (const auto& [act, members] : groups) tensors += members.size();
            auto step = progress_step(context.progress, "awq", tensors, "tensors");
            for (const auto& [act, members] : groups) {
                step.set_detail(members.size() == 1
                                    ? members[0]->name
                                    : cat(members[0]->name, " +", members.size() - 1));
                const auto& st = stats[request_of[act]];
                std::vector<std::vector<float>> ws;
                std::vector<calib::AwqMatrix> mats;
                for (const auto* c : members)
                    ws.push_back(
                        stored_floats(*model.graph.find_initializer(c->name), c->encoding));
                for (size_t m = 0; m < members.size(); ++m)
                    mats.push_back({ws[m], members[m]->rows});
                auto found =
                    calib::awq_search(members[0]->encoding, mats, members[0]->k, st.kept,
                                      static_cast<int64_t>(st.kept_rows), st.abs_mean, grid_);
                if (found.alpha > 0.0 || found.duo) ++better;
                char buf[64];
                std::snprintf(buf, sizeof buf, "%.2f%s", found.alpha, found.duo ? "d" : "");
                alphas += cat(alphas.empty() ? "" : ", ", buf);
                // The activation as the quantized weights see it (x / s), for the clip search.
                const int64_t k = members[0]->k;
                const auto clip_rows = std::min<int64_t>(static_cast<int64_t>(st.kept_rows), 256);
                std::vector<float> xs(st.kept.begin(), st.kept.begin() + clip_rows * k);
                for (int64_t i = 0; i < clip_rows; ++i)
                    for (int64_t c = 0; c < k; ++c)
                        xs[static_cast<size_t>(i * k + c)] /= found.scales[static_cast<size_t>(c)];
                for (size_t m = 0; m < members.size(); ++m) {
                    const Tensor* t = model.graph.find_initializer(members[m]->name);
                    const auto& e = members[m]->encoding;
                    const int64_t rows = members[m]->rows;
                    std::vector<float> scaled(ws[m].size());
                    for (int64_t r = 0; r < rows; ++r)
                        for (int64_t c = 0; c < k; ++c)
                            scaled[static_cast<size_t>(r * k + c)] =
                                ws[m][static_cast<size_t>(r * k + c)] *
                                found.scales[static_cast<size_t>(c)];
                    if (clip_)
                        scaled = calib::awq_clip(e, scaled, rows, k, xs, clip_rows, grid_, 0.5);
                    replaced.push_back(
                        make_encoded_tensor(*t, e, quantize_rtn(e, scaled, rows, k)));
                }
                awq_scales[act] = std::move(found.scales);
                step.advance(members.size());
            }
            step.finish();
            result.summary.push_back(
                cat("awq: ", groups.size(), " activation scale vectors (", better,
                    " other than s = 1; alpha per activation, d = ", "duo scaling: ", alphas, ")",
                    clip_ ? "; clip search" : ""));
        } else {
            int retried = 0;
            int64_t dead = 0;
            size_t tensors = 0;
            for (const auto& c : a.candidates) tensors += c.calibrated ? 1 : 0;
            auto step = progress_step(context.progress, "gptq", tensors, "tensors");
            for (const auto& c : a.candidates) {
                if (!c.calibrated) continue;
                step.set_detail(c.name);
                const Tensor* t = model.graph.find_initializer(c.name);
                const auto& st = stats[request_of[c.activation]];
                auto w = stored_floats(*t, c.encoding);
                auto r = calib::gptq_quantize(c.encoding, w, c.rows, c.k, st.hessian, gptq_,
                                              cat("tensor '", c.name, "'"));
                if (r.retries) ++retried;
                dead += r.dead_columns;
                replaced.push_back(make_encoded_tensor(*t, c.encoding, std::move(r.bytes)));
                step.advance();
            }
            step.finish();
            result.summary.push_back(cat("gptq: damp ", gptq_.damp, ", block ", gptq_.block_size,
                                         gptq_.act_order ? ", act_order" : "", "; ", retried,
                                         " tensor", retried == 1 ? "" : "s",
                                         " needed more damping; ", dead, " dead columns"));
        }
        for (const auto& c : a.candidates)
            if (!c.calibrated)
                replaced.push_back(
                    quantize_tensor_rtn(*model.graph.find_initializer(c.name), c.encoding));

        // Apply.
        for (auto& t : replaced) {
            *model.graph.find_initializer(t.name) = std::move(t);
            ++result.rewrites;
        }
        if (method_ == Method::Awq) apply_awq_inverse(model, a, awq_scales, result);
    }

    // 1/s on the activation side: fold into the producing Mul's per-channel constant, or
    // insert a Mul before the quantized matrices.
    void apply_awq_inverse(Model& model, const Analysis& a,
                           const std::map<std::string, std::vector<float>>& scales,
                           PassResult& result) {
        Graph& g = model.graph;
        std::unordered_set<std::string> taken;
        for (const auto& v : g.inputs) taken.insert(v.name);
        for (const auto& t : g.initializers) taken.insert(t.name);
        for (const auto& n : g.nodes) taken.insert(n.outputs.begin(), n.outputs.end());
        auto fresh = [&](const std::string& base) {
            std::string n = base;
            for (int i = 1; taken.count(n); ++i) n = cat(base, "_", i);
            taken.insert(n);
            return n;
        };
        size_t folded = 0, inserted = 0;
        for (const auto& [act, s] : scales) {
            std::unordered_set<std::string> weights;
            for (const auto& c : a.candidates)
                if (c.calibrated && c.activation == act) weights.insert(c.name);
            const auto k = static_cast<int64_t>(s.size());
            // Consumers of the activation: all must be the quantized matrices to fold.
            auto uses = g.use_counts();
            std::vector<size_t> consumers;
            for (size_t i = 0; i < g.nodes.size(); ++i)
                if (!g.nodes[i].inputs.empty() && g.nodes[i].inputs[0] == act &&
                    g.nodes[i].inputs.size() >= 2 && weights.count(g.nodes[i].inputs[1]))
                    consumers.push_back(i);
            bool only_ours = uses[act] == consumers.size();
            auto producers = g.producers();
            auto p = producers.find(act);
            bool done = false;
            if (only_ours && p != producers.end() && is_onnx_op(g.nodes[p->second], "Mul") &&
                g.nodes[p->second].inputs.size() == 2) {
                Node& mul = g.nodes[p->second];
                for (int side = 0; side < 2; ++side) {
                    Tensor* c = g.find_initializer(mul.inputs[static_cast<size_t>(side)]);
                    if (!c || c->is_encoded() || c->dtype != DType::F32 || c->shape.empty() ||
                        c->element_count() != k || c->shape.back() != k ||
                        g.find_initializer(mul.inputs[static_cast<size_t>(1 - side)]))
                        continue;
                    bool input = std::any_of(g.inputs.begin(), g.inputs.end(),
                                             [&](const ValueInfo& v) { return v.name == c->name; });
                    if (input) continue;
                    std::vector<float> v = c->to_floats();
                    for (int64_t i = 0; i < k; ++i)
                        v[static_cast<size_t>(i)] /= s[static_cast<size_t>(i)];
                    Tensor nt = make_f32_tensor(c->name, c->shape, v);
                    if (uses[c->name] > 1) {
                        // Shared constant: a private copy for this Mul.
                        nt.name = fresh(c->name + "_awq");
                        mul.inputs[static_cast<size_t>(side)] = nt.name;
                        g.initializers.push_back(std::move(nt));
                    } else {
                        *c = std::move(nt);
                    }
                    ++folded;
                    done = true;
                    break;
                }
            }
            if (!done) {
                // Insert Mul(act, 1/s) before the first consumer.
                std::vector<float> inv(s.size());
                for (size_t i = 0; i < s.size(); ++i) inv[i] = 1.0f / s[i];
                std::string cname = fresh(act + "_awq_inv");
                std::string out = fresh(act + "_awq");
                g.initializers.push_back(make_f32_tensor(cname, {k}, inv));
                Node mul;
                mul.name = fresh(act + "_awq_mul");
                mul.op_type = "Mul";
                mul.inputs = {act, cname};
                mul.outputs = {out};
                size_t first = consumers.empty() ? g.nodes.size() : consumers.front();
                for (size_t i : consumers) g.nodes[i].inputs[0] = out;
                g.nodes.insert(g.nodes.begin() + static_cast<std::ptrdiff_t>(first),
                               std::move(mul));
                ++inserted;
            }
        }
        result.summary.push_back(cat("awq: 1/s folded into ", folded, " per-channel Mul constant",
                                     folded == 1 ? "" : "s", ", ", inserted, " Mul node",
                                     inserted == 1 ? "" : "s", " inserted"));
        if (inserted) result.shapes_still_valid = false;
    }

    Selector selector_;
    Encoding encoding_{QScheme::Int4Sym, 32, DType::F16, 1};
    Method method_ = Method::Rtn;
    int64_t min_elements_ = 1024;
    bool conv_ = false;
    Encoding conv_encoding_{QScheme::Int8Channel, 0, DType::F32, 1};  // conv_group_size
    bool embeddings_ = false;
    calib::GptqOptions gptq_;
    int grid_ = 20;
    uint64_t awq_rows_ = 1024;
    bool clip_ = true;
};

}  // namespace

std::unique_ptr<Pass> make_quantize_weights_pass() {
    return std::make_unique<QuantizeWeights>();
}

}  // namespace ep
