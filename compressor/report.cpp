// report.json pieces and the report files (contract in report.h).
#include "compressor/report.h"

#include <sys/utsname.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include "compressor/gates.h"
#include "compressor/report_render.h"
#include "formats/epk.h"
#include "ir/encoding.h"
#include "ir/error.h"
#include "ir/output_batch.h"
#include "ir/output_file.h"
#include "ir/progress.h"
#include "runtime-check/benchmark.h"
#include "runtime-check/kernels/simd.h"
#include "runtime-check/metrics.h"

namespace ep {

using nlohmann::json;

namespace {

constexpr const char* kGraphCategory = "graph and metadata";

// Category of each weight by what reads it.
std::unordered_map<std::string, std::string> categories(const Model& model) {
    std::unordered_map<std::string, std::string> out;
    for (const auto& node : model.graph.nodes) {
        for (size_t i = 0; i < node.inputs.size(); ++i) {
            const auto& name = node.inputs[i];
            if (name.empty() || out.count(name)) continue;
            const auto& op = node.op_type;
            if ((op == "MatMul" || op == "Gemm" || op == "MatMulNBits" || op == "MatMulInteger") &&
                i == 1)
                out[name] = "matmul weights";
            else if ((op == "Conv" || op == "ConvTranspose" || op == "ConvInteger") && i == 1)
                out[name] = "conv weights";
            else if (op == "Gather" && i == 0)
                out[name] = "embeddings";
        }
    }
    return out;
}

std::string format_of(const std::filesystem::path& p) {
    auto ext = p.extension().string();
    if (ext == ".epk") return "epk";
    if (ext == ".safetensors") return "safetensors";
    if (ext == ".onnx") return "onnx";
    return ext.empty() ? "unknown" : ext.substr(1);
}

std::string cpu_name() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("model name", 0) == 0) {
            auto colon = line.find(':');
            if (colon != std::string::npos) {
                auto s = line.substr(colon + 1);
                s.erase(0, s.find_first_not_of(" \t"));
                return s;
            }
        }
    }
    return "unknown";
}

json stats_json(const rt::LatencyStats& s, const std::vector<double>& samples) {
    return {{"min", s.min},   {"p50", s.p50}, {"p95", s.p95},         {"p99", s.p99},
            {"mean", s.mean}, {"max", s.max}, {"samples_ms", samples}};
}

double elapsed_ms(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
        .count();
}

const json& at_or_null(const json& j, const char* key) {
    static const json null_json;
    if (!j.is_object()) return null_json;
    auto it = j.find(key);
    return it == j.end() ? null_json : *it;
}

}  // namespace

std::vector<TensorEntry> tensor_inventory(const Model& model) {
    auto cats = categories(model);
    // Initializers, and the tensors of Constant nodes (weights in many exported graphs),
    // named after the Constant's output.
    std::vector<std::pair<std::string, const Tensor*>> tensors;
    // The main graph's initializers, then those of If / Loop / Scan bodies (depth first).
    for_each_graph(model.graph, [&](const Graph& g) {
        for (const auto& t : g.initializers) tensors.emplace_back(t.name, &t);
    });
    for (const auto& node : model.graph.nodes)
        if (node.op_type == "Constant" && node.domain.empty() && node.outputs.size() == 1)
            for (const auto& a : node.attributes)
                if (a.name == "value" && a.tensors.size() == 1)
                    tensors.emplace_back(node.outputs[0], &a.tensors[0]);
    std::vector<TensorEntry> out;
    out.reserve(tensors.size());
    for (const auto& [name, tensor] : tensors) {
        const Tensor& t = *tensor;
        TensorEntry e;
        e.name = name;
        e.dtype = std::string(dtype_name(t.dtype));
        e.encoding = t.is_encoded() ? encoding_name(t.encoding) : std::string();
        e.shape = t.shape;
        e.bytes = t.data.size();
        auto it = cats.find(name);
        e.category = it != cats.end()      ? it->second
                     : t.shape.size() <= 1 ? "1-d (bias, norm)"
                                           : "other";
        out.push_back(std::move(e));
    }
    return out;
}

