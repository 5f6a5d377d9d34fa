#!/usr/bin/env python3
"""Oracle: does edgepack's report.html load in a real browser, offline, and show its charts?

usage: html_report_check.py FILE [--report REPORT.json] [--chromium PATH] [--timeout S]

Loads FILE in headless Chromium (`--dump-dom`, a private profile in a temporary directory,
host names unresolvable so nothing can reach a network) and checks:
  - chromium exits with status 0 within the timeout;
  - its log has no console message (the page logs nothing itself), no Content-Security-
    Policy violation ("Refused to", "violates the following Content Security Policy") and
    no failed resource load ("Failed to load resource", "net::ERR_");
  - the file declares a Content-Security-Policy <meta> with default-src 'none';
  - the page's inline check script ran (data-chart-boxes on <body>) and recorded no script
    error (data-errors);
  - each of chart-per-layer, chart-size and chart-latency is an <svg class="chart"> with a
    <title>, drawn elements and a non-zero bounding box as measured by the browser; or,
    only when --report says that chart has no data, an element with that id saying
    "not measured";
  - no src, href or CSS url() in the file or the loaded DOM names an http:, https: or
    protocol-relative (//) URL, and the page has no <link>, <iframe>, <object> or <embed>.
Prints JSON {"ok", "errors": [...], "charts": {id: {"width", "height", "elements"}},
"seconds"} and exits 0 when ok, 1 when not.
"""
import argparse
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

CHART_IDS = ["chart-per-layer", "chart-size", "chart-latency"]
DRAWN = {"rect", "line", "circle", "path", "polyline", "polygon", "ellipse"}
URL_ATTRS = {"src", "href", "xlink:href", "srcset", "action", "formaction", "poster", "data",
             "background"}
EXTERNAL = re.compile(r"^\s*(https?:|//)", re.I)
CSS_URL = re.compile(r"url\(\s*['\"]?\s*(https?:|//)", re.I)
CSS_IMPORT = re.compile(r"@import", re.I)
# First match names the problem: a CSP violation is also logged as a console message.
LOG_PROBLEMS = [
    (re.compile(r"Refused to"), "CSP violation"),
    (re.compile(r"violates the following Content Security Policy"), "CSP violation"),
    (re.compile(r"Failed to load resource"), "failed resource load"),
    (re.compile(r"net::ERR_"), "failed resource load"),
    (re.compile(r"CONSOLE"), "console message"),
]


