#include <cstring>

#include "ir/checked.h"
#include "ir/ir.h"
#include "support.h"

using namespace ep;

TEST_CASE("dtype traits map ONNX codes and safetensors names both ways", "[ir]") {
    for (int i = 1; i < static_cast<int>(DType::Count_); ++i) {
        auto t = static_cast<DType>(i);
        INFO(dtype_name(t));
        if (traits(t).onnx_code) CHECK(dtype_from_onnx(traits(t).onnx_code) == t);
        if (!traits(t).safetensors_name.empty())
            CHECK(dtype_from_safetensors(traits(t).safetensors_name) == t);
        CHECK(dtype_from_name(dtype_name(t)) == t);
    }
    CHECK(dtype_from_onnx(1) == DType::F32);
    CHECK(dtype_from_onnx(16) == DType::BF16);
    CHECK(dtype_from_onnx(999) == std::nullopt);
    CHECK(storage_bytes(DType::I4, 7) == 4u);
    CHECK(storage_bytes(DType::F32, (1ull << 62)) == std::nullopt);
}

TEST_CASE("element counts reject negative dimensions and overflow", "[ir]") {
    std::vector<int64_t> ok{2, 3, 4}, negative{2, -1}, huge{1ll << 40, 1ll << 40};
    CHECK(checked_element_count(ok) == 24u);
    CHECK(checked_element_count(negative) == std::nullopt);
    CHECK(checked_element_count(huge) == std::nullopt);
}

TEST_CASE("tensor data is copied only when a pass changes it", "[ir]") {
    std::vector<float> v{1, 2, 3, 4};
    Tensor a = make_f32_tensor("w", {2, 2}, v);
    Tensor b = a;  // shares bytes
    CHECK(a.data.bytes().data() == b.data.bytes().data());
    b.mutable_values<float>()[0] = 5.0f;
    CHECK(a.values<float>()[0] == 1.0f);
    CHECK(b.values<float>()[0] == 5.0f);
    CHECK(a.data.bytes().data() != b.data.bytes().data());
}

TEST_CASE("check_consistent names the tensor whose bytes disagree with its shape", "[ir]") {
    std::vector<float> v{1, 2, 3};
    Tensor t = make_f32_tensor("layer.weight", {2, 2}, v);
    CHECK_THROWS_WITH(t.check_consistent(),
                      Catch::Contains("layer.weight") && Catch::Contains("needs 16 bytes"));
}

TEST_CASE("f16 and bf16 conversions round to nearest even", "[ir]") {
    for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f})
        CHECK(half_to_float(float_to_half(f)) == f);
    CHECK(float_to_half(1.0f + 1.0f / 2048) == 0x3C00);  // tie rounds to even
    CHECK(float_to_half(70000.0f) == 0x7C00);            // overflow to infinity
    CHECK(bf16_to_float(float_to_bf16(3.140625f)) == 3.140625f);
    CHECK(float_to_bf16(1.0f + 1.0f / 256) == 0x3F80);  // tie rounds to even
}

TEST_CASE("verify finds values used before they are produced", "[ir]") {
    Model m;
    m.graph.inputs.push_back({"x", std::nullopt, ""});
    Node relu;
    relu.op_type = "Relu";
    relu.inputs = {"y"};
    relu.outputs = {"z"};
    m.graph.nodes.push_back(relu);
    m.graph.outputs.push_back({"z", std::nullopt, ""});
    auto problems = verify(m);
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::Contains("'y'"));
    m.graph.nodes[0].inputs = {"x"};
    CHECK(verify(m).empty());
}
