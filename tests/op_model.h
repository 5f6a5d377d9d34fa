// One-node models built in memory and run through rt::Executor: how the kernel tests
// call a registered kernel exactly as a loaded model would (registry lookup, attribute
// parsing, validation), without writing ONNX files.
#pragma once

#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "ir/encoding.h"
#include "ir/ir.h"
#include "runtime-check/executor.h"

namespace ep::test {

struct OneNode {
    std::string op_type;
    std::string domain;
    int64_t opset = 17;
    std::vector<std::pair<std::string, Tensor>> feeds;      // graph inputs, fed at run time
    std::vector<std::pair<std::string, Tensor>> constants;  // initializers
    std::vector<std::string> inputs;                        // node inputs in order; "" = missing
    std::vector<std::string> outputs{"y"};
    std::vector<Attribute> attributes{};
};

// The IR's attribute builders (ir/ir.h), under the names the tests use.
using ep::float_attr;
using ep::int_attr;
using ep::ints_attr;
using ep::string_attr;

// `w` quantized with the reference RTN quantizer to `scheme` ("int4g32", "int8c", ...) along
// `axis`, renamed `name`.
inline Tensor quantized_rtn(Tensor w, std::string name, const char* scheme, uint8_t axis) {
    Encoding e = *encoding_from_name(scheme);
    e.axis = axis;
    w.name = std::move(name);
    return quantize_tensor_rtn(w, e);
}

inline Model make_model(const OneNode& spec) {
    Model model;
    model.opset_imports.push_back({"", spec.opset});
    if (!spec.domain.empty()) model.opset_imports.push_back({spec.domain, 1});
    Node node;
    node.name = spec.op_type;
    node.op_type = spec.op_type;
    node.domain = spec.domain;
    node.inputs = spec.inputs;
    node.outputs = spec.outputs;
    node.attributes = spec.attributes;
    model.graph.nodes.push_back(node);
    for (const auto& [name, t] : spec.feeds) model.graph.inputs.push_back(ValueInfo{name, {}, {}});
    for (const auto& [name, t] : spec.constants) {
        Tensor c = t;
        c.name = name;
        model.graph.initializers.push_back(std::move(c));
    }
    for (const auto& name : spec.outputs) model.graph.outputs.push_back(ValueInfo{name, {}, {}});
    return model;
}

// Runs the node with `threads` worker threads; returns the outputs in order.
inline std::vector<Tensor> run_node(const OneNode& spec, const rt::ExecOptions& options) {
    rt::Executor exec(make_model(spec), options);
    rt::NamedTensors feeds;
    for (const auto& [name, t] : spec.feeds) feeds.emplace_back(name, t);
    std::vector<Tensor> out;
    for (auto& [name, t] : exec.run(feeds)) out.push_back(std::move(t));
    return out;
}

inline std::vector<Tensor> run_node(const OneNode& spec, int threads) {
    return run_node(spec, rt::ExecOptions{threads});
}

// The message of the error running the node raises; it must be a bad-input error (exit 2).
inline std::string error_of(const OneNode& spec) {
    try {
        (void)run_node(spec, 1);
    } catch (const Error& e) {
        if (e.code() != ExitCode::BadInput) return std::string("(not bad input) ") + e.what();
        return e.what();
    }
    return "(no error)";
}

// Uniform f32 values in [lo, hi) from a fixed seed.
inline Tensor random_f32(std::vector<int64_t> shape, uint32_t seed, float lo = -1.0f,
                         float hi = 1.0f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = dist(rng);
    return make_f32_tensor("", std::move(shape), v);
}

inline bool same_bytes(const Tensor& a, const Tensor& b) {
    return a.dtype == b.dtype && a.shape == b.shape && a.data.size() == b.data.size() &&
           std::memcmp(a.data.bytes().data(), b.data.bytes().data(), a.data.size()) == 0;
}

// Runs the node at 1, 2 and 3 threads, requires identical bytes for every output, and
// returns output `output` of the 1-thread run.
inline Tensor run_threads(const OneNode& spec, size_t output = 0) {
    std::vector<Tensor> one = run_node(spec, 1);
    for (int threads : {2, 3}) {
        std::vector<Tensor> more = run_node(spec, threads);
        REQUIRE(more.size() == one.size());
        for (size_t i = 0; i < one.size(); ++i) {
            INFO("output " << i << " at " << threads << " threads");
            REQUIRE(same_bytes(one[i], more[i]));
        }
    }
    return one.at(output);
}

}  // namespace ep::test
