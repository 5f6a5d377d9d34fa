// prune: sets the least important weights of MatMul / Gemm / Conv weights to exactly 0.0
// (unstructured or N:M along the reduction axis) and stores each pruned weight sparse
// (ir/sparse.h) when that is smaller than dense. Shapes, dtypes and nodes are unchanged.
//
// Which tensors (graph models, main graph): an F32 initializer read only as
//   MatMul input B [K, N]            stored axis 0: rows = N output channels, cols = K
//   Gemm input B, transB = 0 / 1     axis 0 [K, N] / axis 1 [N, K]
//   Conv input W [O, I/g, k...]      axis 1: rows = O, cols = I/g x k... ("conv": true)
// selected by include/exclude (tensor name), with at least min_elements elements, not a
// graph input or output, and not the output layer (a node whose output is a graph output:
// the LM head / classifier, "output_layer": true to prune it). Checkpoints (.safetensors):
// every selected 2-D f32 / f16 / bf16 tensor, axis 1 ([out, in], nn.Linear), except by name
// embeddings (*embed*, *wte*, *wpe*: "embeddings": true to prune them), the output layer
// (*lm_head*, output.weight, *classifier*) and normalisation weights (*norm*, *ln_*).
// Every other initializer is skipped with its reason (the plan lists each).
//
// Scores (x = the activation the weight reads, row j of X = input channel j; all in the
// stored orientation: row r = output channel, column c = reduction index):
//   magnitude  |W_rc|; scope "layer": the floor(s * size) lowest of the tensor pruned;
//              scope "global": one threshold over every candidate (floor(s * total))
//   wanda      |W_rc| x ||X_c||_2 (Sun et al. 2023): the floor(s * cols) lowest of each
//              output row pruned; ||X_c||^2 = sum over the calibration rows of x_c^2
//              (calib::CaptureRequest::sum_squares)
//   sparsegpt  calib::sparsegpt_prune (calibration/solvers.h) on the layer Hessian
//              2/n X^T X (the capture GPTQ uses): prunes and updates the kept weights
// N:M ("2:4", "4:8", any "n:m", 1 <= n < m <= 64): in every run of m consecutive
// reduction-axis columns of a row, the m - n lowest scores are pruned; a weight whose
// reduction length is not a multiple of m is skipped with the reason. Ties prune the lower
// index first, so the mask is deterministic.
// Sparsity: a number (every tensor), or {glob: number} per tensor name (the longest matching
// glob wins; a tensor no glob matches is skipped). OWL (Yin et al. 2024, "owl": true,
// unstructured, one number): per tensor l the outlier ratio D_l = the fraction of its
// scores (wanda's |W| x ||X||, or |W| without calibration) above owl_m x their mean; the
// D_l are mapped onto [0, 2 lambda] by min-max, and s_l = s - (that - its mean), so
// tensors with many outliers are pruned less and the mean of s_l over tensors is s
// (clamped to [0, 0.99]).
// Calibration (wanda, sparsegpt) is captured once from the model as it is before the pass
// (not sequentially through already pruned layers), for weights read by one MatMul / Gemm
// (transA = 0) of the main graph.
// Storage ("auto"): sparse (bitmask; n:m for an N:M pattern) when its bytes are fewer than
// the dense tensor's, else dense; "sparse" / "dense" force one. Every new tensor is computed
// before the model changes, so an error leaves it as it was.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "calibration/calibration.h"
#include "calibration/solvers.h"
#include "ir/encoding.h"
#include "ir/ir.h"
#include "ir/progress.h"
#include "ir/sparse.h"
#include "passes/pass.h"
#include "passes/selector.h"

namespace ep {

namespace {

bool is_onnx_op(const Node& n, std::string_view op) {
    return n.op_type == op && (n.domain.empty() || n.domain == "ai.onnx");
}

std::string percent(double fraction) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * fraction);
    return buf;
}

enum class Method : uint8_t { Magnitude, Wanda, SparseGpt };

std::string_view method_name(Method m) {
    switch (m) {
        case Method::Magnitude:
            return "magnitude";
        case Method::Wanda:
            return "wanda";
        case Method::SparseGpt:
            return "sparsegpt";
    }
    return "?";
}

// "unstructured" (m = 0) or n:m.
struct Pattern {
    int n = 0, m = 0;
    [[nodiscard]] bool nm() const { return m > 0; }
    [[nodiscard]] std::string name() const {
        return nm() ? cat(n, ":", m) : std::string("unstructured");
    }
};

Pattern parse_pattern(const std::string& s) {
    if (s == "unstructured") return {};
    auto colon = s.find(':');
    auto number = [&](std::string_view part) -> int {
        if (part.empty() || part.size() > 3) return -1;
        int v = 0;
        for (char c : part) {
            if (c < '0' || c > '9') return -1;
            v = v * 10 + (c - '0');
        }
        return v;
    };
    if (colon != std::string::npos) {
        int n = number(std::string_view(s).substr(0, colon));
        int m = number(std::string_view(s).substr(colon + 1));
        if (n >= 1 && m >= 2 && n < m && m <= 64) return {n, m};
        if (n >= 0 && m >= 0)
            throw InputError(cat("pattern: '", s, "' is not a valid n:m pattern (keep n of every ",
                                 "m weights: 1 <= n < m <= 64, e.g. 2:4 or 4:8)"));
    }
    throw InputError(
        cat("pattern: '", s, "' is not a pattern (expected unstructured, 2:4, 4:8 or n:m)"));
}

