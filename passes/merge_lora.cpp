// merge-lora (contract in merge_lora.h, user docs in docs/lora.md).
#include "passes/merge_lora.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

#include "ir/error.h"
#include "ir/progress.h"
#include "passes/lora_targets.h"
#include "passes/selector.h"

namespace ep {

namespace {

using json = nlohmann::json;

constexpr std::string_view kPeftPrefix = "base_model.model.";
constexpr double kSelfCheckTolerance = 1e-5;       // relative, on top of the dtype's rounding
constexpr size_t kChunkDoubles = size_t{1} << 19;  // 4 MiB of doubles per chunk of rows

// ---------------------------------------------------------------- element conversion

bool is_float_dtype(DType t) {
    return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64;
}

// Elements [first, first + count) of `t` as doubles.
void read_doubles(const Tensor& t, size_t first, size_t count, double* out) {
    const std::byte* bytes = t.data.bytes().data();
    switch (t.dtype) {
        case DType::F64:
            std::memcpy(out, bytes + first * 8, count * 8);
            return;
        case DType::F32: {
            const auto* v = reinterpret_cast<const float*>(bytes) + first;
            for (size_t i = 0; i < count; ++i) out[i] = v[i];
            return;
        }
        case DType::F16: {
            const auto* v = reinterpret_cast<const uint16_t*>(bytes) + first;
            for (size_t i = 0; i < count; ++i) out[i] = half_to_float(v[i]);
            return;
        }
        case DType::BF16: {
            const auto* v = reinterpret_cast<const uint16_t*>(bytes) + first;
            for (size_t i = 0; i < count; ++i) out[i] = bf16_to_float(v[i]);
            return;
        }
        default:
            throw InputError(cat("tensor '", t.name, "': dtype ", dtype_name(t.dtype),
                                 " (merge-lora reads f32, f16, bf16 or f64)"));
    }
}

std::vector<double> all_doubles(const Tensor& t) {
    std::vector<double> v(static_cast<size_t>(t.element_count()));
    read_doubles(t, 0, v.size(), v.data());
    return v;
}

// Rounds `v` once to `dtype` (f16 / bf16 through f32) and returns the stored value.
double store(DType dtype, double v, std::byte* out) {
    switch (dtype) {
        case DType::F64:
            std::memcpy(out, &v, 8);
            return v;
        case DType::F32: {
            auto f = static_cast<float>(v);
            std::memcpy(out, &f, 4);
            return f;
        }
        case DType::F16: {
            uint16_t h = float_to_half(static_cast<float>(v));
            std::memcpy(out, &h, 2);
            return half_to_float(h);
        }
        case DType::BF16: {
            uint16_t h = float_to_bf16(static_cast<float>(v));
            std::memcpy(out, &h, 2);
            return bf16_to_float(h);
        }
        default:
            throw InternalError(cat("merge-lora: cannot store ", dtype_name(dtype)));
    }
}

// Half a unit in the last place, relative: the rounding of one stored value.
double unit_roundoff(DType dtype) {
    switch (dtype) {
        case DType::F16:
            return std::ldexp(1.0, -11);
        case DType::BF16:
            return std::ldexp(1.0, -8);
        case DType::F32:
            return std::ldexp(1.0, -24);
        default:
            return std::ldexp(1.0, -53);
    }
}

size_t element_bytes(DType dtype) {
    return static_cast<size_t>(traits(dtype).bits / 8);
}

// ---------------------------------------------------------------- adapter_config.json

struct AdapterConfig {
    int64_t r = 0;
    double lora_alpha = 0.0;
    std::vector<std::string> target_modules;  // a list of module names ...
    std::string target_regex;                 // ... or one regular expression
    bool fan_in_fan_out = false;
    bool use_rslora = false;
    bool use_dora = false;
    std::vector<std::pair<std::string, int64_t>> rank_pattern;
    std::vector<std::pair<std::string, double>> alpha_pattern;
    std::vector<std::string> modules_to_save;
    std::string bias = "none";
};

AdapterConfig parse_config(const std::filesystem::path& file) {
    const std::string what = file.string();
    std::ifstream in(file, std::ios::binary);
    if (!in) throw InputError(cat(what, ": not found (a PEFT adapter directory holds it)"));
    std::stringstream text;
    text << in.rdbuf();
    json j;
    try {
        j = json::parse(text.str());
    } catch (const json::exception& e) {
        throw InputError(cat(what, ": invalid JSON: ", e.what()));
    }
    if (!j.is_object()) throw InputError(cat(what, ": not a JSON object"));
    auto fail = [&](const std::string& field, const std::string& why) -> void {
        throw InputError(cat(what, ": field '", field, "': ", why));
    };
    auto optional_bool = [&](const char* key) {
        if (!j.contains(key) || j[key].is_null()) return false;
        if (!j[key].is_boolean()) fail(key, cat("expected true or false, found ", j[key].dump()));
        return j[key].get<bool>();
    };
    AdapterConfig c;
    if (j.contains("peft_type") && j["peft_type"] != "LORA")
        fail("peft_type", cat(j["peft_type"].dump(), ": merge-lora merges LORA adapters"));
    if (!j.contains("r")) fail("r", "missing (required)");
    if (!j["r"].is_number_integer() || j["r"].get<int64_t>() < 1)
        fail("r", cat("expected a positive integer, found ", j["r"].dump()));
    c.r = j["r"].get<int64_t>();
    if (!j.contains("lora_alpha")) fail("lora_alpha", "missing (required)");
    if (!j["lora_alpha"].is_number())
        fail("lora_alpha", cat("expected a number, found ", j["lora_alpha"].dump()));
    c.lora_alpha = j["lora_alpha"].get<double>();
    if (!j.contains("target_modules") || j["target_modules"].is_null())
        fail("target_modules", "missing (required)");
    const json& tm = j["target_modules"];
    if (tm.is_string()) {
        c.target_regex = tm.get<std::string>();
    } else if (tm.is_array() &&
               std::all_of(tm.begin(), tm.end(), [](const json& v) { return v.is_string(); })) {
        c.target_modules = tm.get<std::vector<std::string>>();
    } else {
        fail("target_modules",
             cat("expected a list of names or a regular expression, found ", tm.dump()));
    }
    c.fan_in_fan_out = optional_bool("fan_in_fan_out");
    c.use_rslora = optional_bool("use_rslora");
    c.use_dora = optional_bool("use_dora");
    auto pattern = [&](const char* key, bool integer) {
        std::vector<std::pair<std::string, double>> out;
        if (!j.contains(key) || j[key].is_null()) return out;
        if (!j[key].is_object()) fail(key, cat("expected an object, found ", j[key].dump()));
        for (const auto& [k, v] : j[key].items()) {
            if (integer ? !v.is_number_integer() || v.get<int64_t>() < 1 : !v.is_number())
                fail(cat(key, ".", k), cat("expected a ", integer ? "positive integer" : "number",
                                           ", found ", v.dump()));
            out.emplace_back(k, v.get<double>());
        }
        return out;
    };
    for (const auto& [k, v] : pattern("rank_pattern", true))
        c.rank_pattern.emplace_back(k, static_cast<int64_t>(v));
    c.alpha_pattern = pattern("alpha_pattern", false);
    if (j.contains("modules_to_save") && !j["modules_to_save"].is_null()) {
        const json& m = j["modules_to_save"];
        if (!m.is_array() ||
            !std::all_of(m.begin(), m.end(), [](const json& v) { return v.is_string(); }))
            fail("modules_to_save", cat("expected a list of names, found ", m.dump()));
        c.modules_to_save = m.get<std::vector<std::string>>();
    }
    if (j.contains("bias") && !j["bias"].is_null()) {
        if (!j["bias"].is_string())
            fail("bias", cat("expected a string, found ", j["bias"].dump()));
        c.bias = j["bias"].get<std::string>();
        if (c.bias != "none" && c.bias != "all" && c.bias != "lora_only")
            fail("bias", cat("'", c.bias, "' is not one of \"none\", \"all\", \"lora_only\""));
    }
    for (const char* unsupported : {"layer_replication"})
        if (j.contains(unsupported) && !j[unsupported].is_null())
            fail(unsupported, "not supported by merge-lora");
    return c;
}

// PEFT's pattern rule (rank_pattern, alpha_pattern): the key matches the end of the module
// path at a "." boundary, as a regular expression.
bool pattern_matches(const std::string& key, const std::string& module, const std::string& what) {
    try {
        return std::regex_match(module, std::regex("(.*\\.)?(" + key + ")"));
    } catch (const std::regex_error&) {
        throw InputError(cat(what, ": '", key, "' is not a valid regular expression"));
    }
}

bool is_target_module(const AdapterConfig& c, const std::string& module, const std::string& what) {
    if (!c.target_regex.empty()) {
        if (c.target_regex == "all-linear") return true;
        try {
            return std::regex_match(module, std::regex(c.target_regex));
        } catch (const std::regex_error&) {
            throw InputError(cat(what, ": field 'target_modules': '", c.target_regex,
                                 "' is not a valid regular expression"));
        }
    }
    return std::any_of(c.target_modules.begin(), c.target_modules.end(), [&](const auto& t) {
        return t == "all-linear" || module == t || module.ends_with("." + t);
    });
}

// ---------------------------------------------------------------- one adapter

struct LoraModule {
    std::string module;
    const Tensor* a = nullptr;          // lora_A.weight [r, in]
    const Tensor* b = nullptr;          // lora_B.weight [out, r]
    const Tensor* b_bias = nullptr;     // lora_B.bias [out]
    const Tensor* magnitude = nullptr;  // DoRA's lora_magnitude_vector [out]
    int64_t rank = 0, in = 0, out = 0;
    double scale = 0.0;  // lora_alpha / r or / sqrt(r)
};

struct SavedTensor {
    std::string name;  // the base tensor it replaces
    const Tensor* tensor = nullptr;
};

struct Adapter {
    std::string what;  // the directory, for messages
    AdapterConfig config;
    Model tensors;
    double weight = 1.0;
    std::vector<LoraModule> modules;  // by name
    std::vector<SavedTensor> saved;
};

bool ends_with_strip(std::string& name, std::string_view suffix) {
    if (!name.ends_with(suffix)) return false;
    name.resize(name.size() - suffix.size());
    return true;
}

std::unique_ptr<Adapter> read_adapter(const std::filesystem::path& dir, double weight,
                                      const PassFiles& files) {
    auto a = std::make_unique<Adapter>();
    a->what = cat("adapter ", dir.string());
    a->weight = weight;
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec))
        throw InputError(cat(a->what,
                             ": not a directory (a PEFT adapter directory holds "
                             "adapter_config.json and adapter_model.safetensors)"));
    const auto weights_file = dir / "adapter_model.safetensors";
    if (!std::filesystem::exists(weights_file, ec)) {
        if (std::filesystem::exists(dir / "adapter_model.bin", ec))
            throw InputError(cat(a->what,
                                 ": adapter_model.bin is a pickled PyTorch file, which "
                                 "edgepack does not read: save the adapter as "
                                 "adapter_model.safetensors (PEFT's save_pretrained "
                                 "does by default, safe_serialization=True)"));
        throw InputError(cat(a->what, ": adapter_model.safetensors not found"));
    }
    a->config = parse_config(dir / "adapter_config.json");
    a->tensors = files.read_tensors(weights_file);
    const AdapterConfig& c = a->config;
    const std::string file = weights_file.string();

