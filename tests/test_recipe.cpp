// Recipe loading: every error names the recipe and the field, with "did you mean" when a
// name is a likely typo; defaults are filled in; --set overrides any value.
#include "compressor/pass_manager.h"
#include "compressor/recipe.h"
#include "ir/error.h"
#include "support.h"

using namespace ep;
using nlohmann::json;

namespace {

// A directory holding a (dummy) model file, so recipes can name an existing model.
struct RecipeDir {
    test::TempDir dir;
    RecipeDir() { test::write_file(dir / "m.onnx", "not parsed by the recipe loader"); }
    Recipe parse(const std::string& text, const std::vector<std::string>& sets = {}) const {
        return parse_recipe(text, "recipe.json", dir.path(), sets);
    }
    // The loader's verdict: parsing, then creating and configuring the passes (pass options
    // are checked there); "(no error)" when it accepts the recipe.
    std::string loader_error(const std::string& text) const {
        try {
            PassManager passes(parse(text));
        } catch (const Error& e) {
            return e.what();
        }
        return "(no error)";
    }
    std::string error(const std::string& text, const std::vector<std::string>& sets = {}) const {
        try {
            (void)parse(text, sets);
        } catch (const Error& e) {
            CHECK(e.code() == ExitCode::BadInput);
            return e.what();
        }
        return "(no error)";
    }
};

const char* kTwoPasses = R"({
  "model": "m.onnx",
  "passes": [{"pass": "promote-constants", "min_elements": 4},
             {"pass": "fold-batchnorm", "exclude": ["head*"]}],
  "output": "out/m.onnx"
})";

}  // namespace

TEST_CASE("the smallest recipe loads, with paths relative to the recipe's directory", "[recipe]") {
    RecipeDir d;
    Recipe r = d.parse(R"({"model": "m.onnx", "passes": [], "output": "out.onnx"})");
    CHECK(r.model == d.dir / "m.onnx");
    REQUIRE(r.output);
    CHECK(*r.output == d.dir / "out.onnx");
    CHECK(r.passes.empty());
    CHECK(r.onnx.external == ExternalData::Auto);
    CHECK(r.onnx.external_threshold == 1024);
}

TEST_CASE("pass entries get every option with defaults filled in", "[recipe]") {
    RecipeDir d;
    Recipe r = d.parse(kTwoPasses);
    REQUIRE(r.passes.size() == 2);
    CHECK(r.passes[0].name == "promote-constants");
    CHECK(r.passes[0].path == "passes[0]");
    CHECK(r.passes[0].options ==
          json{{"min_elements", 4}, {"include", {"*"}}, {"exclude", json::array()}});
    CHECK(r.passes[1].path == "passes[1]");
    CHECK(r.passes[1].options == json{{"include", {"*"}}, {"exclude", {"head*"}}});
    // The manager configures from these without complaint.
    PassManager pm(r);
    CHECK(pm.size() == 2);
}

TEST_CASE("the onnx section maps to the writer's options", "[recipe]") {
    RecipeDir d;
    Recipe r = d.parse(R"({"model": "m.onnx", "output": "o.onnx",
                           "onnx": {"external_data": "always", "external_threshold": 0}})");
    CHECK(r.onnx.external == ExternalData::Always);
    CHECK(r.onnx.external_threshold == 0);
    CHECK_THAT(d.error(R"({"model": "m.onnx", "onnx": {"external_data": "alwayz"}})"),
               Catch::Equals("recipe.json: onnx.external_data: 'alwayz' is not one of auto, "
                             "always, never; did you mean always?"));
    CHECK_THAT(d.error(R"({"model": "m.onnx", "onnx": {"external_treshold": 5}})"),
               Catch::Equals("recipe.json: onnx.external_treshold: unknown key; did you mean "
                             "external_threshold?"));
    CHECK_THAT(d.error(R"({"model": "m.onnx", "onnx": {"external_threshold": -1}})"),
               Catch::Contains("onnx.external_threshold: -1 is below the minimum 0"));
}