struct Candidate {
    std::string name;
    std::string op;  // "MatMul", "Gemm", "Conv"; "tensor" on a checkpoint
    uint8_t axis = 1;
    int64_t rows = 0, cols = 0;
    std::string activation;  // the A input (calibrated methods)
    double sparsity = 0.0;   // the target (OWL changes it at run time)
};

struct Analysis {
    std::vector<Candidate> candidates;
    std::vector<Skipped> skipped;
};

// One pruned tensor, computed before the model changes.
struct Pruned {
    Tensor tensor;
    PrunedTensor record;
};

// The scores of the `count` values at `values` (stride 1): clears in `mask` (row r, the
// columns col0 + i) the bits of the k lowest, ties to the lower index.
void prune_lowest(std::span<const float> scores, int64_t k, std::vector<uint64_t>& mask,
                  int64_t words, int64_t r, int64_t col0) {
    if (k <= 0) return;
    std::vector<int64_t> idx(scores.size());
    std::iota(idx.begin(), idx.end(), int64_t{0});
    auto less = [&](int64_t a, int64_t b) {
        const float sa = scores[static_cast<size_t>(a)], sb = scores[static_cast<size_t>(b)];
        return sa < sb || (sa == sb && a < b);
    };
    if (k < static_cast<int64_t>(idx.size()))
        std::nth_element(idx.begin(), idx.begin() + k, idx.end(), less);
    for (int64_t i = 0; i < k && i < static_cast<int64_t>(idx.size()); ++i) {
        const int64_t c = col0 + idx[static_cast<size_t>(i)];
        mask[static_cast<size_t>(r * words + c / 64)] &= ~(uint64_t{1} << (c % 64));
    }
}

std::vector<uint64_t> full_mask(int64_t rows, int64_t cols) {
    const int64_t words = mask_words(cols);
    std::vector<uint64_t> mask(static_cast<size_t>(rows * words), 0);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
            mask[static_cast<size_t>(r * words + c / 64)] |= uint64_t{1} << (c % 64);
    return mask;
}

uint64_t popcount_all(std::span<const uint64_t> mask) {
    uint64_t n = 0;
    for (uint64_t w : mask) n += static_cast<uint64_t>(std::popcount(w));
    return n;
}

// The mask of scores (rows x cols, stored orientation) under `pattern`: per row (wanda) or
// per tensor (magnitude, `per_row` false) for unstructured.
std::vector<uint64_t> mask_from_scores(std::span<const float> scores, int64_t rows, int64_t cols,
                                       const Pattern& pattern, double sparsity, bool per_row) {
    auto mask = full_mask(rows, cols);
    const int64_t words = mask_words(cols);
    if (pattern.nm()) {
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c0 = 0; c0 < cols; c0 += pattern.m)
                prune_lowest(scores.subspan(static_cast<size_t>(r * cols + c0),
                                            static_cast<size_t>(pattern.m)),
                             pattern.m - pattern.n, mask, words, r, c0);
    } else if (per_row) {
        const auto k = static_cast<int64_t>(std::floor(sparsity * static_cast<double>(cols)));
        for (int64_t r = 0; r < rows; ++r)
            prune_lowest(scores.subspan(static_cast<size_t>(r * cols), static_cast<size_t>(cols)),
                         k, mask, words, r, 0);
    } else {
        // One ranking over the whole tensor: the mask viewed as one row of rows x cols
        // would not be word-aligned per row, so rank indices and clear (r, c).
        const auto total = static_cast<int64_t>(scores.size());
        const auto k = static_cast<int64_t>(std::floor(sparsity * static_cast<double>(total)));
        std::vector<int64_t> idx(scores.size());
        std::iota(idx.begin(), idx.end(), int64_t{0});
        auto less = [&](int64_t a, int64_t b) {
            const float sa = scores[static_cast<size_t>(a)], sb = scores[static_cast<size_t>(b)];
            return sa < sb || (sa == sb && a < b);
        };
        if (k < total) std::nth_element(idx.begin(), idx.begin() + k, idx.end(), less);
        for (int64_t i = 0; i < k && i < total; ++i) {
            const int64_t r = idx[static_cast<size_t>(i)] / cols,
                          c = idx[static_cast<size_t>(i)] % cols;
            mask[static_cast<size_t>(r * words + c / 64)] &= ~(uint64_t{1} << (c % 64));
        }
    }
    return mask;
}

// `t` (logical layout) with every weight whose stored-orientation bit in `mask` is clear set
// to 0.0, other bytes unchanged (any float dtype).
Tensor zero_pruned(const Tensor& t, const Candidate& c, std::span<const uint64_t> mask) {
    const size_t es = static_cast<size_t>(traits(t.dtype).bits / 8);
    auto src = t.data.bytes();
    std::vector<std::byte> bytes(src.begin(), src.end());
    const int64_t words = mask_words(c.cols);
    for (int64_t r = 0; r < c.rows; ++r)
        for (int64_t col = 0; col < c.cols; ++col) {
            if (mask_bit(mask, words, r, col)) continue;
            const int64_t logical = c.axis == 0 ? col * c.rows + r : r * c.cols + col;
            std::memset(bytes.data() + static_cast<size_t>(logical) * es, 0, es);
        }
    Tensor out;
    out.name = t.name;
    out.dtype = t.dtype;
    out.shape = t.shape;
    out.doc_string = t.doc_string;
    out.data = TensorData::owned(std::move(bytes));
    return out;
}

