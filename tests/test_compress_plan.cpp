// `edgepack compress` checks everything that can fail before it writes a byte, and
// `--dry-run` runs exactly those checks (issue 18, items 5 and 8): labels of the wrong
// dtype, a validate.shapes entry naming no input, a report folder or output that cannot be
// written, an op the runtime lacks, validation samples that do not fit the model. Each ends
// as exit 2 naming the field, file or op, with no output file and no report folder left,
// and the same from --dry-run. With --json, exit 2 and 3 print a JSON error object. Gate
// units, --baseline of another model, "not in baseline", a subcommand typo, and the weight
// bytes of Constant-node models are here too.
#include <sys/stat.h>
#include <unistd.h>

#include <onnx/onnx_pb.h>
#include <cstring>

#include <nlohmann/json.hpp>

#include "compressor/gates.h"
#include "compressor/recipe.h"
#include "ir/dtype.h"
#include "ir/error.h"
#include "ir/tensor.h"
#include "onnx_proto.h"
#include "runtime-check/npy.h"
#include "support.h"

using namespace ep;
using ep::test::add_node;
using ep::test::add_value;
using ep::test::empty_model;
using ep::test::fill_weight;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// x: f32 [2, 8] -> MatMul(x, W [8, 4]) -> y: f32 [2, 4]. With `as_constant`, W is the
// value of a Constant node instead of an initializer (as PP-OCR's exports hold weights).
onnx::ModelProto matmul_model(bool as_constant = false) {
    auto m = empty_model("plan");
    auto& g = *m.mutable_graph();
    add_value(g.mutable_input(), "x", {2, 8});
    if (as_constant) {
        auto* c = add_node(g, "Constant", "w_const", {}, {"W"});
        auto* a = c->add_attribute();
        a->set_name("value");
        a->set_type(onnx::AttributeProto::TENSOR);
        fill_weight(a->mutable_t(), "W", {8, 4});
    } else {
        fill_weight(g.add_initializer(), "W", {8, 4});
    }
    add_node(g, "MatMul", "mm", {"x", "W"}, {"y"});
    add_value(g.mutable_output(), "y", {2, 4});
    return m;
}

// x: f32 [1, 2, 3] -> TfIdfVectorizer "tfidf" -> y: an op the runtime does not implement.
onnx::ModelProto unsupported_op_model() {
    auto m = empty_model("tfidf");
    auto& g = *m.mutable_graph();
    add_value(g.mutable_input(), "x", {1, 2, 3});
    add_node(g, "TfIdfVectorizer", "tfidf", {"x"}, {"y"});
    add_value(g.mutable_output(), "y", {1, 2});
    return m;
}

Tensor tensor_of(DType dtype, std::vector<int64_t> shape) {
    Tensor t;
    t.dtype = dtype;
    t.shape = std::move(shape);
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    std::vector<std::byte> bytes(*storage_bytes(dtype, static_cast<uint64_t>(n)));
    t.data = TensorData::owned(std::move(bytes));
    return t;
}

struct Setup {
    test::TempDir dir;
    fs::path model;
    json recipe;

    explicit Setup(const onnx::ModelProto& m = matmul_model()) {
        model = dir / "model.onnx";
        test::write_file(model, m.SerializeAsString());
        recipe = {{"model", model.string()},
                  {"passes", json::array()},
                  {"output", (dir / "out" / "m.epk").string()},
                  {"validate", {{"samples", 1}, {"benchmark_runs", 0}}}};
    }
    fs::path write_recipe() const {
        fs::path p = dir / "r.json";
        test::write_file(p, recipe.dump(2));
        return p;
    }
};

// Exit 2 from the run and from its dry run, each message holding `fragments`, no output
// file, no report folder; with --json, one JSON error object on stdout.
void check_refused_before_writing(const Setup& s, const std::vector<std::string>& fragments,
                                  const std::vector<std::string>& extra = {}) {
    fs::path recipe = s.write_recipe();
    for (bool dry : {false, true}) {
        std::vector<std::string> args{"compress", recipe.string(), "--json"};
        if (dry) args.push_back("--dry-run");
        args.insert(args.end(), extra.begin(), extra.end());
        auto r = test::run_edgepack(args);
        INFO((dry ? "--dry-run" : "real run") << "\nstderr: " << r.err << "\nstdout: " << r.out);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, !Catch::Contains("internal error"));
        CHECK_THAT(r.err, !Catch::Contains("edgepack: wrote"));
        for (const auto& f : fragments) CHECK_THAT(r.err, Catch::Contains(f));
        json error = json::parse(r.out, nullptr, false);
        REQUIRE(error.is_object());
        CHECK(error["schema"] == "edgepack.error/1");
        CHECK(error["exit_code"] == 2);
        for (const auto& f : fragments)
            CHECK_THAT(error["error"].get<std::string>(), Catch::Contains(f));
        CHECK_FALSE(fs::exists(s.dir / "out"));
        CHECK_FALSE(fs::exists(s.dir / "out" / "m.epk"));
        CHECK_FALSE(fs::exists(s.dir / "reports"));
    }
}

}  // namespace