    std::map<std::string, LoraModule> modules;
    for (const Tensor& t : a->tensors.graph.initializers) {
        std::string name = t.name;
        if (name.starts_with(kPeftPrefix)) name.erase(0, kPeftPrefix.size());
        const std::string at = cat(file, ": tensor '", t.name, "'");
        if (!is_float_dtype(t.dtype) || t.is_encoded())
            throw InputError(cat(at, ": dtype ", dtype_name(t.dtype),
                                 " (an adapter holds f32, f16, bf16 or f64 tensors)"));
        std::string module = name;
        const Tensor** slot = nullptr;
        LoraModule* m = nullptr;
        auto lora = [&](std::string_view suffix, const Tensor* LoraModule::*field) {
            if (!ends_with_strip(module, suffix)) return false;
            m = &modules[module];
            m->module = module;
            slot = &(m->*field);
            return true;
        };
        if (lora(".lora_A.weight", &LoraModule::a) || lora(".lora_B.weight", &LoraModule::b) ||
            lora(".lora_B.bias", &LoraModule::b_bias) ||
            lora(".lora_magnitude_vector.weight", &LoraModule::magnitude) ||
            lora(".lora_magnitude_vector", &LoraModule::magnitude)) {
            if (*slot) throw InputError(cat(at, ": a second tensor for the same role"));
            *slot = &t;
            continue;
        }
        if (name.find("lora_embedding_") != std::string::npos)
            throw InputError(cat(at,
                                 ": LoRA on an Embedding layer is not supported by merge-lora "
                                 "(only Linear / Conv1D weights)"));
        if (name.find("lora_") != std::string::npos)
            throw InputError(cat(at,
                                 ": not a LoRA tensor merge-lora knows (lora_A.weight, "
                                 "lora_B.weight, lora_B.bias, lora_magnitude_vector)"));
        // A saved tensor: modules_to_save (PEFT keeps "modules_to_save.<adapter>" in some
        // versions) or a bias trained with bias "all" / "lora_only".
        for (std::string_view seg : {".modules_to_save.default.", ".modules_to_save."})
            if (auto at_seg = name.find(seg); at_seg != std::string::npos)
                name.replace(at_seg, seg.size(), ".");
        a->saved.push_back({name, &t});
    }
    for (auto& [name, m] : modules) {
        const std::string at = cat(file, ": module '", name, "'");
        if (!m.a || !m.b)
            throw InputError(cat(at, ": has ", m.a ? "lora_A.weight" : "lora_B.weight", " but no ",
                                 m.a ? "lora_B.weight" : "lora_A.weight"));
        if (m.a->shape.size() != 2 || m.b->shape.size() != 2)
            throw InputError(cat(at, ": lora_A ", shape_string(m.a->shape), " and lora_B ",
                                 shape_string(m.b->shape), " must be 2-D ([r, in], [out, r])"));
        m.rank = m.a->shape[0];
        m.in = m.a->shape[1];
        m.out = m.b->shape[0];
        if (m.b->shape[1] != m.rank)
            throw InputError(cat(at, ": lora_A.weight ", shape_string(m.a->shape), " has rank ",
                                 m.rank, " but lora_B.weight ", shape_string(m.b->shape),
                                 " has rank ", m.b->shape[1]));
        int64_t r = c.r;
        std::string r_field = "r";
        for (const auto& [key, value] : c.rank_pattern)
            if (pattern_matches(key, name, cat(at, ": rank_pattern"))) {
                r = value;
                r_field = cat("rank_pattern.", key);
                break;
            }
        if (m.rank != r)
            throw InputError(cat(at, ": lora_A.weight ", shape_string(m.a->shape), " has rank ",
                                 m.rank, " but adapter_config.json ", r_field, " = ", r));
        double alpha = c.lora_alpha;
        for (const auto& [key, value] : c.alpha_pattern)
            if (pattern_matches(key, name, cat(at, ": alpha_pattern"))) {
                alpha = value;
                break;
            }
        m.scale = c.use_rslora ? alpha / std::sqrt(static_cast<double>(r))
                               : alpha / static_cast<double>(r);
        if (!is_target_module(c, name, file))
            throw InputError(cat(at, ": not in adapter_config.json target_modules"));
        auto vector_of_out = [&](const Tensor* t, const char* role) {
            if (t && (t->shape.size() != 1 || t->shape[0] != m.out))
                throw InputError(cat(at, ": ", role, " ", shape_string(t->shape), " should be [",
                                     m.out, "] (lora_B's rows)"));
        };
        vector_of_out(m.b_bias, "lora_B.bias");
        vector_of_out(m.magnitude, "lora_magnitude_vector");
        if (c.use_dora && !m.magnitude)
            throw InputError(cat(at,
                                 ": adapter_config.json use_dora is true but the module has "
                                 "no lora_magnitude_vector"));
        if (!c.use_dora && m.magnitude)
            throw InputError(cat(at,
                                 ": has a lora_magnitude_vector but adapter_config.json "
                                 "use_dora is false"));
        for (const Tensor* t : {m.a, m.b, m.b_bias, m.magnitude}) {
            if (!t) continue;
            for (double v : all_doubles(*t))
                if (!std::isfinite(v))
                    throw InputError(cat(file, ": tensor '", t->name, "': holds NaN or Inf"));
        }
        a->modules.push_back(m);
    }
    if (a->modules.empty() && a->saved.empty())
        throw InputError(cat(file, ": holds no LoRA tensors"));
    return a;
}

