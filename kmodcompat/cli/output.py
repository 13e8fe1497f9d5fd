"""Writing tool results byte for byte, as the emulated tools do."""

from __future__ import annotations

import sys

from ..kmod.profile import DEFAULT_KMOD, KMOD_PROFILES
from ..kmod.tools import ToolResult

_held: list[bytes] = []


def emit(result: ToolResult) -> None:
    """Write a result like a C tool: stderr at once, stdout line-buffered on a terminal, else held to exit.

    With stdout on a pipe, glibc buffers it fully while stderr is unbuffered,
    so ``kmod ... 2>&1 | cat`` shows the error lines first; we keep that order.
    """
    if result.stdout:
        if sys.stdout.isatty():
            sys.stdout.buffer.write(result.stdout)
            sys.stdout.buffer.flush()
        else:
            _held.append(result.stdout)
    if result.stderr:
        sys.stderr.buffer.write(result.stderr)
        sys.stderr.buffer.flush()


def flush_held() -> None:
    if _held:
        sys.stdout.buffer.write(b"".join(_held))
        _held.clear()
    sys.stdout.flush()


def add_as_option(p, default: str = DEFAULT_KMOD.id) -> None:
    p.add_argument("--as", dest="as_", metavar="CONSUMER", choices=sorted(KMOD_PROFILES), default=default,
                   help=f"kmod to emulate: {', '.join(sorted(KMOD_PROFILES))} (default {default}; kmod-pr270 is "
                        "kmod with the unmerged extended-modversions support)")
