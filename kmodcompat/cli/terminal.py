"""What a person at a terminal gets: a pager for long output, colour for verdicts, ``--quiet``.

Only when the output goes to a terminal: a pipe or a file gets exactly the
bytes it always got, so scripts and tests that read the output see no escape
sequence and no pager. The kmod-compatible commands (modinfo, depmod,
dump-modversions) take none of these options and never page, as the real
tools do not.

- Pager: as git does, ``$PAGER`` (default ``less``; an empty value or ``cat``
  means none), with ``LESS=FRX`` unless ``$LESS`` is set, so that output
  shorter than the screen is just printed, colours pass through and the screen
  is not cleared. ``--no-pager`` turns it off.
- Colour: ``--color=auto`` (the default) colours when the stream is a
  terminal, ``$NO_COLOR`` is unset or empty (https://no-color.org) and
  ``$TERM`` is not ``dumb``; ``always`` and ``never`` decide alone.
- ``--quiet``: no progress display and no notes on stderr; errors and the
  command's output stay.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass

#: SGR sequences per kind of verdict (ECMA-48): bad red, doubtful yellow, good green.
_SGR = {"bad": "1;31", "warn": "33", "good": "32"}


@dataclass
class _State:
    colour_out: bool = False  # stdout (before any pager)
    colour_err: bool = False
    quiet: bool = False
    columns: int | None = None  # what text output is fitted to; None: not fitted


STATE = _State()


def add_terminal_options(p, pager: bool = True) -> None:
    if pager:
        p.add_argument("--no-pager", dest="pager", action="store_false",
                       help="never send the output through a pager (default: $PAGER, else less, when stdout is "
                            "a terminal)")
    p.add_argument("--color", "--colour", dest="color", choices=("auto", "always", "never"), default="auto",
                   help="colour verdicts: auto (the default) when writing to a terminal and $NO_COLOR is not set, "
                        "always, or never")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress display and no notes on stderr (errors are still printed)")


def _colour_wanted(choice: str, stream) -> bool:
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return _isatty(stream)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


def colour_on(stream=None) -> bool:
    """Whether what is written to ``stream`` (default stdout) is coloured in this run."""
    return STATE.colour_err if stream is sys.stderr else STATE.colour_out


def paint(text: str, kind: str | None, stream=None) -> str:
    """``text`` in the colour of ``kind`` ("bad", "warn", "good") when colour is on for ``stream``."""
    if not colour_on(stream) or kind not in _SGR:
        return text
    return f"\x1b[{_SGR[kind]}m{text}\x1b[0m"


def note(message: str) -> None:
    """An informational line on stderr (what was read, what was written), left out with --quiet."""
    if not STATE.quiet:
        print(message, file=sys.stderr)


def quiet() -> bool:
    return STATE.quiet


def columns() -> int | None:
    """The width text output is fitted to: ``$COLUMNS``, else the terminal's when stdout is one, else None.

    Output to a pipe or a file is not fitted unless ``$COLUMNS`` asks: scripts keep one line per row.
    """
    return STATE.columns


def _columns() -> int | None:
    value = os.environ.get("COLUMNS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return shutil.get_terminal_size().columns if _isatty(sys.stdout) else None


def _pager_argv() -> list[str] | None:
    cmd = os.environ.get("PAGER", "less")
    try:
        argv = shlex.split(cmd)
    except ValueError:
        return None
    if not argv or argv == ["cat"] or shutil.which(argv[0]) is None:
        return None
    return argv


@contextmanager
def session(args):
    """Colour, --quiet and the pager for the run of one command (``args`` from its parser)."""
    choice = getattr(args, "color", None)
    STATE.colour_out = choice is not None and _colour_wanted(choice, sys.stdout)
    STATE.colour_err = choice is not None and _colour_wanted(choice, sys.stderr)
    STATE.quiet = bool(getattr(args, "quiet", False))
    STATE.columns = _columns() if choice is not None else None  # (before a pager takes stdout)
    argv = _pager_argv() if getattr(args, "pager", False) and _isatty(sys.stdout) else None
    if argv is None:
        yield
        return
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")
    env.setdefault("LV", "-c")
    sys.stdout.flush()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, env=env)
    assert proc.stdin is not None
    real = sys.stdout
    sys.stdout = io.TextIOWrapper(proc.stdin, encoding=real.encoding, errors="backslashreplace", write_through=False)
    try:
        yield  # a BrokenPipeError (the pager quit before the end) goes on to main(): not an error
    finally:
        try:
            sys.stdout.flush()
            sys.stdout.close()
        except (BrokenPipeError, OSError):
            pass
        sys.stdout = real
        # Wait for the pager: it owns the terminal until the user quits it; Ctrl-C is its business.
        while True:
            try:
                proc.wait()
                break
            except KeyboardInterrupt:
                continue


def progress(label: str):
    """The progress display for one phase (parse/scan.py's bar on a terminal), none with --quiet."""
    from ..parse.scan import stderr_progress

    return None if STATE.quiet else stderr_progress(label)


@contextmanager
def phase(label: str):
    """A phase without a count (writing the report, comparing trees): "LABEL ..." then "done", on a terminal."""
    shown = not STATE.quiet and _isatty(sys.stderr)
    if shown:
        sys.stderr.write(f"{label} ...")
        sys.stderr.flush()
    try:
        yield
    except BaseException:
        if shown:
            sys.stderr.write("\n")  # the error that follows starts a line of its own
        raise
    if shown:
        sys.stderr.write(" done\n")
        sys.stderr.flush()
