// Tensor comparison metrics (definitions in metrics.h and docs/validate.md). Everything
// is accumulated in double, sequentially, in sample and row-major order.
#include "runtime-check/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "ir/ir.h"

namespace ep::rt {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

template <typename T>
void append_as_doubles(const Tensor& t, std::vector<double>& out) {
    auto bytes = t.data.bytes();
    size_t n = bytes.size() / sizeof(T);
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        T v;
        std::memcpy(&v, bytes.data() + i * sizeof(T), sizeof(T));
        out.push_back(static_cast<double>(v));
    }
}

bool rows_are_probabilities(std::span<const double> values, int64_t classes) {
    for (double v : values)
        if (!(v >= 0.0 && v <= 1.0)) return false;  // also rejects NaN
    size_t c = static_cast<size_t>(classes);
    for (size_t r = 0; r + c <= values.size(); r += c) {
        double sum = 0;
        for (size_t i = 0; i < c; ++i) sum += values[r + i];
        if (std::abs(sum - 1.0) > kProbabilitySumTolerance) return false;
    }
    return true;
}

// log-sum-exp of a row; nullopt when the row has no finite maximum.
std::optional<double> log_sum_exp(std::span<const double> x) {
    double m = -kInf;
    for (double v : x) {
        if (std::isnan(v)) return std::nullopt;
        m = std::max(m, v);
    }
    if (!std::isfinite(m)) return std::nullopt;
    double s = 0;
    for (double v : x) s += std::exp(v - m);
    return m + std::log(s);
}

// Sizes around `axis`: elements before it (outer), on it, after it (inner).
struct AxisSplit {
    size_t outer = 1, along = 1, inner = 1;
};
AxisSplit split_at(std::span<const int64_t> shape, size_t axis) {
    AxisSplit s;
    for (size_t i = 0; i < shape.size(); ++i) {
        auto d = static_cast<size_t>(shape[i]);
        if (i < axis)
            s.outer *= d;
        else if (i == axis)
            s.along = d;
        else
            s.inner *= d;
    }
    return s;
}

// Ops that move values without changing what they mean.
bool passes_meaning_through(const std::string& op) {
    return op == "Identity" || op == "Reshape" || op == "Flatten" || op == "Squeeze" ||
           op == "Unsqueeze";
}

}  // namespace

const std::vector<std::string>& output_kind_names() {
    static const std::vector<std::string> names{"classes", "sequence", "map", "embedding",
                                                "regression"};
    return names;
}

const char* output_kind_name(OutputKind kind) {
    return output_kind_names()[static_cast<size_t>(kind)].c_str();
}

std::optional<OutputKind> output_kind_from_name(std::string_view name) {
    const auto& names = output_kind_names();
    for (size_t i = 0; i < names.size(); ++i)
        if (names[i] == name) return static_cast<OutputKind>(i);
    return std::nullopt;
}

