// safetensors interop: files the Python package writes read back tensor for tensor,
// files edgepack writes load in the Python package, and for the same tensors both write
// the same bytes. The oracles are scripts/xcheck/st_make.py and st_dump.py.
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "formats/model_io.h"
#include "formats/safetensors.h"
#include "ir/ir.h"
#include "support.h"

using namespace ep;
using nlohmann::json;

namespace {

std::string to_hex(std::span<const std::byte> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(bytes.size() * 2);
    for (std::byte b : bytes) {
        s += digits[static_cast<uint8_t>(b) >> 4];
        s += digits[static_cast<uint8_t>(b) & 0xF];
    }
    return s;
}

json oracle(const std::string& script, const std::vector<std::string>& args) {
    auto r = test::run_oracle(script, args);
    INFO(script << " stderr:\n" << r.err);
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out);
}

Tensor make_tensor(std::string name, DType dtype, std::vector<int64_t> shape, uint32_t seed) {
    Tensor t;
    t.name = std::move(name);
    t.dtype = dtype;
    t.shape = std::move(shape);
    std::vector<std::byte> bytes(t.expected_bytes());
    std::mt19937 rng(seed);
    for (auto& b : bytes) b = static_cast<std::byte>(rng());
    if (dtype == DType::Bool)
        for (auto& b : bytes) b &= std::byte{1};
    t.data = TensorData::owned(std::move(bytes));
    return t;
}

// Every dtype safetensors and edgepack share, scalars, empty tensors, odd names.
Model sample_model() {
    Model m;
    uint32_t seed = 1;
    auto add = [&](std::string name, DType dtype, std::vector<int64_t> shape) {
        m.graph.initializers.push_back(
            make_tensor(std::move(name), dtype, std::move(shape), seed++));
    };
    add("w.f32", DType::F32, {3, 5});
    add("w.f16", DType::F16, {4, 3});
    add("w.bf16", DType::BF16, {2, 7});
    add("w.f64", DType::F64, {2, 2});
    add("ids.i64", DType::I64, {5});
    add("ids.i32", DType::I32, {2, 3});
    add("ids.i16", DType::I16, {7});
    add("codes.i8", DType::I8, {3, 3});
    add("codes.u8", DType::U8, {9});
    add("codes.u16", DType::U16, {3});
    add("codes.u32", DType::U32, {3});
    add("codes.u64", DType::U64, {2});
    add("mask.bool", DType::Bool, {2, 5});
    add("spectrum.c64", DType::C64, {3});
    add("w.f8e4m3", DType::F8E4M3FN, {6});
    add("w.f8e5m2", DType::F8E5M2, {2, 2});
    add("w.f8e4m3fnuz", DType::F8E4M3FNUZ, {3});
    add("w.f8e5m2fnuz", DType::F8E5M2FNUZ, {1, 5});
    add("scalar.f32", DType::F32, {});
    add("scalar.i64", DType::I64, {});
    add("empty.f32", DType::F32, {0, 3});
    add("empty.u8", DType::U8, {4, 0});
    add("odd \"name\"\\/\xc3\xa9\t\x01", DType::F32, {2});
    add("A.upper", DType::F32, {1});
    m.metadata = {{"format", "pt"}, {"note", "caf\xc3\xa9 \"quoted\""}, {"a", "first"}};
    return m;
}

// The model holds exactly the oracle's tensors (names, dtypes, shapes, bytes), in the
// oracle's data-offset order, and its metadata.
void check_same_as_oracle(const Model& m, const json& report) {
    const json& tensors = report.at("tensors");
    REQUIRE(m.graph.initializers.size() == tensors.size());
    const json& order = report.at("order");
    for (size_t i = 0; i < m.graph.initializers.size(); ++i) {
        const Tensor& t = m.graph.initializers[i];
        INFO("tensor " << t.name);
        CHECK(t.name == order.at(i).get<std::string>());
        REQUIRE(tensors.contains(t.name));
        const json& want = tensors.at(t.name);
        CHECK(traits(t.dtype).safetensors_name == want.at("dtype").get<std::string>());
        CHECK(t.shape == want.at("shape").get<std::vector<int64_t>>());
        CHECK(to_hex(t.data.bytes()) == want.at("hex").get<std::string>());
        // The IR invariant: data aligned for the element type.
        auto align = static_cast<uintptr_t>(std::clamp(traits(t.dtype).bits / 8, 1, 8));
        CHECK(reinterpret_cast<uintptr_t>(t.data.bytes().data()) % align == 0);
    }
    std::vector<std::pair<std::string, std::string>> metadata;
    if (!report.at("metadata").is_null())
        for (const auto& [k, v] : report.at("metadata").items())
            metadata.emplace_back(k, v.get<std::string>());
    CHECK(m.metadata == metadata);  // both sorted by key
}

}  // namespace

