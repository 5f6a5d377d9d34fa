// The int8-activation kernel (ExecOptions::int8_activations, runtime-check/kernels/qgemv_i8.cpp),
// through the executor: its output equals, bit for bit, the definition written out here
// (activations quantized per 32 elements, exact int32 dot products with the stored codes,
// then the documented float steps), for every int4 scheme, awkward sizes, MatMul and Gemm,
// and 1 / 2 / 3 threads (a NaN activation included: it is skipped by max|x| and gets code 0).
// Tagged [kernels], so ctest runs it again with EDGEPACK_ISA=baseline (the portable code) and it
// must give the same bits there too.
// The definition follows the kernel's steps (its order of float operations included), so
// it pins the bits but cannot tell a wrong step that both share: on weights and activations
// whose quantization is exact (exact_grid.h) both paths must give the integer product.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "exact_grid.h"
#include "op_model.h"
#include "runtime-check/executor.h"
#include "support.h"

using namespace ep;
using ep::test::OneNode;
using ep::test::random_f32;
using ep::test::run_node;
using ep::test::same_bytes;

namespace {

rt::ExecOptions int8_options(int threads) {
    rt::ExecOptions o;
    o.threads = threads;
    o.int8_activations = true;
    return o;
}

// Y = A W^T by the definition, with W's stored matrix (rows = output channels) `n` x `k`.
std::vector<float> by_definition(const Tensor& w, const std::vector<float>& a, int64_t m, int64_t n,
                                 int64_t k) {
    const Encoding& e = w.encoding;
    const auto data = w.data.bytes();
    const int64_t subs = (k + 31) / 32;
    std::vector<float> y(static_cast<size_t>(m * n));
    for (int64_t i = 0; i < m; ++i) {
        std::vector<int> q(static_cast<size_t>(subs * 32), 0);
        std::vector<float> d(static_cast<size_t>(subs));
        for (int64_t b = 0; b < subs; ++b) {
            float amax = 0.0f;
            for (int64_t j = b * 32; j < std::min(k, b * 32 + 32); ++j)
                amax = std::max(amax, std::fabs(a[static_cast<size_t>(i * k + j)]));
            const float db = amax / 127.0f, inv = db > 0.0f ? 1.0f / db : 0.0f;
            d[static_cast<size_t>(b)] = db;
            for (int64_t j = b * 32; j < std::min(k, b * 32 + 32); ++j) {
                float v = a[static_cast<size_t>(i * k + j)] * inv;
                if (std::isnan(v)) v = 0.0f;
                q[static_cast<size_t>(j)] =
                    static_cast<int>(std::clamp(std::nearbyint(v), -127.0f, 127.0f));
            }
        }
        for (int64_t r = 0; r < n; ++r) {
            float acc[2] = {0.0f, 0.0f};
            for (int64_t b = 0; b < subs; ++b) {
                const QParams p = row_qparams(e, data, n, k, r, b * 32 / e.group);
                const bool asym = !traits(e.scheme).symmetric;
                int32_t dot = 0;
                for (int64_t j = b * 32; j < std::min(k, b * 32 + 32); ++j)
                    dot += (row_code(e, data, n, k, r, j) - (asym ? p.zero : 0)) *
                           q[static_cast<size_t>(j)];
                const float scale = p.scale * d[static_cast<size_t>(b)];
                acc[b & 1] = std::fma(static_cast<float>(dot), scale, acc[b & 1]);
            }
            y[static_cast<size_t>(i * n + r)] = acc[0] + acc[1];
        }
    }
    return y;
}

Tensor quantized(Tensor w, const char* scheme, uint8_t axis) {
    return ep::test::quantized_rtn(std::move(w), "w", scheme, axis);
}

}  // namespace

TEST_CASE("int8 activations: MatMul and Gemm equal the definition bit for bit on any thread count",
          "[kernels][qgemm][int8act]") {
    uint32_t seed = 7;
    for (const char* scheme : {"int4g32", "int4g64a", "int4g128", "int4g32a-bf16", "int4g128a"})
        for (int64_t k : {32, 72, 200, 544})
            for (int64_t n : {1, 15, 16, 17, 40}) {
                const int64_t m = 1 + static_cast<int64_t>(seed % 6);
                CAPTURE(scheme, m, k, n);
                Tensor a = random_f32({m, k}, seed++);
                if (k == 72) a.mutable_values<float>()[5] = NAN;  // ignored, and its code is 0
                std::vector<float> av(a.values<float>().begin(), a.values<float>().end());
                // MatMul: W [K, N] encoded along axis 0, stored as N rows of K.
                Tensor wm = quantized(random_f32({k, n}, seed++), scheme, 0);
                OneNode mm{"MatMul", "", 17, {{"a", a}}, {{"w", wm}}, {"a", "w"}};
                Tensor got = run_node(mm, int8_options(1)).at(0);
                const auto want = by_definition(wm, av, m, n, k);
                auto g = got.values<float>();
                REQUIRE(g.size() == want.size());
                for (size_t i = 0; i < want.size(); ++i) {
                    CAPTURE(i);
                    REQUIRE(std::memcmp(&g[i], &want[i], 4) == 0);
                }
                for (int threads : {2, 3})
                    REQUIRE(same_bytes(run_node(mm, int8_options(threads)).at(0), got));
                // Gemm transB = 1: W [N, K] encoded along axis 1.
                Tensor wg = quantized(random_f32({n, k}, seed++), scheme, 1);
                OneNode gm{"Gemm", "", 13, {{"a", a}}, {{"w", wg}}, {"a", "w"}};
                gm.attributes.push_back(ep::test::int_attr("transB", 1));
                Tensor gg = run_node(gm, int8_options(2)).at(0);
                const auto want_g = by_definition(wg, av, m, n, k);
                auto gv = gg.values<float>();
                for (size_t i = 0; i < want_g.size(); ++i)
                    REQUIRE(std::memcmp(&gv[i], &want_g[i], 4) == 0);
            }
}

