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
//               `quantized_bins`-level quantization (TensorRT's calibrator)
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

[[nodiscard]] nlohmann::json range_table_to_json(const RangeTable& table);
// Throws InputError naming `where` (the file) and the field that is wrong.
[[nodiscard]] RangeTable range_table_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace ep::calib
