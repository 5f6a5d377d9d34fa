// Activation capture and statistics (contract in calibration.h).
#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "calibration/calibration.h"
#include "ir/error.h"

namespace ep::calib {

std::unique_ptr<SampleList> DataProvider::open_nonempty(const rt::Executor& model) const {
    auto samples = open(model);
    if (samples->size() == 0) throw InputError(cat(what(), ": no samples"));
    return samples;
}

namespace {

// splitmix64: a fixed, portable generator, so the kept rows do not depend on the library.
struct Rng {
    uint64_t state;
    uint64_t next() {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
};

bool is_float(DType t) {
    return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64;
}

struct Accumulator {
    ActivationStats stats;
    Eigen::MatrixXd h;  // upper triangle accumulates sum x^T x
    Rng rng{0x5eed5eedull};
};

void accumulate(Accumulator& acc, const CaptureRequest& req, const Tensor& t,
                const std::string& where) {
    const int64_t k = req.k;
    if (!is_float(t.dtype))
        throw InputError(cat(where, ": activation '", req.activation, "' is ", dtype_name(t.dtype),
                             ", expected a float tensor"));
    if (t.shape.empty() || t.shape.back() != k)
        throw InputError(cat(where, ": activation '", req.activation, "' has shape ",
                             shape_string(t.shape), "; expected the last dimension ", k,
                             " (the weight's reduction length)"));
    std::vector<float> x = t.to_floats();
    const auto rows = static_cast<int64_t>(x.size()) / k;
    auto& s = acc.stats;
    if (req.hessian) {
        // Chunks of rows as a double matrix: H += X^T X (upper triangle).
        constexpr int64_t kChunk = 256;
        Eigen::MatrixXd chunk;
        for (int64_t r0 = 0; r0 < rows; r0 += kChunk) {
            int64_t n = std::min(kChunk, rows - r0);
            chunk.resize(n, k);
            for (int64_t r = 0; r < n; ++r)
                for (int64_t c = 0; c < k; ++c)
                    chunk(r, c) = static_cast<double>(x[static_cast<size_t>((r0 + r) * k + c)]);
            acc.h.selfadjointView<Eigen::Upper>().rankUpdate(chunk.transpose());
        }
    }
    if (req.abs_mean)
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < k; ++c)
                s.abs_mean[static_cast<size_t>(c)] +=
                    std::fabs(static_cast<double>(x[static_cast<size_t>(r * k + c)]));
    if (req.abs_max)
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < k; ++c) {
                const float v = x[static_cast<size_t>(r * k + c)];
                if (!std::isfinite(v)) continue;
                auto& m = s.abs_max[static_cast<size_t>(c)];
                m = std::max(m, std::fabs(static_cast<double>(v)));
            }
    if (req.sum_squares)
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < k; ++c) {
                const double v = x[static_cast<size_t>(r * k + c)];
                s.sum_squares[static_cast<size_t>(c)] += v * v;
            }
    if (req.keep_rows > 0) {
        for (int64_t r = 0; r < rows; ++r) {
            uint64_t seen = s.rows + static_cast<uint64_t>(r);
            uint64_t slot;
            if (s.kept_rows < req.keep_rows) {
                slot = s.kept_rows++;
                s.kept.resize(static_cast<size_t>(s.kept_rows * static_cast<uint64_t>(k)));
            } else {
                slot = acc.rng.next() % (seen + 1);
                if (slot >= req.keep_rows) continue;
            }
            std::copy_n(x.begin() + r * k, k, s.kept.begin() + static_cast<int64_t>(slot) * k);
        }
    }
    s.rows += static_cast<uint64_t>(rows);
}

}  // namespace

std::vector<ActivationStats> capture_activations(rt::Executor& exec, const SampleList& samples,
                                                 const std::vector<CaptureRequest>& requests,
                                                 Progress::Step* progress) {
    std::vector<Accumulator> accs(requests.size());
    std::vector<std::string> fetch;
    std::unordered_map<std::string, bool> feeds;
    for (const auto& v : exec.inputs()) feeds[v.name] = true;
    for (size_t i = 0; i < requests.size(); ++i) {
        const auto& req = requests[i];
        if (req.k <= 0 || req.k > (int64_t{1} << 20))
            throw InternalError(cat("capture: activation '", req.activation, "' k=", req.k));
        auto& s = accs[i].stats;
        s.activation = req.activation;
        s.k = req.k;
        if (req.hessian) accs[i].h = Eigen::MatrixXd::Zero(req.k, req.k);
        if (req.abs_mean) s.abs_mean.assign(static_cast<size_t>(req.k), 0.0);
        if (req.abs_max) s.abs_max.assign(static_cast<size_t>(req.k), 0.0);
        if (req.sum_squares) s.sum_squares.assign(static_cast<size_t>(req.k), 0.0);
        if (!feeds.count(req.activation)) fetch.push_back(req.activation);
    }
    std::sort(fetch.begin(), fetch.end());
    fetch.erase(std::unique(fetch.begin(), fetch.end()), fetch.end());

    for (size_t i = 0; i < samples.size(); ++i) {
        rt::NamedTensors inputs = samples.load(i);
        rt::NamedTensors outputs = exec.run(inputs, fetch);
        std::string where = cat("calibration sample ", i);
        for (size_t r = 0; r < requests.size(); ++r) {
            const Tensor* t = nullptr;
            for (const auto& [name, value] : outputs)
                if (name == requests[r].activation) t = &value;
            for (const auto& [name, value] : inputs)
                if (!t && name == requests[r].activation) t = &value;
            if (!t)
                throw InternalError(cat("capture: the runtime did not return activation '",
                                        requests[r].activation, "'"));
            accumulate(accs[r], requests[r], *t, where);
        }
        if (progress) progress->advance();
    }

    std::vector<ActivationStats> out;
    for (size_t i = 0; i < requests.size(); ++i) {
        auto& acc = accs[i];
        auto& s = acc.stats;
        const double n = static_cast<double>(std::max<uint64_t>(s.rows, 1));
        if (requests[i].hessian) {
            const int64_t k = s.k;
            s.hessian.resize(static_cast<size_t>(k * k));
            for (int64_t a = 0; a < k; ++a)
                for (int64_t b = a; b < k; ++b) {
                    double v = 2.0 / n * acc.h(a, b);
                    s.hessian[static_cast<size_t>(a * k + b)] = v;
                    s.hessian[static_cast<size_t>(b * k + a)] = v;
                }
        }
        for (auto& m : s.abs_mean) m /= n;
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace ep::calib
