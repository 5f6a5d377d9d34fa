// Fused quantized GEMM/GEMV (runtime-check/kernels/qgemm.h): MatMul and Gemm with an encoded weight
// and Gather from an encoded table, run through the executor, against the same ops on the
// weight dequantized with dequantize_tensor; bit-identical for 1, 2 and 3 threads.
// Tagged [kernels]: ctest runs these again with EDGEPACK_ISA=baseline (portable GEMM).
// dequantize_tensor and the float kernels are code under test too: on weights whose
// quantization is exact (exact_grid.h) the ops must give the integer product or the
// table's own values, computed here without them.
#include <cmath>

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

const char* const kSchemes[] = {"int8c",         "int8g32",       "int8g64a",
                                "int4g32",       "int4g64a",      "int4g128",
                                "int8g128-bf16", "int4g32a-bf16", "int4g128a"};

Tensor dequantized(const Tensor& q) {
    auto values = dequantize_tensor(q);
    return make_f32_tensor(q.name, q.shape, values);
}

Tensor quantized(Tensor w, const char* scheme, uint8_t axis) {
    return ep::test::quantized_rtn(std::move(w), "w", scheme, axis);
}

// |got - ref| within the float summation bound of the two orders: K ulps of sum |a w|.
void require_close(const Tensor& got, const Tensor& ref, const Tensor& a, const Tensor& wf,
                   int64_t m, int64_t k, int64_t n, bool b_transposed) {
    REQUIRE(got.shape == ref.shape);
    auto g = got.values<float>();
    auto r = ref.values<float>();
    auto av = a.values<float>();
    auto wv = wf.values<float>();
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double mag = 0;
            for (int64_t t = 0; t < k; ++t)
                mag += std::fabs(static_cast<double>(av[static_cast<size_t>(i * k + t)]) *
                                 wv[static_cast<size_t>(b_transposed ? j * k + t : t * n + j)]);
            const double tol = 1e-30 + static_cast<double>(k + 2) * 1.2e-7 * mag;
            const size_t at = static_cast<size_t>(i * n + j);
            if (std::fabs(static_cast<double>(g[at]) - r[at]) > tol) {
                CAPTURE(i, j, g[at], r[at], tol);
                FAIL("outside the summation bound");
            }
        }
}

}  // namespace

TEST_CASE("quantized MatMul matches dequantize + MatMul, bit-identical over threads",
          "[kernels][qgemm]") {
    uint32_t seed = 1;
    for (const char* scheme : kSchemes)
        for (int64_t k : {32, 64, 96, 172, 3136})
            for (int64_t n : {1, 7, 64, 129}) {
                Tensor w = quantized(random_f32({k, n}, seed++), scheme, 0);
                Tensor wf = dequantized(w);
                for (int64_t m : {1, 3, 17, 64}) {
                    CAPTURE(scheme, m, k, n);
                    Tensor a = random_f32({m, k}, seed++);
                    OneNode q{"MatMul", "", 17, {{"a", a}}, {{"w", w}}, {"a", "w"}};
                    OneNode f{"MatMul", "", 17, {{"a", a}}, {{"w", wf}}, {"a", "w"}};
                    Tensor ref = run_node(f, 1).at(0);
                    Tensor got = run_node(q, 1).at(0);
                    require_close(got, ref, a, wf, m, k, n, false);
                    for (int threads : {2, 3}) REQUIRE(same_bytes(run_node(q, threads).at(0), got));
                }
            }
}

TEST_CASE("quantized MatMul takes batched and 1-D activations", "[kernels][qgemm]") {
    Tensor w = quantized(random_f32({96, 40}, 7), "int4g32", 0);
    Tensor wf = dequantized(w);
    for (std::vector<int64_t> shape : {std::vector<int64_t>{96}, {2, 3, 96}, {2, 5, 96}}) {
        Tensor a = random_f32(shape, 8);
        OneNode q{"MatMul", "", 17, {{"a", a}}, {{"w", w}}, {"a", "w"}};
        OneNode f{"MatMul", "", 17, {{"a", a}}, {{"w", wf}}, {"a", "w"}};
        Tensor got = run_node(q, 2).at(0), ref = run_node(f, 1).at(0);
        REQUIRE(got.shape == ref.shape);
        auto g = got.values<float>();
        auto r = ref.values<float>();
        for (size_t i = 0; i < g.size(); ++i) REQUIRE(g[i] == Approx(r[i]).margin(1e-4));
    }
}

