// Sparse storage (ir/sparse.h): every dense encoding stored sparse gives back its dense
// bytes bit for bit, the .epk keeps it, and hostile sparse bytes are refused by name.
#include <bit>
#include <cstring>
#include <filesystem>

#include <catch2/catch.hpp>

#include "formats/epk.h"
#include "formats/model_io.h"
#include "ir/encoding.h"
#include "ir/error.h"
#include "ir/sparse.h"
#include "ir/tensor.h"
#include "pass_model.h"
#include "support.h"

namespace ep {
namespace {

// A [rows, cols] f32 tensor with weights pruned: 2 of every 4 (by magnitude) for NM, else
// about half at random.
Tensor pruned_tensor(int64_t rows, int64_t cols, bool nm, uint32_t seed) {
    auto v = test::normal_values(static_cast<size_t>(rows * cols), seed);
    std::mt19937 rng(seed + 1);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c0 = 0; c0 < cols; c0 += 4) {
            if (nm) {
                // Zero the two smallest of each 4 (ties: the earlier).
                float* g = v.data() + r * cols + c0;
                int order[4] = {0, 1, 2, 3};
                std::stable_sort(order, order + 4,
                                 [&](int a, int b) { return std::fabs(g[a]) < std::fabs(g[b]); });
                g[order[0]] = 0.0f;
                g[order[1]] = 0.0f;
            } else {
                for (int64_t c = c0; c < std::min(cols, c0 + 4); ++c)
                    if (rng() % 2) v[static_cast<size_t>(r * cols + c)] = 0.0f;
            }
        }
    return make_f32_tensor("w", {rows, cols}, v);
}

Sparsity layout(bool nm) {
    return nm ? Sparsity{SparseLayout::NM, 2, 4, 0} : Sparsity{SparseLayout::Bitmask, 0, 0, 0};
}

}  // namespace

TEST_CASE("sparse storage gives back every dense encoding bit for bit", "[sparse]") {
    const char* names[] = {"none",    "int8c",     "int8g32",     "int8g64a",
                           "int4g32", "int4g128a", "int4g32-bf16"};
    for (bool nm : {false, true})
        for (uint8_t axis : {uint8_t{0}, uint8_t{1}})
            for (const char* name : names) {
                CAPTURE(nm, int(axis), name);
                // Pruned along the reduction axis: for axis 0 the logical [200, 24] tensor
                // is the transpose of the pruned stored matrix.
                Tensor t = pruned_tensor(24, 200, nm, 7);
                if (axis == 0) {
                    auto v = t.to_floats();
                    std::vector<float> tr(v.size());
                    for (int64_t r = 0; r < 24; ++r)
                        for (int64_t c = 0; c < 200; ++c) tr[c * 24 + r] = v[r * 200 + c];
                    t = make_f32_tensor("w", {200, 24}, tr);
                }
                Encoding e = *encoding_from_name(name);
                e.axis = axis;
                Tensor dense = e.is_none() ? t : quantize_tensor_rtn(t, e);
                auto mask = e.is_none()
                                ? nonzero_mask(t, Encoding{QScheme::None, 0, DType::F16, axis, {}})
                                : nonzero_mask(t, e);
                Tensor sparse = sparsify_tensor(dense, layout(nm), mask, axis);
                REQUIRE(sparse.encoding.is_sparse());
                REQUIRE(sparse.encoding.axis == axis);
                uint64_t kept = 0;
                for (uint64_t w : mask) kept += static_cast<uint64_t>(std::popcount(w));
                REQUIRE(sparse.encoding.sparse.kept == kept);
                // Smaller than the dense form when rows are long (axis 1: 200 columns; the
                // mask and row_start cost 16 bytes a row, too much for axis 0's 24).
                if (axis == 1) REQUIRE(sparse.data.size() < dense.data.size());
                Tensor back = densify_tensor(sparse);
                REQUIRE(back.encoding == dense.encoding);
                auto a = back.data.bytes(), b = dense.data.bytes();
                REQUIRE(a.size() == b.size());
                REQUIRE(std::memcmp(a.data(), b.data(), a.size()) == 0);
                REQUIRE(sparse.to_floats() == dense.to_floats());
                // The name round-trips (kept and axis travel beside it).
                auto parsed = encoding_from_name(encoding_name(sparse.encoding));
                REQUIRE(parsed);
                REQUIRE(parsed->sparse.layout == sparse.encoding.sparse.layout);
                REQUIRE(parsed->scheme == sparse.encoding.scheme);
            }
}