TEST_CASE("recipe error: a typo in a top-level key suggests the key", "[recipe]") {
    RecipeDir d;
    CHECK(d.error(R"({"modle": "m.onnx"})") ==
          "recipe.json: modle: unknown key; did you mean model?");
    CHECK(d.error(R"({"model": "m.onnx", "pases": []})") ==
          "recipe.json: pases: unknown key; did you mean passes?");
    // Nothing close: list the valid keys instead of guessing.
    CHECK_THAT(d.error(R"({"model": "m.onnx", "zzzzzz": 1})"),
               Catch::StartsWith(
                   "recipe.json: zzzzzz: unknown key (valid: description, model, "
                   "passes, output, onnx, calibration, validate, gates, baseline, report_dir, "
                   "fallback)"));
}

TEST_CASE("recipe error: a typo in a pass option suggests the option", "[recipe]") {
    RecipeDir d;
    CHECK(d.error(R"({"model": "m.onnx", "passes": [{"pass": "fold-batchnorm"},
                     {"pass": "promote-constants", "min_elemnts": 3}]})") ==
          "recipe.json: passes[1].min_elemnts: unknown option; did you mean min_elements?");
    CHECK(d.error(R"({"model": "m.onnx", "passes": [{"pass": "fold-batchnorm", "exlude": []}]})") ==
          "recipe.json: passes[0].exlude: unknown option; did you mean exclude?");
    CHECK_THAT(d.error(R"({"model": "m.onnx", "passes": [{"pass": "fold-batchnorm", "bits": 4}]})"),
               Catch::Equals("recipe.json: passes[0].bits: unknown option (valid: pass, include, "
                             "exclude)"));
}

TEST_CASE("recipe error: an unknown pass suggests the nearest pass", "[recipe]") {
    RecipeDir d;
    CHECK(d.error(R"({"model": "m.onnx", "passes": [{"pass": "fold-batchnrom"}]})") ==
          "recipe.json: passes[0].pass: unknown pass 'fold-batchnrom'; did you mean "
          "fold-batchnorm?");
    CHECK_THAT(d.error(R"({"model": "m.onnx", "passes": [{"pass": "quantize-everything"}]})"),
               Catch::Contains("passes[0].pass: unknown pass 'quantize-everything' (known passes: "
                               "promote-constants, fold-batchnorm"));
    CHECK_THAT(d.error(R"({"model": "m.onnx", "passes": [{"include": ["*"]}]})"),
               Catch::Contains("recipe.json: passes[0]: missing \"pass\""));
}

TEST_CASE("recipe error: wrong types name the field and what was found", "[recipe]") {
    RecipeDir d;
    CHECK(d.error(R"({"model": "m.onnx", "passes": [{"pass": "fold-batchnorm", "include": 3}]})") ==
          "recipe.json: passes[0].include: expected a list of strings, found number");
    CHECK(d.error(R"({"model": "m.onnx", "passes": [{"pass": "fold-batchnorm", )"
                  R"("include": ["a", null]}]})") ==
          "recipe.json: passes[0].include[1]: expected a string, found null");
    CHECK(d.error(R"({"model": "m.onnx", "passes": {"pass": "fold-batchnorm"}})") ==
          "recipe.json: passes: expected a list of pass entries, found object");
    CHECK(d.error(R"({"model": "m.onnx", "passes": ["fold-batchnorm"]})") ==
          "recipe.json: passes[0]: expected an object {\"pass\": NAME, ...}, found string");
    CHECK(d.error(R"({"model": 7})") == "recipe.json: model: expected a string, found number");
    CHECK(d.error(R"({"model": "m.onnx", "passes": [{"pass": "promote-constants", )"
                  R"("min_elements": "4"}]})") ==
          "recipe.json: passes[0].min_elements: expected an integer, found string");
    CHECK(d.error(R"({"model": "m.onnx", "passes": [{"pass": "promote-constants", )"
                  R"("min_elements": 2.5}]})") ==
          "recipe.json: passes[0].min_elements: expected an integer, found 2.5");
    CHECK(d.error(R"({"model": "m.onnx", "passes": [{"pass": "promote-constants", )"
                  R"("min_elements": -3}]})") ==
          "recipe.json: passes[0].min_elements: -3 is below the minimum 0");
    CHECK(d.error(R"(["model"])") ==
          "recipe.json: recipe: expected a JSON object at the top level, found list");
    // An integral float is accepted as an integer.
    CHECK(d.parse(R"({"model": "m.onnx", "passes": [{"pass": "promote-constants", )"
                  R"("min_elements": 4.0}]})")
              .passes[0]
              .options["min_elements"] == 4);
}

