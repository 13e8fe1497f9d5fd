"""``kmodcompat modversions MODULE... [--format text|json] [--table basic|extended|all]``: every import version.

The successor to ``modprobe --dump-modversions`` (deprecated in kmod master, to
be removed after kmod 36), complete where that option is not: it reads
``__version_ext_crcs``/``__version_ext_names`` too, so the long names a Linux
6.14+ EXTENDED_MODVERSIONS build keeps only there are listed (see
:mod:`kmodcompat.listing`).

Text: one line per version, ``0x%08x<TAB>NAME<TAB>TABLES`` (TABLES: ``basic``,
``extended``, ``basic,extended`` or ``varlen``); with ``--table basic`` or
``--table extended`` the table column is left out, so ``--table basic`` prints
exactly what ``--dump-modversions`` prints. With several modules each line
starts with the module's path and a TAB. JSON: kmodcompat/modversions-schema.json.
"""

from __future__ import annotations

import sys

from ..errors import ModuleReadError
from ..listing import SCHEMA_VERSION, TABLE_CHOICES, Row, listing, listing_json
from ..cache import parse_cached
from . import EXIT_USAGE
from .output import shown, write_json
from .helptext import CommandHelp, command_parser
from .inputs import add_cache_option, open_cache


HELP = CommandHelp(
    summary="every import version of a module and the tables carrying it",
    description="""
Lists every symbol version a module carries, with the table it is in: the classic __versions table, the
extended tables of Linux 6.14 and later (__version_ext_crcs and __version_ext_names, where the long names of
an EXTENDED_MODVERSIONS build are kept), or the 2023 variable-length layout. It is the complete successor of
"modprobe --dump-modversions", which reads the classic table only and is to be removed after kmod 36.

The text output is one line per version: the CRC as 0x%08x, a tab, the symbol's name, a tab, and the tables
(basic, extended, basic,extended or varlen). With --table basic or --table extended the table column is left
out, so "--table basic" prints exactly what --dump-modversions prints. With several modules each line starts
with the module's path and a tab. The JSON output follows kmodcompat/modversions-schema.json.
""",
    examples=(
        ("kmodcompat modversions /lib/modules/$(uname -r)/kernel/fs/ext4/ext4.ko*",
         "List ext4's versions and the table each one is in."),
        ("kmodcompat modversions --table basic foo.ko", "Print exactly what modprobe --dump-modversions prints."),
    ),
    exit_status="0 when every module was read and every selected table is well formed; 2 for a usage error, a "
                "module that could not be read, or a table kmod or the kernel would refuse. Each is named on "
                "stderr, and its readable entries are still listed.",
)


def add_parser(sub) -> None:
    p = command_parser(sub, "modversions", HELP)
    p.add_argument("modules", nargs="+", metavar="MODULE", help="module files (.ko, .ko.xz, .ko.zst, .ko.gz)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="output format (default %(default)s)")
    p.add_argument("--table", choices=tuple(TABLE_CHOICES), default="all",
                   help="basic: __versions only (as --dump-modversions); extended: __version_ext_* only; "
                        "all (default): both, and the 2023 variable-length layout")
    p.add_argument("-j", "--jobs", type=int, default=None, help="parallel parsers (default: all cores)")
    add_cache_option(p)
    p.set_defaults(run=run)


def run(args) -> int:
    status = 0
    docs: list[dict] = []
    errors: list[dict] = []
    out: list[str] = []
    several = len(args.modules) > 1
    with_tables = args.table == "all"
    for path, rec in zip(args.modules, parse_cached(args.modules, open_cache(args), args.jobs)):
        if isinstance(rec, ModuleReadError):
            print(f"kmodcompat: {shown(rec)}", file=sys.stderr)
            errors.append({"path": path, "reason": rec.reason})
            status = EXIT_USAGE
            continue
        lst = listing(rec, args.table)
        for problem in lst.problems:
            print(f"kmodcompat: {shown(path)}: {shown(problem)}", file=sys.stderr)
            status = EXIT_USAGE
        if args.format == "json":
            docs.append(listing_json(lst))
            continue
        prefix = f"{shown(path)}\t" if several else ""
        out.extend(f"{prefix}{row_text(r, with_tables)}\n" for r in lst.rows)
    if args.format == "json":
        write_json({"schema_version": SCHEMA_VERSION, "table": args.table, "modules": docs,
                                     "errors": errors}, 2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("".join(out))
    return status


def row_text(row: Row, with_tables: bool) -> str:
    """``0x%08x<TAB>NAME`` as --dump-modversions prints it (the name escaped, :func:`shown`), and
    ``<TAB>TABLE[,TABLE]`` when asked."""
    line = f"0x{row.crc:08x}\t{shown(row.name)}"
    return f"{line}\t{','.join(row.tables)}" if with_tables else line