// ---------------------------------------------------------------- combining adapters

// The low-rank factors of one target's delta, scales folded into B: delta = B A.
struct Factors {
    std::string module;
    int64_t out = 0, in = 0, rank = 0;
    std::vector<double> a;           // [rank, in]
    std::vector<double> b;           // [out, rank]
    std::vector<double> magnitude;   // DoRA, [out]; empty otherwise
    std::vector<double> bias_delta;  // s * lora_B.bias, [out]; empty when none
};

// 64-bit FNV-1a: a stable seed from a module name (std::hash is not stable across builds).
uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ull) {
    for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    return h;
}

// PEFT's merge_utils over one factor (A or B) of every adapter, elementwise.
std::vector<double> combine_task_tensors(const std::string& method,
                                         std::vector<std::vector<double>> tensors,
                                         const std::vector<double>& weights, double density,
                                         bool frequency_sign, uint64_t seed,
                                         const std::string& module, char which) {
    const size_t n = tensors.front().size();
    if (method == "ties" || method == "magnitude_prune") {
        if (density < 1.0)
            for (auto& t : tensors) {  // keep the k = floor(density * n) largest |values|
                const auto k = static_cast<size_t>(density * static_cast<double>(n));
                std::vector<size_t> order(n);
                for (size_t i = 0; i < n; ++i) order[i] = i;
                std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
                    return std::fabs(t[x]) > std::fabs(t[y]);
                });
                for (size_t i = k; i < n; ++i) t[order[i]] = 0.0;
            }
    } else if (method == "dare_linear" || method == "dare_ties") {
        if (density < 1.0)
            for (size_t ti = 0; ti < tensors.size(); ++ti) {
                std::mt19937_64 rng(fnv1a(module, seed * 1000003ull + ti * 2 + (which == 'B')));
                for (auto& v : tensors[ti]) {
                    double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
                    v = u < density ? v / density : 0.0;
                }
            }
    }
    std::vector<double> out(n, 0.0);
    if (method == "ties" || method == "dare_ties") {
        for (size_t i = 0; i < n; ++i) {
            double elect = 0.0;
            for (const auto& t : tensors) elect += frequency_sign ? (t[i] > 0) - (t[i] < 0) : t[i];
            const double majority = elect >= 0 ? 1.0 : -1.0;
            double sum = 0.0, kept = 0.0;
            for (size_t ti = 0; ti < tensors.size(); ++ti) {
                const double sign = (tensors[ti][i] > 0) - (tensors[ti][i] < 0);
                if (sign != majority) continue;
                sum += tensors[ti][i] * weights[ti];
                kept += 1.0;
            }
            out[i] = sum / std::max(kept, 1.0);
        }
        return out;
    }
    for (size_t ti = 0; ti < tensors.size(); ++ti)
        for (size_t i = 0; i < n; ++i) out[i] += tensors[ti][i] * weights[ti];
    return out;
}