TEST_CASE("recipe error: missing model, missing model file, missing output extension", "[recipe]") {
    RecipeDir d;
    CHECK(d.error(R"({"passes": []})") == "recipe.json: model: missing (required)");
    CHECK(d.error(R"({"model": ""})") ==
          "recipe.json: model: expected a file path, found an empty string");
    auto missing = (d.dir / "absent.onnx").string();
    CHECK(d.error(R"({"model": "absent.onnx"})") ==
          "recipe.json: model: file not found: " + missing);
    CHECK_THAT(d.error(R"({"model": "m.onnx", "output": "out.bin"})"),
               Catch::StartsWith("recipe.json: output: unknown output format '.bin' (expected "
                                 ".onnx, .safetensors, .gguf or .epk)"));
}

TEST_CASE("recipe error: invalid JSON reports line and column, empty and duplicate keys",
          "[recipe]") {
    RecipeDir d;
    CHECK_THAT(d.error("{\"model\": \"m.onnx\",\n  \"passes\": [}"),
               Catch::StartsWith("recipe.json: invalid JSON at line 2, column 14: syntax error"));
    CHECK_THAT(d.error("{\"model\": \"m.onnx\",}"),
               Catch::StartsWith("recipe.json: invalid JSON at line 1, column 20"));
    CHECK(d.error("") == "recipe.json: empty file, expected a JSON object with at least \"model\"");
    CHECK(d.error("  \n\t ") == d.error(""));
    CHECK(d.error(R"({"model": "m.onnx", "model": "other.onnx"})") ==
          "recipe.json: duplicate key 'model' (JSON keeps only one of them)");
    CHECK_THAT(d.error(std::string(10000, '[') + std::string(10000, ']')),
               Catch::Contains("nested deeper than 64 levels"));
}

TEST_CASE("recipe overrides: --set overrides values by path, parsing JSON or taking a string",
          "[recipe]") {
    RecipeDir d;
    Recipe r = d.parse(kTwoPasses, {R"(passes[0].include=["*.weight"])", "output=x.onnx",
                                    "passes[0].min_elements=16", "onnx.external_data=never",
                                    "description=made by a test"});
    CHECK(r.passes[0].options["include"] == json{"*.weight"});
    CHECK(r.passes[0].options["min_elements"] == 16);
    CHECK(*r.output == d.dir / "x.onnx");
    CHECK(r.onnx.external == ExternalData::Never);
    CHECK(r.description == "made by a test");
    CHECK(r.document["passes"][0]["include"] == json{"*.weight"});
    // Overrides apply in order; the later one wins.
    r = d.parse(kTwoPasses, {"passes[0].min_elements=1", "passes[0].min_elements=2"});
    CHECK(r.passes[0].options["min_elements"] == 2);
    // Elements of an existing list, a whole pass entry, the whole pass list.
    r = d.parse(kTwoPasses, {"passes[1].exclude[0]=tail*"});
    CHECK(r.passes[1].options["exclude"] == json{"tail*"});
    r = d.parse(kTwoPasses, {R"(passes[1]={"pass": "promote-constants"})"});
    CHECK(r.passes[1].name == "promote-constants");
    r = d.parse(kTwoPasses, {"passes=[]"});
    CHECK(r.passes.empty());
    // The value is validated like the file's own.
    CHECK(d.error(kTwoPasses, {"passes[0].min_elements=many"}) ==
          "recipe.json: passes[0].min_elements: expected an integer, found string");
}

