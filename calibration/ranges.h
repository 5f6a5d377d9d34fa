// Activation ranges for activation quantization (quantize-static), and the calibrators
// that choose them from activations captured through the runtime.
//
// Every sample is run through rt::Executor once; for each requested activation (a float
// value of the graph, any shape) the capture keeps running statistics only, never the
// activations themselves: min and max for `minmax`; a histogram for `percentile`,
// `entropy` and `mse`, whose range grows as wider values arrive (the bins merged, as ONNX
// Runtime's HistogramCollector does), so memory is bins * activations whatever the number
// of samples. The result does not depend on the thread count.
//
// Calibrators (docs/quantization.md states each definition):
//   minmax      [min, max] over every value seen
//   percentile  the `percentile` (default 99.999) of |x| (symmetric) or of x on both tails
//   entropy     the threshold minimising KL(P || Q) between the histogram and its
//               quantization to the grid's levels (TensorRT's calibrator; 2 * quantized_bins
//               levels for a non-negative activation; never clipping over 0.01% of values)
//   mse         the threshold minimising the expected squared quantization error over the
//               histogram
//
// A RangeTable is also a file (`edgepack compress --save-calibration FILE`, and the
// recipe's `calibration.ranges` to reuse it and skip capture):
//   {"format": "edgepack.calibration/1", "calibrator": "entropy",
//    "options": {"percentile": 99.999, "bins": 2048, ...}, "samples": 32,
//    "data": "32 samples in calib/", "synthetic": false,
//    "ranges": {"conv1_out": {"min": -1.5, "max": 3.25}, ...}}
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "calibration/calibration.h"
#include "ir/progress.h"

namespace ep::calib {

enum class Calibrator : uint8_t { MinMax, Percentile, Entropy, Mse };

[[nodiscard]] std::string_view calibrator_name(Calibrator c);  // "minmax", ...
[[nodiscard]] std::optional<Calibrator> calibrator_from_name(std::string_view name);

struct CalibratorOptions {
    Calibrator method = Calibrator::MinMax;
    double percentile = 99.999;    // percentile: in (0, 100]
    bool symmetric = false;        // ranges symmetric around 0 (int8 activations)
    int64_t bins = 2048;           // histogram bins (percentile, entropy, mse)
    int64_t quantized_bins = 128;  // entropy: levels of the quantized distribution
};

struct ActivationRange {
    float min = 0.0f;
    float max = 0.0f;
};

struct RangeTable {
    std::string calibrator;  // calibrator_name of the method that chose the ranges
    nlohmann::json options;  // the CalibratorOptions used, as written in the file
    size_t samples = 0;      // samples run
    std::string data;        // where they came from: "32 samples in calib/"
    bool synthetic = false;  // seeded random inputs (calibration.synthetic)
    std::map<std::string, ActivationRange> ranges;  // by value name
};

// Runs every sample of `samples` through `exec` and returns a range for every name in
// `activations` (float values; a name the model does not produce is an InputError).
// `progress` (may be null) advances by one per sample.
[[nodiscard]] RangeTable collect_ranges(rt::Executor& exec, const SampleList& samples,
                                        const std::vector<std::string>& activations,
                                        const CalibratorOptions& options,
                                        Progress::Step* progress = nullptr);

// The options a calibrator used, as the file's "options" holds them (only those that
// method reads: minmax {"symmetric"}, percentile {"percentile", "symmetric", "bins"},
// entropy and mse {"bins", "quantized_bins", "symmetric"}).
[[nodiscard]] nlohmann::json calibrator_options_to_json(const CalibratorOptions& options);
// Throws InputError naming the option when options are unusable: percentile outside
// (0, 100], bins outside [quantized_bins, 65536], quantized_bins outside [2, 65536].
void check_calibrator_options(const CalibratorOptions& options);

// The streaming histogram of one activation (percentile, entropy, mse). It holds 2 * bins
// counts over [-T, T], bin width w = T / bins: bin k counts x in [-T + k w, -T + (k+1) w),
// so 0 is the edge between bins `bins - 1` and `bins`, and the histogram of |x| is exact:
// abs bin j = bin (bins + j) + bin (bins - 1 - j), covering [j w, (j+1) w]. T is the
// smallest power of two above every |x| seen (so every value falls strictly inside, and
// x * bins / T is exact: no value lands in a neighbour bin by rounding); when a wider value
// arrives T doubles (as often as needed) and each pair of neighbouring bins on either side
// of 0 merges into one, which is exactly the histogram the values would have had at the
// new T (its edges are a subset of the old ones), so the result does not depend on how
// the values were split into samples, only on their maximum. Non-finite values (NaN,
// +-inf) are ignored and counted apart.
class ActivationHistogram {
  public:
    explicit ActivationHistogram(int64_t bins);
    // A fixed histogram (tests, and the numpy cross-check): counts.size() == 2 * bins.
    static ActivationHistogram from_counts(double limit, std::vector<uint64_t> counts, float min,
                                           float max);
    void add(const float* x, size_t n);