TEST_CASE("compress plan: the recipe runs, and a dry run of it exits 0 writing nothing", "[plan]") {
    Setup s;
    s.recipe["report_dir"] = (s.dir / "reports").string();
    fs::path recipe = s.write_recipe();
    auto dry = test::run_edgepack({"compress", recipe.string(), "--dry-run"});
    INFO(dry.err);
    CHECK(dry.exit_code == 0);
    CHECK_THAT(dry.out, Catch::Contains("reports: " + (s.dir / "reports").string()));
    CHECK_FALSE(fs::exists(s.dir / "out"));
    CHECK_FALSE(fs::exists(s.dir / "reports"));
    auto r = test::run_edgepack({"compress", recipe.string()});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(fs::exists(s.dir / "out" / "m.epk"));
    CHECK(fs::exists(s.dir / "reports" / "report.json"));
}

TEST_CASE("compress plan: labels of the wrong dtype are refused before writing", "[plan]") {
    Setup s;
    write_npy(tensor_of(DType::F32, {2}), s.dir / "labels.npy");
    s.recipe["validate"]["labels"] = (s.dir / "labels.npy").string();
    s.recipe["report_dir"] = (s.dir / "reports").string();
    check_refused_before_writing(s, {"r.json: validate.labels",
                                     "labels.npy: labels must be int32 or int64 class indices, "
                                     "found f32 [2]"});
}

TEST_CASE("compress plan: a validate.shapes entry naming no input is refused before writing",
          "[plan]") {
    Setup s;
    s.recipe["validate"]["shapes"] = {"input=2,8"};
    check_refused_before_writing(
        s, {"r.json: validate.shapes: input: the model has no input 'input' (inputs: x)"});
}