InferredKind infer_output_kind(const Model& model, const std::string& output, DType dtype,
                               std::span<const int64_t> shape) {
    const Graph& graph = model.graph;
    const auto rank = static_cast<int64_t>(shape.size());
    const int64_t last = shape.empty() ? 0 : shape.back();
    auto make = [](OutputKind kind, std::string reason) {
        InferredKind k;
        k.spec.kind = kind;
        k.reason = std::move(reason);
        return k;
    };
    if (traits(dtype).kind != DTypeKind::Float)
        return make(OutputKind::Regression, cat(dtype_name(dtype), " values, not scores"));

    std::unordered_map<std::string, const Node*> producer;
    for (const auto& node : graph.nodes)
        for (const auto& o : node.outputs)
            if (!o.empty()) producer.emplace(o, &node);
    auto find = [&](const std::string& name) -> const Node* {
        auto it = producer.find(name);
        return it == producer.end() ? nullptr : it->second;
    };
    const Node* node = find(output);
    while (node && passes_meaning_through(node->op_type) && !node->inputs.empty())
        node = find(node->inputs[0]);
    const std::string op = node ? node->op_type : std::string("a graph input or initializer");
    const std::string shape_text = cat("rank ", rank);

    if (op == "Softmax" || op == "LogSoftmax") {
        // Before opset 13 the default axis is 1 (over the flattened trailing dimensions).
        int64_t fallback = model.opset("") >= 13 ? -1 : 1;
        int64_t axis = node->attr_int("axis", fallback);
        if (axis < 0) axis += rank;
        if (axis == rank - 1 && last >= 2)
            return make(rank <= 2 ? OutputKind::Classes : OutputKind::Sequence,
                        cat(op, " over the last axis, ", shape_text));
        return make(rank >= 3 ? OutputKind::Map : OutputKind::Regression,
                    cat(op, " over axis ", axis, ", not the last, ", shape_text));
    }
    if (op == "Sigmoid")
        return make(rank >= 3 ? OutputKind::Map : OutputKind::Regression,
                    cat("Sigmoid output, ", shape_text));
    if (op == "LpNormalization") return make(OutputKind::Embedding, "LpNormalization output");
    if (op == "Div" && node->inputs.size() == 2) {
        // x / ||x||: the divisor comes (through an epsilon's Add / Max / Clip, or a
        // broadcast) from ReduceL2, or from Sqrt of a sum of squares.
        const Node* d = find(node->inputs[1]);
        for (int hops = 0; d && hops < 4; ++hops) {
            if (d->op_type == "ReduceL2")
                return make(OutputKind::Embedding, "Div by its ReduceL2 norm");
            if (d->op_type == "Sqrt") {
                const Node* s = d->inputs.empty() ? nullptr : find(d->inputs[0]);
                if (s && (s->op_type == "ReduceSumSquare" || s->op_type == "ReduceSum"))
                    return make(OutputKind::Embedding, cat("Div by Sqrt of ", s->op_type));
                break;
            }
            if (d->op_type != "Add" && d->op_type != "Max" && d->op_type != "Clip" &&
                d->op_type != "Expand" && !passes_meaning_through(d->op_type))
                break;
            d = d->inputs.empty() ? nullptr : find(d->inputs[0]);
        }
    }
    if (rank == 2 && last >= 2)
        return make(OutputKind::Classes, cat(op, " output, rank 2: [rows, classes]"));
    if (rank == 3 && last >= 2) {
        bool linear = op == "MatMul" || op == "Gemm" || op == "MatMulNBits";
        if (op == "Add")
            for (const auto& in : node->inputs)
                if (const Node* a = find(in); a && (a->op_type == "MatMul" || a->op_type == "Gemm"))
                    linear = true;
        if (linear)
            return make(OutputKind::Sequence,
                        cat(op, " output (a linear layer over the last axis), rank 3"));
    }
    if (rank >= 4) return make(OutputKind::Map, cat(op, " output, ", shape_text));
    return make(OutputKind::Regression, cat(op, " output, ", shape_text));
}

const char* class_input_name(ClassInput kind) {
    switch (kind) {
        case ClassInput::Logits:
            return "logits";
        case ClassInput::Probabilities:
            return "probabilities";
        case ClassInput::Mixed:
            return "mixed";
    }
    return "?";
}

std::vector<double> tensor_as_doubles(const Tensor& t, const std::string& what) {
    std::vector<double> out;
    if (t.data.size() != t.expected_bytes())
        throw InputError(cat(what, ": ", t.data.size(), " bytes of data for ", dtype_name(t.dtype),
                             " ", shape_string(t.shape)));
    switch (t.dtype) {
        case DType::F64:
            append_as_doubles<double>(t, out);
            break;
        case DType::F32:
            append_as_doubles<float>(t, out);
            break;
        case DType::F16:
        case DType::BF16: {
            auto f = t.to_floats();
            out.assign(f.begin(), f.end());
            break;
        }
        case DType::I64:
            append_as_doubles<int64_t>(t, out);
            break;
        case DType::I32:
            append_as_doubles<int32_t>(t, out);
            break;
        case DType::I16:
            append_as_doubles<int16_t>(t, out);
            break;
        case DType::I8:
            append_as_doubles<int8_t>(t, out);
            break;
        case DType::U64:
            append_as_doubles<uint64_t>(t, out);
            break;
        case DType::U32:
            append_as_doubles<uint32_t>(t, out);
            break;
        case DType::U16:
            append_as_doubles<uint16_t>(t, out);
            break;
        case DType::U8:
        case DType::Bool:
            append_as_doubles<uint8_t>(t, out);
            break;
        default:
            throw InputError(cat(what, ": cannot compare ", dtype_name(t.dtype),
                                 " values (numeric tensors only)"));
    }
    return out;
}

