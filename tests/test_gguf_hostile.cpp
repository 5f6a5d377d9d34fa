// Hand-made corrupt GGUF files: the GGUF reader CVE list (huge n_kv / n_tensors, string
// lengths past the end, huge array counts, tensor offsets misaligned, overlapping or past
// the end, dimension products that overflow, unknown ggml types) and every truncation of a
// valid file. Each must be rejected with exit code 2 and one message naming the file and
// the problem, by ep::load_model and by `edgepack inspect FILE`; none may crash, hang or
// allocate what the file claims (the test file is in the sanitizer subset).
#include <cstring>

#include "formats/gguf.h"
#include "formats/model_io.h"
#include "hostile_file.h"
#include "ir/error.h"
#include "support.h"

using namespace ep;

namespace {

// A GGUF file assembled field by field, so a test can break any one of them.
struct GgufBuilder {
    std::string bytes;
    template <typename T>
    GgufBuilder& put(T v) {
        bytes.append(reinterpret_cast<const char*>(&v), sizeof v);
        return *this;
    }
    GgufBuilder& str(const std::string& s) {
        put<uint64_t>(s.size());
        bytes += s;
        return *this;
    }
    GgufBuilder& pad(size_t alignment = 32) {
        bytes.append((alignment - bytes.size() % alignment) % alignment, '\0');
        return *this;
    }
};

// The header of a file with `n_tensors` tensors and `n_kv` KVs; the caller appends them.
GgufBuilder header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    GgufBuilder b;
    b.bytes = "GGUF";
    b.put<uint32_t>(version).put<uint64_t>(n_tensors).put<uint64_t>(n_kv);
    return b;
}

void tensor_info(GgufBuilder& b, const std::string& name, std::vector<uint64_t> ne, uint32_t type,
                 uint64_t offset) {
    b.str(name).put<uint32_t>(static_cast<uint32_t>(ne.size()));
    for (auto n : ne) b.put<uint64_t>(n);
    b.put<uint32_t>(type).put<uint64_t>(offset);
}

// A valid file: one string KV, one u32 KV, an f32 [2, 32] tensor and a Q8_0 [2, 32] one.
std::string valid_file() {
    auto b = header(2, 2);
    b.str("general.architecture").put<uint32_t>(8).str("llama");
    b.str("llama.block_count").put<uint32_t>(4).put<uint32_t>(1);
    tensor_info(b, "a.weight", {32, 2}, 0, 0);
    tensor_info(b, "b.weight", {32, 2}, 8, 256);
    b.pad();
    for (int i = 0; i < 64; ++i) b.put<float>(static_cast<float>(i) * 0.5f);
    for (int r = 0; r < 2; ++r) {
        b.put<uint16_t>(0x3C00);  // d = 1.0
        for (int i = 0; i < 32; ++i) b.put<int8_t>(static_cast<int8_t>(i - 16));
    }
    return b.bytes;
}

void expect_rejected(const std::string& name, const std::string& bytes,
                     const std::string& message) {
    test::expect_file_rejected(name, ".gguf", bytes, message);
}

}  // namespace

TEST_CASE("a hand-made valid GGUF reads as its tensors and metadata", "[gguf][hostile]") {
    test::TempDir dir;
    auto file = dir / "ok.gguf";
    test::write_file(file, valid_file());
    Model m = load_model(file);
    REQUIRE(m.graph.initializers.size() == 2);
    CHECK(m.graph.initializers[0].shape == std::vector<int64_t>{2, 32});
    CHECK(m.graph.initializers[0].to_floats()[63] == 31.5f);
    CHECK(encoding_name(m.graph.initializers[1].encoding) == "int8g32");
    CHECK(m.graph.initializers[1].to_floats()[33] == -15.0f);
    REQUIRE(m.metadata.size() == 2);
    CHECK(m.metadata[0].second == R"({"type":"string","value":"llama"})");
}

TEST_CASE("GGUF header corruptions exit 2 naming the field", "[gguf][hostile]") {
    const std::string good = valid_file();
    auto patched = [&](size_t at, auto v) {
        std::string f = good;
        std::memcpy(f.data() + at, &v, sizeof v);
        return f;
    };
    expect_rejected("magic", "GGUX" + good.substr(4), "not a GGUF file");
    expect_rejected("version1", patched(4, uint32_t{1}), "version 1");
    expect_rejected("version9", patched(4, uint32_t{9}), "version 9 is not supported");
    expect_rejected("bigendian", patched(4, uint32_t{0x03000000}), "big-endian");
    expect_rejected("huge_tensors", patched(8, uint64_t{1} << 60), "tensor count");
    expect_rejected("huge_kv", patched(16, ~uint64_t{0}), "metadata count");
    // The first key's length (at 24) past the end of the file.
    expect_rejected("key_length", patched(24, uint64_t{1} << 62), "metadata key 0");
    // The first value's type (after "general.architecture": 24 + 8 + 20).
    expect_rejected("value_type", patched(52, uint32_t{13}), "unknown value type 13");
    // Its string's length.
    expect_rejected("string_length", patched(56, uint64_t{1} << 40),
                    "metadata 'general.architecture'");
}

