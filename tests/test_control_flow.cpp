// Loop and Scan (runtime-check/ops/ops_control.cpp) against ONNX Runtime on the cases of
// scripts/xcheck/op_cases.py --group control (trip count and / or cond, early exit, zero
// trips, carried values that grow, If and Loop nested in the body, outer-scope values, Scan
// axes and directions, the opset-8 batch form); bit-identical results at 1, 2 and 3 threads
// on bodies whose MatMuls split over threads; the messages malformed nodes get.
#include <cstring>

#include "formats/model_io.h"
#include "op_cases.h"
#include "op_model.h"
#include "runtime-check/npy.h"
#include "support.h"

using namespace ep;
using Catch::Matchers::Contains;
using test::OneNode;

namespace {

Tensor scalar_i64(int64_t v) {
    Tensor t;
    t.dtype = DType::I64;
    std::vector<std::byte> b(sizeof v);
    std::memcpy(b.data(), &v, sizeof v);
    t.data = TensorData::owned(std::move(b));
    return t;
}

Tensor scalar_bool(bool v) {
    Tensor t;
    t.dtype = DType::Bool;
    t.data = TensorData::owned({std::byte{v ? uint8_t{1} : uint8_t{0}}});
    return t;
}

ValueInfo value(std::string name) {
    return ValueInfo{std::move(name), {}, {}};
}

Node node(std::string op, std::vector<std::string> in, std::vector<std::string> out) {
    Node n;
    n.name = op + "_" + out.at(0);
    n.op_type = std::move(op);
    n.inputs = std::move(in);
    n.outputs = std::move(out);
    return n;
}

Attribute graph_attr(std::string name, Graph g) {
    Attribute a;
    a.name = std::move(name);
    a.type = AttrType::Graph;
    a.graphs.push_back(std::move(g));
    return a;
}

// Loop(M, cond, x) whose body adds `step` (an outer initializer) to x and emits x as a
// scan output: x_final = x + M * step.
OneNode counting_loop() {
    Graph body;
    body.name = "body";
    body.inputs = {value("i"), value("c"), value("x_in")};
    body.nodes = {node("Identity", {"c"}, {"c_out"}), node("Add", {"x_in", "step"}, {"x_out"}),
                  node("Identity", {"x_out"}, {"y"})};
    body.outputs = {value("c_out"), value("x_out"), value("y")};
    OneNode spec;
    spec.op_type = "Loop";
    spec.opset = 16;
    spec.feeds = {
        {"M", scalar_i64(3)}, {"cond", scalar_bool(true)}, {"x", test::random_f32({2, 3}, 5)}};
    spec.constants = {{"step", test::random_f32({3}, 6)}};
    spec.inputs = {"M", "cond", "x"};
    spec.outputs = {"x_final", "ys"};
    spec.attributes = {graph_attr("body", std::move(body))};
    return spec;
}

}  // namespace

TEST_CASE("Loop and Scan match ONNX Runtime on random shapes", "[control][xcheck]") {
    CHECK(test::check_op_cases("control") >= 10);
}

TEST_CASE("Loop and Scan give the same bytes at 1, 2 and 3 threads", "[control][xcheck]") {
    test::TempDir dir;
    auto gen = test::run_oracle("op_cases.py", {dir.path().string(), "--group", "control"});
    INFO(gen.out << gen.err);
    REQUIRE(gen.exit_code == 0);
    // A Loop over x' = tanh(x W) with W 96 x 96 on 64 rows, and a Scan running a small RNN
    // on a batch of 32: the body's MatMuls split over threads.
    for (const char* name : {"loop_matmul_large", "scan_rnn_large"}) {
        INFO(name);
        auto c = dir.path() / name;
        auto meta = nlohmann::json::parse(test::read_file(c / "case.json"));
        rt::NamedTensors feeds;
        for (size_t i = 0; i < meta["inputs"].size(); ++i)
            feeds.emplace_back(meta["inputs"][i].get<std::string>(),
                               read_npy(c / ("input_" + std::to_string(i) + ".npy")));
        Model model = load_model(c / "model.onnx");
        rt::Executor one(model, rt::ExecOptions{1});
        rt::NamedTensors want = one.run(feeds);
        for (int threads : {2, 3}) {
            rt::Executor more(model, rt::ExecOptions{threads});
            rt::NamedTensors got = more.run(feeds);
            REQUIRE(got.size() == want.size());
            for (size_t i = 0; i < got.size(); ++i) {
                INFO("output " << got[i].first << " at " << threads << " threads");
                CHECK(test::same_bytes(got[i].second, want[i].second));
            }
        }
    }
}

