"""``kmodcompat show MODULE... [--format text|json]``: everything parsed from a module."""

from __future__ import annotations

import sys

from ..errors import ModuleReadError
from ..parse.module import parse_module
from ..describe import module_json, module_text
from .helptext import CommandHelp, command_parser
from .output import shown, write_json


HELP = CommandHelp(
    summary="everything kmodcompat parsed from a module",
    description="""
Prints what kmodcompat read from each MODULE: its ELF identity and sections, the .modinfo fields, its imports
and exports (with CRC, GPL-only flag and namespace), each modversions table, its signature, and any malformed
data it found.
""",
    examples=(
        ("kmodcompat show /lib/modules/$(uname -r)/kernel/fs/ext4/ext4.ko*", "Describe ext4."),
        ("kmodcompat show --format json foo.ko bar.ko", "The same for two modules, as JSON."),
    ),
    exit_status="0 when every module was read, 2 for a usage error or a module that could not be read.",
)


def add_parser(sub) -> None:
    p = command_parser(sub, "show", HELP)
    p.add_argument("modules", nargs="+", metavar="MODULE", help="module files (.ko, .ko.xz, .ko.zst, .ko.gz)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="output format (default %(default)s)")
    p.set_defaults(run=run)


def run(args) -> int:
    status = 0
    docs = []
    for path in args.modules:
        try:
            rec = parse_module(path)
        except ModuleReadError as e:
            print(f"kmodcompat: {shown(e)}", file=sys.stderr)
            status = 2
            continue
        if args.format == "json":
            docs.append(module_json(rec))
        else:
            sys.stdout.write(module_text(rec))
    if args.format == "json":
        write_json(docs[0] if len(args.modules) == 1 and docs else docs, 2)
        sys.stdout.write("\n")
    return status
