// Executor behaviour that no single kernel shows: If branches reading outer values,
// freeing after last use, fetching intermediates, input checks.
#include "runtime-check/executor.h"
#include "support.h"

using namespace ep;

namespace {

Node make_node(const char* op, std::vector<std::string> in, std::vector<std::string> out) {
    Node n;
    n.op_type = op;
    n.inputs = std::move(in);
    n.outputs = std::move(out);
    return n;
}

ValueInfo f32_input(const char* name, std::vector<int64_t> dims) {
    ValueType t;
    t.elem = DType::F32;
    std::vector<Dim> shape;
    for (int64_t d : dims) shape.push_back({d, "", ""});
    t.shape = shape;
    return {name, t, ""};
}

// y = If(cond) then (x + 1) else (x * 2), where both branches capture x and the
// constant from the outer graph.
Model if_model() {
    Model m;
    m.opset_imports = {{"", 17}};
    std::vector<float> one{1.0f}, two{2.0f};
    m.graph.initializers.push_back(make_f32_tensor("one", {1}, one));
    m.graph.initializers.push_back(make_f32_tensor("two", {1}, two));
    m.graph.inputs.push_back(f32_input("x", {3}));
    ValueInfo cond{"cond", ValueType{}, ""};
    cond.type->elem = DType::Bool;
    cond.type->shape = std::vector<Dim>{};
    m.graph.inputs.push_back(cond);
    m.graph.nodes.push_back(make_node("Relu", {"x"}, {"xr"}));
    Graph then_g, else_g;
    then_g.name = "then";
    then_g.nodes.push_back(make_node("Add", {"xr", "one"}, {"t_out"}));
    then_g.outputs.push_back({"t_out", std::nullopt, ""});
    else_g.name = "else";
    else_g.nodes.push_back(make_node("Mul", {"xr", "two"}, {"e_out"}));
    else_g.outputs.push_back({"e_out", std::nullopt, ""});
    Node iff = make_node("If", {"cond"}, {"y"});
    Attribute a_then, a_else;
    a_then.name = "then_branch";
    a_then.type = AttrType::Graph;
    a_then.graphs.push_back(then_g);
    a_else.name = "else_branch";
    a_else.type = AttrType::Graph;
    a_else.graphs.push_back(else_g);
    iff.attributes = {a_then, a_else};
    m.graph.nodes.push_back(iff);
    m.graph.nodes.push_back(make_node("Neg", {"y"}, {"z"}));
    m.graph.outputs.push_back({"z", std::nullopt, ""});
    return m;
}

Tensor bool_scalar(bool v) {
    Tensor t;
    t.dtype = DType::Bool;
    t.data = TensorData::owned({std::byte{static_cast<unsigned char>(v)}});
    return t;
}

}  // namespace

TEST_CASE("If branches read values of the enclosing graph", "[runtime][executor]") {
    rt::Executor exec(if_model(), {1});
    std::vector<float> x{-1.0f, 2.0f, 3.0f};
    for (bool c : {true, false}) {
        auto out = exec.run({{"x", make_f32_tensor("x", {3}, x)}, {"cond", bool_scalar(c)}});
        REQUIRE(out.size() == 1);
        auto z = out[0].second.to_floats();
        std::vector<float> want =
            c ? std::vector<float>{-1, -3, -4} : std::vector<float>{0, -4, -6};
        CHECK(z == want);
    }
}

TEST_CASE("fetch returns intermediates that would otherwise be freed", "[runtime][executor]") {
    rt::Executor exec(if_model(), {1});
    std::vector<float> x{-1.0f, 2.0f, 3.0f};
    auto out = exec.run({{"x", make_f32_tensor("x", {3}, x)}, {"cond", bool_scalar(true)}},
                        {"xr", "y", "nope"});
    REQUIRE(out.size() == 3);
    CHECK(out[1].first == "xr");
    CHECK(out[1].second.to_floats() == std::vector<float>{0, 2, 3});
    CHECK(out[2].first == "y");
    CHECK(out[2].second.to_floats() == std::vector<float>{1, 3, 4});  // then: xr + 1
    CHECK(out[0].first == "z");
    CHECK(out[0].second.to_floats() == std::vector<float>{-1, -3, -4});
}

TEST_CASE("inputs are checked against the declared types before running", "[runtime][executor]") {
    rt::Executor exec(if_model(), {1});
    std::vector<float> four{1, 2, 3, 4};
    CHECK_THROWS_WITH(
        exec.run({{"x", make_f32_tensor("x", {4}, four)}, {"cond", bool_scalar(true)}}),
        Catch::Contains("input 'x': dimension 0 must be 3"));
    CHECK_THROWS_WITH(exec.run({{"cond", bool_scalar(true)}}),
                      Catch::Contains("input 'x' is required"));
    CHECK_THROWS_WITH(exec.run({{"q", bool_scalar(true)}}), Catch::Contains("no such input"));
}

TEST_CASE("nodes out of order are run in dependency order", "[runtime][executor]") {
    Model m;
    m.opset_imports = {{"", 17}};
    m.graph.inputs.push_back(f32_input("x", {2}));
    m.graph.nodes.push_back(make_node("Neg", {"a"}, {"b"}));
    m.graph.nodes.push_back(make_node("Relu", {"x"}, {"a"}));
    m.graph.outputs.push_back({"b", std::nullopt, ""});
    rt::Executor exec(m, {1});
    std::vector<float> x{-1.0f, 5.0f};
    auto out = exec.run({{"x", make_f32_tensor("x", {2}, x)}});
    CHECK(out[0].second.to_floats() == std::vector<float>{0, -5});
}