TEST_CASE("recipe overrides: --set on a path outside the schema is an error with did-you-mean",
          "[recipe]") {
    RecipeDir d;
    CHECK(d.error(kTwoPasses, {"modle=m.onnx"}) ==
          "recipe.json: --set modle=m.onnx: modle: unknown key; did you mean model?");
    CHECK(d.error(kTwoPasses, {"passes[0].min_elemnts=3"}) ==
          "recipe.json: --set passes[0].min_elemnts=3: passes[0].min_elemnts: unknown option; "
          "did you mean min_elements?");
    CHECK(d.error(kTwoPasses, {"passes[2].include=[]"}) ==
          "recipe.json: --set passes[2].include=[]: passes[2]: index out of range (the recipe "
          "has 2 passes)");
    CHECK_THAT(d.error(kTwoPasses, {"passes[1].exclude[3]=x"}),
               Catch::Contains("passes[1].exclude[3]: index out of range"));
    CHECK_THAT(d.error(kTwoPasses, {"onnx.externl_data=never"}),
               Catch::Contains("onnx.externl_data: unknown key; did you mean external_data?"));
    CHECK_THAT(d.error(kTwoPasses, {"model.path=x"}),
               Catch::Contains("model: takes a single value"));
    CHECK_THAT(d.error(kTwoPasses, {"no-equals-sign"}), Catch::Contains("expected PATH=VALUE"));
    CHECK_THAT(d.error(kTwoPasses, {"passes[x].pass=a"}), Catch::Contains("'[x]' is not an index"));
    CHECK_THAT(d.error(R"({"model": "m.onnx"})", {"passes[0].pass=fold-batchnorm"}),
               Catch::Contains("passes[0]: index out of range (the recipe has no \"passes\")"));
}

TEST_CASE("edit distance counts transpositions as one edit, suggestions only when close",
          "[recipe]") {
    CHECK(edit_distance("model", "modle") == 1);
    CHECK(edit_distance("group_size", "group_sise") == 1);
    CHECK(edit_distance("fold-batchnorm", "fold-batchnrom") == 1);
    CHECK(edit_distance("", "abc") == 3);
    CHECK(edit_distance("kitten", "sitting") == 3);
    std::vector<std::string> names{"model", "passes", "output"};
    CHECK(nearest_name("modl", names) == "model");
    CHECK(nearest_name("outptu", names) == "output");
    CHECK(nearest_name("xyz", names) == std::nullopt);
    CHECK(nearest_name("model", names) == std::nullopt);  // exact is not a typo
    CHECK(nearest_name(std::string(1000, 'm'), names) == std::nullopt);
    CHECK(did_you_mean("pases", names) == "; did you mean passes?");
    CHECK(did_you_mean("calibration", names).empty());
}

TEST_CASE("load_recipe reads the file and names it in errors", "[recipe]") {
    test::TempDir dir;
    test::write_file(dir / "m.onnx", "x");
    test::write_file(dir / "r.json", R"({"model": "m.onnx", "output": "o.onnx"})");
    Recipe r = load_recipe(dir / "r.json", {"output=p.onnx"});
    CHECK(r.model == dir / "m.onnx");
    CHECK(*r.output == dir / "p.onnx");
    CHECK_THROWS_WITH(load_recipe(dir / "none.json"), Catch::Contains("none.json: no such file"));
    CHECK_THROWS_WITH(load_recipe(dir.path()), Catch::Contains("is a directory"));
    test::write_file(dir / "bad.json", R"({"modle": "m.onnx"})");
    CHECK_THROWS_WITH(
        load_recipe(dir / "bad.json"),
        Catch::Equals((dir / "bad.json").string() + ": modle: unknown key; did you mean model?"));
}