double cosine(std::span<const double> a, std::span<const double> b) {
    double aa = 0, bb = 0, ab = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        if (!std::isfinite(a[i]) || !std::isfinite(b[i])) continue;
        aa += a[i] * a[i];
        bb += b[i] * b[i];
        ab += a[i] * b[i];
    }
    if (aa == 0.0 && bb == 0.0) return 1.0;
    if (aa == 0.0 || bb == 0.0) return 0.0;
    return std::clamp(ab / (std::sqrt(aa) * std::sqrt(bb)), -1.0, 1.0);
}

double kl_from_logits(std::span<const double> p, std::span<const double> q) {
    auto lp = log_sum_exp(p), lq = log_sum_exp(q);
    if (!lp || !lq) return kInf;
    double kl = 0;
    for (size_t i = 0; i < p.size(); ++i) {
        double log_p = p[i] - *lp;
        double prob = std::exp(log_p);
        if (prob == 0.0) continue;  // 0 * log 0 = 0
        kl += prob * (log_p - (q[i] - *lq));
    }
    return std::isnan(kl) ? kInf : kl;
}

double kl_from_probabilities(std::span<const double> p, std::span<const double> q) {
    double kl = 0;
    for (size_t i = 0; i < p.size(); ++i) {
        double a = std::max(p[i], kProbabilityEpsilon), b = std::max(q[i], kProbabilityEpsilon);
        kl += a * (std::log(a) - std::log(b));
    }
    return std::isnan(kl) ? kInf : kl;
}

int64_t argmax(std::span<const double> row) {
    int64_t best = 0;
    bool found = false;
    for (size_t i = 0; i < row.size(); ++i) {
        if (std::isnan(row[i])) continue;
        if (!found || row[i] > row[static_cast<size_t>(best)]) {
            best = static_cast<int64_t>(i);
            found = true;
        }
    }
    return best;
}

std::vector<int64_t> top_k(std::span<const double> row, int64_t k) {
    std::vector<int64_t> idx(row.size());
    std::iota(idx.begin(), idx.end(), 0);
    auto key = [&](int64_t i) {
        double v = row[static_cast<size_t>(i)];
        return std::isnan(v) ? -kInf : v;
    };
    k = std::clamp<int64_t>(k, 0, static_cast<int64_t>(row.size()));
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int64_t a, int64_t b) {
        double va = key(a), vb = key(b);
        return va > vb || (va == vb && a < b);
    });
    idx.resize(static_cast<size_t>(k));
    return idx;
}

double percentile(std::span<const double> sorted, double fraction) {
    if (sorted.empty()) return 0;
    if (fraction <= 0) return sorted.front();
    if (fraction >= 1) return sorted.back();
    double p = fraction * static_cast<double>(sorted.size() - 1);
    auto ip = static_cast<size_t>(p);
    p -= static_cast<double>(ip);
    double lo = sorted[ip], hi = sorted[std::min(ip + 1, sorted.size() - 1)];
    if (p == 0.0 || lo == hi) return lo;  // keeps +inf from turning into NaN
    return (1 - p) * lo + p * hi;
}

Estimate mean_and_uncertainty(std::span<const double> values) {
    Estimate e;
    if (values.empty()) return e;
    double n = static_cast<double>(values.size());
    double sum = 0;
    for (double v : values) sum += v;
    e.value = sum / n;
    if (values.size() < 2 || !std::isfinite(e.value)) return e;
    double ss = 0;
    for (double v : values) ss += (v - e.value) * (v - e.value);
    e.uncertainty = std::sqrt(ss / n / (n - 1));
    return e;
}

TensorComparator::TensorComparator(std::string name, std::optional<ComparisonSpec> spec)
    : name_(std::move(name)), spec_(spec) {}

void TensorComparator::set_spec(const ComparisonSpec& spec) {
    if (samples_ > 0) throw InternalError(cat("tensor '", name_, "': spec set after a sample"));
    spec_ = spec;
}

void TensorComparator::set_labels(std::span<const int64_t> labels, std::string labels_source) {
    labels_ = labels;
    labels_source_ = std::move(labels_source);
    labels_set_ = true;
}

