// Runs the ONNX backend node test cases (Debian package libonnx-testdata:
// DIR/test_*/model.onnx with test_data_set_*/input_*.pb and output_*.pb) through the
// reference runtime, with the ONNX backend suite's tolerances (rtol 1e-3, atol 1e-7).
//
//   edgepack_conformance DIR [--filter SUBSTRING] [--json FILE] [--verbose] [--threads N]
//
// A case is skipped when its model uses an op the runtime does not implement; every
// other case is run and passes or fails. Prints the counts and every failure; exit 0.
// The JSON gives each run case a "digest" of the bytes of every output of every data
// set (FNV-1a 64), so two runs with different --threads can be compared bit for bit.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "formats/onnx_io.h"
#include "runtime-check/executor.h"
#include "runtime-check/op_registry.h"
#include "runtime-check/ops/elementwise.h"

namespace fs = std::filesystem;
using namespace ep;

namespace {

void collect_ops(const Graph& g, std::set<std::string>& ops, std::set<std::string>& missing) {
    for (const auto& n : g.nodes) {
        std::string op =
            n.domain.empty() || n.domain == "ai.onnx" ? n.op_type : n.domain + "." + n.op_type;
        ops.insert(op);
        if (!rt::find_kernel(n.domain, n.op_type)) missing.insert(op);
        for (const auto& a : n.attributes)
            for (const auto& sub : a.graphs) collect_ops(sub, ops, missing);
    }
}

std::vector<fs::path> numbered(const fs::path& dir, const std::string& prefix) {
    std::vector<fs::path> out;
    for (int i = 0;; ++i) {
        auto p = dir / (prefix + std::to_string(i) + ".pb");
        if (!fs::exists(p)) break;
        out.push_back(p);
    }
    return out;
}

// Empty when equal within tolerance; otherwise what differs.
std::string compare(const Tensor& want, const Tensor& got) {
    if (want.dtype != got.dtype)
        return cat("dtype ", dtype_name(got.dtype), ", expected ", dtype_name(want.dtype));
    if (want.shape != got.shape)
        return cat("shape ", shape_string(got.shape), ", expected ", shape_string(want.shape));
    if (want.dtype == DType::String)
        return want.strings == got.strings ? "" : "string values differ";
    int64_t n = want.element_count();
    if (rt::is_float(want.dtype)) {
        const std::byte* a = want.data.bytes().data();
        const std::byte* b = got.data.bytes().data();
        for (int64_t i = 0; i < n; ++i) {
            double x = want.dtype == DType::F64 ? want.values<double>()[static_cast<size_t>(i)]
                                                : rt::load_float(want.dtype, a, i);
            double y = got.dtype == DType::F64 ? got.values<double>()[static_cast<size_t>(i)]
                                               : rt::load_float(got.dtype, b, i);
            if (std::isnan(x) && std::isnan(y)) continue;
            if (std::isinf(x) && x == y) continue;
            if (!(std::abs(x - y) <= 1e-7 + 1e-3 * std::abs(x)))
                return cat("element ", i, ": ", y, ", expected ", x);
        }
        return "";
    }
    if (want.data.size() != got.data.size()) return "values differ";
    if (want.data.size() != 0 &&  // empty tensors may have null data
        std::memcmp(want.data.bytes().data(), got.data.bytes().data(), want.data.size()) != 0)
        return "values differ";
    return "";
}

// FNV-1a 64 over an output's dtype, shape and bytes (strings: each with its length).
void digest(uint64_t& h, const Tensor& t) {
    auto mix = [&h](const void* p, size_t n) {
        const auto* b = static_cast<const unsigned char*>(p);
        for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
    };
    int code = traits(t.dtype).onnx_code;
    mix(&code, sizeof code);
    for (int64_t d : t.shape) mix(&d, sizeof d);
    if (t.dtype == DType::String) {
        for (const auto& s : t.strings) {
            uint64_t n = s.size();
            mix(&n, sizeof n);
            mix(s.data(), s.size());
        }
    } else if (t.data.size()) {
        mix(t.data.bytes().data(), t.data.size());
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Run the ONNX backend node tests through edgepack's reference runtime"};
    std::string dir, filter, json_path;
    bool verbose = false;
    int threads = 1;
    app.add_option("DIR", dir, "Folder of test_* cases")->required();
    app.add_option("--filter", filter, "Only cases whose name contains this");
    app.add_option("--json", json_path, "Write results as JSON");
    app.add_flag("--verbose", verbose, "Print every case");
    app.add_option("--threads", threads, "Worker threads of the runtime")
        ->check(CLI::Range(1, 256));
    CLI11_PARSE(app, argc, argv);

    std::vector<fs::path> cases;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_directory() && fs::exists(e.path() / "model.onnx") &&
            e.path().filename().string().find(filter) != std::string::npos)
            cases.push_back(e.path());
    std::sort(cases.begin(), cases.end());

    size_t passed = 0, failed = 0, skipped = 0;
    std::map<std::string, size_t> skipped_ops;
    nlohmann::json results = nlohmann::json::object();
    for (const auto& c : cases) {
        std::string name = c.filename().string();
        nlohmann::json r;
        try {
            Model model = read_onnx(c / "model.onnx");
            std::set<std::string> ops, missing;
            collect_ops(model.graph, ops, missing);
            // Sequence, map and optional values are not tensors: the runtime has none.
            auto non_tensor = [](const std::vector<ValueInfo>& vs) {
                return std::any_of(vs.begin(), vs.end(),
                                   [](const ValueInfo& v) { return v.type && !v.type->is_tensor; });
            };
            if (non_tensor(model.graph.inputs) || non_tensor(model.graph.outputs))
                missing.insert("(non-tensor values)");
            if (!missing.empty()) {
                ++skipped;
                for (const auto& op : missing) ++skipped_ops[op];
                r = {{"result", "skipped"}, {"unsupported", missing}};
                results[name] = r;
                continue;
            }
            rt::Executor exec(model, {threads});
            std::string failure;
            uint64_t hash = 14695981039346656037ull;
            for (const auto& set : fs::directory_iterator(c)) {
                if (!set.is_directory() ||
                    set.path().filename().string().rfind("test_data_set_", 0) != 0)
                    continue;
                auto in_files = numbered(set.path(), "input_");
                auto out_files = numbered(set.path(), "output_");
                rt::NamedTensors feeds;
                const auto& graph_inputs = exec.inputs();
                for (size_t i = 0; i < in_files.size(); ++i) {
                    Tensor t = read_onnx_tensor(in_files[i]);
                    // The suite stores bfloat16 data as uint16 (numpy has no bfloat16).
                    if (i < graph_inputs.size() && graph_inputs[i].type &&
                        graph_inputs[i].type->elem == DType::BF16 && t.dtype == DType::U16)
                        t.dtype = DType::BF16;
                    std::string input_name =
                        i < graph_inputs.size() ? graph_inputs[i].name : t.name;
                    if (!t.name.empty()) input_name = t.name;
                    feeds.emplace_back(input_name, std::move(t));
                }
                auto outs = exec.run(feeds);
                for (const auto& [out_name, out] : outs) digest(hash, out);
                if (outs.size() < out_files.size()) {
                    failure =
                        cat("produced ", outs.size(), " outputs, expected ", out_files.size());
                    break;
                }
                for (size_t i = 0; i < out_files.size() && failure.empty(); ++i) {
                    Tensor want = read_onnx_tensor(out_files[i]);
                    if (want.dtype == DType::U16 && outs[i].second.dtype == DType::BF16)
                        want.dtype = DType::BF16;
                    std::string diff = compare(want, outs[i].second);
                    if (!diff.empty())
                        failure = cat(set.path().filename().string(), " output ", outs[i].first,
                                      ": ", diff);
                }
                if (!failure.empty()) break;
            }
            if (failure.empty()) {
                ++passed;
                r = {{"result", "passed"}};
            } else {
                ++failed;
                r = {{"result", "failed"}, {"reason", failure}};
            }
            char hex[17];
            std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
            r["digest"] = hex;
        } catch (const std::exception& e) {
            ++failed;
            r = {{"result", "failed"}, {"reason", e.what()}};
        }
        if (verbose || r["result"] == "failed")
            std::cout << (r["result"] == "failed" ? "FAIL " : "ok   ") << name
                      << (r.contains("reason") ? "  " + r["reason"].get<std::string>() : "")
                      << "\n";
        results[name] = r;
    }
    std::cout << "conformance: " << cases.size() << " cases, " << passed + failed << " ran, "
              << passed << " passed, " << failed << " failed, " << skipped
              << " skipped for unsupported ops\n";
    if (!skipped_ops.empty()) {
        std::cout << "unsupported ops (cases):";
        for (const auto& [op, n] : skipped_ops) std::cout << " " << op << " (" << n << ")";
        std::cout << "\n";
    }
    if (!json_path.empty()) {
        std::ofstream out(json_path);
        out << nlohmann::json{{"passed", passed},
                              {"failed", failed},
                              {"skipped", skipped},
                              {"cases", results}}
                   .dump(1)
            << "\n";
    }
    return 0;
}
