// report.md, report.html and junit.xml rendered from hand-written report.json fixtures
// (tests/fixtures/report-*.json, following docs/reports.md): the verdict names every failing
// gate and its value, report strings are escaped, absent sections say "not measured", the
// output is deterministic; junit.xml is read back by the `junitparser` package
// (scripts/xcheck/junit_check.py) and report.html is loaded in headless Chromium
// (scripts/xcheck/html_report_check.py), which must also reject a broken page.
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "compressor/report_render.h"
#include "support.h"

using namespace ep;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

json fixture(const std::string& name) {
    return json::parse(test::read_file(test::source_dir() / "tests/fixtures" / name));
}

std::string first_line(const std::string& s) {
    return s.substr(0, s.find('\n'));
}

size_t occurrences(const std::string& s, const std::string& what) {
    size_t n = 0;
    for (size_t pos = s.find(what); pos != std::string::npos; pos = s.find(what, pos + 1)) ++n;
    return n;
}

// The Markdown table that follows the line starting with `header`, one string per row.
std::vector<std::string> table_rows(const std::string& md, const std::string& header) {
    std::vector<std::string> rows;
    size_t pos = md.find("\n" + header);
    if (pos == std::string::npos) return rows;
    pos = md.find('\n', pos + 1);  // end of the header line
    pos = md.find('\n', pos + 1);  // end of the |---| line
    while (pos != std::string::npos && pos + 1 < md.size() && md[pos + 1] == '|') {
        size_t end = md.find('\n', pos + 1);
        rows.push_back(md.substr(pos + 1, end - pos - 1));
        pos = end;
    }
    return rows;
}

json run_json_oracle(const std::string& script, const std::vector<std::string>& args,
                     int expected_exit) {
    auto r = test::run_oracle(script, args);
    INFO(script << " stdout:\n" << r.out << "\nstderr:\n" << r.err);
    REQUIRE(r.exit_code == expected_exit);
    return json::parse(r.out);
}

bool have_chromium() {
    return fs::exists("/usr/bin/chromium");
}

#define EP_REQUIRE_CHROMIUM_OR_SKIP()                                                           \
    do {                                                                                        \
        if (!have_chromium()) EP_SKIP("/usr/bin/chromium is absent (Debian package chromium)"); \
    } while (0)

// Renders `report` to DIR/report.html and DIR/report.json and runs the browser check.
json check_html(const test::TempDir& dir, const json& report, int expected_exit) {
    test::write_file(dir / "report.json", report.dump(2));
    test::write_file(dir / "report.html", render_report_html(report));
    return run_json_oracle(
        "html_report_check.py",
        {(dir / "report.html").string(), "--report", (dir / "report.json").string()},
        expected_exit);
}

}  // namespace

TEST_CASE("report.md of a failing report names every failing gate and its value", "[report]") {
    auto md = render_report_markdown(fixture("report-fail.json"));
    CHECK(first_line(md) ==
          "## edgepack: FAIL: max_kl_mean failed (kl_mean 0.0912 > 0.05, over by 0.0412); "
          "max_peak_memory_bytes failed (peak_memory_bytes not measured (limit <= 1,000,000)); "
          "baseline.kl_mean failed (kl_mean 0.0912 > 0.03, over by 0.0612)");
    auto gates = table_rows(md, "| gate | limit | value | result |");
    REQUIRE(gates.size() == 8);  // 6 gates + 2 baseline checks
    CHECK(gates[0] == "| max_kl_mean | kl_mean <= 0.05 | 0.0912 | **FAIL (over by 0.0412)** |");
    CHECK(gates[1] == "| min_top1_agreement | top1_agreement >= 95 | 97.5 | pass |");
    CHECK(gates[3] == "| max_output_bytes | output_bytes <= 2,000,000 | 1,440,685 | pass |");
    CHECK(gates[5] ==
          "| max_peak_memory_bytes | peak_memory_bytes <= 1,000,000 | not measured | **FAIL (not "
          "measured)** |");
    CHECK(gates[6] ==
          "| baseline.kl_mean | kl_mean <= 0.03 | 0.0912 | **FAIL (over by 0.0612)** |");
    CHECK(gates[7] == "| baseline.output_bytes | output_bytes <= 1,500,000 | 1,440,685 | pass |");
    CHECK(md.find("Baseline checks compare with previous/report.json.") != std::string::npos);
}

