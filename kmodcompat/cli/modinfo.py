"""``kmodcompat modinfo [-F field] [-0] [-b basedir] [-k kver] MODULE...``: kmod's modinfo, byte for byte.

A MODULE that is not a module file name is looked up by name in
``BASEDIR/lib/modules/KVER/modules.dep``, as kmod's modinfo does.
"""

from __future__ import annotations

import os
import sys

from ..kmod.getopt import MODINFO, Options
from ..cache import parse_cached
from ..kmod.tools import ToolResult, modinfo_file, modinfo_path
from .inputs import add_cache_option, open_cache
from .output import add_as_option, emulated_kmod, emit
from .helptext import CommandHelp, command_parser


#: tools/modinfo.c cmdopts[]: the field shortcuts (-p is --parameters, and prints the parm field).
_SHORTCUTS = {"author": ("-a", "--author"), "description": ("-d", "--description"),
              "license": ("-l", "--license"), "parm": ("-p", "--parameters"), "filename": ("-n", "--filename")}


HELP = CommandHelp(
    summary="show module information, as kmod's modinfo",
    description="""
Prints the .modinfo fields of each MODULE (license, description, depends, vermagic, parm, ...) and its
signature, exactly as kmod's modinfo prints them: the same text, the same errors, the same exit status. --as
chooses which kmod release to imitate.

A MODULE that is not a file is a module name, looked up in BASEDIR/lib/modules/KVER/modules.dep as kmod's
modinfo looks it up (the running kernel's release unless -k is given).
""",
    examples=(
        ("kmodcompat modinfo /lib/modules/$(uname -r)/kernel/fs/ext4/ext4.ko*",
         "Print every field of that module."),
        ("kmodcompat modinfo -F depends -k 6.1.0-56-amd64 ext4",
         "Print only the modules ext4 depends on, looking ext4 up in that kernel's modules.dep."),
        ("kmodcompat modinfo --as kmod30 -F signer ext4.ko.xz",
         "Print the signer as kmod 30 (Debian 12) would."),
    ),
    exit_status="As kmod's modinfo: 0 when every module was found and read, 1 otherwise, or when no module is named (with"
                " modinfo's message), or for an option modinfo does not know (with its getopt message).",
)


def add_parser(sub) -> None:
    p = command_parser(sub, "modinfo", HELP)
    # none: kmod's own error ("missing module or filename."), not argparse's
    p.add_argument("modules", nargs="*", metavar="MODULE", help="module files or module names")
    p.add_argument("-F", "--field", help="print only this field's values")
    p.add_argument("-0", "--null", action="store_true", help="use \\0 instead of \\n between values")
    for field, flags in _SHORTCUTS.items():
        p.add_argument(*flags, dest="field", action="store_const", const=field, help=f"same as -F {field}")
    p.add_argument("-m", "--modname", action="store_true",
                   help="each MODULE is a module name, even when it looks like a file name")
    p.add_argument("-b", "--basedir", default="", help="root directory for module lookups by name")
    p.add_argument("-k", "--set-version", dest="kver", default=None, metavar="KVER",
                   help="kernel version for module lookups by name")
    p.add_argument("-V", "--version", action="store_true", help="print the emulated kmod's version and features")
    p.add_argument("-j", "--jobs", type=int, default=None, help="not in kmod: parallel parsers (default: all cores)")
    add_cache_option(p)
    add_as_option(p)
    p.set_defaults(run=run, kmod_output=True)  # inputs.open_cache: kmod's stderr and nothing else


def getopt_options(argv: list[str]) -> tuple[Options, tuple[Options, ...]]:
    """modinfo's options, the same in every release (cli main() scans argv with them)."""
    return MODINFO, (MODINFO,)


def run(args) -> int:
    if args.version:  # handled in the option loop, before the operands are looked at
        sys.stdout.write(emulated_kmod(args).version_text)
        return 0
    if not args.modules:  # tools/modinfo.c: "if (optind >= argc)", then EXIT_FAILURE
        sys.stderr.write("modinfo: ERROR: missing module or filename.\n")
        return 1
    kmod = emulated_kmod(args)
    sep = "\0" if args.null else "\n"
    dirname = os.path.join(args.basedir or "/", "lib/modules", args.kver or os.uname().release)
    found = [modinfo_path(kmod, arg, dirname, by_name=args.modname) for arg in args.modules]
    # Every file read once up front (in parallel, from the record cache where it holds the file's bytes):
    # a script's `modinfo $(find ...)` over a whole tree costs what the tree's records cost. -F filename
    # opens nothing, as in kmod.
    paths = [p for p in found if isinstance(p, str)] if args.field != "filename" else []
    opened = dict(zip(paths, parse_cached(paths, open_cache(args), args.jobs))) if paths else {}
    status = 0
    for path in found:
        result = path if isinstance(path, ToolResult) else modinfo_file(kmod, path, args.field, sep, opened.get(path))
        emit(result)
        status |= result.status
    return status