TEST_CASE("compress plan: a report folder that cannot be written is refused before writing",
          "[plan]") {
    Setup s;
    test::write_file(s.dir / "blocker", "a regular file");
    SECTION("the recipe's report_dir under a regular file") {
        s.recipe["report_dir"] = (s.dir / "blocker" / "reports").string();
        check_refused_before_writing(s, {"r.json: report_dir: ",
                                         "blocker is a file, not a "
                                         "directory"});
    }
    SECTION("--report-dir under a regular file") {
        check_refused_before_writing(s, {"--report-dir: ", "blocker is a file, not a directory"},
                                     {"--report-dir", (s.dir / "blocker" / "r").string()});
    }
    SECTION("an output under a regular file") {
        s.recipe["output"] = (s.dir / "blocker" / "m.epk").string();
        s.recipe["report_dir"] = (s.dir / "reports").string();
        check_refused_before_writing(s, {"r.json: output: ", "blocker is a file, not a directory"});
    }
    SECTION("a read-only report folder") {
        // Root writes into a read-only directory: the case means nothing there (a warning,
        // not a skip, so the test case still reads as the sections above ran).
        if (geteuid() == 0) {
            WARN("running as root: the read-only folder is not checked");
        } else {
            fs::create_directories(s.dir / "ro");
            fs::permissions(s.dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
            s.recipe["report_dir"] = (s.dir / "ro" / "reports").string();
            check_refused_before_writing(s, {"r.json: report_dir: ", "cannot write into"});
            fs::permissions(s.dir / "ro", fs::perms::owner_all);
        }
    }
}

TEST_CASE("compress plan: an op the runtime lacks is refused at plan time", "[plan]") {
    Setup s(unsupported_op_model());
    const std::vector<std::string> fragments = {
        "model.onnx: 1 unsupported op: TfIdfVectorizer (1 node)"};
    SECTION("the recipe validates") {
        check_refused_before_writing(s, fragments);
    }
    SECTION("the recipe writes an .epk, without validating") {
        s.recipe.erase("validate");
        check_refused_before_writing(s, fragments);
    }
    SECTION("an .onnx output without validation is no runtime matter: written") {
        s.recipe.erase("validate");
        s.recipe["output"] = (s.dir / "out" / "m.onnx").string();
        auto r = test::run_edgepack({"compress", s.write_recipe().string()});
        INFO(r.err);
        CHECK(r.exit_code == 0);
        CHECK(fs::exists(s.dir / "out" / "m.onnx"));
    }
}

TEST_CASE("compress plan: every validation sample is checked against the inputs before writing",
          "[plan]") {
    Setup s;
    // Sample folders: the first fits, the second holds f64 values.
    fs::create_directories(s.dir / "data" / "s0");
    fs::create_directories(s.dir / "data" / "s1");
    write_npy(tensor_of(DType::F32, {2, 8}), s.dir / "data" / "s0" / "x.npy");
    write_npy(tensor_of(DType::F64, {2, 8}), s.dir / "data" / "s1" / "x.npy");
    s.recipe["validate"]["data"] = (s.dir / "data").string();
    s.recipe["report_dir"] = (s.dir / "reports").string();
    check_refused_before_writing(
        s, {"r.json: validate.data: ", "s1: input 'x': expected f32 [2, 8], found f64 [2, 8]"});

    // Both samples fit (a file naming no input is ignored, as the validation ignores it).
    write_npy(tensor_of(DType::F32, {2, 8}), s.dir / "data" / "s1" / "x.npy");
    write_npy(tensor_of(DType::F32, {2, 8}), s.dir / "data" / "s1" / "notes.npy");
    auto r = test::run_edgepack({"compress", s.write_recipe().string(), "--dry-run"});
    INFO(r.err);
    CHECK(r.exit_code == 0);
}

TEST_CASE("compress plan: calibration samples are checked before any pass runs", "[plan]") {
    Setup s;
    fs::create_directories(s.dir / "calib" / "s0");
    write_npy(tensor_of(DType::F32, {2, 3}), s.dir / "calib" / "s0" / "x.npy");
    s.recipe["calibration"] = {{"data", (s.dir / "calib").string()}};
    s.recipe["passes"] = {{{"pass", "quantize-weights"},
                           {"method", "gptq"},
                           {"bits", 8},
                           {"group_size", 0},
                           {"min_elements", 0}}};
    check_refused_before_writing(
        s, {"r.json: calibration.data: ", "s0: input 'x': expected f32 [2, 8], found f32 [2, 3]"});
}

TEST_CASE("compress plan: a failure after writing began removes what the run wrote", "[plan]") {
    // Labels that hold more rows than any output: only running the models can tell, so the
    // dry run passes, and the real run fails in validation after writing the .epk.
    Setup s;
    write_npy(tensor_of(DType::I64, {5}), s.dir / "labels.npy");
    s.recipe["validate"]["labels"] = (s.dir / "labels.npy").string();
    s.recipe["report_dir"] = (s.dir / "reports").string();
    fs::path recipe = s.write_recipe();
    auto dry = test::run_edgepack({"compress", recipe.string(), "--dry-run"});
    INFO(dry.err);
    CHECK(dry.exit_code == 0);
    auto r = test::run_edgepack({"compress", recipe.string()});
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("5 labels, but no output with a class axis"));
    CHECK_THAT(r.err, Catch::Contains("edgepack: wrote"));  // it was written, then removed
    CHECK_FALSE(fs::exists(s.dir / "out" / "m.epk"));
    CHECK_FALSE(fs::exists(s.dir / "out"));
    CHECK_FALSE(fs::exists(s.dir / "reports"));
}

TEST_CASE("compress --json: exit 2 prints a JSON error object on stdout", "[plan][json]") {
    Setup s;
    s.recipe["gates"] = {{"max_kl_maen", 0.1}};
    auto r = test::run_edgepack({"compress", s.write_recipe().string(), "--json"});
    INFO(r.err << r.out);
    CHECK(r.exit_code == 2);
    json error = json::parse(r.out, nullptr, false);
    REQUIRE(error.is_object());
    CHECK(error == json{{"schema", "edgepack.error/1"},
                        {"exit_code", 2},
                        {"error", "" + (s.dir / "r.json").string() +
                                      ": gates.max_kl_maen: unknown key; did you mean "
                                      "max_kl_mean?"}});
    // Without --json, stdout stays empty.
    r = test::run_edgepack({"compress", s.write_recipe().string()});
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
}