struct CombineOptions {
    std::string method = "cat";
    double density = 1.0;
    bool frequency_sign = false;
    uint64_t seed = 0;
    bool subtract = false;
};

Factors combine(const std::string& module,
                const std::vector<std::pair<const Adapter*, const LoraModule*>>& parts,
                const CombineOptions& o) {
    Factors f;
    f.module = module;
    const LoraModule& first = *parts.front().second;
    f.out = first.out;
    f.in = first.in;
    const double sign = o.subtract ? -1.0 : 1.0;
    for (const auto& [adapter, m] : parts)
        if (m->out != f.out || m->in != f.in)
            throw InputError(cat(adapter->what, ": module '", module, "': lora_B x lora_A is [",
                                 m->out, ", ", m->in, "] but another adapter's is [", f.out, ", ",
                                 f.in, "]"));
    if (parts.size() > 1) {
        for (const auto& [adapter, m] : parts)
            if (m->magnitude)
                throw InputError(cat(adapter->what, ": module '", module,
                                     "': a DoRA adapter (use_dora) cannot be combined with others "
                                     "(neither can PEFT's add_weighted_adapter)"));
    }
    if (o.method == "cat" || parts.size() == 1) {
        for (const auto& [adapter, m] : parts) f.rank += m->rank;
        f.a.assign(static_cast<size_t>(f.rank * f.in), 0.0);
        f.b.assign(static_cast<size_t>(f.out * f.rank), 0.0);
        int64_t k0 = 0;
        for (const auto& [adapter, m] : parts) {
            const double w = sign * adapter->weight * m->scale;
            auto a = all_doubles(*m->a), b = all_doubles(*m->b);
            std::copy(a.begin(), a.end(), f.a.begin() + k0 * f.in);
            for (int64_t o2 = 0; o2 < f.out; ++o2)
                for (int64_t k = 0; k < m->rank; ++k)
                    f.b[static_cast<size_t>(o2 * f.rank + k0 + k)] =
                        w * b[static_cast<size_t>(o2 * m->rank + k)];
            if (m->b_bias) {
                auto bb = all_doubles(*m->b_bias);
                if (f.bias_delta.empty()) f.bias_delta.assign(static_cast<size_t>(f.out), 0.0);
                for (size_t i = 0; i < bb.size(); ++i) f.bias_delta[i] += w * bb[i];
            }
            if (m->magnitude) f.magnitude = all_doubles(*m->magnitude);
            k0 += m->rank;
        }
        if (!f.magnitude.empty() && o.subtract)
            throw InputError(cat(parts.front().first->what, ": module '", module,
                                 "': subtract cannot unmerge a DoRA adapter (the base's row "
                                 "norms are not in the merged model)"));
        return f;
    }
    // linear, ties, dare_*, magnitude_prune: PEFT combines A and B separately, each adapter
    // weighted by sqrt(weight * scaling), into one adapter of the common rank with scaling 1.
    f.rank = first.rank;
    std::vector<double> v;
    std::vector<std::vector<double>> as, bs;
    for (const auto& [adapter, m] : parts) {
        if (m->rank != f.rank)
            throw InputError(cat(adapter->what, ": module '", module, "': field 'r': rank ",
                                 m->rank, " but another adapter's is ", f.rank, " (combination '",
                                 o.method, "' needs equal ranks; 'cat' does not)"));
        if (m->b_bias)
            throw InputError(cat(adapter->what, ": module '", module,
                                 "': lora_B.bias combines only with combination 'cat'"));
        const double ws = adapter->weight * m->scale;
        if (ws < 0)
            throw InputError(cat(adapter->what, ": weights: ", adapter->weight, " x scaling ",
                                 m->scale, " < 0 (combination '", o.method,
                                 "' weights A and B by sqrt(weight x scaling))"));
        v.push_back(std::sqrt(ws));
        as.push_back(all_doubles(*m->a));
        bs.push_back(all_doubles(*m->b));
    }
    f.a = combine_task_tensors(o.method, std::move(as), v, o.density, o.frequency_sign, o.seed,
                               module, 'A');
    f.b = combine_task_tensors(o.method, std::move(bs), v, o.density, o.frequency_sign, o.seed,
                               module, 'B');
    for (auto& x : f.b) x *= sign;
    return f;
}

// ||B A||_F from the r x r Gram matrices: sum_kl (B^T B)_kl (A A^T)_kl.
double delta_norm(const Factors& f) {
    const auto r = static_cast<size_t>(f.rank), in = static_cast<size_t>(f.in),
               out = static_cast<size_t>(f.out);
    std::vector<double> ga(r * r, 0.0), gb(r * r, 0.0);
    for (size_t k = 0; k < r; ++k)
        for (size_t l = 0; l < r; ++l) {
            double sa = 0.0, sb = 0.0;
            for (size_t i = 0; i < in; ++i) sa += f.a[k * in + i] * f.a[l * in + i];
            for (size_t o = 0; o < out; ++o) sb += f.b[o * r + k] * f.b[o * r + l];
            ga[k * r + l] = sa;
            gb[k * r + l] = sb;
        }
    double s = 0.0;
    for (size_t i = 0; i < r * r; ++i) s += ga[i] * gb[i];
    return std::sqrt(std::max(s, 0.0));
}

// ---------------------------------------------------------------- the plan

enum class ItemKind : uint8_t { Merge, AddBias, Replace };

struct PlanItem {
    ItemKind kind = ItemKind::Merge;
    std::string tensor;                      // the base tensor rewritten
    std::shared_ptr<const Factors> factors;  // Merge, AddBias
    bool in_out = false;  // Merge: the base is stored [in, out]; Replace: write transposed
    const Tensor* replacement = nullptr;  // Replace: the adapter's saved tensor
    std::string line;                     // the plan's line
};