    [[nodiscard]] int64_t bins() const { return bins_; }
    [[nodiscard]] double limit() const { return limit_; }  // T; 0 until a non-zero value
    [[nodiscard]] double width() const { return limit_ / static_cast<double>(bins_); }
    [[nodiscard]] const std::vector<uint64_t>& counts() const { return counts_; }
    [[nodiscard]] std::vector<uint64_t> abs_counts() const;  // `bins` counts over [0, T]
    [[nodiscard]] uint64_t total() const;                    // finite values counted
    [[nodiscard]] uint64_t non_finite() const { return non_finite_; }
    [[nodiscard]] float min() const { return min_; }  // exact, over the finite values
    [[nodiscard]] float max() const { return max_; }

  private:
    void grow_to(double amax);
    int64_t bins_;
    double limit_ = 0.0;
    std::vector<uint64_t> counts_;
    uint64_t non_finite_ = 0;
    bool seen_ = false;
    float min_ = 0.0f, max_ = 0.0f;
};

// The thresholds on fixed histograms, in bins (docs/quantization.md states each; the tests
// check them against scripts/xcheck/calib_ref.py, a numpy reference of the same text).
// Smallest k with (total - sum(counts[0..k])) <= tail * total: the bin where the share of
// values above it falls to `tail` or below (-1 when counts are all zero).
[[nodiscard]] int64_t tail_bin(const std::vector<uint64_t>& counts, double tail);
// Entropy (TensorRT's KL, guarded): the i in [max(levels, tail_bin(abs_counts, 1e-4) + 1),
// size] minimising KL(P_i || Q_i) on |x| bins (bin 0 counted as bin 1, as TensorRT does); the
// largest such i on a tie. The threshold is i bins. The levels are 2 * quantized_bins when
// non_negative (no value below 0: the whole grid lies over [0, a]), and only thresholds that clip
// at most kEntropyMaxClipped of the values are candidates (KL alone prefers to clip the sparse,
// strong tail).
inline constexpr double kEntropyMaxClipped = 1e-4;
[[nodiscard]] int64_t entropy_threshold_bins(const std::vector<uint64_t>& abs_counts,
                                             int64_t quantized_bins, bool non_negative);
// MSE: the i in [quantized_bins, size] minimising the squared error of quantizing every
// |x| bin centre to quantized_bins - 1 levels over [0, i bins]; the smallest on a tie.
[[nodiscard]] int64_t mse_threshold_bins(const std::vector<uint64_t>& abs_counts,
                                         int64_t quantized_bins);
// The range a calibrator chooses from a histogram (minmax: [min, max]).
[[nodiscard]] ActivationRange range_from_histogram(const ActivationHistogram& hist,
                                                   const CalibratorOptions& options);

[[nodiscard]] nlohmann::json range_table_to_json(const RangeTable& table);
// Throws InputError naming `where` (the file) and the field that is wrong.
[[nodiscard]] RangeTable range_table_from_json(const nlohmann::json& j, const std::string& where);
// Reads and checks a range table file; InputError "<where>: ..." when it cannot be read, is
// not JSON or has a wrong field.
[[nodiscard]] RangeTable read_range_table(const std::filesystem::path& file,
                                          const std::string& where);
// Writes the table (2-space indented JSON) atomically: a temporary renamed over `file`.
void write_range_table(const RangeTable& table, const std::filesystem::path& file);

}  // namespace ep::calib
