// The human and CI renderings of a compress report (schema edgepack.report/1,
// docs/reports.md): report.md for a pull-request comment, report.html for people (one
// self-contained page with inline SVG charts) and junit.xml for CI test views.
//
// Contract:
// - Pure functions of the report JSON: the same JSON gives the same bytes (no clock, no
//   locale, no environment). Numbers are printed with fixed C formats (%.4g, byte counts
//   as "1,440,685 (1.4 MB)").
// - Every section may be null, absent or of an unexpected type (no validation, no latency,
//   no baseline, no gates): the rendering says "not measured" and never throws for it.
//   Non-finite numbers arrive as the strings "inf", "-inf", "nan" and are printed as such.
// - Every string from the report is escaped for its target (Markdown + inline HTML, HTML,
//   XML); control characters become U+FFFD.
// - report.md: a verdict line naming every failing gate and its value, the gates and
//   baseline checks table, size, accuracy, latency and memory before/after, the 10 layers
//   with the worst SQNR, the outputs written and the environment.
// - report.html: the same content plus three inline SVG charts (ids chart-per-layer,
//   chart-size, chart-latency; a chart without data is a "not measured" paragraph with the
//   same id), a Content-Security-Policy that forbids every external load, and one tiny
//   inline script that records each chart's bounding box and any script error on <body>
//   (data-chart-boxes, data-errors) for scripts/xcheck/html_report_check.py.
// - junit.xml: <testsuites> holding one <testsuite name="edgepack.gates">: a testcase
//   "compress" (classname edgepack) that always passes, one testcase per gate (classname
//   edgepack.gates) and per baseline check (classname edgepack.baseline); a failed check,
//   or one whose metric was not measured (value null), is a <failure type="gate">.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace ep {

[[nodiscard]] std::string render_report_markdown(const nlohmann::json& report);
[[nodiscard]] std::string render_report_html(const nlohmann::json& report);
[[nodiscard]] std::string render_junit_xml(const nlohmann::json& report);

}  // namespace ep