TEST_CASE("bench --json: exit 3 prints a JSON error object on stdout", "[plan][json]") {
#if defined(__SANITIZE_ADDRESS__)
    EP_SKIP("AddressSanitizer cannot start under the test's address-space limit (ulimit -v)");
#else
    // Exit 3: a random input under the 1 GiB limit that a 700 MB address-space limit cannot
    // hold ends as "internal error: out of memory".
    Setup s;
    onnx::ModelProto m = matmul_model();
    auto* dim = m.mutable_graph()
                    ->mutable_input(0)
                    ->mutable_type()
                    ->mutable_tensor_type()
                    ->mutable_shape()
                    ->mutable_dim(0);
    dim->set_dim_param("rows");
    test::write_file(s.dir / "wide.onnx", m.SerializeAsString());
    auto r = test::run({"/bin/bash", "-c",
                        "ulimit -v 700000; exec \"$0\" bench \"$1\" --shape x=25000000,8 --runs 1 "
                        "--warmup 0 --json",
                        test::edgepack_binary().string(), (s.dir / "wide.onnx").string()});
    INFO(r.err << r.out);
    CHECK(r.exit_code == 3);
    CHECK_THAT(r.err, Catch::Contains("edgepack: internal error: out of memory"));
    json error = json::parse(r.out, nullptr, false);
    REQUIRE(error.is_object());
    CHECK(error == json{{"schema", "edgepack.error/1"},
                        {"exit_code", 3},
                        {"error", "internal error: out of memory"}});
#endif
}

