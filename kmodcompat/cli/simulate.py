"""``kmodcompat simulate TREE|MODULE... --format-as FORMAT [--out DIR]``: rewrite modules in another format.

Writes, for each module, a real relocatable ELF ``.ko`` whose version sections
are those modpost writes in FORMAT (none, basic, basic+ext, ext-only, or the
rejected 2023 variable-length one), everything else kept byte for byte, so
real tools can be run on it. Exit status 1 if a module could not be written.
"""

from __future__ import annotations

import os
import sys

from ..errors import ModuleReadError
from ..files.opener import read_module_bytes
from ..simulate import FORMATS, BuildError, simulate
from .inputs import add_input_options, load_expected, load_inputs, report_failures


def add_parser(sub) -> None:
    p = sub.add_parser("simulate", help="rewrite modules with their versions in another format",
                       description=__doc__.splitlines()[0])
    add_input_options(p)
    p.add_argument("--format-as", required=True, choices=FORMATS, dest="format_as")
    p.add_argument("--out", default="simulated", help="output directory (default ./simulated)")
    p.add_argument("-E", "--symvers", metavar="Module.symvers", help="CRCs for imports the module itself lacks")
    p.set_defaults(run=run)


def run(args) -> int:
    inputs = load_inputs(args)
    report_failures(inputs.failures)
    extra = load_expected(args.symvers, inputs.modules)
    status = 1 if inputs.failures else 0
    common = os.path.commonpath([p for p, _ in inputs.modules]) if len(inputs.modules) > 1 else None
    written = 0
    for path, rec in inputs.modules:
        rel = os.path.relpath(path, common) if common else os.path.basename(path)
        rel = rel.split(".ko", 1)[0] + ".ko"  # written uncompressed
        dest = os.path.join(args.out, rel)
        try:
            data = simulate(rec, read_module_bytes(path).data, args.format_as, extra)
        except (BuildError, ModuleReadError) as e:
            print(f"kmodcompat: {path}: cannot write as {args.format_as}: {e}", file=sys.stderr)
            status = 1
            continue
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        with open(dest, "wb") as f:
            f.write(data)
        written += 1
    print(f"{written} module(s) written as {args.format_as} under {args.out}", file=sys.stderr)
    return status
