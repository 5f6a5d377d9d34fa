// The cost model behind thread use (runtime-check/node_cost.h): a node's work is estimated
// from its input shapes, and a node below kParallelNodeCycles runs on one thread; outputs
// are bit-identical either way.
#include <cstring>

#include "compressor/dataset.h"
#include "formats/model_io.h"
#include "runtime-check/executor.h"
#include "runtime-check/node_cost.h"
#include "support.h"

using namespace ep;

namespace {

Tensor shaped(std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return make_f32_tensor("x", shape, std::vector<float>(static_cast<size_t>(n), 0.0f));
}

}  // namespace

TEST_CASE("the cost model counts a product's multiply-adds and an elementwise op's elements",
          "[runtime][threads]") {
    Node conv;
    conv.op_type = "Conv";
    conv.attributes.push_back(ints_attr("pads", {2, 2, 2, 2}));
    const Tensor x = shaped({1, 8, 14, 14}), w = shaped({16, 8, 5, 5});
    const Tensor* conv_in[] = {&x, &w};
    // 14 x 14 outputs x 16 channels x 8 x 25 taps = 627,200 multiply-adds, 8 per cycle.
    CHECK(rt::node_cycles(rt::node_cost_formula(conv), conv, conv_in) == 627200.0 / 8);
    CHECK_FALSE(rt::runs_serially(rt::node_cost_formula(conv), conv, conv_in));

    conv.attributes.push_back(ints_attr("strides", {2, 2}));  // a quarter of it
    CHECK(rt::node_cycles(rt::node_cost_formula(conv), conv, conv_in) == 627200.0 / 32);
    CHECK(rt::runs_serially(rt::node_cost_formula(conv), conv, conv_in));

    Node gemm;
    gemm.op_type = "Gemm";
    gemm.attributes.push_back(int_attr("transB", 1));
    const Tensor a = shaped({64, 256}), b = shaped({10, 256});
    const Tensor* gemm_in[] = {&a, &b};
    CHECK(rt::node_cycles(rt::node_cost_formula(gemm), gemm, gemm_in) == 64.0 * 256 * 10 / 8);

    Node relu;
    relu.op_type = "Relu";
    const Tensor big = shaped({64, 8, 28, 28}), small = shaped({1, 8, 28, 28});
    const Tensor* big_in[] = {&big};
    const Tensor* small_in[] = {&small};
    CHECK(rt::node_cycles(rt::node_cost_formula(relu), relu, big_in) == 2.0 * 64 * 8 * 28 * 28);
    CHECK_FALSE(rt::runs_serially(rt::node_cost_formula(relu), relu, big_in));
    CHECK(rt::runs_serially(rt::node_cost_formula(relu), relu, small_in));

    Node fused;  // the plan's fused Conv + activation counts as its Conv
    fused.domain = "ai.edgepack.fused";
    fused.op_type = "ConvActivation";
    CHECK(rt::node_cost_formula(fused) == rt::CostFormula::Conv);

    Node loop;  // no formula: never forced onto one thread
    loop.op_type = "Loop";
    CHECK(rt::node_cost_formula(loop) == rt::CostFormula::None);
    CHECK_FALSE(rt::runs_serially(rt::CostFormula::None, loop, small_in));
}

TEST_CASE("MNIST at 2 threads splits only the nodes with enough work, with the same bits",
          "[runtime][threads]") {
    const auto model_path = test::shared_models() / "mnist" / "mnist-cnn.onnx";
    const auto data = test::source_dir() / ".cache" / "data" / "mnist-test" / "batch_00.npz";
    EP_REQUIRE_FILE_OR_SKIP(model_path);
    EP_REQUIRE_FILE_OR_SKIP(data);
    const Tensor images = read_npz(data).at(0).second;  // real digits, [1000, 1, 28, 28]
    const Model model = load_model(model_path);
    rt::Executor one(model, {1}), two(model, {2});
    struct Expect {
        int64_t batch;
        uint64_t serial_nodes;
    };
    // The plan fuses each Conv with its Relu (ai.edgepack.fused.ConvActivation, costed as
    // the Conv): 9 nodes. Batch 1: the second Conv + Relu (3.6M multiply-adds) and the
    // first Gemm ([1, 3136] x [3136, 128]) are split; the first Conv + Relu (226K
    // multiply-adds), both pools, the Reshape, the last Relu and the last Gemm run on one
    // thread. Batch 64: only the last Relu and Gemm ([64, 128] x [128, 10]) stay on one.
    const Expect expect = GENERATE(Expect{1, 6}, Expect{64, 2});
    INFO("batch " << expect.batch);
    const int64_t pixels = 28 * 28;
    std::vector<float> values(images.values<float>().begin(),
                              images.values<float>().begin() + expect.batch * pixels);
    const Tensor input = make_f32_tensor("input", {expect.batch, 1, 28, 28}, values);
    const auto out1 = one.run({{"input", input}}), out2 = two.run({{"input", input}});
    REQUIRE(out1.size() == 1);
    REQUIRE(out2.size() == 1);
    const auto b1 = out1[0].second.data.bytes(), b2 = out2[0].second.data.bytes();
    REQUIRE(b1.size() == b2.size());
    CHECK(std::memcmp(b1.data(), b2.data(), b1.size()) == 0);
    CHECK(one.last_stats().serial_nodes == 0);
    INFO("nodes run " << two.last_stats().nodes_run);
    CHECK(two.last_stats().serial_nodes == expect.serial_nodes);
}
