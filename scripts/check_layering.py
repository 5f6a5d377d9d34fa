#!/usr/bin/env python3
"""The layering check: no folder of ours includes one above it.

Reads every `#include "..."` of the C++ sources under the library folders and fails on an
include that points up. The rules (mirrored by the table in docs/ARCHITECTURE.md):

    ir/                      nothing of ours but ir/
    formats/                 ir/
    runtime-check/kernels/   ir/
    runtime-check/ops/       ir/, runtime-check/kernels/
    runtime-check/           ir/, its two rooms, and the .epk reader (formats/epk.h)
    calibration/             ir/, runtime-check/
    passes/                  ir/, runtime-check/, calibration/
    compressor/              everything above

A folder may always include itself. tests/, bench/ and examples/ stand outside the
layers. An include is resolved like the compiler does: first beside the including file,
then from the repository root.

Usage: check_layering.py [--root DIR]   exit 0 when every include keeps to the rules,
1 with one line per upward include, 2 when DIR is not a source tree.
"""
import argparse
import pathlib
import re
import sys

# Most specific folder first: a file belongs to the first folder that contains it.
RULES = [
    ("runtime-check/kernels", []),
    ("runtime-check/ops", ["runtime-check/kernels"]),
    ("runtime-check", ["runtime-check/kernels", "runtime-check/ops", "formats/epk.h"]),
    ("ir", []),
    ("formats", []),
    ("calibration", ["runtime-check"]),
    ("passes", ["runtime-check", "calibration"]),
    ("compressor", ["formats", "runtime-check", "calibration", "passes"]),
]
ALWAYS = ["ir"]  # every layer stands on the IR
SOURCES = {".h", ".hpp", ".cpp", ".cc", ".inc"}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def owner(rel: str):
    """The layer a repository-relative path belongs to, or None (outside the layers)."""
    for folder, _ in RULES:
        if rel == folder or rel.startswith(folder + "/"):
            return folder
    return None


def allowed(layer: str, target: str) -> bool:
    if owner(target) == layer:
        return True
    for ok in ALWAYS + dict(RULES)[layer]:
        if target == ok or target.startswith(ok + "/"):
            return True
    return False


def check(root: pathlib.Path):
    problems = []
    files = set()
    for folder, _ in RULES:
        if (root / folder).is_dir():
            files.update(p for p in (root / folder).rglob("*")
                         if p.suffix in SOURCES and p.is_file())
    for path in sorted(files):
        rel = path.relative_to(root).as_posix()
        layer = owner(rel)
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            name = m.group(1)
            beside = (path.parent / name).resolve()
            if beside.is_file() and root.resolve() in beside.parents:
                target = beside.relative_to(root.resolve()).as_posix()
            else:
                target = pathlib.PurePosixPath(name).as_posix()
            target_layer = owner(target)
            if target_layer is None or allowed(layer, target):
                continue  # outside our folders (a system or test header), or allowed
            problems.append(
                f"{rel}:{number}: includes \"{name}\" ({target_layer}/), but {layer}/ may "
                f"include only {', '.join(sorted(set(ALWAYS + dict(RULES)[layer] + [layer])))}"
            )
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=pathlib.Path(__file__).resolve().parent.parent,
                        type=pathlib.Path, help="the source tree (default: this repository)")
    args = parser.parse_args()
    root = args.root
    if not (root / "ir").is_dir():
        print(f"check_layering: {root}: not an edgepack source tree (no ir/ folder)",
              file=sys.stderr)
        return 2
    problems = check(root)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check_layering: {len(problems)} upward include(s)", file=sys.stderr)
        return 1
    print("check_layering: every include keeps to the layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
