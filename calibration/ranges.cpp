// Activation ranges and the calibrators (contract in ranges.h, definitions in
// docs/quantization.md "Activation calibrators").
#include "calibration/ranges.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <unordered_set>

#include "ir/error.h"
#include "ir/output_file.h"

namespace ep::calib {

namespace {

constexpr const char* kFormat = "edgepack.calibration/1";
constexpr int64_t kMaxBins = 65536;

bool is_float(DType t) {
    return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64;
}

// One activation's running statistics: min/max always, a histogram when the method needs one.
struct RangeAccumulator {
    std::string name;
    std::optional<ActivationHistogram> hist;
    bool seen = false;
    float min = 0.0f, max = 0.0f;

    void add(const Tensor& t, const std::string& where) {
        if (!is_float(t.dtype))
            throw InputError(cat(where, ": activation '", name, "' is ", dtype_name(t.dtype),
                                 ", expected a float tensor"));
        std::vector<float> x = t.to_floats();
        for (float v : x) {
            if (!std::isfinite(v)) continue;
            if (!seen) {
                min = max = v;
                seen = true;
            }
            min = std::min(min, v);
            max = std::max(max, v);
        }
        if (hist) hist->add(x.data(), x.size());
    }
};

ActivationRange symmetric_range(double amax) {
    auto a = static_cast<float>(amax);
    return {-a, a};
}

}  // namespace

std::string_view calibrator_name(Calibrator c) {
    switch (c) {
        case Calibrator::MinMax:
            return "minmax";
        case Calibrator::Percentile:
            return "percentile";
        case Calibrator::Entropy:
            return "entropy";
        case Calibrator::Mse:
            return "mse";
    }
    return "?";
}

std::optional<Calibrator> calibrator_from_name(std::string_view name) {
    for (Calibrator c :
         {Calibrator::MinMax, Calibrator::Percentile, Calibrator::Entropy, Calibrator::Mse})
        if (calibrator_name(c) == name) return c;
    return std::nullopt;
}

nlohmann::json calibrator_options_to_json(const CalibratorOptions& options) {
    nlohmann::json j = nlohmann::json::object();
    switch (options.method) {
        case Calibrator::MinMax:
            break;
        case Calibrator::Percentile:
            j["percentile"] = options.percentile;
            j["bins"] = options.bins;
            break;
        case Calibrator::Entropy:
        case Calibrator::Mse:
            j["bins"] = options.bins;
            j["quantized_bins"] = options.quantized_bins;
            break;
    }
    j["symmetric"] = options.symmetric;
    return j;
}

void check_calibrator_options(const CalibratorOptions& options) {
    if (!(options.percentile > 0.0 && options.percentile <= 100.0))
        throw InputError(
            cat("percentile: ", options.percentile, " is outside (0, 100] (default 99.999)"));
    if (options.method == Calibrator::MinMax) return;
    if (options.quantized_bins < 2 || options.quantized_bins > kMaxBins)
        throw InputError(
            cat("quantized_bins: ", options.quantized_bins, " is outside [2, ", kMaxBins, "]"));
    const int64_t lowest = options.method == Calibrator::Percentile ? 1 : options.quantized_bins;
    if (options.bins < lowest || options.bins > kMaxBins)
        throw InputError(cat("bins: ", options.bins, " is outside [", lowest, ", ", kMaxBins, "]",
                             lowest > 1 ? " (at least quantized_bins)" : ""));
}

// ---- the histogram ------------------------------------------------------------------

ActivationHistogram::ActivationHistogram(int64_t bins)
    : bins_(bins), counts_(static_cast<size_t>(2 * bins), 0) {
    if (bins < 1 || bins > kMaxBins) throw InternalError(cat("histogram: bins=", bins));
}

ActivationHistogram ActivationHistogram::from_counts(double limit, std::vector<uint64_t> counts,
                                                     float min, float max) {
    if (counts.empty() || counts.size() % 2 != 0 || !(limit >= 0.0))
        throw InternalError("histogram: counts must be 2 * bins, limit >= 0");
    ActivationHistogram h(static_cast<int64_t>(counts.size() / 2));
    h.limit_ = limit;
    h.counts_ = std::move(counts);
    h.seen_ = h.total() > 0;
    h.min_ = min;
    h.max_ = max;
    return h;
}

void ActivationHistogram::grow_to(double amax) {
    if (limit_ == 0.0) {
        // Until now every value was 0, counted in bin `bins` ([0, w) for any T).
        int exponent = 0;
        (void)std::frexp(amax, &exponent);  // amax = m 2^e, m in [0.5, 1): 2^e > amax
        limit_ = std::ldexp(1.0, exponent);
        return;
    }
    const auto b = static_cast<size_t>(bins_);
    while (limit_ <= amax) {
        // Doubling T: bins (b + 2m, b + 2m + 1) -> b + m and (b - 1 - 2m, b - 2 - 2m) -> b - 1 - m.
        std::vector<uint64_t> merged(2 * b, 0);
        for (size_t k = 0; k < 2 * b; ++k) {
            const auto offset = static_cast<int64_t>(k) - bins_;  // bin k covers [offset w, ...)
            const int64_t half = offset >= 0 ? offset / 2 : -((-offset + 1) / 2);
            merged[static_cast<size_t>(bins_ + half)] += counts_[k];
        }
        counts_ = std::move(merged);
        limit_ *= 2.0;
    }
}

void ActivationHistogram::add(const float* x, size_t n) {
    double amax = 0.0;
    for (size_t i = 0; i < n; ++i) {
        if (!std::isfinite(x[i])) {
            ++non_finite_;
            continue;
        }
        amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
        if (!seen_) {
            min_ = max_ = x[i];
            seen_ = true;
        }
        min_ = std::min(min_, x[i]);
        max_ = std::max(max_, x[i]);
    }
    if (amax > 0.0 && amax >= limit_) grow_to(amax);
    const int64_t last = 2 * bins_ - 1;
    const double per_unit = limit_ > 0.0 ? static_cast<double>(bins_) / limit_ : 0.0;
    for (size_t i = 0; i < n; ++i) {
        if (!std::isfinite(x[i])) continue;
        const double pos = std::floor(static_cast<double>(x[i]) * per_unit);
        const int64_t k = std::clamp(bins_ + static_cast<int64_t>(pos), int64_t{0}, last);
        ++counts_[static_cast<size_t>(k)];
    }
}

std::vector<uint64_t> ActivationHistogram::abs_counts() const {
    const auto b = static_cast<size_t>(bins_);
    std::vector<uint64_t> out(b);
    for (size_t j = 0; j < b; ++j) out[j] = counts_[b + j] + counts_[b - 1 - j];
    return out;
}

uint64_t ActivationHistogram::total() const {
    uint64_t t = 0;
    for (uint64_t c : counts_) t += c;
    return t;
}

// ---- thresholds on fixed histograms ---------------------------------------------------

int64_t tail_bin(const std::vector<uint64_t>& counts, double tail) {
    uint64_t total = 0;
    for (uint64_t c : counts) total += c;
    if (total == 0) return -1;
    const double allowed = tail * static_cast<double>(total);
    uint64_t cum = 0;
    for (size_t k = 0; k < counts.size(); ++k) {
        cum += counts[k];
        if (static_cast<double>(total - cum) <= allowed) return static_cast<int64_t>(k);
    }
    return static_cast<int64_t>(counts.size()) - 1;
}

int64_t entropy_threshold_bins(const std::vector<uint64_t>& counts, int64_t quantized_bins,
                               bool non_negative) {
    const auto n = static_cast<int64_t>(counts.size());
    if (quantized_bins < 1 || n < quantized_bins)
        throw InternalError("entropy: fewer bins than quantized bins");
    // The levels the quantizer really has over [0, a]: all 2 L of them for an activation with
    // no negative value (uint8 over [0, a]), L when the grid also covers [-a, 0).
    const int64_t levels = non_negative ? std::min(2 * quantized_bins, n) : quantized_bins;
    // KL does not see how far the clipped values lie, only how many there are: never clip
    // more than kEntropyMaxClipped of the values (counted before the zero-bin rule below).
    const int64_t first = std::max(levels, tail_bin(counts, kEntropyMaxClipped) + 1);
    // As TensorRT: the first bin counts as many values as the second, so the spike of exact
    // zeros a ReLU leaves does not dominate P (it would pull the threshold to the smallest
    // candidate).
    std::vector<uint64_t> abs_counts = counts;
    if (n >= 2) abs_counts[0] = abs_counts[1];
    uint64_t total = 0;
    for (uint64_t c : abs_counts) total += c;
    if (total == 0) return n;
    // outliers[i] = sum of counts[i..n)
    std::vector<uint64_t> above(static_cast<size_t>(n) + 1, 0);
    for (int64_t j = n - 1; j >= 0; --j)
        above[static_cast<size_t>(j)] =
            above[static_cast<size_t>(j) + 1] + abs_counts[static_cast<size_t>(j)];

    // log p_j for the bins below the candidate (their P is their own count), once.
    const double p_total = static_cast<double>(total);
    std::vector<double> log_p(static_cast<size_t>(n), 0.0);
    for (size_t j = 0; j < static_cast<size_t>(n); ++j)
        if (abs_counts[j] > 0) log_p[j] = std::log(static_cast<double>(abs_counts[j]) / p_total);

    std::vector<double> log_q(static_cast<size_t>(levels));
    double best = std::numeric_limits<double>::infinity();
    int64_t best_i = n;
    bool any = false;
    for (int64_t i = first; i <= n; ++i) {
        // Q: the first i bins (outliers left out) merged into `levels` levels, bin j in
        // level floor(j * levels / i) (level l holds bins [ceil(l i / levels),
        // ceil((l + 1) i / levels))), each level's count spread evenly over its non-empty
        // bins; P: the first i bins with the outliers added to the last.
        const uint64_t outliers = above[static_cast<size_t>(i)];
        const double q_total = static_cast<double>(total - outliers);
        double kl = 0.0;
        if (q_total == 0.0 || (abs_counts[static_cast<size_t>(i - 1)] == 0 && outliers > 0)) {
            kl = std::numeric_limits<double>::infinity();  // some p_j > 0 has q_j = 0
        } else {
            for (int64_t l = 0; l < levels; ++l) {
                const int64_t begin = (l * i + levels - 1) / levels;
                const int64_t end = ((l + 1) * i + levels - 1) / levels;
                double merged = 0.0;
                int64_t nonzero = 0;
                for (int64_t j = begin; j < end; ++j) {
                    const uint64_t c = abs_counts[static_cast<size_t>(j)];
                    if (c == 0) continue;
                    merged += static_cast<double>(c);
                    ++nonzero;
                }
                log_q[static_cast<size_t>(l)] =
                    nonzero > 0 ? std::log(merged / static_cast<double>(nonzero) / q_total) : 0.0;
            }
            // KL = sum over p_j > 0 of p_j (log p_j - log q_j), in j order.
            int64_t level = 0;
            int64_t level_end = (i + levels - 1) / levels;
            for (int64_t j = 0; j < i; ++j) {
                while (j >= level_end) {
                    ++level;
                    level_end = ((level + 1) * i + levels - 1) / levels;
                }
                const uint64_t c = abs_counts[static_cast<size_t>(j)];
                if (j < i - 1) {
                    if (c == 0) continue;
                    const double p = static_cast<double>(c) / p_total;
                    kl += p * (log_p[static_cast<size_t>(j)] - log_q[static_cast<size_t>(level)]);
                } else if (c + outliers > 0) {
                    const double p = static_cast<double>(c + outliers) / p_total;
                    kl += p * (std::log(p) - log_q[static_cast<size_t>(level)]);
                }
            }
        }
        if (!any || kl <= best) {
            best = kl;
            best_i = i;
            any = true;
        }
    }
    return best_i;
}

int64_t mse_threshold_bins(const std::vector<uint64_t>& abs_counts, int64_t quantized_bins) {
    const auto n = static_cast<int64_t>(abs_counts.size());
    const int64_t levels = quantized_bins - 1;  // positive levels: 127 for int8
    if (levels < 1 || n < quantized_bins) throw InternalError("mse: fewer bins than levels");
    double best = std::numeric_limits<double>::infinity();
    int64_t best_i = n;
    for (int64_t i = quantized_bins; i <= n; ++i) {
        // In bin units: the centre of bin j is j + 1/2; it quantizes to level
        // q = min(round_half_up((j + 1/2) * levels / i), levels), read back as q * i / levels.
        double err = 0.0;
        for (int64_t j = 0; j < n; ++j) {
            const uint64_t c = abs_counts[static_cast<size_t>(j)];
            if (c == 0) continue;
            const int64_t q = std::min(((2 * j + 1) * levels + i) / (2 * i), levels);
            const double d = (static_cast<double>(j) + 0.5) -
                             static_cast<double>(q * i) / static_cast<double>(levels);
            err += static_cast<double>(c) * d * d;
        }
        if (err < best) {
            best = err;
            best_i = i;
        }
    }
    return best_i;
}

ActivationRange range_from_histogram(const ActivationHistogram& hist,
                                     const CalibratorOptions& options) {
    const float lo = hist.min(), hi = hist.max();
    const double absmax =
        std::max(std::fabs(static_cast<double>(lo)), std::fabs(static_cast<double>(hi)));
    if (hist.total() == 0 || hist.limit() == 0.0) return {lo, hi};
    const double w = hist.width();
    double amax = absmax;  // symmetric threshold on |x|, before clipping
    switch (options.method) {
        case Calibrator::MinMax:
            return options.symmetric ? symmetric_range(absmax) : ActivationRange{lo, hi};
        case Calibrator::Percentile: {
            if (!options.symmetric) {
                // Cut (100 - p) / 2 percent from each tail of the signed histogram.
                const double tail = (100.0 - options.percentile) / 200.0;
                const auto& counts = hist.counts();
                const int64_t k_hi = tail_bin(counts, tail);
                std::vector<uint64_t> reversed(counts.rbegin(), counts.rend());
                const int64_t k_lo =
                    static_cast<int64_t>(counts.size()) - 1 - tail_bin(reversed, tail);
                const double top = -hist.limit() + static_cast<double>(k_hi + 1) * w;
                const double bottom = -hist.limit() + static_cast<double>(k_lo) * w;
                return {static_cast<float>(std::max<double>(bottom, lo)),
                        static_cast<float>(std::min<double>(top, hi))};
            }
            const double tail = (100.0 - options.percentile) / 100.0;
            amax = static_cast<double>(tail_bin(hist.abs_counts(), tail) + 1) * w;
            break;
        }
        case Calibrator::Entropy:
            amax =
                static_cast<double>(entropy_threshold_bins(
                    hist.abs_counts(), options.quantized_bins, lo >= 0.0F && !options.symmetric)) *
                w;
            break;
        case Calibrator::Mse:
            amax =
                static_cast<double>(mse_threshold_bins(hist.abs_counts(), options.quantized_bins)) *
                w;
            break;
    }
    amax = std::min(amax, absmax);
    if (options.symmetric) return symmetric_range(amax);
    return {static_cast<float>(std::max<double>(lo, -amax)),
            static_cast<float>(std::min<double>(hi, amax))};
}

// ---- capture ---------------------------------------------------------------------------

RangeTable collect_ranges(rt::Executor& exec, const SampleList& samples,
                          const std::vector<std::string>& activations,
                          const CalibratorOptions& options, Progress::Step* progress) {
    check_calibrator_options(options);
    const Graph& graph = exec.model().graph;
    std::unordered_set<std::string> produced, fed;
    for (const auto& v : exec.inputs()) fed.insert(v.name);
    for (const auto& node : graph.nodes)
        for (const auto& out : node.outputs)
            if (!out.empty()) produced.insert(out);

    std::vector<RangeAccumulator> accs;
    std::vector<std::string> fetch;
    std::set<std::string> unique;
    for (const auto& name : activations) {
        if (!unique.insert(name).second) continue;
        RangeAccumulator acc;
        acc.name = name;
        if (options.method != Calibrator::MinMax) acc.hist.emplace(options.bins);
        if (const Tensor* init = graph.find_initializer(name); init && !fed.count(name)) {
            acc.add(*init, cat("initializer '", name, "'"));  // a constant: its own values
        } else if (produced.count(name)) {
            fetch.push_back(name);
        } else if (!fed.count(name)) {
            throw InputError(cat("calibration: activation '", name,
                                 "' is not a graph input or an output of any node"));
        }
        accs.push_back(std::move(acc));
    }

    for (size_t i = 0; i < samples.size(); ++i) {
        rt::NamedTensors inputs = samples.load(i);
        rt::NamedTensors outputs = exec.run(inputs, fetch);
        const std::string where = cat("calibration sample ", i);
        for (auto& acc : accs) {
            if (graph.find_initializer(acc.name) && !fed.count(acc.name)) continue;
            const Tensor* t = nullptr;
            for (const auto& [name, value] : outputs)
                if (name == acc.name) t = &value;
            for (const auto& [name, value] : inputs)
                if (!t && name == acc.name) t = &value;
            if (!t)
                throw InternalError(
                    cat("calibration: the runtime did not return activation '", acc.name, "'"));
            acc.add(*t, where);
        }
        if (progress) progress->advance();
    }

    RangeTable table;
    table.calibrator = std::string(calibrator_name(options.method));
    table.options = calibrator_options_to_json(options);
    table.samples = samples.size();
    table.data = samples.describe();
    for (const auto& acc : accs) {
        ActivationRange r;
        if (acc.hist) {
            r = range_from_histogram(*acc.hist, options);
        } else if (options.symmetric) {
            r = symmetric_range(std::max(std::fabs(static_cast<double>(acc.min)),
                                         std::fabs(static_cast<double>(acc.max))));
        } else {
            r = {acc.min, acc.max};
        }
        table.ranges[acc.name] = r;
    }
    return table;
}

// ---- the file --------------------------------------------------------------------------

nlohmann::json range_table_to_json(const RangeTable& table) {
    nlohmann::json ranges = nlohmann::json::object();
    for (const auto& [name, r] : table.ranges)
        ranges[name] = {{"min", static_cast<double>(r.min)}, {"max", static_cast<double>(r.max)}};
    return {{"format", kFormat},
            {"calibrator", table.calibrator},
            {"options", table.options.is_null() ? nlohmann::json::object() : table.options},
            {"samples", table.samples},
            {"data", table.data},
            {"synthetic", table.synthetic},
            {"ranges", std::move(ranges)}};
}

RangeTable range_table_from_json(const nlohmann::json& j, const std::string& where) {
    auto fail = [&](const std::string& field, const std::string& what) {
        return InputError(cat(where, ": ", field, ": ", what));
    };
    if (!j.is_object()) throw InputError(cat(where, ": expected a JSON object (", kFormat, ")"));
    static const std::set<std::string> known = {"format", "calibrator", "options", "samples",
                                                "data",   "synthetic",  "ranges"};
    for (const auto& [key, value] : j.items())
        if (!known.count(key))
            throw fail(key,
                       "unknown field (expected format, calibrator, options, samples, data, "
                       "synthetic, ranges)");
    if (!j.contains("format") || !j["format"].is_string() || j["format"] != kFormat)
        throw fail("format", cat("expected \"", kFormat, "\"",
                                 j.contains("format") ? cat(", found ", j["format"].dump()) : ""));
    RangeTable t;
    if (!j.contains("calibrator") || !j["calibrator"].is_string())
        throw fail("calibrator", "expected one of minmax, percentile, entropy, mse");
    t.calibrator = j["calibrator"].get<std::string>();
    if (!calibrator_from_name(t.calibrator))
        throw fail("calibrator", cat("unknown calibrator \"", t.calibrator,
                                     "\" (expected one of minmax, percentile, entropy, mse)"));
    if (j.contains("options")) {
        if (!j["options"].is_object()) throw fail("options", "expected an object");
        t.options = j["options"];
    } else {
        t.options = nlohmann::json::object();
    }
    if (j.contains("samples")) {
        if (!j["samples"].is_number_unsigned())
            throw fail("samples", "expected a non-negative integer");
        t.samples = j["samples"].get<size_t>();
    }
    if (j.contains("data")) {
        if (!j["data"].is_string()) throw fail("data", "expected a string");
        t.data = j["data"].get<std::string>();
    }
    if (j.contains("synthetic")) {
        if (!j["synthetic"].is_boolean()) throw fail("synthetic", "expected true or false");
        t.synthetic = j["synthetic"].get<bool>();
    }
    if (!j.contains("ranges") || !j["ranges"].is_object())
        throw fail("ranges", "expected an object {\"value name\": {\"min\": m, \"max\": M}, ...}");
    for (const auto& [name, r] : j["ranges"].items()) {
        const std::string field = cat("ranges.", name);
        if (!r.is_object()) throw fail(field, "expected {\"min\": m, \"max\": M}");
        for (const auto& [key, value] : r.items())
            if (key != "min" && key != "max") throw fail(cat(field, ".", key), "unknown field");
        ActivationRange out;
        for (const char* key : {"min", "max"}) {
            if (!r.contains(key) || !r[key].is_number())
                throw fail(cat(field, ".", key), "expected a number");
            const double v = r[key].get<double>();
            if (!std::isfinite(v) || std::fabs(v) > std::numeric_limits<float>::max())
                throw fail(cat(field, ".", key), cat(v, " is not a finite float"));
            (std::string_view(key) == "min" ? out.min : out.max) = static_cast<float>(v);
        }
        if (out.min > out.max)
            throw fail(field, cat("min ", out.min, " is greater than max ", out.max));
        t.ranges[name] = out;
    }
    return t;
}

RangeTable read_range_table(const std::filesystem::path& file, const std::string& where) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw InputError(cat(where, ": cannot read the file"));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded())
        throw InputError(cat(where, ": not valid JSON (expected an ", kFormat,
                             " file, as compress --save-calibration writes)"));
    return range_table_from_json(doc, where);
}

void write_range_table(const RangeTable& table, const std::filesystem::path& file) {
    OutputFile out(file);
    out.write(range_table_to_json(table).dump(2) + "\n");
    out.commit();
}

}  // namespace ep::calib
