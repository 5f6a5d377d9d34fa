// Calibration data as passes see it, and the activation statistics they accumulate.
//
// The recipe's "calibration" section ({"data": "calib/" or "tokens.npy", "samples": 32,
// "seed": 0, "max_samples": 128}) becomes a DataProvider (compressor/calibration_data.cpp
// builds it on compressor/dataset.h, so the same input forms as `edgepack run --data` work,
// plus [S, T] int64 token-id .npy files). A pass receives it through PassContext and opens
// it against the model it is about to change (so every sample is checked against that
// model's inputs) and reads samples one at a time: nothing keeps all activations.
//
// Activation capture (capture_activations) runs each sample through rt::Executor, fetching
// the named activations (the A input of a MatMul/Gemm), views each as rows of K values
// (the last dimension; [1, T, K] is T rows) and accumulates per activation:
//   hessian   H = 2/n * sum over rows x^T x   (K x K, double; n = rows seen), for GPTQ
//   abs_mean  mean |x| per input channel      (K, double), for AWQ
//   abs_max   max |x| per input channel       (K, double; NaN and +-inf left out), for
//             SmoothQuant (passes/smooth_quant.h)
//   sum_squares  sum over rows of x^2 per input channel (K, double; ||X_j||_2^2 over the
//             calibration rows), for Wanda's |W| x ||X_j||_2 (passes/prune.cpp)
//   kept      up to keep_rows rows of X (f32), chosen by reservoir sampling with a fixed
//             seed (deterministic), for AWQ's grid search
// Memory is bounded by K^2 doubles + keep_rows * K floats per activation, whatever the
// number of samples.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ir/ir.h"
#include "ir/progress.h"
#include "runtime-check/executor.h"

namespace ep::calib {

// The samples of one calibration set, opened against one model.
class SampleList {
  public:
    virtual ~SampleList() = default;
    [[nodiscard]] virtual size_t size() const = 0;
    // Reads sample i (checked against the model's inputs); throws InputError naming the data.
    [[nodiscard]] virtual rt::NamedTensors load(size_t i) const = 0;
    // "32 of 64 token sequences in calib.npy (seed 0)".
    [[nodiscard]] virtual std::string describe() const = 0;
};

class DataProvider {
  public:
    virtual ~DataProvider() = default;
    // The samples for `model` (the executor must outlive the list).
    [[nodiscard]] virtual std::unique_ptr<SampleList> open(const rt::Executor& model) const = 0;
    // open(), and an InputError naming the data when it holds no sample: what every
    // calibrating pass needs.
    [[nodiscard]] std::unique_ptr<SampleList> open_nonempty(const rt::Executor& model) const;
    // Where the data comes from, for messages ("recipe.json: calibration.data (calib.npy)").
    [[nodiscard]] virtual std::string what() const = 0;
    // True when the samples are seeded random inputs, not data (the recipe's
    // calibration.synthetic: true): a calibrating pass says so in its result.
    [[nodiscard]] virtual bool synthetic() const { return false; }
};

// One activation to watch.
struct CaptureRequest {
    std::string activation;  // value name (a node output or a graph input)
    int64_t k = 0;           // expected last dimension (the weight's reduction length)
    bool hessian = false;
    bool abs_mean = false;
    bool abs_max = false;
    bool sum_squares = false;
    uint64_t keep_rows = 0;  // rows of X to keep (0: none)
};

struct ActivationStats {
    std::string activation;
    int64_t k = 0;
    uint64_t rows = 0;                // rows seen
    std::vector<double> hessian;      // k*k, row-major, 2/n X^T X (empty unless requested)
    std::vector<double> abs_mean;     // k (empty unless requested)
    std::vector<double> abs_max;      // k (empty unless requested)
    std::vector<double> sum_squares;  // k (empty unless requested), not divided by rows
    std::vector<float> kept;          // kept_rows * k
    uint64_t kept_rows = 0;
};

// Runs every sample of `samples` through `exec` and accumulates the requested statistics
// (one entry per request, same order; requests naming the same activation are merged by
// the caller). Throws InputError when an activation is not float or its last dimension is
// not k, naming the activation and the sample. `progress` (may be null) advances by one per
// sample run.
[[nodiscard]] std::vector<ActivationStats> capture_activations(
    rt::Executor& exec, const SampleList& samples, const std::vector<CaptureRequest>& requests,
    Progress::Step* progress = nullptr);

}  // namespace ep::calib
