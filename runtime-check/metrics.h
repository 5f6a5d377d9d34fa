// Comparing a candidate model's tensors with a reference model's, over many samples:
// the numbers `edgepack validate` reports (docs/validate.md has every definition).
//
// For every tensor pair (same name, same shape in each sample):
//   max_abs_error      max |r - c|
//   mean_abs_error     sum |r - c| / elements
//   cosine_similarity  sum r*c / (sqrt(sum r^2) * sqrt(sum c^2)), clamped to [-1, 1]
//                      (1 when both are all zero, 0 when one is)
//   sqnr_db            10 * log10(sum r^2 / sum (r - c)^2)          (+inf when equal)
// Pairs where a value is NaN or infinite are left out of those sums; pairs that differ
// there are counted (nonfinite_mismatches) and make max_abs_error infinite.
//
// What else an output gets depends on its kind (OutputKind below; the default is inferred
// from graph facts by infer_output_kind, a recipe can say it):
//   classes, sequence  a class axis (classes: any axis, default the last; sequence: the last,
//                      one row per position): per row the KL divergence below, top-1 / top-5
//                      agreement, accuracy against labels
//   map                IoU of the thresholded maps: |{r > t} ∩ {c > t}| / |{r > t} ∪ {c > t}|
//                      over every element of every sample (1 when both sets are empty), and
//                      the percent of elements on the same side of t
//   embedding          cosine similarity of every row along the last axis: mean and minimum
//   regression         the errors above only
//
// A class axis's rows each get the KL divergence
//   KL(P || Q) = sum_i P_i * (log P_i - log Q_i),  P = softmax(reference row),
//                                                  Q = softmax(candidate row)
// computed with log-softmax in double. When a sample's reference rows are already
// probabilities (every value in [0, 1], every row summing to 1 within 1e-3), P and Q are
// the values themselves clamped below at kProbabilityEpsilon. Summaries follow llama.cpp's
// `perplexity --kl-divergence`: mean +/- its standard error, percentiles by linear
// interpolation at fraction * (rows - 1), the median as the middle value (mean of the two
// middle values for an even count), "same top p" (rows whose argmax agree, in percent,
// +/- sqrt(p (1 - p) / (rows - 1))). Top-5 agreement is the mean overlap of the two top-k
// index sets divided by k (k = min(5, classes)). With labels (one class index per row, in
// sample order) each side's accuracy is the percentage of rows whose argmax equals the label.
//
// Everything accumulates in double in one fixed order (samples in order, elements in
// row-major order), so results do not depend on thread counts or timing.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/tensor.h"

namespace ep {
struct Model;
}