void TensorComparator::add(const Tensor& reference, const Tensor& candidate) {
    std::string what = cat("tensor '", name_, "' (sample ", samples_, ")");
    if (reference.shape != candidate.shape)
        throw InputError(cat(what, ": the reference gives ", shape_string(reference.shape),
                             ", the candidate ", shape_string(candidate.shape)));
    auto ref = tensor_as_doubles(reference, cat(what, " of the reference"));
    auto cand = tensor_as_doubles(candidate, cat(what, " of the candidate"));
    if (samples_ == 0) {
        dtype_ = reference.dtype;
        shape_ = reference.shape;
    }
    ++samples_;
    elements_ += ref.size();
    for (size_t i = 0; i < ref.size(); ++i) {
        double r = ref[i], c = cand[i];
        if (!std::isfinite(r) || !std::isfinite(c)) {
            bool same = (std::isnan(r) && std::isnan(c)) || r == c;
            if (!same) ++nonfinite_mismatches_;
            continue;
        }
        double d = r - c;
        max_abs_ = std::max(max_abs_, std::abs(d));
        sum_abs_ += std::abs(d);
        sum_rr_ += r * r;
        sum_cc_ += c * c;
        sum_rc_ += r * c;
        sum_dd_ += d * d;
        ++finite_elements_;
    }

    if (!spec_) return;
    const OutputKind kind = spec_->kind;
    const auto rank = static_cast<int64_t>(reference.shape.size());
    if (kind == OutputKind::Classes || kind == OutputKind::Sequence) {
        if (traits(reference.dtype).kind != DTypeKind::Float)
            throw InputError(cat(what, ": ", output_kind_name(kind), " needs float scores, found ",
                                 dtype_name(reference.dtype)));
        int64_t axis = kind == OutputKind::Sequence ? -1 : spec_->axis;
        if (kind == OutputKind::Sequence && rank < 2)
            throw InputError(cat(what, ": sequence needs [..., positions, classes], found ",
                                 shape_string(reference.shape)));
        if (axis < -rank || axis >= rank || rank == 0)
            throw InputError(cat(what, ": class axis ", spec_->axis, " is out of range for ",
                                 shape_string(reference.shape)));
        if (axis < 0) axis += rank;
        const int64_t classes = reference.shape[static_cast<size_t>(axis)];
        if (classes < 2)
            throw InputError(cat(what, ": the class axis ", axis, " of ",
                                 shape_string(reference.shape), " has ", classes, " entr",
                                 classes == 1 ? "y" : "ies", " (classes need 2 or more)"));
        if (samples_ == 1) {
            class_axis_ = axis;
            classes_ = classes;
        } else if (classes != classes_ || axis != class_axis_) {
            throw InputError(cat(what, ": the class axis has ", classes,
                                 " entries, earlier samples had ", classes_));
        }
        add_class_rows(ref, cand, reference.shape);
    } else if (kind == OutputKind::Map) {
        add_map(ref, cand);
    } else if (kind == OutputKind::Embedding) {
        if (rank == 0 || reference.shape.back() < 2)
            throw InputError(cat(what, ": an embedding needs vectors along the last axis, found ",
                                 shape_string(reference.shape)));
        if (samples_ == 1) embedding_dim_ = reference.shape.back();
        if (reference.shape.back() != embedding_dim_)
            throw InputError(cat(what, ": the embedding has ", reference.shape.back(),
                                 " dimensions, earlier samples had ", embedding_dim_));
        add_embedding_rows(ref, cand, reference.shape);
    }
}

void TensorComparator::add_map(std::span<const double> ref, std::span<const double> cand) {
    const double t = spec_->threshold;
    for (size_t i = 0; i < ref.size(); ++i) {
        bool r = ref[i] > t, c = cand[i] > t;  // NaN is never on
        map_on_reference_ += r;
        map_on_candidate_ += c;
        map_both_ += r && c;
        map_same_ += r == c;
    }
    map_elements_ += ref.size();
}

void TensorComparator::add_embedding_rows(std::span<const double> ref, std::span<const double> cand,
                                          std::span<const int64_t> /*shape*/) {
    auto d = static_cast<size_t>(embedding_dim_);
    for (size_t r = 0; r + d <= ref.size(); r += d)
        row_cosines_.push_back(cosine(ref.subspan(r, d), cand.subspan(r, d)));
}

