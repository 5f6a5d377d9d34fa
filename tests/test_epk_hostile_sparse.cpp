// Hostile .epk files with sparse tensors (ir/sparse.h, docs/epk.md): each damaged sparse
// field, in the manifest (encoding name, kept, dtype, axis) or in the tensor bytes (mask,
// N:M counts, row_start, block headers, the padding nibble), is exit 2 from `edgepack inspect`
// and `edgepack run`, with a message naming the file, the tensor and the field, never a
// crash. The damage is re-sealed (tensor and file checksums) so the sparse checks are reached.
#include <cstring>
#include <functional>

#include <nlohmann/json.hpp>

#include "epk_edit.h"
#include "formats/epk.h"
#include "ir/sparse.h"
#include "support.h"

using namespace ep;
using nlohmann::json;

namespace {

std::vector<float> ramp(size_t n, int period) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = float(int(i % period) - period / 2) * 0.1f + 0.05f;
    return v;
}

// A mask keeping (r, c) where keep(r, c), and the values with the others set to 0.
std::vector<uint64_t> mask_where(int64_t rows, int64_t cols,
                                 const std::function<bool(int64_t, int64_t)>& keep) {
    const int64_t words = mask_words(cols);
    std::vector<uint64_t> mask(static_cast<size_t>(rows * words), 0);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
            if (keep(r, c))
                mask[static_cast<size_t>(r * words + c / 64)] |= uint64_t{1} << (c % 64);
    return mask;
}

// Three sparse weights, one per layout family:
//   w  [8, 100] f32 bitmask (Gemm transB = 1): 100 columns, so the mask has padding bits
//   q  [64, 8]  int4g32+2:4, axis 0 (MatMul [K, N]): stored 8 x 64
//   a  [8, 64]  int4g32a+bitmask (Gemm transB = 1): asymmetric headers, an odd kept count
Model sparse_model() {
    Model m;
    m.opset_imports = {{"", 17}};
    auto keep_w = [](int64_t r, int64_t c) { return (r + c) % 2 == 0; };
    std::vector<float> w = ramp(800, 11);
    for (int64_t r = 0; r < 8; ++r)
        for (int64_t c = 0; c < 100; ++c)
            if (!keep_w(r, c)) w[static_cast<size_t>(r * 100 + c)] = 0.0f;
    m.graph.initializers.push_back(sparsify_tensor(make_f32_tensor("w", {8, 100}, w),
                                                   {SparseLayout::Bitmask, 0, 0, 0},
                                                   mask_where(8, 100, keep_w), 1));
    // q: logical [64, 8]; stored (n, k) = logical (k, n); keep k % 4 in {0, 3}.
    auto keep_q = [](int64_t, int64_t k) { return k % 4 == 0 || k % 4 == 3; };
    std::vector<float> q = ramp(512, 7);
    for (int64_t k = 0; k < 64; ++k)
        for (int64_t n = 0; n < 8; ++n)
            if (!keep_q(n, k)) q[static_cast<size_t>(k * 8 + n)] = 0.0f;
    Encoding e4 = *encoding_from_name("int4g32");
    e4.axis = 0;
    m.graph.initializers.push_back(
        sparsify_tensor(quantize_tensor_rtn(make_f32_tensor("q", {64, 8}, q), e4),
                        {SparseLayout::NM, 2, 4, 0}, mask_where(8, 64, keep_q)));
    auto keep_a = [](int64_t r, int64_t c) { return (r * 64 + c) % 3 != 0; };
    std::vector<float> a = ramp(512, 9);
    for (int64_t r = 0; r < 8; ++r)
        for (int64_t c = 0; c < 64; ++c)
            if (!keep_a(r, c)) a[static_cast<size_t>(r * 64 + c)] = 0.0f;
    Encoding ea = *encoding_from_name("int4g32a");
    m.graph.initializers.push_back(
        sparsify_tensor(quantize_tensor_rtn(make_f32_tensor("a", {8, 64}, a), ea),
                        {SparseLayout::Bitmask, 0, 0, 0}, mask_where(8, 64, keep_a)));
    auto node = [](std::string op, std::vector<std::string> in, std::string out) {
        Node n;
        n.op_type = std::move(op);
        n.inputs = std::move(in);
        n.outputs = {std::move(out)};
        if (n.op_type == "Gemm") n.attributes.push_back(int_attr("transB", 1));
        return n;
    };
    m.graph.nodes = {node("Gemm", {"x", "w"}, "y1"), node("MatMul", {"x2", "q"}, "y2"),
                     node("Gemm", {"x2", "a"}, "y3")};
    auto input = [](std::string name, int64_t cols) {
        return ValueInfo{
            std::move(name),
            ValueType{true, DType::F32, std::vector<Dim>{{1, "", ""}, {cols, "", ""}}, "", ""}, ""};
    };
    m.graph.inputs = {input("x", 100), input("x2", 64)};
    for (const char* y : {"y1", "y2", "y3"}) m.graph.outputs.push_back({y, std::nullopt, ""});
    return m;
}

