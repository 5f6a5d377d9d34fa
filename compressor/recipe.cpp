// Recipe loading and validation (contract in recipe.h).
//
// Order: read the file, parse JSON (rejecting duplicate keys and absurd nesting), apply
// --set overrides, then validate the whole document against the schema: the top-level keys
// below, and for each pass entry its OptionSpecs from the registry. Nothing runs and no
// model is loaded until the recipe is known to be good.
#include "compressor/recipe.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "ir/error.h"
#include "passes/pass.h"
#include "passes/registry.h"

namespace ep {

using nlohmann::json;

namespace {

constexpr int kMaxNesting = 64;                // deeper JSON is hostile, not a recipe
constexpr size_t kMaxRecipeBytes = 16u << 20;  // 16 MB

const std::vector<std::string>& top_level_keys() {
    static const std::vector<std::string> keys{"description", "model",       "passes",   "output",
                                               "onnx",        "calibration", "validate", "gates",
                                               "baseline",    "report_dir",  "fallback"};
    return keys;
}

std::vector<OptionSpec> onnx_specs() {
    return {{"external_data",
             OptionType::String,
             "auto",
             "write tensors to a .data file next to the model: auto (only past 2 GB), always, "
             "never",
             {"auto", "always", "never"}},
            {"external_threshold",
             OptionType::Int,
             1024,
             "bytes: smaller tensors stay inside the .onnx file",
             {},
             0,
             9.2e18},
            {"quantized",
             OptionType::String,
             "none",
             "how to write quantized (encoded) weights: matmulnbits (com.microsoft::MatMulNBits), "
             "qdq (opset-21 DequantizeLinear), none (refuse them)",
             {"none", "matmulnbits", "qdq"}}};
}

std::vector<OptionSpec> calibration_specs() {
    return {{"data",
             OptionType::String,
             "",
             "calibration inputs: a directory (as edgepack run --data) or a [S, T] token-id "
             ".npy; empty: seeded random inputs (only with synthetic: true)",
             {}},
            {"synthetic",
             OptionType::Bool,
             false,
             "calibrate on seeded random inputs when data is empty (otherwise a pass that "
             "calibrates refuses to run)",
             {}},
            {"ranges",
             OptionType::String,
             "",
             "activation ranges from an earlier run (an edgepack.calibration/1 file written by "
             "compress --save-calibration): a pass that quantizes activations uses them and "
             "skips capture; with it, calibration.data may be left out",
             {}},
            {"samples", OptionType::Int, 32, "samples to use (0 = all)", {}, 0, 1e9},
            {"seed", OptionType::Int, 0, "chooses the samples (and random inputs)", {}, 0, 9e18},
            {"max_samples", OptionType::Int, 128, "hard limit on samples", {}, 1, 1e9}};
}

std::vector<OptionSpec> validate_specs() {
    return {
        {"data",
         OptionType::String,
         "",
         "evaluation inputs: a directory (as edgepack run --data) or a [S, T] token-id .npy; "
         "empty: seeded random inputs",
         {}},
        {"require_data",
         OptionType::Bool,
         false,
         "refuse synthetic inputs: without data the recipe is an error (exit 2)",
         {}},
        {"samples", OptionType::Int, 8, "random samples (without data)", {}, 1, 1e6},
        {"seed", OptionType::Int, 0, "seed of the random samples", {}, 0, 9e18},
        {"shapes",
         OptionType::StringList,
         json::array(),
         "NAME=D0,D1,... for inputs with symbolic dimensions (random samples; default 1)",
         {}},
        {"labels",
         OptionType::String,
         "",
         "a .npy of int32/int64 class indices, one per output row, in sample order",
         {}},
        {"threads", OptionType::Int, 0, "runtime threads (0: the run's --threads)", {}, 0, 4096},
        {"per_layer",
         OptionType::Bool,
         true,
         "compare every intermediate tensor the two graphs share (worst-SQNR layers)",
         {}},
        {"int8_activations",
         OptionType::Bool,
         false,
         "the candidate's int4 MatMul/Gemm take int8 activations",
         {}},
        {"benchmark_runs",
         OptionType::Int,
         20,
         "timed runs of each model for latency (0: no latency measurement)",
         {},
         0,
         1e6},
        {"benchmark_warmup", OptionType::Int, 3, "untimed runs before them", {}, 0, 1e6}};
}

// One entry of validate.outputs (keyed by output name): how that output is compared.
std::vector<OptionSpec> output_entry_specs() {
    return {{"kind", OptionType::String, nullptr,
             "classes, sequence (per-position classes: CTC, LM logits), map (dense maps), "
             "embedding or regression; default: inferred from the graph (docs/validate.md)",
             rt::output_kind_names()},
            {"axis",
             OptionType::Int,
             nullptr,
             "classes: the class axis (negative counts from the end; default the last)",
             {},
             -64,
             63},
            {"threshold",
             OptionType::Number,
             rt::kDefaultMapThreshold,
             "map: a value is on when above this (IoU of the thresholded maps)",
             {},
             -1e300},
            {"decode",
             OptionType::String,
             "none",
             "sequence: ctc (greedy CTC decoding; line accuracy, CER, line agreement) or none",
             {"none", "ctc"}},
            {"alphabet",
             OptionType::String,
             "",
             "with decode ctc: one symbol per line; class 0 is the blank, class k is line k",
             {}}};
}

std::vector<OptionSpec> gate_option_specs() {
    std::vector<OptionSpec> specs;
    for (const auto& g : gate_specs())
        specs.push_back({g.name, OptionType::Number, nullptr, g.help, {}, g.min, g.max});
    return specs;
}

std::vector<OptionSpec> baseline_option_specs() {
    std::vector<OptionSpec> specs;
    for (const auto& b : baseline_specs())
        specs.push_back({b.metric,
                         OptionType::Number,
                         nullptr,
                         b.help,
                         {},
                         0,
                         b.unit == MetricUnit::Points ? 100 : 1e300});
    return specs;
}

std::vector<OptionSpec> fallback_specs() {
    return {{"max_nodes",
             OptionType::Int,
             8,
             "the budget: at most this many quantized nodes returned to float",
             {},
             1,
             1e6},
            {"rank",
             OptionType::String,
             "sqnr",
             "which nodes go back first: sqnr (lowest per-node SQNR, float vs quantized output "
             "of the node on the calibration samples) or ablation (each node alone in float: "
             "the largest gain in the graph outputs' SQNR on the calibration samples)",
             {"sqnr", "ablation"}},
            {"pass",
             OptionType::String,
             "",
             "the pass whose nodes go back to float (\"passes[1]\" or a pass name); empty: "
             "the one pass of the recipe that can keep nodes in float",
             {}}};
}

// The top-level objects whose keys are options: their specs.
const std::vector<std::pair<std::string, std::vector<OptionSpec>>>& section_specs() {
    static const std::vector<std::pair<std::string, std::vector<OptionSpec>>> sections{
        {"onnx", onnx_specs()},
        {"calibration", calibration_specs()},
        {"validate", validate_specs()},
        {"gates", gate_option_specs()},
        {"baseline", baseline_option_specs()},
        {"fallback", fallback_specs()}};
    return sections;
}

const std::vector<OptionSpec>* section(const std::string& key) {
    for (const auto& [name, specs] : section_specs())
        if (name == key) return &specs;
    return nullptr;
}

// Every field a pass entry accepts besides "pass": include, exclude, then its own options.
std::vector<OptionSpec> pass_entry_specs(const Pass& pass) {
    std::vector<OptionSpec> specs{{"include",
                                   OptionType::StringList,
                                   json::array({"*"}),
                                   "globs selecting the tensors/nodes the pass applies to",
                                   {}},
                                  {"exclude",
                                   OptionType::StringList,
                                   json::array(),
                                   "globs removing tensors/nodes from the selection",
                                   {}}};
    for (auto& s : pass.option_specs()) specs.push_back(std::move(s));
    return specs;
}

std::string type_name(const json& v) {
    switch (v.type()) {
        case json::value_t::null:
            return "null";
        case json::value_t::boolean:
            return "boolean";
        case json::value_t::number_integer:
        case json::value_t::number_unsigned:
        case json::value_t::number_float:
            return "number";
        case json::value_t::string:
            return "string";
        case json::value_t::array:
            return "list";
        case json::value_t::object:
            return "object";
        default:
            return "value";
    }
}

std::string quoted_list(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += cat(out.empty() ? "" : ", ", n);
    return out;
}

[[noreturn]] void fail(const std::string& path, const std::string& message) {
    throw InputError(cat(path, ": ", message));
}

// Checks one value against its spec; normalises integral floats to integers.
void check_option(const OptionSpec& spec, json& v, const std::string& path) {
    auto expect = [&](const char* what) {
        fail(path, cat("expected ", what, ", found ", type_name(v)));
    };
    switch (spec.type) {
        case OptionType::Bool:
            if (!v.is_boolean()) expect("true or false");
            return;
        case OptionType::Int: {
            if (v.is_number_float()) {
                double d = v.get<double>();
                if (std::floor(d) != d || std::fabs(d) > 9.0e18)
                    fail(path, cat("expected an integer, found ", v.dump()));
                v = static_cast<int64_t>(d);
            }
            if (v.is_number_unsigned() && v.get<uint64_t>() > 9'000'000'000'000'000'000ull)
                fail(path, cat(v.dump(), " is above the maximum ", spec.max));
            if (!v.is_number_integer()) expect("an integer");
            auto i = v.get<int64_t>();
            if (static_cast<double>(i) < spec.min)
                fail(path, cat(i, " is below the minimum ", static_cast<int64_t>(spec.min)));
            if (static_cast<double>(i) > spec.max)
                fail(path, cat(i, " is above the maximum ", static_cast<int64_t>(spec.max)));
            return;
        }
        case OptionType::Number: {
            if (!v.is_number()) expect("a number");
            double d = v.get<double>();
            if (d < spec.min) fail(path, cat(v.dump(), " is below the minimum ", spec.min));
            if (d > spec.max) fail(path, cat(v.dump(), " is above the maximum ", spec.max));
            return;
        }
        case OptionType::NumberOrMap: {
            if (v.is_number()) {
                OptionSpec number = spec;
                number.type = OptionType::Number;
                check_option(number, v, path);
                return;
            }
            if (!v.is_object()) expect("a number or an object of glob: number");
            if (v.empty()) fail(path, "expected at least one glob: number entry, found {}");
            OptionSpec number = spec;
            number.type = OptionType::Number;
            for (auto& [key, item] : v.items()) check_option(number, item, cat(path, ".", key));
            return;
        }
        case OptionType::String: {
            if (!v.is_string()) expect("a string");
            if (spec.choices.empty()) return;
            auto s = v.get<std::string>();
            if (std::find(spec.choices.begin(), spec.choices.end(), s) != spec.choices.end())
                return;
            fail(path, cat("'", s, "' is not one of ", quoted_list(spec.choices),
                           did_you_mean(s, spec.choices)));
        }
        case OptionType::StringList: {
            if (!v.is_array()) expect("a list of strings");
            for (size_t i = 0; i < v.size(); ++i)
                if (!v[i].is_string())
                    fail(cat(path, "[", i, "]"), cat("expected a string, found ", type_name(v[i])));
            return;
        }
        case OptionType::NamedNumber: {
            if (!v.is_object() || v.size() != 1) {
                std::string forms;
                for (const auto& c : spec.choices)
                    forms += cat(forms.empty() ? "" : " or ", "{\"", c, "\": number}");
                fail(path, cat("expected one entry, ", forms, ", found ",
                               v.is_object() ? v.dump() : type_name(v)));
            }
            const std::string key = v.begin().key();
            json& item = v.begin().value();
            if (std::find(spec.choices.begin(), spec.choices.end(), key) == spec.choices.end())
                fail(cat(path, ".", key),
                     cat("unknown entry (expected one of ", quoted_list(spec.choices), ")",
                         did_you_mean(key, spec.choices)));
            OptionSpec number = spec;
            number.type = OptionType::Number;
            check_option(number, item, cat(path, ".", key));
            return;
        }
        case OptionType::NumberList: {
            if (!v.is_array()) expect("a list of numbers");
            for (size_t i = 0; i < v.size(); ++i)
                if (!v[i].is_number())
                    fail(cat(path, "[", i, "]"), cat("expected a number, found ", type_name(v[i])));
            return;
        }
    }
}

// Validates an object against specs: unknown keys are errors with did-you-mean, missing
// keys get their defaults. `extra` names keys accepted without a spec (e.g. "pass").
json check_object(const json& object, const std::vector<OptionSpec>& specs, const std::string& path,
                  const char* unknown_what, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> names = extra;
    for (const auto& s : specs) names.push_back(s.name);
    json out = json::object();
    for (const auto& [key, value] : object.items()) {
        if (std::find(extra.begin(), extra.end(), key) != extra.end()) continue;
        auto spec = std::find_if(specs.begin(), specs.end(),
                                 [&](const OptionSpec& s) { return s.name == key; });
        std::string field = path.empty() ? key : cat(path, ".", key);
        if (spec == specs.end()) {
            auto hint = did_you_mean(key, names);
            fail(field, cat(unknown_what,
                            hint.empty() ? cat(" (valid: ", quoted_list(names), ")") : hint));
        }
        json v = value;
        check_option(*spec, v, field);
        out[key] = std::move(v);
    }
    for (const auto& s : specs)
        if (!out.contains(s.name)) out[s.name] = s.default_value;
    return out;
}

std::string required_string(const json& doc, const char* key) {
    if (!doc.contains(key)) fail(key, "missing (required)");
    const json& v = doc.at(key);
    if (!v.is_string()) fail(key, cat("expected a string, found ", type_name(v)));
    auto s = v.get<std::string>();
    if (s.empty()) fail(key, "expected a file path, found an empty string");
    return s;
}

std::filesystem::path resolve(const std::filesystem::path& base, const std::string& p) {
    std::filesystem::path path(p);
    if (path.is_relative()) path = base / path;
    return std::filesystem::absolute(path).lexically_normal();
}

// validate.outputs: {NAME: {"kind": ..., ...}}. Whether NAME is an output of the model is
// checked once the model is loaded (check_output_specs in validate.h).
OutputSpecs check_output_entries(const json& outputs, const std::filesystem::path& base_dir) {
    if (!outputs.is_object())
        fail("validate.outputs",
             cat("expected an object {\"OUTPUT NAME\": {\"kind\": ...}}, found ",
                 type_name(outputs)));
    OutputSpecs specs;
    for (const auto& [name, entry] : outputs.items()) {
        std::string field = cat("validate.outputs.", name);
        if (!entry.is_object())
            fail(field, cat("expected an object {\"kind\": ...}, found ", type_name(entry)));
        json e = check_object(entry, output_entry_specs(), field, "unknown key");
        OutputSpec spec;
        spec.field = field;
        if (e["kind"].is_string())
            spec.kind = rt::output_kind_from_name(e["kind"].get<std::string>());
        if (!e["axis"].is_null()) {
            if (spec.kind != rt::OutputKind::Classes)
                fail(cat(field, ".axis"), "applies to kind classes only");
            spec.axis = e["axis"].get<int64_t>();
        }
        spec.threshold = e["threshold"].get<double>();
        if (entry.contains("threshold") && spec.kind && spec.kind != rt::OutputKind::Map)
            fail(cat(field, ".threshold"), "applies to kind map only");
        spec.ctc = e["decode"].get<std::string>() == "ctc";
        auto alphabet = e["alphabet"].get<std::string>();
        if (spec.ctc) {
            if (spec.kind && spec.kind != rt::OutputKind::Sequence)
                fail(cat(field, ".decode"), cat("ctc decodes a sequence output, kind is ",
                                                rt::output_kind_name(*spec.kind)));
            spec.kind = rt::OutputKind::Sequence;
            if (alphabet.empty())
                fail(cat(field, ".alphabet"),
                     "missing: decode ctc needs the alphabet file (one symbol per line)");
            spec.alphabet = resolve(base_dir, alphabet);
            std::error_code ec;
            if (!std::filesystem::is_regular_file(spec.alphabet, ec))
                fail(cat(field, ".alphabet"), cat("not found: ", spec.alphabet.string()));
        } else if (!alphabet.empty()) {
            fail(cat(field, ".alphabet"), "applies to decode ctc only");
        }
        specs[name] = spec;
    }
    return specs;
}

PassConfig check_pass_entry(const json& entry, size_t index) {
    std::string path = cat("passes[", index, "]");
    if (!entry.is_object())
        fail(path, cat("expected an object {\"pass\": NAME, ...}, found ", type_name(entry)));
    std::vector<std::string> known;
    for (auto n : pass_names()) known.emplace_back(n);
    if (!entry.contains("pass"))
        fail(path, cat("missing \"pass\" (the pass name: one of ", quoted_list(known), ")"));
    const json& name_value = entry.at("pass");
    if (!name_value.is_string())
        fail(path + ".pass", cat("expected a string, found ", type_name(name_value)));
    auto name = name_value.get<std::string>();
    auto pass = create_pass(name);
    if (!pass) {
        auto hint = did_you_mean(name, known);
        fail(path + ".pass",
             cat("unknown pass '", name, "'",
                 hint.empty() ? cat(" (known passes: ", quoted_list(known), ")") : hint));
    }
    auto specs = pass_entry_specs(*pass);
    PassConfig config;
    config.name = name;
    config.path = path;
    config.options = check_object(entry, specs, path, "unknown option", {"pass"});
    return config;
}

// The "fallback" section, checked against the rest of the recipe (passes, validate, gates,
// calibration already read): the pass it drives can keep nodes in float, and the loop has
// a gate it can judge on the validation data and samples to rank nodes on.
FallbackConfig check_fallback(const json& section, const Recipe& r) {
    if (!section.is_object())
        fail("fallback", cat("expected an object {\"max_nodes\": N, \"rank\": ...}, found ",
                             type_name(section)));
    json f = check_object(section, fallback_specs(), "fallback", "unknown key");
    FallbackConfig fc;
    fc.max_nodes = f["max_nodes"].get<uint64_t>();
    fc.rank =
        f["rank"].get<std::string>() == "ablation" ? FallbackRank::Ablation : FallbackRank::Sqnr;
    fc.pass = f["pass"].get<std::string>();
    std::vector<size_t> able;  // passes that can keep nodes in float
    std::string able_names;
    for (size_t i = 0; i < r.passes.size(); ++i) {
        if (!create_pass(r.passes[i].name)->can_keep_float()) continue;
        able.push_back(i);
        able_names +=
            cat(able_names.empty() ? "" : ", ", r.passes[i].path, " (", r.passes[i].name, ")");
    }
    auto describe = [&](size_t i) { return cat(r.passes[i].path, " (", r.passes[i].name, ")"); };
    if (fc.pass.empty()) {
        if (able.empty())
            fail("fallback",
                 "no pass of the recipe can keep nodes in float (the fallback drives "
                 "an activation-quantizing pass: quantize-static, quantize-dynamic)");
        if (able.size() > 1)
            fail("fallback.pass",
                 cat("missing, and ", able_names, " can each keep nodes in float: name one"));
        fc.pass_index = able[0];
    } else {
        std::vector<size_t> named;
        std::vector<std::string> known;
        for (size_t i = 0; i < r.passes.size(); ++i) {
            if (r.passes[i].path == fc.pass || r.passes[i].name == fc.pass) named.push_back(i);
            known.push_back(r.passes[i].path);
            known.push_back(r.passes[i].name);
        }
        if (named.empty())
            fail("fallback.pass",
                 cat("'", fc.pass, "' is no pass of this recipe", did_you_mean(fc.pass, known)));
        if (named.size() > 1)
            fail("fallback.pass",
                 cat("'", fc.pass, "' names ", named.size(),
                     " passes of this recipe: give its path (", r.passes[named[0]].path, ", ...)"));
        fc.pass_index = named[0];
        if (std::find(able.begin(), able.end(), fc.pass_index) == able.end())
            fail("fallback.pass", cat(describe(fc.pass_index), " cannot keep nodes in float",
                                      able.empty() ? std::string(" (no pass of this recipe can)")
                                                   : cat(" (", able_names, " can)")));
    }
    if (!r.validate)
        fail("fallback",
             "needs a \"validate\" section: the gates are judged on the validation "
             "data after each node goes back to float");
    if (std::none_of(r.gates.begin(), r.gates.end(),
                     [](const Limit& g) { return compares_outputs(*find_gate(g.name)); }))
        fail("fallback",
             "needs a gate on the outputs to aim at (max_kl_mean, min_top1_agreement, "
             "max_accuracy_drop, min_sqnr_db, ...); sizes and latency are not judged "
             "while nodes go back to float");
    if (!r.calibration || (r.calibration->data.empty() && !r.calibration->synthetic))
        fail("fallback.rank",
             "ranks the nodes on the calibration samples: set calibration.data (a folder of "
             "samples or a token-id .npy)");
    return fc;
}

Recipe validate(json doc, const std::string& what, const std::filesystem::path& base_dir) {
    Recipe r;
    r.what = what;
    r.base_dir = base_dir;
    if (!doc.is_object())
        fail("recipe", cat("expected a JSON object at the top level, found ", type_name(doc)));
    for (const auto& [key, value] : doc.items()) {
        (void)value;
        const auto& keys = top_level_keys();
        if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
            auto hint = did_you_mean(key, keys);
            fail(key, cat("unknown key",
                          hint.empty() ? cat(" (valid: ", quoted_list(keys), ")") : hint));
        }
    }
    if (doc.contains("description")) {
        if (!doc["description"].is_string())
            fail("description", cat("expected a string, found ", type_name(doc["description"])));
        r.description = doc["description"].get<std::string>();
    }
    r.model = resolve(base_dir, required_string(doc, "model"));
    if (doc.contains("passes")) {
        const json& passes = doc["passes"];
        if (!passes.is_array())
            fail("passes", cat("expected a list of pass entries, found ", type_name(passes)));
        for (size_t i = 0; i < passes.size(); ++i)
            r.passes.push_back(check_pass_entry(passes[i], i));
    }
    if (doc.contains("output")) {
        const json& out = doc["output"];
        if (out.is_array()) {
            if (out.empty()) fail("output", "expected at least one output file, found []");
            for (size_t i = 0; i < out.size(); ++i) {
                std::string field = cat("output[", i, "]");
                if (!out[i].is_string() || out[i].get<std::string>().empty())
                    fail(field, cat("expected a file path, found ", type_name(out[i])));
                auto path = resolve(base_dir, out[i].get<std::string>());
                check_output_extension(path, field);
                for (size_t j = 0; j < r.outputs.size(); ++j)
                    if (r.outputs[j] == path)
                        fail(field, cat("the same file as output[", j, "]: ", path.string()));
                r.outputs.push_back(path);
            }
        } else {
            if (!out.is_string())
                fail("output",
                     cat("expected a file path or a list of them, found ", type_name(out)));
            r.outputs.push_back(resolve(base_dir, required_string(doc, "output")));
            check_output_extension(r.outputs[0], "output");
        }
        r.output = r.outputs[0];
    }
    if (doc.contains("onnx")) {
        if (!doc["onnx"].is_object())
            fail("onnx", cat("expected an object, found ", type_name(doc["onnx"])));
        json onnx = check_object(doc["onnx"], onnx_specs(), "onnx", "unknown key");
        auto mode = onnx["external_data"].get<std::string>();
        r.onnx.external = mode == "always"  ? ExternalData::Always
                          : mode == "never" ? ExternalData::Never
                                            : ExternalData::Auto;
        r.onnx.external_threshold = onnx["external_threshold"].get<uint64_t>();
        if (auto q = onnx["quantized"].get<std::string>(); q != "none") r.onnx.quantized = q;
    }
    if (doc.contains("calibration")) {
        if (!doc["calibration"].is_object())
            fail("calibration", cat("expected an object {\"data\": ..., \"samples\": N}, found ",
                                    type_name(doc["calibration"])));
        json c =
            check_object(doc["calibration"], calibration_specs(), "calibration", "unknown key");
        CalibrationConfig cc;
        auto data = c["data"].get<std::string>();
        if (!data.empty()) {
            cc.data = resolve(base_dir, data);
            std::error_code ec;
            if (!std::filesystem::exists(cc.data, ec))
                fail("calibration.data", cat("not found: ", cc.data.string()));
        }
        if (auto ranges = c["ranges"].get<std::string>(); !ranges.empty()) {
            cc.ranges = resolve(base_dir, ranges);
            std::error_code ec;
            if (!std::filesystem::is_regular_file(cc.ranges, ec))
                fail("calibration.ranges", cat("not found: ", cc.ranges.string()));
        }
        cc.samples = c["samples"].get<uint64_t>();
        cc.seed = c["seed"].get<uint64_t>();
        cc.max_samples = c["max_samples"].get<uint64_t>();
        cc.synthetic = c["synthetic"].get<bool>();
        if (cc.synthetic && !cc.data.empty())
            fail("calibration.synthetic", "true, but calibration.data is set: remove one");
        if (cc.samples > cc.max_samples)
            fail("calibration.samples", cat(cc.samples, " is above max_samples ", cc.max_samples));
        r.calibration = cc;
    }
    if (doc.contains("validate")) {
        if (!doc["validate"].is_object())
            fail("validate", cat("expected an object {\"samples\": N, ...}, found ",
                                 type_name(doc["validate"])));
        json v =
            check_object(doc["validate"], validate_specs(), "validate", "unknown key", {"outputs"});
        ValidateConfig vc;
        if (doc["validate"].contains("outputs"))
            vc.outputs = check_output_entries(doc["validate"]["outputs"], base_dir);
        auto existing = [&](const char* key) {
            std::filesystem::path p;
            auto value = v[key].get<std::string>();
            if (value.empty()) return p;
            p = resolve(base_dir, value);
            std::error_code ec;
            if (!std::filesystem::exists(p, ec))
                fail(cat("validate.", key), cat("not found: ", p.string()));
            return p;
        };
        vc.data = existing("data");
        vc.labels = existing("labels");
        if (vc.labels.extension() == ".txt" &&
            std::none_of(vc.outputs.begin(), vc.outputs.end(),
                         [](const auto& o) { return o.second.ctc; }))
            fail("validate.labels",
                 "text labels (.txt) go with an output decoded with CTC: add validate.outputs."
                 "NAME = {\"kind\": \"sequence\", \"decode\": \"ctc\", \"alphabet\": FILE}; "
                 "class labels are an int32/int64 .npy");
        if (v["require_data"].get<bool>() && vc.data.empty())
            fail("validate.data",
                 "missing, and validate.require_data is true: give real inputs (a directory as "
                 "edgepack run --data takes, or an [S, T] token-id .npy), not random samples");
        vc.samples = v["samples"].get<uint64_t>();
        vc.seed = v["seed"].get<uint64_t>();
        vc.shapes = v["shapes"].get<std::vector<std::string>>();
        if (!vc.data.empty() && !vc.shapes.empty())
            fail("validate.shapes", "applies to random samples only, not to validate.data");
        vc.threads = v["threads"].get<int>();
        vc.per_layer = v["per_layer"].get<bool>();
        vc.int8_activations = v["int8_activations"].get<bool>();
        vc.benchmark_runs = v["benchmark_runs"].get<uint64_t>();
        vc.benchmark_warmup = v["benchmark_warmup"].get<uint64_t>();
        r.validate = vc;
    }
    // Gates and tolerances: only the keys the recipe sets, in the order of gates.h's tables.
    auto limits = [&](const char* key, const std::vector<OptionSpec>& specs) {
        std::vector<Limit> out;
        if (!doc.contains(key)) return out;
        if (!doc[key].is_object())
            fail(key, cat("expected an object {\"", specs[0].name, "\": ...}, found ",
                          type_name(doc[key])));
        json checked = check_object(doc[key], specs, key, "unknown key");
        for (const auto& spec : specs)
            if (!checked[spec.name].is_null())
                out.push_back({spec.name, checked[spec.name].get<double>()});
        return out;
    };
    r.gates = limits("gates", gate_option_specs());
    r.baseline = limits("baseline", baseline_option_specs());
    // A value that only makes sense in another unit (a fraction for a percent gate).
    for (const auto& g : r.gates)
        if (auto why = gate_unit_mistake(*find_gate(g.name), g.value); !why.empty())
            fail(cat("gates.", g.name), why);
    for (const auto& b : r.baseline)
        if (auto why = tolerance_unit_mistake(*find_baseline(b.name), b.value); !why.empty())
            fail(cat("baseline.", b.name), why);
    // A gate or tolerance the recipe cannot measure is a recipe error, not a failed gate.
    auto check_needs = [&](const std::string& field, MetricNeeds needs) {
        if (needs == MetricNeeds::Nothing) return;
        if (!r.validate) fail(field, "needs a \"validate\" section (it reads a validation metric)");
        if (needs == MetricNeeds::Labels && r.validate->labels.empty())
            fail(field, "needs validate.labels (accuracy is measured against labels)");
        if (needs == MetricNeeds::Benchmark && r.validate->benchmark_runs == 0)
            fail(field, "needs validate.benchmark_runs > 0 (it reads a latency)");
        if (needs == MetricNeeds::CtcDecode &&
            std::none_of(r.validate->outputs.begin(), r.validate->outputs.end(),
                         [](const auto& o) { return o.second.ctc; }))
            fail(field,
                 "needs an output decoded with CTC (validate.outputs.NAME: {\"kind\": "
                 "\"sequence\", \"decode\": \"ctc\", \"alphabet\": FILE})");
    };
    for (const auto& g : r.gates) check_needs(cat("gates.", g.name), find_gate(g.name)->needs);
    for (const auto& b : r.baseline)
        check_needs(cat("baseline.", b.name), find_baseline(b.name)->needs);
    if (r.validate && !r.outputs.empty()) {
        bool runnable = false;
        for (const auto& o : r.outputs)
            runnable = runnable || o.extension() == ".epk" || o.extension() == ".onnx";
        if (!runnable)
            fail("validate",
                 "needs an .epk or .onnx output (the runtime cannot run a "
                 "weights-only .safetensors file)");
    }
    if (doc.contains("fallback")) r.fallback = check_fallback(doc["fallback"], r);
    if (doc.contains("report_dir"))
        r.report_dir = resolve(base_dir, required_string(doc, "report_dir"));
    // Last, so that every schema error is reported even when the model is missing too.
    std::error_code ec;
    if (!std::filesystem::exists(r.model, ec))
        fail("model", cat("file not found: ", r.model.string()));
    r.document = std::move(doc);
    return r;
}

// Parses JSON, rejecting duplicate keys (JSON would silently keep one) and deep nesting.
json parse_json(std::string_view text) {
    if (std::all_of(text.begin(), text.end(),
                    [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }))
        throw InputError("empty file, expected a JSON object with at least \"model\"");
    std::vector<std::set<std::string>> keys;  // one set per open object
    std::string duplicate;
    auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
        if (depth > kMaxNesting)
            throw InputError(cat("invalid JSON: nested deeper than ", kMaxNesting, " levels"));
        switch (event) {
            case json::parse_event_t::object_start:
                keys.emplace_back();
                break;
            case json::parse_event_t::object_end:
                if (!keys.empty()) keys.pop_back();
                break;
            case json::parse_event_t::key:
                if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second &&
                    duplicate.empty())
                    duplicate = parsed.get<std::string>();
                break;
            default:
                break;
        }
        return true;
    };
    json doc;
    try {
        doc = json::parse(text.begin(), text.end(), callback);
    } catch (const json::parse_error& e) {
        // Line and column of the byte where parsing stopped.
        size_t line = 1, column = 1;
        size_t end = std::min(e.byte > 0 ? e.byte - 1 : 0, text.size());
        for (size_t i = 0; i < end; ++i) {
            if (text[i] == '\n') {
                ++line;
                column = 1;
            } else {
                ++column;
            }
        }
        std::string detail = e.what();
        auto col = detail.find("column ");
        auto colon = col == std::string::npos ? detail.find("]") : detail.find(": ", col);
        if (colon != std::string::npos) detail = detail.substr(colon + 2);
        if (detail.empty()) detail = e.what();
        throw InputError(cat("invalid JSON at line ", line, ", column ", column, ": ", detail));
    } catch (const json::exception& e) {
        // Not a syntax error: a number out of double's range (out_of_range.406, e.g. 1e4444),
        // found by fuzz_recipe; it left the loader as an internal error (exit 3).
        throw InputError(cat("invalid JSON: ", e.what()));
    }
    if (!duplicate.empty())
        throw InputError(cat("duplicate key '", duplicate, "' (JSON keeps only one of them)"));
    return doc;
}