TEST_CASE(
    "docs/recipe.schema.json accepts and rejects hand-written recipes as docs/recipes.md says",
    "[recipe][schema][xcheck]") {
    // The schema file is generated from the loader's tables (compress --print-schema), so
    // validating recipes against it alone checks the loader against itself. These verdicts
    // are written by hand from the documented contract; jsonschema (an independent
    // validator) applies the checked-in file, and the loader must agree.
    struct Case {
        const char* text;
        bool valid;
        const char* names;  // a field or value the error names (invalid cases)
    };
    const std::vector<Case> cases{
        {R"({"model": "m.onnx"})", true, ""},
        {R"({"model": "m.onnx", "output": ["a.epk", "b.onnx"], "passes": [{"pass":
           "quantize-weights", "bits": 8, "group_size": 0}], "validate": {"samples": 4},
           "gates": {"max_kl_mean": 0.1}})",
         true, ""},
        {R"({})", false, "model"},
        {R"({"model": ""})", false, "model"},
        {R"({"model": "m.onnx", "modle": "m.onnx"})", false, "modle"},
        {R"({"model": "m.onnx", "output": "out.txt"})", false, "output"},
        {R"({"model": "m.onnx", "passes": [{"pass": "quantise-weights"}]})", false,
         "quantise-weights"},
        {R"({"model": "m.onnx", "passes": [{"pass": "fold-batchnorm", "bits": 4}]})", false,
         "bits"},
        {R"({"model": "m.onnx", "passes": [{"pass": "quantize-weights", "method": "hqq"}]})", false,
         "hqq"},
        {R"({"model": "m.onnx", "passes": [{"bits": 4}]})", false, "pass"},
        {R"({"model": "m.onnx", "gates": {"max_kl_mean": -0.5}})", false, "max_kl_mean"},
        {R"({"model": "m.onnx", "validate": {"samples": 0}})", false, "samples"},
        {R"({"model": "m.onnx", "validate": {"samples": 2.5}})", false, "samples"},
    };
    RecipeDir dir;
    std::vector<std::string> args{(test::source_dir() / "docs" / "recipe.schema.json").string()};
    for (size_t i = 0; i < cases.size(); ++i) {
        auto path = dir.dir / ("r" + std::to_string(i) + ".json");
        test::write_file(path, cases[i].text);
        args.push_back(path.string());
    }
    auto r = test::run_oracle("json_schema_check.py", args);
    INFO(r.out << r.err);
    REQUIRE((r.exit_code == 0 || r.exit_code == 1));
    json verdicts = json::parse(r.out);
    for (size_t i = 0; i < cases.size(); ++i) {
        const Case& c = cases[i];
        INFO(c.text);
        std::string schema_errors = verdicts.at(args[i + 1]).dump();
        std::string loader = dir.loader_error(c.text);
        INFO("schema: " << schema_errors << "\nloader: " << loader);
        if (c.valid) {
            CHECK(verdicts.at(args[i + 1]).empty());
            CHECK(loader == "(no error)");
        } else {
            CHECK_FALSE(verdicts.at(args[i + 1]).empty());
            CHECK_THAT(schema_errors, Catch::Contains(c.names));
            CHECK_THAT(loader, Catch::Contains(c.names));
        }
    }
}

TEST_CASE("recipe schema gaps: what passes the schema and the loader rejects",
          "[recipe][schema][xcheck]") {
    // Known gaps kept visible. The schema says 4 <= bits <= 8 and 0 <= group_size <= 128
    // (its generator emits ranges, not the allowed sets), while the pass takes bits 4 or 8
    // and group_size 0, 32, 64 or 128; and a gate on a validation metric needs a
    // "validate" section, a rule across fields the schema does not state. When the schema
    // learns them, flip the first check.
    RecipeDir dir;
    auto schema = (test::source_dir() / "docs" / "recipe.schema.json").string();
    for (const char* text :
         {R"({"model": "m.onnx", "passes": [{"pass": "quantize-weights", "bits": 5}]})",
          R"({"model": "m.onnx", "passes": [{"pass": "quantize-weights", "group_size": 33}]})",
          R"({"model": "m.onnx", "gates": {"max_kl_mean": 0.1}})"}) {
        INFO(text);
        auto path = dir.dir / "gap.json";
        test::write_file(path, text);
        auto r = test::run_oracle("json_schema_check.py", {schema, path.string()});
        INFO(r.out << r.err);
        CHECK(r.exit_code == 0);
        CHECK(dir.loader_error(text) != "(no error)");
    }
}
