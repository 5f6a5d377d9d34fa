// Delta updates between packs: `edgepack diff` / `edgepack apply` (formats/epk_delta.h).
// The rebuilt pack is compared byte for byte with the new one; the delta's size is checked
// against the bytes the two packs share; hostile deltas are exit 2 with no output left.
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>

#include "epk_edit.h"
#include "formats/epk.h"
#include "formats/epk_delta.h"
#include "formats/model_io.h"
#include "support.h"

using namespace ep;
using nlohmann::json;
using test::put_u32;
using test::put_u64;
using test::reseal;

namespace {

// A [64, 64] f32 tensor (16 KiB) whose values depend on `seed`.
Tensor seeded(const std::string& name, int seed) {
    std::vector<float> v(64 * 64);
    for (size_t i = 0; i < v.size(); ++i) v[i] = float((int(i) * 7 + seed * 131) % 97) * 0.01f;
    return make_f32_tensor(name, {64, 64}, v);
}

Model pack(std::vector<Tensor> tensors) {
    Model m;
    m.opset_imports = {{"", 17}};
    m.graph.initializers = std::move(tensors);
    return m;
}

// The base: a, b, c. The new pack: b under a new name and first, a unchanged, c with one
// value changed, d new. So 2 of its 4 tensors come from the base (one renamed and moved).
Model base_model() {
    return pack({seeded("a", 1), seeded("b", 2), seeded("c", 3)});
}
Model new_model() {
    Tensor c = seeded("c", 3);
    c.data.mutable_bytes()[100] = std::byte{0x3f};
    return pack({seeded("b2", 2), seeded("a", 1), c, seeded("d", 4)});
}

struct Pair {
    test::TempDir dir;
    std::filesystem::path base = dir / "old.epk", target = dir / "new.epk",
                          delta = dir / "update.epkd";
    Pair() {
        write_epk(base_model(), base);
        write_epk(new_model(), target);
    }
};

json run_json(const std::vector<std::string>& args) {
    auto r = test::run_edgepack(args);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out);
}

}  // namespace

TEST_CASE(
    "epk delta: diff then apply rebuilds the new pack bit for bit, copying a tensor "
    "found in the base under another name",
    "[epk][delta]") {
    Pair p;
    auto d = run_json(
        {"diff", p.base.string(), p.target.string(), "-o", p.delta.string(), "--json", "-q"});
    CHECK(d["schema"] == "edgepack.diff/1");
    CHECK(d["tensors"]["total"] == 4);
    CHECK(d["tensors"]["reused"] == 2);
    CHECK(d["tensors"]["reused_renamed"] == 1);
    CHECK(d["tensors"]["changed"] == 2);
    CHECK(d["changed"][0]["name"] == "c");
    CHECK(d["changed"][0]["in_base"] == true);
    CHECK(d["changed"][1]["name"] == "d");
    CHECK(d["changed"][1]["in_base"] == false);
    CHECK(d["bytes"]["reused"] == 2 * 16384);
    CHECK(d["bytes"]["changed"] == 2 * 16384);
    const uint64_t delta_bytes = std::filesystem::file_size(p.delta);
    CHECK(d["delta"]["bytes"] == delta_bytes);
    CHECK(d["target"]["sha256"] == sha256_file_hex(p.target));
    CHECK(d["base"]["sha256"] == sha256_file_hex(p.base));
    // The delta is the new pack minus the two reused tensors, plus its own header, records
    // and checksum.
    const uint64_t carried = std::filesystem::file_size(p.target) - 2 * 16384;
    CHECK(delta_bytes > carried);
    CHECK(delta_bytes < carried + 512);

    auto out = p.dir / "rebuilt.epk";
    auto a =
        run_json({"apply", p.base.string(), p.delta.string(), "-o", out.string(), "--json", "-q"});
    CHECK(a["sha256"] == sha256_file_hex(p.target));
    CHECK(a["bytes_from_base"] == 2 * 16384);
    CHECK(test::read_file(out) == test::read_file(p.target));

    // The text form names the sizes and both digests.
    auto t = test::run_edgepack(
        {"diff", p.base.string(), p.target.string(), "-o", (p.dir / "t.epkd").string(), "-q"});
    CHECK(t.exit_code == 0);
    CHECK_THAT(t.out, Catch::Contains("4 in the new pack, 2 reused from the base"));
    CHECK_THAT(t.out, Catch::Contains("1 of them under another name"));
    CHECK_THAT(t.out, Catch::Contains(sha256_file_hex(p.base)));
    CHECK(test::read_file(p.dir / "t.epkd") == test::read_file(p.delta));  // deterministic
}