TEST_CASE("int8 activations cost about half a percent against float activations",
          "[kernels][qgemm][int8act]") {
    Tensor w = quantized(random_f32({1024, 96}, 3), "int4g32", 0);
    Tensor a = random_f32({2, 1024}, 4);
    OneNode mm{"MatMul", "", 17, {{"a", a}}, {{"w", w}}, {"a", "w"}};
    Tensor f = run_node(mm, 1).at(0);
    Tensor q = run_node(mm, int8_options(1)).at(0);
    double diff = 0, mag = 0;
    for (size_t i = 0; i < f.values<float>().size(); ++i) {
        diff = std::max(
            diff, std::fabs(static_cast<double>(q.values<float>()[i]) - f.values<float>()[i]));
        mag = std::max(mag, std::fabs(static_cast<double>(f.values<float>()[i])));
    }
    CAPTURE(diff, mag);
    REQUIRE(diff > 0.0);  // it does quantize the activations
    REQUIRE(diff / mag < 1.5e-2);
}

TEST_CASE("int8 activations leave int8 weights on the float-activation kernel",
          "[kernels][qgemm][int8act]") {
    for (const char* scheme : {"int8c", "int8g32", "int8g64a"}) {
        CAPTURE(scheme);
        Tensor w = quantized(random_f32({96, 24}, 5), scheme, 0);
        Tensor a = random_f32({3, 96}, 6);
        OneNode mm{"MatMul", "", 17, {{"a", a}}, {{"w", w}}, {"a", "w"}};
        REQUIRE(same_bytes(run_node(mm, int8_options(1)).at(0), run_node(mm, 1).at(0)));
    }
}

TEST_CASE("int8 activations: two Gemm layers in one model each use their own weight",
          "[kernels][qgemm][int8act]") {
    // The Gemm kernel works on a copy of its weight's Tensor: the packed weights must not
    // be confused between layers (they were keyed by that copy's address once).
    const int64_t m = 3, k = 96, h = 40, n = 10;
    Tensor a = random_f32({m, k}, 11);
    Tensor w1 = quantized(random_f32({h, k}, 12), "int4g32", 1);
    Tensor w2 = quantized(random_f32({n, h}, 13), "int4g32", 1);
    OneNode g1{"Gemm", "", 13, {{"a", a}}, {{"w1", w1}}, {"a", "w1"}, {"h"}};
    g1.attributes.push_back(ep::test::int_attr("transB", 1));
    Model model = ep::test::make_model(g1);
    Node second = model.graph.nodes[0];
    second.name = "Gemm2";
    second.inputs = {"h", "w2"};
    second.outputs = {"y"};
    model.graph.nodes.push_back(second);
    w2.name = "w2";
    model.graph.initializers.push_back(w2);
    model.graph.outputs = {ValueInfo{"y", {}, {}}};
    rt::Executor exec(model, int8_options(1));
    Tensor got = exec.run({{"a", a}}).at(0).second;

    std::vector<float> av(a.values<float>().begin(), a.values<float>().end());
    const auto hv = by_definition(w1, av, m, h, k);
    const auto want = by_definition(w2, hv, m, n, h);
    auto g = got.values<float>();
    REQUIRE(g.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) REQUIRE(std::memcmp(&g[i], &want[i], 4) == 0);
}

TEST_CASE("int8 and float activations: grid-valued MatMul and Gemm give the exact product",
          "[kernels][qgemm][int8act]") {
    using namespace ep::test;
    uint32_t seed = 100;
    for (const char* scheme : {"int4g32", "int4g64a", "int4g128", "int4g32a-bf16", "int4g128a"})
        for (int64_t k : {32, 72, 200, 544})
            for (int64_t n : {1, 16, 17}) {
                const int64_t m = 3;
                const Encoding e = *encoding_from_name(scheme);
                const auto wi = grid_weight_ints(e, k, n, seed++);
                const auto ai = grid_activation_ints(m, k, seed++);
                const auto want = grid_product(ai, wi, m, k, n);
                const auto wf = scaled(wi, kGridStepW);
                Tensor a = make_f32_tensor("a", {m, k}, scaled(ai, kGridStepA));
                // MatMul: W [K, N] along axis 0; Gemm transB = 1: W [N, K] along axis 1.
                OneNode mm{"MatMul",
                           "",
                           17,
                           {{"a", a}},
                           {{"w", quantized(make_f32_tensor("w", {k, n}, wf), scheme, 0)}},
                           {"a", "w"}};
                OneNode gm{"Gemm",
                           "",
                           13,
                           {{"a", a}},
                           {{"w", quantized(make_f32_tensor("w", {n, k}, transposed(wf, k, n)),
                                            scheme, 1)}},
                           {"a", "w"}};
                gm.attributes.push_back(int_attr("transB", 1));
                for (const OneNode* node : {&mm, &gm})
                    for (bool int8 : {true, false}) {
                        CAPTURE(scheme, k, n, node->op_type, int8);
                        rt::ExecOptions o = int8_options(2);
                        o.int8_activations = int8;
                        Tensor got = run_node(*node, o).at(0);
                        auto g = got.values<float>();
                        REQUIRE(std::vector<float>(g.begin(), g.end()) == want);
                    }
            }
}
