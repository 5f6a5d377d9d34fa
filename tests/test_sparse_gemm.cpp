// Sparse GEMV / GEMM (runtime-check/kernels/sparse_gemm.h): MatMul and Gemm with a pruned
// weight stored sparse (bitmask, 2:4, 4:8) over f32 values and int8 / int4 codes, read in
// place, against the same weight densified through the dense kernels: the same bits (f32 on
// the portable ISA, and the fused f32 GEMV on a [K, N] weight: within the summation bound),
// bit-identical for 1, 2 and 3 threads, on awkward sizes; the fused f32 GEMV equals its
// scalar definition on every ISA. Tagged [kernels]: ctest runs them
// again with EDGEPACK_ISA=baseline (portable expansion and GEMM).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string_view>

#include "ir/sparse.h"
#include "op_model.h"
#include "runtime-check/kernels/qgemm.h"
#include "runtime-check/kernels/simd.h"
#include "runtime-check/kernels/sparse_gemm.h"
#include "runtime-check/ops/quant_matmul.h"
#include "support.h"

using namespace ep;
using ep::test::OneNode;
using ep::test::random_f32;
using ep::test::run_node;
using ep::test::same_bytes;

namespace {

// `w` ([k, n] for axis 0, [n, k] for axis 1) with weights pruned along the reduction axis:
// the m - n_keep smallest of every m (N:M), or about half at random (bitmask, n_keep = 0).
Tensor pruned(Tensor w, uint8_t axis, int n_keep, int m_group, uint32_t seed) {
    auto v = w.mutable_values<float>();
    const int64_t rows = axis == 0 ? w.shape[1] : w.shape[0];
    const int64_t cols = axis == 0 ? w.shape[0] : w.shape[1];
    auto at = [&](int64_t r, int64_t c) -> float& {
        return v[static_cast<size_t>(axis == 0 ? c * rows + r : r * cols + c)];
    };
    std::mt19937 rng(seed);
    for (int64_t r = 0; r < rows; ++r) {
        if (n_keep == 0) {
            for (int64_t c = 0; c < cols; ++c)
                if (rng() % 2) at(r, c) = 0.0f;
            continue;
        }
        for (int64_t c0 = 0; c0 < cols; c0 += m_group) {
            std::vector<int64_t> order(static_cast<size_t>(m_group));
            for (int i = 0; i < m_group; ++i) order[static_cast<size_t>(i)] = c0 + i;
            std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
                return std::fabs(at(r, x)) < std::fabs(at(r, y));
            });
            for (int i = 0; i < m_group - n_keep; ++i) at(r, order[static_cast<size_t>(i)]) = 0.0f;
        }
    }
    return w;
}

// The pruned float weight stored sparse, as `scheme` ("f32" or a quantized encoding) with
// the float weight's nonzero mask (every weight kept in float stays kept after quantizing).
Tensor stored_sparse(const Tensor& wf, const char* scheme, uint8_t axis, int n_keep, int m_group) {
    Encoding e;
    e.axis = axis;
    Tensor dense = wf;
    if (std::string_view(scheme) != "f32") {
        dense = ep::test::quantized_rtn(wf, "w", scheme, axis);
        e = dense.encoding;
    }
    const auto mask = nonzero_mask(wf, e);
    const Sparsity layout = n_keep ? Sparsity{SparseLayout::NM, static_cast<uint8_t>(n_keep),
                                              static_cast<uint8_t>(m_group), 0}
                                   : Sparsity{SparseLayout::Bitmask, 0, 0, 0};
    Tensor s = sparsify_tensor(dense, layout, mask, axis);
    s.name = "w";
    return s;
}

bool portable_f32(const Tensor& w) {
    return !w.encoding.is_quantized() && std::string_view(rt::simd_kernels().name) == "baseline";
}

// Whether the sparse product must equal the dense one bit for bit: always for codes; for f32
// values not on the portable GEMM, nor with few rows over a [K, N] weight (the fused sparse
// GEMV sums in lanes, the dense [K, N] kernel over k in order).
bool exact(const Tensor& w, int64_t m) {
    return !portable_f32(w) &&
           (w.encoding.is_quantized() || w.encoding.axis == 1 || m > rt::kSparseDotRows);
}

// The fused f32 GEMV's definition (sparse_gemm.h), in scalar code: per output, lane k % 8
// partial sums of fused multiply-adds over k < K / 8 * 8, added ((0+4) + (2+6)) + ((1+5) +
// (3+7)), then the tail in order.
std::vector<float> gemv_definition(const std::vector<float>& a, int64_t m, int64_t k,
                                   const std::vector<float>& w_nk, int64_t n) {
    std::vector<float> y(static_cast<size_t>(m * n));
    const int64_t k8 = k / 8 * 8;
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            float lanes[8] = {};
            for (int64_t t = 0; t < k8; ++t)
                lanes[t % 8] = std::fma(a[static_cast<size_t>(i * k + t)],
                                        w_nk[static_cast<size_t>(j * k + t)], lanes[t % 8]);
            float sum = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) +
                        ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
            for (int64_t t = k8; t < k; ++t)
                sum = std::fma(a[static_cast<size_t>(i * k + t)],
                               w_nk[static_cast<size_t>(j * k + t)], sum);
            y[static_cast<size_t>(i * n + j)] = sum;
        }
    return y;
}