TEST_CASE("the verdict line says when the validation ran on synthetic random inputs", "[report]") {
    auto r = fixture("report-pass.json");
    r["validation"]["inputs"]["synthetic"] = false;
    CHECK(first_line(render_report_markdown(r)) == "## edgepack: PASS: 5 of 5 gates passed");
    r["validation"]["inputs"]["synthetic"] = true;
    const std::string note = "validated on 8 synthetic random inputs, not real data";
    CHECK(first_line(render_report_markdown(r)) ==
          "## edgepack: PASS: 5 of 5 gates passed; " + note);
    CHECK(render_report_html(r).find(note) != std::string::npos);
    auto f = fixture("report-fail.json");
    f["validation"]["inputs"]["synthetic"] = true;
    CHECK(first_line(render_report_markdown(f)).find("; " + note) != std::string::npos);
}

TEST_CASE("report.md of a passing report: verdict, size, accuracy, latency, worst layers",
          "[report]") {
    auto md = render_report_markdown(fixture("report-pass.json"));
    CHECK(first_line(md) == "## edgepack: PASS: 5 of 5 gates passed");

    auto size = table_rows(md, "|  | bytes |");
    REQUIRE(size.size() == 3);
    CHECK(size[0] == "| input (original) | 10,794,829 (10.8 MB) |");
    CHECK(size[1] == "| output (compressed) | 1,440,685 (1.4 MB) |");
    CHECK(size[2] == "| compression ratio | 7.493x |");
    auto cats = table_rows(md, "| category | tensors | input bytes | output bytes | ratio |");
    REQUIRE(cats.size() == 4);
    CHECK(cats[0] == "| matmul weights | 12 | 8,388,608 (8.4 MB) | 1,048,576 (1.0 MB) | 8x |");
    CHECK(cats[3] == "| biases &amp; norms | 40 | 46,925 (46.9 kB) | 31,661 (31.7 kB) | 1.482x |");

    auto acc = table_rows(md, "| metric | original | compressed | change |");
    REQUIRE(acc.size() == 8);
    CHECK(acc[0] == "| accuracy (top-1 vs labels) | 98.75 % | 98.5 % | drop 0.25 pp |");
    CHECK(acc[1] == "| KL divergence, mean |  | 0.025 |  |");
    CHECK(acc[3] == "| top-1 agreement |  | 97.5 % |  |");
    CHECK(acc[5] == "| SQNR |  | 24.8 dB |  |");

    auto lat = table_rows(md, "|  | original | compressed | ratio |");
    REQUIRE(lat.size() == 4);
    CHECK(lat[0] == "| latency p50 | 2.12 ms | 1.9 ms | 0.8962 |");
    // The gate's ratio (metrics.latency_ratio), which compress takes from paired runs.
    CHECK(lat[2] == "| time ratio (median of back-to-back pairs) |  |  | 0.8962 |");
    CHECK(lat[3] == "| peak memory | 5,000,000 (5.0 MB) | 2,000,000 (2.0 MB) | 0.4 |");

    // 14 layers, two of them "inf": the 10 lowest SQNR, ties in execution order.
    auto worst = table_rows(md, "| # | layer | order | SQNR dB |");
    REQUIRE(worst.size() == 10);
    CHECK(worst[0] == "| 1 | a&lt;b&gt;&amp;&quot;c&quot; | 2 | 15.5 |");
    CHECK(worst[1] == "| 2 | fc2_out | 9 | 19.8 |");
    CHECK(worst[3] == "| 4 | fc1_out | 7 | 22.4 |");
    CHECK(worst[4] == "| 5 | relu3_out | 8 | 22.4 |");
    CHECK(worst[8] == "| 9 | pool_out | 5 | 30.1 |");
    CHECK(worst[9] == "| 10 | flatten_out | 6 | 30.1 |");
    CHECK(md.find("The 10 layers with the lowest SQNR of 14 compared") != std::string::npos);

    auto outs = table_rows(md, "| path | format | bytes | sha256 | validated |");
    REQUIRE(outs.size() == 1);
    CHECK(outs[0] == "| /work/out/rec.epk | epk | 1,440,685 (1.4 MB) | 3b1e0f9a8c7d | yes |");
    CHECK(md.find("Environment: edgepack 0.5.0, AMD EPYC 9R14 (avx512), 2 logical CPUs, 2 "
                  "threads, Linux 6.1.0; total 2.7 s.") != std::string::npos);
}

