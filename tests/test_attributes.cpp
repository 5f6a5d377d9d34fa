// Attributes of the wrong type are input errors, never silent defaults (ir.h Node::attr_*):
// a BatchNormalization whose epsilon was written as an int, a LeakyRelu whose alpha was.
#include <filesystem>
#include <vector>

#include "formats/model_io.h"
#include "ir/error.h"
#include "ir/ir.h"
#include "support.h"

using namespace ep;
namespace fs = std::filesystem;

namespace {

ValueInfo f32_value(std::string name, std::vector<int64_t> shape) {
    ValueType type;
    type.elem = DType::F32;
    std::vector<Dim> dims;
    for (int64_t d : shape) dims.push_back(Dim{d, {}, {}});
    type.shape = dims;
    return ValueInfo{std::move(name), type, {}};
}

Tensor filled(std::string name, std::vector<int64_t> shape, float v) {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    std::vector<float> values(n, v);
    return make_f32_tensor(std::move(name), std::move(shape), values);
}

// x [1, 2, 4, 4] -> Conv (1x1) -> BatchNormalization with `epsilon` -> y.
Model conv_bn(Attribute epsilon) {
    Model m;
    m.opset_imports.push_back({"", 17});
    m.graph.inputs.push_back(f32_value("x", {1, 2, 4, 4}));
    m.graph.outputs.push_back(f32_value("y", {1, 2, 4, 4}));
    m.graph.initializers.push_back(filled("w", {2, 2, 1, 1}, 0.5f));
    for (const char* p : {"scale", "bias", "mean", "var"})
        m.graph.initializers.push_back(filled(p, {2}, 1.0f));
    Node conv;
    conv.name = "conv";
    conv.op_type = "Conv";
    conv.inputs = {"x", "w"};
    conv.outputs = {"t"};
    Node bn;
    bn.name = "bn";
    bn.op_type = "BatchNormalization";
    bn.inputs = {"t", "scale", "bias", "mean", "var"};
    bn.outputs = {"y"};
    bn.attributes.push_back(std::move(epsilon));
    m.graph.nodes = {conv, bn};
    return m;
}

}  // namespace

TEST_CASE("Node::attr_* read the typed value and refuse another type, naming node and attribute",
          "[ir][attributes]") {
    Node n;
    n.name = "act";
    n.op_type = "LeakyRelu";
    n.attributes = {int_attr("alpha", 2), float_attr("beta", 0.25f), ints_attr("pads", {1, 2}),
                    string_attr("mode", "edge")};
    CHECK(n.attr_float("beta", 9.0f) == 0.25f);
    CHECK(n.attr_int("alpha", 9) == 2);
    CHECK(n.attr_ints("pads") == std::vector<int64_t>{1, 2});
    CHECK(n.attr_string("mode", "constant") == "edge");
    // Absent: the fallback.
    CHECK(n.attr_float("gamma", 0.5f) == 0.5f);
    CHECK(n.attr_int("axis", -1) == -1);
    CHECK(n.attr_ints("strides").empty());
    CHECK(n.attr_string("coordinate_transformation_mode", "half_pixel") == "half_pixel");
    // Present with another type: an InputError, not the fallback.
    CHECK_THROWS_MATCHES(n.attr_float("alpha", 0.01f), InputError,
                         Catch::Message("node 'act' (LeakyRelu): attribute 'alpha' is of type "
                                        "int, expected float"));
    CHECK_THROWS_AS(n.attr_int("beta", 0), InputError);
    CHECK_THROWS_AS(n.attr_ints("alpha"), InputError);
    CHECK_THROWS_AS(n.attr_string("pads", ""), InputError);
    CHECK(attr_type_name(AttrType::Floats) == "floats");
    CHECK(attr_type_from_name("graphs") == AttrType::Graphs);
    CHECK_FALSE(attr_type_from_name("graph_list").has_value());
}

TEST_CASE("compress: an int-typed float attribute in the model exits 2 naming node and attribute",
          "[ir][attributes][compress]") {
    test::TempDir dir;
    save_model(conv_bn(int_attr("epsilon", 0)), dir / "bad.onnx");
    test::write_file(dir / "r.json",
                     "{\"model\": \"bad.onnx\", \"passes\": [{\"pass\": "
                     "\"fold-batchnorm\"}], \"output\": \"out.onnx\"}");
    for (bool dry_run : {false, true}) {
        std::vector<std::string> args{"compress", (dir / "r.json").string()};
        if (dry_run) args.push_back("--dry-run");
        auto r = test::run_edgepack(args);
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains("node 'bn' (BatchNormalization): attribute 'epsilon' "
                                          "is of type int, expected float"));
        CHECK_FALSE(fs::exists(dir / "out.onnx"));
    }
    // The same model with a float epsilon folds (the test model itself is sound).
    save_model(conv_bn(float_attr("epsilon", 1e-5f)), dir / "bad.onnx");
    auto ok = test::run_edgepack({"compress", (dir / "r.json").string()});
    INFO(ok.err);
    CHECK(ok.exit_code == 0);
    CHECK(fs::exists(dir / "out.onnx"));
}

TEST_CASE("run: a LeakyRelu whose alpha is an int exits 2 naming node and attribute",
          "[ir][attributes][run]") {
    test::TempDir dir;
    Model m;
    m.opset_imports.push_back({"", 17});
    m.graph.inputs.push_back(f32_value("x", {2, 3}));
    m.graph.outputs.push_back(f32_value("y", {2, 3}));
    Node act;
    act.name = "act";
    act.op_type = "LeakyRelu";
    act.inputs = {"x"};
    act.outputs = {"y"};
    act.attributes = {int_attr("alpha", 1)};
    m.graph.nodes = {act};
    save_model(m, dir / "leaky.onnx");
    auto r =
        test::run_edgepack({"run", (dir / "leaky.onnx").string(), "--samples", "1", "--quiet"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("node 'act' (LeakyRelu): attribute 'alpha' is of type int, "
                                      "expected float"));
}
