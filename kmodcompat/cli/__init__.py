"""Command line: ``kmodcompat COMMAND ...``, one module per command.

Errors are one line naming the file and the reason, with a non-zero exit
status; a traceback is a bug.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from .output import flush_held

#: Command name → its module in this package, in help order. A run imports only
#: the module of the command it runs (the others pull in networkx, the depmod
#: writers, ...): start-up is part of every command's time.
COMMANDS = {
    "modinfo": "modinfo", "dump-modversions": "dump_modversions", "modversions": "modversions", "show": "show",
    "depmod": "depmod",
    "exports": "exports", "graph": "graph", "symvers": "symvers", "views": "views", "simulate": "simulate",
    "report": "report", "diff": "diff", "loadable": "loadable", "validate": "validate", "cache": "cache",
}

#: Exit status for usage errors and unreadable input, shared by every command.
EXIT_USAGE = 2


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with ``only`` that one command's sub-parser (same options)."""
    parser = argparse.ArgumentParser(
        prog="kmodcompat",
        description="What kmod, busybox, module-init-tools, the kernel loader and the kABI gates see in your "
                    "kernel modules, checked byte for byte against the real tools. Start with `kmodcompat report`.")
    parser.add_argument("--version", action="version", version=f"kmodcompat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(f".{module}", __name__).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Names are escaped where kmodcompat prints them (output.shown()); should one slip through
    # unescaped, a non-UTF-8 file name still prints (as \udcXX) instead of ending the run.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
    args = parser.parse_args(argv)
    try:
        status = args.run(args)
        flush_held()
        return status
    except SystemExit as e:  # a command's one-line usage or input error (cli/inputs.py usage())
        flush_held()
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    except BrokenPipeError:
        sys.stderr.close()  # output piped into head: not an error
        return 0
    except KeyboardInterrupt:
        return 130