TEST_CASE("GGUF metadata corruptions exit 2 naming the key", "[gguf][hostile]") {
    auto with_kv = [](auto&& add) {
        auto b = header(0, 1);
        add(b);
        return b.bytes;
    };
    expect_rejected("array_count", with_kv([](GgufBuilder& b) {
                        b.str("t.arr").put<uint32_t>(9).put<uint32_t>(4).put<uint64_t>(1ull << 61);
                    }),
                    "uint32 values cannot fit");
    expect_rejected("string_array_count", with_kv([](GgufBuilder& b) {
                        b.str("tokenizer.ggml.tokens")
                            .put<uint32_t>(9)
                            .put<uint32_t>(8)
                            .put<uint64_t>(1ull << 40);
                    }),
                    "strings cannot fit");
    expect_rejected("nested_array", with_kv([](GgufBuilder& b) {
                        b.str("t.arr").put<uint32_t>(9).put<uint32_t>(9).put<uint64_t>(1);
                    }),
                    "an array of arrays");
    expect_rejected("bool_value", with_kv([](GgufBuilder& b) {
                        b.str("t.flag").put<uint32_t>(7).put<uint8_t>(2);
                    }),
                    "a bool must be 0 or 1");
    expect_rejected("alignment_zero", with_kv([](GgufBuilder& b) {
                        b.str("general.alignment").put<uint32_t>(4).put<uint32_t>(0);
                    }),
                    "must be a power of two");
    expect_rejected("alignment_odd", with_kv([](GgufBuilder& b) {
                        b.str("general.alignment").put<uint32_t>(4).put<uint32_t>(24);
                    }),
                    "must be a power of two");
    expect_rejected("alignment_type", with_kv([](GgufBuilder& b) {
                        b.str("general.alignment").put<uint32_t>(10).put<uint64_t>(32);
                    }),
                    "must be a uint32");
    expect_rejected("key_utf8", with_kv([](GgufBuilder& b) {
                        b.str("bad\xff").put<uint32_t>(0).put<uint8_t>(1);
                    }),
                    "not valid UTF-8");
    auto two = header(0, 2);
    two.str("k").put<uint32_t>(0).put<uint8_t>(1).str("k").put<uint32_t>(0).put<uint8_t>(2);
    expect_rejected("duplicate_key", two.bytes, "metadata key 'k' appears twice");
}

TEST_CASE("GGUF tensor info corruptions exit 2 naming the tensor", "[gguf][hostile]") {
    // One tensor `t` whose info is given; 256 bytes of data after the padding.
    auto with_tensor = [](std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
        auto b = header(1, 0);
        tensor_info(b, "t", std::move(ne), type, offset);
        b.pad();
        b.bytes.append(256, '\0');
        return b.bytes;
    };
    expect_rejected("dims0", with_tensor({}, 0, 0), "tensor 't': 0 dimensions");
    expect_rejected("dims5", with_tensor({1, 1, 1, 1, 1}, 0, 0), "tensor 't': 5 dimensions");
    expect_rejected("dims_overflow", with_tensor({1ull << 32, 1ull << 32}, 0, 0),
                    "tensor 't': the dimensions' product overflows");
    expect_rejected("dim_negative", with_tensor({~uint64_t{0}}, 0, 0), "product overflows");
    expect_rejected("unknown_type", with_tensor({32}, 77, 0), "tensor 't': unknown ggml type 77");
    expect_rejected("iq_type", with_tensor({256}, 19, 0), "ggml type IQ1_S (19) is not supported");
    expect_rejected("block_multiple", with_tensor({33}, 8, 0),
                    "Q8_0 packs blocks of 32 along ne[0], but ne[0] is 33");
    expect_rejected("misaligned", with_tensor({4}, 0, 4), "offset 4 is not a multiple");
    expect_rejected("past_end", with_tensor({128}, 0, 0), "run past the end of the data section");
    expect_rejected("offset_huge", with_tensor({4}, 0, ~uint64_t{0} - 31),
                    "run past the end of the data section");
    expect_rejected("bytes_overflow", with_tensor({1ull << 62, 2}, 0, 0), "overflows");

    auto b = header(2, 0);
    tensor_info(b, "x", {32}, 0, 0);
    tensor_info(b, "y", {32}, 0, 96);  // [96, 224) overlaps x's [0, 128)
    b.pad();
    b.bytes.append(256, '\0');
    expect_rejected("overlap", b.bytes, "tensor 'y' at offset 96 overlaps tensor 'x'");

    auto d = header(2, 0);
    tensor_info(d, "x", {8}, 0, 0);
    tensor_info(d, "x", {8}, 0, 32);
    d.pad();
    d.bytes.append(64, '\0');
    expect_rejected("duplicate_name", d.bytes, "tensor 'x' appears twice");

    auto n = header(1, 0);
    tensor_info(n, "w\xc3", {8}, 0, 0);
    n.pad();
    n.bytes.append(32, '\0');
    expect_rejected("name_utf8", n.bytes, "not valid UTF-8");
}

TEST_CASE("every truncation of a valid GGUF is refused, none crashes", "[gguf][hostile]") {
    const std::string good = valid_file();
    // The header ends (and the data begins) at the first multiple of 32 after the infos.
    size_t refused = 0;
    for (size_t n = 0; n < good.size(); ++n) {
        INFO("truncated to " << n << " bytes");
        try {
            (void)parse_gguf(std::as_bytes(std::span(good.data(), n)));
            FAIL("accepted");
        } catch (const InputError&) {
            ++refused;
        }
    }
    CHECK(refused == good.size());
    expect_rejected("truncated", good.substr(0, good.size() - 1),
                    "tensor 'b.weight': bytes [256, +68) run past the end");
}