json tensor_decisions(const std::vector<TensorEntry>& before, const std::vector<TensorEntry>& after,
                      const std::vector<PassRecord>& records) {
    std::map<std::string, std::string> skipped;  // first reason per name
    std::set<std::string> pruned;
    for (const auto& r : records) {
        for (const auto& s : r.result.skipped) skipped.emplace(s.name, s.reason);
        for (const auto& p : r.result.pruned) pruned.insert(p.name);
    }
    std::unordered_map<std::string, const TensorEntry*> later;
    for (const auto& e : after) later.emplace(e.name, &e);
    json out = json::array();
    std::set<std::string> seen;
    for (const auto& b : before) {
        seen.insert(b.name);
        json j = {{"name", b.name},      {"shape", b.shape},       {"dtype", b.dtype},
                  {"encoding", nullptr}, {"input_bytes", b.bytes}, {"output_bytes", nullptr},
                  {"reason", ""}};
        auto it = later.find(b.name);
        std::string decision;
        if (it == later.end()) {
            decision = "removed";
        } else {
            const TensorEntry& a = *it->second;
            if (!a.encoding.empty()) j["encoding"] = a.encoding;
            j["output_bytes"] = a.bytes;
            // A pruned weight also quantized reads "quantized" (its encoding names both:
            // "int4g32+2:4"); pruned alone, stored sparse or dense or shrunk, "pruned".
            auto quantized_now = [&] {
                auto e = encoding_from_name(a.encoding);
                return e && e->is_quantized();
            };
            if (!a.encoding.empty() && a.encoding != b.encoding &&
                (!pruned.count(b.name) || quantized_now()))
                decision = "quantized";
            else if (pruned.count(b.name))
                decision = "pruned";
            else if (skipped.count(b.name))
                decision = "skipped";
            else if (a.bytes != b.bytes || a.dtype != b.dtype || a.shape != b.shape)
                decision = "changed";
            else
                decision = "unchanged";
        }
        if (auto s = skipped.find(b.name);
            s != skipped.end() && decision != "quantized" && decision != "pruned")
            j["reason"] = s->second;
        j["decision"] = decision;
        out.push_back(std::move(j));
    }
    for (const auto& a : after) {
        if (seen.count(a.name)) continue;
        out.push_back({{"name", a.name},
                       {"shape", a.shape},
                       {"dtype", a.dtype},
                       {"encoding", a.encoding.empty() ? json(nullptr) : json(a.encoding)},
                       {"input_bytes", nullptr},
                       {"output_bytes", a.bytes},
                       {"reason", ""},
                       {"decision", "added"}});
    }
    return out;
}

json size_by_category(const std::vector<TensorEntry>& before, const std::vector<TensorEntry>& after,
                      uint64_t input_bytes, uint64_t output_bytes) {
    struct Sums {
        uint64_t tensors = 0, in = 0, out = 0;
    };
    std::map<std::string, Sums> sums;
    std::unordered_map<std::string, std::string> category_before;
    uint64_t tensor_in = 0, tensor_out = 0;
    for (const auto& b : before) {
        category_before.emplace(b.name, b.category);
        auto& s = sums[b.category];
        ++s.tensors;
        s.in += b.bytes;
        tensor_in += b.bytes;
    }
    for (const auto& a : after) {
        // A tensor keeps the category it had in the input (a quantized MatMul weight is
        // still a MatMul weight); new tensors get their own.
        auto it = category_before.find(a.name);
        auto& s = sums[it != category_before.end() ? it->second : a.category];
        if (it == category_before.end()) ++s.tensors;
        s.out += a.bytes;
        tensor_out += a.bytes;
    }
    json cats = json::array();
    for (const auto& [name, s] : sums)
        cats.push_back({{"category", name},
                        {"tensors", s.tensors},
                        {"input_bytes", s.in},
                        {"output_bytes", s.out}});
    cats.push_back({{"category", kGraphCategory},
                    {"tensors", 0},
                    {"input_bytes", input_bytes > tensor_in ? input_bytes - tensor_in : 0},
                    {"output_bytes", output_bytes > tensor_out ? output_bytes - tensor_out : 0}});
    return {{"input_bytes", input_bytes},
            {"output_bytes", output_bytes},
            {"compression_ratio", output_bytes ? report_number(static_cast<double>(input_bytes) /
                                                               static_cast<double>(output_bytes))
                                               : json(nullptr)},
            {"by_category", cats}};
}

