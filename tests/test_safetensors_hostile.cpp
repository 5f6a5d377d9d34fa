// Hand-made corrupt safetensors files. Each must be rejected with exit code 2 and one
// message naming the file and the problem, both by ep::load_model and by
// `edgepack inspect FILE`; none may crash, hang or allocate what the file claims.
#include <cstring>
#include <fstream>

#include "formats/model_io.h"
#include "formats/safetensors.h"
#include "hostile_file.h"
#include "ir/error.h"
#include "support.h"

using namespace ep;

namespace {

std::string le64(uint64_t n) {
    std::string s(8, '\0');
    for (size_t i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
    return s;
}

// A file whose header is exactly `header` (no padding) followed by `data`.
std::string safetensors_file(const std::string& header, const std::string& data = "") {
    return le64(header.size()) + header + data;
}

// One tensor entry.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
           ",\"data_offsets\":" + offsets + "}";
}

void expect_rejected(const std::string& name, const std::string& bytes,
                     const std::string& message) {
    test::expect_file_rejected(name, ".safetensors", bytes, message);
}

// A field of /proc/self/status in kB (VmRSS, VmHWM), or -1.
long proc_status_kb(const std::string& field) {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
    return -1;
}

// Resets this process's peak RSS (VmHWM) to its current RSS; false if the kernel refuses.
bool reset_peak_rss() {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5" << std::flush;
    return clear.good();
}

const std::string kValidTensor = entry("w", "F32", "[2]", "[0,8]");
const std::string kEightBytes(8, '\x01');

}  // namespace

TEST_CASE("safetensors hostile: a valid file is accepted by load_model and inspect",
          "[safetensors][hostile]") {
    // The control case for the hand-made files below.
    test::TempDir dir;
    auto file = dir / "valid.safetensors";
    test::write_file(file, safetensors_file("{" + kValidTensor + "}", kEightBytes));
    Model m = load_model(file);
    REQUIRE(m.graph.initializers.size() == 1);
    CHECK(m.graph.initializers[0].shape == std::vector<int64_t>{2});
    CHECK(test::run_edgepack({"inspect", file.string()}).exit_code == 0);
}

TEST_CASE("safetensors hostile: empty file", "[safetensors][hostile]") {
    expect_rejected("empty", "", "file is 0 bytes");
}

TEST_CASE("safetensors hostile: 4-byte file", "[safetensors][hostile]") {
    expect_rejected("four_bytes", std::string("\x10\0\0\0", 4), "file is 4 bytes");
}

TEST_CASE("safetensors hostile: header length past the end of the file", "[safetensors][hostile]") {
    std::string header = "{" + kValidTensor + "}";
    expect_rejected("length_past_eof", le64(header.size() + 100) + header + kEightBytes,
                    "runs past the end of the file");
}

TEST_CASE("safetensors hostile: header length 2^63", "[safetensors][hostile]") {
    expect_rejected("length_2_63", le64(uint64_t{1} << 63) + "{}", "exceeds the limit");
}

TEST_CASE("safetensors hostile: header length of 200 MB in a small file",
          "[safetensors][hostile]") {
    std::string bytes = le64(200'000'000) + "{" + kValidTensor + "}" + kEightBytes;
    expect_rejected("length_200mb", bytes,
                    "header length 200000000 exceeds the limit of 100000000 bytes");
}

TEST_CASE("safetensors hostile: header length of 200 MB in a small file allocates nothing",
          "[safetensors][hostile]") {
    // Peak memory while loading it stays far below the 200 MB claimed.
    if (!reset_peak_rss())
        EP_SKIP("cannot reset the peak RSS here (/proc/self/clear_refs); memory not measured");
    test::TempDir dir;
    auto file = dir / "length_200mb.safetensors";
    test::write_file(file, le64(200'000'000) + "{" + kValidTensor + "}" + kEightBytes);
    REQUIRE(reset_peak_rss());
    long before = proc_status_kb("VmRSS");
    CHECK_THROWS_AS(load_model(file), InputError);
    long peak = proc_status_kb("VmHWM");
    INFO("RSS before " << before << " kB, peak while loading " << peak << " kB");
    CHECK(peak - before < 20 * 1024);
}

TEST_CASE("safetensors hostile: header just over 100 MB", "[safetensors][hostile]") {
    // The limit is on the declared length, before anything is read.
    expect_rejected("length_100mb_plus_1", le64(100'000'001) + "{}", "exceeds the limit");
}

TEST_CASE("safetensors hostile: invalid JSON", "[safetensors][hostile]") {
    expect_rejected("invalid_json", safetensors_file("{\"w\":{\"dtype\":", kEightBytes),
                    "header is not valid JSON");
}

TEST_CASE("safetensors hostile: header not UTF-8", "[safetensors][hostile]") {
    expect_rejected(
        "not_utf8",
        safetensors_file("{" + entry("w\xff\xfe", "F32", "[2]", "[0,8]") + "}", kEightBytes),
        "header is not valid JSON");
}

TEST_CASE("safetensors hostile: JSON array instead of an object", "[safetensors][hostile]") {
    expect_rejected("json_array", safetensors_file("[1,2,3]", kEightBytes),
                    "header must be a JSON object");
}

