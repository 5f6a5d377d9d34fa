// Hostile .epk files: every one is refused with exit code 2 by `edgepack inspect` (and
// `edgepack run` for corruption), with a message naming the file and the problem. Most
// cases re-seal the checksum after the damage, so the check behind the checksum is reached.
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>

#include "epk_edit.h"
#include "formats/epk.h"
#include "support.h"

using namespace ep;
using nlohmann::json;
using test::edit_manifest;
using test::manifest_of;
using test::put_u32;
using test::put_u64;
using test::reseal;
using test::with_manifest;

namespace {

// A small valid model: two f32 initializers, one int4 encoded, a node using them.
Model small_model() {
    Model m;
    m.opset_imports = {{"", 17}};
    std::vector<float> w(64 * 8), b(8);
    for (size_t i = 0; i < w.size(); ++i) w[i] = float(int(i % 13) - 6) * 0.1f;
    for (size_t i = 0; i < b.size(); ++i) b[i] = float(i);
    Encoding e = *encoding_from_name("int4g32");
    e.axis = 0;
    m.graph.initializers.push_back(quantize_tensor_rtn(make_f32_tensor("w", {64, 8}, w), e));
    m.graph.initializers.push_back(make_f32_tensor("b", {8}, b));
    Node n;
    n.op_type = "MatMul";
    n.inputs = {"x", "w"};
    n.outputs = {"y0"};
    Node add;
    add.op_type = "Add";
    add.inputs = {"y0", "b"};
    add.outputs = {"y"};
    m.graph.nodes = {n, add};
    m.graph.inputs = {ValueInfo{
        "x", ValueType{true, DType::F32, std::vector<Dim>{{1, "", ""}, {64, "", ""}}, "", ""}, ""}};
    m.graph.outputs = {ValueInfo{"y", std::nullopt, ""}};
    return m;
}

std::string valid_file() {
    BufferSink sink;
    write_epk(small_model(), sink);
    auto& b = sink.buffer();
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

using Case = test::HostileCase;

std::vector<Case> hostile_cases() {
    auto header = test::patched_field;
    auto manifest = [](std::function<void(json&)> edit) {
        return [=](const std::string& f) { return edit_manifest(f, edit); };
    };
    auto text = [](std::string t) {
        return [=](const std::string& f) { return with_manifest(f, t); };
    };
    return {
        {"empty file", [](const std::string&) { return std::string(); }, "at least 96"},
        {"flipped data byte",
         [](const std::string& f) {
             std::string g = f;
             g[70] ^= 1;
             return g;
         },
         "checksum mismatch: the file is corrupt or truncated"},
        {"truncated by one byte", [](const std::string& f) { return f.substr(0, f.size() - 1); },
         "checksum mismatch"},
        {"not an epk file",
         [](const std::string& f) {
             std::string g(f.size(), 'x');
             return g;
         },
         "not the .epk magic"},
        {"bad magic resealed",
         [](const std::string& f) {
             std::string g = f;
             g[1] = 'X';
             reseal(g);
             return g;
         },
         "bad magic"},
        {"format version 2", header(8, 2, 4), "format version 2.0 is not supported"},
        {"header size 32", header(12, 32, 4), "header_size 32"},
        {"reserved field set", header(56, 1, 8), "reserved field"},
        {"file length wrong", header(48, 12345, 8), "file_length 12345"},
        {"data offset 128", header(32, 128, 8), "data_offset 128"},
        {"data length not aligned", header(40, 100, 8), "not a multiple of 64"},
        {"manifest offset elsewhere", header(16, 64, 8), "must end where the manifest starts"},
        {"manifest length absurd", header(24, uint64_t{1} << 62, 8), "manifest_length"},
        {"tensor offset past the data", manifest([](json& j) { j["tensors"][1]["offset"] = 4096; }),
         "tensor 'b': offset 4096 + 32 bytes runs past the data section"},
        {"tensor offset misaligned", manifest([](json& j) { j["tensors"][1]["offset"] = 8; }),
         "tensor 'b': offset 8 is not a multiple of 64"},
        {"tensors overlap", manifest([](json& j) { j["tensors"][1]["offset"] = 0; }),
         "overlaps the previous tensor"},
        {"offset huge", manifest([](json& j) { j["tensors"][1]["offset"] = uint64_t(-64); }),
         "runs past the data section"},
        {"absurd shape", manifest([](json& j) {
             j["tensors"][1]["shape"] = {int64_t(1) << 62, int64_t(1) << 62};
         }),
         "overflows"},
        {"negative dimension", manifest([](json& j) { j["tensors"][1]["shape"] = {-8}; }),
         "non-negative"},
        {"bytes disagree with shape", manifest([](json& j) { j["tensors"][1]["shape"] = {9}; }),
         "f32 x [9] needs 36 bytes, but the table says 32"},
        {"encoded bytes disagree", manifest([](json& j) {
             j["tensors"][0]["shape"] = {128, 8};
         }),
         "int4g32 x [128, 8] needs"},
        {"unknown encoding",
         manifest([](json& j) { j["tensors"][0]["encoding"]["name"] = "int3g32"; }),
         "unknown encoding 'int3g32'"},
        {"encoding axis 2", manifest([](json& j) { j["tensors"][0]["encoding"]["axis"] = 2; }),
         "axis 2"},
        {"encoded f16", manifest([](json& j) { j["tensors"][0]["dtype"] = "f16"; }),
         "logical dtype f32"},
        {"unknown dtype", manifest([](json& j) { j["tensors"][1]["dtype"] = "f31"; }),
         "unknown dtype 'f31'"},
        {"bad sha256 text", manifest([](json& j) { j["tensors"][1]["sha256"] = "xyz"; }),
         "sha256 must be 64 lowercase hex digits"},
        {"tensor sha256 mismatch",
         manifest([](json& j) { j["tensors"][1]["sha256"] = std::string(64, 'a'); }),
         "tensor 'b': sha256 mismatch"},
        {"manifest not JSON", text("{\"format\": "), "not valid JSON"},
        {"manifest duplicate key",
         [](const std::string& f) {
             std::string m = manifest_of(f);
             return with_manifest(f, "{\"format\":\"x\"," + m.substr(1));
         },
         "duplicate key 'format'"},
        {"manifest nested deep", text(std::string(600, '[') + std::string(600, ']')),
         "nested deeper"},
        {"manifest is an array", text("[]"), "expected an object"},
        {"manifest unknown field", manifest([](json& j) { j["extra"] = 1; }),
         "unknown field 'extra'"},
        {"manifest missing model", manifest([](json& j) { j.erase("model"); }),
         "missing field 'model'"},
        {"manifest wrong format name", manifest([](json& j) { j["format"] = "other"; }),
         "edgepack.epk"},
        {"manifest version disagrees", manifest([](json& j) { j["format_version"] = 3; }),
         "disagrees with the header"},
        {"initializer index out of range",
         manifest([](json& j) { j["model"]["graph"]["initializers"][1] = 7; }),
         "tensor index 7 is out of range"},
        {"tensor used twice", manifest([](json& j) { j["model"]["graph"]["initializers"][1] = 0; }),
         "referred to more than once"},
        {"tensor unused", manifest([](json& j) { j["model"]["graph"]["initializers"].erase(1); }),
         "is not referred to by the model"},
        {"attribute type unknown", manifest([](json& j) {
             j["model"]["graph"]["nodes"][0]["attributes"] =
                 json::array({json{{"name", "a"}, {"type", "matrix"}}});
         }),
         "unknown attribute type 'matrix'"},
        {"bad base64", manifest([](json& j) {
             j["model"]["training_info"] = json::array({json{{"base64", "@@@"}}});
         }),
         "invalid base64"},
        {"node field of the wrong type",
         manifest([](json& j) { j["model"]["graph"]["nodes"][1]["inputs"] = 3; }),
         "'inputs' must be an array"},
        {"source format unknown", manifest([](json& j) { j["model"]["source_format"] = "tflite"; }),
         "source_format"},
    };
}

}  // namespace

TEST_CASE("epk hostile: each damaged file is exit 2 with a message naming the problem",
          "[epk][hostile]") {
    const std::string good = valid_file();
    test::TempDir dir;
    test::write_file(dir / "good.epk", good);
    auto ok = test::run_edgepack({"inspect", (dir / "good.epk").string()});
    INFO(ok.err);
    REQUIRE(ok.exit_code == 0);
    auto cases = hostile_cases();
    CHECK(cases.size() >= 15);
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.label) {
            auto path = dir / "bad.epk";
            test::write_file(path, c.make(good));
            auto r = test::run_edgepack({"inspect", path.string()});
            INFO(r.err);
            CHECK(r.exit_code == 2);
            CHECK_THAT(r.err, Catch::Contains("bad.epk: "));
            CHECK_THAT(r.err, Catch::Contains(c.expected));
        }
    }
}

