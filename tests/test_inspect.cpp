#include <nlohmann/json.hpp>

#include "compressor/inspect.h"
#include "formats/model_io.h"
#include "onnx_proto.h"
#include "support.h"

using namespace ep;
using nlohmann::json;

namespace {

Model small_model() {
    Model m;
    m.opset_imports = {{"", 13}};
    m.producer_name = "test";
    std::vector<float> w(12, 0.0f), b{1, 2, 3};
    w[0] = 1.0f;
    m.graph.initializers.push_back(make_f32_tensor("fc.weight", {3, 4}, w));
    m.graph.initializers.push_back(make_f32_tensor("fc.bias", {3}, b));
    ValueInfo x{"x", ValueType{}, ""};
    x.type->elem = DType::F32;
    x.type->shape = std::vector<Dim>{{std::nullopt, "batch", ""}, {4, "", ""}};
    m.graph.inputs.push_back(x);
    Node gemm;
    gemm.op_type = "Gemm";
    gemm.inputs = {"x", "fc.weight", "fc.bias"};
    gemm.outputs = {"y"};
    Node c;
    c.op_type = "Constant";
    c.outputs = {"k"};
    Attribute value;
    value.name = "value";
    value.type = AttrType::Tensor;
    std::vector<float> k{0, 0};
    value.tensors.push_back(make_f32_tensor("k", {2}, k));
    c.attributes.push_back(value);
    m.graph.nodes = {c, gemm};
    m.graph.outputs.push_back({"y", std::nullopt, ""});
    return m;
}

}  // namespace

TEST_CASE("inspect counts parameters, dtypes, ops and zero fractions", "[inspect]") {
    InspectOptions options;
    options.tensors = true;
    json r = inspect_model(small_model(), "model.onnx", options);
    CHECK(r["schema"] == "edgepack.inspect/1");
    CHECK(r["format"] == "onnx");
    CHECK(r["parameters"]["count"] == 12 + 3 + 2);
    CHECK(r["parameters"]["bytes"] == (12 + 3 + 2) * 4);
    CHECK(r["parameters"]["by_dtype"][0]["dtype"] == "f32");
    CHECK(r["nodes"] == 2);
    CHECK(r["inputs"][0]["shape"] == json::array({"batch", 4}));
    CHECK(r["outputs"][0]["shape"].is_null());
    CHECK(r["largest_tensors"][0]["name"] == "fc.weight");
    REQUIRE(r["tensors"].size() == 3);
    CHECK(r["tensors"][0]["zero_fraction"].get<double>() == Approx(11.0 / 12.0));
    CHECK(r["tensors"][2]["source"] == "constant");
    CHECK(r["tensors"][2]["zero_fraction"].get<double>() == 1.0);
    std::string text = render_inspect_text(r);
    CHECK_THAT(text, Catch::Contains("parameters  17 in 3 tensors, 68 B"));
    CHECK_THAT(text, Catch::Contains("x  f32 [batch, 4]"));
    CHECK_THAT(text, Catch::Contains("91.67%"));
}

