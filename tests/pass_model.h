// Tiny models and helpers shared by the pass tests (test_fold_batchnorm.cpp,
// test_promote_constants.cpp, test_pass_manager.cpp, test_pass_registry.cpp) and the
// quantize and output-kind tests (test_quantize.cpp, test_quantize_truth.cpp,
// test_output_kinds.cpp), and the in-memory calibration samples of the activation
// quantization tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "calibration/calibration.h"
#include "compressor/pass_manager.h"
#include "ir/error.h"
#include "ir/ir.h"
#include "passes/registry.h"

namespace ep::test {

inline std::vector<float> random_values(size_t n, uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

// Normally distributed values (mean 0, standard deviation `scale`), seeded.
inline std::vector<float> normal_values(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

inline Node make_node(std::string op, std::string name, std::vector<std::string> inputs,
                      std::vector<std::string> outputs, std::vector<Attribute> attributes = {}) {
    Node n;
    n.op_type = std::move(op);
    n.name = std::move(name);
    n.inputs = std::move(inputs);
    n.outputs = std::move(outputs);
    n.attributes = std::move(attributes);
    return n;
}

inline ValueInfo value(std::string name) {
    ValueInfo v;
    v.name = std::move(name);
    return v;
}

// An f32 value of fixed `dims`.
inline ValueInfo f32_value(std::string name, std::vector<int64_t> dims) {
    ValueType t;
    t.elem = DType::F32;
    std::vector<Dim> shape;
    for (int64_t d : dims) shape.push_back(Dim{d, {}, {}});
    t.shape = shape;
    return {std::move(name), t, ""};
}

inline std::vector<float> floats_of(const Model& m, const std::string& name) {
    const Tensor* t = m.graph.find_initializer(name);
    REQUIRE(t != nullptr);
    return t->to_floats();
}

inline const Node* find_node(const Model& m, std::string_view op) {
    for (const auto& n : m.graph.nodes)
        if (n.op_type == op) return &n;
    return nullptr;
}

inline size_t count_nodes(const Model& m, std::string_view op) {
    size_t k = 0;
    for (const auto& n : m.graph.nodes) k += n.op_type == op;
    return k;
}

// BN parameters for `channels` channels, with var > 0 and a non-default epsilon.
struct BnParams {
    std::vector<float> scale, bias, mean, var;
    float epsilon = 1e-3f;
};

inline BnParams make_bn(size_t channels, uint32_t seed) {
    BnParams p;
    p.scale = random_values(channels, seed, 0.5f, 2.0f);
    p.bias = random_values(channels, seed + 1);
    p.mean = random_values(channels, seed + 2);
    p.var = random_values(channels, seed + 3, 0.1f, 3.0f);
    return p;
}

inline void add_bn(Model& m, const BnParams& p, const std::string& in, const std::string& out,
                   const std::string& name = "bn") {
    auto c = static_cast<int64_t>(p.scale.size());
    m.graph.initializers.push_back(make_f32_tensor(name + ".scale", {c}, p.scale));
    m.graph.initializers.push_back(make_f32_tensor(name + ".B", {c}, p.bias));
    m.graph.initializers.push_back(make_f32_tensor(name + ".mean", {c}, p.mean));
    m.graph.initializers.push_back(make_f32_tensor(name + ".var", {c}, p.var));
    Node bn = make_node("BatchNormalization", name,
                        {in, name + ".scale", name + ".B", name + ".mean", name + ".var"}, {out});
    bn.attributes.push_back(float_attr("epsilon", p.epsilon));
    bn.attributes.push_back(float_attr("momentum", 0.9f));
    m.graph.nodes.push_back(std::move(bn));
}

// The registered pass `name`, configured with `options` (null: no options).
inline std::unique_ptr<Pass> configured_pass(const std::string& name, nlohmann::json options = {}) {
    auto pass = create_pass(name);
    REQUIRE(pass != nullptr);
    if (!options.is_object()) options = nlohmann::json::object();
    pass->configure(options);
    return pass;
}

inline PassResult run_pass(const std::string& name, Model& m, nlohmann::json options = {}) {
    auto pass = configured_pass(name, std::move(options));
    PassContext ctx;
    return pass->run(m, ctx);
}

// Everything a pass could change, as text: nodes, initializer names and bytes.
inline std::string fingerprint(const Model& m) {
    std::string s = dump_graph(m);
    for (const auto& t : m.graph.initializers) {
        s += t.name + " " + std::string(dtype_name(t.dtype)) + " " + shape_string(t.shape) + " ";
        auto b = t.data.bytes();
        s.append(reinterpret_cast<const char*>(b.data()), b.size());
        s += "\n";
    }
    for (const auto& n : m.graph.nodes)
        for (const auto& a : n.attributes) s += a.name + std::to_string(a.i) + std::to_string(a.f);
    return s;
}

inline bool has_skip(const PassResult& r, const std::string& name, const std::string& fragment) {
    for (const auto& s : r.skipped)
        if (s.name == name && s.reason.find(fragment) != std::string::npos) return true;
    return false;
}

inline std::string skips_text(const PassResult& r) {
    std::string s;
    for (const auto& k : r.skipped) s += k.name + ": " + k.reason + "\n";
    return s;
}

// Moves initializer `name` into a Constant node `node_name` at the front of the graph (the
// way PP-OCR stores its weights).
inline void weights_as_constant(Model& model, const std::string& name,
                                const std::string& node_name) {
    Node k = make_node("Constant", node_name, {}, {name});
    Attribute a;
    a.name = "value";
    a.type = AttrType::Tensor;
    a.tensors.push_back(*model.graph.find_initializer(name));
    k.attributes.push_back(a);
    std::erase_if(model.graph.initializers, [&](const Tensor& t) { return t.name == name; });
    model.graph.nodes.insert(model.graph.nodes.begin(), std::move(k));
}

// x [1, C, H, W] -> Conv(w[, b]) -> t -> BN -> y
inline Model conv_bn_model(size_t c, size_t m, size_t k, size_t group, bool with_bias,
                           uint32_t seed) {
    Model model;
    model.opset_imports.push_back({"", 13});
    model.graph.inputs.push_back(value("x"));
    model.graph.outputs.push_back(value("y"));
    auto w = random_values(m * (c / group) * k * k, seed);
    model.graph.initializers.push_back(
        make_f32_tensor("w",
                        {static_cast<int64_t>(m), static_cast<int64_t>(c / group),
                         static_cast<int64_t>(k), static_cast<int64_t>(k)},
                        w));
    std::vector<std::string> inputs{"x", "w"};
    if (with_bias) {
        model.graph.initializers.push_back(
            make_f32_tensor("b", {static_cast<int64_t>(m)}, random_values(m, seed + 7)));
        inputs.push_back("b");
    }
    Node conv = make_node("Conv", "conv", inputs, {"t"});
    conv.attributes.push_back(int_attr("group", static_cast<int64_t>(group)));
    model.graph.nodes.push_back(std::move(conv));
    add_bn(model, make_bn(m, seed + 11), "t", "y");
    return model;
}

// Calibration samples given in memory: sample i feeds `x` the tensor xs[i]. `what` names
// them in messages and reports ("8 fixed samples").
class MemorySamples final : public calib::SampleList {
  public:
    explicit MemorySamples(std::vector<Tensor> xs, std::string what = "fixed samples")
        : xs_(std::move(xs)), what_(std::move(what)) {}
    size_t size() const override { return xs_.size(); }
    rt::NamedTensors load(size_t i) const override { return {{"x", xs_.at(i)}}; }
    std::string describe() const override { return cat(xs_.size(), " ", what_); }

  private:
    std::vector<Tensor> xs_;
    std::string what_;
};

class MemoryData final : public calib::DataProvider {
  public:
    explicit MemoryData(std::vector<Tensor> xs, std::string what = "fixed samples")
        : xs_(std::move(xs)), what_(std::move(what)) {}
    std::unique_ptr<calib::SampleList> open(const rt::Executor&) const override {
        return std::make_unique<MemorySamples>(xs_, what_);
    }
    std::string what() const override { return what_; }

  private:
    std::vector<Tensor> xs_;
    std::string what_;
};

}  // namespace ep::test