struct MergePlan {
    std::vector<PlanItem> items;
    std::vector<Skipped> skipped;
    std::vector<std::string> summary;
};

std::string show(double v) {
    std::ostringstream s;
    s.precision(4);
    s << v;
    return s.str();
}

// ---------------------------------------------------------------- writing one tensor

// The merged `base` (rows = shape[0]), a chunk of rows at a time, into `out`; checks W' x
// against W x + B (A x) on `probes` seeded vectors.
void write_merged(const Tensor& base, const Factors& f, bool in_out, int probes, uint64_t seed,
                  ByteSink& out) {
    const auto rows = static_cast<size_t>(base.shape[0]), cols = static_cast<size_t>(base.shape[1]);
    const auto R = static_cast<size_t>(f.rank), nin = static_cast<size_t>(f.in),
               nout = static_cast<size_t>(f.out);
    // delta(r, c) = sum_k u_r[k] V[c][k]: [out, in] storage: u_r = B[r, :], V = A^T;
    // [in, out] storage: u_r = A[:, r], V = B. V is kept k-major, so a row's delta is R
    // multiply-adds over contiguous columns (summed in k order).
    std::vector<double> v(R * cols);
    for (size_t k = 0; k < R; ++k)
        for (size_t c = 0; c < cols; ++c)
            v[k * cols + c] = in_out ? f.b[c * R + k] : f.a[k * nin + c];
    auto delta_row = [&](size_t r, double* d) {
        std::fill(d, d + cols, 0.0);
        for (size_t k = 0; k < R; ++k) {
            const double uk = in_out ? f.a[k * nin + r] : f.b[r * R + k];
            const double* vk = &v[k * cols];
            for (size_t c = 0; c < cols; ++c) d[c] += uk * vk[c];
        }
    };
    const size_t esize = element_bytes(base.dtype);
    const size_t chunk_rows = std::max<size_t>(1, kChunkDoubles / std::max<size_t>(cols, 1));
    std::vector<double> w(std::min(rows, chunk_rows) * cols);
    std::vector<double> d(cols), merged(cols), stored(cols);
    auto release = [&](size_t first_row, size_t n) {
        if (base.data.is_view())
            base.data.file()->release(base.data.file_offset() + first_row * cols * esize,
                                      n * cols * esize);
    };
    // DoRA: m / ||W + delta|| per output row, computed first (a pass over the columns when
    // the base is stored [in, out]).
    std::vector<double> factor;
    if (!f.magnitude.empty()) {
        std::vector<double> norm2(nout, 0.0);
        for (size_t r0 = 0; r0 < rows; r0 += chunk_rows) {
            const size_t n = std::min(chunk_rows, rows - r0);
            read_doubles(base, r0 * cols, n * cols, w.data());
            for (size_t r = 0; r < n; ++r) {
                delta_row(r0 + r, d.data());
                for (size_t c = 0; c < cols; ++c) {
                    const double x = w[r * cols + c] + d[c];
                    norm2[in_out ? c : r0 + r] += x * x;
                }
            }
            release(r0, n);
        }
        factor.resize(nout);
        for (size_t o = 0; o < nout; ++o) {
            factor[o] = f.magnitude[o] / std::sqrt(norm2[o]);
            if (!std::isfinite(factor[o]))
                throw InputError(
                    cat("tensor '", base.name, "': DoRA row ", o, " of W + delta has norm 0"));
        }
    }
    // Self-check probes: x [in], A x [R]; accumulated W x and W' x per output.
    std::mt19937_64 rng(fnv1a(base.name, seed));
    std::normal_distribution<double> normal;
    const auto P = static_cast<size_t>(probes);
    std::vector<double> x(P * nin), ax(P * R, 0.0), y_base(P * nout, 0.0), y_out(P * nout, 0.0),
        y_abs(P * nout, 0.0);
    for (auto& v : x) v = normal(rng);
    std::vector<double> x_l1(P, 0.0);
    for (size_t p = 0; p < P; ++p)
        for (size_t i = 0; i < nin; ++i) x_l1[p] += std::fabs(x[p * nin + i]);
    for (size_t p = 0; p < P; ++p)
        for (size_t k = 0; k < R; ++k)
            for (size_t i = 0; i < nin; ++i) ax[p * R + k] += f.a[k * nin + i] * x[p * nin + i];

    std::vector<std::byte> bytes(std::min(rows, chunk_rows) * cols * esize);
    for (size_t r0 = 0; r0 < rows; r0 += chunk_rows) {
        const size_t n = std::min(chunk_rows, rows - r0);
        read_doubles(base, r0 * cols, n * cols, w.data());
        for (size_t r = 0; r < n; ++r) {
            const size_t row = r0 + r;
            const double* wr = &w[r * cols];
            delta_row(row, d.data());
            for (size_t c = 0; c < cols; ++c) merged[c] = wr[c] + d[c];
            if (!factor.empty()) {
                if (in_out)
                    for (size_t c = 0; c < cols; ++c) merged[c] *= factor[c];
                else
                    for (size_t c = 0; c < cols; ++c) merged[c] *= factor[row];
            }
            std::byte* row_bytes = &bytes[r * cols * esize];
            for (size_t c = 0; c < cols; ++c) {
                stored[c] = store(base.dtype, merged[c], row_bytes + c * esize);
                if (!std::isfinite(stored[c]))
                    throw InputError(cat("tensor '", base.name, "': the merged value at [", row,
                                         ", ", c, "] (", merged[c], ") does not fit ",
                                         dtype_name(base.dtype)));
            }
            // Probes: [out, in] storage: this row is output `row`, a dot with x; [in, out]:
            // input `row`, every output gets x[row] times it.
            for (size_t p = 0; p < P; ++p) {
                const double* xp = &x[p * nin];
                double* yb = &y_base[p * nout];
                double* yo = &y_out[p * nout];
                double* ya = &y_abs[p * nout];
                if (in_out) {
                    const double xi = xp[row];
                    for (size_t c = 0; c < cols; ++c) {
                        yb[c] += wr[c] * xi;
                        yo[c] += stored[c] * xi;
                        ya[c] += std::fabs(stored[c] * xi);
                    }
                } else {
                    double sb = 0.0, so = 0.0, sa = 0.0;
                    for (size_t c = 0; c < cols; ++c) {
                        sb += wr[c] * xp[c];
                        so += stored[c] * xp[c];
                        sa += std::fabs(stored[c] * xp[c]);
                    }
                    yb[row] += sb;
                    yo[row] += so;
                    ya[row] += sa;
                }
            }
        }
        out.write(std::span<const std::byte>(bytes.data(), n * cols * esize));
        release(r0, n);
    }
    // W' x against W x + B (A x) (times the DoRA factor), per probe.
    const double u_round = unit_roundoff(base.dtype);
    for (size_t p = 0; p < P; ++p) {
        double err2 = 0.0, ref2 = 0.0, abs2 = 0.0;
        for (size_t o = 0; o < nout; ++o) {
            double ref = y_base[p * nout + o];
            for (size_t k = 0; k < R; ++k) ref += f.b[o * R + k] * ax[p * R + k];
            if (!factor.empty()) ref *= factor[o];
            const double e = y_out[p * nout + o] - ref;
            err2 += e * e;
            ref2 += ref * ref;
            abs2 += y_abs[p * nout + o] * y_abs[p * nout + o];
        }
        const double err = std::sqrt(err2), ref = std::sqrt(ref2);
        // f16's subnormals round by an absolute 2^-25, whatever the value.
        const double tiny = base.dtype == DType::F16 ? std::ldexp(1.0, -25) * x_l1[p] : 0.0;
        const double allowed = kSelfCheckTolerance * ref + 2.0 * u_round * std::sqrt(abs2) +
                               tiny * std::sqrt(static_cast<double>(nout));
        if (err > allowed)
            throw InternalError(cat("tensor '", base.name,
                                    "': self-check failed: |W' x - (W x + "
                                    "B A x)| = ",
                                    err, " > ", allowed, " on probe ", p));
    }
}

