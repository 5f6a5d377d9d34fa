#!/usr/bin/env python3
"""Validates JSON documents against a JSON Schema with the `jsonschema` package (the oracle
for report.json and recipes: an implementation independent of edgepack's own checks).

  json_schema_check.py SCHEMA.json DOC.json [DOC.json ...]

Prints one JSON object {"DOC": ["<field path>: <message>", ...], ...} (an empty list when
a document is valid) and exits 0 when every document is valid, 1 otherwise, 2 on bad usage
(the schema itself invalid, a file unreadable)."""
import json
import sys

import jsonschema


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(argv[1]) as f:
            schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schema)
    except (OSError, ValueError, jsonschema.SchemaError) as e:
        print(f"{argv[1]}: {e}", file=sys.stderr)
        return 2
    validator = jsonschema.Draft202012Validator(schema)
    result, ok = {}, True
    for path in argv[2:]:
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            print(f"{path}: {e}", file=sys.stderr)
            return 2
        errors = []
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
            errors.append(f"{where.lstrip('.') or '(top)'}: {err.message}")
        result[path] = errors
        ok = ok and not errors
    print(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
