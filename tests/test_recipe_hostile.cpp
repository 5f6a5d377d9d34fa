// Bad recipes through the CLI: each one exits 2 with one message naming the recipe field,
// and nothing is written. The model file here is a placeholder: every one of these fails
// before a model is loaded.
#include "support.h"

namespace {

struct Case {
    const char* what;
    std::string recipe;
    std::vector<std::string> extra_args;
    std::string expected;  // a fragment of stderr
};

}  // namespace

TEST_CASE("hostile recipes exit 2 with a message naming the field", "[compress][recipe]") {
    ep::test::TempDir dir;
    ep::test::write_file(dir / "m.onnx", "placeholder");
    const std::string ok_pass = R"({"pass": "fold-batchnorm"})";
    std::vector<Case> cases{
        {"typo in a top-level key",
         R"({"modle": "m.onnx", "output": "o.onnx"})",
         {},
         "r.json: modle: unknown key; did you mean model?"},
        {"typo in a pass option",
         R"({"model": "m.onnx", "passes": [{"pass": "promote-constants", "min_elemets": 2}]})",
         {},
         "r.json: passes[0].min_elemets: unknown option; did you mean min_elements?"},
        {"unknown pass",
         R"({"model": "m.onnx", "passes": [{"pass": "fold-batchnrom"}]})",
         {},
         "r.json: passes[0].pass: unknown pass 'fold-batchnrom'; did you mean fold-batchnorm?"},
        {"wrong type",
         R"({"model": "m.onnx", "passes": [{"pass": "fold-batchnorm", "include": "*.w"}]})",
         {},
         "r.json: passes[0].include: expected a list of strings, found string"},
        {"invalid JSON",
         "{\"model\": \"m.onnx\",\n \"passes\": [\n",
         {},
         "r.json: invalid JSON at line 3, column 1"},
        {"missing model file",
         R"({"model": "gone.onnx", "output": "o.onnx"})",
         {},
         "r.json: model: file not found: " + (dir / "gone.onnx").string()},
        {"empty file", "", {}, "r.json: empty file"},
        {"--set on an unknown path",
         R"({"model": "m.onnx", "passes": [)" + ok_pass + "]}",
         {"--set", "passes[0].exclde=[]"},
         "r.json: --set passes[0].exclde=[]: passes[0].exclde: unknown option; did you mean "
         "exclude?"},
        {"--set index out of range",
         R"({"model": "m.onnx", "passes": [)" + ok_pass + "]}",
         {"--set", "passes[1].include=[]"},
         "passes[1]: index out of range (the recipe has 1 pass)"},
        {"passes not a list",
         R"({"model": "m.onnx", "passes": {"pass": "fold-batchnorm"}})",
         {},
         "r.json: passes: expected a list of pass entries, found object"},
        {"bad -o extension",
         R"({"model": "m.onnx"})",
         {"-o", (dir / "out.bin").string()},
         "-o: unknown output format '.bin' (expected .onnx, .safetensors, .gguf or .epk)"},
        {"bad output extension in the recipe",
         R"({"model": "m.onnx", "output": "out.txt"})",
         {},
         "r.json: output: unknown output format '.txt'"},
        {"no output anywhere",
         R"({"model": "m.onnx"})",
         {},
         "r.json: output: missing; add \"output\" to the recipe or pass -o FILE"},
        {"option out of range",
         R"({"model": "m.onnx", "passes": [{"pass": "promote-constants", "min_elements": -5}]})",
         {},
         "r.json: passes[0].min_elements: -5 is below the minimum 0"},
        {"duplicate key",
         R"({"model": "m.onnx", "passes": [], "passes": []})",
         {},
         "r.json: duplicate key 'passes'"},
        {"top level not an object",
         R"(["m.onnx"])",
         {},
         "r.json: recipe: expected a JSON object at the top level, found list"},
        {"deep nesting",
         std::string(100000, '[') + std::string(100000, ']'),
         {},
         "nested deeper than 64 levels"},
        {"--print-after an absent pass",
         R"({"model": "m.onnx", "passes": [)" + ok_pass + "]}",
         {"--print-after", "promote-constants", "-o", (dir / "o.onnx").string()},
         "--print-after promote-constants: no pass 'promote-constants' in the recipe"},
        {"binary garbage", std::string("\x00\xff\xfe{\x01", 5), {}, "r.json: invalid JSON"},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        ep::test::write_file(dir / "r.json", c.recipe);
        std::vector<std::string> args{"compress", (dir / "r.json").string()};
        args.insert(args.end(), c.extra_args.begin(), c.extra_args.end());
        auto r = ep::test::run_edgepack(args);
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains(c.expected));
        CHECK_THAT(r.err, Catch::StartsWith("edgepack: error: "));
        CHECK(r.out.empty());
        // Nothing but the recipe and the placeholder model is left in the directory.
        size_t files = 0;
        for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
            (void)e;
            ++files;
        }
        CHECK(files == 2);
    }
}

TEST_CASE("compress: a missing or unreadable recipe file exits 2", "[compress][recipe]") {
    ep::test::TempDir dir;
    auto r = ep::test::run_edgepack({"compress", (dir / "absent.json").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("absent.json: no such file"));
    r = ep::test::run_edgepack({"compress", dir.path().string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("is a directory"));
    r = ep::test::run_edgepack({"compress"});
    CHECK(r.exit_code == 2);
    r = ep::test::run_edgepack({"compress", (dir / "x.json").string(), "--threads", "0"});
    CHECK(r.exit_code == 2);
}