TEST_CASE("safetensors: every tensor the Python package writes reads back identically",
          "[safetensors][xcheck]") {
    test::TempDir dir;
    auto file = dir / "python.safetensors";
    json report = oracle("st_make.py", {file.string()});
    REQUIRE(report.at("tensors").size() == 24);

    Model m = read_safetensors(file);
    CHECK(m.format == SourceFormat::Safetensors);
    CHECK(m.graph.nodes.empty());
    check_same_as_oracle(m, report);
    for (const Tensor& t : m.graph.initializers) {
        INFO(t.name);
        // The Python writer aligns every tensor, so nothing needed copying.
        CHECK(t.data.is_view());
    }
    // The Python writer puts the widest dtypes first.
    CHECK(m.graph.initializers.front().name == "u64.codes");
    CHECK(m.graph.initializers.back().name == "bool.mask");
    // The same through the format-agnostic entry point.
    CHECK(load_model(file).graph.initializers.size() == 24);
}

TEST_CASE("safetensors: rewriting a Python-written file reproduces it byte for byte",
          "[safetensors][xcheck]") {
    // The Python package writes __metadata__ in hash order, so byte identity holds for
    // files with at most one metadata key.
    for (std::string metadata : {"{\"format\": \"np\"}", "null", "{}"}) {
        INFO("metadata " << metadata);
        test::TempDir dir;
        auto python_file = dir / "python.safetensors";
        auto ours = dir / "ours.safetensors";
        (void)oracle("st_make.py", {python_file.string(), "--metadata", metadata});
        write_safetensors(read_safetensors(python_file), ours);
        if (metadata == "{}") {
            // An empty map is written by Python as "__metadata__":{}; edgepack's Model
            // cannot tell it from no metadata and omits it. Tensors still match.
            CHECK(oracle("st_dump.py", {ours.string()}).at("tensors") ==
                  oracle("st_dump.py", {python_file.string()}).at("tensors"));
            continue;
        }
        CHECK(test::read_file(ours) == test::read_file(python_file));
    }
}

TEST_CASE("safetensors: files edgepack writes load in the Python package",
          "[safetensors][xcheck]") {
    test::TempDir dir;
    Model m = sample_model();
    auto file = dir / "ours.safetensors";
    write_safetensors(m, file);

    json report = oracle("st_dump.py", {file.string()});
    // Reading our own file gives the tensors in the order the Python package reports.
    Model back = read_safetensors(file);
    check_same_as_oracle(back, report);
    REQUIRE(report.at("tensors").size() == m.graph.initializers.size());
    for (const Tensor& t : m.graph.initializers) {
        INFO("tensor " << t.name);
        const json& got = report.at("tensors").at(t.name);
        CHECK(got.at("dtype").get<std::string>() == traits(t.dtype).safetensors_name);
        CHECK(got.at("shape").get<std::vector<int64_t>>() == t.shape);
        CHECK(got.at("hex").get<std::string>() == to_hex(t.data.bytes()));
    }
    CHECK(report.at("metadata") ==
          json({{"format", "pt"}, {"note", "caf\xc3\xa9 \"quoted\""}, {"a", "first"}}));
}

