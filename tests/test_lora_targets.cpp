// find_lora_targets (passes/lora_targets.h): adapter modules onto checkpoint tensors by
// name, and onto ONNX graphs by node / initializer name or by shape in layer order; every
// unmatched or ambiguous module is an InputError that lists it.
#include <catch2/catch.hpp>

#include "formats/model_io.h"
#include "ir/error.h"
#include "pass_model.h"
#include "passes/lora_targets.h"
#include "support.h"

using namespace ep;
using Catch::Matchers::Contains;

namespace {

Model checkpoint(const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors) {
    Model m;
    m.format = SourceFormat::Safetensors;
    for (const auto& [name, shape] : tensors) {
        size_t n = static_cast<size_t>(shape[0]) * static_cast<size_t>(shape.back());
        m.graph.initializers.push_back(make_f32_tensor(name, shape, std::vector<float>(n, 0.0f)));
    }
    return m;
}

// x -> MatMul(w0) -> ... one node per weight, chained; `names` are the nodes' names.
struct GraphWeight {
    std::string op;      // "MatMul", "Gemm", "Gemm^T" (Gemm with transB = 1), "MatMul^T"
                         // (MatMul reading a Transpose of the initializer)
    std::string node;    // the node's name
    std::string tensor;  // the initializer's name
    int64_t rows, cols;  // the initializer's shape
};

Model graph(const std::vector<GraphWeight>& weights) {
    Model m;
    m.opset_imports.push_back({"", 17});
    m.graph.inputs.push_back(test::value("x"));
    std::string in = "x";
    for (size_t i = 0; i < weights.size(); ++i) {
        const auto& w = weights[i];
        m.graph.initializers.push_back(make_f32_tensor(
            w.tensor, {w.rows, w.cols}, std::vector<float>(static_cast<size_t>(w.rows * w.cols))));
        std::string out = "y" + std::to_string(i);
        if (w.op == "MatMul") {
            m.graph.nodes.push_back(test::make_node("MatMul", w.node, {in, w.tensor}, {out}));
        } else if (w.op == "MatMul^T") {
            m.graph.nodes.push_back(test::make_node("Transpose", w.node + "_T", {w.tensor},
                                                    {w.tensor + "_T"},
                                                    {ints_attr("perm", {1, 0})}));
            m.graph.nodes.push_back(
                test::make_node("MatMul", w.node, {in, w.tensor + "_T"}, {out}));
        } else {
            m.graph.nodes.push_back(test::make_node("Gemm", w.node, {in, w.tensor}, {out},
                                                    {int_attr("transB", w.op == "Gemm^T")}));
        }
        in = out;
    }
    m.graph.outputs.push_back(test::value(in));
    return m;
}

std::string error_of(const Model& m, const std::vector<AdapterModule>& modules,
                     bool fan_in_fan_out = false) {
    try {
        (void)find_lora_targets(m, modules, fan_in_fan_out, false);
    } catch (const InputError& e) {
        return e.what();
    }
    return "no error";
}

}  // namespace

TEST_CASE("lora targets: checkpoint tensors by module name, with or without a model prefix",
          "[lora]") {
    // GPT-2's Conv1D stores [in, out] (fan_in_fan_out); h.1 and h.11 must not be confused.
    Model m = checkpoint({{"transformer.h.1.attn.c_attn.weight", {16, 48}},
                          {"transformer.h.11.attn.c_attn.weight", {16, 48}},
                          {"transformer.h.1.attn.c_attn.bias", {48, 1}},
                          {"transformer.wte.weight", {100, 16}}});
    std::vector<AdapterModule> modules{{"transformer.h.11.attn.c_attn", 16, 48},
                                       {"transformer.h.1.attn.c_attn", 16, 48}};
    auto t = find_lora_targets(m, modules, true, false);
    REQUIRE(t.size() == 2);
    CHECK(t[0].module == "transformer.h.11.attn.c_attn");
    CHECK(t[0].tensor == "transformer.h.11.attn.c_attn.weight");
    CHECK(t[1].tensor == "transformer.h.1.attn.c_attn.weight");
    CHECK(t[0].in_out);
    CHECK(t[0].how == "name");

    // A checkpoint saved from the bare GPT2Model has no "transformer." prefix, and a Llama
    // checkpoint's names carry one more ("model.") than a module path may.
    Model bare =
        checkpoint({{"h.1.attn.c_attn.weight", {16, 48}}, {"h.11.attn.c_attn.weight", {16, 48}}});
    auto tb = find_lora_targets(bare, modules, true, false);
    CHECK(tb[0].tensor == "h.11.attn.c_attn.weight");
    CHECK(tb[1].tensor == "h.1.attn.c_attn.weight");
    Model llama = checkpoint({{"model.layers.0.self_attn.q_proj.weight", {8, 8}}});
    auto tl = find_lora_targets(llama, {{"layers.0.self_attn.q_proj", 8, 8}}, false, false);
    CHECK(tl[0].tensor == "model.layers.0.self_attn.q_proj.weight");
    CHECK_FALSE(tl[0].in_out);
}