void TensorComparator::add_class_rows(std::span<const double> ref, std::span<const double> cand,
                                      std::span<const int64_t> shape) {
    const AxisSplit split = split_at(shape, static_cast<size_t>(class_axis_));
    const size_t c = split.along;
    // Rows in (outer, inner) row-major order; a row along the last axis is contiguous.
    std::vector<double> ref_rows, cand_rows;
    if (split.inner != 1) {
        ref_rows.resize(ref.size());
        cand_rows.resize(cand.size());
        size_t row = 0;
        for (size_t o = 0; o < split.outer; ++o)
            for (size_t i = 0; i < split.inner; ++i, ++row)
                for (size_t k = 0; k < c; ++k) {
                    size_t from = (o * c + k) * split.inner + i;
                    ref_rows[row * c + k] = ref[from];
                    cand_rows[row * c + k] = cand[from];
                }
        ref = ref_rows;
        cand = cand_rows;
    }
    bool probabilities = rows_are_probabilities(ref, classes_);
    (probabilities ? saw_probabilities_ : saw_logits_) = true;
    int64_t k = std::min(kTopK, classes_);
    for (size_t r = 0; r + c <= ref.size(); r += c) {
        auto p = ref.subspan(r, c), q = cand.subspan(r, c);
        size_t row = kl_values_.size();
        kl_values_.push_back(probabilities ? kl_from_probabilities(p, q) : kl_from_logits(p, q));
        int64_t a = argmax(p), b = argmax(q);
        if (a == b) ++same_top1_;
        auto ta = top_k(p, k), tb = top_k(q, k);
        int64_t overlap = 0;
        for (int64_t x : ta) overlap += std::count(tb.begin(), tb.end(), x) > 0 ? 1 : 0;
        topk_overlap_ += static_cast<double>(overlap) / static_cast<double>(k);
        if (labels_set_ && row < labels_.size()) {
            int64_t label = labels_[row];
            if (label < 0 || label >= classes_)
                throw InputError(cat(labels_source_, ": label ", row, " is ", label, ", tensor '",
                                     name_, "' has ", classes_, " classes"));
            if (a == label) ++correct_reference_;
            if (b == label) ++correct_candidate_;
        }
    }
}

TensorMetrics TensorComparator::finish() const {
    TensorMetrics m;
    m.name = name_;
    m.dtype = dtype_;
    m.shape = shape_;
    m.samples = samples_;
    m.elements = elements_;
    m.nonfinite_mismatches = nonfinite_mismatches_;
    m.max_abs_error = nonfinite_mismatches_ ? kInf : max_abs_;
    m.mean_abs_error = finite_elements_ ? sum_abs_ / static_cast<double>(finite_elements_) : 0.0;
    if (sum_rr_ == 0.0 && sum_cc_ == 0.0)
        m.cosine_similarity = 1.0;
    else if (sum_rr_ == 0.0 || sum_cc_ == 0.0)
        m.cosine_similarity = 0.0;
    else
        m.cosine_similarity =
            std::clamp(sum_rc_ / (std::sqrt(sum_rr_) * std::sqrt(sum_cc_)), -1.0, 1.0);
    m.sqnr_db = sum_dd_ == 0.0 ? kInf : 10.0 * std::log10(sum_rr_ / sum_dd_);
    m.spec = spec_;
    if (spec_ && spec_->kind == OutputKind::Map) {
        MapMetrics mm;
        mm.threshold = spec_->threshold;
        mm.elements = map_elements_;
        mm.on_reference = map_on_reference_;
        mm.on_candidate = map_on_candidate_;
        uint64_t either = map_on_reference_ + map_on_candidate_ - map_both_;
        mm.iou = either == 0 ? 1.0 : static_cast<double>(map_both_) / static_cast<double>(either);
        mm.agreement = map_elements_ == 0 ? 100.0
                                          : 100.0 * static_cast<double>(map_same_) /
                                                static_cast<double>(map_elements_);
        m.map = mm;
    }
    if (spec_ && spec_->kind == OutputKind::Embedding) {
        EmbeddingMetrics em;
        em.rows = row_cosines_.size();
        em.dimension = embedding_dim_;
        if (!row_cosines_.empty()) {
            double sum = 0;
            em.cosine_min = row_cosines_.front();
            for (double v : row_cosines_) {
                sum += v;
                em.cosine_min = std::min(em.cosine_min, v);
            }
            em.cosine_mean = sum / static_cast<double>(row_cosines_.size());
        }
        m.embedding = em;
    }

    if (classes_ > 0) {
        ClassMetrics cm;
        cm.axis = class_axis_;
        cm.classes = classes_;
        cm.rows = kl_values_.size();
        cm.input = saw_logits_ && saw_probabilities_ ? ClassInput::Mixed
                   : saw_probabilities_              ? ClassInput::Probabilities
                                                     : ClassInput::Logits;
        cm.kl.mean = mean_and_uncertainty(kl_values_);
        std::vector<double> sorted = kl_values_;
        std::sort(sorted.begin(), sorted.end());
        cm.kl.min = sorted.empty() ? 0 : sorted.front();
        cm.kl.p01 = percentile(sorted, 0.01);
        cm.kl.p05 = percentile(sorted, 0.05);
        cm.kl.p10 = percentile(sorted, 0.10);
        cm.kl.median = percentile(sorted, 0.50);
        cm.kl.p90 = percentile(sorted, 0.90);
        cm.kl.p95 = percentile(sorted, 0.95);
        cm.kl.p99 = percentile(sorted, 0.99);
        cm.kl.p999 = percentile(sorted, 0.999);
        cm.kl.max = sorted.empty() ? 0 : sorted.back();
        double n = static_cast<double>(cm.rows);
        if (cm.rows > 0) {
            double p = static_cast<double>(same_top1_) / n;
            cm.same_top1.value = 100.0 * p;
            cm.same_top1.uncertainty = cm.rows > 1 ? 100.0 * std::sqrt(p * (1 - p) / (n - 1)) : 0.0;
            cm.topk_agreement = 100.0 * topk_overlap_ / n;
        }
        cm.top_k = std::min(kTopK, classes_);
        if (labels_set_ && cm.rows > 0 && cm.rows == labels_.size()) {
            cm.labelled = true;
            cm.accuracy_reference = 100.0 * static_cast<double>(correct_reference_) / n;
            cm.accuracy_candidate = 100.0 * static_cast<double>(correct_candidate_) / n;
            cm.accuracy_drop = cm.accuracy_reference - cm.accuracy_candidate;
        }
        m.classes = cm;
    }
    return m;
}

