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
//   LSTM / GRU / RNN inputs W [D, G*H, I] and R [D, G*H, H]
//                                      axis 2, with "recurrent": true (the recipe's
//                                      encoding): every row of every gate of every
//                                      direction its own scales (int8c: one per row;
//                                      grouped: groups along I / H within the row)
// The nodes of every graph count: If / Loop / Scan bodies too, a name resolved in the
// innermost graph that defines it (a body's own initializer, or one of a graph around it).
// A candidate must be an F32 initializer (not also an input or output of a graph),
// selected by include/exclude (matched on the tensor name), have at least min_elements
// elements, be 2-D (Conv: rank >= 3), and every use must be one of the roles above with
// one and the same layout. Every other initializer of the model is skipped with the reason
// (the plan lists each; the summary groups them): not an initializer, excluded, below
// min_elements, shared with an op that cannot read an encoded tensor, used with two
// layouts, already encoded, a bias, read by an op whose weight it is not...
// The summary is one line per (reading op, encoding, method) with bytes (QuantizedGroup).
// Checkpoints (.safetensors, no graph): every selected 2-D float tensor (f32/f16/bf16) is
// a candidate with axis 1 (the [out, in] layout of nn.Linear weights); rtn only (GPTQ and
// AWQ need a graph to capture activations: the pass manager reports that). Tensors are
// quantized and replaced one at a time, so only one float copy exists at once; `edgepack
// compress` streams checkpoints instead (plan_streaming, pass.h; quantize_weights.h).
//
// GPTQ / AWQ need the recipe's calibration data. Activations are captured once from the
// model as it is before this pass (not sequentially through already quantized layers),
// for MatMul / Gemm (transA = 0) weights with a single use in the main graph; Conv and
// Gather tables, and weights read inside a subgraph, are quantized with rtn (the plan says
// so per tensor). Each solved tensor is compared with its rtn encoding on the calibration
// objective over every captured row, tr(E (H + damp mean(diag H) I) E^T) with H from all
// calibration rows (calib::hessian_error; for AWQ over an activation's matrices with 1/s
// applied, so a scale searched on the row subsample is never kept where it does worse than
// no scale on the whole calibration set), and the rtn bytes are kept where they score
// lower, counted in the summary and CalibrationRecord::rtn_fallback. AWQ's ratio search,
// clip search and these checks run on every thread (PassContext::threads), each candidate
// or row by one thread, so the bytes are the same for any thread count; --time-passes shows
// each calibrated layer's time (PassResult::step_seconds). A layer with fewer calibration rows than
// input columns is a warning naming it. Statistics are captured in batches of
// at most 1 GiB (the calibration set is re-run per batch), so memory stays bounded.
// GPTQ: a Cholesky failure after the damping retries is an error naming the tensor, never
// a silent fallback.
//
// Pruned weights (passes/prune*; ir/sparse.h): a float weight stored sparse, or a dense one
// with weights exactly 0.0, is quantized with every pruned weight at the code of 0.0 (the
// mask of a sparse source, else its exact zeros): rtn and awq do so by themselves (0 rounds
// to the code of 0, and AWQ's pre-scale and clipping keep 0), GPTQ through
// GptqOptions::mask (the pruned weight's value is its error). A sparse source's output is
// stored sparse with the same layout and mask (int4g32+2:4, int8c+bitmask) when that is
// smaller than the dense encoding and the layout fits it (n:m needs group % m == 0, the
// same reduction axis); otherwise dense, the plan saying why. AWQ searches one scale vector per
// activation, shared by every quantized matrix that reads it (q/k/v share theirs), and applies 1/s
// on the activation side: folded into the producing Mul's per-channel constant when the activation
// comes from a Mul by a [K] initializer (the RMSNorm weight in Llama graphs) and feeds only the
// quantized matrices; otherwise a Mul by 1/s ("<activation>_awq_inv") is inserted before
// them. GPTQ and AWQ compute every new tensor before changing the model, so an error
// leaves the model as it was.
#include <algorithm>
#include <bit>
#include <chrono>
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
#include "ir/sparse.h"
#include "passes/mixed_precision.h"
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

enum class Role : uint8_t { MatMulB, GemmB, GatherTable, ConvW, LstmW, GruW, RnnW };

struct Candidate {
    std::string name;
    const Graph* graph = nullptr;  // the graph holding the initializer (main or a subgraph)
    Encoding encoding;
    Role role = Role::MatMulB;
    bool calibrated = false;  // gptq / awq applies (else rtn)
    std::string rtn_why;      // why rtn when the method calibrates: "Conv", "in a subgraph"
    std::string activation;   // the A input (calibrated only)
    std::string input;        // the A input of a MatMul / Gemm weight with one row-activation use
    int64_t k = 0;            // reduction length
    int64_t rows = 0;         // output channels (stored rows)
    uint64_t old_bytes = 0, new_bytes = 0;
    Sparsity sparse;        // the output stored sparse (a sparse source's layout), else none
    std::string dense_why;  // a sparse source stored dense: why
    std::string mixed_why;  // budget / plan (mixed_precision.h): how its encoding is chosen
};