TEST_CASE("safetensors hostile: header padded with NUL instead of spaces",
          "[safetensors][hostile]") {
    expect_rejected("nul_padding",
                    safetensors_file("{" + kValidTensor + "}" + std::string(3, '\0'), kEightBytes),
                    "header is not valid JSON");
}

TEST_CASE("safetensors hostile: header starting with whitespace", "[safetensors][hostile]") {
    expect_rejected("leading_space", safetensors_file(" {" + kValidTensor + "}", kEightBytes),
                    "starting with '{'");
}

TEST_CASE("safetensors hostile: unknown dtype F7", "[safetensors][hostile]") {
    expect_rejected("unknown_dtype",
                    safetensors_file("{" + entry("w", "F7", "[2]", "[0,8]") + "}", kEightBytes),
                    "tensor 'w': unknown dtype \"F7\" (known: F64, F32, F16, BF16");
}

TEST_CASE("safetensors hostile: negative shape", "[safetensors][hostile]") {
    expect_rejected("negative_shape",
                    safetensors_file("{" + entry("w", "F32", "[-2]", "[0,8]") + "}", kEightBytes),
                    "tensor 'w': shape [-2]: dimensions must be non-negative integers");
}

TEST_CASE("safetensors hostile: non-integer shape", "[safetensors][hostile]") {
    expect_rejected("float_shape",
                    safetensors_file("{" + entry("w", "F32", "[2.0]", "[0,8]") + "}", kEightBytes),
                    "dimensions must be non-negative integers, found the non-integer number");
}

TEST_CASE("safetensors hostile: shape overflow 2^40 x 2^40", "[safetensors][hostile]") {
    expect_rejected(
        "shape_overflow",
        safetensors_file("{" + entry("w", "F32", "[1099511627776,1099511627776]", "[0,8]") + "}",
                         kEightBytes),
        "tensor 'w': F32 x shape [1099511627776, 1099511627776] overflows");
}

TEST_CASE("safetensors hostile: shape x dtype bytes overflow", "[safetensors][hostile]") {
    // 2^62 elements fit int64, but not as f32 bytes.
    expect_rejected(
        "bytes_overflow",
        safetensors_file("{" + entry("w", "F32", "[4611686018427387904]", "[0,8]") + "}",
                         kEightBytes),
        "tensor 'w': F32 x shape [4611686018427387904] overflows");
}

TEST_CASE("safetensors hostile: shape with more dimensions than any framework allows",
          "[safetensors][hostile]") {
    std::string shape = "[1";
    for (int i = 0; i < 2000; ++i) shape += ",1";
    shape += "]";
    expect_rejected("huge_rank",
                    safetensors_file("{" + entry("w", "F32", shape, "[0,4]") + "}", "abcd"),
                    "has more than 1024 elements");
}

TEST_CASE("safetensors hostile: offsets out of range", "[safetensors][hostile]") {
    expect_rejected("offsets_out_of_range",
                    safetensors_file("{" + entry("w", "F32", "[4]", "[0,16]") + "}", kEightBytes),
                    "tensor 'w': data_offsets [0,16] run past the end of the data buffer "
                    "(8 bytes)");
}

TEST_CASE("safetensors hostile: offsets beyond 2^64", "[safetensors][hostile]") {
    expect_rejected(
        "offsets_beyond_u64",
        safetensors_file("{" + entry("w", "F32", "[2]", "[0,18446744073709551624]") + "}",
                         kEightBytes),
        "data_offsets must be two non-negative integers");
}

TEST_CASE("safetensors hostile: end before begin", "[safetensors][hostile]") {
    expect_rejected("end_before_begin",
                    safetensors_file("{" + entry("w", "F32", "[0]", "[8,0]") + "}", kEightBytes),
                    "tensor 'w': data_offsets [8,0]: end is before begin");
}

TEST_CASE("safetensors hostile: overlapping offsets of two tensors", "[safetensors][hostile]") {
    expect_rejected("overlapping_offsets",
                    safetensors_file("{" + entry("a", "F32", "[2]", "[0,8]") + "," +
                                         entry("b", "F32", "[1]", "[4,8]") + "}",
                                     kEightBytes),
                    "tensor 'b': data_offsets [4, 8] overlap tensor 'a' [0, 8]");
}

TEST_CASE("safetensors hostile: a gap of unindexed bytes between tensors",
          "[safetensors][hostile]") {
    expect_rejected("gap_between_tensors",
                    safetensors_file("{" + entry("a", "F32", "[1]", "[0,4]") + "," +
                                         entry("b", "U8", "[2]", "[6,8]") + "}",
                                     kEightBytes),
                    "bytes [4, 6) of the data buffer belong to no tensor");
}

TEST_CASE("safetensors hostile: unindexed bytes after the last tensor", "[safetensors][hostile]") {
    expect_rejected("trailing_bytes",
                    safetensors_file("{" + entry("w", "F32", "[1]", "[0,4]") + "}", kEightBytes),
                    "bytes [4, 8) at the end of the data buffer belong to no tensor");
}