// A float tensor like `t` holding `stored` (rows x cols, stored orientation) as f32.
Tensor from_stored(const Tensor& t, const Candidate& c, std::span<const float> stored) {
    std::vector<float> logical(stored.size());
    for (int64_t r = 0; r < c.rows; ++r)
        for (int64_t col = 0; col < c.cols; ++col) {
            const int64_t l = c.axis == 0 ? col * c.rows + r : r * c.cols + col;
            logical[static_cast<size_t>(l)] = stored[static_cast<size_t>(r * c.cols + col)];
        }
    Tensor out = make_f32_tensor(t.name, t.shape, logical);
    out.doc_string = t.doc_string;
    return out;
}

bool name_has(const std::string& name, std::initializer_list<std::string_view> parts) {
    for (auto p : parts)
        if (glob_match(p, name)) return true;
    return false;
}

class Prune final : public Pass {
  public:
    std::string_view name() const override { return "prune"; }
    PassKind kind() const override { return PassKind::Pruning; }
    std::string_view description() const override {
        return "set the least important MatMul/Gemm/Conv weights to 0 (magnitude, wanda or "
               "sparsegpt; unstructured or n:m) and store them sparse";
    }
    uint32_t needs() const override {
        return method_ == Method::Magnitude ? kNeedsNothing : (kNeedsCalibrationData | kNeedsGraph);
    }
    std::vector<OptionSpec> option_specs() const override {
        return {
            {"method",
             OptionType::String,
             "magnitude",
             "magnitude (|W|), wanda (|W| x ||X||, needs calibration data) or sparsegpt "
             "(Hessian-based with weight update, needs calibration data)",
             {"magnitude", "wanda", "sparsegpt"}},
            {"sparsity",
             OptionType::NumberOrMap,
             0.5,
             "fraction of weights set to 0 (unstructured), or {glob: fraction} per tensor "
             "name (the longest matching glob wins); an n:m pattern prunes 1 - n/m",
             {},
             0,
             1},
            {"pattern",
             OptionType::String,
             "unstructured",
             "unstructured, or n:m (keep n of every m weights along the reduction axis): "
             "2:4, 4:8, ...",
             {}},
            {"scope",
             OptionType::String,
             "layer",
             "magnitude, unstructured: rank weights per tensor (layer) or over all "
             "pruned tensors (global)",
             {"layer", "global"}},
            {"owl",
             OptionType::Bool,
             false,
             "OWL non-uniform sparsity: tensors with more outliers pruned less, mean kept at "
             "sparsity (unstructured)",
             {}},
            {"owl_lambda",
             OptionType::Number,
             0.08,
             "OWL: the per-tensor sparsities spread over [s - lambda, s + lambda]",
             {},
             0,
             0.5},
            {"owl_m",
             OptionType::Number,
             5.0,
             "OWL: a score above owl_m x the tensor's mean score is an outlier",
             {},
             1,
             1000},
            {"storage",
             OptionType::String,
             "auto",
             "auto (sparse when smaller than dense), sparse or dense",
             {"auto", "sparse", "dense"}},
            {"min_elements", OptionType::Int, 1024, "smaller tensors are not pruned", {}, 0, 9e18},
            {"conv", OptionType::Bool, true, "also Conv weights", {}},
            {"output_layer",
             OptionType::Bool,
             false,
             "also the output layer (a node giving a graph output; lm_head, classifier)",
             {}},
            {"embeddings",
             OptionType::Bool,
             false,
             "checkpoints: also embedding tables (*embed*, *wte*, *wpe*)",
             {}},
            {"damp",
             OptionType::Number,
             0.01,
             "sparsegpt: damping, relative to mean diag(H)",
             {},
             0,
             10},
            {"block_size",
             OptionType::Int,
             128,
             "sparsegpt: columns per block (mask selection and lazy update)",
             {},
             1,
             65536},
        };
    }