TEST_CASE("lora targets: a checkpoint module with no tensor or two is an error listing them",
          "[lora]") {
    Model m = checkpoint(
        {{"a.proj.weight", {8, 8}}, {"b.proj.weight", {8, 8}}, {"layers.0.q.weight", {8, 8}}});
    std::string err = error_of(m, {{"layers.0.q", 8, 8}, {"layers.0.k", 8, 8}, {"up", 8, 8}});
    CHECK_THAT(err, Contains("2 adapter modules found no target in the checkpoint"));
    CHECK_THAT(err, Contains("layers.0.k, up"));
    CHECK_THAT(err, Contains("allow_unmatched"));

    auto t = find_lora_targets(m, {{"layers.0.q", 8, 8}, {"up", 8, 8}}, false, true);
    CHECK(t[0].tensor == "layers.0.q.weight");
    CHECK(t[1].tensor.empty());

    std::string amb = error_of(m, {{"proj", 8, 8}});
    CHECK_THAT(amb, Contains("more than one possible target"));
    CHECK_THAT(amb, Contains("proj (a.proj.weight, b.proj.weight)"));
}

TEST_CASE("lora targets: graph weights by exporter node names, layout from the reading op",
          "[lora]") {
    // torch.onnx names nodes by module path and renames the weights it transposed.
    Model m = graph({{"Gemm", "/transformer/h.0/attn/c_attn/Gemm", "onnx::Gemm_11", 16, 48},
                     {"Gemm", "/transformer/h.0/attn/c_proj/Gemm", "onnx::Gemm_12", 16, 16},
                     {"MatMul", "/transformer/h.0/mlp/c_fc/MatMul", "onnx::MatMul_13", 16, 64},
                     {"Gemm^T", "/transformer/h.0/mlp/c_proj/Gemm", "onnx::Gemm_14", 16, 64},
                     {"MatMul^T", "/score/MatMul", "score.weight", 6, 16}});
    auto t = find_lora_targets(m,
                               {{"transformer.h.0.attn.c_attn", 16, 48},
                                {"transformer.h.0.mlp.c_fc", 16, 64},
                                {"transformer.h.0.mlp.c_proj", 64, 16},
                                {"score", 16, 6}},
                               true, false);
    CHECK(t[0].tensor == "onnx::Gemm_11");
    CHECK(t[0].in_out);
    CHECK(t[0].how == "node name");
    CHECK(t[1].tensor == "onnx::MatMul_13");
    CHECK(t[1].in_out);
    CHECK(t[2].tensor == "onnx::Gemm_14");  // transB = 1: stored [out, in]
    CHECK_FALSE(t[2].in_out);
    CHECK(t[3].tensor == "score.weight");  // read through a Transpose: [out, in]
    CHECK_FALSE(t[3].in_out);
}

TEST_CASE("lora targets: graph weights by initializer names", "[lora]") {
    // stories260k's export keeps the module path in the initializer ("..._T" transposed).
    Model m = graph({{"MatMul", "MatMul_n_30", "layers.0.attention.wq.weight_T", 8, 8},
                     {"MatMul", "MatMul_n_34", "layers.0.attention.wo.weight_T", 8, 8},
                     {"MatMul", "MatMul_n_40", "layers.1.attention.wq.weight_T", 8, 8},
                     {"MatMul", "MatMul_n_44", "layers.1.attention.wo.weight_T", 8, 8}});
    auto t = find_lora_targets(
        m, {{"layers.1.attention.wq", 8, 8}, {"layers.0.attention.wo", 8, 8}}, false, false);
    CHECK(t[0].tensor == "layers.1.attention.wq.weight_T");
    CHECK(t[1].tensor == "layers.0.attention.wo.weight_T");
    CHECK(t[0].in_out);
}