std::string valid_file() {
    BufferSink sink;
    write_epk(sparse_model(), sink);
    auto& b = sink.buffer();
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::string hex(std::span<const std::byte> bytes) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (auto b : bytes) {
        s += digits[static_cast<uint8_t>(b) >> 4];
        s += digits[static_cast<uint8_t>(b) & 0xF];
    }
    return s;
}

// Applies `edit` to the bytes of tensor `index` (0 w, 1 q, 2 a), then writes its new SHA-256
// into the manifest and reseals the file.
std::string damage_tensor(const std::string& f, size_t index,
                          const std::function<void(std::span<uint8_t>)>& edit) {
    json j = json::parse(test::manifest_of(f));
    json& t = j["tensors"][index];
    size_t at = 64 + t["offset"].get<size_t>(), n = t["bytes"].get<size_t>();
    std::string g = f;
    edit({reinterpret_cast<uint8_t*>(g.data() + at), n});
    Sha256 sha;
    sha.update(std::as_bytes(std::span(g.data() + at, n)));
    auto d = sha.finish();
    t["sha256"] = hex(d);
    return test::with_manifest(g, j.dump());
}

using Case = test::HostileCase;

std::vector<Case> hostile_cases() {
    auto manifest = [](std::function<void(json&)> edit) {
        return [=](const std::string& f) { return test::edit_manifest(f, edit); };
    };
    auto bytes = [](size_t index, std::function<void(std::span<uint8_t>)> edit) {
        return [=](const std::string& f) { return damage_tensor(f, index, edit); };
    };
    auto set_u64 = [](std::span<uint8_t> b, size_t at, uint64_t v) {
        std::memcpy(b.data() + at, &v, 8);
    };
    auto get_u64 = [](std::span<uint8_t> b, size_t at) {
        uint64_t v = 0;
        std::memcpy(&v, b.data() + at, 8);
        return v;
    };
    // w: mask 8 rows x 2 words (128 bytes), then row_start[0..8].
    const size_t w_row_start = 8 * 2 * 8;
    // a: mask 8 x 1 words (64 bytes), row_start 9 u64 (72), then 8 x 2 block headers of 4.
    const size_t a_headers = 64 + 72;
    return {
        {"2:4 group keeps 4", bytes(1, [](std::span<uint8_t> b) { b[0] |= 0x0F; }),
         "tensor 'q': row 0, columns 0..3 keep 4 weights, the 2:4 pattern needs 2"},
        {"2:4 group keeps 1", bytes(1, [](std::span<uint8_t> b) { b[8 * 3] &= 0xFE; }),
         "tensor 'q': row 3, columns 0..3 keep 1 weights"},
        {"mask bit past the last column", bytes(0, [](std::span<uint8_t> b) { b[15] |= 0x80; }),
         "tensor 'w': row 0 of the sparse mask has bits set past column 100"},
        {"row_start off by one",
         bytes(0,
               [=](std::span<uint8_t> b) {
                   set_u64(b, w_row_start + 3 * 8, get_u64(b, w_row_start + 3 * 8) + 1);
               }),
         "tensor 'w': row_start[3] is"},
        {"row_start[rows] wrong",
         bytes(0, [=](std::span<uint8_t> b) { set_u64(b, w_row_start + 8 * 8, 7); }),
         "tensor 'w': row_start[8] is 7, the mask keeps 400"},
        {"mask keeps one more than kept", bytes(0, [](std::span<uint8_t> b) { b[0] |= 0x02; }),
         "tensor 'w': row_start[1] is 50, the mask before it keeps 51"},
        {"asymmetric zero point out of range",
         bytes(2, [=](std::span<uint8_t> b) { b[a_headers + 2] = 16; }),
         "tensor 'a': block header 0 has zero point 16"},
        {"asymmetric reserved byte set",
         bytes(2, [=](std::span<uint8_t> b) { b[a_headers + 4 * 5 + 3] = 1; }),
         "tensor 'a': block header 5 has zero point"},
        {"int4 padding nibble set", bytes(2, [](std::span<uint8_t> b) { b[b.size() - 1] |= 0xF0; }),
         "tensor 'a': the last value byte's padding nibble is not 0"},
        {"kept one more (same byte count)",
         manifest([](json& j) { j["tensors"][2]["encoding"]["kept"] = 342; }),
         "tensor 'a': the mask keeps 341 weights, the header says 342"},
        {"kept one short (fewer bytes)",
         manifest([](json& j) { j["tensors"][0]["encoding"]["kept"] = 399; }),
         "tensor 'w': bitmask x [8, 100] needs"},
        {"kept disagrees with 2:4",
         manifest([](json& j) { j["tensors"][1]["encoding"]["kept"] = 255; }),
         "tensor 'q': 2:4 over 8 x 64 keeps 256 weights, the header says 255"},
        {"kept beyond the tensor",
         manifest([](json& j) { j["tensors"][0]["encoding"]["kept"] = uint64_t{1} << 62; }),
         "tensor 'w': 4611686018427387904 kept weights of 800"},
        {"kept missing", manifest([](json& j) { j["tensors"][0]["encoding"].erase("kept"); }),
         "missing field 'kept'"},
        {"kept on a dense encoding",
         manifest([](json& j) { j["tensors"][1]["encoding"]["name"] = "int4g32"; }),
         "unknown field 'kept'"},
        {"kept not a number",
         manifest([](json& j) { j["tensors"][0]["encoding"]["kept"] = "half"; }), "'kept'"},
        {"pattern 5:4", manifest([](json& j) { j["tensors"][0]["encoding"]["name"] = "5:4"; }),
         "unknown encoding '5:4'"},
        {"pattern 3:4 over a 2:4 mask",
         manifest([](json& j) { j["tensors"][1]["encoding"]["name"] = "int4g32+3:4"; }),
         "tensor 'q': 3:4 over 8 x 64 keeps 384 weights, the header says 256"},
        {"pattern m not dividing the columns",
         manifest([](json& j) { j["tensors"][0]["encoding"]["name"] = "2:3"; }),
         "tensor 'w': 2:3 sparsity needs the reduction length (100) to be a multiple of 3"},
        {"pattern m not dividing the group",
         manifest([](json& j) { j["tensors"][1]["encoding"]["name"] = "int4g32+2:64"; }),
         "tensor 'q': 2:64 sparsity needs the group size (32) to be a multiple of 64"},
        {"sparse float values of an integer dtype",
         manifest([](json& j) { j["tensors"][0]["dtype"] = "i32"; }),
         "tensor 'w': sparse float values must be f32, f16 or bf16, found i32"},
        {"sparse axis 2", manifest([](json& j) { j["tensors"][0]["encoding"]["axis"] = 2; }),
         "axis 2"},
    };
}

}  // namespace