    void configure(const nlohmann::json& o) override {
        selector_ = Selector::from_options(o);
        const std::string method = o.value("method", "magnitude");
        if (method == "magnitude")
            method_ = Method::Magnitude;
        else if (method == "wanda")
            method_ = Method::Wanda;
        else if (method == "sparsegpt")
            method_ = Method::SparseGpt;
        else
            throw InputError(cat("method: '", method,
                                 "' is not supported (expected magnitude, wanda or sparsegpt)"));
        pattern_ = parse_pattern(o.value("pattern", "unstructured"));
        const nlohmann::json sparsity =
            o.contains("sparsity") ? o["sparsity"] : nlohmann::json(0.5);
        sparsity_map_.clear();
        auto check_fraction = [&](const nlohmann::json& v, const std::string& field) {
            if (!v.is_number())
                throw InputError(cat(field, ": expected a number, found ", v.dump()));
            const double s = v.get<double>();
            if (!(s >= 0.0 && s < 1.0))
                throw InputError(cat(field, ": ", v.dump(),
                                     " is not a sparsity (expected a fraction in [0, 1): 0.5 "
                                     "prunes half the weights)"));
            return s;
        };
        if (sparsity.is_object()) {
            if (sparsity.empty())
                throw InputError("sparsity: expected at least one glob: fraction entry");
            for (const auto& [glob, v] : sparsity.items())
                sparsity_map_.emplace_back(glob, check_fraction(v, cat("sparsity.", glob)));
            sparsity_ = 0.0;
        } else {
            sparsity_ = check_fraction(sparsity, "sparsity");
        }
        if (pattern_.nm()) {
            const double nm = 1.0 - static_cast<double>(pattern_.n) / pattern_.m;
            if (!sparsity_map_.empty())
                throw InputError(cat("sparsity: a per-tensor map needs pattern unstructured; ",
                                     "pattern ", pattern_.name(), " prunes ", percent(nm),
                                     " of every tensor"));
            if (o.contains("sparsity") && std::fabs(sparsity_ - nm) > 1e-9 &&
                std::fabs(sparsity_ - 0.5) > 1e-9)
                throw InputError(cat("sparsity: ", sparsity_, " does not fit pattern ",
                                     pattern_.name(), ", which prunes ", percent(nm),
                                     "; remove sparsity or set it to ", nm));
            sparsity_ = nm;
        }
        global_ = o.value("scope", "layer") == "global";
        if (global_ && method_ != Method::Magnitude)
            throw InputError(
                cat("scope: global ranks |W| over all tensors, so it is magnitude "
                    "only (method ",
                    method, " compares within each layer)"));
        if (global_ && pattern_.nm())
            throw InputError(cat("scope: global applies to pattern unstructured (pattern ",
                                 pattern_.name(), " is decided within each group of ", pattern_.m,
                                 ")"));
        if (global_ && !sparsity_map_.empty())
            throw InputError("scope: global needs one sparsity number, not a per-tensor map");
        owl_ = o.value("owl", false);
        owl_lambda_ = o.value("owl_lambda", 0.08);
        owl_m_ = o.value("owl_m", 5.0);
        if (owl_ && pattern_.nm())
            throw InputError(cat("owl: needs pattern unstructured (pattern ", pattern_.name(),
                                 " fixes every tensor's sparsity)"));
        if (owl_ && !sparsity_map_.empty())
            throw InputError("owl: needs one sparsity number (the mean), not a per-tensor map");
        if (owl_ && global_) throw InputError("owl: sets per-tensor sparsities; use scope layer");
        const std::string storage = o.value("storage", "auto");
        if (storage != "auto" && storage != "sparse" && storage != "dense")
            throw InputError(cat("storage: '", storage, "' is not one of auto, sparse, dense"));
        storage_ = storage;
        min_elements_ = o.value("min_elements", int64_t{1024});
        conv_ = o.value("conv", true);
        output_layer_ = o.value("output_layer", false);
        embeddings_ = o.value("embeddings", false);
        sgpt_.damp = o.value("damp", 0.01);
        sgpt_.block_size = o.value("block_size", int64_t{128});
        if (method_ == Method::SparseGpt && pattern_.nm() && sgpt_.block_size % pattern_.m != 0)
            throw InputError(cat("block_size: ", sgpt_.block_size, " is not a multiple of ",
                                 pattern_.m, " (sparsegpt chooses pattern ", pattern_.name(),
                                 " within blocks of whole groups)"));
    }

    std::vector<std::string> plan(const Model& model) const override {
        Analysis a = analyze(model);
        std::vector<std::string> lines;
        const size_t n = a.candidates.size();
        // Global magnitude: the masks follow from |W| alone, so the plan gives the real ones.
        std::vector<std::vector<uint64_t>> masks;
        if (global_) masks = global_masks(model, a);
        uint64_t before = 0, after = 0;
        for (size_t i = 0; i < n; ++i) {
            const auto& c = a.candidates[i];
            const Tensor& t = *model.graph.find_initializer(c.name);
            uint64_t kept = 0;
            if (global_)
                kept = popcount_all(masks[i]);
            else if (pattern_.nm())
                kept = static_cast<uint64_t>(c.rows * c.cols / pattern_.m * pattern_.n);
            else if (method_ == Method::Magnitude)
                kept = static_cast<uint64_t>(c.rows * c.cols) -
                       static_cast<uint64_t>(std::floor(c.sparsity * double(c.rows * c.cols)));
            else
                kept = static_cast<uint64_t>(c.rows * (c.cols - static_cast<int64_t>(std::floor(
                                                                    c.sparsity * double(c.cols)))));
            const auto storage = choose_storage(t, c, kept);
            before += t.data.size();
            after += storage.second;
            const double s = 1.0 - double(kept) / double(c.rows * c.cols);
            lines.push_back(cat("[", i + 1, "/", n, "] ", c.name, " ", shape_string(t.shape), " ",
                                c.op, ": ", method_name(method_), " ", pattern_.name(), " ",
                                owl_ ? cat("OWL around ", percent(c.sparsity)) : percent(s), " -> ",
                                storage.first, ", ", t.data.size(), " -> ", storage.second,
                                " bytes", owl_ ? " (OWL: at run time)" : ""));
        }
        for (const auto& s : a.skipped) lines.push_back(cat("skip ", s.name, ": ", s.reason));
        lines.push_back(cat(n, " tensor", n == 1 ? "" : "s", " to prune (", method_name(method_),
                            ", ", pattern_.name(), "): ", before, " -> ", after, " bytes; ",
                            a.skipped.size(), " skipped"));
        return lines;
    }