struct Analysis {
    std::vector<Candidate> candidates;
    std::vector<Skipped> skipped;
    std::string mixed_line;  // a measured budget: what the plan cannot choose yet
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
        const bool measured = mixed_.budget && mixed_.sensitivity != mixed::Sensitivity::Weight;
        return method_ == Method::Rtn && !measured ? kNeedsNothing
                                                   : (kNeedsCalibrationData | kNeedsGraph);
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
            {"encoding",
             OptionType::String,
             "",
             "an encoding by name instead of bits / group_size / symmetric / scale_dtype: "
             "int4g32 (GGUF Q4_0), int8g32 (Q8_0), int4g32m (Q4_1: f16 scale and float "
             "minimum), q4_k, q6_k (llama.cpp's K-quants), int8c, int4g64a, ...",
             {}},
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
            {"allow_requantize",
             OptionType::Bool,
             false,
             "also quantize tensors the source already holds encoded (a GGUF's Q4_1 / Q8_0 "
             "/ K-quant tensors), from their dequantized values (as llama-quantize's "
             "--allow-requantize)",
             {}},
            {"recurrent",
             OptionType::Bool,
             false,
             "also LSTM / GRU / RNN weights W and R (the recipe's encoding, each gate row its "
             "own scales)",
             {}},
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
            {"budget",
             OptionType::NamedNumber,
             nullptr,
             "mixed precision: {\"bits_per_weight\": N} or {\"max_bytes\": N} over the "
             "quantized tensors; each tensor gets one of `candidates` (docs/mixed-precision.md)",
             {"bits_per_weight", "max_bytes"},
             0,
             9e18},
            {"candidates",
             OptionType::StringList,
             nlohmann::json::array(),
             "mixed precision: the encodings a budget or plan chooses from (int4g32, int8g32, ...)",
             {}},
            {"plan",
             OptionType::String,
             "",
             "mixed precision by a named rule instead of a budget: q4_k_m (llama.cpp's)",
             {"", "q4_k_m"}},
            {"sensitivity",
             OptionType::String,
             "kl",
             "budget: per-tensor error measured as output KL through the runtime, a Hessian "
             "proxy from the calibration capture, or the weight error (data-free)",
             {"kl", "hessian", "weight"}},
            {"sensitivity_samples",
             OptionType::Int,
             8,
             "budget with kl: calibration samples each measurement runs (0: all)",
             {},
             0,
             1e9},
            {"curve_points",
             OptionType::Int,
             6,
             "budget: plans quantized and measured for the report's size/KL curve",
             {},
             1,
             64},
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
        if (const std::string name = o.value("encoding", std::string()); !name.empty()) {
            // The loader fills in defaults, so a value other than the default is a conflict.
            const char* set = bits != 4      ? "bits"
                              : group != 32  ? "group_size"
                              : !sym         ? "symmetric"
                              : sdt != "f16" ? "scale_dtype"
                                             : nullptr;
            if (set)
                throw InputError(cat("encoding: ", name, " replaces bits, group_size, ",
                                     "symmetric and scale_dtype; remove ", set));
            auto e = encoding_from_name(name);
            if (!e || e->scheme == QScheme::None || e->is_sparse())
                throw InputError(cat("encoding: '", name,
                                     "' is not a quantized encoding (expected e.g. int4g32, "
                                     "int8g32, int4g32m, q4_k, q6_k, int8c, int4g64a)"));
            encoding_ = *e;
        } else if (group == 0) {
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
            encoding_ = {QScheme::Int8Channel, 0, DType::F32, 1, {}};
        } else {
            QScheme s = bits == 8 ? (sym ? QScheme::Int8Sym : QScheme::Int8Asym)
                                  : (sym ? QScheme::Int4Sym : QScheme::Int4Asym);
            encoding_ = {
                s, static_cast<uint16_t>(group), sdt == "bf16" ? DType::BF16 : DType::F16, 1, {}};
        }
        method_ = parse_method(o.value("method", "rtn"));
        min_elements_ = o.value("min_elements", int64_t{1024});
        conv_ = o.value("conv", false);
        const int conv_group = o.value("conv_group_size", 0);
        if (conv_group != 0 && conv_group != 32 && conv_group != 64 && conv_group != 128)
            throw InputError(cat("conv_group_size: ", conv_group,
                                 " is not supported (expected 0, 32, 64 or 128)"));
        conv_encoding_ = conv_group == 0 ? Encoding{QScheme::Int8Channel, 0, DType::F32, 1, {}}
                                         : Encoding{QScheme::Int8Sym,
                                                    static_cast<uint16_t>(conv_group),
                                                    sdt == "bf16" ? DType::BF16 : DType::F16,
                                                    1,
                                                    {}};
        embeddings_ = o.value("embeddings", false);
        allow_requantize_ = o.value("allow_requantize", false);
        recurrent_ = o.value("recurrent", false);
        gptq_.damp = o.value("damp", 0.01);
        gptq_.block_size = o.value("block_size", int64_t{128});
        gptq_.act_order = o.value("act_order", false);
        grid_ = o.value("grid", 20);
        awq_rows_ = o.value("awq_rows", uint64_t{1024});
        clip_ = o.value("clip", true);
        mixed_ = mixed::parse_options(o);
    }

    std::vector<std::pair<std::string, Encoding>> planned_encodings(
        const Model& model) const override {
        std::vector<std::pair<std::string, Encoding>> out;
        for (const auto& c : analyze(model).candidates)
            if (c.graph == &model.graph) out.emplace_back(c.name, output_encoding(c));
        return out;
    }

    std::vector<std::string> plan(const Model& model) const override {
        Analysis a = analyze(model);
        std::vector<std::string> lines;
        uint64_t before = 0, after = 0;
        size_t n = a.candidates.size();
        std::vector<std::string> methods;
        for (size_t i = 0; i < n; ++i) {
            const auto& c = a.candidates[i];
            before += c.old_bytes;
            after += c.new_bytes;
            lines.push_back(plan_line(model, a, i));
            methods.emplace_back(c.calibrated ? method_name(method_) : "rtn");
        }
        for (const auto& s : a.skipped) lines.push_back(cat("skip ", s.name, ": ", s.reason));
        if (!a.mixed_line.empty()) lines.push_back(a.mixed_line);
        for (const auto& g : groups(model, a, methods)) lines.push_back(quantized_group_line(g));
        lines.push_back(cat(n, " tensor", n == 1 ? "" : "s", " to quantize: ", mib(before), " -> ",
                            mib(after), "; ", a.skipped.size(), " skipped"));
        return lines;
    }

    // A checkpoint with rtn streams (pass.h): each planned tensor is encoded a chunk of
    // rows at a time as the output is written (write_rtn_chunked, quantize_weights.h).
    std::optional<StreamingPlan> plan_streaming(const Model& model) const override {
        if (method_ != Method::Rtn || !model.graph.nodes.empty()) return std::nullopt;
        Analysis a = analyze(model);
        // Sparse sources (a prune pass before this one) and encoded ones (allow_requantize)
        // are encoded in memory.
        for (const auto& c : a.candidates)
            if (model.graph.find_initializer(c.name)->is_encoded()) return std::nullopt;
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
        p.result.quantized = groups(model, a, std::vector<std::string>(a.candidates.size(), "rtn"));
        p.result.summary = summary_lines(p.result.rewrites, before, after, p.result.quantized);
        return p;
    }

    PassResult run(Model& model, PassContext& context) override {
        Analysis a = analyze(model);
        PassResult result;
        result.skipped = a.skipped;
        if (mixed_.active()) {
            // The measured budget's choice, on the model as it is before this pass.
            const auto items = mixed_items(model, a);
            auto choice = mixed::choose(model, items, mixed_, context);
            if (mixed_.budget && mixed_.sensitivity != mixed::Sensitivity::Weight)
                apply_choice(model, a, items, choice.option, "budget");
            result.summary = std::move(choice.lines);
            result.mixed_precision = std::move(choice.report);
        }
        uint64_t before = 0, after = 0;
        for (const auto& c : a.candidates) {
            before += c.old_bytes;
            after += c.new_bytes;
        }
        // The method each candidate got, for the summary's groups.
        std::vector<std::string> methods(a.candidates.size(), "rtn");
        if (method_ == Method::Rtn) {
            // One tensor at a time: the float copy lives only while it is encoded.
            for (const auto& c : a.candidates) {
                Tensor* t = find_tensor(model, c);
                Tensor q = stored_as_planned(*t, c, quantize_tensor_rtn(*t, c.encoding));
                *t = std::move(q);
                t->check_consistent();
                ++result.rewrites;
            }
        } else {
            run_calibrated(model, context, a, result, methods);
        }
        result.changed = result.rewrites > 0;
        result.shapes_still_valid = true;
        result.quantized = groups(model, a, methods);
        auto head = summary_lines(result.rewrites, before, after, result.quantized);
        result.summary.insert(result.summary.begin(), head.begin(), head.end());
        return result;
    }

  private:
    // The initializer a candidate names, in the graph that holds it.
    static Tensor* find_tensor(Model& model, const Candidate& c) {
        Tensor* found = nullptr;
        for_each_graph(model.graph, [&](Graph& g) {
            if (!found && (&g == c.graph || !c.graph)) found = g.find_initializer(c.name);
        });
        return found;
    }
    static const Tensor* find_tensor(const Model& model, const Candidate& c) {
        return find_tensor(const_cast<Model&>(model), c);
    }

    // The candidates by reading op, encoding and method (methods[i]: candidate i's), in
    // order of first appearance.
    static std::vector<QuantizedGroup> groups(const Model& model, const Analysis& a,
                                              const std::vector<std::string>& methods) {
        std::vector<QuantizedGroup> out;
        const bool checkpoint = model.graph.nodes.empty();
        for (size_t i = 0; i < a.candidates.size(); ++i) {
            const auto& c = a.candidates[i];
            QuantizedGroup key;
            key.op = checkpoint ? "tensor" : std::string(role_name(c.role));
            key.encoding = encoding_name(output_encoding(c));
            key.method = methods[i];
            auto it = std::find_if(out.begin(), out.end(), [&](const QuantizedGroup& g) {
                return g.op == key.op && g.encoding == key.encoding && g.method == key.method;
            });
            if (it == out.end()) it = out.insert(out.end(), key);
            ++it->tensors;
            it->input_bytes += c.old_bytes;
            it->output_bytes += c.new_bytes;
        }
        return out;
    }

    // "quantized N tensors: A MiB -> B MiB", then one line per group.
    static std::vector<std::string> summary_lines(size_t rewrites, uint64_t before, uint64_t after,
                                                  const std::vector<QuantizedGroup>& groups) {
        std::vector<std::string> lines{cat("quantized ", rewrites, " tensor",
                                           rewrites == 1 ? "" : "s", ": ", mib(before), " -> ",
                                           mib(after))};
        for (const auto& g : groups) lines.push_back(quantized_group_line(g));
        return lines;
    }

    // The plan's line for candidate i: "[i/N] name [shape] f32 -> int4g32, A MiB -> B MiB".
    std::string plan_line(const Model& model, const Analysis& a, size_t i) const {
        const auto& c = a.candidates[i];
        const Tensor* t = find_tensor(model, c);
        std::string how;
        if (method_ != Method::Rtn) how = c.calibrated ? "" : cat(" (rtn: ", c.rtn_why, ")");
        return cat("[", i + 1, "/", a.candidates.size(), "] ", c.name, " ", shape_string(t->shape),
                   " ", lower_dtype(t->dtype), " -> ", encoding_name(output_encoding(c)), ", ",
                   mib(c.old_bytes), " -> ", mib(c.new_bytes), how,
                   c.dense_why.empty() ? "" : cat(" (stored dense: ", c.dense_why, ")"),
                   c.mixed_why.empty() ? "" : cat(" (", c.mixed_why, ")"));
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
            case Role::LstmW:
                return "LSTM";
            case Role::GruW:
                return "GRU";
            case Role::RnnW:
                return "RNN";
        }
        return "?";
    }

    // The encoding a candidate is stored with: its quantized encoding, sparse when planned.
    static Encoding output_encoding(const Candidate& c) {
        Encoding e = c.encoding;
        e.sparse = c.sparse;
        return e;
    }

    // A sparse source keeps its layout when the quantized form can carry it and is smaller
    // sparse than dense (c.sparse, c.new_bytes); else c.dense_why says why not.
    static void plan_sparse_output(const Tensor& t, Candidate& c) {
        const Sparsity& src = t.encoding.sparse;
        if (src.is_none()) return;
        if (c.encoding.scheme == QScheme::Int4Min || is_kquant(c.encoding)) {
            c.dense_why = cat(encoding_name(c.encoding),
                              " cannot be stored sparse (its grid need not hold 0.0)");
            return;
        }
        if (t.encoding.axis != c.encoding.axis) {
            c.dense_why = cat("pruned along axis ", int{t.encoding.axis}, ", quantized along ",
                              int{c.encoding.axis});
            return;
        }
        Encoding e = c.encoding;
        e.sparse = src;
        try {
            check_sparsity(e, DType::F32, c.rows, c.k, encoding_name(e));
        } catch (const InputError& err) {
            c.dense_why = err.what();
            return;
        }
        auto sections = sparse_sections(e, DType::F32, c.rows, c.k);
        if (!sections || sections->total >= c.new_bytes) {
            c.dense_why = cat(encoding_name(e), " would not be smaller");
            return;
        }
        c.sparse = src;
        c.new_bytes = sections->total;
    }

    // The pruned-weight mask of a source in c's stored orientation: a sparse source's own
    // mask, else its exact zeros; empty when nothing is pruned (GptqOptions::mask).
    static std::vector<uint64_t> pruned_mask(const Tensor& t, const Candidate& c) {
        // A quantized source (allow_requantize) has exact zeros where its grid holds 0.0:
        // values, not pruned weights.
        if (t.encoding.is_quantized()) return {};
        std::vector<uint64_t> mask = t.encoding.is_sparse() && t.encoding.axis == c.encoding.axis
                                         ? tensor_mask(t)
                                         : nonzero_mask(densify_tensor(t), c.encoding);
        uint64_t kept = 0;
        for (uint64_t w : mask) kept += static_cast<uint64_t>(std::popcount(w));
        if (kept == static_cast<uint64_t>(c.rows * c.k)) mask.clear();
        return mask;
    }

    // The quantized tensor `q` of `source` as the plan stores it: sparse with the source's
    // layout and mask, or as it is.
    static Tensor stored_as_planned(const Tensor& source, const Candidate& c, Tensor q) {
        if (c.sparse.is_none()) return q;
        return sparsify_tensor(q, c.sparse, tensor_mask(source));
    }

    // Bytes of t as stored now (logical element bytes).
    static uint64_t float_bytes(const Tensor& t) { return t.data.size(); }

    Analysis analyze(const Model& model) const {
        Analysis a = model.graph.nodes.empty() ? analyze_checkpoint(model) : analyze_graph(model);
        if (mixed_.active()) plan_mixed(model, a);
        return a;
    }

    // Mixed precision (mixed_precision.h): the candidates as items, each with the encodings
    // it may take and their bytes (a Conv weight keeps its one encoding).
    std::vector<mixed::Item> mixed_items(const Model& model, const Analysis& a) const {
        std::vector<mixed::Item> items;
        for (const auto& c : a.candidates) {
            const Tensor& t = *find_tensor(model, c);
            mixed::Item item;
            item.name = c.name;
            item.graph = c.graph;
            item.weights = static_cast<uint64_t>(t.element_count());
            item.rows = c.rows;
            item.cols = c.k;
            item.activation = c.input;
            const auto options =
                c.role == Role::ConvW ? std::vector<Encoding>{c.encoding} : mixed_.candidates;
            for (Encoding e : options) {
                const Candidate as = with_encoding(t, c, e);
                item.options.push_back(as.encoding);
                item.bytes.push_back(as.new_bytes);
            }
            items.push_back(std::move(item));
        }
        return items;
    }

    // c with encoding e (on c's axis), its bytes and sparse storage planned again.
    static Candidate with_encoding(const Tensor& t, Candidate c, Encoding e) {
        e.axis = c.encoding.axis;
        e.sparse = {};
        c.encoding = e;
        c.sparse = {};
        c.dense_why.clear();
        c.new_bytes = encoded_bytes(e, c.rows, c.k).value_or(0);
        plan_sparse_output(t, c);
        return c;
    }

    // Sets every candidate's encoding from a choice (options per item, mixed_items' order).
    static void apply_choice(const Model& model, Analysis& a, const std::vector<mixed::Item>& items,
                             const std::vector<size_t>& option, const std::string& why) {
        for (size_t i = 0; i < a.candidates.size(); ++i) {
            auto& c = a.candidates[i];
            c = with_encoding(*find_tensor(model, c), c, items[i].options[option[i]]);
            c.mixed_why = why;
        }
    }

    // A named plan or a data-free budget is chosen here, so the plan shows it per tensor; a
    // measured budget is checked here (it fits the candidates) and chosen in run().
    void plan_mixed(const Model& model, Analysis& a) const {
        const auto items = mixed_items(model, a);
        if (!mixed_.plan.empty()) {
            apply_choice(model, a, items, mixed::named_plan(mixed_, items),
                         cat("plan ", mixed_.plan));
            return;
        }
        const uint64_t budget = mixed::budget_bytes(mixed_, items);
        if (mixed_.sensitivity == mixed::Sensitivity::Weight) {
            PassContext none;
            auto choice = mixed::choose(model, items, mixed_, none);
            apply_choice(model, a, items, choice.option, "budget, weight error");
            return;
        }
        std::string names;
        uint64_t weights = 0, smallest = 0, largest = 0;
        for (const auto& e : mixed_.candidates)
            names += cat(names.empty() ? "" : " / ", encoding_name(e));
        for (const auto& item : items) {
            weights += item.weights;
            smallest += *std::min_element(item.bytes.begin(), item.bytes.end());
            largest += *std::max_element(item.bytes.begin(), item.bytes.end());
        }
        for (auto& c : a.candidates)
            if (c.role != Role::ConvW) c.mixed_why = cat("budget: ", names);
        a.mixed_line = cat("mixed precision: budget ", mixed_.budget->describe(), " = ", budget,
                           " bytes for ", weights, " weights (the candidates give ", smallest,
                           " to ", largest, " bytes); each tensor's encoding is chosen by ",
                           mixed_.sensitivity == mixed::Sensitivity::Kl ? "kl" : "hessian",
                           " sensitivity on the calibration data when the pass runs");
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
            c.graph = &model.graph;
            c.encoding = encoding_;
            c.encoding.axis = 1;
            c.role = Role::MatMulB;
            c.rows = t.shape[0];
            c.k = t.shape[1];
            c.old_bytes = float_bytes(t);
            c.new_bytes = encoded_bytes(c.encoding, c.rows, c.k).value_or(0);
            plan_sparse_output(t, c);
            a.candidates.push_back(std::move(c));
        }
        return a;
    }

    // Problems shared by both modes; "" when none.
    std::string common_problem(const Tensor& t) const {
        if (!selector_.selects(t.name)) return "not selected by include/exclude";
        if (t.encoding.is_quantized() && !allow_requantize_)
            return cat("already encoded (", encoding_name(t.encoding), ")");
        if (t.element_count() == 0) return "empty tensor";
        if (t.element_count() < min_elements_)
            return cat(t.element_count(), " elements, below min_elements ", min_elements_);
        return {};
    }

    // One read of an initializer: input `input` of `node` in `graph`, `depth` graphs below
    // the main graph (0: the main graph; If / Loop / Scan bodies are 1 and deeper).
    struct Use {
        const Graph* graph = nullptr;
        const Node* node = nullptr;
        size_t input = 0;
        int depth = 0;
    };

    // Every initializer of the model (main graph and subgraphs) with every read of it, a
    // name resolved in the innermost enclosing graph that defines it (ONNX scoping: a
    // subgraph sees the values of the graphs around it, and its own names shadow theirs).
    struct Reads {
        struct Entry {
            const Graph* graph = nullptr;
            const Tensor* tensor = nullptr;
            std::vector<Use> uses;
            bool graph_output = false;  // also an output of some graph
            bool graph_input = false;   // also an input of its own graph
        };
        std::vector<Entry> entries;                    // initializers, main graph first
        std::unordered_map<const Tensor*, size_t> of;  // tensor -> entry
        // Weight operands in visiting order (nodes in order, a node's subgraphs right
        // after it), each once: an entry index, or a name that is not an initializer.
        struct Operand {
            std::optional<size_t> entry;
            std::string name, from;  // not an initializer: name and what defines it
        };
        std::vector<Operand> operands;
    };

    // The recurrent role of `n` (LSTM, GRU, RNN), if it is one.
    static std::optional<Role> recurrent_role(const Node& n) {
        if (is_onnx_op(n, "LSTM")) return Role::LstmW;
        if (is_onnx_op(n, "GRU")) return Role::GruW;
        if (is_onnx_op(n, "RNN")) return Role::RnnW;
        return std::nullopt;
    }

    // Whether input `k` of `n` is a weight operand under this configuration: B of MatMul /
    // Gemm, W of Conv, the table of Gather, W and R of LSTM / GRU / RNN.
    bool is_weight_input(const Node& n, size_t k) const {
        if (is_onnx_op(n, "MatMul") || is_onnx_op(n, "Gemm")) return k == 1;
        if (conv_ && is_onnx_op(n, "Conv")) return k == 1;
        if (embeddings_ && is_onnx_op(n, "Gather")) return k == 0;
        if (recurrent_ && recurrent_role(n)) return k == 1 || k == 2;
        return false;
    }

    Reads collect_reads(const Model& model) const {
        Reads r;
        for_each_graph(model.graph, [&](const Graph& g) {
            for (const auto& t : g.initializers) {
                r.of.emplace(&t, r.entries.size());
                r.entries.push_back({&g, &t, {}, false, false});
            }
        });
        struct Scope {
            std::unordered_map<std::string, const Tensor*> initializers;
            std::unordered_set<std::string> inputs;
            std::unordered_map<std::string, std::string_view> produced;  // output -> op type
        };
        std::vector<Scope> chain;
        std::unordered_set<std::string> seen_names;
        std::unordered_set<size_t> seen_entries;
        // What `name` read in the innermost graph of `chain` refers to: an initializer's
        // entry, or nullopt with `from` saying what it is.
        auto resolve = [&](const std::string& name, std::string& from) -> std::optional<size_t> {
            for (size_t i = chain.size(); i-- > 0;) {
                const Scope& scope = chain[i];
                if (auto t = scope.initializers.find(name); t != scope.initializers.end())
                    return r.of.at(t->second);
                if (auto p = scope.produced.find(name); p != scope.produced.end()) {
                    from = cat("an activation computed by ", p->second);
                    return std::nullopt;
                }
                if (scope.inputs.count(name)) {
                    from = "a graph input";
                    return std::nullopt;
                }
            }
            from = "not defined in the graph";
            return std::nullopt;
        };
        std::function<void(const Graph&)> visit = [&](const Graph& g) {
            Scope scope;
            for (const auto& t : g.initializers) scope.initializers.emplace(t.name, &t);
            for (const auto& v : g.inputs) scope.inputs.insert(v.name);
            for (const auto& n : g.nodes)
                for (const auto& o : n.outputs)
                    if (!o.empty()) scope.produced.emplace(o, n.op_type);
            chain.push_back(std::move(scope));
            const int depth = static_cast<int>(chain.size()) - 1;
            for (const auto& v : g.inputs)
                if (const Tensor* t = g.find_initializer(v.name))
                    r.entries[r.of.at(t)].graph_input = true;
            for (const auto& n : g.nodes) {
                for (size_t k = 0; k < n.inputs.size(); ++k) {
                    if (n.inputs[k].empty()) continue;
                    std::string from;
                    auto e = resolve(n.inputs[k], from);
                    if (e) r.entries[*e].uses.push_back({&g, &n, k, depth});
                    if (!is_weight_input(n, k)) continue;
                    // Gather index lookups into computed tensors are not tables.
                    if (!e && is_onnx_op(n, "Gather")) continue;
                    if (e ? seen_entries.insert(*e).second : seen_names.insert(n.inputs[k]).second)
                        r.operands.push_back({e, e ? std::string() : n.inputs[k], from});
                }
                for (const auto& a : n.attributes)
                    for (const auto& sub : a.graphs) visit(sub);
            }
            for (const auto& v : g.outputs) {
                std::string from;
                if (auto e = resolve(v.name, from)) r.entries[*e].graph_output = true;
            }
            chain.pop_back();
        };
        visit(model.graph);
        return r;
    }

    // Why an initializer that is no weight operand stays as it is. The reason names the
    // reading op, not the node, so the summary groups alike tensors (the plan names each).
    std::string not_a_weight(const Reads::Entry& e) const {
        const Tensor& t = *e.tensor;
        if (e.uses.empty()) return e.graph_output ? "a graph output" : "not read by any node";
        const Use& u = e.uses.front();
        const Node& n = *u.node;
        const std::string& op = n.op_type;
        if ((is_onnx_op(n, "Conv") || is_onnx_op(n, "Gemm")) && u.input == 2)
            return cat(t.shape.size() <= 1 ? "1-D bias" : "bias", " of a ", op,
                       " (biases stay float)");
        if (is_onnx_op(n, "Conv") && u.input == 1)
            return "Conv weight; Conv weights stay float unless \"conv\": true";
        if (is_onnx_op(n, "Gather") && u.input == 0)
            return "Gather table; Gather tables stay float unless \"embeddings\": true";
        if (recurrent_role(n) && (u.input == 1 || u.input == 2))
            return cat(op, " weight; recurrent weights stay float unless \"recurrent\": true");
        if (recurrent_role(n) && u.input == 3) return cat("bias of a ", op, " (biases stay float)");
        if (is_onnx_op(n, "MatMul") || is_onnx_op(n, "Gemm") || is_onnx_op(n, "Conv") ||
            is_onnx_op(n, "Gather"))
            return cat("input ", u.input, " of a ", op, ", which is not its weight operand");
        return cat("read by ", op, " (input ", u.input,
                   "): not a weight of a MatMul, Gemm, Conv or Gather");
    }

    Analysis analyze_graph(const Model& model) const {
        Analysis a;
        const Reads reads = collect_reads(model);
        std::unordered_set<size_t> operand_entries;
        for (const auto& op : reads.operands) {
            if (!op.entry) {
                a.skipped.push_back({op.name, cat("not an initializer (", op.from, ")")});
                continue;
            }
            operand_entries.insert(*op.entry);
            const auto& entry = reads.entries[*op.entry];
            const Tensor* t = entry.tensor;
            const std::string& name = t->name;
            std::string why = common_problem(*t);
            if (why.empty() && entry.graph_input)
                why = "also a graph input (can be overridden at run time)";
            if (why.empty() && t->dtype != DType::F32)
                why = cat("dtype ", lower_dtype(t->dtype), " (the graph quantizes f32 weights)");
            if (why.empty() && entry.graph_output) why = "also a graph output";
            const auto& us = entry.uses;
            std::optional<uint8_t> axis;
            Role role = Role::MatMulB;
            std::string activation;
            bool in_subgraph = false;
            for (const auto& u : us) {
                if (!why.empty()) break;
                const Node& n = *u.node;
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
                } else if (recurrent_ && recurrent_role(n) && (u.input == 1 || u.input == 2)) {
                    ax = 2;  // [D, G*H, I or H]: rows D*G*H, the reduction axis last
                    r = *recurrent_role(n);
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
                in_subgraph = in_subgraph || u.depth > 0;
                if ((r == Role::MatMulB || r == Role::GemmB) && !n.inputs.empty())
                    activation = n.inputs[0];
            }
            bool matrix = role == Role::MatMulB || role == Role::GemmB || role == Role::GatherTable;
            if (why.empty() && matrix && t->shape.size() != 2)
                why = cat("rank ", t->shape.size(), " ", role_name(role),
                          " operand (only 2-D weights are quantized)");
            if (why.empty() && role == Role::ConvW && t->shape.size() < 3)
                why = cat("rank ", t->shape.size(), " Conv weight");
            const bool recurrent = role == Role::LstmW || role == Role::GruW || role == Role::RnnW;
            if (why.empty() && recurrent && t->shape.size() != 3)
                why = cat("rank ", t->shape.size(), " ", role_name(role),
                          " weight (expected [num_directions, gates x hidden, columns])");
            if (!why.empty()) {
                a.skipped.push_back({name, why});
                continue;
            }
            Candidate c;
            c.name = name;
            c.graph = entry.graph;
            c.role = role;
            c.encoding = role == Role::ConvW ? conv_encoding_ : encoding_;
            c.encoding.axis = *axis;
            auto dims = encoded_dims(c.encoding, t->shape, cat("tensor '", name, "'"));
            c.rows = dims.rows;
            c.k = dims.cols;
            c.old_bytes = float_bytes(*t);
            c.new_bytes = encoded_bytes(c.encoding, dims.rows, dims.cols).value_or(0);
            plan_sparse_output(*t, c);
            if (method_ != Method::Rtn) c.rtn_why = std::string(role_name(role));
            // The activation a Hessian-proxy budget captures, whatever the method.
            if ((role == Role::MatMulB || role == Role::GemmB) && us.size() == 1 && !in_subgraph &&
                !activation.empty() &&
                !(role == Role::GemmB && us.front().node->attr_int("transA", 0) != 0))
                c.input = activation;
            if (method_ != Method::Rtn && (role == Role::MatMulB || role == Role::GemmB)) {
                const Node& n = *us.front().node;
                if (us.size() != 1) {
                    a.skipped.push_back(
                        {name, cat("read by ", us.size(), " nodes; ", method_name(method_),
                                   " calibrates a weight with one activation")});
                    continue;
                }
                if (in_subgraph) {
                    // Activations inside a subgraph cannot be captured: rtn, said per tensor.
                    c.rtn_why = cat("read inside a subgraph");
                } else if (role == Role::GemmB && n.attr_int("transA", 0) != 0) {
                    a.skipped.push_back(
                        {name, cat("Gemm '", n.label(), "' has transA=1; ", method_name(method_),
                                   " needs row activations")});
                    continue;
                } else if (activation.empty()) {
                    a.skipped.push_back({name, "the node has no A input"});
                    continue;
                } else {
                    c.calibrated = true;
                    c.rtn_why.clear();
                    c.activation = activation;
                }
            }
            a.candidates.push_back(std::move(c));
        }
        // Every other initializer, with why it is no weight to quantize.
        for (size_t i = 0; i < reads.entries.size(); ++i)
            if (!operand_entries.count(i))
                a.skipped.push_back(
                    {reads.entries[i].tensor->name, not_a_weight(reads.entries[i])});
        return a;
    }

    void run_calibrated(Model& model, PassContext& context, Analysis& a, PassResult& result,
                        std::vector<std::string>& methods) {
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
            // AWQ too: its final check against no scale reads H over every calibration row.
            r.hessian = true;
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
        using Clock = std::chrono::steady_clock;
        auto seconds_since = [](Clock::time_point t0) {
            return std::chrono::duration<double>(Clock::now() - t0).count();
        };
        const auto capture_start = Clock::now();
        if (!requests.empty()) {
            rt::ExecOptions eo;
            eo.threads = std::max(1, context.threads);
            rt::Executor exec(model, eo);
            auto samples = context.calibration->open_nonempty(exec);
            CalibrationRecord record;
            record.method = std::string(method_name(method_));
            record.synthetic = context.calibration->synthetic();
            record.samples = samples->size();
            record.description = samples->describe();
            result.calibration = record;
            result.summary.push_back(
                record.synthetic
                    ? cat("calibrated on ", record.samples, " synthetic random input",
                          record.samples == 1 ? "" : "s", " (calibration.synthetic: true), ",
                          requests.size(), " activation", requests.size() == 1 ? "" : "s")
                    : cat("calibration: ", samples->describe(), ", ", requests.size(),
                          " activation", requests.size() == 1 ? "" : "s"));
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
            result.step_seconds.emplace_back("calibration capture", seconds_since(capture_start));
        }

        // A calibration set with fewer rows than a layer has input columns gives a
        // rank-deficient Hessian (GPTQ) or too few rows to judge a scale (AWQ): said per layer.
        for (const auto& c : a.candidates) {
            if (!c.calibrated) continue;
            const auto& st = stats[request_of[c.activation]];
            if (st.rows >= static_cast<uint64_t>(c.k)) continue;
            std::string dead;
            if (!st.hessian.empty()) {
                int64_t d = 0;
                for (int64_t j = 0; j < c.k; ++j)
                    d += st.hessian[static_cast<size_t>(j * c.k + j)] == 0.0;
                dead = cat(", ", d, " dead column", d == 1 ? "" : "s");
            }
            result.warnings.push_back(
                cat("tensor '", c.name, "': ", st.rows, " calibration row", st.rows == 1 ? "" : "s",
                    " for ", c.k, " input columns (rank at most ", st.rows, dead,
                    "); the rule of thumb is at least as many rows as columns: ",
                    "give more calibration samples"));
        }

        // Compute every new tensor (and AWQ's activation-side edits) before changing anything.
        std::vector<std::pair<const Candidate*, Tensor>> replaced;
        std::vector<std::string> fallback;  // tensors kept as rtn: better on the objective
        size_t solved = 0;
        auto index_of = [&](const Candidate* c) {
            return static_cast<size_t>(c - a.candidates.data());
        };
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
                const auto layer_start = Clock::now();
                const std::string label = members.size() == 1
                                              ? members[0]->name
                                              : cat(members[0]->name, " +", members.size() - 1);
                step.set_detail(label);
                const auto& st = stats[request_of[act]];
                std::vector<std::vector<float>> ws;
                std::vector<calib::AwqMatrix> mats;
                for (const auto* c : members)
                    ws.push_back(
                        stored_floats(*model.graph.find_initializer(c->name), c->encoding));
                for (size_t m = 0; m < members.size(); ++m)
                    mats.push_back({ws[m], members[m]->rows});
                auto found = calib::awq_search(members[0]->encoding, mats, members[0]->k, st.kept,
                                               static_cast<int64_t>(st.kept_rows), st.abs_mean,
                                               grid_, context.threads);
                solved += members.size();
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
                // One scale vector per activation: AWQ or RTN for the whole group, whichever
                // has the lower error on every calibration row (not only the kept sample).
                double awq_error = 0.0, rtn_error = 0.0;
                std::vector<std::vector<std::byte>> awq_bytes, rtn_bytes;
                for (size_t m = 0; m < members.size(); ++m) {
                    const auto& e = members[m]->encoding;
                    const int64_t rows = members[m]->rows;
                    std::vector<float> scaled(ws[m].size());
                    for (int64_t r = 0; r < rows; ++r)
                        for (int64_t c = 0; c < k; ++c)
                            scaled[static_cast<size_t>(r * k + c)] =
                                ws[m][static_cast<size_t>(r * k + c)] *
                                found.scales[static_cast<size_t>(c)];
                    if (clip_)
                        scaled = calib::awq_clip(e, scaled, rows, k, xs, clip_rows, grid_, 0.5,
                                                 context.threads);
                    awq_bytes.push_back(quantize_rtn(e, scaled, rows, k));
                    rtn_bytes.push_back(quantize_rtn(e, ws[m], rows, k));
                    awq_error +=
                        calib::hessian_error(e, ws[m], rows, k, awq_bytes.back(), st.hessian,
                                             gptq_.damp, found.scales, context.threads);
                    rtn_error += calib::hessian_error(e, ws[m], rows, k, rtn_bytes.back(),
                                                      st.hessian, gptq_.damp, {}, context.threads);
                }
                const bool keep_rtn = rtn_error < awq_error;
                for (size_t m = 0; m < members.size(); ++m) {
                    const Tensor* t = model.graph.find_initializer(members[m]->name);
                    replaced.emplace_back(
                        members[m],
                        stored_as_planned(*t, *members[m],
                                          make_encoded_tensor(
                                              *t, members[m]->encoding,
                                              std::move(keep_rtn ? rtn_bytes[m] : awq_bytes[m]))));
                    methods[index_of(members[m])] = keep_rtn ? "rtn" : "awq";
                    if (keep_rtn) fallback.push_back(members[m]->name);
                }
                if (!keep_rtn) awq_scales[act] = std::move(found.scales);
                result.step_seconds.emplace_back(cat("awq ", label), seconds_since(layer_start));
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
                const auto layer_start = Clock::now();
                const Tensor* t = model.graph.find_initializer(c.name);
                const auto& st = stats[request_of[c.activation]];
                auto w = stored_floats(*t, c.encoding);
                const auto mask = pruned_mask(*t, c);
                calib::GptqOptions options = gptq_;
                options.mask = mask;
                auto r = calib::gptq_quantize(c.encoding, w, c.rows, c.k, st.hessian, options,
                                              cat("tensor '", c.name, "'"));
                if (r.retries) ++retried;
                dead += r.dead_columns;
                ++solved;
                // Never silently worse than rtn on GPTQ's own objective.
                auto rtn = quantize_rtn(c.encoding, w, c.rows, c.k);
                const bool keep_rtn =
                    calib::hessian_error(c.encoding, w, c.rows, c.k, rtn, st.hessian, r.damp, {},
                                         context.threads) <
                    calib::hessian_error(c.encoding, w, c.rows, c.k, r.bytes, st.hessian, r.damp,
                                         {}, context.threads);
                replaced.emplace_back(
                    &c, stored_as_planned(
                            *t, c,
                            make_encoded_tensor(*t, c.encoding,
                                                keep_rtn ? std::move(rtn) : std::move(r.bytes))));
                methods[index_of(&c)] = keep_rtn ? "rtn" : "gptq";
                if (keep_rtn) fallback.push_back(c.name);
                result.step_seconds.emplace_back(cat("gptq ", c.name), seconds_since(layer_start));
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
                replaced.emplace_back(
                    &c, stored_as_planned(*find_tensor(model, c), c,
                                          quantize_tensor_rtn(*find_tensor(model, c), c.encoding)));
        if (result.calibration) {
            result.calibration->solved = solved;
            result.calibration->rtn_fallback = fallback;
            std::string names;
            for (size_t i = 0; i < fallback.size() && i < 8; ++i)
                names += cat(i ? ", " : "", fallback[i]);
            if (fallback.size() > 8) names += cat(" and ", fallback.size() - 8, " more");
            result.summary.push_back(cat("per-tensor RTN fallback: ", fallback.size(), " of ",
                                         solved, fallback.empty() ? "" : cat(" (", names, ")"),
                                         ": rtn scored better on ", method_name(method_),
                                         "'s objective"));
        }

        // Apply.
        for (auto& [c, t] : replaced) {
            *find_tensor(model, *c) = std::move(t);
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
    Encoding encoding_{QScheme::Int4Sym, 32, DType::F16, 1, {}};
    bool allow_requantize_ = false;
    Method method_ = Method::Rtn;
    int64_t min_elements_ = 1024;
    bool conv_ = false;
    bool recurrent_ = false;  // LSTM / GRU / RNN W and R (axis 2)
    Encoding conv_encoding_{QScheme::Int8Channel, 0, DType::F32, 1, {}};  // conv_group_size
    bool embeddings_ = false;
    calib::GptqOptions gptq_;
    int grid_ = 20;
    uint64_t awq_rows_ = 1024;
    bool clip_ = true;
    mixed::Options mixed_;  // budget / candidates / plan (mixed_precision.h)
};

}  // namespace

std::unique_ptr<Pass> make_quantize_weights_pass() {
    return std::make_unique<QuantizeWeights>();
}

}  // namespace ep
