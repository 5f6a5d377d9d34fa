// report.json passes[].pruned (from PassResult::pruned), the tensor decision "pruned", and
// the pruned-weights table of report.md / report.html; the schema accepts what is written.
#include <nlohmann/json.hpp>

#include "compressor/report.h"
#include "compressor/report_render.h"
#include "support.h"

using namespace ep;
using nlohmann::json;

TEST_CASE(
    "report.json lists what a pruning pass pruned, report.md tables it, and the schema "
    "accepts it",
    "[sparse][report]") {
    PassRecord prune{"passes[0]", "prune", {}, 0.1};
    prune.result.changed = true;
    prune.result.pruned = {
        {"blk.0.w1", "MatMul", "wanda", "2:4", 0.5, "2:4", 16384, 9216},
        {"blk.0.w2", "MatMul", "wanda", "unstructured", 0.5, "dense", 16384, 16384},
        {"conv1.w", "Conv", "l1", "channels", 0.3, "removed", 1000, 700},
    };
    prune.result.skipped = {{"emb", "an embedding (excluded by default)"}};
    PassRecord quantize{"passes[1]", "quantize-weights", {}, 0.2};
    quantize.result.quantized = {{"MatMul", "int4g32+2:4", "rtn", 1, 9216, 2368}};

    json passes = passes_json({prune, quantize});
    REQUIRE(passes[0]["pruned"].size() == 3);
    const json& first = passes[0]["pruned"][0];
    CHECK(first["name"] == "blk.0.w1");
    CHECK(first["pattern"] == "2:4");
    CHECK(first["sparsity"] == 0.5);
    CHECK(first["storage"] == "2:4");
    CHECK(first["output_bytes"] == 9216);
    CHECK(first["line"] ==
          "blk.0.w1 (MatMul weight): 50.0% pruned by wanda, 2:4, stored 2:4 (16384 -> 9216 "
          "bytes)");
    CHECK(passes[0]["pruned"][2]["line"] ==
          "conv1.w (Conv weight): 30.0% pruned by l1, channels, removed (1000 -> 700 bytes)");
    CHECK(passes[1]["pruned"].empty());

    // Decisions: pruned and then quantized reads "quantized" (its encoding says both);
    // pruned alone, sparse, dense or shrunk, "pruned".
    std::vector<TensorEntry> before = {{"blk.0.w1", "f32", "", {64, 64}, 16384, "matmul weights"},
                                       {"blk.0.w2", "f32", "", {64, 64}, 16384, "matmul weights"},
                                       {"conv1.w", "f32", "", {10, 25}, 1000, "conv weights"},
                                       {"emb", "f32", "", {32, 64}, 8192, "embeddings"}};
    std::vector<TensorEntry> after = before;
    after[0].encoding = "int4g32+2:4";
    after[0].bytes = 2368;
    after[2].shape = {7, 25};
    after[2].bytes = 700;
    json decisions = tensor_decisions(before, after, {prune, quantize});
    CHECK(decisions[0]["decision"] == "quantized");
    CHECK(decisions[1]["decision"] == "pruned");
    CHECK(decisions[2]["decision"] == "pruned");
    CHECK(decisions[3]["decision"] == "skipped");
    CHECK(decisions[3]["reason"] == "an embedding (excluded by default)");
    after[1].encoding = "bitmask";
    after[1].bytes = 9344;
    CHECK(tensor_decisions(before, after, {prune})[1]["decision"] == "pruned");

    // report.md and report.html show one row per pruned weight and the totals.
    json report = json::parse(
        test::read_file(test::source_dir() / "tests" / "fixtures" / "report-pass.json"));
    report["passes"] = passes;
    std::string md = render_report_markdown(report);
    CHECK_THAT(md, Catch::Contains("| weight | op | method | pattern | sparsity | storage |"));
    CHECK_THAT(md, Catch::Contains("| blk.0.w1 | MatMul | wanda | 2:4 | 50.0 % | 2:4 |"));
    CHECK_THAT(md, Catch::Contains("| conv1.w | Conv | l1 | channels | 30.0 % | removed |"));
    CHECK_THAT(md, Catch::Contains("| all 3 pruned weights |"));
    CHECK_THAT(md, Catch::Contains("33,768 (33.8 kB)"));  // 16384 + 16384 + 1000 in
    std::string html = render_report_html(report);
    CHECK_THAT(html, Catch::Contains("<td>blk.0.w1</td>"));
    // Past 40 weights the table says how many more report.json holds.
    report["passes"][0]["pruned"] = json::array();
    for (int i = 0; i < 45; ++i) report["passes"][0]["pruned"].push_back(first);
    CHECK_THAT(render_report_markdown(report), Catch::Contains("... 5 more in report.json"));

    // The schema (its passes and tensors parts) accepts these and refuses a bad entry.
    json schema = json::parse(test::read_file(test::source_dir() / "docs" / "report.schema.json"));
    json part = {{"$schema", schema["$schema"]},
                 {"$defs", schema["$defs"]},
                 {"type", "object"},
                 {"properties",
                  {{"passes", schema["properties"]["passes"]},
                   {"tensors", schema["properties"]["tensors"]}}},
                 {"required", {"passes", "tensors"}}};
    test::TempDir dir;
    test::write_file(dir / "schema.json", part.dump());
    test::write_file(dir / "good.json", json{{"passes", passes}, {"tensors", decisions}}.dump());
    json bad_passes = passes;
    bad_passes[0]["pruned"][0]["sparsity"] = 1.5;
    bad_passes[0]["pruned"][1].erase("storage");
    test::write_file(dir / "bad.json", json{{"passes", bad_passes}, {"tensors", decisions}}.dump());
    auto good = test::run_oracle("json_schema_check.py",
                                 {(dir / "schema.json").string(), (dir / "good.json").string()});
    INFO(good.out << good.err);
    CHECK(good.exit_code == 0);
    auto bad = test::run_oracle("json_schema_check.py",
                                {(dir / "schema.json").string(), (dir / "bad.json").string()});
    CHECK(bad.exit_code == 1);
    CHECK_THAT(bad.out, Catch::Contains("sparsity"));
    CHECK_THAT(bad.out, Catch::Contains("'storage' is a required property"));
}