class Dom(html.parser.HTMLParser):
    """Elements of interest in the dumped DOM (html.parser: no third-party parser)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.body_attrs = {}
        self.by_id = {}  # id -> {"tag", "class", "text", "elements", "titles"}
        self.stack = []  # open elements: (tag, id of the chart they belong to or None)
        self.urls = []
        self.forbidden_tags = []
        self.style_text = []
        self.in_style = False
        self.csp = []  # content of <meta http-equiv="Content-Security-Policy">

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "body":
            self.body_attrs = a
        if tag == "meta" and a.get("http-equiv", "").lower() == "content-security-policy":
            self.csp.append(a.get("content", ""))
        if tag in ("link", "iframe", "object", "embed", "frame", "base"):
            self.forbidden_tags.append(tag)
        for k, v in a.items():
            if k in URL_ATTRS and EXTERNAL.search(v):
                self.urls.append(f"<{tag} {k}={v!r}>")
            if k == "style" and CSS_URL.search(v):
                self.urls.append(f"<{tag} style={v!r}>")
        owner = self.stack[-1][1] if self.stack else None
        if a.get("id") in CHART_IDS:
            owner = a["id"]
            self.by_id[owner] = {"tag": tag, "class": a.get("class", ""), "text": "",
                                 "elements": 0, "titles": 0}
        elif owner is not None:
            if tag in DRAWN:
                self.by_id[owner]["elements"] += 1
            if tag == "title":
                self.by_id[owner]["titles"] += 1
        if tag == "style":
            self.in_style = True
        if tag not in ("meta", "br", "img", "input", "hr", "link", "source", "wbr", "col",
                       "area", "base", "embed", "param", "track"):
            self.stack.append((tag, owner))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if self.stack and self.stack[-1][0] == tag:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag == "style":
            self.in_style = False
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        if self.in_style:
            self.style_text.append(data)
        if self.stack and self.stack[-1][1] is not None:
            self.by_id[self.stack[-1][1]]["text"] += data


def chart_has_data(report, chart_id):
    """What the report JSON holds for each chart (None: no --report, assume data)."""
    if report is None:
        return True

    def get(obj, *keys):
        for k in keys:
            if not isinstance(obj, dict):
                return None
            obj = obj.get(k)
        return obj

    if chart_id == "chart-per-layer":
        pl = get(report, "validation", "per_layer")
        if isinstance(pl, dict):
            pl = pl.get("layers")
        return isinstance(pl, list) and len(pl) > 0
    if chart_id == "chart-size":
        cats = get(report, "size", "by_category")
        return isinstance(cats, list) and len(cats) > 0
    if chart_id == "chart-latency":
        def finite_samples(side):
            s = get(report, "latency", side, "samples_ms")
            return isinstance(s, list) and any(isinstance(v, (int, float)) for v in s)
        return finite_samples("reference") or finite_samples("candidate")
    return True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--report", help="the report.json the page was rendered from")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()

    errors = []
    charts = {}
    path = os.path.abspath(args.file)
    with open(path, encoding="utf-8") as f:
        source = f.read()
    report = None
    if args.report:
        with open(args.report, encoding="utf-8") as f:
            report = json.load(f)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ep-chromium-") as profile:
        cmd = [args.chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
               "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
               f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
               "--disable-extensions", "--disable-sync", "--disable-background-networking",
               "--disable-component-update", "--host-resolver-rules=MAP * ~NOTFOUND",
               "--dump-dom", "file://" + path]
        env = dict(os.environ, HOME=profile, XDG_CONFIG_HOME=profile, XDG_CACHE_HOME=profile)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                                  env=env)
        except subprocess.TimeoutExpired:
            print(json.dumps({"ok": False, "errors": [f"chromium timed out after {args.timeout} s"],
                              "charts": {}, "seconds": time.monotonic() - started}))
            return 1
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        errors.append(f"chromium exited with status {proc.returncode}: {proc.stderr[-2000:]}")
    for line in proc.stderr.splitlines():
        for pattern, what in LOG_PROBLEMS:
            if pattern.search(line):
                errors.append(f"{what}: {line.strip()[:500]}")
                break

    # The file as written and the DOM as loaded: no external reference in either.
    for name, text in (("file", source), ("DOM", proc.stdout)):
        d = Dom()
        d.feed(text)
        d.close()
        for u in d.urls:
            errors.append(f"external URL in the {name}: {u}")
        for t in d.forbidden_tags:
            errors.append(f"<{t}> in the {name}")
        css = "".join(d.style_text)
        if CSS_URL.search(css) or CSS_IMPORT.search(css):
            errors.append(f"external url() or @import in a <style> of the {name}")
        if name == "DOM":
            dom = d
        elif not any("default-src 'none'" in c for c in d.csp):
            errors.append("the file has no Content-Security-Policy meta with default-src 'none'")

    if not proc.stdout.strip():
        errors.append("chromium dumped no DOM")
    raw_errors = dom.body_attrs.get("data-errors")
    if raw_errors is None:
        errors.append("the page's check script did not run (no data-errors on <body>)")
    else:
        try:
            script_errors = json.loads(raw_errors)
        except ValueError:
            script_errors = [f"unreadable data-errors: {raw_errors!r}"]
        for e in script_errors:
            errors.append(f"script error: {e}")
    raw_boxes = dom.body_attrs.get("data-chart-boxes")
    boxes = {}
    if raw_boxes is None:
        errors.append("the page's check script did not record chart boxes (data-chart-boxes)")
    else:
        try:
            boxes = json.loads(raw_boxes)
        except ValueError:
            errors.append(f"unreadable data-chart-boxes: {raw_boxes!r}")

    for cid in CHART_IDS:
        el = dom.by_id.get(cid)
        has_data = chart_has_data(report, cid)
        if el is None:
            errors.append(f"{cid}: no element with this id")
            continue
        if el["tag"] != "svg":
            if has_data:
                errors.append(f"{cid}: <{el['tag']}> instead of an <svg>, but the report has "
                              f"data for this chart")
            elif "not measured" not in el["text"]:
                errors.append(f"{cid}: no chart and no 'not measured' text: {el['text']!r}")
            else:
                charts[cid] = {"width": 0, "height": 0, "elements": 0, "not_measured": True}
            continue
        box = boxes.get(cid, {})
        charts[cid] = {"width": box.get("width", 0), "height": box.get("height", 0),
                       "elements": el["elements"]}
        if "chart" not in el["class"].split():
            errors.append(f"{cid}: svg without class 'chart'")
        if not has_data:
            errors.append(f"{cid}: an svg chart, but the report has no data for it")
        if el["titles"] < 1:
            errors.append(f"{cid}: svg without a <title>")
        if el["elements"] < 1:
            errors.append(f"{cid}: svg with no drawn elements")
        if not (box.get("width", 0) > 0 and box.get("height", 0) > 0):
            errors.append(f"{cid}: empty bounding box in the browser: {box}")

    ok = not errors
    print(json.dumps({"ok": ok, "errors": errors, "charts": charts, "seconds": round(seconds, 2)},
                     indent=1, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