json passes_json(const std::vector<PassRecord>& records) {
    json out = json::array();
    for (size_t i = 0; i < records.size(); ++i) {
        const auto& r = records[i];
        json quantized = json::array();
        for (const auto& g : r.result.quantized)
            quantized.push_back({{"op", g.op},
                                 {"encoding", g.encoding},
                                 {"method", g.method},
                                 {"tensors", g.tensors},
                                 {"input_bytes", g.input_bytes},
                                 {"output_bytes", g.output_bytes},
                                 {"line", quantized_group_line(g)}});
        json pruned = json::array();
        for (const auto& t : r.result.pruned)
            pruned.push_back({{"name", t.name},
                              {"op", t.op},
                              {"method", t.method},
                              {"pattern", t.pattern},
                              {"sparsity", report_number(t.sparsity)},
                              {"storage", t.storage},
                              {"input_bytes", t.input_bytes},
                              {"output_bytes", t.output_bytes},
                              {"line", pruned_tensor_line(t)}});
        json calibration = nullptr;
        if (const auto& c = r.result.calibration)
            calibration = {{"method", c->method},   {"synthetic", c->synthetic},
                           {"samples", c->samples}, {"description", c->description},
                           {"solved", c->solved},   {"rtn_fallback", c->rtn_fallback}};
        out.push_back({{"index", i},
                       {"path", r.path},
                       {"pass", r.name},
                       {"changed", r.result.changed},
                       {"rewrites", r.result.rewrites},
                       {"summary", r.result.summary},
                       {"skipped", r.result.skipped.size()},
                       {"quantized", std::move(quantized)},
                       {"pruned", std::move(pruned)},
                       {"calibration", std::move(calibration)},
                       {"warnings", r.result.warnings},
                       {"seconds", r.seconds}});
        if (!r.result.mixed_precision.is_null())
            out.back()["mixed_precision"] = r.result.mixed_precision;
    }
    return out;
}

std::vector<std::filesystem::path> external_files(const Model& model,
                                                  const std::filesystem::path& path) {
    std::set<std::filesystem::path> files;
    std::error_code ec;
    for (const auto& t : model.graph.initializers) {
        const auto& f = t.data.file();
        if (!f) continue;
        if (std::filesystem::equivalent(f->path(), path, ec)) continue;
        files.insert(f->path());
    }
    return {files.begin(), files.end()};
}

json file_json(const std::filesystem::path& path, const std::vector<std::filesystem::path>& extra) {
    std::error_code ec;
    uint64_t bytes = std::filesystem::file_size(path, ec);
    if (ec) throw InputError(cat(path.string(), ": cannot read its size: ", ec.message()));
    json extra_json = json::array();
    for (const auto& e : extra) {
        auto n = std::filesystem::file_size(e, ec);
        if (ec) throw InputError(cat(e.string(), ": cannot read its size: ", ec.message()));
        bytes += n;
        extra_json.push_back(e.string());
    }
    json j = {{"path", path.string()},
              {"format", format_of(path)},
              {"bytes", bytes},
              {"sha256", sha256_file_hex(path)}};
    if (!extra.empty()) j["external_data"] = extra_json;
    return j;
}