TEST_CASE("epk hostile sparse: each damaged sparse field is exit 2 naming the tensor and field",
          "[epk][hostile][sparse]") {
    const std::string good = valid_file();
    test::TempDir dir;
    test::write_file(dir / "good.epk", good);
    auto ok = test::run_edgepack({"inspect", (dir / "good.epk").string(), "--json"});
    INFO(ok.err);
    REQUIRE(ok.exit_code == 0);
    json j = json::parse(ok.out);
    REQUIRE(j["sparse"]["tensors"] == 3);
    REQUIRE(j["sparse"]["layers"][0]["kept"] == 400);
    REQUIRE(j["sparse"]["layers"][1]["encoding"] == "int4g32+2:4");
    REQUIRE(j["sparse"]["layers"][2]["kept"] == 341);  // odd: the last byte has a padding nibble
    auto run_ok = test::run_edgepack(
        {"run", (dir / "good.epk").string(), "--samples", "1", "--out", (dir / "out").string()});
    INFO(run_ok.err);
    REQUIRE(run_ok.exit_code == 0);

    auto cases = hostile_cases();
    CHECK(cases.size() >= 20);
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.label) {
            auto path = dir / "bad.epk";
            test::write_file(path, c.make(good));
            for (const char* command : {"inspect", "run"}) {
                std::vector<std::string> args{command, path.string()};
                if (std::string(command) == "run")
                    args.insert(args.end(),
                                {"--samples", "1", "--out", (dir / "bad-out").string()});
                auto r = test::run_edgepack(args);
                INFO(command << ": " << r.err);
                CHECK(r.exit_code == 2);
                CHECK_THAT(r.err, Catch::Contains("bad.epk: "));
                CHECK_THAT(r.err, Catch::Contains(c.expected));
            }
            CHECK(!std::filesystem::exists(dir / "bad-out"));
        }
    }
}
