// The packed .epk file: real models round-trip with identical graphs and tensor bytes,
// tensors come back as 64-byte-aligned views, the bytes are deterministic, encoded tensors
// keep their encoding, the runtime gives identical outputs for the .onnx and the .epk,
// inspect and compress handle .epk, and quantized safetensors round-trip.
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "formats/epk.h"
#include "formats/model_io.h"
#include "formats/onnx_io.h"
#include "runtime-check/executor.h"
#include "support.h"

using namespace ep;

namespace {

std::vector<std::byte> epk_bytes(const Model& m, const EpkWriteOptions& options = {}) {
    BufferSink sink;
    write_epk(m, sink, options);
    return sink.buffer();
}

std::vector<std::byte> onnx_bytes(const Model& m, const test::TempDir& dir,
                                  const std::string& name) {
    OnnxWriteOptions o;
    o.external = ExternalData::Never;
    write_onnx(m, dir / name, o);
    auto s = test::read_file(dir / name);
    auto b = std::as_bytes(std::span(s.data(), s.size()));
    return {b.begin(), b.end()};
}

// Every tensor of a graph and its subgraphs, in walk order.
void all_tensors(const Graph& g, std::vector<const Tensor*>& out) {
    for (const auto& t : g.initializers) out.push_back(&t);
    for (const auto& n : g.nodes)
        for (const auto& a : n.attributes) {
            for (const auto& t : a.tensors) out.push_back(&t);
            for (const auto& sub : a.graphs) all_tensors(sub, out);
        }
}

void check_same_tensors(const Model& a, const Model& b, bool views) {
    std::vector<const Tensor*> ta, tb;
    all_tensors(a.graph, ta);
    all_tensors(b.graph, tb);
    REQUIRE(ta.size() == tb.size());
    for (size_t i = 0; i < ta.size(); ++i) {
        INFO("tensor " << ta[i]->name);
        CHECK(ta[i]->name == tb[i]->name);
        CHECK(ta[i]->dtype == tb[i]->dtype);
        CHECK(ta[i]->shape == tb[i]->shape);
        CHECK(ta[i]->encoding == tb[i]->encoding);
        auto x = ta[i]->data.bytes(), y = tb[i]->data.bytes();
        REQUIRE(x.size() == y.size());
        CHECK(std::memcmp(x.data(), y.data(), x.size()) == 0);
        if (views && tb[i]->dtype != DType::String) {
            CHECK(tb[i]->data.is_view());
            CHECK(reinterpret_cast<uintptr_t>(y.data()) % 64 == 0);
        }
    }
}

// A model with encoded copies of its 2-D MatMul weights (int4 g32, axis 0) and the rest.
Model with_encoded_weights(Model m, const Encoding& e) {
    std::set<std::string> matmul_weights;
    for (const auto& n : m.graph.nodes)
        if (n.op_type == "MatMul" && n.inputs.size() == 2) matmul_weights.insert(n.inputs[1]);
    for (auto& t : m.graph.initializers)
        if (matmul_weights.count(t.name) && t.shape.size() == 2 && t.dtype == DType::F32)
            t = quantize_tensor_rtn(t, e);
    return m;
}

Tensor token_input(int64_t n) {
    Tensor t;
    t.name = "input_ids";
    t.dtype = DType::I64;
    t.shape = {1, n};
    std::vector<std::byte> bytes(static_cast<size_t>(n) * 8);
    for (int64_t i = 0; i < n; ++i) {
        int64_t v = (i * 37 + 11) % 512;
        std::memcpy(bytes.data() + i * 8, &v, 8);
    }
    t.data = TensorData::owned(std::move(bytes));
    return t;
}

}  // namespace