TEST_CASE("report renderings escape every string taken from the report", "[report]") {
    json r = fixture("report-fail.json");
    const std::string evil = "a<b>&\"c\"";
    r["gates"][0]["name"] = evil;
    r["size"]["by_category"][0]["category"] = "x|y `z` [l](u) <img src=x>";
    r["outputs"][0]["path"] = "/o/</td><script>alert(1)</script>.epk";
    r["gates"][1]["value"] = "<b>not a number</b>";

    auto md = render_report_markdown(r);
    CHECK(md.find(evil) == std::string::npos);
    CHECK(md.find("<script>") == std::string::npos);
    CHECK(md.find("<img") == std::string::npos);
    CHECK(md.find("<b>") == std::string::npos);
    CHECK(md.find(
              "| min_top1_agreement | top1_agreement >= 95 | &lt;b&gt;not a number&lt;/b&gt; |") !=
          std::string::npos);
    CHECK(first_line(md).rfind("## edgepack: FAIL: a&lt;b&gt;&amp;&quot;c&quot; failed (kl_mean "
                               "0.0912 > 0.05",
                               0) == 0);
    auto cats = table_rows(md, "| category | tensors | input bytes | output bytes | ratio |");
    REQUIRE(cats.size() == 4);
    // The pipe is escaped, so the row keeps its 5 cells.
    CHECK(cats[0] ==
          "| x\\|y \\`z\\` \\[l\\](u) &lt;img src=x&gt; | 12 | 8,388,608 (8.4 MB) | 1,048,576 "
          "(1.0 MB) | 8x |");

    auto html = render_report_html(r);
    CHECK(html.find(evil) == std::string::npos);
    CHECK(html.find("a&lt;b&gt;&amp;&quot;c&quot;") != std::string::npos);
    CHECK(html.find("<img") == std::string::npos);
    CHECK(occurrences(html, "<script>") == 1);  // the page's own check script only

    auto xml = render_junit_xml(r);
    CHECK(xml.find(evil) == std::string::npos);
    CHECK(xml.find("name=\"a&lt;b&gt;&amp;&quot;c&quot;\"") != std::string::npos);

    // Control characters (invalid in XML 1.0 even as references) become U+FFFD.
    r["gates"][0]["name"] = std::string("bad\x01\x02\x1bname");
    xml = render_junit_xml(r);
    CHECK(xml.find("bad\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDname") != std::string::npos);
    md = render_report_markdown(r);
    CHECK(md.find('\x01') == std::string::npos);
    CHECK(md.find('\x1b') == std::string::npos);
}

