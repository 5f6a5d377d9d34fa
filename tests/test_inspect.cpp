#include <nlohmann/json.hpp>

#include "compressor/inspect.h"
#include "formats/model_io.h"
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