namespace ep::rt {

inline constexpr double kProbabilityEpsilon = 1e-10;
inline constexpr double kProbabilitySumTolerance = 1e-3;
inline constexpr int64_t kTopK = 5;

// A mean and its standard error (0 with fewer than two values).
struct Estimate {
    double value = 0;
    double uncertainty = 0;
};

struct KlStatistics {
    Estimate mean;
    double min = 0, p01 = 0, p05 = 0, p10 = 0, median = 0, p90 = 0, p95 = 0, p99 = 0, p999 = 0,
           max = 0;
};

// What an output means, which decides how it is compared (docs/validate.md, "Output kinds").
enum class OutputKind : uint8_t { Classes, Sequence, Map, Embedding, Regression };
[[nodiscard]] const char* output_kind_name(OutputKind kind);  // "classes", ...
[[nodiscard]] std::optional<OutputKind> output_kind_from_name(std::string_view name);
[[nodiscard]] const std::vector<std::string>& output_kind_names();  // in enum order

inline constexpr double kDefaultMapThreshold = 0.5;

// How one tensor is compared beyond the errors every tensor gets.
struct ComparisonSpec {
    OutputKind kind = OutputKind::Regression;
    int64_t axis = -1;  // classes: the class axis, negative counts from the end
    double threshold = kDefaultMapThreshold;  // map: an element is "on" when value > threshold
};

// The kind an output gets when nobody says, and why (one line for the report). From graph
// facts only, never from names: the node producing the output (looking through Identity,
// Reshape, Flatten, Squeeze, Unsqueeze), the output's element type, rank and last dimension.
//   not a float tensor                                 regression
//   Softmax / LogSoftmax over the last axis            rank <= 2: classes, else sequence
//   Softmax / LogSoftmax over another axis             rank >= 3: map, else regression
//   Sigmoid                                            rank >= 3: map, else regression
//   LpNormalization, or Div by an L2 norm (ReduceL2, or Sqrt of ReduceSumSquare / ReduceSum)
//                                                      embedding
//   anything else (logits of Gemm, MatMul, Conv ...):  rank 2 with last >= 2: classes;
//     rank 3 with last >= 2 from a linear layer (MatMul, Gemm, or Add of one): sequence;
//     rank >= 4: map; otherwise regression
// So the default never finds classes on a spatial axis: a [1, 1, H, W] map is a map, a
// [1, 96] L2-normalised vector an embedding. An unnormalised embedding [N, D] reads as
// classes: say "embedding" in the recipe.
struct InferredKind {
    ComparisonSpec spec;
    std::string reason;  // "Sigmoid output of rank 4"
};
[[nodiscard]] InferredKind infer_output_kind(const Model& model, const std::string& output,
                                             DType dtype, std::span<const int64_t> shape);

struct MapMetrics {
    double threshold = kDefaultMapThreshold;
    uint64_t elements = 0;
    uint64_t on_reference = 0, on_candidate = 0;  // elements > threshold
    double iou = 1;                               // |both| / |either|, 1 when both are empty
    double agreement = 100;                       // percent of elements on the same side
};

struct EmbeddingMetrics {
    uint64_t rows = 0;
    int64_t dimension = 0;
    double cosine_mean = 1, cosine_min = 1;  // per row along the last axis
};

enum class ClassInput : uint8_t { Logits, Probabilities, Mixed };
[[nodiscard]] const char* class_input_name(ClassInput kind);  // "logits", ...

struct ClassMetrics {
    int64_t axis = -1;  // the class axis, counted from the front
    int64_t classes = 0;
    uint64_t rows = 0;
    ClassInput input = ClassInput::Logits;
    KlStatistics kl;
    Estimate same_top1;         // percent of rows whose argmax agree
    int64_t top_k = 0;          // min(5, classes)
    double topk_agreement = 0;  // percent: mean |topk(r) ∩ topk(c)| / k
    // With labels covering exactly these rows:
    bool labelled = false;
    double accuracy_reference = 0;  // percent
    double accuracy_candidate = 0;  // percent
    double accuracy_drop = 0;       // percentage points, reference - candidate
};

struct TensorMetrics {
    std::string name;
    DType dtype = DType::Undefined;
    std::vector<int64_t> shape;  // of the first sample
    uint64_t samples = 0;
    uint64_t elements = 0;  // over all samples
    double max_abs_error = 0;
    double mean_abs_error = 0;
    double cosine_similarity = 1;
    double sqnr_db = 0;
    uint64_t nonfinite_mismatches = 0;
    std::optional<ComparisonSpec> spec;  // null: the errors only (per-layer tensors)
    std::optional<ClassMetrics> classes;
    std::optional<MapMetrics> map;
    std::optional<EmbeddingMetrics> embedding;
};

// Accumulates one tensor's comparison over samples.
class TensorComparator {
  public:
    // `spec`: what the tensor is (null: the errors only). It may also be given later by
    // set_spec, before the first sample (validate infers it from the first sample's shape).
    explicit TensorComparator(std::string name, std::optional<ComparisonSpec> spec = {});
    void set_spec(const ComparisonSpec& spec);
    [[nodiscard]] const std::optional<ComparisonSpec>& spec() const { return spec_; }

    // Labels for every row of every sample, in order; they must outlive the comparator.
    // Rows beyond the labels (or fewer rows than labels) leave the accuracy unreported.
    void set_labels(std::span<const int64_t> labels, std::string labels_source);

    // Adds one sample. Throws InputError naming the tensor when the shapes differ, a
    // dtype is not numeric, a label is out of range, or the spec does not fit the tensor
    // (a class axis out of range or of one entry, a class kind on integers).
    void add(const Tensor& reference, const Tensor& candidate);

    [[nodiscard]] TensorMetrics finish() const;
    [[nodiscard]] const std::string& name() const { return name_; }
    [[nodiscard]] uint64_t class_rows() const { return kl_values_.size(); }
    [[nodiscard]] bool has_class_axis() const { return classes_ > 0; }

  private:
    void add_class_rows(std::span<const double> ref, std::span<const double> cand,
                        std::span<const int64_t> shape);
    void add_map(std::span<const double> ref, std::span<const double> cand);
    void add_embedding_rows(std::span<const double> ref, std::span<const double> cand,
                            std::span<const int64_t> shape);