// One step of an override path: a key or a [index].
struct PathStep {
    bool is_index = false;
    std::string key;
    size_t index = 0;
};

std::vector<PathStep> parse_path(std::string_view path) {
    std::vector<PathStep> steps;
    size_t i = 0;
    auto bad = [&](const std::string& why) {
        throw InputError(cat("bad path '", path, "': ", why));
    };
    if (path.empty()) bad("empty");
    while (i < path.size()) {
        size_t start = i;
        while (i < path.size() && path[i] != '.' && path[i] != '[' && path[i] != ']') ++i;
        if (i == start) bad(cat("expected a field name at character ", start + 1));
        steps.push_back({false, std::string(path.substr(start, i - start)), 0});
        while (i < path.size() && path[i] == '[') {
            size_t close = path.find(']', i);
            if (close == std::string_view::npos) bad("'[' without ']'");
            auto digits = path.substr(i + 1, close - i - 1);
            if (digits.empty() || digits.size() > 9 ||
                !std::all_of(digits.begin(), digits.end(),
                             [](char c) { return c >= '0' && c <= '9'; }))
                bad(cat("'[", digits, "]' is not an index"));
            steps.push_back({true, {}, static_cast<size_t>(std::stoul(std::string(digits)))});
            i = close + 1;
        }
        if (i < path.size()) {
            if (path[i] != '.') bad(cat("unexpected '", path[i], "' at character ", i + 1));
            ++i;
            if (i == path.size()) bad("ends with '.'");
        }
    }
    return steps;
}