TEST_CASE("inspect --json on the MNIST CNN reports its real parameter count", "[inspect][real]") {
    auto path = test::shared_models() / "mnist/mnist-cnn.onnx";
    EP_REQUIRE_FILE_OR_SKIP(path);
    auto r = test::run_edgepack({"inspect", path.string(), "--json"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json j = json::parse(r.out);
    CHECK(j["schema"] == "edgepack.inspect/1");
    CHECK(j["ir_version"] == 6);
    CHECK(j["opsets"][0]["version"] == 11);
    // 421,642 float params per shared/models/README.md; Constant-node values count too.
    CHECK(j["parameters"]["by_dtype"][0]["dtype"] == "f32");
    CHECK(j["parameters"]["count"].get<uint64_t>() >= 421642);
    CHECK(j["largest_tensors"][0]["shape"] == json::array({128, 3136}));
    CHECK(j["inputs"][0]["shape"] == json::array({"batch_size", 1, 28, 28}));
    CHECK(j["runtime"] == json{{"runnable", true}, {"unsupported_ops", json::array()}});
}

// A Relu, two nodes of an op of an imported custom domain (one inside an If branch) and
// one of a domain the model does not import.
TEST_CASE("an op the runtime lacks: inspect lists it, run refuses it naming op, node, opset",
          "[inspect][runtime]") {
    auto m = test::empty_model("custom");
    auto* example = m.add_opset_import();
    example->set_domain("com.example");
    example->set_version(3);
    auto& g = *m.mutable_graph();
    test::add_value(g.mutable_input(), "x", {1, 4});
    test::add_value(g.mutable_input(), "c", {}, onnx::TensorProto::BOOL);
    test::add_node(g, "Relu", "relu", {"x"}, {"r"});
    test::add_node(g, "Frobnicate", "frob_a", {"r"}, {"f"})->set_domain("com.example");
    test::add_node(g, "Blur", "blur", {"f"}, {"b"})->set_domain("com.unknown");
    auto* branch_node = test::add_node(g, "If", "choose", {"c"}, {"y"});
    for (const char* branch : {"then_branch", "else_branch"}) {
        auto* a = branch_node->add_attribute();
        a->set_name(branch);
        a->set_type(onnx::AttributeProto::GRAPH);
        auto* sub = a->mutable_g();
        sub->set_name(branch);
        test::add_node(*sub, std::string(branch) == "then_branch" ? "Frobnicate" : "Identity",
                       std::string(branch) == "then_branch" ? "frob_b" : "keep", {"b"},
                       {std::string(branch) + "_y"})
            ->set_domain(std::string(branch) == "then_branch" ? "com.example" : "");
        test::add_value(sub->mutable_output(), std::string(branch) + "_y", {1, 4});
    }
    test::add_value(g.mutable_output(), "y", {1, 4});
    test::TempDir dir;
    auto path = test::write_model(dir, m);

    auto r = test::run_edgepack({"inspect", path.string(), "--json"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json rt = json::parse(r.out)["runtime"];
    CHECK(rt["runnable"] == false);
    REQUIRE(rt["unsupported_ops"].size() == 2);
    CHECK(rt["unsupported_ops"][0] == json{{"op_type", "Frobnicate"},
                                           {"domain", "com.example"},
                                           {"opset", 3},
                                           {"count", 2},
                                           {"nodes", {"frob_a", "frob_b"}}});
    CHECK(rt["unsupported_ops"][1] == json{{"op_type", "Blur"},
                                           {"domain", "com.unknown"},
                                           {"opset", 0},
                                           {"count", 1},
                                           {"nodes", {"blur"}}});
    auto text = test::run_edgepack({"inspect", path.string()});
    CHECK(text.exit_code == 0);
    CHECK_THAT(text.out, Catch::Contains("cannot run: com.example.Frobnicate (opset 3, 2 nodes), "
                                         "com.unknown.Blur (opset 0, 1 node)"));

    // The same list refuses the model at load, before any input is read: exit 2.
    auto run = test::run_edgepack({"run", path.string()});
    CHECK(run.exit_code == 2);
    CHECK_THAT(run.err,
               Catch::Contains("2 unsupported ops: com.example.Frobnicate (2 nodes), "
                               "com.unknown.Blur (1 node); first node 'frob_a' "
                               "(com.example.Frobnicate, opset com.example 3) and 1 more, node "
                               "'blur' (com.unknown.Blur, domain 'com.unknown' not imported)"));
}

TEST_CASE("inspect reads safetensors checkpoints", "[inspect][real]") {
    auto path = test::shared_models() / "stories260k/model.safetensors";
    EP_REQUIRE_FILE_OR_SKIP(path);
    auto r = test::run_edgepack({"inspect", path.string(), "--json", "--tensors"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json j = json::parse(r.out);
    CHECK(j["format"] == "safetensors");
    CHECK(j["nodes"] == 0);
    CHECK(j["parameters"]["count"].get<uint64_t>() >= 260032);
    CHECK(j["tensors"].size() == j["parameters"]["tensors"]);
}

TEST_CASE("inspect of a missing file exits 2 naming it", "[inspect]") {
    auto r = test::run_edgepack({"inspect", "/nonexistent/model.onnx"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err,
               Catch::Contains("/nonexistent/model.onnx") && Catch::Contains("no such file"));
}