TEST_CASE("lora targets: unnamed graph weights by shape in layer order", "[lora]") {
    // Per layer: [8 -> 8] then [8 -> 24]; the adapter targets the [8 -> 24] weight of every
    // layer (h.0 .. h.2), listed out of order.
    std::vector<GraphWeight> w;
    for (int layer = 0; layer < 3; ++layer) {
        w.push_back({"MatMul", "", "onnx::MatMul_" + std::to_string(2 * layer), 8, 8});
        w.push_back({"MatMul", "", "onnx::MatMul_" + std::to_string(2 * layer + 1), 8, 24});
    }
    Model m = graph(w);
    auto t = find_lora_targets(
        m, {{"h.2.mlp.up", 8, 24}, {"h.0.mlp.up", 8, 24}, {"h.1.mlp.up", 8, 24}}, false, false);
    CHECK(t[0].tensor == "onnx::MatMul_5");
    CHECK(t[1].tensor == "onnx::MatMul_1");
    CHECK(t[2].tensor == "onnx::MatMul_3");
    CHECK(t[0].how == "shape order");

    // Two modules of one shape in one layer, or fewer modules than weights of that shape:
    // shape order cannot tell them apart.
    std::string two =
        error_of(m, {{"h.0.attn.q", 8, 8}, {"h.0.attn.k", 8, 8}, {"h.1.attn.q", 8, 8}});
    CHECK_THAT(two, Contains("more than one possible target in the graph"));
    CHECK_THAT(two, Contains("h.0.attn.k, h.0.attn.q, h.1.attn.q (no name matches"));
    std::string fewer = error_of(m, {{"h.0.mlp.up", 8, 24}, {"h.1.mlp.up", 8, 24}});
    CHECK_THAT(fewer, Contains("2 modules for 3 weights"));

    // A shape no weight has: unmatched, listed.
    std::string none = error_of(m, {{"h.0.mlp.down", 24, 8}});
    CHECK_THAT(none, Contains("1 adapter module found no target in the graph: h.0.mlp.down"));
}

TEST_CASE("lora targets: the stories260k export by initializer name and shape order", "[lora]") {
    auto path = test::shared_models() / "stories260k/model.onnx";
    EP_REQUIRE_FILE_OR_SKIP(path);
    Model m = load_model(path);
    // llama2.c module paths name the initializers; each layer's q/v/down.
    std::vector<AdapterModule> named;
    for (int l = 0; l < 5; ++l) {
        std::string p = "layers." + std::to_string(l);
        named.push_back({p + ".attention.wq", 64, 64});
        named.push_back({p + ".attention.wv", 64, 32});
        named.push_back({p + ".feed_forward.w2", 172, 64});
    }
    auto t = find_lora_targets(m, named, false, false);
    for (size_t i = 0; i < named.size(); ++i) {
        INFO(named[i].module);
        CHECK(t[i].tensor == named[i].module + ".weight_T");
        CHECK(t[i].in_out);
    }

    // Hugging Face Llama paths match no name in this export: down_proj is the one [172 -> 64]
    // weight of each layer (shape order), but q_proj shares [64 -> 64] with o_proj.
    std::vector<AdapterModule> hf;
    for (int l = 0; l < 5; ++l)
        hf.push_back({"model.layers." + std::to_string(l) + ".mlp.down_proj", 172, 64});
    auto th = find_lora_targets(m, hf, false, false);
    for (int l = 0; l < 5; ++l)
        CHECK(th[static_cast<size_t>(l)].tensor ==
              "layers." + std::to_string(l) + ".feed_forward.w2.weight_T");
    hf.push_back({"model.layers.0.self_attn.q_proj", 64, 64});
    CHECK_THAT(error_of(m, hf), Contains("model.layers.0.self_attn.q_proj (no name matches; by "
                                         "shape 64 -> 64 they are 1 modules for 10 weights"));
}