// Follows the remaining steps into existing lists (e.g. passes[0].include[1]).
json& descend_lists(json& node, const std::vector<PathStep>& steps, size_t from,
                    std::string& where) {
    json* cur = &node;
    for (size_t k = from; k < steps.size(); ++k) {
        const auto& s = steps[k];
        if (!s.is_index) fail(cat(where, ".", s.key), "unknown field");
        if (!cur->is_array()) fail(where, cat("is a ", type_name(*cur), ", not a list"));
        if (s.index >= cur->size())
            fail(cat(where, "[", s.index, "]"),
                 cat("index out of range (", where, " has ", cur->size(), " elements)"));
        where = cat(where, "[", s.index, "]");
        cur = &(*cur)[s.index];
    }
    return *cur;
}

}  // namespace

void apply_override(json& doc, std::string_view assignment) {
    auto eq = assignment.find('=');
    if (eq == std::string_view::npos || eq == 0)
        throw InputError("expected PATH=VALUE, e.g. passes[0].include=[\"*.weight\"]");
    auto steps = parse_path(assignment.substr(0, eq));
    std::string text(assignment.substr(eq + 1));
    json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) value = text;

    if (!doc.is_object()) throw InputError("the recipe is not a JSON object");
    if (steps[0].is_index) fail("recipe", "cannot index the top level");
    const std::string& top = steps[0].key;
    const auto& keys = top_level_keys();
    if (std::find(keys.begin(), keys.end(), top) == keys.end())
        fail(top, cat("unknown key", did_you_mean(top, keys)));
    std::string where = top;

    if (top == "passes") {
        if (steps.size() == 1) {
            doc["passes"] = std::move(value);
            return;
        }
        if (!steps[1].is_index)
            fail(cat("passes.", steps[1].key), "passes is a list: use passes[N]");
        size_t n = steps[1].index;
        where = cat("passes[", n, "]");
        if (!doc.contains("passes"))
            fail(where, "index out of range (the recipe has no \"passes\")");
        if (!doc["passes"].is_array()) fail("passes", "is not a list");
        json& passes = doc["passes"];
        if (n >= passes.size())
            fail(where, cat("index out of range (the recipe has ", passes.size(), " pass",
                            passes.size() == 1 ? "" : "es", ")"));
        json& entry = passes[n];
        if (steps.size() == 2) {
            entry = std::move(value);
            return;
        }
        if (steps[2].is_index) fail(where, "is a pass entry, not a list");
        if (!entry.is_object()) fail(where, cat("is a ", type_name(entry), ", not an object"));
        const std::string& key = steps[2].key;
        std::vector<std::string> names{"pass", "include", "exclude"};
        bool known_pass = false;
        if (entry.contains("pass") && entry["pass"].is_string()) {
            if (auto pass = create_pass(entry["pass"].get<std::string>())) {
                known_pass = true;
                for (const auto& s : pass->option_specs()) names.push_back(s.name);
            }
        }
        where = cat(where, ".", key);
        // An entry whose pass is unknown is reported by validation; allow fixing "pass".
        if (std::find(names.begin(), names.end(), key) == names.end() &&
            (known_pass || key != "pass"))
            fail(where, cat("unknown option", did_you_mean(key, names)));
        if (steps.size() == 3) {
            entry[key] = std::move(value);
            return;
        }
        if (!entry.contains(key)) fail(where, "not set in the recipe, cannot index it");
        descend_lists(entry[key], steps, 3, where) = std::move(value);
        return;
    }
    if (const auto* specs = section(top)) {
        if (steps.size() == 1) {
            doc[top] = std::move(value);
            return;
        }
        if (steps[1].is_index) fail(top, "is an object, not a list");
        if (doc.contains(top) && !doc[top].is_object()) fail(top, "is not an object");
        std::vector<std::string> names;
        for (const auto& s : *specs) names.push_back(s.name);
        if (top == "validate") names.push_back("outputs");
        const std::string& key = steps[1].key;
        where = cat(top, ".", key);
        if (top == "validate" && key == "outputs" && steps.size() > 2) {
            // validate.outputs.NAME[.KEY]: NAME is any output name, dots included
            // (softmax_11.tmp_0); a last step naming an entry key is that key.
            std::vector<std::string> entry_names;
            for (const auto& s : output_entry_specs()) entry_names.push_back(s.name);
            size_t end = steps.size();
            const auto& last = steps.back();
            const bool sets_key =
                steps.size() > 3 && !last.is_index &&
                std::find(entry_names.begin(), entry_names.end(), last.key) != entry_names.end();
            if (sets_key) --end;
            if (!sets_key && steps.size() > 3 && !last.is_index &&
                nearest_name(last.key, entry_names))
                fail(cat(where, ".", last.key),
                     cat("unknown key", did_you_mean(last.key, entry_names)));
            std::string name;
            for (size_t k = 2; k < end; ++k) {
                if (steps[k].is_index) fail(where, "is an object keyed by output name, not a list");
                name += cat(name.empty() ? "" : ".", steps[k].key);
            }
            json& entries = doc["validate"]["outputs"];
            if (!entries.is_null() && !entries.is_object()) fail(where, "is not an object");
            where = cat(where, ".", name);
            json& entry = entries[name];
            if (!sets_key) {
                entry = std::move(value);
                return;
            }
            if (!entry.is_null() && !entry.is_object()) fail(where, "is not an object");
            entry[last.key] = std::move(value);
            return;
        }
        if (std::find(names.begin(), names.end(), key) == names.end())
            fail(where, cat("unknown key", did_you_mean(key, names)));
        if (steps.size() == 2) {
            doc[top][key] = std::move(value);
            return;
        }
        if (!doc[top].contains(key)) fail(where, "not set in the recipe, cannot index it");
        descend_lists(doc[top][key], steps, 2, where) = std::move(value);
        return;
    }
    if (steps.size() > 1) {
        if (top != "output" || !doc.contains("output")) fail(where, "takes a single value");
        descend_lists(doc[top], steps, 1, where) = std::move(value);
        return;
    }
    doc[top] = std::move(value);
}