TEST_CASE("report renderings say 'not measured' for absent sections and never throw", "[report]") {
    auto minimal = fixture("report-minimal.json");
    auto md = render_report_markdown(minimal);
    CHECK(first_line(md) == "## edgepack: PASS: no gates set");
    CHECK(md.find("Accuracy: not measured (the recipe has no validate section).") !=
          std::string::npos);
    CHECK(md.find("Latency and memory: not measured") != std::string::npos);
    CHECK(md.find("Per-layer error: not measured") != std::string::npos);
    CHECK(md.find("| compression ratio | 2.733x |") != std::string::npos);

    auto html = render_report_html(minimal);
    for (const char* id : {"chart-per-layer", "chart-size", "chart-latency"}) {
        INFO(id);
        CHECK(html.find(std::string("<p class=\"chart-missing\" id=\"") + id + "\">") !=
              std::string::npos);
        CHECK(html.find(std::string("<svg class=\"chart\" id=\"") + id) == std::string::npos);
    }

    auto xml = render_junit_xml(minimal);
    CHECK(xml.find("<testsuite name=\"edgepack.gates\" tests=\"1\" failures=\"0\"") !=
          std::string::npos);
    CHECK(xml.find("<testcase classname=\"edgepack\" name=\"compress\"") != std::string::npos);

    // Hostile shapes: wrong types everywhere, non-finite strings, empty documents.
    json odd = json::parse(R"({
        "verdict": 7, "gates": "x", "size": 5, "baseline": {"checks": {"a": 1}},
        "validation": {"per_layer": [{"name": 3, "sqnr_db": "nan"}, {"sqnr_db": "-inf"},
                                     {"name": "z", "order": "x", "sqnr_db": "inf"}]},
        "latency": {"reference": {"samples_ms": ["nan", "inf", 1, null, "x"]},
                    "candidate": {"samples_ms": 3}},
        "memory": {"reference": [], "candidate": {"peak_bytes": -5}},
        "outputs": [null, 1, {"path": ["p"], "bytes": 1.5}],
        "environment": "linux", "timings": {"total_s": "inf"}
    })");
    for (const json& j : {odd, json(), json::object(), json::array(), json("report"),
                          json::parse(R"({"size": {"by_category": [{"category": null}]}})")}) {
        INFO(j.dump());
        std::string a, b, c;
        REQUIRE_NOTHROW(a = render_report_markdown(j));
        REQUIRE_NOTHROW(b = render_report_html(j));
        REQUIRE_NOTHROW(c = render_junit_xml(j));
        CHECK(a.find("not measured") != std::string::npos);
        CHECK(c.find("name=\"compress\"") != std::string::npos);
    }
}

TEST_CASE("report renderings print non-finite values as inf / nan", "[report]") {
    json r = fixture("report-fail.json");
    r["gates"][0]["value"] = "inf";
    r["gates"][1] = {{"name", "min_sqnr_db"},
                     {"metric", "sqnr_db"},
                     {"comparison", ">="},
                     {"limit", 20},
                     {"value", "-inf"},
                     {"passed", false},
                     {"detail", "sqnr_db -inf < 20"}};
    r["metrics"]["sqnr_db"] = "nan";
    auto md = render_report_markdown(r);
    CHECK(first_line(md).rfind("## edgepack: FAIL: max_kl_mean failed (kl_mean inf > 0.05); "
                               "min_sqnr_db failed (sqnr_db -inf < 20); ",
                               0) == 0);
    CHECK(md.find("| SQNR |  | nan dB |  |") != std::string::npos);
    auto xml = render_junit_xml(r);
    CHECK(xml.find("message=\"sqnr_db -inf &lt; limit 20\"") != std::string::npos);
}

TEST_CASE("report renderings are deterministic", "[report]") {
    for (const char* name : {"report-pass.json", "report-fail.json", "report-minimal.json"}) {
        INFO(name);
        json a = fixture(name);
        json b = json::parse(a.dump());  // the same report, read again
        CHECK(render_report_markdown(a) == render_report_markdown(b));
        CHECK(render_report_html(a) == render_report_html(b));
        CHECK(render_junit_xml(a) == render_junit_xml(b));
    }
}

