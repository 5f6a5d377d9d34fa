// The .epk format-version policy (docs/epk.md, "Format versions"): a newer minor version of
// the reader's major is read, its unknown manifest keys skipped and listed; a newer (or any
// other) major is refused with exit 2 naming both versions; an unknown key in a file of the
// reader's own minor is an error.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "epk_edit.h"
#include "formats/epk.h"
#include "pass_model.h"
#include "support.h"

namespace fs = std::filesystem;
using namespace ep;
using nlohmann::json;

namespace {

// y = x · w, w int4 group-wise (an encoded tensor, so the encoding entry is exercised).
std::string small_pack() {
    Model m;
    m.opset_imports = {{"", 17}};
    Encoding e = *encoding_from_name("int4g32");
    e.axis = 0;
    m.graph.initializers.push_back(
        quantize_tensor_rtn(make_f32_tensor("w", {64, 8}, test::normal_values(64 * 8, 7)), e));
    m.graph.nodes = {test::make_node("MatMul", "mm", {"x", "w"}, {"y"})};
    m.graph.inputs = {test::f32_value("x", {1, 64})};
    m.graph.outputs = {test::f32_value("y", {1, 8})};
    BufferSink sink;
    write_epk(m, sink);
    auto& b = sink.buffer();
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// Sets the header's major and minor version and reseals.
std::string with_version(std::string f, uint16_t major, uint16_t minor) {
    std::memcpy(f.data() + 8, &major, 2);
    std::memcpy(f.data() + 10, &minor, 2);
    test::reseal(f);
    return f;
}

// Keys a later minor version might add, at four levels of the manifest.
void add_future_keys(json& j) {
    j["signing_hint"] = "x";
    j["provenance"]["build_host"] = "ci-7";
    j["tensors"][0]["stats"] = {{"absmax", 1.5}};
    j["model"]["graph"]["nodes"][0]["schedule"] = 3;
}

}  // namespace

TEST_CASE("epk version: files are 1.0, the u32 1 of the first files", "[epk][epk_version]") {
    std::string f = small_pack();
    uint32_t word = 0;
    std::memcpy(&word, f.data() + 8, 4);
    CHECK(word == 1);  // major 1 (u16 at 8), minor 0 (u16 at 10): unchanged bytes
    test::TempDir dir;
    test::write_file(dir / "m.epk", f);
    auto file = read_epk(dir / "m.epk");
    CHECK(file.info.format_version == 1);
    CHECK(file.info.format_minor == 0);
    CHECK(file.info.skipped_fields.empty());
    auto r = test::run_edgepack({"inspect", (dir / "m.epk").string(), "--json"});
    REQUIRE(r.exit_code == 0);
    auto j = json::parse(r.out);
    CHECK(j["epk"]["format_version"] == 1);
    CHECK(j["epk"]["format_minor"] == 0);
    CHECK(j["epk"]["skipped_fields"].empty());
}

TEST_CASE("epk version: a newer minor is read, its unknown keys skipped and listed",
          "[epk][epk_version]") {
    test::TempDir dir;
    const std::string base = small_pack();
    test::write_file(dir / "v1.0.epk", base);
    std::string newer = with_version(test::edit_manifest(base, add_future_keys), 1, 3);
    test::put_u64(newer, 56, 0x5eed);  // the reserved field, which a newer minor may use
    test::reseal(newer);
    test::write_file(dir / "v1.3.epk", newer);

    auto file = read_epk(dir / "v1.3.epk", {.verify_tensor_checksums = true});
    CHECK(file.info.format_version == 1);
    CHECK(file.info.format_minor == 3);
    std::vector<std::string> want = {"provenance: 'build_host'", "tensor 'w': 'stats'",
                                     "graph nodes[0]: 'schedule'", "top level: 'signing_hint'"};
    std::sort(want.begin(), want.end());
    auto got = file.info.skipped_fields;
    std::sort(got.begin(), got.end());
    CHECK(got == want);
    auto same = read_epk(dir / "v1.0.epk");
    REQUIRE(file.model.graph.initializers.size() == 1);
    auto a = file.model.graph.initializers[0].data.bytes();
    auto b = same.model.graph.initializers[0].data.bytes();
    CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));

    auto r = test::run_edgepack({"inspect", (dir / "v1.3.epk").string()});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("epk version 1.3"));
    CHECK_THAT(r.out, Catch::Contains("skipped     tensor 'w': 'stats' (newer minor version"));
    // Both files compute the same bytes (one seeded sample: the check is that they agree).
    for (const char* name : {"v1.0", "v1.3"}) {
        r = test::run_edgepack({"run", (dir / (std::string(name) + ".epk")).string(), "--samples",
                                "1", "--seed", "3", "--out", (dir / name).string(), "--quiet"});
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
    }
    CHECK(test::read_file(dir / "v1.0" / "sample_0" / "y.npy") ==
          test::read_file(dir / "v1.3" / "sample_0" / "y.npy"));

    // What a reader cannot skip is still refused, naming the tensor.
    std::string unknown_encoding = with_version(
        test::edit_manifest(base, [](json& j) { j["tensors"][0]["encoding"]["name"] = "int3g32"; }),
        1, 3);
    test::write_file(dir / "enc.epk", unknown_encoding);
    r = test::run_edgepack({"inspect", (dir / "enc.epk").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("tensor 'w' encoding: unknown encoding 'int3g32'"));
}

TEST_CASE("epk version: an unknown key in a file of this minor is an error", "[epk][epk_version]") {
    test::TempDir dir;
    test::write_file(dir / "m.epk", test::edit_manifest(small_pack(), add_future_keys));
    auto r = test::run_edgepack({"inspect", (dir / "m.epk").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("m.epk: manifest: provenance: unknown field 'build_host'"));
    std::string reserved = small_pack();
    test::put_u64(reserved, 56, 1);
    test::reseal(reserved);
    test::write_file(dir / "r.epk", reserved);
    r = test::run_edgepack({"inspect", (dir / "r.epk").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("reserved field is 1"));
}

TEST_CASE("epk version: another major is refused with exit 2 naming both versions",
          "[epk][epk_version]") {
    test::TempDir dir;
    const std::string base = small_pack();
    struct Case {
        uint16_t major, minor;
        const char* why;
    };
    for (Case c : {Case{2, 0, "a newer edgepack wrote it"}, Case{7, 4, "a newer edgepack wrote it"},
                   Case{0, 9, "no edgepack writes it"}}) {
        INFO("version " << c.major << "." << c.minor);
        test::write_file(dir / "m.epk", with_version(base, c.major, c.minor));
        for (const char* command : {"inspect", "run"}) {
            auto r = test::run_edgepack({command, (dir / "m.epk").string()});
            CHECK(r.exit_code == 2);
            CHECK_THAT(r.err,
                       Catch::Contains(cat("m.epk: header: format version ", c.major, ".", c.minor,
                                           " is not supported: this edgepack reads "
                                           "format version 1.x (it writes 1.0); ",
                                           c.why)));
        }
    }
    // A newer major that seals the file another way: the checksum fails first, and the
    // message still names the version the header claims.
    std::string other_seal = with_version(base, 2, 1);
    other_seal[other_seal.size() - 1] ^= 0x55;
    test::write_file(dir / "m.epk", other_seal);
    auto r = test::run_edgepack({"run", (dir / "m.epk").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("checksum mismatch: the file is corrupt or truncated (or its "
                                      "header's format version 2.1 is right, and it is newer "
                                      "than the 1.x this edgepack reads)"));
}