// |got - ref| within K ulps of sum |a w|: the portable GEMM (Eigen) may block the dense and
// the expanded weight differently.
void require_close(const Tensor& got, const Tensor& ref, const Tensor& a, const Tensor& wd,
                   int64_t k) {
    REQUIRE(got.shape == ref.shape);
    auto g = got.values<float>();
    auto r = ref.values<float>();
    const float wmax = [&] {
        float x = 0;
        for (float v : wd.to_floats()) x = std::max(x, std::fabs(v));
        return x;
    }();
    float amax = 0;
    for (float v : a.values<float>()) amax = std::max(amax, std::fabs(v));
    const double tol = static_cast<double>(k + 2) * 1.2e-7 * k * amax * wmax + 1e-30;
    for (size_t i = 0; i < g.size(); ++i) {
        CAPTURE(i, g[i], r[i], tol);
        REQUIRE(std::fabs(static_cast<double>(g[i]) - r[i]) <= tol);
    }
}

const char* const kForms[] = {"f32",     "int8c",    "int8g32", "int8g64a",
                              "int4g32", "int4g64a", "int4g128"};

struct Pattern {
    int n, m;  // n = 0: bitmask
};
const Pattern kPatterns[] = {{0, 0}, {2, 4}, {4, 8}};

}  // namespace

TEST_CASE("sparse MatMul and Gemm give the densified weight's bits, over threads",
          "[kernels][sparse]") {
    uint32_t seed = 1;
    for (const char* form : kForms)
        for (Pattern p : kPatterns)
            for (int64_t k : {8, 64, 136, 264})
                for (int64_t n : {1, 31, 33, 70})
                    for (int op : {0, 1, 2}) {  // MatMul, Gemm transB = 0, Gemm transB = 1
                        const uint8_t axis = op == 2 ? 1 : 0;
                        const std::vector<int64_t> shape =
                            axis ? std::vector<int64_t>{n, k} : std::vector<int64_t>{k, n};
                        Tensor wf = pruned(random_f32(shape, seed), axis, p.n, p.m, seed + 1);
                        seed += 2;
                        Tensor w = stored_sparse(wf, form, axis, p.n, p.m);
                        Tensor wd = densify_tensor(w);
                        for (int64_t m : {1, 3, 5, 17}) {
                            CAPTURE(form, p.n, p.m, k, n, op, m);
                            Tensor a = random_f32({m, k}, seed++);
                            OneNode q{"MatMul", "", 17, {{"a", a}}, {{"w", w}}, {"a", "w"}};
                            if (op > 0) {
                                q.op_type = "Gemm";
                                q.attributes = {test::int_attr("transB", op == 2)};
                            }
                            REQUIRE(rt::kernel_reads_encoding(test::make_model(q).graph.nodes[0], 1,
                                                              w));
                            OneNode d = q;
                            d.constants[0].second = wd;
                            const Tensor ref = run_node(d, 1).at(0);
                            const Tensor got = run_node(q, 1).at(0);
                            if (exact(w, m))
                                REQUIRE(same_bytes(got, ref));
                            else
                                require_close(got, ref, a, wd, k);
                            for (int threads : {2, 3})
                                REQUIRE(same_bytes(run_node(q, threads).at(0), got));
                        }
                    }
}

TEST_CASE("the sparse kernel itself matches the dense kernel on a 2:4 and a bitmask weight",
          "[kernels][sparse]") {
    // Called directly, so the executor's dequantize-once fallback cannot stand in for it.
    for (const char* form : {"f32", "int8c", "int4g32"})
        for (Pattern p : {Pattern{0, 0}, Pattern{2, 4}}) {
            CAPTURE(form, p.n);
            const int64_t k = 520, n = 97, m = 2;
            Tensor wf = pruned(random_f32({n, k}, 11), 1, p.n, p.m, 12);
            Tensor w = stored_sparse(wf, form, 1, p.n, p.m);
            Tensor wd = densify_tensor(w);
            Tensor a = random_f32({m, k}, 13);
            std::vector<float> got(static_cast<size_t>(m * n)), ref(got.size());
            const rt::MatrixView av{a.values<float>().data(), m, k, k, false};
            rt::qgemm_encoded_f32(rt::ExecOptions{2}, nullptr, av, w, got.data(), n);
            if (wd.is_encoded())
                rt::qgemm_encoded_f32(rt::ExecOptions{1}, nullptr, av, wd, ref.data(), n);
            else
                rt::gemm_f32(rt::ExecOptions{1}, av,
                             rt::MatrixView{wd.values<float>().data(), k, n, k, true}, ref.data(),
                             n, false);
            if (portable_f32(w)) {
                for (size_t i = 0; i < got.size(); ++i)
                    REQUIRE(got[i] == Approx(ref[i]).margin(1e-4));
            } else {
                REQUIRE(std::memcmp(got.data(), ref.data(), got.size() * 4) == 0);
            }
            // Half the weights pruned: the sparse bytes are well under the dense ones.
            REQUIRE(static_cast<double>(w.data.size()) < 0.8 * static_cast<double>(wd.data.size()));
        }
}