TEST_CASE("junit.xml reads back through junitparser: gates as test cases", "[report]") {
    test::TempDir dir;
    test::write_file(dir / "fail.xml", render_junit_xml(fixture("report-fail.json")));
    auto j = run_json_oracle("junit_check.py", {(dir / "fail.xml").string()}, 0);
    CHECK(j["tests"] == 9);
    CHECK(j["failures"] == 3);
    CHECK(j["errors"] == 0);
    CHECK(j["declared"]["tests"] == 9);
    CHECK(j["declared"]["failures"] == 3);
    REQUIRE(j["suites"].size() == 1);
    CHECK(j["suites"][0]["name"] == "edgepack.gates");
    const auto& cases = j["cases"];
    REQUIRE(cases.size() == 9);
    CHECK(cases[0]["classname"] == "edgepack");
    CHECK(cases[0]["name"] == "compress");
    CHECK(cases[0]["result"] == "pass");
    CHECK(cases[1]["classname"] == "edgepack.gates");
    CHECK(cases[1]["name"] == "max_kl_mean");
    CHECK(cases[1]["result"] == "failure");
    CHECK(cases[1]["type"] == "gate");
    CHECK(cases[1]["message"] == "kl_mean 0.0912 > limit 0.05, over by 0.0412");
    CHECK(cases[1]["text"] == "kl_mean 0.0912 > 0.05 (over by 0.0412)");
    CHECK(cases[2]["result"] == "pass");
    CHECK(cases[6]["name"] == "max_peak_memory_bytes");
    CHECK(cases[6]["result"] == "failure");
    CHECK(cases[6]["message"] == "peak_memory_bytes not measured (limit <= 1,000,000)");
    CHECK(cases[7]["classname"] == "edgepack.baseline");
    CHECK(cases[7]["name"] == "baseline.kl_mean");
    CHECK(cases[7]["result"] == "failure");
    CHECK(cases[8]["classname"] == "edgepack.baseline");
    CHECK(cases[8]["result"] == "pass");

    // Escaped names come back as they were; a report without gates still has one test.
    json r = fixture("report-pass.json");
    r["gates"][0]["name"] = "a<b>&\"c\"";
    r["gates"][0]["passed"] = false;
    test::write_file(dir / "pass.xml", render_junit_xml(r));
    j = run_json_oracle("junit_check.py", {(dir / "pass.xml").string()}, 0);
    CHECK(j["tests"] == 6);
    CHECK(j["failures"] == 1);
    CHECK(j["cases"][1]["name"] == "a<b>&\"c\"");
    CHECK(j["cases"][1]["message"] == "kl_mean 0.025 < limit 0.05");

    test::write_file(dir / "none.xml", render_junit_xml(fixture("report-minimal.json")));
    j = run_json_oracle("junit_check.py", {(dir / "none.xml").string()}, 0);
    CHECK(j["tests"] == 1);
    CHECK(j["failures"] == 0);
    CHECK(j["cases"][0]["name"] == "compress");

    // The oracle rejects what is not JUnit XML.
    test::write_file(dir / "bad.xml", "<testsuites><testsuite name=\"x\"><testcase");
    auto bad = test::run_oracle("junit_check.py", {(dir / "bad.xml").string()});
    CHECK(bad.exit_code == 1);
}

TEST_CASE("report.html of a passing report loads in headless Chromium with three charts",
          "[report][chromium]") {
    EP_REQUIRE_CHROMIUM_OR_SKIP();
    test::TempDir dir;
    auto j = check_html(dir, fixture("report-pass.json"), 0);
    CHECK(j["ok"] == true);
    CHECK(j["errors"].empty());
    for (const char* id : {"chart-per-layer", "chart-size", "chart-latency"}) {
        INFO(id << ": " << j["charts"].dump());
        REQUIRE(j["charts"].contains(id));
        CHECK(j["charts"][id]["width"].get<double>() > 100);
        CHECK(j["charts"][id]["height"].get<double>() > 100);
        CHECK(j["charts"][id]["elements"].get<int>() >= 4);
    }
    // One bar per layer, at least: 14 layers.
    CHECK(j["charts"]["chart-per-layer"]["elements"].get<int>() >= 14);
    // 20 + 20 latency samples drawn as dots.
    CHECK(j["charts"]["chart-latency"]["elements"].get<int>() >= 40);
}