TEST_CASE("quantized Gemm: transB 0 and 1, alpha, beta, C", "[kernels][qgemm]") {
    uint32_t seed = 100;
    for (const char* scheme : kSchemes)
        for (int tb : {0, 1})
            for (int64_t m : {1, 17}) {
                const int64_t k = 172, n = 33;
                CAPTURE(scheme, tb, m);
                Tensor w = quantized(
                    random_f32(tb ? std::vector<int64_t>{n, k} : std::vector<int64_t>{k, n},
                               seed++),
                    scheme, static_cast<uint8_t>(tb));
                Tensor wf = dequantized(w);
                Tensor a = random_f32({m, k}, seed++);
                Tensor bias = random_f32({n}, seed++);
                std::vector<Attribute> attrs{test::int_attr("transB", tb),
                                             test::float_attr("alpha", 0.75f),
                                             test::float_attr("beta", -1.5f)};
                OneNode q{"Gemm",          "",    17,   {{"a", a}}, {{"w", w}, {"c", bias}},
                          {"a", "w", "c"}, {"y"}, attrs};
                OneNode f = q;
                f.constants[0].second = wf;
                Tensor got = run_node(q, 1).at(0), ref = run_node(f, 1).at(0);
                auto g = got.values<float>();
                auto r = ref.values<float>();
                REQUIRE(got.shape == ref.shape);
                for (size_t i = 0; i < g.size(); ++i) REQUIRE(g[i] == Approx(r[i]).margin(2e-4));
                for (int threads : {2, 3}) REQUIRE(same_bytes(run_node(q, threads).at(0), got));
            }
}

TEST_CASE("Gemm with transA reads a quantized weight", "[kernels][qgemm]") {
    Tensor w = quantized(random_f32({64, 9}, 31), "int8g32a", 0);
    Tensor a = random_f32({64, 5}, 32);  // transposed: [K, M]
    OneNode q{"Gemm",     "",         17,    {{"a", a}},
              {{"w", w}}, {"a", "w"}, {"y"}, {test::int_attr("transA", 1)}};
    OneNode f = q;
    f.constants[0].second = dequantized(w);
    Tensor got = run_node(q, 1).at(0), ref = run_node(f, 1).at(0);
    REQUIRE(got.shape == std::vector<int64_t>{5, 9});
    auto g = got.values<float>();
    auto r = ref.values<float>();
    for (size_t i = 0; i < g.size(); ++i) REQUIRE(g[i] == Approx(r[i]).margin(1e-4));
}

TEST_CASE("Gather from a quantized table returns the dequantized rows", "[kernels][qgemm]") {
    for (const char* scheme : kSchemes) {
        CAPTURE(scheme);
        Tensor table = quantized(random_f32({50, 172}, 41), scheme, 1);
        std::vector<int64_t> ids{49, 0, -1, 7, 7, 23};
        Tensor idx;
        idx.dtype = DType::I64;
        idx.shape = {2, 3};
        idx.data = TensorData::owned(
            std::vector<std::byte>(reinterpret_cast<const std::byte*>(ids.data()),
                                   reinterpret_cast<const std::byte*>(ids.data() + ids.size())));
        OneNode q{"Gather", "", 17, {{"i", idx}}, {{"w", table}}, {"w", "i"}};
        OneNode f = q;
        f.constants[0].second = dequantized(table);
        Tensor got = run_node(q, 2).at(0);
        REQUIRE(got.shape == std::vector<int64_t>{2, 3, 172});
        REQUIRE(same_bytes(got, run_node(f, 1).at(0)));
    }
}

