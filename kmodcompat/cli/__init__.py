"""Command line: ``kmodcompat COMMAND ...``, one module per command.

Errors are one line naming the file and the reason, with a non-zero exit
status; a traceback is a bug.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import (
    cache,
    depmod,
    diff,
    dump_modversions,
    exports,
    graph,
    modinfo,
    report,
    show,
    simulate,
    symvers,
    validate,
    views,
)
from .output import flush_held

COMMANDS = (modinfo, dump_modversions, show, depmod, exports, graph, symvers, views, simulate, report, diff,
            validate, cache)

#: Exit status for usage errors and unreadable input, shared by every command.
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kmodcompat",
        description="What kmod, busybox, module-init-tools, the kernel loader and the kABI gates see in your "
                    "kernel modules, checked byte for byte against the real tools. Start with `kmodcompat report`.")
    parser.add_argument("--version", action="version", version=f"kmodcompat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for cmd in COMMANDS:
        cmd.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.run(args)
        flush_held()
        return status
    except BrokenPipeError:
        sys.stderr.close()  # output piped into head: not an error
        return 0
    except KeyboardInterrupt:
        return 130