TEST_CASE("safetensors: edgepack and the Python package write the same bytes",
          "[safetensors][xcheck]") {
    test::TempDir dir;
    Model m = sample_model();
    m.metadata = {{"format", "pt"}};  // one key: the Python writer's order is then fixed
    auto ours = dir / "ours.safetensors";
    auto python_file = dir / "python.safetensors";
    write_safetensors(m, ours);
    (void)oracle("st_dump.py", {ours.string(), "--rewrite", python_file.string()});
    CHECK(test::read_file(ours) == test::read_file(python_file));

    // No tensors at all: the header is "{}" padded to 8 bytes.
    Model empty;
    write_safetensors(empty, ours);
    CHECK(test::read_file(ours) == std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
}

TEST_CASE("safetensors: output is deterministic and independent of tensor order", "[safetensors]") {
    test::TempDir dir;
    Model a = sample_model();
    Model b = a;
    std::reverse(b.graph.initializers.begin(), b.graph.initializers.end());
    std::reverse(b.metadata.begin(), b.metadata.end());
    write_safetensors(a, dir / "a.safetensors");
    write_safetensors(b, dir / "b.safetensors");
    write_safetensors(a, dir / "a2.safetensors");
    auto bytes = test::read_file(dir / "a.safetensors");
    CHECK(bytes == test::read_file(dir / "b.safetensors"));
    CHECK(bytes == test::read_file(dir / "a2.safetensors"));
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    CHECK(n % 8 == 0);
    CHECK(bytes.substr(8, 16) == "{\"__metadata__\":");
}

TEST_CASE("safetensors: random models round-trip through write and read", "[safetensors]") {
    const std::vector<DType> dtypes = {
        DType::F64,    DType::F32,        DType::F16,       DType::BF16, DType::I64,
        DType::I32,    DType::I16,        DType::I8,        DType::U64,  DType::U32,
        DType::U16,    DType::U8,         DType::Bool,      DType::C64,  DType::F8E4M3FN,
        DType::F8E5M2, DType::F8E4M3FNUZ, DType::F8E5M2FNUZ};
    test::TempDir dir;
    std::mt19937 rng(7);
    for (int round = 0; round < 40; ++round) {
        INFO("round " << round);
        Model m;
        int count = static_cast<int>(rng() % 12);
        for (int i = 0; i < count; ++i) {
            std::vector<int64_t> shape(rng() % 4);
            for (auto& d : shape) d = rng() % 5;
            m.graph.initializers.push_back(make_tensor(cat("t", rng() % 1000, ".", i),
                                                       dtypes[rng() % dtypes.size()], shape,
                                                       static_cast<uint32_t>(rng())));
        }
        if (rng() % 2) m.metadata = {{"k", cat(round)}, {"z", ""}};
        auto file = dir / cat("r", round, ".safetensors");
        write_safetensors(m, file);
        Model back = read_safetensors(file);
        CHECK(back.metadata == m.metadata);
        REQUIRE(back.graph.initializers.size() == m.graph.initializers.size());
        for (const Tensor& t : m.graph.initializers) {
            const Tensor* r = back.graph.find_initializer(t.name);
            REQUIRE(r);
            CHECK(r->dtype == t.dtype);
            CHECK(r->shape == t.shape);
            CHECK(to_hex(r->data.bytes()) == to_hex(t.data.bytes()));
        }
    }
}

TEST_CASE("safetensors: a misaligned tensor is copied, an aligned one stays a view",
          "[safetensors]") {
    test::TempDir dir;
    // A header of 55 bytes (not padded): the data buffer starts at byte 63, so the f32
    // tensor at offset 0 is misaligned and the u8 one is not.
    std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})";
    std::string file(8, '\0');
    uint64_t n = header.size();
    std::memcpy(file.data(), &n, 8);
    float value = 1.5f;
    file += header;
    file.append(reinterpret_cast<const char*>(&value), 4);
    file += "\x07\x09";
    REQUIRE((8 + n) % 4 != 0);
    test::write_file(dir / "odd.safetensors", file);
    Model m = read_safetensors(dir / "odd.safetensors");
    REQUIRE(m.graph.initializers.size() == 2);
    const Tensor& a = m.graph.initializers[0];
    CHECK_FALSE(a.data.is_view());
    CHECK(reinterpret_cast<uintptr_t>(a.data.bytes().data()) % 4 == 0);
    CHECK(a.values<float>()[0] == 1.5f);
    CHECK(m.graph.initializers[1].data.is_view());
    CHECK(to_hex(m.graph.initializers[1].data.bytes()) == "0709");
}