void write_bias(const Tensor& base, const Factors& f, ByteSink& out) {
    auto b = all_doubles(base);
    std::vector<std::byte> bytes(b.size() * element_bytes(base.dtype));
    for (size_t i = 0; i < b.size(); ++i)
        store(base.dtype, b[i] + f.bias_delta[i], &bytes[i * element_bytes(base.dtype)]);
    out.write(bytes);
}

// `transpose`: `from` is [r, c] and `base` [c, r] (a saved [out, in] head whose graph
// weight is stored [in, out]).
void write_replacement(const Tensor& base, const Tensor& from, bool transpose, ByteSink& out) {
    if (from.dtype == base.dtype && !transpose) {
        out.write(from.data.bytes());
        return;
    }
    auto v = all_doubles(from);
    if (transpose) {
        const auto rows = static_cast<size_t>(from.shape[0]);
        const auto cols = static_cast<size_t>(from.shape[1]);
        std::vector<double> t(v.size());
        for (size_t r = 0; r < rows; ++r)
            for (size_t c = 0; c < cols; ++c) t[c * rows + r] = v[r * cols + c];
        v = std::move(t);
    }
    std::vector<std::byte> bytes(v.size() * element_bytes(base.dtype));
    for (size_t i = 0; i < v.size(); ++i)
        store(base.dtype, v[i], &bytes[i * element_bytes(base.dtype)]);
    out.write(bytes);
}

// A saved tensor "<module>.weight" that no initializer of the graph is named after (torch.onnx
// renames a transposed head "onnx::MatMul_2626"): its weight found as an adapter module's
// would be (lora_targets.h), taking the saved tensor as [out, in] like torch's nn.Linear;
// `true` when the graph stores it [in, out] (written transposed). {"", false}: no target.
std::pair<std::string, bool> saved_target_in_graph(const Model& model, const SavedTensor& s) {
    const std::string_view suffix = ".weight";
    if (s.tensor->shape.size() != 2 || !s.name.ends_with(suffix)) return {"", false};
    AdapterModule m{s.name.substr(0, s.name.size() - suffix.size()), s.tensor->shape[1],
                    s.tensor->shape[0]};
    auto t = find_lora_targets(model, {m}, false, true).front();
    return {t.tensor, !t.tensor.empty() && t.in_out};
}

// ---------------------------------------------------------------- the pass

class MergeLoraPass final : public Pass {
  public:
    std::string_view name() const override { return "merge-lora"; }
    PassKind kind() const override { return PassKind::Merge; }
    std::string_view description() const override {
        return "merge PEFT LoRA adapters (LoRA, rsLoRA, DoRA; several combined) into the "
               "base weights: W' = W + (alpha / r) B A";
    }

    std::vector<OptionSpec> option_specs() const override {
        return {
            {"adapter",
             OptionType::String,
             "",
             "a PEFT adapter directory (adapter_config.json + adapter_model.safetensors), "
             "relative to the recipe",
             {}},
            {"adapters",
             OptionType::StringList,
             json::array(),
             "several adapter directories, combined by `combination` with `weights`",
             {}},
            {"weights",
             OptionType::NumberList,
             json::array(),
             "one weight per adapter (default 1 each)",
             {}},
            {"combination",
             OptionType::String,
             "cat",
             "how several adapters combine (PEFT's add_weighted_adapter): cat (exactly the "
             "weighted sum of the deltas), linear, ties, dare_linear, dare_ties, "
             "magnitude_prune",
             {"cat", "linear", "ties", "dare_linear", "dare_ties", "magnitude_prune"}},
            {"density",
             OptionType::Number,
             1.0,
             "ties / dare / magnitude_prune: the fraction of each factor's values kept",
             {},
             0.0,
             1.0},
            {"majority_sign_method",
             OptionType::String,
             "total",
             "ties / dare_ties: elect the sign by the sum of values or by their count",
             {"total", "frequency"}},
            {"seed",
             OptionType::Int,
             0,
             "dare_*: the seed of the random pruning, and of the "
             "self-check's probes",
             {},
             0,
             9.0e18},
            {"subtract",
             OptionType::Bool,
             false,
             "unmerge: W' = W - delta (gives the base back from a merged model, within "
             "rounding)",
             {}},
            {"allow_unmatched",
             OptionType::Bool,
             false,
             "adapter modules or saved tensors without a target in the model are skipped with "
             "a reason instead of an error",
             {}},
            {"probes",
             OptionType::Int,
             2,
             "seeded random vectors x on which every merged W' x is checked against W x + B A x",
             {},
             1,
             64},
        };
    }