TEST_CASE("Gather from a quantized table rejects an index out of range", "[kernels][qgemm]") {
    Tensor table = quantized(random_f32({5, 32}, 42), "int4g32", 1);
    std::vector<int64_t> ids{5};
    Tensor idx;
    idx.dtype = DType::I64;
    idx.shape = {1};
    idx.data = TensorData::owned(
        std::vector<std::byte>(reinterpret_cast<const std::byte*>(ids.data()),
                               reinterpret_cast<const std::byte*>(ids.data() + 1)));
    OneNode q{"Gather", "", 17, {{"i", idx}}, {{"w", table}}, {"w", "i"}};
    REQUIRE_THROWS_WITH(run_node(q, 1), Catch::Contains("index 5 is out of range"));
}

TEST_CASE("a quantized weight with truncated bytes is an input error naming it",
          "[kernels][qgemm]") {
    Tensor w = quantized(random_f32({64, 8}, 51), "int4g32", 0);
    auto bytes = w.data.bytes();
    w.data = TensorData::owned(std::vector<std::byte>(bytes.begin(), bytes.end() - 3));
    Tensor a = random_f32({2, 64}, 52);
    OneNode mm{"MatMul", "", 17, {{"a", a}}, {{"w", w}}, {"a", "w"}};
    try {
        (void)run_node(mm, 1);
        FAIL("no error");
    } catch (const Error& e) {
        REQUIRE(e.code() == ExitCode::BadInput);
        REQUIRE_THAT(e.what(), Catch::Contains("tensor 'w'"));
    }
    OneNode add{"Add", "", 17, {{"a", a}}, {{"w", w}}, {"a", "w"}};  // the dequantize-once path
    REQUIRE_THROWS_WITH(run_node(add, 1), Catch::Contains("'w'"));
}

TEST_CASE("grid-valued quantized MatMul, Gemm and Gather give the exact values",
          "[kernels][qgemm]") {
    using namespace ep::test;
    uint32_t seed = 200;
    for (const char* scheme : kSchemes) {
        const Encoding e = *encoding_from_name(scheme);
        for (int64_t k : {72, 200})
            for (int64_t n : {1, 17}) {
                CAPTURE(scheme, k, n);
                const int64_t m = 2;
                const auto wi = grid_weight_ints(e, k, n, seed++);
                const auto ai = grid_activation_ints(m, k, seed++);
                const auto want = grid_product(ai, wi, m, k, n);
                const auto wf = scaled(wi, kGridStepW);
                Tensor a = make_f32_tensor("a", {m, k}, scaled(ai, kGridStepA));
                Tensor w = quantized(make_f32_tensor("w", {k, n}, wf), scheme, 0);
                OneNode mm{"MatMul", "", 17, {{"a", a}}, {{"w", w}}, {"a", "w"}};
                OneNode gm{"Gemm", "", 13, {{"a", a}}, {{"w", w}}, {"a", "w"}};  // transB 0
                for (const OneNode* node : {&mm, &gm}) {
                    CAPTURE(node->op_type);
                    Tensor got = run_node(*node, 2).at(0);
                    auto g = got.values<float>();
                    REQUIRE(std::vector<float>(g.begin(), g.end()) == want);
                }
                // Gather: the rows of a [V, D] table encoded along axis 1 (D = k).
                const auto table = transposed(wf, k, n);  // [n, k]
                std::vector<int64_t> ids{n - 1, 0, n / 2};
                Tensor idx;
                idx.dtype = DType::I64;
                idx.shape = {3};
                idx.data = TensorData::owned(std::vector<std::byte>(
                    reinterpret_cast<const std::byte*>(ids.data()),
                    reinterpret_cast<const std::byte*>(ids.data() + ids.size())));
                OneNode ga{"Gather",
                           "",
                           17,
                           {{"i", idx}},
                           {{"w", quantized(make_f32_tensor("w", {n, k}, table), scheme, 1)}},
                           {"w", "i"}};
                Tensor rows = run_node(ga, 1).at(0);
                auto r = rows.values<float>();
                REQUIRE(r.size() == static_cast<size_t>(3 * k));
                for (size_t i = 0; i < ids.size(); ++i)
                    for (int64_t j = 0; j < k; ++j)
                        REQUIRE(r[i * static_cast<size_t>(k) + static_cast<size_t>(j)] ==
                                table[static_cast<size_t>(ids[i] * k + j)]);
            }
    }
}