    PassResult run(Model& model, PassContext& context) override {
        Analysis a = analyze(model);
        PassResult result;
        result.skipped = a.skipped;
        std::vector<calib::ActivationStats> stats;
        std::map<std::string, size_t> stats_of;
        if (method_ != Method::Magnitude) capture(model, context, a, result, stats, stats_of);

        // Per-channel ||X_c||^2 of candidate i (empty for magnitude).
        auto channel_norms = [&](const Candidate& c) -> std::vector<double> {
            if (method_ == Method::Magnitude) return {};
            const auto& st = stats[stats_of.at(c.activation)];
            if (method_ == Method::Wanda) return st.sum_squares;
            std::vector<double> d(static_cast<size_t>(c.cols));
            for (int64_t j = 0; j < c.cols; ++j)
                d[static_cast<size_t>(j)] = st.hessian[static_cast<size_t>(j * c.cols + j)];
            return d;
        };
        auto scores_of = [&](const Candidate& c, std::span<const float> w) {
            std::vector<float> s(w.size());
            auto norms = channel_norms(c);
            for (int64_t r = 0; r < c.rows; ++r)
                for (int64_t j = 0; j < c.cols; ++j) {
                    const size_t i = static_cast<size_t>(r * c.cols + j);
                    s[i] = std::fabs(w[i]);
                    if (!norms.empty())
                        s[i] = static_cast<float>(std::fabs(static_cast<double>(w[i])) *
                                                  std::sqrt(norms[static_cast<size_t>(j)]));
                }
            return s;
        };

        if (owl_) apply_owl(model, a, scores_of, result);

        std::vector<std::vector<uint64_t>> global;
        if (global_) global = global_masks(model, a);
        std::vector<Pruned> out;
        auto step = progress_step(context.progress, "prune", a.candidates.size(), "tensors");
        int retried = 0;
        for (size_t i = 0; i < a.candidates.size(); ++i) {
            const auto& c = a.candidates[i];
            step.set_detail(c.name);
            const Tensor& t = *model.graph.find_initializer(c.name);
            Encoding e;
            e.axis = c.axis;
            std::vector<float> w = stored_floats(t, e);
            Tensor dense;
            std::vector<uint64_t> mask;
            if (method_ == Method::SparseGpt) {
                calib::SparseGptOptions so = sgpt_;
                so.sparsity = c.sparsity;
                so.keep_n = pattern_.n;
                so.m = pattern_.m;
                const auto& st = stats[stats_of.at(c.activation)];
                auto r = calib::sparsegpt_prune(w, c.rows, c.cols, st.hessian, so,
                                                cat("tensor '", c.name, "'"));
                if (r.retries) ++retried;
                mask = std::move(r.mask);
                dense = from_stored(t, c, r.weights);
            } else {
                mask = global_ ? std::move(global[i])
                               : mask_from_scores(scores_of(c, w), c.rows, c.cols, pattern_,
                                                  c.sparsity, method_ == Method::Wanda);
                dense = zero_pruned(t, c, mask);
            }
            const uint64_t kept = popcount_all(mask);
            const auto storage = choose_storage(t, c, kept);
            Pruned p;
            p.record.name = c.name;
            p.record.op = c.op;
            p.record.method = std::string(method_name(method_));
            p.record.pattern = pattern_.name();
            p.record.sparsity = 1.0 - double(kept) / double(c.rows * c.cols);
            p.record.storage = storage.first;
            p.record.input_bytes = t.data.size();
            p.record.output_bytes = storage.second;
            if (storage.first == "dense") {
                p.tensor = std::move(dense);
            } else {
                Sparsity layout;
                layout.layout = pattern_.nm() ? SparseLayout::NM : SparseLayout::Bitmask;
                layout.n = static_cast<uint8_t>(pattern_.n);
                layout.m = static_cast<uint8_t>(pattern_.m);
                p.tensor = sparsify_tensor(dense, layout, mask, c.axis);
            }
            p.tensor.check_consistent();
            out.push_back(std::move(p));
            step.advance();
        }
        step.finish();

        // Apply.
        uint64_t before = 0, after = 0, weights = 0, zeros = 0;
        for (auto& p : out) {
            *model.graph.find_initializer(p.record.name) = std::move(p.tensor);
            before += p.record.input_bytes;
            after += p.record.output_bytes;
            const auto& c = a.candidates[result.pruned.size()];
            const auto size = static_cast<uint64_t>(c.rows * c.cols);
            weights += size;
            zeros += static_cast<uint64_t>(std::llround(p.record.sparsity * double(size)));
            result.pruned.push_back(std::move(p.record));
            ++result.rewrites;
        }
        result.changed = result.rewrites > 0;
        result.shapes_still_valid = true;
        std::vector<std::string> head{cat(
            "pruned ", result.rewrites, " tensor", result.rewrites == 1 ? "" : "s", " with ",
            method_name(method_), " (", pattern_.name(), global_ ? ", global" : "",
            owl_ ? ", OWL" : "", "): ", weights ? percent(double(zeros) / double(weights)) : "0%",
            " of their weights now 0; ", before, " -> ", after, " bytes")};
        if (method_ == Method::SparseGpt)
            head.push_back(cat("sparsegpt: damp ", sgpt_.damp, ", block ", sgpt_.block_size, "; ",
                               retried, " tensor", retried == 1 ? "" : "s",
                               " needed more damping"));
        // One line per (reading op, storage); per tensor in PassResult::pruned (the report).
        std::vector<std::pair<std::string, std::vector<const PrunedTensor*>>> groups;
        for (const auto& p : result.pruned) {
            const std::string key = cat(p.op, " ", p.storage);
            auto g = std::find_if(groups.begin(), groups.end(),
                                  [&](const auto& e) { return e.first == key; });
            if (g == groups.end()) g = groups.insert(groups.end(), {key, {}});
            g->second.push_back(&p);
        }
        for (const auto& [key, members] : groups) {
            uint64_t in = 0, outb = 0;
            double lo = 1.0, hi = 0.0;
            for (const auto* p : members) {
                in += p->input_bytes;
                outb += p->output_bytes;
                lo = std::min(lo, p->sparsity);
                hi = std::max(hi, p->sparsity);
            }
            const auto& f = *members.front();
            const std::string what = f.op == "tensor" ? "tensor" : f.op + " weight";
            head.push_back(cat(members.size(), " ", what, members.size() == 1 ? "" : "s", " ",
                               percent(lo), lo == hi ? "" : cat(" .. ", percent(hi)),
                               " zero, stored ", f.storage, " (", in, " -> ", outb, " bytes)"));
        }
        result.summary.insert(result.summary.begin(), head.begin(), head.end());
        return result;
    }

