#!/usr/bin/env python3
"""SHA-256 of everything the example recipes write, to prove a refactor changed no byte.

Runs every recipe in ROOT/examples/recipes with ROOT's build (after making the data the
recipes name with ROOT's scripts/make_data.sh), then prints one line per file: the digest of each output
(.epk, .onnx, .onnx.data, .safetensors) and of each report.json with what legitimately
differs between two runs taken out (timings, latencies and the gates judged on them, the
verdict and exit code that follow those gates, the environment, and the checkout's own path). Run it in two checkouts and diff the outputs:

    python3 scripts/xcheck/output_digests.py /path/to/old > old.txt
    python3 scripts/xcheck/output_digests.py /path/to/new > new.txt && diff old.txt new.txt

Recipes whose model is absent (../shared/models beside the checkout) are listed as skipped.
"""
import hashlib
import json
import pathlib
import subprocess
import sys

TIMING_METRICS = {"latency_p50_ms", "reference_latency_p50_ms", "latency_ratio"}


def sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def normalized_report(path: pathlib.Path, root: pathlib.Path) -> str:
    r = json.loads(path.read_text())
    # The verdict and exit code follow the gates, latency gates included: the gates left in
    # below carry the verdict of everything that is not a timing.
    for key in ("timings", "latency", "environment", "verdict", "exit_code"):
        r.pop(key, None)
    for p in r.get("passes", []):
        p.pop("seconds", None)
    for k in TIMING_METRICS:
        r.get("metrics", {}).pop(k, None)
    r["gates"] = [g for g in r.get("gates", []) if g.get("metric") not in TIMING_METRICS]
    if isinstance(r.get("baseline"), dict):
        r["baseline"]["checks"] = [c for c in r["baseline"]["checks"]
                                   if c.get("metric") not in TIMING_METRICS]
    text = json.dumps(r, sort_keys=True).replace(str(root), "<root>")
    return hashlib.sha256(text.encode()).hexdigest()


def make_data(root: pathlib.Path) -> None:
    """The data the recipes name: scripts/make_data.sh (idempotent) writes .cache/data."""
    subprocess.run(["bash", str(root / "scripts" / "make_data.sh")], check=True,
                   stdout=subprocess.DEVNULL)


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    rerun = "--digests-only" not in sys.argv  # --digests-only: hash what the last run wrote
    edgepack = root / "build" / "compressor" / "edgepack"
    if rerun:
        make_data(root)
    recipes_dir = root / "examples" / "recipes"
    for recipe_path in sorted(recipes_dir.glob("*.json")):
        recipe = json.loads(recipe_path.read_text())
        model = (recipes_dir / recipe["model"]).resolve()
        name = recipe_path.name
        if not model.exists():
            print(f"{name}: skipped (model {model} absent)")
            continue
        if rerun:
            run = subprocess.run([str(edgepack), "compress", str(recipe_path), "--quiet",
                                  "--threads", "2"], capture_output=True, text=True)
            print(f"{name}: exit {run.returncode}")
        outputs = recipe["output"] if isinstance(recipe["output"], list) else [recipe["output"]]
        for o in outputs:
            out = (recipes_dir / o).resolve()
            files = [out] + ([pathlib.Path(str(out) + ".data")] if out.suffix == ".onnx" else [])
            for f in files:
                if f.exists():
                    print(f"{name}: {f.relative_to(root)} {sha256(f)}")
        report = (recipes_dir / recipe.get("report_dir", ".")).resolve() / "report.json"
        if report.exists():
            print(f"{name}: {report.relative_to(root)} (minus timings) "
                  f"{normalized_report(report, root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
