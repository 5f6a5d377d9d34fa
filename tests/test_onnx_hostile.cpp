// Hand-made hostile ONNX files: each must be refused with exit code 2 and a message that
// names the file, the tensor and the problem, both through ep::load_model and through
// `edgepack inspect FILE` (whose error boundary maps InputError to exit 2). None may crash,
// hang, read outside the model's directory or allocate what the file merely claims.
#include <cstring>

#include "formats/model_io.h"
#include "ir/error.h"
#include "onnx_proto.h"
#include "support.h"

using namespace ep;
using ep::test::write_model;
namespace fs = std::filesystem;

namespace {

// A valid model with one f32 initializer "w" of shape [4] whose data the cases corrupt.
onnx::ModelProto base_model() {
    auto m = test::empty_model("hostile");
    auto* g = m.mutable_graph();
    auto* w = g->add_initializer();
    w->set_name("w");
    w->set_data_type(onnx::TensorProto::FLOAT);
    w->add_dims(4);
    float v[4] = {1, 2, 3, 4};
    w->set_raw_data(std::string(reinterpret_cast<const char*>(v), sizeof v));
    auto* n = g->add_node();
    n->set_op_type("Identity");
    n->add_input("w");
    n->add_output("y");
    auto* out = g->add_output();
    out->set_name("y");
    return m;
}

onnx::TensorProto& weight(onnx::ModelProto& m) {
    return *m.mutable_graph()->mutable_initializer(0);
}

// Makes "w" an external-data tensor with the given entries (empty values are left out).
void make_external(onnx::ModelProto& m, const std::string& location, const std::string& offset,
                   const std::string& length) {
    auto& w = weight(m);
    w.clear_raw_data();
    w.set_data_location(onnx::TensorProto::EXTERNAL);
    auto add = [&](const char* key, const std::string& value) {
        if (value.empty()) return;
        auto* e = w.add_external_data();
        e->set_key(key);
        e->set_value(value);
    };
    add("location", location);
    add("offset", offset);
    add("length", length);
}

// The file must be refused with exit code 2 and a message containing every fragment.
void check_refused(const fs::path& path, const std::vector<std::string>& fragments) {
    INFO("file: " << path);
    std::string message;
    try {
        Model model = load_model(path);
        FAIL("load_model accepted the file");
    } catch (const Error& e) {
        message = e.what();
        CHECK(e.code() == ExitCode::BadInput);
    }
    INFO("load_model: " << message);
    CHECK_THAT(message, Catch::Contains(path.filename().string()));
    for (const auto& f : fragments) CHECK_THAT(message, Catch::Contains(f));

    auto r = test::run_edgepack({"inspect", path.string()});
    INFO("edgepack inspect stderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(path.filename().string()));
    for (const auto& f : fragments) CHECK_THAT(r.err, Catch::Contains(f));
}

}  // namespace

TEST_CASE("hostile ONNX: a truncated file", "[onnx][hostile]") {
    test::TempDir dir;
    auto m = base_model();
    std::vector<float> big(1024, 1.0f);  // truncation lands inside this raw_data
    weight(m).clear_dims();
    weight(m).add_dims(1024);
    weight(m).set_raw_data(std::string(reinterpret_cast<const char*>(big.data()), 4096));
    std::string bytes = m.SerializeAsString();
    test::write_file(dir / "truncated.onnx", bytes.substr(0, bytes.size() / 2));
    check_refused(dir / "truncated.onnx", {"not a valid ONNX model (protobuf parse failed)"});
}

TEST_CASE("hostile ONNX: garbage bytes", "[onnx][hostile]") {
    test::TempDir dir;
    std::string garbage = "this is not an ONNX model \xff\xfe\x00\x01";
    garbage += std::string(256, '\xff');
    test::write_file(dir / "garbage.onnx", garbage);
    check_refused(dir / "garbage.onnx", {"not a valid ONNX model (protobuf parse failed)"});
}

TEST_CASE("hostile ONNX: an empty file", "[onnx][hostile]") {
    test::TempDir dir;
    test::write_file(dir / "empty.onnx", "");
    check_refused(dir / "empty.onnx", {"not a valid ONNX model (empty file)"});
}

TEST_CASE("hostile ONNX: a protobuf that is not a model (no graph)", "[onnx][hostile]") {
    test::TempDir dir;
    onnx::ModelProto m;
    m.set_ir_version(8);
    m.set_producer_name("nothing else");
    test::write_file(dir / "nograph.onnx", m.SerializeAsString());
    check_refused(dir / "nograph.onnx", {"not a valid ONNX model (no graph)"});
}

TEST_CASE("hostile ONNX: external data location ../../etc/passwd", "[onnx][hostile]") {
    test::TempDir dir;
    auto m = base_model();
    make_external(m, "../../etc/passwd", "0", "16");
    check_refused(write_model(dir, m), {"tensor 'w'", "'../../etc/passwd'", "contains '..'"});
}

TEST_CASE("hostile ONNX: absolute external data location /etc/passwd", "[onnx][hostile]") {
    test::TempDir dir;
    auto m = base_model();
    make_external(m, "/etc/passwd", "0", "16");
    check_refused(write_model(dir, m), {"tensor 'w'", "'/etc/passwd'", "absolute path"});
}

TEST_CASE("hostile ONNX: external data through a symlink that leads outside the directory",
          "[onnx][hostile]") {
    test::TempDir dir, elsewhere;
    test::write_file(elsewhere / "secret.bin", std::string(64, 's'));
    fs::create_directory(dir / "model");
    fs::create_symlink(elsewhere / "secret.bin", dir / "model/weights.bin");
    auto m = base_model();
    make_external(m, "weights.bin", "0", "16");
    check_refused(write_model(dir, m, "model/link.onnx"),
                  {"tensor 'w'", "'weights.bin'", "outside the model's directory"});

    // A symlinked directory component is followed too.
    fs::create_directory_symlink(elsewhere.path(), dir / "model/sub");
    weight(m).clear_external_data();
    make_external(m, "sub/secret.bin", "0", "16");
    check_refused(write_model(dir, m, "model/dirlink.onnx"),
                  {"tensor 'w'", "'sub/secret.bin'", "outside the model's directory"});
}

TEST_CASE("hostile ONNX: external data offset past the end of the file", "[onnx][hostile]") {
    test::TempDir dir;
    test::write_file(dir / "w.bin", std::string(32, '\0'));
    auto m = base_model();
    make_external(m, "w.bin", "1000000", "16");
    check_refused(write_model(dir, m), {"tensor 'w'", "offset 1000000 is past the end", "'w.bin'"});
    // In range at the start, past the end at the finish.
    weight(m).clear_external_data();
    make_external(m, "w.bin", "24", "16");
    check_refused(write_model(dir, m, "tail.onnx"),
                  {"tensor 'w'", "range [24, 40) is past the end"});
}

TEST_CASE("hostile ONNX: external data offset + length overflows 64 bits", "[onnx][hostile]") {
    test::TempDir dir;
    test::write_file(dir / "w.bin", std::string(32, '\0'));
    auto m = base_model();
    make_external(m, "w.bin", "18446744073709551608", "16");  // 2^64 - 8
    check_refused(write_model(dir, m),
                  {"tensor 'w'", "offset 18446744073709551608 + length 16 overflows"});
}

TEST_CASE("hostile ONNX: external data length disagrees with dtype x shape", "[onnx][hostile]") {
    test::TempDir dir;
    test::write_file(dir / "w.bin", std::string(32, '\0'));
    auto m = base_model();
    make_external(m, "w.bin", "0", "12");
    check_refused(write_model(dir, m),
                  {"tensor 'w'", "length 12 does not match f32 [4] (16 bytes)"});
}

TEST_CASE("hostile ONNX: external data offset that is not a number", "[onnx][hostile]") {
    test::TempDir dir;
    test::write_file(dir / "w.bin", std::string(32, '\0'));
    auto m = base_model();
    make_external(m, "w.bin", "-8", "16");
    check_refused(write_model(dir, m), {"tensor 'w'", "offset '-8' is not a non-negative integer"});
}

TEST_CASE("hostile ONNX: a missing external data file", "[onnx][hostile]") {
    test::TempDir dir;
    auto m = base_model();
    make_external(m, "missing.bin", "0", "16");
    check_refused(write_model(dir, m), {"tensor 'w'", "'missing.bin' not found"});
}

TEST_CASE("hostile ONNX: raw_data size disagrees with dtype x shape", "[onnx][hostile]") {
    test::TempDir dir;
    auto m = base_model();
    weight(m).set_raw_data(std::string(10, '\0'));
    check_refused(write_model(dir, m), {"tensor 'w'", "raw_data has 10 bytes", "needs 16"});
}

TEST_CASE("hostile ONNX: a negative dimension", "[onnx][hostile]") {
    test::TempDir dir;
    auto m = base_model();
    weight(m).set_dims(0, -4);
    check_refused(write_model(dir, m), {"tensor 'w'", "negative dimension -4"});
}

TEST_CASE("hostile ONNX: a shape whose element count overflows", "[onnx][hostile]") {
    test::TempDir dir;
    auto m = base_model();
    weight(m).clear_dims();
    weight(m).add_dims(int64_t{1} << 40);
    weight(m).add_dims(int64_t{1} << 40);
    check_refused(write_model(dir, m),
                  {"tensor 'w'", "shape [1099511627776, 1099511627776] overflows"});
    // Elements fit in int64 but bytes do not: 2^61 f32 elements.
    weight(m).clear_dims();
    weight(m).add_dims(int64_t{1} << 61);
    check_refused(write_model(dir, m, "bytes.onnx"), {"tensor 'w'", "overflows"});
}

TEST_CASE("hostile ONNX: an unknown data_type", "[onnx][hostile]") {
    test::TempDir dir;
    auto m = base_model();
    weight(m).set_data_type(999);
    check_refused(write_model(dir, m), {"tensor 'w'", "unknown data_type 999"});
}

TEST_CASE("hostile ONNX: typed float_data count disagrees with the shape", "[onnx][hostile]") {
    test::TempDir dir;
    auto m = base_model();
    weight(m).clear_raw_data();
    for (float f : {1.0f, 2.0f, 3.0f}) weight(m).add_float_data(f);
    check_refused(write_model(dir, m), {"tensor 'w'", "float_data has 3 entries", "needs 4"});
}

TEST_CASE("hostile ONNX: data in two places at once", "[onnx][hostile]") {
    test::TempDir dir;
    auto m = base_model();
    for (float f : {1.0f, 2.0f, 3.0f, 4.0f}) weight(m).add_float_data(f);
    check_refused(write_model(dir, m), {"tensor 'w'", "both raw_data and float_data"});
}

TEST_CASE("hostile ONNX: an initializer without a name", "[onnx][hostile]") {
    test::TempDir dir;
    auto m = base_model();
    weight(m).clear_name();
    check_refused(write_model(dir, m), {"initializer #0", "has no name"});
}

TEST_CASE("hostile ONNX: a bad tensor deep inside an If branch's Constant", "[onnx][hostile]") {
    test::TempDir dir;
    auto m = base_model();
    auto* node = m.mutable_graph()->add_node();
    node->set_op_type("If");
    node->set_name("branchy");
    auto* then_attr = node->add_attribute();
    then_attr->set_name("then_branch");
    then_attr->set_type(onnx::AttributeProto::GRAPH);
    auto* constant = then_attr->mutable_g()->add_node();
    constant->set_op_type("Constant");
    constant->set_name("inner_const");
    auto* value = constant->add_attribute();
    value->set_name("value");
    value->set_type(onnx::AttributeProto::TENSOR);
    value->mutable_t()->set_name("inner");
    value->mutable_t()->set_data_type(1);
    value->mutable_t()->add_dims(2);
    value->mutable_t()->set_raw_data(std::string(7, '\0'));
    check_refused(write_model(dir, m),
                  {"tensor 'inner'", "node 'inner_const'", "raw_data has 7 bytes"});
}

TEST_CASE("hostile ONNX: a model file over protobuf's 2 GB limit", "[onnx][hostile]") {
    test::TempDir dir;
    // Sparse: 2.2 GB of apparent size, no disk or memory used; it must be refused by size
    // before protobuf sees it.
    test::write_file(dir / "huge.onnx", "");
    fs::resize_file(dir / "huge.onnx", 2'200'000'000);
    check_refused(dir / "huge.onnx", {"over protobuf's 2 GB limit"});
}

TEST_CASE("hostile ONNX: subgraphs nested deeper than protobuf's recursion limit",
          "[onnx][hostile]") {
    test::TempDir dir;
    auto m = base_model();
    onnx::GraphProto* g = m.mutable_graph();
    for (int depth = 0; depth < 200; ++depth) {
        auto* node = g->add_node();
        node->set_op_type("If");
        auto* a = node->add_attribute();
        a->set_name("then_branch");
        a->set_type(onnx::AttributeProto::GRAPH);
        g = a->mutable_g();
    }
    check_refused(write_model(dir, m), {"not a valid ONNX model (protobuf parse failed)"});
}