    void configure(const json& o) override {
        selector_ = Selector::from_options(o);
        paths_.clear();
        if (auto a = o.value("adapter", std::string()); !a.empty()) paths_.push_back(a);
        auto list = o.value("adapters", std::vector<std::string>());
        if (!paths_.empty() && !list.empty())
            throw InputError("adapter: give `adapter` (one) or `adapters` (several), not both");
        if (paths_.empty()) paths_ = list;
        if (paths_.empty())
            throw InputError(
                "adapter: missing: name a PEFT adapter directory (`adapter`) or "
                "several (`adapters`)");
        weights_ = o.value("weights", std::vector<double>());
        if (!weights_.empty() && weights_.size() != paths_.size())
            throw InputError(
                cat("weights: ", weights_.size(), " weights for ", paths_.size(), " adapters"));
        if (weights_.empty()) weights_.assign(paths_.size(), 1.0);
        combine_.method = o.value("combination", std::string("cat"));
        combine_.density = o.value("density", 1.0);
        if (combine_.density <= 0.0)
            throw InputError("density: must be above 0 (the fraction of values kept)");
        combine_.frequency_sign = o.value("majority_sign_method", std::string()) == "frequency";
        combine_.seed = o.value("seed", uint64_t{0});
        combine_.subtract = o.value("subtract", false);
        allow_unmatched_ = o.value("allow_unmatched", false);
        probes_ = o.value("probes", 2);
        adapters_.clear();
    }

    void read_files(const PassFiles& files) override {
        adapters_.clear();
        for (size_t i = 0; i < paths_.size(); ++i) {
            std::filesystem::path p(paths_[i]);
            if (p.is_relative()) p = files.base_dir / p;
            p = std::filesystem::absolute(p).lexically_normal();
            if (p.extension() == ".safetensors" || p.filename() == "adapter_config.json")
                p = p.parent_path();
            adapters_.push_back(read_adapter(p, weights_[i], files));
        }
        const bool fifo = adapters_.front()->config.fan_in_fan_out;
        for (const auto& a : adapters_)
            if (a->config.fan_in_fan_out != fifo)
                throw InputError(cat(a->what, ": field 'fan_in_fan_out' differs from ",
                                     adapters_.front()->what));
    }

    std::vector<std::string> plan(const Model& model) const override {
        MergePlan p = make_plan(model);
        std::vector<std::string> lines;
        for (size_t i = 0; i < p.items.size(); ++i)
            lines.push_back(cat("[", i + 1, "/", p.items.size(), "] ", p.items[i].line));
        for (const auto& s : p.skipped) lines.push_back(cat("skip ", s.name, ": ", s.reason));
        return lines;
    }

    PassResult run(Model& model, PassContext& context) override {
        MergePlan p = make_plan(model);
        // Every new tensor is computed before any is replaced: a failure leaves the model
        // unchanged.
        std::vector<std::pair<Tensor*, TensorData>> updates;
        auto step = progress_step(context.progress, "merge-lora", p.items.size(), "tensors");
        for (const auto& item : p.items) {
            Tensor* base = model.graph.find_initializer(item.tensor);
            BufferSink sink;
            write_item(item, *base, sink);
            updates.emplace_back(base, TensorData::owned(std::move(sink.buffer())));
            step.advance();
        }
        for (auto& [t, d] : updates) t->data = std::move(d);
        return result_of(p);
    }

    std::optional<StreamingPlan> plan_streaming(const Model& model) const override {
        if (!model.graph.nodes.empty()) return std::nullopt;
        MergePlan p = make_plan(model);
        StreamingPlan s;
        s.action = "merge";
        for (size_t i = 0; i < p.items.size(); ++i) {
            const Tensor* source = model.graph.find_initializer(p.items[i].tensor);
            StreamItem item;
            item.source = source;
            item.header.name = source->name;
            item.header.dtype = source->dtype;
            item.header.shape = source->shape;
            item.header.doc_string = source->doc_string;
            item.bytes = source->expected_bytes();
            item.line = cat("[", i + 1, "/", p.items.size(), "] ", p.items[i].line);
            item.write = [this, source, plan_item = p.items[i]](ByteSink& out) {
                write_item(plan_item, *source, out);
            };
            s.items.push_back(std::move(item));
        }
        s.result = result_of(p);
        return s;
    }

  private:
    void write_item(const PlanItem& item, const Tensor& base, ByteSink& out) const {
        switch (item.kind) {
            case ItemKind::Merge:
                write_merged(base, *item.factors, item.in_out, probes_, combine_.seed, out);
                return;
            case ItemKind::AddBias:
                write_bias(base, *item.factors, out);
                return;
            case ItemKind::Replace:
                write_replacement(base, *item.replacement, item.in_out, out);
                return;
        }
    }

    PassResult result_of(const MergePlan& p) const {
        PassResult r;
        r.changed = !p.items.empty();
        r.rewrites = p.items.size();
        r.summary = p.summary;
        r.summary.push_back(cat("self-check: W' x = W x + B (A x) on ", probes_,
                                " seeded probes per merged tensor, each within 1e-5 relative "
                                "plus the dtype's rounding (a miss stops the run)"));
        r.skipped = p.skipped;
        return r;
    }