TEST_CASE("epk: MNIST and stories260k round-trip with identical graphs, bytes and run outputs",
          "[epk][real]") {
    struct Case {
        const char* label;
        std::filesystem::path model;
        Tensor input;
    };
    std::vector<float> image(28 * 28);
    for (size_t i = 0; i < image.size(); ++i) image[i] = float(i % 17) / 17.0f;
    std::vector<Case> cases = {
        {"mnist", test::shared_models() / "mnist/mnist-cnn.onnx",
         make_f32_tensor("input", {1, 1, 28, 28}, image)},
        {"stories260k", test::shared_models() / "stories260k/model.onnx", token_input(24)},
    };
    for (auto& c : cases) {
        DYNAMIC_SECTION(c.label) {
            EP_REQUIRE_FILE_OR_CONTINUE(c.model);
            test::TempDir dir;
            Model original = load_model(c.model);
            save_model(original, dir / "m.epk");
            Model back = load_model(dir / "m.epk");
            check_same_tensors(original, back, true);
            // The graph: the ONNX writer (independent of .epk) gives the same bytes.
            CHECK(onnx_bytes(original, dir, "a.onnx") == onnx_bytes(back, dir, "b.onnx"));
            CHECK(verify(back).empty());
            // Deterministic: writing twice gives the same file, and so does a re-write of
            // what was read.
            save_model(original, dir / "m2.epk");
            save_model(back, dir / "m3.epk");
            auto bytes = test::read_file(dir / "m.epk");
            CHECK(bytes == test::read_file(dir / "m2.epk"));
            CHECK(bytes == test::read_file(dir / "m3.epk"));
            // The size: the tensors plus padding, the manifest, 96 bytes of header + trailer.
            uint64_t tensor_bytes = 0;
            for (const auto& t : original.graph.initializers) tensor_bytes += t.data.size();
            INFO("file " << bytes.size() << " bytes, tensors " << tensor_bytes);
            CHECK(bytes.size() >= tensor_bytes + 96);

            std::string input_name = c.input.name;
            rt::Executor a(original, {1}), b(back, {1});
            auto out_a = a.run({{input_name, c.input}});
            auto out_b = b.run({{input_name, c.input}});
            REQUIRE(out_a.size() == out_b.size());
            for (size_t i = 0; i < out_a.size(); ++i) {
                auto x = out_a[i].second.data.bytes(), y = out_b[i].second.data.bytes();
                REQUIRE(x.size() == y.size());
                CHECK(std::memcmp(x.data(), y.data(), x.size()) == 0);
            }
        }
    }
}

