// The executor runs models whose initializers are quantized (ir/encoding.h):
// whatever kernel reads an encoded weight, natively or through the dequantized copy made
// when the plan is compiled, the outputs equal those of the float model built from
// dequantize_tensor.
#include <cstring>

#include "exact_grid.h"
#include "op_model.h"
#include "runtime-check/executor.h"
#include "support.h"

using namespace ep;
using ep::test::random_f32;

namespace {

Node node_of(const char* op, std::vector<std::string> in, std::vector<std::string> out,
             std::vector<Attribute> attrs = {}) {
    Node n;
    n.name = op;
    n.op_type = op;
    n.inputs = std::move(in);
    n.outputs = std::move(out);
    n.attributes = std::move(attrs);
    return n;
}

Tensor named(Tensor t, std::string name) {
    t.name = std::move(name);
    return t;
}

Tensor dequantized(const Tensor& q) {
    auto values = dequantize_tensor(q);
    return make_f32_tensor(q.name, q.shape, values);
}

// ids -> Gather(table [V,D]) -> MatMul(W1 [D,H]) -> Gemm(W2 [N,H], transB=1, C) -> y.
Model mlp(const Tensor& table, const Tensor& w1, const Tensor& w2, const Tensor& c) {
    Model m;
    m.opset_imports = {{"", 17}};
    for (const Tensor* t : {&table, &w1, &w2, &c}) m.graph.initializers.push_back(*t);
    m.graph.inputs.push_back({"ids", std::nullopt, ""});
    m.graph.nodes.push_back(node_of("Gather", {"table", "ids"}, {"e"}));
    m.graph.nodes.push_back(node_of("MatMul", {"e", "w1"}, {"h"}));
    m.graph.nodes.push_back(node_of("Gemm", {"h", "w2", "c"}, {"y"},
                                    {test::int_attr("transB", 1), test::float_attr("alpha", 0.5f),
                                     test::float_attr("beta", 2.0f)}));
    m.graph.outputs.push_back({"y", std::nullopt, ""});
    return m;
}

Tensor run_y(Model m, const Tensor& ids, int threads) {
    rt::Executor exec(std::move(m), rt::ExecOptions{threads});
    auto out = exec.run({{"ids", ids}});
    return out.at(0).second;
}

}  // namespace

TEST_CASE("encoded initializers run as their dequantized floats", "[qexec]") {
    const int64_t V = 11, D = 96, H = 40, N = 7;
    std::vector<int64_t> idv{3, 0, 10, 3, 7};
    Tensor ids;
    ids.dtype = DType::I64;
    ids.shape = {5};
    ids.data = TensorData::owned(
        std::vector<std::byte>(reinterpret_cast<const std::byte*>(idv.data()),
                               reinterpret_cast<const std::byte*>(idv.data() + idv.size())));
    const Tensor c = named(random_f32({N}, 4), "c");
    for (const char* scheme : {"int8c", "int4g32", "int4g32a", "int8g64", "int8g32a-bf16"}) {
        CAPTURE(scheme);
        Encoding e1 = *encoding_from_name(scheme);  // [D,H] MatMul weight: axis 0
        e1.axis = 0;
        Encoding e = *encoding_from_name(scheme);  // tables and transB weights: axis 1
        Tensor table = quantize_tensor_rtn(named(random_f32({V, D}, 1), "table"), e);
        Tensor w1 = quantize_tensor_rtn(named(random_f32({D, H}, 2), "w1"), e1);
        Tensor w2 = quantize_tensor_rtn(named(random_f32({N, H}, 3), "w2"), e);
        REQUIRE(table.is_encoded());
        REQUIRE(w1.encoding.axis == 0);
        Tensor expect = run_y(mlp(dequantized(table), dequantized(w1), dequantized(w2), c), ids, 1);
        for (int threads : {1, 2, 3}) {
            CAPTURE(threads);
            Tensor got = run_y(mlp(table, w1, w2, c), ids, threads);
            REQUIRE(got.shape == std::vector<int64_t>{5, N});
            auto g = got.values<float>();
            auto x = expect.values<float>();
            for (size_t i = 0; i < g.size(); ++i) {
                CAPTURE(i);
                REQUIRE(g[i] == Approx(x[i]).epsilon(1e-5).margin(1e-5));
            }
        }
    }
}

