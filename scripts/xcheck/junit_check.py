#!/usr/bin/env python3
"""Oracle: what a JUnit consumer sees in edgepack's junit.xml.

usage: junit_check.py FILE

Parses FILE with the `junitparser` package (the reader several CI tools build on) and
prints JSON on stdout:
  {"tests": N, "failures": N, "errors": N, "skipped": N,
   "suites": [{"name", "tests", "failures", "errors", "skipped"}],
   "cases": [{"suite", "classname", "name", "result": "pass"|"failure"|"error"|"skipped",
              "message", "type", "text"}]}
"tests" and "failures" are counted from the test cases themselves; the suites' own
attributes are reported next to them so a test can check that both agree.
Exit 0 when the file parsed; 1 (message on stderr) when it is not JUnit XML.
"""
import json
import sys

from junitparser import Error, Failure, JUnitXml, Skipped, TestSuite


def case_result(case):
    for r in case.result:
        if isinstance(r, Failure):
            return "failure", r
        if isinstance(r, Error):
            return "error", r
        if isinstance(r, Skipped):
            return "skipped", r
    return "pass", None


def main():
    if len(sys.argv) != 2:
        print("usage: junit_check.py FILE", file=sys.stderr)
        return 2
    try:
        xml = JUnitXml.fromfile(sys.argv[1])
    except Exception as e:  # the parser's own exception types vary by version
        print(f"{sys.argv[1]}: not JUnit XML: {e}", file=sys.stderr)
        return 1
    if xml._tag != "testsuites":
        print(f"{sys.argv[1]}: root element is <{xml._tag}>, expected <testsuites>",
              file=sys.stderr)
        return 1
    suites = [s for s in xml if isinstance(s, TestSuite)]
    out = {"suites": [], "cases": []}
    for suite in suites:
        out["suites"].append({"name": suite.name, "tests": suite.tests,
                              "failures": suite.failures, "errors": suite.errors,
                              "skipped": suite.skipped})
        for case in suite:
            result, r = case_result(case)
            out["cases"].append({
                "suite": suite.name,
                "classname": case.classname,
                "name": case.name,
                "result": result,
                "message": r.message if r is not None else None,
                "type": r.type if r is not None else None,
                "text": r.text if r is not None else None,
            })
    cases = out["cases"]
    out["tests"] = len(cases)
    out["failures"] = sum(c["result"] == "failure" for c in cases)
    out["errors"] = sum(c["result"] == "error" for c in cases)
    out["skipped"] = sum(c["result"] == "skipped" for c in cases)
    out["declared"] = {"tests": xml.tests, "failures": xml.failures, "errors": xml.errors,
                       "skipped": xml.skipped}
    print(json.dumps(out, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