TEST_CASE("epk: encoded tensors keep encoding, axis, logical shape and bytes", "[epk][real]") {
    auto path = test::shared_models() / "stories260k/model.onnx";
    EP_REQUIRE_FILE_OR_SKIP(path);
    test::TempDir dir;
    Encoding e = *encoding_from_name("int4g32");
    e.axis = 0;
    Model q = with_encoded_weights(load_model(path), e);
    Encoding c = *encoding_from_name("int8c");
    for (auto& t : q.graph.initializers)  // one axis-1 int8c tensor too (the embedding)
        if (!t.is_encoded() && t.shape.size() == 2 && t.dtype == DType::F32 &&
            t.element_count() >= 1024) {
            t = quantize_tensor_rtn(t, c);
            break;
        }
    size_t encoded = 0;
    for (const auto& t : q.graph.initializers) encoded += t.is_encoded();
    REQUIRE(encoded >= 2);
    save_model(q, dir / "q.epk");
    Model back = load_model(dir / "q.epk");
    check_same_tensors(q, back, true);
    size_t back_encoded = 0;
    for (const auto& t : back.graph.initializers) back_encoded += t.is_encoded();
    CHECK(back_encoded == encoded);
    CHECK(epk_bytes(q) == epk_bytes(back));
    save_model(q, dir / "q2.epk");
    CHECK(test::read_file(dir / "q.epk") == test::read_file(dir / "q2.epk"));

    // The file is the ideal size: the encoded bytes, the float tensors, the manifest,
    // padding under 64 bytes a tensor, 96 bytes of header and checksum.
    auto info = read_epk(dir / "q.epk").info;
    uint64_t tensor_bytes = 0;
    for (const auto& t : q.graph.initializers) tensor_bytes += t.data.size();
    auto size = std::filesystem::file_size(dir / "q.epk");
    CHECK(size <= tensor_bytes + 64 * q.graph.initializers.size() + info.manifest_length + 96);

    // The runtime runs the encoded .epk (fused kernels read the mapped bytes) with the same
    // outputs as the in-memory quantized model.
    {
        rt::Executor a(q, {1}), b(back, {2});
        auto x = a.run({{"input_ids", token_input(16)}});
        auto y = b.run({{"input_ids", token_input(16)}});
        REQUIRE(x.size() == y.size());
        for (size_t i = 0; i < x.size(); ++i) {
            auto u = x[i].second.data.bytes(), v = y[i].second.data.bytes();
            REQUIRE(u.size() == v.size());
            CHECK(std::memcmp(u.data(), v.data(), u.size()) == 0);
        }
    }
    // And through the CLI, compared with the float model (validate exits 0 whatever it
    // measures: the report's numbers are the outcome). The int4 weights change the logits a
    // little, not wildly.
    auto v = test::run_edgepack({"validate", "--reference", path.string(), "--candidate",
                                 (dir / "q.epk").string(), "--samples", "2", "--json",
                                 (dir / "v.json").string()});
    INFO(v.out << v.err);
    REQUIRE(v.exit_code == 0);
    {
        auto report = nlohmann::json::parse(test::read_file(dir / "v.json"));
        INFO(report.dump(1));
        const auto& logits = report["outputs"][0];
        CHECK(logits["samples"] == 2);
        CHECK(logits["nonfinite_mismatches"] == 0);
        CHECK(logits["max_abs_error"].get<double>() > 0);
        double kl = logits["classes"]["kl_divergence"]["mean"].get<double>();
        // Measured 0.93 nats on these 2 random rows; int4 RTN costs stories260k about 2
        // nats on sampled text (test_quantize_accept.cpp). A float candidate gives 0; a
        // wrong scale or axis gives logits unrelated to the float model's.
        CHECK(kl > 0.1);
        CHECK(kl < 2.0);
    }

    // inspect reports the encodings and bits per weight.
    auto r = test::run_edgepack({"inspect", (dir / "q.epk").string(), "--json", "--tensors"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    auto j = nlohmann::json::parse(r.out);
    CHECK(j["format"] == "epk");
    CHECK(j["epk"]["checksum_verified"] == true);
    CHECK(j["epk"]["tensor_checksums_verified"] == true);
    CHECK(j["epk"]["source_format"] == "onnx");
    bool saw_int4 = false;
    for (const auto& t : j["tensors"])
        if (t["encoding"] == "int4g32") {
            saw_int4 = true;
            CHECK(t["axis"] == 0);
            // 4 bits + an f16 scale per 32 (4.5), more when rows end in a padded block.
            double count = 1;
            for (const auto& d : t["shape"]) count *= d.get<double>();
            CHECK(t["bits_per_weight"].get<double>() >= 4.5);
            CHECK(t["bits_per_weight"].get<double>() ==
                  Approx(8.0 * t["bytes"].get<double>() / count));
        }
    CHECK(saw_int4);
    bool by_encoding = false;
    for (const auto& d : j["parameters"]["by_encoding"])
        if (d["encoding"] == "int4g32") by_encoding = d["bits_per_weight"].get<double>() > 4.0;
    CHECK(by_encoding);
    r = test::run_edgepack({"inspect", (dir / "q.epk").string(), "--tensors"});
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("epk version 1.0 (from onnx)"));
    CHECK_THAT(r.out, Catch::Contains("int4g32"));
    CHECK_THAT(r.out, Catch::Contains("verified"));
}

TEST_CASE(
    "epk: every IR field survives (attributes of every type, NaN, bytes, subgraphs, "
    "functions, string tensors, symbolic shapes)",
    "[epk]") {
    Model m;
    m.ir_version = 9;
    m.opset_imports = {{"", 17}, {"custom.domain", 1}};
    m.producer_name = "test";
    m.producer_version = "1";
    m.domain = "d";
    m.model_version = 42;
    m.doc_string = "doc \xe2\x9c\x93";
    m.metadata = {{"z", "1"}, {"a", "2"}};
    m.opaque_training_info = {std::string("\x00\xff\x10", 3)};
    Graph& g = m.graph;
    g.name = "main";
    ValueInfo in{
        "x",
        ValueType{true, DType::F32,
                  std::vector<Dim>{
                      {std::nullopt, "batch", ""}, {4, "", "CHANNEL"}, {std::nullopt, "", ""}},
                  "", ""},
        "input doc"};
    g.inputs = {in};
    g.outputs = {
        ValueInfo{"y", std::nullopt, ""},
        ValueInfo{"seq", ValueType{false, DType::Undefined, std::nullopt, "", "\x01\x02"}, ""}};
    std::vector<float> w = {1.0f, -0.0f, std::numeric_limits<float>::infinity(), 0.1f};
    g.initializers.push_back(make_f32_tensor("w", {2, 2}, w));
    Tensor s;
    s.name = "labels";
    s.dtype = DType::String;
    s.shape = {3};
    s.strings = {"a", std::string("\xff\xfe", 2), ""};
    g.initializers.push_back(s);
    Tensor empty = make_f32_tensor("empty", {0, 3}, {});
    g.initializers.push_back(empty);

    Node n;
    n.name = "n0";
    n.op_type = "Custom";
    n.domain = "custom.domain";
    n.inputs = {"x", "", "w"};
    n.outputs = {"y"};
    auto attr = [](const char* name, AttrType t) {
        Attribute a;
        a.name = name;
        a.type = t;
        return a;
    };
    Attribute af = attr("f", AttrType::Float);
    af.f = std::numeric_limits<float>::quiet_NaN();
    Attribute afs = attr("fs", AttrType::Floats);
    afs.floats = {1.5f, -std::numeric_limits<float>::infinity(), 3.4028235e38f, 1e-45f};
    Attribute ai = attr("i", AttrType::Int);
    ai.i = std::numeric_limits<int64_t>::min();
    Attribute ais = attr("is", AttrType::Ints);
    ais.ints = {std::numeric_limits<int64_t>::max(), -1, 0};
    Attribute as = attr("s", AttrType::String);
    as.s = std::string("bin\x00\x80", 5);
    Attribute ass = attr("ss", AttrType::Strings);
    ass.strings = {"text", std::string("\xc3", 1)};
    Attribute at = attr("t", AttrType::Tensor);
    at.tensors = {make_f32_tensor("value", {3}, std::vector<float>{1, 2, 3})};
    Attribute ag = attr("body", AttrType::Graph);
    Graph sub;
    sub.name = "sub";
    sub.initializers.push_back(make_f32_tensor("sub_w", {1}, std::vector<float>{7}));
    Node sn;
    sn.op_type = "Identity";
    sn.inputs = {"sub_w"};
    sn.outputs = {"o"};
    sub.nodes.push_back(sn);
    sub.outputs = {ValueInfo{"o", std::nullopt, ""}};
    ag.graphs = {sub};
    Attribute ao = attr("sp", AttrType::SparseTensor);
    ao.opaque = {std::string("\x08\x01", 2)};
    Attribute ar = attr("ref", AttrType::Int);
    ar.ref_attr_name = "alpha";
    n.attributes = {af, afs, ai, ais, as, ass, at, ag, ao, ar};
    g.nodes.push_back(n);
    g.opaque_sparse_initializers = {"abc"};
    Function fn;
    fn.name = "F";
    fn.domain = "custom.domain";
    fn.inputs = {"a"};
    fn.outputs = {"b"};
    fn.attribute_names = {"alpha"};
    Attribute def = attr("beta", AttrType::Tensor);
    def.tensors = {make_f32_tensor("beta_default", {1}, std::vector<float>{0.5f})};
    fn.attribute_defaults = {def};
    fn.nodes = {sn};
    fn.opset_imports = {{"", 17}};
    m.functions = {fn};

    test::TempDir dir;
    write_epk(m, dir / "all.epk");
    auto file = read_epk(dir / "all.epk", {.verify_tensor_checksums = true});
    const Model& b = file.model;
    CHECK(file.info.tensor_checksums_verified);
    CHECK(epk_bytes(m) == epk_bytes(b));
    CHECK(b.ir_version == 9);
    CHECK(b.model_version == 42);
    CHECK(b.doc_string == m.doc_string);
    CHECK(b.metadata == m.metadata);
    CHECK(b.opaque_training_info == m.opaque_training_info);
    REQUIRE(b.graph.inputs.size() == 1);
    const auto& shape = *b.graph.inputs[0].type->shape;
    REQUIRE(shape.size() == 3);
    CHECK(shape[0].param == "batch");
    CHECK(*shape[1].value == 4);
    CHECK(shape[1].denotation == "CHANNEL");
    CHECK((!shape[2].value && shape[2].param.empty()));
    CHECK(!b.graph.outputs[0].type);
    CHECK(b.graph.outputs[1].type->opaque == "\x01\x02");
    CHECK(b.graph.initializers[1].strings == s.strings);
    CHECK(b.graph.initializers[2].shape == std::vector<int64_t>{0, 3});
    const Node& bn = b.graph.nodes[0];
    REQUIRE(bn.attributes.size() == 10);
    CHECK(std::bit_cast<uint32_t>(bn.attributes[0].f) == std::bit_cast<uint32_t>(af.f));
    CHECK(bn.attributes[1].floats.size() == 4);
    CHECK(std::bit_cast<uint32_t>(bn.attributes[1].floats[1]) ==
          std::bit_cast<uint32_t>(afs.floats[1]));
    CHECK(bn.attributes[1].floats[3] == 1e-45f);
    CHECK(bn.attributes[2].i == std::numeric_limits<int64_t>::min());
    CHECK(bn.attributes[3].ints == ais.ints);
    CHECK(bn.attributes[4].s == as.s);
    CHECK(bn.attributes[5].strings == ass.strings);
    CHECK(bn.attributes[6].tensors[0].to_floats() == std::vector<float>{1, 2, 3});
    CHECK(bn.attributes[7].graphs[0].initializers[0].to_floats() == std::vector<float>{7});
    CHECK(bn.attributes[8].opaque == ao.opaque);
    CHECK(bn.attributes[9].ref_attr_name == "alpha");
    CHECK(b.functions[0].attribute_defaults[0].tensors[0].name == "beta_default");
    CHECK(b.graph.initializers[0].to_floats()[2] == std::numeric_limits<float>::infinity());
    CHECK(std::signbit(b.graph.initializers[0].to_floats()[1]));
}

TEST_CASE("epk: compress -o x.epk records provenance, run and inspect read it", "[epk][real]") {
    auto model = test::shared_models() / "mnist" / "mnist-cnn.onnx";
    EP_REQUIRE_FILE_OR_SKIP(model);
    test::TempDir dir;
    std::filesystem::copy_file(model, dir / "in.onnx");
    test::write_file(dir / "r.json", R"({"model": "in.onnx", "passes": [], "output": "out.onnx"})");
    auto r = test::run_edgepack(
        {"compress", (dir / "r.json").string(), "-o", (dir / "out.epk").string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    auto info = read_epk(dir / "out.epk").info;
    CHECK(info.provenance.source_file == "in.onnx");
    CHECK(info.provenance.source_sha256 == sha256_file_hex(dir / "in.onnx"));
    CHECK(info.provenance.recipe_file == "r.json");
    CHECK(info.provenance.recipe_sha256 == sha256_file_hex(dir / "r.json"));
    CHECK(info.provenance.edgepack_version == EDGEPACK_VERSION);
    // SHA-256 itself, against a known vector ("abc").
    test::write_file(dir / "abc", "abc");
    CHECK(sha256_file_hex(dir / "abc") ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

    r = test::run_edgepack({"inspect", (dir / "out.epk").string(), "--json"});
    REQUIRE(r.exit_code == 0);
    auto j = nlohmann::json::parse(r.out);
    CHECK(j["epk"]["provenance"]["source_sha256"] == info.provenance.source_sha256);
    CHECK(j["parameters"]["count"].get<uint64_t>() > 0);
    r = test::run_edgepack({"inspect", (dir / "out.epk").string()});
    CHECK_THAT(r.out,
               Catch::Contains("source      in.onnx sha256 " + info.provenance.source_sha256));
    // A second compress writes the same bytes.
    r = test::run_edgepack(
        {"compress", (dir / "r.json").string(), "-o", (dir / "out2.epk").string()});
    REQUIRE(r.exit_code == 0);
    CHECK(test::read_file(dir / "out.epk") == test::read_file(dir / "out2.epk"));
    // The .epk runs, validates and benchmarks against the .onnx.
    r = test::run_edgepack(
        {"run", (dir / "out.epk").string(), "--samples", "1", "--out", (dir / "outputs").string()});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    // No passes: the .epk computes the .onnx's outputs exactly (validate exits 0 whatever it
    // measures, so the report's numbers are the check).
    r = test::run_edgepack({"validate", "--reference", (dir / "in.onnx").string(), "--candidate",
                            (dir / "out.epk").string(), "--samples", "2", "--json",
                            (dir / "v.json").string()});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    auto v = nlohmann::json::parse(test::read_file(dir / "v.json"));
    REQUIRE(!v["outputs"].empty());
    for (const auto& o : v["outputs"]) {
        INFO(o.dump());
        CHECK(o["samples"] == 2);
        CHECK(o["max_abs_error"] == 0.0);
        CHECK(o["nonfinite_mismatches"] == 0);
    }
    r = test::run_edgepack({"bench", (dir / "out.epk").string(), "--runs", "2", "--warmup", "0"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
}

TEST_CASE("epk: quantized safetensors store U8 + metadata and load back encoded", "[epk]") {
    Model m;
    m.format = SourceFormat::Safetensors;
    std::vector<float> w(96 * 40), bias(40);
    for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(float(i) * 0.37f);
    for (size_t i = 0; i < bias.size(); ++i) bias[i] = float(i) * 0.25f;
    Encoding e = *encoding_from_name("int4g32a");
    e.axis = 0;
    m.graph.initializers.push_back(quantize_tensor_rtn(make_f32_tensor("w", {96, 40}, w), e));
    m.graph.initializers.push_back(
        quantize_tensor_rtn(make_f32_tensor("v", {40, 96}, w), *encoding_from_name("int8c")));
    m.graph.initializers.push_back(make_f32_tensor("bias", {40}, bias));
    m.metadata = {{"format", "pt"}};
    test::TempDir dir;
    save_model(m, dir / "q.safetensors");
    Model back = load_model(dir / "q.safetensors");
    REQUIRE(back.graph.initializers.size() == 3);
    CHECK(back.metadata == m.metadata);
    for (const auto& t : m.graph.initializers) {
        const Tensor* b = back.graph.find_initializer(t.name);
        REQUIRE(b);
        INFO(t.name);
        CHECK(b->encoding == t.encoding);
        CHECK(b->shape == t.shape);
        CHECK(b->dtype == DType::F32);
        auto x = t.data.bytes(), y = b->data.bytes();
        REQUIRE(x.size() == y.size());
        CHECK(std::memcmp(x.data(), y.data(), x.size()) == 0);
    }
    save_model(back, dir / "q2.safetensors");
    CHECK(test::read_file(dir / "q.safetensors") == test::read_file(dir / "q2.safetensors"));

    // The Python package loads it: U8 tensors and the encoding metadata.
    auto r = test::run_oracle("st_dump.py", {(dir / "q.safetensors").string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    auto j = nlohmann::json::parse(r.out);
    CHECK(j["tensors"]["w"]["dtype"] == "U8");
    CHECK(j["tensors"]["bias"]["dtype"] == "F32");
    auto meta = nlohmann::json::parse(j["metadata"]["edgepack.encoding/w"].get<std::string>());
    CHECK(meta["encoding"] == "int4g32a");
    CHECK(meta["axis"] == 0);
    CHECK(meta["shape"] == nlohmann::json::array({96, 40}));

    // A metadata entry that does not fit its tensor is an error naming the tensor.
    Model plain;
    plain.format = SourceFormat::Safetensors;
    Tensor u8;
    u8.name = "w";
    u8.dtype = DType::U8;
    u8.shape = {10};
    u8.data = TensorData::owned(std::vector<std::byte>(10));
    plain.graph.initializers.push_back(u8);
    plain.metadata = {
        {"edgepack.encoding/w", R"({"axis":0,"encoding":"int4g32","shape":[96,40]})"}};
    save_model(plain, dir / "bad.safetensors");
    r = test::run_edgepack({"inspect", (dir / "bad.safetensors").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("tensor 'w'"));
    CHECK_THAT(r.err, Catch::Contains("needs"));
}

TEST_CASE("epk: the reader links and runs without protobuf or ONNX (edgepack_epk alone)", "[epk]") {
    // edgepack_epk_dump links only edgepack_epk (tests/CMakeLists.txt); formats/CMakeLists.txt
    // also fails the configure step if edgepack_epk's link line names protobuf or ONNX.
    Model m;
    m.graph.initializers.push_back(make_f32_tensor("t", {2, 3}, std::vector<float>(6, 1.5f)));
    test::TempDir dir;
    write_epk(m, dir / "t.epk");
    auto r = test::run({EDGEPACK_EPK_DUMP, (dir / "t.epk").string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("t f32 [2, 3] 24"));
    CHECK_THAT(r.out, Catch::Contains("sha256 " + read_epk(dir / "t.epk").info.sha256));
    test::write_file(dir / "bad.epk",
                     "not an epk file at all, but long enough to have a checksum "
                     "trailer: 0123456789abcdef0123456789abcdef");
    r = test::run({EDGEPACK_EPK_DUMP, (dir / "bad.epk").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("checksum mismatch"));
}