void check_output_extension(const std::filesystem::path& path, const std::string& what) {
    auto ext = path.extension().string();
    if (ext == ".onnx" || ext == ".safetensors" || ext == ".gguf" || ext == ".epk") return;
    throw InputError(cat(what, ": unknown output format '",
                         ext.empty() ? path.filename().string() : ext,
                         "' (expected .onnx, .safetensors, .gguf or .epk): ", path.string()));
}

size_t edit_distance(std::string_view a, std::string_view b) {
    // Optimal string alignment: three rows suffice.
    std::vector<size_t> prev2(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                cur[j] = std::min(cur[j], prev2[j - 2] + 1);
        }
        std::swap(prev2, prev);
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

std::optional<std::string> nearest_name(std::string_view name,
                                        const std::vector<std::string>& candidates) {
    if (name.size() > 256) return std::nullopt;  // not a typo; keep the cost bounded
    std::optional<std::string> best;
    size_t best_distance = SIZE_MAX;
    for (const auto& c : candidates) {
        size_t d = edit_distance(name, c);
        if (d < best_distance) {
            best_distance = d;
            best = c;
        }
    }
    if (!best) return std::nullopt;
    // Close means: at most 2 edits, or at most a third of the longer name; never a
    // rewrite of the whole name.
    size_t longer = std::max(name.size(), best->size());
    bool close = best_distance > 0 && best_distance < name.size() &&
                 (best_distance <= 2 || best_distance * 3 <= longer);
    if (!close) return std::nullopt;
    return best;
}

std::string did_you_mean(std::string_view name, const std::vector<std::string>& candidates) {
    auto best = nearest_name(name, candidates);
    return best ? cat("; did you mean ", *best, "?") : std::string();
}

Recipe parse_recipe(std::string_view text, const std::string& what,
                    const std::filesystem::path& base_dir,
                    const std::vector<std::string>& overrides) {
    return with_context(what, [&] {
        json doc = parse_json(text);
        for (const auto& o : overrides)
            with_context(cat("--set ", o), [&] { apply_override(doc, o); });
        return validate(std::move(doc), what, base_dir);
    });
}

Recipe load_recipe(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
    std::string what = file.string();
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) throw InputError(cat(what, ": no such file"));
    if (std::filesystem::is_directory(file, ec))
        throw InputError(cat(what, ": is a directory, expected a recipe .json file"));
    auto size = std::filesystem::file_size(file, ec);
    if (ec) throw InputError(cat(what, ": cannot read: ", ec.message()));
    if (size > kMaxRecipeBytes)
        throw InputError(cat(what, ": ", size, " bytes is too large for a recipe (limit ",
                             kMaxRecipeBytes, ")"));
    std::ifstream in(file, std::ios::binary);
    if (!in) throw InputError(cat(what, ": cannot open for reading"));
    std::ostringstream text;
    text << in.rdbuf();
    auto base = std::filesystem::absolute(file).parent_path();
    return parse_recipe(text.str(), what, base, overrides);
}