TEST_CASE("safetensors hostile: shape x dtype differs from the byte range",
          "[safetensors][hostile]") {
    expect_rejected("shape_dtype_mismatch",
                    safetensors_file("{" + entry("w", "F64", "[2]", "[0,8]") + "}", kEightBytes),
                    "tensor 'w': F64 x shape [2] needs 16 bytes, but data_offsets [0,8] cover 8");
}

TEST_CASE("safetensors hostile: metadata value not a string", "[safetensors][hostile]") {
    expect_rejected(
        "metadata_not_string",
        safetensors_file("{\"__metadata__\":{\"step\":3}," + kValidTensor + "}", kEightBytes),
        "__metadata__ 'step': value must be a string");
}

TEST_CASE("safetensors hostile: metadata not an object", "[safetensors][hostile]") {
    expect_rejected(
        "metadata_array",
        safetensors_file("{\"__metadata__\":[\"a\"]," + kValidTensor + "}", kEightBytes),
        "__metadata__ must be an object of strings");
}

TEST_CASE("safetensors hostile: duplicate tensor name", "[safetensors][hostile]") {
    // A JSON parser keeps the last duplicate; the file would silently lose a tensor.
    expect_rejected("duplicate_name",
                    safetensors_file("{" + entry("w", "F32", "[1]", "[0,4]") + "," +
                                         entry("w", "F32", "[1]", "[4,8]") + "}",
                                     kEightBytes),
                    "duplicate key 'w'");
}

TEST_CASE("safetensors hostile: duplicate metadata key", "[safetensors][hostile]") {
    expect_rejected(
        "duplicate_metadata_key",
        safetensors_file("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}," + kValidTensor + "}",
                         kEightBytes),
        "'__metadata__' has the key 'k' twice");
}

TEST_CASE("safetensors hostile: data_offsets missing", "[safetensors][hostile]") {
    expect_rejected("offsets_missing",
                    safetensors_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", kEightBytes),
                    "tensor 'w': missing field 'data_offsets'");
}

TEST_CASE("safetensors hostile: data_offsets with three numbers", "[safetensors][hostile]") {
    expect_rejected("offsets_three",
                    safetensors_file("{" + entry("w", "F32", "[2]", "[0,8,8]") + "}", kEightBytes),
                    "tensor 'w': data_offsets must be two non-negative integers");
}

TEST_CASE("safetensors hostile: unexpected field in a tensor entry", "[safetensors][hostile]") {
    expect_rejected(
        "extra_field",
        safetensors_file(
            "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"offset\":0}}",
            kEightBytes),
        "tensor 'w': unexpected field 'offset'");
}

TEST_CASE("safetensors hostile: tensor entry not an object", "[safetensors][hostile]") {
    expect_rejected("entry_not_object", safetensors_file("{\"w\":\"F32\"}", kEightBytes),
                    "tensor 'w': expected an object");
}

TEST_CASE("safetensors hostile: nesting deeper than a header has", "[safetensors][hostile]") {
    // A 100 MB header of '[' must not build a 50-million-level tree.
    std::string header = "{\"w\":{\"shape\":" + std::string(100'000, '[') + "}}";
    expect_rejected("deep_nesting", safetensors_file(header, kEightBytes), "nesting deeper");
}

TEST_CASE("safetensors hostile: every truncation and byte flip of a valid file is handled",
          "[safetensors][hostile]") {
    // In-process only (the CLI is covered above): each mutated file either loads into a
    // consistent model or is rejected with an InputError; never anything else.
    std::string valid =
        safetensors_file("{\"__metadata__\":{\"k\":\"v\"}," + entry("a", "F32", "[2]", "[0,8]") +
                             "," + entry("b", "U8", "[3]", "[8,11]") + "}",
                         kEightBytes + "xyz");
    test::TempDir dir;
    auto file = dir / "mutant.safetensors";
    // Whether the bytes loaded. A rejection is an InputError from the reader; a model that
    // loads holds tensors whose bytes match their dtype and shape.
    auto try_load = [&](const std::string& bytes) {
        test::write_file(file, bytes);
        Model m;
        try {
            m = read_safetensors(file);
        } catch (const InputError&) {
            return false;
        }
        for (const Tensor& t : m.graph.initializers) CHECK_NOTHROW(t.check_consistent());
        return true;
    };
    REQUIRE(try_load(valid));
    // Every truncation cuts the header or the 11 data bytes the header declares.
    for (size_t n = 0; n < valid.size(); ++n) {
        INFO("truncated to " << n << " bytes");
        CHECK_FALSE(try_load(valid.substr(0, n)));
    }
    int loaded = 0, rejected = 0;
    for (size_t i = 0; i < valid.size(); ++i)
        for (char c : {'\0', '\xff', '0', '9', '"', '{', ']', ',', '-'}) {
            std::string mutant = valid;
            mutant[i] = c;
            INFO("byte " << i << " set to " << static_cast<int>(c));
            ++(try_load(mutant) ? loaded : rejected);
        }
    // Flips in the data bytes (and harmless ones in the header) load; most flips in the
    // header do not.
    CHECK(loaded > 0);
    CHECK(rejected > loaded);
}