TEST_CASE("safetensors: a tensor larger than the copy chunk streams through intact",
          "[safetensors]") {
    test::TempDir dir;
    Model m;
    // 20 MB + 12 bytes: more than one 16 MB chunk, ending in a partial one.
    std::vector<float> values(5'000'003);
    for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i) * 0.25f;
    m.graph.initializers.push_back(make_f32_tensor("big", {5'000'003}, values));
    write_safetensors(m, dir / "a.safetensors");
    Model mapped = read_safetensors(dir / "a.safetensors");
    REQUIRE(mapped.graph.initializers[0].data.is_view());
    write_safetensors(mapped, dir / "b.safetensors");  // copies from the view, releasing pages
    CHECK(test::read_file(dir / "a.safetensors") == test::read_file(dir / "b.safetensors"));
    // The view is still readable after its pages were released.
    auto v = mapped.graph.initializers[0].values<float>();
    CHECK(v[0] == 0.0f);
    CHECK(v[4'999'999] == 4'999'999 * 0.25f);
}

TEST_CASE("safetensors: the writer rejects what the format cannot hold, naming the tensor",
          "[safetensors]") {
    test::TempDir dir;
    auto out = dir / "out.safetensors";
    auto expect_rejected = [&](Model m, const std::string& message) {
        INFO("expecting: " << message);
        try {
            write_safetensors(m, out);
            FAIL("no error");
        } catch (const InputError& e) {
            CHECK_THAT(e.what(), Catch::Contains(message) && Catch::Contains("out.safetensors"));
        }
        CHECK_FALSE(std::filesystem::exists(out));  // nothing half-written
        CHECK(std::distance(std::filesystem::directory_iterator(dir.path()),
                            std::filesystem::directory_iterator()) == 0);
    };
    {
        Model m;
        Tensor t;
        t.name = "labels";
        t.dtype = DType::String;
        t.shape = {1};
        t.strings = {"cat"};
        m.graph.initializers.push_back(t);
        expect_rejected(m, "tensor 'labels': string tensors");
    }
    {
        Model m;
        m.graph.initializers.push_back(make_tensor("packed", DType::I4, {4}, 1));
        expect_rejected(m, "tensor 'packed': dtype i4 has no safetensors equivalent");
    }
    {
        Model m = sample_model();
        m.graph.initializers.push_back(make_tensor("w.f32", DType::F32, {1}, 1));
        expect_rejected(m, "tensor 'w.f32' appears twice");
    }
    {
        Model m;
        m.graph.initializers.push_back(make_tensor("__metadata__", DType::F32, {1}, 1));
        expect_rejected(m, "'__metadata__'");
    }
    {
        Model m;
        m.graph.initializers.push_back(make_tensor("bad\xff", DType::F32, {1}, 1));
        expect_rejected(m, "not valid UTF-8");
    }
    {
        Model m;
        Tensor t = make_tensor("short", DType::F32, {4}, 1);
        t.shape = {5};
        m.graph.initializers.push_back(t);
        expect_rejected(m, "tensor 'short'");
    }
    {
        Model m;
        m.metadata = {{"k", "1"}, {"k", "2"}};
        expect_rejected(m, "metadata key 'k' appears twice");
    }
}

TEST_CASE("safetensors: real checkpoints read as views and match the Python package",
          "[safetensors][xcheck][real]") {
    struct Case {
        std::filesystem::path file;
        size_t tensors;
        bool python_layout;  // written by the Python package: a rewrite is byte-identical
    };
    for (const Case& c :
         {Case{test::shared_models() / "stories260k/model.safetensors", 47, false},
          Case{test::shared_models() / "peft-gpt2-lora/adapter_model.safetensors", 25, true}}) {
        DYNAMIC_SECTION(c.file.parent_path().filename().string()) {
            INFO(c.file.string());
            EP_REQUIRE_FILE_OR_CONTINUE(c.file);
            json report = oracle("st_dump.py", {c.file.string()});
            Model m = read_safetensors(c.file);
            CHECK(m.graph.initializers.size() == c.tensors);
            check_same_as_oracle(m, report);
            for (const Tensor& t : m.graph.initializers) {
                INFO(t.name);
                CHECK(t.data.is_view());
                CHECK(t.dtype == DType::F32);
            }

            test::TempDir dir;
            auto rewritten = dir / "rewritten.safetensors";
            write_safetensors(m, rewritten);
            json again = oracle("st_dump.py", {rewritten.string()});
            CHECK(again.at("tensors") == report.at("tensors"));
            CHECK(again.at("metadata") == report.at("metadata"));
            if (c.python_layout) CHECK(test::read_file(rewritten) == test::read_file(c.file));
        }
    }
}