TEST_CASE(
    "report.html of a failing report and of a report without measurements pass the "
    "browser check",
    "[report][chromium]") {
    EP_REQUIRE_CHROMIUM_OR_SKIP();
    test::TempDir dir;
    json r = fixture("report-fail.json");
    r["validation"]["per_layer"][0]["name"] = "</svg><script src=\"https://x.invalid/a.js\">";
    auto j = check_html(dir, r, 0);
    CHECK(j["ok"] == true);
    CHECK(j["charts"].size() == 3);

    test::TempDir dir2;
    j = check_html(dir2, fixture("report-minimal.json"), 0);
    CHECK(j["ok"] == true);
    for (const char* id : {"chart-per-layer", "chart-size", "chart-latency"}) {
        INFO(id);
        CHECK(j["charts"][id]["not_measured"] == true);
    }
}

TEST_CASE("the browser check rejects a broken report page", "[report][chromium]") {
    EP_REQUIRE_CHROMIUM_OR_SKIP();
    test::TempDir dir;
    json report = fixture("report-pass.json");
    std::string html = render_report_html(report);
    // An external script, and the size chart replaced by text although the report has data.
    size_t head = html.find("</head>");
    REQUIRE(head != std::string::npos);
    html.insert(head, "<script src=\"https://cdn.invalid/chart.js\"></script>\n");
    size_t start = html.find("<svg class=\"chart\" id=\"chart-size\"");
    REQUIRE(start != std::string::npos);
    size_t end = html.find("</svg>", start);
    html.replace(start, end + 6 - start, "<p id=\"chart-size\">size: not measured</p>");
    test::write_file(dir / "report.json", report.dump());
    test::write_file(dir / "broken.html", html);
    auto j = run_json_oracle(
        "html_report_check.py",
        {(dir / "broken.html").string(), "--report", (dir / "report.json").string()}, 1);
    CHECK(j["ok"] == false);
    std::string errors = j["errors"].dump();
    INFO(errors);
    CHECK(errors.find("external URL in the file: <script src='https://cdn.invalid/chart.js'>") !=
          std::string::npos);
    CHECK(errors.find("CSP violation") != std::string::npos);
    CHECK(errors.find("chart-size: <p> instead of an <svg>, but the report has data") !=
          std::string::npos);

    // A page whose script throws, a chart without anything drawn, no CSP.
    html = render_report_html(report);
    start = html.find("<meta http-equiv=\"Content-Security-Policy\"");
    REQUIRE(start != std::string::npos);
    html.erase(start, html.find('>', start) + 1 - start);
    html.insert(html.find("</body>"), "<script>undefinedFunction();</script>\n");
    start = html.find("<svg class=\"chart\" id=\"chart-latency\"");
    REQUIRE(start != std::string::npos);
    end = html.find("</svg>", start);
    html.replace(start, end + 6 - start,
                 "<svg class=\"chart\" id=\"chart-latency\" width=\"10\" height=\"10\">"
                 "<title>t</title></svg>");
    test::write_file(dir / "broken2.html", html);
    j = run_json_oracle(
        "html_report_check.py",
        {(dir / "broken2.html").string(), "--report", (dir / "report.json").string()}, 1);
    errors = j["errors"].dump();
    INFO(errors);
    CHECK(errors.find("script error: Uncaught ReferenceError: undefinedFunction is not defined") !=
          std::string::npos);
    CHECK(errors.find("chart-latency: svg with no drawn elements") != std::string::npos);
    CHECK(errors.find("chart-latency: empty bounding box") != std::string::npos);
    CHECK(errors.find("no Content-Security-Policy") != std::string::npos);
}