TEST_CASE("encoded grid-valued initializers give the exact outputs, computed without edgepack",
          "[qexec]") {
    // The case above compares with the runtime on dequantize_tensor's floats; here the
    // weights are on exact_grid.h's grids (quantized without error) and the expected y is
    // computed in double from the integers: exact, as every float sum on the way is.
    using namespace ep::test;
    const int64_t V = 11, D = 96, H = 40, N = 7;
    const std::vector<int64_t> idv{3, 0, 10, 3, 7};
    Tensor ids;
    ids.dtype = DType::I64;
    ids.shape = {5};
    ids.data = TensorData::owned(
        std::vector<std::byte>(reinterpret_cast<const std::byte*>(idv.data()),
                               reinterpret_cast<const std::byte*>(idv.data() + idv.size())));
    std::vector<float> cv(N);
    for (int64_t j = 0; j < N; ++j) cv[static_cast<size_t>(j)] = 0.5f * static_cast<float>(j - 3);
    const Tensor c = make_f32_tensor("c", {N}, cv);
    // int4 only: with codes up to 8, |y| / (1/8) < 2^24 holds through two layers (int8's
    // 127 would not; test_qgemm.cpp covers int8 one layer at a time).
    for (const char* scheme : {"int4g32", "int4g32a", "int4g64", "int4g128a-bf16"}) {
        CAPTURE(scheme);
        Encoding e1 = *encoding_from_name(scheme);  // [D,H] MatMul weight: axis 0
        e1.axis = 0;
        Encoding e = *encoding_from_name(scheme);  // tables and transB weights: axis 1
        // Groups run along the reduction axis: D for the table and w1, H for w2.
        const auto table = transposed(scaled(grid_weight_ints(e, D, V, 21), kGridStepW), D, V);
        const auto w1 = scaled(grid_weight_ints(e1, D, H, 22), kGridStepW);
        const auto w2 = transposed(scaled(grid_weight_ints(e, H, N, 23), kGridStepW), H, N);
        Model m = mlp(quantize_tensor_rtn(make_f32_tensor("table", {V, D}, table), e),
                      quantize_tensor_rtn(make_f32_tensor("w1", {D, H}, w1), e1),
                      quantize_tensor_rtn(make_f32_tensor("w2", {N, H}, w2), e), c);
        // y = 0.5 * (table[ids] w1) w2^T + 2 c, in double.
        std::vector<float> want;
        for (int64_t id : idv) {
            std::vector<double> h(H, 0.0);
            for (int64_t j = 0; j < H; ++j)
                for (int64_t d = 0; d < D; ++d)
                    h[static_cast<size_t>(j)] +=
                        static_cast<double>(table[id * D + d]) * w1[static_cast<size_t>(d * H + j)];
            for (int64_t n = 0; n < N; ++n) {
                double y = 0.0;
                for (int64_t j = 0; j < H; ++j)
                    y += h[static_cast<size_t>(j)] * w2[static_cast<size_t>(n * H + j)];
                want.push_back(static_cast<float>(0.5 * y + 2.0 * cv[static_cast<size_t>(n)]));
            }
        }
        for (int threads : {1, 2}) {
            CAPTURE(threads);
            Tensor got = run_y(m, ids, threads);
            auto g = got.values<float>();
            REQUIRE(std::vector<float>(g.begin(), g.end()) == want);
        }
    }
}

