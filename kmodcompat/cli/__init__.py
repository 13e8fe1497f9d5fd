"""Command line: ``kmodcompat COMMAND ...``, one module per command.

Errors are one line naming the file and the reason, with a non-zero exit
status; a traceback is a bug.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys

from .. import __version__
from ..kmod.getopt import own_options, scan
from ..kmod.host import describe_default
from .helptext import CommandHelp, HelpParser
from .output import flush_held
from .terminal import add_terminal_options, session

#: Command name → its module in this package, in help order. A run imports only
#: the module of the command it runs (the others pull in networkx, the depmod
#: writers, ...): start-up is part of every command's time.
COMMANDS = {
    "modinfo": "modinfo", "dump-modversions": "dump_modversions", "modversions": "modversions", "show": "show",
    "depmod": "depmod",
    "exports": "exports", "graph": "graph", "symvers": "symvers", "views": "views", "simulate": "simulate",
    "report": "report", "diff": "diff", "loadable": "loadable", "validate": "validate", "ksyms": "ksyms",
    "cache": "cache",
}

#: The commands that behave as a kmod tool: no pager, colour or --quiet, which the real tools lack.
KMOD_COMMANDS = frozenset({"modinfo", "depmod", "dump-modversions"})

#: The commands that write files (the report, rewritten modules): nothing on stdout to page.
WRITERS = frozenset({"report", "simulate"})

#: Exit status for usage errors and unreadable input, shared by every command.
EXIT_USAGE = 2


HELP = CommandHelp(
    summary="kernel-module compatibility analyzer",
    description="""
kmodcompat reads kernel modules (.ko, .ko.xz, .ko.zst, .ko.gz, of any architecture), whole module trees and
kernel packages, and tells you what kmod, busybox, module-init-tools, the kernel's module loader and the
distributions' kABI tools (Red Hat's and SUSE's weak-modules) see in them. Where it imitates a real tool
(modinfo, depmod, modprobe --dump-modversions) its output is that tool's, byte for byte.

Start with "kmodcompat report", which analyses a whole tree and writes a report. Run "kmodcompat COMMAND
--help" for what each command does and takes; each command also has a man page, kmodcompat-COMMAND(1).

Every command that takes a tree names it the same way: a module directory (/lib/modules/KVER), a root holding
lib/modules/KVER, "-b BASEDIR KVER", a kernel release alone (under /lib/modules), or packages (.deb, .rpm,
.tar of a root), any number of them combined into one root.
""",
    examples=(
        ("kmodcompat report", "Report on the running kernel's modules (or on the bundled demo tree when there "
                              "is no /lib/modules for it)."),
        ("kmodcompat diff /lib/modules/6.1.0-56-amd64 /lib/modules/6.12.57+deb13-amd64",
         "Say what changed between two kernels' module trees, and whom it breaks."),
        ("kmodcompat modinfo -F vermagic ext4", "Print one field, as kmod's modinfo does."),
    ),
    sections=(("environment", """
PAGER: the pager for output to a terminal (default less; empty or cat: none). --no-pager turns it off.

LESS: the pager's options (default FRX: output shorter than the screen is just printed, colours pass).

NO_COLOR: when set and not empty, no colour (https://no-color.org); --color=always still colours.

COLUMNS: the width help and text output are fitted to (default: the terminal's).

XDG_CACHE_HOME: where the cache lives (kmodcompat/ in it; default ~/.cache).
"""),),
    exit_status="0 when the command succeeded and found nothing wrong, 1 when the thing checked fails or "
                "differs, 2 for a usage or input error. diff returns a bitmask as abidiff does, and modinfo, "
                "depmod and dump-modversions return what the emulated kmod returns. Each command's help "
                "gives its own.",
)


class _Version(argparse.Action):
    """``--version``: the release, which kmod the kmod-compatible commands emulate by default (host.py), and
    which parser runs (parse/accel.py)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from ..parse import accel

        print(f"kmodcompat {__version__}\n{describe_default()}\nparser: {accel.describe()}")
        parser.exit(0)


def build_parser(only: str | None = None) -> HelpParser:
    """The whole command line, or with ``only`` that one command's sub-parser (same options)."""
    parser = HelpParser(prog="kmodcompat", about=HELP)
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and which kmod is emulated")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=HelpParser)
    sub.required = True
    parser.command_parsers = sub.choices  # name -> the command's own parser
    for name, module in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(f".{module}", __name__).add_parser(sub)
            own = sub.choices[name]
            own.set_defaults(command_parser=own)  # an unknown option is reported by the command's parser
            if name not in KMOD_COMMANDS:
                add_terminal_options(own, pager=name not in WRITERS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Names are escaped where kmodcompat prints them (output.shown()); should one slip through
    # unescaped, a non-UTF-8 file name still prints (as \udcXX) instead of ending the run.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
    if argv and argv[0] in KMOD_COMMANDS:
        # kmod's own answers to its options (kmod/getopt.py): the release's getopt error and status 1, or its
        # deprecated options dropped with its warning; the program name is the command's (depmod, modinfo)
        options = getattr(importlib.import_module(f".{COMMANDS[argv[0]]}", __name__), "getopt_options", None)
        if options is not None:
            release, known = options(argv[1:])
            scanned = scan(argv[1:], release, known, *own_options(parser.command_parsers[argv[0]]))
            sys.stderr.write("".join(f"{argv[0]}: WARNING: {w}\n" for w in scanned.warnings))
            if scanned.error is not None:
                sys.stderr.write(f"{argv[0]}: {scanned.error}\n")
                return 1
            argv = [argv[0], *scanned.argv]
    try:
        args = parse(parser, argv)
    except SystemExit as e:  # --help (0), --version (0), a usage error (2: HelpParser.error's one line)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    try:
        with session(args):  # the pager, when there is one, takes all of stdout
            try:
                status = args.run(args)
            finally:
                flush_held()
                gc.unfreeze()  # what cli/inputs.py froze for the command, collectable again by a caller's process
        return status
    except SystemExit as e:  # a command's one-line usage or input error (cli/inputs.py usage())
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    except BrokenPipeError:
        sys.stderr.close()  # output piped into head: not an error
        return 0
    except KeyboardInterrupt:
        return 130


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parser.parse_args(argv)``, but an unrecognized argument is reported by the command's own parser
    (``kmodcompat: exports: unrecognized arguments: --bogus``), not by the top-level one."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        own = getattr(args, "command_parser", parser)
        own.error(f"unrecognized arguments: {' '.join(extra)}")
    return args