TEST_CASE("sparsify refuses a pruned weight that is not zero", "[sparse]") {
    Tensor t = pruned_tensor(4, 8, true, 3);
    auto mask = nonzero_mask(t, Encoding{});
    mask[0] &= ~uint64_t{0} << 8;  // drop every kept weight of row 0's first 8 columns...
    mask[0] |= 0b0011;             // ...and keep two: the others are not 0 -> refused
    REQUIRE_THROWS_AS(sparsify_tensor(t, layout(false), mask), InternalError);
}

TEST_CASE("a sparse .epk round-trips and hostile sparse bytes are refused", "[sparse][epk]") {
    test::TempDir dir;
    Tensor t = pruned_tensor(16, 64, true, 11);
    Encoding e = *encoding_from_name("int4g32");
    Tensor q = quantize_tensor_rtn(t, e);
    Tensor s = sparsify_tensor(q, layout(true), nonzero_mask(t, e));
    Model m;
    m.graph.name = "g";
    m.graph.initializers.push_back(s);
    auto path = dir.path() / "s.epk";
    save_model(m, path);
    Model back = load_model(path);
    REQUIRE(back.graph.initializers.size() == 1);
    const Tensor& r = back.graph.initializers[0];
    REQUIRE(encoding_name(r.encoding) == "int4g32+2:4");
    REQUIRE(r.encoding.sparse.kept == s.encoding.sparse.kept);
    REQUIRE(r.to_floats() == q.to_floats());
    // .safetensors gets the dense form.
    save_model(m, dir.path() / "s.safetensors");
    Model st = load_model(dir.path() / "s.safetensors");
    REQUIRE(!st.graph.initializers[0].encoding.is_sparse());
    REQUIRE(st.graph.initializers[0].to_floats() == q.to_floats());

    auto dims = encoded_dims(s.encoding, s.shape, "w");
    auto bytes = s.data.bytes();
    std::vector<std::byte> bad(bytes.begin(), bytes.end());
    SECTION("three kept in a group of four") {
        bad[0] |= std::byte{0x0F};
        REQUIRE_THROWS_WITH(
            check_sparse_bytes(s.encoding, s.dtype, bad, dims.rows, dims.cols, "tensor 'w'"),
            Catch::Contains("tensor 'w': row 0, columns 0..3 keep"));
    }
    SECTION("a header kept count that disagrees") {
        Encoding wrong = s.encoding;
        wrong.sparse.kept -= 2;
        REQUIRE_THROWS_AS(
            check_sparse_bytes(wrong, s.dtype, bad, dims.rows, dims.cols, "tensor 'w'"),
            InputError);
    }
    SECTION("a bitmask row_start that points elsewhere") {
        Tensor u = pruned_tensor(8, 100, false, 5);
        Tensor us = sparsify_tensor(u, layout(false), nonzero_mask(u, Encoding{}));
        auto ub = us.data.bytes();
        std::vector<std::byte> ubad(ub.begin(), ub.end());
        uint64_t start = 0;
        size_t at = 8 * 2 * 8 + 8 * 3;  // row_start[3]
        std::memcpy(&start, ubad.data() + at, 8);
        start += 1;
        std::memcpy(ubad.data() + at, &start, 8);
        REQUIRE_THROWS_WITH(check_sparse_bytes(us.encoding, us.dtype, ubad, 8, 100, "tensor 'u'"),
                            Catch::Contains("row_start[3]"));
        // Mask bits past the last column.
        std::vector<std::byte> pad(ub.begin(), ub.end());
        pad[15] |= std::byte{0x80};
        REQUIRE_THROWS_WITH(check_sparse_bytes(us.encoding, us.dtype, pad, 8, 100, "tensor 'u'"),
                            Catch::Contains("past column 100"));
    }
}

}  // namespace ep