TEST_CASE("an encoded initializer feeding ops without native support is dequantized once",
          "[qexec]") {
    // The same encoded tensor read by Add twice and by Relu: all see the same floats.
    Encoding e = *encoding_from_name("int4g32");
    Tensor w = quantize_tensor_rtn(named(random_f32({3, 64}, 9), "w"), e);
    Model m;
    m.opset_imports = {{"", 17}};
    m.graph.initializers.push_back(w);
    m.graph.inputs.push_back({"x", std::nullopt, ""});
    m.graph.nodes.push_back(node_of("Add", {"x", "w"}, {"a"}));
    m.graph.nodes.push_back(node_of("Relu", {"w"}, {"r"}));
    m.graph.nodes.push_back(node_of("Add", {"a", "r"}, {"y"}));
    m.graph.outputs.push_back({"y", std::nullopt, ""});
    rt::Executor exec(m, rt::ExecOptions{2});
    Tensor x = random_f32({3, 64}, 10);
    auto out = exec.run({{"x", x}});
    auto deq = dequantize_tensor(w);
    auto xv = x.values<float>();
    auto y = out.at(0).second.values<float>();
    REQUIRE(y.size() == deq.size());
    for (size_t i = 0; i < y.size(); ++i) {
        float expect = (xv[i] + deq[i]) + std::max(deq[i], 0.0f);
        REQUIRE(y[i] == expect);
    }
}

TEST_CASE("If branches read encoded initializers of the outer graph", "[qexec]") {
    // then: MatMul(x, w) (native); else: Add(x, w) (through a dequantized copy).
    auto build = [](const Tensor& w) {
        Model m;
        m.opset_imports = {{"", 17}};
        m.graph.initializers.push_back(w);
        m.graph.inputs.push_back({"x", std::nullopt, ""});
        ValueInfo cond{"cond", ValueType{}, ""};
        cond.type->elem = DType::Bool;
        cond.type->shape = std::vector<Dim>{};
        m.graph.inputs.push_back(cond);
        Graph then_g, else_g;
        then_g.name = "then";
        then_g.nodes.push_back(node_of("MatMul", {"x", "w"}, {"t_out"}));
        then_g.outputs.push_back({"t_out", std::nullopt, ""});
        else_g.name = "else";
        else_g.nodes.push_back(node_of("Add", {"x", "w"}, {"e_out"}));
        else_g.outputs.push_back({"e_out", std::nullopt, ""});
        Node iff = node_of("If", {"cond"}, {"y"});
        Attribute a_then, a_else;
        a_then.name = "then_branch";
        a_then.type = AttrType::Graph;
        a_then.graphs.push_back(then_g);
        a_else.name = "else_branch";
        a_else.type = AttrType::Graph;
        a_else.graphs.push_back(else_g);
        iff.attributes = {a_then, a_else};
        m.graph.nodes.push_back(iff);
        m.graph.outputs.push_back({"y", std::nullopt, ""});
        return m;
    };
    Encoding e = *encoding_from_name("int8g32a");
    e.axis = 0;
    Tensor w = quantize_tensor_rtn(named(random_f32({64, 64}, 21), "w"), e);
    Tensor x = random_f32({64, 64}, 22);
    for (bool c : {true, false}) {
        Tensor cond;
        cond.dtype = DType::Bool;
        cond.data = TensorData::owned({std::byte{c ? uint8_t{1} : uint8_t{0}}});
        rt::Executor qe(build(w), rt::ExecOptions{2});
        rt::Executor fe(build(dequantized(w)), rt::ExecOptions{2});
        Tensor got = qe.run({{"x", x}, {"cond", cond}}).at(0).second;
        Tensor ref = fe.run({{"x", x}, {"cond", cond}}).at(0).second;
        auto g = got.values<float>();
        auto r = ref.values<float>();
        REQUIRE(g.size() == r.size());
        for (size_t i = 0; i < g.size(); ++i) REQUIRE(g[i] == Approx(r[i]).margin(1e-4));
    }
}