TEST_CASE(
    "epk hostile: truncation at every header boundary and a flipped byte anywhere are refused",
    "[epk][hostile]") {
    const std::string good = valid_file();
    test::TempDir dir;
    auto path = dir / "cut.epk";
    for (size_t size :
         {size_t{0}, size_t{7}, size_t{8}, size_t{12}, size_t{16}, size_t{24}, size_t{32},
          size_t{40}, size_t{48}, size_t{56}, size_t{64}, size_t{95}, size_t{96}, good.size() / 2,
          good.size() - 33, good.size() - 32, good.size() - 1}) {
        INFO("truncated to " << size << " of " << good.size() << " bytes");
        test::write_file(path, good.substr(0, size));
        try {
            (void)read_epk(path);
            FAIL("read a truncated file");
        } catch (const InputError& e) {
            std::string msg = e.what();
            CHECK_THAT(msg, Catch::Contains("cut.epk: "));
            bool named = msg.find("checksum mismatch") != std::string::npos ||
                         msg.find("at least 96") != std::string::npos;
            CHECK(named);
        }
    }
    // Every single byte, flipped: the checksum catches it (the file is small).
    size_t refused = 0;
    for (size_t at = 0; at < good.size(); ++at) {
        std::string bad = good;
        bad[at] ^= 0x20;
        test::write_file(path, bad);
        try {
            (void)read_epk(path);
        } catch (const InputError& e) {
            if (std::string(e.what()).find("checksum mismatch") != std::string::npos) ++refused;
        }
    }
    CHECK(refused == good.size());
    // And through the CLI: `edgepack run` refuses with exit 2 naming the checksum.
    for (size_t at : {size_t{3}, size_t{20}, size_t{100}, good.size() - 40, good.size() - 5}) {
        std::string bad = good;
        bad[at] ^= 0x01;
        test::write_file(path, bad);
        auto r = test::run_edgepack({"run", path.string()});
        INFO("byte " << at << ": " << r.err);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains("checksum mismatch"));
    }
}
