"""``kmodcompat dump-modversions MODULE``: ``modprobe --dump-modversions``, byte for byte."""

from __future__ import annotations

import sys

from ..kmod.tools import dump_modversions
from .output import add_as_option, emulated_kmod, emit
from .helptext import CommandHelp, command_parser


HELP = CommandHelp(
    summary="print a module's import versions, as modprobe --dump-modversions",
    description="""
Prints the CRC and name of every symbol version in MODULE's __versions table, exactly as "modprobe
--dump-modversions" prints them, errors and exit status included. That option reads the classic table only
and kmod plans to remove it; "kmodcompat modversions" lists every table.
""",
    examples=(
        ("kmodcompat dump-modversions /lib/modules/$(uname -r)/kernel/fs/ext4/ext4.ko*",
         "List the versions ext4 was built against."),
        ("kmodcompat dump-modversions --as kmod30 foo.ko", "The same, as kmod 30 (Debian 12) prints it."),
    ),
    exit_status="As modprobe's: 0 when the module was read, 1 when it could not be or none is named (with modprobe's "
                "message). An option kmodcompat does not know exits 2, with one line.",
)


def add_parser(sub) -> None:
    p = command_parser(sub, "dump-modversions", HELP)
    # Any number, as modprobe takes them: it dumps the first and ignores the rest (tools/modprobe.c
    # "show_modversions(ctx, args[0])"); none is its "missing parameters" error, not argparse's.
    p.add_argument("module", nargs="*", metavar="MODULE", help="module file (.ko, .ko.xz, .ko.zst, .ko.gz)")
    add_as_option(p)
    p.set_defaults(run=run)


def run(args) -> int:
    if not args.module:
        sys.stderr.write("modprobe: ERROR: missing parameters. See -h.\n")
        return 1
    result = dump_modversions(emulated_kmod(args), args.module[0])
    emit(result)
    return result.status
