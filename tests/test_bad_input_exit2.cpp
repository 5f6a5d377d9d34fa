// Bad input ends as exit 2, never as "internal error" (exit 3): the four kinds of file a
// fuzz run of the readers found (issue 18, item 10). Each is refused with a message naming
// the node or field, by `inspect`/`run` and by `compress`, which then writes nothing.
#include "formats/model_io.h"
#include "ir/error.h"
#include "ir/utf8.h"
#include "onnx_proto.h"
#include "support.h"

using namespace ep;
using ep::test::add_node;
using ep::test::add_value;
using ep::test::write_model;
namespace fs = std::filesystem;

namespace {

// x: f32 [1, 4] -> Relu "relu" -> y.
onnx::ModelProto relu_model() {
    auto m = test::empty_model("bad");
    auto& g = *m.mutable_graph();
    add_value(g.mutable_input(), "x", {1, 4});
    add_node(g, "Relu", "relu", {"x"}, {"y"});
    add_value(g.mutable_output(), "y", {1, 4});
    return m;
}

void check_exit2(const std::vector<std::string>& args, const std::vector<std::string>& fragments) {
    auto r = test::run_edgepack(args);
    INFO("edgepack " << args[0] << " stderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, !Catch::Contains("internal error"));
    for (const auto& f : fragments) CHECK_THAT(r.err, Catch::Contains(f));
}

// `compress` of the model (no passes, one random validation sample) to `output` refuses
// it with exit 2 and leaves no output file.
void check_compress_refused(const test::TempDir& dir, const fs::path& model,
                            const std::string& output, const std::vector<std::string>& fragments) {
    fs::path recipe = dir / "recipe.json";
    test::write_file(recipe, "{\"model\": \"" + model.string() + "\", \"passes\": [], " +
                                 "\"output\": \"" + output + "\", \"validate\": {\"samples\": 1}}");
    check_exit2({"compress", recipe.string(), "--json"}, fragments);
    CHECK_FALSE(fs::exists(dir / output));
}

}  // namespace

TEST_CASE("UTF-8 check: valid and invalid sequences", "[bad-input][utf8]") {
    CHECK(valid_utf8(""));
    CHECK(valid_utf8("relu_1"));
    CHECK(valid_utf8("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));  // été € 😀
    CHECK(invalid_utf8_offset("ab\xff") == 2);
    CHECK(invalid_utf8_offset("\xc0\xaf") == 0);          // overlong '/'
    CHECK(invalid_utf8_offset("x\xed\xa0\x80") == 1);     // a surrogate
    CHECK(invalid_utf8_offset("\xf4\x90\x80\x80") == 0);  // past U+10FFFF
    CHECK(invalid_utf8_offset("ok\xe2\x82") == 2);        // cut short
    CHECK(printable_utf8("r\xff"
                         "elu\n") == "r\\xffelu\\x0a");
    CHECK(printable_utf8(std::string(100, 'a'), 8) == "aaaaaaaa...");
}

TEST_CASE("bad input: a producer_name that is not UTF-8 is refused naming the field",
          "[bad-input][onnx]") {
    test::TempDir dir;
    auto m = relu_model();
    m.set_producer_name("pytorch\xff\xfe");
    auto path = write_model(dir, m);
    try {
        (void)load_model(path);
        FAIL("load_model accepted the file");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::BadInput);
        CHECK_THAT(std::string(e.what()),
                   Catch::Contains("producer_name 'pytorch\\xff\\xfe' is not valid UTF-8"));
    }
    check_exit2({"inspect", "--json", path.string()}, {"model.onnx", "producer_name", "UTF-8"});
    check_compress_refused(dir, path, "out.onnx", {"producer_name", "not valid UTF-8"});
}

TEST_CASE("bad input: tensor, node and value names that are not UTF-8 are refused",
          "[bad-input][onnx]") {
    test::TempDir dir;
    SECTION("an initializer name") {
        auto m = relu_model();
        auto& g = *m.mutable_graph();
        auto* w = g.add_initializer();
        w->set_name("w\xc0");
        w->set_data_type(onnx::TensorProto::FLOAT);
        w->add_dims(1);
        w->add_float_data(1.0f);
        auto path = write_model(dir, m);
        check_exit2({"inspect", "--json", path.string()}, {"tensor name 'w\\xc0'", "UTF-8"});
        check_compress_refused(dir, path, "out.epk", {"tensor name 'w\\xc0'"});
    }
    SECTION("a node output") {
        auto m = relu_model();
        auto& g = *m.mutable_graph();
        g.mutable_node(0)->set_output(0, "y\xfe");
        g.mutable_output(0)->set_name("y\xfe");
        auto path = write_model(dir, m);
        check_exit2({"inspect", "--json", path.string()},
                    {"node 'relu': output #0 'y\\xfe' is not valid UTF-8"});
    }
    SECTION("a node name and a metadata value") {
        auto m = relu_model();
        m.mutable_graph()->mutable_node(0)->set_name("re\xe2\x82lu");
        auto path = write_model(dir, m);
        check_exit2({"inspect", "--json", path.string()}, {"node name 're\\xe2\\x82lu'"});
        m = relu_model();
        auto* kv = m.add_metadata_props();
        kv->set_key("author");
        kv->set_value("\x80");
        path = write_model(dir, m, "meta.onnx");
        check_exit2({"inspect", "--json", path.string()}, {"metadata_props 'author': value"});
    }
}

TEST_CASE("bad input: an If branch that declares no outputs is refused naming the If node",
          "[bad-input][executor]") {
    test::TempDir dir;
    auto m = test::empty_model("bad");
    auto& g = *m.mutable_graph();
    add_value(g.mutable_input(), "cond", {}, onnx::TensorProto::BOOL);
    add_value(g.mutable_input(), "x", {1, 4});
    auto* node = add_node(g, "If", "choose", {"cond"}, {"o"});
    auto* then_attr = node->add_attribute();
    then_attr->set_name("then_branch");
    then_attr->set_type(onnx::AttributeProto::GRAPH);
    then_attr->mutable_g()->set_name("then");  // no nodes, no outputs
    auto* else_attr = node->add_attribute();
    else_attr->set_name("else_branch");
    else_attr->set_type(onnx::AttributeProto::GRAPH);
    auto& else_g = *else_attr->mutable_g();
    else_g.set_name("else");
    add_node(else_g, "Identity", "pass", {"x"}, {"e"});
    add_value(else_g.mutable_output(), "e", {1, 4});
    add_node(g, "Relu", "relu", {"o"}, {"y"});
    add_value(g.mutable_output(), "y", {1, 4});
    auto path = write_model(dir, m);
    const std::vector<std::string> fragments = {
        "If node 'choose': then_branch declares 0 outputs, the node names 1"};
    for (const char* seed : {"0", "3"})  // seed 0 takes else_branch, seed 3 then_branch
        check_exit2({"run", path.string(), "--samples", "1", "--seed", seed, "--out",
                     (dir / "outputs").string()},
                    fragments);
    CHECK_FALSE(fs::exists(dir / "outputs"));
    check_compress_refused(dir, path, "out.onnx", fragments);
}

TEST_CASE("bad input: a TopK that names one output is refused naming the node",
          "[bad-input][executor]") {
    test::TempDir dir;
    auto m = test::empty_model("bad");
    auto& g = *m.mutable_graph();
    add_value(g.mutable_input(), "x", {1, 5});
    auto* k = g.add_initializer();
    k->set_name("k");
    k->set_data_type(onnx::TensorProto::INT64);
    k->add_dims(1);
    k->add_int64_data(2);
    add_node(g, "TopK", "top2", {"x", "k"}, {"values"});
    add_value(g.mutable_output(), "values", {1, 2});
    auto path = write_model(dir, m);
    const std::vector<std::string> fragments = {
        "TopK node 'top2' names 1 output; TopK produces 2 (Values, Indices)"};
    check_exit2({"run", path.string(), "--samples", "1", "--out", (dir / "outputs").string()},
                fragments);
    CHECK_FALSE(fs::exists(dir / "outputs"));
    check_compress_refused(dir, path, "out.onnx", fragments);

    // Both outputs named: runs.
    g.mutable_node(0)->add_output("indices");
    path = write_model(dir, m, "ok.onnx");
    auto r = test::run_edgepack(
        {"run", path.string(), "--samples", "1", "--out", (dir / "outputs").string()});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(fs::exists(dir / "outputs/sample_0/values.npy"));
}

TEST_CASE("bad input: a declared dimension of 2147483647 is refused before allocating",
          "[bad-input][executor]") {
    test::TempDir dir;
    auto m = relu_model();
    auto* dims =
        m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
    dims->mutable_dim(0)->set_dim_value(2147483647);
    dims->mutable_dim(1)->set_dim_value(8);
    auto path = write_model(dir, m);
    const std::vector<std::string> fragments = {
        "input 'x': random values for its declared shape f32 [2147483647, 8] would take "
        "68719476704 bytes, over the 1024 MiB limit",
        "feed real values"};
    check_exit2({"run", path.string(), "--samples", "1", "--out", (dir / "outputs").string()},
                fragments);
    CHECK_FALSE(fs::exists(dir / "outputs"));
    check_exit2({"bench", path.string(), "--runs", "1"}, fragments);
    check_compress_refused(dir, path, "out.onnx", fragments);

    // A symbolic dimension: --shape sets it, refused when too large, run when not.
    dims->mutable_dim(0)->set_dim_param("batch");
    path = write_model(dir, m, "symbolic.onnx");
    check_exit2({"run", path.string(), "--samples", "1", "--shape", "x=2147483647,8", "--out",
                 (dir / "outputs").string()},
                {"input 'x': random values for the --shape f32 [2147483647, 8]",
                 "pass a smaller --shape x=D0,D1,..."});
    CHECK_FALSE(fs::exists(dir / "outputs"));
    auto r = test::run_edgepack({"run", path.string(), "--samples", "1", "--shape", "x=2,8",
                                 "--out", (dir / "outputs").string()});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(fs::exists(dir / "outputs/sample_0/y.npy"));
}