TEST_CASE("a sparse int4 weight with int8 activations gives the dense weight's bits",
          "[kernels][sparse]") {
    Tensor wf = pruned(random_f32({256, 48}, 21), 0, 2, 4, 22);
    Tensor w = stored_sparse(wf, "int4g32", 0, 2, 4);
    Tensor a = random_f32({3, 256}, 23);
    OneNode q{"MatMul", "", 17, {{"a", a}}, {{"w", w}}, {"a", "w"}};
    OneNode d = q;
    d.constants[0].second = densify_tensor(w);
    rt::ExecOptions opts{2};
    opts.int8_activations = true;
    REQUIRE(same_bytes(run_node(q, opts).at(0), run_node(d, opts).at(0)));
}

TEST_CASE("sparse f16 values and Gather tables stay on the dense fallback", "[kernels][sparse]") {
    Tensor wf = pruned(random_f32({64, 8}, 31), 0, 2, 4, 32);
    Tensor w = stored_sparse(wf, "f32", 0, 2, 4);
    Node matmul;
    matmul.op_type = "MatMul";
    Node gather;
    gather.op_type = "Gather";
    REQUIRE(rt::kernel_reads_encoding(matmul, 1, w));
    REQUIRE_FALSE(rt::kernel_reads_encoding(gather, 0, w));
    Tensor h = w;
    h.dtype = DType::F16;
    REQUIRE_FALSE(rt::sparse_kernel_reads(h.encoding, h.dtype));
}

TEST_CASE("a sparse row whose mask disagrees with row_start is an input error naming it",
          "[kernels][sparse]") {
    Tensor wf = pruned(random_f32({8, 64}, 41), 1, 0, 0, 42);
    Tensor w = stored_sparse(wf, "f32", 1, 0, 0);
    // Set a bit row 3's mask does not keep: its popcount no longer matches row_start.
    std::vector<std::byte> bytes(w.data.bytes().begin(), w.data.bytes().end());
    uint64_t word;
    std::memcpy(&word, bytes.data() + 3 * 8, 8);
    const int free_bit = std::countr_zero(~word);
    REQUIRE(free_bit < 64);
    word |= uint64_t{1} << free_bit;
    std::memcpy(bytes.data() + 3 * 8, &word, 8);
    w.data = TensorData::owned(std::move(bytes));
    Tensor a = random_f32({1, 64}, 43);
    std::vector<float> y(8);
    const rt::MatrixView av{a.values<float>().data(), 1, 64, 64, false};
    REQUIRE_THROWS_WITH(rt::qgemm_encoded_f32(rt::ExecOptions{1}, nullptr, av, w, y.data(), 8),
                        Catch::Contains("weight 'w'") && Catch::Contains("row 3"));
}

TEST_CASE("the sparse f32 GEMV gives its defined bits on every instruction set",
          "[kernels][sparse]") {
    // Run twice by ctest: on the CPU's kernels and with EDGEPACK_ISA=baseline.
    uint32_t seed = 50;
    for (Pattern p : kPatterns)
        for (int64_t k : {8, 72, 264, 1000})
            for (int64_t m : {1, 2, 3, 4}) {
                CAPTURE(p.n, k, m);
                if (p.n && k % p.m) continue;
                const int64_t n = 37;
                Tensor wf = pruned(random_f32({n, k}, seed), 1, p.n, p.m, seed + 1);
                Tensor a = random_f32({m, k}, seed + 2);
                seed += 3;
                Tensor w = stored_sparse(wf, "f32", 1, p.n, p.m);
                std::vector<float> got(static_cast<size_t>(m * n));
                const rt::MatrixView av{a.values<float>().data(), m, k, k, false};
                rt::qgemm_encoded_f32(rt::ExecOptions{2}, nullptr, av, w, got.data(), n);
                const auto av_vec = a.to_floats();
                const auto want = gemv_definition(av_vec, m, k, wf.to_floats(), n);
                REQUIRE(std::memcmp(got.data(), want.data(), got.size() * 4) == 0);
            }
}