TEST_CASE("gates: a percent gate given as a fraction is refused with a hint", "[plan][gates]") {
    auto error = [](const std::string& section, const std::string& key, double value) {
        test::TempDir dir;
        test::write_file(dir / "m.onnx", "not parsed by the recipe loader");
        json recipe = {{"model", "m.onnx"},
                       {"passes", json::array()},
                       {"output", "m.epk"},
                       {"validate", json::object()},
                       {section, {{key, value}}}};
        try {
            (void)parse_recipe(recipe.dump(), "r.json", dir.path());
        } catch (const Error& e) {
            CHECK(e.code() == ExitCode::BadInput);
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    CHECK(error("gates", "min_top1_agreement", 0.99) ==
          "r.json: gates.min_top1_agreement: 0.99 is read as 0.99 percent; this gate is in "
          "percent (0-100): did you mean 99?");
    CHECK(error("gates", "min_top1_agreement", 1) ==
          "r.json: gates.min_top1_agreement: 1 is read as 1 percent; this gate is in percent "
          "(0-100): did you mean 100?");
    CHECK(error("gates", "min_top1_agreement", 99) == "(no error)");
    CHECK(error("gates", "min_top1_agreement", 0) == "(no error)");
    CHECK(error("gates", "min_top1_agreement", 1.5) == "(no error)");
    // Percentage points and nats: a value below 1 is ordinary.
    CHECK(error("gates", "max_kl_mean", 0.02) == "(no error)");
    CHECK(error("baseline", "top1_agreement", 0.5) == "(no error)");
    CHECK_THAT(error("baseline", "top1_agreement", 101),
               Catch::StartsWith("r.json: baseline.top1_agreement: 101") &&
                   Catch::EndsWith("is above the maximum 100"));
    // A relative tolerance is a fraction: above 1 it reads like a percent.
    CHECK(error("baseline", "output_bytes", 0.05) == "(no error)");
    CHECK(error("baseline", "output_bytes", 1) == "(no error)");
    CHECK(error("baseline", "output_bytes", 5) ==
          "r.json: baseline.output_bytes: 5 is read as a fraction of the baseline (5 = +500%); "
          "this tolerance is a fraction (0.01 = 1%): did you mean 0.05?");
    // Every gate and tolerance has a unit.
    for (const auto& g : gate_specs()) CHECK(std::string(unit_name(g.unit)) != "?");
    for (const auto& b : baseline_specs()) CHECK(std::string(unit_name(b.unit)) != "?");

    // Through the command line, exit 2 and no output.
    Setup s;
    s.recipe["gates"] = {{"min_top1_agreement", 0.99}};
    auto r = test::run_edgepack({"compress", s.write_recipe().string()});
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("gates.min_top1_agreement: 0.99 is read as 0.99 percent"));
    CHECK_FALSE(fs::exists(s.dir / "out"));
}

TEST_CASE(
    "compress --baseline: a report of another model is refused, missing metrics are not failures",
    "[plan][baseline]") {
    Setup s;
    // The first release: no validation, so the baseline has no KL.
    s.recipe.erase("validate");
    s.recipe["report_dir"] = (s.dir / "previous").string();
    auto r = test::run_edgepack({"compress", s.write_recipe().string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const std::string previous = (s.dir / "previous" / "report.json").string();
    json old_report = json::parse(test::read_file(previous));
    CHECK(old_report["input"]["sha256"].get<std::string>().size() == 64);

    // The same model, now validated: kl_mean is "not in baseline", output_bytes compared.
    s.recipe["validate"] = {{"samples", 1}, {"benchmark_runs", 0}};
    s.recipe["baseline"] = {{"kl_mean", 0.01}, {"output_bytes", 0.01}};
    s.recipe["report_dir"] = (s.dir / "now").string();
    r = test::run_edgepack({"compress", s.write_recipe().string(), "--baseline", previous});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("edgepack: baseline: 1 passed, 0 failed"));
    CHECK_THAT(r.err, Catch::Contains("baseline.kl_mean: not in baseline"));
    json report = json::parse(test::read_file(s.dir / "now" / "report.json"));
    CHECK(report["baseline"]["not_in_baseline"] == json{"kl_mean"});
    CHECK(report["baseline"]["checks"].size() == 1);
    CHECK(report["baseline"]["checks"][0]["name"] == "baseline.output_bytes");
    CHECK(report["baseline"]["model_sha256"] == old_report["input"]["sha256"]);
    CHECK(report["baseline"]["any_model"] == false);
    CHECK(report["verdict"] == "pass");
    CHECK_THAT(test::read_file(s.dir / "now" / "report.md"),
               Catch::Contains("Not in the baseline report, so not compared (not failed): "
                               "kl_mean."));
    auto schema = test::run_oracle("json_schema_check.py",
                                   {(test::source_dir() / "docs" / "report.schema.json").string(),
                                    (s.dir / "now" / "report.json").string()});
    INFO(schema.out << schema.err);
    CHECK(schema.exit_code == 0);

    // Another model (one weight changed): refused before writing, with the way out named.
    onnx::ModelProto other = matmul_model();
    other.mutable_graph()->mutable_initializer(0)->set_float_data(0, 0.5f);
    test::write_file(s.model, other.SerializeAsString());
    fs::remove_all(s.dir / "now");
    fs::remove_all(s.dir / "out");
    for (bool dry : {false, true}) {
        std::vector<std::string> args{"compress", s.write_recipe().string(), "--baseline",
                                      previous};
        if (dry) args.push_back("--dry-run");
        r = test::run_edgepack(args);
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains("--baseline " + previous +
                                          ": a report of another "
                                          "model (model.onnx sha256 "));
        CHECK_THAT(r.err, Catch::Contains("or pass --baseline-any-model"));
        CHECK_FALSE(fs::exists(s.dir / "out"));
        CHECK_FALSE(fs::exists(s.dir / "now"));
    }
    r = test::run_edgepack(
        {"compress", s.write_recipe().string(), "--baseline", previous, "--baseline-any-model"});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    report = json::parse(test::read_file(s.dir / "now" / "report.json"));
    CHECK(report["baseline"]["any_model"] == true);
    CHECK(report["baseline"]["model_sha256"] != report["input"]["sha256"]);
}

TEST_CASE("a subcommand typo gets a did-you-mean, exit 2", "[plan][cli]") {
    auto r = test::run_edgepack({"compres", "r.json"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("edgepack: error: unknown command 'compres'; did you mean "
                                      "compress?"));
    r = test::run_edgepack({"inspcet", "--json", "m.onnx"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("did you mean inspect?"));
    json error = json::parse(r.out, nullptr, false);
    REQUIRE(error.is_object());
    CHECK(error["exit_code"] == 2);
    r = test::run_edgepack({"frobnicate"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("unknown command 'frobnicate' (commands: "));
    CHECK_THAT(r.err, !Catch::Contains("did you mean"));
}

TEST_CASE("memory: weight bytes count the weights held by Constant nodes", "[plan][memory]") {
    for (bool as_constant : {false, true}) {
        Setup s(matmul_model(as_constant));
        s.recipe["report_dir"] = (s.dir / "reports").string();
        auto r = test::run_edgepack({"compress", s.write_recipe().string()});
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        json report = json::parse(test::read_file(s.dir / "reports" / "report.json"));
        INFO("weights as Constant: " << as_constant << "; memory: " << report["memory"].dump());
        CHECK(report["memory"]["reference"]["weight_bytes"] == 8 * 4 * 4);
        CHECK(report["memory"]["candidate"]["weight_bytes"] == 8 * 4 * 4);
    }
}

TEST_CASE("compress plan: two outputs that are one file are refused before writing", "[plan]") {
    // Spelled differently (through a symlink to the folder), so only the file system tells.
    Setup s;
    fs::create_directory_symlink(s.dir.path(), s.dir / "alias");
    s.recipe["output"] = {(s.dir / "out.epk").string(), (s.dir / "alias" / "out.epk").string()};
    check_refused_before_writing(s, {"r.json: output: ", "are the same file"});
    CHECK_FALSE(fs::exists(s.dir / "out.epk"));
}

TEST_CASE("compress plan: an output over the input model or its data is refused before writing",
          "[plan]") {
    SECTION("a hard link to the input model") {
        Setup s;
        fs::create_hard_link(s.model, s.dir / "same.onnx");
        s.recipe.erase("validate");
        s.recipe["output"] = (s.dir / "same.onnx").string();
        check_refused_before_writing(s, {"same.onnx: the output would overwrite the input model"});
    }
    SECTION("an .onnx output whose NAME.onnx.data is the input's external data") {
        // W's 32 floats live in w.onnx.data; writing w.onnx could put its own data there.
        onnx::ModelProto m = matmul_model();
        auto* w = m.mutable_graph()->mutable_initializer(0);
        std::string bytes(w->float_data_size() * sizeof(float), '\0');
        std::memcpy(bytes.data(), w->float_data().data(), bytes.size());
        w->clear_float_data();
        w->set_data_location(onnx::TensorProto::EXTERNAL);
        auto* location = w->add_external_data();
        location->set_key("location");
        location->set_value("w.onnx.data");
        Setup s(m);
        test::write_file(s.dir / "w.onnx.data", bytes);
        s.recipe.erase("validate");
        s.recipe["output"] = (s.dir / "w.onnx").string();
        check_refused_before_writing(
            s, {cat("w.onnx would write its external data to ", (s.dir / "w.onnx.data").string(),
                    ", which is the input model's external data file")});
        CHECK(test::read_file(s.dir / "w.onnx.data") == bytes);
    }
}

TEST_CASE("compress plan: --save-calibration onto a report file is refused before writing",
          "[plan]") {
    Setup s;
    s.recipe["report_dir"] = (s.dir / "reports").string();
    check_refused_before_writing(
        s,
        {"--save-calibration ", "report.json: is also one of the reports (", "r.json: report_dir)"},
        {"--save-calibration", (s.dir / "reports" / "report.json").string()});
}

TEST_CASE("compress plan: a quantized .onnx from a source below opset 13 is refused before writing",
          "[plan]") {
    // The ONNX export of encoded weights needs opset >= 13; an .onnx source is raised by the
    // version converter, an .epk source cannot be: refused at plan time, naming both opsets.
    onnx::ModelProto m = matmul_model();
    m.mutable_opset_import(0)->set_version(11);
    Setup s(m);
    s.recipe.erase("validate");
    s.recipe["output"] = (s.dir / "src.epk").string();
    auto made = test::run_edgepack({"compress", s.write_recipe().string(), "--quiet"});
    INFO(made.err);
    REQUIRE(made.exit_code == 0);
    s.recipe["model"] = (s.dir / "src.epk").string();
    s.recipe["passes"] = {{{"pass", "quantize-weights"}, {"min_elements", 0}}};
    s.recipe["output"] = {(s.dir / "out" / "m.epk").string(), (s.dir / "out" / "q.onnx").string()};
    s.recipe["onnx"] = {{"quantized", "qdq"}};
    s.recipe["report_dir"] = (s.dir / "reports").string();
    check_refused_before_writing(
        s, {"q.onnx: onnx.quantized = qdq needs a source at opset 13", "the model is at opset 11"});
}