namespace {

json option_schema(const OptionSpec& spec) {
    json j = json::object();
    auto bounds = [&](bool integer) {
        auto bound = [&](const char* key, double v) {
            if (std::fabs(v) >= 1e299) return;
            if (integer)
                j[key] = static_cast<int64_t>(v);
            else
                j[key] = v;
        };
        bound("minimum", spec.min);
        bound("maximum", spec.max);
    };
    switch (spec.type) {
        case OptionType::Bool:
            j["type"] = "boolean";
            break;
        case OptionType::Int:
            j["type"] = "integer";
            bounds(true);
            break;
        case OptionType::Number:
            j["type"] = "number";
            bounds(false);
            break;
        case OptionType::String:
            j["type"] = "string";
            if (!spec.choices.empty()) j["enum"] = spec.choices;
            break;
        case OptionType::StringList:
            j["type"] = "array";
            j["items"] = {{"type", "string"}};
            break;
        case OptionType::NumberOrMap: {
            json number = {{"type", "number"}};
            std::swap(j, number);
            bounds(false);
            std::swap(j, number);
            j["oneOf"] = json::array(
                {number,
                 {{"type", "object"}, {"minProperties", 1}, {"additionalProperties", number}}});
            break;
        }
        case OptionType::NumberList:
            j["type"] = "array";
            j["items"] = {{"type", "number"}};
            break;
        case OptionType::NamedNumber: {
            json number = {{"type", "number"}};
            std::swap(j, number);
            bounds(false);
            std::swap(j, number);
            json properties = json::object();
            for (const auto& c : spec.choices) properties[c] = number;
            j["type"] = "object";
            j["properties"] = properties;
            j["minProperties"] = 1;
            j["maxProperties"] = 1;
            j["additionalProperties"] = false;
            break;
        }
    }
    if (!spec.default_value.is_null()) j["default"] = spec.default_value;
    j["description"] = spec.help;
    return j;
}

json object_schema(const std::vector<OptionSpec>& specs, const std::string& description) {
    json properties = json::object();
    for (const auto& s : specs) properties[s.name] = option_schema(s);
    return {{"type", "object"},
            {"description", description},
            {"properties", properties},
            {"additionalProperties", false}};
}

}  // namespace

