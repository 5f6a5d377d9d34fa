// Mixed precision under a budget (the contract is the first comment of mixed_precision.h).
#include "passes/mixed_precision.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include "calibration/calibration.h"
#include "calibration/solvers.h"
#include "ir/error.h"
#include "ir/progress.h"
#include "passes/pass.h"
#include "runtime-check/executor.h"
#include "runtime-check/metrics.h"

namespace ep::mixed {

namespace {

constexpr uint64_t kHessianBudgetBytes = uint64_t{1} << 30;

std::string fixed(double v, int digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

std::string general(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4g", v);
    return buf;
}

std::string_view sensitivity_name(Sensitivity s) {
    switch (s) {
        case Sensitivity::Kl:
            return "kl";
        case Sensitivity::Hessian:
            return "hessian";
        case Sensitivity::Weight:
            return "weight";
    }
    return "?";
}

double bits_per_weight_of(uint64_t bytes, uint64_t weights) {
    return weights ? 8.0 * static_cast<double>(bytes) / static_cast<double>(weights) : 0.0;
}

// The plan each tensor's argmin(error + lambda * bytes) gives; ties: fewer bytes, then the
// earlier option.
std::vector<size_t> plan_at(const std::vector<std::vector<double>>& cost,
                            const std::vector<std::vector<uint64_t>>& bytes, double lambda) {
    std::vector<size_t> out(cost.size(), 0);
    for (size_t i = 0; i < cost.size(); ++i) {
        double best = std::numeric_limits<double>::infinity();
        for (size_t j = 0; j < cost[i].size(); ++j) {
            const double v = cost[i][j] + lambda * static_cast<double>(bytes[i][j]);
            const size_t b = out[i];
            if (j == 0 || v < best || (v == best && bytes[i][j] < bytes[i][b])) {
                best = v;
                out[i] = j;
            }
        }
    }
    return out;
}

uint64_t plan_bytes(const std::vector<std::vector<uint64_t>>& bytes,
                    const std::vector<size_t>& plan) {
    uint64_t total = 0;
    for (size_t i = 0; i < plan.size(); ++i) total += bytes[i][plan[i]];
    return total;
}

double plan_cost(const std::vector<std::vector<double>>& cost, const std::vector<size_t>& plan) {
    double total = 0.0;
    for (size_t i = 0; i < plan.size(); ++i) total += cost[i][plan[i]];
    return total;
}

// Errors are finite and comparable: a non-finite KL (an overflowing output) is the largest.
double finite(double v) {
    return std::isfinite(v) ? v : 1e300;
}

// The stored floats of an item's initializer in `model`.
const Tensor& tensor_of(const Model& model, const Item& item) {
    const Tensor* found = nullptr;
    for_each_graph(model.graph, [&](const Graph& g) {
        if (!found && &g == item.graph) found = g.find_initializer(item.name);
    });
    if (!found) throw InternalError(cat("mixed precision: tensor '", item.name, "' not found"));
    return *found;
}

// The copy of `model` with items[i] replaced by the float values its option plan[i] gives
// (round to nearest, dequantized), for the items where plan[i] is set.
Model quantized_copy(const Model& model, const std::vector<Item>& items,
                     const std::vector<std::optional<size_t>>& plan) {
    // Graphs are matched by their position in for_each_graph's order.
    std::vector<const Graph*> originals;
    for_each_graph(model.graph, [&](const Graph& g) { originals.push_back(&g); });
    Model copy = model;
    std::vector<Graph*> copies;
    for_each_graph(copy.graph, [&](Graph& g) { copies.push_back(&g); });
    for (size_t i = 0; i < items.size(); ++i) {
        if (!plan[i]) continue;
        const auto at = std::find(originals.begin(), originals.end(), items[i].graph);
        Graph& g = *copies[static_cast<size_t>(at - originals.begin())];
        Tensor* t = g.find_initializer(items[i].name);
        const Tensor q = quantize_tensor_rtn(*t, items[i].options[*plan[i]]);
        *t = make_f32_tensor(t->name, t->shape, dequantize_tensor(q));
    }
    return copy;
}

// KL of a model's float outputs against the float model's, on a fixed set of calibration
// samples (each output's last axis is its class axis).
class KlProbe {
  public:
    KlProbe(const Model& model, const calib::DataProvider& data, int64_t samples, int threads)
        : threads_(threads) {
        rt::ExecOptions eo;
        eo.threads = threads_;
        reference_exec_ = std::make_unique<rt::Executor>(model, eo);
        samples_ = data.open_nonempty(*reference_exec_);
        count_ = samples > 0 ? std::min<size_t>(samples_->size(), static_cast<size_t>(samples))
                             : samples_->size();
        description_ = samples_->describe();
        for (size_t s = 0; s < count_; ++s) {
            inputs_.push_back(samples_->load(s));
            reference_.push_back(reference_exec_->run(inputs_.back()));
        }
        // The outputs compared: those validate reads as class scores along the last axis
        // (logits of a classifier or a decoder), not a KV cache or a map.
        if (!reference_.empty())
            for (const auto& [name, t] : reference_.front()) {
                const auto kind = rt::infer_output_kind(model, name, t.dtype, t.shape).spec;
                const auto rank = static_cast<int64_t>(t.shape.size());
                use_.push_back(t.dtype == DType::F32 && rank >= 1 && t.shape.back() >= 2 &&
                               (kind.kind == rt::OutputKind::Sequence ||
                                (kind.kind == rt::OutputKind::Classes &&
                                 (kind.axis == -1 || kind.axis == rank - 1))));
            }
    }

    [[nodiscard]] size_t samples() const { return count_; }
    [[nodiscard]] const std::string& description() const { return description_; }

    struct Kl {
        double mean = 0.0, max = 0.0;
    };
    [[nodiscard]] Kl measure(const Model& variant) const {
        rt::ExecOptions eo;
        eo.threads = threads_;
        rt::Executor exec(variant, eo);
        double sum = 0.0, worst = 0.0;
        uint64_t rows = 0;
        std::vector<double> p, q;
        for (size_t s = 0; s < count_; ++s) {
            const auto got = exec.run(inputs_[s]);
            for (size_t o = 0; o < got.size(); ++o) {
                const Tensor& a = reference_[s][o].second;
                const Tensor& b = got[o].second;
                if (o >= use_.size() || !use_[o] || a.shape != b.shape) continue;
                const auto av = a.values<float>();
                const auto bv = b.values<float>();
                const auto width = static_cast<size_t>(a.shape.back());
                for (size_t r = 0; r + width <= av.size(); r += width) {
                    p.assign(av.begin() + static_cast<std::ptrdiff_t>(r),
                             av.begin() + static_cast<std::ptrdiff_t>(r + width));
                    q.assign(bv.begin() + static_cast<std::ptrdiff_t>(r),
                             bv.begin() + static_cast<std::ptrdiff_t>(r + width));
                    const double kl = finite(rt::kl_from_logits(p, q));
                    sum += kl;
                    worst = std::max(worst, kl);
                    ++rows;
                }
            }
        }
        if (rows == 0)
            throw InputError(
                "sensitivity: kl needs an output of class scores (logits along the last axis, as "
                "validate infers them) to measure KL on, and the model has none; use "
                "\"sensitivity\": \"hessian\" or \"weight\"");
        return {sum / static_cast<double>(rows), worst};
    }

  private:
    int threads_ = 1;
    std::unique_ptr<rt::Executor> reference_exec_;
    std::unique_ptr<calib::SampleList> samples_;
    size_t count_ = 0;
    std::string description_;
    std::vector<rt::NamedTensors> inputs_;
    std::vector<rt::NamedTensors> reference_;
    std::vector<bool> use_;  // per output: compared
};

// sum (w - q(w))^2 over the tensor, in double, in row order.
double weight_error(const Tensor& t, const Encoding& e, int64_t rows, int64_t cols) {
    const auto w = stored_floats(t, e);
    const auto bytes = quantize_rtn(e, w, rows, cols);
    std::vector<float> row(static_cast<size_t>(cols));
    double total = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
        dequantize_row(e, bytes, rows, cols, r, row.data());
        for (int64_t c = 0; c < cols; ++c) {
            const double d = static_cast<double>(w[static_cast<size_t>(r * cols + c)]) -
                             static_cast<double>(row[static_cast<size_t>(c)]);
            total += d * d;
        }
    }
    return total;
}

// Errors per item and option with a Hessian of each activation from the calibration
// capture, in batches of activations whose Hessians fit 1 GiB.
std::vector<std::vector<double>> hessian_errors(const Model& model, const std::vector<Item>& items,
                                                const PassContext& context, std::string& from) {
    std::vector<std::vector<double>> cost(items.size());
    std::vector<std::string> activations;
    std::map<std::string, int64_t> k_of;
    for (const auto& item : items)
        if (!item.activation.empty() && item.options.size() > 1 &&
            k_of.emplace(item.activation, item.cols).second)
            activations.push_back(item.activation);
    rt::ExecOptions eo;
    eo.threads = std::max(1, context.threads);
    rt::Executor exec(model, eo);
    auto samples = context.calibration->open_nonempty(exec);
    from = samples->describe();
    std::vector<std::vector<std::string>> batches;
    uint64_t used = 0;
    for (const auto& act : activations) {
        const auto k = static_cast<uint64_t>(k_of[act]);
        if (batches.empty() || used + k * k * 8 > kHessianBudgetBytes) {
            batches.emplace_back();
            used = 0;
        }
        used += k * k * 8;
        batches.back().push_back(act);
    }
    auto step = progress_step(context.progress, "sensitivity capture",
                              samples->size() * batches.size(), "samples");
    for (const auto& batch : batches) {
        std::vector<calib::CaptureRequest> requests;
        for (const auto& act : batch) {
            calib::CaptureRequest r;
            r.activation = act;
            r.k = k_of[act];
            r.hessian = true;
            requests.push_back(r);
        }
        const auto stats = calib::capture_activations(exec, *samples, requests, &step);
        for (size_t i = 0; i < items.size(); ++i) {
            const auto at = std::find(batch.begin(), batch.end(), items[i].activation);
            if (at == batch.end() || items[i].options.size() < 2) continue;
            const auto& h = stats[static_cast<size_t>(at - batch.begin())].hessian;
            const Tensor& t = tensor_of(model, items[i]);
            for (const auto& e : items[i].options) {
                const auto w = stored_floats(t, e);
                const auto q = quantize_rtn(e, w, items[i].rows, items[i].cols);
                cost[i].push_back(calib::hessian_error(e, w, items[i].rows, items[i].cols, q, h,
                                                       0.0, {}, context.threads));
            }
        }
    }
    step.finish();
    // No captured activation: H = I, the weight error.
    for (size_t i = 0; i < items.size(); ++i)
        if (cost[i].empty())
            for (const auto& e : items[i].options)
                cost[i].push_back(items[i].options.size() < 2
                                      ? 0.0
                                      : weight_error(tensor_of(model, items[i]), e, items[i].rows,
                                                     items[i].cols));
    return cost;
}

// The role of a tensor in llama.cpp's Q4_K_M rule, from its name.
enum class LlamaRole : uint8_t { Other, AttnV, FfnDown, Output, TokenEmbedding };

bool contains(std::string_view s, std::string_view part) {
    return s.find(part) != std::string_view::npos;
}

LlamaRole llama_role(std::string_view name) {
    if (name.starts_with("model.")) name.remove_prefix(6);
    // A fused q/k/v matrix (attn_qkv, ORT GenAI's qkv_proj) is none of the roles below.
    if (contains(name, "qkv")) return LlamaRole::Other;
    if (contains(name, "attn_v.") || contains(name, "v_proj") || contains(name, "attention.wv"))
        return LlamaRole::AttnV;
    if (contains(name, "ffn_down") || contains(name, "down_proj") ||
        contains(name, "feed_forward.w2"))
        return LlamaRole::FfnDown;
    if (name.starts_with("output.") || name.starts_with("lm_head")) return LlamaRole::Output;
    if (contains(name, "token_embd") || contains(name, "embed_tokens") ||
        contains(name, "tok_embeddings"))
        return LlamaRole::TokenEmbedding;
    return LlamaRole::Other;
}

// The layer number in "blk.N.", "layers.N." (else -1).
int64_t layer_of(std::string_view name) {
    for (std::string_view key : {"blk.", "layers."}) {
        size_t at = name.find(key);
        if (at == std::string_view::npos) continue;
        at += key.size();
        int64_t v = -1;
        while (at < name.size() && name[at] >= '0' && name[at] <= '9') {
            v = (v < 0 ? 0 : v * 10) + (name[at] - '0');
            ++at;
        }
        if (v >= 0) return v;
    }
    return -1;
}

// llama.cpp's use_more_bits(i_layer, n_layers).
bool use_more_bits(int64_t i, int64_t n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

}  // namespace

uint64_t Budget::bytes_for(uint64_t weights) const {
    if (max_bytes) return *max_bytes;
    return static_cast<uint64_t>(std::floor(*bits_per_weight * static_cast<double>(weights) / 8.0));
}

std::string Budget::describe() const {
    if (max_bytes) return cat(*max_bytes, " bytes");
    return cat(general(*bits_per_weight), " bits per weight");
}

Options parse_options(const nlohmann::json& o) {
    Options out;
    if (o.contains("budget") && !o["budget"].is_null()) {
        const auto& b = o["budget"];
        if (!b.is_object() || b.size() != 1)
            throw InputError(
                "budget: expected one entry, {\"bits_per_weight\": N} or {\"max_bytes\": N}");
        Budget budget;
        const std::string key = b.begin().key();
        const nlohmann::json value = b.begin().value();
        if (!value.is_number())
            throw InputError(cat("budget.", key, ": expected a number, found ", value.dump()));
        if (key == "bits_per_weight") {
            const double v = value.get<double>();
            if (!(v > 0.0) || v > 32.0)
                throw InputError(cat("budget.bits_per_weight: ", value.dump(),
                                     " is not a size (expected more than 0, at most 32)"));
            budget.bits_per_weight = v;
        } else if (key == "max_bytes") {
            const double v = value.get<double>();
            if (!(v >= 1.0) || std::floor(v) != v || v > 9e18)
                throw InputError(cat("budget.max_bytes: ", value.dump(),
                                     " is not a byte count (expected an integer >= 1)"));
            budget.max_bytes = static_cast<uint64_t>(v);
        } else {
            throw InputError(
                cat("budget.", key, ": unknown budget (expected bits_per_weight or max_bytes)"));
        }
        out.budget = budget;
    }
    out.plan = o.value("plan", std::string());
    if (!out.plan.empty() && out.plan != "q4_k_m")
        throw InputError(cat("plan: '", out.plan, "' is not a named plan (expected q4_k_m)"));
    if (out.budget && !out.plan.empty())
        throw InputError("plan: a named plan and a budget exclude each other; remove one");
    if (o.contains("candidates") && o["candidates"].is_array()) {
        const auto& list = o["candidates"];
        for (size_t i = 0; i < list.size(); ++i) {
            const std::string field = cat("candidates[", i, "]");
            if (!list[i].is_string())
                throw InputError(cat(field, ": expected an encoding name, found ", list[i].dump()));
            const auto name = list[i].get<std::string>();
            auto e = encoding_from_name(name);
            if (!e || !e->is_quantized() || e->is_sparse())
                throw InputError(cat(field, ": '", name,
                                     "' is not an encoding (expected a name such as int4g32, "
                                     "int8g32, int4g32a, int8c)"));
            if (std::find(out.candidates.begin(), out.candidates.end(), *e) != out.candidates.end())
                throw InputError(cat(field, ": '", name, "' is listed twice"));
            out.candidates.push_back(*e);
        }
    }
    if (out.plan == "q4_k_m" && out.candidates.empty()) {
        auto low = encoding_from_name("q4_k"), high = encoding_from_name("q6_k");
        if (!low || !high)
            throw InputError(
                "plan: q4_k_m needs its two encodings, and this build has no q4_k / q6_k: give "
                "them as candidates [low, high], e.g. [\"int4g32\", \"int8g32\"]");
        out.candidates = {*low, *high};
    }
    if (out.plan == "q4_k_m" && out.candidates.size() != 2)
        throw InputError(cat("candidates: plan q4_k_m takes two encodings [low, high], found ",
                             out.candidates.size()));
    if (out.budget && out.candidates.size() < 2)
        throw InputError(cat("candidates: a budget needs at least two encodings to choose from, ",
                             "found ", out.candidates.size()));
    if (!out.active() && !out.candidates.empty())
        throw InputError("candidates: apply with a budget or a plan; add \"budget\"");
    const auto s = o.value("sensitivity", std::string("kl"));
    if (s == "kl")
        out.sensitivity = Sensitivity::Kl;
    else if (s == "hessian")
        out.sensitivity = Sensitivity::Hessian;
    else if (s == "weight")
        out.sensitivity = Sensitivity::Weight;
    else
        throw InputError(cat("sensitivity: '", s, "' is not one of kl, hessian, weight"));
    out.samples = o.value("sensitivity_samples", int64_t{8});
    out.curve_points = o.value("curve_points", int64_t{6});
    if (out.curve_points < 1)
        throw InputError(cat("curve_points: ", out.curve_points, " is below the minimum 1"));
    return out;
}

std::vector<size_t> named_plan(const Options& options, const std::vector<Item>& items) {
    std::vector<size_t> out(items.size(), 0);
    const Encoding& high = options.candidates.at(1);
    std::map<LlamaRole, int64_t> count;
    bool has_output = false;
    for (const auto& item : items) {
        const auto role = llama_role(item.name);
        ++count[role];
        has_output = has_output || role == LlamaRole::Output;
    }
    for (size_t i = 0; i < items.size(); ++i) {
        const auto role = llama_role(items[i].name);
        bool more = false;
        if (role == LlamaRole::Output || (role == LlamaRole::TokenEmbedding && !has_output))
            more = true;
        if (role == LlamaRole::AttnV || role == LlamaRole::FfnDown) {
            const int64_t layer = layer_of(items[i].name);
            more = layer >= 0 && use_more_bits(layer, count[role]);
        }
        if (!more) continue;
        for (size_t j = 0; j < items[i].options.size(); ++j) {
            Encoding e = items[i].options[j];
            e.axis = high.axis;
            if (e == high) out[i] = j;
        }
    }
    return out;
}

uint64_t budget_bytes(const Options& options, const std::vector<Item>& items) {
    uint64_t weights = 0, smallest = 0, largest = 0;
    for (const auto& item : items) {
        weights += item.weights;
        smallest += *std::min_element(item.bytes.begin(), item.bytes.end());
        largest += *std::max_element(item.bytes.begin(), item.bytes.end());
    }
    const uint64_t budget = options.budget->bytes_for(weights);
    if (budget < smallest) {
        const std::string field =
            options.budget->max_bytes ? "budget.max_bytes" : "budget.bits_per_weight";
        throw InputError(cat(
            field, ": ", options.budget->describe(), " (", budget, " bytes for ", weights,
            " weights) is below the smallest plan the candidates give: ", smallest, " bytes (",
            fixed(bits_per_weight_of(smallest, weights), 3), " bits per weight; the largest is ",
            largest, " bytes, ", fixed(bits_per_weight_of(largest, weights), 3), ")"));
    }
    return budget;
}

std::optional<Allocation> allocate(const std::vector<std::vector<double>>& cost,
                                   const std::vector<std::vector<uint64_t>>& bytes,
                                   uint64_t budget) {
    // The smallest plan (ties: the lower error) must fit.
    std::vector<size_t> smallest(cost.size(), 0);
    for (size_t i = 0; i < cost.size(); ++i)
        for (size_t j = 1; j < cost[i].size(); ++j)
            if (bytes[i][j] < bytes[i][smallest[i]] ||
                (bytes[i][j] == bytes[i][smallest[i]] && cost[i][j] < cost[i][smallest[i]]))
                smallest[i] = j;
    if (plan_bytes(bytes, smallest) > budget) return std::nullopt;
    std::vector<size_t> plan = plan_at(cost, bytes, 0.0);
    if (plan_bytes(bytes, plan) > budget) {
        // Bisection on lambda: lo does not fit, hi fits.
        double lo = 0.0, hi = 1e-12;
        while (plan_bytes(bytes, plan_at(cost, bytes, hi)) > budget && hi < 1e300) hi *= 4.0;
        plan = plan_at(cost, bytes, hi);
        if (plan_bytes(bytes, plan) > budget) plan = smallest;
        for (int it = 0; it < 200 && plan != smallest; ++it) {
            const double mid = lo + (hi - lo) / 2.0;
            if (mid <= lo || mid >= hi) break;
            auto p = plan_at(cost, bytes, mid);
            if (plan_bytes(bytes, p) <= budget) {
                hi = mid;
                plan = std::move(p);
            } else {
                lo = mid;
            }
        }
        // The bytes left: the upgrade with the best error drop per byte that still fits.
        uint64_t used = plan_bytes(bytes, plan);
        for (;;) {
            double best_ratio = 0.0;
            std::optional<std::pair<size_t, size_t>> best;
            for (size_t i = 0; i < cost.size(); ++i) {
                const size_t cur = plan[i];
                for (size_t j = 0; j < cost[i].size(); ++j) {
                    const double drop = cost[i][cur] - cost[i][j];
                    if (!(drop > 0.0)) continue;
                    if (bytes[i][j] > bytes[i][cur] && bytes[i][j] - bytes[i][cur] > budget - used)
                        continue;
                    const double grow = bytes[i][j] > bytes[i][cur]
                                            ? static_cast<double>(bytes[i][j] - bytes[i][cur])
                                            : 0.5;
                    const double ratio = drop / grow;
                    if (!best || ratio > best_ratio) {
                        best_ratio = ratio;
                        best = std::make_pair(i, j);
                    }
                }
            }
            if (!best) break;
            used = used - bytes[best->first][plan[best->first]] + bytes[best->first][best->second];
            plan[best->first] = best->second;
        }
    }
    Allocation a;
    a.bytes = plan_bytes(bytes, plan);
    a.predicted = plan_cost(cost, plan);
    a.option = std::move(plan);
    return a;
}

Choice choose(const Model& model, const std::vector<Item>& items, const Options& options,
              const PassContext& context) {
    Choice out;
    uint64_t weights = 0;
    for (const auto& item : items) weights += item.weights;
    std::vector<std::vector<uint64_t>> bytes;
    for (const auto& item : items) bytes.push_back(item.bytes);
    nlohmann::json report = nlohmann::json::object();
    nlohmann::json names = nlohmann::json::array();
    for (const auto& e : options.candidates) names.push_back(encoding_name(e));
    report["candidates"] = names;

    if (!options.plan.empty()) {
        out.option = named_plan(options, items);
        out.bytes = plan_bytes(bytes, out.option);
        report["plan"] = options.plan;
        out.lines.push_back(
            cat("mixed precision: plan ", options.plan, " (llama.cpp's rule), ", out.bytes,
                " bytes, ", fixed(bits_per_weight_of(out.bytes, weights), 3), " bits per weight"));
    } else {
        const uint64_t budget = budget_bytes(options, items);
        const bool measured =
            options.sensitivity == Sensitivity::Kl || options.sensitivity == Sensitivity::Hessian;
        if (measured && !context.calibration)
            throw InputError(cat("sensitivity: ", sensitivity_name(options.sensitivity),
                                 " needs calibration data: add a \"calibration\" section to the "
                                 "recipe, or use \"sensitivity\": \"weight\""));
        std::vector<std::vector<double>> cost(items.size());
        std::unique_ptr<KlProbe> probe;
        std::string from;
        if (measured) {
            probe = std::make_unique<KlProbe>(model, *context.calibration, options.samples,
                                              std::max(1, context.threads));
            from = cat(probe->samples(), " of ", probe->description());
        }
        if (options.sensitivity == Sensitivity::Hessian) {
            cost = hessian_errors(model, items, context, from);
        } else {
            size_t total = 0;
            for (const auto& item : items)
                total += item.options.size() > 1 ? item.options.size() : 0;
            auto step = progress_step(context.progress, "sensitivity", total, "tensors");
            for (size_t i = 0; i < items.size(); ++i) {
                if (items[i].options.size() < 2) {
                    cost[i].assign(items[i].options.size(), 0.0);
                    continue;
                }
                step.set_detail(items[i].name);
                for (size_t j = 0; j < items[i].options.size(); ++j) {
                    if (options.sensitivity == Sensitivity::Kl) {
                        std::vector<std::optional<size_t>> only(items.size());
                        only[i] = j;
                        cost[i].push_back(probe->measure(quantized_copy(model, items, only)).mean);
                    } else {
                        cost[i].push_back(weight_error(tensor_of(model, items[i]),
                                                       items[i].options[j], items[i].rows,
                                                       items[i].cols));
                    }
                    step.advance();
                }
            }
            step.finish();
        }
        auto found = allocate(cost, bytes, budget);
        if (!found) throw InternalError("mixed precision: a checked budget did not fit");
        out.option = found->option;
        out.bytes = found->bytes;
        out.predicted = found->predicted;
        const std::string unit = options.sensitivity == Sensitivity::Kl
                                     ? "KL"
                                     : cat(sensitivity_name(options.sensitivity), " error");
        report["budget"] =
            options.budget->max_bytes
                ? nlohmann::json{{"max_bytes", *options.budget->max_bytes}}
                : nlohmann::json{{"bits_per_weight", *options.budget->bits_per_weight}};
        report["budget_bytes"] = budget;
        report["sensitivity"] = sensitivity_name(options.sensitivity);
        if (!from.empty()) report["sensitivity_data"] = from;
        report["predicted"] = out.predicted;
        out.lines.push_back(cat("mixed precision: budget ", options.budget->describe(), " = ",
                                budget, " bytes; chose ", out.bytes, " bytes (",
                                fixed(bits_per_weight_of(out.bytes, weights), 3),
                                " bits per weight), predicted ", unit, " ", general(out.predicted),
                                " (sum of per-tensor ", sensitivity_name(options.sensitivity),
                                from.empty() ? "" : cat(" on ", from), ")"));
        nlohmann::json tensors = nlohmann::json::array();
        for (size_t i = 0; i < items.size(); ++i) {
            nlohmann::json errors = nlohmann::json::object();
            std::string others;
            for (size_t j = 0; j < items[i].options.size(); ++j) {
                errors[encoding_name(items[i].options[j])] = cost[i][j];
                if (j != out.option[i])
                    others += cat(others.empty() ? "" : ", ", encoding_name(items[i].options[j]),
                                  " ", general(cost[i][j]));
            }
            tensors.push_back({{"name", items[i].name},
                               {"encoding", encoding_name(items[i].options[out.option[i]])},
                               {"bytes", items[i].bytes[out.option[i]]},
                               {"errors", errors}});
            out.lines.push_back(
                cat("  ", items[i].name, ": ", encoding_name(items[i].options[out.option[i]]), " (",
                    items[i].bytes[out.option[i]], " bytes, ",
                    sensitivity_name(options.sensitivity), " ", general(cost[i][out.option[i]]),
                    others.empty() ? "" : cat("; ", others), ")"));
        }
        report["tensors"] = tensors;

        // The curve: the sweep's distinct plans (every breakpoint of lambda), spread by size,
        // and the chosen one; each measured in full through the runtime.
        if (probe) {
            std::set<double> breaks;
            for (size_t i = 0; i < items.size(); ++i)
                for (size_t a = 0; a < cost[i].size(); ++a)
                    for (size_t b = 0; b < cost[i].size(); ++b)
                        if (bytes[i][b] > bytes[i][a] && cost[i][b] < cost[i][a])
                            breaks.insert((cost[i][a] - cost[i][b]) /
                                          static_cast<double>(bytes[i][b] - bytes[i][a]));
            std::vector<double> lambdas{0.0};
            double prev = 0.0;
            for (double l : breaks) {
                lambdas.push_back(prev + (l - prev) / 2.0);
                prev = l;
            }
            lambdas.push_back(prev * 2.0 + 1e-300);
            std::map<uint64_t, std::vector<size_t>> by_size;  // bytes -> plan (first found)
            for (double l : lambdas) {
                auto p = plan_at(cost, bytes, l);
                by_size.emplace(plan_bytes(bytes, p), std::move(p));
            }
            std::vector<std::vector<size_t>> sweep;
            for (auto& [b, p] : by_size) sweep.push_back(p);
            std::vector<std::vector<size_t>> points;
            const auto want = static_cast<size_t>(std::max<int64_t>(1, options.curve_points - 1));
            for (size_t k = 0; k < want && !sweep.empty(); ++k) {
                const size_t at = want == 1 ? 0 : k * (sweep.size() - 1) / (want - 1);
                if (points.empty() || points.back() != sweep[at]) points.push_back(sweep[at]);
            }
            if (std::find(points.begin(), points.end(), out.option) == points.end())
                points.push_back(out.option);
            std::sort(points.begin(), points.end(), [&](const auto& a, const auto& b) {
                return plan_bytes(bytes, a) < plan_bytes(bytes, b);
            });
            nlohmann::json curve = nlohmann::json::array();
            auto step = progress_step(context.progress, "size/KL curve", points.size(), "plans");
            for (const auto& p : points) {
                std::vector<std::optional<size_t>> all(p.begin(), p.end());
                const auto kl = probe->measure(quantized_copy(model, items, all));
                const uint64_t b = plan_bytes(bytes, p);
                const bool chosen = p == out.option;
                curve.push_back({{"bytes", b},
                                 {"bits_per_weight", bits_per_weight_of(b, weights)},
                                 {"predicted", plan_cost(cost, p)},
                                 {"kl_mean", kl.mean},
                                 {"kl_max", kl.max},
                                 {"chosen", chosen}});
                out.lines.push_back(
                    cat("  curve: ", b, " bytes (", fixed(bits_per_weight_of(b, weights), 3),
                        " bits per weight): predicted ", general(plan_cost(cost, p)),
                        ", measured KL mean ", general(kl.mean), " max ", general(kl.max),
                        chosen ? " (chosen)" : ""));
                step.advance();
            }
            step.finish();
            report["curve"] = curve;
        }
    }
    report["bytes"] = out.bytes;
    report["weights"] = weights;
    report["bits_per_weight"] = bits_per_weight_of(out.bytes, weights);
    if (report.find("tensors") == report.end()) {
        nlohmann::json tensors = nlohmann::json::array();
        for (size_t i = 0; i < items.size(); ++i) {
            tensors.push_back({{"name", items[i].name},
                               {"encoding", encoding_name(items[i].options[out.option[i]])},
                               {"bytes", items[i].bytes[out.option[i]]}});
        }
        report["tensors"] = tensors;
    }
    out.report = std::move(report);
    return out;
}

}  // namespace ep::mixed