TEST_CASE("Loop carries values, stacks scan outputs and reads outer-scope initializers",
          "[control]") {
    OneNode spec = counting_loop();
    std::vector<Tensor> out = test::run_node(spec, 1);
    REQUIRE(out.size() == 2);
    CHECK(out[1].shape == std::vector<int64_t>{3, 2, 3});
    auto x = spec.feeds[2].second.values<float>();
    auto step = spec.constants[0].second.values<float>();
    auto x_final = out[0].values<float>();
    auto ys = out[1].values<float>();
    for (size_t k = 0; k < 6; ++k) {
        float v = x[k];
        for (size_t it = 0; it < 3; ++it) {
            v += step[k % 3];
            CHECK(ys[it * 6 + k] == v);
        }
        CHECK(x_final[k] == v);
    }
}

TEST_CASE("a Loop with neither M nor cond is refused naming the node", "[control][bad-input]") {
    OneNode spec = counting_loop();
    spec.inputs = {"", "", "x"};
    try {
        (void)test::run_node(spec, 1);
        FAIL("expected a bad-input error");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::BadInput);
        CHECK_THAT(e.what(),
                   Contains("node Loop") && Contains("has neither a trip count M nor a condition"));
    }
}

TEST_CASE("a Loop body with the wrong number of outputs is refused before running",
          "[control][bad-input]") {
    OneNode spec = counting_loop();
    spec.attributes[0].graphs[0].outputs.pop_back();  // no scan output: 2 outputs, node names 2
    Model model = test::make_model(spec);
    CHECK_THROWS_WITH(rt::check_output_counts(model.graph),
                      Contains("Loop node 'Loop': body declares 2 outputs, the node names 2 "
                               "(the body's first output is cond)"));
    CHECK_THROWS_AS(rt::Executor(model, rt::ExecOptions{1}), InputError);
}

TEST_CASE("a Scan whose inputs differ in length is refused naming both", "[control][bad-input]") {
    Graph body;
    body.name = "body";
    body.inputs = {value("s"), value("a"), value("b")};
    body.nodes = {node("Add", {"s", "a"}, {"s1"}), node("Add", {"s1", "b"}, {"s_out"})};
    body.outputs = {value("s_out")};
    OneNode spec;
    spec.op_type = "Scan";
    spec.opset = 16;
    spec.feeds = {{"s0", test::random_f32({2}, 1)},
                  {"A", test::random_f32({4, 2}, 2)},
                  {"B", test::random_f32({3, 2}, 3)}};
    spec.inputs = {"s0", "A", "B"};
    spec.outputs = {"s_final"};
    spec.attributes = {graph_attr("body", std::move(body)), test::int_attr("num_scan_inputs", 2)};
    try {
        (void)test::run_node(spec, 1);
        FAIL("expected a bad-input error");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::BadInput);
        CHECK_THAT(e.what(), Contains("scan input 'B' has length 3 along axis 0, the first scan "
                                      "input 4"));
    }
}

TEST_CASE("a Loop scan output that changes shape between iterations is refused",
          "[control][bad-input]") {
    // The carried value grows by a row each iteration and is also the scan output.
    Graph body;
    body.name = "body";
    body.inputs = {value("i"), value("c"), value("x_in")};
    body.nodes = {node("Identity", {"c"}, {"c_out"}), node("Concat", {"x_in", "row"}, {"x_out"}),
                  node("Identity", {"x_out"}, {"y"})};
    body.nodes[1].attributes = {test::int_attr("axis", 0)};
    body.outputs = {value("c_out"), value("x_out"), value("y")};
    OneNode spec = counting_loop();
    spec.constants = {{"row", test::random_f32({1, 3}, 4)}};
    spec.feeds[2].second = test::random_f32({1, 3}, 5);
    spec.attributes = {graph_attr("body", std::move(body))};
    try {
        (void)test::run_node(spec, 1);
        FAIL("expected a bad-input error");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::BadInput);
        CHECK_THAT(e.what(), Contains("scan output 'y' is f32 [2, 3] in iteration 0 but f32 "
                                      "[3, 3] in iteration 1"));
    }
}