    MergePlan make_plan(const Model& model) const {
        if (adapters_.empty())
            throw InternalError("merge-lora: plan before read_files (the adapter is not read)");
        MergePlan p;
        // Modules of every adapter, by name, each with the adapters that have it.
        std::vector<std::string> order;
        std::map<std::string, std::vector<std::pair<const Adapter*, const LoraModule*>>> parts;
        for (const auto& a : adapters_)
            for (const auto& m : a->modules) {
                if (!parts.count(m.module)) order.push_back(m.module);
                parts[m.module].emplace_back(a.get(), &m);
            }
        std::sort(order.begin(), order.end());
        std::vector<AdapterModule> wanted;
        for (const auto& name : order) {
            const LoraModule& m = *parts[name].front().second;
            wanted.push_back({name, m.in, m.out});
        }
        const bool fifo = adapters_.front()->config.fan_in_fan_out;
        auto targets = find_lora_targets(model, wanted, fifo, allow_unmatched_);
        if (targets.size() != wanted.size())
            throw InternalError("find_lora_targets returned another number of targets");
        std::set<std::string> taken;
        for (size_t i = 0; i < targets.size(); ++i) {
            const LoraTarget& t = targets[i];
            const std::string& name = order[i];
            if (t.tensor.empty()) {
                p.skipped.push_back({name, "no target in the model (allow_unmatched)"});
                continue;
            }
            if (!selector_.selects(t.tensor)) {
                p.skipped.push_back(
                    {t.tensor, cat("module ", name, ": excluded by include/exclude")});
                continue;
            }
            const Tensor* base = model.graph.find_initializer(t.tensor);
            const std::string at = cat("tensor '", t.tensor, "' (module ", name, ")");
            if (!base) throw InternalError(cat(at, ": find_lora_targets named no initializer"));
            if (!taken.insert(t.tensor).second)
                throw InputError(cat(at, ": a second adapter module targets it"));
            if (base->is_encoded() || !is_float_dtype(base->dtype))
                throw InputError(cat(at, ": dtype ",
                                     base->is_encoded() ? encoding_name(base->encoding)
                                                        : std::string(dtype_name(base->dtype)),
                                     ": merge-lora merges into f32, f16, bf16 or f64 weights (run "
                                     "it before quantize-weights / prune)"));
            auto f = std::make_shared<Factors>(combine(name, parts[name], combine_));
            const std::vector<int64_t> expect = t.in_out ? std::vector<int64_t>{f->in, f->out}
                                                         : std::vector<int64_t>{f->out, f->in};
            if (base->shape != expect)
                throw InputError(cat(at, ": shape ", shape_string(base->shape),
                                     " but the adapter's lora_B x lora_A gives ",
                                     shape_string(expect), t.in_out ? " stored [in, out]" : "",
                                     fifo && !t.in_out ? " (check fan_in_fan_out)" : ""));
            const double norm = delta_norm(*f);
            PlanItem item;
            item.kind = ItemKind::Merge;
            item.tensor = t.tensor;
            item.factors = f;
            item.in_out = t.in_out;
            item.line =
                cat("merge ", t.tensor, " += ", f->magnitude.empty() ? "" : "DoRA ", "B A (module ",
                    name, ", rank ", f->rank, ", by ", t.how, ", |delta|_F = ", show(norm), ")");
            p.summary.push_back(cat("merged ", t.tensor, " (", name, ", rank ", f->rank,
                                    f->magnitude.empty() ? "" : ", DoRA",
                                    "): |delta|_F = ", show(norm)));
            p.items.push_back(std::move(item));
            if (!f->bias_delta.empty()) {
                std::string bias = t.tensor;
                if (!ends_with_strip(bias, ".weight"))
                    throw InputError(cat(at,
                                         ": the adapter has lora_B.bias, and the layer's bias "
                                         "is found by name (<module>.bias) on a checkpoint "
                                         "only"));
                bias += ".bias";
                const Tensor* b = model.graph.find_initializer(bias);
                if (!b || b->shape != std::vector<int64_t>{f->out} || !is_float_dtype(b->dtype))
                    throw InputError(cat(at, ": the adapter has lora_B.bias [", f->out,
                                         "] but the model has no float bias '", bias,
                                         "' of that shape"));
                p.items.push_back({ItemKind::AddBias, bias, f, false, nullptr,
                                   cat("add lora_B.bias to ", bias, " (module ", name, ")")});
            }
        }
        // Saved tensors (modules_to_save, trained biases) replace the base's by name.
        std::vector<std::string> unmatched;
        for (const auto& a : adapters_)
            for (const auto& s : a->saved) {
                if (combine_.subtract) {
                    p.skipped.push_back({s.name,
                                         "subtract: the base's value of a saved tensor "
                                         "is not in the adapter"});
                    continue;
                }
                std::string target = s.name;
                bool transpose = false;
                if (!model.graph.find_initializer(target) && !model.graph.nodes.empty())
                    std::tie(target, transpose) = saved_target_in_graph(model, s);
                const Tensor* base = model.graph.find_initializer(target);
                if (!base) {
                    unmatched.push_back(s.tensor->name);
                    continue;
                }
                if (!selector_.selects(target)) {
                    p.skipped.push_back({target, "excluded by include/exclude"});
                    continue;
                }
                const std::string at = cat(a->what, ": saved tensor '", s.tensor->name, "'");
                if (!taken.insert(target).second)
                    throw InputError(cat(at, ": '", target,
                                         "' is already rewritten by another "
                                         "module or adapter"));
                std::vector<int64_t> want = s.tensor->shape;
                if (transpose) std::reverse(want.begin(), want.end());
                if (base->shape != want)
                    throw InputError(cat(at, ": shape ", shape_string(s.tensor->shape),
                                         transpose ? " (transposed for the graph)" : "",
                                         " but the model's '", target, "' is ",
                                         shape_string(base->shape)));
                if (base->is_encoded() || !is_float_dtype(base->dtype))
                    throw InputError(cat(at, ": the model's '", target, "' is ",
                                         dtype_name(base->dtype), ", not a float tensor"));
                PlanItem item;
                item.kind = ItemKind::Replace;
                item.tensor = target;
                item.in_out = transpose;
                item.replacement = s.tensor;
                const std::string what =
                    target == s.name
                        ? target
                        : cat(target, " (", s.name, transpose ? ", transposed" : "", ")");
                item.line = cat("replace ", what, " with the adapter's saved copy");
                p.summary.push_back(cat("replaced ", what, " with the adapter's saved copy"));
                p.items.push_back(std::move(item));
            }
        if (!unmatched.empty()) {
            if (!allow_unmatched_) {
                std::string names;
                for (const auto& n : unmatched) names += cat(names.empty() ? "" : ", ", n);
                throw InputError(cat(unmatched.size(), " saved adapter tensor",
                                     unmatched.size() == 1 ? "" : "s",
                                     " found no tensor of that name in the model: ", names,
                                     " (allow_unmatched skips them)"));
            }
            for (const auto& n : unmatched)
                p.skipped.push_back({n,
                                     "saved tensor: no tensor of that name in the model "
                                     "(allow_unmatched)"});
        }
        return p;
    }

    Selector selector_;
    std::vector<std::string> paths_;
    std::vector<double> weights_;
    CombineOptions combine_;
    bool allow_unmatched_ = false;
    int probes_ = 2;
    std::vector<std::unique_ptr<Adapter>> adapters_;
};

}  // namespace

std::unique_ptr<Pass> make_merge_lora_pass() {
    return std::make_unique<MergeLoraPass>();
}

}  // namespace ep