    std::string name_;
    std::optional<ComparisonSpec> spec_;
    DType dtype_ = DType::Undefined;
    std::vector<int64_t> shape_;
    uint64_t samples_ = 0, elements_ = 0, finite_elements_ = 0, nonfinite_mismatches_ = 0;
    double max_abs_ = 0, sum_abs_ = 0, sum_rr_ = 0, sum_cc_ = 0, sum_rc_ = 0, sum_dd_ = 0;

    int64_t class_axis_ = -1;  // counted from the front
    int64_t classes_ = 0;      // 0: no class block
    bool saw_logits_ = false, saw_probabilities_ = false;
    std::vector<double> kl_values_;
    uint64_t same_top1_ = 0;
    double topk_overlap_ = 0;  // sum over rows of |overlap| / k
    std::span<const int64_t> labels_;
    std::string labels_source_;
    bool labels_set_ = false;
    uint64_t correct_reference_ = 0, correct_candidate_ = 0;

    uint64_t map_elements_ = 0, map_on_reference_ = 0, map_on_candidate_ = 0, map_both_ = 0,
             map_same_ = 0;
    int64_t embedding_dim_ = 0;
    std::vector<double> row_cosines_;
};

// Perplexity of a causal language model over token windows (docs/validate.md
// "Perplexity"), llama.cpp's `llama-perplexity` rule: every row of the token tensor
// [..., T] is one window of n_ctx = T tokens (llama-perplexity cuts one token stream into
// such chunks; here the data is already cut: one row, one chunk), and the logits [..., T, V]
// at position j predict token j + 1. Only the second half of a window is scored, so every
// scored token has at least T/2 tokens of context:
//   first = T / 2, positions j = first .. T - 2   (T - 1 - T/2 tokens per window)
//   nll_j = -log softmax(logits_j)[token_{j+1}]   (log-softmax in double; rows that are
//            already probabilities give -log max(p, kProbabilityEpsilon))
//   perplexity = exp(mean nll) +/- perplexity * sqrt((mean nll^2 - (mean nll)^2) / (n - 1))
// The window's first token is fed as the data has it (llama-perplexity puts BOS there: the
// token sets edgepack makes start with BOS). A NaN or infinite logit row gives an infinite
// nll, so the perplexity is infinite. Sums run in one fixed order (windows in order).
struct PerplexityStats {
    uint64_t windows = 0;
    uint64_t tokens = 0;  // scored
    int64_t context = 0;  // T of every window; 0 when windows had different lengths
    double nll_mean = 0;
    double perplexity = 0;
    double perplexity_uncertainty = 0;
};

class PerplexityScorer {
  public:
    // `what` names the scored output in messages ("'logits' of the candidate").
    explicit PerplexityScorer(std::string what) : what_(std::move(what)) {}

    // One sample: logits [..., T, V] (float) and the tokens [..., T] (int32 / int64) fed to
    // the model. InputError naming the output when the shapes do not line up or a token is
    // outside [0, V).
    void add(const Tensor& logits, const Tensor& tokens);
    [[nodiscard]] PerplexityStats finish() const;

  private:
    std::string what_;
    uint64_t samples_ = 0, windows_ = 0, tokens_ = 0;
    int64_t context_ = -1;  // -1: no window yet; 0: windows differed
    double nll_ = 0, nll2_ = 0;
};

// Helpers, exposed for tests and for other reports.
// Elements of a numeric tensor as doubles (floats, integers, bool); InputError otherwise.
[[nodiscard]] std::vector<double> tensor_as_doubles(const Tensor& t, const std::string& what);
// KL(softmax(p) || softmax(q)) for two logit rows of equal length.
[[nodiscard]] double kl_from_logits(std::span<const double> p, std::span<const double> q);
// KL(P || Q) for two probability rows, each value clamped below at kProbabilityEpsilon.
[[nodiscard]] double kl_from_probabilities(std::span<const double> p, std::span<const double> q);
// Cosine similarity of two vectors, clamped to [-1, 1]: 1 when both are all zero, 0 when
// one is.
[[nodiscard]] double cosine(std::span<const double> a, std::span<const double> b);
// Index of the first largest value (NaNs never win).
[[nodiscard]] int64_t argmax(std::span<const double> row);
// Indices of the k largest values, larger first, ties to the lower index.
[[nodiscard]] std::vector<int64_t> top_k(std::span<const double> row, int64_t k);
// Linear interpolation at fraction * (n - 1) of ascending `sorted` (llama.cpp's rule).
[[nodiscard]] double percentile(std::span<const double> sorted, double fraction);
// Mean and standard error of the mean, sqrt(var / (n - 1)) with var the population variance.
[[nodiscard]] Estimate mean_and_uncertainty(std::span<const double> values);

}  // namespace ep::rt