json environment_json(int threads) {
    struct utsname u {};
    std::string os = "unknown";
    if (uname(&u) == 0) os = cat(u.sysname, " ", u.release, " ", u.machine);
    return {{"cpu", cpu_name()},
            {"isa", rt::simd_kernels().name},
            {"logical_cpus", std::thread::hardware_concurrency()},
            {"threads", threads},
            {"os", os}};
}

namespace {

// Bytes of the tensors a graph holds: initializers and Constant nodes' values (many
// exported graphs keep their weights in Constant nodes), here and in subgraphs.
uint64_t weight_bytes(const Graph& graph) {
    uint64_t bytes = 0;
    for (const auto& t : graph.initializers) bytes += t.data.size();
    for (const auto& node : graph.nodes)
        for (const auto& a : node.attributes) {
            if (node.op_type == "Constant" && node.domain.empty() && a.name == "value")
                for (const auto& t : a.tensors) bytes += t.data.size();
            for (const auto& sub : a.graphs) bytes += weight_bytes(sub);
        }
    return bytes;
}

}  // namespace

json memory_json(const rt::Executor& executor) {
    uint64_t weights = weight_bytes(executor.model().graph);
    uint64_t arena = executor.last_stats().peak_arena_bytes;
    return {
        {"weight_bytes", weights}, {"peak_arena_bytes", arena}, {"peak_bytes", weights + arena}};
}

json benchmark_pair(rt::Executor& reference, rt::Executor& candidate,
                    const rt::NamedTensors& reference_inputs,
                    const rt::NamedTensors& candidate_inputs, uint64_t warmup, uint64_t runs,
                    int threads, json& memory, Progress* progress) {
    auto step = progress_step(progress, "benchmark", 2 * (warmup + runs), "runs");
    auto once = [&](rt::Executor& e, const rt::NamedTensors& in) {
        auto start = std::chrono::steady_clock::now();
        auto out = e.run(in);
        double ms = elapsed_ms(start);
        step.advance();
        return ms;
    };
    for (uint64_t i = 0; i < warmup; ++i) {
        (void)once(reference, reference_inputs);
        (void)once(candidate, candidate_inputs);
    }
    std::vector<double> ref_ms, cand_ms;
    for (uint64_t i = 0; i < runs; ++i) {
        ref_ms.push_back(once(reference, reference_inputs));
        cand_ms.push_back(once(candidate, candidate_inputs));
    }
    step.finish();
    memory = {{"reference", memory_json(reference)}, {"candidate", memory_json(candidate)}};
    // The ratio: the median over pairs of candidate / reference, each pair timed back to
    // back, so load that changes during the benchmark cancels out pair by pair.
    std::vector<double> ratios;
    for (uint64_t i = 0; i < runs; ++i)
        if (ref_ms[i] > 0) ratios.push_back(cand_ms[i] / ref_ms[i]);
    std::sort(ratios.begin(), ratios.end());
    json ratio = nullptr;
    if (!ratios.empty()) ratio = rt::percentile(ratios, 0.5);
    return {{"runs", runs},
            {"warmup", warmup},
            {"threads", threads},
            {"ratio", ratio},
            {"reference", stats_json(rt::latency_stats(ref_ms), ref_ms)},
            {"candidate", stats_json(rt::latency_stats(cand_ms), cand_ms)}};
}