  private:
    // (encoding name, bytes) of the stored tensor with `kept` weights.
    std::pair<std::string, uint64_t> choose_storage(const Tensor& t, const Candidate& c,
                                                    uint64_t kept) const {
        Encoding e;
        e.axis = c.axis;
        e.sparse.layout = pattern_.nm() ? SparseLayout::NM : SparseLayout::Bitmask;
        e.sparse.n = static_cast<uint8_t>(pattern_.n);
        e.sparse.m = static_cast<uint8_t>(pattern_.m);
        e.sparse.kept = kept;
        const auto sections = sparse_sections(e, t.dtype, c.rows, c.cols);
        const uint64_t dense = t.data.size();
        const bool sparse =
            storage_ == "sparse" || (storage_ == "auto" && sections && sections->total < dense);
        if (sparse && sections) return {encoding_name(e), sections->total};
        return {"dense", dense};
    }

    // The masks of scope global: one ranking of |W| over every candidate.
    std::vector<std::vector<uint64_t>> global_masks(const Model& model, const Analysis& a) const {
        std::vector<std::vector<float>> scores;
        size_t total = 0;
        for (const auto& c : a.candidates) {
            Encoding e;
            e.axis = c.axis;
            auto w = stored_floats(*model.graph.find_initializer(c.name), e);
            for (auto& v : w) v = std::fabs(v);
            total += w.size();
            scores.push_back(std::move(w));
        }
        const auto k = static_cast<size_t>(std::floor(sparsity_ * double(total)));
        std::vector<std::vector<uint64_t>> masks;
        for (const auto& c : a.candidates) masks.push_back(full_mask(c.rows, c.cols));
        if (k == 0 || total == 0) return masks;
        // The k-th smallest score is the threshold: everything below it is pruned, and of
        // the scores equal to it the first ones (candidate order, then index) until k.
        std::vector<float> all;
        all.reserve(total);
        for (const auto& s : scores) all.insert(all.end(), s.begin(), s.end());
        std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k - 1), all.end());
        const float threshold = all[k - 1];
        size_t below = 0;
        for (const auto& s : scores)
            for (float v : s) below += v < threshold;
        size_t ties = k - below;
        for (size_t i = 0; i < a.candidates.size(); ++i) {
            const auto& c = a.candidates[i];
            const int64_t words = mask_words(c.cols);
            for (int64_t r = 0; r < c.rows; ++r)
                for (int64_t col = 0; col < c.cols; ++col) {
                    const float v = scores[i][static_cast<size_t>(r * c.cols + col)];
                    bool prune = v < threshold;
                    if (!prune && v == threshold && ties > 0) {
                        prune = true;
                        --ties;
                    }
                    if (prune)
                        masks[i][static_cast<size_t>(r * words + col / 64)] &=
                            ~(uint64_t{1} << (col % 64));
                }
        }
        return masks;
    }

    // OWL: per-tensor sparsities from the outlier ratios (the contract at the top).
    template <class ScoresOf>
    void apply_owl(const Model& model, Analysis& a, ScoresOf&& scores_of, PassResult& result) {
        if (a.candidates.empty()) return;
        std::vector<double> ratio;
        for (const auto& c : a.candidates) {
            Encoding e;
            e.axis = c.axis;
            auto s = scores_of(c, stored_floats(*model.graph.find_initializer(c.name), e));
            double mean = 0.0;
            for (float v : s) mean += v;
            mean /= double(s.size());
            size_t outliers = 0;
            for (float v : s) outliers += double(v) > owl_m_ * mean;
            ratio.push_back(double(outliers) / double(s.size()));
        }
        const auto [lo, hi] = std::minmax_element(ratio.begin(), ratio.end());
        const double span = *hi - *lo;
        std::vector<double> spread(ratio.size(), 0.0);
        for (size_t i = 0; i < ratio.size(); ++i)
            spread[i] = span > 0.0 ? (ratio[i] - *lo) / span * 2.0 * owl_lambda_ : 0.0;
        const double mean =
            std::accumulate(spread.begin(), spread.end(), 0.0) / double(spread.size());
        std::string range;
        double smin = 1.0, smax = 0.0;
        for (size_t i = 0; i < a.candidates.size(); ++i) {
            const double s = std::clamp(sparsity_ - (spread[i] - mean), 0.0, 0.99);
            a.candidates[i].sparsity = s;
            smin = std::min(smin, s);
            smax = std::max(smax, s);
        }
        result.summary.push_back(cat("owl: lambda ", owl_lambda_, ", M ", owl_m_,
                                     "; per-tensor sparsity ", percent(smin), " .. ", percent(smax),
                                     " (mean ", percent(sparsity_), ")"));
    }

    // Captures what wanda (sum of squares per channel) or sparsegpt (Hessian) needs.
    void capture(const Model& model, PassContext& context, const Analysis& a, PassResult& result,
                 std::vector<calib::ActivationStats>& stats,
                 std::map<std::string, size_t>& stats_of) const {
        if (!context.calibration)
            throw InputError(cat("method ", method_name(method_), " needs calibration data: add a ",
                                 "\"calibration\" section to the recipe"));
        std::vector<calib::CaptureRequest> requests;
        for (const auto& c : a.candidates) {
            if (stats_of.count(c.activation)) {
                if (requests[stats_of[c.activation]].k != c.cols)
                    throw InputError(cat("tensor '", c.name, "': its activation '", c.activation,
                                         "' also feeds a weight with another reduction length"));
                continue;
            }
            calib::CaptureRequest r;
            r.activation = c.activation;
            r.k = c.cols;
            r.hessian = method_ == Method::SparseGpt;
            r.sum_squares = method_ == Method::Wanda;
            stats_of[c.activation] = requests.size();
            requests.push_back(std::move(r));
        }
        if (requests.empty()) return;
        rt::ExecOptions eo;
        eo.threads = std::max(1, context.threads);
        rt::Executor exec(model, eo);
        auto samples = context.calibration->open_nonempty(exec);
        CalibrationRecord record;
        record.method = std::string(method_name(method_));
        record.synthetic = context.calibration->synthetic();
        record.samples = samples->size();
        record.description = samples->describe();
        record.solved = a.candidates.size();
        result.calibration = record;
        result.summary.push_back(cat("calibration: ", record.synthetic ? "synthetic random, " : "",
                                     samples->describe(), ", ", requests.size(), " activation",
                                     requests.size() == 1 ? "" : "s"));
        auto step = progress_step(context.progress, "calibration", samples->size(), "samples");
        stats = calib::capture_activations(exec, *samples, requests, &step);
        step.finish();
        for (const auto& c : a.candidates) {
            const auto& st = stats[stats_of[c.activation]];
            if (st.rows < static_cast<uint64_t>(c.cols) && method_ == Method::SparseGpt)
                result.warnings.push_back(cat("tensor '", c.name, "': ", st.rows,
                                              " calibration rows for ", c.cols,
                                              " input columns; give more calibration samples"));
        }
    }

    // The sparsity of a tensor under the recipe (nullopt: no map entry matches).
    std::optional<double> sparsity_for(const std::string& name) const {
        if (sparsity_map_.empty()) return sparsity_;
        const std::string* best = nullptr;
        std::optional<double> value;
        for (const auto& [glob, s] : sparsity_map_) {
            if (!glob_match(glob, name)) continue;
            if (best && best->size() == glob.size())
                throw InputError(cat("sparsity: '", *best, "' and '", glob, "' both match tensor '",
                                     name, "' and are equally long; make one more specific"));
            if (!best || glob.size() > best->size()) {
                best = &glob;
                value = s;
            }
        }
        return value;
    }

    Analysis analyze(const Model& model) const {
        return model.graph.nodes.empty() ? analyze_checkpoint(model) : analyze_graph(model);
    }

    // "" when the tensor may be pruned as far as the common rules go.
    std::string common_problem(const Tensor& t) const {
        if (!selector_.selects(t.name)) return "not selected by include/exclude";
        if (t.is_encoded()) return cat("already encoded (", encoding_name(t.encoding), ")");
        if (t.element_count() == 0) return "empty tensor";
        if (t.element_count() < min_elements_)
            return cat(t.element_count(), " elements, below min_elements ", min_elements_);
        return {};
    }

    // Pattern and sparsity checks shared by both modes; fills c.sparsity.
    std::string shape_problem(Candidate& c) const {
        if (pattern_.nm() && c.cols % pattern_.m != 0)
            return cat("reduction length ", c.cols, " is not a multiple of ", pattern_.m,
                       " (pattern ", pattern_.name(), " runs along the reduction axis)");
        auto s = sparsity_for(c.name);
        if (!s) return "no sparsity entry matches its name";
        if (*s == 0.0) return "sparsity 0";
        c.sparsity = *s;
        return {};
    }

    Analysis analyze_checkpoint(const Model& model) const {
        Analysis a;
        for (const auto& t : model.graph.initializers) {
            std::string why = common_problem(t);
            if (why.empty() && t.shape.size() != 2)
                why =
                    cat("rank ", t.shape.size(), " (only 2-D weights are pruned in a checkpoint)");
            if (why.empty() && t.dtype != DType::F32 && t.dtype != DType::F16 &&
                t.dtype != DType::BF16)
                why = cat("dtype ", dtype_name(t.dtype), " (expected f32, f16 or bf16)");
            if (why.empty() && !embeddings_ && name_has(t.name, {"*embed*", "*wte*", "*wpe*"}))
                why = "an embedding table (by name; \"embeddings\": true prunes it)";
            if (why.empty() && !output_layer_ &&
                name_has(t.name, {"*lm_head*", "output.weight", "*classifier*"}))
                why = "the output layer (by name; \"output_layer\": true prunes it)";
            if (why.empty() && name_has(t.name, {"*norm*", "*ln_*"}))
                why = "a normalisation weight (by name)";
            Candidate c;
            if (why.empty()) {
                c.name = t.name;
                c.op = "tensor";
                c.axis = 1;
                c.rows = t.shape[0];
                c.cols = t.shape[1];
                why = shape_problem(c);
            }
            if (!why.empty()) {
                a.skipped.push_back({t.name, why});
                continue;
            }
            a.candidates.push_back(std::move(c));
        }
        return a;
    }

    Analysis analyze_graph(const Model& model) const {
        Analysis a;
        const Graph& g = model.graph;
        struct Use {
            const Node* node;
            size_t input;
        };
        std::unordered_map<std::string, std::vector<Use>> uses;
        std::unordered_set<std::string> in_subgraph;
        std::function<void(const Graph&)> visit_sub = [&](const Graph& sub) {
            for (const auto& n : sub.nodes) {
                for (const auto& i : n.inputs) in_subgraph.insert(i);
                for (const auto& at : n.attributes)
                    for (const auto& s : at.graphs) visit_sub(s);
            }
        };
        for (const auto& n : g.nodes) {
            for (size_t k = 0; k < n.inputs.size(); ++k)
                if (!n.inputs[k].empty()) uses[n.inputs[k]].push_back({&n, k});
            for (const auto& at : n.attributes)
                for (const auto& s : at.graphs) visit_sub(s);
        }
        std::unordered_set<std::string> graph_inputs, graph_outputs;
        for (const auto& v : g.inputs) graph_inputs.insert(v.name);
        for (const auto& v : g.outputs) graph_outputs.insert(v.name);

        for (const auto& t : g.initializers) {
            std::string why;
            auto it = uses.find(t.name);
            Candidate c;
            c.name = t.name;
            if (it == uses.end()) {
                why = graph_outputs.count(t.name) ? "a graph output" : "not read by any node";
                if (in_subgraph.count(t.name)) why = "read inside a subgraph";
            } else {
                for (const auto& u : it->second) {
                    const Node& n = *u.node;
                    std::string op;
                    uint8_t axis = 1;
                    if (is_onnx_op(n, "MatMul") && u.input == 1) {
                        op = "MatMul";
                        axis = 0;
                    } else if (is_onnx_op(n, "Gemm") && u.input == 1) {
                        op = "Gemm";
                        axis = n.attr_int("transB", 0) ? 1 : 0;
                    } else if (is_onnx_op(n, "Conv") && u.input == 1) {
                        if (!conv_) {
                            why = "Conv weight; \"conv\": false leaves Conv weights dense";
                            break;
                        }
                        op = "Conv";
                    } else {
                        why = not_a_weight(n, u.input, t);
                        break;
                    }
                    if (!c.op.empty() && (c.op != op || c.axis != axis)) {
                        why = cat("used with two layouts (", c.op, " and ", op, " '", n.label(),
                                  "')");
                        break;
                    }
                    c.op = op;
                    c.axis = axis;
                    if (!output_layer_)
                        for (const auto& o : n.outputs)
                            if (graph_outputs.count(o)) {
                                why = cat("the output layer (", op, " '", n.label(),
                                          "' gives graph output '", o,
                                          "'; \"output_layer\": true prunes it)");
                                break;
                            }
                    if (!why.empty()) break;
                    if (method_ != Method::Magnitude) {
                        if (it->second.size() != 1) {
                            why =
                                cat("read by ", it->second.size(), " nodes; ", method_name(method_),
                                    " calibrates a weight with one ", "activation");
                            break;
                        }
                        if (op == "Conv") {
                            why = cat(method_name(method_),
                                      " calibrates MatMul / Gemm weights (a Conv reads image "
                                      "patches); use method magnitude for Conv");
                            break;
                        }
                        if (op == "Gemm" && n.attr_int("transA", 0) != 0) {
                            why = cat("Gemm '", n.label(), "' has transA=1; ", method_name(method_),
                                      " needs row activations");
                            break;
                        }
                        c.activation = n.inputs[0];
                    }
                }
                if (why.empty() && in_subgraph.count(t.name)) why = "also read inside a subgraph";
            }
            if (why.empty()) why = common_problem(t);
            if (why.empty() && graph_inputs.count(t.name))
                why = "also a graph input (can be overridden at run time)";
            if (why.empty() && graph_outputs.count(t.name)) why = "also a graph output";
            if (why.empty() && t.dtype != DType::F32)
                why = cat("dtype ", dtype_name(t.dtype), " (the graph prunes f32 weights)");
            if (why.empty() && c.op != "Conv" && t.shape.size() != 2)
                why = cat("rank ", t.shape.size(), " ", c.op, " operand (only 2-D weights)");
            if (why.empty() && c.op == "Conv" && t.shape.size() < 3)
                why = cat("rank ", t.shape.size(), " Conv weight");
            if (why.empty()) {
                Encoding e;
                e.axis = c.axis;
                auto dims = encoded_dims(e, t.shape, cat("tensor '", t.name, "'"));
                c.rows = dims.rows;
                c.cols = dims.cols;
                why = shape_problem(c);
            }
            if (!why.empty()) {
                a.skipped.push_back({t.name, why});
                continue;
            }
            a.candidates.push_back(std::move(c));
        }
        return a;
    }

    static std::string not_a_weight(const Node& n, size_t input, const Tensor& t) {
        if ((is_onnx_op(n, "Conv") || is_onnx_op(n, "Gemm")) && input == 2)
            return cat(t.shape.size() <= 1 ? "1-D bias" : "bias", " of a ", n.op_type,
                       " (biases are not pruned)");
        if (is_onnx_op(n, "Gather") && input == 0)
            return "Gather table (embeddings are not pruned)";
        if (is_onnx_op(n, "MatMul") || is_onnx_op(n, "Gemm") || is_onnx_op(n, "Conv"))
            return cat("input ", input, " of a ", n.op_type, ", which is not its weight operand");
        return cat("read by ", n.op_type, " (input ", input,
                   "): not a weight of a MatMul, Gemm or Conv");
    }

    Selector selector_;
    Method method_ = Method::Magnitude;
    Pattern pattern_;
    double sparsity_ = 0.5;
    std::vector<std::pair<std::string, double>> sparsity_map_;
    bool global_ = false;
    bool owl_ = false;
    double owl_lambda_ = 0.08, owl_m_ = 5.0;
    std::string storage_ = "auto";
    int64_t min_elements_ = 1024;
    bool conv_ = true, output_layer_ = false, embeddings_ = false;
    calib::SparseGptOptions sgpt_;
};

}  // namespace

std::unique_ptr<Pass> make_prune_pass() {
    return std::make_unique<Prune>();
}

}  // namespace ep
