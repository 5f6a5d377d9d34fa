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
// Outputs with a class axis (float, rank >= 2, last axis >= 2: every row along the last
// axis is one distribution) also get, per row, the KL divergence
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
#include <vector>

#include "ir/tensor.h"

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

enum class ClassInput : uint8_t { Logits, Probabilities, Mixed };
[[nodiscard]] const char* class_input_name(ClassInput kind);  // "logits", ...

struct ClassMetrics {
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
    std::optional<ClassMetrics> classes;
};

// Accumulates one tensor's comparison over samples.
class TensorComparator {
  public:
    // `class_metrics`: compute the class-axis block when the tensor has a class axis.
    TensorComparator(std::string name, bool class_metrics);

    // Labels for every row of every sample, in order; they must outlive the comparator.
    // Rows beyond the labels (or fewer rows than labels) leave the accuracy unreported.
    void set_labels(std::span<const int64_t> labels, std::string labels_source);

    // Adds one sample. Throws InputError naming the tensor when the shapes differ, a
    // dtype is not numeric, or a label is out of range.
    void add(const Tensor& reference, const Tensor& candidate);

    [[nodiscard]] TensorMetrics finish() const;
    [[nodiscard]] const std::string& name() const { return name_; }
    [[nodiscard]] uint64_t class_rows() const { return kl_values_.size(); }
    [[nodiscard]] bool has_class_axis() const { return classes_ > 0; }

  private:
    void add_class_rows(std::span<const double> ref, std::span<const double> cand,
                        std::span<const int64_t> shape);

    std::string name_;
    bool class_metrics_;
    DType dtype_ = DType::Undefined;
    std::vector<int64_t> shape_;
    uint64_t samples_ = 0, elements_ = 0, finite_elements_ = 0, nonfinite_mismatches_ = 0;
    double max_abs_ = 0, sum_abs_ = 0, sum_rr_ = 0, sum_cc_ = 0, sum_rc_ = 0, sum_dd_ = 0;

    int64_t classes_ = 0;  // 0: no class block
    bool saw_logits_ = false, saw_probabilities_ = false;
    std::vector<double> kl_values_;
    uint64_t same_top1_ = 0;
    double topk_overlap_ = 0;  // sum over rows of |overlap| / k
    std::span<const int64_t> labels_;
    std::string labels_source_;
    bool labels_set_ = false;
    uint64_t correct_reference_ = 0, correct_candidate_ = 0;
};

// Helpers, exposed for tests and for other reports.
// Elements of a numeric tensor as doubles (floats, integers, bool); InputError otherwise.
[[nodiscard]] std::vector<double> tensor_as_doubles(const Tensor& t, const std::string& what);
// KL(softmax(p) || softmax(q)) for two logit rows of equal length.
[[nodiscard]] double kl_from_logits(std::span<const double> p, std::span<const double> q);
// KL(P || Q) for two probability rows, each value clamped below at kProbabilityEpsilon.
[[nodiscard]] double kl_from_probabilities(std::span<const double> p, std::span<const double> q);
// Index of the first largest value (NaNs never win).
[[nodiscard]] int64_t argmax(std::span<const double> row);
// Indices of the k largest values, larger first, ties to the lower index.
[[nodiscard]] std::vector<int64_t> top_k(std::span<const double> row, int64_t k);
// Linear interpolation at fraction * (n - 1) of ascending `sorted` (llama.cpp's rule).
[[nodiscard]] double percentile(std::span<const double> sorted, double fraction);
// Mean and standard error of the mean, sqrt(var / (n - 1)) with var the population variance.
[[nodiscard]] Estimate mean_and_uncertainty(std::span<const double> values);

}  // namespace ep::rt