json flat_metrics(const json& validation, const json& size, const json& latency,
                  const json& memory) {
    json m = {{"kl_mean", nullptr},
              {"kl_p99", nullptr},
              {"top1_agreement", nullptr},
              {"topk_agreement", nullptr},
              {"accuracy_reference", nullptr},
              {"accuracy_candidate", nullptr},
              {"accuracy_drop", nullptr},
              {"line_agreement", nullptr},
              {"cer_reference", nullptr},
              {"cer_candidate", nullptr},
              {"perplexity_reference", nullptr},
              {"perplexity_candidate", nullptr},
              {"ppl_ratio", nullptr},
              {"sqnr_db", nullptr},
              {"cosine_similarity", nullptr},
              {"max_abs_error", nullptr},
              {"input_bytes", at_or_null(size, "input_bytes")},
              {"output_bytes", at_or_null(size, "output_bytes")},
              {"compression_ratio", at_or_null(size, "compression_ratio")},
              {"latency_p50_ms", nullptr},
              {"reference_latency_p50_ms", nullptr},
              {"latency_ratio", nullptr},
              {"peak_memory_bytes", nullptr},
              {"reference_peak_memory_bytes", nullptr}};
    if (validation.is_object()) {
        bool first_class = true;
        double sqnr = INFINITY, cosine = 1, max_abs = 0;
        bool any = false;
        for (const auto& o : validation.at("outputs")) {
            double v = 0;
            any = true;
            if (metric_value(o.at("sqnr_db"), v))
                sqnr = std::isnan(v) || std::isnan(sqnr) ? NAN : std::min(sqnr, v);
            if (metric_value(o.at("cosine_similarity"), v)) cosine = std::min(cosine, v);
            if (metric_value(o.at("max_abs_error"), v)) max_abs = std::max(max_abs, v);
            const json& c = o.at("classes");
            if (c.is_null() || !first_class) continue;
            first_class = false;
            m["kl_mean"] = c.at("kl_divergence").at("mean");
            m["kl_p99"] = c.at("kl_divergence").at("p99");
            m["top1_agreement"] = c.at("same_top1").at("percent");
            m["topk_agreement"] = c.at("topk_agreement");
        }
        if (any) {
            m["sqnr_db"] = report_number(sqnr);
            m["cosine_similarity"] = report_number(cosine);
            m["max_abs_error"] = report_number(max_abs);
        }
        if (validation.contains("accuracy") && validation["accuracy"].is_object()) {
            m["accuracy_reference"] = validation["accuracy"]["reference"];
            m["accuracy_candidate"] = validation["accuracy"]["candidate"];
            m["accuracy_drop"] = validation["accuracy"]["drop"];
        }
        if (const auto p = validation.find("perplexity"); p != validation.end() && p->is_object()) {
            m["perplexity_reference"] = p->at("reference").at("perplexity");
            m["perplexity_candidate"] = p->at("candidate").at("perplexity");
            m["ppl_ratio"] = p->at("ratio");
        }
        if (const auto ctc = validation.find("ctc"); ctc != validation.end() && ctc->is_object()) {
            m["line_agreement"] = ctc->at("line_agreement");
            m["cer_reference"] = ctc->at("cer_reference");
            m["cer_candidate"] = ctc->at("cer_candidate");
        }
    }
    if (latency.is_object()) {
        m["latency_p50_ms"] = latency["candidate"]["p50"];
        m["reference_latency_p50_ms"] = latency["reference"]["p50"];
        m["latency_ratio"] = latency["ratio"];
    }
    if (memory.is_object()) {
        m["peak_memory_bytes"] = memory["candidate"]["peak_bytes"];
        m["reference_peak_memory_bytes"] = memory["reference"]["peak_bytes"];
    }
    return m;
}

std::vector<std::filesystem::path> report_files(const std::filesystem::path& dir) {
    return {dir / "report.json", dir / "report.md", dir / "report.html", dir / "junit.xml"};
}

std::vector<std::filesystem::path> write_reports(const json& report,
                                                 const std::filesystem::path& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
        throw InputError(cat(dir.string(), ": cannot create the report directory: ", ec.message()));
    const std::vector<std::string> texts{report.dump(2) + "\n", render_report_markdown(report),
                                         render_report_html(report), render_junit_xml(report)};
    const std::vector<std::filesystem::path> written = report_files(dir);
    OutputBatch batch;  // all four or none
    for (size_t i = 0; i < written.size(); ++i) {
        OutputFile out(written[i]);
        out.write(texts[i]);
        out.commit();
    }
    batch.commit();
    return written;
}

}  // namespace ep
