// promote-constants on tiny models built in C++: every Constant form, what it keeps and
// why, and Constants inside subgraphs.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <sstream>

#include "compressor/pass_manager.h"
#include "compressor/recipe.h"
#include "ir/checked.h"
#include "pass_model.h"
#include "passes/registry.h"
#include "passes/selector.h"
#include "support.h"

using namespace ep;
using namespace ep::test;

namespace {

Node constant_node(const std::string& out, Attribute a) {
    Node n = make_node("Constant", "", {}, {out});
    n.attributes.push_back(std::move(a));
    return n;
}

}  // namespace

TEST_CASE("promote-constants turns every Constant form into an initializer",
          "[passes][promote-constants]") {
    Model model;
    model.graph.outputs.push_back(value("sum"));
    Attribute tensor_attr;
    tensor_attr.name = "value";
    tensor_attr.type = AttrType::Tensor;
    std::vector<float> wv{1, 2, 3, 4, 5, 6};
    tensor_attr.tensors.push_back(make_f32_tensor("ignored_name", {2, 3}, wv));
    model.graph.nodes.push_back(constant_node("w", tensor_attr));
    model.graph.nodes.push_back(constant_node("f", float_attr("value_float", 2.5f)));
    Attribute floats;
    floats.name = "value_floats";
    floats.type = AttrType::Floats;
    floats.floats = {1.5f, -1.5f};
    model.graph.nodes.push_back(constant_node("fs", floats));
    model.graph.nodes.push_back(constant_node("i", int_attr("value_int", -7)));
    model.graph.nodes.push_back(constant_node("is", ints_attr("value_ints", {3, 4, 5})));
    Attribute strs;
    strs.name = "value_strings";
    strs.type = AttrType::Strings;
    strs.strings = {"a", "bc"};
    model.graph.nodes.push_back(constant_node("ss", strs));
    model.graph.nodes.push_back(
        make_node("Sum", "sum", {"w", "f", "fs", "i", "is", "ss"}, {"sum"}));

    auto result = run_pass("promote-constants", model);
    CHECK(result.changed);
    CHECK(result.rewrites == 6);
    REQUIRE(model.graph.nodes.size() == 1);
    CHECK(model.graph.nodes[0].inputs == std::vector<std::string>{"w", "f", "fs", "i", "is", "ss"});
    CHECK(verify(model).empty());
    const Tensor* w = model.graph.find_initializer("w");
    REQUIRE(w);
    CHECK(w->shape == std::vector<int64_t>{2, 3});
    CHECK(w->to_floats() == wv);
    const Tensor* f = model.graph.find_initializer("f");
    CHECK(f->shape.empty());
    CHECK(f->to_floats() == std::vector<float>{2.5f});
    CHECK(model.graph.find_initializer("fs")->to_floats() == std::vector<float>{1.5f, -1.5f});
    const Tensor* i = model.graph.find_initializer("i");
    CHECK(i->dtype == DType::I64);
    CHECK(i->shape.empty());
    CHECK(i->values<int64_t>()[0] == -7);
    const Tensor* is = model.graph.find_initializer("is");
    CHECK(is->shape == std::vector<int64_t>{3});
    CHECK(std::vector<int64_t>(is->values<int64_t>().begin(), is->values<int64_t>().end()) ==
          std::vector<int64_t>{3, 4, 5});
    const Tensor* ss = model.graph.find_initializer("ss");
    CHECK(ss->dtype == DType::String);
    CHECK(ss->strings == std::vector<std::string>{"a", "bc"});
}

TEST_CASE("promote-constants keeps small, excluded and graph-output constants, with reasons",
          "[passes][promote-constants]") {
    Model model;
    std::vector<float> big(16, 1.0f), small(3, 2.0f);
    auto tensor_attr = [](Tensor t) {
        Attribute a;
        a.name = "value";
        a.type = AttrType::Tensor;
        a.tensors.push_back(std::move(t));
        return a;
    };
    model.graph.nodes.push_back(constant_node("big", tensor_attr(make_f32_tensor("", {16}, big))));
    model.graph.nodes.push_back(
        constant_node("small", tensor_attr(make_f32_tensor("", {3}, small))));
    model.graph.nodes.push_back(
        constant_node("big.skip", tensor_attr(make_f32_tensor("", {16}, big))));
    model.graph.nodes.push_back(constant_node("out", tensor_attr(make_f32_tensor("", {16}, big))));
    Attribute sparse;
    sparse.name = "sparse_value";
    sparse.type = AttrType::SparseTensor;
    sparse.opaque.push_back("");
    model.graph.nodes.push_back(constant_node("sp", sparse));
    model.graph.nodes.push_back(make_node("Sum", "sum", {"big", "small", "big.skip", "sp"}, {"s"}));
    model.graph.outputs.push_back(value("s"));
    model.graph.outputs.push_back(value("out"));

    auto plan_pass = create_pass("promote-constants");
    plan_pass->configure({{"min_elements", 4}, {"exclude", {"*.skip"}}});
    auto before = fingerprint(model);
    auto lines = plan_pass->plan(model);
    CHECK(fingerprint(model) == before);
    REQUIRE(lines.size() == 5);
    CHECK_THAT(lines[0], Catch::Contains("promote 'big' (f32 [16]) to an initializer"));

    auto result =
        run_pass("promote-constants", model, {{"min_elements", 4}, {"exclude", {"*.skip"}}});
    INFO(skips_text(result));
    CHECK(result.rewrites == 1);
    CHECK(model.graph.find_initializer("big") != nullptr);
    CHECK(has_skip(result, "small", "fewer than min_elements (4) elements"));
    CHECK(has_skip(result, "big.skip", "not selected by include/exclude"));
    CHECK(has_skip(result, "out", "is a graph output"));
    CHECK(has_skip(result, "sp", "sparse_value"));
    CHECK(result.skipped.size() == 4);
    CHECK(count_nodes(model, "Constant") == 4);
    CHECK(verify(model).empty());
}

TEST_CASE("promote-constants promotes subgraph Constants into the subgraph's initializers",
          "[passes][promote-constants]") {
    Model model;
    model.graph.inputs.push_back(value("cond"));
    Graph body;
    body.name = "then";
    Attribute v;
    v.name = "value_floats";
    v.type = AttrType::Floats;
    v.floats = {1, 2};
    body.nodes.push_back(constant_node("k", v));
    body.nodes.push_back(make_node("Identity", "id", {"k"}, {"then_out"}));
    body.outputs.push_back(value("then_out"));
    Node if_node = make_node("If", "if", {"cond"}, {"y"});
    Attribute branch;
    branch.name = "then_branch";
    branch.type = AttrType::Graph;
    branch.graphs.push_back(body);
    if_node.attributes.push_back(branch);
    branch.name = "else_branch";
    if_node.attributes.push_back(branch);
    model.graph.nodes.push_back(if_node);
    model.graph.outputs.push_back(value("y"));

    auto result = run_pass("promote-constants", model);
    CHECK(result.rewrites == 2);
    for (const auto& a : model.graph.nodes[0].attributes) {
        const Graph& g = a.graphs[0];
        CHECK(g.nodes.size() == 1);
        REQUIRE(g.find_initializer("k") != nullptr);
        CHECK(g.find_initializer("k")->to_floats() == std::vector<float>{1, 2});
    }
    CHECK(model.graph.initializers.empty());
    CHECK(verify(model).empty());
}
