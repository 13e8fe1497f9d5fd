"""``kmodcompat show MODULE... [--format text|json]``: everything parsed from a module."""

from __future__ import annotations

import json
import sys

from ..errors import ModuleReadError
from ..parse.module import parse_module
from ..describe import module_json, module_text


def add_parser(sub) -> None:
    p = sub.add_parser("show", help="everything kmodcompat parsed from a module",
                       description=__doc__.splitlines()[0])
    p.add_argument("modules", nargs="+", metavar="MODULE")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(run=run)


def run(args) -> int:
    status = 0
    docs = []
    for path in args.modules:
        try:
            rec = parse_module(path)
        except ModuleReadError as e:
            print(f"kmodcompat: {e}", file=sys.stderr)
            status = 2
            continue
        if args.format == "json":
            docs.append(module_json(rec))
        else:
            sys.stdout.write(module_text(rec))
    if args.format == "json":
        json.dump(docs[0] if len(args.modules) == 1 and docs else docs, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return status