TEST_CASE(
    "epk delta: apply in place replaces the base, and --dry-run checks everything and "
    "writes nothing",
    "[epk][delta]") {
    Pair p;
    auto dry = test::run_edgepack(
        {"diff", p.base.string(), p.target.string(), "-o", p.delta.string(), "--dry-run", "-q"});
    CHECK(dry.exit_code == 0);
    CHECK_THAT(dry.out, Catch::Contains("dry run, not written"));
    CHECK_FALSE(std::filesystem::exists(p.delta));
    REQUIRE(test::run_edgepack(
                {"diff", p.base.string(), p.target.string(), "-o", p.delta.string(), "-q"})
                .exit_code == 0);
    const std::string old_bytes = test::read_file(p.base);
    auto r = test::run_edgepack(
        {"apply", p.base.string(), p.delta.string(), "-o", p.base.string(), "--dry-run", "-q"});
    CHECK(r.exit_code == 0);
    CHECK(test::read_file(p.base) == old_bytes);
    r = test::run_edgepack(
        {"apply", p.base.string(), p.delta.string(), "-o", p.base.string(), "-q"});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(test::read_file(p.base) == test::read_file(p.target));
    // Applied again, the base is now the new pack: refused, naming both digests.
    r = test::run_edgepack({"apply", p.base.string(), p.delta.string(), "-o", p.base.string()});
    CHECK(r.exit_code == 2);
    for (const auto& e : std::filesystem::directory_iterator(p.dir.path()))
        CHECK(e.path().filename().string().find("edgepack-tmp") == std::string::npos);
    // diff refuses to write its delta over one of its inputs.
    r = test::run_edgepack({"diff", p.base.string(), p.target.string(), "-o", p.target.string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("the delta would replace its input"));
}

TEST_CASE(
    "epk delta: a delta applied to another base is exit 2 naming both digests, and "
    "writes nothing",
    "[epk][delta]") {
    Pair p;
    REQUIRE(test::run_edgepack(
                {"diff", p.base.string(), p.target.string(), "-o", p.delta.string(), "-q"})
                .exit_code == 0);
    auto other = p.dir / "other.epk";
    write_epk(pack({seeded("a", 5)}), other);
    auto out = p.dir / "out.epk";
    for (bool dry : {false, true}) {
        std::vector<std::string> args = {"apply", other.string(), p.delta.string(), "-o",
                                         out.string()};
        if (dry) args.push_back("--dry-run");
        auto r = test::run_edgepack(args);
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains("update.epkd: made for a base pack with SHA-256 " +
                                          sha256_file_hex(p.base)));
        CHECK_THAT(r.err, Catch::Contains("other.epk has SHA-256 " + sha256_file_hex(other)));
        CHECK_FALSE(std::filesystem::exists(out));
    }
    // Also refused: a new pack given as the delta, and a damaged pack as either input.
    auto r = test::run_edgepack({"apply", p.base.string(), p.target.string(), "-o", out.string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("this is an .epk pack, not a delta"));
    std::string bad = test::read_file(p.target);
    bad[200] ^= 1;
    test::write_file(p.dir / "bad.epk", bad);
    r = test::run_edgepack(
        {"diff", p.base.string(), (p.dir / "bad.epk").string(), "-o", (p.dir / "x.epkd").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("bad.epk: checksum mismatch"));
    CHECK_FALSE(std::filesystem::exists(p.dir / "x.epkd"));
}

namespace {

// Hostile deltas, resealed so the check behind the trailer is reached. Offsets: header 128,
// records from 128 (24 bytes each: kind u32, reserved u32, source u64, length u64).
using DeltaCase = test::HostileCase;

std::vector<DeltaCase> hostile_deltas() {
    auto field = test::patched_field;
    auto record = [&](size_t index, size_t offset, uint64_t v, int n) {
        return field(128 + 24 * index + offset, v, n);
    };
    // The first record is the target's 64-byte header from the payload; the second the
    // base's tensor 'b' (a copy), see the case above.
    return {
        {"empty", [](const std::string&) { return std::string(); }, "at least 184"},
        {"truncated", [](const std::string& f) { return f.substr(0, f.size() - 1); },
         "checksum mismatch: the delta is corrupt or truncated"},
        {"flipped payload byte",
         [](const std::string& f) {
             std::string g = f;
             g[g.size() - 100] ^= 1;
             return g;
         },
         "checksum mismatch: the delta is corrupt or truncated"},
        {"not a delta", [](const std::string& f) { return std::string(f.size(), 'x'); },
         "not the .epkd magic"},
        {"bad magic resealed",
         [](const std::string& f) {
             std::string g = f;
             g[3] = 'X';
             reseal(g);
             return g;
         },
         "header: bad magic"},
        {"format version 2", field(8, 2, 4), "format version 2 is not supported"},
        {"header size 64", field(12, 64, 4), "header_size 64"},
        {"reserved header bytes", field(120, 1, 8), "reserved bytes"},
        {"record count huge", field(96, uint64_t{1} << 61, 8), "do not fill the file"},
        {"record count zero", field(96, 0, 8), "do not fill the file"},
        {"payload length wrong", field(104, 1, 8), "do not fill the file"},
        {"target length small", field(88, 10, 8), "target_length 10"},
        {"target length larger than the records", field(88, uint64_t{1} << 40, 8),
         "but target_length is"},
        {"unknown record kind", record(0, 0, 9, 4),
         "record 0 (unknown, source 0, length 64): kind 9"},
        {"record reserved", record(0, 4, 1, 4), "reserved field is 1"},
        {"record length zero", record(0, 16, 0, 8), "length 0"},
        {"payload out of order", record(0, 8, 8, 8), "must start at payload offset 0"},
        {"copy past the base", record(1, 8, uint64_t{1} << 40, 8), "runs past the base file"},
        {"copy offset overflows", record(1, 8, uint64_t(-8), 8), "runs past the base file"},
        {"zeros with a source", record(1, 0, 3, 4), "a zeros record has source 0"},
        {"payload record past the payload", record(0, 16, uint64_t{1} << 40, 8),
         "runs past the payload"},
        {"records longer than the target", field(88, 1000, 8),
         "the records run past target_length (1000 bytes)"},
        {"base length wrong", field(48, 12, 8), "runs past the base file (12 bytes)"},
        {"payload byte changed",
         [](const std::string& f) {
             std::string g = f;
             g[g.size() - 200] ^= 1;  // inside the new manifest
             reseal(g);
             return g;
         },
         "the delta is inconsistent; nothing was written"},
    };
}

}  // namespace

TEST_CASE("epk delta hostile: each damaged delta is exit 2 naming the problem, no output left",
          "[epk][delta][hostile]") {
    Pair p;
    REQUIRE(test::run_edgepack(
                {"diff", p.base.string(), p.target.string(), "-o", p.delta.string(), "-q"})
                .exit_code == 0);
    const std::string good = test::read_file(p.delta);
    // The layout the cases rely on: record 0 carries the header, record 1 copies 'b'.
    REQUIRE(test::get_u64(good, 128 + 16) == 64);
    REQUIRE(std::memcmp(good.data() + 128 + 24, "\x02\0\0\0", 4) == 0);
    // One loop, not sections: Catch would re-run the set-up for every section.
    for (const auto& c : hostile_deltas()) {
        INFO(c.label);
        auto bad = p.dir / "bad.epkd";
        auto out = p.dir / "out.epk";
        test::write_file(bad, c.make(good));
        auto r = test::run_edgepack({"apply", p.base.string(), bad.string(), "-o", out.string()});
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains("bad.epkd: "));
        CHECK_THAT(r.err, Catch::Contains(c.expected));
        CHECK_FALSE(std::filesystem::exists(out));
        size_t left = 0;
        for (const auto& e : std::filesystem::directory_iterator(p.dir.path()))
            left += e.path().filename().string().find("out.epk") != std::string::npos;
        CHECK(left == 0);
    }
}

TEST_CASE("epk delta hostile: a truncated delta and a flipped byte anywhere are refused",
          "[epk][delta][hostile]") {
    Pair p;
    REQUIRE(test::run_edgepack(
                {"diff", p.base.string(), p.target.string(), "-o", p.delta.string(), "-q"})
                .exit_code == 0);
    const std::string good = test::read_file(p.delta);
    // Truncated at every header field boundary, and a flipped byte anywhere: refused.
    auto bad = p.dir / "cut.epkd";
    for (size_t size : {size_t{0}, size_t{8}, size_t{16}, size_t{48}, size_t{96}, size_t{128},
                        size_t{152}, size_t{183}, good.size() / 2, good.size() - 32}) {
        INFO("truncated to " << size);
        test::write_file(bad, good.substr(0, size));
        CHECK_THROWS_AS(read_epk_delta_header(bad), InputError);
    }
    size_t refused = 0;
    for (size_t at = 0; at < good.size(); at += 61) {
        std::string g = good;
        g[at] ^= 0x10;
        test::write_file(bad, g);
        try {
            (void)read_epk_delta_header(bad);
        } catch (const InputError& e) {
            refused += std::string(e.what()).find("checksum mismatch") != std::string::npos;
        }
    }
    CHECK(refused == (good.size() + 60) / 61);
}

namespace {

// Compresses with an example recipe's passes (its validation, gates and reports left out,
// so the test stays fast), the adapter of a merge-lora pass replaced when given.
std::filesystem::path compress_example(const test::TempDir& dir, const std::string& recipe,
                                       const std::string& out,
                                       const std::filesystem::path& adapter = {}) {
    const auto examples = test::source_dir() / "examples" / "recipes";
    json r = json::parse(test::read_file(examples / recipe));
    json slim{{"model", (examples / r["model"].get<std::string>()).lexically_normal().string()},
              {"passes", r["passes"]},
              {"output", (dir / out).string()}};
    for (auto& pass : slim["passes"])
        if (pass.contains("adapter"))
            pass["adapter"] = adapter.empty()
                                  ? (examples / pass["adapter"].get<std::string>()).string()
                                  : adapter.string();
    test::write_file(dir / (out + ".json"), slim.dump());
    auto res = test::run_edgepack({"compress", (dir / (out + ".json")).string(), "--quiet"});
    INFO(res.err);
    REQUIRE(res.exit_code == 0);
    return dir / out;
}

// diff + apply of a real pair: the rebuilt pack is the new one byte for byte.
json round_trip(const test::TempDir& dir, const std::filesystem::path& base,
                const std::filesystem::path& target) {
    auto delta = dir / (target.stem().string() + ".epkd");
    auto d =
        run_json({"diff", base.string(), target.string(), "-o", delta.string(), "--json", "-q"});
    auto rebuilt = dir / "rebuilt.epk";
    auto r =
        test::run_edgepack({"apply", base.string(), delta.string(), "-o", rebuilt.string(), "-q"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(test::read_file(rebuilt) == test::read_file(target));
    CHECK(load_model(rebuilt).graph.nodes.size() == load_model(target).graph.nodes.size());
    std::filesystem::remove(rebuilt);
    UNSCOPED_INFO("delta " << d["delta"]["bytes"] << " of " << d["target"]["bytes"] << " bytes");
    return d;
}

}  // namespace

TEST_CASE(
    "epk delta: stories260k re-quantized (int8 -> int4) round trips bit for bit, and the "
    "unquantized tensors come from the base",
    "[epk][delta][real]") {
    const auto model = test::shared_models() / "stories260k" / "model.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model);
    test::TempDir dir;
    auto int8 = compress_example(dir, "stories260k-int8.json", "int8.epk");
    auto int4 = compress_example(dir, "stories260k-int4-rtn.json", "int4.epk");
    json d = round_trip(dir, int8, int4);
    // Every quantized MatMul weight changed; the embedding table and the norms did not.
    Model m = load_model(int4);
    size_t encoded = 0, plain = 0;
    for (const auto& t : m.graph.initializers) (t.is_encoded() ? encoded : plain) += 1;
    CHECK(d["tensors"]["changed"] == encoded);
    CHECK(d["tensors"]["reused"] >= 1);
    CHECK(d["delta"]["bytes"] < d["target"]["bytes"]);
}

TEST_CASE(
    "epk delta: stories260k with another LoRA adapter merged (int4) round trips bit "
    "for bit, and the delta carries only the adapted projections",
    "[epk][delta][real][lora]") {
    const auto model = test::shared_models() / "stories260k" / "model.onnx";
    const auto data = test::source_dir() / ".cache" / "data";
    EP_REQUIRE_FILE_OR_SKIP(model);
    EP_REQUIRE_FILE_OR_SKIP(data / "stories260k-lora" / "adapter_model.safetensors");
    EP_REQUIRE_FILE_OR_SKIP(data / "stories260k-lora-2" / "adapter_model.safetensors");
    test::TempDir dir;
    auto a = compress_example(dir, "stories260k-lora-int4.json", "lora1.epk");
    auto b = compress_example(dir, "stories260k-lora-int4.json", "lora2.epk",
                              data / "stories260k-lora-2");
    json d = round_trip(dir, a, b);
    // 5 layers x (q, v, FFN down) adapted: those 15 weights changed, nothing else.
    CHECK(d["tensors"]["changed"] == 15);
    for (const auto& c : d["changed"]) {
        const auto name = c["name"].get<std::string>();
        INFO(name);
        const bool adapted = name.find("attention.wq") != std::string::npos ||
                             name.find("attention.wv") != std::string::npos ||
                             name.find("feed_forward.w2") != std::string::npos;
        CHECK(adapted);
        CHECK(c["in_base"] == true);
    }
    CHECK(d["delta"]["bytes"].get<double>() < 0.5 * d["target"]["bytes"].get<double>());
}

TEST_CASE(
    "epk delta: apply --verify-key rebuilds from a signed delta and refuses an unsigned, "
    "another key's or a tampered one with exit 2 and no output",
    "[epk][delta][signature]") {
    Pair p;
    REQUIRE(test::run_edgepack(
                {"diff", p.base.string(), p.target.string(), "-o", p.delta.string(), "-q"})
                .exit_code == 0);
    const auto key = p.dir / "k", other = p.dir / "other";
    REQUIRE(test::run_edgepack({"keygen", "-o", key.string()}).exit_code == 0);
    REQUIRE(test::run_edgepack({"keygen", "-o", other.string()}).exit_code == 0);
    const auto out = p.dir / "rebuilt.epk";
    auto apply = [&] {
        return test::run_edgepack({"apply", p.base.string(), p.delta.string(), "-o", out.string(),
                                   "--verify-key", key.string() + ".pub", "-q"});
    };
    // No signature yet.
    auto r = apply();
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("update.epkd"));
    CHECK_FALSE(std::filesystem::exists(out));
    // Signed by another key.
    REQUIRE(test::run_edgepack({"sign", p.delta.string(), "--key", other.string() + ".key"})
                .exit_code == 0);
    r = apply();
    CHECK(r.exit_code == 2);
    CHECK_FALSE(std::filesystem::exists(out));
    // Signed by the right key: rebuilt bit for bit.
    std::filesystem::remove(p.delta.string() + ".sig");
    REQUIRE(
        test::run_edgepack({"sign", p.delta.string(), "--key", key.string() + ".key"}).exit_code ==
        0);
    r = apply();
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(test::read_file(out) == test::read_file(p.target));
    std::filesystem::remove(out);
    // One byte of the delta changed after signing.
    std::string bytes = test::read_file(p.delta);
    bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x01);
    test::write_file(p.delta, bytes);
    r = apply();
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("signature"));
    CHECK_FALSE(std::filesystem::exists(out));
}