json recipe_json_schema() {
    std::vector<std::string> names;
    for (auto n : pass_names()) names.emplace_back(n);
    json per_pass = json::array();
    for (const auto& name : names) {
        auto pass = create_pass(name);
        auto specs = pass_entry_specs(*pass);
        json then = object_schema(specs, std::string(pass->description()));
        then["properties"]["pass"] = {{"const", name}};
        then.erase("description");
        per_pass.push_back(
            {{"if", {{"properties", {{"pass", {{"const", name}}}}}, {"required", {"pass"}}}},
             {"then", then}});
    }
    json pass_entry = {{"type", "object"},
                       {"required", {"pass"}},
                       {"properties", {{"pass", {{"enum", names}}}}},
                       {"allOf", per_pass}};
    json path = {{"type", "string"}, {"minLength", 1}, {"pattern", "\\.(onnx|safetensors|epk)$"}};
    json properties = {
        {"description", {{"type", "string"}, {"description", "free text"}}},
        {"model",
         {{"type", "string"},
          {"minLength", 1},
          {"description", "the input model (.onnx or .safetensors), relative to the recipe"}}},
        {"passes", {{"type", "array"}, {"items", pass_entry}, {"description", "run in order"}}},
        {"output",
         {{"oneOf", {path, {{"type", "array"}, {"items", path}, {"minItems", 1}}}},
          {"description",
           "output file(s): .epk, .onnx, .safetensors; the format follows "
           "the extension"}}},
        {"report_dir",
         {{"type", "string"},
          {"minLength", 1},
          {"description",
           "where report.json/.md/.html and junit.xml go (default: the "
           "validated output's directory)"}}}};
    for (const auto& [name, specs] : section_specs()) {
        const char* what = name == "onnx"          ? "ONNX writer options"
                           : name == "calibration" ? "calibration samples for GPTQ/AWQ"
                           : name == "validate"    ? "how the written model is checked"
                           : name == "gates" ? "limits on report metrics (exit 1 when one fails)"
                           : name == "fallback"
                               ? "accuracy-aware fallback: quantized nodes back to float until "
                                 "the gates hold"
                               : "tolerances against --baseline REPORT.json";
        properties[name] = object_schema(specs, what);
    }
    properties["validate"]["properties"]["outputs"] = {
        {"type", "object"},
        {"description",
         "how outputs are compared, by output name (default: the kind inferred from the graph)"},
        {"additionalProperties", object_schema(output_entry_specs(), "one output")}};
    return {{"$schema", "https://json-schema.org/draft/2020-12/schema"},
            {"$id", "edgepack.recipe/1"},
            {"title", "edgepack recipe"},
            {"description",
             "Generated by `edgepack compress --print-schema` from the loader's "
             "tables (docs/recipes.md). The loader also checks what a schema "
             "cannot say: files exist, gates the recipe can measure."},
            {"type", "object"},
            {"required", {"model"}},
            {"properties", properties},
            {"additionalProperties", false}};
}

}  // namespace ep