void PerplexityScorer::add(const Tensor& logits, const Tensor& tokens) {
    const std::string what = cat(what_, " (sample ", samples_++, ")");
    if (logits.shape.size() < 2 || tokens.shape.size() + 1 != logits.shape.size() ||
        !std::equal(tokens.shape.begin(), tokens.shape.end(), logits.shape.begin()))
        throw InputError(cat(what,
                             ": perplexity needs logits [..., T, V] for tokens [..., T], "
                             "found logits ",
                             shape_string(logits.shape), " for tokens ",
                             shape_string(tokens.shape)));
    if (tokens.dtype != DType::I64 && tokens.dtype != DType::I32)
        throw InputError(
            cat(what, ": tokens must be int32 or int64, found ", dtype_name(tokens.dtype)));
    const std::vector<double> values = tensor_as_doubles(logits, what);
    const std::vector<double> ids = tensor_as_doubles(tokens, cat(what, ": tokens"));
    const auto vocab = static_cast<size_t>(logits.shape.back());
    const auto window = static_cast<size_t>(tokens.shape.back());
    const bool probabilities = rows_are_probabilities(values, logits.shape.back());
    for (size_t w = 0; window > 0 && w < ids.size() / window; ++w) {
        const size_t first = window / 2;
        for (size_t j = first; j + 1 < window; ++j) {
            const double id = ids[w * window + j + 1];
            if (!(id >= 0 && id < static_cast<double>(vocab)))
                throw InputError(cat(what, ": token ", static_cast<int64_t>(id), " at window ", w,
                                     ", position ", j + 1, " is outside the ", vocab,
                                     " logits of a row"));
            auto row = std::span<const double>(values).subspan((w * window + j) * vocab, vocab);
            const auto token = static_cast<size_t>(id);
            double nll = kInf;
            if (probabilities) {
                nll = -std::log(std::max(row[token], kProbabilityEpsilon));
            } else if (auto lse = log_sum_exp(row); lse && std::isfinite(row[token])) {
                nll = *lse - row[token];
            }
            nll_ += nll;
            nll2_ += nll * nll;
            ++tokens_;
        }
        ++windows_;
        const auto t = static_cast<int64_t>(window);
        context_ = context_ == -1 || context_ == t ? t : 0;
    }
}

PerplexityStats PerplexityScorer::finish() const {
    PerplexityStats s;
    s.windows = windows_;
    s.tokens = tokens_;
    s.context = std::max<int64_t>(context_, 0);
    if (tokens_ == 0) return s;
    const double n = static_cast<double>(tokens_);
    s.nll_mean = nll_ / n;
    s.perplexity = std::exp(s.nll_mean);
    const double variance = nll2_ / n - s.nll_mean * s.nll_mean;
    if (tokens_ > 1 && variance > 0 && std::isfinite(s.perplexity))
        s.perplexity_uncertainty = s.perplexity * std::sqrt(variance / (n - 1));
    return s;
}

}  // namespace ep::rt
